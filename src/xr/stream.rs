//! The pose stream of one direction of one link: bit-packed packets of quantised device
//! samples, each coded against what the receiver acknowledged.
//!
//! A [`PoseSender`] turns the newest sample of each device of one or more *sources* (peers
//! whose avatars travel on this link) into a packet; a [`PoseReceiver`] decodes packets and
//! tells the sender, through acknowledgements carried by the packets of the other
//! direction, which packet it received last. The sender codes a device against the
//! receiver's copy of that device in the newest acknowledged packet (and, for the velocity
//! and acceleration, the two acknowledged before it) with [`super::predict`]; whatever the
//! receiver did not acknowledge is never referenced, so loss, duplication and reordering
//! cannot desynchronise the two.
//!
//! # Packet (bits least significant first, see [`super::bits`])
//! | field | bits | meaning |
//! |---|---|---|
//! | seq low | 6 | the packet's sequence number, low bits |
//! | kind | 1 | `0`: a pose packet (`1` is reserved for clock messages) |
//! | tag | 1 | always `1`: the first byte is ≥ `0x80`, telling pose packets from state datagrams |
//! | long | 1 | `1`: the sequence number is long ([`SEQ_BITS`] = 12 bits in all), `0`: short ([`SHORT_SEQ_BITS`] = 7) |
//! | seq high | 6 or 1 | the sequence number's other bits |
//! | explicit sources | 1 | `0`: at most one section, of the sender itself; `1`: sections name their source |
//! | sections | … | see below |
//! | ack | 1, 2 + … or 3 + 7 or 3 + 12 | the sequence number of the last packet received from the other side (see [`Ack`] and below) |
//!
//! Sections: with implicit sources `1` for a standard section (below), `01` for another
//! section, `00` for none (an acknowledgement alone); with explicit sources, before each
//! section a `1` bit and the source peer id (`1` + 6 bits below 64, else `0` + 16 bits),
//! and a final `0` bit.
//!
//! Section: a "standard" bit (`1`: head and both hands, all fully tracked, one time; with
//! implicit sources it is the bit above), else a device mask (3 bits head / left / right,
//! 1 bit "trackers", then 8 tracker bits if set; never empty); the references (the age in
//! packets minus one as an order-1 Exp-Golomb code, [`MAX_REFERENCE_AGE`] for none; then
//! `1` when the previous and the earlier reference are each one packet before the next,
//! else `0` and the gap to the previous reference, and when there is one the gap from it
//! to the earlier one, each `1` for one packet, else `0` and 3 bits, `0` = none); an
//! "extras" bit, then per device in index order:
//! - time, in [`TIME_UNIT_NS`] units: in a standard section only for the first device;
//!   otherwise after the first device a bit "same as the device before". A time is a
//!   prefix code against the time predicted from the device's last two references (`0`
//!   exact, `10` and a sign bit for ±1 unit, `110`, a sign bit and an order-0 Exp-Golomb
//!   code of the magnitude minus 2 up to 2¹⁶, `111` and the 48-bit absolute time), or the
//!   48-bit absolute time when the device has no reference;
//! - flags (not in a standard section): `1` = all four `XrSpaceLocationFlags` bits, else
//!   `0` and the 4 bits;
//! - the pose: [`encode_quantized_predicted`] against the references when the reference
//!   packet holds this device, else absolute ([`write_quantized`]);
//! - with extras: a velocity bit (and 6 × 16 bits: mm/s, mrad/s) and a controller bit
//!   (and 32 + 4 × 8 bits).
//!
//! Acknowledgement: `0` for none, else `1`; then, when some section has references whose
//! newest packet carried an acknowledgement (the first such section is the base), a bit:
//! `1` and an order-0 Exp-Golomb code of the zigzag of the distance from the base's
//! acknowledgement plus the reference's age (same form only; both directions stream at
//! about the same rate, so this is mostly `1` bit), or `0`; unless so predicted, the
//! explicit form follows: `0` and 7 bits (short) or `1` and 12 bits (long). It comes last
//! because it is coded against the references the sections name; the reference packet is
//! needed to decode the packet anyway, so this costs no robustness.
//!
//! # Sequence numbers
//! Numbers are 12 bits on the wire (long form). The receiver expands each to the value
//! nearest the highest it has seen and drops packets more than [`MAX_REFERENCE_AGE`] older
//! than that, so it stays exact while fewer than 2048 packets in a row are lost (about 22 s
//! at 90 Hz, beyond any idle timeout). The sender switches to 7 bits (short form) while
//! it holds an acknowledgement of a packet at most [`SHORT_SEQ_LEAD`] (16) before the
//! current one: the receiver's highest number is then at most 16 below it, and it refuses
//! a short number expanding to more than 16 above its highest, so a short number is
//! misread only if a datagram arrives 112 or more packets (over a second at 90 Hz) after
//! a newer one. The sender references only acknowledged packets: the newest at most
//! [`MAX_REFERENCE_AGE`] old, the two before it each at most [`MAX_PREVIOUS_GAP`] earlier;
//! both sides keep [`HISTORY`] packets.

use std::collections::VecDeque;

use super::bits::{unzigzag, zigzag, BitError, BitReader, BitWriter};
use super::pose::{ControllerState, Device, Pose, PoseFlags, PoseSample, Quat, Vec3};
use super::predict::{
    encode_quantized_predicted, quantize_toward, read_quantized_predicted, Reference,
};
use super::quantize::{read_quantized, write_quantized, QuantizeError, QuantizedPose, Volume};

/// Nanoseconds per unit of time on the wire (0.1 ms).
pub const TIME_UNIT_NS: i64 = 100_000;
/// Bits of a sequence number on the wire (long form).
pub const SEQ_BITS: u32 = 12;
/// Bits of a sequence number in the short form.
pub const SHORT_SEQ_BITS: u32 = 7;
/// The short form is used at most this many packets past the newest acknowledged one.
pub const SHORT_SEQ_LEAD: u64 = 16;
/// Bits of a short acknowledgement.
pub const SHORT_ACK_BITS: u32 = 7;

/// An acknowledgement as a packet carries it: the low bits of the sequence number of the
/// last packet received from the other side, 12 (long) or [`SHORT_ACK_BITS`] (short).
///
/// The sender matches it against the [`HISTORY`] packets it remembers, so a short one is
/// exact while fewer than 128 of the sender's packets are in flight; the side that
/// acknowledges chooses the short form only when the round trip makes that certain with a
/// margin (`net::poses`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The low bits of the acknowledged sequence number.
    pub seq: u16,
    /// Whether only [`SHORT_ACK_BITS`] bits are sent.
    pub short: bool,
}

impl Ack {
    /// The acknowledgement of full sequence number `seq`, in the long or short form.
    pub fn new(seq: u64, short: bool) -> Ack {
        let bits = if short { SHORT_ACK_BITS } else { SEQ_BITS };
        Ack {
            seq: (seq & ((1 << bits) - 1)) as u16,
            short,
        }
    }

    fn bits(self) -> u32 {
        if self.short {
            SHORT_ACK_BITS
        } else {
            SEQ_BITS
        }
    }
}

