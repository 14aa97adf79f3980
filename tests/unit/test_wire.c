/* Unit tests of the wire codec: round trips of every message kind and rejection of each malformation. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nub/wire.h"

#define BUF_SIZE (64u * 1024u)

static uint8_t *new_buf(uint64_t size)
{
    uint8_t *b = malloc(size);
    cr_assert_not_null(b);
    memset(b, 0xA5, size);
    cr_assert_eq(nub_wire_init(b, size), NUB_WIRE_OK);
    return b;
}

static void fill(uint8_t *p, uint64_t n, uint32_t seed)
{
    for (uint64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static uint64_t sp_of(const uint8_t *b)
{
    uint64_t sp;
    memcpy(&sp, b, 8);
    return sp;
}

static void set_sp(uint8_t *b, uint64_t sp)
{
    memcpy(b, &sp, 8);
}

Test(wire, init_empty)
{
    uint8_t *b = new_buf(BUF_SIZE);
    struct nub_wire_msg m;
    cr_assert_eq(sp_of(b), NUB_WIRE_EMPTY_SP);
    for (uint64_t i = 8; i < BUF_SIZE; i++)
        cr_assert_eq(b[i], 0, "byte %lu not zeroed", (unsigned long)i);
    cr_assert_eq(nub_wire_peek(b, BUF_SIZE, &m), NUB_WIRE_E_EMPTY);
    cr_assert_eq(nub_wire_drop(b, BUF_SIZE), NUB_WIRE_E_EMPTY);
    free(b);
}

Test(wire, init_rejects_bad_buffers)
{
    uint8_t small[NUB_WIRE_MIN_SIZE + 8];
    cr_assert_eq(nub_wire_init(NULL, 4096), NUB_WIRE_E_BUFFER);
    cr_assert_eq(nub_wire_init(small, NUB_WIRE_MIN_SIZE - 8), NUB_WIRE_E_BUFFER);
    cr_assert_eq(nub_wire_init(small, NUB_WIRE_MIN_SIZE + 4), NUB_WIRE_E_BUFFER);
    cr_assert_eq(nub_wire_init(small, NUB_WIRE_MIN_SIZE), NUB_WIRE_OK);
    cr_assert_eq(nub_wire_max_payload(NUB_WIRE_MIN_SIZE), 0);
    cr_assert_eq(nub_wire_max_payload(12), 0);
}

/* Push one message of each kind at the given sizes, peek it back, drop it. */
static void round_trip(uint32_t kind, uint32_t id, uint64_t plen, uint64_t elen)
{
    uint8_t *b = new_buf(BUF_SIZE);
    uint8_t *payload = malloc(plen + 1), *err = malloc(elen + 1);
    fill(payload, plen, (uint32_t)plen);
    fill(err, elen, (uint32_t)elen + 7u);
    int rc = nub_wire_push(b, BUF_SIZE, kind, id, payload, plen, err, elen);
    cr_assert_eq(rc, NUB_WIRE_OK, "push kind %u plen %lu elen %lu: %s", kind,
                 (unsigned long)plen, (unsigned long)elen, nub_wire_strerror(rc));
    uint64_t frame;
    cr_assert_eq(nub_wire_frame_len(plen, elen, &frame), NUB_WIRE_OK);
    cr_assert_eq(sp_of(b), NUB_WIRE_EMPTY_SP + frame);
    struct nub_wire_msg m;
    cr_assert_eq(nub_wire_peek_kind(b, BUF_SIZE, kind, &m), NUB_WIRE_OK);
    cr_assert_eq(m.kind, kind);
    cr_assert_eq(m.id, id);
    cr_assert_eq(m.payload_len, plen);
    cr_assert_eq(m.error_len, elen);
    cr_assert(plen == 0 || memcmp(m.payload, payload, plen) == 0);
    cr_assert(elen == 0 || memcmp(m.error, err, elen) == 0);
    cr_assert_eq(nub_wire_drop(b, BUF_SIZE), NUB_WIRE_OK);
    cr_assert_eq(sp_of(b), NUB_WIRE_EMPTY_SP);
    for (uint64_t i = 8; i < BUF_SIZE; i++)
        cr_assert_eq(b[i], 0, "drop left byte %lu", (unsigned long)i);
    free(payload);
    free(err);
    free(b);
}

