//! Quantised, bit-packed pose encoding.
//!
//! # Position
//! Each axis is quantised uniformly inside a [`Volume`]. The bits per axis are the fewest
//! that make the step at most `2 mm/√3 − ε·max|coordinate|` (ε the `f32` epsilon), so the
//! rounding error (half a step) plus the `f32` rounding of the decoded value stay within
//! [`MAX_AXIS_ERROR_M`] = 1/√3 mm per axis, and the distance to the true position within
//! [`MAX_POSITION_ERROR_M`] = 1 mm. The default volume (±32 m horizontally, −4..+12 m
//! vertically) takes 16 + 14 + 16 = 46 bits. Positions outside the volume are clamped onto
//! its boundary and the clamp is reported ([`EncodeInfo::clamped`]), never a panic.
//!
//! # Orientation: smallest three
//! The largest-magnitude component of the unit quaternion is dropped and its index sent in
//! 2 bits; `q` and `−q` are the same rotation, so the sign is normalised to make the dropped
//! component positive (then both encode identically). The three others lie in
//! `[−1/√2, 1/√2]`, each quantised to one of [`ORIENTATION_LEVELS`] = 2901 values and
//! written in [`ORIENTATION_BITS`] = 12 bits (38 bits in all).
//!
//! Error bound: a component error of at most `e = (√2 / 2900) / 2 = 2.438e-4` on each of
//! the three sent components moves the point `a ∈ ℝ³` by at most `√3·e`. The decoder
//! rebuilds the dropped component as `d = √(1 − |a|²)`, and since `d ≥ 1/2` (it is the
//! largest of four unit components) the arc on the unit 3-sphere is at most `|Δa| / d ≤
//! 2√3·e`. The rotation angle is twice the arc: `θ ≤ 4√3·e = 1.689e-3 rad = 0.0968°` (to
//! first order; the tests measure the maximum, 0.093° near the worst case), below the 0.1°
//! target. The levels are as few as that allows: finer steps would only make residuals
//! larger (4096 levels give 0.0685°).
//!
//! # Absolute and delta encodings
//! Absolute ([`encode_pose`]): `x, y, z` (per-axis bits), largest index (2 bits), three
//! components (12 bits each): 84 bits in the default volume.
//!
//! Delta ([`encode_pose_delta`]) against a reference [`QuantizedPose`] (the receiver's last
//! acked pose of that device): for the position and for the orientation separately, a size
//! class selecting a width from [`DELTA_WIDTHS`] for three signed two's-complement deltas
//! of the quantised integers, or class 7: that group in absolute form (when no width fits,
//! a delta would not be smaller, or, for the orientation, the dropped index differs from
//! the reference's). The class is 3 bits. There is no mode bit: a pose whose two groups are both absolute
//! costs a few bits more than [`encode_pose`], which is rare against a recent reference;
//! every other pose saves the bit.
//!
//! The session's pose stream uses [`super::predict`] instead: per-component Rice codes of
//! the residuals against an integer-exact extrapolation of up to three acked poses, with
//! parameters both sides derive from those poses (no size classes).

use super::bits::{fits_signed, BitError, BitReader, BitWriter};
use super::pose::{validate_pose, Pose, PoseError, Quat, Vec3};

