//! Interest management under the deterministic simulator (`tests/sim/`): clients see the
//! entities inside their volumes, in their subscribed scopes, and the global ones;
//! entering brings an entity whole, leaving makes the client forget it without a
//! despawn; late joiners and resumed clients get just their share; near and heavy
//! entities go first when the budget is short. Every network here has delay jitter, and
//! most have loss and duplication.

mod sim;

use std::time::Duration;

use sim::{Faults, Rng, Sim};
use theta_net::interest::Volume;
use theta_net::proto::compression::control_message;
use theta_net::proto::{Channel, Config, SessionEvent};
use theta_net::wire::{fb, Encoder};
use theta_net::{ComponentId, EntityId, Layout, World};

const SIDE: f32 = 200.0;

fn position_bytes(p: [f32; 3]) -> Vec<u8> {
    p.iter().flat_map(|c| c.to_le_bytes()).collect()
}

fn sphere(center: [f32; 3]) -> Volume {
    Volume::Sphere {
        center,
        radius: 40.0,
        outer: 46.0,
    }
}

fn jittery(loss: f64) -> Faults {
    Faults {
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(15),
        loss,
        duplicate: 0.1,
        bandwidth: None,
    }
}

fn interest_config(cell: f32) -> Config {
    Config {
        interest_cell: Some(cell),
        ..Config::default()
    }
}

/// A world of `count` objects at random places on a `side` square (y = 0), each with a
/// 12-byte position; plus one global object (no position).
fn scene(
    count: usize,
    side: f32,
    rng: &mut Rng,
) -> (World, ComponentId, Vec<(EntityId, [f32; 3])>) {
    let mut world = World::default();
    let pos = world.register("interest.Pos", Layout::Fixed(12)).unwrap();
    let objects = (0..count)
        .map(|_| {
            let e = world.spawn().unwrap();
            let p = [
                rng.below(side as u64) as f32,
                0.0,
                rng.below(side as u64) as f32,
            ];
            world.set(e, pos, &position_bytes(p)).unwrap();
            (e, p)
        })
        .collect();
    (world, pos, objects)
}

/// Every client holds exactly what the host says it sees, with the host's values: its
/// state hash equals the host's hash of its share.
fn holds_its_share(sim: &Sim) -> Result<(), String> {
    let host = sim.host.world();
    for c in &sim.clients {
        let peer = c.core.peer().ok_or("a client has no peer id")?;
        let mine = c.core.world();
        for e in host.entities() {
            let sees = sim.host.sees(peer, e);
            if sees != mine.is_alive(e) {
                return Err(format!(
                    "peer {peer}: entity {e} seen {sees}, held {}",
                    mine.is_alive(e)
                ));
            }
        }
        if let Some(extra) = mine.entities().find(|e| !host.is_alive(*e)) {
            return Err(format!(
                "peer {peer}: holds {extra}, which the host does not"
            ));
        }
        if mine.state_hash() != sim.host.interest_hash(peer) {
            return Err(format!(
                "peer {peer}: its state hash differs from its share's"
            ));
        }
    }
    Ok(())
}

/// Steps until every client holds its share (at most `steps` ticks).
fn settle(sim: &mut Sim, steps: usize) -> Result<(), String> {
    let mut result = Err("not settled".to_owned());
    for _ in 0..steps {
        sim.step();
        result = holds_its_share(sim);
        if result.is_ok() {
            break;
        }
    }
    result
}

fn step_until_joined(sim: &mut Sim) {
    for _ in 0..600 {
        if sim.clients.iter().all(|c| c.core.peer().is_some()) {
            return;
        }
        sim.step();
    }
    panic!("the clients did not join");
}

fn count_left(sim: &mut Sim) -> usize {
    sim.clients
        .iter_mut()
        .map(|c| {
            c.events
                .drain(..)
                .filter(|e| matches!(e, SessionEvent::Left { .. }))
                .count()
        })
        .sum()
}

