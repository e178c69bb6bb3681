//! Interest management through the C ABI: where entities are and which scopes they carry
//! (host), what each client sees (the client itself, or the host's engine), priority
//! weights, and the host's view of who sees what (see `net::session::interest`; the rules
//! are the protocol's, in `proto::host::interest`).
//!
//! Arrays cross as `(pointer, count)`, bounded before they are read; volumes are checked
//! here one by one so a refusal names the volume at fault. Nothing changes on a refusal.

use super::boundary::{boundary, FfiError, FfiResult};
use super::ownership::need_role;
use super::session::{with_session, ThetaSession};
use super::{check_out, write_out, ThetaStatus};
use crate::interest::{Volume, MAX_SCOPES, MAX_VOLUMES};
use crate::net::session::Session;
use crate::proto::priority::{MAX_PRIORITY_WEIGHT, MIN_PRIORITY_WEIGHT};
use crate::registry::ComponentId;
use crate::world::{EntityId, PeerId};

/// `ThetaInterestVolume::kind` of a sphere: `a` is the centre, `inner` the radius within
/// which entities become relevant, `outer` (>= `inner`) the radius within which they stay
/// so; `b` is ignored.
pub const THETA_INTEREST_VOLUME_SPHERE: u32 = 0;
/// `ThetaInterestVolume::kind` of an axis-aligned box: `a` is its lowest corner, `b` its
/// highest (`a <= b` on every axis), `outer` (>= 0) the margin around it within which
/// relevant entities stay so; `inner` is ignored.
pub const THETA_INTEREST_VOLUME_BOX: u32 = 1;
/// Most volumes of one client (`theta_session_set_interest`,
/// `theta_session_set_client_interest`).
pub const THETA_MAX_INTEREST_VOLUMES: usize = 8;
/// Most scopes of one entity, and most scopes one client subscribes to.
pub const THETA_MAX_INTEREST_SCOPES: usize = 64;
/// The lightest priority weight `theta_session_set_priority` takes.
pub const THETA_MIN_PRIORITY_WEIGHT: f32 = 0.01;
/// The heaviest priority weight `theta_session_set_priority` takes.
pub const THETA_MAX_PRIORITY_WEIGHT: f32 = 100.0;

const _: () = assert!(THETA_MAX_INTEREST_VOLUMES == MAX_VOLUMES);
const _: () = assert!(THETA_MAX_INTEREST_SCOPES == MAX_SCOPES);
const _: () = assert!(THETA_MIN_PRIORITY_WEIGHT == MIN_PRIORITY_WEIGHT);
const _: () = assert!(THETA_MAX_PRIORITY_WEIGHT == MAX_PRIORITY_WEIGHT);

/// A region a client is interested in (metres, in the engine's world space): entities
/// inside it become relevant to the client, and stay so until they leave its outer bound
/// (hysteresis, so an entity at the edge does not flap). See
/// `THETA_INTEREST_VOLUME_SPHERE` and `THETA_INTEREST_VOLUME_BOX` for what each field
/// means per kind. Blittable: 36 bytes, 4-byte aligned, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThetaInterestVolume {
    /// `THETA_INTEREST_VOLUME_SPHERE` or `THETA_INTEREST_VOLUME_BOX`.
    pub kind: u32,
    /// Sphere: the centre. Box: the lowest corner.
    pub a: [f32; 3],
    /// Box: the highest corner. Sphere: ignored.
    pub b: [f32; 3],
    /// Sphere: the radius within which entities become relevant. Box: ignored.
    pub inner: f32,
    /// Sphere: the radius within which they stay relevant (>= `inner`). Box: the margin
    /// around the box within which they stay relevant (>= 0).
    pub outer: f32,
}

const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<ThetaInterestVolume>() == 36);
    assert!(align_of::<ThetaInterestVolume>() == 4);
    assert!(offset_of!(ThetaInterestVolume, a) == 4);
    assert!(offset_of!(ThetaInterestVolume, b) == 16);
    assert!(offset_of!(ThetaInterestVolume, inner) == 28);
    assert!(offset_of!(ThetaInterestVolume, outer) == 32);
};

