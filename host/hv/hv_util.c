/* Helpers shared by the hypervisor backends: bounded message formatting. */
#include "hv.h"

#include <stdarg.h>
#include <stdio.h>

void nub_hv_fmt(char *buf, size_t buf_len, const char *fmt, ...)
{
    va_list ap;
    if (buf == NULL || buf_len == 0)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(buf, buf_len, fmt, ap);
    va_end(ap);
    if (n < 0)
        buf[0] = '\0';
}
