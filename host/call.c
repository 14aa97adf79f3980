/* The call path: push the request, run the vCPU, service ports and host calls, pop the response. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gdb.h"
#include "internal.h"
#include "nub/wire.h"
#include "x86_64.h"

static uint8_t *input_buf(nub_sandbox *sb)
{
    return sb->scratch + sb->lay.input_off;
}

static uint8_t *output_buf(nub_sandbox *sb)
{
    return sb->scratch + sb->lay.output_off;
}

static struct nub_scratch_top *scratch_top(nub_sandbox *sb)
{
    return (struct nub_scratch_top *)(sb->scratch + sb->lay.top_off);
}

static nub_status protocol(nub_sandbox *sb, const char *what, int wire_err)
{
    return nub_err_set(&sb->last, NUB_E_PROTOCOL, "guest protocol violation: %s%s%s", what,
                       wire_err ? ": " : "", wire_err ? nub_wire_strerror(wire_err) : "");
}

/* ---- ports ------------------------------------------------------------- */

static nub_status service_log(nub_sandbox *sb)
{
    struct nub_wire_msg m;
    int rc = nub_wire_peek_kind(output_buf(sb), sb->lay.output_size, NUB_MSG_LOG, &m);
    if (rc != NUB_WIRE_OK)
        return protocol(sb, "bad log message on the output buffer", rc);
    if (m.id != NUB_LOG_LEVEL_OFF && m.id <= __atomic_load_n(&sb->max_log_level, __ATOMIC_RELAXED)) {
        char *text = (char *)(uintptr_t)m.payload; /* inside the output buffer, dropped below */
        if (!sb->log_raw)
            nub_text_sanitize(text, (size_t)m.payload_len);
        nub_log_emit(sb, NUB_LOG_SRC_GUEST, m.id, text, (size_t)m.payload_len);
    }
    nub_wire_drop(output_buf(sb), sb->lay.output_size);
    return NUB_OK;
}

static void flush_print(nub_sandbox *sb)
{
    if (sb->print_len != 0) {
        if (!sb->log_raw)
            nub_text_sanitize(sb->print_buf, sb->print_len);
        nub_log_emit(sb, NUB_LOG_SRC_PRINT, NUB_LOG_LEVEL_INFO, sb->print_buf, sb->print_len);
    }
    sb->print_len = 0;
}

static void service_print(nub_sandbox *sb, uint32_t value)
{
    char c = (char)(value & 0xff);
    if (c == '\n') {
        flush_print(sb);
        return;
    }
    sb->print_buf[sb->print_len++] = c;
    if (sb->print_len == sizeof sb->print_buf)
        flush_print(sb);
}

/* Run host function `e` (or report it unknown) and push its response onto the input buffer. */
static nub_status reply_host_call(nub_sandbox *sb, const struct nub_host_fn_entry *e,
                                  const struct nub_wire_msg *req)
{
    uint8_t *in = input_buf(sb);
    uint64_t sp, size = sb->lay.input_size;
    int rc = nub_wire_sp(in, size, &sp);
    if (rc != NUB_WIRE_OK)
        return protocol(sb, "input buffer corrupted before a host call", rc);
    uint64_t cap = size - sp >= NUB_WIRE_FRAME_OVERHEAD ? size - sp - NUB_WIRE_FRAME_OVERHEAD : 0;
    uint8_t *dst;
    if (nub_wire_push_reserve(in, size, cap, 0, &dst) != NUB_WIRE_OK)
        return protocol(sb, "no room on the input buffer for a host-call result", 0);
    struct nub_host_call call = {.fn_id = req->id, .payload = req->payload,
                                 .payload_len = (size_t)req->payload_len, .result = dst,
                                 .result_cap = (size_t)cap};
    uint32_t status = NUB_STATUS_OK;
    if (e == NULL) {
        status = NUB_STATUS_UNKNOWN_FN;
        snprintf(call.error, sizeof call.error, "no host function registered for fn_id %u", req->id);
    } else if (e->fn(e->ctx, &call) != 0) {
        status = NUB_STATUS_HOST_ERROR;
        if (call.error[0] == '\0')
            snprintf(call.error, sizeof call.error, "host function %u failed", req->id);
    } else if (call.result_len > cap) {
        status = NUB_STATUS_HOST_ERROR;
        snprintf(call.error, sizeof call.error, "host function %u returned %zu bytes, over the %llu available",
                 req->id, call.result_len, (unsigned long long)cap);
    }
    if (status == NUB_STATUS_OK) {
        nub_wire_push_commit(in, size, NUB_MSG_RESPONSE, status, call.result_len, 0);
        return NUB_OK;
    }
    call.error[sizeof call.error - 1] = '\0';
    size_t elen = strnlen(call.error, sizeof call.error);
    elen = elen < cap ? elen : (size_t)cap;
    memcpy(dst, call.error, elen);
    nub_wire_push_commit(in, size, NUB_MSG_RESPONSE, status, 0, elen);
    return NUB_OK;
}

