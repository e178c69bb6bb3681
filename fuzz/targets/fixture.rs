//! The deterministic state the targets start from and the seed generator encodes from: a
//! small host scene, a replica that already applied its snapshot and deltas, the
//! compression dictionary, and the host's join secret.
//!
//! Everything is built from fixed seeds, so the messages the generator wrote into the
//! corpus keep meaning the same thing to the targets (a delta frame continues the primed
//! replica's ticks, a compression stream continues the primed start frame).

use std::sync::OnceLock;

use theta_net::fields::Field;
use theta_net::wire::codec::{Dictionary, DictionarySet, StreamEncoder};
use theta_net::{
    ComponentId, DeltaTracker, EntityId, Layout, PeerId, Registry, Replica, World, WorldConfig,
};

/// A transform: position and rotation as 7 floats.
pub const TRANSFORM: (&str, Layout) = ("fuzz.Transform", Layout::Fixed(28));
/// A packed RGBA color.
pub const COLOR: (&str, Layout) = ("fuzz.Color", Layout::Fixed(4));
/// A label of up to 64 bytes.
pub const LABEL: (&str, Layout) = ("fuzz.Label", Layout::Variable { max: 64 });
/// A tag: a component without bytes.
pub const TAG: (&str, Layout) = ("fuzz.Tag", Layout::Fixed(0));
/// A pose with declared fields (position and rotation), whose values travel as lanes.
pub const POSE: (&str, Layout) = ("fuzz.Pose", Layout::Fixed(28));
/// [`POSE`]'s fields: 1 mm, 0.1°.
pub const POSE_FIELDS: [Field; 2] = [
    Field::Position {
        offset: 0,
        precision_mm: 1.0,
    },
    Field::Rotation {
        offset: 12,
        precision_deg: 0.1,
    },
];

/// The client the replica belongs to when a target makes it an owner.
pub const CLIENT_PEER: PeerId = 2;
/// Chunk bound of the scene's snapshots: small, so a snapshot has several chunks.
pub const CHUNK_BYTES: usize = 1024;
/// The id of the fixture dictionary.
pub const DICTIONARY_ID: u32 = 1;
/// The zstd level of the fixture's compression streams and codecs.
pub const LEVEL: i32 = 3;
/// The host's join secret.
pub const SECRET: [u8; 32] = [0x5e; 32];
/// The host's clock when it checks a join token (Unix seconds).
pub const NOW_UNIX: u64 = 1_800_000_000;
/// A peer the host holds a resume token for, and the token.
pub const RESUME_PEER: u16 = 3;
/// See [`RESUME_PEER`].
pub const RESUME: [u8; 16] = *b"fuzz-resume-0123";

/// Replica option (header bit): the replica knows the engine's component types.
pub const KNOWS_REGISTRY: u8 = 1;
/// Replica option (header bit): the replica applied the scene's snapshot and deltas.
pub const PRIMED: u8 = 2;
/// Replica option (header bit): the replica is [`CLIENT_PEER`]'s, owning its entities.
pub const OWNER: u8 = 4;

/// SplitMix64: the scene's only randomness.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A small host scene whose every step changes values, spawns, despawns and removes.
pub struct Scene {
    /// The host's world (peer 0).
    pub world: World,
    /// Transform, color, label, tag and pose ids, in that order (no value of a pose is
    /// written: the state datagram seeds bring them, as lanes).
    pub ids: [ComponentId; 5],
    live: Vec<EntityId>,
    rng: Rng,
}

impl Default for Scene {
    fn default() -> Self {
        Scene::new()
    }
}

impl Scene {
    /// The scene at its start: 16 objects.
    pub fn new() -> Scene {
        let mut world = World::new(WorldConfig::default());
        let ids = [TRANSFORM, COLOR, LABEL, TAG, POSE].map(|(name, layout)| {
            world
                .register(name, layout)
                .expect("fixture types register")
        });
        world
            .declare_fields(ids[4], &POSE_FIELDS)
            .expect("fixture fields fit");
        let mut scene = Scene {
            world,
            ids,
            live: Vec::new(),
            rng: Rng(0x7e7a_f022),
        };
        for i in 0..16 {
            scene.spawn(i);
        }
        scene
    }

    fn spawn(&mut self, i: usize) {
        let e = self.world.spawn().expect("host ids last");
        let transform = self.rng.bytes(28);
        let color = self.rng.bytes(4);
        self.set(e, 0, &transform);
        self.set(e, 1, &color);
        if i.is_multiple_of(3) {
            let label = format!("object {i}");
            self.set(e, 2, label.as_bytes());
        }
        if i.is_multiple_of(4) {
            self.set(e, 3, &[]);
        }
        self.live.push(e);
    }

    fn set(&mut self, entity: EntityId, component: usize, bytes: &[u8]) {
        self.world
            .set(entity, self.ids[component], bytes)
            .expect("fixture values fit");
    }

