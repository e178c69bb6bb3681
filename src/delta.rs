//! Deltas: what changed in a world after a tick, built from the change journal at a cost
//! proportional to the changes, and the in-order [`DeltaTracker`].

use rustc_hash::FxHashSet;

use crate::registry::{ComponentDescriptor, ComponentId, Layout};
use crate::wire::{BatchRef, BatchSource, Encoder, FrameParts};
use crate::world::{Column, EntityId, EntryKind, World};

/// Why a delta could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The base tick is after the world's current tick.
    #[error("delta base tick {since} is after the current tick {tick}")]
    FutureBase {
        /// The base asked for.
        since: u64,
        /// The world's tick.
        tick: u64,
    },
    /// The journal no longer reaches back to the base tick: the receiver needs a snapshot.
    #[error("delta base tick {since} is older than the kept history (from tick {floor}); send a snapshot")]
    HistoryTruncated {
        /// The base asked for.
        since: u64,
        /// Oldest base the journal serves.
        floor: u64,
    },
}

/// Whether a value is new to the receiver or replaces one it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// The entity gained the component after the base tick (it may have held an earlier
    /// value that was removed in between).
    Insert,
    /// The entity held the component; its bytes changed.
    Update,
}

/// New values of one component type, in ascending entity order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetBatch {
    /// The component type.
    pub component: ComponentId,
    /// The entities, ascending.
    pub entities: Vec<EntityId>,
    /// Values concatenated in entity order.
    pub data: Vec<u8>,
    /// Byte length of each value, for variable layouts only.
    pub lengths: Option<Vec<u32>>,
    /// Bit i (LSB first) set when value i is an insert.
    pub inserted: Vec<u8>,
}

/// One value change, as iterated from a [`Delta`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComponentChange<'a> {
    /// Insert or update.
    pub kind: ChangeKind,
    /// The component type.
    pub component: ComponentId,
    /// The entity.
    pub entity: EntityId,
    /// The new value.
    pub bytes: &'a [u8],
}

/// Everything that changed in the ticks `(base_tick, tick]`, in the order of the
/// replication contract: descriptors, spawns, inserts/updates (registry order, then entity
/// id), removes, despawns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// The tick the receiver is assumed to hold.
    pub base_tick: u64,
    /// The tick this delta brings the receiver to.
    pub tick: u64,
    /// Descriptors the receiver may not know yet.
    pub descriptors: Vec<ComponentDescriptor>,
    /// Entities created, ascending.
    pub spawns: Vec<EntityId>,
    /// New values, one batch per component type in registry order.
    pub sets: Vec<SetBatch>,
    /// Components removed from live entities, per component type in registry order.
    pub removes: Vec<(ComponentId, Vec<EntityId>)>,
    /// Entities destroyed, ascending.
    pub despawns: Vec<EntityId>,
}

impl Delta {
    /// Whether the delta changes nothing (descriptors alone change nothing).
    pub fn is_empty(&self) -> bool {
        self.spawns.is_empty()
            && self.sets.is_empty()
            && self.removes.is_empty()
            && self.despawns.is_empty()
    }

