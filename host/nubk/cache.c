/* Host cache reader: locates the guest's cap directory through the PEB and boot info, validates it as hostile memory, looks caps up without entering the guest. */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "checked.h"
#include "nub/cdir.h"
#include "nub/nubk.h"

/* Host view of [gva, gva + size) when it lies wholly inside the snapshot region, else NULL. */
static const uint8_t *snap_range(const uint8_t *snap, uint64_t snap_size, uint64_t gva, uint64_t size)
{
    if (gva < NUB_KERNEL_BASE)
        return NULL;
    uint64_t off = gva - NUB_KERNEL_BASE;
    if (!nub_range_inside(off, size, snap_size))
        return NULL;
    return snap + off;
}

static int corrupt(const char **why, const char *reason)
{
    *why = reason;
    return NUB_CDIR_E_CORRUPT;
}

int nub_cache_locate(const uint8_t *snap, uint64_t snap_size, uint64_t peb_off,
                     struct nub_cdir_view *v, const char **why)
{
    const char *unused;
    struct nub_peb peb;
    struct nub_boot_info bi;
    if (why == NULL)
        why = &unused;
    if (snap == NULL || v == NULL || !nub_range_inside(peb_off, sizeof peb, snap_size))
        return corrupt(why, "no PEB inside the snapshot region");
    memcpy(&peb, snap + peb_off, sizeof peb);
    if (peb.boot_info_gva == 0)
        return NUB_CACHE_LOCATE_NONE;
    const uint8_t *p = snap_range(snap, snap_size, peb.boot_info_gva, sizeof bi);
    if (p == NULL)
        return corrupt(why, "boot_info_gva points outside the snapshot region");
    memcpy(&bi, p, sizeof bi);
    if (bi.magic != NUB_BOOT_INFO_MAGIC)
        return corrupt(why, "boot info magic is not NUB_BOOT_INFO_MAGIC");
    if (bi.version != NUB_BOOT_INFO_VERSION)
        return corrupt(why, "boot info version is not NUB_BOOT_INFO_VERSION");
    if (bi.dir_gva == 0 && bi.dir_size == 0)
        return NUB_CACHE_LOCATE_NONE;
    p = snap_range(snap, snap_size, bi.dir_gva, bi.dir_size);
    if (p == NULL)
        return corrupt(why, "the directory range [dir_gva, dir_gva + dir_size) leaves the snapshot region");
    if (nub_cdir_open(v, p, bi.dir_size) != NUB_CDIR_OK)
        return corrupt(why, "directory header invalid (magic, version, capacity, table or arena placement, counters)");
    return NUB_CDIR_OK;
}

/* The reader's state for `sb`, made on first use (its free_state runs at destroy). NULL: no memory. */
static struct nub_cache_reader *reader_state(nub_sandbox *sb)
{
    if (sb->ext.state == NULL) {
        struct nub_cache_reader *r = calloc(1, sizeof *r);
        if (r == NULL)
            return NULL;
        r->state = NUB_CACHE_UNCHECKED;
        r->epoch = sb->mem_epoch;
        sb->ext.state = r;
        sb->ext.free_state = free;
    }
    return sb->ext.state;
}

/* Locate and validate the directory again: the guest ran since the last look. */
static void refresh(nub_sandbox *sb, struct nub_cache_reader *r)
{
    const char *why = "";
    int rc = nub_cache_locate(sb->snapshot, sb->lay.snapshot_size, sb->lay.peb_off, &r->dir, &why);
    if (rc == NUB_CDIR_OK) {
        r->state = NUB_CACHE_READY;
    } else if (rc == NUB_CACHE_LOCATE_NONE) {
        r->state = NUB_CACHE_NONE;
    } else {
        r->state = NUB_CACHE_BAD;
        nub_log_host(sb, NUB_LOG_LEVEL_WARN,
                     "cache directory unusable (%s): every cap reads as absent until the guest runs again", why);
    }
}