impl ThetaInterestVolume {
    /// The volume this describes, checked (`index` names it in a refusal).
    fn to_volume(self, index: usize) -> FfiResult<Volume> {
        let volume = match self.kind {
            THETA_INTEREST_VOLUME_SPHERE => Volume::Sphere {
                center: self.a,
                radius: self.inner,
                outer: self.outer,
            },
            THETA_INTEREST_VOLUME_BOX => Volume::Box {
                min: self.a,
                max: self.b,
                margin: self.outer,
            },
            kind => {
                return Err(invalid(format!(
                    "volumes[{index}].kind {kind} is neither THETA_INTEREST_VOLUME_SPHERE (0) nor \
                     THETA_INTEREST_VOLUME_BOX (1)"
                )))
            }
        };
        volume
            .validate()
            .map_err(|e| invalid(format!("volumes[{index}]: {e}")))?;
        Ok(volume)
    }
}

fn invalid(message: impl Into<String>) -> FfiError {
    FfiError::new(ThetaStatus::InvalidArgument, message)
}

/// Borrows `count` values at `ptr`: NULL is accepted only when `count` is 0, and `count`
/// must not pass `max` (checked before anything is read).
///
/// # Safety
/// `ptr` must be NULL or valid for reads of `count` values of `T` for the call.
unsafe fn array_in<'a, T>(
    ptr: *const T,
    count: usize,
    max: usize,
    what: &str,
) -> FfiResult<&'a [T]> {
    if count == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    if count > max {
        return Err(invalid(format!("{what}: {count} given, at most {max}")));
    }
    if !ptr.is_aligned() {
        return Err(invalid(format!("{what} is not aligned for its type")));
    }
    // SAFETY: non-NULL, aligned, `count` (bounded) values readable per the caller.
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// The checked volumes of a `(volumes, count)` pair.
///
/// # Safety
/// As [`array_in`].
unsafe fn volumes_in(volumes: *const ThetaInterestVolume, count: usize) -> FfiResult<Vec<Volume>> {
    // SAFETY: forwarded contract.
    let given = unsafe { array_in(volumes, count, MAX_VOLUMES, "volumes") }?;
    given
        .iter()
        .enumerate()
        .map(|(i, v)| v.to_volume(i))
        .collect()
}

/// Fails with `THETA_STATUS_DEAD_ENTITY` unless `entity` is alive in this session's world.
fn alive(session: &Session, entity: u64) -> FfiResult<EntityId> {
    let entity = EntityId(entity);
    if !session.world().is_alive(entity) {
        return Err(FfiError::new(
            ThetaStatus::DeadEntity,
            format!("entity {entity} is not alive here"),
        ));
    }
    Ok(entity)
}

/// Fails with `THETA_STATUS_INVALID_ARGUMENT` when `peer` is the host's own id: a host
/// has no interest of its own (it holds the whole world).
fn client_peer(session: &Session, peer: u16) -> FfiResult<PeerId> {
    if session.peer() == Some(peer) {
        return Err(invalid(format!(
            "peer {peer} is the host's own id: interest is a client's"
        )));
    }
    Ok(peer)
}

/// Host: places `entity` for interest management at `position` (3 floats, metres), or
/// takes its position away with NULL (with no scope either, every client then sees it).
/// An entity with neither position nor scope is global. Use this for entities whose
/// position is not in a component, or `theta_session_set_interest_source` to have the
/// host read every entity's position from one. `THETA_STATUS_WRONG_ROLE` on a client;
/// `THETA_STATUS_INTEREST_OFF` on a host without `ThetaSessionConfig::interest_cell`;
/// `THETA_STATUS_DEAD_ENTITY` for an entity not alive; `THETA_STATUS_INVALID_ARGUMENT`
/// for a coordinate that is not a finite number.
///
/// # Safety
/// `position` must be NULL or point to 3 readable floats.
#[no_mangle]
pub unsafe extern "C" fn theta_session_set_interest_position(
    session: ThetaSession,
    entity: u64,
    position: *const f32,
) -> ThetaStatus {
    boundary("theta_session_set_interest_position", || {
        // SAFETY: NULL or 3 readable floats per the contract; read unaligned, as a C array
        // of floats need not be aligned for `[f32; 3]` beyond a float's own alignment.
        let position =
            (!position.is_null()).then(|| unsafe { position.cast::<[f32; 3]>().read_unaligned() });
        with_session(session, |s| {
            need_role(s, true)?;
            Ok(s.set_interest_position(EntityId(entity), position)?)
        })
    })
}

