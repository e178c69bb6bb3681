//! Predictive coding of poses against acknowledged references.
//!
//! A delta against the receiver's last acked pose grows with the round trip: with ~45 ms
//! before an ack at 90 Hz, the reference is about 4 frames old and most of the delta is
//! plain motion. Both sides know the acked pose ([`Reference::last`]) and, usually, one or
//! two earlier acked poses ([`Reference::previous`], [`Reference::earlier`]); from them and
//! the frame gaps they compute the *same* prediction of the current quantised pose, and the
//! *same* code for each residual, from integers alone. Only the residuals are sent.
//!
//! # Prediction (integer-exact)
//! Per quantised component (three position axes, three smallest-three components), with
//! `l`, `p`, `e` the component in `last`, `previous` and `earlier`, `g₁` the frames from
//! `previous` to `last`, `g₂` from `earlier` to `previous`, `G = g₁ + g₂` and
//! `s = min(frames_since_last, MAX_EXTRAPOLATION_FRAMES)`:
//! - no `previous` (or `g₁ = 0`): `l` (plain delta coding);
//! - `previous` only (or `g₂ = 0`): linear, `l + round((l − p)·s / g₁)`;
//! - all three: the curvature `c = |(l − p)·g₂ − (p − e)·g₁|` decides. Small curvature is
//!   mostly quantisation noise: linear over the longer baseline, `l + round((l − e)·s / G)`
//!   (half the noise of the short one). Large curvature (`2c ≥ CURVATURE_THRESHOLD·g₁g₂G`,
//!   i.e. a second difference of [`CURVATURE_THRESHOLD`] steps at unit gaps) is real
//!   acceleration: the quadratic through the three,
//!   `round((l(s+g₁)(s+G)g₂ − p·s(s+G)G + e·s(s+g₁)g₁) / (g₁g₂G))`.
//!
//! Rounding is half up, computed in `i128`, and the result clamped to the component's range.
//!
//! The orientation is extrapolated in `last`'s smallest-three basis: a reference whose
//! dropped index differs is first re-expressed in it. Re-expressing uses integers only: a
//! component `t` stands for `u = 2t − 2900` units of `1/(2900·√2)`, the dropped one is the
//! integer square root of `2·2900² − Σu²`, and the new basis drops another index (negating
//! all four when that one is negative) and maps the other three back to `t = ⌊(u + 2901)
//! / 2⌋`, clamped. When the extrapolated orientation's rebuilt dropped component is no
//! longer the largest in magnitude (strictly), the prediction is re-expressed with the
//! largest one dropped. There is no floating point in the prediction path, so sender and
//! receiver agree bit for bit.
//!
//! # Residual code (no side information)
//! Each component's residual `r` (current minus predicted) is written as a Rice code of
//! `u = zigzag(r)` (`0, −1, 1, −2, …` → `0, 1, 2, 3, …`) with a parameter `k` both sides
//! derive from the references: the expected size `m = 2·|l − p|·s/g₁ + 2c·s²/(g₁g₂G) + s`
//! (speed and acceleration carried `s` frames ahead, plus the noise that grows with `s`;
//! the curvature term only with `earlier`, `m = 9s` without `previous`) selects `k` from
//! [`RICE_K`] by the device (head or other), the group (position or orientation) and `m`'s
//! bit length. The code: `u >> k` one bits, a zero, and the low `k` bits of `u`. A quotient
//! of [`RICE_ESCAPE`] or more is an escape instead: that many one bits, then the component
//! in absolute form (position: its axis bits; orientation: 12 bits). The first orientation
//! component's escape carries one more bit first: `0` for that component alone; `1` when
//! the dropped index differs from the prediction's: the index (2 bits) follows, then the
//! three orientation components again, as residuals against the prediction re-expressed
//! with that index dropped (their escapes without the extra bit).
//!
//! Position axes first, then the orientation. Which acked poses form the [`Reference`]
//! (and hence the gaps) must be agreed by the stream layer, e.g. by naming the acked
//! sequence numbers in the datagram.

use super::bits::{unzigzag, zigzag, BitReader, BitWriter};
use super::pose::{validate_pose, Pose};
use super::quantize::{
    EncodeInfo, QuantizeError, QuantizedPose, Volume, MAX_ANGLE_ERROR_DEG, MAX_POSITION_ERROR_M,
    ORIENTATION_BITS, ORIENTATION_LEVELS,
};

/// Extrapolation horizon cap in frames: beyond it the motion is extrapolated only this
/// far (an old reference predicts poorly anyway; the cap also bounds the arithmetic).
pub const MAX_EXTRAPOLATION_FRAMES: u32 = 16;

/// Second difference (in quantisation steps, at unit gaps) from which the prediction is
/// quadratic rather than linear (see the module docs).
pub const CURVATURE_THRESHOLD: u64 = 6;

/// Orientations move toward the prediction ([`quantize_toward`]) only against references
/// at most this many frames old: the moved components feed later predictions' velocity
/// and curvature, amplified by the horizon, which cost more than the move saved beyond it.
pub const MAX_RD_ORIENTATION_AGE: u32 = 2;

/// Rice quotients from this on are escapes (see the module docs).
pub const RICE_ESCAPE: u64 = 12;

/// Bit-length buckets of the expected residual size `m` (see the module docs).
pub const SIZE_BUCKETS: usize = 20;

/// Rice parameters by `[head?][group: 0 position, 1 orientation][bit length of m]`:
/// `RICE_K[0]` for hands and trackers, `RICE_K[1]` for the head. Fitted on the synthetic
/// avatar's residuals at reference ages 1 to 9 (a parameter off by one costs a fraction of
/// a bit per component, never correctness).
pub const RICE_K: [[[u8; SIZE_BUCKETS]; 2]; 2] = [
    [
        [
            0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 8, 10, 10, 11, 12, 13, 14, 15, 16, 16,
        ],
        [
            0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 7, 8, 9, 9, 10, 11, 12, 12, 12, 12,
        ],
    ],
    [
        [
            0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 4, 6, 8, 10, 11, 12, 13, 14, 15, 16,
        ],
        [
            0, 0, 0, 0, 0, 1, 1, 2, 2, 4, 5, 8, 9, 9, 10, 11, 12, 12, 12, 12,
        ],
    ],
];

/// The expected residual size per frame of a component without velocity (no `previous`).
const NO_VELOCITY_SIZE: i128 = 9;

/// The most bits [`encode_quantized_predicted`] writes for one pose in `volume`: every
/// component an escape (or its longest Rice code), the orientation's after the escape
/// that changes its dropped index.
pub fn max_predicted_bits(volume: &Volume) -> u32 {
    let longest = |group: usize| {
        let k = RICE_K
            .iter()
            .flat_map(|rows| rows[group])
            .max()
            .unwrap_or(0);
        RICE_ESCAPE as u32 + u32::from(k)
    };
    let position: u32 = volume
        .axis_bits()
        .iter()
        .map(|&b| longest(0).max(RICE_ESCAPE as u32 + b))
        .sum();
    let component = longest(1).max(RICE_ESCAPE as u32 + ORIENTATION_BITS);
    position + RICE_ESCAPE as u32 + 3 + 3 * component
}

