/* Regression tests of the sandbox state machine and its races, made deterministic with the per-sandbox test hooks (host/testing.h). */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../guests/testguest/testguest.h"
#include "../../host/internal.h"
#include "../../host/testing.h"
#include "harness.h"
#include "nub/abi.h"
#include "nub/nubk.h"

#define TRIALS 10000

static nub_sandbox *ready(enum nub_backend backend)
{
    struct nub_config cfg = test_config(backend);
    return new_ready("testguest", &cfg, NULL);
}

static nub_sandbox *unevolved(const struct nub_config *cfg)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(guest_path("testguest"), NULL, cfg, &sb, &err);
    cr_assert_eq(rc, NUB_OK, "create: %s", err.message);
    return sb;
}

static void expect_echo(nub_sandbox *sb)
{
    uint8_t *out = NULL;
    size_t len = 0;
    nub_status rc = nub_call(sb, NUB_TG_FN_ECHO, "ok", 2, &out, &len);
    cr_assert_eq(rc, NUB_OK, "%s: %s", nub_strerror(rc), nub_sandbox_last_error(sb)->message);
    cr_assert_eq(len, 2);
    nub_buffer_free(out);
}

/* ---- 1. an interrupt sent right after a call claimed the sandbox ---------- */

/* A thread that interrupts the sandbox each time the claim hook asks it to. */
struct interrupter {
    nub_sandbox *sb;
    nub_interrupt_handle *handle; /* NULL: use nub_interrupt(sb) */
    sem_t go, done;
    int stop;
    unsigned armed; /* hook fires only while non-zero */
};

static void *interrupter_main(void *p)
{
    struct interrupter *t = p;
    for (;;) {
        sem_wait(&t->go);
        if (t->stop)
            return NULL;
        if (t->handle)
            nub_interrupt_handle_interrupt(t->handle);
        else
            nub_interrupt(t->sb);
        sem_post(&t->done);
    }
}

/* after_claim: the interrupt is sent (and returns) before the claimer goes on. */
static void interrupt_now(void *ctx, nub_sandbox *sb)
{
    struct interrupter *t = ctx;
    (void)sb;
    if (!t->armed)
        return;
    sem_post(&t->go);
    sem_wait(&t->done);
}

static void interrupter_start(struct interrupter *t, pthread_t *th, nub_sandbox *sb)
{
    memset(t, 0, sizeof *t);
    t->sb = sb;
    sem_init(&t->go, 0, 0);
    sem_init(&t->done, 0, 0);
    pthread_create(th, NULL, interrupter_main, t);
    struct nub_test_hooks h = {.ctx = t, .after_claim = interrupt_now};
    nub_test_set_hooks(sb, &h);
}

static void interrupter_stop(struct interrupter *t, pthread_t th)
{
    t->stop = 1;
    sem_post(&t->go);
    pthread_join(th, NULL);
    sem_destroy(&t->go);
    sem_destroy(&t->done);
}

/* Back to READY (the state machine's restore entry point) after a call that was cancelled
 * before the guest ran one instruction: both backends check the pending interrupt before
 * entering the guest, so its memory and registers are as before the call and the sandbox
 * can serve the next trial without re-creating it. */
static void unpoison(nub_sandbox *sb)
{
    cr_assert_eq(nub_state_claim(sb, NUB_CLAIM_ANY), NUB_OK);
    nub_state_restore(sb);
    nub_state_release(sb);
}

BACKEND_TEST(state, interrupt_right_after_claim_is_never_lost, .timeout = 600)
{
    nub_sandbox *sb = ready(backend);
    struct interrupter t;
    pthread_t th;
    interrupter_start(&t, &th, sb);
    t.armed = 1;
    unsigned lost = 0;
    for (unsigned i = 0; i < TRIALS; i++) {
        uint8_t *out = NULL;
        size_t len = 0;
        /* ECHO finishes at once if it runs: a lost interrupt shows as NUB_OK. */
        nub_status rc = nub_call(sb, NUB_TG_FN_ECHO, "abcdefgh", 8, &out, &len);
        nub_buffer_free(out);
        if (rc != NUB_E_CANCELLED) {
            lost++;
            cr_assert_eq(rc, NUB_E_CANCELLED, "trial %u: %s (%s)", i, nub_strerror(rc),
                         nub_sandbox_last_error(sb)->message);
        }
        unpoison(sb);
    }
    cr_assert_eq(lost, 0);
    t.armed = 0;
    expect_echo(sb); /* no interrupt leaks into an unhooked call */
    interrupter_stop(&t, th);
    nub_sandbox_destroy(sb);
}

