//! The protocol core under the deterministic simulator (`tests/sim/`): seeded virtual
//! networks and seeded engine actions, thousands of runs, no sockets, threads or sleeps.
//! A failure names its seed; `SIM_SEED=N cargo test sim_ -- --nocapture` replays it
//! alone, `SIM_RUNS=N` runs more (the soak: `cargo test --release sim_soak -- --ignored`).
//!
//! Engine actions: the host spawns, writes, removes and despawns; clients spawn, write,
//! remove and despawn their own entities and send writes they may not make; clients join,
//! drop silently, resume, are cut off and healed; poses; dictionary trainings. A third
//! of the runs manage interest: positions are read from the position component, some
//! entities carry scopes, and clients (or the host for them) change their sphere and
//! subscriptions now and then.
//!
//! What every run holds the protocol to:
//! - once the faults stop (the path keeps its delay and jitter) and the engines stop
//!   changing things, every client in the session reaches the host's state hash (of what
//!   it sees, with interest management) within [`CONVERGE_BOUND`] of virtual time;
//! - no write a client was not allowed to make is ever applied: the host's own entities
//!   hold exactly what the host wrote, at every tick, and the hostile value never appears
//!   in any world;
//! - no client ever shows again an entity it saw despawned;
//! - the protocol never sends an unreliable message larger than the path takes.

mod sim;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sim::{Faults, Rng, Sim};
use theta_net::interest::Volume;
use theta_net::ownership::{Policy, WHOLE_ENTITY};
use theta_net::proto::{Channel, Config, SessionEvent};
use theta_net::wire::codec::MessageKind;
use theta_net::wire::{BatchRef, Encoder, FrameParts};
use theta_net::xr::{Device, Pose, PoseFlags, PoseSample};
use theta_net::{ComponentId, EntityId, EventKind, Layout, World};

/// How long, in virtual time, the clients may take to converge once faults and changes
/// stop: a few round trips of the slowest path (60 ms each way), a resend, a resume.
const CONVERGE_BOUND: Duration = Duration::from_secs(3);

/// The value a hostile client writes where it may not: no legitimate write makes it.
const HOSTILE: [u8; 12] = [0xEE; 12];

struct Types {
    position: ComponentId,
    name: ComponentId,
}

/// Side of the square the positions of an interest run lie in, in metres.
const SPATIAL_SIDE: f32 = 100.0;

fn scene(
    rng: &mut Rng,
    value: impl Fn(&mut Rng) -> [u8; 12],
    fields: bool,
) -> (World, Types, Vec<EntityId>) {
    let mut world = World::default();
    let position = world.register("sim.Position", Layout::Fixed(12)).unwrap();
    if fields {
        let mm = [theta_net::fields::Field::Position {
            offset: 0,
            precision_mm: 0.5,
        }];
        world.declare_fields(position, &mm).unwrap();
    }
    let name = world
        .register("sim.Name", Layout::Variable { max: 32 })
        .unwrap();
    let mut live = Vec::new();
    for _ in 0..(5 + rng.below(20)) {
        let e = world.spawn().unwrap();
        world.set(e, position, &value(rng)).unwrap();
        live.push(e);
    }
    (world, Types { position, name }, live)
}

/// A position in the square of an interest run (a legitimate value).
fn spatial_value(rng: &mut Rng) -> [u8; 12] {
    let mut v = [0u8; 12];
    for (i, c) in v.chunks_mut(4).enumerate() {
        let x = if i == 1 {
            0.0
        } else {
            rng.below(SPATIAL_SIDE as u64 * 10) as f32 / 10.0
        };
        c.copy_from_slice(&x.to_le_bytes());
    }
    v
}

