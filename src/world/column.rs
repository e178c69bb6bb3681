//! Dense storage of one component type: entities, change ticks and values in parallel
//! vectors, fixed-size values back to back in one buffer.

use rustc_hash::FxHashMap;

use super::entity::EntityId;
use crate::registry::Layout;

/// What a write did to the stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The entity did not hold the component; it does now.
    Inserted,
    /// The value's bytes changed.
    Updated,
    /// The bytes were identical: not a change, no tick moved.
    Unchanged,
}

enum Values {
    /// `size` bytes per row in one buffer, row `i` at `i * size`.
    Fixed { size: usize, bytes: Vec<u8> },
    /// One buffer per row.
    Variable(Vec<Vec<u8>>),
}

/// Values of one component type, with the tick each was inserted and last changed.
pub(crate) struct Column {
    rows: FxHashMap<EntityId, u32>,
    entities: Vec<EntityId>,
    changed: Vec<u64>,
    added: Vec<u64>,
    values: Values,
    /// Whether rows are in ascending entity order (spawn order keeps them so; a removal
    /// that moves the last row into a hole does not).
    sorted: bool,
    /// Journal sequence number at the last removal: rows change only by removal, so a
    /// row logged by an entry numbered at or above this is still the key's row.
    rows_valid_from: u64,
}

impl Column {
    pub(crate) fn new(layout: Layout) -> Self {
        let values = match layout {
            Layout::Fixed(size) => Values::Fixed {
                size: size as usize,
                bytes: Vec::new(),
            },
            Layout::Variable { .. } => Values::Variable(Vec::new()),
        };
        Column {
            rows: FxHashMap::default(),
            entities: Vec::new(),
            changed: Vec::new(),
            added: Vec::new(),
            values,
            sorted: true,
            rows_valid_from: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entities.len()
    }

    pub(crate) fn row(&self, entity: EntityId) -> Option<usize> {
        self.rows.get(&entity).map(|&row| row as usize)
    }

    pub(crate) fn entity(&self, row: usize) -> EntityId {
        self.entities[row]
    }

    pub(crate) fn entities(&self) -> &[EntityId] {
        &self.entities
    }

    pub(crate) fn changed(&self, row: usize) -> u64 {
        self.changed[row]
    }

    pub(crate) fn added(&self, row: usize) -> u64 {
        self.added[row]
    }

    pub(crate) fn value(&self, row: usize) -> &[u8] {
        match &self.values {
            Values::Fixed { size, bytes } => &bytes[row * size..(row + 1) * size],
            Values::Variable(values) => &values[row],
        }
    }

    /// The contiguous values of rows `start..end` when the layout is fixed.
    pub(crate) fn fixed_values(&self, start: usize, end: usize) -> Option<&[u8]> {
        match &self.values {
            Values::Fixed { size, bytes } => Some(&bytes[start * size..end * size]),
            Values::Variable(_) => None,
        }
    }

    /// The rows in ascending entity order, or `None` when the rows already are in that
    /// order (the common case, which lets snapshots copy values in runs).
    pub(crate) fn entity_order(&self) -> Option<Vec<u32>> {
        if self.sorted {
            return None;
        }
        let mut order: Vec<u32> = (0..self.entities.len() as u32).collect();
        order.sort_unstable_by_key(|&row| self.entities[row as usize]);
        Some(order)
    }

    /// The row of `entity` for a journal entry numbered `seq` that logged row `hint`:
    /// the hint itself when no removal happened since (a removal may move a row into a
    /// hole, or free the last row for another entity), else a lookup.
    pub(crate) fn logged_row(&self, entity: EntityId, seq: u64, hint: u32) -> Option<usize> {
        let hint = hint as usize;
        if seq >= self.rows_valid_from && hint < self.entities.len() {
            debug_assert_eq!(self.entities[hint], entity);
            return Some(hint);
        }
        if self.entities.get(hint) == Some(&entity) {
            return Some(hint);
        }
        self.row(entity)
    }

    /// Overwrites row `row` with `bytes` when they differ, stamping the change with `tick`.
    pub(crate) fn update(&mut self, row: usize, bytes: &[u8], tick: u64) -> Change {
        {
            let changed = match &mut self.values {
                Values::Fixed { size, bytes: all } => {
                    let slot = &mut all[row * *size..(row + 1) * *size];
                    let changed = slot != bytes;
                    if changed {
                        slot.copy_from_slice(bytes);
                    }
                    changed
                }
                Values::Variable(values) => {
                    let slot = &mut values[row];
                    let changed = slot.as_slice() != bytes;
                    if changed {
                        slot.clear();
                        slot.extend_from_slice(bytes);
                    }
                    changed
                }
            };
            if !changed {
                return Change::Unchanged;
            }
            self.changed[row] = tick;
            Change::Updated
        }
    }

    /// Appends a value for an entity that holds none; returns its row.
    pub(crate) fn insert(&mut self, entity: EntityId, bytes: &[u8], tick: u64) -> (Change, usize) {
        let row = self.entities.len();
        if let Some(&last) = self.entities.last() {
            self.sorted &= last < entity;
        }
        self.rows.insert(entity, row as u32);
        self.entities.push(entity);
        self.changed.push(tick);
        self.added.push(tick);
        match &mut self.values {
            Values::Fixed { bytes: all, .. } => all.extend_from_slice(bytes),
            Values::Variable(values) => values.push(bytes.to_vec()),
        }
        (Change::Inserted, row)
    }

    /// Moves a row's change tick forward without touching its bytes.
    pub(crate) fn stamp(&mut self, row: usize, tick: u64) {
        self.changed[row] = self.changed[row].max(tick);
    }

    /// Sets a row's change tick, older or newer, without touching its bytes.
    pub(crate) fn set_stamp(&mut self, row: usize, tick: u64) {
        self.changed[row] = tick;
    }

    /// Removes the entity's value; false when it held none. `seq` is the journal's next
    /// sequence number: row hints of earlier entries are stale from now on.
    pub(crate) fn remove(&mut self, entity: EntityId, seq: u64) -> bool {
        let Some(row) = self.rows.remove(&entity) else {
            return false;
        };
        self.rows_valid_from = seq;
        let row = row as usize;
        let last = self.entities.len() - 1;
        self.entities.swap_remove(row);
        self.changed.swap_remove(row);
        self.added.swap_remove(row);
        match &mut self.values {
            Values::Fixed { size, bytes } => {
                if row != last {
                    bytes.copy_within(last * *size..(last + 1) * *size, row * *size);
                }
                bytes.truncate(last * *size);
            }
            Values::Variable(values) => {
                values.swap_remove(row);
            }
        }
        if row != last {
            self.rows.insert(self.entities[row], row as u32);
            self.sorted = false;
        }
        if self.entities.is_empty() {
            self.sorted = true;
        }
        true
    }

    /// Approximate heap bytes held, for memory reports.
    pub(crate) fn heap_bytes(&self) -> usize {
        let per_row_index = std::mem::size_of::<(EntityId, u32)>() + 1;
        let values = match &self.values {
            Values::Fixed { bytes, .. } => bytes.capacity(),
            Values::Variable(values) => {
                values.capacity() * std::mem::size_of::<Vec<u8>>()
                    + values.iter().map(Vec::capacity).sum::<usize>()
            }
        };
        self.rows.capacity() * per_row_index
            + self.entities.capacity() * std::mem::size_of::<EntityId>()
            + (self.changed.capacity() + self.added.capacity()) * std::mem::size_of::<u64>()
            + values
    }
}
