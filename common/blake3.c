/* BLAKE3 hash/keyed-hash: portable scalar core, x86-64 many-chunk SIMD (SSE2, AVX2, AVX-512). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "nub/hash.h"

/* Domain flags (BLAKE3 spec, table 3). */
enum {
    NUB_B3_CHUNK_START = 1u << 0,
    NUB_B3_CHUNK_END = 1u << 1,
    NUB_B3_PARENT = 1u << 2,
    NUB_B3_ROOT = 1u << 3,
    NUB_B3_KEYED_HASH = 1u << 4,
};

/* Largest subtree (in chunks) hashed in one go by the SIMD paths; its CVs
 * live on the stack (3 KiB host, 768 bytes in the 4-lane guest build). */
#ifdef NUB_GUEST
#define NUB_B3_MAX_SUBTREE 16u
#else
#define NUB_B3_MAX_SUBTREE 64u
#endif

/* SIMD paths exist only on x86-64 with GCC/clang vector extensions and
 * __builtin_shufflevector (GCC >= 12, clang); guest builds get the
 * baseline (SSE2) one only. */
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define NUB_B3_HAS_SHUFFLEVECTOR 1
#endif
#endif
#if defined(__x86_64__) && defined(__GNUC__) && defined(NUB_B3_HAS_SHUFFLEVECTOR)
#define NUB_B3_X86 1
#if !defined(NUB_GUEST)
#define NUB_B3_X86_RUNTIME 1
#endif
#endif

static const uint32_t nub_b3_iv[8] = {
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
};

