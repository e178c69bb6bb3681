//! Compression of wire messages behind one [`Codec`] trait: none ([`NoCodec`]), zstd
//! ([`Zstd`]) and zstd with a dictionary trained from recorded frames ([`ZstdDict`]); and,
//! for the messages of one ordered connection (delta frames on the reliable stream), a
//! compression stream ([`StreamEncoder`] / [`StreamDecoder`]).
//!
//! Every message travels in a small envelope:
//!
//! | format byte | dictionary id (varint u32) | decompressed length (varint) | body |
//! |-------------|----------------------------|------------------------------|------|
//! | `0` raw     | —                          | —                            | the message as is |
//! | `1` zstd    | —                          | yes                          | a zstd frame |
//! | `2` dict    | yes                        | yes                          | a zstd frame made with that dictionary |
//! | `3` stream start | yes, `0` = none       | yes                          | the start of a zstd stream, up to the end of this message |
//! | `4` stream continuation | —              | yes                          | the stream's next bytes, up to the end of this message |
//!
//! An encoder sends a frame compressed only when that makes it smaller, so a raw frame costs
//! exactly one byte more than the message and a tiny datagram never grows by more. (Stream
//! frames are the exception, see below.)
//!
//! Decompression is always bounded by the maximum of the message's kind ([`MessageKind`]):
//! a frame declaring more is refused before anything is allocated, the output buffer is
//! never larger than the declared length, and a body that expands past it is an error. A
//! compressed frame also cannot declare more than its body could hold at zstd's densest
//! (one 4-byte RLE block per 128 KiB, [`max_output_of`]), so what a frame makes the
//! receiver allocate is bounded by its own length as well as by the kind's maximum. A
//! session narrows the kinds' maxima to what its protocol really sends
//! ([`CodecConfig::bounded_for`]). A truncated or garbage frame, or one naming a dictionary
//! the receiver does not hold, is an error too, never a panic.
//!
//! The compression streams of formats 3 and 4 are in [`stream`] (re-exported here); the
//! message kinds, their configuration and bounds, and the counters in [`kinds`].

use std::sync::{Mutex, MutexGuard, PoisonError};

use rustc_hash::FxHashMap;
use zstd::bulk::{Compressor, Decompressor};
use zstd::zstd_safe::CParameter;

pub mod kinds;
pub mod stream;

pub use kinds::{
    delta_frame_bound, snapshot_chunk_bound, CodecChoice, CodecConfig, CodecCounters, KindConfig,
    MessageKind,
};
pub use stream::{StreamDecoder, StreamEncoder, STREAM_WINDOW_LOG};

/// Largest state datagram accepted by default: the UDP payload of a 1500-byte Ethernet
/// MTU, above any QUIC path's datagram size (~1200–1400 bytes).
pub const MAX_DATAGRAM_BYTES: usize = 1472;

/// Fewest recorded frames [`train_dictionary`] accepts.
pub const MIN_TRAINING_SAMPLES: usize = 8;

/// Longest encoded varint of a `u64`.
const MAX_VARINT_LEN: usize = 10;

/// Largest output of one zstd block (RFC 8878 `Block_Maximum_Size`).
const ZSTD_BLOCK_MAX: usize = 128 << 10;
/// Fewest bytes of a zstd block that produces output: a 3-byte header and the one byte an
/// RLE block repeats.
const ZSTD_MIN_BLOCK: usize = 4;

