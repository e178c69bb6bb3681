//! `theta bench`: the figures of issue 2, each beside the seed's JSON full-rescan design
//! (`theta_net::baseline`) measured in the same run on the same scene.
//!
//! Timing is deliberately simple: an operation runs over and over for a batch of at least
//! `--millis` milliseconds (wall time, setup included), its measured part timed on its own;
//! the per-operation time of each of `--batches` batches is kept and the median reported.
//! Work an operation needs but that is not what is measured (mutating the world before a
//! diff, re-stamping a frame before an apply) runs outside the timed part.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::bench_scene::{payload, Scene, LARGE, SMALL};
use crate::cli::BenchArgs;
use theta_net::baseline::{snapshot_json, BaselineReplica, BaselineTracker};
use theta_net::wire::Encoder;
use theta_net::{Delta, DeltaTracker, EntityId, Replica, DEFAULT_MAX_CHUNK_BYTES};

/// Entities of the snapshot cases.
const SNAPSHOT_SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
/// Entities of the delta and apply cases.
const ENTITIES: usize = 10_000;
/// Percent of entities changed per frame in the delta and apply cases.
const PERCENTS: [u32; 4] = [1, 10, 50, 100];

/// The targets of issue 2.
const TARGET_DELTA_SPEEDUP: f64 = 50.0;
/// The target of issue 18: diff + encode within this many times a gathered memcpy of the
/// changed values' bytes.
const TARGET_DELTA_MEMCPY: f64 = 10.0;
const TARGET_SNAPSHOT_MBPS: f64 = 500.0;
const TARGET_BYTES_RATIO: f64 = 0.5;

struct Options {
    batch: Duration,
    batches: usize,
}

impl From<&BenchArgs> for Options {
    fn from(a: &BenchArgs) -> Self {
        Options {
            batch: Duration::from_millis(a.millis),
            batches: a.batches,
        }
    }
}

