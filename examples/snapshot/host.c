/* Example host for examples/snapshot: capture an evolved sandbox, start more sandboxes from it, and restore a sandbox after a crash. */
#include <nub/nub.h>
#include <stdio.h>
#include <string.h>

/* Call fn 1 (the counter) and return its value, or 0 after printing the error. */
static uint64_t next(nub_sandbox *sb)
{
    uint64_t v = 0;
    size_t len;
    if (nub_call_into(sb, 1, NULL, 0, &v, sizeof v, &len) != NUB_OK || len != sizeof v) {
        printf("next: %s\n", nub_sandbox_last_error(sb)->message);
        return 0;
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *guest = argc > 1 ? argv[1] : "guest.elf";
    struct nub_error err;

    /* The pre-init image: the ELF is parsed and laid out once. */
    nub_snapshot *pre, *ready;
    if (nub_snapshot_from_file(guest, NULL, NULL, &pre, &err) != NUB_OK) {
        fprintf(stderr, "snapshot: %s: %s\n", guest, err.message);
        return 1;
    }
    nub_sandbox *sb;
    if (nub_sandbox_new_from_snapshot(pre, NULL, &sb, &err) != NUB_OK) {
        fprintf(stderr, "snapshot: %s\n", err.message);
        nub_snapshot_release(pre);
        return 1;
    }
    nub_snapshot_release(pre); /* the sandbox keeps what it needs */
    if (nub_sandbox_evolve(sb) != NUB_OK) {
        fprintf(stderr, "snapshot: evolve: %s\n", nub_sandbox_last_error(sb)->message);
        nub_sandbox_destroy(sb);
        return 1;
    }
    printf("counter: %llu\n", (unsigned long long)next(sb));

    /* Capture the evolved sandbox, counter = 1: sandboxes from it skip init. */
    if (nub_sandbox_snapshot(sb, &ready) != NUB_OK) {
        fprintf(stderr, "snapshot: capture: %s\n", nub_sandbox_last_error(sb)->message);
        nub_sandbox_destroy(sb);
        return 1;
    }
    printf("counter: %llu\n", (unsigned long long)next(sb));
    printf("counter: %llu\n", (unsigned long long)next(sb));

    /* Restore: back to the captured state, whatever happened since. */
    nub_sandbox_restore(sb, ready);
    printf("after restore, counter: %llu\n", (unsigned long long)next(sb));

    /* A crash poisons the sandbox; a restore makes it usable again. */
    uint8_t buf[8];
    size_t len;
    nub_status rc = nub_call_into(sb, 2, NULL, 0, buf, sizeof buf, &len);
    printf("crash: %s (vector %llu)\n", nub_strerror(rc),
           (unsigned long long)nub_sandbox_last_error(sb)->vector);
    printf("then: %s\n", nub_strerror(nub_call_into(sb, 1, NULL, 0, buf, sizeof buf, &len)));
    rc = nub_sandbox_restore(sb, ready);
    printf("restore: %s, counter: %llu\n", nub_strerror(rc), (unsigned long long)next(sb));

    /* A second sandbox from the same snapshot shares its memory copy-on-write. */
    nub_sandbox *sb2;
    if (nub_sandbox_new_from_snapshot(ready, NULL, &sb2, &err) == NUB_OK) {
        printf("second sandbox, counter: %llu\n", (unsigned long long)next(sb2));
        nub_sandbox_destroy(sb2);
    } else {
        fprintf(stderr, "snapshot: %s\n", err.message);
    }

    nub_sandbox_destroy(sb);
    nub_snapshot_release(ready);
    return 0;
}