/// Host: reads every entity's interest position from its value of `component`: three
/// little-endian floats (x, y, z, metres) at byte `offset`, followed as the values change
/// (an entity without the component, or with a value too short or not finite there,
/// keeps the position it had). Replaces any earlier source. `THETA_STATUS_WRONG_ROLE` on
/// a client; `THETA_STATUS_UNKNOWN_COMPONENT` for a component not registered;
/// `THETA_STATUS_INTEREST_OFF` on a host without `ThetaSessionConfig::interest_cell`;
/// `THETA_STATUS_INVALID_ARGUMENT` when 12 bytes at `offset` do not fit in the component.
#[no_mangle]
pub extern "C" fn theta_session_set_interest_source(
    session: ThetaSession,
    component: u32,
    offset: u32,
) -> ThetaStatus {
    boundary("theta_session_set_interest_source", || {
        with_session(session, |s| {
            need_role(s, true)?;
            let component = ComponentId(component);
            if s.world().registry().get(component).is_none() {
                return Err(FfiError::new(
                    ThetaStatus::UnknownComponent,
                    format!("component {component} is not registered"),
                ));
            }
            Ok(s.set_interest_source(component, offset as usize)?)
        })
    })
}

/// Host: sets the scopes (`count` ids: a room, a tool, a team) `entity` belongs to,
/// replacing its earlier ones (0 of them: none). Clients subscribed to one of them see it
/// wherever it is. At most `THETA_MAX_INTEREST_SCOPES`. `THETA_STATUS_WRONG_ROLE` on a
/// client; `THETA_STATUS_INTEREST_OFF` on a host without
/// `ThetaSessionConfig::interest_cell`; `THETA_STATUS_DEAD_ENTITY` for an entity not
/// alive; `THETA_STATUS_INVALID_ARGUMENT` for too many scopes.
///
/// # Safety
/// `scopes` must point to `count` readable `uint32_t` (may be NULL when `count` is 0).
#[no_mangle]
pub unsafe extern "C" fn theta_session_set_interest_scopes(
    session: ThetaSession,
    entity: u64,
    scopes: *const u32,
    count: usize,
) -> ThetaStatus {
    boundary("theta_session_set_interest_scopes", || {
        // SAFETY: per the contract.
        let scopes = unsafe { array_in(scopes, count, MAX_SCOPES, "scopes") }?;
        with_session(session, |s| {
            need_role(s, true)?;
            Ok(s.set_interest_scopes(EntityId(entity), scopes)?)
        })
    })
}

/// Host: sets what client `peer` sees: `volume_count` volumes and `scope_count`
/// subscribed scopes, replacing what it saw before (until the client wishes something
/// new with `theta_session_set_interest`, unless the host's config sets
/// `interest_host_only`). `peer` need not have joined yet: its snapshot is then filtered
/// by this. Takes effect at the next tick: entities entering its interest arrive whole,
/// those leaving give it a `LEFT` event. `THETA_STATUS_WRONG_ROLE` on a client;
/// `THETA_STATUS_INTEREST_OFF` on a host without `ThetaSessionConfig::interest_cell`;
/// `THETA_STATUS_INVALID_ARGUMENT` for the host's own peer id, more than
/// `THETA_MAX_INTEREST_VOLUMES` volumes or `THETA_MAX_INTEREST_SCOPES` scopes, or a volume
/// of an unknown kind or with numbers that are not finite, a negative size, an outer
/// bound below its inner one, or a box's corners swapped.
///
/// # Safety
/// `volumes` must point to `volume_count` readable `ThetaInterestVolume`, `scopes` to
/// `scope_count` readable `uint32_t` (either may be NULL when its count is 0).
#[no_mangle]
pub unsafe extern "C" fn theta_session_set_client_interest(
    session: ThetaSession,
    peer: u16,
    volumes: *const ThetaInterestVolume,
    volume_count: usize,
    scopes: *const u32,
    scope_count: usize,
) -> ThetaStatus {
    boundary("theta_session_set_client_interest", || {
        // SAFETY: per the contract.
        let volumes = unsafe { volumes_in(volumes, volume_count) }?;
        // SAFETY: per the contract.
        let scopes = unsafe { array_in(scopes, scope_count, MAX_SCOPES, "scopes") }?;
        with_session(session, |s| {
            need_role(s, true)?;
            let peer = client_peer(s, peer)?;
            Ok(s.set_client_interest(peer, &volumes, scopes)?)
        })
    })
}

