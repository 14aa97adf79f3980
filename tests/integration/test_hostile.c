/* Hostile-guest suite: every way a guest can fail ends in its documented error, poisons as documented, and harms nothing else. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../guests/testguest/testguest.h"
#include "../../host/hv/hv.h"
#include "../../host/internal.h"
#include "harness.h"
#include "nub/abi.h"
#include "nub/nubk.h"

#define ANY_VECTOR UINT64_MAX

struct hostile_case {
    const char *name;
    uint32_t fn;
    nub_status code;      /* expected status */
    uint64_t vector;      /* expected vector for NUB_E_GUEST_FAULT, ANY_VECTOR to skip */
    const char *needle;   /* substring of the message, or NULL */
};

/* Faults and violations that poison the sandbox. */
static const struct hostile_case poisoning[] = {
    {"divide by zero", NUB_TG_FN_DIV_ZERO, NUB_E_GUEST_FAULT, 0, NULL},
    {"null dereference", NUB_TG_FN_NULL_DEREF, NUB_E_GUEST_FAULT, 14, NULL},
    {"stack overflow", NUB_TG_FN_STACK_OVERFLOW, NUB_E_GUEST_FAULT, 14, NULL},
    {"write to text", NUB_TG_FN_WRITE_TEXT, NUB_E_GUEST_FAULT, 14, NULL},
    {"jump to data", NUB_TG_FN_EXEC_HEAP, NUB_E_GUEST_FAULT, 14, NULL},
    {"ud2", NUB_TG_FN_UD2, NUB_E_GUEST_FAULT, 6, NULL},
    {"invalid IDT then fault", NUB_TG_FN_TRIPLE_FAULT, NUB_E_GUEST_FAULT, ANY_VECTOR, NULL},
    {"unknown port", NUB_TG_FN_BAD_PORT, NUB_E_PROTOCOL, 0, "unknown port 1016"},
    {"IN instruction", NUB_TG_FN_PORT_IN, NUB_E_PROTOCOL, 0, "IN from port"},
    {"garbage over the output buffer", NUB_TG_FN_TRASH_OUTPUT, NUB_E_PROTOCOL, 0, "stack pointer"},
    {"output stack pointer overwritten", NUB_TG_FN_BAD_OUTPUT_SP, NUB_E_PROTOCOL, 0, "stack pointer out of range"},
    {"payload length near UINT64_MAX", NUB_TG_FN_HUGE_PAYLOAD_LEN, NUB_E_PROTOCOL, 0, "lengths"},
    {"bogus back-pointer", NUB_TG_FN_BOGUS_BACKPTR, NUB_E_PROTOCOL, 0, "back-pointer"},
    {"double free", NUB_TG_FN_DOUBLE_FREE, NUB_E_GUEST_ABORT, 0, NULL},
};

static nub_sandbox *witness_new(enum nub_backend backend)
{
    struct nub_config cfg = test_config(backend);
    return new_ready("testguest", &cfg, NULL);
}

static void witness_check(nub_sandbox *w)
{
    uint64_t args[2] = {1234, 4321}, sum = 0;
    size_t len = 0;
    cr_assert_eq(nub_call_into(w, NUB_TG_FN_ADD, args, sizeof args, &sum, sizeof sum, &len), NUB_OK,
                 "the witness sandbox stopped working: %s", nub_sandbox_last_error(w)->message);
    cr_assert_eq(sum, 5555);
}

static void expect_poisoned(nub_sandbox *sb)
{
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, "x", 1, &out, &len), NUB_E_POISONED);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_NOOP, NULL, 0, &out, &len), NUB_E_POISONED);
    cr_assert_eq(nub_sandbox_last_error(sb)->code, NUB_E_POISONED);
}

/* After a failure nothing of the failed call is left in the I/O buffers or the abort record. */
static void expect_cleared(const nub_sandbox *sb)
{
    const struct nub_layout *l = &sb->lay;
    const uint8_t *in = sb->scratch + l->input_off, *out = sb->scratch + l->output_off;
    const struct nub_scratch_top *top = (const void *)(sb->scratch + l->top_off);
    uint64_t sp;
    memcpy(&sp, in, 8);
    cr_assert_eq(sp, NUB_WIRE_EMPTY_SP, "input stack reset");
    memcpy(&sp, out, 8);
    cr_assert_eq(sp, NUB_WIRE_EMPTY_SP, "output stack reset");
    for (uint64_t i = 8; i < l->input_size; i++)
        cr_assert_eq(in[i], 0, "input byte %llu left behind", (unsigned long long)i);
    for (uint64_t i = 8; i < l->output_size; i++)
        cr_assert_eq(out[i], 0, "output byte %llu left behind", (unsigned long long)i);
    const uint8_t *rec = (const uint8_t *)&top->abort_rec;
    for (size_t i = 0; i < sizeof top->abort_rec; i++)
        cr_assert_eq(rec[i], 0, "abort record byte %zu left behind", i);
}

