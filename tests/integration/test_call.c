/* Integration tests of the call path on every backend: evolve, echo sizes, host calls, memory stability, concurrency. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "../../guests/testguest/testguest.h"
#include "harness.h"
#include "nub/abi.h"

static uint8_t *pattern(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
    return p;
}

static void expect_echo(nub_sandbox *sb, size_t n)
{
    uint8_t *in = pattern(n, (uint32_t)n), *out = NULL;
    size_t out_len = 0;
    nub_status rc = nub_call(sb, NUB_TG_FN_ECHO, in, n, &out, &out_len);
    cr_assert_eq(rc, NUB_OK, "echo %zu: %s: %s", n, nub_strerror(rc), nub_sandbox_last_error(sb)->message);
    cr_assert_eq(out_len, n, "echo %zu returned %zu bytes", n, out_len);
    cr_assert(n == 0 || memcmp(in, out, n) == 0, "echo %zu corrupted the payload", n);
    nub_buffer_free(out);
    free(in);
}

BACKEND_TEST(call, evolve_and_echo_sizes)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(nub_sandbox_backend(sb), backend);
    size_t max = nub_sandbox_max_input(sb);
    cr_assert_gt(max, 4096);
    expect_echo(sb, 0);
    expect_echo(sb, 1);
    expect_echo(sb, 4096);
    expect_echo(sb, max);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(call, payload_over_limit_rejected_before_entering)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    size_t max = nub_sandbox_max_input(sb);
    uint8_t *in = pattern(max + 1, 1), *out = NULL;
    size_t out_len = 99;
    nub_status rc = nub_call(sb, NUB_TG_FN_ECHO, in, max + 1, &out, &out_len);
    cr_assert_eq(rc, NUB_E_TOO_LARGE);
    cr_assert_null(out);
    cr_assert_eq(out_len, 0);
    cr_assert_eq(nub_sandbox_last_error(sb)->code, NUB_E_TOO_LARGE);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "exceeds") != NULL);
    expect_echo(sb, 16); /* still usable: the guest was never entered */
    free(in);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(call, call_into_caller_buffer)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    char buf[8];
    size_t len = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ECHO, "abcdef", 6, buf, sizeof buf, &len), NUB_OK);
    cr_assert_eq(len, 6);
    cr_assert_eq(memcmp(buf, "abcdef", 6), 0);
    nub_status rc = nub_call_into(sb, NUB_TG_FN_ECHO, "0123456789", 10, buf, sizeof buf, &len);
    cr_assert_eq(rc, NUB_E_TOO_LARGE);
    cr_assert_eq(len, 10, "needed length reported");
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ECHO, "xy", 2, buf, sizeof buf, &len), NUB_OK,
                 "a too-small caller buffer does not poison");
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(call, arithmetic)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint64_t args[2] = {40, 0xfffffffff2ull}, sum = 0;
    size_t len = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ADD, args, sizeof args, &sum, sizeof sum, &len), NUB_OK);
    cr_assert_eq(len, 8);
    cr_assert_eq(sum, 40 + 0xfffffffff2ull);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(call, guest_error_status_keeps_sandbox_usable)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint8_t *out = NULL;
    size_t len = 0;
    nub_status rc = nub_call(sb, NUB_TG_FN_FAIL, NULL, 0, &out, &len);
    cr_assert_eq(rc, NUB_E_GUEST);
    const struct nub_error *e = nub_sandbox_last_error(sb);
    cr_assert_eq(e->guest_status, NUB_STATUS_GUEST_ERROR);
    cr_assert(strstr(e->message, "guest says no") != NULL, "message: %s", e->message);
    rc = nub_call(sb, 0xbeef, NULL, 0, &out, &len);
    cr_assert_eq(rc, NUB_E_GUEST);
    cr_assert_eq(nub_sandbox_last_error(sb)->guest_status, NUB_STATUS_UNKNOWN_FN);
    expect_echo(sb, 100);
    nub_sandbox_destroy(sb);
}

