/* The nub command-line tool: run a guest function, report which backends work here, hash and publish caps, build and inspect snapshot files. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nub/abi.h"
#include "nub/cap.h"
#include "nub/nub.h"
#include "nub/nubk.h"
#include "nub/snapfile.h"

struct run_opts {
    const char *guest;
    const char *in_hex;
    const char *in_file;
    const char *in_text;
    const char *backend;
    const char *snapshot; /* --snapshot FILE instead of GUEST.elf */
    int snapshot_ready;   /* that file holds an evolved snapshot */
    const char *gdb;
    long fn_id;
    int verbose;
    int quiet;
    int metrics;           /* --metrics: print the sandbox's metrics after the call */
    const char *core_dir;  /* --core-dump DIR */
    const char *log_level; /* --log LEVEL */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: nub run GUEST.elf --call FN_ID [--in HEX | --in-text TEXT | --in-file FILE]\n"
            "               [--backend auto|kvm|emu] [--verbose] [--quiet] [--metrics]\n"
            "               [--core-dump DIR] [--log error|warn|info|debug|trace] [--gdb PORT|any]\n"
            "       nub run --snapshot FILE --call FN_ID [input as above] [--backend ...]\n"
            "       nub snapshot GUEST.elf -o FILE [--evolve] [--call FN_ID [input as above]]...\n"
            "                    [--backend auto|kvm|emu]\n"
            "       nub info [--json]\n"
            "       nub info SNAPSHOT_FILE\n"
            "       nub caps hash FILE...\n"
            "       nub caps put [--kernel NUBK.elf] [--backend auto|kvm|emu] FILE...\n"
            "\n"
            "run   create a sandbox from GUEST.elf, evolve it, call FN_ID with the input\n"
            "      and print the result: as text when it is printable, else as hex.\n"
            "      With --snapshot, start from a snapshot file (evolving it if it is pre-init).\n"
            "      --metrics prints the sandbox's metrics (Prometheus text) afterwards;\n"
            "      --core-dump DIR writes a core file there if the guest faults, aborts\n"
            "      or times out; --log LEVEL shows host and guest log lines up to LEVEL.\n"
            "      --gdb: wait for gdb on 127.0.0.1:PORT (any: a free port) before the\n"
            "      guest's first instruction; prints the gdb command to use on stderr.\n"
            "snapshot  build GUEST.elf's image and save it to FILE; --evolve runs init first\n"
            "      and saves the evolved sandbox, each --call (implies --evolve) runs a set-up\n"
            "      call before the capture. Prints the snapshot's hash.\n"
            "      The backend is --backend, else $NUB_BACKEND, else auto: kvm when the\n"
            "      kvm probe passes, else emu with a one-line notice on stderr (emu is\n"
            "      not an isolation boundary; --quiet drops the notice).\n"
            "info  print, per backend, whether it is usable here, why not, and what was\n"
            "      found (KVM API version and module, CPU vendor, VMX/SVM, the kvm probe's\n"
            "      result and time, Unicorn's version); --json prints the same as JSON.\n"
            "      With a snapshot file, verify it and print its hash, sizes, regions and\n"
            "      versions.\n"
            "caps hash  print the cap hash of each FILE taken as a DATA cap, computed on\n"
            "      the host, as 'HASH  FILE' lines.\n"
            "caps put   create a nubk sandbox sized for the FILEs, publish each as a DATA\n"
            "      cap and print the hash the guest computed, in the same format. The\n"
            "      kernel is --kernel, else $NUB_NUBK, else guests/nubk.elf or\n"
            "      ../share/nub/nubk.elf next to this program.\n");
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_hex(const char *s, unsigned char **out, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2 != 0)
        return -1;
    unsigned char *b = malloc(n / 2 + 1);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_val(s[2 * i]), lo = hex_val(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return -1;
        }
        b[i] = (unsigned char)(hi << 4 | lo);
    }
    *out = b;
    *len = n / 2;
    return 0;
}

static int read_all(const char *path, unsigned char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap);
    while (b != NULL) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        unsigned char *nb = realloc(b, cap);
        if (nb == NULL) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
    }
    int bad = b == NULL || ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return -1;
    }
    *out = b;
    *len = n;
    return 0;
}

static int printable(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((b[i] < 0x20 || b[i] > 0x7e) && b[i] != '\n' && b[i] != '\t')
            return 0;
    return n > 0;
}

