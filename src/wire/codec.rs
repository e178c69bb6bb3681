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
//! # Compression streams (formats 3 and 4)
//! The messages one side sends the other on an ordered, reliable connection can share one
//! zstd stream: a single zstd frame of window [`STREAM_WINDOW_LOG`] (128 KiB), the
//! dictionary (if any) loaded at its start, flushed at the end of every message, so each
//! message is coded against the dictionary *and* the messages before it. [`StreamEncoder`]
//! starts a stream (format 3, naming its dictionary) when it has none or its dictionary
//! changes, and continues it (format 4) otherwise. [`StreamDecoder`] must see every stream
//! frame, in order: a start resets it and loads the dictionary it holds under that id.
//!
//! Every message the encoder takes goes into its stream, so it is always sent as a stream
//! frame, even when that is a few bytes larger than raw (a zstd block header and the
//! envelope's length; a raw block when nothing compresses): a raw frame would leave the
//! decoder's history behind the encoder's. Restarting the stream after a raw frame instead
//! was tried: a message incompressible alone but close to the one before it then never
//! benefits (each start loses the history), so delta frames of such values went raw
//! forever. The "never grows" rule binds datagrams (per-frame codecs, above); a stream
//! frame is at most 8 bytes over raw, on messages of hundreds of bytes or more. Only an empty message is sent raw, without
//! touching the stream; a raw frame leaves a [`StreamDecoder`] as it was. When the encoder
//! fails, it drops its stream (its next frame is a start) and the caller sends that message
//! raw.
//!
//! A decoder that fails on a frame (bound, truncation, garbage, unknown dictionary, length
//! mismatch, a continuation without a start) is *poisoned*: its history no longer matches
//! the encoder's, so every continuation is refused ([`CodecError::NoStream`]) until the
//! next stream start.

use std::sync::{Mutex, MutexGuard, PoisonError};

use rustc_hash::FxHashMap;
use zstd::bulk::{Compressor, Decompressor};
use zstd::zstd_safe::{
    self, CCtx, CParameter, DCtx, DParameter, InBuffer, OutBuffer, ResetDirective,
};

use super::{size, MAX_MESSAGE_BYTES};
use crate::registry::{Registry, MAX_NAME_BYTES};

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

/// First allocation of a stream frame's output; it doubles as the body fills it.
const STREAM_OUTPUT_STEP: usize = 16 << 10;

