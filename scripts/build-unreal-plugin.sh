#!/usr/bin/env bash
# Builds the Theta library for this machine's platform and stages it, with theta.h and
# theta.hpp, into the Unreal plugin's layout (bindings/unreal/ThetaNet):
#
#   Source/ThirdParty/ThetaNetLibrary/include/    theta.h, theta.hpp
#   Binaries/ThirdParty/ThetaNetLibrary/
#     Linux/x86_64-unknown-linux-gnu/             libtheta_net.so (SONAME libtheta_net.so)
#     Linux/aarch64-unknown-linux-gnueabi/        the same on an arm64 Linux machine
#     Mac/                                        libtheta_net.dylib (universal, @rpath install name)
#     Win64/                                      theta_net.dll, theta_net.dll.lib (import library)
#     Android/arm64-v8a/                          libtheta_net.so   (--android, needs the NDK)
#     <platform>/Static/                          the static archive and native-static-libs.txt
#
# Usage:
#   scripts/build-unreal-plugin.sh [--plugin DIR] [--debug]    build for this machine and stage
#   scripts/build-unreal-plugin.sh --android [--plugin DIR]     build Android arm64 and stage
#   scripts/build-unreal-plugin.sh --stage-only LIBDIR [--plugin DIR]
#                                   stage headers and the shared library already built in LIBDIR
#
# Each platform is built on its own kind of machine (rustc links with that platform's
# linker), then the Binaries/ folders are merged into one plugin:
#   Linux x86_64 / arm64: this script, on Linux.
#   macOS: this script, on a Mac; with both targets installed
#     (rustup target add aarch64-apple-darwin x86_64-apple-darwin) it builds both and joins
#     them with lipo into one universal dylib, otherwise the machine's own architecture.
#   Windows x64: this script in Git Bash (MSYS) with the MSVC toolchain
#     (rustup default stable-x86_64-pc-windows-msvc).
#   Android arm64: --android on any of them, with the NDK (ANDROID_NDK_HOME) and cargo-ndk
#     (cargo install cargo-ndk; rustup target add aarch64-linux-android).
#
# The library is built with `cargo rustc`, so the SONAME / install-name flags reach only the
# final link: dependencies come from the usual target/ cache, and the next plain
# `cargo build` of the library relinks it once.
# Arrays are expanded as ${a[@]+"${a[@]}"}: macOS ships bash 3.2, where an empty array
# is "unbound" under set -u.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

plugin="$root/bindings/unreal/ThetaNet"
profile=release
mode=build
stage_from=
while [ $# -gt 0 ]; do
  case "$1" in
    --plugin) plugin=$(cd "$2" && pwd); shift 2 ;;
    --debug) profile=debug; shift ;;
    --android) mode=android; shift ;;
    --stage-only) mode=stage; stage_from=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n '2,/^# Arrays are expanded/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$plugin/ThetaNet.uplugin" ] || { echo "$plugin is not the ThetaNet plugin" >&2; exit 2; }

binaries="$plugin/Binaries/ThirdParty/ThetaNetLibrary"
cargo_profile=()
[ "$profile" = release ] && cargo_profile=(--release)

# The headers the ThetaNetLibrary module exposes (its Build.cs requires them).
include="$plugin/Source/ThirdParty/ThetaNetLibrary/include"
mkdir -p "$include"
cp include/theta.h bindings/cpp/theta.hpp "$include/"
echo "staged theta.h, theta.hpp -> ${include#"$root"/}"