/// What both sides know for predicting a device's current pose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The receiver's last acked quantised pose of the device.
    pub last: QuantizedPose,
    /// An earlier acked quantised pose of the device, if any (for the velocity).
    pub previous: Option<QuantizedPose>,
    /// An acked quantised pose before `previous`, if any (for the acceleration).
    pub earlier: Option<QuantizedPose>,
    /// Frames (sample periods) from `previous` to `last`; `0` disables the velocity.
    pub frames_between_refs: u32,
    /// Frames from `earlier` to `previous`; `0` disables the acceleration.
    pub frames_before_previous: u32,
    /// Frames from `last` to the pose being coded.
    pub frames_since_last: u32,
    /// Whether the device is a head (its residuals take their own code parameters).
    pub head: bool,
}

impl Reference {
    /// A reference without velocity: the prediction is `last` (plain delta coding).
    pub fn plain(last: QuantizedPose) -> Reference {
        Reference {
            last,
            previous: None,
            earlier: None,
            frames_between_refs: 0,
            frames_before_previous: 0,
            frames_since_last: 0,
            head: false,
        }
    }

    /// Whether the reference poses fit the volume's quantised ranges.
    pub fn fits(&self, volume: &Volume) -> bool {
        self.fits_levels(&volume.axis_levels())
    }

    fn fits_levels(&self, levels: &[u64; 3]) -> bool {
        self.last.fits_levels(levels)
            && self.previous.is_none_or(|p| p.fits_levels(levels))
            && self.earlier.is_none_or(|p| p.fits_levels(levels))
    }
}

/// `round(num / den)`, half up, for `den > 0`.
fn round_div(num: i128, den: i128) -> i128 {
    // The same arithmetic in 64 bits when it fits (it always does for poses: positions
    // are 31-bit, gaps a few frames): a 128-bit division is a library call.
    let narrow = i64::try_from(num)
        .ok()
        .zip(i64::try_from(den).ok())
        .and_then(|(n, d)| Some((n.checked_mul(2)?.checked_add(d)?, d.checked_mul(2)?)));
    match narrow {
        Some((n, d)) => i128::from(n.div_euclid(d)),
        None => (2 * num + den).div_euclid(2 * den),
    }
}

/// The predicted value of one component (`last`, `previous`, `earlier`), and the bucket of
/// its expected residual size.
fn component(
    l: u32,
    p: Option<u32>,
    e: Option<u32>,
    gaps: (u32, u32, u32),
    max: u64,
) -> (u32, usize) {
    let (s, g1, g2) = (i128::from(gaps.0), i128::from(gaps.1), i128::from(gaps.2));
    let l = i128::from(l);
    let (predicted, size) = match (p.filter(|_| g1 > 0), e.filter(|_| g2 > 0)) {
        // Plain delta coding: sized as if moving a few steps per frame.
        (None, _) => (l, NO_VELOCITY_SIZE * s),
        (Some(p), None) => {
            let p = i128::from(p);
            let predicted = l + round_div((l - p) * s, g1);
            (predicted, 2 * (l - p).abs() * s / g1 + s)
        }
        (Some(p), Some(e)) => {
            let (p, e) = (i128::from(p), i128::from(e));
            let g = g1 + g2;
            let curvature = ((l - p) * g2 - (p - e) * g1).abs();
            let predicted = if 2 * curvature >= i128::from(CURVATURE_THRESHOLD) * g1 * g2 * g {
                round_div(
                    l * (s + g1) * (s + g) * g2 - p * s * (s + g) * g + e * s * (s + g1) * g1,
                    g1 * g2 * g,
                )
            } else {
                l + round_div((l - e) * s, g)
            };
            let size = 2 * (l - p).abs() * s / g1 + 2 * curvature * s * s / (g1 * g2 * g) + s;
            (predicted, size)
        }
    };
    let bucket = (128 - size.max(0).leading_zeros() as usize).min(SIZE_BUCKETS - 1);
    (predicted.clamp(0, i128::from(max)) as u32, bucket)
}

/// A prediction and the Rice parameters of the six residuals (position axes, then the
/// orientation components).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Prediction {
    pose: QuantizedPose,
    /// The volume's [`Volume::axis_levels`], computed with the prediction.
    levels: [u64; 3],
    /// The predicted orientation's four components (see [`components`]).
    orientation: [i64; 4],
    k: [u32; 6],
}

impl Prediction {
    /// The predicted orientation with index `largest` dropped.
    fn rest_for(&self, largest: u8) -> [u32; 3] {
        if largest == self.pose.largest {
            self.pose.rest
        } else {
            rebase(self.orientation, largest)
        }
    }
}

fn prediction(reference: &Reference, volume: &Volume) -> Result<Prediction, QuantizeError> {
    let (pose, buckets, orientation, levels) = prediction_buckets(reference, volume)?;
    let rows = &RICE_K[usize::from(reference.head)];
    let k = std::array::from_fn(|i| u32::from(rows[i / 3][buckets[i]]));
    Ok(Prediction {
        pose,
        levels,
        orientation,
        k,
    })
}

/// The prediction, the size bucket of each residual, the predicted orientation's
/// components and the volume's levels.
type Buckets = (QuantizedPose, [usize; 6], [i64; 4], [u64; 3]);

fn prediction_buckets(reference: &Reference, volume: &Volume) -> Result<Buckets, QuantizeError> {
    let levels = volume.checked_levels()?;
    if !reference.fits_levels(&levels) {
        return Err(QuantizeError::ReferenceOutOfRange);
    }
    let last = reference.last;
    let gaps = (
        reference.frames_since_last.min(MAX_EXTRAPOLATION_FRAMES),
        reference.frames_between_refs,
        reference.frames_before_previous,
    );
    let mut buckets = [0; 6];
    let mut position = [0u32; 3];
    for i in 0..3 {
        (position[i], buckets[i]) = component(
            last.position[i],
            reference.previous.map(|p| p.position[i]),
            reference.earlier.map(|e| e.position[i]),
            gaps,
            levels[i] - 1,
        );
    }
    // The orientation extrapolates in `last`'s smallest-three basis (older references
    // re-expressed in it), then drops the component the prediction makes the largest.
    let in_last_basis = |q: QuantizedPose| rebase(components(q.largest, q.rest), last.largest);
    let previous = reference.previous.map(in_last_basis);
    let earlier = reference.earlier.map(in_last_basis);
    let mut rest = [0u32; 3];
    for i in 0..3 {
        (rest[i], buckets[3 + i]) = component(
            last.rest[i],
            previous.map(|p| p[i]),
            earlier.map(|e| e[i]),
            gaps,
            u64::from(ORIENTATION_LEVELS - 1),
        );
    }
    let predicted = components(last.largest, rest);
    let largest = largest_of(predicted, last.largest);
    Ok((
        QuantizedPose {
            position,
            largest,
            rest: rebase(predicted, largest),
        },
        buckets,
        predicted,
        levels,
    ))
}

/// `ORIENTATION_LEVELS − 1`: a sent component `t` stands for `(2t − HALF_STEPS)` units of
/// `1/(√2·HALF_STEPS)`, the unit of [`components`].
const HALF_STEPS: i64 = ORIENTATION_LEVELS as i64 - 1;

