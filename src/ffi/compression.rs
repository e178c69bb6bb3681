//! Compression calls of a session: training a dictionary on demand, and the figures per
//! message kind and per component type (see `net::compression`).

use super::boundary::{boundary, FfiError, FfiResult};
use super::session::{with_session, ThetaSession};
use super::{check_out, write_optional, write_out, ThetaStatus};
use crate::net::compression::{ComponentWire, KindDiagnostics};
use crate::wire::codec::{CodecChoice, MessageKind};

/// The kinds of message a codec is chosen for, as the `kind` argument of the compression
/// calls takes them (a `uint8_t`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaMessageKind {
    /// Snapshot chunks (reliable stream).
    SnapshotChunk = 0,
    /// Delta frames (reliable stream: values too large for a datagram).
    DeltaFrame = 1,
    /// State datagrams.
    Datagram = 2,
}

/// The codec a message kind is sent with, as the `*_codec` fields of `ThetaSessionConfig`
/// take it (a `uint8_t`). 0 keeps the kind's default, so a zeroed config is the default
/// one.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaCodec {
    /// The kind's default: zstd level 3 for snapshot chunks, zstd level 1 with the
    /// session's dictionary for delta frames and datagrams.
    Default = 0,
    /// No compression: raw frames (one envelope byte more than the message).
    None = 1,
    /// zstd without dictionary.
    Zstd = 2,
    /// zstd with the session's newest dictionary of the kind (plain zstd until one is
    /// trained); the only codec `theta_session_train_dictionary` accepts.
    ZstdDict = 3,
}

/// The codec of one message kind from its `ThetaCodec` byte and level (0: the default
/// level), starting from the kind's default `choice`.
pub(super) fn codec_in(
    kind: MessageKind,
    codec: u8,
    level: i32,
    default: CodecChoice,
) -> FfiResult<CodecChoice> {
    let name = kind.name();
    let levels = zstd::compression_level_range();
    if !levels.contains(&level) {
        return Err(FfiError::new(
            ThetaStatus::InvalidArgument,
            format!(
                "{name} level {level} is outside zstd's range {}..={} (0: the default level)",
                levels.start(),
                levels.end()
            ),
        ));
    }
    let default_level = match default {
        CodecChoice::Zstd { level } | CodecChoice::ZstdDict { level } => level,
        CodecChoice::None => 3,
    };
    let level = if level == 0 { default_level } else { level };
    Ok(match codec {
        c if c == ThetaCodec::Default as u8 => match default {
            CodecChoice::None => CodecChoice::None,
            CodecChoice::Zstd { .. } => CodecChoice::Zstd { level },
            CodecChoice::ZstdDict { .. } => CodecChoice::ZstdDict { level },
        },
        c if c == ThetaCodec::None as u8 => CodecChoice::None,
        c if c == ThetaCodec::Zstd as u8 => CodecChoice::Zstd { level },
        c if c == ThetaCodec::ZstdDict as u8 => CodecChoice::ZstdDict { level },
        _ => {
            return Err(FfiError::new(
                ThetaStatus::InvalidArgument,
                format!("{name} codec {codec} is not a ThetaCodec (0..=3)"),
            ))
        }
    })
}

/// Compression figures of one message kind of a session. Blittable. Ratios are left to
/// the caller: `bytes_framed / bytes_uncompressed` is the compression ratio,
/// `frames_with_dictionary / frames_sent` the dictionary hit rate.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaCompressionStats {
    /// The `ThetaMessageKind`.
    pub kind: u8,
    /// 1 while the host trains a dictionary of this kind, else 0.
    pub training: u8,
    /// Padding; 0.
    pub reserved: [u8; 2],
    /// Dictionaries of this kind held (host: trained and not retired; client: received).
    pub dictionaries_held: u32,
    /// Id of the newest of them; 0 when none.
    pub newest_dictionary: u32,
    /// Padding; 0.
    pub reserved2: u32,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames sent compressed (smaller than raw).
    pub frames_compressed: u64,
    /// Frames sent compressed with a dictionary.
    pub frames_with_dictionary: u64,
    /// Message bytes of the frames sent, before the envelope.
    pub bytes_uncompressed: u64,
    /// Bytes of the frames sent, envelope included.
    pub bytes_framed: u64,
    /// Frames received and decoded.
    pub frames_received: u64,
    /// Frames received that had been compressed with a dictionary.
    pub frames_received_with_dictionary: u64,
    /// Bytes of the frames received (decoded or not).
    pub bytes_received_framed: u64,
    /// Message bytes the frames received decoded to.
    pub bytes_received_uncompressed: u64,
    /// Frames refused for declaring or expanding past the kind's maximum size.
    pub decode_oversized: u64,
    /// Frames refused for naming a dictionary not held.
    pub decode_unknown_dictionary: u64,
    /// Frames refused as truncated, garbage or corrupt.
    pub decode_malformed: u64,
    /// Samples recorded for training (host).
    pub samples: u64,
    /// Dictionaries trained (host).
    pub dictionaries_trained: u64,
    /// Trainings that failed (host).
    pub training_failures: u64,
    /// Dictionaries from the host refused as too large or malformed (client).
    pub dictionaries_refused: u64,
}

