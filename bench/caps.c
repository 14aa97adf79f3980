/* Benchmark of caps: the put_cap_with_hash fast path against put_cap, cache lookups at 10k-1M entries, put_cap throughput against host hashing. */
/* Usage: build/bench/caps [auto|kvm|emu] [MAX_ENTRIES (default 1M, 100k on emu)] [ITERATIONS (default 2000)] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "nub/abi.h"
#include "nub/cap.h"
#include "nub/nub.h"
#include "nub/nubk.h"

/* Operations per timed batch for sub-microsecond operations (clock overhead amortised). */
#define BATCH 1000

static void die(const char *what, nub_status rc, const nub_sandbox *sb, const struct nub_error *err)
{
    const struct nub_error *e = sb ? nub_sandbox_last_error(sb) : err;
    fprintf(stderr, "bench/caps: %s: %s: %s\n", what, nub_strerror(rc), e ? e->message : "");
    exit(1);
}

static nub_sandbox *make_nubk(const struct nub_config *base, uint64_t capacity, uint64_t arena,
                              uint64_t max_cap)
{
    struct nub_config cfg = *base;
    struct nub_nubk_config kcfg;
    struct nub_init_data init;
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_nubk_setup(&cfg, &init, &kcfg, capacity, arena, max_cap);
    if (rc != NUB_OK)
        die("nubk setup", rc, NULL, NULL);
    if ((rc = nub_sandbox_new_from_file(bench_guest("nubk"), &init, &cfg, &sb, &err)) != NUB_OK)
        die("create", rc, NULL, &err);
    if ((rc = nub_sandbox_evolve(sb)) != NUB_OK)
        die("evolve", rc, sb, NULL);
    return sb;
}

/* Encoding of the DATA cap over the 8-byte value i; *len gets its length. */
static void small_cap(uint64_t i, uint8_t *buf, size_t cap, size_t *len)
{
    struct nub_cap c;
    nub_cap_data(&c, &i, sizeof i);
    if (nub_cap_encode(&c, buf, cap, len) != NUB_CAP_OK)
        die("encode", NUB_E_INVALID, NULL, NULL);
}

static uint8_t *big_cap(size_t n, size_t *len)
{
    uint8_t *bytes = malloc(n), *enc;
    struct nub_cap c;
    for (size_t i = 0; i < n; i++)
        bytes[i] = (uint8_t)(i * 131u + 7u);
    nub_cap_data(&c, bytes, n);
    nub_cap_encoded_len(&c, len);
    enc = malloc(*len);
    nub_cap_encode(&c, enc, *len, len);
    free(bytes);
    return enc;
}

/* p50 of nub_put_cap_with_hash on a present cap, per call, timed in batches. */
static double bench_fast(nub_sandbox *sb, const uint8_t *hash, const uint8_t *enc, size_t len,
                         size_t batches, double *v)
{
    for (size_t b = 0; b < batches; b++) {
        double t0 = bench_now_ns();
        for (int i = 0; i < BATCH; i++)
            if (nub_put_cap_with_hash(sb, hash, enc, len) != NUB_OK)
                die("put_cap_with_hash", NUB_E_INVALID, sb, NULL);
        v[b] = (bench_now_ns() - t0) / BATCH;
    }
    return bench_summarize(v, batches).p50;
}

/* p50 of one nub_put_cap of (enc, len), timed per call. */
static double bench_put(nub_sandbox *sb, const uint8_t *enc, size_t len, size_t iters, double *v)
{
    uint8_t hash[32];
    for (size_t i = 0; i < iters; i++) {
        double t0 = bench_now_ns();
        nub_status rc = nub_put_cap(sb, enc, len, hash);
        v[i] = bench_now_ns() - t0;
        if (rc != NUB_OK)
            die("put_cap", rc, sb, NULL);
    }
    return bench_summarize(v, iters).p50;
}

/* p50 host-side hash of (enc, len), ns per call. */
static double bench_host_hash(const uint8_t *enc, size_t len, size_t iters, double *v)
{
    uint8_t hash[32];
    for (size_t i = 0; i < iters; i++) {
        double t0 = bench_now_ns();
        nub_status rc = nub_cap_hash_bytes(enc, len, hash);
        v[i] = bench_now_ns() - t0;
        if (rc != NUB_OK)
            die("host hash", rc, NULL, NULL);
    }
    return bench_summarize(v, iters).p50;
}

struct lookup_result {
    uint64_t entries;
    double fill_s;   /* seconds spent putting caps to reach `entries` */
    double hit_ns;   /* p50 of nub_cache_contains on random present caps */
    double miss_ns;  /* p50 on absent caps */
};

/* p50 ns of nub_cache_contains over random present (or absent) hashes among the first n. */
static double bench_contains(nub_sandbox *sb, const uint8_t (*hashes)[32], uint64_t n, int present,
                             double *v, size_t batches)
{
    uint64_t s = 0x2545f4914f6cdd1dull;
    uint8_t miss[32] = {0};
    int found = 0;
    for (size_t b = 0; b < batches; b++) {
        double t0 = bench_now_ns();
        for (int i = 0; i < BATCH; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            if (present) {
                found += nub_cache_contains(sb, hashes[s % n]);
            } else {
                memcpy(miss, &s, sizeof s);
                found += nub_cache_contains(sb, miss);
            }
        }
        v[b] = (bench_now_ns() - t0) / BATCH;
    }
    if (found != (present ? (int)(batches * BATCH) : 0))
        die("contains gave a wrong answer", NUB_E_INVALID, sb, NULL);
    return bench_summarize(v, batches).p50;
}

