//! Session calls: a host or a client over QUIC, owning its world (see `net::session`);
//! sessions over the engine's own transport are made and driven in `transport.rs`.
//!
//! A session handle holds a `Mutex` around the Rust [`Session`] together with what the C
//! side must not handle itself (the host's join secret), and the batch of events handed
//! out by the last poll, whose bytes the C side borrows until the next poll.
//! A client joined by host name holds its join until a background thread has resolved
//! the name (see [`Link`]), so neither joining nor closing blocks the caller.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::background;
use super::boundary::{boundary, FfiError, FfiResult};
use super::handles::HandleTable;
use super::session_config::{config_in, ThetaSessionConfig};
use super::world::{ThetaWorld, WORLDS};
use super::{bytes_in, check_out, write_optional, write_out, ThetaStatus};
use crate::net::compression::TrainError;
use crate::net::session::{
    DisconnectCause, HostError, Session, SessionConfig, SessionError, SessionEvent,
};
use crate::net::tls::{Fingerprint, HostIdentity, ServerTrust};
use crate::net::token::{try_mint, JoinSecret};
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
struct PendingJoin {
    name: String,
    trust: ServerTrust,
    token: String,
    registry: Registry,
    settings: SessionConfig,
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

    /// Takes up to `max` events: this layer's first, then the session's.
    pub(super) fn poll(&mut self, max: usize) -> Vec<SessionEvent> {
        self.advance();
        let n = max.min(self.own_events.len());
        let mut events: Vec<SessionEvent> = self.own_events.drain(..n).collect();
        if let Link::Ready(session) = &mut self.link {
            events.extend(session.poll_events(max - n));
        }
        events
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

/// A certificate, key or CA that is unusable: `THETA_STATUS_TLS`.
fn tls_error(error: crate::net::tls::TlsError) -> FfiError {
    SessionError::Tls(error).into()
}

/// Borrows `len` bytes of UTF-8 text.
///
/// # Safety
/// As `bytes_in`.
unsafe fn text_in<'a>(ptr: *const u8, len: usize, what: &str) -> FfiResult<&'a str> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { bytes_in(ptr, len, what) }?;
    std::str::from_utf8(bytes).map_err(|e| invalid(format!("{what} is not UTF-8: {e}")))
}

/// A socket address as the C side gives it: a literal one, or a host name to resolve.
enum Address {
    /// `"127.0.0.1:7000"`, `"[::1]:7000"`.
    Literal(SocketAddr),
    /// `"name:port"`, with a port that parses.
    Name(String),
}

/// Reads a socket address, `"127.0.0.1:7000"` or `"[::1]:7000"`, or a `"name:port"`
/// (not resolved here).
///
/// # Safety
/// As `bytes_in`.
unsafe fn address_text_in(ptr: *const u8, len: usize, what: &str) -> FfiResult<Address> {
    // SAFETY: forwarded contract.
    let text = unsafe { text_in(ptr, len, what) }?.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Address::Literal(addr));
    }
    let name_and_port = text
        .rsplit_once(':')
        .filter(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok());
    match name_and_port {
        Some(_) => Ok(Address::Name(text.to_owned())),
        None => Err(invalid(format!(
            "{what} {text:?} is not an address (host:port)"
        ))),
    }
}

/// Reads a socket address; a `"name:port"` is resolved here (a host's bind address, which
/// names this machine: `localhost` or its own name, answered without the network).
///
/// # Safety
/// As `bytes_in`.
unsafe fn address_in(ptr: *const u8, len: usize, what: &str) -> FfiResult<SocketAddr> {
    // SAFETY: forwarded contract.
    match unsafe { address_text_in(ptr, len, what) }? {
        Address::Literal(addr) => Ok(addr),
        Address::Name(text) => first_address(&text)
            .map_err(|e| invalid(format!("{what} {text:?} does not resolve: {e}"))),
    }
}