/// Window of a compression stream (log2: 128 KiB). The encoder uses it, and the decoder
/// refuses a stream asking for more, so a peer cannot make it allocate a larger window.
pub const STREAM_WINDOW_LOG: u32 = 17;

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
    fn bounded_len(&self, max_len: usize) -> Result<usize, CodecError> {
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
fn write_raw(input: &[u8], out: &mut Vec<u8>) -> FrameFormat {
    out.reserve(input.len() + 1);
    out.push(FrameFormat::Raw as u8);
    out.extend_from_slice(input);
    FrameFormat::Raw
}

/// The body of a raw frame, checked against `max_len`.
fn raw_body(header: &FrameHeader<'_>, max_len: usize) -> Result<Vec<u8>, CodecError> {
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
    // and fall back to raw when it does not fit.
    let room = (input.len() + 1).saturating_sub(header + 1);
    let mut body = Vec::with_capacity(room);
    let compressed = room > 0 && ctx.compress_to_buffer(input, &mut body).is_ok();
    if compressed && header + body.len() < input.len() + 1 {
        out.extend_from_slice(&body);
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

fn zstd_error(code: usize) -> String {
    zstd_safe::get_error_name(code).to_owned()
}

/// The encoding half of a compression stream (formats 3 and 4, see the module
/// documentation): one zstd frame over every message of one connection and direction, at
/// one level, window [`STREAM_WINDOW_LOG`], the dictionary (if any) loaded at its start,
/// flushed at the end of every message.
///
/// Its frames must reach one [`StreamDecoder`] in order, every one of them (an ordered,
/// reliable stream). A new connection needs a new stream: make a new encoder, or
/// [`StreamEncoder::reset`] it.
pub struct StreamEncoder {
    level: i32,
    cctx: CCtx<'static>,
    /// The stream in progress: the id of its dictionary (0: none). `None`: no stream.
    stream: Option<u32>,
}

impl std::fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncoder")
            .field("level", &self.level)
            .field("stream", &self.stream)
            .finish()
    }
}

impl StreamEncoder {
    /// An encoder compressing at `level`, with no stream yet.
    pub fn new(level: i32) -> Result<Self, CodecError> {
        let mut cctx =
            CCtx::try_create().ok_or_else(|| CodecError::Compress("out of memory".into()))?;
        for p in [
            CParameter::CompressionLevel(level),
            CParameter::WindowLog(STREAM_WINDOW_LOG),
            CParameter::ContentSizeFlag(false),
            CParameter::ChecksumFlag(false),
            CParameter::DictIdFlag(false),
        ] {
            cctx.set_parameter(p)
                .map_err(|e| CodecError::Compress(zstd_error(e)))?;
        }
        Ok(Self {
            level,
            cctx,
            stream: None,
        })
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Whether a stream is in progress (the next frame continues it, unless the dictionary
    /// changes).
    pub fn has_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// The dictionary of the stream in progress, if it has one.
    pub fn dictionary(&self) -> Option<u32> {
        self.stream.filter(|&id| id != 0)
    }

    /// Drops the stream in progress: the next frame starts a new one.
    pub fn reset(&mut self) {
        self.stream = None;
    }

    /// Appends the frame of `input` to `out`, coded in the stream: a stream start with
    /// `dictionary` (`None`: without) when there is no stream or it was started with
    /// another dictionary, a continuation otherwise. An empty `input` is a raw frame and
    /// leaves the stream alone.
    ///
    /// On an error nothing is appended and the stream is dropped (the next frame starts a
    /// new one): send the message raw, or not at all.
    pub fn compress(
        &mut self,
        input: &[u8],
        dictionary: Option<&Dictionary>,
        out: &mut Vec<u8>,
    ) -> Result<FrameFormat, CodecError> {
        if input.is_empty() {
            return Ok(write_raw(input, out));
        }
        let start = out.len();
        let result = self.compress_inner(input, dictionary, out);
        if result.is_err() {
            out.truncate(start);
            self.stream = None;
        }
        result
    }

    fn compress_inner(
        &mut self,
        input: &[u8],
        dictionary: Option<&Dictionary>,
        out: &mut Vec<u8>,
    ) -> Result<FrameFormat, CodecError> {
        let id = dictionary.map_or(0, |d| d.id);
        let format = if self.stream == Some(id) {
            out.push(FrameFormat::StreamContinue as u8);
            FrameFormat::StreamContinue
        } else {
            let error = |e| CodecError::Compress(zstd_error(e));
            self.stream = None;
            self.cctx
                .reset(ResetDirective::SessionOnly)
                .map_err(error)?;
            match dictionary {
                Some(d) => self.cctx.load_dictionary(&d.bytes),
                None => self.cctx.disable_dictionary(),
            }
            .map_err(error)?;
            self.stream = Some(id);
            out.push(FrameFormat::StreamStart as u8);
            write_varint(out, u64::from(id));
            FrameFormat::StreamStart
        };
        write_varint(out, input.len() as u64);
        out.reserve(zstd_safe::compress_bound(input.len()) + 32);
        let mut source = InBuffer::around(input);
        loop {
            let pos = out.len();
            let mut sink = OutBuffer::around_pos(out, pos);
            let remaining = self
                .cctx
                .compress_stream2(
                    &mut sink,
                    &mut source,
                    zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush,
                )
                .map_err(|e| CodecError::Compress(zstd_error(e)))?;
            if remaining == 0 && source.pos() == input.len() {
                return Ok(format);
            }
            out.reserve(remaining.max(1024));
        }
    }
}

/// The decoding half of a compression stream (see [`StreamEncoder`]): decodes the stream
/// frames of one connection and direction, in order, each bounded by the kind's maximum
/// and by the length it declares.
///
/// A stream start resets it and loads the dictionary of that id from the receiver's
/// [`DictionarySet`] (an unknown id is an error); a continuation continues it. Any error
/// poisons it: every continuation is then refused with [`CodecError::NoStream`] until the
/// next stream start, since its history no longer matches the encoder's.
pub struct StreamDecoder {
    dctx: DCtx<'static>,
    /// The stream being decoded: the id of its dictionary (0: none). `None`: no stream was
    /// started, or the decoder failed since.
    stream: Option<u32>,
}

impl std::fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("stream", &self.stream)
            .finish()
    }
}

impl StreamDecoder {
    /// A decoder with no stream yet, refusing windows above [`STREAM_WINDOW_LOG`].
    pub fn new() -> Result<Self, CodecError> {
        let mut dctx =
            DCtx::try_create().ok_or_else(|| CodecError::Compress("out of memory".into()))?;
        dctx.set_parameter(DParameter::WindowLogMax(STREAM_WINDOW_LOG))
            .map_err(|e| CodecError::Compress(zstd_error(e)))?;
        Ok(Self { dctx, stream: None })
    }

    /// Whether a stream is being decoded (false before the first start and after an error,
    /// until the next start).
    pub fn has_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// The dictionary of the stream being decoded, if it has one.
    pub fn dictionary(&self) -> Option<u32> {
        self.stream.filter(|&id| id != 0)
    }

    /// Decodes a stream frame (format 3 or 4) into a message of at most `max_len` bytes;
    /// a start takes its dictionary from `dictionaries`. Every error on such a frame (or on
    /// an empty or unknown one) poisons the decoder (see the type). A raw frame is decoded
    /// and leaves the stream as it was; formats 1 and 2 are [`CodecError::Unsupported`]
    /// and leave it as it was too.
    pub fn decompress(
        &mut self,
        frame: &[u8],
        max_len: usize,
        dictionaries: &DictionarySet,
    ) -> Result<Vec<u8>, CodecError> {
        // Frames outside the stream neither need nor change it.
        match frame.first().copied().and_then(FrameFormat::from_byte) {
            Some(FrameFormat::Raw) => return raw_body(&FrameHeader::parse(frame)?, max_len),
            Some(other @ (FrameFormat::Zstd | FrameFormat::ZstdDict)) => {
                return Err(CodecError::Unsupported(other as u8))
            }
            _ => {}
        }
        let result = self.decompress_inner(frame, max_len, dictionaries);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn decompress_inner(
        &mut self,
        frame: &[u8],
        max_len: usize,
        dictionaries: &DictionarySet,
    ) -> Result<Vec<u8>, CodecError> {
        let header = FrameHeader::parse(frame)?;
        match header.format {
            FrameFormat::StreamStart => {
                let declared = header.bounded_len(max_len)?;
                let id = header.dictionary.unwrap_or(0);
                let dictionary = match header.dictionary {
                    Some(id) => Some(
                        dictionaries
                            .get(id)
                            .ok_or(CodecError::UnknownDictionary(id))?,
                    ),
                    None => None,
                };
                let error = |e| CodecError::Corrupt(zstd_error(e));
                self.dctx
                    .reset(ResetDirective::SessionOnly)
                    .map_err(error)?;
                match dictionary {
                    Some(d) => self.dctx.load_dictionary(&d.bytes),
                    None => self.dctx.disable_dictionary(),
                }
                .map_err(error)?;
                self.stream = Some(id);
                self.read(header.body, declared)
            }
            FrameFormat::StreamContinue => {
                if self.stream.is_none() {
                    return Err(CodecError::NoStream);
                }
                let declared = header.bounded_len(max_len)?;
                self.read(header.body, declared)
            }
            other => Err(CodecError::Unsupported(other as u8)),
        }
    }

    /// Feeds exactly `body` to the stream; its output must be exactly `declared` bytes.
    fn read(&mut self, body: &[u8], declared: usize) -> Result<Vec<u8>, CodecError> {
        let corrupt = |e| CodecError::Corrupt(zstd_error(e));
        // The output grows as the body fills it, never past the declared length (itself
        // within the kind's bound and what the body can hold): what is allocated is what
        // the body really gives.
        let mut out = Vec::with_capacity(declared.min(STREAM_OUTPUT_STEP));
        let mut source = InBuffer::around(body);
        loop {
            let consumed = source.pos();
            let produced = out.len();
            if out.len() == out.capacity() && out.len() < declared {
                out.reserve_exact((declared - out.len()).min(out.len().max(STREAM_OUTPUT_STEP)));
            }
            if out.len() < out.capacity() {
                let pos = out.len();
                let mut sink = OutBuffer::around_pos(&mut out, pos);
                self.dctx
                    .decompress_stream(&mut sink, &mut source)
                    .map_err(corrupt)?;
            } else {
                // The output is full: anything more the body gives is past the bound.
                let mut probe = [0u8; 1];
                let mut sink = OutBuffer::around(&mut probe[..]);
                self.dctx
                    .decompress_stream(&mut sink, &mut source)
                    .map_err(corrupt)?;
                if sink.pos() > 0 {
                    return Err(CodecError::ExpandsPast { declared });
                }
            }
            if out.len() > declared {
                return Err(CodecError::ExpandsPast { declared });
            }
            let all_in = source.pos() == body.len();
            // Room left in the output: zstd flushed all it could of the input taken.
            if all_in && out.len() < out.capacity() {
                break;
            }
            let progress = source.pos() != consumed || out.len() != produced;
            if !progress {
                if all_in {
                    // Full output, and the probe found nothing more.
                    break;
                }
                return Err(CodecError::Corrupt(format!(
                    "stream stalled with {} of {} body bytes left",
                    body.len() - source.pos(),
                    body.len()
                )));
            }
        }
        if out.len() != declared {
            return Err(CodecError::LengthMismatch {
                declared,
                actual: out.len(),
            });
        }
        Ok(out)
    }
}

/// The kinds of message a codec is chosen for, each with its decompressed-size bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A snapshot chunk on the reliable stream.
    SnapshotChunk,
    /// A delta frame on the reliable stream.
    DeltaFrame,
    /// A state datagram.
    Datagram,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 3] = [Self::SnapshotChunk, Self::DeltaFrame, Self::Datagram];

    /// Position of this kind in [`MessageKind::ALL`] (0 snapshot chunks, 1 delta frames,
    /// 2 datagrams): the value the C ABI and the `Dictionary` message use.
    pub const fn index(self) -> usize {
        match self {
            Self::SnapshotChunk => 0,
            Self::DeltaFrame => 1,
            Self::Datagram => 2,
        }
    }

    /// The kind at `index` in [`MessageKind::ALL`], if any.
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// A short name: `"snapshot chunk"`, `"delta frame"` or `"datagram"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SnapshotChunk => "snapshot chunk",
            Self::DeltaFrame => "delta frame",
            Self::Datagram => "datagram",
        }
    }

    /// Default maximum decompressed size: [`MAX_MESSAGE_BYTES`] for stream messages,
    /// [`MAX_DATAGRAM_BYTES`] for datagrams.
    pub const fn max_len(self) -> usize {
        match self {
            Self::SnapshotChunk | Self::DeltaFrame => MAX_MESSAGE_BYTES,
            Self::Datagram => MAX_DATAGRAM_BYTES,
        }
    }
}

