#!/usr/bin/env bash
# Installs the Debian packages nub needs that are missing: `deps.sh` for building and running, `deps.sh test` for the test suite too.
set -euo pipefail

pkgs=(gcc make libc6-dev pkg-config libunicorn-dev)
if [ "${1:-}" = "test" ]; then
    pkgs+=(libcriterion-dev libsodium-dev b3sum qemu-system-x86 busybox-static cpio xz-utils gdb python3 python3-prometheus-client prometheus)
    pkgs+=(clang libclang-rt-14-dev libcapstone-dev) # fuzz targets (tests/fuzz, docs/fuzzing.md)
    pkgs+=(g++) # tests/headers/run.sh compiles every public header as C++ too
    pkgs+=(libjson-c-dev groff-base) # tests/integration/test_cli.c: parses `nub run --json`, lints the man page
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
