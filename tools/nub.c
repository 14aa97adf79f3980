/* The nub command-line tool: run a guest function, report which backends work here, hash and publish caps, build and inspect snapshot files. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "nub/abi.h"
#include "nub/cap.h"
#include "nub/nub.h"
#include "nub/nubk.h"
#include "nub/snapfile.h"
#include "nub_help.h" /* generated from tools/nub.help: nub_cli_help_pages[] */

#ifndef NUB_VERSION
#error "build with -DNUB_VERSION='\"x.y.z\"' (the Makefile's VERSION)"
#endif

/* ---- help ------------------------------------------------------------------ */

/* The help page of `command` ("nub", "run", "caps put"), or NULL. */
static const char *help_text(const char *command)
{
    for (size_t i = 0; i < sizeof nub_cli_help_pages / sizeof nub_cli_help_pages[0]; i++)
        if (strcmp(nub_cli_help_pages[i].command, command) == 0)
            return nub_cli_help_pages[i].text;
    return NULL;
}

static int print_help(const char *command)
{
    fputs(help_text(command), stdout);
    return fflush(stdout) == 0 ? NUB_CLI_OK : NUB_CLI_FAILED;
}

/* `nub help [COMMAND...]`: the words after "help" name the page. */
static int cmd_help(int argc, char **argv)
{
    char name[256] = "nub";
    size_t len = 0;
    for (int i = 0; i < argc && len < sizeof name; i++)
        len += (size_t)snprintf(name + len, sizeof name - len, "%s%s", i > 0 ? " " : "", argv[i]);
    if (len >= sizeof name)
        return nub_cli_usage_error(NULL, "no help for '%.40s...'", name);
    if (help_text(name) == NULL)
        return nub_cli_usage_error(NULL, "no help for '%s' (commands: run, snapshot, info, caps)", name);
    return print_help(name);
}

/* ---- shared helpers -------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The name part of nub_strerror() ("NUB_E_TIMEOUT") and its description. */
static void status_parts(nub_status rc, const char **name, size_t *name_len, const char **desc)
{
    const char *s = nub_strerror(rc);
    *name = s;
    *name_len = strcspn(s, ":");
    *desc = s[*name_len] == ':' ? s + *name_len + 2 : s;
}

/* A runtime failure in one line: "nub: WHAT failed: NUB_E_X: message[ (hint)]" (control bytes shown as '?'). */
static int fail_hint(const char *what, nub_status rc, const struct nub_error *e, const char *hint)
{
    const char *name, *desc;
    size_t n;
    status_parts(rc, &name, &n, &desc);
    const char *msg = e != NULL && e->message[0] ? e->message : desc;
    fprintf(stderr, "nub: %s failed: %.*s: ", what, (int)n, name);
    for (; *msg; msg++)
        fputc((unsigned char)*msg < 0x20 ? '?' : *msg, stderr);
    if (hint != NULL)
        fprintf(stderr, " (%s)", hint);
    fputc('\n', stderr);
    return NUB_CLI_FAILED;
}

static int fail(const char *what, nub_status rc, const struct nub_error *e)
{
    return fail_hint(what, rc, e, NULL);
}

/* What the CLI's log callback shows: --quiet drops the library's warnings (the
 * emu notice), --log LEVEL sets the most verbose level shown (has_max). */
struct log_filter {
    int quiet;
    int has_max;
    uint32_t max;
};

static void log_to_stderr(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    static const char *const names[] = {"off", "error", "warn", "info", "debug", "trace"};
    const struct log_filter *lf = ctx;
    if (src == NUB_LOG_SRC_HOST) { /* the library's own lines, e.g. the emu fallback notice */
        bool shown = level <= NUB_LOG_LEVEL_ERROR ||
                     (!lf->quiet && (lf->has_max ? level <= lf->max : level <= NUB_LOG_LEVEL_WARN));
        if (shown && level <= NUB_LOG_LEVEL_WARN)
            fprintf(stderr, "nub: %.*s\n", (int)len, msg);
        else if (shown) /* --log info and above: the library's detail lines, tagged like the guest's */
            fprintf(stderr, "[nub %s] %.*s\n", level <= 5 ? names[level] : "?", (int)len, msg);
        return;
    }
    const char *who = src == NUB_LOG_SRC_GUEST ? "guest" : "guest console";
    if (lf->has_max && level > lf->max)
        return;
    fprintf(stderr, "[%s %s] %.*s\n", who, level <= 5 ? names[level] : "?", (int)len, msg);
}

static int parse_backend(const char *s, enum nub_backend *b)
{
    if (strcmp(s, "auto") == 0)
        *b = NUB_BACKEND_AUTO;
    else if (strcmp(s, "kvm") == 0)
        *b = NUB_BACKEND_KVM;
    else if (strcmp(s, "emu") == 0)
        *b = NUB_BACKEND_EMU;
    else
        return -1;
    return 0;
}

/* --backend, --timeout and (when `sizes`) --heap, --stack, --input, --output into cfg. */
static int apply_config(const struct nub_cli_args *a, struct nub_config *cfg, bool sizes)
{
    static const char *const size_opts[] = {"--heap", "--stack", "--input", "--output"};
    uint64_t *fields[] = {&cfg->heap_size, &cfg->stack_size, &cfg->input_size, &cfg->output_size};
    const char *v = nub_cli_value(a, "--backend");
    if (v != NULL && parse_backend(v, &cfg->backend) != 0)
        return nub_cli_usage_error(a->command, "--backend needs auto, kvm or emu, got '%s'", v);
    v = nub_cli_value(a, "--timeout");
    if (v != NULL && nub_cli_u32(a->command, "--timeout", v, 0, UINT32_MAX, &cfg->call_timeout_ms) != 0)
        return NUB_CLI_USAGE;
    for (size_t i = 0; i < sizeof size_opts / sizeof size_opts[0]; i++) {
        if ((v = nub_cli_value(a, size_opts[i])) == NULL)
            continue;
        if (!sizes)
            return nub_cli_usage_error(a->command, "%s cannot be used with --snapshot (the snapshot fixes the sizes)",
                                       size_opts[i]);
        if (nub_cli_size(a->command, size_opts[i], v, fields[i]) != 0)
            return NUB_CLI_USAGE;
    }
    return 0;
}

/* The positional arguments of `a`, at most `max` of them, into `out`; returns how many, or -1 (reported). */
static int positionals(const struct nub_cli_args *a, const char **out, int max)
{
    int n = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i].opt >= 0)
            continue;
        if (n == max) {
            nub_cli_usage_error(a->command, "unexpected argument '%s'", a->v[i].value);
            return -1;
        }
        out[n++] = a->v[i].value;
    }
    return n;
}

