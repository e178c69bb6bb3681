//! Session handles and the calls on a session, a host or a client owning its world (see
//! `net::session`). Sessions over QUIC are opened in `session_open.rs`; over the engine's
//! own transport they are opened and driven in `transport.rs`.
//!
//! A session handle holds a `Mutex` around the Rust [`Session`] together with what the C
//! side must not handle itself (the host's join secret), and the batch of events handed
//! out by the last poll, whose bytes the C side borrows until the next poll.
//! A client joined by host name holds its join until a background thread has resolved
//! the name (see [`Link`]), so neither joining nor closing blocks the caller.

use crate::interest::InterestError;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::background;
use super::boundary::{boundary, FfiError, FfiResult};
use super::handles::HandleTable;
use super::world::{ThetaWorld, WORLDS};
use super::{bytes_in, check_out, write_optional, write_out, ThetaStatus};
use crate::net::compression::TrainError;
use crate::net::session::{
    DisconnectCause, EventRef, HostError, Session, SessionConfig, SessionError, SessionEvent,
};
use crate::net::tls::{Fingerprint, ServerTrust};
use crate::net::token::{try_mint, JoinSecret};
use crate::proto::{OwnershipCallError, OwnershipError};
use crate::registry::Registry;

/// Bytes of a certificate fingerprint (SHA-256), as `theta_session_fingerprint` writes it
/// and `theta_session_join` reads it.
pub const THETA_FINGERPRINT_LEN: usize = 32;
/// Bytes of a join token's text form, as `theta_session_mint_token` writes it.
pub const THETA_JOIN_TOKEN_LEN: usize = 102;

/// A session handle: a host or a client. `id` 0 is the null handle.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThetaSession {
    /// Opaque, validated by the library.
    pub id: u64,
}

/// A session and what belongs with it on this side of the C ABI.
pub(super) struct SessionObject {
    link: Link,
    /// The host's join secret; `None` on a client.
    secret: Option<JoinSecret>,
    /// The host's certificate fingerprint: its own on a host, the pinned one on a client;
    /// `None` over a custom transport.
    fingerprint: Option<Fingerprint>,
    /// The events of the last poll, borrowed by the C side until the next one.
    pub(super) polled: Vec<SessionEvent>,
    /// Events of this layer (a host name that did not resolve), polled before the
    /// session's.
    own_events: VecDeque<SessionEvent>,
}

/// The Rust session behind a handle, or the join waiting for its host's address.
enum Link {
    /// A running session.
    Ready(Box<Session>),
    /// A client joined by host name: a background thread resolves it; the join starts at
    /// the first call that finds the answer.
    Resolving {
        answer: mpsc::Receiver<std::io::Result<SocketAddr>>,
        join: Box<PendingJoin>,
    },
    /// The name did not resolve or the join could not start: an inert client whose
    /// `DISCONNECTED` event says why.
    Failed,
}

/// What a join by host name needs once the name is resolved.
pub(super) struct PendingJoin {
    pub(super) name: String,
    pub(super) trust: ServerTrust,
    pub(super) token: String,
    pub(super) registry: Registry,
    pub(super) settings: SessionConfig,
}

impl SessionObject {
    pub(super) fn new(
        session: Session,
        secret: Option<JoinSecret>,
        fingerprint: Option<Fingerprint>,
    ) -> Self {
        SessionObject {
            link: Link::Ready(Box::new(session)),
            secret,
            fingerprint,
            polled: Vec::new(),
            own_events: VecDeque::new(),
        }
    }

    /// A client joined by host name, waiting for the `answer` of the thread resolving it.
    pub(super) fn resolving(
        answer: mpsc::Receiver<std::io::Result<SocketAddr>>,
        join: PendingJoin,
        fingerprint: Fingerprint,
    ) -> Self {
        SessionObject {
            link: Link::Resolving {
                answer,
                join: Box::new(join),
            },
            secret: None,
            fingerprint: Some(fingerprint),
            polled: Vec::new(),
            own_events: VecDeque::new(),
        }
    }

