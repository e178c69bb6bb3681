//! The authoritative world: entity liveness (hecs), component values as byte blobs in
//! dense per-type columns, change ticks and the change journal.

mod column;
mod entity;
mod fields;
mod journal;

use std::sync::atomic::{AtomicBool, Ordering};

use rustc_hash::FxHashMap;

pub use column::Change;
pub(crate) use column::Column;
pub use entity::{EntityId, PeerId, MAX_ENTITY_COUNTER};
pub(crate) use journal::{Entry, EntryKind, Journal};

use crate::fields::{FieldError, Scratch};
use crate::hash::{hash64, mix64};
use crate::registry::{ComponentDescriptor, ComponentId, Layout, Registry, RegistryError};

/// Settings of a [`World`].
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// The peer this world spawns entities for (high 16 bits of their ids).
    pub local_peer: PeerId,
    /// How many ticks of change history to keep: `delta_since(t)` works for any `t` in the
    /// last `history_ticks` ticks (and for 0); older bases need a snapshot.
    pub history_ticks: u64,
    /// Most change records to keep (32 bytes each); when exceeded, the oldest ticks are
    /// forgotten first. Bounds memory when much of a large world changes every tick.
    pub history_entries: usize,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            local_peer: 0,
            history_ticks: 1024,
            history_entries: 1 << 20,
        }
    }
}

/// Why a world operation was refused. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    /// Registration failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The component id was never registered in this world.
    #[error("unknown component {0}: register it first")]
    UnknownComponent(ComponentId),
    /// The entity was never spawned here, or is despawned.
    #[error("entity {0} is not alive (never spawned here, or despawned)")]
    DeadEntity(EntityId),
    /// The value does not fit the component's layout.
    #[error("value of {len} bytes for component {name:?}, whose layout is {layout}")]
    WrongSize {
        /// The component name.
        name: String,
        /// Its layout.
        layout: Layout,
        /// The length given.
        len: usize,
    },
    /// Batch writes need a fixed layout.
    #[error("component {name:?} has a variable layout; batch writes need a fixed size")]
    BatchNeedsFixedLayout {
        /// The component name.
        name: String,
    },
    /// The stride is shorter than one value.
    #[error("batch stride {stride} is smaller than the {size}-byte values of {name:?}")]
    StrideTooSmall {
        /// The component name.
        name: String,
        /// The stride given.
        stride: usize,
        /// The value size.
        size: usize,
    },
    /// The value buffer ends before the last value.
    #[error("batch of {count} values with stride {stride} needs {needed} bytes, got {got}")]
    BatchTooShort {
        /// Number of entities.
        count: usize,
        /// The stride given.
        stride: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// A value for a component with declared fields that cannot be quantised (NaN or
    /// infinity, a scalar out of its range, a position too far for its precision).
    #[error("value for component {name:?}: {source}")]
    NotQuantisable {
        /// The component name.
        name: String,
        /// What was wrong.
        source: FieldError,
    },
    /// This peer has used all 2^48 - 1 entity ids.
    #[error("peer {0} has no entity ids left")]
    IdsExhausted(PeerId),
    /// The entity belongs to another peer (or this peer has no id yet).
    #[error("entity {entity} belongs to peer {}, not to this peer ({peer})", entity.creator())]
    NotOwner {
        /// The entity.
        entity: EntityId,
        /// This peer (65535 before it has an id).
        peer: PeerId,
    },
}

/// The hecs record of an entity: its network id, spawn tick, how many components it
/// holds (snapshots list the entities that hold none), and on a replica the newest tick a
/// peer's message confirmed it alive at.
struct NetEntity {
    id: EntityId,
    spawned: u64,
    confirmed: u64,
    components: u32,
}

/// How a write is stamped.
#[derive(Clone, Copy)]
pub(crate) enum Stamp {
    /// A change made here, now: stamped with the current tick and journaled.
    Local,
    /// A change received from a peer at its tick: applied as is, not journaled.
    Remote(u64),
}

/// Summary of a batch write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Values the entities did not hold before.
    pub inserted: usize,
    /// Values whose bytes changed.
    pub updated: usize,
    /// Values written with identical bytes.
    pub unchanged: usize,
}

