//! Sessions over the engine's own transport (Steam Networking Sockets, EOS P2P, Unity
//! Transport, WebRTC data channels...): made without sockets, fed the bytes each
//! connection received, drained of what to send (see `net::custom`).

use std::time::Duration;

use super::boundary::{boundary, FfiError, FfiResult};
use super::session::{
    insert, registry_of, secret_in, take_world, with_object, SessionObject, ThetaSession,
};
use super::session_config::{config_in, growable_in, ThetaSessionConfig};
use super::world::ThetaWorld;
use super::{bytes_in, check_out, write_out, ThetaStatus};
use crate::net::custom::{
    CustomTransport, TransportError, TransportOutput, CLOSE_LOST, MAX_UNRELIABLE, MIN_UNRELIABLE,
};
use crate::net::session::Session;
use crate::proto::{Channel, CLOSE_BROKEN_STREAM, CLOSE_REFUSED, CLOSE_SHUTDOWN};

/// What the engine's transport provides; pass NULL for the defaults. Set `struct_size` to
/// `sizeof(ThetaTransportConfig)` (or start from `theta_transport_config_init`); every
/// other field 0 means its default.
///
/// The transport carries two channels per connection, which must guarantee:
/// - reliable (`THETA_CHANNEL_RELIABLE`): every message arrives once, whole, in the order
///   sent (Steam's k_nSteamNetworkingSend_Reliable, EOS's reliable-ordered packets, a
///   reliable ordered WebRTC data channel). Messages are framed: report each one whole.
///   The session's messages are at most about the larger of
///   `ThetaSessionConfig::max_chunk_bytes` (plus the registry's descriptors) and the
///   largest value of a registered type, plus a few bytes; a transport with a smaller
///   message limit must split and join them.
/// - unreliable (`THETA_CHANNEL_UNRELIABLE`): messages of at most `max_unreliable_bytes`,
///   each delivered whole or not at all, in any order, possibly twice.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThetaTransportConfig {
    /// Bytes of this struct as the caller compiled it: `sizeof(ThetaTransportConfig)`.
    pub struct_size: u32,
    /// Largest unreliable message the transport carries unfragmented (default 1200),
    /// from 256 to 65536 bytes. The session sends none larger, and refuses larger ones
    /// it is given (`THETA_STATUS_MESSAGE_TOO_LARGE`).
    pub max_unreliable_bytes: u32,
    /// The round trip assumed for a connection until `theta_session_transport_set_rtt`
    /// reports one (default 100 ms).
    pub initial_rtt_ms: u32,
    /// Reserved; must be 0.
    pub reserved: u32,
}

/// Bytes of the first `ThetaTransportConfig` layout: the least `struct_size` accepted.
const TRANSPORT_CONFIG_V1: usize = 16;

const _: () = {
    assert!(size_of::<ThetaTransportConfig>() == TRANSPORT_CONFIG_V1);
    assert!(MIN_UNRELIABLE == 256 && MAX_UNRELIABLE == 65536);
};

impl Default for ThetaTransportConfig {
    /// The default configuration: every field 0 but the size.
    fn default() -> Self {
        ThetaTransportConfig {
            struct_size: size_of::<ThetaTransportConfig>() as u32,
            max_unreliable_bytes: 0,
            initial_rtt_ms: 0,
            reserved: 0,
        }
    }
}

/// A connection's channel, as `theta_session_transport_receive` takes it and
/// `ThetaTransportOutput::channel` gives it (a `uint8_t`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaChannel {
    /// Reliable and ordered, message-framed.
    Reliable = 1,
    /// Unreliable, at most `ThetaTransportConfig::max_unreliable_bytes` a message.
    Unreliable = 2,
}

/// What a `ThetaTransportOutput` asks (its `kind`, a `uint8_t`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaTransportOutputKind {
    /// Nothing is queued.
    None = 0,
    /// Send the `len` bytes copied to the buffer as one message on `conn`'s `channel`.
    Send = 1,
    /// Close `conn` after what was sent on its reliable channel (an orderly close that
    /// delivers it), telling the peer `code` and the reason (the `len` bytes of UTF-8
    /// copied to the buffer) if the transport carries them.
    Close = 2,
}