Test(wire, round_trip_every_kind_and_size)
{
    const uint32_t kinds[] = {NUB_MSG_REQUEST, NUB_MSG_RESPONSE, NUB_MSG_LOG};
    const uint64_t max = nub_wire_max_payload(BUF_SIZE);
    const uint64_t sizes[] = {0, 1, 7, 8, 9, 63, 64, 4095, 4096, 4097, max - 9, max - 1, max};
    for (size_t k = 0; k < 3; k++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            round_trip(kinds[k], (uint32_t)(k * 1000 + s), sizes[s], 0);
    round_trip(NUB_MSG_RESPONSE, NUB_STATUS_GUEST_ERROR, 0, 100);
    round_trip(NUB_MSG_RESPONSE, NUB_STATUS_GUEST_ERROR, 13, 29);
    round_trip(NUB_MSG_RESPONSE, NUB_STATUS_GUEST_ERROR, max - 100, 100);
}

Test(wire, oversized_push_rejected_and_buffer_unchanged)
{
    uint8_t *b = new_buf(BUF_SIZE);
    uint8_t *snap = malloc(BUF_SIZE);
    const uint64_t max = nub_wire_max_payload(BUF_SIZE);
    uint8_t *payload = calloc(1, max + 8);
    memcpy(snap, b, BUF_SIZE);
    cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_REQUEST, 1, payload, max + 1, NULL, 0),
                 NUB_WIRE_E_NOSPACE);
    cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_REQUEST, 1, payload, max, "x", 1),
                 NUB_WIRE_E_NOSPACE);
    cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_REQUEST, 1, payload, UINT64_MAX, NULL, 0),
                 NUB_WIRE_E_NOSPACE);
    cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_REQUEST, 1, payload, 8, NULL, UINT64_MAX - 4),
                 NUB_WIRE_E_NOSPACE);
    cr_assert_eq(memcmp(snap, b, BUF_SIZE), 0);
    free(payload);
    free(snap);
    free(b);
}

Test(wire, nested_stack_pops_in_lifo_order)
{
    uint8_t *b = new_buf(BUF_SIZE);
    char text[32];
    for (uint32_t i = 0; i < 50; i++) {
        int n = snprintf(text, sizeof text, "message-%u", i);
        cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_LOG, i, text, (uint64_t)n, NULL, 0),
                     NUB_WIRE_OK);
    }
    for (uint32_t i = 50; i-- > 0;) {
        struct nub_wire_msg m;
        int n = snprintf(text, sizeof text, "message-%u", i);
        cr_assert_eq(nub_wire_peek(b, BUF_SIZE, &m), NUB_WIRE_OK);
        cr_assert_eq(m.id, i);
        cr_assert_eq(m.payload_len, (uint64_t)n);
        cr_assert_eq(memcmp(m.payload, text, (size_t)n), 0);
        cr_assert_eq(nub_wire_drop(b, BUF_SIZE), NUB_WIRE_OK);
    }
    cr_assert_eq(sp_of(b), NUB_WIRE_EMPTY_SP);
    free(b);
}

