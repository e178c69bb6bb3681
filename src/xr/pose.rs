//! Pose types shared by the XR layer: [`Pose`] (layout-identical to OpenXR's `XrPosef`),
//! [`Device`], [`PoseFlags`] (the bits of `XrSpaceLocationFlags`), [`ControllerState`] and
//! [`PoseSample`], plus input validation ([`validate_pose`]).

use core::mem::{align_of, offset_of, size_of};

/// A 3-component vector of `f32`, layout-identical to OpenXR's `XrVector3f`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Vec3 {
    /// X component (metres for positions, right in OpenXR's convention).
    pub x: f32,
    /// Y component (up in OpenXR's convention).
    pub y: f32,
    /// Z component (backwards in OpenXR's convention).
    pub z: f32,
}

impl Vec3 {
    /// The zero vector.
    pub const ZERO: Vec3 = Vec3::new(0.0, 0.0, 0.0);

    /// Builds a vector from its components.
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        Vec3 { x, y, z }
    }

    /// The components as an array `[x, y, z]`.
    pub const fn to_array(self) -> [f32; 3] {
        [self.x, self.y, self.z]
    }

    /// Whether every component is finite (neither NaN nor infinite).
    pub fn is_finite(self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.z.is_finite()
    }

    /// Euclidean distance to `other`, computed in `f64`.
    pub fn distance(self, other: Vec3) -> f64 {
        let d = [self.x - other.x, self.y - other.y, self.z - other.z].map(f64::from);
        (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
    }
}

/// A rotation quaternion `(x, y, z, w)` of `f32`, layout-identical to OpenXR's
/// `XrQuaternionf` (the vector part first, the scalar `w` last).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quat {
    /// X of the vector part.
    pub x: f32,
    /// Y of the vector part.
    pub y: f32,
    /// Z of the vector part.
    pub z: f32,
    /// The scalar part.
    pub w: f32,
}

impl Default for Quat {
    /// The identity rotation (not the all-zero quaternion, which is invalid).
    fn default() -> Self {
        Quat::IDENTITY
    }
}

impl Quat {
    /// The identity rotation.
    pub const IDENTITY: Quat = Quat::new(0.0, 0.0, 0.0, 1.0);

    /// Builds a quaternion from its components (not normalised).
    pub const fn new(x: f32, y: f32, z: f32, w: f32) -> Self {
        Quat { x, y, z, w }
    }

    /// The components as an array `[x, y, z, w]`.
    pub const fn to_array(self) -> [f32; 4] {
        [self.x, self.y, self.z, self.w]
    }

    /// Builds a quaternion from an array `[x, y, z, w]`.
    pub const fn from_array(a: [f32; 4]) -> Self {
        Quat::new(a[0], a[1], a[2], a[3])
    }

    /// Whether every component is finite (neither NaN nor infinite).
    pub fn is_finite(self) -> bool {
        self.to_array().iter().all(|c| c.is_finite())
    }

    /// The Euclidean norm, computed in `f64`.
    pub fn norm(self) -> f64 {
        self.to_array()
            .iter()
            .map(|&c| f64::from(c) * f64::from(c))
            .sum::<f64>()
            .sqrt()
    }

    /// The rotation angle in degrees between two quaternions, `2·acos(|q1·q2|)` after
    /// normalising both in `f64`. `q` and `-q` are the same rotation, so their angle is 0.
    ///
    /// Computed in the numerically stable form `4·atan2(|a − b|, |a + b|)` (with the sign
    /// of `b` chosen so that `a·b ≥ 0`), which equals `2·acos(|a·b|)` for unit `a`, `b` but
    /// does not lose precision for small angles as `acos` near 1 does with `f32` inputs.
    pub fn angle_deg(self, other: Quat) -> f64 {
        let unit = |q: Quat| {
            let n = q.norm();
            q.to_array().map(|c| f64::from(c) / n)
        };
        let a = unit(self);
        let mut b = unit(other);
        let dot: f64 = a.iter().zip(b.iter()).map(|(p, q)| p * q).sum();
        if dot < 0.0 {
            b = b.map(|c| -c);
        }
        let diff = a
            .iter()
            .zip(b.iter())
            .map(|(p, q)| (p - q) * (p - q))
            .sum::<f64>();
        let sum = a
            .iter()
            .zip(b.iter())
            .map(|(p, q)| (p + q) * (p + q))
            .sum::<f64>();
        (4.0 * diff.sqrt().atan2(sum.sqrt())).to_degrees()
    }
}

