/* Example guest for examples/hostfn: a guest function that calls back into a host function and builds its reply from the answer. */
#include <nub/guest.h>

#define HOST_FN_UPPER 100u /* registered by host.c: uppercases its input */
#define HOST_FN_FAIL  101u /* registered by host.c: always fails */

/* fn 1: in = text. Asks the host to uppercase it, replies "guest got: <answer>". */
static uint32_t shout(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    /* The host's answer stays in the input buffer (no copy) until _end. */
    struct nub_host_result res;
    uint32_t st = nub_host_call_begin(HOST_FN_UPPER, in, in_len, &res);
    if (st != NUB_STATUS_OK) {
        st = nub_reply_error(r, st, "host said: %.*s", (int)res.error_len, res.error);
        nub_host_call_end(&res);
        return st;
    }
    static const char prefix[] = "guest got: ";
    const size_t plen = sizeof prefix - 1;
    uint8_t *out = res.len <= SIZE_MAX - plen ? nub_reply_reserve(r, plen + res.len) : NULL;
    if (out != NULL) {
        memcpy(out, prefix, plen);
        memcpy(out + plen, res.data, res.len);
    }
    nub_host_call_end(&res);
    return out != NULL ? NUB_STATUS_OK : nub_reply_error(r, NUB_STATUS_TOO_LARGE, "answer too long");
}

/* fn 2: calls the failing host function and passes its error on. */
static uint32_t try_fail(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    struct nub_host_result res;
    uint32_t st = nub_host_call_begin(HOST_FN_FAIL, in, in_len, &res);
    if (st != NUB_STATUS_OK)
        st = nub_reply_error(r, st, "host said: %.*s", (int)res.error_len, res.error);
    nub_host_call_end(&res);
    return st;
}

void nub_guest_init(void)
{
    nub_register(1, shout);
    nub_register(2, try_fail);
}
