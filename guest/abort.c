/* Explicit guest aborts: fill the abort record in the scratch top page, signal NUB_PORT_ABORT, halt forever. */
#include <stdarg.h>
#include <stdint.h>

#include "internal.h"

static struct nub_abort_record *abort_record(void)
{
    struct nub_scratch_top *top = (struct nub_scratch_top *)(uintptr_t)NUB_SCRATCH_TOP_GVA;
    return &top->abort_rec;
}

/* Fill everything but the message; rip is the caller of the public abort function. */
static struct nub_abort_record *begin_record(uint64_t code, void *rip)
{
    struct nub_abort_record *rec = abort_record();
    rec->kind = NUB_ABORT_EXPLICIT;
    rec->flags = 0;
    rec->code = code;
    rec->vector = 0;
    rec->error_code = 0;
    rec->fault_addr = 0;
    rec->rip = (uint64_t)(uintptr_t)rip;
    rec->reserved = 0;
    return rec;
}

/* Record a message of full length `len` (of which min(len, MAX) bytes are in msg). */
NUB_NORETURN static void finish(struct nub_abort_record *rec, size_t len)
{
    if (len > NUB_ABORT_MSG_MAX) {
        rec->flags |= NUB_ABORT_F_TRUNCATED;
        len = NUB_ABORT_MSG_MAX;
    }
    rec->msg_len = (uint32_t)len;
    nub_outl(NUB_PORT_ABORT, NUB_ABORT_EXPLICIT);
    nub_hlt_forever();
}

NUB_NORETURN static void vabort_at(uint64_t code, void *rip, const char *fmt, va_list ap)
{
    struct nub_abort_record *rec = begin_record(code, rip);
    finish(rec, nub_vformat(rec->msg, NUB_ABORT_MSG_MAX, fmt, ap));
}

void nub_vabort(uint64_t code, const char *fmt, va_list ap)
{
    vabort_at(code, __builtin_return_address(0), fmt, ap);
}

void nub_abort(uint64_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vabort_at(code, __builtin_return_address(0), fmt, ap);
}

void nub_abort_bytes(uint64_t code, const void *msg, size_t len)
{
    struct nub_abort_record *rec = begin_record(code, __builtin_return_address(0));
    size_t n = len < NUB_ABORT_MSG_MAX ? len : NUB_ABORT_MSG_MAX;
    const char *src = msg;
    for (size_t i = 0; i < n; i++)
        rec->msg[i] = src[i];
    finish(rec, len);
}

void nub_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vabort_at(NUB_GUEST_ABORT_PANIC, __builtin_return_address(0), fmt, ap);
}