Test(wire, reserve_commit_writes_in_place)
{
    uint8_t *b = new_buf(BUF_SIZE);
    uint8_t *dst;
    cr_assert_eq(nub_wire_push_reserve(b, BUF_SIZE, 5, 3, &dst), NUB_WIRE_OK);
    memcpy(dst, "helloerr", 8);
    cr_assert_eq(sp_of(b), NUB_WIRE_EMPTY_SP, "reserve must not publish");
    cr_assert_eq(nub_wire_push_commit(b, BUF_SIZE, NUB_MSG_RESPONSE, 3, 5, 3), NUB_WIRE_OK);
    struct nub_wire_msg m;
    cr_assert_eq(nub_wire_peek(b, BUF_SIZE, &m), NUB_WIRE_OK);
    cr_assert_eq(memcmp(m.payload, "hello", 5), 0);
    cr_assert_eq(memcmp(m.error, "err", 3), 0);
    cr_assert_eq(nub_wire_peek_kind(b, BUF_SIZE, NUB_MSG_REQUEST, &m), NUB_WIRE_E_UNEXPECTED);
    free(b);
}

Test(wire, commit_zeroes_padding_and_keeps_every_data_byte)
{
    for (uint64_t plen = 0; plen <= 24; plen++) {
        for (uint64_t elen = 0; elen <= 9; elen++) {
            uint8_t *b = new_buf(BUF_SIZE);
            uint8_t *dst, want[40];
            memset(b + 8, 0xEE, 128); /* stale bytes where the frame goes */
            cr_assert_eq(nub_wire_push_reserve(b, BUF_SIZE, plen, elen, &dst), NUB_WIRE_OK);
            fill(want, plen + elen, (uint32_t)(plen * 31 + elen));
            memcpy(dst, want, plen + elen);
            cr_assert_eq(nub_wire_push_commit(b, BUF_SIZE, NUB_MSG_LOG, 7, plen, elen), NUB_WIRE_OK);
            uint64_t frame;
            cr_assert_eq(nub_wire_frame_len(plen, elen, &frame), NUB_WIRE_OK);
            cr_assert_eq(sp_of(b), 8 + frame);
            cr_assert_eq(memcmp(b + 8 + 32, want, plen + elen), 0, "data kept (%llu, %llu)",
                         (unsigned long long)plen, (unsigned long long)elen);
            for (uint64_t i = 8 + 32 + plen + elen; i < sp_of(b) - 8; i++)
                cr_assert_eq(b[i], 0, "padding byte %llu is zero", (unsigned long long)i);
            uint32_t hdr[4];
            memcpy(hdr, b + 8, sizeof hdr);
            cr_assert_eq(hdr[0], NUB_MSG_MAGIC);
            cr_assert_eq(hdr[1], NUB_MSG_LOG);
            cr_assert_eq(hdr[2], 7u);
            cr_assert_eq(hdr[3], 0u, "reserved is written as 0");
            uint64_t bp;
            memcpy(&bp, b + sp_of(b) - 8, 8);
            cr_assert_eq(bp, 8u);
            free(b);
        }
    }
}

Test(wire, discard_rewinds_without_zeroing_and_top_names_the_frame)
{
    uint8_t *b = new_buf(BUF_SIZE);
    cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_REQUEST, 1, "first", 5, NULL, 0), NUB_WIRE_OK);
    uint64_t second = sp_of(b);
    cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_RESPONSE, 0, "second", 6, "e", 1), NUB_WIRE_OK);
    uint64_t end = sp_of(b);
    uint8_t *snap = malloc(BUF_SIZE);
    memcpy(snap, b, BUF_SIZE);
    uint64_t off = 0;
    cr_assert_eq(nub_wire_top(b, BUF_SIZE, &off), NUB_WIRE_OK);
    cr_assert_eq(off, second);
    cr_assert_eq(memcmp(snap, b, BUF_SIZE), 0, "top does not change the buffer");
    cr_assert_eq(nub_wire_discard(b, BUF_SIZE), NUB_WIRE_OK);
    cr_assert_eq(sp_of(b), second, "discard rewinds to the frame");
    cr_assert_eq(memcmp(snap + 8, b + 8, end - 8), 0, "discard leaves the frame's bytes");
    struct nub_wire_msg m;
    cr_assert_eq(nub_wire_peek(b, BUF_SIZE, &m), NUB_WIRE_OK);
    cr_assert_eq(m.id, 1u);
    cr_assert_eq(memcmp(m.payload, "first", 5), 0);
    cr_assert_eq(nub_wire_discard(b, BUF_SIZE), NUB_WIRE_OK);
    cr_assert_eq(sp_of(b), NUB_WIRE_EMPTY_SP);
    cr_assert_eq(nub_wire_discard(b, BUF_SIZE), NUB_WIRE_E_EMPTY);
    cr_assert_eq(nub_wire_top(b, BUF_SIZE, &off), NUB_WIRE_E_EMPTY);
    free(snap);
    free(b);
}

