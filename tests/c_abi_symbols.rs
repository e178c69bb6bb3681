//! The static library exports the C ABI and nothing else once `scripts/localize-symbols.sh`
//! has run: no zstd (or other third-party) symbol is global, so a program carrying its own
//! zstd links with it, and both copies work. Checked with `nm`, as an engine's linker sees
//! the archive.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The archive of this very build (`cargo test` leaves it beside the test binaries).
fn raw_archive() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let archive = exe.parent().unwrap().join("libtheta_net.a");
    assert!(archive.exists(), "{} not built", archive.display());
    archive
}

/// Runs the localizing script on this build's archive, once per test process.
fn localized_archive() -> &'static Path {
    static ARCHIVE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let out = raw_archive().with_file_name("libtheta_net-localized-symbols.a");
        let status = Command::new("bash")
            .arg(root().join("scripts/localize-symbols.sh"))
            .arg(raw_archive())
            .arg(&out)
            .status()
            .expect("run scripts/localize-symbols.sh");
        assert!(status.success(), "scripts/localize-symbols.sh failed");
        out
    })
}

/// `nm --format=posix` lines of `archive` with `flags`, as (name, type) pairs.
fn nm(archive: &Path, flags: &[&str]) -> Vec<(String, String)> {
    let output = Command::new("nm")
        .args(flags)
        .arg("--format=posix")
        .arg(archive)
        .output()
        .expect("run nm");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (name, kind) = (fields.next()?, fields.next()?);
            // Member headers ("libtheta_net.a[x.o]:") are not symbols.
            (!name.ends_with(':')).then(|| (name.to_owned(), kind.to_owned()))
        })
        .collect()
}

const ZSTD_PREFIXES: [&str; 8] = [
    "ZSTD_", "ZDICT_", "HUF_", "FSE_", "HIST_", "POOL_", "COVER_", "ERR_",
];

#[test]
fn the_localized_archive_exports_only_theta_symbols() {
    let raw = nm(&raw_archive(), &["-g", "--defined-only"]);
    let raw_zstd = raw
        .iter()
        .filter(|(name, _)| ZSTD_PREFIXES.iter().any(|p| name.starts_with(p)))
        .count();
    assert!(
        raw_zstd > 100,
        "the raw archive exports zstd ({raw_zstd} symbols)"
    );

    let localized = localized_archive();
    let defined = nm(localized, &["-g", "--defined-only"]);
    let foreign: Vec<&String> = defined
        .iter()
        .map(|(name, _)| name)
        .filter(|name| !name.starts_with("theta_"))
        .collect();
    assert!(foreign.is_empty(), "non-theta globals: {foreign:?}");
    for expected in [
        "theta_world_new",
        "theta_session_set_batch",
        "theta_last_error",
    ] {
        assert!(
            defined.iter().any(|(n, _)| n == expected),
            "{expected} missing"
        );
    }
    // Nor does it reach for an engine's zstd: its weak trace hooks are renamed.
    let undefined = nm(localized, &["-u"]);
    let zstd_refs: Vec<&String> = undefined
        .iter()
        .map(|(name, _)| name)
        .filter(|name| ZSTD_PREFIXES.iter().any(|p| name.starts_with(p)))
        .collect();
    assert!(
        zstd_refs.is_empty(),
        "references to zstd names: {zstd_refs:?}"
    );
}

/// A program with its own zstd (stand-ins under zstd's names) that also uses Theta.
const OWN_ZSTD: &str = r#"
#include <stddef.h>
#include <stdio.h>
#include "theta.h"
unsigned ZSTD_versionNumber(void) { return 4242; }
size_t ZSTD_compressBound(size_t n) { return n + 7; }
int main(void) {
    ThetaWorld world = {0};
    uint32_t position = 0;
    uint64_t entity = 0;
    ThetaSnapshot snapshot = {0};
    size_t chunks = 0;
    if (theta_world_new(NULL, &world) != THETA_STATUS_OK) return 1;
    if (theta_world_register_fixed(world, (const uint8_t *)"t.Position", 10, 12, &position)) return 1;
    if (theta_world_spawn(world, &entity) != THETA_STATUS_OK) return 1;
    if (theta_world_set(world, entity, position, (const uint8_t *)"abcdefghijkl", 12, NULL)) return 1;
    if (theta_world_snapshot(world, 0, &snapshot) != THETA_STATUS_OK) return 1;
    if (theta_snapshot_chunk_count(snapshot, &chunks) != THETA_STATUS_OK) return 1;
    theta_snapshot_free(snapshot);
    theta_world_free(world);
    printf("own zstd %u %zu; theta %s, %zu chunk\n", ZSTD_versionNumber(), ZSTD_compressBound(1),
           theta_version(), chunks);
    return chunks == 1 ? 0 : 1;
}
"#;

fn link_own_zstd(archive: &Path, name: &str) -> (bool, String, PathBuf) {
    let dir = std::env::temp_dir();
    let source = dir.join(format!("{name}-{}.c", std::process::id()));
    std::fs::write(&source, OWN_ZSTD).unwrap();
    let binary = dir.join(format!("{name}-{}", std::process::id()));
    let output = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-I{}", root().join("include").display()))
        .arg(&source)
        .arg(archive)
        .args(["-Wl,--gc-sections", "-lpthread", "-ldl", "-lm", "-o"])
        .arg(&binary)
        .output()
        .expect("run cc");
    std::fs::remove_file(&source).ok();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr, binary)
}

#[test]
fn a_program_with_its_own_zstd_links_with_the_localized_archive_and_both_work() {
    // The problem this solves: with the raw archive, the linker meets zstd twice.
    let (linked, stderr, _) = link_own_zstd(&raw_archive(), "theta-own-zstd-raw");
    assert!(!linked, "the raw archive linked beside another zstd");
    assert!(stderr.contains("multiple definition"), "{stderr}");

    let (linked, stderr, binary) = link_own_zstd(localized_archive(), "theta-own-zstd");
    assert!(linked, "{stderr}");
    let output = Command::new(&binary).output().expect("run the program");
    std::fs::remove_file(&binary).ok();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("own zstd 4242 8; theta 0.1.0, 1 chunk"),
        "{stdout}"
    );
}
