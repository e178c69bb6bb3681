#!/usr/bin/env bash
# The whole test suite: pinned tools, formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
# The fuzz package is its own workspace: checked here so its targets and tools follow the
# library (tests/fuzz_corpora.rs replays the corpora through the same target bodies).
echo "== cargo check (fuzz/)"
cargo check --manifest-path fuzz/Cargo.toml --all-targets --locked
echo "== cargo test"
cargo test --all-targets --locked
cargo test --doc --locked
echo "== scripts/test-unity.sh (the Unity package's C# layer under Mono)"
scripts/test-unity.sh
