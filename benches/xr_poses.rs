//! Bench of issue 5: pose payload of a synthetic 3-point avatar (head, left hand, right
//! hand) at 90 Hz for 60 s, against raw float poses as Ubiq sends them, in the same run.
//!
//! The program first prints a report (sizes, bandwidth, errors, PASS/FAIL), then runs the
//! criterion functions `xr_poses/{encode,decode}/{absolute,plain_delta,predicted}`: the time
//! to encode or decode one whole 3-point update (header byte and three poses).
//!
//! # Simulation
//! The sender encodes frame `i` against what the receiver holds: the acked reference lags
//! [`LAG`] = 4 frames (≈ 45 ms round trip at 90 Hz), so `last` is the receiver's decoded
//! quantised pose of frame `i − 4` and, for prediction, `previous` that of frame `i − 6`
//! ([`GAP`] = 2 frames before it) and `earlier` that of frame `i − 8`. The first frames, with no such reference yet, are sent
//! absolute (plain delta for predicted coding when only `last` exists). The receiver's
//! history is built from what it actually decodes, and checked bit-exact against the
//! sender's quantised poses.
//!
//! # Encodings of one 3-point update
//! - (a) raw floats: 3 × 28 bytes (`XrPosef`) + 8 bytes of message header = 92 bytes.
//! - (b) absolute quantised (`encode_pose`, 81 bits a pose in the default volume).
//! - (c) plain delta (`encode_pose_delta` against `last`).
//! - (d) predicted delta (`encode_pose_predicted` against `last` and `previous`).
//!
//! (b)–(d) are framed alike: one header byte, then the three poses bit-packed in device
//! order, padded with zero bits to a whole byte. Header byte: bits 0–2 the device mask
//! (head, left, right; always `0b111` here), bits 3–7 the reference age in frames
//! (`frames_since_last`, 0 = no reference: poses are absolute). The receiver is assumed to
//! know the frame number of the update (from the stream's sequence number, which the
//! session layer carries, as it does the stream identity Ubiq's 8-byte header carries);
//! `previous` is by convention the acked pose [`GAP`] frames before `last` when it exists,
//! `earlier` the one [`GAP`] frames before `previous`.
//!
//! # Wire overhead (an assumption, one update per datagram)
//! IPv4 20 + UDP 8 + QUIC short header (1 flags + 8 destination connection id + 2 packet
//! number) + 16 AEAD tag + DATAGRAM frame (1 type + 2 length) = 58 bytes per datagram. The
//! same 58 bytes are added to the raw-float baseline. ACK frames, padding, IPv6 (+20) and
//! path MTU probes are not counted.
//!
//! Run: `cargo bench --bench xr_poses` (about 15 s).

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use theta_net::xr::predict::{encode_pose_predicted, read_quantized_predicted, Reference};
use theta_net::xr::quantize::{
    encode_pose, encode_pose_delta, read_quantized, read_quantized_delta, MAX_ANGLE_ERROR_DEG,
    MAX_POSITION_ERROR_M,
};
use theta_net::xr::stream::{Ack, PoseReceiver, PoseSender, Section, StreamSample};
use theta_net::xr::synthetic::{avatar, SEGMENTS};
use theta_net::xr::{
    BitReader, BitWriter, Device, Pose, PoseFlags, PoseSample, QuantizedPose, Quat, Volume,
};

/// Update rate, Hz.
const RATE_HZ: f64 = 90.0;
/// Updates in the run: 60 s at 90 Hz.
const UPDATES: usize = 5400;
/// Acked-reference lag in frames (≈ 45 ms round trip at 90 Hz).
const LAG: usize = 4;
/// Frames from `previous` to `last` for prediction.
const GAP: usize = 2;
/// Bytes of a raw-float 3-point update as Ubiq sends it: 3 × 28 + 8.
const RAW_UPDATE_BYTES: usize = 3 * 28 + 8;
/// Per-datagram overhead counted on the wire (see the module docs).
const WIRE_OVERHEAD_BYTES: usize = 20 + 8 + (1 + 8 + 2) + 16 + 3;
/// Target mean payload per 3-point update.
const TARGET_MEAN_BYTES: f64 = 12.0;
/// Device mask of a full 3-point update.
const ALL_DEVICES: u8 = 0b111;

// ---------------------------------------------------------------------------------------
// Deterministic synthetic avatar: `theta_net::xr::synthetic`.

// ---------------------------------------------------------------------------------------
// Framing of one 3-point update.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Absolute,
    Plain,
    Predicted,
}