/* Message word order for each of the 7 rounds (the permutation applied r times). */
static const uint8_t nub_b3_sched[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

/*
 * The quarter-round and round, written once for scalars and vectors.
 * The user defines NUB_B3_R16/R12/R8/R7 (right rotations) first.
 */
#define NUB_B3_G(a, b, c, d, x, y) \
    do {                           \
        a = a + b + (x);           \
        d = NUB_B3_R16(d ^ a);     \
        c = c + d;                 \
        b = NUB_B3_R12(b ^ c);     \
        a = a + b + (y);           \
        d = NUB_B3_R8(d ^ a);      \
        c = c + d;                 \
        b = NUB_B3_R7(b ^ c);      \
    } while (0)

#define NUB_B3_ROUND(v, m, r)                                                               \
    do {                                                                                    \
        NUB_B3_G(v[0], v[4], v[8], v[12], m[nub_b3_sched[r][0]], m[nub_b3_sched[r][1]]);    \
        NUB_B3_G(v[1], v[5], v[9], v[13], m[nub_b3_sched[r][2]], m[nub_b3_sched[r][3]]);    \
        NUB_B3_G(v[2], v[6], v[10], v[14], m[nub_b3_sched[r][4]], m[nub_b3_sched[r][5]]);   \
        NUB_B3_G(v[3], v[7], v[11], v[15], m[nub_b3_sched[r][6]], m[nub_b3_sched[r][7]]);   \
        NUB_B3_G(v[0], v[5], v[10], v[15], m[nub_b3_sched[r][8]], m[nub_b3_sched[r][9]]);   \
        NUB_B3_G(v[1], v[6], v[11], v[12], m[nub_b3_sched[r][10]], m[nub_b3_sched[r][11]]); \
        NUB_B3_G(v[2], v[7], v[8], v[13], m[nub_b3_sched[r][12]], m[nub_b3_sched[r][13]]);  \
        NUB_B3_G(v[3], v[4], v[9], v[14], m[nub_b3_sched[r][14]], m[nub_b3_sched[r][15]]);  \
    } while (0)

#define NUB_B3_ROUNDS(v, m)    \
    do {                       \
        NUB_B3_ROUND(v, m, 0); \
        NUB_B3_ROUND(v, m, 1); \
        NUB_B3_ROUND(v, m, 2); \
        NUB_B3_ROUND(v, m, 3); \
        NUB_B3_ROUND(v, m, 4); \
        NUB_B3_ROUND(v, m, 5); \
        NUB_B3_ROUND(v, m, 6); \
    } while (0)

/* Fully unroll short fixed loops (GCC needs the hint at -O2 to keep the
 * SIMD state in registers; clang accepts the same pragma). */
#define NUB_B3_UNROLL _Pragma("GCC unroll 16")

/* Generic rotate-right, valid for uint32_t and uint32_t vectors. */
#define NUB_B3_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* ------------------------------------------------------------------ */
/* Portable scalar core                                                */
/* ------------------------------------------------------------------ */

#define NUB_B3_R16(x) NUB_B3_ROTR(x, 16)
#define NUB_B3_R12(x) NUB_B3_ROTR(x, 12)
#define NUB_B3_R8(x) NUB_B3_ROTR(x, 8)
#define NUB_B3_R7(x) NUB_B3_ROTR(x, 7)

/* Run the compression function; leaves the full 16-word state in v. */
static inline void nub_b3_core(uint32_t v[16], const uint32_t cv[8], const uint8_t block[64],
                               uint32_t block_len, uint64_t counter, uint32_t flags)
{
    uint32_t m[16];
    NUB_B3_UNROLL for (int i = 0; i < 16; i++)
        m[i] = nub_load_le32(block + 4 * i);
    NUB_B3_UNROLL for (int i = 0; i < 8; i++)
        v[i] = cv[i];
    v[8] = nub_b3_iv[0];
    v[9] = nub_b3_iv[1];
    v[10] = nub_b3_iv[2];
    v[11] = nub_b3_iv[3];
    v[12] = (uint32_t)counter;
    v[13] = (uint32_t)(counter >> 32);
    v[14] = block_len;
    v[15] = flags;
    NUB_B3_ROUNDS(v, m);
}

/* Compress one block into cv (the chaining-value half of the output). */
static void nub_b3_compress_cv(uint32_t cv[8], const uint8_t block[64], uint32_t block_len,
                               uint64_t counter, uint32_t flags)
{
    uint32_t v[16];
    nub_b3_core(v, cv, block, block_len, counter, flags);
    for (int i = 0; i < 8; i++)
        cv[i] = v[i] ^ v[i + 8];
}

/* Compress one block and write the full 64-byte extended output. */
static void nub_b3_compress_xof(const uint32_t cv[8], const uint8_t block[64], uint32_t block_len,
                                uint64_t counter, uint32_t flags, uint8_t out[64])
{
    uint32_t v[16];
    nub_b3_core(v, cv, block, block_len, counter, flags);
    for (int i = 0; i < 8; i++) {
        nub_store_le32(out + 4 * i, v[i] ^ v[i + 8]);
        nub_store_le32(out + 32 + 4 * i, v[i + 8] ^ cv[i]);
    }
}

#undef NUB_B3_R16
#undef NUB_B3_R12
#undef NUB_B3_R8
#undef NUB_B3_R7

static void nub_b3_words_to_bytes(uint8_t out[32], const uint32_t w[8])
{
    for (int i = 0; i < 8; i++)
        nub_store_le32(out + 4 * i, w[i]);
}

static void nub_b3_bytes_to_words(uint32_t w[8], const uint8_t in[32])
{
    for (int i = 0; i < 8; i++)
        w[i] = nub_load_le32(in + 4 * i);
}

/*
 * Portable "hash many": n inputs laid out back to back, each `blocks`
 * 64-byte blocks long, compressed independently into n 32-byte CVs.
 * Input i uses counter + i when inc_counter, else counter.
 */
static void nub_b3_many_portable(const uint8_t *in, size_t n, size_t blocks, const uint32_t key[8],
                                 uint64_t counter, bool inc_counter, uint32_t flags,
                                 uint32_t flags_start, uint32_t flags_end, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t cv[8];
        const uint8_t *p = in + i * blocks * NUB_BLAKE3_BLOCK_LEN;
        for (int k = 0; k < 8; k++)
            cv[k] = key[k];
        for (size_t b = 0; b < blocks; b++) {
            uint32_t f = flags;
            if (b == 0)
                f |= flags_start;
            if (b + 1 == blocks)
                f |= flags_end;
            nub_b3_compress_cv(cv, p + b * NUB_BLAKE3_BLOCK_LEN, NUB_BLAKE3_BLOCK_LEN, counter, f);
        }
        nub_b3_words_to_bytes(out + i * NUB_BLAKE3_OUT_LEN, cv);
        if (inc_counter)
            counter++;
    }
}

/* ------------------------------------------------------------------ */
/* x86-64 SIMD paths: one chunk (or parent) per lane, transposed state. */
/* ------------------------------------------------------------------ */

#ifdef NUB_B3_X86

typedef uint32_t nub_v4u32 __attribute__((vector_size(16)));
typedef uint32_t nub_v4u32_u __attribute__((vector_size(16), aligned(1), may_alias));
typedef uint16_t nub_v8u16 __attribute__((vector_size(16)));

/* Broadcast one 32-bit word to every lane. */
#define NUB_B3_SPLAT(vt, x) ((vt){0} + (x))

/* How many blocks ahead the SIMD kernels prefetch each lane's input: every
 * lane is its own memory stream, too many for the hardware prefetcher. */
#define NUB_B3_PREFETCH 2u

/*
 * The N-lane kernel shared by all widths, expanded inside each
 * nub_b3_manyN function (which supplies in, blocks, key, counter,
 * inc_counter, flags, flags_start, flags_end, out and stride). Lane j
 * hashes input j; LOADMSG(b) fills m[16] with word i of block b of every
 * input in m[i]. The rotation macros must be defined for vt.
 */
