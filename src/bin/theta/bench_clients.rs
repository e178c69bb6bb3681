//! `theta bench clients`: the host's CPU per client (issue 18, item 7), with the host in a
//! process of its own and the clients in others, so that the host's CPU time is its own.
//!
//! For each N (and with and without avatars) it starts this same binary as
//! `theta host --control-stdin` on 127.0.0.1, then N clients as `theta join` children with
//! several `--token`s each, waits for every join and a warm-up, and brackets the window
//! with two `mark` commands to the host while it reads the host's utime + stime from
//! `/proc/PID/stat`. The host's mark lines give its ticks, bytes sent and median tick
//! time over the window; the clients' stats lines say whether each one is receiving state
//! (and the other clients' avatars). Closing the host's input ends the run: the host stops
//! changing the scene, lingers and shuts down, and every client must end with the host's
//! final state hash.
//!
//! The children are owned by [`Children`], which kills and reaps whichever still run when
//! it is dropped: on success, on any error and on Ctrl-C. A host whose controller dies
//! sees its input end and stops by itself; its clients end with it.

use std::time::{Duration, Instant};

use theta_net::net::token::{try_mint, JoinSecret};
use theta_net::PeerId;

use crate::children::{cpu_seconds, Children, Watched};
use crate::cli::ClientsArgs;
use crate::interrupt;
use crate::netutil;

/// How long the host may take to print its address and fingerprint.
const START_BOUND: Duration = Duration::from_secs(20);
/// How long the clients may take to join, plus [`JOIN_PER_CLIENT`] each.
const JOIN_BOUND: Duration = Duration::from_secs(20);
const JOIN_PER_CLIENT: Duration = Duration::from_millis(500);
/// How long the host may take to answer a mark.
const MARK_BOUND: Duration = Duration::from_secs(5);
/// The host's linger after its input ends (the clients converge meanwhile), seconds.
const LINGER_S: f64 = 3.0;
/// How long the children may take to end once the host's input closed, beyond the linger.
const END_BOUND: Duration = Duration::from_secs(25);
/// A client whose newest stats line is older than this at the end of the window is
/// stalled (they come every second).
const STALE: Duration = Duration::from_millis(2500);
/// Devices of one avatar.
const DEVICES: usize = 3;
/// The goal of issue 18: clients per host core at 60 Hz objects + 90 Hz avatars.
const GOAL_CLIENTS_PER_CORE: f64 = 100.0;
/// Share of the requested tick rate below which the host did not keep it.
const KEEPS_RATE: f64 = 0.95;

/// The word after `key` in `line`, parsed.
pub fn after<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    let at = line.find(key)? + key.len();
    line[at..].split_whitespace().next()?.parse().ok()
}

/// The number before `key` in `line` (`1234 events`), parsed.
pub fn before<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    let at = line.find(key)?;
    line[..at].split_whitespace().next_back()?.parse().ok()
}

/// What the host said at a mark.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mark {
    ticks: u64,
    secs: f64,
    bytes: u64,
    peers: usize,
    /// UDP packets sent to the peers and received from them.
    packets_out: u64,
    packets_in: u64,
    tick_median_us: f64,
}

impl Mark {
    /// Reads `mark K: T ticks in S s | sent B bytes to P peers | packets O out I in | tick
    /// median U µs`.
    fn parse(line: &str) -> Option<Mark> {
        let line = line.strip_prefix("mark ")?;
        Some(Mark {
            ticks: after(line, ": ")?,
            secs: after(line, " ticks in ")?,
            bytes: after(line, "| sent ")?,
            peers: after(line, " bytes to ")?,
            packets_out: after(line, "| packets ")?,
            packets_in: before(line, " in | ")?,
            tick_median_us: after(line, "| tick median ")?,
        })
    }
}

/// What one client said most recently.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub joined: bool,
    /// Newest host tick applied, replica events, remote devices, from its stats line.
    pub tick: u64,
    pub events: u64,
    pub devices: Option<usize>,
    pub at: Option<Instant>,
    pub disconnected: Option<String>,
    pub final_hash: Option<String>,
}

