//! Target `control_message`: the messages of a client's reliable stream after admission,
//! in order, as the session reads them: a [`StreamKind`] byte, then a codec envelope.
//! Control messages (raw envelopes: dictionaries, their retirement, write rejections, peer
//! notices, dictionary acknowledgements on the host) are decoded and acted on; snapshot
//! chunks and delta frames are decoded with the dictionaries received so far (delta frames'
//! stream frames with the link's `StreamDecoder`) and applied to the replica.
//!
//! The session's own bookkeeping (`net::compression::Compression`) is crate-private, so
//! its few steps are mirrored here through the public types they use (`DictionarySet`,
//! `StreamDecoder`, `NoCodec`): a dictionary is refused when its id is 0, it is empty or
//! larger than [`MAX_DICTIONARY_BYTES`], or of an unknown kind; a kind keeps at most
//! [`MAX_DICTIONARIES_PER_KIND`], the oldest dropped.
//!
//! Header bits 0..=2 choose the replica's state (see [`fixture::replica`]); bit 3 makes
//! the client hold the fixture dictionary (id 1) for every kind already.

use std::collections::BTreeSet;

use theta_net::net::compression::{
    split_stream_message, StreamKind, MAX_DICTIONARIES_PER_KIND, MAX_DICTIONARY_BYTES,
};
use theta_net::wire::codec::{
    Codec, Dictionary, DictionarySet, FrameFormat, MessageKind, NoCodec, StreamDecoder,
};
use theta_net::wire::{self, fb, Message};

use super::replica::{apply_checked, check_envelope};
use super::{fixture, input, Outcome};

/// Header bit: the client holds the fixture dictionary for every kind.
pub const HOLDS_DICTIONARY: u8 = 8;
/// Largest control message: a dictionary and its table (as the session bounds it).
pub const MAX_CONTROL_BYTES: usize = MAX_DICTIONARY_BYTES + 4096;

/// The dictionaries of one message kind a client holds.
#[derive(Default)]
struct Held {
    set: DictionarySet,
    ids: BTreeSet<u32>,
}

impl Held {
    fn insert(&mut self, dictionary: Dictionary) -> bool {
        if self.ids.contains(&dictionary.id) {
            return true;
        }
        while self.ids.len() >= MAX_DICTIONARIES_PER_KIND {
            let Some(oldest) = self.ids.pop_first() else {
                break;
            };
            self.set.remove(oldest);
        }
        let id = dictionary.id;
        let inserted = self.set.insert(dictionary).is_ok();
        if inserted {
            self.ids.insert(id);
        }
        inserted
    }

    fn remove(&mut self, id: u32) {
        self.set.remove(id);
        self.ids.remove(&id);
    }

    fn check(&self) {
        assert!(
            self.ids.len() <= MAX_DICTIONARIES_PER_KIND,
            "too many dictionaries"
        );
        assert_eq!(self.set.len(), self.ids.len());
        for &id in &self.ids {
            let held = self.set.get(id).expect("held");
            assert!(held.id != 0 && !held.bytes.is_empty());
            assert!(held.bytes.len() <= MAX_DICTIONARY_BYTES);
        }
    }
}

/// What a client does with a dictionary from the host; returns the bytes kept.
fn accept_dictionary(kinds: &mut [Held; 3], dictionary: fb::Dictionary<'_>) -> Option<usize> {
    let kind = match dictionary.kind() {
        fb::CodecKind::SnapshotChunk => MessageKind::SnapshotChunk,
        fb::CodecKind::DeltaFrame => MessageKind::DeltaFrame,
        fb::CodecKind::Datagram => MessageKind::Datagram,
        _ => return None,
    };
    let bytes = dictionary.bytes().bytes();
    if dictionary.id() == 0 || bytes.is_empty() || bytes.len() > MAX_DICTIONARY_BYTES {
        return None;
    }
    let held = &mut kinds[kind.index()];
    held.insert(Dictionary::new(dictionary.id(), bytes.to_vec()))
        .then_some(bytes.len())
}

/// Stream messages after admission, in order, through a client (see the module docs).
pub fn control_message(data: &[u8]) -> Outcome {
    let (header, records) = input::split(data);
    let mut replica = fixture::replica(header);
    let mut kinds: [Held; 3] = Default::default();
    if header & HOLDS_DICTIONARY != 0 {
        for held in &mut kinds {
            assert!(held.insert(fixture::dictionary()));
        }
    }
    let mut stream: Option<StreamDecoder> = None;
    let mut outcome = Outcome::default();
    for bytes in records {
        let output = match split_stream_message(bytes) {
            Some((StreamKind::Control, frame)) => control(frame, &mut kinds),
            Some((kind, frame)) => {
                let kind = kind.message_kind().unwrap_or(MessageKind::DeltaFrame);
                let max_len = kind.max_len();
                let set = &kinds[kind.index()].set;
                let is_stream = frame
                    .first()
                    .copied()
                    .and_then(FrameFormat::from_byte)
                    .is_some_and(FrameFormat::is_stream);
                let decoded = if kind == MessageKind::DeltaFrame && is_stream {
                    let decoder = match &mut stream {
                        Some(decoder) => decoder,
                        None => stream.insert(StreamDecoder::new().expect("zstd context")),
                    };
                    decoder.decompress(frame, max_len, set)
                } else {
                    set.decompress(frame, max_len)
                };
                decoded.ok().map(|message| {
                    check_envelope(frame, &message, max_len);
                    let events = apply_checked(&mut replica, |r| r.apply(&message));
                    message.len() + events.unwrap_or(0)
                })
            }
            None => None,
        };
        for held in &kinds {
            held.check();
        }
        match output {
            Some(output) => outcome.accept(bytes.len(), output),
            None => outcome.refuse(),
        }
    }
    outcome
}

/// One control message's envelope and message; returns the bytes it made the client keep
/// or pass on, `None` when refused.
fn control(frame: &[u8], kinds: &mut [Held; 3]) -> Option<usize> {
    let message = NoCodec.decompress(frame, MAX_CONTROL_BYTES).ok()?;
    check_envelope(frame, &message, MAX_CONTROL_BYTES);
    let kept = match wire::decode(&message).ok()? {
        Message::WriteRejected(rejected) => {
            let reason = rejected.reason().unwrap_or("refused").to_owned();
            let _ = (rejected.entity(), rejected.component());
            reason.len()
        }
        Message::Dictionary(dictionary) => accept_dictionary(kinds, dictionary)?,
        Message::PeerJoined(joined) => {
            let _ = joined.peer();
            0
        }
        Message::PeerLeft(left) => {
            let _ = left.peer();
            left.reason().unwrap_or("left").to_owned().len()
        }
        Message::DictionaryRetire(retire) => {
            for id in retire.ids().iter() {
                for held in kinds.iter_mut() {
                    held.remove(id);
                }
            }
            0
        }
        // The host's side of the same stream.
        Message::DictionaryAck(ack) => {
            let _ = ack.id();
            0
        }
        _ => return None,
    };
    Some(message.len() + kept)
}
