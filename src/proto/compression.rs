//! Compression of a session's messages (issue 6): the codec envelope on the wire, the
//! host's dictionaries (recorded samples, training off the engine thread, distribution,
//! acknowledgement and retirement), and the figures of it all.
//!
//! # On the wire
//! - A state datagram is its header ([`crate::wire::datagram_header`]: tag `0x10`,
//!   sequence number, acknowledgement ranges) then its body in one codec envelope
//!   ([`crate::wire::codec`]) whose first byte is the frame format, 0 raw, 1 zstd, 2 zstd
//!   with a dictionary; no envelope for an acknowledgement alone. First bytes `0x80..=0xFF`
//!   are reserved for XR pose packets; any other first byte is malformed. A body shared by
//!   several clients in a tick is compressed once per dictionary (`shared_envelopes`).
//! - A reliable stream message after admission (the join request, `JoinAccepted` and
//!   `JoinRefused` stay bare) is a [`StreamKind`] byte then a codec envelope, so the
//!   receiver knows the message kind, and with it the decompression bound, before it
//!   decompresses anything. Control messages (dictionaries, their acknowledgements and
//!   retirements, write rejections) are always raw envelopes.
//! - Delta frames on the stream, when their kind uses [`CodecChoice::ZstdDict`], share one
//!   compression stream per connection and direction (envelope formats 3 start and 4
//!   continuation, see [`crate::wire::codec`]): `LinkStreams` holds a link's encoder
//!   (what this side sends) and decoder (what the peer sends), new with every connection
//!   (join or resume). The encoder starts a stream with the dictionary it would use (below;
//!   none before one is trained) and starts a new one when that changes; the receiver
//!   decodes stream frames with the link's decoder and any other format as before. A stream
//!   frame that fails to decode is counted (per cause, like any other) and dropped, and the
//!   link's decoder stays poisoned, its continuations counted as malformed, until the
//!   sender's next stream start (a new dictionary, or a new connection).
//!
//! # Codecs and dictionaries
//! Each message kind uses the codec its [`CodecConfig`] names. With
//! [`CodecChoice::ZstdDict`] the host records samples of the uncompressed messages of that
//! kind it sends (at most [`SAMPLES_PER_KIND`] samples and [`SAMPLE_BYTES_PER_KIND`] bytes,
//! oldest dropped first) and, once `train_after_samples` were recorded or on demand,
//! trains a dictionary (a [`TrainingJob`] the driver runs off the engine thread and hands
//! back; see [`Compression::take_training_jobs`]) and installs it
//! under the next id (ids increase over the session). The host sends each dictionary to
//! each client on the stream (a late joiner gets the newest of each kind before its
//! snapshot chunks) and compresses:
//! - stream messages to a peer with the newest dictionary it was *sent* (the stream is
//!   ordered, so the dictionary arrives first);
//! - datagrams to a peer with the newest dictionary it *acknowledged* (datagrams can
//!   overtake the stream);
//! - anything else with plain zstd at the same level.
//!
//! Clients compress their upstream with the newest dictionary they hold (they acked it, so
//! the host has it). An older dictionary retires once every connected peer acknowledged the
//! newest of its kind and it has not been used for a grace period (three round trips plus
//! 100 ms): the host drops it and tells the clients to drop it. The host keeps at most
//! [`MAX_DICTIONARIES_PER_KIND`] per kind (the oldest is forced out beyond that, whoever
//! still uses it falls back to plain zstd) and a client the same number (oldest dropped);
//! a dictionary from a peer larger than [`MAX_DICTIONARY_BYTES`] is refused and counted.
//!
//! # Figures
//! Per kind: [`CodecCounters`] of both directions (frames, bytes before and after the
//! envelope, dictionary use, decode failures by cause), dictionaries held and trained.
//! Per component type: the value bytes sent and the wire bytes they cost, where each sent
//! frame's envelope size (datagram or stream message, without the stream kind byte and the
//! stream's length prefix) is split between the component types of the frame in proportion
//! to their value bytes in it (values of one type compress alike, so this is a fair split
//! of what the frame cost, its share of headers, entity ids and acks included). Frames
//! without values (acknowledgements, spawns, despawns, removals, control) count as
//! unattributed.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::registry::{ComponentId, Registry};
use crate::wire::codec::{
    Codec, CodecChoice, CodecConfig, CodecCounters, CodecError, Dictionary, FrameFormat,
    FrameHeader, MessageKind, NoCodec, StreamDecoder, StreamEncoder, Zstd, ZstdDict,
    MIN_TRAINING_SAMPLES,
};
use crate::wire::{self, fb, Encoder, Message};

use super::outbox::{FrameId, ValueBytes};
use shared_envelopes::SharedEnvelopes;

mod dictionaries;
mod shared_envelopes;
mod training;

use dictionaries::KindStore;
pub(crate) use dictionaries::PeerDicts;
use training::Trainer;
pub use training::{TrainError, TrainingDone, TrainingJob};