# This machine's platform folder and library file names.
case "$(uname -s)" in
  Linux)
    case "$(uname -m)" in
      x86_64) platform_dir=Linux/x86_64-unknown-linux-gnu ;;
      aarch64|arm64) platform_dir=Linux/aarch64-unknown-linux-gnueabi ;;
      *) echo "no Unreal platform folder for Linux $(uname -m)" >&2; exit 1 ;;
    esac
    shared=(libtheta_net.so); static=libtheta_net.a
    link_args=(-C link-arg=-Wl,-soname,libtheta_net.so) ;;
  Darwin)
    platform_dir=Mac; shared=(libtheta_net.dylib); static=libtheta_net.a
    link_args=(-C link-arg=-Wl,-install_name,@rpath/libtheta_net.dylib) ;;
  MINGW*|MSYS*|CYGWIN*)
    platform_dir=Win64; shared=(theta_net.dll theta_net.dll.lib); static=theta_net.lib
    link_args=() ;;
  *) echo "unsupported build machine: $(uname -s)" >&2; exit 1 ;;
esac

stage() { # stage FILE DESTDIR
  mkdir -p "$2"
  cp "$1" "$2/"
  echo "staged $(basename "$1") -> ${2#"$root"/}"
}

# Builds target $1 (empty: the host) as cdylib + staticlib, printing the system libraries a
# static link needs into $2.
build_lib() {
  local target=$1 notes=$2
  local target_args=()
  [ -n "$target" ] && target_args=(--target "$target")
  if ! cargo rustc ${cargo_profile[@]+"${cargo_profile[@]}"} ${target_args[@]+"${target_args[@]}"} \
      --lib --crate-type cdylib --crate-type staticlib \
      -- ${link_args[@]+"${link_args[@]}"} --print native-static-libs 2>"$notes.log"; then
    cat "$notes.log" >&2
    exit 1
  fi
  # rustc prints the list as a note on each compilation; cargo replays it when fresh.
  sed -n 's/.*note: native-static-libs: //p' "$notes.log" | tail -n 1 > "$notes"
  rm -f "$notes.log"
  [ -s "$notes" ] || { echo "rustc printed no native-static-libs" >&2; exit 1; }
}

case "$mode" in
  stage)
    for f in "${shared[@]}"; do
      [ -f "$stage_from/$f" ] || { echo "$stage_from/$f not found" >&2; exit 1; }
      stage "$stage_from/$f" "$binaries/$platform_dir"
    done ;;
  android)
    command -v cargo-ndk >/dev/null || { echo "cargo-ndk missing: cargo install cargo-ndk" >&2; exit 1; }
    cargo ndk -t arm64-v8a --platform 26 rustc ${cargo_profile[@]+"${cargo_profile[@]}"} --lib --crate-type cdylib \
      -- -C link-arg=-Wl,-soname,libtheta_net.so
    stage "target/aarch64-linux-android/$profile/libtheta_net.so" "$binaries/Android/arm64-v8a" ;;
  build)
    notes=$(mktemp)
    if [ "$platform_dir" = Mac ] && rustup target list --installed 2>/dev/null | grep -q x86_64-apple-darwin \
        && rustup target list --installed | grep -q aarch64-apple-darwin; then
      for t in aarch64-apple-darwin x86_64-apple-darwin; do build_lib "$t" "$notes"; done
      mkdir -p "$binaries/Mac/Static"
      for f in libtheta_net.dylib libtheta_net.a; do
        dest="$binaries/Mac/$f"
        [ "$f" = libtheta_net.a ] && dest="$binaries/Mac/Static/$f"
        lipo -create -output "$dest" \
          "target/aarch64-apple-darwin/$profile/$f" "target/x86_64-apple-darwin/$profile/$f"
        echo "staged universal $f -> ${dest#"$root"/}"
      done
    else
      build_lib "" "$notes"
      for f in "${shared[@]}"; do stage "target/$profile/$f" "$binaries/$platform_dir"; done
      stage "target/$profile/$static" "$binaries/$platform_dir/Static"
    fi
    cat "$notes" > "$binaries/$platform_dir/Static/native-static-libs.txt"
    rm -f "$notes"
    echo "static link needs: $(cat "$binaries/$platform_dir/Static/native-static-libs.txt")" ;;
esac