impl Scheme {
    const ALL: [Scheme; 3] = [Scheme::Absolute, Scheme::Plain, Scheme::Predicted];

    fn name(self) -> &'static str {
        match self {
            Scheme::Absolute => "absolute",
            Scheme::Plain => "plain_delta",
            Scheme::Predicted => "predicted",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Scheme::Absolute => "(b) absolute quantised",
            Scheme::Plain => "(c) plain delta",
            Scheme::Predicted => "(d) predicted delta",
        }
    }
}

/// What the sender codes frame `i` of device `d` against, given the receiver's history of
/// decoded quantised poses (`None`: absolute).
fn reference_for(
    scheme: Scheme,
    i: usize,
    d: usize,
    recv: &[[QuantizedPose; 3]],
) -> Option<Reference> {
    if scheme == Scheme::Absolute || i < LAG {
        return None;
    }
    let last = recv[i - LAG][d];
    if scheme == Scheme::Plain || i < LAG + GAP {
        return Some(Reference::plain(last));
    }
    let earlier = (i >= LAG + 2 * GAP).then(|| recv[i - LAG - 2 * GAP][d]);
    Some(Reference {
        last,
        previous: Some(recv[i - LAG - GAP][d]),
        earlier,
        frames_between_refs: GAP as u32,
        frames_before_previous: if earlier.is_some() { GAP as u32 } else { 0 },
        frames_since_last: LAG as u32,
        head: d == 0,
    })
}

/// The header byte of update `i`: device mask and reference age.
fn header(scheme: Scheme, i: usize) -> u8 {
    let age = if scheme == Scheme::Absolute || i < LAG {
        0
    } else {
        LAG as u8
    };
    ALL_DEVICES | (age << 3)
}

/// Encodes update `i`: returns the bytes, the sender's quantised poses and the bits written
/// before padding (header included).
fn encode_update(
    scheme: Scheme,
    i: usize,
    poses: &[Pose; 3],
    recv: &[[QuantizedPose; 3]],
    v: &Volume,
) -> (Vec<u8>, [QuantizedPose; 3], usize) {
    let mut w = BitWriter::new();
    w.write_bits(u64::from(header(scheme, i)), 8);
    let mut q = [QuantizedPose {
        position: [0; 3],
        largest: 0,
        rest: [0; 3],
    }; 3];
    for (d, pose) in poses.iter().enumerate() {
        let info = match (scheme, reference_for(scheme, i, d, recv)) {
            (_, None) => encode_pose(pose, v, &mut w),
            (Scheme::Plain, Some(r)) => encode_pose_delta(pose, &r.last, v, &mut w),
            (_, Some(r)) => encode_pose_predicted(pose, &r, v, &mut w),
        }
        .expect("valid pose");
        q[d] = info.quantized;
    }
    let bits = w.bit_len();
    (w.into_bytes(), q, bits)
}

/// Decodes update `i` against the receiver's history.
fn decode_update(
    scheme: Scheme,
    i: usize,
    bytes: &[u8],
    recv: &[[QuantizedPose; 3]],
    v: &Volume,
) -> [QuantizedPose; 3] {
    let mut r = BitReader::new(bytes);
    let h = r.read_bits(8).expect("header") as u8;
    assert_eq!(h, header(scheme, i), "header");
    std::array::from_fn(|d| {
        match (scheme, reference_for(scheme, i, d, recv)) {
            (_, None) => read_quantized(&mut r, v),
            (Scheme::Plain, Some(re)) => read_quantized_delta(&mut r, &re.last, v),
            (_, Some(re)) => read_quantized_predicted(&mut r, &re, v),
        }
        .expect("decode")
    })
}

// ---------------------------------------------------------------------------------------
// Errors, independent of the codec's own helpers.

/// The rotation angle between two quaternions in degrees, `2·acos(|a·b|)` computed as
/// `4·atan2(|a − b|, |a + b|)` after normalising in `f64` and flipping `b` to `a·b ≥ 0`
/// (no loss of precision near 0°, where `acos` of a dot near 1 loses it).
fn angle_deg(a: Quat, b: Quat) -> f64 {
    let unit = |q: Quat| {
        let c = q.to_array().map(f64::from);
        let n = c.iter().map(|x| x * x).sum::<f64>().sqrt();
        c.map(|x| x / n)
    };
    let a = unit(a);
    let mut b = unit(b);
    if a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() < 0.0 {
        b = b.map(|x| -x);
    }
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>();
    let sum = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x + y) * (x + y))
        .sum::<f64>();
    (4.0 * diff.sqrt().atan2(sum.sqrt())).to_degrees()
}

