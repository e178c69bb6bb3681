//! Session calls: a host or a client over QUIC, owning its world (see `net::session`).
//!
//! A session handle holds a `Mutex` around the Rust [`Session`] together with what the C
//! side must not handle itself (the host's TLS identity and join secret), and the batch of
//! events handed out by the last poll, whose bytes the C side borrows until the next poll.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::boundary::{boundary, FfiError, FfiResult};
use super::compression::codec_in;
use super::handles::HandleTable;
use super::replica::ThetaEventKind;
use super::world::{copy_value, value_of, ThetaChange, ThetaWorld, WORLDS};
use super::{bytes_in, check_out, write_optional, write_out, ThetaStatus};
use crate::net::compression::MAX_DICTIONARY_BYTES;
use crate::net::session::{
    DisconnectCause, PeerDiagnostics, Session, SessionConfig, SessionError, SessionEvent,
};
use crate::net::tls::{Fingerprint, HostIdentity, ServerTrust};
use crate::net::token::{try_mint, JoinSecret};
use crate::registry::ComponentId;
use crate::replica::EventKind;
use crate::wire::codec::MessageKind;
use crate::world::{Change, EntityId};

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

/// Settings of a new session; pass NULL for the defaults. Every field 0 means its default,
/// so a zeroed struct is the default configuration.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaSessionConfig {
    /// A connection silent this long is closed (default 10 000 ms).
    pub idle_timeout_ms: u32,
    /// Keep-alive interval, well below the idle timeout (default 2 000 ms).
    pub keep_alive_ms: u32,
    /// Bytes of state datagrams each peer may receive per tick (default 256 KiB).
    pub budget_bytes_per_tick: u32,
    /// Snapshot chunk bound for late joiners (default 16 KiB).
    pub max_chunk_bytes: u32,
    /// How long a client waits for the handshake before giving up (default 5 000 ms).
    pub connect_timeout_ms: u32,
    /// How long a host keeps a dropped client's state for it to resume (default 30 000 ms).
    pub resume_grace_ms: u32,
    /// Codec of snapshot chunks, a `ThetaCodec` (default zstd).
    pub snapshot_chunk_codec: u8,
    /// Codec of delta frames, a `ThetaCodec` (default zstd with the session's dictionary).
    pub delta_frame_codec: u8,
    /// Codec of state datagrams, a `ThetaCodec` (default zstd with the session's
    /// dictionary).
    pub datagram_codec: u8,
    /// Padding; must be 0.
    pub reserved: [u8; 1],
    /// zstd level of snapshot chunks (default 3). Every level is checked against zstd's
    /// range (1 fastest to 22, negative levels faster still) and ignored with
    /// `THETA_CODEC_NONE`.
    pub snapshot_chunk_level: i32,
    /// zstd level of delta frames (default 1).
    pub delta_frame_level: i32,
    /// zstd level of state datagrams (default 1).
    pub datagram_level: i32,
    /// Host: samples of a kind using `THETA_CODEC_ZSTD_DICT` recorded before its first
    /// dictionary is trained automatically (default 512); `THETA_TRAIN_ON_DEMAND_ONLY`
    /// trains only when `theta_session_train_dictionary` asks.
    pub train_after_samples: u32,
    /// Host: bytes asked of the dictionary trainer (default 16 KiB), capped at
    /// `THETA_MAX_DICTIONARY_BYTES` (and at least 1 KiB).
    pub dictionary_bytes: u32,
}

/// `ThetaSessionConfig::train_after_samples` to train dictionaries only on demand
/// (`theta_session_train_dictionary`), never automatically.
pub const THETA_TRAIN_ON_DEMAND_ONLY: u32 = u32::MAX;
/// Largest dictionary a host trains or a client accepts, in bytes: the cap of
/// `ThetaSessionConfig::dictionary_bytes`.
pub const THETA_MAX_DICTIONARY_BYTES: u32 = 128 << 10;
const _: () = assert!(THETA_MAX_DICTIONARY_BYTES as usize == MAX_DICTIONARY_BYTES);

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
    /// names the failed check of a refused join. The session stays valid but inert: free it.
    Disconnected = 19,
    /// A write to an entity the writer does not own was refused and not applied: on the
    /// host `peer` is the offending client, on that client its own id; `entity` and
    /// `component` (0 for a spawn or despawn) name the write, `data` is the reason.
    WriteRejected = 20,
    /// Host: a connection's join request was refused (nothing was allocated for it);
    /// `data` is the reason.
    JoinRefused = 21,
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
    /// text in `data` says more); 0 otherwise.
    pub cause: u8,
}

