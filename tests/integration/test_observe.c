/* Integration tests of observability on every backend: metrics and their Prometheus text, ELF core dumps read by gdb, logging. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../guests/testguest/testguest.h"
#include "harness.h"
#include "nub/abi.h"

#ifndef NUB_SRC_DIR
#define NUB_SRC_DIR "."
#endif

#define HOST_FN_ECHO 7u

static int host_echo(void *ctx, struct nub_host_call *call)
{
    (void)ctx;
    memcpy(call->result, call->payload, call->payload_len);
    call->result_len = call->payload_len;
    return 0;
}

static nub_sandbox *new_sandbox(const char *name, const struct nub_config *cfg)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(guest_path(name), NULL, cfg, &sb, &err);
    cr_assert_eq(rc, NUB_OK, "create %s: %s: %s", name, nub_strerror(rc), err.message);
    return sb;
}

static void evolve(nub_sandbox *sb)
{
    nub_status rc = nub_sandbox_evolve(sb);
    cr_assert_eq(rc, NUB_OK, "evolve: %s: %s", nub_strerror(rc), nub_sandbox_last_error(sb)->message);
}

static nub_status call(nub_sandbox *sb, uint32_t fn, const void *in, size_t len)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    nub_status rc = nub_call(sb, fn, in, len, &out, &out_len);
    nub_buffer_free(out);
    return rc;
}

static uint64_t bucket_sum(const struct nub_metrics *m)
{
    uint64_t n = 0;
    for (int i = 0; i < NUB_METRICS_BUCKETS; i++)
        n += m->latency_buckets[i];
    return n;
}

/* ---- metrics ---------------------------------------------------------------- */

BACKEND_TEST(metrics, counts_calls_errors_host_calls_and_bytes)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    cr_assert_eq(nub_sandbox_register(sb, HOST_FN_ECHO, host_echo, NULL), NUB_OK);
    evolve(sb);
    cr_assert_eq(call(sb, NUB_TG_FN_ECHO, "hello", 5), NUB_OK);
    cr_assert_eq(call(sb, NUB_TG_FN_FAIL, NULL, 0), NUB_E_GUEST);
    uint8_t req[8] = {HOST_FN_ECHO, 0, 0, 0, 'a', 'b', 'c', 'd'};
    cr_assert_eq(call(sb, NUB_TG_FN_HOST_CALL, req, sizeof req), NUB_OK);
    cr_assert_eq(call(sb, NUB_TG_FN_MISSING_HOST_FN, NULL, 0), NUB_OK);
    char small[2];
    size_t len;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ECHO, "xyz", 3, small, sizeof small, &len), NUB_E_TOO_LARGE);

    struct nub_metrics m, t;
    cr_assert_eq(nub_sandbox_metrics(sb, &m), NUB_OK);
    cr_assert_eq(m.calls, 5);
    cr_assert_eq(m.calls_failed, 2);
    cr_assert_eq(m.call_errors[-NUB_E_GUEST], 1);
    cr_assert_eq(m.call_errors[-NUB_E_TOO_LARGE], 1);
    cr_assert_eq(m.guest_errors[NUB_STATUS_GUEST_ERROR], 1);
    cr_assert_eq(m.host_calls, 2);
    cr_assert_eq(m.host_calls_unregistered, 1);
    cr_assert_eq(m.nhost_fns, 1);
    cr_assert_eq(m.host_fn_ids[0], HOST_FN_ECHO);
    cr_assert_eq(m.host_fn_calls[0], 1);
    cr_assert_eq(m.bytes_in, 5 + 0 + 8 + 0 + 3);
    cr_assert_eq(m.bytes_out, 5 + 4 + 4 + strlen("no host function registered for fn_id 57005"),
                 "bytes_out %llu", (unsigned long long)m.bytes_out);
    cr_assert_eq(bucket_sum(&m), 5);
    cr_assert_gt(m.latency_sum_ns, 0);
    cr_assert_eq(m.faults[14] + m.aborts + m.timeouts + m.cancellations, 0);
    /* Criterion runs each test in its own process: the totals are this sandbox's counts. */
    cr_assert_eq(nub_metrics_totals(&t), NUB_OK);
    cr_assert_eq(t.calls, 5);
    cr_assert_eq(t.host_calls, 2);
    cr_assert_eq(t.nhost_fns, 0);
    cr_assert_eq(t.bytes_in, m.bytes_in);
    nub_sandbox_destroy(sb);
    cr_assert_eq(nub_metrics_totals(&t), NUB_OK);
    cr_assert_eq(t.calls, 5, "totals outlive the sandbox");
}

/* One sandbox, one failing call: fn on a fresh sandbox, expected code. */
static struct nub_metrics failing_call(enum nub_backend backend, uint32_t fn, uint32_t timeout_ms, nub_status want)
{
    struct nub_config cfg = test_config(backend);
    cfg.call_timeout_ms = timeout_ms;
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    evolve(sb);
    cr_assert_eq(call(sb, fn, "x", 1), want, "fn %u: %s", fn, nub_sandbox_last_error(sb)->message);
    struct nub_metrics m;
    nub_sandbox_metrics(sb, &m);
    nub_sandbox_destroy(sb);
    cr_assert_eq(m.calls, 1);
    cr_assert_eq(m.calls_failed, 1);
    cr_assert_eq(m.call_errors[-want], 1);
    return m;
}

