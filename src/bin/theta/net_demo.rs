//! `theta demo`: a host and N clients in one process over loopback QUIC (127.0.0.1 only).
//!
//! The host's world holds the demo scene; each client joins with a token minted for its
//! peer id and the host's certificate fingerprint pinned. Every tick (the engine loop, paced
//! to `--rate`): the scene steps, the host ticks (sends what changed), every client ticks
//! (applies what arrived, sends its acks).
//!
//! Faults act on every endpoint's outgoing UDP datagrams (host and each client). The path's
//! delay and jitter (`--delay`, `--jitter`) are on from the join to the end; loss,
//! duplication, reordering and corruption hit the datagrams from the first tick to the last
//! change. Afterwards the sessions keep ticking, without changes, until every client's
//! state hash equals the host's (bounded), which gives each client's time to converge after
//! the last change; then for a quiet window, over which the host's wire bytes to each
//! client are measured. A table says what crossed the wire during the ticks, beside what
//! the seed's JSON design would have sent for the same scene.

use std::time::{Duration, Instant};

use theta_net::baseline::snapshot_json;
use theta_net::net::faults::{FaultConfig, FaultControl};
use theta_net::net::session::{Session, SessionConfig, SessionEvent};
use theta_net::net::tls::{HostIdentity, ServerTrust};
use theta_net::net::token::{mint, JoinSecret};
use theta_net::wire::codec::MessageKind;
use theta_net::{PeerId, World, DEFAULT_MAX_CHUNK_BYTES};

use crate::avatars::Avatars;
use crate::cli::DemoArgs;
use crate::demo_report::{AfterLastChange, ClientTally, Report, Sample};
use crate::grabs::Grabs;
use crate::json_replay;
use crate::netutil::{self, Pacer, Status, TickRate};
use crate::scene::Scene;
use crate::viewers::Viewers;

/// How long joining (admission and the snapshot) may take.
const JOIN_BOUND: Duration = Duration::from_secs(10);

/// How long the sessions may take to converge once the changes stop, at least: slow rates
/// and long delays get more (see [`converge_bound`]).
const CONVERGE_BOUND_MIN: Duration = Duration::from_secs(5);
/// The quiet window after convergence, at least (and at least [`QUIET_TICKS`] ticks).
const QUIET_MIN: Duration = Duration::from_secs(1);
/// Ticks of the quiet window, at least.
const QUIET_TICKS: f64 = 10.0;
/// Round trips between convergence and the quiet window: the last change's
/// acknowledgements land meanwhile.
const SETTLE_RTTS: u32 = 4;

/// The faults of a run, from the command line.
pub struct Faults {
    pub delay: Duration,
    pub jitter: Duration,
    loss: f64,
    duplicate: f64,
    reorder: f64,
    corrupt: f64,
}

impl Faults {
    fn new(a: &DemoArgs) -> Self {
        Faults {
            delay: a.delay,
            jitter: a.jitter,
            loss: a.loss,
            duplicate: a.duplicate(),
            reorder: a.reorder(),
            corrupt: a.corrupt,
        }
    }

    /// The path's delay and jitter for the endpoint with this seed; `None` without either.
    fn path(&self, seed: u64) -> Option<FaultConfig> {
        let config = FaultConfig {
            seed,
            delay: self.delay,
            jitter: self.jitter,
            ..FaultConfig::default()
        };
        (!config.is_noop()).then_some(config)
    }

    /// Everything, while the ticks change the scene.
    fn while_changing(&self, seed: u64) -> FaultConfig {
        FaultConfig {
            seed,
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            corrupt: self.corrupt,
            delay: self.delay,
            jitter: self.jitter,
        }
    }

    /// True when any fault is asked for: the endpoints then get fault sockets.
    fn any(&self) -> bool {
        !self.while_changing(0).is_noop()
    }

    /// In words, for the header line.
    fn describe(&self) -> String {
        if !self.any() {
            return "no faults".into();
        }
        let pct = |p: f64| format!("{}%", p * 100.0);
        let ms = |d: Duration| format!("{}", d.as_secs_f64() * 1e3);
        format!(
            "path delay {} ms ± {} ms (always); while changing: loss {}, duplication {}, reordering {}, corruption {}",
            ms(self.delay),
            ms(self.jitter),
            pct(self.loss),
            pct(self.duplicate),
            pct(self.reorder),
            pct(self.corrupt)
        )
    }
}

