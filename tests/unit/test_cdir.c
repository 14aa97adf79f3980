/* Unit tests of the cache directory and the host reader over corrupted memory: bounds, bounded probing, lying counters, boot info outside the region. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/nubk/cache.h"
#include "bytes.h"
#include "nub/abi.h"
#include "nub/cdir.h"

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill(uint64_t *s, void *p, size_t n)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rng(s);
}

/* An exactly-sized heap block (so ASan flags any read past it) holding an empty directory. */
static uint8_t *new_dir(uint64_t capacity, uint64_t arena, uint64_t *size)
{
    cr_assert_eq(nub_cdir_size(capacity, arena, size), NUB_CDIR_OK);
    uint8_t *d = malloc(*size);
    cr_assert_not_null(d);
    memset(d, 0xA5, *size);
    cr_assert_eq(nub_cdir_init(d, *size, capacity, arena), NUB_CDIR_OK);
    return d;
}

static void hash_of(uint64_t i, uint8_t h[32])
{
    uint64_t s = i * 0x9e3779b97f4a7c15ull + 1;
    fill(&s, h, 32);
}

/* Insert blob "i" (8 bytes) under hash_of(i). */
static int insert(uint8_t *d, uint64_t size, uint64_t i)
{
    uint8_t h[32], *dst;
    hash_of(i, h);
    int rc = nub_cdir_insert(d, size, h, sizeof i, &dst);
    if (rc == NUB_CDIR_OK)
        memcpy(dst, &i, sizeof i);
    return rc;
}

/* Look hash up; when found the view must lie inside the arena. */
static int find(const struct nub_cdir_view *v, const uint8_t h[32])
{
    uint64_t off = 0, len = 0;
    int rc = nub_cdir_find(v, h, &off, &len);
    cr_assert(rc == 0 || rc == 1 || rc == NUB_CDIR_E_CORRUPT, "find returned %d", rc);
    if (rc == 1) {
        cr_assert(len != 0 && off >= v->arena_off && len <= v->arena_size &&
                  off - v->arena_off <= v->arena_size - len, "view outside the arena");
        volatile uint8_t sink = v->base[off] ^ v->base[off + len - 1]; /* ASan: readable */
        (void)sink;
    }
    return rc;
}

Test(cdir, size_and_layout_rules)
{
    uint64_t size;
    cr_assert_eq(nub_cdir_size(8, 0, &size), NUB_CDIR_OK);
    cr_assert_eq(size, 64 + 8 * 48);
    cr_assert_eq(nub_cdir_size(4096, 1 << 20, &size), NUB_CDIR_OK);
    cr_assert_eq(size, 64 + 4096 * 48 + (1 << 20));
    cr_assert_eq(nub_cdir_size(4, 0, &size), NUB_CDIR_E_INVALID, "below the minimum");
    cr_assert_eq(nub_cdir_size(24, 0, &size), NUB_CDIR_E_INVALID, "not a power of two");
    cr_assert_eq(nub_cdir_size(1ull << 33, 0, &size), NUB_CDIR_E_INVALID, "above the maximum");
    cr_assert_eq(nub_cdir_size(8, UINT64_MAX - 100, &size), NUB_CDIR_E_INVALID, "overflow");
    uint8_t small[64 + 8 * 48];
    cr_assert_eq(nub_cdir_init(small, sizeof small, 8, 1), NUB_CDIR_E_INVALID, "too small");
    cr_assert_eq(NUB_CDIR_MAX_ENTRIES(8), 7);
    cr_assert_eq(NUB_CDIR_MAX_ENTRIES(4096), 3584);
}

