/* Call metrics: per-sandbox counters (single-writer atomics, no locks on the call path), process-wide totals summed over a registry, and the Prometheus text exposition. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/*
 * The process-wide totals: documented process-wide state (nub/observe.h).
 * The call path writes only its own sandbox's counters (one writer, no lock
 * prefix, no cache line shared with other sandboxes). The totals are summed
 * when asked for: the sandboxes alive now (a list linked through
 * sb->obs.reg_prev/next) plus `retired`, the counts of destroyed ones. The
 * lock guards the list, `retired` and the last sandbox id handed out (ids
 * count sandboxes created in the process, from 1); it is taken at create,
 * destroy and nub_metrics_totals(), never by a call.
 */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static nub_sandbox *registry_head;
static struct nub_metrics registry_retired;
static uint64_t registry_last_id; /* nub_sandbox_id(): the last one handed out */

/* A sandbox's counters have one writer (the thread holding the sandbox), so a
 * relaxed load + store suffices; readers on other threads load atomically. */
static inline void own_add(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

#define COUNT(sb, field, v) own_add(&(sb)->obs.m.field, (v))

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned nub_metrics_latency_bucket(uint64_t ns)
{
    uint64_t us = ns / 1000u + (ns % 1000u != 0);
    if (us <= 1)
        return 0;
    unsigned b = 64u - (unsigned)__builtin_clzll(us - 1);
    return b < NUB_METRICS_BUCKETS - 1 ? b : NUB_METRICS_BUCKETS - 1;
}

void nub_metrics_call_begin(nub_sandbox *sb)
{
    if (sb->obs.metrics_on)
        sb->obs.call_t0_ns = now_ns();
}

static void count_failure(nub_sandbox *sb, nub_status rc)
{
    COUNT(sb, calls_failed, 1);
    if (rc < 0 && -rc < NUB_METRICS_CODES)
        COUNT(sb, call_errors[-rc], 1);
    switch (rc) {
    case NUB_E_GUEST: {
        uint32_t st = sb->last.guest_status;
        COUNT(sb, guest_errors[st < NUB_METRICS_GUEST_STATUSES ? st : NUB_METRICS_GUEST_STATUSES - 1], 1);
        break;
    }
    case NUB_E_GUEST_ABORT:
        COUNT(sb, aborts, 1);
        break;
    case NUB_E_GUEST_FAULT:
        if (sb->last.vector < NUB_METRICS_VECTORS)
            COUNT(sb, faults[sb->last.vector], 1);
        break;
    case NUB_E_CANCELLED:
        COUNT(sb, cancellations, 1);
        break;
    case NUB_E_TIMEOUT:
        COUNT(sb, timeouts, 1);
        break;
    default:
        break;
    }
}

void nub_metrics_call_end(nub_sandbox *sb, nub_status rc, uint64_t in_len, uint64_t out_len)
{
    if (!sb->obs.metrics_on)
        return;
    uint64_t ns = now_ns() - sb->obs.call_t0_ns;
    COUNT(sb, calls, 1);
    COUNT(sb, bytes_in, in_len);
    if (rc == NUB_OK)
        COUNT(sb, bytes_out, out_len);
    else
        count_failure(sb, rc);
    COUNT(sb, latency_buckets[nub_metrics_latency_bucket(ns)], 1);
    COUNT(sb, latency_sum_ns, ns);
}

void nub_metrics_host_call(nub_sandbox *sb, int slot)
{
    if (!sb->obs.metrics_on)
        return;
    COUNT(sb, host_calls, 1);
    if (slot < 0)
        COUNT(sb, host_calls_unregistered, 1);
    else if (slot < NUB_METRICS_HOST_FNS)
        COUNT(sb, host_fn_calls[slot], 1);
}

void nub_metrics_host_fn_registered(nub_sandbox *sb, int slot, uint32_t fn_id)
{
    if (slot < 0 || slot >= NUB_METRICS_HOST_FNS)
        return;
    __atomic_store_n(&sb->obs.m.host_fn_ids[slot], fn_id, __ATOMIC_RELAXED);
    __atomic_store_n(&sb->obs.m.nhost_fns, (uint32_t)slot + 1, __ATOMIC_RELEASE);
}

void nub_metrics_count_restore(nub_sandbox *sb)
{
    if (sb != NULL && sb->obs.metrics_on)
        COUNT(sb, restores, 1);
}

/* Core dumps are counted even with metrics off: they are rare and worth knowing. */
void nub_metrics_count_core_dump(nub_sandbox *sb, int ok)
{
    if (ok)
        COUNT(sb, core_dumps, 1);
    else
        COUNT(sb, core_dump_failures, 1);
}

/* ---- reading ------------------------------------------------------------ */

static void load_all(uint64_t *dst, const uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

static void add_all(uint64_t *dst, const uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* Copy src field by field with atomic loads (the struct is all u64 except the fn table). */
static void snapshot(struct nub_metrics *dst, const struct nub_metrics *src)
{
    memset(dst, 0, sizeof *dst);
    dst->nhost_fns = __atomic_load_n(&src->nhost_fns, __ATOMIC_ACQUIRE);
    if (dst->nhost_fns > NUB_METRICS_HOST_FNS)
        dst->nhost_fns = NUB_METRICS_HOST_FNS;
    for (uint32_t i = 0; i < dst->nhost_fns; i++)
        dst->host_fn_ids[i] = __atomic_load_n(&src->host_fn_ids[i], __ATOMIC_RELAXED);
#define LOAD(f) load_all((uint64_t *)&dst->f, (const uint64_t *)&src->f, sizeof dst->f / 8)
    LOAD(calls); LOAD(calls_failed); LOAD(call_errors); LOAD(guest_errors); LOAD(aborts);
    LOAD(faults); LOAD(cancellations); LOAD(timeouts); LOAD(host_calls);
    LOAD(host_calls_unregistered); LOAD(host_fn_calls); LOAD(bytes_in); LOAD(bytes_out);
    LOAD(restores); LOAD(core_dumps); LOAD(core_dump_failures); LOAD(latency_buckets);
    LOAD(latency_sum_ns);
#undef LOAD
}

nub_status nub_sandbox_metrics(const nub_sandbox *sb, struct nub_metrics *out)
{
    if (sb == NULL || out == NULL)
        return NUB_E_INVALID;
    snapshot(out, &sb->obs.m);
    return NUB_OK;
}

/* dst += src over every counter except the per-sandbox host-function table. */
static void add_counters(struct nub_metrics *dst, const struct nub_metrics *src)
{
#define ADD(f) add_all((uint64_t *)&dst->f, (const uint64_t *)&src->f, sizeof dst->f / 8)
    ADD(calls); ADD(calls_failed); ADD(call_errors); ADD(guest_errors); ADD(aborts);
    ADD(faults); ADD(cancellations); ADD(timeouts); ADD(host_calls);
    ADD(host_calls_unregistered); ADD(bytes_in); ADD(bytes_out); ADD(restores);
    ADD(core_dumps); ADD(core_dump_failures); ADD(latency_buckets); ADD(latency_sum_ns);
#undef ADD
}

static void totals_locked(struct nub_metrics *out)
{
    struct nub_metrics one;
    *out = registry_retired;
    for (nub_sandbox *sb = registry_head; sb != NULL; sb = sb->obs.reg_next) {
        snapshot(&one, &sb->obs.m);
        add_counters(out, &one);
    }
}

nub_status nub_metrics_totals(struct nub_metrics *out)
{
    if (out == NULL)
        return NUB_E_INVALID;
    pthread_mutex_lock(&registry_lock);
    totals_locked(out);
    pthread_mutex_unlock(&registry_lock);
    return NUB_OK;
}

void nub_metrics_register(nub_sandbox *sb)
{
    pthread_mutex_lock(&registry_lock);
    sb->id = ++registry_last_id; /* 2^64 creations cannot happen: no wrap to 0 */
    sb->obs.reg_prev = NULL;
    sb->obs.reg_next = registry_head;
    if (registry_head != NULL)
        registry_head->obs.reg_prev = sb;
    registry_head = sb;
    pthread_mutex_unlock(&registry_lock);
}

void nub_metrics_unregister(nub_sandbox *sb)
{
    struct nub_metrics last;
    pthread_mutex_lock(&registry_lock);
    snapshot(&last, &sb->obs.m);
    add_counters(&registry_retired, &last);
    if (sb->obs.reg_prev != NULL)
        sb->obs.reg_prev->obs.reg_next = sb->obs.reg_next;
    else
        registry_head = sb->obs.reg_next;
    if (sb->obs.reg_next != NULL)
        sb->obs.reg_next->obs.reg_prev = sb->obs.reg_prev;
    sb->obs.reg_prev = sb->obs.reg_next = NULL;
    pthread_mutex_unlock(&registry_lock);
}

/* ---- Prometheus text exposition -------------------------------------------- */

/* Output that counts what it would need beyond the buffer, like snprintf. */
struct out {
    char *buf;
    size_t cap, len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct out *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "counter", help);
    put(o, "%s %llu\n", name, (unsigned long long)v);
}

/* Name of a status code without its description: "NUB_E_TIMEOUT". */
static void code_name(char *dst, size_t cap, nub_status code)
{
    const char *s = nub_strerror(code);
    size_t n = strcspn(s, ":");
    snprintf(dst, cap, "%.*s", (int)n, s);
}

static void put_errors(struct out *o, const struct nub_metrics *m)
{
    family(o, "nub_call_errors_total", "counter", "Calls that failed, by NUB_E_* code.");
    for (int i = 1; i < NUB_METRICS_CODES; i++) {
        if (m->call_errors[i] == 0)
            continue;
        char name[64];
        code_name(name, sizeof name, -i);
        put(o, "nub_call_errors_total{code=\"%s\"} %llu\n", name, (unsigned long long)m->call_errors[i]);
    }
    family(o, "nub_guest_errors_total", "counter",
           "Calls whose guest function returned an error status (NUB_E_GUEST), by guest status code.");
    for (int i = 0; i < NUB_METRICS_GUEST_STATUSES; i++)
        if (m->guest_errors[i] != 0)
            put(o, "nub_guest_errors_total{code=\"%d\"} %llu\n", i, (unsigned long long)m->guest_errors[i]);
    counter(o, "nub_guest_aborts_total", "Calls that ended in a guest abort.", m->aborts);
    family(o, "nub_guest_faults_total", "counter", "Calls that ended in a guest CPU exception, by vector (8 includes triple faults).");
    for (int i = 0; i < NUB_METRICS_VECTORS; i++)
        if (m->faults[i] != 0)
            put(o, "nub_guest_faults_total{vector=\"%d\"} %llu\n", i, (unsigned long long)m->faults[i]);
}

static void put_host_calls(struct out *o, const struct nub_metrics *m)
{
    family(o, "nub_host_calls_total", "counter", "Guest-to-host calls, by fn_id (per sandbox).");
    if (m->nhost_fns == 0) {
        put(o, "nub_host_calls_total %llu\n", (unsigned long long)m->host_calls);
        return;
    }
    for (uint32_t i = 0; i < m->nhost_fns; i++)
        put(o, "nub_host_calls_total{fn_id=\"%u\"} %llu\n", m->host_fn_ids[i],
            (unsigned long long)m->host_fn_calls[i]);
    put(o, "nub_host_calls_total{fn_id=\"unregistered\"} %llu\n", (unsigned long long)m->host_calls_unregistered);
}

static void put_histogram(struct out *o, const struct nub_metrics *m)
{
    family(o, "nub_call_duration_seconds", "histogram", "Call latency, from the state checks to the result.");
    uint64_t cum = 0;
    for (int i = 0; i < NUB_METRICS_BUCKETS - 1; i++) {
        cum += m->latency_buckets[i];
        put(o, "nub_call_duration_seconds_bucket{le=\"%.6f\"} %llu\n",
            (double)NUB_METRICS_BUCKET_US(i) / 1e6, (unsigned long long)cum);
    }
    cum += m->latency_buckets[NUB_METRICS_BUCKETS - 1];
    put(o, "nub_call_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    put(o, "nub_call_duration_seconds_sum %.9f\n", (double)m->latency_sum_ns / 1e9);
    put(o, "nub_call_duration_seconds_count %llu\n", (unsigned long long)cum);
}

nub_status nub_metrics_format_prometheus(const struct nub_metrics *m, char *buf, size_t cap, size_t *len)
{
    struct nub_metrics totals;
    if (len == NULL || (buf == NULL && cap > 0))
        return NUB_E_INVALID;
    if (m == NULL) {
        nub_metrics_totals(&totals);
        m = &totals;
    }
    struct out o = {buf, cap, 0};
    counter(&o, "nub_calls_total", "Calls into the guest that passed the state checks.", m->calls);
    counter(&o, "nub_calls_failed_total", "Calls that returned an error.", m->calls_failed);
    put_errors(&o, m);
    counter(&o, "nub_cancellations_total", "Calls interrupted with nub_interrupt().", m->cancellations);
    counter(&o, "nub_timeouts_total", "Calls that ran past their timeout.", m->timeouts);
    put_host_calls(&o, m);
    counter(&o, "nub_call_bytes_in_total", "Payload bytes passed to calls.", m->bytes_in);
    counter(&o, "nub_call_bytes_out_total", "Result bytes returned by successful calls.", m->bytes_out);
    counter(&o, "nub_restores_total", "Snapshot restores.", m->restores);
    counter(&o, "nub_core_dumps_total", "Guest core files written.", m->core_dumps);
    counter(&o, "nub_core_dump_failures_total", "Guest core files that could not be written.", m->core_dump_failures);
    put_histogram(&o, m);
    *len = o.len;
    if (o.len >= cap) {
        if (cap > 0)
            buf[cap - 1] = '\0';
        return NUB_E_TOO_LARGE;
    }
    return NUB_OK;
}

void nub_test_metrics_hooks(nub_sandbox *sb, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        nub_metrics_call_begin(sb);
        nub_metrics_call_end(sb, NUB_OK, 0, 0);
    }
}