BACKEND_TEST(metrics, counts_faults_aborts_and_timeouts)
{
    cr_assert_eq(failing_call(backend, NUB_TG_FN_NULL_DEREF, 0, NUB_E_GUEST_FAULT).faults[14], 1);
    cr_assert_eq(failing_call(backend, NUB_TG_FN_DIV_ZERO, 0, NUB_E_GUEST_FAULT).faults[0], 1);
    cr_assert_eq(failing_call(backend, NUB_TG_FN_UD2, 0, NUB_E_GUEST_FAULT).faults[6], 1);
    cr_assert_eq(failing_call(backend, NUB_TG_FN_ABORT, 0, NUB_E_GUEST_ABORT).aborts, 1);
    cr_assert_eq(failing_call(backend, NUB_TG_FN_SPIN, 100, NUB_E_TIMEOUT).timeouts, 1);
    struct nub_metrics t;
    nub_metrics_totals(&t);
    cr_assert_eq(t.calls, 5);
    cr_assert_eq(t.faults[14] + t.faults[0] + t.faults[6], 3);
}

struct cancel_ctx {
    nub_sandbox *sb;
};

/* A host function that interrupts its own call: the cancellation lands deterministically. */
static int host_interrupt(void *ctx, struct nub_host_call *c)
{
    struct cancel_ctx *cc = ctx;
    c->result_len = 0;
    nub_interrupt(cc->sb);
    return 0;
}

BACKEND_TEST(metrics, counts_cancellations)
{
    struct nub_config cfg = test_config(backend);
    struct cancel_ctx cc;
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    cc.sb = sb;
    cr_assert_eq(nub_sandbox_register(sb, HOST_FN_ECHO, host_interrupt, &cc), NUB_OK);
    evolve(sb);
    uint8_t req[4] = {HOST_FN_ECHO, 0, 0, 0};
    cr_assert_eq(call(sb, NUB_TG_FN_HOST_CALL, req, sizeof req), NUB_E_CANCELLED);
    struct nub_metrics m;
    nub_sandbox_metrics(sb, &m);
    cr_assert_eq(m.cancellations, 1);
    cr_assert_eq(m.call_errors[-NUB_E_CANCELLED], 1);
    nub_sandbox_destroy(sb);
}

/* Reading metrics from another thread while a call is inside a host function:
 * the reader gets a consistent view at that point and nobody blocks. */
struct reader {
    nub_sandbox *sb;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int go, done;
    struct nub_metrics seen, totals;
    nub_sandbox *created; /* a sandbox created and destroyed while the call runs */
    enum nub_backend backend;
};

static void *reader_thread(void *arg)
{
    struct reader *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->go)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
    nub_sandbox_metrics(r->sb, &r->seen);
    struct nub_config cfg = test_config(r->backend);
    r->created = new_sandbox("testguest", &cfg); /* takes the registry lock the call never holds */
    nub_sandbox_destroy(r->created);
    nub_metrics_totals(&r->totals);
    pthread_mutex_lock(&r->lock);
    r->done = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static int host_let_reader_run(void *ctx, struct nub_host_call *call)
{
    struct reader *r = ctx;
    call->result_len = 0;
    pthread_mutex_lock(&r->lock);
    r->go = 1;
    pthread_cond_signal(&r->cond);
    while (!r->done)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

BACKEND_TEST(metrics, read_from_another_thread_during_a_call)
{
    struct nub_config cfg = test_config(backend);
    struct reader r = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .backend = backend};
    r.sb = new_sandbox("testguest", &cfg);
    cr_assert_eq(nub_sandbox_register(r.sb, HOST_FN_ECHO, host_let_reader_run, &r), NUB_OK);
    evolve(r.sb);
    cr_assert_eq(call(r.sb, NUB_TG_FN_ECHO, "ab", 2), NUB_OK);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reader_thread, &r), 0);
    uint8_t req[4] = {HOST_FN_ECHO, 0, 0, 0};
    cr_assert_eq(call(r.sb, NUB_TG_FN_HOST_CALL, req, sizeof req), NUB_OK);
    pthread_join(t, NULL);
    cr_assert_eq(r.seen.calls, 1, "the running call is counted when it ends");
    cr_assert_eq(r.seen.host_calls, 1, "its host call already is");
    cr_assert_eq(r.totals.calls, 1);
    struct nub_metrics m, tot;
    nub_sandbox_metrics(r.sb, &m);
    nub_metrics_totals(&tot);
    cr_assert_eq(m.calls, 2);
    cr_assert_eq(tot.calls, 2);
    nub_sandbox_destroy(r.sb);
    nub_metrics_totals(&tot);
    cr_assert_eq(tot.calls, 2, "destroyed sandboxes stay in the totals");
    cr_assert_eq(tot.host_calls, 1);
}