/* The reader's state brought up to date for the current guest memory (once per guest run). */
static struct nub_cache_reader *current_reader(nub_sandbox *sb)
{
    struct nub_cache_reader *r = reader_state(sb);
    if (r == NULL)
        return NULL;
    if (r->epoch != sb->mem_epoch) {
        r->epoch = sb->mem_epoch;
        r->state = NUB_CACHE_UNCHECKED;
    }
    if (r->state == NUB_CACHE_UNCHECKED)
        refresh(sb, r);
    return r;
}

const struct nub_cdir_view *nub_cache_view_claimed(nub_sandbox *sb)
{
    struct nub_cache_reader *r = current_reader(sb);
    return r != NULL && r->state == NUB_CACHE_READY ? &r->dir : NULL;
}

int nub_cache_lookup_claimed(nub_sandbox *sb, const uint8_t hash[NUB_CAP_HASH_LEN],
                             const uint8_t **data, uint64_t *len)
{
    uint64_t off, n;
    struct nub_cache_reader *r = current_reader(sb);
    if (r == NULL || r->state != NUB_CACHE_READY)
        return 0;
    int rc = nub_cdir_find(&r->dir, hash, &off, &n);
    if (rc == 1) {
        if (data != NULL)
            *data = r->dir.base + off;
        if (len != NULL)
            *len = n;
        return 1;
    }
    if (rc < 0) {
        r->state = NUB_CACHE_BAD;
        nub_log_host(sb, NUB_LOG_LEVEL_WARN,
                     "cache directory unusable (a slot points outside the arena): every cap reads as "
                     "absent until the guest runs again");
    }
    return 0;
}

nub_status nub_cache_count(nub_sandbox *sb, uint64_t *count)
{
    if (sb == NULL || count == NULL)
        return sb ? nub_state_reject(sb, NUB_E_INVALID, "count is NULL") : NUB_E_INVALID;
    *count = 0;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_READY);
    if (rc != NUB_OK)
        return rc;
    struct nub_cache_reader *r = current_reader(sb);
    if (r == NULL) {
        rc = nub_err_set(&sb->last, NUB_E_NOMEM, "cannot allocate the cache reader's state");
    } else if (r->state == NUB_CACHE_NONE) {
        rc = nub_err_set(&sb->last, NUB_E_NOT_FOUND, "the guest published no cache directory");
    } else if (r->state != NUB_CACHE_READY || nub_cdir_count(&r->dir, count) != NUB_CDIR_OK) {
        *count = 0;
        rc = nub_err_set(&sb->last, NUB_E_PROTOCOL, "the guest's cache directory is inconsistent");
    }
    nub_state_release(sb);
    return rc;
}

int nub_cache_contains(nub_sandbox *sb, const uint8_t hash[NUB_CAP_HASH_LEN])
{
    if (sb == NULL || hash == NULL || nub_state_claim(sb, NUB_CLAIM_READY) != NUB_OK)
        return 0;
    int found = nub_cache_lookup_claimed(sb, hash, NULL, NULL);
    nub_state_release(sb);
    return found;
}

nub_status nub_cache_get(nub_sandbox *sb, const uint8_t hash[NUB_CAP_HASH_LEN],
                         const uint8_t **data, size_t *len)
{
    if (sb == NULL || hash == NULL || data == NULL || len == NULL)
        return sb ? nub_state_reject(sb, NUB_E_INVALID, "hash, data or len is NULL") : NUB_E_INVALID;
    *data = NULL;
    *len = 0;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_READY);
    if (rc != NUB_OK)
        return rc;
    uint64_t n = 0;
    if (current_reader(sb) == NULL)
        rc = nub_err_set(&sb->last, NUB_E_NOMEM, "cannot allocate the cache reader's state");
    else if (nub_cache_lookup_claimed(sb, hash, data, &n) == 1)
        *len = (size_t)n;
    else
        rc = nub_err_set(&sb->last, NUB_E_NOT_FOUND, "no cap with this hash in the guest's cache directory");
    nub_state_release(sb);
    return rc;
}
