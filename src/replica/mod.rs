//! The receiving side: applies snapshot chunks and delta frames from a peer to a local
//! copy of its world, and queues events for the engine to poll.
//!
//! Per (entity, component) the newest tick wins, so chunks and frames may arrive in any
//! order and more than once. Every message is decoded and checked whole before anything
//! is applied: a refused message leaves the replica exactly as it was.

mod authority;
pub(crate) mod baselines;
mod check;
mod events;

use std::borrow::Cow;

use rustc_hash::{FxHashMap, FxHashSet};

pub use events::{Event, EventKind, Events};

use crate::ownership::{Owners, WHOLE_ENTITY};
use crate::registry::{ComponentId, Layout, Registry, RegistryError};
use crate::wire::{self, fb, Message, WireError};
use crate::world::{Change, EntityId, PeerId, Stamp, World, WorldConfig, WorldError};
use check::{check_batches, check_descriptors};
pub(crate) use check::{check_frame, Checked};
use events::EventQueue;

/// Most chunks one snapshot may announce.
pub const MAX_SNAPSHOT_CHUNKS: u32 = 1 << 20;

/// Why a message was refused. The replica is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// The bytes failed decoding or validation.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Index, total or tick of a snapshot chunk out of range.
    #[error("invalid snapshot chunk header: index {index} of {total} at tick {tick}")]
    BadChunkHeader {
        /// Chunk index.
        index: u32,
        /// Announced total.
        total: u32,
        /// Snapshot tick.
        tick: u64,
    },
    /// A chunk disagrees with the earlier chunks of its snapshot on the total, the
    /// registry hash or the chunk bound: it belongs to another cutting of that tick.
    #[error(
        "snapshot at tick {tick}: chunk {index} has {what} {found}, earlier chunks {expected}"
    )]
    InconsistentSnapshot {
        /// Snapshot tick.
        tick: u64,
        /// This chunk's index.
        index: u32,
        /// Which header field disagrees.
        what: &'static str,
        /// The value of the earlier chunks.
        expected: u64,
        /// This chunk's value.
        found: u64,
    },
    /// A delta frame whose tick is 0 or before its base.
    #[error("invalid delta frame ticks: base {base}, tick {tick}")]
    BadFrameTicks {
        /// Base tick.
        base: u64,
        /// Frame tick.
        tick: u64,
    },
}

/// What applying a message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A new chunk was applied; `complete` once every chunk of its snapshot has been.
    SnapshotChunk {
        /// Whether this chunk completed its snapshot.
        complete: bool,
    },
    /// The chunk was applied before: nothing changed.
    DuplicateChunk,
    /// The chunk belongs to an older snapshot than one already received: nothing changed.
    StaleChunk,
    /// A delta frame was applied (values it holds that are older than ours were skipped).
    DeltaFrame,
    /// A delta frame no newer than the last complete snapshot: nothing changed.
    StaleFrame,
}

/// Counters of what a replica received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Snapshot chunks applied.
    pub snapshot_chunks: u64,
    /// Chunks ignored as duplicate or stale.
    pub ignored_chunks: u64,
    /// Delta frames applied.
    pub delta_frames: u64,
    /// Delta frames ignored as stale.
    pub stale_frames: u64,
    /// Messages refused as malformed or inconsistent.
    pub rejected: u64,
    /// Bytes of applied messages.
    pub bytes_applied: u64,
    /// Values skipped because the baseline they were coded against is not held (only a
    /// misbehaving sender, or one about an entity already forgotten here).
    pub missing_baselines: u64,
}

/// A snapshot being received: identified by tick, total, registry hash and chunk bound.
struct Assembly {
    tick: u64,
    total: u32,
    registry_hash: u64,
    chunking: u32,
    /// Indices received; grows with what arrives, not with what a header announces.
    received: FxHashSet<u32>,
}

