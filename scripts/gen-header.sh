#!/usr/bin/env bash
# Regenerates include/theta.h from src/ffi/ with the pinned cbindgen CLI.
# Usage: scripts/gen-header.sh [OUTPUT]   (default: include/theta.h)
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sed -n 's/^CBINDGEN_VERSION=\([0-9.]*\).*/\1/p' scripts/install-tools.sh)
have=$(cbindgen --version 2>/dev/null | awk '{print $2}')
if [ "$want" != "$have" ]; then
  echo "cbindgen ${have:-missing}, pinned $want: run scripts/install-tools.sh" >&2
  exit 1
fi
# Only src/ffi/ is parsed (from its mod.rs): the C API is what that module declares, so
# public items elsewhere in the crate never leak into the header.
cbindgen --quiet --config cbindgen.toml --output "${1:-include/theta.h}" src/ffi/mod.rs