/// The first address `text` (`name:port`) resolves to.
fn first_address(text: &str) -> std::io::Result<SocketAddr> {
    text.to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Hosts a session on `bind` (UTF-8, e.g. `"127.0.0.1:7000"`; port 0 picks a free port,
/// see `theta_session_local_port`) with a fresh self-signed certificate (clients pin its
/// `theta_session_fingerprint`) and writes its handle to `out_session`.
///
/// The world is MOVED into the session, which holds the authoritative state from now on:
/// on success the `world` handle is freed (later calls with it give
/// `THETA_STATUS_INVALID_HANDLE`); write through `theta_session_spawn`/`_set`/... instead.
/// A world that another thread is using right now is refused with
/// `THETA_STATUS_INVALID_ARGUMENT` and stays valid. Entities spawned by the host belong to
/// the world's `local_peer`.
///
/// `secret_hex` is the join secret as 64 hex digits, to keep tokens valid across host
/// restarts; NULL with `secret_hex_len` 0 generates a random one. Either way the secret
/// never leaves the session: invite clients with `theta_session_mint_token`. `config` may
/// be NULL for the defaults; one with an unknown `ThetaCodec` or a zstd level outside
/// zstd's range is `THETA_STATUS_INVALID_ARGUMENT` and leaves the world valid.
///
/// The session runs one network thread of its own; `theta_session_free` closes its
/// connections and joins it. Any failure (a bad or busy address, an invalid config)
/// leaves the world valid and unchanged under its handle.
///
/// # Safety
/// `bind` must point to `bind_len` readable bytes; `secret_hex` to `secret_hex_len`
/// readable bytes (or be NULL when that is 0); `config` must be NULL or point to a
/// `ThetaSessionConfig`; `out_session` to a writable `ThetaSession`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_host(
    bind: *const u8,
    bind_len: usize,
    world: ThetaWorld,
    secret_hex: *const u8,
    secret_hex_len: usize,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_host", || {
        // SAFETY: per the contract.
        unsafe {
            host_with(
                bind,
                bind_len,
                world,
                secret_hex,
                secret_hex_len,
                config,
                out_session,
                || HostIdentity::self_signed(&[]).map_err(tls_error),
            )
        }
    })
}

/// Hosts as `theta_session_host` does, presenting the certificate chain `cert_chain_pem`
/// (leaf first) and its private key `key_pem` (both PEM text) instead of a self-signed
/// certificate, so clients can verify it against a CA (`theta_session_join_ca`) or pin
/// it. A chain or key that does not parse, or a key that does not match the leaf, is
/// `THETA_STATUS_TLS` and leaves the world valid.
///
/// # Safety
/// As `theta_session_host`; `cert_chain_pem` and `key_pem` must point to their lengths of
/// readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn theta_session_host_pem(
    bind: *const u8,
    bind_len: usize,
    world: ThetaWorld,
    cert_chain_pem: *const u8,
    cert_chain_pem_len: usize,
    key_pem: *const u8,
    key_pem_len: usize,
    secret_hex: *const u8,
    secret_hex_len: usize,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_host_pem", || {
        // SAFETY: per the contract.
        let chain = unsafe { text_in(cert_chain_pem, cert_chain_pem_len, "cert_chain_pem") }?;
        // SAFETY: per the contract.
        let key = unsafe { text_in(key_pem, key_pem_len, "key_pem") }?;
        // SAFETY: per the contract.
        unsafe {
            host_with(
                bind,
                bind_len,
                world,
                secret_hex,
                secret_hex_len,
                config,
                out_session,
                || HostIdentity::from_pem(chain, key).map_err(tls_error),
            )
        }
    })
}

