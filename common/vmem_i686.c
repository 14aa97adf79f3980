/* nub vmem: i686 non-PAE 2-level page tables (4 KiB and 4 MiB PSE pages): map and translate. */
#include <nub/vmem.h>

#define ENTRIES32 1024u
#define MAP_FLAGS32 (NUB_VMEM_R | NUB_VMEM_W | NUB_VMEM_X | NUB_VMEM_USER | NUB_VMEM_LARGE)
#define SPACE32 (1ull << 32)

#define P32    0x001u
#define RW32   0x002u
#define US32   0x004u
#define PS32   0x080u
#define ADDR32 0xfffff000u
#define LARGE_ADDR32 0xffc00000u

/* Level 0 = page directory (bits 31..22), 1 = page table (bits 21..12). */
static unsigned shift32(int level)
{
    return level == 0 ? 22u : 12u;
}

static uint64_t entry_addr32(uint64_t table, uint64_t va, int level)
{
    return table + ((va >> shift32(level)) & (ENTRIES32 - 1)) * 4u;
}

static uint32_t perm32(uint32_t e)
{
    uint32_t p = NUB_VMEM_R | NUB_VMEM_X;
    if (e & RW32)
        p |= NUB_VMEM_W;
    if (e & US32)
        p |= NUB_VMEM_USER;
    return p;
}

static uint32_t leaf32(uint64_t pa, uint32_t flags, bool large)
{
    uint32_t e = (uint32_t)pa | P32;
    if (flags & NUB_VMEM_W)
        e |= RW32;
    if (flags & NUB_VMEM_USER)
        e |= US32;
    if (large)
        e |= PS32;
    return e;
}

static uint32_t inter32(bool user)
{
    return P32 | RW32 | (user ? US32 : 0);
}

static int rd32(const struct nub_vmem32_ops *o, uint64_t pa, uint32_t *e)
{
    return o->read(o->ctx, pa, e) == 0 ? NUB_VMEM_OK : NUB_VMEM_E_ACCESS;
}

static int wr32(const struct nub_vmem32_ops *o, uint64_t pa, uint32_t e)
{
    return o->write(o->ctx, pa, e) == 0 ? NUB_VMEM_OK : NUB_VMEM_E_ACCESS;
}

/* ---- map: check, then create tables, then write leaves --------------- */

enum map32_mode { MAP32_CHECK, MAP32_TABLES, MAP32_LEAVES };

struct map32_req {
    const struct nub_vmem32_ops *ops;
    uint64_t va;
    uint64_t pa;
    uint32_t flags;
    enum map32_mode mode;
};

static int map32_leaf(const struct map32_req *r, uint64_t eaddr, uint32_t e,
                      uint64_t pa, bool large)
{
    if (e & P32)
        return NUB_VMEM_E_OVERLAP;
    if (r->mode != MAP32_LEAVES)
        return NUB_VMEM_OK;
    return wr32(r->ops, eaddr, leaf32(pa, r->flags, large));
}

/* Map [va, last] (inside one 4 MiB block) into the page table at `table`. */
static int map32_pt(const struct map32_req *r, uint64_t table, uint64_t va,
                    uint64_t last)
{
    for (uint64_t cur = va; cur <= last; cur += NUB_VMEM_PAGE_SIZE) {
        uint64_t ea = entry_addr32(table, cur, 1);
        uint32_t e;
        int rc = rd32(r->ops, ea, &e);
        if (rc == NUB_VMEM_OK)
            rc = map32_leaf(r, ea, e, r->pa + (cur - r->va), false);
        if (rc != NUB_VMEM_OK)
            return rc;
    }
    return NUB_VMEM_OK;
}

/* Get (or, in the tables pass, create) the page table under PDE e at ea. */
static int map32_table(const struct map32_req *r, uint64_t ea, uint32_t *e)
{
    bool user = (r->flags & NUB_VMEM_USER) != 0;
    if (*e & P32) {
        uint32_t wide = *e | inter32(user);
        if (r->mode != MAP32_TABLES || wide == *e)
            return NUB_VMEM_OK;
        *e = wide;
        return wr32(r->ops, ea, wide);
    }
    if (r->mode == MAP32_LEAVES)
        return NUB_VMEM_E_ACCESS; /* the tables pass made it */
    uint64_t t;
    if (r->ops->alloc == NULL || r->ops->alloc(r->ops->ctx, &t) != 0)
        return NUB_VMEM_E_NOMEM;
    if ((t & ~(uint64_t)ADDR32) != 0)
        return NUB_VMEM_E_ACCESS;
    *e = (uint32_t)t | inter32(user);
    return wr32(r->ops, ea, *e);
}

