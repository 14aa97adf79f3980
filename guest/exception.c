/* CPU exception reporting: fills the abort record from the exception frame and CR2, signals NUB_PORT_ABORT, halts. */
#include <stdint.h>

#include "internal.h"


static const char *const exn_names[NUB_X86_EXN_VECTORS] = {
    [0] = "divide error",
    [1] = "debug exception",
    [2] = "non-maskable interrupt",
    [3] = "breakpoint",
    [4] = "overflow",
    [5] = "bound range exceeded",
    [6] = "invalid opcode",
    [7] = "device not available",
    [8] = "double fault",
    [9] = "coprocessor segment overrun",
    [10] = "invalid TSS",
    [11] = "segment not present",
    [12] = "stack-segment fault",
    [13] = "general protection fault",
    [14] = "page fault",
    [16] = "x87 floating-point error",
    [17] = "alignment check",
    [18] = "machine check",
    [19] = "SIMD floating-point exception",
    [20] = "virtualization exception",
    [21] = "control protection exception",
    [28] = "hypervisor injection exception",
    [29] = "VMM communication exception",
    [30] = "security exception",
};

static uint64_t read_cr2(void)
{
    uint64_t v;
    __asm__ volatile("movq %%cr2, %0" : "=r"(v));
    return v;
}

/* "page fault (write, protection violation)" etc. into msg; returns the full length. */
static size_t describe(char *msg, size_t cap, uint64_t vector, uint64_t err)
{
    const char *name = vector < NUB_X86_EXN_VECTORS ? exn_names[vector] : NULL;
    if (name == NULL)
        return nub_format(msg, cap, "reserved exception %u", (unsigned)vector);
    if (vector == NUB_X86_VEC_GP && (err & NUB_X86_ERR_IDT)) /* e.g. `int n` past the IDT */
        return nub_format(msg, cap, "%s: no IDT gate for vector %u", name, (unsigned)(err >> 3));
    if (vector != NUB_X86_VEC_PF)
        return nub_format(msg, cap, "%s", name);
    const char *access = (err & NUB_X86_PF_I) ? "instruction fetch" : (err & NUB_X86_PF_W) ? "write" : "read";
    const char *why = (err & NUB_X86_PF_P) ? "protection violation" : "not present";
    return nub_format(msg, cap, "%s (%s, %s)", name, access, why);
}

NUB_NORETURN void nub_triple_fault(void)
{
    struct nub_dtr empty = {.limit = 0, .base = 0};
    __asm__ volatile("lidt %0\n\tud2" : : "m"(empty) : "memory");
    nub_hlt_forever();
}

NUB_NORETURN void nub_guest_exception(const struct nub_exn_frame *frame)
{
    /* A fault while reporting a fault: nothing sensible can be written. */
    if (nub_rt.in_exception)
        nub_triple_fault();
    nub_rt.in_exception = 1;
    /* entry.S saved the interrupted registers right below the frame: mark them for the host. */
    struct nub_exn_regs *saved = (struct nub_exn_regs *)((uintptr_t)frame - sizeof(struct nub_exn_regs));
    saved->magic = NUB_EXN_REGS_MAGIC;
    struct nub_scratch_top *top = (struct nub_scratch_top *)(uintptr_t)NUB_SCRATCH_TOP_GVA;
    struct nub_abort_record *rec = &top->abort_rec;
    rec->kind = NUB_ABORT_EXCEPTION;
    rec->flags = 0;
    rec->code = 0;
    rec->vector = frame->vector;
    rec->error_code = frame->error_code;
    rec->fault_addr = read_cr2();
    rec->rip = frame->rip;
    rec->reserved = 0;
    size_t len = describe(rec->msg, sizeof(rec->msg), frame->vector, frame->error_code);
    rec->msg_len = (uint32_t)(len < sizeof(rec->msg) ? len : sizeof(rec->msg));
    nub_outl(NUB_PORT_ABORT, NUB_ABORT_EXCEPTION);
    nub_hlt_forever();
}
