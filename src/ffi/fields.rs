//! Declared fields through the C ABI (issue 18): an engine says what the bytes of a
//! fixed-size component mean (positions, rotations, bounded scalars, integers, flags), so
//! that they are quantised to a stated precision and coded compactly; bytes no field names
//! stay raw and bit-exact. See `crate::fields` for the rules.
//!
//! A `ThetaField` array crosses as `(pointer, count)`, bounded before it is read; each
//! field is checked here so a refusal names the one at fault. Nothing changes on a refusal.

use super::boundary::{boundary, FfiError, FfiResult};
use super::replica::{with_replica, ThetaReplica};
use super::world::{with_world, ThetaWorld};
use super::ThetaStatus;
use crate::fields::{Field, FieldLayout, MAX_FIELDS};
use crate::registry::{ComponentId, Layout, Registry};
use crate::world::WorldError;

/// `ThetaField::kind` of a position: three little-endian floats (x, y, z, metres) at
/// `offset`, each within `precision` millimetres (at least 0.001); at most 2^22 steps of
/// twice the precision from the origin (8.4 km at 1 mm). `min`, `max` and `bytes` are 0.
pub const THETA_FIELD_POSITION: u32 = 0;
/// `ThetaField::kind` of a rotation: a quaternion of four little-endian floats
/// (x, y, z, w) at `offset`, within `precision` degrees (0.001 to 90); it reads back as
/// the same rotation, normalised, its largest component positive. `min`, `max` and
/// `bytes` are 0.
pub const THETA_FIELD_ROTATION: u32 = 1;
/// `ThetaField::kind` of a bounded scalar: one little-endian float at `offset` in
/// `min..=max` (finite, `min <= max`), within `precision` (absolute, positive); `min` and
/// `max` read back exactly. `bytes` is 0.
pub const THETA_FIELD_SCALAR: u32 = 2;
/// `ThetaField::kind` of an integer: `bytes` (1, 2, 4 or 8) little-endian bytes at
/// `offset`, bit-exact. `precision`, `min` and `max` are 0.
pub const THETA_FIELD_INT: u32 = 3;
/// `ThetaField::kind` of bit flags: `bytes` (1, 2, 4 or 8) bytes at `offset`, bit-exact.
/// `precision`, `min` and `max` are 0.
pub const THETA_FIELD_FLAGS: u32 = 4;
/// Most fields one component declares.
pub const THETA_MAX_FIELDS: usize = 64;

const _: () = assert!(THETA_MAX_FIELDS == MAX_FIELDS);

/// One field of a component value, at a byte offset (see `THETA_FIELD_POSITION` and the
/// other kinds for what each member means per kind). Members a kind does not use, and
/// `reserved`, must be 0: a later version may give them a meaning. Blittable: 32 bytes,
/// 4-byte aligned, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThetaField {
    /// `THETA_FIELD_POSITION`, `_ROTATION`, `_SCALAR`, `_INT` or `_FLAGS`.
    pub kind: u32,
    /// Byte offset of the field in the component's value.
    pub offset: u32,
    /// Largest error: millimetres (position), degrees (rotation), absolute (scalar).
    pub precision: f32,
    /// Scalar: the smallest value.
    pub min: f32,
    /// Scalar: the largest value.
    pub max: f32,
    /// Integer and flags: the width, 1, 2, 4 or 8.
    pub bytes: u8,
    /// Reserved; must be 0.
    pub reserved: [u8; 11],
}

const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<ThetaField>() == 32);
    assert!(align_of::<ThetaField>() == 4);
    assert!(offset_of!(ThetaField, offset) == 4);
    assert!(offset_of!(ThetaField, precision) == 8);
    assert!(offset_of!(ThetaField, min) == 12);
    assert!(offset_of!(ThetaField, max) == 16);
    assert!(offset_of!(ThetaField, bytes) == 20);
    assert!(offset_of!(ThetaField, reserved) == 21);
};

fn invalid(message: impl Into<String>) -> FfiError {
    FfiError::new(ThetaStatus::InvalidArgument, message)
}

