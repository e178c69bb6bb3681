//! State datagram envelopes shared within a tick: a body shared among clients (see
//! `outbox::shared_frames`) is compressed once per dictionary the clients hold, and the
//! clients that hold the same one (or none) share the envelope.

use std::ops::Range;

use rustc_hash::FxHashMap;

use crate::proto::outbox::FrameId;
use crate::wire::codec::{CodecChoice, FrameFormat};

/// An envelope kept: its bytes in [`SharedEnvelopes::bytes`], its format and whether it
/// was made with a dictionary (for the counters of each send).
#[derive(Clone, Debug)]
pub(super) struct Envelope {
    pub(super) bytes: Range<usize>,
    pub(super) format: FrameFormat,
    pub(super) dictionary: bool,
}

/// What makes an envelope's bytes: the body, the dictionary used (or none), the codec.
type EnvelopeKey = (FrameId, Option<u32>, CodecChoiceKey);

/// A [`CodecChoice`] as a map key.
type CodecChoiceKey = (u8, i32);

fn choice_key(choice: CodecChoice) -> CodecChoiceKey {
    match choice {
        CodecChoice::None => (0, 0),
        CodecChoice::Zstd { level } => (1, level),
        CodecChoice::ZstdDict { level } => (2, level),
    }
}

/// Bytes of envelopes kept per epoch of the frames: past them, envelopes are made per
/// client.
const ENVELOPE_BYTES_LIMIT: usize = 4 << 20;

/// The envelopes of the current epoch of shared frames; buffers kept across epochs.
#[derive(Debug, Default)]
pub(super) struct SharedEnvelopes {
    epoch: u64,
    envelopes: FxHashMap<EnvelopeKey, Envelope>,
    bytes: Vec<u8>,
    /// Envelopes reused rather than compressed again.
    pub(super) shared: u64,
}

impl SharedEnvelopes {
    /// The envelope kept for `frame` with `dictionary` and `choice`, and its bytes.
    pub(super) fn get(
        &mut self,
        frame: FrameId,
        dictionary: Option<u32>,
        choice: CodecChoice,
    ) -> Option<(&Envelope, &[u8])> {
        if frame.epoch() != self.epoch {
            return None;
        }
        let envelope = self
            .envelopes
            .get(&(frame, dictionary, choice_key(choice)))?;
        self.shared += 1;
        Some((envelope, &self.bytes[envelope.bytes.clone()]))
    }

    /// Keeps `envelope` (its bytes `bytes`) for `frame` with `dictionary` and `choice`;
    /// an envelope of a newer epoch of frames drops those of the older ones.
    pub(super) fn insert(
        &mut self,
        (frame, dictionary, choice): (FrameId, Option<u32>, CodecChoice),
        bytes: &[u8],
        (format, with_dictionary): (FrameFormat, bool),
    ) {
        if frame.epoch() != self.epoch {
            self.epoch = frame.epoch();
            self.envelopes.clear();
            self.bytes.clear();
        }
        if self.bytes.len() + bytes.len() > ENVELOPE_BYTES_LIMIT {
            return;
        }
        let at = self.bytes.len()..self.bytes.len() + bytes.len();
        self.bytes.extend_from_slice(bytes);
        self.envelopes.insert(
            (frame, dictionary, choice_key(choice)),
            Envelope {
                bytes: at,
                format,
                dictionary: with_dictionary,
            },
        );
    }
}