/// Why a connection closed, as a session asks it (`ThetaTransportOutput::code`) and as the
/// engine reports the peer's close (`theta_session_transport_closed`); a `uint32_t` the
/// engine may carry in its transport's close (Steam: an end reason from
/// k_ESteamNetConnectionEnd_App_Min up).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaCloseCode {
    /// An orderly close: the session shut down, or the peer left.
    Shutdown = 0,
    /// The host refused the join.
    Refused = 1,
    /// The peer broke the protocol (a malformed or oversized reliable message).
    BrokenStream = 2,
    /// The transport lost the connection (a timeout, a network problem), or cannot tell
    /// why it ended. Any code not listed here reads as this one.
    Lost = 65535,
}

const _: () = {
    assert!(ThetaCloseCode::Shutdown as u32 == CLOSE_SHUTDOWN);
    assert!(ThetaCloseCode::Refused as u32 == CLOSE_REFUSED);
    assert!(ThetaCloseCode::BrokenStream as u32 == CLOSE_BROKEN_STREAM);
    assert!(ThetaCloseCode::Lost as u32 == CLOSE_LOST);
};

/// One thing the session asks of the engine's transport (`theta_session_transport_poll`).
/// Blittable.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThetaTransportOutput {
    /// The engine's id of the connection.
    pub conn: u64,
    /// Bytes copied to the caller's buffer: the message (`SEND`) or the reason
    /// (`CLOSE`); on `THETA_STATUS_BUFFER_TOO_SMALL`, the size needed.
    pub len: usize,
    /// `CLOSE`: a `ThetaCloseCode`.
    pub code: u32,
    /// A `ThetaTransportOutputKind`.
    pub kind: u8,
    /// `SEND`: a `ThetaChannel`.
    pub channel: u8,
    /// Padding; 0.
    pub reserved: [u8; 2],
}

impl From<TransportError> for FfiError {
    /// Each kind of refusal its own status (see `ThetaStatus`).
    fn from(error: TransportError) -> Self {
        let status = match &error {
            TransportError::WrongTransport(_) => ThetaStatus::WrongTransport,
            TransportError::UnknownConnection(_) => ThetaStatus::UnknownConnection,
            TransportError::ConnectionExists(_) => ThetaStatus::ConnectionExists,
            TransportError::TooLarge { .. } => ThetaStatus::MessageTooLarge,
            TransportError::Closed(_) => ThetaStatus::SessionClosed,
        };
        FfiError::new(status, error.to_string())
    }
}

fn invalid(message: impl Into<String>) -> FfiError {
    FfiError::new(ThetaStatus::InvalidArgument, message)
}

/// Writes the default transport configuration to `out_config`: every field 0 but
/// `struct_size`, which is this library's `sizeof(ThetaTransportConfig)`.
///
/// # Safety
/// `out_config` must point to a writable `ThetaTransportConfig`.
#[no_mangle]
pub unsafe extern "C" fn theta_transport_config_init(
    out_config: *mut ThetaTransportConfig,
) -> ThetaStatus {
    boundary("theta_transport_config_init", || {
        check_out(out_config, "out_config")?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { write_out(out_config, ThetaTransportConfig::default()) };
        Ok(())
    })
}

/// The settings of a `ThetaTransportConfig`, NULL and 0 meaning the defaults.
///
/// # Safety
/// `config` must be NULL or point to a `ThetaTransportConfig` of its `struct_size` bytes.
unsafe fn transport_in(config: *const ThetaTransportConfig) -> FfiResult<CustomTransport> {
    let mut transport = CustomTransport::default();
    // SAFETY: forwarded contract.
    let Some(config) =
        (unsafe { growable_in(config, "ThetaTransportConfig", TRANSPORT_CONFIG_V1) })?
    else {
        return Ok(transport);
    };
    if config.reserved != 0 {
        return Err(invalid("ThetaTransportConfig.reserved must be 0"));
    }
    if config.max_unreliable_bytes != 0 {
        transport.max_unreliable = config.max_unreliable_bytes as usize;
    }
    if config.initial_rtt_ms != 0 {
        transport.initial_rtt = Duration::from_millis(u64::from(config.initial_rtt_ms));
    }
    transport
        .validate()
        .map_err(|e| invalid(format!("ThetaTransportConfig: {e}")))?;
    Ok(transport)
}

