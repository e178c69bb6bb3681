//! The demo's XR avatars: every peer pushes a synthetic 3-point avatar (head and both
//! hands) each tick, and each client renders the host's head for its display time (now),
//! measured against the truth at that display time.
//!
//! The host's avatar plays the synthetic avatar's walk in real time on the host's clock
//! (from [`HOST_START_S`] into the track; 1.2 m/s with a head bob while it lasts, the
//! measured speed is reported) and pushes its velocities, as an OpenXR engine does from
//! `xrLocateSpace`: receivers carry the pose over their playout delay with them. The truth
//! is known for any time, so a render for a display time beyond the newest push is
//! measured too. The clients' avatars are pushed one frame per tick, without velocities.

use theta_net::net::session::Session;
use theta_net::xr::synthetic::{avatar, pose_at, velocity_at, RATE_HZ};
use theta_net::xr::{Device, Pose, PoseFlags, PoseSample};

/// The avatar's devices, in the synthetic frame's order.
const DEVICES: [Device; 3] = [Device::HEAD, Device::LEFT_HAND, Device::RIGHT_HAND];
/// Frames of the synthetic avatar between two peers' starting points.
const PEER_OFFSET: usize = 700;
/// Where the host's avatar starts in the synthetic track, seconds: in its walk (20-35 s,
/// fully walking from 20.7 s).
const HOST_START_S: f64 = 21.0;
/// Length of the synthetic track (it is 60 s long); past it the host holds still.
const TRACK_FRAMES: usize = 5400;

/// What the host pushed and how the clients rendered it.
pub struct Avatars {
    frames: Vec<[Pose; 3]>,
    /// The host's devices over the synthetic track: (ns from the track's start, pose).
    host_tracks: [Vec<(i64, Pose)>; 3],
    /// The host's clock at its first push (track time [`HOST_START_S`]).
    host_t0: Option<i64>,
    /// The host's head: (time on the host's clock, pose) per push.
    host_head: Vec<(i64, Pose)>,
    /// Per client: the host's clock minus the client's (exact: one process, one clock).
    offsets: Vec<Option<i64>>,
    /// Per client, per render: the distances (m) of the host head's pose as shown from
    /// the truth at the display time; of the delayed pose (the render time's, before the
    /// carry) from the truth at the display time; of the delayed pose from the truth at
    /// the render time; and the delay bridged (ns).
    renders: Vec<Vec<Render>>,
    /// Per client: renders beyond the newest sample (held or extrapolated).
    extrapolated: Vec<u64>,
}

#[derive(Clone, Copy)]
struct Render {
    on_time: f64,
    late: f64,
    at_render: f64,
    delay_ns: i64,
}

/// Mean, 95th percentile and maximum of one client's error at the display time, in mm,
/// and the old figures beside them.
pub struct ErrorSummary {
    pub renders: usize,
    pub mean_mm: f64,
    pub p95_mm: f64,
    pub max_mm: f64,
    /// Mean error of the delayed pose (not carried forward) at the display time: what the
    /// late rendering showed.
    pub late_mean_mm: f64,
    /// Mean error of the delayed pose at its own render time (interpolation and
    /// quantisation alone; the figure the demo printed before).
    pub at_render_mean_mm: f64,
    /// Mean playout delay bridged by the carry, ms.
    pub delay_ms: f64,
    pub extrapolated: u64,
}

impl Avatars {
    pub fn new(clients: usize, ticks: u64) -> Self {
        let track = avatar(TRACK_FRAMES);
        let period = 1e9 / RATE_HZ;
        let host_tracks = [0, 1, 2].map(|d| {
            track
                .iter()
                .enumerate()
                .map(|(i, f)| ((i as f64 * period).round() as i64, f[d]))
                .collect()
        });
        Avatars {
            frames: avatar(ticks as usize + PEER_OFFSET * (clients + 1)),
            host_tracks,
            host_t0: None,
            host_head: Vec::with_capacity(ticks as usize),
            offsets: vec![None; clients],
            renders: vec![Vec::new(); clients],
            extrapolated: vec![0; clients],
        }
    }

    /// Track time (ns from the track's start) of host time `t`, clamped to the track.
    fn track_ns(&self, t: i64) -> Option<i64> {
        let end = self.host_tracks[0].last()?.0;
        let start = (HOST_START_S * 1e9) as i64;
        Some((start + (t - self.host_t0?)).clamp(0, end))
    }

