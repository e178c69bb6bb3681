//! Property tests of the replication contract (DESIGN.md, "The replication contract"):
//! a host world driven by random operations, replicated through chunked snapshots and
//! delta frames delivered out of order and more than once, converges on every replica.
//!
//! Every world operation is also checked against a plain model of the host (values, live
//! entities, the error a refused write must return, and that a refused write changes
//! nothing), and every replica's event stream is replayed into a plain model that must end
//! in the replica's state.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use theta_net::wire::{self, Message};
use theta_net::{
    Applied, BatchOutcome, Change, ChangeKind, ComponentId, DeltaError, DeltaTracker, EntityId,
    EventKind, Layout, Replica, Snapshot, World, WorldConfig, WorldError, WorldStats,
};

/// Component types every host registers up front: fixed, variable, tag, small fixed, a
/// variable type whose values can exceed small chunk limits on their own, an odd fixed size
/// and a long name.
const TYPES: &[(&str, Layout)] = &[
    ("test.Pose", Layout::Fixed(12)),
    ("test.Name", Layout::Variable { max: 24 }),
    ("test.Selected", Layout::Fixed(0)),
    ("test.Health", Layout::Fixed(4)),
    ("test.Blob", Layout::Variable { max: 512 }),
    // Odd sizes and a long name, for padding in the encoded size bounds.
    ("test.Rgb", Layout::Fixed(3)),
    (
        "test.AVeryLongComponentNameThatKeepsGoingAndGoingForPaddingAndAlignmentChecks.\
         WithSomeMoreTextSoThatTheDescriptorAloneIsLargerThanATinyChunkLimit.Label",
        Layout::Variable { max: 7 },
    ),
];
/// A type some hosts register only after the snapshot, so its descriptor travels in a frame.
const LATE: (&str, Layout) = ("test.Late", Layout::Fixed(2));

/// Peer whose ids the hosts never issue (hosts are peers 0..8).
const GHOST_PEER: u16 = 0xffff;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Randomness for delivery schedules (driven by a proptest-generated seed).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// How the frames of a run reach the replica.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// Each frame displaced by up to `w` positions.
    Window(usize),
    /// Any order.
    Shuffle,
}

/// A delivery schedule of `n` messages: every index at least once, plus duplicates.
fn schedule(n: usize, order: Order, dup_percent: u64, rng: &mut Rng) -> Vec<usize> {
    let mut out: Vec<usize> = (0..n).collect();
    match order {
        Order::Window(w) => {
            let mut keyed: Vec<(usize, usize)> =
                out.iter().map(|&i| (i + rng.below(w + 1), i)).collect();
            keyed.sort();
            out = keyed.into_iter().map(|(_, i)| i).collect();
        }
        Order::Shuffle => rng.shuffle(&mut out),
    }
    for i in 0..n {
        while rng.percent(dup_percent) {
            let at = rng.below(out.len() + 1);
            out.insert(at, i);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Host operations and the host model.

#[derive(Clone, Debug)]
enum Op {
    Spawn,
    /// Write one value; `len` selects a value length (some are invalid for the layout).
    Set {
        e: usize,
        c: usize,
        seed: u8,
        len: u8,
    },
    /// Batch write; `fault` 0 = stride too small, 1 = buffer too short, else valid.
    SetBatch {
        c: usize,
        es: Vec<usize>,
        extra_stride: usize,
        seed: u8,
        fault: u8,
    },
    Remove {
        e: usize,
        c: usize,
    },
    Despawn {
        e: usize,
    },
    /// Close the tick (after producing a frame, when frames are being produced).
    Advance,
    /// Produce a frame (or seal the tick) without advancing.
    Frame,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Spawn),
        8 => (0usize..64, 0usize..16, 0u8..4, 0u8..8)
            .prop_map(|(e, c, seed, len)| Op::Set { e, c, seed, len }),
        2 => (0usize..16, prop::collection::vec(0usize..64, 0..6), 0usize..4, 0u8..4, 0u8..12)
            .prop_map(|(c, es, extra_stride, seed, fault)| Op::SetBatch {
                c,
                es,
                extra_stride,
                seed,
                fault,
            }),
        2 => (0usize..64, 0usize..16).prop_map(|(e, c)| Op::Remove { e, c }),
        1 => (0usize..64).prop_map(|e| Op::Despawn { e }),
        3 => Just(Op::Advance),
        1 => Just(Op::Frame),
    ]
}

fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..max)
}

fn chunk_limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 1usize..300,
        2 => 300usize..2000,
        1 => Just(theta_net::DEFAULT_MAX_CHUNK_BYTES),
    ]
}

fn make_value(layout: Layout, seed: u8, len: u8) -> Vec<u8> {
    match layout {
        Layout::Fixed(size) => {
            let size = if len == 7 { size + 1 } else { size };
            (0..size)
                .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
                .collect()
        }
        Layout::Variable { max } => {
            let lens = [0, 1, 3, max / 2, max, max + 1, 2, 5];
            vec![seed; lens[len as usize % lens.len()] as usize]
        }
    }
}

/// Fingerprint of a world for "a refused operation changed nothing".
fn fingerprint(world: &World) -> (u64, WorldStats, u64) {
    (world.state_hash(), world.stats(), world.tick())
}