impl Seen {
    /// Takes one line of this client's (its `[peer N] ` prefix removed).
    pub fn take(&mut self, line: &str) {
        if line.starts_with("joined as peer ") {
            self.joined = true;
        } else if let Some(reason) = line.strip_prefix("disconnected: ") {
            self.disconnected.get_or_insert_with(|| reason.to_owned());
        } else if let Some(hash) = line.strip_prefix("final state hash ") {
            self.final_hash = hash.split_whitespace().next().map(str::to_owned);
        } else if line.starts_with('[') {
            if let Some(tick) = after(line, "host tick ") {
                self.tick = tick;
            }
            if let Some(events) = before(line, " events") {
                self.events = events;
            }
            self.devices = before(line, " remote devices");
            self.at = Some(Instant::now());
        }
    }
}

/// The peer a client's line is about and the line without its prefix: `[peer N] ...` from
/// a process of several clients, else the process's only client.
fn client_line<'a>(line: &'a str, peers: &[PeerId]) -> Option<(PeerId, &'a str)> {
    if let Some(rest) = line.strip_prefix("[peer ") {
        let (peer, rest) = rest.split_once("] ")?;
        return Some((peer.parse().ok()?, rest));
    }
    match peers {
        [only] => Some((*only, line)),
        _ => None,
    }
}

/// The figures of one run.
struct Figures {
    clients: usize,
    avatars: bool,
    processes: usize,
    /// The host's requested tick rate.
    rate: f64,
    /// Wall time of the window, seconds.
    window: f64,
    /// Host CPU over the window, in cores.
    host_cores: f64,
    /// The client processes' CPU over the window, in cores (all of them together).
    client_cores: f64,
    mark: Mark,
}

impl Figures {
    fn cores_per_client(&self) -> f64 {
        self.host_cores / self.clients as f64
    }

    fn clients_per_core(&self) -> f64 {
        self.clients as f64 / self.host_cores.max(1e-9)
    }

    fn bytes_per_client(&self) -> f64 {
        self.mark.bytes as f64 / self.mark.secs.max(1e-9) / self.clients as f64
    }

    /// UDP packets per client per host tick, sent and received.
    fn packets_per_client_tick(&self) -> (f64, f64) {
        let per = (self.clients as f64 * self.mark.ticks as f64).max(1.0);
        (
            self.mark.packets_out as f64 / per,
            self.mark.packets_in as f64 / per,
        )
    }

    fn ticks_per_second(&self) -> f64 {
        self.mark.ticks as f64 / self.mark.secs.max(1e-9)
    }

    /// True when the host ticked below its requested rate: its figures per second are
    /// then those of fewer ticks (and fewer scene steps), not comparable.
    fn slow(&self) -> bool {
        self.ticks_per_second() < self.rate * KEEPS_RATE
    }

    /// A note for a comparison involving these runs, naming those below their rate.
    fn caveat(runs: &[&Figures]) -> String {
        let slow: Vec<String> = runs
            .iter()
            .filter(|f| f.slow())
            .map(|f| format!("N={}", f.clients))
            .collect();
        if slow.is_empty() {
            String::new()
        } else {
            format!(
                " [the host fell below its rate at {}: not comparable]",
                slow.join(", ")
            )
        }
    }

    /// The host's CPU per tick, µs (all its threads): comparable when it did not keep
    /// its rate.
    fn cpu_per_tick_us(&self) -> f64 {
        self.host_cores * 1e6 / self.ticks_per_second().max(1e-9)
    }
}

/// One run: the host, its clients, what they said.
struct Run {
    label: String,
    kids: Children,
    /// Per child process, the peers it runs (the host, child 0, none).
    peers: Vec<Vec<PeerId>>,
    /// Per client (peer 1 is index 0).
    seen: Vec<Seen>,
    addr: Option<String>,
    fingerprint: Option<String>,
    marks: Vec<Mark>,
    host_hash: Option<String>,
    /// A client the host said left, and why.
    left: Option<String>,
    /// Once the host's input closed, children exiting is the expected end.
    ending: bool,
}