/// A local copy of a peer's world.
pub struct Replica {
    world: World,
    /// Per entity, the tick of the newest removal of each component it has not held since
    /// (keyed by entity so a despawn drops them all).
    removed: FxHashMap<EntityId, Vec<(ComponentId, u64)>>,
    /// Entities known to be despawned (ids are never reused, so this is final).
    despawned: FxHashMap<EntityId, u64>,
    /// Entities that left this peer's interest, with the sender's tick then: nothing of
    /// them from before brings them back; newer state (they entered again) does.
    left: FxHashMap<EntityId, u64>,
    assembly: Option<Assembly>,
    /// Values received in state datagrams, for those coded against them.
    history: baselines::History,
    snapshot_tick: u64,
    /// Whether the sender's snapshots hold only what this peer sees.
    partial_snapshots: bool,
    /// What partial snapshots found gone, for the session to report.
    swept_left: Vec<EntityId>,
    tick: u64,
    events: EventQueue,
    stats: ReplicaStats,
    /// This peer, once it may own entities: they are written here, never by messages.
    owner: Option<PeerId>,
    /// Entities of this peer that it did not hold and took from the sender's state (a
    /// client that rejoins): messages fill them in until this peer writes them.
    adopted: FxHashSet<EntityId>,
    /// Owner records that differ from "the creator owns it", as the host last said.
    owners: Owners,
    /// Set while the host's state of a grant is applied over this peer's own.
    granting: bool,
}

impl Default for Replica {
    fn default() -> Self {
        Replica::new()
    }
}

impl Replica {
    /// A replica that learns component types from the descriptors it receives.
    pub fn new() -> Self {
        Replica {
            world: World::new(WorldConfig::default()),
            removed: FxHashMap::default(),
            despawned: FxHashMap::default(),
            left: FxHashMap::default(),
            assembly: None,
            history: baselines::History::default(),
            snapshot_tick: 0,
            partial_snapshots: false,
            swept_left: Vec::new(),
            tick: 0,
            events: EventQueue::default(),
            stats: ReplicaStats::default(),
            owner: None,
            adopted: FxHashSet::default(),
            owners: Owners::default(),
            granting: false,
        }
    }

    /// Makes this replica's peer `peer`: it may then create entities in that peer's id range
    /// and write them (`spawn_owned`, `set_owned`...); messages never change them.
    pub fn set_owner(&mut self, peer: PeerId, next_counter: u64) {
        self.owner = Some(peer);
        self.world.set_local_peer(peer, next_counter);
    }

    /// The peer whose entities this replica owns, if set.
    pub fn owner(&self) -> Option<PeerId> {
        self.owner
    }

    /// The sender says `entity` left this peer's interest at its tick `tick`: its state is
    /// freed here without a despawn (it still exists there), and nothing the sender sent of
    /// it before `tick` brings it back; newer state, when it enters again, does (as a spawn
    /// and inserts). Returns whether it was held. An entity this peer owns stays (what a
    /// peer owns stays in its interest).
    pub fn leave(&mut self, entity: EntityId, tick: u64) -> bool {
        if self.owns(entity) || self.despawned.contains_key(&entity) {
            return false;
        }
        // State newer than the notice: it entered again, and that state overtook the
        // notice (a datagram beside a reliable message delayed by a loss).
        if self.world.confirmed(entity).is_some_and(|at| at > tick) {
            return false;
        }
        let held = self.world.is_alive(entity);
        if held {
            self.world
                .despawn_stamped(entity, Stamp::Remote(tick))
                .expect("entity is alive");
        }
        self.history.forget_entity(entity, tick);
        self.removed.remove(&entity);
        let left = self.left.entry(entity).or_insert(0);
        *left = (*left).max(tick);
        held
    }

    /// Creates an entity owned by this peer (see [`Replica::set_owner`]).
    pub fn spawn_owned(&mut self) -> Result<EntityId, WorldError> {
        if self.owner.is_none() {
            return Err(WorldError::NotOwner {
                entity: EntityId(0),
                peer: PeerId::MAX,
            });
        }
        self.world.spawn()
    }

    /// Writes a value of an entity this peer owns.
    pub fn set_owned(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        bytes: &[u8],
    ) -> Result<Change, WorldError> {
        self.check_owned(entity, component)?;
        self.world.set(entity, component, bytes)
    }

    /// Removes a component from an entity this peer owns.
    pub fn remove_owned(
        &mut self,
        entity: EntityId,
        component: ComponentId,
    ) -> Result<bool, WorldError> {
        self.check_owned(entity, component)?;
        self.world.remove(entity, component)
    }

