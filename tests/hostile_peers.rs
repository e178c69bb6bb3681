//! Unauthenticated peers against a `theta host` process (issue 12, item 4): many concurrent
//! QUIC connections that pin the host's fingerprint but present no join token, each opening
//! as many streams as the host allows and writing to all of them at full speed, plus
//! datagrams as fast as the connection takes them. Some hold their join stream silent (a
//! length prefix, then nothing) so that they keep their place in admission until the
//! deadline; the others write garbage from the first byte and are refused at once, then
//! come back with a new connection.
//!
//! The host runs as a separate process (`theta host`), so its resident memory (VmHWM from
//! `/proc/PID/status`) is its own; a `theta join` process admitted before the flood must
//! keep replicating through it and end with the host's state hash.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use theta_net::net::framing::{read_message, write_message};
use theta_net::net::session::{DisconnectCause, Session, SessionConfig, SessionEvent};
use theta_net::net::tls::{
    client_config, Fingerprint, HostIdentity, ServerTrust, ADMISSION_RECEIVE_WINDOW,
};
use theta_net::net::token::{mint, JoinSecret};
use theta_net::wire::{self, fb, Encoder, Message};
use theta_net::{ComponentId, Layout, Registry, World};

const THETA: &str = env!("CARGO_BIN_EXE_theta");

/// Flooding connections kept open at once.
const ATTACKERS: usize = 48;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(6);
/// The host's tick rate.
const RATE: f64 = 60.0;
/// Peak resident memory the host may reach, flood included.
const RSS_BOUND: u64 = 64 << 20;
/// The flood stops early when the host passes this (so that a regression cannot take the
/// machine's memory); the test then fails on `RSS_BOUND`.
const RSS_KILL_SWITCH: u64 = 1 << 30;
/// Share of `RATE` the host must keep ticking at under the flood (loose: CI machines are
/// busy, and this test's own flood shares them).
const TICK_SHARE: f64 = 0.5;

/// A line of a child's output and when it was read.
type Line = (Instant, String);

/// Reads `stdout` line by line on a thread, into a channel.
fn lines_of(stdout: ChildStdout) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line satisfying `want`, keeping every line read in `seen`.
fn wait_for(
    rx: &mpsc::Receiver<Line>,
    seen: &mut Vec<Line>,
    limit: Duration,
    want: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, line)) => {
                let hit = want(&line);
                seen.push((at, line.clone()));
                if hit {
                    return line;
                }
            }
            Err(_) => {
                let text: Vec<&str> = seen.iter().map(|(_, l)| l.as_str()).collect();
                panic!(
                    "no such line within {limit:?}; output so far:\n{}",
                    text.join("\n")
                );
            }
        }
    }
}

/// A `/proc/PID/status` field in bytes (Linux).
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The 16 hex digits after `key` in `line`.
fn hash_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    line.get(at..at + 16)
}

/// (read at, tick) of the host's stats lines: `[   3 s] tick 183 | ...`.
fn host_ticks(lines: &[Line]) -> Vec<(Instant, u64)> {
    lines
        .iter()
        .filter_map(|(at, line)| {
            let rest = line.split("] tick ").nth(1)?;
            let tick = rest.split_whitespace().next()?.parse().ok()?;
            Some((*at, tick))
        })
        .collect()
}

/// Kills a child process on drop, so that a failing test leaves nothing running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the flood did, for the report.
#[derive(Default)]
struct FloodStats {
    connections: AtomicU64,
    failed_connects: AtomicU64,
    streams: AtomicU64,
    stream_bytes: AtomicU64,
    datagrams: AtomicU64,
}