/// Figures of a session.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaSessionStats {
    /// The current tick (host) or the newest host tick applied (client).
    pub tick: u64,
    /// Live entities.
    pub entities: u64,
    /// Stored (entity, component) values.
    pub components: u64,
    /// Connections: the host's clients, or 1 on a client connected to its host.
    pub peer_count: u64,
    /// State datagrams dropped because the inbound queue was full.
    pub inbound_dropped: u64,
}

/// Transport figures of one connection of a session. Blittable.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaPeerStats {
    /// The peer at the other end (on a client: the client's own id).
    pub peer: u16,
    /// Padding; 0.
    pub reserved: [u8; 6],
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u64,
    /// UDP bytes sent, QUIC headers included.
    pub wire_bytes_sent: u64,
    /// UDP bytes received.
    pub wire_bytes_received: u64,
    /// UDP datagrams sent.
    pub packets_sent: u64,
    /// UDP datagrams received.
    pub packets_received: u64,
    /// QUIC packets the connection counted as lost.
    pub packets_lost: u64,
    /// Payload bytes of state datagrams and stream messages sent.
    pub payload_bytes_sent: u64,
    /// Payload bytes received.
    pub payload_bytes_received: u64,
    /// Encoded snapshot bytes sent (host) or received (client).
    pub snapshot_bytes: u64,
    /// State datagrams sent.
    pub datagrams_sent: u64,
    /// State datagrams the peer acknowledged.
    pub datagrams_acked: u64,
    /// State datagrams never acknowledged (their keys were re-sent as newer state).
    pub datagrams_lost: u64,
    /// Encoded bytes of the state datagrams sent.
    pub datagram_bytes: u64,
    /// Values too large for a datagram, sent on the reliable stream.
    pub stream_frames: u64,
    /// Keys skipped in the last tick because the byte budget was spent.
    pub deferred_keys: u64,
    /// Keys waiting for an acknowledgement.
    pub pending_keys: u64,
    /// Writes of this peer refused (not the owner).
    pub writes_rejected: u64,
    /// State datagrams or frames from this peer that failed validation.
    pub malformed: u64,
}

/// A session and what belongs with it on this side of the C ABI.
pub(super) struct SessionObject {
    pub(super) session: Session,
    /// The host's identity and join secret; `None` on a client.
    host: Option<(HostIdentity, JoinSecret)>,
    /// The host's certificate fingerprint: its own on a host, the pinned one on a client.
    fingerprint: Fingerprint,
    /// The events of the last poll, borrowed by the C side until the next one.
    polled: Vec<SessionEvent>,
}

static SESSIONS: HandleTable<Mutex<SessionObject>> = HandleTable::new(6);
const KIND: &str = "session";

impl From<SessionError> for FfiError {
    fn from(error: SessionError) -> Self {
        FfiError::new(ThetaStatus::InvalidArgument, error.to_string())
    }
}

pub(super) fn with_session<R>(
    session: ThetaSession,
    f: impl FnOnce(&mut SessionObject) -> FfiResult<R>,
) -> FfiResult<R> {
    SESSIONS.with(session.id, KIND, f)
}

fn invalid(message: impl Into<String>) -> FfiError {
    FfiError::new(ThetaStatus::InvalidArgument, message)
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

/// Reads a socket address, `"127.0.0.1:7000"` or `"[::1]:7000"`; a `"name:port"` is
/// resolved (which may block on DNS) to its first address.
///
/// # Safety
/// As `bytes_in`.
unsafe fn address_in(ptr: *const u8, len: usize, what: &str) -> FfiResult<SocketAddr> {
    // SAFETY: forwarded contract.
    let text = unsafe { text_in(ptr, len, what) }?.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| invalid(format!("{what} {text:?} is not an address (host:port)")))
}

