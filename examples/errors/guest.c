/* Example guest for examples/errors: a function that fails, one that never returns, and one that keeps calling the host. */
#include <nub/guest.h>

#define HOST_FN_TICK 100u /* registered by host.c */

/* fn 1: refuses its input with a status and a message (NUB_E_GUEST on the host). */
static uint32_t refuse(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "refusing %zu bytes", in_len);
}

/* Nothing clears it: fn 2 spins until a timeout or an interrupt ends the call. */
static volatile int spinning = 1;

/* fn 2: never returns. */
static uint32_t spin(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in, (void)in_len, (void)r;
    while (spinning)
        __asm__ volatile("pause");
    return NUB_STATUS_OK;
}

/* fn 3: calls the host's tick function over and over, forever. */
static uint32_t tick_forever(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in, (void)in_len;
    for (;;) {
        struct nub_host_result res;
        uint32_t st = nub_host_call_begin(HOST_FN_TICK, NULL, 0, &res);
        nub_host_call_end(&res);
        if (st != NUB_STATUS_OK)
            return nub_reply_error(r, st, "tick failed");
    }
}

void nub_guest_init(void)
{
    nub_register(1, refuse);
    nub_register(2, spin);
    nub_register(3, tick_forever);
}
