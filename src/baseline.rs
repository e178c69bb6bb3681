//! The seed's replication design, rebuilt faithfully as the baseline every benchmark
//! compares against (`DESIGN.md`, "What is measured").
//!
//! The phase-3 seed (`seed/000_6cab7a0d26b7aaaa.txt`) encoded everything as JSON through
//! serde and found changes by rescanning the whole world every frame:
//!
//! - a component type is known by its name ([`ComponentKey`]), and every value travels as
//!   a [`SnapshotComponent`] holding that name, the entity and the value's bytes (which
//!   serde_json writes as an array of numbers);
//! - a snapshot collects every component of the world into one `Vec<SnapshotComponent>`
//!   and splits it greedily into [`WorldSnapshotChunk`]s of at most `max_chunk_bytes`
//!   serialized bytes, at least one component per chunk, an empty world giving no chunk;
//! - the [`BaselineTracker`] keeps a `HashMap<(ComponentKey, u64), Vec<u8>>` of the
//!   previous frame; each frame it dumps every component of every registered type,
//!   compares each value's bytes with the map, emits [`DiffPayload::Insert`] and
//!   [`DiffPayload::Update`] in registry order then entity id, then
//!   [`DiffPayload::Remove`] for the keys of the previous frame that are gone, advertises a
//!   type's [`ComponentDescriptor`] once, with its first diff, and replaces the map with
//!   the one it just built.
//!
//! Where the seed left a detail open, this module picks the cheaper reading, so the
//! baseline is not slowed by anything but its design: each snapshot component is
//! serialized once (the chunk is assembled from those bytes, byte for byte what serde_json
//! writes for the [`WorldSnapshotChunk`]), and the standard `HashMap` is used as the seed
//! did.
//!
//! The module reads a [`World`] through its public API only (`registry().descriptors()`
//! and `component_entries`), as the seed read its ECS through `component_entries`.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::registry::Layout;
use crate::world::World;

/// A component type as the seed named it: its registered name.
pub type ComponentKey = String;

/// One component value of one entity, as the seed serialized it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotComponent {
    /// The component type's name.
    pub component: ComponentKey,
    /// The entity's network id.
    pub entity: u64,
    /// The value (JSON: an array of numbers).
    pub bytes: Vec<u8>,
}

/// One change of a delta frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiffPayload {
    /// The entity did not hold the component in the previous frame.
    Insert(SnapshotComponent),
    /// The value's bytes differ from the previous frame.
    Update(SnapshotComponent),
    /// The entity held the component in the previous frame and does not now.
    Remove {
        /// The component type's name.
        component: ComponentKey,
        /// The entity's network id.
        entity: u64,
    },
}

/// What a receiver learns about a component type before its first value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentDescriptor {
    /// The component type's name.
    pub component: ComponentKey,
    /// Whether every value has exactly `max_bytes` bytes.
    pub fixed: bool,
    /// The value size (fixed) or the largest value (variable).
    pub max_bytes: u32,
}

/// One delta frame: descriptors first, then the diffs in frame order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationDelta {
    /// Descriptors of the types whose first diff is in this frame.
    pub descriptors: Vec<ComponentDescriptor>,
    /// Inserts and updates (registry order, then entity id), then removes.
    pub diffs: Vec<DiffPayload>,
}

impl ReplicationDelta {
    /// Whether the frame changes nothing.
    pub fn is_empty(&self) -> bool {
        self.diffs.is_empty()
    }
}

/// One chunk of a snapshot, as the seed serialized it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldSnapshotChunk {
    /// Position of this chunk.
    pub index: u32,
    /// Number of chunks in the snapshot.
    pub total: u32,
    /// The components it holds.
    pub components: Vec<SnapshotComponent>,
}

fn descriptor_of(d: &crate::registry::ComponentDescriptor) -> ComponentDescriptor {
    let (fixed, max_bytes) = match d.layout {
        Layout::Fixed(size) => (true, size),
        Layout::Variable { max } => (false, max),
    };
    ComponentDescriptor {
        component: d.name.clone(),
        fixed,
        max_bytes,
    }
}

/// Every (entity, value) of one registered type, ascending by entity.
fn sorted_entries<'w>(
    world: &'w World,
    d: &crate::registry::ComponentDescriptor,
) -> Vec<(u64, &'w [u8])> {
    let mut entries: Vec<(u64, &[u8])> = world
        .component_entries(d.id)
        .expect("a type of the world's own registry")
        .map(|(entity, bytes)| (entity.0, bytes))
        .collect();
    entries.sort_unstable_by_key(|&(entity, _)| entity);
    entries
}

