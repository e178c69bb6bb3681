//! Compression streams (envelope formats 3 and 4).
//!
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
//! forever. The "never grows" rule binds datagrams (the per-frame codecs of
//! [`super`]); a stream frame is at most 8 bytes over raw, on messages of hundreds of
//! bytes or more. Only an empty message is sent raw, without touching the stream; a raw
//! frame leaves a [`StreamDecoder`] as it was. When the encoder fails, it drops its stream
//! (its next frame is a start) and the caller sends that message raw.
//!
//! A decoder that fails on a frame (bound, truncation, garbage, unknown dictionary, length
//! mismatch, a continuation without a start) is *poisoned*: its history no longer matches
//! the encoder's, so every continuation is refused ([`CodecError::NoStream`]) until the
//! next stream start.

use zstd::zstd_safe::{
    self, CCtx, CParameter, DCtx, DParameter, InBuffer, OutBuffer, ResetDirective,
};

use super::{
    raw_body, write_raw, write_varint, CodecError, Dictionary, DictionarySet, FrameFormat,
    FrameHeader,
};

/// First allocation of a stream frame's output; it doubles as the body fills it.
const STREAM_OUTPUT_STEP: usize = 16 << 10;

/// Window of a compression stream (log2: 128 KiB). The encoder uses it, and the decoder
/// refuses a stream asking for more, so a peer cannot make it allocate a larger window.
pub const STREAM_WINDOW_LOG: u32 = 17;

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

#[cfg(test)]
mod tests {
    use super::super::tests::{dictionary, random_bytes, sample, set_of};
    use super::super::{max_output_of, Codec, CodecConfig, MessageKind, NoCodec, Zstd};
    use super::*;
    use crate::registry::Registry;

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
}
