//! Declared fields through the C ABI (issue 18), as a C engine drives them: a pose
//! component (rotation to 0.1°, position to 1 mm, a raw tag) and a gauge (a bounded
//! scalar, an integer, flags, a raw byte) are declared on a world; values read back
//! quantised within their precisions and their raw bytes bit-exact, in single and batch
//! writes. Every misuse of the declaring calls is its status and changes nothing; a value
//! that does not quantise is `THETA_STATUS_NOT_QUANTISABLE` from every write call, with
//! nothing written. A standalone replica declaring the same fields applies the world's
//! snapshot to the same hash. A host and a client over the in-memory transport of
//! `tests/common/transport.rs` whose registries declare the same fields converge; a
//! client declaring other fields is refused at join. The same in C (`tests/c/fields.c`),
//! built with warnings as errors and run under valgrind, closes the file. Exported
//! functions only, every wait bounded.

use std::ptr::{null, null_mut};

use theta_net::ffi::*;

mod common;
use common::c_build::{build, run_checked};
use common::transport::{hash, host_custom, join_custom, mint, set, spawn, Net};
use common::{fails, ok};

const POSE_BYTES: usize = 32;
const GAUGE_BYTES: usize = 8;
const MM: f32 = 1.0;
const DEG: f32 = 0.1;

fn position(offset: u32, mm: f32) -> ThetaField {
    ThetaField {
        kind: THETA_FIELD_POSITION,
        offset,
        precision: mm,
        ..ThetaField::default()
    }
}

fn rotation(offset: u32, deg: f32) -> ThetaField {
    ThetaField {
        kind: THETA_FIELD_ROTATION,
        offset,
        precision: deg,
        ..ThetaField::default()
    }
}

fn scalar(offset: u32, min: f32, max: f32, precision: f32) -> ThetaField {
    ThetaField {
        kind: THETA_FIELD_SCALAR,
        offset,
        precision,
        min,
        max,
        ..ThetaField::default()
    }
}

fn int(kind: u32, offset: u32, bytes: u8) -> ThetaField {
    ThetaField {
        kind,
        offset,
        bytes,
        ..ThetaField::default()
    }
}

/// The pose's fields: a quaternion at 0, a position at 16; bytes 28..32 are raw.
fn pose_fields(mm: f32) -> [ThetaField; 2] {
    [rotation(0, DEG), position(16, mm)]
}

/// The gauge's fields: a scalar in [0, 10] to 0.01 at 0, a 2-byte integer at 4, 1 byte of
/// flags at 6; byte 7 is raw.
fn gauge_fields() -> [ThetaField; 3] {
    [
        scalar(0, 0.0, 10.0, 0.01),
        int(THETA_FIELD_INT, 4, 2),
        int(THETA_FIELD_FLAGS, 6, 1),
    ]
}

struct Types {
    pose: u32,
    gauge: u32,
    raw: u32,
    text: u32,
}

fn register(world: ThetaWorld, name: &str, size: u32, variable: bool) -> u32 {
    let mut id = 0;
    // SAFETY: a valid name and out-pointer.
    ok(unsafe {
        if variable {
            theta_world_register_variable(world, name.as_ptr(), name.len(), size, &mut id)
        } else {
            theta_world_register_fixed(world, name.as_ptr(), name.len(), size, &mut id)
        }
    });
    id
}

fn declare(world: ThetaWorld, component: u32, fields: &[ThetaField]) -> ThetaStatus {
    // SAFETY: a valid array of its length.
    unsafe { theta_world_declare_fields(world, component, fields.as_ptr(), fields.len()) }
}

fn declare_on_replica(replica: ThetaReplica, component: u32, fields: &[ThetaField]) -> ThetaStatus {
    // SAFETY: a valid array of its length.
    unsafe { theta_replica_declare_fields(replica, component, fields.as_ptr(), fields.len()) }
}