    /// Starts a resolved join, or records why it cannot start; never waits.
    fn advance(&mut self) {
        let Link::Resolving { answer, .. } = &self.link else {
            return;
        };
        let resolved = match answer.try_recv() {
            Err(mpsc::TryRecvError::Empty) => return,
            Ok(resolved) => resolved,
            Err(mpsc::TryRecvError::Disconnected) => Err(std::io::Error::other(
                "the resolver thread ended without an answer",
            )),
        };
        let Link::Resolving { join, .. } = std::mem::replace(&mut self.link, Link::Failed) else {
            return;
        };
        let started = resolved
            .map_err(|e| format!("cannot resolve the host {:?}: {e}", join.name))
            .and_then(|addr| {
                Session::join(
                    addr,
                    &join.trust,
                    &join.token,
                    &join.registry,
                    join.settings,
                )
                .map_err(|e| format!("cannot join {:?} ({addr}): {e}", join.name))
            });
        match started {
            Ok(session) => self.link = Link::Ready(Box::new(session)),
            Err(reason) => self.own_events.push_back(SessionEvent::Disconnected {
                reason,
                cause: DisconnectCause::Unreachable,
            }),
        }
    }

    /// The running session, once there is one.
    pub(super) fn session(&mut self) -> FfiResult<&mut Session> {
        self.advance();
        match &mut self.link {
            Link::Ready(session) => Ok(session),
            Link::Resolving { join, .. } => Err(FfiError::new(
                ThetaStatus::NotConnected,
                format!(
                    "this client is still resolving its host {:?}: tick and poll it until \
                     JOINED or DISCONNECTED",
                    join.name
                ),
            )),
            Link::Failed => Err(FfiError::new(
                ThetaStatus::NotConnected,
                "this client's host name did not resolve (see its DISCONNECTED event): free it",
            )),
        }
    }

    /// The running session, or `None` while (or because) a host name is being resolved.
    pub(super) fn ready(&mut self) -> Option<&mut Session> {
        self.session().ok()
    }

