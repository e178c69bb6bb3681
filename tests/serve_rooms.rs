//! `theta serve` as a process of its own, its clients in this one, every client's path
//! delayed 15 ± 10 ms with loss, duplication and reordering (127.0.0.1 only): two rooms
//! at once, each converging on its own and seeing nothing of the other; a client leaving
//! and its entities staying with the room; a late joiner; refusals named (a token without
//! a room, another registry, a full room); SIGTERM draining within its bound, telling the
//! clients and saving every room; a restarted server with the same fingerprint restoring
//! what was saved.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use theta_net::net::faults::{FaultConfig, FaultControl};
use theta_net::net::session::{DisconnectCause, Session, SessionConfig, SessionEvent};
use theta_net::net::tls::{Fingerprint, ServerTrust};
use theta_net::net::token::{mint, mint_for_room, JoinSecret};
use theta_net::server::RoomId;
use theta_net::{ComponentId, EntityId, Layout, Registry};

const TICK: Duration = Duration::from_micros(16_667);
/// Entities each writing client spawns.
const OWN: usize = 5;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn registry(extra: bool) -> (Registry, [ComponentId; 2]) {
    let mut registry = Registry::new();
    let transform = registry
        .register("serve.Transform", Layout::Fixed(28))
        .unwrap();
    let name = registry
        .register("serve.Name", Layout::Variable { max: 64 })
        .unwrap();
    if extra {
        registry.register("serve.Extra", Layout::Fixed(4)).unwrap();
    }
    (registry, [transform, name])
}

/// A transform whose first float says who wrote it (the room's mark) and when.
fn transform(mark: f32, step: u32) -> [u8; 28] {
    let mut bytes = [0u8; 28];
    bytes[..4].copy_from_slice(&mark.to_le_bytes());
    bytes[4..8].copy_from_slice(&(step as f32).to_le_bytes());
    bytes
}

struct Server {
    child: Child,
    addr: SocketAddr,
    fingerprint: Fingerprint,
    secret: JoinSecret,
    metrics: Option<SocketAddr>,
    /// What it prints after its ready lines.
    stdout: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `theta serve` on `dir`'s config and state; waits (bounded) for its ready lines.
    fn start(dir: &Path) -> Server {
        let config = dir.join("serve.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nstate_dir = {:?}\nsave_interval_secs = 1\ndrain_timeout_secs = 5\n\n[limits]\nmax_peers = 2\n",
                dir.join("state")
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_theta"))
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--log-level", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("theta serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end, so that the server's last lines always have a reader.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut addr, mut fingerprint, mut metrics) = (None, None, None);
        while addr.is_none() || fingerprint.is_none() || metrics.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("theta serve printed its address and fingerprint");
            if let Some(rest) = line.strip_prefix("theta serve: listening on ") {
                addr = rest.split(' ').next().and_then(|a| a.parse().ok());
            }
            if let Some(hex) = line.strip_prefix("fingerprint ") {
                fingerprint = Fingerprint::from_hex(hex.trim()).ok();
            }
            if let Some(rest) = line.strip_prefix("metrics     http://") {
                metrics = rest.split('/').next().and_then(|a| a.parse().ok());
            }
        }
        let secret = std::fs::read_to_string(dir.join("state").join("join-secret.hex")).unwrap();
        Server {
            child,
            addr: addr.unwrap(),
            fingerprint: fingerprint.unwrap(),
            secret: JoinSecret::from_hex(&secret).unwrap(),
            metrics,
            stdout: rx,
        }
    }

    /// GET `path` of the metrics endpoint: the status line and the body.
    fn get(&self, path: &str) -> (String, String) {
        use std::io::{Read, Write};
        let addr = self.metrics.expect("metrics on");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        (
            head.lines().next().unwrap_or("").to_owned(),
            body.to_owned(),
        )
    }

    /// SIGKILL: no drain, no save.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn token(&self, room: &str, peer: u16) -> String {
        let room = RoomId::new(room).unwrap();
        mint_for_room(&self.secret, &room, peer, unix_now() + 60, None).to_text()
    }

    /// SIGTERM, the clients ticking meanwhile (they answer the goodbye); returns how long
    /// the server took to exit, whether it exited well, and its last line.
    fn terminate(mut self, clients: &mut [&mut Client]) -> (Duration, bool, String) {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let took = started.elapsed();
                // The reader ends at the exited child's end of output.
                let last = self.stdout.iter().last().unwrap_or_default();
                return (took, status.success(), last);
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("theta serve did not exit within 20 s of SIGTERM");
            }
            run(clients, Duration::from_millis(20), |_| false);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    name: &'static str,
    session: Session,
    events: Vec<SessionEvent>,
    own: Vec<EntityId>,
}

