//! Compression bench of issue 6: the wire codecs (`theta_net::wire::codec`) on frames
//! recorded in this run from the `theta demo` scene and from an XR pose stream.
//!
//! Recorded, in one run, before anything is measured:
//! - `snapshot chunks`: the `theta demo` scene (`src/bin/theta/scene.rs`, included below)
//!   with 1000 objects, 10 % moving per tick, snapshotted (16 KiB chunks) every 10 ticks
//!   over 300 ticks, as a host sends them to late joiners;
//! - `delta frames`: the same scene, 300 ticks of encoded delta frames, in two motions:
//!   `smooth` (the demo's default: the same 10 % keep moving along continuous paths at
//!   walking speed and turning, the rest at rest, as carried or animated objects move in
//!   an XR scene; the targets bind here) and `teleport` (a stress scene: each mover gets a
//!   random transform, so about a third of each frame is random float bits no codec can
//!   shrink; informational);
//! - `state datagrams`: the scene with 0.3 % moving per tick, each tick's changes in one
//!   state datagram (≤ 1472 bytes) as the outbox sends them, in both motions;
//! - `pose updates`: head + two hands on a deterministic motion at 90 Hz, each update a
//!   small header and the three poses coded against a prediction from acked poses 4 and 8
//!   frames old (`theta_net::xr::predict`), 3000 updates.
//!
//! Of each row the first third trains the dictionary (`train_dictionary`); the later two
//! thirds are measured. A report is printed first: per row, the framed bytes of none /
//! zstd-1 / zstd-3 / zstd+dict at levels 1 and 3, and for delta frames (which a session
//! sends in one compression stream per connection: `StreamEncoder` / `StreamDecoder`) the
//! stream at level 1 without and with the dictionary (`stream-1`, `stream-1+dict`: one
//! stream over all the measured frames, started at the first); their ratio to the
//! uncompressed bytes and to zstd of the same level without the dictionary, and encode /
//! decode throughput in MB/s of uncompressed bytes (simple timed loops), then PASS/FAIL
//! lines for the targets of each codec with a dictionary (binding for the demo
//! scene's delta frames, informational for the other rows), and a summary of the rows
//! that pass.
//! Criterion then measures the same encodes and decodes
//! (`compression/<kind>/{encode,decode}/<codec>`, throughput in uncompressed bytes).
//!
//! Run: `cargo bench --bench compression` (about 3 minutes on 2 cores); the report alone:
//! `cargo bench --bench compression -- report-only` (a filter no criterion bench matches).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};

#[allow(dead_code)]
#[path = "../src/bin/theta/scene.rs"]
mod scene;

use theta_net::wire::codec::{
    train_dictionary, Codec, Dictionary, DictionarySet, MessageKind, NoCodec, StreamDecoder,
    StreamEncoder, Zstd, ZstdDict, MAX_DATAGRAM_BYTES,
};
use theta_net::wire::Encoder;
use theta_net::xr::bits::BitWriter;
use theta_net::xr::predict::{encode_pose_predicted, Reference};
use theta_net::xr::{Pose, QuantizedPose, Quat, Vec3, Volume};
use theta_net::{DeltaTracker, World, DEFAULT_MAX_CHUNK_BYTES};

use scene::Motion;

/// Objects in the demo scene.
const OBJECTS: usize = 1000;
/// Percentage of objects moving per tick for delta frames.
const MOVE_PERCENT: f64 = 10.0;
/// Percentage moving per tick for state datagrams (about 3 objects: datagram-sized).
const DATAGRAM_MOVE_PERCENT: f64 = 0.3;
/// Ticks (frames) recorded for delta frames and datagrams.
const TICKS: usize = 300;
/// Ticks between two snapshots recorded for snapshot chunks.
const SNAPSHOT_EVERY: usize = 10;
/// Pose updates recorded (90 Hz: 33 s).
const POSE_UPDATES: usize = 3000;
/// Dictionary size asked of the trainer.
const DICT_BYTES: usize = 16 << 10;
/// Minimum wall time of each timed loop of the printed report.
const LOOP_TIME: Duration = Duration::from_millis(300);

