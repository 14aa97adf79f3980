#!/usr/bin/env bash
# Runs the whole suite: the Criterion binaries given as arguments (tests/run.sh: unit, integration on every backend usable here, ASan), then the integration suite on kvm inside QEMU (tests/kvm/run.sh); prints one total line and fails if anything failed.
# Last line: "all: N passed, N failed, N skipped" and, when tests were skipped, each backend's
# reason, e.g. "(kvm: kvm at /dev/kvm cannot run nub guests: ...)". Exit status non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tests/run.sh "$@" | tee "$tmp/criterion"
s1=${PIPESTATUS[0]}
bash tests/fuzz/run.sh "${NUB_FUZZ_SMOKE_SECONDS:-20}" build/fuzz/bin/fuzz_* | tee "$tmp/fuzz"; [ "${PIPESTATUS[0]}" -eq 0 ] || s1=1
bash tests/kvm/run.sh 2>&1 | tee "$tmp/kvm"
s2=${PIPESTATUS[0]}

# FILE FIELD: field 1 (passed), 2 (failed) or 3 (skipped) of the last "x: N passed, N failed[, N skipped]" line, else 0.
count() {
    local n
    n=$(tail -n 1 "$1" | sed -nE 's/^[a-z]+: ([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \4/p' |
        cut -d' ' -f"$2")
    echo "${n:-0}"
}
# The "(backend: reason; ...)" tail of the criterion stage's summary, if any.
reasons=$(tail -n 1 "$tmp/criterion" | sed -nE 's/^tests: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped (\(.*\))$/ \1/p')
p=$(( $(count "$tmp/criterion" 1) + $(count "$tmp/kvm" 1) ))
f=$(( $(count "$tmp/criterion" 2) + $(count "$tmp/kvm" 2) ))
s=$(( $(count "$tmp/criterion" 3) + $(count "$tmp/kvm" 3) ))
if [ "$s1" -ne 0 ] || [ "$s2" -ne 0 ]; then
    [ "$f" -eq 0 ] && f=1
    echo "all: $p passed, $f failed, $s skipped$reasons"
    exit 1
fi
echo "all: $p passed, $f failed, $s skipped$reasons"