/// Oldest reference a packet may name, in packets.
pub const MAX_REFERENCE_AGE: u64 = 31;
/// Largest gap between consecutive references of a device, in packets.
pub const MAX_PREVIOUS_GAP: u64 = 7;
/// Packets the sender remembers and receiver slots.
pub const HISTORY: usize = 64;
/// Most sections a packet may hold.
pub const MAX_SECTIONS: usize = 256;
/// Value of the first byte's top two bits for a pose packet (`10`) and a clock message (`11`).
pub const POSE_PACKET_TAG: u8 = 0b1000_0000;
/// See [`POSE_PACKET_TAG`].
pub const CLOCK_MESSAGE_TAG: u8 = 0b1100_0000;

const GAP_BITS: u32 = 3;
const TIME_ABS_BITS: u32 = 48;
/// The largest time residual (in magnitude) coded against the prediction.
const MAX_TIME_RESIDUAL: u128 = 1 << 16;
/// Devices of a standard section: head, left and right.
const STANDARD_MASK: u64 = 0b111;
const SMALL_SOURCE_BITS: u32 = 6;

/// Why a packet could not be built or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The packet ended early or a field was malformed.
    #[error("pose packet: {0}")]
    Bits(#[from] BitError),
    /// A pose field is corrupt, or a pose does not fit the volume.
    #[error("pose packet: {0}")]
    Pose(#[from] QuantizeError),
    /// The bytes are not a pose packet (wrong tag or kind).
    #[error("not a pose packet")]
    NotAPosePacket,
    /// The packet is structurally impossible.
    #[error("corrupt pose packet: {0}")]
    Corrupt(&'static str),
    /// The packet names a reference the receiver does not hold.
    #[error("pose packet names reference packet {0}, which was not received")]
    MissingReference(i64),
    /// The packet was received before.
    #[error("duplicate pose packet")]
    Duplicate,
    /// The packet is older than any packet the sender may still reference.
    #[error("stale pose packet")]
    Stale,
}

/// A device's linear (mm/s) and angular (mrad/s) velocity as integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QuantizedVelocity {
    /// Millimetres per second per axis.
    pub linear: [i16; 3],
    /// Milliradians per second per axis.
    pub angular: [i16; 3],
}

impl QuantizedVelocity {
    /// Quantises velocities (m/s and rad/s), clamped to ±32.767.
    pub fn new(linear: Vec3, angular: Vec3) -> Self {
        let q = |v: Vec3| {
            v.to_array()
                .map(|c| (f64::from(c) * 1000.0).round().clamp(-32767.0, 32767.0) as i16)
        };
        QuantizedVelocity {
            linear: q(linear),
            angular: q(angular),
        }
    }

    /// Linear velocity in m/s.
    pub fn linear(&self) -> Vec3 {
        let [x, y, z] = self.linear.map(|c| f32::from(c) / 1000.0);
        Vec3::new(x, y, z)
    }

    /// Angular velocity in rad/s.
    pub fn angular(&self) -> Vec3 {
        let [x, y, z] = self.angular.map(|c| f32::from(c) / 1000.0);
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
    fn as_sent(
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

/// The samples of one source in a packet, in device order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// The source peer.
    pub source: u16,
    /// At most one sample per device, in ascending device order.
    pub samples: Vec<StreamSample>,
}

/// What the receiver keeps of a device in a packet: enough to be a reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kept {
    device: Device,
    pose: QuantizedPose,
    time: i64,
}

#[derive(Clone, Debug, Default)]
struct Record {
    seq: i64,
    sections: Vec<(u16, Vec<Kept>)>,
    /// The acknowledgement the packet carried.
    ack: Option<Ack>,
}

impl Record {
    fn section(&self, source: u16) -> Option<&[Kept]> {
        self.sections
            .iter()
            .find(|(s, _)| *s == source)
            .map(|(_, k)| k.as_slice())
    }

    fn from_sections(seq: i64, sections: &[Section], ack: Option<Ack>) -> Record {
        Record {
            seq,
            ack,
            sections: sections
                .iter()
                .map(|s| {
                    let kept = s
                        .samples
                        .iter()
                        .map(|x| Kept {
                            device: x.device,
                            pose: x.pose,
                            time: x.time,
                        })
                        .collect();
                    (s.source, kept)
                })
                .collect(),
        }
    }
}

fn kept(section: Option<&[Kept]>, device: Device) -> Option<Kept> {
    section?.iter().find(|k| k.device == device).copied()
}

/// The references of one section: packet ages and the kept devices of the packets.
struct Refs<'a> {
    age: u64,
    gap: u64,
    gap2: u64,
    /// The acknowledgement the `last` packet carried.
    last_ack: Option<Ack>,
    last: Option<&'a [Kept]>,
    previous: Option<&'a [Kept]>,
    earlier: Option<&'a [Kept]>,
}

impl Refs<'_> {
    fn none() -> Self {
        Refs {
            age: 0,
            gap: 0,
            gap2: 0,
            last_ack: None,
            last: None,
            previous: None,
            earlier: None,
        }
    }

    fn reference(&self, device: Device) -> Option<Reference> {
        let last = kept(self.last, device)?;
        let previous = kept(self.previous, device);
        let earlier = kept(self.earlier, device).filter(|_| previous.is_some());
        Some(Reference {
            last: last.pose,
            previous: previous.map(|p| p.pose),
            earlier: earlier.map(|e| e.pose),
            frames_between_refs: if previous.is_some() {
                self.gap as u32
            } else {
                0
            },
            frames_before_previous: if earlier.is_some() {
                self.gap2 as u32
            } else {
                0
            },
            frames_since_last: self.age as u32,
            head: device == Device::HEAD,
        })
    }

    /// What an acknowledgement is coded against: the reference's age and the
    /// acknowledgement the reference packet carried.
    fn ack_base(&self) -> Option<(u64, Ack)> {
        Some((self.age, self.last_ack?)).filter(|_| self.age > 0)
    }

    fn predicted_time(&self, device: Device) -> Option<i64> {
        let last = kept(self.last, device)?;
        let Some(prev) = kept(self.previous, device) else {
            return Some(last.time);
        };
        let num = (i128::from(last.time) - i128::from(prev.time)) * i128::from(self.age);
        let g = i128::from(self.gap.max(1));
        let step = (2 * num + g).div_euclid(2 * g);
        Some(
            (i128::from(last.time) + step).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        )
    }
}

fn write_time(w: &mut BitWriter, time: i64, predicted: Option<i64>) {
    let Some(p) = predicted else {
        w.write_signed(time, TIME_ABS_BITS);
        return;
    };
    // Prefix code by how often each case occurs at a steady frame rate: the prediction is
    // exact or off by a few units (the frame period rounded to 0.1 ms, times the age).
    match i128::from(time) - i128::from(p) {
        0 => w.write_bool(false),
        residual @ (-1 | 1) => {
            w.write_bits(0b01, 2);
            w.write_bool(residual > 0);
        }
        residual if (2..=MAX_TIME_RESIDUAL).contains(&residual.unsigned_abs()) => {
            w.write_bits(0b011, 3);
            w.write_bool(residual > 0);
            write_exp_golomb0(w, residual.unsigned_abs() as u64 - 2);
        }
        _ => {
            w.write_bits(0b111, 3);
            w.write_signed(time, TIME_ABS_BITS);
        }
    }
}

