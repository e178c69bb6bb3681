//! Interest management under the deterministic simulator (`tests/sim/`): clients see the
//! entities inside their volumes (and the global ones), entering brings an entity whole,
//! leaving makes the client forget it without a despawn, under loss, duplication and delay
//! jitter.

mod sim;

use std::time::Duration;

use sim::{Faults, Rng, Sim};
use theta_net::interest::Volume;
use theta_net::proto::{Config, SessionEvent};
use theta_net::{ComponentId, Layout, World};

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

/// Every client holds exactly what the host says it sees, with the host's values.
fn holds_its_share(sim: &Sim, pos: ComponentId) -> Result<(), String> {
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
            if sees && host.get(e, pos) != mine.get(e, pos) {
                return Err(format!("peer {peer}: entity {e} differs"));
            }
        }
        if let Some(extra) = mine.entities().find(|e| !host.is_alive(*e)) {
            return Err(format!(
                "peer {peer}: holds {extra}, which the host does not"
            ));
        }
    }
    Ok(())
}

#[test]
fn clients_hold_exactly_what_they_see_while_they_walk_and_objects_move() {
    for seed in 0..12u64 {
        let mut rng = Rng::new(seed);
        let mut world = World::default();
        let pos = world.register("interest.Pos", Layout::Fixed(12)).unwrap();
        let mut objects = Vec::new();
        for _ in 0..400 {
            let e = world.spawn().unwrap();
            let p = [
                rng.below(SIDE as u64) as f32,
                0.0,
                rng.below(SIDE as u64) as f32,
            ];
            world.set(e, pos, &position_bytes(p)).unwrap();
            objects.push((e, p));
        }
        // One global object (no position): everyone sees it.
        let global = world.spawn().unwrap();
        world.set(global, pos, &position_bytes([0.0; 3])).unwrap();
        let config = Config {
            interest_cell: Some(20.0),
            ..Config::default()
        };
        let faults = Faults {
            latency: Duration::from_millis(30),
            jitter: Duration::from_millis(15),
            loss: 0.3,
            duplicate: 0.1,
            bandwidth: None,
        };
        let mut sim = Sim::new(world, config, faults, seed);
        for &(e, p) in &objects {
            sim.host.set_interest_position(e, Some(p)).unwrap();
        }
        sim.join(1);
        sim.join(2);
        let mut heads = [[20.0f32, 1.6, 20.0], [180.0, 1.6, 180.0]];
        for _ in 0..600 {
            if sim.clients.iter().all(|c| c.core.peer().is_some()) {
                break;
            }
            sim.step();
        }
        let mut left_events = 0;
        for tick in 0..300 {
            // The clients walk towards each other's corner; 5 % of the objects move.
            for (i, head) in heads.iter_mut().enumerate() {
                let dir = if i == 0 { 0.5 } else { -0.5 };
                head[0] += dir;
                head[2] += dir;
                sim.host
                    .set_client_interest(i as u16 + 1, &[sphere(*head)], &[])
                    .unwrap();
            }
            for _ in 0..20 {
                let k = rng.below(objects.len() as u64) as usize;
                let (e, ref mut p) = objects[k];
                p[0] = (p[0] + rng.spread(Duration::from_nanos(3)) as f32).clamp(0.0, SIDE);
                sim.host.set(e, pos, &position_bytes(*p)).unwrap();
                sim.host.set_interest_position(e, Some(*p)).unwrap();
            }
            sim.step();
            if tick == 150 {
                sim.faults = Faults {
                    loss: 0.3,
                    ..sim.faults
                };
            }
            for c in &mut sim.clients {
                left_events += c
                    .events
                    .drain(..)
                    .filter(|e| matches!(e, SessionEvent::Left { .. }))
                    .count();
            }
        }
        sim.faults = Faults {
            loss: 0.0,
            duplicate: 0.0,
            ..sim.faults
        };
        let mut result = Err("not settled".to_owned());
        for _ in 0..240 {
            sim.step();
            result = holds_its_share(&sim, pos);
            if result.is_ok() {
                break;
            }
        }
        if let Err(e) = result {
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
