/* Test-only interface of libnub.a (never used by the library itself): per-sandbox hooks where deterministic concurrency tests place a barrier, and the bare guest entry the benchmarks measure. */
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

#endif /* NUB_HOST_TESTING_H */