    /// Destroys an entity this peer owns.
    pub fn despawn_owned(&mut self, entity: EntityId) -> Result<(), WorldError> {
        self.check_owned(entity, WHOLE_ENTITY)?;
        self.world.despawn(entity)?;
        // A late message must not bring it back.
        self.despawned.insert(entity, u64::MAX);
        Ok(())
    }

    /// The keys this peer's writes changed after `since` (see
    /// [`World::changed_keys_since`]), to mark for the host.
    pub(crate) fn owned_keys_since(
        &self,
        since: u64,
    ) -> Result<crate::delta::ChangedKeys, crate::DeltaError> {
        self.world.changed_keys_since(since)
    }

    /// A replica that knows the engine's own component types already; a descriptor from the
    /// peer that conflicts with one of them is refused.
    pub fn with_registry(registry: &Registry) -> Self {
        let mut replica = Replica::new();
        for descriptor in registry.descriptors() {
            replica
                .world
                .register_descriptor(descriptor.clone())
                .expect("descriptors of a valid registry");
            if let Some(layout) = registry.fields(descriptor.id) {
                replica
                    .world
                    .declare_layout(descriptor.id, layout.clone())
                    .expect("a valid registry's layout, before any value");
            }
        }
        replica
    }

    /// Registers one of the engine's own component types, so that descriptors from the peer
    /// are checked against it and its id can be looked up before any value arrives.
    pub fn register(&mut self, name: &str, layout: Layout) -> Result<ComponentId, RegistryError> {
        self.world.register(name, layout)
    }

    /// Declares the fields of one of the engine's own fixed-size component types, as
    /// [`World::declare_fields`] does (before any value of it arrives), so that this
    /// replica's registry hash matches a sender that declared the same.
    pub fn declare_fields(
        &mut self,
        component: ComponentId,
        fields: &[crate::fields::Field],
    ) -> Result<(), WorldError> {
        self.world.declare_fields(component, fields)
    }

    /// The replicated state (read it with `get`, `component_entries`, `state_hash`...).
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Hash of the replicated state; equal to the sender's `World::state_hash` once
    /// converged.
    pub fn state_hash(&self) -> u64 {
        self.world.state_hash()
    }

    /// The newest tick of any applied message.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Tick of the last complete snapshot (0 before one).
    pub fn snapshot_tick(&self) -> u64 {
        self.snapshot_tick
    }

    /// Says whether the sender's snapshots hold only what this peer sees (interest
    /// management): then what a completed snapshot lacks is taken to have left (see
    /// [`Replica::leave`]), not despawned, and is reported by [`Replica::take_swept_left`].
    pub fn set_partial_snapshots(&mut self, partial: bool) {
        self.partial_snapshots = partial;
    }

    /// The entities a partial snapshot found this peer holding and not in it (see
    /// [`Replica::set_partial_snapshots`]), since the last call.
    pub fn take_swept_left(&mut self) -> Vec<EntityId> {
        std::mem::take(&mut self.swept_left)
    }

    /// (received, total) chunks of the snapshot being assembled, if any.
    pub fn snapshot_progress(&self) -> Option<(u32, u32)> {
        self.assembly
            .as_ref()
            .map(|a| (a.received.len() as u32, a.total))
    }