/// Which codec a message kind uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// Raw frames.
    None,
    /// zstd without dictionary at this level.
    Zstd {
        /// Compression level.
        level: i32,
    },
    /// zstd with the session's current dictionary at this level (plain zstd until one is
    /// trained). A session sends delta frames on the stream with it in one compression
    /// stream per connection ([`StreamEncoder`]), the dictionary loaded at the stream's
    /// start (none until one is trained).
    ZstdDict {
        /// Compression level.
        level: i32,
    },
}

/// The codec choice and decompression bound of one message kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindConfig {
    /// Codec used to send.
    pub choice: CodecChoice,
    /// Largest decompressed message accepted.
    pub max_len: usize,
}

/// Per-kind codec configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecConfig {
    /// Snapshot chunks.
    pub snapshot_chunk: KindConfig,
    /// Delta frames.
    pub delta_frame: KindConfig,
    /// State datagrams.
    pub datagram: KindConfig,
}

impl Default for CodecConfig {
    /// zstd level 3 for snapshot chunks, a dictionary at level 1 for delta frames and
    /// datagrams; default bounds of each kind.
    fn default() -> Self {
        Self {
            snapshot_chunk: KindConfig {
                choice: CodecChoice::Zstd { level: 3 },
                max_len: MessageKind::SnapshotChunk.max_len(),
            },
            delta_frame: KindConfig {
                choice: CodecChoice::ZstdDict { level: 1 },
                max_len: MessageKind::DeltaFrame.max_len(),
            },
            datagram: KindConfig {
                choice: CodecChoice::ZstdDict { level: 1 },
                max_len: MessageKind::Datagram.max_len(),
            },
        }
    }
}

