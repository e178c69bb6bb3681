//! The log of local changes by tick, so a delta since tick T visits only what changed
//! after T instead of rescanning the world.

use std::collections::VecDeque;

use super::entity::EntityId;
use crate::registry::ComponentId;

/// What a journal entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// Entity created.
    Spawn,
    /// Value inserted or changed (first change of the key in this tick only).
    Set,
    /// Component removed from a live entity.
    Remove,
    /// Entity destroyed.
    Despawn,
}

/// One logged change.
///
/// `at` and `row` say where the value was when it was logged (column in registry order,
/// row in that column), so walking the journal needs no hash lookup per entry. They are
/// hints: registering a type shifts columns and a removal moves a row, so a reader checks
/// them against `component` and `entity` and looks the key up only when they are stale.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub tick: u64,
    pub entity: EntityId,
    pub component: ComponentId,
    /// Column index hint (0 for spawns and despawns).
    pub at: u32,
    /// Row hint (0 unless the entry is a set): right as long as the column removed no
    /// row after the entry was logged (see `Column::rows_valid_from`).
    pub row: u32,
    pub kind: EntryKind,
}

impl Entry {
    /// An entry of an entity's own life (spawn, despawn): no component, no hints.
    pub(crate) fn entity(tick: u64, entity: EntityId, kind: EntryKind) -> Self {
        Entry {
            tick,
            entity,
            component: ComponentId(0),
            at: 0,
            row: 0,
            kind,
        }
    }
}

/// Changes in tick order; holds every change with a tick above `floor`.
#[derive(Default)]
pub(crate) struct Journal {
    entries: VecDeque<Entry>,
    floor: u64,
    /// Entries ever recorded: the sequence number of the next one. Entry `i` of
    /// `entries` has number `recorded - entries.len() + i`.
    recorded: u64,
}

impl Journal {
    pub(crate) fn record(&mut self, entry: Entry) {
        debug_assert!(self
            .entries
            .back()
            .is_none_or(|last| last.tick <= entry.tick));
        self.entries.push_back(entry);
        self.recorded += 1;
    }

    /// The sequence number the next entry gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.recorded
    }

    /// Every change logged with a tick above `tick`, oldest first, with its sequence
    /// number.
    pub(crate) fn since(&self, tick: u64) -> impl Iterator<Item = (u64, &Entry)> {
        let start = self.start_after(tick);
        let first = self.recorded - self.entries.len() as u64;
        (first + start as u64..).zip(self.entries.range(start..))
    }

    /// Index of the first entry with a tick above `tick`. Deltas are mostly taken over the
    /// last few ticks: the search gallops back from the newest entries (which the walk
    /// reads next) before bisecting, instead of bisecting the whole history.
    fn start_after(&self, tick: u64) -> usize {
        let len = self.entries.len();
        let (mut low, mut high, mut step) = (0, len, 1);
        // Invariant: every entry from `high` on is above `tick`.
        while step <= len {
            let probe = len - step;
            if self.entries[probe].tick <= tick {
                low = probe + 1;
                break;
            }
            high = probe;
            step *= 2;
        }
        while low < high {
            let mid = low + (high - low) / 2;
            if self.entries[mid].tick <= tick {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// Changes with ticks at or below this are forgotten; deltas need a base above it.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// Forgets changes at or below `floor`.
    pub(crate) fn trim(&mut self, floor: u64) {
        if floor <= self.floor {
            return;
        }
        self.floor = floor;
        let keep_from = self.entries.partition_point(|e| e.tick <= floor);
        self.entries.drain(..keep_from);
        // Give back memory after a burst (a large initial spawn, a mass update).
        if self.entries.capacity() > 4 * self.entries.len().max(1024) {
            self.entries.shrink_to(2 * self.entries.len());
        }
    }

    /// Forgets whole ticks, oldest first, until at most `max` entries remain, but never
    /// ticks above `highest_floor`.
    pub(crate) fn trim_to_entries(&mut self, max: usize, highest_floor: u64) {
        if self.entries.len() <= max {
            return;
        }
        // The first entry to keep decides the floor; all of its tick must stay or go.
        let cut = self.entries[self.entries.len() - max].tick;
        self.trim(cut.min(highest_floor));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The galloping search finds what a bisection of the whole journal finds.
    #[test]
    fn start_after_matches_a_full_bisection() {
        let mut journal = Journal::default();
        for len in 0..70u64 {
            for tick in 0..len / 3 + 3 {
                let expected = journal.entries.partition_point(|e| e.tick <= tick);
                assert_eq!(
                    journal.start_after(tick),
                    expected,
                    "len {len}, tick {tick}"
                );
            }
            // Several entries per tick, ticks skipped now and then.
            let tick = len / 3 + len / 17;
            journal.record(Entry::entity(tick, EntityId(len + 1), EntryKind::Spawn));
        }
        journal.trim(5);
        assert!(journal.since(4).all(|(_, e)| e.tick > 5));
        let first = journal.since(0).next().map(|(seq, _)| seq);
        assert_eq!(first, Some(journal.next_seq() - journal.len() as u64));
    }
}
