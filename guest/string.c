/* Guest memory and string functions with their standard names (the compiler emits calls to memcpy/memset/memmove). */
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/*
 * Bulk copies and fills move 16 bytes per instruction (SSE2 movdqu, in
 * inline assembly so the compiler cannot turn the loop back into a call to
 * the function being defined); the tail uses rep movsb / rep stosb. Under
 * KVM either form is fast; under the emulated CPU every store instruction
 * is expensive, so fewer, wider stores make large payloads ~8x cheaper.
 */

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    for (; n >= 16; n -= 16, d += 16, s += 16)
        __asm__ volatile("movdqu (%1), %%xmm0\n\tmovdqu %%xmm0, (%0)" : : "r"(d), "r"(s) : "xmm0", "memory");
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
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

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    size_t blocks = n / 16;
    if (blocks != 0) {
        uint64_t b = (uint8_t)c * 0x0101010101010101ull;
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
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
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
