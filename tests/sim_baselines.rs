//! Values coded against acknowledged baselines (`proto::baselines`, `replica`'s history)
//! under the deterministic simulator: sessions converge under delay jitter, loss and
//! duplication with baselines on as without, no value ever lacks its baseline, and the
//! bytes on the wire go down; a datagram whose baseline the client no longer holds is
//! not acknowledged, and its values come again.

mod sim;

use std::time::Duration;

use sim::{Faults, Rng, Sim};
use theta_net::proto::Config;
use theta_net::{EntityId, Layout, World};

/// How the transform travels.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Coding {
    /// A raw blob.
    Raw,
    /// A raw blob, XOR'd with a baseline.
    Baselines,
    /// Declared fields (1 mm, 0.1°) as lanes, against nothing.
    Lanes,
    /// Declared fields as lanes against a baseline.
    LanesOnBaselines,
}

/// Runs a session of 300 objects, 10 % of them moving smoothly each tick, under `faults`;
/// returns the bytes the host sent and (values coded on baselines, missing baselines).
fn run(seed: u64, coding: Coding, faults: Faults) -> (u64, u64, u64) {
    let mut rng = Rng::new(seed);
    let mut world = World::default();
    let t = world.register("b.Transform", Layout::Fixed(28)).unwrap();
    if matches!(coding, Coding::Lanes | Coding::LanesOnBaselines) {
        let fields = sim::transform_fields();
        world.declare_fields(t, &fields).unwrap();
    }
    let baselines = matches!(coding, Coding::Baselines | Coding::LanesOnBaselines);
    let label = world
        .register("b.Label", Layout::Variable { max: 16 })
        .unwrap();
    let mut objects: Vec<(EntityId, [f32; 3], f32)> = (0..300)
        .map(|i| {
            let e = world.spawn().unwrap();
            let p = [rng.below(20) as f32, 1.0, rng.below(20) as f32];
            world.set(e, t, &sim::transform(p, 0.0)).unwrap();
            if i % 10 == 0 {
                world.set(e, label, b"hello").unwrap();
            }
            (e, p, 0.0)
        })
        .collect();
    let config = Config {
        value_baselines: baselines,
        ..Config::default()
    };
    let mut sim = Sim::new(world, config, faults, seed);
    sim.join(1);
    sim.join(2);
    assert!(sim.converge(Duration::from_secs(5)).is_some(), "joined");
    for tick in 0..240u32 {
        for (i, (e, p, yaw)) in objects.iter_mut().enumerate() {
            if i % 10 == tick as usize % 10 || i < 30 {
                p[0] += 0.02;
                *yaw += 0.01;
                sim.host.set(*e, t, &sim::transform(*p, *yaw)).unwrap();
            }
        }
        if tick % 40 == 0 {
            // A remove and a re-insert, and a variable-size value (never on a baseline).
            let (e, p, yaw) = objects[(tick / 40) as usize];
            sim.host.remove(e, t).unwrap();
            sim.step();
            sim.host.set(e, t, &sim::transform(p, yaw)).unwrap();
            sim.host
                .set(objects[1].0, label, format!("t{tick}").as_bytes())
                .unwrap();
        }
        sim.step();
    }
    sim.faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        ..sim.faults
    };
    if sim.converge(Duration::from_secs(3)).is_none() {
        panic!("seed {seed}, {coding:?}: no convergence");
    }
    let host = sim.host.diagnostics();
    if baselines {
        // Two clients that acknowledged the same sends share one coding of a value, and
        // the values behind the baselines are held once, bounded by 16 per key.
        assert!(
            host.values_coded_shared > 0,
            "seed {seed}, {coding:?}: no coding shared ({} coded)",
            host.values_coded
        );
        let bound = 300 * 16 * (28 + 8 * 8);
        assert!(
            (1..=bound).contains(&host.value_history_bytes),
            "seed {seed}, {coding:?}: {} bytes of history",
            host.value_history_bytes
        );
    }
    let sent: u64 = host.peers.iter().map(|p| p.payload_bytes_sent).sum();
    let on: u64 = host
        .peers
        .iter()
        .map(|p| p.outbox.values_on_baselines)
        .sum();
    let missing: u64 = sim
        .clients
        .iter()
        .filter_map(|c| c.core.peer_diagnostics())
        .map(|d| d.missing_baselines)
        .sum();
    (sent, on, missing)
}

#[test]
fn sessions_converge_on_baselines_under_jitter_and_loss_and_send_fewer_bytes() {
    for seed in 0..6u64 {
        let faults = Faults {
            latency: Duration::from_millis(10 + seed * 8),
            jitter: Duration::from_millis(5 + seed * 6),
            loss: 0.05 * seed as f64,
            duplicate: 0.05,
            bandwidth: None,
        };
        let (with, on, missing) = run(seed, Coding::Baselines, faults);
        let (without, off, _) = run(seed, Coding::Raw, faults);
        // A datagram overtaken by more later values of a key than the client keeps goes
        // unacknowledged and comes again: rare, and the session converges anyway.
        assert!(
            missing * 100 <= on,
            "seed {seed}: {missing} datagrams lacked a baseline, {on} values on baselines"
        );
        assert!(on > 1000, "seed {seed}: {on} values on baselines");
        assert_eq!(off, 0);
        assert!(
            with < without,
            "seed {seed}: {with} bytes with baselines, {without} without"
        );
    }
}

#[test]
fn declared_fields_converge_bit_exact_under_jitter_and_loss_in_fewer_bytes() {
    for seed in 0..6u64 {
        let faults = Faults {
            latency: Duration::from_millis(10 + seed * 8),
            jitter: Duration::from_millis(5 + seed * 6),
            loss: 0.05 * seed as f64,
            duplicate: 0.05,
            bandwidth: None,
        };
        // Convergence is state-hash equality: what each client rebuilds from lanes is
        // bit-for-bit what the host holds.
        let (raw, ..) = run(seed, Coding::Baselines, faults);
        let (lanes, off, _) = run(seed, Coding::Lanes, faults);
        let (on_baselines, on, missing) = run(seed, Coding::LanesOnBaselines, faults);
        assert_eq!(off, 0);
        assert!(on > 1000, "seed {seed}: {on} values on baselines");
        assert!(
            missing * 100 <= on,
            "seed {seed}: {missing} lacked a baseline"
        );
        assert!(
            on_baselines < lanes && lanes < raw,
            "seed {seed}: lanes on baselines {on_baselines} B, lanes {lanes} B, raw on \
             baselines {raw} B"
        );
    }
}
