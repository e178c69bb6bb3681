//! What one peer still needs, and the datagrams that bring it.
//!
//! Per (entity, component) key the outbox keeps the tick of its newest change until the
//! peer acknowledges a datagram that carried the key at that tick or later. Each tick it
//! sends the *current* state of the keys that changed since they were last sent, or whose
//! last sending went unacknowledged for longer than the resend delay: a lost datagram is
//! never re-sent as such, newer state replaces it, and it never delays later ones.
//! When not everything fits the byte budget, a priority accumulator (one point per tick
//! waited) decides what goes first.
//!
//! Datagrams overtake each other on real paths (Wi-Fi reorders by delay variation), so
//! nothing here infers loss from order: a datagram sent stays on record, by sequence
//! number, until an acknowledgement names it (however late) or it ages out. The resend
//! delay is the acknowledgement round trip as this outbox measures it (ticks of both
//! sides included), smoothed as TCP smooths its own (RFC 6298).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::baselines::{Baselines, KeyBaseline, Pair, Send, RECORD_BYTES};
use super::value_coding::{Coded, ValueCoder};
use crate::delta::{ChangedKeys, Delta, SetBatch};
use crate::registry::{ComponentId, Layout};
use crate::wire::{size, Encoder, FrameParts, LaneBatch};
use crate::world::{EntityId, World};

/// An (entity, component) key; component 0 stands for the entity itself (spawn/despawn).
pub(crate) type Key = (ComponentId, EntityId);

/// The entity itself, as a key component.
const ENTITY: ComponentId = ComponentId(0);

/// Datagrams remembered while unacknowledged; beyond this the oldest counts as lost.
const MAX_IN_FLIGHT: usize = 4096;
/// Bytes of a state datagram besides its entries and acknowledgement ranges: message,
/// datagram and frame tables, vector headers and padding.
const DATAGRAM_BASE: usize = 256;
/// An unacknowledged datagram is forgotten (counted lost) after this many resend delays,
/// and never sooner than [`MIN_FLIGHT_AGE`]: a late acknowledgement still counts until
/// then.
const FLIGHT_AGE_IN_RESENDS: u32 = 4;
const MIN_FLIGHT_AGE: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Pending {
    /// Tick of the newest change not yet acknowledged.
    changed: u64,
    /// Tick it was last sent at (0: never).
    sent_tick: u64,
    sent_at: Option<Instant>,
    priority: u32,
    /// Host: the key's baselines with this peer, here while it is pending (the key is
    /// looked up once per value sent or acknowledged); at rest in `Outbox::baselines`
    /// otherwise.
    base: KeyBaseline,
}

#[derive(Debug)]
struct InFlight {
    tick: u64,
    sent_at: Instant,
    /// Its keys, with the send of those whose values it carried on record in the shared
    /// `ValueHistory` (to become baselines when acknowledged).
    keys: Vec<(Key, Option<Send>)>,
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
    /// Keys sent again unchanged because their acknowledgement did not come within the
    /// resend delay (their datagram was lost, or its acknowledgement late).
    pub keys_resent: u64,
    /// Values coded against a baseline the peer acknowledged.
    pub values_on_baselines: u64,
    /// Of those, values of declared fields coded against the prediction through two
    /// baselines (see `wire::lanes::predict`).
    pub values_predicted: u64,
    /// Bytes of this peer's baseline records now (the values behind them are shared
    /// by every peer: see `SessionDiagnostics::value_history_bytes`).
    pub baseline_bytes: u64,
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
    /// Resend delay until the outbox has measured acknowledgement round trips of its own
    /// (see [`Outbox::resend_after`]).
    pub initial_resend: Duration,
}

/// The acknowledgement round trip: from sending a datagram to taking in the
/// acknowledgement that names it, so both sides' tick intervals are included. Smoothed
/// as RFC 6298 smooths TCP's.
#[derive(Clone, Copy, Debug, Default)]
struct AckRtt {
    smoothed: Option<Duration>,
}

impl AckRtt {
    fn sample(&mut self, rtt: Duration) {
        self.smoothed = Some(match self.smoothed {
            None => rtt,
            Some(srtt) => (srtt * 7 + rtt) / 8,
        });
    }

