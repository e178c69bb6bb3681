//! C ABI of XR poses in a session: push the local devices' poses and controller states,
//! sample other peers' devices for a display time. Pose structs are layout-identical to
//! OpenXR's (asserted at compile time against `openxr-sys`).

use super::boundary::{boundary, FfiError, FfiResult};
use super::session::{with_session, ThetaSession};
use super::{check_out, write_out, ThetaStatus};
use crate::net::poses::PosePushError;
use crate::xr::{ControllerState, Device, Pose, PoseFlags, PoseSample, Quat, Vec3};

/// A 3-vector of floats, layout-identical to `XrVector3f`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThetaVector3f {
    /// x.
    pub x: f32,
    /// y.
    pub y: f32,
    /// z.
    pub z: f32,
}

/// A quaternion, layout-identical to `XrQuaternionf` (x, y, z, w).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThetaQuaternionf {
    /// x.
    pub x: f32,
    /// y.
    pub y: f32,
    /// z.
    pub z: f32,
    /// w.
    pub w: f32,
}

/// A pose, layout-identical to `XrPosef`: orientation, then position (metres).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThetaPosef {
    /// Orientation (a unit quaternion; others are normalised, a zero one is refused).
    pub orientation: ThetaQuaternionf,
    /// Position in metres.
    pub position: ThetaVector3f,
}

/// A controller's input state: a buttons bitmask, trigger and grip in `[0, 1]`,
/// thumbstick x / y in `[-1, 1]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThetaControllerState {
    /// Pressed buttons, one bit each (the mapping is the application's).
    pub buttons: u32,
    /// Trigger, 0 released to 1 pressed.
    pub trigger: f32,
    /// Grip, 0 released to 1 pressed.
    pub grip: f32,
    /// Thumbstick x, -1 left to 1 right.
    pub thumb_x: f32,
    /// Thumbstick y, -1 down to 1 up.
    pub thumb_y: f32,
}

impl From<ThetaControllerState> for ControllerState {
    fn from(s: ThetaControllerState) -> Self {
        ControllerState {
            buttons: s.buttons,
            trigger: s.trigger,
            grip: s.grip,
            thumb_x: s.thumb_x,
            thumb_y: s.thumb_y,
        }
    }
}

impl From<ControllerState> for ThetaControllerState {
    fn from(s: ControllerState) -> Self {
        ThetaControllerState {
            buttons: s.buttons,
            trigger: s.trigger,
            grip: s.grip,
            thumb_x: s.thumb_x,
            thumb_y: s.thumb_y,
        }
    }
}

const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    use openxr_sys::{Posef, Quaternionf, Vector3f};
    assert!(size_of::<ThetaPosef>() == size_of::<Posef>());
    assert!(align_of::<ThetaPosef>() == align_of::<Posef>());
    assert!(offset_of!(ThetaPosef, orientation) == offset_of!(Posef, orientation));
    assert!(offset_of!(ThetaPosef, position) == offset_of!(Posef, position));
    assert!(size_of::<ThetaQuaternionf>() == size_of::<Quaternionf>());
    assert!(offset_of!(ThetaQuaternionf, x) == offset_of!(Quaternionf, x));
    assert!(offset_of!(ThetaQuaternionf, w) == offset_of!(Quaternionf, w));
    assert!(size_of::<ThetaVector3f>() == size_of::<Vector3f>());
    assert!(offset_of!(ThetaVector3f, z) == offset_of!(Vector3f, z));
    assert!(size_of::<ThetaPosef>() == size_of::<Pose>());
};

impl From<ThetaPosef> for Pose {
    fn from(p: ThetaPosef) -> Pose {
        let o = p.orientation;
        let v = p.position;
        Pose::new(Quat::new(o.x, o.y, o.z, o.w), Vec3::new(v.x, v.y, v.z))
    }
}

impl From<Pose> for ThetaPosef {
    fn from(p: Pose) -> ThetaPosef {
        let o = p.orientation;
        let v = p.position;
        ThetaPosef {
            orientation: ThetaQuaternionf {
                x: o.x,
                y: o.y,
                z: o.z,
                w: o.w,
            },
            position: ThetaVector3f {
                x: v.x,
                y: v.y,
                z: v.z,
            },
        }
    }
}