/* A file named on the command line must be readable: else a usage error naming it. */
static int check_readable(const char *command, const char *what, const char *path)
{
    if (access(path, R_OK) == 0)
        return 0;
    return nub_cli_usage_error(command, "cannot read %s '%s': %s", what, path, strerror(errno));
}

/* The input of --in HEX / --in-text TEXT / --in-file FILE (`opt` names which); 0 or NUB_CLI_USAGE. */
static int load_input(const char *command, const char *opt, const char *value, unsigned char **in, size_t *len)
{
    *in = NULL;
    *len = 0;
    if (strcmp(opt, "--in") == 0 && nub_cli_parse_hex(value, in, len) != 0)
        return nub_cli_usage_error(command, "--in needs an even number of hex digits, got '%s'", value);
    if (strcmp(opt, "--in-file") == 0 && nub_cli_read_file(value, in, len) != 0)
        return nub_cli_usage_error(command, "cannot read --in-file '%s': %s", value, strerror(errno));
    if (strcmp(opt, "--in-text") == 0) {
        *len = strlen(value);
        if ((*in = (unsigned char *)strdup(value)) == NULL)
            return fail("reading the input", NUB_E_NOMEM, NULL);
    }
    return 0;
}

static void print_metrics(const nub_sandbox *sb)
{
    struct nub_metrics m;
    size_t len = 0;
    nub_sandbox_metrics(sb, &m);
    nub_metrics_format_prometheus(&m, NULL, 0, &len);
    char *text = malloc(len + 1);
    if (text != NULL && nub_metrics_format_prometheus(&m, text, len + 1, &len) == NUB_OK)
        fputs(text, stdout);
    free(text);
}

/* --gdb PORT|any into nub_config.gdb_port; 0 or -1. */
static int parse_gdb_port(const char *v, uint32_t *port)
{
    char *end;
    if (strcmp(v, "any") == 0) {
        *port = NUB_GDB_PORT_ANY;
        return 0;
    }
    long n = strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 65535)
        return -1;
    *port = (uint32_t)n;
    return 0;
}

static void json_cstr(const char *s)
{
    nub_cli_json_string(stdout, s, strlen(s));
}

/* ---- run: host functions ---------------------------------------------------- */

enum host_action { HOST_ECHO, HOST_FAIL, HOST_FILE };

/* One --host-fn ID=ACTION. */
struct host_fn {
    uint32_t id;
    enum host_action action;
    unsigned char *data; /* HOST_FILE: the file's bytes */
    size_t len;
};

/* Copy `len` bytes into the host call's result, or fail with a message when they do not fit. */
static int host_reply(struct nub_host_call *call, const unsigned char *data, size_t len, const char *what)
{
    if (len > call->result_cap) {
        snprintf(call->error, sizeof call->error, "nub --host-fn %u=%s: %zu bytes do not fit the %zu-byte result space",
                 call->fn_id, what, len, call->result_cap);
        return 1;
    }
    if (len > 0)
        memcpy(call->result, data, len);
    call->result_len = len;
    return 0;
}

static int host_fn_answer(void *ctx, struct nub_host_call *call)
{
    const struct host_fn *h = ctx;
    switch (h->action) {
    case HOST_ECHO:
        return host_reply(call, call->payload, call->payload_len, "echo");
    case HOST_FILE:
        return host_reply(call, h->data, h->len, "file");
    default:
        snprintf(call->error, sizeof call->error, "host function %u failed as asked (nub --host-fn %u=fail)",
                 call->fn_id, call->fn_id);
        return 1;
    }
}

/* Parse one --host-fn value into h (reading file:PATH now); 0 or NUB_CLI_USAGE. */
static int parse_host_fn(const char *command, const char *v, struct host_fn *h)
{
    const char *eq = strchr(v, '=');
    char id[24];
    memset(h, 0, sizeof *h);
    if (eq == NULL || eq == v || (size_t)(eq - v) >= sizeof id)
        return nub_cli_usage_error(command, "--host-fn needs ID=echo, ID=fail or ID=file:PATH, got '%s'", v);
    memcpy(id, v, (size_t)(eq - v));
    id[eq - v] = '\0';
    if (nub_cli_u32(command, "--host-fn's ID", id, 0, UINT32_MAX, &h->id) != 0)
        return NUB_CLI_USAGE;
    const char *act = eq + 1;
    if (strcmp(act, "echo") == 0)
        h->action = HOST_ECHO;
    else if (strcmp(act, "fail") == 0)
        h->action = HOST_FAIL;
    else if (strncmp(act, "file:", 5) == 0 && act[5] != '\0') {
        h->action = HOST_FILE;
        if (nub_cli_read_file(act + 5, &h->data, &h->len) != 0)
            return nub_cli_usage_error(command, "cannot read --host-fn %u's file '%s': %s", h->id, act + 5,
                                       strerror(errno));
    } else
        return nub_cli_usage_error(command, "--host-fn %u needs echo, fail or file:PATH, got '%s'", h->id, act);
    return 0;
}

/* ---- run --------------------------------------------------------------------- */

static const struct nub_cli_opt run_opts_table[] = {
    {"--call", NULL, "FN", 0},          {"--in", NULL, "HEX", 0},           {"--in-text", NULL, "TEXT", 0},
    {"--in-file", NULL, "FILE", 0},     {"--snapshot", NULL, "FILE", 0},    {"--backend", NULL, "NAME", 0},
    {"--timeout", NULL, "MS", 0},       {"--heap", NULL, "SIZE", 0},        {"--stack", NULL, "SIZE", 0},
    {"--input", NULL, "SIZE", 0},       {"--output", NULL, "SIZE", 0},      {"--host-fn", NULL, "ID=ACTION", 1},
    {"--hex", NULL, NULL, 0},           {"--text", NULL, NULL, 0},          {"--raw", NULL, NULL, 0},
    {"--out-file", NULL, "PATH", 0},    {"--json", NULL, NULL, 0},          {"--repeat", NULL, "N", 0},
    {"--metrics", NULL, NULL, 0},       {"--core-dump", NULL, "DIR", 0},    {"--log", NULL, "LEVEL", 0},
    {"--gdb", NULL, "PORT", 0},         {"--verbose", "-v", NULL, 0},       {"--quiet", "-q", NULL, 0},
    {NULL, NULL, NULL, 0},
};

#define RUN_MAX_REPEAT 10000000u

struct run_opts {
    const char *guest, *snapshot, *out_file;
    uint32_t fn, repeat;
    unsigned char *in;
    size_t in_len;
    struct nub_config cfg;
    enum nub_cli_format fmt;
    bool json, verbose, metrics;
    bool timeout_given; /* --timeout: else a snapshot keeps the timeout it was made with */
    struct log_filter *lf;
    struct host_fn *host_fns;
    size_t n_host_fns;
};

