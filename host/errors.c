/* Status names and the per-sandbox error record helpers. */
#include <stdarg.h>
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
