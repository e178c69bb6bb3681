//! The queue of replica events the engine polls. Event bytes live in one arena instead of
//! a buffer per event; a poll hands out a batch whose bytes stay put until the next poll.

use std::collections::VecDeque;

use crate::registry::ComponentId;
use crate::world::EntityId;

/// What happened to the replica's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// An entity appeared.
    Spawn = 1,
    /// An entity gained a component; `data` is its value.
    Insert = 2,
    /// A component value changed; `data` is the new value.
    Update = 3,
    /// An entity lost a component.
    Remove = 4,
    /// An entity and all its components disappeared.
    Despawn = 5,
}

/// One event. `component` is `ComponentId(0)` and `data` empty for spawns and despawns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// What happened.
    pub kind: EventKind,
    /// The entity.
    pub entity: EntityId,
    /// The component, for inserts, updates and removes.
    pub component: ComponentId,
    /// Tick of the frame that caused it.
    pub tick: u64,
    /// The new value, for inserts and updates.
    pub data: &'a [u8],
}

#[derive(Clone, Copy, Debug)]
struct Record {
    kind: EventKind,
    entity: EntityId,
    component: ComponentId,
    tick: u64,
    start: usize,
    len: usize,
}

/// Pending events, plus the batch handed out by the last poll.
#[derive(Default)]
pub(crate) struct EventQueue {
    pending: VecDeque<Record>,
    arena: Vec<u8>,
    polled: Vec<Record>,
    polled_arena: Vec<u8>,
}

impl EventQueue {
    pub(crate) fn push(
        &mut self,
        kind: EventKind,
        entity: EntityId,
        component: ComponentId,
        tick: u64,
        data: &[u8],
    ) {
        let start = self.arena.len();
        self.arena.extend_from_slice(data);
        self.pending.push_back(Record {
            kind,
            entity,
            component,
            tick,
            start,
            len: data.len(),
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Moves up to `max` pending events into the polled batch, replacing the last one.
    pub(crate) fn poll(&mut self, max: usize) -> Events<'_> {
        self.polled.clear();
        self.polled_arena.clear();
        let count = max.min(self.pending.len());
        for mut record in self.pending.drain(..count) {
            let start = self.polled_arena.len();
            self.polled_arena
                .extend_from_slice(&self.arena[record.start..record.start + record.len]);
            record.start = start;
            self.polled.push(record);
        }
        match self.pending.front() {
            None => self.arena.clear(),
            // Compact once the consumed prefix is the larger part of the arena.
            Some(first) if first.start > self.arena.len() / 2 => {
                let consumed = first.start;
                self.arena.drain(..consumed);
                for record in &mut self.pending {
                    record.start -= consumed;
                }
            }
            Some(_) => {}
        }
        Events {
            records: &self.polled,
            arena: &self.polled_arena,
        }
    }
}

/// A batch of polled events.
pub struct Events<'a> {
    records: &'a [Record],
    arena: &'a [u8],
}

impl<'a> Events<'a> {
    /// Number of events in the batch.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Event `i` of the batch.
    pub fn get(&self, i: usize) -> Option<Event<'a>> {
        let r = self.records.get(i)?;
        Some(Event {
            kind: r.kind,
            entity: r.entity,
            component: r.component,
            tick: r.tick,
            data: &self.arena[r.start..r.start + r.len],
        })
    }

    /// The events in order.
    pub fn iter(&self) -> impl Iterator<Item = Event<'a>> + '_ {
        (0..self.records.len()).filter_map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_hands_out_batches_in_order_and_compacts() {
        let mut queue = EventQueue::default();
        for i in 0..10u8 {
            queue.push(
                EventKind::Update,
                EntityId(u64::from(i) + 1),
                ComponentId(7),
                1,
                &[i; 3],
            );
        }
        let batch = queue.poll(4);
        assert_eq!(batch.len(), 4);
        let values: Vec<u8> = batch.iter().map(|e| e.data[0]).collect();
        assert_eq!(values, [0, 1, 2, 3]);
        let batch = queue.poll(4);
        assert_eq!(batch.get(0).unwrap().data, &[4, 4, 4]);
        assert_eq!(queue.len(), 2);
        let batch = queue.poll(100);
        let values: Vec<u8> = batch.iter().map(|e| e.data[0]).collect();
        assert_eq!(values, [8, 9]);
        assert!(queue.poll(1).is_empty());
        assert!(queue.arena.is_empty());
    }
}