/// The body of the host calls, with the identity made by `identity` once the arguments
/// are checked and before the world is taken.
///
/// # Safety
/// As `theta_session_host`.
#[allow(clippy::too_many_arguments)]
unsafe fn host_with(
    bind: *const u8,
    bind_len: usize,
    world: ThetaWorld,
    secret_hex: *const u8,
    secret_hex_len: usize,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
    identity: impl FnOnce() -> FfiResult<HostIdentity>,
) -> FfiResult {
    check_out(out_session, "out_session")?;
    // SAFETY: per the contract.
    let bind = unsafe { address_in(bind, bind_len, "bind") }?;
    // SAFETY: per the contract.
    let secret = unsafe { secret_in(secret_hex, secret_hex_len) }?;
    // SAFETY: per the contract.
    let settings = unsafe { config_in(config) }?;
    let identity = identity()?;
    let fingerprint = identity.fingerprint();
    let session = take_world(world, |w| {
        Session::host(bind, w, &identity, secret.clone(), settings)
    })?;
    let handle = insert(SessionObject::new(session, Some(secret), Some(fingerprint)));
    // SAFETY: checked non-NULL.
    unsafe { write_out(out_session, handle) };
    Ok(())
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

/// Joins the host at `addr` (UTF-8, e.g. `"192.168.1.20:7000"`, or `"name:port"`) and
/// writes the session's handle to `out_session`. The host's
/// certificate must have the SHA-256 `fingerprint` (`THETA_FINGERPRINT_LEN` bytes, from
/// the host's `theta_session_fingerprint`); `token` is a join token's text (from the
/// host's `theta_session_mint_token`). `registry_world` is NOT consumed: only its
/// component types are read, and they must equal the host's. `config` may be NULL; an
/// invalid one is refused as by `theta_session_host`. A client decodes whatever codec the
/// host sends; its own codecs apply to what it sends.
///
/// Returns at once, before any packet was exchanged and before a host name is resolved
/// (a background thread resolves it; until it has, calls that need the connection give
/// `THETA_STATUS_NOT_CONNECTED`, while tick, poll, stats and free work as usual): the
/// outcome arrives as a `THETA_SESSION_EVENT_KIND_JOINED` or
/// `THETA_SESSION_EVENT_KIND_DISCONNECTED` event (with the reason, e.g. an expired, forged
/// or malformed token, a fingerprint or registry mismatch, a name that did not resolve)
/// from `theta_session_poll_events` after some `theta_session_tick` calls. The session
/// runs one network thread of its own; `theta_session_free` or `theta_session_close`
/// leaves and joins it.
///
/// # Safety
/// `addr` must point to `addr_len` readable bytes; `fingerprint` to
/// `THETA_FINGERPRINT_LEN` readable bytes; `token` to `token_len` readable bytes;
/// `config` must be NULL or point to a `ThetaSessionConfig`; `out_session` to a writable
/// `ThetaSession`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_join(
    addr: *const u8,
    addr_len: usize,
    fingerprint: *const u8,
    token: *const u8,
    token_len: usize,
    registry_world: ThetaWorld,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_join", || {
        check_out(out_session, "out_session")?;
        if fingerprint.is_null() {
            return Err(FfiError::null("fingerprint"));
        }
        // SAFETY: non-NULL and THETA_FINGERPRINT_LEN readable bytes per the contract.
        let pinned = unsafe { bytes_in(fingerprint, THETA_FINGERPRINT_LEN, "fingerprint") }?;
        let mut bytes = [0u8; THETA_FINGERPRINT_LEN];
        bytes.copy_from_slice(pinned);
        let fingerprint = Fingerprint(bytes);
        // SAFETY: per the contract.
        unsafe {
            join_with(
                addr,
                addr_len,
                ServerTrust::Fingerprint(fingerprint),
                None,
                token,
                token_len,
                registry_world,
                config,
                out_session,
            )
        }
    })
}

/// Joins as `theta_session_join` does, but verifies the host's certificate chain against
/// the CA certificates in `ca_pem` (PEM text, one or more) for the host name `server_name`
/// (UTF-8) instead of pinning a fingerprint. `theta_session_fingerprint` then gives all
/// zeros. CA text that does not parse, or holds no certificate, is `THETA_STATUS_TLS`; a
/// host whose chain does not verify is refused during the handshake, reported as a
/// `DISCONNECTED` event.
///
/// # Safety
/// As `theta_session_join`; `ca_pem` and `server_name` must point to their lengths of
/// readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn theta_session_join_ca(
    addr: *const u8,
    addr_len: usize,
    ca_pem: *const u8,
    ca_pem_len: usize,
    server_name: *const u8,
    server_name_len: usize,
    token: *const u8,
    token_len: usize,
    registry_world: ThetaWorld,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_join_ca", || {
        check_out(out_session, "out_session")?;
        // SAFETY: per the contract.
        let ca = unsafe { text_in(ca_pem, ca_pem_len, "ca_pem") }?;
        // SAFETY: per the contract.
        let name = unsafe { text_in(server_name, server_name_len, "server_name") }?;
        use rustls::pki_types::pem::PemObject;
        let roots = rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| FfiError::new(ThetaStatus::Tls, format!("ca_pem: {e}")))?;
        if roots.is_empty() {
            return Err(FfiError::new(
                ThetaStatus::Tls,
                "ca_pem holds no certificate",
            ));
        }
        // SAFETY: per the contract.
        unsafe {
            join_with(
                addr,
                addr_len,
                ServerTrust::CaRoots(roots),
                Some(name.to_owned()),
                token,
                token_len,
                registry_world,
                config,
                out_session,
            )
        }
    })
}

