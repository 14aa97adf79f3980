/* Logging: the sandbox callback or the process default logger ($NUB_LOG's stderr logger), host lines, and the live guest log level. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * The process default logger: documented process-wide state (nub/observe.h).
 * Written under default_lock; read by copying it out under the lock, so the
 * callback itself runs unlocked. default_present spares the lock when unset.
 */
struct default_log {
    nub_log_fn fn;
    void *ctx;
    uint32_t max_level;
};
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static struct default_log default_log;
static atomic_bool default_present;
static atomic_bool default_set_by_caller;

static const char *const level_names[] = {"off", "error", "warn", "info", "debug", "trace"};

nub_status nub_log_level_parse(const char *name, uint32_t *level)
{
    if (name == NULL || level == NULL)
        return NUB_E_INVALID;
    for (uint32_t i = 0; i <= NUB_LOG_LEVEL_TRACE; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = i;
            return NUB_OK;
        }
    }
    return NUB_E_INVALID;
}

static void install_default(nub_log_fn fn, void *ctx, uint32_t max_level)
{
    pthread_mutex_lock(&default_lock);
    default_log = (struct default_log){fn, ctx, max_level};
    atomic_store(&default_present, fn != NULL);
    pthread_mutex_unlock(&default_lock);
}

nub_status nub_set_default_log(nub_log_fn fn, void *ctx, uint32_t max_level)
{
    if (max_level > NUB_LOG_LEVEL_TRACE)
        return NUB_E_INVALID;
    atomic_store(&default_set_by_caller, true);
    install_default(fn, ctx, max_level);
    return NUB_OK;
}

void nub_log_stderr(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    (void)ctx;
    static const char *const srcs[] = {"host", "guest", "console"};
    char text[1024];
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    for (size_t i = 0; i < n; i++) /* guest bytes are untrusted: no terminal control sequences */
        text[i] = (msg[i] >= 0x20 && msg[i] < 0x7f) || msg[i] == '\t' ? msg[i] : '?';
    text[n] = '\0';
    fprintf(stderr, "nub: %s %s: %s%s\n", (unsigned)src < 3 ? srcs[src] : "?",
            level <= NUB_LOG_LEVEL_TRACE ? level_names[level] : "?", text, n < len ? " [...]" : "");
}

static void read_env(void)
{
    uint32_t level;
    const char *v = getenv("NUB_LOG");
    if (v == NULL || nub_log_level_parse(v, &level) != NUB_OK || level == NUB_LOG_LEVEL_OFF)
        return;
    pthread_mutex_lock(&default_lock);
    if (!atomic_load(&default_set_by_caller)) {
        default_log = (struct default_log){nub_log_stderr, NULL, level};
        atomic_store(&default_present, true);
    }
    pthread_mutex_unlock(&default_lock);
}

void nub_log_env_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, read_env);
}

void nub_log_emit(const nub_sandbox *sb, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    if (sb->log_fn != NULL) {
        sb->log_fn(sb->log_ctx, src, level, msg, len);
        return;
    }
    if (!atomic_load_explicit(&default_present, memory_order_acquire))
        return;
    pthread_mutex_lock(&default_lock);
    struct default_log d = default_log;
    pthread_mutex_unlock(&default_lock);
    if (d.fn != NULL && level != NUB_LOG_LEVEL_OFF && level <= d.max_level)
        d.fn(d.ctx, src, level, msg, len);
}

void nub_log_host(const nub_sandbox *sb, uint32_t level, const char *fmt, ...)
{
    char line[512];
    if (sb->log_fn == NULL && !atomic_load_explicit(&default_present, memory_order_acquire))
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        nub_log_emit(sb, NUB_LOG_SRC_HOST, level, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void nub_log_publish_level(nub_sandbox *sb, uint32_t level)
{
    __atomic_store_n(&sb->max_log_level, level, __ATOMIC_RELAXED);
    struct nub_scratch_top *top = (struct nub_scratch_top *)(sb->scratch + sb->lay.top_off);
    __atomic_store_n(&top->max_log_level, level, __ATOMIC_RELEASE);
}

/* The directory core files go to: config, else $NUB_CORE_DUMP_DIR, else $TMPDIR, else /tmp. */
static void resolve_core_dir(nub_sandbox *sb)
{
    const char *dir = sb->cfg.core_dump_dir;
    if (dir == NULL || *dir == '\0')
        dir = getenv("NUB_CORE_DUMP_DIR");
    if (dir == NULL || *dir == '\0')
        dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    if ((size_t)snprintf(sb->obs.core_dir, sizeof sb->obs.core_dir, "%s", dir) >= sizeof sb->obs.core_dir)
        sb->obs.core_dir[0] = '\0'; /* too long: reported when a dump is attempted */
    sb->cfg.core_dump_dir = sb->obs.core_dir; /* the caller's string need not outlive creation */
}

void nub_obs_init(nub_sandbox *sb, uint64_t cr3)
{
    nub_log_env_once();
    sb->obs.metrics_on = !sb->cfg.disable_metrics;
    sb->obs.core_on = sb->cfg.guest_core_dump != 0;
    sb->obs.cr3 = cr3;
    resolve_core_dir(sb);
    nub_metrics_register(sb);
    nub_log_publish_level(sb, sb->max_log_level);
    if (sb->cfg.backend == NUB_BACKEND_AUTO)
        nub_log_host(sb, NUB_LOG_LEVEL_INFO, "sandbox %llu: backend auto chose %s",
                     (unsigned long long)sb->id, nub_backend_name(sb->backend));
}

void nub_obs_fini(nub_sandbox *sb)
{
    nub_metrics_unregister(sb);
}
