/* Benchmark of the call path: call and host-call round trips against the bare backend round trip, and sandbox creation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../guests/testguest/testguest.h"
#include "../host/testing.h"
#include "nub/nub.h"
#include "bench.h"

#define HOST_FN_EMPTY 1u

static int host_empty(void *ctx, struct nub_host_call *call)
{
    (void)ctx;
    call->result_len = 0;
    return 0;
}

static void die(const char *what, nub_status rc, const nub_sandbox *sb, const struct nub_error *err)
{
    const struct nub_error *e = sb ? nub_sandbox_last_error(sb) : err;
    fprintf(stderr, "bench/call: %s: %s: %s\n", what, nub_strerror(rc), e ? e->message : "");
    exit(1);
}

static nub_sandbox *make(const char *name, const struct nub_config *cfg)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(bench_guest(name), NULL, cfg, &sb, &err);
    if (rc != NUB_OK)
        die("create", rc, NULL, &err);
    if (strcmp(name, "testguest") == 0)
        nub_sandbox_register(sb, HOST_FN_EMPTY, host_empty, NULL);
    if ((rc = nub_sandbox_evolve(sb)) != NUB_OK)
        die("evolve", rc, sb, NULL);
    return sb;
}

/* p50/p99 of echo calls with `size` bytes. */
static struct bench_stats bench_echo(nub_sandbox *sb, size_t size, size_t iters, double *v)
{
    static uint8_t in[8192], out[8192];
    size_t len;
    for (size_t i = 0; i < iters / 10; i++)
        nub_call_into(sb, NUB_TG_FN_ECHO, in, size, out, sizeof out, &len);
    for (size_t i = 0; i < iters; i++) {
        double t0 = bench_now_ns();
        nub_status rc = nub_call_into(sb, NUB_TG_FN_ECHO, in, size, out, sizeof out, &len);
        v[i] = bench_now_ns() - t0;
        if (rc != NUB_OK)
            die("echo", rc, sb, NULL);
    }
    return bench_summarize(v, iters);
}

/*
 * The cost of metrics on a 0-byte call: the same calls on a sandbox with
 * metrics and on one created with disable_metrics, interleaved in rounds so
 * that drift on a shared machine hits both alike. v needs 2 * iters slots.
 */
static void bench_metrics(nub_sandbox *on, nub_sandbox *off, size_t iters, double *v,
                          struct bench_stats *with, struct bench_stats *without)
{
    const size_t rounds = 20, per = iters / rounds ? iters / rounds : 1;
    size_t len, n = 0;
    uint8_t out[16];
    for (size_t r = 0; r < rounds; r++) {
        for (int which = 0; which < 2; which++) {
            nub_sandbox *sb = (r + (size_t)which) % 2 ? off : on;
            double *dst = v + (sb == off ? rounds * per : 0) + r * per;
            for (size_t i = 0; i < per; i++) {
                double t0 = bench_now_ns();
                nub_status rc = nub_call_into(sb, NUB_TG_FN_ECHO, NULL, 0, out, sizeof out, &len);
                dst[i] = bench_now_ns() - t0;
                if (rc != NUB_OK)
                    die("echo (metrics)", rc, sb, NULL);
            }
        }
        n += per;
    }
    *with = bench_summarize(v, n);
    *without = bench_summarize(v + rounds * per, n);
}

/* Mean time of the two metrics hooks a successful call runs, called directly (counts into sb). */
static double bench_metrics_hooks_ns(nub_sandbox *sb, size_t n)
{
    double t0 = bench_now_ns();
    nub_test_metrics_hooks(sb, n);
    return (bench_now_ns() - t0) / (double)n;
}

/* Marginal cost of one host call: a call making `k` host calls minus one making none, over k. */
static struct bench_stats bench_host_call(nub_sandbox *sb, size_t iters, double *v)
{
    const uint32_t k = 64;
    uint32_t req0[2] = {HOST_FN_EMPTY, 0}, reqk[2] = {HOST_FN_EMPTY, k};
    size_t len;
    uint8_t out[16];
    for (size_t i = 0; i < iters; i++) {
        double t0 = bench_now_ns();
        nub_status rc = nub_call_into(sb, NUB_TG_FN_HOST_CALL_LOOP, reqk, sizeof reqk, out, sizeof out, &len);
        double t1 = bench_now_ns();
        rc |= nub_call_into(sb, NUB_TG_FN_HOST_CALL_LOOP, req0, sizeof req0, out, sizeof out, &len);
        double t2 = bench_now_ns();
        if (rc != NUB_OK)
            die("host call loop", rc, sb, NULL);
        v[i] = ((t1 - t0) - (t2 - t1)) / k;
    }
    return bench_summarize(v, iters);
}

