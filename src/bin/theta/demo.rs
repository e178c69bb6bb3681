//! `theta demo --in-process`: a generated scene on a host world replicated into a replica
//! in-process, through encoded snapshot chunks and delta frames, with what each step cost.
//! No network: this measures the replication core alone (`theta demo` without
//! `--in-process` runs the same scene over QUIC, see `net_demo.rs`).

use std::time::{Duration, Instant};

use theta_net::baseline::{snapshot_json, BaselineTracker};
use theta_net::{DeltaTracker, EventKind, Replica, World};

use crate::cli::DemoArgs;
use crate::scene::{Rng, Scene};

/// What the in-process demo takes from `theta demo --in-process ...`.
struct Options {
    entities: usize,
    ticks: u64,
    move_percent: f64,
    chunk_bytes: usize,
    seed: u64,
}

impl From<&DemoArgs> for Options {
    fn from(a: &DemoArgs) -> Self {
        Options {
            entities: a.entities,
            ticks: a.ticks(),
            move_percent: a.move_percent,
            chunk_bytes: a.chunk_bytes(),
            seed: a.seed,
        }
    }
}

#[derive(Default)]
struct Totals {
    frames: u64,
    bytes: u64,
    json_bytes: u64,
    min: usize,
    max: usize,
    encode: Duration,
    apply: Duration,
    events: [u64; 5],
}

/// Runs `theta demo --in-process`.
pub fn run(args: &DemoArgs) -> Result<(), String> {
    let o = Options::from(args);
    let mut world = World::default();
    let mut scene = Scene::new(&mut world, o.entities, o.seed)?;
    let mut replica = Replica::new();
    let mut delivery = Rng(o.seed ^ 0x5eed);
    println!(
        "theta demo: {} objects, {} ticks, {}% moving per tick, {}-byte chunks (in-process, no network)",
        o.entities, o.ticks, o.move_percent, o.chunk_bytes
    );

    // Late join: the snapshot, its chunks delivered in a shuffled order.
    let started = Instant::now();
    let snapshot = world.snapshot(o.chunk_bytes);
    let snapshot_time = started.elapsed();
    let mut order: Vec<usize> = (0..snapshot.chunks.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, delivery.below(i + 1));
    }
    let started = Instant::now();
    for &i in &order {
        replica
            .apply_snapshot_chunk(&snapshot.chunks[i].bytes)
            .map_err(|e| format!("snapshot chunk {i}: {e}"))?;
    }
    let apply_time = started.elapsed();
    let json_snapshot: usize = snapshot_json(&world, o.chunk_bytes)
        .iter()
        .map(Vec::len)
        .sum();
    let largest = snapshot
        .chunks
        .iter()
        .map(|c| c.bytes.len())
        .max()
        .unwrap_or(0);
    println!(
        "snapshot  tick {}: {} chunks, {} bytes (largest chunk {}), {} components; built in {:.2} ms, applied in {:.2} ms; seed JSON design: {} bytes ({:.2}x ours)",
        snapshot.tick,
        snapshot.chunks.len(),
        snapshot.total_bytes(),
        largest,
        snapshot.total_components(),
        ms(snapshot_time),
        ms(apply_time),
        json_snapshot,
        json_snapshot as f64 / snapshot.total_bytes().max(1) as f64
    );
    let converged_after_snapshot = replica.state_hash() == world.state_hash();

    let mut tracker = DeltaTracker::starting_at(snapshot.tick, snapshot.described.iter().copied());
    let mut baseline = BaselineTracker::new();
    baseline.diff(&world);
    let mut totals = Totals {
        min: usize::MAX,
        ..Totals::default()
    };
    count_events(&mut replica, &mut totals);

    println!(
        "{:>6} {:>8} {:>8} {:>10} {:>9} {:>9}",
        "tick", "changes", "bytes", "JSON bytes", "encode", "apply"
    );
    for t in 1..=o.ticks {
        // An engine frame: write, take the frame (which closes the tick), advance.
        scene.step(&mut world, o.move_percent)?;
        let started = Instant::now();
        let delta = tracker.diff(&world).map_err(|e| e.to_string())?;
        let bytes = delta.encode();
        let encode = started.elapsed();
        let started = Instant::now();
        replica
            .apply_delta(&bytes)
            .map_err(|e| format!("tick {t}: {e}"))?;
        let apply = started.elapsed();
        let json = baseline.diff(&world).len();
        world.advance();
        count_events(&mut replica, &mut totals);
        totals.frames += 1;
        totals.bytes += bytes.len() as u64;
        totals.json_bytes += json as u64;
        totals.min = totals.min.min(bytes.len());
        totals.max = totals.max.max(bytes.len());
        totals.encode += encode;
        totals.apply += apply;
        if t <= 3 || t % (o.ticks / 8).max(1) == 0 || t == o.ticks {
            println!(
                "{:>6} {:>8} {:>8} {:>10} {:>7.1}µs {:>7.1}µs",
                delta.tick,
                delta.change_count()
                    + delta.removes.len()
                    + delta.spawns.len()
                    + delta.despawns.len(),
                bytes.len(),
                json,
                us(encode),
                us(apply)
            );
        }
    }

    let host_hash = world.state_hash();
    let replica_hash = replica.state_hash();
    let frames = totals.frames.max(1);
    let stats = world.stats();
    println!();
    println!("summary");
    println!(
        "  host world         {} entities, {} components, tick {}",
        stats.entities,
        stats.components,
        world.tick()
    );
    println!(
        "  delta frames       {} frames, {} bytes total, {:.0} bytes/frame mean (min {}, max {})",
        totals.frames,
        totals.bytes,
        totals.bytes as f64 / frames as f64,
        if totals.frames == 0 { 0 } else { totals.min },
        totals.max
    );
    println!(
        "  seed JSON design   {} bytes total, {:.0} bytes/frame: ours is {:.1}% of it ({:.1}x smaller)",
        totals.json_bytes,
        totals.json_bytes as f64 / frames as f64,
        100.0 * totals.bytes as f64 / totals.json_bytes.max(1) as f64,
        totals.json_bytes as f64 / totals.bytes.max(1) as f64
    );
    println!(
        "  time per frame     diff+encode {:.1} µs, apply {:.1} µs",
        us(totals.encode) / frames as f64,
        us(totals.apply) / frames as f64
    );
    let [spawn, insert, update, remove, despawn] = totals.events;
    println!("  replica events     {spawn} spawn, {insert} insert, {update} update, {remove} remove, {despawn} despawn");
    println!("  snapshot converged {}", yes_no(converged_after_snapshot));
    println!(
        "  converged          {} (host state hash {host_hash:016x}, replica {replica_hash:016x})",
        yes_no(host_hash == replica_hash)
    );
    if host_hash != replica_hash || !converged_after_snapshot {
        return Err("the replica did not converge".into());
    }
    Ok(())
}

fn count_events(replica: &mut Replica, totals: &mut Totals) {
    let events = replica.poll_events(usize::MAX);
    for event in events.iter() {
        let slot = match event.kind {
            EventKind::Spawn => 0,
            EventKind::Insert => 1,
            EventKind::Update => 2,
            EventKind::Remove => 3,
            EventKind::Despawn => 4,
        };
        totals.events[slot] += 1;
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