    /// How long a key waits for its acknowledgement before it goes again: the smoothed
    /// round trip, with no variation margin, unlike TCP's timer. A needless resend costs
    /// one small value of a key that stopped changing (keys that keep changing go every
    /// tick anyway), a late one delays convergence by the whole margin: with 20 ± 20 ms
    /// each way, two variations of margin cost half a round trip of convergence and saved
    /// under 2 % of the bytes.
    fn resend_after(&self) -> Option<Duration> {
        self.smoothed.map(|srtt| srtt + Duration::from_millis(1))
    }
}

/// One peer's outstanding state.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pending: FxHashMap<Key, Pending>,
    /// Datagrams sent and not yet acknowledged, by sequence number.
    in_flight: BTreeMap<u64, InFlight>,
    next_seq: u64,
    rtt: AckRtt,
    pub stats: OutboxStats,
    /// Client: the ownership messages applied, carried by every frame it writes (see
    /// `proto::ownership`); 0 on the host.
    pub(crate) owner_seq: u64,
    /// Host: values coded against what the peer acknowledged (see `proto::baselines`);
    /// the records of keys at rest (a pending key's is in its entry).
    pub(crate) baselines: Option<Baselines>,
    /// Host: values of components with declared fields go as lanes (a client's writes
    /// go raw: the host takes them as a replica takes a snapshot, bit for bit).
    pub(crate) lanes: bool,
}

/// What every datagram of one build is made at: the world, the tick, the time, and the
/// acknowledgement ranges it carries.
type DatagramAt<'a> = (&'a World, u64, Instant, &'a [(u64, u64)]);

/// An entry chosen for a datagram.
enum Entry {
    Spawn,
    Despawn,
    /// A value and its length.
    Set(Coded, usize),
    Remove,
}

impl Outbox {
    /// Notes that `key` changed at `tick`.
    pub(crate) fn mark(&mut self, key: Key, tick: u64) {
        let baselines = &mut self.baselines;
        let pending = self.pending.entry(key).or_insert_with(|| Pending {
            changed: 0,
            sent_tick: 0,
            sent_at: None,
            priority: 0,
            base: baselines
                .as_mut()
                .map_or_else(KeyBaseline::default, |b| b.take(key)),
        });
        pending.changed = pending.changed.max(tick);
    }

    /// Notes every key that changed (see [`World::changed_keys_since`]), skipping those
    /// `skip` says to (their owner already has them).
    pub(crate) fn mark_changes(&mut self, keys: &ChangedKeys, skip: impl Fn(Key) -> bool) {
        let tick = keys.tick;
        for &e in keys.spawns.iter().chain(&keys.despawns) {
            if !skip((ENTITY, e)) {
                self.mark((ENTITY, e), tick);
            }
        }
        for &key in keys.sets.iter().chain(&keys.removes) {
            if !skip(key) {
                self.mark(key, tick);
            }
        }
    }

