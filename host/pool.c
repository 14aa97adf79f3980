/* nub_pool: sandboxes from one evolved snapshot kept ready by a filler thread; acquire hands one out, release restores it and puts it back. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct nub_pool {
    nub_snapshot *snap;          /* a reference */
    struct nub_config ov;
    bool has_ov;
    nub_pool_setup_fn setup;
    void *setup_ctx;
    size_t size;
    pthread_mutex_t lock;
    pthread_cond_t wake;         /* the filler: room in the pool, or stop */
    pthread_cond_t changed;      /* nub_pool_wait_full: the pool filled or the filler failed */
    nub_sandbox **ready;         /* size slots, nready used */
    size_t nready;
    bool stop;
    bool fill_failed;            /* the filler's last creation failed: it waits for the next acquire */
    pthread_t filler;
};

/* A new sandbox from the pool's snapshot, set up by the pool's callback. */
static nub_status make_sandbox(nub_pool *p, nub_sandbox **out, struct nub_error *err)
{
    nub_status rc = nub_sandbox_new_from_snapshot(p->snap, p->has_ov ? &p->ov : NULL, out, err);
    if (rc != NUB_OK || p->setup == NULL || p->setup(p->setup_ctx, *out) == 0)
        return rc;
    nub_sandbox_destroy(*out);
    *out = NULL;
    return nub_err_set(err, NUB_E_INVALID, "the pool's setup callback failed");
}

/* Put `sb` back when there is room; else it is the caller's to destroy. Lock held. */
static bool push_locked(nub_pool *p, nub_sandbox *sb)
{
    if (p->stop || p->nready >= p->size)
        return false;
    p->ready[p->nready++] = sb;
    if (p->nready == p->size)
        pthread_cond_broadcast(&p->changed);
    return true;
}

static void *filler_main(void *arg)
{
    nub_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && (p->nready >= p->size || p->fill_failed))
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->stop)
            break;
        pthread_mutex_unlock(&p->lock);
        nub_sandbox *sb = NULL;
        nub_status rc = make_sandbox(p, &sb, NULL);
        pthread_mutex_lock(&p->lock);
        if (rc != NUB_OK) {
            p->fill_failed = true;
            pthread_cond_broadcast(&p->changed);
        } else if (!push_locked(p, sb)) {
            pthread_mutex_unlock(&p->lock);
            nub_sandbox_destroy(sb);
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void pool_free(nub_pool *p)
{
    pthread_cond_destroy(&p->changed);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    nub_snapshot_release(p->snap);
    free(p->ready);
    free(p);
}

nub_status nub_pool_new(nub_snapshot *snap, size_t size, const struct nub_config *cfg_overrides,
                        nub_pool_setup_fn setup, void *setup_ctx, nub_pool **out,
                        struct nub_error *err)
{
    nub_err_clear(err);
    if (out == NULL || snap == NULL || size == 0)
        return nub_err_set(err, NUB_E_INVALID, "%s", out == NULL ? "out is NULL" : snap == NULL ? "snapshot is NULL" : "pool size is 0");
    *out = NULL;
    if (!snap->evolved)
        return nub_err_set(err, NUB_E_INVALID, "a pool needs an evolved snapshot (nub_sandbox_snapshot of an evolved sandbox)");
    nub_pool *p = calloc(1, sizeof *p);
    if (p == NULL || (p->ready = calloc(size, sizeof *p->ready)) == NULL) {
        free(p);
        return nub_err_set(err, NUB_E_NOMEM, "cannot allocate a pool of %zu", size);
    }
    p->snap = nub_snapshot_retain(snap);
    p->has_ov = cfg_overrides != NULL;
    if (cfg_overrides)
        p->ov = *cfg_overrides;
    p->setup = setup;
    p->setup_ctx = setup_ctx;
    p->size = size;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->changed, NULL);
    if (pthread_create(&p->filler, NULL, filler_main, p) != 0) {
        pool_free(p);
        return nub_err_set(err, NUB_E_NOMEM, "cannot start the pool's filler thread");
    }
    *out = p;
    return NUB_OK;
}

nub_status nub_pool_acquire(nub_pool *pool, nub_sandbox **out, struct nub_error *err)
{
    nub_err_clear(err);
    if (pool == NULL || out == NULL)
        return nub_err_set(err, NUB_E_INVALID, "%s is NULL", pool ? "out" : "pool");
    pthread_mutex_lock(&pool->lock);
    *out = pool->nready ? pool->ready[--pool->nready] : NULL;
    pool->fill_failed = false;
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    return *out ? NUB_OK : make_sandbox(pool, out, err);
}

void nub_pool_release(nub_pool *pool, nub_sandbox *sb)
{
    if (pool == NULL || sb == NULL)
        return;
    if (nub_sandbox_restore(sb, pool->snap) != NUB_OK) {
        nub_sandbox_destroy(sb);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    bool kept = push_locked(pool, sb);
    pthread_mutex_unlock(&pool->lock);
    if (!kept)
        nub_sandbox_destroy(sb);
}

size_t nub_pool_ready(nub_pool *pool)
{
    if (pool == NULL)
        return 0;
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->nready;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

nub_status nub_pool_wait_full(nub_pool *pool)
{
    if (pool == NULL)
        return NUB_E_INVALID;
    pthread_mutex_lock(&pool->lock);
    while (pool->nready < pool->size && !pool->fill_failed)
        pthread_cond_wait(&pool->changed, &pool->lock);
    nub_status rc = pool->nready == pool->size ? NUB_OK : NUB_E_BACKEND;
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

void nub_pool_destroy(nub_pool *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    pthread_join(pool->filler, NULL);
    for (size_t i = 0; i < pool->nready; i++)
        nub_sandbox_destroy(pool->ready[i]);
    pool_free(pool);
}