/// A random sphere (and subscriptions) for a client of an interest run.
fn wish(rng: &mut Rng) -> (Vec<Volume>, Vec<u32>) {
    let radius = 15.0 + rng.below(30) as f32;
    let center = [
        rng.below(SPATIAL_SIDE as u64) as f32,
        0.0,
        rng.below(SPATIAL_SIDE as u64) as f32,
    ];
    let volumes = vec![Volume::Sphere {
        center,
        radius,
        outer: radius + rng.below(6) as f32,
    }];
    let scopes = (0..3).filter(|_| rng.chance(0.3)).collect();
    (volumes, scopes)
}

/// A legitimate position value: never the hostile one.
fn value(rng: &mut Rng) -> [u8; 12] {
    let mut v = [0u8; 12];
    for chunk in v.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    v[0] &= 0x7F;
    v
}

/// A state datagram from a client writing `victim`'s position (which it does not own),
/// its header then its body in the codec envelope (raw), as a hostile client would send it.
fn hostile_datagram(position: ComponentId, victim: EntityId, seq: u64) -> Vec<u8> {
    let entities = [victim];
    let batches = [BatchRef {
        component: position,
        entities: &entities,
        data: &HOSTILE,
        lengths: None,
        inserted: None,
    }];
    let parts = FrameParts {
        base_tick: 0,
        tick: 1 << 40,
        descriptors: &[],
        spawns: &[],
        batches: &batches,
        removes: &[],
        despawns: &[],
        // Half of them claim to have heard of every ownership message there will ever be.
        owner_seq: if seq.is_multiple_of(2) { 0 } else { u64::MAX },
        baseline_ages: &[],
        lanes: &[],
    };
    let mut out = Vec::new();
    theta_net::wire::datagram_header::write(seq, &[], &mut out);
    out.push(0);
    out.extend_from_slice(&Encoder::new().state_datagram(&parts));
    out
}

/// What a run checks as it goes.
#[derive(Default)]
struct Watch {
    /// The host's own entities: what the host wrote last (None: removed).
    host_values: HashMap<EntityId, Option<[u8; 12]>>,
    /// Per client, the entities it saw despawned.
    despawned: Vec<HashSet<EntityId>>,
}

impl Watch {
    /// Checks the host's own entities and the clients' events; an error names what broke.
    fn check(&mut self, sim: &mut Sim, types: &Types) -> Result<(), String> {
        let world = sim.host.world();
        for (&e, expected) in &self.host_values {
            let held = world.get(e, types.position);
            let ok = match expected {
                Some(v) => held == Some(&v[..]),
                None => held.is_none(),
            };
            if !ok {
                return Err(format!(
                    "host entity {e} holds {held:?}, the host wrote {expected:?}"
                ));
            }
        }
        self.despawned.resize(sim.clients.len(), HashSet::new());
        for (i, client) in sim.clients.iter_mut().enumerate() {
            for event in client.events.drain(..) {
                if let SessionEvent::Replica { kind, entity, .. } = event {
                    match kind {
                        EventKind::Despawn => {
                            self.despawned[i].insert(entity);
                        }
                        EventKind::Spawn if self.despawned[i].contains(&entity) => {
                            return Err(format!("client {i} saw entity {entity} come back"));
                        }
                        _ => {}
                    }
                }
            }
        }
        if sim.oversized > 0 {
            return Err(format!(
                "{} unreliable messages over the path's maximum",
                sim.oversized
            ));
        }
        Ok(())
    }
}

/// The hostile value must be nowhere.
fn check_no_hostile_value(sim: &Sim, types: &Types) -> Result<(), String> {
    let worlds =
        std::iter::once(sim.host.world()).chain(sim.clients.iter().map(|c| c.core.world()));
    for (i, world) in worlds.enumerate() {
        for e in world.entities() {
            if world.get(e, types.position) == Some(&HOSTILE[..]) {
                return Err(format!("world {i} holds the hostile value at entity {e}"));
            }
        }
    }
    Ok(())
}

