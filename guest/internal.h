/* Guest SDK internals: the single runtime-state struct and the functions the SDK's files share (not installed). */
#ifndef NUB_GUEST_INTERNAL_H
#define NUB_GUEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nub/abi.h"
#include "nub/guest.h"
#include "x86_64.h" /* selectors, descriptors, vectors: the same values the host loads */

/* 64-bit TSS (Intel SDM vol. 3, 8.7). */
struct nub_tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct nub_tss64) == NUB_X86_TSS64_SIZE, "64-bit TSS is 104 bytes");

/* 64-bit interrupt gate descriptor. */
struct nub_idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
};
_Static_assert(sizeof(struct nub_idt_gate) == 16, "IDT gate is 16 bytes");

/* Operand of LGDT / LIDT. */
struct __attribute__((packed)) nub_dtr {
    uint16_t limit;
    uint64_t base;
};

/* What the exception stubs (entry.S) leave on the IST1 stack. */
struct nub_exn_frame {
    uint64_t vector;
    uint64_t error_code; /* 0 for vectors without one */
    uint64_t rip;
    uint64_t cs;
    uint64_t rflags;
    uint64_t rsp;
    uint64_t ss;
};

/* Descriptor tables: null, code, data, TSS (two slots). */
struct nub_cpu_tables {
    uint64_t gdt[5] __attribute__((aligned(16)));
    struct nub_idt_gate idt[NUB_X86_EXN_VECTORS] __attribute__((aligned(16)));
    struct nub_tss64 tss __attribute__((aligned(16)));
};

struct nub_fn_entry {
    uint32_t id;
    nub_guest_fn fn;
};

/* The reply of the call in progress (see guest.h, "Building the reply"). */
struct nub_reply {
    uint32_t active;     /* a provisional response frame sits in the output buffer */
    uint32_t err_len;    /* staged error message bytes (next to active: one store clears both) */
    uint64_t len;        /* payload length */
    uint64_t frame_off;  /* start offset of the provisional frame (while active) */
    char err[NUB_GUEST_ERROR_MAX];
};

struct nub_free_blk;

struct nub_heap {
    uintptr_t start;                 /* first block header (16-aligned) */
    uintptr_t end;                   /* one past the last block */
    struct nub_free_blk *free_list;  /* address-ordered */
    struct nub_heap_stats stats;
};

/* All mutable state of the guest runtime. */
struct nub_rt {
    struct nub_peb *peb;
    uint8_t *input;
    uint64_t input_size;
    uint8_t *output;
    uint64_t output_size;
    uint64_t seed;
    uint64_t page_size;
    uint32_t max_log_level;
    uint32_t in_exception;
    uint32_t fn_count;
    struct nub_fn_entry fns[NUB_GUEST_MAX_FNS];
    struct nub_heap heap;
    struct nub_reply reply;
    struct nub_cpu_tables cpu;
};

extern struct nub_rt nub_rt;

/* entry.S */
extern const uint64_t nub_exn_stubs[NUB_X86_EXN_VECTORS];
void nub_dispatch_entry(void);

/* boot.c: called by _start with the host's boot registers. */
NUB_NORETURN void nub_guest_boot(struct nub_peb *peb, uint64_t seed, uint64_t page_size,
                                 uint64_t max_log_level);
/* dispatch.c: called by nub_dispatch_entry for each host call into the guest. */
NUB_NORETURN void nub_guest_dispatch(void);
/* exception.c: called by the exception stubs on IST1. */
NUB_NORETURN void nub_guest_exception(const struct nub_exn_frame *frame);
/* exception.c: load an empty IDT and fault (the host sees a triple fault). */
NUB_NORETURN void nub_triple_fault(void);

/* cpu.c: install GDT, TSS (IST1 = exn_stack_top) and IDT. */
void nub_cpu_init(uint64_t exn_stack_top);
/* heap.c: manage [base, base + size). */
void nub_heap_init(uintptr_t base, uint64_t size);
/* reply.c */
void nub_reply_begin(struct nub_reply *reply);
void nub_reply_finish(struct nub_reply *reply, uint32_t status);
/* reply.c: push a response without a function (unknown fn, bad request). */
void nub_reply_fail(uint32_t status, const char *fmt, ...) NUB_PRINTF(2, 3);

NUB_NORETURN static inline void nub_hlt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt" ::: "memory");
}

#endif /* NUB_GUEST_INTERNAL_H */