impl CodecConfig {
    /// No compression for any kind, default bounds.
    pub fn uncompressed() -> Self {
        let mut config = Self::default();
        for kind in MessageKind::ALL {
            config.kind_mut(kind).choice = CodecChoice::None;
        }
        config
    }

    /// Bounds snapshot chunks to the chunk size the host uses (e.g.
    /// [`crate::DEFAULT_MAX_CHUNK_BYTES`]) and datagrams to the path's datagram size,
    /// neither above [`MAX_MESSAGE_BYTES`].
    pub fn with_bounds(mut self, chunk_bytes: usize, datagram_bytes: usize) -> Self {
        self.snapshot_chunk.max_len = chunk_bytes.min(MAX_MESSAGE_BYTES);
        self.datagram.max_len = datagram_bytes.min(MAX_MESSAGE_BYTES);
        self
    }

    /// Narrows each kind's bound to what a session really sends with `registry` (the
    /// types both peers hold, their registry hashes being equal) and snapshot chunks cut at
    /// `max_chunk_bytes` (the host's `SessionConfig::max_chunk_bytes`): snapshot chunks to
    /// [`snapshot_chunk_bound`], delta frames (on a session's stream they carry one value
    /// too large for a datagram) to [`delta_frame_bound`], datagrams to
    /// [`MAX_DATAGRAM_BYTES`]; never above what was configured.
    pub fn bounded_for(mut self, registry: &Registry, max_chunk_bytes: usize) -> Self {
        let chunk = &mut self.snapshot_chunk.max_len;
        *chunk = (*chunk).min(snapshot_chunk_bound(registry, max_chunk_bytes));
        let delta = &mut self.delta_frame.max_len;
        *delta = (*delta).min(delta_frame_bound(registry));
        let datagram = &mut self.datagram.max_len;
        *datagram = (*datagram).min(MAX_DATAGRAM_BYTES);
        self
    }

    /// The configuration of `kind`.
    pub fn kind(&self, kind: MessageKind) -> &KindConfig {
        match kind {
            MessageKind::SnapshotChunk => &self.snapshot_chunk,
            MessageKind::DeltaFrame => &self.delta_frame,
            MessageKind::Datagram => &self.datagram,
        }
    }

    /// The configuration of `kind`, to change.
    pub fn kind_mut(&mut self, kind: MessageKind) -> &mut KindConfig {
        match kind {
            MessageKind::SnapshotChunk => &mut self.snapshot_chunk,
            MessageKind::DeltaFrame => &mut self.delta_frame,
            MessageKind::Datagram => &mut self.datagram,
        }
    }
}

/// Room over the computed message sizes of the bounds below (FlatBuffers alignment and
/// vtables the size estimates leave out).
const BOUND_SLACK: usize = 1024;

/// Encoded size, at most, of one value of `registry`'s largest type with its entity, its
/// length, its batch and its type's descriptor.
fn largest_item(registry: &Registry) -> usize {
    let value = registry
        .descriptors()
        .iter()
        .map(|d| d.layout.max_bytes() as usize)
        .max()
        .unwrap_or(0);
    size::BATCH_BASE + size::DESCRIPTOR_BASE + MAX_NAME_BYTES + size::ENTITY + size::LENGTH + value
}

/// The largest snapshot chunk a host with `registry` sends when it cuts its snapshots at
/// `max_chunk_bytes`: a chunk holds at most that much, except that one item alone may
/// exceed it (every chunk holds at least one) and that chunk 0 carries every descriptor of
/// the registry. At most [`MAX_MESSAGE_BYTES`].
pub fn snapshot_chunk_bound(registry: &Registry, max_chunk_bytes: usize) -> usize {
    let described: usize = registry
        .descriptors()
        .iter()
        .map(|d| size::DESCRIPTOR_BASE + d.name.len())
        .sum();
    let extra = size::CHUNK_BASE + described + largest_item(registry) + BOUND_SLACK;
    max_chunk_bytes.saturating_add(extra).min(MAX_MESSAGE_BYTES)
}