#[derive(Default)]
struct Errors {
    max_axis_m: f64,
    max_dist_m: f64,
    sum_dist_m: f64,
    max_angle_deg: f64,
    sum_angle_deg: f64,
    poses: usize,
}

impl Errors {
    fn add(&mut self, truth: &Pose, got: &Pose) {
        let t = truth.position.to_array();
        let g = got.position.to_array();
        let deltas: [f64; 3] = std::array::from_fn(|k| f64::from(g[k]) - f64::from(t[k]));
        let axis = deltas.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let dist = deltas.iter().map(|x| x * x).sum::<f64>().sqrt();
        let ang = angle_deg(truth.orientation, got.orientation);
        self.max_axis_m = self.max_axis_m.max(axis);
        self.max_dist_m = self.max_dist_m.max(dist);
        self.sum_dist_m += dist;
        self.max_angle_deg = self.max_angle_deg.max(ang);
        self.sum_angle_deg += ang;
        self.poses += 1;
    }
}

// ---------------------------------------------------------------------------------------
// The simulated run of one scheme.

struct Run {
    scheme: Scheme,
    /// Encoded updates.
    updates: Vec<Vec<u8>>,
    /// Bits of the three poses per update (no header, no padding).
    pose_bits: usize,
    /// The receiver's decoded quantised poses per frame.
    recv: Vec<[QuantizedPose; 3]>,
    errors: Errors,
}

fn simulate(scheme: Scheme, frames: &[[Pose; 3]], v: &Volume) -> Run {
    let mut recv: Vec<[QuantizedPose; 3]> = Vec::with_capacity(frames.len());
    let mut updates = Vec::with_capacity(frames.len());
    let mut errors = Errors::default();
    let mut pose_bits = 0;
    for (i, poses) in frames.iter().enumerate() {
        // The sender sees the receiver's history up to the acked frame only.
        let (bytes, sent, bits) = encode_update(scheme, i, poses, &recv, v);
        pose_bits += bits - 8;
        let got = decode_update(scheme, i, &bytes, &recv, v);
        assert_eq!(got, sent, "receiver disagrees with sender at frame {i}");
        for (truth, q) in poses.iter().zip(&got) {
            errors.add(truth, &q.to_pose(v));
        }
        recv.push(got);
        updates.push(bytes);
    }
    Run {
        scheme,
        updates,
        pose_bits,
        recv,
        errors,
    }
}

