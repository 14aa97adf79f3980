/* Unit tests for the emu (Unicorn) backend: exits, faults, interrupts, segment reloads, decoder. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../../host/hv/x86_64_len.h"
#include "../../host/hv/hv.h"
#include "nub/vmem.h"
#include "x86_64.h"

/*
 * Guest layout: one region at GPA 0x1000. Offsets inside it: code 0x0000
 * (two pages, R+X at CODE_VA), data 0x2000 (R+W+NX at DATA_VA), stack
 * 0x3000 (R+W+NX, the page below STACK_TOP, the very top of the address
 * space like nub's scratch), page tables from 0x10000.
 */
#define CODE_VA     0xffffffff80000000ull
#define DATA_VA     (CODE_VA + 0x2000)
#define STACK_TOP   0xfffffffffffff000ull
#define REGION_GPA  0x1000ull
#define REGION_SIZE 0x40000ull
#define PT_OFF      0x10000ull
#define PORT_HALT   108

/* Guests, hand-assembled with GNU as; the source is in the comment above each. */

/* mov $0x1234,%eax; mov $108,%dx; out %eax,%dx; mov $0x55,%ebx; hlt */
static const uint8_t g_out[] = {
    0xb8, 0x34, 0x12, 0x00, 0x00, 0x66, 0xba, 0x6c, 0x00, 0xef, 0xbb, 0x55,
    0x00, 0x00, 0x00, 0xf4,
};
/* mov $0x11223344,%eax; mov $108,%dx; out %eax,%dx; out %al,%dx; outw %ax,%dx;
 * out %al,$99; hlt */
static const uint8_t g_outs[] = {
    0xb8, 0x44, 0x33, 0x22, 0x11, 0x66, 0xba, 0x6c, 0x00, 0xef, 0xee, 0x66,
    0xef, 0xe6, 0x63, 0xf4,
};
/* hlt; mov $1,%ebx; hlt */
static const uint8_t g_hlt[] = {
    0xf4, 0xbb, 0x01, 0x00, 0x00, 0x00, 0xf4,
};
/* mov $0x60,%dx; in %dx,%al; hlt */
static const uint8_t g_in[] = {
    0x66, 0xba, 0x60, 0x00, 0xec, 0xf4,
};
/* nop; ud2 */
static const uint8_t g_ud2[] = {
    0x90, 0x0f, 0x0b,
};
/* xor %ecx,%ecx; mov $5,%eax; xor %edx,%edx; div %ecx */
static const uint8_t g_div[] = {
    0x31, 0xc9, 0xb8, 0x05, 0x00, 0x00, 0x00, 0x31, 0xd2, 0xf7, 0xf1,
};
/* movabs $0x1122334000,%rbx; mov 0x455(%rbx),%rax */
static const uint8_t g_rd[] = {
    0x48, 0xbb, 0x00, 0x40, 0x33, 0x22, 0x11, 0x00, 0x00, 0x00, 0x48, 0x8b,
    0x83, 0x55, 0x04, 0x00, 0x00,
};
/* lea 0(%rip),%rbx; movq $1,-7(%rbx)   (writes to CODE_VA) */
static const uint8_t g_wr[] = {
    0x48, 0x8d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x48, 0xc7, 0x43, 0xf9, 0x01,
    0x00, 0x00, 0x00,
};
/* movabs $DATA_VA,%rbx; jmp *%rbx */
static const uint8_t g_nx[] = {
    0x48, 0xbb, 0x00, 0x20, 0x00, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xe3,
};
/* xor %ebx,%ebx; jmp *%rbx */
static const uint8_t g_null[] = {
    0x31, 0xdb, 0xff, 0xe3,
};
/* nop; int3 */
static const uint8_t g_int3[] = {
    0x90, 0xcc,
};
/* mov $0x1238,%ax; mov %ax,%ds   (selector beyond the GDT limit) */
static const uint8_t g_gp[] = {
    0x66, 0xb8, 0x38, 0x12, 0x8e, 0xd8,
};
/* nop; syscall */
static const uint8_t g_sys[] = {
    0x90, 0x0f, 0x05,
};
/* jmp . */
static const uint8_t g_spin[] = {
    0xeb, 0xfe,
};
/* mov $108,%dx; movabs $DATA_VA,%rdi; xor %eax,%eax;
 * 1: out %eax,%dx; mov %eax,(%rdi); inc %eax; jmp 1b */
