//! How one value goes to one peer in a state datagram: raw; XOR'd with a baseline the
//! peer acknowledged (`proto::baselines`); or, for a component with declared fields
//! (`crate::fields`), as lanes coded against the baseline's lanes (`wire::lanes`), which
//! makes a smoothly moving transform a few bytes. Coding happens while a datagram is
//! planned, so its size is known exactly; the send is recorded when it is encoded.
//!
//! The host codes for every client with one coder, and a value's coding depends only on
//! the value and the ticks of the baselines it is coded against, so it is coded once per
//! (key, baselines) in a tick and shared by every client that acknowledged the same
//! sends: clients in step cost a lookup per value, not a coding.

use std::ops::Range;

use rustc_hash::FxHashMap;

use super::baselines::{xor_on, Pair};
use super::value_history::{ValueHistory, Version};
use crate::fields::FieldLayout;
use crate::registry::ComponentId;
use crate::replica::baselines::MAX_BASELINE_BYTES;
use crate::wire::lanes;
use crate::world::EntityId;

/// A value coded for a peer: its bytes are `range` of the coder's arena.
#[derive(Clone, Debug)]
pub(crate) struct Coded {
    /// Ticks back to the baseline it is coded against (0: none).
    pub age: u8,
    /// Lanes: ticks back to the older baseline the prediction extrapolates from (0: the
    /// baseline alone is the prediction).
    pub older_age: u8,
    /// Coded as lanes (its batch's `lanes`), not bytes (its batch's `data`).
    pub lanes: bool,
    /// On baselines: the send is to be recorded, and acknowledged, as a baseline.
    pub on_baselines: bool,
    /// Where its bytes are in [`ValueCoder::arena`].
    pub range: Range<usize>,
}

/// A key's codings this tick: the version of its value on record (which names the
/// value), the first of its codings in [`ValueCoder::codings`], and where the value is
/// in [`ValueCoder::values`] (a later call with other bytes is another value).
#[derive(Clone, Debug)]
struct TickKey {
    version: Option<u64>,
    first: Option<u32>,
    value: Range<usize>,
}

/// One coding of a key this tick: the ticks of its baselines (0: none), lanes or bytes,
/// the coding, and the key's next coding.
type Coding = (u64, u64, bool, Coded, Option<u32>);

/// Codes the values of one tick, for every peer; reuses its buffers.
#[derive(Debug, Default)]
pub(crate) struct ValueCoder {
    /// The tick coded for: arena and cache hold this tick's codings.
    tick: u64,
    /// Counts the times the arena was emptied: a coding's `range` names the same bytes
    /// as long as this stays (see `outbox::shared_frames`).
    generation: u64,
    /// The coded bytes of every value coded this tick.
    pub arena: Vec<u8>,
    /// This tick's keys coded, and their codings, shared by the peers with the same
    /// baselines.
    keys: FxHashMap<(ComponentId, EntityId), TickKey>,
    codings: Vec<Coding>,
    /// The values of this tick's keys.
    values: Vec<u8>,
    /// Host: the values sent, which baselines name by tick.
    pub history: ValueHistory,
    /// Codings made and codings shared since the coder was made.
    pub stats: CoderStats,
    lanes: Vec<i64>,
    predicted: Vec<i64>,
}

/// Counters of a [`ValueCoder`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoderStats {
    /// Values coded.
    pub coded: u64,
    /// Values whose coding for another peer this tick was reused.
    pub shared: u64,
}

impl ValueCoder {
    /// Starts a build at `tick`: the codings of an earlier tick are dropped (the world
    /// has changed since), and so are this tick's past a bound (a side that builds more
    /// than once a tick).
    pub(crate) fn begin(&mut self, tick: u64) {
        const ARENA_LIMIT: usize = 1 << 20;
        if tick != self.tick || self.arena.len() > ARENA_LIMIT {
            self.tick = tick;
            self.generation += 1;
            self.arena.clear();
            self.keys.clear();
            self.codings.clear();
            self.values.clear();
        }
    }

    /// Which filling of the arena the codings made now belong to: codings of one
    /// generation with equal ranges have equal bytes.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a value of `len` bytes, of a fixed size or not, is coded on baselines.
    pub(crate) fn on_baselines(fixed: bool, len: usize) -> bool {
        fixed && len <= MAX_BASELINE_BYTES
    }

