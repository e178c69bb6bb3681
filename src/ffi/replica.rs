//! Replica calls: the receiving side, applying what a peer sent and handing events to the
//! engine.

use std::sync::Mutex;

use super::boundary::{boundary, FfiError, FfiResult};
use super::handles::HandleTable;
use super::world::{component_info, copy_value, value_of, ThetaComponentInfo};
use super::{bytes_in, check_out, name_in, write_optional, write_out, ThetaStatus};
use crate::registry::{ComponentId, Layout};
use crate::replica::{Applied, EventKind, Replica, ReplicaError};
use crate::world::EntityId;

/// A replica handle: a local copy of a peer's world. `id` 0 is the null handle.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThetaReplica {
    /// Opaque, validated by the library.
    pub id: u64,
}

/// Kinds of `ThetaEvent` (its `kind` field).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaEventKind {
    /// An entity appeared.
    Spawn = 1,
    /// An entity gained a component; `data` is the value.
    Insert = 2,
    /// A value changed; `data` is the new value.
    Update = 3,
    /// An entity lost a component.
    Remove = 4,
    /// An entity and all its components disappeared.
    Despawn = 5,
}

/// One change the engine should apply to its own objects. Blittable.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThetaEvent {
    /// The entity.
    pub entity: u64,
    /// Tick of the message that caused the event.
    pub tick: u64,
    /// The value for inserts and updates (NULL otherwise or when empty); valid until the
    /// next `theta_replica_poll_events` on this replica or its free.
    pub data: *const u8,
    /// Length of `data`.
    pub data_len: usize,
    /// The component for inserts, updates and removes; 0 otherwise.
    pub component: u32,
    /// A `ThetaEventKind`.
    pub kind: u8,
    /// Padding; 0.
    pub reserved: [u8; 3],
}

/// What `theta_replica_apply*` did, written to its `out_applied` as a `uint8_t`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaApplied {
    /// A snapshot chunk was applied; more chunks of its snapshot are missing.
    SnapshotChunk = 1,
    /// A snapshot chunk was applied and completed its snapshot.
    SnapshotComplete = 2,
    /// The chunk had been applied already: nothing changed.
    DuplicateChunk = 3,
    /// The chunk belongs to an older snapshot: nothing changed.
    StaleChunk = 4,
    /// A delta frame was applied.
    Delta = 5,
    /// The frame is no newer than the last complete snapshot: nothing changed.
    StaleDelta = 6,
}

/// Counters and progress of a replica.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaReplicaStats {
    /// Snapshot chunks applied.
    pub snapshot_chunks: u64,
    /// Chunks ignored as duplicate or stale.
    pub ignored_chunks: u64,
    /// Delta frames applied.
    pub delta_frames: u64,
    /// Frames ignored as stale.
    pub stale_frames: u64,
    /// Messages refused as malformed or inconsistent.
    pub rejected: u64,
    /// Bytes of applied messages.
    pub bytes_applied: u64,
    /// Newest tick applied.
    pub tick: u64,
    /// Tick of the last complete snapshot (0 before one).
    pub snapshot_tick: u64,
    /// Chunks received of the snapshot being assembled (0 when none is).
    pub snapshot_received: u64,
    /// Chunks announced by the snapshot being assembled (0 when none is).
    pub snapshot_total: u64,
    /// Events waiting to be polled.
    pub pending_events: u64,
    /// Live entities.
    pub entities: u64,
    /// Stored values.
    pub components: u64,
}

static REPLICAS: HandleTable<Mutex<Replica>> = HandleTable::new(5);
const KIND: &str = "replica";

/// A message refused by the replica is peer input that failed a check, whatever the
/// check: a descriptor in it that conflicts with a type registered here (another layout,
/// or a name with a colliding id) is as malformed as a truncated buffer, so it is
/// `THETA_STATUS_MALFORMED`. `THETA_STATUS_REGISTRY_CONFLICT` stays for the engine's own
/// registration calls (see the `From<RegistryError>` in `world.rs`).
impl From<ReplicaError> for FfiError {
    fn from(error: ReplicaError) -> Self {
        FfiError::new(ThetaStatus::Malformed, error.to_string())
    }
}

pub(super) fn with_replica<R>(
    replica: ThetaReplica,
    f: impl FnOnce(&mut Replica) -> FfiResult<R>,
) -> FfiResult<R> {
    REPLICAS.with(replica.id, KIND, f)
}

