/* nubk, the reference guest kernel: its function ids and init data (both sides), and the host API that puts caps into it and reads its cache directory without entering it. */
#ifndef NUB_NUBK_H
#define NUB_NUBK_H

/*
 * nubk (guests/nubk, docs/nubk.md) is one particular guest; the core
 * library (nub.h) does not depend on it. The first half of this header is
 * freestanding ABI, compiled into nubk and into the host like abi.h. The
 * host API in the second half is declared only in hosted compilations
 * (__STDC_HOSTED__ is 1; guests are built with -ffreestanding), because it
 * needs nub.h, which a guest does not include next to guest.h.
 */

#include <stddef.h>
#include <stdint.h>

#include "nub/abi.h"

/* ---- nubk's function ids ---------------------------------------------- */

#define NUB_FN_SMOKE          0u /* returns the byte 42 */
#define NUB_FN_HEAP_STATS     2u /* struct nub_heap_stats */
#define NUB_FN_PUT_CAP        4u /* canonical cap -> 32-byte hash (all 0xFF: rejected) */
#define NUB_FN_GET_BOOT_INFO  5u /* struct nub_boot_info */
#define NUB_FN_GET_CAP        8u /* 32-byte hash -> canonical cap bytes */

/* ---- nubk configuration (init data of guests/nubk) ------------------------
 * Optional init data for the nubk kernel: exactly one struct
 * nub_nubk_config. Without init data nubk uses the defaults below, halving
 * capacity and arena together until the directory fits the heap. A zero
 * field means its default. capacity must be a power of two in
 * [NUB_CDIR_MIN_CAPACITY, NUB_CDIR_MAX_CAPACITY]. The directory is one
 * heap allocation, so the sandbox's heap must hold it (see
 * nub_nubk_setup() below). Init data of another size or magic, a bad
 * capacity, or a configured directory the heap cannot hold make nubk
 * panic during evolve (NUB_E_GUEST_ABORT, the message says which).
 */
#define NUB_NUBK_CONFIG_MAGIC 0x314746434b42554eull /* "NUBKCFG1" */
#define NUB_NUBK_DEFAULT_CAPACITY 4096ull
#define NUB_NUBK_DEFAULT_ARENA_SIZE (4ull * 1024 * 1024)

struct nub_nubk_config {
    uint64_t magic;       /* NUB_NUBK_CONFIG_MAGIC */
    uint64_t capacity;    /* directory slots (power of two); 0 = default */
    uint64_t arena_size;  /* arena bytes; 0 = default */
};
NUB_STATIC_ASSERT(sizeof(struct nub_nubk_config) == 24, "nubk config size");
NUB_STATIC_ASSERT(offsetof(struct nub_nubk_config, capacity) == 8, "nubk_config.capacity");
NUB_STATIC_ASSERT(offsetof(struct nub_nubk_config, arena_size) == 16, "nubk_config.arena_size");

#if __STDC_HOSTED__

#include "nub/api.h"
#include "nub/nub.h"

