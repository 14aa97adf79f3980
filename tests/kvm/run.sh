#!/usr/bin/env bash
# Runs nub's integration suite on the kvm backend inside Debian's kernel booted under QEMU's software emulator (nested SVM).
#
# Usage: tests/kvm/run.sh            (after `make`; run from anywhere)
# Environment:
#   NUB_KVM_TIMEOUT      seconds for the whole QEMU run [2400]
#   NUB_KVM_JOBS         Criterion --jobs inside the VM [1]
#   NUB_KVM_SMP          vCPUs of the QEMU machine [2]
#   NUB_KVM_CASE_TIMEOUT Criterion --timeout per test case, seconds [240]
#   NUB_KVM_TEST_TIMEOUT seconds per test binary before it is killed [900]
#   NUB_KVM_ENV          "VAR=value ..." exported to the tests inside the VM (e.g. NUB_KVM_NO_SYNC_REGS=1)
#   NUB_KVM_FILTER       Criterion --filter pattern (debugging) [none]
#   NUB_KVM_DEBUG=N      every N seconds, print kernel backtraces of all CPUs and blocked tasks
#   NUB_KVM_KERNEL_ARGS  kernel command line instead of "quiet" (e.g. loglevel=7)
#   NUB_KVM_KERNEL=deb   use a kernel extracted from Debian's linux-image-amd64 even if /boot has one
#   NUB_KVM_BENCH=1      also run build/bench/{call,cancel,caps,snapshot,kvm_probe} on kvm inside the VM and print their
#                        JSON (nested-emulation figures: only ratios mean anything)
# Exit status 0 only when every integration test ran on kvm and passed, and the CLI call worked.
# Prints "kvm: N passed, N failed" as its last line: passed = the sum of Criterion's Passing counts;
# failed = Failing + Crashing, plus one for each test skipped because kvm was unavailable, each binary
# without a summary or with nothing run, a failed CLI call, and a VM that did not finish.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/kvm
B=$root/build
work=$B/kvm
cache=$work/cache
rootfs=$work/rootfs
log=$work/console.log

say() { echo "kvm-test: $*" >&2; }
die() { say "$*"; echo "kvm: 0 passed, 1 failed"; exit 1; }

# ---- host packages --------------------------------------------------------

is_static() { ! ldd "$1" >/dev/null 2>&1; }

install_missing() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    { [ -x /bin/busybox ] && is_static /bin/busybox; } || missing+=(busybox-static)
    command -v cpio >/dev/null || missing+=(cpio)
    command -v xz >/dev/null || missing+=(xz-utils)
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
        sudo=sudo
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---- kernel + modules -----------------------------------------------------

kvm_amd_in() { compgen -G "$1/kernel/arch/x86/kvm/kvm-amd.ko*" >/dev/null; }

# Sets kernel= and moddir= from /boot + /lib/modules when they match and are readable.
kernel_from_boot() {
    local f ver
    for f in $(ls /boot/vmlinuz-* 2>/dev/null | sort -rV); do
        ver=${f#/boot/vmlinuz-}
        if [ -r "$f" ] && kvm_amd_in "/lib/modules/$ver"; then
            kernel=$f moddir=/lib/modules/$ver
            return 0
        fi
    done
    return 1
}

# Sets kernel= and moddir= from Debian's linux-image package, extracted once into build/kvm/cache.
kernel_from_deb() {
    local dir=$cache/kernel
    if ! compgen -G "$dir/boot/vmlinuz-*" >/dev/null; then
        say "extracting Debian's kernel package into $dir"
        rm -rf "$cache/debs" "$dir" && mkdir -p "$cache/debs" "$dir"
        (cd "$cache/debs" && apt-get download -qq linux-image-amd64 2>&1 | { grep -v unsandboxed >&2 || true; }) || die "apt-get download linux-image-amd64 failed"
        local dep
        dep=$(dpkg-deb -f "$cache"/debs/linux-image-amd64_*.deb Depends | tr ',' '\n' |
              sed -nE 's/^ *(linux-image-[0-9][^ ]*).*/\1/p' | head -n 1)
        [ -n "$dep" ] || die "cannot tell which kernel linux-image-amd64 depends on"
        (cd "$cache/debs" && apt-get download -qq "$dep" 2>&1 | { grep -v unsandboxed >&2 || true; }) || die "apt-get download $dep failed"
        dpkg-deb -x "$(ls "$cache"/debs/"$dep"_*.deb | head -n 1)" "$dir"
    fi
    kernel=$(ls "$dir"/boot/vmlinuz-* | sort -V | tail -n 1)
    moddir=$dir/lib/modules/${kernel##*/vmlinuz-}
    kvm_amd_in "$moddir" || die "no kvm-amd module under $moddir"
}

# Copy module NAME (path under kernel/) into the rootfs as plain NAME.ko.
copy_module() {
    local path=$1 name=${1##*/} src
    src=$(compgen -G "$moddir/kernel/$path.ko*" | head -n 1) || true
    [ -n "$src" ] || die "module $path not found under $moddir"
    case $src in
    *.ko) cp "$src" "$rootfs/lib/modules/$name.ko" ;;
    *.ko.xz) xz -dc "$src" >"$rootfs/lib/modules/$name.ko" ;;
    *.ko.zst) zstd -qdc "$src" >"$rootfs/lib/modules/$name.ko" ;;
    *.ko.gz) gzip -dc "$src" >"$rootfs/lib/modules/$name.ko" ;;
    *) die "unknown module format: $src" ;;
    esac
}