#[test]
fn clients_hold_exactly_what_they_see_while_they_walk_and_objects_move() {
    for seed in 0..12u64 {
        let mut rng = Rng::new(seed);
        let (mut world, pos, mut objects) = scene(400, SIDE, &mut rng);
        let global = world.spawn().unwrap();
        let mut sim = Sim::new(world, interest_config(20.0), jittery(0.3), seed);
        // Positions from the engine's calls, or read from the component itself.
        let from_component = seed % 2 == 1;
        if from_component {
            sim.host.set_interest_source(pos, 0).unwrap();
        } else {
            for &(e, p) in &objects {
                sim.host.set_interest_position(e, Some(p)).unwrap();
            }
        }
        sim.join(1);
        sim.join(2);
        step_until_joined(&mut sim);
        let mut heads = [[20.0f32, 1.6, 20.0], [180.0, 1.6, 180.0]];
        let mut left_events = 0;
        for _ in 0..300 {
            // The clients walk towards each other's corner: the first says so itself, the
            // second's interest is the host's to set. 5 % of the objects move.
            for (i, head) in heads.iter_mut().enumerate() {
                let dir = if i == 0 { 0.5 } else { -0.5 };
                head[0] += dir;
                head[2] += dir;
            }
            sim.clients[0]
                .core
                .set_interest(&[sphere(heads[0])], &[])
                .unwrap();
            sim.host
                .set_client_interest(2, &[sphere(heads[1])], &[])
                .unwrap();
            for _ in 0..20 {
                let k = rng.below(objects.len() as u64) as usize;
                let (e, ref mut p) = objects[k];
                p[0] = (p[0] + rng.spread(Duration::from_nanos(3)) as f32).clamp(0.0, SIDE);
                sim.host.set(e, pos, &position_bytes(*p)).unwrap();
                if !from_component {
                    sim.host.set_interest_position(e, Some(*p)).unwrap();
                }
            }
            sim.step();
            left_events += count_left(&mut sim);
        }
        sim.faults = Faults::clean(Duration::from_millis(30));
        if let Err(e) = settle(&mut sim, 240) {
            panic!("seed {seed}: {e}");
        }
        assert!(
            left_events > 0,
            "seed {seed}: objects left the clients' interest"
        );
        for c in &sim.clients {
            assert!(
                c.core.world().is_alive(global),
                "seed {seed}: the global object"
            );
            let held = c.core.world().entities().count();
            assert!(
                held > 1 && held < objects.len() / 4,
                "seed {seed}: a client holds its share, not the world ({held})"
            );
        }
    }
}

#[test]
fn a_client_walking_through_ten_thousand_objects_holds_its_share_at_every_checkpoint() {
    let seed = 17;
    let mut rng = Rng::new(seed);
    let side = 1000.0;
    let (world, pos, mut objects) = scene(10_000, side, &mut rng);
    let mut sim = Sim::new(world, interest_config(60.0), jittery(0.1), seed);
    sim.host.set_interest_source(pos, 0).unwrap();
    let index = sim.add_client(1);
    let mut head = [100.0f32, 1.6, 500.0];
    let view = |head: [f32; 3]| Volume::Sphere {
        center: head,
        radius: 60.0,
        outer: 70.0,
    };
    sim.clients[index]
        .core
        .set_interest(&[view(head)], &[])
        .unwrap();
    sim.connect(index);
    step_until_joined(&mut sim);
    settle(&mut sim, 240).expect("after the join");
    let mut checkpoints = 0;
    let mut left = 0;
    for leg in 0..8 {
        // Walk 100 m east over 100 ticks while 1 % of the objects move.
        for _ in 0..100 {
            head[0] += 1.0;
            sim.clients[index]
                .core
                .set_interest(&[view(head)], &[])
                .unwrap();
            for _ in 0..100 {
                let k = rng.below(objects.len() as u64) as usize;
                let (e, ref mut p) = objects[k];
                p[2] = (p[2] + rng.spread(Duration::from_nanos(2)) as f32).clamp(0.0, side);
                sim.host.set(e, pos, &position_bytes(*p)).unwrap();
            }
            sim.step();
            left += count_left(&mut sim);
        }
        // A checkpoint: it stands still, the objects too; the network still loses and
        // reorders.
        if let Err(e) = settle(&mut sim, 300) {
            panic!("leg {leg}: {e}");
        }
        let held = sim.clients[index].core.world().entities().count();
        assert!(held > 20 && held < 500, "leg {leg}: {held} held");
        checkpoints += 1;
    }
    assert_eq!(checkpoints, 8);
    assert!(left > 100, "objects behind it left ({left})");
}

