/* Unit tests for common/vmem: amd64 and i686 page tables, run walker, multi-root walker and linker. */
#include <criterion/criterion.h>
#include <nub/vmem.h>

#include <stdlib.h>
#include <string.h>

#define PG 0x1000ull
#define MB2 0x200000ull
#define RX (NUB_VMEM_R | NUB_VMEM_X)
#define RW (NUB_VMEM_R | NUB_VMEM_W)
#define RWX (NUB_VMEM_R | NUB_VMEM_W | NUB_VMEM_X)
#define SIZE_FLAGS (NUB_VMEM_LARGE | NUB_VMEM_HUGE)

/* ---- helpers -------------------------------------------------------- */

struct tbuf {
    uint8_t *mem;
    struct nub_vmem_buf b;
    uint64_t root;
    struct nub_vmem_ops ops;
};

static void tb_init(struct tbuf *t, uint64_t base_pa, uint64_t cap)
{
    t->mem = calloc(1, cap);
    cr_assert_not_null(t->mem);
    cr_assert_eq(nub_vmem_buf_init(&t->b, t->mem, base_pa, cap, &t->root), NUB_VMEM_OK);
    t->ops = nub_vmem_buf_ops(&t->b, t->root);
}

static void tb_free(struct tbuf *t)
{
    free(t->mem);
}

static struct nub_vmem_ops tb_ops(struct tbuf *t, uint64_t root)
{
    return nub_vmem_buf_ops(&t->b, root);
}

static uint64_t tb_new_root(struct tbuf *t)
{
    uint64_t r;
    cr_assert_eq(nub_vmem_buf_alloc(&t->b, &r), NUB_VMEM_OK);
    return r;
}

static uint64_t raw64(const struct tbuf *t, uint64_t pa)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | t->mem[pa - t->b.base_pa + (uint64_t)i];
    return v;
}

static uint32_t raw32(const struct tbuf *t, uint64_t pa)
{
    return (uint32_t)(raw64(t, pa) & 0xffffffffu);
}

static void put64(struct tbuf *t, uint64_t pa, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        t->mem[pa - t->b.base_pa + (uint64_t)i] = (uint8_t)v;
}

/* Physical address of the level-`level` entry for va in the tree at root
 * (level 0 = PML4); the path above must exist. */
static uint64_t entry_pa(struct tbuf *t, uint64_t root, uint64_t va, int level)
{
    uint64_t table = root;
    for (int l = 0;; l++) {
        uint64_t ea = table + ((va >> (39 - 9 * l)) & 511) * 8;
        if (l == level)
            return ea;
        uint64_t e = raw64(t, ea);
        cr_assert(e & NUB_VMEM_PTE_P, "no table at level %d for %#lx", l, (unsigned long)va);
        table = e & NUB_VMEM_PTE_ADDR;
    }
}

struct snap {
    uint8_t *mem;
    uint64_t used;
};

static struct snap snap_take(const struct tbuf *t)
{
    struct snap s = { malloc(t->b.cap), t->b.used };
    cr_assert_not_null(s.mem);
    memcpy(s.mem, t->mem, t->b.cap);
    return s;
}

