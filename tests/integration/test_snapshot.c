/* Integration tests of snapshots and restore on every backend: independence, restore after written pages, poisoning, hashes, leaks. */
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "nub/abi.h"
#include "nub/cap.h"
#include "nub/nubk.h"
#include "../../guests/testguest/testguest.h"
#include "snapshot_helpers.h"

BACKEND_TEST(snapshot, pre_init_snapshot_makes_uninitialised_sandboxes)
{
    nub_snapshot *snap = pre_snapshot(backend, 0, NULL);
    nub_sandbox *a = from_snap(snap, NULL), *b = from_snap(snap, NULL);
    nub_snapshot_release(snap); /* the sandboxes keep the image alive */
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(a, NUB_TG_FN_NOOP, NULL, 0, &out, &len), NUB_E_STATE);
    cr_assert_eq(nub_sandbox_evolve(a), NUB_OK, "%s", nub_sandbox_last_error(a)->message);
    cr_assert_eq(nub_sandbox_evolve(b), NUB_OK, "%s", nub_sandbox_last_error(b)->message);
    expect_echo(a);
    expect_echo(b);
    cr_assert_neq(nub_sandbox_id(a), nub_sandbox_id(b));
    nub_sandbox_destroy(a);
    nub_sandbox_destroy(b);
}

static void count_lines(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    (void)level, (void)msg, (void)len;
    if (src == NUB_LOG_SRC_GUEST)
        ++*(int *)ctx;
}

BACKEND_TEST(snapshot, evolved_snapshot_is_ready_without_init)
{
    nub_snapshot *pre = pre_snapshot(backend, 0, NULL);
    nub_sandbox *sb = from_snap(pre, NULL);
    nub_guest_counter *c = NULL;
    cr_assert_eq(nub_sandbox_guest_counter(sb, &c), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(nub_guest_counter_increment(c), NUB_OK);
    cr_assert_eq(nub_sandbox_set_max_guest_log_level(sb, NUB_LOG_LEVEL_OFF), NUB_OK);
    struct nub_tg_info want, got;
    size_t len = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_INFO, NULL, 0, &want, sizeof want, &len), NUB_OK);
    nub_snapshot *evo = NULL;
    cr_assert_eq(nub_sandbox_snapshot(sb, &evo), NUB_OK);
    nub_sandbox_destroy(sb);

    nub_sandbox *r = from_snap(evo, NULL);
    /* Registration stays open until the first call of a sandbox from an evolved snapshot. */
    cr_assert_eq(nub_call_into(r, NUB_TG_FN_INFO, NULL, 0, &got, sizeof got, &len), NUB_OK,
                 "%s", nub_sandbox_last_error(r)->message);
    cr_assert_eq(got.dispatch_gva, want.dispatch_gva);
    cr_assert_eq(got.seed, want.seed, "init did not run again: the boot seed is the captured one");
    nub_guest_counter *rc = NULL;
    cr_assert_eq(nub_sandbox_guest_counter(r, &rc), NUB_OK);
    cr_assert_eq(nub_guest_counter_value(rc), 3);
    uint64_t seen = 0;
    cr_assert_eq(nub_call_into(r, NUB_TG_FN_GUEST_COUNTER, NULL, 0, &seen, sizeof seen, &len), NUB_OK);
    cr_assert_eq(seen, 3);
    uint32_t sent = 0;
    int lines = 0;
    cr_assert_eq(nub_sandbox_set_log(r, count_lines, &lines), NUB_OK);
    cr_assert_eq(nub_call_into(r, NUB_TG_FN_LOG_LEVELS, NULL, 0, &sent, sizeof sent, &len), NUB_OK);
    cr_assert_eq(sent, 0, "the level set before the capture (OFF) is the restored sandbox's");
    cr_assert_eq(lines, 0, "the host's level OFF travelled with the snapshot");
    nub_sandbox *r2 = from_snap(pre, NULL);
    cr_assert_eq(nub_sandbox_set_log(r2, count_lines, &lines), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(r2), NUB_OK);
    cr_assert_eq(nub_call_into(r2, NUB_TG_FN_LOG_LEVELS, NULL, 0, &sent, sizeof sent, &len), NUB_OK);
    cr_assert_eq(lines, 1, "at the default level ERROR the line is forwarded");
    nub_sandbox_destroy(r2);
    nub_sandbox_destroy(r);
    nub_snapshot_release(evo);
    nub_snapshot_release(pre);
}