/// A rigid transform, layout-identical to OpenXR's `XrPosef`: orientation `x, y, z, w`,
/// then position `x, y, z` (28 bytes, 4-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pose {
    /// The orientation, a unit quaternion once validated.
    pub orientation: Quat,
    /// The position in metres.
    pub position: Vec3,
}

impl Pose {
    /// The identity pose (no rotation, at the origin).
    pub const IDENTITY: Pose = Pose {
        orientation: Quat::IDENTITY,
        position: Vec3::ZERO,
    };

    /// Builds a pose from an orientation and a position.
    pub const fn new(orientation: Quat, position: Vec3) -> Self {
        Pose {
            orientation,
            position,
        }
    }
}

// Layout identity with OpenXR, checked by the compiler.
const _: () = assert!(size_of::<Pose>() == size_of::<openxr_sys::Posef>());
const _: () = assert!(align_of::<Pose>() == align_of::<openxr_sys::Posef>());
const _: () = assert!(size_of::<Pose>() == 28);
const _: () = assert!(offset_of!(Pose, orientation) == offset_of!(openxr_sys::Posef, orientation));
const _: () = assert!(offset_of!(Pose, position) == offset_of!(openxr_sys::Posef, position));
const _: () = assert!(size_of::<Quat>() == size_of::<openxr_sys::Quaternionf>());
const _: () = assert!(align_of::<Quat>() == align_of::<openxr_sys::Quaternionf>());
const _: () = assert!(offset_of!(Quat, x) == offset_of!(openxr_sys::Quaternionf, x));
const _: () = assert!(offset_of!(Quat, y) == offset_of!(openxr_sys::Quaternionf, y));
const _: () = assert!(offset_of!(Quat, z) == offset_of!(openxr_sys::Quaternionf, z));
const _: () = assert!(offset_of!(Quat, w) == offset_of!(openxr_sys::Quaternionf, w));
const _: () = assert!(size_of::<Vec3>() == size_of::<openxr_sys::Vector3f>());
const _: () = assert!(align_of::<Vec3>() == align_of::<openxr_sys::Vector3f>());
const _: () = assert!(offset_of!(Vec3, x) == offset_of!(openxr_sys::Vector3f, x));
const _: () = assert!(offset_of!(Vec3, y) == offset_of!(openxr_sys::Vector3f, y));
const _: () = assert!(offset_of!(Vec3, z) == offset_of!(openxr_sys::Vector3f, z));
const _: () = assert!(
    offset_of!(Pose, position) + offset_of!(Vec3, z)
        == offset_of!(openxr_sys::Posef, position) + offset_of!(openxr_sys::Vector3f, z)
);
// The time type is OpenXR's nanosecond `XrTime`, an `i64`.
const _: () = assert!(size_of::<openxr_sys::Time>() == size_of::<i64>());

impl From<openxr_sys::Vector3f> for Vec3 {
    fn from(v: openxr_sys::Vector3f) -> Self {
        Vec3::new(v.x, v.y, v.z)
    }
}

impl From<Vec3> for openxr_sys::Vector3f {
    fn from(v: Vec3) -> Self {
        openxr_sys::Vector3f {
            x: v.x,
            y: v.y,
            z: v.z,
        }
    }
}

impl From<openxr_sys::Quaternionf> for Quat {
    fn from(q: openxr_sys::Quaternionf) -> Self {
        Quat::new(q.x, q.y, q.z, q.w)
    }
}

impl From<Quat> for openxr_sys::Quaternionf {
    fn from(q: Quat) -> Self {
        openxr_sys::Quaternionf {
            x: q.x,
            y: q.y,
            z: q.z,
            w: q.w,
        }
    }
}

impl From<openxr_sys::Posef> for Pose {
    fn from(p: openxr_sys::Posef) -> Self {
        Pose::new(p.orientation.into(), p.position.into())
    }
}

impl From<Pose> for openxr_sys::Posef {
    fn from(p: Pose) -> Self {
        openxr_sys::Posef {
            orientation: p.orientation.into(),
            position: p.position.into(),
        }
    }
}

/// A tracked device of a peer: the head, the left and right hand / controller, and up to
/// [`Device::MAX_TRACKERS`] extra trackers. A plain `u8` index on the C side.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Device(u8);

