//! Predictive delta coding of poses against old references.
//!
//! A delta against the receiver's last acked pose grows with the round trip: with ~45 ms
//! before an ack at 90 Hz, the reference is about 4 frames old and most of the delta is
//! plain motion. Both sides know the acked pose ([`Reference::last`]) and, usually, an
//! earlier acked pose ([`Reference::previous`]); from the two and the frame gaps they compute
//! the *same* prediction of the current quantised pose by linear extrapolation of the
//! quantised integers, and only the residual against that prediction is sent, with the
//! delta format of [`encode_pose_delta`] (the prediction takes the place of the reference).
//!
//! # Prediction (integer-exact)
//! With `L = last`, `P = previous`, `g = frames_between_refs` and
//! `s = min(frames_since_last, MAX_EXTRAPOLATION_FRAMES)`:
//! - position per axis: `L + round((L − P) · s / g)` (round half up, computed in `i128`),
//!   clamped to `0 ..= 2^axis_bits − 1`;
//! - orientation: the same per smallest-three component, clamped to
//!   `0 ..= 2^ORIENTATION_BITS − 1`, only when `P.largest == L.largest`; otherwise the
//!   prediction keeps `L`'s orientation;
//! - no `previous`, or `g == 0`: the prediction is `L` (plain delta coding).
//!
//! There is no floating point in the prediction path, so sender and receiver agree bit for
//! bit. When the current dropped index differs from the prediction's, the orientation group
//! is sent absolute (as in [`encode_pose_delta`]); a prediction that would leave the range
//! is clamped, and a residual too large for a delta class falls back to absolute form.
//! Either way the decoded pose is exactly the sender's quantised pose.
//!
//! # Wire format
//! That of [`encode_pose_delta`] with the prediction as its reference, except that the size
//! classes use [`ClassCode::for_frames_ahead`] (a shorter code for references one or two
//! frames old): per group (position, orientation) a size class (for [`DELTA_WIDTHS`]) and
//! three residuals, or class 7 and that group absolute. Which acked poses form the
//! [`Reference`] (and hence the gaps) must be agreed by the stream layer, e.g. by naming
//! the acked sequence numbers in the datagram.
//!
//! [`DELTA_WIDTHS`]: super::quantize::DELTA_WIDTHS

use super::bits::fits_signed;
use super::bits::{BitReader, BitWriter};
use super::pose::{validate_pose, Pose};
use super::quantize::{
    encode_quantized_delta, read_quantized_delta, ClassCode, EncodeInfo, QuantizeError,
    QuantizedPose, Volume, ORIENTATION_LEVELS,
};
use super::quantize::{DELTA_WIDTHS, MAX_ANGLE_ERROR_DEG, MAX_POSITION_ERROR_M};

/// Extrapolation horizon cap in frames: beyond it the velocity is extrapolated only this
/// far (an old reference predicts poorly anyway; the cap also bounds the arithmetic).
pub const MAX_EXTRAPOLATION_FRAMES: u32 = 16;

/// What both sides know for predicting a device's current pose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The receiver's last acked quantised pose of the device.
    pub last: QuantizedPose,
    /// An earlier acked quantised pose of the device, if any (for the velocity).
    pub previous: Option<QuantizedPose>,
    /// Frames (sample periods) from `previous` to `last`; `0` disables the velocity.
    pub frames_between_refs: u32,
    /// Frames from `last` to the pose being coded.
    pub frames_since_last: u32,
}

impl Reference {
    /// A reference without velocity: the prediction is `last` (plain delta coding).
    pub fn plain(last: QuantizedPose) -> Reference {
        Reference {
            last,
            previous: None,
            frames_between_refs: 0,
            frames_since_last: 0,
        }
    }

    /// Whether `last` and `previous` (if any) fit the volume's quantised ranges.
    pub fn fits(&self, volume: &Volume) -> bool {
        self.last.fits(volume) && self.previous.is_none_or(|p| p.fits(volume))
    }
}

/// `l + round((l − p) · s / g)` clamped to `0 ..= max`; `g > 0`.
fn extrapolate(l: u32, p: u32, s: u32, g: u32, max: u64) -> u32 {
    let num = (i128::from(l) - i128::from(p)) * i128::from(s);
    let g = i128::from(g);
    let step = (2 * num + g).div_euclid(2 * g);
    (i128::from(l) + step).clamp(0, i128::from(max)) as u32
}

