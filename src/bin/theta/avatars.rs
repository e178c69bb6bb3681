//! The demo's XR avatars: every peer pushes a synthetic 3-point avatar (head and both
//! hands) each tick, and each client renders the host's head, measured against the truth
//! at the render time.

use theta_net::net::session::Session;
use theta_net::xr::synthetic::{avatar, pose_at};
use theta_net::xr::{Device, Pose, PoseFlags, PoseSample};

/// The avatar's devices, in the synthetic frame's order.
const DEVICES: [Device; 3] = [Device::HEAD, Device::LEFT_HAND, Device::RIGHT_HAND];
/// Frames of the synthetic avatar between two peers' starting points.
const PEER_OFFSET: usize = 700;

/// What the host pushed and how the clients rendered it.
pub struct Avatars {
    frames: Vec<[Pose; 3]>,
    /// The host's head: (time on the host's clock, pose) per push.
    host_head: Vec<(i64, Pose)>,
    /// Per client: distance (m) between the rendered host head and the truth.
    errors: Vec<Vec<f64>>,
    /// Per client: renders beyond the newest sample (held or extrapolated).
    extrapolated: Vec<u64>,
}

/// Mean, 95th percentile and maximum of the position errors of one client, in mm.
pub struct ErrorSummary {
    pub renders: usize,
    pub mean_mm: f64,
    pub p95_mm: f64,
    pub max_mm: f64,
    pub extrapolated: u64,
}

impl Avatars {
    pub fn new(clients: usize, ticks: u64) -> Self {
        Avatars {
            frames: avatar(ticks as usize + PEER_OFFSET * (clients + 1)),
            host_head: Vec::with_capacity(ticks as usize),
            errors: vec![Vec::new(); clients],
            extrapolated: vec![0; clients],
        }
    }

    /// Tick `t`: every peer (host first) pushes its avatar's frame at its session time.
    pub fn push<'a>(
        &mut self,
        t: u64,
        host: &'a mut Session,
        clients: impl Iterator<Item = &'a mut Session>,
    ) -> Result<(), String> {
        let sessions = std::iter::once(host).chain(clients);
        for (i, session) in sessions.enumerate() {
            let frame = self.frames[(t as usize + i * PEER_OFFSET) % self.frames.len()];
            let time = session.now();
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
            if i == 0 {
                self.host_head.push((time, frame[0]));
            }
        }
        Ok(())
    }

    /// Each client renders the host's head now and compares it with the truth.
    pub fn observe<'a>(&mut self, clients: impl Iterator<Item = &'a mut Session>) {
        for (i, session) in clients.enumerate() {
            let now = session.now();
            let Some(s) = session.sample_pose(0, Device::HEAD, now) else {
                continue;
            };
            if s.extrapolated {
                self.extrapolated[i] += 1;
            }
            if let Some(truth) = pose_at(&self.host_head, s.render_time) {
                self.errors[i].push(s.pose.position.distance(truth.position));
            }
        }
    }

    /// The error figures of client `i` (0-based), `None` before any render.
    pub fn summary(&self, i: usize) -> Option<ErrorSummary> {
        let mut e = self.errors.get(i)?.clone();
        if e.is_empty() {
            return None;
        }
        e.sort_by(f64::total_cmp);
        let n = e.len();
        Some(ErrorSummary {
            renders: n,
            mean_mm: e.iter().sum::<f64>() / n as f64 * 1e3,
            p95_mm: e[(n * 95 / 100).min(n - 1)] * 1e3,
            max_mm: e[n - 1] * 1e3,
            extrapolated: self.extrapolated[i],
        })
    }
}
