//! Sessions: a host and its clients over QUIC. [`Session`] drives the protocol core
//! ([`crate::proto::Host`], [`crate::proto::Client`]) over quinn: this module owns the
//! endpoint, TLS, the tokio runtime and the connection tasks ([`super::conn`]), and moves
//! bytes, times and dictionary trainings between them and the core; every protocol
//! decision is the core's.
//!
//! The engine thread owns the state (the host's world, a client's replica) and calls
//! [`Session::tick`]; the session's own tokio runtime (one worker thread) runs the
//! endpoint, admission and the readers, and meets the engine thread through a bounded
//! queue. `tick` never waits for the network: it drains what arrived, hands it to the
//! core, carries out what the core says, and returns. Dropping a session says goodbye to
//! its peers (bounded) and joins its runtime thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use super::admission::Gate;
use super::conn::{
    accept_loop, connect, Accepting, ConnHandle, Dial, Goodbye, NetEvent, PeerRules,
};
use super::faults::{faulty_endpoint, FaultControl};
use super::pacing::DecodePacer;
use super::tls::{self, CongestionControl, HostIdentity, ServerTrust};
use crate::proto::compression::{TrainError, TrainingDone};
use crate::proto::poses::{PoseConfig, PoseHub, PosePushError};
use crate::proto::token::JoinSecret;
use crate::proto::{self, ConnId, Output, Path, CLOSE_SHUTDOWN, GOODBYE_DATAGRAM};
use crate::registry::{ComponentId, Registry};
use crate::wire::codec::{CodecConfig, MessageKind};
use crate::world::{Change, EntityId, PeerId, World, WorldError};
use crate::xr::{ControllerState, Device, PoseSample, Sampled};
use crate::DEFAULT_MAX_CHUNK_BYTES;

pub use crate::proto::{DisconnectCause, PeerDiagnostics, SessionDiagnostics, SessionEvent};

/// What one admitted client's stream messages may make the host decompress, in bytes a
/// second ([`DecodePacer`]): a 1 MiB value every 16 ms, far above what an engine writes.
const CLIENT_DECODE_RATE: u64 = 64 << 20;
/// ... and at once (at least two of the largest messages its stream may carry).
const CLIENT_DECODE_BURST: u64 = 8 << 20;
/// Messages queued from the network to the engine thread.
const INBOUND_QUEUE: usize = 8192;
/// Longest wait, when a session is dropped, for its peers to answer its goodbye.
const GOODBYE_WAIT_MAX: Duration = Duration::from_secs(1);

/// A client's goodbye (its stream finished), as the host reports it.
const CLIENT_GOODBYE: Goodbye = Goodbye {
    reason: proto::CLIENT_LEFT,
    cause: DisconnectCause::Local,
};
/// The host's goodbye, as a client reports it.
const HOST_GOODBYE: Goodbye = Goodbye {
    reason: proto::HOST_SHUT_DOWN,
    cause: DisconnectCause::HostClosed,
};

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
    /// Codec and decompression bound per message kind (see [`crate::proto::compression`]). Default:
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

