/* Guest-to-host calls: push the request onto the output buffer, OUT NUB_PORT_CALL, take the response from the input buffer. */
#include <stdint.h>

#include "bytes.h"
#include "internal.h"
#include "nub/wire.h"

static const char too_large_msg[] = "nub guest: host call request does not fit the output buffer";

static uint64_t buffer_sp(const uint8_t *buf, uint64_t size, const char *which)
{
    uint64_t sp;
    int rc = nub_wire_sp(buf, size, &sp);
    if (rc != NUB_WIRE_OK)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "host call: %s buffer corrupt: %s", which,
                  nub_wire_strerror(rc));
    return sp;
}

/* Push the request; returns 0, or -1 when it does not fit. */
static int push_request(uint32_t fn_id, const void *in, size_t in_len)
{
    int rc = nub_wire_push(nub_rt.output, nub_rt.output_size, NUB_MSG_REQUEST, fn_id, in, in_len,
                           NULL, 0);
    if (rc == NUB_WIRE_E_NOSPACE)
        return -1;
    if (rc != NUB_WIRE_OK)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "host call %u: cannot push the request: %s", fn_id,
                  nub_wire_strerror(rc));
    return 0;
}

uint32_t nub_host_call_begin(uint32_t fn_id, const void *in, size_t in_len,
                             struct nub_host_result *res)
{
    uint64_t out_sp = buffer_sp(nub_rt.output, nub_rt.output_size, "output");
    uint64_t in_sp = buffer_sp(nub_rt.input, nub_rt.input_size, "input");
    if (push_request(fn_id, in, in_len) != 0) {
        *res = (struct nub_host_result){.status = NUB_STATUS_TOO_LARGE, .error = too_large_msg,
                                        .error_len = sizeof(too_large_msg) - 1};
        return res->status;
    }
    nub_outl(NUB_PORT_CALL, fn_id);
    if (buffer_sp(nub_rt.output, nub_rt.output_size, "output") != out_sp)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "host call %u: the host did not pop the request", fn_id);
    struct nub_wire_msg m;
    int rc = nub_wire_peek_kind(nub_rt.input, nub_rt.input_size, NUB_MSG_RESPONSE, &m);
    if (rc != NUB_WIRE_OK || m.frame_off != in_sp)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "host call %u: no valid response in the input buffer: %s",
                  fn_id, rc != NUB_WIRE_OK ? nub_wire_strerror(rc) : "response not on top of the stack");
    res->status = m.id;
    res->from_host = 1;
    res->data = m.payload;
    res->len = (size_t)m.payload_len;
    res->error = (const char *)m.error;
    res->error_len = (size_t)m.error_len;
    res->frame_off_ = m.frame_off;
    return res->status;
}

void nub_host_call_end(struct nub_host_result *res)
{
    if (res->frame_off_ == 0)
        return;
    uint64_t top;
    int rc = nub_wire_top(nub_rt.input, nub_rt.input_size, &top);
    if (rc != NUB_WIRE_OK || top != res->frame_off_)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "host call: results ended out of order or input corrupt");
    /* The host wrote the response: pop it without zeroing (docs/abi.md, "Zeroing on pop"). */
    rc = nub_wire_discard(nub_rt.input, nub_rt.input_size);
    if (rc != NUB_WIRE_OK)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "host call: cannot drop the response: %s",
                  nub_wire_strerror(rc));
    *res = (struct nub_host_result){0};
}

/* Copy at most cap - 1 bytes of the error message and NUL-terminate. */
static void copy_error(char *err, size_t cap, const struct nub_host_result *res)
{
    if (err == NULL || cap == 0)
        return;
    size_t n = res->error_len < cap - 1 ? res->error_len : cap - 1;
    if (n != 0)
        memcpy(err, res->error, n);
    err[n] = '\0';
}

uint32_t nub_host_call(uint32_t fn_id, const void *in, size_t in_len,
                       void *out, size_t out_cap, size_t *out_len,
                       char *err, size_t err_cap)
{
    struct nub_host_result res;
    uint32_t status = nub_host_call_begin(fn_id, in, in_len, &res);
    copy_error(err, err_cap, &res);
    if (out_len != NULL)
        *out_len = res.len;
    if (res.len <= out_cap) {
        if (res.len != 0)
            memcpy(out, res.data, res.len);
    } else if (status == NUB_STATUS_OK) {
        status = NUB_STATUS_TOO_LARGE;
    }
    nub_host_call_end(&res);
    return status;
}