type Entries = BTreeMap<EntityId, Vec<u8>>;

fn entries(world: &World, id: ComponentId) -> Entries {
    match world.component_entries(id) {
        Ok(iter) => {
            let len = iter.len();
            let map: Entries = iter.map(|(e, v)| (e, v.to_vec())).collect();
            assert_eq!(map.len(), len, "an entity listed twice in one column");
            map
        }
        Err(WorldError::UnknownComponent(_)) => Entries::new(),
        Err(other) => panic!("component_entries: {other}"),
    }
}

fn live(world: &World) -> BTreeSet<EntityId> {
    let list: Vec<EntityId> = world.entities().collect();
    let set: BTreeSet<EntityId> = list.iter().copied().collect();
    assert_eq!(set.len(), list.len(), "an entity listed twice");
    set
}

/// Everything observable about a world's replicated state.
#[derive(Debug, PartialEq, Eq)]
struct State {
    live: BTreeSet<EntityId>,
    values: BTreeMap<String, Entries>,
    hash: u64,
}

/// The state of `world` over every component type a host may register.
fn state(world: &World) -> State {
    State {
        live: live(world),
        values: TYPES
            .iter()
            .chain([&LATE])
            .map(|(name, _)| (name.to_string(), entries(world, ComponentId::of_name(name))))
            .collect(),
        hash: world.state_hash(),
    }
}

fn assert_converged(host: &World, replica: &Replica, what: &str) {
    let want = state(host);
    let got = state(replica.world());
    assert_eq!(got.live, want.live, "{what}: live entities differ");
    for (name, values) in &want.values {
        assert_eq!(&got.values[name], values, "{what}: values of {name} differ");
    }
    assert_eq!(got.hash, want.hash, "{what}: state hashes differ");
}

struct Frame {
    bytes: Vec<u8>,
    tick: u64,
    /// Host state hash when the frame was taken.
    hash: u64,
}

/// A host world plus a plain model of what it must hold.
struct Host {
    world: World,
    types: Vec<(ComponentId, String, Layout)>,
    spawned: Vec<EntityId>,
    live: BTreeSet<EntityId>,
    values: BTreeMap<(ComponentId, EntityId), Vec<u8>>,
}

impl Host {
    fn new(peer: u16, with_late: bool, history_ticks: u64) -> Self {
        Self::with_config(
            WorldConfig {
                local_peer: peer,
                history_ticks,
                ..WorldConfig::default()
            },
            with_late,
        )
    }

    fn with_config(config: WorldConfig, with_late: bool) -> Self {
        let mut host = Host {
            world: World::new(config),
            types: Vec::new(),
            spawned: Vec::new(),
            live: BTreeSet::new(),
            values: BTreeMap::new(),
        };
        for &(name, layout) in TYPES {
            host.register(name, layout);
        }
        if with_late {
            host.register(LATE.0, LATE.1);
        }
        host
    }

    fn register(&mut self, name: &str, layout: Layout) {
        let id = self.world.register(name, layout).unwrap();
        assert_eq!(id, ComponentId::of_name(name));
        // Registering again with the same layout is idempotent.
        assert_eq!(self.world.register(name, layout), Ok(id));
        self.types.push((id, name.to_owned(), layout));
    }

    fn entity(&self, e: usize) -> EntityId {
        let n = self.spawned.len();
        if e % (n + 1) == n {
            EntityId::new(GHOST_PEER, 1 + (e % 3) as u64).unwrap()
        } else {
            self.spawned[e % (n + 1)]
        }
    }

    fn component(&self, c: usize) -> (ComponentId, String, Layout) {
        self.types[c % self.types.len()].clone()
    }

    fn batch_component(&self, c: usize) -> (ComponentId, String, Layout) {
        let fixed: Vec<_> = self
            .types
            .iter()
            .filter(|t| matches!(t.2, Layout::Fixed(_)))
            .collect();
        if c % 4 == 3 {
            self.component(c / 4)
        } else {
            fixed[c % fixed.len()].clone()
        }
    }