static void snap_check(const struct tbuf *t, struct snap *s, const char *what)
{
    cr_assert_eq(t->b.used, s->used, "%s: used changed", what);
    cr_assert(memcmp(t->mem, s->mem, t->b.cap) == 0, "%s: tables changed", what);
    free(s->mem);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t collect_runs(const struct nub_vmem_ops *ops, struct nub_vmem_run *out,
                           size_t cap)
{
    struct nub_vmem_walk w;
    struct nub_vmem_run r;
    size_t n = 0;
    int rc;
    nub_vmem_runs_init(&w, ops);
    while ((rc = nub_vmem_runs_next(&w, &r)) > 0) {
        cr_assert_lt(n, cap, "too many runs");
        out[n++] = r;
    }
    cr_assert_eq(rc, 0, "walk failed: %s", nub_vmem_err_name(rc));
    return n;
}

static void expect_tr(const struct nub_vmem_ops *ops, uint64_t va, uint64_t pa,
                      uint32_t flags)
{
    uint64_t got_pa = 0;
    uint32_t got_fl = 0;
    int rc = nub_vmem_virt_to_phys(ops, va, &got_pa, &got_fl);
    cr_assert_eq(rc, NUB_VMEM_OK, "va %#lx: %s", (unsigned long)va, nub_vmem_err_name(rc));
    cr_assert_eq(got_pa, pa, "va %#lx: pa %#lx != %#lx", (unsigned long)va,
                 (unsigned long)got_pa, (unsigned long)pa);
    cr_assert_eq(got_fl, flags, "va %#lx: flags %#x != %#x", (unsigned long)va,
                 got_fl, flags);
}

static void expect_unmapped(const struct nub_vmem_ops *ops, uint64_t va)
{
    cr_assert_eq(nub_vmem_virt_to_phys(ops, va, NULL, NULL), NUB_VMEM_E_UNMAPPED,
                 "va %#lx should be unmapped", (unsigned long)va);
}

/* ---- amd64: hand-worked raw bits ------------------------------------ */

Test(vmem, raw_bits_hand_worked)
{
    struct tbuf t;
    tb_init(&t, 0x10000, 16 * PG);
    cr_assert_eq(t.root, 0x10000);
    /* 0x400000: PML4[0] -> PDPT[0] -> PD[2] -> PT[0]. */
    cr_assert_eq(nub_vmem_map(&t.ops, 0x400000, 0x2000000, PG, RW), NUB_VMEM_OK);
    cr_assert_eq(t.b.used, 4 * PG);
    cr_assert_eq(raw64(&t, 0x10000), 0x11003ull);
    cr_assert_eq(raw64(&t, 0x11000), 0x12003ull);
    cr_assert_eq(raw64(&t, 0x12000 + 2 * 8), 0x13003ull);
    cr_assert_eq(raw64(&t, 0x13000), 0x8000000002000003ull);
    /* A user, executable, read-only page next to it: US climbs the path. */
    cr_assert_eq(nub_vmem_map(&t.ops, 0x401000, 0x3000000, PG, RX | NUB_VMEM_USER),
                 NUB_VMEM_OK);
    cr_assert_eq(raw64(&t, 0x13008), 0x3000005ull);
    cr_assert_eq(raw64(&t, 0x10000), 0x11007ull);
    cr_assert_eq(raw64(&t, 0x11000), 0x12007ull);
    cr_assert_eq(raw64(&t, 0x12010), 0x13007ull);
    /* W+X kernel page at 0xffffffff80000000: PML4[511], PDPT[510], PD[0], PT[0]. */
    cr_assert_eq(nub_vmem_map(&t.ops, 0xffffffff80000000ull, 0x5000, PG, RWX), NUB_VMEM_OK);
    cr_assert_eq(raw64(&t, 0x10000 + 511 * 8), 0x14003ull);
    cr_assert_eq(raw64(&t, 0x14000 + 510 * 8), 0x15003ull);
    cr_assert_eq(raw64(&t, 0x15000), 0x16003ull);
    cr_assert_eq(raw64(&t, 0x16000), 0x5003ull);
    /* Translation reports the same. */
    expect_tr(&t.ops, 0x400123, 0x2000123, RW);
    expect_tr(&t.ops, 0x401fff, 0x3000fff, RX | NUB_VMEM_USER);
    expect_tr(&t.ops, 0xffffffff80000abcull, 0x5abc, RWX);
    expect_unmapped(&t.ops, 0x402000);
    /* R is implied: mapping with W only gives R|W. */
    cr_assert_eq(nub_vmem_map(&t.ops, 0x402000, 0x6000, PG, NUB_VMEM_W), NUB_VMEM_OK);
    expect_tr(&t.ops, 0x402000, 0x6000, RW);
    tb_free(&t);
}

Test(vmem, top_and_bottom_of_address_space)
{
    struct tbuf t;
    tb_init(&t, 0x100000, 64 * PG);
    /* The last two pages: va + len wraps to exactly 0, which is allowed. */
    cr_assert_eq(nub_vmem_map(&t.ops, 0xffffffffffffe000ull, 0x7000000, 2 * PG, RW),
                 NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(&t.ops, 0x0, 0x8000000, PG, RX), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(&t.ops, 0x00007ffffffff000ull, 0x9000000, PG, RW), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(&t.ops, 0xffff800000000000ull, 0xa000000, PG, RW), NUB_VMEM_OK);
    expect_tr(&t.ops, 0xffffffffffffffffull, 0x7001fff, RW);
    expect_tr(&t.ops, 0xffffffffffffe000ull, 0x7000000, RW);
    expect_tr(&t.ops, 0x0, 0x8000000, RX);
    expect_tr(&t.ops, 0x00007fffffffffffull, 0x9000fff, RW);
    expect_tr(&t.ops, 0xffff800000000010ull, 0xa000010, RW);
    expect_unmapped(&t.ops, 0xffffffffffffd000ull);
    cr_assert_eq(nub_vmem_virt_to_phys(&t.ops, 0x0000800000000000ull, NULL, NULL),
                 NUB_VMEM_E_RANGE);
    struct nub_vmem_run runs[8];
    size_t n = collect_runs(&t.ops, runs, 8);
    cr_assert_eq(n, 4);
    cr_assert_eq(runs[0].va, 0);
    cr_assert_eq(runs[1].va, 0x00007ffffffff000ull);
    cr_assert_eq(runs[2].va, 0xffff800000000000ull);
    cr_assert_eq(runs[3].va, 0xffffffffffffe000ull);
    cr_assert_eq(runs[3].len, 2 * PG);
    tb_free(&t);
}

/* ---- amd64: 2 MiB pages --------------------------------------------- */

Test(vmem, large_pages)
{
    struct tbuf t;
    tb_init(&t, 0x100000, 16 * PG);
    uint64_t va = 0xffffffff80000000ull;
    /* 4 MiB + 4 KiB: two 2 MiB leaves and one 4 KiB page. */
    cr_assert_eq(nub_vmem_map(&t.ops, va, 0x400000, 2 * MB2 + PG, RW | NUB_VMEM_LARGE),
                 NUB_VMEM_OK);
    uint64_t pd0 = entry_pa(&t, t.root, va, 2);
    uint64_t ps = NUB_VMEM_PTE_P | NUB_VMEM_PTE_RW | NUB_VMEM_PTE_PS | NUB_VMEM_PTE_NX;
    cr_assert_eq(raw64(&t, pd0), 0x400000 | ps);
    cr_assert_eq(raw64(&t, pd0 + 8), 0x600000 | ps);
    uint64_t pd2 = raw64(&t, pd0 + 16);
    cr_assert_eq(pd2 & NUB_VMEM_PTE_PS, 0);
    cr_assert_eq(raw64(&t, pd2 & NUB_VMEM_PTE_ADDR), 0x800000 | NUB_VMEM_PTE_P |
                 NUB_VMEM_PTE_RW | NUB_VMEM_PTE_NX);
    expect_tr(&t.ops, va + 0x12345, 0x412345, RW | NUB_VMEM_LARGE);
    expect_tr(&t.ops, va + MB2 + 0x1fffff, 0x7fffff, RW | NUB_VMEM_LARGE);
    expect_tr(&t.ops, va + 2 * MB2 + 0x10, 0x800010, RW);
    /* pa not 2 MiB aligned: falls back to 4 KiB pages. */
    uint64_t va2 = 0x40000000;
    cr_assert_eq(nub_vmem_map(&t.ops, va2, 0x1001000, MB2, RX | NUB_VMEM_LARGE), NUB_VMEM_OK);
    cr_assert_eq(raw64(&t, entry_pa(&t, t.root, va2, 2)) & NUB_VMEM_PTE_PS, 0);
    expect_tr(&t.ops, va2 + 0x1ff000, 0x1200000, RX);
    /* Mapping a 4 KiB page inside a 2 MiB leaf overlaps. */
    struct snap s = snap_take(&t);
    cr_assert_eq(nub_vmem_map(&t.ops, va + 0x5000, 0x1000, PG, RW), NUB_VMEM_E_OVERLAP);
    snap_check(&t, &s, "4k in 2m");
    /* Runs coalesce across page sizes. */
    struct nub_vmem_run runs[4];
    cr_assert_eq(collect_runs(&t.ops, runs, 4), 2);
    cr_assert_eq(runs[1].va, va);
    cr_assert_eq(runs[1].len, 2 * MB2 + PG);
    cr_assert_eq(runs[1].flags, RW);
    tb_free(&t);
}

Test(vmem, huge_page_read_side)
{
    struct tbuf t;
    tb_init(&t, 0x100000, 16 * PG);
    cr_assert_eq(nub_vmem_map(&t.ops, 0x0, 0x0, PG, RW | NUB_VMEM_USER), NUB_VMEM_OK);
    /* Hand-write a 1 GiB page in PDPT[1] (va 0x40000000). */
    uint64_t pdpt1 = entry_pa(&t, t.root, 0x40000000, 1);
    put64(&t, pdpt1, 0x80000000ull | NUB_VMEM_PTE_P | NUB_VMEM_PTE_PS | NUB_VMEM_PTE_US);
    expect_tr(&t.ops, 0x40000000 + 0x12345678, 0x92345678,
              RX | NUB_VMEM_USER | NUB_VMEM_HUGE);
    cr_assert_eq(nub_vmem_map(&t.ops, 0x40001000, 0x1000, PG, RW), NUB_VMEM_E_OVERLAP);
    struct nub_vmem_run runs[4];
    cr_assert_eq(collect_runs(&t.ops, runs, 4), 2);
    cr_assert_eq(runs[1].va, 0x40000000);
    cr_assert_eq(runs[1].pa, 0x80000000);
    cr_assert_eq(runs[1].len, 0x40000000);
    tb_free(&t);
}

/* ---- amd64: rejects ------------------------------------------------- */

static void reject(struct tbuf *t, uint64_t va, uint64_t pa, uint64_t len,
                   uint32_t flags, int want, const char *what)
{
    struct snap s = snap_take(t);
    int rc = nub_vmem_map(&t->ops, va, pa, len, flags);
    cr_assert_eq(rc, want, "%s: got %s want %s", what, nub_vmem_err_name(rc),
                 nub_vmem_err_name(want));
    snap_check(t, &s, what);
}

Test(vmem, rejects_leave_tables_unchanged)
{
    struct tbuf t;
    tb_init(&t, 0x100000, 64 * PG);
    cr_assert_eq(nub_vmem_map(&t.ops, 0x400000, 0x1000000, 4 * PG, RW), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(&t.ops, 0xffffffff80200000ull, 0x200000, MB2,
                              RW | NUB_VMEM_LARGE), NUB_VMEM_OK);
    reject(&t, 0x500800, 0x1000, PG, RW, NUB_VMEM_E_ALIGN, "va misaligned");
    reject(&t, 0x500000, 0x1010, PG, RW, NUB_VMEM_E_ALIGN, "pa misaligned");
    reject(&t, 0x500000, 0x1000, 0x800, RW, NUB_VMEM_E_ALIGN, "len misaligned");
    reject(&t, 0x500000, 0x1000, 0, RW, NUB_VMEM_E_RANGE, "zero length");
    reject(&t, 0x0000800000000000ull, 0x1000, PG, RW, NUB_VMEM_E_RANGE, "non-canonical");
    reject(&t, 0xfff0000000000000ull, 0x1000, PG, RW, NUB_VMEM_E_RANGE, "non-canonical 2");
    reject(&t, 0x00007ffffffff000ull, 0x1000, 2 * PG, RW, NUB_VMEM_E_RANGE, "crosses halves");
    reject(&t, 0x00007ffffffff000ull, 0x1000, 0xffff800000001000ull, RW,
           NUB_VMEM_E_RANGE, "spans the hole into the upper half");
    reject(&t, 0xfffffffffffff000ull, 0x1000, 2 * PG, RW, NUB_VMEM_E_RANGE, "va overflows");
    reject(&t, 0x500000, 0xfffffffffffff000ull, 2 * PG, RW, NUB_VMEM_E_RANGE, "pa overflows");
    reject(&t, 0x500000, 1ull << 52, PG, RW, NUB_VMEM_E_RANGE, "pa beyond 52 bits");
    reject(&t, 0x500000, (1ull << 52) - PG, 2 * PG, RW, NUB_VMEM_E_RANGE, "pa end beyond 52 bits");
    reject(&t, 0x3fe000, 0x1000, 3 * PG, RW, NUB_VMEM_E_OVERLAP, "overlaps at the end");
    reject(&t, 0x403000, 0x1000, 3 * PG, RW, NUB_VMEM_E_OVERLAP, "overlaps at the start");
    reject(&t, 0xffffffff801ff000ull, 0x1000, 2 * PG, RW, NUB_VMEM_E_OVERLAP, "overlaps 2M leaf");
    reject(&t, 0xffffffff80200000ull, 0x200000, MB2, RW | NUB_VMEM_LARGE,
           NUB_VMEM_E_OVERLAP, "2M over 2M");
    reject(&t, 0x400000, 0x200000, MB2, RW | NUB_VMEM_LARGE, NUB_VMEM_E_OVERLAP,
           "2M over a PT with pages");
    reject(&t, 0x500000, 0x1000, PG, RW | 0x100, NUB_VMEM_E_INVAL, "unknown flag");
    cr_assert_eq(nub_vmem_map(NULL, 0, 0, PG, RW), NUB_VMEM_E_INVAL);
    /* Still the same mappings. */
    expect_tr(&t.ops, 0x403fff, 0x1003fff, RW);
    expect_unmapped(&t.ops, 0x3ff000);
    tb_free(&t);
}

Test(vmem, nomem_keeps_translations)
{
    struct tbuf t;
    tb_init(&t, 0x100000, 3 * PG); /* root + 2: a fresh 4 KiB map needs 3 */
    cr_assert_eq(nub_vmem_map(&t.ops, 0x1000, 0x1000, PG, RW), NUB_VMEM_E_NOMEM);
    struct nub_vmem_run runs[2];
    cr_assert_eq(collect_runs(&t.ops, runs, 2), 0);
    expect_unmapped(&t.ops, 0x1000);
    tb_free(&t);
    /* Room for a first PT but not a second: the first range must not leak in. */
    tb_init(&t, 0x100000, 4 * PG);
    cr_assert_eq(nub_vmem_map(&t.ops, 0x1ff000, 0x1000, 2 * PG, RW), NUB_VMEM_E_NOMEM);
    expect_unmapped(&t.ops, 0x1ff000);
    cr_assert_eq(collect_runs(&t.ops, runs, 2), 0);
    tb_free(&t);
}

/* ---- amd64: random ranges against a model --------------------------- */

struct mrange {
    uint64_t va, pa, len;
    uint32_t flags;
};

static bool model_overlaps(const struct mrange *m, size_t n, uint64_t va, uint64_t len)
{
    for (size_t i = 0; i < n; i++)
        if (va <= m[i].va + (m[i].len - 1) && m[i].va <= va + (len - 1))
            return true;
    return false;
}

static struct mrange random_range(uint64_t *seed)
{
    static const uint64_t bases[] = { 0x0, 0x00007fff00000000ull, 0xffff800000000000ull,
                                      0xffffffff80000000ull, 0xffffffffff000000ull };
    static const uint32_t perms[] = { NUB_VMEM_R, RW, RX, RWX, RW | NUB_VMEM_USER,
                                      RX | NUB_VMEM_USER };
    struct mrange r;
    uint64_t span = 16 * 0x100000ull;
    if (rng_next(seed) % 8 == 0) { /* sometimes a 2 MiB-friendly one */
        r.len = (1 + rng_next(seed) % 2) * MB2;
        r.va = bases[rng_next(seed) % 5] + (rng_next(seed) % (span / MB2 - 2)) * MB2;
        r.pa = (rng_next(seed) % 4096) * MB2;
        r.flags = perms[rng_next(seed) % 6] | NUB_VMEM_LARGE;
    } else {
        r.len = (1 + rng_next(seed) % 32) * PG;
        r.va = bases[rng_next(seed) % 5] + (rng_next(seed) % (span / PG - 32)) * PG;
        r.pa = (rng_next(seed) % (1ull << 28)) * PG;
        r.flags = perms[rng_next(seed) % 6];
    }
    return r;
}

static int cmp_mrange(const void *a, const void *b)
{
    const struct mrange *x = a, *y = b;
    return x->va < y->va ? -1 : x->va > y->va;
}

/* Expected runs: the model sorted and coalesced. */
static size_t model_runs(struct mrange *m, size_t n, struct nub_vmem_run *out)
{
    qsort(m, n, sizeof *m, cmp_mrange);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t fl = (m[i].flags & ~NUB_VMEM_LARGE) | NUB_VMEM_R;
        if (k > 0 && out[k - 1].va + out[k - 1].len == m[i].va &&
            out[k - 1].pa + out[k - 1].len == m[i].pa && out[k - 1].flags == fl) {
            out[k - 1].len += m[i].len;
            continue;
        }
        out[k++] = (struct nub_vmem_run){ m[i].va, m[i].pa, m[i].len, fl };
    }
    return k;
}