/// The fault seed of endpoint `i` (0 is the host).
fn endpoint_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(1000).wrapping_add(i as u64)
}

/// How long the sessions may take to converge after the last change before the demo calls
/// it a failure: at least 5 s, 20 ticks and 20 times the slowest one-way delay.
fn converge_bound(rate: f64, faults: &Faults) -> Duration {
    let ticks = Duration::from_secs_f64(20.0 / rate);
    let path = (faults.delay + faults.jitter) * 20;
    CONVERGE_BOUND_MIN.max(ticks).max(path)
}

/// One client of the demo and what happened to it.
pub struct Client {
    pub peer: PeerId,
    pub session: Session,
    faults: Option<FaultControl>,
    joined: bool,
    pub disconnected: Option<String>,
    /// Replica events received (spawns, inserts, updates, removes, despawns).
    pub events: u64,
}

fn sample(host: &Session, clients: &[Client]) -> Vec<Sample> {
    let host_peers = host.diagnostics().peers;
    clients
        .iter()
        .map(|c| {
            let d = c.session.diagnostics();
            let framed = |kind: MessageKind| {
                d.compression
                    .get(kind.index())
                    .map_or(0, |k| k.counters.bytes_received_framed)
            };
            Sample {
                client: d.peers.first().copied().unwrap_or_default(),
                host: host_peers
                    .iter()
                    .find(|p| p.peer == c.peer)
                    .copied()
                    .unwrap_or_default(),
                // The datagrams' headers (outside the codec envelope) count too.
                state_bytes: framed(MessageKind::Datagram)
                    + framed(MessageKind::DeltaFrame)
                    + d.peers
                        .first()
                        .map_or(0, |p| p.datagram_header_bytes_received),
            }
        })
        .collect()
}

/// Ticks the host and every client once, and takes their events; returns the time the
/// host's tick took.
fn tick_all(host: &mut Session, clients: &mut [Client]) -> Duration {
    let started = Instant::now();
    host.tick();
    let host_time = started.elapsed();
    for c in clients.iter_mut() {
        c.session.tick();
    }
    for event in host.poll_events(usize::MAX) {
        if let SessionEvent::PeerLeft { peer, reason } = event {
            if let Some(c) = clients.iter_mut().find(|c| c.peer == peer) {
                c.disconnected
                    .get_or_insert_with(|| format!("the host lost it: {reason}"));
            }
        }
    }
    for c in clients.iter_mut() {
        for event in c.session.poll_events(usize::MAX) {
            match event {
                SessionEvent::Joined { .. } => c.joined = true,
                SessionEvent::Disconnected { reason, .. } => {
                    c.disconnected.get_or_insert(reason);
                }
                SessionEvent::Replica { .. } => c.events += 1,
                _ => {}
            }
        }
    }
    host_time
}

/// The state hash each client should reach: the host's, or with interest management the
/// host's hash of what that client sees.
fn targets(host: &Session, clients: &[Client], interest: bool) -> Vec<u64> {
    if !interest {
        return vec![host.state_hash(); clients.len()];
    }
    clients
        .iter()
        .map(|c| host.interest_hash(c.peer).unwrap_or_default())
        .collect()
}

fn converged(host: &Session, clients: &[Client], interest: bool) -> bool {
    let targets = targets(host, clients, interest);
    clients
        .iter()
        .zip(targets)
        .all(|(c, hash)| c.session.state_hash() == hash)
}

fn first_disconnect(clients: &[Client]) -> Option<String> {
    clients.iter().find_map(|c| {
        c.disconnected
            .as_ref()
            .map(|r| format!("client {} disconnected: {r}", c.peer))
    })
}

