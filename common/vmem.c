/* nub vmem: amd64 4-level page tables: map, translate, run walker, multi-root walker and linker. */
#include <nub/vmem.h>

#include "checked.h"

#define LEVELS  4
#define ENTRIES 512u
#define PERM_ALL (NUB_VMEM_R | NUB_VMEM_W | NUB_VMEM_X | NUB_VMEM_USER)
#define MAP_FLAGS (PERM_ALL | NUB_VMEM_LARGE)

#define E_P    NUB_VMEM_PTE_P
#define E_RW   NUB_VMEM_PTE_RW
#define E_US   NUB_VMEM_PTE_US
#define E_PS   NUB_VMEM_PTE_PS
#define E_NX   NUB_VMEM_PTE_NX
#define E_ADDR NUB_VMEM_PTE_ADDR

/* ---- address arithmetic --------------------------------------------- */

/* Level 0 = PML4 (bits 47..39), 1 = PDPT, 2 = PD, 3 = PT (bits 20..12). */
static unsigned lvl_shift(int level)
{
    return 39u - 9u * (unsigned)level;
}

/* Bytes of VA one entry at `level` covers. */
static uint64_t lvl_size(int level)
{
    return 1ull << lvl_shift(level);
}

static uint64_t entry_addr(uint64_t table, uint64_t va, int level)
{
    return table + ((va >> lvl_shift(level)) & (ENTRIES - 1)) * 8u;
}

static bool canonical(uint64_t va)
{
    uint64_t top = va >> 47;
    return top == 0 || top == 0x1ffffu;
}

static uint64_t sign_extend(uint64_t va)
{
    return (va & (1ull << 47)) ? (va | 0xffff000000000000ull) : va;
}

/* ---- entries -------------------------------------------------------- */

static bool present(uint64_t e)
{
    return (e & E_P) != 0;
}

/* A PS bit in a PML4 entry is reserved: the CPU faults, we call it absent. */
static bool malformed(uint64_t e, int level)
{
    return level == 0 && (e & E_PS) != 0;
}

static bool is_leaf(uint64_t e, int level)
{
    return level == LEVELS - 1 || ((level == 1 || level == 2) && (e & E_PS) != 0);
}

static uint64_t leaf_base(uint64_t e, int level)
{
    return e & E_ADDR & ~(lvl_size(level) - 1);
}

/* Permissions one entry allows, as NUB_VMEM_* flags. */
static uint32_t entry_perm(uint64_t e)
{
    uint32_t p = NUB_VMEM_R;
    if (e & E_RW)
        p |= NUB_VMEM_W;
    if (e & E_US)
        p |= NUB_VMEM_USER;
    if (!(e & E_NX))
        p |= NUB_VMEM_X;
    return p;
}

static uint64_t make_leaf(uint64_t pa, uint32_t flags, bool large)
{
    uint64_t e = pa | E_P;
    if (flags & NUB_VMEM_W)
        e |= E_RW;
    if (flags & NUB_VMEM_USER)
        e |= E_US;
    if (!(flags & NUB_VMEM_X))
        e |= E_NX;
    if (large)
        e |= E_PS;
    return e;
}

/* Intermediate entry bits: permissive, so the leaf decides. */
static uint64_t inter_bits(bool user)
{
    return E_P | E_RW | (user ? E_US : 0);
}

static uint64_t widen_inter(uint64_t e, bool user)
{
    return (e | inter_bits(user)) & ~E_NX;
}

static int rd(const struct nub_vmem_ops *o, uint64_t pa, uint64_t *e)
{
    return o->read(o->ctx, pa, e) == 0 ? NUB_VMEM_OK : NUB_VMEM_E_ACCESS;
}

static int wr(const struct nub_vmem_ops *o, uint64_t pa, uint64_t e)
{
    return o->write(o->ctx, pa, e) == 0 ? NUB_VMEM_OK : NUB_VMEM_E_ACCESS;
}

