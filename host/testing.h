/* Test-only hooks into one sandbox (never set by the library itself): points where deterministic concurrency tests place a barrier. */
#ifndef NUB_HOST_TESTING_H
#define NUB_HOST_TESTING_H

#include <pthread.h>

struct nub_sandbox;

/*
 * Per-sandbox hooks, all NULL by default; a hook runs on the thread that
 * reaches its point. Only tests include this header: it is not installed
 * and no public API reaches it.
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

#endif /* NUB_HOST_TESTING_H */
