//! `theta bench rooms`: the room server's figures (issue 19, item 5), with the server in a
//! process of its own and the clients in others, so that the server's CPU time and
//! memory are its own.
//!
//! Per case it starts this same binary as `theta serve` on 127.0.0.1 in a fresh state
//! directory (removed at the end) with its metrics endpoint on, then the clients as
//! `theta join` children holding whole rooms each (every room's first client spawns and
//! moves the room's objects: `theta join --own-objects`), one process after the other. It
//! waits for every join and for every client to hold its room's objects, then a warm-up,
//! and brackets the window with the server's utime + stime (`/proc/PID/stat`) and two
//! scrapes of its metrics (ticks and their total time, rooms, peers, entities) over a
//! plain `TcpStream`. Resident memory (`VmRSS`) is read right after the server's start and
//! at the end of the window. A baseline of one room with the same clients and objects runs
//! first, on a fresh server, for the ratios.
//!
//! The children are owned by [`Children`], which kills and reaps whichever still run when
//! it is dropped: on success, on any error and on Ctrl-C.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use theta_net::net::token::{try_mint_for_room, JoinSecret};
use theta_net::server::keys::SECRET_FILE;
use theta_net::server::RoomId;
use theta_net::PeerId;

use crate::bench_clients::{after, before, spread, Seen};
use crate::children::{cpu_seconds, resident_bytes, Children, Watched};
use crate::cli::RoomsArgs;
use crate::interrupt;
use crate::netutil;

/// How long the server may take to print its addresses and fingerprint.
const START_BOUND: Duration = Duration::from_secs(20);
/// How long one client process's clients may take to join, plus [`JOIN_PER_CLIENT`] each.
const JOIN_BOUND: Duration = Duration::from_secs(20);
const JOIN_PER_CLIENT: Duration = Duration::from_millis(300);
/// How long the clients may take, once joined, to hold their room's objects.
const HOLD_BOUND: Duration = Duration::from_secs(30);
/// A client whose newest stats line is older than this at the end of the window is
/// stalled (they come every second).
const STALE: Duration = Duration::from_millis(2500);
/// Devices of one avatar.
const DEVICES: usize = 3;
/// Share of the requested tick rate below which the server did not keep it.
const KEEPS_RATE: f64 = 0.95;
/// Bound of one metrics request (connect, write, read).
const HTTP_BOUND: Duration = Duration::from_secs(5);
/// Largest metrics answer read.
const MAX_METRICS_BYTES: u64 = 4 << 20;

/// What the server's metrics endpoint said at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Scrape {
    /// `theta_tick_seconds_count` and `_sum`: ticks so far and their total time.
    ticks: u64,
    tick_seconds: f64,
    /// `theta_rooms`, `theta_peers`, and the sum of `theta_room_entities`.
    rooms: u64,
    peers: u64,
    entities: u64,
}

impl Scrape {
    /// Reads the Prometheus text of `GET /metrics`; `None` when a figure is missing.
    fn parse(text: &str) -> Option<Scrape> {
        let mut s = Scrape::default();
        let mut found = [false; 4];
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            match name {
                "theta_tick_seconds_count" => (s.ticks, found[0]) = (value.parse().ok()?, true),
                "theta_tick_seconds_sum" => {
                    (s.tick_seconds, found[1]) = (value.parse().ok()?, true)
                }
                "theta_rooms" => (s.rooms, found[2]) = (value.parse().ok()?, true),
                "theta_peers" => (s.peers, found[3]) = (value.parse().ok()?, true),
                _ if name.starts_with("theta_room_entities{") => {
                    s.entities += value.parse::<u64>().ok()?
                }
                _ => {}
            }
        }
        found.iter().all(|&f| f).then_some(s)
    }
}

