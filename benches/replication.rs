//! Criterion benchmarks of issue 2: the replication core beside the seed's JSON
//! full-rescan design (`theta_net::baseline`), on the same scene, in the same run.
//!
//! Scene: every entity holds a 16-byte and a 64-byte fixed component of pseudo-random
//! bytes. Throughput is the component value bytes an operation carries (the whole world
//! for snapshots, the changed values for deltas and applies).
//!
//! - `snapshot/{ours,seed_json}/N`: build and encode a snapshot of N entities in 16 KiB
//!   chunks.
//! - `delta_10k/{ours,seed_json}/P%`: diff and encode the frame after P % of 10 000
//!   entities changed; changing them is not timed (`iter_custom`).
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

use theta_net::baseline::{snapshot_json, BaselineReplica, BaselineTracker};
use theta_net::wire::Encoder;
use theta_net::{
    Applied, ComponentId, Delta, DeltaTracker, EntityId, Layout, Replica, World, WorldConfig,
    DEFAULT_MAX_CHUNK_BYTES,
};

const SNAPSHOT_SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const ENTITIES: usize = 10_000;
const PERCENTS: [u32; 4] = [1, 10, 50, 100];
const SMALL: usize = 16;
const LARGE: usize = 64;
/// Ticks of change history kept: deltas here are taken in order, so a short history is
/// enough, and it keeps the journal of a 100 %-change run small whatever the library's
/// default bounds are.
const HISTORY_TICKS: u64 = 32;

/// xorshift64*: deterministic bytes without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Scene {
    world: World,
    small: ComponentId,
    large: ComponentId,
    entities: Vec<EntityId>,
    rng: XorShift,
    small_values: Vec<u8>,
    large_values: Vec<u8>,
}

impl Scene {
    fn new(entities: usize) -> Scene {
        let mut world = World::new(WorldConfig {
            history_ticks: HISTORY_TICKS,
            ..WorldConfig::default()
        });
        let small = world
            .register("bench.Pose16", Layout::Fixed(SMALL as u32))
            .unwrap();
        let large = world
            .register("bench.Body64", Layout::Fixed(LARGE as u32))
            .unwrap();
        let ids = (0..entities).map(|_| world.spawn().unwrap()).collect();
        let mut scene = Scene {
            world,
            small,
            large,
            entities: ids,
            rng: XorShift(0x9e37_79b9_7f4a_7c15 ^ entities as u64),
            small_values: Vec::new(),
            large_values: Vec::new(),
        };
        let all = scene.entities.clone();
        scene.write(&all);
        scene
    }

    /// `percent` % of the entities (at least one), the same ones every call.
    fn pick(&self, percent: u32) -> Vec<EntityId> {
        let count = (self.entities.len() * percent as usize)
            .div_ceil(100)
            .clamp(1, self.entities.len());
        let mut rng = XorShift(0x5eed_0000 + u64::from(percent));
        let mut all = self.entities.clone();
        for i in 0..count {
            let j = i + rng.below(all.len() - i);
            all.swap(i, j);
        }
        all.truncate(count);
        all.sort_unstable();
        all
    }

    /// New random bytes for both components of `entities`.
    fn write(&mut self, entities: &[EntityId]) {
        self.small_values.resize(entities.len() * SMALL, 0);
        self.large_values.resize(entities.len() * LARGE, 0);
        self.rng.fill(&mut self.small_values);
        self.rng.fill(&mut self.large_values);
        self.world
            .set_batch(self.small, entities, &self.small_values, SMALL)
            .unwrap();
        self.world
            .set_batch(self.large, entities, &self.large_values, LARGE)
            .unwrap();
    }
}

fn payload(entities: usize) -> u64 {
    (entities * (SMALL + LARGE)) as u64
}

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
        group.throughput(Throughput::Bytes(payload(n)));
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
        group.throughput(Throughput::Bytes(payload(chosen.len())));
        let label = format!("{p}%");

        let mut tracker = DeltaTracker::new();
        tracker.diff(&scene.world).unwrap();
        group.bench_function(BenchmarkId::new("ours", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    scene.write(&chosen);
                    let started = Instant::now();
                    let delta = tracker.diff(&scene.world).unwrap();
                    let bytes = delta.encode();
                    total += started.elapsed();
                    black_box(bytes);
                }
                total
            })
        });

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
        group.throughput(Throughput::Bytes(payload(chosen.len())));
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