/* What a run measured and how it ended. */
struct run_result {
    nub_status rc;
    const char *failed; /* the step that failed, NULL on success */
    struct nub_error err;
    enum nub_backend backend; /* NUB_BACKEND_AUTO while no sandbox exists */
    uint64_t create_ns, evolve_ns, call_ns;
    bool evolved_here;
    uint64_t *call_times; /* repeat entries */
    uint32_t calls;       /* calls that succeeded */
    uint8_t *out;
    size_t out_len;
};

static void free_run_opts(struct run_opts *o)
{
    for (size_t i = 0; i < o->n_host_fns; i++)
        free(o->host_fns[i].data);
    free(o->host_fns);
    free(o->in);
}

/* The guest or snapshot (exactly one), --call and the input. */
static int run_target(const struct nub_cli_args *a, struct run_opts *o)
{
    static const char *const inputs[] = {"--in", "--in-text", "--in-file", NULL};
    const char *pos[1];
    int n = positionals(a, pos, 1);
    if (n < 0)
        return NUB_CLI_USAGE;
    o->guest = n == 1 ? pos[0] : NULL;
    o->snapshot = nub_cli_value(a, "--snapshot");
    if (o->guest != NULL && o->snapshot != NULL)
        return nub_cli_usage_error(a->command, "give GUEST.elf or --snapshot FILE, not both");
    if (o->guest == NULL && o->snapshot == NULL)
        return nub_cli_usage_error(a->command, "missing GUEST.elf (or --snapshot FILE)");
    const char *call = nub_cli_value(a, "--call");
    if (call == NULL)
        return nub_cli_usage_error(a->command, "missing --call FN");
    if (nub_cli_u32(a->command, "--call", call, 0, UINT32_MAX, &o->fn) != 0 || nub_cli_exclusive(a, inputs) != 0)
        return NUB_CLI_USAGE;
    if (check_readable(a->command, o->guest ? "GUEST.elf" : "--snapshot", o->guest ? o->guest : o->snapshot) != 0)
        return NUB_CLI_USAGE;
    for (const char *const *in = inputs; *in != NULL; in++)
        if (nub_cli_given(a, *in))
            return load_input(a->command, *in, nub_cli_value(a, *in), &o->in, &o->in_len);
    return 0;
}

/* Output format, --out-file, --json, --repeat, --metrics. */
static int run_output(const struct nub_cli_args *a, struct run_opts *o)
{
    static const char *const formats[] = {"--hex", "--text", "--raw", "--json", NULL};
    static const char *const metrics_json[] = {"--metrics", "--json", NULL};
    if (nub_cli_exclusive(a, formats) != 0 || nub_cli_exclusive(a, metrics_json) != 0)
        return NUB_CLI_USAGE;
    o->out_file = nub_cli_value(a, "--out-file");
    o->fmt = nub_cli_given(a, "--hex") ? NUB_CLI_FORMAT_HEX
             : nub_cli_given(a, "--text") ? NUB_CLI_FORMAT_TEXT
             : nub_cli_given(a, "--raw") || o->out_file != NULL ? NUB_CLI_FORMAT_RAW
             : NUB_CLI_FORMAT_AUTO;
    o->json = nub_cli_given(a, "--json");
    o->metrics = nub_cli_given(a, "--metrics");
    o->repeat = 1;
    const char *v = nub_cli_value(a, "--repeat");
    if (v != NULL && nub_cli_u32(a->command, "--repeat", v, 1, RUN_MAX_REPEAT, &o->repeat) != 0)
        return NUB_CLI_USAGE;
    return 0;
}

/* --log, --verbose, --quiet, --core-dump, --gdb. */
static int run_diagnostics(const struct nub_cli_args *a, struct run_opts *o)
{
    static struct log_filter lf; /* outlives the sandbox: the default logger keeps it */
    uint32_t level = NUB_LOG_LEVEL_TRACE;
    const char *log = nub_cli_value(a, "--log"), *gdb = nub_cli_value(a, "--gdb"), *core = nub_cli_value(a, "--core-dump");
    if (log != NULL && nub_log_level_parse(log, &level) != NUB_OK)
        return nub_cli_usage_error(a->command, "--log needs error, warn, info, debug or trace, got '%s'", log);
    if (gdb != NULL && parse_gdb_port(gdb, &o->cfg.gdb_port) != 0)
        return nub_cli_usage_error(a->command, "--gdb needs a port from 1 to 65535 or 'any', got '%s'", gdb);
    o->verbose = nub_cli_given(a, "--verbose");
    if (o->verbose)
        o->cfg.max_guest_log_level = NUB_LOG_LEVEL_TRACE;
    lf = (struct log_filter){nub_cli_given(a, "--quiet"), log != NULL, level};
    o->lf = &lf;
    if (log != NULL) {
        o->cfg.max_guest_log_level = level;
        nub_set_default_log(log_to_stderr, &lf, level); /* creation-time lines too */
    }
    if (core != NULL) {
        o->cfg.guest_core_dump = 1;
        o->cfg.core_dump_dir = core;
    }
    return 0;
}

/* Every --host-fn, each ID once. */
static int run_host_fns(const struct nub_cli_args *a, struct run_opts *o)
{
    if ((o->host_fns = calloc(a->n + 1, sizeof *o->host_fns)) == NULL)
        return fail("parsing --host-fn", NUB_E_NOMEM, NULL);
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(nub_cli_name(a, i), "--host-fn") != 0)
            continue;
        struct host_fn *h = &o->host_fns[o->n_host_fns];
        if (parse_host_fn(a->command, a->v[i].value, h) != 0) {
            free(h->data);
            return NUB_CLI_USAGE;
        }
        o->n_host_fns++;
        for (size_t j = 0; j + 1 < o->n_host_fns; j++)
            if (o->host_fns[j].id == h->id)
                return nub_cli_usage_error(a->command, "--host-fn %u given twice", h->id);
    }
    return 0;
}

static int parse_run(int argc, char **argv, struct run_opts *o, int *help)
{
    struct nub_cli_args a;
    memset(o, 0, sizeof *o);
    int rc = nub_cli_parse("run", run_opts_table, argc, argv, &a);
    if (rc != 0)
        return rc;
    *help = a.help;
    nub_config_default(&o->cfg);
    o->timeout_given = nub_cli_given(&a, "--timeout");
    if (!a.help && ((rc = run_target(&a, o)) != 0 || (rc = apply_config(&a, &o->cfg, o->snapshot == NULL)) != 0 ||
                    (rc = run_output(&a, o)) != 0 || (rc = run_diagnostics(&a, o)) != 0 ||
                    (rc = run_host_fns(&a, o)) != 0))
        free_run_opts(o);
    nub_cli_args_free(&a);
    return rc;
}

