/* Private observability declarations: per-sandbox metrics and crash-dump state, hooks the call path calls, the logger. */
#ifndef NUB_HOST_OBS_H
#define NUB_HOST_OBS_H

#include <stdbool.h>
#include <stdint.h>

#include "nub/nub.h"

#define NUB_CORE_DIR_MAX 4096

/* Observability state of one sandbox (nub_sandbox.obs). */
struct nub_obs {
    bool metrics_on;            /* !cfg.disable_metrics */
    bool core_on;               /* cfg.guest_core_dump */
    uint64_t call_t0_ns;        /* CLOCK_MONOTONIC at the start of the running call */
    uint64_t core_seq;          /* core files named so far */
    uint64_t cr3;               /* root of the guest page tables the host built */
    struct nub_metrics m;       /* written by the thread holding the sandbox; read by any */
    struct nub_sandbox *reg_prev, *reg_next; /* the live-sandbox registry (metrics.c) */
    char core_dir[NUB_CORE_DIR_MAX]; /* resolved at creation ("" = none usable) */
};

struct nub_sandbox;

/* Set up sb->obs for a new sandbox (log.c): metrics on/off, the core-dump
 * directory, the published guest log level, $NUB_LOG, and an info line
 * naming the backend AUTO chose. */
void nub_obs_init(struct nub_sandbox *sb, uint64_t cr3);

/* Undo nub_obs_init at destroy: the sandbox's counts move into the retired totals. */
void nub_obs_fini(struct nub_sandbox *sb);

/* ---- metrics (metrics.c) ---- */

/* Add sb to / remove it from the registry the process totals are summed over;
 * register also gives sb its id (the next of the process, from 1). */
void nub_metrics_register(struct nub_sandbox *sb);
void nub_metrics_unregister(struct nub_sandbox *sb);

/* Histogram bucket of a latency: 0 for <= 1 us, i for (2^(i-1), 2^i] us,
 * NUB_METRICS_BUCKETS - 1 for more than 2^25 us. */
unsigned nub_metrics_latency_bucket(uint64_t ns);

/* A call passed its state checks: start its clock. */
void nub_metrics_call_begin(struct nub_sandbox *sb);

/* The call ended with rc, having sent in_len bytes and returned out_len. */
void nub_metrics_call_end(struct nub_sandbox *sb, nub_status rc, uint64_t in_len, uint64_t out_len);

/* One guest->host call to registration slot `slot` (-1: unregistered fn_id). */
void nub_metrics_host_call(struct nub_sandbox *sb, int slot);

/* Record fn_id at registration slot `slot` (called by nub_sandbox_register). */
void nub_metrics_host_fn_registered(struct nub_sandbox *sb, int slot, uint32_t fn_id);

/* Count one snapshot restore of sb (for the snapshot code). */
void nub_metrics_count_restore(struct nub_sandbox *sb);

/* Count one core file written (ok) or failed (counted even with metrics off). */
void nub_metrics_count_core_dump(struct nub_sandbox *sb, int ok);

/* ---- crash dumps (coredump.c) ---- */

/*
 * The run (evolve or call) ended with rc: when core dumps are on and rc is
 * a fault, abort or timeout, write one, append its path to the error
 * message and log it. Never changes rc, the state or anything but the
 * message; must be called before the scratch buffers are scrubbed.
 */
void nub_core_dump_on_failure(struct nub_sandbox *sb, nub_status rc);

/* ---- logging (log.c) ---- */

/* Deliver one line from `src` at `level` to the sandbox's callback or the default logger. */
void nub_log_emit(const struct nub_sandbox *sb, enum nub_log_source src, uint32_t level,
                  const char *msg, size_t len);

/* Install the $NUB_LOG stderr logger once per process, unless a default was set. */
void nub_log_env_once(void);

/* Make `level` the sandbox's max guest log level: sb->max_log_level, which
 * the host filters by, and the scratch top page's copy, which the guest reads. */
void nub_log_publish_level(struct nub_sandbox *sb, uint32_t level);

#endif /* NUB_HOST_OBS_H */
