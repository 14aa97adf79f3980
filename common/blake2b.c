/* BLAKE2b (RFC 7693): portable, freestanding, keyed, variable digest length, incremental. */
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "nub/hash.h"

static const uint64_t nub_b2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
    0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
    0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* Message schedule; rounds 10 and 11 reuse rows 0 and 1. */
static const uint8_t nub_b2b_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t nub_b2b_rotr(uint64_t x, unsigned n)
{
    return (x >> n) | (x << (64 - n));
}

#define NUB_B2B_G(r, i, a, b, c, d)                                  \
    do {                                                             \
        a = a + b + m[nub_b2b_sigma[r][2 * (i)]];                    \
        d = nub_b2b_rotr(d ^ a, 32);                                 \
        c = c + d;                                                   \
        b = nub_b2b_rotr(b ^ c, 24);                                 \
        a = a + b + m[nub_b2b_sigma[r][2 * (i) + 1]];                \
        d = nub_b2b_rotr(d ^ a, 16);                                 \
        c = c + d;                                                   \
        b = nub_b2b_rotr(b ^ c, 63);                                 \
    } while (0)

#define NUB_B2B_ROUND(r)                                             \
    do {                                                             \
        NUB_B2B_G(r, 0, v0, v4, v8, v12);                            \
        NUB_B2B_G(r, 1, v1, v5, v9, v13);                            \
        NUB_B2B_G(r, 2, v2, v6, v10, v14);                           \
        NUB_B2B_G(r, 3, v3, v7, v11, v15);                           \
        NUB_B2B_G(r, 4, v0, v5, v10, v15);                           \
        NUB_B2B_G(r, 5, v1, v6, v11, v12);                           \
        NUB_B2B_G(r, 6, v2, v7, v8, v13);                            \
        NUB_B2B_G(r, 7, v3, v4, v9, v14);                            \
    } while (0)

/*
 * Compress nblocks consecutive 128-byte blocks into h. The counter t is
 * advanced by inc bytes before each block; last marks the final block
 * (only meaningful when nblocks is 1).
 */
static void nub_b2b_compress(uint64_t h[8], uint64_t t[2], const uint8_t *blk,
                             size_t nblocks, uint64_t inc, int last)
{
    uint64_t h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3];
    uint64_t h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
    uint64_t t0 = t[0], t1 = t[1];
    const uint64_t f0 = last ? ~(uint64_t)0 : 0;

    for (; nblocks > 0; nblocks--, blk += NUB_BLAKE2B_BLOCKBYTES) {
        uint64_t m[16];
        for (int i = 0; i < 16; i++)
            m[i] = nub_load_le64(blk + 8 * i);
        t0 += inc;
        t1 += (t0 < inc);
        uint64_t v0 = h0, v1 = h1, v2 = h2, v3 = h3;
        uint64_t v4 = h4, v5 = h5, v6 = h6, v7 = h7;
        uint64_t v8 = nub_b2b_iv[0], v9 = nub_b2b_iv[1];
        uint64_t v10 = nub_b2b_iv[2], v11 = nub_b2b_iv[3];
        uint64_t v12 = nub_b2b_iv[4] ^ t0, v13 = nub_b2b_iv[5] ^ t1;
        uint64_t v14 = nub_b2b_iv[6] ^ f0, v15 = nub_b2b_iv[7];
        NUB_B2B_ROUND(0);
        NUB_B2B_ROUND(1);
        NUB_B2B_ROUND(2);
        NUB_B2B_ROUND(3);
        NUB_B2B_ROUND(4);
        NUB_B2B_ROUND(5);
        NUB_B2B_ROUND(6);
        NUB_B2B_ROUND(7);
        NUB_B2B_ROUND(8);
        NUB_B2B_ROUND(9);
        NUB_B2B_ROUND(10);
        NUB_B2B_ROUND(11);
        h0 ^= v0 ^ v8;
        h1 ^= v1 ^ v9;
        h2 ^= v2 ^ v10;
        h3 ^= v3 ^ v11;
        h4 ^= v4 ^ v12;
        h5 ^= v5 ^ v13;
        h6 ^= v6 ^ v14;
        h7 ^= v7 ^ v15;
    }
    h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3;
    h[4] = h4; h[5] = h5; h[6] = h6; h[7] = h7;
    t[0] = t0;
    t[1] = t1;
}

