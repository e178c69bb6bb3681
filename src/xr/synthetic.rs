//! A deterministic synthetic 3-point avatar (head, left hand, right hand) for benchmarks,
//! tests and the demo: 60 s at 90 Hz of idle, looking around, walking, reaching and fast
//! gestures, with tracker noise. Deterministic: the same call gives the same poses.

use super::jitter::slerp;
use super::pose::{Pose, Quat, Vec3};

/// Update rate of [`avatar`], Hz.
pub const RATE_HZ: f64 = 90.0;

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(pub u64);
impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1].
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// Hamilton product of `[x, y, z, w]` quaternions.
pub fn qmul(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[3] * b[0] + a[0] * b[3] + a[1] * b[2] - a[2] * b[1],
        a[3] * b[1] - a[0] * b[2] + a[1] * b[3] + a[2] * b[0],
        a[3] * b[2] + a[0] * b[1] - a[1] * b[0] + a[2] * b[3],
        a[3] * b[3] - a[0] * b[0] - a[1] * b[1] - a[2] * b[2],
    ]
}

/// Rotation by `angle` radians about unit `axis`.
pub fn axis_angle(axis: [f64; 3], angle: f64) -> [f64; 4] {
    let (s, c) = (angle / 2.0).sin_cos();
    [axis[0] * s, axis[1] * s, axis[2] * s, c]
}

/// Yaw (about y), then pitch (about x), then roll (about z).
pub fn ypr(yaw: f64, pitch: f64, roll: f64) -> [f64; 4] {
    qmul(
        qmul(
            axis_angle([0.0, 1.0, 0.0], yaw),
            axis_angle([1.0, 0.0, 0.0], pitch),
        ),
        axis_angle([0.0, 0.0, 1.0], roll),
    )
}

/// Smooth 0..1..0 envelope: 1 inside `[a, b]`, 0.7 s smoothstep ramps outside.
fn env(t: f64, a: f64, b: f64) -> f64 {
    let ramp = 0.7;
    let s = |x: f64| {
        let x = x.clamp(0.0, 1.0);
        x * x * (3.0 - 2.0 * x)
    };
    s((t - a + ramp) / ramp) * s((b + ramp - t) / ramp)
}

/// Activity segments (name, start, end), in seconds.
pub const SEGMENTS: [(&str, f64, f64); 6] = [
    ("idle", 0.0, 8.0),
    ("looking around", 8.0, 20.0),
    ("walking", 20.0, 35.0),
    ("reaching", 35.0, 45.0),
    ("fast gestures", 45.0, 55.0),
    ("mixed", 55.0, 60.0),
];

/// A pose with tracker noise: ±0.2 mm per axis, ±0.005° per rotation-vector component.
fn noisy(rng: &mut Rng, q: [f64; 4], p: [f64; 3]) -> Pose {
    let p = p.map(|c| c + 0.0002 * rng.unit());
    let e = [rng.unit(), rng.unit(), rng.unit()].map(|x| x * 0.5 * 0.01f64.to_radians());
    let q = qmul(q, [e[0], e[1], e[2], 1.0]);
    let n = q.iter().map(|c| c * c).sum::<f64>().sqrt();
    Pose::new(
        Quat::from_array(q.map(|c| (c / n) as f32)),
        Vec3::new(p[0] as f32, p[1] as f32, p[2] as f32),
    )
}

/// `updates` frames at [`RATE_HZ`] of the avatar (60 s = 5400 updates): idle (breathing sway), looking around (yaw ±70°, pitch ±15°), walking
/// (1.2 m/s, head bob, arm swing, slowly turning), reaching (0.35 m hand reaches, 2.4 s
/// cycles), fast gestures (2.5 Hz waves with ±60° wrist roll), mixed; plus tracker noise.
pub fn avatar(updates: usize) -> Vec<[Pose; 3]> {
    let mut rng = Rng(0x5EED_A7A7_0005);
    let mut body = [0.0f64, 0.0, 0.0];
    let mut heading = 0.0f64;
    let dt = 1.0 / RATE_HZ;
    let tau = std::f64::consts::TAU;
    (0..updates)
        .map(|i| {
            let t = i as f64 * dt;
            let idle = env(t, 0.0, 8.0);
            let look = env(t, 8.0, 20.0) + 0.5 * env(t, 55.0, 60.0);
            let walk = env(t, 20.0, 35.0);
            let reach = env(t, 35.0, 45.0);
            let gest = env(t, 45.0, 55.0) + 0.5 * env(t, 55.0, 60.0);
            heading += walk * 0.25 * (t * 0.3).sin() * dt;
            let speed = 1.2 * walk;
            body[0] += speed * heading.sin() * dt;
            body[2] -= speed * heading.cos() * dt;
            let stride = tau * 0.9 * t;
            // Head.
            let breath = 0.003 * (t * 1.6).sin() * (0.3 + idle);
            let yaw_look = look * ((0.6 * t).sin() + 0.25 * (1.7 * t).sin());
            let pitch = look * 0.25 * (0.9 * t).sin()
                + 0.02 * (0.4 * t).sin()
                + reach * 0.3 * (0.8 * t).sin().max(0.0);
            let roll = 0.03 * (0.3 * t).sin() + walk * 0.02 * stride.sin();
            let head_yaw = heading + yaw_look + 0.05 * (0.2 * t).sin();
            let body_yaw = heading + 0.3 * yaw_look;
            let (sy, cy) = body_yaw.sin_cos();
            let rot = |o: [f64; 3]| [cy * o[0] + sy * o[2], o[1], -sy * o[0] + cy * o[2]];
            let head_p = [
                body[0] + walk * 0.015 * stride.sin(),
                1.65 + breath + walk * 0.025 * (2.0 * stride).sin(),
                body[2] + 0.01 * (0.5 * t).sin(),
            ];
            let mut out = [Pose::IDENTITY; 3];
            out[0] = noisy(&mut rng, ypr(head_yaw, pitch, roll), head_p);
            // Hands.
            for (k, side) in [(1usize, -1.0f64), (2, 1.0)] {
                let ph = if k == 1 { 0.0 } else { 1.3 };
                let cyc = (0.5 - 0.5 * (tau * t / 2.4 + ph).cos()) * reach;
                let wave = gest * (tau * 2.5 * t + ph).sin();
                let swing = walk * side * stride.sin();
                let off = [
                    side * (0.22 + 0.15 * cyc) + 0.12 * wave,
                    -0.5 + 0.35 * cyc
                        + 0.1 * gest
                        + 0.06 * wave.abs()
                        + 0.01 * (1.1 * t + ph).sin(),
                    -0.25 - 0.35 * cyc - 0.1 * swing.abs().min(1.0) + 0.2 * swing - 0.15 * gest,
                ];
                let o = rot(off);
                let p = [body[0] + o[0], 1.65 + o[1], body[2] + o[2]];
                let q = ypr(
                    body_yaw + side * 0.3 + 0.4 * wave,
                    -0.5 + 0.6 * cyc + 0.3 * swing,
                    side * 0.2 + 1.05 * wave + 0.05 * (0.7 * t).sin(),
                );
                out[k] = noisy(&mut rng, q, p);
            }
            out
        })
        .collect()
}