static void check_model_pages(const struct nub_vmem_ops *ops, const struct mrange *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t fl = (m[i].flags & ~NUB_VMEM_LARGE) | NUB_VMEM_R;
        for (uint64_t off = 0; off < m[i].len; off += PG) {
            uint64_t pa;
            uint32_t got;
            uint64_t o = off + (off / PG * 8 % PG); /* vary the offset in the page */
            cr_assert_eq(nub_vmem_virt_to_phys(ops, m[i].va + o, &pa, &got), NUB_VMEM_OK);
            cr_assert_eq(pa, m[i].pa + o);
            cr_assert_eq(got & ~SIZE_FLAGS, fl);
        }
    }
}

Test(vmem, random_ranges_translate_and_coalesce)
{
    enum { N = 400 };
    struct tbuf t;
    tb_init(&t, 0x40000000, 1024 * PG);
    static struct mrange m[N];
    static struct nub_vmem_range rs[N];
    static struct nub_vmem_run want[N], got[N];
    size_t n = 0, rejected = 0;
    uint64_t seed = 12345;
    for (int i = 0; i < N; i++) {
        struct mrange r = random_range(&seed);
        bool ov = model_overlaps(m, n, r.va, r.len);
        struct snap s = ov ? snap_take(&t) : (struct snap){ 0 };
        int rc = nub_vmem_map(&t.ops, r.va, r.pa, r.len, r.flags);
        cr_assert_eq(rc, ov ? NUB_VMEM_E_OVERLAP : NUB_VMEM_OK, "range %d: %s", i,
                     nub_vmem_err_name(rc));
        if (ov) {
            snap_check(&t, &s, "random overlap");
            rejected++;
            continue;
        }
        rs[n] = (struct nub_vmem_range){ r.va, r.len };
        m[n++] = r;
    }
    cr_assert_gt(rejected, 0);
    cr_assert_gt(n, N / 2);
    check_model_pages(&t.ops, m, n);
    /* Sizing: the bound holds. */
    uint64_t bound;
    cr_assert_eq(nub_vmem_tables_bound(rs, n, &bound), NUB_VMEM_OK);
    cr_assert_leq(t.b.used / PG, bound);
    /* Unmapped holes stay unmapped. */
    for (int i = 0; i < 2000; i++) {
        struct mrange r = random_range(&seed);
        if (!model_overlaps(m, n, r.va, PG))
            expect_unmapped(&t.ops, r.va);
    }
    /* The iterator yields exactly the coalesced model. */
    size_t nw = model_runs(m, n, want);
    size_t ng = collect_runs(&t.ops, got, N);
    cr_assert_eq(ng, nw);
    uint64_t total = 0, mapped = 0;
    for (size_t i = 0; i < ng; i++) {
        cr_assert_eq(got[i].va, want[i].va, "run %zu va", i);
        cr_assert_eq(got[i].pa, want[i].pa, "run %zu pa", i);
        cr_assert_eq(got[i].len, want[i].len, "run %zu len", i);
        cr_assert_eq(got[i].flags, want[i].flags, "run %zu flags", i);
        total += got[i].len;
    }
    for (size_t i = 0; i < n; i++)
        mapped += m[i].len;
    cr_assert_eq(total, mapped);
    tb_free(&t);
}

