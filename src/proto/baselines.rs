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

use crate::replica::baselines::HISTORY;

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

/// One key's baselines with one peer: ticks and send numbers only (the values sent are
/// the host's, in `proto::value_history`). It travels with the outbox's pending entry of
/// the key while the key is pending, and stays in the key's record while it rests.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyBaseline {
    /// The tick of the first send since the key was (last) forgotten (0: none yet): an
    /// acknowledgement of an older send is of a value the peer may have forgotten too.
    since: u64,
    /// The newest send the peer acknowledged; tick 0: none (nothing is sent at tick 0:
    /// a client's first datagrams come after its snapshot's tick).
    acked: Send,
    /// The acknowledged send before `acked` (a prediction extrapolates through both).
    older: Send,
    /// Sends so far (since the key was last forgotten); the next send's number.
    sends: u32,
}

/// A send of a key: its tick, and its number among the key's sends (packed: a record
/// stays small, and a peer's records are many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, packed(4))]
pub(crate) struct Send {
    /// The tick it was sent at.
    pub tick: u64,
    /// Its number among the sends of its key.
    pub number: u32,
}

/// The ticks of the baselines a value may be coded against (see [`KeyBaseline::pair`]):
/// the newest acknowledged send, and the one before it.
pub(crate) type Pair = (u64, Option<u64>);

impl KeyBaseline {
    /// No send yet.
    pub(crate) const NEW: KeyBaseline = KeyBaseline {
        since: 0,
        acked: Send { tick: 0, number: 0 },
        older: Send { tick: 0, number: 0 },
        sends: 0,
    };

    /// The ticks of the baselines a value sent at `tick` may be coded against: the newest
    /// send the peer acknowledged, while it is among the last [`HISTORY`] sends (so the
    /// peer still holds it) and older than `tick` by at most 255; with the acknowledged
    /// send before it when that is usable too (a prediction extrapolates through both).
    pub(crate) fn pair(&self, tick: u64) -> Option<Pair> {
        let sends = self.sends;
        let usable = |send: Send| {
            let (at, number) = (send.tick, send.number);
            (at > 0
                && sends.wrapping_sub(number) <= HISTORY as u32
                && at < tick
                && tick - at <= 255)
                .then_some(at)
        };
        usable(self.acked).map(|at| (at, usable(self.older)))
    }

    /// Records a send at `tick` (coded on a baseline or not: the peer keeps each).
    pub(crate) fn sent(&mut self, tick: u64) -> Send {
        if self.sends == 0 && self.since == 0 {
            self.since = tick;
        }
        let number = self.sends;
        self.sends = number.wrapping_add(1);
        Send { tick, number }
    }

    /// The tick of the first send since the key was (last) forgotten (0: never sent).
    pub(crate) fn since(&self) -> u64 {
        self.since
    }

    /// The peer acknowledged `send`: it becomes the baseline unless a newer one is (or it
    /// came before the key was last forgotten).
    pub(crate) fn acked(&mut self, send: Send) {
        let (tick, acked) = (send.tick, self.acked.tick);
        if tick == 0 || self.since == 0 || tick < self.since || acked >= tick {
            return;
        }
        self.older = std::mem::replace(&mut self.acked, send);
    }
}

#[cfg(test)]
mod tests {
    use super::super::value_history::ValueHistory;
    use super::*;

    use crate::proto::outbox::Key;
    use crate::registry::ComponentId;
    use crate::world::EntityId;

    fn key() -> Key {
        (ComponentId(3), EntityId(9))
    }

    /// Codes a raw value as the outbox does: XOR'd with a usable baseline's value, the
    /// send recorded here and in the shared history; returns the age and the send.
    fn code(
        b: &mut KeyBaseline,
        h: &mut ValueHistory,
        tick: u64,
        value: &[u8],
        out: &mut Vec<u8>,
    ) -> (u8, Send) {
        out.clear();
        h.record(key(), tick, value, None);
        let base = b
            .pair(tick)
            .and_then(|(at, _)| Some((at, &h.at(key(), at)?.bytes[..])));
        (xor_on(base, tick, value, out), b.sent(tick))
    }

    #[test]
    fn only_acknowledged_values_among_the_last_sends_are_baselines() {
        let (mut b, mut h) = (KeyBaseline::default(), ValueHistory::default());
        let mut out = Vec::new();
        let (age, s10) = code(&mut b, &mut h, 10, &[1, 2, 3, 4], &mut out);
        assert_eq!(age, 0, "nothing acked");
        assert_eq!(out, [1, 2, 3, 4]);
        b.acked(s10);
        let (age, s12) = code(&mut b, &mut h, 12, &[1, 2, 3, 5], &mut out);
        assert_eq!(age, 2);
        assert_eq!(out, [0, 0, 0, 1], "XOR with what the peer holds");
        // A late acknowledgement of an older send does not replace a newer baseline.
        b.acked(s12);
        b.acked(s10);
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
        // Forgotten (its entity gone, or out of the peer's interest), a late
        // acknowledgement does not bring a key back, even once it is sent again.
        let mut b = KeyBaseline::default();
        b.acked(s21);
        assert_eq!(b.pair(23), None);
        let (_, s23) = code(&mut b, &mut h, 23, &[7; 4], &mut out);
        b.acked(s21);
        assert_eq!(
            code(&mut b, &mut h, 24, &[7; 4], &mut out).0,
            0,
            "acked before it came back"
        );
        b.acked(s23);
        let (age, s25) = code(&mut b, &mut h, 25, &[7; 4], &mut out);
        assert_eq!(age, 2);
        // The older acknowledged send comes with the newer one.
        b.acked(s25);
        assert_eq!(b.pair(26), Some((25, Some(23))));
        // The value behind a baseline whose version the shared history no longer holds
        // is not found: the value goes whole.
        let mut b = KeyBaseline::default();
        let s30 = b.sent(30);
        b.acked(s30);
        h.forget_entity(EntityId(9));
        assert_eq!(code(&mut b, &mut h, 31, &[7; 4], &mut out).0, 0);
    }
}
