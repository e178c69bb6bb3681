//! Sessions: a host and its clients. [`Session`] drives the protocol core
//! ([`crate::proto::Host`], [`crate::proto::Client`]) over one of two drivers: QUIC
//! ([`super::quic`]: the endpoint, TLS, a tokio runtime and the connection tasks), or the
//! engine's own transport ([`super::custom`]: connections, bytes and closes reported and
//! drained by the engine). Either way this module only moves bytes, times and dictionary
//! trainings between the driver and the core; every protocol decision is the core's.
//!
//! The engine thread owns the state (the host's world, a client's replica) and calls
//! [`Session::tick`], which never waits for the network: it hands the core what arrived,
//! carries out what the core says, and returns. Dropping a QUIC session says goodbye to
//! its peers (bounded) and joins its runtime thread; a custom session says goodbye when
//! asked ([`Session::leave`]), and the engine carries it out.

mod interest;
mod messages;
mod ownership;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::custom::{CustomDriver, CustomTransport, TransportError, TransportOutput};
use super::faults::FaultControl;
use super::quic::QuicDriver;
use super::tls::{self, CongestionControl, HostIdentity, ServerTrust};
use crate::proto::compression::{TrainError, TrainingDone};
use crate::proto::messages::MessageConfig;
use crate::proto::poses::{PoseConfig, PoseHub, PosePushError};
use crate::proto::token::JoinSecret;
use crate::proto::{self, Channel, ConnId, Output};
use crate::registry::{ComponentId, Registry};
use crate::wire::codec::{CodecConfig, MessageKind};
use crate::world::{Change, EntityId, PeerId, World, WorldError};
use crate::xr::{ControllerState, Device, PoseSample, Sampled};
use crate::DEFAULT_MAX_CHUNK_BYTES;

