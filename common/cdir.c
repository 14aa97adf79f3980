/* Cache directory: layout, header validation, bounded probing lookup and insert over possibly hostile bytes. */
#include "nub/cdir.h"

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "checked.h"

#define HDR_SIZE  ((uint64_t)sizeof(struct nub_cdir_header))
#define SLOT_SIZE ((uint64_t)sizeof(struct nub_cdir_slot))

/* Byte offsets of the header and slot fields (abi.h asserts the layout). */
#define H_MAGIC      offsetof(struct nub_cdir_header, magic)
#define H_VERSION    offsetof(struct nub_cdir_header, version)
#define H_CAPACITY   offsetof(struct nub_cdir_header, capacity)
#define H_COUNT      offsetof(struct nub_cdir_header, count)
#define H_TABLE_OFF  offsetof(struct nub_cdir_header, table_off)
#define H_ARENA_OFF  offsetof(struct nub_cdir_header, arena_off)
#define H_ARENA_SIZE offsetof(struct nub_cdir_header, arena_size)
#define H_ARENA_USED offsetof(struct nub_cdir_header, arena_used)
#define S_BLOB_OFF   offsetof(struct nub_cdir_slot, blob_off)
#define S_BLOB_LEN   offsetof(struct nub_cdir_slot, blob_len)