/// Largest dictionary the host trains or a client accepts.
pub const MAX_DICTIONARY_BYTES: usize = 128 << 10;
/// Dictionaries kept per message kind, on the host and on a client.
pub const MAX_DICTIONARIES_PER_KIND: usize = 4;
/// Samples the host keeps per message kind for training.
pub const SAMPLES_PER_KIND: usize = 2048;
/// Sample bytes the host keeps per message kind.
pub const SAMPLE_BYTES_PER_KIND: usize = 4 << 20;
/// Longest sample kept (a longer message is recorded truncated).
const SAMPLE_MAX_BYTES: usize = 64 << 10;
/// Largest control message: a dictionary and its table.
pub(crate) const MAX_CONTROL_BYTES: usize = MAX_DICTIONARY_BYTES + 4096;
/// The smallest dictionary asked of the trainer.
const MIN_DICTIONARY_BYTES: usize = 1024;

/// What follows the first byte of a stream message after admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamKind {
    /// A snapshot chunk in a codec envelope.
    SnapshotChunk = 0,
    /// A delta frame in a codec envelope.
    DeltaFrame = 1,
    /// A control message (dictionary, acknowledgement, retirement, write rejection) in a
    /// raw codec envelope.
    Control = 2,
}

impl StreamKind {
    /// The kind a tag byte names.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::SnapshotChunk),
            1 => Some(Self::DeltaFrame),
            2 => Some(Self::Control),
            _ => None,
        }
    }

    /// The compressed message kind, `None` for control messages.
    pub fn message_kind(self) -> Option<MessageKind> {
        match self {
            Self::SnapshotChunk => Some(MessageKind::SnapshotChunk),
            Self::DeltaFrame => Some(MessageKind::DeltaFrame),
            Self::Control => None,
        }
    }

    fn of(kind: MessageKind) -> Self {
        match kind {
            MessageKind::SnapshotChunk => Self::SnapshotChunk,
            // Datagrams never travel on the stream; their kind byte would be a delta's.
            MessageKind::DeltaFrame | MessageKind::Datagram => Self::DeltaFrame,
        }
    }
}

/// A raw frame's body, borrowed (bounded by `max_len`, as a codec decodes it), or `None`
/// for a frame of another format: a raw message is not copied on its way in.
fn raw_body(frame: &[u8], max_len: usize) -> Option<Result<Cow<'_, [u8]>, CodecError>> {
    let header = FrameHeader::parse(frame).ok()?;
    if header.format != FrameFormat::Raw {
        return None;
    }
    // A raw frame declares its body's length.
    Some(if header.declared_len > max_len as u64 {
        Err(CodecError::TooLarge {
            declared: header.declared_len,
            max: max_len,
        })
    } else {
        Ok(Cow::Borrowed(header.body))
    })
}

/// Bytes a stream message may have beyond its codec envelope's content: its kind byte,
/// the envelope's header (format, dictionary id, declared length) and the few bytes a
/// stream frame may exceed the raw frame by.
const STREAM_MESSAGE_OVERHEAD: usize = 64;

/// The longest stream message a peer whose decoding `config` bounds may send after
/// admission: the largest bound of a kind or of a control message, in its envelope. The
/// session reads no longer message from the stream.
pub fn max_stream_message(config: &CodecConfig) -> usize {
    MessageKind::ALL
        .iter()
        .map(|&kind| config.kind(kind).max_len)
        .fold(MAX_CONTROL_BYTES, usize::max)
        + STREAM_MESSAGE_OVERHEAD
}

/// Splits a stream message after admission into its kind and its codec envelope.
pub fn split_stream_message(bytes: &[u8]) -> Option<(StreamKind, &[u8])> {
    let (&tag, frame) = bytes.split_first()?;
    Some((StreamKind::from_byte(tag)?, frame))
}

/// A control message for the stream: its kind byte and a raw envelope.
pub fn control_message(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 2);
    out.push(StreamKind::Control as u8);
    out.push(FrameFormat::Raw as u8);
    out.extend_from_slice(message);
    out
}

/// The schema's name of a message kind.
pub(crate) fn fb_kind(kind: MessageKind) -> fb::CodecKind {
    match kind {
        MessageKind::SnapshotChunk => fb::CodecKind::SnapshotChunk,
        MessageKind::DeltaFrame => fb::CodecKind::DeltaFrame,
        MessageKind::Datagram => fb::CodecKind::Datagram,
    }
}

/// Compression figures of one message kind.
#[derive(Clone, Debug, PartialEq)]
pub struct KindDiagnostics {
    /// The kind.
    pub kind: MessageKind,
    /// The codec this side sends it with.
    pub codec: CodecChoice,
    /// Frames and bytes sent and received, dictionary use, decode failures by cause.
    pub counters: CodecCounters,
    /// Ids of the dictionaries of this kind held (host: trained and not retired; client:
    /// received and not retired), ascending.
    pub dictionaries: Vec<u32>,
    /// Samples recorded for training (host).
    pub samples: u64,
    /// Dictionaries trained (host).
    pub trained: u64,
    /// Trainings that failed (host).
    pub training_failures: u64,
    /// Whether a training is running (host).
    pub training: bool,
    /// Dictionaries refused: too large, or of an unknown kind (client).
    pub dictionaries_refused: u64,
}

impl KindDiagnostics {
    /// Framed bytes sent over message bytes sent (1.0 when nothing was sent).
    pub fn ratio(&self) -> f64 {
        self.counters.ratio()
    }