/// What the values of one component type cost on the wire, on the sending side. Blittable.
/// Each frame sent is split between the component types it carries in proportion to their
/// value bytes in it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaComponentWireStats {
    /// The component type.
    pub component: u32,
    /// Padding; 0.
    pub reserved: u32,
    /// Value bytes sent (uncompressed, every sending counted).
    pub value_bytes: u64,
    /// Wire bytes (after the codec envelope) of the frames that carried them, split by
    /// value bytes.
    pub wire_bytes: u64,
}

fn kind_in(kind: u8) -> FfiResult<MessageKind> {
    MessageKind::from_index(usize::from(kind)).ok_or_else(|| {
        FfiError::new(
            ThetaStatus::InvalidArgument,
            format!("message kind {kind} is not a ThetaMessageKind (0..=2)"),
        )
    })
}

fn kind_stats(k: &KindDiagnostics) -> ThetaCompressionStats {
    let c = &k.counters;
    ThetaCompressionStats {
        kind: k.kind.index() as u8,
        training: u8::from(k.training),
        reserved: [0; 2],
        dictionaries_held: k.dictionaries.len() as u32,
        newest_dictionary: k.newest_dictionary().unwrap_or(0),
        reserved2: 0,
        frames_sent: c.frames_out,
        frames_compressed: c.compressed_out,
        frames_with_dictionary: c.dictionary_out,
        bytes_uncompressed: c.bytes_in_uncompressed,
        bytes_framed: c.bytes_out_framed,
        frames_received: c.frames_in,
        frames_received_with_dictionary: c.dictionary_in,
        bytes_received_framed: c.bytes_received_framed,
        bytes_received_uncompressed: c.bytes_received_uncompressed,
        decode_oversized: c.oversized,
        decode_unknown_dictionary: c.unknown_dictionary,
        decode_malformed: c.malformed,
        samples: k.samples,
        dictionaries_trained: k.trained,
        training_failures: k.training_failures,
        dictionaries_refused: k.dictionaries_refused,
    }
}

fn component_stats(c: &ComponentWire) -> ThetaComponentWireStats {
    ThetaComponentWireStats {
        component: c.component.0,
        reserved: 0,
        value_bytes: c.value_bytes,
        wire_bytes: c.wire_bytes,
    }
}

/// Host: starts training a compression dictionary for message `kind` (a
/// `ThetaMessageKind`) from the messages of that kind the host recorded, on the session's
/// own threads: this call does not wait for it. A later `theta_session_tick` installs the
/// dictionary and sends it to the clients, which use it once they acknowledged it;
/// `theta_session_compression_stats` shows it (`newest_dictionary`). Writes the id the
/// dictionary will have to `out_id` (may be NULL).
///
/// `THETA_STATUS_INVALID_ARGUMENT` on a client, for a kind not configured for a
/// dictionary (snapshot chunks by default), while a training of that kind runs, or with
/// too few samples recorded yet (at least 8). A training that fails later is counted
/// (`training_failures`).
///
/// # Safety
/// `out_id` must be NULL or point to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_train_dictionary(
    session: ThetaSession,
    kind: u8,
    out_id: *mut u32,
) -> ThetaStatus {
    boundary("theta_session_train_dictionary", || {
        let kind = kind_in(kind)?;
        let id = with_session(session, |s| Ok(s.train_dictionary(kind)?))?;
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_id, id) };
        Ok(())
    })
}

/// Writes the compression figures of message `kind` (a `ThetaMessageKind`) of the
/// session: frames and bytes sent and received, dictionary use, decode failures by cause,
/// dictionaries held and trained.
///
/// # Safety
/// `out_stats` must point to a writable `ThetaCompressionStats`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_compression_stats(
    session: ThetaSession,
    kind: u8,
    out_stats: *mut ThetaCompressionStats,
) -> ThetaStatus {
    boundary("theta_session_compression_stats", || {
        check_out(out_stats, "out_stats")?;
        let kind = kind_in(kind)?;
        let stats = with_session(session, |s| {
            let d = s.diagnostics();
            d.compression
                .get(kind.index())
                .map(kind_stats)
                .ok_or_else(|| FfiError::new(ThetaStatus::NotFound, "no figures of this kind"))
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_stats, stats) };
        Ok(())
    })
}

/// Writes, per component type this session sent values of (in registry order), the value
/// bytes sent and the wire bytes they cost to `out_stats`, and their number to
/// `out_count`. When `capacity` is too small, returns `THETA_STATUS_BUFFER_TOO_SMALL`
/// with the number in `out_count` (the one output written on that status): pass NULL and
/// 0 to ask for it.
///
/// # Safety
/// `out_stats` must point to `capacity` writable `ThetaComponentWireStats` (may be NULL
/// when `capacity` is 0); `out_count` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_component_stats(
    session: ThetaSession,
    out_stats: *mut ThetaComponentWireStats,
    capacity: usize,
    out_count: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_component_stats", || {
        check_out(out_count, "out_count")?;
        if capacity > 0 && out_stats.is_null() {
            return Err(FfiError::null("out_stats"));
        }
        let components = with_session(session, |s| Ok(s.diagnostics().component_wire))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_count, components.len()) };
        if components.len() > capacity {
            return Err(FfiError::new(
                ThetaStatus::BufferTooSmall,
                format!("{} component types, room for {capacity}", components.len()),
            ));
        }
        for (i, c) in components.iter().enumerate() {
            // SAFETY: `i < components.len() <= capacity` and the caller gives `capacity`
            // writable structs (non-NULL since capacity > 0 here).
            unsafe { out_stats.add(i).write(component_stats(c)) };
        }
        Ok(())
    })
}