#[test]
fn subscribing_and_unsubscribing_scopes_brings_and_takes_their_entities() {
    for seed in 0..6u64 {
        let mut world = World::default();
        let tag = world.register("interest.Tag", Layout::Fixed(4)).unwrap();
        let mut by_scope: Vec<Vec<EntityId>> = vec![Vec::new(); 4];
        let mut entities = Vec::new();
        for i in 0..120u32 {
            let e = world.spawn().unwrap();
            world.set(e, tag, &i.to_le_bytes()).unwrap();
            entities.push((e, i % 4));
            by_scope[(i % 4) as usize].push(e);
        }
        let global = world.spawn().unwrap();
        let mut sim = Sim::new(world, interest_config(10.0), jittery(0.3), seed);
        for &(e, scope) in &entities {
            sim.host.set_interest_scopes(e, &[100 + scope]).unwrap();
        }
        sim.join(1);
        step_until_joined(&mut sim);
        let expect = |sim: &mut Sim, by_scope: &[Vec<EntityId>], scopes: &[u32], what: &str| {
            sim.clients[0].core.set_interest(&[], scopes).unwrap();
            let want: usize = scopes
                .iter()
                .map(|s| by_scope[(s - 100) as usize].len())
                .sum::<usize>()
                + 1;
            // Until the wish has reached the host and what it brings has arrived.
            for _ in 0..400 {
                sim.step();
                if sim.clients[0].core.world().entities().count() == want
                    && holds_its_share(sim).is_ok()
                {
                    break;
                }
            }
            if let Err(e) = holds_its_share(sim) {
                panic!("seed {seed}, {what}: {e}");
            }
            let world = sim.clients[0].core.world();
            assert_eq!(world.entities().count(), want, "seed {seed}, {what}");
            assert!(world.is_alive(global));
        };
        expect(&mut sim, &by_scope, &[], "none");
        expect(&mut sim, &by_scope, &[101], "one scope");
        count_left(&mut sim);
        expect(&mut sim, &by_scope, &[102, 103], "two others");
        assert_eq!(count_left(&mut sim), 30, "seed {seed}: scope 101 left");
        // The host changes an entity's scopes: it moves between subscribers.
        let moved = by_scope[1][0];
        sim.host.set_interest_scopes(moved, &[102]).unwrap();
        by_scope[1].retain(|&e| e != moved);
        by_scope[2].push(moved);
        expect(
            &mut sim,
            &by_scope,
            &[102, 103],
            "an entity joins a subscribed scope",
        );
        expect(&mut sim, &by_scope, &[], "unsubscribed");
        // The host still holds everything.
        assert_eq!(sim.host.world().entities().count(), 121);
    }
}