static int map32_pde(const struct map32_req *r, uint64_t va, uint64_t last)
{
    uint64_t ea = entry_addr32(r->ops->root, va, 0);
    uint64_t pa = r->pa + (va - r->va);
    uint64_t mask = NUB_VMEM32_LARGE_SIZE - 1;
    uint32_t e;
    int rc = rd32(r->ops, ea, &e);
    if (rc != NUB_VMEM_OK)
        return rc;
    if ((e & P32) && (e & PS32))
        return NUB_VMEM_E_OVERLAP;
    if (!(e & P32) && (r->flags & NUB_VMEM_LARGE) && (va & mask) == 0 &&
        last - va == mask && (pa & mask) == 0)
        return map32_leaf(r, ea, e, pa, true);
    if (!(e & P32) && r->mode == MAP32_CHECK)
        return NUB_VMEM_OK; /* no table: all free */
    rc = map32_table(r, ea, &e);
    if (rc != NUB_VMEM_OK || r->mode == MAP32_TABLES)
        return rc;
    return map32_pt(r, e & ADDR32, va, last);
}

static int map32_args(const struct nub_vmem32_ops *ops, uint64_t va, uint64_t pa,
                      uint64_t len, uint32_t flags)
{
    if (ops == NULL || ops->read == NULL || ops->write == NULL ||
        (ops->root & ~(uint64_t)ADDR32) != 0 || (flags & ~MAP_FLAGS32) != 0)
        return NUB_VMEM_E_INVAL;
    if ((va | pa | len) & (NUB_VMEM_PAGE_SIZE - 1))
        return NUB_VMEM_E_ALIGN;
    if (len == 0 || len > SPACE32 - va || pa > SPACE32 || len > SPACE32 - pa)
        return NUB_VMEM_E_RANGE;
    return NUB_VMEM_OK;
}

int nub_vmem32_map(const struct nub_vmem32_ops *ops, uint32_t va, uint64_t pa,
                   uint64_t len, uint32_t flags)
{
    int rc = map32_args(ops, va, pa, len, flags);
    if (rc != NUB_VMEM_OK)
        return rc;
    struct map32_req r = { .ops = ops, .va = va, .pa = pa, .flags = flags };
    uint64_t last = (uint64_t)va + (len - 1);
    static const enum map32_mode modes[] = { MAP32_CHECK, MAP32_TABLES, MAP32_LEAVES };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        r.mode = modes[i];
        for (uint64_t cur = va; cur <= last;) {
            uint64_t end = cur | (NUB_VMEM32_LARGE_SIZE - 1);
            uint64_t slast = end < last ? end : last;
            rc = map32_pde(&r, cur, slast);
            if (rc != NUB_VMEM_OK)
                return rc;
            cur = slast + 1;
        }
    }
    return NUB_VMEM_OK;
}

/* ---- translate ------------------------------------------------------ */

int nub_vmem32_virt_to_phys(const struct nub_vmem32_ops *ops, uint32_t va,
                            uint64_t *pa, uint32_t *flags)
{
    if (ops == NULL || ops->read == NULL || (ops->root & ~(uint64_t)ADDR32) != 0)
        return NUB_VMEM_E_INVAL;
    uint32_t pde, pte;
    if (rd32(ops, entry_addr32(ops->root, va, 0), &pde) != NUB_VMEM_OK ||
        !(pde & P32))
        return NUB_VMEM_E_UNMAPPED;
    uint64_t base;
    uint32_t perm = perm32(pde), big = 0;
    if (pde & PS32) {
        base = (pde & LARGE_ADDR32) | (va & (NUB_VMEM32_LARGE_SIZE - 1));
        big = NUB_VMEM_LARGE;
    } else {
        if (rd32(ops, entry_addr32(pde & ADDR32, va, 1), &pte) != NUB_VMEM_OK ||
            !(pte & P32))
            return NUB_VMEM_E_UNMAPPED;
        perm &= perm32(pte);
        base = (pte & ADDR32) | (va & (NUB_VMEM_PAGE_SIZE - 1));
    }
    if (pa != NULL)
        *pa = base;
    if (flags != NULL)
        *flags = perm | big;
    return NUB_VMEM_OK;
}
