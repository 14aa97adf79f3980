/* Freestanding overflow-checked size arithmetic (add, multiply, align-up, range-inside) for every size and offset that comes from input. */
#ifndef NUB_COMMON_CHECKED_H
#define NUB_COMMON_CHECKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Each helper returns true and stores the result when it is representable,
 * false (leaving *out untouched) when it would wrap. Callers treat false as
 * "too large" and reject the input with a typed error.
 */

/* *out = a + b. */
static inline bool nub_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

/* *out = a + b + c. */
static inline bool nub_add3_u64(uint64_t a, uint64_t b, uint64_t c, uint64_t *out)
{
    uint64_t r;
    return nub_add_u64(a, b, &r) && nub_add_u64(r, c, out);
}

/* *out = a * b. */
static inline bool nub_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

/* *out = v rounded up to a multiple of `align`, a power of two (0 stays 0). */
static inline bool nub_align_up_u64(uint64_t v, uint64_t align, uint64_t *out)
{
    uint64_t r;
    if (align == 0 || (align & (align - 1)) != 0 || __builtin_add_overflow(v, align - 1, &r))
        return false;
    *out = r & ~(align - 1);
    return true;
}

/* *out = (size_t)v when v fits a size_t. */
static inline bool nub_u64_to_size(uint64_t v, size_t *out)
{
    if (v > (uint64_t)SIZE_MAX)
        return false;
    *out = (size_t)v;
    return true;
}

/* [off, off + len) lies inside [0, size), without wrapping (len 0 at off == size is inside). */
static inline bool nub_range_inside(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

/* [a, a + alen) and [b, b + blen) overlap; both ranges must not wrap (check with nub_add_u64 first). */
static inline bool nub_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen != 0 && blen != 0 && a < b + blen && b < a + alen;
}

#endif /* NUB_COMMON_CHECKED_H */