/// Issue 6's targets for delta frames with the dictionary.
const TARGET_MAX_RATIO: f64 = 0.5;
const TARGET_VS_ZSTD: f64 = 0.7;
const TARGET_DECODE_MBPS: f64 = 500.0;

/// One row of recorded frames: what trains the dictionary and what is measured.
struct Recorded {
    name: &'static str,
    slug: &'static str,
    /// Whether the targets bind this row (delta frames) or are informational.
    binding: bool,
    max_len: usize,
    training: Vec<Vec<u8>>,
    measured: Vec<Vec<u8>>,
}

impl Recorded {
    fn new(
        name: &'static str,
        slug: &'static str,
        binding: bool,
        max_len: usize,
        frames: Vec<Vec<u8>>,
    ) -> Self {
        let mut training = frames;
        let measured = training.split_off(training.len() / 3);
        Recorded {
            name,
            slug,
            binding,
            max_len,
            training,
            measured,
        }
    }

    /// Whether a session sends these frames in a compression stream (delta frames).
    fn streamed(&self) -> bool {
        self.slug.starts_with("delta")
    }

    fn raw_bytes(&self) -> usize {
        self.measured.iter().map(Vec::len).sum()
    }

    fn dictionary(&self, id: u32) -> Result<Dictionary, String> {
        let samples: Vec<&[u8]> = self.training.iter().map(Vec::as_slice).collect();
        train_dictionary(&samples, DICT_BYTES, id).map_err(|e| e.to_string())
    }
}

/// Snapshot chunks of the `theta demo` scene, every [`SNAPSHOT_EVERY`] ticks.
fn record_snapshot_chunks() -> Vec<Vec<u8>> {
    let mut world = World::default();
    let mut scene = scene::Scene::new(&mut world, OBJECTS, 41).expect("scene");
    let mut out = Vec::new();
    for tick in 0..TICKS {
        scene.step(&mut world, MOVE_PERCENT).expect("step");
        if tick % SNAPSHOT_EVERY == 0 {
            out.extend(
                world
                    .snapshot(DEFAULT_MAX_CHUNK_BYTES)
                    .chunks
                    .into_iter()
                    .map(|c| c.bytes),
            );
        }
        world.advance();
    }
    out
}

/// Delta frames of the `theta demo` scene: 1000 objects, 10 % moving per tick.
fn record_delta_frames(motion: Motion) -> Vec<Vec<u8>> {
    let mut world = World::default();
    let mut scene =
        scene::Scene::with_motion(&mut world, OBJECTS, 42, motion, false).expect("scene");
    let mut tracker = DeltaTracker::new();
    tracker.diff(&world).expect("first diff");
    (0..TICKS)
        .map(|_| {
            scene.step(&mut world, MOVE_PERCENT).expect("step");
            tracker.diff(&world).expect("diff").encode()
        })
        .collect()
}

/// State datagrams of the `theta demo` scene with a few objects moving per tick.
fn record_datagrams(motion: Motion) -> Vec<Vec<u8>> {
    let mut world = World::default();
    let mut scene =
        scene::Scene::with_motion(&mut world, OBJECTS, 43, motion, false).expect("scene");
    let mut tracker = DeltaTracker::new();
    tracker.diff(&world).expect("first diff");
    let mut encoder = Encoder::new();
    let mut out = Vec::with_capacity(TICKS);
    let mut oversized = 0;
    for _ in 0..TICKS {
        scene.step(&mut world, DATAGRAM_MOVE_PERCENT).expect("step");
        let delta = tracker.diff(&world).expect("diff");
        // The body (what is compressed; the header goes beside it).
        let bytes = delta.with_parts(|parts| encoder.state_datagram(parts));
        if bytes.len() <= MAX_DATAGRAM_BYTES {
            out.push(bytes);
        } else {
            oversized += 1;
        }
    }
    if oversized > 0 {
        println!("note: {oversized} of {TICKS} datagrams exceeded {MAX_DATAGRAM_BYTES} B and were dropped");
    }
    out
}

fn axis_angle(axis: [f32; 3], angle: f32) -> Quat {
    let n = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt();
    let (s, c) = (angle * 0.5).sin_cos();
    Quat::new(axis[0] / n * s, axis[1] / n * s, axis[2] / n * s, c)
}