/* Fill one directory to 10k, 100k and max_entries small DATA caps, timing lookups at each step. */
static size_t bench_lookups(const struct nub_config *cfg, uint64_t max_entries, struct lookup_result *out,
                            double *v)
{
    static const uint64_t steps[] = {10000, 100000, 1000000};
    uint64_t capacity = NUB_CDIR_MIN_CAPACITY;
    while (NUB_CDIR_MAX_ENTRIES(capacity) < max_entries)
        capacity *= 2;
    double t0 = bench_now_ns();
    nub_sandbox *sb = make_nubk(cfg, capacity, max_entries * 16 + 4096, 0);
    fprintf(stderr, "bench/caps: nubk with %llu slots ready in %.2f s\n", (unsigned long long)capacity,
            (bench_now_ns() - t0) / 1e9);
    uint8_t (*hashes)[32] = malloc(max_entries * 32);
    uint64_t have = 0;
    size_t nres = 0;
    for (size_t k = 0; k < 3 && steps[k] <= max_entries; k++) {
        t0 = bench_now_ns();
        for (; have < steps[k]; have++) {
            uint8_t enc[32];
            size_t len;
            small_cap(have, enc, sizeof enc, &len);
            nub_status rc = nub_put_cap(sb, enc, len, hashes[have]);
            if (rc != NUB_OK)
                die("fill", rc, sb, NULL);
        }
        struct lookup_result *r = &out[nres++];
        r->entries = have;
        r->fill_s = (bench_now_ns() - t0) / 1e9;
        r->hit_ns = bench_contains(sb, (const uint8_t (*)[32])hashes, have, 1, v, 200);
        r->miss_ns = bench_contains(sb, (const uint8_t (*)[32])hashes, have, 0, v, 200);
        fprintf(stderr, "bench/caps: %llu entries (filled in %.1f s): contains hit %.0f ns, miss %.0f ns\n",
                (unsigned long long)have, r->fill_s, r->hit_ns, r->miss_ns);
    }
    free(hashes);
    nub_sandbox_destroy(sb);
    return nres;
}

struct throughput {
    double put_mbps, host_mbps;
};

static struct throughput bench_throughput(nub_sandbox *sb, size_t n, size_t iters, double *v)
{
    size_t len;
    uint8_t *enc = big_cap(n, &len);
    double put = bench_put(sb, enc, len, iters, v);
    double host = bench_host_hash(enc, len, iters, v);
    free(enc);
    return (struct throughput){(double)n / put * 1e3, (double)n / host * 1e3};
}

int main(int argc, char **argv)
{
    struct nub_config cfg;
    nub_config_default(&cfg);
    bench_backend_arg(argc, argv, &cfg);
    size_t iters = argc > 3 ? (size_t)atol(argv[3]) : 2000;
    double *v = calloc(iters > 1000 ? iters : 1000, sizeof *v);

    nub_sandbox *sb = make_nubk(&cfg, 0, 8u << 20, (1u << 20) + 64);
    enum nub_backend used = nub_sandbox_backend(sb);
    /* Filling 1M entries one put_cap at a time takes minutes on the emulated CPU. */
    uint64_t max_entries = argc > 2 ? strtoull(argv[2], NULL, 0) : used == NUB_BACKEND_EMU ? 100000 : 1000000;
    fprintf(stderr, "bench/caps: %s backend, lookups up to %llu entries (argv[2] sets it)\n",
            nub_backend_name(used), (unsigned long long)max_entries);
    uint8_t enc[32], hash[32];
    size_t len;
    small_cap(1, enc, sizeof enc, &len);
    if (nub_put_cap(sb, enc, len, hash) != NUB_OK)
        die("put_cap", NUB_E_INVALID, sb, NULL);
    uint64_t calls = nub_sandbox_call_count(sb);
    double fast = bench_fast(sb, hash, enc, len, 1000, v);
    if (nub_sandbox_call_count(sb) != calls)
        die("the fast path entered the guest", NUB_E_INVALID, sb, NULL);
    double put = bench_put(sb, enc, len, iters, v);
    fprintf(stderr, "bench/caps: fast path %.1f ns, put_cap %.0f ns\n", fast, put);
    struct throughput t4k = bench_throughput(sb, 4096, iters, v);
    struct throughput t1m = bench_throughput(sb, 1u << 20, iters / 100 ? iters / 100 : 5, v);
    nub_sandbox_destroy(sb);

    struct lookup_result res[3];
    size_t nres = bench_lookups(&cfg, max_entries, res, v);

    printf("{\"backend\": \"%s\", \"iterations\": %zu, \"fast_path_ns\": %.1f, \"put_cap_ns\": %.0f, "
           "\"ratio_put_fast\": %.1f, \"fast_path_under_100ns\": %s, \"ratio_at_least_20\": %s, "
           "\"put_cap_4k_mb_s\": %.1f, \"host_hash_4k_mb_s\": %.1f, "
           "\"put_cap_1m_mb_s\": %.1f, \"host_hash_1m_mb_s\": %.1f, \"contains\": [",
           nub_backend_name(used), iters, fast,
           put, put / fast, fast < 100 ? "true" : "false", put / fast >= 20 ? "true" : "false",
           t4k.put_mbps, t4k.host_mbps, t1m.put_mbps, t1m.host_mbps);
    for (size_t i = 0; i < nres; i++)
        printf("%s{\"entries\": %llu, \"fill_s\": %.2f, \"fill_put_us\": %.2f, \"hit_ns\": %.1f, \"miss_ns\": %.1f}",
               i ? ", " : "", (unsigned long long)res[i].entries, res[i].fill_s,
               res[i].fill_s * 1e6 / (double)(res[i].entries - (i ? res[i - 1].entries : 0)),
               res[i].hit_ns, res[i].miss_ns);
    printf("]}\n");
    free(v);
    return 0;
}