/// Why a frame could not be compressed or decompressed, or a dictionary trained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame has no bytes at all.
    #[error("empty compressed frame")]
    Empty,
    /// The format byte names no known format.
    #[error("unknown compressed frame format {0:#04x}")]
    UnknownFormat(u8),
    /// The frame ends inside its header.
    #[error("compressed frame truncated in its header")]
    Truncated,
    /// A varint of the header is longer than its type allows.
    #[error("malformed varint in compressed frame header")]
    BadVarint,
    /// The frame declares (or a raw frame carries) more than the kind's maximum.
    #[error("frame declares {declared} bytes, above the maximum of {max}")]
    TooLarge {
        /// Length declared by the frame (the body length of a raw frame).
        declared: u64,
        /// Maximum decompressed size of the message kind.
        max: usize,
    },
    /// The body decompresses to more than the frame declared.
    #[error("frame body expands past its declared length of {declared} bytes")]
    ExpandsPast {
        /// Length declared by the frame.
        declared: usize,
    },
    /// The body decompresses to fewer bytes than the frame declared.
    #[error("frame declares {declared} bytes but its body decompresses to {actual}")]
    LengthMismatch {
        /// Length declared by the frame.
        declared: usize,
        /// Length actually produced.
        actual: usize,
    },
    /// The frame names a dictionary the receiver does not hold.
    #[error("frame names unknown dictionary {0}")]
    UnknownDictionary(u32),
    /// The receiver cannot decode this format (a [`NoCodec`] given a compressed frame).
    #[error("codec cannot decode compressed frame format {0:#04x}")]
    Unsupported(u8),
    /// A stream continuation arrived with no stream to continue: none was started, or the
    /// decoder failed since the last start (it is poisoned until the next one).
    #[error("stream continuation without a stream started (or after a decode error)")]
    NoStream,
    /// zstd refused the body (corrupt, truncated, or made with another dictionary).
    #[error("corrupt compressed body: {0}")]
    Corrupt(String),
    /// zstd failed to compress (or to create a context).
    #[error("zstd compression failed: {0}")]
    Compress(String),
    /// Too few recorded frames to train a dictionary.
    #[error("dictionary training needs at least {need} sample frames, got {got}")]
    TooFewSamples {
        /// Samples given.
        got: usize,
        /// Fewest accepted ([`MIN_TRAINING_SAMPLES`]).
        need: usize,
    },
    /// zstd could not train a dictionary from the samples.
    #[error("dictionary training failed: {0}")]
    Training(String),
}

/// How a frame's body is stored; the first byte of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameFormat {
    /// The message as is, after a single format byte.
    Raw = 0,
    /// A zstd frame without dictionary.
    Zstd = 1,
    /// A zstd frame compressed with the dictionary whose id the header carries.
    ZstdDict = 2,
    /// The start of a compression stream, with the dictionary whose id the header carries
    /// (0: none): resets the stream ([`StreamEncoder`], [`StreamDecoder`]).
    StreamStart = 3,
    /// The continuation of the compression stream started before.
    StreamContinue = 4,
}

impl FrameFormat {
    /// The format a byte names, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Raw),
            1 => Some(Self::Zstd),
            2 => Some(Self::ZstdDict),
            3 => Some(Self::StreamStart),
            4 => Some(Self::StreamContinue),
            _ => None,
        }
    }

    /// Whether this is a compression stream's frame (start or continuation).
    pub fn is_stream(self) -> bool {
        matches!(self, Self::StreamStart | Self::StreamContinue)
    }
}

/// A parsed frame envelope: its format, dictionary id, declared length and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader<'a> {
    /// How the body is stored.
    pub format: FrameFormat,
    /// Dictionary of a [`FrameFormat::ZstdDict`] frame, or of a [`FrameFormat::StreamStart`]
    /// that names one (not 0).
    pub dictionary: Option<u32>,
    /// Decompressed length (the body length of a raw frame).
    pub declared_len: u64,
    /// The bytes after the header.
    pub body: &'a [u8],
}

impl<'a> FrameHeader<'a> {
    /// Parses the envelope of `frame` without decompressing anything.
    pub fn parse(frame: &'a [u8]) -> Result<Self, CodecError> {
        let (&first, rest) = frame.split_first().ok_or(CodecError::Empty)?;
        let format = FrameFormat::from_byte(first).ok_or(CodecError::UnknownFormat(first))?;
        match format {
            FrameFormat::Raw => Ok(Self {
                format,
                dictionary: None,
                declared_len: rest.len() as u64,
                body: rest,
            }),
            FrameFormat::Zstd | FrameFormat::StreamContinue => {
                let (declared_len, body) = read_varint(rest)?;
                Ok(Self {
                    format,
                    dictionary: None,
                    declared_len,
                    body,
                })
            }
            FrameFormat::ZstdDict | FrameFormat::StreamStart => {
                let (id, rest) = read_varint(rest)?;
                let id = u32::try_from(id).map_err(|_| CodecError::BadVarint)?;
                let (declared_len, body) = read_varint(rest)?;
                Ok(Self {
                    format,
                    dictionary: (format == FrameFormat::ZstdDict || id != 0).then_some(id),
                    declared_len,
                    body,
                })
            }
        }
    }