/* The reproduction: a spinning call with an empty and with an 8 MiB payload. */
BACKEND_TEST(state, interrupt_right_after_claim_ends_a_spinning_call, .timeout = 300)
{
    struct nub_config cfg = test_config(backend);
    cfg.input_size = 9u << 20;
    size_t big = 8u << 20;
    uint8_t *payload = calloc(1, big);
    for (unsigned i = 0; i < 40; i++) {
        nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
        struct interrupter t;
        pthread_t th;
        interrupter_start(&t, &th, sb);
        t.armed = 1;
        uint8_t *out = NULL;
        size_t len = 0;
        nub_status rc = nub_call(sb, NUB_TG_FN_SPIN, payload, i % 2 ? big : 0, &out, &len);
        cr_assert_eq(rc, NUB_E_CANCELLED, "trial %u: %s", i, nub_strerror(rc));
        cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, "x", 1, &out, &len), NUB_E_POISONED);
        interrupter_stop(&t, th);
        nub_sandbox_destroy(sb);
    }
    free(payload);
}

/* ---- 2 and 3. sizes the address space cannot hold --------------------------- */

static void expect_layout_error(const struct nub_config *cfg, const char *field)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(guest_path("testguest"), NULL, cfg, &sb, &err);
    cr_assert_eq(rc, NUB_E_LAYOUT, "%s: got %s (%s)", field, nub_strerror(rc), err.message);
    cr_assert_null(sb);
    cr_assert(strstr(err.message, field) != NULL, "message '%s' does not name %s", err.message, field);
}

BACKEND_TEST(state, oversized_config_fields_are_layout_errors)
{
    struct nub_config cfg = test_config(backend);
    cfg.max_image_size = UINT64_MAX;
    expect_layout_error(&cfg, "max_image_size");
    cfg = test_config(backend);
    cfg.max_image_size = NUB_MAX_REGIONS_SIZE + NUB_PAGE_SIZE;
    expect_layout_error(&cfg, "max_image_size");
    cfg = test_config(backend);
    cfg.scratch_size = UINT64_MAX - (NUB_PAGE_SIZE - 1);
    expect_layout_error(&cfg, "scratch_size");
    cfg = test_config(backend);
    cfg.scratch_size = NUB_MAX_REGIONS_SIZE + NUB_PAGE_SIZE;
    expect_layout_error(&cfg, "scratch_size");
    /* The bound itself is accepted by normalisation (the image then fits). */
    cfg = test_config(backend);
    cfg.max_image_size = NUB_MAX_REGIONS_SIZE;
    nub_sandbox *sb = new_ready("testguest", &cfg, NULL);
    expect_echo(sb);
    nub_sandbox_destroy(sb);
}

/* A guest file that is not an ELF at all (a short text file, an empty file) says so,
 * rather than reporting a truncated ELF header. */
static void expect_not_elf(enum nub_backend backend, const void *bytes, size_t len, const char *why)
{
    char path[] = "/tmp/nub-not-elf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
    close(fd);
    struct nub_config cfg = test_config(backend);
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(path, NULL, &cfg, &sb, &err);
    unlink(path);
    cr_assert_eq(rc, NUB_E_ELF, "%zu bytes: got %s (%s)", len, nub_strerror(rc), err.message);
    cr_assert_null(sb);
    char want[128];
    snprintf(want, sizeof want, "invalid guest ELF: not an ELF file (%s)", why);
    cr_assert_str_eq(err.message, want);
}

BACKEND_TEST(state, text_and_empty_files_are_not_elf)
{
    expect_not_elf(backend, "not an elf", 10, "no \\x7fELF magic");
    expect_not_elf(backend, "", 0, "empty");
}

/* ---- 4. a watchdog thread that cannot be started ------------------------- */

static int no_threads(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    (void)t, (void)a, (void)fn, (void)arg;
    return EAGAIN;
}

BACKEND_TEST(state, watchdog_start_failure_is_nomem_and_harmless)
{
    struct nub_config cfg = test_config(backend);
    cfg.call_timeout_ms = 60000;
    nub_sandbox *sb = unevolved(&cfg);
    struct nub_test_hooks h = {.thread_create = no_threads};
    nub_test_set_hooks(sb, &h);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_E_NOMEM);
    cr_assert_eq(nub_sandbox_last_error(sb)->code, NUB_E_NOMEM);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "watchdog") != NULL);
    nub_test_set_hooks(sb, NULL);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "unchanged, so evolve can be retried: %s",
                 nub_sandbox_last_error(sb)->message);
    expect_echo(sb);
    cr_assert_eq(nub_sandbox_call_count(sb), 1);
    nub_sandbox_destroy(sb);
}

/* ---- 5. a counter increment racing the start of a call ------------------- */