/* A fault message names the rip exactly once, as "at rip 0x<rip>" with the record's rip. */
static void expect_one_rip(const char *name, const struct nub_error *e)
{
    size_t n = 0;
    for (const char *p = e->message; (p = strstr(p, "rip 0x")) != NULL; p += 6)
        n++;
    cr_assert_eq(n, 1, "%s: 'rip 0x' %zu times in '%s'", name, n, e->message);
    char want[40];
    snprintf(want, sizeof want, "at rip 0x%llx", (unsigned long long)e->rip);
    cr_assert(strstr(e->message, want) != NULL, "%s: '%s' lacks '%s'", name, e->message, want);
}

static void run_case(enum nub_backend backend, const struct hostile_case *c, nub_sandbox *witness)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint8_t *out = NULL;
    size_t len = 0;
    nub_status rc = nub_call(sb, c->fn, NULL, 0, &out, &len);
    const struct nub_error *e = nub_sandbox_last_error(sb);
    cr_assert_eq(rc, c->code, "%s: got %s (%s), want %s", c->name, nub_strerror(rc), e->message,
                 nub_strerror(c->code));
    cr_assert_null(out);
    cr_assert_eq(e->code, c->code);
    if (c->code == NUB_E_GUEST_FAULT && c->vector != ANY_VECTOR)
        cr_assert_eq(e->vector, c->vector, "%s: vector %llu, want %llu (%s)", c->name,
                     (unsigned long long)e->vector, (unsigned long long)c->vector, e->message);
    if (c->needle)
        cr_assert(strstr(e->message, c->needle) != NULL, "%s: message '%s' lacks '%s'", c->name,
                  e->message, c->needle);
    if (c->code == NUB_E_GUEST_FAULT)
        expect_one_rip(c->name, e);
    expect_cleared(sb);
    expect_poisoned(sb);
    nub_sandbox_destroy(sb);
    witness_check(witness);
}

BACKEND_TEST(hostile, faults_and_violations_poison_and_harm_nothing_else)
{
    nub_sandbox *witness = witness_new(backend);
    int fds = count_fds(), maps = count_maps();
    for (size_t i = 0; i < sizeof poisoning / sizeof poisoning[0]; i++)
        run_case(backend, &poisoning[i], witness);
    cr_assert_eq(count_fds(), fds, "file descriptors leaked");
    if (NUB_TEST_MEMORY_COUNTS)
        cr_assert_eq(count_maps(), maps, "mappings leaked");
    nub_sandbox_destroy(witness);
}