/// The prediction of the current quantised pose (see the module docs). Errors when the
/// volume is invalid or a reference pose does not fit it.
pub fn predict(reference: &Reference, volume: &Volume) -> Result<QuantizedPose, QuantizeError> {
    volume.validate()?;
    if !reference.fits(volume) {
        return Err(QuantizeError::ReferenceOutOfRange);
    }
    let last = reference.last;
    let prev = match reference.previous {
        Some(p) if reference.frames_between_refs > 0 => p,
        _ => return Ok(last),
    };
    let s = reference.frames_since_last.min(MAX_EXTRAPOLATION_FRAMES);
    let g = reference.frames_between_refs;
    let levels = volume.axis_levels();
    let position = std::array::from_fn(|i| {
        extrapolate(last.position[i], prev.position[i], s, g, levels[i] - 1)
    });
    let rest = if prev.largest == last.largest {
        let max = u64::from(ORIENTATION_LEVELS - 1);
        std::array::from_fn(|i| extrapolate(last.rest[i], prev.rest[i], s, g, max))
    } else {
        last.rest
    };
    Ok(QuantizedPose {
        position,
        largest: last.largest,
        rest,
    })
}

/// Encodes a pose as a residual against [`predict`]`(reference)`, choosing the smaller of
/// the residual and absolute forms. Decode with [`decode_pose_predicted`] and the same
/// reference. `EncodeInfo::quantized` is the pose the receiver will hold.
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
pub fn encode_quantized_predicted(
    quantized: &QuantizedPose,
    reference: &Reference,
    volume: &Volume,
    w: &mut BitWriter,
) -> Result<EncodeInfo, QuantizeError> {
    let predicted = predict(reference, volume)?;
    let code = ClassCode::for_frames_ahead(reference.frames_since_last);
    encode_quantized_delta(quantized, &predicted, volume, code, w)
}

/// Quantises `pose` for coding against `reference` (rate-distortion quantisation): a
/// group (position, orientation) moves off the nearest quantised value, each component at
/// most one step toward [`predict`]`(reference)`, only when that makes its residual fit a
/// narrower delta width and the decoded pose stays within the error bounds
/// ([`MAX_POSITION_ERROR_M`] of distance, [`MAX_ANGLE_ERROR_DEG`]). The bound is spent on
/// fewer bits rather than on a needlessly exact value; the receiver decodes whatever was
/// chosen, only the sender needs `pose`.
///
/// Moving only when a narrower width results keeps the values close to the truth, so the
/// velocities later predictions extrapolate stay sound (moving whenever the residual
/// shrinks cost bytes at references 2+ frames old on the synthetic avatar).
/// A clamped position (outside the volume) keeps the nearest quantisation.
pub fn quantize_toward(
    pose: &Pose,
    reference: &Reference,
    volume: &Volume,
) -> Result<QuantizedPose, QuantizeError> {
    let (nearest, clamped) = QuantizedPose::from_pose(pose, volume)?;
    let predicted = predict(reference, volume)?;
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
    best.position = narrowest(nearest.position, predicted.position, within);
    if nearest.largest == predicted.largest {
        let within = |rest: [u32; 3]| {
            let q = QuantizedPose { rest, ..nearest };
            q.to_pose(volume).orientation.angle_deg(exact.orientation)
                <= MAX_ANGLE_ERROR_DEG * (1.0 - 1e-3)
        };
        best.rest = narrowest(nearest.rest, predicted.rest, within);
    }
    Ok(best)
}

/// Among `nearest` and its neighbours toward `predicted` that `within` accepts, the one
/// whose residual fits the narrowest delta width (`nearest` on a tie).
fn narrowest(
    nearest: [u32; 3],
    predicted: [u32; 3],
    within: impl Fn([u32; 3]) -> bool,
) -> [u32; 3] {
    let width = |g: [u32; 3]| {
        DELTA_WIDTHS
            .iter()
            .position(|&w| {
                (0..3).all(|i| fits_signed(i64::from(g[i]) - i64::from(predicted[i]), w))
            })
            .unwrap_or(DELTA_WIDTHS.len())
    };
    let mut best = (width(nearest), nearest);
    for candidate in toward(nearest, predicted) {
        let w = width(candidate);
        if w < best.0 && within(candidate) {
            best = (w, candidate);
        }
    }
    best.1
}

/// The groups next to `from` with some components moved one step toward `to` (all but
/// `from` itself).
fn toward(from: [u32; 3], to: [u32; 3]) -> impl Iterator<Item = [u32; 3]> {
    let step: [i64; 3] = std::array::from_fn(|i| (i64::from(to[i]) - i64::from(from[i])).signum());
    (1..8u8).filter_map(move |mask| {
        let mut out = from;
        for i in 0..3 {
            if mask & (1 << i) != 0 {
                if step[i] == 0 {
                    return None;
                }
                // Toward a value in range, so it stays in range.
                out[i] = (i64::from(from[i]) + step[i]) as u32;
            }
        }
        Some(out)
    })
}