/* Host function: reverses its payload. */
static int host_reverse(void *ctx, struct nub_host_call *call)
{
    (*(int *)ctx)++;
    if (call->payload_len > call->result_cap)
        return 1;
    for (size_t i = 0; i < call->payload_len; i++)
        call->result[i] = call->payload[call->payload_len - 1 - i];
    call->result_len = call->payload_len;
    return 0;
}

/* Host function: fills the whole result capacity. */
static int host_fill_max(void *ctx, struct nub_host_call *call)
{
    *(size_t *)ctx = call->result_cap;
    for (size_t i = 0; i < call->result_cap; i++)
        call->result[i] = (uint8_t)(i * 7);
    call->result_len = call->result_cap;
    return 0;
}

/* Host function that fails with a message. */
static int host_fail(void *ctx, struct nub_host_call *call)
{
    (void)ctx;
    snprintf(call->error, sizeof call->error, "host refuses %zu bytes", call->payload_len);
    return -1;
}

/* Ask the test guest to call host function `id` with `data`. */
static nub_status via_guest(nub_sandbox *sb, uint32_t id, const void *data, size_t n,
                            uint8_t **out, size_t *out_len)
{
    uint8_t *req = malloc(4 + n);
    memcpy(req, &id, 4);
    if (n)
        memcpy(req + 4, data, n);
    nub_status rc = nub_call(sb, NUB_TG_FN_HOST_CALL, req, 4 + n, out, out_len);
    free(req);
    return rc;
}

BACKEND_TEST(call, host_call_round_trips)
{
    struct nub_config cfg = test_config(backend);
    struct nub_error err;
    nub_sandbox *sb = NULL;
    int calls = 0;
    size_t cap_seen = 0;
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(nub_sandbox_register(sb, 7, host_reverse, &calls), NUB_OK);
    cr_assert_eq(nub_sandbox_register(sb, 7, host_reverse, &calls), NUB_E_EXISTS);
    cr_assert_eq(nub_sandbox_register(sb, 8, host_fill_max, &cap_seen), NUB_OK);
    cr_assert_eq(nub_sandbox_register(sb, 9, host_fail, NULL), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(nub_sandbox_register(sb, 10, host_fail, NULL), NUB_E_STATE);

    uint8_t *out = NULL;
    size_t len = 0;
    nub_status rc = via_guest(sb, 7, "hello", 5, &out, &len);
    cr_assert_eq(rc, NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(out, "olleh", 5), 0);
    cr_assert_eq(calls, 1);
    nub_buffer_free(out);

    rc = via_guest(sb, 8, NULL, 0, &out, &len);
    cr_assert_eq(rc, NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_gt(cap_seen, 60000, "host result capacity %zu", cap_seen);
    cr_assert_eq(len, cap_seen, "the guest got the maximum-size host result back");
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(out[i], (uint8_t)(i * 7));
    nub_buffer_free(out);

    rc = via_guest(sb, 9, "abc", 3, &out, &len);
    cr_assert_eq(rc, NUB_E_GUEST);
    cr_assert_eq(nub_sandbox_last_error(sb)->guest_status, NUB_STATUS_HOST_ERROR);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "host refuses 3 bytes") != NULL,
              "%s", nub_sandbox_last_error(sb)->message);
    expect_echo(sb, 32);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(call, ten_thousand_calls_no_memory_growth)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint8_t in[256], out[256];
    size_t len;
    memset(in, 0x5a, sizeof in);
    for (int i = 0; i < 500; i++)
        cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ECHO, in, sizeof in, out, sizeof out, &len), NUB_OK);
    long before = rss_kib();
    int fds = count_fds(), maps = count_maps();
    for (int i = 0; i < 10000; i++) {
        in[0] = (uint8_t)i;
        cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ECHO, in, sizeof in, out, sizeof out, &len), NUB_OK);
        cr_assert_eq(out[0], (uint8_t)i);
    }
    long after = rss_kib();
    if (NUB_TEST_MEMORY_COUNTS) {
        cr_assert_lt(after - before, 1024, "RSS grew by %ld KiB over 10000 calls", after - before);
        cr_assert_eq(count_maps(), maps);
    }
    cr_assert_eq(count_fds(), fds);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(call, two_sandboxes_interleaved)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *a = new_ready("testguest", &cfg, NULL);
    nub_sandbox *b = new_ready("testguest", &cfg, NULL);
    cr_assert_neq(nub_sandbox_id(a), nub_sandbox_id(b));
    for (int i = 0; i < 200; i++) {
        expect_echo(i % 2 ? a : b, (size_t)i * 13);
    }
    nub_sandbox_destroy(a);
    expect_echo(b, 77);
    nub_sandbox_destroy(b);
}

