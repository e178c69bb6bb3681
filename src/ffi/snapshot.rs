//! Snapshot, delta and tracker calls: what a host sends.

use std::sync::Mutex;

use super::boundary::{boundary, FfiError, FfiResult};
use super::handles::HandleTable;
use super::world::{ThetaWorld, WORLDS};
use super::{check_out, write_out, ThetaStatus};
use crate::delta::{Delta, DeltaError, DeltaTracker};
use crate::snapshot::{Snapshot, DEFAULT_MAX_CHUNK_BYTES};

/// A snapshot handle: a world's state at one tick, encoded in chunks. `id` 0 is null.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThetaSnapshot {
    /// Opaque, validated by the library.
    pub id: u64,
}

/// An encoded delta frame handle. `id` 0 is null.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThetaDelta {
    /// Opaque, validated by the library.
    pub id: u64,
}

/// A delta tracker handle: consecutive frames for one receiver over an in-order transport.
/// `id` 0 is null.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThetaTracker {
    /// Opaque, validated by the library.
    pub id: u64,
}

/// What an encoded delta holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaDeltaInfo {
    /// The tick the receiver is assumed to hold.
    pub base_tick: u64,
    /// The tick the delta brings the receiver to.
    pub tick: u64,
    /// Inserted or updated values.
    pub changes: u64,
    /// Removed components.
    pub removes: u64,
    /// Created entities.
    pub spawns: u64,
    /// Destroyed entities.
    pub despawns: u64,
    /// Encoded size in bytes.
    pub bytes: u64,
    /// 1 when the delta changes nothing (sending it is optional), else 0.
    pub empty: u8,
    /// Padding; 0.
    pub reserved: [u8; 7],
}

struct EncodedDelta {
    info: ThetaDeltaInfo,
    bytes: Vec<u8>,
}

static SNAPSHOTS: HandleTable<Snapshot> = HandleTable::new(2);
static DELTAS: HandleTable<EncodedDelta> = HandleTable::new(3);
static TRACKERS: HandleTable<Mutex<DeltaTracker>> = HandleTable::new(4);

impl From<DeltaError> for FfiError {
    fn from(error: DeltaError) -> Self {
        let status = match error {
            DeltaError::HistoryTruncated { .. } => ThetaStatus::HistoryTruncated,
            DeltaError::FutureBase { .. } => ThetaStatus::InvalidArgument,
        };
        FfiError::new(status, error.to_string())
    }
}

/// Takes a snapshot of the world's current tick in chunks of at most `max_chunk_bytes`
/// encoded bytes each (0 means the default, 16 KiB); a single value larger than that gets
/// a chunk of its own. The tick is closed: later writes land in the next tick. The
/// snapshot is independent of the world (freeing either leaves the other valid); free it
/// with `theta_snapshot_free`.
///
/// # Safety
/// `out_snapshot` must point to a writable `ThetaSnapshot`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_snapshot(
    world: ThetaWorld,
    max_chunk_bytes: usize,
    out_snapshot: *mut ThetaSnapshot,
) -> ThetaStatus {
    boundary("theta_world_snapshot", || {
        check_out(out_snapshot, "out_snapshot")?;
        let limit = if max_chunk_bytes == 0 {
            DEFAULT_MAX_CHUNK_BYTES
        } else {
            max_chunk_bytes
        };
        let snapshot = WORLDS.with(world.id, "world", |w| Ok(w.snapshot(limit)))?;
        let id = SNAPSHOTS.insert(snapshot);
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_snapshot, ThetaSnapshot { id }) };
        Ok(())
    })
}

/// Frees a snapshot and its chunk bytes. The null handle is a no-op.
#[no_mangle]
pub extern "C" fn theta_snapshot_free(snapshot: ThetaSnapshot) -> ThetaStatus {
    boundary("theta_snapshot_free", || {
        SNAPSHOTS.free(snapshot.id, "snapshot")
    })
}