/* ---- run iterator --------------------------------------------------- */

Test(vmem, runs_coalesce_exactly)
{
    struct tbuf t;
    tb_init(&t, 0x100000, 32 * PG);
    const struct nub_vmem_ops *o = &t.ops;
    cr_assert_eq(nub_vmem_map(o, 0x1000, 0x100000, 3 * PG, RW), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(o, 0x4000, 0x103000, 2 * PG, RW), NUB_VMEM_OK); /* joins */
    cr_assert_eq(nub_vmem_map(o, 0x6000, 0x200000, PG, RW), NUB_VMEM_OK);     /* pa jump */
    cr_assert_eq(nub_vmem_map(o, 0x7000, 0x201000, PG, RX), NUB_VMEM_OK);     /* flags */
    cr_assert_eq(nub_vmem_map(o, 0x9000, 0x202000, PG, RX), NUB_VMEM_OK);     /* va gap */
    /* Across a PT boundary and a PD boundary (0x3fe00000 .. 0x40001000). */
    cr_assert_eq(nub_vmem_map(o, 0x3ffff000, 0x500000, PG, RW), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(o, 0x40000000, 0x501000, PG, RW), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(o, 0xffffffff80000000ull, 0x600000, PG, RW), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(o, 0xffffffff80001000ull, 0x601000, PG,
                              RW | NUB_VMEM_USER), NUB_VMEM_OK);
    struct nub_vmem_run r[8];
    size_t n = collect_runs(o, r, 8);
    const struct nub_vmem_run want[] = {
        { 0x1000, 0x100000, 5 * PG, RW },
        { 0x6000, 0x200000, PG, RW },
        { 0x7000, 0x201000, PG, RX },
        { 0x9000, 0x202000, PG, RX },
        { 0x3ffff000, 0x500000, 2 * PG, RW },
        { 0xffffffff80000000ull, 0x600000, PG, RW },
        { 0xffffffff80001000ull, 0x601000, PG, RW | NUB_VMEM_USER },
    };
    cr_assert_eq(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(r[i].va, want[i].va, "run %zu", i);
        cr_assert_eq(r[i].pa, want[i].pa, "run %zu", i);
        cr_assert_eq(r[i].len, want[i].len, "run %zu", i);
        cr_assert_eq(r[i].flags, want[i].flags, "run %zu", i);
    }
    tb_free(&t);
}

Test(vmem, effective_flags_from_restrictive_intermediates)
{
    struct tbuf t;
    tb_init(&t, 0x100000, 16 * PG);
    cr_assert_eq(nub_vmem_map(&t.ops, 0x1000, 0x1000, 2 * PG, RWX | NUB_VMEM_USER),
                 NUB_VMEM_OK);
    /* A foreign PDE that is read-only and NX, and a PML4E without US. */
    uint64_t pde = entry_pa(&t, t.root, 0x1000, 2);
    put64(&t, pde, (raw64(&t, pde) & ~NUB_VMEM_PTE_RW) | NUB_VMEM_PTE_NX);
    expect_tr(&t.ops, 0x1000, 0x1000, NUB_VMEM_R | NUB_VMEM_USER);
    uint64_t pml4e = t.root;
    put64(&t, pml4e, raw64(&t, pml4e) & ~NUB_VMEM_PTE_US);
    expect_tr(&t.ops, 0x2000, 0x2000, NUB_VMEM_R);
    struct nub_vmem_run r[2];
    cr_assert_eq(collect_runs(&t.ops, r, 2), 1);
    cr_assert_eq(r[0].flags, NUB_VMEM_R);
    /* map widens the path again (RW set, NX cleared, US added). */
    cr_assert_eq(nub_vmem_map(&t.ops, 0x3000, 0x3000, PG, RWX | NUB_VMEM_USER), NUB_VMEM_OK);
    expect_tr(&t.ops, 0x3000, 0x3000, RWX | NUB_VMEM_USER);
    tb_free(&t);
}

/* ---- hostile tables ------------------------------------------------- */

/* Walk to the end; every run must agree with virt_to_phys at both ends. */
static uint64_t walk_checked(const struct nub_vmem_ops *ops, uint64_t budget, int want_rc)
{
    struct nub_vmem_walk w;
    struct nub_vmem_run r;
    uint64_t n = 0, prev_end = 0;
    bool first = true;
    int rc;
    nub_vmem_runs_init(&w, ops);
    nub_vmem_walk_budget(&w, budget);
    while ((rc = nub_vmem_runs_next(&w, &r)) > 0) {
        cr_assert(first || r.va >= prev_end, "runs out of order");
        uint64_t pa;
        uint32_t fl;
        cr_assert_eq(nub_vmem_virt_to_phys(ops, r.va, &pa, &fl), NUB_VMEM_OK);
        cr_assert_eq(pa, r.pa);
        cr_assert_eq(fl & ~SIZE_FLAGS, r.flags);
        uint64_t last = r.va + (r.len - 1);
        cr_assert_eq(nub_vmem_virt_to_phys(ops, last, &pa, &fl), NUB_VMEM_OK);
        cr_assert_eq(pa, r.pa + (r.len - 1));
        prev_end = r.va + r.len;
        first = false;
        n++;
    }
    cr_assert_eq(rc, want_rc, "walk: %s", nub_vmem_err_name(rc));
    cr_assert_eq(nub_vmem_runs_next(&w, &r), rc, "error/end must be sticky");
    return n;
}

