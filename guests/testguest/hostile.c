/* Test guest: hostile behaviours aimed at the host (many OUT sites, odd exits, forged abort records, control text, a crafted cache directory). */
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "nub/cdir.h"
#include "nub/guest.h"
#include "testguest.h"

/* Returned only if the host resumed the guest after something it must not resume. */
static uint32_t resumed(struct nub_reply *r, const char *what)
{
    return nub_reply_error(r, NUB_STATUS_GUEST_ERROR, "testguest: still running after %s", what);
}

/*
 * NUB_TG_OUT_SITES_MAX distinct OUT sites in two layouts, each ending in
 * `ret`: "separate", `out %al, (%dx)` then `jmp .+2` (which ends the
 * translated block), NUB_TG_OUT_SITE_BYTES bytes apart; "packed", one
 * `out %al, (%dx)` after the other (long blocks full of OUT sites).
 */
__asm__(".pushsection .text\n"
        ".balign 16\n"
        "tg_out_sites_separate:\n"
        ".rept " NUB_TG_STR(NUB_TG_OUT_SITES_MAX) "\n"
        "outb %al, %dx\n"
        "jmp .+2\n"
        ".endr\n"
        "ret\n"
        ".balign 16\n"
        "tg_out_sites_packed:\n"
        ".rept " NUB_TG_STR(NUB_TG_OUT_SITES_MAX) "\n"
        "outb %al, %dx\n"
        ".endr\n"
        "ret\n"
        ".popsection\n");
extern const uint8_t tg_out_sites_separate[], tg_out_sites_packed[];

static uint32_t tg_out_sites(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    if ((in_len != 4 && in_len != 8) || nub_load_le32(in) > NUB_TG_OUT_SITES_MAX)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "out_sites: want u32 n <= %u [, u32 layout]",
                               NUB_TG_OUT_SITES_MAX);
    uint32_t n = nub_load_le32(in), skip = NUB_TG_OUT_SITES_MAX - n;
    int packed = in_len == 8 && nub_load_le32(in + 4) == NUB_TG_OUT_SITES_PACKED;
    uintptr_t entry = packed ? (uintptr_t)tg_out_sites_packed + skip
                             : (uintptr_t)tg_out_sites_separate + (uintptr_t)skip * NUB_TG_OUT_SITE_BYTES;
    __asm__ volatile("call *%0"
                     : : "r"(entry), "a"((uint32_t)'.'), "d"((uint32_t)NUB_PORT_PRINT)
                     : "rcx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
    uint8_t *out = nub_reply_reserve(r, 4);
    if (out == NULL)
        return NUB_STATUS_TOO_LARGE;
    nub_store_le32(out, n);
    return NUB_STATUS_OK;
}

static uint32_t tg_sysenter(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    __asm__ volatile("sysenter" ::: "memory");
    return resumed(r, "sysenter");
}

static uint8_t string_io_buf[64];

static uint32_t tg_rep_insb(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    void *dst = string_io_buf;
    uint64_t count = 8;
    __asm__ volatile("rep insb" : "+D"(dst), "+c"(count) : "d"((uint16_t)NUB_TG_BAD_PORT) : "memory");
    return resumed(r, "rep insb");
}

static uint32_t tg_rep_outsb(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    (void)r;
    const void *src = "outs\n";
    uint64_t count = 5;
    __asm__ volatile("rep outsb" : "+S"(src), "+c"(count) : "d"((uint16_t)NUB_PORT_PRINT) : "memory");
    return NUB_STATUS_OK;
}

static uint32_t tg_bad_cr3(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    uint64_t cr3 = 0xfffffffff000ull;
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
    return resumed(r, "loading CR3 with 0xfffffffff000");
}

static uint32_t tg_soft_int(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    if (in_len != 1)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "soft_int: want one byte (0x21, 0x80 or 0xff)");
    switch (in[0]) {
    case 0x21: __asm__ volatile("int $0x21" ::: "memory"); break;
    case 0x80: __asm__ volatile("int $0x80" ::: "memory"); break;
    case 0xff: __asm__ volatile("int $0xff" ::: "memory"); break;
    default: return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "soft_int: vector 0x%x not offered", in[0]);
    }
    return resumed(r, "a software interrupt");
}

