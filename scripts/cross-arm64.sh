#!/usr/bin/env bash
# Cross-builds offbrand for arm64 (Raspberry Pi) and runs its unit tests under
# qemu-aarch64 user emulation.
#
#   scripts/cross-arm64.sh build   installs the cross toolchain, qemu-user and
#                                  the arm64 -dev packages (Debian multiarch),
#                                  then builds into build-arm64/
#   scripts/cross-arm64.sh test    runs the unit tests of build-arm64/ under
#                                  qemu-aarch64 with the multiarch arm64 libc
#
# Why not `qemu-aarch64 -L /usr/aarch64-linux-gnu`: that directory holds the
# cross toolchain's own libc (libc6-arm64-cross, an older 2.36 build), while
# libstdc++ and our libraries come from the multiarch arm64 packages in
# /usr/lib/aarch64-linux-gnu; the mix hangs in the first pthread_create.
# The arm64 -dev packages install libc6:arm64 and /lib/ld-linux-aarch64.so.1,
# so qemu finds one consistent set with the host root as its prefix.
#
# The binary to copy to the Pi is build-arm64/offbrand (it needs the same
# runtime libraries there: apt install liblmdb0 libsodium23 libcurl4 ...).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_ARM64:-$here/build-arm64}"
jobs="${JOBS:-$(nproc)}"
triple=aarch64-linux-gnu
# Unit tests: they need neither the real binary as a child process with
# networking quirks nor long timing budgets, so emulation is enough.
unit_tests=(store_test outbox_test config_test jwt_test stream_client_test sync_sim_test)

host_packages=(g++-aarch64-linux-gnu qemu-user cmake make pkg-config rapidjson-dev)
arm64_packages=(liblmdb-dev:arm64 libsodium-dev:arm64 libcurl4-openssl-dev:arm64
  libsimdjson14:arm64 libcpp-httplib-dev:arm64 libsystemd-dev:arm64
  libboost-test-dev:arm64 libssl-dev:arm64)
# libsimdjson-dev is not Multi-Arch: same in Debian 12, so installing its
# arm64 flavour would remove the host's. It is unpacked into the build dir
# instead (headers, CMake config, the .so link) next to the installed
# arm64 runtime library libsimdjson14:arm64.
simdjson_root="$build/simdjson-arm64"

say() { echo "cross-arm64: $*"; }
die() { echo "cross-arm64: error: $*" >&2; exit 1; }

sudo_cmd() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root or sudo to run: $*"; fi
}

install_packages() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "enabling the arm64 architecture in dpkg"
    sudo_cmd dpkg --add-architecture arm64
    sudo_cmd apt-get update -qq
  fi
  local missing=()
  for p in "${host_packages[@]}" "${arm64_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    sudo_cmd apt-get update -qq
    sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"
  else
    say "cross toolchain and arm64 libraries already installed"
  fi
}

unpack_simdjson_dev() {
  local cmake_dir="$simdjson_root/usr/lib/$triple/cmake/simdjson"
  if [ -f "$cmake_dir/simdjson-config.cmake" ]; then return; fi
  say "unpacking libsimdjson-dev:arm64 into $simdjson_root (not installed: see above)"
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -qq libsimdjson-dev:arm64) ||
    die "apt-get download libsimdjson-dev:arm64 failed"
  mkdir -p "$simdjson_root"
  dpkg-deb -x "$tmp"/libsimdjson-dev_*_arm64.deb "$simdjson_root"
  rm -rf "$tmp"
  # The package's libsimdjson.so is a relative link to the runtime library,
  # which lives in the real /usr/lib/$triple: link its files in.
  local so
  so="$(ls /usr/lib/$triple/libsimdjson.so.* 2>/dev/null | head -n1)"
  [ -n "$so" ] || die "libsimdjson14:arm64 is not installed"
  for so in /usr/lib/$triple/libsimdjson.so.*; do
    ln -sf "$so" "$simdjson_root/usr/lib/$triple/"
  done
  ln -sf "$so" "$simdjson_root/usr/lib/$triple/libsimdjson.so"
}

build() {
  install_packages
  mkdir -p "$build"
  unpack_simdjson_dev
  say "configuring $build (toolchain cmake/$triple.cmake)"
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$here/cmake/$triple.cmake" \
    -Dsimdjson_DIR="$simdjson_root/usr/lib/$triple/cmake/simdjson"
  say "building offbrand and the unit tests"
  cmake --build "$build" -j "$jobs" --target offbrand "${unit_tests[@]}"
  file "$build/offbrand" 2>/dev/null || true
  say "done: $build/offbrand (copy it to the Pi; run 'make test-arm64' to test here)"
}

run_tests() {
  command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 missing: run '$0 build' first"
  [ -e /lib/ld-linux-aarch64.so.1 ] || die "no arm64 libc (libc6:arm64): run '$0 build' first"
  [ -x "$build/offbrand" ] || die "no arm64 build in $build: run '$0 build' first"
  local failed=()
  for t in "${unit_tests[@]}"; do
    if [ ! -x "$build/$t" ]; then
      failed+=("$t(not built)")
      continue
    fi
    say "running $t under qemu-aarch64"
    if ! (cd "$build" && qemu-aarch64 -L / "./$t" --log_level=warning); then
      failed+=("$t")
    fi
  done
  say "running 'offbrand version' under qemu-aarch64"
  qemu-aarch64 -L / "$build/offbrand" version || failed+=("offbrand version")
  if [ ${#failed[@]} -gt 0 ]; then die "failed: ${failed[*]}"; fi
  say "all arm64 unit tests passed under emulation"
}

case "${1:-}" in
  build) build ;;
  test) run_tests ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