BACKEND_TEST(snapshot, host_functions_register_before_first_call_of_evolved)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    nub_sandbox *sb = from_snap(evo, NULL);
    cr_assert_eq(nub_sandbox_register(sb, 40, host_twice, NULL), NUB_OK);
    expect_host_twice(sb);
    cr_assert_eq(nub_sandbox_register(sb, 41, host_twice, NULL), NUB_E_STATE);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(evo);
}

BACKEND_TEST(snapshot, sandboxes_from_one_snapshot_are_independent)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    uint8_t base[32], h[32];
    snap_hash(evo, base);
    nub_sandbox *a = from_snap(evo, NULL), *b = from_snap(evo, NULL);
    write_pages(a, 8);
    memory_hash(a, h);
    cr_assert_neq(memcmp(h, base, 32), 0, "the call wrote guest memory");
    memory_hash(b, h);
    cr_assert_eq(memcmp(h, base, 32), 0, "a write in one sandbox is not seen by another");
    nub_sandbox *c = from_snap(evo, NULL);
    memory_hash(c, h);
    cr_assert_eq(memcmp(h, base, 32), 0, "nor by a sandbox created later");
    nub_sandbox_destroy(a);
    nub_sandbox_destroy(b);
    nub_sandbox_destroy(c);
    nub_snapshot_release(evo);
}

BACKEND_TEST(snapshot, caps_in_one_sandbox_are_not_in_its_siblings)
{
    struct nub_config cfg = test_config(backend);
    struct nub_init_data init;
    struct nub_nubk_config kcfg;
    struct nub_error err;
    cr_assert_eq(nub_nubk_setup(&cfg, &init, &kcfg, 64, 1 << 16, 0), NUB_OK);
    nub_snapshot *pre = NULL, *evo = NULL;
    cr_assert_eq(nub_snapshot_from_file(guest_path("nubk"), &init, &cfg, &pre, &err), NUB_OK, "%s", err.message);
    nub_sandbox *sb = from_snap(pre, NULL);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(nub_sandbox_snapshot(sb, &evo), NUB_OK);
    nub_sandbox *a = from_snap(evo, NULL), *b = from_snap(evo, NULL);
    struct nub_cap c;
    uint64_t v = 0x5eed;
    uint8_t cap[64], hash[32];
    size_t len = 0;
    nub_cap_data(&c, &v, sizeof v);
    cr_assert_eq(nub_cap_encode(&c, cap, sizeof cap, &len), NUB_CAP_OK);
    cr_assert_eq(nub_put_cap(a, cap, len, hash), NUB_OK, "%s", nub_sandbox_last_error(a)->message);
    cr_assert_eq(nub_cache_contains(a, hash), 1);
    cr_assert_eq(nub_cache_contains(b, hash), 0, "not in a sibling");
    nub_sandbox *later = from_snap(evo, NULL);
    cr_assert_eq(nub_cache_contains(later, hash), 0, "not in a sandbox created later");
    cr_assert_eq(nub_sandbox_restore(a, evo), NUB_OK);
    cr_assert_eq(nub_cache_contains(a, hash), 0, "restore drops the cap");
    nub_sandbox_destroy(later);
    nub_sandbox_destroy(a);
    nub_sandbox_destroy(b);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(evo);
    nub_snapshot_release(pre);
}