Test(cdir, insert_find_present_full)
{
    uint64_t size;
    uint8_t *d = new_dir(16, 1024, &size);
    struct nub_cdir_view v;
    uint8_t h[32];
    cr_assert_eq(nub_cdir_open(&v, d, size), NUB_CDIR_OK);
    for (uint64_t i = 0; i < NUB_CDIR_MAX_ENTRIES(16); i++)
        cr_assert_eq(insert(d, size, i), NUB_CDIR_OK, "insert %llu", (unsigned long long)i);
    cr_assert_eq(insert(d, size, 3), NUB_CDIR_PRESENT);
    cr_assert_eq(insert(d, size, 100), NUB_CDIR_E_FULL);
    uint64_t count;
    cr_assert_eq(nub_cdir_count(&v, &count), NUB_CDIR_OK);
    cr_assert_eq(count, 14);
    for (uint64_t i = 0; i < 14; i++) {
        uint64_t off, len, val;
        hash_of(i, h);
        cr_assert_eq(nub_cdir_find(&v, h, &off, &len), 1);
        cr_assert_eq(len, 8);
        memcpy(&val, d + off, 8);
        cr_assert_eq(val, i);
    }
    hash_of(100, h);
    cr_assert_eq(nub_cdir_find(&v, h, NULL, NULL), 0);
    uint8_t *dst = (uint8_t *)1;
    cr_assert_eq(nub_cdir_insert(d, size, h, 0, &dst), NUB_CDIR_E_INVALID, "empty blob");
    cr_assert_eq(nub_cdir_insert(d, size, h, 8, NULL), NUB_CDIR_E_INVALID);
    free(d);
}

Test(cdir, arena_full_leaves_directory_unchanged)
{
    uint64_t size;
    uint8_t *d = new_dir(64, 20, &size);
    cr_assert_eq(insert(d, size, 1), NUB_CDIR_OK);
    cr_assert_eq(insert(d, size, 2), NUB_CDIR_OK);
    uint8_t before[64];
    memcpy(before, d, 64);
    cr_assert_eq(insert(d, size, 3), NUB_CDIR_E_ARENA);
    cr_assert_eq(memcmp(before, d, 64), 0);
    free(d);
}

Test(cdir, probe_that_never_ends_terminates)
{
    /* Every slot filled with non-matching entries, while the count claims 0. */
    uint64_t size, cap = 1024;
    uint8_t *d = new_dir(cap, 8, &size);
    struct nub_cdir_header *hd = (struct nub_cdir_header *)d;
    struct nub_cdir_slot *slots = (struct nub_cdir_slot *)(d + hd->table_off);
    for (uint64_t i = 0; i < cap; i++) {
        memset(slots[i].hash, 0x11, 32);
        slots[i].blob_off = hd->arena_off;
        slots[i].blob_len = 8;
    }
    struct nub_cdir_view v;
    cr_assert_eq(nub_cdir_open(&v, d, size), NUB_CDIR_OK, "count 0 is plausible");
    uint8_t h[32];
    for (uint64_t i = 0; i < 100; i++) {
        hash_of(i, h);
        cr_assert_eq(find(&v, h), 0);
    }
    cr_assert_eq(insert(d, size, 5), NUB_CDIR_E_PROBE, "no empty slot: insert refuses too");
    memset(h, 0x11, 32);
    cr_assert_eq(find(&v, h), 1);
    free(d);
}

Test(cdir, header_lies_are_refused)
{
    uint64_t size;
    uint8_t *d = new_dir(64, 256, &size);
    struct nub_cdir_header *hd = (struct nub_cdir_header *)d, good = *hd;
    struct nub_cdir_view v;
    static const char *const what[] = {
        "magic", "version", "capacity 0", "capacity 63", "capacity past the table",
        "table_off past the end", "table_off inside the header", "arena overflow",
        "arena past the end", "arena overlaps the table", "count lies", "arena_used lies",
    };
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
        *hd = good;
        switch (i) {
        case 0: hd->magic ^= 1; break;
        case 1: hd->version = 2; break;
        case 2: hd->capacity = 0; break;
        case 3: hd->capacity = 63; break;
        case 4: hd->capacity = 128; break;
        case 5: hd->table_off = UINT64_MAX - 8; break;
        case 6: hd->table_off = 8; break;
        case 7: hd->arena_off = UINT64_MAX - 4; break;
        case 8: hd->arena_size = 257; break;
        case 9: hd->arena_off -= 48; break;
        case 10: hd->count = NUB_CDIR_MAX_ENTRIES(64) + 1; break;
        default: hd->arena_used = 257; break;
        }
        cr_assert_eq(nub_cdir_open(&v, d, size), NUB_CDIR_E_CORRUPT, "%s accepted", what[i]);
    }
    *hd = good;
    cr_assert_eq(nub_cdir_open(&v, d, size), NUB_CDIR_OK);
    cr_assert_eq(nub_cdir_open(&v, d, 63), NUB_CDIR_E_CORRUPT, "size below the header");
    cr_assert_eq(nub_cdir_open(&v, d, size - 1), NUB_CDIR_E_CORRUPT, "arena past dir_size");
    /* A count that grows after open is caught by nub_cdir_count. */
    hd->count = UINT64_MAX;
    uint64_t n;
    cr_assert_eq(nub_cdir_count(&v, &n), NUB_CDIR_E_CORRUPT);
    free(d);
}

