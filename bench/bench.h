/* Helpers shared by the benchmarks: a monotonic clock, percentiles, guest paths and the backend argument. */
#ifndef NUB_BENCH_H
#define NUB_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nub/nub.h"

#ifndef NUB_GUEST_DIR_DEFAULT
#define NUB_GUEST_DIR_DEFAULT "build/guests"
#endif

struct bench_stats {
    double p50, p99;
};

static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sort v[0..n) and return its median and 99th percentile. */
static inline struct bench_stats bench_summarize(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    return (struct bench_stats){v[n / 2], v[(n * 99) / 100]};
}

/* Path of guest NAME.elf (NUB_GUEST_DIR overrides the build directory). */
static inline const char *bench_guest(const char *name)
{
    static char path[512];
    const char *dir = getenv("NUB_GUEST_DIR");
    snprintf(path, sizeof path, "%s/%s.elf", dir ? dir : NUB_GUEST_DIR_DEFAULT, name);
    return path;
}

/* Backend from argv[1] ("kvm", "emu", "auto"), else the configured default. */
static inline void bench_backend_arg(int argc, char **argv, struct nub_config *cfg)
{
    if (argc > 1 && strcmp(argv[1], "kvm") == 0)
        cfg->backend = NUB_BACKEND_KVM;
    else if (argc > 1 && strcmp(argv[1], "emu") == 0)
        cfg->backend = NUB_BACKEND_EMU;
    else if (argc > 1 && strcmp(argv[1], "auto") == 0)
        cfg->backend = NUB_BACKEND_AUTO;
}

#endif /* NUB_BENCH_H */