/// The four quaternion components (x, y, z, w) of a quantised orientation as integers in
/// units of `1/(√2·HALF_STEPS)` (a unit quaternion has `Σc² = 2·HALF_STEPS²`), the dropped
/// one rebuilt by an integer square root: exact integer arithmetic, so both sides agree.
fn components(largest: u8, rest: [u32; 3]) -> [i64; 4] {
    let u = rest.map(|t| 2 * i64::from(t) - HALF_STEPS);
    let dropped = (2 * HALF_STEPS * HALF_STEPS - u.iter().map(|c| c * c).sum::<i64>())
        .max(0)
        .isqrt();
    let mut out = [0i64; 4];
    let mut k = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        if i == usize::from(largest) {
            *slot = dropped;
        } else {
            *slot = u[k];
            k += 1;
        }
    }
    out
}

/// The smallest-three components (clamped into range) of `c` with index `largest` dropped,
/// the sign chosen to make the dropped one non-negative.
fn rebase(c: [i64; 4], largest: u8) -> [u32; 3] {
    let largest = usize::from(largest.min(3));
    let sign = if c[largest] < 0 { -1 } else { 1 };
    let mut rest = [0u32; 3];
    let mut k = 0;
    for (i, &v) in c.iter().enumerate() {
        if i != largest {
            // t = (u + HALF_STEPS) / 2, rounded half up.
            rest[k] = (sign * v + HALF_STEPS + 1)
                .div_euclid(2)
                .clamp(0, HALF_STEPS) as u32;
            k += 1;
        }
    }
    rest
}

/// The index of the largest-magnitude component of `c`, `current` unless another is
/// strictly larger (the lowest such index on a tie).
fn largest_of(c: [i64; 4], current: u8) -> u8 {
    let mut best = usize::from(current.min(3));
    for i in 0..4 {
        if c[i].abs() > c[best].abs() {
            best = i;
        }
    }
    best as u8
}

/// The prediction of the current quantised pose (see the module docs). Errors when the
/// volume is invalid or a reference pose does not fit it.
pub fn predict(reference: &Reference, volume: &Volume) -> Result<QuantizedPose, QuantizeError> {
    Ok(prediction(reference, volume)?.pose)
}

/// Bits of a residual `r` under parameter `k`, or `None` when it is an escape.
fn rice_bits(r: i64, k: u32) -> Option<u32> {
    let q = zigzag(r) >> k;
    (q < RICE_ESCAPE).then(|| q as u32 + 1 + k)
}

fn write_rice(w: &mut BitWriter, r: i64, k: u32) -> bool {
    let u = zigzag(r);
    let q = u >> k;
    if q >= RICE_ESCAPE {
        return false;
    }
    for _ in 0..q {
        w.write_bool(true);
    }
    w.write_bool(false);
    w.write_bits(u, k);
    true
}

/// The escape: [`RICE_ESCAPE`] one bits.
fn write_escape(w: &mut BitWriter) {
    for _ in 0..RICE_ESCAPE {
        w.write_bool(true);
    }
}

/// Reads a Rice code: `Some(residual)`, or `None` after the escape's one bits.
fn read_rice(r: &mut BitReader<'_>, k: u32) -> Result<Option<i64>, QuantizeError> {
    let mut q = 0u64;
    while q < RICE_ESCAPE && r.read_bool()? {
        q += 1;
    }
    if q == RICE_ESCAPE {
        return Ok(None);
    }
    let low = r.read_bits(k)?;
    Ok(Some(unzigzag(q << k | low)))
}

/// The bits of a group's three residuals (escapes counted at their absolute cost).
fn group_bits(values: [u32; 3], predicted: [u32; 3], k: &[u32], escape_bits: [u32; 3]) -> u32 {
    (0..3)
        .map(|i| {
            let r = i64::from(values[i]) - i64::from(predicted[i]);
            rice_bits(r, k[i]).unwrap_or(RICE_ESCAPE as u32 + escape_bits[i])
        })
        .sum()
}

const ORIENTATION_ESCAPE_BITS: [u32; 3] =
    [1 + ORIENTATION_BITS, ORIENTATION_BITS, ORIENTATION_BITS];

fn write_predicted(q: &QuantizedPose, p: &Prediction, volume: &Volume, w: &mut BitWriter) {
    for (i, bits) in volume.axis_bits().into_iter().enumerate() {
        let r = i64::from(q.position[i]) - i64::from(p.pose.position[i]);
        if !write_rice(w, r, p.k[i]) {
            write_escape(w);
            w.write_bits(u64::from(q.position[i]), bits);
        }
    }
    let rebased = q.largest != p.pose.largest;
    if rebased {
        // The escape of the first component, then "another dropped index" and that index.
        write_escape(w);
        w.write_bool(true);
        w.write_bits(u64::from(q.largest), 2);
    }
    let predicted = p.rest_for(q.largest);
    for (i, (&value, &predicted)) in q.rest.iter().zip(&predicted).enumerate() {
        let r = i64::from(value) - i64::from(predicted);
        if !write_rice(w, r, p.k[3 + i]) {
            write_escape(w);
            if i == 0 && !rebased {
                w.write_bool(false);
            }
            w.write_bits(u64::from(value), ORIENTATION_BITS);
        }
    }
}

/// Encodes a pose as residuals against [`predict`]`(reference)`. Decode with
/// [`decode_pose_predicted`] and the same reference. `EncodeInfo::quantized` is the pose
/// the receiver will hold.
pub fn encode_pose_predicted(
    pose: &Pose,
    reference: &Reference,
    volume: &Volume,
    w: &mut BitWriter,
) -> Result<EncodeInfo, QuantizeError> {
    // Validate the pose before anything is written.
    let (quantized, clamped) = QuantizedPose::from_pose(pose, volume)?;
    let mut info = encode_quantized_predicted(&quantized, reference, volume, w)?;
    info.clamped = clamped;
    Ok(info)
}

/// Encodes an already quantised pose against [`predict`]`(reference)`, as
/// [`encode_pose_predicted`] does for a pose (a relay re-encodes what it received).
/// Errors, writing nothing, when a pose does not fit the volume.
pub fn encode_quantized_predicted(
    quantized: &QuantizedPose,
    reference: &Reference,
    volume: &Volume,
    w: &mut BitWriter,
) -> Result<EncodeInfo, QuantizeError> {
    let p = prediction(reference, volume)?;
    if !quantized.fits_levels(&p.levels) {
        return Err(QuantizeError::ReferenceOutOfRange);
    }
    let start = w.bit_len();
    write_predicted(quantized, &p, volume, w);
    let bits = w.bit_len() - start;
    Ok(EncodeInfo {
        quantized: *quantized,
        clamped: false,
        bits,
        delta: bits < volume.absolute_pose_bits() as usize,
    })
}

