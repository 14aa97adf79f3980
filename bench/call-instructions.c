/* Deterministic emu call-path cost: instructions per call of each kind, counted by valgrind's callgrind. */
/*
 * Usage: build/bench/call-instructions [CALLS (default 50)]
 *
 * Re-runs itself under `valgrind --tool=callgrind` (VALGRIND names another
 * valgrind binary) on the emu backend. For each kind it makes a few warm-up
 * calls (so Unicorn's translation cache and the host's allocations reach
 * their steady state; see worker()), then CALLS measured calls between two marker
 * functions: entering cg_mark_begin() zeroes callgrind's counters
 * (--zero-before) and entering cg_mark_end() dumps them (--dump-before), so
 * each dump holds exactly the measured calls. Every instruction the process
 * executes is counted: nub's host code, Unicorn and the code Unicorn
 * translates the guest into. Counts repeat exactly run to run.
 *
 * Kinds: bare (the bare guest's dispatch, which only halts: the backend's
 * own round trip), echo_0 and echo_4k (NUB_TG_FN_ECHO with 0 and 4096
 * bytes), host_call (one guest-to-host call: a call making 64 empty host
 * calls minus one making none, over 64) and put_cap_4k (nub_put_cap of a
 * present 4 KiB DATA cap on nubk). Prints one JSON object on stdout, with
 * each kind's ratio to bare, the baseline measured in the same run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../guests/testguest/testguest.h"
#include "../host/testing.h"
#include "bench.h"
#include "nub/cap.h"
#include "nub/nub.h"
#include "nub/nubk.h"

#define WARMUP 10u
#define HOST_FN_EMPTY 1u
#define HOST_CALLS 64u
#define WORKER_ARG "--callgrind-worker"

/* Dumps in the order the worker makes them. */
enum cg_kind { K_BARE, K_ECHO0, K_ECHO4K, K_HC_LOOP, K_HC_NONE, K_PUT4K, K_COUNT };

static void die(const char *what, nub_status rc, const nub_sandbox *sb, const struct nub_error *err)
{
    const struct nub_error *e = sb ? nub_sandbox_last_error(sb) : err;
    fprintf(stderr, "bench/call-instructions: %s: %s: %s\n", what, nub_strerror(rc), e ? e->message : "");
    exit(1);
}

/* Markers named on valgrind's command line; noinline so each is a real function entry. */
__attribute__((noinline, noclone)) void cg_mark_begin(void);
__attribute__((noinline, noclone)) void cg_mark_end(void);
void cg_mark_begin(void)
{
    __asm__ volatile("" ::: "memory");
}
void cg_mark_end(void)
{
    __asm__ volatile("" ::: "memory");
}

static int host_empty(void *ctx, struct nub_host_call *call)
{
    (void)ctx;
    call->result_len = 0;
    return 0;
}

static nub_sandbox *make_testguest(const char *name, const struct nub_config *cfg)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(bench_guest(name), NULL, cfg, &sb, &err);
    if (rc != NUB_OK)
        die("create", rc, NULL, &err);
    if (strcmp(name, "testguest") == 0 && (rc = nub_sandbox_register(sb, HOST_FN_EMPTY, host_empty, NULL)) != NUB_OK)
        die("register", rc, sb, NULL);
    if ((rc = nub_sandbox_evolve(sb)) != NUB_OK)
        die("evolve", rc, sb, NULL);
    return sb;
}

static nub_sandbox *make_nubk(const struct nub_config *base)
{
    struct nub_config cfg = *base;
    struct nub_nubk_config kcfg;
    struct nub_init_data init;
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_nubk_setup(&cfg, &init, &kcfg, 0, 1u << 20, 64u << 10);
    if (rc != NUB_OK)
        die("nubk setup", rc, NULL, NULL);
    if ((rc = nub_sandbox_new_from_file(bench_guest("nubk"), &init, &cfg, &sb, &err)) != NUB_OK)
        die("create nubk", rc, NULL, &err);
    if ((rc = nub_sandbox_evolve(sb)) != NUB_OK)
        die("evolve nubk", rc, sb, NULL);
    return sb;
}