/// The settings of a `ThetaSessionConfig`, NULL and 0 meaning the defaults; an unknown
/// codec, a level outside zstd's range or non-zero padding is `InvalidArgument`.
///
/// # Safety
/// `config` must be NULL or point to a `ThetaSessionConfig`.
unsafe fn config_in(config: *const ThetaSessionConfig) -> FfiResult<SessionConfig> {
    let mut settings = SessionConfig::default();
    // SAFETY: NULL or a valid config, per the contract.
    let Some(config) = (unsafe { config.as_ref() }) else {
        return Ok(settings);
    };
    if config.reserved != [0] {
        return Err(invalid("ThetaSessionConfig.reserved must be 0"));
    }
    for (kind, codec, level) in [
        (
            MessageKind::SnapshotChunk,
            config.snapshot_chunk_codec,
            config.snapshot_chunk_level,
        ),
        (
            MessageKind::DeltaFrame,
            config.delta_frame_codec,
            config.delta_frame_level,
        ),
        (
            MessageKind::Datagram,
            config.datagram_codec,
            config.datagram_level,
        ),
    ] {
        let choice = &mut settings.codec.kind_mut(kind).choice;
        *choice = codec_in(kind, codec, level, *choice)?;
    }
    settings.train_after_samples = match config.train_after_samples {
        0 => settings.train_after_samples,
        THETA_TRAIN_ON_DEMAND_ONLY => 0,
        n => u64::from(n),
    };
    if config.dictionary_bytes != 0 {
        settings.dictionary_bytes = (config.dictionary_bytes as usize).min(MAX_DICTIONARY_BYTES);
    }
    let ms = |ms: u32| std::time::Duration::from_millis(u64::from(ms));
    if config.idle_timeout_ms != 0 {
        settings.idle_timeout = ms(config.idle_timeout_ms);
    }
    if config.keep_alive_ms != 0 {
        settings.keep_alive = ms(config.keep_alive_ms);
    }
    if config.budget_bytes_per_tick != 0 {
        settings.budget_bytes_per_tick = config.budget_bytes_per_tick as usize;
    }
    if config.max_chunk_bytes != 0 {
        settings.max_chunk_bytes = config.max_chunk_bytes as usize;
    }
    if config.connect_timeout_ms != 0 {
        settings.connect_timeout = ms(config.connect_timeout_ms);
    }
    if config.resume_grace_ms != 0 {
        settings.resume_grace = ms(config.resume_grace_ms);
    }
    Ok(settings)
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
                || HostIdentity::self_signed(&[]).map_err(|e| invalid(e.to_string())),
            )
        }
    })
}

/// Hosts as `theta_session_host` does, presenting the certificate chain `cert_chain_pem`
/// (leaf first) and its private key `key_pem` (both PEM text) instead of a self-signed
/// certificate, so clients can verify it against a CA (`theta_session_join_ca`) or pin
/// it. A chain or key that does not parse, or a key that does not match the leaf, is
/// `THETA_STATUS_INVALID_ARGUMENT` and leaves the world valid.
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
                || HostIdentity::from_pem(chain, key).map_err(|e| invalid(e.to_string())),
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
    let secret = if secret_hex_len == 0 {
        JoinSecret::try_generate().map_err(|e| invalid(e.to_string()))?
    } else {
        // SAFETY: per the contract.
        let text = unsafe { text_in(secret_hex, secret_hex_len, "secret_hex") }?;
        JoinSecret::from_hex(text).map_err(|e| invalid(e.to_string()))?
    };
    // SAFETY: per the contract.
    let settings = unsafe { config_in(config) }?;
    let identity = identity()?;
    // The world leaves its handle only if the session starts; otherwise it goes back.
    let poisoned = |w: &Mutex<crate::World>| {
        if w.is_poisoned() {
            return Err(FfiError::new(
                ThetaStatus::Panic,
                "this world is unusable after a panic in an earlier call; free it",
            ));
        }
        Ok(())
    };
    let session = WORLDS.take_with(world.id, "world", poisoned, |w| {
        let world = w.into_inner().unwrap_or_else(PoisonError::into_inner);
        Session::host(bind, world, &identity, secret.clone(), settings)
            .map_err(|e| (invalid(e.error.to_string()), Box::new(Mutex::new(*e.world))))
    })?;
    let fingerprint = identity.fingerprint();
    let id = SESSIONS.insert(Mutex::new(SessionObject {
        session,
        host: Some((identity, secret)),
        fingerprint,
        polled: Vec::new(),
    }));
    // SAFETY: checked non-NULL.
    unsafe { write_out(out_session, ThetaSession { id }) };
    Ok(())
}