    /// Codes `value` of `(component, entity)` to be sent at the tick of
    /// [`ValueCoder::begin`]: as lanes when `fields` declares its layout; when `baselines`
    /// (the value goes on baselines: the peer has them, the value's size allows), on
    /// record in the history and coded against the baselines the pair names when worth
    /// it. `None` when its declared fields do not quantise (it cannot be: the world
    /// quantises every write), for the caller to send it raw another way.
    pub(crate) fn code(
        &mut self,
        key: (ComponentId, EntityId),
        value: &[u8],
        fields: Option<&FieldLayout>,
        baselines: Option<Option<Pair>>,
    ) -> Option<Coded> {
        let tick = self.tick;
        // The value at this tick goes on record once for every peer; should the record
        // fail (another value at this tick), it is sent raw and on no baseline.
        // The key's codings this tick come with its version (one lookup per value).
        let (version, first) = match baselines {
            None => (None, None),
            Some(_) => match self.keys.get_mut(&key) {
                Some(known) if self.values[known.value.clone()] == *value => {
                    (known.version, known.first)
                }
                known => {
                    // New this tick, or another value than before (which the record
                    // refuses, and which shares nothing).
                    let version = self.history.record(key, tick, value, fields);
                    let start = self.values.len();
                    self.values.extend_from_slice(value);
                    let fresh = TickKey {
                        version,
                        first: None,
                        value: start..self.values.len(),
                    };
                    match known {
                        Some(known) => *known = fresh,
                        None => {
                            self.keys.insert(key, fresh);
                        }
                    }
                    (version, None)
                }
            },
        };
        let on_baselines = version.is_some();
        let pair = baselines.flatten().filter(|_| on_baselines);
        let (at, older_at) = pair.map_or((0, 0), |(at, older)| (at, older.unwrap_or(0)));
        let lanes_kind = fields.is_some();
        // Only a value on record is shared: its version names it exactly.
        if on_baselines {
            let mut next = first;
            while let Some(i) = next {
                let (a, o, l, coded, after) = &self.codings[i as usize];
                if (*a, *o, *l) == (at, older_at, lanes_kind) {
                    self.stats.shared += 1;
                    return Some(coded.clone());
                }
                next = *after;
            }
        }
        self.stats.coded += 1;
        let newer = pair.and_then(|(at, _)| self.history.at(key, at));
        let older = pair
            .and_then(|(_, older)| older)
            .and_then(|older_at| self.history.at(key, older_at));
        let start = self.arena.len();
        let (age, older_age) = match fields {
            None => {
                let base = newer.map(|v| (at, &v.bytes[..]));
                (xor_on(base, tick, value, &mut self.arena), 0)
            }
            Some(layout) => {
                // The value on record this tick was quantised when recorded: its lanes
                // serve every coding of it.
                let known = version
                    .and_then(|_| self.history.at(key, tick))
                    .filter(|v| v.tick == tick && v.bytes == value)
                    .map(|v| &v.lanes[..]);
                code_lanes(
                    layout,
                    (value, known),
                    tick,
                    newer.map(|v| (at, v)),
                    older.map(|v| (older_at, v)),
                    (&mut self.lanes, &mut self.predicted),
                    &mut self.arena,
                )?
            }
        };
        let coded = Coded {
            age,
            older_age,
            lanes: lanes_kind,
            on_baselines,
            range: start..self.arena.len(),
        };
        if on_baselines {
            if let (Some(known), Ok(index)) =
                (self.keys.get_mut(&key), u32::try_from(self.codings.len()))
            {
                self.codings
                    .push((at, older_at, lanes_kind, coded.clone(), known.first));
                known.first = Some(index);
            }
        }
        Some(coded)
    }
}

