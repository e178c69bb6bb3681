//! Targets `codec_frame` and `codec_stream`: the compression envelope
//! (`theta_net::wire::codec`) of every message on the wire.
//!
//! `codec_frame` decodes each record as an independent frame with one of the per-frame
//! codecs; `codec_stream` feeds the records, in order, to one `StreamDecoder` (the delta
//! frames of a connection), optionally after a valid start frame, and applies what it
//! decodes to a replica as the session does.

use std::sync::OnceLock;

use theta_net::wire::codec::{
    Codec, CodecError, DictionarySet, FrameFormat, FrameHeader, NoCodec, StreamDecoder, Zstd,
    ZstdDict, MAX_DATAGRAM_BYTES,
};
use theta_net::wire::MAX_MESSAGE_BYTES;

use super::replica::{apply_checked, check_envelope};
use super::{fixture, input, Outcome};

/// The decompression bounds a header's bits 2..=3 choose from: a datagram's, a stream
/// message's, and two small ones that make the bound itself the limit.
pub const BOUNDS: [usize; 4] = [MAX_DATAGRAM_BYTES, MAX_MESSAGE_BYTES, 4096, 16];

fn bound(header: u8) -> usize {
    BOUNDS[usize::from((header >> 2) & 3)]
}

/// `codec_frame` header bits 0..=1: the codec that decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameCodec {
    /// `NoCodec`: raw frames only.
    None = 0,
    /// `Zstd` at [`fixture::LEVEL`].
    Zstd = 1,
    /// `ZstdDict` with the fixture dictionary.
    ZstdDict = 2,
    /// A `DictionarySet` holding the fixture dictionary (what a receiver uses).
    Set = 3,
}

impl FrameCodec {
    /// The codec a header names.
    pub fn of(header: u8) -> FrameCodec {
        match header & 3 {
            0 => FrameCodec::None,
            1 => FrameCodec::Zstd,
            2 => FrameCodec::ZstdDict,
            _ => FrameCodec::Set,
        }
    }

    /// The codec, built once.
    pub fn codec(self) -> &'static (dyn Codec + Sync) {
        static ZSTD: OnceLock<Zstd> = OnceLock::new();
        static DICT: OnceLock<ZstdDict> = OnceLock::new();
        match self {
            FrameCodec::None => &NoCodec,
            FrameCodec::Zstd => ZSTD.get_or_init(|| Zstd::new(fixture::LEVEL).expect("zstd")),
            FrameCodec::ZstdDict => DICT.get_or_init(|| {
                ZstdDict::new(fixture::LEVEL, &fixture::dictionary()).expect("zstd")
            }),
            FrameCodec::Set => fixture::dictionary_set(),
        }
    }
}

/// Independent frames, each decoded with the header's codec and bound. A decoded frame
/// must match its envelope (declared length, raw body), and compressing what it decoded
/// with the same codec must give a frame no larger than raw that decodes back to it.
pub fn codec_frame(data: &[u8]) -> Outcome {
    let (header, records) = input::split(data);
    let codec = FrameCodec::of(header).codec();
    let max_len = bound(header);
    let mut outcome = Outcome::default();
    for frame in records {
        let Ok(message) = codec.decompress(frame, max_len) else {
            outcome.refuse();
            continue;
        };
        check_envelope(frame, &message, max_len);
        let mut again = Vec::new();
        codec
            .compress(&message, &mut again)
            .expect("what decoded compresses");
        assert!(
            again.len() <= message.len() + 1,
            "compressed larger than raw"
        );
        assert_eq!(
            codec.decompress(&again, max_len).as_deref(),
            Ok(&message[..]),
            "a codec's own frame did not decode back"
        );
        outcome.accept(frame.len(), message.len());
    }
    outcome
}

/// `codec_stream` header bit: the decoder first decodes the fixture's start frame.
pub const PRIME: u8 = 1;
/// `codec_stream` header bit: the receiver holds the fixture dictionary (and the prime
/// uses it).
pub const DICTIONARY: u8 = 2;
/// `codec_stream` header bit: decoded messages go to a primed replica, as delta frames on
/// the stream do in a session.
pub const APPLY: u8 = 16;

/// Stream frames in order through one `StreamDecoder`. Checks, per frame, what the decoder
/// documents: a decoded frame matches its envelope and leaves a stream in progress (with
/// the start's dictionary); a raw frame or a per-frame format leaves the stream as it was;
/// any other failure poisons it, so that a continuation is refused with `NoStream` until
/// the next start.
pub fn codec_stream(data: &[u8]) -> Outcome {
    let (header, records) = input::split(data);
    let empty = DictionarySet::new();
    let with_dictionary = header & DICTIONARY != 0;
    let dictionaries = if with_dictionary {
        fixture::dictionary_set()
    } else {
        &empty
    };
    let max_len = bound(header);
    let mut decoder = StreamDecoder::new().expect("zstd context");
    let mut replica =
        (header & APPLY != 0).then(|| fixture::replica(fixture::KNOWS_REGISTRY | fixture::PRIMED));
    let prime = (header & PRIME != 0).then(|| fixture::stream_prime_frame(with_dictionary));
    let mut outcome = Outcome::default();
    for (i, frame) in prime.into_iter().chain(records).enumerate() {
        let format = frame.first().copied().and_then(FrameFormat::from_byte);
        let parsed = FrameHeader::parse(frame);
        let (had, had_dictionary) = (decoder.has_stream(), decoder.dictionary());
        let result = decoder.decompress(frame, max_len, dictionaries);
        if format == Some(FrameFormat::StreamContinue) && !had && parsed.is_ok() {
            assert_eq!(result, Err(CodecError::NoStream), "continued no stream");
        }
        let message = match result {
            Ok(message) => message,
            Err(_) => {
                let kept = matches!(
                    format,
                    Some(FrameFormat::Raw | FrameFormat::Zstd | FrameFormat::ZstdDict)
                );
                if kept {
                    assert_eq!(
                        (decoder.has_stream(), decoder.dictionary()),
                        (had, had_dictionary),
                        "a frame outside the stream changed it"
                    );
                } else {
                    assert!(
                        !decoder.has_stream(),
                        "a failed stream frame left it usable"
                    );
                }
                let fits = fixture::stream_prime_message().len() <= max_len;
                assert!(
                    i > 0 || prime.is_none() || !fits,
                    "the fixture's start failed"
                );
                outcome.refuse();
                continue;
            }
        };
        check_envelope(frame, &message, max_len);
        match format {
            Some(FrameFormat::StreamStart) => {
                let named = parsed.ok().and_then(|h| h.dictionary);
                assert!(decoder.has_stream());
                assert_eq!(
                    decoder.dictionary(),
                    named,
                    "a start took another dictionary"
                );
            }
            Some(FrameFormat::StreamContinue) => {
                assert!(decoder.has_stream());
                assert_eq!(decoder.dictionary(), had_dictionary);
            }
            _ => assert_eq!(decoder.has_stream(), had, "a raw frame changed the stream"),
        }
        let mut output = message.len();
        if let Some(replica) = replica.as_mut() {
            // A refused message is only counted by the session; the stream goes on.
            output += apply_checked(replica, |r| r.apply(&message)).unwrap_or(0);
        }
        outcome.accept(frame.len(), output);
    }
    outcome
}
