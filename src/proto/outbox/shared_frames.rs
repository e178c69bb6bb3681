//! State datagram bodies shared within a tick (issue 18: "the host builds and compresses
//! what a tick changed once and shares it among the clients that are in step").
//!
//! The host codes every client's values with one `ValueCoder`, so two clients that are
//! due the same keys, coded against the same baselines, get entries with equal codings:
//! equal ranges of the coder's arena, which within one filling of the arena
//! ([`ValueCoder::generation`]) are equal bytes. Their datagrams' bodies (the FlatBuffer
//! frame, without the per-client header) are then byte-identical, so the body is encoded
//! once, here by the entries that make it, and the others reuse it with its
//! [`FrameId`], by which the compression shares its envelope too. Only the per-client
//! header (sequence number, acknowledgements) and the per-client bookkeeping differ.

use std::hash::{Hash, Hasher};
use std::ops::Range;

use rustc_hash::{FxHashMap, FxHasher};

use super::{Entry, Key};
use crate::proto::value_coding::ValueCoder;

/// Bytes of bodies kept in one tick: past them, new bodies are encoded per client and not
/// recorded (a tick that sends that much differs per client anyway).
const BODY_BYTES_LIMIT: usize = 4 << 20;

/// A body encoded this tick, shared by the datagrams that carry it (the compression keys
/// its shared envelopes by it). Never reused within a session: `epoch` counts the fillings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FrameId {
    /// Which filling of the memo (see [`FrameId::epoch`]).
    pub(crate) epoch: u64,
    /// Its place in that filling.
    pub(crate) index: u32,
}

impl FrameId {
    /// Which filling of the memo the frame belongs to: an id of another epoch names
    /// nothing kept.
    pub(crate) fn epoch(self) -> u64 {
        self.epoch
    }
}

/// What makes an entry's bytes in a body: its key, its kind, and for a value its coding
/// (whose range names its bytes) and length.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EntrySig {
    key: Key,
    /// 0 spawn, 1 despawn, 2 set, 3 remove.
    kind: u8,
    age: u8,
    older_age: u8,
    lanes: bool,
    range: (usize, usize),
    len: usize,
}

impl EntrySig {
    fn of((key, entry, _): &(Key, Entry, u32)) -> Self {
        let mut sig = EntrySig {
            key: *key,
            kind: 0,
            age: 0,
            older_age: 0,
            lanes: false,
            range: (0, 0),
            len: 0,
        };
        match entry {
            Entry::Spawn => {}
            Entry::Despawn => sig.kind = 1,
            Entry::Remove => sig.kind = 3,
            Entry::Set(coded, len) => {
                sig.kind = 2;
                sig.age = coded.age;
                sig.older_age = coded.older_age;
                sig.lanes = coded.lanes;
                sig.range = (coded.range.start, coded.range.end);
                sig.len = *len;
            }
        }
        sig
    }
}

/// One body recorded this tick.
#[derive(Debug)]
struct Frame {
    tick: u64,
    owner_seq: u64,
    /// Its entries in [`SharedFrames::entries`], its bytes in [`SharedFrames::bodies`].
    entries: Range<usize>,
    body: Range<usize>,
    /// The next frame of the same hash.
    next: Option<u32>,
}

/// Counters of a [`SharedFrames`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SharedStats {
    /// Bodies encoded.
    pub encoded: u64,
    /// Bodies reused from another client's datagram of the tick.
    pub shared: u64,
}

/// The bodies encoded in one tick, by what they carry (see the module's text). Its
/// buffers are kept from one tick to the next.
#[derive(Debug, Default)]
pub(crate) struct SharedFrames {
    /// The coder generation the recorded entries' ranges belong to.
    generation: u64,
    epoch: u64,
    /// Per hash of a body's entries, tick and owner sequence, its first frame.
    by_hash: FxHashMap<u64, u32>,
    frames: Vec<Frame>,
    entries: Vec<EntrySig>,
    bodies: Vec<u8>,
    pub stats: SharedStats,
}

