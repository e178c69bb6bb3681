//! What one peer still needs, and the datagrams that bring it.
//!
//! Per (entity, component) key the outbox keeps the tick of its newest change until the
//! peer acknowledges a datagram that carried the key at that tick or later. Each tick it
//! sends the *current* state of the keys that changed since they were last sent, or whose
//! last sending went unacknowledged for longer than the resend delay: a lost datagram is
//! never re-sent as such, newer state replaces it, and it never delays later ones.
//! When not everything fits the byte budget, a priority accumulator (one point per tick
//! waited) decides what goes first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::delta::{Delta, SetBatch};
use crate::registry::{ComponentId, Layout};
use crate::wire::{size, Encoder};
use crate::world::{EntityId, World};

/// An (entity, component) key; component 0 stands for the entity itself (spawn/despawn).
pub(crate) type Key = (ComponentId, EntityId);

/// The entity itself, as a key component.
const ENTITY: ComponentId = ComponentId(0);

/// Datagrams remembered while unacknowledged; older ones count as lost.
const MAX_IN_FLIGHT: usize = 4096;
/// A datagram this many sequence numbers older than the newest acked one is lost.
const REORDER_THRESHOLD: u64 = 3;
/// Bytes of a state datagram besides its entries: message, datagram and frame tables,
/// and the repeated ack ranges.
const DATAGRAM_BASE: usize = 256;

#[derive(Debug)]
struct Pending {
    /// Tick of the newest change not yet acknowledged.
    changed: u64,
    /// Tick it was last sent at (0: never).
    sent_tick: u64,
    sent_at: Option<Instant>,
    priority: u32,
}

#[derive(Debug)]
struct InFlight {
    seq: u64,
    tick: u64,
    sent_at: Instant,
    keys: Vec<Key>,
}

/// Counters of one outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// State datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams the peer acknowledged.
    pub datagrams_acked: u64,
    /// Datagrams never acknowledged (their keys were re-sent as newer state).
    pub datagrams_lost: u64,
    /// Encoded bytes of the datagrams sent.
    pub datagram_bytes: u64,
    /// Values too large for a datagram, sent on the reliable stream.
    pub stream_frames: u64,
    /// Keys skipped this tick because the byte budget was spent.
    pub deferred_keys: u64,
}

/// Value bytes per component type in one encoded message, for the per-component wire
/// figures.
pub(crate) type ValueBytes = Vec<(ComponentId, usize)>;

/// What one call to [`Outbox::build`] produced.
#[derive(Debug, Default)]
pub(crate) struct Built {
    /// Encoded state datagrams, each decodable alone, with the value bytes of each
    /// component type they carry.
    pub datagrams: Vec<(Vec<u8>, ValueBytes)>,
    /// Encoded delta frames for the reliable stream (values too large for a datagram),
    /// with their value bytes.
    pub stream_frames: Vec<(Vec<u8>, ValueBytes)>,
}

/// Limits of one [`Outbox::build`] call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendLimits {
    /// Largest datagram the path takes.
    pub max_datagram: usize,
    /// Bytes this tick may use.
    pub budget: usize,
    /// How long a sent key waits for its ack before it is sent again.
    pub resend_after: Duration,
}

/// One peer's outstanding state.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pending: FxHashMap<Key, Pending>,
    in_flight: VecDeque<InFlight>,
    next_seq: u64,
    newest_acked: u64,
    pub stats: OutboxStats,
}

/// An entry chosen for a datagram.
enum Entry {
    Spawn,
    Despawn,
    Set,
    Remove,
}

impl Outbox {
    /// Notes that `key` changed at `tick`.
    pub(crate) fn mark(&mut self, key: Key, tick: u64) {
        let pending = self.pending.entry(key).or_insert(Pending {
            changed: 0,
            sent_tick: 0,
            sent_at: None,
            priority: 0,
        });
        pending.changed = pending.changed.max(tick);
    }

    /// Notes every change a delta lists, skipping entities `skip` says to (their owner
    /// already has them).
    pub(crate) fn mark_delta(&mut self, delta: &Delta, skip: impl Fn(EntityId) -> bool) {
        let tick = delta.tick;
        for &e in delta.spawns.iter().chain(&delta.despawns) {
            if !skip(e) {
                self.mark((ENTITY, e), tick);
            }
        }
        for change in delta.changes() {
            if !skip(change.entity) {
                self.mark((change.component, change.entity), tick);
            }
        }
        for (component, entity) in delta.removals() {
            if !skip(entity) {
                self.mark((component, entity), tick);
            }
        }
    }

