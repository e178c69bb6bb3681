//! `theta host --control-stdin`: commands from a controlling process on standard input, one
//! per line, read on a thread of their own so the engine loop never waits for them.
//!
//! `mark` asks for a `mark` line: what the host did since the previous mark (ticks, bytes
//! sent, median tick time), so a measuring process (`theta bench clients`) brackets its
//! window with two marks while it reads the host's CPU time from outside. The end of the
//! input (the controller closed the pipe, or exited) stops the scene's changes: the host
//! lingers and shuts down, so a controller that dies leaves no host running.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use theta_net::net::session::PeerDiagnostics;
use theta_net::PeerId;

/// A command from the controlling process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Print a mark line.
    Mark,
    /// The input ended: stop changing the scene.
    End,
}

/// The commands read from standard input by a thread.
pub struct Control {
    commands: Receiver<Command>,
    ended: bool,
}

impl Control {
    /// Starts the thread that reads standard input.
    pub fn from_stdin() -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                match line.trim() {
                    "mark" => {
                        if tx.send(Command::Mark).is_err() {
                            return;
                        }
                    }
                    "" => {}
                    other => eprintln!("theta host: unknown command {other:?} (known: mark)"),
                }
            }
            let _ = tx.send(Command::End);
        });
        Control {
            commands: rx,
            ended: false,
        }
    }

    /// The next command waiting, without blocking; [`Command::End`] once, when the input
    /// ended.
    pub fn poll(&mut self) -> Option<Command> {
        if self.ended {
            return None;
        }
        match self.commands.try_recv() {
            Ok(command) => {
                self.ended = command == Command::End;
                Some(command)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.ended = true;
                Some(Command::End)
            }
        }
    }
}

/// What the host did between two marks.
pub struct Marks {
    count: u64,
    since: Instant,
    ticks: u64,
    /// Time of each `Session::tick` call since the previous mark.
    tick_times: Vec<Duration>,
    /// Bytes sent to, packets sent to and packets received from each peer at the previous
    /// mark.
    counts: HashMap<PeerId, [u64; 3]>,
}

impl Marks {
    /// Starts counting now.
    pub fn new() -> Self {
        Marks {
            count: 0,
            since: Instant::now(),
            ticks: 0,
            tick_times: Vec::new(),
            counts: HashMap::new(),
        }
    }

    /// Counts one tick that took `took`.
    pub fn tick(&mut self, took: Duration) {
        self.ticks += 1;
        self.tick_times.push(took);
    }

    /// The mark line for what happened since the previous mark (or the start), and a new
    /// interval: `mark K: T ticks in S s | sent B bytes to P peers | packets O out I in |
    /// tick median U µs`. The bytes are UDP payload bytes (QUIC included) and the packets
    /// UDP datagrams, to and from the peers connected now; a peer that left meanwhile is
    /// not counted.
    pub fn take(&mut self, peers: &[PeerDiagnostics]) -> String {
        self.count += 1;
        let secs = self.since.elapsed().as_secs_f64();
        let mut total = [0u64; 3];
        let mut next = HashMap::with_capacity(peers.len());
        for p in peers {
            let now = [p.wire_bytes_sent, p.packets_sent, p.packets_received];
            let before = self.counts.get(&p.peer).copied().unwrap_or_default();
            for ((sum, now), before) in total.iter_mut().zip(now).zip(before) {
                *sum += now.saturating_sub(before);
            }
            next.insert(p.peer, now);
        }
        let [sent, out, into] = total;
        let median = median(&mut self.tick_times);
        let line = format!(
            "mark {}: {} ticks in {secs:.4} s | sent {sent} bytes to {} peers | packets {out} out {into} in | tick median {:.1} µs",
            self.count,
            self.ticks,
            peers.len(),
            median.as_secs_f64() * 1e6
        );
        self.counts = next;
        self.since = Instant::now();
        self.ticks = 0;
        self.tick_times.clear();
        line
    }
}

/// The median of `times` (zero when empty); sorts them.
fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(peer: PeerId, sent: u64) -> PeerDiagnostics {
        PeerDiagnostics {
            peer,
            wire_bytes_sent: sent,
            packets_sent: sent / 100,
            packets_received: sent / 200,
            ..PeerDiagnostics::default()
        }
    }

    #[test]
    fn a_mark_counts_what_happened_since_the_previous_one() {
        let mut marks = Marks::new();
        for us in [30, 10, 20] {
            marks.tick(Duration::from_micros(us));
        }
        let first = marks.take(&[peer(1, 1000), peer(2, 500)]);
        assert!(first.starts_with("mark 1: 3 ticks in "), "{first}");
        assert!(
            first.contains(
                "| sent 1500 bytes to 2 peers | packets 15 out 7 in | tick median 20.0 µs"
            ),
            "{first}"
        );
        marks.tick(Duration::from_micros(7));
        // Peer 2 left, peer 3 came: only what each sent since the previous mark counts.
        let second = marks.take(&[peer(1, 1600), peer(3, 40)]);
        assert!(second.starts_with("mark 2: 1 ticks in "), "{second}");
        assert!(
            second
                .contains("| sent 640 bytes to 2 peers | packets 6 out 3 in | tick median 7.0 µs"),
            "{second}"
        );
        let empty = marks.take(&[]);
        assert!(empty.contains("0 ticks") && empty.contains("tick median 0.0 µs"));
    }
}