static const uint8_t g_loop[] = {
    0x66, 0xba, 0x6c, 0x00, 0x48, 0xbf, 0x00, 0x20, 0x00, 0x80, 0xff, 0xff,
    0xff, 0xff, 0x31, 0xc0, 0xef, 0x89, 0x07, 0xff, 0xc0, 0xeb, 0xf9,
};
/* mov $108,%dx; call 1f; hlt; 1: mov %rsp,%rax; out %eax,%dx; pushq $0x77; pop %rax;
 * out %eax,%dx; ret */
static const uint8_t g_stack[] = {
    0x66, 0xba, 0x6c, 0x00, 0xe8, 0x01, 0x00, 0x00, 0x00, 0xf4, 0x48, 0x89,
    0xe0, 0xef, 0x6a, 0x77, 0x58, 0xef, 0xc3,
};
/*
 * Build a GDT in the data page (null, code64 0x08, data 0x10, 64-bit TSS
 * 0x18 with base DATA_VA + 0x100), lgdt, lidt, lretq to 0x08, reload
 * ds/es/ss/fs/gs with 0x10, ltr 0x18, then OUT %cs, %ss and str; then an
 * iretq to the next instruction, OUT 0x1234, hlt.
 */
static const uint8_t g_seg[] = {
    0x48, 0xbf, 0x00, 0x20, 0x00, 0x80, 0xff, 0xff, 0xff, 0xff, 0x48, 0xb8,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00, 0x48, 0x89, 0x47, 0x08,
    0x48, 0xb8, 0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, 0x48, 0x89,
    0x47, 0x10, 0x48, 0xb8, 0x67, 0x00, 0x00, 0x21, 0x00, 0x89, 0x00, 0x80,
    0x48, 0x89, 0x47, 0x18, 0xb8, 0xff, 0xff, 0xff, 0xff, 0x48, 0x89, 0x47,
    0x20, 0x66, 0xc7, 0x87, 0x80, 0x00, 0x00, 0x00, 0x27, 0x00, 0x48, 0x89,
    0xbf, 0x82, 0x00, 0x00, 0x00, 0x0f, 0x01, 0x97, 0x80, 0x00, 0x00, 0x00,
    0x66, 0xc7, 0x87, 0x90, 0x00, 0x00, 0x00, 0xff, 0x0f, 0x48, 0x8d, 0x87,
    0x00, 0x10, 0x00, 0x00, 0x48, 0x89, 0x87, 0x92, 0x00, 0x00, 0x00, 0x0f,
    0x01, 0x9f, 0x90, 0x00, 0x00, 0x00, 0x6a, 0x08, 0x48, 0x8d, 0x05, 0x03,
    0x00, 0x00, 0x00, 0x50, 0x48, 0xcb, 0xb8, 0x10, 0x00, 0x00, 0x00, 0x8e,
    0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0x8e, 0xe0, 0x8e, 0xe8, 0xb8, 0x18, 0x00,
    0x00, 0x00, 0x0f, 0x00, 0xd8, 0x66, 0xba, 0x6c, 0x00, 0x8c, 0xc8, 0xef,
    0x8c, 0xd0, 0xef, 0x0f, 0x00, 0xc8, 0xef, 0x48, 0x89, 0xe0, 0x6a, 0x10,
    0x50, 0x9c, 0x6a, 0x08, 0x48, 0x8d, 0x05, 0x03, 0x00, 0x00, 0x00, 0x50,
    0x48, 0xcf, 0xb8, 0x34, 0x12, 0x00, 0x00, 0xef, 0xf4,
};

struct vm {
    uint8_t *mem;
    struct nub_hv_region region;
    struct nub_vmem_buf buf;
    struct nub_vmem_ops pt;
    uint64_t cr3;
    const struct nub_hv_ops *ops;
    struct nub_hv *hv;
};

static void vm_map(struct vm *v, uint64_t va, uint64_t off, uint64_t len, uint32_t flags)
{
    int rc = nub_vmem_map(&v->pt, va, REGION_GPA + off, len, flags);
    cr_assert_eq(rc, 0, "nub_vmem_map(0x%llx): %s", (unsigned long long)va, nub_vmem_err_name(rc));
}

