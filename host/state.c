/* The sandbox's state machine, the one owner of its phase: claim (per-call generation), release, poison, restore, and interrupts that target a generation. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "testing.h"

/*
 * One object per sandbox, shared by reference with every interrupt handle
 * (nub_sandbox_interrupt_handle), so it outlives the sandbox while handles
 * exist. `lock` guards every field. A claim makes `busy` true and starts
 * generation `gen`; only the claimer touches the sandbox until it releases.
 * An interrupt looks at `gen` under the lock and delivers to the backend
 * only while that generation is still claimed, so it can neither be erased
 * by the start of the call it targets nor leak into a later one.
 */
struct nub_interrupt_handle {
    pthread_mutex_t lock;
    unsigned refs;              /* the sandbox's reference + one per handle reference */
    bool alive;                 /* false once the sandbox is destroyed */
    bool busy;                  /* a claim is held */
    enum nub_sb_state phase;
    uint64_t gen;               /* generation of the current (or last) claim, from 1 */
    enum nub_cancel cancel;     /* why generation `gen` was interrupted */
    const struct nub_hv_ops *ops;
    struct nub_hv *hv;
};

nub_status nub_state_new(nub_sandbox *sb, struct nub_error *err)
{
    nub_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return nub_err_set(err, NUB_E_NOMEM, "cannot allocate the sandbox state");
    pthread_mutex_init(&st->lock, NULL);
    st->refs = 1;
    st->alive = true;
    st->phase = NUB_SB_UNINIT;
    st->ops = sb->ops;
    st->hv = sb->hv;
    sb->st = st;
    return NUB_OK;
}

static void unref(nub_state *st)
{
    pthread_mutex_lock(&st->lock);
    bool last = --st->refs == 0;
    pthread_mutex_unlock(&st->lock);
    if (last) {
        pthread_mutex_destroy(&st->lock);
        free(st);
    }
}

void nub_state_detach(nub_sandbox *sb)
{
    nub_state *st = sb->st;
    if (st == NULL)
        return;
    pthread_mutex_lock(&st->lock);
    st->alive = false;
    st->hv = NULL;
    pthread_mutex_unlock(&st->lock);
    sb->st = NULL;
    unref(st);
}

static const char *phase_error(enum nub_sb_state phase, enum nub_claim want, nub_status *code)
{
    *code = NUB_E_STATE;
    if (phase == NUB_SB_POISONED && want != NUB_CLAIM_ANY) {
        *code = NUB_E_POISONED;
        return "sandbox is poisoned by an earlier failure: restore or destroy it";
    }
    if (want == NUB_CLAIM_READY && phase != NUB_SB_READY)
        return "sandbox is not evolved yet";
    if (want == NUB_CLAIM_UNINIT && phase != NUB_SB_UNINIT)
        return "sandbox is already evolved";
    *code = NUB_OK;
    return NULL;
}

nub_status nub_state_claim(nub_sandbox *sb, enum nub_claim want)
{
    nub_state *st = sb->st;
    nub_status rc;
    pthread_mutex_lock(&st->lock);
    if (st->busy) {
        pthread_mutex_unlock(&st->lock);
        return NUB_E_BUSY;
    }
    const char *why = phase_error(st->phase, want, &rc);
    if (why != NULL) {
        /* Nobody holds a claim and we hold the lock: the record is ours to write. */
        nub_err_set(&sb->last, rc, "%s", why);
        pthread_mutex_unlock(&st->lock);
        return rc;
    }
    st->busy = true;
    st->gen++;
    st->cancel = NUB_CANCEL_NONE;
    st->ops->clear_interrupt(st->hv); /* interrupts of earlier generations end here */
    pthread_mutex_unlock(&st->lock);
    if (sb->test.after_claim != NULL)
        sb->test.after_claim(sb->test.ctx, sb);
    return NUB_OK;
}