Test(cdir, slots_pointing_outside_the_arena)
{
    uint64_t size;
    uint8_t *d = new_dir(8, 64, &size);
    cr_assert_eq(insert(d, size, 1), NUB_CDIR_OK);
    struct nub_cdir_header *hd = (struct nub_cdir_header *)d;
    struct nub_cdir_slot *slots = (struct nub_cdir_slot *)(d + hd->table_off);
    struct nub_cdir_view v;
    cr_assert_eq(nub_cdir_open(&v, d, size), NUB_CDIR_OK);
    uint8_t h[32];
    hash_of(1, h);
    struct nub_cdir_slot *s = &slots[0];
    while (s->blob_len == 0)
        s++;
    const uint64_t offs[][2] = {
        {UINT64_MAX - 3, 8},         /* offset + length overflows */
        {0, 8},                      /* into the header */
        {hd->table_off, 8},          /* into the table */
        {hd->arena_off + 60, 8},     /* straddles the arena end */
        {hd->arena_off, UINT64_MAX}, /* huge length */
        {size, 1},                   /* past the directory */
    };
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        s->blob_off = offs[i][0];
        s->blob_len = offs[i][1];
        cr_assert_eq(find(&v, h), NUB_CDIR_E_CORRUPT, "case %zu", i);
        cr_assert_eq(insert(d, size, 1), NUB_CDIR_E_CORRUPT, "insert checks too (case %zu)", i);
    }
    free(d);
}

/* Which header bytes and which slots a mutation round changed. */
struct damage {
    int header;
    uint8_t slot[32];
};

/* Change 1..24 random bytes of the header and table (not the arena), recording what changed. */
static void mutate(uint64_t *seed, uint8_t *d, struct damage *dm)
{
    memset(dm, 0, sizeof *dm);
    for (int k = 0, flips = 1 + (int)(rng(seed) % 24); k < flips; k++) {
        uint64_t at = rng(seed) % (64 + 32 * 48);
        uint8_t v = (uint8_t)rng(seed);
        if (d[at] == v)
            continue;
        d[at] = v;
        if (at < 64)
            dm->header = 1;
        else
            dm->slot[(at - 64) / 48] = 1;
    }
}

/* Index of the slot holding hash_of(i) in a freshly built directory. */
static uint64_t slot_of(const uint8_t *d, uint64_t i)
{
    uint8_t h[32];
    hash_of(i, h);
    for (uint64_t k = 0; k < 32; k++)
        if (memcmp(d + 64 + k * 48, h, 32) == 0)
            return k;
    cr_assert_fail("entry %llu not in the table", (unsigned long long)i);
    return 0;
}

/*
 * A directory of 20 entries with its header and table mutated. Whatever the
 * damage: open answers OK or CORRUPT, and OK only with a view inside the
 * block; an intact header always opens and counts 20; a hit is inside the
 * arena (find) and, when its own slot is intact, is that entry's bytes; an
 * entry whose probe run (home slot to its slot) is intact is found; after the damage an
 * insert either succeeds (and is then found) or reports the problem.
 */