/// `GET /metrics` from the server's endpoint over a plain TCP connection (HTTP/1.1, the
/// connection closed after the answer), bounded in time and size.
fn scrape(addr: SocketAddr) -> Result<Scrape, String> {
    let fail = |e: std::io::Error| format!("cannot read the server's metrics at {addr}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_BOUND).map_err(fail)?;
    stream.set_read_timeout(Some(HTTP_BOUND)).map_err(fail)?;
    stream.set_write_timeout(Some(HTTP_BOUND)).map_err(fail)?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut bytes = Vec::new();
    stream
        .take(MAX_METRICS_BYTES)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("the server's metrics at {addr} answered no HTTP head"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!(
            "the server's metrics at {addr} answered {status:?}"
        ));
    }
    Scrape::parse(body).ok_or_else(|| {
        format!("the server's metrics at {addr} lack the tick, room or peer figures")
    })
}

/// What one client said most recently.
#[derive(Clone, Debug, Default)]
struct Client {
    /// Joined, host tick, events, remote devices, disconnection: as `bench clients` reads.
    seen: Seen,
    /// Entities its world holds, from its newest stats line.
    entities: Option<u64>,
    /// Objects it said it spawned (its room's owner).
    spawned: Option<usize>,
    /// Its slowest tick rate (ticks/s) in a stats line since [`Client::restart_rates`]:
    /// a client below its rate sends the server less than the case asks.
    slowest: Option<f64>,
}

impl Client {
    fn take(&mut self, line: &str) {
        if line.starts_with("spawned ") {
            self.spawned = after(line, "spawned ");
        } else if line.starts_with('[') {
            self.entities = before(line, " entities");
            if let Some(rate) = before::<f64>(line, " ticks/s") {
                self.slowest = Some(self.slowest.map_or(rate, |s| s.min(rate)));
            }
        }
        self.seen.take(line);
    }

    fn restart_rates(&mut self) {
        self.slowest = None;
    }
}

/// The room, peer and rest of a line of a client process running several clients of
/// rooms: `[room R peer N] ...`.
fn room_line(line: &str) -> Option<(&str, PeerId, &str)> {
    let rest = line.strip_prefix("[room ")?;
    let (head, rest) = rest.split_once("] ")?;
    let (room, peer) = head.split_once(" peer ")?;
    Some((room, peer.parse().ok()?, rest))
}

/// The name of room `index` (0-based) of a run.
fn room_name(index: usize) -> String {
    format!("r{}", index + 1)
}

/// The 0-based index of a room named by [`room_name`].
fn room_index(name: &str) -> Option<usize> {
    name.strip_prefix('r')?
        .parse::<usize>()
        .ok()?
        .checked_sub(1)
}