fn read_time(r: &mut BitReader<'_>, predicted: Option<i64>) -> Result<i64, StreamError> {
    let Some(p) = predicted else {
        return Ok(r.read_signed(TIME_ABS_BITS)?);
    };
    let residual = if !r.read_bool()? {
        0
    } else if !r.read_bool()? {
        if r.read_bool()? {
            1
        } else {
            -1
        }
    } else if !r.read_bool()? {
        let positive = r.read_bool()?;
        let magnitude = read_exp_golomb0(r, MAX_TIME_RESIDUAL as u64 - 2)? as i64 + 2;
        if positive {
            magnitude
        } else {
            -magnitude
        }
    } else {
        return Ok(r.read_signed(TIME_ABS_BITS)?);
    };
    p.checked_add(residual)
        .ok_or(StreamError::Corrupt("time overflows"))
}

/// Writes the references: `age − 1` as an order-1 Exp-Golomb code (2 bits for ages 1–2,
/// 4 for 3–6, …; [`MAX_REFERENCE_AGE`] for none), then `1` for the usual gaps of one
/// packet between the references, else `0`, the gap to the previous reference and, when
/// there is one, the gap from it to the earlier one (each `1` for one, else `0` and 3
/// bits, `0` = none).
fn write_refs(w: &mut BitWriter, refs: &Refs<'_>) {
    if refs.age == 0 {
        write_exp_golomb1(w, MAX_REFERENCE_AGE);
        return;
    }
    write_exp_golomb1(w, refs.age - 1);
    let usual = refs.gap == 1 && refs.gap2 == 1;
    w.write_bool(usual);
    if !usual {
        write_gap(w, refs.gap);
        if refs.gap != 0 {
            write_gap(w, refs.gap2);
        }
    }
}

fn write_gap(w: &mut BitWriter, gap: u64) {
    w.write_bool(gap == 1);
    if gap != 1 {
        w.write_bits(gap, GAP_BITS);
    }
}

fn read_gap(r: &mut BitReader<'_>) -> Result<u64, StreamError> {
    if r.read_bool()? {
        return Ok(1);
    }
    match r.read_bits(GAP_BITS)? {
        1 => Err(StreamError::Corrupt("gap 1 in long form")),
        gap => Ok(gap),
    }
}

/// Reads what [`write_refs`] wrote: `(age, gap, gap2)`, zeros for none.
fn read_refs(r: &mut BitReader<'_>) -> Result<(u64, u64, u64), StreamError> {
    let age = match read_exp_golomb1(r)? {
        MAX_REFERENCE_AGE => return Ok((0, 0, 0)),
        v if v > MAX_REFERENCE_AGE => return Err(StreamError::Corrupt("reference too old")),
        v => v + 1,
    };
    if r.read_bool()? {
        return Ok((age, 1, 1));
    }
    let gap = read_gap(r)?;
    let gap2 = if gap != 0 { read_gap(r)? } else { 0 };
    Ok((age, gap, gap2))
}

/// Order-1 Exp-Golomb code of `value` (small values short; at most 2·6 bits here).
fn write_exp_golomb1(w: &mut BitWriter, value: u64) {
    let shifted = value + 2;
    let width = 64 - shifted.leading_zeros(); // bits of `shifted`, ≥ 2
    w.write_bits(0, width - 2);
    // The leading `1` ends the zero prefix; bits are read back most significant first.
    for bit in (0..width).rev() {
        w.write_bool(shifted >> bit & 1 == 1);
    }
}

fn read_exp_golomb1(r: &mut BitReader<'_>) -> Result<u64, StreamError> {
    let mut zeros = 0;
    while !r.read_bool()? {
        zeros += 1;
        if zeros > 6 {
            return Err(StreamError::Corrupt("reference age code too long"));
        }
    }
    let mut shifted = 1u64;
    for _ in 0..zeros + 1 {
        shifted = shifted << 1 | u64::from(r.read_bool()?);
    }
    Ok(shifted - 2)
}

/// Largest acknowledgement delta ([`write_ack`]) the decoder accepts, in magnitude.
const MAX_ACK_DELTA: u64 = 1 << 12;

/// The acknowledgement's distance from its prediction, `base` = (reference age, the
/// reference packet's acknowledgement): both sides stream at about the same rate, so an
/// acknowledgement moves on by about as many packets as the reference is old.
fn ack_delta(ack: Ack, base: (u64, Ack)) -> Option<i64> {
    let (age, b) = base;
    if ack.short != b.short {
        return None;
    }
    let modulus = 1i64 << ack.bits();
    let d = (i64::from(ack.seq) - i64::from(b.seq) - age as i64).rem_euclid(modulus);
    Some(if d >= modulus / 2 { d - modulus } else { d })
}

/// Writes the acknowledgement (after the sections, see the module docs) against `base`
/// (the base section's reference age and the acknowledgement its packet carried): the
/// predicted form ([`ack_delta`]) when it is no longer than the explicit one.
fn write_ack(w: &mut BitWriter, ack: Option<Ack>, base: Option<(u64, Ack)>) {
    w.write_bool(ack.is_some());
    let Some(a) = ack else {
        return;
    };
    if let Some(base) = base {
        let delta = ack_delta(a, base).map(zigzag);
        match delta {
            Some(z) if exp_golomb0_bits(z) <= 1 + a.bits() => {
                w.write_bool(true);
                write_exp_golomb0(w, z);
                return;
            }
            _ => w.write_bool(false),
        }
    }
    w.write_bool(!a.short);
    w.write_bits(u64::from(a.seq) & ((1 << a.bits()) - 1), a.bits());
}

fn read_ack(r: &mut BitReader<'_>, base: Option<(u64, Ack)>) -> Result<Option<Ack>, StreamError> {
    if !r.read_bool()? {
        return Ok(None);
    }
    if let Some((age, b)) = base {
        if r.read_bool()? {
            let z = read_exp_golomb0(r, MAX_ACK_DELTA)?;
            let d = unzigzag(z);
            let modulus = 1i64 << b.bits();
            let seq = (i64::from(b.seq) + age as i64 + d).rem_euclid(modulus);
            return Ok(Some(Ack {
                seq: seq as u16,
                short: b.short,
            }));
        }
    }
    let short = !r.read_bool()?;
    let bits = if short { SHORT_ACK_BITS } else { SEQ_BITS };
    Ok(Some(Ack {
        seq: r.read_bits(bits)? as u16,
        short,
    }))
}

fn exp_golomb0_bits(value: u64) -> u32 {
    2 * (63 - (value + 1).leading_zeros()) + 1
}

/// Order-0 Exp-Golomb code of `value`.
fn write_exp_golomb0(w: &mut BitWriter, value: u64) {
    let shifted = value + 1;
    let width = 64 - shifted.leading_zeros();
    w.write_bits(0, width - 1);
    for bit in (0..width).rev() {
        w.write_bool(shifted >> bit & 1 == 1);
    }
}