/// The largest delta frame a session sends on its stream with `registry`: one value too
/// large for a datagram, of the largest type. At most [`MAX_MESSAGE_BYTES`].
pub fn delta_frame_bound(registry: &Registry) -> usize {
    (size::CHUNK_BASE + largest_item(registry) + BOUND_SLACK).min(MAX_MESSAGE_BYTES)
}

/// Counters a caller keeps per message kind: frames and bytes each way, and errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodecCounters {
    /// Frames encoded.
    pub frames_out: u64,
    /// Encoded frames that were sent compressed.
    pub compressed_out: u64,
    /// Encoded frames compressed with a dictionary.
    pub dictionary_out: u64,
    /// Message bytes before encoding.
    pub bytes_in_uncompressed: u64,
    /// Frame bytes after encoding.
    pub bytes_out_framed: u64,
    /// Frames decoded successfully.
    pub frames_in: u64,
    /// Frames refused for declaring or expanding past their bound.
    pub oversized: u64,
    /// Frames naming an unknown dictionary.
    pub unknown_dictionary: u64,
    /// Truncated, garbage or corrupt frames.
    pub malformed: u64,
    /// Decoded frames that had been compressed with a dictionary.
    pub dictionary_in: u64,
    /// Frame bytes received (decoded or not).
    pub bytes_received_framed: u64,
    /// Message bytes the decoded frames gave.
    pub bytes_received_uncompressed: u64,
}

impl CodecCounters {
    /// Counts an encoded frame of `input_len` bytes that became `frame_len` bytes.
    pub fn record_encode(&mut self, format: FrameFormat, input_len: usize, frame_len: usize) {
        self.record_encode_with(
            format,
            format == FrameFormat::ZstdDict,
            input_len,
            frame_len,
        );
    }

    /// Counts an encoded frame as [`CodecCounters::record_encode`], `with_dictionary`
    /// telling whether it was made with a dictionary (a stream frame's is the one its
    /// stream started with: [`StreamEncoder::dictionary`]).
    pub fn record_encode_with(
        &mut self,
        format: FrameFormat,
        with_dictionary: bool,
        input_len: usize,
        frame_len: usize,
    ) {
        self.frames_out += 1;
        self.compressed_out += u64::from(format != FrameFormat::Raw);
        self.dictionary_out += u64::from(with_dictionary);
        self.bytes_in_uncompressed += input_len as u64;
        self.bytes_out_framed += frame_len as u64;
    }

    /// Counts the outcome of a decode.
    pub fn record_decode<T>(&mut self, result: &Result<T, CodecError>) {
        match result {
            Ok(_) => self.frames_in += 1,
            Err(CodecError::TooLarge { .. } | CodecError::ExpandsPast { .. }) => {
                self.oversized += 1
            }
            Err(CodecError::UnknownDictionary(_)) => self.unknown_dictionary += 1,
            Err(_) => self.malformed += 1,
        }
    }

    /// Counts a received `frame` and the outcome of its decoding: bytes each way, frames
    /// made with a dictionary, and errors by cause (as [`CodecCounters::record_decode`]).
    pub fn record_received(&mut self, frame: &[u8], result: &Result<Vec<u8>, CodecError>) {
        let with_dictionary = frame.first() == Some(&(FrameFormat::ZstdDict as u8));
        self.record_received_with(frame, result, with_dictionary);
    }

    /// Counts a received frame as [`CodecCounters::record_received`], `with_dictionary`
    /// telling whether it was made with a dictionary (a stream frame's is the one its
    /// stream started with: [`StreamDecoder::dictionary`]).
    pub fn record_received_with(
        &mut self,
        frame: &[u8],
        result: &Result<Vec<u8>, CodecError>,
        with_dictionary: bool,
    ) {
        self.record_decode(result);
        self.bytes_received_framed += frame.len() as u64;
        if let Ok(message) = result {
            self.bytes_received_uncompressed += message.len() as u64;
            self.dictionary_in += u64::from(with_dictionary);
        }
    }

    /// Frames refused on decoding, all causes.
    pub fn decode_failures(&self) -> u64 {
        self.oversized + self.unknown_dictionary + self.malformed
    }

    /// Share of encoded frames compressed with a dictionary (0.0 when none was encoded).
    pub fn dictionary_hit_rate(&self) -> f64 {
        if self.frames_out == 0 {
            0.0
        } else {
            self.dictionary_out as f64 / self.frames_out as f64
        }
    }