/// A world (of `peer`) with the test's types registered, the pose declared to `mm` and
/// the gauge declared.
fn new_world(peer: u16, mm: f32) -> (ThetaWorld, Types) {
    let mut world = ThetaWorld { id: 0 };
    let config = ThetaWorldConfig {
        local_peer: peer,
        ..ThetaWorldConfig::default()
    };
    // SAFETY: a valid config and out-pointer.
    ok(unsafe { theta_world_new(&config, &mut world) });
    let types = Types {
        pose: register(world, "fields.Pose", POSE_BYTES as u32, false),
        gauge: register(world, "fields.Gauge", GAUGE_BYTES as u32, false),
        raw: register(world, "fields.Raw", 12, false),
        text: register(world, "fields.Text", 16, true),
    };
    ok(declare(world, types.pose, &pose_fields(mm)));
    ok(declare(world, types.gauge, &gauge_fields()));
    (world, types)
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32_at(bytes: &[u8], at: usize) -> f32 {
    f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// A pose value: a unit quaternion (a rotation of `angle` radians about a tilted axis),
/// a position, a raw tag.
fn pose(angle: f32, p: [f32; 3], tag: u32) -> Vec<u8> {
    let axis = [0.48f32, 0.6, 0.64];
    let (s, c) = (angle / 2.0).sin_cos();
    let mut v = f32s(&[axis[0] * s, axis[1] * s, axis[2] * s, c, p[0], p[1], p[2]]);
    v.extend_from_slice(&tag.to_le_bytes());
    v
}

fn gauge(level: f32, count: u16, flags: u8, raw: u8) -> Vec<u8> {
    let mut v = level.to_le_bytes().to_vec();
    v.extend_from_slice(&count.to_le_bytes());
    v.extend_from_slice(&[flags, raw]);
    v
}

/// Degrees between two rotations given as quaternions.
fn degrees_between(a: &[u8], b: &[u8]) -> f64 {
    let q = |v: &[u8]| -> [f64; 4] { std::array::from_fn(|i| f64::from(f32_at(v, 4 * i))) };
    let (a, b) = (q(a), q(b));
    let norm = |q: [f64; 4]| q.iter().map(|x| x * x).sum::<f64>().sqrt();
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / (norm(a) * norm(b));
    2.0 * dot.abs().min(1.0).acos().to_degrees()
}

/// Asserts `got` is the pose `sent` within the declared precisions, its raw tag
/// bit-exact.
#[track_caller]
fn assert_pose_within(sent: &[u8], got: &[u8], mm: f32) {
    assert_eq!(got.len(), POSE_BYTES);
    assert_ne!(sent, got, "a pose off the grid reads back quantised");
    let degrees = degrees_between(sent, got);
    assert!(degrees <= f64::from(DEG) + 1e-4, "{degrees}° off");
    for axis in 0..3 {
        let (a, b) = (f32_at(sent, 16 + 4 * axis), f32_at(got, 16 + 4 * axis));
        let error_mm = (f64::from(a) - f64::from(b)).abs() * 1000.0;
        assert!(
            error_mm <= f64::from(mm) + 1e-3,
            "axis {axis}: {error_mm} mm off"
        );
    }
    assert_eq!(sent[28..], got[28..], "raw bytes are bit-exact");
}

fn world_get(world: ThetaWorld, entity: u64, component: u32) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    let mut len = 0;
    // SAFETY: buf has its length of writable bytes.
    let status =
        unsafe { theta_world_get(world, entity, component, buf.as_mut_ptr(), 64, &mut len) };
    if status == ThetaStatus::NotFound {
        return None;
    }
    ok(status);
    Some(buf[..len].to_vec())
}

fn session_get(session: ThetaSession, entity: u64, component: u32) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    let mut len = 0;
    // SAFETY: buf has its length of writable bytes.
    let status =
        unsafe { theta_session_get(session, entity, component, buf.as_mut_ptr(), 64, &mut len) };
    if status == ThetaStatus::NotFound {
        return None;
    }
    ok(status);
    Some(buf[..len].to_vec())
}

fn world_set(world: ThetaWorld, entity: u64, component: u32, value: &[u8]) -> ThetaStatus {
    // SAFETY: a valid byte range; NULL out_change.
    unsafe {
        theta_world_set(
            world,
            entity,
            component,
            value.as_ptr(),
            value.len(),
            null_mut(),
        )
    }
}