/// Joins the host at `addr` (UTF-8, e.g. `"192.168.1.20:7000"`; a `name:port` is resolved,
/// which may block on DNS) and writes the session's handle to `out_session`. The host's
/// certificate must have the SHA-256 `fingerprint` (`THETA_FINGERPRINT_LEN` bytes, from
/// the host's `theta_session_fingerprint`); `token` is a join token's text (from the
/// host's `theta_session_mint_token`). `registry_world` is NOT consumed: only its
/// component types are read, and they must equal the host's. `config` may be NULL; an
/// invalid one is refused as by `theta_session_host`. A client decodes whatever codec the
/// host sends; its own codecs apply to what it sends.
///
/// Returns at once, before any packet was exchanged: the outcome arrives as a
/// `THETA_SESSION_EVENT_KIND_JOINED` or `THETA_SESSION_EVENT_KIND_DISCONNECTED` event
/// (with the reason, e.g. an expired, forged or malformed token, a fingerprint or registry
/// mismatch) from `theta_session_poll_events` after some `theta_session_tick` calls. The
/// session runs one network thread of its own; `theta_session_free` leaves and joins it.
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
/// zeros. Unparsable CA text is `THETA_STATUS_INVALID_ARGUMENT`; a host whose chain does
/// not verify is refused during the handshake, reported as a `DISCONNECTED` event.
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
            .map_err(|e| invalid(format!("ca_pem: {e}")))?;
        if roots.is_empty() {
            return Err(invalid("ca_pem holds no certificate"));
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
    let addr = unsafe { address_in(addr, addr_len, "addr") }?;
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
    let registry = WORLDS.with(registry_world.id, "world", |w| Ok(w.registry().clone()))?;
    let session = Session::join(addr, &trust, token, &registry, settings)?;
    let id = SESSIONS.insert(Mutex::new(SessionObject {
        session,
        host: None,
        fingerprint,
        polled: Vec::new(),
    }));
    // SAFETY: checked non-NULL by the callers.
    unsafe { write_out(out_session, ThetaSession { id }) };
    Ok(())
}

/// Frees a session: an orderly shutdown. Its connections are closed with a reason (clients
/// of a host get a `DISCONNECTED` event saying the host shut down; the host of a client a
/// `PEER_LEFT`), and its network thread is joined, which may take up to about 1.5 s while
/// the close goes out. Its world, pending events and the data of polled events go with it.
/// The null handle is a no-op. A call running on the session on another thread finishes
/// first; the shutdown then happens when it returns.
#[no_mangle]
pub extern "C" fn theta_session_free(session: ThetaSession) -> ThetaStatus {
    boundary("theta_session_free", || SESSIONS.free(session.id, KIND))
}

/// One network tick: applies what arrived (clients: the host's state; host: its clients'
/// writes), queues events, sends what changed, and on the host closes the world's tick.
/// Never blocks on the network; call it once per engine frame or at the replication rate.
#[no_mangle]
pub extern "C" fn theta_session_tick(session: ThetaSession) -> ThetaStatus {
    boundary("theta_session_tick", || {
        with_session(session, |o| {
            o.session.tick();
            Ok(())
        })
    })
}