/// The largest position error of the codec inside the volume (Euclidean distance), in
/// metres.
pub const MAX_POSITION_ERROR_M: f64 = 0.001;
/// The largest error per axis, in metres: [`MAX_POSITION_ERROR_M`]`/√3`, so that the three
/// together stay within [`MAX_POSITION_ERROR_M`].
pub const MAX_AXIS_ERROR_M: f64 = 0.000_577_350_269_189_625_8;
/// The largest orientation error the codec is designed for, in degrees.
pub const MAX_ANGLE_ERROR_DEG: f64 = 0.1;
/// Bits per sent component of the smallest-three orientation (see the module docs).
pub const ORIENTATION_BITS: u32 = 12;
/// Quantised values of a sent orientation component: as few as keep the first-order
/// worst case within [`MAX_ANGLE_ERROR_DEG`] with a margin, so residuals are small (a
/// power of two, 4096, would make the steps needlessly fine: 0.0685°).
pub const ORIENTATION_LEVELS: u32 = 2901;
const _: () = assert!(ORIENTATION_LEVELS <= 1 << ORIENTATION_BITS);
/// The first-order worst-case orientation error of [`ORIENTATION_LEVELS`], in degrees:
/// `4√3·e` with `e = √2 / (2·(levels − 1))` (see the module docs).
pub const ORIENTATION_ERROR_BOUND_DEG: f64 = 0.0968;
/// Bits of a whole absolute orientation: 2 (dropped index) + 3 × [`ORIENTATION_BITS`].
pub const ORIENTATION_TOTAL_BITS: u32 = 2 + 3 * ORIENTATION_BITS;
/// Widths (bits per component) of the delta size classes 0..=6; class 7 is "absolute".
pub const DELTA_WIDTHS: [u32; 7] = [0, 2, 3, 4, 5, 6, 8];
/// The size class meaning "this group in absolute form".
const CLASS_ABSOLUTE: u64 = 7;
/// Bits of a size class.
const CLASS_BITS: u32 = 3;
/// The most a delta-coded pose can exceed the absolute form by: two size classes.
pub const MAX_DELTA_OVERHEAD_BITS: u32 = 2 * CLASS_BITS;
/// The most bits one position axis may take.
const MAX_AXIS_BITS: u32 = 31;
/// `1/√2`, the range of the three sent quaternion components.
const RANGE: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// Why encoding or decoding a pose failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantizeError {
    /// The pose to encode is invalid (NaN, infinite, zero quaternion).
    #[error("invalid pose: {0}")]
    InvalidPose(#[from] PoseError),
    /// The volume is unusable.
    #[error("invalid volume: {0}")]
    InvalidVolume(&'static str),
    /// The input ended early or a read was malformed.
    #[error("bit stream: {0}")]
    Bits(#[from] BitError),
    /// The bits decode to something impossible (e.g. a delta leaving the quantised range).
    #[error("corrupt pose encoding: {0}")]
    Corrupt(&'static str),
    /// The reference pose does not fit this volume's quantised ranges.
    #[error("reference pose does not fit the volume's quantised ranges")]
    ReferenceOutOfRange,
}

/// An axis-aligned box of positions the codec covers, in metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Volume {
    /// The lowest corner.
    pub min: Vec3,
    /// The highest corner.
    pub max: Vec3,
}

impl Default for Volume {
    /// ±32 m horizontally (x, z) and −4..+12 m vertically (y).
    fn default() -> Self {
        Volume {
            min: Vec3::new(-32.0, -4.0, -32.0),
            max: Vec3::new(32.0, 12.0, 32.0),
        }
    }
}

/// Bits of a position index below `levels`.
fn bits_of(levels: u64) -> u32 {
    u64::BITS - (levels.max(2) - 1).leading_zeros()
}

/// Levels of a valid volume's axis (see [`Volume::axis_levels`]).
fn clamp_levels(levels: u64) -> u64 {
    levels.clamp(2, 1u64 << MAX_AXIS_BITS)
}

impl Volume {
    /// A volume from two corners, checked with [`Volume::validate`].
    pub fn new(min: Vec3, max: Vec3) -> Result<Volume, QuantizeError> {
        let v = Volume { min, max };
        v.validate()?;
        Ok(v)
    }

    /// Checks that corners are finite, `min < max` on each axis, and that each axis fits in
    /// at most 31 bits at 1 mm error.
    pub fn validate(&self) -> Result<(), QuantizeError> {
        self.checked_levels().map(|_| ())
    }

    /// [`Volume::validate`], and then [`Volume::axis_levels`], computed once (a pose
    /// codec checks its volume for every pose it codes).
    pub(crate) fn checked_levels(&self) -> Result<[u64; 3], QuantizeError> {
        if !self.min.is_finite() || !self.max.is_finite() {
            return Err(QuantizeError::InvalidVolume("corners must be finite"));
        }
        for (lo, hi) in self.min.to_array().into_iter().zip(self.max.to_array()) {
            if lo >= hi {
                return Err(QuantizeError::InvalidVolume(
                    "min must be below max on every axis",
                ));
            }
        }
        let levels = self.axis_levels_unchecked();
        if levels.iter().any(|&l| bits_of(l) > MAX_AXIS_BITS) {
            return Err(QuantizeError::InvalidVolume(
                "too large for 1 mm in 31 bits per axis",
            ));
        }
        Ok(levels.map(clamp_levels))
    }

    /// Quantised values per axis: the fewest whose step is at most the bound's
    /// (`u64::MAX` when the bound cannot be met).
    fn axis_levels_unchecked(&self) -> [u64; 3] {
        let lo = self.min.to_array();
        let hi = self.max.to_array();
        std::array::from_fn(|i| {
            let span = f64::from(hi[i]) - f64::from(lo[i]);
            let max_abs = f64::from(lo[i].abs().max(hi[i].abs()));
            let max_step = 2.0 * MAX_AXIS_ERROR_M - f64::from(f32::EPSILON) * max_abs;
            if max_step <= 0.0 || span / max_step >= (1u64 << MAX_AXIS_BITS) as f64 {
                return u64::MAX;
            }
            // Not a power of two: the step is the largest the bound allows, so residuals
            // in steps are as small as they can be.
            (span / max_step).ceil() as u64 + 1
        })
    }

    fn axis_bits_unchecked(&self) -> [u32; 3] {
        self.axis_levels_unchecked().map(bits_of)
    }

    /// Quantised values per axis `[x, y, z]`: a position index is below it (meaningful
    /// for a valid volume).
    pub fn axis_levels(&self) -> [u64; 3] {
        self.axis_levels_unchecked().map(clamp_levels)
    }

    /// Bits per axis `[x, y, z]` of an absolute position (meaningful for a valid volume).
    pub fn axis_bits(&self) -> [u32; 3] {
        self.axis_bits_unchecked().map(|b| b.min(MAX_AXIS_BITS))
    }

    /// The quantisation step per axis in metres.
    pub fn steps(&self) -> [f64; 3] {
        let levels = self.axis_levels();
        let lo = self.min.to_array();
        let hi = self.max.to_array();
        std::array::from_fn(|i| (f64::from(hi[i]) - f64::from(lo[i])) / (levels[i] - 1) as f64)
    }

    /// Bits of an absolute position.
    pub fn position_bits(&self) -> u32 {
        self.axis_bits().iter().sum()
    }

    /// Bits of an absolute pose (position and orientation).
    pub fn absolute_pose_bits(&self) -> u32 {
        self.position_bits() + ORIENTATION_TOTAL_BITS
    }
}

/// A pose as quantised integers, the unit of delta references.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuantizedPose {
    /// Quantised position per axis, below [`Volume::axis_levels`].
    pub position: [u32; 3],
    /// Index (0 x, 1 y, 2 z, 3 w) of the dropped, largest quaternion component.
    pub largest: u8,
    /// The three other components in index order, `0 ..= 2^ORIENTATION_BITS − 1`.
    pub rest: [u32; 3],
}

impl QuantizedPose {
    /// Quantises a pose: validates it (normalising the quaternion), clamps the position
    /// into the volume. Returns the quantised pose and whether the position was clamped.
    pub fn from_pose(pose: &Pose, volume: &Volume) -> Result<(QuantizedPose, bool), QuantizeError> {
        volume.validate()?;
        let pose = validate_pose(pose)?;
        let levels = volume.axis_levels();
        let steps = volume.steps();
        let lo = volume.min.to_array();
        let hi = volume.max.to_array();
        let p = pose.position.to_array();
        let mut clamped = false;
        let position = std::array::from_fn(|i| {
            let v = f64::from(p[i]);
            let c = v.clamp(f64::from(lo[i]), f64::from(hi[i]));
            clamped |= c != v;
            let max_q = (levels[i] - 1) as f64;
            ((c - f64::from(lo[i])) / steps[i])
                .round()
                .clamp(0.0, max_q) as u32
        });
        let (largest, rest) = quantize_orientation(pose.orientation);
        Ok((
            QuantizedPose {
                position,
                largest,
                rest,
            },
            clamped,
        ))
    }

    /// Whether every field is within the volume's quantised ranges.
    pub fn fits(&self, volume: &Volume) -> bool {
        self.fits_levels(&volume.axis_levels())
    }

    /// [`QuantizedPose::fits`] a volume of these [`Volume::axis_levels`].
    pub(crate) fn fits_levels(&self, levels: &[u64; 3]) -> bool {
        let max_rot = ORIENTATION_LEVELS - 1;
        self.position
            .iter()
            .zip(levels)
            .all(|(&q, &levels)| u64::from(q) < levels)
            && self.largest < 4
            && self.rest.iter().all(|&r| r <= max_rot)
    }

    /// The pose these integers stand for (unit quaternion, position inside the volume).
    pub fn to_pose(&self, volume: &Volume) -> Pose {
        let steps = volume.steps();
        let lo = volume.min.to_array();
        let p: [f32; 3] = std::array::from_fn(|i| {
            (f64::from(lo[i]) + f64::from(self.position[i]) * steps[i]) as f32
        });
        Pose::new(
            dequantize_orientation(self.largest, self.rest),
            Vec3::new(p[0], p[1], p[2]),
        )
    }
}

fn quantize_orientation(q: Quat) -> (u8, [u32; 3]) {
    let c = q.to_array().map(f64::from);
    let mut largest = 0;
    for i in 1..4 {
        if c[i].abs() > c[largest].abs() {
            largest = i;
        }
    }
    let sign = if c[largest] < 0.0 { -1.0 } else { 1.0 };
    let max_q = f64::from(ORIENTATION_LEVELS - 1);
    let mut rest = [0u32; 3];
    let mut k = 0;
    for (i, &v) in c.iter().enumerate() {
        if i == largest {
            continue;
        }
        let t = ((sign * v + RANGE) / (2.0 * RANGE) * max_q)
            .round()
            .clamp(0.0, max_q);
        rest[k] = t as u32;
        k += 1;
    }
    (largest as u8, rest)
}

fn dequantize_orientation(largest: u8, rest: [u32; 3]) -> Quat {
    let max_q = f64::from(ORIENTATION_LEVELS - 1);
    let a = rest.map(|r| f64::from(r) / max_q * 2.0 * RANGE - RANGE);
    let d = (1.0 - a.iter().map(|v| v * v).sum::<f64>()).max(0.0).sqrt();
    let largest = usize::from(largest.min(3));
    let mut c = [0.0f64; 4];
    let mut k = 0;
    for (i, slot) in c.iter_mut().enumerate() {
        if i == largest {
            *slot = d;
        } else {
            *slot = a[k];
            k += 1;
        }
    }
    // Never zero: either d > 0 or |a| ≥ 1.
    let n = c.iter().map(|v| v * v).sum::<f64>().sqrt();
    Quat::from_array(c.map(|v| (v / n) as f32))
}

/// What an encode call wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeInfo {
    /// The quantised pose the receiver will hold after decoding (a future reference).
    pub quantized: QuantizedPose,
    /// Whether the position lay outside the volume and was clamped onto it.
    pub clamped: bool,
    /// Bits written.
    pub bits: usize,
    /// Whether the delta form was chosen (always `false` for [`encode_pose`]).
    pub delta: bool,
}