    /// One tick of changes: four objects move, one recolors, one relabels (or loses its
    /// label), a tag toggles, one object arrives and every other step one leaves.
    pub fn step(&mut self) {
        let n = self.live.len();
        for _ in 0..4 {
            let e = self.live[self.rng.below(n)];
            let transform = self.rng.bytes(28);
            self.set(e, 0, &transform);
        }
        let e = self.live[self.rng.below(n)];
        let color = self.rng.bytes(4);
        self.set(e, 1, &color);
        let e = self.live[self.rng.below(n)];
        if self.rng.below(3) == 0 {
            self.world.remove(e, self.ids[2]).expect("alive");
        } else {
            let len = self.rng.below(65);
            let label: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            self.set(e, 2, &label);
        }
        let e = self.live[self.rng.below(n)];
        if self.world.get(e, self.ids[3]).is_some() {
            self.world.remove(e, self.ids[3]).expect("alive");
        } else {
            self.set(e, 3, &[]);
        }
        let count = self.world.stats().entities;
        self.spawn(count);
        if self.rng.below(2) == 0 && self.live.len() > 4 {
            let gone = self.live.remove(0);
            self.world.despawn(gone).expect("alive");
        }
    }

    /// The live entities, oldest first.
    pub fn live(&self) -> &[EntityId] {
        &self.live
    }
}

/// What a primed replica applied: the scene's snapshot and the deltas after it.
pub struct Prime {
    /// The host's registry.
    pub registry: Registry,
    /// The snapshot's chunks (several: see [`CHUNK_BYTES`]).
    pub chunks: Vec<Vec<u8>>,
    /// The snapshot's tick.
    pub snapshot_tick: u64,
    /// Delta frames after it, in order.
    pub deltas: Vec<Vec<u8>>,
}

/// The scene after two steps, its snapshot, and two more steps sent as delta frames;
/// returns the scene and its tracker where the prime ends, for a generator to go on.
pub fn primed_scene() -> (Scene, DeltaTracker, Prime) {
    let mut scene = Scene::new();
    scene.step();
    scene.step();
    let snapshot = scene.world.snapshot(CHUNK_BYTES);
    let mut tracker = DeltaTracker::starting_at(snapshot.tick, snapshot.described.clone());
    let mut deltas = Vec::new();
    for _ in 0..2 {
        scene.step();
        deltas.push(tracker.diff(&scene.world).expect("in history").encode());
    }
    let prime = Prime {
        registry: scene.world.registry().clone(),
        chunks: snapshot.chunks.into_iter().map(|c| c.bytes).collect(),
        snapshot_tick: snapshot.tick,
        deltas,
    };
    (scene, tracker, prime)
}

/// The prime, built once.
pub fn prime() -> &'static Prime {
    static PRIME: OnceLock<Prime> = OnceLock::new();
    PRIME.get_or_init(|| primed_scene().2)
}

/// A replica in the state the header's option bits ([`KNOWS_REGISTRY`], [`PRIMED`],
/// [`OWNER`]) describe, its events drained.
pub fn replica(options: u8) -> Replica {
    let prime = prime();
    let mut replica = if options & KNOWS_REGISTRY != 0 {
        Replica::with_registry(&prime.registry)
    } else {
        Replica::new()
    };
    if options & OWNER != 0 {
        replica.set_owner(CLIENT_PEER, 1);
    }
    if options & PRIMED != 0 {
        for chunk in &prime.chunks {
            replica
                .apply_snapshot_chunk(chunk)
                .expect("the prime's chunks apply");
        }
        for delta in &prime.deltas {
            replica
                .apply_delta(delta)
                .expect("the prime's deltas apply");
        }
        replica.poll_events(usize::MAX);
    }
    replica
}

/// The fixture dictionary (trained by `gen-corpus --train` on the scene's messages).
pub fn dictionary() -> Dictionary {
    Dictionary::new(DICTIONARY_ID, include_bytes!("fixture.dict").to_vec())
}

/// A dictionary set holding the fixture dictionary, built once.
pub fn dictionary_set() -> &'static DictionarySet {
    static SET: OnceLock<DictionarySet> = OnceLock::new();
    SET.get_or_init(|| {
        let mut set = DictionarySet::new();
        set.insert(dictionary())
            .expect("the fixture dictionary loads");
        set
    })
}

/// The message a primed compression stream starts with: the scene's next delta frame.
pub fn stream_prime_message() -> &'static [u8] {
    static MESSAGE: OnceLock<Vec<u8>> = OnceLock::new();
    MESSAGE.get_or_init(|| {
        let (mut scene, mut tracker, _) = primed_scene();
        scene.step();
        tracker.diff(&scene.world).expect("in history").encode()
    })
}

/// A stream encoder at [`LEVEL`] that has sent the start frame of
/// [`stream_prime_message`] (with the fixture dictionary or without), and that frame.
pub fn stream_primed_encoder(with_dictionary: bool) -> (StreamEncoder, Vec<u8>) {
    let mut encoder = StreamEncoder::new(LEVEL).expect("zstd context");
    let dictionary = with_dictionary.then(dictionary);
    let mut start = Vec::new();
    encoder
        .compress(stream_prime_message(), dictionary.as_ref(), &mut start)
        .expect("the prime compresses");
    (encoder, start)
}

/// The start frame a primed compression stream was started with, built once per choice.
pub fn stream_prime_frame(with_dictionary: bool) -> &'static [u8] {
    static FRAMES: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    let frames = FRAMES.get_or_init(|| [false, true].map(|with| stream_primed_encoder(with).1));
    &frames[usize::from(with_dictionary)]
}