/// The body of the join calls.
///
/// # Safety
/// As `theta_session_join` for the pointers it takes.
#[allow(clippy::too_many_arguments)]
unsafe fn join_with(
    addr: *const u8,
    addr_len: usize,
    trust: ServerTrust,
    server_name: Option<String>,
    token: *const u8,
    token_len: usize,
    registry_world: ThetaWorld,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> FfiResult {
    // SAFETY: per the contract.
    let addr = unsafe { address_text_in(addr, addr_len, "addr") }?;
    // SAFETY: per the contract.
    let token = unsafe { text_in(token, token_len, "token") }?;
    // SAFETY: per the contract.
    let mut settings = unsafe { config_in(config) }?;
    if let Some(name) = server_name {
        settings.server_name = name;
    }
    let fingerprint = match &trust {
        ServerTrust::Fingerprint(pinned) => *pinned,
        ServerTrust::CaRoots(_) => Fingerprint([0; THETA_FINGERPRINT_LEN]),
    };
    let registry = registry_of(registry_world)?;
    let object = match addr {
        Address::Literal(addr) => SessionObject::new(
            Session::join(addr, &trust, token, &registry, settings)?,
            None,
            Some(fingerprint),
        ),
        Address::Name(name) => {
            let (tell, answer) = mpsc::sync_channel(1);
            let lookup = name.clone();
            background::spawn("theta-resolve", move || {
                // The session may be gone by now: then nobody listens, which is fine.
                let _ = tell.send(first_address(&lookup));
            });
            SessionObject {
                link: Link::Resolving {
                    answer,
                    join: Box::new(PendingJoin {
                        name,
                        trust,
                        token: token.to_owned(),
                        registry,
                        settings,
                    }),
                },
                secret: None,
                fingerprint: Some(fingerprint),
                polled: Vec::new(),
                own_events: VecDeque::new(),
            }
        }
    };
    let handle = insert(object);
    // SAFETY: checked non-NULL by the callers.
    unsafe { write_out(out_session, handle) };
    Ok(())
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
/// with cause `THETA_DISCONNECT_CAUSE_TIMED_OUT`, say), resuming this client's state: the
/// host sends what changed since (no snapshot) while it keeps that state
/// (`ThetaSessionConfig::resume_grace_ms`), and refuses later (join again with a fresh
/// token then). Over QUIC the session dials the host again; over a custom transport open
/// a new connection and report it with `theta_session_transport_connected`. `JOINED` or
/// `DISCONNECTED` follows. `THETA_STATUS_WRONG_ROLE` on a host;
/// `THETA_STATUS_CANNOT_RESUME` when the client was never admitted, is still connected,
/// or has no resume token.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> FfiResult<Address> {
        // SAFETY: a valid byte range.
        unsafe { address_text_in(text.as_ptr(), text.len(), "addr") }
    }

    #[test]
    fn literal_addresses_parse_here_and_names_wait_for_a_resolver() {
        assert!(matches!(address("127.0.0.1:7000"), Ok(Address::Literal(a)) if a.port() == 7000));
        assert!(matches!(address(" [::1]:9 "), Ok(Address::Literal(a)) if a.is_ipv6()));
        assert!(
            matches!(address("host.example:7000"), Ok(Address::Name(n)) if n == "host.example:7000")
        );
        for bad in ["", "no-port", ":7000", "name:99999", "name:port"] {
            let err = address(bad).err().expect(bad);
            assert_eq!(err.status, ThetaStatus::InvalidArgument, "{bad}");
        }
    }
}