#define NUB_B3_MANY_BODY(vt, N, LOADMSG)                                              \
    do {                                                                              \
        vt clo_, chi_;                                                                \
        for (int j_ = 0; j_ < (N); j_++) {                                            \
            uint64_t c_ = counter + (inc_counter ? (uint64_t)j_ : 0);                 \
            clo_[j_] = (uint32_t)c_;                                                  \
            chi_[j_] = (uint32_t)(c_ >> 32);                                          \
        }                                                                             \
        vt h[8];                                                                      \
        NUB_B3_UNROLL for (int i_ = 0; i_ < 8; i_++)                                  \
            h[i_] = NUB_B3_SPLAT(vt, key[i_]);                                        \
        for (size_t b = 0; b < blocks; b++) {                                         \
            uint32_t f_ = flags;                                                      \
            if (b == 0)                                                               \
                f_ |= flags_start;                                                    \
            if (b + 1 == blocks)                                                      \
                f_ |= flags_end;                                                      \
            vt m[16];                                                                 \
            LOADMSG(b);                                                               \
            if (b + NUB_B3_PREFETCH < blocks)                                         \
                NUB_B3_UNROLL for (int j_ = 0; j_ < (N); j_++)                        \
                    __builtin_prefetch(in + (size_t)j_ * stride +                     \
                                       (b + NUB_B3_PREFETCH) * NUB_BLAKE3_BLOCK_LEN); \
            vt v[16];                                                                 \
            NUB_B3_UNROLL for (int i_ = 0; i_ < 8; i_++)                              \
                v[i_] = h[i_];                                                        \
            v[8] = NUB_B3_SPLAT(vt, nub_b3_iv[0]);                                    \
            v[9] = NUB_B3_SPLAT(vt, nub_b3_iv[1]);                                    \
            v[10] = NUB_B3_SPLAT(vt, nub_b3_iv[2]);                                   \
            v[11] = NUB_B3_SPLAT(vt, nub_b3_iv[3]);                                   \
            v[12] = clo_;                                                             \
            v[13] = chi_;                                                             \
            v[14] = NUB_B3_SPLAT(vt, NUB_BLAKE3_BLOCK_LEN);                           \
            v[15] = NUB_B3_SPLAT(vt, f_);                                             \
            NUB_B3_ROUNDS(v, m);                                                      \
            NUB_B3_UNROLL for (int i_ = 0; i_ < 8; i_++)                              \
                h[i_] = v[i_] ^ v[i_ + 8];                                            \
        }                                                                             \
        NUB_B3_UNROLL for (int j_ = 0; j_ < (N); j_++)                                \
            NUB_B3_UNROLL for (int i_ = 0; i_ < 8; i_++)                              \
                nub_store_le32(out + (size_t)j_ * 32 + 4 * i_, h[i_][j_]);            \
    } while (0)

/* --- 4 lanes, SSE2 (x86-64 baseline) --- */

#define NUB_B3_R16(x) \
    ((nub_v4u32)__builtin_shufflevector((nub_v8u16)(x), (nub_v8u16)(x), 1, 0, 3, 2, 5, 4, 7, 6))
#define NUB_B3_R12(x) NUB_B3_ROTR(x, 12)
#define NUB_B3_R8(x) NUB_B3_ROTR(x, 8)
#define NUB_B3_R7(x) NUB_B3_ROTR(x, 7)

/* Transpose 4 rows of 4 words in place (r[i][j] <-> r[j][i]). */
static inline void nub_b3_transpose4(nub_v4u32 r[4])
{
    nub_v4u32 t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5);
    nub_v4u32 t1 = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);
    nub_v4u32 t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5);
    nub_v4u32 t3 = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);
    r[0] = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
    r[1] = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
    r[2] = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
    r[3] = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
}

#define NUB_B3_LOAD4(b)                                                                 \
    do {                                                                                \
        NUB_B3_UNROLL for (int q_ = 0; q_ < 4; q_++) {                                  \
            nub_v4u32 r_[4];                                                            \
            NUB_B3_UNROLL for (int j_ = 0; j_ < 4; j_++)                                \
                r_[j_] = *(const nub_v4u32_u *)(in + (size_t)j_ * stride +              \
                                                 (b) * NUB_BLAKE3_BLOCK_LEN + 16 * q_); \
            nub_b3_transpose4(r_);                                                      \
            NUB_B3_UNROLL for (int j_ = 0; j_ < 4; j_++)                                \
                m[4 * q_ + j_] = r_[j_];                                                \
        }                                                                               \
    } while (0)

