/* Guest memory and string functions with their standard names (the compiler emits calls to memcpy/memset/memmove). */
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/*
 * Bulk copies and fills move 16 bytes per instruction (SSE2 movdqu, in
 * inline assembly so the compiler cannot turn the loop back into a call to
 * the function being defined). Under the emulated CPU every store
 * instruction is expensive, and one that is not aligned to its size is
 * split into byte stores, so the destination is first brought to 8-byte
 * alignment with 1-, 2- and 4-byte stores, and the tail is an 8-, 4-, 2-
 * and 1-byte store at most: never more than 3 stores besides the 16-byte
 * blocks, and every store aligned to its width. (__builtin_memcpy of a
 * constant 1, 2, 4 or 8 bytes compiles to a single move.)
 */

/* Copy n < 8 bytes to d, smallest piece first (which aligns d as it goes). */
static inline void copy_head(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n & 1u) {
        *d++ = *s++;
    }
    if (n & 2u) {
        __builtin_memcpy(d, s, 2);
        d += 2, s += 2;
    }
    if (n & 4u)
        __builtin_memcpy(d, s, 4);
}

/* Copy n < 16 bytes to an 8-aligned d, largest piece first (each stays aligned). */
static inline void copy_tail(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n & 8u) {
        __builtin_memcpy(d, s, 8);
        d += 8, s += 8;
    }
    if (n & 4u) {
        __builtin_memcpy(d, s, 4);
        d += 4, s += 4;
    }
    if (n & 2u) {
        __builtin_memcpy(d, s, 2);
        d += 2, s += 2;
    }
    if (n & 1u)
        *d = *s;
}

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n >= 8) {
        size_t head = (size_t)(-(uintptr_t)d & 7u);
        copy_head(d, s, head);
        d += head, s += head, n -= head;
    } else {
        copy_head(d, s, n);
        return dst;
    }
    for (; n >= 16; n -= 16, d += 16, s += 16)
        __asm__ volatile("movdqu (%1), %%xmm0\n\tmovdqu %%xmm0, (%0)" : : "r"(d), "r"(s) : "xmm0", "memory");
    copy_tail(d, s, n);
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
    if (d - s >= n) /* dst below src, or no overlap: copy forwards */
        return memcpy(dst, src, n);
    if (n == 0)
        return dst;
    void *dl = (uint8_t *)dst + n - 1;
    const void *sl = (const uint8_t *)src + n - 1;
    __asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(dl), "+S"(sl), "+c"(n) : : "memory");
    return dst;
}

/* Store the low n < 8 bytes of the pattern b at d, smallest piece first. */
static inline void fill_head(uint8_t *d, uint64_t b, size_t n)
{
    if (n & 1u)
        *d++ = (uint8_t)b;
    if (n & 2u) {
        __builtin_memcpy(d, &b, 2);
        d += 2;
    }
    if (n & 4u)
        __builtin_memcpy(d, &b, 4);
}

/* Fill n < 16 bytes at an 8-aligned d, largest piece first. */
static inline void fill_tail(uint8_t *d, uint64_t b, size_t n)
{
    if (n & 8u) {
        __builtin_memcpy(d, &b, 8);
        d += 8;
    }
    if (n & 4u) {
        __builtin_memcpy(d, &b, 4);
        d += 4;
    }
    if (n & 2u) {
        __builtin_memcpy(d, &b, 2);
        d += 2;
    }
    if (n & 1u)
        *d = (uint8_t)b;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    uint64_t b = (uint8_t)c * 0x0101010101010101ull;
    if (n < 8) {
        fill_head(d, b, n);
        return dst;
    }
    size_t head = (size_t)(-(uintptr_t)d & 7u);
    fill_head(d, b, head);
    d += head, n -= head;
    size_t blocks = n / 16;
    if (blocks != 0) {
        __asm__ volatile("movq %2, %%xmm0\n\t"
                         "punpcklqdq %%xmm0, %%xmm0\n"
                         "1:\n\t"
                         "movdqu %%xmm0, (%0)\n\t"
                         "add $16, %0\n\t"
                         "dec %1\n\t"
                         "jnz 1b"
                         : "+r"(d), "+r"(blocks)
                         : "r"(b)
                         : "xmm0", "memory", "cc");
        n %= 16;
    }
    fill_tail(d, b, n);
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

void *memchr(const void *s, int c, size_t n)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == (unsigned char)c)
            return (void *)(uintptr_t)(p + i);
    }
    return NULL;
}

size_t strnlen(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n] != '\0')
        n++;
    return n;
}

size_t strlen(const char *s)
{
    return strnlen(s, SIZE_MAX);
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y)
            return x < y ? -1 : 1;
        if (x == '\0')
            return 0;
    }
    return 0;
}

int strcmp(const char *a, const char *b)
{
    return strncmp(a, b, SIZE_MAX);
}

char *strchr(const char *s, int c)
{
    for (;; s++) {
        if (*s == (char)c)
            return (char *)(uintptr_t)s;
        if (*s == '\0')
            return NULL;
    }
}