/* Memory and page tables with the standard layout; code_flags for the code pages. */
static void vm_init_flags(struct vm *v, const uint8_t *code, size_t len, uint32_t code_flags)
{
    memset(v, 0, sizeof(*v));
    v->mem = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(v->mem, MAP_FAILED);
    v->region = (struct nub_hv_region){.gpa = REGION_GPA, .size = REGION_SIZE, .host = v->mem};
    cr_assert_eq(nub_vmem_buf_init(&v->buf, v->mem + PT_OFF, REGION_GPA + PT_OFF,
                                   REGION_SIZE - PT_OFF, &v->cr3), 0);
    v->pt = nub_vmem_buf_ops(&v->buf, v->cr3);
    vm_map(v, CODE_VA, 0x0000, 0x2000, code_flags);
    vm_map(v, DATA_VA, 0x2000, 0x1000, NUB_VMEM_R | NUB_VMEM_W);
    vm_map(v, STACK_TOP - 0x1000, 0x3000, 0x1000, NUB_VMEM_R | NUB_VMEM_W);
    cr_assert_leq(len, 0x2000);
    memcpy(v->mem, code, len);
    v->ops = nub_hv_emu_ops();
    cr_assert_not_null(v->ops);
}

static void vm_init(struct vm *v, const uint8_t *code, size_t len)
{
    vm_init_flags(v, code, len, NUB_VMEM_R | NUB_VMEM_X);
}

static void vm_create(struct vm *v)
{
    char err[256] = "";
    struct nub_hv_config cfg = {.regions = &v->region, .nregions = 1, .cr3 = v->cr3};
    nub_status st = v->ops->create(&cfg, &v->hv, err, sizeof(err));
    cr_assert_eq(st, NUB_OK, "create: %d %s", st, err);
    struct nub_hv_regs r = {.rip = CODE_VA, .rsp = STACK_TOP, .rflags = NUB_X86_RFLAGS_FIXED};
    cr_assert_eq(v->ops->set_regs(v->hv, &r), NUB_OK);
}

static void vm_start(struct vm *v, const uint8_t *code, size_t len)
{
    vm_init(v, code, len);
    vm_create(v);
}

static void vm_fini(struct vm *v)
{
    if (v->hv != NULL)
        v->ops->destroy(v->hv);
    munmap(v->mem, REGION_SIZE);
}

static struct nub_hv_exit vm_run(struct vm *v)
{
    struct nub_hv_exit e;
    memset(&e, 0xa5, sizeof(e));
    nub_status st = v->ops->run(v->hv, &e);
    cr_assert_eq(st, NUB_OK, "run: %d (%s)", st, e.msg);
    return e;
}

static struct nub_hv_regs vm_regs(struct vm *v)
{
    struct nub_hv_regs r;
    cr_assert_eq(v->ops->get_regs(v->hv, &r), NUB_OK);
    return r;
}

static void expect_out(struct vm *v, uint16_t port, uint8_t size, uint32_t value, uint64_t rip)
{
    struct nub_hv_exit e = vm_run(v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_IO_OUT, "kind %d (%s)", e.kind, e.msg);
    cr_assert_eq(e.port, port);
    cr_assert_eq(e.size, size, "size %u value 0x%x rip 0x%llx", e.size, e.value, (unsigned long long)e.rip);
    cr_assert_eq(e.value, value, "value 0x%x", e.value);
    cr_assert_eq(e.rip, rip, "rip 0x%llx", (unsigned long long)e.rip);
    cr_assert_eq(vm_regs(v).rip, rip);
}

static struct nub_hv_exit expect_fault(struct vm *v, uint64_t vector)
{
    struct nub_hv_exit e = vm_run(v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_FAULT, "kind %d (%s)", e.kind, e.msg);
    cr_assert_eq(e.vector, vector, "vector %llu (%s)", (unsigned long long)e.vector, e.msg);
    cr_assert_neq(e.msg[0], '\0');
    return e;
}

#define START(v, g) vm_start((v), (g), sizeof(g))

/* ---- basics ------------------------------------------------------------- */

Test(emu, available)
{
    char why[128] = "x";
    cr_assert_eq(nub_hv_emu_ops()->available(why, sizeof(why)), NUB_OK);
    cr_assert_str_eq(why, "");
    cr_assert_str_eq(nub_hv_emu_ops()->name, "emu");
}

Test(emu, regs_round_trip)
{
    struct vm v;
    START(&v, g_hlt);
    struct nub_hv_regs in = {
        .rax = 1, .rbx = 2, .rcx = 3, .rdx = 4, .rsi = 5, .rdi = 6, .rsp = 7, .rbp = 8,
        .r8 = 9, .r9 = 10, .r10 = 11, .r11 = 12, .r12 = 13, .r13 = 14, .r14 = 15,
        .r15 = 0xfedcba9876543210ull, .rip = CODE_VA + 1, .rflags = NUB_X86_RFLAGS_FIXED | 0x1 | 0x40,
    }, out;
    cr_assert_eq(v.ops->set_regs(v.hv, &in), NUB_OK);
    cr_assert_eq(v.ops->get_regs(v.hv, &out), NUB_OK);
    cr_assert_eq(memcmp(&in, &out, sizeof(in)), 0);
    vm_fini(&v);
}

