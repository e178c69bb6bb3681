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
        let start = self.entries.partition_point(|e| e.tick <= tick);
        let first = self.recorded - self.entries.len() as u64;
        (first + start as u64..).zip(self.entries.range(start..))
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
