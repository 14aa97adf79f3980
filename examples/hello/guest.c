/* Example guest for examples/hello: one function, fn 1, that greets its input. */
#include <nub/guest.h>

/* in: a name. out: "hello, <name>", written in place in the output buffer. */
static uint32_t greet(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    static const char prefix[] = "hello, ";
    const size_t plen = sizeof prefix - 1;
    uint8_t *out = in_len <= SIZE_MAX - plen ? nub_reply_reserve(r, plen + in_len) : NULL;
    if (out == NULL)
        return nub_reply_error(r, NUB_STATUS_TOO_LARGE, "a %zu-byte name does not fit", in_len);
    memcpy(out, prefix, plen);
    memcpy(out + plen, in, in_len);
    return NUB_STATUS_OK;
}

/* The SDK calls this once, during nub_sandbox_evolve(). */
void nub_guest_init(void)
{
    nub_register(1, greet);
}
