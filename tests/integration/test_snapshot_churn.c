/* Integration test of sandboxes from a snapshot for leaks: no fd or mapping left over 1,000 create/destroy cycles, on every backend. */
#include "snapshot_helpers.h"

/*
 * Cycles per backend. kvm runs its integration suite inside QEMU's software
 * emulator (tests/kvm/run.sh), where one nested VM creation takes 0.1-0.3 s,
 * so 1,000 would not fit the stage's per-binary limit: it does 200 there.
 * NUB_TEST_CHURN overrides both.
 */
static int cycles(enum nub_backend backend)
{
    const char *v = getenv("NUB_TEST_CHURN");
    if (v != NULL && atoi(v) > 0)
        return atoi(v);
    return backend == NUB_BACKEND_KVM ? 200 : 1000;
}

BACKEND_TEST(snapshot_churn, no_fd_or_mapping_leak_over_create_destroy_cycles)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    nub_sandbox_destroy(from_snap(evo, NULL));
    int fds = count_fds(), maps = count_maps(), n = cycles(backend);
    for (int i = 0; i < n; i++)
        nub_sandbox_destroy(from_snap(evo, NULL));
    cr_assert_eq(count_fds(), fds, "fds after %d create/destroy cycles", n);
    if (NUB_TEST_MEMORY_COUNTS)
        cr_assert_eq(count_maps(), maps, "mappings after %d create/destroy cycles", n);
    nub_sandbox *sb = from_snap(evo, NULL);
    nub_snapshot_release(evo); /* the last sandbox outlives the caller's reference */
    expect_echo(sb);
    nub_sandbox_destroy(sb);
}