/// Client: says what this client wants to see: `volume_count` volumes (usually a sphere
/// around the head, updated every frame) and `scope_count` subscribed scopes, replacing
/// the previous wish. Sent to the host when it changed, at a bounded rate (at most every
/// 50 ms), and again after a reconnection; it has an effect when the host manages interest and lets its
/// clients decide (not `interest_host_only`). Entities entering the interest arrive
/// whole; those leaving it give a `LEFT` event and leave this client's world (they are
/// not despawned). `THETA_STATUS_WRONG_ROLE` on a host; `THETA_STATUS_INVALID_ARGUMENT`
/// as for `theta_session_set_client_interest`.
///
/// # Safety
/// As `theta_session_set_client_interest`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_set_interest(
    session: ThetaSession,
    volumes: *const ThetaInterestVolume,
    volume_count: usize,
    scopes: *const u32,
    scope_count: usize,
) -> ThetaStatus {
    boundary("theta_session_set_interest", || {
        // SAFETY: per the contract.
        let volumes = unsafe { volumes_in(volumes, volume_count) }?;
        // SAFETY: per the contract.
        let scopes = unsafe { array_in(scopes, scope_count, MAX_SCOPES, "scopes") }?;
        with_session(session, |s| {
            need_role(s, false)?;
            Ok(s.set_interest(&volumes, scopes)?)
        })
    })
}

/// Sets `entity`'s priority weight among what this peer sends (1 by default, from
/// `THETA_MIN_PRIORITY_WEIGHT` to `THETA_MAX_PRIORITY_WEIGHT`): when a tick's byte budget
/// does not fit every change, heavier and (on a host managing interest) nearer entities go
/// first; far or light ones are sent less often, never starved. Host or client (a client
/// weighs its own writes). `THETA_STATUS_DEAD_ENTITY` for an entity not alive here;
/// `THETA_STATUS_INVALID_ARGUMENT` for a weight outside the range or not a number.
#[no_mangle]
pub extern "C" fn theta_session_set_priority(
    session: ThetaSession,
    entity: u64,
    weight: f32,
) -> ThetaStatus {
    boundary("theta_session_set_priority", || {
        with_session(session, |s| {
            let entity = alive(s, entity)?;
            Ok(s.set_priority(entity, weight)?)
        })
    })
}

/// Host: writes 1 to `out_sees` when client `peer` sees `entity` now (it is global, in a
/// scope the client subscribes to, inside one of its volumes, or owned by it), else 0.
/// Without interest management every client sees everything. A peer that has not joined
/// sees what the host set for it with `theta_session_set_client_interest` (or nothing
/// but the global entities). `THETA_STATUS_WRONG_ROLE` on a client;
/// `THETA_STATUS_DEAD_ENTITY` for an entity not alive; `THETA_STATUS_INVALID_ARGUMENT`
/// for the host's own peer id.
///
/// # Safety
/// `out_sees` must point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_sees(
    session: ThetaSession,
    peer: u16,
    entity: u64,
    out_sees: *mut u8,
) -> ThetaStatus {
    boundary("theta_session_sees", || {
        check_out(out_sees, "out_sees")?;
        let sees = with_session(session, |s| {
            need_role(s, true)?;
            let peer = client_peer(s, peer)?;
            let entity = alive(s, entity)?;
            Ok(s.sees(peer, entity))
        })?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { write_out(out_sees, u8::from(sees)) };
        Ok(())
    })
}