BACKEND_TEST(hostile, fault_details)
{
    struct nub_config cfg = test_config(backend);
    uint8_t *out = NULL;
    size_t len = 0;
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_NULL_DEREF, NULL, 0, &out, &len), NUB_E_GUEST_FAULT);
    const struct nub_error *e = nub_sandbox_last_error(sb);
    cr_assert_eq(e->fault_addr, 0, "CR2 of a null read");
    cr_assert_eq(e->error_code & 0x2, 0, "read, not write");
    cr_assert_geq(e->rip, NUB_KERNEL_BASE, "rip inside the guest image");
    nub_sandbox_destroy(sb);

    sb = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_WRITE_TEXT, NULL, 0, &out, &len), NUB_E_GUEST_FAULT);
    e = nub_sandbox_last_error(sb);
    cr_assert_eq(e->error_code & 0x3, 0x3, "write to a present page: 0x%llx", (unsigned long long)e->error_code);
    cr_assert_geq(e->fault_addr, NUB_KERNEL_BASE);
    nub_sandbox_destroy(sb);

    sb = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_EXEC_HEAP, NULL, 0, &out, &len), NUB_E_GUEST_FAULT);
    e = nub_sandbox_last_error(sb);
    cr_assert_eq(e->error_code & 0x10, 0x10, "instruction fetch: 0x%llx", (unsigned long long)e->error_code);
    cr_assert_eq(e->fault_addr, e->rip, "fetch fault at the jump target");
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(hostile, abort_messages_whole_and_truncated)
{
    struct nub_config cfg = test_config(backend);
    uint8_t *out = NULL;
    size_t len = 0;
    char msg[2000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)('a' + i % 26);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ABORT, msg, NUB_ABORT_MSG_MAX, &out, &len), NUB_E_GUEST_ABORT);
    const struct nub_error *e = nub_sandbox_last_error(sb);
    cr_assert_eq(e->abort_code, NUB_TG_ABORT_CODE);
    cr_assert(!e->truncated);
    cr_assert(memmem(e->message, strlen(e->message), msg, NUB_ABORT_MSG_MAX) != NULL, "1 KiB message kept whole");
    expect_cleared(sb);
    expect_poisoned(sb);
    nub_sandbox_destroy(sb);

    sb = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ABORT, msg, sizeof msg, &out, &len), NUB_E_GUEST_ABORT);
    e = nub_sandbox_last_error(sb);
    cr_assert(e->truncated, "over 1 KiB is flagged as truncated");
    cr_assert(strstr(e->message, "[truncated]") != NULL);
    cr_assert(memmem(e->message, strlen(e->message), msg, NUB_ABORT_MSG_MAX) != NULL);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(hostile, errors_that_keep_the_sandbox_usable)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint8_t *out = NULL;
    size_t len = 0;
    char small[4];
    cr_assert_eq(nub_call(sb, NUB_TG_FN_FAIL, NULL, 0, &out, &len), NUB_E_GUEST);
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ECHO, "too long", 8, small, sizeof small, &len), NUB_E_TOO_LARGE);
    cr_assert_eq(len, 8);
    uint32_t st = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_MISSING_HOST_FN, NULL, 0, NULL, 0, &len), NUB_E_TOO_LARGE);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_MISSING_HOST_FN, NULL, 0, &out, &len), NUB_OK);
    memcpy(&st, out, 4);
    cr_assert_eq(st, NUB_STATUS_UNKNOWN_FN, "an unregistered host function answers UNKNOWN_FN");
    nub_buffer_free(out);
    uint32_t count = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_LOG_FLOOD, NULL, 0, &count, sizeof count, &len), NUB_OK,
                 "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(count, NUB_TG_LOG_FLOOD_DEFAULT, "every flooded log message was taken");
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, "ok", 2, &out, &len), NUB_OK);
    nub_buffer_free(out);
    nub_sandbox_destroy(sb);
}

static void *interrupt_later(void *p)
{
    usleep(100 * 1000);
    nub_interrupt(p);
    return NULL;
}

BACKEND_TEST(hostile, interrupt_spinning_guest)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *witness = witness_new(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_interrupt(sb), NUB_OK, "an interrupt before a call...");
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, "a", 1, &out, &len), NUB_OK, "...has no effect on it");
    nub_buffer_free(out);
    pthread_t th;
    pthread_create(&th, NULL, interrupt_later, sb);
    nub_status rc = nub_call(sb, NUB_TG_FN_SPIN, NULL, 0, &out, &len);
    pthread_join(th, NULL);
    cr_assert_eq(rc, NUB_E_CANCELLED, "%s", nub_sandbox_last_error(sb)->message);
    expect_poisoned(sb);
    witness_check(witness);
    nub_sandbox_destroy(sb);
    nub_sandbox_destroy(witness);
}

static int host_interrupts(void *ctx, struct nub_host_call *call)
{
    nub_interrupt(ctx);
    call->result_len = 0;
    return 0;
}

BACKEND_TEST(hostile, interrupt_during_host_function_takes_effect_on_resume)
{
    struct nub_config cfg = test_config(backend);
    struct nub_error err;
    nub_sandbox *sb = NULL;
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err), NUB_OK);
    cr_assert_eq(nub_sandbox_register(sb, 5, host_interrupts, sb), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK);
    uint32_t req = 5;
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_HOST_CALL, &req, 4, &out, &len), NUB_E_CANCELLED);
    expect_poisoned(sb);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(hostile, timeout_ends_spinning_guest)
{
    struct nub_config cfg = test_config(backend);
    cfg.call_timeout_ms = 200;
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, "fast", 4, &out, &len), NUB_OK, "fast calls finish");
    nub_buffer_free(out);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nub_status rc = nub_call(sb, NUB_TG_FN_SPIN, NULL, 0, &out, &len);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    cr_assert_eq(rc, NUB_E_TIMEOUT, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_geq(ms, 190.0, "returned after %.0f ms, before the timeout", ms);
    expect_poisoned(sb);
    nub_sandbox_destroy(sb);
}