struct bump {
    nub_guest_counter *c;
    int armed;
};

static void *bump_main(void *p)
{
    nub_guest_counter_increment(p);
    return NULL;
}

/* before_counter_publish: another thread increments, and finishes, right now. */
static void bump_now(void *ctx, nub_sandbox *sb)
{
    struct bump *b = ctx;
    (void)sb;
    if (!b->armed)
        return;
    pthread_t th;
    pthread_create(&th, NULL, bump_main, b->c);
    pthread_join(th, NULL);
}

BACKEND_TEST(state, counter_increment_at_call_start_reaches_the_guest)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = unevolved(&cfg);
    struct bump b = {NULL, 0};
    cr_assert_eq(nub_sandbox_guest_counter(sb, &b.c), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK);
    struct nub_test_hooks h = {.ctx = &b, .before_counter_publish = bump_now};
    nub_test_set_hooks(sb, &h);
    b.armed = 1;
    for (uint64_t i = 1; i <= 50; i++) {
        uint64_t v = 0;
        size_t len = 0;
        cr_assert_eq(nub_call_into(sb, NUB_TG_FN_GUEST_COUNTER, NULL, 0, &v, sizeof v, &len), NUB_OK);
        cr_assert_eq(nub_guest_counter_value(b.c), i);
        cr_assert_eq(v, i, "call %llu: the guest saw %llu, the host holds %llu", (unsigned long long)i,
                     (unsigned long long)v, (unsigned long long)i);
    }
    nub_sandbox_destroy(sb);
}

/* ---- 6. nothing is written outside a claim ------------------------------- */

struct bad_caller {
    nub_sandbox *sb;
    nub_status rc;
};

static void *call_with_null_out(void *p)
{
    struct bad_caller *c = p;
    c->rc = nub_call(c->sb, NUB_TG_FN_ECHO, "x", 1, NULL, NULL);
    return NULL;
}

/* Host function 7: another thread misuses the API while this call holds the sandbox. */
static int misuse_during_call(void *ctx, struct nub_host_call *call)
{
    pthread_t th;
    pthread_create(&th, NULL, call_with_null_out, ctx);
    pthread_join(th, NULL);
    call->result_len = 0;
    return 0;
}

BACKEND_TEST(state, argument_error_on_another_thread_leaves_the_running_call_alone)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = unevolved(&cfg);
    struct bad_caller c = {sb, NUB_OK};
    cr_assert_eq(nub_sandbox_register(sb, 7, misuse_during_call, &c), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK);
    uint32_t req = 7;
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_HOST_CALL, &req, 4, &out, &len), NUB_OK,
                 "%s", nub_sandbox_last_error(sb)->message);
    nub_buffer_free(out);
    cr_assert_eq(c.rc, NUB_E_INVALID);
    cr_assert_eq(nub_sandbox_last_error(sb)->code, NUB_OK,
                 "the successful call's record was overwritten: %s", nub_sandbox_last_error(sb)->message);
    /* Without a call running, the same misuse is recorded. */
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, "x", 1, NULL, NULL), NUB_E_INVALID);
    cr_assert_eq(nub_sandbox_last_error(sb)->code, NUB_E_INVALID);
    nub_sandbox_destroy(sb);
}

struct sneak {
    nub_sandbox *sb;
    int armed;
    nub_status rc;
};

static void *sneak_call(void *p)
{
    struct sneak *s = p;
    uint8_t *out = NULL;
    size_t len = 0;
    s->rc = nub_call(s->sb, NUB_TG_FN_ECHO, "y", 1, &out, &len);
    nub_buffer_free(out);
    return NULL;
}

/* after_release (first one only): another thread runs a whole call right now. */
static void call_in_between(void *ctx, nub_sandbox *sb)
{
    struct sneak *s = ctx;
    (void)sb;
    if (!s->armed)
        return;
    s->armed = 0;
    pthread_t th;
    pthread_create(&th, NULL, sneak_call, s);
    pthread_join(th, NULL);
}

BACKEND_TEST(state, put_cap_poisons_before_releasing)
{
    nub_sandbox *sb = ready(backend);
    struct sneak s = {sb, 1, NUB_OK};
    struct nub_test_hooks h = {.ctx = &s, .after_release = call_in_between};
    nub_test_set_hooks(sb, &h);
    uint8_t hash[NUB_CAP_HASH_LEN];
    /* testguest's fn 4 answers 48 bytes: a put_cap protocol violation. */
    cr_assert_eq(nub_put_cap(sb, "x", 1, hash), NUB_E_PROTOCOL);
    cr_assert_eq(s.armed, 0, "put_cap released the sandbox");
    cr_assert_eq(s.rc, NUB_E_POISONED, "a call that started after put_cap released the sandbox got %s",
                 nub_strerror(s.rc));
    cr_assert_eq(nub_sandbox_last_error(sb)->code, NUB_E_POISONED);
    nub_sandbox_destroy(sb);
}

