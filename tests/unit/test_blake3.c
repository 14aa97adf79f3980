/* Unit tests for common/blake3.c against Debian's b3sum binary, on every SIMD path. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nub/hash.h"

#define B3SUM_DEFAULT "/usr/bin/b3sum"

/* SIMD caps to run every case under: all paths, down to portable scalar. */
static const unsigned lane_caps[] = {16, 8, 4, 1};
#define NCAPS (sizeof lane_caps / sizeof lane_caps[0])

/* Deterministic pseudo-random bytes (xorshift64*), seeded per call. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        p[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
    }
}

static void hex(char *dst, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(dst + 2 * i, "%02x", p[i]);
}

static const char *b3sum_path(void)
{
    const char *p = getenv("NUB_B3SUM");
    return p != NULL && p[0] != '\0' ? p : B3SUM_DEFAULT;
}

/* Fail the test (never skip) when the reference binary is missing. */
static void require_b3sum(void)
{
    cr_assert(access(b3sum_path(), X_OK) == 0,
              "reference binary %s not found or not executable: install Debian's b3sum "
              "package (apt-get install b3sum) or set NUB_B3SUM", b3sum_path());
}

/* Write n bytes to a fresh temp file; returns its path in path (>= 32 bytes). */
static void write_temp(char *path, const void *data, size_t n)
{
    strcpy(path, "/tmp/nub-b3-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp failed");
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        cr_assert(w > 0, "write to %s failed", path);
        p += w;
        n -= (size_t)w;
    }
    cr_assert_eq(close(fd), 0);
}

/*
 * Run b3sum on data and parse outlen bytes of hex output. key, when not
 * NULL, selects --keyed with the 32-byte key fed on standard input.
 */
static void b3sum_ref(const uint8_t *data, size_t n, const uint8_t *key, size_t outlen, uint8_t *out)
{
    char file[32], keyfile[32], cmd[256];
    require_b3sum();
    write_temp(file, data, n);
    if (key != NULL) {
        write_temp(keyfile, key, 32);
        snprintf(cmd, sizeof cmd, "'%s' --keyed --no-names --num-threads 1 --length %zu '%s' < '%s'",
                 b3sum_path(), outlen, file, keyfile);
    } else {
        snprintf(cmd, sizeof cmd, "'%s' --no-names --num-threads 1 --length %zu '%s'",
                 b3sum_path(), outlen, file);
    }
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "popen(%s) failed", cmd);
    char line[2 * 1024 + 8];
    char *got = fgets(line, sizeof line, f);
    int status = pclose(f);
    unlink(file);
    if (key != NULL)
        unlink(keyfile);
    cr_assert_not_null(got, "no output from: %s", cmd);
    cr_assert_eq(status, 0, "b3sum exited with status %d: %s", status, cmd);
    cr_assert(strlen(line) >= 2 * outlen, "short b3sum output: %s", line);
    for (size_t i = 0; i < outlen; i++) {
        unsigned v;
        cr_assert_eq(sscanf(line + 2 * i, "%2x", &v), 1, "bad hex from b3sum: %s", line);
        out[i] = (uint8_t)v;
    }
}

/* Our digest of data under one SIMD cap, fed in one update. */
static void ours(const uint8_t *data, size_t n, const uint8_t *key, unsigned cap, size_t outlen,
                 uint8_t *out)
{
    nub_blake3_state s;
    if (key != NULL)
        nub_blake3_init_keyed(&s, key);
    else
        nub_blake3_init(&s);
    nub_blake3_limit_simd(&s, cap);
    nub_blake3_update(&s, data, n);
    nub_blake3_final_len(&s, out, outlen);
}

/* Compare b3sum with our output on every SIMD path and via the one-shot helper. */
static void check_len(const uint8_t *data, size_t n, uint64_t seed)
{
    uint8_t ref[32], got[32];
    char a[65], b[65];
    b3sum_ref(data, n, NULL, 32, ref);
    for (size_t c = 0; c < NCAPS; c++) {
        ours(data, n, NULL, lane_caps[c], 32, got);
        if (memcmp(got, ref, 32) != 0) {
            hex(a, got, 32);
            hex(b, ref, 32);
            cr_assert_fail("seed=%llu len=%zu lanes<=%u\n ours=%s\n b3sum=%s",
                           (unsigned long long)seed, n, lane_caps[c], a, b);
        }
    }
    nub_blake3(got, data, n);
    cr_assert_arr_eq(got, ref, 32, "one-shot: seed=%llu len=%zu", (unsigned long long)seed, n);
}

Test(blake3, fixed_lengths_vs_b3sum)
{
    static const size_t lens[] = {0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 4097,
                                  8193, 16385, 31744, 65536, 65537, 200000, (1u << 20) + 1};
    const size_t max = (1u << 20) + 1;
    uint8_t *buf = malloc(max);
    cr_assert_not_null(buf);
    fill(buf, max, 11);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        check_len(buf, lens[i], 11);
    free(buf);
}