static void run_bare(nub_sandbox *sb, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        nub_status rc = nub_test_run_dispatch(sb);
        if (rc != NUB_OK)
            die("bare run", rc, sb, NULL);
    }
}

static void run_echo(nub_sandbox *sb, size_t size, unsigned n)
{
    static uint8_t in[4096], out[4096];
    for (unsigned i = 0; i < n; i++) {
        size_t len = 0;
        nub_status rc = nub_call_into(sb, NUB_TG_FN_ECHO, in, size, out, sizeof out, &len);
        if (rc != NUB_OK || len != size)
            die("echo", rc, sb, NULL);
    }
}

static void run_host_calls(nub_sandbox *sb, uint32_t k, unsigned n)
{
    uint32_t req[2] = {HOST_FN_EMPTY, k};
    uint8_t out[16];
    for (unsigned i = 0; i < n; i++) {
        size_t len;
        nub_status rc = nub_call_into(sb, NUB_TG_FN_HOST_CALL_LOOP, req, sizeof req, out, sizeof out, &len);
        if (rc != NUB_OK)
            die("host call loop", rc, sb, NULL);
    }
}

static void run_put(nub_sandbox *sb, const uint8_t *enc, size_t len, unsigned n)
{
    uint8_t hash[32];
    for (unsigned i = 0; i < n; i++) {
        nub_status rc = nub_put_cap(sb, enc, len, hash);
        if (rc != NUB_OK)
            die("put_cap", rc, sb, NULL);
    }
}

/* The encoding of a 4 KiB DATA cap in a malloc'd buffer. */
static uint8_t *cap_4k(size_t *len)
{
    static uint8_t bytes[4096];
    struct nub_cap c;
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)(i * 131u + 7u);
    nub_cap_data(&c, bytes, sizeof bytes);
    if (nub_cap_encoded_len(&c, len) != NUB_CAP_OK)
        die("cap length", NUB_E_INVALID, NULL, NULL);
    uint8_t *enc = malloc(*len);
    if (enc == NULL || nub_cap_encode(&c, enc, *len, len) != NUB_CAP_OK)
        die("cap encode", NUB_E_INVALID, NULL, NULL);
    return enc;
}

/*
 * Under callgrind: per kind, a marked stretch of warm-up calls (its dump is
 * discarded), then a marked stretch of n calls. The warm-up is marked too
 * because callgrind charges the first stretch after a run of unmarked work
 * with part of that work; from the second stretch on, every stretch of the
 * same calls counts the same to the instruction.
 */
static int worker(unsigned n)
{
    struct nub_config cfg;
    nub_config_default(&cfg);
    cfg.backend = NUB_BACKEND_EMU;
    nub_sandbox *tg = make_testguest("testguest", &cfg), *bare = make_testguest("bare", &cfg);
    nub_sandbox *nubk = make_nubk(&cfg);
    size_t cap_len;
    uint8_t *cap = cap_4k(&cap_len);
    for (int k = 0; k < K_COUNT; k++) {
        for (int pass = 0; pass < 2; pass++) {
            unsigned calls = pass == 0 ? WARMUP : n;
            cg_mark_begin();
            switch ((enum cg_kind)k) {
            case K_BARE: run_bare(bare, calls); break;
            case K_ECHO0: run_echo(tg, 0, calls); break;
            case K_ECHO4K: run_echo(tg, 4096, calls); break;
            case K_HC_LOOP: run_host_calls(tg, HOST_CALLS, calls); break;
            case K_HC_NONE: run_host_calls(tg, 0, calls); break;
            case K_PUT4K: run_put(nubk, cap, cap_len, calls); break;
            case K_COUNT: break;
            }
            cg_mark_end();
        }
    }
    free(cap);
    nub_sandbox_destroy(nubk);
    nub_sandbox_destroy(bare);
    nub_sandbox_destroy(tg);
    return 0;
}