    /// The declared length, checked against `max_len` and, for a compressed body, against
    /// the most its body could hold ([`max_output_of`]): only then may it be allocated.
    pub(super) fn bounded_len(&self, max_len: usize) -> Result<usize, CodecError> {
        let max = match self.format {
            FrameFormat::Raw => max_len,
            _ => max_len.min(max_output_of(self.body.len())),
        };
        usize::try_from(self.declared_len)
            .ok()
            .filter(|&len| len <= max)
            .ok_or(CodecError::TooLarge {
                declared: self.declared_len,
                max,
            })
    }
}

/// The most a zstd body of `body_len` bytes can decompress to: every block yields at most
/// 128 KiB and takes at least 4 bytes, plus one block whose start a stream frame's earlier
/// message may have carried. A frame declaring more is refused before it is decompressed
/// or anything is allocated for it; this is also the largest output per input byte any
/// compressed frame can reach (about 32 768 to 1, less the kind's bound).
pub const fn max_output_of(body_len: usize) -> usize {
    (body_len / ZSTD_MIN_BLOCK + 1).saturating_mul(ZSTD_BLOCK_MAX)
}

/// Appends `value` as an LEB128 varint.
pub fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an LEB128 varint from the front of `bytes`; returns it and the rest.
pub fn read_varint(bytes: &[u8]) -> Result<(u64, &[u8]), CodecError> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(MAX_VARINT_LEN) {
        let bits = u64::from(byte & 0x7f);
        if i == MAX_VARINT_LEN - 1 && bits > 1 {
            return Err(CodecError::BadVarint);
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    if bytes.len() >= MAX_VARINT_LEN {
        Err(CodecError::BadVarint)
    } else {
        Err(CodecError::Truncated)
    }
}

/// Compresses messages into frames and decompresses frames back, bounded.
pub trait Codec {
    /// Appends the frame of `input` to `out` and returns the format chosen: compressed
    /// only when that is smaller than the raw frame (`input` plus one byte).
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<FrameFormat, CodecError>;

    /// Decompresses `frame` into a message of at most `max_len` bytes.
    fn decompress(&self, frame: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError>;
}

/// Appends the raw frame of `input`.
pub(super) fn write_raw(input: &[u8], out: &mut Vec<u8>) -> FrameFormat {
    out.reserve(input.len() + 1);
    out.push(FrameFormat::Raw as u8);
    out.extend_from_slice(input);
    FrameFormat::Raw
}

/// The body of a raw frame, checked against `max_len`.
pub(super) fn raw_body(header: &FrameHeader<'_>, max_len: usize) -> Result<Vec<u8>, CodecError> {
    header.bounded_len(max_len)?;
    Ok(header.body.to_vec())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A context is reset by every call, so one left by a panicking thread is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn compress_error(e: std::io::Error) -> CodecError {
    CodecError::Compress(e.to_string())
}

/// A compression context that leaves out of its frames what the envelope already carries.
fn compressor(level: i32, dictionary: Option<&[u8]>) -> Result<Compressor<'static>, CodecError> {
    let mut c = match dictionary {
        Some(dict) => Compressor::with_dictionary(level, dict),
        None => Compressor::new(level),
    }
    .map_err(compress_error)?;
    for p in [
        CParameter::ContentSizeFlag(false),
        CParameter::ChecksumFlag(false),
        CParameter::DictIdFlag(false),
    ] {
        c.set_parameter(p).map_err(compress_error)?;
    }
    Ok(c)
}

/// Compresses `input` with `ctx` and appends the smaller of the compressed and raw frames.
fn compress_with(
    ctx: &mut Compressor<'static>,
    dictionary: Option<u32>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<FrameFormat, CodecError> {
    if input.is_empty() {
        return Ok(write_raw(input, out));
    }
    let start = out.len();
    let format = match dictionary {
        Some(id) => {
            out.push(FrameFormat::ZstdDict as u8);
            write_varint(out, u64::from(id));
            FrameFormat::ZstdDict
        }
        None => {
            out.push(FrameFormat::Zstd as u8);
            FrameFormat::Zstd
        }
    };
    write_varint(out, input.len() as u64);
    let header = out.len() - start;
    // Only a body that beats the raw frame is worth keeping: give zstd that much room,
    // and fall back to raw when it does not fit. The room is `out`'s own, after the
    // header: no buffer of its own per frame.
    let room = (input.len() + 1).saturating_sub(header + 1);
    let body_start = out.len();
    out.resize(body_start + room, 0);
    let body = match room {
        0 => None,
        _ => ctx.compress_to_buffer(input, &mut out[body_start..]).ok(),
    };
    if let Some(body) = body.filter(|&len| header + len < input.len() + 1) {
        out.truncate(body_start + body);
        Ok(format)
    } else {
        out.truncate(start);
        Ok(write_raw(input, out))
    }
}

/// Decompresses the body of a compressed frame into at most its declared length.
fn decompress_body(
    ctx: &mut Decompressor<'static>,
    header: &FrameHeader<'_>,
    max_len: usize,
) -> Result<Vec<u8>, CodecError> {
    let declared = header.bounded_len(max_len)?;
    // Never more than the declared length, itself within the kind's bound.
    let mut out = Vec::with_capacity(declared);
    match ctx.decompress_to_buffer(header.body, &mut out) {
        Ok(actual) if actual == declared => Ok(out),
        Ok(actual) => Err(CodecError::LengthMismatch { declared, actual }),
        Err(e) if e.to_string().contains("too small") => Err(CodecError::ExpandsPast { declared }),
        Err(e) => Err(CodecError::Corrupt(e.to_string())),
    }
}

/// No compression: every frame is raw. Decodes raw frames only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCodec;

impl Codec for NoCodec {
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<FrameFormat, CodecError> {
        Ok(write_raw(input, out))
    }

    fn decompress(&self, frame: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let header = FrameHeader::parse(frame)?;
        match header.format {
            FrameFormat::Raw => raw_body(&header, max_len),
            other => Err(CodecError::Unsupported(other as u8)),
        }
    }
}

/// zstd without dictionary, at one level; its contexts are kept and reused.
pub struct Zstd {
    level: i32,
    cctx: Mutex<Compressor<'static>>,
    dctx: Mutex<Decompressor<'static>>,
}

impl std::fmt::Debug for Zstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zstd").field("level", &self.level).finish()
    }
}

impl Zstd {
    /// A zstd codec compressing at `level` (1 is fastest; 3 is zstd's default).
    pub fn new(level: i32) -> Result<Self, CodecError> {
        Ok(Self {
            level,
            cctx: Mutex::new(compressor(level, None)?),
            dctx: Mutex::new(Decompressor::new().map_err(compress_error)?),
        })
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }
}

impl Codec for Zstd {
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<FrameFormat, CodecError> {
        compress_with(&mut lock(&self.cctx), None, input, out)
    }

    /// Decodes raw and zstd frames; a dictionary frame names a dictionary it lacks.
    fn decompress(&self, frame: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let header = FrameHeader::parse(frame)?;
        match header.format {
            FrameFormat::Raw => raw_body(&header, max_len),
            FrameFormat::Zstd => decompress_body(&mut lock(&self.dctx), &header, max_len),
            FrameFormat::ZstdDict => Err(CodecError::UnknownDictionary(
                header.dictionary.unwrap_or_default(),
            )),
            stream => Err(CodecError::Unsupported(stream as u8)),
        }
    }
}

/// A zstd dictionary and the id frames made with it carry.
#[derive(Clone, PartialEq, Eq)]
pub struct Dictionary {
    /// Id carried in every frame compressed with this dictionary.
    pub id: u32,
    /// The dictionary as zstd trained it.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Dictionary {
    /// A dictionary with the given id.
    pub fn new(id: u32, bytes: Vec<u8>) -> Self {
        Self { id, bytes }
    }
}

/// Trains a dictionary of at most `max_size` bytes from recorded frames, given `id`.
///
/// Refuses fewer than [`MIN_TRAINING_SAMPLES`] samples; zstd may also refuse samples too
/// small or too uniform to learn from.
pub fn train_dictionary(
    samples: &[&[u8]],
    max_size: usize,
    id: u32,
) -> Result<Dictionary, CodecError> {
    if samples.len() < MIN_TRAINING_SAMPLES {
        return Err(CodecError::TooFewSamples {
            got: samples.len(),
            need: MIN_TRAINING_SAMPLES,
        });
    }
    let bytes = zstd::dict::from_samples(samples, max_size)
        .map_err(|e| CodecError::Training(e.to_string()))?;
    Ok(Dictionary { id, bytes })
}

/// zstd with one dictionary: compresses with it, decodes its frames (and raw and plain
/// zstd ones). Its contexts, with the dictionary loaded, are kept and reused.
pub struct ZstdDict {
    level: i32,
    id: u32,
    cctx: Mutex<Compressor<'static>>,
    dctx: Mutex<Decompressor<'static>>,
    plain: Mutex<Decompressor<'static>>,
}

impl std::fmt::Debug for ZstdDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdDict")
            .field("level", &self.level)
            .field("dictionary", &self.id)
            .finish()
    }
}

