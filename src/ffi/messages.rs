//! Application messages through the C ABI: sending, the host's decisions on held
//! messages, and the host's message settings (see `proto::messages`). Messages arrive as
//! `THETA_SESSION_EVENT_KIND_MESSAGE` events of `theta_session_poll_events`.

use std::time::Duration;

use super::boundary::{boundary, FfiError};
use super::session::{text_in, with_session};
use super::{bytes_in, ThetaStatus};
use crate::proto::messages::{MessageError, MAX_MESSAGE_BYTES, MAX_UNRELIABLE_MESSAGE_BYTES};
use crate::proto::{PEER_ALL, PEER_HOST};

/// The destination of `theta_session_send_message` that names the host; the `peer` of a
/// `MESSAGE` event the host sent.
pub const THETA_PEER_HOST: u16 = 0xFFFE;
/// The destination that names every peer but the sender, the host included.
pub const THETA_PEER_ALL: u16 = 0xFFFF;
/// Largest body of a reliable message, in bytes.
pub const THETA_MAX_MESSAGE_BYTES: u32 = 65536;
/// Largest body of an unreliable message, in bytes (its datagram fits a 1200-byte packet).
pub const THETA_MAX_UNRELIABLE_MESSAGE_BYTES: u32 = 1024;
/// Flag of `theta_session_send_message` (and `cause` of message events): reliable and
/// ordered. Without it a message is unreliable: it may be lost, never duplicated.
pub const THETA_MESSAGE_RELIABLE: u32 = 1;

const _: () = {
    assert!(THETA_PEER_HOST == PEER_HOST && THETA_PEER_ALL == PEER_ALL);
    assert!(THETA_MAX_MESSAGE_BYTES as usize == MAX_MESSAGE_BYTES);
    assert!(THETA_MAX_UNRELIABLE_MESSAGE_BYTES as usize == MAX_UNRELIABLE_MESSAGE_BYTES);
};

impl From<MessageError> for FfiError {
    /// Each kind of failure its own status.
    fn from(error: MessageError) -> Self {
        let status = match &error {
            MessageError::TooLarge { .. } => ThetaStatus::MessageTooLarge,
            MessageError::NotConnected => ThetaStatus::NotConnected,
            MessageError::UnknownPeer(_) | MessageError::UnknownRequest(_) => ThetaStatus::NotFound,
            MessageError::ToSelf => ThetaStatus::InvalidArgument,
            MessageError::NotHost => ThetaStatus::WrongRole,
        };
        FfiError::new(status, error.to_string())
    }
}

/// Sends an application message of `len` bytes at `body` on the application's `channel`
/// to `to`: from a client, `THETA_PEER_HOST`, one peer id or `THETA_PEER_ALL` (every other
/// peer); from the host, one client or `THETA_PEER_ALL`. `flags` is
/// `THETA_MESSAGE_RELIABLE` (sent now, arrives once and in order) or 0 (unreliable: sent
/// at the next tick, arrives at most once). The bytes are copied.
///
/// `THETA_STATUS_MESSAGE_TOO_LARGE` over `THETA_MAX_MESSAGE_BYTES` (reliable) or
/// `THETA_MAX_UNRELIABLE_MESSAGE_BYTES`; `THETA_STATUS_NOT_CONNECTED` on a client not
/// admitted; `THETA_STATUS_NOT_FOUND` from the host to a peer not connected;
/// `THETA_STATUS_INVALID_ARGUMENT` to itself or with unknown flags. A client's message to
/// a peer that is not there is refused later by the host: a `MESSAGE_REFUSED` event.
///
/// # Safety
/// `body` must point to `len` readable bytes (may be NULL when `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn theta_session_send_message(
    session: super::ThetaSession,
    to: u16,
    channel: u32,
    flags: u32,
    body: *const u8,
    len: usize,
) -> ThetaStatus {
    boundary("theta_session_send_message", || {
        if flags & !THETA_MESSAGE_RELIABLE != 0 {
            return Err(FfiError::new(
                ThetaStatus::InvalidArgument,
                format!("unknown message flags {flags:#x}"),
            ));
        }
        // SAFETY: the caller gives `len` readable bytes at `body`.
        let body = unsafe { bytes_in(body, len, "body") }?;
        let reliable = flags & THETA_MESSAGE_RELIABLE != 0;
        with_session(
            session,
            |s| Ok(s.send_message(to, channel, reliable, body)?),
        )
    })
}