static void print_result(const unsigned char *b, size_t n)
{
    if (printable(b, n)) {
        fwrite(b, 1, n, stdout);
        if (b[n - 1] != '\n')
            putchar('\n');
        return;
    }
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    putchar('\n');
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

static int load_input(const struct run_opts *o, unsigned char **in, size_t *len)
{
    *in = NULL;
    *len = 0;
    if (o->in_hex && parse_hex(o->in_hex, in, len) != 0) {
        fprintf(stderr, "nub: --in wants an even number of hex digits\n");
        return -1;
    }
    if (o->in_file && read_all(o->in_file, in, len) != 0) {
        fprintf(stderr, "nub: cannot read %s: %s\n", o->in_file, strerror(errno));
        return -1;
    }
    if (o->in_text) {
        *len = strlen(o->in_text);
        *in = (unsigned char *)strdup(o->in_text);
        if (*in == NULL)
            return -1;
    }
    return 0;
}

static int fail(const char *what, nub_status rc, const struct nub_error *e)
{
    fprintf(stderr, "nub: %s failed: %s\n", what, nub_strerror(rc));
    if (e != NULL && e->message[0])
        fprintf(stderr, "nub: %s\n", e->message);
    return 1;
}

/* A sandbox from a snapshot file (backend and log level from cfg). */
static nub_status sandbox_from_file(const char *path, const struct nub_config *cfg, nub_sandbox **sb,
                                    struct nub_error *err)
{
    nub_snapshot *snap = NULL;
    nub_status rc = nub_snapshot_load(path, &snap, err);
    if (rc == NUB_OK)
        rc = nub_sandbox_new_from_snapshot(snap, cfg, sb, err);
    nub_snapshot_release(snap);
    return rc;
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

static int do_run(struct run_opts *o)
{
    struct nub_config cfg;
    struct nub_error err;
    nub_sandbox *sb = NULL;
    unsigned char *in = NULL, *out = NULL;
    size_t in_len = 0, out_len = 0;
    int status = 1;
    static uint32_t log_level = NUB_LOG_LEVEL_TRACE;
    static struct log_filter lf;
    nub_config_default(&cfg);
    if (o->verbose)
        cfg.max_guest_log_level = NUB_LOG_LEVEL_TRACE;
    if (o->log_level && nub_log_level_parse(o->log_level, &log_level) != NUB_OK) {
        fprintf(stderr, "nub: unknown log level '%s' (error, warn, info, debug, trace)\n", o->log_level);
        return 2;
    }
    lf = (struct log_filter){o->quiet, o->log_level != NULL, log_level};
    if (o->log_level) {
        cfg.max_guest_log_level = log_level;
        nub_set_default_log(log_to_stderr, &lf, log_level); /* creation-time lines too */
    }
    if (o->core_dir) {
        cfg.guest_core_dump = 1;
        cfg.core_dump_dir = o->core_dir;
    }
    if (o->backend && parse_backend(o->backend, &cfg.backend) != 0) {
        fprintf(stderr, "nub: unknown backend '%s' (auto, kvm or emu)\n", o->backend);
        return 2;
    }
    if (o->gdb && parse_gdb_port(o->gdb, &cfg.gdb_port) != 0) {
        fprintf(stderr, "nub: --gdb wants a port from 1 to 65535 or 'any', not '%s'\n", o->gdb);
        return 2;
    }
    if (load_input(o, &in, &in_len) != 0)
        return 2;
    nub_status rc = o->snapshot ? sandbox_from_file(o->snapshot, &cfg, &sb, &err)
                                : nub_sandbox_new_from_file(o->guest, NULL, &cfg, &sb, &err);
    if (rc != NUB_OK) {
        status = fail("creating the sandbox", rc, &err);
        goto out;
    }
    if (nub_sandbox_gdb_port(sb) != 0)
        fprintf(stderr, "nub: waiting for gdb: gdb %s -ex 'target remote 127.0.0.1:%u'\n",
                o->guest ? o->guest : "GUEST.elf", nub_sandbox_gdb_port(sb));
    nub_sandbox_set_log(sb, log_to_stderr, &lf);
    if (o->verbose)
        fprintf(stderr, "nub: sandbox %llx on the %s backend\n",
                (unsigned long long)nub_sandbox_id(sb), nub_backend_name(nub_sandbox_backend(sb)));
    if (o->snapshot) {
        nub_snapshot *snap = NULL;
        o->snapshot_ready = nub_snapshot_load(o->snapshot, &snap, NULL) == NUB_OK && nub_snapshot_is_evolved(snap);
        nub_snapshot_release(snap);
    }
    if (!o->snapshot_ready && (rc = nub_sandbox_evolve(sb)) != NUB_OK) {
        status = fail("guest init", rc, nub_sandbox_last_error(sb));
        goto out;
    }
    rc = nub_call(sb, (uint32_t)o->fn_id, in, in_len, &out, &out_len);
    if (rc != NUB_OK) {
        status = fail("the call", rc, nub_sandbox_last_error(sb));
        goto out;
    }
    print_result(out, out_len);
    status = 0;
out:
    if (o->metrics && sb != NULL)
        print_metrics(sb);
    nub_buffer_free(out);
    free(in);
    nub_sandbox_destroy(sb);
    return status;
}

static int parse_run(int argc, char **argv, struct run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->fn_id = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(a, "--call") == 0 && v) {
            char *end;
            o->fn_id = strtol(v, &end, 0);
            if (*end || o->fn_id < 0 || o->fn_id > (long)UINT32_MAX)
                return -1;
        } else if (strcmp(a, "--in") == 0 && v) {
            o->in_hex = v;
        } else if (strcmp(a, "--in-file") == 0 && v) {
            o->in_file = v;
        } else if (strcmp(a, "--in-text") == 0 && v) {
            o->in_text = v;
        } else if (strcmp(a, "--backend") == 0 && v) {
            o->backend = v;
        } else if (strcmp(a, "--snapshot") == 0 && v) {
            o->snapshot = v;
        } else if (strcmp(a, "--gdb") == 0 && v) {
            o->gdb = v;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbose = 1;
            takes = 0;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = 1;
            takes = 0;
        } else if (strcmp(a, "--metrics") == 0) {
            o->metrics = 1;
            takes = 0;
        } else if (strcmp(a, "--core-dump") == 0 && v) {
            o->core_dir = v;
        } else if (strcmp(a, "--log") == 0 && v) {
            o->log_level = v;
        } else if (a[0] != '-' && o->guest == NULL) {
            o->guest = a;
            takes = 0;
        } else {
            return -1;
        }
        i += takes;
    }
    int inputs = !!o->in_hex + !!o->in_file + !!o->in_text;
    return !o->guest != !o->snapshot && o->fn_id >= 0 && inputs <= 1 ? 0 : -1;
}