/// Creates an empty replica; it learns component types from the descriptors it receives
/// (register the engine's own types on it first to have conflicts refused). Free it with
/// `theta_replica_free`.
///
/// # Safety
/// `out_replica` must point to a writable `ThetaReplica`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_new(out_replica: *mut ThetaReplica) -> ThetaStatus {
    boundary("theta_replica_new", || {
        check_out(out_replica, "out_replica")?;
        let id = REPLICAS.insert(Mutex::new(Replica::new()));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_replica, ThetaReplica { id }) };
        Ok(())
    })
}

/// Frees a replica, its state and its pending events. The null handle is a no-op.
#[no_mangle]
pub extern "C" fn theta_replica_free(replica: ThetaReplica) -> ThetaStatus {
    boundary("theta_replica_free", || REPLICAS.free(replica.id, KIND))
}

/// Registers one of the engine's component types on the replica (fixed `size` bytes), as
/// `theta_world_register_fixed`.
///
/// # Safety
/// `name` must point to `name_len` bytes of UTF-8; `out_component` to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_register_fixed(
    replica: ThetaReplica,
    name: *const u8,
    name_len: usize,
    size: u32,
    out_component: *mut u32,
) -> ThetaStatus {
    boundary("theta_replica_register_fixed", || {
        // SAFETY: per the contract.
        unsafe { register(replica, name, name_len, Layout::Fixed(size), out_component) }
    })
}

/// Registers one of the engine's component types on the replica (0 to `max_size` bytes),
/// as `theta_world_register_variable`.
///
/// # Safety
/// As `theta_replica_register_fixed`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_register_variable(
    replica: ThetaReplica,
    name: *const u8,
    name_len: usize,
    max_size: u32,
    out_component: *mut u32,
) -> ThetaStatus {
    boundary("theta_replica_register_variable", || {
        // SAFETY: per the contract.
        unsafe {
            register(
                replica,
                name,
                name_len,
                Layout::Variable { max: max_size },
                out_component,
            )
        }
    })
}

/// # Safety
/// As `theta_replica_register_fixed`.
unsafe fn register(
    replica: ThetaReplica,
    name: *const u8,
    name_len: usize,
    layout: Layout,
    out: *mut u32,
) -> FfiResult {
    check_out(out, "out_component")?;
    // SAFETY: per the contract.
    let name = unsafe { name_in(name, name_len) }?;
    let id = with_replica(replica, |r| Ok(r.register(name, layout)?))?;
    // SAFETY: checked non-NULL.
    unsafe { write_out(out, id.0) };
    Ok(())
}

fn applied_code(applied: Applied) -> u8 {
    (match applied {
        Applied::SnapshotChunk { complete: false } => ThetaApplied::SnapshotChunk,
        Applied::SnapshotChunk { complete: true } => ThetaApplied::SnapshotComplete,
        Applied::DuplicateChunk => ThetaApplied::DuplicateChunk,
        Applied::StaleChunk => ThetaApplied::StaleChunk,
        Applied::DeltaFrame => ThetaApplied::Delta,
        Applied::StaleFrame => ThetaApplied::StaleDelta,
    }) as u8
}

/// # Safety
/// `bytes` must point to `len` readable bytes; `out_applied` must be NULL or writable.
unsafe fn apply_with(
    replica: ThetaReplica,
    bytes: *const u8,
    len: usize,
    out_applied: *mut u8,
    apply: fn(&mut Replica, &[u8]) -> Result<Applied, ReplicaError>,
) -> FfiResult {
    // SAFETY: per the contract.
    let message = unsafe { bytes_in(bytes, len, "bytes") }?;
    let applied = with_replica(replica, |r| Ok(apply(r, message)?))?;
    // SAFETY: NULL or writable per the contract.
    unsafe { write_optional(out_applied, applied_code(applied)) };
    Ok(())
}