pub use super::quic::SOCKET_BUFFER_BYTES;
pub use crate::proto::{
    DisconnectCause, EventRef, PeerDiagnostics, SessionDiagnostics, SessionEvent,
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
    /// Host: how long a leased ownership grant outlives its holder's silence. Default 5 s.
    pub ownership_lease: Duration,
    /// Host: when set, ownership requests the policy would grant are put to the engine
    /// ([`SessionEvent::OwnershipRequested`], [`Session::decide_ownership`]) and refused
    /// if not answered within this time. Default `None` (the policy decides alone).
    pub ownership_hook: Option<Duration>,
    /// Host: interest management over cubic cells of this size in metres (about a
    /// client's view radius): each client gets only the entities it sees (see
    /// [`crate::interest`]). Default `None`: every client gets every entity.
    pub interest_cell: Option<f32>,
    /// Host: clients set what they see ([`Session::set_interest`]); when false only the
    /// host's engine does ([`Session::set_client_interest`]). Default true.
    pub interest_from_clients: bool,
    /// Host: values of fixed-size types go in state datagrams coded against the newest
    /// value each client acknowledged (fewer bytes after the codec). Default true.
    pub value_baselines: bool,
    /// Host: application messages' limits and filter (see [`crate::proto::messages`]).
    pub messages: MessageConfig,
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
            ownership_lease: Duration::from_secs(5),
            ownership_hook: None,
            interest_cell: None,
            interest_from_clients: true,
            value_baselines: true,
            messages: MessageConfig::default(),
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
            ownership_lease: self.ownership_lease,
            ownership_hook: self.ownership_hook,
            interest_cell: self.interest_cell,
            interest_from_clients: self.interest_from_clients,
            value_baselines: self.value_baselines,
            messages: self.messages,
            // A session is no room's: a room server sets these per room.
            room: None,
            max_clients: None,
            max_entities: None,
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
    /// The custom transport's settings are unusable ([`CustomTransport::validate`]).
    #[error("custom transport: {0}")]
    Transport(String),
    /// The host's ownership call was refused.
    #[error(transparent)]
    Ownership(#[from] proto::OwnershipError),
    /// A client's ownership call was refused locally.
    #[error(transparent)]
    OwnershipCall(#[from] proto::OwnershipCallError),
    /// An interest call was refused (nothing changed).
    #[error("interest: {0}")]
    Interest(#[from] crate::interest::InterestError),
    /// A priority weight was refused.
    #[error(transparent)]
    Priority(#[from] proto::priority::PriorityError),
}

/// The protocol core a session drives.
pub(super) enum Core {
    Host(Box<proto::Host>),
    Client(Box<proto::Client>),
}

impl Core {
    /// The core's next output for its driver.
    pub(super) fn poll_output(&mut self) -> Option<Output> {
        match self {
            Core::Host(host) => host.poll_output(),
            Core::Client(client) => client.poll_output(),
        }
    }
}

/// What moves a session's bytes.
enum Driver {
    Quic(Box<QuicDriver>),
    Custom(Box<CustomDriver>),
}

/// A host or client session. See the module documentation.
pub struct Session {
    core: Core,
    driver: Driver,
    /// Dictionary trainings run off the engine thread (see the drivers), and their
    /// results come back here.
    trained_tx: std::sync::mpsc::Sender<TrainingDone>,
    trained: std::sync::mpsc::Receiver<TrainingDone>,
}

/// 32 fresh random bytes, the seed of the core's resume tokens.
fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    // SystemRandom fails only when the OS has no randomness; the tokens are then still
    // distinct (a counter under the seed), only guessable.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
    seed
}

/// The host's core of `world`, or the error with the world handed back.
fn host_core(
    world: World,
    secret: JoinSecret,
    config: &SessionConfig,
) -> Result<proto::Host, HostError> {
    proto::Host::new(world, secret, config.protocol(), Instant::now(), seed()).map_err(|e| {
        HostError {
            error: e.error.into(),
            world: e.world,
        }
    })
}

/// Which transport a call needs, as its error says.
const CUSTOM: &str = "a custom transport";

impl Session {
    fn new(core: Core, driver: Driver) -> Session {
        let (trained_tx, trained) = std::sync::mpsc::channel();
        Session {
            core,
            driver,
            trained_tx,
            trained,
        }
    }

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
        let started = config
            .poses
            .volume
            .validate()
            .map_err(SessionError::from)
            .and_then(|()| QuicDriver::host(bind, identity, &config));
        let driver = match started {
            Ok(driver) => driver,
            Err(error) => {
                return Err(HostError {
                    error,
                    world: Box::new(world),
                })
            }
        };
        let host = host_core(world, secret, &config)?;
        driver.accept(&config);
        Ok(Session::new(
            Core::Host(Box::new(host)),
            Driver::Quic(Box::new(driver)),
        ))
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
        let driver = QuicDriver::join(addr, trust, &config)?;
        Ok(Session::new(
            Core::Client(Box::new(client)),
            Driver::Quic(Box::new(driver)),
        ))
    }

    /// Hosts a session over the engine's own transport (see [`super::custom`]), with
    /// `world` as the authoritative state; clients need a join token minted with
    /// `secret`. Nothing is bound and no thread runs: the engine reports connections
    /// ([`Session::transport_connected`], [`Session::transport_closed`]) and what they
    /// received ([`Session::transport_receive`]), and carries out what
    /// [`Session::transport_poll`] gives. Of `config`, the protocol's settings apply and
    /// `max_pending_admissions` and `admission_timeout`; the QUIC ones are unused. On
    /// failure the world comes back in the error.
    pub fn host_custom(
        world: World,
        secret: JoinSecret,
        config: SessionConfig,
        transport: CustomTransport,
    ) -> Result<Session, HostError> {
        if let Err(reason) = transport.validate() {
            return Err(HostError {
                error: SessionError::Transport(reason),
                world: Box::new(world),
            });
        }
        let host = host_core(world, secret, &config)?;
        let driver = CustomDriver::new(transport, &config);
        Ok(Session::new(
            Core::Host(Box::new(host)),
            Driver::Custom(Box::new(driver)),
        ))
    }

    /// Joins a session over the engine's own transport with `token`; `registry` is the
    /// engine's component types (they must equal the host's). Nothing happens until the
    /// engine reports its connection to the host ([`Session::transport_connected`]): the
    /// join request goes then, and `Joined` or `Disconnected` follows.
    pub fn join_custom(
        registry: &Registry,
        token: &str,
        config: SessionConfig,
        transport: CustomTransport,
    ) -> Result<Session, SessionError> {
        transport.validate().map_err(SessionError::Transport)?;
        let client = proto::Client::new(registry, token, config.protocol(), Instant::now())?;
        let driver = CustomDriver::new(transport, &config);
        Ok(Session::new(
            Core::Client(Box::new(client)),
            Driver::Custom(Box::new(driver)),
        ))
    }

    /// Whether this session runs over the engine's own transport rather than QUIC.
    pub fn is_custom(&self) -> bool {
        matches!(self.driver, Driver::Custom(_))
    }

    /// Reconnects a client whose connection dropped, resuming its state: the host sends
    /// what changed since the client last acknowledged (no snapshot) while it still keeps
    /// that state (`SessionConfig::resume_grace`); after that the reconnect is refused and
    /// the client joins again with a fresh token. `Joined` or `Disconnected` follows. Over
    /// QUIC the session dials the host again; over a custom transport the engine opens a
    /// new connection and reports it ([`Session::transport_connected`]).
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
        if let Driver::Quic(quic) = &mut self.driver {
            quic.redial();
        }
        Ok(())
    }

    /// The address the endpoint is bound to.
    /// A session over a custom transport has none (`ErrorKind::Unsupported`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.driver {
            Driver::Quic(quic) => quic.local_addr(),
            Driver::Custom(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a session over a custom transport has no socket",
            )),
        }
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
    /// (`XrTime` nanoseconds), estimated for that time: interpolated behind an adaptive
    /// delay, then carried over the delay with the velocities the sender sent (without
    /// them it stays at the delayed time), and extrapolated for a bounded time when
    /// samples are late. `None` until a sample of it arrived.
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

    /// Hands up to `max` events, oldest first, to `f`, borrowed: a replica event's bytes
    /// are the replica's own, a reason the protocol's, not copied. They stay where they are
    /// until the next poll of this session. Returns how many were handed.
    pub fn poll_events_with(&mut self, max: usize, f: impl FnMut(EventRef<'_>)) -> usize {
        match &mut self.core {
            Core::Host(host) => host.poll_events_with(max, f),
            Core::Client(client) => client.poll_events_with(max, f),
        }
    }

    /// One network tick: applies what arrived, sends what changed (host: closes the world's
    /// tick). Never waits for the network. Over a custom transport, what arrived was handed
    /// over as it came; what to send is queued for [`Session::transport_poll`]; after
    /// [`Session::leave`] a tick does nothing.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if let Core::Host(host) = &mut self.core {
            for done in self.trained.try_iter() {
                host.finish_training(done);
            }
        }
        match &mut self.driver {
            Driver::Quic(quic) => quic.tick(&mut self.core, now),
            Driver::Custom(custom) => custom.tick(&mut self.core, now),
        }
        if let Core::Host(host) = &mut self.core {
            for job in host.take_training_jobs() {
                let tx = self.trained_tx.clone();
                match &mut self.driver {
                    Driver::Quic(quic) => quic.train(job, tx),
                    Driver::Custom(custom) => custom.train(job, tx),
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
        match &mut self.core {
            Core::Host(host) => Ok(host.train_dictionary(kind)?),
            Core::Client(_) => Err(TrainError::NotHost.into()),
        }
    }

    /// The custom driver, or the error a QUIC session gives to its calls.
    fn custom(&mut self) -> Result<(&mut CustomDriver, &mut Core), TransportError> {
        match &mut self.driver {
            Driver::Custom(custom) => Ok((custom, &mut self.core)),
            Driver::Quic(_) => Err(TransportError::WrongTransport(CUSTOM)),
        }
    }

    /// Custom transport: the engine opened connection `conn` (its own id, any `u64`; an id
    /// may be used again once the connection it named was reported closed). On a host a
    /// peer connected: its first reliable message must be its join request, within
    /// `SessionConfig::admission_timeout`, and at most
    /// `SessionConfig::max_pending_admissions` connections may wait for theirs (further
    /// ones are closed at once, as QUIC's driver refuses them). On a client, this is the
    /// connection to the host: the join (or, after [`Session::reconnect`], resume) request
    /// goes on it now; a client has one connection at a time, and after one ended it
    /// takes another only once [`Session::reconnect`] was called.
    pub fn transport_connected(&mut self, conn: u64) -> Result<(), TransportError> {
        let (custom, core) = self.custom()?;
        custom.connected(core, conn, Instant::now())
    }

    /// Custom transport: connection `conn` received `bytes` on `channel` (one whole
    /// message). Unreliable messages are bounded by [`CustomTransport::max_unreliable`];
    /// reliable ones by the join request's bound until the peer is admitted, then by what
    /// the protocol may send ([`proto::Output::Admitted`]'s `read_bound`): a longer
    /// reliable message is an error and ends the connection (its stream lost a message; a
    /// close is queued). Bytes for a connection the session is closing are dropped.
    pub fn transport_receive(
        &mut self,
        conn: u64,
        channel: Channel,
        bytes: &[u8],
    ) -> Result<(), TransportError> {
        let (custom, core) = self.custom()?;
        custom.receive(core, conn, channel, bytes, Instant::now())
    }

    /// Custom transport: connection `conn` ended; the peer closed it with `code` and
    /// `reason` (what its session's [`TransportOutput::Close`] said, if the transport
    /// carried them), or the transport lost it: [`super::custom::CLOSE_LOST`]. What was
    /// queued for it is dropped. Reporting the end of a connection the session closed
    /// itself is accepted, and optional.
    pub fn transport_closed(
        &mut self,
        conn: u64,
        code: u32,
        reason: &str,
    ) -> Result<(), TransportError> {
        let (custom, core) = self.custom()?;
        custom.closed(core, conn, code, reason, Instant::now())
    }

    /// Custom transport: the engine's round-trip estimate of connection `conn`
    /// (optional; see [`CustomTransport::initial_rtt`]).
    pub fn transport_set_rtt(&mut self, conn: u64, rtt: Duration) -> Result<(), TransportError> {
        let (custom, _) = self.custom()?;
        custom.set_rtt(conn, rtt)
    }

    /// Custom transport: the next thing to carry out, oldest first: a message to send on a
    /// connection's channel, or a connection to close. Poll until `None` after every tick
    /// and every report (a join is answered at once); also after [`Session::leave`].
    pub fn transport_poll(&mut self) -> Result<Option<TransportOutput>, TransportError> {
        let (custom, _) = self.custom()?;
        Ok(custom.poll())
    }

    /// Custom transport: the next output, left in place (for a caller that must first
    /// make room for its bytes).
    pub fn transport_peek(&self) -> Result<Option<&TransportOutput>, TransportError> {
        match &self.driver {
            Driver::Custom(custom) => Ok(custom.peek()),
            Driver::Quic(_) => Err(TransportError::WrongTransport(CUSTOM)),
        }
    }

    /// Custom transport: says goodbye. Queues [`proto::GOODBYE_DATAGRAM`] on every admitted
    /// connection's unreliable channel, then a close ([`proto::CLOSE_SHUTDOWN`], "host
    /// shut down" or "client left") of every open connection: poll them out and carry
    /// them out, then drop the session. The peers hear it from the goodbye or from their
    /// transport's close, whichever arrives. Afterwards the session only drains
    /// ([`Session::transport_poll`]) and takes reports of closes; other transport calls
    /// are [`TransportError::Closed`], and ticks do nothing. A second call does nothing.
    /// (A QUIC session says goodbye when it is dropped.)
    pub fn leave(&mut self) -> Result<(), TransportError> {
        let (custom, core) = self.custom()?;
        custom.leave(core, Instant::now());
        Ok(())
    }

    /// Whether a session over a custom transport has left ([`Session::leave`]).
    pub fn has_left(&self) -> bool {
        matches!(&self.driver, Driver::Custom(custom) if custom.has_left())
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
            let Some(conn) = conn else { continue };
            match &self.driver {
                Driver::Quic(quic) => quic.fill(p, conn),
                Driver::Custom(custom) => custom.fill(p, conn),
            }
        }
        if let Driver::Quic(quic) = &self.driver {
            d.inbound_dropped = quic.inbound_dropped();
        }
        d
    }
}

impl Drop for Session {
    /// Over QUIC, says goodbye to every peer and waits, bounded, for them to hear it, then
    /// joins the runtime thread (see [`QuicDriver::shut_down`]). Over a custom transport,
    /// joins the dictionary trainings still running; the goodbye is
    /// [`Session::leave`]'s, which nobody can carry out once the session is gone.
    fn drop(&mut self) {
        let reason = match self.core {
            Core::Host(_) => proto::HOST_SHUT_DOWN,
            Core::Client(_) => proto::CLIENT_LEFT,
        };
        if let Driver::Quic(quic) = &mut self.driver {
            quic.shut_down(reason);
        }
    }
}
