//! Sessions over a path like Wi-Fi's, where XR headsets live: every datagram each way is
//! delayed by `delay ± jitter` (so datagrams overtake each other by delay variation), with
//! loss, duplication and reordering on top while the scene changes. 127.0.0.1 only; the
//! engine loop is paced at 60 Hz as a real one is, because the path's delays are real
//! time. The tests of this file run one at a time (`SERIAL`), so that they do not steal
//! each other's ticks on a 2-core machine.
//!
//! What they hold the session to (issue 12):
//! - every client reaches the host's state hash within 2 RTT + 2 ticks of the last change
//!   when what is sent after it arrives, and one resend delay later when it was lost;
//! - no client ever shows again an entity it saw despawned;
//! - once converged, the host sends an up-to-date client only keep-alives (under 1 kB/s);
//! - a host that shuts down, and a client that leaves, are heard through loss and jitter.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use theta_net::net::faults::{FaultConfig, FaultControl};
use theta_net::net::session::{DisconnectCause, Session, SessionConfig, SessionEvent};
use theta_net::net::tls::{Fingerprint, HostIdentity, ServerTrust};
use theta_net::net::token::{mint, JoinSecret};
use theta_net::{ComponentId, EntityId, EventKind, Layout, Registry, World};

/// One test at a time: see the module documentation.
static SERIAL: Mutex<()> = Mutex::new(());

/// The engine's tick period.
const TICK: Duration = Duration::from_micros(16_667);
/// Objects in the scene.
const OBJECTS: usize = 400;
/// Ticks of changes.
const CHANGE_TICKS: u64 = 120;
/// Host bytes per second to an up-to-date client that count as quiet.
const QUIET_BYTES_PER_S: f64 = 1000.0;

struct Scene {
    transform: ComponentId,
    color: ComponentId,
    name: ComponentId,
}

fn scene() -> (World, Scene) {
    let mut world = World::default();
    let transform = world.register("wifi.Transform", Layout::Fixed(28)).unwrap();
    let color = world.register("wifi.Color", Layout::Fixed(4)).unwrap();
    let name = world
        .register("wifi.Name", Layout::Variable { max: 48 })
        .unwrap();
    (
        world,
        Scene {
            transform,
            color,
            name,
        },
    )
}

