/* nubk cap functions: put (strict decode, hash, store once, reply with the hash or the all-0xFF sentinel) and get (hash -> canonical bytes). */
#include <stddef.h>
#include <stdint.h>

#include "nub/cap.h"
#include "nub/cdir.h"
#include "nub/guest.h"
#include "nubk.h"

/* Reply with the all-0xFF rejection sentinel (status OK, see NUB_FN_PUT_CAP in nub/nubk.h). */
static uint32_t reject(struct nub_reply *r, size_t len, const char *why)
{
    nub_log(NUB_LOG_LEVEL_WARN, "nubk: put_cap: rejected a %zu-byte cap: %s", len, why);
    uint8_t *out = nub_reply_reserve(r, NUB_CAP_HASH_LEN);
    if (out == NULL)
        return NUB_STATUS_TOO_LARGE;
    memset(out, 0xff, NUB_CAP_HASH_LEN);
    return NUB_STATUS_OK;
}

uint32_t nubk_put_cap(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    uint8_t hash[NUB_CAP_HASH_LEN], *dst;
    int rc = nub_cap_hash_encoded(in, in_len, hash);
    if (rc != NUB_CAP_OK)
        return reject(r, in_len, nub_cap_strerror(rc));
    rc = nub_cdir_insert(nubk_dir.base, nubk_dir.size, hash, in_len, &dst);
    if (rc < 0)
        return reject(r, in_len, nub_cdir_strerror(rc));
    if (rc == NUB_CDIR_OK)
        memcpy(dst, in, in_len);
    return nub_reply_set(r, hash, sizeof hash);
}

uint32_t nubk_get_cap(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    struct nub_cdir_view v;
    uint64_t off, len;
    if (in_len != NUB_CAP_HASH_LEN)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "get_cap: want a %u-byte hash, got %zu bytes",
                               NUB_CAP_HASH_LEN, in_len);
    int rc = nub_cdir_open(&v, nubk_dir.base, nubk_dir.size);
    if (rc == NUB_CDIR_OK)
        rc = nub_cdir_find(&v, in, &off, &len);
    if (rc < 0)
        return nub_reply_error(r, NUB_STATUS_GUEST_ERROR, "get_cap: %s", nub_cdir_strerror(rc));
    if (rc == 0)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "get_cap: no cap with this hash");
    uint8_t *out = nub_reply_reserve(r, (size_t)len);
    if (out == NULL)
        return nub_reply_error(r, NUB_STATUS_TOO_LARGE, "get_cap: the %llu-byte cap does not fit the output buffer",
                               (unsigned long long)len);
    memcpy(out, nubk_dir.base + off, (size_t)len);
    return NUB_STATUS_OK;
}