    /// Hands up to `max` events to `f`: this layer's first (kept in `polled`), then the
    /// session's, borrowed from it. Every event's bytes stay where they are until the
    /// next poll of this object (or its free). Returns how many.
    pub(super) fn poll_with(&mut self, max: usize, mut f: impl FnMut(EventRef<'_>)) -> usize {
        self.advance();
        let n = max.min(self.own_events.len());
        self.polled = self.own_events.drain(..n).collect();
        for event in &self.polled {
            f(EventRef::Session(event));
        }
        match &mut self.link {
            Link::Ready(session) => n + session.poll_events_with(max - n, f),
            _ => n,
        }
    }
}

static SESSIONS: HandleTable<Mutex<SessionObject>> = HandleTable::new(6);
const KIND: &str = "session";

impl From<SessionError> for FfiError {
    /// Each kind of failure its own status (see `ThetaStatus`).
    fn from(error: SessionError) -> Self {
        let status = match &error {
            SessionError::Io(_) => ThetaStatus::Io,
            SessionError::Tls(_) => ThetaStatus::Tls,
            SessionError::WrongRole(_) | SessionError::Train(TrainError::NotHost) => {
                ThetaStatus::WrongRole
            }
            SessionError::CannotResume(_) => ThetaStatus::CannotResume,
            SessionError::Train(_) => ThetaStatus::TrainingRefused,
            // Settings the caller gave: a pose volume, a custom transport's limits.
            SessionError::Volume(_) | SessionError::Transport(_) => ThetaStatus::InvalidArgument,
            SessionError::Ownership(e) => match e {
                OwnershipError::Unknown { .. } => ThetaStatus::DeadEntity,
                OwnershipError::NotConnected(_) => ThetaStatus::InvalidArgument,
                OwnershipError::UnknownRequest(_) => ThetaStatus::NotFound,
                OwnershipError::ReasonTooLong(_) => ThetaStatus::InvalidArgument,
                OwnershipError::NotHeld { .. } => ThetaStatus::NotOwner,
            },
            SessionError::OwnershipCall(e) => match e {
                OwnershipCallError::NotJoined => ThetaStatus::NotConnected,
                OwnershipCallError::NotOwner { .. } => ThetaStatus::NotOwner,
            },
            SessionError::Interest(InterestError::UnknownEntity(_)) => ThetaStatus::DeadEntity,
            // Not a bad argument: the engine must turn interest management on.
            SessionError::Interest(InterestError::Off) => ThetaStatus::InterestOff,
            SessionError::Interest(_) | SessionError::Priority(_) => ThetaStatus::InvalidArgument,
        };
        FfiError::new(status, error.to_string())
    }
}

/// Stores a new session object and returns its handle.
pub(super) fn insert(object: SessionObject) -> ThetaSession {
    ThetaSession {
        id: SESSIONS.insert(Mutex::new(object)),
    }
}

/// Runs `f` on the session's object (whatever state its join is in).
pub(super) fn with_object<R>(
    session: ThetaSession,
    f: impl FnOnce(&mut SessionObject) -> FfiResult<R>,
) -> FfiResult<R> {
    SESSIONS.with(session.id, KIND, f)
}

/// Runs `f` on the running session; `THETA_STATUS_NOT_CONNECTED` while a client's host
/// name is being resolved, or after it failed to.
pub(super) fn with_session<R>(
    session: ThetaSession,
    f: impl FnOnce(&mut Session) -> FfiResult<R>,
) -> FfiResult<R> {
    with_object(session, |o| f(o.session()?))
}

fn invalid(message: impl Into<String>) -> FfiError {
    FfiError::new(ThetaStatus::InvalidArgument, message)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Borrows `len` bytes of UTF-8 text.
///
/// # Safety
/// As `bytes_in`.
pub(super) unsafe fn text_in<'a>(ptr: *const u8, len: usize, what: &str) -> FfiResult<&'a str> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { bytes_in(ptr, len, what) }?;
    std::str::from_utf8(bytes).map_err(|e| invalid(format!("{what} is not UTF-8: {e}")))
}

/// A join secret given as 64 hex digits, or a fresh random one when `len` is 0.
///
/// # Safety
/// As `bytes_in`.
pub(super) unsafe fn secret_in(hex: *const u8, len: usize) -> FfiResult<JoinSecret> {
    if len == 0 {
        return JoinSecret::try_generate().map_err(|e| invalid(e.to_string()));
    }
    // SAFETY: per the contract.
    let text = unsafe { text_in(hex, len, "secret_hex") }?;
    JoinSecret::from_hex(text).map_err(|e| invalid(e.to_string()))
}

/// Moves the world behind `world` into the session `start` makes of it: its handle is
/// freed only if the session starts; otherwise the world goes back under it, unchanged.
pub(super) fn take_world(
    world: ThetaWorld,
    start: impl FnOnce(crate::World) -> Result<Session, HostError>,
) -> FfiResult<Session> {
    let poisoned = |w: &Mutex<crate::World>| {
        if w.is_poisoned() {
            return Err(FfiError::new(
                ThetaStatus::Panic,
                "this world is unusable after a panic in an earlier call; free it",
            ));
        }
        Ok(())
    };
    WORLDS.take_with(world.id, "world", poisoned, |w| {
        let world = w.into_inner().unwrap_or_else(PoisonError::into_inner);
        start(world).map_err(|e| (FfiError::from(e.error), Box::new(Mutex::new(*e.world))))
    })
}

/// The component types of the world behind `world` (not consumed).
pub(super) fn registry_of(world: ThetaWorld) -> FfiResult<Registry> {
    WORLDS.with(world.id, "world", |w| Ok(w.registry().clone()))
}

/// Frees a session: an orderly shutdown on the caller's thread. Its connections are
/// closed with a reason (clients of a host get a `DISCONNECTED` event saying the host shut
/// down; the host of a client a `PEER_LEFT`), and its network thread is joined, which may
/// take up to about 1.5 s while the close goes out (`theta_session_close` does the same
/// without blocking). Its world, pending events and the data of polled events go with it.
/// The null handle is a no-op. A call running on the session on another thread finishes
/// first; the shutdown then happens when it returns.
#[no_mangle]
pub extern "C" fn theta_session_free(session: ThetaSession) -> ThetaStatus {
    boundary("theta_session_free", || SESSIONS.free(session.id, KIND))
}

/// Frees a session as `theta_session_free` does, without blocking: the handle is invalid
/// when this returns, and the goodbye to the peers and the join of the network thread
/// happen on a background thread. The data of polled events goes at once.
///
/// Contract for engines that must leave nothing running (an editor domain reload or
/// play-mode exit, quitting): close every session, then call
/// `theta_session_wait_closed`; once it reports 0 pending, no thread the library started
/// for a closed session (or for a join's host-name lookup) is running. The null handle
/// is a no-op.
#[no_mangle]
pub extern "C" fn theta_session_close(session: ThetaSession) -> ThetaStatus {
    boundary("theta_session_close", || {
        if session.id == 0 {
            return Ok(());
        }
        let object = SESSIONS
            .remove(session.id)
            .ok_or_else(|| FfiError::handle(KIND, session.id))?;
        // The event data the caller borrowed is released here, as the contract says.
        if let Ok(mut o) = object.lock() {
            o.polled = Vec::new();
        }
        background::spawn("theta-close", move || drop(object));
        Ok(())
    })
}

/// Waits up to `timeout_ms` milliseconds for the sessions closed by
/// `theta_session_close` to finish closing (and for host-name lookups of joins to end),
/// and writes how many are still pending to `out_pending` (may be NULL): 0 means nothing
/// the library started for them is running. Sessions not closed keep running: this does
/// not close them. `timeout_ms` 0 only counts.
///
/// # Safety
/// `out_pending` must be NULL or point to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_wait_closed(
    timeout_ms: u32,
    out_pending: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_wait_closed", || {
        let pending = background::wait(Duration::from_millis(u64::from(timeout_ms)));
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_pending, pending) };
        Ok(())
    })
}

