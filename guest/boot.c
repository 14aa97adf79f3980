/* Guest boot: validates the PEB, installs descriptor tables and the heap, runs nub_guest_init, publishes the dispatch entry. */
#include <stdint.h>

#include "internal.h"
#include "nub/wire.h"

/* The guest runtime's state (see internal.h). */
struct nub_rt nub_rt;

static int io_buffer_ok(uint64_t gva, uint64_t size)
{
    return gva != 0 && gva % 8 == 0 && size >= NUB_WIRE_MIN_SIZE && size % 8 == 0;
}

static void check_peb(const struct nub_peb *peb)
{
    if (peb == NULL || peb->magic != NUB_PEB_MAGIC)
        nub_abort(NUB_GUEST_ABORT_BOOT, "boot: no PEB at %p", (const void *)peb);
    if (peb->abi_version != NUB_ABI_VERSION)
        nub_abort(NUB_GUEST_ABORT_BOOT, "boot: PEB ABI version %u, guest SDK speaks %u",
                  peb->abi_version, NUB_ABI_VERSION);
    if (!io_buffer_ok(peb->input_gva, peb->input_size) ||
        !io_buffer_ok(peb->output_gva, peb->output_size))
        nub_abort(NUB_GUEST_ABORT_BOOT, "boot: input or output buffer unusable");
    if (peb->exn_stack_gva == 0 || peb->exn_stack_size < 1024)
        nub_abort(NUB_GUEST_ABORT_BOOT, "boot: no exception stack");
}

void nub_guest_boot(struct nub_peb *peb, uint64_t seed, uint64_t page_size, uint64_t max_log_level)
{
    check_peb(peb);
    nub_rt.peb = peb;
    nub_rt.input = (uint8_t *)(uintptr_t)peb->input_gva;
    nub_rt.input_size = peb->input_size;
    nub_rt.output = (uint8_t *)(uintptr_t)peb->output_gva;
    nub_rt.output_size = peb->output_size;
    nub_rt.seed = seed;
    nub_rt.page_size = page_size;
    nub_rt.max_log_level = max_log_level > NUB_LOG_LEVEL_TRACE ? NUB_LOG_LEVEL_TRACE
                                                                : (uint32_t)max_log_level;
    nub_cpu_init(peb->exn_stack_gva + peb->exn_stack_size);
    nub_heap_init((uintptr_t)peb->heap_gva, peb->heap_size);
    nub_guest_init();
    peb->dispatch_gva = (uint64_t)(uintptr_t)nub_dispatch_entry;
    nub_halt();
}