#ifdef __cplusplus
extern "C" {
#endif

NUB_API_BEGIN

/* ---- Host API: caps in a nubk sandbox --------------------------------
 *
 * Caps are typed, immutable, content-addressed objects (the encoding and
 * hashing are in nub/cap.h and docs/caps.md). The
 * reference guest kernel nubk (build/guests/nubk.elf, docs/nubk.md)
 * decodes, hashes and stores them in its cache directory, a table in guest
 * memory whose layout abi.h fixes. The host reads that directory directly,
 * without entering the guest (nub_cache_*), treating it as hostile: every
 * offset is checked against the guest mapping, probing is bounded, and any
 * inconsistency reads as "absent" plus one warning through the sandbox's
 * log callback per guest run. The reader never poisons the sandbox.
 *
 * The reader claims the sandbox like a call does: on a sandbox with a call
 * running on another thread it answers NUB_E_BUSY (contains: 0); on a
 * poisoned or unevolved one NUB_E_POISONED / NUB_E_STATE. A sandbox whose
 * guest published no directory (not nubk) has every cap absent.
 */

/*
 * Heap bytes nubk needs for a cache directory of `capacity` slots (a power
 * of two, 8..2^32) and `arena_size` arena bytes, including allocator
 * overhead; 0 when the arguments are invalid or the size overflows.
 * A directory takes 64 + 48 * capacity + arena_size bytes.
 */
uint64_t nub_nubk_heap_size(uint64_t capacity, uint64_t arena_size);

/*
 * Prepare a nubk sandbox: fill *kcfg (storage the caller keeps until the
 * sandbox is created) with `capacity` slots and `arena_size` arena bytes
 * (0 = the defaults NUB_NUBK_DEFAULT_CAPACITY / NUB_NUBK_DEFAULT_ARENA_SIZE,
 * 4096 slots and 4 MiB), point *init at it, and raise cfg->heap_size to
 * nub_nubk_heap_size() and, when max_cap_len is not 0, cfg->input_size and
 * cfg->output_size so that one put or get of a max_cap_len-byte encoding
 * fits. Sizes already larger are kept. A table holds at most 7/8 of its
 * capacity (NUB_CDIR_MAX_ENTRIES). Errors: NUB_E_INVALID (NULL, capacity
 * not a power of two in range, overflow).
 */
nub_status nub_nubk_setup(struct nub_config *cfg, struct nub_init_data *init,
                          struct nub_nubk_config *kcfg, uint64_t capacity, uint64_t arena_size,
                          uint64_t max_cap_len);

/*
 * Publish a cap: always enters the guest (NUB_FN_PUT_CAP) with the `len`
 * canonical bytes at `cap`, which it decodes strictly, hashes and stores
 * unless present; the guest's hash goes to hash_out.
 * Errors: NUB_E_CAP_REJECTED when the guest refused the cap (not
 * canonical, directory full, arena full; the message says which, and nubk
 * logs it at NUB_LOG_LEVEL_WARN): the sandbox stays usable.
 * NUB_E_PROTOCOL when the guest's answer is not exactly 32 bytes: the
 * sandbox is poisoned. Otherwise as nub_call() (e.g. NUB_E_TOO_LARGE when
 * the cap exceeds nub_sandbox_max_input()).
 */
nub_status nub_put_cap(nub_sandbox *sb, const void *cap, size_t len,
                       uint8_t hash_out[NUB_CAP_HASH_LEN]);

/*
 * Publish a cap whose hash the caller already knows. When the guest's
 * directory holds `hash`, returns NUB_OK without entering the guest (the
 * fast path: the cap bytes are not looked at). Otherwise as nub_put_cap(),
 * then compares the guest's hash with `hash`: NUB_E_CAP_MISMATCH when they
 * differ (the cap was stored under its real hash; the sandbox stays
 * usable). NUB_E_BUSY while a call runs on another thread.
 */
nub_status nub_put_cap_with_hash(nub_sandbox *sb, const uint8_t hash[NUB_CAP_HASH_LEN],
                                 const void *cap, size_t len);

/* Entries in the guest's directory. NUB_E_NOT_FOUND when the guest
 * published none, NUB_E_PROTOCOL (not poisoning) when it is inconsistent,
 * NUB_E_BUSY, NUB_E_POISONED, NUB_E_STATE, NUB_E_INVALID (NULL), NUB_E_NOMEM
 * (the reader's small per-sandbox state, made on the first lookup). */
nub_status nub_cache_count(nub_sandbox *sb, uint64_t *count);

/* 1 when the guest's directory holds `hash`, else 0 (also on any error). */
int nub_cache_contains(nub_sandbox *sb, const uint8_t hash[NUB_CAP_HASH_LEN]);

/*
 * Zero-copy view of the canonical encoding stored under `hash`: *data
 * points into guest memory (checked to lie inside the directory's arena),
 * *len bytes, valid until the next call into the guest or destroy. The
 * guest wrote those bytes: decode them (nub_cap_decode) before trusting
 * them. Errors: NUB_E_NOT_FOUND, NUB_E_BUSY, NUB_E_POISONED, NUB_E_STATE,
 * NUB_E_INVALID, NUB_E_NOMEM (as for nub_cache_count).
 */
nub_status nub_cache_get(nub_sandbox *sb, const uint8_t hash[NUB_CAP_HASH_LEN],
                         const uint8_t **data, size_t *len);

NUB_API_END

#ifdef __cplusplus
}
#endif

#endif /* __STDC_HOSTED__ */

#endif /* NUB_NUBK_H */
