//! Sessions: a host and its clients over QUIC.
//!
//! The engine thread owns the state (the host's world, a client's replica) and calls
//! [`Session::tick`]; the session's own tokio runtime (one worker thread) runs the
//! endpoint, admission and the readers, and meets the engine thread through a bounded
//! queue. `tick` never waits for the network: it drains what arrived, applies it, sends
//! what changed, and returns. Dropping a session closes its connections with a reason and
//! joins its runtime thread.
//!
//! After the join handshake every state datagram and stream message travels in the codec
//! envelope, compressed per message kind, with dictionaries the host trains on its own
//! frames (see [`crate::proto::compression`]).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::admission::{registry_differences, Gate, Ticket, Verdict};
use super::faults::{faulty_endpoint, FaultControl};
use super::framing::{read_message, write_message};
use super::pacing::{decode_cost, max_stream_message, DecodePacer};
use super::tls::{self, CongestionControl, HostIdentity, ServerTrust};
use crate::proto::acks::ReceivedSeqs;
use crate::proto::compression::{
    control_message, is_stream_frame, message_values, split_stream_message, ComponentWire,
    Compression, KindDiagnostics, LinkStreams, PeerDicts, StreamKind, TrainError, TrainingDone,
};
use crate::proto::outbox::{Key, Outbox, OutboxStats, SendLimits};
use crate::proto::poses::{Inbound, PoseConfig, PoseHub, PoseLink, PoseLinkStats, PosePushError};
use crate::proto::token::{JoinSecret, TokenError, TokenVerifier};
use crate::registry::{
    ComponentDescriptor, ComponentId, Registry, MAX_COMPONENT_TYPES, MAX_NAME_BYTES,
};
use crate::replica::{EventKind, Replica};
use crate::wire::codec::{CodecConfig, CodecError, MessageKind};
use crate::wire::{self, fb, Acceptance, BatchView, Encoder, Message, RemoveView, WireError};
use crate::world::{Change, EntityId, PeerId, Stamp, World, WorldError};
use crate::xr::{ControllerState, Device, PoseSample, Sampled};
use crate::DEFAULT_MAX_CHUNK_BYTES;
use rustc_hash::FxHashMap;

/// Longest join request accepted before admission.
const MAX_JOIN_REQUEST: usize = 4096;
/// Longest answer to a join request a client reads: a refusal carrying every component
/// type of the host's registry, at most.
const MAX_JOIN_ANSWER: usize =
    MAX_COMPONENT_TYPES * (wire::size::DESCRIPTOR_BASE + MAX_NAME_BYTES) + 8192;
/// How long a client waits for the answer to its join request.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the host gives a refusal to reach the client before it closes the connection.
const REFUSAL_GRACE: Duration = Duration::from_secs(1);
/// What one admitted client's stream messages may make the host decompress, in bytes a
/// second ([`DecodePacer`]): a 1 MiB value every 16 ms, far above what an engine writes.
const CLIENT_DECODE_RATE: u64 = 64 << 20;
/// ... and at once (at least two of the largest messages its stream may carry).
const CLIENT_DECODE_BURST: u64 = 8 << 20;
/// Messages queued from the network to the engine thread.
const INBOUND_QUEUE: usize = 8192;
/// Messages queued from the engine thread to one peer's stream writer.
const STREAM_QUEUE: usize = 1024;
/// QUIC close code of an orderly shutdown, and of a refused join.
const CLOSE_SHUTDOWN: u32 = 0;
const CLOSE_REFUSED: u32 = 1;
/// QUIC close code when the peer's compression stream cannot be decoded: every later delta
/// frame of that stream would be lost, so the connection ends (a client may resume on a
/// new one, with new streams) rather than diverging silently.
const CLOSE_BROKEN_STREAM: u32 = 2;
/// Write rejections reported to a client per frame; more are only counted.
const REJECTIONS_REPORTED: usize = 16;

/// Settings of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// The connections' congestion controller (default BBR, see [`CongestionControl`]).
    pub congestion: CongestionControl,
    /// Keep-alive interval (well below `idle_timeout`).
    pub keep_alive: Duration,
    /// Bytes of state datagrams each peer may receive per tick.
    pub budget_bytes_per_tick: usize,
    /// Snapshot chunk bound for late joiners.
    pub max_chunk_bytes: usize,
    /// Ticks of change history the host keeps.
    pub history_ticks: u64,
    /// Fault injection at the socket (tests and `theta demo --loss`).
    pub faults: Option<FaultControl>,
    /// How long the host keeps a dropped client's state for it to resume.
    pub resume_grace: Duration,
    /// The name a client expects in the host's certificate when it verifies a CA chain
    /// (`ServerTrust::CaRoots`); fingerprint pinning ignores it.
    pub server_name: String,
    /// How long a client waits for the QUIC and TLS handshake before it gives up.
    pub connect_timeout: Duration,
    /// XR pose streams: volume, send-rate cap, jitter buffers.
    pub poses: PoseConfig,
    /// Codec and decompression bound per message kind (see `net::compression`). Default:
    /// datagrams and delta frames zstd level 1 with the session's dictionary once one is
    /// trained (plain zstd before), snapshot chunks zstd level 3.
    pub codec: CodecConfig,
    /// Host: samples of a kind (using a dictionary codec) recorded before its first
    /// dictionary is trained automatically; 0 trains only on demand
    /// ([`Session::train_dictionary`]). Default 512.
    pub train_after_samples: u64,
    /// Host: size asked of the dictionary trainer, in bytes (at most
    /// [`crate::proto::compression::MAX_DICTIONARY_BYTES`]; less when the samples are few).
    /// Default 16 KiB.
    pub dictionary_bytes: usize,
    /// Host: connection attempts that may await admission at once (from their first
    /// packet to a checked join request), at most half of them from one address (an IPv6
    /// /64). Further attempts are asked to retry with address validation, and refused if
    /// they come back validated while it is still full. Default 32.
    pub max_pending_admissions: usize,
    /// Host: how long a connection attempt may take from its first packet to presenting
    /// its join request (QUIC and TLS handshake included) before the host closes it.
    /// Default 3 s.
    pub admission_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: Duration::from_secs(10),
            congestion: CongestionControl::default(),
            keep_alive: Duration::from_secs(2),
            budget_bytes_per_tick: 256 * 1024,
            max_chunk_bytes: DEFAULT_MAX_CHUNK_BYTES,
            history_ticks: 1024,
            faults: None,
            resume_grace: Duration::from_secs(30),
            server_name: "localhost".to_owned(),
            connect_timeout: Duration::from_secs(5),
            poses: PoseConfig::default(),
            codec: CodecConfig::default(),
            train_after_samples: 512,
            dictionary_bytes: 16 << 10,
            max_pending_admissions: 32,
            admission_timeout: Duration::from_secs(3),
        }
    }
}

/// Why [`Session::host`] could not start, with the world it was given, unchanged.
pub struct HostError {
    /// What failed.
    pub error: SessionError,
    /// The world, handed back.
    pub world: Box<World>,
}

impl std::fmt::Debug for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<HostError> for SessionError {
    fn from(e: HostError) -> SessionError {
        e.error
    }
}

/// Why a client's connection to its host ended, as a kind an engine can act on (the
/// event's text says more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DisconnectCause {
    /// The host refused the join (token expired, forged or used, registry mismatch, ...):
    /// joining again needs a fresh token or another build.
    Refused = 1,
    /// Nothing answered at the address, or the address is unusable.
    Unreachable = 2,
    /// The host's certificate did not match the pinned fingerprint or the CA roots.
    Certificate = 3,
    /// The connection went silent past the idle timeout, the host did not answer the
    /// join request in time, or it was too busy admitting other connections to take this
    /// one: worth resuming (or joining again).
    TimedOut = 4,
    /// The host closed the connection (it shut down).
    HostClosed = 5,
    /// The host broke the protocol (a malformed answer, a broken compression stream).
    Protocol = 6,
    /// This side closed it.
    Local = 7,
}

