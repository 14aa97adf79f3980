/* Helpers of the snapshot integration tests: snapshots of the test guest, sandboxes from them, memory hashes, written pages. */
#ifndef NUB_TEST_SNAPSHOT_HELPERS_H
#define NUB_TEST_SNAPSHOT_HELPERS_H

#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "nub/abi.h"
#include "../../guests/testguest/testguest.h"

/* Pre-init snapshot of the test guest with `heap` bytes of heap (0 = default). */
static inline nub_snapshot *pre_snapshot(enum nub_backend backend, uint64_t heap,
                                  const struct nub_init_data *init)
{
    struct nub_config cfg = test_config(backend);
    struct nub_error err;
    nub_snapshot *snap = NULL;
    if (heap)
        cfg.heap_size = heap;
    nub_status rc = nub_snapshot_from_file(guest_path("testguest"), init, &cfg, &snap, &err);
    cr_assert_eq(rc, NUB_OK, "snapshot: %s: %s", nub_strerror(rc), err.message);
    cr_assert_eq(nub_snapshot_is_evolved(snap), 0);
    return snap;
}

static inline nub_sandbox *from_snap(nub_snapshot *snap, const struct nub_config *ov)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_snapshot(snap, ov, &sb, &err);
    cr_assert_eq(rc, NUB_OK, "from snapshot: %s: %s", nub_strerror(rc), err.message);
    return sb;
}

/* An evolved snapshot of the test guest, and (released) the sandbox it came from. */
static inline nub_snapshot *evolved_snapshot(enum nub_backend backend, uint64_t heap)
{
    nub_snapshot *pre = pre_snapshot(backend, heap, NULL);
    nub_sandbox *sb = from_snap(pre, NULL);
    nub_snapshot_release(pre);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    nub_snapshot *snap = NULL;
    cr_assert_eq(nub_sandbox_snapshot(sb, &snap), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(nub_snapshot_is_evolved(snap), 1);
    nub_sandbox_destroy(sb);
    return snap;
}

/* Content hash of the sandbox's memory now (through a capture). */
static inline void memory_hash(nub_sandbox *sb, uint8_t out[32])
{
    nub_snapshot *s = NULL;
    cr_assert_eq(nub_sandbox_snapshot(sb, &s), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(nub_snapshot_hash(s, out), NUB_OK);
    nub_snapshot_release(s);
}

static inline void snap_hash(nub_snapshot *s, uint8_t out[32])
{
    cr_assert_eq(nub_snapshot_hash(s, out), NUB_OK);
}

static inline void expect_echo(nub_sandbox *sb)
{
    uint8_t *out = NULL;
    size_t len = 0;
    nub_status rc = nub_call(sb, NUB_TG_FN_ECHO, "snap", 4, &out, &len);
    cr_assert_eq(rc, NUB_OK, "echo: %s: %s", nub_strerror(rc), nub_sandbox_last_error(sb)->message);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(out, "snap", 4), 0);
    nub_buffer_free(out);
}

static inline struct nub_heap_stats heap_stats(nub_sandbox *sb)
{
    struct nub_heap_stats st;
    size_t len = 0;
    nub_status rc = nub_call_into(sb, NUB_TG_FN_HEAP_STATS, NULL, 0, &st, sizeof st, &len);
    cr_assert_eq(rc, NUB_OK, "heap stats: %s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(len, sizeof st);
    return st;
}

/* Make the guest write about `pages` heap pages (malloc, fill, free). */
static inline void write_pages(nub_sandbox *sb, uint64_t pages)
{
    uint64_t n = pages * NUB_PAGE_SIZE - 64;
    uint8_t ok = 0;
    size_t len = 0;
    nub_status rc = nub_call_into(sb, NUB_TG_FN_MALLOC_N, &n, sizeof n, &ok, 1, &len);
    cr_assert_eq(rc, NUB_OK, "malloc %llu: %s", (unsigned long long)n, nub_sandbox_last_error(sb)->message);
    cr_assert_eq(ok, 1, "the guest could not allocate %llu bytes", (unsigned long long)n);
}

static inline int host_twice(void *ctx, struct nub_host_call *call)
{
    (void)ctx;
    for (size_t i = 0; i < call->payload_len; i++)
        call->result[i] = (uint8_t)(call->payload[i] * 2);
    call->result_len = call->payload_len;
    return 0;
}

/* Host function 40 doubles 21. */
static inline void expect_host_twice(nub_sandbox *sb)
{
    uint8_t in[5] = {40, 0, 0, 0, 21}, out[4];
    size_t len = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_HOST_CALL, in, sizeof in, out, sizeof out, &len), NUB_OK,
                 "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(len, 1);
    cr_assert_eq(out[0], 42);
}

#define THREADS 4

struct worker {
    nub_snapshot *snap;
    nub_pool *pool;
    pthread_barrier_t *start;
    int ok;
};

/* Run `fn` on THREADS threads released together by a barrier; each must set ok. */
static inline void run_workers(void *(*fn)(void *), nub_snapshot *snap, nub_pool *pool)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){nub_snapshot_retain(snap), pool, &start, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, fn, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert(w[i].ok, "worker %d", i);
        nub_snapshot_release(w[i].snap);
    }
    pthread_barrier_destroy(&start);
}

#endif /* NUB_TEST_SNAPSHOT_HELPERS_H */
