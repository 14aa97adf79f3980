#!/usr/bin/env bash
# Runs the whole suite: the Criterion binaries given as arguments (tests/run.sh), then the integration suite on kvm inside QEMU (tests/kvm/run.sh); prints one total line and fails if anything failed.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tests/run.sh "$@" | tee "$tmp/criterion"
s1=${PIPESTATUS[0]}
bash tests/fuzz/run.sh "${NUB_FUZZ_SMOKE_SECONDS:-20}" build/fuzz/bin/fuzz_* | tee "$tmp/fuzz"; [ "${PIPESTATUS[0]}" -eq 0 ] || s1=1
bash tests/kvm/run.sh 2>&1 | tee "$tmp/kvm"
s2=${PIPESTATUS[0]}

count() { # FILE WORD: the number before WORD on the last "N passed, N failed" line, else 0
    local n
    n=$(tail -n 1 "$1" | sed -nE "s/^[a-z]+: .*\b([0-9]+) $2.*/\1/p")
    echo "${n:-0}"
}
p=$(( $(count "$tmp/criterion" passed) + $(count "$tmp/kvm" passed) ))
f=$(( $(count "$tmp/criterion" failed) + $(count "$tmp/kvm" failed) ))
if [ "$s1" -ne 0 ] || [ "$s2" -ne 0 ]; then
    [ "$f" -eq 0 ] && f=1
    echo "all: $p passed, $f failed"
    exit 1
fi
echo "all: $p passed, $f failed"
