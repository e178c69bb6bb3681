//! The committed header must be what the pinned cbindgen makes of `src/ffi/`, and the
//! shared library must export the `theta_*` functions and nothing else.

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

#[test]
fn committed_header_matches_cbindgen_output() {
    let fresh = std::env::temp_dir().join(format!("theta-header-{}.h", std::process::id()));
    let status = Command::new("bash")
        .arg(root().join("scripts/gen-header.sh"))
        .arg(&fresh)
        .status()
        .expect("run scripts/gen-header.sh");
    assert!(status.success(), "scripts/gen-header.sh failed: is the pinned cbindgen installed? Run scripts/install-tools.sh");
    let generated = std::fs::read_to_string(&fresh).unwrap();
    std::fs::remove_file(&fresh).ok();
    let committed = std::fs::read_to_string(root().join("include/theta.h")).unwrap();
    assert!(
        generated == committed,
        "include/theta.h is stale: run scripts/gen-header.sh and commit the result"
    );
}

#[test]
fn header_carries_versions_and_documents_every_function() {
    let header = std::fs::read_to_string(root().join("include/theta.h")).unwrap();
    for (name, value) in [
        ("THETA_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("THETA_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("THETA_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(
            header.contains(&format!("#define {name} {value}")),
            "{name} must be {value} as in Cargo.toml"
        );
    }
    assert!(header.contains("#define THETA_ABI_VERSION "));
    // Nothing but the C API: every macro, type and function carries the prefix.
    for line in header.lines() {
        if let Some(name) = line.strip_prefix("#define ") {
            assert!(name.starts_with("THETA_"), "foreign macro: {line}");
        }
        if let Some(rest) = line.strip_prefix("} ").filter(|r| r.ends_with(';')) {
            assert!(rest.starts_with("Theta"), "foreign type: {line}");
        }
    }
    // Every declared function is preceded by its documentation.
    let lines: Vec<&str> = header.lines().collect();
    let mut functions = 0;
    for (i, line) in lines.iter().enumerate() {
        // Declarations start at column 0 (`ThetaStatus theta_x(`, `uint32_t theta_y(void);`).
        let declaration =
            !line.starts_with([' ', '/', '#']) && line.contains("theta_") && line.contains('(');
        if declaration {
            functions += 1;
            let above = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap();
            assert!(above.trim_start().starts_with("//"), "undocumented: {line}");
        }
    }
    assert!(functions > 30, "{functions} functions found");
}

#[test]
fn shared_library_exports_only_theta_functions() {
    let library = artifact_dir().join(if cfg!(target_os = "macos") {
        "libtheta_net.dylib"
    } else {
        "libtheta_net.so"
    });
    assert!(library.exists(), "{} not built", library.display());
    let output = Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(&library)
        .output()
        .expect("run nm");
    assert!(output.status.success());
    let symbols: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    let foreign: Vec<&String> = symbols
        .iter()
        .filter(|s| !s.starts_with("theta_"))
        .collect();
    assert!(foreign.is_empty(), "non-theta exports: {foreign:?}");
    for expected in [
        "theta_world_new",
        "theta_replica_poll_events",
        "theta_last_error",
    ] {
        assert!(symbols.iter().any(|s| s == expected), "{expected} missing");
    }
}
