/* Sandbox lifecycle: create from an ELF (through a one-use snapshot), settings, guest counter, destroy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gdb.h"
#include "internal.h"
#include "nub/wire.h"

/* A sandbox from the one-use snapshot `snap` (which it keeps a reference to). */
static nub_status from_snapshot(nub_snapshot *snap, nub_sandbox **out, struct nub_error *err)
{
    nub_status rc = nub_sandbox_new_from_snapshot(snap, NULL, out, err);
    nub_snapshot_release(snap);
    return rc;
}

nub_status nub_sandbox_new_from_buffer(const void *elf, size_t len, const struct nub_init_data *init,
                                       const struct nub_config *cfg, nub_sandbox **out,
                                       struct nub_error *err)
{
    nub_snapshot *snap = NULL;
    if (out != NULL)
        *out = NULL;
    if (out == NULL)
        return nub_err_set(err, NUB_E_INVALID, "out is NULL");
    nub_status rc = nub_snapshot_from_buffer(elf, len, init, cfg, &snap, err);
    return rc == NUB_OK ? from_snapshot(snap, out, err) : rc;
}

nub_status nub_sandbox_new_from_file(const char *path, const struct nub_init_data *init,
                                     const struct nub_config *cfg, nub_sandbox **out,
                                     struct nub_error *err)
{
    nub_snapshot *snap = NULL;
    if (out != NULL)
        *out = NULL;
    if (out == NULL)
        return nub_err_set(err, NUB_E_INVALID, "out is NULL");
    nub_status rc = nub_snapshot_from_file(path, init, cfg, &snap, err);
    return rc == NUB_OK ? from_snapshot(snap, out, err) : rc;
}

void nub_sandbox_destroy(nub_sandbox *sb)
{
    if (sb == NULL)
        return;
    nub_watchdog_stop(sb);
    nub_gdb_close(sb); /* reads the phase: before the state goes */
    nub_state_detach(sb); /* interrupts through handles are no-ops from here on */
    nub_obs_fini(sb);
    nub_sandbox_free(sb);
}

const struct nub_error *nub_sandbox_last_error(const nub_sandbox *sb)
{
    static const struct nub_error none = {.code = NUB_E_INVALID, .message = "sandbox is NULL"};
    return sb ? &sb->last : &none;
}

uint64_t nub_sandbox_id(const nub_sandbox *sb)
{
    return sb ? sb->id : 0;
}

uint64_t nub_sandbox_shared_mem_size(const nub_sandbox *sb)
{
    return sb ? sb->lay.snapshot_size + sb->lay.scratch_size : 0;
}

enum nub_backend nub_sandbox_backend(const nub_sandbox *sb)
{
    return sb ? sb->backend : NUB_BACKEND_AUTO;
}

size_t nub_sandbox_max_input(const nub_sandbox *sb)
{
    return sb ? (size_t)nub_wire_max_payload(sb->lay.input_size) : 0;
}

nub_status nub_sandbox_set_max_guest_log_level(nub_sandbox *sb, uint32_t level)
{
    if (sb == NULL)
        return NUB_E_INVALID;
    if (level > NUB_LOG_LEVEL_TRACE)
        return nub_state_reject(sb, NUB_E_INVALID, "log level %u is above NUB_LOG_LEVEL_TRACE", level);
    nub_log_publish_level(sb, level); /* atomic stores: no claim, so it works while a call runs */
    return NUB_OK;
}

nub_status nub_sandbox_set_log(nub_sandbox *sb, nub_log_fn fn, void *ctx)
{
    if (sb == NULL)
        return NUB_E_INVALID;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_ANY);
    if (rc != NUB_OK)
        return rc;
    sb->log_fn = fn;
    sb->log_ctx = ctx;
    if (sb->backend_note[0] != '\0')
        nub_log_host(sb, NUB_LOG_LEVEL_WARN, "%s", sb->backend_note);
    nub_state_release(sb);
    return NUB_OK;
}

const char *nub_sandbox_backend_note(const nub_sandbox *sb)
{
    return sb != NULL && sb->backend_note[0] != '\0' ? sb->backend_note : NULL;
}

nub_status nub_sandbox_guest_counter(nub_sandbox *sb, nub_guest_counter **out)
{
    if (sb == NULL || out == NULL)
        return NUB_E_INVALID;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_ANY);
    if (rc != NUB_OK)
        return rc;
    if (sb->counter_taken) {
        rc = nub_err_set(&sb->last, NUB_E_EXISTS, "the guest counter of this sandbox was already handed out");
    } else {
        sb->counter_taken = true;
        *out = &sb->counter;
    }
    nub_state_release(sb);
    return rc;
}

void nub_guest_counter_publish(nub_sandbox *sb)
{
    struct nub_guest_counter *c = &sb->counter;
    if (!sb->counter_taken)
        return;
    if (sb->test.before_counter_publish != NULL)
        sb->test.before_counter_publish(sb->test.ctx, sb);
    pthread_mutex_lock(&c->lock); /* an increment on another thread lands before or after, never between */
    __atomic_store_n(c->slot, c->value, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&c->lock);
}

static nub_status counter_add(nub_guest_counter *c, int delta)
{
    if (c == NULL)
        return NUB_E_INVALID;
    nub_status rc = NUB_OK;
    pthread_mutex_lock(&c->lock);
    uint64_t v = c->value;
    if ((delta > 0 && v == UINT64_MAX) || (delta < 0 && v == 0))
        rc = NUB_E_OVERFLOW;
    else
        v = delta > 0 ? v + 1 : v - 1;
    __atomic_store_n(&c->value, v, __ATOMIC_RELEASE);
    __atomic_store_n(c->slot, v, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

nub_status nub_guest_counter_increment(nub_guest_counter *c)
{
    return counter_add(c, 1);
}

nub_status nub_guest_counter_decrement(nub_guest_counter *c)
{
    return counter_add(c, -1);
}

uint64_t nub_guest_counter_value(const nub_guest_counter *c)
{
    return c ? __atomic_load_n(&c->value, __ATOMIC_ACQUIRE) : 0;
}
