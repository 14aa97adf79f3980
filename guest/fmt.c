/* Guest printf-style formatter: %d %i %u %x %X %p %s %c %% with flags, width, precision and length modifiers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Bounded output: counts every byte, stores those that fit. */
struct sink {
    char *buf;
    size_t cap;
    size_t len;
};

/* A parsed conversion specification. */
struct spec {
    int left;         /* '-' */
    int zero;         /* '0' */
    size_t width;
    int has_prec;
    size_t prec;
    int length;       /* LEN_* */
    char conv;
};

enum { LEN_INT, LEN_CHAR, LEN_SHORT, LEN_LONG, LEN_LLONG, LEN_SIZE, LEN_MAX, LEN_PTRDIFF };

static void put(struct sink *s, char c)
{
    if (s->len < s->cap)
        s->buf[s->len] = c;
    s->len++;
}

static void put_n(struct sink *s, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(s, c);
}

static void put_str(struct sink *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(s, p[i]);
}

static size_t parse_num(const char **fmt)
{
    size_t v = 0;
    while (**fmt >= '0' && **fmt <= '9') {
        v = v * 10u + (size_t)(**fmt - '0');
        (*fmt)++;
    }
    return v;
}

static void parse_flags(const char **fmt, struct spec *sp)
{
    for (;; (*fmt)++) {
        if (**fmt == '-')
            sp->left = 1;
        else if (**fmt == '0')
            sp->zero = 1;
        else
            return;
    }
}

static void parse_width_prec(const char **fmt, struct spec *sp, va_list *ap)
{
    if (**fmt == '*') {
        int w = va_arg(*ap, int);
        if (w < 0) {
            sp->left = 1;
            w = -w;
        }
        sp->width = (size_t)w;
        (*fmt)++;
    } else {
        sp->width = parse_num(fmt);
    }
    if (**fmt != '.')
        return;
    (*fmt)++;
    sp->has_prec = 1;
    if (**fmt == '*') {
        int p = va_arg(*ap, int);
        sp->has_prec = p >= 0;
        sp->prec = p >= 0 ? (size_t)p : 0;
        (*fmt)++;
    } else {
        sp->prec = parse_num(fmt);
    }
}

static void parse_length(const char **fmt, struct spec *sp)
{
    const char *f = *fmt;
    if (f[0] == 'h' && f[1] == 'h') {
        sp->length = LEN_CHAR;
        f += 2;
    } else if (f[0] == 'l' && f[1] == 'l') {
        sp->length = LEN_LLONG;
        f += 2;
    } else if (f[0] == 'h' || f[0] == 'l' || f[0] == 'z' || f[0] == 'j' || f[0] == 't') {
        sp->length = f[0] == 'h' ? LEN_SHORT : f[0] == 'l' ? LEN_LONG
                   : f[0] == 'z' ? LEN_SIZE : f[0] == 'j' ? LEN_MAX : LEN_PTRDIFF;
        f++;
    }
    *fmt = f;
}

static int64_t get_signed(int length, va_list *ap)
{
    switch (length) {
    case LEN_CHAR: return (signed char)va_arg(*ap, int);
    case LEN_SHORT: return (short)va_arg(*ap, int);
    case LEN_LONG: return va_arg(*ap, long);
    case LEN_LLONG: return va_arg(*ap, long long);
    case LEN_SIZE: return (int64_t)va_arg(*ap, size_t);
    case LEN_MAX: return va_arg(*ap, intmax_t);
    case LEN_PTRDIFF: return va_arg(*ap, ptrdiff_t);
    default: return va_arg(*ap, int);
    }
}

static uint64_t get_unsigned(int length, va_list *ap)
{
    switch (length) {
    case LEN_CHAR: return (unsigned char)va_arg(*ap, unsigned int);
    case LEN_SHORT: return (unsigned short)va_arg(*ap, unsigned int);
    case LEN_LONG: return va_arg(*ap, unsigned long);
    case LEN_LLONG: return va_arg(*ap, unsigned long long);
    case LEN_SIZE: return va_arg(*ap, size_t);
    case LEN_MAX: return va_arg(*ap, uintmax_t);
    case LEN_PTRDIFF: return (uint64_t)va_arg(*ap, ptrdiff_t);
    default: return va_arg(*ap, unsigned int);
    }
}

/* Digits of v in `base` into the end of tmp[24]; returns the first digit. */
static const char *digits(uint64_t v, unsigned base, int upper, char tmp[24])
{
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *p = tmp + 24;
    do {
        *--p = set[v % base];
        v /= base;
    } while (v != 0);
    return p;
}

