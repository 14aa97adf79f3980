#!/usr/bin/env bash
# Runs libFuzzer targets: each one's regression inputs once, then SECONDS of fuzzing from its committed corpus; fails on any crash, leak or timeout and keeps the reproducer.
# Usage: tests/fuzz/run.sh SECONDS BINARY...   (BINARY: build/fuzz/bin/fuzz_NAME)
#   seeds:        tests/fuzz/corpus/NAME/   (committed, read-only here)
#   dictionary:   tests/fuzz/dict/NAME.dict (optional)
#   regressions:  tests/fuzz/regress/NAME/  (reproducers of fixed findings, replayed first)
#   new inputs:   build/fuzz/corpus/NAME/   (kept between runs: a campaign resumes from it)
#   reproducers:  build/fuzz/crashes/NAME/{crash,leak,timeout,oom}-SHA1
# Environment: FUZZ_JOBS (parallel targets, default 1), FUZZ_ARGS (extra libFuzzer flags).
set -u
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 SECONDS BINARY..." >&2; exit 2; }
seconds=$1; shift
out=build/fuzz

run_one() { # BINARY: one target; prints one summary line, exit status 0 when clean
    local bin=$1 name
    name=$(basename "$bin"); name=${name#fuzz_}
    local corpus=$out/corpus/$name crashes=$out/crashes/$name log=$out/logs/$name.log
    local dict=() flags=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1)
    mkdir -p "$corpus" "$crashes" "$out/logs"
    [ -f "tests/fuzz/dict/$name.dict" ] && dict=(-dict="tests/fuzz/dict/$name.dict")
    local regress=(tests/fuzz/regress/"$name"/*)
    if [ -e "${regress[0]}" ] && ! "$bin" "${flags[@]}" "${regress[@]}" >"$log" 2>&1; then
        grep -E 'ERROR|property violated|runtime error|SUMMARY' "$log" | head -n 5 | sed "s|^|fuzz_$name: |"
        echo "fuzz_$name: FAILED on a regression input (log: $log)"
        return 1
    fi
    # shellcheck disable=SC2086
    "$bin" "${flags[@]}" "${dict[@]}" -max_total_time="$seconds" -artifact_prefix="$crashes/" \
        ${FUZZ_ARGS:-} "$corpus" "tests/fuzz/corpus/$name" >>"$log" 2>&1
    local rc=$? stats
    stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 |
            sed -E 's/^#([0-9]+)[[:space:]]+[A-Z]+[[:space:]]+/\1 runs, /; s/ exec\/s.*//')
    if [ "$rc" -ne 0 ]; then
        grep -E 'ERROR|property violated|runtime error|SUMMARY|Test unit written' "$log" | head -n 8 | sed "s|^|fuzz_$name: |"
        echo "fuzz_$name: FAILED (exit $rc; ${stats:-no stats}; log: $log)"
        return 1
    fi
    echo "fuzz_$name: ok (${seconds}s: $stats)"
}

passed=0 failed=0
jobs=${FUZZ_JOBS:-1}
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
i=0
for bin in "$@"; do
    ( run_one "$bin" >"$results/$i.out"; echo $? >"$results/$i.rc" ) &
    i=$((i + 1))
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
done
wait
for ((k = 0; k < i; k++)); do
    cat "$results/$k.out"
    if [ "$(cat "$results/$k.rc")" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