/// Quantises `pose` for coding against `reference` (rate-distortion quantisation): a
/// group (position, orientation) moves off the nearest quantised value, each component at
/// most one step toward [`predict`]`(reference)`, only when that makes its residuals
/// strictly cheaper and the decoded pose stays within the error bounds
/// ([`MAX_POSITION_ERROR_M`] of distance, [`MAX_ANGLE_ERROR_DEG`]). The bound is spent on
/// fewer bits rather than on a needlessly exact value; the receiver decodes whatever was
/// chosen, only the sender needs `pose`.
///
/// Moving only when bits are saved keeps the values close to the truth, so the velocities
/// later predictions extrapolate stay sound (moving whenever the residual shrinks cost
/// bytes at references 2+ frames old on the synthetic avatar).
/// A clamped position (outside the volume) keeps the nearest quantisation.
pub fn quantize_toward(
    pose: &Pose,
    reference: &Reference,
    volume: &Volume,
) -> Result<QuantizedPose, QuantizeError> {
    let (nearest, clamped) = QuantizedPose::from_pose(pose, volume)?;
    let p = prediction(reference, volume)?;
    if clamped {
        return Ok(nearest);
    }
    let exact = validate_pose(pose)?;
    let mut best = nearest;
    // A hair inside the bounds: the decoded f32 values must stay within them.
    let within = |position: [u32; 3]| {
        let q = QuantizedPose {
            position,
            ..nearest
        };
        q.to_pose(volume).position.distance(exact.position) <= MAX_POSITION_ERROR_M * (1.0 - 1e-6)
    };
    let escape = volume.axis_bits();
    best.position = cheapest(nearest.position, p.pose.position, 1, within, |g| {
        group_bits(g, p.pose.position, &p.k[..3], escape)
    });
    if nearest.largest == p.pose.largest && reference.frames_since_last <= MAX_RD_ORIENTATION_AGE {
        let within = |rest: [u32; 3]| {
            let q = QuantizedPose { rest, ..nearest };
            q.to_pose(volume).orientation.angle_deg(exact.orientation)
                <= MAX_ANGLE_ERROR_DEG * (1.0 - 1e-3)
        };
        best.rest = cheapest(nearest.rest, p.pose.rest, 1, within, |g| {
            group_bits(g, p.pose.rest, &p.k[3..], ORIENTATION_ESCAPE_BITS)
        });
    }
    Ok(best)
}

/// Among `nearest` and its neighbours toward `predicted` that `within` accepts, the one
/// with the fewest `bits` (`nearest` on a tie).
fn cheapest(
    nearest: [u32; 3],
    predicted: [u32; 3],
    max_steps: u32,
    within: impl Fn([u32; 3]) -> bool,
    bits: impl Fn([u32; 3]) -> u32,
) -> [u32; 3] {
    let mut best = (bits(nearest), 0, nearest);
    for (moved, candidate) in toward(nearest, predicted, max_steps) {
        let b = bits(candidate);
        if (b, moved) < (best.0, best.1) && within(candidate) {
            best = (b, moved, candidate);
        }
    }
    best.2
}

/// The groups near `from` with components moved up to `max_steps` steps toward `to` (never
/// past it), with the steps moved in all; all but `from` itself.
fn toward(from: [u32; 3], to: [u32; 3], max_steps: u32) -> impl Iterator<Item = (u32, [u32; 3])> {
    let reach: [u32; 3] = std::array::from_fn(|i| from[i].abs_diff(to[i]).min(max_steps));
    let n = max_steps + 1;
    (1..n * n * n).filter_map(move |code| {
        let moves = [code % n, code / n % n, code / (n * n)];
        if (0..3).any(|i| moves[i] > reach[i]) {
            return None;
        }
        // Toward a value in range, so it stays in range.
        let out = std::array::from_fn(|i| {
            if to[i] >= from[i] {
                from[i] + moves[i]
            } else {
                from[i] - moves[i]
            }
        });
        Some((moves.iter().sum(), out))
    })
}

/// `predicted + residual` when inside `0 .. limit`.
fn add_residual(predicted: u32, residual: i64, limit: u64) -> Result<u32, QuantizeError> {
    let v = i64::from(predicted).checked_add(residual);
    match v {
        Some(v) if v >= 0 && (v as u64) < limit => Ok(v as u32),
        _ => Err(QuantizeError::Corrupt(
            "residual leaves the quantised range",
        )),
    }
}

/// Reads the quantised pose written by [`encode_pose_predicted`] against `reference`.
/// Malformed or truncated input is an error, never a panic.
pub fn read_quantized_predicted(
    r: &mut BitReader<'_>,
    reference: &Reference,
    volume: &Volume,
) -> Result<QuantizedPose, QuantizeError> {
    let p = prediction(reference, volume)?;
    let levels = p.levels;
    let bits = volume.axis_bits();
    let mut position = [0u32; 3];
    for i in 0..3 {
        position[i] = match read_rice(r, p.k[i])? {
            Some(residual) => add_residual(p.pose.position[i], residual, levels[i])?,
            None => {
                let v = r.read_bits(bits[i])?;
                if v >= levels[i] {
                    return Err(QuantizeError::Corrupt("position outside the volume"));
                }
                v as u32
            }
        };
    }
    let mut rest = [0u32; 3];
    let limit = u64::from(ORIENTATION_LEVELS);
    let mut largest = p.pose.largest;
    let mut predicted = p.pose.rest;
    let mut rebased = false;
    let mut i = 0;
    while i < 3 {
        let residual = read_rice(r, p.k[3 + i])?;
        if residual.is_none() && i == 0 && !rebased && r.read_bool()? {
            // Another dropped index: the components follow against the prediction in
            // its basis, starting over.
            rebased = true;
            largest = r.read_bits(2)? as u8;
            predicted = p.rest_for(largest);
            continue;
        }
        rest[i] = match residual {
            Some(residual) => add_residual(predicted[i], residual, limit)?,
            None => {
                let v = r.read_bits(ORIENTATION_BITS)?;
                if v >= limit {
                    return Err(QuantizeError::Corrupt("orientation component out of range"));
                }
                v as u32
            }
        };
        i += 1;
    }
    Ok(QuantizedPose {
        position,
        largest,
        rest,
    })
}