BACKEND_TEST(metrics, disabled_counts_nothing)
{
    struct nub_config cfg = test_config(backend);
    cfg.disable_metrics = 1;
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    evolve(sb);
    cr_assert_eq(call(sb, NUB_TG_FN_ECHO, "abc", 3), NUB_OK);
    struct nub_metrics m, t;
    nub_sandbox_metrics(sb, &m);
    nub_metrics_totals(&t);
    cr_assert_eq(m.calls + m.bytes_in + bucket_sum(&m) + t.calls, 0);
    cr_assert_eq(nub_sandbox_call_count(sb), 1, "the call itself ran");
    nub_sandbox_destroy(sb);
}

Test(metrics, bad_arguments)
{
    struct nub_metrics m = {0};
    size_t len = 0;
    char buf[8];
    cr_assert_eq(nub_sandbox_metrics(NULL, &m), NUB_E_INVALID);
    cr_assert_eq(nub_metrics_totals(NULL), NUB_E_INVALID);
    cr_assert_eq(nub_metrics_format_prometheus(&m, buf, sizeof buf, NULL), NUB_E_INVALID);
    cr_assert_eq(nub_metrics_format_prometheus(&m, NULL, 8, &len), NUB_E_INVALID);
    cr_assert_eq(nub_metrics_format_prometheus(&m, NULL, 0, &len), NUB_E_TOO_LARGE);
    size_t need = len;
    cr_assert_gt(need, 1000);
    cr_assert_eq(nub_metrics_format_prometheus(&m, buf, sizeof buf, &len), NUB_E_TOO_LARGE);
    cr_assert_eq(len, need);
    cr_assert_eq(strlen(buf), sizeof buf - 1, "truncated prefix is NUL-terminated");
    char *full = malloc(need + 1);
    cr_assert_eq(nub_metrics_format_prometheus(&m, full, need + 1, &len), NUB_OK);
    cr_assert_eq(len, need);
    cr_assert_eq(strlen(full), need);
    free(full);
}

/* Run a shell command, returning its exit status and its stdout in out. */
static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Write the exposition of sb's metrics into a temporary file; returns its path (static). */
static const char *exposition_file(const nub_sandbox *sb)
{
    static char path[] = "/tmp/nub-prom-XXXXXX";
    struct nub_metrics m;
    nub_sandbox_metrics(sb, &m);
    size_t len = 0;
    static char text[65536];
    cr_assert_eq(nub_metrics_format_prometheus(&m, text, sizeof text, &len), NUB_OK);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* The text parses with prometheus_client's parser (and promtool's linter) and says what the struct says. */
Test(metrics, prometheus_text_parses)
{
    require_backend(NUB_BACKEND_EMU);
    if (access("/usr/bin/python3", X_OK) != 0 || system("/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null") != 0)
        cr_assert_fail("python3-prometheus-client is missing: run tools/deps.sh test");
    struct nub_config cfg = test_config(NUB_BACKEND_EMU);
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    cr_assert_eq(nub_sandbox_register(sb, HOST_FN_ECHO, host_echo, NULL), NUB_OK);
    evolve(sb);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(call(sb, NUB_TG_FN_ECHO, "abcd", 4), NUB_OK);
    cr_assert_eq(call(sb, NUB_TG_FN_FAIL, NULL, 0), NUB_E_GUEST);
    uint8_t req[5] = {HOST_FN_ECHO, 0, 0, 0, 'z'};
    cr_assert_eq(call(sb, NUB_TG_FN_HOST_CALL, req, sizeof req), NUB_OK);
    const char *file = exposition_file(sb);
    char cmd[1024], out[65536];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/integration/prom_parse.py %s 2>&1", NUB_SRC_DIR, file);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "prometheus_client cannot parse it:\n%s", out);
    static const char *const want[] = {
        "# family nub_call_duration_seconds histogram\n",
        "nub_calls_total{} 5.0\n",
        "nub_calls_failed_total{} 1.0\n",
        "nub_call_errors_total{code=\"NUB_E_GUEST\"} 1.0\n",
        "nub_guest_errors_total{code=\"3\"} 1.0\n",
        "nub_host_calls_total{fn_id=\"7\"} 1.0\n",
        "nub_host_calls_total{fn_id=\"unregistered\"} 0.0\n",
        "nub_call_bytes_in_total{} 17.0\n",
        "nub_call_duration_seconds_bucket{le=\"+Inf\"} 5.0\n",
        "nub_call_duration_seconds_count{} 5.0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(out, want[i]) != NULL, "missing %s in:\n%s", want[i], out);
    if (access("/usr/bin/promtool", X_OK) == 0) {
        snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < %s 2>&1", file);
        cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "promtool check metrics:\n%s", out);
    } else {
        cr_log_warn("promtool not installed (Debian package prometheus): lint skipped");
    }
    unlink(file);
    nub_sandbox_destroy(sb);
}

