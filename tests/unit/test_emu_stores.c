/* Guest stores on the call path, counted with a Unicorn write hook on the emu backend: wide, aligned and few. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../guests/testguest/testguest.h"
#include "../../host/internal.h"
#include "../integration/harness.h" /* guests from build/guests (NUB_GUEST_DIR overrides) */

/*
 * On Unicorn 2.0.1 every guest store to RAM takes the slow path (hundreds
 * of host instructions: docs/backends.md, "The emu cost model"), so the
 * number of guest stores is the emu backend's call cost. This test compiles
 * the emu backend into itself (the library's copy is then not linked), so
 * it can reach the sandbox's Unicorn engine and count every store a call
 * makes: the budgets below are the counts measured when the SDK was tuned,
 * so a change that adds stores to the call path fails here. NUB_STORES_TRACE=1
 * prints each store (rip, address, size) to find where they come from.
 * It is a unit test, not an integration test, because it runs on emu only
 * (the integration suite also runs on kvm inside QEMU).
 */
#include "../../host/hv/emu_x86_64.c"

/* Budgets: the stores per call measured with the tuned SDK (Debian 12's gcc 12,
 * -O2); before it they were 166, 4,774 and 133. Lower them when a change
 * cuts stores; raising one needs a reason. */
#define ECHO0_MAX_STORES 64u
#define ECHO4K_MAX_STORES 576u
#define HOST_CALL_MAX_STORES 64u

struct store_count {
    unsigned total, narrow, unaligned; /* narrow: 1- or 2-byte stores (byte loops, split fields) */
    int trace;
};

static void on_write(uc_engine *uc, uc_mem_type type, uint64_t addr, int size, int64_t value, void *user)
{
    (void)type;
    (void)value;
    struct store_count *c = user;
    c->total++;
    if (size < 4)
        c->narrow++;
    if ((addr & (uint64_t)(size - 1)) != 0)
        c->unaligned++;
    if (c->trace) {
        uint64_t rip = 0;
        uc_reg_read(uc, UC_X86_REG_RIP, &rip);
        fprintf(stderr, "store rip 0x%llx addr 0x%llx size %d\n", (unsigned long long)rip,
                (unsigned long long)addr, size);
    }
}

static int empty_host_fn(void *ctx, struct nub_host_call *call)
{
    (void)ctx;
    call->result_len = 0;
    return 0;
}

/* A ready testguest sandbox (host function 1 does nothing) with the store counter hooked in. */
static nub_sandbox *counted_sandbox(struct store_count *c, uc_hook *h)
{
    require_backend(NUB_BACKEND_EMU);
    struct nub_config cfg = test_config(NUB_BACKEND_EMU);
    struct nub_error err;
    nub_sandbox *sb = NULL;
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(nub_sandbox_register(sb, 1, empty_host_fn, NULL), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(sb->ops, nub_hv_emu_ops(), "the sandbox runs on this file's copy of the emu backend");
    *c = (struct store_count){.trace = getenv("NUB_STORES_TRACE") != NULL};
    cr_assert_eq(uc_hook_add(sb->hv->uc, h, UC_HOOK_MEM_WRITE, (void *)on_write, c, 1, 0), UC_ERR_OK);
    return sb;
}

/* Stores made by one echo of `len` bytes (after a warm-up call). */
static struct store_count echo_stores(size_t len)
{
    static uint8_t in[4096], out[4096];
    struct store_count c;
    uc_hook h;
    nub_sandbox *sb = counted_sandbox(&c, &h);
    size_t got = 0;
    for (size_t i = 0; i < len; i++)
        in[i] = (uint8_t)(i * 7u + 1u);
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ECHO, in, len, out, sizeof out, &got), NUB_OK);
    c.total = c.narrow = c.unaligned = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ECHO, in, len, out, sizeof out, &got), NUB_OK);
    cr_assert_eq(got, len);
    cr_assert_eq(memcmp(in, out, len), 0, "the echo is still right");
    struct store_count r = c;
    uc_hook_del(sb->hv->uc, h);
    nub_sandbox_destroy(sb);
    return r;
}

Test(emu_stores, echo_0_is_few_wide_aligned_stores)
{
    struct store_count c = echo_stores(0);
    cr_log_info("0-byte echo: %u stores, %u narrow, %u unaligned", c.total, c.narrow, c.unaligned);
    cr_assert_gt(c.total, 0u, "the hook sees the call's stores");
    cr_expect_leq(c.total, ECHO0_MAX_STORES, "0-byte echo: %u guest stores (budget %u)", c.total, ECHO0_MAX_STORES);
    cr_expect_eq(c.unaligned, 0u, "0-byte echo: %u unaligned stores", c.unaligned);
    cr_expect_eq(c.narrow, 0u, "0-byte echo: %u stores narrower than 4 bytes", c.narrow);
}

