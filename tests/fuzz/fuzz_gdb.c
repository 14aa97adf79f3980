/* libFuzzer target: the gdb stub's packet parser (framing, checksum, escapes, bounded output) and hex-number parser over an arbitrary byte stream, as the stub reads it. */
#include "fuzz.h"

#include "gdb.h"

/* Input: one byte choosing out_cap (bit 7: the stub's NUB_GDB_PACKET_MAX, else 0..127), then the stream. */
static size_t out_cap_of(uint8_t b)
{
    return (b & 0x80) ? NUB_GDB_PACKET_MAX : (size_t)(b & 0x7f);
}

/* A hex digit's value or -1, by table (independent of the parser's own). */
static int hex_value(uint8_t c)
{
    static const char digits[] = "0123456789abcdefABCDEF";
    const char *d = memchr(digits, c, sizeof digits - 1);
    if (d == NULL)
        return -1;
    return d - digits < 16 ? (int)(d - digits) : (int)(d - digits) - 6;
}

/* The protocol's payload, decoded independently: "}x" is x ^ 0x20; sums every raw byte. */
static size_t unescape(const uint8_t *raw, size_t n, uint8_t *dst, uint8_t *sum)
{
    size_t k = 0;
    *sum = 0;
    for (size_t i = 0; i < n; i++) {
        *sum = (uint8_t)(*sum + raw[i]);
        if (raw[i] == '}' && i + 1 < n) {
            i++;
            *sum = (uint8_t)(*sum + raw[i]);
            dst[k++] = raw[i] ^ 0x20;
        } else {
            dst[k++] = raw[i];
        }
    }
    return k;
}

/* One parse of an exact heap copy of buf[0, len), so that ASan sees any read past it. */
static int parse_exact(const uint8_t *buf, size_t len, uint8_t *out, size_t cap, size_t *out_len, size_t *used)
{
    uint8_t *copy = fuzz_copy(buf, len);
    int rc = nub_gdb_packet_parse(copy, len, out, cap, out_len, used);
    free(copy);
    return rc;
}

/* "$" + escaped payload + "#hh", as a gdb client sends it; returns its length. */
static size_t encode(const uint8_t *payload, size_t n, uint8_t *dst)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    uint8_t sum = 0;
    dst[k++] = '$';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = payload[i];
        if (c == '$' || c == '#' || c == '}' || c == '*') {
            dst[k++] = '}';
            sum = (uint8_t)(sum + '}');
            c ^= 0x20;
        }
        dst[k++] = c;
        sum = (uint8_t)(sum + c);
    }
    dst[k++] = '#';
    dst[k++] = (uint8_t)hex[sum >> 4];
    dst[k++] = (uint8_t)hex[sum & 15];
    return k;
}

/* A packet: framing, payload and checksum as the protocol defines them; it parses the same alone and re-encoded. */
static void check_packet(const uint8_t *p, size_t used, const uint8_t *out, size_t n, size_t cap)
{
    static uint8_t want[NUB_GDB_PACKET_MAX + 8], again[NUB_GDB_PACKET_MAX + 8], enc[2 * NUB_GDB_PACKET_MAX + 8];
    FUZZ_CHECK(used >= 4 && p[0] == '$' && p[used - 3] == '#', "packet framing, %zu bytes", used);
    FUZZ_CHECK(used - 4 <= NUB_GDB_PACKET_MAX, "raw payload of %zu bytes", used - 4);
    for (size_t i = 1; i < used - 3; i++)
        FUZZ_CHECK(p[i] != '$' && p[i] != '#', "'%c' inside the payload at %zu", p[i], i);
    uint8_t sum;
    size_t k = unescape(p + 1, used - 4, want, &sum);
    FUZZ_CHECK(k == n && n <= cap && memcmp(want, out, n) == 0, "payload of %zu bytes, expected %zu", n, k);
    FUZZ_CHECK(hex_value(p[used - 2]) >= 0 && hex_value(p[used - 1]) >= 0 &&
                   (hex_value(p[used - 2]) << 4 | hex_value(p[used - 1])) == sum,
               "checksum %c%c, sum %02x", p[used - 2], p[used - 1], sum);
    size_t n2, used2;
    int rc = parse_exact(p, used, again, cap, &n2, &used2);
    FUZZ_CHECK(rc == NUB_GDB_PKT_OK && used2 == used && n2 == n && memcmp(again, out, n) == 0,
               "the packet alone parses as %d", rc);
    size_t elen = encode(out, n, enc);
    if (elen - 4 > NUB_GDB_PACKET_MAX)
        return;
    rc = parse_exact(enc, elen, again, n, &n2, &used2);
    FUZZ_CHECK(rc == NUB_GDB_PKT_OK && used2 == elen && n2 == n && memcmp(again, out, n) == 0,
               "the re-encoded payload parses as %d", rc);
}