/// Head and hands at time `t` (seconds): a user walking slowly around a circle, looking
/// around, hands swinging and gesturing.
fn poses_at(t: f32) -> [Pose; 3] {
    let walk = 0.15 * t;
    let (sw, cw) = walk.sin_cos();
    let head_pos = Vec3::new(
        1.5 * cw + 0.02 * (7.1 * t).sin(),
        1.65 + 0.015 * (11.0 * t).sin(),
        1.5 * sw,
    );
    let yaw = walk + std::f32::consts::FRAC_PI_2 + 0.6 * (0.7 * t).sin();
    let pitch = 0.25 * (0.45 * t).sin();
    let head_rot = axis_angle([0.0, 1.0, 0.0], yaw);
    let head_rot = mul(head_rot, axis_angle([1.0, 0.0, 0.0], pitch));
    let hand = |side: f32, phase: f32| {
        let swing = (1.9 * t + phase).sin();
        let pos = Vec3::new(
            head_pos.x + side * 0.25 * cw + 0.2 * swing * -sw,
            1.1 + 0.1 * (2.3 * t + phase).sin(),
            head_pos.z + side * 0.25 * sw + 0.2 * swing * cw,
        );
        let rot = mul(
            axis_angle([0.0, 1.0, 0.0], yaw + 0.3 * side),
            axis_angle([1.0, 0.2 * side, 0.0], 0.8 * swing),
        );
        Pose::new(rot, pos)
    };
    [
        Pose::new(head_rot, head_pos),
        hand(-1.0, 0.0),
        hand(1.0, std::f32::consts::PI),
    ]
}

fn mul(a: Quat, b: Quat) -> Quat {
    Quat::new(
        a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
        a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
        a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w,
        a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z,
    )
}

/// Pose-stream updates: per update a 4-byte sequence number, a device mask, and the three
/// poses coded against a prediction from the poses acked 4 and 8 updates earlier (the
/// first 8 updates are absolute, against nothing).
fn record_pose_updates() -> Vec<Vec<u8>> {
    const ACK_LAG: usize = 4;
    let volume = Volume::default();
    let mut history: Vec<[QuantizedPose; 3]> = Vec::with_capacity(POSE_UPDATES);
    let mut out = Vec::with_capacity(POSE_UPDATES);
    for n in 0..POSE_UPDATES {
        let poses = poses_at(n as f32 / 90.0);
        let mut w = BitWriter::new();
        let mut quantized = [QuantizedPose {
            position: [0; 3],
            largest: 3,
            rest: [0; 3],
        }; 3];
        for (d, pose) in poses.iter().enumerate() {
            let info = if n >= 2 * ACK_LAG {
                let reference = Reference {
                    last: history[n - ACK_LAG][d],
                    previous: Some(history[n - 2 * ACK_LAG][d]),
                    earlier: None,
                    frames_between_refs: ACK_LAG as u32,
                    frames_before_previous: 0,
                    frames_since_last: ACK_LAG as u32,
                    head: d == 0,
                };
                encode_pose_predicted(pose, &reference, &volume, &mut w)
            } else {
                theta_net::xr::encode_pose(pose, &volume, &mut w)
            }
            .expect("pose encodes");
            quantized[d] = info.quantized;
        }
        history.push(quantized);
        let mut update = Vec::with_capacity(8 + w.as_bytes().len());
        update.extend_from_slice(&(n as u32).to_le_bytes());
        update.push(0b111); // head, left hand, right hand
        update.extend_from_slice(w.as_bytes());
        out.push(update);
    }
    out
}

/// The codecs compared, by name.
fn codecs(dict: Option<&Dictionary>) -> Vec<(&'static str, Box<dyn Codec>)> {
    let mut list: Vec<(&'static str, Box<dyn Codec>)> = vec![
        ("none", Box::new(NoCodec)),
        ("zstd-1", Box::new(Zstd::new(1).expect("zstd-1"))),
        ("zstd-3", Box::new(Zstd::new(3).expect("zstd-3"))),
    ];
    if let Some(dict) = dict {
        list.push(("dict-1", Box::new(ZstdDict::new(1, dict).expect("dict-1"))));
        list.push(("dict-3", Box::new(ZstdDict::new(3, dict).expect("dict-3"))));
    }
    list
}