/// Counts and memory of a world, for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorldStats {
    /// Live entities.
    pub entities: usize,
    /// Stored (entity, component) values.
    pub components: usize,
    /// Registered component types.
    pub component_types: usize,
    /// Journal entries held for deltas.
    pub journal_entries: usize,
    /// Oldest base tick `delta_since` accepts besides 0.
    pub history_floor: u64,
    /// Approximate heap bytes of the value columns (values, ticks, row index).
    pub column_bytes: usize,
    /// Approximate heap bytes of the change journal.
    pub journal_bytes: usize,
    /// Approximate heap bytes of columns, entity index and journal together.
    pub heap_bytes: usize,
}

/// A world of entities holding component values as opaque bytes.
///
/// Every real change is stamped with the current tick. Taking a snapshot or delta closes
/// the current tick: a write after it lands in the next tick, so a frame taken at tick T
/// is final for T and a delta since T never misses a write.
pub struct World {
    config: WorldConfig,
    registry: Registry,
    /// One column per registered type, in registry order.
    columns: Vec<Column>,
    ecs: hecs::World,
    index: FxHashMap<EntityId, hecs::Entity>,
    next_counter: u64,
    tick: u64,
    /// Set when a frame was taken at the current tick (interior: frames borrow `&self`).
    sealed: AtomicBool,
    journal: Journal,
    /// Reused buffers for quantising values of components with declared fields.
    quantised: Vec<u8>,
    scratch: Scratch,
}

impl Default for World {
    fn default() -> Self {
        World::new(WorldConfig::default())
    }
}

impl World {
    /// An empty world at tick 1.
    pub fn new(config: WorldConfig) -> Self {
        World {
            config,
            registry: Registry::new(),
            columns: Vec::new(),
            ecs: hecs::World::new(),
            index: FxHashMap::default(),
            next_counter: 1,
            tick: 1,
            sealed: AtomicBool::new(false),
            quantised: Vec::new(),
            scratch: Scratch::default(),
            journal: Journal::default(),
        }
    }

    /// Makes `peer` the creator of the entities this world spawns from now on, with
    /// counters from `next_counter` up (ids of that peer it used before are never reused).
    pub(crate) fn set_local_peer(&mut self, peer: PeerId, next_counter: u64) {
        self.config.local_peer = peer;
        self.next_counter = next_counter.max(1);
    }

    /// The settings this world was made with.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// Registers a component type (see [`Registry::register`]).
    pub fn register(&mut self, name: &str, layout: Layout) -> Result<ComponentId, RegistryError> {
        self.register_descriptor(ComponentDescriptor {
            id: ComponentId::of_name(name),
            name: name.to_owned(),
            layout,
        })
    }

    /// Registers a descriptor received from a peer (see [`Registry::insert`]).
    pub fn register_descriptor(
        &mut self,
        descriptor: ComponentDescriptor,
    ) -> Result<ComponentId, RegistryError> {
        if let Some(id) = self.registry.check(&descriptor)? {
            return Ok(id);
        }
        let layout = descriptor.layout;
        let id = self.registry.insert(descriptor)?;
        let at = self.registry.position(id).expect("just registered");
        self.columns.insert(at, Column::new(layout));
        Ok(id)
    }

    /// The component types of this world.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The current tick: changes made now are stamped with it.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Closes the current tick and returns the new one.
    pub fn advance(&mut self) -> u64 {
        self.tick += 1;
        *self.sealed.get_mut() = false;
        let floor = self.tick.saturating_sub(self.config.history_ticks.max(1));
        self.journal.trim(floor);
        // The tick just closed stays whatever its size: its delta has not been taken yet.
        self.journal
            .trim_to_entries(self.config.history_entries, self.tick.saturating_sub(2));
        self.tick
    }

    /// Marks the current tick as read by a frame and returns it.
    pub(crate) fn seal(&self) -> u64 {
        self.sealed.store(true, Ordering::Relaxed);
        self.tick
    }

    /// The tick a local change made now is stamped with.
    fn write_tick(&mut self) -> u64 {
        if *self.sealed.get_mut() {
            self.advance();
        }
        self.tick
    }

