/* Benchmark of snapshots: creation from ELF / pre-init / evolved snapshot vs bare VM creation, restore by pages written, idle PSS, call+restore, pool acquire. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../guests/testguest/testguest.h"
#include "../host/testing.h"
#include "nub/nub.h"
#include "bench.h"

#define SMALL_HEAP (4ull << 20)  /* room for 512 written pages */

static void die(const char *what, nub_status rc, const nub_sandbox *sb, const struct nub_error *err)
{
    const struct nub_error *e = sb ? nub_sandbox_last_error(sb) : err;
    fprintf(stderr, "bench/snapshot: %s: %s: %s\n", what, nub_strerror(rc), e ? e->message : "");
    exit(1);
}

static nub_snapshot *pre_snapshot(const struct nub_config *cfg)
{
    struct nub_error err;
    nub_snapshot *s = NULL;
    nub_status rc = nub_snapshot_from_file(bench_guest("testguest"), NULL, cfg, &s, &err);
    if (rc != NUB_OK)
        die("snapshot", rc, NULL, &err);
    return s;
}

static nub_sandbox *from(nub_snapshot *snap)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_snapshot(snap, NULL, &sb, &err);
    if (rc != NUB_OK)
        die("from snapshot", rc, NULL, &err);
    return sb;
}

static void evolve(nub_sandbox *sb)
{
    nub_status rc = nub_sandbox_evolve(sb);
    if (rc != NUB_OK)
        die("evolve", rc, sb, NULL);
}

static nub_snapshot *evolved_snapshot(const struct nub_config *cfg)
{
    nub_snapshot *pre = pre_snapshot(cfg), *evo = NULL;
    nub_sandbox *sb = from(pre);
    evolve(sb);
    nub_status rc = nub_sandbox_snapshot(sb, &evo);
    if (rc != NUB_OK)
        die("capture", rc, sb, NULL);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(pre);
    return evo;
}

/* ---- creation ------------------------------------------------------------ */

static double create_from_elf_us(const struct nub_config *cfg, size_t n, double *v)
{
    for (size_t i = 0; i < n; i++) {
        struct nub_error err;
        nub_sandbox *sb = NULL;
        double t0 = bench_now_ns();
        nub_status rc = nub_sandbox_new_from_file(bench_guest("testguest"), NULL, cfg, &sb, &err);
        if (rc != NUB_OK)
            die("create from ELF", rc, NULL, &err);
        evolve(sb);
        v[i] = (bench_now_ns() - t0) / 1e3;
        nub_sandbox_destroy(sb);
    }
    return bench_summarize(v, n).p50;
}

/* From `snap`; evolve too when `then_evolve`. */
static double create_from_snapshot_us(nub_snapshot *snap, int then_evolve, size_t n, double *v)
{
    for (size_t i = 0; i < n; i++) {
        double t0 = bench_now_ns();
        nub_sandbox *sb = from(snap);
        if (then_evolve)
            evolve(sb);
        v[i] = (bench_now_ns() - t0) / 1e3;
        nub_sandbox_destroy(sb);
    }
    return bench_summarize(v, n).p50;
}

/* The backend's VM creation alone, over an existing sandbox's memory and page tables. */
static double bare_vm_create_us(nub_snapshot *snap, size_t n, double *v)
{
    nub_sandbox *sb = from(snap);
    for (size_t i = 0; i < n; i++) {
        struct nub_hv *hv = NULL;
        char msg[256] = "";
        double t0 = bench_now_ns();
        nub_status rc = nub_test_bare_vm_create(sb, &hv, msg, sizeof msg);
        v[i] = (bench_now_ns() - t0) / 1e3;
        if (rc != NUB_OK) {
            fprintf(stderr, "bench/snapshot: bare create: %s\n", msg);
            exit(1);
        }
        nub_test_bare_vm_destroy(sb, hv);
    }
    nub_sandbox_destroy(sb);
    return bench_summarize(v, n).p50;
}

/* ---- restore ------------------------------------------------------------- */

