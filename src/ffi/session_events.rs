//! Session events: what a poll hands the engine, with the data it borrows until the next
//! poll.

use super::boundary::{boundary, FfiError};
use super::replica::ThetaEventKind;
use super::session::{with_object, ThetaSession};
use super::{check_out, write_out, ThetaStatus};
use crate::net::session::{DisconnectCause, EventRef, SessionEvent};
use crate::replica::{Event, EventKind};

/// Why a client's connection ended: `ThetaSessionEvent.cause` of a `DISCONNECTED` event.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaDisconnectCause {
    /// The host refused the join (token expired, forged or used, registry mismatch):
    /// joining again needs a fresh token or another build.
    Refused = 1,
    /// Nothing answered at the address, or the address is unusable.
    Unreachable = 2,
    /// The host's certificate did not match the pinned fingerprint or the CA roots.
    Certificate = 3,
    /// The connection went silent past the idle timeout, or the join request got no answer
    /// in time: worth joining again.
    TimedOut = 4,
    /// The host closed the connection (it shut down).
    HostClosed = 5,
    /// The host broke the protocol (a malformed answer, a broken compression stream).
    Protocol = 6,
    /// This side closed it.
    Local = 7,
}

impl From<DisconnectCause> for ThetaDisconnectCause {
    fn from(cause: DisconnectCause) -> Self {
        match cause {
            DisconnectCause::Refused => Self::Refused,
            DisconnectCause::Unreachable => Self::Unreachable,
            DisconnectCause::Certificate => Self::Certificate,
            DisconnectCause::TimedOut => Self::TimedOut,
            DisconnectCause::HostClosed => Self::HostClosed,
            DisconnectCause::Protocol => Self::Protocol,
            DisconnectCause::Local => Self::Local,
        }
    }
}

/// Kinds of `ThetaSessionEvent` (its `kind` field). 1 to 5 are the replica's events, with
/// the values of `ThetaEventKind`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaSessionEventKind {
    /// An entity appeared (client).
    Spawn = 1,
    /// An entity gained a component; `data` is the value (client).
    Insert = 2,
    /// A value changed; `data` is the new value (client).
    Update = 3,
    /// An entity lost a component (client).
    Remove = 4,
    /// An entity and all its components disappeared (client).
    Despawn = 5,
    /// A client joined or resumed (on the host, one of its clients; on a client, another
    /// client of the host); `peer` is its id.
    PeerJoined = 16,
    /// A client left or was lost (on the host, one of its clients; on a client, another
    /// client of the host, whose avatar is then forgotten); `peer` is its id, `data` the
    /// reason.
    PeerLeft = 17,
    /// The host admitted this client (client); `peer` is this client's id.
    Joined = 18,
    /// The connection to the host ended or was refused (client); `data` is the reason, which
    /// names the failed check of a refused join. The session stays valid but inert: free
    /// it, or (a dropped connection, `cause` `TIMED_OUT`) resume with
    /// `theta_session_reconnect`.
    Disconnected = 19,
    /// A write to an entity the writer does not own was refused and not applied: on the
    /// host `peer` is the offending client, on that client its own id; `entity` and
    /// `component` (0 for a spawn or despawn) name the write, `data` is the reason.
    WriteRejected = 20,
    /// Host: a connection's join request was refused (nothing was allocated for it);
    /// `data` is the reason.
    JoinRefused = 21,
    /// The owner of `entity` (`component` 0) or of one of its components changed (every
    /// peer); `peer` is the new owner, `THETA_OWNER_NOBODY` (65535) for nobody. A client
    /// that joins hears one for every owner that is not the entity's creator.
    OwnershipChanged = 22,
    /// The host refused this client's ownership request, release or policy change
    /// (client); `entity`, `component`; `cause` is a `ThetaOwnershipRefusal`, `data` the
    /// reason.
    OwnershipDenied = 23,
    /// Host with an ownership hook (`ThetaSessionConfig::ownership_hook_ms`): client
    /// `peer` asks for `entity`/`component` and its policy would grant it; answer with
    /// `theta_session_decide_ownership(session, request, ...)` within the hook's time.
    OwnershipRequested = 24,
    /// An entity left this client's interest (client): it still exists, but this client
    /// forgets it until it enters again (then as a `SPAWN`); `entity`.
    Left = 25,
    /// An application message arrived: `peer` is its sender (a client's id, or
    /// `THETA_PEER_HOST`), `channel` its channel, `data` its body; `cause` is
    /// `THETA_MESSAGE_RELIABLE` when it came reliable-ordered, else 0.
    Message = 32,
    /// A message this peer sent was not delivered (client): `peer` is the destination it
    /// was sent to, `channel` its channel, `data` the reason.
    MessageRefused = 33,
    /// Host, with message filtering on: a client's message to another client (or to all)
    /// awaits `theta_session_decide_message` with `request`. `peer` is its sender,
    /// `entity` its destination (a peer id or `THETA_PEER_ALL`), `channel` its channel,
    /// `data` its body, `cause` `THETA_MESSAGE_RELIABLE` or 0.
    MessageRequested = 34,
}