    /// Every value change, in frame order.
    pub fn changes(&self) -> impl Iterator<Item = ComponentChange<'_>> {
        self.sets.iter().flat_map(|batch| {
            let mut offset = 0usize;
            let size = match &batch.lengths {
                None if !batch.entities.is_empty() => batch.data.len() / batch.entities.len(),
                _ => 0,
            };
            batch.entities.iter().enumerate().map(move |(i, &entity)| {
                let len = batch.lengths.as_ref().map_or(size, |l| l[i] as usize);
                let bytes = &batch.data[offset..offset + len];
                offset += len;
                let inserted = batch.inserted[i / 8] & (1 << (i % 8)) != 0;
                ComponentChange {
                    kind: if inserted {
                        ChangeKind::Insert
                    } else {
                        ChangeKind::Update
                    },
                    component: batch.component,
                    entity,
                    bytes,
                }
            })
        })
    }

    /// Every (component, entity) removal, in frame order.
    pub fn removals(&self) -> impl Iterator<Item = (ComponentId, EntityId)> + '_ {
        self.removes
            .iter()
            .flat_map(|(component, entities)| entities.iter().map(move |&e| (*component, e)))
    }

    /// Number of value changes.
    pub fn change_count(&self) -> usize {
        self.sets.iter().map(|b| b.entities.len()).sum()
    }

    /// Encodes the delta as a FlatBuffers frame.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(&mut Encoder::with_capacity(self.encoded_size_hint()))
    }

    /// About the encoded size: entity ids, values, lengths, bitsets and some overhead.
    fn encoded_size_hint(&self) -> usize {
        let sets: usize = self
            .sets
            .iter()
            .map(|b| {
                128 + 8 * b.entities.len()
                    + b.data.len()
                    + b.inserted.len()
                    + 4 * b.lengths.as_ref().map_or(0, Vec::len)
            })
            .sum();
        let removes: usize = self.removes.iter().map(|(_, e)| 32 + 8 * e.len()).sum();
        let descriptors: usize = self.descriptors.iter().map(|d| 64 + d.name.len()).sum();
        256 + sets + removes + descriptors + 8 * (self.spawns.len() + self.despawns.len())
    }

    /// Encodes the delta with a reusable encoder.
    pub fn encode_with(&self, encoder: &mut Encoder) -> Vec<u8> {
        self.with_parts(|parts| encoder.delta_frame(parts))
    }

    /// Calls `f` with the delta's parts borrowed for encoding (alone, or inside another
    /// message such as a state datagram).
    pub fn with_parts<R>(&self, f: impl FnOnce(&FrameParts<'_>) -> R) -> R {
        let descriptors: Vec<&ComponentDescriptor> = self.descriptors.iter().collect();
        let batches: Vec<BatchRef<'_>> = self
            .sets
            .iter()
            .map(|b| BatchRef {
                component: b.component,
                entities: &b.entities,
                data: &b.data,
                lengths: b.lengths.as_deref(),
                inserted: Some(&b.inserted),
            })
            .collect();
        let removes: Vec<(ComponentId, &[EntityId])> = self
            .removes
            .iter()
            .map(|(c, e)| (*c, e.as_slice()))
            .collect();
        f(&FrameParts {
            base_tick: self.base_tick,
            tick: self.tick,
            descriptors: &descriptors,
            spawns: &self.spawns,
            batches: &batches,
            removes: &removes,
            despawns: &self.despawns,
            owner_seq: 0,
            baseline_ages: &[],
            lanes: &[],
        })
    }
}

impl World {
    /// What changed after tick `since`, up to and including the current tick, which this
    /// closes (later writes land in the next tick). Visits only the journal entries after
    /// `since`; `since == 0` gives the whole world as inserts. Includes the descriptor of
    /// every component type it carries values of.
    pub fn delta_since(&self, since: u64) -> Result<Delta, DeltaError> {
        let tick = self.seal();
        if since == 0 {
            return Ok(self.full_delta(tick));
        }
        let JournalWalk {
            spawns,
            sets,
            removes,
            despawns,
        } = self.walk_journal(since, tick)?;
        let registry = self.registry();
        let columns = self.columns();
        let mut delta = Delta {
            base_tick: since,
            tick,
            spawns,
            despawns,
            ..Delta::default()
        };
        for group in sets.chunk_by(|a, b| a.0 == b.0) {
            let at = group[0].0 as usize;
            let column = &columns[at];
            let descriptor = &registry.descriptors()[at];
            let mut batch = SetBatch::for_type(descriptor, group.len());
            for (i, &(_, entity, row)) in group.iter().enumerate() {
                let row = row as usize;
                batch.push(i, entity, column.value(row), column.added(row) > since);
            }
            delta.descriptors.push(descriptor.clone());
            delta.sets.push(batch);
        }
        for group in removes.chunk_by(|a, b| a.0 == b.0) {
            let component = registry.descriptors()[group[0].0].id;
            delta
                .removes
                .push((component, group.iter().map(|&(_, e)| e).collect()));
        }
        Ok(delta)
    }

