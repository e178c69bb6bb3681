//! Builds the C and C++ examples against the header and the static library (localized, as
//! engines link it) with warnings as errors, runs them, and checks them under valgrind for leaks and invalid accesses.
//! Valgrind is required on CI (`CI` set) and used whenever it is installed.

use std::process::Command;

mod common;
use common::c_build::{build, root, run_checked, valgrind_available};

#[test]
fn c_example_builds_as_c11_and_converges() {
    let binary = build(
        "cc",
        &["-std=c11"],
        "examples/c/replicate.c",
        "theta-replicate-c",
    );
    let stdout = run_checked(&binary, &[]);
    assert!(stdout.contains("converged"), "{stdout}");
    assert!(stdout.contains("snapshot: "), "{stdout}");
}

#[test]
fn c_custom_transport_example_converges_over_its_lossy_transport() {
    let binary = build(
        "cc",
        &["-std=c11"],
        "examples/c/custom_transport.c",
        "theta-custom-transport-c",
    );
    // Seeded: the same losses every run. valgrind runs this debug build ~40 times slower,
    // which only stretches the rounds.
    let stdout = run_checked(&binary, &["7", "3000"]);
    assert!(stdout.contains("client 1: joined as peer 1"), "{stdout}");
    assert!(stdout.contains("client 2: joined as peer 2"), "{stdout}");
    assert!(stdout.contains("rounds after the last write"), "{stdout}");
    assert!(
        stdout.contains("host left: 2 of 2 clients heard it"),
        "{stdout}"
    );
}

#[test]
fn cpp_custom_transport_example_converges_resumes_passes_ownership_filters_interest_and_leaves() {
    let binary = build(
        "c++",
        &["-std=c++17", "-fno-exceptions", "-fno-rtti"],
        "examples/cpp/custom_transport.cpp",
        "theta-custom-transport-cpp",
    );
    let stdout = run_checked(&binary, &[]);
    assert!(stdout.contains("converged: state hash"), "{stdout}");
    assert!(
        stdout.contains("fields: positions to 1 mm, NaN refused"),
        "{stdout}"
    );
    assert!(stdout.contains("message from peer 1: hello"), "{stdout}");
    assert!(stdout.contains("resumed over connection 2"), "{stdout}");
    assert!(
        stdout.contains("ownership: the client took the entity, moved it and let it go"),
        "{stdout}"
    );
    assert!(
        stdout.contains("interest: the entity left the client's world and came back"),
        "{stdout}"
    );
    assert!(stdout.contains("host left"), "{stdout}");
}

#[test]
fn cpp_example_builds_without_exceptions_or_rtti_and_converges() {
    let binary = build(
        "c++",
        &["-std=c++17", "-fno-exceptions", "-fno-rtti"],
        "examples/cpp/replicate.cpp",
        "theta-replicate-cpp",
    );
    let stdout = run_checked(&binary, &[]);
    assert!(stdout.contains("converged"), "{stdout}");
}

#[test]
fn cpp_session_example_builds_without_exceptions_or_rtti_and_converges() {
    let binary = build(
        "c++",
        &["-std=c++17", "-fno-exceptions", "-fno-rtti"],
        "examples/cpp/session.cpp",
        "theta-session-cpp",
    );
    // The example gives up after 10 s; valgrind runs this debug build ~40 times slower.
    let give_up_after = if valgrind_available() { "90" } else { "10" };
    let stdout = run_checked(&binary, &[give_up_after]);
    assert!(stdout.contains("converged"), "{stdout}");
    assert!(stdout.contains("with dictionary"), "{stdout}");
    assert!(stdout.contains("host's head at"), "{stdout}");
    assert!(stdout.contains("closed:   0 closes pending"), "{stdout}");
}