/// Writes the host certificate's SHA-256 fingerprint (`THETA_FINGERPRINT_LEN` bytes) to
/// `out_fingerprint`: on a host its own, what clients pass to `theta_session_join`; on a
/// client the one it pins.
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
        let fingerprint = with_session(session, |o| Ok(o.fingerprint))?;
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
/// `THETA_STATUS_INVALID_ARGUMENT`. Each call mints another token: a token admits one join.
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
        let token = with_session(session, |o| {
            let Some((_, secret)) = &o.host else {
                return Err(invalid("only a host session mints join tokens"));
            };
            if o.session.peer() == Some(peer) {
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
/// after binding port 0).
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
        let port = with_session(session, |o| {
            o.session
                .local_addr()
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
        let peer = with_session(session, |o| {
            o.session.peer().ok_or_else(|| {
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
        let hash = with_session(session, |o| Ok(o.session.state_hash()))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_hash, hash) };
        Ok(())
    })
}

/// Creates an entity owned by this peer and writes its id: on the host in the host's id
/// range, on a client in the client's (a client that has not joined yet gets
/// `THETA_STATUS_NOT_OWNER`). It reaches the other peers with the next ticks.
///
/// # Safety
/// `out_entity` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_spawn(
    session: ThetaSession,
    out_entity: *mut u64,
) -> ThetaStatus {
    boundary("theta_session_spawn", || {
        check_out(out_entity, "out_entity")?;
        let entity = with_session(session, |o| Ok(o.session.spawn()?))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_entity, entity.0) };
        Ok(())
    })
}

/// Writes a component value (`len` bytes, copied) of an entity this peer owns, as
/// `theta_world_set`; an entity of another peer gives `THETA_STATUS_NOT_OWNER` and nothing
/// changes. `out_change` (may be NULL) receives a `ThetaChange`.
///
/// # Safety
/// `data` must point to `len` readable bytes (may be NULL when `len` is 0); `out_change`
/// must be NULL or point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_set(
    session: ThetaSession,
    entity: u64,
    component: u32,
    data: *const u8,
    len: usize,
    out_change: *mut u8,
) -> ThetaStatus {
    boundary("theta_session_set", || {
        // SAFETY: per the contract.
        let value = unsafe { bytes_in(data, len, "data") }?;
        let change = with_session(session, |o| {
            Ok(o.session
                .set(EntityId(entity), ComponentId(component), value)?)
        })?;
        let change = match change {
            Change::Unchanged => ThetaChange::Unchanged,
            Change::Inserted => ThetaChange::Inserted,
            Change::Updated => ThetaChange::Updated,
        };
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_change, change as u8) };
        Ok(())
    })
}

/// Removes a component from an entity this peer owns (`THETA_STATUS_NOT_OWNER` for
/// another peer's); `out_removed` (may be NULL) receives 1 if the entity held it, else 0.
///
/// # Safety
/// `out_removed` must be NULL or point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_remove(
    session: ThetaSession,
    entity: u64,
    component: u32,
    out_removed: *mut u8,
) -> ThetaStatus {
    boundary("theta_session_remove", || {
        let removed = with_session(session, |o| {
            Ok(o.session.remove(EntityId(entity), ComponentId(component))?)
        })?;
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_removed, u8::from(removed)) };
        Ok(())
    })
}

/// Destroys an entity this peer owns (`THETA_STATUS_NOT_OWNER` for another peer's,
/// `THETA_STATUS_DEAD_ENTITY` if not alive).
#[no_mangle]
pub extern "C" fn theta_session_despawn(session: ThetaSession, entity: u64) -> ThetaStatus {
    boundary("theta_session_despawn", || {
        with_session(session, |o| Ok(o.session.despawn(EntityId(entity))?))
    })
}

/// Copies a value of the session's state (any peer's entity), as `theta_world_get`.
///
/// # Safety
/// As `theta_world_get`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_get(
    session: ThetaSession,
    entity: u64,
    component: u32,
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_get", || {
        // SAFETY: per the contract.
        unsafe {
            copy_value(buf, capacity, out_len, || {
                with_session(session, |o| value_of(o.session.world(), entity, component))
            })
        }
    })
}

/// Writes 1 to `out_alive` if the entity is alive in the session's state, else 0.
///
/// # Safety
/// `out_alive` must point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_is_alive(
    session: ThetaSession,
    entity: u64,
    out_alive: *mut u8,
) -> ThetaStatus {
    boundary("theta_session_is_alive", || {
        check_out(out_alive, "out_alive")?;
        let alive = with_session(session, |o| {
            Ok(o.session.world().is_alive(EntityId(entity)))
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_alive, u8::from(alive)) };
        Ok(())
    })
}