/* ---- crash dumps -------------------------------------------------------------- */

static char *temp_dir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/nub-cores-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    cr_assert_eq(read(fd, b, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

/* What a core file says, checked for structure on the way. */
struct core_info {
    uint64_t rip, rsp, rax, rdx, entry;
    int have_fpu, have_prstatus, signo;
    struct nub_error err;
    int have_err;
    int rip_exec;   /* a PT_LOAD with PF_X covers rip */
    int rsp_write;  /* a writable PT_LOAD covers rsp */
    size_t nloads;
    uint64_t probe;  /* in: an address to look for */
    int probe_hit;   /* out: a PT_LOAD covers it */
};

static void read_notes(const uint8_t *p, size_t n, struct core_info *ci)
{
    size_t off = 0;
    while (off + sizeof(Elf64_Nhdr) <= n) {
        Elf64_Nhdr h;
        memcpy(&h, p + off, sizeof h);
        size_t name_at = off + sizeof h, desc_at = name_at + ((h.n_namesz + 3u) & ~3u);
        cr_assert_leq(desc_at + h.n_descsz, n, "note overruns PT_NOTE");
        const char *name = (const char *)p + name_at;
        const uint8_t *desc = p + desc_at;
        if (strcmp(name, "CORE") == 0 && h.n_type == NT_PRSTATUS) {
            struct elf_prstatus ps;
            cr_assert_eq(h.n_descsz, sizeof ps);
            memcpy(&ps, desc, sizeof ps);
            struct user_regs_struct u;
            memcpy(&u, &ps.pr_reg, sizeof u);
            ci->rip = u.rip;
            ci->rsp = u.rsp;
            ci->rax = u.rax;
            ci->rdx = u.rdx;
            ci->signo = ps.pr_cursig;
            ci->have_prstatus = 1;
        } else if (strcmp(name, "CORE") == 0 && h.n_type == NT_FPREGSET) {
            ci->have_fpu = h.n_descsz == 512;
        } else if (strcmp(name, "CORE") == 0 && h.n_type == NT_AUXV) {
            for (size_t i = 0; i + 16 <= h.n_descsz; i += 16) {
                uint64_t kv[2];
                memcpy(kv, desc + i, 16);
                if (kv[0] == AT_ENTRY)
                    ci->entry = kv[1];
            }
        } else if (strcmp(name, "NUB") == 0) {
            cr_assert_eq(h.n_descsz, sizeof ci->err);
            memcpy(&ci->err, desc, sizeof ci->err);
            ci->have_err = 1;
        }
        off = desc_at + ((h.n_descsz + 3u) & ~3u);
    }
}

static struct core_info parse_core_probe(const char *path, uint64_t probe)
{
    size_t len;
    uint8_t *b = slurp(path, &len);
    struct core_info ci = {.probe = probe};
    Elf64_Ehdr eh;
    cr_assert_geq(len, sizeof eh);
    memcpy(&eh, b, sizeof eh);
    cr_assert_eq(memcmp(eh.e_ident, ELFMAG, SELFMAG), 0);
    cr_assert_eq(eh.e_type, ET_CORE);
    cr_assert_eq(eh.e_machine, EM_X86_64);
    cr_assert_leq(eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), len);
    for (int pass = 0; pass < 2; pass++) { /* notes first: the loads are checked against rip/rsp */
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            memcpy(&ph, b + eh.e_phoff + i * sizeof ph, sizeof ph);
            cr_assert_leq(ph.p_offset + ph.p_filesz, len, "segment %u beyond the file", i);
            if (pass == 0 && ph.p_type == PT_NOTE)
                read_notes(b + ph.p_offset, ph.p_filesz, &ci);
            if (pass == 1 && ph.p_type == PT_LOAD) {
                ci.nloads++;
                int in_rip = ci.rip >= ph.p_vaddr && ci.rip - ph.p_vaddr < ph.p_memsz;
                int in_rsp = ci.rsp >= ph.p_vaddr && ci.rsp - ph.p_vaddr < ph.p_memsz;
                ci.rip_exec |= in_rip && (ph.p_flags & PF_X);
                ci.rsp_write |= in_rsp && (ph.p_flags & PF_W);
                ci.probe_hit |= ci.probe >= ph.p_vaddr && ci.probe - ph.p_vaddr < ph.p_memsz;
            }
        }
    }
    free(b);
    return ci;
}

static struct core_info parse_core(const char *path)
{
    return parse_core_probe(path, 0);
}

/* Guest ELF entry point, read from the file. */
static uint64_t elf_entry(const char *path)
{
    size_t len;
    uint8_t *b = slurp(path, &len);
    Elf64_Ehdr eh;
    memcpy(&eh, b, sizeof eh);
    free(b);
    return eh.e_entry;
}

