//! A device's sample as the pose stream carries it: quantised pose, time in wire units,
//! flags, and the velocities and controller state as integers.

use super::super::pose::{ControllerState, Device, Pose, PoseFlags, PoseSample, Quat, Vec3};
use super::super::predict::{quantize_toward, Reference};
use super::super::quantize::{QuantizeError, QuantizedPose, Volume};
use super::{MAX_VELOCITY_UNITS, TIME_UNIT_NS, VELOCITY_UNIT};

/// A device's linear and angular velocity as integers, in [`VELOCITY_UNIT`] steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QuantizedVelocity {
    /// Linear velocity per axis, steps of 8 mm/s, at most [`MAX_VELOCITY_UNITS`] in
    /// magnitude.
    pub linear: [i16; 3],
    /// Angular velocity per axis, steps of 8 mrad/s, likewise bounded.
    pub angular: [i16; 3],
}

impl QuantizedVelocity {
    /// Quantises velocities (m/s and rad/s), clamped to ±[`MAX_VELOCITY_UNITS`] steps
    /// (±65.528).
    pub fn new(linear: Vec3, angular: Vec3) -> Self {
        let max = f64::from(MAX_VELOCITY_UNITS);
        let q = |v: Vec3| {
            v.to_array()
                .map(|c| (f64::from(c) / VELOCITY_UNIT).round().clamp(-max, max) as i16)
        };
        QuantizedVelocity {
            linear: q(linear),
            angular: q(angular),
        }
    }

    /// Linear velocity in m/s.
    pub fn linear(&self) -> Vec3 {
        let [x, y, z] = self.linear.map(|c| (f64::from(c) * VELOCITY_UNIT) as f32);
        Vec3::new(x, y, z)
    }

    /// Angular velocity in rad/s.
    pub fn angular(&self) -> Vec3 {
        let [x, y, z] = self.angular.map(|c| (f64::from(c) * VELOCITY_UNIT) as f32);
        Vec3::new(x, y, z)
    }
}

/// A [`ControllerState`] as integers: analog values in 1/255 (trigger, grip) and 1/127
/// (thumbstick) steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QuantizedController {
    /// Buttons bitmask.
    pub buttons: u32,
    /// Trigger, `0..=255`.
    pub trigger: u8,
    /// Grip, `0..=255`.
    pub grip: u8,
    /// Thumbstick x, `-127..=127`.
    pub thumb_x: i8,
    /// Thumbstick y, `-127..=127`.
    pub thumb_y: i8,
}

impl QuantizedController {
    /// Quantises a controller state; out-of-range or NaN analog values are clamped (NaN to 0).
    pub fn new(state: &ControllerState) -> Self {
        let unit = |v: f32| {
            if v.is_nan() {
                0
            } else {
                (f64::from(v).clamp(0.0, 1.0) * 255.0).round() as u8
            }
        };
        let axis = |v: f32| {
            if v.is_nan() {
                0
            } else {
                (f64::from(v).clamp(-1.0, 1.0) * 127.0).round() as i8
            }
        };
        QuantizedController {
            buttons: state.buttons,
            trigger: unit(state.trigger),
            grip: unit(state.grip),
            thumb_x: axis(state.thumb_x),
            thumb_y: axis(state.thumb_y),
        }
    }

    /// The controller state these integers stand for.
    pub fn state(&self) -> ControllerState {
        ControllerState {
            buttons: self.buttons,
            trigger: f32::from(self.trigger) / 255.0,
            grip: f32::from(self.grip) / 255.0,
            thumb_x: f32::from(self.thumb_x.max(-127)) / 127.0,
            thumb_y: f32::from(self.thumb_y.max(-127)) / 127.0,
        }
    }
}

/// A pose kept exactly (its `f32` bit patterns: orientation x, y, z, w, then position x,
/// y, z), so that samples stay comparable and hashable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExactPose([u32; 7]);

impl ExactPose {
    /// Keeps `pose` exactly.
    pub fn new(pose: &Pose) -> Self {
        let o = pose.orientation.to_array();
        let p = pose.position.to_array();
        ExactPose([o[0], o[1], o[2], o[3], p[0], p[1], p[2]].map(f32::to_bits))
    }

    /// The pose kept.
    pub fn pose(&self) -> Pose {
        let v = self.0.map(f32::from_bits);
        Pose::new(
            Quat::from_array([v[0], v[1], v[2], v[3]]),
            Vec3::new(v[4], v[5], v[6]),
        )
    }
}

/// One device's sample as it travels: everything quantised, so a relay forwards it
/// unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamSample {
    /// The device.
    pub device: Device,
    /// The quantised pose (the nearest; a sender may send another within the error bounds,
    /// see [`Self::exact`]).
    pub pose: QuantizedPose,
    /// The sender's unquantised pose, never on the wire: with it the sender quantises
    /// against the receiver's prediction ([`quantize_toward`]), which costs fewer bits
    /// within the same error bounds. `None` in what a receiver decodes (a relay forwards
    /// `pose` as it is).
    pub exact: Option<ExactPose>,
    /// The sample time in [`TIME_UNIT_NS`] units.
    pub time: i64,
    /// Validity / tracking flags.
    pub flags: PoseFlags,
    /// Velocities, when the sender knows them.
    pub velocity: Option<QuantizedVelocity>,
    /// The controller state, when the sender includes it.
    pub controller: Option<QuantizedController>,
}

impl StreamSample {
    /// Quantises a (validated) sample whose time is in nanoseconds. Returns whether the
    /// position was clamped into the volume.
    pub fn from_sample(
        device: Device,
        sample: &PoseSample,
        controller: Option<&ControllerState>,
        volume: &Volume,
    ) -> Result<(StreamSample, bool), QuantizeError> {
        let (pose, clamped) = QuantizedPose::from_pose(&sample.pose, volume)?;
        let velocity = match (sample.linear_velocity, sample.angular_velocity) {
            (None, None) => None,
            (l, a) => Some(QuantizedVelocity::new(
                l.unwrap_or(Vec3::ZERO),
                a.unwrap_or(Vec3::ZERO),
            )),
        };
        Ok((
            StreamSample {
                device,
                pose,
                exact: (!clamped).then(|| ExactPose::new(&sample.pose)),
                time: time_to_units(sample.time),
                flags: sample.flags,
                velocity,
                controller: controller.map(QuantizedController::new),
            },
            clamped,
        ))
    }

    /// The sample as it goes out against `reference`: quantised toward the receiver's
    /// prediction when the exact pose is known, without the exact pose.
    pub(crate) fn as_sent(
        &self,
        reference: Option<Reference>,
        volume: &Volume,
    ) -> Result<StreamSample, QuantizeError> {
        let pose = match (&self.exact, reference) {
            (Some(exact), Some(reference)) => quantize_toward(&exact.pose(), &reference, volume)?,
            _ => self.pose,
        };
        Ok(StreamSample {
            pose,
            exact: None,
            ..*self
        })
    }

    /// The sample these integers stand for, with its time in nanoseconds.
    pub fn to_sample(&self, volume: &Volume) -> PoseSample {
        PoseSample {
            pose: self.pose.to_pose(volume),
            time: self.time.saturating_mul(TIME_UNIT_NS),
            flags: self.flags,
            linear_velocity: self.velocity.map(|v| v.linear()),
            angular_velocity: self.velocity.map(|v| v.angular()),
        }
    }
}

/// Nanoseconds to wire time units, rounded to nearest.
pub fn time_to_units(ns: i64) -> i64 {
    let half = TIME_UNIT_NS / 2;
    ns.saturating_add(half).div_euclid(TIME_UNIT_NS)
}