Test(emu, out_exit_then_resume_after_the_out)
{
    struct vm v;
    START(&v, g_out);
    expect_out(&v, PORT_HALT, 4, 0x1234, CODE_VA + 10);
    cr_assert_eq(vm_regs(&v).rbx, 0, "the instruction after OUT must not have run");
    struct nub_hv_exit e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_HALT, "kind %d (%s)", e.kind, e.msg);
    cr_assert_eq(e.rip, CODE_VA + 16);
    cr_assert_eq(vm_regs(&v).rbx, 0x55);
    vm_fini(&v);
}

Test(emu, consecutive_outs_each_exit)
{
    struct vm v;
    START(&v, g_outs);
    expect_out(&v, PORT_HALT, 4, 0x11223344, CODE_VA + 10);
    expect_out(&v, PORT_HALT, 1, 0x44, CODE_VA + 11);
    expect_out(&v, PORT_HALT, 2, 0x3344, CODE_VA + 13);
    expect_out(&v, 99, 1, 0x44, CODE_VA + 15);
    cr_assert_eq(vm_run(&v).kind, NUB_HV_EXIT_HALT);
    vm_fini(&v);
}

Test(emu, out_loop_stops_exactly_after_each_out)
{
    struct vm v;
    START(&v, g_loop);
    volatile uint32_t *data = (volatile uint32_t *)(v.mem + 0x2000);
    for (uint32_t k = 0; k < 1000; k++) {
        expect_out(&v, PORT_HALT, 4, k, CODE_VA + 0x11);
        if (k > 0)
            cr_assert_eq(*data, k - 1, "store after OUT ran early at k=%u", k);
    }
    vm_fini(&v);
}

Test(emu, out_with_w_plus_x_code_uses_per_instruction_stops)
{
    struct vm v;
    vm_init_flags(&v, g_outs, sizeof(g_outs), NUB_VMEM_R | NUB_VMEM_W | NUB_VMEM_X);
    vm_create(&v);
    expect_out(&v, PORT_HALT, 4, 0x11223344, CODE_VA + 10);
    expect_out(&v, PORT_HALT, 1, 0x44, CODE_VA + 11);
    vm_fini(&v);
}

Test(emu, hlt_exits_and_resumes_after)
{
    struct vm v;
    START(&v, g_hlt);
    struct nub_hv_exit e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_HALT);
    cr_assert_eq(e.rip, CODE_VA + 1);
    e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_HALT);
    cr_assert_eq(e.rip, CODE_VA + 7);
    cr_assert_eq(vm_regs(&v).rbx, 1);
    vm_fini(&v);
}

Test(emu, in_exit)
{
    struct vm v;
    START(&v, g_in);
    struct nub_hv_exit e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_IO_IN, "kind %d (%s)", e.kind, e.msg);
    cr_assert_eq(e.port, 0x60);
    cr_assert_eq(e.size, 1);
    cr_assert_eq(e.rip, CODE_VA + 5);
    vm_fini(&v);
}

Test(emu, stack_at_top_of_address_space)
{
    struct vm v;
    START(&v, g_stack);
    expect_out(&v, PORT_HALT, 4, (uint32_t)(STACK_TOP - 8), CODE_VA + 14);
    expect_out(&v, PORT_HALT, 4, 0x77, CODE_VA + 18);
    struct nub_hv_exit e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_HALT);
    cr_assert_eq(e.rip, CODE_VA + 10);
    vm_fini(&v);
}

Test(emu, guest_loads_gdt_idt_tr_and_reloads_segments)
{
    struct vm v;
    START(&v, g_seg);
    struct nub_hv_exit e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_IO_OUT, "kind %d (%s)", e.kind, e.msg);
    cr_assert_eq(e.value, 0x08, "cs 0x%x", e.value);
    e = vm_run(&v);
    cr_assert_eq(e.value, 0x10, "ss 0x%x", e.value);
    e = vm_run(&v);
    cr_assert_eq(e.value, 0x18, "tr 0x%x", e.value);
    e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_IO_OUT, "kind %d (%s)", e.kind, e.msg);
    cr_assert_eq(e.value, 0x1234, "after iretq 0x%x", e.value);
    cr_assert_eq(vm_run(&v).kind, NUB_HV_EXIT_HALT);
    uint64_t tss_desc;
    memcpy(&tss_desc, v.mem + 0x2000 + 0x18, 8);
    cr_assert_eq((tss_desc >> 40) & 0xf, 0xb, "ltr marks the TSS busy");
    vm_fini(&v);
}

