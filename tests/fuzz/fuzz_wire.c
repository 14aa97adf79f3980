/* libFuzzer target: the wire decoder (peek, peek_kind, top, drop, discard) over an arbitrary buffer whose first 8 bytes are the stack pointer. */
#include "fuzz.h"

#include "nub/wire.h"

#define HDR ((uint64_t)sizeof(struct nub_msg))

/* The frame the decoder accepted lies inside [8, sp) and its lengths add up. */
static void check_view(const uint8_t *buf, uint64_t size, const struct nub_wire_msg *m)
{
    uint64_t sp, frame;
    FUZZ_CHECK(nub_wire_sp(buf, size, &sp) == NUB_WIRE_OK, "peek accepted a bad stack pointer");
    FUZZ_CHECK(m->frame_off >= NUB_WIRE_EMPTY_SP && m->frame_off % 8 == 0 && m->frame_off < sp,
               "frame_off %llu, sp %llu", (unsigned long long)m->frame_off, (unsigned long long)sp);
    FUZZ_CHECK(nub_wire_frame_len(m->payload_len, m->error_len, &frame) == NUB_WIRE_OK &&
                   frame == sp - m->frame_off,
               "frame of %llu bytes for payload %llu + error %llu", (unsigned long long)(sp - m->frame_off),
               (unsigned long long)m->payload_len, (unsigned long long)m->error_len);
    FUZZ_CHECK(m->payload == buf + m->frame_off + HDR && m->error == m->payload + m->payload_len,
               "payload/error views not where the header says");
    FUZZ_CHECK(m->kind == NUB_MSG_REQUEST || m->kind == NUB_MSG_RESPONSE || m->kind == NUB_MSG_LOG,
               "kind %u", m->kind);
}

/* Re-encode: pushing the decoded message into a fresh buffer reproduces
 * its header, payload and error bytes, and decodes to the same message. */
static void check_reencode(const uint8_t *buf, const struct nub_wire_msg *m)
{
    uint64_t frame;
    nub_wire_frame_len(m->payload_len, m->error_len, &frame);
    uint64_t size = NUB_WIRE_EMPTY_SP + frame;
    uint8_t *b = malloc(size);
    FUZZ_CHECK(b != NULL && nub_wire_init(b, size) == NUB_WIRE_OK, "init of %llu bytes", (unsigned long long)size);
    FUZZ_CHECK(nub_wire_push(b, size, m->kind, m->id, m->payload, m->payload_len, m->error,
                             m->error_len) == NUB_WIRE_OK,
               "a decoded message does not fit a buffer of its own frame size");
    uint64_t used = HDR + m->payload_len + m->error_len;
    FUZZ_CHECK(memcmp(b + NUB_WIRE_EMPTY_SP, buf + m->frame_off, used) == 0, "re-encoding differs");
    struct nub_wire_msg again;
    FUZZ_CHECK(nub_wire_peek(b, size, &again) == NUB_WIRE_OK && again.kind == m->kind &&
                   again.id == m->id && again.payload_len == m->payload_len &&
                   again.error_len == m->error_len && again.frame_off == NUB_WIRE_EMPTY_SP,
               "re-encoded message decodes differently");
    free(b);
}

/* A failing drop leaves the buffer as it was; a successful one rewinds sp to the frame. */
static int drop_and_check(uint8_t *buf, uint64_t size, const struct nub_wire_msg *m, int peek_rc)
{
    uint8_t *before = fuzz_copy(buf, size);
    uint64_t frame_off = peek_rc == NUB_WIRE_OK ? m->frame_off : 0;
    int rc = nub_wire_drop(buf, size);
    FUZZ_CHECK(rc == peek_rc, "drop returned %d where peek returned %d", rc, peek_rc);
    if (rc != NUB_WIRE_OK) {
        FUZZ_CHECK(memcmp(before, buf, size) == 0, "failed drop changed the buffer");
    } else {
        uint64_t sp, old_sp;
        FUZZ_CHECK(nub_wire_sp(buf, size, &sp) == NUB_WIRE_OK && sp == frame_off,
                   "sp after drop is not the dropped frame's offset");
        FUZZ_CHECK(nub_wire_sp(before, size, &old_sp) == NUB_WIRE_OK, "drop accepted a bad sp");
        for (uint64_t i = frame_off; i < old_sp; i++)
            FUZZ_CHECK(buf[i] == 0, "dropped frame byte %llu not zeroed", (unsigned long long)i);
    }
    free(before);
    return rc;
}

/* nub_wire_top agrees with peek; nub_wire_discard (on a copy) moves only the stack pointer. */
static void check_top_discard(const uint8_t *buf, uint64_t size, const struct nub_wire_msg *m, int peek_rc)
{
    uint64_t off = 0, sp;
    int rc = nub_wire_top(buf, size, &off);
    FUZZ_CHECK(rc == peek_rc && (rc != NUB_WIRE_OK || off == m->frame_off), "top returned %d (peek %d)", rc, peek_rc);
    uint8_t *copy = fuzz_copy(buf, size);
    rc = nub_wire_discard(copy, size);
    FUZZ_CHECK(rc == peek_rc, "discard returned %d where peek returned %d", rc, peek_rc);
    if (rc == NUB_WIRE_OK) {
        FUZZ_CHECK(nub_wire_sp(copy, size, &sp) == NUB_WIRE_OK && sp == m->frame_off, "sp after discard");
        FUZZ_CHECK(memcmp(copy + 8, buf + 8, size - 8) == 0, "discard changed more than the stack pointer");
    } else {
        FUZZ_CHECK(memcmp(copy, buf, size) == 0, "failed discard (%d) changed the buffer", rc);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nub_wire_msg m;
    uint8_t *buf = fuzz_copy(data, size);
    /* The raw size first: anything not a multiple of 8 or too short is E_BUFFER. */
    int rc = nub_wire_peek(buf, size, &m);
    if (size % 8 != 0 || size < NUB_WIRE_MIN_SIZE)
        FUZZ_CHECK(rc == NUB_WIRE_E_BUFFER, "size %zu accepted (%d)", size, rc);
    uint64_t n = size & ~(uint64_t)7;
    /* Pop messages until the stack is empty or a frame is malformed. */
    for (uint64_t round = 0; round <= n / 16; round++) {
        rc = nub_wire_peek(buf, n, &m);
        FUZZ_CHECK(rc <= 0 && rc >= NUB_WIRE_E_NOSPACE, "peek returned %d", rc);
        if (rc == NUB_WIRE_OK) {
            check_view(buf, n, &m);
            check_reencode(buf, &m);
            struct nub_wire_msg k;
            uint32_t other = m.kind == NUB_MSG_LOG ? NUB_MSG_REQUEST : NUB_MSG_LOG;
            FUZZ_CHECK(nub_wire_peek_kind(buf, n, m.kind, &k) == NUB_WIRE_OK &&
                           nub_wire_peek_kind(buf, n, other, &k) == NUB_WIRE_E_UNEXPECTED,
                       "peek_kind disagrees with peek");
        }
        check_top_discard(buf, n, &m, rc);
        if (drop_and_check(buf, n, &m, rc) != NUB_WIRE_OK)
            break;
    }
    free(buf);
    return 0;
}