/// Reads an order-0 Exp-Golomb code; values above `max` are an error.
fn read_exp_golomb0(r: &mut BitReader<'_>, max: u64) -> Result<u64, StreamError> {
    let limit = 64 - (max + 1).leading_zeros();
    let mut zeros = 0;
    while !r.read_bool()? {
        zeros += 1;
        if zeros >= limit {
            return Err(StreamError::Corrupt("Exp-Golomb code too long"));
        }
    }
    let mut shifted = 1u64;
    for _ in 0..zeros {
        shifted = shifted << 1 | u64::from(r.read_bool()?);
    }
    match shifted - 1 {
        v if v > max => Err(StreamError::Corrupt("Exp-Golomb value too large")),
        v => Ok(v),
    }
}

fn write_source(w: &mut BitWriter, source: u16) {
    if source < (1 << SMALL_SOURCE_BITS) {
        w.write_bool(true);
        w.write_bits(u64::from(source), SMALL_SOURCE_BITS);
    } else {
        w.write_bool(false);
        w.write_bits(u64::from(source), 16);
    }
}

fn read_source(r: &mut BitReader<'_>) -> Result<u16, StreamError> {
    let bits = if r.read_bool()? {
        SMALL_SOURCE_BITS
    } else {
        16
    };
    Ok(r.read_bits(bits)? as u16)
}

/// Writes a section. `implicit`: the packet's only section, of the sender itself, whose
/// "standard" bit also tells that the section is there (`1` standard, `01` not).
fn write_section(
    w: &mut BitWriter,
    section: &Section,
    refs: &Refs<'_>,
    volume: &Volume,
    implicit: bool,
) -> Result<(), StreamError> {
    let mut mask = 0u64;
    for s in &section.samples {
        mask |= 1 << s.device.index();
    }
    if mask == 0
        || section
            .samples
            .windows(2)
            .any(|p| p[0].device >= p[1].device)
    {
        return Err(StreamError::Corrupt("section devices empty or unordered"));
    }
    // The common case of a three-point avatar in one bit: head and both hands, fully
    // tracked, sampled at one time.
    let standard = mask == STANDARD_MASK
        && section
            .samples
            .iter()
            .all(|s| s.flags == PoseFlags::ALL && s.time == section.samples[0].time);
    if implicit && !standard {
        w.write_bits(0b10, 2);
    } else {
        w.write_bool(standard);
    }
    if !standard {
        w.write_bits(mask & 0b111, 3);
        let trackers = mask >> 3;
        w.write_bool(trackers != 0);
        if trackers != 0 {
            w.write_bits(trackers, u32::from(Device::MAX_TRACKERS));
        }
    }
    write_refs(w, refs);
    let extras = section
        .samples
        .iter()
        .any(|s| s.velocity.is_some() || s.controller.is_some());
    w.write_bool(extras);
    let mut previous_time = None;
    for s in &section.samples {
        match previous_time {
            Some(_) if standard => {}
            Some(t) if t == s.time => w.write_bool(true),
            Some(_) => {
                w.write_bool(false);
                write_time(w, s.time, refs.predicted_time(s.device));
            }
            None => write_time(w, s.time, refs.predicted_time(s.device)),
        }
        previous_time = Some(s.time);
        if !standard {
            let all = s.flags == PoseFlags::ALL;
            w.write_bool(all);
            if !all {
                w.write_bits(u64::from(s.flags.bits()), 4);
            }
        }
        match refs.reference(s.device) {
            Some(reference) => {
                encode_quantized_predicted(&s.pose, &reference, volume, w)?;
            }
            None => {
                if !s.pose.fits(volume) {
                    return Err(QuantizeError::ReferenceOutOfRange.into());
                }
                write_quantized(&s.pose, volume, w);
            }
        }
        if extras {
            w.write_bool(s.velocity.is_some());
            if let Some(v) = s.velocity {
                for c in v.linear.into_iter().chain(v.angular) {
                    w.write_signed(i64::from(c), 16);
                }
            }
            w.write_bool(s.controller.is_some());
            if let Some(c) = s.controller {
                w.write_bits(u64::from(c.buttons), 32);
                w.write_bits(u64::from(c.trigger), 8);
                w.write_bits(u64::from(c.grip), 8);
                w.write_signed(i64::from(c.thumb_x), 8);
                w.write_signed(i64::from(c.thumb_y), 8);
            }
        }
    }
    Ok(())
}

fn read_section(
    r: &mut BitReader<'_>,
    source: u16,
    seq: i64,
    slots: &[Option<Record>],
    volume: &Volume,
    standard: Option<bool>,
) -> Result<(Section, Option<(u64, Ack)>), StreamError> {
    let standard = match standard {
        Some(s) => s,
        None => r.read_bool()?,
    };
    let mut mask = STANDARD_MASK;
    if !standard {
        mask = r.read_bits(3)?;
        if r.read_bool()? {
            let trackers = r.read_bits(u32::from(Device::MAX_TRACKERS))?;
            if trackers == 0 {
                return Err(StreamError::Corrupt("empty tracker mask"));
            }
            mask |= trackers << 3;
        }
        if mask == 0 {
            return Err(StreamError::Corrupt("empty device mask"));
        }
    }
    let (age, gap, gap2) = read_refs(r)?;
    let mut refs = Refs::none();
    if age > 0 {
        let record = |back: u64| -> Result<&Record, StreamError> {
            let want = seq - back as i64;
            slots
                .get(want.rem_euclid(HISTORY as i64) as usize)
                .and_then(Option::as_ref)
                .filter(|rec| rec.seq == want)
                .ok_or(StreamError::MissingReference(want))
        };
        let find = |back: u64| -> Result<&[Kept], StreamError> {
            Ok(record(back)?.section(source).unwrap_or(&[]))
        };
        refs.age = age;
        refs.gap = gap;
        refs.gap2 = gap2;
        refs.last_ack = record(age)?.ack;
        refs.last = Some(find(age)?);
        if gap > 0 {
            refs.previous = Some(find(age + gap)?);
        }
        if gap2 > 0 {
            refs.earlier = Some(find(age + gap + gap2)?);
        }
    }
    let extras = r.read_bool()?;
    let mut samples = Vec::new();
    let mut previous_time: Option<i64> = None;
    for index in 0..Device::COUNT as u8 {
        if mask & (1 << index) == 0 {
            continue;
        }
        let device = Device::from_index(index).ok_or(StreamError::Corrupt("device"))?;
        let time = match previous_time {
            Some(t) if standard => t,
            Some(t) if r.read_bool()? => t,
            _ => read_time(r, refs.predicted_time(device))?,
        };
        previous_time = Some(time);
        let flags = if standard || r.read_bool()? {
            PoseFlags::ALL
        } else {
            PoseFlags::from_bits_truncate(r.read_bits(4)? as u8)
        };
        let pose = match refs.reference(device) {
            Some(reference) => read_quantized_predicted(r, &reference, volume)?,
            None => read_quantized(r, volume)?,
        };
        if !pose.fits(volume) {
            return Err(StreamError::Corrupt("pose outside the volume"));
        }
        let (mut velocity, mut controller) = (None, None);
        if extras {
            if r.read_bool()? {
                let mut c = [0i16; 6];
                for slot in &mut c {
                    *slot = r.read_signed(16)? as i16;
                }
                velocity = Some(QuantizedVelocity {
                    linear: [c[0], c[1], c[2]],
                    angular: [c[3], c[4], c[5]],
                });
            }
            if r.read_bool()? {
                controller = Some(QuantizedController {
                    buttons: r.read_bits(32)? as u32,
                    trigger: r.read_bits(8)? as u8,
                    grip: r.read_bits(8)? as u8,
                    thumb_x: r.read_signed(8)? as i8,
                    thumb_y: r.read_signed(8)? as i8,
                });
            }
        }
        samples.push(StreamSample {
            device,
            pose,
            exact: None,
            time,
            flags,
            velocity,
            controller,
        });
    }
    let ack_base = refs.ack_base();
    Ok((Section { source, samples }, ack_base))
}