/* mov $0xeeeeeeee,%eax; mov $108,%dx; out %eax,%dx; mov $0xefe4e6ec,%ebx; hlt
 * (I/O opcode bytes inside immediates must not confuse the OUT detection) */
static const uint8_t g_imm[] = {
    0xb8, 0xee, 0xee, 0xee, 0xee, 0x66, 0xba, 0x6c, 0x00, 0xef, 0xbb, 0xec,
    0xe6, 0xe4, 0xef, 0xf4,
};

Test(emu, io_opcode_bytes_in_immediates)
{
    struct vm v;
    START(&v, g_imm);
    expect_out(&v, PORT_HALT, 4, 0xeeeeeeee, CODE_VA + 10);
    cr_assert_eq(vm_regs(&v).rbx, 0);
    cr_assert_eq(vm_run(&v).kind, NUB_HV_EXIT_HALT);
    cr_assert_eq(vm_regs(&v).rbx, 0xefe4e6ec);
    vm_fini(&v);
}

/*
 * mov $108,%dx; nops; mov $0x77,%eax; OUT placed so that it ends exactly
 * at the page boundary (straddle = 0: "ef" at 0xfff) or crosses it
 * (straddle = 1: "66" at 0xfff, "ef" at 0x1000); then on the next code
 * page: mov $0x55,%ebx; hlt.
 */
static void out_at_page_end(unsigned straddle)
{
    static uint8_t code[0x2000];
    uint32_t out_at = 0xfff; /* first byte of the OUT */
    memset(code, 0x90, sizeof(code));
    memcpy(code, (const uint8_t[]){0x66, 0xba, 0x6c, 0x00}, 4);
    memcpy(code + out_at - 5, (const uint8_t[]){0xb8, 0x77, 0x00, 0x00, 0x00}, 5);
    if (straddle)
        code[out_at] = 0x66;
    code[out_at + straddle] = 0xef;
    uint32_t next = 0x1000 + straddle;
    memcpy(code + next, (const uint8_t[]){0xbb, 0x55, 0x00, 0x00, 0x00, 0xf4}, 6);
    struct vm v;
    vm_init(&v, code, sizeof(code));
    vm_create(&v);
    expect_out(&v, PORT_HALT, straddle ? 2 : 4, 0x77, CODE_VA + next);
    cr_assert_eq(vm_regs(&v).rbx, 0);
    struct nub_hv_exit e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_HALT, "kind %d (%s)", e.kind, e.msg);
    cr_assert_eq(e.rip, CODE_VA + next + 6);
    cr_assert_eq(vm_regs(&v).rbx, 0x55);
    vm_fini(&v);
}

Test(emu, out_ending_at_a_page_boundary)
{
    out_at_page_end(0);
}

Test(emu, out_straddling_a_page_boundary)
{
    out_at_page_end(1);
}

/* ---- faults ------------------------------------------------------------- */

Test(emu, ud2_is_vector_6)
{
    struct vm v;
    START(&v, g_ud2);
    struct nub_hv_exit e = expect_fault(&v, 6);
    cr_assert_eq(e.rip, CODE_VA + 1);
    vm_fini(&v);
}

Test(emu, divide_by_zero_is_vector_0)
{
    struct vm v;
    START(&v, g_div);
    struct nub_hv_exit e = expect_fault(&v, 0);
    cr_assert_eq(e.rip, CODE_VA + 9);
    vm_fini(&v);
}

Test(emu, int3_is_vector_3)
{
    struct vm v;
    START(&v, g_int3);
    struct nub_hv_exit e = expect_fault(&v, 3);
    cr_assert_eq(e.rip, CODE_VA + 2, "int3 is a trap: rip after it");
    vm_fini(&v);
}

Test(emu, bad_selector_is_vector_13)
{
    struct vm v;
    START(&v, g_gp);
    struct nub_hv_exit e = expect_fault(&v, 13);
    cr_assert_eq(e.rip, CODE_VA + 4);
    vm_fini(&v);
}

Test(emu, syscall_is_reported_not_skipped)
{
    struct vm v;
    START(&v, g_sys);
    struct nub_hv_exit e = expect_fault(&v, 6);
    cr_assert_eq(e.rip, CODE_VA + 1);
    cr_assert_not_null(strstr(e.msg, "syscall"));
    vm_fini(&v);
}

