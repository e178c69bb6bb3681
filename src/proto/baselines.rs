//! The sender's side of values coded against acknowledged baselines (the receiver's is
//! `replica::baselines`): per key, the newest value the peer acknowledged, and the ticks
//! of the last sends. A value is coded against the acknowledged one (XOR: what did not
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

#[derive(Debug, Default)]
struct KeyBaseline {
    /// The tick of the first send since the key was (last) forgotten: an acknowledgement
    /// of an older send is of a value the peer may have forgotten too.
    since: u64,
    acked: Option<(u64, Held)>,
    /// The acknowledged value before `acked` (a prediction extrapolates through both).
    older: Option<(u64, Held)>,
    /// Ticks of the last sends (0: none yet), oldest overwritten first.
    sends: [u64; HISTORY],
    next: usize,
}

/// An acknowledged value: its bytes, and its lanes when its type declares fields (kept,
/// so that coding against it does not quantise it again for every send).
#[derive(Debug, Default)]
struct Held {
    bytes: Vec<u8>,
    lanes: Vec<i64>,
}

/// An acknowledged value, as [`Held`], and the tick it was sent at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Baseline<'a> {
    /// The tick it was sent at.
    pub at: u64,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Its lanes (empty: its type declares no fields).
    pub lanes: &'a [i64],
}

/// One peer's baselines, by entity (an entity's keys are forgotten at once when it
/// leaves the peer's interest or is despawned, without a scan of every key).
#[derive(Debug, Default)]
pub(crate) struct Baselines {
    entities: FxHashMap<EntityId, Vec<(ComponentId, KeyBaseline)>>,
    /// Bytes of the acknowledged values held.
    bytes: usize,
}

fn held_bytes(entry: &KeyBaseline) -> usize {
    [&entry.acked, &entry.older]
        .iter()
        .map(|held| held.as_ref().map_or(0, |(_, v)| v.bytes.len()))
        .sum()
}

impl Baselines {
    fn get(&self, (component, entity): Key) -> Option<&KeyBaseline> {
        let keys = self.entities.get(&entity)?;
        keys.iter().find(|(c, _)| *c == component).map(|(_, k)| k)
    }

    fn get_mut(&mut self, (component, entity): Key) -> Option<&mut KeyBaseline> {
        let keys = self.entities.get_mut(&entity)?;
        keys.iter_mut()
            .find(|(c, _)| *c == component)
            .map(|(_, k)| k)
    }