/* The core path from the " [core dumped to PATH]" the error message ends with. */
static void core_path_of(const struct nub_error *e, char *path, size_t cap)
{
    const char *p = strstr(e->message, " [core dumped to ");
    cr_assert_not_null(p, "no core path in: %s", e->message);
    p += strlen(" [core dumped to ");
    size_t n = strcspn(p, "]");
    cr_assert_lt(n, cap);
    memcpy(path, p, n);
    path[n] = '\0';
}

static int have_gdb(void)
{
    return system("command -v gdb >/dev/null 2>&1") == 0;
}

/* gdb must name `func` and reach the dispatcher; with NUB_TEST_CORE_EXPORT set (inside the
 * kvm VM, which has only gdb-minimal and not the sources' checker script) the core is
 * exported for tests/kvm/run.sh to check with gdb on the host instead. */
static void check_with_gdb(enum nub_backend backend, const char *core, const char *func, const char *tag)
{
    const char *export = getenv("NUB_TEST_CORE_EXPORT");
    char cmd[2048], out[16384];
    if (export != NULL && *export) {
        snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s %s/%s-%s.core && echo %s > %s/%s-%s.func", export, core,
                 export, nub_backend_name(backend), tag, func, export, nub_backend_name(backend), tag);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        return;
    }
    cr_assert(have_gdb(), "gdb is missing: run tools/deps.sh test (or set NUB_TEST_CORE_EXPORT)");
    snprintf(cmd, sizeof cmd, "sh %s/tests/integration/gdb_core.sh %s %s %s 2>&1", NUB_SRC_DIR,
             guest_path("testguest"), core, func);
    int rc = run_cmd(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "gdb on %s:\n%s", core, out);
}

struct dump_case {
    uint32_t fn;
    nub_status code;
    const char *func;
    const char *tag;
    int signo;
};

static void dump_case(enum nub_backend backend, const struct dump_case *dc)
{
    struct nub_config cfg = test_config(backend);
    cfg.guest_core_dump = 1;
    cfg.core_dump_dir = temp_dir();
    cfg.call_timeout_ms = dc->code == NUB_E_TIMEOUT ? 100 : 0;
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    evolve(sb);
    cr_assert_eq(call(sb, dc->fn, "boom", 4), dc->code, "%s", nub_sandbox_last_error(sb)->message);
    const struct nub_error *e = nub_sandbox_last_error(sb);
    cr_assert_eq(e->code, dc->code, "the dump does not change the error");
    char core[1024];
    core_path_of(e, core, sizeof core);
    cr_assert_eq(strncmp(core, cfg.core_dump_dir, strlen(cfg.core_dump_dir)), 0, "%s not in the dump directory", core);
    struct core_info ci = parse_core(core);
    cr_assert(ci.have_prstatus && ci.have_fpu && ci.have_err, "notes: prstatus %d fpu %d nub %d",
              ci.have_prstatus, ci.have_fpu, ci.have_err);
    cr_assert_eq(ci.err.code, dc->code);
    cr_assert_eq(ci.signo, dc->signo);
    cr_assert_eq(ci.entry, elf_entry(guest_path("testguest")), "AT_ENTRY");
    if (dc->code == NUB_E_GUEST_FAULT)
        cr_assert_eq(ci.rip, e->rip, "prstatus rip 0x%llx, fault at 0x%llx", (unsigned long long)ci.rip,
                     (unsigned long long)e->rip);
    if (dc->fn == NUB_TG_FN_DIV_ZERO) /* tg_div_zero's divq runs with rax = 1, rdx = 0 (on kvm: saved by the SDK's exception entry) */
        cr_assert(ci.rax == 1 && ci.rdx == 0, "the faulting divq's registers: rax 0x%llx rdx 0x%llx",
                  (unsigned long long)ci.rax, (unsigned long long)ci.rdx);
    cr_assert(ci.rip_exec, "rip 0x%llx is not in an executable PT_LOAD", (unsigned long long)ci.rip);
    cr_assert(ci.rsp_write, "rsp 0x%llx is not in a writable PT_LOAD", (unsigned long long)ci.rsp);
    cr_assert_geq(ci.nloads, 4, "text, data, heap, stack at least");
    struct nub_metrics m;
    nub_sandbox_metrics(sb, &m);
    cr_assert_eq(m.core_dumps, 1);
    cr_assert_eq(call(sb, NUB_TG_FN_ECHO, "x", 1), NUB_E_POISONED, "poisoned by the failure, as without a dump");
    check_with_gdb(backend, core, dc->func, dc->tag);
    unlink(core);
    rmdir(cfg.core_dump_dir);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(core, null_deref)
{
    struct dump_case dc = {NUB_TG_FN_NULL_DEREF, NUB_E_GUEST_FAULT, "tg_null_deref", "null_deref", SIGSEGV};
    dump_case(backend, &dc);
}

BACKEND_TEST(core, divide_by_zero)
{
    struct dump_case dc = {NUB_TG_FN_DIV_ZERO, NUB_E_GUEST_FAULT, "tg_div_zero", "div_zero", SIGFPE};
    dump_case(backend, &dc);
}

BACKEND_TEST(core, abort)
{
    struct dump_case dc = {NUB_TG_FN_ABORT, NUB_E_GUEST_ABORT, "tg_abort", "abort", SIGABRT};
    dump_case(backend, &dc);
}

BACKEND_TEST(core, spin_timeout)
{
    struct dump_case dc = {NUB_TG_FN_SPIN, NUB_E_TIMEOUT, "tg_spin", "spin_timeout", SIGXCPU};
    dump_case(backend, &dc);
}

BACKEND_TEST(core, on_demand_after_a_call)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    evolve(sb);
    cr_assert_eq(call(sb, NUB_TG_FN_ECHO, "abc", 3), NUB_OK);
    char *dir = temp_dir(), path[128];
    snprintf(path, sizeof path, "%s/demand.core", dir);
    cr_assert_eq(nub_sandbox_core_dump(sb, path), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    struct core_info ci = parse_core(path);
    cr_assert(ci.have_prstatus && ci.rip_exec && ci.entry != 0);
    cr_assert_eq(ci.err.code, NUB_OK);
    cr_assert_eq(ci.signo, 0);
    cr_assert_eq(call(sb, NUB_TG_FN_ECHO, "abc", 3), NUB_OK, "the sandbox is still usable");
    snprintf(path, sizeof path, "%s/no/such/dir/x.core", dir);
    cr_assert_eq(nub_sandbox_core_dump(sb, path), NUB_E_IO);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "core dump to") != NULL);
    cr_assert_eq(nub_sandbox_core_dump(NULL, path), NUB_E_INVALID);
    cr_assert_eq(nub_sandbox_core_dump(sb, NULL), NUB_E_INVALID);
    cr_assert_eq(call(sb, NUB_TG_FN_ECHO, "abc", 3), NUB_OK, "a failed dump poisons nothing");
    snprintf(path, sizeof path, "%s/demand.core", dir);
    unlink(path);
    rmdir(dir);
    nub_sandbox_destroy(sb);
}