struct busy_arg {
    nub_sandbox *sb;
    nub_status rc;
};

static void *spin_call(void *p)
{
    struct busy_arg *a = p;
    uint8_t *out = NULL;
    size_t len = 0;
    a->rc = nub_call(a->sb, NUB_TG_FN_SPIN, NULL, 0, &out, &len);
    return NULL;
}

BACKEND_TEST(hostile, second_concurrent_call_is_busy)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    struct busy_arg a = {sb, NUB_OK};
    pthread_t th;
    pthread_create(&th, NULL, spin_call, &a);
    usleep(100 * 1000);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, "x", 1, &out, &len), NUB_E_BUSY);
    nub_interrupt(sb);
    pthread_join(th, NULL);
    cr_assert_eq(a.rc, NUB_E_CANCELLED);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(hostile, mmio_access)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *witness = witness_new(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint8_t *out = NULL;
    size_t len = 0;
    nub_status rc = nub_call(sb, NUB_TG_FN_MMIO, NULL, 0, &out, &len);
    const struct nub_error *e = nub_sandbox_last_error(sb);
    if (backend == NUB_BACKEND_KVM) {
        cr_assert_eq(rc, NUB_E_PROTOCOL, "%s", e->message);
        cr_assert(strstr(e->message, "MMIO access to 0x40000000") != NULL, "%s", e->message);
    } else {
        /* emu ignores the guest's page-table edit (docs/backends.md): the guard page faults. */
        cr_assert_eq(rc, NUB_E_GUEST_FAULT, "%s", e->message);
        cr_assert_eq(e->vector, 14);
    }
    expect_cleared(sb);
    expect_poisoned(sb);
    nub_sandbox_destroy(sb);
    witness_check(witness);
    nub_sandbox_destroy(witness);
}

struct print_count {
    size_t bytes;
    int other; /* anything but '.' arrived */
};

static void count_print(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    struct print_count *c = ctx;
    (void)level;
    if (src != NUB_LOG_SRC_PRINT)
        return;
    for (size_t i = 0; i < len; i++)
        c->other |= msg[i] != '.';
    c->bytes += len;
}

/* A guest that runs thousands of distinct OUT sites gets every OUT serviced, and on emu the
 * number of stop hooks stays within the backend's fixed bound instead of growing per site. */
BACKEND_TEST(hostile, many_distinct_out_sites_keep_stop_hooks_bounded)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    struct print_count c = {0, 0};
    cr_assert_eq(nub_sandbox_set_log(sb, count_print, &c), NUB_OK);
    const uint32_t runs[][2] = {{NUB_TG_OUT_SITES_MAX, NUB_TG_OUT_SITES_SEPARATE}, {512, NUB_TG_OUT_SITES_PACKED}};
    size_t want = 0;
    for (size_t i = 0; i < 2; i++) {
        uint32_t got = 0;
        size_t len = 0;
        cr_assert_eq(nub_call_into(sb, NUB_TG_FN_OUT_SITES, runs[i], sizeof runs[i], &got, sizeof got, &len), NUB_OK,
                     "%s", nub_sandbox_last_error(sb)->message);
        cr_assert_eq(got, runs[i][0]);
        want += runs[i][0];
        if (backend == NUB_BACKEND_EMU)
            cr_assert_leq(nub_hv_emu_stop_hooks(sb->hv), 64, "stop hooks grew with the sites: %zu",
                          nub_hv_emu_stop_hooks(sb->hv));
    }
    cr_assert_eq(c.bytes, want, "every OUT was serviced once: %zu of %zu", c.bytes, want);
    cr_assert(!c.other);
    witness_check(sb);
    nub_sandbox_destroy(sb);
}

/* A guest that fills every slot of its cache directory cannot make a host lookup probe more than
 * NUB_CDIR_MAX_PROBE slots: an entry placed one slot beyond the bound reads as absent. */