/* nub_sandbox_id: nonzero, one more per sandbox created (from a file or a snapshot),
 * fixed while the sandbox lives, never handed out again after a destroy. */
BACKEND_TEST(call, sandbox_ids_count_creations_and_stay_fixed)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *a = new_ready("testguest", &cfg, NULL);
    nub_sandbox *b = new_ready("testguest", &cfg, NULL);
    uint64_t ida = nub_sandbox_id(a), idb = nub_sandbox_id(b);
    cr_assert_neq(ida, 0);
    cr_assert_eq(idb, ida + 1, "ids %llu then %llu", (unsigned long long)ida, (unsigned long long)idb);
    expect_echo(a, 100);
    cr_assert_eq(nub_sandbox_id(a), ida, "a call does not change the id");
    nub_snapshot *snap = NULL;
    cr_assert_eq(nub_sandbox_snapshot(a, &snap), NUB_OK);
    nub_sandbox_destroy(a);
    nub_sandbox *c = NULL;
    struct nub_error err;
    cr_assert_eq(nub_sandbox_new_from_snapshot(snap, NULL, &c, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(nub_sandbox_id(c), idb + 1, "a destroyed sandbox's id is not reused");
    cr_assert_eq(nub_sandbox_restore(c, snap), NUB_OK);
    cr_assert_eq(nub_sandbox_id(c), idb + 1, "a restore does not change the id");
    cr_assert_eq(nub_sandbox_id(NULL), 0);
    nub_sandbox_destroy(c);
    nub_sandbox_destroy(b);
    nub_snapshot_release(snap);
}

/* A config whose size fields are all 0 runs with the default sizes. */
BACKEND_TEST(call, zero_sizes_mean_the_defaults)
{
    struct nub_config dcfg = test_config(backend), zcfg = dcfg;
    zcfg.heap_size = zcfg.stack_size = zcfg.input_size = zcfg.output_size = 0;
    zcfg.scratch_size = zcfg.max_image_size = 0;
    nub_sandbox *d = new_ready("testguest", &dcfg, NULL);
    nub_sandbox *z = new_ready("testguest", &zcfg, NULL);
    cr_assert_eq(nub_sandbox_max_input(z), nub_sandbox_max_input(d));
    cr_assert_eq(nub_sandbox_shared_mem_size(z), nub_sandbox_shared_mem_size(d));
    expect_echo(z, 4096);
    nub_sandbox_destroy(z);
    nub_sandbox_destroy(d);
}

struct thread_arg {
    enum nub_backend backend;
    int ok;
};

static void *thread_main(void *p)
{
    struct thread_arg *t = p;
    struct nub_config cfg = test_config(t->backend);
    struct nub_error err;
    nub_sandbox *sb = NULL;
    if (nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err) != NUB_OK ||
        nub_sandbox_evolve(sb) != NUB_OK) {
        nub_sandbox_destroy(sb);
        return NULL;
    }
    t->ok = 1;
    for (uint32_t i = 0; i < 300 && t->ok; i++) {
        uint64_t args[2] = {i, (uint64_t)(uintptr_t)t}, sum = 0;
        size_t len = 0;
        if (nub_call_into(sb, NUB_TG_FN_ADD, args, sizeof args, &sum, sizeof sum, &len) != NUB_OK ||
            sum != args[0] + args[1])
            t->ok = 0;
    }
    nub_sandbox_destroy(sb);
    return NULL;
}