/// A small xorshift generator: the scene's changes are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A transform's bytes: position and rotation floats, as an engine writes them.
    fn transform(&mut self) -> [u8; 28] {
        let mut bytes = [0u8; 28];
        for chunk in bytes.chunks_mut(4) {
            let value = (self.next() % 20_000) as f32 / 1000.0 - 10.0;
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        bytes
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A host and its clients, every endpoint's outgoing datagrams through its own faults.
struct Net {
    host: Session,
    host_faults: FaultControl,
    clients: Vec<Session>,
    client_faults: Vec<FaultControl>,
    /// Per client, the entities it saw despawned.
    despawned: Vec<HashSet<EntityId>>,
    /// Spawn events for an entity a client had seen despawned.
    resurrections: Vec<String>,
    /// Longest gap between two engine ticks (a busy machine stretches them).
    longest_tick: Duration,
    last_tick: Instant,
    next_tick: Instant,
}

fn faulty_config() -> (SessionConfig, FaultControl) {
    let control = FaultControl::new();
    let config = SessionConfig {
        faults: Some(control.clone()),
        // No dictionary training: a dictionary finished during the quiet window (a slow
        // debug build trains for seconds) goes to every client once, a burst that is
        // not the replication traffic measured here.
        train_after_samples: 0,
        ..SessionConfig::default()
    };
    (config, control)
}

impl Net {
    fn new(world: World, clients: u16) -> Net {
        let registry: Registry = world.registry().clone();
        let identity = HostIdentity::self_signed(&["localhost".to_owned()]).unwrap();
        let fingerprint: Fingerprint = identity.fingerprint();
        let secret = JoinSecret::generate();
        let (config, host_faults) = faulty_config();
        let host = Session::host(
            "127.0.0.1:0".parse().unwrap(),
            world,
            &identity,
            secret.clone(),
            config,
        )
        .unwrap();
        let mut net = Net {
            host,
            host_faults,
            clients: Vec::new(),
            client_faults: Vec::new(),
            despawned: Vec::new(),
            resurrections: Vec::new(),
            longest_tick: Duration::ZERO,
            last_tick: Instant::now(),
            next_tick: Instant::now(),
        };
        for peer in 1..=clients {
            let (config, faults) = faulty_config();
            let token = mint(&secret, peer, unix_now() + 60, None).to_text();
            let client = Session::join(
                net.host.local_addr().unwrap(),
                &ServerTrust::Fingerprint(fingerprint),
                &token,
                &registry,
                config,
            )
            .unwrap();
            net.clients.push(client);
            net.client_faults.push(faults);
            net.despawned.push(HashSet::new());
        }
        net.wait_joined();
        net
    }

    /// Every endpoint's faults, seeded apart.
    fn set_faults(&self, faults: FaultConfig) {
        let controls = std::iter::once(&self.host_faults).chain(&self.client_faults);
        for (i, control) in controls.enumerate() {
            control
                .set(FaultConfig {
                    seed: faults.seed.wrapping_mul(31).wrapping_add(i as u64),
                    ..faults
                })
                .unwrap();
        }
    }

    /// One engine tick of every session, paced to [`TICK`]; watches the clients' events.
    fn tick(&mut self) {
        if let Some(wait) = self.next_tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = Instant::now();
        self.next_tick = self.next_tick.max(now - TICK) + TICK;
        self.longest_tick = self.longest_tick.max(now - self.last_tick);
        self.last_tick = now;
        self.host.tick();
        for (i, client) in self.clients.iter_mut().enumerate() {
            client.tick();
            for event in client.poll_events(usize::MAX) {
                match event {
                    SessionEvent::Replica {
                        kind: EventKind::Despawn,
                        entity,
                        ..
                    } => {
                        self.despawned[i].insert(entity);
                    }
                    SessionEvent::Replica {
                        kind: EventKind::Spawn,
                        entity,
                        tick,
                        ..
                    } if self.despawned[i].contains(&entity) => self
                        .resurrections
                        .push(format!("client {i}: entity {entity} back at tick {tick}")),
                    SessionEvent::Disconnected { reason, .. } => {
                        panic!("client {i} disconnected: {reason}")
                    }
                    _ => {}
                }
            }
        }
        let _ = self.host.poll_events(usize::MAX);
    }

    fn wait_joined(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.converged() {
            assert!(Instant::now() < deadline, "clients did not join in time");
            self.tick();
        }
    }

    fn converged(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.peer().is_some() && c.state_hash() == self.host.state_hash())
    }

    /// The slowest client's smoothed round trip.
    fn rtt(&self) -> Duration {
        self.clients
            .iter()
            .filter_map(|c| c.diagnostics().peers.first().map(|p| p.rtt))
            .max()
            .unwrap_or_default()
    }

    /// The host's wire bytes sent, summed over its clients.
    fn host_bytes_sent(&self) -> u64 {
        self.host
            .diagnostics()
            .peers
            .iter()
            .map(|p| p.wire_bytes_sent)
            .sum()
    }
}

/// Objects that move every tick, recolour, get renamed, arrive and leave on the host;
/// each client moves, creates and destroys entities of its own.
struct Changes {
    rng: Rng,
    live: Vec<EntityId>,
    owned: Vec<Vec<EntityId>>,
}

impl Changes {
    fn new(net: &Net) -> Changes {
        let live: Vec<EntityId> = net.host.world().entities().collect();
        assert_eq!(live.len(), OBJECTS);
        Changes {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            live,
            owned: vec![Vec::new(); net.clients.len()],
        }
    }

    fn step(&mut self, t: u64, net: &mut Net, scene: &Scene) {
        let rng = &mut self.rng;
        let world = net.host.host_world().unwrap();
        // The first tenth moves every tick (carried and animated objects).
        for &e in self.live.iter().take(OBJECTS / 10) {
            world.set(e, scene.transform, &rng.transform()).unwrap();
        }
        let e = self.live[rng.below(self.live.len())];
        if world.get(e, scene.color).is_some() && rng.next().is_multiple_of(2) {
            world.remove(e, scene.color).unwrap();
        } else {
            world
                .set(e, scene.color, &(rng.next() as u32).to_le_bytes())
                .unwrap();
        }
        let e = self.live[rng.below(self.live.len())];
        let name = format!("object {}", rng.next() % 100_000);
        world.set(e, scene.name, name.as_bytes()).unwrap();
        if t.is_multiple_of(2) {
            // One leaves (never a mover), one arrives.
            let at = OBJECTS / 10 + rng.below(self.live.len() - OBJECTS / 10);
            let gone = self.live.swap_remove(at);
            world.despawn(gone).unwrap();
            let e = world.spawn().unwrap();
            world.set(e, scene.transform, &rng.transform()).unwrap();
            self.live.push(e);
        }
        for (client, mine) in net.clients.iter_mut().zip(&mut self.owned) {
            if mine.len() < 3 {
                mine.push(client.spawn().unwrap());
            }
            let e = mine[rng.below(mine.len())];
            client.set(e, scene.transform, &rng.transform()).unwrap();
            if t % 20 == 19 {
                let gone = mine.swap_remove(0);
                client.despawn(gone).unwrap();
            }
        }
    }
}

/// What one run measured.
#[derive(Debug)]
struct Outcome {
    converged_after: Duration,
    /// The slowest client's smoothed round trip.
    rtt: Duration,
    /// The longest engine tick while converging (a busy machine stretches them: the
    /// bound is about round trips and ticks, not about the scheduler).
    tick: Duration,
    quiet_bytes_per_s: f64,
}

impl Outcome {
    /// `round_trips` RTT + `ticks` ticks.
    fn bound(&self, round_trips: u32, ticks: u32) -> Duration {
        self.rtt * round_trips + self.tick * ticks
    }
}

/// Changes for [`CHANGE_TICKS`] ticks over a `delay ± jitter` path with `loss` (and 5 %
/// duplication, 10 % reordering) on every endpoint; then, with the path's delay and
/// jitter still on, measures the time to converge and the host's traffic after.
fn run(delay_ms: u64, jitter_ms: u64, loss: f64, seed: u64) -> Outcome {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (mut world, scene) = scene();
    let mut rng = Rng(seed | 1);
    for _ in 0..OBJECTS {
        let e = world.spawn().unwrap();
        world.set(e, scene.transform, &rng.transform()).unwrap();
    }
    let mut net = Net::new(world, 2);
    let path = FaultConfig {
        seed,
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(jitter_ms),
        ..FaultConfig::default()
    };
    net.set_faults(FaultConfig {
        loss,
        duplicate: 0.05,
        reorder: 0.1,
        ..path
    });
    let mut changes = Changes::new(&net);
    for t in 0..CHANGE_TICKS {
        changes.step(t, &mut net, &scene);
        net.tick();
    }
    // The path stays as it is; loss, duplication and reordering stop with the changes.
    net.set_faults(path);
    // The host's state changes last when the clients' last writes reach it (their own
    // datagrams may need a resend): the clock starts at the host's last change.
    let stopped = Instant::now();
    let mut last_change = stopped;
    let mut host_hash = net.host.state_hash();
    net.longest_tick = Duration::ZERO;
    while !net.converged() {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "no convergence within 10 s of the last change (loss {loss}, seed {seed}); host {:?}",
            net.host.diagnostics().peers
        );
        net.tick();
        if net.host.state_hash() != host_hash {
            host_hash = net.host.state_hash();
            last_change = Instant::now();
        }
    }
    let converged_after = last_change.elapsed();
    let rtt = net.rtt();
    let tick = net.longest_tick.max(TICK);
    // Let the last acknowledgements land, then count what the host still sends.
    for _ in 0..(rtt.as_millis() as usize * 4 / 16).max(6) {
        net.tick();
    }
    let before = net.host_bytes_sent();
    let quiet_from = Instant::now();
    while quiet_from.elapsed() < Duration::from_secs(2) {
        net.tick();
        assert!(net.converged(), "a client lost the host's state while idle");
    }
    let quiet_bytes_per_s = (net.host_bytes_sent() - before) as f64
        / quiet_from.elapsed().as_secs_f64()
        / net.clients.len() as f64;
    assert!(
        net.resurrections.is_empty(),
        "entities came back: {:?}",
        net.resurrections
    );
    let outcome = Outcome {
        converged_after,
        rtt,
        tick,
        quiet_bytes_per_s,
    };
    eprintln!("delay {delay_ms} ± {jitter_ms} ms, loss {loss}, seed {seed}: {outcome:?}");
    outcome
}