int nub_blake2b_init_key(nub_blake2b_state *s, size_t outlen, const void *key, size_t keylen)
{
    if (s == NULL || outlen == 0 || outlen > NUB_BLAKE2B_OUTBYTES ||
        keylen > NUB_BLAKE2B_KEYBYTES || (key == NULL && keylen > 0))
        return -1;
    /* Parameter block word 0: digest length, key length, fanout 1, depth 1. */
    uint64_t p0 = (uint64_t)outlen | (uint64_t)keylen << 8 | 1ULL << 16 | 1ULL << 24;
    for (int i = 0; i < 8; i++)
        s->h[i] = nub_b2b_iv[i];
    s->h[0] ^= p0;
    s->t[0] = 0;
    s->t[1] = 0;
    s->buflen = 0;
    s->outlen = outlen;
    nub_bytes_zero(s->buf, sizeof s->buf);
    if (keylen > 0) {
        /* The key, zero-padded, is the first block. */
        nub_bytes_copy(s->buf, key, keylen);
        s->buflen = NUB_BLAKE2B_BLOCKBYTES;
    }
    return 0;
}

int nub_blake2b_init(nub_blake2b_state *s, size_t outlen)
{
    return nub_blake2b_init_key(s, outlen, NULL, 0);
}

void nub_blake2b_update(nub_blake2b_state *s, const void *in, size_t len)
{
    const uint8_t *p = in;
    if (len == 0)
        return;
    /* The last block must be compressed by final, so a full buffer is
     * flushed only once more input is known to follow. */
    if (s->buflen > 0) {
        size_t take = NUB_BLAKE2B_BLOCKBYTES - s->buflen;
        if (take > len)
            take = len;
        nub_bytes_copy(s->buf + s->buflen, p, take);
        s->buflen += take;
        p += take;
        len -= take;
        if (len == 0)
            return;
        nub_b2b_compress(s->h, s->t, s->buf, 1, NUB_BLAKE2B_BLOCKBYTES, 0);
        s->buflen = 0;
    }
    if (len > NUB_BLAKE2B_BLOCKBYTES) {
        size_t n = (len - 1) / NUB_BLAKE2B_BLOCKBYTES;
        nub_b2b_compress(s->h, s->t, p, n, NUB_BLAKE2B_BLOCKBYTES, 0);
        p += n * NUB_BLAKE2B_BLOCKBYTES;
        len -= n * NUB_BLAKE2B_BLOCKBYTES;
    }
    nub_bytes_copy(s->buf, p, len);
    s->buflen = len;
}

void nub_blake2b_final(nub_blake2b_state *s, void *out)
{
    uint8_t full[NUB_BLAKE2B_OUTBYTES];
    for (size_t i = s->buflen; i < NUB_BLAKE2B_BLOCKBYTES; i++)
        s->buf[i] = 0;
    nub_b2b_compress(s->h, s->t, s->buf, 1, (uint64_t)s->buflen, 1);
    for (int i = 0; i < 8; i++)
        nub_store_le64(full + 8 * i, s->h[i]);
    nub_bytes_copy(out, full, s->outlen);
    nub_bytes_zero(full, sizeof full);
}

int nub_blake2b(void *out, size_t outlen, const void *in, size_t inlen,
                const void *key, size_t keylen)
{
    nub_blake2b_state s;
    if (out == NULL || (in == NULL && inlen > 0))
        return -1;
    if (nub_blake2b_init_key(&s, outlen, key, keylen) != 0)
        return -1;
    nub_blake2b_update(&s, in, inlen);
    nub_blake2b_final(&s, out);
    return 0;
}

void nub_blake2b_256(uint8_t out[NUB_BLAKE2B_256_BYTES], const void *in, size_t len)
{
    nub_blake2b_state s;
    nub_blake2b_init(&s, NUB_BLAKE2B_256_BYTES);
    nub_blake2b_update(&s, in, len);
    nub_blake2b_final(&s, out);
}