#[derive(Clone, Debug)]
struct Sent {
    seq: u64,
    acked: bool,
    record: Record,
}

/// A packet built by [`PoseSender::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The packet.
    pub bytes: Vec<u8>,
    /// Its full sequence number (for matching acknowledgements).
    pub seq: u64,
    /// How many of the given sections it holds (the first ones; the rest did not fit).
    pub sections: usize,
    /// Those sections as they went out: what the receiver decodes (poses quantised toward
    /// its predictions, no exact poses).
    pub sent: Vec<Section>,
}

/// The sending side of a pose stream (see the module docs).
#[derive(Clone, Debug)]
pub struct PoseSender {
    volume: Volume,
    next_seq: u64,
    history: VecDeque<Sent>,
}

impl PoseSender {
    /// A sender for poses inside `volume` (which both sides must share).
    pub fn new(volume: Volume) -> Self {
        PoseSender {
            volume,
            next_seq: 0,
            history: VecDeque::with_capacity(HISTORY),
        }
    }

    /// Takes in an acknowledgement from the other side (the last packet it received).
    /// Returns that packet's full sequence number when it is one this sender remembers.
    pub fn on_ack(&mut self, ack: Ack) -> Option<u64> {
        let mask = (1u64 << ack.bits()) - 1;
        let sent = self
            .history
            .iter_mut()
            .rev()
            .find(|s| s.seq & mask == u64::from(ack.seq) & mask)?;
        sent.acked = true;
        Some(sent.seq)
    }

    /// Chooses the references for `source`: the newest acknowledged packet holding it at
    /// most [`MAX_REFERENCE_AGE`] old, the newest acknowledged one before that at most
    /// [`MAX_PREVIOUS_GAP`] earlier, and the newest before that one likewise.
    fn refs(&self, seq: u64, source: u16) -> Refs<'_> {
        let mut holding = self
            .history
            .iter()
            .rev()
            .filter(|s| s.acked && seq - s.seq <= MAX_REFERENCE_AGE + 2 * MAX_PREVIOUS_GAP)
            .filter_map(|s| s.record.section(source).map(|k| (s.seq, k)));
        let Some((last_seq, last)) = holding.next().filter(|(s, _)| seq - s <= MAX_REFERENCE_AGE)
        else {
            return Refs::none();
        };
        let last_ack = self
            .history
            .iter()
            .rev()
            .find(|s| s.seq == last_seq)
            .and_then(|s| s.record.ack);
        let previous = holding
            .next()
            .filter(|(s, _)| last_seq - s <= MAX_PREVIOUS_GAP);
        let earlier = previous.and_then(|(previous_seq, _)| {
            holding
                .next()
                .filter(|(s, _)| previous_seq - s <= MAX_PREVIOUS_GAP)
        });
        Refs {
            age: seq - last_seq,
            gap: previous.map_or(0, |(s, _)| last_seq - s),
            gap2: match (previous, earlier) {
                (Some((p, _)), Some((e, _))) => p - e,
                _ => 0,
            },
            last_ack,
            last: Some(last),
            previous: previous.map(|(_, k)| k),
            earlier: earlier.map(|(_, k)| k),
        }
    }

    /// Builds the next packet: `ack` for the other direction, then as many of `sections`
    /// (in order) as fit in `max_bytes`. `explicit_sources` must be set when the packet
    /// carries other peers' samples (a relay); otherwise at most one section is sent and
    /// its source is implied to be the sender. Sections with no samples are skipped.
    pub fn encode(
        &mut self,
        sections: &[Section],
        ack: Option<Ack>,
        explicit_sources: bool,
        max_bytes: usize,
    ) -> Result<Encoded, StreamError> {
        let seq = self.next_seq;
        let mut w = BitWriter::new();
        // The short form is safe once the receiver acknowledged a packet at most
        // SHORT_SEQ_LEAD before this one: its highest number is then close enough for 7 bits.
        let short = self
            .history
            .iter()
            .rev()
            .any(|s| s.acked && seq - s.seq <= SHORT_SEQ_LEAD);
        w.write_bits(seq & 0b11_1111, 6);
        w.write_bool(false);
        w.write_bool(true);
        w.write_bool(!short);
        let bits = if short { SHORT_SEQ_BITS } else { SEQ_BITS };
        w.write_bits((seq & ((1 << bits) - 1)) >> 6, bits - 6);
        w.write_bool(explicit_sources);
        let limit = if explicit_sources { MAX_SECTIONS } else { 1 };
        let mut included = Vec::new();
        let mut taken = 0;
        // What the acknowledgement is coded against: the first section's reference.
        let mut ack_base = None;
        // The section list's end and the acknowledgement.
        let tail = |w: &mut BitWriter, any: bool, base: Option<(u64, Ack)>| {
            if explicit_sources {
                w.write_bool(false);
            } else if !any {
                w.write_bits(0, 2);
            }
            write_ack(w, ack, base);
        };
        for section in sections.iter().filter(|s| !s.samples.is_empty()) {
            if included.len() == limit {
                break;
            }
            let mut candidate = w.clone();
            if explicit_sources {
                candidate.write_bool(true);
                write_source(&mut candidate, section.source);
            }
            let refs = self.refs(seq, section.source);
            let sent = Section {
                source: section.source,
                samples: section
                    .samples
                    .iter()
                    .map(|s| s.as_sent(refs.reference(s.device), &self.volume))
                    .collect::<Result<_, _>>()?,
            };
            write_section(
                &mut candidate,
                &sent,
                &refs,
                &self.volume,
                !explicit_sources,
            )?;
            let base = ack_base.or(refs.ack_base());
            let mut whole = candidate.clone();
            tail(&mut whole, true, base);
            if whole.bit_len().div_ceil(8) > max_bytes {
                break;
            }
            w = candidate;
            ack_base = base;
            included.push(sent);
            taken += 1;
        }
        tail(&mut w, !included.is_empty(), ack_base);
        self.next_seq += 1;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Sent {
            seq,
            acked: false,
            record: Record::from_sections(seq as i64, &included, ack),
        });
        Ok(Encoded {
            bytes: w.into_bytes(),
            seq,
            sections: taken,
            sent: included,
        })
    }
}

