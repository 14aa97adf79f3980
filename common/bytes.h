/* Freestanding byte helpers shared by common/ code: copy, zero, compare, little-endian loads and stores. */
#ifndef NUB_COMMON_BYTES_H
#define NUB_COMMON_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* Copy n bytes; the ranges must not overlap. */
static inline void nub_bytes_copy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}

/* Set n bytes to zero. */
static inline void nub_bytes_zero(void *dst, size_t n)
{
    uint8_t *d = dst;
    for (size_t i = 0; i < n; i++)
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

static inline void nub_store_le32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

static inline void nub_store_le64(void *p, uint64_t v)
{
    uint8_t *b = p;
    nub_store_le32(b, (uint32_t)v);
    nub_store_le32(b + 4, (uint32_t)(v >> 32));
}

#endif /* NUB_COMMON_BYTES_H */
