#!/usr/bin/env bash
# Runs Criterion test binaries, adds up their results and prints one summary line; exits non-zero on any failure.
# Usage: tests/run.sh BINARY... (NUB_TEST_JOBS sets Criterion's parallelism, default 2).
# Last line: "tests: N passed, N failed, N skipped" plus, when tests were skipped, the
# reason per backend: "(kvm: <first skip reason>)" or "(kvm: ...; emu: ...)".
# A skipped test is never counted as passed.
set -u
export LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
passed=0 failed=0 skipped=0 status=0
declare -A why=()
order=()

# Remember the first skip reason of each backend from "[SKIP] suite::test: backend B <reason>" lines.
note_skips() {
    local line b r
    while IFS= read -r line; do
        b=$(sed -nE 's/^\[SKIP\] [^ ]+: backend ([a-z]+) .*/\1/p' <<<"$line")
        [ -n "$b" ] || b=other
        [ -n "${why[$b]:-}" ] && continue
        r=$(sed -nE 's/^\[SKIP\] [^ ]+: backend [a-z]+ (unavailable: )?(.*)/\2/p' <<<"$line")
        [ -n "$r" ] || r=$(sed -E 's/^\[SKIP\] [^ ]+: ?//' <<<"$line")
        why[$b]=$r; order+=("$b")
    done
}

for bin in "$@"; do
    name=${bin#build/}
    out=$("$bin" --jobs "${NUB_TEST_JOBS:-2}" --verbose 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -E '^\[(FAIL|====)\]|Synthesis|Assertion|crash|Warning' | grep -v '^\[====\] Running' | sed "s|^|$name: |"
    line=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: no Criterion summary (exit $rc)"
        failed=$((failed + 1)); status=1; continue
    fi
    p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line")
    c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")
    s=$(printf '%s\n' "$out" | grep -c '^\[SKIP\]')
    note_skips < <(printf '%s\n' "$out" | grep '^\[SKIP\]')
    [ "$s" -ne 0 ] && echo "$name: $s skipped"
    passed=$((passed + p)); failed=$((failed + f + c)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$c" -ne 0 ]; then
        status=1
        [ "$rc" -ne 0 ] && printf '%s\n' "$out" | grep -A12 -E '==ERROR: |^ERROR: |runtime error' | sed "s|^|$name: |"
        echo "$name: exit status $rc"
    fi
done
reasons=""
for b in "${order[@]}"; do reasons+="${reasons:+; }$b: ${why[$b]}"; done
echo "tests: $passed passed, $failed failed, $skipped skipped${reasons:+ ($reasons)}"
exit $status