/* The sandbox from GUEST.elf or the snapshot file; *ready when it needs no evolve. */
static nub_status run_create(const struct run_opts *o, nub_sandbox **sb, bool *ready, struct nub_error *err)
{
    *ready = false;
    if (o->snapshot == NULL)
        return nub_sandbox_new_from_file(o->guest, NULL, &o->cfg, sb, err);
    nub_snapshot *snap = NULL;
    nub_status rc = nub_snapshot_load(o->snapshot, &snap, err);
    if (rc == NUB_OK) {
        struct nub_config cfg = o->cfg, made;
        if (!o->timeout_given && nub_snapshot_config(snap, &made) == NUB_OK)
            cfg.call_timeout_ms = made.call_timeout_ms;
        *ready = nub_snapshot_is_evolved(snap);
        rc = nub_sandbox_new_from_snapshot(snap, &cfg, sb, err);
    }
    nub_snapshot_release(snap);
    return rc;
}

/* Record a failed step: the status and the sandbox's (or creation's) error. */
static int run_failed(struct run_result *r, const char *what, nub_status rc, const struct nub_error *e)
{
    r->rc = rc;
    r->failed = what;
    if (e != NULL && e != &r->err)
        r->err = *e;
    r->err.code = rc;
    return -1;
}

/* Register the host functions, evolve when needed: the sandbox is then ready for calls. */
static int run_prepare(const struct run_opts *o, nub_sandbox *sb, bool ready, struct run_result *r)
{
    nub_status rc;
    for (size_t i = 0; i < o->n_host_fns; i++)
        if ((rc = nub_sandbox_register(sb, o->host_fns[i].id, host_fn_answer, &o->host_fns[i])) != NUB_OK)
            return run_failed(r, "registering a host function", rc, nub_sandbox_last_error(sb));
    if (ready)
        return 0;
    uint64_t t = now_ns();
    rc = nub_sandbox_evolve(sb);
    r->evolve_ns = now_ns() - t;
    r->evolved_here = true;
    if (rc != NUB_OK)
        return run_failed(r, "guest init", rc, nub_sandbox_last_error(sb));
    return 0;
}

/* The calls: o->repeat of them, keeping the last result. */
static int run_calls(const struct run_opts *o, nub_sandbox *sb, struct run_result *r)
{
    if ((r->call_times = calloc(o->repeat, sizeof *r->call_times)) == NULL)
        return run_failed(r, "the call", NUB_E_NOMEM, NULL);
    for (uint32_t i = 0; i < o->repeat; i++) {
        nub_buffer_free(r->out);
        r->out = NULL;
        uint64_t t = now_ns();
        nub_status rc = nub_call(sb, o->fn, o->in, o->in_len, &r->out, &r->out_len);
        r->call_ns = r->call_times[i] = now_ns() - t;
        if (rc != NUB_OK)
            return run_failed(r, "the call", rc, nub_sandbox_last_error(sb));
        r->calls++;
    }
    return 0;
}

/* An input over the buffer's limit is the caller's to fix: a usage error with the way out. */
static int check_input_fits(const struct run_opts *o, nub_sandbox *sb)
{
    size_t max = nub_sandbox_max_input(sb);
    if (o->in_len <= max)
        return 0;
    if (o->snapshot != NULL)
        return nub_cli_usage_error("run",
                                   "the input is %zu bytes, over the snapshot's %zu-byte input limit (make the "
                                   "snapshot with a larger 'nub snapshot --input SIZE')",
                                   o->in_len, max);
    return nub_cli_usage_error("run", "the input is %zu bytes, over the input buffer's %zu-byte limit (raise it with --input SIZE)",
                               o->in_len, max);
}

/* Create, prepare and call; returns NUB_CLI_USAGE only for an input too large, else 0 (r says how it went). */
static int run_sandbox(const struct run_opts *o, nub_sandbox **sbp, struct run_result *r)
{
    bool ready;
    uint64_t t = now_ns();
    nub_status rc = run_create(o, sbp, &ready, &r->err);
    r->create_ns = now_ns() - t;
    if (rc != NUB_OK)
        return run_failed(r, "creating the sandbox", rc, &r->err), 0;
    nub_sandbox *sb = *sbp;
    r->backend = nub_sandbox_backend(sb);
    if (nub_sandbox_gdb_port(sb) != 0)
        fprintf(stderr, "nub: waiting for gdb: gdb %s -ex 'target remote 127.0.0.1:%u'\n",
                o->guest ? o->guest : "GUEST.elf", nub_sandbox_gdb_port(sb));
    nub_sandbox_set_log(sb, log_to_stderr, o->lf);
    if (o->verbose)
        fprintf(stderr, "nub: sandbox %llx on the %s backend\n", (unsigned long long)nub_sandbox_id(sb),
                nub_backend_name(r->backend));
    if (check_input_fits(o, sb) != 0)
        return NUB_CLI_USAGE;
    if (run_prepare(o, sb, ready, r) == 0)
        run_calls(o, sb, r);
    return 0;
}