fn world_spawn(world: ThetaWorld) -> u64 {
    let mut e = 0;
    // SAFETY: a valid out-pointer.
    ok(unsafe { theta_world_spawn(world, &mut e) });
    e
}

fn world_hash(world: ThetaWorld) -> u64 {
    let mut h = 0;
    // SAFETY: a valid out-pointer.
    ok(unsafe { theta_world_state_hash(world, &mut h) });
    h
}

fn world_set_batch(
    world: ThetaWorld,
    component: u32,
    entities: &[u64],
    values: &[u8],
    stride: usize,
    result: &mut ThetaBatchResult,
) -> ThetaStatus {
    // SAFETY: valid arrays: `entities.len()` ids and values of `stride` bytes each.
    unsafe {
        theta_world_set_batch(
            world,
            component,
            entities.as_ptr(),
            values.as_ptr(),
            stride,
            entities.len(),
            result,
        )
    }
}

fn session_set_batch(
    session: ThetaSession,
    component: u32,
    entities: &[u64],
    values: &[u8],
    stride: usize,
    result: &mut ThetaBatchResult,
) -> ThetaStatus {
    // SAFETY: as `world_set_batch`.
    unsafe {
        theta_session_set_batch(
            session,
            component,
            entities.as_ptr(),
            values.as_ptr(),
            stride,
            entities.len(),
            result,
        )
    }
}

#[test]
fn declared_fields_read_back_quantised_within_their_precision_and_raw_bytes_bit_exact() {
    let (world, t) = new_world(0, MM);
    let e = world_spawn(world);
    let sent = pose(0.7, [1.234_567, -0.000_4, 123.456_79], 0xdead_beef);
    let mut change = 0u8;
    // SAFETY: a valid byte range and out-pointer.
    ok(unsafe { theta_world_set(world, e, t.pose, sent.as_ptr(), sent.len(), &mut change) });
    assert_eq!(change, ThetaChange::Inserted as u8);
    let stored = world_get(world, e, t.pose).unwrap();
    assert_pose_within(&sent, &stored, MM);
    // The stored value is a fixed point: writing it back is no change.
    // SAFETY: as above.
    ok(unsafe { theta_world_set(world, e, t.pose, stored.as_ptr(), stored.len(), &mut change) });
    assert_eq!(change, ThetaChange::Unchanged as u8);

    // The gauge: the scalar within 0.01, its ends exact; the integer, flags and raw byte
    // bit-exact.
    for (level, count, flags, raw) in [(3.333_77f32, 65_535u16, 0xa5u8, 0xffu8), (10.0, 0, 0, 7)] {
        let sent = gauge(level, count, flags, raw);
        ok(world_set(world, e, t.gauge, &sent));
        let got = world_get(world, e, t.gauge).unwrap();
        assert!(
            (f32_at(&got, 0) - level).abs() <= 0.01,
            "{}",
            f32_at(&got, 0)
        );
        assert_eq!(got[4..], sent[4..]);
    }
    assert_eq!(f32_at(&world_get(world, e, t.gauge).unwrap(), 0), 10.0);

    // Undeclared components stay bit-exact.
    let raw = f32s(&[1.234_567, -0.000_4, 123.456_79]);
    ok(world_set(world, e, t.raw, &raw));
    assert_eq!(world_get(world, e, t.raw).unwrap(), raw);

    // A batch from an array of engine structs (the pose at offset 8 of 48-byte records)
    // quantises every value.
    let entities: Vec<u64> = (0..4).map(|_| world_spawn(world)).collect();
    let stride = 48;
    let mut records = vec![0u8; stride * entities.len()];
    let poses: Vec<Vec<u8>> = (0..entities.len())
        .map(|i| {
            pose(
                0.1 * i as f32 + 0.05,
                [i as f32 * 0.333_3, 2.000_7, -5.5],
                i as u32,
            )
        })
        .collect();
    for (i, p) in poses.iter().enumerate() {
        records[i * stride + 8..i * stride + 8 + POSE_BYTES].copy_from_slice(p);
    }
    let mut result = ThetaBatchResult::default();
    ok(world_set_batch(
        world,
        t.pose,
        &entities,
        &records[8..],
        stride,
        &mut result,
    ));
    assert_eq!(result.inserted, 4);
    for (e, p) in entities.iter().zip(&poses) {
        assert_pose_within(p, &world_get(world, *e, t.pose).unwrap(), MM);
    }
    ok(theta_world_free(world));
}

