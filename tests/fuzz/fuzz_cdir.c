/* libFuzzer target: the host's cache-directory reader (nub_cache_locate, nub_cdir_open/find/count) over arbitrary guest memory, and the guest's insert on a copy. */
#include "fuzz.h"

#include "nubk/cache.h"
#include "nub/cdir.h"

#define HSZ NUB_CAP_HASH_LEN
#define SLOT_SIZE ((uint64_t)sizeof(struct nub_cdir_slot))
#define MAX_PROBED_SLOTS 64u

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* A found encoding lies inside the view's arena, inside the memory. */
static void check_found(const struct nub_cdir_view *v, uint64_t off, uint64_t len)
{
    FUZZ_CHECK(len > 0 && off >= v->arena_off && off - v->arena_off <= v->arena_size &&
                   len <= v->arena_size - (off - v->arena_off),
               "blob [%llu, +%llu) outside arena [%llu, +%llu)", (unsigned long long)off,
               (unsigned long long)len, (unsigned long long)v->arena_off, (unsigned long long)v->arena_size);
    FUZZ_CHECK(off <= v->size && len <= v->size - off, "blob outside the directory");
}

static int lookup(const struct nub_cdir_view *v, const uint8_t hash[HSZ])
{
    uint64_t off = 0, len = 0;
    int rc = nub_cdir_find(v, hash, &off, &len);
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == NUB_CDIR_E_CORRUPT, "find returned %d", rc);
    if (rc == 1) {
        check_found(v, off, len);
        FUZZ_CHECK(nub_cdir_find(v, hash, NULL, NULL) == 1, "find with NULL outputs differs");
        volatile uint8_t sink = v->base[off] ^ v->base[off + len - 1]; /* ASan: really readable */
        (void)sink;
    }
    return rc;
}

/* The header passed: count is within the load limit, the layout is inside
 * the memory, and looking up the stored hashes stays inside the arena.
 * (A hostile guest may park an entry off its probe path, so a stored hash
 * may legitimately read as absent.) */
static void check_view(const struct nub_cdir_view *v, const uint8_t *mem, uint64_t mem_size, const uint8_t *probe_hash)
{
    uint64_t count;
    FUZZ_CHECK(v->base >= mem && (uint64_t)(v->base - mem) <= mem_size && v->size <= mem_size - (uint64_t)(v->base - mem),
               "view outside the memory");
    FUZZ_CHECK(v->capacity >= NUB_CDIR_MIN_CAPACITY && (v->capacity & (v->capacity - 1)) == 0, "capacity");
    FUZZ_CHECK(v->table_off <= v->size && v->capacity <= (v->size - v->table_off) / SLOT_SIZE, "table outside");
    FUZZ_CHECK(v->arena_off <= v->size && v->arena_size <= v->size - v->arena_off, "arena outside");
    if (nub_cdir_count(v, &count) == NUB_CDIR_OK)
        FUZZ_CHECK(count <= NUB_CDIR_MAX_ENTRIES(v->capacity), "count %llu", (unsigned long long)count);
    for (uint64_t i = 0; i < v->capacity && i < MAX_PROBED_SLOTS; i++) {
        const uint8_t *slot = v->base + v->table_off + i * SLOT_SIZE;
        if (le64(slot + 40) != 0)
            lookup(v, slot);
    }
    if (probe_hash != NULL)
        lookup(v, probe_hash);
}

/* The guest side on a copy: an insert is found afterwards; a refusal changes nothing. */
static void check_insert(const uint8_t *mem, uint64_t size, const uint8_t hash[HSZ], uint64_t len)
{
    uint8_t *copy = fuzz_copy(mem, size), *dst = NULL;
    int rc = nub_cdir_insert(copy, size, hash, len, &dst);
    struct nub_cdir_view v;
    if (rc == NUB_CDIR_OK || rc == NUB_CDIR_PRESENT) {
        uint64_t off = 0, n = 0;
        FUZZ_CHECK(nub_cdir_open(&v, copy, size) == NUB_CDIR_OK, "insert into a directory that does not open");
        if (rc == NUB_CDIR_OK) {
            FUZZ_CHECK(dst != NULL && dst >= copy && (uint64_t)(dst - copy) <= size && len <= size - (uint64_t)(dst - copy),
                       "insert returned space outside the directory");
            memset(dst, 0x5a, len);
        }
        FUZZ_CHECK(nub_cdir_find(&v, hash, &off, &n) == 1, "inserted hash not found (rc %d)", rc);
        if (rc == NUB_CDIR_OK)
            FUZZ_CHECK(copy + off == dst && n == len, "found another blob than the one inserted");
    } else {
        FUZZ_CHECK(rc == NUB_CDIR_E_INVALID || rc == NUB_CDIR_E_CORRUPT || rc == NUB_CDIR_E_FULL || rc == NUB_CDIR_E_ARENA ||
                       rc == NUB_CDIR_E_PROBE,
                   "insert returned %d", rc);
        FUZZ_CHECK(memcmp(copy, mem, size) == 0, "failed insert (%d) changed the directory", rc);
    }
    free(copy);
}

/* Input: u64 PEB offset, then the snapshot region's bytes; the last 33
 * bytes double as a hash to look up and insert and a blob length. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t peb_off = le64(data);
    uint64_t n = size - 8;
    uint8_t *snap = fuzz_copy(data + 8, n);
    const uint8_t *probe = n >= HSZ + 1 ? snap + n - HSZ : NULL;
    struct nub_cdir_view v;
    const char *why = NULL;
    int rc = nub_cache_locate(snap, n, peb_off, &v, &why);
    FUZZ_CHECK(rc == NUB_CDIR_OK || rc == NUB_CACHE_LOCATE_NONE || (rc == NUB_CDIR_E_CORRUPT && why && *why),
               "locate returned %d", rc);
    if (rc == NUB_CDIR_OK) {
        check_view(&v, snap, n, probe);
        if (probe != NULL)
            check_insert(v.base, v.size, probe, 1 + probe[-1] % 64);
    }
    /* The same bytes read directly as a directory at offset 0. */
    if (nub_cdir_open(&v, snap, n) == NUB_CDIR_OK) {
        check_view(&v, snap, n, probe);
        if (probe != NULL)
            check_insert(snap, n, probe, 1 + probe[-1] % 64);
    }
    free(snap);
    return 0;
}