/// Runs `theta demo` over loopback QUIC.
pub fn run(o: &DemoArgs) -> Result<(), String> {
    let ticks = o.ticks();
    let faults = Faults::new(o);
    let interest = o.interest.is_some();
    let config = |faults: &Option<FaultControl>| SessionConfig {
        faults: faults.clone(),
        interest_cell: o.interest,
        ..SessionConfig::default()
    };
    println!(
        "theta demo: host + {} clients over loopback QUIC, {} objects, {} ticks at {} Hz, {}% moving per tick ({:?} motion); {}",
        o.clients,
        o.entities,
        ticks,
        o.rate,
        o.move_percent,
        o.motion,
        faults.describe()
    );
    // A fault socket per endpoint; the path's delay and jitter from the start.
    let fault_control = |i: usize| -> Result<Option<FaultControl>, String> {
        if !faults.any() {
            return Ok(None);
        }
        match faults.path(endpoint_seed(o.seed, i)) {
            Some(path) => FaultControl::with_config(path).map(Some),
            None => Ok(Some(FaultControl::new())),
        }
    };

    // The host: the scene in its world, a self-signed certificate, a fresh secret.
    let mut world = World::default();
    let mut scene = Scene::with_motion(&mut world, o.entities, o.seed, o.motion, o.fields)?;
    let registry = world.registry().clone();
    let json_snapshot: usize = snapshot_json(&world, DEFAULT_MAX_CHUNK_BYTES)
        .iter()
        .map(Vec::len)
        .sum();
    let identity = HostIdentity::self_signed(&["localhost".to_owned()])
        .map_err(|e| format!("cannot make the host certificate: {e}"))?;
    let secret = JoinSecret::try_generate().map_err(|e| e.to_string())?;
    let host_faults = fault_control(0)?;
    let mut host = Session::host(
        "127.0.0.1:0".parse().expect("a valid address"),
        world,
        &identity,
        secret.clone(),
        config(&host_faults),
    )
    .map_err(|e| format!("cannot host: {e}"))?;
    let addr = host.local_addr().map_err(|e| e.to_string())?;
    let mut viewers = match o.interest {
        Some(radius) => Some(Viewers::new(&mut host, o.clients, radius)?),
        None => None,
    };
    let trust = ServerTrust::Fingerprint(identity.fingerprint());

    // The clients: peers 1..=N, each with its own token.
    let started = Instant::now();
    let mut clients = Vec::with_capacity(o.clients);
    for peer in 1..=o.clients as PeerId {
        let token = mint(&secret, peer, netutil::unix_now() + 60, None).to_text();
        let faults = fault_control(peer as usize)?;
        let session = Session::join(addr, &trust, &token, &registry, config(&faults))
            .map_err(|e| format!("client {peer} cannot start: {e}"))?;
        clients.push(Client {
            peer,
            session,
            faults,
            joined: false,
            disconnected: None,
            events: 0,
        });
    }
    if let Some(viewers) = &mut viewers {
        // Said before the join request goes: the snapshot holds just what each sees.
        viewers.act(0.0, false, clients.iter_mut().map(|c| &mut c.session))?;
    }
    // Admission, then the snapshot: every client holds the host's state.
    let join_bound = JOIN_BOUND + (faults.delay + faults.jitter) * 20;
    while !(clients.iter().all(|c| c.joined) && converged(&host, &clients, interest)) {
        if let Some(reason) = first_disconnect(&clients) {
            return Err(reason);
        }
        if started.elapsed() > join_bound {
            return Err(format!(
                "the clients did not join and receive the snapshot within {join_bound:?}"
            ));
        }
        tick_all(&mut host, &mut clients);
        std::thread::sleep(Duration::from_millis(1));
    }
    let join_time = started.elapsed();
    let joined = sample(&host, &clients);
    let snapshot_bytes = joined.iter().map(|s| s.client.snapshot_bytes).max();
    println!(
        "joined: {} clients admitted and holding the snapshot after {} ({} bytes of snapshot each; the seed's JSON snapshot: {} bytes)",
        clients.len(),
        netutil::ms(join_time),
        snapshot_bytes.unwrap_or(0),
        json_snapshot
    );

    // Every fault from the first tick to the last change.
    // Handles to every endpoint's fault socket, host first (clones share the switch).
    let controls: Vec<FaultControl> = host_faults
        .iter()
        .chain(clients.iter().flat_map(|c| &c.faults))
        .cloned()
        .collect();
    for (i, control) in controls.iter().enumerate() {
        control.set(faults.while_changing(endpoint_seed(o.seed, i)))?;
    }

    // The engine loop.
    let mut status = Status::new();
    let every = (ticks / 10).max(1);
    let mut pacer = Pacer::new(o.rate);
    let mut interval_rate = TickRate::new(o.rate);
    let run_started = Instant::now();
    let before = sample(&host, &clients);
    let mut last = (run_started, before.clone());
    let mut avatars = Avatars::new(clients.len(), ticks);
    let mut grabs = match o.grab {
        Some(n) => Some(Grabs::new(&mut host, n, o.seed)?),
        None => None,
    };
    let mut last_change = Instant::now();
    let mut host_tick = Duration::ZERO;
    let mut after_change = vec![AfterLastChange::default(); clients.len()];
    for t in 1..=ticks {
        scene.step(
            host.host_world().map_err(|e| e.to_string())?,
            o.move_percent,
        )?;
        avatars.push(t, &mut host, clients.iter_mut().map(|c| &mut c.session))?;
        // Nobody grabs or turns in the last second: what each should hold stops moving.
        let settling = t + o.rate.ceil() as u64 > ticks;
        if let Some(grabs) = &mut grabs {
            grabs.act(
                t,
                settling,
                clients.iter_mut().map(|c| (c.peer, &mut c.session)),
            );
        }
        if let Some(viewers) = &mut viewers {
            let dt = 1.0 / o.rate as f32;
            viewers.act(dt, settling, clients.iter_mut().map(|c| &mut c.session))?;
        }
        last_change = Instant::now();
        host_tick += tick_all(&mut host, &mut clients);
        if let Some(grabs) = &mut grabs {
            grabs.observe(&host);
        }
        interval_rate.tick();
        if t == ticks {
            // A client may hold the last change already, within its tick.
            note_converged(&host, &clients, &mut after_change, 0, last_change, interest);
        }
        avatars.observe(clients.iter_mut().map(|c| &mut c.session));
        if (status.is_live() && status.due()) || (!status.is_live() && t % every == 0) {
            let now = sample(&host, &clients);
            let secs = last.0.elapsed().as_secs_f64().max(1e-9);
            let down: u64 = now
                .iter()
                .zip(&last.1)
                .map(|(n, l)| n.client.wire_bytes_received - l.client.wire_bytes_received)
                .sum();
            let achieved = interval_rate.take();
            status.show(&format!(
                "tick {t:>5}/{ticks}  host {} entities  clients (= host state, -n ticks behind): {}  down {} per client{}",
                host.world().stats().entities,
                behind(&host, &clients, interest).join(" "),
                netutil::rate(down as f64 / secs / clients.len() as f64),
                interval_rate
                    .warning(achieved)
                    .map_or(String::new(), |w| format!("  {w}")),
            ));
            last = (Instant::now(), now);
        }
        if let Some(reason) = first_disconnect(&clients) {
            status.finish();
            return Err(reason);
        }
        pacer.wait();
    }
    let run_time = run_started.elapsed();
    let after = sample(&host, &clients);
    status.finish();

    // No more changes: the faults that hit datagrams stop, the path's delay and jitter stay.
    let fault_stats: Vec<(String, String)> = host_faults
        .iter()
        .map(|f| ("host".to_owned(), f.stats().to_string()))
        .chain(clients.iter().filter_map(|c| {
            c.faults
                .as_ref()
                .map(|f| (format!("c{}", c.peer), f.stats().to_string()))
        }))
        .collect();
    for (i, control) in controls.iter().enumerate() {
        match faults.path(endpoint_seed(o.seed, i)) {
            Some(path) => control.set(path)?,
            None => control.clear(),
        }
    }

    // Tick, without changes, until every client holds the host's state. The engine loop
    // ended waiting for the next tick, which is due now; a client is checked right after
    // each tick, so its time counts the ticks it needed and not the wait after them.
    let bound = converge_bound(o.rate, &faults);
    let mut tail = Pacer::new(o.rate);
    let mut extra_ticks = 0u64;
    loop {
        // (The last tick with changes checked itself.)
        if extra_ticks > 0 {
            note_converged(
                &host,
                &clients,
                &mut after_change,
                extra_ticks,
                last_change,
                interest,
            );
        }
        if after_change.iter().all(|a| a.converged.is_some())
            || last_change.elapsed() > bound
            || first_disconnect(&clients).is_some()
        {
            break;
        }
        if extra_ticks > 0 {
            tail.wait();
        }
        tick_all(&mut host, &mut clients);
        extra_ticks += 1;
    }

    // The quiet window: still no changes; what does the host send to clients up to date?
    // It opens once the last change's acknowledgements had time to land (and the values
    // whose acknowledgement was late went once more): a few round trips.
    let settle = clients
        .iter()
        .filter_map(|c| c.session.diagnostics().peers.first().map(|p| p.rtt))
        .max()
        .unwrap_or_default()
        * SETTLE_RTTS;
    let quiet = QUIET_MIN.max(Duration::from_secs_f64(QUIET_TICKS / o.rate));
    let mut quiet_before = None;
    let settle_started = Instant::now();
    let mut quiet_started = settle_started;
    while quiet_started.elapsed() < quiet && first_disconnect(&clients).is_none() {
        // A client's own last writes (a grabbed object) may still be on their way to the
        // host after a loss: they are changes, so the quiet window waits for them too
        // (bounded by four times the settling time).
        let writes_landed = clients.iter().all(|c| {
            c.session
                .diagnostics()
                .peers
                .first()
                .is_none_or(|p| p.pending_keys == 0)
        });
        let settled = settle_started.elapsed() >= settle
            && (writes_landed || settle_started.elapsed() >= settle * 4);
        if quiet_before.is_none() && settled {
            quiet_before = Some(sample(&host, &clients));
            quiet_started = Instant::now();
        }
        tail.wait();
        tick_all(&mut host, &mut clients);
        if quiet_before.is_none() {
            continue;
        }
        let targets = targets(&host, &clients, interest);
        for ((c, a), hash) in clients.iter().zip(after_change.iter_mut()).zip(targets) {
            if a.converged.is_some() && c.session.state_hash() != hash {
                a.held = false;
            }
        }
    }
    let quiet_before = quiet_before.unwrap_or_else(|| sample(&host, &clients));
    let quiet_time = quiet_started.elapsed();
    let quiet_after = sample(&host, &clients);

    // The report; the seed's JSON design on the same scene is computed now, off the
    // session's path.
    let json_bytes = json_replay::json_bytes(o, ticks)?;
    let achieved = ticks as f64 / run_time.as_secs_f64().max(1e-9);
    let report = Report {
        o,
        ticks,
        run_time,
        achieved,
        json_bytes,
        before: &before,
        after: &after,
        joined: &joined,
        bound,
        after_change: &after_change,
        quiet_time,
        quiet_before: &quiet_before,
        quiet_after: &quiet_after,
        path: (faults.delay, faults.jitter),
        fault_stats: &fault_stats,
        avatars: &avatars,
        host_tick: host_tick / ticks.max(1) as u32,
    };
    let tallies: Vec<ClientTally> = clients
        .iter()
        .map(|c| ClientTally {
            peer: c.peer,
            events: c.events,
        })
        .collect();
    report.print(&host, &tallies);
    if let Some(grabs) = &grabs {
        grabs.report(&host, run_time.as_secs_f64());
    }
    if let Some(viewers) = &viewers {
        let down: u64 = after
            .iter()
            .zip(&before)
            .map(|(a, b)| a.client.wire_bytes_received - b.client.wire_bytes_received)
            .sum();
        let down = down as f64 / run_time.as_secs_f64().max(1e-9) / clients.len().max(1) as f64;
        let sessions: Vec<(PeerId, &Session)> =
            clients.iter().map(|c| (c.peer, &c.session)).collect();
        viewers.report(&host, &sessions, down, report.host_tick);
    }

    let mut failed = Vec::new();
    if let Some(grabs) = grabs.as_ref().filter(|g| g.late_writes_applied > 0) {
        failed.push(format!(
            "{} writes of a previous owner applied after its transfer",
            grabs.late_writes_applied
        ));
    }
    for c in &clients {
        if let Some(reason) = &c.disconnected {
            failed.push(format!("client {} disconnected: {reason}", c.peer));
        }
    }
    if after_change.iter().any(|a| a.converged.is_none()) {
        failed.push("not every client converged".into());
    }
    for (a, c) in after_change.iter().zip(&clients) {
        if a.converged.is_some() && !a.held {
            failed.push(format!(
                "client {} left the host's state during the quiet window",
                c.peer
            ));
        }
    }
    for (i, c) in clients.iter().enumerate() {
        if avatars.summary(i).is_none() {
            failed.push(format!(
                "client {} never rendered the host's avatar",
                c.peer
            ));
        }
    }
    // Clients first, then the host: each drop closes its connection in order.
    drop(clients);
    drop(host);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Notes, for each client not converged yet that holds the host's state now, that it
/// converged `ticks` ticks after the last change, made at `last_change`.
fn note_converged(
    host: &Session,
    clients: &[Client],
    after_change: &mut [AfterLastChange],
    ticks: u64,
    last_change: Instant,
    interest: bool,
) {
    let targets = targets(host, clients, interest);
    for ((c, a), hash) in clients.iter().zip(after_change.iter_mut()).zip(targets) {
        if a.converged.is_none() && c.session.state_hash() == hash {
            *a = AfterLastChange {
                converged: Some((ticks, last_change.elapsed())),
                held: true,
            };
        }
    }
}

/// Per client, `=` when it holds the host's state, else about how many ticks it is behind.
fn behind(host: &Session, clients: &[Client], interest: bool) -> Vec<String> {
    let host_tick = host.diagnostics().tick;
    let targets = targets(host, clients, interest);
    clients
        .iter()
        .zip(targets)
        .map(|(c, hash)| {
            if c.session.state_hash() == hash {
                format!("c{} =", c.peer)
            } else {
                // Not the host's state yet: at least the newest tick is missing.
                let applied = c.session.diagnostics().tick;
                let behind = host_tick.saturating_sub(applied + 1).max(1);
                format!("c{} -{behind}", c.peer)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn demo(args: &[&str]) -> DemoArgs {
        let argv = ["theta", "demo"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Demo(d) => d,
            _ => panic!("not the demo"),
        }
    }

    #[test]
    fn a_small_demo_converges_with_and_without_loss() {
        let small = [
            "--clients",
            "2",
            "--entities",
            "60",
            "--ticks",
            "40",
            "--rate",
            "200",
        ];
        run(&demo(&small)).unwrap();
        let lossy: Vec<&str> = small
            .iter()
            .copied()
            .chain(["--loss", "0.2", "--seed", "3"])
            .collect();
        run(&demo(&lossy)).unwrap();
    }

    #[test]
    fn the_path_keeps_its_delay_and_everything_else_stops_with_the_changes() {
        let f = Faults::new(&demo(&["--delay", "20", "--jitter", "10", "--loss", "0.3"]));
        let changing = f.while_changing(9);
        assert_eq!(
            (changing.loss, changing.duplicate, changing.reorder),
            (0.3, 0.05, 0.1)
        );
        assert_eq!(changing.delay, Duration::from_millis(20));
        let path = f.path(9).expect("a path with delay");
        assert_eq!(
            (path.loss, path.duplicate, path.reorder, path.corrupt),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(
            (path.delay, path.jitter),
            (Duration::from_millis(20), Duration::from_millis(10))
        );
        assert!(Faults::new(&demo(&["--loss", "0.1"])).path(1).is_none());
        assert!(!Faults::new(&demo(&[])).any());
        assert!(Faults::new(&demo(&["--jitter", "1"])).any());
        assert!(converge_bound(60.0, &f) >= Duration::from_millis(600));
        assert!(converge_bound(1.0, &Faults::new(&demo(&[]))) >= Duration::from_secs(20));
    }
}