impl Device {
    /// The head (HMD view pose).
    pub const HEAD: Device = Device(0);
    /// The left hand or controller.
    pub const LEFT_HAND: Device = Device(1);
    /// The right hand or controller.
    pub const RIGHT_HAND: Device = Device(2);
    /// How many extra trackers a peer may have.
    pub const MAX_TRACKERS: u8 = 8;
    /// How many devices a peer may have in all (head, two hands, the extra trackers).
    pub const COUNT: usize = 3 + Device::MAX_TRACKERS as usize;

    /// The device with this index (0 head, 1 left hand, 2 right hand, 3..=10 trackers),
    /// or `None` when out of range.
    pub const fn from_index(index: u8) -> Option<Device> {
        if (index as usize) < Device::COUNT {
            Some(Device(index))
        } else {
            None
        }
    }

    /// Extra tracker number `n` (0-based), or `None` when `n >= MAX_TRACKERS`.
    pub const fn tracker(n: u8) -> Option<Device> {
        if n < Device::MAX_TRACKERS {
            Some(Device(3 + n))
        } else {
            None
        }
    }

    /// The index of this device (0..[`Device::COUNT`]).
    pub const fn index(self) -> u8 {
        self.0
    }

    /// Whether this is a hand / controller (which carries a [`ControllerState`]).
    pub const fn is_hand(self) -> bool {
        self.0 == 1 || self.0 == 2
    }

    /// A stable, human-readable name: `head`, `left_hand`, `right_hand`, `tracker0`..`tracker7`.
    pub const fn name(self) -> &'static str {
        const NAMES: [&str; Device::COUNT] = [
            "head",
            "left_hand",
            "right_hand",
            "tracker0",
            "tracker1",
            "tracker2",
            "tracker3",
            "tracker4",
            "tracker5",
            "tracker6",
            "tracker7",
        ];
        NAMES[self.0 as usize]
    }

    /// Every device, in index order.
    pub fn all() -> impl Iterator<Item = Device> {
        (0..Device::COUNT as u8).map(Device)
    }
}

impl core::fmt::Display for Device {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Validity / tracking flags of a pose, with the bit values of OpenXR's
/// `XrSpaceLocationFlags` (bits 0..=3), held in a `u8` for blittable C structs.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PoseFlags(u8);

impl PoseFlags {
    /// No flag set: nothing valid, nothing tracked.
    pub const EMPTY: PoseFlags = PoseFlags(0);
    /// The orientation is valid (`XR_SPACE_LOCATION_ORIENTATION_VALID_BIT`).
    pub const ORIENTATION_VALID: PoseFlags = PoseFlags(1 << 0);
    /// The position is valid (`XR_SPACE_LOCATION_POSITION_VALID_BIT`).
    pub const POSITION_VALID: PoseFlags = PoseFlags(1 << 1);
    /// The orientation is actively tracked (`XR_SPACE_LOCATION_ORIENTATION_TRACKED_BIT`).
    pub const ORIENTATION_TRACKED: PoseFlags = PoseFlags(1 << 2);
    /// The position is actively tracked (`XR_SPACE_LOCATION_POSITION_TRACKED_BIT`).
    pub const POSITION_TRACKED: PoseFlags = PoseFlags(1 << 3);
    /// All four bits: valid and tracked.
    pub const ALL: PoseFlags = PoseFlags(0b1111);

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Flags from raw bits; bits outside [`PoseFlags::ALL`] are dropped.
    pub const fn from_bits_truncate(bits: u8) -> PoseFlags {
        PoseFlags(bits & PoseFlags::ALL.0)
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: PoseFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    pub const fn union(self, other: PoseFlags) -> PoseFlags {
        PoseFlags(self.0 | other.0)
    }
}

impl core::ops::BitOr for PoseFlags {
    type Output = PoseFlags;
    fn bitor(self, rhs: PoseFlags) -> PoseFlags {
        self.union(rhs)
    }
}

impl From<openxr_sys::SpaceLocationFlags> for PoseFlags {
    fn from(f: openxr_sys::SpaceLocationFlags) -> Self {
        // Only bits 0..=3 are defined; truncation to u8 after masking is exact.
        PoseFlags::from_bits_truncate((f.into_raw() & 0b1111) as u8)
    }
}

impl From<PoseFlags> for openxr_sys::SpaceLocationFlags {
    fn from(f: PoseFlags) -> Self {
        openxr_sys::SpaceLocationFlags::from_raw(u64::from(f.bits()))
    }
}

/// The input state of a hand controller, as in the seed: a buttons bitmask, analog trigger
/// and grip in `[0, 1]`, thumbstick x / y in `[-1, 1]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ControllerState {
    /// Pressed buttons, one bit each (the mapping is the application's).
    pub buttons: u32,
    /// Trigger value, `0.0` released to `1.0` fully pressed.
    pub trigger: f32,
    /// Grip value, `0.0` released to `1.0` fully pressed.
    pub grip: f32,
    /// Thumbstick x, `-1.0` left to `1.0` right.
    pub thumb_x: f32,
    /// Thumbstick y, `-1.0` down to `1.0` up.
    pub thumb_y: f32,
}

/// One sample of a tracked device: a pose at an OpenXR time with its flags and optional
/// velocities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoseSample {
    /// The pose.
    pub pose: Pose,
    /// The sample time in OpenXR nanoseconds (`XrTime`).
    pub time: i64,
    /// Validity / tracking flags.
    pub flags: PoseFlags,
    /// Linear velocity in metres per second, when known.
    pub linear_velocity: Option<Vec3>,
    /// Angular velocity in radians per second (axis × rate), when known.
    pub angular_velocity: Option<Vec3>,
}