/// Host: answers a `MESSAGE_REQUESTED` event with its `request` id. `accept` non-zero
/// relays the message; 0 refuses it, and its sender gets a `MESSAGE_REFUSED` event with
/// the reason (`reason_len` bytes of UTF-8 at `reason`; empty for a generic one).
/// `THETA_STATUS_NOT_FOUND` when no message awaits that id (answered already, or timed
/// out: unanswered ones are refused after the configured timeout);
/// `THETA_STATUS_WRONG_ROLE` on a client.
///
/// # Safety
/// `reason` must point to `reason_len` readable bytes (may be NULL when it is 0).
#[no_mangle]
pub unsafe extern "C" fn theta_session_decide_message(
    session: super::ThetaSession,
    request: u64,
    accept: u8,
    reason: *const u8,
    reason_len: usize,
) -> ThetaStatus {
    boundary("theta_session_decide_message", || {
        // SAFETY: the caller gives `reason_len` readable bytes at `reason`.
        let reason = unsafe { text_in(reason, reason_len, "reason") }?;
        with_session(session, |s| {
            Ok(s.decide_message(request, accept != 0, reason)?)
        })
    })
}

/// Host: turns message filtering on (`enabled` non-zero) or off. On, every client's
/// message to another client or to all is held and surfaced as a `MESSAGE_REQUESTED`
/// event until `theta_session_decide_message` answers it, or `timeout_ms` passes (0: the
/// default, 1 000 ms) and it is refused as unanswered. Messages to the host are never
/// held. `THETA_STATUS_WRONG_ROLE` on a client.
#[no_mangle]
pub extern "C" fn theta_session_set_message_filter(
    session: super::ThetaSession,
    enabled: u8,
    timeout_ms: u32,
) -> ThetaStatus {
    boundary("theta_session_set_message_filter", || {
        with_session(session, |s| {
            let mut config = s.message_config()?;
            config.filter = enabled != 0;
            config.decision_timeout = match timeout_ms {
                0 => Duration::from_secs(1),
                ms => Duration::from_millis(u64::from(ms)),
            };
            Ok(s.set_message_config(config)?)
        })
    })
}

/// Host: the rates each client's messages are held to, applied from each client's next
/// connection (0 keeps a field's default): messages per second and at once (default 120
/// and 240), body bytes per second and at once (default 256 KiB and 512 KiB). A message
/// over them is refused as throttled (`MESSAGE_REFUSED`); a client sending more than
/// `flood_factor` times them (default 4) is disconnected. `THETA_STATUS_WRONG_ROLE` on a
/// client.
#[no_mangle]
pub extern "C" fn theta_session_set_message_limits(
    session: super::ThetaSession,
    messages_per_second: u32,
    burst_messages: u32,
    bytes_per_second: u32,
    burst_bytes: u32,
    flood_factor: u32,
) -> ThetaStatus {
    boundary("theta_session_set_message_limits", || {
        with_session(session, |s| {
            let defaults = crate::proto::MessageConfig::default();
            let pick = |value: u32, default: u32| if value == 0 { default } else { value };
            let mut config = s.message_config()?;
            config.messages_per_second = pick(messages_per_second, defaults.messages_per_second);
            config.burst_messages = pick(burst_messages, defaults.burst_messages);
            config.bytes_per_second = pick(bytes_per_second, defaults.bytes_per_second);
            config.burst_bytes = pick(burst_bytes, defaults.burst_bytes);
            config.flood_factor = pick(flood_factor, defaults.flood_factor);
            Ok(s.set_message_config(config)?)
        })
    })
}