/// The compression streams compared (delta frames), by name: level 1, without and with the
/// dictionary.
fn streams(dict: Option<&Dictionary>) -> Vec<(&'static str, Option<&Dictionary>)> {
    let mut list = vec![("stream-1", None)];
    if let Some(dict) = dict {
        list.push(("stream-1+dict", Some(dict)));
    }
    list
}

/// A compression stream's codec: its encoder and decoder, and the decoder's dictionaries.
struct Stream<'a> {
    dict: Option<&'a Dictionary>,
    encoder: StreamEncoder,
    decoder: StreamDecoder,
    set: DictionarySet,
}

impl<'a> Stream<'a> {
    fn new(dict: Option<&'a Dictionary>) -> Self {
        let mut set = DictionarySet::new();
        if let Some(d) = dict {
            set.insert(d.clone()).expect("dictionary");
        }
        Stream {
            dict,
            encoder: StreamEncoder::new(1).expect("stream encoder"),
            decoder: StreamDecoder::new().expect("stream decoder"),
            set,
        }
    }

    /// Encodes `frames` in one new stream (the first frame starts it), calling `each` with
    /// every frame made.
    fn encode_all(&mut self, frames: &[Vec<u8>], out: &mut Vec<u8>, mut each: impl FnMut(&[u8])) {
        self.encoder.reset();
        for f in frames {
            out.clear();
            self.encoder
                .compress(black_box(f), self.dict, out)
                .expect("compress");
            each(out);
        }
    }

    /// Decodes the frames of one stream, in order, calling `each` with every message.
    fn decode_all(&mut self, framed: &[Vec<u8>], max_len: usize, mut each: impl FnMut(Vec<u8>)) {
        for f in framed {
            each(
                self.decoder
                    .decompress(black_box(f), max_len, &self.set)
                    .expect("decode"),
            );
        }
    }

    fn framed(&mut self, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut framed = Vec::with_capacity(frames.len());
        self.encode_all(frames, &mut Vec::new(), |f| framed.push(f.to_vec()));
        framed
    }
}

fn compress_all(codec: &dyn Codec, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|f| {
            let mut out = Vec::new();
            codec.compress(f, &mut out).expect("compress");
            out
        })
        .collect()
}

/// MB/s (10^6 bytes of `raw` per second) of running `f` repeatedly for at least
/// [`LOOP_TIME`].
fn timed(raw: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < LOOP_TIME {
        f();
        rounds += 1;
    }
    (raw as f64 * rounds as f64) / start.elapsed().as_secs_f64() / 1e6
}

struct Row {
    name: &'static str,
    bytes: usize,
    encode_mbps: f64,
    decode_mbps: f64,
}