impl Watched for Run {
    fn kids(&mut self) -> &mut Children {
        &mut self.kids
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn watching(&self) -> bool {
        !self.ending
    }

    /// A client that disconnected or left, before the end.
    fn failure(&self) -> Option<String> {
        if let Some(left) = &self.left {
            return Some(format!("the host lost a client: {left}"));
        }
        self.seen.iter().enumerate().find_map(|(i, s)| {
            s.disconnected
                .as_ref()
                .map(|r| format!("client {} disconnected: {r}", i + 1))
        })
    }

    fn take(&mut self, child: usize, line: &str) {
        if child == 0 {
            if let Some(rest) = line.strip_prefix("theta host: listening on ") {
                self.addr = rest.split_whitespace().next().map(str::to_owned);
            } else if let Some(fp) = line.strip_prefix("fingerprint ") {
                self.fingerprint = Some(fp.trim().to_owned());
            } else if let Some(mark) = Mark::parse(line) {
                self.marks.push(mark);
            } else if let Some(hash) = line.strip_prefix("final state hash ") {
                self.host_hash = hash.split_whitespace().next().map(str::to_owned);
            } else if line.starts_with("peer ") && line.contains(" left: ") && !self.ending {
                self.left.get_or_insert_with(|| line.to_owned());
            }
            return;
        }
        let Some((peer, rest)) = self
            .peers
            .get(child)
            .and_then(|peers| client_line(line, peers))
        else {
            return;
        };
        if let Some(seen) = (peer as usize)
            .checked_sub(1)
            .and_then(|i| self.seen.get_mut(i))
        {
            seen.take(rest);
        }
    }
}

impl Run {
    /// Sends a mark and waits for the host's answer.
    fn mark(&mut self) -> Result<Mark, String> {
        let count = self.marks.len();
        self.kids.mark()?;
        let deadline = Instant::now() + MARK_BOUND;
        if !self.pump(deadline, |r| r.marks.len() > count)? {
            return Err(format!(
                "{}: the host did not answer a mark within {MARK_BOUND:?}",
                self.label
            ));
        }
        Ok(self.marks[count])
    }

