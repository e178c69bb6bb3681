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

mod datagram_frame;
mod flights;
mod shared_frames;
mod slot_hints;

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::baselines::{KeyBaseline, Pair};
use super::value_coding::{Coded, ValueCoder};
use crate::delta::{ChangedKeys, Delta, SetBatch};
use crate::registry::{ComponentId, Layout};
use crate::wire::{size, Encoder, FrameParts};
use crate::world::{EntityId, World};
use datagram_frame::DatagramFrame;
use flights::Flights;
pub(crate) use shared_frames::{FrameId, SharedFrames};
use slot_hints::SlotHints;

/// An (entity, component) key; component 0 stands for the entity itself (spawn/despawn).
pub(crate) type Key = (ComponentId, EntityId);

/// The entity itself, as a key component.
const ENTITY: ComponentId = ComponentId(0);

/// Datagrams remembered while unacknowledged; beyond this the oldest counts as lost.
const MAX_IN_FLIGHT: usize = 4096;
/// Bytes of a state datagram's body besides its entries: message, datagram and frame
/// tables, vector headers and padding (the header before it is the link's to bound).
const DATAGRAM_BASE: usize = 256;
/// An unacknowledged datagram is forgotten (counted lost) after this many resend delays,
/// and never sooner than [`MIN_FLIGHT_AGE`]: a late acknowledgement still counts until
/// then.
const FLIGHT_AGE_IN_RESENDS: u32 = 4;
const MIN_FLIGHT_AGE: Duration = Duration::from_secs(1);

/// A key the peer still needs: changed since it last acknowledged it.
#[derive(Debug)]
struct Pending {
    key: Key,
    /// Tick of the newest change not yet acknowledged.
    changed: u64,
    /// Tick it was last sent at (0: never).
    sent_tick: u64,
    sent_at: Option<Instant>,
    priority: u32,
    /// Host: the key's baselines with this peer, here while it is pending (a key in
    /// motion is looked up once per value acknowledged, not per value sent); in its
    /// [`KeyRecord`] at rest.
    base: KeyBaseline,
}

/// One key's record: where it waits in [`Outbox::pending`], or (host) its baselines at
/// rest. A key starting and stopping changing stays in the one map (a removal and an
/// insertion in each of two maps per change were the host's largest per-key cost after
/// coding); only its place in the list of pending keys comes and goes.
#[derive(Clone, Copy, Debug)]
struct KeyRecord {
    /// Its index in [`Outbox::pending`], or [`AT_REST`].
    slot: u32,
    /// Host: its baselines while at rest.
    base: KeyBaseline,
}

/// [`KeyRecord::slot`] of a key not pending.
const AT_REST: u32 = u32::MAX;

/// Bytes a key's record takes.
const RECORD_BYTES: usize = std::mem::size_of::<(Key, KeyRecord)>();

impl KeyRecord {
    const NEW: KeyRecord = KeyRecord {
        slot: AT_REST,
        base: KeyBaseline::NEW,
    };
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

/// What one call to [`Outbox::build`] produced besides the datagrams it handed over.
#[derive(Debug, Default)]
pub(crate) struct Built {
    /// State datagrams handed over.
    pub datagrams: usize,
    /// Encoded delta frames for the reliable stream (values too large for a datagram),
    /// with their value bytes.
    pub stream_frames: Vec<(Vec<u8>, ValueBytes)>,
}

/// A state datagram as [`Outbox::build`] hands it over, borrowed until the call returns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Encoded<'a> {
    /// Its sequence number, for its header (`wire::datagram_header`).
    pub seq: u64,
    /// Its body, decodable alone.
    pub body: &'a [u8],
    /// The body's id when it is shared with other peers' datagrams this tick.
    pub shared: Option<FrameId>,
    /// The value bytes of each component type it carries.
    pub values: &'a [(ComponentId, usize)],
}

/// Where [`Outbox::build`] hands each encoded state datagram.
pub(crate) type DatagramSink<'a> = dyn FnMut(Encoded<'_>) + 'a;

