//! Who owns what: the owner records of entities and of single components, as a plain
//! table. Decisions (who may take what, leases) are the protocol's (`proto`); this module
//! only stores records and resolves an owner.
//!
//! Without a record, an entity belongs to its creator (the high 16 bits of its id), under
//! [`Policy::WhenFree`]. A record for component 0 covers the whole entity: its liveness and
//! every component without a record of its own. A record for one component overrides the
//! entity's for that component only.

use rustc_hash::FxHashMap;

use crate::registry::ComponentId;
use crate::wire::fb;
use crate::world::{EntityId, PeerId};

/// The whole entity, in an owner record's component field.
pub const WHOLE_ENTITY: ComponentId = ComponentId(0);
/// `owner` of a record nobody holds, on the wire.
pub const NOBODY: PeerId = PeerId::MAX;
/// Record flag: when the owner leaves for good, despawn the entity rather than release it.
pub const DESPAWN_WITH_OWNER: u8 = 1;
/// Record flag, set by the host only: the grant is leased (it lapses when its holder goes
/// silent).
pub const LEASED: u8 = 0x80;
/// The flags a peer may set.
pub const USER_FLAGS: u8 = DESPAWN_WITH_OWNER;

/// Who may take ownership from whom.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Policy {
    /// A request is granted when nobody owns it (never owned, released, or its holder's
    /// lease lapsed).
    #[default]
    WhenFree = 0,
    /// A request is always granted: the requester takes it from the holder.
    Takeover = 1,
    /// Granted only when nobody owns it; a grant holds until released (no lease).
    OwnerReleases = 2,
    /// Requests are refused: only the host assigns owners.
    HostOnly = 3,
}

impl Policy {
    /// The policy of a wire value; `None` for one this build does not know.
    pub fn from_u8(value: u8) -> Option<Policy> {
        match value {
            0 => Some(Policy::WhenFree),
            1 => Some(Policy::Takeover),
            2 => Some(Policy::OwnerReleases),
            3 => Some(Policy::HostOnly),
            _ => None,
        }
    }

    /// Whether a grant under this policy is leased.
    pub fn leases(self) -> bool {
        !matches!(self, Policy::OwnerReleases | Policy::HostOnly)
    }
}

/// One owner record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// The owner; `None` is nobody.
    pub owner: Option<PeerId>,
    /// Who may take it.
    pub policy: Policy,
    /// [`DESPAWN_WITH_OWNER`], [`LEASED`].
    pub flags: u8,
}

impl Record {
    /// The record of an entity that has none: its creator owns it.
    pub fn default_for(entity: EntityId) -> Record {
        Record {
            owner: Some(entity.creator()),
            policy: Policy::WhenFree,
            flags: 0,
        }
    }

    /// The wire form of this record for `(entity, component)`.
    pub fn to_wire(self, entity: EntityId, component: ComponentId) -> fb::OwnerEntry {
        fb::OwnerEntry::new(
            entity.0,
            component.0,
            self.owner.unwrap_or(NOBODY),
            fb::OwnershipPolicy(self.policy as u8),
            self.flags,
        )
    }

    /// A record from the wire; `None` when it names no entity or an unknown policy.
    pub fn from_wire(entry: &fb::OwnerEntry) -> Option<(EntityId, ComponentId, Record)> {
        let entity = EntityId(entry.entity());
        if !entity.is_valid() {
            return None;
        }
        let owner = match entry.owner() {
            NOBODY => None,
            peer => Some(peer),
        };
        let record = Record {
            owner,
            policy: Policy::from_u8(entry.policy().0)?,
            flags: entry.flags(),
        };
        Some((entity, ComponentId(entry.component()), record))
    }
}

/// The records of one entity.
#[derive(Clone, Debug, Default)]
struct EntityRecords {
    entity: Option<Record>,
    components: Vec<(ComponentId, Record)>,
}

/// The owner records of a session (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct Owners {
    records: FxHashMap<EntityId, EntityRecords>,
}

impl Owners {
    /// The record that decides `(entity, component)`: the component's own, else the
    /// entity's, else the default. With it, the component it is kept under.
    pub fn effective(&self, entity: EntityId, component: ComponentId) -> (ComponentId, Record) {
        let Some(records) = self.records.get(&entity) else {
            return (WHOLE_ENTITY, Record::default_for(entity));
        };
        if component != WHOLE_ENTITY {
            if let Some(&(c, r)) = records.components.iter().find(|(c, _)| *c == component) {
                return (c, r);
            }
        }
        (
            WHOLE_ENTITY,
            records
                .entity
                .unwrap_or_else(|| Record::default_for(entity)),
        )
    }

    /// Who owns `(entity, component)` (component 0: the entity itself).
    pub fn owner_of(&self, entity: EntityId, component: ComponentId) -> Option<PeerId> {
        self.effective(entity, component).1.owner
    }

