/* Example guest for examples/snapshot: a counter that lives in guest memory, and a function that crashes. */
#include <nub/guest.h>

static uint64_t counter; /* guest state: survives calls, not restores */

/* fn 1: add one to the counter and return it (u64, little-endian). */
static uint32_t next(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in, (void)in_len;
    counter++;
    return nub_reply_set(r, &counter, sizeof counter);
}

/* A null pointer the compiler cannot see through. */
static const volatile uint8_t *volatile nowhere;

/* fn 2: read address 0, which is never mapped: a page fault (#PF). */
static uint32_t crash(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in, (void)in_len, (void)r;
    return *nowhere;
}

void nub_guest_init(void)
{
    nub_register(1, next);
    nub_register(2, crash);
}