Test(emu, read_unmapped_is_page_fault)
{
    struct vm v;
    START(&v, g_rd);
    struct nub_hv_exit e = expect_fault(&v, 14);
    cr_assert_eq(e.addr, 0x1122334455ull);
    cr_assert_eq(e.error_code, 0);
    cr_assert(e.rip >= CODE_VA && e.rip <= CODE_VA + 10, "rip 0x%llx", (unsigned long long)e.rip);
    cr_assert_not_null(strstr(e.msg, "reading 0x1122334455"), "%s", e.msg);
    vm_fini(&v);
}

Test(emu, write_to_code_is_page_fault_with_write_bit)
{
    struct vm v;
    START(&v, g_wr);
    struct nub_hv_exit e = expect_fault(&v, 14);
    cr_assert_eq(e.addr, CODE_VA);
    cr_assert_eq(e.error_code, 0x3, "present|write, got 0x%llx", (unsigned long long)e.error_code);
    cr_assert_eq(v.mem[0], g_wr[0], "code unchanged");
    vm_fini(&v);
}

Test(emu, jump_to_nx_data_is_page_fault_with_fetch_bit)
{
    struct vm v;
    START(&v, g_nx);
    struct nub_hv_exit e = expect_fault(&v, 14);
    cr_assert_eq(e.addr, DATA_VA);
    cr_assert_eq(e.error_code, 0x11, "present|fetch, got 0x%llx", (unsigned long long)e.error_code);
    cr_assert_eq(e.rip, DATA_VA);
    vm_fini(&v);
}

Test(emu, jump_to_null_is_page_fault_not_a_stop)
{
    struct vm v;
    START(&v, g_null);
    struct nub_hv_exit e = expect_fault(&v, 14);
    cr_assert_eq(e.addr, 0);
    cr_assert_eq(e.error_code, 0x10);
    cr_assert_eq(e.rip, 0);
    vm_fini(&v);
}

/* ---- interrupt ---------------------------------------------------------- */

static void *interrupt_later(void *arg)
{
    struct vm *v = arg;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    v->ops->interrupt(v->hv);
    return NULL;
}

Test(emu, interrupt_stops_a_spinning_guest, .timeout = 20)
{
    struct vm v;
    pthread_t t;
    START(&v, g_spin);
    cr_assert_eq(pthread_create(&t, NULL, interrupt_later, &v), 0);
    struct nub_hv_exit e = vm_run(&v);
    pthread_join(t, NULL);
    cr_assert_eq(e.kind, NUB_HV_EXIT_CANCELLED, "kind %d (%s)", e.kind, e.msg);
    cr_assert_eq(e.rip, CODE_VA);
    e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_CANCELLED, "the flag stays until cleared");
    vm_fini(&v);
}

Test(emu, interrupt_before_run_is_not_lost, .timeout = 20)
{
    struct vm v;
    START(&v, g_out);
    v.ops->interrupt(v.hv);
    struct nub_hv_exit e = vm_run(&v);
    cr_assert_eq(e.kind, NUB_HV_EXIT_CANCELLED);
    cr_assert_eq(e.rip, CODE_VA);
    v.ops->clear_interrupt(v.hv);
    expect_out(&v, PORT_HALT, 4, 0x1234, CODE_VA + 10);
    cr_assert_eq(vm_run(&v).kind, NUB_HV_EXIT_HALT);
    vm_fini(&v);
}

/* ---- create errors and lifetime ------------------------------------------ */

Test(emu, create_rejects_run_outside_regions)
{
    struct vm v;
    char err[256] = "";
    vm_init(&v, g_hlt, sizeof(g_hlt));
    /* Map one page to a physical address no region backs. */
    cr_assert_eq(nub_vmem_map(&v.pt, CODE_VA + 0x100000, 0x40000000, 0x1000,
                              NUB_VMEM_R | NUB_VMEM_W), 0);
    struct nub_hv_config cfg = {.regions = &v.region, .nregions = 1, .cr3 = v.cr3};
    struct nub_hv *hv = (struct nub_hv *)&v;
    cr_assert_eq(v.ops->create(&cfg, &hv, err, sizeof(err)), NUB_E_BACKEND);
    cr_assert_null(hv);
    cr_assert_not_null(strstr(err, "not inside one memory region"), "%s", err);
    vm_fini(&v);
}