    /// Share of the frames sent that were compressed with a dictionary.
    pub fn dictionary_hit_rate(&self) -> f64 {
        self.counters.dictionary_hit_rate()
    }

    /// The newest dictionary held, if any.
    pub fn newest_dictionary(&self) -> Option<u32> {
        self.dictionaries.last().copied()
    }
}

/// What the values of one component type cost on the wire (sending side). See the module
/// documentation for how frames are split between types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentWire {
    /// The component type.
    pub component: ComponentId,
    /// Its registered name.
    pub name: String,
    /// Value bytes sent (uncompressed, every sending counted).
    pub value_bytes: u64,
    /// Envelope bytes of the frames that carried them, split by value bytes.
    pub wire_bytes: u64,
}

/// Whether a codec envelope is a frame of a compression stream (start or continuation).
pub(crate) fn is_stream_frame(frame: &[u8]) -> bool {
    frame
        .first()
        .copied()
        .and_then(FrameFormat::from_byte)
        .is_some_and(FrameFormat::is_stream)
}

/// The delta-frame compression streams of one link (see the module documentation): the
/// encoder of the delta frames this side sends on the stream and the decoder of those the
/// peer sends, each made on first use. A new link (connection) starts with new ones.
#[derive(Debug, Default)]
pub(crate) struct LinkStreams {
    encoder: Option<StreamEncoder>,
    decoder: Option<StreamDecoder>,
}

impl LinkStreams {
    /// The encoder at `level`, made on first use; `None` when zstd cannot make one.
    fn encoder(&mut self, level: i32) -> Option<&mut StreamEncoder> {
        if self.encoder.is_none() {
            self.encoder = StreamEncoder::new(level).ok();
        }
        self.encoder.as_mut()
    }
}

/// A session's compression state: codecs per kind, dictionaries, counters.
pub(crate) struct Compression {
    config: CodecConfig,
    plain: [Option<Zstd>; 3],
    kinds: [KindStore; 3],
    counters: [CodecCounters; 3],
    refused: [u64; 3],
    components: FxHashMap<ComponentId, (u64, f64)>,
    unattributed: f64,
    trainer: Option<Trainer>,
    /// State datagram envelopes of bodies shared this tick.
    envelopes: SharedEnvelopes,
}

fn level_of(choice: CodecChoice) -> Option<i32> {
    match choice {
        CodecChoice::None => None,
        CodecChoice::Zstd { level } | CodecChoice::ZstdDict { level } => Some(level),
    }
}

impl Compression {
    /// A client's compression (no training), or with `trainer` a host's, which trains a
    /// kind automatically after `train_after` samples (0: only on demand) and asks the
    /// trainer for `dictionary_bytes`.
    pub(crate) fn new(config: CodecConfig, trainer: Option<(u64, usize)>) -> Self {
        let plain = MessageKind::ALL.map(|kind| {
            // A level zstd refuses leaves the kind raw rather than failing the session.
            level_of(config.kind(kind).choice).and_then(|level| Zstd::new(level).ok())
        });
        let trainer = trainer.map(|(train_after, dictionary_bytes)| Trainer {
            samples: Default::default(),
            train_after,
            dictionary_bytes: dictionary_bytes.clamp(MIN_DICTIONARY_BYTES, MAX_DICTIONARY_BYTES),
            next_id: 1,
            running: [None; 3],
            trained: [0; 3],
            failed: [0; 3],
            jobs: Vec::new(),
        });
        Compression {
            config,
            plain,
            kinds: Default::default(),
            counters: [CodecCounters::default(); 3],
            refused: [0; 3],
            components: FxHashMap::default(),
            unattributed: 0.0,
            trainer,
            envelopes: SharedEnvelopes::default(),
        }
    }

    /// The largest datagram body accepted.
    pub(crate) fn max_datagram(&self) -> usize {
        self.config.datagram.max_len
    }

    /// Takes the decompression bounds of `bounds` (the codec choices stay): a client learns
    /// the host's snapshot chunk size only when it is admitted.
    pub(crate) fn set_bounds(&mut self, bounds: &CodecConfig) {
        for kind in MessageKind::ALL {
            self.config.kind_mut(kind).max_len = bounds.kind(kind).max_len;
        }
    }

