//! Which values this peer writes itself and which it takes from messages: its own entities,
//! and whatever the host's owner records (see [`crate::ownership`]) give it. What it gains
//! starts its own history; what it loses yields to the host's state.

use super::{Applied, Replica, ReplicaError};
use crate::ownership::{Owners, Record, WHOLE_ENTITY};
use crate::registry::ComponentId;
use crate::wire::{self, EntityList, Message, WireError};
use crate::world::{EntityId, PeerId, WorldError};

impl Replica {
    /// Whether messages must leave `entity`'s liveness alone: this peer owns it and writes
    /// it itself.
    pub(super) fn owns(&self, entity: EntityId) -> bool {
        self.owns_value(entity, WHOLE_ENTITY)
    }

    /// Whether messages must leave `(entity, component)` alone (component 0: the entity's
    /// liveness).
    pub(super) fn owns_value(&self, entity: EntityId, component: ComponentId) -> bool {
        self.owner.is_some()
            && !self.granting
            && self.owners.owner_of(entity, component) == self.owner
            && !self.adopted.contains(&entity)
    }

    /// Checks that this peer may write `(entity, component)` (component 0: spawn and
    /// despawn); from then on it is this peer's to write.
    pub(super) fn check_owned(
        &mut self,
        entity: EntityId,
        component: ComponentId,
    ) -> Result<(), WorldError> {
        match self.owner {
            Some(owner) if self.owners.owner_of(entity, component) == Some(owner) => {
                self.adopted.remove(&entity);
                Ok(())
            }
            owner => Err(WorldError::NotOwner {
                entity,
                peer: owner.unwrap_or(PeerId::MAX),
            }),
        }
    }

    /// The owner records the host announced (see [`crate::ownership`]).
    pub fn owners(&self) -> &Owners {
        &self.owners
    }

    /// Who owns `(entity, component)` as far as this replica knows (component 0: the
    /// entity).
    pub fn owner_of(&self, entity: EntityId, component: ComponentId) -> Option<PeerId> {
        self.owners.owner_of(entity, component)
    }

    /// Takes an owner record from the host. Returns whether this peer lost the right to
    /// write something by it: its own values there then yield to the host's (whatever
    /// their tick), and an entity it despawned itself may come back.
    pub fn set_owner_record(
        &mut self,
        entity: EntityId,
        component: ComponentId,
        record: Record,
    ) -> bool {
        let before: Vec<(ComponentId, bool)> = self.affected(entity, component);
        self.owners.set(entity, component, record);
        self.settle_authority(entity, before)
    }

    /// After a record change of `entity`: what this peer lost yields to the host, what it
    /// gained starts its own history. Returns whether it lost something.
    fn settle_authority(&mut self, entity: EntityId, before: Vec<(ComponentId, bool)>) -> bool {
        let mut lost = false;
        for (c, owned) in before {
            let owns = self.owns_value(entity, c);
            if owned && !owns {
                lost = true;
                self.yield_to_host(entity, c);
            } else if !owned && owns && c != WHOLE_ENTITY {
                // Its values carry the host's ticks, another timeline than this peer's
                // own: a write here in a tick equal to one of them would pass for a
                // repeat and never be sent.
                self.world.restamp_remote(entity, Some(c), 0);
            }
        }
        lost
    }

    /// Replaces every owner record (the host's full table); returns whether this peer lost
    /// the right to write something.
    pub fn replace_owner_records(&mut self, records: &[(EntityId, ComponentId, Record)]) -> bool {
        let mut touched: Vec<EntityId> = self.owners.iter().map(|(e, _, _)| e).collect();
        touched.extend(records.iter().map(|(e, _, _)| *e));
        touched.sort_unstable();
        touched.dedup();
        let before: Vec<(EntityId, Vec<(ComponentId, bool)>)> = touched
            .iter()
            .map(|&e| (e, self.affected(e, WHOLE_ENTITY)))
            .collect();
        self.owners.clear();
        for &(e, c, r) in records {
            self.owners.set(e, c, r);
        }
        let mut lost = false;
        for (entity, list) in before {
            lost |= self.settle_authority(entity, list);
        }
        lost
    }

    /// The keys a record of `(entity, component)` decides, each with whether this peer
    /// owns it now: for the whole entity its liveness and every component it holds or
    /// has a record for.
    fn affected(&self, entity: EntityId, component: ComponentId) -> Vec<(ComponentId, bool)> {
        let mut keys = vec![component];
        if component == WHOLE_ENTITY {
            keys.extend(
                self.world
                    .registry()
                    .descriptors()
                    .iter()
                    .map(|d| d.id)
                    .filter(|&c| self.world.get(entity, c).is_some()),
            );
            keys.extend(self.owners.component_records(entity));
        }
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .map(|c| (c, self.owns_value(entity, c)))
            .collect()
    }

    /// This peer no longer writes `(entity, component)`: the value it holds is stamped
    /// older than anything the host sends, and its own despawn no longer holds back the
    /// host's copy.
    fn yield_to_host(&mut self, entity: EntityId, component: ComponentId) {
        if component == WHOLE_ENTITY {
            if self.despawned.get(&entity) == Some(&u64::MAX) {
                self.despawned.remove(&entity);
            }
            self.world.restamp_remote(entity, None, 0);
        } else {
            self.world.restamp_remote(entity, Some(component), 0);
        }
    }

    /// Applies the host's state of what it grants this peer (a delta frame), over this
    /// peer's own values of it whatever their ticks: what this peer wrote in a tenure the
    /// host ended is replaced.
    pub fn apply_granted(&mut self, bytes: &[u8]) -> Result<Applied, ReplicaError> {
        let frame = match wire::decode(bytes) {
            Ok(Message::DeltaFrame(frame)) => frame,
            Ok(other) => {
                return Err(ReplicaError::Wire(WireError::UnexpectedPayload {
                    expected: "delta frame",
                    found: other.kind(),
                }))
            }
            Err(e) => return Err(e.into()),
        };
        let mut keys: Vec<(EntityId, ComponentId)> = Vec::new();
        for batch in frame.batches().iter().flatten() {
            let component = ComponentId(batch.component());
            // A malformed list is left for the full check to refuse.
            if let Ok(entities) = EntityList::parse(batch) {
                keys.extend(entities.iter().map(|e| (e, component)));
            }
        }
        for remove in frame.removes().iter().flatten() {
            let component = ComponentId(remove.component());
            keys.extend(remove.entities().iter().map(|e| (EntityId(e), component)));
        }
        for (entity, component) in keys {
            self.world.restamp_remote(entity, Some(component), 0);
        }
        self.granting = true;
        let result = self.apply(bytes);
        self.granting = false;
        result
    }
}
