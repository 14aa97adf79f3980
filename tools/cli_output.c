/* The nub CLI's result formats (auto, hex, text, raw), JSON string literals and call-time percentiles. */
#include <stdlib.h>

#include "cli.h"

static int printable_byte(unsigned char c)
{
    return (c >= 0x20 && c <= 0x7e) || c == '\n' || c == '\t';
}

int nub_cli_printable(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!printable_byte(b[i]))
            return 0;
    return n > 0;
}

void nub_cli_write_hex(FILE *f, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", b[i]);
}

/* Printable bytes as they are, the others as \xNN, then a newline unless the text ends with one. */
static void write_text(FILE *f, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (printable_byte(b[i]))
            fputc(b[i], f);
        else
            fprintf(f, "\\x%02x", b[i]);
    }
    if (n == 0 || b[n - 1] != '\n')
        fputc('\n', f);
}

void nub_cli_write_result(FILE *f, enum nub_cli_format fmt, const unsigned char *b, size_t n)
{
    if (fmt == NUB_CLI_FORMAT_AUTO)
        fmt = nub_cli_printable(b, n) ? NUB_CLI_FORMAT_TEXT : NUB_CLI_FORMAT_HEX;
    switch (fmt) {
    case NUB_CLI_FORMAT_RAW:
        fwrite(b, 1, n, f);
        break;
    case NUB_CLI_FORMAT_TEXT:
        write_text(f, b, n);
        break;
    default:
        nub_cli_write_hex(f, b, n);
        fputc('\n', f);
        break;
    }
}

void nub_cli_json_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t nub_cli_percentile(uint64_t *v, size_t n, unsigned p)
{
    qsort(v, n, sizeof *v, cmp_u64);
    size_t rank = (n * p + 99) / 100; /* nearest rank: ceil(p/100 * n) */
    return v[rank > 0 ? rank - 1 : 0];
}