/// Runs `op` (which returns the duration of its measured part) in batches; returns the
/// median per-operation time.
fn measure(o: &Options, mut op: impl FnMut() -> Duration) -> Duration {
    op(); // warm-up
    let mut per_op: Vec<Duration> = (0..o.batches)
        .map(|_| {
            let started = Instant::now();
            let (mut timed, mut count) = (Duration::ZERO, 0u32);
            while count == 0 || started.elapsed() < o.batch {
                timed += op();
                count += 1;
            }
            timed / count
        })
        .collect();
    per_op.sort_unstable();
    per_op[per_op.len() / 2]
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Payload throughput in MB/s (10^6 bytes).
fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn ratio(ours: Duration, baseline: Duration) -> f64 {
    baseline.as_secs_f64() / ours.as_secs_f64()
}

struct SnapshotRow {
    entities: usize,
    ours: Duration,
    json: Duration,
    ours_bytes: usize,
    json_bytes: usize,
    payload: usize,
}

fn bench_snapshot(o: &Options, entities: usize) -> SnapshotRow {
    let scene = Scene::new(entities);
    let world = &scene.world;
    let ours_bytes = world.snapshot(DEFAULT_MAX_CHUNK_BYTES).total_bytes();
    let json_bytes = snapshot_json(world, DEFAULT_MAX_CHUNK_BYTES)
        .iter()
        .map(Vec::len)
        .sum();
    let ours = measure(o, || {
        let (snapshot, d) = timed(|| world.snapshot(DEFAULT_MAX_CHUNK_BYTES));
        black_box(snapshot);
        d
    });
    let json = measure(o, || {
        let (chunks, d) = timed(|| snapshot_json(world, DEFAULT_MAX_CHUNK_BYTES));
        black_box(chunks);
        d
    });
    SnapshotRow {
        entities,
        ours,
        json,
        ours_bytes,
        json_bytes,
        payload: payload(scene.entities.len()),
    }
}

struct DeltaRow {
    percent: u32,
    ours: Duration,
    json: Duration,
    memcpy: Duration,
    ours_bytes: f64,
    json_bytes: f64,
}

fn bench_delta(o: &Options, scene: &mut Scene, percent: u32) -> DeltaRow {
    let chosen = scene.pick(percent);

    // The frame is encoded straight from the world's columns with a reused encoder, as a
    // sender does every tick.
    let mut tracker = DeltaTracker::new();
    let mut encoder = Encoder::new();
    tracker.diff(&scene.world).expect("first frame");
    let (mut bytes, mut frames) = (0usize, 0usize);
    let ours = measure(o, || {
        scene.write(&chosen);
        let (frame, d) = timed(|| {
            tracker
                .diff_encoded(&scene.world, &mut encoder)
                .expect("in-order frames")
        });
        bytes += frame.bytes.len();
        frames += 1;
        d
    });
    let ours_bytes = bytes as f64 / frames as f64;
    let memcpy = gathered_memcpy(o, scene, &chosen);

    let mut baseline = BaselineTracker::new();
    baseline.diff(&scene.world);
    let (mut bytes, mut frames) = (0usize, 0usize);
    let json = measure(o, || {
        scene.write(&chosen);
        let (frame, d) = timed(|| baseline.diff(&scene.world));
        bytes += frame.len();
        frames += 1;
        d
    });
    DeltaRow {
        percent,
        ours,
        json,
        memcpy,
        ours_bytes,
        json_bytes: bytes as f64 / frames as f64,
    }
}

/// The physical floor of a delta: copying the changed values' bytes from where the world
/// stores them into one buffer (the same entities, in frame order), nothing else.
fn gathered_memcpy(o: &Options, scene: &Scene, chosen: &[EntityId]) -> Duration {
    let world = &scene.world;
    let values: Vec<&[u8]> = [scene.small, scene.large]
        .iter()
        .flat_map(|&c| chosen.iter().map(move |&e| world.get(e, c).expect("held")))
        .collect();
    let mut out: Vec<u8> = Vec::with_capacity(payload(chosen.len()));
    measure(o, || {
        let ((), d) = timed(|| {
            out.clear();
            for v in &values {
                out.extend_from_slice(v);
            }
            black_box(&mut out);
        });
        d
    })
}

struct ApplyRow {
    percent: u32,
    ours: Duration,
    json: Duration,
    ours_bytes: usize,
    json_bytes: usize,
}

/// Two frames changing the same `percent` % of entities to different bytes, so applying
/// them alternately changes every value each time.
fn two_deltas(scene: &mut Scene, tracker: &mut DeltaTracker, chosen: &[EntityId]) -> [Delta; 2] {
    [0, 1].map(|_| {
        scene.write(chosen);
        tracker.diff(&scene.world).expect("in-order frames")
    })
}

fn bench_apply(o: &Options, scene: &mut Scene, percent: u32) -> ApplyRow {
    let chosen = scene.pick(percent);

    // Ours: the replica holds the whole scene; each timed apply is a frame with a newer
    // tick (a frame no newer than what the replica holds is skipped by design), re-stamped
    // and encoded outside the timed part, alternating two contents.
    let mut tracker = DeltaTracker::new();
    let mut replica = Replica::new();
    let full = tracker.diff(&scene.world).expect("first frame").encode();
    replica.apply_delta(&full).expect("valid frame");
    let mut deltas = two_deltas(scene, &mut tracker, &chosen);
    let ours_bytes = deltas[0].encode().len();
    let mut encoder = Encoder::new();
    let mut tick = deltas[1].tick;
    let ours = measure(o, || {
        let delta = &mut deltas[(tick % 2) as usize];
        delta.base_tick = tick;
        tick += 1;
        delta.tick = tick;
        let frame = delta.encode_with(&mut encoder);
        let (applied, d) = timed(|| replica.apply_delta(&frame));
        assert_eq!(applied, Ok(theta_net::Applied::DeltaFrame));
        replica.poll_events(usize::MAX);
        d
    });

    // Baseline: its replica has no ticks, every apply parses and writes the whole frame.
    let mut baseline = BaselineTracker::new();
    let mut json_replica = BaselineReplica::new();
    json_replica
        .apply(&baseline.diff(&scene.world))
        .expect("valid frame");
    let frames = [0, 1].map(|_| {
        scene.write(&chosen);
        baseline.diff(&scene.world)
    });
    let json_bytes = frames[0].len();
    let mut i = 0;
    let json = measure(o, || {
        let frame = &frames[i % 2];
        i += 1;
        let (applied, d) = timed(|| json_replica.apply(frame));
        applied.expect("valid frame");
        d
    });
    ApplyRow {
        percent,
        ours,
        json,
        ours_bytes,
        json_bytes,
    }
}

/// Runs `theta bench`.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let o = Options::from(args);
    let started = Instant::now();
    println!(
        "theta bench: the replication core beside the seed's JSON full-rescan design, same run"
    );
    println!(
        "scene: every entity holds a {SMALL}-byte and a {LARGE}-byte fixed component of pseudo-random bytes;"
    );
    println!(
        "payload = component value bytes; per-op time = median of {} batches of >= {} ms; MB = 10^6 bytes",
        o.batches,
        o.batch.as_millis()
    );
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run `cargo run --release -- bench` for meaningful figures");
    }

    println!();
    println!("snapshot: build + encode, {DEFAULT_MAX_CHUNK_BYTES}-byte chunks (ours FlatBuffers, seed JSON)");
    println!(
        "{:>8} {:>10} {:>10} {:>8} {:>11} {:>11} {:>7} {:>9} {:>9}",
        "entities",
        "ours µs",
        "seed µs",
        "speedup",
        "ours bytes",
        "JSON bytes",
        "bytes",
        "ours MB/s",
        "seed MB/s"
    );
    let mut snapshots = Vec::new();
    for n in SNAPSHOT_SIZES {
        let r = bench_snapshot(&o, n);
        println!(
            "{:>8} {:>10.1} {:>10.1} {:>7.1}x {:>11} {:>11} {:>7.3} {:>9.0} {:>9.0}",
            r.entities,
            us(r.ours),
            us(r.json),
            ratio(r.ours, r.json),
            r.ours_bytes,
            r.json_bytes,
            r.ours_bytes as f64 / r.json_bytes as f64,
            mbps(r.payload, r.ours),
            mbps(r.payload, r.json),
        );
        snapshots.push(r);
    }

    let mut scene = Scene::new(ENTITIES);
    println!();
    println!(
        "delta: diff + encode at {ENTITIES} entities ({} instances), mutation not timed;",
        scene.world.stats().components
    );
    println!(
        "memcpy = gathering the changed values' bytes from the world into one buffer (the physical floor)"
    );
    println!(
        "{:>8} {:>10} {:>10} {:>8} {:>11} {:>11} {:>7} {:>10} {:>12}",
        "changed",
        "ours µs",
        "seed µs",
        "speedup",
        "ours bytes",
        "JSON bytes",
        "bytes",
        "memcpy µs",
        "ours/memcpy"
    );
    let mut deltas = Vec::new();
    for p in PERCENTS {
        let r = bench_delta(&o, &mut scene, p);
        println!(
            "{:>7}% {:>10.1} {:>10.1} {:>7.1}x {:>11.0} {:>11.0} {:>7.3} {:>10.2} {:>11.1}x",
            r.percent,
            us(r.ours),
            us(r.json),
            ratio(r.ours, r.json),
            r.ours_bytes,
            r.json_bytes,
            r.ours_bytes / r.json_bytes,
            us(r.memcpy),
            ratio(r.memcpy, r.ours),
        );
        deltas.push(r);
    }

    println!();
    println!("apply: decode + apply one delta frame to a replica holding {ENTITIES} entities");
    println!(
        "{:>8} {:>10} {:>10} {:>8} {:>11} {:>11}",
        "changed", "ours µs", "seed µs", "speedup", "ours bytes", "JSON bytes"
    );
    for p in PERCENTS {
        let r = bench_apply(&o, &mut scene, p);
        println!(
            "{:>7}% {:>10.1} {:>10.1} {:>7.1}x {:>11} {:>11}",
            r.percent,
            us(r.ours),
            us(r.json),
            ratio(r.ours, r.json),
            r.ours_bytes,
            r.json_bytes,
        );
    }

    println!();
    let fresh = Scene::new(ENTITIES);
    let mut tracker = DeltaTracker::new();
    tracker.diff(&fresh.world).expect("first frame");
    let stats = fresh.world.stats();
    let mut baseline = BaselineTracker::new();
    baseline.diff(&fresh.world);
    let value_bytes = payload(fresh.entities.len()) as f64 / stats.components as f64;
    println!(
        "memory per tracked component instance ({} instances, {value_bytes:.0} value bytes each on average)",
        stats.components
    );
    let per = |bytes: usize| bytes as f64 / stats.components as f64;
    let ours_per = per(stats.heap_bytes);
    let seed_per = baseline.heap_bytes() as f64 / baseline.tracked() as f64;
    println!(
        "  ours  world: columns (values, ticks, row index)          {:>8.1} B",
        per(stats.column_bytes)
    );
    println!(
        "        change journal ({:>6} entries)                    {:>8.1} B",
        stats.journal_entries,
        per(stats.journal_bytes)
    );
    println!(
        "        entity index                                      {:>8.1} B",
        per(stats.heap_bytes - stats.column_bytes - stats.journal_bytes)
    );
    println!("        total                                             {ours_per:>8.1} B");
    println!("  seed  tracker's previous-frame map                      {seed_per:>8.1} B");
    println!(
        "  ours / seed                                             {:>8.3}",
        ours_per / seed_per
    );
    println!(
        "  (both hold a copy of every value; capacities are counted, allocator overhead is not:"
    );
    println!(
        "   the seed's map also makes two small heap allocations per instance, name and value)"
    );

    println!();
    println!("targets (issues 2 and 18)");
    let mut failed = 0;
    let mut target = |name: String, measured: String, pass: bool| {
        if !pass {
            failed += 1;
        }
        let verdict = if pass { "PASS" } else { "FAIL" };
        println!("  {name:<58} {measured:>20}  {verdict}");
    };
    let one = &deltas[0];
    let speedup = ratio(one.ours, one.json);
    target(
        format!(
            "delta, {}% changed at {ENTITIES} entities: >= {TARGET_DELTA_SPEEDUP}x faster",
            one.percent
        ),
        format!("{speedup:.1}x"),
        speedup >= TARGET_DELTA_SPEEDUP,
    );
    let floor = ratio(one.memcpy, one.ours);
    target(
        format!(
            "delta, {}% changed: <= {TARGET_DELTA_MEMCPY}x gathered memcpy (issue 18)",
            one.percent
        ),
        format!("{floor:.1}x"),
        floor <= TARGET_DELTA_MEMCPY,
    );
    let big = snapshots.last().expect("snapshot cases");
    let rate = mbps(big.payload, big.ours);
    target(
        format!(
            "snapshot at {} entities: >= {TARGET_SNAPSHOT_MBPS} MB/s of payload",
            big.entities
        ),
        format!("{rate:.0} MB/s"),
        rate >= TARGET_SNAPSHOT_MBPS,
    );
    let worst = deltas
        .iter()
        .max_by(|a, b| (a.ours_bytes / a.json_bytes).total_cmp(&(b.ours_bytes / b.json_bytes)))
        .expect("delta cases");
    let worst_ratio = worst.ours_bytes / worst.json_bytes;
    target(
        format!("delta bytes <= {TARGET_BYTES_RATIO} x seed JSON bytes, every change rate"),
        format!("{worst_ratio:.3} (worst: {}%)", worst.percent),
        worst_ratio <= TARGET_BYTES_RATIO,
    );
    println!();
    match failed {
        0 => println!("all targets met ({:.1} s)", started.elapsed().as_secs_f64()),
        n => println!(
            "{n} target(s) FAILED ({:.1} s)",
            started.elapsed().as_secs_f64()
        ),
    }
    Ok(())
}