/* The guest points its stack guard page at unbacked guest-physical memory: the dump's
 * page-table walk skips it and the dump still succeeds. */
BACKEND_TEST(core, guest_edited_page_tables)
{
    struct nub_config cfg = test_config(backend);
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    evolve(sb);
    struct nub_tg_info info;
    size_t len = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_INFO, NULL, 0, &info, sizeof info, &len), NUB_OK);
    uint64_t guard = info.stack_gva - NUB_PAGE_SIZE;
    nub_status rc = call(sb, NUB_TG_FN_MMIO, NULL, 0);
    cr_assert(rc == NUB_E_PROTOCOL || rc == NUB_E_GUEST_FAULT, "%s", nub_strerror(rc));
    char *dir = temp_dir(), path[128];
    snprintf(path, sizeof path, "%s/edited.core", dir);
    cr_assert_eq(nub_sandbox_core_dump(sb, path), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    struct core_info ci = parse_core_probe(path, guard);
    cr_assert_eq(ci.probe_hit, 0, "the remapped guard page 0x%llx is not dumped", (unsigned long long)guard);
    cr_assert_geq(ci.nloads, 4);
    cr_assert_eq(ci.err.code, rc, "the error record of the failure is in the dump");
    unlink(path);
    rmdir(dir);
    nub_sandbox_destroy(sb);
}

struct log_capture {
    char text[8192];
    size_t len;
    int warns;
};

static void capture_log(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    struct log_capture *c = ctx;
    (void)src;
    c->warns += level == NUB_LOG_LEVEL_WARN;
    int n = snprintf(c->text + c->len, sizeof c->text - c->len, "%u:%.*s\n", level, (int)len, msg);
    if (n > 0 && (size_t)n < sizeof c->text - c->len)
        c->len += (size_t)n;
}

BACKEND_TEST(core, failed_dump_keeps_the_error)
{
    struct nub_config cfg = test_config(backend);
    cfg.guest_core_dump = 1;
    cfg.core_dump_dir = "/nonexistent/nub/cores";
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    struct log_capture lc = {0};
    nub_sandbox_set_log(sb, capture_log, &lc);
    evolve(sb);
    cr_assert_eq(call(sb, NUB_TG_FN_NULL_DEREF, NULL, 0), NUB_E_GUEST_FAULT);
    const struct nub_error *e = nub_sandbox_last_error(sb);
    cr_assert_eq(e->code, NUB_E_GUEST_FAULT);
    cr_assert_eq(e->vector, 14);
    cr_assert_null(strstr(e->message, "core dumped"), "%s", e->message);
    cr_assert_eq(lc.warns, 1, "log: %s", lc.text);
    cr_assert(strstr(lc.text, "core dump to /nonexistent/nub/cores failed") != NULL, "log: %s", lc.text);
    struct nub_metrics m;
    nub_sandbox_metrics(sb, &m);
    cr_assert_eq(m.core_dumps, 0);
    cr_assert_eq(m.core_dump_failures, 1);
    nub_sandbox_destroy(sb);
    nub_sandbox *ok = new_ready("testguest", &cfg, NULL);
    cr_assert_eq(call(ok, NUB_TG_FN_ECHO, "x", 1), NUB_OK, "other sandboxes are untouched");
    nub_sandbox_destroy(ok);
}

