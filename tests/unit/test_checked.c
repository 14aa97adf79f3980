/* Unit tests of the checked arithmetic helpers (common/checked.h) at their overflow boundaries. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "checked.h"

Test(checked, add_and_add3)
{
    uint64_t r = 7;
    cr_assert(nub_add_u64(UINT64_MAX - 1, 1, &r) && r == UINT64_MAX);
    r = 7;
    cr_assert(!nub_add_u64(UINT64_MAX, 1, &r));
    cr_assert_eq(r, 7, "untouched on overflow");
    cr_assert(nub_add3_u64(1, 2, 3, &r) && r == 6);
    cr_assert(!nub_add3_u64(UINT64_MAX - 2, 2, 1, &r));
    cr_assert(!nub_add3_u64(UINT64_MAX, 0, 1, &r));
}

Test(checked, mul)
{
    uint64_t r = 0;
    cr_assert(nub_mul_u64(UINT64_C(1) << 32, (UINT64_C(1) << 32) - 1, &r) &&
              r == (UINT64_C(1) << 32) * ((UINT64_C(1) << 32) - 1));
    cr_assert(!nub_mul_u64(UINT64_C(1) << 32, UINT64_C(1) << 32, &r));
    cr_assert(nub_mul_u64(0, UINT64_MAX, &r) && r == 0);
}

Test(checked, align_up)
{
    uint64_t r = 1;
    cr_assert(nub_align_up_u64(0, 4096, &r) && r == 0);
    cr_assert(nub_align_up_u64(1, 4096, &r) && r == 4096);
    cr_assert(nub_align_up_u64(4096, 4096, &r) && r == 4096);
    cr_assert(nub_align_up_u64(UINT64_MAX - 4095, 4096, &r) && r == UINT64_MAX - 4095);
    cr_assert(!nub_align_up_u64(UINT64_MAX - 4094, 4096, &r), "would wrap to 0");
    cr_assert(!nub_align_up_u64(5, 0, &r) && !nub_align_up_u64(5, 3, &r), "not a power of two");
}

Test(checked, ranges)
{
    cr_assert(nub_range_inside(0, 10, 10));
    cr_assert(nub_range_inside(10, 0, 10));
    cr_assert(!nub_range_inside(11, 0, 10));
    cr_assert(!nub_range_inside(5, 6, 10));
    cr_assert(!nub_range_inside(1, UINT64_MAX, 10), "off + len wraps");
    cr_assert(!nub_range_inside(UINT64_MAX, 2, UINT64_MAX));
    cr_assert(nub_ranges_overlap(0, 10, 9, 1));
    cr_assert(!nub_ranges_overlap(0, 10, 10, 1));
    cr_assert(!nub_ranges_overlap(0, 0, 0, 1), "empty ranges overlap nothing");
    size_t s = 0;
    cr_assert(nub_u64_to_size(123, &s) && s == 123);
}