    /// Creates an entity in this peer's id range.
    pub fn spawn(&mut self) -> Result<EntityId, WorldError> {
        let mut id = EntityId::new(self.config.local_peer, self.next_counter)
            .ok_or(WorldError::IdsExhausted(self.config.local_peer))?;
        // An id of this peer may be here already (adopted from a peer that knew it).
        while self.index.contains_key(&id) {
            self.next_counter += 1;
            id = EntityId::new(self.config.local_peer, self.next_counter)
                .ok_or(WorldError::IdsExhausted(self.config.local_peer))?;
        }
        self.next_counter += 1;
        self.spawn_with_id(id, Stamp::Local);
        Ok(id)
    }

    /// Makes `id` alive (it must not be); stamped as `stamp` says.
    pub(crate) fn spawn_with_id(&mut self, id: EntityId, stamp: Stamp) {
        let tick = match stamp {
            Stamp::Local => self.write_tick(),
            Stamp::Remote(tick) => tick,
        };
        let handle = self.ecs.spawn((NetEntity {
            id,
            spawned: tick,
            confirmed: tick,
            components: 0,
        },));
        self.index.insert(id, handle);
        if let Stamp::Local = stamp {
            self.journal
                .record(Entry::entity(tick, id, EntryKind::Spawn));
        }
    }

    /// Destroys an entity and every component it holds.
    pub fn despawn(&mut self, entity: EntityId) -> Result<(), WorldError> {
        self.despawn_stamped(entity, Stamp::Local)
    }

    pub(crate) fn despawn_stamped(
        &mut self,
        entity: EntityId,
        stamp: Stamp,
    ) -> Result<(), WorldError> {
        let handle = *self
            .index
            .get(&entity)
            .ok_or(WorldError::DeadEntity(entity))?;
        let seq = self.journal.next_seq();
        for column in &mut self.columns {
            column.remove(entity, seq);
        }
        self.index.remove(&entity);
        // The handle came from the index, which holds live handles only.
        let _ = self.ecs.despawn(handle);
        if let Stamp::Local = stamp {
            let tick = self.write_tick();
            self.journal
                .record(Entry::entity(tick, entity, EntryKind::Despawn));
        }
        Ok(())
    }

    fn count_components(&mut self, entity: EntityId, delta: i32) {
        if let Some(&handle) = self.index.get(&entity) {
            if let Ok(mut record) = self.ecs.get::<&mut NetEntity>(handle) {
                record.components = record.components.saturating_add_signed(delta);
            }
        }
    }

    /// Live entities that hold no component, ascending.
    pub(crate) fn bare_entities(&self) -> Vec<EntityId> {
        let mut bare: Vec<EntityId> = self
            .ecs
            .iter()
            .filter_map(|e| {
                e.get::<&NetEntity>()
                    .filter(|n| n.components == 0)
                    .map(|n| n.id)
            })
            .collect();
        bare.sort_unstable();
        bare
    }

    /// Applies a value received from a peer at `tick` unless the held value is as new:
    /// latest-wins per (entity, component). `None` when the held value is newer or as new.
    pub(crate) fn apply_remote_value(
        &mut self,
        at: usize,
        entity: EntityId,
        bytes: &[u8],
        tick: u64,
    ) -> Option<Change> {
        let column = &mut self.columns[at];
        if let Some(row) = column.row(entity) {
            if column.changed(row) >= tick {
                return None;
            }
            let change = column.update(row, bytes, tick);
            // Identical bytes still move the tick, so an older frame cannot win later.
            column.stamp(row, tick);
            return Some(change);
        }
        Some(self.set_at(at, entity, bytes, Stamp::Remote(tick)))
    }

    /// Stamps the values `entity` holds (of `component`, or all) as received at `tick`,
    /// without changing them: a replica that stops writing them lets a peer's newer ones in.
    pub(crate) fn restamp_remote(
        &mut self,
        entity: EntityId,
        component: Option<ComponentId>,
        tick: u64,
    ) {
        for (descriptor, column) in self.registry.descriptors().iter().zip(&mut self.columns) {
            if component.is_some_and(|c| c != descriptor.id) {
                continue;
            }
            if let Some(row) = column.row(entity) {
                column.set_stamp(row, tick);
            }
        }
    }

