/* Per-sandbox call-timeout watchdog: a thread that interrupts the vCPU when an armed deadline passes. */
#include <errno.h>
#include <string.h>

#include "internal.h"

static void *watchdog_main(void *arg)
{
    nub_sandbox *sb = arg;
    pthread_mutex_lock(&sb->wd_lock);
    while (!sb->wd_stop) {
        if (!sb->wd_armed) {
            pthread_cond_wait(&sb->wd_cond, &sb->wd_lock);
            continue;
        }
        uint64_t gen = sb->wd_gen;
        int rc = pthread_cond_timedwait(&sb->wd_cond, &sb->wd_lock, &sb->wd_deadline);
        if (rc == ETIMEDOUT && sb->wd_armed && sb->wd_gen == gen) {
            atomic_store(&sb->timed_out, true);
            sb->ops->interrupt(sb->hv);
            sb->wd_armed = false;
        }
    }
    pthread_mutex_unlock(&sb->wd_lock);
    return NULL;
}

static nub_status start(nub_sandbox *sb)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&sb->wd_lock, NULL);
    pthread_cond_init(&sb->wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&sb->wd_thread, NULL, watchdog_main, sb);
    if (rc != 0) {
        pthread_cond_destroy(&sb->wd_cond);
        pthread_mutex_destroy(&sb->wd_lock);
        return nub_err_set(&sb->last, NUB_E_NOMEM, "cannot start the timeout watchdog: %s", strerror(rc));
    }
    sb->wd_running = true;
    return NUB_OK;
}

nub_status nub_watchdog_arm(nub_sandbox *sb)
{
    if (sb->cfg.call_timeout_ms == 0)
        return NUB_OK;
    if (!sb->wd_running) {
        nub_status rc = start(sb);
        if (rc != NUB_OK)
            return rc;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t ns = (uint64_t)now.tv_nsec + (uint64_t)(sb->cfg.call_timeout_ms % 1000) * 1000000u;
    pthread_mutex_lock(&sb->wd_lock);
    sb->wd_deadline.tv_sec = now.tv_sec + (time_t)(sb->cfg.call_timeout_ms / 1000) + (time_t)(ns / 1000000000u);
    sb->wd_deadline.tv_nsec = (long)(ns % 1000000000u);
    sb->wd_armed = true;
    sb->wd_gen++;
    pthread_cond_signal(&sb->wd_cond);
    pthread_mutex_unlock(&sb->wd_lock);
    return NUB_OK;
}

void nub_watchdog_disarm(nub_sandbox *sb)
{
    if (!sb->wd_running)
        return;
    pthread_mutex_lock(&sb->wd_lock);
    sb->wd_armed = false;
    pthread_mutex_unlock(&sb->wd_lock);
}

void nub_watchdog_stop(nub_sandbox *sb)
{
    if (!sb->wd_running)
        return;
    pthread_mutex_lock(&sb->wd_lock);
    sb->wd_stop = true;
    pthread_cond_signal(&sb->wd_cond);
    pthread_mutex_unlock(&sb->wd_lock);
    pthread_join(sb->wd_thread, NULL);
    pthread_cond_destroy(&sb->wd_cond);
    pthread_mutex_destroy(&sb->wd_lock);
    sb->wd_running = false;
}