    /// Frames `message` of `kind` into `out`, with the codec of its kind: with the newest
    /// dictionary `usable` accepts when the kind uses one, in the link's compression stream
    /// for a delta frame given `streams`. Counts it, splits its wire size between the
    /// component types of `values`, and (host) records it as a sample.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        &mut self,
        kind: MessageKind,
        message: &[u8],
        values: &[(ComponentId, usize)],
        usable: impl Fn(u32) -> bool,
        streams: Option<&mut LinkStreams>,
        now: Instant,
        out: &mut Vec<u8>,
    ) {
        let k = kind.index();
        let start = out.len();
        let choice = self.config.kind(kind).choice;
        let mut with_dictionary = None;
        let mut stream_dictionary = false;
        if let CodecChoice::ZstdDict { level } = choice {
            let store = &mut self.kinds[k];
            let streams = streams.filter(|_| kind == MessageKind::DeltaFrame);
            if let Some(encoder) = streams.and_then(|s| s.encoder(level)) {
                // The stream restarts whenever the dictionary to use changes.
                let dictionary = store.newest(usable).map(|id| {
                    let held = store.held.get_mut(&id).expect("newest is held");
                    held.last_used = Some(now);
                    &held.dictionary
                });
                with_dictionary = Some(encoder.compress(message, dictionary, out));
                stream_dictionary = encoder.dictionary().is_some();
            } else if let Some(id) = store.newest(usable) {
                let held = store.held.get_mut(&id).expect("newest is held");
                if held.encoder.is_none() {
                    held.encoder = ZstdDict::new(level, &held.dictionary).ok();
                }
                if let Some(encoder) = &held.encoder {
                    held.last_used = Some(now);
                    with_dictionary = Some(encoder.compress(message, out));
                }
            }
        }
        let result = match (with_dictionary, choice, &self.plain[k]) {
            (Some(result), _, _) => result,
            (None, CodecChoice::None, _) | (None, _, None) => NoCodec.compress(message, out),
            (None, _, Some(zstd)) => zstd.compress(message, out),
        };
        let format = result.unwrap_or_else(|_| {
            // zstd failed (out of memory): the raw frame is always possible.
            out.truncate(start);
            NoCodec.compress(message, out).unwrap_or(FrameFormat::Raw)
        });
        let framed = out.len() - start;
        let dictionary = match format {
            FrameFormat::StreamStart | FrameFormat::StreamContinue => stream_dictionary,
            other => other == FrameFormat::ZstdDict,
        };
        self.counters[k].record_encode_with(format, dictionary, message.len(), framed);
        self.attribute(values, framed);
        if let Some(trainer) = &mut self.trainer {
            if matches!(choice, CodecChoice::ZstdDict { .. }) {
                trainer.samples[k].record(message);
            }
        }
    }

    /// Appends a state datagram body's envelope to `out`, for a peer whose dictionaries
    /// `dicts` tracks. A body `shared` among clients this tick is compressed once per
    /// dictionary: a peer holding the same one (or none) gets the same envelope, counted
    /// as its own send (a dictionary sample is recorded once).
    pub(crate) fn datagram(
        &mut self,
        message: &[u8],
        shared: Option<FrameId>,
        values: &[(ComponentId, usize)],
        dicts: &PeerDicts,
        now: Instant,
        out: &mut Vec<u8>,
    ) {
        let kind = MessageKind::Datagram;
        let k = kind.index();
        let choice = self.config.kind(kind).choice;
        let usable = |id| dicts.datagram_usable(id);
        let dictionary = match choice {
            CodecChoice::ZstdDict { .. } => self.kinds[k].newest(usable),
            _ => None,
        };
        if let Some(frame) = shared {
            if let Some((envelope, bytes)) = self.envelopes.get(frame, dictionary, choice) {
                out.extend_from_slice(bytes);
                let (format, with_dictionary) = (envelope.format, envelope.dictionary);
                let framed = bytes.len();
                self.counters[k].record_encode_with(format, with_dictionary, message.len(), framed);
                self.attribute(values, framed);
                if let (Some(trainer), CodecChoice::ZstdDict { .. }) = (&mut self.trainer, choice) {
                    trainer.samples[k].count_again();
                }
                return;
            }
        }
        let start = out.len();
        self.frame(kind, message, values, usable, None, now, out);
        if let Some(frame) = shared {
            let envelope = &out[start..];
            // Datagram envelopes are of the independent formats 0..=2 only.
            if let Some(format) = envelope.first().and_then(|&b| FrameFormat::from_byte(b)) {
                let with_dictionary = format == FrameFormat::ZstdDict;
                self.envelopes.insert(
                    (frame, dictionary, choice),
                    envelope,
                    (format, with_dictionary),
                );
            }
        }
    }

    /// State datagram envelopes reused for another client rather than compressed again.
    pub(crate) fn envelopes_shared(&self) -> u64 {
        self.envelopes.shared
    }

    /// A stream message of `kind` (snapshot chunk or delta frame): its kind byte and
    /// envelope, for a peer whose dictionaries `dicts` tracks; a delta frame goes into the
    /// link's compression stream `streams` when its kind uses a dictionary. The message must
    /// then be sent, after every stream message framed before it.
    pub(crate) fn stream(
        &mut self,
        kind: MessageKind,
        message: &[u8],
        values: &[(ComponentId, usize)],
        dicts: &PeerDicts,
        streams: &mut LinkStreams,
        now: Instant,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(message.len() + 2);
        out.push(StreamKind::of(kind) as u8);
        self.frame(
            kind,
            message,
            values,
            |id| dicts.stream_usable(id),
            Some(streams),
            now,
            &mut out,
        );
        out
    }

    fn attribute(&mut self, values: &[(ComponentId, usize)], framed: usize) {
        let total: usize = values.iter().map(|&(_, n)| n).sum();
        if total == 0 {
            self.unattributed += framed as f64;
            return;
        }
        for &(component, n) in values {
            let entry = self.components.entry(component).or_insert((0, 0.0));
            entry.0 += n as u64;
            entry.1 += framed as f64 * n as f64 / total as f64;
        }
    }

    /// Decodes an envelope of `kind` from the peer, bounded by the kind's maximum, with
    /// the dictionaries held; counts the outcome.
    pub(crate) fn decode<'a>(
        &mut self,
        kind: MessageKind,
        frame: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let k = kind.index();
        let max_len = self.config.kind(kind).max_len;
        let result = match raw_body(frame, max_len) {
            Some(body) => body,
            None => self.kinds[k]
                .decode
                .decompress(frame, max_len)
                .map(Cow::Owned),
        };
        self.counters[k].record_received(frame, &result);
        result
    }

    /// Decodes the envelope of a stream message of `kind` from the peer, bounded by the
    /// kind's maximum: a delta frame's stream frames (formats 3 and 4) with the link's
    /// stream decoder `streams`, any other frame as [`Compression::decode`] does. Counts the
    /// outcome (a stream frame of a stream started with a dictionary is a dictionary hit).
    pub(crate) fn decode_stream<'a>(
        &mut self,
        kind: MessageKind,
        frame: &'a [u8],
        streams: &mut LinkStreams,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let k = kind.index();
        let format = frame.first().copied().and_then(FrameFormat::from_byte);
        if kind != MessageKind::DeltaFrame || !format.is_some_and(FrameFormat::is_stream) {
            return self.decode(kind, frame);
        }
        if streams.decoder.is_none() {
            streams.decoder = StreamDecoder::new().ok();
        }
        let max_len = self.config.kind(kind).max_len;
        let (result, dictionary) = match &mut streams.decoder {
            Some(decoder) => {
                let result = decoder.decompress(frame, max_len, &self.kinds[k].decode);
                (result, decoder.dictionary().is_some())
            }
            None => (Err(CodecError::Compress("out of memory".into())), false),
        };
        self.counters[k].record_received_with(frame, &result, dictionary);
        result.map(Cow::Owned)
    }

    /// Decodes a control message's envelope (raw only, bounded), borrowing its body.
    pub(crate) fn decode_control(frame: &[u8]) -> Result<Cow<'_, [u8]>, CodecError> {
        raw_body(frame, MAX_CONTROL_BYTES)
            .unwrap_or_else(|| NoCodec.decompress(frame, MAX_CONTROL_BYTES).map(Cow::Owned))
    }

    /// Client: takes in a dictionary from the host; returns its id, to acknowledge, or
    /// `None` when refused (counted).
    pub(crate) fn accept(&mut self, dictionary: fb::Dictionary<'_>) -> Option<u32> {
        let kind = match dictionary.kind() {
            fb::CodecKind::SnapshotChunk => MessageKind::SnapshotChunk,
            fb::CodecKind::DeltaFrame => MessageKind::DeltaFrame,
            fb::CodecKind::Datagram => MessageKind::Datagram,
            _ => {
                // Counted with datagrams: the kind is unknown.
                self.refused[MessageKind::Datagram.index()] += 1;
                return None;
            }
        };
        let k = kind.index();
        let bytes = dictionary.bytes().bytes();
        if dictionary.id() == 0 || bytes.is_empty() || bytes.len() > MAX_DICTIONARY_BYTES {
            self.refused[k] += 1;
            return None;
        }
        let store = &mut self.kinds[k];
        if store.held.contains_key(&dictionary.id()) {
            return Some(dictionary.id());
        }
        while store.held.len() >= MAX_DICTIONARIES_PER_KIND {
            let oldest = *store.held.keys().next().expect("not empty");
            store.remove(oldest);
        }
        match store.insert(Dictionary::new(dictionary.id(), bytes.to_vec())) {
            Ok(()) => Some(dictionary.id()),
            Err(_) => {
                self.refused[k] += 1;
                None
            }
        }
    }

    /// Drops the dictionaries `ids` (any kind); unknown ids are ignored.
    pub(crate) fn drop_dictionaries(&mut self, ids: impl IntoIterator<Item = u32>) {
        for id in ids {
            for store in &mut self.kinds {
                store.remove(id);
            }
        }
    }

    /// Client: forgets every dictionary (a new connection; the host sends them again).
    pub(crate) fn clear_dictionaries(&mut self) {
        self.kinds = Default::default();
    }

    /// Host: the control messages that bring a new peer the newest dictionary of each
    /// kind; marks them sent in `dicts`.
    pub(crate) fn welcome(&self, dicts: &mut PeerDicts, encoder: &mut Encoder) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for kind in MessageKind::ALL {
            let store = &self.kinds[kind.index()];
            if let Some((&id, held)) = store.held.iter().next_back() {
                out.push(control_message(&encoder.dictionary(
                    id,
                    fb_kind(kind),
                    &held.dictionary.bytes,
                )));
                dicts.sent.insert(id);
            }
        }
        out
    }

    /// Host: starts training a dictionary of `kind` from the samples recorded; returns
    /// the id it will have.
    pub(crate) fn train(&mut self, kind: MessageKind) -> Result<u32, TrainError> {
        let choice = self.config.kind(kind).choice;
        let Some(trainer) = &mut self.trainer else {
            return Err(TrainError::NotHost);
        };
        if !matches!(choice, CodecChoice::ZstdDict { .. }) {
            return Err(TrainError::NoDictionaryCodec(kind.name()));
        }
        let k = kind.index();
        if trainer.running[k].is_some() {
            return Err(TrainError::Running(kind.name()));
        }
        let samples = &mut trainer.samples[k];
        if samples.ring.len() < MIN_TRAINING_SAMPLES {
            return Err(TrainError::TooFewSamples {
                kind: kind.name(),
                got: samples.ring.len(),
                need: MIN_TRAINING_SAMPLES,
            });
        }
        let id = trainer.next_id;
        trainer.next_id = trainer.next_id.wrapping_add(1).max(1);
        let recorded: Vec<Vec<u8>> = samples.ring.iter().cloned().collect();
        // zstd wants several times the dictionary's size in samples.
        let size = trainer
            .dictionary_bytes
            .min(samples.bytes / 4)
            .max(MIN_DICTIONARY_BYTES);
        samples.since_training = 0;
        trainer.running[k] = Some(id);
        trainer.jobs.push(TrainingJob {
            kind: k,
            id,
            samples: recorded,
            size,
        });
        Ok(id)
    }

    /// Host: the trainings started since the last call, for the driver to run (see
    /// [`TrainingJob`]) and hand back to [`Compression::finish_training`].
    pub(crate) fn take_training_jobs(&mut self) -> Vec<TrainingJob> {
        self.trainer
            .as_mut()
            .map(|t| std::mem::take(&mut t.jobs))
            .unwrap_or_default()
    }

    /// Host: installs a finished training; returns its kind and id, to send to the peers,
    /// or `None` when it failed (counted).
    pub(crate) fn finish_training(&mut self, done: TrainingDone) -> Option<(MessageKind, u32)> {
        let trainer = self.trainer.as_mut()?;
        let k = done.kind.min(MessageKind::ALL.len() - 1);
        trainer.running[k] = None;
        match done.result {
            Ok(dictionary) if dictionary.bytes.len() <= MAX_DICTIONARY_BYTES => {
                let id = dictionary.id;
                if self.kinds[k].insert(dictionary).is_ok() {
                    trainer.trained[k] += 1;
                    return Some((MessageKind::ALL[k], id));
                }
                trainer.failed[k] += 1;
            }
            _ => trainer.failed[k] += 1,
        }
        None
    }

    /// Host: starts the automatic trainings due: a kind that has no dictionary yet and
    /// recorded `train_after_samples` since its last training started (a failed one is so
    /// retried).
    pub(crate) fn start_due_trainings(&mut self) {
        let Some(trainer) = &self.trainer else {
            return;
        };
        let due: Vec<MessageKind> = MessageKind::ALL
            .into_iter()
            .filter(|kind| {
                let k = kind.index();
                trainer.train_after > 0
                    && trainer.trained[k] == 0
                    && trainer.running[k].is_none()
                    && trainer.samples[k].since_training >= trainer.train_after
            })
            .collect();
        for kind in due {
            // Refusals (too few samples, another codec) wait for more samples.
            let _ = self.train(kind);
        }
    }

    /// Host: the control message announcing dictionary `id` of `kind`.
    pub(crate) fn announce(
        &self,
        kind: MessageKind,
        id: u32,
        encoder: &mut Encoder,
    ) -> Option<Vec<u8>> {
        let held = self.kinds[kind.index()].held.get(&id)?;
        Some(control_message(&encoder.dictionary(
            id,
            fb_kind(kind),
            &held.dictionary.bytes,
        )))
    }

    /// Host: dictionaries to retire now: per kind, every one but the newest once every
    /// peer acknowledged the newest and it was not used for `grace`; and the oldest beyond
    /// [`MAX_DICTIONARIES_PER_KIND`] regardless. Removes them from the host's store.
    pub(crate) fn retire<'a>(
        &mut self,
        peers: impl Iterator<Item = &'a PeerDicts> + Clone,
        now: Instant,
        grace: Duration,
    ) -> Vec<u32> {
        let mut retired = Vec::new();
        for store in &mut self.kinds {
            let Some(&newest) = store.held.keys().next_back() else {
                continue;
            };
            let everyone = peers.clone().all(|p| p.has_acked(newest));
            let mut excess = store.held.len().saturating_sub(MAX_DICTIONARIES_PER_KIND);
            let old: Vec<u32> = store
                .held
                .iter()
                .filter(|(&id, _)| id != newest)
                .filter(|(_, held)| {
                    let forced = excess > 0;
                    excess = excess.saturating_sub(1);
                    forced
                        || (everyone
                            && held
                                .last_used
                                .is_none_or(|at| now.duration_since(at) >= grace))
                })
                .map(|(&id, _)| id)
                .collect();
            for id in old {
                store.remove(id);
                retired.push(id);
            }
        }
        retired
    }

    /// Forgets retired dictionaries in a peer's tracking; returns whether the peer had
    /// been sent any of them (and must be told).
    pub(crate) fn forget_in(dicts: &mut PeerDicts, retired: &[u32]) -> bool {
        let mut told = false;
        for &id in retired {
            told |= dicts.forget(id);
        }
        told
    }

    /// Figures per kind, per component type (named from `registry`), and the wire bytes
    /// of frames without values.
    pub(crate) fn diagnostics(
        &self,
        registry: &Registry,
    ) -> (Vec<KindDiagnostics>, Vec<ComponentWire>, u64) {
        let kinds = MessageKind::ALL
            .iter()
            .map(|&kind| {
                let k = kind.index();
                let trainer = self.trainer.as_ref();
                KindDiagnostics {
                    kind,
                    codec: self.config.kind(kind).choice,
                    counters: self.counters[k],
                    dictionaries: self.kinds[k].held.keys().copied().collect(),
                    samples: trainer.map_or(0, |t| t.samples[k].ring.len() as u64),
                    trained: trainer.map_or(0, |t| t.trained[k]),
                    training_failures: trainer.map_or(0, |t| t.failed[k]),
                    training: trainer.is_some_and(|t| t.running[k].is_some()),
                    dictionaries_refused: self.refused[k],
                }
            })
            .collect();
        let mut components: Vec<ComponentWire> = self
            .components
            .iter()
            .map(|(&component, &(value_bytes, wire))| ComponentWire {
                component,
                name: registry
                    .get(component)
                    .map_or_else(|| format!("#{}", component.0), |d| d.name.clone()),
                value_bytes,
                wire_bytes: wire.round() as u64,
            })
            .collect();
        components.sort_by_key(|c| (registry.position(c.component), c.component));
        (kinds, components, self.unattributed.round() as u64)
    }
}