Test(vmem, hostile_random_bytes)
{
    enum { CAP = 64 * 1024 };
    uint8_t *mem = malloc(CAP);
    uint64_t seed = 99;
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < CAP; i += 8) {
            uint64_t v = rng_next(&seed);
            memcpy(mem + i, &v, 8);
        }
        struct nub_vmem_buf b;
        nub_vmem_buf_attach(&b, mem, 0, CAP);
        struct nub_vmem_ops ops = nub_vmem_buf_ops(&b, 0);
        walk_checked(&ops, UINT64_MAX, 0);
        for (int i = 0; i < 1000; i++)
            nub_vmem_virt_to_phys(&ops, rng_next(&seed), NULL, NULL);
        /* Map into garbage: must not write outside; any code is fine. */
        nub_vmem_map(&ops, 0x1000, 0x1000, PG, RW);
    }
    free(mem);
}

Test(vmem, hostile_in_buffer_pointers)
{
    /* Entries all point inside the buffer (a dense, cyclic graph); 1 in 32
     * is present, so the walk is large but finite. */
    enum { CAP = 16 * 4096 };
    uint8_t *mem = malloc(CAP);
    uint64_t seed = 7;
    for (size_t i = 0; i < CAP; i += 8) {
        uint64_t v = rng_next(&seed);
        uint64_t e = (v & (NUB_VMEM_PTE_NX | 0xfffull)) | ((v >> 20) % 16) * 4096;
        e = (v >> 58) % 32 == 0 ? e | NUB_VMEM_PTE_P : e & ~NUB_VMEM_PTE_P;
        memcpy(mem + i, &e, 8);
    }
    struct nub_vmem_buf b;
    nub_vmem_buf_attach(&b, mem, 0, CAP);
    struct nub_vmem_ops ops = nub_vmem_buf_ops(&b, 0);
    uint64_t n = walk_checked(&ops, UINT64_MAX, 0);
    cr_assert_gt(n, 0);
    /* With a small budget it stops with E_LIMIT. */
    walk_checked(&ops, 1000, NUB_VMEM_E_LIMIT);
    free(mem);
}

Test(vmem, hostile_self_reference_terminates)
{
    struct tbuf t;
    tb_init(&t, 0x100000, 8 * PG);
    /* PML4[0] points at the PML4 itself: it acts as PDPT, PD and PT. */
    put64(&t, t.root, t.root | NUB_VMEM_PTE_P | NUB_VMEM_PTE_RW);
    expect_tr(&t.ops, 0x0, t.root, RWX);
    struct nub_vmem_run r[4];
    size_t n = collect_runs(&t.ops, r, 4);
    cr_assert_eq(n, 1);
    cr_assert_eq(r[0].va, 0);
    cr_assert_eq(r[0].pa, t.root);
    cr_assert_eq(r[0].len, PG);
    /* Every PML4 entry pointing at the root: 512^4 reads without a budget. */
    for (int i = 0; i < 512; i++)
        put64(&t, t.root + (uint64_t)i * 8, t.root | NUB_VMEM_PTE_P);
    walk_checked(&t.ops, 100000, NUB_VMEM_E_LIMIT);
    /* Tables outside the buffer read as absent. */
    put64(&t, t.root, 0x7000000000ull | NUB_VMEM_PTE_P);
    put64(&t, t.root + 8, (t.b.base_pa + t.b.cap) | NUB_VMEM_PTE_P);
    expect_unmapped(&t.ops, 0);
    expect_unmapped(&t.ops, 1ull << 39);
    cr_assert_eq(nub_vmem_map(&t.ops, 0x1000, 0x1000, PG, RW), NUB_VMEM_E_ACCESS);
    /* A PS bit in a PML4 entry is reserved: not a mapping. */
    put64(&t, t.root + 16, NUB_VMEM_PTE_P | NUB_VMEM_PTE_PS);
    expect_unmapped(&t.ops, 2ull << 39);
    tb_free(&t);
}

/* ---- buffer ops ----------------------------------------------------- */

Test(vmem, buffer_bounds)
{
    uint8_t mem[2 * 4096];
    struct nub_vmem_buf b;
    uint64_t root, v;
    cr_assert_eq(nub_vmem_buf_init(&b, mem, 0x1800, sizeof mem, &root), NUB_VMEM_E_ALIGN);
    cr_assert_eq(nub_vmem_buf_init(&b, NULL, 0x1000, 4096, &root), NUB_VMEM_E_INVAL);
    cr_assert_eq(nub_vmem_buf_init(&b, mem, 0x1000, 100, &root), NUB_VMEM_E_NOMEM);
    cr_assert_eq(nub_vmem_buf_init(&b, mem, 0xfffffffffffff000ull, 8192, &root),
                 NUB_VMEM_E_RANGE);
    memset(mem, 0xaa, sizeof mem);
    cr_assert_eq(nub_vmem_buf_init(&b, mem, 0x1000, sizeof mem, &root), NUB_VMEM_OK);
    cr_assert_eq(root, 0x1000);
    cr_assert_eq(mem[0], 0);
    cr_assert_eq(mem[4096], 0xaa);
    struct nub_vmem_ops o = nub_vmem_buf_ops(&b, root);
    cr_assert_eq(o.read(o.ctx, 0x0ff8, &v), NUB_VMEM_E_ACCESS);
    cr_assert_eq(o.read(o.ctx, 0x2ff8, &v), NUB_VMEM_OK);
    cr_assert_eq(v, 0xaaaaaaaaaaaaaaaaull);
    cr_assert_eq(o.read(o.ctx, 0x3000, &v), NUB_VMEM_E_ACCESS);
    cr_assert_eq(o.read(o.ctx, 0x1004, &v), NUB_VMEM_E_ACCESS);
    cr_assert_eq(o.write(o.ctx, 0x3000, 1), NUB_VMEM_E_ACCESS);
    cr_assert_eq(o.read(o.ctx, UINT64_MAX - 7, &v), NUB_VMEM_E_ACCESS);
    uint64_t pa;
    cr_assert_eq(nub_vmem_buf_alloc(&b, &pa), NUB_VMEM_OK);
    cr_assert_eq(pa, 0x2000);
    cr_assert_eq(mem[4096], 0);
    cr_assert_eq(nub_vmem_buf_alloc(&b, &pa), NUB_VMEM_E_NOMEM);
    struct nub_vmem32_ops o32 = nub_vmem_buf_ops32(&b, root);
    uint32_t v32;
    cr_assert_eq(o32.write(o32.ctx, 0x2ffc, 0x12345678u), NUB_VMEM_OK);
    cr_assert_eq(o32.read(o32.ctx, 0x2ffc, &v32), NUB_VMEM_OK);
    cr_assert_eq(v32, 0x12345678u);
    cr_assert_eq(o32.read(o32.ctx, 0x3000, &v32), NUB_VMEM_E_ACCESS);
    cr_assert_eq(o32.read(o32.ctx, 0x2ffe, &v32), NUB_VMEM_E_ACCESS);
}

