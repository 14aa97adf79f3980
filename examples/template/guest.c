/* Guest template: a nub guest with two functions, built outside the nub tree with `pkg-config nubguest`; copy it and edit. */
#include <nub/guest.h>

/* Function ids the host calls; a host program uses the same numbers. */
#define GUEST_FN_GREET 1u
#define GUEST_FN_COUNT 2u

/* fn 1: in = a name, out = "hello, <name>". The reply is written in place
 * in the output buffer: reserve it, then fill it. */
static uint32_t greet(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    static const char prefix[] = "hello, ";
    size_t plen = sizeof prefix - 1;
    uint8_t *out = in_len <= SIZE_MAX - plen ? nub_reply_reserve(r, plen + in_len) : NULL;
    if (out == NULL) /* reserve refuses a length the output buffer cannot hold */
        return nub_reply_error(r, NUB_STATUS_TOO_LARGE, "name of %zu bytes does not fit", in_len);
    memcpy(out, prefix, plen);
    memcpy(out + plen, in, in_len);
    return NUB_STATUS_OK;
}

/* fn 2: in = anything, out = its length as a little-endian u64; an empty
 * input is refused with a message the host sees as NUB_E_GUEST. */
static uint32_t count(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    if (in_len == 0)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "count needs at least one byte");
    uint64_t n = in_len;
    return nub_reply_set(r, &n, sizeof n);
}

/* Called once by the SDK during init (nub_sandbox_evolve on the host). */
void nub_guest_init(void)
{
    nub_register(GUEST_FN_GREET, greet);
    nub_register(GUEST_FN_COUNT, count);
}
