//! A client's estimate of the host's clock from ping round trips (see the parent module's
//! "Clock offset").

use std::collections::VecDeque;
use std::time::Instant;

use super::{CLOCK_SAMPLES, CLOCK_SLEW_NS, PING_FAST, PING_SLOW};

/// The client's estimate of the host clock.
#[derive(Default)]
pub(super) struct ClockSync {
    pub(super) answers: VecDeque<(i64, i64)>,
    pub(super) estimate: Option<i64>,
    pub(super) applied: Option<i64>,
    pub(super) last_ping: Option<Instant>,
    pub(super) best_rtt_ns: Option<i64>,
}

impl ClockSync {
    pub(super) fn on_pong(&mut self, t0: i64, t1: i64, t2: i64, t3: i64) {
        let rtt = (t3 - t0).saturating_sub(t2 - t1);
        if rtt < 0 || t3 < t0 {
            return;
        }
        let offset =
            ((i128::from(t1) - i128::from(t0) + i128::from(t2) - i128::from(t3)) / 2) as i64;
        if self.answers.len() == CLOCK_SAMPLES {
            self.answers.pop_front();
        }
        self.answers.push_back((rtt, offset));
        if let Some(&(rtt, offset)) = self.answers.iter().min_by_key(|a| a.0) {
            self.estimate = Some(offset);
            self.best_rtt_ns = Some(rtt);
        }
    }

    /// Moves the applied offset toward the estimate (a jump only for the first).
    pub(super) fn slew(&mut self) -> Option<i64> {
        let e = self.estimate?;
        let a = match self.applied {
            None => e,
            Some(a) => a + (e - a).clamp(-CLOCK_SLEW_NS, CLOCK_SLEW_NS),
        };
        self.applied = Some(a);
        Some(a)
    }

    pub(super) fn ping_due(&self, now: Instant) -> bool {
        let every = if self.answers.len() < CLOCK_SAMPLES {
            PING_FAST
        } else {
            PING_SLOW
        };
        self.last_ping
            .is_none_or(|t| now.duration_since(t) >= every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_estimate_takes_the_fastest_round_trip() {
        let mut c = ClockSync::default();
        // Host clock = client + 5 ms. Answers with queueing delays on either leg.
        let offset = 5_000_000;
        for (i, (up, down)) in [
            (3_000_000, 1_000_000),
            (400_000, 400_000),
            (9_000_000, 200_000),
        ]
        .into_iter()
        .enumerate()
        {
            let t0 = i as i64 * 100_000_000;
            let t1 = t0 + up + offset;
            let t2 = t1 + 50_000;
            let t3 = t2 - offset + down;
            c.on_pong(t0, t1, t2, t3);
        }
        assert_eq!(c.estimate, Some(offset));
        assert_eq!(c.best_rtt_ns, Some(800_000));
        // The first estimate is applied at once, later ones slewed.
        assert_eq!(c.slew(), Some(offset));
        c.estimate = Some(offset + 10 * CLOCK_SLEW_NS);
        assert_eq!(c.slew(), Some(offset + CLOCK_SLEW_NS));
        // Nonsense answers (negative round trip) are ignored.
        c.on_pong(100, 0, 1_000_000, 50);
        assert_eq!(c.answers.len(), 3);
    }
}