static void write_pages(nub_sandbox *sb, uint64_t pages)
{
    uint64_t n = pages * NUB_PAGE_SIZE - 64;
    uint8_t ok = 0;
    size_t len = 0;
    nub_status rc = nub_call_into(sb, NUB_TG_FN_MALLOC_N, &n, sizeof n, &ok, 1, &len);
    if (rc != NUB_OK || ok != 1)
        die("write pages", rc, sb, NULL);
}

/* p50 of a restore after a call that wrote `pages` heap pages. */
static double restore_us(nub_snapshot *evo, uint64_t pages, size_t n, double *v)
{
    nub_sandbox *sb = from(evo);
    for (size_t i = 0; i < n; i++) {
        write_pages(sb, pages);
        double t0 = bench_now_ns();
        nub_status rc = nub_sandbox_restore(sb, evo);
        v[i] = (bench_now_ns() - t0) / 1e3;
        if (rc != NUB_OK)
            die("restore", rc, sb, NULL);
    }
    nub_sandbox_destroy(sb);
    return bench_summarize(v, n).p50;
}

static double call_restore_per_s(nub_snapshot *evo, size_t n)
{
    nub_sandbox *sb = from(evo);
    uint8_t out[16];
    size_t len;
    double t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        nub_status rc = nub_call_into(sb, NUB_TG_FN_ECHO, "request", 7, out, sizeof out, &len);
        if (rc == NUB_OK)
            rc = nub_sandbox_restore(sb, evo);
        if (rc != NUB_OK)
            die("call + restore", rc, sb, NULL);
    }
    double s = (bench_now_ns() - t0) / 1e9;
    nub_sandbox_destroy(sb);
    return (double)n / s;
}

/* ---- memory -------------------------------------------------------------- */

