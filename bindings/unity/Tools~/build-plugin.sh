#!/usr/bin/env bash
# Builds the native library for this machine's platform (release), strips it, and places
# it in the package's Plugins/ folder, where the committed .meta files give Unity its
# import settings. Prints the stripped size.
#
# This machine (Linux x86_64) gives Plugins/Linux/x86_64/libtheta_net.so. The other
# platforms are cross builds, documented in bindings/unity/README.md ("Native plug-ins").
set -euo pipefail
cd "$(dirname "$0")/../../.."
package=bindings/unity
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64)
    cargo build --release --lib --locked
    dest=$package/Plugins/Linux/x86_64
    mkdir -p "$dest"
    strip -o "$dest/libtheta_net.so" target/release/libtheta_net.so
    echo "$dest/libtheta_net.so: $(stat -c %s "$dest/libtheta_net.so") bytes (stripped)"
    ;;
  Darwin-*)
    cargo build --release --lib --locked --target aarch64-apple-darwin
    cargo build --release --lib --locked --target x86_64-apple-darwin
    dest=$package/Plugins/macOS
    mkdir -p "$dest"
    lipo -create -output "$dest/libtheta_net.dylib" \
      target/aarch64-apple-darwin/release/libtheta_net.dylib target/x86_64-apple-darwin/release/libtheta_net.dylib
    strip -x "$dest/libtheta_net.dylib"
    echo "$dest/libtheta_net.dylib: $(stat -f %z "$dest/libtheta_net.dylib") bytes (stripped)"
    ;;
  *)
    echo "no recipe for $(uname -s)-$(uname -m): see bindings/unity/README.md" >&2
    exit 1
    ;;
esac
