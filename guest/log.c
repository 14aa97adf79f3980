/* Guest logging and console: NUB_MSG_LOG messages formatted in place on the output buffer, and byte-wise console output. */
#include <stdarg.h>
#include <stdint.h>

#include "internal.h"
#include "nub/wire.h"

int nub_log_enabled(uint32_t level)
{
    return level >= NUB_LOG_LEVEL_ERROR && level <= NUB_LOG_LEVEL_TRACE &&
           level <= nub_max_log_level();
}

static uint64_t output_sp(void)
{
    uint64_t sp;
    int rc = nub_wire_sp(nub_rt.output, nub_rt.output_size, &sp);
    if (rc != NUB_WIRE_OK)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "log: output buffer corrupt: %s", nub_wire_strerror(rc));
    return sp;
}

int nub_vlog(uint32_t level, const char *fmt, va_list ap)
{
    if (!nub_log_enabled(level))
        return 0;
    uint64_t sp = output_sp();
    uint64_t room = nub_rt.output_size - sp;
    if (room < NUB_WIRE_FRAME_OVERHEAD)
        return -1;
    uint64_t cap = room - NUB_WIRE_FRAME_OVERHEAD < NUB_GUEST_LOG_MAX ? room - NUB_WIRE_FRAME_OVERHEAD
                                                                      : NUB_GUEST_LOG_MAX;
    uint8_t *p;
    int rc = nub_wire_push_reserve(nub_rt.output, nub_rt.output_size, cap, 0, &p);
    if (rc != NUB_WIRE_OK)
        return -1;
    size_t n = nub_vformat((char *)p, (size_t)cap, fmt, ap);
    if (n > cap)
        n = (size_t)cap;
    rc = nub_wire_push_commit(nub_rt.output, nub_rt.output_size, NUB_MSG_LOG, level, n, 0);
    if (rc != NUB_WIRE_OK)
        return -1;
    nub_outl(NUB_PORT_LOG, level);
    if (output_sp() != sp)
        nub_abort(NUB_GUEST_ABORT_PROTOCOL, "log: the host did not pop the log message");
    return 1;
}

int nub_log(uint32_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = nub_vlog(level, fmt, ap);
    va_end(ap);
    return rc;
}

void nub_print_bytes(const void *s, size_t len)
{
    const uint8_t *p = s;
    for (size_t i = 0; i < len; i++)
        nub_outl(NUB_PORT_PRINT, p[i]);
}

void nub_print(const char *s)
{
    nub_print_bytes(s, strlen(s));
}

void nub_printf(const char *fmt, ...)
{
    char buf[NUB_GUEST_LOG_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t n = nub_vformat(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    nub_print_bytes(buf, n < sizeof(buf) ? n : sizeof(buf));
}