/// A directory of this run's own under the system's temporary directory, removed when
/// dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("theta-bench-rooms-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path)
            .map_err(|e| format!("cannot make the directory {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The figures of one case.
struct Figures {
    rooms: usize,
    clients_per_room: usize,
    avatars: bool,
    processes: usize,
    /// The server's requested tick rate.
    rate: f64,
    /// Wall time of the window, seconds.
    window: f64,
    /// The server's ticks per second in the window and their mean time, µs.
    ticks_per_second: f64,
    tick_mean_us: f64,
    /// Server CPU over the window, in cores.
    server_cores: f64,
    /// The client processes' CPU over the window, in cores (all of them together).
    client_cores: f64,
    /// The server's resident bytes right after its start and with the rooms open.
    rss_start: u64,
    rss_open: u64,
    /// Rooms and peers the server's metrics counted at the end of the window.
    held: Scrape,
    /// The clients' requested tick rate, and the slowest and mean of their slowest
    /// stats lines in the window (ticks/s).
    client_rate: f64,
    clients_rate: (f64, f64),
}

impl Figures {
    fn clients(&self) -> usize {
        self.rooms * self.clients_per_room
    }

    fn cores_per_client(&self) -> f64 {
        self.server_cores / self.clients() as f64
    }

    fn clients_per_core(&self) -> f64 {
        self.clients() as f64 / self.server_cores.max(1e-9)
    }

    /// Resident memory the open rooms added, per room, in MB (10^6 bytes).
    fn mb_per_room(&self) -> f64 {
        (self.rss_open as f64 - self.rss_start as f64) / self.rooms as f64 / 1e6
    }

    fn kept_rate(&self) -> bool {
        self.ticks_per_second >= self.rate * KEEPS_RATE
    }

    /// Whether every client kept its tick rate (its avatar pushes and object steps) in
    /// every second of the window.
    fn clients_kept_rate(&self) -> bool {
        self.clients_rate.0 >= self.client_rate * KEEPS_RATE
    }

    fn label(&self) -> String {
        label(self.rooms, self.clients_per_room, self.avatars)
    }
}

fn label(rooms: usize, clients: usize, avatars: bool) -> String {
    format!(
        "[{rooms} room{} x {clients}, avatars {}]",
        if rooms == 1 { "" } else { "s" },
        if avatars { "on" } else { "off" }
    )
}

/// One case: the server, its clients, what they said.
struct Run {
    label: String,
    /// The server (child 0) and the client processes. Dropped before `_dir`: the server
    /// is gone before its state directory is removed.
    kids: Children,
    /// Per child process, its client when it runs only one (its lines have no prefix).
    only: Vec<Option<(usize, PeerId)>>,
    /// Per room (index 0 is `r1`), per peer (index 0 is peer 1).
    clients: Vec<Vec<Client>>,
    addr: Option<String>,
    fingerprint: Option<String>,
    metrics: Option<SocketAddr>,
    _dir: TempDir,
}

impl Watched for Run {
    fn kids(&mut self) -> &mut Children {
        &mut self.kids
    }

    fn label(&self) -> &str {
        &self.label
    }

    /// A client that disconnected.
    fn failure(&self) -> Option<String> {
        self.each().find_map(|(room, peer, c)| {
            c.seen
                .disconnected
                .as_ref()
                .map(|r| format!("room {} peer {peer} disconnected: {r}", room_name(room)))
        })
    }

    fn take(&mut self, child: usize, line: &str) {
        if child == 0 {
            if let Some(rest) = line.strip_prefix("theta serve: listening on ") {
                self.addr = rest.split_whitespace().next().map(str::to_owned);
            } else if let Some(fp) = line.strip_prefix("fingerprint ") {
                self.fingerprint = Some(fp.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("metrics     http://") {
                self.metrics = rest
                    .split_once("/metrics")
                    .and_then(|(at, _)| at.parse().ok());
            }
            return;
        }
        let (room, peer, rest) = match room_line(line) {
            Some((room, peer, rest)) => match room_index(room) {
                Some(index) => (index, peer, rest),
                None => return,
            },
            None => match self.only.get(child).copied().flatten() {
                Some((room, peer)) => (room, peer, line),
                None => return,
            },
        };
        if let Some(c) = self.clients.get_mut(room).and_then(|peers| {
            (peer as usize)
                .checked_sub(1)
                .and_then(|i| peers.get_mut(i))
        }) {
            c.take(rest);
        }
    }
}

impl Run {
    /// Every client with its room index and peer.
    fn each(&self) -> impl Iterator<Item = (usize, PeerId, &Client)> {
        self.clients.iter().enumerate().flat_map(|(room, peers)| {
            peers
                .iter()
                .enumerate()
                .map(move |(i, c)| (room, (i + 1) as PeerId, c))
        })
    }

    /// The clients that do not yet hold `objects` entities, named, at most a few.
    fn not_holding(&self, objects: usize) -> Vec<String> {
        self.each()
            .filter(|(_, _, c)| c.entities != Some(objects as u64))
            .map(|(room, peer, c)| {
                format!(
                    "room {} peer {peer} holds {} of {objects} objects",
                    room_name(room),
                    c.entities.map_or("no".into(), |e| e.to_string())
                )
            })
            .collect()
    }
}

/// The config file of the server: room and peer limits that admit the run.
fn config_text(a: &RoomsArgs, rooms: usize) -> String {
    format!(
        "# theta bench rooms\n[limits]\nmax_rooms = {rooms}\nmax_peers = {}\nmax_entities = {}\n",
        a.clients_per_room,
        a.objects.max(100_000)
    )
}

/// One case: `rooms` rooms of `a.clients_per_room` clients, with or without avatars.
fn run_one(a: &RoomsArgs, rooms: usize, avatars: bool) -> Result<Figures, String> {
    let label = label(rooms, a.clients_per_room, avatars);
    let per_room = a.clients_per_room;
    let clients = rooms * per_room;
    let client_rate = if avatars {
        a.avatar_rate
    } else {
        a.object_rate
    };
    let dir = TempDir::new()?;
    let state = dir.0.join("state");
    let config = dir.0.join("serve.toml");
    std::fs::write(&config, config_text(a, rooms))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let mut run = Run {
        label: label.clone(),
        kids: Children::new(),
        only: vec![None],
        clients: vec![vec![Client::default(); per_room]; rooms],
        addr: None,
        fingerprint: None,
        metrics: None,
        _dir: dir,
    };
    let server_args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--state-dir".into(),
        state.display().to_string(),
        "--config".into(),
        config.display().to_string(),
        "--metrics".into(),
        "127.0.0.1:0".into(),
        "--log-level".into(),
        "warn".into(),
        "--rate".into(),
        a.server_rate.to_string(),
    ];
    let server = run.kids.spawn("server".into(), &server_args)?;
    let deadline = Instant::now() + START_BOUND;
    if !run.pump(deadline, |r| {
        r.addr.is_some() && r.fingerprint.is_some() && r.metrics.is_some()
    })? {
        return Err(format!(
            "{label}: the server did not say where it listens within {START_BOUND:?}"
        ));
    }
    let rss_start = resident_bytes(server)?;
    let (addr, fingerprint) = (
        run.addr.clone().unwrap_or_default(),
        run.fingerprint.clone().unwrap_or_default(),
    );
    let metrics = run
        .metrics
        .ok_or_else(|| format!("{label}: the server printed no metrics address"))?;
    let secret_path = state.join(SECRET_FILE);
    let secret = std::fs::read_to_string(&secret_path)
        .map_err(|e| format!("cannot read {}: {e}", secret_path.display()))
        .and_then(|hex| JoinSecret::from_hex(hex.trim()).map_err(|e| e.to_string()))?;
    println!(
        "{label} server pid {server} on {addr} at {} Hz, metrics on {metrics}, resident {:.1} MB at start",
        a.server_rate,
        rss_start as f64 / 1e6
    );

    // The clients: whole rooms per process, one process after the other, each once the
    // previous one's clients joined (the server admits a bounded number of connections at
    // once from one address).
    let groups: Vec<Vec<usize>> = spread(rooms, a.processes)
        .into_iter()
        .map(|g| g.into_iter().map(|r| r as usize - 1).collect())
        .collect();
    let expires = netutil::unix_now() + 3600;
    let started = Instant::now();
    let mut client_pids = Vec::with_capacity(groups.len());
    for (i, group) in groups.iter().enumerate() {
        let mut args: Vec<String> = vec![
            "join".into(),
            addr.clone(),
            "--fingerprint".into(),
            fingerprint.clone(),
            "--rate".into(),
            client_rate.to_string(),
            "--own-objects".into(),
            a.objects.to_string(),
            "--move-percent".into(),
            a.move_percent.to_string(),
            "--object-rate".into(),
            a.object_rate.to_string(),
        ];
        if avatars {
            args.push("--avatar".into());
        }
        for &room in group {
            let id = RoomId::new(&room_name(room)).map_err(|e| e.to_string())?;
            for peer in 1..=per_room as PeerId {
                let token = try_mint_for_room(&secret, &id, peer, expires, None)
                    .map_err(|e| e.to_string())?;
                args.extend(["--token".to_owned(), token.to_text()]);
            }
        }
        let name = format!("client process {}", i + 1);
        client_pids.push(run.kids.spawn(name, &args)?);
        run.only.push(match (group.as_slice(), per_room) {
            ([room], 1) => Some((*room, 1)),
            _ => None,
        });
        let in_group = group.len() * per_room;
        let bound = JOIN_BOUND + JOIN_PER_CLIENT * in_group as u32;
        let group_started = Instant::now();
        let joined = |r: &Run| {
            group
                .iter()
                .all(|&room| r.clients[room].iter().all(|c| c.seen.joined))
        };
        if !run.pump(group_started + bound, joined)? {
            let missing: Vec<String> = group
                .iter()
                .flat_map(|&room| {
                    run.clients[room]
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.seen.joined)
                        .map(move |(p, _)| format!("room {} peer {}", room_name(room), p + 1))
                })
                .collect();
            return Err(format!(
                "{label}: {} did not join within {bound:?}",
                missing.join(", ")
            ));
        }
        println!(
            "{label} client process {} of {}: rooms {}..{} ({in_group} clients) joined after {}",
            i + 1,
            groups.len(),
            room_name(group.first().copied().unwrap_or(0)),
            room_name(group.last().copied().unwrap_or(0)),
            netutil::ms(group_started.elapsed())
        );
    }
    // Every client holds its room's objects (the owners spawned them; the others received
    // them through the server).
    let hold_deadline = Instant::now() + HOLD_BOUND;
    if !run.pump(hold_deadline, |r| r.not_holding(a.objects).is_empty())? {
        let missing = run.not_holding(a.objects);
        return Err(format!(
            "{label}: {} client(s) did not receive their room's objects within {HOLD_BOUND:?}: {}",
            missing.len(),
            missing.into_iter().take(8).collect::<Vec<_>>().join("; ")
        ));
    }
    println!(
        "{label} {clients} clients in {} processes joined and hold their room's {} objects after {}; warming up {} s",
        groups.len(),
        a.objects,
        netutil::ms(started.elapsed()),
        a.warmup
    );
    run.pump(Instant::now() + Duration::from_secs_f64(a.warmup), |_| {
        false
    })?;

    // The window: CPU times and metrics before and after.
    let before_scrape = scrape(metrics)?;
    let cpu0 = cpu_seconds(server)?;
    let clients_cpu0: f64 = client_pids
        .iter()
        .map(|&p| cpu_seconds(p))
        .sum::<Result<_, _>>()?;
    let t0 = Instant::now();
    run.clients
        .iter_mut()
        .flatten()
        .for_each(Client::restart_rates);
    let at_start: Vec<Vec<Client>> = run.clients.clone();
    let window = Duration::from_secs_f64(a.seconds);
    let every = Duration::from_secs_f64((a.seconds / 4.0).max(1.0));
    let mut next = t0 + every;
    while next < t0 + window {
        run.pump(next, |_| false)?;
        let so_far = (cpu_seconds(server)? - cpu0) / t0.elapsed().as_secs_f64().max(1e-9);
        println!(
            "{label} measuring: {:.1} of {} s, server {so_far:.3} cores so far",
            t0.elapsed().as_secs_f64(),
            a.seconds
        );
        next += every;
    }
    run.pump(t0 + window, |_| false)?;
    let cpu1 = cpu_seconds(server)?;
    let clients_cpu1: f64 = client_pids
        .iter()
        .map(|&p| cpu_seconds(p))
        .sum::<Result<_, _>>()?;
    let elapsed = t0.elapsed().as_secs_f64();
    let after_scrape = scrape(metrics)?;
    let rss_open = resident_bytes(server)?;

    // Every client kept receiving state (and the avatars of the others in its room); the
    // server held every room, client and object.
    let mut sick = Vec::new();
    for (room, peers) in run.clients.iter().enumerate() {
        for (i, (now, then)) in peers.iter().zip(&at_start[room]).enumerate() {
            let who = format!("room {} peer {}", room_name(room), i + 1);
            let owner = now.spawned.is_some();
            let fresh = now.seen.at.is_some_and(|t| t.elapsed() <= STALE);
            if !fresh {
                sick.push(format!("{who} printed no stats in the last {STALE:?}"));
                continue;
            }
            if now.entities != Some(a.objects as u64) {
                sick.push(format!(
                    "{who} holds {} entities, not {}",
                    now.entities.map_or("no".into(), |e| e.to_string()),
                    a.objects
                ));
            }
            // The owner writes the objects; the others receive them moving.
            if !owner && a.move_percent > 0.0 && now.seen.events <= then.seen.events {
                sick.push(format!(
                    "{who} received no state in the window (events {} -> {})",
                    then.seen.events, now.seen.events
                ));
            }
            let want = DEVICES * (per_room - 1);
            if avatars && now.seen.devices != Some(want) {
                sick.push(format!(
                    "{who} receives {} remote devices, not {want}",
                    now.seen.devices.map_or("no".into(), |d| d.to_string())
                ));
            }
        }
        let owners = peers.iter().filter(|c| c.spawned.is_some()).count();
        if owners != 1 {
            sick.push(format!(
                "room {} has {owners} clients owning objects, not 1",
                room_name(room)
            ));
        }
    }
    let held = after_scrape;
    if held.rooms != rooms as u64 || held.peers != clients as u64 {
        sick.push(format!(
            "the server holds {} rooms and {} peers, not {rooms} and {clients}",
            held.rooms, held.peers
        ));
    }
    if held.entities != (rooms * a.objects) as u64 {
        sick.push(format!(
            "the server's rooms hold {} entities, not {}",
            held.entities,
            rooms * a.objects
        ));
    }
    if after_scrape.ticks <= before_scrape.ticks {
        sick.push("the server did not tick in the window".into());
    }
    if !sick.is_empty() {
        let count = sick.len();
        sick.truncate(12);
        return Err(format!("{label}: {count} failure(s): {}", sick.join("; ")));
    }
    let ticks = after_scrape.ticks - before_scrape.ticks;
    let slowest: Vec<f64> = run.each().filter_map(|(_, _, c)| c.slowest).collect();
    let clients_rate = (
        slowest.iter().copied().fold(f64::INFINITY, f64::min),
        slowest.iter().sum::<f64>() / slowest.len().max(1) as f64,
    );
    let figures = Figures {
        rooms,
        clients_per_room: per_room,
        avatars,
        processes: groups.len(),
        rate: a.server_rate,
        window: elapsed,
        ticks_per_second: ticks as f64 / elapsed.max(1e-9),
        tick_mean_us: (after_scrape.tick_seconds - before_scrape.tick_seconds) * 1e6 / ticks as f64,
        server_cores: (cpu1 - cpu0) / elapsed.max(1e-9),
        client_cores: (clients_cpu1 - clients_cpu0) / elapsed.max(1e-9),
        rss_start,
        rss_open,
        held,
        client_rate,
        clients_rate,
    };
    println!(
        "{label} held {} rooms x {} clients ({} peers, {} entities in the server's metrics); server {:.1} ticks/s ({} its {} Hz), tick mean {:.0} µs, {:.3} cores, {:.5} cores per client, {:.1} clients per core, {:.2} MB resident per room; the client processes {:.2} cores; every client receiving state{}",
        held.rooms,
        per_room,
        held.peers,
        held.entities,
        figures.ticks_per_second,
        if figures.kept_rate() { "kept" } else { "BELOW" },
        a.server_rate,
        figures.tick_mean_us,
        figures.server_cores,
        figures.cores_per_client(),
        figures.clients_per_core(),
        figures.mb_per_room(),
        figures.client_cores,
        if avatars {
            format!(" and {} remote devices", DEVICES * (per_room - 1))
        } else {
            String::new()
        }
    );
    println!(
        "{label} the clients' slowest second in the window: {:.1} ticks/s at worst, {:.1} on average, of their {client_rate} Hz{}",
        clients_rate.0,
        clients_rate.1,
        if figures.clients_kept_rate() {
            ""
        } else {
            " (SLOW: the clients sent the server less than the case asks)"
        }
    );
    Ok(figures)
}

/// `theta bench rooms`.
pub fn run(a: &RoomsArgs) -> Result<(), String> {
    if a.avatars.cases().contains(&true) && a.avatar_rate < a.object_rate {
        return Err(format!(
            "--avatar-rate {} is below --object-rate {}: the clients tick at the avatar rate and step the objects at most once a tick",
            a.avatar_rate, a.object_rate
        ));
    }
    interrupt::install();
    println!(
        "theta bench rooms: `theta serve` alone in its process on 127.0.0.1 at {} Hz; {} rooms of {} clients in up to {} `theta join` processes, each room's first client moving {}% of its {} objects {} times a second{}; {} s windows after {} s of warm-up; server CPU = utime + stime of its process (/proc/PID/stat, all its threads), memory = its VmRSS; baseline: 1 room of the same clients on a fresh server",
        a.server_rate,
        a.rooms,
        a.clients_per_room,
        a.processes,
        a.move_percent,
        a.objects,
        a.object_rate,
        if a.avatars.cases().contains(&true) {
            format!(
                ", with avatars: every client pushes head + 2 hands at {} Hz, relayed to the others of its room",
                a.avatar_rate
            )
        } else {
            String::new()
        },
        a.seconds,
        a.warmup
    );
    let mut results = Vec::new();
    for &avatars in a.avatars.cases() {
        let baseline = run_one(a, 1, avatars)?;
        if a.rooms > 1 {
            results.push(run_one(a, a.rooms, avatars)?);
        }
        results.push(baseline);
    }
    report(&results);
    Ok(())
}

/// The table and the ratios.
fn report(results: &[Figures]) {
    println!();
    println!(
        "{:>6} {:>8} {:>7} {:>9} {:>5} {:>12} {:>10} {:>12} {:>12} {:>10} {:>12} {:>11} {:>8}",
        "rooms",
        "clients",
        "avatars",
        "server Hz",
        "kept",
        "tick mean µs",
        "server CPU",
        "cores/client",
        "clients/core",
        "client CPU",
        "RSS start MB",
        "RSS open MB",
        "MB/room"
    );
    let mut rows: Vec<&Figures> = results.iter().collect();
    rows.sort_by_key(|f| (!f.avatars, f.rooms));
    for f in &rows {
        println!(
            "{:>6} {:>8} {:>7} {:>9.1} {:>5} {:>12.0} {:>10.3} {:>12.5} {:>12.1} {:>10.2} {:>12.1} {:>11.1} {:>8.2}",
            f.rooms,
            f.clients(),
            if f.avatars { "on" } else { "off" },
            f.ticks_per_second,
            if f.kept_rate() { "yes" } else { "NO" },
            f.tick_mean_us,
            f.server_cores,
            f.cores_per_client(),
            f.clients_per_core(),
            f.client_cores,
            f.rss_start as f64 / 1e6,
            f.rss_open as f64 / 1e6,
            f.mb_per_room()
        );
    }
    println!(
        "server Hz: the server's ticks per second in the window (its metrics' theta_tick_seconds_count), kept: at least {:.0}% of its rate; tick mean: theta_tick_seconds_sum over _count (one tick of every room); server CPU: its process's CPU time over the window's wall time ({:.1} s), in cores (every thread of it); client CPU: all the client processes together (they share the machine with the server); RSS: the server's VmRSS right after its start and with the rooms open; MB/room: their difference over the rooms",
        KEEPS_RATE * 100.0,
        results.first().map_or(0.0, |f| f.window)
    );
    for f in &rows {
        println!(
            "held: {} rooms x {} clients = {} clients, {} objects each, avatars {}, in {} client processes: the server {} its {} Hz ({:.1} ticks/s)",
            f.held.rooms,
            f.clients_per_room,
            f.held.peers,
            f.held.entities / f.held.rooms.max(1),
            if f.avatars { "on" } else { "off" },
            f.processes,
            if f.kept_rate() { "kept" } else { "did NOT keep" },
            f.rate,
            f.ticks_per_second
        );
    }
    for avatars in [true, false] {
        let one = rows.iter().find(|f| f.avatars == avatars && f.rooms == 1);
        let many = rows.iter().find(|f| f.avatars == avatars && f.rooms > 1);
        if let (Some(one), Some(many)) = (one, many) {
            println!(
                "{} rooms against 1, avatars {}: server CPU per client {:.2}x ({:.5} against {:.5} cores), resident memory per room {:.2}x ({:.2} against {:.2} MB), tick mean per room {:.2}x ({:.1} against {:.1} µs){}",
                many.rooms,
                if avatars { "on" } else { "off" },
                many.cores_per_client() / one.cores_per_client().max(1e-12),
                many.cores_per_client(),
                one.cores_per_client(),
                many.mb_per_room() / one.mb_per_room().max(1e-12),
                many.mb_per_room(),
                one.mb_per_room(),
                many.tick_mean_us / many.rooms as f64 / one.tick_mean_us.max(1e-9),
                many.tick_mean_us / many.rooms as f64,
                one.tick_mean_us,
                if many.kept_rate() && one.kept_rate() {
                    ""
                } else {
                    " [a server fell below its rate: not comparable]"
                }
            );
        }
    }
    for f in &rows {
        if !f.clients_kept_rate() {
            println!(
                "WARNING: {} a client ticked {:.1} times a second at worst, below its {} Hz (the machine was short of CPU): the server received less than the case asks",
                f.label(),
                f.clients_rate.0,
                f.client_rate
            );
        }
        if !f.kept_rate() {
            println!(
                "WARNING: {} the server ticked {:.1} times a second, below its {} Hz: it did not hold this load at its rate (or the machine was short of CPU)",
                f.label(),
                f.ticks_per_second,
                f.rate
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_text_reads_back() {
        let text = "# HELP theta_rooms Rooms open.\n# TYPE theta_rooms gauge\ntheta_rooms 2\n\
            theta_peers 4\ntheta_tick_seconds_bucket{le=\"0.001\"} 90\n\
            theta_tick_seconds_sum 0.125\ntheta_tick_seconds_count 120\n\
            theta_room_entities{room=\"r1\"} 20\ntheta_room_entities{room=\"r2\"} 21\n";
        assert_eq!(
            Scrape::parse(text),
            Some(Scrape {
                ticks: 120,
                tick_seconds: 0.125,
                rooms: 2,
                peers: 4,
                entities: 41
            })
        );
        assert_eq!(Scrape::parse("theta_rooms 2\ntheta_peers 4\n"), None);
        assert_eq!(
            Scrape::parse("theta_rooms x\ntheta_peers 4\ntheta_tick_seconds_sum 1\ntheta_tick_seconds_count 1\n"),
            None
        );
    }

    #[test]
    fn a_client_line_names_its_room_and_peer() {
        assert_eq!(
            room_line("[room r12 peer 3] joined as peer 3 after 4 ms"),
            Some(("r12", 3, "joined as peer 3 after 4 ms"))
        );
        assert_eq!(room_line("[peer 3] joined"), None);
        assert_eq!(room_index("r12"), Some(11));
        assert_eq!(room_index("r0"), None);
        assert_eq!(room_name(11), "r12");
        let mut c = Client::default();
        c.take("spawned 200 objects, moving 10% of them 60 times a second");
        c.take("[   2 s] host tick 120 | 60.0 ticks/s | 200 entities, 400 components | down 1 kB/s up 1 kB/s | RTT 0.30 ms | lost 0 | 5321 events | avatars: 9 remote devices | hash 00ff");
        assert_eq!(c.spawned, Some(200));
        assert_eq!(c.entities, Some(200));
        assert_eq!((c.seen.events, c.seen.devices), (5321, Some(9)));
        assert_eq!(c.slowest, Some(60.0));
        c.take("[   3 s] host tick 150 | SLOW: 45.0 ticks/s, 75% of the requested 60 Hz, cannot keep --rate | 200 entities, 400 components | lost 0 | 5400 events | hash 00ff");
        assert_eq!(c.slowest, Some(45.0));
        c.take("[   4 s] host tick 210 | 59.9 ticks/s | 200 entities, 400 components | lost 0 | 5500 events | hash 00ff");
        assert_eq!(c.slowest, Some(45.0), "the slowest second is kept");
        c.restart_rates();
        assert_eq!(c.slowest, None);
    }

    #[test]
    fn the_config_admits_the_run() {
        let args = RoomsArgs {
            rooms: 50,
            clients_per_room: 20,
            objects: 200,
            move_percent: 10.0,
            object_rate: 60.0,
            avatar_rate: 90.0,
            server_rate: 60.0,
            avatars: crate::cli::AvatarCases::On,
            seconds: 1.0,
            warmup: 1.0,
            processes: 4,
        };
        let text = config_text(&args, 50);
        let dir = TempDir::new().expect("a temporary directory");
        let path = dir.0.join("serve.toml");
        std::fs::write(&path, &text).expect("written");
        let config = theta_net::server::ServerConfig::from_file(&path).expect("a valid config");
        assert_eq!((config.limits.max_rooms, config.limits.max_peers), (50, 20));
        assert!(config.limits.max_entities >= 200);
        let kept = dir.0.clone();
        drop(dir);
        assert!(!kept.exists(), "the directory is removed");
    }
}