# ---- gdb for tests/integration/test_gdb.c -------------------------------------

# Sets gdb_bin= to Debian's gdb-minimal (no Python, so no Python library to pack), extracted once into build/kvm/cache.
gdb_from_deb() {
    local dir=$cache/gdb-minimal
    if [ ! -x "$dir/usr/bin/gdb" ]; then
        say "extracting Debian's gdb-minimal package into $dir"
        rm -rf "$cache/gdb-debs" "$dir" && mkdir -p "$cache/gdb-debs" "$dir"
        (cd "$cache/gdb-debs" && apt-get download -qq gdb-minimal 2>&1 | { grep -v unsandboxed >&2 || true; }) || die "apt-get download gdb-minimal failed"
        dpkg-deb -x "$(ls "$cache"/gdb-debs/gdb-minimal_*.deb | head -n 1)" "$dir"
        rm -rf "$dir/etc" "$dir/usr/share" # only the binary is used
    fi
    gdb_bin=$dir/usr/bin/gdb
    if ldd "$gdb_bin" | grep -q 'not found'; then
        die "gdb-minimal needs libraries that are not installed: $(ldd "$gdb_bin" | grep 'not found' | tr -d '\t' | paste -sd' ') (tools/deps.sh test installs gdb and its libraries)"
    fi
}

# ---- initramfs ------------------------------------------------------------

# The backend-level tests (tests/kvm/test_hv_kvm.c) against build/libnub.a.
build_hv_test() {
    [ -f "$B/libnub.a" ] || die "build/libnub.a is missing: run make first"
    ${CC:-cc} -std=c11 -O2 -g -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes \
        -Iinclude -Icommon -Ihost -D_GNU_SOURCE -o "$work/test_hv_kvm" "$here/test_hv_kvm.c" \
        "$B/libnub.a" -lcriterion -lunicorn -lpthread -lm || die "cannot build tests/kvm/test_hv_kvm.c"
}

# Copy every shared library a binary loads, each with its directory.
copy_libs() {
    local lib
    for lib in $(ldd "$1" 2>/dev/null | sed -nE 's/.*=> (\/[^ ]+) .*/\1/p; s/^[[:space:]]*(\/[^ ]+) \(.*/\1/p'); do
        [ -e "$rootfs$lib" ] || cp -L --parents "$lib" "$rootfs"
    done
}