fn write_position(w: &mut BitWriter, q: &QuantizedPose, volume: &Volume) {
    for (&v, b) in q.position.iter().zip(volume.axis_bits()) {
        w.write_bits(u64::from(v), b);
    }
}

fn write_orientation(w: &mut BitWriter, q: &QuantizedPose) {
    w.write_bits(u64::from(q.largest), 2);
    for &r in &q.rest {
        w.write_bits(u64::from(r), ORIENTATION_BITS);
    }
}

fn read_position(r: &mut BitReader<'_>, volume: &Volume) -> Result<[u32; 3], QuantizeError> {
    let mut out = [0u32; 3];
    for ((slot, b), levels) in out
        .iter_mut()
        .zip(volume.axis_bits())
        .zip(volume.axis_levels())
    {
        let v = r.read_bits(b)?;
        if v >= levels {
            return Err(QuantizeError::Corrupt("position outside the volume"));
        }
        *slot = v as u32;
    }
    Ok(out)
}

fn read_orientation(r: &mut BitReader<'_>) -> Result<(u8, [u32; 3]), QuantizeError> {
    let largest = r.read_bits(2)? as u8;
    let mut rest = [0u32; 3];
    for slot in &mut rest {
        let v = r.read_bits(ORIENTATION_BITS)? as u32;
        if v >= ORIENTATION_LEVELS {
            return Err(QuantizeError::Corrupt("orientation component out of range"));
        }
        *slot = v;
    }
    Ok((largest, rest))
}