/// The C form of an event, borrowing its bytes from `event`.
fn event_out(event: &SessionEvent) -> ThetaSessionEvent {
    let mut out = ThetaSessionEvent {
        entity: 0,
        tick: 0,
        data: std::ptr::null(),
        data_len: 0,
        component: 0,
        peer: 0,
        kind: 0,
        cause: 0,
    };
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
        let count = with_session(session, |o| {
            o.polled = o.session.poll_events(capacity);
            for (i, event) in o.polled.iter().enumerate() {
                // SAFETY: `i < polled.len() <= capacity` and the caller gives `capacity`
                // writable events (non-NULL since capacity > 0 here).
                unsafe { out_events.add(i).write(event_out(event)) };
            }
            Ok(o.polled.len())
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_count, count) };
        Ok(())
    })
}

/// Writes the session's figures.
///
/// # Safety
/// `out_stats` must point to a writable `ThetaSessionStats`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_stats(
    session: ThetaSession,
    out_stats: *mut ThetaSessionStats,
) -> ThetaStatus {
    boundary("theta_session_stats", || {
        check_out(out_stats, "out_stats")?;
        let stats = with_session(session, |o| {
            let d = o.session.diagnostics();
            Ok(ThetaSessionStats {
                tick: d.tick,
                entities: d.entities,
                components: d.components,
                peer_count: d.peers.len() as u64,
                inbound_dropped: d.inbound_dropped,
            })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_stats, stats) };
        Ok(())
    })
}

fn peer_stats(p: &PeerDiagnostics) -> ThetaPeerStats {
    ThetaPeerStats {
        peer: p.peer,
        reserved: [0; 6],
        rtt_us: u64::try_from(p.rtt.as_micros()).unwrap_or(u64::MAX),
        wire_bytes_sent: p.wire_bytes_sent,
        wire_bytes_received: p.wire_bytes_received,
        packets_sent: p.packets_sent,
        packets_received: p.packets_received,
        packets_lost: p.packets_lost,
        payload_bytes_sent: p.payload_bytes_sent,
        payload_bytes_received: p.payload_bytes_received,
        snapshot_bytes: p.snapshot_bytes,
        datagrams_sent: p.outbox.datagrams_sent,
        datagrams_acked: p.outbox.datagrams_acked,
        datagrams_lost: p.outbox.datagrams_lost,
        datagram_bytes: p.outbox.datagram_bytes,
        stream_frames: p.outbox.stream_frames,
        deferred_keys: p.outbox.deferred_keys,
        pending_keys: p.pending_keys,
        writes_rejected: p.writes_rejected,
        malformed: p.malformed,
    }
}

/// Writes the figures of each connection (the host's clients in peer order; a client's
/// one connection to its host, once joined) to `out_stats` and their number to
/// `out_count`. When `capacity` is too small, returns `THETA_STATUS_BUFFER_TOO_SMALL` with
/// the number of connections in `out_count` (the one output written on that status):
/// pass NULL and 0 to ask for it.
///
/// # Safety
/// `out_stats` must point to `capacity` writable `ThetaPeerStats` (may be NULL when
/// `capacity` is 0); `out_count` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_peer_stats(
    session: ThetaSession,
    out_stats: *mut ThetaPeerStats,
    capacity: usize,
    out_count: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_peer_stats", || {
        check_out(out_count, "out_count")?;
        if capacity > 0 && out_stats.is_null() {
            return Err(FfiError::null("out_stats"));
        }
        let peers = with_session(session, |o| Ok(o.session.diagnostics().peers))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_count, peers.len()) };
        if peers.len() > capacity {
            return Err(FfiError::new(
                ThetaStatus::BufferTooSmall,
                format!("{} connections, room for {capacity}", peers.len()),
            ));
        }
        for (i, peer) in peers.iter().enumerate() {
            // SAFETY: `i < peers.len() <= capacity` and the caller gives `capacity`
            // writable structs (non-NULL since capacity > 0 here).
            unsafe { out_stats.add(i).write(peer_stats(peer)) };
        }
        Ok(())
    })
}

