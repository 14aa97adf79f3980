/* Integration tests of nub_pool on every backend: ready sandboxes, restore on release, full/empty/destroy behaviour, threads. */
#include "snapshot_helpers.h"

static int pool_setup(void *ctx, nub_sandbox *sb)
{
    ++*(int *)ctx;
    return nub_sandbox_register(sb, 40, host_twice, NULL) == NUB_OK ? 0 : 1;
}

BACKEND_TEST(pool, hands_out_ready_sandboxes_and_restores_them)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    struct nub_config ov = test_config(backend);
    struct nub_error err;
    nub_pool *pool = NULL;
    int setups = 0;
    uint8_t base[32], h[32];
    snap_hash(evo, base);
    cr_assert_eq(nub_pool_new(evo, 2, &ov, pool_setup, &setups, &pool, &err), NUB_OK, "%s", err.message);
    nub_snapshot_release(evo); /* the pool holds its own reference */
    cr_assert_eq(nub_pool_wait_full(pool), NUB_OK);
    cr_assert_eq(nub_pool_ready(pool), 2);
    cr_assert_eq(setups, 2, "the filler set up both");
    nub_sandbox *sb[3];
    for (int i = 0; i < 3; i++) /* the third finds the pool empty and is created on this thread */
        cr_assert_eq(nub_pool_acquire(pool, &sb[i], &err), NUB_OK, "acquire %d: %s", i, err.message);
    for (int i = 0; i < 3; i++) {
        expect_host_twice(sb[i]);
        write_pages(sb[i], 4);
    }
    for (int i = 0; i < 3; i++)
        nub_pool_release(pool, sb[i]);
    cr_assert_eq(nub_pool_wait_full(pool), NUB_OK);
    cr_assert_eq(nub_pool_ready(pool), 2, "a full pool destroys what comes back beyond its size");
    nub_sandbox *again = NULL;
    cr_assert_eq(nub_pool_acquire(pool, &again, &err), NUB_OK);
    memory_hash(again, h);
    cr_assert_eq(memcmp(h, base, 32), 0, "a released sandbox comes back in the snapshot's state");
    expect_host_twice(again);
    nub_pool_destroy(pool); /* `again` is still out: it stays valid and is ours */
    expect_host_twice(again);
    nub_sandbox_destroy(again);
}

BACKEND_TEST(pool, destroys_a_sandbox_whose_restore_fails_and_rejects_bad_input)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0), *pre = pre_snapshot(backend, 0, NULL);
    struct nub_config ov = test_config(backend);
    struct nub_error err;
    nub_pool *pool = NULL;
    cr_assert_eq(nub_pool_new(pre, 2, &ov, NULL, NULL, &pool, &err), NUB_E_INVALID, "a pre-init snapshot");
    cr_assert_eq(nub_pool_new(evo, 0, &ov, NULL, NULL, &pool, &err), NUB_E_INVALID, "size 0");
    cr_assert_eq(nub_pool_new(evo, 1, &ov, NULL, NULL, &pool, &err), NUB_OK);
    cr_assert_eq(nub_pool_wait_full(pool), NUB_OK);
    nub_sandbox *sb = NULL;
    cr_assert_eq(nub_pool_acquire(pool, &sb, &err), NUB_OK);
    /* A sandbox of another layout cannot be restored to the pool's snapshot: destroyed, not kept. */
    nub_snapshot *big = evolved_snapshot(backend, 1u << 20);
    nub_sandbox *foreign = from_snap(big, NULL);
    nub_pool_release(pool, foreign);
    cr_assert_eq(nub_pool_wait_full(pool), NUB_OK);
    nub_pool_release(pool, sb);
    cr_assert_eq(nub_pool_ready(pool), 1);
    nub_pool_destroy(pool);
    nub_pool_destroy(NULL);
    cr_assert_eq(nub_pool_acquire(NULL, &sb, &err), NUB_E_INVALID);
    nub_snapshot_release(big);
    nub_snapshot_release(pre);
    nub_snapshot_release(evo);
}

static void *pool_worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    w->ok = 1;
    for (int i = 0; i < 20 && w->ok; i++) {
        nub_sandbox *sb = NULL;
        uint64_t ab[2] = {(uint64_t)i, 1}, sum = 0;
        size_t len = 0;
        w->ok = nub_pool_acquire(w->pool, &sb, NULL) == NUB_OK &&
                nub_call_into(sb, NUB_TG_FN_ADD, ab, sizeof ab, &sum, sizeof sum, &len) == NUB_OK &&
                sum == (uint64_t)i + 1;
        nub_pool_release(w->pool, sb);
    }
    return NULL;
}

BACKEND_TEST(pool, is_thread_safe)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    struct nub_config ov = test_config(backend);
    nub_pool *pool = NULL;
    cr_assert_eq(nub_pool_new(evo, 2, &ov, NULL, NULL, &pool, NULL), NUB_OK);
    run_workers(pool_worker_main, evo, pool);
    cr_assert_eq(nub_pool_wait_full(pool), NUB_OK);
    cr_assert_eq(nub_pool_ready(pool), 2);
    nub_pool_destroy(pool);
    nub_snapshot_release(evo);
}