static void nub_b3_many4(const uint8_t *in, size_t blocks, const uint32_t key[8], uint64_t counter,
                         bool inc_counter, uint32_t flags, uint32_t flags_start, uint32_t flags_end,
                         uint8_t *out)
{
    const size_t stride = blocks * NUB_BLAKE3_BLOCK_LEN;
    NUB_B3_MANY_BODY(nub_v4u32, 4, NUB_B3_LOAD4);
}

#undef NUB_B3_R16
#undef NUB_B3_R12
#undef NUB_B3_R8
#undef NUB_B3_R7

#ifdef NUB_B3_X86_RUNTIME

/* --- 8 lanes, AVX2 --- */

typedef uint32_t nub_v8u32 __attribute__((vector_size(32)));
typedef uint32_t nub_v8u32_u __attribute__((vector_size(32), aligned(1), may_alias));
typedef uint8_t nub_v32u8 __attribute__((vector_size(32)));

#define NUB_B3_BYTEROT(x, a, b, c, d)                                                   \
    ((nub_v8u32)__builtin_shufflevector((nub_v32u8)(x), (nub_v32u8)(x),                 \
                                        a, b, c, d, a + 4, b + 4, c + 4, d + 4,         \
                                        a + 8, b + 8, c + 8, d + 8, a + 12, b + 12,     \
                                        c + 12, d + 12, a + 16, b + 16, c + 16, d + 16, \
                                        a + 20, b + 20, c + 20, d + 20, a + 24, b + 24, \
                                        c + 24, d + 24, a + 28, b + 28, c + 28, d + 28))
#define NUB_B3_R16(x) NUB_B3_BYTEROT(x, 2, 3, 0, 1)
#define NUB_B3_R12(x) NUB_B3_ROTR(x, 12)
#define NUB_B3_R8(x) NUB_B3_BYTEROT(x, 1, 2, 3, 0)
#define NUB_B3_R7(x) NUB_B3_ROTR(x, 7)