/// One network tick: applies what arrived (clients: the host's state; host: its clients'
/// writes), queues events, sends what changed, and on the host closes the world's tick.
/// Never blocks on the network; call it once per engine frame or at the replication rate.
/// On a client still resolving its host's name, it only checks for the answer. Over a
/// custom transport, poll `theta_session_transport_poll` after it; a session that left
/// (`theta_session_leave`) gives `THETA_STATUS_SESSION_CLOSED`.
#[no_mangle]
pub extern "C" fn theta_session_tick(session: ThetaSession) -> ThetaStatus {
    boundary("theta_session_tick", || {
        with_object(session, |o| {
            if let Some(session) = o.ready() {
                if session.has_left() {
                    return Err(FfiError::new(
                        ThetaStatus::SessionClosed,
                        "this session left: poll what it still has to send, then free it",
                    ));
                }
                session.tick();
            }
            Ok(())
        })
    })
}

/// Client: reconnects after the connection to the host dropped (a `DISCONNECTED` event
/// with cause `THETA_DISCONNECT_CAUSE_TIMED_OUT`, say: the app was paused, the network
/// changed), resuming this client's state: the host sends what changed since (no
/// snapshot) while it keeps that state (`ThetaSessionConfig::resume_grace_ms`). Over QUIC
/// the session dials the host again; over a custom transport open a new connection and
/// report it with `theta_session_transport_connected`. `JOINED` (the same peer id)
/// follows, or `DISCONNECTED`: with cause `THETA_DISCONNECT_CAUSE_REFUSED` when the grace
/// period ended (free the session and join again with a fresh token), otherwise the
/// client may call this again. `THETA_STATUS_WRONG_ROLE` on a host;
/// `THETA_STATUS_CANNOT_RESUME` when the client was never admitted, is still connected or
/// already resuming, or has no resume token; `THETA_STATUS_NOT_CONNECTED` on a client
/// still resolving its host's name.
#[no_mangle]
pub extern "C" fn theta_session_reconnect(session: ThetaSession) -> ThetaStatus {
    boundary("theta_session_reconnect", || {
        with_session(session, |s| Ok(s.reconnect()?))
    })
}

/// Writes the host certificate's SHA-256 fingerprint (`THETA_FINGERPRINT_LEN` bytes) to
/// `out_fingerprint`: on a host its own, what clients pass to `theta_session_join`; on a
/// client the one it pins. A session over a custom transport has none:
/// `THETA_STATUS_WRONG_TRANSPORT`.
///
/// # Safety
/// `out_fingerprint` must point to `THETA_FINGERPRINT_LEN` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn theta_session_fingerprint(
    session: ThetaSession,
    out_fingerprint: *mut u8,
) -> ThetaStatus {
    boundary("theta_session_fingerprint", || {
        check_out(out_fingerprint, "out_fingerprint")?;
        let fingerprint = with_object(session, |o| {
            o.fingerprint.ok_or_else(|| {
                FfiError::new(
                    ThetaStatus::WrongTransport,
                    "a session over a custom transport has no certificate",
                )
            })
        })?;
        // SAFETY: checked non-NULL; the caller gives THETA_FINGERPRINT_LEN writable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                fingerprint.0.as_ptr(),
                out_fingerprint,
                THETA_FINGERPRINT_LEN,
            )
        };
        Ok(())
    })
}