#[test]
fn readme_c_snippet_compiles_and_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("```c\n").expect("a C snippet in the README") + 5;
    let end = start + readme[start..].find("```").unwrap();
    let (includes, body): (Vec<&str>, Vec<&str>) = readme[start..end]
        .lines()
        .partition(|l| l.starts_with("#include"));
    let program = format!(
        "{}\nint main(void) {{\n{}\nreturn 0;\n}}\n",
        includes.join("\n"),
        body.join("\n")
    );
    let source = std::env::temp_dir().join(format!("theta-readme-{}.c", std::process::id()));
    std::fs::write(&source, program).unwrap();
    let binary = build(
        "cc",
        &["-std=c11"],
        source.to_str().unwrap(),
        "theta-readme-c",
    );
    std::fs::remove_file(&source).ok();
    run_checked(&binary, &[]);
}

/// Starts `theta host` for the demo scene and returns it with its `theta join` arguments
/// (address, fingerprint, token) and a reader of the rest of its output.
fn theta_host(
    args: &[&str],
) -> (
    std::process::Child,
    Vec<String>,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut host = Command::new(env!("CARGO_BIN_EXE_theta"))
        .args(["host", "--bind", "127.0.0.1:0", "--entities", "200"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(host.stdout.take().unwrap()).lines();
    let join_line = loop {
        let line = lines.next().expect("the host printed a join line").unwrap();
        if let Some(rest) = line.trim_start().strip_prefix("theta join ") {
            break rest.to_owned();
        }
    };
    // ADDR --fingerprint HEX --token TOKEN
    let words: Vec<&str> = join_line.split_whitespace().collect();
    let join_args = vec![
        words[0].to_owned(),
        words[2].to_owned(),
        words[4].to_owned(),
    ];
    (host, join_args, lines)
}

/// The 16 hex digits after "final state hash " in `output`.
fn final_hash(output: &str) -> &str {
    let at = output
        .find("final state hash ")
        .expect("a final state hash")
        + 17;
    &output[at..at + 16]
}

#[test]
fn c_join_example_joins_theta_host_and_ends_with_its_state() {
    let binary = build("cc", &["-std=c11"], "examples/c/join.c", "theta-join-c");
    // valgrind runs the client ~40 times slower: the host lingers long enough for it to
    // join and catch up, and the client gives up later.
    let (linger, give_up) = if valgrind_available() {
        ("25", "120")
    } else {
        ("3", "30")
    };
    // Under valgrind on a busy machine the client's handshake and join request take
    // seconds: the host waits for them longer than its default.
    let (mut host, join_args, lines) = theta_host(&[
        "--ticks",
        "120",
        "--linger",
        linger,
        "--admission-timeout",
        "60",
    ]);
    let mut args: Vec<&str> = join_args.iter().map(String::as_str).collect();
    args.push(give_up);
    let stdout = run_checked(&binary, &args);
    let host_output: String = lines.map_while(Result::ok).collect::<Vec<_>>().join("\n");
    assert!(host.wait().unwrap().success(), "{host_output}");
    assert!(stdout.contains("joined as peer 1"), "{stdout}");
    assert!(stdout.contains("disconnected: "), "{stdout}");
    assert_eq!(
        final_hash(&stdout),
        final_hash(&host_output),
        "client:\n{stdout}\nhost:\n{host_output}"
    );
}

#[test]
fn readme_quotes_the_c_join_example() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let example = std::fs::read_to_string(root().join("examples/c/join.c")).unwrap();
    let start = example.find("/* --8<-- [start:join] */\n").unwrap() + 26;
    let end = example.find("/* --8<-- [end:join] */").unwrap();
    let quoted = &example[start..end];
    assert!(
        readme.contains(quoted),
        "README.md must quote examples/c/join.c between its --8<-- markers:\n{quoted}"
    );
}

#[test]
fn readme_quotes_the_c_custom_transport_example() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let example = std::fs::read_to_string(root().join("examples/c/custom_transport.c")).unwrap();
    let start = example.find("/* --8<-- [start:drain] */\n").unwrap() + 27;
    let end = example.find("/* --8<-- [end:drain] */").unwrap();
    let quoted = &example[start..end];
    assert!(
        readme.contains(quoted),
        "README.md must quote examples/c/custom_transport.c between its --8<-- markers:\n{quoted}"
    );
}