    /// Notes that a peer's message at `tick` shows `entity` alive; false when it is not
    /// alive here.
    pub(crate) fn confirm_remote(&mut self, entity: EntityId, tick: u64) -> bool {
        let Some(&handle) = self.index.get(&entity) else {
            return false;
        };
        if let Ok(mut record) = self.ecs.get::<&mut NetEntity>(handle) {
            record.confirmed = record.confirmed.max(tick);
        }
        true
    }

    /// The newest tick of a peer message that named `entity` (`None`: not alive).
    pub(crate) fn confirmed(&self, entity: EntityId) -> Option<u64> {
        let handle = *self.index.get(&entity)?;
        self.ecs
            .get::<&NetEntity>(handle)
            .ok()
            .map(|record| record.confirmed)
    }

    /// Live entities no peer message confirmed at or after `tick`, ascending.
    pub(crate) fn unconfirmed_since(&self, tick: u64) -> Vec<EntityId> {
        let mut stale: Vec<EntityId> = self
            .ecs
            .iter()
            .filter_map(|e| {
                e.get::<&NetEntity>()
                    .filter(|n| n.confirmed < tick)
                    .map(|n| n.id)
            })
            .collect();
        stale.sort_unstable();
        stale
    }

    fn spawn_tick(&self, handle: hecs::Entity) -> u64 {
        self.ecs
            .get::<&NetEntity>(handle)
            .map(|e| e.spawned)
            .unwrap_or(0)
    }

    /// Whether the entity is alive here.
    pub fn is_alive(&self, entity: EntityId) -> bool {
        self.index.contains_key(&entity)
    }

    /// The tick the entity was spawned at, if alive.
    pub fn spawned_at(&self, entity: EntityId) -> Option<u64> {
        self.index
            .get(&entity)
            .map(|&handle| self.spawn_tick(handle))
    }

    /// How many entities are alive.
    pub fn entity_count(&self) -> usize {
        self.index.len()
    }