BACKEND_TEST(hostile, cache_lookup_is_bounded_in_a_filled_directory)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint8_t in[8 + 32], far[32], near[32], absent[32];
    uint64_t capacity = 1024, home = 5, slot = 7, count = 99;
    memcpy(in, &capacity, 8);
    memset(far, 0x42, sizeof far);
    memcpy(far, &home, 8);
    memcpy(in + 8, far, 32);
    memset(near, 0x5a, sizeof near); /* what the guest put in slot 7 */
    memcpy(near, &slot, 8);
    memset(absent, 0x42, sizeof absent);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_FULL_CDIR, in, sizeof in, &out, &len), NUB_OK, "%s",
                 nub_sandbox_last_error(sb)->message);
    cr_assert_eq(nub_cache_count(sb, &count), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(count, 0, "the guest's header claims no entries");
    cr_assert_eq(nub_cache_contains(sb, near), 1, "the filled directory is read");
    cr_assert_eq(nub_cache_contains(sb, far), 0, "an entry beyond the probe bound reads as absent");
    cr_assert_eq(nub_cache_contains(sb, absent), 0);
    witness_check(sb);
    nub_sandbox_destroy(sb);
}

/* ---- guest text reaching messages and log lines ---- */

#define FORGED "ok\n[host] ERROR forged line\tx\x1b[31mred\x7f\xc3\xa9"
#define FORGED_CLEAN "ok?[host] ERROR forged line?x?[31mred???"

static int all_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

struct log_capture {
    char text[4][256];
    size_t len[4];
    enum nub_log_source src[4];
    size_t n;
};

static void capture_log(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    struct log_capture *c = ctx;
    (void)level;
    if (c->n < 4 && len < sizeof c->text[0]) {
        memcpy(c->text[c->n], msg, len);
        c->len[c->n] = len;
        c->src[c->n++] = src;
    }
}

static int captured(const struct log_capture *c, enum nub_log_source src, const char *want)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->src[i] == src && memmem(c->text[i], c->len[i], want, strlen(want)) != NULL)
            return 1;
    return 0;
}

BACKEND_TEST(hostile, guest_text_cannot_forge_messages_or_log_lines)
{
    struct nub_config cfg = test_config(backend);
    cfg.max_guest_log_level = NUB_LOG_LEVEL_ERROR;
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_FAIL_WITH, FORGED, strlen(FORGED), &out, &len), NUB_E_GUEST);
    const struct nub_error *e = nub_sandbox_last_error(sb);
    cr_assert(all_printable(e->message, strlen(e->message)), "error text: '%s'", e->message);
    cr_assert(strstr(e->message, FORGED_CLEAN) != NULL, "error text: '%s'", e->message);

    struct log_capture c = {.n = 0};
    cr_assert_eq(nub_sandbox_set_log(sb, capture_log, &c), NUB_OK);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_LOG_LEVELS, FORGED, strlen(FORGED), &out, &len), NUB_OK);
    nub_buffer_free(out);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_PRINT_BYTES, FORGED "\n", strlen(FORGED) + 1, &out, &len), NUB_OK);
    cr_assert(captured(&c, NUB_LOG_SRC_GUEST, FORGED_CLEAN), "guest log line sanitized");
    /* The console splits lines at '\n' (each is its own NUB_LOG_SRC_PRINT line); the rest is sanitized. */
    cr_assert(captured(&c, NUB_LOG_SRC_PRINT, "[host] ERROR forged line?x?[31mred???"), "console line sanitized");
    for (size_t i = 0; i < c.n; i++)
        cr_assert(all_printable(c.text[i], c.len[i]), "log line %zu holds control bytes", i);

    /* The raw bytes, for a callback that asks for them. */
    c.n = 0;
    cr_assert_eq(nub_sandbox_set_log_raw(sb, 1), NUB_OK);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_LOG_LEVELS, FORGED, strlen(FORGED), &out, &len), NUB_OK);
    nub_buffer_free(out);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_PRINT_BYTES, "a\tb\x1b" "c\n", 6, &out, &len), NUB_OK);
    cr_assert(captured(&c, NUB_LOG_SRC_GUEST, FORGED), "raw guest log bytes");
    cr_assert(captured(&c, NUB_LOG_SRC_PRINT, "a\tb\x1b" "c"), "raw console bytes");
    nub_sandbox_destroy(sb);

    sb = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ABORT, FORGED, strlen(FORGED), &out, &len), NUB_E_GUEST_ABORT);
    e = nub_sandbox_last_error(sb);
    cr_assert(all_printable(e->message, strlen(e->message)), "abort text: '%s'", e->message);
    cr_assert(strstr(e->message, FORGED_CLEAN) != NULL, "abort text: '%s'", e->message);
    nub_sandbox_destroy(sb);
}