    /// [`World::delta_since`] encoded as a frame straight from the columns: the same bytes
    /// as `delta_since(since)?.encode()` without the intermediate [`Delta`], each value
    /// copied once, from its column into the message. `skip_descriptor(id)` is asked once
    /// per component type the frame carries values of; the descriptor is left out when it
    /// returns true (the receiver knows it).
    pub fn encode_delta_since(
        &self,
        since: u64,
        encoder: &mut Encoder,
        mut skip_descriptor: impl FnMut(ComponentId) -> bool,
    ) -> Result<EncodedDelta, DeltaError> {
        let tick = self.seal();
        let walk = if since == 0 {
            self.every_key()
        } else {
            self.walk_journal(since, tick)?
        };
        let registry = self.registry();
        let columns = self.columns();
        let mut descriptors = Vec::new();
        let batches: Vec<ColumnBatch<'_>> = walk
            .sets
            .chunk_by(|a, b| a.0 == b.0)
            .map(|keys| {
                let at = keys[0].0 as usize;
                let descriptor = &registry.descriptors()[at];
                if !skip_descriptor(descriptor.id) {
                    descriptors.push(descriptor);
                }
                ColumnBatch {
                    component: descriptor.id,
                    variable: matches!(descriptor.layout, Layout::Variable { .. }),
                    column: &columns[at],
                    keys,
                    since,
                }
            })
            .collect();
        let removes: Vec<(ComponentId, Vec<EntityId>)> = walk
            .removes
            .chunk_by(|a, b| a.0 == b.0)
            .map(|group| {
                let component = registry.descriptors()[group[0].0].id;
                (component, group.iter().map(|&(_, e)| e).collect())
            })
            .collect();
        let removes: Vec<(ComponentId, &[EntityId])> =
            removes.iter().map(|(c, e)| (*c, e.as_slice())).collect();
        let parts = FrameParts {
            base_tick: since,
            tick,
            descriptors: &descriptors,
            spawns: &walk.spawns,
            batches: &[],
            removes: &removes,
            despawns: &walk.despawns,
            owner_seq: 0,
            baseline_ages: &[],
            lanes: &[],
        };
        Ok(EncodedDelta {
            bytes: encoder.delta_frame_from(&parts, &batches),
            base_tick: since,
            tick,
            changes: walk.sets.len(),
            empty: walk.spawns.is_empty()
                && walk.sets.is_empty()
                && removes.is_empty()
                && walk.despawns.is_empty(),
        })
    }

    /// The keys that changed after tick `since`, as [`World::delta_since`] carries them
    /// but without their values (nothing is copied): what an outbox marks. Closes the
    /// current tick as `delta_since` does; `since == 0` gives every key of the world.
    pub fn changed_keys_since(&self, since: u64) -> Result<ChangedKeys, DeltaError> {
        let tick = self.seal();
        let ids = |at: usize| self.registry().descriptors()[at].id;
        if since == 0 {
            let mut keys = ChangedKeys {
                tick,
                spawns: self.entities().collect(),
                ..ChangedKeys::default()
            };
            for (at, column) in self.columns().iter().enumerate() {
                keys.sets
                    .extend((0..column.len()).map(|row| (ids(at), column.entity(row))));
            }
            return Ok(keys);
        }
        let walk = self.walk_journal(since, tick)?;
        Ok(ChangedKeys {
            tick,
            spawns: walk.spawns,
            despawns: walk.despawns,
            sets: walk
                .sets
                .iter()
                .map(|&(at, e, _)| (ids(at as usize), e))
                .collect(),
            removes: walk.removes.iter().map(|&(at, e)| (ids(at), e)).collect(),
        })
    }

    /// The journal's entries after `since` that are still current at `tick`, sorted:
    /// spawns, sets as (column, entity, row), removes as (column, entity), despawns.
    /// A set costs no hash lookup unless a removal moved its row or a registration its
    /// column since it was logged (the entry's hints, checked); a key logged in several
    /// ticks is kept only from the tick of its latest change, and sorting then puts any
    /// duplicates left side by side.
    fn walk_journal(&self, since: u64, tick: u64) -> Result<JournalWalk, DeltaError> {
        if since > tick {
            return Err(DeltaError::FutureBase { since, tick });
        }
        let floor = self.journal().floor();
        if since < floor {
            return Err(DeltaError::HistoryTruncated { since, floor });
        }
        let columns = self.columns();
        let mut walk = JournalWalk::default();
        for (seq, entry) in self.journal().since(since) {
            match entry.kind {
                EntryKind::Spawn => {
                    if self.spawned_at(entry.entity) == Some(entry.tick) {
                        walk.spawns.push(entry.entity);
                    }
                }
                EntryKind::Set => {
                    let Some(at) = self.column_of(entry.component, entry.at) else {
                        continue;
                    };
                    let column = &columns[at];
                    // Only the key's latest change is current; earlier entries are stale.
                    if let Some(row) = column.logged_row(entry.entity, seq, entry.row) {
                        if column.changed(row) == entry.tick {
                            walk.sets.push((at as u32, entry.entity, row as u32));
                        }
                    }
                }
                EntryKind::Remove => {
                    let Some(at) = self.column_of(entry.component, entry.at) else {
                        continue;
                    };
                    // Sent even when the value was inserted after `since`: a receiver acked
                    // at `since` may have seen that insert in a later frame. A value held
                    // again now travels as a set, a despawned entity as a despawn.
                    if self.is_alive(entry.entity) && columns[at].row(entry.entity).is_none() {
                        walk.removes.push((at, entry.entity));
                    }
                }
                // Sent even for entities spawned after `since`, for the same reason; a
                // receiver that never saw the entity ignores it.
                EntryKind::Despawn => walk.despawns.push(entry.entity),
            }
        }
        walk.spawns.sort_unstable();
        walk.sets.sort_unstable();
        walk.sets.dedup();
        walk.removes.sort_unstable();
        walk.removes.dedup();
        walk.despawns.sort_unstable();
        Ok(walk)
    }

