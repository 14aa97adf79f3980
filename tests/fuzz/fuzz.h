/* Shared helpers of the libFuzzer targets: the entry-point prototype, property checks and an input reader. */
#ifndef NUB_FUZZ_H
#define NUB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer's entry point: each target defines it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A violated property is a finding: print it and abort so libFuzzer saves the input. */
#define FUZZ_CHECK(cond, ...)                                                        \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: property violated: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/*
 * Reads typed values from the end of the input, like LLVM's
 * FuzzedDataProvider, so that the front of the input stays a plain file
 * (an ELF, a buffer) that seeds and mutations work on; a read past the
 * start yields zero bytes.
 */
struct fuzz_tail {
    const uint8_t *data;
    size_t size; /* bytes not consumed yet, from data */
};

static inline uint64_t fuzz_tail_u64(struct fuzz_tail *t)
{
    uint64_t v = 0;
    for (int i = 0; i < 8 && t->size > 0; i++)
        v |= (uint64_t)t->data[--t->size] << (8 * i);
    return v;
}

static inline uint8_t fuzz_tail_u8(struct fuzz_tail *t)
{
    return t->size > 0 ? t->data[--t->size] : 0;
}

/* A private heap copy of exactly n bytes, so that ASan catches any read past them. */
static inline uint8_t *fuzz_copy(const uint8_t *data, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    if (n)
        memcpy(p, data, n);
    return p;
}

#endif /* NUB_FUZZ_H */