/// Applies a snapshot chunk or a delta frame, whichever the bytes hold (copied; the caller
/// keeps them). Chunks and frames may come in any order and more than once: per entity and
/// component the newest tick wins. Bytes that fail any check give
/// `THETA_STATUS_MALFORMED` and change nothing, a descriptor that conflicts with a type
/// registered on this replica (another layout, or a colliding id) included: that is peer
/// input, not a registration of the engine's. `out_applied` (may be NULL) receives a
/// `ThetaApplied`.
///
/// # Safety
/// `bytes` must point to `len` readable bytes; `out_applied` must be NULL or point to a
/// writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_apply(
    replica: ThetaReplica,
    bytes: *const u8,
    len: usize,
    out_applied: *mut u8,
) -> ThetaStatus {
    boundary("theta_replica_apply", || {
        // SAFETY: per the contract.
        unsafe { apply_with(replica, bytes, len, out_applied, Replica::apply) }
    })
}

/// As `theta_replica_apply`, but anything other than a snapshot chunk is refused.
///
/// # Safety
/// As `theta_replica_apply`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_apply_snapshot_chunk(
    replica: ThetaReplica,
    bytes: *const u8,
    len: usize,
    out_applied: *mut u8,
) -> ThetaStatus {
    boundary("theta_replica_apply_snapshot_chunk", || {
        // SAFETY: per the contract.
        unsafe {
            apply_with(
                replica,
                bytes,
                len,
                out_applied,
                Replica::apply_snapshot_chunk,
            )
        }
    })
}

/// As `theta_replica_apply`, but anything other than a delta frame is refused.
///
/// # Safety
/// As `theta_replica_apply`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_apply_delta(
    replica: ThetaReplica,
    bytes: *const u8,
    len: usize,
    out_applied: *mut u8,
) -> ThetaStatus {
    boundary("theta_replica_apply_delta", || {
        // SAFETY: per the contract.
        unsafe { apply_with(replica, bytes, len, out_applied, Replica::apply_delta) }
    })
}

/// Completes a snapshot that has no chunk (the sender's world had no entity), taken at
/// `tick`: whatever the replica holds from before that tick is removed, with events. The
/// sender learns the tick from `theta_snapshot_tick`. `out_applied` (may be NULL) receives
/// `THETA_APPLIED_SNAPSHOT_COMPLETE`, or `THETA_APPLIED_STALE_CHUNK` when the replica
/// already completed a snapshot at that tick or later.
///
/// # Safety
/// `out_applied` must be NULL or point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_apply_empty_snapshot(
    replica: ThetaReplica,
    tick: u64,
    out_applied: *mut u8,
) -> ThetaStatus {
    boundary("theta_replica_apply_empty_snapshot", || {
        if tick == 0 {
            return Err(FfiError::new(
                ThetaStatus::InvalidArgument,
                "snapshot tick 0 is invalid",
            ));
        }
        let applied = with_replica(replica, |r| Ok(r.apply_empty_snapshot(tick)))?;
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_applied, applied_code(applied)) };
        Ok(())
    })
}

/// Moves up to `capacity` pending events, oldest first, into `out_events` and writes how
/// many to `out_count`. Event data stays valid until the next poll on this replica or its
/// free. Poll until `out_count` is 0 to drain.
///
/// # Safety
/// `out_events` must point to `capacity` writable `ThetaEvent` (may be NULL when
/// `capacity` is 0); `out_count` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_poll_events(
    replica: ThetaReplica,
    out_events: *mut ThetaEvent,
    capacity: usize,
    out_count: *mut usize,
) -> ThetaStatus {
    boundary("theta_replica_poll_events", || {
        check_out(out_count, "out_count")?;
        if capacity > 0 && out_events.is_null() {
            return Err(FfiError::null("out_events"));
        }
        let count = with_replica(replica, |r| {
            let events = r.poll_events(capacity);
            for (i, event) in events.iter().enumerate() {
                let kind = match event.kind {
                    EventKind::Spawn => ThetaEventKind::Spawn,
                    EventKind::Insert => ThetaEventKind::Insert,
                    EventKind::Update => ThetaEventKind::Update,
                    EventKind::Remove => ThetaEventKind::Remove,
                    EventKind::Despawn => ThetaEventKind::Despawn,
                };
                let out = ThetaEvent {
                    entity: event.entity.0,
                    tick: event.tick,
                    data: if event.data.is_empty() {
                        std::ptr::null()
                    } else {
                        event.data.as_ptr()
                    },
                    data_len: event.data.len(),
                    component: event.component.0,
                    kind: kind as u8,
                    reserved: [0; 3],
                };
                // SAFETY: `i < events.len() <= capacity` and the caller gives `capacity`
                // writable events (non-NULL since capacity > 0 here).
                unsafe { out_events.add(i).write(out) };
            }
            Ok(events.len())
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_count, count) };
        Ok(())
    })
}