static void mutate_and_check(uint64_t *seed)
{
    uint64_t size, home[20];
    uint8_t *d = new_dir(32, 512, &size);
    for (uint64_t i = 0; i < 20; i++) {
        cr_assert_eq(insert(d, size, i), NUB_CDIR_OK);
        home[i] = slot_of(d, i);
    }
    struct damage dm;
    mutate(seed, d, &dm);
    struct nub_cdir_view v;
    int rc = nub_cdir_open(&v, d, size);
    cr_assert(rc == NUB_CDIR_OK || rc == NUB_CDIR_E_CORRUPT, "open returned %d", rc);
    cr_assert(dm.header || rc == NUB_CDIR_OK, "an intact header must open");
    if (rc == NUB_CDIR_OK) {
        cr_assert(v.base == d && v.size == size);
        cr_assert(v.table_off >= 64 && v.table_off <= size && v.capacity * 48 <= size - v.table_off);
        cr_assert(v.arena_off <= size && v.arena_size <= size - v.arena_off);
        uint64_t n = 0;
        int crc = nub_cdir_count(&v, &n);
        cr_assert(dm.header || (crc == NUB_CDIR_OK && n == 20), "count of an intact header: %d, %llu", crc,
                  (unsigned long long)n);
        for (uint64_t i = 0; i < 20; i++) {
            uint8_t h[32];
            uint64_t off = 0, len = 0;
            hash_of(i, h);
            int f = find(&v, h);
            if (f == 1 && !dm.slot[home[i]] && nub_cdir_find(&v, h, &off, &len) == 1)
                cr_assert(len == sizeof i && memcmp(d + off, &i, sizeof i) == 0, "entry %llu: wrong bytes",
                          (unsigned long long)i);
            /* Probing starts at the hash's first 8 bytes mod capacity and walks to the entry's slot. */
            int intact_run = !dm.header;
            for (uint64_t k = nub_load_le64(h) & 31;; k = (k + 1) & 31) {
                intact_run &= !dm.slot[k];
                if (k == home[i])
                    break;
            }
            cr_assert(!intact_run || f == 1, "entry %llu lost with its probe run intact", (unsigned long long)i);
        }
    }
    uint64_t fresh = 1000 + rng(seed) % 1000;
    int irc = insert(d, size, fresh);
    cr_assert(irc == NUB_CDIR_OK || irc == NUB_CDIR_E_CORRUPT || irc == NUB_CDIR_E_FULL || irc == NUB_CDIR_E_ARENA,
              "insert returned %d", irc);
    if (irc == NUB_CDIR_OK) {
        uint8_t h[32];
        uint64_t off = 0, len = 0;
        hash_of(fresh, h);
        cr_assert_eq(nub_cdir_open(&v, d, size), NUB_CDIR_OK, "insert succeeded on a directory that does not open");
        cr_assert_eq(nub_cdir_find(&v, h, &off, &len), 1, "a successful insert is found");
        cr_assert(len == sizeof fresh && memcmp(d + off, &fresh, sizeof fresh) == 0);
    }
    free(d);
}

Test(cdir, random_bytes_and_mutations_never_crash)
{
    uint64_t seed = 0xfeedface;
    for (int round = 0; round < 2000; round++) {
        uint64_t size = 64 + rng(&seed) % 2048;
        uint8_t *d = malloc(size);
        fill(&seed, d, size);
        struct nub_cdir_view v;
        cr_assert_eq(nub_cdir_open(&v, d, size), NUB_CDIR_E_CORRUPT, "random bytes pass as a header");
        free(d);
    }
    for (int round = 0; round < 500; round++)
        mutate_and_check(&seed);
}

/* ---- the host reader: nub_cache_locate over a fake snapshot region ------ */

#define SNAP_SIZE (64u * 1024u)
#define PEB_OFF   0x1000u
#define BI_OFF    0x2000u
#define DIR_OFF   0x3000u

struct fake {
    uint8_t *snap;
    struct nub_peb *peb;
    struct nub_boot_info *bi;
    uint64_t dir_size;
};

