/* Guest heap: first-fit allocator over the PEB heap with an address-ordered free list, coalescing and statistics. */
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/*
 * The heap is a contiguous run of blocks. Each block starts with a 16-byte
 * header: its total size (header included, a multiple of 16) and a tag
 * that says whether it is in use or free, mixed with the block address so
 * that a stray pointer into user data is unlikely to pass as a header.
 * Free blocks also hold the next pointer of the free list, which is
 * sorted by address so that neighbours coalesce on free.
 */

#define HDR_SIZE   16u
#define MIN_BLOCK  32u
#define TAG_USED   0x55534544u /* "DESU" */
#define TAG_FREE   0x45455246u /* "FREE" */

struct blk {
    uint64_t size;   /* whole block, header included */
    uint32_t tag;    /* TAG_USED / TAG_FREE mixed with the address */
    uint32_t req;    /* bytes requested (used blocks) */
};

struct nub_free_blk {
    struct blk h;
    struct nub_free_blk *next;
};

_Static_assert(sizeof(struct blk) == HDR_SIZE, "block header is 16 bytes");
_Static_assert(sizeof(struct nub_free_blk) <= MIN_BLOCK, "free block fits the minimum");

static uint32_t tag_for(const void *b, uint32_t kind)
{
    return kind ^ (uint32_t)((uintptr_t)b >> 4);
}

static struct nub_heap *heap(void)
{
    return &nub_rt.heap;
}

/* Block size for a request of n bytes, or 0 when it cannot be satisfied. */
static uint64_t block_size(size_t n)
{
    if (n > UINT32_MAX || n > heap()->end - heap()->start)
        return 0;
    uint64_t need = (((uint64_t)n + 15u) & ~(uint64_t)15u) + HDR_SIZE;
    return need < MIN_BLOCK ? MIN_BLOCK : need;
}

void nub_heap_init(uintptr_t base, uint64_t size)
{
    struct nub_heap *h = heap();
    uintptr_t start = (base + 15u) & ~(uintptr_t)15u;
    uintptr_t end = (base + size) & ~(uintptr_t)15u;
    *h = (struct nub_heap){0};
    if (size == 0 || end <= start || end - start < MIN_BLOCK) {
        h->start = h->end = start;
        return;
    }
    h->start = start;
    h->end = end;
    h->stats.heap_size = end - start;
    struct nub_free_blk *f = (struct nub_free_blk *)start;
    f->h = (struct blk){.size = end - start, .tag = tag_for(f, TAG_FREE), .req = 0};
    f->next = NULL;
    h->free_list = f;
}

/* Carve `need` bytes off the front of free block f (whose predecessor is prev). */
static struct blk *take(struct nub_free_blk *prev, struct nub_free_blk *f, uint64_t need)
{
    struct nub_free_blk **link = prev ? &prev->next : &heap()->free_list;
    if (f->h.size - need >= MIN_BLOCK) {
        struct nub_free_blk *rest = (struct nub_free_blk *)((uintptr_t)f + need);
        rest->h = (struct blk){.size = f->h.size - need, .tag = tag_for(rest, TAG_FREE)};
        rest->next = f->next;
        *link = rest;
        f->h.size = need;
    } else {
        *link = f->next;
    }
    return &f->h;
}

static void count_alloc(struct nub_heap_stats *st, size_t n)
{
    st->allocs++;
    st->bytes_in_use += n;
    if (st->bytes_in_use > st->peak_in_use)
        st->peak_in_use = st->bytes_in_use;
}

void *nub_malloc(size_t n)
{
    struct nub_heap *h = heap();
    uint64_t need = block_size(n);
    struct nub_free_blk *prev = NULL;
    for (struct nub_free_blk *f = need ? h->free_list : NULL; f != NULL; prev = f, f = f->next) {
        if (f->h.size < need)
            continue;
        struct blk *b = take(prev, f, need);
        b->tag = tag_for(b, TAG_USED);
        b->req = (uint32_t)n;
        count_alloc(&h->stats, n);
        return (uint8_t *)b + HDR_SIZE;
    }
    h->stats.failed_allocs++;
    return NULL;
}

/* The header of live allocation p; aborts on anything else. */
static struct blk *checked_block(const void *p, const char *op)
{
    struct nub_heap *h = heap();
    uintptr_t a = (uintptr_t)p;
    if (a < h->start + HDR_SIZE || a >= h->end || (a - h->start) % 16u != 0)
        nub_abort(NUB_GUEST_ABORT_HEAP, "%s: %p is not a heap pointer", op, p);
    struct blk *b = (struct blk *)(a - HDR_SIZE);
    if (b->tag == tag_for(b, TAG_FREE))
        nub_abort(NUB_GUEST_ABORT_HEAP, "%s: double free of %p", op, p);
    if (b->tag != tag_for(b, TAG_USED) || b->size < MIN_BLOCK || b->size % 16u != 0 ||
        b->size > h->end - (uintptr_t)b)
        nub_abort(NUB_GUEST_ABORT_HEAP, "%s: %p is not an allocated block (heap corrupt?)", op, p);
    return b;
}

