//! A client's frame applied to the host's world under the host's authority: checked whole,
//! then each write only if the client owns what it writes (see `proto::ownership` for the
//! fence against a previous owner's late writes), newer than what it wrote before, and of
//! an entity alive (or its own, to bring to life).

use super::{PeerLink, REJECTIONS_REPORTED};
use crate::ownership::WHOLE_ENTITY;
use crate::proto::compression::control_message;
use crate::proto::events::SessionEvent;
use crate::proto::link::Outputs;
use crate::proto::outbox::Key;
use crate::proto::ownership::{HostOwnership, WriteCheck};
use crate::proto::queue::EventQueue;
use crate::registry::ComponentId;
use crate::replica::check_frame;
use crate::wire::{fb, Encoder};
use crate::world::{EntityId, PeerId, Stamp, World};

/// A client's frame applied to the host's world under the host's authority.
pub(super) struct ClientWrites<'a> {
    pub(super) world: &'a mut World,
    pub(super) client: &'a mut PeerLink,
    pub(super) peer: PeerId,
    pub(super) next_counter: &'a mut u64,
    pub(super) ownership: &'a HostOwnership,
    /// Most entities the world may hold (a room's limit); a spawn past it is refused.
    pub(super) max_entities: Option<usize>,
    pub(super) encoder: &'a mut Encoder,
    pub(super) events: &'a mut EventQueue,
    pub(super) out: &'a mut Outputs,
}

impl ClientWrites<'_> {
    /// Applies a client's frame: checked whole first, as a replica checks one (a
    /// malformed frame is dropped and counted), then per key if newer than what that
    /// client wrote before, and only for entities the client created; other writes are
    /// refused, counted and reported.
    pub(super) fn apply(&mut self, frame: fb::DeltaFrame<'_>) {
        let checked = match check_frame(self.world.registry(), frame) {
            // A client registers no types, and codes no value against a baseline or as
            // lanes: a frame that does is not a client's.
            Ok(checked)
                if checked.descriptors.is_empty()
                    && !checked
                        .batches
                        .iter()
                        .any(|b| b.has_baselines() || b.lanes().is_some()) =>
            {
                checked
            }
            _ => {
                self.client.link.diagnostics.malformed += 1;
                return;
            }
        };
        let tick = checked.tick;
        let owner_seq = frame.owner_seq();
        let mut rejected = 0usize;
        for &entity in &checked.spawns {
            if self.refuse_if_not_owner(entity, WHOLE_ENTITY, owner_seq, &mut rejected) {
                continue;
            }
            if self.newer((ComponentId(0), entity), tick) {
                self.ensure_alive(entity, tick, &mut rejected);
            }
        }
        for batch in &checked.batches {
            let component = batch.component();
            for entry in batch.iter() {
                if self.refuse_if_not_owner(entry.entity, component, owner_seq, &mut rejected) {
                    continue;
                }
                if self.newer((component, entry.entity), tick)
                    && self.ensure_alive(entry.entity, tick, &mut rejected)
                {
                    // Checked against the layout above and the entity is alive: what can
                    // fail is quantising a value of declared fields (a NaN).
                    if self
                        .world
                        .set(entry.entity, component, entry.bytes)
                        .is_err()
                    {
                        self.client.link.diagnostics.values_refused += 1;
                    }
                }
            }
        }
        for remove in &checked.removes {
            for entity in remove.entities() {
                if self.refuse_if_not_owner(entity, remove.component(), owner_seq, &mut rejected) {
                    continue;
                }
                if self.newer((remove.component(), entity), tick) && self.world.is_alive(entity) {
                    let _ = self.world.remove(entity, remove.component());
                }
            }
        }
        for &entity in &checked.despawns {
            if self.refuse_if_not_owner(entity, WHOLE_ENTITY, owner_seq, &mut rejected) {
                continue;
            }
            if self.newer((ComponentId(0), entity), tick) {
                self.client.despawned_at.insert(entity, tick);
                if self.world.is_alive(entity) {
                    let _ = self.world.despawn(entity);
                }
            }
        }
    }

    /// Refuses a write of what this client does not own (counted, and the first few of a
    /// frame reported), or drops it quietly when the client wrote it before it heard that
    /// the key changed hands (counted); true when not applied.
    fn refuse_if_not_owner(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        owner_seq: u64,
        rejected: &mut usize,
    ) -> bool {
        match self.ownership.check_write(
            self.peer,
            &self.client.ownership,
            owner_seq,
            entity,
            component,
        ) {
            WriteCheck::Apply => return false,
            WriteCheck::Stale => {
                self.client.link.diagnostics.stale_writes += 1;
                return true;
            }
            WriteCheck::Refuse => {}
        }
        let reason = match self.ownership.owners.owner_of(entity, component) {
            Some(owner) => format!(
                "entity {entity} belongs to peer {owner}, not to peer {}",
                self.peer
            ),
            None => format!("nobody owns entity {entity}: request it first"),
        };
        self.reject(entity, component, reason, rejected);
        true
    }

    /// Counts a refused write, and reports it (to the client and the engine) if it is
    /// among the first few of its frame.
    fn reject(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        reason: String,
        rejected: &mut usize,
    ) {
        self.client.link.diagnostics.writes_rejected += 1;
        if *rejected < REJECTIONS_REPORTED {
            let notice =
                control_message(&self.encoder.write_rejected(entity.0, component.0, &reason));
            self.client.link.send_reliable(notice, self.out);
            self.events.push(SessionEvent::WriteRejected {
                peer: self.peer,
                entity,
                component,
                reason,
            });
        }
        *rejected += 1;
    }

    /// Latest wins per key by client tick; records the tick when it does.
    fn newer(&mut self, key: Key, tick: u64) -> bool {
        match self.client.client_ticks.get(&key) {
            Some(&seen) if seen >= tick => false,
            _ => {
                self.client.client_ticks.insert(key, tick);
                true
            }
        }
    }

    /// An entity of this client that is not alive: spawned by this frame's tick unless
    /// the client despawned it later, or the world holds its limit of entities (refused).
    fn ensure_alive(&mut self, entity: EntityId, tick: u64, rejected: &mut usize) -> bool {
        if self.world.is_alive(entity) {
            return true;
        }
        if let Some(max) = self
            .max_entities
            .filter(|&max| self.world.entity_count() >= max)
        {
            let reason = format!(
                "the room holds {max} entities, its limit: entity {entity} was not spawned"
            );
            self.reject(entity, WHOLE_ENTITY, reason, rejected);
            return false;
        }
        // Only its creator brings an entity to life (another owner writes a live one).
        if entity.creator() != self.peer
            || self
                .client
                .despawned_at
                .get(&entity)
                .is_some_and(|&t| t >= tick)
        {
            return false;
        }
        self.world.spawn_with_id(entity, Stamp::Local);
        *self.next_counter = (*self.next_counter).max(entity.counter() + 1);
        true
    }
}