BACKEND_TEST(snapshot, restore_after_written_pages_returns_the_snapshot_bytes)
{
    static const uint64_t pages[] = {0, 1, 8, 512};
    nub_snapshot *evo = evolved_snapshot(backend, 4u << 20);
    uint8_t base[32], h[32];
    snap_hash(evo, base);
    nub_sandbox *fresh = from_snap(evo, NULL);
    struct nub_heap_stats want = heap_stats(fresh);
    nub_sandbox *sb = from_snap(evo, NULL);
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        if (pages[i] != 0) {
            write_pages(sb, pages[i]);
            memory_hash(sb, h);
            cr_assert_neq(memcmp(h, base, 32), 0, "%llu pages: memory changed", (unsigned long long)pages[i]);
        }
        cr_assert_eq(nub_sandbox_restore(sb, evo), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
        memory_hash(sb, h);
        cr_assert_eq(memcmp(h, base, 32), 0, "%llu pages: restore returns the snapshot's bytes",
                     (unsigned long long)pages[i]);
        struct nub_heap_stats got = heap_stats(sb);
        cr_assert_eq(memcmp(&got, &want, sizeof got), 0, "the next call sees a fresh heap");
        cr_assert_eq(nub_sandbox_restore(sb, evo), NUB_OK);
    }
    expect_echo(sb);
    nub_sandbox_destroy(sb);
    nub_sandbox_destroy(fresh);
    nub_snapshot_release(evo);
}

BACKEND_TEST(snapshot, restore_to_pre_init_snapshot_allows_evolve_again)
{
    nub_snapshot *pre = pre_snapshot(backend, 0, NULL);
    nub_sandbox *sb = from_snap(pre, NULL);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK);
    expect_echo(sb);
    cr_assert_eq(nub_sandbox_restore(sb, pre), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_NOOP, NULL, 0, &out, &len), NUB_E_STATE, "uninitialised again");
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    expect_echo(sb);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(pre);
}

BACKEND_TEST(snapshot, restore_to_another_snapshot_of_the_same_layout)
{
    nub_snapshot *pre = pre_snapshot(backend, 0, NULL);
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    nub_sandbox *sb = from_snap(pre, NULL);
    cr_assert_eq(nub_sandbox_restore(sb, evo), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    nub_snapshot_release(evo); /* the sandbox holds the image now */
    expect_echo(sb);
    uint8_t h[32], want[32];
    cr_assert_eq(nub_sandbox_restore(sb, pre), NUB_OK);
    memory_hash(sb, h);
    snap_hash(pre, want);
    cr_assert_eq(memcmp(h, want, 32), 0);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(pre);
}

BACKEND_TEST(snapshot, restore_to_another_layout_is_a_state_error)
{
    nub_snapshot *small = evolved_snapshot(backend, 0);
    nub_snapshot *big = evolved_snapshot(backend, 1u << 20);
    nub_sandbox *sb = from_snap(small, NULL);
    cr_assert_eq(nub_sandbox_restore(sb, big), NUB_E_STATE);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "layout") != NULL);
    expect_echo(sb); /* nothing lost */
    cr_assert_eq(nub_sandbox_restore(sb, NULL), NUB_E_INVALID);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(small);
    nub_snapshot_release(big);
}

struct restore_ctx {
    nub_sandbox *sb;
    nub_snapshot *snap;
    nub_status seen;
};

static int host_restores(void *ctx, struct nub_host_call *call)
{
    struct restore_ctx *r = ctx;
    r->seen = nub_sandbox_restore(r->sb, r->snap);
    call->result_len = 0;
    return 0;
}

BACKEND_TEST(snapshot, restore_during_a_call_is_busy)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    struct restore_ctx r = {from_snap(evo, NULL), evo, NUB_OK};
    cr_assert_eq(nub_sandbox_register(r.sb, 50, host_restores, &r), NUB_OK);
    uint8_t in[4] = {50, 0, 0, 0};
    uint8_t out[8];
    size_t len = 0;
    cr_assert_eq(nub_call_into(r.sb, NUB_TG_FN_HOST_CALL, in, sizeof in, out, sizeof out, &len), NUB_OK,
                 "%s", nub_sandbox_last_error(r.sb)->message);
    cr_assert_eq(r.seen, NUB_E_BUSY, "restore from inside the sandbox's own call");
    nub_snapshot *s = NULL;
    cr_assert_eq(nub_sandbox_restore(r.sb, evo), NUB_OK);
    cr_assert_eq(nub_sandbox_snapshot(r.sb, &s), NUB_OK);
    nub_snapshot_release(s);
    nub_sandbox_destroy(r.sb);
    nub_snapshot_release(evo);
}