static nub_status service_call(nub_sandbox *sb)
{
    struct nub_wire_msg req;
    int rc = nub_wire_peek_kind(output_buf(sb), sb->lay.output_size, NUB_MSG_REQUEST, &req);
    if (rc != NUB_WIRE_OK)
        return protocol(sb, "bad host-call request on the output buffer", rc);
    const struct nub_host_fn_entry *e = nub_host_fn_find(&sb->host_fns, req.id);
    nub_metrics_host_call(sb, e ? (int)(e - sb->host_fns.e) : -1);
    nub_status st = reply_host_call(sb, e, &req);
    nub_wire_drop(output_buf(sb), sb->lay.output_size);
    return st;
}

static nub_status guest_abort(nub_sandbox *sb)
{
    struct nub_abort_record rec;
    memcpy(&rec, &scratch_top(sb)->abort_rec, sizeof rec);
    struct nub_error *e = &sb->last;
    char text[NUB_ABORT_MSG_MAX + 1];
    if (nub_abort_record_check(&rec, text, sizeof text) != 0)
        return protocol(sb, text, 0);
    nub_text_copy(text, sizeof text, (const uint8_t *)rec.msg, rec.msg_len);
    int truncated = (rec.flags & NUB_ABORT_F_TRUNCATED) != 0;
    if (rec.kind == NUB_ABORT_EXCEPTION) {
        nub_err_set(e, NUB_E_GUEST_FAULT, "guest exception %llu (%s) at rip 0x%llx, error code 0x%llx, address 0x%llx",
                    (unsigned long long)rec.vector, text, (unsigned long long)rec.rip,
                    (unsigned long long)rec.error_code, (unsigned long long)rec.fault_addr);
    } else {
        nub_err_set(e, NUB_E_GUEST_ABORT, "guest aborted with code 0x%llx: %s%s",
                    (unsigned long long)rec.code, text, truncated ? " [truncated]" : "");
    }
    e->abort_code = rec.code;
    e->vector = rec.vector;
    e->error_code = rec.error_code;
    e->fault_addr = rec.fault_addr;
    e->rip = rec.rip;
    e->truncated = truncated;
    return e->code;
}

/* Handle one OUT; *done set when the guest signalled halt. */
static nub_status service_out(nub_sandbox *sb, const struct nub_hv_exit *x, int *done)
{
    switch (x->port) {
    case NUB_PORT_HALT:
        *done = 1;
        return NUB_OK;
    case NUB_PORT_LOG:
        return service_log(sb);
    case NUB_PORT_PRINT:
        service_print(sb, x->value);
        return NUB_OK;
    case NUB_PORT_CALL:
        return service_call(sb);
    case NUB_PORT_ABORT:
        return guest_abort(sb);
    default:
        return nub_err_set(&sb->last, NUB_E_PROTOCOL,
                           "guest protocol violation: OUT to unknown port %u at rip 0x%llx",
                           x->port, (unsigned long long)x->rip);
    }
}

static nub_status fault(nub_sandbox *sb, const struct nub_hv_exit *x)
{
    struct nub_error *e = &sb->last;
    nub_err_set(e, NUB_E_GUEST_FAULT, "guest exception %llu at rip 0x%llx, error code 0x%llx, address 0x%llx%s%s%s",
                (unsigned long long)x->vector, (unsigned long long)x->rip,
                (unsigned long long)x->error_code, (unsigned long long)x->addr,
                x->msg[0] ? ": " : "", x->msg, nub_backend_failure_hint(sb->backend, x->msg));
    e->vector = x->vector;
    e->error_code = x->error_code;
    e->fault_addr = x->addr;
    e->rip = x->rip;
    return NUB_E_GUEST_FAULT;
}