/* Allocate a table and install it in the (absent) entry at eaddr. */
static int new_table(const struct nub_vmem_ops *o, uint64_t eaddr, bool user,
                     uint64_t *e)
{
    uint64_t t;
    if (o->alloc == NULL || o->alloc(o->ctx, &t) != 0)
        return NUB_VMEM_E_NOMEM;
    if ((t & ~E_ADDR) != 0)
        return NUB_VMEM_E_ACCESS;
    *e = t | inter_bits(user);
    return wr(o, eaddr, *e);
}

/* ---- map ------------------------------------------------------------ */

/* map runs three passes: check everything, create tables, write leaves. */
enum map_mode { MAP_CHECK, MAP_TABLES, MAP_LEAVES };

struct map_req {
    const struct nub_vmem_ops *ops;
    uint64_t va;
    uint64_t pa;
    uint32_t flags;
    enum map_mode mode;
};

static int map_range(const struct map_req *r, uint64_t table, int level,
                     uint64_t va, uint64_t last);

static int map_leaf(const struct map_req *r, uint64_t eaddr, uint64_t e,
                    uint64_t pa, bool large)
{
    if (present(e))
        return NUB_VMEM_E_OVERLAP;
    if (r->mode != MAP_LEAVES)
        return NUB_VMEM_OK;
    return wr(r->ops, eaddr, make_leaf(pa, r->flags, large));
}

static bool fits_large(const struct map_req *r, int level, uint64_t va,
                       uint64_t last, uint64_t pa)
{
    uint64_t mask = NUB_VMEM_LARGE_SIZE - 1;
    return (r->flags & NUB_VMEM_LARGE) && level == 2 && (va & mask) == 0 &&
           last - va == mask && (pa & mask) == 0;
}

/* Descend through the intermediate entry e at eaddr into [va, last]. */
static int map_down(const struct map_req *r, uint64_t eaddr, uint64_t e,
                    int level, uint64_t va, uint64_t last)
{
    bool user = (r->flags & NUB_VMEM_USER) != 0;
    int rc = NUB_VMEM_OK;
    if (!present(e)) {
        if (r->mode == MAP_CHECK)
            return NUB_VMEM_OK; /* nothing below: all free */
        if (r->mode == MAP_LEAVES)
            return NUB_VMEM_E_ACCESS; /* the tables pass made it */
        rc = new_table(r->ops, eaddr, user, &e);
    } else if (r->mode == MAP_TABLES && widen_inter(e, user) != e) {
        e = widen_inter(e, user);
        rc = wr(r->ops, eaddr, e);
    }
    if (rc != NUB_VMEM_OK)
        return rc;
    return map_range(r, e & E_ADDR, level + 1, va, last);
}

static int map_entry(const struct map_req *r, uint64_t eaddr, int level,
                     uint64_t va, uint64_t last)
{
    uint64_t e;
    if (rd(r->ops, eaddr, &e) != NUB_VMEM_OK)
        return NUB_VMEM_E_ACCESS;
    uint64_t pa = r->pa + (va - r->va);
    if (level == LEVELS - 1)
        return map_leaf(r, eaddr, e, pa, false);
    if (present(e) && malformed(e, level))
        return NUB_VMEM_E_ACCESS;
    if (present(e) && is_leaf(e, level))
        return NUB_VMEM_E_OVERLAP;
    if (!present(e) && fits_large(r, level, va, last, pa))
        return map_leaf(r, eaddr, e, pa, true);
    return map_down(r, eaddr, e, level, va, last);
}

/* Visit every entry of `table` (at `level`) that [va, last] touches. */
static int map_range(const struct map_req *r, uint64_t table, int level,
                     uint64_t va, uint64_t last)
{
    uint64_t size = lvl_size(level);
    for (uint64_t cur = va;;) {
        uint64_t end = cur | (size - 1);
        uint64_t slast = end < last ? end : last;
        int rc = map_entry(r, entry_addr(table, cur, level), level, cur, slast);
        if (rc != NUB_VMEM_OK)
            return rc;
        if (slast == last)
            return NUB_VMEM_OK;
        cur = slast + 1;
    }
}

