//! `theta demo`: a generated scene on a host world replicated into a replica in-process,
//! through encoded snapshot chunks and delta frames, with what each step cost.

use std::time::{Duration, Instant};

use theta_net::baseline::{snapshot_json, BaselineTracker};
use theta_net::{
    ComponentId, DeltaTracker, EntityId, EventKind, Layout, Replica, World, DEFAULT_MAX_CHUNK_BYTES,
};

const USAGE: &str = "\
usage: theta demo [--entities N] [--ticks T] [--move-percent P] [--chunk-bytes B] [--seed S]

  --entities N       objects in the scene at the start (default 1000)
  --ticks T          simulation ticks to replicate (default 120)
  --move-percent P   percent of objects that move each tick (default 10)
  --chunk-bytes B    snapshot chunk bound in bytes (default 16384)
  --seed S           scene and delivery-order seed (default 1)";

struct Options {
    entities: usize,
    ticks: u64,
    move_percent: f64,
    chunk_bytes: usize,
    seed: u64,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        entities: 1000,
        ticks: 120,
        move_percent: 10.0,
        chunk_bytes: DEFAULT_MAX_CHUNK_BYTES,
        seed: 1,
    };
    for (name, value) in crate::parse_options(
        args,
        &["entities", "ticks", "move-percent", "chunk-bytes", "seed"],
        USAGE,
    )? {
        match name {
            "entities" => o.entities = crate::parse_value(name, value)?,
            "ticks" => o.ticks = crate::parse_value(name, value)?,
            "move-percent" => o.move_percent = crate::parse_value(name, value)?,
            "chunk-bytes" => o.chunk_bytes = crate::parse_value(name, value)?,
            _ => o.seed = crate::parse_value(name, value)?,
        }
    }
    if !(0.0..=100.0).contains(&o.move_percent) {
        return Err(format!(
            "--move-percent {} is not within 0..=100",
            o.move_percent
        ));
    }
    Ok(o)
}

/// SplitMix64: a deterministic scene from a seed, no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The scene: objects with a transform (position + rotation, 28 bytes) and a color; some
/// carry a label of variable length.
struct Scene {
    world: World,
    transform: ComponentId,
    color: ComponentId,
    label: ComponentId,
    objects: Vec<EntityId>,
    rng: Rng,
}

impl Scene {
    fn new(entities: usize, seed: u64) -> Result<Self, String> {
        let mut world = World::default();
        let err = |e: theta_net::RegistryError| e.to_string();
        let transform = world
            .register("demo.Transform", Layout::Fixed(28))
            .map_err(err)?;
        let color = world
            .register("demo.Color", Layout::Fixed(4))
            .map_err(err)?;
        let label = world
            .register("demo.Label", Layout::Variable { max: 64 })
            .map_err(err)?;
        let mut scene = Scene {
            world,
            transform,
            color,
            label,
            objects: Vec::new(),
            rng: Rng(seed),
        };
        for _ in 0..entities {
            scene.spawn_object()?;
        }
        Ok(scene)
    }

    fn transform_bytes(&mut self) -> [u8; 28] {
        let mut out = [0u8; 28];
        let values = [
            self.rng.unit() * 20.0 - 10.0,
            self.rng.unit() * 3.0,
            self.rng.unit() * 20.0 - 10.0,
            0.0,
            self.rng.unit(),
            0.0,
            1.0,
        ];
        for (slot, v) in out.chunks_exact_mut(4).zip(values) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn spawn_object(&mut self) -> Result<(), String> {
        let e = self.world.spawn().map_err(|e| e.to_string())?;
        let transform = self.transform_bytes();
        let color = (self.rng.next() as u32).to_le_bytes();
        self.world
            .set(e, self.transform, &transform)
            .map_err(|e| e.to_string())?;
        self.world
            .set(e, self.color, &color)
            .map_err(|e| e.to_string())?;
        if self.rng.below(10) == 0 {
            let label = format!("object-{}", e.counter());
            self.world
                .set(e, self.label, label.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        self.objects.push(e);
        Ok(())
    }

    /// One tick of motion and churn.
    fn step(&mut self, move_percent: f64) -> Result<(), String> {
        let err = |e: theta_net::WorldError| e.to_string();
        let moving = ((self.objects.len() as f64) * move_percent / 100.0).round() as usize;
        let mut movers = Vec::with_capacity(moving);
        let mut values = Vec::with_capacity(moving * 28);
        for _ in 0..moving {
            let e = self.objects[self.rng.below(self.objects.len())];
            if movers.contains(&e) {
                continue;
            }
            movers.push(e);
            values.extend_from_slice(&self.transform_bytes());
        }
        self.world
            .set_batch(self.transform, &movers, &values, 28)
            .map_err(err)?;
        let recolor = (self.objects.len() / 100).max(1);
        for _ in 0..recolor {
            let e = self.objects[self.rng.below(self.objects.len())];
            let color = (self.rng.next() as u32).to_le_bytes();
            self.world.set(e, self.color, &color).map_err(err)?;
        }
        // Churn: about 0.5 % of objects leave and as many arrive; labels come and go.
        let churn = (self.objects.len() / 200).max(1);
        for _ in 0..churn {
            if self.objects.len() > 1 {
                let gone = self.objects.swap_remove(self.rng.below(self.objects.len()));
                self.world.despawn(gone).map_err(err)?;
            }
            self.spawn_object()?;
            let e = self.objects[self.rng.below(self.objects.len())];
            if self.world.get(e, self.label).is_some() {
                self.world.remove(e, self.label).map_err(err)?;
            } else {
                self.world.set(e, self.label, b"tagged").map_err(err)?;
            }
        }
        Ok(())
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

pub fn run(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let mut scene = Scene::new(o.entities, o.seed)?;
    let mut replica = Replica::new();
    let mut delivery = Rng(o.seed ^ 0x5eed);
    println!(
        "theta demo: {} objects, {} ticks, {}% moving per tick, {}-byte chunks (in-process, no network)",
        o.entities, o.ticks, o.move_percent, o.chunk_bytes
    );

    // Late join: the snapshot, its chunks delivered in a shuffled order.
    let started = Instant::now();
    let snapshot = scene.world.snapshot(o.chunk_bytes);
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
    let json_snapshot: usize = snapshot_json(&scene.world, o.chunk_bytes)
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
    let converged_after_snapshot = replica.state_hash() == scene.world.state_hash();

    let mut tracker = DeltaTracker::starting_at(snapshot.tick, snapshot.described.iter().copied());
    let mut baseline = BaselineTracker::new();
    baseline.diff(&scene.world);
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
        scene.step(o.move_percent)?;
        let started = Instant::now();
        let delta = tracker.diff(&scene.world).map_err(|e| e.to_string())?;
        let bytes = delta.encode();
        let encode = started.elapsed();
        let started = Instant::now();
        replica
            .apply_delta(&bytes)
            .map_err(|e| format!("tick {t}: {e}"))?;
        let apply = started.elapsed();
        let json = baseline.diff(&scene.world).len();
        scene.world.advance();
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

    let host_hash = scene.world.state_hash();
    let replica_hash = replica.state_hash();
    let frames = totals.frames.max(1);
    let stats = scene.world.stats();
    println!();
    println!("summary");
    println!(
        "  host world         {} entities, {} components, tick {}",
        stats.entities,
        stats.components,
        scene.world.tick()
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
