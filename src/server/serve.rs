//! `theta serve`'s run loop: rooms on one UDP port ([`crate::net::rooms::RoomServer`]),
//! each room's state saved on an interval, when it closes and at shutdown, restored when
//! it opens; the health and metrics endpoint; logs. A stop request (SIGTERM) drains:
//! joins are refused, clients are told, every room is saved, and the process exits within
//! the config's drain bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::keys::{self, Keys};
use super::metrics::{Metrics, MetricsServer, Refusal, RoomFigures};
use super::store::{self, StoreError};
use super::{RoomId, ServerConfig};
use crate::net::rooms::RoomServer;
use crate::net::session::SessionConfig;
use crate::proto::rooms::{DoorRefusal, RoomOpener, Rooms, RoomsConfig};
use crate::proto::{Config, SessionEvent};
use crate::registry::Registry;
use crate::wire::fb;
use crate::world::{World, WorldConfig};

/// What a started server tells its caller (the CLI prints it).
#[derive(Clone, Debug)]
pub struct Ready {
    /// The UDP address the rooms are served on.
    pub addr: SocketAddr,
    /// The health and metrics endpoint, when on.
    pub metrics: Option<SocketAddr>,
    /// The certificate's SHA-256 fingerprint, hex, for clients to pin.
    pub fingerprint: String,
    /// The state directory (rooms' files, the keys).
    pub state_dir: PathBuf,
    /// Whether the keys were made at this start.
    pub keys_created: bool,
}

/// What a run did, when it ended.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Rooms opened (new or restored).
    pub rooms_opened: u64,
    /// Rooms saved at shutdown.
    pub rooms_saved_at_exit: usize,
    /// Saves that failed (each logged).
    pub save_failures: u64,
    /// Whether the drain ended with every client gone (else its bound ran out).
    pub drained_clean: bool,
}

/// Opens rooms from their saved files, or empty with the first client's types.
struct StoreOpener {
    dir: PathBuf,
}

