/* The sandbox's host-function table: registration before evolve, lookup by fn_id during calls. */
#include "internal.h"

const struct nub_host_fn_entry *nub_host_fn_find(const struct nub_host_fns *t, uint32_t fn_id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].fn_id == fn_id)
            return &t->e[i];
    return NULL;
}

/* Add fn_id to the table of a claimed, unevolved sandbox. */
static nub_status add_claimed(nub_sandbox *sb, uint32_t fn_id, nub_host_fn fn, void *ctx)
{
    struct nub_host_fns *t = &sb->host_fns;
    if (nub_state_phase(sb) != NUB_SB_UNINIT && sb->guest_ran)
        return nub_err_set(&sb->last, NUB_E_STATE,
                           "host functions can only be registered before evolve or, on a sandbox "
                           "from an evolved snapshot, before its first call");
    if (nub_host_fn_find(t, fn_id) != NULL)
        return nub_err_set(&sb->last, NUB_E_EXISTS, "host function %u is already registered", fn_id);
    if (t->n == NUB_MAX_HOST_FNS)
        return nub_err_set(&sb->last, NUB_E_TOO_LARGE, "at most %d host functions", NUB_MAX_HOST_FNS);
    nub_metrics_host_fn_registered(sb, (int)t->n, fn_id);
    t->e[t->n++] = (struct nub_host_fn_entry){fn_id, fn, ctx};
    return NUB_OK;
}

nub_status nub_sandbox_register(nub_sandbox *sb, uint32_t fn_id, nub_host_fn fn, void *ctx)
{
    if (sb == NULL || fn == NULL)
        return sb ? nub_state_reject(sb, NUB_E_INVALID, "host function is NULL") : NUB_E_INVALID;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_ANY);
    if (rc != NUB_OK)
        return rc;
    rc = add_claimed(sb, fn_id, fn, ctx);
    nub_state_release(sb);
    return rc;
}
