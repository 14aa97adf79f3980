/* nub vmem: page tables held in a byte buffer, bounds-checked table access ops and error names. */
#include <nub/vmem.h>

#include "checked.h"

#define BUF_TABLE 4096u

/* Offset of an n-byte, n-aligned entry at pa inside b, or false if any
 * byte of it lies outside the buffer. */
static bool buf_off(const struct nub_vmem_buf *b, uint64_t pa, unsigned n,
                    uint64_t *off)
{
    if (b == NULL || b->mem == NULL || (pa & (n - 1)) != 0 || pa < b->base_pa)
        return false;
    uint64_t o = pa - b->base_pa;
    if (b->cap < n || o > b->cap - n)
        return false;
    *off = o;
    return true;
}

static uint64_t load_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static void store_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static int buf_read64(void *ctx, uint64_t pa, uint64_t *val)
{
    const struct nub_vmem_buf *b = ctx;
    uint64_t off;
    if (!buf_off(b, pa, 8, &off))
        return NUB_VMEM_E_ACCESS;
    *val = load_le(b->mem + off, 8);
    return NUB_VMEM_OK;
}

static int buf_write64(void *ctx, uint64_t pa, uint64_t val)
{
    struct nub_vmem_buf *b = ctx;
    uint64_t off;
    if (!buf_off(b, pa, 8, &off))
        return NUB_VMEM_E_ACCESS;
    store_le(b->mem + off, val, 8);
    return NUB_VMEM_OK;
}

static int buf_read32(void *ctx, uint64_t pa, uint32_t *val)
{
    const struct nub_vmem_buf *b = ctx;
    uint64_t off;
    if (!buf_off(b, pa, 4, &off))
        return NUB_VMEM_E_ACCESS;
    *val = (uint32_t)load_le(b->mem + off, 4);
    return NUB_VMEM_OK;
}

static int buf_write32(void *ctx, uint64_t pa, uint32_t val)
{
    struct nub_vmem_buf *b = ctx;
    uint64_t off;
    if (!buf_off(b, pa, 4, &off))
        return NUB_VMEM_E_ACCESS;
    store_le(b->mem + off, val, 4);
    return NUB_VMEM_OK;
}

int nub_vmem_buf_alloc(struct nub_vmem_buf *b, uint64_t *pa)
{
    if (b == NULL || pa == NULL || b->mem == NULL)
        return NUB_VMEM_E_INVAL;
    /* Keep tables page aligned even if someone set `used` oddly. */
    uint64_t start = (b->used + (BUF_TABLE - 1)) & ~(uint64_t)(BUF_TABLE - 1);
    if (start < b->used || b->cap < BUF_TABLE || start > b->cap - BUF_TABLE)
        return NUB_VMEM_E_NOMEM;
    uint8_t *t = b->mem + start;
    for (unsigned i = 0; i < BUF_TABLE; i++)
        t[i] = 0;
    b->used = start + BUF_TABLE;
    *pa = b->base_pa + start;
    return NUB_VMEM_OK;
}

static int buf_alloc(void *ctx, uint64_t *pa)
{
    return nub_vmem_buf_alloc(ctx, pa);
}

void nub_vmem_buf_attach(struct nub_vmem_buf *b, void *mem, uint64_t base_pa,
                         uint64_t cap)
{
    if (b == NULL)
        return;
    b->mem = mem;
    b->base_pa = base_pa;
    b->cap = mem == NULL ? 0 : cap;
    b->used = b->cap;
}

int nub_vmem_buf_init(struct nub_vmem_buf *b, void *mem, uint64_t base_pa,
                      uint64_t cap, uint64_t *root)
{
    if (b == NULL || (mem == NULL && cap > 0))
        return NUB_VMEM_E_INVAL;
    if ((base_pa & (BUF_TABLE - 1)) != 0)
        return NUB_VMEM_E_ALIGN;
    uint64_t last;
    if (cap > 0 && !nub_add_u64(base_pa, cap - 1, &last))
        return NUB_VMEM_E_RANGE;
    b->mem = mem;
    b->base_pa = base_pa;
    b->cap = cap;
    b->used = 0;
    if (mem == NULL)
        return NUB_VMEM_E_NOMEM;
    uint64_t r;
    int rc = nub_vmem_buf_alloc(b, &r);
    if (rc == NUB_VMEM_OK && root != NULL)
        *root = r;
    return rc;
}

struct nub_vmem_ops nub_vmem_buf_ops(struct nub_vmem_buf *b, uint64_t root)
{
    struct nub_vmem_ops o = {
        .ctx = b,
        .read = buf_read64,
        .write = buf_write64,
        .alloc = buf_alloc,
        .root = root,
    };
    return o;
}

struct nub_vmem32_ops nub_vmem_buf_ops32(struct nub_vmem_buf *b, uint64_t root)
{
    struct nub_vmem32_ops o = {
        .ctx = b,
        .read = buf_read32,
        .write = buf_write32,
        .alloc = buf_alloc,
        .root = root,
    };
    return o;
}

const char *nub_vmem_err_name(int err)
{
    switch (err) {
    case NUB_VMEM_OK: return "NUB_VMEM_OK";
    case NUB_VMEM_E_ALIGN: return "NUB_VMEM_E_ALIGN";
    case NUB_VMEM_E_RANGE: return "NUB_VMEM_E_RANGE";
    case NUB_VMEM_E_OVERLAP: return "NUB_VMEM_E_OVERLAP";
    case NUB_VMEM_E_NOMEM: return "NUB_VMEM_E_NOMEM";
    case NUB_VMEM_E_ACCESS: return "NUB_VMEM_E_ACCESS";
    case NUB_VMEM_E_UNMAPPED: return "NUB_VMEM_E_UNMAPPED";
    case NUB_VMEM_E_LIMIT: return "NUB_VMEM_E_LIMIT";
    case NUB_VMEM_E_INVAL: return "NUB_VMEM_E_INVAL";
    default: return "NUB_VMEM_E_?";
    }
}
