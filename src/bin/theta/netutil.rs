//! Small pieces shared by the network commands (`demo`, `host`, `join`, `token`): the
//! engine-loop pacer, clock, number formatting and the live status line.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (token expiries).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Resolves `host:port` (an IP address or a name) to one socket address.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let mut addrs = addr.to_socket_addrs().map_err(|e| {
        format!("bad address {addr:?}: {e} (expected host:port, e.g. 127.0.0.1:4433)")
    })?;
    addrs
        .next()
        .ok_or_else(|| format!("bad address {addr:?}: it resolves to no address"))
}

/// Paces an engine loop to a tick rate: [`Pacer::wait`] sleeps until the next tick is due.
/// A loop that falls more than a few ticks behind drops the backlog instead of racing.
pub struct Pacer {
    period: Duration,
    next: Instant,
}

impl Pacer {
    pub fn new(rate: f64) -> Self {
        Pacer {
            period: Duration::from_secs_f64(1.0 / rate),
            next: Instant::now(),
        }
    }

    /// Sleeps until the next tick is due.
    pub fn wait(&mut self) {
        self.next += self.period;
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        } else if now - self.next > self.period * 4 {
            self.next = now;
        }
    }
}

/// Share of the requested tick rate below which a loop is said not to keep it.
const KEEPS_RATE: f64 = 0.95;

/// Counts the ticks an engine loop achieves, to compare with the rate it asked for: a
/// loop that cannot keep its rate (too much work per tick for the machine) would otherwise
/// print per-second figures that read as if at the requested rate.
pub struct TickRate {
    requested: f64,
    since: Instant,
    ticks: u64,
}

impl TickRate {
    pub fn new(requested: f64) -> Self {
        TickRate {
            requested,
            since: Instant::now(),
            ticks: 0,
        }
    }

    /// Counts one tick.
    pub fn tick(&mut self) {
        self.ticks += 1;
    }

    /// Ticks per second since the previous call (or since creation); starts a new interval.
    pub fn take(&mut self) -> f64 {
        let secs = self.since.elapsed().as_secs_f64().max(1e-9);
        let achieved = self.ticks as f64 / secs;
        self.since = Instant::now();
        self.ticks = 0;
        achieved
    }

    /// A warning when `achieved` ticks/s falls below about 95 % of the requested rate,
    /// else `None`.
    pub fn warning(&self, achieved: f64) -> Option<String> {
        below_rate(achieved, self.requested).then(|| {
            format!(
                "SLOW: {achieved:.1} ticks/s, {:.0}% of the requested {} Hz",
                100.0 * achieved / self.requested,
                self.requested
            )
        })
    }
}

/// True when `achieved` ticks/s falls below about 95 % of `requested`.
pub fn below_rate(achieved: f64, requested: f64) -> bool {
    achieved < requested * KEEPS_RATE
}

/// Bytes per second in words: `812 B/s`, `41.2 kB/s`, `3.10 MB/s`.
pub fn rate(bytes_per_second: f64) -> String {
    let b = bytes_per_second;
    if b < 1e3 {
        format!("{b:.0} B/s")
    } else if b < 1e6 {
        format!("{:.1} kB/s", b / 1e3)
    } else {
        format!("{:.2} MB/s", b / 1e6)
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A live status line: on a terminal it is rewritten in place (`\r`) and [`Status::due`]
/// allows about ten updates a second; otherwise every update is a line of its own, and the
/// caller decides how often (see [`Status::is_live`]).
pub struct Status {
    live: bool,
    last: Option<Instant>,
    width: usize,
}

impl Status {
    pub fn new() -> Self {
        Status {
            live: std::io::stdout().is_terminal(),
            last: None,
            width: 0,
        }
    }

    /// True when the line is rewritten in place.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// On a terminal: true at most every 100 ms.
    pub fn due(&self) -> bool {
        self.last
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100))
    }

    pub fn show(&mut self, line: &str) {
        if self.live {
            let pad = self.width.saturating_sub(line.chars().count());
            print!("\r{line}{:pad$}", "");
            let _ = std::io::stdout().flush();
            self.width = line.chars().count();
        } else {
            println!("{line}");
        }
        self.last = Some(Instant::now());
    }

    /// Ends a live line so that what follows starts on a new one.
    pub fn finish(&mut self) {
        if self.live && self.width > 0 {
            println!();
            self.width = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_below_95_percent_of_its_rate_is_flagged() {
        let meter = TickRate::new(60.0);
        assert!(meter.warning(58.0).is_none());
        let warning = meter.warning(11.0).expect("11 of 60 Hz is slow");
        assert!(
            warning.contains("11.0 ticks/s") && warning.contains("60 Hz"),
            "{warning}"
        );
        assert!(below_rate(56.9, 60.0) && !below_rate(57.1, 60.0));
    }

    #[test]
    fn the_tick_rate_counts_ticks_over_the_interval() {
        let mut meter = TickRate::new(1000.0);
        for _ in 0..5 {
            meter.tick();
        }
        std::thread::sleep(Duration::from_millis(20));
        let achieved = meter.take();
        // 5 ticks in at least 20 ms: at most 250 ticks/s, and a new interval starts.
        assert!(achieved > 0.0 && achieved <= 250.0, "{achieved}");
        assert_eq!(meter.take(), 0.0);
    }
}