static const char *guest_status_name(uint32_t s)
{
    static const char *const names[] = {"NUB_STATUS_OK",          "NUB_STATUS_UNKNOWN_FN", "NUB_STATUS_BAD_PAYLOAD",
                                        "NUB_STATUS_GUEST_ERROR", "NUB_STATUS_HOST_ERROR", "NUB_STATUS_NO_MEMORY",
                                        "NUB_STATUS_TOO_LARGE"};
    return s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

static void json_us(const char *key, uint64_t ns, bool present)
{
    printf("\"%s\": ", key);
    if (present)
        printf("%.3f", (double)ns / 1000.0);
    else
        printf("null");
}

static void json_result(const struct run_result *r)
{
    printf("\"result\": ");
    if (r->failed != NULL) {
        printf("null");
        return;
    }
    printf("{\"length\": %zu, \"hex\": \"", r->out_len);
    nub_cli_write_hex(stdout, r->out, r->out_len);
    printf("\"");
    if (nub_cli_printable(r->out, r->out_len)) {
        printf(", \"text\": ");
        nub_cli_json_string(stdout, (const char *)r->out, r->out_len);
    }
    printf("}");
}

static void json_status(const struct run_result *r)
{
    const char *name, *desc;
    size_t n;
    status_parts(r->rc, &name, &n, &desc);
    printf("\"status\": {\"code\": %d, \"name\": ", r->rc);
    nub_cli_json_string(stdout, name, n);
    printf(", \"description\": ");
    json_cstr(desc);
    printf(", \"message\": ");
    json_cstr(r->failed ? r->err.message : "");
    printf(", \"step\": ");
    if (r->failed)
        json_cstr(r->failed);
    else
        printf("null");
    printf(", \"guest_status\": %u, \"guest_status_name\": ", r->err.guest_status);
    json_cstr(guest_status_name(r->err.guest_status));
    printf("}");
}

static void print_json(const struct run_opts *o, struct run_result *r)
{
    printf("{");
    json_result(r);
    printf(", ");
    json_status(r);
    printf(", \"timings_us\": {");
    json_us("create", r->create_ns, true);
    printf(", ");
    json_us("evolve", r->evolve_ns, r->evolved_here);
    printf(", ");
    json_us("call", r->call_ns, r->calls > 0 || (r->failed && strcmp(r->failed, "the call") == 0));
    if (o->repeat > 1 && r->calls > 0) {
        printf(", ");
        json_us("call_p50", nub_cli_percentile(r->call_times, r->calls, 50), true);
        printf(", ");
        json_us("call_p99", nub_cli_percentile(r->call_times, r->calls, 99), true);
    }
    printf("}, \"calls\": %u, \"backend\": ", r->calls);
    if (r->backend == NUB_BACKEND_AUTO)
        printf("null");
    else
        json_cstr(nub_backend_name(r->backend));
    printf("}\n");
}

/* The result to stdout or --out-file; 0 or NUB_CLI_FAILED (reported). */
static int write_output(const struct run_opts *o, const struct run_result *r, FILE *out)
{
    if (o->json)
        print_json(o, (struct run_result *)r);
    if (r->failed == NULL && (!o->json || out != stdout))
        nub_cli_write_result(out, o->fmt, r->out, r->out_len);
    if (o->repeat > 1 && r->calls > 0 && !o->json)
        fprintf(stderr, "nub: %u calls: p50 %.3f us, p99 %.3f us\n", r->calls,
                (double)nub_cli_percentile(r->call_times, r->calls, 50) / 1000.0,
                (double)nub_cli_percentile(r->call_times, r->calls, 99) / 1000.0);
    int bad = fflush(out) != 0 || ferror(out);
    if (out != stdout)
        bad |= fclose(out) != 0;
    if (bad) {
        fprintf(stderr, "nub: writing the result to %s failed: %s\n", out == stdout ? "stdout" : o->out_file,
                strerror(errno));
        return NUB_CLI_FAILED;
    }
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    struct run_opts o;
    struct run_result r;
    nub_sandbox *sb = NULL;
    int help = 0, status = parse_run(argc, argv, &o, &help);
    if (status != 0 || help)
        return status != 0 ? status : print_help("run");
    memset(&r, 0, sizeof r);
    FILE *out = o.out_file != NULL ? fopen(o.out_file, "wb") : stdout;
    if (out == NULL) {
        status = nub_cli_usage_error("run", "cannot write --out-file '%s': %s", o.out_file, strerror(errno));
        goto done;
    }
    status = run_sandbox(&o, &sb, &r);
    if (status != 0) {
        if (out != stdout)
            fclose(out), unlink(o.out_file);
        goto done;
    }
    if (r.failed != NULL) /* a result over the output buffer is the caller's to fix */
        fail_hint(r.failed, r.rc, &r.err,
                  r.rc == NUB_E_GUEST && r.err.guest_status == NUB_STATUS_TOO_LARGE && o.snapshot == NULL
                      ? "raise the output buffer with --output SIZE"
                      : NULL);
    status = write_output(&o, &r, out);
    if (r.failed != NULL) {
        status = NUB_CLI_FAILED;
        if (out != stdout)
            unlink(o.out_file);
    }
    if (o.metrics && sb != NULL)
        print_metrics(sb);
done:
    nub_buffer_free(r.out);
    free(r.call_times);
    nub_sandbox_destroy(sb);
    free_run_opts(&o);
    return status;
}

/* ---- info ----------------------------------------------------------------- */

/* The backend a default config picks here, and how: "auto", "NUB_BACKEND", or NULL when $NUB_BACKEND is bad. */
static const char *default_backend(enum nub_backend *pick)
{
    const char *env = getenv("NUB_BACKEND");
    const char *how = "auto";
    *pick = NUB_BACKEND_AUTO;
    if (env != NULL && parse_backend(env, pick) != 0)
        return NULL;
    if (*pick != NUB_BACKEND_AUTO)
        how = "NUB_BACKEND";
    else
        *pick = nub_backend_available(NUB_BACKEND_KVM, NULL, 0) == NUB_OK ? NUB_BACKEND_KVM : NUB_BACKEND_EMU;
    return how;
}

static void info_text(const struct nub_backend_info *kvm, const struct nub_backend_info *emu)
{
    printf("kvm: %s%s%s\n", kvm->usable ? "usable" : "not usable", kvm->usable ? "" : ": ", kvm->reason);
    if (kvm->kvm_api_version >= 0)
        printf("  /dev/kvm API version %d\n", kvm->kvm_api_version);
    else
        printf("  /dev/kvm does not open\n");
    printf("  KVM modules: %s\n", kvm->kvm_modules);
    printf("  CPU: %s, VMX %s, SVM %s\n", kvm->cpu_vendor[0] ? kvm->cpu_vendor : "unknown",
           kvm->cpu_vmx ? "yes" : "no", kvm->cpu_svm ? "yes" : "no");
    printf("  probe: %s in %.3f ms\n",
           kvm->probe_passed ? "passed" : kvm->probe_ran ? "failed" : "did not run",
           (double)kvm->probe_ns / 1e6);
    printf("emu: %s%s%s\n", emu->usable ? "usable" : "not usable", emu->usable ? "" : ": ", emu->reason);
    printf("  Unicorn %s; not an isolation boundary (development and CI)\n", emu->unicorn_version);
}

static void info_json(const struct nub_backend_info *kvm, const struct nub_backend_info *emu)
{
    printf("{\"kvm\": {\"usable\": %s, \"reason\": ", kvm->usable ? "true" : "false");
    json_cstr(kvm->reason);
    printf(", \"api_version\": %d, \"modules\": ", kvm->kvm_api_version);
    json_cstr(kvm->kvm_modules);
    printf(", \"cpu_vendor\": ");
    json_cstr(kvm->cpu_vendor);
    printf(", \"vmx\": %s, \"svm\": %s, \"probe\": {\"ran\": %s, \"passed\": %s, \"ns\": %llu}},\n",
           kvm->cpu_vmx ? "true" : "false", kvm->cpu_svm ? "true" : "false", kvm->probe_ran ? "true" : "false",
           kvm->probe_passed ? "true" : "false", (unsigned long long)kvm->probe_ns);
    printf(" \"emu\": {\"usable\": %s, \"reason\": ", emu->usable ? "true" : "false");
    json_cstr(emu->reason);
    printf(", \"unicorn_version\": ");
    json_cstr(emu->unicorn_version);
    printf(", \"isolation\": false},\n");
}

static int info_backends(bool json)
{
    struct nub_backend_info kvm, emu;
    if (nub_backend_info(NUB_BACKEND_KVM, &kvm) != NUB_OK || nub_backend_info(NUB_BACKEND_EMU, &emu) != NUB_OK) {
        fprintf(stderr, "nub: nub_backend_info failed\n");
        return NUB_CLI_FAILED;
    }
    enum nub_backend pick;
    const char *how = default_backend(&pick);
    if (json) {
        info_json(&kvm, &emu);
        printf(" \"default\": ");
        json_cstr(how ? nub_backend_name(pick) : "");
        printf(", \"default_from\": ");
        json_cstr(how ? how : "invalid NUB_BACKEND");
        printf("}\n");
        return how ? NUB_CLI_OK : NUB_CLI_FAILED;
    }
    info_text(&kvm, &emu);
    if (how == NULL) {
        printf("default: none: NUB_BACKEND='%s' is not a backend (auto, kvm or emu)\n", getenv("NUB_BACKEND"));
        return NUB_CLI_FAILED;
    }
    printf("default: %s (%s)\n", nub_backend_name(pick), how);
    if (pick == NUB_BACKEND_EMU)
        printf("note: the emu backend is for development and CI; it is not an isolation boundary."
               " In production, ask for kvm explicitly (NUB_BACKEND=kvm or --backend kvm)\n");
    return NUB_CLI_OK;
}

static void print_hex(const uint8_t *b, size_t n)
{
    nub_cli_write_hex(stdout, b, n);
}

/* `nub info FILE`: verify a snapshot file and describe it. */
static int info_file(const char *path)
{
    struct nub_error err;
    nub_snapshot *snap = NULL;
    nub_status rc = nub_snapshot_load(path, &snap, &err);
    if (rc != NUB_OK)
        return fail("loading the snapshot", rc, &err);
    struct nub_snapfile_header h;
    FILE *f = fopen(path, "rb");
    int ok = f != NULL && fread(&h, sizeof h, 1, f) == 1;
    if (f)
        fclose(f);
    uint8_t hash[32];
    nub_snapshot_hash(snap, hash);
    nub_snapshot_release(snap);
    if (!ok)
        return fail("reading the snapshot header", NUB_E_IO, NULL);
    printf("hash:     ");
    print_hex(hash, sizeof hash);
    printf("\nkind:     %s\n", (h.flags & NUB_SNAPFILE_F_EVOLVED) ? "evolved (ready for calls)" : "pre-init");
    printf("format:   %u, ABI version %u, CPU %.12s\n", h.format_version, h.abi_version, h.cpu_vendor);
    printf("memory:   %llu bytes (image %llu, init data %llu)\n", (unsigned long long)h.mem_size,
           (unsigned long long)h.image_size, (unsigned long long)h.init_size);
    printf("config:   heap %llu, stack %llu, input %llu, output %llu, scratch %llu\n",
           (unsigned long long)h.heap_size, (unsigned long long)h.stack_size, (unsigned long long)h.input_size,
           (unsigned long long)h.output_size, (unsigned long long)h.scratch_size);
    for (uint32_t i = 0; i < 2; i++)
        printf("region %u: gpa 0x%llx, %llu bytes, flags %c%c%c\n", i, (unsigned long long)h.regions[i].gpa,
               (unsigned long long)h.regions[i].len, h.regions[i].flags & NUB_MEM_READ ? 'r' : '-',
               h.regions[i].flags & NUB_MEM_WRITE ? 'w' : '-', h.regions[i].flags & NUB_MEM_EXEC ? 'x' : '-');
    return NUB_CLI_OK;
}

static int cmd_info(int argc, char **argv)
{
    static const struct nub_cli_opt opts[] = {{"--json", NULL, NULL, 0}, {NULL, NULL, NULL, 0}};
    struct nub_cli_args a;
    const char *file[1];
    int rc = nub_cli_parse("info", opts, argc, argv, &a);
    if (rc != 0)
        return rc;
    bool json = nub_cli_given(&a, "--json");
    int n = a.help ? 0 : positionals(&a, file, 1);
    if (a.help)
        rc = print_help("info");
    else if (n < 0)
        rc = NUB_CLI_USAGE;
    else if (n == 1 && json)
        rc = nub_cli_usage_error("info", "--json cannot be used with a snapshot file");
    else if (n == 1)
        rc = check_readable("info", "SNAPSHOT_FILE", file[0]) != 0 ? NUB_CLI_USAGE : info_file(file[0]);
    else
        rc = info_backends(json);
    nub_cli_args_free(&a);
    return rc;
}

/* ---- caps ----------------------------------------------------------------- */

/* One FILE argument of `nub caps`: its DATA cap encoding. */
struct cap_file {
    const char *path;
    uint8_t *enc; /* NULL when the file could not be encoded */
    size_t len;
};

static void print_hash(const uint8_t hash[NUB_CAP_HASH_LEN], const char *path)
{
    print_hex(hash, NUB_CAP_HASH_LEN);
    printf("  %s\n", path);
}

/* Read `path` (a usage error when it cannot be read) and encode it as a DATA cap (a failure: reported, enc NULL). */
static int load_cap_file(const char *command, struct cap_file *f)
{
    unsigned char *bytes = NULL;
    size_t n = 0;
    struct nub_cap c;
    f->enc = NULL;
    if (nub_cli_read_file(f->path, &bytes, &n) != 0)
        return nub_cli_usage_error(command, "cannot read '%s': %s", f->path, strerror(errno));
    nub_cap_data(&c, bytes, n);
    int rc = nub_cap_encoded_len(&c, &f->len);
    if (rc == NUB_CAP_OK && (f->enc = malloc(f->len ? f->len : 1)) != NULL)
        rc = nub_cap_encode(&c, f->enc, f->len, &f->len);
    free(bytes);
    if (rc != NUB_CAP_OK || f->enc == NULL) {
        fprintf(stderr, "nub: %s: cannot encode as a DATA cap: %s\n", f->path,
                f->enc ? nub_cap_strerror(rc) : "out of memory");
        free(f->enc);
        f->enc = NULL;
    }
    return 0;
}

/* Path of the nubk kernel (see the help of caps put); writes into buf. */
static const char *nubk_path(const char *opt, char *buf, size_t cap)
{
    char exe[4096];
    if (opt != NULL)
        return opt;
    if (getenv("NUB_NUBK") != NULL)
        return getenv("NUB_NUBK");
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return "nubk.elf";
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    *slash = '\0';
    snprintf(buf, cap, "%s/guests/nubk.elf", exe);
    if (access(buf, R_OK) != 0)
        snprintf(buf, cap, "%s/../share/nub/nubk.elf", exe);
    return buf;
}

/* A ready nubk sandbox whose directory and buffers fit `files`. */
static nub_sandbox *caps_sandbox(const char *kernel, const struct nub_config *base, struct log_filter *lf,
                                 const struct cap_file *files, size_t nfiles)
{
    struct nub_config cfg = *base;
    struct nub_nubk_config kcfg;
    struct nub_init_data init;
    struct nub_error err;
    nub_sandbox *sb = NULL;
    uint64_t capacity = NUB_CDIR_MIN_CAPACITY, arena = 4096, max_len = 64;
    for (size_t i = 0; i < nfiles; i++) {
        arena += files[i].len;
        max_len = files[i].len > max_len ? files[i].len : max_len;
    }
    while (NUB_CDIR_MAX_ENTRIES(capacity) < nfiles)
        capacity *= 2;
    cfg.max_guest_log_level = NUB_LOG_LEVEL_WARN;
    nub_status rc = nub_nubk_setup(&cfg, &init, &kcfg, capacity, arena, max_len);
    if (rc == NUB_OK)
        rc = nub_sandbox_new_from_file(kernel, &init, &cfg, &sb, &err);
    if (rc != NUB_OK) {
        fail("creating the nubk sandbox", rc, rc == NUB_E_INVALID ? NULL : &err);
        return NULL;
    }
    nub_sandbox_set_log(sb, log_to_stderr, lf);
    if ((rc = nub_sandbox_evolve(sb)) != NUB_OK) {
        fail("nubk init", rc, nub_sandbox_last_error(sb));
        nub_sandbox_destroy(sb);
        return NULL;
    }
    return sb;
}

/* Hash (sb NULL: on the host) or publish each encoded file and print its hash. */
static int caps_each(nub_sandbox *sb, const struct cap_file *files, size_t n)
{
    int status = NUB_CLI_OK;
    for (size_t i = 0; i < n; i++) {
        uint8_t hash[NUB_CAP_HASH_LEN];
        if (files[i].enc == NULL) {
            status = NUB_CLI_FAILED;
            continue;
        }
        nub_status rc = sb ? nub_put_cap(sb, files[i].enc, files[i].len, hash)
                           : nub_cap_hash_bytes(files[i].enc, files[i].len, hash);
        if (rc == NUB_OK) {
            print_hash(hash, files[i].path);
            continue;
        }
        const struct nub_error *e = sb ? nub_sandbox_last_error(sb) : NULL;
        fprintf(stderr, "nub: %s: %s%s%s\n", files[i].path, nub_strerror(rc), e ? ": " : "", e ? e->message : "");
        status = NUB_CLI_FAILED;
    }
    return status;
}

/* `nub caps hash|put` after its options were parsed. */
static int caps_run(const struct nub_cli_args *a, bool put)
{
    static struct log_filter lf;
    struct nub_config cfg;
    char kbuf[4200];
    nub_config_default(&cfg);
    if (put && apply_config(a, &cfg, false) != 0)
        return NUB_CLI_USAGE;
    lf.quiet = nub_cli_given(a, "--quiet");
    struct cap_file *files = calloc(a->n + 1, sizeof *files);
    size_t n = 0;
    int status = files == NULL ? fail("reading the files", NUB_E_NOMEM, NULL) : NUB_CLI_OK;
    for (size_t i = 0; files != NULL && i < a->n; i++)
        if (a->v[i].opt < 0)
            files[n++].path = a->v[i].value;
    if (status == NUB_CLI_OK && n == 0)
        status = nub_cli_usage_error(a->command, "missing FILE");
    for (size_t i = 0; status == NUB_CLI_OK && i < n; i++)
        status = load_cap_file(a->command, &files[i]);
    nub_sandbox *sb = NULL;
    if (status == NUB_CLI_OK && put) {
        sb = caps_sandbox(nubk_path(nub_cli_value(a, "--kernel"), kbuf, sizeof kbuf), &cfg, &lf, files, n);
        status = sb == NULL ? NUB_CLI_FAILED : NUB_CLI_OK;
    }
    if (status == NUB_CLI_OK)
        status = caps_each(sb, files, n);
    nub_sandbox_destroy(sb);
    for (size_t i = 0; files != NULL && i < n; i++)
        free(files[i].enc);
    free(files);
    return status;
}

static int cmd_caps(int argc, char **argv)
{
    static const struct nub_cli_opt hash_opts[] = {{NULL, NULL, NULL, 0}};
    static const struct nub_cli_opt put_opts[] = {
        {"--kernel", NULL, "NUBK.elf", 0}, {"--backend", NULL, "NAME", 0}, {"--quiet", "-q", NULL, 0},
        {NULL, NULL, NULL, 0}};
    if (argc == 0)
        return nub_cli_usage_error("caps", "missing the caps command: hash or put");
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)
        return print_help("caps");
    bool put = strcmp(argv[0], "put") == 0;
    if (!put && strcmp(argv[0], "hash") != 0)
        return nub_cli_usage_error("caps", "unknown caps command '%s' (hash or put)", argv[0]);
    const char *command = put ? "caps put" : "caps hash";
    struct nub_cli_args a;
    int rc = nub_cli_parse(command, put ? put_opts : hash_opts, argc - 1, argv + 1, &a);
    if (rc != 0)
        return rc;
    rc = a.help ? print_help(command) : caps_run(&a, put);
    nub_cli_args_free(&a);
    return rc;
}