impl SessionConfig {
    /// The protocol's part of these settings.
    pub fn protocol(&self) -> proto::Config {
        proto::Config {
            budget_bytes_per_tick: self.budget_bytes_per_tick,
            max_chunk_bytes: self.max_chunk_bytes,
            resume_grace: self.resume_grace,
            poses: self.poses,
            codec: self.codec,
            train_after_samples: self.train_after_samples,
            dictionary_bytes: self.dictionary_bytes,
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

/// The protocol core a session drives.
enum Core {
    Host(Box<proto::Host>),
    Client(Box<proto::Client>),
}

/// A host or client session. See the module documentation.
pub struct Session {
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: quinn::Endpoint,
    inbound: mpsc::Receiver<NetEvent>,
    /// Where connection tasks report (kept to start another on reconnect).
    tx: mpsc::Sender<NetEvent>,
    core: Core,
    conns: FxHashMap<ConnId, ConnHandle>,
    next_conn: Arc<AtomicU64>,
    config: SessionConfig,
    inbound_dropped: Arc<AtomicU64>,
    /// Dictionary trainings run on the runtime's blocking pool, and their results back.
    trained_tx: std::sync::mpsc::Sender<TrainingDone>,
    trained: std::sync::mpsc::Receiver<TrainingDone>,
    /// Client: the host, to reconnect to.
    host_addr: Option<SocketAddr>,
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("theta-net")
        .enable_all()
        .build()
}

/// 32 fresh random bytes, the seed of the core's resume tokens.
fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    // SystemRandom fails only when the OS has no randomness; the tokens are then still
    // distinct (a counter under the seed), only guessable.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
    seed
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
        let host = match proto::Host::new(world, secret, config.protocol(), Instant::now(), seed())
        {
            Ok(host) => host,
            Err(e) => {
                return Err(HostError {
                    error: e.error.into(),
                    world: e.world,
                })
            }
        };
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let next_conn = Arc::new(AtomicU64::new(1));
        runtime.spawn(accept_loop(
            endpoint.clone(),
            Gate::new(config.max_pending_admissions),
            Accepting {
                tx: tx.clone(),
                dropped: Arc::clone(&dropped),
                next_conn: Arc::clone(&next_conn),
                admission_timeout: config.admission_timeout,
            },
        ));
        Ok(Session::new(
            runtime,
            endpoint,
            (tx, inbound),
            Core::Host(Box::new(host)),
            next_conn,
            config,
            dropped,
            None,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        runtime: tokio::runtime::Runtime,
        endpoint: quinn::Endpoint,
        (tx, inbound): (mpsc::Sender<NetEvent>, mpsc::Receiver<NetEvent>),
        core: Core,
        next_conn: Arc<AtomicU64>,
        config: SessionConfig,
        inbound_dropped: Arc<AtomicU64>,
        host_addr: Option<SocketAddr>,
    ) -> Session {
        let (trained_tx, trained) = std::sync::mpsc::channel();
        Session {
            runtime: Some(runtime),
            endpoint,
            inbound,
            tx,
            core,
            conns: FxHashMap::default(),
            next_conn,
            config,
            inbound_dropped,
            trained_tx,
            trained,
            host_addr,
        }
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
        let client = proto::Client::new(registry, token, config.protocol(), Instant::now())?;
        let runtime = runtime()?;
        let mut transport = tls::client_transport_config(config.idle_timeout, config.keep_alive);
        config.congestion.apply(&mut transport);
        let client_config = tls::client_config(trust, Arc::new(transport))?;
        let local: SocketAddr = match addr.ip() {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let mut endpoint = {
            let _guard = runtime.enter();
            endpoint(local, None, config.faults.as_ref())?
        };
        endpoint.set_default_client_config(client_config);
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut session = Session::new(
            runtime,
            endpoint,
            (tx, inbound),
            Core::Client(Box::new(client)),
            Arc::new(AtomicU64::new(1)),
            config,
            dropped,
            Some(addr),
        );
        session.dial();
        Ok(session)
    }

    /// Client: starts a connection task to the host.
    fn dial(&mut self) {
        let (Some(addr), Some(runtime)) = (self.host_addr, &self.runtime) else {
            return;
        };
        let dial = Dial {
            id: ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed)),
            addr,
            server_name: self.config.server_name.clone(),
            connect_timeout: self.config.connect_timeout,
        };
        runtime.spawn(connect(
            self.endpoint.clone(),
            dial,
            self.tx.clone(),
            Arc::clone(&self.inbound_dropped),
        ));
    }

    /// Reconnects a client whose connection dropped, resuming its state: the host sends
    /// what changed since the client last acknowledged (no snapshot) while it still keeps
    /// that state (`SessionConfig::resume_grace`); after that the reconnect is refused and
    /// the client joins again with a fresh token. `Joined` or `Disconnected` follows.
    pub fn reconnect(&mut self) -> Result<(), SessionError> {
        let Core::Client(client) = &mut self.core else {
            return Err(SessionError::WrongRole("client"));
        };
        client.reconnect().map_err(|e| {
            SessionError::CannotResume(match e {
                proto::CannotResume::NeverAdmitted => "this client was never admitted",
                proto::CannotResume::StillConnected => "the connection is still up",
                proto::CannotResume::NoToken => "the host gave no resume token",
            })
        })?;
        self.dial();
        Ok(())
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The replicated state: the host's world, or a client's copy of it.
    pub fn world(&self) -> &World {
        match &self.core {
            Core::Host(host) => host.world(),
            Core::Client(client) => client.world(),
        }
    }

    /// The host's world, to write; an error on a client.
    pub fn host_world(&mut self) -> Result<&mut World, SessionError> {
        match &mut self.core {
            Core::Host(host) => Ok(host.world_mut()),
            Core::Client(_) => Err(SessionError::WrongRole("host")),
        }
    }

    /// Creates an entity owned by this peer: on the host in its id range, on a client (once
    /// joined) in the client's.
    pub fn spawn(&mut self) -> Result<EntityId, WorldError> {
        match &mut self.core {
            Core::Host(host) => host.spawn(),
            Core::Client(client) => client.spawn(),
        }
    }

    /// Writes a value of an entity this peer owns; others are `WorldError::NotOwner`.
    pub fn set(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        bytes: &[u8],
    ) -> Result<Change, WorldError> {
        match &mut self.core {
            Core::Host(host) => host.set(entity, component, bytes),
            Core::Client(client) => client.set(entity, component, bytes),
        }
    }

    /// Removes a component from an entity this peer owns.
    pub fn remove(&mut self, entity: EntityId, component: ComponentId) -> Result<bool, WorldError> {
        match &mut self.core {
            Core::Host(host) => host.remove(entity, component),
            Core::Client(client) => client.remove(entity, component),
        }
    }

    /// Destroys an entity this peer owns.
    pub fn despawn(&mut self, entity: EntityId) -> Result<(), WorldError> {
        match &mut self.core {
            Core::Host(host) => host.despawn(entity),
            Core::Client(client) => client.despawn(entity),
        }
    }

    /// Hash of the replicated state (equal on every peer once converged).
    pub fn state_hash(&self) -> u64 {
        self.world().state_hash()
    }

    /// This peer's id: the host's, or the one the host gave this client once joined.
    pub fn peer(&self) -> Option<PeerId> {
        match &self.core {
            Core::Host(host) => Some(host.peer()),
            Core::Client(client) => client.peer(),
        }
    }

    fn poses(&self) -> &PoseHub {
        match &self.core {
            Core::Host(host) => host.poses(),
            Core::Client(client) => client.poses(),
        }
    }

    fn poses_mut(&mut self) -> &mut PoseHub {
        match &mut self.core {
            Core::Host(host) => host.poses_mut(),
            Core::Client(client) => client.poses_mut(),
        }
    }

    /// Stores this peer's newest sample of a tracked device (time in `XrTime` nanoseconds,
    /// see [`Session::set_xr_time`]); the next ticks stream it to the other peers, at most
    /// `SessionConfig::poses.max_rate_hz` packets a second. NaN or infinite values, a zero
    /// quaternion, or a time before the device's previous sample are refused and nothing
    /// is stored; other quaternions are normalised.
    pub fn push_pose(&mut self, device: Device, sample: &PoseSample) -> Result<(), PosePushError> {
        self.poses_mut().push(device, sample)
    }

    /// Stores the input state of a controller whose pose was pushed; it travels with the
    /// device's samples until the peers acknowledge it.
    pub fn push_controller(
        &mut self,
        device: Device,
        state: &ControllerState,
    ) -> Result<(), PosePushError> {
        self.poses_mut().push_controller(device, state)
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
        self.poses_mut().sample(peer, device, display_time)
    }

    /// The newest controller state of another peer's device.
    pub fn controller_state(&self, peer: PeerId, device: Device) -> Option<ControllerState> {
        self.poses().controller(peer, device)
    }

    /// The other peers' devices this session has samples of, as (peer, device).
    pub fn remote_devices(&self) -> Vec<(PeerId, Device)> {
        self.poses().remote_devices()
    }

    /// Declares that the engine's `XrTime` is `xr_now` at this moment, so pose times and
    /// [`Session::now`] share the engine's clock. Without it, times are nanoseconds since
    /// the session started.
    pub fn set_xr_time(&mut self, xr_now: i64) {
        self.poses_mut().set_xr_time(xr_now, Instant::now());
    }

    /// The session clock now, in the engine's `XrTime` nanoseconds (see
    /// [`Session::set_xr_time`]).
    pub fn now(&self) -> i64 {
        self.poses().local_ns(Instant::now())
    }

    /// Takes up to `max` events, oldest first.
    pub fn poll_events(&mut self, max: usize) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        while events.len() < max {
            let event = match &mut self.core {
                Core::Host(host) => host.poll_event(),
                Core::Client(client) => client.poll_event(),
            };
            let Some(event) = event else { break };
            events.push(event);
        }
        events
    }

    /// One network tick: applies what arrived, sends what changed (host: closes the world's
    /// tick). Never waits for the network.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if let Core::Host(host) = &mut self.core {
            for done in self.trained.try_iter() {
                host.finish_training(done);
            }
        }
        while let Ok(event) = self.inbound.try_recv() {
            self.handle(event, now);
        }
        let conns = &mut self.conns;
        let mut path = |id: ConnId| {
            conns.get_mut(&id).map_or(
                Path {
                    max_datagram: 0,
                    rtt: Duration::ZERO,
                    budget: 0,
                },
                ConnHandle::path,
            )
        };
        match &mut self.core {
            Core::Host(host) => host.tick(now, path),
            Core::Client(client) => {
                if let Some(id) = client.connection() {
                    let path = path(id);
                    client.tick(now, path);
                }
            }
        }
        self.carry_out();
        for conn in self.conns.values_mut() {
            conn.sent();
        }
        if let (Core::Host(host), Some(runtime)) = (&mut self.core, &self.runtime) {
            for job in host.take_training_jobs() {
                let tx = self.trained_tx.clone();
                runtime.spawn_blocking(move || {
                    // The session may be gone by now; nobody is left to tell.
                    let _ = tx.send(job.run());
                });
            }
        }
    }