    /// Live entities, in no particular order.
    pub fn entities(&self) -> impl Iterator<Item = EntityId> + '_ {
        self.ecs
            .iter()
            .filter_map(|e| e.get::<&NetEntity>().map(|n| n.id))
    }

    /// Writes a component value. Identical bytes are not a change.
    pub fn set(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        bytes: &[u8],
    ) -> Result<Change, WorldError> {
        let at = self.check_write(entity, component, bytes.len())?;
        if self.registry.fields(component).is_none() {
            return Ok(self.set_at(at, entity, bytes, Stamp::Local));
        }
        let mut value = std::mem::take(&mut self.quantised);
        value.clear();
        value.extend_from_slice(bytes);
        let result = self
            .quantise(at, &mut value)
            .map(|()| self.set_at(at, entity, &value, Stamp::Local));
        self.quantised = value;
        result
    }

    /// Writes `count = entities.len()` values of a fixed-size component in one call; value
    /// `i` is `values[i * stride ..][.. size]`. All-or-nothing: every argument is checked
    /// before anything is written.
    pub fn set_batch(
        &mut self,
        component: ComponentId,
        entities: &[EntityId],
        values: &[u8],
        stride: usize,
    ) -> Result<BatchOutcome, WorldError> {
        let at = self.column_index(component)?;
        let descriptor = &self.registry.descriptors()[at];
        let Layout::Fixed(size) = descriptor.layout else {
            return Err(WorldError::BatchNeedsFixedLayout {
                name: descriptor.name.clone(),
            });
        };
        let size = size as usize;
        if stride < size {
            return Err(WorldError::StrideTooSmall {
                name: descriptor.name.clone(),
                stride,
                size,
            });
        }
        let count = entities.len();
        let needed = match count {
            0 => 0,
            n => (n - 1)
                .checked_mul(stride)
                .and_then(|b| b.checked_add(size))
                .unwrap_or(usize::MAX),
        };
        if values.len() < needed {
            return Err(WorldError::BatchTooShort {
                count,
                stride,
                needed,
                got: values.len(),
            });
        }
        if let Some(&dead) = entities.iter().find(|e| !self.index.contains_key(e)) {
            return Err(WorldError::DeadEntity(dead));
        }
        // Declared fields: every value is quantised (and checked) before any is written.
        let mut quantised = std::mem::take(&mut self.quantised);
        quantised.clear();
        let (values, stride) = if self.registry.fields(component).is_some() {
            for i in 0..count {
                quantised.extend_from_slice(&values[i * stride..i * stride + size]);
            }
            if let Err(e) = self.quantise(at, &mut quantised) {
                self.quantised = quantised;
                return Err(e);
            }
            (&quantised[..], size)
        } else {
            (values, stride)
        };
        let mut outcome = BatchOutcome::default();
        for (i, &entity) in entities.iter().enumerate() {
            let value = &values[i * stride..i * stride + size];
            match self.set_at(at, entity, value, Stamp::Local) {
                Change::Inserted => outcome.inserted += 1,
                Change::Updated => outcome.updated += 1,
                Change::Unchanged => outcome.unchanged += 1,
            }
        }
        self.quantised = quantised;
        Ok(outcome)
    }

    /// Checks a single write; returns the column index.
    pub(crate) fn check_write(
        &self,
        entity: EntityId,
        component: ComponentId,
        len: usize,
    ) -> Result<usize, WorldError> {
        let at = self.column_index(component)?;
        let descriptor = &self.registry.descriptors()[at];
        if !descriptor.layout.accepts(len) {
            return Err(WorldError::WrongSize {
                name: descriptor.name.clone(),
                layout: descriptor.layout,
                len,
            });
        }
        if !self.index.contains_key(&entity) {
            return Err(WorldError::DeadEntity(entity));
        }
        Ok(at)
    }

    /// Writes a checked value into column `at`.
    pub(crate) fn set_at(
        &mut self,
        at: usize,
        entity: EntityId,
        bytes: &[u8],
        stamp: Stamp,
    ) -> Change {
        let tick = match stamp {
            Stamp::Local => self.write_tick(),
            Stamp::Remote(tick) => tick,
        };
        let column = &mut self.columns[at];
        let (change, row, before) = match column.row(entity) {
            Some(row) => {
                let before = column.changed(row);
                (column.update(row, bytes, tick), row, Some(before))
            }
            None => {
                let (change, row) = column.insert(entity, bytes, tick);
                (change, row, None)
            }
        };
        if change == Change::Inserted {
            self.count_components(entity, 1);
        }
        // One journal entry per key per tick: a key changed again in the same tick is
        // already logged.
        if let Stamp::Local = stamp {
            if change != Change::Unchanged && before != Some(tick) {
                let component = self.registry.descriptors()[at].id;
                self.journal.record(Entry {
                    tick,
                    entity,
                    component,
                    at: at as u32,
                    row: row as u32,
                    kind: EntryKind::Set,
                });
            }
        }
        change
    }

    /// Removes a component from an entity; `Ok(false)` when it did not hold it.
    pub fn remove(&mut self, entity: EntityId, component: ComponentId) -> Result<bool, WorldError> {
        let at = self.column_index(component)?;
        if !self.index.contains_key(&entity) {
            return Err(WorldError::DeadEntity(entity));
        }
        Ok(self.remove_at(at, entity, Stamp::Local))
    }

    pub(crate) fn remove_at(&mut self, at: usize, entity: EntityId, stamp: Stamp) -> bool {
        if !self.columns[at].remove(entity, self.journal.next_seq()) {
            return false;
        }
        self.count_components(entity, -1);
        if let Stamp::Local = stamp {
            let tick = self.write_tick();
            let component = self.registry.descriptors()[at].id;
            self.journal.record(Entry {
                tick,
                entity,
                component,
                at: at as u32,
                row: 0,
                kind: EntryKind::Remove,
            });
        }
        true
    }

    /// The value of a component, if the entity holds it.
    pub fn get(&self, entity: EntityId, component: ComponentId) -> Option<&[u8]> {
        let column = &self.columns[self.registry.position(component)?];
        column.row(entity).map(|row| column.value(row))
    }

    /// The tick of the last real change of a value, if the entity holds it.
    pub fn changed_at(&self, entity: EntityId, component: ComponentId) -> Option<u64> {
        let column = &self.columns[self.registry.position(component)?];
        column.row(entity).map(|row| column.changed(row))
    }

    /// Every (entity, value) of a component type, in storage order.
    pub fn component_entries(
        &self,
        component: ComponentId,
    ) -> Result<ComponentEntries<'_>, WorldError> {
        let column = &self.columns[self.column_index(component)?];
        Ok(ComponentEntries { column, row: 0 })
    }

    /// A hash of every live entity and every value, independent of storage order and ticks:
    /// equal on two peers exactly when they hold the same state (up to hash collisions).
    pub fn state_hash(&self) -> u64 {
        self.state_hash_where(|_| true)
    }

    /// [`World::state_hash`] of the entities `keep` accepts, as if the world held only
    /// them: a peer that sees part of the world holds exactly that part when its own
    /// `state_hash` equals this.
    pub fn state_hash_where(&self, keep: impl Fn(EntityId) -> bool) -> u64 {
        let (mut sum, mut count) = (0u64, 0u64);
        for entity in self.entities().filter(|&e| keep(e)) {
            sum = sum.wrapping_add(mix64(entity.0 ^ 0x656e_7469_7479));
            count += 1;
        }
        for (descriptor, column) in self.registry.descriptors().iter().zip(&self.columns) {
            let type_seed = mix64(u64::from(descriptor.id.0));
            for row in 0..column.len() {
                let entity = column.entity(row);
                if keep(entity) {
                    let seed = mix64(type_seed ^ entity.0);
                    sum = sum.wrapping_add(hash64(seed, column.value(row)));
                }
            }
        }
        mix64(sum ^ count)
    }

    /// Counts and memory use.
    pub fn stats(&self) -> WorldStats {
        let column_bytes: usize = self.columns.iter().map(Column::heap_bytes).sum();
        let journal_bytes = self.journal.heap_bytes();
        let index_bytes =
            self.index.capacity() * (std::mem::size_of::<(EntityId, hecs::Entity)>() + 1);
        WorldStats {
            entities: self.index.len(),
            components: self.columns.iter().map(Column::len).sum(),
            component_types: self.registry.len(),
            journal_entries: self.journal.len(),
            history_floor: self.journal.floor(),
            column_bytes,
            journal_bytes,
            heap_bytes: column_bytes + journal_bytes + index_bytes,
        }
    }

    /// The column of `component`, trying the logged position `hint` first (a journal
    /// entry's; registering a type since then shifts it).
    pub(crate) fn column_of(&self, component: ComponentId, hint: u32) -> Option<usize> {
        let hint = hint as usize;
        match self.registry.descriptors().get(hint) {
            Some(d) if d.id == component => Some(hint),
            _ => self.registry.position(component),
        }
    }

    fn column_index(&self, component: ComponentId) -> Result<usize, WorldError> {
        self.registry
            .position(component)
            .ok_or(WorldError::UnknownComponent(component))
    }

    pub(crate) fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub(crate) fn journal(&self) -> &Journal {
        &self.journal
    }
}