/* ---- software interrupts and forged abort records ---- */

BACKEND_TEST(hostile, software_interrupts_are_reported_as_such)
{
    static const uint8_t vectors[] = {0x21, 0x80, 0xff};
    struct nub_config cfg = test_config(backend);
    for (size_t i = 0; i < sizeof vectors; i++) {
        nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
        uint8_t *out = NULL;
        size_t len = 0;
        char want[64];
        cr_assert_eq(nub_call(sb, NUB_TG_FN_SOFT_INT, &vectors[i], 1, &out, &len), NUB_E_GUEST_FAULT);
        const struct nub_error *e = nub_sandbox_last_error(sb);
        cr_assert_eq(e->vector, 13, "int $0x%x: vector %llu (%s)", vectors[i], (unsigned long long)e->vector, e->message);
        /* A CPU's #GP error code is (n << 3) | IDT. QEMU's software x86 (which runs the kvm stage of
         * make test) writes (n << 4) | IDT in long mode; the SDK reports what its CPU wrote. */
        uint64_t n = e->error_code >> 3;
        int qemu = backend == NUB_BACKEND_KVM && e->error_code == (((uint64_t)vectors[i] << 4) | 2);
        cr_assert(e->error_code == (((uint64_t)vectors[i] << 3) | 2) || qemu, "int $0x%x: error code 0x%llx",
                  vectors[i], (unsigned long long)e->error_code);
        snprintf(want, sizeof want, "no IDT gate for vector %u", (unsigned)n);
        cr_assert(strstr(e->message, want) != NULL, "message '%s' lacks '%s'", e->message, want);
        cr_assert_geq(e->rip, NUB_KERNEL_BASE);
        expect_one_rip("software interrupt", e);
        expect_poisoned(sb);
        nub_sandbox_destroy(sb);
    }
}

struct forged_case {
    const char *field; /* expected in the message; NULL: the record is valid */
    struct nub_abort_record rec;
};

BACKEND_TEST(hostile, abort_record_fields_are_validated)
{
    const uint64_t rip = NUB_KERNEL_BASE + 0x1000;
    const struct forged_case cases[] = {
        {NULL, {.kind = NUB_ABORT_EXCEPTION, .vector = 13, .error_code = 0x10, .fault_addr = 7, .rip = rip}},
        {NULL, {.kind = NUB_ABORT_EXPLICIT, .code = 99, .rip = rip, .msg_len = 2, .msg = "hi"}},
        {"vector", {.kind = NUB_ABORT_EXCEPTION, .vector = UINT64_MAX, .rip = rip}},
        {"vector", {.kind = NUB_ABORT_EXCEPTION, .vector = 128, .rip = rip}},
        {"error_code", {.kind = NUB_ABORT_EXCEPTION, .vector = 14, .error_code = 1ull << 40, .rip = rip}},
        {"code", {.kind = NUB_ABORT_EXCEPTION, .vector = 6, .code = 5, .rip = rip}},
        {"flags", {.kind = NUB_ABORT_EXPLICIT, .flags = 0x80, .rip = rip}},
        {"msg_len", {.kind = NUB_ABORT_EXPLICIT, .msg_len = NUB_ABORT_MSG_MAX + 1, .rip = rip}},
        {"reserved", {.kind = NUB_ABORT_EXPLICIT, .reserved = 1, .rip = rip}},
        {"rip", {.kind = NUB_ABORT_EXCEPTION, .vector = 0, .rip = 0x8000000000000000ull}},
        {"vector", {.kind = NUB_ABORT_EXPLICIT, .vector = 3, .rip = rip}},
        {"kind", {.kind = 7, .rip = rip}},
    };
    struct nub_config cfg = test_config(backend);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct forged_case *c = &cases[i];
        nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
        uint8_t *out = NULL;
        size_t len = 0;
        nub_status rc = nub_call(sb, NUB_TG_FN_FORGE_ABORT, &c->rec, sizeof c->rec, &out, &len);
        const struct nub_error *e = nub_sandbox_last_error(sb);
        if (c->field == NULL) {
            nub_status want = c->rec.kind == NUB_ABORT_EXCEPTION ? NUB_E_GUEST_FAULT : NUB_E_GUEST_ABORT;
            cr_assert_eq(rc, want, "case %zu: %s (%s)", i, nub_strerror(rc), e->message);
            cr_assert_eq(e->vector, c->rec.vector);
            cr_assert_eq(e->error_code, c->rec.error_code);
            cr_assert_eq(e->rip, rip);
        } else {
            char want[64];
            snprintf(want, sizeof want, "field %s ", c->field);
            cr_assert_eq(rc, NUB_E_PROTOCOL, "case %zu (%s): %s (%s)", i, c->field, nub_strerror(rc), e->message);
            cr_assert(strstr(e->message, want) != NULL, "case %zu: '%s' lacks '%s'", i, e->message, want);
            cr_assert_eq(e->vector, 0, "nothing of the record reaches the error");
            cr_assert_eq(e->rip, 0);
        }
        expect_cleared(sb);
        expect_poisoned(sb);
        nub_sandbox_destroy(sb);
    }
}

