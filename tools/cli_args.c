/* The nub CLI's option parser, usage errors that name the bad argument, and number, size, hex and file readers. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int nub_cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    fputs("nub: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see 'nub%s%s --help'\n", command ? " " : "", command ? command : "");
    return NUB_CLI_USAGE;
}

/* The option `arg` names ("--call", "--call=5", "-o"), or -1; *inline_value gets what follows '='. */
static int find_opt(const struct nub_cli_opt *opts, const char *arg, const char **inline_value)
{
    const char *eq = strchr(arg, '=');
    size_t len = eq != NULL && arg[1] == '-' ? (size_t)(eq - arg) : strlen(arg);
    *inline_value = NULL;
    for (int i = 0; opts[i].name != NULL; i++) {
        int long_match = strlen(opts[i].name) == len && strncmp(opts[i].name, arg, len) == 0;
        int short_match = opts[i].alias != NULL && strcmp(opts[i].alias, arg) == 0;
        if (long_match || short_match) {
            if (long_match && len < strlen(arg))
                *inline_value = arg + len + 1;
            return i;
        }
    }
    return -1;
}

static int add_arg(struct nub_cli_args *a, int opt, const char *value)
{
    a->v[a->n].opt = opt;
    a->v[a->n].value = value;
    a->n++;
    return 0;
}

/* One option occurrence at argv[*i]; advances *i past a separate value. */
static int parse_option(struct nub_cli_args *a, int argc, char **argv, int *i)
{
    const char *arg = argv[*i], *value;
    int o = find_opt(a->opts, arg, &value);
    if (o < 0) {
        const char *eq = strchr(arg, '=');
        int len = eq != NULL && arg[1] == '-' ? (int)(eq - arg) : (int)strlen(arg);
        return nub_cli_usage_error(a->command, "unknown option '%.*s'", len, arg);
    }
    const struct nub_cli_opt *spec = &a->opts[o];
    if (!spec->repeatable && nub_cli_given(a, spec->name))
        return nub_cli_usage_error(a->command, "%s given twice", spec->name);
    if (spec->value == NULL) {
        if (value != NULL)
            return nub_cli_usage_error(a->command, "%s takes no value, got '%s'", spec->name, value);
        return add_arg(a, o, NULL);
    }
    if (value == NULL) {
        if (*i + 1 >= argc) /* named as typed: "-o needs a value" */
            return nub_cli_usage_error(a->command, "%s needs a value (%s)", arg, spec->value);
        value = argv[++*i];
    }
    return add_arg(a, o, value);
}

int nub_cli_parse(const char *command, const struct nub_cli_opt *opts, int argc, char **argv,
                  struct nub_cli_args *out)
{
    memset(out, 0, sizeof *out);
    out->command = command;
    out->opts = opts;
    out->v = calloc((size_t)argc + 1, sizeof *out->v);
    if (out->v == NULL) {
        fprintf(stderr, "nub: out of memory\n");
        return NUB_CLI_FAILED;
    }
    int only_positional = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            add_arg(out, -1, arg);
        } else if (strcmp(arg, "--") == 0) {
            only_positional = 1;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            out->help = 1;
            return 0;
        } else if (parse_option(out, argc, argv, &i) != 0) {
            nub_cli_args_free(out);
            return NUB_CLI_USAGE;
        }
    }
    return 0;
}

void nub_cli_args_free(struct nub_cli_args *a)
{
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

const char *nub_cli_name(const struct nub_cli_args *a, size_t i)
{
    return a->v[i].opt >= 0 ? a->opts[a->v[i].opt].name : "";
}

const char *nub_cli_value(const struct nub_cli_args *a, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(nub_cli_name(a, i), name) == 0)
            v = a->v[i].value;
    return v;
}

int nub_cli_given(const struct nub_cli_args *a, const char *name)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(nub_cli_name(a, i), name) == 0)
            return 1;
    return 0;
}

/* 1 when `name` is one of `names`. */
static int listed(const char *name, const char *const *names)
{
    for (; *names != NULL; names++)
        if (strcmp(*names, name) == 0)
            return 1;
    return 0;
}

int nub_cli_exclusive(const struct nub_cli_args *a, const char *const *names)
{
    const char *first = NULL;
    for (size_t i = 0; i < a->n; i++) {
        const char *name = nub_cli_name(a, i);
        if (!listed(name, names) || (first != NULL && strcmp(first, name) == 0))
            continue;
        if (first == NULL)
            first = name;
        else
            return nub_cli_usage_error(a->command, "%s and %s cannot be used together", first, name);
    }
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Digits (decimal, or hex after 0x) into *v, overflow-checked; 0 or -1. */
static int parse_uint(const char *s, uint64_t *v)
{
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (*s == '\0')
        return -1;
    uint64_t n = 0;
    for (; *s; s++) {
        int d = hex_digit(*s);
        if (d < 0 || d >= base || n > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return -1;
        n = n * (uint64_t)base + (uint64_t)d;
    }
    *v = n;
    return 0;
}

int nub_cli_u32(const char *command, const char *option, const char *value, uint32_t min, uint32_t max,
                uint32_t *out)
{
    uint64_t v;
    if (parse_uint(value, &v) != 0)
        return nub_cli_usage_error(command, "%s needs a number, got '%s'", option, value);
    if (v < min || v > max)
        return nub_cli_usage_error(command, "%s needs a number from %u to %u, got '%s'", option, min, max, value);
    *out = (uint32_t)v;
    return 0;
}

int nub_cli_size(const char *command, const char *option, const char *value, uint64_t *out)
{
    size_t n = strlen(value);
    unsigned shift = 0;
    char digits[32];
    if (n > 0 && strchr("kKmMgG", value[n - 1]) != NULL) {
        char s = value[n - 1];
        shift = s == 'k' || s == 'K' ? 10 : s == 'm' || s == 'M' ? 20 : 30;
        n--;
    }
    uint64_t v;
    int ok = n > 0 && n < sizeof digits && value[0] >= '0' && value[0] <= '9';
    if (ok) {
        memcpy(digits, value, n);
        digits[n] = '\0';
        ok = parse_uint(digits, &v) == 0 && v <= (UINT64_MAX >> shift);
    }
    if (!ok)
        return nub_cli_usage_error(command, "%s needs a size such as 65536, 512K or 2M, got '%s'", option, value);
    *out = v << shift;
    return 0;
}

int nub_cli_read_file(const char *path, unsigned char **out, size_t *len)
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
        unsigned char *nb = cap <= SIZE_MAX / 2 ? realloc(b, cap * 2) : NULL;
        if (nb == NULL) {
            free(b);
            b = NULL;
            errno = ENOMEM;
            break;
        }
        b = nb;
        cap *= 2;
    }
    int bad = b == NULL || ferror(f), err = b == NULL ? errno : (errno ? errno : EIO);
    fclose(f);
    if (bad) {
        free(b);
        errno = err;
        return -1;
    }
    *out = b;
    *len = n;
    return 0;
}

int nub_cli_parse_hex(const char *s, unsigned char **out, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2 != 0)
        return -1;
    unsigned char *b = malloc(n / 2 + 1);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
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