impl ZstdDict {
    /// A codec compressing at `level` with `dictionary`.
    pub fn new(level: i32, dictionary: &Dictionary) -> Result<Self, CodecError> {
        Ok(Self {
            level,
            id: dictionary.id,
            cctx: Mutex::new(compressor(level, Some(&dictionary.bytes))?),
            dctx: Mutex::new(
                Decompressor::with_dictionary(&dictionary.bytes).map_err(compress_error)?,
            ),
            plain: Mutex::new(Decompressor::new().map_err(compress_error)?),
        })
    }

    /// Id of the dictionary.
    pub fn dictionary_id(&self) -> u32 {
        self.id
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }
}

impl Codec for ZstdDict {
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<FrameFormat, CodecError> {
        compress_with(&mut lock(&self.cctx), Some(self.id), input, out)
    }

    fn decompress(&self, frame: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let header = FrameHeader::parse(frame)?;
        match header.format {
            FrameFormat::Raw => raw_body(&header, max_len),
            FrameFormat::Zstd => decompress_body(&mut lock(&self.plain), &header, max_len),
            FrameFormat::ZstdDict => match header.dictionary {
                Some(id) if id == self.id => {
                    decompress_body(&mut lock(&self.dctx), &header, max_len)
                }
                other => Err(CodecError::UnknownDictionary(other.unwrap_or_default())),
            },
            stream => Err(CodecError::Unsupported(stream as u8)),
        }
    }
}