    /// The host's device `d` at host time `t`, with its velocities (none at the track's
    /// ends).
    fn host_device(&self, d: usize, t: i64) -> Option<PoseSample> {
        let at = self.track_ns(t)?;
        let track = &self.host_tracks[d];
        let pose = pose_at(track, at)?;
        let velocity = velocity_at(track, at, (1e9 / RATE_HZ) as i64);
        Some(PoseSample {
            pose,
            time: t,
            flags: PoseFlags::ALL,
            linear_velocity: velocity.map(|v| v.0),
            angular_velocity: velocity.map(|v| v.1),
        })
    }

    /// Tick `t`: every peer (host first) pushes its avatar at its session time.
    pub fn push<'a>(
        &mut self,
        t: u64,
        host: &'a mut Session,
        clients: impl Iterator<Item = &'a mut Session>,
    ) -> Result<(), String> {
        let time = host.now();
        self.host_t0.get_or_insert(time);
        for (d, device) in DEVICES.into_iter().enumerate() {
            let sample = self
                .host_device(d, time)
                .ok_or("the host's avatar track is empty")?;
            if d == 0 {
                self.host_head.push((time, sample.pose));
            }
            host.push_pose(device, &sample)
                .map_err(|e| format!("pose push refused: {e}"))?;
        }
        for (i, session) in clients.enumerate() {
            let frame = self.frames[(t as usize + (i + 1) * PEER_OFFSET) % self.frames.len()];
            // The clocks' true offset: the host's clock read on both sides of the client's.
            let before = host.now();
            let time = session.now();
            let after = host.now();
            if let Some(o) = self.offsets.get_mut(i) {
                o.get_or_insert(before + (after - before) / 2 - time);
            }
            for (device, pose) in DEVICES.into_iter().zip(frame) {
                let sample = PoseSample {
                    pose,
                    time,
                    flags: PoseFlags::ALL,
                    linear_velocity: None,
                    angular_velocity: None,
                };
                session
                    .push_pose(device, &sample)
                    .map_err(|e| format!("pose push refused: {e}"))?;
            }
        }
        Ok(())
    }

    /// Each client renders the host's head for display time now and compares it with the
    /// truth at that time (and the delayed pose with the truth at the render time).
    pub fn observe<'a>(&mut self, clients: impl Iterator<Item = &'a mut Session>) {
        for (i, session) in clients.enumerate() {
            let Some(offset) = self.offsets.get(i).copied().flatten() else {
                continue;
            };
            let display = session.now();
            let Some(s) = session.sample_pose(0, Device::HEAD, display) else {
                continue;
            };
            if s.extrapolated {
                self.extrapolated[i] += 1;
            }
            let truth = |t: i64| self.host_device(0, t).map(|x| x.pose.position);
            let (Some(on_time), Some(at_render)) = (truth(display + offset), truth(s.render_time))
            else {
                continue;
            };
            self.renders[i].push(Render {
                on_time: s.pose.position.distance(on_time),
                late: s.delayed.position.distance(on_time),
                at_render: s.delayed.position.distance(at_render),
                delay_ns: s.time - s.render_time,
            });
        }
    }

    /// The host head's mean speed over the pushes, m/s.
    pub fn host_speed(&self) -> Option<f64> {
        let (first, last) = (self.host_head.first()?, self.host_head.last()?);
        let secs = (last.0 - first.0) as f64 / 1e9;
        let path: f64 = self
            .host_head
            .windows(2)
            .map(|w| w[0].1.position.distance(w[1].1.position))
            .sum();
        (secs > 0.0).then(|| path / secs)
    }

    /// The error figures of client `i` (0-based), `None` before any render.
    pub fn summary(&self, i: usize) -> Option<ErrorSummary> {
        let r = self.renders.get(i)?;
        if r.is_empty() {
            return None;
        }
        let n = r.len();
        let mean = |f: fn(&Render) -> f64| r.iter().map(f).sum::<f64>() / n as f64;
        let mut e: Vec<f64> = r.iter().map(|x| x.on_time).collect();
        e.sort_by(f64::total_cmp);
        Some(ErrorSummary {
            renders: n,
            mean_mm: mean(|x| x.on_time) * 1e3,
            p95_mm: e[(n * 95 / 100).min(n - 1)] * 1e3,
            max_mm: e[n - 1] * 1e3,
            late_mean_mm: mean(|x| x.late) * 1e3,
            at_render_mean_mm: mean(|x| x.at_render) * 1e3,
            delay_ms: mean(|x| x.delay_ns as f64) / 1e6,
            extrapolated: self.extrapolated[i],
        })
    }
}