/// A decoded pose packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The packet's sequence number as this receiver numbers it.
    pub seq: i64,
    /// The acknowledgement it carries for this side's own sender.
    pub ack: Option<Ack>,
    /// Its sections (none for an acknowledgement alone).
    pub sections: Vec<Section>,
}

/// The receiving side of a pose stream (see the module docs).
#[derive(Clone, Debug)]
pub struct PoseReceiver {
    volume: Volume,
    slots: Vec<Option<Record>>,
    highest: Option<i64>,
    /// The last packet with samples received, and whether it was acknowledged yet.
    last_received: Option<(i64, bool)>,
}

impl PoseReceiver {
    /// A receiver for poses inside `volume` (which both sides must share).
    pub fn new(volume: Volume) -> Self {
        PoseReceiver {
            volume,
            slots: vec![None; HISTORY],
            highest: None,
            last_received: None,
        }
    }

    /// The full number nearest the highest seen whose low `bits` bits are `wire`.
    fn expand(&self, wire: u64, bits: u32) -> i64 {
        let Some(h) = self.highest else {
            return wire as i64;
        };
        let modulus = 1i64 << bits;
        let base = h - h.rem_euclid(modulus) + wire as i64;
        [base - modulus, base, base + modulus]
            .into_iter()
            .min_by_key(|c| (c - h).abs())
            .unwrap_or(base)
    }