fn device(index: u8) -> FfiResult<Device> {
    Device::from_index(index).ok_or_else(|| {
        FfiError::new(
            ThetaStatus::InvalidArgument,
            PosePushError::NoSuchDevice(index).to_string(),
        )
    })
}

fn pushed(result: Result<(), PosePushError>) -> FfiResult {
    result.map_err(|e| {
        let status = match e {
            PosePushError::NoPose(_) => ThetaStatus::NotFound,
            _ => ThetaStatus::InvalidArgument,
        };
        FfiError::new(status, e.to_string())
    })
}

/// Validates and stores one pose sample of this peer's device.
fn push(
    session: ThetaSession,
    device_index: u8,
    pose: ThetaPosef,
    time: i64,
    flags: u64,
    linear_velocity: Option<Vec3>,
    angular_velocity: Option<Vec3>,
) -> FfiResult {
    let device = device(device_index)?;
    let sample = PoseSample {
        pose: pose.into(),
        time,
        // XrSpaceLocationFlags: only the four validity / tracking bits are defined.
        flags: PoseFlags::from_bits_truncate((flags & 0xF) as u8),
        linear_velocity,
        angular_velocity,
    };
    with_session(session, |s| pushed(s.push_pose(device, &sample)))
}

/// Reads a caller's struct.
///
/// # Safety
/// `ptr` must be NULL or point to a readable `T`.
unsafe fn read_in<T: Copy>(ptr: *const T, what: &str) -> FfiResult<T> {
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL, and readable by the caller's contract.
    Ok(unsafe { *ptr })
}

/// Stores this peer's newest pose of `device` (0 head, 1 left hand, 2 right hand, 3-10
/// trackers) at `time` (`XrTime` nanoseconds, see `theta_session_set_xr_time`) with its
/// `XrSpaceLocationFlags`. The next ticks stream it to the other peers (every push up to
/// the configured rate, 90 Hz by default). A NaN or infinite component, a zero quaternion
/// or a time before the device's previous one is refused with
/// `THETA_STATUS_INVALID_ARGUMENT` and nothing is stored; other quaternions are normalised.
///
/// # Safety
/// `pose` must point to a readable `ThetaPosef` (an `XrPosef` may be cast to it).
#[no_mangle]
pub unsafe extern "C" fn theta_session_push_pose(
    session: ThetaSession,
    device_index: u8,
    pose: *const ThetaPosef,
    time: i64,
    flags: u64,
) -> ThetaStatus {
    boundary("theta_session_push_pose", || {
        // SAFETY: forwarded contract.
        let pose = unsafe { read_in(pose, "pose") }?;
        push(session, device_index, pose, time, flags, None, None)
    })
}

/// Like `theta_session_push_pose`, with the device's linear (m/s) and angular (rad/s)
/// velocity, which receivers use to extrapolate when samples are late. Either velocity
/// pointer may be NULL when unknown.
///
/// # Safety
/// `pose` must point to a readable `ThetaPosef`; each velocity pointer must be NULL or
/// point to a readable `ThetaVector3f`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_push_pose_velocity(
    session: ThetaSession,
    device_index: u8,
    pose: *const ThetaPosef,
    time: i64,
    flags: u64,
    linear_velocity: *const ThetaVector3f,
    angular_velocity: *const ThetaVector3f,
) -> ThetaStatus {
    boundary("theta_session_push_pose_velocity", || {
        // SAFETY: forwarded contract.
        let pose = unsafe { read_in(pose, "pose") }?;
        let vector = |p: *const ThetaVector3f| {
            // SAFETY: NULL or readable, by the caller's contract.
            (!p.is_null())
                .then(|| unsafe { *p })
                .map(|v| Vec3::new(v.x, v.y, v.z))
        };
        push(
            session,
            device_index,
            pose,
            time,
            flags,
            vector(linear_velocity),
            vector(angular_velocity),
        )
    })
}

