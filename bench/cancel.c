/* Benchmark of cancellation: latency from nub_interrupt() (and from a call timeout's deadline) to the call returning. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../guests/testguest/testguest.h"
#include "nub/nub.h"
#include "bench.h"

struct spinner {
    nub_sandbox *sb;
    atomic_int started;
    double returned_ns;
    nub_status rc;
};

static nub_sandbox *make(const struct nub_config *cfg)
{
    const char *path = bench_guest("testguest");
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(path, NULL, cfg, &sb, &err);
    if (rc == NUB_OK && (rc = nub_sandbox_evolve(sb)) != NUB_OK)
        snprintf(err.message, sizeof err.message, "%s", nub_sandbox_last_error(sb)->message);
    if (rc != NUB_OK) {
        fprintf(stderr, "bench/cancel: %s: %s\n", nub_strerror(rc), err.message);
        exit(1);
    }
    return sb;
}

static void *spin(void *p)
{
    struct spinner *s = p;
    uint8_t *out = NULL;
    size_t len = 0;
    atomic_store(&s->started, 1);
    s->rc = nub_call(s->sb, NUB_TG_FN_SPIN, NULL, 0, &out, &len);
    s->returned_ns = bench_now_ns();
    return NULL;
}

/* One interrupt: start a spinning call, let it run 2 ms, interrupt, return latency in ns. */
static double one_interrupt(const struct nub_config *cfg)
{
    struct spinner s = {.sb = make(cfg)};
    pthread_t th;
    pthread_create(&th, NULL, spin, &s);
    while (!atomic_load(&s.started))
        ;
    usleep(2000);
    double t0 = bench_now_ns();
    nub_interrupt(s.sb);
    pthread_join(th, NULL);
    if (s.rc != NUB_E_CANCELLED) {
        fprintf(stderr, "bench/cancel: expected NUB_E_CANCELLED, got %s\n", nub_strerror(s.rc));
        exit(1);
    }
    nub_sandbox_destroy(s.sb);
    return s.returned_ns - t0;
}

/* One timeout: a spinning call with a 50 ms timeout; return how long past the deadline it returned. */
static double one_timeout(struct nub_config cfg)
{
    cfg.call_timeout_ms = 50;
    nub_sandbox *sb = make(&cfg);
    uint8_t *out = NULL;
    size_t len = 0;
    double t0 = bench_now_ns();
    nub_status rc = nub_call(sb, NUB_TG_FN_SPIN, NULL, 0, &out, &len);
    double t1 = bench_now_ns();
    if (rc != NUB_E_TIMEOUT) {
        fprintf(stderr, "bench/cancel: expected NUB_E_TIMEOUT, got %s\n", nub_strerror(rc));
        exit(1);
    }
    nub_sandbox_destroy(sb);
    return t1 - t0 - 50e6;
}

int main(int argc, char **argv)
{
    struct nub_config cfg;
    nub_config_default(&cfg);
    bench_backend_arg(argc, argv, &cfg);
    size_t n = argc > 2 ? (size_t)atol(argv[2]) : 200;
    if (n < 1)
        n = 1;
    double *lat = calloc(n, sizeof *lat), *over = calloc(n, sizeof *over);
    nub_sandbox *probe = make(&cfg);
    const char *backend = nub_backend_name(nub_sandbox_backend(probe));
    nub_sandbox_destroy(probe);
    fprintf(stderr, "bench/cancel: %s backend, %zu interrupts and %zu timeouts\n", backend, n, n);
    for (size_t i = 0; i < n; i++) {
        lat[i] = one_interrupt(&cfg);
        over[i] = one_timeout(cfg);
    }
    struct bench_stats l = bench_summarize(lat, n), o = bench_summarize(over, n);
    printf("{\"backend\": \"%s\", \"iterations\": %zu, "
           "\"interrupt_to_return_us\": {\"p50\": %.1f, \"p99\": %.1f}, "
           "\"timeout_overshoot_us\": {\"p50\": %.1f, \"p99\": %.1f}}\n",
           backend, n, l.p50 / 1e3, l.p99 / 1e3, o.p50 / 1e3, o.p99 / 1e3);
    free(lat);
    free(over);
    return 0;
}
