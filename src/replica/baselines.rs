//! Values this peer received in state datagrams, kept briefly: the sender codes a later
//! value against one this peer acknowledged (XOR with it: small changes become runs of
//! zeros, which the codec squeezes), naming it by its age in ticks. The sender uses a
//! baseline only while it is among the last [`HISTORY`] values it sent of that key; this
//! peer keeps the [`KEEP`] newest it received of each key, so it holds the baseline
//! unless more than `KEEP - HISTORY` later values of the key overtook the one coded on
//! it. Then the datagram is not acknowledged (see [`History::holds_baselines`]): it goes
//! again, on a newer baseline.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::{Checked, ReplicaError};
use crate::registry::{ComponentId, Registry};
use crate::wire::{fb, lanes, EntityList, WireError};
use crate::world::EntityId;

/// The sender's window: a baseline is among the last this many sends of its key.
pub const HISTORY: usize = 8;
/// Values kept per key by the receiver.
pub const KEEP: usize = 16;
/// Largest value coded against a baseline (larger ones always travel whole).
pub const MAX_BASELINE_BYTES: usize = 256;

/// The newest values received of one key, with their ticks.
type Ring = Vec<(u64, Vec<u8>)>;

/// Per entity, per component: the newest values received, with their ticks.
#[derive(Debug, Default)]
pub(crate) struct History {
    entities: FxHashMap<EntityId, Vec<(ComponentId, Ring)>>,
    bytes: usize,
}

impl History {
    /// Notes `value` of `(component, entity)` at `tick` (once per tick; the oldest goes
    /// when more than [`KEEP`] are held).
    fn record(&mut self, component: ComponentId, entity: EntityId, tick: u64, value: &[u8]) {
        if value.len() > MAX_BASELINE_BYTES {
            return;
        }
        let keys = self.entities.entry(entity).or_default();
        let ring = match keys.iter().position(|(c, _)| *c == component) {
            Some(at) => &mut keys[at].1,
            None => {
                keys.push((component, Vec::with_capacity(KEEP)));
                &mut keys.last_mut().expect("pushed").1
            }
        };
        if ring.iter().any(|(t, _)| *t == tick) {
            return;
        }
        if ring.len() == KEEP {
            let (oldest, _) = ring
                .iter()
                .enumerate()
                .min_by_key(|(_, (t, _))| *t)
                .expect("full");
            if ring[oldest].0 > tick {
                return;
            }
            let (_, gone) = ring.swap_remove(oldest);
            self.bytes -= gone.len();
        }
        ring.push((tick, value.to_vec()));
        self.bytes += value.len();
    }

    fn get(&self, component: ComponentId, entity: EntityId, tick: u64) -> Option<&[u8]> {
        let keys = self.entities.get(&entity)?;
        let (_, ring) = keys.iter().find(|(c, _)| *c == component)?;
        ring.iter()
            .find(|(t, _)| *t == tick)
            .map(|(_, v)| v.as_slice())
    }

    /// Forgets what was received of `entity` up to `tick` (it left the interest then, or
    /// was despawned: `u64::MAX`); its sender forgot its baselines then too. What came
    /// later stays: the entity entered again, and its sender may code against that (a
    /// late notice arrives after the state of the return).
    pub(crate) fn forget_entity(&mut self, entity: EntityId, tick: u64) {
        let Some(keys) = self.entities.get_mut(&entity) else {
            return;
        };
        for (_, ring) in keys.iter_mut() {
            ring.retain(|(t, v)| {
                let keep = *t > tick;
                if !keep {
                    self.bytes -= v.len();
                }
                keep
            });
        }
        keys.retain(|(_, ring)| !ring.is_empty());
        if keys.is_empty() {
            self.entities.remove(&entity);
        }
    }

    /// Forgets everything (a new connection: its sender starts without baselines).
    pub(crate) fn clear(&mut self) {
        self.entities.clear();
        self.bytes = 0;
    }

    /// Whether every baseline `frame`'s values are coded against is held (a frame whose
    /// batches do not add up is let through, for the full check to refuse).
    pub(crate) fn holds_baselines(&self, frame: fb::DeltaFrame<'_>) -> bool {
        let Some(batches) = frame.batches() else {
            return true;
        };
        batches.iter().all(|batch| {
            let (Some(ages), Ok(entities)) = (batch.baseline_ages(), EntityList::parse(batch))
            else {
                return true;
            };
            let component = ComponentId(batch.component());
            ages.iter().zip(entities.iter()).all(|(age, entity)| {
                age == 0
                    || frame
                        .tick()
                        .checked_sub(u64::from(age))
                        .is_some_and(|at| self.get(component, entity, at).is_some())
            })
        })
    }

