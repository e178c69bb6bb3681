//! How one value goes to one peer in a state datagram: raw; XOR'd with a baseline the
//! peer acknowledged (`proto::baselines`); or, for a component with declared fields
//! (`crate::fields`), as lanes coded against the baseline's lanes (`wire::lanes`), which
//! makes a smoothly moving transform a few bytes. Coding happens while a datagram is
//! planned, so its size is known exactly; the send is recorded when it is encoded.

use std::ops::Range;

use super::baselines::{xor_on, Baselines};
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
    /// Coded as lanes (its batch's `lanes`), not bytes (its batch's `data`).
    pub lanes: bool,
    /// Where its bytes are in [`ValueCoder::arena`].
    pub range: Range<usize>,
}

/// Codes the values of one build; reuses its buffers.
#[derive(Debug, Default)]
pub(crate) struct ValueCoder {
    /// The coded bytes of every value coded since [`ValueCoder::clear`].
    pub arena: Vec<u8>,
    lanes: Vec<i64>,
    base: Vec<i64>,
}

impl ValueCoder {
    /// Forgets the values coded (a new build).
    pub(crate) fn clear(&mut self) {
        self.arena.clear();
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
        let base = baselines
            .filter(|_| Self::on_baselines(fixed, value.len()))
            .and_then(|b| b.usable(key, tick));
        let Some(layout) = fields else {
            let age = xor_on(base, tick, value, &mut self.arena);
            return Some(Coded {
                age,
                lanes: false,
                range: start..self.arena.len(),
            });
        };
        layout.lanes_into(value, &mut self.lanes).ok()?;
        let kinds = layout.lane_kinds();
        // Against the baseline when that is shorter (it is, unless the value jumped).
        let against = base.and_then(|(at, bytes)| {
            layout.lanes_into(bytes, &mut self.base).ok()?;
            let on = lanes::encoded_len(kinds, &self.lanes, Some(&self.base));
            (on < lanes::encoded_len(kinds, &self.lanes, None)).then_some(at)
        });
        let age = match against {
            Some(at) => {
                lanes::encode(kinds, &self.lanes, Some(&self.base), &mut self.arena);
                u8::try_from(tick - at).unwrap_or(0)
            }
            None => {
                lanes::encode(kinds, &self.lanes, None, &mut self.arena);
                0
            }
        };
        Some(Coded {
            age,
            lanes: true,
            range: start..self.arena.len(),
        })
    }
}