/* Translate a non-OUT exit into a status (always a failure). */
static nub_status exit_error(nub_sandbox *sb, const struct nub_hv_exit *x)
{
    unsigned long long rip = (unsigned long long)x->rip;
    switch (x->kind) {
    case NUB_HV_EXIT_IO_IN:
        return nub_err_set(&sb->last, NUB_E_PROTOCOL, "guest protocol violation: IN from port %u at rip 0x%llx", x->port, rip);
    case NUB_HV_EXIT_HALT:
        return nub_err_set(&sb->last, NUB_E_PROTOCOL, "guest protocol violation: HLT without signalling the halt port at rip 0x%llx", rip);
    case NUB_HV_EXIT_MMIO:
        return nub_err_set(&sb->last, NUB_E_PROTOCOL, "guest protocol violation: MMIO access to 0x%llx at rip 0x%llx",
                           (unsigned long long)x->addr, rip);
    case NUB_HV_EXIT_FAULT:
        return fault(sb, x);
    case NUB_HV_EXIT_SHUTDOWN:
        nub_err_set(&sb->last, NUB_E_GUEST_FAULT, "guest triple fault (shutdown) at rip 0x%llx", rip);
        sb->last.rip = x->rip;
        sb->last.vector = 8;
        return NUB_E_GUEST_FAULT;
    case NUB_HV_EXIT_PROTOCOL:
        return nub_err_set(&sb->last, NUB_E_PROTOCOL, "guest protocol violation: %s%s", x->msg,
                           nub_backend_failure_hint(sb->backend, x->msg));
    case NUB_HV_EXIT_CANCELLED:
        if (nub_state_cancel_reason(sb) == NUB_CANCEL_TIMEOUT)
            return nub_err_set(&sb->last, NUB_E_TIMEOUT, "call exceeded its timeout of %u ms", sb->cfg.call_timeout_ms);
        return nub_err_set(&sb->last, NUB_E_CANCELLED, "call interrupted");
    default:
        return nub_err_set(&sb->last, NUB_E_BACKEND, "%s backend failure: %s%s", nub_backend_name(sb->backend), x->msg,
                           nub_backend_failure_hint(sb->backend, x->msg));
    }
}

nub_status nub_run_guest(nub_sandbox *sb, uint64_t rip)
{
    const struct nub_layout *l = &sb->lay;
    struct nub_hv_regs regs = {0};
    regs.rip = rip;
    regs.rsp = nub_scratch_gva(l, l->stack_off + l->stack_size);
    regs.rflags = NUB_X86_RFLAGS_FIXED;
    if (nub_state_phase(sb) == NUB_SB_UNINIT) {
        regs.rdi = nub_snap_gva(l->peb_off);
        regs.rsi = sb->seed;
        regs.rdx = NUB_PAGE_SIZE;
        regs.rcx = sb->max_log_level;
    }
    nub_status rc = sb->ops->set_regs(sb->hv, &regs);
    if (rc != NUB_OK)
        return nub_err_set(&sb->last, NUB_E_BACKEND, "cannot set vCPU registers");
    for (;;) {
        struct nub_hv_exit x;
        memset(&x, 0, sizeof x);
        if ((sb->gdb == NULL ? sb->ops->run(sb->hv, &x) : nub_gdb_run(sb, &x)) != NUB_OK)
            return nub_err_set(&sb->last, NUB_E_BACKEND, "%s backend failure: %s%s", nub_backend_name(sb->backend), x.msg,
                               nub_backend_failure_hint(sb->backend, x.msg));
        if (x.kind != NUB_HV_EXIT_IO_OUT)
            return exit_error(sb, &x);
        int done = 0;
        if ((rc = service_out(sb, &x, &done)) != NUB_OK || done)
            return rc;
    }
}

/* ---- evolve and calls -------------------------------------------------- */

/* Clear everything a failed run may have left for the next one. */
static void scrub(nub_sandbox *sb)
{
    nub_wire_init(input_buf(sb), sb->lay.input_size);
    nub_wire_init(output_buf(sb), sb->lay.output_size);
    memset(&scratch_top(sb)->abort_rec, 0, sizeof scratch_top(sb)->abort_rec);
    sb->print_len = 0;
}

static int poisons(nub_status rc)
{
    return rc != NUB_OK && rc != NUB_E_GUEST && rc != NUB_E_TOO_LARGE;
}