/* ---- snapshots ------------------------------------------------------------- */

static const struct nub_cli_opt snapshot_opts_table[] = {
    {"--out-file", "-o", "FILE", 0}, {"--evolve", NULL, NULL, 0},     {"--call", NULL, "FN", 1},
    {"--in", NULL, "HEX", 1},        {"--in-text", NULL, "TEXT", 1},  {"--in-file", NULL, "FILE", 1},
    {"--backend", NULL, "NAME", 0},  {"--timeout", NULL, "MS", 0},    {"--heap", NULL, "SIZE", 0},
    {"--stack", NULL, "SIZE", 0},    {"--input", NULL, "SIZE", 0},    {"--output", NULL, "SIZE", 0},
    {"--quiet", "-q", NULL, 0},      {NULL, NULL, NULL, 0},
};

/* One set-up call of `nub snapshot`. */
struct setup_call {
    uint32_t fn;
    const char *input_opt; /* the option that gave its input, or NULL */
    unsigned char *in;
    size_t len;
};

static void free_setup_calls(struct setup_call *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(c[i].in);
    free(c);
}

/* The --call FN [INPUT] sequence, in order, inputs read; NULL with *status set on a usage error. */
static struct setup_call *parse_setup_calls(const struct nub_cli_args *a, size_t *count, int *status)
{
    struct setup_call *calls = calloc(a->n + 1, sizeof *calls);
    size_t n = 0;
    *status = calls == NULL ? fail("parsing the set-up calls", NUB_E_NOMEM, NULL) : 0;
    for (size_t i = 0; *status == 0 && i < a->n; i++) {
        const char *name = nub_cli_name(a, i), *v = a->v[i].value;
        bool input = strcmp(name, "--in") == 0 || strcmp(name, "--in-text") == 0 || strcmp(name, "--in-file") == 0;
        if (strcmp(name, "--call") == 0) {
            *status = nub_cli_u32(a->command, "--call", v, 0, UINT32_MAX, &calls[n].fn);
            n += *status == 0;
        } else if (input && n == 0) {
            *status = nub_cli_usage_error(a->command, "%s comes before any --call", name);
        } else if (input && calls[n - 1].input_opt != NULL) {
            *status = nub_cli_usage_error(a->command, "%s and %s given for one --call", calls[n - 1].input_opt, name);
        } else if (input) {
            calls[n - 1].input_opt = name;
            *status = load_input(a->command, name, v, &calls[n - 1].in, &calls[n - 1].len);
        }
    }
    if (*status != 0) {
        free_setup_calls(calls, n);
        return NULL;
    }
    *count = n;
    return calls;
}

