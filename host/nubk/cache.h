/* Private declarations of the host side of nubk: the cap-directory reader's states and functions shared by host/nubk/ and its tests. */
#ifndef NUB_HOST_NUBK_CACHE_H
#define NUB_HOST_NUBK_CACHE_H

#include <stdint.h>

#include "../internal.h"
#include "nub/cdir.h"

/* What the reader knows about the guest's cache directory. */
enum nub_cache_state {
    NUB_CACHE_UNCHECKED = 0, /* the guest ran since the last look: locate it again */
    NUB_CACHE_READY = 1,     /* dir holds a validated header */
    NUB_CACHE_NONE = 2,      /* the guest published no directory */
    NUB_CACHE_BAD = 3,       /* inconsistent: every cap is absent until the guest runs again */
};

/* The reader's per-sandbox state, kept in sb->ext (internal.h) from the
 * first lookup on: valid for guest memory as it was at sb->mem_epoch == epoch. */
struct nub_cache_reader {
    uint64_t epoch;
    enum nub_cache_state state;
    struct nub_cdir_view dir; /* valid while state == NUB_CACHE_READY */
};

/* nub_cache_locate() result when the guest published no directory (boot_info_gva == 0). */
#define NUB_CACHE_LOCATE_NONE 1

/*
 * Find and validate the cache directory published by a guest, reading only
 * the `snap_size` bytes at `snap` (the host mapping of the snapshot region:
 * GVA = NUB_KERNEL_BASE + offset), all of it hostile: the PEB at peb_off,
 * its boot_info_gva, the boot info (magic, version), the directory range
 * and header (nub_cdir_open). A GVA is translated only when the whole
 * range lies inside the region. Returns NUB_CDIR_OK with *v filled,
 * NUB_CACHE_LOCATE_NONE, or NUB_CDIR_E_CORRUPT with a static reason in *why.
 * A pure function over bytes, so unit tests can feed it corrupted memory.
 */
int nub_cache_locate(const uint8_t *snap, uint64_t snap_size, uint64_t peb_off,
                     struct nub_cdir_view *v, const char **why);

/*
 * Look `hash` up in the guest's directory on behalf of a caller that has
 * claimed the sandbox (nub_state_claim with NUB_CLAIM_READY). Returns 1
 * with the stored encoding in *data and *len (either may be NULL), or 0 when absent
 * or when the directory is missing or inconsistent (logged once per guest
 * run through the sandbox's log callback).
 */
int nub_cache_lookup_claimed(nub_sandbox *sb, const uint8_t hash[NUB_CAP_HASH_LEN],
                             const uint8_t **data, uint64_t *len);

/* The guest's validated directory for the current guest memory (claimed
 * caller), or NULL when it published none, it is inconsistent, or the
 * reader's state cannot be allocated. */
const struct nub_cdir_view *nub_cache_view_claimed(nub_sandbox *sb);

#endif /* NUB_HOST_NUBK_CACHE_H */
