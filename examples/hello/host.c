/* Example host for examples/hello: create a sandbox from a guest ELF, run its init, call a guest function, and read a failure. */
#include <nub/nub.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *guest = argc > 1 ? argv[1] : "guest.elf";
    struct nub_config cfg;
    nub_config_default(&cfg); /* backend: auto, or $NUB_BACKEND (kvm|emu) */

    /* 1. A sandbox: guest memory, page tables and a VM (or emulated CPU). */
    nub_sandbox *sb;
    struct nub_error err;
    if (nub_sandbox_new_from_file(guest, NULL, &cfg, &sb, &err) != NUB_OK) {
        fprintf(stderr, "hello: %s: %s\n", guest, err.message);
        return 1;
    }

    /* 2. Run the guest's init: it registers its functions. */
    nub_status rc = nub_sandbox_evolve(sb);
    if (rc != NUB_OK) {
        fprintf(stderr, "hello: evolve: %s\n", nub_sandbox_last_error(sb)->message);
        nub_sandbox_destroy(sb);
        return 1;
    }

    /* 3. Call fn 1: bytes in, bytes out. The result is malloc'd: nub_buffer_free it. */
    const char *name = "world";
    uint8_t *out;
    size_t out_len;
    rc = nub_call(sb, 1, name, strlen(name), &out, &out_len);
    if (rc != NUB_OK) {
        fprintf(stderr, "hello: call: %s\n", nub_sandbox_last_error(sb)->message);
        nub_sandbox_destroy(sb);
        return 1;
    }
    printf("%.*s\n", (int)out_len, (const char *)out);
    nub_buffer_free(out);

    /* 4. A function the guest does not have: a guest error, with the guest's
     *    status; the sandbox stays usable. */
    rc = nub_call(sb, 99, NULL, 0, &out, &out_len);
    printf("fn 99: %s, guest status %u\n", nub_strerror(rc), nub_sandbox_last_error(sb)->guest_status);

    nub_sandbox_destroy(sb);
    return 0;
}