/// Why the host refused an ownership request: `ThetaSessionEvent.cause` of an
/// `OWNERSHIP_DENIED` event.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaOwnershipRefusal {
    /// No such live entity (or component type).
    UnknownEntity = 0,
    /// Another peer holds it and its policy does not let it be taken.
    Held = 1,
    /// Its policy lets only the host assign it.
    HostOnly = 2,
    /// The host's engine refused it, or did not answer in time.
    Refused = 3,
    /// A release or policy change by a peer that does not hold it.
    NotOwner = 4,
    /// Too many of this client's requests wait for the host's engine.
    Throttled = 5,
}

/// One event of a session. Blittable.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThetaSessionEvent {
    /// The entity, for replica events and `WRITE_REJECTED`; 0 otherwise.
    pub entity: u64,
    /// Host tick of the change, for replica events; 0 otherwise.
    pub tick: u64,
    /// The value (inserts, updates) or the reason, UTF-8 and not NUL-terminated
    /// (`PEER_LEFT`, `DISCONNECTED`, `WRITE_REJECTED`); NULL when empty. Valid until the
    /// next `theta_session_poll_events` on this session or its free.
    pub data: *const u8,
    /// Length of `data` in bytes.
    pub data_len: usize,
    /// The component, for inserts, updates, removes and `WRITE_REJECTED`; 0 otherwise.
    pub component: u32,
    /// The peer: see `ThetaSessionEventKind`; for replica events the peer that created
    /// (owns) the entity; 0 for `DISCONNECTED`.
    pub peer: u16,
    /// A `ThetaSessionEventKind`.
    pub kind: u8,
    /// For `DISCONNECTED`, why, as a `ThetaDisconnectCause` an engine can act on (the
    /// text in `data` says more); for `OWNERSHIP_DENIED` a `ThetaOwnershipRefusal`; for
    /// `MESSAGE` and `MESSAGE_REQUESTED`, the message's flags (`THETA_MESSAGE_RELIABLE`); 0
    /// otherwise.
    pub cause: u8,
    /// For host-side requests (`OWNERSHIP_REQUESTED`, `MESSAGE_REQUESTED`), the id to
    /// answer with; 0 otherwise.
    pub request: u64,
    /// For message events, the application's channel id; 0 otherwise.
    pub channel: u32,
}

/// The C form of a replica event, borrowing its bytes from the replica's arena.
fn replica_event_out(e: &Event<'_>) -> ThetaSessionEvent {
    event_out(&SessionEvent::Replica {
        kind: e.kind,
        entity: e.entity,
        component: e.component,
        tick: e.tick,
        data: Vec::new(),
    })
    .with_data(e.data)
}

impl Default for ThetaSessionEvent {
    /// An event of no kind: zeros and no data (what a caller's buffer may start as).
    fn default() -> Self {
        ThetaSessionEvent {
            entity: 0,
            tick: 0,
            data: std::ptr::null(),
            data_len: 0,
            component: 0,
            peer: 0,
            kind: 0,
            cause: 0,
            request: 0,
            channel: 0,
        }
    }
}

impl ThetaSessionEvent {
    /// This event with `data` as its bytes (NULL when empty).
    fn with_data(mut self, data: &[u8]) -> Self {
        if !data.is_empty() {
            self.data = data.as_ptr();
            self.data_len = data.len();
        }
        self
    }
}

/// A message's flags as events carry them.
fn message_flags(reliable: bool) -> u8 {
    if reliable {
        super::messages::THETA_MESSAGE_RELIABLE as u8
    } else {
        0
    }
}