Test(emu, create_rejects_bad_cr3_and_regions)
{
    struct vm v;
    char err[256] = "";
    struct nub_hv *hv = NULL;
    vm_init(&v, g_hlt, sizeof(g_hlt));
    struct nub_hv_config cfg = {.regions = &v.region, .nregions = 1, .cr3 = 0x80000000};
    cr_assert_eq(v.ops->create(&cfg, &hv, err, sizeof(err)), NUB_E_BACKEND);
    cr_assert_not_null(strstr(err, "cr3"), "%s", err);
    struct nub_hv_region bad = v.region;
    bad.size = 0x1234;
    cfg = (struct nub_hv_config){.regions = &bad, .nregions = 1, .cr3 = v.cr3};
    cr_assert_eq(v.ops->create(&cfg, &hv, err, sizeof(err)), NUB_E_BACKEND);
    cr_assert_eq(v.ops->create(NULL, &hv, err, sizeof(err)), NUB_E_INVALID);
    cr_assert_null(hv);
    vm_fini(&v);
}

static long rss_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void create_run_destroy(struct vm *v)
{
    vm_create(v);
    cr_assert_eq(vm_run(v).kind, NUB_HV_EXIT_IO_OUT);
    v->ops->destroy(v->hv);
    v->hv = NULL;
}

Test(emu, create_destroy_1000_times_without_growth, .timeout = 120)
{
    struct vm v;
    vm_init(&v, g_out, sizeof(g_out));
    int n = getenv("NUB_EMU_QUICK") != NULL ? 20 : 1000;
    for (int i = 0; i < 50; i++)
        create_run_destroy(&v);
    long before = rss_kib();
    for (int i = 0; i < n; i++)
        create_run_destroy(&v);
    long after = rss_kib();
    cr_assert(before > 0 && after > 0);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory resident */
    cr_assert_lt(after - before, 16 * 1024, "RSS grew by %ld KiB over %d VMs", after - before, n);
#endif
    vm_fini(&v);
}

/* ---- round-trip cost ----------------------------------------------------- */

Test(emu, out_round_trip_cost)
{
    struct vm v;
    START(&v, g_loop);
    int n = 100000;
    struct nub_hv_exit e;
    for (int i = 0; i < 1000; i++)
        v.ops->run(v.hv, &e);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++)
        v.ops->run(v.hv, &e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(e.kind, NUB_HV_EXIT_IO_OUT);
    cr_assert_eq(e.value, (uint32_t)(1000 + n - 1));
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / n;
    cr_log_info("emu OUT round trip: %.0f ns per exit (%d exits)", ns, n);
    fprintf(stderr, "emu OUT round trip: %.0f ns per exit (%d exits)\n", ns, n);
    vm_fini(&v);
}

/* ---- helpers ------------------------------------------------------------- */

Test(emu, fmt_truncates_and_terminates)
{
    char buf[8];
    nub_hv_fmt(buf, sizeof(buf), "%s-%d", "abcdef", 12345);
    cr_assert_str_eq(buf, "abcdef-");
    nub_hv_fmt(buf, 1, "x");
    cr_assert_str_eq(buf, "");
    nub_hv_fmt(NULL, 0, "x");
}

/* ---- decoder ------------------------------------------------------------- */

struct insn_case {
    const char *what;
    uint8_t bytes[16];
    size_t len; /* expected; 0 = not decoded */
    bool io;
};