static bool ops_ok(const struct nub_vmem_ops *o, bool writing)
{
    if (o == NULL || o->read == NULL || (o->root & ~E_ADDR) != 0)
        return false;
    return !writing || o->write != NULL;
}

static int map_args(const struct nub_vmem_ops *ops, uint64_t va, uint64_t pa,
                    uint64_t len, uint32_t flags)
{
    if (!ops_ok(ops, true) || (flags & ~MAP_FLAGS) != 0)
        return NUB_VMEM_E_INVAL;
    uint64_t mask = NUB_VMEM_PAGE_SIZE - 1;
    if ((va | pa | len) & mask)
        return NUB_VMEM_E_ALIGN;
    uint64_t last;
    if (len == 0 || !nub_add_u64(va, len - 1, &last))
        return NUB_VMEM_E_RANGE;
    if (!canonical(va) || !canonical(last) || (va >> 47) != (last >> 47))
        return NUB_VMEM_E_RANGE;
    if (pa >= NUB_VMEM_PA_LIMIT || !nub_range_inside(pa, len, NUB_VMEM_PA_LIMIT))
        return NUB_VMEM_E_RANGE;
    return NUB_VMEM_OK;
}

int nub_vmem_map(const struct nub_vmem_ops *ops, uint64_t va, uint64_t pa,
                 uint64_t len, uint32_t flags)
{
    int rc = map_args(ops, va, pa, len, flags);
    if (rc != NUB_VMEM_OK)
        return rc;
    struct map_req r = { .ops = ops, .va = va, .pa = pa, .flags = flags };
    static const enum map_mode modes[] = { MAP_CHECK, MAP_TABLES, MAP_LEAVES };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        r.mode = modes[i];
        rc = map_range(&r, ops->root, 0, va, va + (len - 1));
        if (rc != NUB_VMEM_OK)
            return rc;
    }
    return NUB_VMEM_OK;
}

/* ---- translate ------------------------------------------------------ */

int nub_vmem_virt_to_phys(const struct nub_vmem_ops *ops, uint64_t va,
                          uint64_t *pa, uint32_t *flags)
{
    if (!ops_ok(ops, false))
        return NUB_VMEM_E_INVAL;
    if (!canonical(va))
        return NUB_VMEM_E_RANGE;
    uint64_t table = ops->root;
    uint32_t perm = PERM_ALL;
    for (int level = 0; level < LEVELS; level++) {
        uint64_t e;
        if (rd(ops, entry_addr(table, va, level), &e) != NUB_VMEM_OK ||
            !present(e) || malformed(e, level))
            return NUB_VMEM_E_UNMAPPED;
        perm &= entry_perm(e);
        if (is_leaf(e, level)) {
            uint64_t off = va & (lvl_size(level) - 1);
            if (pa != NULL)
                *pa = leaf_base(e, level) | off;
            if (flags != NULL)
                *flags = perm | (level == 1 ? NUB_VMEM_HUGE : 0) |
                         (level == 2 ? NUB_VMEM_LARGE : 0);
            return NUB_VMEM_OK;
        }
        table = e & E_ADDR;
    }
    return NUB_VMEM_E_UNMAPPED; /* not reached: level 3 is always a leaf */
}

/* ---- sizing --------------------------------------------------------- */

static uint64_t blocks(uint64_t va, uint64_t last, int level)
{
    return (last >> lvl_shift(level)) - (va >> lvl_shift(level)) + 1;
}

