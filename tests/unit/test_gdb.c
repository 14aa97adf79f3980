/* Unit tests for the gdb stub's packet parser and hex reader: framing, checksums, escapes, bounds, malformed input. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "../../host/gdb.h"

/* Parse s (len bytes) into out; returns the result, sets *n and *used. */
static int parse(const char *s, size_t len, uint8_t *out, size_t cap, size_t *n, size_t *used)
{
    return nub_gdb_packet_parse((const uint8_t *)s, len, out, cap, n, used);
}

/* "$payload#hh" with the right checksum. */
static size_t frame(char *buf, size_t cap, const char *payload)
{
    unsigned sum = 0;
    for (const char *p = payload; *p; p++)
        sum += (unsigned char)*p;
    return (size_t)snprintf(buf, cap, "$%s#%02x", payload, sum & 0xff);
}

Test(gdb_parse, valid_packet)
{
    char buf[64];
    uint8_t out[64];
    size_t n, used, len = frame(buf, sizeof buf, "qSupported:swbreak+");
    cr_assert_eq(parse(buf, len, out, sizeof out, &n, &used), NUB_GDB_PKT_OK);
    cr_assert_eq(n, strlen("qSupported:swbreak+"));
    cr_assert_arr_eq(out, "qSupported:swbreak+", n);
    cr_assert_eq(used, len);
}

