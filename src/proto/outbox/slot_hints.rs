//! Where a key was last seen in an outbox's pending list: hints, checked before use.

use super::Key;
use crate::registry::ComponentId;
use crate::world::EntityId;

/// Slots at least, and per pending key.
const MIN_SLOTS: usize = 64;
const SLOTS_PER_PENDING: usize = 2;
/// An empty slot.
const NONE: u32 = u32::MAX;

/// Places in the pending list by a hash of the key, one per slot (a collision overwrites).
/// A hint may be stale or another key's: the outbox checks the entry it names.
#[derive(Debug, Default)]
pub(super) struct SlotHints {
    slots: Vec<u32>,
}

impl SlotHints {
    /// The slot of `key` (the slots are a power of two in number).
    fn at(&self, key: Key) -> usize {
        let (ComponentId(component), EntityId(entity)) = key;
        let mixed =
            (entity ^ u64::from(component).rotate_left(40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The high bits are the well-mixed ones; the mask keeps as many as there are slots.
        (mixed >> 32) as usize & self.slots.len().wrapping_sub(1)
    }

    /// The place last remembered for `key` (or for a key sharing its slot).
    pub(super) fn get(&self, key: Key) -> Option<usize> {
        let hint = *self.slots.get(self.at(key))?;
        (hint != NONE).then_some(hint as usize)
    }

    /// Remembers `place` for `key`, growing with the pending list (`pending` keys): grown,
    /// every slot starts empty.
    pub(super) fn remember(&mut self, key: Key, place: u32, pending: usize) {
        let wanted = (pending * SLOTS_PER_PENDING)
            .max(MIN_SLOTS)
            .next_power_of_two();
        if self.slots.len() < wanted {
            self.slots.clear();
            self.slots.resize(wanted, NONE);
        }
        let at = self.at(key);
        self.slots[at] = place;
    }

    /// Bytes the hints take.
    pub(super) fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_is_the_last_remembered_for_its_slot_and_growing_forgets_them_all() {
        let mut hints = SlotHints::default();
        let key = (ComponentId(7), EntityId(42));
        assert_eq!(hints.get(key), None);
        hints.remember(key, 3, 1);
        assert_eq!(hints.get(key), Some(3));
        assert_eq!(hints.bytes(), MIN_SLOTS * 4);
        hints.remember(key, 5, 1);
        assert_eq!(hints.get(key), Some(5));
        // Another key, remembered after the list outgrew the slots: the table doubled and
        // the first key's hint is gone.
        let other = (ComponentId(7), EntityId(43));
        hints.remember(other, 1, MIN_SLOTS);
        assert_eq!(hints.bytes(), 2 * MIN_SLOTS * 4);
        assert_eq!(hints.get(other), Some(1));
        assert_eq!(hints.get(key), None);
    }
}