Test(vmem, tables_bound_values)
{
    uint64_t n;
    struct nub_vmem_range one = { 0x1000, PG };
    cr_assert_eq(nub_vmem_tables_bound(&one, 1, &n), NUB_VMEM_OK);
    cr_assert_eq(n, 4);
    cr_assert_eq(nub_vmem_tables_bound(NULL, 0, &n), NUB_VMEM_OK);
    cr_assert_eq(n, 1);
    /* Crosses a 2 MiB and a 1 GiB boundary: 1 PDPT, 2 PD, 2 PT. */
    struct nub_vmem_range cross = { 0x3ffff000, 2 * PG };
    cr_assert_eq(nub_vmem_tables_bound(&cross, 1, &n), NUB_VMEM_OK);
    cr_assert_eq(n, 1 + 1 + 2 + 2);
    struct nub_vmem_range top = { 0xffffffffffffe000ull, 2 * PG };
    cr_assert_eq(nub_vmem_tables_bound(&top, 1, &n), NUB_VMEM_OK);
    cr_assert_eq(n, 4);
    struct nub_vmem_range bad[] = { { 0x1000, 0 }, { 0xfffffffffffff000ull, 2 * PG } };
    cr_assert_eq(nub_vmem_tables_bound(&bad[0], 1, &n), NUB_VMEM_E_RANGE);
    cr_assert_eq(nub_vmem_tables_bound(&bad[1], 1, &n), NUB_VMEM_E_RANGE);
    /* Building exactly what the bound says is enough. */
    struct tbuf t;
    tb_init(&t, 0x100000, 6 * PG);
    cr_assert_eq(nub_vmem_map(&t.ops, 0x3ffff000, 0x1000, 2 * PG, RW), NUB_VMEM_OK);
    cr_assert_eq(t.b.used, 6 * PG);
    tb_free(&t);
}

Test(vmem, err_names)
{
    cr_assert_str_eq(nub_vmem_err_name(NUB_VMEM_OK), "NUB_VMEM_OK");
    cr_assert_str_eq(nub_vmem_err_name(NUB_VMEM_E_ALIGN), "NUB_VMEM_E_ALIGN");
    cr_assert_str_eq(nub_vmem_err_name(NUB_VMEM_E_RANGE), "NUB_VMEM_E_RANGE");
    cr_assert_str_eq(nub_vmem_err_name(NUB_VMEM_E_OVERLAP), "NUB_VMEM_E_OVERLAP");
    cr_assert_str_eq(nub_vmem_err_name(NUB_VMEM_E_NOMEM), "NUB_VMEM_E_NOMEM");
    cr_assert_str_eq(nub_vmem_err_name(NUB_VMEM_E_ACCESS), "NUB_VMEM_E_ACCESS");
    cr_assert_str_eq(nub_vmem_err_name(NUB_VMEM_E_UNMAPPED), "NUB_VMEM_E_UNMAPPED");
    cr_assert_str_eq(nub_vmem_err_name(NUB_VMEM_E_LIMIT), "NUB_VMEM_E_LIMIT");
    cr_assert_str_eq(nub_vmem_err_name(NUB_VMEM_E_INVAL), "NUB_VMEM_E_INVAL");
    cr_assert_str_eq(nub_vmem_err_name(-1000), "NUB_VMEM_E_?");
}

/* ---- multi-root walker and linker ----------------------------------- */

#define TOP_PML4E_VA 0xffffff8000000000ull
#define KBASE 0xffffffff80000000ull

struct spaces {
    struct tbuf t;
    uint64_t roots[4];
};

/*
 * A: low and high mappings.  B: own low page, shares A's top PDPT (copied
 * PML4[511]).  C: own page, shares A's PT for 0x400000 at 0x400000 and at
 * 0xa00000.  D: A's top PDPT but through an NX PML4 entry (no sharing:
 * effective permissions differ).
 */
static void build_spaces(struct spaces *s)
{
    struct tbuf *t = &s->t;
    tb_init(t, 0x100000, 256 * PG);
    uint64_t a = s->roots[0] = t->root;
    struct nub_vmem_ops oa = tb_ops(t, a);
    cr_assert_eq(nub_vmem_map(&oa, 0x200000, 0x3000000, 3 * PG, RX), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(&oa, 0x400000, 0x1000000, MB2, RW), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(&oa, KBASE, 0x2000000, 0x10000, RX), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(&oa, KBASE + 0x10000, 0x2010000, 0x8000, RW), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem_map(&oa, 0xfffffffffffff000ull, 0x5000000, PG, RW), NUB_VMEM_OK);
    uint64_t b = s->roots[1] = tb_new_root(t);
    struct nub_vmem_ops ob = tb_ops(t, b);
    cr_assert_eq(nub_vmem_map(&ob, 0x1000, 0x6000000, 2 * PG, RW | NUB_VMEM_USER),
                 NUB_VMEM_OK);
    put64(t, b + 511 * 8, raw64(t, a + 511 * 8));
    uint64_t c = s->roots[2] = tb_new_root(t);
    struct nub_vmem_ops oc = tb_ops(t, c);
    cr_assert_eq(nub_vmem_map(&oc, 0x200000, 0x7000000, PG, RW), NUB_VMEM_OK);
    uint64_t a_pde = raw64(t, entry_pa(t, a, 0x400000, 2));
    put64(t, entry_pa(t, c, 0x400000, 2), a_pde);
    put64(t, entry_pa(t, c, 0xa00000, 2), a_pde);
    uint64_t d = s->roots[3] = tb_new_root(t);
    put64(t, d + 511 * 8, raw64(t, a + 511 * 8) | NUB_VMEM_PTE_NX);
}

static void expect_run(const struct nub_vmem_item *it, uint32_t space, uint64_t va,
                       uint64_t pa, uint64_t len, uint32_t flags)
{
    cr_assert_eq(it->kind, NUB_VMEM_ITEM_RUN, "want run at %#lx", (unsigned long)va);
    cr_assert_eq(it->space, space);
    cr_assert_eq(it->run.va, va);
    cr_assert_eq(it->run.pa, pa);
    cr_assert_eq(it->run.len, len, "len %#lx", (unsigned long)it->run.len);
    cr_assert_eq(it->run.flags, flags);
}

static void expect_ref(const struct nub_vmem_item *it, uint32_t space, uint32_t depth,
                       uint32_t owner, uint64_t our_va, uint64_t their_va)
{
    cr_assert_eq(it->kind, NUB_VMEM_ITEM_REF, "want ref at %#lx", (unsigned long)our_va);
    cr_assert_eq(it->space, space);
    cr_assert_eq(it->ref.depth, depth);
    cr_assert_eq(it->ref.owner, owner);
    cr_assert_eq(it->ref.our_va, our_va);
    cr_assert_eq(it->ref.their_va, their_va);
}

static size_t walk_spaces(struct spaces *s, size_t n, struct nub_vmem_item *out, size_t cap)
{
    struct nub_vmem_seen seen[64];
    struct nub_vmem_walk w;
    size_t k = 0;
    int rc;
    cr_assert_eq(nub_vmem_spaces_init(&w, &s->t.ops, s->roots, n, seen, 64), NUB_VMEM_OK);
    while ((rc = nub_vmem_spaces_next(&w, &out[k])) > 0)
        cr_assert_lt(++k, cap);
    cr_assert_eq(rc, 0, "%s", nub_vmem_err_name(rc));
    return k;
}