/* Put block b on the free list and merge it with free neighbours. */
static void release(struct blk *b)
{
    struct nub_heap *h = heap();
    struct nub_free_blk *f = (struct nub_free_blk *)b, *prev = NULL, *next = h->free_list;
    while (next != NULL && next < f) {
        prev = next;
        next = next->next;
    }
    f->h.tag = tag_for(f, TAG_FREE);
    f->h.req = 0;
    f->next = next;
    if (next != NULL && (uintptr_t)f + f->h.size == (uintptr_t)next) {
        f->h.size += next->h.size;
        f->next = next->next;
    }
    if (prev == NULL) {
        h->free_list = f;
    } else if ((uintptr_t)prev + prev->h.size == (uintptr_t)f) {
        prev->h.size += f->h.size;
        prev->next = f->next;
    } else {
        prev->next = f;
    }
}

void nub_free(void *p)
{
    if (p == NULL)
        return;
    struct blk *b = checked_block(p, "free");
    struct nub_heap_stats *st = &heap()->stats;
    st->frees++;
    st->bytes_in_use -= b->req;
    release(b);
}

void *nub_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        heap()->stats.failed_allocs++;
        return NULL;
    }
    void *p = nub_malloc(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

/* Split the tail of used block b beyond `need` bytes off as a free block. */
static void trim(struct blk *b, uint64_t need)
{
    if (b->size - need < MIN_BLOCK)
        return;
    struct blk *tail = (struct blk *)((uintptr_t)b + need);
    tail->size = b->size - need;
    b->size = need;
    release(tail);
}

/* Grow used block b in place into a free successor if that gives `need` bytes. */
static int grow_in_place(struct blk *b, uint64_t need)
{
    struct nub_heap *h = heap();
    struct nub_free_blk *next = (struct nub_free_blk *)((uintptr_t)b + b->size);
    if ((uintptr_t)next >= h->end || next->h.tag != tag_for(next, TAG_FREE) ||
        b->size + next->h.size < need)
        return 0;
    struct nub_free_blk *prev = NULL;
    for (struct nub_free_blk *f = h->free_list; f != next; prev = f, f = f->next) {
        if (f == NULL || f > next)
            nub_abort(NUB_GUEST_ABORT_HEAP, "realloc: free block %p missing from the free list", (void *)next);
    }
    take(prev, next, next->h.size); /* unlink it whole */
    b->size += next->h.size;
    trim(b, need);
    return 1;
}

void *nub_realloc(void *p, size_t n)
{
    if (p == NULL)
        return nub_malloc(n);
    if (n == 0) {
        nub_free(p);
        return NULL;
    }
    struct blk *b = checked_block(p, "realloc");
    uint64_t need = block_size(n);
    struct nub_heap_stats *st = &heap()->stats;
    if (need != 0 && (need <= b->size || grow_in_place(b, need))) {
        trim(b, need);
        st->bytes_in_use = st->bytes_in_use - b->req + n;
        if (st->bytes_in_use > st->peak_in_use)
            st->peak_in_use = st->bytes_in_use;
        b->req = (uint32_t)n;
        return p;
    }
    void *q = nub_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, b->req < n ? b->req : n);
    nub_free(p);
    return q;
}

size_t nub_malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    return (size_t)(checked_block(p, "malloc_usable_size")->size - HDR_SIZE);
}

void nub_heap_stats(struct nub_heap_stats *out)
{
    *out = heap()->stats;
}

/* Walk every block; returns the number of free blocks, or -1. */
static int64_t check_blocks(uint64_t *in_use)
{
    struct nub_heap *h = heap();
    int64_t nfree = 0;
    *in_use = 0;
    for (uintptr_t a = h->start; a < h->end;) {
        const struct blk *b = (const struct blk *)a;
        if (b->size < MIN_BLOCK || b->size % 16u != 0 || b->size > h->end - a)
            return -1;
        if (b->tag == tag_for(b, TAG_FREE))
            nfree++;
        else if (b->tag == tag_for(b, TAG_USED))
            *in_use += b->req;
        else
            return -1;
        a += b->size;
    }
    return nfree;
}

/* Walk the free list; returns its length, or -1. */
static int64_t check_free_list(void)
{
    struct nub_heap *h = heap();
    int64_t n = 0;
    uintptr_t last_end = 0;
    for (const struct nub_free_blk *f = h->free_list; f != NULL; f = f->next, n++) {
        uintptr_t a = (uintptr_t)f;
        if (a < h->start || a >= h->end || a % 16u != 0 || a <= last_end ||
            f->h.tag != tag_for(f, TAG_FREE))
            return -1; /* out of range, unsorted or not coalesced with its predecessor */
        last_end = a + f->h.size;
    }
    return n;
}

int nub_heap_check(void)
{
    uint64_t in_use;
    int64_t blocks = check_blocks(&in_use);
    if (blocks < 0)
        return -1;
    if (check_free_list() != blocks)
        return -2;
    if (in_use != heap()->stats.bytes_in_use)
        return -3;
    return 0;
}

void *malloc(size_t size)
{
    return nub_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    return nub_calloc(n, size);
}

void *realloc(void *ptr, size_t size)
{
    return nub_realloc(ptr, size);
}

void free(void *ptr)
{
    nub_free(ptr);
}
