/* Test guest: heap exercises (alloc/free/realloc/calloc patterns with verification, stats, malloc of N bytes). */
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "nub/guest.h"
#include "testguest.h"

#define SLOTS 64u
#define DEFAULT_ITERS 2000u

struct slot {
    uint8_t *p;
    size_t size;
    uint8_t tag;
};

struct run {
    uint64_t rng;
    struct slot slots[SLOTS];
    const char *err;     /* first failure */
    uint64_t at;         /* iteration of the failure */
};

static uint64_t next_rand(struct run *run)
{
    /* xorshift64* */
    uint64_t x = run->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    run->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static size_t rand_size(struct run *run)
{
    uint64_t r = next_rand(run);
    switch (r % 16) {
    case 0: return 0;
    case 1: return (size_t)(r >> 8) % 4096 + 1;
    case 2: return (size_t)(r >> 8) % 16 + 1;
    default: return (size_t)(r >> 8) % 512 + 1;
    }
}

static void fill(uint8_t *p, size_t n, uint8_t tag)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(tag + i * 7u);
}

static int verify(const uint8_t *p, size_t n, uint8_t tag)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != (uint8_t)(tag + i * 7u))
            return 0;
    }
    return 1;
}

static void fail(struct run *run, uint64_t at, const char *err)
{
    if (run->err == NULL) {
        run->err = err;
        run->at = at;
    }
}

/* Fill an empty slot with malloc or calloc. */
static void alloc_slot(struct run *run, struct slot *s, uint64_t it)
{
    size_t n = rand_size(run);
    int zeroed = next_rand(run) % 2 == 0;
    s->p = zeroed ? nub_calloc(1, n) : nub_malloc(n);
    if (s->p == NULL)
        return; /* the heap is full: allowed */
    if ((uintptr_t)s->p % 16 != 0)
        fail(run, it, "allocation not 16-byte aligned");
    for (size_t i = 0; zeroed && i < n; i++) {
        if (s->p[i] != 0) {
            fail(run, it, "calloc memory not zeroed");
            break;
        }
    }
    s->size = n;
    s->tag = (uint8_t)next_rand(run);
    fill(s->p, n, s->tag);
}

/* Resize a live slot with realloc, keeping and checking its prefix. */
static void realloc_slot(struct run *run, struct slot *s, uint64_t it)
{
    size_t n = rand_size(run);
    if (n == 0)
        n = 1; /* realloc(p, 0) frees; not what this step tests */
    uint8_t *q = nub_realloc(s->p, n);
    if (q == NULL)
        return; /* the old block is still valid */
    size_t keep = n < s->size ? n : s->size;
    if (!verify(q, keep, s->tag))
        fail(run, it, "realloc lost contents");
    s->p = q;
    s->size = n;
    fill(q, n, s->tag);
}

static void step(struct run *run, uint64_t it)
{
    struct slot *s = &run->slots[next_rand(run) % SLOTS];
    if (s->p == NULL) {
        alloc_slot(run, s, it);
        return;
    }
    if (!verify(s->p, s->size, s->tag))
        fail(run, it, "block contents changed");
    if (next_rand(run) % 3 == 0) {
        realloc_slot(run, s, it);
    } else {
        nub_free(s->p);
        s->p = NULL;
    }
}

static void free_all(struct run *run)
{
    for (unsigned i = 0; i < SLOTS; i++) {
        struct slot *s = &run->slots[i];
        if (s->p != NULL && !verify(s->p, s->size, s->tag))
            fail(run, 0, "block contents changed before the final free");
        nub_free(s->p);
        s->p = NULL;
    }
}

static uint32_t put_stats(struct nub_reply *r)
{
    struct nub_heap_stats st;
    nub_heap_stats(&st);
    return nub_reply_set(r, &st, sizeof(st));
}

static uint32_t tg_alloc(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    struct run *run = nub_calloc(1, sizeof(*run));
    if (run == NULL)
        return nub_reply_error(r, NUB_STATUS_NO_MEMORY, "alloc: no memory for the test state");
    run->rng = in_len >= 8 ? nub_load_le64(in) : 0x9e3779b97f4a7c15ull;
    if (run->rng == 0)
        run->rng = 1;
    uint32_t iters = in_len >= 12 ? nub_load_le32(in + 8) : DEFAULT_ITERS;
    struct nub_heap_stats before;
    nub_heap_stats(&before);
    for (uint64_t it = 0; it < iters && run->err == NULL; it++) {
        step(run, it);
        if (it % 64 == 0 && nub_heap_check() != 0)
            fail(run, it, "heap check failed");
    }
    free_all(run);
    const char *err = run->err;
    uint64_t at = run->at;
    nub_free(run);
    struct nub_heap_stats after;
    nub_heap_stats(&after);
    if (err == NULL && nub_heap_check() != 0)
        err = "heap check failed after freeing everything";
    if (err == NULL && after.bytes_in_use != before.bytes_in_use - sizeof(*run))
        err = "bytes_in_use did not return to its starting value";
    if (err != NULL)
        return nub_reply_error(r, NUB_STATUS_GUEST_ERROR, "alloc: %s (iteration %llu)", err,
                               (unsigned long long)at);
    return put_stats(r);
}

static uint32_t tg_heap_stats(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    return put_stats(r);
}

static uint32_t tg_malloc_n(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    if (in_len != 8)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "malloc_n: want u64 N");
    uint64_t n = nub_load_le64(in);
    uint8_t *p = n <= SIZE_MAX ? nub_malloc((size_t)n) : NULL;
    if (p != NULL) {
        memset(p, 0x5a, (size_t)n);
        nub_free(p);
    }
    uint8_t ok = p != NULL;
    return nub_reply_set(r, &ok, 1);
}

void nub_tg_register_heap(void)
{
    if (nub_register(NUB_TG_FN_ALLOC, tg_alloc) != NUB_REG_OK ||
        nub_register(NUB_TG_FN_HEAP_STATS, tg_heap_stats) != NUB_REG_OK ||
        nub_register(NUB_TG_FN_MALLOC_N, tg_malloc_n) != NUB_REG_OK)
        nub_panic("testguest: cannot register the heap functions");
}