/// Writes the tick the snapshot was taken at (deltas for its receiver start there).
///
/// # Safety
/// `out_tick` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_snapshot_tick(
    snapshot: ThetaSnapshot,
    out_tick: *mut u64,
) -> ThetaStatus {
    boundary("theta_snapshot_tick", || {
        check_out(out_tick, "out_tick")?;
        let snapshot = SNAPSHOTS.require(snapshot.id, "snapshot")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_tick, snapshot.tick) };
        Ok(())
    })
}

/// Writes the number of chunks. A world without entities gives 0 chunks: send the
/// receiver the snapshot's tick instead, for `theta_replica_apply_empty_snapshot`.
///
/// # Safety
/// `out_count` must point to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_snapshot_chunk_count(
    snapshot: ThetaSnapshot,
    out_count: *mut usize,
) -> ThetaStatus {
    boundary("theta_snapshot_chunk_count", || {
        check_out(out_count, "out_count")?;
        let snapshot = SNAPSHOTS.require(snapshot.id, "snapshot")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_count, snapshot.chunks.len()) };
        Ok(())
    })
}

/// Writes a pointer to chunk `index`'s encoded bytes and their length. The bytes stay valid
/// and unchanged until the snapshot is freed. `THETA_STATUS_INVALID_ARGUMENT` when `index`
/// is not below the chunk count.
///
/// # Safety
/// `out_bytes` must point to a writable `const uint8_t *`; `out_len` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_snapshot_chunk(
    snapshot: ThetaSnapshot,
    index: usize,
    out_bytes: *mut *const u8,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_snapshot_chunk", || {
        check_out(out_bytes, "out_bytes")?;
        check_out(out_len, "out_len")?;
        let snapshot = SNAPSHOTS.require(snapshot.id, "snapshot")?;
        let chunk = snapshot.chunks.get(index).ok_or_else(|| {
            FfiError::new(
                ThetaStatus::InvalidArgument,
                format!(
                    "chunk {index} of a snapshot with {} chunks",
                    snapshot.chunks.len()
                ),
            )
        })?;
        // SAFETY: both checked non-NULL. The bytes live in the table's `Arc` until
        // `theta_snapshot_free`.
        unsafe {
            write_out(out_bytes, chunk.bytes.as_ptr());
            write_out(out_len, chunk.bytes.len());
        }
        Ok(())
    })
}

fn store_delta(delta: &Delta) -> ThetaDelta {
    let bytes = delta.encode();
    let info = ThetaDeltaInfo {
        base_tick: delta.base_tick,
        tick: delta.tick,
        changes: delta.change_count() as u64,
        removes: delta.removals().count() as u64,
        spawns: delta.spawns.len() as u64,
        despawns: delta.despawns.len() as u64,
        bytes: bytes.len() as u64,
        empty: u8::from(delta.is_empty()),
        reserved: [0; 7],
    };
    ThetaDelta {
        id: DELTAS.insert(EncodedDelta { info, bytes }),
    }
}

/// Encodes what changed after `since_tick` up to the current tick, which this closes.
/// Descriptors of every type it carries values of are included, so any receiver can
/// decode it. `since_tick` 0 gives the whole world; a base older than the kept history is
/// `THETA_STATUS_HISTORY_TRUNCATED` (send a snapshot). Free with `theta_delta_free`.
///
/// # Safety
/// `out_delta` must point to a writable `ThetaDelta`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_delta_since(
    world: ThetaWorld,
    since_tick: u64,
    out_delta: *mut ThetaDelta,
) -> ThetaStatus {
    boundary("theta_world_delta_since", || {
        check_out(out_delta, "out_delta")?;
        let delta = WORLDS.with(world.id, "world", |w| Ok(w.delta_since(since_tick)?))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_delta, store_delta(&delta)) };
        Ok(())
    })
}

/// Writes a pointer to the encoded frame and its length; valid until the delta is freed.
///
/// # Safety
/// `out_bytes` must point to a writable `const uint8_t *`; `out_len` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_delta_bytes(
    delta: ThetaDelta,
    out_bytes: *mut *const u8,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_delta_bytes", || {
        check_out(out_bytes, "out_bytes")?;
        check_out(out_len, "out_len")?;
        let delta = DELTAS.require(delta.id, "delta")?;
        // SAFETY: both checked non-NULL; the bytes live until `theta_delta_free`.
        unsafe {
            write_out(out_bytes, delta.bytes.as_ptr());
            write_out(out_len, delta.bytes.len());
        }
        Ok(())
    })
}