/// Prints the table of one row and its target lines; returns whether a codec with the
/// dictionary (dict-1, dict-3, or stream-1+dict for delta frames) met every target.
fn report(kind: &Recorded, dict: &Result<Dictionary, String>) -> bool {
    let raw = kind.raw_bytes();
    println!();
    println!(
        "== {}: {} frames measured (avg {} B, {} B in all); dictionary trained on the {} before",
        kind.name,
        kind.measured.len(),
        raw / kind.measured.len().max(1),
        raw,
        kind.training.len(),
    );
    match dict {
        Ok(d) => println!("   dictionary: {} B (asked {DICT_BYTES} B)", d.bytes.len()),
        Err(e) => println!("   dictionary: training failed: {e}"),
    }
    let mut rows = Vec::new();
    for (name, codec) in codecs(dict.as_ref().ok()) {
        let framed = compress_all(codec.as_ref(), &kind.measured);
        for (f, input) in framed.iter().zip(&kind.measured) {
            assert_eq!(&codec.decompress(f, kind.max_len).expect("decode"), input);
        }
        let bytes = framed.iter().map(Vec::len).sum();
        let mut out = Vec::new();
        let encode_mbps = timed(raw, || {
            for f in &kind.measured {
                out.clear();
                black_box(codec.compress(black_box(f), &mut out).expect("compress"));
            }
        });
        let decode_mbps = timed(raw, || {
            for f in &framed {
                black_box(
                    codec
                        .decompress(black_box(f), kind.max_len)
                        .expect("decode"),
                );
            }
        });
        rows.push(Row {
            name,
            bytes,
            encode_mbps,
            decode_mbps,
        });
    }
    for (name, d) in streams(dict.as_ref().ok())
        .into_iter()
        .filter(|_| kind.streamed())
    {
        let mut stream = Stream::new(d);
        let framed = stream.framed(&kind.measured);
        let mut decoded = Vec::with_capacity(framed.len());
        stream.decode_all(&framed, kind.max_len, |m| decoded.push(m));
        assert_eq!(decoded, kind.measured, "{name} round trip");
        let bytes = framed.iter().map(Vec::len).sum();
        let mut out = Vec::new();
        let encode_mbps = timed(raw, || {
            stream.encode_all(&kind.measured, &mut out, |f| {
                black_box(f);
            })
        });
        let decode_mbps = timed(raw, || {
            stream.decode_all(&framed, kind.max_len, |m| {
                black_box(m);
            })
        });
        rows.push(Row {
            name,
            bytes,
            encode_mbps,
            decode_mbps,
        });
    }
    // The level of `dict-L`, `zstd-L`, `stream-L` and `stream-L+dict`.
    let level_of = |name: &str| name.split('-').nth(1).and_then(|l| l.chars().next());
    let plain = |level: char| {
        rows.iter()
            .find(|r| r.name.ends_with(level) && r.name.starts_with("zstd"))
            .map(|r| r.bytes)
    };
    println!(
        "   {:<13} {:>10} {:>9} {:>11} {:>12} {:>12}",
        "codec", "bytes", "vs raw", "vs zstd-L", "encode MB/s", "decode MB/s"
    );
    println!(
        "   {:<13} {:>10} {:>8.1}% {:>11} {:>12} {:>12}",
        "(raw)", raw, 100.0, "", "", ""
    );
    for r in &rows {
        let vs_zstd = if r.name.starts_with("dict") || r.name.starts_with("stream") {
            level_of(r.name)
                .and_then(plain)
                .map(|p| format!("{:.1}%", 100.0 * r.bytes as f64 / p as f64))
                .unwrap_or_default()
        } else {
            String::new()
        };
        println!(
            "   {:<13} {:>10} {:>8.1}% {:>11} {:>12.0} {:>12.0}",
            r.name,
            r.bytes,
            100.0 * r.bytes as f64 / raw as f64,
            vs_zstd,
            r.encode_mbps,
            r.decode_mbps
        );
    }
    let tag = if kind.binding {
        "target"
    } else {
        "target, informational for this kind"
    };
    if dict.is_err() {
        println!("   FAIL [{tag}] no dictionary could be trained");
        return false;
    }
    let mut passed = false;
    // Every codec with the dictionary: dict-1, dict-3, and stream-1+dict for delta frames.
    for d in rows
        .iter()
        .filter(|r| r.name.starts_with("dict") || r.name.ends_with("+dict"))
    {
        let (name, level) = (d.name, level_of(d.name).unwrap_or('1'));
        let p = plain(level).unwrap_or(raw);
        let ratio = d.bytes as f64 / raw as f64;
        let vs = d.bytes as f64 / p as f64;
        let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
        println!(
            "   {} [{tag}] {name} ≤ 50 % of uncompressed: {:.1} %",
            verdict(ratio <= TARGET_MAX_RATIO),
            100.0 * ratio
        );
        println!(
            "   {} [{tag}] {name} ≥ 30 % smaller than zstd-{level}: {:.1} % smaller",
            verdict(vs <= TARGET_VS_ZSTD),
            100.0 * (1.0 - vs)
        );
        println!(
            "   {} [{tag}] {name} decode ≥ {TARGET_DECODE_MBPS} MB/s: {:.0} MB/s",
            verdict(d.decode_mbps >= TARGET_DECODE_MBPS),
            d.decode_mbps
        );
        passed |= ratio <= TARGET_MAX_RATIO
            && vs <= TARGET_VS_ZSTD
            && d.decode_mbps >= TARGET_DECODE_MBPS;
    }
    passed
}