/// Writes to `send` until the stream or the connection fails. A silent join stream
/// announces a 4096-byte join request and then sends nothing.
async fn write_flat_out(mut send: quinn::SendStream, silent: bool, stats: Arc<FloodStats>) {
    if silent {
        let _ = send.write_all(&4096u32.to_le_bytes()).await;
        std::future::pending::<()>().await;
    }
    let chunk = vec![0x5a_u8; 64 << 10];
    while send.write_all(&chunk).await.is_ok() {
        stats
            .stream_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

/// One attacker: connects, floods streams and datagrams until the host closes the
/// connection, and connects again, until `until`.
async fn attacker(
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    until: tokio::time::Instant,
    silent: bool,
    stats: Arc<FloodStats>,
) {
    while tokio::time::Instant::now() < until {
        let connecting = match endpoint.connect(addr, "localhost") {
            Ok(c) => c,
            Err(_) => return,
        };
        let conn = match tokio::time::timeout_at(until, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(_)) => {
                stats.failed_connects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            Err(_) => return,
        };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let mut tasks = tokio::task::JoinSet::new();
        {
            let (conn, stats) = (conn.clone(), Arc::clone(&stats));
            tasks.spawn(async move {
                let mut first = true;
                // `open_bi` waits for the host's stream credit: as many as it allows.
                while let Ok((send, _recv)) = conn.open_bi().await {
                    stats.streams.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(write_flat_out(send, silent && first, Arc::clone(&stats)));
                    first = false;
                }
            });
        }
        {
            let (conn, stats) = (conn.clone(), Arc::clone(&stats));
            tasks.spawn(async move {
                while let Ok(send) = conn.open_uni().await {
                    stats.streams.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(write_flat_out(send, false, Arc::clone(&stats)));
                }
            });
        }
        {
            let (conn, stats) = (conn.clone(), Arc::clone(&stats));
            tasks.spawn(async move {
                let payload = Bytes::from(vec![0xa5_u8; 1500]);
                while let Some(max) = conn.max_datagram_size() {
                    let datagram = payload.slice(..max.min(payload.len()));
                    if conn.send_datagram_wait(datagram).await.is_err() {
                        break;
                    }
                    stats.datagrams.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        tokio::select! {
            _ = conn.closed() => {}
            _ = tokio::time::sleep_until(until) => conn.close(0u32.into(), b"flood over"),
        }
        tasks.abort_all();
    }
}

/// Floods `addr` from `ATTACKERS` connections over four client endpoints until `until`,
/// or until `stop` says so.
async fn flood(
    addr: SocketAddr,
    fingerprint: Fingerprint,
    until: tokio::time::Instant,
    stats: Arc<FloodStats>,
) -> Vec<quinn::Endpoint> {
    let trust = ServerTrust::Fingerprint(fingerprint);
    // The attackers' own limits are quinn's defaults: whatever the host allows, they use.
    let mut transport = quinn::TransportConfig::default();
    transport.datagram_send_buffer_size(1 << 20);
    let config = client_config(&trust, Arc::new(transport)).expect("client config");
    let endpoints: Vec<quinn::Endpoint> = (0..4)
        .map(|_| {
            let mut e = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr"))
                .expect("client endpoint");
            e.set_default_client_config(config.clone());
            e
        })
        .collect();
    let mut attackers = tokio::task::JoinSet::new();
    for i in 0..ATTACKERS {
        attackers.spawn(attacker(
            endpoints[i % endpoints.len()].clone(),
            addr,
            until,
            i % 4 != 0,
            Arc::clone(&stats),
        ));
    }
    while attackers.join_next().await.is_some() {}
    endpoints
}

#[test]
fn unauthenticated_flood_costs_the_host_little_and_an_admitted_client_converges() {
    let ticks = (RATE * (FLOOD.as_secs_f64() + 6.0)) as u64;
    let mut host = Command::new(THETA)
        .args(["host", "--bind", "127.0.0.1:0", "--entities", "500"])
        .args(["--rate", &RATE.to_string(), "--ticks", &ticks.to_string()])
        .args(["--linger", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn theta host");
    let host_out = lines_of(host.stdout.take().expect("stdout"));
    let host = Reaped(host);
    let pid = host.0.id();
    let mut host_lines = Vec::new();
    let join_line = wait_for(&host_out, &mut host_lines, Duration::from_secs(30), |l| {
        l.trim_start().starts_with("theta join ")
    });
    let args: Vec<String> = join_line
        .split_whitespace()
        .skip(2)
        .map(str::to_owned)
        .collect();
    let addr: SocketAddr = args[0].parse().expect("host address");
    let fingerprint = Fingerprint::from_hex(&args[2]).expect("fingerprint");

    // The admitted client joins before the flood.
    let mut client = Command::new(THETA)
        .arg("join")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn theta join");
    let client_out = lines_of(client.stdout.take().expect("stdout"));
    let client = Reaped(client);
    let mut client_lines = Vec::new();
    wait_for(&host_out, &mut host_lines, Duration::from_secs(30), |l| {
        l.contains("peer 1 joined")
    });
    let idle_rss = proc_kib(pid, "VmRSS:").unwrap_or(0);

    // The flood, watched: the host's peak memory is sampled as it goes.
    let stats = Arc::new(FloodStats::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let flood_start = Instant::now();
    let until = tokio::time::Instant::now() + FLOOD;
    let task = runtime.spawn(flood(addr, fingerprint, until, Arc::clone(&stats)));
    let mut killed = false;
    while !task.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if proc_kib(pid, "VmRSS:").unwrap_or(0) > RSS_KILL_SWITCH {
            killed = true;
            task.abort();
            break;
        }
    }
    let flood_end = Instant::now();
    let peak = proc_kib(pid, "VmHWM:").expect("the host's VmHWM");
    let after = proc_kib(pid, "VmRSS:").unwrap_or(0);
    if let Ok(endpoints) = runtime.block_on(task) {
        for e in endpoints {
            e.close(0u32.into(), b"done");
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));

    // The host stops changing its scene, lingers, and prints its final hash; the client
    // is then asked to stop (SIGINT) and prints its own.
    let host_final = wait_for(&host_out, &mut host_lines, Duration::from_secs(60), |l| {
        l.starts_with("final state hash ")
    });
    let _ = Command::new("kill")
        .args(["-INT", &client.0.id().to_string()])
        .status();
    let client_final = wait_for(
        &client_out,
        &mut client_lines,
        Duration::from_secs(20),
        |l| l.starts_with("final state hash "),
    );
    drop(client);
    drop(host);

    let during: Vec<(Instant, u64)> = host_ticks(&host_lines)
        .into_iter()
        .filter(|&(at, _)| at >= flood_start + Duration::from_millis(500) && at <= flood_end)
        .collect();
    let tick_rate = match (during.first(), during.last()) {
        (Some(&(t0, k0)), Some(&(t1, k1))) if t1 > t0 => {
            (k1 - k0) as f64 / t1.duration_since(t0).as_secs_f64()
        }
        _ => 0.0,
    };
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    eprintln!(
        "flood: {ATTACKERS} attackers for {:.1} s: {} connections ({} failed to connect), {} streams, {:.0} MiB written to streams, {} datagrams",
        flood_end.duration_since(flood_start).as_secs_f64(),
        stats.connections.load(Ordering::Relaxed),
        stats.failed_connects.load(Ordering::Relaxed),
        stats.streams.load(Ordering::Relaxed),
        mib(stats.stream_bytes.load(Ordering::Relaxed)),
        stats.datagrams.load(Ordering::Relaxed),
    );
    eprintln!(
        "host: RSS {:.1} MiB before the flood, peak (VmHWM) {:.1} MiB, {:.1} MiB after; ticks {tick_rate:.1}/s during the flood (rate {RATE})",
        mib(idle_rss),
        mib(peak),
        mib(after)
    );
    eprintln!("host:   {host_final}\nclient: {client_final}");
    assert!(
        !killed,
        "the host passed {} MiB: flood stopped",
        mib(RSS_KILL_SWITCH)
    );
    let attempts =
        stats.connections.load(Ordering::Relaxed) + stats.failed_connects.load(Ordering::Relaxed);
    assert!(
        attempts >= ATTACKERS as u64 && stats.connections.load(Ordering::Relaxed) > 0,
        "the flood did not reach the host"
    );
    assert!(
        peak < RSS_BOUND,
        "the host's peak resident memory was {:.1} MiB, above {:.0} MiB",
        mib(peak),
        mib(RSS_BOUND)
    );
    assert!(
        tick_rate >= RATE * TICK_SHARE,
        "the host ticked {tick_rate:.1} times a second under the flood, below {:.0}",
        RATE * TICK_SHARE
    );
    assert_eq!(
        hash_after(&host_final, "final state hash "),
        hash_after(&client_final, "final state hash "),
        "the admitted client did not converge"
    );
}

// In-process sessions: what a connection may do before and after admission.

/// A host session on loopback, ticked by the test.
struct Local {
    host: Session,
    secret: JoinSecret,
    fingerprint: Fingerprint,
    registry: Registry,
    addr: SocketAddr,
}

fn registry_of(types: &[(&str, Layout)]) -> Registry {
    let mut registry = Registry::new();
    for (name, layout) in types {
        registry.register(name, *layout).expect("register");
    }
    registry
}

fn host_registry() -> Registry {
    registry_of(&[
        ("test.Position", Layout::Fixed(12)),
        ("test.Color", Layout::Fixed(4)),
        ("test.Name", Layout::Variable { max: 32 }),
    ])
}

fn local_host(config: SessionConfig) -> Local {
    let registry = host_registry();
    let mut world = World::default();
    for d in registry.descriptors() {
        world.register(&d.name, d.layout).expect("register");
    }
    let e = world.spawn().expect("spawn");
    world
        .set(e, ComponentId::of_name("test.Color"), &[1, 2, 3, 4])
        .expect("set");
    let identity = HostIdentity::self_signed(&["localhost".to_owned()]).expect("identity");
    let secret = JoinSecret::generate();
    let host = Session::host(
        "127.0.0.1:0".parse().expect("addr"),
        world,
        &identity,
        secret.clone(),
        config,
    )
    .expect("host");
    let addr = host.local_addr().expect("addr");
    Local {
        host,
        secret,
        fingerprint: identity.fingerprint(),
        registry,
        addr,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

impl Local {
    fn token(&self, peer: u16) -> String {
        mint(&self.secret, peer, unix_now() + 60, None).to_text()
    }

    fn join(&self, token: &str, registry: &Registry) -> Session {
        let trust = ServerTrust::Fingerprint(self.fingerprint);
        Session::join(self.addr, &trust, token, registry, SessionConfig::default()).expect("join")
    }

    /// Ticks the host and `client` until the client joins (`Ok(peer)`) or is disconnected
    /// (`Err(reason, cause)`).
    fn outcome(&mut self, client: &mut Session) -> Result<u16, (String, DisconnectCause)> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            assert!(
                Instant::now() < deadline,
                "neither joined nor refused in time"
            );
            self.host.tick();
            client.tick();
            for event in client.poll_events(usize::MAX) {
                match event {
                    SessionEvent::Joined { peer } => return Ok(peer),
                    SessionEvent::Disconnected { reason, cause } => return Err((reason, cause)),
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Runs `task` on `runtime` while ticking the host, until it ends.
    fn drive<T: Send + 'static>(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        task: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let handle = runtime.spawn(task);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !handle.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the raw client did not finish in time"
            );
            self.host.tick();
            std::thread::sleep(Duration::from_millis(2));
        }
        runtime.block_on(handle).expect("raw client task")
    }
}

/// A raw QUIC connection to `addr`, pinning `fingerprint`, with quinn's default limits.
async fn raw_connection(addr: SocketAddr, fingerprint: Fingerprint) -> quinn::Connection {
    let trust = ServerTrust::Fingerprint(fingerprint);
    let config =
        client_config(&trust, Arc::new(quinn::TransportConfig::default())).expect("client config");
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(config);
    endpoint
        .connect(addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake")
}

/// Writes `bytes` repeatedly until a write fails or is blocked for `stall`; returns how
/// many bytes went out.
async fn write_until_blocked(send: &mut quinn::SendStream, bytes: &[u8], stall: Duration) -> usize {
    let mut total = 0;
    loop {
        match tokio::time::timeout(stall, send.write(bytes)).await {
            Ok(Ok(n)) => total += n,
            Ok(Err(_)) | Err(_) => return total,
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn before_admission_a_peer_gets_one_stream_and_a_small_window() {
    let local = local_host(SessionConfig::default());
    let (addr, fingerprint) = (local.addr, local.fingerprint);
    let runtime = runtime();
    let (written, second_bi, uni) = runtime.block_on(async move {
        // A join request announced at the longest length admission reads, then garbage
        // as fast as flow control lets it out: only the request and the admission window
        // can be in flight before the host refuses it.
        let conn = raw_connection(addr, fingerprint).await;
        let (mut send, _recv) = conn.open_bi().await.expect("the join stream");
        send.write_all(&4096u32.to_le_bytes())
            .await
            .expect("prefix");
        let written =
            write_until_blocked(&mut send, &[0x5a; 4096], Duration::from_millis(300)).await;
        // Another connection holding its join stream silent: no second stream of either
        // kind is ever granted.
        let conn = raw_connection(addr, fingerprint).await;
        let (mut send, _recv) = conn.open_bi().await.expect("the join stream");
        send.write_all(&16u32.to_le_bytes()).await.expect("prefix");
        let wait = Duration::from_millis(500);
        let second_bi = tokio::time::timeout(wait, conn.open_bi()).await.is_ok();
        let uni = tokio::time::timeout(wait, conn.open_uni()).await.is_ok();
        (written, second_bi, uni)
    });
    eprintln!("a connection wrote {written} bytes before admission refused it");
    assert!(written >= 4096, "{written}");
    assert!(
        written <= 4096 + ADMISSION_RECEIVE_WINDOW as usize,
        "{written} bytes accepted before admission"
    );
    assert!(
        !second_bi,
        "a second bidirectional stream was granted before admission"
    );
    assert!(!uni, "a unidirectional stream was granted");
    drop(local);
}

#[test]
fn a_full_admission_gate_asks_to_retry_then_refuses_until_a_place_frees() {
    let config = SessionConfig {
        max_pending_admissions: 1,
        admission_timeout: Duration::from_secs(2),
        ..SessionConfig::default()
    };
    let mut local = local_host(config);
    let (addr, fingerprint) = (local.addr, local.fingerprint);
    let runtime = runtime();
    // A connection that takes the only place and never finishes its join request.
    let holder = runtime.block_on(async move {
        let conn = raw_connection(addr, fingerprint).await;
        let (mut send, _recv) = conn.open_bi().await.expect("the join stream");
        send.write_all(&16u32.to_le_bytes()).await.expect("prefix");
        (conn, send)
    });
    let started = Instant::now();
    let mut late = local.join(&local.token(1), &local.registry.clone());
    let (reason, cause) = local.outcome(&mut late).expect_err("refused while full");
    assert!(reason.contains("admitting too many"), "{reason}");
    assert_eq!(cause, DisconnectCause::TimedOut);
    // The holder is closed at its deadline, which frees the place.
    let closed = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), holder.0.closed()).await });
    let closed = closed.expect("the holder was closed at its admission deadline");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(format!("{closed}").contains("no join request"), "{closed}");
    let mut next = local.join(&local.token(2), &local.registry.clone());
    assert_eq!(local.outcome(&mut next), Ok(2));
}

#[test]
fn a_registry_mismatch_names_the_differing_types_to_a_valid_token_only() {
    let mut local = local_host(SessionConfig::default());
    let other = registry_of(&[
        ("test.Position", Layout::Fixed(16)),
        ("test.Color", Layout::Fixed(4)),
        ("test.Extra", Layout::Fixed(1)),
    ]);
    let mut client = local.join(&local.token(1), &other);
    let (reason, cause) = local.outcome(&mut client).expect_err("refused");
    assert_eq!(cause, DisconnectCause::Refused);
    for expected in [
        "\"test.Position\" is fixed 16 bytes here and fixed 12 bytes on the host",
        "\"test.Name\" (variable up to 32 bytes) is missing here",
        "\"test.Extra\" (fixed 1 bytes) is missing on the host",
    ] {
        assert!(reason.contains(expected), "{expected:?} not in {reason:?}");
    }
    assert!(!reason.contains("test.Color"), "{reason}");
    assert!(!reason.contains("0x"), "names, not hashes: {reason}");
    // Without a valid token, nothing of the host's types is told.
    let forged = mint(&JoinSecret::generate(), 2, unix_now() + 60, None).to_text();
    let mut client = local.join(&forged, &other);
    let (reason, _) = local.outcome(&mut client).expect_err("refused");
    assert!(reason.contains("forged"), "{reason}");
    assert!(!reason.contains("test."), "{reason}");
}

#[test]
fn a_resume_token_is_checked_before_the_registry() {
    let mut local = local_host(SessionConfig::default());
    let (addr, fingerprint) = (local.addr, local.fingerprint);
    let runtime = runtime();
    let request = Encoder::new().resume_request(3, &[7; 16], 0x1234, 0);
    let answer = local.drive(&runtime, async move {
        let conn = raw_connection(addr, fingerprint).await;
        let (mut send, mut recv) = conn.open_bi().await.expect("the join stream");
        write_message(&mut send, &request).await.expect("request");
        read_message(&mut recv, 1 << 20).await.expect("answer")
    });
    let Ok(Message::JoinRefused(refused)) = wire::decode(&answer) else {
        panic!("not a refusal");
    };
    assert_eq!(refused.reason(), fb::RefuseReason::ResumeUnknown);
    assert!(refused.host_types().is_none());
}

#[test]
fn an_admitted_peer_cannot_announce_a_stream_message_past_the_session_bound() {
    let mut local = local_host(SessionConfig::default());
    let (addr, fingerprint) = (local.addr, local.fingerprint);
    let request = Encoder::new().join_request(&local.token(1), local.registry.hash());
    let runtime = runtime();
    let closed = local.drive(&runtime, async move {
        let conn = raw_connection(addr, fingerprint).await;
        let (mut send, mut recv) = conn.open_bi().await.expect("the join stream");
        write_message(&mut send, &request).await.expect("request");
        let answer = read_message(&mut recv, 1 << 20).await.expect("answer");
        assert!(matches!(
            wire::decode(&answer),
            Ok(Message::JoinAccepted(_))
        ));
        // Admitted, but a message of 8 MiB is far past anything the session sends.
        send.write_all(&(8u32 << 20).to_le_bytes())
            .await
            .expect("prefix");
        tokio::time::timeout(Duration::from_secs(10), conn.closed()).await
    });
    let closed = closed.expect("the host closed the connection");
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(u64::from(close.error_code), 2, "{close:?}");
            let reason = String::from_utf8_lossy(&close.reason);
            assert!(reason.contains("exceeds"), "{reason}");
        }
        other => panic!("unexpected end {other}"),
    }
}