static int capacity_ok(uint64_t capacity)
{
    return capacity >= NUB_CDIR_MIN_CAPACITY && capacity <= NUB_CDIR_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

/* [off, off + len) lies inside [lo, hi), without overflow. */
static int range_in(uint64_t off, uint64_t len, uint64_t lo, uint64_t hi)
{
    return off >= lo && hi >= lo && nub_range_inside(off - lo, len, hi - lo);
}

int nub_cdir_size(uint64_t capacity, uint64_t arena_size, uint64_t *size)
{
    if (size == NULL || !capacity_ok(capacity))
        return NUB_CDIR_E_INVALID;
    uint64_t table = capacity * SLOT_SIZE; /* capacity <= 2^32: no overflow */
    if (!nub_add3_u64(HDR_SIZE, table, arena_size, size))
        return NUB_CDIR_E_INVALID;
    return NUB_CDIR_OK;
}

int nub_cdir_init(void *base, uint64_t size, uint64_t capacity, uint64_t arena_size)
{
    uint64_t need;
    if (base == NULL || nub_cdir_size(capacity, arena_size, &need) != NUB_CDIR_OK || size < need)
        return NUB_CDIR_E_INVALID;
    uint8_t *b = base;
    nub_bytes_zero(b, (size_t)HDR_SIZE);
    nub_store_le64(b + H_MAGIC, NUB_CDIR_MAGIC);
    nub_store_le32(b + H_VERSION, NUB_CDIR_VERSION);
    nub_store_le64(b + H_CAPACITY, capacity);
    nub_store_le64(b + H_TABLE_OFF, HDR_SIZE);
    nub_store_le64(b + H_ARENA_OFF, HDR_SIZE + capacity * SLOT_SIZE);
    nub_store_le64(b + H_ARENA_SIZE, arena_size);
    /* Zero the table in 8-byte stores (cheap under an emulated CPU too). */
    for (uint64_t i = 0; i < capacity * SLOT_SIZE; i += 8)
        nub_store_le64(b + HDR_SIZE + i, 0);
    return NUB_CDIR_OK;
}

/* Header layout checks that do not involve the counters. */
static int layout_ok(uint64_t size, uint64_t capacity, uint64_t table_off, uint64_t arena_off,
                     uint64_t arena_size)
{
    if (!capacity_ok(capacity))
        return 0;
    uint64_t table_len = capacity * SLOT_SIZE;
    if (!range_in(table_off, table_len, HDR_SIZE, size))
        return 0;
    return range_in(arena_off, arena_size, table_off + table_len, size);
}

int nub_cdir_open(struct nub_cdir_view *v, const void *base, uint64_t size)
{
    if (v == NULL || base == NULL)
        return NUB_CDIR_E_INVALID;
    const uint8_t *b = base;
    if (size < HDR_SIZE || nub_load_le64(b + H_MAGIC) != NUB_CDIR_MAGIC ||
        nub_load_le32(b + H_VERSION) != NUB_CDIR_VERSION)
        return NUB_CDIR_E_CORRUPT;
    uint64_t capacity = nub_load_le64(b + H_CAPACITY);
    uint64_t table_off = nub_load_le64(b + H_TABLE_OFF);
    uint64_t arena_off = nub_load_le64(b + H_ARENA_OFF);
    uint64_t arena_size = nub_load_le64(b + H_ARENA_SIZE);
    if (!layout_ok(size, capacity, table_off, arena_off, arena_size))
        return NUB_CDIR_E_CORRUPT;
    if (nub_load_le64(b + H_COUNT) > NUB_CDIR_MAX_ENTRIES(capacity) ||
        nub_load_le64(b + H_ARENA_USED) > arena_size)
        return NUB_CDIR_E_CORRUPT;
    *v = (struct nub_cdir_view){b, size, capacity, table_off, arena_off, arena_size};
    return NUB_CDIR_OK;
}

static int hash_eq(const uint8_t *a, const uint8_t *b)
{
    uint64_t d = 0;
    for (size_t i = 0; i < NUB_CAP_HASH_LEN; i += 8)
        d |= nub_load_le64(a + i) ^ nub_load_le64(b + i);
    return d == 0;
}

/*
 * Probe for `hash`: 1 with *slot_off at its slot, 0 with *slot_off at the
 * empty slot that ends the sequence (UINT64_MAX when none lies within the
 * first NUB_CDIR_MAX_PROBE slots), or NUB_CDIR_E_CORRUPT. Every filled
 * slot visited must point inside the arena. Visits at most
 * min(capacity, NUB_CDIR_MAX_PROBE) slots, whatever the table holds.
 */
static int probe(const struct nub_cdir_view *v, const uint8_t *hash, uint64_t *slot_off)
{
    uint64_t mask = v->capacity - 1, i = nub_load_le64(hash) & mask;
    uint64_t limit = v->capacity < NUB_CDIR_MAX_PROBE ? v->capacity : NUB_CDIR_MAX_PROBE;
    for (uint64_t n = 0; n < limit; n++, i = (i + 1) & mask) {
        uint64_t so = v->table_off + i * SLOT_SIZE;
        const uint8_t *s = v->base + so;
        uint64_t len = nub_load_le64(s + S_BLOB_LEN);
        *slot_off = so;
        if (len == 0)
            return 0;
        uint64_t off = nub_load_le64(s + S_BLOB_OFF);
        if (!range_in(off, len, v->arena_off, v->arena_off + v->arena_size))
            return NUB_CDIR_E_CORRUPT;
        if (hash_eq(s, hash))
            return 1;
    }
    *slot_off = UINT64_MAX;
    return 0;
}

int nub_cdir_find(const struct nub_cdir_view *v, const uint8_t hash[NUB_CAP_HASH_LEN],
                  uint64_t *off, uint64_t *len)
{
    uint64_t so;
    if (v == NULL || v->base == NULL || hash == NULL)
        return NUB_CDIR_E_INVALID;
    int rc = probe(v, hash, &so);
    if (rc != 1)
        return rc;
    if (off != NULL)
        *off = nub_load_le64(v->base + so + S_BLOB_OFF);
    if (len != NULL)
        *len = nub_load_le64(v->base + so + S_BLOB_LEN);
    return 1;
}

int nub_cdir_count(const struct nub_cdir_view *v, uint64_t *count)
{
    if (v == NULL || v->base == NULL || count == NULL)
        return NUB_CDIR_E_INVALID;
    uint64_t n = nub_load_le64(v->base + H_COUNT);
    if (n > NUB_CDIR_MAX_ENTRIES(v->capacity))
        return NUB_CDIR_E_CORRUPT;
    *count = n;
    return NUB_CDIR_OK;
}

int nub_cdir_insert(void *base, uint64_t size, const uint8_t hash[NUB_CAP_HASH_LEN],
                    uint64_t len, uint8_t **dst)
{
    struct nub_cdir_view v;
    uint64_t so;
    if (dst == NULL || hash == NULL || len == 0)
        return NUB_CDIR_E_INVALID;
    *dst = NULL;
    int rc = nub_cdir_open(&v, base, size);
    if (rc == NUB_CDIR_OK)
        rc = probe(&v, hash, &so);
    if (rc != 0)
        return rc == 1 ? NUB_CDIR_PRESENT : rc;
    uint8_t *b = base;
    uint64_t count = nub_load_le64(b + H_COUNT), used = nub_load_le64(b + H_ARENA_USED);
    if (count >= NUB_CDIR_MAX_ENTRIES(v.capacity))
        return NUB_CDIR_E_FULL;
    if (so == UINT64_MAX)
        return NUB_CDIR_E_PROBE;
    if (len > v.arena_size - used)
        return NUB_CDIR_E_ARENA;
    uint8_t *slot = b + so;
    for (size_t i = 0; i < NUB_CAP_HASH_LEN; i++)
        slot[i] = hash[i];
    nub_store_le64(slot + S_BLOB_OFF, v.arena_off + used);
    nub_store_le64(slot + S_BLOB_LEN, len);
    nub_store_le64(b + H_COUNT, count + 1);
    nub_store_le64(b + H_ARENA_USED, used + len);
    *dst = b + v.arena_off + used;
    return NUB_CDIR_OK;
}

const char *nub_cdir_strerror(int err)
{
    switch (err) {
    case NUB_CDIR_OK: return "ok";
    case NUB_CDIR_PRESENT: return "already present";
    case NUB_CDIR_E_INVALID: return "invalid argument";
    case NUB_CDIR_E_CORRUPT: return "directory corrupt (header or slot breaks the layout rules)";
    case NUB_CDIR_E_FULL: return "directory full (entry count at the load limit of 7/8 of capacity)";
    case NUB_CDIR_E_ARENA: return "directory arena full (no room for the encoding)";
    case NUB_CDIR_E_PROBE: return "no empty slot within NUB_CDIR_MAX_PROBE (256) slots of the hash's home slot";
    default: return "unknown cache-directory error";
    }
}