build_rootfs() {
    rm -rf "$rootfs"
    mkdir -p "$rootfs"/{bin,dev,proc,sys,tmp,etc,lib/modules,tests,guests}
    cp /bin/busybox "$rootfs/bin/"
    install -m 755 "$here/init.sh" "$rootfs/init"
    for m in virt/lib/irqbypass drivers/crypto/ccp/ccp arch/x86/kvm/kvm arch/x86/kvm/kvm-amd; do
        copy_module "$m"
    done
    cp "$B/nub" "$rootfs/nub"
    # Tests find the CLI next to their compiled-in guest directory ($B/guests/../nub).
    mkdir -p "$rootfs$B/guests" && ln -s /nub "$rootfs$B/nub"
    cp "$B"/guests/*.elf "$rootfs/guests/"
    # gdb, and the guests' sources where their debug info says, for the gdb tests' source lines.
    cp "$gdb_bin" "$rootfs/bin/gdb"
    local d
    for d in guest guests common include; do
        mkdir -p "$rootfs$root/$d" && (cd "$root/$d" && find . -name '*.[chS]' -exec cp --parents {} "$rootfs$root/$d/" \;)
    done
    local t bins=("$B/nub" "$gdb_bin")
    for t in "$work/test_hv_kvm" "$B"/tests/integration/test_*; do
        [ -f "$t" ] && [ -x "$t" ] || continue
        cp "$t" "$rootfs/tests/" && bins+=("$t")
    done
    if [ -n "${NUB_KVM_BENCH:-}" ]; then
        mkdir -p "$rootfs/bench"
        for t in call cancel caps snapshot kvm_probe; do
            [ -x "$B/bench/$t" ] || die "build/bench/$t is missing: run make bench first"
            cp "$B/bench/$t" "$rootfs/bench/" && bins+=("$B/bench/$t")
        done
    fi
    for t in "${bins[@]}"; do copy_libs "$t"; done
    cp -L --parents /lib64/ld-linux-x86-64.so.2 "$rootfs"
    local dirs
    dirs=$(cd "$rootfs" && find . -name '*.so*' -printf '/%h\n' | sed 's|^/\./|/|' | sort -u | paste -sd:)
    cat >"$rootfs/etc/nubkvm.env" <<EOF
LD_LIBRARY_PATH=$dirs
NUBKVM_JOBS=${NUB_KVM_JOBS:-1}
NUBKVM_TEST_TIMEOUT=${NUB_KVM_TEST_TIMEOUT:-900}
NUBKVM_CASE_TIMEOUT=${NUB_KVM_CASE_TIMEOUT:-240}
NUBKVM_EXTRA_ENV="${NUB_KVM_ENV:-}"
NUBKVM_DEBUG=${NUB_KVM_DEBUG:-}
NUBKVM_BENCH=${NUB_KVM_BENCH:-}
NUBKVM_CRITERION_ARGS="${NUB_KVM_FILTER:+--filter $NUB_KVM_FILTER}"
EOF
    (cd "$rootfs" && find . | cpio -o -H newc --quiet) >"$work/initrd.cpio"
}

# ---- results --------------------------------------------------------------

# Count results per test binary from the console log; sets passed/failed.
parse_results() {
    passed=0 failed=0
    local names name block syn p f c skipped
    names=$(sed -nE 's/^NUBKVM-BEGIN (.*)$/\1/p' "$log")
    [ -n "$names" ] || { say "no test binary ran inside the VM"; failed=1; return; }
    for name in $names; do
        block=$(sed -n "/^NUBKVM-BEGIN $name\$/,/^NUBKVM-END $name /p" "$log")
        printf '%s\n' "$block" | grep -E '^\[(FAIL|----)\]|Assertion|[Cc]rash|Timeout|Warning|NUBKVM-END' |
            grep -v 'Criterion v' | sed "s|^|  $name: |" >&2 || true
        syn=$(printf '%s\n' "$block" | { grep 'Synthesis:' || true; } | tail -n 1)
        skipped=$(printf '%s\n' "$block" | grep -c '^\[SKIP\].*backend kvm unavailable' || true)
        if [ -z "$syn" ]; then
            say "$name: no Criterion summary (killed or crashed)"
            failed=$((failed + 1)); continue
        fi
        p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$syn")
        f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$syn")
        c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$syn")
        say "$name: $p passed, $f failed, $c crashed, $skipped skipped because kvm was unavailable"
        passed=$((passed + p)); failed=$((failed + f + c + skipped))
        if [ "$p" -eq 0 ] && [ -z "${NUB_KVM_FILTER:-}" ]; then say "$name: nothing ran on kvm"; failed=$((failed + 1)); fi
    done
}

check_cli() {
    local block
    block=$(sed -n '/^NUBKVM-CLI-BEGIN$/,/^NUBKVM-CLI-END /p' "$log")
    printf '%s\n' "$block" | sed 's|^|  cli: |' >&2
    if ! printf '%s\n' "$block" | grep -q '^NUBKVM-CLI-END rc=0$' || ! printf '%s\n' "$block" | grep -qx hello; then
        say "nub run --backend kvm failed or did not echo hello"; failed=$((failed + 1))
    fi
}

# The core files test_observe wrote inside the VM (no gdb there): gdb on the host must name each
# one's faulting function and reach the dispatcher (tests/integration/gdb_core.sh).
check_cores() {
    local dir=$work/cores core n=0 bad=0
    rm -rf "$dir" && mkdir -p "$dir"
    if ! grep -q '^NUBKVM-CORES-BEGIN$' "$log" && [ -n "${NUB_KVM_FILTER:-}" ]; then return; fi
    if ! sed -n '/^NUBKVM-CORES-BEGIN$/,/^NUBKVM-CORES-END$/p' "$log" | sed '1d;$d' | base64 -d 2>/dev/null |
        tar -xz -C "$dir" 2>/dev/null; then
        say "no core files came back from the VM"; failed=$((failed + 1)); return
    fi
    command -v gdb >/dev/null || { say "gdb is missing: run tools/deps.sh test"; failed=$((failed + 1)); return; }
    for core in "$dir"/*.core; do
        [ -f "$core" ] || continue
        n=$((n + 1))
        if sh "$root/tests/integration/gdb_core.sh" "$B/guests/testguest.elf" "$core" "$(cat "${core%.core}.func")" \
            >"${core%.core}.gdb" 2>&1; then
            passed=$((passed + 1))
        else
            say "gdb on ${core##*/}:"; sed 's|^|  |' "${core%.core}.gdb" >&2; bad=$((bad + 1))
        fi
    done
    say "core files from the VM: $n, $bad not readable by gdb"
    failed=$((failed + bad))
    if [ "$n" -lt 4 ] && [ -z "${NUB_KVM_FILTER:-}" ]; then say "expected 4 kvm core files, got $n"; failed=$((failed + 1)); fi
}

