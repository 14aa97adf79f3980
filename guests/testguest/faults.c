/* Test guest: functions that misbehave on purpose (CPU exceptions, aborts, bad ports, corrupt output buffers, triple fault). */
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "nub/guest.h"
#include "nub/wire.h"
#include "testguest.h"

/* Returned only if the host resumed the guest after something it must not resume. */
static uint32_t resumed(struct nub_reply *r, const char *what)
{
    return nub_reply_error(r, NUB_STATUS_GUEST_ERROR, "testguest: still running after %s", what);
}

NUB_NORETURN static void spin_forever(void)
{
    for (;;)
        __asm__ volatile("pause" ::: "memory");
}

static uint32_t tg_spin(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    (void)r;
    spin_forever();
}

static uint32_t tg_div_zero(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    uint64_t q = 1, rem = 0, divisor = 0;
    __asm__ volatile("divq %2" : "+a"(q), "+d"(rem) : "r"(divisor));
    return resumed(r, "divide by zero");
}

static uint32_t tg_null_deref(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    uint64_t v, addr = 0;
    __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    (void)v;
    return resumed(r, "null dereference");
}

/* Recurse without bound (the depth test only keeps the compiler from calling it infinite). */
__attribute__((noinline)) static uint64_t recurse(const volatile uint8_t *prev, uint64_t depth)
{
    volatile uint8_t frame[512];
    frame[0] = (uint8_t)depth;
    frame[sizeof(frame) - 1] = prev != NULL ? prev[0] : 0;
    if (depth == UINT64_MAX)
        return frame[0];
    return recurse(frame, depth + 1) + frame[sizeof(frame) - 1];
}

static uint32_t tg_stack_overflow(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    uint64_t v = recurse(NULL, 0);
    (void)v;
    return resumed(r, "unbounded recursion");
}

static uint32_t tg_abort(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)r;
    nub_abort_bytes(NUB_TG_ABORT_CODE, in, in_len);
}

static uint32_t tg_write_text(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    uintptr_t text = (uintptr_t)tg_write_text;
    __asm__ volatile("movb $0xcc, (%0)" : : "r"(text) : "memory");
    return resumed(r, "writing to text");
}

