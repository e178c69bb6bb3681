//! The `theta` binary as a user runs it: help and bad options, `theta host` and `theta join`
//! in two processes over loopback, `theta token`, `theta demo` under delay jitter,
//! `theta bench interest` on a small scene, and `theta bench clients` with two clients.

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

fn final_hash(output: &str) -> &str {
    let at = output
        .find("final state hash ")
        .expect("a final state hash line")
        + 17;
    &output[at..at + 16]
}

#[test]
fn host_and_join_in_two_processes_end_with_the_same_state() {
    let mut host = Command::new(THETA)
        .args([
            "host",
            "--bind",
            "127.0.0.1:0",
            "--entities",
            "200",
            "--ticks",
            "180",
            "--rate",
            "60",
            "--linger",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(host.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let join_line = loop {
        let line = lines.next().expect("the host printed a join line").unwrap();
        printed += &line;
        printed.push('\n');
        if let Some(rest) = line.trim_start().strip_prefix("theta join ") {
            break rest.to_owned();
        }
    };
    let args: Vec<&str> = join_line.split_whitespace().collect();
    assert_eq!(args[1], "--fingerprint");
    assert_eq!(args[3], "--token");
    let join = Command::new(THETA)
        .arg("join")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (joined_ok, join_output) = wait_output(join, Duration::from_secs(60));
    // The rest of the host's output.
    for line in lines {
        printed += &line.unwrap();
        printed.push('\n');
    }
    let (host_ok, rest) = wait_output(host, Duration::from_secs(30));
    printed += &rest;
    assert!(joined_ok, "join failed:\n{join_output}");
    assert!(host_ok, "host failed:\n{printed}");
    assert!(join_output.contains("joined as peer 1"), "{join_output}");
    assert!(printed.contains("peer 1 joined"), "{printed}");
    assert_eq!(
        final_hash(&join_output),
        final_hash(&printed),
        "host:\n{printed}\njoin:\n{join_output}"
    );
}

#[test]
fn token_and_bad_arguments() {
    let secret = "11".repeat(32);
    let output = Command::new(THETA)
        .args(["token", "--secret", &secret, "--peer", "3"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 102, "{token}");
    let fingerprint = "ab".repeat(32);
    let cases: [([&str; 6], &str); 2] = [
        (
            [
                "join",
                "127.0.0.1:7000",
                "--fingerprint",
                "00",
                "--token",
                token,
            ],
            "fingerprint",
        ),
        (
            [
                "join",
                "127.0.0.1:notaport",
                "--fingerprint",
                &fingerprint,
                "--token",
                token,
            ],
            "notaport",
        ),
    ];
    for (args, expected) in cases {
        let output = Command::new(THETA).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn every_command_prints_its_help_on_stdout_and_exits_0() {
    let cases: [(&[&str], &[&str]); 10] = [
        (&["--help"], &["demo", "host", "join", "token", "bench"]),
        (&["help", "host"], &["--bind", "--linger"]),
        (
            &["demo", "--help"],
            &[
                "--in-process",
                "--delay <MS>",
                "--jitter <MS>",
                "--loss",
                "--duplicate",
                "--reorder",
            ],
        ),
        (&["demo", "--in-process", "--help"], &["--chunk-bytes"]),
        (&["host", "--help"], &["--bind <ADDR>", "[default: 5]"]),
        (&["join", "-h"], &["<ADDR>", "--fingerprint", "--token"]),
        (&["token", "--help"], &["--secret", "--peer", "--ttl"]),
        (&["bench", "--help"], &["--millis", "--batches", "interest"]),
        (
            &["bench", "interest", "--help"],
            &[
                "--clients",
                "--objects",
                "--moving-percent",
                "--seconds",
                "--radius",
                "--walk",
            ],
        ),
        (
            &["bench", "clients", "--help"],
            &[
                "--clients <N,N,..>",
                "[default: 8,16,32]",
                "--seconds",
                "--avatars",
                "/proc/PID/stat",
                "Ctrl-C",
            ],
        ),
    ];
    for (args, mentions) in cases {
        let output = Command::new(THETA).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{args:?}:\n{stdout}");
        assert!(stdout.contains("Usage: theta"), "{args:?}:\n{stdout}");
        for mention in mentions {
            assert!(
                stdout.contains(mention),
                "{args:?} lacks {mention}:\n{stdout}"
            );
        }
        assert!(output.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn a_bad_option_exits_2_with_a_message_naming_it() {
    let cases: [(&[&str], &str); 7] = [
        (&["demo", "--bogus"], "--bogus"),
        (&["host", "--bind", "127.0.0.1:0", "--nope", "1"], "--nope"),
        (&["frobnicate"], "frobnicate"),
        (&["demo", "--clients", "0"], "1..=64"),
        (&["demo", "--jitter", "x"], "--jitter"),
        (&["demo", "--in-process", "--jitter", "5"], "--jitter"),
        (&["token", "--peer", "1"], "--secret"),
    ];
    for (args, named) in cases {
        let output = Command::new(THETA).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}:\n{stderr}");
        assert!(stderr.contains(named), "{args:?}:\n{stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

/// The row of client `c1` in the demo's "after the last change" table, split in columns.
fn after_change_row(output: &str) -> Vec<String> {
    let table = &output[output
        .find("\nafter the last change")
        .expect("the after-the-last-change table")..];
    let row = table
        .lines()
        .find(|l| l.starts_with("c1 "))
        .expect("a row for c1");
    // "c1  3  41.20 ms  40.11  96.55 ms  yes  312  280  yes": rejoin the "ms" units.
    row.replace(" ms", "ms")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn demo_under_delay_jitter_and_loss_converges_and_reports_the_quiet_after() {
    let demo = Command::new(THETA)
        .args([
            "demo",
            "--clients",
            "1",
            "--entities",
            "100",
            "--ticks",
            "60",
            "--delay",
            "10",
            "--jitter",
            "5",
            "--loss",
            "0.1",
            "--seed",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, output) = wait_output(demo, Duration::from_secs(120));
    assert!(ok, "the demo failed:\n{output}");
    assert!(
        output.contains("path delay 10 ms ± 5 ms (always); while changing: loss 10%"),
        "{output}"
    );
    assert!(output.contains("converged: yes"), "{output}");
    let row = after_change_row(&output);
    assert_eq!(row.len(), 9, "{row:?}");
    let ticks: u64 = row[1].parse().unwrap();
    let ms = |s: &str| -> f64 { s.trim_end_matches("ms").parse().unwrap() };
    let (time, rtt, bound) = (ms(&row[2]), ms(&row[3]), ms(&row[4]));
    // Two one-way delays of 10 ms ± 5 ms at least: the RTT saw the path.
    assert!(rtt >= 10.0, "{row:?}");
    assert!(bound > 2.0 * rtt, "{row:?}");
    assert!(time > 0.0 && ticks >= 1, "{row:?}");
    assert_eq!(row[5], if time <= bound { "yes" } else { "NO" }, "{row:?}");
    let quiet_down: f64 = row[6].parse().unwrap();
    assert!(quiet_down.is_finite(), "{row:?}");
    assert_eq!(row[8], "yes", "held through the quiet window: {row:?}");
    eprintln!("c1 after the last change: {row:?}");
}

#[test]
fn demo_interest_gives_each_client_its_share_under_jitter_and_loss() {
    let demo = Command::new(THETA)
        .args([
            "demo",
            "--clients",
            "3",
            "--entities",
            "400",
            "--ticks",
            "240",
            "--interest",
            "4",
            "--delay",
            "10",
            "--jitter",
            "5",
            "--loss",
            "0.1",
            "--seed",
            "4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, output) = wait_output(demo, Duration::from_secs(120));
    assert!(ok, "the demo failed:\n{output}");
    assert!(
        output.contains("converged: yes, every client's state hash equals the host's (of what that client sees)"),
        "{output}"
    );
    // Each client holds what the host says it sees: a share, not the world.
    let holds: Vec<(u64, u64)> = output
        .lines()
        .filter(|l| l.contains(" holds ") && l.contains("the host says it sees"))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let held = words[2].parse().unwrap();
            let seen = words.last().unwrap().parse().unwrap();
            (held, seen)
        })
        .collect();
    assert_eq!(holds.len(), 3, "{output}");
    for (held, seen) in holds {
        assert_eq!(held, seen, "{output}");
        assert!(held > 0 && held < 300, "a share: {held}\n{output}");
    }
    assert!(output.contains("mean share seen"), "{output}");
}

#[test]
fn demo_grab_passes_objects_between_clients_and_applies_no_late_write() {
    let demo = Command::new(THETA)
        .args([
            "demo",
            "--clients",
            "3",
            "--entities",
            "50",
            "--ticks",
            "240",
            "--grab",
            "4",
            "--delay",
            "10",
            "--jitter",
            "5",
            "--loss",
            "0.1",
            "--seed",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, output) = wait_output(demo, Duration::from_secs(120));
    assert!(ok, "the demo failed:\n{output}");
    assert!(output.contains("converged: yes"), "{output}");
    let line = output
        .lines()
        .find(|l| l.contains("ownership changes"))
        .unwrap_or_else(|| panic!("no grab summary:\n{output}"));
    let changes: u64 = line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(changes > 0, "objects changed hands: {line}");
    assert!(
        output.contains("writes of a previous owner applied after its transfer: 0"),
        "{output}"
    );
}

/// One case's row of `theta bench interest`'s table: bytes per client per second, the
/// share seen (0..=1), and whether its clients hold exactly what they see.
fn interest_row(output: &str, case: &str) -> (f64, f64, bool) {
    let row = output
        .lines()
        .find_map(|l| l.strip_prefix(case))
        .unwrap_or_else(|| panic!("no row for {case}:\n{output}"));
    // CPU median, mean, B/client/s, datagrams, stream, seen %, warm-up, holds.
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns.len(), 8, "{case}: {columns:?}");
    let bytes: f64 = columns[2].parse().unwrap();
    let datagrams: f64 = columns[3].parse().unwrap();
    let stream: f64 = columns[4].parse().unwrap();
    assert!(
        (bytes - datagrams - stream).abs() <= 2.0,
        "{case}: bytes are datagrams and stream: {columns:?}"
    );
    let share: f64 = columns[5].trim_end_matches('%').parse::<f64>().unwrap() / 100.0;
    (bytes, share, columns[7] == "yes")
}

#[test]
fn bench_interest_sends_each_client_less_than_without_and_it_sees_a_share() {
    let bench = Command::new(THETA)
        .args([
            "bench",
            "interest",
            "--objects",
            "2000",
            "--clients",
            "4",
            "--seconds",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, output) = wait_output(bench, Duration::from_secs(120));
    assert!(ok, "the bench failed:\n{output}");
    let (with_bytes, with_share, with_holds) = interest_row(&output, "with interest ");
    let (without_bytes, without_share, without_holds) = interest_row(&output, "without ");
    assert!(with_holds && without_holds, "{output}");
    assert!(
        with_bytes > 0.0 && with_bytes < without_bytes,
        "with interest, each client gets less:\n{output}"
    );
    assert!(with_share > 0.0 && with_share < 1.0, "{output}");
    assert_eq!(without_share, 1.0, "without, every client sees it all");
    for goal in [
        "bytes per client ÷ (share seen",
        "host CPU per tick with ÷ without, median",
    ] {
        assert!(output.contains(goal), "{goal}:\n{output}");
    }
}

/// The host pids `theta bench clients` printed (`host pid P on ...`).
fn host_pids(output: &str) -> Vec<u32> {
    output
        .lines()
        .filter_map(|l| {
            l.split_once("host pid ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// True while process `pid` exists (a zombie included: not reaped).
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn bench_clients_measures_the_host_alone_and_every_client_converges() {
    let bench = Command::new(THETA)
        .args([
            "bench",
            "clients",
            "--clients",
            "2",
            "--seconds",
            "2",
            "--warmup",
            "1",
            "--entities",
            "200",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, output) = wait_output(bench, Duration::from_secs(120));
    assert!(ok, "the bench failed:\n{output}");
    // clients, avatars, host Hz, host CPU, CPU µs per tick, cores/client, clients/core,
    // B/s/client, packets out/in per client per tick, tick median, client CPU, per client
    // (two words), processes.
    for case in ["on", "off"] {
        let row: Vec<&str> = output
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|c| c.len() == 14 && c[0] == "2" && c[1] == case)
            .unwrap_or_else(|| panic!("no row for avatars {case}:\n{output}"));
        let number = |i: usize| -> f64 { row[i].parse().unwrap() };
        assert!(number(2) > 0.0, "host ticks: {row:?}");
        assert!(number(3) > 0.0 && number(4) > 0.0, "host CPU: {row:?}");
        assert!(
            (number(5) * 2.0 - number(3)).abs() < 1e-3,
            "cores per client: {row:?}"
        );
        assert!(number(7) > 1000.0, "bytes per client: {row:?}");
        // State every tick each way: at least one packet per client per tick.
        let packets: Vec<f64> = row[8].split('/').map(|p| p.parse().unwrap()).collect();
        assert!(
            packets.len() == 2 && packets.iter().all(|&p| p >= 0.5),
            "packets per client per tick: {row:?}"
        );
        assert_eq!(
            (row[11], row[12], row[13]),
            ("1.00x", "N=2", "2"),
            "{row:?}"
        );
    }
    assert_eq!(
        output
            .matches("converged: every client ended with the host's final state hash")
            .count(),
        2,
        "{output}"
    );
    for figure in [
        "every client receiving state and 3 remote devices",
        "the avatars' share",
        "clients per host core with objects at 60 Hz and avatars at 90 Hz: N=2 gives",
    ] {
        assert!(output.contains(figure), "{figure}:\n{output}");
    }
    let pids = host_pids(&output);
    assert_eq!(pids.len(), 2, "{output}");
    assert!(pids.iter().all(|&p| !alive(p)), "a host outlived the bench");
}

#[test]
fn bench_clients_refuses_bad_flags_and_kills_its_children_on_ctrl_c() {
    for (args, named) in [
        (&["--clients", "0"][..], "1..=64"),
        (&["--clients", "8,x"][..], "--clients"),
        (&["--seconds", "0"][..], "0.5..=3600"),
        (&["--avatars", "maybe"][..], "both"),
        (&["--processes", "0"][..], "1..=64"),
    ] {
        let output = Command::new(THETA)
            .args(["bench", "clients"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}:\n{stderr}");
    }
    let output = Command::new(THETA)
        .args(["bench", "clients", "--avatar-rate", "30"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--avatar-rate 30 is below --object-rate 60"),
        "{stderr}"
    );

    // Ctrl-C (SIGINT to the bench alone) while it measures: the bench fails and its host
    // and clients are gone.
    let mut bench = Command::new(THETA)
        .args([
            "bench",
            "clients",
            "--clients",
            "2",
            "--seconds",
            "30",
            "--entities",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(bench.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let host = loop {
        let line = lines.next().expect("the bench started a host").unwrap();
        printed += &line;
        printed.push('\n');
        if let Some(&pid) = host_pids(&line).first() {
            break pid;
        }
    };
    // Wait until it measures: the clients are running too.
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed += &line;
        printed.push('\n');
        if line.contains("warming up") {
            break;
        }
    }
    assert!(alive(host), "{printed}");
    let killed = Command::new("kill")
        .args(["-INT", &bench.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (ok, rest) = wait_output(bench, Duration::from_secs(30));
    assert!(!ok, "an interrupted bench fails:\n{printed}{rest}");
    assert!(rest.contains("interrupted"), "{printed}{rest}");
    assert!(!alive(host), "the host outlived the bench");
}