/// A recorded track's pose at time `t`: linear / spherical interpolation between the two
/// samples around it (`track` sorted by time), `None` outside the track. Tests and the demo
/// measure rendered remote poses against it.
pub fn pose_at(track: &[(i64, Pose)], t: i64) -> Option<Pose> {
    let j = track.partition_point(|(time, _)| *time < t);
    let (tb, b) = *track.get(j)?;
    let (ta, a) = *track.get(j.checked_sub(1)?)?;
    let u = ((t - ta) as f64 / (tb - ta).max(1) as f64).clamp(0.0, 1.0);
    let l = |x: f32, y: f32| (f64::from(x) + (f64::from(y) - f64::from(x)) * u) as f32;
    let p = Vec3::new(
        l(a.position.x, b.position.x),
        l(a.position.y, b.position.y),
        l(a.position.z, b.position.z),
    );
    Some(Pose::new(slerp(a.orientation, b.orientation, u), p))
}

/// A recorded track's velocities at time `t` (ns), as OpenXR would report them: linear
/// (m/s) and angular (rad/s, axis × rate in the base space, so that
/// `q(t + dt) ≈ exp(ω·dt/2) ⊗ q(t)`), by central differences over `t ± h_ns` on
/// [`pose_at`]. `None` when `t ± h_ns` leaves the track or `h_ns` is not positive.
pub fn velocity_at(track: &[(i64, Pose)], t: i64, h_ns: i64) -> Option<(Vec3, Vec3)> {
    if h_ns <= 0 {
        return None;
    }
    let a = pose_at(track, t.checked_sub(h_ns)?)?;
    let b = pose_at(track, t.checked_add(h_ns)?)?;
    let span = 2.0 * h_ns as f64 / 1e9;
    let d = |x: f32, y: f32| ((f64::from(y) - f64::from(x)) / span) as f32;
    let linear = Vec3::new(
        d(a.position.x, b.position.x),
        d(a.position.y, b.position.y),
        d(a.position.z, b.position.z),
    );
    // The rotation from a to b in the base space: b ⊗ a⁻¹, along the shortest arc.
    let qa = a.orientation.to_array().map(f64::from);
    let qb = b.orientation.to_array().map(f64::from);
    let mut r = qmul(qb, [-qa[0], -qa[1], -qa[2], qa[3]]);
    if r[3] < 0.0 {
        r = r.map(|c| -c);
    }
    let s = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
    let angle = 2.0 * s.atan2(r[3]);
    let scale = if s > 1e-12 { angle / s / span } else { 0.0 };
    let angular = Vec3::new(
        (r[0] * scale) as f32,
        (r[1] * scale) as f32,
        (r[2] * scale) as f32,
    );
    Some((linear, angular))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a track moving at 0.5 m/s along x and turning 1 rad/s about y, the central
    /// difference gives those velocities (within 1e-4 m/s and 1e-4 rad/s).
    #[test]
    fn velocities_of_a_track() {
        let track: Vec<(i64, Pose)> = (0..100)
            .map(|i| {
                let s = i as f64 / 90.0;
                let q = axis_angle([0.0, 1.0, 0.0], s).map(|c| c as f32);
                (
                    (s * 1e9) as i64,
                    Pose::new(Quat::from_array(q), Vec3::new((0.5 * s) as f32, 1.6, 0.0)),
                )
            })
            .collect();
        let (v, w) = velocity_at(&track, 500_000_000, 11_111_111).expect("inside");
        assert!((f64::from(v.x) - 0.5).abs() < 1e-4, "{v:?}");
        assert!(f64::from(v.y).abs() < 1e-4 && f64::from(v.z).abs() < 1e-4);
        assert!((f64::from(w.y) - 1.0).abs() < 1e-4, "{w:?}");
        assert!(f64::from(w.x).abs() < 1e-4 && f64::from(w.z).abs() < 1e-4);
        assert!(velocity_at(&track, 0, 11_111_111).is_none());
        assert!(velocity_at(&track, 500_000_000, 0).is_none());
    }
}