/// Why a pose or sample was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoseError {
    /// A component of the orientation is NaN or infinite.
    #[error("pose orientation has a NaN or infinite component")]
    NonFiniteOrientation,
    /// A component of the position is NaN or infinite.
    #[error("pose position has a NaN or infinite component")]
    NonFinitePosition,
    /// The orientation quaternion is zero (norm below [`MIN_QUAT_NORM`]): no rotation.
    #[error("pose orientation is a zero quaternion (norm below 1e-6)")]
    ZeroQuaternion,
    /// A velocity has a NaN or infinite component.
    #[error("pose velocity has a NaN or infinite component")]
    NonFiniteVelocity,
}

/// Quaternions with a norm below this are rejected as zero.
pub const MIN_QUAT_NORM: f64 = 1e-6;

/// Validates a pose and returns it with a unit orientation: NaN or infinite components and
/// a (near-)zero quaternion are errors; a non-unit quaternion is normalised.
pub fn validate_pose(pose: &Pose) -> Result<Pose, PoseError> {
    if !pose.orientation.is_finite() {
        return Err(PoseError::NonFiniteOrientation);
    }
    if !pose.position.is_finite() {
        return Err(PoseError::NonFinitePosition);
    }
    let norm = pose.orientation.norm();
    // Components are finite here, so the f64 norm is finite and not NaN.
    if norm < MIN_QUAT_NORM || !norm.is_finite() {
        return Err(PoseError::ZeroQuaternion);
    }
    let q = pose
        .orientation
        .to_array()
        .map(|c| (f64::from(c) / norm) as f32);
    Ok(Pose::new(Quat::from_array(q), pose.position))
}