fn kbps(bytes_per_update: f64) -> f64 {
    bytes_per_update * 8.0 * RATE_HZ / 1000.0
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn report(frames: &[[Pose; 3]], runs: &[Run]) {
    let n = frames.len();
    println!(
        "xr_poses: synthetic 3-point avatar (head, left hand, right hand), {RATE_HZ} Hz, {:.0} s, \
         {n} updates; acked reference {LAG} frames old (~45 ms RTT), previous {GAP} frames before it",
        n as f64 / RATE_HZ
    );
    println!(
        "framing (b)-(d): 1 header byte (device mask + reference age) + poses bit-packed, padded to a byte"
    );
    println!(
        "wire overhead per datagram (one update each): IPv4 20 + UDP 8 + QUIC short header 11 \
         (1 flags + 8 DCID + 2 PN) + AEAD tag 16 + DATAGRAM frame 3 = {WIRE_OVERHEAD_BYTES} bytes"
    );
    println!();
    println!(
        "{:<26} {:>10} {:>6} {:>13} {:>13} {:>10} {:>10} {:>13}",
        "encoding",
        "bytes mean",
        "max",
        "payload kbps",
        "wire kbps",
        "payload/a",
        "wire/a",
        "poses only *"
    );
    let raw_wire = (RAW_UPDATE_BYTES + WIRE_OVERHEAD_BYTES) as f64;
    println!(
        "{:<26} {:>10.2} {:>6} {:>13.1} {:>13.1} {:>10.3} {:>10.3} {:>13.2}",
        "(a) raw floats (Ubiq)",
        RAW_UPDATE_BYTES as f64,
        RAW_UPDATE_BYTES,
        kbps(RAW_UPDATE_BYTES as f64),
        kbps(raw_wire),
        1.0,
        1.0,
        84.0
    );
    for run in runs {
        let total: usize = run.updates.iter().map(Vec::len).sum();
        let max = run.updates.iter().map(Vec::len).max().unwrap_or(0);
        let mean = total as f64 / run.updates.len() as f64;
        let wire = mean + WIRE_OVERHEAD_BYTES as f64;
        println!(
            "{:<26} {:>10.2} {:>6} {:>13.1} {:>13.1} {:>10.3} {:>10.3} {:>13.2}",
            run.scheme.label(),
            mean,
            max,
            kbps(mean),
            kbps(wire),
            mean / RAW_UPDATE_BYTES as f64,
            wire / raw_wire,
            run.pose_bits as f64 / 8.0 / run.updates.len() as f64
        );
    }
    println!(
        "* mean bytes of the three poses alone, bit-packed (no header byte, no padding); \
         (a): 3 x 28, without Ubiq's 8-byte header"
    );
    println!();
    // Steady state and per segment for the predicted run.
    if let Some(pred) = runs.iter().find(|r| r.scheme == Scheme::Predicted) {
        let per_segment: Vec<String> = SEGMENTS
            .iter()
            .map(|&(name, a, b)| {
                let (sum, cnt) = pred
                    .updates
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| {
                        let t = *i as f64 / RATE_HZ;
                        t >= a && t < b
                    })
                    .fold((0usize, 0usize), |(s, c), (_, u)| (s + u.len(), c + 1));
                format!("{name} {:.2}", sum as f64 / cnt.max(1) as f64)
            })
            .collect();
        println!(
            "(d) mean bytes per update by segment: {}",
            per_segment.join(", ")
        );
        println!();
    }
    println!(
        "{:<26} {:>14} {:>14} {:>14} {:>12} {:>12}",
        "decoded vs original", "max axis mm", "max dist mm", "mean dist mm", "max deg", "mean deg"
    );
    for run in runs {
        let e = &run.errors;
        println!(
            "{:<26} {:>14.4} {:>14.4} {:>14.4} {:>12.4} {:>12.4}",
            run.scheme.label(),
            e.max_axis_m * 1e3,
            e.max_dist_m * 1e3,
            e.sum_dist_m / e.poses as f64 * 1e3,
            e.max_angle_deg,
            e.sum_angle_deg / e.poses as f64
        );
    }
    println!();
    for run in runs.iter().filter(|r| r.scheme != Scheme::Absolute) {
        let e = &run.errors;
        let total: usize = run.updates.iter().map(Vec::len).sum();
        let mean = total as f64 / run.updates.len() as f64;
        println!(
            "{}: mean {mean:.2} <= {TARGET_MEAN_BYTES} bytes/update {}; max position error \
             (Euclidean) {:.4} <= {} mm {}; max angle {:.4} <= {}° {}; (max per axis {:.4} mm)",
            run.scheme.label(),
            pass(mean <= TARGET_MEAN_BYTES),
            e.max_dist_m * 1e3,
            MAX_POSITION_ERROR_M * 1e3,
            pass(e.max_dist_m <= MAX_POSITION_ERROR_M),
            e.max_angle_deg,
            MAX_ANGLE_ERROR_DEG,
            pass(e.max_angle_deg <= MAX_ANGLE_ERROR_DEG),
            e.max_axis_m * 1e3,
        );
    }
    println!();
}

// ---------------------------------------------------------------------------------------
// Criterion.

fn bench(c: &mut Criterion, frames: &[[Pose; 3]], runs: &[Run], v: &Volume) {
    let mut group = c.benchmark_group("xr_poses");
    let first = LAG + GAP;
    for run in runs {
        let scheme = run.scheme;
        let recv = &run.recv;
        let mut i = first;
        group.bench_function(format!("encode/{}", scheme.name()), |b| {
            b.iter(|| {
                i = if i + 1 >= frames.len() { first } else { i + 1 };
                black_box(encode_update(scheme, i, black_box(&frames[i]), recv, v))
            })
        });
        let mut i = first;
        group.bench_function(format!("decode/{}", scheme.name()), |b| {
            b.iter(|| {
                i = if i + 1 >= frames.len() { first } else { i + 1 };
                black_box(decode_update(
                    scheme,
                    i,
                    black_box(&run.updates[i]),
                    recv,
                    v,
                ))
            })
        });
    }
    group.finish();
}

