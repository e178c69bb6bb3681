//! The summary `theta demo` prints after a run over QUIC: the achieved tick rate, each
//! client's convergence after the last change beside the bound 2 RTT + 2 ticks, the quiet
//! after convergence, what crossed the wire during the ticks against the seed's JSON
//! design, the avatars, and the host's diagnostics panel.

use std::time::Duration;

use theta_net::net::session::{PeerDiagnostics, Session, SessionDiagnostics};
use theta_net::PeerId;

use crate::avatars::{Avatars, ErrorSummary};
use crate::cli::DemoArgs;
use crate::netutil::{self, below_rate};

/// The host's work shared among the clients in step (issue 18: "builds and compresses
/// what a tick changed once"): value codings, state datagram bodies and their envelopes.
fn built_once(d: &SessionDiagnostics) -> String {
    let sent: u64 = d.peers.iter().map(|p| p.outbox.datagrams_sent).sum();
    let percent = |part: u64, whole: u64| 100.0 * part as f64 / whole.max(1) as f64;
    format!(
        "shared within a tick: values coded {} + {} shared ({:.0}%); state datagrams sent {}: bodies encoded {} + {} shared ({:.0}%), envelopes compressed {} + {} shared ({:.0}%)",
        d.values_coded,
        d.values_coded_shared,
        percent(d.values_coded_shared, d.values_coded + d.values_coded_shared),
        sent,
        d.datagrams_encoded,
        d.datagrams_shared,
        percent(d.datagrams_shared, sent),
        sent.saturating_sub(d.datagram_envelopes_shared),
        d.datagram_envelopes_shared,
        percent(d.datagram_envelopes_shared, sent),
    )
}

/// Counters of one client at a moment, to take differences over the run.
#[derive(Clone, Copy, Default)]
pub struct Sample {
    /// The client's own view of its connection.
    pub client: PeerDiagnostics,
    /// The host's view of the connection to this client.
    pub host: PeerDiagnostics,
    /// Bytes of state the client received: state datagrams (headers and envelopes) and
    /// delta frames as framed by the codec (compressed), before QUIC's own bytes.
    pub state_bytes: u64,
}

/// What one client did after the last change.
#[derive(Clone, Copy, Default)]
pub struct AfterLastChange {
    /// Ticks and time from the last change until the client's state hash equalled the
    /// host's; `None` when it did not within the bound.
    pub converged: Option<(u64, Duration)>,
    /// False when the client left the host's state again during the quiet window.
    pub held: bool,
}

/// What the summary shows of one client besides its counters.
pub struct ClientTally {
    pub peer: PeerId,
    /// Replica events received (spawns, inserts, updates, removes, despawns).
    pub events: u64,
}

/// Everything the summary needs from a run.
pub struct Report<'a> {
    pub o: &'a DemoArgs,
    /// Ticks with changes.
    pub ticks: u64,
    /// Wall time of those ticks.
    pub run_time: Duration,
    /// Ticks per second achieved over them.
    pub achieved: f64,
    /// Bytes the seed's JSON design made for the same scene over the ticks.
    pub json_bytes: u64,
    /// Counters per client before and after the ticks, and once joined.
    pub before: &'a [Sample],
    pub after: &'a [Sample],
    pub joined: &'a [Sample],
    /// How long the clients were allowed to converge after the last change.
    pub bound: Duration,
    pub after_change: &'a [AfterLastChange],
    /// The quiet window after convergence and the counters around it.
    pub quiet_time: Duration,
    pub quiet_before: &'a [Sample],
    pub quiet_after: &'a [Sample],
    /// The path's delay and jitter.
    pub path: (Duration, Duration),
    /// What the fault sockets did: (endpoint, counters in words).
    pub fault_stats: &'a [(String, String)],
    pub avatars: &'a Avatars,
    /// The host's `tick` call on the engine thread, mean over the ticks with changes.
    pub host_tick: Duration,
}