#[test]
fn an_entity_that_moves_out_while_an_update_is_in_flight_does_not_come_back() {
    for seed in 0..30u64 {
        let mut world = World::default();
        let pos = world.register("interest.Pos", Layout::Fixed(12)).unwrap();
        let count = world.register("interest.Count", Layout::Fixed(8)).unwrap();
        let e = world.spawn().unwrap();
        world.set(e, pos, &position_bytes([5.0, 0.0, 0.0])).unwrap();
        // Wide delay variation: datagrams sent before the Left notice often land after it.
        let faults = Faults {
            latency: Duration::from_millis(45),
            jitter: Duration::from_millis(40),
            loss: 0.1,
            duplicate: 0.3,
            bandwidth: None,
        };
        let mut sim = Sim::new(world, interest_config(10.0), faults, seed);
        sim.host.set_interest_source(pos, 0).unwrap();
        sim.add_client(1);
        let view = Volume::Sphere {
            center: [0.0; 3],
            radius: 10.0,
            outer: 10.0,
        };
        sim.clients[0].core.set_interest(&[view], &[]).unwrap();
        sim.connect(0);
        step_until_joined(&mut sim);
        settle(&mut sim, 200).unwrap();
        for round in 0..4u64 {
            // Updates every tick, then it steps out (its last update with it).
            for n in 0..10u64 {
                sim.host
                    .set(e, count, &(round * 100 + n).to_le_bytes())
                    .unwrap();
                sim.step();
            }
            sim.host
                .set(e, count, &(round * 100 + 50).to_le_bytes())
                .unwrap();
            sim.host
                .set(e, pos, &position_bytes([30.0, 0.0, 0.0]))
                .unwrap();
            let mut got_left = false;
            for _ in 0..60 {
                sim.host
                    .set(e, count, &(round * 100 + 60).to_le_bytes())
                    .unwrap();
                sim.step();
                let c = &mut sim.clients[0];
                if c.events
                    .iter()
                    .any(|ev| matches!(ev, SessionEvent::Left { entity } if *entity == e))
                {
                    got_left = true;
                }
                c.events.clear();
                if got_left {
                    assert!(
                        !c.core.world().is_alive(e),
                        "seed {seed} round {round}: it came back after it left"
                    );
                }
            }
            assert!(got_left, "seed {seed} round {round}: no Left");
            // It comes back: whole, with the host's newest state.
            sim.host
                .set(e, pos, &position_bytes([5.0, 0.0, 0.0]))
                .unwrap();
            if let Err(err) = settle(&mut sim, 200) {
                panic!("seed {seed} round {round}: {err}");
            }
            assert!(sim.clients[0].core.world().is_alive(e));
        }
    }
}