/// Reads the quantised pose written by [`encode_pose_predicted`] against `reference`.
/// Malformed or truncated input is an error, never a panic.
pub fn read_quantized_predicted(
    r: &mut BitReader<'_>,
    reference: &Reference,
    volume: &Volume,
) -> Result<QuantizedPose, QuantizeError> {
    let predicted = predict(reference, volume)?;
    let code = ClassCode::for_frames_ahead(reference.frames_since_last);
    read_quantized_delta(r, &predicted, volume, code)
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
        assert!(info.bits <= (MAX_DELTA_OVERHEAD_BITS + v.absolute_pose_bits()) as usize);
        (info.bits, pe, ang)
    }

    use crate::xr::quantize::{MAX_ANGLE_ERROR_DEG, MAX_DELTA_OVERHEAD_BITS, MAX_POSITION_ERROR_M};

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

    fn zigzag(d: i64) -> u64 {
        ((d << 1) ^ (d >> 63)) as u64
    }
    fn eg_bits(u: u64, k: u32) -> usize {
        let v = u + (1u64 << k);
        let n = 63 - v.leading_zeros();
        (2 * n + 1 - k) as usize
    }
    fn class_cost(d: &[i64; 3], widths: &[u32], abs: usize, hdr: usize) -> usize {
        widths
            .iter()
            .filter(|&&w| d.iter().all(|&x| crate::xr::bits::fits_signed(x, w)))
            .map(|&w| hdr + 3 * w as usize)
            .min()
            .unwrap_or(hdr + abs)
            .min(hdr + abs)
    }
    fn eg_cost(d: &[i64; 3], ks: &[u32], abs: usize, hdr: usize) -> usize {
        ks.iter()
            .map(|&k| hdr + d.iter().map(|&x| eg_bits(zigzag(x), k)).sum::<usize>())
            .min()
            .unwrap_or(usize::MAX)
            .min(hdr + abs)
    }
    fn peraxis_cost(d: &[i64; 3], widths: &[u32], abs: usize, hdr: usize) -> usize {
        // per-group: 1 bit "per-axis" flag; each axis a 2-bit class from widths[0..4]
        let per: Option<usize> = d
            .iter()
            .map(|&x| {
                widths
                    .iter()
                    .filter(|&&w| crate::xr::bits::fits_signed(x, w))
                    .map(|&w| 2 + w as usize)
                    .min()
            })
            .sum();
        per.map(|c| c + hdr).unwrap_or(hdr + abs).min(hdr + abs)
    }

    #[test]
    #[ignore]
    fn experiment_residual_codes() {
        let v = Volume::default();
        let frames = avatar();
        let quant: Vec<[QuantizedPose; 3]> =
            frames.iter().map(|f| f.map(|p| quantize(&p, &v))).collect();
        let names = [
            "class3 [0,2,3,4,5,6,8]",
            "class3 [0,1,2,3,4,5,7]",
            "class3 [0,2,3,4,5,6,7]",
            "class3 [1,2,3,4,5,6,8]",
            "class2 [0,3,5]",
            "class2 [2,3,5]",
            "EG k in {0,1,2} + abs (2b)",
            "EG k in {0,1,2,3,4,5,6} + abs (3b)",
            "EG k in {1,2,4} + abs (2b)",
            "per-axis 2b [1,3,5,8] + abs(1b)",
        ];
        let mut tot = vec![0usize; names.len()];
        let mut n = 0usize;
        for i in 14..frames.len() {
            for (d, &cur) in quant[i].iter().enumerate() {
                let r = Reference {
                    last: quant[i - 4][d],
                    previous: Some(quant[i - 6][d]),
                    frames_between_refs: 2,
                    frames_since_last: 4,
                };
                let p = predict(&r, &v).expect("ok");
                let dp: [i64; 3] =
                    std::array::from_fn(|k| i64::from(cur.position[k]) - i64::from(p.position[k]));
                let same = cur.largest == p.largest;
                let dr: [i64; 3] = if same {
                    std::array::from_fn(|k| i64::from(cur.rest[k]) - i64::from(p.rest[k]))
                } else {
                    [1 << 40; 3]
                };
                let (pa, ra) = (43usize, 38usize);
                let costs = [
                    class_cost(&dp, &[0, 2, 3, 4, 5, 6, 8], pa, 3)
                        + class_cost(&dr, &[0, 2, 3, 4, 5, 6, 8], ra, 3),
                    class_cost(&dp, &[0, 1, 2, 3, 4, 5, 7], pa, 3)
                        + class_cost(&dr, &[0, 1, 2, 3, 4, 5, 7], ra, 3),
                    class_cost(&dp, &[0, 2, 3, 4, 5, 6, 7], pa, 3)
                        + class_cost(&dr, &[0, 2, 3, 4, 5, 6, 7], ra, 3),
                    class_cost(&dp, &[1, 2, 3, 4, 5, 6, 8], pa, 3)
                        + class_cost(&dr, &[1, 2, 3, 4, 5, 6, 8], ra, 3),
                    class_cost(&dp, &[0, 3, 5], pa, 2) + class_cost(&dr, &[0, 3, 5], ra, 2),
                    class_cost(&dp, &[2, 3, 5], pa, 2) + class_cost(&dr, &[2, 3, 5], ra, 2),
                    eg_cost(&dp, &[0, 1, 2], pa, 2) + eg_cost(&dr, &[0, 1, 2], ra, 2),
                    eg_cost(&dp, &[0, 1, 2, 3, 4, 5, 6], pa, 3)
                        + eg_cost(&dr, &[0, 1, 2, 3, 4, 5, 6], ra, 3),
                    eg_cost(&dp, &[1, 2, 4], pa, 2) + eg_cost(&dr, &[1, 2, 4], ra, 2),
                    peraxis_cost(&dp, &[1, 3, 5, 8], pa, 1)
                        + peraxis_cost(&dr, &[1, 3, 5, 8], ra, 1),
                ];
                for (t, c) in tot.iter_mut().zip(costs) {
                    *t += 1 + c;
                }
                n += 1;
            }
        }
        for (name, t) in names.iter().zip(&tot) {
            eprintln!(
                "{name:<36} {:5.1} bits/pose, {:5.2} bytes per 3-point update",
                *t as f64 / n as f64,
                *t as f64 / n as f64 * 3.0 / 8.0
            );
        }
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
    fn prediction_is_integer_linear_extrapolation() {
        let v = Volume::default();
        let q = |p: [u32; 3], largest: u8, rest: [u32; 3]| QuantizedPose {
            position: p,
            largest,
            rest,
        };
        let r = Reference {
            last: q([100, 200, 300], 3, [2000, 2100, 2200]),
            previous: Some(q([96, 201, 300], 3, [1990, 2100, 2203])),
            frames_between_refs: 2,
            frames_since_last: 4,
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
        // A changed dropped index keeps the last orientation; position still extrapolates.
        let r2 = Reference {
            previous: Some(q([96, 201, 300], 1, [1990, 2100, 2203])),
            ..r
        };
        let p2 = predict(&r2, &v).expect("ok");
        assert_eq!(
            (p2.position, p2.largest, p2.rest),
            ([108, 198, 300], 3, r.last.rest)
        );
        // Leaving the range clamps.
        let top = v.axis_levels()[1] as u32 - 1;
        let rot_top = ORIENTATION_LEVELS - 1;
        let r3 = Reference {
            last: q([2, top - 2, 5], 0, [1, rot_top - 1, 7]),
            previous: Some(q([9, top - 8, 5], 0, [10, rot_top - 15, 7])),
            frames_between_refs: 1,
            frames_since_last: 3,
        };
        let p3 = predict(&r3, &v).expect("ok");
        assert_eq!(p3.position, [0, top, 5]);
        assert_eq!(p3.rest, [0, rot_top, 7]);
        // No previous, or a zero gap: plain delta. A huge horizon is capped.
        assert_eq!(predict(&Reference::plain(r.last), &v).expect("ok"), r.last);
        let r4 = Reference {
            frames_between_refs: 0,
            ..r
        };
        assert_eq!(predict(&r4, &v).expect("ok"), r.last);
        let r5 = Reference {
            frames_since_last: u32::MAX,
            frames_between_refs: 1,
            ..r
        };
        let r6 = Reference {
            frames_since_last: MAX_EXTRAPOLATION_FRAMES,
            ..r5
        };
        assert_eq!(predict(&r5, &v), predict(&r6, &v));
        // References outside the volume's ranges are refused.
        let bad = q([1 << 20, 0, 0], 3, [0; 3]);
        let r7 = Reference {
            previous: Some(bad),
            ..r
        };
        assert_eq!(predict(&r7, &v), Err(QuantizeError::ReferenceOutOfRange));
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
