/* Benchmark of the kvm probe: its cost against one bare kvm VM creation (same memory, not run), measured interleaved in one run. */
#include <stdio.h>
#include <stdlib.h>

#include "../host/testing.h"
#include "bench.h"

/* Usage: bench/kvm_probe [ITERATIONS]   (default 200). Prints one JSON object. */
int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200;
    if (n < 1 || n > 1000000) {
        fprintf(stderr, "bench/kvm_probe: ITERATIONS must be 1..1000000\n");
        return 2;
    }
    double *probe = calloc((size_t)n, sizeof *probe), *bare = calloc((size_t)n, sizeof *bare);
    struct nub_backend_info info;
    char err[256] = "";
    if (probe == NULL || bare == NULL)
        return 1;
    nub_kvm_probe_run(&info); /* warm-up: module pages, CPUID table, signal handler */
    if (info.kvm_api_version < 0 || nub_kvm_probe_bare_vm(err, sizeof err) != NUB_OK) {
        fprintf(stderr, "bench/kvm_probe: no kvm VM can be created here: %s%s\n", info.reason, err);
        return 1;
    }
    for (long i = 0; i < n; i++) { /* interleaved, so drift hits both alike */
        double t0 = bench_now_ns();
        nub_kvm_probe_bare_vm(err, sizeof err);
        double t1 = bench_now_ns();
        nub_kvm_probe_run(&info);
        double t2 = bench_now_ns();
        bare[i] = t1 - t0;
        probe[i] = t2 - t1;
    }
    double t0 = bench_now_ns();
    nub_status cached = nub_backend_available(NUB_BACKEND_KVM, NULL, 0);
    (void)nub_backend_available(NUB_BACKEND_KVM, NULL, 0);
    double first_query = bench_now_ns() - t0;
    t0 = bench_now_ns();
    for (int i = 0; i < 1000; i++)
        (void)nub_backend_available(NUB_BACKEND_KVM, NULL, 0);
    double cached_query = (bench_now_ns() - t0) / 1000;
    struct bench_stats p = bench_summarize(probe, (size_t)n), b = bench_summarize(bare, (size_t)n);
    printf("{\"bench\": \"kvm_probe\", \"iterations\": %ld, \"kvm_modules\": \"%s\", \"probe_passed\": %s, "
           "\"probe_p50_ns\": %.0f, \"probe_p99_ns\": %.0f, \"bare_vm_p50_ns\": %.0f, \"bare_vm_p99_ns\": %.0f, "
           "\"ratio_probe_to_bare_vm_p50\": %.3f, \"first_available_query_ns\": %.0f, "
           "\"cached_available_query_ns\": %.1f, \"available\": %s}\n",
           n, info.kvm_modules, info.probe_passed ? "true" : "false", p.p50, p.p99, b.p50, b.p99,
           p.p50 / b.p50, first_query, cached_query, cached == NUB_OK ? "true" : "false");
    free(probe);
    free(bare);
    return 0;
}