static int run_setup_calls(nub_sandbox *sb, const struct setup_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        nub_status rc = nub_call(sb, calls[i].fn, calls[i].in, calls[i].len, &out, &out_len);
        nub_buffer_free(out);
        if (rc != NUB_OK)
            return fail("a set-up call", rc, nub_sandbox_last_error(sb));
    }
    return 0;
}

/* Evolve a sandbox from `pre`, run the set-up calls, capture it into *out. */
static int evolve_and_capture(nub_snapshot *pre, const struct nub_config *cfg, struct log_filter *lf,
                              const struct setup_call *calls, size_t n, nub_snapshot **out)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_snapshot(pre, cfg, &sb, &err);
    if (rc != NUB_OK)
        return fail("creating the sandbox", rc, &err);
    nub_sandbox_set_log(sb, log_to_stderr, lf);
    int status = 0;
    if ((rc = nub_sandbox_evolve(sb)) != NUB_OK)
        status = fail("guest init", rc, nub_sandbox_last_error(sb));
    if (status == 0)
        status = run_setup_calls(sb, calls, n);
    if (status == 0 && (rc = nub_sandbox_snapshot(sb, out)) != NUB_OK)
        status = fail("capturing the sandbox", rc, nub_sandbox_last_error(sb));
    nub_sandbox_destroy(sb);
    return status;
}

