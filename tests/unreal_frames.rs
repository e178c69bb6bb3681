//! The Unreal plugin's engine-free headers (`ThetaNetFrames.h`, `ThetaNetText.h`) built
//! without Unreal, as Unreal builds (no exceptions, no RTTI, warnings as errors), and run:
//! frame conversions checked against cases derived from OpenXR's and Unreal's definitions,
//! the handedness of the change of frame, round trips, and the helpers for peer bytes.
//! Run under valgrind when it is installed (required on CI, as `tests/c_examples.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn public_headers() -> PathBuf {
    root().join("bindings/unreal/ThetaNet/Source/ThetaNet/Public")
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

/// Compiles `bindings/unreal/tests/frames_test.cpp` with `std` and returns the binary.
fn build(std: &str) -> PathBuf {
    let binary =
        std::env::temp_dir().join(format!("theta-unreal-frames-{std}-{}", std::process::id()));
    let output = Command::new("c++")
        .arg(format!("-std={std}"))
        .args(["-fno-exceptions", "-fno-rtti"])
        // Stricter than Unreal's own warnings: narrowing and shadowing are what a header
        // included by engine code must never trip.
        .args([
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Wconversion",
            "-Wshadow",
            "-Werror",
            "-g",
        ])
        .arg(format!("-I{}", root().join("include").display()))
        .arg(format!("-I{}", public_headers().display()))
        .arg(root().join("bindings/unreal/tests/frames_test.cpp"))
        .arg("-o")
        .arg(&binary)
        .output()
        .expect("run c++");
    assert!(
        output.status.success(),
        "c++ -std={std} frames_test.cpp failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

fn run(binary: &Path) -> String {
    let output = if valgrind_available() {
        Command::new("valgrind")
            .args(["--quiet", "--error-exitcode=97", "--leak-check=full"])
            .arg(binary)
            .output()
    } else {
        Command::new(binary).output()
    }
    .expect("run the frames test");
    std::fs::remove_file(binary).ok();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "frames test exited with {:?}\n{stdout}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn unreal_frame_conversions_hold_without_the_engine() {
    let stdout = run(&build("c++17"));
    // Every check ran: a count below this means checks were lost, not passed.
    let count: u32 = stdout
        .trim()
        .strip_prefix("ok ")
        .and_then(|s| s.strip_suffix(" checks"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
    assert!(count >= 80, "{stdout}");
}

#[test]
fn unreal_engine_free_headers_build_as_cpp20() {
    // Unreal 5.3+ compiles C++20 by default: the headers must not rely on C++17-only rules.
    let stdout = run(&build("c++20"));
    assert!(stdout.starts_with("ok "), "{stdout}");
}

#[test]
fn unreal_engine_free_headers_include_no_engine_header() {
    for name in ["ThetaNetFrames.h", "ThetaNetText.h"] {
        let text = std::fs::read_to_string(public_headers().join(name)).unwrap();
        for line in text
            .lines()
            .filter(|l| l.trim_start().starts_with("#include"))
        {
            let allowed = line.contains('<') || line.contains("\"theta.h\"");
            assert!(allowed, "{name} must stay engine-free: {line}");
        }
    }
}