void nub_state_release(nub_sandbox *sb)
{
    nub_state *st = sb->st;
    pthread_mutex_lock(&st->lock);
    st->busy = false;
    pthread_mutex_unlock(&st->lock);
    if (sb->test.after_release != NULL)
        sb->test.after_release(sb->test.ctx, sb);
}

static void set_phase(nub_sandbox *sb, enum nub_sb_state phase)
{
    pthread_mutex_lock(&sb->st->lock);
    sb->st->phase = phase;
    pthread_mutex_unlock(&sb->st->lock);
}

void nub_state_poison(nub_sandbox *sb)
{
    set_phase(sb, NUB_SB_POISONED);
}

void nub_state_evolved(nub_sandbox *sb)
{
    set_phase(sb, NUB_SB_READY);
}

void nub_state_restore(nub_sandbox *sb)
{
    set_phase(sb, NUB_SB_READY);
}

void nub_state_restore_to(nub_sandbox *sb, bool evolved)
{
    set_phase(sb, evolved ? NUB_SB_READY : NUB_SB_UNINIT);
}

enum nub_sb_state nub_state_phase(const nub_sandbox *sb)
{
    pthread_mutex_lock(&sb->st->lock);
    enum nub_sb_state phase = sb->st->phase;
    pthread_mutex_unlock(&sb->st->lock);
    return phase;
}

uint64_t nub_state_gen(const nub_sandbox *sb)
{
    pthread_mutex_lock(&sb->st->lock);
    uint64_t gen = sb->st->gen;
    pthread_mutex_unlock(&sb->st->lock);
    return gen;
}

enum nub_cancel nub_state_cancel_reason(const nub_sandbox *sb)
{
    pthread_mutex_lock(&sb->st->lock);
    enum nub_cancel why = sb->st->cancel;
    pthread_mutex_unlock(&sb->st->lock);
    return why;
}

nub_status nub_state_interrupt(nub_state *st, uint64_t gen, enum nub_cancel why)
{
    nub_status rc = NUB_OK;
    pthread_mutex_lock(&st->lock);
    if (!st->alive) {
        rc = NUB_E_STATE;
    } else if (st->busy && (gen == 0 || gen == st->gen)) {
        if (st->cancel == NUB_CANCEL_NONE)
            st->cancel = why;
        st->ops->interrupt(st->hv); /* under the lock: the claim cannot end meanwhile */
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

nub_status nub_state_reject(nub_sandbox *sb, nub_status code, const char *fmt, ...)
{
    char msg[NUB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&sb->st->lock);
    if (!sb->st->busy) /* a running call's record is left alone */
        nub_err_set(&sb->last, code, "%s", msg);
    pthread_mutex_unlock(&sb->st->lock);
    return code;
}

/* ---- interrupt handles (nub.h) ------------------------------------------ */

nub_interrupt_handle *nub_sandbox_interrupt_handle(nub_sandbox *sb)
{
    if (sb == NULL || sb->st == NULL)
        return NULL;
    pthread_mutex_lock(&sb->st->lock);
    sb->st->refs++;
    pthread_mutex_unlock(&sb->st->lock);
    return sb->st;
}

nub_status nub_interrupt_handle_interrupt(nub_interrupt_handle *h)
{
    return h ? nub_state_interrupt(h, 0, NUB_CANCEL_INTERRUPT) : NUB_E_INVALID;
}

void nub_interrupt_handle_release(nub_interrupt_handle *h)
{
    if (h != NULL)
        unref(h);
}

nub_status nub_interrupt(nub_sandbox *sb)
{
    if (sb == NULL)
        return NUB_E_INVALID;
    return nub_state_interrupt(sb->st, 0, NUB_CANCEL_INTERRUPT);
}

/* ---- test hooks (testing.h) --------------------------------------------- */

void nub_test_set_hooks(nub_sandbox *sb, const struct nub_test_hooks *hooks)
{
    static const struct nub_test_hooks none = {0};
    sb->test = hooks ? *hooks : none;
}