/// Holds a run to the contract. Without loss, every client reaches the host's state
/// within 2 RTT + 2 ticks of the last change. With loss, a datagram of the last change may
/// be lost, and nothing can replace it before its acknowledgement is overdue: one resend
/// delay (the acknowledgement round trip, about an RTT and a tick) more, so 3 RTT + 3
/// ticks. Either way the host then goes quiet.
fn holds_the_contract(loss: f64, seed: u64) {
    let outcome = run(20, 20, loss, seed);
    let allowed = if loss > 0.0 {
        outcome.bound(3, 3)
    } else {
        outcome.bound(2, 2)
    };
    assert!(
        outcome.converged_after <= allowed,
        "converged {:?} after the last change, over {allowed:?}: {outcome:?}",
        outcome.converged_after,
    );
    assert!(
        outcome.quiet_bytes_per_s < QUIET_BYTES_PER_S,
        "the host sent {:.0} B/s to an up-to-date client",
        outcome.quiet_bytes_per_s
    );
}

/// Not a test: a measurement. Runs the scenario over many seeds and prints how the time
/// to converge compares with 2 RTT + 2 ticks, e.g.
/// `LOSS=0.3 SEEDS=20 cargo test --release --test session_jitter sweep -- --ignored --nocapture`.
#[test]
#[ignore]
fn sweep() {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
    let loss: f64 = var("LOSS", "0.1").parse().expect("LOSS: a share, e.g. 0.1");
    let seeds: u64 = var("SEEDS", "10").parse().expect("SEEDS: a count");
    let mut ratios: Vec<f64> = (1..=seeds)
        .map(|seed| {
            let o = run(20, 20, loss, seed * 7);
            o.converged_after.as_secs_f64() / o.bound(2, 2).as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let within = ratios.iter().filter(|&&r| r <= 1.0).count();
    eprintln!(
        "loss {loss}: {within} of {seeds} runs within 2 RTT + 2 ticks; time/bound {ratios:.2?}"
    );
}

#[test]
fn converges_and_goes_quiet_under_jitter_without_loss() {
    holds_the_contract(0.0, 1);
}

#[test]
fn converges_and_goes_quiet_under_jitter_and_10_percent_loss() {
    holds_the_contract(0.1, 2);
}

#[test]
fn converges_and_goes_quiet_under_jitter_and_30_percent_loss() {
    holds_the_contract(0.3, 3);
}

#[test]
fn converges_and_goes_quiet_under_jitter_and_40_percent_loss() {
    holds_the_contract(0.4, 4);
}

/// Waits (ticking `session`) for an event `pick` accepts; bounded.
fn wait_event<T>(
    session: &mut Session,
    within: Duration,
    mut pick: impl FnMut(SessionEvent) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        session.tick();
        if let Some(found) = session
            .poll_events(usize::MAX)
            .into_iter()
            .find_map(&mut pick)
        {
            return Some(found);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// A lossy, jittery path on which a lone QUIC close is often lost.
fn lossy_path(seed: u64) -> FaultConfig {
    FaultConfig {
        seed,
        loss: 0.4,
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(20),
        ..FaultConfig::default()
    }
}

#[test]
fn a_host_that_shuts_down_is_heard_through_loss_and_jitter() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for seed in 1..=5 {
        let (world, _) = scene();
        let net = Net::new(world, 1);
        net.set_faults(lossy_path(seed));
        let Net {
            host, mut clients, ..
        } = net;
        let dropped = Instant::now();
        drop(host);
        let shutdown = dropped.elapsed();
        let heard = wait_event(&mut clients[0], Duration::from_secs(5), |e| match e {
            SessionEvent::Disconnected { reason, cause } => Some((reason, cause)),
            _ => None,
        });
        let (reason, cause) = heard.expect("the client never heard that the host shut down");
        let after = dropped.elapsed();
        eprintln!("seed {seed}: host shut down in {shutdown:?}; the client heard after {after:?}: {reason}");
        assert_eq!(cause, DisconnectCause::HostClosed, "{reason}");
        assert!(reason.contains("host shut down"), "{reason}");
        // The goodbye waits at most a second for an answer; the idle timeout is 10 s.
        assert!(
            shutdown < Duration::from_secs(3),
            "shutting down took {shutdown:?}"
        );
    }
}

#[test]
fn a_client_that_leaves_is_heard_through_loss_and_jitter() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for seed in 1..=5 {
        let (world, _) = scene();
        let mut net = Net::new(world, 1);
        let peer = net.clients[0].peer().unwrap();
        net.set_faults(lossy_path(seed));
        let left = Instant::now();
        drop(net.clients.pop());
        let heard = wait_event(&mut net.host, Duration::from_secs(5), |e| match e {
            SessionEvent::PeerLeft { peer: p, reason } if p == peer => Some(reason),
            _ => None,
        });
        let reason = heard.expect("the host never heard that the client left");
        eprintln!(
            "seed {seed}: the host heard after {:?}: {reason}",
            left.elapsed()
        );
        assert_eq!(reason, "client left");
    }
}