Test(blake3, random_lengths_vs_b3sum)
{
    const uint64_t seed = 0x6e7562b3u;
    const size_t max = 200 * 1024;
    uint8_t *buf = malloc(max);
    cr_assert_not_null(buf);
    uint64_t x = seed;
    for (int i = 0; i < 10; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n = (size_t)(x % (max + 1));
        fill(buf, n, seed + (uint64_t)i);
        check_len(buf, n, seed + (uint64_t)i);
    }
    free(buf);
}

Test(blake3, keyed_vs_b3sum)
{
    static const size_t lens[] = {0, 1, 64, 1024, 1025, 4096, 70000};
    uint8_t key[32], ref[32], got[32];
    uint8_t *buf = malloc(70000);
    cr_assert_not_null(buf);
    fill(key, sizeof key, 21);
    fill(buf, 70000, 22);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        b3sum_ref(buf, lens[i], key, 32, ref);
        for (size_t c = 0; c < NCAPS; c++) {
            ours(buf, lens[i], key, lane_caps[c], 32, got);
            cr_assert_arr_eq(got, ref, 32, "keyed len=%zu lanes<=%u", lens[i], lane_caps[c]);
        }
    }
    free(buf);
}

Test(blake3, extended_output_vs_b3sum)
{
    static const size_t lens[] = {0, 100, 5000};
    static const size_t outlens[] = {1, 31, 33, 64, 65, 200, 1000};
    uint8_t buf[5000], ref[1000], got[1000];
    fill(buf, sizeof buf, 31);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (size_t k = 0; k < sizeof outlens / sizeof outlens[0]; k++) {
            b3sum_ref(buf, lens[i], NULL, outlens[k], ref);
            ours(buf, lens[i], NULL, 16, outlens[k], got);
            cr_assert_arr_eq(got, ref, outlens[k], "len=%zu outlen=%zu", lens[i], outlens[k]);
        }
}

Test(blake3, incremental_odd_splits)
{
    enum { N = 300000 };
    static uint8_t buf[N];
    fill(buf, N, 41);
    static const size_t steps[] = {1, 7, 63, 64, 65, 1000, 1023, 1024, 1025, 3000, 4096, 33333, 131073};
    uint8_t one[32], inc[32];
    nub_blake3(one, buf, N);
    for (size_t c = 0; c < NCAPS; c++) {
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            nub_blake3_state s;
            nub_blake3_init(&s);
            nub_blake3_limit_simd(&s, lane_caps[c]);
            size_t off = 0, i = 0;
            while (off < N) {
                size_t n = steps[k] + (i++ % 5) * 17;
                if (n > N - off)
                    n = N - off;
                nub_blake3_update(&s, buf + off, n);
                nub_blake3_update(&s, NULL, 0);
                off += n;
            }
            nub_blake3_final(&s, inc);
            cr_assert_arr_eq(one, inc, 32, "step=%zu lanes<=%u", steps[k], lane_caps[c]);
        }
    }
    /* Two pieces, cut at many odd points, including chunk and subtree edges. */
    for (size_t cut = 0; cut < N; cut = cut * 3 + 1) {
        for (size_t d = 0; d < 3 && cut + d <= N; d++) {
            nub_blake3_state s;
            nub_blake3_init(&s);
            nub_blake3_update(&s, buf, cut + d);
            nub_blake3_update(&s, buf + cut + d, N - cut - d);
            nub_blake3_final(&s, inc);
            cr_assert_arr_eq(one, inc, 32, "cut=%zu", cut + d);
        }
    }
}

Test(blake3, final_does_not_consume_state)
{
    uint8_t buf[3000], a[32], b[32], c[32];
    fill(buf, sizeof buf, 51);
    nub_blake3_state s;
    nub_blake3_init(&s);
    nub_blake3_update(&s, buf, 1500);
    nub_blake3_final(&s, a);
    nub_blake3_final(&s, b);
    cr_assert_arr_eq(a, b, 32);
    nub_blake3(c, buf, 1500);
    cr_assert_arr_eq(a, c, 32);
    nub_blake3_update(&s, buf + 1500, 1500);
    nub_blake3_final(&s, a);
    nub_blake3(c, buf, 3000);
    cr_assert_arr_eq(a, c, 32);
    /* A shorter output is a prefix of a longer one. */
    uint8_t x[100];
    nub_blake3_final_len(&s, x, sizeof x);
    cr_assert_arr_eq(x, c, 32);
}

Test(blake3, simd_path_name)
{
    const char *p = nub_blake3_simd_path();
    cr_assert(strcmp(p, "avx512") == 0 || strcmp(p, "avx2") == 0 || strcmp(p, "sse2") == 0 ||
                  strcmp(p, "portable") == 0,
              "unexpected path %s", p);
#if defined(__x86_64__)
    cr_assert(strcmp(p, "portable") != 0, "x86-64 host build should use a SIMD path");
#endif
}