/// Describes an encoded delta.
///
/// # Safety
/// `out_info` must point to a writable `ThetaDeltaInfo`.
#[no_mangle]
pub unsafe extern "C" fn theta_delta_info(
    delta: ThetaDelta,
    out_info: *mut ThetaDeltaInfo,
) -> ThetaStatus {
    boundary("theta_delta_info", || {
        check_out(out_info, "out_info")?;
        let delta = DELTAS.require(delta.id, "delta")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_info, delta.info) };
        Ok(())
    })
}

/// Frees an encoded delta. The null handle is a no-op.
#[no_mangle]
pub extern "C" fn theta_delta_free(delta: ThetaDelta) -> ThetaStatus {
    boundary("theta_delta_free", || DELTAS.free(delta.id, "delta"))
}

/// Creates a tracker whose first frame carries the whole world. Each frame covers the
/// ticks since the previous one and describes each component type once: deliver its
/// frames in order, each exactly once (a reliable ordered stream). Free with
/// `theta_tracker_free`.
///
/// # Safety
/// `out_tracker` must point to a writable `ThetaTracker`.
#[no_mangle]
pub unsafe extern "C" fn theta_tracker_new(out_tracker: *mut ThetaTracker) -> ThetaStatus {
    boundary("theta_tracker_new", || {
        check_out(out_tracker, "out_tracker")?;
        let id = TRACKERS.insert(Mutex::new(DeltaTracker::new()));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_tracker, ThetaTracker { id }) };
        Ok(())
    })
}

/// Creates a tracker for a receiver that applied `snapshot`: its first frame covers the
/// ticks after the snapshot's and assumes the snapshot's descriptors are known.
///
/// # Safety
/// `out_tracker` must point to a writable `ThetaTracker`.
#[no_mangle]
pub unsafe extern "C" fn theta_tracker_new_after_snapshot(
    snapshot: ThetaSnapshot,
    out_tracker: *mut ThetaTracker,
) -> ThetaStatus {
    boundary("theta_tracker_new_after_snapshot", || {
        check_out(out_tracker, "out_tracker")?;
        let snapshot = SNAPSHOTS.require(snapshot.id, "snapshot")?;
        let tracker = DeltaTracker::starting_at(snapshot.tick, snapshot.described.iter().copied());
        let id = TRACKERS.insert(Mutex::new(tracker));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_tracker, ThetaTracker { id }) };
        Ok(())
    })
}

/// Encodes the tracker's next frame from `world` (what changed since its previous frame)
/// and closes the world's tick. Empty frames are produced too (`ThetaDeltaInfo.empty`);
/// skipping them is safe. On `THETA_STATUS_HISTORY_TRUNCATED` the receiver needs a new
/// snapshot and a new tracker.
///
/// # Safety
/// `out_delta` must point to a writable `ThetaDelta`.
#[no_mangle]
pub unsafe extern "C" fn theta_tracker_diff(
    tracker: ThetaTracker,
    world: ThetaWorld,
    out_delta: *mut ThetaDelta,
) -> ThetaStatus {
    boundary("theta_tracker_diff", || {
        check_out(out_delta, "out_delta")?;
        let delta = TRACKERS.with(tracker.id, "tracker", |t| {
            WORLDS.with(world.id, "world", |w| -> FfiResult<Delta> {
                Ok(t.diff(w)?)
            })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_delta, store_delta(&delta)) };
        Ok(())
    })
}

/// Frees a tracker. The null handle is a no-op.
#[no_mangle]
pub extern "C" fn theta_tracker_free(tracker: ThetaTracker) -> ThetaStatus {
    boundary("theta_tracker_free", || {
        TRACKERS.free(tracker.id, "tracker")
    })
}
