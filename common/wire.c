/* Wire codec: push, peek and drop of stack-framed messages with validation of every offset and length. */
#include "nub/wire.h"

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"

#define HDR_LEN ((uint64_t)sizeof(struct nub_msg))

static int size_ok(uint64_t size)
{
    return size >= NUB_WIRE_MIN_SIZE && size % 8 == 0;
}

static int buffer_ok(const uint8_t *buf, uint64_t size)
{
    if (buf == NULL || !size_ok(size))
        return NUB_WIRE_E_BUFFER;
    return NUB_WIRE_OK;
}

static uint64_t pad8(uint64_t n)
{
    return (n + 7u) & ~(uint64_t)7u;
}

_Static_assert(offsetof(struct nub_msg, kind) == 4 && offsetof(struct nub_msg, id) == 8 &&
               offsetof(struct nub_msg, reserved) == 12 && offsetof(struct nub_msg, payload_len) == 16 &&
               offsetof(struct nub_msg, error_len) == 24 && sizeof(struct nub_msg) == 32,
               "push_commit writes the header as four 8-byte words");

/* Zero the `pad` (0-7) bytes just below the 8-aligned `end`, keeping the
 * data bytes that share their word: one aligned load and store. */
static void zero_padding(uint8_t *end, uint64_t pad)
{
    if (pad == 0)
        return;
    uint64_t w = nub_load_le64(end - 8);
    w &= ((uint64_t)1 << (8u * (8u - pad))) - 1u;
    nub_store_le64(end - 8, w);
}

int nub_wire_init(uint8_t *buf, uint64_t size)
{
    int rc = buffer_ok(buf, size);
    if (rc != NUB_WIRE_OK)
        return rc;
    nub_bytes_zero(buf, (size_t)size);
    nub_store_le64(buf, NUB_WIRE_EMPTY_SP);
    return NUB_WIRE_OK;
}

int nub_wire_sp(const uint8_t *buf, uint64_t size, uint64_t *sp)
{
    int rc = buffer_ok(buf, size);
    if (rc != NUB_WIRE_OK)
        return rc;
    uint64_t v = nub_load_le64(buf);
    if (v < NUB_WIRE_EMPTY_SP || v > size)
        return NUB_WIRE_E_SP_RANGE;
    if (v % 8 != 0)
        return NUB_WIRE_E_SP_ALIGN;
    *sp = v;
    return NUB_WIRE_OK;
}

int nub_wire_frame_len(uint64_t payload_len, uint64_t error_len, uint64_t *frame_len)
{
    /* Bound each length first so the sums below cannot wrap. */
    const uint64_t limit = UINT64_MAX / 4;
    if (payload_len > limit || error_len > limit)
        return NUB_WIRE_E_LENGTH;
    *frame_len = pad8(HDR_LEN + payload_len + error_len) + 8u;
    return NUB_WIRE_OK;
}

uint64_t nub_wire_max_payload(uint64_t size)
{
    if (!size_ok(size))
        return 0;
    /* size is 8-aligned, so the payload may fill the frame up to the back-pointer. */
    return size - NUB_WIRE_EMPTY_SP - NUB_WIRE_FRAME_OVERHEAD;
}

int nub_wire_push_reserve(uint8_t *buf, uint64_t size, uint64_t payload_len,
                          uint64_t error_len, uint8_t **payload)
{
    uint64_t sp, frame;
    int rc = nub_wire_sp(buf, size, &sp);
    if (rc != NUB_WIRE_OK)
        return rc;
    rc = nub_wire_frame_len(payload_len, error_len, &frame);
    if (rc != NUB_WIRE_OK)
        return NUB_WIRE_E_NOSPACE;
    if (frame > size - sp)
        return NUB_WIRE_E_NOSPACE;
    *payload = buf + sp + HDR_LEN;
    return NUB_WIRE_OK;
}

int nub_wire_push_commit(uint8_t *buf, uint64_t size, uint32_t kind, uint32_t id,
                         uint64_t payload_len, uint64_t error_len)
{
    uint8_t *data;
    int rc = nub_wire_push_reserve(buf, size, payload_len, error_len, &data);
    if (rc != NUB_WIRE_OK)
        return rc;
    uint64_t sp = nub_load_le64(buf);
    uint64_t used = HDR_LEN + payload_len + error_len;
    uint64_t bp_off = sp + pad8(used);
    uint8_t *hdr = buf + sp;
    /* sp is 8-aligned (nub_wire_sp checked it), so these are four aligned
     * 8-byte stores: magic and kind, id and reserved (0), the two lengths. */
    nub_store_le64(hdr, (uint64_t)NUB_MSG_MAGIC | (uint64_t)kind << 32);
    nub_store_le64(hdr + offsetof(struct nub_msg, id), id);
    nub_store_le64(hdr + offsetof(struct nub_msg, payload_len), payload_len);
    nub_store_le64(hdr + offsetof(struct nub_msg, error_len), error_len);
    zero_padding(buf + bp_off, bp_off - (sp + used));
    nub_store_le64(buf + bp_off, sp);
    nub_store_le64(buf, bp_off + 8u);
    return NUB_WIRE_OK;
}

int nub_wire_push(uint8_t *buf, uint64_t size, uint32_t kind, uint32_t id,
                  const void *payload, uint64_t payload_len,
                  const void *error, uint64_t error_len)
{
    uint8_t *data;
    int rc = nub_wire_push_reserve(buf, size, payload_len, error_len, &data);
    if (rc != NUB_WIRE_OK)
        return rc;
    if (payload_len != 0)
        nub_bytes_copy(data, payload, (size_t)payload_len);
    if (error_len != 0)
        nub_bytes_copy(data + payload_len, error, (size_t)error_len);
    return nub_wire_push_commit(buf, size, kind, id, payload_len, error_len);
}