/// Value bytes per component type of an encoded snapshot chunk (or delta frame).
pub(crate) fn message_values(message: &[u8]) -> ValueBytes {
    let batches = match wire::decode(message) {
        Ok(Message::SnapshotChunk(chunk)) => chunk.batches(),
        Ok(Message::DeltaFrame(frame)) => frame.batches(),
        _ => None,
    };
    batches
        .map(|list| {
            list.iter()
                .map(|b| (ComponentId(b.component()), b.data().len()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::training::Samples;
    use super::*;

    #[test]
    fn stream_messages_are_bounded_by_the_largest_kind_or_control_message() {
        let config = CodecConfig::default();
        assert_eq!(
            max_stream_message(&config),
            crate::wire::MAX_MESSAGE_BYTES + STREAM_MESSAGE_OVERHEAD
        );
        let mut registry = Registry::new();
        registry
            .register("test.Small", crate::Layout::Fixed(8))
            .expect("register");
        let bounded = config.bounded_for(&registry, crate::DEFAULT_MAX_CHUNK_BYTES);
        // Control messages (a dictionary) are the longest then.
        assert_eq!(
            max_stream_message(&bounded),
            MAX_CONTROL_BYTES + STREAM_MESSAGE_OVERHEAD
        );
    }

    #[test]
    fn stream_kinds_and_control_messages() {
        for kind in [
            StreamKind::SnapshotChunk,
            StreamKind::DeltaFrame,
            StreamKind::Control,
        ] {
            assert_eq!(StreamKind::from_byte(kind as u8), Some(kind));
        }
        assert_eq!(StreamKind::from_byte(3), None);
        let control = control_message(b"abc");
        assert_eq!(
            split_stream_message(&control),
            Some((StreamKind::Control, &[0u8, b'a', b'b', b'c'][..]))
        );
        assert_eq!(
            Compression::decode_control(&control[1..]).unwrap(),
            b"abc".to_vec()
        );
        // Control messages are raw: a compressed one is refused.
        assert!(Compression::decode_control(&[1, 3, 0, 0, 0]).is_err());
        assert_eq!(split_stream_message(&[]), None);
        assert_eq!(split_stream_message(&[9, 0]), None);
    }

    #[test]
    fn samples_are_bounded() {
        let mut samples = Samples::default();
        for i in 0..3 * SAMPLES_PER_KIND {
            samples.record(&[i as u8; 100]);
        }
        assert_eq!(samples.ring.len(), SAMPLES_PER_KIND);
        let mut big = Samples::default();
        for _ in 0..200 {
            big.record(&vec![1u8; 1 << 20]);
        }
        assert!(big.bytes <= SAMPLE_BYTES_PER_KIND);
        assert!(big.ring.iter().all(|s| s.len() == SAMPLE_MAX_BYTES));
    }

    /// A client keeps at most `MAX_DICTIONARIES_PER_KIND` dictionaries per kind (oldest
    /// dropped) and refuses empty, id-0 and oversized ones.
    #[test]
    fn a_client_bounds_the_dictionaries_it_accepts() {
        let mut c = Compression::new(CodecConfig::default(), None);
        let mut encoder = Encoder::new();
        let mut offer = |c: &mut Compression, id: u32, kind, len: usize| {
            let message = encoder.dictionary(id, kind, &vec![7u8; len]);
            let Ok(Message::Dictionary(d)) = wire::decode(&message) else {
                panic!("not a dictionary message")
            };
            c.accept(d)
        };
        for id in 1..=6 {
            assert_eq!(offer(&mut c, id, fb::CodecKind::Datagram, 512), Some(id));
        }
        assert_eq!(offer(&mut c, 9, fb::CodecKind::DeltaFrame, 512), Some(9));
        let too_big = MAX_DICTIONARY_BYTES + 1;
        assert_eq!(offer(&mut c, 10, fb::CodecKind::Datagram, too_big), None);
        assert_eq!(offer(&mut c, 0, fb::CodecKind::Datagram, 512), None);
        assert_eq!(offer(&mut c, 11, fb::CodecKind::Datagram, 0), None);
        assert_eq!(offer(&mut c, 12, fb::CodecKind(9), 512), None);
        let (kinds, _, _) = c.diagnostics(&Registry::new());
        let datagrams = &kinds[MessageKind::Datagram.index()];
        assert_eq!(datagrams.dictionaries, [3, 4, 5, 6]);
        assert_eq!(datagrams.dictionaries_refused, 4);
        assert_eq!(kinds[MessageKind::DeltaFrame.index()].dictionaries, [9]);
        c.drop_dictionaries([4, 9, 77]);
        let (kinds, _, _) = c.diagnostics(&Registry::new());
        assert_eq!(kinds[MessageKind::Datagram.index()].dictionaries, [3, 5, 6]);
        assert!(kinds[MessageKind::DeltaFrame.index()]
            .dictionaries
            .is_empty());
    }

    #[test]
    fn frames_are_split_between_components_by_value_bytes() {
        let mut c = Compression::new(CodecConfig::uncompressed(), None);
        let (a, b) = (ComponentId(1), ComponentId(2));
        let dicts = PeerDicts::to_host();
        let mut framed = Vec::new();
        let now = Instant::now();
        c.datagram(
            &[7u8; 99],
            None,
            &[(a, 30), (b, 10)],
            &dicts,
            now,
            &mut framed,
        );
        assert_eq!(framed.len(), 100);
        c.datagram(&[7u8; 9], None, &[], &dicts, now, &mut Vec::new());
        let (kinds, components, unattributed) = c.diagnostics(&Registry::new());
        assert_eq!(unattributed, 10);
        assert_eq!(components.len(), 2);
        assert_eq!(
            (components[0].value_bytes, components[0].wire_bytes),
            (30, 75)
        );
        assert_eq!(
            (components[1].value_bytes, components[1].wire_bytes),
            (10, 25)
        );
        let datagrams = &kinds[MessageKind::Datagram.index()];
        assert_eq!(datagrams.counters.frames_out, 2);
        assert_eq!(datagrams.counters.bytes_out_framed, 110);
    }

    #[test]
    fn a_shared_body_is_compressed_once_per_dictionary_and_counted_per_send() {
        let config = CodecConfig::default();
        assert!(matches!(
            config.datagram.choice,
            CodecChoice::ZstdDict { .. }
        ));
        let mut c = Compression::new(config, Some((0, MIN_DICTIONARY_BYTES)));
        let a = ComponentId(1);
        let body: Vec<u8> = (0..600u32).map(|i| (i % 7) as u8).collect();
        let now = Instant::now();
        let frame = FrameId { epoch: 1, index: 0 };
        let send = |c: &mut Compression, frame, dicts: &PeerDicts, out: &mut Vec<u8>| {
            out.clear();
            out.extend_from_slice(b"header");
            c.datagram(&body, frame, &[(a, 600)], dicts, now, out);
        };
        let samples = |c: &Compression| {
            c.trainer.as_ref().map_or(0, |t| {
                t.samples[MessageKind::Datagram.index()].since_training
            })
        };
        // Three peers without a dictionary: one compression, three sends.
        let plain = PeerDicts::default();
        let mut first = Vec::new();
        send(&mut c, Some(frame), &plain, &mut first);
        for _ in 0..2 {
            let mut again = Vec::new();
            send(&mut c, Some(frame), &plain, &mut again);
            assert_eq!(again, first, "the same envelope after each header");
        }
        assert_eq!(c.envelopes_shared(), 2);
        let held = |c: &Compression| {
            c.trainer
                .as_ref()
                .map_or(0, |t| t.samples[MessageKind::Datagram.index()].ring.len())
        };
        assert_eq!(held(&c), 1, "one sample of a shared body");
        assert_eq!(samples(&c), 3, "each send counts towards training");
        let counters = c.counters[MessageKind::Datagram.index()];
        assert_eq!(counters.frames_out, 3);
        assert_eq!(counters.bytes_in_uncompressed, 3 * 600);
        assert_eq!(counters.bytes_out_framed, 3 * (first.len() as u64 - 6));
        // Another body, or the same one in a later epoch, is compressed again.
        let mut other = Vec::new();
        send(
            &mut c,
            Some(FrameId { epoch: 1, index: 1 }),
            &plain,
            &mut other,
        );
        send(
            &mut c,
            Some(FrameId { epoch: 2, index: 0 }),
            &plain,
            &mut other,
        );
        send(&mut c, None, &plain, &mut other);
        assert_eq!(c.envelopes_shared(), 2);
        assert_eq!((held(&c), samples(&c)), (4, 6));
        // Peers holding a dictionary get an envelope of their own, shared among them.
        let message = Encoder::new().dictionary(1, fb::CodecKind::Datagram, &body);
        let Ok(Message::Dictionary(d)) = wire::decode(&message) else {
            panic!("not a dictionary message")
        };
        assert_eq!(c.accept(d), Some(1));
        let frame = FrameId { epoch: 2, index: 1 };
        let (holds, mut with, mut again) = (PeerDicts::to_host(), Vec::new(), Vec::new());
        send(&mut c, Some(frame), &plain, &mut other);
        send(&mut c, Some(frame), &holds, &mut with);
        send(&mut c, Some(frame), &holds, &mut again);
        assert_eq!(with[6], FrameFormat::ZstdDict as u8);
        assert_ne!(other, with);
        assert_eq!(again, with);
        assert_eq!(c.envelopes_shared(), 3);
    }
}