static struct fake fake_new(void)
{
    struct fake f;
    f.snap = calloc(1, SNAP_SIZE);
    cr_assert_not_null(f.snap);
    f.peb = (struct nub_peb *)(f.snap + PEB_OFF);
    f.bi = (struct nub_boot_info *)(f.snap + BI_OFF);
    f.peb->magic = NUB_PEB_MAGIC;
    f.peb->boot_info_gva = NUB_KERNEL_BASE + BI_OFF;
    cr_assert_eq(nub_cdir_size(64, 1024, &f.dir_size), NUB_CDIR_OK);
    cr_assert_eq(nub_cdir_init(f.snap + DIR_OFF, f.dir_size, 64, 1024), NUB_CDIR_OK);
    *f.bi = (struct nub_boot_info){NUB_BOOT_INFO_MAGIC, NUB_BOOT_INFO_VERSION, 0,
                                   NUB_KERNEL_BASE + DIR_OFF, f.dir_size};
    for (uint64_t i = 0; i < 10; i++)
        cr_assert_eq(insert(f.snap + DIR_OFF, f.dir_size, i), NUB_CDIR_OK);
    return f;
}

static int locate(const struct fake *f, struct nub_cdir_view *v)
{
    const char *why = NULL;
    int rc = nub_cache_locate(f->snap, SNAP_SIZE, PEB_OFF, v, &why);
    if (rc == NUB_CDIR_E_CORRUPT)
        cr_assert(why != NULL && why[0] != '\0', "a reason is given");
    return rc;
}

Test(cache_reader, valid_directory_found)
{
    struct fake f = fake_new();
    struct nub_cdir_view v;
    cr_assert_eq(locate(&f, &v), NUB_CDIR_OK);
    cr_assert_eq(v.base, f.snap + DIR_OFF);
    uint8_t h[32];
    hash_of(3, h);
    cr_assert_eq(find(&v, h), 1);
    hash_of(30, h);
    cr_assert_eq(find(&v, h), 0);
    f.peb->boot_info_gva = 0;
    cr_assert_eq(locate(&f, &v), NUB_CACHE_LOCATE_NONE, "nothing published");
    free(f.snap);
}

Test(cache_reader, boot_info_and_directory_outside_memory)
{
    struct fake f = fake_new();
    struct nub_cdir_view v;
    const uint64_t bad_bi[] = {
        1,                                         /* below the kernel base */
        NUB_KERNEL_BASE - 8,                       /* straddles the base */
        NUB_KERNEL_BASE + SNAP_SIZE,               /* just past the end */
        NUB_KERNEL_BASE + SNAP_SIZE - 16,          /* boot info straddles the end */
        UINT64_MAX - 8,                            /* wraps */
    };
    for (size_t i = 0; i < sizeof bad_bi / sizeof bad_bi[0]; i++) {
        f.peb->boot_info_gva = bad_bi[i];
        cr_assert_eq(locate(&f, &v), NUB_CDIR_E_CORRUPT, "boot info case %zu", i);
    }
    f.peb->boot_info_gva = NUB_KERNEL_BASE + BI_OFF;
    f.bi->magic ^= 1;
    cr_assert_eq(locate(&f, &v), NUB_CDIR_E_CORRUPT, "boot info magic");
    f.bi->magic ^= 1;
    f.bi->version = 7;
    cr_assert_eq(locate(&f, &v), NUB_CDIR_E_CORRUPT, "boot info version");
    f.bi->version = NUB_BOOT_INFO_VERSION;
    const uint64_t bad_dir[][2] = {
        {NUB_KERNEL_BASE + DIR_OFF, SNAP_SIZE},          /* runs past the end */
        {NUB_KERNEL_BASE + DIR_OFF, UINT64_MAX},         /* huge */
        {UINT64_MAX - 100, 200},                         /* wraps */
        {0, f.dir_size},                                 /* null */
        {NUB_KERNEL_BASE + DIR_OFF + 8, f.dir_size},     /* header not found there */
        {NUB_KERNEL_BASE + DIR_OFF, 100},                /* too small for the table */
    };
    for (size_t i = 0; i < sizeof bad_dir / sizeof bad_dir[0]; i++) {
        f.bi->dir_gva = bad_dir[i][0];
        f.bi->dir_size = bad_dir[i][1];
        cr_assert_eq(locate(&f, &v), NUB_CDIR_E_CORRUPT, "directory case %zu", i);
    }
    f.bi->dir_gva = NUB_KERNEL_BASE + DIR_OFF;
    f.bi->dir_size = f.dir_size;
    cr_assert_eq(locate(&f, &v), NUB_CDIR_OK);
    cr_assert_eq(nub_cache_locate(f.snap, SNAP_SIZE, SNAP_SIZE - 8, &v, NULL), NUB_CDIR_E_CORRUPT,
                 "PEB past the region");
    cr_assert_eq(nub_cache_locate(f.snap, SNAP_SIZE, UINT64_MAX, &v, NULL), NUB_CDIR_E_CORRUPT);
    free(f.snap);
}

