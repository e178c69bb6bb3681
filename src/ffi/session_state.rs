//! Writes and reads of a session's replicated state: spawn, set (one value or a batch),
//! remove, despawn, get.

use super::boundary::{boundary, FfiError};
use super::session::{with_session, ThetaSession};
use super::world::{copy_value, value_of, ThetaBatchResult, ThetaChange};
use super::{bytes_in, check_out, write_optional, write_out, ThetaStatus};
use crate::registry::{ComponentId, Layout};
use crate::world::{Change, EntityId, WorldError};

/// Creates an entity owned by this peer and writes its id: on the host in the host's id
/// range, on a client in the client's (a client that has not joined yet gets
/// `THETA_STATUS_NOT_OWNER`). It reaches the other peers with the next ticks.
///
/// # Safety
/// `out_entity` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_spawn(
    session: ThetaSession,
    out_entity: *mut u64,
) -> ThetaStatus {
    boundary("theta_session_spawn", || {
        check_out(out_entity, "out_entity")?;
        let entity = with_session(session, |s| Ok(s.spawn()?))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_entity, entity.0) };
        Ok(())
    })
}

/// Writes a component value (`len` bytes, copied) of an entity this peer owns, as
/// `theta_world_set`; an entity of another peer gives `THETA_STATUS_NOT_OWNER`, a value
/// that does not quantise to the component's declared fields
/// `THETA_STATUS_NOT_QUANTISABLE`, and nothing changes. `out_change` (may be NULL)
/// receives a `ThetaChange`.
///
/// # Safety
/// `data` must point to `len` readable bytes (may be NULL when `len` is 0); `out_change`
/// must be NULL or point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_set(
    session: ThetaSession,
    entity: u64,
    component: u32,
    data: *const u8,
    len: usize,
    out_change: *mut u8,
) -> ThetaStatus {
    boundary("theta_session_set", || {
        // SAFETY: per the contract.
        let value = unsafe { bytes_in(data, len, "data") }?;
        let change = with_session(session, |s| {
            Ok(s.set(EntityId(entity), ComponentId(component), value)?)
        })?;
        let change = match change {
            Change::Unchanged => ThetaChange::Unchanged,
            Change::Inserted => ThetaChange::Inserted,
            Change::Updated => ThetaChange::Updated,
        };
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_change, change as u8) };
        Ok(())
    })
}

/// Writes `count` values of a fixed-size component to entities this peer owns in one
/// call, as `theta_world_set_batch` does for a world: value `i`, for `entities[i]`, is the
/// component's size in bytes at `values + i * stride`. All or nothing: the component,
/// stride, every entity and (for declared fields) every value's quantisation are checked
/// first (`THETA_STATUS_NOT_QUANTISABLE`: nothing written), and should a write be refused
/// midway (an entity of another peer: `THETA_STATUS_NOT_OWNER`) the values written before
/// it are put back as they were. `out_result` may be NULL.
///
/// # Safety
/// As `theta_world_set_batch`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_set_batch(
    session: ThetaSession,
    component: u32,
    entities: *const u64,
    values: *const u8,
    stride: usize,
    count: usize,
    out_result: *mut ThetaBatchResult,
) -> ThetaStatus {
    boundary("theta_session_set_batch", || {
        if count > 0 && entities.is_null() {
            return Err(FfiError::null("entities"));
        }
        let result = with_session(session, |s| {
            let component = ComponentId(component);
            let descriptor = s
                .world()
                .registry()
                .get(component)
                .ok_or(WorldError::UnknownComponent(component))?;
            let Layout::Fixed(size) = descriptor.layout else {
                return Err(WorldError::BatchNeedsFixedLayout {
                    name: descriptor.name.clone(),
                }
                .into());
            };
            let size = size as usize;
            if count > 1 && stride < size {
                return Err(WorldError::StrideTooSmall {
                    name: descriptor.name.clone(),
                    stride,
                    size,
                }
                .into());
            }
            let needed = match count {
                0 => 0,
                n => (n - 1)
                    .checked_mul(stride)
                    .and_then(|b| b.checked_add(size))
                    .ok_or_else(|| {
                        FfiError::new(ThetaStatus::InvalidArgument, "count * stride overflows")
                    })?,
            };
            let ids: &[u64] = if count == 0 {
                &[]
            } else {
                // SAFETY: the caller gives `count` entity ids (checked non-NULL above).
                unsafe { std::slice::from_raw_parts(entities, count) }
            };
            // SAFETY: the caller gives `needed` readable bytes at `values`.
            let values = unsafe { bytes_in(values, needed, "values") }?;
            if let Some(&dead) = ids.iter().find(|&&e| !s.world().is_alive(EntityId(e))) {
                return Err(WorldError::DeadEntity(EntityId(dead)).into());
            }
            // Declared fields: every value must quantise before any is written, so such a
            // refusal leaves nothing to put back (and nothing journaled).
            check_quantisable(s, component, values, stride, count, size)?;
            // What each write replaces (fixed-size values, back to back, and whether there
            // was one), to put back should a later write be refused.
            let mut saved: Vec<u8> = Vec::with_capacity(needed.min(count * size));
            let mut had: Vec<bool> = Vec::with_capacity(count);
            let mut result = ThetaBatchResult::default();
            for (i, &entity) in ids.iter().enumerate() {
                let entity = EntityId(entity);
                let value = &values[i * stride..i * stride + size];
                let before = s.world().get(entity, component);
                had.push(before.is_some());
                saved.extend_from_slice(before.unwrap_or(&[]));
                match s.set(entity, component, value) {
                    Ok(Change::Inserted) => result.inserted += 1,
                    Ok(Change::Updated) => result.updated += 1,
                    Ok(Change::Unchanged) => result.unchanged += 1,
                    Err(error) => {
                        had.pop();
                        put_back(s, component, ids, &had, &saved, size);
                        return Err(error.into());
                    }
                }
            }
            Ok(result)
        })?;
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_result, result) };
        Ok(())
    })
}