/* Build, (evolve, set up,) save and print the hash. */
static int snapshot_make(const char *guest, const char *path, const struct nub_config *cfg, struct log_filter *lf,
                         bool evolve, const struct setup_call *calls, size_t n)
{
    struct nub_error err;
    nub_snapshot *pre = NULL, *snap = NULL;
    nub_status rc = nub_snapshot_from_file(guest, NULL, cfg, &pre, &err);
    if (rc != NUB_OK)
        return fail("building the snapshot", rc, &err);
    int status = evolve ? evolve_and_capture(pre, cfg, lf, calls, n, &snap) : 0;
    if (!evolve)
        snap = nub_snapshot_retain(pre);
    if (status == 0 && (rc = nub_snapshot_save(snap, path, &err)) != NUB_OK)
        status = fail("saving the snapshot", rc, &err);
    uint8_t hash[32];
    if (status == 0 && nub_snapshot_hash(snap, hash) == NUB_OK) {
        print_hex(hash, sizeof hash);
        printf("  %s\n", path);
    }
    nub_snapshot_release(snap);
    nub_snapshot_release(pre);
    return status;
}

static int snapshot_with(const struct nub_cli_args *a)
{
    static struct log_filter lf;
    struct nub_config cfg;
    const char *guest[1];
    size_t ncalls = 0;
    int status, n = positionals(a, guest, 1);
    if (n < 0)
        return NUB_CLI_USAGE;
    if (n == 0)
        return nub_cli_usage_error(a->command, "missing GUEST.elf");
    const char *path = nub_cli_value(a, "--out-file");
    if (path == NULL)
        return nub_cli_usage_error(a->command, "missing -o FILE");
    nub_config_default(&cfg);
    if (apply_config(a, &cfg, true) != 0 || check_readable(a->command, "GUEST.elf", guest[0]) != 0)
        return NUB_CLI_USAGE;
    struct setup_call *calls = parse_setup_calls(a, &ncalls, &status);
    if (calls == NULL)
        return status;
    lf.quiet = nub_cli_given(a, "--quiet");
    status = snapshot_make(guest[0], path, &cfg, &lf, ncalls > 0 || nub_cli_given(a, "--evolve"), calls, ncalls);
    free_setup_calls(calls, ncalls);
    return status;
}

static int cmd_snapshot(int argc, char **argv)
{
    struct nub_cli_args a;
    int rc = nub_cli_parse("snapshot", snapshot_opts_table, argc, argv, &a);
    if (rc != 0)
        return rc;
    rc = a.help ? print_help("snapshot") : snapshot_with(&a);
    nub_cli_args_free(&a);
    return rc;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2)
        return nub_cli_usage_error(NULL, "missing the command (run, snapshot, info, caps or help)");
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 || strcmp(c, "help") == 0)
        return cmd_help(argc - 2, argv + 2);
    if (strcmp(c, "--version") == 0) {
        if (argc > 2)
            return nub_cli_usage_error(NULL, "unexpected argument '%s'", argv[2]);
        printf("nub %s\n", NUB_VERSION);
        return fflush(stdout) == 0 ? NUB_CLI_OK : NUB_CLI_FAILED;
    }
    if (strcmp(c, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(c, "snapshot") == 0)
        return cmd_snapshot(argc - 2, argv + 2);
    if (strcmp(c, "info") == 0)
        return cmd_info(argc - 2, argv + 2);
    if (strcmp(c, "caps") == 0)
        return cmd_caps(argc - 2, argv + 2);
    if (c[0] == '-')
        return nub_cli_usage_error(NULL, "unknown option '%s'", c);
    return nub_cli_usage_error(NULL, "unknown command '%s'", c);
}