/* A buffer holding one valid request with a 16-byte payload; returns it. */
static uint8_t *one_msg(void)
{
    uint8_t *b = new_buf(BUF_SIZE);
    cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_REQUEST, 9, "0123456789abcdef", 16, NULL, 0),
                 NUB_WIRE_OK);
    return b;
}

static void expect_peek(uint8_t *b, int err)
{
    struct nub_wire_msg m;
    uint8_t *snap = malloc(BUF_SIZE);
    memcpy(snap, b, BUF_SIZE);
    int rc = nub_wire_peek(b, BUF_SIZE, &m);
    cr_assert_eq(rc, err, "peek: got %s, want %s", nub_wire_strerror(rc), nub_wire_strerror(err));
    cr_assert_eq(nub_wire_drop(b, BUF_SIZE), err);
    cr_assert_eq(memcmp(snap, b, BUF_SIZE), 0, "failed drop changed the buffer");
    uint64_t off = 12345;
    cr_assert_eq(nub_wire_top(b, BUF_SIZE, &off), err);
    cr_assert_eq(off, 12345u, "failed top wrote its output");
    cr_assert_eq(nub_wire_discard(b, BUF_SIZE), err);
    cr_assert_eq(memcmp(snap, b, BUF_SIZE), 0, "failed discard changed the buffer");
    free(snap);
    free(b);
}

Test(wire, stack_pointer_out_of_range)
{
    uint8_t *b = one_msg();
    set_sp(b, BUF_SIZE + 8);
    expect_peek(b, NUB_WIRE_E_SP_RANGE);
    b = one_msg();
    set_sp(b, UINT64_MAX - 7);
    expect_peek(b, NUB_WIRE_E_SP_RANGE);
    b = one_msg();
    set_sp(b, 0);
    expect_peek(b, NUB_WIRE_E_SP_RANGE);
    b = one_msg();
    set_sp(b, 20);
    expect_peek(b, NUB_WIRE_E_SP_ALIGN);
}

Test(wire, push_onto_corrupt_stack_rejected)
{
    uint8_t *b = one_msg();
    set_sp(b, BUF_SIZE + 64);
    cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_LOG, 0, "x", 1, NULL, 0), NUB_WIRE_E_SP_RANGE);
    set_sp(b, 13);
    cr_assert_eq(nub_wire_push(b, BUF_SIZE, NUB_MSG_LOG, 0, "x", 1, NULL, 0), NUB_WIRE_E_SP_ALIGN);
    free(b);
}

Test(wire, back_pointer_past_stack_pointer)
{
    uint8_t *b = one_msg();
    uint64_t sp = sp_of(b), bp = sp; /* points at itself, past its own slot */
    memcpy(b + sp - 8, &bp, 8);
    expect_peek(b, NUB_WIRE_E_BACKPTR);
    b = one_msg();
    bp = UINT64_MAX & ~7ull;
    memcpy(b + sp_of(b) - 8, &bp, 8);
    expect_peek(b, NUB_WIRE_E_BACKPTR);
    b = one_msg();
    bp = 12; /* misaligned */
    memcpy(b + sp_of(b) - 8, &bp, 8);
    expect_peek(b, NUB_WIRE_E_BACKPTR);
    b = one_msg();
    bp = 0; /* points at the stack pointer itself */
    memcpy(b + sp_of(b) - 8, &bp, 8);
    expect_peek(b, NUB_WIRE_E_BACKPTR);
}