/* Run from rip with the timeout armed; poison on failure. `call`: count it in sb->calls. */
static nub_status run_once(nub_sandbox *sb, uint64_t rip, bool call)
{
    sb->mem_epoch++; /* the guest may rewrite its memory: host-side views of it are stale */
    nub_guest_counter_publish(sb);
    sb->guest_ran = true;
    nub_status rc = nub_watchdog_arm(sb);
    if (rc != NUB_OK) { /* nothing ran: the sandbox is unchanged */
        scrub(sb);
        return rc;
    }
    if (call)
        atomic_fetch_add(&sb->calls, 1);
    rc = nub_run_guest(sb, rip);
    nub_watchdog_disarm(sb);
    flush_print(sb);
    if (rc != NUB_OK) {
        nub_core_dump_on_failure(sb, rc);
        scrub(sb);
        if (poisons(rc))
            nub_state_poison(sb);
    }
    return rc;
}

/* Make a buffer an empty stack; zero it only when something was left on it. */
static void reset_buffer(uint8_t *buf, uint64_t size)
{
    uint64_t sp;
    if (nub_wire_sp(buf, size, &sp) != NUB_WIRE_OK || sp != NUB_WIRE_EMPTY_SP)
        nub_wire_init(buf, size);
}

nub_status nub_sandbox_evolve(nub_sandbox *sb)
{
    if (sb == NULL)
        return NUB_E_INVALID;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_UNINIT);
    if (rc != NUB_OK)
        return rc;
    nub_err_clear(&sb->last);
    rc = run_once(sb, sb->entry_gva, false);
    if (rc == NUB_OK) {
        const struct nub_peb *peb = (const struct nub_peb *)(sb->snapshot + sb->lay.peb_off);
        sb->dispatch_gva = peb->dispatch_gva;
        if (!nub_in_exec_segment(sb->segs, sb->nsegs, sb->dispatch_gva)) {
            rc = nub_err_set(&sb->last, NUB_E_PROTOCOL,
                             "guest protocol violation: init set dispatch_gva 0x%llx outside its image",
                             (unsigned long long)sb->dispatch_gva);
            nub_state_poison(sb);
        } else {
            nub_state_evolved(sb);
        }
    }
    reset_buffer(input_buf(sb), sb->lay.input_size);
    reset_buffer(output_buf(sb), sb->lay.output_size);
    nub_state_release(sb);
    return rc;
}

/* Validate the response on the output buffer; on success *msg views it. */
static nub_status take_response(nub_sandbox *sb, struct nub_wire_msg *msg)
{
    int rc = nub_wire_peek_kind(output_buf(sb), sb->lay.output_size, NUB_MSG_RESPONSE, msg);
    if (rc != NUB_WIRE_OK) {
        nub_status st = protocol(sb, "bad response on the output buffer", rc);
        scrub(sb);
        nub_state_poison(sb);
        return st;
    }
    if (msg->id == NUB_STATUS_OK)
        return NUB_OK;
    char text[NUB_ERROR_MSG_MAX - 64];
    nub_text_copy(text, sizeof text, msg->error, msg->error_len);
    nub_err_set(&sb->last, NUB_E_GUEST, "guest function failed with status %u%s%s", msg->id,
                text[0] ? ": " : "", text);
    sb->last.guest_status = msg->id;
    sb->last.truncated = msg->error_len >= sizeof text;
    scrub(sb);
    return NUB_E_GUEST;
}

/* Push the request and run the guest until it halts. */
static nub_status call_start(nub_sandbox *sb, uint32_t fn_id, const void *in, size_t in_len)
{
    if (in == NULL && in_len != 0)
        return nub_err_set(&sb->last, NUB_E_INVALID, "input is NULL with length %zu", in_len);
    uint64_t max = nub_wire_max_payload(sb->lay.input_size);
    if (in_len > max)
        return nub_err_set(&sb->last, NUB_E_TOO_LARGE, "payload of %zu bytes exceeds the input buffer's %llu-byte limit",
                           in_len, (unsigned long long)max);
    reset_buffer(input_buf(sb), sb->lay.input_size);
    reset_buffer(output_buf(sb), sb->lay.output_size);
    if (nub_wire_push(input_buf(sb), sb->lay.input_size, NUB_MSG_REQUEST, fn_id, in, in_len, NULL, 0) != NUB_WIRE_OK)
        return nub_err_set(&sb->last, NUB_E_TOO_LARGE, "payload does not fit the input buffer");
    return run_once(sb, sb->dispatch_gva, true);
}