static uint32_t tg_forge_abort(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    struct nub_scratch_top *top = (struct nub_scratch_top *)(uintptr_t)NUB_SCRATCH_TOP_GVA;
    if (in_len > sizeof top->abort_rec)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "forge_abort: over %zu bytes", sizeof top->abort_rec);
    memset(&top->abort_rec, 0, sizeof top->abort_rec);
    memcpy(&top->abort_rec, in, in_len);
    nub_outl(NUB_PORT_ABORT, top->abort_rec.kind);
    for (;;)
        __asm__ volatile("hlt" ::: "memory");
}

static uint32_t tg_print_bytes(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)r;
    for (size_t i = 0; i < in_len; i++)
        nub_outl(NUB_PORT_PRINT, in[i]);
    return NUB_STATUS_OK;
}

/* Slot i's blob: the one arena byte; hash: i in the first 8 bytes (home slot i), a tag after. */
static void fill_slot(uint8_t *slot, uint64_t i, uint64_t arena_off)
{
    nub_store_le64(slot, i);
    for (size_t b = 8; b < NUB_CAP_HASH_LEN; b++)
        slot[b] = 0x5a;
    nub_store_le64(slot + offsetof(struct nub_cdir_slot, blob_off), arena_off);
    nub_store_le64(slot + offsetof(struct nub_cdir_slot, blob_len), 1);
}

static struct nub_boot_info tg_boot_info;

static uint32_t tg_full_cdir(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    if (in_len != 8 + NUB_CAP_HASH_LEN)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "full_cdir: want u64 capacity + 32-byte hash");
    uint64_t capacity = nub_load_le64(in), size;
    if (nub_cdir_size(capacity, 64, &size) != NUB_CDIR_OK || capacity <= NUB_CDIR_MAX_PROBE)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "full_cdir: bad capacity");
    uint8_t *dir = nub_malloc((size_t)size);
    if (dir == NULL || nub_cdir_init(dir, size, capacity, 64) != NUB_CDIR_OK)
        return nub_reply_error(r, NUB_STATUS_NO_MEMORY, "full_cdir: no room for %llu bytes", (unsigned long long)size);
    uint64_t table_off = sizeof(struct nub_cdir_header), arena_off = table_off + capacity * sizeof(struct nub_cdir_slot);
    for (uint64_t i = 0; i < capacity; i++)
        fill_slot(dir + table_off + i * sizeof(struct nub_cdir_slot), i, arena_off);
    /* The hash sits NUB_CDIR_MAX_PROBE slots past its home: one probe beyond the bound. */
    uint64_t at = (nub_load_le64(in + 8) + NUB_CDIR_MAX_PROBE) & (capacity - 1);
    memcpy(dir + table_off + at * sizeof(struct nub_cdir_slot), in + 8, NUB_CAP_HASH_LEN);
    tg_boot_info = (struct nub_boot_info){.magic = NUB_BOOT_INFO_MAGIC, .version = NUB_BOOT_INFO_VERSION,
                                          .dir_gva = (uint64_t)(uintptr_t)dir, .dir_size = size};
    nub_set_boot_info(&tg_boot_info);
    return NUB_STATUS_OK;
}

void nub_tg_register_hostile(void)
{
    static const struct {
        uint32_t id;
        nub_guest_fn fn;
    } fns[] = {
        {NUB_TG_FN_OUT_SITES, tg_out_sites},
        {NUB_TG_FN_SYSENTER, tg_sysenter},
        {NUB_TG_FN_REP_INSB, tg_rep_insb},
        {NUB_TG_FN_REP_OUTSB, tg_rep_outsb},
        {NUB_TG_FN_BAD_CR3, tg_bad_cr3},
        {NUB_TG_FN_SOFT_INT, tg_soft_int},
        {NUB_TG_FN_FORGE_ABORT, tg_forge_abort},
        {NUB_TG_FN_PRINT_BYTES, tg_print_bytes},
        {NUB_TG_FN_FULL_CDIR, tg_full_cdir},
    };
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        if (nub_register(fns[i].id, fns[i].fn) != NUB_REG_OK)
            nub_panic("testguest: cannot register fn %u", fns[i].id);
    }
}
