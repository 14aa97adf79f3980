/* The nub command-line tool: run a guest function, report which backends work here, hash and publish caps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nub/abi.h"
#include "nub/cap.h"
#include "nub/nub.h"

struct run_opts {
    const char *guest;
    const char *in_hex;
    const char *in_file;
    const char *in_text;
    const char *backend;
    const char *gdb;
    long fn_id;
    int verbose;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: nub run GUEST.elf --call FN_ID [--in HEX | --in-text TEXT | --in-file FILE]\n"
            "               [--backend auto|kvm|emu] [--gdb PORT|any] [--verbose]\n"
            "       nub info\n"
            "       nub caps hash FILE...\n"
            "       nub caps put [--kernel NUBK.elf] [--backend auto|kvm|emu] FILE...\n"
            "\n"
            "run   create a sandbox from GUEST.elf, evolve it, call FN_ID with the input\n"
            "      and print the result: as text when it is printable, else as hex.\n"
            "      --gdb: wait for gdb on 127.0.0.1:PORT (any: a free port) before the\n"
            "      guest's first instruction; prints the gdb command to use on stderr.\n"
            "info  print which backends are usable here, and why not.\n"
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

static void log_to_stderr(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    static const char *const names[] = {"off", "error", "warn", "info", "debug", "trace"};
    const char *who = src == NUB_LOG_SRC_GUEST ? "guest" : src == NUB_LOG_SRC_PRINT ? "guest console" : "nub";
    (void)ctx;
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

static int do_run(const struct run_opts *o)
{
    struct nub_config cfg;
    struct nub_error err;
    nub_sandbox *sb = NULL;
    unsigned char *in = NULL, *out = NULL;
    size_t in_len = 0, out_len = 0;
    int status = 1;
    nub_config_default(&cfg);
    if (o->verbose)
        cfg.max_guest_log_level = NUB_LOG_LEVEL_TRACE;
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
    nub_status rc = nub_sandbox_new_from_file(o->guest, NULL, &cfg, &sb, &err);
    if (rc != NUB_OK) {
        status = fail("creating the sandbox", rc, &err);
        goto out;
    }
    if (nub_sandbox_gdb_port(sb) != 0)
        fprintf(stderr, "nub: waiting for gdb: gdb %s -ex 'target remote 127.0.0.1:%u'\n", o->guest,
                nub_sandbox_gdb_port(sb));
    nub_sandbox_set_log(sb, log_to_stderr, NULL);
    if (o->verbose)
        fprintf(stderr, "nub: sandbox %llx on the %s backend\n",
                (unsigned long long)nub_sandbox_id(sb), nub_backend_name(nub_sandbox_backend(sb)));
    if ((rc = nub_sandbox_evolve(sb)) != NUB_OK) {
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
    nub_free(out);
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
        } else if (strcmp(a, "--gdb") == 0 && v) {
            o->gdb = v;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbose = 1;
            takes = 0;
        } else if (a[0] != '-' && o->guest == NULL) {
            o->guest = a;
            takes = 0;
        } else {
            return -1;
        }
        i += takes;
    }
    int inputs = !!o->in_hex + !!o->in_file + !!o->in_text;
    return o->guest && o->fn_id >= 0 && inputs <= 1 ? 0 : -1;
}

static int do_info(void)
{
    static const enum nub_backend all[] = {NUB_BACKEND_KVM, NUB_BACKEND_EMU};
    char why[256];
    for (size_t i = 0; i < 2; i++) {
        nub_status rc = nub_backend_available(all[i], why, sizeof why);
        printf("%-4s %s%s%s\n", nub_backend_name(all[i]), rc == NUB_OK ? "available" : "unavailable",
               rc == NUB_OK ? "" : ": ", rc == NUB_OK ? "" : why);
    }
    struct nub_config cfg;
    nub_config_default(&cfg);
    enum nub_backend pick = cfg.backend;
    if (pick == NUB_BACKEND_AUTO)
        pick = nub_backend_available(NUB_BACKEND_KVM, NULL, 0) == NUB_OK ? NUB_BACKEND_KVM : NUB_BACKEND_EMU;
    printf("default: %s%s\n", nub_backend_name(pick), cfg.backend == NUB_BACKEND_AUTO ? " (auto)" : " (NUB_BACKEND)");
    if (pick == NUB_BACKEND_EMU)
        printf("note: the emu backend is for development and CI; it is not an isolation boundary\n");
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

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "info") == 0)
        return do_info();
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
