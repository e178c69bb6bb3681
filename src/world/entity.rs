//! Network entity ids: creator peer in the high 16 bits, that peer's counter in the low 48.

use std::fmt;

/// A peer of a session. The host is peer 0 unless configured otherwise.
pub type PeerId = u16;

/// Largest counter a peer can allocate (48 bits).
pub const MAX_ENTITY_COUNTER: u64 = (1 << 48) - 1;

/// A network entity id, unique for the whole session and never reused, so a stale id can
/// never alias a new entity. 0 is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityId(pub u64);

impl EntityId {
    /// The id made by `peer` with `counter` (1 ..= [`MAX_ENTITY_COUNTER`]).
    pub fn new(peer: PeerId, counter: u64) -> Option<Self> {
        (1..=MAX_ENTITY_COUNTER)
            .contains(&counter)
            .then(|| EntityId((u64::from(peer) << 48) | counter))
    }

    /// The peer that created this entity (and owns it unless ownership moved).
    pub fn creator(self) -> PeerId {
        (self.0 >> 48) as PeerId
    }

    /// The creator's counter.
    pub fn counter(self) -> u64 {
        self.0 & MAX_ENTITY_COUNTER
    }

    /// Whether this id could have been issued (counter non-zero).
    pub fn is_valid(self) -> bool {
        self.counter() != 0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.creator(), self.counter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_peer_and_counter() {
        let id = EntityId::new(3, 42).unwrap();
        assert_eq!(id.creator(), 3);
        assert_eq!(id.counter(), 42);
        assert_eq!(id.0, (3 << 48) | 42);
        assert_eq!(id.to_string(), "3:42");
        assert!(EntityId::new(0, 0).is_none());
        assert!(EntityId::new(0, MAX_ENTITY_COUNTER + 1).is_none());
        assert!(!EntityId(1 << 48).is_valid());
    }
}
