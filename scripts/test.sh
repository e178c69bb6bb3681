#!/usr/bin/env bash
# The whole test suite: pinned tools, formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --all-targets --locked
cargo test --doc --locked