/// The C form of an event, borrowing its bytes from `event`.
fn event_out(event: &SessionEvent) -> ThetaSessionEvent {
    let mut out = ThetaSessionEvent::default();
    let mut borrow = |bytes: &[u8]| {
        if !bytes.is_empty() {
            out.data = bytes.as_ptr();
            out.data_len = bytes.len();
        }
    };
    let kind = match event {
        SessionEvent::Replica {
            kind,
            entity,
            component,
            tick,
            data,
        } => {
            borrow(data);
            out.entity = entity.0;
            out.component = component.0;
            out.tick = *tick;
            out.peer = entity.creator();
            // The replica kinds keep their ThetaEventKind values.
            (match kind {
                EventKind::Spawn => ThetaEventKind::Spawn,
                EventKind::Insert => ThetaEventKind::Insert,
                EventKind::Update => ThetaEventKind::Update,
                EventKind::Remove => ThetaEventKind::Remove,
                EventKind::Despawn => ThetaEventKind::Despawn,
            }) as u8
        }
        SessionEvent::Joined { peer } => {
            out.peer = *peer;
            ThetaSessionEventKind::Joined as u8
        }
        SessionEvent::PeerJoined { peer } => {
            out.peer = *peer;
            ThetaSessionEventKind::PeerJoined as u8
        }
        SessionEvent::PeerLeft { peer, reason } => {
            borrow(reason.as_bytes());
            out.peer = *peer;
            ThetaSessionEventKind::PeerLeft as u8
        }
        SessionEvent::Disconnected { reason, cause } => {
            borrow(reason.as_bytes());
            out.cause = ThetaDisconnectCause::from(*cause) as u8;
            ThetaSessionEventKind::Disconnected as u8
        }
        SessionEvent::JoinRefused { reason, .. } => {
            borrow(reason.as_bytes());
            ThetaSessionEventKind::JoinRefused as u8
        }
        SessionEvent::WriteRejected {
            peer,
            entity,
            component,
            reason,
        } => {
            borrow(reason.as_bytes());
            out.peer = *peer;
            out.entity = entity.0;
            out.component = component.0;
            ThetaSessionEventKind::WriteRejected as u8
        }
        SessionEvent::OwnershipChanged {
            entity,
            component,
            owner,
        } => {
            out.entity = entity.0;
            out.component = component.0;
            out.peer = owner.unwrap_or(crate::ownership::NOBODY);
            ThetaSessionEventKind::OwnershipChanged as u8
        }
        SessionEvent::OwnershipDenied {
            entity,
            component,
            refusal,
            reason,
        } => {
            borrow(reason.as_bytes());
            out.entity = entity.0;
            out.component = component.0;
            out.cause = *refusal as u8;
            ThetaSessionEventKind::OwnershipDenied as u8
        }
        SessionEvent::OwnershipRequested {
            request,
            peer,
            entity,
            component,
        } => {
            out.request = *request;
            out.peer = *peer;
            out.entity = entity.0;
            out.component = component.0;
            ThetaSessionEventKind::OwnershipRequested as u8
        }
        SessionEvent::Left { entity } => {
            out.entity = entity.0;
            ThetaSessionEventKind::Left as u8
        }
        SessionEvent::Message {
            from,
            channel,
            reliable,
            body,
        } => {
            borrow(body);
            out.peer = *from;
            out.channel = *channel;
            out.cause = message_flags(*reliable);
            ThetaSessionEventKind::Message as u8
        }
        SessionEvent::MessageRefused {
            to,
            channel,
            reason,
        } => {
            borrow(reason.as_bytes());
            out.peer = *to;
            out.channel = *channel;
            ThetaSessionEventKind::MessageRefused as u8
        }
        SessionEvent::MessageRequested {
            request,
            from,
            to,
            channel,
            reliable,
            body,
        } => {
            borrow(body);
            out.peer = *from;
            out.entity = u64::from(*to);
            out.channel = *channel;
            out.request = *request;
            out.cause = message_flags(*reliable);
            ThetaSessionEventKind::MessageRequested as u8
        }
    };
    out.kind = kind;
    out
}

/// Moves up to `capacity` pending events, oldest first, into `out_events` and writes how
/// many to `out_count`. Events arrive through `theta_session_tick`; poll until `out_count`
/// is 0 to drain. The `data` of the events stays valid until the next poll on this session
/// (from any thread) or its free: copy what you keep.
///
/// # Safety
/// `out_events` must point to `capacity` writable `ThetaSessionEvent` (may be NULL when
/// `capacity` is 0); `out_count` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_poll_events(
    session: ThetaSession,
    out_events: *mut ThetaSessionEvent,
    capacity: usize,
    out_count: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_poll_events", || {
        check_out(out_count, "out_count")?;
        if capacity > 0 && out_events.is_null() {
            return Err(FfiError::null("out_events"));
        }
        let count = with_object(session, |o| {
            let mut i = 0;
            // Each event borrows bytes the session keeps in place until its next poll:
            // the replica's event arena, the protocol's queue, this layer's `polled`.
            Ok(o.poll_with(capacity, |event| {
                let out = match event {
                    EventRef::Replica(e) => replica_event_out(&e),
                    EventRef::Session(e) => event_out(e),
                };
                // SAFETY: at most `capacity` events are handed, and the caller gives
                // `capacity` writable events (non-NULL since capacity > 0 here).
                unsafe { out_events.add(i).write(out) };
                i += 1;
            }))
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_count, count) };
        Ok(())
    })
}