/* ---- 7. only calls that entered the guest count --------------------------- */

BACKEND_TEST(state, rejected_calls_do_not_count)
{
    nub_sandbox *sb = ready(backend);
    size_t max = nub_sandbox_max_input(sb);
    uint8_t *big = calloc(1, max + 1), *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_sandbox_call_count(sb), 0);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, big, max + 1, &out, &len), NUB_E_TOO_LARGE);
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, NULL, 5, &out, &len), NUB_E_INVALID);
    cr_assert_eq(nub_sandbox_call_count(sb), 0, "calls rejected before entering the guest counted");
    expect_echo(sb);
    cr_assert_eq(nub_sandbox_call_count(sb), 1);
    free(big);
    nub_sandbox_destroy(sb);
}

/* ---- 9. interrupt handles outlive the sandbox ------------------------------ */

BACKEND_TEST(state, interrupt_handle_after_destroy_is_a_no_op, .timeout = 120)
{
    nub_sandbox *sb = ready(backend);
    nub_interrupt_handle *h = nub_sandbox_interrupt_handle(sb);
    nub_interrupt_handle *h2 = nub_sandbox_interrupt_handle(sb);
    cr_assert_not_null(h);
    cr_assert_eq(h, h2, "one counted handle per sandbox");
    cr_assert_eq(nub_interrupt_handle_interrupt(h), NUB_OK, "no call running: no effect");
    expect_echo(sb);
    /* Through the handle, an interrupt right after the claim ends the call. */
    struct interrupter t;
    pthread_t th;
    interrupter_start(&t, &th, sb);
    t.handle = h;
    t.armed = 1;
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_SPIN, NULL, 0, &out, &len), NUB_E_CANCELLED);
    interrupter_stop(&t, th);
    nub_interrupt_handle_release(h2);
    nub_sandbox_destroy(sb);
    cr_assert_eq(nub_interrupt_handle_interrupt(h), NUB_E_STATE, "destroyed: says so, does nothing");
    nub_interrupt_handle_release(h);
    cr_assert_null(nub_sandbox_interrupt_handle(NULL));
    cr_assert_eq(nub_interrupt_handle_interrupt(NULL), NUB_E_INVALID);
    nub_interrupt_handle_release(NULL);
}

struct hammer {
    nub_interrupt_handle *h;
    sem_t started;
    unsigned after_destroy;
};

static void *hammer_main(void *p)
{
    struct hammer *m = p;
    sem_post(&m->started);
    while (nub_interrupt_handle_interrupt(m->h) != NUB_E_STATE)
        ;
    for (unsigned i = 0; i < 1000; i++)
        m->after_destroy += nub_interrupt_handle_interrupt(m->h) == NUB_E_STATE;
    nub_interrupt_handle_release(m->h);
    return NULL;
}

/* A supervisor thread interrupts in a loop while the owner destroys the sandbox (ASan checks the memory). */
BACKEND_TEST(state, interrupt_handle_races_destroy, .timeout = 120)
{
    for (int round = 0; round < 20; round++) {
        nub_sandbox *sb = ready(backend);
        struct hammer m = {.h = nub_sandbox_interrupt_handle(sb)};
        sem_init(&m.started, 0, 0);
        pthread_t th;
        pthread_create(&th, NULL, hammer_main, &m);
        sem_wait(&m.started);
        nub_sandbox_destroy(sb);
        pthread_join(th, NULL);
        cr_assert_eq(m.after_destroy, 1000);
        sem_destroy(&m.started);
    }
}

/* ---- 10. a FIFO is not a regular file ------------------------------------- */

BACKEND_TEST(state, fifo_and_device_are_refused_without_blocking, .timeout = 60)
{
    struct nub_config cfg = test_config(backend);
    char path[] = "/tmp/nub-fifo-XXXXXX";
    cr_assert_not_null(mkdtemp(path));
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/guest.elf", path);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const char *paths[] = {fifo, "/dev/null", path};
    for (size_t i = 0; i < 3; i++) {
        struct nub_error err;
        nub_sandbox *sb = NULL;
        nub_status rc = nub_sandbox_new_from_file(paths[i], NULL, &cfg, &sb, &err);
        cr_assert_eq(rc, NUB_E_IO, "%s: %s", paths[i], nub_strerror(rc));
        cr_assert(strstr(err.message, "not a regular file") != NULL, "%s", err.message);
        cr_assert_null(sb);
    }
    unlink(fifo);
    rmdir(path);
}
