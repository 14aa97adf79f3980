#!/bin/busybox sh
# /init of the kvm test VM: load KVM, run nub's integration suite and CLI on the kvm backend, print marked results, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# /tmp stays the initramfs's own directory (already in RAM): a tmpfs over it would hide the
# sources run.sh packs at the checkout's path, which may itself lie under /tmp.
mkdir -p /dev/shm /tmp
mount -t tmpfs shm /dev/shm
ifconfig lo 127.0.0.1 up # the gdb tests talk to the stub over loopback
. /etc/nubkvm.env
export HOME=/tmp TMPDIR=/tmp LD_LIBRARY_PATH NUB_TEST_BACKENDS=kvm NUB_GUEST_DIR=/guests
# No gdb in here: test_observe leaves its core files there, and they go to the host after the tests.
export NUB_TEST_CORE_EXPORT=/tmp/cores
[ -n "$NUBKVM_EXTRA_ENV" ] && export $NUBKVM_EXTRA_ENV

echo
for m in irqbypass ccp kvm kvm-amd; do
    insmod /lib/modules/$m.ko || echo "NUBKVM-NOTE insmod $m failed"
done
if [ -c /dev/kvm ]; then
    echo "NUBKVM-KVM present"
else
    echo "NUBKVM-KVM absent (svm flags in /proc/cpuinfo: $(grep -c svm /proc/cpuinfo))"
fi

echo "NUBKVM-INFO-BEGIN"
/nub info
echo "NUBKVM-INFO-END rc=$?"

echo "NUBKVM-CLI-BEGIN"
/nub run /guests/testguest.elf --call 1 --in-text hello --backend kvm
echo "NUBKVM-CLI-END rc=$?"

if [ -n "$NUBKVM_DEBUG" ]; then
    # Every NUBKVM_DEBUG seconds: backtraces of all CPUs and of blocked tasks.
    (while sleep "$NUBKVM_DEBUG"; do echo l >/proc/sysrq-trigger; echo w >/proc/sysrq-trigger; done) &
fi

for t in /tests/test_*; do
    [ -x "$t" ] || continue
    name=${t##*/}
    echo "NUBKVM-BEGIN $name"
    start=$(date +%s)
    timeout -s KILL "$NUBKVM_TEST_TIMEOUT" "$t" --jobs "$NUBKVM_JOBS" --verbose --color=never \
        --timeout "$NUBKVM_CASE_TIMEOUT" $NUBKVM_CRITERION_ARGS 2>&1
    rc=$?
    echo "NUBKVM-END $name rc=$rc secs=$(( $(date +%s) - start ))"
done
if [ -n "$NUBKVM_BENCH" ]; then
    # Small iteration counts: every exit is emulated twice over, so only ratios mean anything.
    echo "NUBKVM-BENCH $(/bench/call kvm 2000 2>/dev/null)"
    echo "NUBKVM-BENCH $(/bench/cancel kvm 20 2>/dev/null)"
    echo "NUBKVM-BENCH $(/bench/caps kvm 10000 200 2>/dev/null)"
    echo "NUBKVM-BENCH $(/bench/snapshot kvm 20 200 2>/dev/null)"
    echo "NUBKVM-BENCH $(/bench/kvm_probe 50 2>/dev/null)"
fi
if [ -d /tmp/cores ]; then
    # Core files for the host's gdb (tests/kvm/run.sh check_cores): a gzipped tar, base64 on the console.
    echo "NUBKVM-CORES-BEGIN"
    tar -c -C /tmp/cores . | gzip -c | base64
    echo "NUBKVM-CORES-END"
fi
echo "NUBKVM-DONE"
sync
poweroff -f