/* ---- info ----------------------------------------------------------------- */

/* Print s as a JSON string literal. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

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
    json_str(kvm->reason);
    printf(", \"api_version\": %d, \"modules\": ", kvm->kvm_api_version);
    json_str(kvm->kvm_modules);
    printf(", \"cpu_vendor\": ");
    json_str(kvm->cpu_vendor);
    printf(", \"vmx\": %s, \"svm\": %s, \"probe\": {\"ran\": %s, \"passed\": %s, \"ns\": %llu}},\n",
           kvm->cpu_vmx ? "true" : "false", kvm->cpu_svm ? "true" : "false", kvm->probe_ran ? "true" : "false",
           kvm->probe_passed ? "true" : "false", (unsigned long long)kvm->probe_ns);
    printf(" \"emu\": {\"usable\": %s, \"reason\": ", emu->usable ? "true" : "false");
    json_str(emu->reason);
    printf(", \"unicorn_version\": ");
    json_str(emu->unicorn_version);
    printf(", \"isolation\": false},\n");
}

static int do_info(int argc, char **argv)
{
    struct nub_backend_info kvm, emu;
    int json = argc == 3 && strcmp(argv[2], "--json") == 0;
    if (argc > 3 || (argc == 3 && !json)) {
        usage(stderr);
        return 2;
    }
    if (nub_backend_info(NUB_BACKEND_KVM, &kvm) != NUB_OK || nub_backend_info(NUB_BACKEND_EMU, &emu) != NUB_OK) {
        fprintf(stderr, "nub: nub_backend_info failed\n");
        return 1;
    }
    enum nub_backend pick;
    const char *how = default_backend(&pick);
    if (json) {
        info_json(&kvm, &emu);
        printf(" \"default\": ");
        json_str(how ? nub_backend_name(pick) : "");
        printf(", \"default_from\": ");
        json_str(how ? how : "invalid NUB_BACKEND");
        printf("}\n");
        return how ? 0 : 1;
    }
    info_text(&kvm, &emu);
    if (how == NULL) {
        printf("default: none: NUB_BACKEND='%s' is not a backend (auto, kvm or emu)\n", getenv("NUB_BACKEND"));
        return 1;
    }
    printf("default: %s (%s)\n", nub_backend_name(pick), how);
    if (pick == NUB_BACKEND_EMU)
        printf("note: the emu backend is for development and CI; it is not an isolation boundary."
               " In production, ask for kvm explicitly (NUB_BACKEND=kvm or --backend kvm)\n");
    return 0;
}

/* ---- caps ----------------------------------------------------------------- */