/* A bad checksum: the same bytes with the right checksum are a packet. */
static void check_bad_checksum(const uint8_t *p, size_t used, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    static uint8_t out[NUB_GDB_PACKET_MAX + 8];
    FUZZ_CHECK(used >= 4 && p[0] == '$' && p[used - 3] == '#', "bad-checksum framing");
    uint8_t *fixed = fuzz_copy(p, used), sum;
    unescape(p + 1, used - 4, out, &sum);
    fixed[used - 2] = (uint8_t)hex[sum >> 4];
    fixed[used - 1] = (uint8_t)hex[sum & 15];
    size_t n, used2;
    int rc = nub_gdb_packet_parse(fixed, used, out, cap, &n, &used2);
    FUZZ_CHECK(rc == NUB_GDB_PKT_OK && used2 == used, "with its checksum fixed it parses as %d", rc);
    free(fixed);
}

/* nub_gdb_parse_hex at every position of [s, end): 1..16 digits and their value, or nothing moved. */
static void check_hex(const uint8_t *s, const uint8_t *end)
{
    while (s < end) {
        const uint8_t *p = s;
        uint64_t v = 0x5a5a5a5a5a5a5a5aull;
        size_t digits = 0;
        while (s + digits < end && hex_value(s[digits]) >= 0)
            digits++;
        int rc = nub_gdb_parse_hex(&p, end, &v);
        if (digits >= 1 && digits <= 16) {
            uint64_t want = 0;
            for (size_t i = 0; i < digits; i++)
                want = want << 4 | (uint64_t)hex_value(s[i]);
            FUZZ_CHECK(rc == 0 && p == s + digits && v == want, "%zu digits: rc %d, %td consumed", digits, rc, p - s);
        } else {
            FUZZ_CHECK(rc == -1 && p == s && v == 0x5a5a5a5a5a5a5a5aull, "%zu digits: rc %d", digits, rc);
        }
        s += digits ? digits : 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cap = out_cap_of(data[0]), len = size - 1;
    uint8_t *stream = fuzz_copy(data + 1, len), *out = malloc(cap ? cap : 1);
    FUZZ_CHECK(out != NULL, "malloc");
    check_hex(stream, stream + len);
    size_t off = 0;
    while (off < len) {
        const uint8_t *p = stream + off; /* [p, stream + len) ends where the allocation does */
        size_t rem = len - off, n = 12345, used = 12345;
        int rc = nub_gdb_packet_parse(p, rem, out, cap, &n, &used);
        FUZZ_CHECK(rc == NUB_GDB_PKT_OK || rc == NUB_GDB_PKT_MORE || rc == NUB_GDB_PKT_BAD_CHECKSUM ||
                       rc == NUB_GDB_PKT_TOO_LONG || rc == NUB_GDB_PKT_MALFORMED,
                   "result %d", rc);
        FUZZ_CHECK(rc == NUB_GDB_PKT_OK || n == 0, "result %d with a %zu-byte payload", rc, n);
        if (rc == NUB_GDB_PKT_MORE) {
            /* Only an unfinished packet waits, and never for more than the stub's receive buffer holds. */
            FUZZ_CHECK(p[0] == '$' && rem <= NUB_GDB_PACKET_MAX + 4, "MORE on %zu bytes starting '%c'", rem, p[0]);
            break;
        }
        FUZZ_CHECK(used >= 1 && used <= rem, "used %zu of %zu", used, rem);
        if (rc == NUB_GDB_PKT_OK) {
            check_packet(p, used, out, n, cap);
            check_hex(out, out + n);
        } else if (rc == NUB_GDB_PKT_BAD_CHECKSUM) {
            check_bad_checksum(p, used, cap);
        } else if (p[0] != '$') {
            FUZZ_CHECK(rc == NUB_GDB_PKT_MALFORMED, "result %d for bytes before a packet", rc);
        }
        /* What is dropped after an error never hides a packet start after the first byte
         * (a '$' read as a checksum digit is consumed with the packet it ends). */
        if (rc != NUB_GDB_PKT_OK)
            for (size_t i = 1; i < used; i++)
                FUZZ_CHECK(p[i] != '$' || (i + 2 >= used && memchr(p, '#', i)),
                           "result %d drops a '$' at %zu of %zu", rc, i, used);
        off += used;
    }
    free(out);
    free(stream);
    return 0;
}