/* ---- exits a guest can cause are its errors, never NUB_E_BACKEND ---- */

static nub_status call_status(nub_sandbox *sb, uint32_t fn, const struct nub_error **e)
{
    uint8_t *out = NULL;
    size_t len = 0;
    nub_status rc = nub_call(sb, fn, NULL, 0, &out, &len);
    nub_buffer_free(out);
    *e = nub_sandbox_last_error(sb);
    cr_assert_neq(rc, NUB_E_BACKEND, "fn %u: a guest made the call fail with NUB_E_BACKEND: %s", fn, (*e)->message);
    return rc;
}

BACKEND_TEST(hostile, guest_caused_exits_are_never_backend_errors)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *witness = witness_new(backend);
    const struct nub_error *e;
    int kvm = backend == NUB_BACKEND_KVM;

    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(call_status(sb, NUB_TG_FN_SYSENTER, &e), NUB_E_GUEST_FAULT, "sysenter: %s", e->message);
    cr_assert(e->vector == 6 || (kvm && e->vector == 13), "sysenter: vector %llu (%s)", (unsigned long long)e->vector,
              e->message);
    expect_poisoned(sb);
    nub_sandbox_destroy(sb);

    sb = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(call_status(sb, NUB_TG_FN_REP_INSB, &e), NUB_E_PROTOCOL, "rep insb: %s", e->message);
    cr_assert(strstr(e->message, "IN from port 1016") != NULL, "%s", e->message);
    expect_cleared(sb);
    expect_poisoned(sb);
    nub_sandbox_destroy(sb);

    sb = new_ready("testguest", &cfg, NULL);
    struct log_capture c = {.n = 0};
    cr_assert_eq(nub_sandbox_set_log(sb, capture_log, &c), NUB_OK);
    nub_status rc = call_status(sb, NUB_TG_FN_REP_OUTSB, &e);
    if (rc == NUB_OK) { /* one OUT per byte (emu; kvm on kernels that exit per iteration) */
        cr_assert(captured(&c, NUB_LOG_SRC_PRINT, "outs"), "rep outsb: the bytes arrive as console text");
    } else { /* a kvm that reports the whole string in one exit: not part of the port protocol */
        cr_assert(kvm, "rep outsb on emu: %s", e->message);
        cr_assert_eq(rc, NUB_E_PROTOCOL, "rep outsb: %s", e->message);
        cr_assert(strstr(e->message, "string OUT") != NULL, "%s", e->message);
        expect_poisoned(sb);
    }
    nub_sandbox_destroy(sb);

    sb = new_ready("testguest", &cfg, NULL);
    rc = call_status(sb, NUB_TG_FN_BAD_CR3, &e);
    if (kvm) {
        cr_assert_eq(rc, NUB_E_GUEST_FAULT, "bad CR3: %s", e->message);
        cr_assert_leq(e->vector, 31);
        expect_poisoned(sb);
    } else { /* emu walks the page tables once, at creation, and ignores CR3 (docs/backends.md) */
        cr_assert_eq(rc, NUB_E_GUEST, "bad CR3: %s", e->message);
        cr_assert(strstr(e->message, "still running after loading CR3") != NULL, "%s", e->message);
    }
    nub_sandbox_destroy(sb);
    witness_check(witness);
    nub_sandbox_destroy(witness);
}
