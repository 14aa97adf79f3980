/* The nub command-line tool: run a guest function, report which backends work here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nub/abi.h"
#include "nub/nub.h"

struct run_opts {
    const char *guest;
    const char *in_hex;
    const char *in_file;
    const char *in_text;
    const char *backend;
    long fn_id;
    int verbose;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: nub run GUEST.elf --call FN_ID [--in HEX | --in-text TEXT | --in-file FILE]\n"
            "               [--backend auto|kvm|emu] [--verbose]\n"
            "       nub info\n"
            "\n"
            "run   create a sandbox from GUEST.elf, evolve it, call FN_ID with the input\n"
            "      and print the result: as text when it is printable, else as hex.\n"
            "info  print which backends are usable here, and why not.\n");
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
    if (load_input(o, &in, &in_len) != 0)
        return 2;
    nub_status rc = nub_sandbox_new_from_file(o->guest, NULL, &cfg, &sb, &err);
    if (rc != NUB_OK) {
        status = fail("creating the sandbox", rc, &err);
        goto out;
    }
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

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "info") == 0)
        return do_info();
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