    fn client_cpu(&self, pids: &[u32]) -> Result<f64, String> {
        pids.iter().map(|&p| cpu_seconds(p)).sum()
    }
}

/// The peers of each client process: `clients` peers over at most `processes` processes,
/// as evenly as possible, in order (`theta bench rooms` spreads rooms with it).
pub fn spread(clients: usize, processes: usize) -> Vec<Vec<PeerId>> {
    let processes = processes.clamp(1, clients.max(1));
    let (each, extra) = (clients / processes, clients % processes);
    let mut next: PeerId = 1;
    (0..processes)
        .map(|i| {
            let count = each + usize::from(i < extra);
            (0..count)
                .map(|_| {
                    let peer = next;
                    next += 1;
                    peer
                })
                .collect()
        })
        .collect()
}

/// One run: N clients, with or without avatars.
fn run_one(a: &ClientsArgs, clients: usize, avatars: bool) -> Result<Figures, String> {
    let label = format!(
        "[N={clients}, avatars {}]",
        if avatars { "on" } else { "off" }
    );
    let rate = if avatars {
        a.avatar_rate
    } else {
        a.object_rate
    };
    let secret = JoinSecret::try_generate().map_err(|e| e.to_string())?;
    let mut run = Run {
        label: label.clone(),
        kids: Children::new(),
        peers: vec![Vec::new()],
        seen: vec![Seen::default(); clients],
        addr: None,
        fingerprint: None,
        marks: Vec::new(),
        host_hash: None,
        left: None,
        ending: false,
    };
    let host_args: Vec<String> = [
        "host",
        "--bind",
        "127.0.0.1:0",
        "--secret",
        &secret.to_hex(),
        "--entities",
        &a.entities.to_string(),
        "--move-percent",
        &a.move_percent.to_string(),
        "--rate",
        &rate.to_string(),
        "--scene-rate",
        &a.object_rate.to_string(),
        "--linger",
        &LINGER_S.to_string(),
        "--admission-timeout",
        "10",
        "--control-stdin",
    ]
    .map(str::to_owned)
    .to_vec();
    let host_pid = run.kids.spawn("host".into(), &host_args)?;
    let deadline = Instant::now() + START_BOUND;
    if !run.pump(deadline, |r| r.addr.is_some() && r.fingerprint.is_some())? {
        return Err(format!(
            "{label}: the host did not say where it listens within {START_BOUND:?}"
        ));
    }
    let (addr, fingerprint) = (
        run.addr.clone().unwrap_or_default(),
        run.fingerprint.clone().unwrap_or_default(),
    );
    println!(
        "{label} host pid {host_pid} on {addr}: {} objects, {}% moving at {} Hz, ticking at {rate} Hz",
        a.entities, a.move_percent, a.object_rate
    );

    // The clients: tokens minted here with the host's secret, spread over the processes.
    let groups = spread(clients, a.processes);
    let expires = netutil::unix_now() + 3600;
    let mut client_pids = Vec::with_capacity(groups.len());
    let started = Instant::now();
    let bound = JOIN_BOUND + JOIN_PER_CLIENT * clients as u32;
    // One process after the other, each once the previous one's clients joined: the host
    // admits a bounded number of connections at once from one address (16 by default).
    for (i, group) in groups.iter().enumerate() {
        let mut args: Vec<String> = [
            "join",
            &addr,
            "--fingerprint",
            &fingerprint,
            "--rate",
            &rate.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        if avatars {
            args.push("--avatar".into());
        }
        for &peer in group {
            let token = try_mint(&secret, peer, expires, None).map_err(|e| e.to_string())?;
            args.extend(["--token".to_owned(), token.to_text()]);
        }
        client_pids.push(run.kids.spawn(format!("client process {}", i + 1), &args)?);
        run.peers.push(group.clone());
        let last = group.last().copied().unwrap_or(0) as usize;
        run.pump(started + bound, |r| {
            r.seen.iter().take(last).all(|s| s.joined)
        })?;
    }
    let sizes: Vec<String> = groups.iter().map(|g| g.len().to_string()).collect();
    if !run.pump(started + bound, |r| r.seen.iter().all(|s| s.joined))? {
        let missing: Vec<String> = run
            .seen
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.joined)
            .map(|(i, _)| (i + 1).to_string())
            .collect();
        return Err(format!(
            "{label}: clients {} did not join within {bound:?}",
            missing.join(", ")
        ));
    }
    println!(
        "{label} {clients} clients in {} processes ({} clients each) joined after {}; warming up {} s",
        groups.len(),
        sizes.join("+"),
        netutil::ms(started.elapsed()),
        a.warmup
    );
    run.pump(Instant::now() + Duration::from_secs_f64(a.warmup), |_| {
        false
    })?;

    // The window, between two marks.
    let cpu0 = cpu_seconds(host_pid)?;
    let clients_cpu0 = run.client_cpu(&client_pids)?;
    let t0 = Instant::now();
    run.mark()?;
    let at_start: Vec<Seen> = run.seen.clone();
    let window = Duration::from_secs_f64(a.seconds);
    let every = Duration::from_secs_f64((a.seconds / 4.0).max(1.0));
    let mut next = t0 + every;
    while next < t0 + window {
        run.pump(next, |_| false)?;
        let so_far = (cpu_seconds(host_pid)? - cpu0) / t0.elapsed().as_secs_f64().max(1e-9);
        println!(
            "{label} measuring: {:.1} of {} s, host {so_far:.3} cores so far",
            t0.elapsed().as_secs_f64(),
            a.seconds
        );
        next += every;
    }
    run.pump(t0 + window, |_| false)?;
    let cpu1 = cpu_seconds(host_pid)?;
    let clients_cpu1 = run.client_cpu(&client_pids)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let mark = run.mark()?;

    // Every client received state through the window (and the others' avatars).
    let mut sick = Vec::new();
    for (i, (now, then)) in run.seen.iter().zip(&at_start).enumerate() {
        let peer = i + 1;
        let fresh = now.at.is_some_and(|t| t.elapsed() <= STALE);
        if !fresh {
            sick.push(format!(
                "client {peer} printed no stats in the last {STALE:?}"
            ));
        } else if now.tick <= then.tick || now.events <= then.events {
            sick.push(format!(
                "client {peer} received no state in the window (host tick {} -> {}, events {} -> {})",
                then.tick, now.tick, then.events, now.events
            ));
        }
        let want = DEVICES * (clients - 1);
        if avatars && now.devices != Some(want) {
            sick.push(format!(
                "client {peer} receives {} remote devices, not {want}",
                now.devices.map_or("no".into(), |d| d.to_string())
            ));
        }
    }
    if mark.peers != clients {
        sick.push(format!(
            "the host serves {} peers, not {clients}",
            mark.peers
        ));
    }
    if !sick.is_empty() {
        return Err(format!("{label}: {}", sick.join("; ")));
    }
    let figures = Figures {
        clients,
        avatars,
        processes: groups.len(),
        rate,
        window: elapsed,
        host_cores: (cpu1 - cpu0) / elapsed.max(1e-9),
        client_cores: (clients_cpu1 - clients_cpu0) / elapsed.max(1e-9),
        mark,
    };
    println!(
        "{label} host {:.3} cores ({:.1} clients per core), {:.1} ticks/s, tick median {:.0} µs, {} per client, UDP packets per client per tick {:.2} out {:.2} in; the client processes {:.2} cores; every client receiving state{}",
        figures.host_cores,
        figures.clients_per_core(),
        figures.ticks_per_second(),
        mark.tick_median_us,
        netutil::rate(figures.bytes_per_client()),
        figures.packets_per_client_tick().0,
        figures.packets_per_client_tick().1,
        figures.client_cores,
        if avatars {
            format!(" and {} remote devices", DEVICES * (clients - 1))
        } else {
            String::new()
        }
    );

    // The end: the host stops changing the scene, lingers and closes; every client must
    // end with its final state.
    run.ending = true;
    run.kids.close_host_input();
    let deadline = Instant::now() + Duration::from_secs_f64(LINGER_S) + END_BOUND;
    let mut failed = loop {
        let (all, failed) = run.kids.all_exited();
        if all {
            break failed;
        }
        if !run.pump(
            (Instant::now() + Duration::from_millis(100)).min(deadline),
            |_| false,
        )? && Instant::now() >= deadline
        {
            return Err(format!(
                "{label}: the processes did not end within {:?} of the end of the host's input",
                Duration::from_secs_f64(LINGER_S) + END_BOUND
            ));
        }
    };
    // Lines still in the pipes.
    while let Some((child, line)) = run.kids.next(Instant::now() + Duration::from_millis(200)) {
        run.take(child, &line);
    }
    let host_hash = run
        .host_hash
        .clone()
        .ok_or_else(|| format!("{label}: the host printed no final state hash"))?;
    for (i, s) in run.seen.iter().enumerate() {
        match &s.final_hash {
            Some(h) if *h == host_hash => {}
            Some(h) => failed.push(format!(
                "client {} ended with state hash {h}, not the host's {host_hash}",
                i + 1
            )),
            None => failed.push(format!("client {} printed no final state hash", i + 1)),
        }
    }
    if !failed.is_empty() {
        return Err(format!("{label}: {}", failed.join("; ")));
    }
    println!("{label} converged: every client ended with the host's final state hash {host_hash}");
    Ok(figures)
}

/// `theta bench clients`.
pub fn run(a: &ClientsArgs) -> Result<(), String> {
    if a.avatar_rate < a.object_rate {
        return Err(format!(
            "--avatar-rate {} is below --object-rate {}: the host ticks at the avatar rate and steps the scene at most once a tick",
            a.avatar_rate, a.object_rate
        ));
    }
    interrupt::install();
    let mut ns = a.clients.clone();
    ns.sort_unstable();
    ns.dedup();
    println!(
        "theta bench clients: `theta host` alone in its process on 127.0.0.1 ({} objects, {}% moving at {} Hz), N clients in up to {} `theta join` processes{}; {} s windows after {} s of warm-up; host CPU = utime + stime of its process (/proc/PID/stat, all its threads)",
        a.entities,
        a.move_percent,
        a.object_rate,
        a.processes,
        if a.avatars.cases().contains(&true) {
            format!(
                ", with avatars: every client pushes head + 2 hands at {} Hz, the host relays them to every other client and ticks at {} Hz",
                a.avatar_rate, a.avatar_rate
            )
        } else {
            String::new()
        },
        a.seconds,
        a.warmup
    );
    let mut results = Vec::new();
    for &n in &ns {
        for &avatars in a.avatars.cases() {
            results.push(run_one(a, n, avatars)?);
        }
    }
    report(&results);
    Ok(())
}

/// The table and the ratios.
fn report(results: &[Figures]) {
    println!();
    println!(
        "{:>7} {:>7} {:>9} {:>10} {:>10} {:>12} {:>12} {:>12} {:>13} {:>11} {:>10} {:>11} {:>10}",
        "clients",
        "avatars",
        "host Hz",
        "host CPU",
        "CPU µs/tick",
        "cores/client",
        "clients/core",
        "B/s/client",
        "pkt out/in",
        "tick med µs",
        "client CPU",
        "per client",
        "processes"
    );
    for f in results {
        let smallest = results
            .iter()
            .filter(|g| g.avatars == f.avatars)
            .min_by_key(|g| g.clients)
            .unwrap_or(f);
        println!(
            "{:>7} {:>7} {:>9.1} {:>10.3} {:>10.0} {:>12.5} {:>12.1} {:>12.0} {:>13} {:>11.0} {:>10.2} {:>11} {:>10}",
            f.clients,
            if f.avatars { "on" } else { "off" },
            f.ticks_per_second(),
            f.host_cores,
            f.cpu_per_tick_us(),
            f.cores_per_client(),
            f.clients_per_core(),
            f.bytes_per_client(),
            {
                let (out, into) = f.packets_per_client_tick();
                format!("{out:.2}/{into:.2}")
            },
            f.mark.tick_median_us,
            f.client_cores,
            format!(
                "{:.2}x N={}",
                f.cores_per_client() / smallest.cores_per_client().max(1e-12),
                smallest.clients
            ),
            f.processes
        );
    }
    println!(
        "host Hz: the host's ticks per second in the window; host CPU: its process's CPU time over the window's wall time ({:.1} s), in cores, and per tick (every thread of it); B/s/client: UDP payload bytes (QUIC included) the host sent per client per second; pkt out/in: UDP packets the host sent to and received from each client per host tick; tick med: median time of the host's Session::tick; client CPU: all the client processes together (they share the machine with the host); per client: cores per client against the smallest N of the same case (1.00x = linear)",
        results.first().map_or(0.0, |f| f.window)
    );
    for avatars in [true, false] {
        let case: Vec<&Figures> = results.iter().filter(|f| f.avatars == avatars).collect();
        let steps: Vec<String> = case
            .windows(2)
            .map(|w| {
                let per = (w[1].host_cores - w[0].host_cores)
                    / (w[1].clients - w[0].clients).max(1) as f64;
                format!(
                    "N={}->{}: {per:.5} cores per added client ({:.0} per core){}",
                    w[0].clients,
                    w[1].clients,
                    1.0 / per.max(1e-12),
                    Figures::caveat(&[w[0], w[1]])
                )
            })
            .collect();
        if !steps.is_empty() {
            println!(
                "marginal cost, avatars {} (the host's CPU the added clients cost, without what the scene costs anyway): {}",
                if avatars { "on" } else { "off" },
                steps.join("; ")
            );
        }
    }
    let with: Vec<&Figures> = results.iter().filter(|f| f.avatars).collect();
    let without: Vec<&Figures> = results.iter().filter(|f| !f.avatars).collect();
    if !with.is_empty() && !without.is_empty() {
        println!();
        println!("the avatars' share (same N, same scene, this run):");
        for w in &with {
            if let Some(o) = without.iter().find(|o| o.clients == w.clients) {
                let share = 1.0 - o.host_cores / w.host_cores.max(1e-12);
                println!(
                    "  N={:>2}: {:.5} cores per client with avatars ({} Hz), {:.5} without ({} Hz): avatars {:.0}% of the host's CPU, {:.2}x the cost per client{}",
                    w.clients,
                    w.cores_per_client(),
                    w.rate,
                    o.cores_per_client(),
                    o.rate,
                    share * 100.0,
                    w.cores_per_client() / o.cores_per_client().max(1e-12),
                    Figures::caveat(&[w, o])
                );
            }
        }
    }
    for f in &with {
        println!(
            "issue 18 goal, at least {GOAL_CLIENTS_PER_CORE:.0} clients per host core with objects at 60 Hz and avatars at 90 Hz: N={} gives {:.1} ({}){}",
            f.clients,
            f.clients_per_core(),
            if f.clients_per_core() >= GOAL_CLIENTS_PER_CORE {
                "met"
            } else {
                "not met"
            },
            Figures::caveat(&[f])
        );
    }
    for f in results {
        if f.slow() {
            println!(
                "WARNING: N={} avatars {}: the host ticked {:.1} times a second, below the requested {} Hz (the machine was short of CPU): its CPU per client is understated",
                f.clients,
                if f.avatars { "on" } else { "off" },
                f.ticks_per_second(),
                f.rate
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_mark_line_reads_back() {
        let mark = Mark::parse(
            "mark 2: 900 ticks in 10.0012 s | sent 123456 bytes to 8 peers | packets 9000 out 7200 in | tick median 85.5 µs",
        )
        .expect("a mark");
        assert_eq!(
            mark,
            Mark {
                ticks: 900,
                secs: 10.0012,
                bytes: 123456,
                peers: 8,
                packets_out: 9000,
                packets_in: 7200,
                tick_median_us: 85.5
            }
        );
        assert!(Mark::parse("mark x: nothing").is_none());
        assert!(Mark::parse("peer 1 joined").is_none());
    }

    #[test]
    fn a_client_line_names_its_peer_or_its_process_has_one() {
        assert_eq!(
            client_line("[peer 7] joined as peer 7 after 3 ms", &[5, 6, 7]),
            Some((7, "joined as peer 7 after 3 ms"))
        );
        assert_eq!(
            client_line("joined as peer 2", &[2]),
            Some((2, "joined as peer 2"))
        );
        assert_eq!(client_line("joined as peer 2", &[2, 3]), None);
        let mut seen = Seen::default();
        seen.take("joined as peer 3 after 12.00 ms");
        seen.take("[   2 s] host tick 120 | 60.0 ticks/s | 1000 entities, 2100 components | down 1 kB/s up 1 kB/s | RTT 0.30 ms | lost 0 | 5321 events | avatars: 21 remote devices | hash 00ff");
        assert!(seen.joined);
        assert_eq!(
            (seen.tick, seen.events, seen.devices),
            (120, 5321, Some(21))
        );
        seen.take("final state hash 0123456789abcdef (host tick 9, ...)");
        assert_eq!(seen.final_hash.as_deref(), Some("0123456789abcdef"));
        seen.take("disconnected: the host went away");
        assert_eq!(seen.disconnected.as_deref(), Some("the host went away"));
    }

    #[test]
    fn clients_are_spread_evenly_over_the_processes() {
        assert_eq!(
            spread(8, 4),
            vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7, 8]]
        );
        assert_eq!(spread(5, 2), vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(spread(2, 4), vec![vec![1], vec![2]]);
        assert_eq!(spread(3, 1), vec![vec![1, 2, 3]]);
    }
}