/* Transpose an 8x8 matrix of words held as 8 row vectors, in place. */
__attribute__((target("avx2"))) static inline void nub_b3_transpose8(nub_v8u32 r[8])
{
    nub_v8u32 t[8], u[8];
    NUB_B3_UNROLL for (int k = 0; k < 4; k++) {
        t[2 * k] = __builtin_shufflevector(r[2 * k], r[2 * k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[2 * k + 1] = __builtin_shufflevector(r[2 * k], r[2 * k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    NUB_B3_UNROLL for (int k = 0; k < 2; k++) {
        nub_v8u32 *x = &t[4 * k], *y = &u[4 * k];
        y[0] = __builtin_shufflevector(x[0], x[2], 0, 1, 8, 9, 4, 5, 12, 13);
        y[1] = __builtin_shufflevector(x[0], x[2], 2, 3, 10, 11, 6, 7, 14, 15);
        y[2] = __builtin_shufflevector(x[1], x[3], 0, 1, 8, 9, 4, 5, 12, 13);
        y[3] = __builtin_shufflevector(x[1], x[3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    NUB_B3_UNROLL for (int k = 0; k < 4; k++) {
        r[k] = __builtin_shufflevector(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[k + 4] = __builtin_shufflevector(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

#define NUB_B3_LOAD8(b)                                                                 \
    do {                                                                                \
        NUB_B3_UNROLL for (int q_ = 0; q_ < 2; q_++) {                                  \
            nub_v8u32 r_[8];                                                            \
            NUB_B3_UNROLL for (int j_ = 0; j_ < 8; j_++)                                \
                r_[j_] = *(const nub_v8u32_u *)(in + (size_t)j_ * stride +              \
                                                 (b) * NUB_BLAKE3_BLOCK_LEN + 32 * q_); \
            nub_b3_transpose8(r_);                                                      \
            NUB_B3_UNROLL for (int j_ = 0; j_ < 8; j_++)                                \
                m[8 * q_ + j_] = r_[j_];                                                \
        }                                                                               \
    } while (0)

__attribute__((target("avx2"))) static void
nub_b3_many8(const uint8_t *in, size_t blocks, const uint32_t key[8], uint64_t counter,
             bool inc_counter, uint32_t flags, uint32_t flags_start, uint32_t flags_end, uint8_t *out)
{
    const size_t stride = blocks * NUB_BLAKE3_BLOCK_LEN;
    NUB_B3_MANY_BODY(nub_v8u32, 8, NUB_B3_LOAD8);
}

#undef NUB_B3_R16
#undef NUB_B3_R12
#undef NUB_B3_R8
#undef NUB_B3_R7

/* --- 16 lanes, AVX-512F --- */

typedef uint32_t nub_v16u32 __attribute__((vector_size(64)));
typedef uint32_t nub_v16u32_u __attribute__((vector_size(64), aligned(1), may_alias));

#define NUB_B3_R16(x) NUB_B3_ROTR(x, 16)
#define NUB_B3_R12(x) NUB_B3_ROTR(x, 12)
#define NUB_B3_R8(x) NUB_B3_ROTR(x, 8)
#define NUB_B3_R7(x) NUB_B3_ROTR(x, 7)

/* 128-bit lanes {a0, a2, b0, b2} and {a1, a3, b1, b3} of a and b. */
#define NUB_B3_EV128(a, b) \
    __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27)
#define NUB_B3_OD128(a, b) \
    __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31)

/* Transpose a 16x16 matrix of words held as 16 row vectors, in place. */
__attribute__((target("avx512f"))) static inline void nub_b3_transpose16(nub_v16u32 r[16])
{
    nub_v16u32 t[16], u[16];
    NUB_B3_UNROLL for (int k = 0; k < 8; k++) {
        t[2 * k] = __builtin_shufflevector(r[2 * k], r[2 * k + 1], 0, 16, 1, 17, 4, 20, 5, 21,
                                           8, 24, 9, 25, 12, 28, 13, 29);
        t[2 * k + 1] = __builtin_shufflevector(r[2 * k], r[2 * k + 1], 2, 18, 3, 19, 6, 22, 7, 23,
                                               10, 26, 11, 27, 14, 30, 15, 31);
    }
    /* u[4g + w]: rows 4g..4g+3, words w, w+4, w+8, w+12 in 128-bit lanes 0..3. */
    NUB_B3_UNROLL for (int g = 0; g < 4; g++) {
        nub_v16u32 *x = &t[4 * g], *y = &u[4 * g];
        y[0] = __builtin_shufflevector(x[0], x[2], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13,
                                       28, 29);
        y[1] = __builtin_shufflevector(x[0], x[2], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14,
                                       15, 30, 31);
        y[2] = __builtin_shufflevector(x[1], x[3], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13,
                                       28, 29);
        y[3] = __builtin_shufflevector(x[1], x[3], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14,
                                       15, 30, 31);
    }
    NUB_B3_UNROLL for (int w = 0; w < 4; w++) {
        nub_v16u32 a = NUB_B3_EV128(u[w], u[4 + w]);
        nub_v16u32 b = NUB_B3_OD128(u[w], u[4 + w]);
        nub_v16u32 c = NUB_B3_EV128(u[8 + w], u[12 + w]);
        nub_v16u32 d = NUB_B3_OD128(u[8 + w], u[12 + w]);
        r[w] = NUB_B3_EV128(a, c);
        r[w + 8] = NUB_B3_OD128(a, c);
        r[w + 4] = NUB_B3_EV128(b, d);
        r[w + 12] = NUB_B3_OD128(b, d);
    }
}

#define NUB_B3_LOAD16(b)                                                  \
    do {                                                                  \
        NUB_B3_UNROLL for (int j_ = 0; j_ < 16; j_++)                     \
            m[j_] = *(const nub_v16u32_u *)(in + (size_t)j_ * stride +    \
                                             (b) * NUB_BLAKE3_BLOCK_LEN); \
        nub_b3_transpose16(m);                                            \
    } while (0)

__attribute__((target("avx512f"))) static void
nub_b3_many16(const uint8_t *in, size_t blocks, const uint32_t key[8], uint64_t counter,
              bool inc_counter, uint32_t flags, uint32_t flags_start, uint32_t flags_end,
              uint8_t *out)
{
    const size_t stride = blocks * NUB_BLAKE3_BLOCK_LEN;
    NUB_B3_MANY_BODY(nub_v16u32, 16, NUB_B3_LOAD16);
}

#undef NUB_B3_R16
#undef NUB_B3_R12
#undef NUB_B3_R8
#undef NUB_B3_R7

#endif /* NUB_B3_X86_RUNTIME */
#endif /* NUB_B3_X86 */

/* Widest SIMD lane count usable in this process (1 = portable only). */
static unsigned nub_b3_simd_degree(void)
{
#if defined(NUB_B3_X86_RUNTIME)
    if (__builtin_cpu_supports("avx512f"))
        return 16;
    if (__builtin_cpu_supports("avx2"))
        return 8;
    return 4;
#elif defined(NUB_B3_X86)
    return 4;
#else
    return 1;
#endif
}

const char *nub_blake3_simd_path(void)
{
    switch (nub_b3_simd_degree()) {
    case 16: return "avx512";
    case 8: return "avx2";
    case 4: return "sse2";
    default: return "portable";
    }
}

/*
 * Hash n independent inputs (see nub_b3_many_portable) with kernels of at
 * most degree lanes (a value from nub_b3_simd_degree), falling back to
 * narrower ones for the remainder.
 */
static void nub_b3_many(unsigned degree, const uint8_t *in, size_t n, size_t blocks,
                        const uint32_t key[8], uint64_t counter, bool inc_counter, uint32_t flags,
                        uint32_t flags_start, uint32_t flags_end, uint8_t *out)
{
    const size_t stride = blocks * NUB_BLAKE3_BLOCK_LEN;
    const uint64_t step = inc_counter ? 1 : 0;
    (void)degree;
    (void)stride;
    (void)step;
#ifdef NUB_B3_X86_RUNTIME
    if (degree >= 16) {
        for (; n >= 16; n -= 16, in += 16 * stride, out += 16 * 32, counter += 16 * step)
            nub_b3_many16(in, blocks, key, counter, inc_counter, flags, flags_start, flags_end, out);
    }
    if (degree >= 8) {
        for (; n >= 8; n -= 8, in += 8 * stride, out += 8 * 32, counter += 8 * step)
            nub_b3_many8(in, blocks, key, counter, inc_counter, flags, flags_start, flags_end, out);
    }
#endif
#ifdef NUB_B3_X86
    for (; degree >= 4 && n >= 4; n -= 4, in += 4 * stride, out += 4 * 32, counter += 4 * step)
        nub_b3_many4(in, blocks, key, counter, inc_counter, flags, flags_start, flags_end, out);
#endif
    nub_b3_many_portable(in, n, blocks, key, counter, inc_counter, flags, flags_start, flags_end, out);
}

/* ------------------------------------------------------------------ */
/* Tree hashing                                                        */
/* ------------------------------------------------------------------ */

/* A pending output node: enough to produce its CV or its root output. */
typedef struct nub_b3_output {
    uint32_t cv[8];
    uint8_t block[64];
    uint32_t block_len;
    uint64_t counter;
    uint32_t flags;
} nub_b3_output;

static void nub_b3_output_cv(const nub_b3_output *o, uint8_t out[32])
{
    uint32_t cv[8];
    for (int i = 0; i < 8; i++)
        cv[i] = o->cv[i];
    nub_b3_compress_cv(cv, o->block, o->block_len, o->counter, o->flags);
    nub_b3_words_to_bytes(out, cv);
}

static void nub_b3_output_root(const nub_b3_output *o, uint8_t *out, size_t outlen)
{
    uint8_t buf[64];
    for (uint64_t ctr = 0; outlen > 0; ctr++) {
        nub_b3_compress_xof(o->cv, o->block, o->block_len, ctr, o->flags | NUB_B3_ROOT, buf);
        size_t take = outlen < 64 ? outlen : 64;
        nub_bytes_copy(out, buf, take);
        out += take;
        outlen -= take;
    }
}

/* Output node of a parent whose 64-byte block is the two child CVs. */
static void nub_b3_parent_output(nub_b3_output *o, const uint8_t block[64], const uint32_t key[8],
                                 uint32_t flags)
{
    for (int i = 0; i < 8; i++)
        o->cv[i] = key[i];
    nub_bytes_copy(o->block, block, 64);
    o->block_len = NUB_BLAKE3_BLOCK_LEN;
    o->counter = 0;
    o->flags = flags | NUB_B3_PARENT;
}

/* Output node of the current (possibly partial) chunk. */
static void nub_b3_chunk_output(const nub_blake3_state *s, nub_b3_output *o)
{
    for (int i = 0; i < 8; i++)
        o->cv[i] = s->chunk_cv[i];
    nub_bytes_copy(o->block, s->buf, s->buf_len);
    nub_bytes_zero(o->block + s->buf_len, 64u - s->buf_len);
    o->block_len = s->buf_len;
    o->counter = s->chunk_counter;
    o->flags = s->flags | NUB_B3_CHUNK_END | (s->blocks_compressed == 0 ? NUB_B3_CHUNK_START : 0u);
}

static size_t nub_b3_chunk_len(const nub_blake3_state *s)
{
    return (size_t)s->blocks_compressed * NUB_BLAKE3_BLOCK_LEN + s->buf_len;
}

/* Start chunk number counter. */
static void nub_b3_chunk_reset(nub_blake3_state *s, uint64_t counter)
{
    for (int i = 0; i < 8; i++)
        s->chunk_cv[i] = s->key[i];
    s->chunk_counter = counter;
    s->buf_len = 0;
    s->blocks_compressed = 0;
}

/* Feed bytes to the current chunk; len must fit in the chunk. The last
 * block is kept in buf until more input shows it is not the chunk's last. */
static void nub_b3_chunk_update(nub_blake3_state *s, const uint8_t *in, size_t len)
{
    while (len > 0) {
        if (s->buf_len == NUB_BLAKE3_BLOCK_LEN) {
            uint32_t f = s->flags | (s->blocks_compressed == 0 ? NUB_B3_CHUNK_START : 0u);
            nub_b3_compress_cv(s->chunk_cv, s->buf, NUB_BLAKE3_BLOCK_LEN, s->chunk_counter, f);
            s->blocks_compressed++;
            s->buf_len = 0;
        }
        if (s->buf_len == 0) {
            /* Whole blocks straight from the input, keeping one back. */
            while (len > NUB_BLAKE3_BLOCK_LEN) {
                uint32_t f = s->flags | (s->blocks_compressed == 0 ? NUB_B3_CHUNK_START : 0u);
                nub_b3_compress_cv(s->chunk_cv, in, NUB_BLAKE3_BLOCK_LEN, s->chunk_counter, f);
                s->blocks_compressed++;
                in += NUB_BLAKE3_BLOCK_LEN;
                len -= NUB_BLAKE3_BLOCK_LEN;
            }
        }
        size_t take = NUB_BLAKE3_BLOCK_LEN - s->buf_len;
        if (take > len)
            take = len;
        nub_bytes_copy(s->buf + s->buf_len, in, take);
        s->buf_len = (uint8_t)(s->buf_len + take);
        in += take;
        len -= take;
    }
}

static unsigned nub_b3_popcount(uint64_t x)
{
    unsigned n = 0;
    for (; x != 0; x &= x - 1)
        n++;
    return n;
}

/*
 * Merge completed subtrees on the stack until it holds popcount(chunks)
 * entries, the shape of a tree over that many chunks. Merges are lazy:
 * they run only once input past those chunks is known to exist, so the
 * root is never compressed as a plain parent.
 */
static void nub_b3_merge_stack(nub_blake3_state *s, uint64_t chunks)
{
    unsigned keep = nub_b3_popcount(chunks);
    while (s->cv_stack_len > keep) {
        uint8_t *pair = s->cv_stack + (size_t)(s->cv_stack_len - 2) * 32;
        uint32_t pcv[8];
        for (int i = 0; i < 8; i++)
            pcv[i] = s->key[i];
        nub_b3_compress_cv(pcv, pair, NUB_BLAKE3_BLOCK_LEN, 0, s->flags | NUB_B3_PARENT);
        nub_b3_words_to_bytes(pair, pcv);
        s->cv_stack_len--;
    }
}

/* Push the CV of a complete subtree whose first chunk is chunk_counter. */
static void nub_b3_push_cv(nub_blake3_state *s, const uint8_t cv[32], uint64_t chunk_counter)
{
    nub_b3_merge_stack(s, chunk_counter);
    nub_bytes_copy(s->cv_stack + (size_t)s->cv_stack_len * 32, cv, 32);
    s->cv_stack_len++;
}

/*
 * Hash a complete subtree of n chunks (a power of two, 2..MAX_SUBTREE)
 * starting at chunk counter, writing the CVs of its two children
 * (64 bytes) to out.
 */
static void nub_b3_subtree_children(const nub_blake3_state *s, const uint8_t *in, size_t n,
                                    uint64_t counter, uint8_t out[64])
{
    uint8_t a[NUB_B3_MAX_SUBTREE * 32];
    uint8_t b[NUB_B3_MAX_SUBTREE / 2 * 32];
    unsigned degree = nub_b3_simd_degree();
    if (degree > s->max_lanes)
        degree = s->max_lanes;
    nub_b3_many(degree, in, n, NUB_BLAKE3_CHUNK_LEN / NUB_BLAKE3_BLOCK_LEN, s->key, counter, true,
                s->flags, NUB_B3_CHUNK_START, NUB_B3_CHUNK_END, a);
    uint8_t *cur = a, *next = b;
    while (n > 2) {
        nub_b3_many(degree, cur, n / 2, 1, s->key, 0, false, s->flags | NUB_B3_PARENT, 0, 0, next);
        n /= 2;
        uint8_t *t = cur;
        cur = next;
        next = t;
    }
    nub_bytes_copy(out, cur, 64);
}

static void nub_b3_init_with(nub_blake3_state *s, const uint32_t key[8], uint8_t flags)
{
    for (int i = 0; i < 8; i++)
        s->key[i] = key[i];
    s->flags = flags;
    s->max_lanes = 16;
    s->cv_stack_len = 0;
    nub_bytes_zero(s->buf, sizeof s->buf);
    nub_b3_chunk_reset(s, 0);
}

void nub_blake3_init(nub_blake3_state *s)
{
    nub_b3_init_with(s, nub_b3_iv, 0);
}

void nub_blake3_init_keyed(nub_blake3_state *s, const uint8_t key[NUB_BLAKE3_KEY_LEN])
{
    uint32_t k[8];
    nub_b3_bytes_to_words(k, key);
    nub_b3_init_with(s, k, NUB_B3_KEYED_HASH);
}

void nub_blake3_limit_simd(nub_blake3_state *s, unsigned max_lanes)
{
    s->max_lanes = (uint8_t)(max_lanes >= 16 ? 16 : max_lanes >= 8 ? 8 : max_lanes >= 4 ? 4 : 1);
}

static uint64_t nub_b3_round_down_pow2(uint64_t x)
{
    uint64_t p = 1;
    while (p <= x / 2)
        p *= 2;
    return p;
}

void nub_blake3_update(nub_blake3_state *s, const void *input, size_t len)
{
    const uint8_t *in = input;
    if (len == 0)
        return;
    /* Finish a partial chunk first. */
    if (nub_b3_chunk_len(s) > 0) {
        size_t take = NUB_BLAKE3_CHUNK_LEN - nub_b3_chunk_len(s);
        if (take > len)
            take = len;
        nub_b3_chunk_update(s, in, take);
        in += take;
        len -= take;
        if (len == 0)
            return;
        nub_b3_output o;
        uint8_t cv[32];
        nub_b3_chunk_output(s, &o);
        nub_b3_output_cv(&o, cv);
        nub_b3_push_cv(s, cv, s->chunk_counter);
        nub_b3_chunk_reset(s, s->chunk_counter + 1);
    }
    /* Whole subtrees straight from the input, while more than a chunk is
     * left (the last chunk stays in the chunk state for finalisation). */
    while (len > NUB_BLAKE3_CHUNK_LEN) {
        uint64_t sub = nub_b3_round_down_pow2(len);
        if (sub > (uint64_t)NUB_B3_MAX_SUBTREE * NUB_BLAKE3_CHUNK_LEN)
            sub = (uint64_t)NUB_B3_MAX_SUBTREE * NUB_BLAKE3_CHUNK_LEN;
        uint64_t done = s->chunk_counter * NUB_BLAKE3_CHUNK_LEN;
        while (((sub - 1) & done) != 0)
            sub /= 2;
        uint64_t chunks = sub / NUB_BLAKE3_CHUNK_LEN;
        if (chunks == 1) {
            uint8_t cv[32];
            nub_b3_many_portable(in, 1, NUB_BLAKE3_CHUNK_LEN / NUB_BLAKE3_BLOCK_LEN, s->key,
                                 s->chunk_counter, true, s->flags, NUB_B3_CHUNK_START,
                                 NUB_B3_CHUNK_END, cv);
            nub_b3_push_cv(s, cv, s->chunk_counter);
        } else {
            uint8_t kids[64];
            nub_b3_subtree_children(s, in, (size_t)chunks, s->chunk_counter, kids);
            nub_b3_push_cv(s, kids, s->chunk_counter);
            nub_b3_push_cv(s, kids + 32, s->chunk_counter + chunks / 2);
        }
        s->chunk_counter += chunks;
        in += sub;
        len -= (size_t)sub;
    }
    if (len > 0) {
        nub_b3_chunk_update(s, in, len);
        /* More input follows everything on the stack now. */
        nub_b3_merge_stack(s, s->chunk_counter);
    }
}

void nub_blake3_final_len(const nub_blake3_state *s, uint8_t *out, size_t outlen)
{
    nub_b3_output o;
    size_t left;
    if (outlen == 0)
        return;
    if (s->cv_stack_len == 0 || nub_b3_chunk_len(s) > 0) {
        nub_b3_chunk_output(s, &o);
        left = s->cv_stack_len;
    } else {
        /* Input ended on a subtree boundary: the top two CVs are the
         * children of the last node. */
        left = (size_t)s->cv_stack_len - 2;
        nub_b3_parent_output(&o, s->cv_stack + left * 32, s->key, s->flags);
    }
    while (left > 0) {
        uint8_t block[64];
        left--;
        nub_bytes_copy(block, s->cv_stack + left * 32, 32);
        nub_b3_output_cv(&o, block + 32);
        nub_b3_parent_output(&o, block, s->key, s->flags);
    }
    nub_b3_output_root(&o, out, outlen);
}

void nub_blake3_final(const nub_blake3_state *s, uint8_t out[NUB_BLAKE3_OUT_LEN])
{
    nub_blake3_final_len(s, out, NUB_BLAKE3_OUT_LEN);
}

void nub_blake3(uint8_t out[NUB_BLAKE3_OUT_LEN], const void *in, size_t len)
{
    nub_blake3_state s;
    nub_blake3_init(&s);
    nub_blake3_update(&s, in, len);
    nub_blake3_final(&s, out);
}