/// The seed's snapshot: every component of `world` (registry order, then entity id) in
/// JSON chunks of at most `max_chunk_bytes` bytes each, filled greedily; a component that
/// alone exceeds the bound gets a chunk of its own. A world without components gives no
/// chunk. Each chunk is the serde_json encoding of a [`WorldSnapshotChunk`].
pub fn snapshot_json(world: &World, max_chunk_bytes: usize) -> Vec<Vec<u8>> {
    // The seed's temporary Vec<SnapshotComponent> of the whole world.
    let mut components = Vec::new();
    for d in world.registry().descriptors() {
        for (entity, bytes) in sorted_entries(world, d) {
            components.push(SnapshotComponent {
                component: d.name.clone(),
                entity,
                bytes: bytes.to_vec(),
            });
        }
    }
    if components.is_empty() {
        return Vec::new();
    }
    let serialized: Vec<Vec<u8>> = components
        .iter()
        .map(|c| serde_json::to_vec(c).expect("plain data serializes"))
        .collect();

    // `{"index":I,"total":T,"components":[` + `]}` with I and T of up to 10 digits each.
    let overhead = br#"{"index":,"total":,"components":[]}"#.len() + 20;
    let mut plan: Vec<std::ops::Range<usize>> = Vec::new();
    let (mut start, mut used) = (0, overhead);
    for (i, c) in serialized.iter().enumerate() {
        let add = c.len() + usize::from(i > start);
        if i > start && used + add > max_chunk_bytes {
            plan.push(start..i);
            start = i;
            used = overhead + c.len();
        } else {
            used += add;
        }
    }
    plan.push(start..serialized.len());

    let total = plan.len() as u32;
    plan.iter()
        .enumerate()
        .map(|(index, range)| {
            let body: usize = serialized[range.clone()].iter().map(|c| c.len() + 1).sum();
            let mut out = Vec::with_capacity(overhead + body);
            out.extend_from_slice(
                format!(r#"{{"index":{index},"total":{total},"components":["#).as_bytes(),
            );
            for (k, c) in serialized[range.clone()].iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(c);
            }
            out.extend_from_slice(b"]}");
            out
        })
        .collect()
}

/// The seed's delta tracker: a full rescan of the world each frame against a map of the
/// previous frame's bytes.
#[derive(Clone, Debug, Default)]
pub struct BaselineTracker {
    previous: HashMap<(ComponentKey, u64), Vec<u8>>,
    advertised: HashSet<ComponentKey>,
}

impl BaselineTracker {
    /// A tracker whose first frame inserts the whole world.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next frame as a value: inserts and updates in registry order then entity id,
    /// then removals in the same order, with the descriptor of each type whose first diff
    /// it holds.
    pub fn diff_frame(&mut self, world: &World) -> ReplicationDelta {
        let registry = world.registry();
        let mut current: HashMap<(ComponentKey, u64), Vec<u8>> =
            HashMap::with_capacity(self.previous.len());
        let mut frame = ReplicationDelta::default();
        for d in registry.descriptors() {
            let key: ComponentKey = d.name.clone();
            for (entity, bytes) in sorted_entries(world, d) {
                let entry_key = (key.clone(), entity);
                // Some(true): insert, Some(false): update, None: unchanged.
                let change = match self.previous.get(&entry_key) {
                    None => Some(true),
                    Some(before) => (before.as_slice() != bytes).then_some(false),
                };
                if let Some(insert) = change {
                    if !self.advertised.contains(&key) {
                        self.advertised.insert(key.clone());
                        frame.descriptors.push(descriptor_of(d));
                    }
                    let value = SnapshotComponent {
                        component: key.clone(),
                        entity,
                        bytes: bytes.to_vec(),
                    };
                    frame.diffs.push(if insert {
                        DiffPayload::Insert(value)
                    } else {
                        DiffPayload::Update(value)
                    });
                }
                current.insert(entry_key, bytes.to_vec());
            }
        }
        let mut removed: Vec<(usize, u64, &ComponentKey)> = self
            .previous
            .keys()
            .filter(|k| !current.contains_key(*k))
            .map(|(component, entity)| {
                let at = registry
                    .find(component)
                    .and_then(|d| registry.position(d.id))
                    .unwrap_or(usize::MAX);
                (at, *entity, component)
            })
            .collect();
        removed.sort_unstable();
        frame.diffs.extend(
            removed
                .into_iter()
                .map(|(_, entity, component)| DiffPayload::Remove {
                    component: component.clone(),
                    entity,
                }),
        );
        self.previous = current;
        frame
    }

    /// The next frame, encoded with serde_json. A frame without changes is still sent as
    /// the JSON of an empty frame (`{"descriptors":[],"diffs":[]}`), never as no bytes, so
    /// byte counts are what the seed's design put on the wire.
    pub fn diff(&mut self, world: &World) -> Vec<u8> {
        let frame = self.diff_frame(world);
        serde_json::to_vec(&frame).expect("plain data serializes")
    }

