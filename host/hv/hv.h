/* Hypervisor backend interface: one ops table (kvm, emu) with normalised vCPU exits. */
#ifndef NUB_HOST_HV_H
#define NUB_HOST_HV_H

#include <stddef.h>
#include <stdint.h>

#include "nub/nub.h"

/* Normalised reasons a vCPU stopped. */
enum nub_hv_exit_kind {
    NUB_HV_EXIT_IO_OUT = 1,   /* OUT: port, size, value; RIP is past the instruction */
    NUB_HV_EXIT_IO_IN,        /* IN: port, size (never serviced: protocol violation) */
    NUB_HV_EXIT_HALT,         /* HLT */
    NUB_HV_EXIT_MMIO,         /* access to guest-physical memory that is not backed: addr */
    NUB_HV_EXIT_FAULT,        /* CPU exception: vector, error_code, addr (CR2), rip */
    NUB_HV_EXIT_SHUTDOWN,     /* triple fault / shutdown */
    NUB_HV_EXIT_CANCELLED,    /* nub_hv_ops.interrupt() took effect */
    NUB_HV_EXIT_INTERNAL,     /* backend failure the guest cannot cause; msg says what */
    NUB_HV_EXIT_PROTOCOL,     /* the guest made an exit the protocol has no place for (string OUT,
                                 an exit reason nub never asks for); msg says what */
    NUB_HV_EXIT_DEBUG,        /* debugging only (set_debug): breakpoint or step; debug says which */
};

/* nub_hv_exit.debug for NUB_HV_EXIT_DEBUG. RIP is the next instruction to run. */
enum nub_hv_debug_stop {
    NUB_HV_DBG_STEP = 1, /* one instruction was stepped */
    NUB_HV_DBG_SW_BP,    /* a software breakpoint is at RIP */
    NUB_HV_DBG_HW_BP,    /* a hardware breakpoint is at RIP */
};

/*
 * Rule for backends: an exit that guest state or a guest instruction can
 * cause is FAULT (with a vector 0..31), SHUTDOWN, IO_IN, HALT, MMIO or
 * PROTOCOL, never INTERNAL; INTERNAL (and a run() failure) is kept for the
 * hypervisor or emulator itself failing (docs/errors.md lists each mapping).
 */

struct nub_hv_exit {
    enum nub_hv_exit_kind kind;
    uint16_t port;        /* IO_OUT / IO_IN */
    uint8_t size;         /* IO access width in bytes (1, 2, 4) */
    uint32_t value;       /* IO_OUT value */
    uint64_t addr;        /* MMIO address, or fault address (CR2) */
    uint64_t vector;      /* FAULT: exception vector */
    uint64_t error_code;  /* FAULT: exception error code, 0 if none */
    uint64_t rip;         /* instruction pointer at the exit */
    uint32_t debug;       /* DEBUG: enum nub_hv_debug_stop */
    char msg[160];        /* INTERNAL / FAULT: human-readable detail, NUL-terminated (FAULT: without
                           * the rip, which the call path prints from `rip`) */
};

/* General-purpose registers, RIP and RFLAGS. */
struct nub_hv_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
};

/* A segment register in portable form; attr uses the VMX access-rights
 * layout (type 0-3, S 4, DPL 5-6, P 7, AVL 12, L 13, D/B 14, G 15). */
struct nub_hv_seg {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint16_t attr;
};

/*
 * The vCPU state a snapshot carries (nub_sandbox_snapshot), the same on
 * every backend so a snapshot taken on one runs on another: registers,
 * the descriptor tables and task register the guest loaded at init, FS/GS
 * bases and the x87/SSE control words. CR0/CR3/CR4/EFER and the code and
 * data selectors are nub's fixed long-mode setup (see nub_hv_config) and
 * are not part of it.
 */
struct nub_hv_cpu {
    struct nub_hv_regs regs;
    uint64_t gdt_base, idt_base;
    uint32_t gdt_limit, idt_limit;
    struct nub_hv_seg tr;
    uint64_t fs_base, gs_base;
    uint32_t mxcsr;
    uint16_t fcw;
    uint16_t reserved;
};

/* x87/SSE state in the FXSAVE layout (Intel SDM vol. 1, 10.5.1), as an ELF NT_FPREGSET wants it. */
struct nub_hv_fpu {
    uint8_t fxsave[512];
};

/* One guest-physical region backed by host memory the caller owns. */
struct nub_hv_region {
    uint64_t gpa;
    uint64_t size;   /* multiple of the page size */
    void *host;      /* page-aligned host mapping of `size` bytes */
};

/*
 * Everything a backend needs to create a VM in 64-bit long mode: the
 * memory regions, and the root of the host-built 4-level page tables (a
 * GPA inside one of the regions). The backend sets CR0 = PE|MP|ET|NE|WP|PG,
 * CR4 = PAE|OSFXSR|OSXMMEXCPT, EFER = LME|LMA|NXE|SCE, CR3 = cr3, and flat
 * 64-bit code (selector 0x08) and data (0x10) segments: the NUB_X86_*_LONG_MODE
 * and NUB_X86_SEL_* values of common/x86_64.h.
 */