/// Copies a human-readable panel of the session's figures (a summary line, then one line
/// per connection: peer, RTT, wire KB sent and received, packets, losses, datagrams sent /
/// acked / lost, pending keys, snapshot bytes, writes rejected, malformed; then, once
/// anything was compressed, one line per message kind: codec, frames, KB before and after
/// compression, ratio, dictionary hit rate, dictionaries held, frames received and decode
/// failures; and one line per component type: value KB sent and the wire KB they cost) into `buf`
/// (UTF-8, lines ending in `\n`, NUL-terminated, truncated to `len - 1` bytes) and writes
/// the full length (without NUL) to `out_len`. `buf` may be NULL when `len` is 0, to ask
/// for the length; the panel may grow between two calls.
///
/// # Safety
/// `buf` must point to `len` writable bytes; `out_len` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_diagnostics_text(
    session: ThetaSession,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_diagnostics_text", || {
        check_out(out_len, "out_len")?;
        if buf.is_null() && len > 0 {
            return Err(FfiError::null("buf"));
        }
        let panel = with_session(session, |o| Ok(o.session.diagnostics().text_panel()))?;
        if len > 0 {
            let n = panel.len().min(len - 1);
            // SAFETY: the caller gives `len` writable bytes at `buf` (checked non-NULL); we
            // write `n + 1 <= len` of them.
            unsafe {
                std::ptr::copy_nonoverlapping(panel.as_ptr(), buf, n);
                *buf.add(n) = 0;
            }
        }
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_len, panel.len()) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::ThetaCodec;
    use crate::wire::codec::{CodecChoice, CodecConfig};

    /// The settings of `config`, which must be valid.
    fn settings(config: &ThetaSessionConfig) -> SessionConfig {
        // SAFETY: a valid config.
        unsafe { config_in(config) }.unwrap()
    }

    #[test]
    fn null_and_zeroed_configs_are_the_rust_defaults() {
        let rust = SessionConfig::default();
        // SAFETY: NULL is allowed.
        let null = unsafe { config_in(std::ptr::null()) }.unwrap();
        let zeroed = settings(&ThetaSessionConfig::default());
        for s in [null, zeroed] {
            assert_eq!(s.codec, rust.codec);
            assert_eq!(s.codec, CodecConfig::default());
            assert_eq!(s.train_after_samples, rust.train_after_samples);
            assert_eq!(s.dictionary_bytes, rust.dictionary_bytes);
            assert_eq!(s.idle_timeout, rust.idle_timeout);
            assert_eq!(s.keep_alive, rust.keep_alive);
            assert_eq!(s.budget_bytes_per_tick, rust.budget_bytes_per_tick);
            assert_eq!(s.max_chunk_bytes, rust.max_chunk_bytes);
            assert_eq!(s.connect_timeout, rust.connect_timeout);
            assert_eq!(s.resume_grace, rust.resume_grace);
        }
    }

    #[test]
    fn codec_fields_map_to_the_codec_config() {
        let s = settings(&ThetaSessionConfig {
            snapshot_chunk_codec: ThetaCodec::None as u8,
            delta_frame_codec: ThetaCodec::Zstd as u8,
            datagram_codec: ThetaCodec::Default as u8,
            datagram_level: 7,
            train_after_samples: THETA_TRAIN_ON_DEMAND_ONLY,
            dictionary_bytes: u32::MAX,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(s.codec.snapshot_chunk.choice, CodecChoice::None);
        // Level 0: the kind's default level (1 for delta frames).
        assert_eq!(s.codec.delta_frame.choice, CodecChoice::Zstd { level: 1 });
        assert_eq!(s.codec.datagram.choice, CodecChoice::ZstdDict { level: 7 });
        assert_eq!(
            s.codec.datagram.max_len,
            CodecConfig::default().datagram.max_len
        );
        assert_eq!(s.train_after_samples, 0);
        assert_eq!(s.dictionary_bytes, MAX_DICTIONARY_BYTES);
        let s = settings(&ThetaSessionConfig {
            snapshot_chunk_codec: ThetaCodec::ZstdDict as u8,
            train_after_samples: 64,
            dictionary_bytes: 4096,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(
            s.codec.snapshot_chunk.choice,
            CodecChoice::ZstdDict { level: 3 }
        );
        assert_eq!((s.train_after_samples, s.dictionary_bytes), (64, 4096));
    }
}