/// Mints a join token (host only) admitting `peer` once, valid for `ttl_seconds` from now,
/// and copies its text (`THETA_JOIN_TOKEN_LEN` bytes of ASCII hex, not NUL-terminated)
/// into `buf`, writing its length to `out_len`. When `capacity` is too small, returns
/// `THETA_STATUS_BUFFER_TOO_SMALL` with the needed length in `out_len` (the one output
/// written on that status). `peer` must not be the host's own id (0 unless its world was
/// configured otherwise) and `ttl_seconds` must not be 0; a client session gives
/// `THETA_STATUS_WRONG_ROLE`. Each call mints another token: a token admits one join. A
/// host over a custom transport mints them the same way.
///
/// # Safety
/// `buf` must point to `capacity` writable bytes (NULL when `capacity` is 0); `out_len` to
/// a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_mint_token(
    session: ThetaSession,
    peer: u16,
    ttl_seconds: u64,
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_mint_token", || {
        check_out(out_len, "out_len")?;
        if buf.is_null() && capacity > 0 {
            return Err(FfiError::null("buf"));
        }
        if ttl_seconds == 0 {
            return Err(invalid("ttl_seconds is 0: the token would be expired"));
        }
        let token = with_object(session, |o| {
            let own = o.ready().and_then(|s| s.peer());
            let Some(secret) = &o.secret else {
                return Err(FfiError::new(
                    ThetaStatus::WrongRole,
                    "only a host session mints join tokens",
                ));
            };
            if own == Some(peer) {
                return Err(invalid(format!("peer {peer} is the host's own id")));
            }
            let expires = unix_now().saturating_add(ttl_seconds);
            try_mint(secret, peer, expires, None)
                .map(|t| t.to_text())
                .map_err(|e| invalid(e.to_string()))
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_len, token.len()) };
        if token.len() > capacity {
            return Err(FfiError::new(
                ThetaStatus::BufferTooSmall,
                format!("the token has {} bytes, buffer {capacity}", token.len()),
            ));
        }
        // SAFETY: `buf` has `capacity >= token.len() > 0` writable bytes (non-NULL since
        // capacity > 0).
        unsafe { std::ptr::copy_nonoverlapping(token.as_ptr(), buf, token.len()) };
        Ok(())
    })
}

/// Writes the port the session's endpoint is bound to (the host's listening port, useful
/// after binding port 0). A session over a custom transport has none:
/// `THETA_STATUS_WRONG_TRANSPORT`.
///
/// # Safety
/// `out_port` must point to a writable `uint16_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_local_port(
    session: ThetaSession,
    out_port: *mut u16,
) -> ThetaStatus {
    boundary("theta_session_local_port", || {
        check_out(out_port, "out_port")?;
        let port = with_session(session, |s| {
            if s.is_custom() {
                return Err(FfiError::new(
                    ThetaStatus::WrongTransport,
                    "a session over a custom transport has no socket",
                ));
            }
            s.local_addr()
                .map(|a| a.port())
                .map_err(|e| invalid(format!("no local address: {e}")))
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_port, port) };
        Ok(())
    })
}

/// Writes this session's peer id: the host's, or the one the host gave this client;
/// `THETA_STATUS_NOT_FOUND` on a client that has not joined (yet).
///
/// # Safety
/// `out_peer` must point to a writable `uint16_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_peer(
    session: ThetaSession,
    out_peer: *mut u16,
) -> ThetaStatus {
    boundary("theta_session_peer", || {
        check_out(out_peer, "out_peer")?;
        let peer = with_session(session, |s| {
            s.peer().ok_or_else(|| {
                FfiError::new(ThetaStatus::NotFound, "this client has not joined (yet)")
            })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_peer, peer) };
        Ok(())
    })
}

/// Writes the hash of the session's state: equal on every peer once converged.
///
/// # Safety
/// `out_hash` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_state_hash(
    session: ThetaSession,
    out_hash: *mut u64,
) -> ThetaStatus {
    boundary("theta_session_state_hash", || {
        check_out(out_hash, "out_hash")?;
        let hash = with_session(session, |s| Ok(s.state_hash()))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_hash, hash) };
        Ok(())
    })
}
