//! The `theta` binary as a user runs it: `theta host` and `theta join` in two processes
//! over loopback, and `theta token`.

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
        assert!(!output.status.success());
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(expected), "{message}");
    }
}