/// Appends `value`'s lanes (`known` when already quantised) to `out`, coded with the
/// fewest bits of: the lanes alone, against `newer`'s, against the prediction through
/// `newer` and `older` (fewest unless the value jumped). Returns the ages of the
/// baselines used; `None` when the value does not quantise.
fn code_lanes(
    layout: &FieldLayout,
    (value, known): (&[u8], Option<&[i64]>),
    tick: u64,
    newer: Option<(u64, &Version)>,
    older: Option<(u64, &Version)>,
    (scratch, predicted): (&mut Vec<i64>, &mut Vec<i64>),
    out: &mut Vec<u8>,
) -> Option<(u8, u8)> {
    let kinds = layout.lane_kinds();
    let lanes: &[i64] = match known.filter(|l| l.len() == kinds.len()) {
        Some(lanes) => lanes,
        None => {
            layout.lanes_into(value, scratch).ok()?;
            scratch
        }
    };
    let age_of = |at: u64| u8::try_from(tick - at).unwrap_or(0);
    // A version without lanes (it did not quantise) is no baseline for lanes.
    let n = kinds.len();
    let newer = newer.filter(|(_, v)| v.lanes.len() == n);
    let older = older.filter(|(_, v)| v.lanes.len() == n);
    let mut best = (lanes::coded_bits(kinds, lanes, None), 0, 0);
    let mut against: Option<&[i64]> = None;
    if let Some((at, base)) = newer {
        let on = lanes::coded_bits(kinds, lanes, Some(&base.lanes));
        if on < best.0 {
            best = (on, age_of(at), 0);
            against = Some(&base.lanes);
        }
        if let Some((older_at, older)) = older {
            lanes::predict(
                kinds,
                (&base.lanes, at),
                (&older.lanes, older_at),
                tick,
                predicted,
            );
            // Naming the older baseline costs a byte before compression, but charging for
            // it lost more than it saved on the demo (52.7 against 51.2 kB/s at 2 bits):
            // residuals of 0 compress very well.
            let on = lanes::coded_bits(kinds, lanes, Some(predicted));
            if on < best.0 {
                best = (on, age_of(at), age_of(older_at));
                against = Some(predicted);
            }
        }
    }
    lanes::encode(kinds, lanes, against, out);
    Some((best.1, best.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Field;
    use crate::proto::baselines::KeyBaseline;

    const KEY: (ComponentId, EntityId) = (ComponentId(7), EntityId(3));

    fn position(x: f32) -> Vec<u8> {
        [x, 1.0, -2.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect()
    }

    fn layout() -> FieldLayout {
        FieldLayout::new(
            12,
            &[Field::Position {
                offset: 0,
                precision_mm: 1.0,
            }],
        )
        .expect("a valid layout")
    }

    #[test]
    fn a_tick_codes_a_value_once_per_baselines_and_shares_it() {
        let (mut coder, layout) = (ValueCoder::default(), layout());
        // Two peers acknowledged the send at tick 10, a third the one at tick 11, a
        // fourth nothing.
        let (mut a, mut c) = (KeyBaseline::default(), KeyBaseline::default());
        for (tick, x) in [(10u64, 0.0f32), (11, 0.01)] {
            coder.begin(tick);
            let value = position(x);
            coder
                .code(KEY, &value, Some(&layout), Some(None))
                .expect("codes");
            let send = a.sent(tick);
            if tick == 10 {
                a.acked(send);
            }
            let send = c.sent(tick);
            c.acked(send);
        }
        let b = a;
        coder.begin(12);
        let value = position(0.02);
        let stats = coder.stats;
        let on = |base: &KeyBaseline, coder: &mut ValueCoder| {
            let coded = coder
                .code(KEY, &value, Some(&layout), Some(base.pair(12)))
                .expect("codes");
            (
                coded.age,
                coded.older_age,
                coder.arena[coded.range].to_vec(),
            )
        };
        let for_a = on(&a, &mut coder);
        let for_b = on(&b, &mut coder);
        let for_c = on(&c, &mut coder);
        let for_d = on(&KeyBaseline::default(), &mut coder);
        assert_eq!(for_a, for_b, "the same baselines, the same bytes");
        assert_eq!((for_a.0, for_c.0, for_c.1, for_d.0), (2, 1, 2, 0));
        assert_ne!(for_a.2, for_c.2);
        assert_eq!(coder.stats.coded - stats.coded, 3, "a, c and d coded");
        assert_eq!(coder.stats.shared - stats.shared, 1, "b shared a's");
        // The next tick codes again: the value may have changed.
        coder.begin(13);
        on(&a, &mut coder);
        assert_eq!(coder.stats.coded - stats.coded, 4);
    }

    #[test]
    fn a_value_changed_within_a_tick_is_neither_shared_nor_a_baseline() {
        let mut coder = ValueCoder::default();
        coder.begin(5);
        let first = coder
            .code(KEY, &[1, 2, 3, 4], None, Some(None))
            .expect("codes");
        assert!(first.on_baselines);
        // The host never does this; a coder must not give the second value the first
        // one's bytes, nor let a peer's baseline at this tick name either.
        let second = coder
            .code(KEY, &[9, 9, 9, 9], None, Some(None))
            .expect("codes");
        assert_eq!(&coder.arena[second.range.clone()], &[9, 9, 9, 9]);
        assert!(!second.on_baselines);
        assert!(coder.history.at(KEY, 5).is_none());
        // Without baselines (a client, or a value too large), nothing is recorded.
        let raw = coder.code((ComponentId(8), EntityId(1)), &[5; 4], None, None);
        assert!(raw.is_some_and(|c| !c.on_baselines && c.age == 0));
        assert!(coder.history.at((ComponentId(8), EntityId(1)), 5).is_none());
    }
}