/* Emit sign/prefix, zero or space padding and the digits. */
static void emit_number(struct sink *s, const struct spec *sp, const char *prefix,
                        const char *dig, size_t ndig)
{
    size_t npre = 0;
    while (prefix[npre] != '\0')
        npre++;
    if (sp->has_prec && sp->prec == 0 && ndig == 1 && dig[0] == '0')
        ndig = 0; /* "%.0d" of zero prints nothing */
    size_t zeros = sp->has_prec && sp->prec > ndig ? sp->prec - ndig : 0;
    size_t body = npre + zeros + ndig;
    size_t pad = sp->width > body ? sp->width - body : 0;
    if (sp->zero && !sp->left && !sp->has_prec) {
        zeros += pad;
        pad = 0;
    }
    if (!sp->left)
        put_n(s, ' ', pad);
    put_str(s, prefix, npre);
    put_n(s, '0', zeros);
    put_str(s, dig, ndig);
    if (sp->left)
        put_n(s, ' ', pad);
}

static void emit_padded(struct sink *s, const struct spec *sp, const char *p, size_t n)
{
    size_t pad = sp->width > n ? sp->width - n : 0;
    if (!sp->left)
        put_n(s, ' ', pad);
    put_str(s, p, n);
    if (sp->left)
        put_n(s, ' ', pad);
}

static void conv_signed(struct sink *s, const struct spec *sp, va_list *ap)
{
    int64_t v = get_signed(sp->length, ap);
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char tmp[24];
    const char *d = digits(mag, 10, 0, tmp);
    emit_number(s, sp, v < 0 ? "-" : "", d, (size_t)(tmp + 24 - d));
}

static void conv_unsigned(struct sink *s, const struct spec *sp, va_list *ap)
{
    uint64_t v = get_unsigned(sp->length, ap);
    unsigned base = sp->conv == 'u' ? 10u : 16u;
    char tmp[24];
    const char *d = digits(v, base, sp->conv == 'X', tmp);
    emit_number(s, sp, "", d, (size_t)(tmp + 24 - d));
}

static void conv_pointer(struct sink *s, const struct spec *sp, va_list *ap)
{
    uint64_t v = (uint64_t)(uintptr_t)va_arg(*ap, void *);
    char tmp[24];
    const char *d = digits(v, 16, 0, tmp);
    struct spec p = *sp;
    p.has_prec = 1;
    p.prec = 16;
    emit_number(s, &p, "0x", d, (size_t)(tmp + 24 - d));
}

static void conv_string(struct sink *s, const struct spec *sp, va_list *ap)
{
    const char *str = va_arg(*ap, const char *);
    if (str == NULL)
        str = "(null)";
    size_t n = 0;
    while ((!sp->has_prec || n < sp->prec) && str[n] != '\0')
        n++;
    emit_padded(s, sp, str, n);
}

static void convert(struct sink *s, const struct spec *sp, va_list *ap)
{
    char c;
    switch (sp->conv) {
    case 'd': case 'i': conv_signed(s, sp, ap); break;
    case 'u': case 'x': case 'X': conv_unsigned(s, sp, ap); break;
    case 'p': conv_pointer(s, sp, ap); break;
    case 's': conv_string(s, sp, ap); break;
    case 'c':
        c = (char)va_arg(*ap, int);
        emit_padded(s, sp, &c, 1);
        break;
    case '%': put(s, '%'); break;
    default: /* unknown conversion: print it as written */
        put(s, '%');
        if (sp->conv != '\0')
            put(s, sp->conv);
        break;
    }
}

size_t nub_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    struct sink s = {.buf = buf, .cap = buf == NULL ? 0 : cap, .len = 0};
    va_list args;
    va_copy(args, ap);
    while (*fmt != '\0') {
        if (*fmt != '%') {
            put(&s, *fmt++);
            continue;
        }
        fmt++;
        struct spec sp = {0};
        parse_flags(&fmt, &sp);
        parse_width_prec(&fmt, &sp, &args);
        parse_length(&fmt, &sp);
        sp.conv = *fmt;
        if (*fmt != '\0')
            fmt++;
        convert(&s, &sp, &args);
    }
    va_end(args);
    return s.len;
}

size_t nub_format(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = nub_vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

size_t nub_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    if (buf == NULL || cap == 0)
        return nub_vformat(NULL, 0, fmt, ap);
    size_t n = nub_vformat(buf, cap - 1, fmt, ap);
    buf[n < cap - 1 ? n : cap - 1] = '\0';
    return n;
}

size_t nub_snprintf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = nub_vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}