impl DisconnectCause {
    /// The cause of a connection error.
    fn of(error: &quinn::ConnectionError) -> DisconnectCause {
        use quinn::ConnectionError as E;
        match error {
            E::ApplicationClosed(close) => match u32::try_from(u64::from(close.error_code)) {
                Ok(CLOSE_REFUSED) => DisconnectCause::Refused,
                Ok(CLOSE_BROKEN_STREAM) => DisconnectCause::Protocol,
                _ => DisconnectCause::HostClosed,
            },
            E::TimedOut => DisconnectCause::TimedOut,
            E::ConnectionClosed(close)
                if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
            {
                DisconnectCause::TimedOut
            }
            E::LocallyClosed | E::CidsExhausted => DisconnectCause::Local,
            // TLS alerts travel as crypto errors (0x100 + alert): the handshake failed.
            E::TransportError(e) if (0x100..0x200).contains(&u64::from(e.code)) => {
                DisconnectCause::Certificate
            }
            E::ConnectionClosed(close) if (0x100..0x200).contains(&u64::from(close.error_code)) => {
                DisconnectCause::Certificate
            }
            E::Reset => DisconnectCause::HostClosed,
            E::TransportError(_) | E::ConnectionClosed(_) | E::VersionMismatch => {
                DisconnectCause::Protocol
            }
        }
    }
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Binding or starting the endpoint failed.
    #[error("cannot start the endpoint: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS configuration is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The call needs the other role.
    #[error("this call needs a {0} session")]
    WrongRole(&'static str),
    /// The pose volume is unusable.
    #[error("pose volume: {0}")]
    Volume(#[from] crate::xr::QuantizeError),
    /// Resuming needs a client that was admitted and then disconnected.
    #[error("cannot resume: {0}")]
    CannotResume(&'static str),
    /// A dictionary training could not start.
    #[error("cannot train a dictionary: {0}")]
    Train(#[from] TrainError),
}

/// Something the engine should know, from [`Session::poll_events`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A change to the replicated state (clients).
    Replica {
        /// What happened.
        kind: EventKind,
        /// The entity.
        entity: EntityId,
        /// The component, for inserts, updates and removes.
        component: ComponentId,
        /// Host tick of the change.
        tick: u64,
        /// The value, for inserts and updates.
        data: Vec<u8>,
    },
    /// The host admitted this client as `peer`.
    Joined {
        /// This client's peer id.
        peer: PeerId,
    },
    /// A client joined or resumed: on the host, one of its clients; on a client, another
    /// client of the same host (a newly admitted client hears of every client already
    /// there).
    PeerJoined {
        /// Its peer id.
        peer: PeerId,
    },
    /// The host refused a connection's join request (host); nothing was allocated for it.
    JoinRefused {
        /// Where the request came from.
        from: SocketAddr,
        /// Which check failed.
        reason: String,
    },
    /// A client left or was lost: on the host, one of its clients; on a client, another
    /// client of the same host (its avatar's devices are forgotten).
    PeerLeft {
        /// Its peer id.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The connection to the host ended or was refused (client).
    Disconnected {
        /// Why, in words: a refusal names the failed check.
        reason: String,
        /// Why, as a kind an engine can act on.
        cause: DisconnectCause,
    },
    /// A write to an entity the writer does not own was refused and not applied: on the
    /// host, `peer` is the offending client; on that client, its own id.
    WriteRejected {
        /// The writer.
        peer: PeerId,
        /// The entity.
        entity: EntityId,
        /// The component (0 for a spawn or despawn).
        component: ComponentId,
        /// Why.
        reason: String,
    },
}

/// Transport figures of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PeerDiagnostics {
    /// The peer.
    pub peer: PeerId,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// UDP bytes sent, headers of QUIC included.
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
    /// State datagram counters (host side).
    pub outbox: OutboxStats,
    /// Keys waiting for an acknowledgement (host side).
    pub pending_keys: u64,
    /// Writes of this peer refused (not the owner).
    pub writes_rejected: u64,
    /// State datagrams or frames from this peer that failed validation.
    pub malformed: u64,
    /// The XR pose stream with this peer.
    pub poses: PoseLinkStats,
    /// Client: the host's clock minus this one's, as applied to pose times (0 on the host).
    pub clock_offset_ns: i64,
    /// Client: the fastest clock round trip measured.
    pub clock_rtt: Duration,
}

/// Figures of a session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionDiagnostics {
    /// The current tick (host) or newest host tick applied (client).
    pub tick: u64,
    /// Live entities.
    pub entities: u64,
    /// Stored values.
    pub components: u64,
    /// One entry per connection.
    pub peers: Vec<PeerDiagnostics>,
    /// State datagrams dropped because the inbound queue was full.
    pub inbound_dropped: u64,
    /// Join requests the host refused.
    pub joins_refused: u64,
    /// Compression per message kind, in [`MessageKind::ALL`] order.
    pub compression: Vec<KindDiagnostics>,
    /// Per component type, the value bytes this side sent and the wire bytes they cost,
    /// in registry order (see `net::compression` for the method).
    pub component_wire: Vec<ComponentWire>,
    /// Wire bytes of frames without values (acknowledgements, spawns, despawns, removals).
    pub unattributed_wire_bytes: u64,
}

/// What the network tasks hand to the engine thread.
enum NetEvent {
    /// Host: a client passed admission.
    PeerJoined {
        peer: PeerId,
        conn: quinn::Connection,
        stream: mpsc::Sender<Vec<u8>>,
        resumed: bool,
    },
    /// Client: the host admitted us; the snapshot follows on the stream.
    Joined {
        peer: PeerId,
        tick: u64,
        snapshot_chunks: u32,
        next_counter: u64,
        conn: quinn::Connection,
        stream: mpsc::Sender<Vec<u8>>,
        resume: Vec<u8>,
        resumed: bool,
        /// Decoding bounds, sized to the host's snapshot chunks.
        bounds: CodecConfig,
    },
    Datagram {
        peer: PeerId,
        bytes: Bytes,
        at: Instant,
    },
    Stream {
        peer: PeerId,
        bytes: Vec<u8>,
    },
    Closed {
        peer: PeerId,
        reason: String,
        cause: DisconnectCause,
    },
    /// Host: a join request was refused.
    Refused {
        from: SocketAddr,
        reason: String,
    },
}

/// One end of a connection, as the engine thread sees it: what to send, what arrived.
struct Link {
    conn: quinn::Connection,
    stream: mpsc::Sender<Vec<u8>>,
    /// Stream messages waiting for room in the writer's queue.
    backlog: VecDeque<Vec<u8>>,
    outbox: Outbox,
    /// The other side's datagrams received, to acknowledge.
    received: ReceivedSeqs,
    diagnostics: PeerDiagnostics,
    poses: PoseLink,
    /// The dictionaries the other side holds.
    dicts: PeerDicts,
    /// The delta-frame compression streams of this connection, each way.
    streams: LinkStreams,
    /// How much of this tick's state may go to quinn's datagram queue.
    pacer: DatagramPacer,
}

/// Keeps quinn's datagram queue short. Congestion control may let less out than the
/// outbox would send; what waits in the queue goes stale and adds latency, and a full
/// queue drops its oldest datagrams silently. So while the queue did not empty between
/// two ticks, a tick adds about what the path drained in one tick, and keys that do not
/// fit stay pending in the outbox, where newer state replaces them.
#[derive(Debug, Default)]
struct DatagramPacer {
    /// The queue's capacity: the most free space ever seen.
    capacity: usize,
    /// Bytes queued right after the previous tick's sending.
    queued_after_send: usize,
    /// Smoothed bytes the queue drained per tick while it was not empty.
    drained_per_tick: usize,
}

impl DatagramPacer {
    /// The bytes this tick may queue, given the queue's free `space` and the configured
    /// per-tick `budget`.
    fn budget(&mut self, space: usize, budget: usize) -> usize {
        self.capacity = self.capacity.max(space);
        let queued = self.capacity - space;
        if queued == 0 {
            // Everything went out: the path is not the limit.
            return budget.min(space);
        }
        let drained = self.queued_after_send.saturating_sub(queued);
        self.drained_per_tick = (self.drained_per_tick * 3 + drained) / 4;
        budget
            .min(space)
            .min((self.drained_per_tick * 2).saturating_sub(queued))
    }

    /// Notes the queue's free space after this tick's sending.
    fn sent(&mut self, space: usize) {
        self.capacity = self.capacity.max(space);
        self.queued_after_send = self.capacity - space;
    }
}

/// A connected client, on the host.
struct PeerLink {
    link: Link,
    /// Per key, the client tick of the newest write of it applied (latest wins, as the
    /// client's datagrams may come in any order).
    client_ticks: FxHashMap<Key, u64>,
    /// Client tick at which each of its entities was despawned: a write from before that
    /// arriving late must not bring the entity back.
    despawned_at: FxHashMap<EntityId, u64>,
    /// Token the client presents to resume this state after a dropped connection.
    resume: [u8; 16],
}

/// A dropped client's state, kept for it to resume: changes keep being marked in its
/// outbox, so on resume it is sent exactly what it lacks.
struct Parked {
    client: PeerLink,
    since: Instant,
}

struct Host {
    world: World,
    peers: BTreeMap<PeerId, PeerLink>,
    /// Changes up to this tick are marked in every outbox.
    marked: u64,
    shared: Arc<HostShared>,
    /// Per client, above the highest entity counter it ever used (across connections).
    next_counters: FxHashMap<PeerId, u64>,
    /// Dropped clients that may resume.
    parked: FxHashMap<PeerId, Parked>,
    /// Join requests refused.
    joins_refused: u64,
    /// Codecs, dictionaries (trained here) and their figures.
    compression: Compression,
    /// Runs dictionary trainings off the engine thread, and their results back.
    runtime: tokio::runtime::Handle,
    trained_tx: std::sync::mpsc::Sender<TrainingDone>,
    trained: std::sync::mpsc::Receiver<TrainingDone>,
}

/// Admission state shared with the accept tasks.
struct HostShared {
    verifier: Mutex<TokenVerifier>,
    registry_hash: u64,
    /// The host's component types, told to a client with a valid token whose registry
    /// differs.
    types: Vec<ComponentDescriptor>,
    /// Longest stream message read from an admitted client.
    stream_bound: usize,
    host_peer: PeerId,
    connected: Mutex<HashSet<PeerId>>,
    /// Resume tokens of the parked clients, checked at admission.
    resumable: Mutex<FxHashMap<PeerId, [u8; 16]>>,
}

struct Client {
    replica: Replica,
    peer: Option<PeerId>,
    link: Option<Link>,
    /// This client's own changes up to this (client) tick are in the outbox.
    marked: u64,
    closed: bool,
    /// The host, to reconnect to.
    host: SocketAddr,
    registry_hash: u64,
    /// Token the host gave for resuming after a dropped connection.
    resume: Vec<u8>,
    /// Where the connection task reports, kept to start another on reconnect.
    tx: mpsc::Sender<NetEvent>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    /// Codecs, the host's dictionaries, and their figures.
    compression: Compression,
}

enum Role {
    Host(Box<Host>),
    Client(Box<Client>),
}

/// A host or client session. See the module documentation.
pub struct Session {
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: quinn::Endpoint,
    inbound: mpsc::Receiver<NetEvent>,
    role: Role,
    config: SessionConfig,
    events: VecDeque<SessionEvent>,
    encoder: Encoder,
    inbound_dropped: Arc<std::sync::atomic::AtomicU64>,
    poses: PoseHub,
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("theta-net")
        .enable_all()
        .build()
}

/// A fresh random resume token.
fn resume_token() -> [u8; 16] {
    let mut token = [0u8; 16];
    // SystemRandom fails only when the OS has no randomness; an all-zero token is then
    // never accepted (admission refuses it).
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut token);
    token
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
    faults: Option<&FaultControl>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = bind_udp(addr)?;
    match faults {
        Some(control) => faulty_endpoint(socket, server, control.clone()),
        None => quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            server,
            socket,
            Arc::new(quinn::TokioRuntime),
        ),
    }
}