int nub_vmem_tables_bound(const struct nub_vmem_range *ranges, size_t n,
                          uint64_t *pages)
{
    if ((ranges == NULL && n > 0) || pages == NULL)
        return NUB_VMEM_E_INVAL;
    uint64_t total = 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t va = ranges[i].va, len = ranges[i].len;
        uint64_t last;
        if (len == 0 || !nub_add_u64(va, len - 1, &last))
            return NUB_VMEM_E_RANGE;
        for (int level = 0; level < LEVELS - 1; level++)
            if (!nub_add_u64(total, blocks(va, last, level), &total))
                return NUB_VMEM_E_RANGE;
    }
    *pages = total;
    return NUB_VMEM_OK;
}

/* ---- walker: visited-table set -------------------------------------- */

static size_t seen_slot(const struct nub_vmem_walk *w, uint64_t pa, unsigned depth)
{
    uint64_t h = ((pa >> 12) ^ ((uint64_t)depth << 60)) * 0x9e3779b97f4a7c15ull;
    return (size_t)((h ^ (h >> 31)) % w->seen_cap);
}

/* The slot holding (pa, depth), or the first free one on its probe path
 * (NULL if the set is full and it is not there). */
static struct nub_vmem_seen *seen_lookup(struct nub_vmem_walk *w, uint64_t pa,
                                         unsigned depth)
{
    if (w->seen == NULL || w->seen_cap == 0)
        return NULL;
    size_t i = seen_slot(w, pa, depth);
    for (size_t n = 0; n < w->seen_cap; n++) {
        struct nub_vmem_seen *s = &w->seen[i];
        if (!s->used || (s->pa == pa && s->depth == depth))
            return s;
        i = i + 1 == w->seen_cap ? 0 : i + 1;
    }
    return NULL;
}

/* ---- walker: table walk, one leaf or reference at a time ------------ */

static uint64_t walk_va(const struct nub_vmem_walk *w, int level)
{
    uint64_t va = 0;
    for (int l = 0; l <= level; l++)
        va |= (uint64_t)w->idx[l] << lvl_shift(l);
    return sign_extend(va);
}

static int walk_read(struct nub_vmem_walk *w, uint64_t pa, uint64_t *e)
{
    if (w->budget == 0)
        return NUB_VMEM_E_LIMIT;
    w->budget--;
    return rd(&w->ops, pa, e) == NUB_VMEM_OK ? 1 : 0;
}

static void walk_enter(struct nub_vmem_walk *w, int level, uint64_t table,
                       uint8_t path)
{
    w->level = level;
    w->table[level] = table;
    w->idx[level] = 0;
    w->path[level] = path;
}

static void emit_ref(struct nub_vmem_walk *w, struct nub_vmem_item *ev,
                     const struct nub_vmem_seen *s, unsigned depth, uint64_t va)
{
    ev->kind = NUB_VMEM_ITEM_REF;
    ev->space = (uint32_t)w->space;
    ev->ref.depth = depth;
    ev->ref.owner = s->space;
    ev->ref.our_va = va;
    ev->ref.their_va = s->va;
}

/* Step into the table `child` at `depth`, or emit a reference to it.
 * Returns 1 with *ev, 0 to keep walking, or a negative error. */
static int walk_child(struct nub_vmem_walk *w, struct nub_vmem_item *ev,
                      uint64_t child, unsigned depth, uint64_t va, uint8_t path)
{
    uint64_t probe;
    int rc = walk_read(w, child, &probe);
    if (rc <= 0)
        return rc; /* unbacked table: absent */
    struct nub_vmem_seen *s = seen_lookup(w, child, depth);
    if (s != NULL && s->used) {
        if (s->space < w->space && s->path == path) {
            emit_ref(w, ev, s, depth, va);
            return 1;
        }
    } else if (w->space + 1 < w->nroots) {
        if (s == NULL)
            return NUB_VMEM_E_NOMEM;
        *s = (struct nub_vmem_seen){ .pa = child, .va = va, .used = 1,
                                     .space = (uint32_t)w->space,
                                     .depth = (uint8_t)depth, .path = path };
    }
    walk_enter(w, (int)depth, child, path);
    return 0;
}