BACKEND_TEST(core, names_never_collide)
{
    struct nub_config cfg = test_config(backend);
    cfg.guest_core_dump = 1;
    cfg.core_dump_dir = temp_dir();
    nub_sandbox *sb[3];
    char paths[3][1024], taken[1200];
    for (int i = 0; i < 3; i++) {
        sb[i] = new_sandbox("testguest", &cfg);
        evolve(sb[i]);
    }
    /* A file already where sandbox 0's first dump would go: it must pick the next name. */
    snprintf(taken, sizeof taken, "%s/nub-core.%ld.%llu.1", cfg.core_dump_dir, (long)getpid(),
             (unsigned long long)nub_sandbox_id(sb[0]));
    int fd = open(taken, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "mine", 4), 4);
    close(fd);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(call(sb[i], NUB_TG_FN_UD2, NULL, 0), NUB_E_GUEST_FAULT);
        core_path_of(nub_sandbox_last_error(sb[i]), paths[i], sizeof paths[i]);
    }
    cr_assert_str_neq(paths[0], taken);
    cr_assert_str_neq(paths[0], paths[1]);
    cr_assert_str_neq(paths[1], paths[2]);
    cr_assert_str_neq(paths[0], paths[2]);
    size_t len;
    uint8_t *b = slurp(taken, &len);
    cr_assert(len == 4 && memcmp(b, "mine", 4) == 0, "an existing file is never overwritten");
    free(b);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(parse_core(paths[i]).err.vector, 6);
        unlink(paths[i]);
        nub_sandbox_destroy(sb[i]);
    }
    unlink(taken);
    rmdir(cfg.core_dump_dir);
}

/* ---- logging ---------------------------------------------------------------- */

struct level_ctx {
    nub_sandbox *sb;
    int seen;
    uint32_t lower_to; /* set this level from inside the callback at the first guest message */
};

static void lowering_log(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    struct level_ctx *lc = ctx;
    (void)level;
    (void)msg;
    (void)len;
    if (src != NUB_LOG_SRC_GUEST)
        return;
    if (lc->seen++ == 0)
        nub_sandbox_set_max_guest_log_level(lc->sb, lc->lower_to);
}

static uint32_t log_levels_call(nub_sandbox *sb)
{
    uint32_t sent = 0;
    size_t len = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_LOG_LEVELS, NULL, 0, &sent, sizeof sent, &len), NUB_OK);
    cr_assert_eq(len, 4);
    return sent;
}

BACKEND_TEST(log, guest_level_changes_after_evolve_and_mid_call)
{
    struct nub_config cfg = test_config(backend);
    cfg.max_guest_log_level = NUB_LOG_LEVEL_ERROR;
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    struct level_ctx lc = {sb, 0, NUB_LOG_LEVEL_TRACE};
    nub_sandbox_set_log(sb, lowering_log, &lc);
    evolve(sb);
    lc.lower_to = NUB_LOG_LEVEL_ERROR; /* keep ERROR: the first call shows the boot level */
    cr_assert_eq(log_levels_call(sb), 1);
    cr_assert_eq(lc.seen, 1);
    cr_assert_eq(nub_sandbox_set_max_guest_log_level(sb, NUB_LOG_LEVEL_TRACE), NUB_OK);
    lc.seen = 0;
    lc.lower_to = NUB_LOG_LEVEL_TRACE;
    cr_assert_eq(log_levels_call(sb), 5, "raised after evolve: every level reaches the host");
    cr_assert_eq(lc.seen, 5);
    lc.seen = 0;
    lc.lower_to = NUB_LOG_LEVEL_OFF; /* lowered by the callback during the call */
    cr_assert_eq(log_levels_call(sb), 1, "lowered mid-call: the guest stops at the next message");
    cr_assert_eq(lc.seen, 1);
    cr_assert_eq(nub_sandbox_set_max_guest_log_level(sb, NUB_LOG_LEVEL_TRACE + 1), NUB_E_INVALID);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(log, default_logger_gets_lines_of_sandboxes_without_one)
{
    struct log_capture lc = {0};
    cr_assert_eq(nub_set_default_log(capture_log, &lc, NUB_LOG_LEVEL_INFO), NUB_OK);
    cr_assert_eq(nub_set_default_log(capture_log, &lc, NUB_LOG_LEVEL_TRACE + 1), NUB_E_INVALID);
    struct nub_config cfg = test_config(backend);
    cfg.max_guest_log_level = NUB_LOG_LEVEL_TRACE;
    cfg.guest_core_dump = 1;
    cfg.core_dump_dir = temp_dir();
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    evolve(sb);
    cr_assert_eq(call(sb, NUB_TG_FN_LOG_LEVELS, "dflt", 4), NUB_OK);
    cr_assert(strstr(lc.text, "1:testguest level 1: dflt") != NULL, "log: %s", lc.text);
    cr_assert(strstr(lc.text, "3:testguest level 3: dflt") != NULL, "log: %s", lc.text);
    cr_assert_null(strstr(lc.text, "testguest level 4"), "debug is above the default's level: %s", lc.text);
    cr_assert_eq(call(sb, NUB_TG_FN_NULL_DEREF, NULL, 0), NUB_E_GUEST_FAULT);
    char core[1024];
    core_path_of(nub_sandbox_last_error(sb), core, sizeof core);
    cr_assert(strstr(lc.text, core) != NULL, "the core path is logged: %s", lc.text);
    unlink(core);
    rmdir(cfg.core_dump_dir);
    nub_sandbox_destroy(sb);
    cr_assert_eq(nub_set_default_log(NULL, NULL, 0), NUB_OK);
}

Test(log, auto_backend_choice_is_logged_at_info)
{
    struct log_capture lc = {0};
    nub_set_default_log(capture_log, &lc, NUB_LOG_LEVEL_INFO);
    struct nub_config cfg;
    nub_config_default(&cfg);
    cfg.backend = NUB_BACKEND_AUTO;
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err);
    cr_assert_eq(rc, NUB_OK, "%s", err.message);
    char want[64];
    snprintf(want, sizeof want, "3:sandbox %llu: backend auto chose %s", (unsigned long long)nub_sandbox_id(sb),
             nub_backend_name(nub_sandbox_backend(sb)));
    cr_assert(strstr(lc.text, want) != NULL, "want '%s' in: %s", want, lc.text);
    nub_sandbox_destroy(sb);
    nub_set_default_log(NULL, NULL, 0);
}

