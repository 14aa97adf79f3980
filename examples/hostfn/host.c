/* Example host for examples/hostfn: register host functions the guest calls back into during a call. */
#include <nub/nub.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define HOST_FN_UPPER 100u
#define HOST_FN_FAIL  101u

/* The guest's request is call->payload (a view of guest memory, valid only
 * during the callback); the answer goes to call->result, at most result_cap
 * bytes. `ctx` is what was passed to nub_sandbox_register: here a counter. */
static int upper(void *ctx, struct nub_host_call *call)
{
    unsigned *calls = ctx;
    ++*calls;
    if (call->payload_len > call->result_cap) {
        snprintf(call->error, sizeof call->error, "%zu bytes do not fit", call->payload_len);
        return 1;
    }
    for (size_t i = 0; i < call->payload_len; i++)
        call->result[i] = (uint8_t)toupper(call->payload[i]);
    call->result_len = call->payload_len;
    return 0;
}

/* A failing host function: non-zero plus a message; the guest sees
 * NUB_STATUS_HOST_ERROR with that message. */
static int fail(void *ctx, struct nub_host_call *call)
{
    (void)ctx;
    snprintf(call->error, sizeof call->error, "no such file");
    return 1;
}

int main(int argc, char **argv)
{
    const char *guest = argc > 1 ? argv[1] : "guest.elf";
    nub_sandbox *sb;
    struct nub_error err;
    if (nub_sandbox_new_from_file(guest, NULL, NULL, &sb, &err) != NUB_OK) {
        fprintf(stderr, "hostfn: %s: %s\n", guest, err.message);
        return 1;
    }
    /* Host functions are registered before evolve. */
    unsigned calls = 0;
    if (nub_sandbox_register(sb, HOST_FN_UPPER, upper, &calls) != NUB_OK ||
        nub_sandbox_register(sb, HOST_FN_FAIL, fail, NULL) != NUB_OK ||
        nub_sandbox_evolve(sb) != NUB_OK) {
        fprintf(stderr, "hostfn: %s\n", nub_sandbox_last_error(sb)->message);
        nub_sandbox_destroy(sb);
        return 1;
    }

    /* nub_call_into copies the result into our buffer: no allocation. */
    char out[256];
    size_t out_len;
    nub_status rc = nub_call_into(sb, 1, "quiet please", 12, out, sizeof out, &out_len);
    if (rc == NUB_OK)
        printf("%.*s (host function ran %u time)\n", (int)out_len, out, calls);
    else
        printf("fn 1: %s\n", nub_sandbox_last_error(sb)->message);

    /* The host function's failure travels through the guest, which reports it. */
    rc = nub_call_into(sb, 2, NULL, 0, out, sizeof out, &out_len);
    printf("fn 2: %s: %s\n", nub_strerror(rc), nub_sandbox_last_error(sb)->message);

    nub_sandbox_destroy(sb);
    return 0;
}