/* One FILE argument of `nub caps`: its DATA cap encoding. */
struct cap_file {
    const char *path;
    uint8_t *enc; /* NULL when the file could not be read or encoded */
    size_t len;
};

static void print_hash(const uint8_t hash[NUB_CAP_HASH_LEN], const char *path)
{
    for (size_t i = 0; i < NUB_CAP_HASH_LEN; i++)
        printf("%02x", hash[i]);
    printf("  %s\n", path);
}

/* Read `path` and encode it as a DATA cap; 0 or -1 (reported). */
static int load_cap_file(struct cap_file *f)
{
    unsigned char *bytes = NULL;
    size_t n = 0;
    struct nub_cap c;
    f->enc = NULL;
    if (read_all(f->path, &bytes, &n) != 0) {
        fprintf(stderr, "nub: cannot read %s: %s\n", f->path, strerror(errno));
        return -1;
    }
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
        return -1;
    }
    return 0;
}

/* Path of the nubk kernel (see usage); writes into buf. */
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
static nub_sandbox *caps_sandbox(const char *kernel, const char *backend, const struct cap_file *files,
                                 size_t nfiles)
{
    struct nub_config cfg;
    struct nub_nubk_config kcfg;
    struct nub_init_data init;
    struct nub_error err;
    nub_sandbox *sb = NULL;
    uint64_t capacity = NUB_CDIR_MIN_CAPACITY, arena = 4096, max_len = 64;
    nub_config_default(&cfg);
    if (backend && parse_backend(backend, &cfg.backend) != 0) {
        fprintf(stderr, "nub: unknown backend '%s' (auto, kvm or emu)\n", backend);
        return NULL;
    }
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
    nub_sandbox_set_log(sb, log_to_stderr, NULL);
    if ((rc = nub_sandbox_evolve(sb)) != NUB_OK) {
        fail("nubk init", rc, nub_sandbox_last_error(sb));
        nub_sandbox_destroy(sb);
        return NULL;
    }
    return sb;
}

static int do_caps(int argc, char **argv)
{
    const char *kernel = NULL, *backend = NULL;
    int put = argc >= 3 && strcmp(argv[2], "put") == 0, status = 0;
    if (argc < 3 || (!put && strcmp(argv[2], "hash") != 0)) {
        usage(stderr);
        return 2;
    }
    struct cap_file *files = calloc((size_t)argc, sizeof *files);
    size_t n = 0;
    for (int i = 3; i < argc; i++) {
        if (put && strcmp(argv[i], "--kernel") == 0 && i + 1 < argc)
            kernel = argv[++i];
        else if (put && strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            backend = argv[++i];
        else
            files[n++].path = argv[i];
    }
    if (n == 0) {
        usage(stderr);
        free(files);
        return 2;
    }
    for (size_t i = 0; i < n; i++)
        status |= load_cap_file(&files[i]) != 0;
    char kbuf[4200];
    nub_sandbox *sb = put ? caps_sandbox(nubk_path(kernel, kbuf, sizeof kbuf), backend, files, n) : NULL;
    if (put && sb == NULL)
        status = 1;
    for (size_t i = 0; i < n && (!put || sb != NULL); i++) {
        uint8_t hash[NUB_CAP_HASH_LEN];
        if (files[i].enc == NULL)
            continue;
        nub_status rc = put ? nub_put_cap(sb, files[i].enc, files[i].len, hash)
                            : nub_cap_hash_bytes(files[i].enc, files[i].len, hash);
        if (rc == NUB_OK) {
            print_hash(hash, files[i].path);
        } else {
            const struct nub_error *e = put ? nub_sandbox_last_error(sb) : NULL;
            fprintf(stderr, "nub: %s: %s%s%s\n", files[i].path, nub_strerror(rc), e ? ": " : "",
                    e ? e->message : "");
            status = 1;
        }
    }
    nub_sandbox_destroy(sb);
    for (size_t i = 0; i < n; i++)
        free(files[i].enc);
    free(files);
    return status;
}

/* ---- snapshots ------------------------------------------------------------- */

static void print_hex(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
}

/* Run the set-up calls of `nub snapshot` (argv from `first`): --call FN [--in ...] each. */
static int setup_calls(nub_sandbox *sb, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--call") != 0)
            continue;
        struct run_opts o;
        memset(&o, 0, sizeof o);
        char *end;
        long fn = i + 1 < argc ? strtol(argv[i + 1], &end, 0) : -1;
        if (fn < 0 || fn > (long)UINT32_MAX || *end)
            return 2;
        for (int j = i + 2; j + 1 < argc && strcmp(argv[j], "--call") != 0; j += 2) {
            if (strcmp(argv[j], "--in") == 0) o.in_hex = argv[j + 1];
            else if (strcmp(argv[j], "--in-text") == 0) o.in_text = argv[j + 1];
            else if (strcmp(argv[j], "--in-file") == 0) o.in_file = argv[j + 1];
            else break;
        }
        unsigned char *in = NULL, *out = NULL;
        size_t in_len = 0, out_len = 0;
        if (load_input(&o, &in, &in_len) != 0)
            return 2;
        nub_status rc = nub_call(sb, (uint32_t)fn, in, in_len, &out, &out_len);
        free(in);
        nub_buffer_free(out);
        if (rc != NUB_OK)
            return fail("a set-up call", rc, nub_sandbox_last_error(sb));
    }
    return 0;
}