static int known_kind(uint32_t kind)
{
    return kind == NUB_MSG_REQUEST || kind == NUB_MSG_RESPONSE || kind == NUB_MSG_LOG;
}

/* Validate the header of the frame [bp, end) and fill *msg. Always inlined,
 * so callers that keep only part of *msg never store the rest (a guest
 * store is what the emulated CPU pays for). */
static inline __attribute__((always_inline)) int parse_frame(const uint8_t *buf, uint64_t bp, uint64_t end,
                       struct nub_wire_msg *msg)
{
    uint64_t frame = end - bp;
    if (frame < HDR_LEN)
        return NUB_WIRE_E_TRUNCATED;
    const uint8_t *hdr = buf + bp;
    if (nub_load_le32(hdr + offsetof(struct nub_msg, magic)) != NUB_MSG_MAGIC)
        return NUB_WIRE_E_MAGIC;
    uint32_t kind = nub_load_le32(hdr + offsetof(struct nub_msg, kind));
    if (!known_kind(kind) || nub_load_le32(hdr + offsetof(struct nub_msg, reserved)) != 0)
        return NUB_WIRE_E_KIND;
    uint64_t plen = nub_load_le64(hdr + offsetof(struct nub_msg, payload_len));
    uint64_t elen = nub_load_le64(hdr + offsetof(struct nub_msg, error_len));
    uint64_t room = frame - HDR_LEN;
    if (plen > room || elen > room - plen)
        return NUB_WIRE_E_LENGTH;
    if (pad8(HDR_LEN + plen + elen) != frame)
        return NUB_WIRE_E_LENGTH;
    msg->kind = kind;
    msg->id = nub_load_le32(hdr + offsetof(struct nub_msg, id));
    msg->payload = hdr + HDR_LEN;
    msg->payload_len = plen;
    msg->error = hdr + HDR_LEN + plen;
    msg->error_len = elen;
    msg->frame_off = bp;
    return NUB_WIRE_OK;
}

/* nub_wire_peek(); inlined where only part of *msg is needed, so the rest is never stored. */
static inline __attribute__((always_inline)) int peek_top(const uint8_t *buf, uint64_t size, struct nub_wire_msg *msg)
{
    uint64_t sp;
    int rc = nub_wire_sp(buf, size, &sp);
    if (rc != NUB_WIRE_OK)
        return rc;
    if (sp == NUB_WIRE_EMPTY_SP)
        return NUB_WIRE_E_EMPTY;
    /* sp >= 16 and 8-aligned here, so the back-pointer slot is inside the buffer. */
    uint64_t bp_slot = sp - 8u;
    uint64_t bp = nub_load_le64(buf + bp_slot);
    if (bp < NUB_WIRE_EMPTY_SP || bp % 8 != 0 || bp >= bp_slot)
        return NUB_WIRE_E_BACKPTR;
    return parse_frame(buf, bp, bp_slot, msg);
}

int nub_wire_peek(const uint8_t *buf, uint64_t size, struct nub_wire_msg *msg)
{
    return peek_top(buf, size, msg);
}

int nub_wire_top(const uint8_t *buf, uint64_t size, uint64_t *frame_off)
{
    struct nub_wire_msg msg;
    int rc = peek_top(buf, size, &msg);
    if (rc == NUB_WIRE_OK)
        *frame_off = msg.frame_off;
    return rc;
}

int nub_wire_peek_kind(const uint8_t *buf, uint64_t size, uint32_t kind,
                       struct nub_wire_msg *msg)
{
    int rc = nub_wire_peek(buf, size, msg);
    if (rc == NUB_WIRE_OK && msg->kind != kind)
        return NUB_WIRE_E_UNEXPECTED;
    return rc;
}

int nub_wire_drop(uint8_t *buf, uint64_t size)
{
    struct nub_wire_msg msg;
    int rc = nub_wire_peek(buf, size, &msg);
    if (rc != NUB_WIRE_OK)
        return rc;
    uint64_t sp = nub_load_le64(buf);
    nub_bytes_zero(buf + msg.frame_off, (size_t)(sp - msg.frame_off));
    nub_store_le64(buf, msg.frame_off);
    return NUB_WIRE_OK;
}

int nub_wire_discard(uint8_t *buf, uint64_t size)
{
    uint64_t off;
    int rc = nub_wire_top(buf, size, &off);
    if (rc == NUB_WIRE_OK)
        nub_store_le64(buf, off);
    return rc;
}

const char *nub_wire_strerror(int err)
{
    switch (err) {
    case NUB_WIRE_OK: return "ok";
    case NUB_WIRE_E_BUFFER: return "buffer too small, misaligned or missing";
    case NUB_WIRE_E_SP_RANGE: return "stack pointer out of range";
    case NUB_WIRE_E_SP_ALIGN: return "stack pointer misaligned";
    case NUB_WIRE_E_EMPTY: return "stack is empty";
    case NUB_WIRE_E_BACKPTR: return "back-pointer out of range";
    case NUB_WIRE_E_TRUNCATED: return "frame shorter than a message header";
    case NUB_WIRE_E_MAGIC: return "bad message magic";
    case NUB_WIRE_E_KIND: return "unknown message kind or reserved field set";
    case NUB_WIRE_E_LENGTH: return "message lengths overflow or disagree with the frame";
    case NUB_WIRE_E_NOSPACE: return "message longer than the free space in the buffer";
    case NUB_WIRE_E_UNEXPECTED: return "unexpected message kind";
    default: return "unknown wire error";
    }
}