/* The bare backend round trip: enter the bare guest's dispatch, which only signals halt. */
static struct bench_stats bench_bare(nub_sandbox *sb, size_t iters, double *v)
{
    for (size_t i = 0; i < iters; i++) {
        double t0 = bench_now_ns();
        nub_status rc = nub_test_run_dispatch(sb);
        v[i] = bench_now_ns() - t0;
        if (rc != NUB_OK)
            die("bare run", rc, sb, NULL);
    }
    return bench_summarize(v, iters);
}

static double bench_create_us(const struct nub_config *cfg, size_t n, double *v)
{
    for (size_t i = 0; i < n; i++) {
        double t0 = bench_now_ns();
        nub_sandbox *sb = make("testguest", cfg);
        v[i] = (bench_now_ns() - t0) / 1e3;
        nub_sandbox_destroy(sb);
    }
    return bench_summarize(v, n).p50;
}

int main(int argc, char **argv)
{
    struct nub_config cfg;
    nub_config_default(&cfg);
    bench_backend_arg(argc, argv, &cfg);
    size_t iters = argc > 2 ? (size_t)atol(argv[2]) : 20000;
    double *v = calloc(2 * (iters > 100 ? iters : 100), sizeof *v);
    nub_sandbox *tg = make("testguest", &cfg), *bare = make("bare", &cfg);
    struct nub_config nometrics = cfg;
    nometrics.disable_metrics = 1;
    nub_sandbox *tg_nm = make("testguest", &nometrics);
    fprintf(stderr, "bench/call: %s backend, %zu iterations\n", nub_backend_name(nub_sandbox_backend(tg)), iters);
    struct bench_stats bare_s = bench_bare(bare, iters, v);
    struct bench_stats e0 = bench_echo(tg, 0, iters, v);
    struct bench_stats e4k = bench_echo(tg, 4096, iters, v);
    struct bench_stats hc = bench_host_call(tg, iters / 4 ? iters / 4 : 1, v);
    struct bench_stats m_on, m_off;
    bench_metrics(tg, tg_nm, iters, v, &m_on, &m_off);
    double hooks_ns = bench_metrics_hooks_ns(tg, 1000000);
    double create_us = bench_create_us(&cfg, 50, v);
    printf("{\"backend\": \"%s\", \"iterations\": %zu, "
           "\"bare_ns\": {\"p50\": %.0f, \"p99\": %.0f}, "
           "\"call_ns\": {\"p50\": %.0f, \"p99\": %.0f}, "
           "\"call_4k_ns\": {\"p50\": %.0f, \"p99\": %.0f}, "
           "\"host_call_ns\": {\"p50\": %.0f, \"p99\": %.0f}, "
           "\"create_us\": %.1f, \"ratio_call_bare\": %.3f, \"ratio_call_4k_bare\": %.3f, "
           "\"ratio_hostcall_bare\": %.3f, "
           "\"metrics_call_ns\": {\"p50\": %.0f, \"p99\": %.0f}, "
           "\"nometrics_call_ns\": {\"p50\": %.0f, \"p99\": %.0f}, \"ratio_metrics_cost\": %.4f, "
           "\"metrics_hooks_ns\": %.1f, \"metrics_hooks_share_of_call\": %.4f}\n",
           nub_backend_name(nub_sandbox_backend(tg)), iters, bare_s.p50, bare_s.p99, e0.p50, e0.p99,
           e4k.p50, e4k.p99, hc.p50, hc.p99, create_us, e0.p50 / bare_s.p50, e4k.p50 / bare_s.p50,
           hc.p50 / bare_s.p50, m_on.p50, m_on.p99, m_off.p50, m_off.p99, m_on.p50 / m_off.p50,
           hooks_ns, hooks_ns / m_off.p50);
    nub_sandbox_destroy(tg);
    nub_sandbox_destroy(tg_nm);
    nub_sandbox_destroy(bare);
    free(v);
    return 0;
}