/* Look at the current entry.  Returns 1 with *ev, 0 to keep walking, or a
 * negative error.  The entry index advances unless we stepped down. */
static int walk_entry(struct nub_vmem_walk *w, struct nub_vmem_item *ev)
{
    int level = w->level;
    uint64_t e;
    int rc = walk_read(w, w->table[level] + (uint64_t)w->idx[level] * 8u, &e);
    if (rc <= 0 || !present(e) || malformed(e, level)) {
        w->idx[level]++;
        return rc < 0 ? rc : 0;
    }
    uint64_t va = walk_va(w, level);
    uint8_t path = (uint8_t)(w->path[level] & entry_perm(e));
    if (is_leaf(e, level)) {
        ev->kind = NUB_VMEM_ITEM_RUN;
        ev->space = (uint32_t)w->space;
        ev->run = (struct nub_vmem_run){ .va = va, .pa = leaf_base(e, level),
                                         .len = lvl_size(level), .flags = path };
        w->idx[level]++;
        return 1;
    }
    rc = walk_child(w, ev, e & E_ADDR, (unsigned)level + 1, va, path);
    if (rc != 0 || w->level == level)
        w->idx[level]++;
    return rc;
}

/* Start the next root; 0 when there is none. */
static int walk_next_space(struct nub_vmem_walk *w)
{
    if (w->level == -2) {
        w->space = 0;
    } else {
        w->space++;
    }
    if (w->space >= w->nroots) {
        w->space = w->nroots;
        w->level = -1;
        return 0;
    }
    w->level = -1;
    /* A single-root walk (runs_init) has no roots array: use ops.root. */
    uint64_t root = w->roots != NULL ? w->roots[w->space] : w->ops.root;
    uint64_t probe;
    int rc = walk_read(w, root, &probe);
    if (rc < 0)
        return rc;
    if (rc > 0)
        walk_enter(w, 0, root, PERM_ALL);
    return 1;
}

/* Next leaf or reference in walk order: 1 with *ev, 0 at the end, <0 error. */
static int walk_step(struct nub_vmem_walk *w, struct nub_vmem_item *ev)
{
    for (;;) {
        if (w->level < 0) {
            if (w->space >= w->nroots && w->level == -1)
                return 0;
            int rc = walk_next_space(w);
            if (rc <= 0)
                return rc;
            continue;
        }
        if (w->idx[w->level] >= ENTRIES) {
            w->level--;
            if (w->level >= 0)
                w->idx[w->level]++;
            continue;
        }
        int rc = walk_entry(w, ev);
        if (rc != 0)
            return rc;
    }
}

/* ---- walker: coalescing and public API ------------------------------ */

static bool run_extends(const struct nub_vmem_item *a, const struct nub_vmem_item *b)
{
    return a->kind == NUB_VMEM_ITEM_RUN && b->kind == NUB_VMEM_ITEM_RUN &&
           a->space == b->space && a->run.flags == b->run.flags &&
           b->run.va - a->run.va == a->run.len && b->run.pa >= a->run.pa &&
           b->run.pa - a->run.pa == a->run.len;
}

/* Fetch the lookahead event.  1 if there is one, 0 at the end, <0 error. */
static int walk_peek(struct nub_vmem_walk *w)
{
    if (w->have_ev)
        return 1;
    int rc = walk_step(w, &w->ev);
    if (rc < 0)
        w->err = rc;
    w->have_ev = rc > 0;
    return rc;
}