    /// Bytes of values held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The values of `checked`'s batches in order, each rebuilt from its baseline when it
    /// has one (XOR'd back, or lanes added to the baseline's: see [`crate::wire::lanes`];
    /// `None` when that baseline is not held: the value is skipped); with `record` (a
    /// state datagram), each fixed-size value is kept for later ones. Returns the values
    /// and how many lacked their baseline; lanes that do not decode refuse the whole
    /// message, before anything is kept.
    pub(crate) fn resolve<'a>(
        &mut self,
        checked: &Checked<'a>,
        record: bool,
        registry: &Registry,
    ) -> Result<(Vec<Option<Cow<'a, [u8]>>>, u64), ReplicaError> {
        let mut values = Vec::new();
        let mut missing = 0;
        let (mut base_lanes, mut lanes) = (Vec::new(), Vec::new());
        for batch in &checked.batches {
            let component = batch.component();
            let bad = |reason: &str| WireError::BadBatch {
                component,
                reason: reason.into(),
            };
            let layout = match batch.lanes() {
                Some(_) => Some(
                    registry
                        .fields(component)
                        .ok_or_else(|| bad("lanes without declared fields"))?,
                ),
                None => None,
            };
            let mut input = batch.lanes().unwrap_or_default();
            for entry in batch.iter() {
                let base = match entry.baseline_age {
                    0 => None,
                    age => Some(
                        checked
                            .tick
                            .checked_sub(u64::from(age))
                            .and_then(|at| self.get(component, entry.entity, at)),
                    ),
                };
                let value = match (layout, base) {
                    (None, None) => Some(Cow::Borrowed(entry.bytes)),
                    (None, Some(base)) => {
                        base.filter(|base| base.len() == entry.bytes.len())
                            .map(|base| {
                                Cow::Owned(
                                    entry.bytes.iter().zip(base).map(|(a, b)| a ^ b).collect(),
                                )
                            })
                    }
                    (Some(layout), base) => {
                        let base = match base {
                            None => Some(None),
                            Some(held) => held
                                .and_then(|held| layout.lanes_into(held, &mut base_lanes).ok())
                                .map(|()| Some(&base_lanes[..])),
                        };
                        let kinds = layout.lane_kinds();
                        // Read the lanes even without their baseline: the next value's
                        // start where these end.
                        lanes::decode(kinds, &mut input, base.flatten(), &mut lanes)
                            .map_err(bad)?;
                        match base {
                            Some(_) => {
                                let mut value = Vec::with_capacity(layout.size() as usize);
                                layout
                                    .value_into(&lanes, &mut value)
                                    .map_err(|e| bad(&e.to_string()))?;
                                Some(Cow::Owned(value))
                            }
                            None => None,
                        }
                    }
                };
                if value.is_none() {
                    missing += 1;
                }
                values.push(value);
            }
            if !input.is_empty() {
                return Err(bad("lane bytes left over").into());
            }
        }
        if record {
            let mut at = values.iter();
            for batch in checked.batches.iter() {
                for entry in batch.iter() {
                    if let Some(Some(v)) = at.next() {
                        if batch.fixed() {
                            self.record(batch.component(), entry.entity, checked.tick, v);
                        }
                    }
                }
            }
        }
        Ok((values, missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_values_of_each_key_are_kept_once_and_forgotten_with_their_entity() {
        let mut h = History::default();
        let (c, e, f) = (ComponentId(1), EntityId(7), EntityId(8));
        for tick in (1..=20).rev() {
            h.record(c, e, tick, &[tick as u8; 4]);
        }
        h.record(c, e, 12, &[0; 4]);
        assert_eq!(h.get(c, e, 12), Some(&[12u8; 4][..]), "once per tick");
        assert_eq!(h.get(c, e, 5), Some(&[5u8; 4][..]));
        assert_eq!(h.get(c, e, 4), None, "the sixteen newest");
        h.record(c, e, 3, &[3; 4]);
        assert_eq!(h.get(c, e, 3), None, "older than all kept: not taken");
        h.record(c, f, 1, &[1; 300]);
        assert_eq!(h.get(c, f, 1), None, "too large to be a baseline");
        assert_eq!(h.bytes(), 16 * 4);
        // A late notice of leaving at tick 8 keeps what came after.
        h.forget_entity(e, 8);
        assert_eq!(h.get(c, e, 8), None);
        assert_eq!(h.get(c, e, 9), Some(&[9u8; 4][..]));
        assert_eq!(h.bytes(), 12 * 4);
        h.forget_entity(e, u64::MAX);
        assert_eq!((h.get(c, e, 12), h.bytes()), (None, 0));
    }
}