/// The session's own pose packets ([`theta_net::xr::stream`]): 7-bit sequence number once
/// acknowledgements flow (12 before), a short acknowledgement in every packet (both
/// directions stream; coded against the one the reference packet carried), per-device time
/// and flags, references chosen from acknowledgements that return `lag` frames after a
/// packet is sent. Returns (mean, max) bytes per 3-point packet, checking every decode.
fn session_packets(frames: &[[Pose; 3]], v: &Volume, lag: usize) -> (f64, usize, f64, f64) {
    let mut tx = PoseSender::new(*v);
    let mut rx = PoseReceiver::new(*v);
    let mut acks: std::collections::VecDeque<(usize, u64)> = Default::default();
    let (mut total, mut max) = (0usize, 0usize);
    let (mut max_dist, mut max_angle) = (0.0f64, 0.0f64);
    for (i, frame) in frames.iter().enumerate() {
        while acks.front().is_some_and(|(due, _)| *due <= i) {
            if let Some((_, a)) = acks.pop_front() {
                tx.on_ack(Ack::new(a, true));
            }
        }
        let time = i as i64 * 11_111_111;
        let samples = (0..3u8)
            .map(|d| {
                let sample = PoseSample {
                    pose: frame[d as usize],
                    time,
                    flags: PoseFlags::ALL,
                    linear_velocity: None,
                    angular_velocity: None,
                };
                let device = Device::from_index(d).expect("device");
                StreamSample::from_sample(device, &sample, None, v)
                    .expect("valid")
                    .0
            })
            .collect();
        let section = Section { source: 1, samples };
        // The other direction's acknowledgement rides in every packet: short (7 bits + 2),
        // as a session sends it below ~350 ms of round trip.
        let enc = tx
            .encode(Some(&section), Some(Ack::new(i as u64, true)), 1200)
            .expect("encode");
        let d = rx.decode(&enc.bytes, false, 1).expect("decode");
        assert_eq!(d.sections, enc.sent);
        // Quantised toward the prediction: still within the bounds of the truth.
        for (got, truth) in d.sections[0].samples.iter().zip(frame) {
            let got = got.pose.to_pose(v);
            max_dist = max_dist.max(got.position.distance(truth.position));
            max_angle = max_angle.max(got.orientation.angle_deg(truth.orientation));
        }
        if let Some(a) = rx.take_ack() {
            acks.push_back((i + lag, a));
        }
        total += enc.bytes.len();
        max = max.max(enc.bytes.len());
    }
    (total as f64 / frames.len() as f64, max, max_dist, max_angle)
}

fn session_report(frames: &[[Pose; 3]], v: &Volume) {
    println!(
        "(e) session pose packets (theta_net::xr::stream: tag, 7- or 12-bit seq, \
         standard-section bit or device mask, reference age/gaps, time, flags, predicted poses, \
         ack against the reference's), \
         one per 3-point update"
    );
    println!(
        "{:<34} {:>10} {:>6} {:>13} {:>13} {:>10} {:>10} {:>8} {:>8}",
        "ack returns after",
        "bytes mean",
        "max",
        "payload kbps",
        "wire kbps",
        "payload/a",
        "wire/a",
        "max mm",
        "max deg"
    );
    let raw_wire = (RAW_UPDATE_BYTES + WIRE_OVERHEAD_BYTES) as f64;
    for (lag, label) in [
        (1, "1 frame (LAN, RTT < 11 ms)"),
        (2, "2 frames (RTT ~ 20 ms)"),
        (4, "4 frames (RTT ~ 45 ms)"),
        (9, "9 frames (RTT ~ 100 ms)"),
    ] {
        let (mean, max, dist, angle) = session_packets(frames, v, lag);
        let wire = mean + WIRE_OVERHEAD_BYTES as f64;
        let within = dist <= MAX_POSITION_ERROR_M && angle <= MAX_ANGLE_ERROR_DEG;
        println!(
            "{:<34} {:>10.2} {:>6} {:>13.1} {:>13.1} {:>10.3} {:>10.3} {:>8.4} {:>8.4}  target <= {TARGET_MEAN_BYTES}: {}, error bounds: {}",
            label,
            mean,
            max,
            kbps(mean),
            kbps(wire),
            mean / RAW_UPDATE_BYTES as f64,
            wire / raw_wire,
            dist * 1e3,
            angle,
            pass(mean <= TARGET_MEAN_BYTES),
            pass(within)
        );
    }
    println!();
}

fn main() {
    let v = Volume::default();
    let frames = avatar(UPDATES);
    let runs: Vec<Run> = Scheme::ALL
        .iter()
        .map(|&s| simulate(s, &frames, &v))
        .collect();
    report(&frames, &runs);
    session_report(&frames, &v);
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    bench(&mut c, &frames, &runs, &v);
    c.final_summary();
}