/// Copies a replicated value, as `theta_world_get`. Does not modify the replica.
///
/// # Safety
/// As `theta_world_get`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_get(
    replica: ThetaReplica,
    entity: u64,
    component: u32,
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_replica_get", || {
        // SAFETY: per the contract.
        unsafe {
            copy_value(buf, capacity, out_len, || {
                with_replica(replica, |r| value_of(r.world(), entity, component))
            })
        }
    })
}

/// Writes 1 to `out_alive` if the entity is alive on the replica, else 0.
///
/// # Safety
/// `out_alive` must point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_is_alive(
    replica: ThetaReplica,
    entity: u64,
    out_alive: *mut u8,
) -> ThetaStatus {
    boundary("theta_replica_is_alive", || {
        check_out(out_alive, "out_alive")?;
        let alive = with_replica(replica, |r| Ok(r.world().is_alive(EntityId(entity))))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_alive, u8::from(alive)) };
        Ok(())
    })
}

/// Writes the hash of the replicated state; equal to the host world's
/// `theta_world_state_hash` once converged.
///
/// # Safety
/// `out_hash` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_state_hash(
    replica: ThetaReplica,
    out_hash: *mut u64,
) -> ThetaStatus {
    boundary("theta_replica_state_hash", || {
        check_out(out_hash, "out_hash")?;
        let hash = with_replica(replica, |r| Ok(r.state_hash()))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_hash, hash) };
        Ok(())
    })
}

/// Looks up a component type known to the replica by name; `THETA_STATUS_NOT_FOUND` when
/// absent.
///
/// # Safety
/// `name` must point to `name_len` bytes; `out_component` to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_component_id(
    replica: ThetaReplica,
    name: *const u8,
    name_len: usize,
    out_component: *mut u32,
) -> ThetaStatus {
    boundary("theta_replica_component_id", || {
        check_out(out_component, "out_component")?;
        // SAFETY: per the contract.
        let name = unsafe { name_in(name, name_len) }?;
        let id = with_replica(replica, |r| {
            r.world()
                .registry()
                .find(name)
                .map(|d| d.id.0)
                .ok_or_else(|| {
                    FfiError::new(
                        ThetaStatus::NotFound,
                        format!("no component named {name:?}"),
                    )
                })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_component, id) };
        Ok(())
    })
}

/// Describes a component type known to the replica (registered or received); the name
/// stays valid until the replica is freed.
///
/// # Safety
/// `out_info` must point to a writable `ThetaComponentInfo`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_component_info(
    replica: ThetaReplica,
    component: u32,
    out_info: *mut ThetaComponentInfo,
) -> ThetaStatus {
    boundary("theta_replica_component_info", || {
        check_out(out_info, "out_info")?;
        let info = with_replica(replica, |r| {
            r.world()
                .registry()
                .get(ComponentId(component))
                .map(component_info)
                .ok_or_else(|| {
                    FfiError::new(
                        ThetaStatus::UnknownComponent,
                        format!("unknown component {}", ComponentId(component)),
                    )
                })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_info, info) };
        Ok(())
    })
}

/// Writes the replica's counters and snapshot progress.
///
/// # Safety
/// `out_stats` must point to a writable `ThetaReplicaStats`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_stats(
    replica: ThetaReplica,
    out_stats: *mut ThetaReplicaStats,
) -> ThetaStatus {
    boundary("theta_replica_stats", || {
        check_out(out_stats, "out_stats")?;
        let stats = with_replica(replica, |r| {
            let s = r.stats();
            let world = r.world().stats();
            let (received, total) = r.snapshot_progress().unwrap_or((0, 0));
            Ok(ThetaReplicaStats {
                snapshot_chunks: s.snapshot_chunks,
                ignored_chunks: s.ignored_chunks,
                delta_frames: s.delta_frames,
                stale_frames: s.stale_frames,
                rejected: s.rejected,
                bytes_applied: s.bytes_applied,
                tick: r.tick(),
                snapshot_tick: r.snapshot_tick(),
                snapshot_received: u64::from(received),
                snapshot_total: u64::from(total),
                pending_events: r.pending_events() as u64,
                entities: world.entities as u64,
                components: world.components as u64,
            })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_stats, stats) };
        Ok(())
    })
}
