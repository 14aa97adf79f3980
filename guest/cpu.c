/* Guest descriptor tables: builds and loads the GDT (flat 64-bit code/data + TSS), the TSS with IST1, and the exception IDT. */
#include <stdint.h>

#include "internal.h"

/* Flat 64-bit code: P, DPL 0, S, execute/read, accessed, L, G. */
#define GDT_CODE64 0x00af9b000000ffffull
/* Flat data: P, DPL 0, S, read/write, accessed, D/B, G. */
#define GDT_DATA   0x00cf93000000ffffull
/* Gate attributes: present, DPL 0, 64-bit interrupt gate. */
#define IDT_INTR_GATE 0x8eu
/* Available 64-bit TSS descriptor type, present. */
#define TSS_TYPE_PRESENT 0x89ull

/* Low and high 8-byte halves of a 16-byte system descriptor for the TSS. */
static void tss_descriptor(uint64_t *slot, uint64_t base, uint32_t limit)
{
    slot[0] = (uint64_t)(limit & 0xffffu) | (base & 0xffffffull) << 16 |
              TSS_TYPE_PRESENT << 40 | (uint64_t)((limit >> 16) & 0xfu) << 48 |
              ((base >> 24) & 0xffull) << 56;
    slot[1] = base >> 32;
}

static void build_gdt(struct nub_cpu_tables *t)
{
    t->gdt[0] = 0;
    t->gdt[NUB_SEL_CODE / 8] = GDT_CODE64;
    t->gdt[NUB_SEL_DATA / 8] = GDT_DATA;
    tss_descriptor(&t->gdt[NUB_SEL_TSS / 8], (uint64_t)(uintptr_t)&t->tss,
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
    for (unsigned v = 0; v < NUB_EXN_VECTORS; v++) {
        uint64_t off = nub_exn_stubs[v];
        t->idt[v] = (struct nub_idt_gate){
            .offset_lo = (uint16_t)off,
            .selector = NUB_SEL_CODE,
            .ist = 1,
            .type_attr = IDT_INTR_GATE,
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
                     : "m"(gdtr), "i"(NUB_SEL_DATA), "i"(NUB_SEL_CODE)
                     : "rax", "memory");
}

static void load_tr_idt(const struct nub_cpu_tables *t)
{
    struct nub_dtr idtr = {.limit = (uint16_t)(sizeof(t->idt) - 1),
                           .base = (uint64_t)(uintptr_t)t->idt};
    __asm__ volatile("ltr %w0" : : "r"((uint16_t)NUB_SEL_TSS) : "memory");
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