/// The receiving side's dictionaries by id, with a decompression context for each.
#[derive(Default)]
pub struct DictionarySet {
    dictionaries: FxHashMap<u32, (Dictionary, Mutex<Decompressor<'static>>)>,
    plain: Mutex<Option<Decompressor<'static>>>,
}

impl std::fmt::Debug for DictionarySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<u32> = self.dictionaries.keys().copied().collect();
        ids.sort_unstable();
        f.debug_struct("DictionarySet").field("ids", &ids).finish()
    }
}

impl DictionarySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a dictionary; returns the one it replaced.
    pub fn insert(&mut self, dictionary: Dictionary) -> Result<Option<Dictionary>, CodecError> {
        let ctx = Decompressor::with_dictionary(&dictionary.bytes).map_err(compress_error)?;
        Ok(self
            .dictionaries
            .insert(dictionary.id, (dictionary, Mutex::new(ctx)))
            .map(|(old, _)| old))
    }

    /// Removes (retires) a dictionary.
    pub fn remove(&mut self, id: u32) -> Option<Dictionary> {
        self.dictionaries.remove(&id).map(|(d, _)| d)
    }

    /// The dictionary with this id.
    pub fn get(&self, id: u32) -> Option<&Dictionary> {
        self.dictionaries.get(&id).map(|(d, _)| d)
    }

    /// Number of dictionaries held.
    pub fn len(&self) -> usize {
        self.dictionaries.len()
    }

    /// Whether no dictionary is held.
    pub fn is_empty(&self) -> bool {
        self.dictionaries.is_empty()
    }
}

impl Codec for DictionarySet {
    /// A set only decodes: its frames are all raw.
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<FrameFormat, CodecError> {
        Ok(write_raw(input, out))
    }

