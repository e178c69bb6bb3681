//! What goes first when a tick's byte budget does not fit every change: each key waiting
//! to be sent gains points every tick, and the fullest go first. An entity's points per
//! tick are its engine-set weight times its nearness to the peer (Netcode for Entities'
//! distance importance): near, heavy and long-waiting state goes before far, light and
//! fresh state, and far objects are sent less often only when the budget is short.

use rustc_hash::FxHashMap;

use crate::world::EntityId;

/// Points per tick of an entity of weight 1 at no distance.
const BASE_POINTS: f32 = 16.0;
/// The lightest and heaviest weights an engine may set.
pub const MIN_PRIORITY_WEIGHT: f32 = 0.01;
/// See [`MIN_PRIORITY_WEIGHT`].
pub const MAX_PRIORITY_WEIGHT: f32 = 100.0;

/// Why a priority weight was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("a priority weight must be a number from {MIN_PRIORITY_WEIGHT} to {MAX_PRIORITY_WEIGHT} ({0} given)")]
pub struct PriorityError(pub f32);

/// The engine's per-entity weights (1 when unset).
#[derive(Debug, Default)]
pub(crate) struct Priorities {
    weights: FxHashMap<EntityId, f32>,
}

impl Priorities {
    /// Sets `entity`'s weight (1 is the default: what an unset entity has).
    pub(crate) fn set(&mut self, entity: EntityId, weight: f32) -> Result<(), PriorityError> {
        if !(MIN_PRIORITY_WEIGHT..=MAX_PRIORITY_WEIGHT).contains(&weight) {
            return Err(PriorityError(weight));
        }
        if weight == 1.0 {
            self.weights.remove(&entity);
        } else {
            self.weights.insert(entity, weight);
        }
        Ok(())
    }

    /// Forgets a despawned entity.
    pub(crate) fn forget(&mut self, entity: EntityId) {
        self.weights.remove(&entity);
    }

    /// Points per tick for `entity` at `distance` metres from the peer (`None`: no
    /// position, counted as near), with distances measured in `scale` metres (one cell).
    pub(crate) fn points(&self, entity: EntityId, distance: Option<f32>, scale: f32) -> u32 {
        let weight = self.weights.get(&entity).copied().unwrap_or(1.0);
        let nearness = distance.map_or(1.0, |d| 1.0 / (1.0 + d.max(0.0) / scale));
        (BASE_POINTS * weight * nearness).clamp(1.0, u32::MAX as f32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearer_and_heavier_entities_gain_more_points_and_bad_weights_are_refused() {
        let mut p = Priorities::default();
        let (a, b) = (EntityId(1), EntityId(2));
        assert_eq!(p.points(a, None, 10.0), 16);
        assert!(p.points(a, Some(0.0), 10.0) > p.points(a, Some(30.0), 10.0));
        assert!(p.points(a, Some(1e9), 10.0) >= 1, "never starved");
        p.set(b, 4.0).unwrap();
        assert_eq!(p.points(b, None, 10.0), 64);
        for bad in [f32::NAN, 0.0, -1.0, 1000.0, f32::INFINITY] {
            assert!(p.set(b, bad).is_err(), "{bad}");
        }
        assert_eq!(p.points(b, None, 10.0), 64, "unchanged");
        p.forget(b);
        assert_eq!(p.points(b, None, 10.0), 16);
    }
}