static int host_interrupts(void *ctx, struct nub_host_call *call)
{
    nub_interrupt(ctx);
    call->result_len = 0;
    return 0;
}

/* The sandbox is poisoned by `what`; restore makes it usable and fresh again. */
static void expect_restore_clears(nub_sandbox *sb, nub_snapshot *evo, nub_status want, const char *what)
{
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_NOOP, NULL, 0, &out, &len), NUB_E_POISONED, "%s poisons", what);
    nub_snapshot *s = NULL;
    cr_assert_eq(nub_sandbox_snapshot(sb, &s), NUB_E_POISONED);
    cr_assert_eq(nub_sandbox_restore(sb, evo), NUB_OK, "%s: %s", what, nub_sandbox_last_error(sb)->message);
    cr_assert_eq(nub_sandbox_last_error(sb)->code, NUB_OK);
    expect_echo(sb);
    uint8_t h[32], base[32];
    cr_assert_eq(nub_sandbox_restore(sb, evo), NUB_OK);
    memory_hash(sb, h);
    snap_hash(evo, base);
    cr_assert_eq(memcmp(h, base, 32), 0, "after %s (%s)", what, nub_strerror(want));
}

BACKEND_TEST(snapshot, restore_clears_poisoning)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    nub_sandbox *sb = from_snap(evo, NULL);
    cr_assert_eq(nub_sandbox_register(sb, 5, host_interrupts, sb), NUB_OK);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_NULL_DEREF, NULL, 0, &out, &len), NUB_E_GUEST_FAULT);
    expect_restore_clears(sb, evo, NUB_E_GUEST_FAULT, "a fault");
    uint8_t in[4] = {5, 0, 0, 0};
    cr_assert_eq(nub_call(sb, NUB_TG_FN_HOST_CALL, in, sizeof in, &out, &len), NUB_E_CANCELLED);
    expect_restore_clears(sb, evo, NUB_E_CANCELLED, "an interrupt");
    cr_assert_eq(nub_call(sb, NUB_TG_FN_TRIPLE_FAULT, NULL, 0, &out, &len), NUB_E_GUEST_FAULT);
    expect_restore_clears(sb, evo, NUB_E_GUEST_FAULT, "a triple fault");
    nub_sandbox_destroy(sb);
    /* The timeout applies to every call of the sandbox: generous, so the calls after restore fit in it. */
    struct nub_config ov = test_config(backend);
    ov.call_timeout_ms = 1500;
    sb = from_snap(evo, &ov);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_SPIN, NULL, 0, &out, &len), NUB_E_TIMEOUT);
    expect_restore_clears(sb, evo, NUB_E_TIMEOUT, "a timeout");
    nub_sandbox_destroy(sb);
    nub_snapshot_release(evo);
}

BACKEND_TEST(snapshot, hash_is_stable_and_sensitive)
{
    uint8_t data[64];
    memset(data, 7, sizeof data);
    struct nub_init_data init = {data, sizeof data, NUB_MEM_READ};
    nub_snapshot *a = pre_snapshot(backend, 0, &init), *b = pre_snapshot(backend, 0, &init);
    data[33] ^= 1;
    nub_snapshot *c = pre_snapshot(backend, 0, &init);
    uint8_t ha[32], hb[32], hc[32], again[32];
    snap_hash(a, ha);
    snap_hash(b, hb);
    snap_hash(c, hc);
    snap_hash(a, again);
    cr_assert_eq(memcmp(ha, again, 32), 0);
    cr_assert_eq(memcmp(ha, hb, 32), 0, "two builds of the same snapshot hash alike");
    cr_assert_neq(memcmp(ha, hc, 32), 0, "one byte of init data changes the hash");
    cr_assert_eq(nub_snapshot_equal(a, b), 1);
    cr_assert_eq(nub_snapshot_equal(a, c), 0);
    cr_assert_eq(nub_snapshot_equal(a, NULL), 0);
    nub_snapshot_release(a);
    nub_snapshot_release(b);
    nub_snapshot_release(c);
}

