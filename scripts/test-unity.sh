#!/usr/bin/env bash
# The C# layer of the Unity package under plain Mono: builds the native library, compiles
# bindings/unity/Runtime/Core (no UnityEngine) and its tests (bindings/unity/Tests~/Mono)
# with Mono's C# compiler, warnings as errors, and runs them over loopback QUIC; the last
# lines are the figures and "N passed, N failed".
# Usage: scripts/test-unity.sh [--release]   (--release: optimised library, for figures;
#        it also prints the size of the stripped library)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
cargo_flags=(--lib --locked)
for arg in "$@"; do
  case "$arg" in
    --release) profile=release; cargo_flags+=(--release) ;;
    *) echo "usage: $0 [--release]" >&2; exit 2 ;;
  esac
done
scripts/install-tools.sh >/dev/null
echo "== cargo build ${cargo_flags[*]}"
cargo build --quiet "${cargo_flags[@]}"
lib_dir=target/$profile
out=target/unity-tests/$profile
rm -rf "$out"
mkdir -p "$out"
cp "$lib_dir/libtheta_net.so" "$out/"

echo "== mcs (C# 7.2, warnings as errors)"
# Mono's mcs stops at C# 7.2, which lacks the `unmanaged` constraint: this define gives
# `struct` (and run-time checks) instead; Unity's compiler gets `unmanaged`.
mcs_flags=(-nologo -unsafe -langversion:7.2 -define:THETA_NO_UNMANAGED_CONSTRAINT -warnaserror -debug)
mcs "${mcs_flags[@]}" -target:library -out:"$out/Theta.dll" \
  -recurse:'bindings/unity/Runtime/Core/*.cs'
mcs "${mcs_flags[@]}" -target:exe -out:"$out/ThetaTests.exe" -r:"$out/Theta.dll" \
  'bindings/unity/Tests~/Mono/'*.cs

echo "== C helpers (struct layouts of theta.h, the C side of the figures)"
# One printf per struct and field of the header's `typedef struct { ... } Name;` blocks.
awk '
  /^typedef struct \{/ { in_struct = 1; n = 0; next }
  in_struct && /^\} Theta[A-Za-z0-9]*;/ {
    name = $2; sub(/;/, "", name)
    printf "printf(\"%s %%zu\\n\", sizeof(%s));\n", name, name
    for (i = 0; i < n; i++) printf "printf(\"%s.%s %%zu\\n\", offsetof(%s, %s));\n", name, f[i], name, f[i]
    in_struct = 0; next
  }
  in_struct && /^    [^ \/].*;$/ {
    field = $NF; sub(/;$/, "", field); sub(/\[.*\]$/, "", field); sub(/^\*+/, "", field)
    f[n++] = field
  }
' include/theta.h >"$out/layout.inc"
cc -std=c11 -Wall -Wextra -Werror -Iinclude -I"$out" 'bindings/unity/Tests~/Mono/layout.c' -o "$out/layout"
"$out/layout" >"$out/layout.txt"
cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude 'bindings/unity/Tests~/Mono/bench_set.c' \
  -L"$out" -ltheta_net -Wl,-rpath,"$PWD/$out" -o "$out/bench_set"

echo "== mono ThetaTests.exe ($profile library)"
if [ "$profile" = release ]; then
  strip -o "$out/libtheta_net.stripped.so" "$out/libtheta_net.so"
  echo "stripped library: libtheta_net.so (linux x86_64) $(stat -c %s "$out/libtheta_net.stripped.so") bytes"
fi
THETA_C_LAYOUT="$PWD/$out/layout.txt" THETA_C_BENCH="$PWD/$out/bench_set" \
  LD_LIBRARY_PATH="$PWD/$out${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  mono --debug "$out/ThetaTests.exe" --figures