/// Socket buffer size asked for each way: a host's burst of state datagrams to several
/// clients, or a snapshot's packets, must not overflow the OS default (64 KiB on Windows,
/// where Unity and Unreal mostly run; about 200 KiB on Linux).
pub const SOCKET_BUFFER_BYTES: usize = 2 << 20;

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER_BYTES`] asked for each way. The OS may
/// grant less (Linux caps at `net.core.rmem_max`); that is not an error.
pub(crate) fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Both families on a wildcard address, as std's bind would not promise either.
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

impl Session {
    /// Hosts a session on `bind` with `world` as the authoritative state. Clients need the
    /// identity's fingerprint (or its CA) and a join token minted with `secret`. On failure
    /// the world comes back in the error ([`HostError::world`]): nothing is lost.
    pub fn host(
        bind: SocketAddr,
        world: World,
        identity: &HostIdentity,
        secret: JoinSecret,
        config: SessionConfig,
    ) -> Result<Session, HostError> {
        // Everything that can fail comes before the world is used.
        let started = (|| -> Result<_, SessionError> {
            config.poses.volume.validate()?;
            let runtime = runtime()?;
            let mut transport = tls::host_transport_config(config.idle_timeout, config.keep_alive);
            config.congestion.apply(&mut transport);
            let server = tls::server_config(identity, Arc::new(transport))?;
            let endpoint = {
                let _guard = runtime.enter();
                endpoint(bind, Some(server), config.faults.as_ref())?
            };
            Ok((runtime, endpoint))
        })();
        let (runtime, endpoint) = match started {
            Ok(started) => started,
            Err(error) => {
                return Err(HostError {
                    error,
                    world: Box::new(world),
                })
            }
        };
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        // Decoding is bounded by what this session really sends with this registry.
        let codec = config
            .codec
            .bounded_for(world.registry(), config.max_chunk_bytes);
        let shared = Arc::new(HostShared {
            verifier: Mutex::new(TokenVerifier::new(secret)),
            registry_hash: world.registry().hash(),
            types: world.registry().descriptors().to_vec(),
            stream_bound: max_stream_message(&codec),
            host_peer: world.config().local_peer,
            connected: Mutex::new(HashSet::new()),
            resumable: Mutex::new(FxHashMap::default()),
        });
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        runtime.spawn(accept_loop(
            endpoint.clone(),
            Arc::clone(&shared),
            tx,
            Arc::clone(&dropped),
            Gate::new(config.max_pending_admissions),
            config.admission_timeout,
        ));
        let marked = world.tick();
        let (trained_tx, trained) = std::sync::mpsc::channel();
        let handle = runtime.handle().clone();
        let poses = PoseHub::new(config.poses, Instant::now());
        let compression = Compression::new(
            codec,
            Some((config.train_after_samples, config.dictionary_bytes)),
        );
        Ok(Session {
            runtime: Some(runtime),
            endpoint,
            inbound,
            role: Role::Host(Box::new(Host {
                world,
                peers: BTreeMap::new(),
                marked,
                shared,
                next_counters: FxHashMap::default(),
                parked: FxHashMap::default(),
                joins_refused: 0,
                compression,
                runtime: handle,
                trained_tx,
                trained,
            })),
            config,
            events: VecDeque::new(),
            encoder: Encoder::new(),
            inbound_dropped: dropped,
            poses,
        })
    }

    /// Joins the host at `addr`, trusting its certificate as `trust` says and presenting
    /// `token`. `registry` is the engine's component types: it must equal the host's. Returns
    /// at once; `Joined` or `Disconnected` arrives through [`Session::poll_events`].
    pub fn join(
        addr: SocketAddr,
        trust: &ServerTrust,
        token: &str,
        registry: &Registry,
        config: SessionConfig,
    ) -> Result<Session, SessionError> {
        config.poses.volume.validate()?;
        let runtime = runtime()?;
        let mut transport = tls::client_transport_config(config.idle_timeout, config.keep_alive);
        config.congestion.apply(&mut transport);
        let client = tls::client_config(trust, Arc::new(transport))?;
        let local: SocketAddr = match addr.ip() {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let mut endpoint = {
            let _guard = runtime.enter();
            endpoint(local, None, config.faults.as_ref())?
        };
        endpoint.set_default_client_config(client);
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let request = Encoder::new().join_request(token, registry.hash());
        runtime.spawn(connect(
            endpoint.clone(),
            Dial::new(addr, &config, request, registry),
            tx.clone(),
            Arc::clone(&dropped),
        ));
        let poses = PoseHub::new(config.poses, Instant::now());
        Ok(Session {
            runtime: Some(runtime),
            endpoint,
            inbound,
            role: Role::Client(Box::new(Client {
                replica: Replica::with_registry(registry),
                peer: None,
                link: None,
                marked: 0,
                closed: false,
                host: addr,
                registry_hash: registry.hash(),
                resume: Vec::new(),
                tx,
                dropped: Arc::clone(&dropped),
                // Until the host says how it cuts snapshot chunks: as this side would.
                compression: Compression::new(
                    config.codec.bounded_for(registry, config.max_chunk_bytes),
                    None,
                ),
            })),
            config,
            events: VecDeque::new(),
            encoder: Encoder::new(),
            inbound_dropped: dropped,
            poses,
        })
    }

    /// Reconnects a client whose connection dropped, resuming its state: the host sends
    /// what changed since the client last acknowledged (no snapshot) while it still keeps
    /// that state (`SessionConfig::resume_grace`); after that the reconnect is refused and
    /// the client joins again with a fresh token. `Joined` or `Disconnected` follows.
    pub fn reconnect(&mut self) -> Result<(), SessionError> {
        let Role::Client(client) = &mut self.role else {
            return Err(SessionError::WrongRole("client"));
        };
        let Some(peer) = client.peer else {
            return Err(SessionError::CannotResume("this client was never admitted"));
        };
        if !client.closed {
            return Err(SessionError::CannotResume("the connection is still up"));
        }
        if client.resume.is_empty() {
            return Err(SessionError::CannotResume("the host gave no resume token"));
        }
        let request = self
            .encoder
            .resume_request(peer, &client.resume, client.registry_hash);
        let dial = Dial::new(
            client.host,
            &self.config,
            request,
            client.replica.world().registry(),
        );
        let task = connect(
            self.endpoint.clone(),
            dial,
            client.tx.clone(),
            Arc::clone(&client.dropped),
        );
        if let Some(runtime) = &self.runtime {
            runtime.spawn(task);
        }
        client.closed = false;
        Ok(())
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The replicated state: the host's world, or a client's copy of it.
    pub fn world(&self) -> &World {
        match &self.role {
            Role::Host(host) => &host.world,
            Role::Client(client) => client.replica.world(),
        }
    }

    /// The host's world, to write; an error on a client.
    pub fn host_world(&mut self) -> Result<&mut World, SessionError> {
        match &mut self.role {
            Role::Host(host) => Ok(&mut host.world),
            Role::Client(_) => Err(SessionError::WrongRole("host")),
        }
    }

    /// Creates an entity owned by this peer: on the host in its id range, on a client (once
    /// joined) in the client's.
    pub fn spawn(&mut self) -> Result<EntityId, WorldError> {
        match &mut self.role {
            Role::Host(host) => host.world.spawn(),
            Role::Client(client) => client.replica.spawn_owned(),
        }
    }

    /// Writes a value of an entity this peer owns; others are `WorldError::NotOwner`.
    pub fn set(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        bytes: &[u8],
    ) -> Result<Change, WorldError> {
        match &mut self.role {
            Role::Host(host) => {
                host.check_owned(entity)?;
                host.world.set(entity, component, bytes)
            }
            Role::Client(client) => client.replica.set_owned(entity, component, bytes),
        }
    }

    /// Removes a component from an entity this peer owns.
    pub fn remove(&mut self, entity: EntityId, component: ComponentId) -> Result<bool, WorldError> {
        match &mut self.role {
            Role::Host(host) => {
                host.check_owned(entity)?;
                host.world.remove(entity, component)
            }
            Role::Client(client) => client.replica.remove_owned(entity, component),
        }
    }

    /// Destroys an entity this peer owns.
    pub fn despawn(&mut self, entity: EntityId) -> Result<(), WorldError> {
        match &mut self.role {
            Role::Host(host) => {
                host.check_owned(entity)?;
                host.world.despawn(entity)
            }
            Role::Client(client) => client.replica.despawn_owned(entity),
        }
    }

    /// Hash of the replicated state (equal on every peer once converged).
    pub fn state_hash(&self) -> u64 {
        self.world().state_hash()
    }

    /// This peer's id: the host's, or the one the host gave this client once joined.
    pub fn peer(&self) -> Option<PeerId> {
        match &self.role {
            Role::Host(host) => Some(host.shared.host_peer),
            Role::Client(client) => client.peer,
        }
    }

    /// Stores this peer's newest sample of a tracked device (time in `XrTime` nanoseconds,
    /// see [`Session::set_xr_time`]); the next ticks stream it to the other peers, at most
    /// `SessionConfig::poses.max_rate_hz` packets a second. NaN or infinite values, a zero
    /// quaternion, or a time before the device's previous sample are refused and nothing
    /// is stored; other quaternions are normalised.
    pub fn push_pose(&mut self, device: Device, sample: &PoseSample) -> Result<(), PosePushError> {
        self.poses.push(device, sample)
    }

    /// Stores the input state of a controller whose pose was pushed; it travels with the
    /// device's samples until the peers acknowledge it.
    pub fn push_controller(
        &mut self,
        device: Device,
        state: &ControllerState,
    ) -> Result<(), PosePushError> {
        self.poses.push_controller(device, state)
    }

    /// The pose of another peer's device to render at local display time `display_time`
    /// (`XrTime` nanoseconds): interpolated behind an adaptive delay, or extrapolated for a
    /// bounded time when samples are late. `None` until a sample of it arrived.
    pub fn sample_pose(
        &mut self,
        peer: PeerId,
        device: Device,
        display_time: i64,
    ) -> Option<Sampled> {
        self.poses.sample(peer, device, display_time)
    }

    /// The newest controller state of another peer's device.
    pub fn controller_state(&self, peer: PeerId, device: Device) -> Option<ControllerState> {
        self.poses.controller(peer, device)
    }

    /// The other peers' devices this session has samples of, as (peer, device).
    pub fn remote_devices(&self) -> Vec<(PeerId, Device)> {
        self.poses.remote_devices()
    }

    /// Declares that the engine's `XrTime` is `xr_now` at this moment, so pose times and
    /// [`Session::now`] share the engine's clock. Without it, times are nanoseconds since
    /// the session started.
    pub fn set_xr_time(&mut self, xr_now: i64) {
        self.poses.set_xr_time(xr_now, Instant::now());
    }

    /// The session clock now, in the engine's `XrTime` nanoseconds (see
    /// [`Session::set_xr_time`]).
    pub fn now(&self) -> i64 {
        self.poses.local_ns(Instant::now())
    }

    /// Takes up to `max` events, oldest first.
    pub fn poll_events(&mut self, max: usize) -> Vec<SessionEvent> {
        let n = max.min(self.events.len());
        self.events.drain(..n).collect()
    }

    /// One network tick: applies what arrived, sends what changed (host: closes the world's
    /// tick). Never waits for the network.
    pub fn tick(&mut self) {
        let now = Instant::now();
        while let Ok(event) = self.inbound.try_recv() {
            match &mut self.role {
                Role::Host(host) => host.handle(
                    event,
                    now,
                    &self.config,
                    &mut self.encoder,
                    &mut self.events,
                    &mut self.poses,
                ),
                Role::Client(client) => client.handle(
                    event,
                    now,
                    &mut self.encoder,
                    &mut self.events,
                    &mut self.poses,
                ),
            }
        }
        match &mut self.role {
            Role::Host(host) => {
                host.send(now, &self.config, &mut self.encoder);
                let own = host.shared.host_peer;
                for client in host.peers.values_mut() {
                    client.link.send_poses(&mut self.poses, own, now, true);
                }
            }
            Role::Client(client) => {
                client.send(now, &self.config, &mut self.encoder);
                if let (Some(link), Some(own)) = (&mut client.link, client.peer) {
                    self.poses.apply_clock(&mut link.poses);
                    link.send_poses(&mut self.poses, own, now, false);
                }
            }
        }
    }

    /// Host: trains a dictionary for `kind` from the messages of that kind recorded so
    /// far, on the session runtime's blocking pool (the engine thread does not wait); a
    /// later [`Session::tick`] installs it and sends it to the clients, which use it once
    /// they acknowledged it. Returns the id it will have. Refused on a client, for a kind
    /// whose codec is not [`crate::wire::codec::CodecChoice::ZstdDict`], while a training
    /// of the kind runs, or with fewer than
    /// [`crate::wire::codec::MIN_TRAINING_SAMPLES`] samples; a training that fails later
    /// is counted in the diagnostics (`training_failures`).
    pub fn train_dictionary(&mut self, kind: MessageKind) -> Result<u32, SessionError> {
        match &mut self.role {
            Role::Host(host) => Ok(host.compression.train(kind)?),
            Role::Client(_) => Err(TrainError::NotHost.into()),
        }
    }

    /// Transport and replication figures.
    pub fn diagnostics(&self) -> SessionDiagnostics {
        let world = self.world().stats();
        let mut d = SessionDiagnostics {
            entities: world.entities as u64,
            components: world.components as u64,
            inbound_dropped: self
                .inbound_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            ..SessionDiagnostics::default()
        };
        match &self.role {
            Role::Host(host) => {
                d.tick = host.world.tick();
                d.joins_refused = host.joins_refused;
                d.peers = host.peers.values().map(|p| p.link.diagnostics()).collect();
            }
            Role::Client(client) => {
                d.tick = client.replica.tick();
                d.peers.extend(client.link.as_ref().map(Link::diagnostics));
            }
        }
        let compression = match &self.role {
            Role::Host(host) => &host.compression,
            Role::Client(client) => &client.compression,
        };
        (d.compression, d.component_wire, d.unattributed_wire_bytes) =
            compression.diagnostics(self.world().registry());
        d
    }
}

fn fill_connection(p: &mut PeerDiagnostics, conn: &quinn::Connection) {
    let stats = conn.stats();
    p.rtt = conn.rtt();
    p.wire_bytes_sent = stats.udp_tx.bytes;
    p.wire_bytes_received = stats.udp_rx.bytes;
    p.packets_sent = stats.udp_tx.datagrams;
    p.packets_received = stats.udp_rx.datagrams;
    p.packets_lost = stats.path.lost_packets;
}

/// Longest wait, when a session is dropped, for its peers to answer its goodbye.
const GOODBYE_WAIT_MAX: Duration = Duration::from_secs(1);
/// A goodbye on the datagram channel: one byte no state datagram (codec formats 0..=2)
/// or pose packet (0x80..) starts with.
const GOODBYE_DATAGRAM: [u8; 1] = [0x7F];

impl Drop for Session {
    /// Says goodbye to every peer and waits, bounded, for them to hear it: each link's
    /// stream is finished after what was queued on it, and [`GOODBYE_DATAGRAM`] goes
    /// every quarter round trip (5 to 50 ms) until the peer answers by closing the
    /// connection. The wait is 4 round trips of the slowest peer plus 50 ms, at most
    /// [`GOODBYE_WAIT_MAX`], and ends as soon as every peer answered. Then the endpoint
    /// closes and the runtime thread is joined.
    fn drop(&mut self) {
        let reason: &[u8] = match self.role {
            Role::Host(_) => b"host shut down",
            Role::Client(_) => b"client left",
        };
        let links: Vec<&mut Link> = match &mut self.role {
            Role::Host(host) => host.peers.values_mut().map(|p| &mut p.link).collect(),
            Role::Client(client) => client.link.iter_mut().collect(),
        };
        let mut conns = Vec::with_capacity(links.len());
        let mut rtt = Duration::ZERO;
        for link in links {
            link.finish_stream();
            rtt = rtt.max(link.conn.rtt());
            conns.push(link.conn.clone());
        }
        let wait = (rtt * 4 + Duration::from_millis(50)).min(GOODBYE_WAIT_MAX);
        let every = (rtt / 4).clamp(Duration::from_millis(5), Duration::from_millis(50));
        let Some(runtime) = self.runtime.take() else {
            self.endpoint.close(CLOSE_SHUTDOWN.into(), reason);
            return;
        };
        let endpoint = self.endpoint.clone();
        runtime.block_on(async move {
            let answered = async {
                for conn in &conns {
                    conn.closed().await;
                }
            };
            let repeat = async {
                let mut ticks = tokio::time::interval(every);
                loop {
                    ticks.tick().await;
                    for conn in &conns {
                        let _ = conn.send_datagram(Bytes::from_static(&GOODBYE_DATAGRAM));
                    }
                }
            };
            let all_answered = tokio::select! {
                () = answered => true,
                () = repeat => false,
                () = tokio::time::sleep(wait) => false,
            };
            endpoint.close(CLOSE_SHUTDOWN.into(), reason);
            if !all_answered {
                // Peers that did not answer get a QUIC close; let it go out.
                let _ =
                    tokio::time::timeout(Duration::from_millis(100), endpoint.wait_idle()).await;
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

/// Whether a datagram belongs to the pose channel (first byte `0x80..=0xFF`, see
/// [`crate::xr::stream`]) rather than to replication.
fn is_pose_datagram(bytes: &[u8]) -> bool {
    bytes
        .first()
        .is_some_and(|b| b & crate::xr::stream::POSE_PACKET_TAG != 0)
}

impl Link {
    /// Takes in a pose-channel datagram, answering a clock ping (host).
    fn receive_poses(&mut self, hub: &mut PoseHub, bytes: &[u8], at: Instant, relay: bool) {
        self.diagnostics.payload_bytes_received += bytes.len() as u64;
        if let Inbound::Reply(reply) =
            hub.receive(&mut self.poses, bytes, at, Instant::now(), relay)
        {
            self.send_datagram(reply);
        }
    }

    /// Sends this tick's pose datagrams (rate-capped by the hub).
    fn send_poses(&mut self, hub: &mut PoseHub, own: PeerId, now: Instant, relay: bool) {
        let max = self.conn.max_datagram_size().unwrap_or(0);
        for datagram in hub.flush(&mut self.poses, own, now, relay, max, self.conn.rtt()) {
            self.send_datagram(datagram);
        }
    }

    /// Ends the connection when `frame`, which failed to decode with `error`, belonged to
    /// the peer's compression stream: the stream cannot recover (see
    /// [`CLOSE_BROKEN_STREAM`]). Other frames are independent; their failures are only
    /// counted.
    fn close_if_stream_broken(&mut self, frame: &[u8], error: &CodecError) {
        if is_stream_frame(frame) {
            let reason = format!("compression stream broken: {error}");
            self.conn
                .close(CLOSE_BROKEN_STREAM.into(), reason.as_bytes());
        }
    }

    /// Finishes this side's stream after what is queued on it: the goodbye (see
    /// `Session::drop`). The writer task flushes its queue, then finishes.
    fn finish_stream(&mut self) {
        while let Some(message) = self.backlog.pop_front() {
            if self.stream.try_send(message).is_err() {
                break;
            }
        }
        let (closed, _) = mpsc::channel(1);
        self.stream = closed;
    }

    fn send_datagram(&mut self, datagram: Vec<u8>) {
        self.diagnostics.payload_bytes_sent += datagram.len() as u64;
        // A full send buffer drops it: newer poses follow.
        let _ = self.conn.send_datagram(Bytes::from(datagram));
    }

    fn new(
        conn: quinn::Connection,
        stream: mpsc::Sender<Vec<u8>>,
        peer: PeerId,
        poses: PoseLink,
    ) -> Link {
        Link {
            poses,
            conn,
            stream,
            backlog: VecDeque::new(),
            outbox: Outbox::default(),
            received: ReceivedSeqs::default(),
            diagnostics: PeerDiagnostics {
                peer,
                ..PeerDiagnostics::default()
            },
            dicts: PeerDicts::default(),
            streams: LinkStreams::default(),
            pacer: DatagramPacer::default(),
        }
    }

    fn diagnostics(&self) -> PeerDiagnostics {
        let mut p = self.diagnostics;
        fill_connection(&mut p, &self.conn);
        p.outbox = self.outbox.stats;
        p.pending_keys = self.outbox.pending() as u64;
        p.poses = self.poses.stats;
        p.clock_offset_ns = self.poses.clock_offset().unwrap_or(0);
        p.clock_rtt = self.poses.clock_rtt().unwrap_or_default();
        p
    }

    /// Opens a datagram from the peer, routing on its first byte: a state datagram's codec
    /// envelope is decoded (bounded; a failure is counted per cause by `compression` and
    /// the datagram dropped). Returns the state datagram message.
    fn open_datagram(&mut self, bytes: &[u8], compression: &mut Compression) -> Option<Vec<u8>> {
        self.diagnostics.payload_bytes_received += bytes.len() as u64;
        match bytes.first().copied() {
            // Codec envelope of a state datagram: 0 raw, 1 zstd, 2 zstd + dictionary.
            // (0x80..=0xFF, pose packets, never reach here: see `is_pose_datagram`.)
            Some(0..=2) => compression.decode(MessageKind::Datagram, bytes).ok(),
            _ => {
                self.diagnostics.malformed += 1;
                None
            }
        }
    }

    /// Verifies a state datagram message, takes in its acks (at `now`) and returns its
    /// frame when the datagram is new (not a duplicate).
    fn receive<'a>(&mut self, message: &'a [u8], now: Instant) -> Option<fb::DeltaFrame<'a>> {
        // A datagram that does not decode is dropped and counted: it changes nothing.
        let Ok(Message::StateDatagram(datagram)) = wire::decode(message) else {
            self.diagnostics.malformed += 1;
            return None;
        };
        if let Some(acks) = datagram.acks() {
            let ranges: Vec<(u64, u64)> = acks.iter().map(|r| (r.first(), r.last())).collect();
            self.outbox.on_acks(&ranges, now);
        }
        let Some(frame) = datagram.frame() else {
            // An acknowledgement alone carries nothing to acknowledge: answering it would
            // make two idle peers acknowledge each other's acknowledgements forever. Its
            // sequence number still closes the gap between the ranges around it.
            self.received.insert_silently(datagram.seq());
            return None;
        };
        if !self.received.insert(datagram.seq()) {
            return None;
        }
        Some(frame)
    }

    /// Queues a snapshot chunk or delta frame on the stream, in its codec envelope.
    fn queue(
        &mut self,
        kind: MessageKind,
        message: &[u8],
        values: &[(ComponentId, usize)],
        compression: &mut Compression,
        now: Instant,
    ) {
        let framed = compression.stream(kind, message, values, &self.dicts, &mut self.streams, now);
        self.backlog.push_back(framed);
    }

    /// Sends this tick's datagrams of the outbox (or an acknowledgement alone), each in
    /// its codec envelope, and flushes the stream backlog.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        world: &World,
        tick: u64,
        now: Instant,
        budget: usize,
        encoder: &mut Encoder,
        compression: &mut Compression,
    ) {
        // One byte of every datagram is the envelope's format byte (a compressed frame is
        // never larger than the raw one).
        let path = self.conn.max_datagram_size().unwrap_or(0);
        let limits = SendLimits {
            max_datagram: path.min(compression.max_datagram()).saturating_sub(1),
            budget: self
                .pacer
                .budget(self.conn.datagram_send_buffer_space(), budget),
            initial_resend: self.conn.rtt().mul_f32(1.5) + Duration::from_millis(20),
        };
        if limits.max_datagram > 0 {
            let unacked = self.received.has_unacked();
            let acks = self.received.to_send();
            let mut built = self.outbox.build(world, tick, now, limits, &acks, encoder);
            if built.datagrams.is_empty() && unacked {
                built
                    .datagrams
                    .push((self.outbox.ack_only(&acks, encoder), Vec::new()));
            }
            for (datagram, values) in built.datagrams {
                let framed = compression.datagram(&datagram, &values, &self.dicts, now);
                self.diagnostics.payload_bytes_sent += framed.len() as u64;
                // Full send buffers drop the datagram: its keys stay pending.
                let _ = self.conn.send_datagram(Bytes::from(framed));
            }
            for (frame, values) in built.stream_frames {
                self.queue(MessageKind::DeltaFrame, &frame, &values, compression, now);
            }
            self.pacer.sent(self.conn.datagram_send_buffer_space());
        }
        while let Some(message) = self.backlog.pop_front() {
            let len = message.len() as u64;
            match self.stream.try_send(message) {
                Ok(()) => self.diagnostics.payload_bytes_sent += len,
                Err(mpsc::error::TrySendError::Full(message)) => {
                    self.backlog.push_front(message);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    }
}

impl Host {
    fn check_owned(&self, entity: EntityId) -> Result<(), WorldError> {
        if entity.creator() == self.shared.host_peer {
            Ok(())
        } else {
            Err(WorldError::NotOwner {
                entity,
                peer: self.shared.host_peer,
            })
        }
    }

    /// Installs the dictionaries trained and sends them to every client; starts the
    /// trainings due; retires the old dictionaries every client has moved on from, telling
    /// the clients.
    fn update_dictionaries(&mut self, now: Instant, encoder: &mut Encoder) {
        let finished: Vec<TrainingDone> = self.trained.try_iter().collect();
        let installed: Vec<_> = finished
            .into_iter()
            .filter_map(|done| self.compression.finish_training(done))
            .collect();
        self.compression.start_due_trainings();
        for job in self.compression.take_training_jobs() {
            let tx = self.trained_tx.clone();
            self.runtime.spawn_blocking(move || {
                // The session may be gone by now; nobody is left to tell.
                let _ = tx.send(job.run());
            });
        }
        for (kind, id) in installed {
            if let Some(message) = self.compression.announce(kind, id, encoder) {
                for client in self.peers.values_mut() {
                    client.link.dicts.mark_sent(id);
                    client.link.backlog.push_back(message.clone());
                }
            }
        }
        let rtt = self
            .peers
            .values()
            .map(|p| p.link.conn.rtt())
            .max()
            .unwrap_or_default();
        let grace = rtt * 3 + Duration::from_millis(100);
        let retired =
            self.compression
                .retire(self.peers.values().map(|p| &p.link.dicts), now, grace);
        if retired.is_empty() {
            return;
        }
        let message = control_message(&encoder.dictionary_retire(&retired));
        for client in self.peers.values_mut() {
            if Compression::forget_in(&mut client.link.dicts, &retired) {
                client.link.backlog.push_back(message.clone());
            }
        }
        for parked in self.parked.values_mut() {
            Compression::forget_in(&mut parked.client.link.dicts, &retired);
        }
    }

    fn handle(
        &mut self,
        event: NetEvent,
        now: Instant,
        config: &SessionConfig,
        encoder: &mut Encoder,
        events: &mut VecDeque<SessionEvent>,
        hub: &mut PoseHub,
    ) {
        match event {
            NetEvent::PeerJoined {
                peer,
                conn,
                stream,
                resumed,
            } => {
                let volume = config.poses.volume;
                let mut link =
                    Link::new(conn, stream, peer, PoseLink::new(peer, volume, false, now));
                let resume = resume_token();
                let next_counter = self.next_counters.get(&peer).copied().unwrap_or(1);
                let (mut client, snapshot) = match self.parked.remove(&peer) {
                    // Resumed: the parked outbox holds exactly what the client lacks.
                    Some(parked) if resumed => {
                        let mut client = parked.client;
                        client.link.outbox.forget_in_flight();
                        link.outbox = std::mem::take(&mut client.link.outbox);
                        link.received = std::mem::take(&mut client.link.received);
                        client.link = link;
                        (client, None)
                    }
                    _ => (
                        PeerLink {
                            link,
                            client_ticks: FxHashMap::default(),
                            despawned_at: FxHashMap::default(),
                            resume,
                        },
                        Some(self.world.snapshot(config.max_chunk_bytes)),
                    ),
                };
                // The acceptance (bare), the newest dictionary of each kind, then the
                // snapshot chunks (which may use them: the stream keeps the order).
                let link = &mut client.link;
                link.backlog.push_back(encoder.join_accepted(&Acceptance {
                    peer,
                    host_peer: self.shared.host_peer,
                    tick: snapshot.as_ref().map_or(self.world.tick(), |s| s.tick),
                    snapshot_chunks: snapshot.as_ref().map_or(0, |s| s.chunks.len() as u32),
                    next_counter,
                    resume: &resume,
                    resumed: snapshot.is_none(),
                    max_chunk_bytes: u32::try_from(config.max_chunk_bytes).unwrap_or(u32::MAX),
                }));
                let welcome = self.compression.welcome(&mut link.dicts, encoder);
                link.backlog.extend(welcome);
                for chunk in snapshot.map(|s| s.chunks).unwrap_or_default() {
                    link.diagnostics.snapshot_bytes += chunk.bytes.len() as u64;
                    let values = message_values(&chunk.bytes);
                    link.queue(
                        MessageKind::SnapshotChunk,
                        &chunk.bytes,
                        &values,
                        &mut self.compression,
                        now,
                    );
                }
                client.resume = resume;
                self.shared
                    .resumable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&peer);
                // The newcomer learns who is here; the others learn of it.
                for (&other, connected) in &mut self.peers {
                    connected
                        .link
                        .backlog
                        .push_back(control_message(&encoder.peer_joined(peer)));
                    client
                        .link
                        .backlog
                        .push_back(control_message(&encoder.peer_joined(other)));
                }
                hub.welcome(peer);
                self.peers.insert(peer, client);
                events.push_back(SessionEvent::PeerJoined { peer });
            }
            NetEvent::Datagram { peer, bytes, at } => {
                let Some(client) = self.peers.get_mut(&peer) else {
                    return;
                };
                if is_pose_datagram(&bytes) {
                    client.link.receive_poses(hub, &bytes, at, true);
                    return;
                }
                let Some(message) = client.link.open_datagram(&bytes, &mut self.compression) else {
                    return;
                };
                if let Some(frame) = client.link.receive(&message, now) {
                    let counter = self.next_counters.entry(peer).or_insert(1);
                    apply_client_frame(
                        &mut self.world,
                        client,
                        peer,
                        frame,
                        counter,
                        encoder,
                        events,
                    );
                }
            }
            NetEvent::Stream { peer, bytes } => {
                let Some(client) = self.peers.get_mut(&peer) else {
                    return;
                };
                client.link.diagnostics.payload_bytes_received += bytes.len() as u64;
                let message = match split_stream_message(&bytes) {
                    Some((StreamKind::Control, frame)) => Compression::decode_control(frame),
                    // A value too large for a datagram, in a delta frame.
                    Some((StreamKind::DeltaFrame, frame)) => {
                        let streams = &mut client.link.streams;
                        match self.compression.decode_stream(
                            MessageKind::DeltaFrame,
                            frame,
                            streams,
                        ) {
                            Ok(message) => Ok(message),
                            // Counted by the codec, per kind and cause.
                            Err(e) => {
                                client.link.close_if_stream_broken(frame, &e);
                                return;
                            }
                        }
                    }
                    // Clients send no snapshots; anything else is not a stream message.
                    Some((StreamKind::SnapshotChunk, _)) | None => {
                        client.link.diagnostics.malformed += 1;
                        return;
                    }
                };
                match message.as_deref().map(wire::decode) {
                    Ok(Ok(Message::DictionaryAck(ack))) => {
                        client.link.dicts.acknowledge(ack.id());
                    }
                    Ok(Ok(Message::DeltaFrame(frame))) => {
                        let counter = self.next_counters.entry(peer).or_insert(1);
                        apply_client_frame(
                            &mut self.world,
                            client,
                            peer,
                            frame,
                            counter,
                            encoder,
                            events,
                        );
                    }
                    _ => client.link.diagnostics.malformed += 1,
                }
            }
            NetEvent::Closed { peer, reason, .. } => {
                hub.forget(peer);
                if let Some(client) = self.peers.remove(&peer) {
                    let notice = control_message(&encoder.peer_left(peer, &reason));
                    for other in self.peers.values_mut() {
                        other.link.backlog.push_back(notice.clone());
                    }
                    events.push_back(SessionEvent::PeerLeft { peer, reason });
                    // Kept for the client to resume within the grace period.
                    self.shared
                        .resumable
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(peer, client.resume);
                    self.parked.insert(
                        peer,
                        Parked {
                            client,
                            since: Instant::now(),
                        },
                    );
                }
                self.shared
                    .connected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&peer);
            }
            NetEvent::Refused { from, reason } => {
                self.joins_refused += 1;
                events.push_back(SessionEvent::JoinRefused { from, reason });
            }
            NetEvent::Joined { .. } => {}
        }
    }

    fn send(&mut self, now: Instant, config: &SessionConfig, encoder: &mut Encoder) {
        match self.world.delta_since(self.marked) {
            Ok(delta) => {
                let parked = self
                    .parked
                    .iter_mut()
                    .map(|(peer, p)| (peer, &mut p.client));
                for (&peer, client) in self.peers.iter_mut().chain(parked) {
                    // A client's own entities are not echoed back to it.
                    client
                        .link
                        .outbox
                        .mark_delta(&delta, |e| e.creator() == peer);
                }
                self.marked = delta.tick;
            }
            Err(_) => {
                // History lost (the engine did not tick for a long time): every peer gets
                // a fresh snapshot, which also removes what it should no longer hold.
                let snapshot = self.world.snapshot(config.max_chunk_bytes);
                let chunks: Vec<_> = snapshot
                    .chunks
                    .iter()
                    .map(|c| (&c.bytes, message_values(&c.bytes)))
                    .collect();
                for client in self.peers.values_mut() {
                    client.link.outbox = Outbox::default();
                    for (bytes, values) in &chunks {
                        client.link.queue(
                            MessageKind::SnapshotChunk,
                            bytes,
                            values,
                            &mut self.compression,
                            now,
                        );
                    }
                }
                self.marked = snapshot.tick;
            }
        }
        self.update_dictionaries(now, encoder);
        for client in self.peers.values_mut() {
            client.link.send(
                &self.world,
                self.marked,
                now,
                config.budget_bytes_per_tick,
                encoder,
                &mut self.compression,
            );
        }
        let expired: Vec<PeerId> = self
            .parked
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) > config.resume_grace)
            .map(|(&peer, _)| peer)
            .collect();
        if !expired.is_empty() {
            let mut resumable = self
                .shared
                .resumable
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for peer in expired {
                self.parked.remove(&peer);
                resumable.remove(&peer);
            }
        }
        self.world.advance();
    }
}

/// Applies a client's frame to the host world: checked whole first (a malformed frame is
/// dropped and counted), then per key if newer than what that client wrote before, and
/// only for entities the client created; other writes are refused, counted and reported.
fn apply_client_frame(
    world: &mut World,
    client: &mut PeerLink,
    peer: PeerId,
    frame: fb::DeltaFrame<'_>,
    next_counter: &mut u64,
    encoder: &mut Encoder,
    events: &mut VecDeque<SessionEvent>,
) {
    let checked = (|| -> Result<_, WireError> {
        let spawns = wire::read_entities(frame.spawns(), "spawns")?;
        let despawns = wire::read_entities(frame.despawns(), "despawns")?;
        let mut batches = Vec::new();
        if let Some(list) = frame.batches() {
            wire::check_ascending(
                list.iter().map(|b| b.component()),
                list.len(),
                "component batches",
            )?;
            for batch in list.iter() {
                let id = ComponentId(batch.component());
                let layout = world
                    .registry()
                    .get(id)
                    .ok_or(WireError::UnknownComponent(id))?
                    .layout;
                batches.push(BatchView::parse(batch, layout)?);
            }
        }
        let mut removes = Vec::new();
        if let Some(list) = frame.removes() {
            wire::check_ascending(
                list.iter().map(|r| r.component()),
                list.len(),
                "remove batches",
            )?;
            for remove in list.iter() {
                let view = RemoveView::parse(remove)?;
                if world.registry().get(view.component()).is_none() {
                    return Err(WireError::UnknownComponent(view.component()));
                }
                removes.push(view);
            }
        }
        Ok((spawns, batches, removes, despawns))
    })();
    let Ok((spawns, batches, removes, despawns)) = checked else {
        client.link.diagnostics.malformed += 1;
        return;
    };
    let tick = frame.tick();
    let mut rejected = 0usize;
    let mut reject = |client: &mut PeerLink, entity: EntityId, component: ComponentId| {
        let reason = format!(
            "entity {entity} belongs to peer {}, not to peer {peer}",
            entity.creator()
        );
        client.link.diagnostics.writes_rejected += 1;
        if rejected < REJECTIONS_REPORTED {
            client
                .link
                .backlog
                .push_back(control_message(&encoder.write_rejected(
                    entity.0,
                    component.0,
                    &reason,
                )));
            events.push_back(SessionEvent::WriteRejected {
                peer,
                entity,
                component,
                reason,
            });
        }
        rejected += 1;
    };
    // Latest wins per key by client tick; records the tick when it does.
    let newer = |client: &mut PeerLink, key: Key| match client.client_ticks.get(&key) {
        Some(&seen) if seen >= tick => false,
        _ => {
            client.client_ticks.insert(key, tick);
            true
        }
    };
    // An entity of this client that is not alive: spawned by this frame's tick unless the
    // client despawned it later.
    let mut ensure_alive = |world: &mut World, client: &PeerLink, entity: EntityId| {
        if world.is_alive(entity) {
            return true;
        }
        if client.despawned_at.get(&entity).is_some_and(|&t| t >= tick) {
            return false;
        }
        world.spawn_with_id(entity, Stamp::Local);
        *next_counter = (*next_counter).max(entity.counter() + 1);
        true
    };
    for entity in spawns {
        if entity.creator() != peer {
            reject(client, entity, ComponentId(0));
        } else if newer(client, (ComponentId(0), entity)) {
            ensure_alive(world, client, entity);
        }
    }
    for batch in &batches {
        let component = batch.component();
        for entry in batch.iter() {
            if entry.entity.creator() != peer {
                reject(client, entry.entity, component);
            } else if newer(client, (component, entry.entity))
                && ensure_alive(world, client, entry.entity)
            {
                // Checked against the layout above; the entity is alive.
                let _ = world.set(entry.entity, component, entry.bytes);
            }
        }
    }
    for remove in &removes {
        for entity in remove.entities() {
            if entity.creator() != peer {
                reject(client, entity, remove.component());
            } else if newer(client, (remove.component(), entity)) && world.is_alive(entity) {
                let _ = world.remove(entity, remove.component());
            }
        }
    }
    for entity in despawns {
        if entity.creator() != peer {
            reject(client, entity, ComponentId(0));
        } else if newer(client, (ComponentId(0), entity)) {
            client.despawned_at.insert(entity, tick);
            if world.is_alive(entity) {
                let _ = world.despawn(entity);
            }
        }
    }
}

impl Client {
    fn handle(
        &mut self,
        event: NetEvent,
        now: Instant,
        encoder: &mut Encoder,
        events: &mut VecDeque<SessionEvent>,
        hub: &mut PoseHub,
    ) {
        match event {
            NetEvent::Joined {
                peer,
                tick,
                snapshot_chunks,
                next_counter,
                conn,
                stream,
                resume,
                resumed,
                bounds,
            } => {
                self.compression.set_bounds(&bounds);
                let poses = PoseLink::new(peer, hub.config().volume, true, now);
                let mut link = Link::new(conn, stream, peer, poses);
                link.dicts = PeerDicts::to_host();
                // The host sends its dictionaries again on every connection.
                self.compression.clear_dictionaries();
                self.resume = resume;
                self.closed = false;
                match self.link.take() {
                    // Resumed: the replica and this client's own pending writes carry on.
                    Some(old) if resumed => {
                        let mut outbox = old.outbox;
                        outbox.forget_in_flight();
                        link.outbox = outbox;
                        link.received = old.received;
                    }
                    _ => {
                        self.peer = Some(peer);
                        self.replica.set_owner(peer, next_counter);
                        // Own changes count from here (this also closes the replica's tick).
                        self.marked = self
                            .replica
                            .owned_delta_since(self.replica.world().tick())
                            .map_or(self.marked, |d| d.tick);
                        if snapshot_chunks == 0 {
                            self.replica.apply_empty_snapshot(tick);
                        }
                    }
                }
                self.link = Some(link);
                events.push_back(SessionEvent::Joined { peer });
            }
            NetEvent::Stream { bytes, .. } => {
                let Some(link) = &mut self.link else { return };
                link.diagnostics.payload_bytes_received += bytes.len() as u64;
                match split_stream_message(&bytes) {
                    Some((StreamKind::Control, frame)) => {
                        let message = Compression::decode_control(frame);
                        match message.as_deref().map(wire::decode) {
                            Ok(Ok(Message::WriteRejected(rejected))) => {
                                events.push_back(SessionEvent::WriteRejected {
                                    peer: self.peer.unwrap_or_default(),
                                    entity: EntityId(rejected.entity()),
                                    component: ComponentId(rejected.component()),
                                    reason: rejected.reason().unwrap_or("refused").to_owned(),
                                })
                            }
                            Ok(Ok(Message::Dictionary(dictionary))) => {
                                if let Some(id) = self.compression.accept(dictionary) {
                                    link.backlog
                                        .push_back(control_message(&encoder.dictionary_ack(id)));
                                }
                            }
                            Ok(Ok(Message::PeerJoined(joined))) => {
                                hub.welcome(joined.peer());
                                events.push_back(SessionEvent::PeerJoined {
                                    peer: joined.peer(),
                                });
                            }
                            Ok(Ok(Message::PeerLeft(left))) => {
                                hub.forget(left.peer());
                                events.push_back(SessionEvent::PeerLeft {
                                    peer: left.peer(),
                                    reason: left.reason().unwrap_or("left").to_owned(),
                                });
                            }
                            Ok(Ok(Message::DictionaryRetire(retire))) => {
                                self.compression.drop_dictionaries(retire.ids().iter());
                            }
                            _ => link.diagnostics.malformed += 1,
                        }
                    }
                    Some((kind, frame)) => {
                        let kind = kind.message_kind().unwrap_or(MessageKind::DeltaFrame);
                        // A decode failure is counted by the codec, per kind and cause.
                        let streams = &mut link.streams;
                        match self.compression.decode_stream(kind, frame, streams) {
                            Ok(message) => match self.replica.apply(&message) {
                                Ok(crate::Applied::SnapshotChunk { .. }) => {
                                    link.diagnostics.snapshot_bytes += message.len() as u64;
                                }
                                Ok(_) => {}
                                Err(_) => link.diagnostics.malformed += 1,
                            },
                            Err(e) => link.close_if_stream_broken(frame, &e),
                        }
                    }
                    None => link.diagnostics.malformed += 1,
                }
            }
            NetEvent::Datagram { bytes, at, .. } => {
                let Some(link) = &mut self.link else { return };
                if is_pose_datagram(&bytes) {
                    link.receive_poses(hub, &bytes, at, false);
                    return;
                }
                let Some(message) = link.open_datagram(&bytes, &mut self.compression) else {
                    return;
                };
                if let Some(frame) = link.receive(&message, now) {
                    // A refused frame changes nothing; the host sends newer state.
                    if self.replica.apply_frame_in(frame, message.len()).is_err() {
                        link.diagnostics.malformed += 1;
                    }
                }
            }
            NetEvent::Closed { reason, cause, .. } => {
                if !self.closed {
                    self.closed = true;
                    events.push_back(SessionEvent::Disconnected { reason, cause });
                }
            }
            NetEvent::PeerJoined { .. } | NetEvent::Refused { .. } => {}
        }
        let polled = self.replica.poll_events(usize::MAX);
        for e in polled.iter() {
            events.push_back(SessionEvent::Replica {
                kind: e.kind,
                entity: e.entity,
                component: e.component,
                tick: e.tick,
                data: e.data.to_vec(),
            });
        }
    }

    fn send(&mut self, now: Instant, config: &SessionConfig, encoder: &mut Encoder) {
        let Some(link) = &mut self.link else { return };
        if let Ok(delta) = self.replica.owned_delta_since(self.marked) {
            let owner = self.peer;
            link.outbox
                .mark_delta(&delta, |e| Some(e.creator()) != owner);
            self.marked = delta.tick;
        }
        link.send(
            self.replica.world(),
            self.marked,
            now,
            config.budget_bytes_per_tick,
            encoder,
            &mut self.compression,
        );
    }
}

/// Host: accepts connections and runs admission on each, at most as many at once as
/// `gate` allows (see [`super::admission`]), each within `admission_timeout` from its
/// first packet to a checked join request.
async fn accept_loop(
    endpoint: quinn::Endpoint,
    shared: Arc<HostShared>,
    tx: mpsc::Sender<NetEvent>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    gate: Arc<Gate>,
    admission_timeout: Duration,
) {
    while let Some(incoming) = endpoint.accept().await {
        let from = incoming.remote_address();
        let ticket = match gate.enter(from.ip(), incoming.remote_address_validated()) {
            Verdict::Admit(ticket) => ticket,
            Verdict::Retry => {
                // A retry holds nothing here; the client comes back with its address
                // validated (or not at all). Refused when quinn cannot ask for one.
                if let Err(e) = incoming.retry() {
                    e.into_incoming().refuse();
                }
                continue;
            }
            Verdict::Refuse => {
                incoming.refuse();
                continue;
            }
        };
        let (shared, tx, dropped) = (Arc::clone(&shared), tx.clone(), Arc::clone(&dropped));
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + admission_timeout;
            // Handshake failures (wrong ALPN, TLS errors) and handshakes past the deadline
            // end here; nothing was allocated for the peer.
            let Ok(Ok(conn)) = tokio::time::timeout_at(deadline, incoming).await else {
                return;
            };
            admit(conn, shared, tx, dropped, deadline, ticket).await;
        });
    }
}

/// Reads the join request (by `deadline`) and checks it before anything is allocated for
/// the peer; `ticket` holds the connection's place among those awaiting admission until
/// it is admitted or refused. Until then the connection may hold at most
/// [`tls::ADMISSION_RECEIVE_WINDOW`] of stream data, and its datagrams are dropped as
/// they come; an admitted peer's window is widened to [`tls::ADMITTED_RECEIVE_WINDOW`].
async fn admit(
    conn: quinn::Connection,
    shared: Arc<HostShared>,
    tx: mpsc::Sender<NetEvent>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    deadline: tokio::time::Instant,
    ticket: Ticket,
) {
    let request = async {
        let (send, mut recv) = conn.accept_bi().await.ok()?;
        let bytes = read_message(&mut recv, MAX_JOIN_REQUEST).await.ok()?;
        Some((send, recv, bytes))
    };
    // Nothing is owed to a peer before admission: its datagrams are read and dropped, so
    // that they do not pile up in quinn's buffer (nor pin its receive buffers).
    let drain = async { while conn.read_datagram().await.is_ok() {} };
    let request = tokio::time::timeout_at(deadline, async {
        tokio::select! {
            request = request => request,
            () = drain => None,
        }
    })
    .await;
    let Ok(Some((mut send, recv, bytes))) = request else {
        conn.close(CLOSE_REFUSED.into(), b"no join request");
        return;
    };
    let verdict = match wire::decode(&bytes) {
        Ok(Message::JoinRequest(request)) => match request.resume() {
            Some(resume) => check_resume(
                &shared,
                request.peer(),
                resume.bytes(),
                request.registry_hash(),
            )
            .map(|peer| (peer, true)),
            None => check_join(&shared, request.token(), request.registry_hash())
                .map(|peer| (peer, false)),
        },
        _ => Err((
            fb::RefuseReason::Malformed,
            "malformed join request".to_owned(),
        )),
    };
    let peer = match verdict {
        Ok(peer) => peer,
        Err((reason, message)) => {
            // Reported to the engine; dropped rather than waited for if the queue is full.
            let _ = tx.try_send(NetEvent::Refused {
                from: conn.remote_address(),
                reason: message.clone(),
            });
            // Only a peer whose token checked out gets this far with a registry mismatch:
            // it is told the host's types, to name what differs.
            let types: &[ComponentDescriptor] = match reason {
                fb::RefuseReason::RegistryMismatch => &shared.types,
                _ => &[],
            };
            let refusal = Encoder::new().join_refused_with_types(reason, &message, types);
            // Give the refusal a moment to arrive before the close overtakes it, but no
            // more: a peer that does not read it keeps its place only that long.
            let _ = tokio::time::timeout(REFUSAL_GRACE, async {
                write_message(&mut send, &refusal).await?;
                let _ = send.finish();
                let _ = tokio::time::timeout(Duration::from_millis(200), send.stopped()).await;
                Ok::<_, super::framing::FramingError>(())
            })
            .await;
            conn.close(CLOSE_REFUSED.into(), message.as_bytes());
            return;
        }
    };
    drop(ticket);
    conn.set_receive_window(tls::ADMITTED_RECEIVE_WINDOW.into());
    let (stream_tx, stream_rx) = mpsc::channel(STREAM_QUEUE);
    let (peer, resumed) = peer;
    let joined = NetEvent::PeerJoined {
        peer,
        conn: conn.clone(),
        stream: stream_tx,
        resumed,
    };
    if tx.send(joined).await.is_err() {
        return;
    }
    tokio::spawn(write_stream(send, stream_rx));
    let burst = CLIENT_DECODE_BURST.max(2 * shared.stream_bound as u64);
    let pacer = DecodePacer::new(CLIENT_DECODE_RATE, burst);
    run_connection(
        conn,
        peer,
        recv,
        tx,
        dropped,
        PeerRules {
            max_message: shared.stream_bound,
            pacer: Some(pacer),
            goodbye: CLIENT_GOODBYE,
        },
    )
    .await;
}

/// Checks a resume request: the token the host gave `peer` for its parked state, in
/// constant time, then the registry (nothing is told to a peer without a valid token).
fn check_resume(
    shared: &HostShared,
    peer: PeerId,
    presented: &[u8],
    registry_hash: u64,
) -> Result<PeerId, (fb::RefuseReason, String)> {
    let unknown = || {
        (
            fb::RefuseReason::ResumeUnknown,
            format!("resume token of peer {peer} unknown or expired: join with a fresh token"),
        )
    };
    let mut resumable = shared.resumable.lock().unwrap_or_else(|p| p.into_inner());
    let Some(expected) = resumable.get(&peer) else {
        return Err(unknown());
    };
    let differs = presented.len() != expected.len()
        || presented
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
        || expected.iter().all(|&b| b == 0);
    if differs {
        return Err(unknown());
    }
    if registry_hash != shared.registry_hash {
        return Err(registry_mismatch(shared, registry_hash));
    }
    let mut connected = shared.connected.lock().unwrap_or_else(|p| p.into_inner());
    if !connected.insert(peer) {
        return Err((
            fb::RefuseReason::PeerInUse,
            format!("peer {peer} is connected already"),
        ));
    }
    // One use: the token is spent, a new one comes with the acceptance.
    resumable.remove(&peer);
    Ok(peer)
}

/// The refusal of a client whose registry hash differs from the host's; the client names
/// the differing types from the host's list that comes with it.
fn registry_mismatch(shared: &HostShared, registry_hash: u64) -> (fb::RefuseReason, String) {
    (
        fb::RefuseReason::RegistryMismatch,
        format!(
            "component registry mismatch: client {registry_hash:#018x}, host {:#018x} (the client was sent the host's {} component types)",
            shared.registry_hash,
            shared.types.len()
        ),
    )
}

fn check_join(
    shared: &HostShared,
    token: &str,
    registry_hash: u64,
) -> Result<PeerId, (fb::RefuseReason, String)> {
    let claims = shared
        .verifier
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .verify(token, unix_now())
        .map_err(|e| {
            let reason = match e {
                TokenError::Malformed(_) => fb::RefuseReason::TokenMalformed,
                TokenError::Forged => fb::RefuseReason::TokenForged,
                TokenError::Expired { .. } => fb::RefuseReason::TokenExpired,
                _ => fb::RefuseReason::TokenReplayed,
            };
            (reason, e.to_string())
        })?;
    if registry_hash != shared.registry_hash {
        return Err(registry_mismatch(shared, registry_hash));
    }
    let peer = claims.peer();
    let mut connected = shared.connected.lock().unwrap_or_else(|p| p.into_inner());
    if peer == shared.host_peer || !connected.insert(peer) {
        return Err((
            fb::RefuseReason::PeerInUse,
            format!("peer {peer} is connected already"),
        ));
    }
    Ok(peer)
}

/// Writes the engine's stream messages in order.
async fn write_stream(mut send: quinn::SendStream, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(message) = rx.recv().await {
        if write_message(&mut send, &message).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
}

/// How one side reads its peer's connection.
struct PeerRules {
    /// Longest stream message the peer may send (see [`max_stream_message`]): a longer
    /// one breaks the stream and ends the connection.
    max_message: usize,
    /// With a pacer, what the messages would decompress to is paced before they reach the
    /// engine thread (host: a client's stream).
    pacer: Option<DecodePacer>,
    /// What the peer's goodbye means here.
    goodbye: Goodbye,
}

/// Reads datagrams and stream messages of an admitted connection until it closes, by
/// `rules`.
async fn run_connection(
    conn: quinn::Connection,
    peer: PeerId,
    mut recv: quinn::RecvStream,
    tx: mpsc::Sender<NetEvent>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    rules: PeerRules,
) {
    let PeerRules {
        max_message,
        mut pacer,
        goodbye,
    } = rules;
    let stream_tx = tx.clone();
    let stream_conn = conn.clone();
    // Ends true when the peer finished its stream cleanly: its goodbye.
    let mut reader = tokio::spawn(async move {
        loop {
            let bytes = match read_message(&mut recv, max_message).await {
                Ok(bytes) => bytes,
                Err(super::framing::FramingError::Finished) => return true,
                Err(e @ super::framing::FramingError::TooLarge { .. }) => {
                    let reason = format!("stream broken: {e}");
                    stream_conn.close(CLOSE_BROKEN_STREAM.into(), reason.as_bytes());
                    return false;
                }
                Err(_) => return false,
            };
            if let Some(pacer) = &mut pacer {
                pacer.take(decode_cost(&bytes, max_message)).await;
            }
            if stream_tx
                .send(NetEvent::Stream { peer, bytes })
                .await
                .is_err()
            {
                return false;
            }
        }
    });
    let mut reading = true;
    let (reason, cause) = loop {
        tokio::select! {
            datagram = conn.read_datagram() => match datagram {
                Ok(bytes) if bytes[..] == GOODBYE_DATAGRAM => {
                    conn.close(CLOSE_SHUTDOWN.into(), goodbye.reason.as_bytes());
                    break (goodbye.reason.to_owned(), goodbye.cause);
                }
                Ok(bytes) => {
                    // Datagrams are droppable by design; a full queue drops, and counts.
                    let at = Instant::now();
                    if tx.try_send(NetEvent::Datagram { peer, bytes, at }).is_err() {
                        dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Err(e) => break (describe(&e), DisconnectCause::of(&e)),
            },
            finished = &mut reader, if reading => {
                reading = false;
                if matches!(finished, Ok(true)) {
                    // Every message before the goodbye has reached the engine queue.
                    // Closing answers it: the peer stops waiting (see `Session::drop`).
                    conn.close(CLOSE_SHUTDOWN.into(), goodbye.reason.as_bytes());
                    break (goodbye.reason.to_owned(), goodbye.cause);
                }
            }
        }
    };
    reader.abort();
    let _ = tx
        .send(NetEvent::Closed {
            peer,
            reason,
            cause,
        })
        .await;
}

/// What a peer's goodbye means to this side: it is leaving, on purpose. A session that is
/// dropped finishes its streams (after what it queued on them) and repeats
/// [`GOODBYE_DATAGRAM`] until the peer answers by closing the connection, or a bound
/// passes (see `Session::drop`): where a lone QUIC close is lost on a lossy path and
/// leaves the peer waiting for its idle timeout, one of many goodbyes arrives.
struct Goodbye {
    reason: &'static str,
    cause: DisconnectCause,
}

/// A client's goodbye, as the host reports it ([`SessionEvent::PeerLeft`]).
const CLIENT_GOODBYE: Goodbye = Goodbye {
    reason: "client left",
    cause: DisconnectCause::Local,
};
/// The host's goodbye, as a client reports it ([`SessionEvent::Disconnected`]).
const HOST_GOODBYE: Goodbye = Goodbye {
    reason: "host shut down",
    cause: DisconnectCause::HostClosed,
};

/// What a client's connection task needs to join (or resume).
struct Dial {
    addr: SocketAddr,
    server_name: String,
    connect_timeout: Duration,
    /// The join (or resume) request.
    request: Vec<u8>,
    /// This client's component types, to name what differs when the host refuses them.
    registry: Registry,
    /// The codec configuration as given, bounded once the host's chunk size is known.
    codec: CodecConfig,
    /// This side's chunk size, for a host that does not say its own.
    max_chunk_bytes: usize,
}

impl Dial {
    fn new(
        addr: SocketAddr,
        config: &SessionConfig,
        request: Vec<u8>,
        registry: &Registry,
    ) -> Dial {
        Dial {
            addr,
            server_name: config.server_name.clone(),
            connect_timeout: config.connect_timeout,
            request,
            registry: registry.clone(),
            codec: config.codec,
            max_chunk_bytes: config.max_chunk_bytes,
        }
    }
}

/// Client: connects, presents the join request, and reads the answer.
async fn connect(
    endpoint: quinn::Endpoint,
    dial: Dial,
    tx: mpsc::Sender<NetEvent>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
) {
    let addr = dial.addr;
    let closed = |reason: String, cause: DisconnectCause| NetEvent::Closed {
        peer: 0,
        reason,
        cause,
    };
    let of = |e: &quinn::ConnectionError| (describe(e), DisconnectCause::of(e));
    let conn = match endpoint.connect(addr, &dial.server_name) {
        Ok(connecting) => match tokio::time::timeout(dial.connect_timeout, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                let _ = tx.send(closed(describe(&e), DisconnectCause::of(&e))).await;
                return;
            }
            Err(_) => {
                let reason = format!(
                    "no answer from {addr} within {} ms: is a host running there?",
                    dial.connect_timeout.as_millis()
                );
                let _ = tx.send(closed(reason, DisconnectCause::Unreachable)).await;
                return;
            }
        },
        Err(e) => {
            let reason = format!("cannot connect to {addr}: {e}");
            let _ = tx.send(closed(reason, DisconnectCause::Unreachable)).await;
            return;
        }
    };
    let answer = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| of(&e))?;
        write_message(&mut send, &dial.request)
            .await
            .map_err(|e| (e.to_string(), DisconnectCause::Protocol))?;
        let bytes = read_message(&mut recv, MAX_JOIN_ANSWER)
            .await
            .map_err(|_| {
                conn.close_reason().map_or_else(
                    || {
                        (
                            "the host closed the join stream".to_owned(),
                            DisconnectCause::Protocol,
                        )
                    },
                    |e| of(&e),
                )
            })?;
        Ok::<_, (String, DisconnectCause)>((send, recv, bytes))
    };
    let (send, recv, bytes) = match tokio::time::timeout(JOIN_TIMEOUT, answer).await {
        Ok(Ok(parts)) => parts,
        Ok(Err((reason, cause))) => {
            let _ = tx.send(closed(reason, cause)).await;
            return;
        }
        Err(_) => {
            let reason = "the host did not answer the join request".to_owned();
            let _ = tx.send(closed(reason, DisconnectCause::TimedOut)).await;
            return;
        }
    };
    let joined = match wire::decode(&bytes) {
        Ok(Message::JoinAccepted(accepted)) => {
            let chunk_bytes = match accepted.max_chunk_bytes() {
                0 => dial.max_chunk_bytes,
                bytes => bytes as usize,
            };
            let bounds = dial.codec.bounded_for(&dial.registry, chunk_bytes);
            let (stream, stream_rx) = mpsc::channel(STREAM_QUEUE);
            tokio::spawn(write_stream(send, stream_rx));
            NetEvent::Joined {
                peer: accepted.peer(),
                tick: accepted.tick(),
                snapshot_chunks: accepted.snapshot_chunks(),
                next_counter: accepted.next_counter(),
                conn: conn.clone(),
                stream,
                resume: accepted
                    .resume()
                    .map(|r| r.bytes().to_vec())
                    .unwrap_or_default(),
                resumed: accepted.resumed(),
                bounds,
            }
        }
        Ok(Message::JoinRefused(refused)) => {
            let reason = match (refused.reason(), refused.host_types()) {
                // The host's types: name what differs rather than two hashes.
                (fb::RefuseReason::RegistryMismatch, Some(types)) => {
                    match wire::read_descriptors(Some(types)) {
                        Ok(types) => registry_differences(&dial.registry, &types),
                        Err(_) => refused.message().unwrap_or("refused").to_owned(),
                    }
                }
                _ => refused.message().unwrap_or("refused").to_owned(),
            };
            let reason = format!("join refused: {reason}");
            let _ = tx.send(closed(reason, DisconnectCause::Refused)).await;
            return;
        }
        _ => {
            let reason = "malformed answer to the join request".to_owned();
            let _ = tx.send(closed(reason, DisconnectCause::Protocol)).await;
            return;
        }
    };
    let (peer, bound) = match &joined {
        NetEvent::Joined { peer, bounds, .. } => (*peer, max_stream_message(bounds)),
        _ => (0, 0),
    };
    if tx.send(joined).await.is_err() {
        return;
    }
    // The host is trusted (its certificate is pinned): its stream is not paced.
    let rules = PeerRules {
        max_message: bound,
        pacer: None,
        goodbye: HOST_GOODBYE,
    };
    run_connection(conn, peer, recv, tx, dropped, rules).await;
}

/// A connection error in words, with the host's reason when it gave one.
fn describe(error: &quinn::ConnectionError) -> String {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason);
            if u64::from(close.error_code) == u64::from(CLOSE_REFUSED) {
                format!("join refused: {reason}")
            } else {
                format!("closed by the peer: {reason}")
            }
        }
        quinn::ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            "the host refused the connection: it is admitting too many at once, try again"
                .to_owned()
        }
        quinn::ConnectionError::TimedOut => "connection timed out (idle)".to_owned(),
        quinn::ConnectionError::LocallyClosed => "closed locally".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_ask_for_larger_buffers_and_work() {
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sized = bind_udp("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let size = |s: &std::net::UdpSocket| {
            socket2::SockRef::from(s)
                .recv_buffer_size()
                .expect("SO_RCVBUF")
        };
        // The OS may cap what was asked, never give less than its default.
        assert!(
            size(&sized) >= size(&plain),
            "{} < {}",
            size(&sized),
            size(&plain)
        );
        eprintln!(
            "SO_RCVBUF: default {}, asked {SOCKET_BUFFER_BYTES}, got {}",
            size(&plain),
            size(&sized)
        );
        plain
            .send_to(b"ping", sized.local_addr().expect("addr"))
            .expect("send");
        let mut buf = [0u8; 8];
        sized
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let (n, _) = sized.recv_from(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"ping");
    }
}
