//! `theta bench rooms` as a user runs it, on a tiny case: a `theta serve` child, two rooms
//! of two `theta join` clients each (each room's first client spawning and moving its
//! objects), the report's lines present and parsing, every child gone afterwards; and
//! `theta join --own-objects` against a server, a second client receiving the objects.
//! No timing is asserted.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const THETA: &str = env!("CARGO_BIN_EXE_theta");

/// Waits for a child with a deadline; kills it when the deadline passes.
fn wait_output(mut child: Child, limit: Duration) -> (bool, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            return (status.success(), text);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            let output = child.wait_with_output().unwrap();
            panic!("timed out:\n{}", String::from_utf8_lossy(&output.stdout));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True while process `pid` exists (a zombie included: not reaped).
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pids the bench said its servers have.
fn server_pids(output: &str) -> Vec<u32> {
    output
        .lines()
        .filter_map(|l| {
            l.split_once("server pid ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// The word after `key` in `line`.
fn word_after<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("{key:?} in {line}"))
        + key.len();
    line[at..].split_whitespace().next().unwrap_or_default()
}

#[test]
fn bench_rooms_reports_rooms_held_cpu_and_memory_against_one_room() {
    let bench = Command::new(THETA)
        .args([
            "bench",
            "rooms",
            "--rooms",
            "2",
            "--clients-per-room",
            "2",
            "--objects",
            "20",
            "--seconds",
            "1",
            "--warmup",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, output) = wait_output(bench, Duration::from_secs(180));
    assert!(ok, "the bench failed:\n{output}");
    // rooms, clients, avatars, server Hz, kept, tick mean, server CPU, cores/client,
    // clients/core, client CPU, RSS start, RSS open, MB/room.
    for (rooms, clients) in [("1", "2"), ("2", "4")] {
        let row: Vec<&str> = output
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|c| c.len() == 13 && c[0] == rooms && c[1] == clients && c[2] == "on")
            .unwrap_or_else(|| panic!("no row for {rooms} rooms:\n{output}"));
        let number = |i: usize| -> f64 {
            row[i]
                .parse()
                .unwrap_or_else(|_| panic!("column {i} of {row:?}"))
        };
        assert!(number(3) > 0.0, "server ticks: {row:?}");
        assert!(["yes", "NO"].contains(&row[4]), "{row:?}");
        assert!(number(5) > 0.0, "tick mean: {row:?}");
        assert!(number(6) >= 0.0 && number(7) >= 0.0, "server CPU: {row:?}");
        let clients: f64 = clients.parse().unwrap();
        assert!(
            (number(7) * clients - number(6)).abs() < 1e-3,
            "cores per client: {row:?}"
        );
        assert!(number(8) > 0.0, "clients per core: {row:?}");
        assert!(
            number(10) > 0.0 && number(11) > 0.0,
            "resident memory: {row:?}"
        );
        number(12);
    }
    let held: Vec<&str> = output.lines().filter(|l| l.starts_with("held: ")).collect();
    assert_eq!(held.len(), 2, "{output}");
    assert!(
        held.iter()
            .any(|l| l.starts_with("held: 2 rooms x 2 clients = 4 clients, 20 objects each")),
        "{output}"
    );
    let ratio = output
        .lines()
        .find(|l| l.starts_with("2 rooms against 1, avatars on: "))
        .unwrap_or_else(|| panic!("no ratio line:\n{output}"));
    for key in [
        "server CPU per client ",
        "resident memory per room ",
        "tick mean per room ",
    ] {
        let ratio = word_after(ratio, key);
        let x: f64 = ratio
            .strip_suffix('x')
            .unwrap_or_else(|| panic!("{key}{ratio}"))
            .parse()
            .unwrap();
        assert!(x.is_finite(), "{key}{ratio}");
    }
    assert_eq!(
        output
            .matches("every client receiving state and 3 remote devices")
            .count(),
        2,
        "{output}"
    );
    let pids = server_pids(&output);
    assert_eq!(pids.len(), 2, "{output}");
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "a server outlived the bench"
    );
}

#[test]
fn bench_rooms_refuses_bad_flags() {
    for (args, named) in [
        (&["--rooms", "0"][..], "1..=1000"),
        (&["--clients-per-room", "65"][..], "1..=64"),
        (&["--objects", "0"][..], "1..=1000000"),
        (&["--seconds", "0"][..], "0.5..=3600"),
        (&["--avatars", "maybe"][..], "both"),
    ] {
        let output = Command::new(THETA)
            .args(["bench", "rooms"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}:\n{stderr}");
    }
    let output = Command::new(THETA)
        .args(["bench", "rooms", "--help"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--rooms",
        "--clients-per-room",
        "--objects",
        "--avatars",
        "--processes",
    ] {
        assert!(help.contains(option), "{option}:\n{help}");
    }
}

/// Reads the server's lines until its address, fingerprint and state directory are known.
fn server_ready(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> (String, String) {
    let (mut addr, mut fingerprint) = (None, None);
    while addr.is_none() || fingerprint.is_none() {
        let line = lines.next().expect("the server's start lines").unwrap();
        if let Some(rest) = line.strip_prefix("theta serve: listening on ") {
            addr = rest.split_whitespace().next().map(str::to_owned);
        } else if let Some(fp) = line.strip_prefix("fingerprint ") {
            fingerprint = Some(fp.trim().to_owned());
        }
    }
    (addr.unwrap(), fingerprint.unwrap())
}

#[test]
fn join_own_objects_fills_the_room_and_another_client_receives_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(THETA)
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics", "off"])
        .args(["--log-level", "warn", "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let (addr, fingerprint) = server_ready(&mut lines);
    // Keep draining the server's stdout so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || for _ in lines {});
    let secret = std::fs::read_to_string(dir.path().join("join-secret.hex")).unwrap();
    let token = |room: &str, peer: &str| {
        let out = Command::new(THETA)
            .args([
                "token",
                "--secret",
                secret.trim(),
                "--room",
                room,
                "--peer",
                peer,
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // Two clients of room a and one of room b in one process: the first of each room owns
    // 15 objects; each client holds only its own room's.
    let join = Command::new(THETA)
        .args(["join", &addr, "--fingerprint", &fingerprint])
        .args(["--token", &token("a", "1"), "--token", &token("a", "2")])
        .args(["--token", &token("b", "1")])
        .args([
            "--own-objects",
            "15",
            "--move-percent",
            "20",
            "--ticks",
            "150",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, output) = wait_output(join, Duration::from_secs(60));
    server.kill().ok();
    server.wait().ok();
    drain.join().ok();
    assert!(ok, "the clients failed:\n{output}");
    for owner in [
        "[room a peer 1] spawned 15 objects",
        "[room b peer 1] spawned 15 objects",
    ] {
        assert!(output.contains(owner), "{owner}:\n{output}");
    }
    assert!(
        !output.contains("[room a peer 2] spawned"),
        "only the first client of a room owns objects:\n{output}"
    );
    // Every client holds its room's 15 objects (a transform and a color each); the second
    // client of room a receives them moving.
    let last = |who: &str| {
        output
            .lines()
            .rfind(|l| l.starts_with(who) && l.contains(" s] host tick "))
            .unwrap_or_else(|| panic!("no stats of {who}:\n{output}"))
            .to_owned()
    };
    for who in ["[room a peer 1]", "[room a peer 2]", "[room b peer 1]"] {
        let line = last(who);
        assert!(
            line.contains("| 15 entities, 30 components |"),
            "{who}: {line}"
        );
    }
    let line = last("[room a peer 2]");
    let events: u64 = line
        .split(" | ")
        .find_map(|part| part.strip_suffix(" events")?.parse().ok())
        .unwrap_or_else(|| panic!("no events in {line}"));
    assert!(events > 30, "the objects moved: {line}");
}