impl RoomOpener for StoreOpener {
    fn open(&mut self, room: &RoomId, registry: &Registry) -> Result<World, String> {
        match store::restore(&self.dir, room) {
            Ok(restored) => {
                tracing::info!(
                    room = %room,
                    file = %restored.path.display(),
                    entities = restored.world.entity_count(),
                    saved_tick = restored.tick,
                    "room restored from its saved state"
                );
                Ok(restored.world)
            }
            Err(StoreError::NotFound { .. }) => {
                tracing::info!(room = %room, types = registry.len(), "new room, with its first client's component types");
                empty_world(registry)
            }
            // Refused files were moved aside and logged: the room starts empty, the file
            // kept for a person to look at.
            Err(refused @ StoreError::Refused { .. }) => {
                tracing::error!(room = %room, "{refused}; the room starts empty");
                empty_world(registry)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A new world (the room's host is peer 0) of `registry`'s types and declared fields.
pub fn empty_world(registry: &Registry) -> Result<World, String> {
    let mut world = World::new(WorldConfig::default());
    for descriptor in registry.descriptors() {
        let id = world
            .register_descriptor(descriptor.clone())
            .map_err(|e| e.to_string())?;
        if let Some(fields) = registry.fields(id) {
            world
                .declare_layout(id, fields.clone())
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(world)
}

/// The rooms' settings from the config's limits.
pub fn rooms_config(config: &ServerConfig) -> RoomsConfig {
    let limits = &config.limits;
    RoomsConfig {
        host: Config {
            max_clients: Some(limits.max_peers as usize),
            max_entities: Some(limits.max_entities as usize),
            ..Config::default()
        },
        max_rooms: limits.max_rooms as usize,
        // At most the protocol's 1 MiB (the config checks it).
        max_value_bytes: limits.max_value_bytes as u32,
        client_bytes_per_second: limits.max_bytes_per_second,
        ..RoomsConfig::default()
    }
}

/// Runs the server of `config` at `tick_hz` until `stop` is set, then drains and returns.
/// `ready` is called once the port and the endpoint are bound.
pub fn run(
    config: &ServerConfig,
    tick_hz: f64,
    stop: &AtomicBool,
    ready: impl FnOnce(&Ready),
) -> Result<Report, String> {
    // Held until the run returns: no second server writes these rooms meanwhile.
    let _lock = keys::lock_dir(&config.state_dir)?;
    let Keys {
        identity,
        secret,
        created,
    } = keys::load_or_create(&config.state_dir)?;
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| "the system random number generator failed".to_owned())?;
    let rooms = Rooms::new(
        secret,
        rooms_config(config),
        Box::new(StoreOpener {
            dir: config.state_dir.clone(),
        }),
        seed,
    );
    let mut server = RoomServer::bind(config.listen, &identity, &SessionConfig::default(), rooms)
        .map_err(|e| format!("cannot serve on {}: {e}", config.listen))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::new());
    let endpoint = match config.metrics {
        Some(at) => Some(Endpoint::start(at, Arc::clone(&metrics))?),
        None => None,
    };
    tracing::info!(%addr, state_dir = %config.state_dir.display(), "serving rooms");
    ready(&Ready {
        addr,
        metrics: endpoint.as_ref().map(|e| e.addr),
        fingerprint: identity.fingerprint().to_hex(),
        state_dir: config.state_dir.clone(),
        keys_created: created,
    });
    let mut run = Loop {
        dir: config.state_dir.clone(),
        metrics,
        saved: BTreeMap::new(),
        bytes_seen: BTreeMap::new(),
        report: Report::default(),
    };
    let period = Duration::from_secs_f64(1.0 / tick_hz);
    let mut next = Instant::now();
    let mut next_save = Instant::now() + config.save_interval();
    let mut next_figures = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        server.tick();
        run.after_tick(&mut server, started);
        if started >= next_save {
            run.save_changed(&server);
            next_save = started + config.save_interval();
        }
        if started >= next_figures {
            run.figures(&server);
            next_figures = started + Duration::from_secs(1);
        }
        run.metrics.observe_tick(started.elapsed());
        next += period;
        let now = Instant::now();
        match next.checked_duration_since(now) {
            Some(wait) => std::thread::sleep(wait),
            // Behind: start again from now rather than racing to catch up.
            None => next = now,
        }
    }
    run.drain(&mut server, config.drain_timeout(), period);
    if let Some(endpoint) = endpoint {
        endpoint.stop();
    }
    run.report.rooms_opened = server.rooms().stats().rooms_opened;
    Ok(run.report)
}

/// The run loop's state beside the rooms.
struct Loop {
    dir: PathBuf,
    metrics: Arc<Metrics>,
    /// Each room's state hash when last saved (a room that did not change is not saved
    /// again).
    saved: BTreeMap<RoomId, u64>,
    /// Each connected peer's payload bytes (sent, received) at the last figures.
    bytes_seen: BTreeMap<(RoomId, u16), (u64, u64)>,
    report: Report,
}

impl Loop {
    /// Logs what happened in the rooms, counts refusals, closes rooms that stood empty.
    fn after_tick(&mut self, server: &mut RoomServer, now: Instant) {
        let metrics = &self.metrics;
        server
            .rooms_mut()
            .for_each_event(|room, event| match event {
                SessionEvent::PeerJoined { peer } => {
                    tracing::info!(room = %room, peer, "peer joined")
                }
                SessionEvent::PeerLeft { peer, reason } => {
                    tracing::info!(room = %room, peer, %reason, "peer left")
                }
                SessionEvent::JoinRefused { from, reason } => {
                    // Past the door's checks, a room refuses only a replayed token or a peer
                    // id in use.
                    metrics.refuse(Refusal::BadToken);
                    tracing::warn!(room = %room, from = ?from, %reason, "join refused");
                }
                _ => {}
            });
        let draining = server.rooms().is_draining();
        let refusals: Vec<DoorRefusal> = server.rooms_mut().take_refusals().collect();
        for refusal in refusals {
            self.metrics.refuse(match refusal.reason {
                fb::RefuseReason::RoomUnavailable if draining => Refusal::Draining,
                reason => refusal_kind(reason),
            });
            tracing::warn!(from = ?refusal.from, reason = %refusal.message, "join refused");
        }
        while let Some((room, world)) = server.rooms_mut().close_idle(now) {
            self.save(&room, &world);
            self.saved.remove(&room);
            self.metrics.remove_room(&room);
            tracing::info!(room = %room, "room closed (nobody in it)");
        }
    }

    /// Saves every room whose state changed since its last save.
    fn save_changed(&mut self, server: &RoomServer) {
        let changed: Vec<(RoomId, u64)> = server
            .rooms()
            .iter()
            .map(|(room, host)| (room.clone(), host.world().state_hash()))
            .filter(|(room, hash)| self.saved.get(room) != Some(hash))
            .collect();
        for (room, hash) in changed {
            if let Some(host) = server.rooms().get(&room) {
                if self.save(&room, host.world()) {
                    self.saved.insert(room, hash);
                }
            }
        }
    }

    /// Saves one room; a failure is logged and counted, and the server goes on.
    fn save(&mut self, room: &RoomId, world: &World) -> bool {
        let started = Instant::now();
        match store::save(&self.dir, room, world) {
            Ok(saved) => {
                tracing::debug!(room = %room, bytes = saved.bytes, took = ?started.elapsed(), "room saved");
                true
            }
            Err(e) => {
                self.report.save_failures += 1;
                tracing::error!(room = %room, "save failed: {e}");
                false
            }
        }
    }

    /// Rooms, peers, bytes and each room's figures, for the metrics endpoint.
    fn figures(&mut self, server: &RoomServer) {
        let rooms = server.rooms();
        let mut peers = 0u64;
        let mut seen = BTreeMap::new();
        for (room, host) in rooms.iter() {
            let connected: Vec<_> = host.connections().collect();
            peers += connected.len() as u64;
            self.metrics.set_room(
                room,
                RoomFigures {
                    peers: connected.len() as u64,
                    entities: host.world().entity_count() as u64,
                },
            );
            for (_, peer) in connected {
                if let Some(p) = host.peer_diagnostics(peer) {
                    let key = (room.clone(), peer);
                    let (sent, received) = self.bytes_seen.get(&key).copied().unwrap_or((0, 0));
                    self.metrics
                        .add_bytes_sent(p.payload_bytes_sent.saturating_sub(sent));
                    self.metrics
                        .add_bytes_received(p.payload_bytes_received.saturating_sub(received));
                    seen.insert(key, (p.payload_bytes_sent, p.payload_bytes_received));
                }
            }
        }
        self.bytes_seen = seen;
        self.metrics.set_rooms(rooms.len() as u64);
        self.metrics.set_peers(peers);
    }

    /// Refuses joins, tells the clients, waits (bounded) for them to go, saves every
    /// room, closes the endpoint.
    fn drain(&mut self, server: &mut RoomServer, bound: Duration, period: Duration) {
        tracing::info!(bound = ?bound, "draining: refusing joins, telling clients, saving rooms");
        self.metrics.set_draining(true);
        server.rooms_mut().drain();
        // Most of the bound for the clients to leave; the saves and the goodbye after.
        let deadline = Instant::now() + bound.mul_f64(0.6);
        loop {
            server.tick();
            let connected: usize = server
                .rooms()
                .iter()
                .map(|(_, host)| host.connections().count())
                .sum();
            if connected == 0 {
                self.report.drained_clean = true;
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    connected,
                    "drain bound reached with clients still connected"
                );
                break;
            }
            std::thread::sleep(period);
        }
        let rooms: Vec<RoomId> = server.rooms().iter().map(|(r, _)| r.clone()).collect();
        for room in &rooms {
            if let Some(host) = server.rooms().get(room) {
                if self.save(room, host.world()) {
                    self.report.rooms_saved_at_exit += 1;
                }
            }
        }
        server.shut_down();
        tracing::info!(saved = self.report.rooms_saved_at_exit, "stopped");
    }
}

/// The metrics label of a refusal at the door.
fn refusal_kind(reason: fb::RefuseReason) -> Refusal {
    match reason {
        fb::RefuseReason::RoomFull => Refusal::RoomFull,
        fb::RefuseReason::RegistryMismatch => Refusal::RegistryMismatch,
        fb::RefuseReason::OverLimit => Refusal::OverLimit,
        fb::RefuseReason::Malformed | fb::RefuseReason::ProtocolRevision => Refusal::Malformed,
        fb::RefuseReason::WrongRoom => Refusal::UnknownRoom,
        // The room limit, or a room whose saved state could not be read (logged apart).
        fb::RefuseReason::RoomUnavailable => Refusal::TooManyRooms,
        _ => Refusal::BadToken,
    }
}

/// The health and metrics endpoint on a thread of its own (a small tokio runtime), so
/// that a slow scrape never delays a tick.
struct Endpoint {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Endpoint {
    fn start(at: SocketAddr, metrics: Arc<Metrics>) -> Result<Endpoint, String> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("theta-metrics".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match MetricsServer::bind(at, metrics).await {
                        Ok(server) => {
                            let _ = bound_tx.send(Ok(server.local_addr()));
                            let _ = stopped.await;
                            server.shutdown().await;
                        }
                        Err(e) => {
                            let _ = bound_tx.send(Err(e.to_string()));
                        }
                    }
                });
            })
            .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
        let addr = bound
            .recv()
            .map_err(|_| "the metrics thread ended before binding".to_owned())?
            .map_err(|e| format!("cannot serve metrics on {at}: {e}"))?;
        Ok(Endpoint { addr, stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Where a room's file is, for logs and tests.
pub fn room_file(dir: &Path, room: &RoomId) -> PathBuf {
    store::room_path(dir, room)
}