    /// The baseline a value of `key` sent at `tick` may be coded against: the newest value
    /// the peer acknowledged, while it is among the last [`HISTORY`] sends (so the peer
    /// still holds it) and older than `tick`; with the acknowledged value before it when
    /// that is usable too (a prediction extrapolates through both).
    pub(crate) fn usable_pair(
        &self,
        key: Key,
        tick: u64,
    ) -> Option<(Baseline<'_>, Option<Baseline<'_>>)> {
        let entry = self.get(key)?;
        let oldest_send = entry.sends.iter().copied().min().unwrap_or(0);
        fn usable(held: &Option<(u64, Held)>, oldest_send: u64, tick: u64) -> Option<Baseline<'_>> {
            match held {
                Some((at, held)) if *at >= oldest_send && *at < tick && tick - at <= 255 => {
                    Some(Baseline {
                        at: *at,
                        bytes: &held.bytes,
                        lanes: &held.lanes,
                    })
                }
                _ => None,
            }
        }
        Some((
            usable(&entry.acked, oldest_send, tick)?,
            usable(&entry.older, oldest_send, tick),
        ))
    }

    /// Records that a value of `key` was sent at `tick` (coded on a baseline or not).
    pub(crate) fn sent(&mut self, key: Key, tick: u64) {
        let (component, entity) = key;
        let keys = self.entities.entry(entity).or_default();
        let at = match keys.iter().position(|(c, _)| *c == component) {
            Some(at) => at,
            None => {
                keys.push((
                    component,
                    KeyBaseline {
                        since: tick,
                        ..KeyBaseline::default()
                    },
                ));
                keys.len() - 1
            }
        };
        let entry = &mut keys[at].1;
        entry.sends[entry.next] = tick;
        entry.next = (entry.next + 1) % HISTORY;
    }

    /// The peer acknowledged `value` of `key` sent at `tick` (with its `lanes`, empty for a
    /// type without declared fields): it becomes the baseline unless a newer one is (a key
    /// forgotten since is not brought back). It is copied into the buffers of the baseline
    /// it retires: nothing is allocated once a key holds two.
    pub(crate) fn acked(&mut self, key: Key, tick: u64, value: &[u8], lanes: &[i64]) {
        let Some(entry) = self.get_mut(key) else {
            return;
        };
        if tick < entry.since || entry.acked.as_ref().is_some_and(|(at, _)| *at >= tick) {
            return;
        }
        let mut held = entry.older.take().map(|(_, v)| v).unwrap_or_default();
        let freed = held.bytes.len();
        held.bytes.clear();
        held.bytes.extend_from_slice(value);
        held.lanes.clear();
        held.lanes.extend_from_slice(lanes);
        entry.older = entry.acked.replace((tick, held));
        self.bytes = self.bytes - freed + value.len();
    }

    /// Forgets the keys `drop` names (the peer forgets them too: they left its interest,
    /// or their entity is gone).
    pub(crate) fn forget(&mut self, drop: impl Fn(Key) -> bool) {
        let mut freed = 0;
        self.entities.retain(|&entity, keys| {
            keys.retain(|(component, entry)| {
                let keep = !drop((*component, entity));
                if !keep {
                    freed += held_bytes(entry);
                }
                keep
            });
            !keys.is_empty()
        });
        self.bytes -= freed;
    }

    /// Forgets the keys of `entity`.
    pub(crate) fn forget_entity(&mut self, entity: EntityId) {
        if let Some(keys) = self.entities.remove(&entity) {
            self.bytes -= keys.iter().map(|(_, e)| held_bytes(e)).sum::<usize>();
        }
    }

    /// Forgets everything (a new connection: the peer starts without history).
    pub(crate) fn clear(&mut self) {
        self.entities.clear();
        self.bytes = 0;
    }

    /// Bytes of acknowledged values held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the outbox codes a raw value: XOR'd with a usable baseline, the send recorded.
    trait Code {
        fn code(&mut self, key: Key, tick: u64, value: &[u8], out: &mut Vec<u8>) -> u8;
    }

    impl Code for Baselines {
        fn code(&mut self, key: Key, tick: u64, value: &[u8], out: &mut Vec<u8>) -> u8 {
            let age = xor_on(
                self.usable_pair(key, tick).map(|(n, _)| (n.at, n.bytes)),
                tick,
                value,
                out,
            );
            self.sent(key, tick);
            age
        }
    }

    fn key() -> Key {
        (ComponentId(3), EntityId(9))
    }

    #[test]
    fn only_acknowledged_values_among_the_last_sends_are_baselines() {
        let mut b = Baselines::default();
        let mut out = Vec::new();
        assert_eq!(
            b.code(key(), 10, &[1, 2, 3, 4], &mut out),
            0,
            "nothing acked"
        );
        assert_eq!(out, [1, 2, 3, 4]);
        b.acked(key(), 10, &[1, 2, 3, 4], &[]);
        out.clear();
        assert_eq!(b.code(key(), 12, &[1, 2, 3, 5], &mut out), 2);
        assert_eq!(out, [0, 0, 0, 1], "XOR with what the peer holds");
        // A late acknowledgement of an older send does not replace a newer baseline.
        b.acked(key(), 12, &[1, 2, 3, 5], &[]);
        b.acked(key(), 10, &[1, 2, 3, 4], &[]);
        out.clear();
        assert_eq!(b.code(key(), 13, &[1, 2, 3, 5], &mut out), 1);
        assert_eq!(out, [0; 4]);
        // A value that changed all over goes whole.
        out.clear();
        assert_eq!(b.code(key(), 14, &[0, 0, 250, 251], &mut out), 0);
        assert_eq!(out, [0, 0, 250, 251]);
        // Eight more sends without an acknowledgement: the baseline may be gone from the
        // peer's history, so the value goes whole.
        for tick in 15..22 {
            out.clear();
            b.code(key(), tick, &[7; 4], &mut out);
        }
        out.clear();
        assert_eq!(b.code(key(), 22, &[7; 4], &mut out), 0);
        assert_eq!(out, [7; 4]);
        // Forgotten keys are not brought back by a late acknowledgement, even once they
        // are sent again.
        b.forget_entity(EntityId(9));
        b.acked(key(), 21, &[7; 4], &[]);
        assert_eq!(b.bytes(), 0);
        out.clear();
        assert_eq!(b.code(key(), 23, &[7; 4], &mut out), 0);
        b.acked(key(), 21, &[7; 4], &[]);
        out.clear();
        assert_eq!(
            b.code(key(), 24, &[7; 4], &mut out),
            0,
            "acked before it came back"
        );
        b.acked(key(), 23, &[7; 4], &[]);
        out.clear();
        assert_eq!(b.code(key(), 25, &[7; 4], &mut out), 2);
        // Lanes acknowledged with a value come back with it, the older one's too, and the
        // bytes held count each value once.
        b.acked(key(), 25, &[8; 4], &[1, 2, 3]);
        let (newer, older) = b.usable_pair(key(), 26).expect("usable");
        assert_eq!(
            (newer.at, newer.bytes, newer.lanes),
            (25, &[8u8; 4][..], &[1i64, 2, 3][..])
        );
        let older = older.expect("the older one too");
        assert_eq!((older.at, older.lanes), (23, &[][..]));
        assert_eq!(b.bytes(), 8);
        b.forget_entity(EntityId(9));
        assert_eq!(b.bytes(), 0);
    }
}