/// Hosts a session over the engine's own transport, with `world` as the authoritative
/// state, and writes its handle to `out_session`. Nothing is bound and no network thread
/// runs: the engine reports its connections and what they received, and carries out what
/// `theta_session_transport_poll` gives. The world is MOVED into the session as by
/// `theta_session_host` (on failure it stays valid under its handle); `secret_hex` and
/// `config` are as there (of `config`, the QUIC settings are unused). Invite clients with
/// `theta_session_mint_token`; how the token reaches them is the engine's affair (a
/// lobby, the platform's invites). `transport` may be NULL for the defaults; an invalid
/// one is `THETA_STATUS_INVALID_ARGUMENT`.
///
/// Connections: when a peer connects, report it (`theta_session_transport_connected`,
/// with the engine's id for it). Its first reliable message must be its join request,
/// within `ThetaSessionConfig::admission_timeout_ms`; at most `max_pending_admissions`
/// connections may wait for theirs (further ones are closed at once). The host answers
/// at once: poll after every report.
///
/// # Safety
/// `secret_hex` must point to `secret_hex_len` readable bytes (or be NULL when that is
/// 0); `config` must be NULL or point to a `ThetaSessionConfig`, `transport` NULL or a
/// `ThetaTransportConfig`; `out_session` to a writable `ThetaSession`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_host_custom(
    world: ThetaWorld,
    secret_hex: *const u8,
    secret_hex_len: usize,
    config: *const ThetaSessionConfig,
    transport: *const ThetaTransportConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_host_custom", || {
        check_out(out_session, "out_session")?;
        // SAFETY: per the contract.
        let secret = unsafe { secret_in(secret_hex, secret_hex_len) }?;
        // SAFETY: per the contract.
        let settings = unsafe { config_in(config) }?;
        // SAFETY: per the contract.
        let transport = unsafe { transport_in(transport) }?;
        let session = take_world(world, |w| {
            Session::host_custom(w, secret.clone(), settings, transport)
        })?;
        let handle = insert(SessionObject::new(session, Some(secret), None));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_session, handle) };
        Ok(())
    })
}

/// Joins a session over the engine's own transport with a join `token` the host minted,
/// and writes the session's handle to `out_session`. `registry_world` is NOT consumed:
/// only its component types are read, and they must equal the host's. `config` and
/// `transport` may be NULL for the defaults. Nothing happens until the engine reports its
/// connection to the host (`theta_session_transport_connected`): the join request is then
/// queued for `theta_session_transport_poll`, and a `JOINED` or `DISCONNECTED` event
/// follows the host's answer (or 5 s without one).
///
/// # Safety
/// `token` must point to `token_len` readable bytes; `config` must be NULL or point to a
/// `ThetaSessionConfig`, `transport` NULL or a `ThetaTransportConfig`; `out_session` to a
/// writable `ThetaSession`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_join_custom(
    token: *const u8,
    token_len: usize,
    registry_world: ThetaWorld,
    config: *const ThetaSessionConfig,
    transport: *const ThetaTransportConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_join_custom", || {
        check_out(out_session, "out_session")?;
        // SAFETY: per the contract.
        let token = unsafe { bytes_in(token, token_len, "token") }?;
        let token =
            std::str::from_utf8(token).map_err(|e| invalid(format!("token is not UTF-8: {e}")))?;
        // SAFETY: per the contract.
        let settings = unsafe { config_in(config) }?;
        // SAFETY: per the contract.
        let transport = unsafe { transport_in(transport) }?;
        let registry = registry_of(registry_world)?;
        let session = Session::join_custom(&registry, token, settings, transport)?;
        let handle = insert(SessionObject::new(session, None, None));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_session, handle) };
        Ok(())
    })
}

/// Runs `f` on a session over a custom transport; `WRONG_TRANSPORT` on one over QUIC.
fn with_custom<R>(
    session: ThetaSession,
    f: impl FnOnce(&mut Session) -> Result<R, TransportError>,
) -> FfiResult<R> {
    with_object(session, |o| match o.ready() {
        Some(s) => Ok(f(s)?),
        // A QUIC client still resolving its host's name.
        None => Err(TransportError::WrongTransport("a custom transport").into()),
    })
}