impl Report<'_> {
    /// Prints the summary.
    pub fn print(&self, host: &Session, clients: &[ClientTally]) {
        self.run_line(host);
        self.convergence(host, clients);
        self.wire(host, clients);
        self.avatars(clients);
        println!();
        println!(
            "host diagnostics (compression: KB of messages before and after the codec envelope; per component: value KB sent and the wire KB they cost):"
        );
        let diagnostics = host.diagnostics();
        print!("{}", diagnostics.text_panel());
        println!("{}", built_once(&diagnostics));
        if let Some(warning) = self.slow() {
            println!("{warning}");
        }
    }

    /// The warning printed when the engine loop fell below the requested rate.
    fn slow(&self) -> Option<String> {
        below_rate(self.achieved, self.o.rate).then(|| {
            format!(
                "WARNING: the engine loop ran at {:.1} ticks/s, {:.0}% of the requested {} Hz (too much work per tick for this machine): the per-second figures are at {:.1} ticks/s, not at {} Hz",
                self.achieved,
                100.0 * self.achieved / self.o.rate,
                self.o.rate,
                self.achieved,
                self.o.rate
            )
        })
    }

    fn run_line(&self, host: &Session) {
        let stats = host.world().stats();
        println!(
            "run: {} ticks in {:.2} s ({:.1} ticks/s; requested {} Hz; the host's tick call {:.1} µs mean); host world at the end: {} entities, {} components, tick {}",
            self.ticks,
            self.run_time.as_secs_f64(),
            self.achieved,
            self.o.rate,
            self.host_tick.as_secs_f64() * 1e6,
            stats.entities,
            stats.components,
            host.diagnostics().tick
        );
        if let Some(warning) = self.slow() {
            println!("{warning}");
        }
    }

    /// Per client: time to converge after the last change beside 2 RTT + 2 ticks, and the
    /// host's bytes to it over the quiet window that followed.
    fn convergence(&self, host: &Session, clients: &[ClientTally]) {
        let all = self.after_change.iter().all(|a| a.converged.is_some());
        let slowest = self.after_change.iter().filter_map(|a| a.converged).max();
        match (all, slowest) {
            (true, Some((ticks, time))) => println!(
                "converged: yes, every client's state hash equals the host's ({}) at most {ticks} tick{} ({}) after the last change",
                if self.o.interest.is_some() {
                    "of what that client sees".to_owned()
                } else {
                    format!("{:016x}", host.state_hash())
                },
                if ticks == 1 { "" } else { "s" },
                netutil::ms(time)
            ),
            _ => println!(
                "converged: NO, not every client within {:?} after the last change",
                self.bound
            ),
        }
        for (who, stats) in self.fault_stats {
            println!("faults injected at {who}: {stats}");
        }
        // A tick as the engine loop ran it: a slow loop's ticks are longer than requested.
        let tick = Duration::from_secs_f64(1.0 / self.o.rate.min(self.achieved).max(1e-3));
        let quiet = self.quiet_time.as_secs_f64().max(1e-9);
        println!();
        println!(
            "after the last change{}: ticks and time until the client's state hash equals the host's, beside the bound 2 RTT + 2 ticks (RTT: the client's smoothed RTT; a tick: {} at the achieved rate); then, 4 RTT later (the last acknowledgements land), {:.2} s more without changes, over which the host's wire bytes to the client are counted (keep-alives alone are under 1 kB/s)",
            if self.path.0.is_zero() && self.path.1.is_zero() {
                String::new()
            } else {
                format!(
                    " (the path's delay {} ± {} stays on)",
                    netutil::ms(self.path.0),
                    netutil::ms(self.path.1)
                )
            },
            netutil::ms(tick),
            quiet
        );
        println!(
            "{:<6} {:>6} {:>12} {:>9} {:>14} {:>7} {:>14} {:>14} {:>6}",
            "client",
            "ticks",
            "time",
            "RTT ms",
            "2 RTT+2 ticks",
            "within",
            "quiet down B/s",
            "quiet up B/s",
            "held"
        );
        for (i, c) in clients.iter().enumerate() {
            let (b, a) = (&self.quiet_before[i], &self.quiet_after[i]);
            let rtt = a.client.rtt;
            let limit = rtt * 2 + tick * 2;
            let change = self.after_change[i];
            let (ticks, time, within) = match change.converged {
                Some((ticks, time)) => (
                    ticks.to_string(),
                    netutil::ms(time),
                    if time <= limit { "yes" } else { "NO" },
                ),
                None => ("-".into(), "NO".into(), "NO"),
            };
            println!(
                "{:<6} {:>6} {:>12} {:>9.2} {:>14} {:>7} {:>14.0} {:>14.0} {:>6}",
                format!("c{}", c.peer),
                ticks,
                time,
                rtt.as_secs_f64() * 1e3,
                netutil::ms(limit),
                within,
                (a.host.wire_bytes_sent - b.host.wire_bytes_sent) as f64 / quiet,
                (a.client.wire_bytes_sent - b.client.wire_bytes_sent) as f64 / quiet,
                match change.converged {
                    None => "-",
                    Some(_) if change.held => "yes",
                    Some(_) => "NO",
                },
            );
        }
        println!(
            "held: the client still held the host's state at every tick of the quiet window; quiet down/up: the host's wire bytes to the client, the client's to the host"
        );
    }

    /// What crossed the wire during the ticks, per client, against the seed's JSON design.
    fn wire(&self, host: &Session, clients: &[ClientTally]) {
        let secs = self.run_time.as_secs_f64().max(1e-9);
        let json_rate = self.json_bytes as f64 / secs;
        println!();
        println!(
            "per client, over the {} ticks ({:.2} s); wire = UDP payload bytes (QUIC headers, TLS, acks included)",
            self.ticks, secs
        );
        println!(
            "{:<6} {:>10} {:>10} {:>9} {:>9} {:>8} {:>9} {:>9} {:>11} {:>10} {:>10} {:>16}",
            "client",
            "down B/s",
            "up B/s",
            "pkts down",
            "pkts up",
            "RTT ms",
            "lost down",
            "lost up",
            "dgrams lost",
            "snapshot B",
            "JSON B/s",
            "ours/JSON (down)"
        );
        for (i, c) in clients.iter().enumerate() {
            let (b, a) = (&self.before[i], &self.after[i]);
            let down = (a.client.wire_bytes_received - b.client.wire_bytes_received) as f64 / secs;
            let up = (a.client.wire_bytes_sent - b.client.wire_bytes_sent) as f64 / secs;
            let ratio = down / json_rate.max(1e-9);
            println!(
                "{:<6} {:>10.0} {:>10.0} {:>9} {:>9} {:>8.2} {:>9} {:>9} {:>11} {:>10} {:>10.0} {:>16}",
                format!("c{}", c.peer),
                down,
                up,
                a.client.packets_received - b.client.packets_received,
                a.client.packets_sent - b.client.packets_sent,
                a.client.rtt.as_secs_f64() * 1e3,
                a.host.packets_lost - b.host.packets_lost,
                a.client.packets_lost - b.client.packets_lost,
                a.host.outbox.datagrams_lost - b.host.outbox.datagrams_lost,
                self.joined[i].client.snapshot_bytes,
                json_rate,
                format!("{:.1}% ({:.1}x less)", ratio * 100.0, 1.0 / ratio.max(1e-9)),
            );
        }
        println!(
            "JSON B/s: the frames the seed's JSON full-rescan design makes for the same scene (BaselineTracker::diff each tick, replayed after the run so it costs the session nothing; the objects only), payload only, per client"
        );
        self.bits_per_object(host, clients);
        let events: Vec<String> = clients
            .iter()
            .map(|c| format!("c{} {}", c.peer, c.events))
            .collect();
        println!("replica events received: {}", events.join(", "));
    }

    /// Glenn Fiedler's figure for snapshot compression, per client: bits of state per
    /// tick over every object in the world (moving or not), so scenes with few movers and
    /// with many compare on one scale.
    fn bits_per_object(&self, host: &Session, clients: &[ClientTally]) {
        let objects = host.world().stats().entities.max(1) as f64;
        let ticks = self.ticks.max(1) as f64;
        let per = |bytes: u64| bytes as f64 * 8.0 / ticks / objects;
        let figures: Vec<String> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (b, a) = (&self.before[i], &self.after[i]);
                format!(
                    "c{} {:.2} state, {:.2} wire",
                    c.peer,
                    per(a.state_bytes - b.state_bytes),
                    per(a.client.wire_bytes_received - b.client.wire_bytes_received)
                )
            })
            .collect();
        println!(
            "bits per object per packet over all objects: {}",
            figures.join("; ")
        );
        println!(
            "  (Glenn Fiedler's measure: a client's bits per tick over the {objects:.0} objects in the world, moving or not; state = state datagrams and delta frames after the codec, wire = every byte down, QUIC, acks and avatars included)"
        );
    }

    /// The avatars: pose packets and how far each client renders the host's head from the
    /// truth.
    fn avatars(&self, clients: &[ClientTally]) {
        let secs = self.run_time.as_secs_f64().max(1e-9);
        println!();
        println!(
            "avatars: every peer pushes a 3-point avatar (head, hands) each tick; pose packets are bit-packed datagrams beside the state datagrams"
        );
        println!(
            "{:<6} {:>9} {:>10} {:>11} {:>11} {:>7} {:>12} {:>7} {:>7} {:>8} {:>9} {:>8} {:>12}",
            "client",
            "pkts down",
            "B/pkt down",
            "pose B/s dn",
            "pose B/s up",
            "renders",
            "host head mm",
            "p95 mm",
            "max mm",
            "late mm",
            "at render",
            "delay ms",
            "extrapolated"
        );
        for (i, c) in clients.iter().enumerate() {
            let (b, a) = (&self.before[i].client.poses, &self.after[i].client.poses);
            let packets = a.packets_received - b.packets_received;
            let down = a.bytes_received - b.bytes_received;
            let up = a.bytes_sent - b.bytes_sent;
            let errors = self.avatars.summary(i);
            let mm = |f: fn(&ErrorSummary) -> f64| {
                errors
                    .as_ref()
                    .map_or("-".into(), |e| format!("{:.1}", f(e)))
            };
            println!(
                "{:<6} {:>9} {:>10.1} {:>11.0} {:>11.0} {:>7} {:>12} {:>7} {:>7} {:>8} {:>9} {:>8} {:>12}",
                format!("c{}", c.peer),
                packets,
                down as f64 / packets.max(1) as f64,
                down as f64 / secs,
                up as f64 / secs,
                errors.as_ref().map_or(0, |e| e.renders),
                mm(|e| e.mean_mm),
                mm(|e| e.p95_mm),
                mm(|e| e.max_mm),
                mm(|e| e.late_mean_mm),
                mm(|e| e.at_render_mean_mm),
                mm(|e| e.delay_ms),
                errors.as_ref().map_or(0, |e| e.extrapolated),
            );
        }
        println!(
            "host head mm (mean, p95, max): distance between the host's head as this client renders it for display time now (theta_session_sample_pose(now)) and the truth at that time; the host walks at {} and sends its velocities, which carry the pose over the jitter buffer's delay",
            self.avatars
                .host_speed()
                .map_or("-".into(), |v| format!("{v:.2} m/s on average"))
        );
        println!(
            "late mm: the same pose before it is carried (the pose at the render time, a delay late) against the truth at the display time, the error of rendering late; at render: that delayed pose against the truth at its render time (interpolation alone); delay ms: the playout delay carried over"
        );
    }
}