/* Run fn_id in the caller's claim; on success the response is on the output buffer in *msg. */
static nub_status call_claimed(nub_sandbox *sb, uint32_t fn_id, const void *in, size_t in_len,
                               struct nub_wire_msg *msg)
{
    nub_err_clear(&sb->last);
    nub_metrics_call_begin(sb);
    nub_status rc = call_start(sb, fn_id, in, in_len);
    if (rc == NUB_OK)
        rc = take_response(sb, msg);
    if (rc != NUB_OK)
        nub_metrics_call_end(sb, rc, in_len, 0);
    return rc;
}

/* Drop the response a successful call_claimed() left; count the call (rc: its outcome). */
static void drop_response(nub_sandbox *sb, nub_status rc, size_t in_len, uint64_t out_len)
{
    nub_wire_drop(output_buf(sb), sb->lay.output_size);
    nub_metrics_call_end(sb, rc, in_len, out_len);
}

/* nub_call's work inside the claim. */
static nub_status call_alloc_claimed(nub_sandbox *sb, uint32_t fn_id, const void *in, size_t in_len,
                                     uint8_t **out, size_t *out_len)
{
    struct nub_wire_msg msg;
    nub_status rc = call_claimed(sb, fn_id, in, in_len, &msg);
    if (rc != NUB_OK)
        return rc;
    if (msg.payload_len != 0) {
        *out = malloc((size_t)msg.payload_len);
        if (*out == NULL)
            rc = nub_err_set(&sb->last, NUB_E_NOMEM, "cannot allocate %llu result bytes",
                             (unsigned long long)msg.payload_len);
        else
            memcpy(*out, msg.payload, (size_t)msg.payload_len);
    }
    if (rc == NUB_OK)
        *out_len = (size_t)msg.payload_len;
    drop_response(sb, rc, in_len, msg.payload_len);
    return rc;
}

nub_status nub_call(nub_sandbox *sb, uint32_t fn_id, const void *in, size_t in_len,
                    uint8_t **out, size_t *out_len)
{
    if (sb == NULL || out == NULL || out_len == NULL)
        return sb ? nub_state_reject(sb, NUB_E_INVALID, "out or out_len is NULL") : NUB_E_INVALID;
    *out = NULL;
    *out_len = 0;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_READY);
    if (rc != NUB_OK)
        return rc;
    rc = call_alloc_claimed(sb, fn_id, in, in_len, out, out_len);
    nub_state_release(sb);
    return rc;
}

nub_status nub_call_into_claimed(nub_sandbox *sb, uint32_t fn_id, const void *in, size_t in_len,
                                 void *out, size_t out_cap, size_t *out_len)
{
    struct nub_wire_msg msg;
    *out_len = 0;
    nub_status rc = call_claimed(sb, fn_id, in, in_len, &msg);
    if (rc != NUB_OK)
        return rc;
    *out_len = (size_t)msg.payload_len;
    if (msg.payload_len > out_cap)
        rc = nub_err_set(&sb->last, NUB_E_TOO_LARGE, "result of %llu bytes does not fit the %zu-byte buffer",
                         (unsigned long long)msg.payload_len, out_cap);
    else if (msg.payload_len != 0)
        memcpy(out, msg.payload, (size_t)msg.payload_len);
    drop_response(sb, rc, in_len, msg.payload_len);
    return rc;
}

nub_status nub_call_into(nub_sandbox *sb, uint32_t fn_id, const void *in, size_t in_len,
                         void *out, size_t out_cap, size_t *out_len)
{
    if (sb == NULL || out_len == NULL || (out == NULL && out_cap != 0))
        return sb ? nub_state_reject(sb, NUB_E_INVALID, "out_len is NULL or out is NULL") : NUB_E_INVALID;
    *out_len = 0;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_READY);
    if (rc != NUB_OK)
        return rc;
    rc = nub_call_into_claimed(sb, fn_id, in, in_len, out, out_cap, out_len);
    nub_state_release(sb);
    return rc;
}

nub_status nub_sandbox_set_log_raw(nub_sandbox *sb, int raw)
{
    if (sb == NULL)
        return NUB_E_INVALID;
    sb->log_raw = raw != 0;
    return NUB_OK;
}

void nub_buffer_free(void *p)
{
    free(p);
}

uint64_t nub_sandbox_call_count(const nub_sandbox *sb)
{
    return sb ? atomic_load(&sb->calls) : 0;
}

nub_status nub_test_run_dispatch(nub_sandbox *sb)
{
    if (sb == NULL || sb->dispatch_gva == 0)
        return NUB_E_STATE;
    return nub_run_guest(sb, sb->dispatch_gva);
}