/// Custom transport: the engine opened connection `conn` (its own id, any value; an id
/// may be used again once its connection was reported closed). On a host a peer
/// connected (see `theta_session_host_custom`); on a client this is its connection to the
/// host, and the join (or, after `theta_session_reconnect`, resume) request is queued. A
/// client has one connection at a time.
///
/// `THETA_STATUS_CONNECTION_EXISTS` for an id that is open (or a client's second
/// connection), `THETA_STATUS_SESSION_CLOSED` after `theta_session_leave` or on a client
/// whose connection ended and that did not call `theta_session_reconnect`,
/// `THETA_STATUS_WRONG_TRANSPORT` on a session over QUIC.
#[no_mangle]
pub extern "C" fn theta_session_transport_connected(
    session: ThetaSession,
    conn: u64,
) -> ThetaStatus {
    boundary("theta_session_transport_connected", || {
        with_custom(session, |s| s.transport_connected(conn))
    })
}

/// Custom transport: connection `conn` received one whole message of `len` bytes at
/// `data` on `channel` (a `ThetaChannel`). The bytes are copied; poll
/// `theta_session_transport_poll` afterwards (a join is answered at once).
///
/// `THETA_STATUS_UNKNOWN_CONNECTION` for a connection not open (never reported, or
/// reported closed); bytes for a connection the session is closing are dropped (OK).
/// `THETA_STATUS_MESSAGE_TOO_LARGE` for an unreliable message over
/// `max_unreliable_bytes`, or a reliable one over the protocol's bound (before admission
/// the join request's, 4 KiB; then what the peer's session may send): a reliable one also
/// ends the connection (its ordered stream lost a message), and a `CLOSE` with
/// `THETA_CLOSE_CODE_BROKEN_STREAM` is queued. `THETA_STATUS_SESSION_CLOSED` after
/// `theta_session_leave`; `THETA_STATUS_INVALID_ARGUMENT` for a channel that is not a
/// `ThetaChannel`.
///
/// # Safety
/// `data` must point to `len` readable bytes (NULL when `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn theta_session_transport_receive(
    session: ThetaSession,
    conn: u64,
    channel: u8,
    data: *const u8,
    len: usize,
) -> ThetaStatus {
    boundary("theta_session_transport_receive", || {
        let channel = match channel {
            c if c == ThetaChannel::Reliable as u8 => Channel::Reliable,
            c if c == ThetaChannel::Unreliable as u8 => Channel::Unreliable,
            c => return Err(invalid(format!("channel {c} is not a ThetaChannel (1, 2)"))),
        };
        // SAFETY: per the contract.
        let bytes = unsafe { bytes_in(data, len, "data") }?;
        with_custom(session, |s| s.transport_receive(conn, channel, bytes))
    })
}

/// Custom transport: connection `conn` ended. `code` is the `ThetaCloseCode` the peer
/// closed it with, if the transport carried it, else `THETA_CLOSE_CODE_LOST` (also when
/// the transport lost it: a timeout, a network problem); `reason` (UTF-8, may be empty)
/// says why in words and reaches the events (`PEER_LEFT` on a host, `DISCONNECTED` on a
/// client, whose `cause` follows `code`). What was queued for the connection is dropped,
/// and its id may be used again. Reporting the end of a connection the session closed
/// itself (a `CLOSE` output) is accepted and optional, also after `theta_session_leave`.
///
/// `THETA_STATUS_UNKNOWN_CONNECTION` for a connection not open;
/// `THETA_STATUS_INVALID_ARGUMENT` for a reason that is not UTF-8.
///
/// # Safety
/// `reason` must point to `reason_len` readable bytes (NULL when that is 0).
#[no_mangle]
pub unsafe extern "C" fn theta_session_transport_closed(
    session: ThetaSession,
    conn: u64,
    code: u32,
    reason: *const u8,
    reason_len: usize,
) -> ThetaStatus {
    boundary("theta_session_transport_closed", || {
        // SAFETY: per the contract.
        let reason = unsafe { bytes_in(reason, reason_len, "reason") }?;
        let reason = std::str::from_utf8(reason)
            .map_err(|e| invalid(format!("reason is not UTF-8: {e}")))?;
        with_custom(session, |s| s.transport_closed(conn, code, reason))
    })
}

/// Custom transport: the transport's round-trip estimate of connection `conn`, in
/// microseconds (optional: see `ThetaTransportConfig::initial_rtt_ms`; the protocol
/// measures its own from acknowledgements after its first resends).
/// `THETA_STATUS_UNKNOWN_CONNECTION` for a connection not open.
#[no_mangle]
pub extern "C" fn theta_session_transport_set_rtt(
    session: ThetaSession,
    conn: u64,
    rtt_us: u64,
) -> ThetaStatus {
    boundary("theta_session_transport_set_rtt", || {
        with_custom(session, |s| {
            s.transport_set_rtt(conn, Duration::from_micros(rtt_us))
        })
    })
}