    /// Drops the pending keys `drop` names (this side no longer writes them).
    pub(crate) fn forget_keys(&mut self, drop: impl Fn(Key) -> bool) {
        self.pending.retain(|&key, _| !drop(key));
        if let Some(baselines) = &mut self.baselines {
            baselines.forget(drop);
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
        // A new connection: the peer's history of received values starts again.
        if let Some(baselines) = &mut self.baselines {
            baselines.clear();
        }
        for pending in self.pending.values_mut() {
            pending.sent_at = None;
            pending.base = KeyBaseline::default();
        }
    }

    /// When a key is next due to go, seen at `now`: `now` for one never sent or changed
    /// since, its resend delay after its last sending otherwise; `None` when nothing is
    /// pending.
    pub(crate) fn next_due(&self, now: Instant, initial_resend: Duration) -> Option<Instant> {
        let resend_after = self.resend_after(initial_resend);
        let mut earliest: Option<Instant> = None;
        for p in self.pending.values() {
            let due = match p.sent_at {
                Some(at) if p.sent_tick >= p.changed => (at + resend_after).max(now),
                _ => return Some(now),
            };
            earliest = Some(earliest.map_or(due, |e| e.min(due)));
        }
        earliest
    }

    /// Keys not yet acknowledged at their newest change.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The resend delay now: measured (see [`AckRtt::resend_after`]), or `initial` before
    /// the first acknowledgement.
    pub(crate) fn resend_after(&self, initial: Duration) -> Duration {
        self.rtt.resend_after().unwrap_or(initial)
    }

    /// Processes the peer's acknowledgements (inclusive ranges of our sequence numbers,
    /// in any order, naming datagrams in any order, repeated or not), taken in at `now`.
    pub(crate) fn on_acks(&mut self, ranges: &[(u64, u64)], now: Instant) {
        let mut newest: Option<(u64, Instant)> = None;
        for &(first, last) in ranges {
            if first > last {
                continue;
            }
            // The records in first..=last, cut out of the map in O(log n).
            let mut acked = self.in_flight.split_off(&first);
            if let Some(after) = last.checked_add(1) {
                let mut rest = acked.split_off(&after);
                self.in_flight.append(&mut rest);
            }
            for (seq, flight) in acked {
                self.stats.datagrams_acked += 1;
                if newest.is_none_or(|(s, _)| seq > s) {
                    newest = Some((seq, flight.sent_at));
                }
                for (key, send) in flight.keys {
                    let Some(pending) = self.pending.get_mut(&key) else {
                        if let Some(send) = send {
                            if let Some(base) = self.baselines.as_mut().and_then(|b| b.get_mut(key))
                            {
                                base.acked(send);
                            }
                        }
                        continue;
                    };
                    if let Some(send) = send {
                        pending.base.acked(send);
                    }
                    if pending.changed <= flight.tick {
                        let base = pending.base;
                        self.pending.remove(&key);
                        if let Some(baselines) = &mut self.baselines {
                            baselines.rest(key, base);
                        }
                    }
                }
            }
        }
        // One sample per acknowledgement, from the newest datagram it names first (an
        // older one may have waited behind a lost acknowledgement).
        if let Some((_, sent_at)) = newest {
            self.rtt.sample(now.saturating_duration_since(sent_at));
        }
    }

    /// Chooses what to send this tick, encodes it and records it as in flight; `points`
    /// gives what a waiting key of an entity gains per tick (see `proto::priority`);
    /// `coder` codes the values (the host shares one among its clients).
    // The tick's inputs, each from a different owner (world, link, encoder): bundling
    // them would only move the list into a struct built for this one call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        &mut self,
        world: &World,
        tick: u64,
        now: Instant,
        limits: SendLimits,
        acks: &[(u64, u64)],
        points: &dyn Fn(EntityId) -> u32,
        coder: &mut ValueCoder,
        encoder: &mut Encoder,
    ) -> Built {
        let mut built = Built::default();
        let resend_after = self.resend_after(limits.initial_resend);
        self.expire(
            now,
            (resend_after * FLIGHT_AGE_IN_RESENDS).max(MIN_FLIGHT_AGE),
        );
        coder.begin(tick);
        // With each key, the baselines it may be coded against (read here, where the
        // entry is at hand; its send is recorded when its datagram is encoded).
        let mut chosen: Vec<(Key, u32, Option<Pair>)> = Vec::new();
        for (key, pending) in &mut self.pending {
            let due = match pending.sent_at {
                None => true,
                Some(_) if pending.sent_tick < pending.changed => true,
                Some(at) => now.saturating_duration_since(at) >= resend_after,
            };
            if due {
                pending.priority = pending.priority.saturating_add(points(key.1));
                chosen.push((*key, pending.priority, pending.base.pair(tick)));
            }
        }
        // Highest priority first; ties in key order, so a run is reproducible.
        chosen.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

        // The acknowledgement ranges repeat in every datagram of this tick.
        let base = DATAGRAM_BASE + acks.len() * size::ACK_RANGE;
        let room = limits.max_datagram.saturating_sub(base);
        let mut spent = 0usize;
        let mut current: Vec<(Key, Entry)> = Vec::new();
        let at: DatagramAt<'_> = (world, tick, now, acks);
        let mut current_bytes = 0usize;
        let mut types_in_current: Vec<ComponentId> = Vec::new();
        for (index, &(key, _, pair)) in chosen.iter().enumerate() {
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
                        let on_baselines = self.baselines.is_some()
                            && ValueCoder::on_baselines(!variable, value.len());
                        let coded = coder.code(
                            key,
                            value,
                            world.registry().fields(component).filter(|_| self.lanes),
                            on_baselines.then_some(pair),
                        );
                        let cost = coded.as_ref().map_or(usize::MAX, |c| {
                            size::ENTITY + c.range.len() + if variable { size::LENGTH } else { 0 }
                        });
                        let Some(coded) = coded.filter(|_| cost + size::BATCH_BASE <= room) else {
                            // Too large for any datagram (or not quantisable, which the
                            // world prevents): the reliable stream carries it raw.
                            let frame = single_value_frame(
                                world,
                                tick,
                                (component, entity),
                                self.owner_seq,
                                encoder,
                            );
                            built
                                .stream_frames
                                .push((frame, vec![(component, value.len())]));
                            self.stats.stream_frames += 1;
                            self.pending.remove(&key);
                            continue;
                        };
                        (Entry::Set(coded, value.len()), cost)
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
            if started && spent + current_bytes + cost + batch_cost + base > limits.budget {
                self.stats.deferred_keys += (chosen.len() - index) as u64;
                break;
            }
            if current_bytes + cost + batch_cost > room {
                spent += self.finish_datagram(at, &mut current, (coder, encoder), &mut built);
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
            self.finish_datagram(at, &mut current, (coder, encoder), &mut built);
        }
        built
    }

    /// Encodes `entries` as one datagram (empties it) and returns its size.
    fn finish_datagram(
        &mut self,
        (world, tick, now, acks): DatagramAt<'_>,
        entries: &mut Vec<(Key, Entry)>,
        (coder, encoder): (&ValueCoder, &mut Encoder),
        built: &mut Built,
    ) -> usize {
        entries.sort_unstable_by_key(|(key, _)| *key);
        let mut delta = Delta {
            base_tick: 0,
            tick,
            ..Delta::default()
        };
        // Per batch: per value, the age of its baseline (see `proto::baselines`); the
        // values as lanes (components with declared fields); raw value bytes carried.
        let mut ages: Vec<Vec<u8>> = Vec::new();
        let mut lanes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut raw_bytes: Vec<usize> = Vec::new();
        // Per entry: whether it counts as a send of its key (the peer keeps each value of
        // a size on baselines), and whether it is on record to become a baseline.
        let mut sends: Vec<(bool, bool)> = Vec::with_capacity(entries.len());
        for ((component, entity), entry) in entries.iter() {
            let mut send = (false, false);
            match entry {
                Entry::Spawn => delta.spawns.push(*entity),
                Entry::Despawn => {
                    if let Some(baselines) = &mut self.baselines {
                        let types = world.registry().descriptors().iter().map(|d| d.id);
                        baselines.forget_entity(*entity, types);
                    }
                    delta.despawns.push(*entity)
                }
                Entry::Remove => match delta.removes.last_mut() {
                    Some((c, list)) if c == component => list.push(*entity),
                    _ => delta.removes.push((*component, vec![*entity])),
                },
                Entry::Set(coded, len) => {
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
                        ages.push(Vec::new());
                        lanes.push((Vec::new(), Vec::new()));
                        raw_bytes.push(0);
                    }
                    let batch = delta.sets.last_mut().expect("pushed above");
                    let i = batch.entities.len();
                    batch.entities.push(*entity);
                    let bytes = &coder.arena[coded.range.clone()];
                    if coded.lanes {
                        let (coded_lanes, older_ages) =
                            lanes.last_mut().expect("pushed with the batch");
                        coded_lanes.extend(bytes);
                        older_ages.push(coded.older_age);
                    } else {
                        batch.data.extend_from_slice(bytes);
                    }
                    send = (
                        self.baselines.is_some()
                            && ValueCoder::on_baselines(batch.lengths.is_none(), *len),
                        coded.on_baselines,
                    );
                    if coded.age > 0 {
                        self.stats.values_on_baselines += 1;
                    }
                    if coded.older_age > 0 {
                        self.stats.values_predicted += 1;
                    }
                    ages.last_mut()
                        .expect("pushed with the batch")
                        .push(coded.age);
                    *raw_bytes.last_mut().expect("pushed with the batch") += len;
                    if let Some(lengths) = &mut batch.lengths {
                        lengths.push(*len as u32);
                    }
                    if i % 8 == 0 {
                        batch.inserted.push(0);
                    }
                }
            }
            sends.push(send);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let owner_seq = self.owner_seq;
        let age_refs: Vec<&[u8]> = ages.iter().map(Vec::as_slice).collect();
        let lane_refs: Vec<LaneBatch<'_>> = lanes
            .iter()
            .map(|(lanes, older_ages)| LaneBatch { lanes, older_ages })
            .collect();
        let bytes = delta.with_parts(|parts| {
            encoder.state_datagram(
                seq,
                acks,
                Some(&FrameParts {
                    owner_seq,
                    baseline_ages: &age_refs,
                    lanes: &lane_refs,
                    ..*parts
                }),
            )
        });
        if let Some(baselines) = &self.baselines {
            self.stats.baseline_bytes =
                ((baselines.len() + self.pending.len()) * RECORD_BYTES) as u64;
        }
        let values: ValueBytes = delta
            .sets
            .iter()
            .zip(raw_bytes)
            .map(|(batch, raw)| (batch.component, raw))
            .collect();
        let len = bytes.len();
        let mut keys = Vec::with_capacity(entries.len());
        for ((key, _), (counts, on_record)) in entries.drain(..).zip(sends) {
            let mut send = None;
            if let Some(pending) = self.pending.get_mut(&key) {
                if pending.sent_at.is_some() && pending.sent_tick >= pending.changed {
                    self.stats.keys_resent += 1;
                }
                pending.sent_tick = tick;
                pending.sent_at = Some(now);
                pending.priority = 0;
                if counts {
                    send = Some(pending.base.sent(tick)).filter(|_| on_record);
                }
            }
            keys.push((key, send));
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT && self.in_flight.pop_first().is_some() {
            self.stats.datagrams_lost += 1;
        }
        self.in_flight.insert(
            seq,
            InFlight {
                tick,
                sent_at: now,
                keys,
            },
        );
        self.stats.datagrams_sent += 1;
        self.stats.datagram_bytes += len as u64;
        built.datagrams.push((bytes, values));
        len
    }

    /// Counts as lost, and forgets, the datagrams unacknowledged for longer than
    /// `timeout` (sequence numbers grow with sending time, so they are the first ones).
    fn expire(&mut self, now: Instant, timeout: Duration) {
        while let Some(entry) = self.in_flight.first_entry() {
            if now.saturating_duration_since(entry.get().sent_at) < timeout {
                break;
            }
            entry.remove();
            self.stats.datagrams_lost += 1;
        }
    }
}

/// A delta frame carrying one value, for the reliable stream.
fn single_value_frame(
    world: &World,
    tick: u64,
    (component, entity): Key,
    owner_seq: u64,
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
    delta.with_parts(|parts| {
        encoder.delta_frame(&FrameParts {
            owner_seq,
            ..*parts
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Layout;

    fn world_with(n: usize) -> (World, ComponentId, Vec<EntityId>) {
        let mut world = World::default();
        let c = world
            .register("t.Value", Layout::Fixed(28))
            .expect("register");
        let entities = (0..n)
            .map(|i| {
                let e = world.spawn().expect("spawn");
                world.set(e, c, &[i as u8; 28]).expect("set");
                e
            })
            .collect();
        (world, c, entities)
    }

    fn limits() -> SendLimits {
        SendLimits {
            max_datagram: 1200,
            budget: 1 << 20,
            initial_resend: Duration::from_millis(100),
        }
    }

    /// Marks every change of `world` so far and builds one tick's datagrams.
    fn send_all(outbox: &mut Outbox, world: &World, now: Instant, acks: &[(u64, u64)]) -> Built {
        let keys = world.changed_keys_since(0).expect("history");
        outbox.mark_changes(&keys, |_| false);
        outbox.build(
            world,
            world.tick(),
            now,
            limits(),
            acks,
            &|_| 1,
            &mut ValueCoder::default(),
            &mut Encoder::new(),
        )
    }

    #[test]
    fn a_late_acknowledgement_of_an_overtaken_datagram_still_counts() {
        let (world, _, _) = world_with(200);
        let mut outbox = Outbox::default();
        let t0 = Instant::now();
        let built = send_all(&mut outbox, &world, t0, &[]);
        let n = built.datagrams.len() as u64;
        assert!(n >= 4, "{n} datagrams");
        // The newest ones are acknowledged first, as reordering would have it; the first
        // one much later, after many newer ones.
        outbox.on_acks(&[(n - 1, n - 1)], t0 + Duration::from_millis(30));
        outbox.on_acks(&[(1, n - 2)], t0 + Duration::from_millis(35));
        assert!(outbox.pending() > 0, "datagram 0 is not acknowledged yet");
        outbox.on_acks(&[(0, 0), (1, n - 1)], t0 + Duration::from_millis(60));
        assert_eq!(outbox.pending(), 0, "every key was acknowledged");
        assert_eq!(outbox.stats.datagrams_acked, n);
        assert_eq!(outbox.stats.datagrams_lost, 0);
        // Nothing goes again: no key is pending.
        let again = outbox.build(
            &world,
            world.tick(),
            t0 + Duration::from_secs(5),
            limits(),
            &[],
            &|_| 1,
            &mut ValueCoder::default(),
            &mut Encoder::new(),
        );
        assert!(again.datagrams.is_empty());
        assert_eq!(outbox.stats.keys_resent, 0);
    }

    #[test]
    fn unacknowledged_keys_go_again_after_the_measured_resend_delay() {
        let (mut world, c, entities) = world_with(3);
        let mut outbox = Outbox::default();
        let t0 = Instant::now();
        assert_eq!(
            outbox.resend_after(limits().initial_resend),
            limits().initial_resend
        );
        let first = send_all(&mut outbox, &world, t0, &[]);
        assert_eq!(first.datagrams.len(), 1);
        // Acknowledged after 40 ms: the resend delay follows the measurement.
        outbox.on_acks(&[(0, 0)], t0 + Duration::from_millis(40));
        let measured = outbox.resend_after(limits().initial_resend);
        assert!(
            measured > Duration::from_millis(40) && measured < Duration::from_millis(100),
            "{measured:?}"
        );
        // A new change, sent and not acknowledged: not again before the delay...
        world.advance();
        world.set(entities[0], c, &[99; 28]).expect("set");
        let t1 = t0 + Duration::from_millis(100);
        let keys = world.changed_keys_since(world.tick() - 1).expect("history");
        outbox.mark_changes(&keys, |_| false);
        let sent = outbox.build(
            &world,
            world.tick(),
            t1,
            limits(),
            &[],
            &|_| 1,
            &mut ValueCoder::default(),
            &mut Encoder::new(),
        );
        assert_eq!(sent.datagrams.len(), 1);
        let early = t1 + measured / 2;
        let none = outbox.build(
            &world,
            world.tick(),
            early,
            limits(),
            &[],
            &|_| 1,
            &mut ValueCoder::default(),
            &mut Encoder::new(),
        );
        assert!(none.datagrams.is_empty(), "resent before the delay");
        // ... and once it passed, the current value goes again, counted as a resend.
        let late = t1 + measured;
        let resent = outbox.build(
            &world,
            world.tick(),
            late,
            limits(),
            &[],
            &|_| 1,
            &mut ValueCoder::default(),
            &mut Encoder::new(),
        );
        assert_eq!(resent.datagrams.len(), 1);
        assert_eq!(outbox.stats.keys_resent, 1);
    }

    #[test]
    fn datagrams_stay_within_the_path_with_every_acknowledgement_range() {
        let (world, _, _) = world_with(500);
        let mut outbox = Outbox::default();
        let acks: Vec<(u64, u64)> = (0..crate::proto::acks::ACK_RANGES_SENT as u64)
            .map(|i| (u64::MAX - 10 * i - 5, u64::MAX - 10 * i))
            .collect();
        let built = send_all(&mut outbox, &world, Instant::now(), &acks);
        assert!(built.datagrams.len() > 10);
        for (datagram, _) in &built.datagrams {
            assert!(
                datagram.len() <= limits().max_datagram,
                "{} bytes",
                datagram.len()
            );
        }
    }

    #[test]
    fn hostile_acknowledgements_change_nothing_they_should_not() {
        let (world, _, _) = world_with(50);
        let mut outbox = Outbox::default();
        let t0 = Instant::now();
        send_all(&mut outbox, &world, t0, &[]);
        let pending = outbox.pending();
        // Inverted, never-sent and extreme ranges.
        outbox.on_acks(&[(5, 1), (1000, u64::MAX), (u64::MAX, u64::MAX)], t0);
        assert_eq!(outbox.pending(), pending);
        assert_eq!(outbox.stats.datagrams_acked, 0);
    }
}
