/* Per-sandbox call-timeout watchdog: a thread that interrupts the claim generation whose armed deadline passed. */
#include <errno.h>
#include <string.h>

#include "internal.h"

static void *watchdog_main(void *arg)
{
    nub_sandbox *sb = arg;
    struct nub_watchdog *wd = &sb->wd;
    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        if (!wd->armed) {
            pthread_cond_wait(&wd->cond, &wd->lock);
            continue;
        }
        uint64_t gen = wd->gen;
        int rc = pthread_cond_timedwait(&wd->cond, &wd->lock, &wd->deadline);
        if (rc == ETIMEDOUT && wd->armed && wd->gen == gen) {
            nub_state_interrupt(sb->st, gen, NUB_CANCEL_TIMEOUT);
            wd->armed = false;
        }
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

static nub_status start(nub_sandbox *sb)
{
    struct nub_watchdog *wd = &sb->wd;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&wd->lock, NULL);
    pthread_cond_init(&wd->cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = sb->test.thread_create ? sb->test.thread_create(&wd->thread, NULL, watchdog_main, sb)
                                    : pthread_create(&wd->thread, NULL, watchdog_main, sb);
    if (rc != 0) {
        pthread_cond_destroy(&wd->cond);
        pthread_mutex_destroy(&wd->lock);
        return nub_err_set(&sb->last, NUB_E_NOMEM, "cannot start the timeout watchdog: %s", strerror(rc));
    }
    wd->running = true;
    return NUB_OK;
}

nub_status nub_watchdog_arm(nub_sandbox *sb)
{
    struct nub_watchdog *wd = &sb->wd;
    if (sb->cfg.call_timeout_ms == 0)
        return NUB_OK;
    if (!wd->running) {
        nub_status rc = start(sb);
        if (rc != NUB_OK)
            return rc;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t ns = (uint64_t)now.tv_nsec + (uint64_t)(sb->cfg.call_timeout_ms % 1000) * 1000000u;
    pthread_mutex_lock(&wd->lock);
    wd->deadline.tv_sec = now.tv_sec + (time_t)(sb->cfg.call_timeout_ms / 1000) + (time_t)(ns / 1000000000u);
    wd->deadline.tv_nsec = (long)(ns % 1000000000u);
    wd->armed = true;
    wd->gen = nub_state_gen(sb);
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    return NUB_OK;
}

void nub_watchdog_disarm(nub_sandbox *sb)
{
    struct nub_watchdog *wd = &sb->wd;
    if (!wd->running)
        return;
    pthread_mutex_lock(&wd->lock);
    wd->armed = false;
    pthread_mutex_unlock(&wd->lock);
}

void nub_watchdog_stop(nub_sandbox *sb)
{
    struct nub_watchdog *wd = &sb->wd;
    if (!wd->running)
        return;
    pthread_mutex_lock(&wd->lock);
    wd->stop = true;
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(wd->thread, NULL);
    pthread_cond_destroy(&wd->cond);
    pthread_mutex_destroy(&wd->lock);
    wd->running = false;
}