# ---- main -----------------------------------------------------------------

main() {
    local t0=$SECONDS
    [ -x "$B/nub" ] || die "build/nub is missing: run make first"
    compgen -G "$B/guests/*.elf" >/dev/null || die "no guests under build/guests: run make first"
    install_missing
    mkdir -p "$work" "$cache"
    if [ "${NUB_KVM_KERNEL:-}" = deb ] || ! kernel_from_boot; then kernel_from_deb; fi
    say "kernel $kernel, modules $moddir"
    (cd "$root" && build_hv_test)
    gdb_from_deb
    build_rootfs
    say "initramfs $(du -h "$work/initrd.cpio" | cut -f1), booting QEMU (TCG, nested SVM)"
    local rc
    set +e
    timeout -k 10 "${NUB_KVM_TIMEOUT:-2400}" qemu-system-x86_64 -accel tcg,thread=single -cpu max -m 1024 \
        -smp "${NUB_KVM_SMP:-2}" -nographic -no-reboot -kernel "$kernel" -initrd "$work/initrd.cpio" \
        -append "console=ttyS0 ${NUB_KVM_KERNEL_ARGS:-quiet} panic=-1 mitigations=off" </dev/null 2>&1 |
        sed -u -E 's/\x1b(\[[0-9;?]*[A-Za-z]|c)//g; s/\r//g' | tee "$log" | { grep --line-buffered -E '^NUBKVM-(KVM|BEGIN|END|NOTE|DONE)' |
        sed -u 's|^|kvm-test: |' >&2; true; }
    rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" -eq 0 ] || say "QEMU pipeline exited with $rc (124 = timeout)"
    local passed failed
    if ! grep -q '^NUBKVM-KVM present' "$log"; then
        tail -n 40 "$log" >&2
        die "/dev/kvm did not appear inside the VM (log: $log)"
    fi
    parse_results
    check_cli
    check_cores
    if [ -n "${NUB_KVM_BENCH:-}" ]; then
        grep -E '^NUBKVM-BENCH ' "$log" | sed 's/^NUBKVM-BENCH /kvm-bench (nested emulation): /' >&2 ||
            { say "no benchmark output"; failed=$((failed + 1)); }
    fi
    grep -q '^NUBKVM-DONE' "$log" || { say "the VM did not finish (timeout?)"; failed=$((failed + 1)); }
    say "took $((SECONDS - t0)) s; full console log: $log"
    echo "kvm: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

main "$@"