    /// What the replica has received so far.
    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    /// Events not polled yet.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Takes up to `max` events, oldest first. Their bytes stay valid until the next poll.
    pub fn poll_events(&mut self, max: usize) -> Events<'_> {
        self.events.poll(max)
    }

    /// Applies a snapshot chunk or a delta frame, whichever `bytes` holds.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<Applied, ReplicaError> {
        let result = wire::decode(bytes)
            .map_err(ReplicaError::from)
            .and_then(|message| self.apply_message(message));
        self.count(bytes.len(), &result)
    }

    /// Applies one snapshot chunk; any other message is refused.
    pub fn apply_snapshot_chunk(&mut self, bytes: &[u8]) -> Result<Applied, ReplicaError> {
        self.apply_expecting(bytes, "snapshot chunk")
    }

    /// Applies one delta frame; any other message is refused.
    pub fn apply_delta(&mut self, bytes: &[u8]) -> Result<Applied, ReplicaError> {
        self.apply_expecting(bytes, "delta frame")
    }

    fn apply_expecting(
        &mut self,
        bytes: &[u8],
        expected: &'static str,
    ) -> Result<Applied, ReplicaError> {
        let result = wire::decode(bytes)
            .map_err(ReplicaError::from)
            .and_then(|message| {
                if message.kind() != expected {
                    return Err(WireError::UnexpectedPayload {
                        expected,
                        found: message.kind(),
                    }
                    .into());
                }
                self.apply_message(message)
            });
        self.count(bytes.len(), &result)
    }

    fn count(
        &mut self,
        len: usize,
        result: &Result<Applied, ReplicaError>,
    ) -> Result<Applied, ReplicaError> {
        match result {
            Err(_) => self.stats.rejected += 1,
            Ok(applied) => {
                match applied {
                    Applied::SnapshotChunk { .. } => self.stats.snapshot_chunks += 1,
                    Applied::DuplicateChunk | Applied::StaleChunk => self.stats.ignored_chunks += 1,
                    Applied::DeltaFrame => self.stats.delta_frames += 1,
                    Applied::StaleFrame => self.stats.stale_frames += 1,
                }
                if matches!(applied, Applied::SnapshotChunk { .. } | Applied::DeltaFrame) {
                    self.stats.bytes_applied += len as u64;
                }
            }
        }
        result.clone()
    }

    fn apply_message(&mut self, message: Message<'_>) -> Result<Applied, ReplicaError> {
        match message {
            Message::SnapshotChunk(chunk) => self.apply_chunk(chunk),
            Message::DeltaFrame(frame) => self.apply_frame(frame, false),
            other => Err(WireError::UnexpectedPayload {
                expected: "snapshot chunk or delta frame",
                found: other.kind(),
            }
            .into()),
        }
    }

    fn apply_chunk(&mut self, chunk: fb::SnapshotChunk<'_>) -> Result<Applied, ReplicaError> {
        let (tick, index, total, hash, chunking) = (
            chunk.tick(),
            chunk.index(),
            chunk.total(),
            chunk.registry_hash(),
            chunk.max_chunk_bytes(),
        );
        if tick == 0 || total == 0 || index >= total || total > MAX_SNAPSHOT_CHUNKS {
            return Err(ReplicaError::BadChunkHeader { index, total, tick });
        }
        // Checked whole before deciding whether it is new: a malformed duplicate is refused
        // like any malformed message.
        let descriptors = check_descriptors(self.world.registry(), chunk.descriptors())?;
        let checked = Checked {
            tick,
            spawns: wire::read_entities(chunk.entities(), "snapshot entities")?,
            batches: check_batches(self.world.registry(), &descriptors, chunk.batches())?,
            descriptors,
            removes: Vec::new(),
            despawns: Vec::new(),
        };
        match &self.assembly {
            Some(a) if a.tick == tick => {
                let inconsistent =
                    |what, expected: u64, found: u64| ReplicaError::InconsistentSnapshot {
                        tick,
                        index,
                        what,
                        expected,
                        found,
                    };
                if a.total != total {
                    return Err(inconsistent("chunk total", a.total.into(), total.into()));
                }
                if a.registry_hash != hash {
                    return Err(inconsistent("registry hash", a.registry_hash, hash));
                }
                if a.chunking != chunking {
                    return Err(inconsistent(
                        "chunk bound",
                        a.chunking.into(),
                        chunking.into(),
                    ));
                }
                if a.received.contains(&index) {
                    return Ok(Applied::DuplicateChunk);
                }
            }
            Some(a) if tick < a.tick => return Ok(Applied::StaleChunk),
            _ if tick == self.snapshot_tick => return Ok(Applied::DuplicateChunk),
            _ if tick < self.snapshot_tick => return Ok(Applied::StaleChunk),
            _ => {}
        }

        if self.assembly.as_ref().is_none_or(|a| a.tick != tick) {
            self.assembly = Some(Assembly {
                tick,
                total,
                registry_hash: hash,
                chunking,
                received: FxHashSet::default(),
            });
        }
        let (values, _) = self
            .history
            .resolve(&checked, false, self.world.registry())?;
        self.apply_checked(checked, values);
        let assembly = self.assembly.as_mut().expect("set above");
        assembly.received.insert(index);
        let complete = assembly.received.len() == assembly.total as usize;
        if complete {
            self.complete_snapshot(tick);
        }
        Ok(Applied::SnapshotChunk { complete })
    }

    /// Completes a snapshot of `tick` that has no chunk, because the sender's world had no
    /// entity: whatever this replica holds from before that tick is gone. (A snapshot with
    /// chunks completes when its last chunk is applied.) Does nothing for a tick no newer
    /// than the last complete snapshot.
    pub fn apply_empty_snapshot(&mut self, tick: u64) -> Applied {
        if tick <= self.snapshot_tick {
            return Applied::StaleChunk;
        }
        self.complete_snapshot(tick);
        self.tick = self.tick.max(tick);
        Applied::SnapshotChunk { complete: true }
    }

    fn complete_snapshot(&mut self, tick: u64) {
        if self.assembly.as_ref().is_some_and(|a| a.tick <= tick) {
            self.assembly = None;
        }
        self.snapshot_tick = tick;
        self.sweep_older_than(tick);
    }

    /// Applies a delta frame carried inside another message (a state datagram), with the
    /// same checks and counters as `apply_delta`; `len` is the carrying message's size.
    /// Public so that a transport other than the session's (and the fuzz targets) can hand
    /// a datagram's frame to the replica the way the session does.
    pub fn apply_frame_in(
        &mut self,
        frame: fb::DeltaFrame<'_>,
        len: usize,
    ) -> Result<Applied, ReplicaError> {
        let result = self.apply_frame(frame, true);
        self.count(len, &result)
    }

    /// Forgets the values kept for baselines (a new connection to the sender).
    pub fn clear_baselines(&mut self) {
        self.history.clear();
    }

    /// Whether every baseline a state datagram's `frame` is coded against is held here:
    /// when one is not (more later values of its key overtook it than are kept), the
    /// datagram should go unacknowledged, so that its values go again on newer ones.
    pub fn holds_baselines(&self, frame: fb::DeltaFrame<'_>) -> bool {
        self.history.holds_baselines(frame)
    }

    /// Bytes of values kept for baselines.
    pub fn baseline_bytes(&self) -> usize {
        self.history.bytes()
    }

    /// Applies a delta frame; `datagram`: it came in a state datagram (its values are
    /// kept as baselines, even when the frame is stale: the sender may use them).
    fn apply_frame(
        &mut self,
        frame: fb::DeltaFrame<'_>,
        datagram: bool,
    ) -> Result<Applied, ReplicaError> {
        let checked = check_frame(self.world.registry(), frame)?;
        let (values, missing) = self
            .history
            .resolve(&checked, datagram, self.world.registry())?;
        self.stats.missing_baselines += missing;
        // A frame no newer than the last full snapshot holds nothing that snapshot lacks,
        // and might resurrect entities it left out.
        if checked.tick <= self.snapshot_tick {
            return Ok(Applied::StaleFrame);
        }
        self.apply_checked(checked, values);
        Ok(Applied::DeltaFrame)
    }

    /// Applies a checked message with its resolved values (in batch order; `None`:
    /// skipped). Cannot fail: everything was validated.
    fn apply_checked(&mut self, checked: Checked<'_>, values: Vec<Option<Cow<'_, [u8]>>>) {
        let tick = checked.tick;
        for descriptor in checked.descriptors {
            self.world
                .register_descriptor(descriptor)
                .expect("descriptor checked against this registry");
        }
        for entity in checked.spawns {
            self.confirm_entity(entity, tick);
        }
        let mut values = values.into_iter();
        for batch in &checked.batches {
            let component = batch.component();
            let at = self.world.registry().position(component).expect("checked");
            for entry in batch.iter() {
                if let Some(Some(bytes)) = values.next() {
                    self.apply_value(at, component, entry.entity, &bytes, tick);
                }
            }
        }
        for remove in &checked.removes {
            for entity in remove.entities() {
                self.apply_remove(remove.component(), entity, tick);
            }
        }
        for entity in checked.despawns {
            self.apply_despawn(entity, tick);
        }
        self.tick = self.tick.max(tick);
    }

    /// Notes that `entity` was alive at `tick`, spawning it if new. False when it is known
    /// to be despawned.
    fn confirm_entity(&mut self, entity: EntityId, tick: u64) -> bool {
        if self.owns(entity) {
            // Ours and alive: alive as we say (its values are checked one by one).
            if self.world.is_alive(entity) {
                return true;
            }
            if self.despawned.contains_key(&entity) {
                return false;
            }
            // One of ours that we do not hold, nor despawned: a rejoin after losing our
            // state. Adopt the sender's copy.
            self.adopted.insert(entity);
        }
        if self.world.confirm_remote(entity, tick) {
            return true;
        }
        // Only an entity not alive here can be a despawned one, or one that left.
        if !self.despawned.is_empty() && self.despawned.contains_key(&entity) {
            return false;
        }
        if let Some(&left) = self.left.get(&entity) {
            if left >= tick {
                return false;
            }
            self.left.remove(&entity);
        }
        self.world.spawn_with_id(entity, Stamp::Remote(tick));
        self.events
            .push(EventKind::Spawn, entity, ComponentId(0), tick, &[]);
        true
    }

    fn apply_value(
        &mut self,
        at: usize,
        component: ComponentId,
        entity: EntityId,
        bytes: &[u8],
        tick: u64,
    ) {
        if !self.confirm_entity(entity, tick) || self.owns_value(entity, component) {
            return;
        }
        if let Some(removals) = self.removed.get_mut(&entity) {
            if let Some(at) = removals.iter().position(|&(c, _)| c == component) {
                if removals[at].1 >= tick {
                    return;
                }
                removals.swap_remove(at);
                if removals.is_empty() {
                    self.removed.remove(&entity);
                }
            }
        }
        let kind = match self.world.apply_remote_value(at, entity, bytes, tick) {
            Some(Change::Inserted) => EventKind::Insert,
            Some(Change::Updated) => EventKind::Update,
            Some(Change::Unchanged) | None => return,
        };
        self.events.push(kind, entity, component, tick, bytes);
    }

    fn apply_remove(&mut self, component: ComponentId, entity: EntityId, tick: u64) {
        if !self.confirm_entity(entity, tick) || self.owns_value(entity, component) {
            return;
        }
        if let Some(changed) = self.world.changed_at(entity, component) {
            if changed >= tick {
                return;
            }
            let at = self
                .world
                .registry()
                .position(component)
                .expect("held value");
            self.world.remove_at(at, entity, Stamp::Remote(tick));
            self.events
                .push(EventKind::Remove, entity, component, tick, &[]);
        }
        let removals = self.removed.entry(entity).or_default();
        match removals.iter_mut().find(|(c, _)| *c == component) {
            Some((_, removed)) => *removed = (*removed).max(tick),
            None => removals.push((component, tick)),
        }
    }

    fn apply_despawn(&mut self, entity: EntityId, tick: u64) {
        if self.owns(entity) {
            return;
        }
        self.history.forget_entity(entity, u64::MAX);
        if self.world.is_alive(entity) {
            self.world
                .despawn_stamped(entity, Stamp::Remote(tick))
                .expect("entity is alive");
            self.events
                .push(EventKind::Despawn, entity, ComponentId(0), tick, &[]);
        }
        self.removed.remove(&entity);
        let despawned = self.despawned.entry(entity).or_insert(0);
        *despawned = (*despawned).max(tick);
    }

    /// After a complete snapshot at `tick`: whatever it did not confirm is gone.
    fn sweep_older_than(&mut self, tick: u64) {
        // apply_despawn, leave and apply_remove leave this peer's own entities alone.
        for entity in self.world.unconfirmed_since(tick) {
            if self.partial_snapshots {
                // Not in a snapshot of what this peer sees: it left, or was despawned;
                // either way only newer state brings it back.
                if self.leave(entity, tick) {
                    self.swept_left.push(entity);
                }
            } else {
                self.apply_despawn(entity, tick);
            }
        }
        let mut stale: Vec<(ComponentId, EntityId)> = Vec::new();
        for (descriptor, column) in self
            .world
            .registry()
            .descriptors()
            .iter()
            .zip(self.world.columns())
        {
            for row in 0..column.len() {
                if column.changed(row) < tick && !self.owns_value(column.entity(row), descriptor.id)
                {
                    stale.push((descriptor.id, column.entity(row)));
                }
            }
        }
        stale.sort_unstable();
        for (component, entity) in stale {
            self.apply_remove(component, entity, tick);
        }
    }
}
