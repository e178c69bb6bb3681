//! The receiving side of one remote device's pose stream: a [`JitterBuffer`] that orders
//! incoming [`PoseSample`]s by sender time, adapts its playout delay to the measured
//! arrival jitter, and renders a pose for any local display time by interpolation
//! (position lerp, orientation slerp along the shortest arc) or bounded extrapolation at
//! the delayed render time, then carries it forward over the delay with the sender's
//! velocities, so that the pose shown estimates the sender's pose at the display time
//! rather than a delay earlier.
//!
//! Clock mapping: samples carry the sender's `XrTime`; the caller supplies the estimated
//! offset with [`JitterBuffer::set_clock_offset`] so that `local = sender + offset`.
//! Estimating that offset (from round trips) is not this module's concern. A sudden
//! change of the offset moves the render time by the same amount, so callers should
//! change it gradually.
//!
//! Nothing here reads a clock: every time is an argument, so the buffer is deterministic.

use core::time::Duration;

use super::pose::{validate_sample, Pose, PoseFlags, PoseSample, Quat, Vec3};

/// Configuration of a [`JitterBuffer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JitterConfig {
    /// The smallest playout delay the buffer will use.
    pub min_delay: Duration,
    /// The largest playout delay the buffer will use.
    pub max_delay: Duration,
    /// The playout delay before any jitter has been measured.
    pub initial_delay: Duration,
    /// How far beyond the newest sample the pose is extrapolated; past it, it is held.
    pub extrapolation_limit: Duration,
    /// How many samples are kept at most (clamped to `2..=4096`).
    pub capacity: usize,
    /// The target delay is `mean transit + sample interval + jitter_multiplier × jitter`.
    pub jitter_multiplier: f64,
    /// How fast the delay may grow: seconds of delay per second of display time.
    pub grow_rate: f64,
    /// How fast the delay may shrink: seconds of delay per second of display time.
    pub shrink_rate: f64,
}

impl Default for JitterConfig {
    /// 10 ms to 150 ms of delay starting at 50 ms, at most 100 ms of extrapolation,
    /// 64 samples, a target of 3 × the jitter, growing at 50 % and shrinking at 2 % of
    /// the display time's pace.
    fn default() -> Self {
        JitterConfig {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(150),
            initial_delay: Duration::from_millis(50),
            extrapolation_limit: Duration::from_millis(100),
            capacity: 64,
            jitter_multiplier: 3.0,
            grow_rate: 0.5,
            shrink_rate: 0.02,
        }
    }
}

/// What [`JitterBuffer::push`] did with a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored after every sample held (the usual, in-order case).
    Appended,
    /// Stored between held samples (it arrived out of order).
    Reordered,
    /// Dropped: a sample with the same sender time is already held.
    Duplicate,
    /// Dropped: its time is not after the latest render time, or older than every held
    /// sample of a full buffer; storing it would change poses already shown.
    TooLate,
    /// Dropped: a NaN or infinite component, or a zero quaternion.
    Invalid,
}

impl PushOutcome {
    /// Whether the sample was stored.
    pub fn is_stored(self) -> bool {
        matches!(self, PushOutcome::Appended | PushOutcome::Reordered)
    }
}

/// A pose rendered by [`JitterBuffer::sample`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampled {
    /// The pose to show at the display time asked for (unit orientation): the delayed
    /// pose carried forward over the delay with the sender's velocities.
    pub pose: Pose,
    /// The sender's flags for the rendered time: those of the latest held sample at or
    /// before it (of the oldest when the render time precedes every sample).
    pub flags: PoseFlags,
    /// Whether the render time is beyond the newest sample (extrapolated or held).
    pub extrapolated: bool,
    /// The render time in sender nanoseconds: display time − clock offset − delay.
    pub render_time: i64,
    /// The sender time `pose` stands for: display time − clock offset when the samples
    /// carry velocities and are not stalled; at most the newest sample's time +
    /// `extrapolation_limit`; the render time (within the held samples) without velocities.
    pub time: i64,
    /// The pose at the render time, before it is carried forward (interpolated, or
    /// extrapolated within the limit): late by the delay, but never predicted past it.
    pub delayed: Pose,
}

/// Receives one remote device's pose samples and renders them with an adaptive delay.
#[derive(Clone, Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    /// Held samples, strictly increasing in `time`.
    samples: Vec<PoseSample>,
    clock_offset_ns: i64,
    /// Current playout delay in nanoseconds.
    delay_ns: f64,
    /// RFC 3550-style smoothed |Δtransit| in nanoseconds.
    jitter_ns: f64,
    /// Smoothed transit (arrival − mapped send time) in nanoseconds.
    mean_transit_ns: Option<f64>,
    last_transit_ns: Option<f64>,
    /// Smoothed interval between consecutive newest samples, in nanoseconds.
    interval_ns: Option<f64>,
    last_display_ns: Option<i64>,
    /// The latest render time used so far (sender nanoseconds).
    render_high_water: Option<i64>,
}

const NS_PER_S: f64 = 1e9;
const EWMA_GAIN: f64 = 1.0 / 16.0;

fn dur_ns(d: Duration) -> f64 {
    d.as_secs_f64() * NS_PER_S
}

