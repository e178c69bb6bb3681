//! Replays corpora through the targets and prints, per target, what was accepted and the
//! largest output per input byte of any accepted message (see `theta_fuzz::Outcome`).
//!
//! ```sh
//! cargo run --release --manifest-path fuzz/Cargo.toml --bin measure            # fuzz/corpus
//! cargo run --release --manifest-path fuzz/Cargo.toml --bin measure -- DIR     # DIR/<target>/*
//! cargo run --release --manifest-path fuzz/Cargo.toml --bin measure -- -v       # per file
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use theta_fuzz::TARGETS;

fn main() {
    let verbose = std::env::args().any(|a| a == "-v");
    let root = std::env::args()
        .skip(1)
        .find(|a| a != "-v")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    println!(
        "{:16} {:>6} {:>9} {:>9} {:>12} {:>9} {:>9}  best input",
        "target", "files", "accepted", "refused", "output/byte", "output", "input"
    );
    for (name, run) in TARGETS {
        let dir = root.join(name);
        let Ok(entries) = fs::read_dir(&dir) else {
            println!("{name:16} (no {})", dir.display());
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        let (mut accepted, mut refused) = (0, 0);
        let mut best = (0.0f64, 0, 0, String::new());
        for path in &files {
            let data = fs::read(path).expect("read a corpus file");
            let outcome = run(&data);
            if verbose {
                println!(
                    "  {:>4} accepted {:>4} refused  {}",
                    outcome.accepted,
                    outcome.refused,
                    path.display()
                );
            }
            accepted += outcome.accepted;
            refused += outcome.refused;
            if outcome.ratio() > best.0 {
                let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
                best = (
                    outcome.ratio(),
                    outcome.max_output,
                    outcome.max_output_input,
                    file.unwrap_or_default(),
                );
            }
        }
        println!(
            "{name:16} {:>6} {accepted:>9} {refused:>9} {:>12.1} {:>9} {:>9}  {}",
            files.len(),
            best.0,
            best.1,
            best.2,
            best.3
        );
    }
}