/* The "totals:" (or "summary:") count of a callgrind output file; -1 when unreadable. */
static long long dump_total(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    long long v = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "totals:", 7) == 0 || (v < 0 && strncmp(line, "summary:", 8) == 0))
            v = strtoll(strchr(line, ':') + 1, NULL, 10);
    }
    fclose(f);
    return v;
}

/* Run this program as the worker under callgrind, its dumps going to dir/cg.out.N. */
static int run_valgrind(const char *dir, unsigned n)
{
    const char *vg = getenv("VALGRIND") ? getenv("VALGRIND") : "valgrind";
    char out_opt[300], calls[24];
    snprintf(out_opt, sizeof out_opt, "--callgrind-out-file=%s/cg.out", dir);
    snprintf(calls, sizeof calls, "%u", n);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char *argv[] = {(char *)vg, "--tool=callgrind", "--quiet", out_opt,
                        "--zero-before=cg_mark_begin", "--dump-before=cg_mark_end",
                        "/proc/self/exe", WORKER_ARG, calls, NULL};
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len > 0) {
            self[len] = '\0';
            argv[6] = self;
        }
        setenv("NUB_BACKEND", "emu", 1);
        execvp(vg, argv);
        fprintf(stderr, "bench/call-instructions: cannot run %s: %s (install valgrind)\n", vg, strerror(errno));
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

static void remove_dumps(const char *dir)
{
    char path[320];
    for (int i = 1; i <= 2 * K_COUNT + 1; i++) {
        snprintf(path, sizeof path, "%s/cg.out.%d", dir, i);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/cg.out", dir);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], WORKER_ARG) == 0)
        return worker((unsigned)atoi(argv[2]));
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 50;
    if (n == 0) {
        fprintf(stderr, "usage: %s [CALLS > 0]\n", argv[0]);
        return 2;
    }
    char dir[] = "/tmp/nub-callgrind-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("bench/call-instructions: mkdtemp");
        return 1;
    }
    fprintf(stderr, "bench/call-instructions: emu backend under callgrind, %u calls per kind\n", n);
    int rc = run_valgrind(dir, n);
    long long t[K_COUNT];
    for (int i = 0; rc == 0 && i < K_COUNT; i++) {
        char path[320];
        snprintf(path, sizeof path, "%s/cg.out.%d", dir, 2 * i + 2);
        if ((t[i] = dump_total(path)) < 0)
            rc = -1;
    }
    remove_dumps(dir);
    if (rc != 0) {
        fprintf(stderr, "bench/call-instructions: the callgrind run failed or left no counts\n");
        return 1;
    }
    double per[K_COUNT];
    for (int i = 0; i < K_COUNT; i++)
        per[i] = (double)t[i] / n;
    double hc = (per[K_HC_LOOP] - per[K_HC_NONE]) / HOST_CALLS;
    printf("{\"backend\": \"emu\", \"tool\": \"callgrind\", \"calls\": %u, \"instructions_per_call\": "
           "{\"bare\": %.0f, \"echo_0\": %.0f, \"echo_4k\": %.0f, \"host_call\": %.0f, \"put_cap_4k\": %.0f}, "
           "\"ratio_echo_0_bare\": %.2f, \"ratio_echo_4k_bare\": %.2f, \"ratio_host_call_bare\": %.2f, "
           "\"ratio_put_cap_4k_bare\": %.2f, \"echo_0_at_most_75000\": %s, \"echo_4k_at_most_500000\": %s}\n",
           n, per[K_BARE], per[K_ECHO0], per[K_ECHO4K], hc, per[K_PUT4K], per[K_ECHO0] / per[K_BARE],
           per[K_ECHO4K] / per[K_BARE], hc / per[K_BARE], per[K_PUT4K] / per[K_BARE],
           per[K_ECHO0] <= 75000 ? "true" : "false", per[K_ECHO4K] <= 500000 ? "true" : "false");
    return 0;
}