    /// Hands one thing the network tasks reported to the core.
    fn handle(&mut self, event: NetEvent, now: Instant) {
        match (event, &mut self.core) {
            (
                NetEvent::Join {
                    id,
                    handle,
                    from,
                    bytes,
                },
                Core::Host(host),
            ) => {
                self.conns.insert(id, handle);
                host.handle_join(id, Some(from), now, unix_now(), &bytes);
                // Admitted or refused now, not a tick later.
                self.carry_out();
            }
            (NetEvent::Connected { id, handle }, Core::Client(client)) => {
                self.conns.insert(id, handle);
                client.connected(id);
                self.carry_out();
            }
            (NetEvent::Datagram { id, bytes, at }, Core::Host(host)) => {
                host.handle_datagram(id, at, now, &bytes)
            }
            (NetEvent::Datagram { id, bytes, at }, Core::Client(client)) => {
                client.handle_datagram(id, at, now, &bytes)
            }
            (NetEvent::Stream { id, bytes }, Core::Host(host)) => {
                host.handle_stream(id, now, &bytes)
            }
            (NetEvent::Stream { id, bytes }, Core::Client(client)) => {
                client.handle_stream(id, now, &bytes);
                // An admission must reach the connection's task now: it waits for it.
                self.carry_out();
            }
            (NetEvent::Closed { id, reason, .. }, Core::Host(host)) => {
                self.conns.remove(&id);
                host.handle_closed(id, now, reason);
            }
            (NetEvent::Closed { id, reason, cause }, Core::Client(client)) => {
                self.conns.remove(&id);
                client.handle_closed(id, reason, cause);
            }
            (NetEvent::Failed { reason, cause }, Core::Client(client)) => {
                client.handle_connect_failed(reason, cause);
            }
            // A role's events never come to the other role.
            _ => {}
        }
    }