static const struct insn_case insn_cases[] = {
    {"in al,imm8", {0xe4, 0x60}, 2, true},
    {"in eax,dx", {0xed}, 1, true},
    {"out imm8,al", {0xe6, 0x80}, 2, true},
    {"out dx,ax (66)", {0x66, 0xef}, 2, true},
    {"rep outsb", {0xf3, 0x6e}, 2, true},
    {"insd", {0x6d}, 1, true},
    {"66 rex.w out", {0x66, 0x48, 0xef}, 3, true},
    {"hlt", {0xf4}, 1, false},
    {"nop", {0x90}, 1, false},
    {"movabs rax,imm64", {0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8}, 10, false},
    {"mov ax,imm16", {0x66, 0xb8, 0x34, 0x12}, 4, false},
    {"mov eax,imm32", {0xb8, 1, 2, 3, 4}, 5, false},
    {"movabs al,moffs64", {0xa0, 1, 2, 3, 4, 5, 6, 7, 8}, 9, false},
    {"addr32 mov eax,moffs32", {0x67, 0xa1, 1, 2, 3, 4}, 6, false},
    {"test byte [rax],imm8", {0xf6, 0x00, 0x01}, 3, false},
    {"test word [rax],imm16", {0x66, 0xf7, 0x00, 0x01, 0x00}, 5, false},
    {"test dword [rax+rbx*4+disp32],imm32",
     {0xf7, 0x84, 0x98, 0x78, 0x56, 0x34, 0x12, 1, 0, 0, 0}, 11, false},
    {"not dword [rax]", {0xf7, 0x10}, 2, false},
    {"enter 16,1", {0xc8, 0x10, 0x00, 0x01}, 4, false},
    {"ret 8", {0xc2, 0x08, 0x00}, 3, false},
    {"lea rax,[rip+disp32]", {0x48, 0x8d, 0x05, 0x10, 0, 0, 0}, 7, false},
    {"mov rbx,[rax*8+disp32]", {0x48, 0x8b, 0x1c, 0xc5, 0, 0, 0, 0}, 8, false},
    {"mov rax,[rbp+0]", {0x48, 0x8b, 0x45, 0x00}, 4, false},
    {"mov rax,[r12]", {0x49, 0x8b, 0x04, 0x24}, 4, false},
    {"call rel32", {0xe8, 1, 2, 3, 4}, 5, false},
    {"jne rel32", {0x0f, 0x85, 1, 2, 3, 4}, 6, false},
    {"pshufd", {0x66, 0x0f, 0x70, 0xd1, 0x1b}, 5, false},
    {"palignr", {0x66, 0x0f, 0x3a, 0x0f, 0xd1, 0x03}, 6, false},
    {"pshufb", {0x66, 0x0f, 0x38, 0x00, 0xd1}, 5, false},
    {"andn (vex c4 map2)", {0xc4, 0xe2, 0xe0, 0xf2, 0xc8}, 5, false},
    {"rorx (vex c4 map3)", {0xc4, 0xe3, 0xfb, 0xf0, 0xd8, 0x03}, 6, false},
    {"vaddps (vex c5)", {0xc5, 0xec, 0x58, 0xd9}, 4, false},
    {"endbr64", {0xf3, 0x0f, 0x1e, 0xfa}, 4, false},
    {"lgdt [rax]", {0x0f, 0x01, 0x10}, 3, false},
    {"ltr ax", {0x0f, 0x00, 0xd8}, 3, false},
    {"lretq", {0x48, 0xcb}, 2, false},
    {"syscall", {0x0f, 0x05}, 2, false},
    {"ud2", {0x0f, 0x0b}, 2, false},
    /* Found by tests/fuzz/fuzz_x86len: QEMU ignores the mod bits of MOV CR/DR (no SIB, no displacement). */
    {"mov cr6, rsp (mod 0, rm 4)", {0x0f, 0x22, 0x34, 0x34}, 3, false},
    {"mov rcx, dr3 (mod 2)", {0x44, 0x0f, 0x21, 0x99, 0x55, 0x00, 0x00, 0xf1}, 4, false},
    /* Found by tests/fuzz/fuzz_x86len: SSE4a EXTRQ/INSERTQ immediate forms carry two imm8. */
    {"extrq xmm1, 0xff, 8", {0x66, 0x0f, 0x78, 0xd1, 0xff, 0x08}, 6, false},
    {"insertq xmm1, xmm2, 1, 2", {0xf2, 0x0f, 0x78, 0xca, 0x01, 0x02}, 6, false},
    {"evex (not decoded)", {0x62, 0xf1, 0x7c, 0x48, 0x58, 0xc1}, 0, false},
    {"3dnow (not decoded)", {0x0f, 0x0f, 0xc1, 0x9e}, 0, false},
    {"invalid in 64-bit: push es", {0x06}, 0, false},
    {"truncated modrm", {0x8b}, 0, false},
    {"16 prefixes (too long)", {0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
                                0x66, 0x66, 0x66, 0x66, 0x66, 0x90}, 0, false},
};

Test(emu, decoder_lengths)
{
    for (size_t i = 0; i < sizeof(insn_cases) / sizeof(insn_cases[0]); i++) {
        const struct insn_case *c = &insn_cases[i];
        size_t avail = c->len != 0 ? c->len : 16;
        if (strcmp(c->what, "truncated modrm") == 0)
            avail = 1;
        bool io = !c->io;
        size_t got = nub_x86_64_insn_len(c->bytes, avail, &io);
        cr_expect_eq(got, c->len, "%s: length %zu, want %zu", c->what, got, c->len);
        if (c->len != 0)
            cr_expect_eq(io, c->io, "%s: io flag", c->what);
    }
    bool io;
    cr_assert_eq(nub_x86_64_insn_len(insn_cases[9].bytes, 9, &io), 0, "imm64 cut short");
    cr_assert(nub_x86_64_may_have_io((const uint8_t[]){0x90, 0xee}, 2));
    cr_assert(!nub_x86_64_may_have_io((const uint8_t[]){0x90, 0xf4}, 2));
}