    /// Encoded bytes over message bytes (1.0 when nothing was encoded).
    pub fn ratio(&self) -> f64 {
        if self.bytes_in_uncompressed == 0 {
            1.0
        } else {
            self.bytes_out_framed as f64 / self.bytes_in_uncompressed as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: usize) -> Vec<u8> {
        format!(
            "{{\"entity\":{i},\"pos\":[{i}.5,2.25,-3.0],\"name\":\"cube-{}\"}}",
            i % 7
        )
        .repeat(3)
        .into_bytes()
    }

    fn dictionary(id: u32) -> Dictionary {
        let samples: Vec<Vec<u8>> = (0..64).map(sample).collect();
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        train_dictionary(&refs, 4096, id).unwrap()
    }

    fn set_of(dictionaries: &[&Dictionary]) -> DictionarySet {
        let mut set = DictionarySet::new();
        for d in dictionaries {
            set.insert((*d).clone()).unwrap();
        }
        set
    }

    fn encode(encoder: &mut StreamEncoder, input: &[u8], dict: Option<&Dictionary>) -> Vec<u8> {
        let mut out = Vec::new();
        encoder.compress(input, dict, &mut out).unwrap();
        out
    }

    /// `frame` (a stream frame) with its declared length replaced.
    fn redeclare(frame: &[u8], declared: u64) -> Vec<u8> {
        let header = FrameHeader::parse(frame).unwrap();
        let mut out = vec![frame[0]];
        if header.format == FrameFormat::StreamStart {
            write_varint(&mut out, u64::from(header.dictionary.unwrap_or(0)));
        }
        write_varint(&mut out, declared);
        out.extend_from_slice(header.body);
        out
    }

    /// xorshift64*, for random frames.
    fn random_bytes(state: &mut u64, len: usize) -> Vec<u8> {
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
    fn stream_round_trips_many_messages_with_and_without_dictionary() {
        let dict = dictionary(7);
        let set = set_of(&[&dict]);
        let plain = Zstd::new(1).unwrap();
        for d in [None, Some(&dict)] {
            let mut encoder = StreamEncoder::new(1).unwrap();
            let mut decoder = StreamDecoder::new().unwrap();
            let (mut streamed, mut single) = (0, 0);
            for i in 0..300 {
                let message = sample(i);
                let frame = encode(&mut encoder, &message, d);
                let format = FrameFormat::from_byte(frame[0]).unwrap();
                let expected = if i == 0 {
                    FrameFormat::StreamStart
                } else {
                    FrameFormat::StreamContinue
                };
                assert_eq!(format, expected);
                assert_eq!(encoder.dictionary(), d.map(|d| d.id));
                // Bounded by exactly the message's length.
                let decoded = decoder.decompress(&frame, message.len(), &set).unwrap();
                assert_eq!(decoded, message);
                assert_eq!(decoder.dictionary(), d.map(|d| d.id));
                streamed += frame.len();
                let mut out = Vec::new();
                plain.compress(&message, &mut out).unwrap();
                single += out.len();
            }
            // Each message is coded against the ones before it.
            assert!(streamed * 2 < single, "{streamed} vs {single}");
        }
    }

    #[test]
    fn stream_restarts_when_the_dictionary_changes() {
        let (a, b) = (dictionary(1), dictionary(2));
        let set = set_of(&[&a, &b]);
        let mut encoder = StreamEncoder::new(1).unwrap();
        let mut decoder = StreamDecoder::new().unwrap();
        let plan: [(Option<&Dictionary>, Option<u32>); 9] = [
            (Some(&a), Some(1)),
            (Some(&a), None),
            (Some(&b), Some(2)),
            (Some(&b), None),
            (None, Some(0)),
            (None, None),
            (Some(&b), Some(2)),
            (Some(&b), None),
            (Some(&b), None),
        ];
        for (i, (d, start)) in plan.into_iter().enumerate() {
            let message = sample(i);
            let frame = encode(&mut encoder, &message, d);
            let header = FrameHeader::parse(&frame).unwrap();
            match start {
                Some(id) => {
                    assert_eq!(header.format, FrameFormat::StreamStart, "message {i}");
                    assert_eq!(header.dictionary.unwrap_or(0), id);
                }
                None => assert_eq!(header.format, FrameFormat::StreamContinue, "message {i}"),
            }
            assert_eq!(header.declared_len, message.len() as u64);
            assert_eq!(decoder.decompress(&frame, 1 << 20, &set).unwrap(), message);
        }
        // A reset (a new connection) starts a new stream with the same dictionary.
        encoder.reset();
        assert!(!encoder.has_stream());
        let frame = encode(&mut encoder, &sample(50), Some(&b));
        assert_eq!(frame[0], FrameFormat::StreamStart as u8);
        let mut fresh = StreamDecoder::new().unwrap();
        assert_eq!(fresh.decompress(&frame, 1 << 20, &set).unwrap(), sample(50));
    }

    #[test]
    fn empty_and_raw_frames_leave_the_stream_alone() {
        let set = DictionarySet::new();
        let mut encoder = StreamEncoder::new(1).unwrap();
        let mut decoder = StreamDecoder::new().unwrap();
        let first = encode(&mut encoder, &sample(1), None);
        let empty = encode(&mut encoder, &[], None);
        assert_eq!(empty, [FrameFormat::Raw as u8]);
        let second = encode(&mut encoder, &sample(2), None);
        assert_eq!(second[0], FrameFormat::StreamContinue as u8);
        assert_eq!(decoder.decompress(&first, 4096, &set).unwrap(), sample(1));
        assert_eq!(decoder.decompress(&empty, 4096, &set).unwrap(), b"");
        assert_eq!(decoder.decompress(&[0, 1, 2], 4096, &set).unwrap(), [1, 2]);
        assert_eq!(
            decoder.decompress(&[1, 3, 0, 0, 0], 4096, &set),
            Err(CodecError::Unsupported(1))
        );
        assert_eq!(decoder.decompress(&second, 4096, &set).unwrap(), sample(2));
        // The other codecs refuse stream frames.
        assert_eq!(
            NoCodec.decompress(&second, 4096),
            Err(CodecError::Unsupported(4))
        );
        assert_eq!(
            set.decompress(&first, 4096),
            Err(CodecError::Unsupported(3))
        );
        assert_eq!(
            Zstd::new(1).unwrap().decompress(&first, 4096),
            Err(CodecError::Unsupported(3))
        );
    }

    /// Every hostile or broken frame is an error, never a panic; it poisons the decoder
    /// (the encoder's next continuation is refused) until a new stream start.
    /// The delta-frame bound of a session whose largest type holds 1 KiB values (the
    /// samples above are about 200 bytes).
    fn session_delta_bound() -> usize {
        let mut registry = Registry::new();
        registry
            .register("test.Blob", crate::Layout::Variable { max: 1024 })
            .unwrap();
        registry
            .register("test.Pose", crate::Layout::Fixed(28))
            .unwrap();
        CodecConfig::default()
            .bounded_for(&registry, crate::DEFAULT_MAX_CHUNK_BYTES)
            .kind(MessageKind::DeltaFrame)
            .max_len
    }

    #[test]
    fn stream_output_grows_to_the_declared_length() {
        let set = DictionarySet::new();
        let mut encoder = StreamEncoder::new(1).unwrap();
        let mut decoder = StreamDecoder::new().unwrap();
        let mut state = 5;
        for len in [
            STREAM_OUTPUT_STEP - 1,
            STREAM_OUTPUT_STEP,
            STREAM_OUTPUT_STEP + 1,
            100_000,
            300_000,
        ] {
            for message in [vec![9u8; len], random_bytes(&mut state, len)] {
                let frame = encode(&mut encoder, &message, None);
                // Bounded by exactly the message's length.
                assert_eq!(decoder.decompress(&frame, len, &set).unwrap(), message);
            }
        }
    }

    #[test]
    fn a_frame_cannot_declare_more_than_its_body_can_hold() {
        assert_eq!(max_output_of(0), 128 << 10);
        assert_eq!(max_output_of(9), 3 * (128 << 10));
        // A zstd frame of 13 bytes declaring 60 MiB, under a 64 MiB bound.
        let mut frame = vec![FrameFormat::Zstd as u8];
        write_varint(&mut frame, 60 << 20);
        frame.resize(13, 0);
        let body = 13 - 5;
        let refused = Err(CodecError::TooLarge {
            declared: 60 << 20,
            max: max_output_of(body),
        });
        assert_eq!(Zstd::new(1).unwrap().decompress(&frame, 64 << 20), refused);
        assert_eq!(DictionarySet::new().decompress(&frame, 64 << 20), refused);
        frame[0] = FrameFormat::StreamContinue as u8;
        let mut decoder = StreamDecoder::new().unwrap();
        decoder.stream = Some(0);
        assert_eq!(
            decoder.decompress(&frame, 64 << 20, &DictionarySet::new()),
            refused
        );
        // A raw frame carries what it declares: only the kind's bound applies.
        assert!(NoCodec.decompress(&[0; 100], 99).is_ok());
    }

    #[test]
    fn stream_decoding_errors_poison_until_the_next_start() {
        let dict = dictionary(3);
        let set = set_of(&[&dict]);
        let max = session_delta_bound();
        let mut encoder = StreamEncoder::new(1).unwrap();
        let mut decoder = StreamDecoder::new().unwrap();
        let n = std::cell::Cell::new(0);
        let next = |encoder: &mut StreamEncoder| {
            n.set(n.get() + 1);
            (
                sample(n.get()),
                encode(encoder, &sample(n.get()), Some(&dict)),
            )
        };
        // Restarts both streams and checks the decoder works again.
        let restart = |encoder: &mut StreamEncoder, decoder: &mut StreamDecoder| {
            encoder.reset();
            for _ in 0..2 {
                let (message, frame) = next(encoder);
                assert_eq!(decoder.decompress(&frame, max, &set).unwrap(), message);
            }
        };
        let poisoned = |encoder: &mut StreamEncoder, decoder: &mut StreamDecoder| {
            let frame = encode(encoder, &sample(999), Some(&dict));
            assert_eq!(frame[0], FrameFormat::StreamContinue as u8);
            assert_eq!(
                decoder.decompress(&frame, max, &set),
                Err(CodecError::NoStream)
            );
            assert!(!decoder.has_stream());
        };

        // A continuation with no stream started.
        let _ = encode(&mut encoder, &sample(0), Some(&dict));
        poisoned(&mut encoder, &mut decoder);
        restart(&mut encoder, &mut decoder);

        // A bomb: 1 MiB of zeros in a few bytes, declared honestly (refused before
        // decompressing) and with a lying length (refused as it expands past it).
        let bomb = encode(&mut encoder, &vec![0u8; 1 << 20], Some(&dict));
        assert!(bomb.len() < 200, "{}", bomb.len());
        assert!(matches!(
            decoder.decompress(&bomb, max, &set),
            Err(CodecError::TooLarge { declared, .. }) if declared == 1 << 20
        ));
        poisoned(&mut encoder, &mut decoder);
        restart(&mut encoder, &mut decoder);
        let bomb = encode(&mut encoder, &vec![0u8; 1 << 20], Some(&dict));
        assert_eq!(
            decoder.decompress(&redeclare(&bomb, 1000), max, &set),
            Err(CodecError::ExpandsPast { declared: 1000 })
        );
        poisoned(&mut encoder, &mut decoder);
        restart(&mut encoder, &mut decoder);

        // Wrong declared lengths, one byte either way.
        for delta in [1i64, -1] {
            let (message, frame) = next(&mut encoder);
            let wrong = (message.len() as i64 + delta) as u64;
            assert!(decoder
                .decompress(&redeclare(&frame, wrong), max, &set)
                .is_err());
            poisoned(&mut encoder, &mut decoder);
            restart(&mut encoder, &mut decoder);
        }
        let (message, frame) = next(&mut encoder);
        assert_eq!(
            decoder.decompress(&redeclare(&frame, message.len() as u64 + 1), max, &set),
            Err(CodecError::LengthMismatch {
                declared: message.len() + 1,
                actual: message.len()
            })
        );
        restart(&mut encoder, &mut decoder);

        // Truncated: in the body, and in the header.
        let (_, frame) = next(&mut encoder);
        assert!(decoder
            .decompress(&frame[..frame.len() - 3], max, &set)
            .is_err());
        poisoned(&mut encoder, &mut decoder);
        restart(&mut encoder, &mut decoder);
        assert_eq!(
            decoder.decompress(&[FrameFormat::StreamContinue as u8, 0x80], max, &set),
            Err(CodecError::Truncated)
        );
        poisoned(&mut encoder, &mut decoder);
        restart(&mut encoder, &mut decoder);

        // A stream start naming a dictionary the receiver does not hold.
        encoder.reset();
        let frame = encode(&mut encoder, &sample(1), Some(&dictionary(9)));
        assert_eq!(
            decoder.decompress(&frame, max, &set),
            Err(CodecError::UnknownDictionary(9))
        );
        let frame = encode(&mut encoder, &sample(2), Some(&dictionary(9)));
        assert_eq!(
            decoder.decompress(&frame, max, &set),
            Err(CodecError::NoStream)
        );
        restart(&mut encoder, &mut decoder);

        // A stream asking for a larger window than the decoder allows.
        let mut wide = CCtx::create();
        for p in [
            CParameter::CompressionLevel(1),
            CParameter::WindowLog(20),
            CParameter::ContentSizeFlag(false),
        ] {
            wide.set_parameter(p).unwrap();
        }
        let input = random_bytes(&mut 7, 200 << 10);
        let mut body = Vec::with_capacity(zstd_safe::compress_bound(input.len()) + 64);
        let mut source = InBuffer::around(&input);
        let mut sink = OutBuffer::around(&mut body);
        while wide
            .compress_stream2(
                &mut sink,
                &mut source,
                zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush,
            )
            .unwrap()
            > 0
        {}
        let mut frame = vec![FrameFormat::StreamStart as u8, 0];
        write_varint(&mut frame, input.len() as u64);
        frame.extend_from_slice(&body);
        assert!(matches!(
            decoder.decompress(&frame, 1 << 20, &set),
            Err(CodecError::Corrupt(_))
        ));
        poisoned(&mut encoder, &mut decoder);
        restart(&mut encoder, &mut decoder);

        // Random bytes, as any format, as a stream start and as a continuation.
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for i in 0..3000 {
            let len = (random_bytes(&mut state, 1)[0] as usize) * 2;
            let mut frame = random_bytes(&mut state, len);
            match (i % 3, frame.first_mut()) {
                (0, Some(b)) => *b = FrameFormat::StreamStart as u8,
                (1, Some(b)) => *b = FrameFormat::StreamContinue as u8,
                _ => {}
            }
            if i % 3 == 0 && frame.len() > 2 {
                frame[1] = [0, 3][i % 2];
            }
            if let Ok(out) = decoder.decompress(&frame, 1024, &set) {
                assert!(out.len() <= 1024);
            }
        }
        restart(&mut encoder, &mut decoder);
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

    #[test]
    fn counters() {
        let mut c = CodecCounters::default();
        c.record_encode(FrameFormat::ZstdDict, 100, 40);
        c.record_encode(FrameFormat::Raw, 10, 11);
        c.record_decode::<()>(&Err(CodecError::UnknownDictionary(3)));
        c.record_decode::<()>(&Err(CodecError::ExpandsPast { declared: 1 }));
        c.record_decode::<()>(&Err(CodecError::Truncated));
        c.record_decode(&Ok(()));
        assert_eq!(
            (c.frames_out, c.compressed_out, c.dictionary_out),
            (2, 1, 1)
        );
        assert_eq!(
            (c.frames_in, c.oversized, c.unknown_dictionary, c.malformed),
            (1, 1, 1, 1)
        );
        assert!((c.ratio() - 51.0 / 110.0).abs() < 1e-9);
    }
}