static long pss_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f))
        if (sscanf(line, "Pss: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* PSS per idle sandbox from `evo` (they run nothing: their guests wrote no pages), in a warm process. */
static double pss_per_idle_kib(nub_snapshot *evo, size_t n)
{
    nub_sandbox **sb = calloc(n, sizeof *sb);
    long before = 0, after = 0;
    for (int round = 0; round < 2; round++) { /* the first round grows the allocator's arenas */
        before = pss_kib();
        for (size_t i = 0; i < n; i++)
            sb[i] = from(evo);
        after = pss_kib();
        for (size_t i = 0; i < n; i++)
            nub_sandbox_destroy(sb[i]);
    }
    free(sb);
    return (double)(after - before) / (double)n;
}

/* PSS per bare backend VM (over one sandbox's memory): the backend's own share of an idle sandbox. */
static double pss_per_bare_vm_kib(nub_snapshot *snap, size_t n)
{
    nub_sandbox *sb = from(snap);
    struct nub_hv **hv = calloc(n, sizeof *hv);
    char msg[256] = "";
    long before = pss_kib();
    for (size_t i = 0; i < n; i++)
        if (nub_test_bare_vm_create(sb, &hv[i], msg, sizeof msg) != NUB_OK) {
            fprintf(stderr, "bench/snapshot: bare create: %s\n", msg);
            exit(1);
        }
    long after = pss_kib();
    for (size_t i = 0; i < n; i++)
        nub_test_bare_vm_destroy(sb, hv[i]);
    free(hv);
    nub_sandbox_destroy(sb);
    return (double)(after - before) / (double)n;
}

/* ---- pool ---------------------------------------------------------------- */

static double pool_acquire_us(nub_snapshot *evo, size_t n, double *v)
{
    struct nub_error err;
    nub_pool *pool = NULL;
    nub_status rc = nub_pool_new(evo, 8, NULL, NULL, NULL, &pool, &err);
    if (rc != NUB_OK)
        die("pool", rc, NULL, &err);
    for (size_t i = 0; i < n; i++) {
        nub_sandbox *sb = NULL;
        if (nub_pool_wait_full(pool) != NUB_OK)
            die("pool fill", NUB_E_BACKEND, NULL, NULL);
        double t0 = bench_now_ns();
        rc = nub_pool_acquire(pool, &sb, &err);
        v[i] = (bench_now_ns() - t0) / 1e3;
        if (rc != NUB_OK)
            die("acquire", rc, NULL, &err);
        nub_pool_release(pool, sb);
    }
    nub_pool_destroy(pool);
    return bench_summarize(v, n).p50;
}

/* A kvm sandbox holds three fds: allow a thousand of them at once. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct nub_config cfg, large;
    nub_config_default(&cfg);
    bench_backend_arg(argc, argv, &cfg);
    size_t n = argc > 2 ? (size_t)atol(argv[2]) : 200;
    size_t idle = argc > 3 ? (size_t)atol(argv[3]) : 1000;
    double *v = calloc(n < 100 ? 100 : n, sizeof *v);
    raise_fd_limit();
    cfg.heap_size = SMALL_HEAP;
    nub_snapshot *pre = pre_snapshot(&cfg), *evo = evolved_snapshot(&cfg);
    large = cfg;
    large.heap_size = 16 * nub_snapshot_memory_size(evo); /* the guest memory grows 16x and more */
    nub_snapshot *evo_large = evolved_snapshot(&large);
    nub_sandbox *probe = from(evo);
    const char *backend = nub_backend_name(nub_sandbox_backend(probe));
    nub_sandbox_destroy(probe);
    fprintf(stderr, "bench/snapshot: %s backend, %zu iterations, %zu idle sandboxes, %llu vs %llu bytes of guest memory\n",
            backend, n, idle, (unsigned long long)nub_snapshot_memory_size(evo),
            (unsigned long long)nub_snapshot_memory_size(evo_large));
    double elf = create_from_elf_us(&cfg, n, v);
    double from_pre = create_from_snapshot_us(pre, 1, n, v);
    double from_evo = create_from_snapshot_us(evo, 0, n, v);
    double bare = bare_vm_create_us(evo, n, v);
    static const uint64_t pages[4] = {1, 8, 64, 512};
    double r[4];
    for (int i = 0; i < 4; i++)
        r[i] = restore_us(evo, pages[i], n, v);
    double r8_large = restore_us(evo_large, 8, n, v);
    double pss = pss_per_idle_kib(evo, idle);
    double pss_bare = pss_per_bare_vm_kib(evo, idle);
    double cps = call_restore_per_s(evo, n * 10);
    double pool = pool_acquire_us(evo, n, v);
    printf("{\"backend\": \"%s\", \"iterations\": %zu, \"guest_memory_bytes\": %llu, "
           "\"create_from_elf_us\": %.1f, \"create_from_snapshot_us\": %.1f, "
           "\"create_from_evolved_us\": %.1f, \"bare_vm_create_us\": %.1f, "
           "\"restore_us\": {\"1\": %.2f, \"8\": %.2f, \"64\": %.2f, \"512\": %.2f}, "
           "\"restore_8_large_us\": %.2f, \"large_guest_memory_bytes\": %llu, "
           "\"pss_kib_per_idle_sandbox\": %.1f, \"pss_kib_per_bare_vm\": %.1f, \"idle_sandboxes\": %zu, \"call_restore_per_s\": %.0f, "
           "\"pool_acquire_us\": %.3f, \"ratio_evolved_bare\": %.3f, \"ratio_elf_evolved\": %.3f, "
           "\"ratio_restore8_create\": %.4f, \"ratio_restore8_large_small\": %.3f, \"ratio_pool_bare\": %.5f}\n",
           backend, n, (unsigned long long)nub_snapshot_memory_size(evo), elf, from_pre, from_evo, bare,
           r[0], r[1], r[2], r[3], r8_large, (unsigned long long)nub_snapshot_memory_size(evo_large), pss,
           pss_bare, idle, cps, pool, from_evo / bare, elf / from_evo, r[1] / from_evo, r8_large / r[1], pool / bare);
    nub_snapshot_release(pre);
    nub_snapshot_release(evo);
    nub_snapshot_release(evo_large);
    free(v);
    return 0;
}