impl ThetaField {
    /// The field this describes; `index` names it in a refusal. Ranges (precisions,
    /// widths) are checked by the layout.
    fn to_field(self, index: usize) -> FfiResult<Field> {
        let Self {
            kind,
            offset,
            precision,
            min,
            max,
            bytes,
            reserved,
        } = self;
        if reserved != [0; 11] {
            return Err(invalid(format!("fields[{index}].reserved must be 0")));
        }
        // Members the kind does not use must be 0 (compared as bits: -0.0 is not 0).
        let unused = |name: &str, set: bool| {
            if set {
                Err(invalid(format!(
                    "fields[{index}].{name} must be 0 for this kind ({kind})"
                )))
            } else {
                Ok(())
            }
        };
        let no_range = || {
            unused("min", min.to_bits() != 0)?;
            unused("max", max.to_bits() != 0)
        };
        let field = match kind {
            THETA_FIELD_POSITION => {
                no_range()?;
                unused("bytes", bytes != 0)?;
                Field::Position {
                    offset,
                    precision_mm: precision,
                }
            }
            THETA_FIELD_ROTATION => {
                no_range()?;
                unused("bytes", bytes != 0)?;
                Field::Rotation {
                    offset,
                    precision_deg: precision,
                }
            }
            THETA_FIELD_SCALAR => {
                unused("bytes", bytes != 0)?;
                Field::Scalar {
                    offset,
                    min,
                    max,
                    precision,
                }
            }
            THETA_FIELD_INT | THETA_FIELD_FLAGS => {
                no_range()?;
                unused("precision", precision.to_bits() != 0)?;
                if kind == THETA_FIELD_INT {
                    Field::Int { offset, bytes }
                } else {
                    Field::Flags { offset, bytes }
                }
            }
            kind => {
                return Err(invalid(format!(
                    "fields[{index}].kind {kind} is not a THETA_FIELD_* kind (0..=4)"
                )))
            }
        };
        Ok(field)
    }
}

/// The fields at `ptr`, checked one by one: NULL only with `count` 0, `count` at most
/// `THETA_MAX_FIELDS` (checked before anything is read).
///
/// # Safety
/// `ptr` must be NULL or valid for reads of `count` `ThetaField` for the call.
unsafe fn fields_in(ptr: *const ThetaField, count: usize) -> FfiResult<Vec<Field>> {
    if count > THETA_MAX_FIELDS {
        return Err(invalid(format!(
            "{count} fields, at most THETA_MAX_FIELDS ({THETA_MAX_FIELDS})"
        )));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(FfiError::null("fields"));
    }
    // SAFETY: non-NULL, `count` bounded, readable per the caller; `ThetaField` has no
    // invalid bit patterns.
    let raw = unsafe { std::slice::from_raw_parts(ptr, count) };
    raw.iter().enumerate().map(|(i, f)| f.to_field(i)).collect()
}

/// Checks `fields` for `component` of `registry` before anything changes, with a status
/// per kind of failure: an unknown component, a variable-size one, fields that do not fit
/// (`INVALID_ARGUMENT`), another layout than the one declared already
/// (`REGISTRY_CONFLICT`).
fn check_against(registry: &Registry, component: ComponentId, fields: &[Field]) -> FfiResult {
    let descriptor = registry
        .get(component)
        .ok_or(WorldError::UnknownComponent(component))?;
    let Layout::Fixed(size) = descriptor.layout else {
        return Err(invalid(format!(
            "component {:?} has a variable size ({}): only fixed-size types declare fields",
            descriptor.name, descriptor.layout
        )));
    };
    let layout = FieldLayout::new(size, fields)
        .map_err(|e| invalid(format!("component {:?}: {e}", descriptor.name)))?;
    match registry.fields(component) {
        Some(existing) if *existing != layout => Err(FfiError::new(
            ThetaStatus::RegistryConflict,
            format!(
                "component {:?} declared other fields already (a component's fields are \
                 declared once)",
                descriptor.name
            ),
        )),
        _ => Ok(()),
    }
}

