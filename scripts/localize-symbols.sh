#!/usr/bin/env bash
# Makes a static library that exports nothing but the C ABI: every global symbol of
# libtheta_net.a that is not `theta_*` (zstd's ZSTD_*/HUF_*/FSE_*/ZDICT_*/COVER_*..., the
# Rust standard library, compiler-rt builtins) becomes local, so the archive links into an
# engine that carries its own zstd (iOS `__Internal`, monolithic Unreal builds) without a
# duplicate or, worse, a silently mixed definition.
#
# Usage: scripts/localize-symbols.sh IN.a OUT.a
#
# How (ELF: Linux, Android): the archive's objects are linked into one relocatable object
# (`ld -r --whole-archive`), so references between them no longer need global symbols;
# LLVM's bitcode and address-significance sections are dropped (no linker needs them,
# and binutils' LTO plugin cannot read rustc's); `objcopy --keep-global-symbols` then
# makes every defined symbol but `theta_*` local; zstd's optional trace hooks, weak
# undefined references, are renamed `theta_zstd_*` so an engine's definitions never bind
# to them. The result is one object in an archive: link it with `--gc-sections` (the
# default of release builds in Unity's and Unreal's toolchains) to drop unused code.
#
# Cross builds: set LD, OBJCOPY, NM and AR to the target's tools, e.g. for Android the
# NDK's `ld.lld`, `llvm-objcopy`, `llvm-nm`, `llvm-ar` (all take these options).
# Apple (iOS, macOS): Mach-O has no objcopy; the same result comes from
# `ld -r -arch arm64 -exported_symbols_list theta.exp -o theta.o <objects>` (the list
# holding `_theta_*`), then `libtool -static -o libtheta_net.a theta.o`. Not run on this
# machine. Windows (MSVC .lib): a static library there has no exports to hide; link the
# DLL (it exports only theta_*) or accept that COFF offers no localisation step.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 IN.a OUT.a" >&2
  exit 2
fi
in=$(realpath "$1")
out=$2
LD=${LD:-ld}
OBJCOPY=${OBJCOPY:-objcopy}
NM=${NM:-nm}
AR=${AR:-ar}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$LD" -r --whole-archive "$in" -o "$work/all.o"
"$OBJCOPY" --remove-section=.llvmbc --remove-section=.llvmcmd \
  --remove-section=.llvm_addrsig "$work/all.o" "$work/plain.o"
"$NM" -g --defined-only --format=posix "$work/plain.o" |
  awk '$1 ~ /^theta_/ {print $1}' >"$work/keep.txt"
if [ ! -s "$work/keep.txt" ]; then
  echo "$0: no theta_* symbol in $in" >&2
  exit 1
fi
"$NM" -u --format=posix "$work/plain.o" |
  awk '$1 ~ /^(ZSTD|ZDICT|HUF|FSE|HIST|POOL|COVER|ERR)_/ {print $1 " theta_zstd_" $1}' \
    >"$work/rename.txt"
"$OBJCOPY" --keep-global-symbols="$work/keep.txt" --redefine-syms="$work/rename.txt" \
  "$work/plain.o" "$work/theta_net.o"
rm -f "$out"
"$AR" rcs "$out" "$work/theta_net.o"
