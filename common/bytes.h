/* Freestanding byte helpers shared by common/ code: copy, zero, compare, little-endian loads and stores. */
#ifndef NUB_COMMON_BYTES_H
#define NUB_COMMON_BYTES_H

#include <stddef.h>
#include <stdint.h>

/*
 * Stores are what the emulated CPU pays for (about one slow path per store
 * instruction, whatever its width: docs/backends.md, "The emu cost model"),
 * so the copy and zero loops below move 8 bytes per store once the
 * destination is 8-aligned, and the little-endian stores are one aligned
 * store where the address allows. __builtin_memcpy of a constant 8 or 4
 * bytes compiles to a single move, also in the freestanding guest.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NUB_BYTES_LE 1
#else
#define NUB_BYTES_LE 0
#endif

/* Copy n bytes; the ranges must not overlap. */
static inline void nub_bytes_copy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    size_t i = 0;
    for (; i < n && ((uintptr_t)(d + i) & 7u) != 0; i++)
        d[i] = s[i];
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        __builtin_memcpy(&w, s + i, 8);
        __builtin_memcpy(d + i, &w, 8);
    }
    for (; i < n; i++)
        d[i] = s[i];
}

/* Set n bytes to zero. */
static inline void nub_bytes_zero(void *dst, size_t n)
{
    uint8_t *d = dst;
    size_t i = 0;
    const uint64_t zero = 0;
    for (; i < n && ((uintptr_t)(d + i) & 7u) != 0; i++)
        d[i] = 0;
    for (; n - i >= 8; i += 8)
        __builtin_memcpy(d + i, &zero, 8);
    for (; i < n; i++)
        d[i] = 0;
}

/* Return 1 when the n bytes at a and b are equal, else 0. */
static inline int nub_bytes_equal(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= (uint8_t)(x[i] ^ y[i]);
    return acc == 0;
}

static inline uint32_t nub_load_le32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t nub_load_le64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)nub_load_le32(b) | (uint64_t)nub_load_le32(b + 4) << 32;
}

/* One 4-byte store on little-endian machines (aligned when p is). */
static inline void nub_store_le32(void *p, uint32_t v)
{
#if NUB_BYTES_LE
    __builtin_memcpy(p, &v, 4);
#else
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
#endif
}

/* One 8-byte store on little-endian machines (aligned when p is). */
static inline void nub_store_le64(void *p, uint64_t v)
{
#if NUB_BYTES_LE
    __builtin_memcpy(p, &v, 8);
#else
    uint8_t *b = p;
    nub_store_le32(b, (uint32_t)v);
    nub_store_le32(b + 4, (uint32_t)(v >> 32));
#endif
}

#endif /* NUB_COMMON_BYTES_H */