static void *worker_main(void *p)
{
    struct worker *w = p;
    nub_sandbox *sb = NULL;
    uint8_t h[32];
    pthread_barrier_wait(w->start);
    w->ok = nub_snapshot_hash(w->snap, h) == NUB_OK &&
            nub_sandbox_new_from_snapshot(w->snap, NULL, &sb, NULL) == NUB_OK;
    uint64_t ab[2] = {40, 2}, sum = 0;
    size_t len = 0;
    if (w->ok)
        w->ok = nub_call_into(sb, NUB_TG_FN_ADD, ab, sizeof ab, &sum, sizeof sum, &len) == NUB_OK && sum == 42;
    nub_sandbox_destroy(sb);
    return NULL;
}

BACKEND_TEST(snapshot, threads_share_one_snapshot)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    run_workers(worker_main, evo, NULL);
    nub_snapshot_release(evo);
}

BACKEND_TEST(snapshot, config_is_the_normalised_one_it_was_made_with)
{
    struct nub_config cfg = test_config(backend), got;
    cfg.heap_size = 200 * 1024 + 1; /* rounded up to whole pages */
    cfg.stack_size = 0;             /* the default */
    cfg.call_timeout_ms = 1234;
    struct nub_error err;
    nub_snapshot *snap = NULL;
    cr_assert_eq(nub_snapshot_from_file(guest_path("testguest"), NULL, &cfg, &snap, &err), NUB_OK, "%s",
                 err.message);
    memset(&got, 0xa5, sizeof got);
    cr_assert_eq(nub_snapshot_config(snap, &got), NUB_OK);
    cr_assert_eq(got.heap_size, 204800 + 4096);
    cr_assert_eq(got.stack_size, 64 * 1024);
    cr_assert_eq(got.call_timeout_ms, 1234);
    cr_assert_eq(got.backend, backend);
    /* the documented use: the snapshot's own settings with one field changed */
    got.call_timeout_ms = 50;
    nub_sandbox *sb = from_snap(snap, &got);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_SPIN, NULL, 0, &out, &len), NUB_E_TIMEOUT);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "50 ms") != NULL, "%s",
              nub_sandbox_last_error(sb)->message);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(snap);
}

Test(snapshot, null_and_bad_arguments)
{
    struct nub_error err;
    nub_snapshot *s = NULL;
    nub_sandbox *sb = NULL;
    uint8_t h[32];
    cr_assert_eq(nub_snapshot_from_file(NULL, NULL, NULL, &s, &err), NUB_E_INVALID);
    cr_assert_eq(nub_snapshot_from_buffer("x", 1, NULL, NULL, &s, &err), NUB_E_ELF);
    cr_assert_null(s);
    cr_assert_eq(nub_sandbox_new_from_snapshot(NULL, NULL, &sb, &err), NUB_E_INVALID);
    cr_assert_eq(nub_snapshot_hash(NULL, h), NUB_E_INVALID);
    cr_assert_eq(nub_sandbox_snapshot(NULL, &s), NUB_E_INVALID);
    cr_assert_eq(nub_sandbox_restore(NULL, NULL), NUB_E_INVALID);
    nub_snapshot_release(NULL);
    cr_assert_null(nub_snapshot_retain(NULL));
    struct nub_config cfg;
    cr_assert_eq(nub_snapshot_config(NULL, &cfg), NUB_E_INVALID);
}

