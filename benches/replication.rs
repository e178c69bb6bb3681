//! Criterion benchmarks of issue 2: the replication core beside the seed's JSON
//! full-rescan design (`theta_net::baseline`), on the same scene, in the same run.
//!
//! Scene: every entity holds a 16-byte and a 64-byte fixed component of pseudo-random
//! bytes. Throughput is the component value bytes an operation carries (the whole world
//! for snapshots, the changed values for deltas and applies).
//!
//! - `snapshot/{ours,seed_json}/N`: build and encode a snapshot of N entities in 16 KiB
//!   chunks.
//! - `delta_10k/{ours,seed_json,memcpy}/P%`: diff and encode the frame after P % of
//!   10 000 entities changed (ours straight from the columns with a reused encoder,
//!   `DeltaTracker::diff_encoded`); changing them is not timed (`iter_custom`). `memcpy`
//!   is the physical floor: gathering the changed values' bytes from the world into one
//!   buffer; `theta bench` prints ours ÷ memcpy (issue 18's target is <= 10x at 1 %).
//! - `apply_10k/{ours,seed_json}/P%`: decode and apply such a frame to a replica holding
//!   the scene. A frame no newer than what our replica holds is skipped by design
//!   (latest-wins by tick), so every timed apply gets a frame with a new tick, re-stamped
//!   and encoded outside the timed part, alternating two contents so every value changes.
//!
//! Run: `cargo bench --bench replication` (about 1.5 minutes on 2 cores), `-- --quick` for
//! a shorter run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};

#[path = "../src/bin/theta/bench_scene.rs"]
mod bench_scene;

use bench_scene::{payload, Scene};
use theta_net::baseline::{snapshot_json, BaselineReplica, BaselineTracker};
use theta_net::wire::Encoder;
use theta_net::{Applied, Delta, DeltaTracker, Replica, DEFAULT_MAX_CHUNK_BYTES};

const SNAPSHOT_SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const ENTITIES: usize = 10_000;
const PERCENTS: [u32; 4] = [1, 10, 50, 100];
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    // The seed's operations take milliseconds: flat sampling keeps them within budget.
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sampling_mode(SamplingMode::Flat);
}

fn snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    configure(&mut group);
    for n in SNAPSHOT_SIZES {
        let scene = Scene::new(n);
        let world = &scene.world;
        group.throughput(Throughput::Bytes(payload(n) as u64));
        group.bench_with_input(BenchmarkId::new("ours", n), world, |b, world| {
            b.iter(|| world.snapshot(DEFAULT_MAX_CHUNK_BYTES))
        });
        group.bench_with_input(BenchmarkId::new("seed_json", n), world, |b, world| {
            b.iter(|| snapshot_json(world, DEFAULT_MAX_CHUNK_BYTES))
        });
    }
    group.finish();
}

fn delta(c: &mut Criterion) {
    let mut group = c.benchmark_group("delta_10k");
    configure(&mut group);
    let mut scene = Scene::new(ENTITIES);
    for p in PERCENTS {
        let chosen = scene.pick(p);
        group.throughput(Throughput::Bytes(payload(chosen.len()) as u64));
        let label = format!("{p}%");

        let mut tracker = DeltaTracker::new();
        let mut encoder = Encoder::new();
        tracker.diff(&scene.world).unwrap();
        group.bench_function(BenchmarkId::new("ours", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    scene.write(&chosen);
                    let started = Instant::now();
                    let frame = tracker.diff_encoded(&scene.world, &mut encoder).unwrap();
                    total += started.elapsed();
                    black_box(frame);
                }
                total
            })
        });

        {
            let world = &scene.world;
            let values: Vec<&[u8]> = [scene.small, scene.large]
                .iter()
                .flat_map(|&c| chosen.iter().map(move |&e| world.get(e, c).unwrap()))
                .collect();
            let mut out: Vec<u8> = Vec::with_capacity(payload(chosen.len()));
            group.bench_function(BenchmarkId::new("memcpy", &label), |b| {
                b.iter(|| {
                    out.clear();
                    for v in &values {
                        out.extend_from_slice(v);
                    }
                    black_box(&mut out);
                })
            });
        }

        let mut baseline = BaselineTracker::new();
        baseline.diff(&scene.world);
        group.bench_function(BenchmarkId::new("seed_json", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    scene.write(&chosen);
                    let started = Instant::now();
                    let bytes = baseline.diff(&scene.world);
                    total += started.elapsed();
                    black_box(bytes);
                }
                total
            })
        });
    }
    group.finish();
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_10k");
    configure(&mut group);
    let mut scene = Scene::new(ENTITIES);
    for p in PERCENTS {
        let chosen = scene.pick(p);
        group.throughput(Throughput::Bytes(payload(chosen.len()) as u64));
        let label = format!("{p}%");

        let mut tracker = DeltaTracker::new();
        let mut replica = Replica::new();
        let full = tracker.diff(&scene.world).unwrap().encode();
        replica.apply_delta(&full).unwrap();
        let mut deltas: [Delta; 2] = [0, 1].map(|_| {
            scene.write(&chosen);
            tracker.diff(&scene.world).unwrap()
        });
        let mut encoder = Encoder::new();
        let mut tick = deltas[1].tick;
        group.bench_function(BenchmarkId::new("ours", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let delta = &mut deltas[(tick % 2) as usize];
                    delta.base_tick = tick;
                    tick += 1;
                    delta.tick = tick;
                    let frame = delta.encode_with(&mut encoder);
                    let started = Instant::now();
                    let applied = replica.apply_delta(&frame);
                    total += started.elapsed();
                    assert_eq!(applied, Ok(Applied::DeltaFrame));
                    replica.poll_events(usize::MAX);
                }
                total
            })
        });

        let mut baseline = BaselineTracker::new();
        let mut json_replica = BaselineReplica::new();
        json_replica.apply(&baseline.diff(&scene.world)).unwrap();
        let frames = [0, 1].map(|_| {
            scene.write(&chosen);
            baseline.diff(&scene.world)
        });
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("seed_json", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let frame = &frames[i % 2];
                    i += 1;
                    let started = Instant::now();
                    let applied = json_replica.apply(frame);
                    total += started.elapsed();
                    applied.unwrap();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, snapshot, delta, apply);
criterion_main!(benches);