static uint32_t tg_exec_heap(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    uint8_t *code = nub_malloc(16);
    if (code == NULL)
        return nub_reply_error(r, NUB_STATUS_NO_MEMORY, "exec_heap: no memory");
    code[0] = 0xc3; /* ret */
    __asm__ volatile("call *%0"
                     : : "r"(code)
                     : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
    return resumed(r, "executing heap memory");
}

static uint32_t tg_bad_port(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    nub_outl(NUB_TG_BAD_PORT, 0x41);
    return resumed(r, "OUT to an undefined port");
}

static uint32_t tg_ud2(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    __asm__ volatile("ud2" ::: "memory");
    return resumed(r, "ud2");
}

static uint8_t *output_buffer(uint64_t *size)
{
    const struct nub_peb *peb = nub_peb();
    *size = peb->output_size;
    return (uint8_t *)(uintptr_t)peb->output_gva;
}

static uint32_t tg_trash_output(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    (void)r;
    uint64_t size;
    uint8_t *out = output_buffer(&size);
    memset(out, 0xa5, (size_t)size);
    nub_halt();
}

static uint32_t tg_bad_output_sp(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    (void)r;
    uint64_t size;
    uint8_t *out = output_buffer(&size);
    nub_store_le64(out, 0xfffffffffffffff8ull);
    nub_halt();
}

static uint32_t tg_huge_payload_len(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    (void)r;
    uint64_t size, sp;
    uint8_t *out = output_buffer(&size);
    if (nub_wire_sp(out, size, &sp) != NUB_WIRE_OK || size - sp < sizeof(struct nub_msg) + 8)
        nub_panic("huge_payload_len: output buffer unusable");
    uint8_t *hdr = out + sp;
    nub_store_le32(hdr + offsetof(struct nub_msg, magic), NUB_MSG_MAGIC);
    nub_store_le32(hdr + offsetof(struct nub_msg, kind), NUB_MSG_RESPONSE);
    nub_store_le32(hdr + offsetof(struct nub_msg, id), NUB_STATUS_OK);
    nub_store_le32(hdr + offsetof(struct nub_msg, reserved), 0);
    nub_store_le64(hdr + offsetof(struct nub_msg, payload_len), UINT64_MAX - 7u);
    nub_store_le64(hdr + offsetof(struct nub_msg, error_len), 0);
    nub_store_le64(hdr + sizeof(struct nub_msg), sp);           /* back-pointer */
    nub_store_le64(out, sp + sizeof(struct nub_msg) + 8u);      /* stack pointer */
    nub_halt();
}

static uint32_t tg_bogus_backptr(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    (void)r;
    uint64_t size, sp;
    uint8_t *out = output_buffer(&size);
    if (nub_wire_sp(out, size, &sp) != NUB_WIRE_OK || size - sp < 64)
        nub_panic("bogus_backptr: output buffer unusable");
    /* A valid-looking stack pointer whose back-pointer points past itself. */
    nub_store_le64(out + sp + 48, sp + 4096);
    nub_store_le64(out, sp + 56);
    nub_halt();
}

/* GVA of a snapshot-region GPA (where the page tables live). */
static volatile uint64_t *table_at(uint64_t gpa)
{
    return (volatile uint64_t *)(uintptr_t)(NUB_KERNEL_BASE + (gpa - NUB_BASE_GPA));
}

static uint32_t tg_mmio(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    uint64_t cr3, gva = nub_peb()->stack_gva - NUB_PAGE_SIZE; /* the unmapped guard page */
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t table = cr3 & 0x000ffffffffff000ull;
    for (int shift = 39; shift > 12; shift -= 9) {
        uint64_t e = table_at(table)[(gva >> shift) & 511];
        if (!(e & 1) || (e & 0x80))
            return nub_reply_error(r, NUB_STATUS_GUEST_ERROR, "mmio: no page table for the guard page");
        table = e & 0x000ffffffffff000ull;
    }
    /* Point the guard page at guest-physical 1 GiB, which no region backs. */
    table_at(table)[(gva >> 12) & 511] = 0x40000000ull | 0x3ull | (1ull << 63);
    __asm__ volatile("invlpg (%0)" : : "r"(gva) : "memory");
    return *(volatile uint32_t *)(uintptr_t)gva;
}

static uint32_t tg_triple_fault(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } empty = {0, 0};
    __asm__ volatile("lidt %0\n\tud2" : : "m"(empty) : "memory");
    return resumed(r, "loading an empty IDT and faulting");
}

static uint32_t tg_port_in(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "d"((uint16_t)NUB_TG_BAD_PORT) : "memory");
    (void)v;
    return resumed(r, "IN from a port");
}

static uint32_t tg_double_free(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    void *p = nub_malloc(32);
    nub_free(p);
    nub_free(p);
    return resumed(r, "a double free");
}

void nub_tg_register_faults(void)
{
    static const struct {
        uint32_t id;
        nub_guest_fn fn;
    } fns[] = {
        {NUB_TG_FN_SPIN, tg_spin},
        {NUB_TG_FN_DIV_ZERO, tg_div_zero},
        {NUB_TG_FN_NULL_DEREF, tg_null_deref},
        {NUB_TG_FN_STACK_OVERFLOW, tg_stack_overflow},
        {NUB_TG_FN_ABORT, tg_abort},
        {NUB_TG_FN_WRITE_TEXT, tg_write_text},
        {NUB_TG_FN_EXEC_HEAP, tg_exec_heap},
        {NUB_TG_FN_BAD_PORT, tg_bad_port},
        {NUB_TG_FN_UD2, tg_ud2},
        {NUB_TG_FN_TRASH_OUTPUT, tg_trash_output},
        {NUB_TG_FN_BAD_OUTPUT_SP, tg_bad_output_sp},
        {NUB_TG_FN_HUGE_PAYLOAD_LEN, tg_huge_payload_len},
        {NUB_TG_FN_TRIPLE_FAULT, tg_triple_fault},
        {NUB_TG_FN_BOGUS_BACKPTR, tg_bogus_backptr},
        {NUB_TG_FN_MMIO, tg_mmio},
        {NUB_TG_FN_PORT_IN, tg_port_in},
        {NUB_TG_FN_DOUBLE_FREE, tg_double_free},
    };
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        if (nub_register(fns[i].id, fns[i].fn) != NUB_REG_OK)
            nub_panic("testguest: cannot register fn %u", fns[i].id);
    }
}