Test(emu_stores, echo_4k_copies_8_bytes_per_store_and_does_not_zero_the_request)
{
    struct store_count c = echo_stores(4096);
    cr_log_info("4 KiB echo: %u stores, %u narrow, %u unaligned", c.total, c.narrow, c.unaligned);
    cr_assert_geq(c.total, 4096u / 16, "the payload is written");
    cr_expect_leq(c.total, ECHO4K_MAX_STORES, "4 KiB echo: %u guest stores (budget %u)", c.total, ECHO4K_MAX_STORES);
    cr_expect_eq(c.unaligned, 0u, "4 KiB echo: %u unaligned stores", c.unaligned);
    cr_expect_eq(c.narrow, 0u, "4 KiB echo: %u stores narrower than 4 bytes", c.narrow);
}

Test(emu_stores, host_call_is_few_wide_aligned_stores)
{
    struct store_count c;
    uc_hook h;
    nub_sandbox *sb = counted_sandbox(&c, &h);
    uint32_t req[2] = {1, 1};
    uint8_t out[16];
    size_t len;
    unsigned per_call[2];
    for (uint32_t k = 0; k < 2; k++) {
        req[1] = k;
        cr_assert_eq(nub_call_into(sb, NUB_TG_FN_HOST_CALL_LOOP, req, sizeof req, out, sizeof out, &len), NUB_OK);
        c.total = c.narrow = c.unaligned = 0;
        cr_assert_eq(nub_call_into(sb, NUB_TG_FN_HOST_CALL_LOOP, req, sizeof req, out, sizeof out, &len), NUB_OK);
        per_call[k] = c.total;
        cr_expect_eq(c.unaligned, 0u, "host-call loop of %u: %u unaligned stores", k, c.unaligned);
        cr_expect_eq(c.narrow, 0u, "host-call loop of %u: %u narrow stores", k, c.narrow);
    }
    unsigned hc = per_call[1] - per_call[0];
    cr_log_info("one host call: %u stores", hc);
    cr_expect_leq(hc, HOST_CALL_MAX_STORES, "one host call: %u guest stores (budget %u)", hc, HOST_CALL_MAX_STORES);
    uc_hook_del(sb->hv->uc, h);
    nub_sandbox_destroy(sb);
}

/* The Unicorn 2.0.1 store fast path (host/hv/emu_pagelock.c) is in use in a
 * binary linking libnub.a, and NUB_EMU_PAGELOCK=0 turns it off. Criterion
 * runs each test in its own process, so each makes the once-per-process
 * decision afresh. */
Test(emu_stores, pagelock_replacement_is_bound_on_unicorn_2_0_1)
{
    require_backend(NUB_BACKEND_EMU);
    unsetenv("NUB_EMU_PAGELOCK");
    enum nub_emu_pagelock st = nub_emu_pagelock_init();
#if UC_API_MAJOR == 2 && UC_API_MINOR == 0 && UC_API_PATCH == 1
    if (uc_version(NULL, NULL) == ((2u << 24) | (0u << 16) | (1u << 8) | UC_API_EXTRA))
        cr_assert_eq(st, NUB_EMU_PAGELOCK_ACTIVE, "state: %s", nub_emu_pagelock_name(st));
    else
        cr_assert_eq(st, NUB_EMU_PAGELOCK_OTHER_VERSION, "state: %s", nub_emu_pagelock_name(st));
#else
    cr_assert_eq(st, NUB_EMU_PAGELOCK_NOT_BUILT, "state: %s", nub_emu_pagelock_name(st));
#endif
}

Test(emu_stores, pagelock_switch_off_keeps_calls_and_stores_the_same)
{
    require_backend(NUB_BACKEND_EMU);
    setenv("NUB_EMU_PAGELOCK", "0", 1);
    enum nub_emu_pagelock st = nub_emu_pagelock_init();
    cr_assert_neq(st, NUB_EMU_PAGELOCK_ACTIVE, "state: %s", nub_emu_pagelock_name(st));
    struct store_count c = echo_stores(4096);
    cr_expect_leq(c.total, ECHO4K_MAX_STORES, "4 KiB echo with Unicorn's own locks: %u stores", c.total);
    cr_expect_eq(c.unaligned, 0u);
}