/// Seconds to a `Duration`, saturating (NaN or negative → zero, too large → `MAX`).
fn secs_to_duration(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(if secs > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn rate(r: f64, default: f64) -> f64 {
    if r.is_finite() && r >= 0.0 {
        r.min(1.0)
    } else {
        default
    }
}

impl JitterBuffer {
    /// A new, empty buffer. Inconsistent settings are repaired rather than rejected:
    /// `max_delay` is raised to `min_delay`, `initial_delay` clamped between them, the
    /// capacity clamped to `2..=4096`, rates to `[0, 1]`.
    pub fn new(config: JitterConfig) -> Self {
        let d = JitterConfig::default();
        let mut c = config;
        if c.max_delay < c.min_delay {
            c.max_delay = c.min_delay;
        }
        c.initial_delay = c.initial_delay.clamp(c.min_delay, c.max_delay);
        c.capacity = c.capacity.clamp(2, 4096);
        if !(c.jitter_multiplier.is_finite() && c.jitter_multiplier >= 0.0) {
            c.jitter_multiplier = d.jitter_multiplier;
        }
        c.grow_rate = rate(c.grow_rate, d.grow_rate);
        c.shrink_rate = rate(c.shrink_rate, d.shrink_rate);
        JitterBuffer {
            config: c,
            samples: Vec::with_capacity(c.capacity),
            clock_offset_ns: 0,
            delay_ns: dur_ns(c.initial_delay),
            jitter_ns: 0.0,
            mean_transit_ns: None,
            last_transit_ns: None,
            interval_ns: None,
            last_display_ns: None,
            render_high_water: None,
        }
    }

    /// The configuration in use (after repair by [`JitterBuffer::new`]).
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Sets the estimated clock offset: `local time = sender time + offset` (nanoseconds).
    pub fn set_clock_offset(&mut self, clock_offset_ns: i64) {
        self.clock_offset_ns = clock_offset_ns;
    }

    /// The clock offset in use (nanoseconds).
    pub fn clock_offset(&self) -> i64 {
        self.clock_offset_ns
    }

    /// The current playout delay.
    pub fn playout_delay(&self) -> Duration {
        secs_to_duration((self.delay_ns / NS_PER_S).max(0.0))
    }

    /// The delay the buffer is moving toward: `mean transit + sample interval +
    /// jitter_multiplier × jitter`, clamped to `[min_delay, max_delay]`.
    pub fn target_delay(&self) -> Duration {
        secs_to_duration((self.target_delay_ns() / NS_PER_S).max(0.0))
    }

    /// The measured arrival jitter (RFC 3550-style smoothed |Δarrival − Δsend|).
    pub fn jitter(&self) -> Duration {
        secs_to_duration((self.jitter_ns / NS_PER_S).max(0.0))
    }

    /// How many samples are held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The newest held sample.
    pub fn newest(&self) -> Option<&PoseSample> {
        self.samples.last()
    }

    fn target_delay_ns(&self) -> f64 {
        let min = dur_ns(self.config.min_delay);
        let max = dur_ns(self.config.max_delay);
        match self.mean_transit_ns {
            None => dur_ns(self.config.initial_delay),
            Some(m) => {
                let t = m.max(0.0)
                    + self.interval_ns.unwrap_or(0.0)
                    + self.config.jitter_multiplier * self.jitter_ns;
                if t.is_finite() {
                    t.clamp(min, max)
                } else {
                    max
                }
            }
        }
    }

    /// Receives a sample that arrived at local time `arrival_local_ns`. Updates the
    /// jitter estimate (for every valid, non-duplicate sample, late ones included) and
    /// stores the sample in sender-time order, evicting the oldest when full.
    pub fn push(&mut self, sample: PoseSample, arrival_local_ns: i64) -> PushOutcome {
        let Ok(sample) = validate_sample(&sample) else {
            return PushOutcome::Invalid;
        };
        let pos = self.samples.partition_point(|s| s.time < sample.time);
        if self.samples.get(pos).is_some_and(|s| s.time == sample.time) {
            return PushOutcome::Duplicate;
        }
        self.measure(&sample, arrival_local_ns);
        if self.render_high_water.is_some_and(|hw| sample.time <= hw) {
            return PushOutcome::TooLate;
        }
        let at = if self.samples.len() >= self.config.capacity {
            if pos == 0 {
                return PushOutcome::TooLate;
            }
            self.samples.remove(0);
            pos - 1
        } else {
            pos
        };
        self.samples.insert(at, sample);
        self.fill_invalid(at);
        if self.samples.last().is_some_and(|s| s.time == sample.time) {
            PushOutcome::Appended
        } else {
            PushOutcome::Reordered
        }
    }

    fn measure(&mut self, sample: &PoseSample, arrival_local_ns: i64) {
        let mapped = i128::from(sample.time) + i128::from(self.clock_offset_ns);
        let transit = (i128::from(arrival_local_ns) - mapped) as f64;
        if let Some(prev) = self.last_transit_ns {
            self.jitter_ns += ((transit - prev).abs() - self.jitter_ns) * EWMA_GAIN;
        }
        self.last_transit_ns = Some(transit);
        self.mean_transit_ns = Some(match self.mean_transit_ns {
            None => transit,
            Some(m) => m + (transit - m) * EWMA_GAIN,
        });
        if let Some(newest) = self.samples.last() {
            if sample.time > newest.time {
                let gap = (i128::from(sample.time) - i128::from(newest.time)) as f64;
                self.interval_ns = Some(match self.interval_ns {
                    None => gap,
                    Some(i) => i + (gap - i) * EWMA_GAIN,
                });
            }
        }
        if !(self.jitter_ns.is_finite() && self.mean_transit_ns.is_some_and(f64::is_finite)) {
            // Absurd times (e.g. near i64::MIN/MAX): forget the statistics.
            self.jitter_ns = 0.0;
            self.mean_transit_ns = None;
            self.last_transit_ns = None;
        }
        if !self.interval_ns.is_some_and(f64::is_finite) {
            self.interval_ns = None;
        }
    }

    /// Renders the pose for local display time `local_display_time_ns`: the best estimate
    /// of the sender's pose at that display time, `display − clock offset` in sender time.
    ///
    /// Two steps. First the *delayed* pose at the render time `display − clock offset −
    /// playout delay`: between two samples it is interpolated; after the newest it is
    /// extrapolated with the sample's velocities (held without them) for at most
    /// `extrapolation_limit`, then held; before the oldest, the oldest is held. Then that
    /// pose is carried forward over the delay with the sender's velocities at that point
    /// (interpolated between the two samples), so it stands for the display time rather
    /// than the render time. The whole carry beyond the newest sample stays within
    /// `extrapolation_limit`: on a stall the pose moves on with the newest velocities for
    /// that long, then holds. A teleport travels as the sender's poses do (crossed within
    /// one sample interval at the render time); it is never extrapolated from, since only
    /// the sent velocities carry a pose forward. Samples without velocities are not
    /// carried: their pose stands for the render time, as [`Sampled::time`] says. `None`
    /// while no sample is held.
    ///
    /// Each call also moves the playout delay toward [`JitterBuffer::target_delay`], by
    /// at most `grow_rate` (or `shrink_rate`) × the display time elapsed since the
    /// previous call, so the render time never jumps.
    pub fn sample(&mut self, local_display_time_ns: i64) -> Option<Sampled> {
        self.adapt_delay(local_display_time_ns);
        let target = i128::from(local_display_time_ns) - i128::from(self.clock_offset_ns);
        let render = clamp_i64(target - self.delay_ns.round() as i128);
        if !self.samples.is_empty() {
            self.render_high_water = Some(self.render_high_water.map_or(render, |h| h.max(render)));
            self.prune();
        }
        let first = *self.samples.first()?;
        let last = *self.samples.last()?;
        let limit_ns = dur_ns(self.config.extrapolation_limit).min(i64::MAX as f64) as i128;
        // The latest sender time any estimate may stand for.
        let horizon = i128::from(last.time) + limit_ns;
        // The delayed pose, the time it stands for (the render time, within the samples
        // and the horizon) and the velocities there.
        let (delayed, flags, extrapolated, base, velocity) = if render <= first.time {
            (
                first.pose,
                first.flags,
                false,
                i128::from(first.time),
                first,
            )
        } else if render > last.time {
            let base = i128::from(render).min(horizon);
            let dt_ns = (base - i128::from(last.time)) as f64;
            (
                extrapolate(&last, dt_ns / NS_PER_S),
                last.flags,
                true,
                base,
                last,
            )
        } else {
            // first.time < render <= last.time: a bracketing pair exists.
            let j = self.samples.partition_point(|s| s.time < render);
            let b = *self.samples.get(j)?;
            let a = *self.samples.get(j.checked_sub(1)?)?;
            if b.time == render {
                (b.pose, b.flags, false, i128::from(render), b)
            } else {
                let span = (i128::from(b.time) - i128::from(a.time)) as f64;
                let t = ((i128::from(render) - i128::from(a.time)) as f64 / span).clamp(0.0, 1.0);
                let v = PoseSample {
                    linear_velocity: lerp_velocity(a.linear_velocity, b.linear_velocity, t),
                    angular_velocity: lerp_velocity(a.angular_velocity, b.angular_velocity, t),
                    ..a
                };
                (
                    interpolate(&a, &b, t),
                    a.flags,
                    false,
                    i128::from(render),
                    v,
                )
            }
        };
        let carried = velocity.linear_velocity.is_some() || velocity.angular_velocity.is_some();
        let until = if carried { target.min(horizon) } else { base };
        let lead_ns = (until - base).max(0);
        let pose = extrapolate(
            &PoseSample {
                pose: delayed,
                flags,
                ..velocity
            },
            lead_ns as f64 / NS_PER_S,
        );
        Some(Sampled {
            pose,
            flags,
            extrapolated,
            render_time: render,
            time: clamp_i64(base + lead_ns),
            delayed,
        })
    }

    fn adapt_delay(&mut self, display: i64) {
        let min = dur_ns(self.config.min_delay);
        let max = dur_ns(self.config.max_delay);
        if self.last_display_ns.is_none() {
            // Nothing was shown yet: start at the target rather than creep toward it.
            self.delay_ns = self.target_delay_ns();
        }
        if let Some(prev) = self.last_display_ns {
            if display > prev {
                let dt = (i128::from(display) - i128::from(prev)) as f64;
                let diff = self.target_delay_ns() - self.delay_ns;
                let step = if diff > 0.0 {
                    diff.min(self.config.grow_rate * dt)
                } else {
                    diff.max(-self.config.shrink_rate * dt)
                };
                if step.is_finite() {
                    self.delay_ns += step;
                }
            }
        }
        self.delay_ns = self.delay_ns.clamp(min, max);
        self.last_display_ns = Some(self.last_display_ns.map_or(display, |p| p.max(display)));
    }

    /// Replaces, from index `from` on, each component the sender flagged invalid by the
    /// previous sample's (itself filled) value, so no undefined value is ever shown or
    /// interpolated toward: the last valid value is held instead.
    fn fill_invalid(&mut self, from: usize) {
        for i in from.max(1)..self.samples.len() {
            let Some(prev) = self.samples.get(i - 1).map(|s| s.pose) else {
                continue;
            };
            if let Some(s) = self.samples.get_mut(i) {
                if !s.flags.contains(PoseFlags::ORIENTATION_VALID) {
                    s.pose.orientation = prev.orientation;
                }
                if !s.flags.contains(PoseFlags::POSITION_VALID) {
                    s.pose.position = prev.position;
                }
            }
        }
    }

    /// Drops samples no longer needed: all but the latest at or before the high-water
    /// render time, and everything beyond.
    fn prune(&mut self) {
        if let Some(hw) = self.render_high_water {
            let at_or_before = self.samples.partition_point(|s| s.time <= hw);
            if at_or_before > 1 {
                self.samples.drain(..at_or_before - 1);
            }
        }
    }
}

fn lerp(a: Vec3, b: Vec3, t: f64) -> Vec3 {
    let l = |x: f32, y: f32| (f64::from(x) + (f64::from(y) - f64::from(x)) * t) as f32;
    Vec3::new(l(a.x, b.x), l(a.y, b.y), l(a.z, b.z))
}

fn to_f64(q: Quat) -> [f64; 4] {
    q.to_array().map(f64::from)
}

fn from_f64(q: [f64; 4], fallback: Quat) -> Quat {
    let n = q.iter().map(|c| c * c).sum::<f64>().sqrt();
    if n.is_finite() && n > 1e-12 {
        Quat::from_array(q.map(|c| (c / n) as f32))
    } else {
        fallback
    }
}

/// Spherical interpolation along the shortest arc (`b` is negated when `a·b < 0`).
pub fn slerp(a: Quat, b: Quat, t: f64) -> Quat {
    let qa = to_f64(a);
    let mut qb = to_f64(b);
    let mut dot: f64 = qa.iter().zip(qb.iter()).map(|(x, y)| x * y).sum();
    if dot < 0.0 {
        qb = qb.map(|c| -c);
        dot = -dot;
    }
    let (wa, wb) = if dot > 0.9995 {
        (1.0 - t, t)
    } else {
        let theta = dot.min(1.0).acos();
        let s = theta.sin();
        (((1.0 - t) * theta).sin() / s, (t * theta).sin() / s)
    };
    let mut out = [0.0; 4];
    for (o, (x, y)) in out.iter_mut().zip(qa.iter().zip(qb.iter())) {
        *o = wa * x + wb * y;
    }
    from_f64(out, a)
}

/// The velocity between two samples' velocities: linear when both carry one, else
/// whichever does.
fn lerp_velocity(a: Option<Vec3>, b: Option<Vec3>, t: f64) -> Option<Vec3> {
    match (a, b) {
        (Some(a), Some(b)) => Some(lerp(a, b, t)),
        (a, b) => a.or(b),
    }
}

/// Interpolates held samples (whose invalid components were already replaced by the
/// last valid value, see `fill_invalid`).
fn interpolate(a: &PoseSample, b: &PoseSample, t: f64) -> Pose {
    Pose::new(
        slerp(a.pose.orientation, b.pose.orientation, t),
        lerp(a.pose.position, b.pose.position, t),
    )
}

/// Moves `s` forward by `dt` seconds with its velocities (angular velocity in the base
/// space, as OpenXR reports it: `q' = exp(ω·dt/2) ⊗ q`).
fn extrapolate(s: &PoseSample, dt: f64) -> Pose {
    let mut pose = s.pose;
    if dt <= 0.0 {
        return pose;
    }
    if let Some(v) = s
        .linear_velocity
        .filter(|_| s.flags.contains(PoseFlags::POSITION_VALID))
    {
        let p = s.pose.position;
        let m = |x: f32, vx: f32| (f64::from(x) + f64::from(vx) * dt) as f32;
        let moved = Vec3::new(m(p.x, v.x), m(p.y, v.y), m(p.z, v.z));
        if moved.is_finite() {
            pose.position = moved;
        }
    }
    if let Some(w) = s
        .angular_velocity
        .filter(|_| s.flags.contains(PoseFlags::ORIENTATION_VALID))
    {
        let w = [f64::from(w.x), f64::from(w.y), f64::from(w.z)];
        let rate = w.iter().map(|c| c * c).sum::<f64>().sqrt();
        let angle = rate * dt;
        if rate > 1e-12 && angle.is_finite() {
            let (sn, cs) = (angle / 2.0).sin_cos();
            let d = [w[0] / rate * sn, w[1] / rate * sn, w[2] / rate * sn, cs];
            let q = to_f64(s.pose.orientation);
            // Hamilton product d ⊗ q, arrays as [x, y, z, w].
            let out = [
                d[3] * q[0] + d[0] * q[3] + d[1] * q[2] - d[2] * q[1],
                d[3] * q[1] - d[0] * q[2] + d[1] * q[3] + d[2] * q[0],
                d[3] * q[2] + d[0] * q[1] - d[1] * q[0] + d[2] * q[3],
                d[3] * q[3] - d[0] * q[0] - d[1] * q[1] - d[2] * q[2],
            ];
            pose.orientation = from_f64(out, s.pose.orientation);
        }
    }
    pose
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::f64::consts::PI;

    /// 90 Hz sender period in nanoseconds.
    const P: i64 = 11_111_111;
    const T0: i64 = 1_000_000_000;
    const MS: i64 = 1_000_000;
    /// Circular head motion: radius (m) and angular rate (rad/s); speed R·W ≈ 0.94 m/s.
    const R: f64 = 0.3;
    const W: f64 = PI;

    /// Deterministic splitmix64.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn yaw(angle: f64) -> Quat {
        Quat::new(
            0.0,
            (angle / 2.0).sin() as f32,
            0.0,
            (angle / 2.0).cos() as f32,
        )
    }

    /// The true circular motion at sender time `t` (ns), with its velocities.
    fn truth(t: i64) -> PoseSample {
        let s = (t - T0) as f64 / 1e9;
        let a = W * s;
        PoseSample {
            pose: Pose::new(
                yaw(a),
                Vec3::new((R * a.cos()) as f32, 1.6, (R * a.sin()) as f32),
            ),
            time: t,
            flags: PoseFlags::ALL,
            linear_velocity: Some(Vec3::new(
                (-R * W * a.sin()) as f32,
                0.0,
                (R * W * a.cos()) as f32,
            )),
            angular_velocity: Some(Vec3::new(0.0, W as f32, 0.0)),
        }
    }

    fn dist(a: Vec3, b: Vec3) -> f64 {
        let d = |x: f32, y: f32| f64::from(x) - f64::from(y);
        (d(a.x, b.x).powi(2) + d(a.y, b.y).powi(2) + d(a.z, b.z).powi(2)).sqrt()
    }

    fn fixed(delay_ms: u64) -> JitterConfig {
        JitterConfig {
            min_delay: Duration::from_millis(delay_ms),
            max_delay: Duration::from_millis(delay_ms),
            initial_delay: Duration::from_millis(delay_ms),
            ..JitterConfig::default()
        }
    }

    fn plain(t: i64, p: Vec3, q: Quat) -> PoseSample {
        PoseSample {
            pose: Pose::new(q, p),
            time: t,
            flags: PoseFlags::ALL,
            linear_velocity: None,
            angular_velocity: None,
        }
    }

    /// Continuity: circular motion at 90 Hz, renders at random steps (some landing exactly
    /// on sample times) and past the end of the stream. Bound asserted: no step between
    /// consecutive renders moves more than the arc between two samples, R·W·P
    /// (≈ 10.5 mm), + 1e-5 m, nor turns more than W·P (2°) + 1e-3°.
    #[test]
    fn rendering_is_continuous() {
        let offset = 5_000_000_000;
        let delay = 50 * MS;
        let mut jb = JitterBuffer::new(fixed(50));
        jb.set_clock_offset(offset);
        let mut rng = Rng(7);
        let n = 180;
        let mut next = 0;
        let arc = R * W * P as f64 / 1e9;
        let turn = (W * P as f64 / 1e9).to_degrees();
        let mut prev: Option<Sampled> = None;
        let mut display = T0 + offset + 20 * MS;
        let end = T0 + n * P + offset + delay + 300 * MS;
        let (mut exact_hits, mut extrapolated, mut steps) = (0, 0, 0);
        while display < end {
            // Every sample arrives 20 ms after it was sent (local time).
            while next < n && T0 + next * P + offset + 20 * MS <= display {
                let o = jb.push(truth(T0 + next * P), T0 + next * P + offset + 20 * MS);
                assert!(o.is_stored(), "{o:?}");
                next += 1;
            }
            let s = jb.sample(display).expect("has samples");
            assert_eq!(s.render_time, display - offset - delay);
            if (s.render_time - T0) % P == 0 && s.render_time < T0 + n * P {
                exact_hits += 1;
                let t = truth(s.render_time).pose;
                assert!(dist(s.delayed.position, t.position) < 1e-6);
                assert!(s.delayed.orientation.angle_deg(t.orientation) < 1e-3);
            }
            extrapolated += usize::from(s.extrapolated);
            if let Some(p) = prev {
                let jump = dist(p.delayed.position, s.delayed.position);
                assert!(jump <= arc + 1e-5, "jump {jump} > {arc} at {display}");
                let ang = p.delayed.orientation.angle_deg(s.delayed.orientation);
                assert!(ang <= turn + 1e-3, "turn {ang} > {turn}");
            }
            prev = Some(s);
            steps += 1;
            // Step by 1..=100 % of a period; every 7th render lands on the next sample.
            let r = display - offset - delay;
            let to_next = P - (r - T0).rem_euclid(P);
            let step = if steps % 7 == 0 {
                to_next
            } else {
                1 + (rng.unit() * P as f64) as i64
            };
            display += step.min(P);
        }
        assert!(exact_hits > 10, "{exact_hits}");
        assert!(extrapolated > 10, "{extrapolated}");
        // Held after the limit: the last render sits exactly 100 ms past the newest.
        let last = prev.expect("rendered");
        let held = extrapolate(&truth(T0 + (n - 1) * P), 0.1);
        assert!(dist(last.delayed.position, held.position) < 1e-6);
    }

    /// Linear motion and a constant-axis rotation are reproduced exactly between samples
    /// (position ≤ 1e-5 m, angle ≤ 1e-3°).
    #[test]
    fn interpolation_is_exact_on_linear_motion() {
        let mut jb = JitterBuffer::new(fixed(10));
        let lin = |t: i64| {
            let s = t as f64 / 1e9;
            plain(
                t,
                Vec3::new((0.5 + 2.0 * s) as f32, (-s) as f32, 0.25),
                yaw(1.5 * s),
            )
        };
        for i in 0..4 {
            assert!(jb.push(lin(i * 10 * MS), 0).is_stored());
        }
        for k in 0..=30 {
            let r = k * MS;
            let s = jb.sample(r + 10 * MS).expect("samples");
            assert_eq!(s.render_time, r);
            assert!(!s.extrapolated);
            let t = lin(r).pose;
            assert!(dist(s.pose.position, t.position) < 1e-5, "{k}");
            assert!(s.pose.orientation.angle_deg(t.orientation) < 1e-3, "{k}");
        }
    }

    /// Slerp takes the shortest arc when the second sample is sign-flipped: halfway
    /// between identity and −(90° yaw) is 45° yaw (within 1e-3°), not 135°.
    #[test]
    fn slerp_takes_the_shortest_arc() {
        let mut jb = JitterBuffer::new(fixed(10));
        let q90 = yaw(PI / 2.0);
        let flipped = Quat::from_array(q90.to_array().map(|c| -c));
        jb.push(plain(0, Vec3::ZERO, Quat::IDENTITY), 0);
        jb.push(plain(10 * MS, Vec3::ZERO, flipped), 0);
        for k in 0..=10 {
            let s = jb.sample(k * MS + 10 * MS).expect("samples");
            let expect = yaw(PI / 2.0 * k as f64 / 10.0);
            assert!(s.pose.orientation.angle_deg(expect) < 1e-3, "{k}");
            assert!((s.pose.orientation.norm() - 1.0).abs() < 1e-6);
        }
        let half = slerp(Quat::IDENTITY, flipped, 0.5);
        assert!((Quat::IDENTITY.angle_deg(half) - 45.0).abs() < 1e-3);
    }

    /// Extrapolation follows the sent velocities up to the 100 ms limit (position within
    /// 1e-5 m, angle within 1e-3°), then holds; without velocities the newest is held.
    /// The pose shown (carried to the display time, 10 ms after the render time) obeys
    /// the same limit: it reaches the newest sample + 100 ms 10 ms sooner, then holds
    /// there (a stall).
    #[test]
    fn extrapolation_is_bounded_then_holds() {
        let mut jb = JitterBuffer::new(fixed(10));
        let mut s0 = plain(0, Vec3::new(1.0, 0.0, 0.0), Quat::IDENTITY);
        s0.linear_velocity = Some(Vec3::new(1.0, 0.0, -2.0));
        s0.angular_velocity = Some(Vec3::new(0.0, 1.0, 0.0));
        jb.push(s0, 0);
        let at = |eff: f64| Vec3::new((1.0 + eff) as f32, 0.0, (-2.0 * eff) as f32);
        for (ms, eff, shown) in [
            (0, 0.0, 0.01),
            (50, 0.05, 0.06),
            (90, 0.09, 0.1),
            (100, 0.1, 0.1),
            (150, 0.1, 0.1),
            (5000, 0.1, 0.1),
        ] {
            let s = jb.sample((ms + 10) * MS).expect("sample");
            assert_eq!(s.extrapolated, ms > 0);
            assert!(dist(s.delayed.position, at(eff)) < 1e-5, "{ms}");
            assert!(s.delayed.orientation.angle_deg(yaw(eff)) < 1e-3, "{ms}");
            assert!(dist(s.pose.position, at(shown)) < 1e-5, "{ms}");
            assert!(s.pose.orientation.angle_deg(yaw(shown)) < 1e-3, "{ms}");
            assert_eq!(s.time, (shown * 1e3).round() as i64 * MS, "{ms}");
        }
        let mut jb = JitterBuffer::new(fixed(10));
        let s1 = plain(0, Vec3::new(1.0, 2.0, 3.0), yaw(0.3));
        jb.push(s1, 0);
        let s = jb.sample(60 * MS).expect("sample");
        assert!(s.extrapolated);
        assert_eq!(s.pose, s1.pose);
        // Without velocities nothing is carried: the pose stands for the newest sample's
        // time (the render time is clamped to the horizon).
        assert_eq!(s.time, 50 * MS);
    }

    /// The pose shown stands for the display time: with a 50 ms delay and a 5 s clock
    /// offset, linear motion (sent velocities) is reproduced at `display − offset` within
    /// 1e-5 m and 1e-3°, whether the render time falls between samples or beyond the
    /// newest, while the delayed pose is the truth 50 ms earlier.
    #[test]
    fn the_pose_is_carried_to_the_display_time() {
        let offset = 5_000_000_000;
        let mut jb = JitterBuffer::new(fixed(50));
        jb.set_clock_offset(offset);
        let lin = |t: i64| {
            let s = t as f64 / 1e9;
            let mut x = plain(
                t,
                Vec3::new((0.5 * s) as f32, 1.6, (-0.2 * s) as f32),
                yaw(0.8 * s),
            );
            x.linear_velocity = Some(Vec3::new(0.5, 0.0, -0.2));
            x.angular_velocity = Some(Vec3::new(0.0, 0.8, 0.0));
            x
        };
        for i in 0..10 {
            assert!(jb.push(lin(i * P), 0).is_stored());
        }
        // Render times from 0 to 30 ms beyond the newest (at 9 P).
        for k in 0..=130 {
            let display = offset + 50 * MS + k * MS;
            let s = jb.sample(display).expect("samples");
            assert_eq!(s.time, display - offset, "{k}");
            assert_eq!(s.render_time, display - offset - 50 * MS);
            let on_time = lin(s.time).pose;
            assert!(dist(s.pose.position, on_time.position) < 1e-5, "{k}");
            assert!(
                s.pose.orientation.angle_deg(on_time.orientation) < 1e-3,
                "{k}"
            );
            let late = lin(s.render_time).pose;
            assert!(dist(s.delayed.position, late.position) < 1e-5, "{k}");
            // The late pose is 50 ms × 0.54 m/s ≈ 27 mm behind.
            assert!(dist(s.delayed.position, on_time.position) > 0.025, "{k}");
        }
    }

    /// A teleport (the position jumps 5 m between two samples whose velocities are a
    /// walk's 0.5 m/s) is shown as the sender's poses show it: never past the new place
    /// by more than the walk carries in the delay, never before the old one.
    #[test]
    fn a_teleport_is_not_extrapolated() {
        let mut jb = JitterBuffer::new(fixed(30));
        let walk = |i: i64| {
            let t = i * P;
            let jump = if i >= 20 { 5.0 } else { 0.0 };
            let mut x = plain(
                t,
                Vec3::new((jump + 0.5 * t as f64 / 1e9) as f32, 1.6, 0.0),
                Quat::IDENTITY,
            );
            x.linear_velocity = Some(Vec3::new(0.5, 0.0, 0.0));
            x
        };
        for i in 0..40 {
            jb.push(walk(i), 0);
        }
        let mut max_x = f64::MIN;
        for k in 0..400 {
            let display = 30 * MS + k * MS;
            let s = jb.sample(display).expect("samples");
            let x = f64::from(s.pose.position.x);
            let walked = 0.5 * display as f64 / 1e9;
            assert!(x >= walked - 1e-4 - 0.5 * 0.03, "{k}: {x}");
            assert!(x <= walked + 5.0 + 1e-4, "{k}: {x} overshoots");
            max_x = max_x.max(x);
        }
        assert!(max_x > 5.0, "the teleport shows ({max_x})");
    }

    /// Out-of-order arrivals are inserted in order; duplicates, samples at or before a
    /// rendered time, samples older than a full buffer and invalid samples are dropped.
    #[test]
    fn out_of_order_duplicates_and_late_samples() {
        let mut jb = JitterBuffer::new(fixed(10));
        let s = |i: i64| plain(i * 10 * MS, Vec3::new(i as f32, 0.0, 0.0), Quat::IDENTITY);
        assert_eq!(jb.push(s(0), 0), PushOutcome::Appended);
        assert_eq!(jb.push(s(2), 0), PushOutcome::Appended);
        assert_eq!(jb.push(s(1), 0), PushOutcome::Reordered);
        assert_eq!(jb.push(s(1), 0), PushOutcome::Duplicate);
        assert_eq!(jb.push(s(3), 0), PushOutcome::Appended);
        assert_eq!(jb.len(), 4);
        // Render at 15 ms: halfway between samples 1 and 2.
        let r = jb.sample(25 * MS).expect("sample");
        assert!(dist(r.pose.position, Vec3::new(1.5, 0.0, 0.0)) < 1e-6);
        // Sample 0 is no longer needed and is pruned; a new sample at 12 ms is too late.
        assert_eq!(jb.len(), 3);
        let late = plain(12 * MS, Vec3::ZERO, Quat::IDENTITY);
        assert_eq!(jb.push(late, 0), PushOutcome::TooLate);
        let mut bad = s(9);
        bad.pose.position.x = f32::NAN;
        assert_eq!(jb.push(bad, 0), PushOutcome::Invalid);
        // Capacity 4: the oldest is evicted; older than a full buffer is too late.
        let mut jb = JitterBuffer::new(JitterConfig {
            capacity: 4,
            ..fixed(10)
        });
        for i in [5, 1, 3, 2, 4] {
            assert!(jb.push(s(i), 0).is_stored());
        }
        assert_eq!(jb.len(), 4);
        assert_eq!(jb.push(s(0), 0), PushOutcome::TooLate);
        let times: Vec<i64> = jb.samples.iter().map(|x| x.time / (10 * MS)).collect();
        assert_eq!(times, vec![2, 3, 4, 5]);
    }

    /// Drives a 90 Hz stream (20 ms latency + uniform jitter `jitter_ms(i)`, loss
    /// `loss`) with 90 Hz renders; returns per-render (delay ns, sample, gap ns), the gap
    /// being the span of the bracketing samples used, or how far the render time lies
    /// beyond the newest (before the oldest) sample.
    fn simulate(
        jb: &mut JitterBuffer,
        n: i64,
        loss: f64,
        jitter_ms: impl Fn(i64) -> f64,
        rng: &mut Rng,
        stored: &mut Vec<i64>,
    ) -> Vec<(f64, Sampled, i64)> {
        let mut arrivals: Vec<(i64, i64)> = (0..n)
            .filter_map(|i| {
                let keep = rng.unit() >= loss;
                let t = T0 + i * P;
                let j = (rng.unit() * jitter_ms(i) * MS as f64) as i64;
                keep.then_some((t + 20 * MS + j, t))
            })
            .collect();
        arrivals.sort();
        let mut out = Vec::new();
        let mut k = 0;
        let mut display = T0 + 3 * MS;
        while display < T0 + n * P + 200 * MS {
            while k < arrivals.len() && arrivals[k].0 <= display {
                if jb.push(truth(arrivals[k].1), arrivals[k].0).is_stored() {
                    stored.push(arrivals[k].1);
                }
                k += 1;
            }
            if let Some(s) = jb.sample(display) {
                let r = s.render_time;
                let j = jb.samples.partition_point(|x| x.time < r);
                let gap = match (j.checked_sub(1).map(|i| jb.samples[i]), jb.samples.get(j)) {
                    (Some(a), Some(b)) => b.time - a.time,
                    (Some(a), None) => r - a.time,
                    (None, Some(b)) => b.time - r,
                    (None, None) => unreachable!("a sample was rendered"),
                };
                out.push((jb.delay_ns, s, gap));
            }
            display += P;
        }
        out
    }

    /// The delay grows under jitter (uniform 0–60 ms) and shrinks back, smoothly and
    /// within [min, max], when it stops. Asserted: ≥ 30 ms of growth, back within 5 ms of
    /// the jitter-free delay, each step ≤ `grow_rate` of the display step.
    #[test]
    fn adaptive_delay_grows_and_shrinks() {
        let cfg = JitterConfig::default();
        let mut jb = JitterBuffer::new(cfg);
        let mut rng = Rng(42);
        let (calm, jittery) = (270, 720); // 3 s calm, 5 s of jitter, then calm to 18 s.
        let runs = simulate(
            &mut jb,
            1620,
            0.0,
            |i| if i >= calm && i < jittery { 60.0 } else { 0.0 },
            &mut rng,
            &mut Vec::new(),
        );
        let (min, max) = (dur_ns(cfg.min_delay), dur_ns(cfg.max_delay));
        let runs: Vec<(f64, Sampled)> = runs.into_iter().map(|(d, s, _)| (d, s)).collect();
        for w in runs.windows(2) {
            let d = (w[1].0 - w[0].0).abs();
            assert!(d <= cfg.grow_rate * P as f64 + 1.0, "delay step {d}");
            assert!(w[1].0 >= min && w[1].0 <= max);
        }
        let at = |i: usize| runs[i.min(runs.len() - 1)].0;
        let calm_delay = at(calm as usize - 1);
        // Jitter-free target: 20 ms transit + 11.1 ms interval.
        assert!((calm_delay - 31.1e6).abs() < 2e6, "{calm_delay}");
        let peak = at(jittery as usize - 1);
        assert!(peak > calm_delay + 30e6, "peak {peak} calm {calm_delay}");
        let end = at(runs.len());
        assert!(
            (end - calm_delay).abs() < 5e6,
            "end {end} calm {calm_delay}"
        );
    }

    /// Tracking loss on the sender shows in the receiver's flags for the matching times,
    /// and an invalid position is never interpolated toward.
    #[test]
    fn tracking_lost_flags_propagate() {
        let mut jb = JitterBuffer::new(fixed(10));
        let lost = PoseFlags::ORIENTATION_VALID | PoseFlags::ORIENTATION_TRACKED;
        for i in 0..10 {
            let mut s = plain(i * 10 * MS, Vec3::new(i as f32, 0.0, 0.0), Quat::IDENTITY);
            if (4..7).contains(&i) {
                s.flags = lost;
                s.pose.position = Vec3::new(1e6, 1e6, 1e6); // garbage, flagged invalid
            }
            jb.push(s, 0);
        }
        for k in 0..=90 {
            let s = jb.sample(k * MS + 10 * MS).expect("sample");
            let expect = if (40..70).contains(&k) {
                lost
            } else {
                PoseFlags::ALL
            };
            assert_eq!(s.flags, expect, "{k}");
            // Positions of samples 4..=6 are invalid: sample 3's (x = 3) is held, then
            // the position moves on toward sample 7's.
            let want = match k {
                0..=30 => k as f32 / 10.0,
                31..=60 => 3.0,
                61..=70 => 3.0 + 4.0 * (k - 60) as f32 / 10.0,
                _ => k as f32 / 10.0,
            };
            assert!((s.pose.position.x - want).abs() < 1e-5, "{k}: {:?}", s.pose);
        }
    }

    /// 20 % loss and 0–40 ms uniform jitter (on 20 ms latency), default adaptive config,
    /// 10 s of circular motion (speed R·W ≈ 0.94 m/s, 180°/s). Bounds asserted, with g
    /// the span of the samples a render used (or how far it lies beyond the newest):
    /// interpolated position error ≤ R·(1 − cos(W·g/2)) + 0.1 mm (the chord's sagitta),
    /// extrapolated ≤ R·W·g + 0.1 mm, angle ≤ W·g + 1e-3°; overall ≤ speed × the largest
    /// g, which is asserted to be ≤ 8 periods (≈ 89 ms, so ≤ 84 mm and ≤ 16°).
    #[test]
    fn lossy_jittery_stream_stays_near_truth() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut rng = Rng(2026);
        let mut stored = Vec::new();
        let runs = simulate(&mut jb, 900, 0.2, |_| 40.0, &mut rng, &mut stored);
        let first = stored.iter().copied().min().unwrap_or(T0);
        let (mut max_pos, mut max_ang, mut extrapolated, mut count) = (0.0f64, 0.0f64, 0, 0);
        let mut gap = 0;
        let speed = R * W;
        for (_, s, g_ns) in runs.iter().filter(|(_, s, _)| s.render_time >= first) {
            if s.render_time > T0 + 899 * P {
                break;
            }
            let g = *g_ns as f64 / 1e9;
            let t = truth(s.render_time).pose;
            let e = dist(s.delayed.position, t.position);
            let a = s.delayed.orientation.angle_deg(t.orientation);
            // Per render: a chord of the circle over g deviates ≤ R(1 − cos(W·g/2)) from
            // it; an extrapolation or hold over g by ≤ speed × g.
            let bound = if s.extrapolated {
                speed * g
            } else {
                R * (1.0 - (W * g / 2.0).cos())
            };
            assert!(e <= bound + 1e-4, "error {e} > {bound} (gap {g_ns})");
            assert!(a <= (W * g).to_degrees() + 1e-3, "angle {a} (gap {g_ns})");
            gap = gap.max(*g_ns);
            max_pos = max_pos.max(e);
            max_ang = max_ang.max(a);
            extrapolated += usize::from(s.extrapolated);
            count += 1;
        }
        // The stated global bound: speed × the largest gap seen (≤ 8 periods here).
        assert!((2 * P..=8 * P).contains(&gap), "largest gap {gap}");
        let g = gap as f64 / 1e9;
        let pos_bound = speed * g + 1e-4;
        let ang_bound = (W * g).to_degrees() + 1e-3;
        assert!(max_pos <= pos_bound, "{max_pos} > {pos_bound} (gap {gap})");
        assert!(max_ang <= ang_bound, "{max_ang} > {ang_bound}");
        eprintln!();
        assert!(
            count > 700 && extrapolated * 20 < count,
            "{extrapolated}/{count}"
        );
    }

    /// Absurd inputs (extreme times and offsets, broken configurations) never panic.
    #[test]
    fn no_panics_on_extreme_inputs() {
        let cfg = JitterConfig {
            min_delay: Duration::MAX,
            max_delay: Duration::ZERO,
            initial_delay: Duration::from_secs(u64::MAX / 2),
            extrapolation_limit: Duration::MAX,
            capacity: 0,
            jitter_multiplier: f64::NAN,
            grow_rate: f64::INFINITY,
            shrink_rate: -1.0,
        };
        for c in [cfg, JitterConfig::default(), fixed(0)] {
            let mut jb = JitterBuffer::new(c);
            assert!(jb.sample(0).is_none());
            for (i, t) in [i64::MIN, -1, 0, 1, i64::MAX, i64::MAX - 1, i64::MIN + 1]
                .into_iter()
                .enumerate()
            {
                let mut s = plain(t, Vec3::new(1.0, 2.0, 3.0), yaw(1.0));
                s.linear_velocity = Some(Vec3::new(f32::MAX, f32::MAX, f32::MAX));
                s.angular_velocity = Some(Vec3::new(f32::MAX, 0.0, f32::MIN));
                jb.set_clock_offset(if i % 2 == 0 { i64::MAX } else { i64::MIN });
                let _ = jb.push(s, t.wrapping_mul(3));
                for d in [i64::MIN, 0, i64::MAX, t] {
                    if let Some(r) = jb.sample(d) {
                        assert!(r.pose.orientation.is_finite());
                    }
                }
            }
            let _ = (jb.playout_delay(), jb.target_delay(), jb.jitter());
        }
    }
}