    /// Decodes a frame of any format, with the dictionary it names.
    fn decompress(&self, frame: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let header = FrameHeader::parse(frame)?;
        match header.format {
            FrameFormat::Raw => raw_body(&header, max_len),
            FrameFormat::Zstd => {
                // Refuse an oversized declaration before creating a context for it.
                header.bounded_len(max_len)?;
                let mut plain = lock(&self.plain);
                let ctx = match plain.as_mut() {
                    Some(ctx) => ctx,
                    None => plain.insert(Decompressor::new().map_err(compress_error)?),
                };
                decompress_body(ctx, &header, max_len)
            }
            FrameFormat::ZstdDict => {
                let id = header.dictionary.unwrap_or_default();
                let (_, ctx) = self
                    .dictionaries
                    .get(&id)
                    .ok_or(CodecError::UnknownDictionary(id))?;
                decompress_body(&mut lock(ctx), &header, max_len)
            }
            // Stream frames need the connection's `StreamDecoder`.
            stream => Err(CodecError::Unsupported(stream as u8)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample(i: usize) -> Vec<u8> {
        format!(
            "{{\"entity\":{i},\"pos\":[{i}.5,2.25,-3.0],\"name\":\"cube-{}\"}}",
            i % 7
        )
        .repeat(3)
        .into_bytes()
    }

    pub(super) fn dictionary(id: u32) -> Dictionary {
        let samples: Vec<Vec<u8>> = (0..64).map(sample).collect();
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        train_dictionary(&refs, 4096, id).unwrap()
    }

    pub(super) fn set_of(dictionaries: &[&Dictionary]) -> DictionarySet {
        let mut set = DictionarySet::new();
        for d in dictionaries {
            set.insert((*d).clone()).unwrap();
        }
        set
    }

    /// xorshift64*, for random frames.
    pub(super) fn random_bytes(state: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *state ^= *state >> 12;
                *state ^= *state << 25;
                *state ^= *state >> 27;
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn varint_round_trip_and_limits() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(read_varint(&out).unwrap(), (v, &[][..]));
            assert_eq!(
                read_varint(&out[..out.len() - 1]),
                Err(CodecError::Truncated)
            );
        }
        assert_eq!(read_varint(&[0xff; 11]), Err(CodecError::BadVarint));
        assert_eq!(
            read_varint(&[0xff; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>()),
            Err(CodecError::BadVarint)
        );
    }

    #[test]
    fn raw_when_compression_does_not_help() {
        let zstd = Zstd::new(3).unwrap();
        for len in 0..64 {
            let input: Vec<u8> = (0..len).map(|i| (i * 97 + 13) as u8).collect();
            let mut out = Vec::new();
            let format = zstd.compress(&input, &mut out).unwrap();
            assert!(out.len() <= input.len() + 1);
            if format == FrameFormat::Raw {
                assert_eq!(out.len(), input.len() + 1);
            }
            assert_eq!(zstd.decompress(&out, 64).unwrap(), input);
        }
    }

    #[test]
    fn each_codec_round_trips_and_compresses() {
        let samples: Vec<Vec<u8>> = (0..64).map(sample).collect();
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        let dict = train_dictionary(&refs, 4096, 7).unwrap();
        let codecs: Vec<Box<dyn Codec>> = vec![
            Box::new(NoCodec),
            Box::new(Zstd::new(1).unwrap()),
            Box::new(ZstdDict::new(1, &dict).unwrap()),
        ];
        let input = sample(1000).repeat(4);
        for codec in &codecs {
            let mut out = Vec::new();
            codec.compress(&input, &mut out).unwrap();
            assert_eq!(codec.decompress(&out, input.len()).unwrap(), input);
            assert!(matches!(
                codec.decompress(&out, input.len() - 1),
                Err(CodecError::TooLarge { .. })
            ));
        }
    }

    #[test]
    fn header_errors() {
        assert_eq!(FrameHeader::parse(&[]), Err(CodecError::Empty));
        assert_eq!(
            FrameHeader::parse(&[9, 1, 2]),
            Err(CodecError::UnknownFormat(9))
        );
        assert_eq!(FrameHeader::parse(&[1]), Err(CodecError::Truncated));
        assert_eq!(FrameHeader::parse(&[2, 0x80]), Err(CodecError::Truncated));
        // A dictionary id above u32.
        assert_eq!(
            FrameHeader::parse(&[2, 0xff, 0xff, 0xff, 0xff, 0x7f, 1]),
            Err(CodecError::BadVarint)
        );
    }

    #[test]
    fn too_few_samples() {
        let s: &[u8] = b"abc";
        assert_eq!(
            train_dictionary(&[s; 3], 1024, 1),
            Err(CodecError::TooFewSamples {
                got: 3,
                need: MIN_TRAINING_SAMPLES
            })
        );
    }
}
