#!/bin/sh
# Opens a nub guest core file in gdb (batch mode) and checks that the backtrace names FUNC and reaches the guest dispatcher.
# Usage: gdb_core.sh GUEST.elf CORE FUNC   (exit 0 when both are in the backtrace; gdb's output on stdout)
[ $# -eq 3 ] || { echo "usage: $0 GUEST.elf CORE FUNC" >&2; exit 2; }
out=$(gdb -nx -batch -ex bt -ex 'info registers rip' "$1" "$2" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || { echo "gdb_core: gdb exited with $rc"; exit 1; }
frames=$(printf '%s\n' "$out" | grep -E '^#[0-9]+ ')
printf '%s\n' "$frames" | grep -Eq "(^#[0-9]+ +| in )$3 \(" || { echo "gdb_core: no frame in $3"; exit 1; }
printf '%s\n' "$frames" | grep -Eq ' (nub_guest_dispatch|nub_dispatch_entry) \(' || { echo "gdb_core: backtrace does not reach the dispatcher"; exit 1; }
printf '%s\n' "$out" | grep -Eq '^rip +0x[0-9a-f]+' || { echo "gdb_core: no rip register"; exit 1; }
exit 0