/// Writes a quantised pose in absolute form (no mode bit).
pub fn write_quantized(q: &QuantizedPose, volume: &Volume, w: &mut BitWriter) {
    write_position(w, q, volume);
    write_orientation(w, q);
}

/// Reads a quantised pose in absolute form (no mode bit).
pub fn read_quantized(
    r: &mut BitReader<'_>,
    volume: &Volume,
) -> Result<QuantizedPose, QuantizeError> {
    volume.validate()?;
    let position = read_position(r, volume)?;
    let (largest, rest) = read_orientation(r)?;
    Ok(QuantizedPose {
        position,
        largest,
        rest,
    })
}

/// Encodes a pose in absolute form: [`Volume::absolute_pose_bits`] bits.
pub fn encode_pose(
    pose: &Pose,
    volume: &Volume,
    w: &mut BitWriter,
) -> Result<EncodeInfo, QuantizeError> {
    let (quantized, clamped) = QuantizedPose::from_pose(pose, volume)?;
    let start = w.bit_len();
    write_quantized(&quantized, volume, w);
    Ok(EncodeInfo {
        quantized,
        clamped,
        bits: w.bit_len() - start,
        delta: false,
    })
}

/// Decodes a pose written by [`encode_pose`]; truncated input is an error.
pub fn decode_pose(r: &mut BitReader<'_>, volume: &Volume) -> Result<Pose, QuantizeError> {
    Ok(read_quantized(r, volume)?.to_pose(volume))
}

/// The smallest delta class fitting all of `deltas`, if any.
fn delta_class(deltas: &[i64; 3]) -> Option<usize> {
    DELTA_WIDTHS
        .iter()
        .position(|&w| deltas.iter().all(|&d| fits_signed(d, w)))
}

/// How one group (position or orientation) of a delta pose is sent.
enum Group {
    Delta(usize, [i64; 3]),
    Absolute,
}

/// How one group is sent against `reference`: the narrowest delta width, or absolute when
/// no width fits or a delta would not be smaller.
fn plan_group(cur: [u32; 3], reference: [u32; 3], absolute_bits: u32) -> Group {
    let deltas: [i64; 3] = std::array::from_fn(|i| i64::from(cur[i]) - i64::from(reference[i]));
    match delta_class(&deltas) {
        Some(c) if 3 * DELTA_WIDTHS[c] < absolute_bits => Group::Delta(c, deltas),
        _ => Group::Absolute,
    }
}

fn write_group(w: &mut BitWriter, g: &Group) {
    match g {
        Group::Delta(c, deltas) => {
            w.write_bits(*c as u64, CLASS_BITS);
            for &d in deltas {
                w.write_signed(d, DELTA_WIDTHS[*c]);
            }
        }
        Group::Absolute => w.write_bits(CLASS_ABSOLUTE, CLASS_BITS),
    }
}

/// Encodes a pose against `reference` (the receiver's last acked quantised pose of that
/// device), choosing the smaller of the delta and absolute forms. Decode with
/// [`decode_pose_delta`] and the same reference.
pub fn encode_pose_delta(
    pose: &Pose,
    reference: &QuantizedPose,
    volume: &Volume,
    w: &mut BitWriter,
) -> Result<EncodeInfo, QuantizeError> {
    let (quantized, clamped) = QuantizedPose::from_pose(pose, volume)?;
    let mut info = encode_quantized_delta(&quantized, reference, volume, w)?;
    info.clamped = clamped;
    Ok(info)
}

/// Encodes an already quantised pose against `reference` as [`encode_pose_delta`] does
/// (a relay forwards what it received without quantising twice). Errors when either pose
/// does not fit the volume.
pub fn encode_quantized_delta(
    quantized: &QuantizedPose,
    reference: &QuantizedPose,
    volume: &Volume,
    w: &mut BitWriter,
) -> Result<EncodeInfo, QuantizeError> {
    volume.validate()?;
    let quantized = *quantized;
    let clamped = false;
    if !quantized.fits(volume) || !reference.fits(volume) {
        return Err(QuantizeError::ReferenceOutOfRange);
    }
    let pos = plan_group(
        quantized.position,
        reference.position,
        volume.position_bits(),
    );
    let rot = if quantized.largest == reference.largest {
        plan_group(quantized.rest, reference.rest, ORIENTATION_TOTAL_BITS)
    } else {
        Group::Absolute
    };
    let start = w.bit_len();
    // No mode bit: a group that does not fit a delta width is sent absolute by its class,
    // which costs a few bits more than a whole absolute pose only when both groups are.
    write_group(w, &pos);
    if matches!(pos, Group::Absolute) {
        write_position(w, &quantized, volume);
    }
    write_group(w, &rot);
    if matches!(rot, Group::Absolute) {
        write_orientation(w, &quantized);
    }
    Ok(EncodeInfo {
        quantized,
        clamped,
        bits: w.bit_len() - start,
        delta: !matches!((&pos, &rot), (Group::Absolute, Group::Absolute)),
    })
}

