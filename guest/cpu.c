/* Guest descriptor tables: builds and loads the GDT (flat 64-bit code/data + TSS), the TSS with IST1, and the exception IDT. */
#include <stdint.h>

#include "internal.h"

/* Low and high 8-byte halves of a 16-byte system descriptor for the TSS. */
static void tss_descriptor(uint64_t *slot, uint64_t base, uint32_t limit)
{
    slot[0] = (uint64_t)(limit & 0xffffu) | (base & 0xffffffull) << 16 |
              (uint64_t)NUB_X86_TSS_ACCESS << 40 | (uint64_t)((limit >> 16) & 0xfu) << 48 |
              ((base >> 24) & 0xffull) << 56;
    slot[1] = base >> 32;
}

static void build_gdt(struct nub_cpu_tables *t)
{
    t->gdt[0] = 0;
    t->gdt[NUB_X86_SEL_CODE / 8] = NUB_X86_GDT_CODE64;
    t->gdt[NUB_X86_SEL_DATA / 8] = NUB_X86_GDT_DATA;
    tss_descriptor(&t->gdt[NUB_X86_SEL_TSS / 8], (uint64_t)(uintptr_t)&t->tss,
                   (uint32_t)sizeof(t->tss) - 1u);
}

static void build_tss(struct nub_tss64 *tss, uint64_t exn_stack_top)
{
    *tss = (struct nub_tss64){0};
    tss->ist[0] = exn_stack_top & ~(uint64_t)15;  /* IST1 */
    tss->iomap_base = (uint16_t)sizeof(*tss);      /* no I/O permission bitmap */
}

static void build_idt(struct nub_cpu_tables *t)
{
    for (unsigned v = 0; v < NUB_X86_EXN_VECTORS; v++) {
        uint64_t off = nub_exn_stubs[v];
        t->idt[v] = (struct nub_idt_gate){
            .offset_lo = (uint16_t)off,
            .selector = NUB_X86_SEL_CODE,
            .ist = 1,
            .type_attr = NUB_X86_IDT_INTR_GATE,
            .offset_mid = (uint16_t)(off >> 16),
            .offset_hi = (uint32_t)(off >> 32),
            .reserved = 0,
        };
    }
}

/* Load the GDT and reload every segment register from it. */
static void load_gdt(const struct nub_cpu_tables *t)
{
    struct nub_dtr gdtr = {.limit = (uint16_t)(sizeof(t->gdt) - 1),
                           .base = (uint64_t)(uintptr_t)t->gdt};
    __asm__ volatile("lgdt %0\n\t"
                     "movl %1, %%eax\n\t"
                     "movw %%ax, %%ds\n\t"
                     "movw %%ax, %%es\n\t"
                     "movw %%ax, %%ss\n\t"
                     "pushq %2\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "lretq\n"
                     "1:"
                     :
                     : "m"(gdtr), "i"(NUB_X86_SEL_DATA), "i"(NUB_X86_SEL_CODE)
                     : "rax", "memory");
}

static void load_tr_idt(const struct nub_cpu_tables *t)
{
    struct nub_dtr idtr = {.limit = (uint16_t)(sizeof(t->idt) - 1),
                           .base = (uint64_t)(uintptr_t)t->idt};
    __asm__ volatile("ltr %w0" : : "r"((uint16_t)NUB_X86_SEL_TSS) : "memory");
    __asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

void nub_cpu_init(uint64_t exn_stack_top)
{
    struct nub_cpu_tables *t = &nub_rt.cpu;
    build_tss(&t->tss, exn_stack_top);
    build_gdt(t);
    build_idt(t);
    load_gdt(t);
    load_tr_idt(t);
}
