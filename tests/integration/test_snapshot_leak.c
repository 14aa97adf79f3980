/* Integration test of restore for leaks: no fd or mapping left over 10,000 restores, on every backend. */
#include "snapshot_helpers.h"

BACKEND_TEST(snapshot_leak, no_fd_or_mapping_leak_over_10000_restores)
{
    nub_snapshot *evo = evolved_snapshot(backend, 0);
    nub_sandbox *sb = from_snap(evo, NULL);
    write_pages(sb, 1);
    cr_assert_eq(nub_sandbox_restore(sb, evo), NUB_OK);
    int fds = count_fds(), maps = count_maps();
    for (int i = 0; i < 10000; i++) {
        if (i % 100 == 0)
            write_pages(sb, 2);
        nub_status rc = nub_sandbox_restore(sb, evo);
        cr_assert_eq(rc, NUB_OK, "restore %d: %s", i, nub_sandbox_last_error(sb)->message);
    }
    cr_assert_eq(count_fds(), fds, "fds after 10,000 restores");
    if (NUB_TEST_MEMORY_COUNTS)
        cr_assert_eq(count_maps(), maps, "mappings after 10,000 restores");
    expect_echo(sb);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(evo);
}
