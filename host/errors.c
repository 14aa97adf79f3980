/* Status names, the per-sandbox error record helpers, and checks on what the guest hands the host: its text, its abort record, its exception context. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *nub_strerror(nub_status code)
{
    switch (code) {
    case NUB_OK: return "NUB_OK: success";
    case NUB_E_INVALID: return "NUB_E_INVALID: invalid argument";
    case NUB_E_NOMEM: return "NUB_E_NOMEM: out of host memory";
    case NUB_E_IO: return "NUB_E_IO: cannot read the guest binary";
    case NUB_E_ELF: return "NUB_E_ELF: invalid guest ELF";
    case NUB_E_LAYOUT: return "NUB_E_LAYOUT: guest memory layout does not fit";
    case NUB_E_NO_HYPERVISOR: return "NUB_E_NO_HYPERVISOR: backend not available";
    case NUB_E_BACKEND: return "NUB_E_BACKEND: hypervisor backend failure";
    case NUB_E_GUEST: return "NUB_E_GUEST: guest function returned an error";
    case NUB_E_GUEST_ABORT: return "NUB_E_GUEST_ABORT: guest aborted";
    case NUB_E_GUEST_FAULT: return "NUB_E_GUEST_FAULT: guest CPU fault";
    case NUB_E_PROTOCOL: return "NUB_E_PROTOCOL: guest broke the host protocol";
    case NUB_E_CANCELLED: return "NUB_E_CANCELLED: call interrupted";
    case NUB_E_TIMEOUT: return "NUB_E_TIMEOUT: call timed out";
    case NUB_E_POISONED: return "NUB_E_POISONED: sandbox poisoned by an earlier failure";
    case NUB_E_BUSY: return "NUB_E_BUSY: another call is running on this sandbox";
    case NUB_E_TOO_LARGE: return "NUB_E_TOO_LARGE: data does not fit its buffer";
    case NUB_E_STATE: return "NUB_E_STATE: not allowed in the sandbox's state";
    case NUB_E_EXISTS: return "NUB_E_EXISTS: already registered or taken";
    case NUB_E_OVERFLOW: return "NUB_E_OVERFLOW: counter overflow or underflow";
    case NUB_E_CAP_REJECTED: return "NUB_E_CAP_REJECTED: guest rejected the cap";
    case NUB_E_CAP_MISMATCH: return "NUB_E_CAP_MISMATCH: guest cap hash differs from the claimed hash";
    case NUB_E_NOT_FOUND: return "NUB_E_NOT_FOUND: no such cap or cache directory";
    case NUB_E_SNAPSHOT_CORRUPT: return "NUB_E_SNAPSHOT_CORRUPT: snapshot file truncated or corrupt";
    case NUB_E_SNAPSHOT_FOREIGN: return "NUB_E_SNAPSHOT_FOREIGN: snapshot file from another version or CPU";
    default: return "NUB_E_UNKNOWN: unknown status code";
    }
}

void nub_err_clear(struct nub_error *err)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof *err);
}

nub_status nub_err_set(struct nub_error *err, nub_status code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    nub_err_clear(err);
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

void nub_text_sanitize(char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)text[i];
        if (b < 0x20 || b > 0x7e)
            text[i] = '?';
    }
}

size_t nub_text_copy(char *dst, size_t cap, const uint8_t *src, uint64_t len)
{
    size_t n = len < cap - 1 ? (size_t)len : cap - 1;
    memcpy(dst, src, n);
    nub_text_sanitize(dst, n);
    dst[n] = '\0';
    return n;
}

/* x86-64 canonical: bits 63..47 all equal. */
static int canonical(uint64_t va)
{
    uint64_t top = va >> 47;
    return top == 0 || top == 0x1ffff;
}

static int bad_field(char *why, size_t why_len, const char *field, uint64_t value, const char *rule)
{
    snprintf(why, why_len, "abort record field %s = 0x%llx (%s)", field, (unsigned long long)value, rule);
    return -1;
}

int nub_abort_record_check(const struct nub_abort_record *rec, char *why, size_t why_len)
{
    if (rec->kind != NUB_ABORT_EXPLICIT && rec->kind != NUB_ABORT_EXCEPTION)
        return bad_field(why, why_len, "kind", rec->kind, "neither an explicit abort nor an exception");
    if ((rec->flags & ~NUB_ABORT_F_TRUNCATED) != 0)
        return bad_field(why, why_len, "flags", rec->flags, "unknown flag bits");
    if (rec->msg_len > NUB_ABORT_MSG_MAX)
        return bad_field(why, why_len, "msg_len", rec->msg_len, "over NUB_ABORT_MSG_MAX");
    if (rec->reserved != 0)
        return bad_field(why, why_len, "reserved", rec->reserved, "must be 0");
    if (!canonical(rec->rip))
        return bad_field(why, why_len, "rip", rec->rip, "not a canonical address");
    if (rec->kind == NUB_ABORT_EXCEPTION) {
        if (rec->vector > 31)
            return bad_field(why, why_len, "vector", rec->vector, "exception vectors are 0..31");
        if (rec->error_code > UINT32_MAX)
            return bad_field(why, why_len, "error_code", rec->error_code, "exception error codes are 32 bits");
        if (rec->code != 0)
            return bad_field(why, why_len, "code", rec->code, "must be 0 for an exception");
        return 0;
    }
    if (rec->vector != 0 || rec->error_code != 0 || rec->fault_addr != 0)
        return bad_field(why, why_len, rec->vector != 0 ? "vector" : rec->error_code != 0 ? "error_code" : "fault_addr",
                         rec->vector != 0 ? rec->vector : rec->error_code != 0 ? rec->error_code : rec->fault_addr,
                         "must be 0 for an explicit abort");
    return 0;
}

/* Copy the general-purpose registers of a save area into *r. */
static void take_gprs(const struct nub_exn_regs *s, struct nub_hv_regs *r)
{
    r->rax = s->rax;
    r->rbx = s->rbx;
    r->rcx = s->rcx;
    r->rdx = s->rdx;
    r->rsi = s->rsi;
    r->rdi = s->rdi;
    r->rbp = s->rbp;
    r->r8 = s->r8;
    r->r9 = s->r9;
    r->r10 = s->r10;
    r->r11 = s->r11;
    r->r12 = s->r12;
    r->r13 = s->r13;
    r->r14 = s->r14;
    r->r15 = s->r15;
}

void nub_exn_context(const nub_sandbox *sb, struct nub_hv_regs *r)
{
    const uint64_t top = sb->lay.exn_off + NUB_EXN_STACK_SIZE; /* IST1: page-aligned, so 16-aligned */
    uint64_t frame[7];                                         /* vector, error, RIP, CS, RFLAGS, RSP, SS */
    struct nub_exn_regs saved;
    _Static_assert(sizeof frame == NUB_EXN_FRAME_SIZE, "the frame abi.h describes");
    if (top > sb->lay.scratch_size || top < sizeof frame + sizeof saved)
        return;
    const uint8_t *f = sb->scratch + top - sizeof frame;
    memcpy(frame, f, sizeof frame);
    memcpy(&saved, f - sizeof saved, sizeof saved);
    r->rip = frame[2];
    r->rflags = frame[4];
    r->rsp = frame[5];
    if (saved.magic == NUB_EXN_REGS_MAGIC)
        take_gprs(&saved, r);
}
