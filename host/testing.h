/* Test-only interface of libnub.a (never used by the library itself): per-sandbox hooks where deterministic concurrency tests place a barrier, and the bare guest entry and bare backend VM the benchmarks measure. */
#ifndef NUB_HOST_TESTING_H
#define NUB_HOST_TESTING_H

#include <pthread.h>
#include <stddef.h>

#include "nub/nub.h"

struct nub_sandbox;

/*
 * Only tests and benchmarks include this header: it is not installed, and
 * nothing it declares is exported from libnub.so (link libnub.a).
 *
 * Per-sandbox hooks, all NULL by default; a hook runs on the thread that
 * reaches its point.
 */
struct nub_test_hooks {
    void *ctx;
    /* After a claim succeeded (state lock released, nothing else done yet). */
    void (*after_claim)(void *ctx, struct nub_sandbox *sb);
    /* After a claim was released. */
    void (*after_release)(void *ctx, struct nub_sandbox *sb);
    /* Just before a run publishes the guest counter into guest memory. */
    void (*before_counter_publish)(void *ctx, struct nub_sandbox *sb);
    /* Replaces pthread_create for the timeout watchdog (to make it fail). */
    int (*thread_create)(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                         void *arg);
};

/* Install `hooks` (copied; NULL removes all) on `sb`. Not while a call runs. */
void nub_test_set_hooks(struct nub_sandbox *sb, const struct nub_test_hooks *hooks);

/*
 * Enter the evolved guest's dispatch entry once and run it until it halts,
 * without framing a request or reading a response: the bare backend round
 * trip (entry, OUT HALT, exit) that bench/call.c and
 * bench/call-instructions.c measure against nub_call(). Only for a guest
 * whose dispatch halts at once on an empty input buffer (guests/bare).
 * Does not claim the sandbox: never while a call runs. Errors as a call's
 * guest run; NUB_E_STATE when sb is NULL or not evolved.
 */
nub_status nub_test_run_dispatch(struct nub_sandbox *sb);

/*
 * Run the two metrics hooks a successful 0-byte call runs (its clock start
 * and end, host/obs.h) `n` times back to back on `sb`, counting into its
 * metrics as n calls would: bench/call.c times them against a whole call.
 */
void nub_test_metrics_hooks(struct nub_sandbox *sb, size_t n);

struct nub_hv; /* a backend's VM and vCPU, opaque here */

/*
 * A second, bare backend VM over `sb`'s guest memory and page tables, made
 * by sb's backend and never run: bench/snapshot.c times and weighs the
 * backend's own creation against a whole sandbox's. msg gets the
 * backend's reason on failure. NUB_E_INVALID when sb has no VM yet.
 * Destroy it with nub_test_bare_vm_destroy() before `sb`.
 */
nub_status nub_test_bare_vm_create(struct nub_sandbox *sb, struct nub_hv **out, char *msg, size_t msg_len);
void nub_test_bare_vm_destroy(struct nub_sandbox *sb, struct nub_hv *vm);

/* ---- the kvm probe (host/hv/kvm_probe.c), for bench/kvm_probe ---- */

/*
 * Run the probe now, uncached (benchmarks and tests): describe this
 * machine's KVM (API version, modules, CPU vendor and VMX/SVM flags), then
 * create a probe VM through the kvm backend's own create() (sregs, CPUID,
 * page tables built with common/ vmem at the high half), run SSE2 register
 * operations at CPL0, a 16-byte store and a load through the high-half
 * mapping and an OUT to the halt port, and check the exit and the values.
 * Fills every field of *out; out->usable and out->reason give the verdict.
 */
void nub_kvm_probe_run(struct nub_backend_info *out);

/*
 * Create and destroy one bare kvm VM with the probe's memory and page
 * tables, without running it: the baseline the probe's cost is measured
 * against (bench/kvm_probe). NUB_OK, or the create() error with err filled.
 */
nub_status nub_kvm_probe_bare_vm(char *err, size_t err_len);

#endif /* NUB_HOST_TESTING_H */