int nub_vmem_spaces_next(struct nub_vmem_walk *w, struct nub_vmem_item *item)
{
    if (w == NULL || item == NULL)
        return NUB_VMEM_E_INVAL;
    while (w->err == NUB_VMEM_OK) {
        int rc = walk_peek(w);
        if (rc > 0 && w->have_pend && run_extends(&w->pend, &w->ev)) {
            w->pend.run.len += w->ev.run.len;
            w->have_ev = false;
            continue;
        }
        if (rc < 0 || w->have_pend) {
            if (!w->have_pend)
                return rc;
            *item = w->pend;
            w->have_pend = false;
            return 1; /* an error after it is reported on the next call */
        }
        if (rc == 0)
            return 0;
        w->have_ev = false;
        if (w->ev.kind == NUB_VMEM_ITEM_REF) {
            *item = w->ev;
            return 1;
        }
        w->pend = w->ev;
        w->have_pend = true;
    }
    return w->err;
}

static void walk_reset(struct nub_vmem_walk *w, const struct nub_vmem_ops *ops)
{
    *w = (struct nub_vmem_walk){ .budget = UINT64_MAX, .level = -2 };
    if (ops != NULL)
        w->ops = *ops;
}

int nub_vmem_spaces_init(struct nub_vmem_walk *w, const struct nub_vmem_ops *ops,
                         const uint64_t *roots, size_t n,
                         struct nub_vmem_seen *seen, size_t seen_cap)
{
    if (w == NULL)
        return NUB_VMEM_E_INVAL;
    walk_reset(w, ops);
    if (ops == NULL || ops->read == NULL || (roots == NULL && n > 0) ||
        (seen == NULL && seen_cap > 0) || n > UINT32_MAX) {
        w->err = NUB_VMEM_E_INVAL;
        return w->err;
    }
    w->roots = roots;
    w->nroots = n;
    w->seen = seen;
    w->seen_cap = seen_cap;
    for (size_t i = 0; i < seen_cap; i++)
        seen[i] = (struct nub_vmem_seen){ 0 };
    return NUB_VMEM_OK;
}

void nub_vmem_runs_init(struct nub_vmem_walk *w, const struct nub_vmem_ops *ops)
{
    if (w == NULL)
        return;
    if (nub_vmem_spaces_init(w, ops, NULL, 0, NULL, 0) == NUB_VMEM_OK)
        w->nroots = 1;
}

int nub_vmem_runs_next(struct nub_vmem_walk *w, struct nub_vmem_run *run)
{
    struct nub_vmem_item item;
    if (run == NULL)
        return NUB_VMEM_E_INVAL;
    int rc = nub_vmem_spaces_next(w, &item);
    if (rc > 0)
        *run = item.run; /* a single root yields no references */
    return rc;
}

void nub_vmem_walk_budget(struct nub_vmem_walk *w, uint64_t max_reads)
{
    if (w != NULL)
        w->budget = max_reads;
}

/* ---- linker (space_aware_map) --------------------------------------- */

/*
 * Find the entry at `slot_level` for va in the tree at root.  Levels above
 * must be tables: an absent one is created when `create` (USER added on the
 * way when `user`), else *eaddr = 0 is returned (the slot would be new).
 */
static int link_slot(const struct nub_vmem_ops *o, uint64_t root, uint64_t va,
                     int slot_level, bool create, bool user, uint64_t *eaddr)
{
    uint64_t table = root;
    for (int level = 0; level < slot_level; level++) {
        uint64_t ea = entry_addr(table, va, level), e;
        int rc = rd(o, ea, &e);
        if (rc == NUB_VMEM_OK && present(e) && malformed(e, level))
            rc = NUB_VMEM_E_ACCESS;
        else if (rc == NUB_VMEM_OK && present(e) && is_leaf(e, level))
            rc = NUB_VMEM_E_OVERLAP;
        else if (rc == NUB_VMEM_OK && !present(e) && !create) {
            *eaddr = 0;
            return NUB_VMEM_OK;
        } else if (rc == NUB_VMEM_OK && !present(e))
            rc = new_table(o, ea, user, &e);
        else if (rc == NUB_VMEM_OK && create && widen_inter(e, user) != e)
            rc = wr(o, ea, e = widen_inter(e, user));
        if (rc != NUB_VMEM_OK)
            return rc;
        table = e & E_ADDR;
    }
    *eaddr = entry_addr(table, va, slot_level);
    return NUB_VMEM_OK;
}

