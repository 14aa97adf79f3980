/* Guest reply builder: stages the response in place in the output buffer as a provisional frame and finalises it. */
#include <stdarg.h>
#include <stdint.h>

#include "bytes.h"
#include "internal.h"
#include "nub/wire.h"

/* Validated output stack pointer; a corrupt output buffer is fatal. */
static uint64_t output_sp(void)
{
    uint64_t sp;
    int rc = nub_wire_sp(nub_rt.output, nub_rt.output_size, &sp);
    if (rc != NUB_WIRE_OK)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "reply: output buffer corrupt: %s", nub_wire_strerror(rc));
    return sp;
}

/* The output stack pointer just past the provisional frame of an active reply. */
static uint64_t frame_end(const struct nub_reply *r)
{
    /* r->len fit the output buffer when it was framed, so this cannot wrap;
     * the same sum as nub_wire_frame_len(r->len, 0), without its stores. */
    return r->frame_off + ((NUB_WIRE_FRAME_OVERHEAD - 8u + r->len + 7u) & ~(uint64_t)7u) + 8u;
}

/* Where the reply frame starts: its provisional frame, or the top of the stack. */
static uint64_t reply_base(const struct nub_reply *r)
{
    uint64_t sp = output_sp();
    if (!r->active)
        return sp;
    uint64_t end = frame_end(r);
    if (sp != end)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL,
                  "reply: output stack pointer %u is not the end of the reply frame %u "
                  "(a message above it was not popped)",
                  (unsigned)sp, (unsigned)end);
    return r->frame_off;
}

/* Largest payload of a frame starting at base (sizes and offsets are 8-aligned). */
static uint64_t capacity_at(uint64_t base)
{
    uint64_t room = nub_rt.output_size - base;
    return room >= NUB_WIRE_FRAME_OVERHEAD ? room - NUB_WIRE_FRAME_OVERHEAD : 0;
}

/* Rewind to base (a store only when the stack pointer is elsewhere) and
 * frame a response of these lengths there; returns the payload. */
static uint8_t *frame_at(uint64_t base, uint32_t status, uint64_t len, uint64_t err_len)
{
    uint8_t *p;
    if (nub_load_le64(nub_rt.output) != base)
        nub_store_le64(nub_rt.output, base);
    int rc = nub_wire_push_reserve(nub_rt.output, nub_rt.output_size, len, err_len, &p);
    if (rc == NUB_WIRE_OK)
        rc = nub_wire_push_commit(nub_rt.output, nub_rt.output_size, NUB_MSG_RESPONSE, status,
                                  len, err_len);
    if (rc != NUB_WIRE_OK)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "reply: cannot frame the response: %s", nub_wire_strerror(rc));
    return p;
}

void nub_reply_begin(struct nub_reply *r)
{
    r->active = 0;
    r->err_len = 0;
    r->len = 0;
}

size_t nub_reply_capacity(const struct nub_reply *r)
{
    return (size_t)capacity_at(reply_base(r));
}

size_t nub_reply_len(const struct nub_reply *r)
{
    return (size_t)r->len;
}

uint8_t *nub_reply_reserve(struct nub_reply *r, size_t len)
{
    uint64_t base = reply_base(r);
    if (len > capacity_at(base))
        return NULL;
    uint8_t *data = frame_at(base, NUB_STATUS_OK, len, 0);
    r->active = 1;
    r->frame_off = base;
    r->len = len;
    return data;
}

uint32_t nub_reply_set(struct nub_reply *r, const void *data, size_t len)
{
    uint8_t *p = nub_reply_reserve(r, len);
    if (p == NULL)
        return NUB_STATUS_TOO_LARGE;
    if (len != 0)
        memmove(p, data, len);
    return NUB_STATUS_OK;
}

uint32_t nub_reply_append(struct nub_reply *r, const void *data, size_t len)
{
    size_t old = (size_t)r->len;
    if (len > SIZE_MAX - old)
        return NUB_STATUS_TOO_LARGE;
    uint8_t *p = nub_reply_reserve(r, old + len);
    if (p == NULL)
        return NUB_STATUS_TOO_LARGE;
    if (len != 0)
        memmove(p + old, data, len);
    return NUB_STATUS_OK;
}

static void set_error(struct nub_reply *r, const char *fmt, va_list ap)
{
    size_t n = nub_vformat(r->err, sizeof(r->err), fmt, ap);
    r->err_len = (uint32_t)(n < sizeof(r->err) ? n : sizeof(r->err));
}

uint32_t nub_reply_error(struct nub_reply *r, uint32_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(r, fmt, ap);
    va_end(ap);
    return status;
}

void nub_reply_finish(struct nub_reply *r, uint32_t status)
{
    if (status != NUB_STATUS_OK && r->err_len == 0)
        nub_reply_error(r, status, "guest function failed with status %u", status);
    uint64_t base = reply_base(r);
    uint64_t cap = capacity_at(base);
    if (nub_rt.output_size - base < NUB_WIRE_FRAME_OVERHEAD)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "reply: no room for the response in the output buffer");
    uint64_t err_len = r->err_len;
    if (err_len > cap - r->len)
        err_len = cap - r->len; /* truncate the message rather than lose the result */
    if (r->active && status == NUB_STATUS_OK && err_len == 0) {
        /* The provisional frame (status OK, no error bytes) is already the response. */
        r->active = 0;
        return;
    }
    uint8_t *p = frame_at(base, status, r->len, err_len);
    if (err_len != 0)
        memcpy(p + r->len, r->err, (size_t)err_len);
    r->active = 0;
}

void nub_reply_fail(uint32_t status, const char *fmt, ...)
{
    struct nub_reply *r = &nub_rt.reply;
    nub_reply_begin(r);
    va_list ap;
    va_start(ap, fmt);
    set_error(r, fmt, ap);
    va_end(ap);
    nub_reply_finish(r, status);
}
