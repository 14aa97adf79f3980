/* Integration test of sandboxes from a snapshot for leaks: no fd or mapping left over 1,000 create/destroy cycles, on every backend. */
#include "snapshot_helpers.h"

BACKEND_TEST(snapshot_churn, no_fd_or_mapping_leak_over_1000_creations)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    nub_sandbox_destroy(from_snap(evo, NULL));
    int fds = count_fds(), maps = count_maps();
    for (int i = 0; i < 1000; i++)
        nub_sandbox_destroy(from_snap(evo, NULL));
    cr_assert_eq(count_fds(), fds, "fds after 1,000 create/destroy");
    if (NUB_TEST_MEMORY_COUNTS)
        cr_assert_eq(count_maps(), maps, "mappings after 1,000 create/destroy");
    nub_sandbox *sb = from_snap(evo, NULL);
    nub_snapshot_release(evo); /* the last sandbox outlives the caller's reference */
    expect_echo(sb);
    nub_sandbox_destroy(sb);
}