/* The owner's entry for their_va at slot_level, given a table if absent.
 * A large leaf there (the owner was rebuilt with NUB_VMEM_LARGE where the
 * original had a page table) is returned as is: copying it translates the
 * same, there is just no table to share. */
static int link_owner_entry(const struct nub_vmem_ops *o, uint64_t root,
                            uint64_t va, int slot_level, uint64_t *entry)
{
    uint64_t ea;
    int rc = link_slot(o, root, va, slot_level, true, false, &ea);
    if (rc == NUB_VMEM_OK)
        rc = rd(o, ea, entry);
    if (rc != NUB_VMEM_OK)
        return rc;
    if (present(*entry) && malformed(*entry, slot_level))
        return NUB_VMEM_E_ACCESS;
    if (!present(*entry))
        return new_table(o, ea, false, entry);
    return NUB_VMEM_OK;
}

static int link_args(const struct nub_vmem_ops *dst, const uint64_t *built,
                     size_t nbuilt, const struct nub_vmem_ref *ref)
{
    if (!ops_ok(dst, true) || built == NULL || ref == NULL ||
        ref->depth < 1 || ref->depth > 3 || ref->owner >= nbuilt ||
        built[ref->owner] == dst->root || (built[ref->owner] & ~E_ADDR) != 0)
        return NUB_VMEM_E_INVAL;
    if (!canonical(ref->our_va) || !canonical(ref->their_va))
        return NUB_VMEM_E_RANGE;
    uint64_t mask = lvl_size((int)ref->depth - 1) - 1;
    if ((ref->our_va & mask) != 0 || (ref->their_va & mask) != 0)
        return NUB_VMEM_E_ALIGN;
    return NUB_VMEM_OK;
}

int nub_vmem_link(const struct nub_vmem_ops *dst, const uint64_t *built,
                  size_t nbuilt, const struct nub_vmem_ref *ref)
{
    int rc = link_args(dst, built, nbuilt, ref);
    if (rc != NUB_VMEM_OK)
        return rc;
    int slot = (int)ref->depth - 1;
    uint64_t ea, e;
    /* Check our slot first, so a refusal changes nothing. */
    rc = link_slot(dst, dst->root, ref->our_va, slot, false, false, &ea);
    if (rc == NUB_VMEM_OK && ea != 0 && (rc = rd(dst, ea, &e)) == NUB_VMEM_OK &&
        present(e))
        rc = NUB_VMEM_E_OVERLAP;
    if (rc != NUB_VMEM_OK)
        return rc;
    uint64_t oe;
    rc = link_owner_entry(dst, built[ref->owner], ref->their_va, slot, &oe);
    if (rc == NUB_VMEM_OK)
        rc = link_slot(dst, dst->root, ref->our_va, slot, true,
                       (oe & E_US) != 0, &ea);
    if (rc == NUB_VMEM_OK)
        rc = wr(dst, ea, oe);
    return rc;
}

int nub_vmem_space_map(const struct nub_vmem_ops *dst, const uint64_t *built,
                       size_t nbuilt, const struct nub_vmem_item *item,
                       uint32_t extra_flags)
{
    if (item == NULL)
        return NUB_VMEM_E_INVAL;
    if (item->kind == NUB_VMEM_ITEM_RUN)
        return nub_vmem_map(dst, item->run.va, item->run.pa, item->run.len,
                            item->run.flags | extra_flags);
    if (item->kind == NUB_VMEM_ITEM_REF)
        return nub_vmem_link(dst, built, nbuilt, &item->ref);
    return NUB_VMEM_E_INVAL;
}