/* Evolve a sandbox from `pre`, run the set-up calls, capture it into *out. */
static int evolve_and_capture(nub_snapshot *pre, const struct nub_config *cfg, int argc, char **argv,
                              nub_snapshot **out)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_snapshot(pre, cfg, &sb, &err);
    if (rc != NUB_OK)
        return fail("creating the sandbox", rc, &err);
    nub_sandbox_set_log(sb, log_to_stderr, NULL);
    int status = 0;
    if ((rc = nub_sandbox_evolve(sb)) != NUB_OK)
        status = fail("guest init", rc, nub_sandbox_last_error(sb));
    if (status == 0)
        status = setup_calls(sb, argc, argv);
    if (status == 0 && (rc = nub_sandbox_snapshot(sb, out)) != NUB_OK)
        status = fail("capturing the sandbox", rc, nub_sandbox_last_error(sb));
    nub_sandbox_destroy(sb);
    return status;
}

static int do_snapshot(int argc, char **argv)
{
    const char *guest = NULL, *path = NULL, *backend = NULL;
    int evolve = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) path = argv[++i];
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) backend = argv[++i];
        else if (strcmp(argv[i], "--evolve") == 0) evolve = 1;
        else if (strcmp(argv[i], "--call") == 0 && i + 1 < argc) evolve = 1, i++;
        else if ((strcmp(argv[i], "--in") == 0 || strcmp(argv[i], "--in-text") == 0 ||
                  strcmp(argv[i], "--in-file") == 0) && i + 1 < argc) i++;
        else if (argv[i][0] != '-' && guest == NULL) guest = argv[i];
        else guest = NULL, i = argc;
    }
    struct nub_config cfg;
    nub_config_default(&cfg);
    if (guest == NULL || path == NULL || (backend && parse_backend(backend, &cfg.backend) != 0)) {
        usage(stderr);
        return 2;
    }
    struct nub_error err;
    nub_snapshot *pre = NULL, *snap = NULL;
    nub_status rc = nub_snapshot_from_file(guest, NULL, &cfg, &pre, &err);
    if (rc != NUB_OK)
        return fail("building the snapshot", rc, &err);
    int status = evolve ? evolve_and_capture(pre, &cfg, argc, argv, &snap) : 0;
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

/* `nub info FILE`: verify a snapshot file and describe it. */
static int do_info_file(const char *path)
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
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "info") == 0 && argv[2][0] != '-')
        return do_info_file(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "snapshot") == 0)
        return do_snapshot(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "info") == 0)
        return do_info(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "caps") == 0)
        return do_caps(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "run") == 0) {
        struct run_opts o;
        if (parse_run(argc, argv, &o) != 0) {
            usage(stderr);
            return 2;
        }
        return do_run(&o);
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