fn read_group_delta(
    r: &mut BitReader<'_>,
    class: u64,
    reference: [u32; 3],
    limits: [u64; 3],
) -> Result<[u32; 3], QuantizeError> {
    let width = DELTA_WIDTHS
        .get(class as usize)
        .copied()
        .ok_or(QuantizeError::Corrupt("size class"))?;
    let mut out = [0u32; 3];
    for i in 0..3 {
        let d = r.read_signed(width)?;
        let v = i64::from(reference[i]) + d;
        if v < 0 || v as u64 >= limits[i] {
            return Err(QuantizeError::Corrupt("delta leaves the quantised range"));
        }
        out[i] = v as u32;
    }
    Ok(out)
}

/// Reads a quantised pose written by [`encode_quantized_delta`] against `reference`.
pub fn read_quantized_delta(
    r: &mut BitReader<'_>,
    reference: &QuantizedPose,
    volume: &Volume,
) -> Result<QuantizedPose, QuantizeError> {
    volume.validate()?;
    if !reference.fits(volume) {
        return Err(QuantizeError::ReferenceOutOfRange);
    }
    let pos_limits = volume.axis_levels();
    let class = r.read_bits(CLASS_BITS)?;
    let position = if class == CLASS_ABSOLUTE {
        read_position(r, volume)?
    } else {
        read_group_delta(r, class, reference.position, pos_limits)?
    };
    let class = r.read_bits(CLASS_BITS)?;
    let (largest, rest) = if class == CLASS_ABSOLUTE {
        read_orientation(r)?
    } else {
        let limit = u64::from(ORIENTATION_LEVELS);
        (
            reference.largest,
            read_group_delta(r, class, reference.rest, [limit; 3])?,
        )
    };
    Ok(QuantizedPose {
        position,
        largest,
        rest,
    })
}