    /// Every key of the world, as [`World::walk_journal`] lists them: what a delta from
    /// nothing carries.
    fn every_key(&self) -> JournalWalk {
        let mut walk = JournalWalk {
            spawns: self.entities().collect(),
            ..JournalWalk::default()
        };
        walk.spawns.sort_unstable();
        for (at, column) in self.columns().iter().enumerate() {
            let key = |row: u32| (at as u32, column.entity(row as usize), row);
            match column.entity_order() {
                Some(rows) => walk.sets.extend(rows.into_iter().map(key)),
                None => walk.sets.extend((0..column.len() as u32).map(key)),
            }
        }
        walk
    }

    /// The whole world as a delta from nothing.
    fn full_delta(&self, tick: u64) -> Delta {
        let mut spawns: Vec<EntityId> = self.entities().collect();
        spawns.sort_unstable();
        let mut delta = Delta {
            base_tick: 0,
            tick,
            spawns,
            ..Delta::default()
        };
        for (descriptor, column) in self.registry().descriptors().iter().zip(self.columns()) {
            if column.len() == 0 {
                continue;
            }
            let mut batch = SetBatch::for_type(descriptor, column.len());
            let rows: Vec<u32> = column
                .entity_order()
                .unwrap_or_else(|| (0..column.len() as u32).collect());
            for (i, &row) in rows.iter().enumerate() {
                let row = row as usize;
                batch.push(i, column.entity(row), column.value(row), true);
            }
            delta.descriptors.push(descriptor.clone());
            delta.sets.push(batch);
        }
        delta
    }
}

/// What [`World::walk_journal`] found.
#[derive(Default)]
struct JournalWalk {
    spawns: Vec<EntityId>,
    /// (column, entity, row), sorted.
    sets: Vec<(u32, EntityId, u32)>,
    removes: Vec<(usize, EntityId)>,
    despawns: Vec<EntityId>,
}

/// The changed rows of one column, read when the frame is encoded.
struct ColumnBatch<'w> {
    component: ComponentId,
    variable: bool,
    column: &'w Column,
    /// (column, entity, row), ascending entity.
    keys: &'w [(u32, EntityId, u32)],
    since: u64,
}

impl BatchSource for ColumnBatch<'_> {
    fn component(&self) -> ComponentId {
        self.component
    }

    fn count(&self) -> usize {
        self.keys.len()
    }

    fn entity(&self, i: usize) -> EntityId {
        self.keys[i].1
    }

    fn value(&self, i: usize) -> &[u8] {
        self.column.value(self.keys[i].2 as usize)
    }

    fn inserted(&self, i: usize) -> bool {
        self.column.added(self.keys[i].2 as usize) > self.since
    }

    fn variable(&self) -> bool {
        self.variable
    }
}

/// A delta frame encoded straight from a world's columns ([`World::encode_delta_since`],
/// [`DeltaTracker::diff_encoded`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedDelta {
    /// The encoded `DeltaFrame` message.
    pub bytes: Vec<u8>,
    /// The tick the receiver is assumed to hold.
    pub base_tick: u64,
    /// The tick the frame brings the receiver to.
    pub tick: u64,
    /// Number of value changes (inserts and updates).
    pub changes: usize,
    /// Whether the frame changes nothing (descriptors alone change nothing).
    pub empty: bool,
}