    /// Component instances tracked (the previous frame's map).
    pub fn tracked(&self) -> usize {
        self.previous.len()
    }

    /// Approximate heap bytes held: the map's table (capacity × (entry + control byte)),
    /// each key's own copy of the component name, each value's buffer, and the set of
    /// advertised types.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<((ComponentKey, u64), Vec<u8>)>() + 1;
        let owned: usize = self
            .previous
            .iter()
            .map(|((name, _), bytes)| name.capacity() + bytes.capacity())
            .sum();
        let advertised = self.advertised.capacity() * (std::mem::size_of::<ComponentKey>() + 1)
            + self.advertised.iter().map(String::capacity).sum::<usize>();
        self.previous.capacity() * entry + owned + advertised
    }
}

/// The seed's receiving side, as far as the benchmarks need it: applies JSON delta frames
/// and snapshot chunks to a map of (component name, entity) to value.
#[derive(Clone, Debug, Default)]
pub struct BaselineReplica {
    values: HashMap<(ComponentKey, u64), Vec<u8>>,
    descriptors: HashMap<ComponentKey, ComponentDescriptor>,
}

impl BaselineReplica {
    /// An empty replica.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and applies one delta frame (as made by [`BaselineTracker::diff`]).
    pub fn apply(&mut self, json: &[u8]) -> Result<(), serde_json::Error> {
        let frame: ReplicationDelta = serde_json::from_slice(json)?;
        for d in frame.descriptors {
            self.descriptors.insert(d.component.clone(), d);
        }
        for diff in frame.diffs {
            match diff {
                DiffPayload::Insert(c) | DiffPayload::Update(c) => {
                    self.values.insert((c.component, c.entity), c.bytes);
                }
                DiffPayload::Remove { component, entity } => {
                    self.values.remove(&(component, entity));
                }
            }
        }
        Ok(())
    }

    /// Parses and applies one snapshot chunk (as made by [`snapshot_json`]).
    pub fn apply_snapshot_chunk(&mut self, json: &[u8]) -> Result<(), serde_json::Error> {
        let chunk: WorldSnapshotChunk = serde_json::from_slice(json)?;
        for c in chunk.components {
            self.values.insert((c.component, c.entity), c.bytes);
        }
        Ok(())
    }

    /// The value of `component` (by name) of `entity`, if held.
    pub fn get(&self, component: &str, entity: u64) -> Option<&[u8]> {
        self.values
            .get(&(component.to_owned(), entity))
            .map(Vec::as_slice)
    }

    /// Number of (component, entity) values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether this replica holds exactly the component values of `world` (entities that
    /// hold no component are invisible to the seed's design).
    pub fn matches_world(&self, world: &World) -> bool {
        let mut count = 0;
        for d in world.registry().descriptors() {
            for (entity, bytes) in world.component_entries(d.id).expect("registered") {
                count += 1;
                if self.get(&d.name, entity.0) != Some(bytes) {
                    return false;
                }
            }
        }
        count == self.values.len()
    }