/// Declares the fields of fixed-size `component` of `world` (`count` of them at `fields`):
/// from then on every value written to it (`theta_world_set`, `theta_world_set_batch`,
/// and the session's calls once the world hosts or joins) is quantised to them, lossy
/// within the declared precisions; bytes no field names stay bit-exact. A value whose
/// declared field is NaN, infinite, out of its range or too far for its precision is
/// refused with `THETA_STATUS_NOT_QUANTISABLE`, nothing written.
///
/// Declare before the first value of the component is written, and identically on every
/// peer: the layout is part of the registry hash, so a client whose fields differ from
/// the host's is refused at join. Declaring the same fields again is a no-op; 0 fields is
/// a layout too (every byte raw).
///
/// `THETA_STATUS_INVALID_HANDLE` for a stale world; `THETA_STATUS_NULL_POINTER` for NULL
/// `fields` with `count` > 0; `THETA_STATUS_UNKNOWN_COMPONENT` for a component not
/// registered; `THETA_STATUS_REGISTRY_CONFLICT` when other fields are declared already;
/// `THETA_STATUS_INVALID_ARGUMENT` for more than `THETA_MAX_FIELDS`, an unknown kind, a
/// precision or range out of bounds, a width not 1, 2, 4 or 8, a member the kind does not
/// use or `reserved` not 0, fields that overlap or run past the value, a component of
/// variable size, or a component that holds values already. Nothing changes on a failure.
///
/// # Safety
/// `fields` must point to `count` readable `ThetaField` (may be NULL when `count` is 0).
#[no_mangle]
pub unsafe extern "C" fn theta_world_declare_fields(
    world: ThetaWorld,
    component: u32,
    fields: *const ThetaField,
    count: usize,
) -> ThetaStatus {
    boundary("theta_world_declare_fields", || {
        // SAFETY: per the contract.
        let fields = unsafe { fields_in(fields, count) }?;
        let component = ComponentId(component);
        with_world(world, |w| {
            check_against(w.registry(), component, &fields)?;
            Ok(w.declare_fields(component, &fields)?)
        })
    })
}

/// Declares the fields of one of the engine's own fixed-size component types registered on
/// `replica` (`theta_replica_register_fixed`), as `theta_world_declare_fields` does for a
/// world, so that the replica's registry (and its hash) matches a sender that declared the
/// same. Declare before any value of the component arrives. Statuses as
/// `theta_world_declare_fields`.
///
/// # Safety
/// As `theta_world_declare_fields`.
#[no_mangle]
pub unsafe extern "C" fn theta_replica_declare_fields(
    replica: ThetaReplica,
    component: u32,
    fields: *const ThetaField,
    count: usize,
) -> ThetaStatus {
    boundary("theta_replica_declare_fields", || {
        // SAFETY: per the contract.
        let fields = unsafe { fields_in(fields, count) }?;
        let component = ComponentId(component);
        with_replica(replica, |r| {
            check_against(r.world().registry(), component, &fields)?;
            Ok(r.declare_fields(component, &fields)?)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: u32) -> ThetaField {
        ThetaField {
            kind,
            ..ThetaField::default()
        }
    }

    #[test]
    fn each_kind_becomes_its_field_and_unused_members_must_be_zero() {
        let position = ThetaField {
            precision: 1.0,
            offset: 4,
            ..field(THETA_FIELD_POSITION)
        };
        assert_eq!(
            position.to_field(0).unwrap(),
            Field::Position {
                offset: 4,
                precision_mm: 1.0
            }
        );
        let int = ThetaField {
            bytes: 2,
            ..field(THETA_FIELD_INT)
        };
        assert_eq!(
            int.to_field(0).unwrap(),
            Field::Int {
                offset: 0,
                bytes: 2
            }
        );
        let scalar = ThetaField {
            min: -1.0,
            max: 1.0,
            precision: 0.01,
            ..field(THETA_FIELD_SCALAR)
        };
        assert!(matches!(
            scalar.to_field(0).unwrap(),
            Field::Scalar { min, max, .. } if min == -1.0 && max == 1.0
        ));

        let stray = [
            ThetaField {
                max: 1.0,
                ..position
            },
            ThetaField {
                bytes: 4,
                ..position
            },
            ThetaField {
                precision: 0.5,
                ..int
            },
            ThetaField { min: -0.0, ..int },
            ThetaField { bytes: 1, ..scalar },
            ThetaField {
                reserved: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ..position
            },
            field(5),
        ];
        for (i, f) in stray.iter().enumerate() {
            let err = f.to_field(i).unwrap_err();
            assert_eq!(err.status, ThetaStatus::InvalidArgument, "{f:?}");
            assert!(
                err.message.contains(&format!("fields[{i}]")),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn the_count_is_bounded_before_anything_is_read() {
        // A dangling pointer with a count past the bound is never dereferenced.
        let dangling = std::ptr::NonNull::<ThetaField>::dangling().as_ptr();
        // SAFETY: refused before the pointer is read.
        let err = unsafe { fields_in(dangling, THETA_MAX_FIELDS + 1) }.unwrap_err();
        assert_eq!(err.status, ThetaStatus::InvalidArgument);
        // SAFETY: NULL is never read.
        let err = unsafe { fields_in(std::ptr::null(), 1) }.unwrap_err();
        assert_eq!(err.status, ThetaStatus::NullPointer);
        // SAFETY: count 0 reads nothing.
        assert!(unsafe { fields_in(std::ptr::null(), 0) }
            .unwrap()
            .is_empty());
    }
}