/// Wi-Fi-like: 15 ± 10 ms each way, 5 % loss, duplicates and reordering.
fn wifi(seed: u64) -> SessionConfig {
    let control = FaultControl::new();
    control
        .set(FaultConfig {
            seed,
            loss: 0.05,
            duplicate: 0.02,
            reorder: 0.05,
            delay: Duration::from_millis(15),
            jitter: Duration::from_millis(10),
            ..FaultConfig::default()
        })
        .unwrap();
    SessionConfig {
        faults: Some(control),
        train_after_samples: 0,
        ..SessionConfig::default()
    }
}

fn join(
    server: &Server,
    name: &'static str,
    token: &str,
    registry: &Registry,
    seed: u64,
) -> Client {
    let session = Session::join(
        server.addr,
        &ServerTrust::Fingerprint(server.fingerprint),
        token,
        registry,
        wifi(seed),
    )
    .unwrap();
    Client {
        name,
        session,
        events: Vec::new(),
        own: Vec::new(),
    }
}

/// Ticks every client, paced at 60 Hz, until `done` or `bound`; true when done.
fn run(
    clients: &mut [&mut Client],
    bound: Duration,
    mut done: impl FnMut(&[&mut Client]) -> bool,
) -> bool {
    let deadline = Instant::now() + bound;
    let mut next = Instant::now();
    loop {
        for c in clients.iter_mut() {
            c.session.tick();
            let events = c.session.poll_events(usize::MAX);
            c.events.extend(events);
        }
        if done(clients) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        next += TICK;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

fn disconnect(c: &Client) -> Option<(String, DisconnectCause)> {
    c.events.iter().find_map(|e| match e {
        SessionEvent::Disconnected { reason, cause } => Some((reason.clone(), *cause)),
        _ => None,
    })
}

fn joined(c: &Client) -> bool {
    c.session.peer().is_some()
}

/// The marks (first float of each transform) a client holds.
fn marks(c: &Client, transform: ComponentId) -> Vec<f32> {
    let world = c.session.world();
    let mut marks: Vec<f32> = world
        .entities()
        .filter_map(|e| world.get(e, transform))
        .map(|v| f32::from_le_bytes([v[0], v[1], v[2], v[3]]))
        .collect();
    marks.sort_by(f32::total_cmp);
    marks
}

/// Spawns `OWN` entities with the client's mark and a name.
fn spawn_own(c: &mut Client, transform: ComponentId, name: ComponentId, mark: f32) {
    for i in 0..OWN {
        let e = c.session.spawn().unwrap();
        c.session
            .set(e, transform, &transform_bytes(mark, i))
            .unwrap();
        c.session
            .set(e, name, format!("{}-{i}", c.name).as_bytes())
            .unwrap();
        c.own.push(e);
    }
}

fn transform_bytes(mark: f32, i: usize) -> [u8; 28] {
    transform(mark, i as u32)
}

/// Moves every entity a client owns.
fn move_own(c: &mut Client, transform_id: ComponentId, mark: f32, step: u32) {
    for &e in &c.own.clone() {
        c.session
            .set(e, transform_id, &transform(mark, step))
            .unwrap();
    }
}

#[test]
fn two_rooms_on_one_server_process_converge_apart_survive_leavers_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (types, [transform_id, name_id]) = registry(false);

    // Alpha: peers 1 and 2. Beta: peer 1 again (peer ids are per room).
    let mut a1 = join(&server, "a1", &server.token("alpha", 1), &types, 1);
    let mut a2 = join(&server, "a2", &server.token("alpha", 2), &types, 2);
    let mut b1 = join(&server, "b1", &server.token("beta", 1), &types, 3);
    assert!(
        run(
            &mut [&mut a1, &mut a2, &mut b1],
            Duration::from_secs(15),
            |c| c.iter().all(|c| joined(c))
        ),
        "joined: {:?}",
        [&a1, &a2, &b1].map(disconnect)
    );
    spawn_own(&mut a1, transform_id, name_id, 1.0);
    spawn_own(&mut a2, transform_id, name_id, 2.0);
    spawn_own(&mut b1, transform_id, name_id, 100.0);
    for step in 0..30 {
        move_own(&mut a1, transform_id, 1.0, step);
        move_own(&mut a2, transform_id, 2.0, step);
        move_own(&mut b1, transform_id, 100.0, step);
        run(&mut [&mut a1, &mut a2, &mut b1], Duration::ZERO, |_| false);
    }
    let converged = run(
        &mut [&mut a1, &mut a2, &mut b1],
        Duration::from_secs(15),
        |c| {
            c[0].session.state_hash() == c[1].session.state_hash()
                && c[0].session.world().entity_count() == 2 * OWN
                && c[2].session.world().entity_count() == OWN
        },
    );
    assert!(
        converged,
        "alpha {} / {} entities, beta {}",
        a1.session.world().entity_count(),
        a2.session.world().entity_count(),
        b1.session.world().entity_count()
    );
    // Nothing of beta in alpha, nothing of alpha in beta.
    assert!(marks(&a1, transform_id)
        .iter()
        .all(|&m| m == 1.0 || m == 2.0));
    assert_eq!(marks(&b1, transform_id), vec![100.0; OWN]);

    // A client through the C ABI joins beta exactly as it joins a hosted session, and
    // converges with b1.
    let c_client = c_abi::join(&server, &server.token("beta", 2));
    let beta_now = b1.session.state_hash();
    let mut c_hash = 0;
    let caught_up = run(
        &mut [&mut a1, &mut a2, &mut b1],
        Duration::from_secs(15),
        |_| {
            c_hash = c_abi::tick(c_client);
            c_hash == beta_now
        },
    );
    assert!(
        caught_up,
        "the C client's hash {c_hash:#x}, beta's {beta_now:#x}"
    );
    c_abi::free(c_client);

    // a2 leaves; its entities stay with the room. A late joiner, peer 3, gets them all.
    drop(a2);
    let mut a3 = join(&server, "a3", &server.token("alpha", 3), &types, 4);
    let caught_up = run(
        &mut [&mut a1, &mut a3, &mut b1],
        Duration::from_secs(15),
        |c| joined(c[1]) && c[1].session.state_hash() == c[0].session.state_hash(),
    );
    assert!(caught_up, "late joiner: {:?}", disconnect(&a3));
    assert_eq!(
        a3.session.world().entity_count(),
        2 * OWN,
        "a2's entities stayed"
    );
    let alpha_hash = a1.session.state_hash();

    // The endpoint: healthy, two rooms, three peers, per-room figures.
    let (status, _) = server.get("/healthz");
    assert!(status.contains("200"), "{status}");
    // Its figures are refreshed every second.
    let wanted = [
        "theta_rooms 2",
        "theta_room_entities{room=\"alpha\"} 10",
        "theta_room_peers{room=\"beta\"} 1",
    ];
    let mut metrics = String::new();
    let shown = run(
        &mut [&mut a1, &mut a3, &mut b1],
        Duration::from_secs(5),
        |_| {
            metrics = server.get("/metrics").1;
            wanted.iter().all(|w| metrics.lines().any(|l| l == *w))
        },
    );
    assert!(shown, "{wanted:?} in:\n{metrics}");

    // Refused, each naming what was wrong: a token without a room, another registry, a
    // full room (alpha holds a1 and a3, its limit is 2).
    let old = mint(&server.secret, 7, unix_now() + 60, None).to_text();
    let (other, _) = registry(true);
    let mut refused = [
        join(&server, "v1", &old, &types, 5),
        join(&server, "types", &server.token("alpha", 8), &other, 6),
        join(&server, "full", &server.token("alpha", 9), &types, 7),
    ];
    {
        let mut all: Vec<&mut Client> = refused.iter_mut().collect();
        assert!(run(&mut all, Duration::from_secs(15), |c| c
            .iter()
            .all(|c| disconnect(c).is_some())));
    }
    let reasons: Vec<String> = refused.iter().map(|c| disconnect(c).unwrap().0).collect();
    assert!(
        reasons[0].contains("names no room (a version-1 token"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("registry mismatch") && reasons[1].contains("serve.Extra"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[2].contains("room alpha is full: 2 peers"),
        "{}",
        reasons[2]
    );

    // The rooms are unharmed.
    run(
        &mut [&mut a1, &mut a3, &mut b1],
        Duration::from_millis(300),
        |_| false,
    );
    assert!(disconnect(&a1).is_none() && disconnect(&a3).is_none() && disconnect(&b1).is_none());
    assert_eq!(a3.session.state_hash(), alpha_hash);
    let beta_hash = b1.session.state_hash();
    let fingerprint = server.fingerprint;

    // SIGTERM: the server drains within its bound, the clients hear it, every room is saved.
    let (took, clean, last) = server.terminate(&mut [&mut a1, &mut a3, &mut b1]);
    assert!(clean, "theta serve exits with success");
    assert!(took < Duration::from_secs(5 + 3), "drained in {took:?}");
    assert_eq!(
        last, "theta serve: stopped; 2 rooms opened, 2 saved at exit",
        "every client gone before the bound, every room saved"
    );
    assert!(run(
        &mut [&mut a1, &mut a3, &mut b1],
        Duration::from_secs(10),
        |c| c.iter().all(|c| disconnect(c).is_some())
    ));
    for c in [&a1, &a3, &b1] {
        let (reason, cause) = disconnect(c).unwrap();
        assert_eq!(cause, DisconnectCause::HostClosed, "{}: {reason}", c.name);
    }
    let state: PathBuf = dir.path().join("state");
    assert!(state.join("alpha.theta").exists() && state.join("beta.theta").exists());

    // Restarted on the same state: the same fingerprint, each room as it was saved.
    let restarted = Server::start(dir.path());
    assert_eq!(restarted.fingerprint, fingerprint, "the same certificate");
    let mut a5 = join(&restarted, "a5", &restarted.token("alpha", 5), &types, 8);
    let mut b5 = join(&restarted, "b5", &restarted.token("beta", 5), &types, 9);
    let restored = run(&mut [&mut a5, &mut b5], Duration::from_secs(15), |c| {
        c[0].session.state_hash() == alpha_hash && c[1].session.state_hash() == beta_hash
    });
    assert!(
        restored,
        "alpha {} entities, beta {}: {:?}",
        a5.session.world().entity_count(),
        b5.session.world().entity_count(),
        [&a5, &b5].map(disconnect)
    );
    let (_, clean, _) = restarted.terminate(&mut [&mut a5, &mut b5]);
    assert!(clean);
}

/// A server killed (SIGKILL, no drain) while a client keeps changing its room restarts with
/// what it last saved: every entity, each value one the client wrote, none older than the
/// save interval (and a margin), nothing half-written loaded. The path is clean loopback
/// here, as the point is the server's file, not the network.
#[test]
fn a_server_killed_mid_run_restarts_with_what_it_saved() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (types, [transform_id, name_id]) = registry(false);
    let clean = SessionConfig {
        train_after_samples: 0,
        ..SessionConfig::default()
    };
    let mut writer = Client {
        name: "w",
        session: Session::join(
            server.addr,
            &ServerTrust::Fingerprint(server.fingerprint),
            &server.token("kept", 1),
            &types,
            clean,
        )
        .unwrap(),
        events: Vec::new(),
        own: Vec::new(),
    };
    assert!(run(
        &mut [&mut writer],
        Duration::from_secs(15),
        |c| joined(c[0])
    ));
    spawn_own(&mut writer, transform_id, name_id, 1.0);
    // Every entity moves to step s at tick s, for 2.5 s at 60 Hz (the server saves every
    // second meanwhile); `written[s]` is when step s was written.
    let mut written: Vec<Instant> = vec![Instant::now()];
    let started = Instant::now();
    let mut next = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let step = written.len() as u32;
        move_own(&mut writer, transform_id, 1.0, step);
        written.push(Instant::now());
        run(&mut [&mut writer], Duration::ZERO, |_| false);
        next += TICK;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let killed_at = Instant::now();
    server.kill();
    drop(writer);

    let restarted = Server::start(dir.path());
    let mut reader = join(&restarted, "r", &restarted.token("kept", 2), &types, 11);
    let restored = run(&mut [&mut reader], Duration::from_secs(15), |c| {
        c[0].session.world().entity_count() == OWN
    });
    assert!(restored, "restored: {:?}", disconnect(&reader));
    run(&mut [&mut reader], Duration::from_millis(500), |_| false);
    let world = reader.session.world();
    let mut oldest = killed_at;
    for e in world.entities() {
        let value = world
            .get(e, transform_id)
            .expect("every entity has its transform");
        assert_eq!(&value[..4], &1.0f32.to_le_bytes(), "the writer's mark");
        let step = f32::from_le_bytes([value[4], value[5], value[6], value[7]]) as usize;
        let at = *written
            .get(step)
            .unwrap_or_else(|| panic!("step {step} was never written"));
        oldest = oldest.min(at);
        assert!(
            world.get(e, name_id).is_some_and(|n| n.starts_with(b"w-")),
            "its name"
        );
    }
    // One save interval (1 s), the server's lag behind the writer, and a margin for a
    // slow machine.
    let age = killed_at.duration_since(oldest);
    assert!(
        age < Duration::from_millis(2000),
        "restored a value {age:?} old"
    );
    restarted.kill();
}

/// A client through the C ABI (`theta_session_join`), as an engine plugin runs one.
mod c_abi {
    use std::ptr::null;

    use theta_net::ffi::*;

    use super::Server;

    #[track_caller]
    fn ok(status: ThetaStatus) {
        assert_eq!(status, ThetaStatus::Ok);
    }

    /// Joins with `token`, the test's component types registered in the same order.
    pub fn join(server: &Server, token: &str) -> (ThetaSession, ThetaWorld) {
        let mut world = ThetaWorld { id: 0 };
        let (mut transform, mut name) = (0, 0);
        let mut session = ThetaSession { id: 0 };
        let addr = server.addr.to_string();
        let fingerprint = server.fingerprint.0;
        // SAFETY: valid names, byte ranges and out-pointers; NULL configs.
        unsafe {
            ok(theta_world_new(null(), &mut world));
            ok(theta_world_register_fixed(
                world,
                b"serve.Transform".as_ptr(),
                15,
                28,
                &mut transform,
            ));
            ok(theta_world_register_variable(
                world,
                b"serve.Name".as_ptr(),
                10,
                64,
                &mut name,
            ));
            ok(theta_session_join(
                addr.as_ptr(),
                addr.len(),
                fingerprint.as_ptr(),
                token.as_ptr(),
                token.len(),
                world,
                null(),
                &mut session,
            ));
        }
        (session, world)
    }

    /// One tick; the session's state hash after it.
    pub fn tick((session, _): (ThetaSession, ThetaWorld)) -> u64 {
        ok(theta_session_tick(session));
        let mut hash = 0;
        // SAFETY: a valid out-pointer.
        ok(unsafe { theta_session_state_hash(session, &mut hash) });
        hash
    }

    pub fn free((session, world): (ThetaSession, ThetaWorld)) {
        ok(theta_session_free(session));
        ok(theta_world_free(world));
    }
}

/// `theta serve`'s command line: help, a bad config named by file, line and key (exit 1),
/// a bad room id named by option (exit 2), nothing left running.
#[test]
fn the_serve_command_line_names_what_is_wrong() {
    let theta = env!("CARGO_BIN_EXE_theta");
    let help = Command::new(theta)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--config",
        "--listen",
        "--state-dir",
        "--metrics",
        "--rate",
        "--log-level",
    ] {
        assert!(text.contains(option), "{option} in:\n{text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[limits]\nmax_peers = 0\n",
    )
    .unwrap();
    let bad = Command::new(theta)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("bad.toml, line 3")
            && err.contains("limits.max_peers")
            && err.contains("out of range"),
        "{err}"
    );
    let secret = "a".repeat(64);
    let room = Command::new(theta)
        .args(["token", "--secret", &secret, "--peer", "1", "--room", "a/b"])
        .output()
        .unwrap();
    assert_eq!(room.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&room.stderr).contains("invalid room id \"a/b\""));
    let good = Command::new(theta)
        .args([
            "token", "--secret", &secret, "--peer", "1", "--room", "lobby",
        ])
        .output()
        .unwrap();
    assert!(good.status.success());
    let token = String::from_utf8_lossy(&good.stdout);
    let parsed = theta_net::net::token::JoinToken::from_text(token.trim()).unwrap();
    assert_eq!(parsed.room(), Some("lobby"));

    // One server per state directory: a second one is refused, naming the first.
    let state = tempfile::tempdir().unwrap();
    let first = Server::start(state.path());
    let second = Command::new(theta)
        .args(["serve", "--config"])
        .arg(state.path().join("serve.toml"))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("is in use by another theta serve")
            && err.contains(&format!("process {}", first.child.id())),
        "{err}"
    );
    first.kill();
}