    /// Approximate heap bytes held, counted as [`BaselineTracker::heap_bytes`] does.
    pub fn memory_bytes(&self) -> usize {
        let entry = std::mem::size_of::<((ComponentKey, u64), Vec<u8>)>() + 1;
        let owned: usize = self
            .values
            .iter()
            .map(|((name, _), bytes)| name.capacity() + bytes.capacity())
            .sum();
        self.values.capacity() * entry + owned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::EntityId;

    fn world() -> (World, crate::ComponentId, crate::ComponentId) {
        let mut world = World::default();
        let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
        let name = world
            .register("test.Name", Layout::Variable { max: 64 })
            .unwrap();
        (world, position, name)
    }

    fn decode(json: &[u8]) -> ReplicationDelta {
        serde_json::from_slice(json).unwrap()
    }

    fn component(name: &str, entity: EntityId, bytes: &[u8]) -> SnapshotComponent {
        SnapshotComponent {
            component: name.into(),
            entity: entity.0,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn delta_tracker_detects_insert_update_remove() {
        let (mut world, position, _) = world();
        let mut tracker = BaselineTracker::new();
        let e = world.spawn().unwrap();
        world.set(e, position, &[1; 12]).unwrap();
        let frame = decode(&tracker.diff(&world));
        assert_eq!(
            frame.diffs,
            vec![DiffPayload::Insert(component("test.Position", e, &[1; 12]))]
        );
        assert_eq!(frame.descriptors.len(), 1);
        assert_eq!(frame.descriptors[0].component, "test.Position");

        world.set(e, position, &[2; 12]).unwrap();
        let frame = decode(&tracker.diff(&world));
        assert_eq!(
            frame.diffs,
            vec![DiffPayload::Update(component("test.Position", e, &[2; 12]))]
        );
        assert!(frame.descriptors.is_empty(), "descriptors go once");

        world.remove(e, position).unwrap();
        let frame = decode(&tracker.diff(&world));
        assert_eq!(
            frame.diffs,
            vec![DiffPayload::Remove {
                component: "test.Position".into(),
                entity: e.0
            }]
        );
        assert_eq!(tracker.tracked(), 0);
    }

    #[test]
    fn delta_tracker_stable_under_no_changes() {
        let (mut world, position, name) = world();
        let mut tracker = BaselineTracker::new();
        let e = world.spawn().unwrap();
        world.set(e, position, &[1; 12]).unwrap();
        world.set(e, name, b"alpha").unwrap();
        assert!(!tracker.diff_frame(&world).is_empty());
        let json = tracker.diff(&world);
        assert_eq!(json, br#"{"descriptors":[],"diffs":[]}"#);
        // Identical bytes are no change.
        world.set(e, position, &[1; 12]).unwrap();
        assert!(tracker.diff_frame(&world).is_empty());
    }

    #[test]
    fn frame_order_is_registry_then_entity_then_removals() {
        let (mut world, position, name) = world();
        let mut tracker = BaselineTracker::new();
        let entities: Vec<EntityId> = (0..4).map(|_| world.spawn().unwrap()).collect();
        for &e in entities.iter().rev() {
            world.set(e, name, b"n").unwrap();
            world.set(e, position, &[1; 12]).unwrap();
        }
        tracker.diff(&world);
        world.despawn(entities[2]).unwrap();
        world.despawn(entities[0]).unwrap();
        world.set(entities[3], position, &[5; 12]).unwrap();
        world.set(entities[1], name, b"m").unwrap();
        let frame = tracker.diff_frame(&world);
        let registry = world.registry();
        let pos = |n: &str| registry.position(registry.find(n).unwrap().id).unwrap();
        let keys: Vec<(bool, usize, u64)> = frame
            .diffs
            .iter()
            .map(|d| match d {
                DiffPayload::Insert(c) | DiffPayload::Update(c) => {
                    (false, pos(&c.component), c.entity)
                }
                DiffPayload::Remove { component, entity } => (true, pos(component), *entity),
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.iter().filter(|k| k.0).count(), 4);
        assert_eq!(keys.iter().filter(|k| !k.0).count(), 2);
    }

    #[test]
    fn replica_follows_the_tracker() {
        let (mut world, position, name) = world();
        let mut tracker = BaselineTracker::new();
        let mut replica = BaselineReplica::new();
        let a = world.spawn().unwrap();
        let b = world.spawn().unwrap();
        world.set(a, position, &[1; 12]).unwrap();
        world.set(b, name, b"bee").unwrap();
        replica.apply(&tracker.diff(&world)).unwrap();
        assert!(replica.matches_world(&world));
        world.set(a, position, &[3; 12]).unwrap();
        world.despawn(b).unwrap();
        replica.apply(&tracker.diff(&world)).unwrap();
        assert!(replica.matches_world(&world));
        assert_eq!(replica.len(), 1);
        assert!(replica.memory_bytes() > 0 && tracker.heap_bytes() > 0);
        assert!(replica.apply(b"not json").is_err());
    }

    #[test]
    fn snapshot_chunks_are_bounded_and_match_serde() {
        let (mut world, position, name) = world();
        assert!(
            snapshot_json(&world, 512).is_empty(),
            "empty world, no chunk"
        );
        for i in 0..100u8 {
            let e = world.spawn().unwrap();
            world.set(e, position, &[i; 12]).unwrap();
            if i % 3 == 0 {
                world
                    .set(e, name, &vec![b'x'; usize::from(i % 60)])
                    .unwrap();
            }
        }
        let chunks = snapshot_json(&world, 512);
        assert!(chunks.len() > 1);
        let mut replica = BaselineReplica::new();
        for (i, bytes) in chunks.iter().enumerate() {
            assert!(bytes.len() <= 512, "chunk {i}: {} bytes", bytes.len());
            let chunk: WorldSnapshotChunk = serde_json::from_slice(bytes).unwrap();
            assert_eq!(
                (chunk.index as usize, chunk.total as usize),
                (i, chunks.len())
            );
            assert_eq!(&serde_json::to_vec(&chunk).unwrap(), bytes);
            replica.apply_snapshot_chunk(bytes).unwrap();
        }
        assert!(replica.matches_world(&world));
    }

    #[test]
    fn snapshot_puts_an_oversized_component_alone() {
        let mut world = World::default();
        let blob = world
            .register("test.Blob", Layout::Variable { max: 4096 })
            .unwrap();
        for _ in 0..3 {
            let e = world.spawn().unwrap();
            world.set(e, blob, &[7; 1000]).unwrap();
        }
        let chunks = snapshot_json(&world, 80);
        assert_eq!(chunks.len(), 3);
    }
}