/// The keys a delta would carry, without values ([`World::changed_keys_since`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangedKeys {
    /// The tick the changes bring a receiver to.
    pub tick: u64,
    /// Entities created.
    pub spawns: Vec<EntityId>,
    /// Entities destroyed.
    pub despawns: Vec<EntityId>,
    /// Values inserted or changed, as (component, entity).
    pub sets: Vec<(ComponentId, EntityId)>,
    /// Components removed from live entities, as (component, entity).
    pub removes: Vec<(ComponentId, EntityId)>,
}

impl SetBatch {
    fn for_type(descriptor: &ComponentDescriptor, count: usize) -> Self {
        let variable = matches!(descriptor.layout, Layout::Variable { .. });
        SetBatch {
            component: descriptor.id,
            entities: Vec::with_capacity(count),
            data: Vec::with_capacity(if variable {
                0
            } else {
                count * descriptor.layout.max_bytes() as usize
            }),
            lengths: variable.then(|| Vec::with_capacity(count)),
            inserted: vec![0; count.div_ceil(8)],
        }
    }

    fn push(&mut self, i: usize, entity: EntityId, bytes: &[u8], inserted: bool) {
        self.entities.push(entity);
        self.data.extend_from_slice(bytes);
        if let Some(lengths) = &mut self.lengths {
            lengths.push(bytes.len() as u32);
        }
        if inserted {
            self.inserted[i / 8] |= 1 << (i % 8);
        }
    }
}

/// Produces consecutive deltas for one receiver over an in-order, reliable transport:
/// each frame covers the ticks since the previous one, and each component type's
/// descriptor is sent once, in the first frame that carries its values.
#[derive(Clone, Debug, Default)]
pub struct DeltaTracker {
    last_tick: u64,
    advertised: FxHashSet<ComponentId>,
}

impl DeltaTracker {
    /// A tracker whose first frame carries the whole world.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker for a receiver that applied a snapshot taken at `tick`, which carried the
    /// descriptors of `known` types.
    pub fn starting_at(tick: u64, known: impl IntoIterator<Item = ComponentId>) -> Self {
        DeltaTracker {
            last_tick: tick,
            advertised: known.into_iter().collect(),
        }
    }

    /// The tick of the last frame produced (0 before the first).
    pub fn last_tick(&self) -> u64 {
        self.last_tick
    }

    /// The next frame: what changed since the last one.
    pub fn diff(&mut self, world: &World) -> Result<Delta, DeltaError> {
        let mut delta = world.delta_since(self.last_tick)?;
        delta
            .descriptors
            .retain(|d| !self.advertised.contains(&d.id));
        self.advertised
            .extend(delta.descriptors.iter().map(|d| d.id));
        self.last_tick = delta.tick;
        Ok(delta)
    }