Test(vmem, spaces_walk_reports_shared_tables)
{
    struct spaces s;
    build_spaces(&s);
    struct nub_vmem_item it[32];
    size_t n = walk_spaces(&s, 4, it, 32);
    cr_assert_eq(n, 13);
    expect_run(&it[0], 0, 0x200000, 0x3000000, 3 * PG, RX);
    expect_run(&it[1], 0, 0x400000, 0x1000000, MB2, RW);
    expect_run(&it[2], 0, KBASE, 0x2000000, 0x10000, RX);
    expect_run(&it[3], 0, KBASE + 0x10000, 0x2010000, 0x8000, RW);
    expect_run(&it[4], 0, 0xfffffffffffff000ull, 0x5000000, PG, RW);
    expect_run(&it[5], 1, 0x1000, 0x6000000, 2 * PG, RW | NUB_VMEM_USER);
    expect_ref(&it[6], 1, 1, 0, TOP_PML4E_VA, TOP_PML4E_VA);
    expect_run(&it[7], 2, 0x200000, 0x7000000, PG, RW);
    expect_ref(&it[8], 2, 3, 0, 0x400000, 0x400000);
    expect_ref(&it[9], 2, 3, 0, 0xa00000, 0x400000);
    /* D: same tables as A's top, but NX above them: walked, X dropped. */
    expect_run(&it[10], 3, KBASE, 0x2000000, 0x10000, NUB_VMEM_R);
    expect_run(&it[11], 3, KBASE + 0x10000, 0x2010000, 0x8000, RW);
    expect_run(&it[12], 3, 0xfffffffffffff000ull, 0x5000000, PG, RW);
    tb_free(&s.t);
}

Test(vmem, spaces_walk_seen_full)
{
    struct spaces s;
    build_spaces(&s);
    struct nub_vmem_seen seen[2];
    struct nub_vmem_walk w;
    struct nub_vmem_item it;
    int rc;
    cr_assert_eq(nub_vmem_spaces_init(&w, &s.t.ops, s.roots, 4, seen, 2), NUB_VMEM_OK);
    while ((rc = nub_vmem_spaces_next(&w, &it)) > 0)
        ;
    cr_assert_eq(rc, NUB_VMEM_E_NOMEM);
    cr_assert_eq(nub_vmem_spaces_init(&w, NULL, s.roots, 4, seen, 2), NUB_VMEM_E_INVAL);
    tb_free(&s.t);
}

/* Rebuild every space of s into a fresh buffer; return the new roots. */
static void rebuild(struct spaces *s, size_t n, uint32_t extra, struct tbuf *dst,
                    uint64_t *new_roots)
{
    struct nub_vmem_item it[32];
    size_t k = walk_spaces(s, n, it, 32);
    tb_init(dst, 0x8000000, 128 * PG);
    new_roots[0] = dst->root;
    for (size_t i = 1; i < n; i++)
        new_roots[i] = tb_new_root(dst);
    for (size_t i = 0; i < k; i++) {
        struct nub_vmem_ops o = tb_ops(dst, new_roots[it[i].space]);
        int rc = nub_vmem_space_map(&o, new_roots, it[i].space, &it[i], extra);
        cr_assert_eq(rc, NUB_VMEM_OK, "item %zu: %s", i, nub_vmem_err_name(rc));
    }
}

static void same_translation(struct tbuf *x, uint64_t rx, struct tbuf *y, uint64_t ry)
{
    struct nub_vmem_ops ox = tb_ops(x, rx), oy = tb_ops(y, ry);
    struct nub_vmem_run a[32], b[32];
    size_t na = collect_runs(&ox, a, 32), nb = collect_runs(&oy, b, 32);
    cr_assert_eq(na, nb);
    for (size_t i = 0; i < na; i++) {
        cr_assert_eq(a[i].va, b[i].va);
        cr_assert_eq(a[i].pa, b[i].pa);
        cr_assert_eq(a[i].len, b[i].len);
        cr_assert_eq(a[i].flags, b[i].flags);
        for (uint64_t off = 0; off < a[i].len; off += PG) {
            uint64_t pa1, pa2;
            uint32_t f1, f2;
            cr_assert_eq(nub_vmem_virt_to_phys(&ox, a[i].va + off, &pa1, &f1), NUB_VMEM_OK);
            cr_assert_eq(nub_vmem_virt_to_phys(&oy, a[i].va + off, &pa2, &f2), NUB_VMEM_OK);
            cr_assert_eq(pa1, pa2);
            cr_assert_eq(f1 & ~SIZE_FLAGS, f2 & ~SIZE_FLAGS);
        }
    }
}

static void check_rebuild(uint32_t extra)
{
    struct spaces s;
    struct tbuf d;
    uint64_t nr[4];
    build_spaces(&s);
    rebuild(&s, 4, extra, &d, nr);
    for (int i = 0; i < 4; i++)
        same_translation(&s.t, s.roots[i], &d, nr[i]);
    /* B shares A's rebuilt top PDPT. */
    cr_assert_eq(raw64(&d, nr[1] + 511 * 8) & NUB_VMEM_PTE_ADDR,
                 raw64(&d, nr[0] + 511 * 8) & NUB_VMEM_PTE_ADDR);
    /* D does not: it has its own copy. */
    cr_assert_neq(raw64(&d, nr[3] + 511 * 8) & NUB_VMEM_PTE_ADDR,
                  raw64(&d, nr[0] + 511 * 8) & NUB_VMEM_PTE_ADDR);
    /* C's PDEs for 0x400000 and 0xa00000 are A's rebuilt one. */
    uint64_t a_pde = raw64(&d, entry_pa(&d, nr[0], 0x400000, 2));
    cr_assert_eq(raw64(&d, entry_pa(&d, nr[2], 0x400000, 2)), a_pde);
    cr_assert_eq(raw64(&d, entry_pa(&d, nr[2], 0xa00000, 2)), a_pde);
    if (extra & NUB_VMEM_LARGE)
        cr_assert(a_pde & NUB_VMEM_PTE_PS, "A's 2 MiB run should be a large page");
    else
        cr_assert_eq(a_pde & NUB_VMEM_PTE_PS, 0);
    tb_free(&d);
    tb_free(&s.t);
}

Test(vmem, spaces_rebuild_identical_and_shared)
{
    check_rebuild(0);
}

Test(vmem, spaces_rebuild_with_large_pages)
{
    check_rebuild(NUB_VMEM_LARGE);
}

Test(vmem, link_creates_missing_owner_table_and_rejects)
{
    struct tbuf t;
    tb_init(&t, 0x100000, 32 * PG);
    uint64_t roots[2] = { t.root, tb_new_root(&t) };
    struct nub_vmem_ops o1 = tb_ops(&t, roots[1]);
    /* Owner 0 has nothing at 0x600000: an empty PT is made and shared. */
    struct nub_vmem_ref ref = { .depth = 3, .owner = 0, .our_va = 0x800000,
                                .their_va = 0x600000 };
    cr_assert_eq(nub_vmem_link(&o1, roots, 1, &ref), NUB_VMEM_OK);
    uint64_t e0 = raw64(&t, entry_pa(&t, roots[0], 0x600000, 2));
    cr_assert(e0 & NUB_VMEM_PTE_P);
    cr_assert_eq(raw64(&t, entry_pa(&t, roots[1], 0x800000, 2)), e0);
    /* A page mapped through the owner shows up in both. */
    struct nub_vmem_ops o0 = tb_ops(&t, roots[0]);
    cr_assert_eq(nub_vmem_map(&o0, 0x601000, 0x9000, PG, RW), NUB_VMEM_OK);
    expect_tr(&o1, 0x801000, 0x9000, RW);
    /* Rejects, with the tables unchanged. */
    struct snap s = snap_take(&t);
    cr_assert_eq(nub_vmem_link(&o1, roots, 1, &ref), NUB_VMEM_E_OVERLAP);
    struct nub_vmem_ref bad = ref;
    bad.depth = 0;
    cr_assert_eq(nub_vmem_link(&o1, roots, 1, &bad), NUB_VMEM_E_INVAL);
    bad = ref;
    bad.owner = 1;
    cr_assert_eq(nub_vmem_link(&o1, roots, 1, &bad), NUB_VMEM_E_INVAL);
    cr_assert_eq(nub_vmem_link(&o0, roots, 1, &ref), NUB_VMEM_E_INVAL);
    bad = ref;
    bad.our_va = 0x801000;
    cr_assert_eq(nub_vmem_link(&o1, roots, 1, &bad), NUB_VMEM_E_ALIGN);
    bad = ref;
    bad.our_va = 0x0000800000000000ull;
    cr_assert_eq(nub_vmem_link(&o1, roots, 1, &bad), NUB_VMEM_E_RANGE);
    snap_check(&t, &s, "link rejects");
    tb_free(&t);
}