#[test]
fn a_resumed_client_holds_its_share_of_what_changed_while_it_was_away() {
    for seed in 0..40u64 {
        let mut rng = Rng::new(seed);
        let (world, pos, mut objects) = scene(300, SIDE, &mut rng);
        let mut sim = Sim::new(world, interest_config(20.0), jittery(0.2), seed);
        sim.host.set_interest_source(pos, 0).unwrap();
        sim.add_client(1);
        sim.clients[0]
            .core
            .set_interest(&[sphere([100.0, 0.0, 100.0])], &[])
            .unwrap();
        sim.connect(0);
        step_until_joined(&mut sim);
        settle(&mut sim, 300).unwrap();
        sim.drop_connection(0, Duration::from_millis(300));
        while !sim.clients[0].core.is_closed() {
            sim.step();
        }
        // While it is away: objects move in and out of its view, and it turns its head.
        for _ in 0..60 {
            let k = rng.below(objects.len() as u64) as usize;
            let (e, ref mut p) = objects[k];
            *p = [
                rng.below(SIDE as u64) as f32,
                0.0,
                rng.below(SIDE as u64) as f32,
            ];
            sim.host.set(e, pos, &position_bytes(*p)).unwrap();
            sim.step();
        }
        sim.clients[0]
            .core
            .set_interest(&[sphere([120.0, 0.0, 80.0])], &[])
            .unwrap();
        sim.clients[0].core.reconnect().expect("resumable");
        sim.connect(0);
        if let Err(e) = settle(&mut sim, 400) {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn a_late_joiner_gets_its_share_in_its_snapshot() {
    let mut rng = Rng::new(5);
    let (world, pos, _) = scene(4_000, 1000.0, &mut rng);
    let full = world.snapshot(theta_net::DEFAULT_MAX_CHUNK_BYTES);
    let full_bytes: usize = full.chunks.iter().map(|c| c.bytes.len()).sum();
    let mut sim = Sim::new(world, interest_config(50.0), jittery(0.1), 5);
    sim.host.set_interest_source(pos, 0).unwrap();
    sim.add_client(1);
    let view = Volume::Box {
        min: [0.0, -1.0, 0.0],
        max: [200.0, 1.0, 200.0],
        margin: 10.0,
    };
    sim.clients[0].core.set_interest(&[view], &[]).unwrap();
    sim.connect(0);
    step_until_joined(&mut sim);
    settle(&mut sim, 300).unwrap();
    let held = sim.clients[0].core.world().entities().count();
    // A 200 m square of a 1 km one: about 4 %.
    assert!(held > 80 && held < 300, "{held} held");
    let d = sim.host.peer_diagnostics(1).unwrap();
    assert!(d.snapshot_bytes > 0, "the share came in the snapshot");
    assert!(
        (d.snapshot_bytes as usize) < full_bytes / 10,
        "{} snapshot bytes of {full_bytes} for the world",
        d.snapshot_bytes
    );
    // Nothing of its share had to follow in datagrams (nothing changed).
    assert!(
        d.outbox.datagram_bytes < 2_000,
        "{} datagram bytes",
        d.outbox.datagram_bytes
    );
}

#[test]
fn hostile_interest_messages_are_counted_and_change_nothing() {
    let mut rng = Rng::new(3);
    let (world, pos, _) = scene(200, SIDE, &mut rng);
    let mut sim = Sim::new(world, interest_config(20.0), jittery(0.0), 3);
    sim.host.set_interest_source(pos, 0).unwrap();
    sim.add_client(1);
    sim.clients[0]
        .core
        .set_interest(&[sphere([50.0, 0.0, 50.0])], &[])
        .unwrap();
    sim.connect(0);
    step_until_joined(&mut sim);
    settle(&mut sim, 200).unwrap();
    let before = sim.clients[0].core.world().state_hash();
    let mut encoder = Encoder::new();
    let v = |kind, a: [f32; 3], b: [f32; 3], inner, outer| {
        fb::InterestVolume::new(
            kind,
            &fb::Vec3::new(a[0], a[1], a[2]),
            &fb::Vec3::new(b[0], b[1], b[2]),
            inner,
            outer,
        )
    };
    let ok = v(0, [0.0; 3], [0.0; 3], 500.0, 500.0);
    let hostile = [
        encoder.client_interest(&[v(0, [f32::NAN; 3], [0.0; 3], 1.0, 1.0)], &[]),
        encoder.client_interest(&[v(0, [0.0; 3], [0.0; 3], -1.0, 1.0)], &[]),
        encoder.client_interest(&[v(7, [0.0; 3], [0.0; 3], 1.0, 1.0)], &[]),
        encoder.client_interest(&[v(1, [1.0; 3], [0.0; 3], 0.0, 1.0)], &[]),
        encoder.client_interest(&[ok; 9], &[]),
        encoder.client_interest(&[ok], &[1; 65]),
    ];
    let count = hostile.len() as u64;
    for bytes in hostile {
        sim.inject(0, Channel::Reliable, control_message(&bytes));
    }
    for _ in 0..60 {
        sim.step();
    }
    let d = sim.host.peer_diagnostics(1).unwrap();
    assert_eq!(d.malformed, count);
    assert_eq!(
        sim.clients[0].core.world().state_hash(),
        before,
        "nothing changed"
    );
    holds_its_share(&sim).unwrap();
}

#[test]
fn near_and_heavy_entities_go_first_when_the_budget_is_short() {
    for seed in 0..4u64 {
        let mut world = World::default();
        let pos = world.register("interest.Pos", Layout::Fixed(12)).unwrap();
        let count = world.register("interest.Count", Layout::Fixed(8)).unwrap();
        // A row of 200 objects from 1 m to 200 m, all in view.
        let row: Vec<EntityId> = (1..=200)
            .map(|i| {
                let e = world.spawn().unwrap();
                world
                    .set(e, pos, &position_bytes([i as f32, 0.0, 0.0]))
                    .unwrap();
                world.set(e, count, &0u64.to_le_bytes()).unwrap();
                e
            })
            .collect();
        let config = Config {
            // About a tenth of a tick's changes fit.
            budget_bytes_per_tick: 900,
            ..interest_config(20.0)
        };
        let mut sim = Sim::new(world, config, jittery(0.05), seed);
        sim.host.set_interest_source(pos, 0).unwrap();
        // One far object weighs as much as a hundred.
        let heavy = row[180];
        sim.host.set_priority(heavy, 100.0).unwrap();
        sim.add_client(1);
        let view = Volume::Sphere {
            center: [0.0; 3],
            radius: 250.0,
            outer: 250.0,
        };
        sim.clients[0].core.set_interest(&[view], &[]).unwrap();
        sim.connect(0);
        step_until_joined(&mut sim);
        settle(&mut sim, 400).unwrap();
        // Every object changes every tick; count how stale each is at the client.
        let mut staleness = vec![0u64; row.len()];
        for tick in 1..=300u64 {
            for &e in &row {
                sim.host.set(e, count, &tick.to_le_bytes()).unwrap();
            }
            sim.step();
            let world = sim.clients[0].core.world();
            for (i, &e) in row.iter().enumerate() {
                let held = world
                    .get(e, count)
                    .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
                staleness[i] += tick - held;
            }
        }
        let mean = |r: std::ops::Range<usize>| {
            let n = r.len() as u64;
            r.map(|i| staleness[i]).sum::<u64>() / n
        };
        let (near, far) = (mean(0..20), mean(150..200));
        assert!(near * 2 < far, "seed {seed}: near {near}, far {far}");
        assert!(
            staleness[180] * 2 < far,
            "seed {seed}: the heavy far one {} against {far}",
            staleness[180]
        );
    }
}

#[test]
fn what_a_client_owns_stays_in_its_interest_until_it_lets_go() {
    use theta_net::ownership::WHOLE_ENTITY;
    for seed in 0..8u64 {
        let mut world = World::default();
        let pos = world.register("interest.Pos", Layout::Fixed(12)).unwrap();
        let cup = world.spawn().unwrap();
        world
            .set(cup, pos, &position_bytes([5.0, 0.0, 0.0]))
            .unwrap();
        let far = world.spawn().unwrap();
        world
            .set(far, pos, &position_bytes([95.0, 0.0, 0.0]))
            .unwrap();
        let mut sim = Sim::new(world, interest_config(10.0), jittery(0.2), seed);
        sim.host.set_interest_source(pos, 0).unwrap();
        // Free to take.
        sim.host.set_owner(cup, WHOLE_ENTITY, None).unwrap();
        sim.add_client(1);
        let at = |x: f32| Volume::Sphere {
            center: [x, 0.0, 0.0],
            radius: 10.0,
            outer: 12.0,
        };
        sim.clients[0].core.set_interest(&[at(0.0)], &[]).unwrap();
        sim.connect(0);
        step_until_joined(&mut sim);
        settle(&mut sim, 200).unwrap();
        // It takes the cup and walks off without it: the cup stays with it.
        sim.clients[0]
            .core
            .request_ownership(cup, WHOLE_ENTITY)
            .unwrap();
        for _ in 0..60 {
            sim.step();
        }
        assert_eq!(sim.host.owner_of(cup, WHOLE_ENTITY), Some(1), "seed {seed}");
        sim.clients[0].core.set_interest(&[at(100.0)], &[]).unwrap();
        let bound = 200;
        for _ in 0..bound {
            sim.step();
            if sim.clients[0].core.world().is_alive(far) {
                break;
            }
        }
        settle(&mut sim, 200).unwrap();
        let world = sim.clients[0].core.world();
        assert!(world.is_alive(far), "seed {seed}: it sees where it went");
        assert!(
            world.is_alive(cup),
            "seed {seed}: and still holds what it owns"
        );
        assert!(sim.host.sees(1, cup));
        // It lets go: the cup, far behind it, leaves its interest.
        let now = sim.now();
        sim.clients[0]
            .core
            .release_ownership(cup, WHOLE_ENTITY, now)
            .unwrap();
        for _ in 0..200 {
            sim.step();
            if !sim.clients[0].core.world().is_alive(cup) {
                break;
            }
        }
        settle(&mut sim, 200).unwrap();
        assert!(
            !sim.clients[0].core.world().is_alive(cup),
            "seed {seed}: it left"
        );
        assert!(sim.host.world().is_alive(cup), "seed {seed}: not despawned");
        // The host gives it to the client directly: it comes back, wherever it is.
        sim.host.set_owner(cup, WHOLE_ENTITY, Some(1)).unwrap();
        for _ in 0..200 {
            sim.step();
            if sim.clients[0].core.world().is_alive(cup) {
                break;
            }
        }
        settle(&mut sim, 200).unwrap();
        assert!(
            sim.clients[0].core.world().is_alive(cup),
            "seed {seed}: granted"
        );
    }
}

#[test]
fn bad_interest_calls_on_the_host_are_refused_and_change_nothing() {
    use theta_net::interest::InterestError;
    let mut world = World::default();
    let pos = world.register("interest.Pos", Layout::Fixed(12)).unwrap();
    let label = world
        .register("interest.Label", Layout::Variable { max: 8 })
        .unwrap();
    let e = world.spawn().unwrap();
    let gone = world.spawn().unwrap();
    world.despawn(gone).unwrap();
    // Interest off: every call says so.
    let mut off = Sim::new(World::default(), Config::default(), jittery(0.0), 1);
    assert_eq!(
        off.host.set_interest_position(e, Some([0.0; 3])),
        Err(InterestError::Off)
    );
    assert_eq!(
        off.host.set_interest_source(pos, 0),
        Err(InterestError::Off)
    );
    let mut sim = Sim::new(world, interest_config(10.0), jittery(0.0), 1);
    let host = &mut sim.host;
    assert!(matches!(
        host.set_interest_position(e, Some([0.0, f32::NAN, 0.0])),
        Err(InterestError::NotFinite(_))
    ));
    assert_eq!(
        host.set_interest_position(gone, Some([0.0; 3])),
        Err(InterestError::UnknownEntity(gone))
    );
    assert!(matches!(
        host.set_interest_scopes(e, &[1; 65]),
        Err(InterestError::TooMany { .. })
    ));
    for (component, offset) in [
        (pos, 1),
        (pos, usize::MAX),
        (label, 0),
        (ComponentId(99), 0),
    ] {
        assert!(
            matches!(
                host.set_interest_source(component, offset),
                Err(InterestError::OutsideComponent { .. })
            ),
            "{component:?} at {offset}"
        );
    }
    let bad = Volume::Sphere {
        center: [0.0; 3],
        radius: -1.0,
        outer: 1.0,
    };
    assert!(host.set_client_interest(1, &[bad], &[]).is_err());
    assert!(host.set_priority(e, f32::NAN).is_err());
    assert!(host.set_priority(e, 0.0).is_err());
    // Nothing changed: e is still global, seen by a new client.
    sim.join(1);
    step_until_joined(&mut sim);
    settle(&mut sim, 100).unwrap();
    assert!(sim.clients[0].core.world().is_alive(e));
}

#[test]
fn a_client_that_leaves_for_good_is_forgotten_and_a_new_one_in_its_place_starts_afresh() {
    let mut rng = Rng::new(9);
    let (world, pos, objects) = scene(200, SIDE, &mut rng);
    let mut sim = Sim::new(world, interest_config(20.0), jittery(0.1), 9);
    sim.host.set_interest_source(pos, 0).unwrap();
    sim.add_client(1);
    sim.clients[0]
        .core
        .set_interest(&[sphere([50.0, 0.0, 50.0])], &[])
        .unwrap();
    sim.connect(0);
    step_until_joined(&mut sim);
    settle(&mut sim, 200).unwrap();
    let seen = |sim: &Sim| objects.iter().filter(|(e, _)| sim.host.sees(1, *e)).count();
    assert!(seen(&sim) > 0);
    // Goodbye: its interest goes with it.
    sim.clients[0].core.goodbye();
    for _ in 0..60 {
        sim.step();
    }
    assert_eq!(seen(&sim), 0, "nothing is kept for a peer that left");
    // A new client with the same peer id and no wish sees only the global entities.
    sim.clients.clear();
    sim.join(1);
    step_until_joined(&mut sim);
    settle(&mut sim, 200).unwrap();
    assert_eq!(seen(&sim), 0);
    assert_eq!(sim.clients[0].core.world().entities().count(), 0);
}
