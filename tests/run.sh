#!/usr/bin/env bash
# Runs Criterion test binaries, adds up their results and prints one summary line; exits non-zero on any failure.
# Usage: tests/run.sh BINARY... (NUB_TEST_JOBS sets Criterion's parallelism, default 2).
set -u
export LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
passed=0 failed=0 status=0
for bin in "$@"; do
    name=${bin#build/}
    out=$("$bin" --jobs "${NUB_TEST_JOBS:-2}" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -E '^\[(----|FAIL|====)\]|Synthesis|Assertion|crash|Warning' | sed "s|^|$name: |"
    line=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: no Criterion summary (exit $rc)"
        failed=$((failed + 1)); status=1; continue
    fi
    p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line")
    c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")
    passed=$((passed + p)); failed=$((failed + f + c))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$c" -ne 0 ]; then
        status=1
        [ "$rc" -ne 0 ] && printf '%s\n' "$out" | grep -A12 -E 'ERROR: |runtime error' | sed "s|^|$name: |"
        echo "$name: exit status $rc"
    fi
done
echo "tests: $passed passed, $failed failed"
exit $status