struct nub_hv_config {
    const struct nub_hv_region *regions;
    size_t nregions;
    uint64_t cr3;
};

struct nub_hv; /* a backend's VM + vCPU */

#define NUB_HV_MAX_HW_BP 4   /* x86 debug registers DR0-DR3 */
#define NUB_HV_MAX_SW_BP 64

/*
 * Debug state for the gdb stub (gdb.c), installed with set_debug() before
 * each run while a debugger is attached; never used otherwise. Breakpoints
 * are guest virtual addresses of instructions. The first instruction of a
 * run never stops at a breakpoint (so a run can start on one); with
 * single_step the run stops before the second.
 */
struct nub_hv_debug {
    int enabled;                  /* 0: no debugging (the rest is ignored) */
    int single_step;
    size_t nsw;                   /* software breakpoints (emu only: see sw_bp_in_memory) */
    uint64_t sw[NUB_HV_MAX_SW_BP];
    size_t nhw;                   /* hardware breakpoints */
    uint64_t hw[NUB_HV_MAX_HW_BP];
    uint64_t written, written_len; /* guest memory the debugger wrote since the last call (0 len: none) */
};

struct nub_hv_ops {
    const char *name;
    /* NUB_OK, or NUB_E_NO_HYPERVISOR with the reason in why. */
    nub_status (*available)(char *why, size_t why_len);
    /*
     * Create the VM and its vCPU. The emu backend walks the page tables
     * now (it maps every virtual run onto the host memory with the PTE
     * permissions), so the tables must be complete. Errors:
     * NUB_E_NO_HYPERVISOR, NUB_E_NOMEM, NUB_E_BACKEND with `err` filled.
     */
    nub_status (*create)(const struct nub_hv_config *cfg, struct nub_hv **out,
                         char *err, size_t err_len);
    void (*destroy)(struct nub_hv *hv);
    nub_status (*set_regs)(struct nub_hv *hv, const struct nub_hv_regs *regs);
    nub_status (*get_regs)(struct nub_hv *hv, struct nub_hv_regs *regs);
    /* Read / load the whole nub_hv_cpu state (snapshots and restore).
     * NUB_E_BACKEND when the backend refuses it. */
    nub_status (*get_cpu)(struct nub_hv *hv, struct nub_hv_cpu *cpu);
    nub_status (*set_cpu)(struct nub_hv *hv, const struct nub_hv_cpu *cpu);
    /* The vCPU's x87/SSE state (for crash dumps); NUB_E_BACKEND on failure. */
    nub_status (*get_fpu)(struct nub_hv *hv, struct nub_hv_fpu *fpu);
    /*
     * Run until the next exit. After an IO_OUT exit, run() again resumes at
     * the instruction after the OUT. Returns NUB_OK with *exit filled, or
     * NUB_E_BACKEND when the backend itself broke (exit->msg says why).
     */
    nub_status (*run)(struct nub_hv *hv, struct nub_hv_exit *exit);
    /*
     * Stop the running vCPU from another thread: run() returns with
     * NUB_HV_EXIT_CANCELLED. An interrupt that arrives while run() is not
     * executing makes the next run() return NUB_HV_EXIT_CANCELLED at once;
     * clear_interrupt() discards it.
     */
    void (*interrupt)(struct nub_hv *hv);
    void (*clear_interrupt)(struct nub_hv *hv);
    /*
     * Install debug state (copied) for the next run() calls; dbg NULL or
     * !dbg->enabled turns debugging off and restores the normal path.
     * NUB_E_INVALID for more breakpoints than the limits, NUB_E_BACKEND
     * with err filled when the backend refuses.
     */
    nub_status (*set_debug)(struct nub_hv *hv, const struct nub_hv_debug *dbg, char *err,
                            size_t err_len);
    /*
     * 1: software breakpoints are int3 bytes the caller writes into guest
     * memory itself (kvm); 0: the backend watches dbg->sw (emu).
     */
    int sw_bp_in_memory;
    /* Debugging: the guest IDT's base (GVA) and limit as the vCPU has them; NUB_E_BACKEND if unreadable. NULL on emu. */
    nub_status (*get_idt)(struct nub_hv *hv, uint64_t *base, uint16_t *limit);
};

/* The emulated-CPU backend (Unicorn). */
const struct nub_hv_ops *nub_hv_emu_ops(void);

/* Stop hooks the emu backend has alive (at most a fixed bound, whatever the guest runs). */
size_t nub_hv_emu_stop_hooks(const struct nub_hv *hv);

/* The Linux KVM backend (/dev/kvm). */
const struct nub_hv_ops *nub_hv_kvm_ops(void);

/* Write a formatted message into buf (always NUL-terminated when buf_len > 0). */
void nub_hv_fmt(char *buf, size_t buf_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* NUB_HOST_HV_H */