/// Validates a sample ([`validate_pose`] plus finite velocities) and returns it with a
/// unit orientation. Time monotonicity is the caller's (per device) concern.
pub fn validate_sample(sample: &PoseSample) -> Result<PoseSample, PoseError> {
    let pose = validate_pose(&sample.pose)?;
    for v in [sample.linear_velocity, sample.angular_velocity]
        .into_iter()
        .flatten()
    {
        if !v.is_finite() {
            return Err(PoseError::NonFiniteVelocity);
        }
    }
    Ok(PoseSample { pose, ..*sample })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openxr_sys::SpaceLocationFlags as X;

    #[test]
    fn flag_bits_equal_openxr() {
        // openxr-sys's `into_raw` is not a `const fn`, so this one is checked at test time.
        assert_eq!(
            u64::from(PoseFlags::ORIENTATION_VALID.bits()),
            X::ORIENTATION_VALID.into_raw()
        );
        assert_eq!(
            u64::from(PoseFlags::POSITION_VALID.bits()),
            X::POSITION_VALID.into_raw()
        );
        assert_eq!(
            u64::from(PoseFlags::ORIENTATION_TRACKED.bits()),
            X::ORIENTATION_TRACKED.into_raw()
        );
        assert_eq!(
            u64::from(PoseFlags::POSITION_TRACKED.bits()),
            X::POSITION_TRACKED.into_raw()
        );
        let all = X::ORIENTATION_VALID | X::POSITION_VALID | X::ORIENTATION_TRACKED;
        let f = PoseFlags::from(all);
        assert!(f.contains(PoseFlags::ORIENTATION_TRACKED));
        assert!(!f.contains(PoseFlags::POSITION_TRACKED));
        assert_eq!(X::from(f), all);
    }

    #[test]
    fn angle_between_quaternions() {
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let q90 = Quat::new(0.0, h, 0.0, h);
        assert!((Quat::IDENTITY.angle_deg(q90) - 90.0).abs() < 1e-4);
        let neg = Quat::from_array(q90.to_array().map(|c| -c));
        assert!(q90.angle_deg(neg) < 1e-4);
        let q180 = Quat::new(1.0, 0.0, 0.0, 0.0);
        assert!((Quat::IDENTITY.angle_deg(q180) - 180.0).abs() < 1e-4);
        let (s, c) = (0.0005f64.to_radians()).sin_cos();
        let tiny = Quat::new(0.0, 0.0, s as f32, c as f32);
        assert!((Quat::IDENTITY.angle_deg(tiny) - 0.001).abs() < 1e-4);
    }

    #[test]
    fn pose_converts_to_and_from_openxr() {
        let p = Pose::new(Quat::new(0.1, 0.2, 0.3, 0.9), Vec3::new(1.0, 2.0, 3.0));
        let x: openxr_sys::Posef = p.into();
        assert_eq!(x.orientation.w, 0.9);
        assert_eq!(x.position.z, 3.0);
        assert_eq!(Pose::from(x), p);
    }

    #[test]
    fn devices_have_names_and_indices() {
        assert_eq!(Device::HEAD.name(), "head");
        assert_eq!(Device::RIGHT_HAND.to_string(), "right_hand");
        assert_eq!(Device::tracker(7).map(Device::name), Some("tracker7"));
        assert_eq!(Device::tracker(8), None);
        assert_eq!(Device::from_index(10), Device::tracker(7));
        assert_eq!(Device::from_index(11), None);
        assert_eq!(Device::all().count(), Device::COUNT);
        assert!(Device::LEFT_HAND.is_hand() && !Device::HEAD.is_hand());
    }

    #[test]
    fn invalid_poses_are_rejected() {
        let ok = Pose::IDENTITY;
        let mut p = ok;
        p.orientation.x = f32::NAN;
        assert_eq!(validate_pose(&p), Err(PoseError::NonFiniteOrientation));
        let mut p = ok;
        p.orientation.w = f32::INFINITY;
        assert_eq!(validate_pose(&p), Err(PoseError::NonFiniteOrientation));
        let mut p = ok;
        p.position.y = f32::NEG_INFINITY;
        assert_eq!(validate_pose(&p), Err(PoseError::NonFinitePosition));
        let mut p = ok;
        p.position.z = f32::NAN;
        assert_eq!(validate_pose(&p), Err(PoseError::NonFinitePosition));
        let p = Pose::new(Quat::new(0.0, 0.0, 0.0, 0.0), Vec3::ZERO);
        assert_eq!(validate_pose(&p), Err(PoseError::ZeroQuaternion));
        let p = Pose::new(Quat::new(1e-8, 0.0, -1e-8, 0.0), Vec3::ZERO);
        assert_eq!(validate_pose(&p), Err(PoseError::ZeroQuaternion));
        assert!(PoseError::ZeroQuaternion
            .to_string()
            .contains("zero quaternion"));
        let s = PoseSample {
            pose: ok,
            time: 1,
            flags: PoseFlags::ALL,
            linear_velocity: Some(Vec3::new(0.0, f32::NAN, 0.0)),
            angular_velocity: None,
        };
        assert_eq!(validate_sample(&s), Err(PoseError::NonFiniteVelocity));
    }

    #[test]
    fn non_unit_quaternions_are_normalised() {
        let p = Pose::new(Quat::new(0.0, 0.0, 3.0, 4.0), Vec3::new(1.0, 2.0, 3.0));
        let v = validate_pose(&p).expect("valid");
        assert!((v.orientation.norm() - 1.0).abs() < 1e-6);
        assert!((v.orientation.z - 0.6).abs() < 1e-6 && (v.orientation.w - 0.8).abs() < 1e-6);
        assert_eq!(v.position, p.position);
        let s = PoseSample {
            pose: p,
            time: 5,
            flags: PoseFlags::ALL,
            linear_velocity: Some(Vec3::ZERO),
            angular_velocity: None,
        };
        let vs = validate_sample(&s).expect("valid");
        assert_eq!(vs.pose, v);
        assert_eq!(vs.time, 5);
    }
}