Test(cache_reader, directory_at_the_very_end_of_memory)
{
    /* The directory's last byte is the region's last byte: accepted, and ASan-clean. */
    uint64_t dsize;
    cr_assert_eq(nub_cdir_size(8, 16, &dsize), NUB_CDIR_OK);
    uint64_t snap_size = PEB_OFF + 4096 + dsize;
    uint8_t *snap = calloc(1, snap_size);
    struct nub_peb *peb = (struct nub_peb *)(snap + PEB_OFF);
    struct nub_boot_info *bi = (struct nub_boot_info *)(snap + 0x100);
    uint64_t doff = snap_size - dsize;
    peb->boot_info_gva = NUB_KERNEL_BASE + 0x100;
    *bi = (struct nub_boot_info){NUB_BOOT_INFO_MAGIC, NUB_BOOT_INFO_VERSION, 0, NUB_KERNEL_BASE + doff, dsize};
    cr_assert_eq(nub_cdir_init(snap + doff, dsize, 8, 16), NUB_CDIR_OK);
    cr_assert_eq(insert(snap + doff, dsize, 1), NUB_CDIR_OK);
    struct nub_cdir_view v;
    cr_assert_eq(nub_cache_locate(snap, snap_size, PEB_OFF, &v, NULL), NUB_CDIR_OK);
    uint8_t h[32];
    hash_of(1, h);
    cr_assert_eq(find(&v, h), 1);
    bi->dir_size = dsize + 1;
    cr_assert_eq(nub_cache_locate(snap, snap_size, PEB_OFF, &v, NULL), NUB_CDIR_E_CORRUPT);
    free(snap);
}

/*
 * Scribble over the boot info and the directory (header and table). The
 * reader answers OK, NONE or CORRUPT (with a reason, see locate()); OK only
 * with a view inside the snapshot region; every hit inside the arena
 * (find); intact boot info and header always locate, and with the table
 * intact too every entry is found with its bytes; a broken boot-info magic
 * is always CORRUPT.
 */
Test(cache_reader, random_memory_never_crashes)
{
    uint64_t seed = 0xabad1dea;
    int located = 0, corrupt = 0;
    for (int round = 0; round < 300; round++) {
        struct fake f = fake_new();
        int bi_hit = 0, magic_hit = 0, hdr_hit = 0, table_hit = 0;
        for (int k = 0, n = 1 + (int)(rng(&seed) % 40); k < n; k++) {
            uint64_t where = rng(&seed) % 3;
            uint64_t off = where == 0 ? BI_OFF + rng(&seed) % sizeof(struct nub_boot_info)
                                      : DIR_OFF + rng(&seed) % (64 + 64 * 48);
            uint8_t v = (uint8_t)rng(&seed);
            if (f.snap[off] == v)
                continue;
            f.snap[off] = v;
            bi_hit |= where == 0;
            magic_hit |= where == 0 && off < BI_OFF + 8;
            hdr_hit |= where != 0 && off < DIR_OFF + 64;
            table_hit |= where != 0 && off >= DIR_OFF + 64;
        }
        if (round % 10 == 0) {
            fill(&seed, f.snap + DIR_OFF, 64 + 64 * 48);
            hdr_hit = table_hit = 1;
        }
        struct nub_cdir_view v;
        int rc = locate(&f, &v);
        cr_assert(rc == NUB_CDIR_OK || rc == NUB_CACHE_LOCATE_NONE || rc == NUB_CDIR_E_CORRUPT, "rc %d", rc);
        cr_assert(!magic_hit || rc == NUB_CDIR_E_CORRUPT, "a broken boot-info magic located (%d)", rc);
        cr_assert(bi_hit || hdr_hit || rc == NUB_CDIR_OK, "intact boot info and header must locate (%d)", rc);
        located += rc == NUB_CDIR_OK;
        corrupt += rc == NUB_CDIR_E_CORRUPT;
        if (rc == NUB_CDIR_OK) {
            cr_assert(v.base >= f.snap && v.size <= SNAP_SIZE &&
                      (uint64_t)(v.base - f.snap) <= SNAP_SIZE - v.size, "view outside the region");
            uint8_t h[32];
            for (uint64_t i = 0; i < 20; i++) {
                hash_of(i, h);
                int found = find(&v, h);
                if (!bi_hit && !hdr_hit && !table_hit)
                    cr_assert_eq(found, i < 10, "entry %llu with nothing damaged", (unsigned long long)i);
            }
        }
        free(f.snap);
    }
    cr_assert(located > 0 && corrupt > 0, "both outcomes exercised (%d located, %d corrupt)", located, corrupt);
}

