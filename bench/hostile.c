/* Benchmark of what a hostile guest can cost the host: time and RSS per distinct OUT site, cache lookups in a directory with every slot filled.
 *
 * Usage: hostile [emu|kvm|auto]            the whole benchmark, one JSON object
 *        hostile emu sites N [packed]      only one call through N distinct OUT sites (for
 *                                          valgrind --tool=callgrind: per-site host instructions
 *                                          = (I(N) - I(0)) / N) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../guests/testguest/testguest.h"
#include "bench.h"
#include "nub/cdir.h"

#define FULL_CAPACITY (1ull << 20)
#define MIN_LOOKUP_NS 2e8 /* keep looking up for at least this long */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int out_sites_call(nub_sandbox *sb, uint32_t n, uint32_t layout)
{
    uint32_t got = 0, in[2] = {n, layout};
    size_t len = 0;
    nub_status rc = nub_call_into(sb, NUB_TG_FN_OUT_SITES, in, sizeof in, &got, sizeof got, &len);
    if (rc != NUB_OK || got != n) {
        fprintf(stderr, "out_sites(%u): %s: %s\n", n, nub_strerror(rc), nub_sandbox_last_error(sb)->message);
        return -1;
    }
    return 0;
}

/* ns and KiB of RSS per distinct OUT site for n sites, on a fresh, warmed-up sandbox. */
static int out_site_cost(const struct nub_config *cfg, uint32_t n, uint32_t layout, double *ns, double *kib)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(bench_guest("testguest"), NULL, cfg, &sb, &err);
    if (rc == NUB_OK)
        rc = nub_sandbox_evolve(sb);
    if (rc != NUB_OK || out_sites_call(sb, 0, layout) != 0) {
        fprintf(stderr, "testguest: %s\n", rc != NUB_OK ? err.message : "warm-up failed");
        nub_sandbox_destroy(sb);
        return -1;
    }
    long r0 = rss_kib();
    double t0 = bench_now_ns();
    int bad = out_sites_call(sb, n, layout);
    double t1 = bench_now_ns();
    long r1 = rss_kib();
    nub_sandbox_destroy(sb);
    *ns = n ? (t1 - t0) / n : 0;
    *kib = n ? (double)(r1 - r0) / n : 0;
    return bad;
}

/* Average ns per absent lookup in v (hashes differ per lookup). */
static double lookup_ns(const struct nub_cdir_view *v)
{
    uint8_t h[NUB_CAP_HASH_LEN];
    memset(h, 0xc3, sizeof h);
    uint64_t n = 0;
    double t0 = bench_now_ns(), t;
    do {
        for (int i = 0; i < 16; i++, n++) {
            memcpy(h, &n, sizeof n);
            if (nub_cdir_find(v, h, NULL, NULL) != 0)
                return -1;
        }
        t = bench_now_ns();
    } while (t - t0 < MIN_LOOKUP_NS);
    return (t - t0) / (double)n;
}

/* A 2^20-slot directory: every slot filled (as a hostile guest may leave it), or empty. */
static uint8_t *make_dir(int full, uint64_t *size)
{
    if (nub_cdir_size(FULL_CAPACITY, 64, size) != NUB_CDIR_OK)
        return NULL;
    uint8_t *d = malloc(*size);
    if (d == NULL || nub_cdir_init(d, *size, FULL_CAPACITY, 64) != NUB_CDIR_OK) {
        free(d);
        return NULL;
    }
    uint64_t arena = sizeof(struct nub_cdir_header) + FULL_CAPACITY * sizeof(struct nub_cdir_slot);
    for (uint64_t i = 0; full && i < FULL_CAPACITY; i++) {
        struct nub_cdir_slot *s = (struct nub_cdir_slot *)(d + sizeof(struct nub_cdir_header)) + i;
        memset(s->hash, 0x5a, sizeof s->hash);
        memcpy(s->hash, &i, sizeof i);
        s->blob_off = arena;
        s->blob_len = 1;
    }
    return d;
}

static int cdir_costs(double *full_ns, double *empty_ns)
{
    uint64_t size;
    uint8_t *full = make_dir(1, &size), *empty = make_dir(0, &size);
    struct nub_cdir_view vf, ve;
    int rc = -1;
    if (full != NULL && empty != NULL && nub_cdir_open(&vf, full, size) == NUB_CDIR_OK &&
        nub_cdir_open(&ve, empty, size) == NUB_CDIR_OK) {
        *full_ns = lookup_ns(&vf);
        *empty_ns = lookup_ns(&ve);
        rc = *full_ns < 0 || *empty_ns < 0 ? -1 : 0;
    }
    free(full);
    free(empty);
    return rc;
}

int main(int argc, char **argv)
{
    struct nub_config cfg;
    nub_config_default(&cfg);
    cfg.backend = NUB_BACKEND_EMU;
    bench_backend_arg(argc, argv, &cfg);
    if (argc > 3 && strcmp(argv[2], "sites") == 0) {
        uint32_t n = (uint32_t)strtoul(argv[3], NULL, 10);
        uint32_t layout = argc > 4 && strcmp(argv[4], "packed") == 0 ? NUB_TG_OUT_SITES_PACKED : NUB_TG_OUT_SITES_SEPARATE;
        double ns, kib;
        if (n > NUB_TG_OUT_SITES_MAX || out_site_cost(&cfg, n, layout, &ns, &kib) != 0)
            return 1;
        printf("{\"backend\":\"%s\",\"sites\":%u,\"ns_per_site\":%.0f}\n", nub_backend_name(cfg.backend), n, ns);
        return 0;
    }
    double ns[2][2], kib[2][2], full_ns, empty_ns;
    const uint32_t sites[2] = {1000, 4000};
    for (uint32_t layout = 0; layout < 2; layout++)
        for (int i = 0; i < 2; i++)
            if (out_site_cost(&cfg, sites[i], layout, &ns[layout][i], &kib[layout][i]) != 0)
                return 1;
    if (cdir_costs(&full_ns, &empty_ns) != 0)
        return 1;
    printf("{\"backend\":\"%s\"", nub_backend_name(cfg.backend));
    for (uint32_t layout = 0; layout < 2; layout++) {
        const char *name = layout == NUB_TG_OUT_SITES_PACKED ? "packed" : "separate";
        printf(",\"out_site_%s_ns_1000\":%.0f,\"out_site_%s_ns_4000\":%.0f,\"out_site_%s_ns_ratio\":%.2f,"
               "\"out_site_%s_rss_kib_1000\":%.2f,\"out_site_%s_rss_kib_4000\":%.2f",
               name, ns[layout][0], name, ns[layout][1], name, ns[layout][1] / ns[layout][0], name,
               kib[layout][0], name, kib[layout][1]);
    }
    printf(",\"cdir_full_2p20_absent_lookup_ns\":%.1f,\"cdir_empty_2p20_absent_lookup_ns\":%.1f,"
           "\"cdir_full_vs_empty_ratio\":%.1f}\n", full_ns, empty_ns, full_ns / empty_ns);
    return 0;
}