    /// Applies a world operation (not Advance/Frame) and checks it against the model.
    fn apply(&mut self, op: &Op) {
        let before = fingerprint(&self.world);
        let result: Result<(), WorldError> = match op {
            Op::Spawn => {
                let id = self.world.spawn().unwrap();
                assert!(id.is_valid());
                assert_eq!(id.creator(), self.world.config().local_peer);
                assert!(!self.spawned.contains(&id), "entity id {id} reused");
                assert_eq!(self.world.spawned_at(id), Some(self.world.tick()));
                self.spawned.push(id);
                self.live.insert(id);
                Ok(())
            }
            Op::Set { e, c, seed, len } => {
                let entity = self.entity(*e);
                let (id, name, layout) = self.component(*c);
                let value = make_value(layout, *seed, *len);
                let expected = if !layout.accepts(value.len()) {
                    Err(WorldError::WrongSize {
                        name,
                        layout,
                        len: value.len(),
                    })
                } else if !self.live.contains(&entity) {
                    Err(WorldError::DeadEntity(entity))
                } else {
                    Ok(match self.values.get(&(id, entity)) {
                        None => Change::Inserted,
                        Some(old) if *old == value => Change::Unchanged,
                        Some(_) => Change::Updated,
                    })
                };
                let changed_before = self.world.changed_at(entity, id);
                let got = self.world.set(entity, id, &value);
                assert_eq!(got, expected, "set({entity}, {id}, {value:?})");
                match got {
                    Ok(Change::Unchanged) => {
                        assert_eq!(
                            self.world.changed_at(entity, id),
                            changed_before,
                            "identical bytes moved the change tick"
                        );
                    }
                    Ok(_) => {
                        assert_eq!(self.world.changed_at(entity, id), Some(self.world.tick()));
                        self.values.insert((id, entity), value);
                    }
                    Err(_) => {}
                }
                got.map(|_| ())
            }
            Op::SetBatch {
                c,
                es,
                extra_stride,
                seed,
                fault,
            } => {
                let (id, name, layout) = self.batch_component(*c);
                let entities: Vec<EntityId> = es.iter().map(|&e| self.entity(e)).collect();
                let size = layout.max_bytes() as usize;
                let stride = match *fault {
                    0 if size > 0 => size - 1,
                    _ => size + extra_stride,
                };
                let count = entities.len();
                let needed = if count == 0 {
                    0
                } else {
                    (count - 1) * stride + size
                };
                let mut values = vec![0xee; needed];
                let mut batch_values = Vec::new();
                for i in 0..count {
                    let value: Vec<u8> = (0..size)
                        .map(|b| seed.wrapping_add((i % 2) as u8).wrapping_add(b as u8))
                        .collect();
                    if stride >= size {
                        values[i * stride..i * stride + size].copy_from_slice(&value);
                    }
                    batch_values.push(value);
                }
                if *fault == 1 && needed > 0 {
                    values.pop();
                }
                let expected = if matches!(layout, Layout::Variable { .. }) {
                    Err(WorldError::BatchNeedsFixedLayout { name })
                } else if stride < size {
                    Err(WorldError::StrideTooSmall { name, stride, size })
                } else if values.len() < needed {
                    Err(WorldError::BatchTooShort {
                        count,
                        stride,
                        needed,
                        got: values.len(),
                    })
                } else if let Some(&dead) = entities.iter().find(|e| !self.live.contains(e)) {
                    Err(WorldError::DeadEntity(dead))
                } else {
                    let mut outcome = BatchOutcome::default();
                    for (entity, value) in entities.iter().zip(&batch_values) {
                        match self.values.insert((id, *entity), value.clone()) {
                            None => outcome.inserted += 1,
                            Some(old) if old == *value => outcome.unchanged += 1,
                            Some(_) => outcome.updated += 1,
                        }
                    }
                    Ok(outcome)
                };
                let got = self.world.set_batch(id, &entities, &values, stride);
                assert_eq!(
                    got, expected,
                    "set_batch({id}, {entities:?}, stride {stride})"
                );
                got.map(|_| ())
            }
            Op::Remove { e, c } => {
                let entity = self.entity(*e);
                let (id, _, _) = self.component(*c);
                let expected = if self.live.contains(&entity) {
                    Ok(self.values.remove(&(id, entity)).is_some())
                } else {
                    Err(WorldError::DeadEntity(entity))
                };
                let got = self.world.remove(entity, id);
                assert_eq!(got, expected, "remove({entity}, {id})");
                got.map(|_| ())
            }
            Op::Despawn { e } => {
                let entity = self.entity(*e);
                let expected = if self.live.remove(&entity) {
                    self.values.retain(|k, _| k.1 != entity);
                    Ok(())
                } else {
                    Err(WorldError::DeadEntity(entity))
                };
                let got = self.world.despawn(entity);
                assert_eq!(got, expected, "despawn({entity})");
                got
            }
            Op::Advance | Op::Frame => unreachable!("handled by the driver"),
        };
        if result.is_err() {
            assert_eq!(
                fingerprint(&self.world),
                before,
                "a refused {op:?} changed the world"
            );
        }
        self.check_model();
    }

    fn check_model(&self) {
        assert_eq!(live(&self.world), self.live, "host live entities");
        let stats = self.world.stats();
        assert_eq!(stats.entities, self.live.len());
        assert_eq!(stats.components, self.values.len());
        assert_eq!(stats.component_types, self.types.len());
        for (id, name, _) in &self.types {
            let want: Entries = self
                .values
                .range((*id, EntityId(0))..=(*id, EntityId(u64::MAX)))
                .map(|((_, e), v)| (*e, v.clone()))
                .collect();
            assert_eq!(entries(&self.world, *id), want, "host values of {name}");
        }
    }

    /// Runs `ops`; Advance and Frame produce frames with `tracker` when given one.
    fn run(&mut self, ops: &[Op], mut tracker: Option<&mut DeltaTracker>, frames: &mut Vec<Frame>) {
        for op in ops {
            match op {
                Op::Advance => {
                    if let Some(tracker) = tracker.as_deref_mut() {
                        frames.push(self.frame(tracker));
                    }
                    let tick = self.world.tick();
                    assert_eq!(self.world.advance(), tick + 1);
                }
                Op::Frame => match tracker.as_deref_mut() {
                    Some(tracker) => frames.push(self.frame(tracker)),
                    None => {
                        // Seals the tick: later writes land in the next one.
                        let tick = self.world.tick();
                        assert!(self.world.delta_since(tick).unwrap().is_empty());
                    }
                },
                other => self.apply(other),
            }
        }
    }