/* Fill slots home .. home + n - 1 with distinct hashes whose home slot is `home`. */
static void fill_chain(uint8_t *d, uint64_t cap, uint64_t home, uint64_t n)
{
    struct nub_cdir_header *hd = (struct nub_cdir_header *)d;
    struct nub_cdir_slot *slots = (struct nub_cdir_slot *)(d + hd->table_off);
    for (uint64_t k = 0; k < n; k++) {
        struct nub_cdir_slot *sl = &slots[(home + k) & (cap - 1)];
        memset(sl->hash, 0x77, 32);
        memcpy(sl->hash, &home, 8);
        memcpy(sl->hash + 8, &k, 8);
        sl->blob_off = hd->arena_off;
        sl->blob_len = 8;
    }
    hd->count = n;
}

Test(cdir, lookup_stops_at_the_probe_bound)
{
    uint64_t size, cap = 4096, home = 4000; /* the chain wraps past the table end */
    uint8_t *d = new_dir(cap, 64, &size);
    fill_chain(d, cap, home, NUB_CDIR_MAX_PROBE + 1);
    struct nub_cdir_view v;
    cr_assert_eq(nub_cdir_open(&v, d, size), NUB_CDIR_OK);
    uint8_t h[32];
    memset(h, 0x77, 32);
    memcpy(h, &home, 8);
    uint64_t k = NUB_CDIR_MAX_PROBE - 1;
    memcpy(h + 8, &k, 8);
    cr_assert_eq(find(&v, h), 1, "the last slot within the bound is found");
    k = NUB_CDIR_MAX_PROBE;
    memcpy(h + 8, &k, 8);
    cr_assert_eq(find(&v, h), 0, "an entry one slot beyond the bound reads as absent");
    free(d);
}

Test(cdir, insert_refuses_a_probe_sequence_over_the_bound)
{
    uint64_t size, cap = 4096, home = 17;
    uint8_t *d = new_dir(cap, 256, &size);
    fill_chain(d, cap, home, NUB_CDIR_MAX_PROBE);
    uint8_t before[64], h[32], *dst;
    memcpy(before, d, 64);
    memset(h, 0x99, 32);
    memcpy(h, &home, 8);
    cr_assert_eq(nub_cdir_insert(d, size, h, 8, &dst), NUB_CDIR_E_PROBE);
    cr_assert_null(dst);
    cr_assert_eq(memcmp(before, d, 64), 0, "the header is unchanged");
    cr_assert(strstr(nub_cdir_strerror(NUB_CDIR_E_PROBE), "256") != NULL);
    uint64_t other = home + NUB_CDIR_MAX_PROBE + 1;
    memcpy(h, &other, 8);
    cr_assert_eq(nub_cdir_insert(d, size, h, 8, &dst), NUB_CDIR_OK, "a hash homed elsewhere still goes in");
    free(d);
}