    /// The record kept for exactly `(entity, component)`, if any.
    pub fn get(&self, entity: EntityId, component: ComponentId) -> Option<Record> {
        let records = self.records.get(&entity)?;
        if component == WHOLE_ENTITY {
            records.entity
        } else {
            records
                .components
                .iter()
                .find(|(c, _)| *c == component)
                .map(|&(_, r)| r)
        }
    }

    /// Keeps `record` for `(entity, component)`; an entity record equal to the default
    /// is dropped (a component record stays: it overrides the entity's).
    pub fn set(&mut self, entity: EntityId, component: ComponentId, record: Record) {
        let records = self.records.entry(entity).or_default();
        if component == WHOLE_ENTITY {
            records.entity = (record != Record::default_for(entity)).then_some(record);
        } else {
            match records.components.iter_mut().find(|(c, _)| *c == component) {
                Some((_, r)) => *r = record,
                None => records.components.push((component, record)),
            }
        }
        if records.entity.is_none() && records.components.is_empty() {
            self.records.remove(&entity);
        }
    }

    /// Forgets every record of `entity` (it was despawned; ids are never reused).
    pub fn forget_entity(&mut self, entity: EntityId) {
        self.records.remove(&entity);
    }

    /// Forgets every record.
    pub fn clear(&mut self) {
        self.records.clear();
    }

    /// The components of `entity` that have records of their own.
    pub fn component_records(&self, entity: EntityId) -> impl Iterator<Item = ComponentId> + '_ {
        self.records
            .get(&entity)
            .into_iter()
            .flat_map(|r| r.components.iter().map(|&(c, _)| c))
    }

    /// Every kept record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (EntityId, ComponentId, Record)> + '_ {
        self.records.iter().flat_map(|(&entity, records)| {
            records
                .entity
                .map(|r| (entity, WHOLE_ENTITY, r))
                .into_iter()
                .chain(records.components.iter().map(move |&(c, r)| (entity, c, r)))
        })
    }

    /// Number of kept records.
    pub fn len(&self) -> usize {
        self.records
            .values()
            .map(|r| usize::from(r.entity.is_some()) + r.components.len())
            .sum()
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(peer: PeerId, n: u64) -> EntityId {
        EntityId::new(peer, n).unwrap()
    }

    #[test]
    fn without_records_the_creator_owns_everything_of_an_entity() {
        let owners = Owners::default();
        assert_eq!(owners.owner_of(e(3, 1), WHOLE_ENTITY), Some(3));
        assert_eq!(owners.owner_of(e(3, 1), ComponentId(7)), Some(3));
        assert!(owners.is_empty());
    }

    #[test]
    fn a_component_record_overrides_the_entity_record_for_that_component_only() {
        let mut owners = Owners::default();
        let entity = e(0, 1);
        let held = |peer| Record {
            owner: Some(peer),
            policy: Policy::WhenFree,
            flags: LEASED,
        };
        owners.set(entity, WHOLE_ENTITY, held(2));
        owners.set(entity, ComponentId(9), held(5));
        assert_eq!(owners.owner_of(entity, WHOLE_ENTITY), Some(2));
        assert_eq!(owners.owner_of(entity, ComponentId(8)), Some(2));
        assert_eq!(owners.owner_of(entity, ComponentId(9)), Some(5));
        assert_eq!(owners.effective(entity, ComponentId(9)).0, ComponentId(9));
        assert_eq!(owners.effective(entity, ComponentId(8)).0, WHOLE_ENTITY);
        assert_eq!(owners.len(), 2);
        owners.forget_entity(entity);
        assert_eq!(owners.owner_of(entity, ComponentId(9)), Some(0));
    }

    #[test]
    fn an_entity_record_equal_to_the_default_is_not_kept() {
        let mut owners = Owners::default();
        let entity = e(4, 2);
        owners.set(
            entity,
            WHOLE_ENTITY,
            Record {
                owner: None,
                policy: Policy::Takeover,
                flags: 0,
            },
        );
        assert_eq!(owners.len(), 1);
        owners.set(entity, WHOLE_ENTITY, Record::default_for(entity));
        assert!(owners.is_empty());
    }

    #[test]
    fn records_survive_the_wire_and_hostile_ones_are_refused() {
        let entity = e(1, 77);
        let record = Record {
            owner: None,
            policy: Policy::OwnerReleases,
            flags: DESPAWN_WITH_OWNER | LEASED,
        };
        let wire = record.to_wire(entity, ComponentId(12));
        assert_eq!(
            Record::from_wire(&wire),
            Some((entity, ComponentId(12), record))
        );
        let bad_policy = fb::OwnerEntry::new(entity.0, 0, 1, fb::OwnershipPolicy(9), 0);
        assert_eq!(Record::from_wire(&bad_policy), None);
        let no_entity = fb::OwnerEntry::new(0, 0, 1, fb::OwnershipPolicy(0), 0);
        assert_eq!(Record::from_wire(&no_entity), None);
    }
}
