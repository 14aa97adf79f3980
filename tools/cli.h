/* Shared parts of the nub CLI: option parsing and usage errors (cli_args.c), result output and JSON (cli_output.c). */
#ifndef NUB_CLI_H
#define NUB_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses (documented in tools/nub.help). */
#define NUB_CLI_OK 0
#define NUB_CLI_FAILED 1 /* runtime failure: the guest or the library failed */
#define NUB_CLI_USAGE 2  /* usage error */

/* ---- options (cli_args.c) ------------------------------------------------ */

/* One option a command accepts; a command's table ends with {NULL}. */
struct nub_cli_opt {
    const char *name;  /* "--call" */
    const char *alias; /* "-o", or NULL */
    const char *value; /* its value's name ("FN"); NULL for a flag */
    int repeatable;    /* may be given more than once (each occurrence is kept) */
};

/* One command-line argument after parsing, in command-line order. */
struct nub_cli_arg {
    int opt;           /* index into the table, or -1 for a positional argument */
    const char *value; /* the option's value or the argument; NULL for a flag */
};

struct nub_cli_args {
    const char *command; /* "run", "caps put": names the help page in hints */
    const struct nub_cli_opt *opts;
    struct nub_cli_arg *v;
    size_t n;
    int help; /* -h/--help was given: print the command's help and exit 0 */
};

/*
 * Parse argv[0..argc) (the arguments after the command's name) against
 * `opts`. Options take their value from the next argument or after '=';
 * "--" ends the options. Stops at -h/--help (sets help). Returns 0, or
 * NUB_CLI_USAGE after printing the error (unknown option, missing value,
 * an option given twice). Free with nub_cli_args_free().
 */
int nub_cli_parse(const char *command, const struct nub_cli_opt *opts, int argc, char **argv,
                  struct nub_cli_args *out);
void nub_cli_args_free(struct nub_cli_args *a);

/* The value of option `name` ("--call"; its last occurrence), or NULL when it was not given or is a flag. */
const char *nub_cli_value(const struct nub_cli_args *a, const char *name);
/* 1 when option `name` was given. */
int nub_cli_given(const struct nub_cli_args *a, const char *name);
/* The options `names` (NULL-terminated) given together: NUB_CLI_USAGE naming the first two given, else 0. */
int nub_cli_exclusive(const struct nub_cli_args *a, const char *const *names);
/* The name of argument i's option ("" for a positional argument). */
const char *nub_cli_name(const struct nub_cli_args *a, size_t i);

/* Print "nub: MESSAGE; see 'nub COMMAND --help'" on stderr; returns NUB_CLI_USAGE. */
int nub_cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* OPTION's value as a u32 (decimal or 0x-hex) in [min, max]; else NUB_CLI_USAGE with a message naming it. */
int nub_cli_u32(const char *command, const char *option, const char *value, uint32_t min, uint32_t max,
                uint32_t *out);
/* OPTION's value as a size: digits with an optional K, M or G suffix (powers of 1024), overflow-checked. */
int nub_cli_size(const char *command, const char *option, const char *value, uint64_t *out);

/* Read a whole file; 0, or -1 with errno set. *out is malloc'd (free it), never NULL on success. */
int nub_cli_read_file(const char *path, unsigned char **out, size_t *len);
/* Parse an even number of hex digits; 0 or -1. *out is malloc'd, never NULL on success. */
int nub_cli_parse_hex(const char *s, unsigned char **out, size_t *len);

/* ---- output (cli_output.c) ----------------------------------------------- */

enum nub_cli_format {
    NUB_CLI_FORMAT_AUTO, /* text when every byte is printable, else hex */
    NUB_CLI_FORMAT_HEX,
    NUB_CLI_FORMAT_TEXT, /* non-printable bytes as \xNN */
    NUB_CLI_FORMAT_RAW,
};

/* 1 when every byte is printable ASCII, a newline or a tab (and there is at least one). */
int nub_cli_printable(const unsigned char *b, size_t n);
/* Write b in `fmt` to f (AUTO and TEXT end with a newline, HEX too). */
void nub_cli_write_result(FILE *f, enum nub_cli_format fmt, const unsigned char *b, size_t n);
/* Write n bytes as lowercase hex digits. */
void nub_cli_write_hex(FILE *f, const unsigned char *b, size_t n);
/* Write s as a JSON string literal; n bytes (s need not be NUL-terminated). */
void nub_cli_json_string(FILE *f, const char *s, size_t n);

/* The p-th percentile (0 < p <= 100, nearest rank) of n >= 1 values, which it sorts. */
uint64_t nub_cli_percentile(uint64_t *v, size_t n, unsigned p);

#endif /* NUB_CLI_H */
