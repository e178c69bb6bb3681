//! Builds the C and C++ examples against the header and the static library with warnings
//! as errors, runs them, and checks them under valgrind for leaks and invalid accesses.
//! Valgrind is required on CI (`CI` set) and used whenever it is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folder holding the library artifacts of this very build: `cargo test` leaves them
/// in `target/<profile>/deps/` beside the test binaries (`cargo build` also copies them
/// up one level, where they may be stale).
fn artifact_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().to_path_buf()
}

fn build(compiler: &str, flags: &[&str], source: &str, output: &str) -> PathBuf {
    let library = artifact_dir().join("libtheta_net.a");
    assert!(library.exists(), "{} not built", library.display());
    let binary = std::env::temp_dir().join(format!("{output}-{}", std::process::id()));
    let result = Command::new(compiler)
        .args(flags)
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .arg(format!("-I{}", root().join("include").display()))
        .arg(format!("-I{}", root().join("bindings/cpp").display()))
        .arg(root().join(source))
        .arg(&library)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&binary)
        .output()
        .unwrap_or_else(|e| panic!("run {compiler}: {e}"));
    assert!(
        result.status.success(),
        "{compiler} {source} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    binary
}

fn valgrind_available() -> bool {
    let found = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI needs valgrind: run scripts/install-tools.sh"
    );
    found
}

fn run_checked(binary: &Path) -> String {
    run_checked_with(binary, &[])
}

/// Runs `binary` with `args`, under valgrind when available. The suppressions file holds
/// only the QUIC handshake's false positives in third-party code (see the file).
fn run_checked_with(binary: &Path, args: &[&str]) -> String {
    let output = if valgrind_available() {
        Command::new("valgrind")
            .args([
                "--quiet",
                "--error-exitcode=97",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
            ])
            .arg(format!(
                "--suppressions={}",
                root().join("tests/valgrind/quic.supp").display()
            ))
            .arg(binary)
            .args(args)
            .output()
    } else {
        eprintln!(
            "valgrind not installed: running {} without it",
            binary.display()
        );
        Command::new(binary).args(args).output()
    }
    .unwrap();
    std::fs::remove_file(binary).ok();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} exited with {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        binary.display(),
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn c_example_builds_as_c11_and_converges() {
    let binary = build(
        "cc",
        &["-std=c11"],
        "examples/c/replicate.c",
        "theta-replicate-c",
    );
    let stdout = run_checked(&binary);
    assert!(stdout.contains("converged"), "{stdout}");
    assert!(stdout.contains("snapshot: "), "{stdout}");
}

#[test]
fn cpp_example_builds_without_exceptions_or_rtti_and_converges() {
    let binary = build(
        "c++",
        &["-std=c++17", "-fno-exceptions", "-fno-rtti"],
        "examples/cpp/replicate.cpp",
        "theta-replicate-cpp",
    );
    let stdout = run_checked(&binary);
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
    let stdout = run_checked_with(&binary, &[give_up_after]);
    assert!(stdout.contains("converged"), "{stdout}");
    assert!(stdout.contains("with dictionary"), "{stdout}");
    assert!(stdout.contains("host's head at"), "{stdout}");
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
    run_checked(&binary);
}