    /// The next frame, encoded straight from the world's columns with `encoder`: the bytes
    /// of `diff(world)?.encode()` without building the [`Delta`] (see
    /// [`World::encode_delta_since`]).
    pub fn diff_encoded(
        &mut self,
        world: &World,
        encoder: &mut Encoder,
    ) -> Result<EncodedDelta, DeltaError> {
        let advertised = &mut self.advertised;
        let frame = world.encode_delta_since(self.last_tick, encoder, |id| {
            // Known, or announced by this frame.
            !advertised.insert(id)
        })?;
        self.last_tick = frame.tick;
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> (World, ComponentId, ComponentId) {
        let mut world = World::default();
        let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
        let velocity = world.register("test.Velocity", Layout::Fixed(12)).unwrap();
        (world, position, velocity)
    }

    fn kinds(delta: &Delta) -> Vec<(ChangeKind, ComponentId, EntityId)> {
        delta
            .changes()
            .map(|c| (c.kind, c.component, c.entity))
            .collect()
    }

    #[test]
    fn delta_tracker_detects_insert_update_remove() {
        let (mut world, position, _) = world();
        let mut tracker = DeltaTracker::new();
        let e = world.spawn().unwrap();
        world.set(e, position, &[1; 12]).unwrap();
        let delta = tracker.diff(&world).unwrap();
        assert_eq!(delta.spawns, vec![e]);
        assert_eq!(kinds(&delta), vec![(ChangeKind::Insert, position, e)]);

        world.set(e, position, &[2; 12]).unwrap();
        let delta = tracker.diff(&world).unwrap();
        assert_eq!(kinds(&delta), vec![(ChangeKind::Update, position, e)]);
        assert_eq!(delta.changes().next().unwrap().bytes, &[2; 12]);
        assert!(delta.spawns.is_empty());

        world.remove(e, position).unwrap();
        let delta = tracker.diff(&world).unwrap();
        assert!(delta.sets.is_empty());
        assert_eq!(delta.removals().collect::<Vec<_>>(), vec![(position, e)]);
    }

    #[test]
    fn delta_tracker_stable_under_no_changes() {
        let (mut world, position, _) = world();
        let mut tracker = DeltaTracker::new();
        let e = world.spawn().unwrap();
        world.set(e, position, &[1; 12]).unwrap();
        assert!(!tracker.diff(&world).unwrap().is_empty());
        assert!(tracker.diff(&world).unwrap().is_empty());
        // Writing identical bytes is not a change.
        world.set(e, position, &[1; 12]).unwrap();
        world.advance();
        assert!(tracker.diff(&world).unwrap().is_empty());
    }

    #[test]
    fn multiple_entities_tracked_independently() {
        let (mut world, position, _) = world();
        let mut tracker = DeltaTracker::new();
        let entities: Vec<EntityId> = (0..3).map(|_| world.spawn().unwrap()).collect();
        for (i, &e) in entities.iter().enumerate() {
            world.set(e, position, &[i as u8; 12]).unwrap();
        }
        tracker.diff(&world).unwrap();
        world.set(entities[1], position, &[9; 12]).unwrap();
        let delta = tracker.diff(&world).unwrap();
        assert_eq!(
            kinds(&delta),
            vec![(ChangeKind::Update, position, entities[1])]
        );
        assert_eq!(delta.changes().next().unwrap().bytes, &[9; 12]);
    }

    #[test]
    fn delta_tracker_advertises_component_once() {
        let (mut world, position, velocity) = world();
        let mut tracker = DeltaTracker::new();
        let a = world.spawn().unwrap();
        world.set(a, position, &[1; 12]).unwrap();
        let first = tracker.diff(&world).unwrap();
        assert_eq!(
            first.descriptors.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![position]
        );
        let b = world.spawn().unwrap();
        world.set(b, position, &[2; 12]).unwrap();
        world.set(b, velocity, &[3; 12]).unwrap();
        let second = tracker.diff(&world).unwrap();
        assert_eq!(
            second.descriptors.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![velocity]
        );
        world.set(a, velocity, &[4; 12]).unwrap();
        let third = tracker.diff(&world).unwrap();
        assert!(third.descriptors.is_empty());
        assert_eq!(third.change_count(), 1);
    }

    #[test]
    fn delta_tracker_handles_despawn_of_multiple_entities() {
        let (mut world, position, velocity) = world();
        let mut tracker = DeltaTracker::new();
        let entities: Vec<EntityId> = (0..4).map(|_| world.spawn().unwrap()).collect();
        for &e in &entities {
            world.set(e, position, &[1; 12]).unwrap();
            world.set(e, velocity, &[2; 12]).unwrap();
        }
        tracker.diff(&world).unwrap();
        world.despawn(entities[0]).unwrap();
        world.despawn(entities[2]).unwrap();
        world.despawn(entities[3]).unwrap();
        let delta = tracker.diff(&world).unwrap();
        assert_eq!(delta.despawns, vec![entities[0], entities[2], entities[3]]);
        assert!(delta.sets.is_empty() && delta.removes.is_empty());
        assert_eq!(world.stats().components, 2);
    }

    #[test]
    fn frame_order_follows_registry_then_entity() {
        let (mut world, position, velocity) = world();
        let mut tracker = DeltaTracker::new();
        let entities: Vec<EntityId> = (0..5).map(|_| world.spawn().unwrap()).collect();
        // Written in scrambled order; the frame is sorted.
        for &e in entities.iter().rev() {
            world.set(e, velocity, &[1; 12]).unwrap();
            world.set(e, position, &[1; 12]).unwrap();
        }
        let delta = tracker.diff(&world).unwrap();
        let order: Vec<(ComponentId, EntityId)> =
            delta.changes().map(|c| (c.component, c.entity)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(delta.spawns, entities);
    }

    #[test]
    fn changes_within_a_window_collapse_to_their_net_effect() {
        let (mut world, position, velocity) = world();
        let e = world.spawn().unwrap();
        world.set(e, position, &[1; 12]).unwrap();
        world.set(e, velocity, &[1; 12]).unwrap();
        let base = world.advance();
        // Spawned and despawned inside the window: only its despawn travels (a receiver
        // acked at the base may have seen it in a later frame).
        let ghost = world.spawn().unwrap();
        world.set(ghost, position, &[5; 12]).unwrap();
        world.despawn(ghost).unwrap();
        // Changed several times: one update with the final bytes.
        for v in 2..6u8 {
            world.set(e, position, &[v; 12]).unwrap();
            world.advance();
        }
        // Removed then re-added: an insert of the new value, no removal.
        world.remove(e, velocity).unwrap();
        world.advance();
        world.set(e, velocity, &[8; 12]).unwrap();
        let delta = world.delta_since(base - 1).unwrap();
        assert!(delta.spawns.is_empty() && delta.removes.is_empty());
        assert_eq!(delta.despawns, vec![ghost]);
        let mut changes: Vec<_> = delta
            .changes()
            .map(|c| (c.kind, c.component, c.bytes.to_vec()))
            .collect();
        // Registry order is ascending id.
        changes.sort_by_key(|c| c.1 != position);
        assert_eq!(
            changes,
            vec![
                (ChangeKind::Update, position, vec![5; 12]),
                (ChangeKind::Insert, velocity, vec![8; 12]),
            ]
        );
    }

    #[test]
    fn writes_after_a_frame_land_in_the_next_tick() {
        let (mut world, position, _) = world();
        let e = world.spawn().unwrap();
        world.set(e, position, &[1; 12]).unwrap();
        let mut tracker = DeltaTracker::new();
        let first = tracker.diff(&world).unwrap();
        // Same engine frame, no advance(): must not be lost.
        world.set(e, position, &[2; 12]).unwrap();
        assert!(world.tick() > first.tick);
        let second = tracker.diff(&world).unwrap();
        assert_eq!(second.changes().next().unwrap().bytes, &[2; 12]);
    }

    #[test]
    fn history_bounds_are_errors() {
        let mut world = World::new(crate::world::WorldConfig {
            history_ticks: 4,
            ..Default::default()
        });
        let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
        let e = world.spawn().unwrap();
        world.set(e, position, &[1; 12]).unwrap();
        for _ in 0..10 {
            world.advance();
        }
        let err = world.delta_since(2).unwrap_err();
        assert!(
            matches!(err, DeltaError::HistoryTruncated { since: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("snapshot"));
        // From nothing is always possible.
        assert_eq!(world.delta_since(0).unwrap().change_count(), 1);
        let err = world.delta_since(world.tick() + 5).unwrap_err();
        assert!(matches!(err, DeltaError::FutureBase { .. }));
    }

    #[test]
    fn history_is_bounded_by_entries_too() {
        let mut world = World::new(crate::world::WorldConfig {
            history_entries: 100,
            ..Default::default()
        });
        let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
        let entities: Vec<EntityId> = (0..30).map(|_| world.spawn().unwrap()).collect();
        for round in 0..20u8 {
            for &e in &entities {
                world.set(e, position, &[round; 12]).unwrap();
            }
            world.advance();
        }
        let stats = world.stats();
        assert!(
            stats.journal_entries <= 100,
            "{} entries",
            stats.journal_entries
        );
        // The newest ticks are still served; older ones ask for a snapshot.
        let recent = world.tick() - 2;
        assert_eq!(world.delta_since(recent).unwrap().change_count(), 30);
        assert!(matches!(
            world.delta_since(2),
            Err(DeltaError::HistoryTruncated { .. })
        ));
        assert_eq!(stats.history_floor, world.stats().history_floor);
    }

    /// The keys-only walk lists exactly the keys the delta carries, over every base.
    #[test]
    fn changed_keys_are_the_keys_of_the_delta() {
        let (mut world, position, velocity) = world();
        let mut live = Vec::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for t in 0..60u64 {
            if live.len() < 3 || next() % 3 == 0 {
                live.push(world.spawn().unwrap());
            }
            let e = live[(next() % live.len() as u64) as usize];
            let c = if next() % 2 == 0 { position } else { velocity };
            match next() % 4 {
                0 => {
                    let _ = world.remove(e, c);
                }
                1 if live.len() > 2 => {
                    let gone = live.swap_remove((next() % live.len() as u64) as usize);
                    world.despawn(gone).unwrap();
                }
                _ => {
                    world.set(e, c, &[t as u8; 12]).unwrap();
                }
            }
            world.advance();
            for since in [0, t.saturating_sub(3), t] {
                let delta = world.delta_since(since).unwrap();
                let keys = world.changed_keys_since(since).unwrap();
                let mut sets: Vec<_> = delta.changes().map(|c| (c.component, c.entity)).collect();
                let mut listed = keys.sets.clone();
                sets.sort_unstable();
                listed.sort_unstable();
                assert_eq!(listed, sets, "since {since}");
                let mut removes: Vec<_> = delta.removals().collect();
                let mut listed = keys.removes.clone();
                removes.sort_unstable();
                listed.sort_unstable();
                assert_eq!(listed, removes, "since {since}");
                let mut spawns = keys.spawns.clone();
                spawns.sort_unstable();
                assert_eq!(spawns, delta.spawns, "since {since}");
                assert_eq!(keys.despawns, delta.despawns, "since {since}");
                assert_eq!(keys.tick, delta.tick);
            }
        }
    }

    /// Encoding straight from the columns gives the bytes of the [`Delta`] path, over
    /// histories whose removals move rows and whose late registrations shift columns
    /// (the journal's hints go stale), with fixed and variable layouts, for in-order
    /// frames and for older bases.
    #[test]
    fn encoding_from_columns_matches_the_delta_path() {
        let mut world = World::default();
        let mut types = vec![
            world.register("test.Position", Layout::Fixed(12)).unwrap(),
            world
                .register("test.Name", Layout::Variable { max: 40 })
                .unwrap(),
        ];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut ours, mut theirs) = (DeltaTracker::new(), DeltaTracker::new());
        let mut encoder = Encoder::new();
        let mut live: Vec<EntityId> = Vec::new();
        let mut removed = 0;
        for t in 0..300u64 {
            if t == 120 {
                // Sorts before the others: every column index logged so far shifts.
                let early = world.register("test.Health", Layout::Fixed(3)).unwrap();
                assert_eq!(world.registry().position(early), Some(0));
                types.push(early);
            }
            for _ in 0..1 + next() % 6 {
                if live.len() < 4 || next() % 5 == 0 {
                    live.push(world.spawn().unwrap());
                    continue;
                }
                let e = live[(next() % live.len() as u64) as usize];
                let c = types[(next() % types.len() as u64) as usize];
                match next() % 8 {
                    0 => removed += usize::from(world.remove(e, c).unwrap()),
                    1 if live.len() > 4 => {
                        let gone = live.swap_remove((next() % live.len() as u64) as usize);
                        world.despawn(gone).unwrap();
                    }
                    _ => {
                        let len = match world.registry().get(c).unwrap().layout {
                            Layout::Fixed(n) => n as usize,
                            Layout::Variable { max } => (next() % u64::from(max + 1)) as usize,
                        };
                        let value: Vec<u8> = (0..len).map(|i| (t as u8) ^ i as u8).collect();
                        world.set(e, c, &value).unwrap();
                    }
                }
            }
            if next() % 3 == 0 {
                let expected = theirs.diff(&world).unwrap();
                let frame = ours.diff_encoded(&world, &mut encoder).unwrap();
                assert_eq!(frame.bytes, expected.encode(), "tick {t}");
                assert_eq!(
                    (frame.base_tick, frame.tick, frame.changes, frame.empty),
                    (
                        expected.base_tick,
                        expected.tick,
                        expected.change_count(),
                        expected.is_empty()
                    )
                );
                for since in [0, ours.last_tick().saturating_sub(7)] {
                    // The keys by brute force: every value stamped after `since`.
                    let mut scanned = Vec::new();
                    for d in world.registry().descriptors() {
                        for (e, _) in world.component_entries(d.id).unwrap() {
                            if world.changed_at(e, d.id).unwrap() > since {
                                scanned.push((d.id, e));
                            }
                        }
                    }
                    scanned.sort_by_key(|&(c, e)| (world.registry().position(c), e));
                    let mut keys = world.changed_keys_since(since).unwrap().sets;
                    // From nothing the keys come in storage order.
                    keys.sort_by_key(|&(c, e)| (world.registry().position(c), e));
                    assert_eq!(keys, scanned, "tick {t}, since {since}");
                    let delta = world.delta_since(since).unwrap();
                    let frame = world
                        .encode_delta_since(since, &mut encoder, |_| false)
                        .unwrap();
                    assert_eq!(frame.bytes, delta.encode(), "tick {t}, since {since}");
                }
            }
            world.advance();
        }
        assert!(removed > 10, "{removed} removals");
        assert!(matches!(
            world.encode_delta_since(world.tick() + 1, &mut encoder, |_| false),
            Err(DeltaError::FutureBase { .. })
        ));
    }
}