/* ---- i686 ------------------------------------------------------------ */

struct tbuf32 {
    struct tbuf t;
    struct nub_vmem32_ops ops;
};

static void tb32_init(struct tbuf32 *t, uint64_t base, uint64_t cap)
{
    tb_init(&t->t, base, cap);
    t->ops = nub_vmem_buf_ops32(&t->t.b, t->t.root);
}

static void expect_tr32(const struct nub_vmem32_ops *o, uint32_t va, uint64_t pa,
                        uint32_t flags)
{
    uint64_t got;
    uint32_t fl;
    int rc = nub_vmem32_virt_to_phys(o, va, &got, &fl);
    cr_assert_eq(rc, NUB_VMEM_OK, "va %#x: %s", va, nub_vmem_err_name(rc));
    cr_assert_eq(got, pa, "va %#x: pa %#lx", va, (unsigned long)got);
    cr_assert_eq(fl, flags, "va %#x: flags %#x", va, fl);
}

Test(vmem32, raw_bits_and_translate)
{
    struct tbuf32 t;
    tb32_init(&t, 0x10000, 8 * PG);
    cr_assert_eq(nub_vmem32_map(&t.ops, 0x400000, 0x800000, PG, RW), NUB_VMEM_OK);
    cr_assert_eq(raw32(&t.t, 0x10000 + 1 * 4), 0x11003u);
    cr_assert_eq(raw32(&t.t, 0x11000), 0x800003u);
    cr_assert_eq(nub_vmem32_map(&t.ops, 0x401000, 0x900000, PG, NUB_VMEM_R | NUB_VMEM_USER),
                 NUB_VMEM_OK);
    cr_assert_eq(raw32(&t.t, 0x11004), 0x900005u);
    cr_assert_eq(raw32(&t.t, 0x10004), 0x11007u);
    /* 4 MiB PSE page at 3 GiB. */
    cr_assert_eq(nub_vmem32_map(&t.ops, 0xc0000000u, 0x400000, 0x400000, RW | NUB_VMEM_LARGE),
                 NUB_VMEM_OK);
    cr_assert_eq(raw32(&t.t, 0x10000 + 768 * 4), 0x400083u);
    expect_tr32(&t.ops, 0x400abc, 0x800abc, RWX);
    expect_tr32(&t.ops, 0x401fff, 0x900fff, RX | NUB_VMEM_USER);
    expect_tr32(&t.ops, 0xc0123456u, 0x523456, RWX | NUB_VMEM_LARGE);
    /* The last page of the 4 GiB space. */
    cr_assert_eq(nub_vmem32_map(&t.ops, 0xfffff000u, 0xfffff000ull, PG, RW), NUB_VMEM_OK);
    expect_tr32(&t.ops, 0xffffffffu, 0xffffffffull, RWX);
    cr_assert_eq(nub_vmem32_virt_to_phys(&t.ops, 0x402000, NULL, NULL), NUB_VMEM_E_UNMAPPED);
    cr_assert_eq(nub_vmem32_virt_to_phys(&t.ops, 0x800000, NULL, NULL), NUB_VMEM_E_UNMAPPED);
    tb_free(&t.t);
}

static void reject32(struct tbuf32 *t, uint32_t va, uint64_t pa, uint64_t len,
                     uint32_t flags, int want, const char *what)
{
    struct snap s = snap_take(&t->t);
    int rc = nub_vmem32_map(&t->ops, va, pa, len, flags);
    cr_assert_eq(rc, want, "%s: got %s", what, nub_vmem_err_name(rc));
    snap_check(&t->t, &s, what);
}

Test(vmem32, rejects)
{
    struct tbuf32 t;
    tb32_init(&t, 0x10000, 8 * PG);
    cr_assert_eq(nub_vmem32_map(&t.ops, 0x400000, 0x800000, 2 * PG, RW), NUB_VMEM_OK);
    cr_assert_eq(nub_vmem32_map(&t.ops, 0x800000, 0x800000, 0x400000, RW | NUB_VMEM_LARGE),
                 NUB_VMEM_OK);
    reject32(&t, 0x500800, 0x1000, PG, RW, NUB_VMEM_E_ALIGN, "va");
    reject32(&t, 0x500000, 0x1001, PG, RW, NUB_VMEM_E_ALIGN, "pa");
    reject32(&t, 0x500000, 0x1000, 10, RW, NUB_VMEM_E_ALIGN, "len");
    reject32(&t, 0x500000, 0x1000, 0, RW, NUB_VMEM_E_RANGE, "zero");
    reject32(&t, 0xfffff000u, 0x1000, 2 * PG, RW, NUB_VMEM_E_RANGE, "va past 4G");
    reject32(&t, 0x500000, 0xfffff000ull, 2 * PG, RW, NUB_VMEM_E_RANGE, "pa past 4G");
    reject32(&t, 0x500000, 0x100000000ull, PG, RW, NUB_VMEM_E_RANGE, "pa at 4G");
    reject32(&t, 0x3ff000, 0x1000, 2 * PG, RW, NUB_VMEM_E_OVERLAP, "overlap pt");
    reject32(&t, 0xbff000, 0x1000, 2 * PG, RW, NUB_VMEM_E_OVERLAP, "overlap 4M");
    reject32(&t, 0x400000, 0x400000, 0x400000, RW | NUB_VMEM_LARGE, NUB_VMEM_E_OVERLAP,
             "4M over PT");
    reject32(&t, 0x500000, 0x1000, PG, 0x200, NUB_VMEM_E_INVAL, "flags");
    tb_free(&t.t);
}

Test(vmem32, random_ranges)
{
    enum { N = 200 };
    struct tbuf32 t;
    tb32_init(&t, 0x100000, 1100 * PG);
    static struct mrange m[N];
    size_t n = 0;
    uint64_t seed = 4242;
    for (int i = 0; i < N; i++) {
        struct mrange r;
        r.len = (1 + rng_next(&seed) % 16) * PG;
        r.va = (rng_next(&seed) % ((1ull << 20) - 16)) * PG;
        r.pa = (rng_next(&seed) % ((1ull << 20) - 16)) * PG;
        r.flags = (rng_next(&seed) & 1) ? RW : NUB_VMEM_R | NUB_VMEM_USER;
        bool ov = model_overlaps(m, n, r.va, r.len);
        int rc = nub_vmem32_map(&t.ops, (uint32_t)r.va, r.pa, r.len, r.flags);
        cr_assert_eq(rc, ov ? NUB_VMEM_E_OVERLAP : NUB_VMEM_OK);
        if (!ov)
            m[n++] = r;
    }
    for (size_t i = 0; i < n; i++)
        for (uint64_t off = 0; off < m[i].len; off += PG)
            expect_tr32(&t.ops, (uint32_t)(m[i].va + off + 0x10), m[i].pa + off + 0x10,
                        m[i].flags | NUB_VMEM_R | NUB_VMEM_X);
    tb_free(&t.t);
}
