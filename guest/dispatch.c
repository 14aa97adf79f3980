/* Guest function table and the call dispatcher: pops the host's request, runs the registered function, pushes the response, halts. */
#include <stdint.h>

#include "internal.h"
#include "nub/wire.h"

int nub_register(uint32_t fn_id, nub_guest_fn fn)
{
    if (fn == NULL)
        return NUB_REG_INVALID;
    if (nub_lookup(fn_id) != NULL)
        return NUB_REG_DUPLICATE;
    if (nub_rt.fn_count >= NUB_GUEST_MAX_FNS)
        return NUB_REG_FULL;
    nub_rt.fns[nub_rt.fn_count++] = (struct nub_fn_entry){.id = fn_id, .fn = fn};
    return NUB_REG_OK;
}

nub_guest_fn nub_lookup(uint32_t fn_id)
{
    for (uint32_t i = 0; i < nub_rt.fn_count; i++) {
        if (nub_rt.fns[i].id == fn_id)
            return nub_rt.fns[i].fn;
    }
    return NULL;
}

/* Pop the request at req_off from the input buffer, and any host-call
 * responses the function left above it. The host wrote them, so they are
 * not zeroed (docs/abi.md, "Zeroing on pop"). */
static void drop_request(uint64_t req_off)
{
    for (;;) {
        uint64_t top;
        int rc = nub_wire_top(nub_rt.input, nub_rt.input_size, &top);
        if (rc != NUB_WIRE_OK || top < req_off)
            nub_abort(NUB_GUEST_ABORT_PROTOCOL, "dispatch: request lost from the input buffer: %s",
                      rc != NUB_WIRE_OK ? nub_wire_strerror(rc) : "frame below it on top");
        rc = nub_wire_discard(nub_rt.input, nub_rt.input_size);
        if (rc != NUB_WIRE_OK)
            nub_abort(NUB_GUEST_ABORT_PROTOCOL, "dispatch: cannot drop from the input buffer: %s",
                      nub_wire_strerror(rc));
        if (top == req_off)
            return;
    }
}

void nub_guest_dispatch(void)
{
    struct nub_wire_msg req;
    int rc = nub_wire_peek_kind(nub_rt.input, nub_rt.input_size, NUB_MSG_REQUEST, &req);
    if (rc != NUB_WIRE_OK) {
        nub_reply_fail(NUB_STATUS_BAD_PAYLOAD, "nub guest: malformed request in the input buffer: %s",
                       nub_wire_strerror(rc));
        nub_halt();
    }
    struct nub_reply *reply = &nub_rt.reply;
    nub_reply_begin(reply);
    nub_guest_fn fn = nub_lookup(req.id);
    uint32_t status;
    if (fn == NULL)
        status = nub_reply_error(reply, NUB_STATUS_UNKNOWN_FN,
                                 "no guest function registered for fn_id %u", req.id);
    else
        status = fn(req.payload, (size_t)req.payload_len, reply);
    drop_request(req.frame_off);
    nub_reply_finish(reply, status);
    nub_halt();
}
