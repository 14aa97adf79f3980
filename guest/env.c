/* Guest environment accessors: PEB, seed, page size, log level, init data, guest counter, boot info, halt. */
#include <stdint.h>

#include "internal.h"

const struct nub_peb *nub_peb(void)
{
    return nub_rt.peb;
}

uint64_t nub_seed(void)
{
    return nub_rt.seed;
}

uint64_t nub_page_size(void)
{
    return nub_rt.page_size;
}

uint32_t nub_max_log_level(void)
{
    /* The host rewrites this word whenever its level changes; RCX at boot is only the first value. */
    const volatile uint32_t *live =
        (const volatile uint32_t *)(uintptr_t)(NUB_SCRATCH_TOP_GVA + NUB_PAGE_SIZE - NUB_SCRATCH_TOP_LOG_LEVEL_OFFSET);
    uint32_t level = *live;
    return level > NUB_LOG_LEVEL_TRACE ? NUB_LOG_LEVEL_TRACE : level;
}

const uint8_t *nub_init_data(size_t *len)
{
    const struct nub_peb *peb = nub_rt.peb;
    int none = peb == NULL || peb->init_data_gva == 0;
    if (len != NULL)
        *len = none ? 0 : (size_t)peb->init_data_size;
    return none ? NULL : (const uint8_t *)(uintptr_t)peb->init_data_gva;
}

uint64_t nub_guest_counter(void)
{
    const volatile uint64_t *counter = (const volatile uint64_t *)(uintptr_t)(
        NUB_MAX_GVA + 1ull - NUB_SCRATCH_TOP_GUEST_COUNTER_OFFSET);
    return *counter;
}

void nub_set_boot_info(const struct nub_boot_info *info)
{
    nub_rt.peb->boot_info_gva = (uint64_t)(uintptr_t)info;
}

void nub_halt(void)
{
    nub_outl(NUB_PORT_HALT, 0);
    nub_hlt_forever();
}
