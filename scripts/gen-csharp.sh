#!/usr/bin/env bash
# Regenerates the raw C# interop of the C ABI from src/ffi/ with csbindgen (pinned in
# bindings/unity/Tools~/gen-csharp, a crate of its own outside the library's workspace).
# Usage: scripts/gen-csharp.sh [OUTPUT]
#   (default: bindings/unity/Runtime/Core/Interop/NativeMethods.g.cs)
# tests/csharp_interop.rs regenerates it and fails on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bindings/unity/Runtime/Core/Interop/NativeMethods.g.cs}
# csbindgen prints the items it skips on purpose (test helpers, Rust-only enums): noise.
cargo run --quiet --locked --manifest-path "bindings/unity/Tools~/gen-csharp/Cargo.toml" -- \
  "$PWD" "$out" | { grep -v "^csbindgen can't handle" || true; }