/* NUB_LOG=debug installs the stderr logger when the first sandbox is created in the process. */
BACKEND_TEST(log, nub_log_env_writes_to_stderr)
{
    char file[] = "/tmp/nub-log-XXXXXX";
    int fd = mkstemp(file);
    cr_assert_geq(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    setenv("NUB_LOG", "debug", 1);
    struct nub_config cfg = test_config(backend);
    cfg.max_guest_log_level = NUB_LOG_LEVEL_TRACE;
    nub_sandbox *sb = new_sandbox("testguest", &cfg);
    evolve(sb);
    nub_status rc = call(sb, NUB_TG_FN_LOG_LEVELS, "env\x1b[2J", 7);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(rc, NUB_OK);
    nub_sandbox_destroy(sb);
    size_t len;
    char *text = (char *)slurp(file, &len);
    text[len] = '\0';
    cr_assert(strstr(text, "nub: guest error: testguest level 1: env?[2J") != NULL, "stderr: %s", text);
    cr_assert(strstr(text, "nub: guest debug: testguest level 4: env") != NULL, "stderr: %s", text);
    cr_assert_null(strstr(text, "level 5"), "trace is above NUB_LOG=debug: %s", text);
    cr_assert_null(strchr(text, 0x1b), "guest control bytes never reach the terminal");
    free(text);
    close(fd);
    unlink(file);
}

/* ---- CLI ----------------------------------------------------------------------- */

static const char *cli_path(void)
{
    static char nub[600];
    const char *cli = getenv("NUB_CLI"), *dir = getenv("NUB_GUEST_DIR");
    if (cli != NULL)
        snprintf(nub, sizeof nub, "%s", cli);
    else
        snprintf(nub, sizeof nub, "%s/../nub", dir ? dir : NUB_GUEST_DIR_DEFAULT);
    if (access(nub, X_OK) != 0)
        cr_assert_fail("no CLI at %s: build it with `make all` or set NUB_CLI", nub);
    return nub;
}

BACKEND_TEST(cli, run_metrics_core_dump_and_log)
{
    char cmd[2048], out[16384];
    snprintf(cmd, sizeof cmd, "%s run %s --call %u --in-text hi --backend %s --metrics 2>/dev/null", cli_path(),
             guest_path("testguest"), NUB_TG_FN_ECHO, nub_backend_name(backend));
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strncmp(out, "hi\n", 3) == 0, "%s", out);
    cr_assert(strstr(out, "\nnub_calls_total 1\n") != NULL, "%s", out);
    cr_assert(strstr(out, "nub_call_duration_seconds_count 1\n") != NULL, "%s", out);
    char *dir = temp_dir();
    snprintf(cmd, sizeof cmd, "%s run %s --call %u --backend %s --core-dump %s --log info 2>&1", cli_path(),
             guest_path("testguest"), NUB_TG_FN_DIV_ZERO, nub_backend_name(backend), dir);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "core dumped to ") != NULL, "%s", out);
    cr_assert(strstr(out, "[nub info]") != NULL, "--log info shows the host's info line: %s", out);
    snprintf(cmd, sizeof cmd, "rm -f %s/nub-core.* && rmdir %s", dir, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s run %s --call 1 --log loud 2>&1", cli_path(), guest_path("testguest"));
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 2, "%s", out);
}
