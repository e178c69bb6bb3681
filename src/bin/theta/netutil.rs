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

/// Checks a tick rate option.
pub fn check_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && (0.1..=10_000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "--rate {rate} is not within 0.1..=10000 (ticks per second)"
        ))
    }
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