impl SharedFrames {
    /// The body of a datagram at `tick` (with `owner_seq`) carrying `entries` (sorted)
    /// coded by `coder`: one recorded this tick for equal entries, or else made by
    /// `encode` and recorded. Its id names it while the coder's generation lasts; `None`
    /// when it could not be recorded (the tick's bound was reached).
    pub(super) fn body<'s>(
        &'s mut self,
        coder: &ValueCoder,
        (tick, owner_seq): (u64, u64),
        entries: &[(Key, Entry, u32)],
        encode: impl FnOnce() -> &'s [u8],
    ) -> (&'s [u8], Option<FrameId>) {
        if coder.generation() != self.generation {
            // The coder's arena was emptied: its ranges name other bytes now.
            self.generation = coder.generation();
            self.epoch += 1;
            self.by_hash.clear();
            self.frames.clear();
            self.entries.clear();
            self.bodies.clear();
        }
        let mut hasher = FxHasher::default();
        (tick, owner_seq, entries.len()).hash(&mut hasher);
        for entry in entries {
            EntrySig::of(entry).hash(&mut hasher);
        }
        let hash = hasher.finish();
        let mut next = self.by_hash.get(&hash).copied();
        while let Some(index) = next {
            let frame = &self.frames[index as usize];
            let same = frame.tick == tick
                && frame.owner_seq == owner_seq
                && frame.entries.len() == entries.len()
                && self.entries[frame.entries.clone()]
                    .iter()
                    .zip(entries)
                    .all(|(sig, entry)| *sig == EntrySig::of(entry));
            if same {
                self.stats.shared += 1;
                let id = FrameId {
                    epoch: self.epoch,
                    index,
                };
                return (&self.bodies[frame.body.clone()], Some(id));
            }
            next = frame.next;
        }
        self.stats.encoded += 1;
        let bytes = encode();
        let Ok(index) = u32::try_from(self.frames.len()) else {
            return (bytes, None);
        };
        if self.bodies.len() + bytes.len() > BODY_BYTES_LIMIT {
            return (bytes, None);
        }
        let body = self.bodies.len()..self.bodies.len() + bytes.len();
        self.bodies.extend_from_slice(bytes);
        let first = self.entries.len();
        self.entries.extend(entries.iter().map(EntrySig::of));
        let previous = self.by_hash.insert(hash, index);
        self.frames.push(Frame {
            tick,
            owner_seq,
            entries: first..self.entries.len(),
            body: body.clone(),
            next: previous,
        });
        let id = FrameId {
            epoch: self.epoch,
            index,
        };
        (&self.bodies[body], Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::value_coding::Coded;
    use crate::registry::ComponentId;
    use crate::world::EntityId;

    fn set(entity: u64, range: Range<usize>, age: u8) -> (Key, Entry, u32) {
        let coded = Coded {
            age,
            older_age: 0,
            lanes: true,
            on_baselines: true,
            range,
        };
        // The place in the pending list differs between peers: it is no part of a body.
        (
            (ComponentId(5), EntityId(entity)),
            Entry::Set(coded, 28),
            entity as u32 * 3,
        )
    }

    #[test]
    fn equal_entries_share_one_body_until_the_coder_starts_again() {
        let mut coder = ValueCoder::default();
        coder.begin(7);
        let mut shared = SharedFrames::default();
        let entries = vec![set(1, 0..4, 1), set(2, 4..9, 1)];
        let mut encodes = 0;
        let mut body = |shared: &mut SharedFrames, entries: &[(Key, Entry, u32)], bytes: &[u8]| {
            let (body, id) = shared.body(&coder, (7, 0), entries, || {
                encodes += 1;
                bytes
            });
            (body.to_vec(), id)
        };
        let (first, id) = body(&mut shared, &entries, b"first");
        assert_eq!(first, b"first");
        // The same entries (at other places in another peer's pending list): the
        // recorded body and id, nothing encoded.
        let mut elsewhere = vec![set(1, 0..4, 1), set(2, 4..9, 1)];
        elsewhere.iter_mut().for_each(|entry| entry.2 = 99);
        let (again, same) = body(&mut shared, &elsewhere, b"never");
        assert_eq!((again.as_slice(), same), (&b"first"[..], id));
        // Another age (another baseline), another range, another key, an entry less:
        // each a body of its own.
        let others = [
            vec![set(1, 0..4, 2), set(2, 4..9, 1)],
            vec![set(1, 0..4, 1), set(2, 4..10, 1)],
            vec![set(1, 0..4, 1), set(3, 4..9, 1)],
            vec![set(1, 0..4, 1)],
            vec![
                set(1, 0..4, 1),
                ((ComponentId(5), EntityId(2)), Entry::Remove, 6),
            ],
        ];
        let mut ids = vec![id];
        for (i, other) in others.iter().enumerate() {
            let (bytes, id) = body(&mut shared, other, format!("other {i}").as_bytes());
            assert_eq!(bytes, format!("other {i}").into_bytes());
            assert!(!ids.contains(&id), "{i}");
            ids.push(id);
        }
        assert_eq!(encodes, 6);
        assert_eq!(
            shared.stats,
            SharedStats {
                encoded: 6,
                shared: 1
            }
        );
        // A new tick empties the coder's arena: its ranges name other bytes.
        coder.begin(8);
        let (bytes, new) = shared.body(&coder, (7, 0), &entries, || b"renewed");
        assert_eq!(bytes, b"renewed");
        assert!(new.is_some_and(|new| Some(new) != id && new.epoch() > id.unwrap().epoch()));
    }
}