/// What a build codes and encodes with: the values' coder, the encoder, and (host) the
/// bodies shared among the clients this tick.
pub(crate) type Tools<'a> = (
    &'a mut ValueCoder,
    &'a mut Encoder,
    Option<&'a mut SharedFrames>,
);

/// Buffers a build reuses from one datagram and one tick to the next, cleared and never
/// dropped: in the steady state a build allocates only the datagrams it hands over
/// (issue 18: "buffers are reused").
#[derive(Debug, Default)]
struct Scratch {
    /// The keys due this tick, with their priority and the baselines they may be coded
    /// against.
    chosen: Vec<(u128, Option<Pair>, u32)>,
    /// The entries of the datagram being filled (with their places in the pending
    /// list), and their component types.
    current: Vec<(Key, Entry, u32)>,
    /// The places of the keys settled without a datagram this tick.
    settled: Vec<u32>,
    types_in_current: Vec<ComponentId>,
    /// The frame of the datagram being encoded.
    frame: DatagramFrame,
    /// Per entry of it: whether it counts as a send of its key (the peer keeps each value
    /// of a size on baselines), and whether it is on record to become a baseline.
    sends: Vec<(bool, bool)>,
    /// Its value bytes per component type.
    values: ValueBytes,
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
    /// Every key pending, and (host) every key at rest that has baselines.
    keys: FxHashMap<Key, KeyRecord>,
    /// The keys pending, in no order: a tick goes through what moves, not every key.
    pending: Vec<Pending>,
    /// Places in `pending` by a hash of the key, checked against the entry before use:
    /// a key that keeps moving keeps its place, and a few bytes per pending key save a
    /// lookup in `keys` (a record for every key the peer holds baselines of) for each
    /// of its changes and acknowledgements.
    slot_hints: SlotHints,
    /// Datagrams sent and not yet acknowledged.
    in_flight: Flights,
    scratch: Scratch,
    next_seq: u64,
    rtt: AckRtt,
    pub stats: OutboxStats,
    /// Client: the ownership messages applied, carried by every frame it writes (see
    /// `proto::ownership`); 0 on the host.
    pub(crate) owner_seq: u64,
    /// Host: values coded against what the peer acknowledged (see `proto::baselines`),
    /// whose records stay while their keys are at rest.
    pub(crate) baselines: bool,
    /// Host: values of components with declared fields go as lanes (a client's writes
    /// go raw: the host takes them as a replica takes a snapshot, bit for bit).
    pub(crate) lanes: bool,
}

/// What every datagram of one build is made at: the world, the tick and the time.
type DatagramAt<'a> = (&'a World, u64, Instant);

/// A due key's place in a tick's order, as one number (so that sorting compares one
/// number): highest priority first, then key order.
fn order(priority: u32, (component, entity): Key) -> u128 {
    (u128::from(!priority) << 96) | (u128::from(component.0) << 64) | u128::from(entity.0)
}

/// The key of an [`order`].
fn key_of(order: u128) -> Key {
    // Truncations on purpose: the component is bits 64..96, the entity the low 64.
    (ComponentId((order >> 64) as u32), EntityId(order as u64))
}

