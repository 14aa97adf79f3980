/* Cache directory: the open-addressing cap table + arena whose layout abi.h fixes, with insert (guest) and validated lookup (host and guest). */
#ifndef NUB_CDIR_H
#define NUB_CDIR_H

#include <stddef.h>
#include <stdint.h>

#include "nub/abi.h"
#include "nub/api.h"

#ifdef __cplusplus
extern "C" {
#endif

NUB_API_BEGIN

/*
 * A directory is one contiguous block of `size` bytes:
 *
 *   [0, 64)                      struct nub_cdir_header
 *   [table_off, +capacity * 48)  struct nub_cdir_slot[capacity]
 *   [arena_off, +arena_size)     canonical cap encodings, packed, never freed
 *
 * nub_cdir_init() lays it out with table_off = 64 and arena_off right after
 * the table; readers accept any placement that keeps the three parts in
 * order, disjoint and inside `size`. Every reference is a byte offset from
 * the directory base. A slot is found by linear probing from the first 8
 * bytes of the hash (little-endian u64) masked by capacity - 1; a slot with
 * blob_len == 0 is empty. Entries are never removed, and the table never
 * holds more than NUB_CDIR_MAX_ENTRIES(capacity) entries.
 *
 * This file is freestanding and compiled into both the host library and
 * the guest SDK. The nubk guest inserts; the host reads memory the guest
 * wrote, so everything that reads treats the bytes as hostile: every
 * field is loaded once, every offset and length is checked against the
 * directory with overflow-safe arithmetic before use, every probe sequence
 * stops after min(capacity, NUB_CDIR_MAX_PROBE) slots (so a lookup costs at
 * most 256 slot reads even in a table a hostile guest filled completely),
 * and unaligned bases are fine (all loads are byte-wise little-endian).
 */

/* Results (negative: errors; nub_cdir_strerror() names them). */
#define NUB_CDIR_OK        0  /* success (insert: the entry was added) */
#define NUB_CDIR_PRESENT   1  /* insert: an entry with this hash already exists (nothing changed) */
#define NUB_CDIR_E_INVALID (-1) /* bad argument: NULL, capacity not a power of two in range, size too small, empty blob */
#define NUB_CDIR_E_CORRUPT (-2) /* the header or a slot breaks the layout rules */
#define NUB_CDIR_E_FULL    (-3) /* insert: the table holds NUB_CDIR_MAX_ENTRIES(capacity) entries */
#define NUB_CDIR_E_ARENA   (-4) /* insert: the arena has no room for the blob */
#define NUB_CDIR_E_PROBE   (-5) /* insert: no empty slot within NUB_CDIR_MAX_PROBE slots of the home slot */

/* A directory whose header passed nub_cdir_open(). Plain values: the header
 * is not re-read by nub_cdir_find(), so the view stays valid exactly as
 * long as the header bytes do not change. */
struct nub_cdir_view {
    const uint8_t *base;  /* directory base */
    uint64_t size;        /* bytes readable from base */
    uint64_t capacity;    /* slots, a power of two */
    uint64_t table_off;   /* offset of slot 0 */
    uint64_t arena_off;   /* offset of the arena */
    uint64_t arena_size;  /* arena bytes */
};

/*
 * Bytes needed by a directory of `capacity` slots and `arena_size` arena
 * bytes, laid out by nub_cdir_init(), into *size. Returns NUB_CDIR_OK or
 * NUB_CDIR_E_INVALID (capacity not a power of two in [NUB_CDIR_MIN_CAPACITY,
 * NUB_CDIR_MAX_CAPACITY], or the size overflows).
 */
int nub_cdir_size(uint64_t capacity, uint64_t arena_size, uint64_t *size);

/*
 * Lay out an empty directory in the `size` bytes at `base`: header, zeroed
 * table, arena. Returns NUB_CDIR_OK or NUB_CDIR_E_INVALID (bad capacity,
 * or size smaller than nub_cdir_size()). Arena bytes are left as they are.
 */
int nub_cdir_init(void *base, uint64_t size, uint64_t capacity, uint64_t arena_size);

/*
 * Validate the header of the directory at `base` (`size` readable bytes,
 * possibly written by a hostile party) and describe it in *v: magic,
 * version, capacity a power of two in range, table and arena in order,
 * disjoint and inside `size`, count <= NUB_CDIR_MAX_ENTRIES(capacity),
 * arena_used <= arena_size. Returns NUB_CDIR_OK, NUB_CDIR_E_INVALID (NULL
 * arguments) or NUB_CDIR_E_CORRUPT.
 */
int nub_cdir_open(struct nub_cdir_view *v, const void *base, uint64_t size);

/*
 * Look up `hash`. Returns 1 when found, with the stored encoding at offset
 * *off (from the base) and length *len, both checked to lie inside the
 * arena (off/len may be NULL); 0 when absent; NUB_CDIR_E_CORRUPT when a
 * visited slot points outside the arena; NUB_CDIR_E_INVALID when v, its
 * base or hash is NULL. Visits at most
 * min(capacity, NUB_CDIR_MAX_PROBE) slots: an entry further from its home
 * slot (which nub_cdir_insert never writes) reads as absent, and a table
 * with no empty slot ends the search too.
 */
int nub_cdir_find(const struct nub_cdir_view *v, const uint8_t hash[NUB_CAP_HASH_LEN],
                  uint64_t *off, uint64_t *len);

/* The header's entry count (re-read; checked against the load limit) into
 * *count. Returns NUB_CDIR_OK, NUB_CDIR_E_CORRUPT, or NUB_CDIR_E_INVALID
 * (NULL v, base or count). */
int nub_cdir_count(const struct nub_cdir_view *v, uint64_t *count);

/*
 * Add an entry for `hash` with a `len`-byte encoding to the directory at
 * `base` (`size` bytes). On NUB_CDIR_OK the slot is filled and *dst points
 * at `len` reserved arena bytes that the caller must fill with the
 * encoding before the directory is next read (the copy is left to the
 * caller so that it can use its fastest memcpy). NUB_CDIR_PRESENT when the
 * hash is already stored (*dst = NULL, nothing changed). Errors:
 * NUB_CDIR_E_INVALID (NULL, len 0), NUB_CDIR_E_CORRUPT, NUB_CDIR_E_FULL,
 * NUB_CDIR_E_PROBE (the first empty slot lies more than NUB_CDIR_MAX_PROBE
 * slots from the home slot), NUB_CDIR_E_ARENA; the directory is unchanged
 * on every error.
 */
int nub_cdir_insert(void *base, uint64_t size, const uint8_t hash[NUB_CAP_HASH_LEN],
                    uint64_t len, uint8_t **dst);

/* Static, human-readable name of a NUB_CDIR_* result. */
const char *nub_cdir_strerror(int err);

NUB_API_END

#ifdef __cplusplus
}
#endif

#endif /* NUB_CDIR_H */