/// Decodes a pose written by [`encode_pose_delta`] against the same `reference`.
pub fn decode_pose_delta(
    r: &mut BitReader<'_>,
    reference: &QuantizedPose,
    volume: &Volume,
) -> Result<Pose, QuantizeError> {
    Ok(read_quantized_delta(r, reference, volume)?.to_pose(volume))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64* — deterministic, dependency-free.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in [-1, 1].
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
        fn quat(&mut self) -> Quat {
            loop {
                let c = [self.unit(), self.unit(), self.unit(), self.unit()];
                let n = c.iter().map(|v| v * v).sum::<f64>().sqrt();
                if n > 0.1 && n <= 1.0 {
                    return Quat::from_array(c.map(|v| (v / n) as f32));
                }
            }
        }
        fn in_volume(&mut self, v: &Volume) -> Vec3 {
            let lo = v.min.to_array();
            let hi = v.max.to_array();
            let p: [f32; 3] = std::array::from_fn(|i| {
                let t = (self.unit() + 1.0) / 2.0;
                (f64::from(lo[i]) + t * (f64::from(hi[i]) - f64::from(lo[i]))) as f32
            });
            Vec3::new(p[0], p[1], p[2])
        }
    }

    /// Encodes absolutely, decodes, and returns (max axis error m, angle error deg, bits).
    fn round_trip(pose: &Pose, volume: &Volume) -> (f64, f64, usize, bool) {
        let mut w = BitWriter::new();
        let info = encode_pose(pose, volume, &mut w).expect("encode");
        assert_eq!(info.bits, volume.absolute_pose_bits() as usize);
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        let out = decode_pose(&mut r, volume).expect("decode");
        assert_eq!(info.quantized.to_pose(volume), out);
        let unit = validate_pose(pose).expect("valid");
        (
            out.position.distance(unit.position),
            out.orientation.angle_deg(unit.orientation),
            info.bits,
            info.clamped,
        )
    }

    #[test]
    fn documented_orientation_bound_matches_the_formula() {
        let bound_deg = |levels: u32| {
            let e = std::f64::consts::SQRT_2 / (2.0 * f64::from(levels - 1));
            (4.0 * 3f64.sqrt() * e).to_degrees()
        };
        let bound = bound_deg(ORIENTATION_LEVELS);
        assert!(
            (bound - ORIENTATION_ERROR_BOUND_DEG).abs() < 1e-4,
            "{bound}"
        );
        assert!(bound < MAX_ANGLE_ERROR_DEG);
        // 10 % fewer levels would break the 0.1° target.
        assert!(bound_deg(ORIENTATION_LEVELS * 9 / 10) > MAX_ANGLE_ERROR_DEG);
    }

    #[test]
    fn default_volume_bit_budget() {
        let v = Volume::default();
        assert_eq!(v.axis_bits(), [16, 14, 16]);
        assert!(v.steps().iter().all(|&s| s <= 2.0 * MAX_AXIS_ERROR_M));
        assert!((MAX_AXIS_ERROR_M * 3f64.sqrt() - MAX_POSITION_ERROR_M).abs() < 1e-15);
        assert_eq!(ORIENTATION_TOTAL_BITS, 38);
        assert_eq!(v.absolute_pose_bits(), 84);
        // The step is as coarse as the bound allows (not a power-of-two division).
        assert!(v.steps().iter().all(|&s| s > 1.15e-3), "{:?}", v.steps());
        // A 1 m cube: 868 values (867 steps of 1.15 mm) per axis, written in 10 bits.
        let small = Volume::new(Vec3::new(0.0, 0.0, 0.0), Vec3::new(1.0, 1.0, 1.0)).expect("ok");
        assert_eq!(small.axis_levels(), [868; 3]);
        assert_eq!(small.axis_bits(), [10, 10, 10]);
    }

    #[test]
    fn invalid_volumes_are_rejected() {
        let z = Vec3::ZERO;
        assert!(Volume::new(z, z).is_err());
        assert!(Volume::new(Vec3::new(1.0, 0.0, 0.0), Vec3::new(0.0, 1.0, 1.0)).is_err());
        assert!(Volume::new(z, Vec3::new(f32::INFINITY, 1.0, 1.0)).is_err());
        assert!(Volume::new(Vec3::new(f32::NAN, 0.0, 0.0), Vec3::new(1.0, 1.0, 1.0)).is_err());
        assert!(Volume::new(Vec3::new(-1e7, 0.0, 0.0), Vec3::new(1e7, 1.0, 1.0)).is_err());
        let bad = Volume { min: z, max: z };
        let mut w = BitWriter::new();
        assert!(matches!(
            encode_pose(&Pose::IDENTITY, &bad, &mut w),
            Err(QuantizeError::InvalidVolume(_))
        ));
    }

    #[test]
    fn random_poses_round_trip_within_bounds() {
        let v = Volume::default();
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let (mut max_pos, mut max_ang) = (0.0f64, 0.0f64);
        for _ in 0..20_000 {
            let pose = Pose::new(rng.quat(), rng.in_volume(&v));
            let (pe, ae, _, clamped) = round_trip(&pose, &v);
            assert!(!clamped);
            max_pos = max_pos.max(pe);
            max_ang = max_ang.max(ae);
        }
        eprintln!(
            "absolute round trip, 20000 random poses: max position error {:.4} mm, \
             max angle error {:.4}°",
            max_pos * 1e3,
            max_ang
        );
        assert!(max_pos <= MAX_POSITION_ERROR_M, "{max_pos}");
        assert!(max_ang <= MAX_ANGLE_ERROR_DEG, "{max_ang}");
    }

    #[test]
    fn worst_case_orientations_stay_within_bound() {
        // Around (½, ½, ½, ½) the dropped component is smallest (½): the worst case of the
        // analysis in the module docs. Scan a neighbourhood finely.
        let v = Volume::default();
        let mut rng = Rng(77);
        let mut max_ang = 0.0f64;
        for _ in 0..20_000 {
            let c = [
                0.5 + rng.unit() * 0.01,
                0.5 + rng.unit() * 0.01,
                0.5 + rng.unit() * 0.01,
                0.5 + rng.unit() * 0.01,
            ];
            let pose = Pose::new(Quat::from_array(c.map(|x| x as f32)), Vec3::ZERO);
            max_ang = max_ang.max(round_trip(&pose, &v).1);
        }
        eprintln!("near (½,½,½,½): max angle error {max_ang:.4}°");
        assert!(max_ang <= ORIENTATION_ERROR_BOUND_DEG, "{max_ang}");
        assert!(max_ang <= MAX_ANGLE_ERROR_DEG, "{max_ang}");
    }

    #[test]
    fn sign_flipped_quaternions_encode_identically() {
        let v = Volume::default();
        let mut rng = Rng(99);
        for _ in 0..2_000 {
            let q = rng.quat();
            let neg = Quat::from_array(q.to_array().map(|c| -c));
            let p = rng.in_volume(&v);
            let a = QuantizedPose::from_pose(&Pose::new(q, p), &v)
                .expect("ok")
                .0;
            let b = QuantizedPose::from_pose(&Pose::new(neg, p), &v)
                .expect("ok")
                .0;
            assert_eq!(a, b);
            assert!(a.to_pose(&v).orientation.angle_deg(q) <= MAX_ANGLE_ERROR_DEG);
            assert!(b.to_pose(&v).orientation.angle_deg(neg) <= MAX_ANGLE_ERROR_DEG);
        }
    }

    #[test]
    fn special_orientations_round_trip() {
        let v = Volume::default();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let mut cases = vec![
            // w near 0 (rotations by almost 180°).
            Quat::new(0.0, 1.0, 0.0, 1e-4),
            Quat::new(0.6, 0.8, 0.0, -1e-5),
            Quat::new(0.577, 0.577, 0.577, 0.0),
            // Ties between the largest components.
            Quat::new(h, h, 0.0, 0.0),
            Quat::new(0.0, 0.0, -h, h),
            Quat::new(0.5, -0.5, 0.5, -0.5),
            // Non-unit input is normalised.
            Quat::new(0.0, 0.0, 0.0, 7.0),
        ];
        // Each component being the largest, with either sign.
        for i in 0..4 {
            for s in [1.0f32, -1.0] {
                let mut c = [0.1f32, -0.2, 0.3, 0.15];
                c[i] = 0.9 * s;
                cases.push(Quat::from_array(c));
                let mut e = [0.0f32; 4];
                e[i] = s;
                cases.push(Quat::from_array(e));
            }
        }
        for (k, q) in cases.into_iter().enumerate() {
            let pose = Pose::new(q, Vec3::new(1.0, 1.5, -2.0));
            let (pe, ae, _, _) = round_trip(&pose, &v);
            assert!(
                pe <= MAX_POSITION_ERROR_M && ae <= MAX_ANGLE_ERROR_DEG,
                "case {k}: {ae}"
            );
        }
        for i in 0..4u8 {
            let mut c = [0.1f32, -0.2, 0.3, 0.15];
            c[usize::from(i)] = -0.9;
            let q = QuantizedPose::from_pose(&Pose::new(Quat::from_array(c), Vec3::ZERO), &v)
                .expect("ok")
                .0;
            assert_eq!(q.largest, i);
        }
    }

    #[test]
    fn volume_edges_and_corners_round_trip() {
        let v = Volume::default();
        let lo = v.min.to_array();
        let hi = v.max.to_array();
        let mut max_pos = 0.0f64;
        for corner in 0..27u32 {
            let p: [f32; 3] = std::array::from_fn(|i| match (corner / 3u32.pow(i as u32)) % 3 {
                0 => lo[i],
                1 => (lo[i] + hi[i]) / 2.0,
                _ => hi[i],
            });
            for nudge in [0.0f32, 1e-4, -1e-4] {
                let p = p.map(|c| c + nudge);
                let inside = p
                    .iter()
                    .zip(lo.iter().zip(hi))
                    .all(|(&c, (&l, h))| c >= l && c <= h);
                let pose = Pose::new(Quat::IDENTITY, Vec3::new(p[0], p[1], p[2]));
                let (pe, ae, _, clamped) = round_trip(&pose, &v);
                assert_eq!(clamped, !inside);
                if inside {
                    max_pos = max_pos.max(pe);
                }
                assert!(pe <= MAX_POSITION_ERROR_M && ae <= MAX_ANGLE_ERROR_DEG);
            }
        }
        eprintln!(
            "edges and corners: max position error {:.4} mm",
            max_pos * 1e3
        );
    }

    #[test]
    fn positions_outside_the_volume_are_clamped() {
        let v = Volume::default();
        let pose = Pose::new(Quat::IDENTITY, Vec3::new(100.0, -50.0, 3.0));
        let mut w = BitWriter::new();
        let info = encode_pose(&pose, &v, &mut w).expect("clamping is not an error");
        assert!(info.clamped);
        let bytes = w.into_bytes();
        let out = decode_pose(&mut BitReader::new(&bytes), &v).expect("decode");
        assert!(out.position.distance(Vec3::new(32.0, -4.0, 3.0)) <= MAX_POSITION_ERROR_M);
        let mut rng = Rng(5);
        for _ in 0..1_000 {
            let p = Vec3::new(
                (rng.unit() * 1e4) as f32,
                (rng.unit() * 1e4) as f32,
                (rng.unit() * 1e4) as f32,
            );
            let q = QuantizedPose::from_pose(&Pose::new(rng.quat(), p), &v)
                .expect("ok")
                .0;
            assert!(q.fits(&v));
            let back = q.to_pose(&v).position;
            assert!(back.x >= -32.0 && back.x <= 32.0 && back.y >= -4.0 && back.y <= 12.0);
        }
    }

    #[test]
    fn invalid_poses_are_rejected_by_the_encoder() {
        let v = Volume::default();
        let mut w = BitWriter::new();
        for pose in [
            Pose::new(Quat::new(f32::NAN, 0.0, 0.0, 1.0), Vec3::ZERO),
            Pose::new(Quat::new(0.0, 0.0, 0.0, f32::INFINITY), Vec3::ZERO),
            Pose::new(Quat::new(0.0, 0.0, 0.0, 0.0), Vec3::ZERO),
            Pose::new(Quat::IDENTITY, Vec3::new(0.0, f32::NAN, 0.0)),
        ] {
            assert!(matches!(
                encode_pose(&pose, &v, &mut w),
                Err(QuantizeError::InvalidPose(_))
            ));
            let r = QuantizedPose::from_pose(&Pose::IDENTITY, &v).expect("ok").0;
            assert!(encode_pose_delta(&pose, &r, &v, &mut w).is_err());
        }
        assert_eq!(w.bit_len(), 0, "nothing written for rejected poses");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let v = Volume::default();
        let pose = Pose::new(Quat::new(0.1, 0.2, 0.3, 0.9), Vec3::new(1.0, 2.0, 3.0));
        let reference = QuantizedPose::from_pose(&Pose::IDENTITY, &v).expect("ok").0;
        let mut w = BitWriter::new();
        encode_pose(&pose, &v, &mut w).expect("ok");
        let abs = w.into_bytes();
        let mut w = BitWriter::new();
        encode_pose_delta(&pose, &reference, &v, &mut w).expect("ok");
        let delta = w.into_bytes();
        for len in 0..abs.len() {
            let e = decode_pose(&mut BitReader::new(&abs[..len]), &v);
            assert!(
                matches!(e, Err(QuantizeError::Bits(BitError::Truncated { .. }))),
                "{len}"
            );
        }
        for len in 0..delta.len() {
            assert!(decode_pose_delta(&mut BitReader::new(&delta[..len]), &reference, &v).is_err());
        }
        // Arbitrary bytes never panic: they decode or fail cleanly.
        let mut rng = Rng(3);
        for _ in 0..5_000 {
            let n = (rng.next() % 14) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if let Ok(p) = decode_pose(&mut BitReader::new(&bytes), &v) {
                assert!((p.orientation.norm() - 1.0).abs() < 1e-5);
            }
            if let Ok(p) = decode_pose_delta(&mut BitReader::new(&bytes), &reference, &v) {
                assert!((p.orientation.norm() - 1.0).abs() < 1e-5);
            }
        }
        // A reference that does not fit the volume is refused.
        let bad = QuantizedPose {
            position: [1 << 20, 0, 0],
            largest: 3,
            rest: [0; 3],
        };
        assert_eq!(
            decode_pose_delta(&mut BitReader::new(&delta), &bad, &v),
            Err(QuantizeError::ReferenceOutOfRange)
        );
    }

    /// Encodes `pose` against `reference` and checks the decode equals the sent quantised pose.
    fn delta_round_trip(pose: &Pose, reference: &QuantizedPose, v: &Volume) -> EncodeInfo {
        let mut w = BitWriter::new();
        let info = encode_pose_delta(pose, reference, v, &mut w).expect("encode");
        assert_eq!(info.bits, w.bit_len());
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        let q = read_quantized_delta(&mut r, reference, v).expect("decode");
        assert_eq!(q, info.quantized);
        let unit = validate_pose(pose).expect("valid");
        let out = q.to_pose(v);
        assert!(out.orientation.angle_deg(unit.orientation) <= MAX_ANGLE_ERROR_DEG);
        if !info.clamped {
            assert!(out.position.distance(unit.position) <= MAX_POSITION_ERROR_M);
        }
        info
    }

    #[test]
    fn delta_round_trips_and_falls_back_to_absolute() {
        let v = Volume::default();
        let mut rng = Rng(0xDE17A);
        for _ in 0..5_000 {
            let base = Pose::new(rng.quat(), rng.in_volume(&v));
            let reference = QuantizedPose::from_pose(&base, &v).expect("ok").0;
            // Small motion: a few mm and a fraction of a degree.
            let scale = [0.0, 0.002, 0.02, 0.2, 2.0][(rng.next() % 5) as usize];
            let o = base.orientation.to_array();
            let q = Quat::from_array(o.map(|c| c + (rng.unit() * scale * 0.1) as f32));
            let p = base
                .position
                .to_array()
                .map(|c| c + (rng.unit() * scale) as f32);
            let pose = Pose::new(q, Vec3::new(p[0], p[1], p[2]));
            let info = delta_round_trip(&pose, &reference, &v);
            assert!(info.bits <= (MAX_DELTA_OVERHEAD_BITS + v.absolute_pose_bits()) as usize);
            if scale == 0.0 {
                assert!(info.delta && info.bits == 2 * CLASS_BITS as usize);
            }
            // Unrelated poses: absolute (or per-group absolute) and still exact.
            let far = Pose::new(rng.quat(), rng.in_volume(&v));
            delta_round_trip(&far, &reference, &v);
        }
    }

    #[test]
    fn delta_is_smaller_than_absolute_for_small_motions() {
        let v = Volume::default();
        let base = Pose::new(Quat::new(0.1, 0.7, -0.1, 0.7), Vec3::new(0.3, 1.7, -0.4));
        let reference = QuantizedPose::from_pose(&base, &v).expect("ok").0;
        let moved = Pose::new(
            Quat::new(0.101, 0.702, -0.1, 0.698),
            Vec3::new(0.305, 1.698, -0.39),
        );
        let info = delta_round_trip(&moved, &reference, &v);
        assert!(info.delta);
        assert!(
            info.bits < v.absolute_pose_bits() as usize / 2,
            "{}",
            info.bits
        );
        // The dropped component changes: orientation goes absolute inside a delta pose.
        let turned = Pose::new(
            Quat::new(0.1, 0.72, -0.1, 0.68),
            Vec3::new(0.305, 1.698, -0.39),
        );
        let info = delta_round_trip(&turned, &reference, &v);
        assert!(info.delta);
        assert_eq!(info.quantized.largest, 1);
        assert!(info.bits < v.absolute_pose_bits() as usize);
    }

    /// Rotation about the y axis by `yaw` radians, then a small pitch about x.
    fn head_orientation(yaw: f64, pitch: f64) -> Quat {
        let (sy, cy) = (yaw / 2.0).sin_cos();
        let (sp, cp) = (pitch / 2.0).sin_cos();
        // q = q_yaw * q_pitch
        Quat::new(
            (cy * sp) as f32,
            (sy * cp) as f32,
            (-sy * sp) as f32,
            (cy * cp) as f32,
        )
    }

    #[test]
    fn size_report_slowly_moving_head() {
        let v = Volume::default();
        let abs_bits = v.absolute_pose_bits() as usize;
        // 10 s at 90 Hz: walking 0.3 m/s with head bob, yaw sweeping ±60° at up to ~30°/s,
        // pitch ±10°. Deltas against the previous frame and against the pose of 4 frames
        // ago (the receiver's last acked pose with ~45 ms round trip).
        let frames: Vec<Pose> = (0..900)
            .map(|i| {
                let t = f64::from(i) / 90.0;
                let yaw = (t * 0.5).sin() * 1.05;
                let pitch = (t * 0.7).sin() * 0.17;
                let pos = Vec3::new(
                    (0.3 * t) as f32,
                    (1.7 + 0.02 * (t * 11.0).sin()) as f32,
                    (-0.1 * t) as f32,
                );
                Pose::new(head_orientation(yaw, pitch), pos)
            })
            .collect();
        for lag in [1usize, 4] {
            let (mut total, mut max_bits, mut n) = (0usize, 0usize, 0usize);
            for i in lag..frames.len() {
                let reference = QuantizedPose::from_pose(&frames[i - lag], &v)
                    .expect("ok")
                    .0;
                let info = delta_round_trip(&frames[i], &reference, &v);
                total += info.bits;
                max_bits = max_bits.max(info.bits);
                n += 1;
            }
            let mean = total as f64 / n as f64;
            eprintln!(
                "slow head, delta against {lag} frame(s) back: mean {mean:.1} bits \
                 ({:.2} bytes), max {max_bits} bits; absolute {abs_bits} bits ({:.2} bytes); \
                 3-point update at this rate ≈ {:.1} bytes",
                mean / 8.0,
                abs_bits as f64 / 8.0,
                3.0 * mean / 8.0
            );
            assert!(mean < abs_bits as f64 / 2.0);
        }
        let idle = QuantizedPose::from_pose(&frames[0], &v).expect("ok").0;
        let info = delta_round_trip(&frames[0], &idle, &v);
        eprintln!("idle device (unchanged pose): {} bits", info.bits);
    }
}
