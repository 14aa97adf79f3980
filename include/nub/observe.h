/* nub observability API: call metrics with a Prometheus exposition, crash dumps as ELF core files, the process default logger. */
#ifndef NUB_OBSERVE_H
#define NUB_OBSERVE_H

/* Included at the end of nub/nub.h; uses nub_status, nub_sandbox and
 * nub_log_fn from it, so it includes it too (either may come first). */
#include <stddef.h>
#include <stdint.h>

#include "nub/api.h"
#include "nub/nub.h"

#ifdef __cplusplus
extern "C" {
#endif

NUB_API_BEGIN

/* ---- Metrics -------------------------------------------------------------
 *
 * Every sandbox counts its calls (nub_call, nub_call_into and the functions
 * built on them, once they passed the state checks: a call refused with
 * NUB_E_BUSY, NUB_E_POISONED or NUB_E_STATE before it was taken is not
 * counted). The call path reads the clock twice and stores to the
 * sandbox's own counters (one writer, relaxed atomic stores: no lock, no
 * lock-prefixed instruction, no cache line shared with another sandbox); a
 * sandbox created with nub_config.disable_metrics counts nothing and reads
 * no clock. Evolve (init) is not a call and is not counted.
 *
 * The process-wide totals are summed when asked for, over a registry of
 * the live sandboxes plus the counts of destroyed ones. That registry is
 * the library's one piece of global mutable state besides the kvm probe
 * cache and the default logger: a mutex-guarded list (and the count of
 * sandboxes created, which numbers them for nub_sandbox_id()) that sandbox
 * creation and destruction and nub_metrics_totals() touch, never a call.
 */

#define NUB_METRICS_CODES 32          /* call errors indexed by -code (NUB_E_* is -1..-22, -30, -31) */
#define NUB_METRICS_GUEST_STATUSES 16 /* guest errors by NUB_STATUS_*; higher statuses count in the last slot */
#define NUB_METRICS_VECTORS 32        /* faults by exception vector 0..31; triple faults count as 8 */
#define NUB_METRICS_HOST_FNS 64       /* = the most host functions a sandbox registers */
#define NUB_METRICS_BUCKETS 27        /* call latency: le 1 us, 2 us, ... 2^25 us, then +Inf */

struct nub_metrics {
    uint64_t calls;                                  /* calls that entered the call path */
    uint64_t calls_failed;                           /* of those, how many returned an error */
    uint64_t call_errors[NUB_METRICS_CODES];         /* [-code]: failed calls by NUB_E_* code */
    uint64_t guest_errors[NUB_METRICS_GUEST_STATUSES]; /* NUB_E_GUEST calls by guest status */
    uint64_t aborts;                                 /* NUB_E_GUEST_ABORT */
    uint64_t faults[NUB_METRICS_VECTORS];            /* NUB_E_GUEST_FAULT by vector */
    uint64_t cancellations;                          /* NUB_E_CANCELLED */
    uint64_t timeouts;                               /* NUB_E_TIMEOUT */
    uint64_t host_calls;                             /* guest->host calls, registered or not */
    uint64_t host_calls_unregistered;                /* of those, to an fn_id nobody registered */
    uint32_t nhost_fns;                              /* per sandbox: entries valid below (totals: 0) */
    uint32_t host_fn_ids[NUB_METRICS_HOST_FNS];      /* registered fn_ids, in registration order */
    uint64_t host_fn_calls[NUB_METRICS_HOST_FNS];    /* host calls to host_fn_ids[i] */
    uint64_t bytes_in;                               /* payload bytes passed to calls */
    uint64_t bytes_out;                              /* result bytes returned by successful calls */
    uint64_t restores;                               /* successful nub_sandbox_restore() calls */
    uint64_t core_dumps;                             /* core files written */
    uint64_t core_dump_failures;                     /* core files that could not be written */
    uint64_t latency_buckets[NUB_METRICS_BUCKETS];   /* calls by latency, NOT cumulative: bucket i
                                                      * holds (2^(i-1), 2^i] us, bucket 0 <= 1 us,
                                                      * the last one > 2^25 us */
    uint64_t latency_sum_ns;                         /* total latency of the counted calls */
};

/* Upper bound of latency bucket i in microseconds (i < NUB_METRICS_BUCKETS - 1). */
#define NUB_METRICS_BUCKET_US(i) (1ull << (i))

/*
 * Copy the sandbox's counters into *out. Safe from any thread while calls
 * run (each field is read atomically; fields read a moment apart may
 * disagree by the calls that ended in between). Errors: NUB_E_INVALID
 * (sb or out NULL).
 */
nub_status nub_sandbox_metrics(const nub_sandbox *sb, struct nub_metrics *out);

/* Copy the process-wide totals (all sandboxes, destroyed ones included;
 * the per-sandbox host-function table is left empty). Takes the registry
 * lock: sandbox creation and destruction wait meanwhile, calls do not.
 * Errors: NUB_E_INVALID (out NULL). */
nub_status nub_metrics_totals(struct nub_metrics *out);

/*
 * Write `m` (NULL: the process totals) in the Prometheus text exposition
 * format (version 0.0.4) into buf, NUL-terminated, *len = bytes written
 * without the NUL. Families: nub_calls_total, nub_call_errors_total{code},
 * nub_guest_errors_total{code}, nub_guest_aborts_total,
 * nub_guest_faults_total{vector}, nub_cancellations_total,
 * nub_timeouts_total, nub_host_calls_total{fn_id} (fn_id="unregistered"
 * for unknown ids; the totals carry no fn_id), nub_call_bytes_in_total,
 * nub_call_bytes_out_total, nub_restores_total, nub_core_dumps_total,
 * nub_core_dump_failures_total and the histogram nub_call_duration_seconds.
 * Error, guest-error and fault series appear only when non-zero. When cap is too small:
 * NUB_E_TOO_LARGE with *len = the bytes needed (without the NUL), buf
 * holding a truncated, NUL-terminated prefix when cap > 0.
 * Errors: NUB_E_INVALID (len NULL, or buf NULL with cap > 0).
 */
nub_status nub_metrics_format_prometheus(const struct nub_metrics *m, char *buf, size_t cap,
                                         size_t *len);

/* ---- Crash dumps ---------------------------------------------------------
 *
 * With nub_config.guest_core_dump (which nub_config_default() sets when the
 * environment has NUB_CORE_DUMP=1), a call or evolve that ends in NUB_E_GUEST_FAULT
 * (CPU exception or triple fault), NUB_E_GUEST_ABORT or NUB_E_TIMEOUT
 * writes an ELF core file of the guest into nub_config.core_dump_dir, else
 * $NUB_CORE_DUMP_DIR, else $TMPDIR, else /tmp, named
 * nub-core.<pid>.<sandbox id>.<n> (n counts dumps of the sandbox; the file
 * is created with O_EXCL, so concurrent sandboxes never collide). The path
 * is appended to the error message (" [core dumped to PATH]") and logged
 * at NUB_LOG_LEVEL_INFO; a dump that fails is logged at WARN and leaves the
 * call's error and the sandbox's state exactly as they were.
 * `gdb guest.elf CORE` shows the faulting frame and the backtrace; the
 * layout is in docs/observability.md.
 */

/*
 * Write a core file of the guest's current state to `path` (created, or
 * truncated when it exists) with the vCPU's current registers. Claims the
 * sandbox like a call: NUB_E_BUSY while a call runs. Works on a poisoned
 * sandbox (that is when a dump is most useful). Errors: NUB_E_INVALID, NUB_E_BUSY, NUB_E_IO (the file
 * could not be written; message says why), NUB_E_BACKEND (registers could
 * not be read). Recorded in nub_sandbox_last_error() only on failure.
 */
nub_status nub_sandbox_core_dump(nub_sandbox *sb, const char *path);

/* ---- Default logger ------------------------------------------------------
 *
 * Sandboxes without their own callback (nub_sandbox_set_log) log through
 * the process default: NULL (nothing logged) until nub_set_default_log()
 * installs one, or until the first sandbox is created with NUB_LOG set in
 * the environment (error|warn|info|debug|trace), which installs a logger
 * writing "nub: SOURCE LEVEL: message" lines to stderr at that level. Host
 * lines above the default's max_level are not delivered to it; guest log
 * messages are filtered by each sandbox's max guest log level, and then by
 * the default's max_level too. $NUB_LOG is read once, when the first
 * sandbox of the process is created, and is ignored when
 * nub_set_default_log() was called before (even with fn NULL); a later
 * nub_set_default_log() replaces its logger. fn NULL turns the default off.
 * Errors: NUB_E_INVALID (max_level above NUB_LOG_LEVEL_TRACE). Thread-safe;
 * the callback is invoked without any lock held.
 */
nub_status nub_set_default_log(nub_log_fn fn, void *ctx, uint32_t max_level);

/* The stderr logger NUB_LOG installs (ctx unused), for callers who want it. */
void nub_log_stderr(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len);

/* Parse "error", "warn", "info", "debug", "trace" (or "off") into *level; NUB_E_INVALID otherwise. */
nub_status nub_log_level_parse(const char *name, uint32_t *level);

NUB_API_END

#ifdef __cplusplus
}
#endif

#endif /* NUB_OBSERVE_H */