fn criterion_benches(c: &mut Criterion, kinds: &[(Recorded, Result<Dictionary, String>)]) {
    for (kind, dict) in kinds {
        let raw = kind.raw_bytes();
        let mut group = c.benchmark_group(format!("compression/{}", kind.slug));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .throughput(Throughput::Bytes(raw as u64));
        for (name, codec) in codecs(dict.as_ref().ok()) {
            let framed = compress_all(codec.as_ref(), &kind.measured);
            let mut out = Vec::new();
            group.bench_function(BenchmarkId::new("encode", name), |b| {
                b.iter(|| {
                    for f in &kind.measured {
                        out.clear();
                        black_box(codec.compress(black_box(f), &mut out).expect("compress"));
                    }
                })
            });
            group.bench_function(BenchmarkId::new("decode", name), |b| {
                b.iter(|| {
                    for f in &framed {
                        black_box(
                            codec
                                .decompress(black_box(f), kind.max_len)
                                .expect("decode"),
                        );
                    }
                })
            });
        }
        for (name, d) in streams(dict.as_ref().ok())
            .into_iter()
            .filter(|_| kind.streamed())
        {
            let mut stream = Stream::new(d);
            let framed = stream.framed(&kind.measured);
            let mut out = Vec::new();
            group.bench_function(BenchmarkId::new("encode", name), |b| {
                b.iter(|| {
                    stream.encode_all(&kind.measured, &mut out, |f| {
                        black_box(f);
                    })
                })
            });
            group.bench_function(BenchmarkId::new("decode", name), |b| {
                b.iter(|| {
                    stream.decode_all(&framed, kind.max_len, |m| {
                        black_box(m);
                    })
                })
            });
        }
        group.finish();
    }
}

fn main() {
    let started = Instant::now();
    let kinds: Vec<(Recorded, Result<Dictionary, String>)> = [
        Recorded::new(
            "snapshot chunks, theta demo scene, 1000 objects, a snapshot every 10 ticks",
            "snapshot",
            false,
            MessageKind::SnapshotChunk.max_len(),
            record_snapshot_chunks(),
        ),
        Recorded::new(
            "delta frames, theta demo scene (smooth motion, the default), 1000 objects, 10 % moving/tick",
            "delta",
            true,
            MessageKind::DeltaFrame.max_len(),
            record_delta_frames(Motion::Smooth),
        ),
        Recorded::new(
            "delta frames, stress scene (theta demo --motion teleport: random floats), 1000 objects, 10 % moving/tick",
            "delta-teleport",
            false,
            MessageKind::DeltaFrame.max_len(),
            record_delta_frames(Motion::Teleport),
        ),
        Recorded::new(
            "state datagrams, theta demo scene (smooth motion), 1000 objects, 0.3 % moving/tick",
            "datagram",
            false,
            MessageKind::Datagram.max_len(),
            record_datagrams(Motion::Smooth),
        ),
        Recorded::new(
            "state datagrams, stress scene (teleport), 1000 objects, 0.3 % moving/tick",
            "datagram-teleport",
            false,
            MessageKind::Datagram.max_len(),
            record_datagrams(Motion::Teleport),
        ),
        Recorded::new(
            "XR pose updates, head + 2 hands, 90 Hz, predicted against acks 4/8 old",
            "pose",
            false,
            MessageKind::Datagram.max_len(),
            record_pose_updates(),
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, k)| {
        let dict = k.dictionary(i as u32 + 1);
        (k, dict)
    })
    .collect();
    println!(
        "compression report (issue 6): recorded and trained in {:.1} s; MB/s are of \
         uncompressed bytes, timed loops of ≥ {} ms; 'vs zstd-L' = dict-L (stream-L) bytes / zstd-L bytes",
        started.elapsed().as_secs_f64(),
        LOOP_TIME.as_millis()
    );
    let mut summary = Vec::new();
    for (kind, dict) in &kinds {
        let passed = report(kind, dict);
        summary.push((kind.slug, kind.binding, passed));
    }
    println!();
    println!(
        "summary (a row passes when dict-1, dict-3 or, for delta frames, stream-1+dict meets \
         all three targets):"
    );
    for (slug, binding, passed) in summary {
        println!(
            "   {} {slug}{}",
            if passed { "PASS" } else { "FAIL" },
            if binding { "" } else { " (informational)" }
        );
    }
    println!();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &kinds);
    c.final_summary();
}