    /// An acknowledgement-only datagram (when there is no state to send): it takes a
    /// sequence number of its own but is not tracked.
    pub(crate) fn ack_only(&mut self, acks: &[(u64, u64)], encoder: &mut Encoder) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq += 1;
        encoder.state_datagram(seq, acks, None)
    }

    /// Forgets the datagrams in flight (their connection is gone); their keys stay
    /// pending and go again.
    pub(crate) fn forget_in_flight(&mut self) {
        self.in_flight.clear();
        for pending in self.pending.values_mut() {
            pending.sent_at = None;
        }
    }

    /// Keys not yet acknowledged at their newest change.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Processes the peer's acknowledgements (inclusive ranges of our sequence numbers).
    pub(crate) fn on_acks(&mut self, ranges: &[(u64, u64)]) {
        let acked = |seq: u64| {
            ranges
                .iter()
                .any(|&(first, last)| (first..=last).contains(&seq))
        };
        if let Some(newest) = ranges.iter().map(|r| r.1).max() {
            self.newest_acked = self.newest_acked.max(newest);
        }
        let mut kept = VecDeque::with_capacity(self.in_flight.len());
        for flight in self.in_flight.drain(..) {
            if acked(flight.seq) {
                self.stats.datagrams_acked += 1;
                for key in &flight.keys {
                    if self
                        .pending
                        .get(key)
                        .is_some_and(|p| p.changed <= flight.tick)
                    {
                        self.pending.remove(key);
                    }
                }
            } else if flight.seq + REORDER_THRESHOLD < self.newest_acked {
                // Later datagrams were acknowledged and this one was not: lost. Its keys
                // are still pending and go again as the state of their next sending.
                self.stats.datagrams_lost += 1;
            } else {
                kept.push_back(flight);
            }
        }
        self.in_flight = kept;
    }

    /// Chooses what to send this tick, encodes it and records it as in flight.
    pub(crate) fn build(
        &mut self,
        world: &World,
        tick: u64,
        now: Instant,
        limits: SendLimits,
        acks: &[(u64, u64)],
        encoder: &mut Encoder,
    ) -> Built {
        let mut built = Built::default();
        self.expire(now, (limits.resend_after * 4).max(Duration::from_secs(1)));
        let mut chosen: Vec<(Key, u32)> = Vec::new();
        for (key, pending) in &mut self.pending {
            let due = match pending.sent_at {
                None => true,
                Some(at) => {
                    pending.sent_tick < pending.changed
                        || now.duration_since(at) >= limits.resend_after
                }
            };
            if due {
                pending.priority = pending.priority.saturating_add(1);
                chosen.push((*key, pending.priority));
            }
        }
        // Highest priority first; ties in key order, so a run is reproducible.
        chosen.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

        let room = limits.max_datagram.saturating_sub(DATAGRAM_BASE);
        let mut spent = 0usize;
        let mut current: Vec<(Key, Entry)> = Vec::new();
        let mut current_bytes = 0usize;
        let mut types_in_current: Vec<ComponentId> = Vec::new();
        for (index, &(key, _)) in chosen.iter().enumerate() {
            let (component, entity) = key;
            let alive = world.is_alive(entity);
            let (entry, cost) = if component == ENTITY {
                (
                    if alive { Entry::Spawn } else { Entry::Despawn },
                    size::ENTITY,
                )
            } else if !alive {
                // Moot: the entity's despawn travels under its own key.
                self.pending.remove(&key);
                continue;
            } else {
                match world.get(entity, component) {
                    Some(value) => {
                        let variable = world
                            .registry()
                            .get(component)
                            .is_some_and(|d| matches!(d.layout, Layout::Variable { .. }));
                        let cost =
                            size::ENTITY + value.len() + if variable { size::LENGTH } else { 0 };
                        if cost + size::BATCH_BASE > room {
                            // Too large for any datagram: the reliable stream carries it.
                            let frame = single_value_frame(world, tick, component, entity, encoder);
                            built
                                .stream_frames
                                .push((frame, vec![(component, value.len())]));
                            self.stats.stream_frames += 1;
                            self.pending.remove(&key);
                            continue;
                        }
                        (Entry::Set, cost)
                    }
                    None => (Entry::Remove, size::ENTITY),
                }
            };
            let batch_cost = if component != ENTITY && !types_in_current.contains(&component) {
                size::BATCH_BASE
            } else {
                0
            };
            // The budget bounds what this tick sends, but one datagram always goes, so a
            // tiny budget still makes progress.
            let started = spent > 0 || !current.is_empty();
            if started && spent + current_bytes + cost + batch_cost + DATAGRAM_BASE > limits.budget
            {
                self.stats.deferred_keys += (chosen.len() - index) as u64;
                break;
            }
            if current_bytes + cost + batch_cost > room {
                spent +=
                    self.finish_datagram(world, tick, now, acks, &mut current, encoder, &mut built);
                current_bytes = 0;
                types_in_current.clear();
            }
            if component != ENTITY && !types_in_current.contains(&component) {
                types_in_current.push(component);
                current_bytes += size::BATCH_BASE;
            }
            current_bytes += cost;
            current.push((key, entry));
        }
        if !current.is_empty() {
            self.finish_datagram(world, tick, now, acks, &mut current, encoder, &mut built);
        }
        built
    }

    /// Encodes `entries` as one datagram (empties it) and returns its size.
    #[allow(clippy::too_many_arguments)]
    fn finish_datagram(
        &mut self,
        world: &World,
        tick: u64,
        now: Instant,
        acks: &[(u64, u64)],
        entries: &mut Vec<(Key, Entry)>,
        encoder: &mut Encoder,
        built: &mut Built,
    ) -> usize {
        entries.sort_unstable_by_key(|(key, _)| *key);
        let mut delta = Delta {
            base_tick: 0,
            tick,
            ..Delta::default()
        };
        for ((component, entity), entry) in entries.iter() {
            match entry {
                Entry::Spawn => delta.spawns.push(*entity),
                Entry::Despawn => delta.despawns.push(*entity),
                Entry::Remove => match delta.removes.last_mut() {
                    Some((c, list)) if c == component => list.push(*entity),
                    _ => delta.removes.push((*component, vec![*entity])),
                },
                Entry::Set => {
                    let value = world.get(*entity, *component).unwrap_or_default();
                    if delta.sets.last().is_none_or(|b| b.component != *component) {
                        let variable = world
                            .registry()
                            .get(*component)
                            .is_some_and(|d| matches!(d.layout, Layout::Variable { .. }));
                        delta.sets.push(SetBatch {
                            component: *component,
                            entities: Vec::new(),
                            data: Vec::new(),
                            lengths: variable.then(Vec::new),
                            inserted: Vec::new(),
                        });
                    }
                    let batch = delta.sets.last_mut().expect("pushed above");
                    let i = batch.entities.len();
                    batch.entities.push(*entity);
                    batch.data.extend_from_slice(value);
                    if let Some(lengths) = &mut batch.lengths {
                        lengths.push(value.len() as u32);
                    }
                    if i % 8 == 0 {
                        batch.inserted.push(0);
                    }
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = delta.with_parts(|parts| encoder.state_datagram(seq, acks, Some(parts)));
        let values: ValueBytes = delta
            .sets
            .iter()
            .map(|batch| (batch.component, batch.data.len()))
            .collect();
        let len = bytes.len();
        let keys: Vec<Key> = entries.drain(..).map(|(key, _)| key).collect();
        for key in &keys {
            if let Some(pending) = self.pending.get_mut(key) {
                pending.sent_tick = tick;
                pending.sent_at = Some(now);
                pending.priority = 0;
            }
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.pop_front();
            self.stats.datagrams_lost += 1;
        }
        self.in_flight.push_back(InFlight {
            seq,
            tick,
            sent_at: now,
            keys,
        });
        self.stats.datagrams_sent += 1;
        self.stats.datagram_bytes += len as u64;
        built.datagrams.push((bytes, values));
        len
    }

    /// Counts as lost the datagrams unacknowledged for longer than `timeout` (when no
    /// later datagram is acknowledged either, the reorder rule cannot tell).
    fn expire(&mut self, now: Instant, timeout: Duration) {
        while let Some(flight) = self.in_flight.front() {
            if now.duration_since(flight.sent_at) < timeout {
                break;
            }
            self.in_flight.pop_front();
            self.stats.datagrams_lost += 1;
        }
    }
}

/// A delta frame carrying one value, for the reliable stream.
fn single_value_frame(
    world: &World,
    tick: u64,
    component: ComponentId,
    entity: EntityId,
    encoder: &mut Encoder,
) -> Vec<u8> {
    let value = world.get(entity, component).unwrap_or_default();
    let variable = world
        .registry()
        .get(component)
        .is_some_and(|d| matches!(d.layout, Layout::Variable { .. }));
    let delta = Delta {
        base_tick: 0,
        tick,
        sets: vec![SetBatch {
            component,
            entities: vec![entity],
            data: value.to_vec(),
            lengths: variable.then(|| vec![value.len() as u32]),
            inserted: vec![0],
        }],
        ..Delta::default()
    };
    delta.encode_with(encoder)
}