BACKEND_TEST(call, sandboxes_on_two_threads)
{
    pthread_t th[2];
    struct thread_arg args[2] = {{backend, 0}, {backend, 0}};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        cr_assert(args[i].ok, "thread %d failed", i);
    }
}

BACKEND_TEST(call, create_and_destroy_without_calling)
{
    struct nub_config cfg = test_config(backend);
    int fds = count_fds(), maps = count_maps();
    for (int i = 0; i < 50; i++) {
        struct nub_error err;
        nub_sandbox *sb = NULL;
        cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err), NUB_OK);
        nub_sandbox_destroy(sb);
    }
    cr_assert_eq(count_fds(), fds, "file descriptors leaked");
    if (NUB_TEST_MEMORY_COUNTS)
        cr_assert_eq(count_maps(), maps, "mappings leaked");
}

BACKEND_TEST(call, init_data_visible_to_guest)
{
    struct nub_config cfg = test_config(backend);
    uint8_t *blob = pattern(10000, 99);
    struct nub_init_data init = {blob, 10000, NUB_MEM_READ};
    nub_sandbox *sb = new_ready("testguest", &cfg, &init);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_INIT_DATA, NULL, 0, &out, &len), NUB_OK,
                 "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(len, 10000);
    cr_assert_eq(memcmp(out, blob, 10000), 0);
    nub_buffer_free(out);
    free(blob);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(call, guest_counter_visible_after_increments)
{
    struct nub_config cfg = test_config(backend);
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_guest_counter *c = NULL, *c2 = NULL;
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err), NUB_OK);
    cr_assert_eq(nub_sandbox_guest_counter(sb, &c), NUB_OK);
    cr_assert_eq(nub_sandbox_guest_counter(sb, &c2), NUB_E_EXISTS, "second request is an error");
    cr_assert_eq(nub_guest_counter_decrement(c), NUB_E_OVERFLOW, "underflow at 0");
    cr_assert_eq(nub_guest_counter_value(c), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(nub_guest_counter_increment(c), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK);
    uint64_t v = 0;
    size_t len = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_GUEST_COUNTER, NULL, 0, &v, sizeof v, &len), NUB_OK);
    cr_assert_eq(v, 5);
    cr_assert_eq(nub_guest_counter_decrement(c), NUB_OK);
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_GUEST_COUNTER, NULL, 0, &v, sizeof v, &len), NUB_OK);
    cr_assert_eq(v, 4);
    cr_assert_eq(nub_guest_counter_value(c), 4);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(call, state_errors)
{
    struct nub_config cfg = test_config(backend);
    struct nub_error err;
    nub_sandbox *sb = NULL;
    uint8_t *out;
    size_t len;
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err), NUB_OK);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, "x", 1, &out, &len), NUB_E_STATE, "call before evolve");
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_E_STATE, "evolve twice");
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, NULL, 3, &out, &len), NUB_E_INVALID);
    expect_echo(sb, 3);
    nub_sandbox_destroy(sb);
}

static void log_counter(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    int *seen = ctx;
    (void)msg;
    (void)len;
    if (src == NUB_LOG_SRC_GUEST && level < 6)
        seen[level]++;
}

BACKEND_TEST(call, guest_logs_reach_the_callback)
{
    struct nub_config cfg = test_config(backend);
    cfg.max_guest_log_level = NUB_LOG_LEVEL_WARN;
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    int seen[6] = {0};
    cr_assert_eq(nub_sandbox_set_log(sb, log_counter, seen), NUB_OK);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_LOG_LEVELS, NULL, 0, &out, &len), NUB_OK);
    nub_buffer_free(out);
    cr_assert_eq(seen[NUB_LOG_LEVEL_ERROR], 1);
    cr_assert_eq(seen[NUB_LOG_LEVEL_WARN], 1);
    cr_assert_eq(seen[NUB_LOG_LEVEL_INFO] + seen[NUB_LOG_LEVEL_DEBUG] + seen[NUB_LOG_LEVEL_TRACE], 0,
                 "levels above the maximum are filtered");
    nub_sandbox_destroy(sb);
}
