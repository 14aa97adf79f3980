/* Unit tests for common/blake2b.c, cross-checked against libsodium's crypto_generichash. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nub/hash.h"

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

/* Compare nub_blake2b with crypto_generichash for one case. */
static void check_vs_sodium(const uint8_t *in, size_t len, size_t outlen, const uint8_t *key,
                            size_t keylen)
{
    uint8_t ours[64], ref[64];
    cr_assert_eq(nub_blake2b(ours, outlen, in, len, key, keylen), 0);
    cr_assert_eq(crypto_generichash(ref, outlen, in, len, key, keylen), 0);
    if (memcmp(ours, ref, outlen) != 0) {
        char a[129], b[129];
        hex(a, ours, outlen);
        hex(b, ref, outlen);
        cr_assert_fail("len=%zu outlen=%zu keylen=%zu\n ours=%s\n  ref=%s", len, outlen, keylen, a, b);
    }
}

static void setup(void)
{
    cr_assert(sodium_init() >= 0, "sodium_init failed");
}

TestSuite(blake2b, .init = setup);

Test(blake2b, rfc7693_abc_512)
{
    static const uint8_t expect[64] = {
        0xBA, 0x80, 0xA5, 0x3F, 0x98, 0x1C, 0x4D, 0x0D, 0x6A, 0x27, 0x97, 0xB6, 0x9F, 0x12, 0xF6, 0xE9,
        0x4C, 0x21, 0x2F, 0x14, 0x68, 0x5A, 0xC4, 0xB7, 0x4B, 0x12, 0xBB, 0x6F, 0xDB, 0xFF, 0xA2, 0xD1,
        0x7D, 0x87, 0xC5, 0x39, 0x2A, 0xAB, 0x79, 0x2D, 0xC2, 0x52, 0xD5, 0xDE, 0x45, 0x33, 0xCC, 0x95,
        0x18, 0xD3, 0x8A, 0xA8, 0xDB, 0xF1, 0x92, 0x5A, 0xB9, 0x23, 0x86, 0xED, 0xD4, 0x00, 0x99, 0x23,
    };
    uint8_t out[64];
    cr_assert_eq(nub_blake2b(out, 64, "abc", 3, NULL, 0), 0);
    cr_assert_arr_eq(out, expect, 64);

    nub_blake2b_state s;
    cr_assert_eq(nub_blake2b_init(&s, 64), 0);
    nub_blake2b_update(&s, "a", 1);
    nub_blake2b_update(&s, "bc", 2);
    nub_blake2b_final(&s, out);
    cr_assert_arr_eq(out, expect, 64);
}

Test(blake2b, every_length_0_to_1024)
{
    static uint8_t buf[1024];
    fill(buf, sizeof buf, 1);
    for (size_t len = 0; len <= 1024; len++) {
        check_vs_sodium(buf, len, 32, NULL, 0);
        check_vs_sodium(buf, len, 64, NULL, 0);
    }
}

Test(blake2b, every_output_length_16_to_64)
{
    uint8_t buf[300];
    fill(buf, sizeof buf, 2);
    for (size_t outlen = crypto_generichash_BYTES_MIN; outlen <= 64; outlen++) {
        check_vs_sodium(buf, 0, outlen, NULL, 0);
        check_vs_sodium(buf, 129, outlen, NULL, 0);
        check_vs_sodium(buf, 300, outlen, NULL, 0);
    }
}

Test(blake2b, keyed)
{
    static const size_t keylens[] = {1, 7, 16, 31, 32, 33, 63, 64};
    static const size_t lens[] = {0, 1, 63, 127, 128, 129, 255, 256, 257, 1000, 4099};
    uint8_t key[64], buf[4099];
    fill(key, sizeof key, 3);
    fill(buf, sizeof buf, 4);
    for (size_t k = 0; k < sizeof keylens / sizeof keylens[0]; k++)
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            check_vs_sodium(buf, lens[i], 32, key, keylens[k]);
            check_vs_sodium(buf, lens[i], 64, key, keylens[k]);
            check_vs_sodium(buf, lens[i], 20, key, keylens[k]);
        }
}

Test(blake2b, keyed_incremental)
{
    uint8_t key[64], buf[1000], a[64], b[64];
    fill(key, sizeof key, 5);
    fill(buf, sizeof buf, 6);
    cr_assert_eq(nub_blake2b(a, 64, buf, sizeof buf, key, 40), 0);
    nub_blake2b_state s;
    cr_assert_eq(nub_blake2b_init_key(&s, 64, key, 40), 0);
    for (size_t off = 0; off < sizeof buf; off += 37) {
        size_t n = sizeof buf - off < 37 ? sizeof buf - off : 37;
        nub_blake2b_update(&s, buf + off, n);
    }
    nub_blake2b_final(&s, b);
    cr_assert_arr_eq(a, b, 64);
}