/// Stores the input state of a controller whose pose was pushed before
/// (`THETA_STATUS_NOT_FOUND` otherwise); it reaches the other peers with the device's
/// samples. NaN analog values are refused.
///
/// # Safety
/// `state` must point to a readable `ThetaControllerState`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_push_controller(
    session: ThetaSession,
    device_index: u8,
    state: *const ThetaControllerState,
) -> ThetaStatus {
    boundary("theta_session_push_controller", || {
        // SAFETY: forwarded contract.
        let state: ControllerState = unsafe { read_in(state, "state") }?.into();
        let device = device(device_index)?;
        with_session(session, |s| pushed(s.push_controller(device, &state)))
    })
}

/// Writes the pose of another peer's device to render at local `display_time` (`XrTime`
/// nanoseconds) and its `XrSpaceLocationFlags` as the sender reported them (tracking lost
/// on the sender shows here), estimated for that time: interpolated behind an adaptive
/// delay, then carried over the delay with the velocities the sender sent (without them it
/// stays at the delayed time), and extrapolated for a bounded time when samples are late.
/// `THETA_STATUS_NOT_FOUND` until a sample of that device arrived.
///
/// # Safety
/// `out_pose` must point to a writable `ThetaPosef`, `out_flags` to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_sample_pose(
    session: ThetaSession,
    peer: u16,
    device_index: u8,
    display_time: i64,
    out_pose: *mut ThetaPosef,
    out_flags: *mut u64,
) -> ThetaStatus {
    boundary("theta_session_sample_pose", || {
        check_out(out_pose, "out_pose")?;
        check_out(out_flags, "out_flags")?;
        let device = device(device_index)?;
        let sampled = with_session(session, |s| {
            s.sample_pose(peer, device, display_time).ok_or_else(|| {
                FfiError::new(
                    ThetaStatus::NotFound,
                    format!("no pose of device {device_index} of peer {peer} yet"),
                )
            })
        })?;
        // SAFETY: both checked non-NULL.
        unsafe {
            write_out(out_pose, sampled.pose.into());
            write_out(out_flags, u64::from(sampled.flags.bits()));
        }
        Ok(())
    })
}

/// Writes the newest controller state of another peer's device; `THETA_STATUS_NOT_FOUND`
/// until one arrived.
///
/// # Safety
/// `out_state` must point to a writable `ThetaControllerState`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_sample_controller(
    session: ThetaSession,
    peer: u16,
    device_index: u8,
    out_state: *mut ThetaControllerState,
) -> ThetaStatus {
    boundary("theta_session_sample_controller", || {
        check_out(out_state, "out_state")?;
        let device = device(device_index)?;
        let c = with_session(session, |s| {
            s.controller_state(peer, device).ok_or_else(|| {
                FfiError::new(
                    ThetaStatus::NotFound,
                    format!("no controller state of device {device_index} of peer {peer} yet"),
                )
            })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_state, c.into()) };
        Ok(())
    })
}

/// Tells the session that the engine's `XrTime` is `xr_now` at this moment (e.g. from
/// `xrConvertTimespecTimeToTimeKHR` of the monotonic clock now), so pose times, display
/// times and `theta_session_now` share the engine's clock. Without it, times are
/// nanoseconds since the session started.
#[no_mangle]
pub extern "C" fn theta_session_set_xr_time(session: ThetaSession, xr_now: i64) -> ThetaStatus {
    boundary("theta_session_set_xr_time", || {
        with_session(session, |s| {
            s.set_xr_time(xr_now);
            Ok(())
        })
    })
}

/// Writes the session clock now, in `XrTime` nanoseconds (see `theta_session_set_xr_time`).
///
/// # Safety
/// `out_time` must point to a writable `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_now(
    session: ThetaSession,
    out_time: *mut i64,
) -> ThetaStatus {
    boundary("theta_session_now", || {
        check_out(out_time, "out_time")?;
        let now = with_session(session, |s| Ok(s.now()))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_time, now) };
        Ok(())
    })
}