/// An entry chosen for a datagram.
#[derive(Debug)]
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
        if let Some(slot) = self.hinted_slot(key) {
            let pending = &mut self.pending[slot];
            pending.changed = pending.changed.max(tick);
            return;
        }
        let record = self.keys.entry(key).or_insert(KeyRecord::NEW);
        let slot = match self.pending.get_mut(record.slot as usize) {
            Some(pending) => {
                pending.changed = pending.changed.max(tick);
                record.slot
            }
            None => {
                record.slot = u32::try_from(self.pending.len()).unwrap_or(AT_REST);
                self.pending.push(Pending {
                    key,
                    changed: tick,
                    sent_tick: 0,
                    sent_at: None,
                    priority: 0,
                    base: std::mem::take(&mut record.base),
                });
                record.slot
            }
        };
        self.slot_hints.remember(key, slot, self.pending.len());
    }

    /// `key`'s place in the pending list, when its hint still holds.
    fn hinted_slot(&self, key: Key) -> Option<usize> {
        self.slot_hints
            .get(key)
            .and_then(|hint| self.pending_at(key, hint))
    }

    /// `place`, when `key` is pending there (a hint checked).
    fn pending_at(&self, key: Key, place: usize) -> Option<usize> {
        self.pending
            .get(place)
            .filter(|pending| pending.key == key)
            .map(|_| place)
    }

    /// Takes the key pending at `slot` off the list (its acknowledgement came, or it
    /// needs no datagram): at rest with its baselines when `keep` and it has any (host),
    /// forgotten otherwise. The last pending key takes its place.
    fn settle(&mut self, slot: usize, keep: bool) {
        let settled = self.pending.swap_remove(slot);
        if let Some(moved) = self.pending.get(slot) {
            if let Some(record) = self.keys.get_mut(&moved.key) {
                record.slot = slot as u32;
            }
        }
        if keep && self.baselines && settled.base.since() != 0 {
            if let Some(record) = self.keys.get_mut(&settled.key) {
                *record = KeyRecord {
                    slot: AT_REST,
                    base: settled.base,
                };
            }
        } else {
            self.keys.remove(&settled.key);
        }
    }

    /// Re-numbers every pending key's record (after the list was filtered).
    fn renumber(&mut self) {
        for (slot, pending) in self.pending.iter().enumerate() {
            if let Some(record) = self.keys.get_mut(&pending.key) {
                record.slot = slot as u32;
            }
        }
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
        self.keys.retain(|&key, _| !drop(key));
        self.pending.retain(|p| !drop(p.key));
        self.renumber();
    }

    /// The sequence number of an acknowledgement-only datagram (when there is no state
    /// to send; a header without a body): it takes one of its own but is not tracked.
    pub(crate) fn ack_only(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Forgets the datagrams in flight (their connection is gone); their keys stay
    /// pending and go again.
    pub(crate) fn forget_in_flight(&mut self) {
        self.in_flight.clear();
        // A new connection: the peer's history of received values starts again.
        self.keys.retain(|_, record| record.slot != AT_REST);
        for pending in &mut self.pending {
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
        for p in &self.pending {
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
    pub(crate) fn on_acks(&mut self, ranges: impl IntoIterator<Item = (u64, u64)>, now: Instant) {
        let mut newest: Option<(u64, Instant)> = None;
        for (first, last) in ranges {
            if first > last {
                continue;
            }
            // The records in first..=last, found in O(log n).
            for position in self.in_flight.positions(first, last) {
                let Some((seq, tick, sent_at, keys)) = self.in_flight.ack(position) else {
                    continue;
                };
                self.stats.datagrams_acked += 1;
                if newest.is_none_or(|(s, _)| seq > s) {
                    newest = Some((seq, sent_at));
                }
                for at in keys {
                    let (key, hint, send) = self.in_flight.keys[at];
                    // A key that keeps changing stays pending, mostly where it was when
                    // sent: the hint, checked, saves a lookup in the map of every key.
                    let slot = match self.pending_at(key, hint as usize) {
                        Some(slot) => slot,
                        None => {
                            let Some(record) = self.keys.get_mut(&key) else {
                                continue;
                            };
                            if record.slot == AT_REST {
                                if let Some(send) = send {
                                    record.base.acked(send);
                                }
                                continue;
                            }
                            record.slot as usize
                        }
                    };
                    let Some(pending) = self.pending.get_mut(slot) else {
                        continue;
                    };
                    if let Some(send) = send {
                        pending.base.acked(send);
                    }
                    if pending.changed <= tick {
                        self.settle(slot, true);
                    }
                }
            }
        }
        self.in_flight.trim();
        // One sample per acknowledgement, from the newest datagram it names first (an
        // older one may have waited behind a lost acknowledgement).
        if let Some((_, sent_at)) = newest {
            self.rtt.sample(now.saturating_duration_since(sent_at));
        }
    }

    /// Chooses what to send this tick, encodes it, hands each datagram to `sink` and
    /// records it as in flight; `points` gives what a waiting key of an entity gains per
    /// tick (see `proto::priority`); `coder` codes the values (the host shares one among
    /// its clients).
    // The tick's inputs, each from a different owner (world, link, encoder): bundling
    // them would only move the list into a struct built for this one call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        &mut self,
        world: &World,
        tick: u64,
        now: Instant,
        limits: SendLimits,
        points: &dyn Fn(EntityId) -> u32,
        (coder, encoder, mut shared): Tools<'_>,
        sink: &mut DatagramSink<'_>,
    ) -> Built {
        let mut built = Built::default();
        let resend_after = self.resend_after(limits.initial_resend);
        self.expire(
            now,
            (resend_after * FLIGHT_AGE_IN_RESENDS).max(MIN_FLIGHT_AGE),
        );
        coder.begin(tick);
        // The scratch lists are taken out while the outbox works beside them.
        let mut chosen = std::mem::take(&mut self.scratch.chosen);
        let mut current = std::mem::take(&mut self.scratch.current);
        let mut types_in_current = std::mem::take(&mut self.scratch.types_in_current);
        chosen.clear();
        current.clear();
        types_in_current.clear();
        // With each key, the baselines it may be coded against (read here, where the
        // entry is at hand; its send is recorded when its datagram is encoded).
        let mut settled = std::mem::take(&mut self.scratch.settled);
        settled.clear();
        for (slot, pending) in self.pending.iter_mut().enumerate() {
            let due = match pending.sent_at {
                None => true,
                Some(_) if pending.sent_tick < pending.changed => true,
                Some(at) => now.saturating_duration_since(at) >= resend_after,
            };
            if due {
                pending.priority = pending.priority.saturating_add(points(pending.key.1));
                let order = order(pending.priority, pending.key);
                chosen.push((order, pending.base.pair(tick), slot as u32));
            }
        }
        // Highest priority first; ties in key order, so a run is reproducible.
        chosen.sort_unstable_by_key(|&(order, _, _)| order);

        let base = DATAGRAM_BASE;
        let room = limits.max_datagram.saturating_sub(base);
        let mut spent = 0usize;
        let at: DatagramAt<'_> = (world, tick, now);
        let mut current_bytes = 0usize;
        for (index, &(order, pair, slot)) in chosen.iter().enumerate() {
            let key = key_of(order);
            let (component, entity) = key;
            let alive = world.is_alive(entity);
            let (entry, cost) = if component == ENTITY {
                (
                    if alive { Entry::Spawn } else { Entry::Despawn },
                    size::ENTITY,
                )
            } else if !alive {
                // Moot: the entity's despawn travels under its own key.
                settled.push(slot);
                continue;
            } else {
                match world.get(entity, component) {
                    Some(value) => {
                        let variable = is_variable(world, component);
                        let on_baselines =
                            self.baselines && ValueCoder::on_baselines(!variable, value.len());
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
                            settled.push(slot);
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
                spent += self.finish_datagram(
                    at,
                    &mut current,
                    (coder, encoder, shared.as_deref_mut()),
                    sink,
                );
                built.datagrams += 1;
                current_bytes = 0;
                types_in_current.clear();
            }
            if component != ENTITY && !types_in_current.contains(&component) {
                types_in_current.push(component);
                current_bytes += size::BATCH_BASE;
            }
            current_bytes += cost;
            current.push((key, entry, slot));
        }
        if !current.is_empty() {
            self.finish_datagram(at, &mut current, (coder, encoder, shared), sink);
            built.datagrams += 1;
        }
        // Keys settled without a datagram leave the list last (places stay put while
        // the tick's entries point at them), the highest place first so that the key
        // moved into each place is never one still to settle.
        settled.sort_unstable_by(|a, b| b.cmp(a));
        for &slot in &settled {
            self.settle(slot as usize, false);
        }
        self.scratch.settled = settled;
        self.scratch.chosen = chosen;
        self.scratch.current = current;
        self.scratch.types_in_current = types_in_current;
        built
    }

    /// Encodes `entries` as one datagram (empties it), or takes the body encoded for
    /// equal entries this tick from `shared`, hands it to `sink` and returns its size.
    fn finish_datagram(
        &mut self,
        (world, tick, now): DatagramAt<'_>,
        entries: &mut Vec<(Key, Entry, u32)>,
        (coder, encoder, shared): (&ValueCoder, &mut Encoder, Option<&mut SharedFrames>),
        sink: &mut DatagramSink<'_>,
    ) -> usize {
        entries.sort_unstable_by_key(|(key, _, _)| *key);
        let Scratch {
            frame,
            sends,
            values,
            ..
        } = &mut self.scratch;
        frame.clear();
        sends.clear();
        for (key, entry, _) in entries.iter() {
            let (component, entity) = *key;
            let mut send = (false, false);
            match entry {
                Entry::Spawn => frame.spawn(entity),
                Entry::Despawn => {
                    // The peer forgets the entity's values: so do the records at rest
                    // (a pending one is moot and goes at the next build).
                    for d in world.registry().descriptors() {
                        let key = (d.id, entity);
                        if self.keys.get(&key).is_some_and(|r| r.slot == AT_REST) {
                            self.keys.remove(&key);
                        }
                    }
                    frame.despawn(entity)
                }
                Entry::Remove => frame.remove(component, entity),
                Entry::Set(coded, len) => {
                    let bytes = &coder.arena[coded.range.clone()];
                    let variable = || is_variable(world, component);
                    let fixed = frame.set(*key, variable, coded, bytes, *len);
                    send = (
                        self.baselines && ValueCoder::on_baselines(fixed, *len),
                        coded.on_baselines,
                    );
                    if coded.age > 0 {
                        self.stats.values_on_baselines += 1;
                    }
                    if coded.older_age > 0 {
                        self.stats.values_predicted += 1;
                    }
                }
            }
            sends.push(send);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        frame.values(values);
        let owner_seq = self.owner_seq;
        let (body, shared) = match shared {
            Some(shared) => shared.body(coder, (tick, owner_seq), entries, || {
                frame.encode(encoder, tick, owner_seq)
            }),
            None => (frame.encode(encoder, tick, owner_seq), None),
        };
        if self.baselines {
            self.stats.baseline_bytes = (self.keys.len() * RECORD_BYTES
                + self.pending.len() * std::mem::size_of::<Pending>()
                + self.slot_hints.bytes()) as u64;
        }
        let len = body.len();
        sink(Encoded {
            seq,
            body,
            shared,
            values: values.as_slice(),
        });
        if self.in_flight.len() >= MAX_IN_FLIGHT && self.in_flight.drop_oldest() {
            self.stats.datagrams_lost += 1;
        }
        let (pending, stats) = (&mut self.pending, &mut self.stats);
        let keys =
            entries
                .drain(..)
                .zip(sends.drain(..))
                .map(|((key, _, slot), (counts, on_record))| {
                    let mut send = None;
                    if let Some(pending) = pending.get_mut(slot as usize) {
                        if pending.sent_at.is_some() && pending.sent_tick >= pending.changed {
                            stats.keys_resent += 1;
                        }
                        pending.sent_tick = tick;
                        pending.sent_at = Some(now);
                        pending.priority = 0;
                        if counts {
                            send = Some(pending.base.sent(tick)).filter(|_| on_record);
                        }
                    }
                    (key, slot, send)
                });
        self.in_flight.push((seq, tick, now), keys);
        self.stats.datagrams_sent += 1;
        self.stats.datagram_bytes += len as u64;
        len
    }

    /// Counts as lost, and forgets, the datagrams unacknowledged for longer than
    /// `timeout` (sequence numbers grow with sending time, so they are the first ones).
    fn expire(&mut self, now: Instant, timeout: Duration) {
        while let Some(sent_at) = self.in_flight.oldest_sent_at() {
            if now.saturating_duration_since(sent_at) < timeout {
                break;
            }
            self.in_flight.drop_oldest();
            self.stats.datagrams_lost += 1;
        }
    }
}

/// Whether `component`'s values are of a variable size (and carry their lengths).
fn is_variable(world: &World, component: ComponentId) -> bool {
    world
        .registry()
        .get(component)
        .is_some_and(|d| matches!(d.layout, Layout::Variable { .. }))
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
    let variable = is_variable(world, component);
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

    /// Builds one tick's datagrams at `now` within `max_datagram`, each framed as a link
    /// frames it (the header carrying `acks`, a raw envelope); returns them.
    fn build_within(
        outbox: &mut Outbox,
        world: &World,
        now: Instant,
        acks: &[(u64, u64)],
        max_datagram: usize,
    ) -> Vec<Vec<u8>> {
        let mut datagrams = Vec::new();
        let limits = SendLimits {
            max_datagram: crate::proto::link::max_body(max_datagram, acks),
            ..limits()
        };
        let built = outbox.build(
            world,
            world.tick(),
            now,
            limits,
            &|_| 1,
            (&mut ValueCoder::default(), &mut Encoder::new(), None),
            &mut |d| {
                let mut datagram = Vec::new();
                crate::wire::datagram_header::write(d.seq, acks, &mut datagram);
                datagram.push(crate::wire::codec::FrameFormat::Raw as u8);
                datagram.extend_from_slice(d.body);
                datagrams.push(datagram);
            },
        );
        assert_eq!(built.datagrams, datagrams.len());
        datagrams
    }

    /// Builds one tick's datagrams at `now`; returns them.
    fn build(
        outbox: &mut Outbox,
        world: &World,
        now: Instant,
        acks: &[(u64, u64)],
    ) -> Vec<Vec<u8>> {
        build_within(outbox, world, now, acks, limits().max_datagram)
    }

    /// Marks every change of `world` so far and builds one tick's datagrams.
    fn send_all(
        outbox: &mut Outbox,
        world: &World,
        now: Instant,
        acks: &[(u64, u64)],
    ) -> Vec<Vec<u8>> {
        let keys = world.changed_keys_since(0).expect("history");
        outbox.mark_changes(&keys, |_| false);
        build(outbox, world, now, acks)
    }

    #[test]
    fn a_late_acknowledgement_of_an_overtaken_datagram_still_counts() {
        let (world, _, _) = world_with(200);
        let mut outbox = Outbox::default();
        let t0 = Instant::now();
        let built = send_all(&mut outbox, &world, t0, &[]);
        let n = built.len() as u64;
        assert!(n >= 4, "{n} datagrams");
        // The newest ones are acknowledged first, as reordering would have it; the first
        // one much later, after many newer ones.
        outbox.on_acks([(n - 1, n - 1)], t0 + Duration::from_millis(30));
        outbox.on_acks([(1, n - 2)], t0 + Duration::from_millis(35));
        assert!(outbox.pending() > 0, "datagram 0 is not acknowledged yet");
        outbox.on_acks([(0, 0), (1, n - 1)], t0 + Duration::from_millis(60));
        assert_eq!(outbox.pending(), 0, "every key was acknowledged");
        assert_eq!(outbox.stats.datagrams_acked, n);
        assert_eq!(outbox.stats.datagrams_lost, 0);
        // Nothing goes again: no key is pending.
        let again = build(&mut outbox, &world, t0 + Duration::from_secs(5), &[]);
        assert!(again.is_empty());
        assert_eq!(outbox.stats.keys_resent, 0);
    }

    #[test]
    fn a_key_at_rest_keeps_its_baselines_and_a_client_keeps_only_what_is_pending() {
        let (mut world, c, entities) = world_with(3);
        let (mut host, mut client) = (Outbox::default(), Outbox::default());
        host.baselines = true;
        let mut coder = ValueCoder::default();
        let mut encoder = Encoder::new();
        let t0 = Instant::now();
        let mut tick_of = |outbox: &mut Outbox, world: &World, keys: &ChangedKeys| {
            outbox.mark_changes(keys, |_| false);
            let mut sent = 0;
            outbox.build(
                world,
                world.tick(),
                t0,
                limits(),
                &|_| 1,
                (&mut coder, &mut encoder, None),
                &mut |_| sent += 1,
            );
            sent
        };
        let keys = world.changed_keys_since(0).expect("history");
        for outbox in [&mut host, &mut client] {
            assert_eq!(tick_of(outbox, &world, &keys), 1);
            outbox.on_acks([(0, 0)], t0 + Duration::from_millis(20));
            assert_eq!(outbox.pending(), 0);
        }
        // Settled and changed again, each round: pending once, sent once.
        for round in 0..3u8 {
            world.advance();
            world.set(entities[0], c, &[round + 100; 28]).expect("set");
            let keys = world.changed_keys_since(world.tick() - 1).expect("history");
            for outbox in [&mut host, &mut client] {
                outbox.on_acks([(u64::from(round), u64::from(round))], t0);
                assert_eq!(tick_of(outbox, &world, &keys), 1);
                assert_eq!(outbox.pending(), 1, "round {round}");
                assert_eq!(outbox.keys.len(), if outbox.baselines { 3 } else { 1 });
            }
        }
        // The host keeps every value's record at rest (its baselines), and codes the
        // next change on the acknowledged value; the client keeps only what is pending.
        let none = world.changed_keys_since(world.tick()).expect("history");
        for outbox in [&mut host, &mut client] {
            outbox.on_acks([(3, 3)], t0);
            assert_eq!(outbox.pending(), 0);
            assert_eq!(tick_of(outbox, &world, &none), 0);
        }
        assert_eq!(host.keys.len(), 3, "the three values at rest");
        assert!(client.keys.is_empty());
        world.advance();
        let mut near = [102; 28];
        near[0] = 7;
        world.set(entities[0], c, &near).expect("set");
        let keys = world.changed_keys_since(world.tick() - 1).expect("history");
        let on_baselines = host.stats.values_on_baselines;
        tick_of(&mut host, &world, &keys);
        assert_eq!(host.stats.values_on_baselines, on_baselines + 1);
        // Forgotten keys leave the list and the records.
        host.forget_keys(|(_, e)| e == entities[0]);
        assert_eq!(host.pending(), 0);
        assert_eq!(host.keys.len(), 2);
    }

    /// The slot hints go stale as keys settle and others take their places, collide when
    /// keys outnumber them, and are dropped when they grow: every mark still lands on the
    /// key's one record, checked against a model after each step.
    #[test]
    fn marks_land_on_the_keys_record_whatever_the_hints_say() {
        let mut outbox = Outbox {
            baselines: true,
            ..Outbox::default()
        };
        let mut model: std::collections::BTreeMap<Key, u64> = Default::default();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        for step in 1..=20_000u64 {
            let tick = step / 8 + 1;
            if next(3) == 0 && !outbox.pending.is_empty() {
                let slot = next(outbox.pending.len() as u64) as usize;
                model.remove(&outbox.pending[slot].key);
                outbox.settle(slot, next(2) == 0);
            } else {
                // 600 keys over two components: more than the hints hold at first.
                let key = (ComponentId(1 + next(2) as u32), EntityId(1 + next(300)));
                outbox.mark(key, tick);
                let changed = model.entry(key).or_insert(tick);
                *changed = (*changed).max(tick);
            }
            assert_eq!(outbox.pending.len(), model.len(), "step {step}");
            for (slot, pending) in outbox.pending.iter().enumerate() {
                assert_eq!(
                    model.get(&pending.key),
                    Some(&pending.changed),
                    "step {step}"
                );
                assert_eq!(outbox.keys[&pending.key].slot as usize, slot, "step {step}");
            }
        }
        assert!(outbox.slot_hints.bytes() > 0);
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
        assert_eq!(first.len(), 1);
        // Acknowledged after 40 ms: the resend delay follows the measurement.
        outbox.on_acks([(0, 0)], t0 + Duration::from_millis(40));
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
        let sent = build(&mut outbox, &world, t1, &[]);
        assert_eq!(sent.len(), 1);
        let early = t1 + measured / 2;
        let none = build(&mut outbox, &world, early, &[]);
        assert!(none.is_empty(), "resent before the delay");
        // ... and once it passed, the current value goes again, counted as a resend.
        let late = t1 + measured;
        let resent = build(&mut outbox, &world, late, &[]);
        assert_eq!(resent.len(), 1);
        assert_eq!(outbox.stats.keys_resent, 1);
    }

    #[test]
    fn datagrams_stay_within_the_path_with_every_acknowledgement_range() {
        let (world, _, _) = world_with(500);
        let mut outbox = Outbox::default();
        // The longest ranges there are: every varint at its longest.
        let acks: Vec<(u64, u64)> = (0..crate::proto::acks::ACK_RANGES_SENT as u64)
            .map(|i| (u64::MAX - (1 << 62) - 10 * i, u64::MAX - 10 * i))
            .collect();
        let keys = world.changed_keys_since(0).expect("history");
        outbox.mark_changes(&keys, |_| false);
        let max = limits().max_datagram;
        let built = build_within(&mut outbox, &world, Instant::now(), &acks, max);
        assert!(built.len() > 10);
        let mut fullest = 0;
        for datagram in &built {
            assert!(datagram.len() <= max, "{} bytes", datagram.len());
            fullest = fullest.max(datagram.len());
            let (header, body) = crate::wire::datagram_header::read(datagram).expect("header");
            assert_eq!(header.acks(), &acks[..]);
            assert!(crate::wire::decode_state_datagram(&body[1..]).is_ok());
        }
        // The bound is not loose either: the fullest datagram uses most of the path.
        assert!(fullest > max * 3 / 4, "{fullest} of {max} bytes");
    }

    #[test]
    fn datagrams_acknowledged_out_of_order_are_neither_lost_nor_acknowledged_twice() {
        let (world, _, _) = world_with(200);
        let mut outbox = Outbox::default();
        let t0 = Instant::now();
        let n = send_all(&mut outbox, &world, t0, &[]).len() as u64;
        assert!(n >= 4, "{n} datagrams");
        let all = outbox.pending();
        // The middle ones first, twice: holes behind the first datagram.
        outbox.on_acks([(1, 2)], t0 + Duration::from_millis(20));
        outbox.on_acks([(2, 2), (1, 1)], t0 + Duration::from_millis(25));
        assert_eq!(outbox.stats.datagrams_acked, 2);
        assert!(outbox.pending() < all);
        let left = outbox.pending();
        // Long after, the others count as lost (the holes do not) and their keys go
        // again; a late acknowledgement of a forgotten one changes nothing.
        let again = build(&mut outbox, &world, t0 + Duration::from_secs(10), &[]);
        assert_eq!(outbox.stats.datagrams_lost, n - 2);
        assert_eq!(outbox.stats.keys_resent, left as u64);
        assert!(!again.is_empty());
        outbox.on_acks([(0, 0), (1, 2)], t0 + Duration::from_secs(10));
        assert_eq!(outbox.stats.datagrams_acked, 2);
        assert_eq!(outbox.pending(), left);
        // The new ones are acknowledged as usual.
        outbox.on_acks(
            [(n, n + again.len() as u64 - 1)],
            t0 + Duration::from_secs(11),
        );
        assert_eq!(outbox.pending(), 0);
    }

    #[test]
    fn hostile_acknowledgements_change_nothing_they_should_not() {
        let (world, _, _) = world_with(50);
        let mut outbox = Outbox::default();
        let t0 = Instant::now();
        send_all(&mut outbox, &world, t0, &[]);
        let pending = outbox.pending();
        // Inverted, never-sent and extreme ranges.
        outbox.on_acks([(5, 1), (1000, u64::MAX), (u64::MAX, u64::MAX)], t0);
        assert_eq!(outbox.pending(), pending);
        assert_eq!(outbox.stats.datagrams_acked, 0);
    }
}
