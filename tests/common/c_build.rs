//! Building C and C++ sources against the header and the static library (localized, as
//! engines link it) with warnings as errors, and running them under valgrind for leaks
//! and invalid accesses. Valgrind is required on CI (`CI` set) and used whenever it is
//! installed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folder holding the library artifacts of this very build: `cargo test` leaves them
/// in `target/<profile>/deps/` beside the test binaries (`cargo build` also copies them
/// up one level, where they may be stale).
fn artifact_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().to_path_buf()
}

/// The static library as engines link it: this build's archive with every non-`theta_*`
/// symbol made local by `scripts/localize-symbols.sh` (see `tests/c_abi_symbols.rs`),
/// made once per test process, named after the test binary (binaries run at once).
fn localized_library() -> &'static Path {
    static LIBRARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(|| {
        let raw = artifact_dir().join("libtheta_net.a");
        assert!(raw.exists(), "{} not built", raw.display());
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_stem().unwrap().to_string_lossy();
        let out = artifact_dir().join(format!("libtheta_net-localized-{name}.a"));
        let status = Command::new("bash")
            .arg(root().join("scripts/localize-symbols.sh"))
            .arg(&raw)
            .arg(&out)
            .status()
            .expect("run scripts/localize-symbols.sh");
        assert!(status.success(), "scripts/localize-symbols.sh failed");
        out
    })
}

/// Builds `source` (relative to the repository, or absolute) with `compiler` and `flags`
/// plus warnings as errors into a temporary binary named after `output`.
pub fn build(compiler: &str, flags: &[&str], source: &str, output: &str) -> PathBuf {
    let library = localized_library();
    let binary = std::env::temp_dir().join(format!("{output}-{}", std::process::id()));
    let result = Command::new(compiler)
        .args(flags)
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .arg(format!("-I{}", root().join("include").display()))
        .arg(format!("-I{}", root().join("bindings/cpp").display()))
        .arg(root().join(source))
        .arg(library)
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

/// Whether valgrind is installed (it must be on CI).
pub fn valgrind_available() -> bool {
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

/// Runs `binary` with `args`, under valgrind when available, asserts it succeeded, removes
/// it and returns its standard output. The suppressions file holds only the QUIC
/// handshake's false positives in third-party code (see the file).
pub fn run_checked(binary: &Path, args: &[&str]) -> String {
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