#[test]
fn a_value_that_does_not_quantise_is_refused_by_every_write_call_and_nothing_is_written() {
    let (world, t) = new_world(0, MM);
    let e = world_spawn(world);
    let first = pose(0.3, [1.0, 2.0, 3.0], 1);
    ok(world_set(world, e, t.pose, &first));
    ok(world_set(world, e, t.gauge, &gauge(1.0, 1, 1, 1)));
    let kept = world_get(world, e, t.pose).unwrap();
    let before = world_hash(world);

    let mut nan = first.clone();
    nan[16..20].copy_from_slice(&f32::NAN.to_le_bytes());
    let mut inf = first.clone();
    inf[0..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let mut far = first.clone();
    far[20..24].copy_from_slice(&1.0e7f32.to_le_bytes());
    let zero_rotation = pose(0.0, [0.0; 3], 0)
        .iter()
        .enumerate()
        .map(|(i, &b)| if i < 16 { 0 } else { b })
        .collect::<Vec<u8>>();
    for (bad, what) in [
        (&nan, "not a finite number"),
        (&inf, "quaternion"),
        (&far, "too far"),
        (&zero_rotation, "quaternion"),
    ] {
        let message = fails(
            world_set(world, e, t.pose, bad),
            ThetaStatus::NotQuantisable,
        );
        assert!(
            message.contains("fields.Pose") && message.contains(what),
            "{message}"
        );
    }
    for level in [-0.5f32, 10.01, f32::NAN] {
        let message = fails(
            world_set(world, e, t.gauge, &gauge(level, 0, 0, 0)),
            ThetaStatus::NotQuantisable,
        );
        assert!(message.contains("fields.Gauge"), "{message}");
    }
    assert_eq!(world_get(world, e, t.pose).unwrap(), kept);
    assert_eq!(world_hash(world), before);

    // A batch with one bad value writes none of it, nor its result.
    let others: Vec<u64> = (0..3).map(|_| world_spawn(world)).collect();
    let before = world_hash(world);
    let mut values = Vec::new();
    for (i, bad) in [false, true, false].into_iter().enumerate() {
        values.extend(if bad {
            nan.clone()
        } else {
            pose(0.2, [i as f32; 3], 9)
        });
    }
    let mut result = ThetaBatchResult {
        inserted: 77,
        ..ThetaBatchResult::default()
    };
    let message = fails(
        world_set_batch(world, t.pose, &others, &values, POSE_BYTES, &mut result),
        ThetaStatus::NotQuantisable,
    );
    assert!(message.contains("theta_world_set_batch"), "{message}");
    assert_eq!(result.inserted, 77, "out_result is written only on success");
    assert!(others
        .iter()
        .all(|&o| world_get(world, o, t.pose).is_none()));
    assert_eq!(world_hash(world), before);

    // Through a session: set and set_batch alike.
    let host = host_custom(world, null(), null());
    let before = hash(host);
    fails(set(host, e, t.pose, &nan), ThetaStatus::NotQuantisable);
    let mut values = Vec::new();
    values.extend(pose(0.2, [1.0; 3], 1));
    values.extend(&inf);
    // `e` holds a value (the first would be written, then put back) and `others[0]` none.
    let message = fails(
        session_set_batch(
            host,
            t.pose,
            &[e, others[0]],
            &values,
            POSE_BYTES,
            &mut result,
        ),
        ThetaStatus::NotQuantisable,
    );
    assert!(message.contains("fields.Pose"), "{message}");
    assert_eq!(session_get(host, e, t.pose).unwrap(), kept);
    assert!(session_get(host, others[0], t.pose).is_none());
    assert_eq!(hash(host), before);
    // A good batch through the session quantises.
    let good = [pose(0.4, [0.123_45; 3], 5), pose(0.5, [9.876_54; 3], 6)].concat();
    ok(session_set_batch(
        host,
        t.pose,
        &[e, others[0]],
        &good,
        POSE_BYTES,
        &mut result,
    ));
    assert_pose_within(
        &good[..POSE_BYTES],
        &session_get(host, e, t.pose).unwrap(),
        MM,
    );
    ok(theta_session_free(host));
}

#[test]
fn every_misuse_of_declaring_is_its_status_and_changes_nothing() {
    let (world, t) = new_world(0, MM);
    let before = world_hash(world);
    let ok_fields = pose_fields(MM);
    let cases: Vec<(Vec<ThetaField>, u32, ThetaStatus, &str)> = vec![
        // Unknown kind, reserved bytes, members the kind does not use.
        (
            vec![int(9, 0, 1)],
            t.raw,
            ThetaStatus::InvalidArgument,
            "kind 9",
        ),
        (
            vec![ThetaField {
                reserved: [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
                ..position(0, 1.0)
            }],
            t.raw,
            ThetaStatus::InvalidArgument,
            "reserved",
        ),
        (
            vec![ThetaField {
                bytes: 4,
                ..position(0, 1.0)
            }],
            t.raw,
            ThetaStatus::InvalidArgument,
            "bytes",
        ),
        // Out-of-range parameters.
        (
            vec![position(0, 0.0)],
            t.raw,
            ThetaStatus::InvalidArgument,
            "precision",
        ),
        (
            vec![position(0, f32::NAN)],
            t.raw,
            ThetaStatus::InvalidArgument,
            "precision",
        ),
        (
            vec![rotation(0, 91.0)],
            t.pose,
            ThetaStatus::InvalidArgument,
            "degrees",
        ),
        (
            vec![scalar(0, 1.0, 0.0, 0.1)],
            t.raw,
            ThetaStatus::InvalidArgument,
            "min <= max",
        ),
        (
            vec![int(THETA_FIELD_INT, 0, 3)],
            t.raw,
            ThetaStatus::InvalidArgument,
            "1, 2, 4 or 8",
        ),
        // Overlapping and overrunning fields.
        (
            vec![position(0, 1.0), int(THETA_FIELD_FLAGS, 8, 1)],
            t.raw,
            ThetaStatus::InvalidArgument,
            "overlaps",
        ),
        (
            vec![position(4, 1.0)],
            t.raw,
            ThetaStatus::InvalidArgument,
            "runs past the end",
        ),
        (
            vec![position(u32::MAX - 3, 1.0)],
            t.raw,
            ThetaStatus::InvalidArgument,
            "runs past",
        ),
        // A variable-size type, an unregistered one.
        (
            vec![position(0, 1.0)],
            t.text,
            ThetaStatus::InvalidArgument,
            "variable size",
        ),
        (
            vec![position(0, 1.0)],
            12345,
            ThetaStatus::UnknownComponent,
            "0x00003039",
        ),
        // Other fields than those declared: a registration conflict.
        (
            pose_fields(2.0).to_vec(),
            t.pose,
            ThetaStatus::RegistryConflict,
            "other fields",
        ),
        (
            vec![],
            t.pose,
            ThetaStatus::RegistryConflict,
            "other fields",
        ),
    ];
    for (fields, component, status, cause) in &cases {
        let message = fails(declare(world, *component, fields), *status);
        assert!(message.contains(cause), "{cause}: {message}");
    }
    // Too many (checked before the array is read), NULL with a count.
    let many = vec![int(THETA_FIELD_FLAGS, 0, 1); THETA_MAX_FIELDS + 1];
    let message = fails(declare(world, t.raw, &many), ThetaStatus::InvalidArgument);
    assert!(message.contains("at most"), "{message}");
    // SAFETY: NULL is refused before it is read.
    let status = unsafe { theta_world_declare_fields(world, t.raw, null(), 1) };
    fails(status, ThetaStatus::NullPointer);
    // The same fields again: a no-op.
    ok(declare(world, t.pose, &ok_fields));

    // Fields after a value.
    let e = world_spawn(world);
    let raw = f32s(&[0.123_456_7, 1.0, 2.0]);
    ok(world_set(world, e, t.raw, &raw));
    let hash_with_value = world_hash(world);
    let message = fails(
        declare(world, t.raw, &[position(0, 1.0)]),
        ThetaStatus::InvalidArgument,
    );
    assert!(message.contains("first value"), "{message}");

    // Nothing changed: the raw type still stores bit-exact, the pose still quantises to
    // 1 mm (not 2), and the hash moved only with the value written.
    assert_ne!(before, hash_with_value);
    assert_eq!(world_hash(world), hash_with_value);
    ok(world_set(world, e, t.raw, &f32s(&[0.1, 0.2, 0.300_000_1])));
    assert_eq!(
        world_get(world, e, t.raw).unwrap(),
        f32s(&[0.1, 0.2, 0.300_000_1])
    );
    let sent = pose(0.2, [0.0014, 0.0, 0.0], 0);
    ok(world_set(world, e, t.pose, &sent));
    let got = world_get(world, e, t.pose).unwrap();
    // At 1 mm the grid is 2 mm: 1.4 mm goes to 2 mm, where 2 mm precision (4 mm grid)
    // would have given 0.
    assert!(
        (f32_at(&got, 16) - 0.002).abs() < 1e-6,
        "{}",
        f32_at(&got, 16)
    );

    // A stale handle.
    ok(theta_world_free(world));
    fails(
        declare(world, t.pose, &ok_fields),
        ThetaStatus::InvalidHandle,
    );
}

#[test]
fn a_replica_declaring_the_same_fields_applies_the_worlds_snapshot_to_its_hash() {
    let (world, t) = new_world(0, MM);
    let e = world_spawn(world);
    ok(world_set(
        world,
        e,
        t.pose,
        &pose(1.1, [3.0001, 4.0002, 5.0003], 42),
    ));
    ok(world_set(world, e, t.gauge, &gauge(2.5, 300, 3, 4)));
    ok(world_set(world, e, t.raw, &[7u8; 12]));

    let mut replica = ThetaReplica { id: 0 };
    // SAFETY: valid out-pointers and names.
    unsafe {
        ok(theta_replica_new(&mut replica));
        let mut id = 0;
        ok(theta_replica_register_fixed(
            replica,
            b"fields.Pose".as_ptr(),
            11,
            32,
            &mut id,
        ));
        assert_eq!(id, t.pose);
        ok(theta_replica_register_fixed(
            replica,
            b"fields.Gauge".as_ptr(),
            12,
            8,
            &mut id,
        ));
        ok(theta_replica_register_variable(
            replica,
            b"fields.Text".as_ptr(),
            11,
            16,
            &mut id,
        ));
    }
    ok(declare_on_replica(replica, t.pose, &pose_fields(MM)));
    ok(declare_on_replica(replica, t.pose, &pose_fields(MM)));
    ok(declare_on_replica(replica, t.gauge, &gauge_fields()));
    // Its misuse is the world's.
    fails(
        declare_on_replica(replica, t.pose, &pose_fields(2.0)),
        ThetaStatus::RegistryConflict,
    );
    fails(
        declare_on_replica(replica, t.text, &[position(0, 1.0)]),
        ThetaStatus::InvalidArgument,
    );
    fails(
        declare_on_replica(replica, 999, &[]),
        ThetaStatus::UnknownComponent,
    );
    fails(
        declare_on_replica(replica, t.gauge, &[int(7, 0, 1)]),
        ThetaStatus::InvalidArgument,
    );
    // SAFETY: NULL is refused before it is read.
    fails(
        unsafe { theta_replica_declare_fields(replica, t.pose, null(), 2) },
        ThetaStatus::NullPointer,
    );

    let mut snapshot = ThetaSnapshot { id: 0 };
    let mut count = 0;
    // SAFETY: valid out-pointers; chunk bytes read while the snapshot lives.
    unsafe {
        ok(theta_world_snapshot(world, 0, &mut snapshot));
        ok(theta_snapshot_chunk_count(snapshot, &mut count));
        assert!(count > 0);
        for i in 0..count {
            let (mut bytes, mut len) = (null(), 0);
            ok(theta_snapshot_chunk(snapshot, i, &mut bytes, &mut len));
            ok(theta_replica_apply(replica, bytes, len, null_mut()));
        }
    }
    let mut h = 0;
    // SAFETY: a valid out-pointer.
    ok(unsafe { theta_replica_state_hash(replica, &mut h) });
    assert_eq!(h, world_hash(world));
    // Fields after a value arrived (the raw type, learnt from the snapshot).
    let message = fails(
        declare_on_replica(replica, t.raw, &[position(0, 1.0)]),
        ThetaStatus::InvalidArgument,
    );
    assert!(message.contains("first value"), "{message}");
    ok(unsafe { theta_replica_state_hash(replica, &mut h) });
    assert_eq!(h, world_hash(world));
    ok(theta_snapshot_free(snapshot));
    ok(theta_replica_free(replica));
    fails(
        declare_on_replica(replica, t.pose, &pose_fields(MM)),
        ThetaStatus::InvalidHandle,
    );
    ok(theta_world_free(world));
}

#[test]
fn a_host_and_a_client_declaring_the_same_fields_converge_and_other_fields_are_refused() {
    let (world, t) = new_world(0, MM);
    let host = host_custom(world, null(), null());
    let mut net = Net::new(host);
    let (registry, _) = new_world(1, MM);
    let client = join_custom(&mint(host, 1), registry);
    ok(theta_world_free(registry));
    net.join(client, 100);

    // The host writes poses and gauges; the client writes one of its own.
    let mut sent = Vec::new();
    for i in 0..8 {
        let e = spawn(host);
        let p = pose(
            0.3 * i as f32,
            [i as f32 * 1.111_1, 0.5, -(i as f32) * 0.777_7],
            i,
        );
        ok(set(host, e, t.pose, &p));
        ok(set(
            host,
            e,
            t.gauge,
            &gauge(i as f32 * 1.234, i as u16, 1 << i, 0x5a),
        ));
        sent.push((e, p));
    }
    let mine = spawn(client);
    let my_pose = pose(2.0, [-7.654_3, 1.5, 0.001_5], 77);
    ok(set(client, mine, t.pose, &my_pose));
    net.converge();
    for (e, p) in &sent {
        let on_client = session_get(client, *e, t.pose).unwrap();
        assert_eq!(on_client, session_get(host, *e, t.pose).unwrap());
        assert_pose_within(p, &on_client, MM);
    }
    let on_host = session_get(host, mine, t.pose).unwrap();
    assert_eq!(on_host, session_get(client, mine, t.pose).unwrap());
    assert_pose_within(&my_pose, &on_host, MM);
    // The client's writes are quantised and refused as the host's are.
    let mut nan = my_pose.clone();
    nan[20..24].copy_from_slice(&f32::NAN.to_le_bytes());
    fails(set(client, mine, t.pose, &nan), ThetaStatus::NotQuantisable);

    // A client whose pose is declared to 2 mm: another registry, refused at join.
    let (other, _) = new_world(2, 2.0);
    let refused = join_custom(&mint(host, 2), other);
    ok(theta_world_free(other));
    net.add(refused, 200);
    let event = net.until_event(2, ThetaSessionEventKind::Disconnected);
    assert_eq!(
        event.cause,
        ThetaDisconnectCause::Refused as u8,
        "{event:?}"
    );
    assert!(event.text.contains("registr"), "{event:?}");
    assert!(net.seen[0]
        .iter()
        .any(|e| e.is(ThetaSessionEventKind::JoinRefused)));
    // The first client is unharmed: a new write still reaches it.
    ok(set(host, sent[0].0, t.gauge, &gauge(9.5, 1, 2, 3)));
    net.until("the first client's convergence", |_| {
        hash(client) == hash(host)
    });
    assert_eq!(
        session_get(client, sent[0].0, t.gauge),
        session_get(host, sent[0].0, t.gauge)
    );
    net.free();
}

#[test]
fn the_c_fields_test_builds_with_warnings_as_errors_and_passes_under_valgrind() {
    let binary = build("cc", &["-std=c11"], "tests/c/fields.c", "theta-fields-c");
    let stdout = run_checked(&binary, &[]);
    assert!(
        stdout.contains("pose within 1 mm and 0.1 degrees"),
        "{stdout}"
    );
    assert!(stdout.contains("replica hash equal"), "{stdout}");
    assert!(
        stdout.contains("misuse: every status as expected"),
        "{stdout}"
    );
}
