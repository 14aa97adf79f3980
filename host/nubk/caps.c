/* Host side of nubk: put caps into a nubk guest (with the no-entry fast path for present caps), nubk sizing. */
#include <string.h>

#include "cache.h"
#include "nub/cap.h"
#include "nub/cdir.h"
#include "nub/nubk.h"
#include "nub/wire.h"

/* Heap the guest allocator needs beyond the directory: block header,
 * alignment of the heap start and of the block, and a page of slack. */
#define NUBK_HEAP_OVERHEAD (3ull * 16 + NUB_PAGE_SIZE)

static uint64_t round_page(uint64_t n)
{
    return (n + NUB_PAGE_SIZE - 1) & ~(NUB_PAGE_SIZE - 1);
}

uint64_t nub_nubk_heap_size(uint64_t capacity, uint64_t arena_size)
{
    uint64_t size;
    if (nub_cdir_size(capacity, arena_size, &size) != NUB_CDIR_OK ||
        size > UINT64_MAX - NUBK_HEAP_OVERHEAD - NUB_PAGE_SIZE)
        return 0;
    return round_page(size + NUBK_HEAP_OVERHEAD);
}

/* Smallest page-rounded I/O buffer size carrying one `len`-byte payload; 0 on overflow. */
static uint64_t buffer_for(uint64_t len)
{
    uint64_t frame;
    if (nub_wire_frame_len(len, 0, &frame) != NUB_WIRE_OK || frame > UINT64_MAX - 2 * NUB_PAGE_SIZE)
        return 0;
    return round_page(NUB_WIRE_EMPTY_SP + frame);
}

nub_status nub_nubk_setup(struct nub_config *cfg, struct nub_init_data *init,
                          struct nub_nubk_config *kcfg, uint64_t capacity, uint64_t arena_size,
                          uint64_t max_cap_len)
{
    if (cfg == NULL || init == NULL || kcfg == NULL)
        return NUB_E_INVALID;
    capacity = capacity ? capacity : NUB_NUBK_DEFAULT_CAPACITY;
    arena_size = arena_size ? arena_size : NUB_NUBK_DEFAULT_ARENA_SIZE;
    uint64_t heap = nub_nubk_heap_size(capacity, arena_size);
    uint64_t io = max_cap_len ? buffer_for(max_cap_len) : 0;
    if (heap == 0 || (max_cap_len != 0 && io == 0))
        return NUB_E_INVALID;
    *kcfg = (struct nub_nubk_config){NUB_NUBK_CONFIG_MAGIC, capacity, arena_size};
    *init = (struct nub_init_data){kcfg, sizeof *kcfg, NUB_MEM_READ};
    if (cfg->heap_size < heap)
        cfg->heap_size = heap;
    if (cfg->input_size < io)
        cfg->input_size = io;
    if (cfg->output_size < io)
        cfg->output_size = io;
    return NUB_OK;
}

/* The guest broke the put-cap protocol: poison (inside the claim), like any protocol violation. */
static nub_status poison(nub_sandbox *sb, size_t got)
{
    nub_err_set(&sb->last, NUB_E_PROTOCOL,
                "guest protocol violation: put_cap answered %zu bytes instead of a %u-byte hash", got,
                NUB_CAP_HASH_LEN);
    nub_state_poison(sb);
    return NUB_E_PROTOCOL;
}

/* Why did the guest send the sentinel? Redo the decode here, then look at its directory (claimed). */
static nub_status rejected(nub_sandbox *sb, const void *cap, size_t len)
{
    uint8_t h[NUB_CAP_HASH_LEN];
    int e = nub_cap_hash_encoded(cap, len, h);
    if (e != NUB_CAP_OK)
        return nub_err_set(&sb->last, NUB_E_CAP_REJECTED, "guest rejected the %zu-byte cap: %s", len,
                           nub_cap_strerror(e));
    const char *why = "its cache directory refused it";
    uint64_t count = 0;
    nub_cache_lookup_claimed(sb, h, NULL, NULL); /* validates the directory on the way to h */
    const struct nub_cdir_view *dir = nub_cache_view_claimed(sb);
    if (dir != NULL && nub_cdir_count(dir, &count) == NUB_CDIR_OK)
        why = count >= NUB_CDIR_MAX_ENTRIES(dir->capacity)
                  ? "cache directory full (entry count at the load limit, 7/8 of capacity)"
                  : "cache directory arena has no room for it, or no empty slot lies within "
                    "NUB_CDIR_MAX_PROBE (256) slots of its hash's home slot";
    return nub_err_set(&sb->last, NUB_E_CAP_REJECTED, "guest rejected the %zu-byte cap: %s", len, why);
}

static int is_sentinel(const uint8_t *h)
{
    for (size_t i = 0; i < NUB_CAP_HASH_LEN; i++)
        if (h[i] != 0xff)
            return 0;
    return 1;
}

/* nub_put_cap inside the caller's claim: the call, its checks and any poisoning in one claim. */
static nub_status put_cap_claimed(nub_sandbox *sb, const void *cap, size_t len, uint8_t hash_out[NUB_CAP_HASH_LEN])
{
    uint8_t h[NUB_CAP_HASH_LEN];
    size_t got = 0;
    nub_status rc = nub_call_into_claimed(sb, NUB_FN_PUT_CAP, cap, len, h, sizeof h, &got);
    if (rc == NUB_E_TOO_LARGE && got > sizeof h)
        return poison(sb, got);
    if (rc != NUB_OK)
        return rc;
    if (got != sizeof h)
        return poison(sb, got);
    if (is_sentinel(h))
        return rejected(sb, cap, len);
    memcpy(hash_out, h, sizeof h);
    return NUB_OK;
}

nub_status nub_put_cap(nub_sandbox *sb, const void *cap, size_t len, uint8_t hash_out[NUB_CAP_HASH_LEN])
{
    if (sb == NULL || hash_out == NULL || (cap == NULL && len != 0))
        return sb ? nub_state_reject(sb, NUB_E_INVALID, "hash_out is NULL, or cap is NULL with a length")
                  : NUB_E_INVALID;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_READY);
    if (rc != NUB_OK)
        return rc;
    rc = put_cap_claimed(sb, cap, len, hash_out);
    nub_state_release(sb);
    return rc;
}

/* "0123abcd..." prefix of a hash for messages. */
static void hex8(char out[17], const uint8_t *h)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 8; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[16] = '\0';
}

nub_status nub_put_cap_with_hash(nub_sandbox *sb, const uint8_t hash[NUB_CAP_HASH_LEN],
                                 const void *cap, size_t len)
{
    if (sb == NULL || hash == NULL || (cap == NULL && len != 0))
        return sb ? nub_state_reject(sb, NUB_E_INVALID, "hash is NULL, or cap is NULL with a length")
                  : NUB_E_INVALID;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_READY);
    if (rc != NUB_OK)
        return rc;
    uint8_t got[NUB_CAP_HASH_LEN];
    if (!nub_cache_lookup_claimed(sb, hash, NULL, NULL) &&
        (rc = put_cap_claimed(sb, cap, len, got)) == NUB_OK && memcmp(got, hash, sizeof got) != 0) {
        char a[17], b[17];
        hex8(a, got);
        hex8(b, hash);
        rc = nub_err_set(&sb->last, NUB_E_CAP_MISMATCH,
                         "the guest hashed the cap to %s..., the caller claimed %s... (stored under the guest's hash)",
                         a, b);
    }
    nub_state_release(sb);
    return rc;
}
