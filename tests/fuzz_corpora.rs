//! The fuzz corpora, replayed on stable without a fuzzer: every committed file of
//! `fuzz/corpus/<target>/` goes through the same target body the cargo-fuzz target runs
//! (`fuzz/targets/`, included below), which panics when a decoder breaks one of its
//! promises (a refused message changes nothing, decoded sizes within the kind's bound...).
//! Each target's corpus must also exercise both sides: some messages accepted, some
//! refused. `fuzz/README.md` says how the corpora are made and fuzzed.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

// The fuzz package's tools use parts of it that the replay does not.
#[allow(dead_code)]
#[path = "../fuzz/targets/mod.rs"]
mod targets;

use targets::{input, Outcome, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The corpus files of `target`, sorted.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Replays `target`'s corpus; a panic names the file.
fn replay(target: &str) {
    let run = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|&(_, run)| run)
        .expect("a known target");
    let files = corpus(target);
    assert!(!files.is_empty(), "{target}: empty corpus");
    let mut total = Outcome::default();
    let mut best = (0.0f64, String::new());
    for path in &files {
        let data = fs::read(path).expect("read a corpus file");
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&data)))
            .unwrap_or_else(|_| panic!("{target}: {} broke a decoder's promise", path.display()));
        total.accepted += outcome.accepted;
        total.refused += outcome.refused;
        if outcome.ratio() > best.0 {
            best = (outcome.ratio(), path.display().to_string());
        }
    }
    println!(
        "{target}: {} files, {} messages accepted, {} refused; at most {:.1} output bytes per input byte ({})",
        files.len(),
        total.accepted,
        total.refused,
        best.0,
        best.1
    );
    assert!(
        total.accepted > 0,
        "{target}: the corpus has no valid message"
    );
    assert!(
        total.refused > 0,
        "{target}: the corpus has no invalid message"
    );
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        /// Every target of `targets::TARGETS` has a replay test above.
        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($target)),*];
            let declared: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
            assert_eq!(declared, tested);
        }
    };
}

replay_tests!(
    snapshot_chunk,
    delta_frame,
    state_datagram,
    codec_frame,
    codec_stream,
    control_message,
    pose_packet,
    join_request,
    join_token,
);

/// Each target is a cargo-fuzz binary of the fuzz package that calls its body.
#[test]
fn every_target_is_a_cargo_fuzz_target() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in TARGETS {
        let path = format!("fuzz_targets/{name}.rs");
        assert!(
            manifest.contains(&format!("name = \"{name}\"\npath = \"{path}\"")),
            "fuzz/Cargo.toml declares no target {name}"
        );
        let source = fs::read_to_string(fuzz_dir().join(&path)).expect("the target's source");
        assert!(
            source.contains(&format!("::{name}(data)")),
            "{path} does not call its body"
        );
    }
}

/// The committed corpora stay small enough to keep in the repository.
#[test]
fn corpora_are_small() {
    let total: u64 = TARGETS
        .iter()
        .flat_map(|(name, _)| corpus(name))
        .map(|p| fs::metadata(p).expect("metadata").len())
        .sum();
    assert!(total <= 512 << 10, "{total} bytes of corpora");
}

/// Inputs split into the records they were joined from; any bytes split into something.
#[test]
fn inputs_split_into_their_records() {
    let records: [&[u8]; 4] = [b"abc", b"", &[7; 300], b"z"];
    let data = input::join(9, &records);
    let (header, split) = input::split(&data);
    assert_eq!(header, 9);
    assert_eq!(split.collect::<Vec<_>>(), records);
    // A length running past the end takes the rest; a lone byte is an empty record.
    let (_, split) = input::split(&[1, 10, 0, b'x', b'y']);
    assert_eq!(split.collect::<Vec<_>>(), [b"xy"]);
    let (_, split) = input::split(&[1, 2, 0, b'x', b'y', 5]);
    assert_eq!(split.collect::<Vec<&[u8]>>(), [&b"xy"[..], b""]);
    assert_eq!(input::split(&[]).0, 0);
    let many = vec![0u8; 3 * input::MAX_RECORDS];
    assert_eq!(input::split(&many).1.count(), input::MAX_RECORDS);
}
