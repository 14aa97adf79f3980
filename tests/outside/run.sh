#!/usr/bin/env bash
# Installs nub into a temporary prefix and uses it as an outside user would: headers as C and C++, the guest template built with gcc and clang through pkg-config nubguest and run with the installed nub CLI, every example built from its installed copy and its output checked.
# Usage: tests/outside/run.sh (after make); MAKE, NUB_OUTSIDE_CCS (default "gcc clang") and
# NUB_EXAMPLES_BACKEND (default emu: this project's machines have no KVM that runs nub guests) may be set.
set -u
cd "$(dirname "$0")/../.."
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
passed=0 failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "outside: FAIL $*"; }

# expect NAME WANT COMMAND...: run COMMAND, compare its stdout with WANT
expect() {
    local name=$1 want=$2 got
    shift 2
    if got=$("$@" 2>"$tmp/err"); [ "$got" = "$want" ]; then
        ok
    else
        fail "$name: wanted '$want', got '$got'"
        sed 's/^/outside:   /' "$tmp/err" | head -n 20
    fi
}

if ! ${MAKE:-make} --no-print-directory -s install PREFIX="$prefix" >"$tmp/install.log" 2>&1; then
    fail "make install PREFIX=$prefix"; cat "$tmp/install.log"
    echo "outside: $passed passed, $failed failed"; exit 1
fi
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PATH=$prefix/bin:$PATH
for f in share/doc/nub/design.md share/doc/nub/README.md share/nub/template/guest.c \
         share/nub/nub.ld include/nub/testguest.h lib/libnubguest.a share/nub/testguest.elf \
         share/man/man1/nub.1 share/doc/nub/cli.md; do
    if [ -f "$prefix/$f" ]; then ok; else fail "$f is not installed"; fi
done

# The installed headers: each alone and together, C11 and C++17.
if "$root/tests/headers/run.sh" "$prefix/include" >"$tmp/headers.log"; then ok; else
    fail "installed headers"; cat "$tmp/headers.log"; fi

# The template guest, built outside the tree with the documented two lines.
for cc in ${NUB_OUTSIDE_CCS:-gcc clang}; do
    if ! command -v "$cc" >/dev/null; then fail "$cc is not installed (tools/deps.sh test)"; continue; fi
    w=$tmp/guest-$cc
    mkdir -p "$w" && cp "$prefix/share/nub/template/guest.c" "$w/guest.c"
    if (cd "$w" && "$cc" $(pkg-config --cflags nubguest) -O2 -Wall -Wextra -Werror -c guest.c &&
        "$cc" -o g.elf guest.o $(pkg-config --libs nubguest)) >"$tmp/build.log" 2>&1 &&
       [ ! -s "$tmp/build.log" ]; then
        ok
    else
        fail "building the template with $cc (output must be empty)"; sed 's/^/outside:   /' "$tmp/build.log"
        continue
    fi
    expect "$cc guest fn 1" "hello, outside" nub run "$w/g.elf" --backend emu --call 1 --in-text outside
    expect "$cc guest fn 2" "0300000000000000" nub run "$w/g.elf" --backend emu --call 2 --in 616263
    # The template's own Makefile gives the same guest, byte for byte.
    mkdir -p "$w/tpl" && cp "$prefix"/share/nub/template/* "$w/tpl/"
    if make -s -C "$w/tpl" CC="$cc" >"$tmp/mk.log" 2>&1 && cmp -s "$w/tpl/guest.elf" "$w/g.elf"; then
        ok
    else
        fail "the template Makefile with $cc"; sed 's/^/outside:   /' "$tmp/mk.log"; fi
done
# Each example from its installed copy: a clean build, then its output.
for src in examples/*/expected.txt; do
    name=$(basename "$(dirname "$src")")
    w=$tmp/examples/$name
    mkdir -p "$w" && cp "$prefix/share/doc/nub/examples/$name"/* "$w/"
    if make -s -C "$w" >"$tmp/build.log" 2>&1 && [ ! -s "$tmp/build.log" ]; then ok; else
        fail "building examples/$name (output must be empty)"; sed 's/^/outside:   /' "$tmp/build.log"
        continue
    fi
    if NUB_BACKEND=${NUB_EXAMPLES_BACKEND:-emu} make -s -C "$w" run >"$tmp/out" 2>"$tmp/err" &&
       diff -u "$w/expected.txt" "$tmp/out" >"$tmp/diff"; then
        ok
    else
        fail "examples/$name: output differs from expected.txt"
        sed 's/^/outside:   /' "$tmp/diff" "$tmp/err" | head -n 40
    fi
done
echo "outside: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