/// Custom transport: takes the next thing to carry out, oldest first, into `out_output`,
/// copying its bytes (a message to send, or a close's reason) into `buf`. With nothing
/// queued, `out_output->kind` is `THETA_TRANSPORT_OUTPUT_KIND_NONE`. Poll until then
/// after every tick and every report, and carry the outputs out in order.
///
/// When `capacity` is too small, returns `THETA_STATUS_BUFFER_TOO_SMALL` with
/// `out_output` written (its `len` the size needed) and nothing copied: the output stays
/// queued for the next call, with a larger buffer. Works after `theta_session_leave` (to
/// drain its goodbye); `THETA_STATUS_WRONG_TRANSPORT` on a session over QUIC.
///
/// # Safety
/// `buf` must point to `capacity` writable bytes (NULL when `capacity` is 0);
/// `out_output` to a writable `ThetaTransportOutput`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_transport_poll(
    session: ThetaSession,
    buf: *mut u8,
    capacity: usize,
    out_output: *mut ThetaTransportOutput,
) -> ThetaStatus {
    boundary("theta_session_transport_poll", || {
        check_out(out_output, "out_output")?;
        if buf.is_null() && capacity > 0 {
            return Err(FfiError::null("buf"));
        }
        with_object(session, |o| {
            let s = o
                .ready()
                .ok_or(TransportError::WrongTransport("a custom transport"))?;
            let Some(next) = s.transport_peek()? else {
                // SAFETY: checked non-NULL.
                unsafe { write_out(out_output, ThetaTransportOutput::default()) };
                return Ok(());
            };
            let (output, bytes) = describe(next);
            if bytes.len() > capacity {
                // SAFETY: checked non-NULL.
                unsafe { write_out(out_output, output) };
                return Err(FfiError::new(
                    ThetaStatus::BufferTooSmall,
                    format!("the output has {} bytes, buffer {capacity}", bytes.len()),
                ));
            }
            if !bytes.is_empty() {
                // SAFETY: `buf` has `capacity >= bytes.len() > 0` writable bytes
                // (non-NULL since capacity > 0).
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
            }
            // Taken only once copied.
            let _ = s.transport_poll()?;
            // SAFETY: checked non-NULL.
            unsafe { write_out(out_output, output) };
            Ok(())
        })
    })
}

/// The C form of an output, and the bytes it carries.
fn describe(output: &TransportOutput) -> (ThetaTransportOutput, &[u8]) {
    match output {
        TransportOutput::Send {
            conn,
            channel,
            bytes,
        } => (
            ThetaTransportOutput {
                conn: *conn,
                len: bytes.len(),
                kind: ThetaTransportOutputKind::Send as u8,
                channel: match channel {
                    Channel::Reliable => ThetaChannel::Reliable as u8,
                    Channel::Unreliable => ThetaChannel::Unreliable as u8,
                },
                ..ThetaTransportOutput::default()
            },
            bytes,
        ),
        TransportOutput::Close { conn, code, reason } => (
            ThetaTransportOutput {
                conn: *conn,
                len: reason.len(),
                code: *code,
                kind: ThetaTransportOutputKind::Close as u8,
                ..ThetaTransportOutput::default()
            },
            reason.as_bytes(),
        ),
    }
}

/// Custom transport: says goodbye. Queues a one-byte goodbye on every admitted
/// connection's unreliable channel, then a `CLOSE` (`THETA_CLOSE_CODE_SHUTDOWN`, "host
/// shut down" or "client left") of every open connection: poll them out and carry them
/// out (send the goodbye, then close with your transport's orderly close), then free the
/// session. The peers hear it from the goodbye or from their transport's close,
/// whichever arrives first. Afterwards only `theta_session_transport_poll`,
/// `theta_session_transport_closed`, reads and `theta_session_free` work; ticks and
/// other transport calls give `THETA_STATUS_SESSION_CLOSED`. A second call does nothing.
/// Freeing a session without leaving sends nothing: the peers then learn it is gone from
/// their transport alone. `THETA_STATUS_WRONG_TRANSPORT` on a session over QUIC (which
/// says goodbye when freed).
#[no_mangle]
pub extern "C" fn theta_session_leave(session: ThetaSession) -> ThetaStatus {
    boundary("theta_session_leave", || {
        with_custom(session, Session::leave)
    })
}