    /// Decodes a packet. `explicit_sources` says whether this side accepts sections naming
    /// their source (a client receiving from the host) or only the sender's own
    /// (`implicit_source`, the host receiving from a client). Nothing is kept unless the
    /// whole packet decodes.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        explicit_sources: bool,
        implicit_source: u16,
    ) -> Result<Decoded, StreamError> {
        let first = *bytes.first().ok_or(StreamError::NotAPosePacket)?;
        if first & CLOCK_MESSAGE_TAG != POSE_PACKET_TAG {
            return Err(StreamError::NotAPosePacket);
        }
        let mut r = BitReader::new(bytes);
        let low = r.read_bits(6)?;
        r.read_bits(2)?;
        let long = r.read_bool()?;
        let bits = if long { SEQ_BITS } else { SHORT_SEQ_BITS };
        let high = r.read_bits(bits - 6)?;
        let seq = match (long, self.highest) {
            (true, _) => self.expand(low | (high << 6), SEQ_BITS),
            (false, Some(h)) => {
                let seq = self.expand(low | (high << 6), SHORT_SEQ_BITS);
                // A sender uses the short form only up to SHORT_SEQ_LEAD past a packet
                // this side acknowledged (so received, so at most `h`).
                if seq > h + SHORT_SEQ_LEAD as i64 {
                    return Err(StreamError::Corrupt("short sequence number too far ahead"));
                }
                seq
            }
            (false, None) => {
                return Err(StreamError::Corrupt(
                    "short sequence number before any packet",
                ))
            }
        };
        if self
            .highest
            .is_some_and(|h| seq < h - MAX_REFERENCE_AGE as i64)
        {
            return Err(StreamError::Stale);
        }
        if r.read_bool()? != explicit_sources {
            return Err(StreamError::Corrupt("unexpected source naming"));
        }
        let mut sections: Vec<Section> = Vec::new();
        let mut ack_base = None;
        if explicit_sources {
            while r.read_bool()? {
                if sections.len() == MAX_SECTIONS {
                    return Err(StreamError::Corrupt("too many sections"));
                }
                let source = read_source(&mut r)?;
                if sections.iter().any(|s| s.source == source) {
                    return Err(StreamError::Corrupt("a source appears twice"));
                }
                let (section, base) =
                    read_section(&mut r, source, seq, &self.slots, &self.volume, None)?;
                ack_base = ack_base.or(base);
                sections.push(section);
            }
        } else {
            // `1`: a standard section, `01`: another section, `00`: none.
            let standard = if r.read_bool()? {
                Some(true)
            } else {
                r.read_bool()?.then_some(false)
            };
            if let Some(standard) = standard {
                let (section, base) = read_section(
                    &mut r,
                    implicit_source,
                    seq,
                    &self.slots,
                    &self.volume,
                    Some(standard),
                )?;
                ack_base = base;
                sections.push(section);
            }
        }
        let ack = read_ack(&mut r, ack_base)?;
        // Only zero padding may follow.
        if r.remaining() >= 8 || r.read_bits(r.remaining() as u32)? != 0 {
            return Err(StreamError::Corrupt("trailing bits"));
        }
        if !sections.is_empty() {
            let index = seq.rem_euclid(HISTORY as i64) as usize;
            if let Some(slot) = self.slots.get_mut(index) {
                if slot.as_ref().is_some_and(|rec| rec.seq == seq) {
                    return Err(StreamError::Duplicate);
                }
                *slot = Some(Record::from_sections(seq, &sections, ack));
            }
            self.last_received = Some((seq, false));
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        Ok(Decoded { seq, ack, sections })
    }

    /// The acknowledgement to send: the last packet with samples received, once per such
    /// packet (an acknowledgement alone is never acknowledged).
    pub fn take_ack(&mut self) -> Option<u64> {
        let (seq, acked) = self.last_received.as_mut()?;
        if *acked {
            return None;
        }
        *acked = true;
        Some(*seq as u64)
    }

    /// Leaves the last packet unacknowledged (its samples were not used), so the sender
    /// keeps sending them.
    pub fn skip_ack(&mut self) {
        if let Some((_, acked)) = self.last_received.as_mut() {
            *acked = true;
        }
    }

    /// Whether a packet with samples arrived that was not acknowledged yet.
    pub fn has_unacked(&self) -> bool {
        self.last_received.is_some_and(|(_, acked)| !acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xr::quantize::{MAX_ANGLE_ERROR_DEG, MAX_POSITION_ERROR_M};
    use crate::xr::synthetic::{avatar, Rng};

    fn volume() -> Volume {
        Volume::default()
    }

    /// Frame `i` of the synthetic avatar as one section of `source`.
    fn section(frames: &[[crate::xr::Pose; 3]], i: usize, source: u16) -> Section {
        let v = volume();
        let time_ns = 1_000_000_000 + i as i64 * 11_111_111;
        Section {
            source,
            samples: (0..3u8)
                .map(|d| {
                    let device = Device::from_index(d).expect("device");
                    let sample = PoseSample {
                        pose: frames[i][d as usize],
                        time: time_ns,
                        flags: PoseFlags::ALL,
                        linear_velocity: None,
                        angular_velocity: None,
                    };
                    StreamSample::from_sample(device, &sample, None, &v)
                        .expect("valid")
                        .0
                })
                .collect(),
        }
    }

    /// A lossy, reordering, duplicating channel in both directions: every sample the
    /// receiver decodes equals what was sent, and only stale or duplicate packets fail.
    #[test]
    fn lossy_channel_decodes_exactly_what_was_sent() {
        let frames = avatar(900);
        let mut rng = Rng(0x5EED_0001);
        let mut tx = PoseSender::new(volume());
        let mut rx = PoseReceiver::new(volume());
        let mut in_flight: Vec<(u64, Vec<u8>, Section)> = Vec::new();
        let mut acks_in_flight: Vec<(u64, Ack)> = Vec::new();
        let (mut decoded, mut stale_or_dup, mut referenced) = (0, 0, 0);
        for i in 0..frames.len() {
            let s = section(&frames, i, 7);
            let enc = tx
                .encode(std::slice::from_ref(&s), None, false, 1200)
                .expect("encode");
            assert_eq!(enc.sections, 1);
            referenced += usize::from(enc.bytes.len() < 20);
            // What goes out may be quantised toward the prediction, within the bounds.
            let sent = enc.sent[0].clone();
            for (out, input) in sent.samples.iter().zip(&s.samples) {
                let exact = input.exact.expect("pushed poses are exact").pose();
                let got = out.pose.to_pose(&volume());
                assert!(got.position.distance(exact.position) <= MAX_POSITION_ERROR_M);
                assert!(got.orientation.angle_deg(exact.orientation) <= MAX_ANGLE_ERROR_DEG);
            }
            // 20 % loss, 10 % duplicated, delivered 0-3 steps late.
            if rng.unit() > -0.6 {
                let delay = (rng.next_u64() % 4) + i as u64;
                in_flight.push((delay, enc.bytes.clone(), sent.clone()));
                if rng.unit() > 0.8 {
                    in_flight.push((delay + 2, enc.bytes, sent));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) =
                in_flight.drain(..).partition(|(t, _, _)| *t <= i as u64);
            in_flight = later;
            for (_, bytes, sent) in due {
                match rx.decode(&bytes, false, 7) {
                    Ok(d) => {
                        assert_eq!(d.sections, vec![sent]);
                        decoded += 1;
                    }
                    Err(StreamError::Stale | StreamError::Duplicate) => stale_or_dup += 1,
                    Err(e) => panic!("packet {i}: {e}"),
                }
            }
            // Acknowledgements come back 2 steps later, 20 % lost.
            if let Some(a) = rx.take_ack() {
                if rng.unit() > -0.6 {
                    // Both forms: short and long acknowledgements resolve alike.
                    acks_in_flight.push((i as u64 + 2, Ack::new(a, i % 2 == 0)));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) =
                acks_in_flight.drain(..).partition(|(t, _)| *t <= i as u64);
            acks_in_flight = later;
            for (_, a) in due {
                tx.on_ack(a);
            }
        }
        assert!(decoded > 600, "{decoded}");
        assert!(stale_or_dup > 0);
        assert!(
            referenced > 600,
            "most packets are coded against references"
        );
    }

    #[test]
    fn a_relay_names_its_sources_and_stops_at_the_size_limit() {
        let frames = avatar(10);
        let v = volume();
        let mut tx = PoseSender::new(v);
        let mut rx = PoseReceiver::new(v);
        let sections: Vec<Section> = [3u16, 70, 1000]
            .iter()
            .map(|&p| section(&frames, 5, p))
            .collect();
        let enc = tx
            .encode(&sections, Some(Ack::new(42, false)), true, 1200)
            .expect("encode");
        assert_eq!(enc.sections, 3);
        let d = rx.decode(&enc.bytes, true, 0).expect("decode");
        assert_eq!((d.ack, &d.sections), (Some(Ack::new(42, false)), &enc.sent));
        // Implicit-source packets are refused where sources must be named, and back.
        assert!(rx.decode(&enc.bytes, false, 0).is_err());
        let one = tx.encode(&sections, None, false, 1200).expect("encode");
        assert_eq!(one.sections, 1);
        assert!(matches!(
            rx.decode(&one.bytes, true, 0),
            Err(StreamError::Corrupt(_))
        ));
        // A tight limit keeps what fits: absolute 3-point sections take ~32 bytes.
        let small = tx.encode(&sections, None, true, 50).expect("encode");
        assert_eq!(small.sections, 1);
        assert!(small.bytes.len() <= 50);
    }

    #[test]
    fn extras_and_times_round_trip() {
        let v = volume();
        let mut tx = PoseSender::new(v);
        let mut rx = PoseReceiver::new(v);
        let controller = ControllerState {
            buttons: 0xDEAD_BEEF,
            trigger: 0.5,
            grip: 1.0,
            thumb_x: -1.0,
            thumb_y: 0.25,
        };
        for k in 0..40i64 {
            let sample = |time: i64, vel: bool| PoseSample {
                pose: crate::xr::Pose::IDENTITY,
                time,
                flags: if k % 3 == 0 {
                    PoseFlags::ORIENTATION_VALID
                } else {
                    PoseFlags::ALL
                },
                linear_velocity: vel.then(|| Vec3::new(1.5, -40.0, 0.001)),
                angular_velocity: None,
            };
            // Irregular times, one device with its own time, a tracker.
            let t = k * 11_000_000 + (k * k % 7) * 300_000;
            let samples = vec![
                StreamSample::from_sample(Device::HEAD, &sample(t, false), None, &v)
                    .expect("ok")
                    .0,
                StreamSample::from_sample(
                    Device::LEFT_HAND,
                    &sample(t + 1_000_000, true),
                    Some(&controller),
                    &v,
                )
                .expect("ok")
                .0,
                StreamSample::from_sample(
                    Device::tracker(5).expect("tracker"),
                    &sample(t + 1_000_000, false),
                    None,
                    &v,
                )
                .expect("ok")
                .0,
            ];
            let s = Section { source: 1, samples };
            let enc = tx
                .encode(std::slice::from_ref(&s), None, false, 1200)
                .expect("encode");
            let d = rx.decode(&enc.bytes, false, 1).expect("decode");
            assert_eq!(d.sections, enc.sent);
            if let Some(a) = rx.take_ack() {
                tx.on_ack(Ack::new(a, true));
            }
            let got = d.sections[0].samples[1];
            let c = got.controller.expect("controller").state();
            assert_eq!(c.buttons, 0xDEAD_BEEF);
            assert!((c.trigger - 0.5).abs() < 0.003 && c.thumb_x == -1.0);
            let lv = got.to_sample(&v).linear_velocity.expect("velocity");
            assert!((lv.x - 1.5).abs() < 1e-3 && (lv.y + 32.767).abs() < 1e-3);
        }
    }

    #[test]
    fn hostile_bytes_are_errors_and_change_nothing() {
        let frames = avatar(60);
        let v = volume();
        let mut tx = PoseSender::new(v);
        let mut rx = PoseReceiver::new(v);
        let mut rng = Rng(0xBAD);
        let mut packets = Vec::new();
        for i in 0..60 {
            let enc = tx
                .encode(&[section(&frames, i, 2)], None, false, 1200)
                .expect("encode");
            packets.push(enc.bytes);
        }
        // Deliver the first half (acknowledged), then attack.
        for (i, p) in packets.iter().take(30).enumerate() {
            rx.decode(p, false, 2).expect("valid");
            if let Some(a) = rx.take_ack() {
                assert_eq!(tx.on_ack(Ack::new(a, i % 2 == 1)), Some(i as u64));
            }
        }
        let before = format!("{rx:?}");
        for p in &packets[30..] {
            for cut in 0..p.len() {
                let _ = rx.clone().decode(&p[..cut], false, 2);
            }
        }
        for _ in 0..20_000 {
            let mut p = packets[30 + (rng.next_u64() % 30) as usize].clone();
            let n = p.len();
            let at = (rng.next_u64() as usize) % n;
            p[at] ^= 1 << (rng.next_u64() % 8);
            let mut probe = rx.clone();
            if probe.decode(&p, false, 2).is_err() {
                assert_eq!(
                    format!("{probe:?}"),
                    before,
                    "a refused packet changed state"
                );
            }
        }
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8 | 0x80).collect();
            let mut probe = rx.clone();
            if probe.decode(&junk, true, 2).is_err() {
                assert_eq!(format!("{probe:?}"), before);
            }
        }
        assert_eq!(
            rx.decode(&[0x10, 0, 0], false, 2),
            Err(StreamError::NotAPosePacket)
        );
        assert_eq!(rx.decode(&[], false, 2), Err(StreamError::NotAPosePacket));
        // The real stream carries on.
        for p in &packets[30..] {
            rx.decode(p, false, 2).expect("still decodes");
        }
    }

    #[test]
    fn framing_codes_round_trip_and_refuse_hostile_bits() {
        // Acknowledgements against every kind of base, across the wrap of both forms.
        let bases = [
            None,
            Some((4, Ack::new(126, true))),
            Some((1, Ack::new(5, true))),
            Some((9, Ack::new(4090, false))),
            Some((31, Ack::new(0, false))),
        ];
        for base in bases {
            for seq in [0u64, 1, 3, 126, 127, 128, 130, 4094, 4095, 4096, 4100] {
                for short in [true, false] {
                    for ack in [None, Some(Ack::new(seq, short))] {
                        let mut w = BitWriter::new();
                        write_ack(&mut w, ack, base);
                        let bits = w.bit_len();
                        let bytes = w.into_bytes();
                        let mut r = BitReader::new(&bytes);
                        assert_eq!(read_ack(&mut r, base), Ok(ack), "{base:?} {ack:?}");
                        assert_eq!(r.position(), bits);
                        // Never longer than the explicit form and the "predicted" bit.
                        let explicit = ack.map_or(1, |a| 2 + a.bits() as usize);
                        assert!(bits <= explicit + usize::from(base.is_some()));
                    }
                }
            }
        }
        // The steady state: as many packets on as the reference is old, three bits.
        let base = Some((4, Ack::new(126, true)));
        let mut w = BitWriter::new();
        write_ack(&mut w, Some(Ack::new(130, true)), base);
        assert_eq!(w.bit_len(), 3);
        // Times against predictions: every branch of the code, and the limits.
        let p = 1_000_000i64;
        for residual in [
            0i64,
            1,
            -1,
            2,
            -2,
            3,
            -5,
            1000,
            -65_536,
            65_536,
            65_537,
            -1 << 40,
        ] {
            for predicted in [Some(p), None] {
                let time = p + residual;
                let mut w = BitWriter::new();
                write_time(&mut w, time, predicted);
                let bits = w.bit_len();
                let bytes = w.into_bytes();
                let mut r = BitReader::new(&bytes);
                assert_eq!(read_time(&mut r, predicted), Ok(time));
                assert_eq!(r.position(), bits);
            }
        }
        // Absolute times are 48 bits: the extremes of that range.
        let (lo, hi) = (-(1i64 << 47), (1i64 << 47) - 1);
        let mut w = BitWriter::new();
        write_time(&mut w, hi, Some(lo));
        let bytes = w.into_bytes();
        assert_eq!(read_time(&mut BitReader::new(&bytes), Some(lo)), Ok(hi));
        // References: none, every age, usual and other gaps.
        for age in 0..=MAX_REFERENCE_AGE {
            for (gap, gap2) in [(0, 0), (1, 1), (1, 0), (2, 1), (7, 7), (1, 3)] {
                let (gap, gap2) = if age == 0 { (0, 0) } else { (gap, gap2) };
                let refs = Refs {
                    age,
                    gap,
                    gap2,
                    ..Refs::none()
                };
                let mut w = BitWriter::new();
                write_refs(&mut w, &refs);
                let bits = w.bit_len();
                let bytes = w.into_bytes();
                let mut r = BitReader::new(&bytes);
                assert_eq!(read_refs(&mut r), Ok((age, gap, gap2)));
                assert_eq!(r.position(), bits);
            }
        }
        // Hostile: codes too long or out of range are errors, never panics.
        for bytes in [[0u8; 8], [0xFF; 8], [0x55; 8], [0xAA; 8]] {
            let _ = read_refs(&mut BitReader::new(&bytes));
            let _ = read_time(&mut BitReader::new(&bytes), Some(0));
            let _ = read_ack(&mut BitReader::new(&bytes), Some((3, Ack::new(9, true))));
        }
        assert!(read_exp_golomb0(&mut BitReader::new(&[0; 8]), MAX_ACK_DELTA).is_err());
        let mut w = BitWriter::new();
        write_exp_golomb0(&mut w, MAX_ACK_DELTA + 1);
        let bytes = w.into_bytes();
        assert!(read_exp_golomb0(&mut BitReader::new(&bytes), MAX_ACK_DELTA).is_err());
        let mut w = BitWriter::new();
        write_exp_golomb1(&mut w, MAX_REFERENCE_AGE + 1);
        let bytes = w.into_bytes();
        assert_eq!(
            read_refs(&mut BitReader::new(&bytes)),
            Err(StreamError::Corrupt("reference too old"))
        );
    }

    #[test]
    fn references_are_only_acknowledged_packets() {
        let frames = avatar(20);
        let v = volume();
        let mut tx = PoseSender::new(v);
        let mut rx = PoseReceiver::new(v);
        let first = tx
            .encode(&[section(&frames, 0, 1)], None, false, 1200)
            .expect("encode");
        // Not acknowledged: the next packet is absolute again.
        let second = tx
            .encode(&[section(&frames, 1, 1)], None, false, 1200)
            .expect("encode");
        assert!(second.bytes.len() >= first.bytes.len() - 1);
        rx.decode(&second.bytes, false, 1)
            .expect("absolute decodes alone");
        let a = rx.take_ack().expect("ack");
        assert_eq!(rx.take_ack(), None, "acknowledged once");
        assert_eq!(tx.on_ack(Ack::new(a, true)), Some(1));
        let third = tx
            .encode(&[section(&frames, 2, 1)], None, false, 1200)
            .expect("encode");
        assert!(third.bytes.len() < second.bytes.len() / 2);
        // A receiver that lost the reference refuses the packet instead of guessing.
        let mut lost = PoseReceiver::new(v);
        lost.decode(&first.bytes, false, 1).expect("first decodes");
        assert_eq!(
            lost.decode(&third.bytes, false, 1),
            Err(StreamError::MissingReference(1))
        );
        // One that received nothing cannot place a short sequence number at all.
        assert_eq!(
            PoseReceiver::new(v).decode(&third.bytes, false, 1),
            Err(StreamError::Corrupt(
                "short sequence number before any packet"
            ))
        );
        rx.decode(&third.bytes, false, 1).expect("decodes");
        assert_eq!(
            tx.on_ack(Ack::new(0xFFF, false)),
            None,
            "unknown acknowledgements are ignored"
        );
    }
}