Test(gdb_parse, empty_packet)
{
    uint8_t out[4];
    size_t n = 99, used;
    cr_assert_eq(parse("$#00", 4, out, sizeof out, &n, &used), NUB_GDB_PKT_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(used, 4);
}

Test(gdb_parse, two_packets_back_to_back)
{
    char buf[64];
    uint8_t out[16];
    size_t n, used, a = frame(buf, sizeof buf, "g");
    frame(buf + a, sizeof buf - a, "?");
    cr_assert_eq(parse(buf, strlen(buf), out, sizeof out, &n, &used), NUB_GDB_PKT_OK);
    cr_assert_eq(used, a, "only the first packet is consumed");
    cr_assert_eq(parse(buf + used, strlen(buf) - used, out, sizeof out, &n, &used), NUB_GDB_PKT_OK);
    cr_assert_eq(out[0], '?');
}

Test(gdb_parse, every_truncation_asks_for_more)
{
    char buf[64];
    uint8_t out[64];
    size_t n, used, len = frame(buf, sizeof buf, "m1000,4");
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(parse(buf, cut, out, sizeof out, &n, &used), NUB_GDB_PKT_MORE, "cut at %zu", cut);
}

Test(gdb_parse, bad_checksum)
{
    uint8_t out[8];
    size_t n, used;
    cr_assert_eq(parse("$g#00", 5, out, sizeof out, &n, &used), NUB_GDB_PKT_BAD_CHECKSUM);
    cr_assert_eq(used, 5, "the whole packet is dropped");
    cr_assert_eq(n, 0);
}

Test(gdb_parse, non_hex_checksum)
{
    uint8_t out[8];
    size_t n, used;
    cr_assert_eq(parse("$g#6z", 5, out, sizeof out, &n, &used), NUB_GDB_PKT_MALFORMED);
    cr_assert_eq(parse("$g#-7", 5, out, sizeof out, &n, &used), NUB_GDB_PKT_MALFORMED);
}

Test(gdb_parse, must_start_with_dollar)
{
    uint8_t out[8];
    size_t n, used;
    cr_assert_eq(parse("+$g#67", 6, out, sizeof out, &n, &used), NUB_GDB_PKT_MALFORMED);
    cr_assert_eq(used, 1, "resync at the next '$'");
    cr_assert_eq(parse("junk", 4, out, sizeof out, &n, &used), NUB_GDB_PKT_MALFORMED);
    cr_assert_eq(used, 4, "nothing worth keeping");
}

Test(gdb_parse, dollar_inside_restarts)
{
    uint8_t out[8];
    size_t n, used;
    cr_assert_eq(parse("$ab$g#67", 8, out, sizeof out, &n, &used), NUB_GDB_PKT_MALFORMED);
    cr_assert_eq(used, 3, "the second '$' starts the next packet");
    cr_assert_eq(parse("$ab$g#67" + used, 8 - used, out, sizeof out, &n, &used), NUB_GDB_PKT_OK);
    cr_assert_eq(out[0], 'g');
}

Test(gdb_parse, escapes)
{
    /* "}]" is ']' ^ 0x20 = '}'; "}\x03" is '#'. The checksum covers the raw bytes. */
    const char raw[] = "X}]}\x03";
    char buf[32];
    uint8_t out[8];
    size_t n, used, len = frame(buf, sizeof buf, raw);
    cr_assert_eq(parse(buf, len, out, sizeof out, &n, &used), NUB_GDB_PKT_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(out[0], 'X');
    cr_assert_eq(out[1], '}');
    cr_assert_eq(out[2], '#');
}

Test(gdb_parse, escape_at_the_end_is_malformed)
{
    uint8_t out[8];
    size_t n, used;
    cr_assert_eq(parse("$a}#dd", 6, out, sizeof out, &n, &used), NUB_GDB_PKT_MALFORMED);
    cr_assert_eq(parse("$a}", 3, out, sizeof out, &n, &used), NUB_GDB_PKT_MORE, "the escaped byte may follow");
}

Test(gdb_parse, output_bound)
{
    char buf[64];
    uint8_t out[8];
    size_t n, used, len = frame(buf, sizeof buf, "123456789");
    cr_assert_eq(parse(buf, len, out, 8, &n, &used), NUB_GDB_PKT_TOO_LONG, "9 bytes do not fit 8");
    uint8_t room[9];
    cr_assert_eq(parse(buf, len, room, sizeof room, &n, &used), NUB_GDB_PKT_OK, "9 bytes fit 9");
    cr_assert_eq(n, 9);
}

Test(gdb_parse, raw_length_bound)
{
    static char buf[NUB_GDB_PACKET_MAX + 64];
    static uint8_t out[2 * NUB_GDB_PACKET_MAX];
    size_t n, used;
    memset(buf, 'a', sizeof buf);
    buf[0] = '$';
    cr_assert_eq(parse(buf, sizeof buf, out, sizeof out, &n, &used), NUB_GDB_PKT_TOO_LONG,
                 "no '#' within PacketSize");
    cr_assert_leq(used, sizeof buf);
    cr_assert_eq(parse(buf, NUB_GDB_PACKET_MAX, out, sizeof out, &n, &used), NUB_GDB_PKT_MORE,
                 "still within the bound: wait for more");
}

/* "$" + `as` 'a's + tail + "#hh" into buf (checksum over the raw bytes); returns its length. */
static size_t frame_run(char *buf, size_t as, const char *tail)
{
    unsigned sum = 0;
    size_t k = 0;
    buf[k++] = '$';
    for (size_t i = 0; i < as; i++, sum += 'a')
        buf[k++] = 'a';
    for (const char *p = tail; *p; p++) {
        sum += (unsigned char)*p;
        buf[k++] = *p;
    }
    return k + (size_t)sprintf(buf + k, "#%02x", sum & 0xff);
}

/* The bound is exact in raw bytes: an escape straddling byte NUB_GDB_PACKET_MAX
 * (its '}' the last allowed byte, the escaped byte one past) is TOO_LONG, not a
 * packet of MAX + 1 raw bytes (the regression). */
Test(gdb_parse, raw_bound_is_exact_across_an_escape)
{
    static char buf[NUB_GDB_PACKET_MAX + 64];
    static uint8_t out[2 * NUB_GDB_PACKET_MAX];
    size_t n, used, len;
    len = frame_run(buf, NUB_GDB_PACKET_MAX, "");
    cr_assert_eq(parse(buf, len, out, sizeof out, &n, &used), NUB_GDB_PKT_OK, "MAX raw bytes are a packet");
    cr_assert_eq(n, NUB_GDB_PACKET_MAX);
    cr_assert_eq(used, len);
    len = frame_run(buf, NUB_GDB_PACKET_MAX + 1, "");
    cr_assert_eq(parse(buf, len, out, sizeof out, &n, &used), NUB_GDB_PKT_TOO_LONG, "MAX + 1 plain bytes");
    len = frame_run(buf, NUB_GDB_PACKET_MAX - 2, "}]");
    cr_assert_eq(parse(buf, len, out, sizeof out, &n, &used), NUB_GDB_PKT_OK, "an escape ending at MAX");
    cr_assert_eq(n, NUB_GDB_PACKET_MAX - 1);
    cr_assert_eq(out[n - 1], '}');
    len = frame_run(buf, NUB_GDB_PACKET_MAX - 1, "}]");
    cr_assert_eq(parse(buf, len, out, sizeof out, &n, &used), NUB_GDB_PKT_TOO_LONG,
                 "an escape straddling MAX is MAX + 1 raw bytes");
    cr_assert_eq(n, 0);
    cr_assert_eq(used, len, "dropped up to the end (no later '$')");
    /* Cut right after that '}': no byte can make it fit, so no MORE. */
    cr_assert_eq(parse(buf, NUB_GDB_PACKET_MAX + 1, out, sizeof out, &n, &used), NUB_GDB_PKT_TOO_LONG);
}

Test(gdb_parse, zero_length_input)
{
    uint8_t out[1];
    size_t n, used;
    cr_assert_eq(parse("", 0, out, sizeof out, &n, &used), NUB_GDB_PKT_MORE);
}

Test(gdb_hex, values_and_bounds)
{
    const uint8_t *p;
    uint64_t v;
    const char *s = "ffffffff80000330,4";
    p = (const uint8_t *)s;
    cr_assert_eq(nub_gdb_parse_hex(&p, p + strlen(s), &v), 0);
    cr_assert_eq(v, 0xffffffff80000330ull);
    cr_assert_eq(*p, ',');
    s = "1ffffffff800003300"; /* 18 digits */
    p = (const uint8_t *)s;
    cr_assert_eq(nub_gdb_parse_hex(&p, p + strlen(s), &v), -1, "over 64 bits");
    s = ",4";
    p = (const uint8_t *)s;
    cr_assert_eq(nub_gdb_parse_hex(&p, p + strlen(s), &v), -1, "no digit");
    s = "AbC";
    p = (const uint8_t *)s;
    cr_assert_eq(nub_gdb_parse_hex(&p, p + 2, &v), 0, "stops at end");
    cr_assert_eq(v, 0xab);
}