/// Fails with `NotQuantisable` unless each of the `count` values (`size` bytes every
/// `stride`) quantises to `component`'s declared fields; no fields, no check.
fn check_quantisable(
    s: &crate::net::session::Session,
    component: ComponentId,
    values: &[u8],
    stride: usize,
    count: usize,
    size: usize,
) -> Result<(), WorldError> {
    let registry = s.world().registry();
    let Some(layout) = registry.fields(component) else {
        return Ok(());
    };
    let mut lanes = Vec::with_capacity(layout.lane_count());
    for i in 0..count {
        let value = &values[i * stride..i * stride + size];
        layout
            .lanes_into(value, &mut lanes)
            .map_err(|source| WorldError::NotQuantisable {
                name: registry
                    .get(component)
                    .map(|d| d.name.clone())
                    .unwrap_or_default(),
                source,
            })?;
    }
    Ok(())
}

/// Undoes the first `had.len()` writes of a batch, newest first: each entity gets back
/// the value it had (from `saved`, `size` bytes each for those that had one) or loses the
/// component it did not have. Those writes were accepted, so putting them back is too.
fn put_back(
    s: &mut crate::net::session::Session,
    component: ComponentId,
    ids: &[u64],
    had: &[bool],
    saved: &[u8],
    size: usize,
) {
    let mut end = saved.len();
    for (&entity, &had) in ids[..had.len()].iter().zip(had).rev() {
        let entity = EntityId(entity);
        let _ = if had {
            end -= size;
            s.set(entity, component, &saved[end..end + size]).map(drop)
        } else {
            s.remove(entity, component).map(drop)
        };
    }
}

/// Removes a component from an entity this peer owns (`THETA_STATUS_NOT_OWNER` for
/// another peer's); `out_removed` (may be NULL) receives 1 if the entity held it, else 0.
///
/// # Safety
/// `out_removed` must be NULL or point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_remove(
    session: ThetaSession,
    entity: u64,
    component: u32,
    out_removed: *mut u8,
) -> ThetaStatus {
    boundary("theta_session_remove", || {
        let removed = with_session(session, |s| {
            Ok(s.remove(EntityId(entity), ComponentId(component))?)
        })?;
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_removed, u8::from(removed)) };
        Ok(())
    })
}

/// Destroys an entity this peer owns (`THETA_STATUS_NOT_OWNER` for another peer's,
/// `THETA_STATUS_DEAD_ENTITY` if not alive).
#[no_mangle]
pub extern "C" fn theta_session_despawn(session: ThetaSession, entity: u64) -> ThetaStatus {
    boundary("theta_session_despawn", || {
        with_session(session, |s| Ok(s.despawn(EntityId(entity))?))
    })
}

/// Copies a value of the session's state (any peer's entity), as `theta_world_get`.
///
/// # Safety
/// As `theta_world_get`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_get(
    session: ThetaSession,
    entity: u64,
    component: u32,
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_session_get", || {
        // SAFETY: per the contract.
        unsafe {
            copy_value(buf, capacity, out_len, || {
                with_session(session, |s| value_of(s.world(), entity, component))
            })
        }
    })
}

/// Writes 1 to `out_alive` if the entity is alive in the session's state, else 0.
///
/// # Safety
/// `out_alive` must point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_is_alive(
    session: ThetaSession,
    entity: u64,
    out_alive: *mut u8,
) -> ThetaStatus {
    boundary("theta_session_is_alive", || {
        check_out(out_alive, "out_alive")?;
        let alive = with_session(session, |s| Ok(s.world().is_alive(EntityId(entity))))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_alive, u8::from(alive)) };
        Ok(())
    })
}