/// Decodes a pose written by [`encode_pose_predicted`] against the same `reference`.
pub fn decode_pose_predicted(
    r: &mut BitReader<'_>,
    reference: &Reference,
    volume: &Volume,
) -> Result<Pose, QuantizeError> {
    Ok(read_quantized_predicted(r, reference, volume)?.to_pose(volume))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xr::pose::{validate_pose, Quat, Vec3};
    use crate::xr::quantize::encode_pose;
    use crate::xr::synthetic::{qmul, Rng, SEGMENTS};

    fn quantize(p: &Pose, v: &Volume) -> QuantizedPose {
        QuantizedPose::from_pose(p, v).expect("valid").0
    }

    /// Encodes against `reference`, decodes, checks bit-exactness against `quantize(pose)`
    /// and the error bounds; returns (bits written, position error m, angle error deg).
    fn predicted_round_trip(pose: &Pose, reference: &Reference, v: &Volume) -> (usize, f64, f64) {
        let mut w = BitWriter::new();
        let info = encode_pose_predicted(pose, reference, v, &mut w).expect("encode");
        assert_eq!(info.bits, w.bit_len());
        assert_eq!(info.quantized, quantize(pose, v));
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        let q = read_quantized_predicted(&mut r, reference, v).expect("decode");
        assert_eq!(q, info.quantized);
        let out = decode_pose_predicted(&mut BitReader::new(&bytes), reference, v).expect("ok");
        let unit = validate_pose(pose).expect("valid");
        let ang = out.orientation.angle_deg(unit.orientation);
        assert!(ang <= MAX_ANGLE_ERROR_DEG, "{ang}");
        let pe = out.position.distance(unit.position);
        if !info.clamped {
            assert!(pe <= MAX_POSITION_ERROR_M, "{pe}");
        }
        assert!(info.bits <= max_predicted_bits(v) as usize);
        (info.bits, pe, ang)
    }

    use crate::xr::quantize::{MAX_ANGLE_ERROR_DEG, MAX_POSITION_ERROR_M};

    fn to_pose(q: [f64; 4], p: [f64; 3]) -> Pose {
        Pose::new(
            Quat::from_array(q.map(|c| c as f32)),
            Vec3::new(p[0] as f32, p[1] as f32, p[2] as f32),
        )
    }

    fn avatar() -> Vec<[Pose; 3]> {
        crate::xr::synthetic::avatar(5400)
    }

    #[derive(Default)]
    struct Stats {
        bits: usize,
        max_pose: usize,
        poses: usize,
        updates: usize,
        max_update: usize,
        update_bytes: usize,
    }
    impl Stats {
        fn add_update(&mut self, bits: [usize; 3]) {
            let sum: usize = bits.iter().sum();
            self.bits += sum;
            self.max_pose = self.max_pose.max(*bits.iter().max().unwrap_or(&0));
            self.poses += 3;
            self.updates += 1;
            self.max_update = self.max_update.max(sum);
            self.update_bytes += sum.div_ceil(8);
        }
        fn mean_update_bytes(&self) -> f64 {
            self.bits as f64 / self.updates as f64 / 8.0
        }
        fn line(&self, name: &str) -> String {
            format!(
                "{name:<28} mean {:5.1} bits/pose (max {:3}), 3-point update mean {:5.2} bytes \
                 bit-packed / {:5.2} bytes byte-padded (max {:5.2})",
                self.bits as f64 / self.poses as f64,
                self.max_pose,
                self.mean_update_bytes(),
                self.update_bytes as f64 / self.updates as f64,
                self.max_update as f64 / 8.0
            )
        }
    }

    /// The acked-reference lag of the realistic case (~45 ms round trip at 90 Hz).
    const LAG: usize = 4;

    #[test]
    fn round_div_in_64_bits_is_the_128_bit_rounding() {
        let wide = |num: i128, den: i128| (2 * num + den).div_euclid(2 * den);
        let big = i128::from(i64::MAX);
        for num in [
            0,
            1,
            -1,
            5,
            -5,
            7,
            -7,
            1 << 40,
            -(1 << 40),
            big / 2,
            big,
            big + 9,
            -big - 9,
        ] {
            for den in [1, 2, 3, 4, 255, 1 << 20, big / 2 + 1, big] {
                assert_eq!(round_div(num, den), wide(num, den), "{num} / {den}");
            }
        }
    }

    #[test]
    fn size_report_synthetic_avatar() {
        let v = Volume::default();
        let frames = avatar();
        let quant: Vec<[QuantizedPose; 3]> =
            frames.iter().map(|f| f.map(|p| quantize(&p, &v))).collect();
        let gaps = [1usize, 2, 4, 8];
        let start = LAG + 8;
        let mut abs = Stats::default();
        let mut plain = Stats::default();
        let mut pred: Vec<Stats> = gaps.iter().map(|_| Stats::default()).collect();
        let mut seg_bits = [[0usize; 2]; SEGMENTS.len()];
        let (mut max_pe, mut max_ae) = (0.0f64, 0.0f64);
        for i in start..frames.len() {
            let mut b_abs = [0; 3];
            let mut b_plain = [0; 3];
            let mut b_pred = vec![[0usize; 3]; gaps.len()];
            for d in 0..3 {
                let pose = &frames[i][d];
                let mut w = BitWriter::new();
                b_abs[d] = encode_pose(pose, &v, &mut w).expect("ok").bits;
                let last = quant[i - LAG][d];
                b_plain[d] = predicted_round_trip(pose, &Reference::plain(last), &v).0;
                for (k, &g) in gaps.iter().enumerate() {
                    let reference = Reference {
                        last,
                        previous: Some(quant[i - LAG - g][d]),
                        frames_between_refs: g as u32,
                        frames_since_last: LAG as u32,
                        earlier: None,
                        frames_before_previous: 0,
                        head: false,
                    };
                    let (bits, pe, ae) = predicted_round_trip(pose, &reference, &v);
                    b_pred[k][d] = bits;
                    max_pe = max_pe.max(pe);
                    max_ae = max_ae.max(ae);
                }
            }
            abs.add_update(b_abs);
            plain.add_update(b_plain);
            for (s, b) in pred.iter_mut().zip(&b_pred) {
                s.add_update(*b);
            }
            let t = i as f64 / 90.0;
            if let Some(s) = SEGMENTS.iter().position(|&(_, a, b)| t >= a && t < b) {
                seg_bits[s][0] += b_pred[1].iter().sum::<usize>();
                seg_bits[s][1] += 1;
            }
        }
        eprintln!(
            "synthetic 3-point avatar, 90 Hz, 60 s, {} updates, reference {LAG} frames old:",
            abs.updates
        );
        eprintln!("{}", abs.line("(a) absolute"));
        eprintln!("{}", plain.line("(b) plain delta"));
        for (s, g) in pred.iter().zip(gaps) {
            eprintln!("{}", s.line(&format!("(c) predicted, prev gap {g}")));
        }
        for (s, &(name, _, _)) in seg_bits.iter().zip(&SEGMENTS) {
            eprintln!(
                "    predicted (gap 2), {name:<15}: {:5.2} bytes per 3-point update",
                s[0] as f64 / s[1].max(1) as f64 / 8.0
            );
        }
        eprintln!(
            "    predicted, all decoded poses: max position error {:.4} mm, max angle error {:.4}°",
            max_pe * 1e3,
            max_ae
        );
        assert!(max_pe <= MAX_POSITION_ERROR_M && max_ae <= MAX_ANGLE_ERROR_DEG);
        assert!(pred[1].mean_update_bytes() < plain.mean_update_bytes());
        assert!(
            pred[1].mean_update_bytes() <= 12.0,
            "{}",
            pred[1].mean_update_bytes()
        );
    }

    fn random_pose(rng: &mut Rng, v: &Volume) -> Pose {
        let lo = v.min.to_array();
        let hi = v.max.to_array();
        let p: [f64; 3] = std::array::from_fn(|i| {
            let t = (rng.unit() + 1.0) / 2.0;
            f64::from(lo[i]) + t * (f64::from(hi[i]) - f64::from(lo[i]))
        });
        let q = loop {
            let c = [rng.unit(), rng.unit(), rng.unit(), rng.unit()];
            let n = c.iter().map(|x| x * x).sum::<f64>().sqrt();
            if n > 0.1 && n <= 1.0 {
                break c.map(|x| x / n);
            }
        };
        to_pose(q, p)
    }

    #[test]
    fn prediction_is_integer_extrapolation() {
        let v = Volume::default();
        let q = |p: [u32; 3], largest: u8, rest: [u32; 3]| QuantizedPose {
            position: p,
            largest,
            rest,
        };
        let r = Reference {
            last: q([100, 200, 300], 3, [2000, 2100, 2200]),
            previous: Some(q([96, 201, 300], 3, [1990, 2100, 2203])),
            earlier: None,
            frames_between_refs: 2,
            frames_before_previous: 0,
            frames_since_last: 4,
            head: false,
        };
        let p = predict(&r, &v).expect("ok");
        assert_eq!(p, q([108, 198, 300], 3, [2020, 2100, 2194]));
        // Rounding half up: +0.5 → +1, −0.5 → 0.
        let r1 = Reference {
            previous: Some(q([99, 201, 300], 3, [2000, 2100, 2200])),
            frames_since_last: 1,
            ..r
        };
        assert_eq!(predict(&r1, &v).expect("ok").position, [101, 200, 300]);
        // With an earlier reference: little curvature extrapolates the longer baseline,
        // a second difference of CURVATURE_THRESHOLD or more the quadratic.
        let r2 = Reference {
            last: q([100, 200, 300], 3, [1450, 1450, 1450]),
            previous: Some(q([96, 190, 300], 3, [1450, 1450, 1450])),
            earlier: Some(q([92, 190, 301], 3, [1450, 1450, 1450])),
            frames_between_refs: 1,
            frames_before_previous: 1,
            frames_since_last: 4,
            head: false,
        };
        // x: straight, 100 + 8·4/2; y: curved (10, then 0), 100 + 15t + 5t² at t = 4
        // shifted by 100; z: a second difference of 1, linear over l − e = −1: −2.
        assert_eq!(predict(&r2, &v).expect("ok").position, [116, 340, 298]);
        assert_eq!(CURVATURE_THRESHOLD, 6);
        let r2b = Reference {
            previous: Some(q([96, 197, 300], 3, [1450, 1450, 1450])),
            earlier: Some(q([92, 197, 300], 3, [1450, 1450, 1450])),
            ..r2
        };
        // y: second difference 3, below the threshold: 200 + round(3·4/2) = 206.
        assert_eq!(predict(&r2b, &v).expect("ok").position[1], 206);
        // Unequal gaps: quadratic through (0, 100), (−2, 80), (−3, 80) at 1, exactly.
        let r2c = Reference {
            last: q([100, 200, 300], 3, [1450, 1450, 1450]),
            previous: Some(q([80, 200, 300], 3, [1450, 1450, 1450])),
            earlier: Some(q([80, 200, 300], 3, [1450, 1450, 1450])),
            frames_between_refs: 2,
            frames_before_previous: 1,
            frames_since_last: 1,
            head: true,
        };
        // f(t) = 100 + a t + b t²: f(−2) = 80, f(−3) = 80 → a = 50/3, b = 10/3; f(1) = 120.
        assert_eq!(predict(&r2c, &v).expect("ok").position[0], 120);
        // A reference with another dropped index is re-expressed in `last`'s basis first.
        let other = q([96, 201, 300], 1, [1990, 2100, 2203]);
        let r3 = Reference {
            previous: Some(other),
            ..r
        };
        let rebased = q(other.position, 3, rebase(components(1, other.rest), 3));
        let r3b = Reference {
            previous: Some(rebased),
            ..r
        };
        assert_eq!(predict(&r3, &v), predict(&r3b, &v));
        // Leaving the range clamps.
        let top = v.axis_levels()[1] as u32 - 1;
        let rot_top = ORIENTATION_LEVELS - 1;
        let r4 = Reference {
            last: q([2, top - 2, 5], 0, [1, 1450, 1450]),
            previous: Some(q([9, top - 8, 5], 0, [10, 1450, 1450])),
            earlier: None,
            frames_between_refs: 1,
            frames_before_previous: 0,
            frames_since_last: 3,
            head: false,
        };
        let p4 = predict(&r4, &v).expect("ok");
        assert_eq!(
            (p4.position, p4.largest, p4.rest),
            ([0, top, 5], 0, [0, 1450, 1450])
        );
        let r4b = Reference {
            last: q([2, top - 2, 5], 0, [1450, rot_top - 1, 1450]),
            previous: Some(q([9, top - 8, 5], 0, [1450, rot_top - 15, 1450])),
            ..r4
        };
        assert_eq!(predict(&r4b, &v).expect("ok").rest, [1450, rot_top, 1450]);
        // No previous, or a zero gap: plain delta. A huge horizon is capped.
        assert_eq!(predict(&Reference::plain(r.last), &v).expect("ok"), r.last);
        let r5 = Reference {
            frames_between_refs: 0,
            ..r
        };
        assert_eq!(predict(&r5, &v).expect("ok"), r.last);
        let r6 = Reference {
            frames_since_last: u32::MAX,
            frames_between_refs: 1,
            ..r
        };
        let r7 = Reference {
            frames_since_last: MAX_EXTRAPOLATION_FRAMES,
            ..r6
        };
        assert_eq!(predict(&r6, &v), predict(&r7, &v));
        // References outside the volume's ranges are refused.
        let bad = q([1 << 20, 0, 0], 3, [0; 3]);
        for r8 in [
            Reference {
                previous: Some(bad),
                ..r
            },
            Reference {
                earlier: Some(bad),
                ..r2
            },
        ] {
            assert_eq!(predict(&r8, &v), Err(QuantizeError::ReferenceOutOfRange));
        }
    }

    /// The smallest-three components rebuilt as integers and re-expressed with another
    /// dropped index stay within a step of quantising the same rotation that way.
    #[test]
    fn components_and_rebase_are_exact_within_a_step() {
        let v = Volume::default();
        let mut rng = Rng(0x0DD5);
        for _ in 0..20_000 {
            let pose = random_pose(&mut rng, &v);
            let nearest = quantize(&pose, &v);
            let c = components(nearest.largest, nearest.rest);
            // Own basis: exact.
            assert_eq!(rebase(c, nearest.largest), nearest.rest);
            // A unit quaternion: Σc² within the rounding of the rebuilt component.
            let norm: i64 = c.iter().map(|x| x * x).sum();
            let unit = 2 * HALF_STEPS * HALF_STEPS;
            assert!((norm - unit).abs() <= 2 * c[usize::from(nearest.largest)] + 1);
            // Another basis: the same rotation quantised with that index dropped.
            let o = pose.orientation.to_array().map(f64::from);
            for other in 0..4u8 {
                let i = usize::from(other);
                // Only where that component is (nearly) the largest: in range.
                if o[i].abs() + 1e-3 < o.iter().fold(0.0f64, |m, x| m.max(x.abs())) {
                    continue;
                }
                let sign = if o[i] < 0.0 { -1.0 } else { 1.0 };
                let mut k = 0;
                for (j, &x) in o.iter().enumerate() {
                    if j == i {
                        continue;
                    }
                    let t = ((sign * x + std::f64::consts::FRAC_1_SQRT_2)
                        / std::f64::consts::SQRT_2
                        * HALF_STEPS as f64)
                        .round()
                        .clamp(0.0, HALF_STEPS as f64);
                    let got = rebase(c, other)[k];
                    assert!((f64::from(got) - t).abs() <= 2.0, "{got} vs {t}");
                    k += 1;
                }
            }
        }
        // The largest component decides the basis; ties keep the current one.
        assert_eq!(largest_of([10, -30, 20, 29], 3), 1);
        assert_eq!(largest_of([10, -29, 20, 29], 3), 3);
        assert_eq!(largest_of([29, -29, 20, 29], 0), 0);
    }

    #[test]
    fn predicted_round_trips_are_exact_including_fallbacks() {
        let v = Volume::default();
        let mut rng = Rng(0xC0FFEE);
        let (mut residual, mut absolute) = (0usize, 0usize);
        for n in 0..6_000 {
            // Random references: related (a moving pose) or unrelated (dropped index
            // changes, predictions far off or clamped at the range edges).
            let base = random_pose(&mut rng, &v);
            let related = n % 3 != 0;
            let step = 0.01 * (1 + rng.next_u64() % 10) as f64;
            let drift = [rng.unit(), rng.unit(), rng.unit()].map(|x| x * step);
            let spin = [rng.unit(), rng.unit(), rng.unit()].map(|x| x * step);
            let at = |k: f64| {
                let p = base.position.to_array();
                let o = base.orientation.to_array().map(f64::from);
                let q = qmul(o, [spin[0] * k, spin[1] * k, spin[2] * k, 1.0]);
                to_pose(q, std::array::from_fn(|i| f64::from(p[i]) + drift[i] * k))
            };
            let g = 1 + (rng.next_u64() % 4) as u32;
            let s = (rng.next_u64() % 8) as u32;
            let (prev, last, cur) = if related {
                (at(0.0), at(f64::from(g)), at(f64::from(g + s)))
            } else {
                (
                    random_pose(&mut rng, &v),
                    random_pose(&mut rng, &v),
                    random_pose(&mut rng, &v),
                )
            };
            let reference = Reference {
                last: quantize(&last, &v),
                previous: (n % 7 != 0).then(|| quantize(&prev, &v)),
                frames_between_refs: g,
                frames_since_last: s,
                earlier: None,
                frames_before_previous: 0,
                head: false,
            };
            let (bits, _, _) = predicted_round_trip(&cur, &reference, &v);
            if bits >= v.absolute_pose_bits() as usize {
                absolute += 1;
            } else {
                residual += 1;
            }
        }
        assert!(residual > 1_000 && absolute > 500, "{residual} {absolute}");
        // Positions outside the volume: clamped, still exact.
        let r = Reference {
            last: quantize(&to_pose([0.0, 0.0, 0.0, 1.0], [31.9, 11.9, -31.9]), &v),
            previous: Some(quantize(
                &to_pose([0.0, 0.0, 0.0, 1.0], [31.5, 11.5, -31.5]),
                &v,
            )),
            frames_between_refs: 1,
            frames_since_last: 4,
            earlier: None,
            frames_before_previous: 0,
            head: false,
        };
        let pose = to_pose([0.0, 0.0, 0.0, 1.0], [40.0, 20.0, -40.0]);
        let mut w = BitWriter::new();
        assert!(
            encode_pose_predicted(&pose, &r, &v, &mut w)
                .expect("ok")
                .clamped
        );
        predicted_round_trip(&pose, &r, &v);
        // The dropped index changes between the prediction and the current pose.
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let before = to_pose([0.0, h + 0.02, 0.0, h - 0.02], [0.0, 1.6, 0.0]);
        let mid = to_pose([0.0, h - 0.001, 0.0, h + 0.001], [0.0, 1.6, 0.0]);
        let after = to_pose([0.0, h + 0.01, 0.0, h - 0.01], [0.0, 1.6, 0.0]);
        let r = Reference {
            last: quantize(&mid, &v),
            previous: Some(quantize(&before, &v)),
            frames_between_refs: 2,
            frames_since_last: 2,
            earlier: None,
            frames_before_previous: 0,
            head: false,
        };
        assert_ne!(r.last.largest, r.previous.map_or(0, |p| p.largest));
        assert_ne!(quantize(&after, &v).largest, r.last.largest);
        predicted_round_trip(&after, &r, &v);
        predicted_round_trip(&before, &r, &v);
    }

    #[test]
    fn quantizing_toward_the_prediction_stays_within_the_bounds_and_never_costs_more() {
        let v = Volume::default();
        let mut rng = Rng(0x7070);
        let (mut moved, mut total) = (0usize, 0usize);
        for n in 0..5_000 {
            let pose = random_pose(&mut rng, &v);
            // A reference near the pose (a moving device) or anywhere (far off).
            let near = |rng: &mut Rng| {
                let p = pose.position.to_array();
                let o = pose.orientation.to_array().map(f64::from);
                let q = qmul(
                    o,
                    [
                        rng.unit() * 0.004,
                        rng.unit() * 0.004,
                        rng.unit() * 0.004,
                        1.0,
                    ],
                );
                to_pose(
                    q,
                    std::array::from_fn(|i| f64::from(p[i]) + rng.unit() * 0.01),
                )
            };
            let (last, previous) = if n % 5 == 0 {
                (random_pose(&mut rng, &v), random_pose(&mut rng, &v))
            } else {
                (near(&mut rng), near(&mut rng))
            };
            let reference = Reference {
                last: quantize(&last, &v),
                previous: Some(quantize(&previous, &v)),
                frames_between_refs: 1 + (n % 3) as u32,
                frames_since_last: 1 + (n % 4) as u32,
                earlier: None,
                frames_before_previous: 0,
                head: false,
            };
            let q = quantize_toward(&pose, &reference, &v).expect("valid");
            let got = q.to_pose(&v);
            assert!(got.position.distance(pose.position) <= MAX_POSITION_ERROR_M);
            assert!(got.orientation.angle_deg(pose.orientation) <= MAX_ANGLE_ERROR_DEG);
            // Never more bits than the nearest quantisation against the same prediction.
            let bits = |q: &QuantizedPose| {
                let mut w = BitWriter::new();
                encode_quantized_predicted(q, &reference, &v, &mut w).expect("ok");
                w.bit_len()
            };
            let nearest = quantize(&pose, &v);
            assert!(bits(&q) <= bits(&nearest), "{q:?} vs {nearest:?}");
            moved += usize::from(q != nearest);
            total += 1;
        }
        // It does move poses, or it buys nothing.
        assert!(moved * 10 > total, "moved {moved} of {total}");
    }

    #[test]
    fn rice_codes_round_trip_every_parameter_up_to_the_escape() {
        let max_k = RICE_K
            .iter()
            .flatten()
            .flatten()
            .copied()
            .max()
            .unwrap_or(0);
        for k in 0..=u32::from(max_k) {
            // Around every quotient boundary, up to the last code before the escape.
            let mut residuals = vec![0i64, 1, -1, 2, -2];
            for q in 1..=RICE_ESCAPE {
                for u in [(q << k) - 1, q << k, (q << k) + 1] {
                    residuals.push(unzigzag(u));
                }
            }
            for r in residuals {
                let mut w = BitWriter::new();
                let written = write_rice(&mut w, r, k);
                assert_eq!(written, rice_bits(r, k).is_some(), "k {k} r {r}");
                if !written {
                    assert_eq!(w.bit_len(), 0);
                    // The escape: RICE_ESCAPE one bits read as `None`.
                    let mut e = BitWriter::new();
                    e.write_bits(u64::MAX, RICE_ESCAPE as u32);
                    let bytes = e.into_bytes();
                    assert_eq!(read_rice(&mut BitReader::new(&bytes), k), Ok(None));
                    continue;
                }
                assert_eq!(Some(w.bit_len() as u32), rice_bits(r, k));
                assert!(zigzag(r) >> k < RICE_ESCAPE);
                let bytes = w.into_bytes();
                assert_eq!(read_rice(&mut BitReader::new(&bytes), k), Ok(Some(r)));
            }
        }
        // zigzag is a bijection on the values that occur.
        for r in -70_000i64..70_000 {
            assert_eq!(unzigzag(zigzag(r)), r);
        }
    }

    /// Residuals as large as the ranges allow, in every component, with and without a
    /// change of the dropped index, against plain, linear and quadratic predictions:
    /// escapes round-trip exactly and stay within [`max_predicted_bits`].
    #[test]
    fn extreme_residuals_round_trip() {
        let v = Volume::default();
        let top = v.axis_levels().map(|l| l as u32 - 1);
        let rot_top = ORIENTATION_LEVELS - 1;
        let corner = |bits: u32, largest: u8| QuantizedPose {
            position: std::array::from_fn(|i| if bits >> i & 1 == 1 { top[i] } else { 0 }),
            largest,
            rest: std::array::from_fn(|i| if bits >> (3 + i) & 1 == 1 { rot_top } else { 0 }),
        };
        let mut max_bits = 0;
        let mut escapes = 0;
        for reference_bits in [0u32, 0b111_111, 0b101_010] {
            for kind in 0..3 {
                let last = corner(reference_bits, 3);
                let far = corner(!reference_bits & 0b111_111, 0);
                let reference = Reference {
                    last,
                    previous: (kind > 0).then_some(far),
                    earlier: (kind > 1).then_some(last),
                    frames_between_refs: 1,
                    frames_before_previous: 1,
                    frames_since_last: 16,
                    head: kind == 1,
                };
                for pose_bits in 0..64u32 {
                    for largest in 0..4u8 {
                        let q = corner(pose_bits, largest);
                        let mut w = BitWriter::new();
                        let info =
                            encode_quantized_predicted(&q, &reference, &v, &mut w).expect("ok");
                        assert_eq!(info.bits, w.bit_len());
                        assert!(info.bits <= max_predicted_bits(&v) as usize);
                        max_bits = max_bits.max(info.bits);
                        escapes += usize::from(info.bits > 60);
                        let bytes = w.into_bytes();
                        let got =
                            read_quantized_predicted(&mut BitReader::new(&bytes), &reference, &v)
                                .expect("decodes");
                        assert_eq!(got, q);
                        // Every truncation fails cleanly.
                        for cut in 0..info.bits / 8 {
                            assert!(read_quantized_predicted(
                                &mut BitReader::new(&bytes[..cut]),
                                &reference,
                                &v
                            )
                            .is_err());
                        }
                    }
                }
            }
        }
        assert!(escapes > 100, "{escapes}");
        assert!(max_bits > 120, "{max_bits}");
    }

    /// References moving at speeds from none to the volume's size per frame, head or not:
    /// the residual size buckets of both groups are used, and every pose round-trips.
    #[test]
    fn every_size_bucket_round_trips() {
        let v = Volume::default();
        let mut rng = Rng(0xB0C4);
        let mut used = [[[false; SIZE_BUCKETS]; 2]; 2];
        for n in 0..6_000u32 {
            let base = random_pose(&mut rng, &v);
            let speed = 1e-5 * 2f64.powi((n % 20) as i32);
            let drift = [rng.unit(), rng.unit(), rng.unit()].map(|x| x * speed);
            let spin = [rng.unit(), rng.unit(), rng.unit()].map(|x| x * speed.min(0.3));
            let at = |k: f64, wobble: f64| {
                let p = base.position.to_array();
                let o = base.orientation.to_array().map(f64::from);
                let q = qmul(o, [spin[0] * k, spin[1] * k * wobble, spin[2] * k, 1.0]);
                to_pose(
                    q,
                    std::array::from_fn(|i| f64::from(p[i]) + drift[i] * k * wobble),
                )
            };
            let wobble = 1.0 + rng.unit() * 0.5;
            let reference = Reference {
                last: quantize(&at(0.0, 1.0), &v),
                previous: Some(quantize(&at(-1.0, 1.0), &v)),
                earlier: Some(quantize(&at(-2.0, wobble), &v)),
                frames_between_refs: 1,
                frames_before_previous: 1,
                frames_since_last: 1 + n % 9,
                head: n % 2 == 0,
            };
            let (_, buckets, _, _) = prediction_buckets(&reference, &v).expect("ok");
            for (i, &b) in buckets.iter().enumerate() {
                used[usize::from(reference.head)][i / 3][b] = true;
            }
            predicted_round_trip(
                &at(f64::from(reference.frames_since_last), wobble),
                &reference,
                &v,
            );
        }
        for (head, groups) in used.iter().enumerate() {
            for (group, buckets) in groups.iter().enumerate() {
                // The largest buckets need rotations of most of a turn between frames.
                let missing: Vec<usize> = (1..=16).filter(|&b| !buckets[b]).collect();
                assert!(missing.is_empty(), "head {head} group {group}: {missing:?}");
            }
        }
    }

    #[test]
    fn predicted_decoder_never_panics() {
        let v = Volume::default();
        let mut rng = Rng(0xBADF00D);
        let mut decoded = 0usize;
        for n in 0..20_000 {
            let reference = Reference {
                last: quantize(&random_pose(&mut rng, &v), &v),
                previous: (n % 2 == 0).then(|| quantize(&random_pose(&mut rng, &v), &v)),
                frames_between_refs: (rng.next_u64() % 5) as u32,
                frames_since_last: if n % 11 == 0 {
                    u32::MAX
                } else {
                    (rng.next_u64() % 20) as u32
                },
                earlier: (n % 3 == 0).then(|| quantize(&random_pose(&mut rng, &v), &v)),
                frames_before_previous: (rng.next_u64() % 4) as u32,
                head: n % 5 == 0,
            };
            let len = (rng.next_u64() % 14) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if let Ok(q) = read_quantized_predicted(&mut BitReader::new(&bytes), &reference, &v) {
                assert!(q.fits(&v));
                decoded += 1;
            }
            // Truncations of a valid encoding fail cleanly.
            let pose = random_pose(&mut rng, &v);
            let mut w = BitWriter::new();
            let info = encode_pose_predicted(&pose, &reference, &v, &mut w).expect("ok");
            let full = w.into_bytes();
            let cut = (rng.next_u64() as usize) % full.len();
            if cut * 8 < info.bits {
                assert!(read_quantized_predicted(
                    &mut BitReader::new(&full[..cut]),
                    &reference,
                    &v
                )
                .is_err());
            }
        }
        assert!(decoded > 0);
        // A bad reference or volume is an error, on both sides.
        let bad = Reference::plain(QuantizedPose {
            position: [0, 1 << 14, 0],
            largest: 0,
            rest: [0; 3],
        });
        let mut w = BitWriter::new();
        assert_eq!(
            encode_pose_predicted(&Pose::IDENTITY, &bad, &v, &mut w),
            Err(QuantizeError::ReferenceOutOfRange)
        );
        assert_eq!(w.bit_len(), 0);
        assert_eq!(
            decode_pose_predicted(&mut BitReader::new(&[0xFF; 16]), &bad, &v),
            Err(QuantizeError::ReferenceOutOfRange)
        );
        let bad_volume = Volume {
            min: Vec3::ZERO,
            max: Vec3::ZERO,
        };
        let ok = Reference::plain(quantize(&Pose::IDENTITY, &v));
        assert!(read_quantized_predicted(&mut BitReader::new(&[0; 16]), &ok, &bad_volume).is_err());
        // Invalid poses are rejected before anything is written.
        let nan = Pose::new(Quat::new(f32::NAN, 0.0, 0.0, 1.0), Vec3::ZERO);
        assert!(encode_pose_predicted(&nan, &ok, &v, &mut w).is_err());
        assert_eq!(w.bit_len(), 0);
    }
}