Test(blake2b, large_inputs)
{
    static const size_t lens[] = {(1u << 20) + 3, (3u << 20) + 127, 5000000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t *buf = malloc(lens[i]);
        cr_assert_not_null(buf);
        fill(buf, lens[i], 7 + i);
        check_vs_sodium(buf, lens[i], 32, NULL, 0);
        check_vs_sodium(buf, lens[i], 64, NULL, 0);
        uint8_t ours[32], ref[32];
        nub_blake2b_256(ours, buf, lens[i]);
        cr_assert_eq(crypto_generichash(ref, 32, buf, lens[i], NULL, 0), 0);
        cr_assert_arr_eq(ours, ref, 32, "nub_blake2b_256 len=%zu", lens[i]);
        free(buf);
    }
}

Test(blake2b, incremental_odd_splits)
{
    enum { N = 5000 };
    static uint8_t buf[N];
    fill(buf, N, 8);
    static const size_t steps[] = {1, 2, 3, 7, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 4999};
    uint8_t one[64], inc[64];
    for (size_t outlen = 32; outlen <= 64; outlen += 32) {
        cr_assert_eq(nub_blake2b(one, outlen, buf, N, NULL, 0), 0);
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            nub_blake2b_state s;
            cr_assert_eq(nub_blake2b_init(&s, outlen), 0);
            /* Vary the piece size around the step so splits land everywhere. */
            size_t off = 0, i = 0;
            while (off < N) {
                size_t n = steps[k] + (i++ % 3);
                if (n > N - off)
                    n = N - off;
                nub_blake2b_update(&s, buf + off, n);
                nub_blake2b_update(&s, NULL, 0);
                off += n;
            }
            nub_blake2b_final(&s, inc);
            cr_assert_arr_eq(one, inc, outlen, "step=%zu outlen=%zu", steps[k], outlen);
        }
        /* Two pieces, split at every offset of the first 600 bytes. */
        for (size_t cut = 0; cut <= 600; cut++) {
            nub_blake2b_state s;
            cr_assert_eq(nub_blake2b_init(&s, outlen), 0);
            nub_blake2b_update(&s, buf, cut);
            nub_blake2b_update(&s, buf + cut, N - cut);
            nub_blake2b_final(&s, inc);
            cr_assert_arr_eq(one, inc, outlen, "cut=%zu outlen=%zu", cut, outlen);
        }
    }
}

Test(blake2b, short_output_is_not_a_prefix)
{
    uint8_t buf[100], d32[32], d64[64];
    fill(buf, sizeof buf, 9);
    for (size_t len = 0; len <= 100; len += 25) {
        nub_blake2b_256(d32, buf, len);
        cr_assert_eq(nub_blake2b(d64, 64, buf, len, NULL, 0), 0);
        cr_assert(memcmp(d32, d64, 32) != 0, "32-byte digest is a prefix of the 64-byte one (len=%zu)", len);
    }
    /* Every digest length gives a distinct digest (outlen is in the parameter block). */
    uint8_t prev[64];
    cr_assert_eq(nub_blake2b(prev, 1, buf, 10, NULL, 0), 0);
    for (size_t outlen = 2; outlen <= 64; outlen++) {
        uint8_t cur[64];
        cr_assert_eq(nub_blake2b(cur, outlen, buf, 10, NULL, 0), 0);
        cr_assert(memcmp(prev, cur, outlen - 1) != 0, "outlen %zu is a prefix of %zu", outlen - 1, outlen);
        memcpy(prev, cur, outlen);
    }
}

Test(blake2b, rejects_bad_parameters)
{
    nub_blake2b_state s;
    uint8_t out[64], key[65] = {0};
    cr_assert_eq(nub_blake2b_init(&s, 0), -1);
    cr_assert_eq(nub_blake2b_init(&s, 65), -1);
    cr_assert_eq(nub_blake2b_init(NULL, 32), -1);
    cr_assert_eq(nub_blake2b_init_key(&s, 32, key, 65), -1);
    cr_assert_eq(nub_blake2b_init_key(&s, 32, NULL, 1), -1);
    cr_assert_eq(nub_blake2b(out, 0, "x", 1, NULL, 0), -1);
    cr_assert_eq(nub_blake2b(NULL, 32, "x", 1, NULL, 0), -1);
    cr_assert_eq(nub_blake2b(out, 32, NULL, 1, NULL, 0), -1);
    cr_assert_eq(nub_blake2b(out, 32, NULL, 0, NULL, 0), 0);
    cr_assert_eq(nub_blake2b_init_key(&s, 32, NULL, 0), 0);
}
