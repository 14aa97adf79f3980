#!/usr/bin/env bash
# Checks that libnub.so exports exactly the functions its public headers declare, plus the two Unicorn-named replacements of host/hv/emu_pagelock.c.
# Usage: tests/exports/run.sh [LIBNUB_SO] (default build/libnub.so); CC chooses the preprocessor.
set -u
cd "$(dirname "$0")/../.."
so=${1:-build/libnub.so}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every nub_* name followed by "(" in the preprocessed host headers is a
# declared function (macros are gone; function-pointer typedefs read
# "(*name)(", so they do not match). guest.h belongs to libnubguest.
for h in nub nubk cap hash vmem wire cdir; do echo "#include \"nub/$h.h\""; done >"$tmp/all.c"
if ! "${CC:-cc}" -E -P -Iinclude "$tmp/all.c" >"$tmp/pre.c"; then
    echo "exports: 0 passed, 1 failed"; exit 1
fi
tr '\n' ' ' <"$tmp/pre.c" | grep -oE '\bnub_[a-z0-9_]+ *\(' | sed 's/ *($//' | sort -u >"$tmp/declared"
# Exported: defined, in the dynamic symbol table. The pagelock pair exists
# only when built against Unicorn 2.0.1 and is expected then.
nm -D --defined-only "$so" | awk '{print $3}' |
    grep -vxE 'page_collection_(un)?lock_x86_64' | sort -u >"$tmp/exported"

passed=0 failed=0
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
if [ -z "$extra" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "exports: FAIL exported but not in a public header:" $extra; fi
if [ -z "$missing" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "exports: FAIL declared in a public header but not exported:" $missing; fi
if [ "$(wc -l <"$tmp/declared")" -gt 50 ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "exports: FAIL only $(wc -l <"$tmp/declared") declarations found: the header scan is broken"; fi
echo "exports: $passed passed, $failed failed ($(wc -l <"$tmp/declared") public functions)"
[ "$failed" -eq 0 ]