Test(wire, truncated_header)
{
    uint8_t *b = one_msg();
    uint64_t sp = sp_of(b), bp = sp - 8 - 24; /* frame of 24 bytes < header */
    memcpy(b + sp - 8, &bp, 8);
    expect_peek(b, NUB_WIRE_E_TRUNCATED);
}

Test(wire, bad_magic)
{
    uint8_t *b = one_msg();
    b[8] ^= 0x01;
    expect_peek(b, NUB_WIRE_E_MAGIC);
}

Test(wire, bad_kind_and_reserved)
{
    uint8_t *b = one_msg();
    uint32_t v = 77;
    memcpy(b + 8 + 4, &v, 4);
    expect_peek(b, NUB_WIRE_E_KIND);
    b = one_msg();
    memcpy(b + 8 + 12, &v, 4);
    expect_peek(b, NUB_WIRE_E_KIND);
}

static void set_lengths(uint8_t *b, uint64_t plen, uint64_t elen)
{
    memcpy(b + 8 + 16, &plen, 8);
    memcpy(b + 8 + 24, &elen, 8);
}

Test(wire, length_overflow_and_mismatch)
{
    const uint64_t cases[][2] = {
        {UINT64_MAX, 0},          /* payload near UINT64_MAX */
        {UINT64_MAX - 31, 16},    /* sum wraps */
        {16, UINT64_MAX},         /* error length near UINT64_MAX */
        {8, UINT64_MAX - 7},      /* plen + elen wraps to 0 */
        {BUF_SIZE, 0},            /* longer than the buffer */
        {17, 0},                  /* one byte past the frame */
        {8, 0},                   /* shorter than the frame */
        {0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *b = one_msg();
        set_lengths(b, cases[i][0], cases[i][1]);
        expect_peek(b, NUB_WIRE_E_LENGTH);
    }
    /* The same 16 bytes split between payload and error still match the frame. */
    uint8_t *b = one_msg();
    struct nub_wire_msg m;
    set_lengths(b, 10, 6);
    cr_assert_eq(nub_wire_peek(b, BUF_SIZE, &m), NUB_WIRE_OK);
    cr_assert_eq(m.error_len, 6);
    free(b);
}

Test(wire, random_garbage_never_reads_out_of_bounds)
{
    /* Random buffers: every result is a defined code and any view lies inside the buffer. */
    const uint64_t size = 4096;
    uint8_t *b = malloc(size);
    uint32_t seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        fill(b, size, seed++);
        uint64_t sp = (uint64_t)(seed % (size / 8 + 4)) * 8; /* mostly in range */
        if (iter % 3 == 0) {
            uint64_t bp = (uint64_t)((seed >> 3) % (size / 8)) * 8;
            set_sp(b, sp);
            if (sp >= 16 && sp <= size)
                memcpy(b + sp - 8, &bp, 8);
            if (bp + 32 <= size) {
                uint32_t magic = NUB_MSG_MAGIC, kind = 1 + seed % 3, z = 0;
                memcpy(b + bp, &magic, 4);
                memcpy(b + bp + 4, &kind, 4);
                memcpy(b + bp + 12, &z, 4);
            }
        }
        struct nub_wire_msg m;
        int rc = nub_wire_peek(b, size, &m);
        cr_assert(rc <= 0 && rc >= NUB_WIRE_E_UNEXPECTED);
        if (rc == NUB_WIRE_OK) {
            cr_assert(m.payload >= b + 8 && m.payload + m.payload_len <= b + size);
            cr_assert(m.error >= m.payload && m.error + m.error_len <= b + size);
        }
    }
    free(b);
}

Test(wire, strerror_names_every_code)
{
    for (int e = NUB_WIRE_OK; e >= NUB_WIRE_E_UNEXPECTED; e--)
        cr_assert_str_neq(nub_wire_strerror(e), "unknown wire error", "code %d", e);
    cr_assert_str_eq(nub_wire_strerror(-999), "unknown wire error");
}
