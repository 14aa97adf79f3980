#!/usr/bin/env bash
# Compiles each public header alone as C11 and as C++17 (-Wall -Wextra -Werror), then all of them together, so each one includes what it uses and works from C++.
# Usage: tests/headers/run.sh [INCLUDE_DIR] (default include/); CC and CXX choose the compilers.
set -u
cd "$(dirname "$0")/../.."
inc=${1:-include}
cc=${CC:-cc} cxx=${CXX:-c++}
flags=(-Wall -Wextra -Werror -Wpedantic -I"$inc")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

check() { # NAME SOURCE-TEXT [FLAG...]: compile SOURCE-TEXT as C11 and as C++17, with the extra flags
    local name=$1 text=$2 lang
    shift 2
    for lang in c cpp; do
        printf '%s\nint nub_header_check_%s(void);\nint nub_header_check_%s(void) { return 0; }\n' \
            "$text" "$lang" "$lang" >"$tmp/t.$lang"
        if [ "$lang" = c ]; then
            out=$("$cc" -std=c11 "${flags[@]}" "$@" -c "$tmp/t.c" -o "$tmp/t.o" 2>&1)
        else
            out=$("$cxx" -std=c++17 "${flags[@]}" "$@" -c "$tmp/t.cpp" -o "$tmp/t.o" 2>&1)
        fi
        if [ $? -eq 0 ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "headers: FAIL $name as $lang"
            printf '%s\n' "$out" | head -n 20 | sed 's/^/headers:   /'
        fi
    done
}

# The host API (nub.h, observe.h) and guest.h are never used in one program;
# each side goes with every freestanding header. The guest side compiles
# -ffreestanding, as guests do: nubk.h then declares only its ABI half.
host="" guest=""
for h in "$inc"/nub/*.h; do
    n=nub/$(basename "$h")
    check "$n" "#include \"$n\""
    [ "$n" != nub/guest.h ] && host+="#include \"$n\""$'\n'
    [ "$n" != nub/nub.h ] && [ "$n" != nub/observe.h ] && guest+="#include \"$n\""$'\n'
done
check "the host headers together" "$host"
check "the guest headers together" "$guest" -ffreestanding
echo "headers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
