//! How one value goes to one peer in a state datagram: raw; XOR'd with a baseline the
//! peer acknowledged (`proto::baselines`); or, for a component with declared fields
//! (`crate::fields`), as lanes coded against the baseline's lanes (`wire::lanes`), which
//! makes a smoothly moving transform a few bytes. Coding happens while a datagram is
//! planned, so its size is known exactly; the send is recorded when it is encoded.

use std::ops::Range;

use super::baselines::{xor_on, Baseline, Baselines};
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
    /// Where its bytes are in [`ValueCoder::arena`].
    pub range: Range<usize>,
    /// Where the value's own lanes are in [`ValueCoder::lane_arena`] (empty: no declared
    /// fields), for it to become a baseline with them.
    pub value_lanes: Range<usize>,
}

/// Codes the values of one build; reuses its buffers.
#[derive(Debug, Default)]
pub(crate) struct ValueCoder {
    /// The coded bytes of every value coded since [`ValueCoder::clear`].
    pub arena: Vec<u8>,
    /// The lanes of every value of declared fields coded since then.
    pub lane_arena: Vec<i64>,
    lanes: Vec<i64>,
    base: Vec<i64>,
    older: Vec<i64>,
    predicted: Vec<i64>,
}

impl ValueCoder {
    /// Forgets the values coded (a new build).
    pub(crate) fn clear(&mut self) {
        self.arena.clear();
        self.lane_arena.clear();
    }

    /// Whether a value of `len` bytes, of a fixed size or not, is coded on baselines.
    pub(crate) fn on_baselines(fixed: bool, len: usize) -> bool {
        fixed && len <= MAX_BASELINE_BYTES
    }

    /// Codes `value` of `(component, entity)` to be sent at `tick`: as lanes when `fields`
    /// declares its layout, on the peer's baseline from `baselines` when there is a usable
    /// one worth it. `None` when its declared fields do not quantise (it cannot be: the
    /// world quantises every write), for the caller to send it raw another way.
    pub(crate) fn code(
        &mut self,
        baselines: Option<&Baselines>,
        key: (ComponentId, EntityId),
        tick: u64,
        value: &[u8],
        fields: Option<&FieldLayout>,
        fixed: bool,
    ) -> Option<Coded> {
        let start = self.arena.len();
        let pair = baselines
            .filter(|_| Self::on_baselines(fixed, value.len()))
            .and_then(|b| b.usable_pair(key, tick));
        let Some(layout) = fields else {
            let newer = pair.map(|(newer, _)| (newer.at, newer.bytes));
            let age = xor_on(newer, tick, value, &mut self.arena);
            return Some(Coded {
                age,
                older_age: 0,
                lanes: false,
                range: start..self.arena.len(),
                value_lanes: 0..0,
            });
        };
        layout.lanes_into(value, &mut self.lanes).ok()?;
        let kinds = layout.lane_kinds();
        // A baseline's lanes: kept with it since it was sent (or, should it have none,
        // quantised again).
        let lanes_of = |held: Baseline<'_>, out: &mut Vec<i64>| -> bool {
            if held.lanes.len() == kinds.len() {
                out.clear();
                out.extend_from_slice(held.lanes);
                true
            } else {
                layout.lanes_into(held.bytes, out).is_ok()
            }
        };
        let age_of = |at: u64| u8::try_from(tick - at).unwrap_or(0);
        // The fewest bits of: the lanes alone, against the baseline, against the
        // prediction through the two newest baselines (fewest unless the value jumped).
        let mut best = (lanes::coded_bits(kinds, &self.lanes, None), 0, 0);
        if let Some((newer, older)) = pair {
            let at = newer.at;
            if lanes_of(newer, &mut self.base) {
                let on = lanes::coded_bits(kinds, &self.lanes, Some(&self.base));
                if on < best.0 {
                    best = (on, age_of(at), 0);
                }
                if let Some(older) = older {
                    let older_at = older.at;
                    if lanes_of(older, &mut self.older) {
                        lanes::predict(
                            kinds,
                            (&self.base, at),
                            (&self.older, older_at),
                            tick,
                            &mut self.predicted,
                        );
                        // Naming the older baseline costs a byte before compression, but
                        // charging for it lost more than it saved on the demo (52.7 against
                        // 51.2 kB/s at 2 bits): residuals of 0 compress very well.
                        let on = lanes::coded_bits(kinds, &self.lanes, Some(&self.predicted));
                        if on < best.0 {
                            best = (on, age_of(at), age_of(older_at));
                        }
                    }
                }
            }
        }
        let (_, age, older_age) = best;
        let against = match (age, older_age) {
            (0, _) => None,
            (_, 0) => Some(&self.base[..]),
            _ => Some(&self.predicted[..]),
        };
        lanes::encode(kinds, &self.lanes, against, &mut self.arena);
        let lanes_start = self.lane_arena.len();
        self.lane_arena.extend_from_slice(&self.lanes);
        Some(Coded {
            age,
            older_age,
            lanes: true,
            range: start..self.arena.len(),
            value_lanes: lanes_start..self.lane_arena.len(),
        })
    }
}