    fn frame(&self, tracker: &mut DeltaTracker) -> Frame {
        let base = tracker.last_tick();
        let delta = tracker.diff(&self.world).unwrap();
        assert_eq!(delta.base_tick, base);
        assert_eq!(delta.tick, self.world.tick());
        assert_eq!(tracker.last_tick(), delta.tick);
        let bytes = delta.encode();
        assert_eq!(bytes, delta.encode(), "encoding is deterministic");
        Frame {
            bytes,
            tick: delta.tick,
            hash: self.world.state_hash(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Replaying events into a plain model.

#[derive(Default)]
struct EventModel {
    live: BTreeSet<EntityId>,
    values: BTreeMap<(ComponentId, EntityId), Vec<u8>>,
}

impl EventModel {
    /// Polls up to `max` events and replays them, checking each is consistent with the
    /// model (no insert of a held value, no update to identical bytes, ...).
    fn poll(&mut self, replica: &mut Replica, max: usize) {
        let pending = replica.pending_events();
        let events = replica.poll_events(max);
        assert_eq!(events.len(), pending.min(max));
        for event in events.iter() {
            let key = (event.component, event.entity);
            match event.kind {
                EventKind::Spawn | EventKind::Despawn => {
                    assert_eq!(event.component, ComponentId(0));
                    assert!(event.data.is_empty());
                }
                EventKind::Remove => assert!(event.data.is_empty()),
                EventKind::Insert | EventKind::Update => {}
            }
            match event.kind {
                EventKind::Spawn => {
                    assert!(self.live.insert(event.entity), "spawn of live {event:?}");
                }
                EventKind::Insert => {
                    assert!(
                        self.live.contains(&event.entity),
                        "{event:?} on dead entity"
                    );
                    let old = self.values.insert(key, event.data.to_vec());
                    assert!(old.is_none(), "{event:?} of a held value {old:?}");
                }
                EventKind::Update => {
                    let old = self
                        .values
                        .get_mut(&key)
                        .unwrap_or_else(|| panic!("{event:?} of a value not held"));
                    assert_ne!(old.as_slice(), event.data, "update to identical bytes");
                    *old = event.data.to_vec();
                }
                EventKind::Remove => {
                    assert!(
                        self.values.remove(&key).is_some(),
                        "{event:?} of a value not held"
                    );
                }
                EventKind::Despawn => {
                    assert!(self.live.remove(&event.entity), "despawn of dead {event:?}");
                    self.values.retain(|k, _| k.1 != event.entity);
                }
            }
        }
    }

    fn assert_matches(&mut self, replica: &mut Replica) {
        self.poll(replica, usize::MAX);
        assert_eq!(replica.pending_events(), 0);
        assert_eq!(self.live, live(replica.world()), "events: live entities");
        let mut held = BTreeMap::new();
        for d in replica.world().registry().descriptors() {
            for (e, v) in entries(replica.world(), d.id) {
                held.insert((d.id, e), v);
            }
        }
        assert_eq!(self.values, held, "events: values");
    }
}

// ---------------------------------------------------------------------------------------
// Delivery.

#[derive(Clone, Copy, Debug)]
enum Msg {
    /// Chunk `i` of snapshot `s`.
    Chunk(usize, usize),
    Frame(usize),
}

/// Applies messages in order, checking what each apply reports, polling events now and
/// then into `model`.
struct Delivery<'a> {
    snapshots: Vec<&'a Snapshot>,
    frames: &'a [Frame],
    /// Chunks applied so far, per snapshot.
    chunks_seen: Vec<BTreeSet<usize>>,
    rng: Rng,
}

impl<'a> Delivery<'a> {
    fn new(snapshots: Vec<&'a Snapshot>, frames: &'a [Frame], seed: u64) -> Self {
        Delivery {
            chunks_seen: vec![BTreeSet::new(); snapshots.len()],
            snapshots,
            frames,
            rng: Rng(seed),
        }
    }

    fn deliver(&mut self, replica: &mut Replica, model: &mut EventModel, msg: Msg) {
        let stats = replica.stats();
        match msg {
            Msg::Chunk(s, i) => {
                let snapshot = self.snapshots[s];
                let got = if self.rng.percent(50) {
                    replica.apply_snapshot_chunk(&snapshot.chunks[i].bytes)
                } else {
                    replica.apply(&snapshot.chunks[i].bytes)
                };
                if self.snapshots.len() == 1 {
                    // One snapshot: every first arrival applies, the last completes it.
                    let expected = if self.chunks_seen[s].insert(i) {
                        Applied::SnapshotChunk {
                            complete: self.chunks_seen[s].len() == snapshot.chunks.len(),
                        }
                    } else {
                        Applied::DuplicateChunk
                    };
                    assert_eq!(got, Ok(expected), "chunk {i}");
                    if self.chunks_seen[s].len() == snapshot.chunks.len() {
                        assert_eq!(replica.snapshot_tick(), snapshot.tick);
                        assert_eq!(replica.snapshot_progress(), None);
                    }
                } else {
                    // Chunks of an older snapshot may be stale, a partial older snapshot
                    // abandoned for a newer one.
                    assert!(got.is_ok(), "snapshot {s} chunk {i}: {got:?}");
                    if got == Ok(Applied::SnapshotChunk { complete: true }) {
                        assert_eq!(replica.snapshot_tick(), snapshot.tick);
                    }
                }
            }
            Msg::Frame(i) => {
                let frame = &self.frames[i];
                let stale = frame.tick <= replica.snapshot_tick();
                let got = if self.rng.percent(50) {
                    replica.apply_delta(&frame.bytes)
                } else {
                    replica.apply(&frame.bytes)
                };
                let expected = if stale {
                    Applied::StaleFrame
                } else {
                    Applied::DeltaFrame
                };
                assert_eq!(got, Ok(expected), "frame {i} (tick {})", frame.tick);
                assert!(replica.tick() >= frame.tick || stale);
            }
        }
        assert_eq!(replica.stats().rejected, stats.rejected);
        if self.rng.percent(20) {
            let max = 1 + self.rng.below(6);
            model.poll(replica, max);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config())]

    /// Snapshot chunks in random order with duplicates, then frames reordered (within a
    /// window or fully) and duplicated, or everything interleaved, optionally with a second
    /// (resync) snapshot taken later, after which frames are based on it, whose chunks arrive
    /// among the frames: the replica (which knows the engine's registry) ends in the host's
    /// state, and its events replay to it.
    #[test]
    fn replica_converges_under_reordering_and_duplication(
        peer in 0u16..8,
        before in ops(60),
        after in ops(100),
        max_chunk in chunk_limit(),
        resync in prop::option::of((0usize..100, chunk_limit())),
        seed in any::<u64>(),
        window in 0usize..6,
        dup_percent in prop_oneof![Just(0u64), 1u64..40],
        interleave in any::<bool>(),
    ) {
        let mut host = Host::new(peer, true, 1024);
        host.run(&before, None, &mut Vec::new());
        let snapshot = host.world.snapshot(max_chunk);
        let at_snapshot = state(&host.world);
        let mut tracker =
            DeltaTracker::starting_at(snapshot.tick, snapshot.described.iter().copied());
        let mut frames = Vec::new();
        let resync = resync.map(|(at, limit)| (at.min(after.len()), limit));
        let split = resync.map_or(after.len(), |(at, _)| at);
        host.run(&after[..split], Some(&mut tracker), &mut frames);
        if resync.is_some() && host.world.tick() == snapshot.tick {
            // Two cuttings of one tick are refused as inconsistent while the first is
            // incomplete (`snapshots_of_one_tick_with_different_chunking_do_not_mix`);
            // a real resync follows a change, so give it its own tick.
            host.world.advance();
        }
        let second = resync.map(|(_, limit)| host.world.snapshot(limit));
        if let Some(second) = second.as_ref().filter(|s| !s.is_empty()) {
            // Frames after a resync snapshot are based on it (frames of the old tracker are
            // still in flight). An empty world's snapshot has no chunk to deliver, so the old
            // tracker goes on (see `empty_resync_snapshot_clears_the_replica`).
            tracker = DeltaTracker::starting_at(second.tick, second.described.iter().copied());
        }
        host.run(&after[split..], Some(&mut tracker), &mut frames);
        frames.push(host.frame(&mut tracker));

        let mut rng = Rng(seed);
        let order = if window == 0 { Order::Shuffle } else { Order::Window(window) };
        let chunk_order = schedule(snapshot.chunks.len(), Order::Shuffle, dup_percent, &mut rng);
        let frame_order = schedule(frames.len(), order, dup_percent, &mut rng);
        let mut messages: Vec<Msg> = chunk_order.iter().map(|&i| Msg::Chunk(0, i)).collect();
        let chunk_count = messages.len();
        let mut rest: Vec<Msg> = frame_order.iter().map(|&i| Msg::Frame(i)).collect();
        if let Some(second) = &second {
            for i in schedule(second.chunks.len(), Order::Shuffle, dup_percent, &mut rng) {
                let at = rng.below(rest.len() + 1);
                rest.insert(at, Msg::Chunk(1, i));
            }
        }
        messages.extend(rest);
        if interleave {
            rng.shuffle(&mut messages);
        }

        let mut replica = Replica::with_registry(host.world.registry());
        let mut model = EventModel::default();
        let snapshots: Vec<&Snapshot> = [Some(&snapshot), second.as_ref()].into_iter().flatten().collect();
        let mut delivery = Delivery::new(snapshots, &frames, seed ^ 0x5eed);
        for (n, &msg) in messages.iter().enumerate() {
            delivery.deliver(&mut replica, &mut model, msg);
            if !interleave && n + 1 == chunk_count {
                prop_assert_eq!(&state(replica.world()), &at_snapshot);
            }
        }
        assert_converged(&host.world, &replica, "after every frame");
        let stats = replica.stats();
        prop_assert_eq!(stats.rejected, 0);
        let newest = second.as_ref().unwrap_or(&snapshot);
        if !newest.is_empty() {
            prop_assert_eq!(replica.snapshot_tick(), newest.tick);
        }
        let chunk_messages = messages.iter().filter(|m| matches!(m, Msg::Chunk(..))).count();
        prop_assert_eq!((stats.snapshot_chunks + stats.ignored_chunks) as usize, chunk_messages);
        if second.is_none() {
            prop_assert_eq!(stats.snapshot_chunks as usize, snapshot.chunks.len());
        }
        prop_assert_eq!((stats.delta_frames + stats.stale_frames) as usize, frame_order.len());
        model.assert_matches(&mut replica);
    }

    /// A replica that knows no types learns them from the wire (chunk descriptors, and a
    /// type registered after the snapshot from the frame that first carries it). Frames in
    /// order: after each, the replica holds exactly what the host held when it was taken;
    /// duplicates of older frames change nothing. Without a snapshot, the first frame of a
    /// fresh tracker carries the whole world.
    #[test]
    fn replica_learns_descriptors_from_in_order_frames(
        peer in 0u16..8,
        before in ops(40),
        after in ops(70),
        max_chunk in chunk_limit(),
        seed in any::<u64>(),
        dup_percent in prop_oneof![Just(0u64), 1u64..40],
        use_snapshot in any::<bool>(),
        late_at in 0usize..80,
    ) {
        let mut host = Host::new(peer, false, 1024);
        host.run(&before, None, &mut Vec::new());
        let (snapshot, mut tracker) = if use_snapshot {
            let snapshot = host.world.snapshot(max_chunk);
            let tracker =
                DeltaTracker::starting_at(snapshot.tick, snapshot.described.iter().copied());
            (Some(snapshot), tracker)
        } else {
            (None, DeltaTracker::new())
        };
        let at_snapshot = state(&host.world);
        let mut frames = Vec::new();
        let late_at = late_at.min(after.len());
        host.run(&after[..late_at], Some(&mut tracker), &mut frames);
        host.register(LATE.0, LATE.1);
        host.run(&after[late_at..], Some(&mut tracker), &mut frames);
        frames.push(host.frame(&mut tracker));

        let mut rng = Rng(seed);
        let mut replica = Replica::new();
        let mut model = EventModel::default();
        let mut delivery = Delivery::new(snapshot.iter().collect(), &frames, seed ^ 0x5eed);
        if let Some(snapshot) = &snapshot {
            for i in schedule(snapshot.chunks.len(), Order::Shuffle, dup_percent, &mut rng) {
                delivery.deliver(&mut replica, &mut model, Msg::Chunk(0, i));
            }
            prop_assert_eq!(&state(replica.world()), &at_snapshot);
        }
        for i in 0..frames.len() {
            delivery.deliver(&mut replica, &mut model, Msg::Frame(i));
            prop_assert_eq!(replica.state_hash(), frames[i].hash, "after frame {}", i);
            if rng.percent(dup_percent) {
                let again = rng.below(i + 1);
                model.poll(&mut replica, usize::MAX);
                let got = replica.apply(&frames[again].bytes);
                prop_assert!(
                    matches!(got, Ok(Applied::DeltaFrame | Applied::StaleFrame)),
                    "duplicate of frame {}: {:?}", again, got
                );
                prop_assert_eq!(replica.state_hash(), frames[i].hash, "duplicate of frame {}", again);
                prop_assert_eq!(replica.pending_events(), 0, "a duplicate raised events");
            }
        }
        assert_converged(&host.world, &replica, "in-order frames");
        prop_assert_eq!(replica.stats().rejected, 0);
        model.assert_matches(&mut replica);
    }

    /// Every chunk encodes to at most `max_chunk_bytes` unless it holds exactly one item;
    /// chunk headers and counts are consistent; the chunks cover the world exactly once.
    #[test]
    fn snapshot_chunks_respect_the_byte_limit(
        peer in 0u16..8,
        before in ops(120),
        limits in prop::collection::vec(chunk_limit(), 1..4),
        seed in any::<u64>(),
    ) {
        let mut host = Host::new(peer, true, 1024);
        host.run(&before, None, &mut Vec::new());
        let total_values = host.values.len();
        let bare = host
            .live
            .iter()
            .filter(|e| !host.values.keys().any(|k| k.1 == **e))
            .count();
        let mut rng = Rng(seed);
        for &limit in &limits {
            let snapshot = host.world.snapshot(limit);
            prop_assert_eq!(snapshot.tick, host.world.tick());
            prop_assert_eq!(snapshot.registry_hash, host.world.registry().hash());
            let empty_world = host.live.is_empty();
            if empty_world {
                // Zero chunks (DESIGN.md); one chunk without items would be sound too, and
                // would let a snapshot of an empty world resync a replica
                // (`empty_resync_snapshot_clears_the_replica`).
                prop_assert!(snapshot.chunks.len() <= 1);
            }
            let total = snapshot.chunks.len();
            for (i, chunk) in snapshot.chunks.iter().enumerate() {
                let items = chunk.components + chunk.bare_entities;
                prop_assert!(items >= 1 || empty_world, "chunk {} is empty", i);
                prop_assert!(
                    chunk.bytes.len() <= limit || items <= 1,
                    "chunk {} of {}: {} bytes > limit {} with {} items ({} values, {} bare)",
                    i, total, chunk.bytes.len(), limit, items, chunk.components,
                    chunk.bare_entities
                );
                prop_assert_eq!(chunk.index as usize, i);
                let Message::SnapshotChunk(view) = wire::decode(&chunk.bytes).unwrap() else {
                    panic!("chunk {i} is not a snapshot chunk");
                };
                prop_assert_eq!(view.index() as usize, i);
                prop_assert_eq!(view.total() as usize, total);
                prop_assert_eq!(view.tick(), snapshot.tick);
                prop_assert_eq!(view.registry_hash(), snapshot.registry_hash);
                let values: usize = view
                    .batches()
                    .map_or(0, |b| {
                        b.iter()
                            .map(|b| theta_net::wire::EntityList::parse(b).map_or(0, |e| e.len()))
                            .sum()
                    });
                prop_assert_eq!(values, chunk.components);
                prop_assert_eq!(view.entities().map_or(0, |e| e.len()), chunk.bare_entities);
                if i == 0 {
                    let described = view.descriptors().map_or(0, |d| d.len());
                    prop_assert_eq!(described, host.types.len(), "chunk 0 carries the registry");
                }
            }
            prop_assert_eq!(snapshot.total_components(), total_values);
            prop_assert_eq!(
                snapshot.chunks.iter().map(|c| c.bare_entities).sum::<usize>(),
                bare
            );
            let mut replica = Replica::new();
            let mut order: Vec<usize> = (0..total).collect();
            rng.shuffle(&mut order);
            for i in order {
                replica.apply(&snapshot.chunks[i].bytes).unwrap();
            }
            assert_converged(&host.world, &replica, "snapshot alone");
        }
    }

    /// `delta_since(t)` brings a replica that holds the state at `t` (from a snapshot taken
    /// at `t`, or nothing for t = 0) to the host's state in one frame, for several `t`; a
    /// base older than the kept history (or in the future) is an error, never a wrong delta.
    #[test]
    fn delta_since_an_earlier_tick_converges(
        peer in 0u16..8,
        before in ops(40),
        after in ops(70),
        checkpoints in prop::collection::vec(0usize..70, 0..4),
        max_chunk in chunk_limit(),
        seed in any::<u64>(),
        history in prop_oneof![Just(1024u64), 1u64..8],
        history_entries in prop_oneof![Just(usize::MAX), 1usize..64],
    ) {
        let mut host = Host::with_config(
            WorldConfig {
                local_peer: peer,
                history_ticks: history,
                history_entries,
            },
            true,
        );
        host.run(&before, None, &mut Vec::new());
        let mut rng = Rng(seed);
        let mut replicas: Vec<(u64, Replica, EventModel)> =
            vec![(0, Replica::new(), EventModel::default())];
        let mut cuts: Vec<usize> = checkpoints.iter().map(|&c| c.min(after.len())).collect();
        cuts.push(0);
        cuts.sort_unstable();
        cuts.dedup();
        let mut done = 0;
        for cut in cuts {
            host.run(&after[done..cut], None, &mut Vec::new());
            done = cut;
            let snapshot = host.world.snapshot(max_chunk);
            let mut replica = Replica::new();
            let mut model = EventModel::default();
            let mut order: Vec<usize> = (0..snapshot.chunks.len()).collect();
            rng.shuffle(&mut order);
            for i in order {
                replica.apply_snapshot_chunk(&snapshot.chunks[i].bytes).unwrap();
                model.poll(&mut replica, 1 + rng.below(4));
            }
            assert_converged(&host.world, &replica, "snapshot at a checkpoint");
            replicas.push((snapshot.tick, replica, model));
        }
        host.run(&after[done..], None, &mut Vec::new());

        let tick = host.world.tick();
        prop_assert_eq!(
            host.world.delta_since(tick + 1),
            Err(DeltaError::FutureBase { since: tick + 1, tick })
        );
        // The floor the tick history alone sets; a bound on entries may raise it.
        let tick_floor = tick.saturating_sub(history);
        for (since, mut replica, mut model) in replicas {
            let delta = match host.world.delta_since(since) {
                Err(DeltaError::HistoryTruncated { since: s, floor }) => {
                    prop_assert_eq!(s, since);
                    prop_assert!(since != 0 && since < floor && floor <= tick);
                    prop_assert!(floor >= tick_floor);
                    if history_entries == usize::MAX {
                        prop_assert_eq!(floor, tick_floor);
                    }
                    continue;
                }
                Err(other) => panic!("delta_since({since}): {other}"),
                Ok(delta) => delta,
            };
            if history_entries == usize::MAX {
                prop_assert!(since == 0 || since >= tick_floor);
            }
            prop_assert_eq!(delta.base_tick, since);
            prop_assert_eq!(delta.tick, host.world.tick());
            let held = replica.world();
            for entity in &delta.spawns {
                prop_assert!(!held.is_alive(*entity), "spawn of {} held at {}", entity, since);
            }
            // Consistent with the host now (what the receiver held at `since` aside).
            for entity in &delta.spawns {
                prop_assert!(host.live.contains(entity), "spawn of dead {}", entity);
            }
            for entity in &delta.despawns {
                prop_assert!(!host.live.contains(entity), "despawn of live {}", entity);
            }
            for change in delta.changes() {
                let was = held.get(change.entity, change.component);
                if was.is_none() {
                    prop_assert_eq!(change.kind, ChangeKind::Insert, "{:?}", change);
                }
                if change.kind == ChangeKind::Update {
                    prop_assert!(was.is_some(), "{:?}", change);
                }
            }
            for change in delta.changes() {
                prop_assert_eq!(
                    host.values.get(&(change.component, change.entity)).map(Vec::as_slice),
                    Some(change.bytes)
                );
            }
            for (component, entity) in delta.removals() {
                prop_assert!(host.live.contains(&entity));
                prop_assert!(!host.values.contains_key(&(component, entity)));
            }
            let expected = if delta.tick <= replica.snapshot_tick() {
                Applied::StaleFrame
            } else {
                Applied::DeltaFrame
            };
            prop_assert_eq!(replica.apply_delta(&delta.encode()), Ok(expected));
            assert_converged(&host.world, &replica, &format!("delta_since({since})"));
            model.assert_matches(&mut replica);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic reproductions of what the properties found.

fn pose_world(count: u8) -> (World, ComponentId, Vec<EntityId>) {
    let mut world = World::default();
    let pose = world.register("test.Pose", Layout::Fixed(12)).unwrap();
    let entities = (0..count)
        .map(|i| {
            let e = world.spawn().unwrap();
            world.set(e, pose, &[i; 12]).unwrap();
            e
        })
        .collect();
    (world, pose, entities)
}

/// A replica that missed a despawn is resynced with a snapshot; when the host's world is
/// empty by then, the snapshot has zero chunks, and the receiver completes it with
/// `apply_empty_snapshot`. (`resync_snapshot_removes_what_the_host_dropped` covers the
/// non-empty case.)
#[test]
fn empty_resync_snapshot_clears_the_replica() {
    let (mut host, _, entities) = pose_world(1);
    let mut replica = Replica::new();
    for chunk in host.snapshot(theta_net::DEFAULT_MAX_CHUNK_BYTES).chunks {
        replica.apply_snapshot_chunk(&chunk.bytes).unwrap();
    }
    // The frame carrying this despawn is lost; the host resyncs the replica.
    host.despawn(entities[0]).unwrap();
    let resync = host.snapshot(theta_net::DEFAULT_MAX_CHUNK_BYTES);
    assert!(resync.is_empty(), "an empty world is zero chunks");
    assert_eq!(
        replica.apply_empty_snapshot(resync.tick),
        Applied::SnapshotChunk { complete: true }
    );
    assert_eq!(
        replica.apply_empty_snapshot(resync.tick),
        Applied::StaleChunk
    );
    // A tracker for this replica now starts at the resync snapshot: nothing more comes.
    let mut tracker = DeltaTracker::starting_at(resync.tick, resync.described.iter().copied());
    replica
        .apply_delta(&tracker.diff(&host).unwrap().encode())
        .unwrap();
    assert_converged(&host, &replica, "after an empty resync snapshot");
}

/// Two snapshots of the same tick chunked under different limits, both with 2 chunks
/// (3+3 and 4+2 values): chunk 0 of one and chunk 1 of the other "complete" a snapshot
/// that lacks the 4th value.
#[test]
fn snapshots_of_one_tick_with_different_chunking_do_not_mix() {
    let (host, _, _) = pose_world(6);
    let a = host.snapshot(405);
    let b = host.snapshot(425);
    assert_eq!(a.tick, b.tick);
    assert_eq!((a.chunks.len(), b.chunks.len()), (2, 2));
    assert_ne!(a.chunks[0].components, b.chunks[0].components);
    let mut replica = Replica::new();
    assert_eq!(
        replica.apply_snapshot_chunk(&a.chunks[0].bytes),
        Ok(Applied::SnapshotChunk { complete: false })
    );
    // Either the foreign chunk is refused, or the snapshot it completes is whole.
    if let Ok(Applied::SnapshotChunk { complete: true }) =
        replica.apply_snapshot_chunk(&b.chunks[1].bytes)
    {
        assert_converged(&host, &replica, "snapshot completed from two chunkings");
    }
}

/// A sender that resends `delta_since(acked)` over a lossy transport: the receiver
/// acked tick `t`, then received frame 1 (spawn g, tag e) but lost frame 2 (despawn g,
/// untag e), and its ack of frame 1 was lost too. `delta_since(t)` must still carry the
/// despawn of g and the removal of e's tag although neither existed at `t`.
/// Not reachable with `DeltaTracker` over a reliable transport; it matters for the
/// acked-tick resend design of DESIGN.md ("Transport").
#[test]
fn delta_since_an_acked_tick_covers_a_receiver_that_saw_later_frames() {
    let (mut host, _, entities) = pose_world(1);
    let e = entities[0];
    let tag = host.register("test.Selected", Layout::Fixed(0)).unwrap();
    let snapshot = host.snapshot(theta_net::DEFAULT_MAX_CHUNK_BYTES);
    let mut replica = Replica::with_registry(host.registry());
    for chunk in &snapshot.chunks {
        replica.apply_snapshot_chunk(&chunk.bytes).unwrap();
    }
    let acked = snapshot.tick;
    let mut tracker = DeltaTracker::starting_at(acked, snapshot.described.iter().copied());
    let g = host.spawn().unwrap();
    host.set(e, tag, &[]).unwrap();
    let frame1 = tracker.diff(&host).unwrap().encode();
    host.despawn(g).unwrap();
    host.remove(e, tag).unwrap();
    let _lost = tracker.diff(&host).unwrap().encode();
    replica.apply_delta(&frame1).unwrap();
    replica
        .apply_delta(&host.delta_since(acked).unwrap().encode())
        .unwrap();
    assert_converged(&host, &replica, "after delta_since(acked)");
}
