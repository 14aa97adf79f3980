/* nub vmem: amd64 4-level and i686 2-level page tables over pluggable table access (freestanding). */
#ifndef NUB_VMEM_H
#define NUB_VMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nub/api.h"

#ifdef __cplusplus
extern "C" {
#endif

NUB_API_BEGIN

/*
 * Overview
 * --------
 * All table accesses go through `struct nub_vmem_ops` (amd64, 8-byte
 * entries) or `struct nub_vmem32_ops` (i686, 4-byte entries), so the host can
 * build tables in a byte buffer (`struct nub_vmem_buf`) and a guest can edit
 * its live tables with the same code.  Tables may be hostile guest memory:
 * every walk is bounded (at most 4 levels, 512 entries per table), an entry
 * whose table is not backed reads as not present, and walks can be given a
 * read budget.  No function keeps global state; none allocates memory except
 * through `ops->alloc`.
 *
 * Permissions are NUB_VMEM_* flags.  Readable is implied by present (R may be
 * passed or not; translations always report it).  The library allows W+X;
 * policy is the caller's.  Intermediate entries written by this library are
 * permissive (present|RW, USER when a user leaf lies below, never NX), so
 * the leaf alone decides the effective permissions.  Reads (translate, walk)
 * report effective permissions: W and USER only if every level allows them,
 * X unless some level sets NX.
 *
 * Not thread safe; no TLB invalidation.  Callers editing live tables own
 * the locking and the flushing.
 */

/* ---- errors --------------------------------------------------------- */

enum nub_vmem_err {
    NUB_VMEM_OK = 0,
    NUB_VMEM_E_ALIGN = -1,    /* va, pa or len not 4 KiB aligned; ref VA not block aligned */
    NUB_VMEM_E_RANGE = -2,    /* len 0, overflow, non-canonical, crosses halves, pa too wide */
    NUB_VMEM_E_OVERLAP = -3,  /* part of the range is already mapped / slot occupied */
    NUB_VMEM_E_NOMEM = -4,    /* ops->alloc failed, or the walker's seen-table is full */
    NUB_VMEM_E_ACCESS = -5,   /* a table address is not backed, or an entry is malformed */
    NUB_VMEM_E_UNMAPPED = -6, /* virt_to_phys: the address has no mapping */
    NUB_VMEM_E_LIMIT = -7,    /* a walk ran out of its read budget */
    NUB_VMEM_E_INVAL = -8,    /* bad argument: NULL, unknown flag bits, bad depth/owner */
};

/* Static name of a vmem error code ("NUB_VMEM_E_ALIGN"), "NUB_VMEM_E_?" if unknown. */
const char *nub_vmem_err_name(int err);

/* ---- flags ---------------------------------------------------------- */

#define NUB_VMEM_R     0x01u /* readable (implied by present) */
#define NUB_VMEM_W     0x02u /* writable (PTE bit 1) */
#define NUB_VMEM_X     0x04u /* executable (absence sets NX, bit 63; i686: always X) */
#define NUB_VMEM_USER  0x08u /* user accessible (bit 2) */
#define NUB_VMEM_LARGE 0x10u /* map: use 2 MiB (i686: 4 MiB) pages where aligned;
                              * translate: the leaf is a 2 MiB / 4 MiB page */
#define NUB_VMEM_HUGE  0x20u /* translate only: the leaf is a 1 GiB page */

#define NUB_VMEM_PAGE_SIZE  0x1000ull
#define NUB_VMEM_LARGE_SIZE 0x200000ull   /* amd64 2 MiB */
#define NUB_VMEM_HUGE_SIZE  0x40000000ull /* amd64 1 GiB (read side only) */
#define NUB_VMEM32_LARGE_SIZE 0x400000ull /* i686 4 MiB (PSE) */
#define NUB_VMEM_PA_LIMIT   (1ull << 52)  /* amd64: pa + len must not exceed this */

/* Raw amd64 / i686 entry bits (for callers inspecting tables directly). */
#define NUB_VMEM_PTE_P    (1ull << 0)
#define NUB_VMEM_PTE_RW   (1ull << 1)
#define NUB_VMEM_PTE_US   (1ull << 2)
#define NUB_VMEM_PTE_PS   (1ull << 7)
#define NUB_VMEM_PTE_NX   (1ull << 63)
#define NUB_VMEM_PTE_ADDR 0x000ffffffffff000ull

/* ---- table access --------------------------------------------------- */

/* amd64 table access.  All physical addresses are guest-physical. */
struct nub_vmem_ops {
    void *ctx;
    /* Read the 8-byte entry at pa (8-aligned) into *val.  Return 0, or a
     * negative error (NUB_VMEM_E_ACCESS) if pa is not backed.  Backing is
     * assumed to be 4 KiB granular: a table whose first entry is unbacked
     * is treated as absent by the walkers. */
    int (*read)(void *ctx, uint64_t pa, uint64_t *val);
    /* Write the 8-byte entry at pa.  Return 0 or a negative error. */
    int (*write)(void *ctx, uint64_t pa, uint64_t val);
    /* Allocate a zeroed, 4 KiB-aligned 4 KiB table; its pa in *pa.  Return
     * 0 or a negative error (NUB_VMEM_E_NOMEM).  May be NULL for read-only use. */
    int (*alloc)(void *ctx, uint64_t *pa);
    uint64_t root; /* physical address of the PML4 */
};

/* i686 table access: same contract with 4-byte entries (pa 4-aligned). */
struct nub_vmem32_ops {
    void *ctx;
    int (*read)(void *ctx, uint64_t pa, uint32_t *val);
    int (*write)(void *ctx, uint64_t pa, uint32_t val);
    int (*alloc)(void *ctx, uint64_t *pa);
    uint64_t root; /* physical address of the page directory */
};

/* ---- byte-buffer tables --------------------------------------------- */

/*
 * A table area: `cap` bytes at `mem`, which the guest sees at physical
 * address `base_pa` (4 KiB aligned).  Tables are handed out bump-style from
 * the start; `used` bytes are taken.  Reads and writes outside
 * [base_pa, base_pa + cap) fail with NUB_VMEM_E_ACCESS and never touch
 * memory outside the buffer, so a buffer of hostile bytes is safe to walk.
 */
struct nub_vmem_buf {
    uint8_t *mem;
    uint64_t base_pa;
    uint64_t cap;
    uint64_t used;
};

/* Set up b over mem and allocate one zeroed root table, its pa in *root
 * (may be NULL).  Errors: E_INVAL (NULL b, NULL mem with cap > 0),
 * E_ALIGN (base_pa), E_RANGE (base_pa + cap overflows), E_NOMEM (cap < 4 KiB). */
int nub_vmem_buf_init(struct nub_vmem_buf *b, void *mem, uint64_t base_pa,
                      uint64_t cap, uint64_t *root);

/* Set up b over existing tables (e.g. guest memory) without allocating:
 * used = cap, so alloc fails until the caller sets `used` lower. */
void nub_vmem_buf_attach(struct nub_vmem_buf *b, void *mem, uint64_t base_pa,
                         uint64_t cap);

/* Allocate one more zeroed table from b (e.g. another root), its pa in *pa.
 * Errors: E_INVAL (b, its mem or pa NULL), E_NOMEM (no whole 4 KiB page
 * left past `used`). */
int nub_vmem_buf_alloc(struct nub_vmem_buf *b, uint64_t *pa);

/* Ops over b for the tree rooted at root (amd64, 8-byte entries). */
struct nub_vmem_ops nub_vmem_buf_ops(struct nub_vmem_buf *b, uint64_t root);

/* Ops over b for the tree rooted at root (i686, 4-byte entries). */
struct nub_vmem32_ops nub_vmem_buf_ops32(struct nub_vmem_buf *b, uint64_t root);

/* ---- sizing --------------------------------------------------------- */

struct nub_vmem_range {
    uint64_t va;
    uint64_t len;
};

/*
 * Upper bound on the 4 KiB table pages (root included) that mapping all of
 * `ranges` into a fresh root with nub_vmem_map needs: 1 + for each range,
 * the number of 512 GiB, 1 GiB and 2 MiB blocks it touches.  Conservative
 * (ranges sharing a table each count it).  Errors: E_RANGE for a range of
 * len 0 or one that overflows; E_INVAL for ranges NULL with n > 0.
 */
int nub_vmem_tables_bound(const struct nub_vmem_range *ranges, size_t n,
                          uint64_t *pages);

/* Most table pages nub_vmem_link can allocate for one reference record. */
#define NUB_VMEM_LINK_TABLES_MAX 5

/* ---- amd64 map / translate ------------------------------------------ */

/*
 * Map [va, va+len) to [pa, pa+len) with flags (NUB_VMEM_R/W/X/USER, plus
 * NUB_VMEM_LARGE to use 2 MiB pages wherever va, pa and the rest of the
 * range are 2 MiB aligned and no page table is already there).
 * Rejects: unknown flags (E_INVAL); va, pa or len not 4 KiB aligned
 * (E_ALIGN); len 0, va+len or pa+len overflowing, va not canonical, range
 * crossing from one canonical half to the other, pa+len > 2^52 (E_RANGE);
 * any page already mapped, or a 2 MiB/1 GiB leaf in the way (E_OVERLAP);
 * an existing entry pointing to an unbacked table (E_ACCESS).  Rejections
 * leave the tables byte-for-byte unchanged.  E_NOMEM leaves every
 * translation unchanged, but empty tables allocated before the failure stay
 * linked.  Intermediate entries on the path are made permissive (RW set,
 * NX cleared, USER added for a user leaf); under tables built by this
 * library that changes no other leaf's effective permissions.
 */
int nub_vmem_map(const struct nub_vmem_ops *ops, uint64_t va, uint64_t pa,
                 uint64_t len, uint32_t flags);

/*
 * Translate va.  On success *pa (may be NULL) is the physical address and
 * *flags (may be NULL) the effective NUB_VMEM_R/W/X/USER flags, plus
 * NUB_VMEM_LARGE for a 2 MiB leaf or NUB_VMEM_HUGE for a 1 GiB leaf.
 * Errors: E_RANGE (va not canonical), E_UNMAPPED (not mapped, including
 * tables that are not backed, and a PS bit in a PML4 entry, which is reserved).
 */
int nub_vmem_virt_to_phys(const struct nub_vmem_ops *ops, uint64_t va,
                          uint64_t *pa, uint32_t *flags);

/* ---- walking: runs and address spaces ------------------------------- */

/* A run of mapped memory: va..va+len maps to pa..pa+len with flags
 * (effective NUB_VMEM_R/W/X/USER; never LARGE/HUGE: runs mix page sizes). */
struct nub_vmem_run {
    uint64_t va;
    uint64_t pa;
    uint64_t len;
    uint32_t flags;
};

/*
 * A reference record from the multi-root walker: in this space the
 * level-`depth` table covering the VA block at our_va is the very table
 * that space `owner` (an earlier root index) has at their_va.  depth 1, 2, 3
 * = PDPT, PD, PT (the table an entry at depth-1 points to); our_va and
 * their_va are aligned to 512 GiB, 1 GiB, 2 MiB respectively.  Everything
 * below is shared wholesale, so the walker does not descend.
 */
struct nub_vmem_ref {
    uint32_t depth;
    uint32_t owner;
    uint64_t our_va;
    uint64_t their_va;
};

enum nub_vmem_item_kind {
    NUB_VMEM_ITEM_RUN = 1,
    NUB_VMEM_ITEM_REF = 2,
};

/* One walker output: a run or a reference, in space `space` (root index). */
struct nub_vmem_item {
    uint32_t kind;  /* enum nub_vmem_item_kind */
    uint32_t space;
    union {
        struct nub_vmem_run run;
        struct nub_vmem_ref ref;
    };
};

/* One slot of the multi-root walker's visited-table set (caller storage,
 * contents private). */
struct nub_vmem_seen {
    uint64_t pa;
    uint64_t va;
    uint32_t space;
    uint8_t depth;
    uint8_t path;
    uint8_t used;
};

/* Walker state (a cursor).  Fields are private; the struct is public so
 * callers can keep it on the stack.  `roots` and `seen` are borrowed and
 * must outlive the walk.  The tables must not change during a walk. */
struct nub_vmem_walk {
    struct nub_vmem_ops ops;
    const uint64_t *roots;
    size_t nroots;
    size_t space;
    struct nub_vmem_seen *seen;
    size_t seen_cap;
    uint64_t budget;
    uint64_t table[4];
    uint32_t idx[4];
    uint8_t path[4];
    int level;
    int err;
    bool have_ev;
    bool have_pend;
    struct nub_vmem_item ev;
    struct nub_vmem_item pend;
};

/*
 * Run iterator over the tree at ops->root.  Yields maximal runs in
 * ascending VA order (lower half, then the sign-extended upper half):
 * adjacent pages are coalesced when both va and pa are contiguous and the
 * effective flags are equal.  Usage:
 *
 *     struct nub_vmem_walk w;
 *     struct nub_vmem_run r;
 *     int rc;
 *     nub_vmem_runs_init(&w, &ops);
 *     while ((rc = nub_vmem_runs_next(&w, &r)) > 0)
 *         use(r.va, r.pa, r.len, r.flags);
 *     if (rc < 0) fail(rc);
 *
 * next returns 1 with a run, 0 at the end, or a negative error (sticky):
 * E_LIMIT when the budget ran out.  Only ops->read is used.
 */
void nub_vmem_runs_init(struct nub_vmem_walk *w, const struct nub_vmem_ops *ops);
int nub_vmem_runs_next(struct nub_vmem_walk *w, struct nub_vmem_run *run);

/*
 * Limit a walk to max_reads entry reads (default: unlimited).  A hostile
 * table can make a walk read up to 512^4 entries; the host should set a
 * budget when walking guest-controlled tables.
 */
void nub_vmem_walk_budget(struct nub_vmem_walk *w, uint64_t max_reads);

/*
 * Multi-root walker (walk_va_spaces).  Walks roots[0..n) in order, each
 * like nub_vmem_runs_*, through ops (ops->root ignored).  When an
 * intermediate table (PDPT, PD or PT) was already visited at the same depth
 * from an EARLIER root, with the same permissions accumulated above it, it
 * yields a NUB_VMEM_ITEM_REF naming the first root that visited it instead
 * of descending.  Everything else is NUB_VMEM_ITEM_RUN.  Items come root by
 * root, each in ascending VA order, so every reference names a space that
 * was fully yielded before.  Tables reached twice within one root, or at a
 * different depth, are walked again (their runs are repeated).
 *
 * seen[0..seen_cap) is caller storage for the tables visited from roots
 * 0..n-2 (the last root records nothing; a single root needs none).  Size
 * it to at least the number of distinct intermediate tables, e.g. the
 * number of 4 KiB pages of backed table memory, ideally twice that;
 * E_NOMEM when it fills.  init errors: E_INVAL.  next: as runs_next.
 */
int nub_vmem_spaces_init(struct nub_vmem_walk *w, const struct nub_vmem_ops *ops,
                         const uint64_t *roots, size_t n,
                         struct nub_vmem_seen *seen, size_t seen_cap);
int nub_vmem_spaces_next(struct nub_vmem_walk *w, struct nub_vmem_item *item);

/*
 * Writer for reference records (space_aware_map).  In the tree at
 * dst->root, make the depth-1 entry for ref->our_va point at the table that
 * the tree at built[ref->owner] has at ref->their_va and depth ref->depth
 * (creating that table, empty, in the owner's tree if it has none; tables
 * above it are created in either tree as needed).  The link entry is a
 * copy of the owner's entry.  If the owner's entry at that slot is a large
 * leaf (its runs were mapped with NUB_VMEM_LARGE where the original had a
 * page table), the leaf entry itself is copied: same translation, nothing
 * to share.  Errors: E_INVAL (depth not 1..3, owner >= nbuilt,
 * built[owner] == dst->root), E_ALIGN (VAs not aligned to the depth's
 * block), E_RANGE (non-canonical), E_OVERLAP (our slot is occupied, or a
 * large leaf is above the slot in either tree; ours is checked before
 * anything is written), E_ACCESS, E_NOMEM.
 */
int nub_vmem_link(const struct nub_vmem_ops *dst, const uint64_t *built,
                  size_t nbuilt, const struct nub_vmem_ref *ref);

/*
 * Rebuild one walker item into dst (dst->root = the new root of
 * item->space): a run is mapped with nub_vmem_map(dst, va, pa, len,
 * flags | extra_flags) (extra_flags: e.g. NUB_VMEM_LARGE), a reference is
 * linked with nub_vmem_link.  Feeding a whole walk, space by space, into
 * fresh roots yields trees that translate every VA identically and share
 * the same sub-tables.  A host that moves pages calls nub_vmem_map itself
 * with the new pa for runs.
 */
int nub_vmem_space_map(const struct nub_vmem_ops *dst, const uint64_t *built,
                       size_t nbuilt, const struct nub_vmem_item *item,
                       uint32_t extra_flags);

/* ---- i686 (non-PAE, 2-level) ---------------------------------------- */

/*
 * Map [va, va+len) to [pa, pa+len) in 1024-entry PD/PT tables with 4-byte
 * entries.  flags as for nub_vmem_map; X is ignored (non-PAE tables cannot
 * express NX; every page is executable); NUB_VMEM_LARGE uses 4 MiB PSE
 * pages where va, pa and the rest of the range are 4 MiB aligned (the guest
 * must set CR4.PSE).  Rejects: E_INVAL, E_ALIGN, E_RANGE (len 0, va+len or
 * pa+len > 4 GiB), E_OVERLAP, E_ACCESS; rejections leave the tables
 * unchanged; E_NOMEM as for nub_vmem_map.
 */
int nub_vmem32_map(const struct nub_vmem32_ops *ops, uint32_t va, uint64_t pa,
                   uint64_t len, uint32_t flags);

/* Translate va: *pa, *flags (R, X, W/USER if both levels allow, LARGE for a
 * 4 MiB leaf).  E_UNMAPPED when not mapped. */
int nub_vmem32_virt_to_phys(const struct nub_vmem32_ops *ops, uint32_t va,
                            uint64_t *pa, uint32_t *flags);

NUB_API_END

#ifdef __cplusplus
}
#endif

#endif /* NUB_VMEM_H */