/// The faults of a run, drawn from its seed.
fn faults(rng: &mut Rng) -> Faults {
    let latency = Duration::from_millis(2 + rng.below(60));
    Faults {
        latency,
        jitter: Duration::from_nanos(rng.below(latency.as_nanos() as u64 + 1)),
        loss: rng.below(41) as f64 / 100.0,
        duplicate: rng.below(11) as f64 / 100.0,
        bandwidth: rng.chance(0.2).then(|| 20_000 + rng.below(200_000)),
    }
}

/// One seeded run: a random scene, faults, clients joining, leaving and resuming, engine
/// writes (forbidden ones included), poses and a dictionary swap; then faults and changes
/// stop and the clients must converge.
fn run(seed: u64, ticks: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    // Decided by the seed alone, so the other runs draw what they always drew.
    let spatial = seed.is_multiple_of(3);
    let value = |rng: &mut Rng| {
        if spatial {
            spatial_value(rng)
        } else {
            value(rng)
        }
    };
    // Half of the interest runs declare the position's fields: quantised, on lanes.
    let (world, types, mut live) = scene(&mut rng, value, spatial && seed.is_multiple_of(2));
    let faults = faults(&mut rng);
    let config = Config {
        // Small sessions train their dictionaries early, so that swaps happen in a run.
        train_after_samples: 16 + rng.below(64),
        resume_grace: Duration::from_secs(5),
        interest_cell: spatial.then_some(20.0),
        ..Config::default()
    };
    let mut sim = Sim::new(world, config, faults, seed);
    if spatial {
        sim.host
            .set_interest_source(types.position, 0)
            .map_err(|e| e.to_string())?;
        for &e in &live {
            if rng.chance(0.2) {
                let scope = rng.below(3) as u32;
                sim.host
                    .set_interest_scopes(e, &[scope])
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    let mut watch = Watch::default();
    for &e in &live {
        watch.host_values.insert(
            e,
            sim.host
                .world()
                .get(e, types.position)
                .and_then(|v| v.try_into().ok()),
        );
    }
    // Objects the clients pass around (nobody owns them at first; any client takes them).
    let mut grabbable = Vec::new();
    for _ in 0..3 {
        let e = sim.host.spawn().map_err(|e| e.to_string())?;
        sim.host
            .set(e, types.position, &value(&mut rng))
            .map_err(|e| e.to_string())?;
        sim.host
            .set_ownership_policy(e, WHOLE_ENTITY, Policy::Takeover, 0)
            .map_err(|e| e.to_string())?;
        sim.host
            .set_owner(e, WHOLE_ENTITY, None)
            .map_err(|e| e.to_string())?;
        grabbable.push(e);
    }
    let mut owned: Vec<Vec<EntityId>> = Vec::new();
    let mut next_peer = 1u16;
    let mut hostile_seq = 1u64 << 50;
    let start_clients = 1 + rng.below(3) as usize;
    let join = |sim: &mut Sim, rng: &mut Rng, peer: u16| {
        let i = sim.add_client(peer);
        if spatial {
            let (volumes, scopes) = wish(rng);
            let _ = sim.clients[i].core.set_interest(&volumes, &scopes);
        }
        sim.connect(i);
    };
    for _ in 0..start_clients {
        join(&mut sim, &mut rng, next_peer);
        next_peer += 1;
        owned.push(Vec::new());
    }
    for _ in 0..ticks {
        // The host's writes.
        for _ in 0..rng.below(4) {
            if live.is_empty() {
                break;
            }
            let e = live[rng.below(live.len() as u64) as usize];
            let v = value(&mut rng);
            sim.host
                .set(e, types.position, &v)
                .map_err(|e| e.to_string())?;
            watch.host_values.insert(e, Some(v));
        }
        if rng.chance(0.1) {
            let e = sim.host.spawn().map_err(|e| e.to_string())?;
            let v = value(&mut rng);
            sim.host
                .set(e, types.position, &v)
                .map_err(|e| e.to_string())?;
            watch.host_values.insert(e, Some(v));
            live.push(e);
        }
        if rng.chance(0.05) && live.len() > 2 {
            let e = live.swap_remove(rng.below(live.len() as u64) as usize);
            sim.host.despawn(e).map_err(|e| e.to_string())?;
            watch.host_values.remove(&e);
        }
        if rng.chance(0.03) && !live.is_empty() {
            let e = live[rng.below(live.len() as u64) as usize];
            sim.host.remove(e, types.name).map_err(|e| e.to_string())?;
        }
        if rng.chance(0.05) && !live.is_empty() {
            let e = live[rng.below(live.len() as u64) as usize];
            let label = format!("n{}", rng.below(1000));
            sim.host
                .set(e, types.name, label.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        // The clients' writes, and the forbidden ones.
        for i in 0..sim.clients.len() {
            if sim.clients[i].core.peer().is_none() || sim.clients[i].conn.is_none() {
                continue;
            }
            if owned[i].len() < 3 && rng.chance(0.2) {
                if let Ok(e) = sim.clients[i].core.spawn() {
                    owned[i].push(e);
                }
            }
            if !owned[i].is_empty() && rng.chance(0.5) {
                let e = owned[i][rng.below(owned[i].len() as u64) as usize];
                let v = value(&mut rng);
                sim.clients[i]
                    .core
                    .set(e, types.position, &v)
                    .map_err(|e| e.to_string())?;
            }
            if !owned[i].is_empty() && rng.chance(0.02) {
                let e = owned[i][rng.below(owned[i].len() as u64) as usize];
                sim.clients[i]
                    .core
                    .remove(e, types.position)
                    .map_err(|e| e.to_string())?;
            }
            if owned[i].len() > 1 && rng.chance(0.03) {
                let e = owned[i].swap_remove(0);
                sim.clients[i].core.despawn(e).map_err(|e| e.to_string())?;
            }
            if rng.chance(0.05) {
                // A write to the host's entity, or another client's.
                let victim = if rng.chance(0.5) || owned.iter().all(Vec::is_empty) {
                    live.first().copied()
                } else {
                    owned.iter().flatten().next().copied()
                };
                if let Some(victim) = victim.filter(|v| v.creator() != sim.clients[i].peer) {
                    hostile_seq += 1;
                    let datagram = hostile_datagram(types.position, victim, hostile_seq);
                    sim.inject(i, Channel::Unreliable, datagram);
                }
            }
            // Grabs, moves and releases of the shared objects.
            let object = grabbable[rng.below(grabbable.len() as u64) as usize];
            let me = sim.clients[i].core.peer();
            let holds = sim.clients[i].core.owner_of(object, WHOLE_ENTITY) == me;
            if rng.chance(0.03) {
                let _ = sim.clients[i].core.request_ownership(object, WHOLE_ENTITY);
            } else if holds && rng.chance(0.4) {
                let v = value(&mut rng);
                let _ = sim.clients[i].core.set(object, types.position, &v);
            } else if holds && rng.chance(0.02) {
                let now = sim.now();
                let _ = sim.clients[i]
                    .core
                    .release_ownership(object, WHOLE_ENTITY, now);
            }
            if rng.chance(0.3) {
                let now = sim.clients[i].core.poses().local_ns(sim.now());
                let sample = PoseSample {
                    pose: Pose::IDENTITY,
                    time: now,
                    flags: PoseFlags::ALL,
                    linear_velocity: None,
                    angular_velocity: None,
                };
                let _ = sim.clients[i].core.poses_mut().push(Device::HEAD, &sample);
            }
        }
        // Interest: a client turns or walks (or the host decides for it).
        if spatial && rng.chance(0.05) {
            let i = rng.below(sim.clients.len() as u64) as usize;
            let (volumes, scopes) = wish(&mut rng);
            match sim.clients[i].core.peer() {
                Some(peer) if rng.chance(0.3) => {
                    let _ = sim.host.set_client_interest(peer, &volumes, &scopes);
                }
                _ => {
                    let _ = sim.clients[i].core.set_interest(&volumes, &scopes);
                }
            }
        }
        // Joins, silent drops and resumes.
        if rng.chance(0.01) && sim.clients.len() < 4 {
            join(&mut sim, &mut rng, next_peer);
            next_peer += 1;
            owned.push(Vec::new());
        }
        if rng.chance(0.01) {
            let i = rng.below(sim.clients.len() as u64) as usize;
            sim.drop_connection(i, Duration::from_millis(200));
        }
        for i in 0..sim.clients.len() {
            if sim.clients[i].conn.is_none()
                && sim.clients[i].core.is_closed()
                && sim.clients[i].core.reconnect().is_ok()
            {
                sim.connect(i);
            }
        }
        if rng.chance(0.005) {
            let i = rng.below(sim.clients.len() as u64) as usize;
            sim.partition(i, Duration::from_millis(rng.below(800)));
        }
        if rng.chance(0.01) {
            let _ = sim.host.train_dictionary(MessageKind::Datagram);
        }
        sim.step();
        watch.check(&mut sim, &types)?;
    }
    // Faults and changes stop; the path keeps its delay and jitter; partitions heal.
    sim.faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        ..sim.faults
    };
    for client in &mut sim.clients {
        client.partitioned_until = Duration::ZERO;
    }
    // Clients that dropped come back (resume, or join again after the grace).
    let deadline = sim.elapsed + Duration::from_secs(2);
    while sim.elapsed < deadline
        && sim
            .clients
            .iter()
            .any(|c| c.conn.is_none() && !c.core.is_closed())
    {
        sim.step();
    }
    for i in 0..sim.clients.len() {
        if sim.clients[i].conn.is_none() && sim.clients[i].core.reconnect().is_ok() {
            sim.connect(i);
        }
    }
    // Every client in the session names the host's owners of the shared objects.
    let agree = |sim: &Sim| {
        grabbable.iter().all(|&e| {
            sim.clients
                .iter()
                .filter(|c| c.conn.is_some())
                .all(|c| c.core.owner_of(e, WHOLE_ENTITY) == sim.host.owner_of(e, WHOLE_ENTITY))
        })
    };
    let start = sim.elapsed;
    let mut converged = None;
    while sim.elapsed - start <= CONVERGE_BOUND {
        if sim.converged() && agree(&sim) {
            converged = Some(sim.elapsed - start);
            break;
        }
        sim.step();
    }
    if converged.is_none() && sim.converged() {
        return Err("the clients name other owners of the shared objects than the host".into());
    }
    watch.check(&mut sim, &types)?;
    check_no_hostile_value(&sim, &types)?;
    if converged.is_none() {
        let states: Vec<String> = sim
            .clients
            .iter()
            .map(|c| {
                let (host, mine) = (sim.host.world(), c.core.world());
                let peer = c.core.peer().unwrap_or(u16::MAX);
                let hash = sim.host.interest_hash(peer);
                let sees = |e: &EntityId| sim.host.sees(peer, *e);
                let missing: Vec<EntityId> = host
                    .entities()
                    .filter(|e| sees(e) && !mine.is_alive(*e))
                    .collect();
                let extra: Vec<String> = mine
                    .entities()
                    .filter(|e| !host.is_alive(*e) || !sees(e))
                    .map(|e| {
                        format!(
                            "{e} (alive at the host {}, owner {:?})",
                            host.is_alive(e),
                            sim.host.owner_of(e, WHOLE_ENTITY)
                        )
                    })
                    .collect();
                let differ = host
                    .entities()
                    .filter(|e| mine.is_alive(*e))
                    .filter(|&e| {
                        [types.position, types.name]
                            .iter()
                            .any(|&c| host.get(e, c) != mine.get(e, c))
                    })
                    .count();
                let detail: Vec<String> = host
                    .entities()
                    .filter(|e| mine.is_alive(*e))
                    .filter(|&e| host.get(e, types.position) != mine.get(e, types.position))
                    .map(|e| {
                        format!(
                            "{e}: host {:?} owner {:?}, client {:?} owner {:?}",
                            host.get(e, types.position),
                            sim.host.owner_of(e, WHOLE_ENTITY),
                            mine.get(e, types.position),
                            c.core.owner_of(e, WHOLE_ENTITY)
                        )
                    })
                    .collect();
                let hd = c.core.peer().and_then(|p| sim.host.peer_diagnostics(p));
                let cd = c.core.peer_diagnostics();
                let detail = format!(
                    "{detail:?} host: stale {:?} rejected {:?}; client pending {:?}",
                    hd.map(|d| d.stale_writes),
                    hd.map(|d| d.writes_rejected),
                    cd.map(|d| d.pending_keys)
                );
                format!(
                    "peer {:?} conn {:?} closed {}: {} (missing {missing:?}, extra {extra:?}, values differ {differ}) {detail}",
                    c.core.peer(),
                    c.conn,
                    c.core.is_closed(),
                    if mine.state_hash() == hash { "=" } else { "differs" }
                )
            })
            .collect();
        return Err(format!(
            "no convergence within {CONVERGE_BOUND:?} of the last change ({faults:?}): {states:?}"
        ));
    }
    Ok(())
}

/// Runs `runs` seeds from `first` (or only `SIM_SEED`); panics naming the failing seed.
fn runs(first: u64, runs: u64, ticks: u64) {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SIM_SEED: a number")],
        Err(_) => {
            let n = std::env::var("SIM_RUNS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(runs);
            (first..first + n).collect()
        }
    };
    let started = Instant::now();
    for &seed in &seeds {
        if let Err(e) = run(seed, ticks) {
            panic!("seed {seed} failed: {e}\nreplay it: SIM_SEED={seed} cargo test sim_ -- --nocapture");
        }
    }
    eprintln!(
        "{} seeded runs of {ticks} ticks in {:?}",
        seeds.len(),
        started.elapsed()
    );
}

#[test]
fn sim_random_sessions_converge_and_refuse_every_forbidden_write() {
    runs(1, 1000, 90);
}

#[test]
#[ignore]
fn sim_soak() {
    runs(1_000_000, 20_000, 600);
}

/// Found by the random runs (seed 40): a client whose connection dropped after its
/// acceptance but before its snapshot arrived whole resumed without one, and lacked that
/// state for good. The resume request now says so, and the host sends a snapshot again.
#[test]
fn sim_a_client_dropped_before_its_snapshot_arrived_resumes_with_one() {
    let mut rng = Rng::new(40);
    let mut world = World::default();
    let position = world.register("sim.Position", Layout::Fixed(12)).unwrap();
    for _ in 0..300 {
        let e = world.spawn().unwrap();
        world.set(e, position, &value(&mut rng)).unwrap();
    }
    // A slow link: the acceptance arrives long before the snapshot's chunks do.
    let faults = Faults {
        bandwidth: Some(2_000),
        ..Faults::clean(Duration::from_millis(20))
    };
    let mut sim = Sim::new(world, Config::default(), faults, 40);
    sim.join(1);
    while sim.clients[0].core.peer().is_none() {
        assert!(sim.elapsed < Duration::from_secs(2), "never admitted");
        sim.step();
    }
    let held = sim.clients[0].core.world().stats().entities;
    assert!(held < 300, "the snapshot arrived already ({held} entities)");
    sim.drop_connection(0, Duration::from_millis(50));
    sim.faults = Faults::clean(Duration::from_millis(20));
    while !sim.clients[0].core.is_closed() {
        sim.step();
    }
    sim.clients[0].core.reconnect().expect("resumable");
    sim.connect(0);
    let took = sim.converge(Duration::from_secs(2));
    assert!(
        took.is_some(),
        "the resumed client never got the host's state"
    );
    assert_eq!(sim.clients[0].core.world().stats().entities, 300);
}

/// Not a test: the simulator's speed, as simulated seconds per wall second, for a host and
/// 4 clients, 1 000 objects of which 10 % move every tick at 60 Hz, over a path of
/// 20 ± 5 ms with 10 % loss:
/// `cargo test --release --test sim_props sim_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn sim_speed() {
    let mut rng = Rng::new(1);
    let mut world = World::default();
    let transform = world.register("sim.Transform", Layout::Fixed(28)).unwrap();
    let objects: Vec<EntityId> = (0..1000)
        .map(|_| {
            let e = world.spawn().unwrap();
            world.set(e, transform, &[0; 28]).unwrap();
            e
        })
        .collect();
    let faults = Faults {
        jitter: Duration::from_millis(5),
        loss: 0.1,
        ..Faults::clean(Duration::from_millis(20))
    };
    let mut sim = Sim::new(world, Config::default(), faults, 1);
    for peer in 1..=4 {
        sim.join(peer);
    }
    sim.converge(Duration::from_secs(10)).expect("joined");
    let ticks = 600u32;
    let started = Instant::now();
    for t in 0..ticks {
        for (i, &e) in objects.iter().take(100).enumerate() {
            let mut v = [0u8; 28];
            for (k, b) in v.iter_mut().enumerate() {
                *b = (rng.next_u64() >> (k % 8)) as u8 ^ (t as u8).wrapping_add(i as u8);
            }
            sim.host.set(e, transform, &v).unwrap();
        }
        sim.step();
    }
    let wall = started.elapsed();
    let simulated = sim.tick * ticks;
    eprintln!(
        "simulated {simulated:?} in {wall:?} of wall time: {:.1} simulated seconds per wall second (host + 4 clients, 1 000 objects, 10 % moving at 60 Hz, 10 % loss); {} messages, {} bytes delivered",
        simulated.as_secs_f64() / wall.as_secs_f64(),
        sim.delivered,
        sim.delivered_bytes
    );
}

/// `poll_timeout` says when a tick next has work that no input brings: nothing once the
/// session is quiet (a server may sleep), at once after an engine write, a resend delay
/// after a sending that is not acknowledged yet.
#[test]
fn sim_poll_timeout_says_when_a_tick_has_work() {
    let mut rng = Rng::new(7);
    let (world, types, live) = scene(&mut rng, value, false);
    let mut sim = Sim::new(
        world,
        Config::default(),
        Faults::clean(Duration::from_millis(20)),
        7,
    );
    sim.join(1);
    sim.converge(Duration::from_secs(2)).expect("joined");
    let path = theta_net::proto::Path {
        max_datagram: sim.max_datagram,
        rtt: Duration::from_millis(40),
        budget: usize::MAX,
    };
    let quiet = |sim: &Sim| {
        let now = sim.now();
        sim.host.poll_timeout(now, |_| path).is_none()
            && sim.clients[0].core.poll_timeout(now, path).is_none()
    };
    let mut settled = false;
    for _ in 0..60 {
        sim.step();
        if quiet(&sim) {
            settled = true;
            break;
        }
    }
    assert!(settled, "a quiet session still has work to do");
    // An engine write: due at once.
    let now = sim.now();
    sim.host
        .set(live[0], types.position, &value(&mut rng))
        .unwrap();
    assert_eq!(sim.host.poll_timeout(now, |_| path), Some(now));
    // Sent, not yet acknowledged: due again a resend delay later, not before.
    sim.step();
    let now = sim.now();
    let due = sim
        .host
        .poll_timeout(now, |_| path)
        .expect("a resend is due");
    assert!(due > now, "{:?} after now", due.duration_since(now));
    // Acknowledged: quiet again.
    let mut settled = false;
    for _ in 0..60 {
        sim.step();
        if quiet(&sim) {
            settled = true;
            break;
        }
    }
    assert!(settled, "the acknowledgement did not end the work");
}
