//! The benchmark scene shared by `theta bench` and `benches/replication.rs` (which
//! includes this file with `#[path]`): every entity holds a 16-byte and a 64-byte fixed
//! component of deterministic pseudo-random bytes.

use theta_net::{ComponentId, EntityId, Layout, World, WorldConfig};

/// Ticks of change history the scene's world keeps: deltas here are taken in order, so a
/// short history is enough, and it keeps the journal of a 100 %-change run small whatever
/// the library's default bounds are.
pub const HISTORY_TICKS: u64 = 32;

/// xorshift64*: deterministic bytes without a dependency.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every entity holds a 16-byte and a 64-byte fixed component of pseudo-random bytes.
pub struct Scene {
    pub world: World,
    pub small: ComponentId,
    pub large: ComponentId,
    pub entities: Vec<EntityId>,
    pub rng: XorShift,
    pub small_values: Vec<u8>,
    pub large_values: Vec<u8>,
}

/// Size of the small component.
pub const SMALL: usize = 16;
/// Size of the large component.
pub const LARGE: usize = 64;

impl Scene {
    pub fn new(entities: usize) -> Scene {
        let mut world = World::new(WorldConfig {
            history_ticks: HISTORY_TICKS,
            ..WorldConfig::default()
        });
        let small = world
            .register("bench.Pose16", Layout::Fixed(SMALL as u32))
            .expect("valid type");
        let large = world
            .register("bench.Body64", Layout::Fixed(LARGE as u32))
            .expect("valid type");
        let ids = (0..entities)
            .map(|_| world.spawn().expect("ids left"))
            .collect();
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
    pub fn pick(&self, percent: u32) -> Vec<EntityId> {
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
    pub fn write(&mut self, entities: &[EntityId]) {
        self.small_values.resize(entities.len() * SMALL, 0);
        self.large_values.resize(entities.len() * LARGE, 0);
        self.rng.fill(&mut self.small_values);
        self.rng.fill(&mut self.large_values);
        self.world
            .set_batch(self.small, entities, &self.small_values, SMALL)
            .expect("live entities, fixed layout");
        self.world
            .set_batch(self.large, entities, &self.large_values, LARGE)
            .expect("live entities, fixed layout");
    }
}

/// Component value bytes held by `entities` entities of the scene.
pub fn payload(entities: usize) -> usize {
    entities * (SMALL + LARGE)
}
