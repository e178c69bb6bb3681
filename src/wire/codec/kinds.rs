//! The kinds of message a session compresses, the codec and decoding bound of each, the
//! bounds a session sizes to what it really sends, and the counters kept per kind.

use super::{CodecError, FrameFormat, MAX_DATAGRAM_BYTES};
use crate::registry::{Registry, MAX_NAME_BYTES};
use crate::wire::{size, MAX_MESSAGE_BYTES};

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
    /// stream per connection ([`StreamEncoder`](super::StreamEncoder)), the dictionary loaded at the stream's
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
    /// stream started with: [`StreamEncoder::dictionary`](super::StreamEncoder::dictionary)).
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
    pub fn record_received<T: AsRef<[u8]>>(
        &mut self,
        frame: &[u8],
        result: &Result<T, CodecError>,
    ) {
        let with_dictionary = frame.first() == Some(&(FrameFormat::ZstdDict as u8));
        self.record_received_with(frame, result, with_dictionary);
    }

    /// Counts a received frame as [`CodecCounters::record_received`], `with_dictionary`
    /// telling whether it was made with a dictionary (a stream frame's is the one its
    /// stream started with: [`StreamDecoder::dictionary`](super::StreamDecoder::dictionary)).
    pub fn record_received_with<T: AsRef<[u8]>>(
        &mut self,
        frame: &[u8],
        result: &Result<T, CodecError>,
        with_dictionary: bool,
    ) {
        self.record_decode(result);
        self.bytes_received_framed += frame.len() as u64;
        if let Ok(message) = result {
            self.bytes_received_uncompressed += message.as_ref().len() as u64;
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