/// Iterator over the (entity, value) pairs of one component type.
pub struct ComponentEntries<'w> {
    column: &'w Column,
    row: usize,
}

impl<'w> Iterator for ComponentEntries<'w> {
    type Item = (EntityId, &'w [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.row >= self.column.len() {
            return None;
        }
        let row = self.row;
        self.row += 1;
        Some((self.column.entity(row), self.column.value(row)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.column.len() - self.row;
        (left, Some(left))
    }
}

impl ExactSizeIterator for ComponentEntries<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Field;

    fn world() -> (World, ComponentId, ComponentId) {
        let mut world = World::default();
        let position = world.register("test.Position", Layout::Fixed(12)).unwrap();
        let name = world
            .register("test.Name", Layout::Variable { max: 8 })
            .unwrap();
        (world, position, name)
    }

    fn floats(xs: &[f32]) -> Vec<u8> {
        xs.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn declared_fields_quantise_every_write_and_refuse_what_cannot_be() {
        let (mut world, position, name) = world();
        let mm = [Field::Position {
            offset: 0,
            precision_mm: 1.0,
        }];
        world.declare_fields(position, &mm).unwrap();
        world.declare_fields(position, &mm).unwrap();
        let hash = world.registry().hash();
        let e = world.spawn().unwrap();
        world
            .set(e, position, &floats(&[1.0004, -2.0, 0.0031]))
            .unwrap();
        assert_eq!(
            world.get(e, position),
            Some(&floats(&[1.0, -2.0, 0.004])[..]),
            "to the 2 mm grid (within 1 mm)"
        );
        assert_eq!(
            world.set(e, position, &floats(&[1.0006, -2.0, 0.0039])),
            Ok(Change::Unchanged),
            "a write that quantises to the value held is no change"
        );
        let f = world.spawn().unwrap();
        let before = world.state_hash();
        let err = world
            .set(e, position, &floats(&[f32::NAN, 0.0, 0.0]))
            .unwrap_err();
        assert!(
            err.to_string().contains("test.Position") && err.to_string().contains("finite"),
            "{err}"
        );
        let mut batch = floats(&[5.0, 5.0, 5.0]);
        batch.extend(floats(&[0.0, f32::INFINITY, 0.0]));
        assert!(matches!(
            world.set_batch(position, &[e, f], &batch, 12),
            Err(WorldError::NotQuantisable { .. })
        ));
        assert_eq!(world.state_hash(), before, "all or nothing");
        let mut batch = floats(&[5.0, 5.0, 5.0, 0.0]);
        batch.extend(floats(&[0.0011, 7.0, 0.0, 0.0]));
        let outcome = world.set_batch(position, &[e, f], &batch, 16).unwrap();
        assert_eq!((outcome.updated, outcome.inserted), (1, 1));
        assert_eq!(
            world.get(f, position),
            Some(&floats(&[0.002, 7.0, 0.0])[..])
        );
        // Declared fields are part of the identity; they come before any value, on fixed
        // sizes only, and cannot change.
        let other = [Field::Position {
            offset: 0,
            precision_mm: 2.0,
        }];
        assert!(world.declare_fields(position, &other).is_err());
        assert!(world.declare_fields(name, &mm).is_err());
        let late = world.register("test.Late", Layout::Fixed(12)).unwrap();
        world.set(e, late, &[0; 12]).unwrap();
        let err = world.declare_fields(late, &mm).unwrap_err();
        assert!(err.to_string().contains("before the first value"), "{err}");
        assert!(world.registry().fields(late).is_none());
        assert_ne!(hash, World::default().registry().hash());
    }

    #[test]
    fn errors_name_what_was_wrong_and_change_nothing() {
        let (mut world, position, name) = world();
        let e = world.spawn().unwrap();
        let before = world.state_hash();
        let err = world.set(e, position, &[0; 11]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value of 11 bytes for component \"test.Position\", whose layout is fixed 12 bytes"
        );
        let err = world.set(e, name, &[0; 9]).unwrap_err();
        assert!(err.to_string().contains("variable up to 8 bytes"), "{err}");
        let err = world.set(e, ComponentId(99), &[]).unwrap_err();
        assert_eq!(err, WorldError::UnknownComponent(ComponentId(99)));
        assert!(err.to_string().contains("register it first"));
        let ghost = EntityId::new(0, 999).unwrap();
        let err = world.set(ghost, position, &[0; 12]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entity 0:999 is not alive (never spawned here, or despawned)"
        );
        world.despawn(e).unwrap();
        assert_eq!(world.despawn(e), Err(WorldError::DeadEntity(e)));
        assert_eq!(world.remove(e, position), Err(WorldError::DeadEntity(e)));
        assert_eq!(
            world.remove(ghost, ComponentId(5)),
            Err(WorldError::UnknownComponent(ComponentId(5)))
        );
        assert_ne!(
            world.state_hash(),
            before,
            "the despawn itself was a change"
        );
        assert_eq!(world.stats().components, 0);
    }

    #[test]
    fn identical_bytes_are_not_a_change() {
        let (mut world, position, _) = world();
        let e = world.spawn().unwrap();
        assert_eq!(world.set(e, position, &[1; 12]), Ok(Change::Inserted));
        let stamped = world.changed_at(e, position).unwrap();
        world.advance();
        world.advance();
        assert_eq!(world.set(e, position, &[1; 12]), Ok(Change::Unchanged));
        assert_eq!(
            world.changed_at(e, position),
            Some(stamped),
            "the tick did not move"
        );
        assert_eq!(world.set(e, position, &[2; 12]), Ok(Change::Updated));
        assert_eq!(world.changed_at(e, position), Some(world.tick()));
    }

    #[test]
    fn batch_writes_are_all_or_nothing() {
        let (mut world, position, name) = world();
        let a = world.spawn().unwrap();
        let b = world.spawn().unwrap();
        let dead = EntityId::new(0, 77).unwrap();
        // Engine structs of 16 bytes with the position in the first 12.
        let values: Vec<u8> = (0..48).collect();
        let err = world
            .set_batch(position, &[a, dead, b], &values, 16)
            .unwrap_err();
        assert_eq!(err, WorldError::DeadEntity(dead));
        assert_eq!(world.stats().components, 0, "nothing written");
        assert!(matches!(
            world.set_batch(position, &[a, b], &values[..27], 16),
            Err(WorldError::BatchTooShort {
                needed: 28,
                got: 27,
                ..
            })
        ));
        assert!(matches!(
            world.set_batch(position, &[a], &values, 8),
            Err(WorldError::StrideTooSmall { .. })
        ));
        assert!(matches!(
            world.set_batch(name, &[a], &values, 8),
            Err(WorldError::BatchNeedsFixedLayout { .. })
        ));
        let outcome = world
            .set_batch(position, &[a, b], &values[..28], 16)
            .unwrap();
        assert_eq!(
            outcome,
            BatchOutcome {
                inserted: 2,
                updated: 0,
                unchanged: 0
            }
        );
        assert_eq!(world.get(b, position), Some(&values[16..28]));
        let again = world
            .set_batch(position, &[a, b], &values[..28], 16)
            .unwrap();
        assert_eq!(again.unchanged, 2);
    }

    #[test]
    fn component_entries_iterates_every_value() {
        let (mut world, position, _) = world();
        let entities: Vec<EntityId> = (0..5).map(|_| world.spawn().unwrap()).collect();
        for (i, &e) in entities.iter().enumerate() {
            world.set(e, position, &[i as u8; 12]).unwrap();
        }
        world.remove(entities[1], position).unwrap();
        let mut entries: Vec<(EntityId, Vec<u8>)> = world
            .component_entries(position)
            .unwrap()
            .map(|(e, v)| (e, v.to_vec()))
            .collect();
        entries.sort();
        let expected: Vec<(EntityId, Vec<u8>)> = [0, 2, 3, 4]
            .iter()
            .map(|&i| (entities[i], vec![i as u8; 12]))
            .collect();
        assert_eq!(entries, expected);
        assert!(world.component_entries(ComponentId(1)).is_err());
    }

    #[test]
    fn state_hash_ignores_storage_order_and_ticks() {
        let mut a = World::default();
        let mut b = World::default();
        let pa = a.register("p", Layout::Fixed(1)).unwrap();
        let pb = b.register("p", Layout::Fixed(1)).unwrap();
        let ea: Vec<EntityId> = (0..4).map(|_| a.spawn().unwrap()).collect();
        let eb: Vec<EntityId> = (0..4).map(|_| b.spawn().unwrap()).collect();
        for (i, &e) in ea.iter().enumerate() {
            a.set(e, pa, &[i as u8]).unwrap();
        }
        for (i, &e) in eb.iter().enumerate().rev() {
            b.advance();
            b.set(e, pb, &[i as u8]).unwrap();
        }
        assert_eq!(a.state_hash(), b.state_hash());
        b.set(eb[2], pb, &[9]).unwrap();
        assert_ne!(a.state_hash(), b.state_hash());
    }

    #[test]
    fn entity_ids_carry_the_local_peer() {
        let mut world = World::new(WorldConfig {
            local_peer: 7,
            ..WorldConfig::default()
        });
        let e = world.spawn().unwrap();
        assert_eq!((e.creator(), e.counter()), (7, 1));
        assert!(world.is_alive(e));
        world.despawn(e).unwrap();
        let next = world.spawn().unwrap();
        assert_ne!(next, e, "ids are never reused");
    }
}