/// Host: writes to `out_hash` the state hash client `peer` holds once the network
/// delivers: the hash of what it sees (`theta_session_sees`). Compare it with the
/// client's `theta_session_state_hash`. `THETA_STATUS_WRONG_ROLE` on a client;
/// `THETA_STATUS_INVALID_ARGUMENT` for the host's own peer id.
///
/// # Safety
/// `out_hash` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_interest_hash(
    session: ThetaSession,
    peer: u16,
    out_hash: *mut u64,
) -> ThetaStatus {
    boundary("theta_session_interest_hash", || {
        check_out(out_hash, "out_hash")?;
        let hash = with_session(session, |s| {
            need_role(s, true)?;
            let peer = client_peer(s, peer)?;
            // A host always has one (`None` is a client's).
            s.interest_hash(peer)
                .ok_or_else(|| FfiError::new(ThetaStatus::WrongRole, "this call needs a host"))
        })?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { write_out(out_hash, hash) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sphere(center: [f32; 3], inner: f32, outer: f32) -> ThetaInterestVolume {
        ThetaInterestVolume {
            kind: THETA_INTEREST_VOLUME_SPHERE,
            a: center,
            inner,
            outer,
            ..ThetaInterestVolume::default()
        }
    }

    #[test]
    fn volumes_convert_per_kind_and_bad_ones_name_their_index() {
        assert_eq!(
            sphere([1.0, 2.0, 3.0], 4.0, 5.0).to_volume(0).unwrap(),
            Volume::Sphere {
                center: [1.0, 2.0, 3.0],
                radius: 4.0,
                outer: 5.0
            }
        );
        let b = ThetaInterestVolume {
            kind: THETA_INTEREST_VOLUME_BOX,
            a: [0.0; 3],
            b: [1.0, 2.0, 3.0],
            inner: 99.0,
            outer: 0.5,
        };
        assert_eq!(
            b.to_volume(0).unwrap(),
            Volume::Box {
                min: [0.0; 3],
                max: [1.0, 2.0, 3.0],
                margin: 0.5
            }
        );
        for (bad, what) in [
            (sphere([f32::NAN, 0.0, 0.0], 1.0, 1.0), "finite"),
            (sphere([0.0; 3], -1.0, 1.0), "radius"),
            (sphere([0.0; 3], 2.0, 1.0), "outer"),
            (
                ThetaInterestVolume {
                    a: [2.0; 3],
                    b: [1.0; 3],
                    ..b
                },
                "min <= max",
            ),
            (ThetaInterestVolume { kind: 2, ..b }, "kind 2"),
        ] {
            let err = bad.to_volume(3).unwrap_err();
            assert_eq!(err.status, ThetaStatus::InvalidArgument);
            assert!(err.message.contains("volumes[3]"), "{}", err.message);
            assert!(err.message.contains(what), "{}", err.message);
        }
    }

    #[test]
    fn arrays_are_bounded_before_they_are_read() {
        let scopes = [1u32, 2, 3];
        // SAFETY: 3 readable values.
        let all = unsafe { array_in(scopes.as_ptr(), 3, 3, "s") }.unwrap();
        assert_eq!(all, &scopes);
        // SAFETY: NULL with a count of 0 is never read.
        let none = unsafe { array_in::<u32>(std::ptr::null(), 0, 3, "s") }.unwrap();
        assert!(none.is_empty());
        // SAFETY: refused before it is read.
        let err = unsafe { array_in::<u32>(std::ptr::null(), 1, 3, "s") }.unwrap_err();
        assert_eq!(err.status, ThetaStatus::NullPointer);
        // SAFETY: refused before it is read (only 3 are there).
        let err = unsafe { array_in(scopes.as_ptr(), 4, 3, "s") }.unwrap_err();
        assert_eq!(err.status, ThetaStatus::InvalidArgument);
        assert!(
            err.message.contains("4 given, at most 3"),
            "{}",
            err.message
        );
    }
}