    /// Does what the core asked: bytes onto connections, admissions, closes.
    fn carry_out(&mut self) {
        loop {
            let output = match &mut self.core {
                Core::Host(host) => host.poll_output(),
                Core::Client(client) => client.poll_output(),
            };
            let Some(output) = output else { break };
            match output {
                Output::Send {
                    conn,
                    channel,
                    bytes,
                } => {
                    if let Some(handle) = self.conns.get_mut(&conn) {
                        match channel {
                            proto::Channel::Reliable => handle.send_reliable(bytes),
                            proto::Channel::Unreliable => handle.send_unreliable(bytes),
                        }
                    }
                }
                Output::Admitted {
                    conn,
                    read_bound,
                    paced,
                } => {
                    let (pacer, goodbye) = match self.core {
                        Core::Host(_) => {
                            let burst = CLIENT_DECODE_BURST.max(2 * read_bound as u64);
                            let pacer = DecodePacer::new(CLIENT_DECODE_RATE, burst);
                            (paced.then_some(pacer), CLIENT_GOODBYE)
                        }
                        Core::Client(_) => (None, HOST_GOODBYE),
                    };
                    if let Some(handle) = self.conns.get_mut(&conn) {
                        handle.admit(PeerRules {
                            max_message: read_bound,
                            pacer,
                            goodbye,
                        });
                    }
                }
                Output::Close { conn, code, reason } => {
                    if let (Some(handle), Some(runtime)) = (self.conns.remove(&conn), &self.runtime)
                    {
                        handle.close(code, reason, runtime.handle());
                    }
                }
            }
        }
        for handle in self.conns.values_mut() {
            handle.flush();
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
        match &mut self.core {
            Core::Host(host) => Ok(host.train_dictionary(kind)?),
            Core::Client(_) => Err(TrainError::NotHost.into()),
        }
    }

    /// Transport and replication figures.
    pub fn diagnostics(&self) -> SessionDiagnostics {
        let (mut d, conns): (SessionDiagnostics, Vec<Option<ConnId>>) = match &self.core {
            Core::Host(host) => {
                let d = host.diagnostics();
                let by_peer: FxHashMap<PeerId, ConnId> = host
                    .connections()
                    .map(|(conn, peer)| (peer, conn))
                    .collect();
                let conns = d
                    .peers
                    .iter()
                    .map(|p| by_peer.get(&p.peer).copied())
                    .collect();
                (d, conns)
            }
            Core::Client(client) => {
                let d = client.diagnostics();
                let conns = d.peers.iter().map(|_| client.connection()).collect();
                (d, conns)
            }
        };
        for (p, conn) in d.peers.iter_mut().zip(conns) {
            if let Some(handle) = conn.and_then(|c| self.conns.get(&c)) {
                fill_connection(p, &handle.conn);
            }
        }
        d.inbound_dropped = self.inbound_dropped.load(Ordering::Relaxed);
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

impl Drop for Session {
    /// Says goodbye to every peer and waits, bounded, for them to hear it: each
    /// connection's stream is finished after what was queued on it, and
    /// [`GOODBYE_DATAGRAM`] goes every quarter round trip (5 to 50 ms) until the peer
    /// answers by closing the connection. The wait is 4 round trips of the slowest peer
    /// plus 50 ms, at most [`GOODBYE_WAIT_MAX`], and ends as soon as every peer answered.
    /// Then the endpoint closes and the runtime thread is joined.
    fn drop(&mut self) {
        let reason: &[u8] = match self.core {
            Core::Host(_) => proto::HOST_SHUT_DOWN.as_bytes(),
            Core::Client(_) => proto::CLIENT_LEFT.as_bytes(),
        };
        let mut conns = Vec::with_capacity(self.conns.len());
        let mut rtt = Duration::ZERO;
        for handle in self.conns.values_mut() {
            handle.finish();
            rtt = rtt.max(handle.conn.rtt());
            conns.push(handle.conn.clone());
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
