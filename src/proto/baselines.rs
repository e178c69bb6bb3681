//! The sender's side of values coded against acknowledged baselines (the receiver's is
//! `replica::baselines`): per key, the ticks of the newest sends the peer acknowledged
//! (the values sent then are the host's, in `proto::value_history`, shared by every
//! peer) and of the last sends. A value is coded against the acknowledged one (XOR: what did not
//! change becomes zeros, which the datagram codec squeezes) only while that one is among
//! the last [`HISTORY`] sends of the key, so the peer, which keeps the newest
//! [`HISTORY`] values it received of each key, holds it; and only while it is at most
//! 255 ticks old (its age travels in a byte). Loss and reordering cannot desynchronise:
//! only acknowledged values are referenced, and a late acknowledgement of an older value
//! never replaces a newer baseline.

use rustc_hash::FxHashMap;

use crate::registry::ComponentId;
use crate::replica::baselines::HISTORY;
use crate::world::EntityId;

/// A (component, entity) key, as the outbox's.
type Key = (ComponentId, EntityId);

fn zeros(bytes: impl Iterator<Item = u8>) -> usize {
    bytes.filter(|&b| b == 0).count()
}

/// Appends `value` sent at `tick` to `out`, XOR'd with `base` (a usable baseline and its
/// tick) when that leaves clearly more zero bytes than the value has (a quarter of its
/// length more): a value that changed all over (a teleport, random bytes) XOR'd is as
/// random as itself and loses the patterns (exponents, constant fields) the codec's
/// dictionary knows. Returns the baseline's age (0: the value itself).
pub(crate) fn xor_on(base: Option<(u64, &[u8])>, tick: u64, value: &[u8], out: &mut Vec<u8>) -> u8 {
    match base {
        Some((at, base))
            if base.len() == value.len()
                && zeros(value.iter().zip(base).map(|(a, b)| a ^ b))
                    > zeros(value.iter().copied()) + value.len() / 4 =>
        {
            out.extend(value.iter().zip(base).map(|(a, b)| a ^ b));
            u8::try_from(tick - at).unwrap_or(0)
        }
        _ => {
            out.extend_from_slice(value);
            0
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct KeyBaseline {
    /// The tick of the first send since the key was (last) forgotten: an acknowledgement
    /// of an older send is of a value the peer may have forgotten too.
    since: u64,
    /// The newest send the peer acknowledged (its value is in `proto::value_history`,
    /// shared by every peer); `None`: none.
    acked: Option<Send>,
    /// The acknowledged send before `acked` (a prediction extrapolates through both).
    older: Option<Send>,
    /// Sends so far (since the key was last forgotten); the next send's number.
    sends: u32,
}

/// A send of a key: its tick, and its number among the key's sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Send {
    /// The tick it was sent at.
    pub tick: u64,
    /// Its number among the sends of its key.
    pub number: u32,
}

/// The ticks of the baselines a value may be coded against (see
/// [`Baselines::pair_and_send`]): the newest acknowledged send, and the one before it.
pub(crate) type Pair = (u64, Option<u64>);

/// One peer's baselines: per key, the acknowledged sends (ticks only: the values behind
/// them are the host's `ValueHistory`), found with one lookup per value sent; and per
/// entity its keys, so that an entity's keys are forgotten at once when it leaves the
/// peer's interest or is despawned, without a scan of every key.
#[derive(Debug, Default)]
pub(crate) struct Baselines {
    keys: FxHashMap<Key, KeyBaseline>,
    entities: FxHashMap<EntityId, Vec<ComponentId>>,
}

impl Baselines {
    /// For a value of `key` sent at `tick`: the ticks of the baselines it may be coded
    /// against, and this send, now recorded. A baseline is the newest send the peer
    /// acknowledged, while it is among the last [`HISTORY`] sends (so the peer still
    /// holds it) and older than `tick` by at most 255; with the acknowledged send before
    /// it when that is usable too (a prediction extrapolates through both).
    pub(crate) fn pair_and_send(&mut self, key: Key, tick: u64) -> (Option<Pair>, Send) {
        let entry = match self.keys.get_mut(&key) {
            Some(entry) => entry,
            None => {
                self.entities.entry(key.1).or_default().push(key.0);
                self.keys.entry(key).or_insert(KeyBaseline {
                    since: tick,
                    ..KeyBaseline::default()
                })
            }
        };
        let sends = entry.sends;
        let usable = |send: Option<Send>| {
            send.filter(|s| {
                sends.wrapping_sub(s.number) <= HISTORY as u32
                    && s.tick < tick
                    && tick - s.tick <= 255
            })
            .map(|s| s.tick)
        };
        let pair = usable(entry.acked).map(|at| (at, usable(entry.older)));
        entry.sends = sends.wrapping_add(1);
        (pair, Send { tick, number: sends })
    }

    /// The peer acknowledged `send` of `key`: it becomes the baseline unless a newer one
    /// is (a key forgotten since is not brought back).
    pub(crate) fn acked(&mut self, key: Key, send: Send) {
        let Some(entry) = self.keys.get_mut(&key) else {
            return;
        };
        if send.tick < entry.since || entry.acked.is_some_and(|a| a.tick >= send.tick) {
            return;
        }
        entry.older = entry.acked.replace(send);
    }

    /// Forgets the keys `drop` names (the peer forgets them too: they left its interest,
    /// or their entity is gone).
    pub(crate) fn forget(&mut self, drop: impl Fn(Key) -> bool) {
        self.keys.retain(|&key, _| !drop(key));
        self.entities.retain(|&entity, components| {
            components.retain(|&component| !drop((component, entity)));
            !components.is_empty()
        });
    }

    /// Forgets the keys of `entity`.
    pub(crate) fn forget_entity(&mut self, entity: EntityId) {
        for component in self.entities.remove(&entity).unwrap_or_default() {
            self.keys.remove(&(component, entity));
        }
    }

    /// Forgets everything (a new connection: the peer starts without history).
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.entities.clear();
    }

    /// Bytes of the per-key records held (the values behind them are shared).
    pub(crate) fn bytes(&self) -> usize {
        self.keys.len() * std::mem::size_of::<(Key, KeyBaseline, ComponentId)>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::value_history::ValueHistory;
    use super::*;

    fn key() -> Key {
        (ComponentId(3), EntityId(9))
    }

    /// Codes a raw value as the outbox does: XOR'd with a usable baseline's value, the
    /// send recorded here and in the shared history; returns the age and the send.
    fn code(
        b: &mut Baselines,
        h: &mut ValueHistory,
        tick: u64,
        value: &[u8],
        out: &mut Vec<u8>,
    ) -> (u8, Send) {
        out.clear();
        h.record(key(), tick, value, None);
        let (pair, send) = b.pair_and_send(key(), tick);
        let base = pair.and_then(|(at, _)| Some((at, &h.at(key(), at)?.bytes[..])));
        (xor_on(base, tick, value, out), send)
    }

    #[test]
    fn only_acknowledged_values_among_the_last_sends_are_baselines() {
        let (mut b, mut h) = (Baselines::default(), ValueHistory::default());
        let mut out = Vec::new();
        let (age, s10) = code(&mut b, &mut h, 10, &[1, 2, 3, 4], &mut out);
        assert_eq!(age, 0, "nothing acked");
        assert_eq!(out, [1, 2, 3, 4]);
        b.acked(key(), s10);
        let (age, s12) = code(&mut b, &mut h, 12, &[1, 2, 3, 5], &mut out);
        assert_eq!(age, 2);
        assert_eq!(out, [0, 0, 0, 1], "XOR with what the peer holds");
        // A late acknowledgement of an older send does not replace a newer baseline.
        b.acked(key(), s12);
        b.acked(key(), s10);
        assert_eq!(code(&mut b, &mut h, 13, &[1, 2, 3, 5], &mut out).0, 1);
        assert_eq!(out, [0; 4]);
        // A value that changed all over goes whole.
        assert_eq!(code(&mut b, &mut h, 14, &[0, 0, 250, 251], &mut out).0, 0);
        assert_eq!(out, [0, 0, 250, 251]);
        // Eight more sends without an acknowledgement: the baseline may be gone from the
        // peer's history, so the value goes whole.
        let mut s21 = s12;
        for tick in 15..22 {
            s21 = code(&mut b, &mut h, tick, &[7; 4], &mut out).1;
        }
        assert_eq!(code(&mut b, &mut h, 22, &[7; 4], &mut out).0, 0);
        assert_eq!(out, [7; 4]);
        // Forgotten keys are not brought back by a late acknowledgement, even once they
        // are sent again.
        b.forget_entity(EntityId(9));
        b.acked(key(), s21);
        assert_eq!(b.bytes(), 0);
        let (_, s23) = code(&mut b, &mut h, 23, &[7; 4], &mut out);
        b.acked(key(), s21);
        assert_eq!(code(&mut b, &mut h, 24, &[7; 4], &mut out).0, 0, "acked before it came back");
        b.acked(key(), s23);
        let (age, s25) = code(&mut b, &mut h, 25, &[7; 4], &mut out);
        assert_eq!(age, 2);
        // The older acknowledged send comes with the newer one.
        b.acked(key(), s25);
        assert_eq!(b.pair_and_send(key(), 26).0, Some((25, Some(23))));
        assert!(b.bytes() > 0);
        b.forget(|k| k == key());
        assert_eq!(b.bytes(), 0);
        // The value behind a baseline whose version the shared history no longer holds
        // is not found: the value goes whole.
        let (_, s30) = b.pair_and_send(key(), 30);
        b.acked(key(), s30);
        h.forget_entity(EntityId(9));
        assert_eq!(code(&mut b, &mut h, 31, &[7; 4], &mut out).0, 0);
    }
}
