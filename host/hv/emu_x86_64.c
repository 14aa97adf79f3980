/* Emulated-CPU backend: Unicorn 2 in x86-64 mode, guest page tables pre-walked into direct VA mappings. */
#include "hv.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <unicorn/unicorn.h>

#include "emu_pagelock.h"
#include "x86_64.h"
#include "x86_64_len.h"
#include "nub/vmem.h"

/*
 * How it works (docs/backends.md has the long version)
 *
 * Unicorn's address space is the guest's *virtual* address space: create()
 * walks the host-built page tables once and maps every virtual run onto the
 * host memory behind it with uc_mem_map_ptr and the PTE permissions. CR0.PG
 * stays clear inside Unicorn so it never walks tables itself.
 *
 * Unicorn runs straight-line translated blocks (TBs) and only honours
 * uc_emu_stop() at a TB start or after a UC_HOOK_CODE callback. An OUT
 * hook alone would therefore let the rest of the TB run. To stop right
 * after every IN/OUT, a UC_HOOK_BLOCK hook decodes each TB the first time
 * it runs (before any of its instructions execute); when the TB holds port
 * I/O, it stops, and run() puts a UC_HOOK_CODE hook over the TB's
 * instructions that follow an IN/OUT (which makes Unicorn check for a stop
 * request there and sync RIP), drops the TB from the cache and restarts
 * it. The same block hook polls the interrupt flag, so
 * interrupt() never calls into Unicorn from another thread.
 *
 * Stop hooks are bounded: each instrumented TB gets one hook over the
 * instructions that follow its IN/OUTs, and at most EMU_STOP_HOOKS of them
 * live at once. Unicorn checks every live UC_HOOK_CODE range for every
 * instruction it translates, so unbounded hooks would make a guest with
 * many distinct I/O sites cost the host more per site the more sites it
 * has. When the ring is full the oldest hook is deleted; its TB's entry
 * in the TB map names a ring generation that is gone, so the block hook
 * instruments that TB again the next time it runs. An I/O instruction
 * that ends its TB needs no hook: the stop is honoured at the next TB.
 */

#define EMU_PAGE        4096ull
#define EMU_MAX_RUNS    65536u          /* virtual runs mapped at most */
#define EMU_WALK_BUDGET (1ull << 26)    /* page-table entry reads at most */
#define EMU_TB_BUF      8192u           /* QEMU x86 TBs stay below one page + one insn */
#define EMU_MAP_INIT    1024u           /* initial slots of the TB map */
#define EMU_MAX_RESTARTS 16u            /* re-instrumenting one TB in a row */
#define EMU_STOP_HOOKS  64u             /* stop hooks alive at once (oldest deleted first) */


/* What a hook saw before it asked Unicorn to stop. */
enum emu_pend {
    PEND_NONE = 0,
    PEND_OUT,
    PEND_IN,
    PEND_INTR,
    PEND_SYSCALL,
    PEND_MEM,
    PEND_TB,     /* a new TB holds port I/O: instrument it and restart */
    PEND_CANCEL, /* the block hook saw the interrupt flag */
    PEND_DEBUG,  /* debugging: breakpoint or step (hv->dbg_kind) */
};

/* Open-addressing u64 -> (u32, u64) map (TB start -> size seen, stop-hook generation or 0). */
struct emu_slot {
    uint64_t key;
    uint32_t val;
    uint32_t used;
    uint64_t gen;
};

/* One live stop hook (ring entry); gen 0 = unused. */
struct emu_stop {
    uc_hook hook;
    uint64_t gen;
};

struct emu_map {
    struct emu_slot *slot;
    size_t cap; /* power of two */
    size_t count;
};

struct nub_hv {
    uc_engine *uc;
    atomic_bool cancel;
    uint64_t rip;           /* authoritative between runs */
    enum emu_pend pend;
    uint16_t port;
    uint8_t io_size;
    uint32_t io_value;
    uint32_t intno;
    uint64_t insn_rip;      /* syscall/sysenter: the instruction */
    int mem_type;           /* uc_mem_type of the failed access */
    uint64_t mem_addr;
    uint64_t tb_start;      /* PEND_TB */
    uint32_t tb_size;
    uint64_t stop_lo, stop_hi; /* PEND_TB: the stop points it needs, inclusive */
    bool precise_all;       /* W+X memory: stop checks on every instruction */
    struct emu_map tbs;     /* TBs already examined */
    struct emu_stop stops[EMU_STOP_HOOKS]; /* ring of live stop hooks */
    uint64_t stop_gen;      /* stop hooks installed so far */
    struct nub_hv_debug dbg; /* set_debug(); dbg.enabled only while a debugger is attached */
    size_t ndbg_hooks;      /* one-address code hooks on dbg's breakpoints */
    uc_hook dbg_hooks[NUB_HV_MAX_SW_BP + NUB_HV_MAX_HW_BP];
    uint32_t dbg_kind;      /* PEND_DEBUG: enum nub_hv_debug_stop */
    unsigned char tb_buf[EMU_TB_BUF];
};

/* ---- small map ---------------------------------------------------------- */

static uint64_t map_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static struct emu_slot *map_find(const struct emu_map *m, uint64_t key)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)map_hash(key) & mask;
    while (m->slot[i].used && m->slot[i].key != key)
        i = (i + 1) & mask;
    return &m->slot[i];
}

static int map_init(struct emu_map *m, size_t cap)
{
    m->slot = calloc(cap, sizeof(*m->slot));
    m->cap = cap;
    m->count = 0;
    return m->slot == NULL ? -1 : 0;
}

static int map_grow(struct emu_map *m)
{
    struct emu_map bigger;
    if (m->cap > SIZE_MAX / 2 / sizeof(struct emu_slot) || map_init(&bigger, m->cap * 2) != 0)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slot[i].used) {
            *map_find(&bigger, m->slot[i].key) = m->slot[i];
            bigger.count++;
        }
    }
    free(m->slot);
    *m = bigger;
    return 0;
}

static int map_put(struct emu_map *m, uint64_t key, uint32_t val, uint64_t gen)
{
    if ((m->count + 1) * 2 > m->cap && map_grow(m) != 0)
        return -1;
    struct emu_slot *s = map_find(m, key);
    if (!s->used)
        m->count++;
    s->key = key;
    s->val = val;
    s->gen = gen;
    s->used = 1;
    return 0;
}

/* ---- exits -------------------------------------------------------------- */

static const char *const vec_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
    "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

static const char *vec_name(uint64_t v)
{
    if (v < 32 && vec_names[v] != NULL)
        return vec_names[v];
    return "interrupt";
}

static void exit_reset(struct nub_hv_exit *e, enum nub_hv_exit_kind kind, uint64_t rip)
{
    e->kind = kind;
    e->port = 0;
    e->size = 0;
    e->value = 0;
    e->addr = 0;
    e->vector = 0;
    e->error_code = 0;
    e->rip = rip;
    e->msg[0] = '\0';
}

static nub_status exit_internal(struct nub_hv *hv, struct nub_hv_exit *e, const char *what,
                                uc_err err)
{
    exit_reset(e, NUB_HV_EXIT_INTERNAL, hv->rip);
    nub_hv_fmt(e->msg, sizeof(e->msg), "emu: %s at rip 0x%llx: %s", what,
               (unsigned long long)hv->rip, uc_strerror(err));
    return NUB_E_BACKEND;
}

static void exit_fault(struct nub_hv_exit *e, uint64_t vector, uint64_t rip)
{
    exit_reset(e, NUB_HV_EXIT_FAULT, rip);
    e->vector = vector;
    nub_hv_fmt(e->msg, sizeof(e->msg), "exception %s (vector %llu)", vec_name(vector),
               (unsigned long long)vector); /* the caller's message gives the rip */
}

/*
 * `int n` with n >= 32: nub guests have IDT gates for the exception vectors
 * only (the SDK's IDT limit ends at vector 31), so on a CPU the interrupt
 * raises #GP with error code (n << 3) | IDT. Report that, naming the
 * software interrupt, with the rip of the `int` instruction (Unicorn
 * stops after it).
 */
static void exit_soft_int(struct nub_hv *hv, struct nub_hv_exit *e, uint32_t intno)
{
    uint8_t insn[2];
    uint64_t rip = hv->rip;
    if (rip >= 2 && uc_mem_read(hv->uc, rip - 2, insn, 2) == UC_ERR_OK && insn[0] == 0xcd && insn[1] == intno)
        rip -= 2;
    exit_reset(e, NUB_HV_EXIT_FAULT, rip);
    e->vector = NUB_X86_VEC_GP;
    e->error_code = ((uint64_t)intno << 3) | NUB_X86_ERR_IDT;
    nub_hv_fmt(e->msg, sizeof(e->msg), "software interrupt int $0x%x: no IDT gate for vector %u "
               "(general protection fault)", intno, intno);
}

static uint64_t pf_error_code(int type)
{
    switch (type) {
    case UC_MEM_WRITE_UNMAPPED: return NUB_X86_PF_W;
    case UC_MEM_FETCH_UNMAPPED: return NUB_X86_PF_I;
    case UC_MEM_READ_PROT: return NUB_X86_PF_P;
    case UC_MEM_WRITE_PROT: return NUB_X86_PF_P | NUB_X86_PF_W;
    case UC_MEM_FETCH_PROT: return NUB_X86_PF_P | NUB_X86_PF_I;
    default: return 0;
    }
}

static int mem_type_of(uc_err err)
{
    switch (err) {
    case UC_ERR_READ_UNMAPPED: return UC_MEM_READ_UNMAPPED;
    case UC_ERR_WRITE_UNMAPPED: return UC_MEM_WRITE_UNMAPPED;
    case UC_ERR_FETCH_UNMAPPED: return UC_MEM_FETCH_UNMAPPED;
    case UC_ERR_READ_PROT: return UC_MEM_READ_PROT;
    case UC_ERR_WRITE_PROT: return UC_MEM_WRITE_PROT;
    case UC_ERR_FETCH_PROT: return UC_MEM_FETCH_PROT;
    default: return -1;
    }
}

static void exit_page_fault(struct nub_hv *hv, struct nub_hv_exit *e, int type, uint64_t addr)
{
    uint64_t ec = pf_error_code(type);
    const char *access = (ec & NUB_X86_PF_I) ? "fetching" : (ec & NUB_X86_PF_W) ? "writing" : "reading";
    const char *why = !(ec & NUB_X86_PF_P)  ? "not mapped"
                      : (ec & NUB_X86_PF_I) ? "not executable"
                      : (ec & NUB_X86_PF_W) ? "not writable"
                                            : "not readable";
    exit_reset(e, NUB_HV_EXIT_FAULT, hv->rip);
    e->vector = NUB_X86_VEC_PF;
    e->error_code = ec;
    e->addr = addr;
    nub_hv_fmt(e->msg, sizeof(e->msg), "page fault %s 0x%llx (%s)", access,
               (unsigned long long)addr, why);
}

/* ---- hooks (run on the thread inside uc_emu_start) ----------------------- */

static void hook_out(uc_engine *uc, uint32_t port, int size, uint32_t value, void *user)
{
    struct nub_hv *hv = user;
    hv->pend = PEND_OUT;
    hv->port = (uint16_t)port;
    hv->io_size = (uint8_t)size;
    hv->io_value = value;
    uc_emu_stop(uc);
}

static uint32_t hook_in(uc_engine *uc, uint32_t port, int size, void *user)
{
    struct nub_hv *hv = user;
    hv->pend = PEND_IN;
    hv->port = (uint16_t)port;
    hv->io_size = (uint8_t)size;
    uc_emu_stop(uc);
    return 0;
}

static void hook_intr(uc_engine *uc, uint32_t intno, void *user)
{
    struct nub_hv *hv = user;
    hv->pend = PEND_INTR;
    hv->intno = intno;
    uc_emu_stop(uc);
}

static void hook_syscall(uc_engine *uc, void *user)
{
    struct nub_hv *hv = user;
    hv->pend = PEND_SYSCALL;
    if (uc_reg_read(uc, UC_X86_REG_RIP, &hv->insn_rip) != UC_ERR_OK)
        hv->insn_rip = 0;
    uc_emu_stop(uc);
}

static bool hook_mem(uc_engine *uc, uc_mem_type type, uint64_t addr, int size, int64_t value,
                     void *user)
{
    struct nub_hv *hv = user;
    (void)uc;
    (void)size;
    (void)value;
    hv->pend = PEND_MEM;
    hv->mem_type = (int)type;
    hv->mem_addr = addr;
    return false;
}

/* Stop point: Unicorn checks for a pending stop right after this callback. */
static void hook_stop(uc_engine *uc, uint64_t addr, uint32_t size, void *user)
{
    (void)uc;
    (void)addr;
    (void)size;
    (void)user;
}

/* ---- debugging (gdb stub) ----------------------------------------------- */

static uint32_t debug_bp_at(const struct nub_hv_debug *d, uint64_t addr)
{
    for (size_t i = 0; i < d->nsw; i++)
        if (d->sw[i] == addr)
            return NUB_HV_DBG_SW_BP;
    for (size_t i = 0; i < d->nhw; i++)
        if (d->hw[i] == addr)
            return NUB_HV_DBG_HW_BP;
    return 0;
}

/* A one-address hook on each breakpoint: stop before the instruction there runs. */
static void hook_debug(uc_engine *uc, uint64_t addr, uint32_t size, void *user)
{
    struct nub_hv *hv = user;
    (void)size;
    if (hv->pend != PEND_NONE || hv->dbg.single_step)
        return; /* a stop is already on its way; a step ends by count */
    uint32_t kind = debug_bp_at(&hv->dbg, addr);
    if (kind == 0)
        return;
    hv->pend = PEND_DEBUG;
    hv->dbg_kind = kind;
    uc_emu_stop(uc);
}

/* ---- finding port I/O in translated blocks ------------------------------ */

/* Is stop-hook generation gen (0: none needed) still installed? */
static bool stop_alive(const struct nub_hv *hv, uint64_t gen)
{
    return gen == 0 || hv->stops[gen % EMU_STOP_HOOKS].gen == gen;
}

/* A UC_HOOK_CODE stop point over [lo, hi] in the ring, deleting the oldest when it is full; *gen names it. */
static uc_err add_stop_hook(struct nub_hv *hv, uint64_t lo, uint64_t hi, uint64_t *gen)
{
    struct emu_stop *st = &hv->stops[(hv->stop_gen + 1) % EMU_STOP_HOOKS];
    if (st->gen != 0) {
        uc_err err = uc_hook_del(hv->uc, st->hook);
        if (err != UC_ERR_OK)
            return err;
        st->gen = 0;
    }
    uc_err err = uc_hook_add(hv->uc, &st->hook, UC_HOOK_CODE, (void *)hook_stop, hv, lo, hi);
    if (err != UC_ERR_OK)
        return err;
    st->gen = *gen = ++hv->stop_gen;
    return UC_ERR_OK;
}

size_t nub_hv_emu_stop_hooks(const struct nub_hv *hv)
{
    size_t n = 0;
    for (size_t i = 0; hv != NULL && i < EMU_STOP_HOOKS; i++)
        n += hv->stops[i].gen != 0;
    return n;
}

/*
 * The stop points a TB needs (its bytes are in hv->tb_buf): the
 * instructions inside it that follow an IN/OUT/INS/OUTS, and the undecoded
 * rest when the decoder stops early with I/O opcode bytes left. Sets
 * [*lo, *hi] and returns true, or false when it needs none.
 */
static bool tb_stop_range(struct nub_hv *hv, uint64_t start, uint32_t size, uint64_t *lo, uint64_t *hi)
{
    uint32_t off = 0, first = 0, last = 0;
    bool any = false;
    while (off < size) {
        bool io;
        size_t len = nub_x86_64_insn_len(hv->tb_buf + off, size - off, &io);
        if (len == 0)
            break;
        off += (uint32_t)len;
        if (io && off < size) {
            first = any ? first : off;
            last = off;
            any = true;
        }
    }
    if (off < size && nub_x86_64_may_have_io(hv->tb_buf + off, size - off)) {
        first = any ? first : off;
        last = size - 1;
        any = true;
    }
    *lo = start + first;
    *hi = start + last;
    return any;
}

/* Does the TB at addr (size bytes) need stop points? Which, in [*lo, *hi]. */
static bool tb_needs_hooks(struct nub_hv *hv, uint64_t addr, uint32_t size, uint64_t *lo, uint64_t *hi)
{
    if (size > EMU_TB_BUF) { /* too large to decode: a stop check on every instruction */
        *lo = addr;
        *hi = addr + size - 1;
        return true;
    }
    if (uc_mem_read(hv->uc, addr, hv->tb_buf, size) != UC_ERR_OK)
        return false; /* cannot be executed either: the fetch will fault */
    return nub_x86_64_may_have_io(hv->tb_buf, size) && tb_stop_range(hv, addr, size, lo, hi);
}

/* Runs before any instruction of the TB; a stop requested here happens before it. */
static void hook_block(uc_engine *uc, uint64_t addr, uint32_t size, void *user)
{
    struct nub_hv *hv = user;
    if (hv->pend != PEND_NONE)
        return; /* a stop is already on its way */
    if (atomic_load_explicit(&hv->cancel, memory_order_relaxed)) {
        hv->pend = PEND_CANCEL;
        uc_emu_stop(uc);
        return;
    }
    if (hv->precise_all || size == 0)
        return;
    const struct emu_slot *s = map_find(&hv->tbs, addr);
    if (s->used && s->val == size && stop_alive(hv, s->gen))
        return;
    if (!tb_needs_hooks(hv, addr, size, &hv->stop_lo, &hv->stop_hi)) {
        (void)map_put(&hv->tbs, addr, size, 0); /* on failure: looked at again next time */
        return;
    }
    hv->pend = PEND_TB;
    hv->tb_start = addr;
    hv->tb_size = size;
    uc_emu_stop(uc);
}

/*
 * Put the stop hook hook_block found the TB at hv->tb_start needs, drop the
 * TB so it is translated again with it, and remember it.
 */
static uc_err instrument_tb(struct nub_hv *hv)
{
    uint64_t start = hv->tb_start, gen = 0;
    uint32_t size = hv->tb_size;
    uc_err err = add_stop_hook(hv, hv->stop_lo, hv->stop_hi, &gen);
    if (err == UC_ERR_OK)
        err = uc_ctl_remove_cache(hv->uc, start, start + size);
    if (err == UC_ERR_OK && map_put(&hv->tbs, start, size, gen) != 0)
        err = UC_ERR_NOMEM;
    return err;
}

/* ---- run ---------------------------------------------------------------- */

static bool stopped_after_hlt(struct nub_hv *hv)
{
    uint8_t b;
    return hv->rip > 0 && uc_mem_read(hv->uc, hv->rip - 1, &b, 1) == UC_ERR_OK && b == 0xf4;
}

/* uc_emu_start returned without a hook having asked to stop. */
static nub_status finish_plain(struct nub_hv *hv, uc_err err, struct nub_hv_exit *e)
{
    int type = mem_type_of(err);
    if (err == UC_ERR_INSN_INVALID) {
        exit_fault(e, NUB_X86_VEC_UD, hv->rip);
        return NUB_OK;
    }
    if (type >= 0) { /* no hook report: only the kind is known */
        exit_page_fault(hv, e, type, type == UC_MEM_FETCH_UNMAPPED || type == UC_MEM_FETCH_PROT
                                         ? hv->rip : 0);
        return NUB_OK;
    }
    if (err != UC_ERR_OK)
        return exit_internal(hv, e, "emulation failed", err);
    if (hv->dbg.single_step && !stopped_after_hlt(hv)) { /* uc_emu_start ran its count of one */
        exit_reset(e, NUB_HV_EXIT_DEBUG, hv->rip);
        e->debug = NUB_HV_DBG_STEP;
        return NUB_OK;
    }
    if (stopped_after_hlt(hv)) { /* before the flag: a pending interrupt still cancels the next run */
        exit_reset(e, NUB_HV_EXIT_HALT, hv->rip);
        return NUB_OK;
    }
    if (atomic_load_explicit(&hv->cancel, memory_order_relaxed)) {
        exit_reset(e, NUB_HV_EXIT_CANCELLED, hv->rip);
        return NUB_OK;
    }
    return exit_internal(hv, e, "emulation stopped for no known reason", UC_ERR_OK);
}

static nub_status finish(struct nub_hv *hv, uc_err err, struct nub_hv_exit *e)
{
    switch (hv->pend) {
    case PEND_OUT:
    case PEND_IN:
        exit_reset(e, hv->pend == PEND_OUT ? NUB_HV_EXIT_IO_OUT : NUB_HV_EXIT_IO_IN, hv->rip);
        e->port = hv->port;
        e->size = hv->io_size;
        e->value = hv->pend == PEND_OUT ? hv->io_value : 0;
        return NUB_OK;
    case PEND_INTR:
        if (hv->intno >= NUB_X86_EXN_VECTORS)
            exit_soft_int(hv, e, hv->intno);
        else
            exit_fault(e, hv->intno, hv->rip);
        return NUB_OK;
    case PEND_SYSCALL:
        exit_fault(e, NUB_X86_VEC_UD, hv->insn_rip);
        nub_hv_fmt(e->msg, sizeof(e->msg), "syscall/sysenter: not supported by the emu backend");
        return NUB_OK;
    case PEND_MEM:
        if (err == UC_ERR_OK)
            break; /* the access was retried and succeeded: ignore */
        exit_page_fault(hv, e, hv->mem_type, hv->mem_addr);
        return NUB_OK;
    case PEND_CANCEL:
        exit_reset(e, NUB_HV_EXIT_CANCELLED, hv->rip);
        return NUB_OK;
    case PEND_DEBUG:
        exit_reset(e, NUB_HV_EXIT_DEBUG, hv->rip);
        e->debug = hv->dbg_kind;
        return NUB_OK;
    case PEND_NONE:
    case PEND_TB:
        break;
    }
    return finish_plain(hv, err, e);
}

static nub_status emu_run(struct nub_hv *hv, struct nub_hv_exit *e)
{
    uint64_t last_tb = 0;
    size_t count = hv->dbg.single_step ? 1 : 0; /* debugging: one instruction */
    for (unsigned same = 0;;) {
        if (atomic_load_explicit(&hv->cancel, memory_order_acquire)) {
            exit_reset(e, NUB_HV_EXIT_CANCELLED, hv->rip);
            return NUB_OK;
        }
        hv->pend = PEND_NONE;
        uc_err err = uc_emu_start(hv->uc, hv->rip, 0, 0, count);
        uc_err rerr = uc_reg_read(hv->uc, UC_X86_REG_RIP, &hv->rip);
        if (rerr != UC_ERR_OK)
            return exit_internal(hv, e, "reading rip", rerr);
        if (hv->pend != PEND_TB)
            return finish(hv, err, e);
        same = hv->tb_start == last_tb ? same + 1 : 0;
        last_tb = hv->tb_start;
        if (same > EMU_MAX_RESTARTS)
            return exit_internal(hv, e, "a translated block keeps changing", UC_ERR_OK);
        if ((err = instrument_tb(hv)) != UC_ERR_OK)
            return exit_internal(hv, e, "instrumenting a translated block", err);
    }
}

/* ---- registers ---------------------------------------------------------- */

#define EMU_NREGS 17 /* 16 GPRs + RFLAGS; RIP is cached in hv->rip */

static void reg_ids(int ids[EMU_NREGS])
{
    static const int order[EMU_NREGS] = {
        UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RSI,
        UC_X86_REG_RDI, UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_R8,  UC_X86_REG_R9,
        UC_X86_REG_R10, UC_X86_REG_R11, UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14,
        UC_X86_REG_R15, UC_X86_REG_RFLAGS,
    };
    memcpy(ids, order, sizeof(order));
}

/* Pointers to the struct fields in the order of reg_ids(). */
static void reg_ptrs(const struct nub_hv_regs *r, void *p[EMU_NREGS])
{
    const uint64_t *f[EMU_NREGS] = {
        &r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi, &r->rsp, &r->rbp, &r->r8,
        &r->r9,  &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15, &r->rflags,
    };
    for (int i = 0; i < EMU_NREGS; i++)
        p[i] = (void *)(uintptr_t)f[i];
}

static nub_status emu_set_regs(struct nub_hv *hv, const struct nub_hv_regs *regs)
{
    int ids[EMU_NREGS];
    void *p[EMU_NREGS];
    if (hv == NULL || regs == NULL)
        return NUB_E_INVALID;
    reg_ids(ids);
    reg_ptrs(regs, p);
    if (uc_reg_write_batch(hv->uc, ids, p, EMU_NREGS) != UC_ERR_OK)
        return NUB_E_BACKEND;
    hv->rip = regs->rip;
    return NUB_OK;
}

static nub_status emu_get_regs(struct nub_hv *hv, struct nub_hv_regs *regs)
{
    int ids[EMU_NREGS];
    void *p[EMU_NREGS];
    if (hv == NULL || regs == NULL)
        return NUB_E_INVALID;
    reg_ids(ids);
    reg_ptrs(regs, p);
    if (uc_reg_read_batch(hv->uc, ids, p, EMU_NREGS) != UC_ERR_OK)
        return NUB_E_BACKEND;
    regs->rip = hv->rip;
    return NUB_OK;
}

/* The snapshot state (hv.h nub_hv_cpu). Unicorn keeps segment flags as the
 * descriptor's high word, which is the VMX access-rights layout shifted by 8. */
static nub_status emu_get_cpu(struct nub_hv *hv, struct nub_hv_cpu *cpu)
{
    uc_x86_mmr gdt = {0}, idt = {0}, tr = {0};
    uint32_t mxcsr = 0;
    uint16_t fcw = 0;
    memset(cpu, 0, sizeof *cpu);
    if (emu_get_regs(hv, &cpu->regs) != NUB_OK)
        return NUB_E_BACKEND;
    if (uc_reg_read(hv->uc, UC_X86_REG_GDTR, &gdt) != UC_ERR_OK ||
        uc_reg_read(hv->uc, UC_X86_REG_IDTR, &idt) != UC_ERR_OK ||
        uc_reg_read(hv->uc, UC_X86_REG_TR, &tr) != UC_ERR_OK ||
        uc_reg_read(hv->uc, UC_X86_REG_FS_BASE, &cpu->fs_base) != UC_ERR_OK ||
        uc_reg_read(hv->uc, UC_X86_REG_GS_BASE, &cpu->gs_base) != UC_ERR_OK ||
        uc_reg_read(hv->uc, UC_X86_REG_MXCSR, &mxcsr) != UC_ERR_OK ||
        uc_reg_read(hv->uc, UC_X86_REG_FPCW, &fcw) != UC_ERR_OK)
        return NUB_E_BACKEND;
    cpu->gdt_base = gdt.base;
    cpu->gdt_limit = gdt.limit;
    cpu->idt_base = idt.base;
    cpu->idt_limit = idt.limit;
    cpu->tr = (struct nub_hv_seg){tr.base, tr.limit, tr.selector, (uint16_t)(tr.flags >> 8)};
    cpu->mxcsr = mxcsr;
    cpu->fcw = fcw;
    return NUB_OK;
}

static nub_status emu_set_cpu(struct nub_hv *hv, const struct nub_hv_cpu *cpu)
{
    uc_x86_mmr gdt = {.base = cpu->gdt_base, .limit = cpu->gdt_limit};
    uc_x86_mmr idt = {.base = cpu->idt_base, .limit = cpu->idt_limit};
    uc_x86_mmr tr = {.selector = cpu->tr.selector, .base = cpu->tr.base, .limit = cpu->tr.limit,
                     .flags = (uint32_t)cpu->tr.attr << 8};
    uint32_t mxcsr = cpu->mxcsr;
    uint16_t fcw = cpu->fcw;
    uint64_t fs = cpu->fs_base, gs = cpu->gs_base;
    if (emu_set_regs(hv, &cpu->regs) != NUB_OK ||
        uc_reg_write(hv->uc, UC_X86_REG_GDTR, &gdt) != UC_ERR_OK ||
        uc_reg_write(hv->uc, UC_X86_REG_IDTR, &idt) != UC_ERR_OK ||
        uc_reg_write(hv->uc, UC_X86_REG_TR, &tr) != UC_ERR_OK ||
        uc_reg_write(hv->uc, UC_X86_REG_FS_BASE, &fs) != UC_ERR_OK ||
        uc_reg_write(hv->uc, UC_X86_REG_GS_BASE, &gs) != UC_ERR_OK ||
        uc_reg_write(hv->uc, UC_X86_REG_MXCSR, &mxcsr) != UC_ERR_OK ||
        uc_reg_write(hv->uc, UC_X86_REG_FPCW, &fcw) != UC_ERR_OK)
        return NUB_E_BACKEND;
    return NUB_OK;
}

/* FXSAVE image of Unicorn's x87/SSE registers (abridged tag word: 1 = valid). */
static nub_status emu_get_fpu(struct nub_hv *hv, struct nub_hv_fpu *fpu)
{
    uint16_t fcw = 0, fsw = 0, ftag = 0xffff;
    uint32_t mxcsr = 0;
    uint8_t *f = fpu->fxsave;
    memset(f, 0, sizeof fpu->fxsave);
    if (uc_reg_read(hv->uc, UC_X86_REG_FPCW, &fcw) != UC_ERR_OK ||
        uc_reg_read(hv->uc, UC_X86_REG_FPSW, &fsw) != UC_ERR_OK ||
        uc_reg_read(hv->uc, UC_X86_REG_FPTAG, &ftag) != UC_ERR_OK ||
        uc_reg_read(hv->uc, UC_X86_REG_MXCSR, &mxcsr) != UC_ERR_OK)
        return NUB_E_BACKEND;
    uint8_t ftw = 0;
    for (int i = 0; i < 8; i++)
        ftw |= (uint8_t)((((ftag >> (2 * i)) & 3u) != 3u) << i);
    memcpy(f, &fcw, 2);
    memcpy(f + 2, &fsw, 2);
    f[4] = ftw;
    memcpy(f + 24, &mxcsr, 4);
    for (int i = 0; i < 8; i++) {
        uint8_t st[16] = {0};
        if (uc_reg_read(hv->uc, UC_X86_REG_ST0 + i, st) != UC_ERR_OK)
            return NUB_E_BACKEND;
        memcpy(f + 32 + 16 * i, st, 10);
    }
    for (int i = 0; i < 16; i++)
        if (uc_reg_read(hv->uc, UC_X86_REG_XMM0 + i, f + 160 + 16 * i) != UC_ERR_OK)
            return NUB_E_BACKEND;
    return NUB_OK;
}

/* ---- create: memory ------------------------------------------------------ */

struct emu_mem {
    const struct nub_hv_region *regions;
    size_t n;
};

/* Region holding [pa, pa + len), or NULL. */
static const struct nub_hv_region *region_of(const struct emu_mem *m, uint64_t pa, uint64_t len)
{
    for (size_t i = 0; i < m->n; i++) {
        const struct nub_hv_region *r = &m->regions[i];
        if (pa >= r->gpa && pa - r->gpa <= r->size && len <= r->size - (pa - r->gpa))
            return r;
    }
    return NULL;
}

static int walk_read(void *ctx, uint64_t pa, uint64_t *val)
{
    const struct nub_hv_region *r = region_of(ctx, pa, 8);
    if (r == NULL || (pa & 7) != 0)
        return NUB_VMEM_E_ACCESS;
    memcpy(val, (const uint8_t *)r->host + (pa - r->gpa), 8); /* x86 host: little-endian */
    return NUB_VMEM_OK;
}

static nub_status check_regions(const struct nub_hv_config *cfg, char *err, size_t len)
{
    if (cfg->nregions > 0 && cfg->regions == NULL) {
        nub_hv_fmt(err, len, "emu: %zu regions but no region array", cfg->nregions);
        return NUB_E_INVALID;
    }
    for (size_t i = 0; i < cfg->nregions; i++) {
        const struct nub_hv_region *r = &cfg->regions[i];
        if (r->host == NULL || r->size == 0 || ((r->gpa | r->size) & (EMU_PAGE - 1)) != 0 ||
            ((uintptr_t)r->host & (EMU_PAGE - 1)) != 0 || r->gpa + r->size < r->gpa) {
            nub_hv_fmt(err, len, "emu: region %zu (gpa 0x%llx, size 0x%llx) is empty, "
                       "not page aligned or wraps", i, (unsigned long long)r->gpa,
                       (unsigned long long)r->size);
            return NUB_E_BACKEND;
        }
    }
    return NUB_OK;
}

static uint32_t run_perms(uint32_t flags)
{
    uint32_t p = UC_PROT_READ;
    if (flags & NUB_VMEM_W)
        p |= UC_PROT_WRITE;
    if (flags & NUB_VMEM_X)
        p |= UC_PROT_EXEC;
    return p;
}

static nub_status map_run(struct nub_hv *hv, const struct emu_mem *m,
                          const struct nub_vmem_run *run, char *err, size_t len)
{
    const struct nub_hv_region *r = region_of(m, run->pa, run->len);
    if (r == NULL) {
        nub_hv_fmt(err, len, "emu: page-table run va 0x%llx -> pa 0x%llx (0x%llx bytes) is "
                   "not inside one memory region", (unsigned long long)run->va,
                   (unsigned long long)run->pa, (unsigned long long)run->len);
        return NUB_E_BACKEND;
    }
    if (((run->va | run->pa | run->len) & (EMU_PAGE - 1)) != 0) {
        nub_hv_fmt(err, len, "emu: page-table run va 0x%llx is not page aligned",
                   (unsigned long long)run->va);
        return NUB_E_BACKEND;
    }
    if ((run->flags & NUB_VMEM_W) && (run->flags & NUB_VMEM_X))
        hv->precise_all = true;
    uc_err ue = uc_mem_map_ptr(hv->uc, run->va, run->len, run_perms(run->flags),
                               (uint8_t *)r->host + (run->pa - r->gpa));
    if (ue != UC_ERR_OK) {
        nub_hv_fmt(err, len, "emu: mapping va 0x%llx (0x%llx bytes): %s",
                   (unsigned long long)run->va, (unsigned long long)run->len, uc_strerror(ue));
        return ue == UC_ERR_NOMEM ? NUB_E_NOMEM : NUB_E_BACKEND;
    }
    return NUB_OK;
}

/*
 * Where the mappings land in Unicorn's internal RAM address space decides
 * what a guest store costs (docs/backends.md, "The emu cost model"): every
 * store to RAM runs Unicorn 2.0.1's code-invalidation slow path, which stops
 * early only when no translated code lives in the same 4 MiB chunk of that
 * space (QEMU's PageDesc chunks of 1024 pages). So executable runs are
 * mapped first, then a placeholder block of EMU_CODE_GAP bytes, then every
 * other run, and the placeholder is unmapped last: data always starts in a
 * later chunk than code. The placeholder sits at a non-canonical address,
 * which no page-table run can map, and is gone before the guest runs.
 */
#define EMU_CODE_GAP      (4ull << 20)
#define EMU_GAP_VA        0x0000800000000000ull /* first non-canonical address */

struct emu_walk {
    struct emu_mem m;
    struct nub_vmem_ops ops;
    struct nub_vmem_walk w;
    unsigned nruns;
};

/* Map the runs whose executability is `exec` (one pass over the page tables). */
static nub_status map_pass(struct nub_hv *hv, struct emu_walk *ew, bool exec, char *err,
                           size_t len)
{
    struct nub_vmem_run run;
    int rc;
    nub_vmem_runs_init(&ew->w, &ew->ops);
    nub_vmem_walk_budget(&ew->w, EMU_WALK_BUDGET);
    while ((rc = nub_vmem_runs_next(&ew->w, &run)) > 0) {
        if (((run.flags & NUB_VMEM_X) != 0) != exec)
            continue;
        if (++ew->nruns > EMU_MAX_RUNS) {
            nub_hv_fmt(err, len, "emu: page tables map more than %u runs", EMU_MAX_RUNS);
            return NUB_E_BACKEND;
        }
        nub_status st = map_run(hv, &ew->m, &run, err, len);
        if (st != NUB_OK)
            return st;
    }
    if (rc < 0) {
        nub_hv_fmt(err, len, "emu: walking the page tables at cr3 0x%llx failed: %s",
                   (unsigned long long)ew->ops.root, nub_vmem_err_name(rc));
        return NUB_E_BACKEND;
    }
    return NUB_OK;
}

/* Walk the page tables at cfg->cr3 and map every virtual run: code, the gap, then data. */
static nub_status map_memory(struct nub_hv *hv, const struct nub_hv_config *cfg, char *err,
                             size_t len)
{
    struct emu_walk ew = {.m = {.regions = cfg->regions, .n = cfg->nregions}};
    ew.ops = (struct nub_vmem_ops){.ctx = &ew.m, .read = walk_read, .root = cfg->cr3};
    if ((cfg->cr3 & (EMU_PAGE - 1)) != 0 || region_of(&ew.m, cfg->cr3, EMU_PAGE) == NULL) {
        nub_hv_fmt(err, len, "emu: cr3 0x%llx is not a page inside a memory region",
                   (unsigned long long)cfg->cr3);
        return NUB_E_BACKEND;
    }
    nub_emu_pagelock_init();
    nub_status st = map_pass(hv, &ew, true, err, len);
    if (st != NUB_OK)
        return st;
    uc_err ue = uc_mem_map(hv->uc, EMU_GAP_VA, EMU_CODE_GAP, UC_PROT_NONE);
    if (ue != UC_ERR_OK) {
        nub_hv_fmt(err, len, "emu: reserving the code/data gap: %s", uc_strerror(ue));
        return ue == UC_ERR_NOMEM ? NUB_E_NOMEM : NUB_E_BACKEND;
    }
    st = map_pass(hv, &ew, false, err, len);
    ue = uc_mem_unmap(hv->uc, EMU_GAP_VA, EMU_CODE_GAP);
    if (st == NUB_OK && ue != UC_ERR_OK) {
        nub_hv_fmt(err, len, "emu: releasing the code/data gap: %s", uc_strerror(ue));
        st = NUB_E_BACKEND;
    }
    return st;
}

/* ---- create: CPU state and hooks ----------------------------------------- */

static uc_err write_u64(uc_engine *uc, int id, uint64_t v)
{
    return uc_reg_write(uc, id, &v);
}

static uc_err write_u16(uc_engine *uc, int id, uint16_t v)
{
    return uc_reg_write(uc, id, &v);
}

/* The code and data selectors. In 64-bit mode Unicorn stores the selector
 * only; the guest's own GDT is read when it reloads segments. */
static uc_err setup_segments(uc_engine *uc)
{
    static const int data[] = {UC_X86_REG_DS, UC_X86_REG_ES, UC_X86_REG_SS};
    uc_err e = write_u16(uc, UC_X86_REG_CS, NUB_X86_SEL_CODE);
    for (size_t i = 0; e == UC_ERR_OK && i < sizeof(data) / sizeof(data[0]); i++)
        e = write_u16(uc, data[i], NUB_X86_SEL_DATA);
    return e;
}

/*
 * Long mode as hv.h describes it, except CR0.PG: Unicorn maps virtual
 * addresses directly, so paging stays off inside the emulator.
 */
static uc_err setup_cpu(struct nub_hv *hv, uint64_t cr3)
{
    uc_x86_msr efer = {.rid = NUB_X86_MSR_EFER, .value = NUB_X86_EFER_LONG_MODE};
    uint32_t mxcsr = NUB_X86_MXCSR_INIT;
    uc_err e = uc_reg_write(hv->uc, UC_X86_REG_MSR, &efer);
    if (e == UC_ERR_OK)
        e = write_u64(hv->uc, UC_X86_REG_CR4, NUB_X86_CR4_LONG_MODE);
    if (e == UC_ERR_OK)
        e = write_u64(hv->uc, UC_X86_REG_CR3, cr3);
    if (e == UC_ERR_OK)
        e = write_u64(hv->uc, UC_X86_REG_CR0, NUB_X86_CR0_LONG_MODE & ~NUB_X86_CR0_PG);
    if (e == UC_ERR_OK)
        e = setup_segments(hv->uc);
    if (e == UC_ERR_OK)
        e = write_u16(hv->uc, UC_X86_REG_FPCW, NUB_X86_FPCW_INIT);
    if (e == UC_ERR_OK)
        e = uc_reg_write(hv->uc, UC_X86_REG_MXCSR, &mxcsr);
    if (e == UC_ERR_OK)
        e = write_u64(hv->uc, UC_X86_REG_RFLAGS, NUB_X86_RFLAGS_FIXED);
    return e;
}

static uc_err add_hooks(struct nub_hv *hv)
{
    uc_engine *uc = hv->uc;
    uc_hook h;
    uc_err e = uc_hook_add(uc, &h, UC_HOOK_INSN, (void *)hook_out, hv, 1, 0, UC_X86_INS_OUT);
    if (e == UC_ERR_OK)
        e = uc_hook_add(uc, &h, UC_HOOK_INSN, (void *)hook_in, hv, 1, 0, UC_X86_INS_IN);
    if (e == UC_ERR_OK)
        e = uc_hook_add(uc, &h, UC_HOOK_INSN, (void *)hook_syscall, hv, 1, 0, UC_X86_INS_SYSCALL);
    if (e == UC_ERR_OK)
        e = uc_hook_add(uc, &h, UC_HOOK_INSN, (void *)hook_syscall, hv, 1, 0,
                        UC_X86_INS_SYSENTER);
    if (e == UC_ERR_OK)
        e = uc_hook_add(uc, &h, UC_HOOK_INTR, (void *)hook_intr, hv, 1, 0);
    if (e == UC_ERR_OK)
        e = uc_hook_add(uc, &h, UC_HOOK_MEM_INVALID, (void *)hook_mem, hv, 1, 0);
    if (e == UC_ERR_OK)
        e = uc_hook_add(uc, &h, UC_HOOK_BLOCK, (void *)hook_block, hv, 1, 0);
    if (e == UC_ERR_OK && hv->precise_all)
        e = uc_hook_add(uc, &h, UC_HOOK_CODE, (void *)hook_stop, hv, 1, 0);
    if (e == UC_ERR_OK)
        e = uc_ctl_exits_enable(uc); /* no "until" address: only hooks stop it */
    return e;
}

/* ---- ops ---------------------------------------------------------------- */

static void emu_destroy(struct nub_hv *hv)
{
    if (hv == NULL)
        return;
    if (hv->uc != NULL)
        uc_close(hv->uc);
    free(hv->tbs.slot);
    free(hv);
}

static nub_status emu_open(struct nub_hv *hv, char *err, size_t len)
{
    uc_err e = uc_open(UC_ARCH_X86, UC_MODE_64, &hv->uc);
    if (e != UC_ERR_OK) {
        hv->uc = NULL;
        nub_hv_fmt(err, len, "emu: uc_open(x86-64): %s", uc_strerror(e));
        return e == UC_ERR_NOMEM ? NUB_E_NOMEM : NUB_E_NO_HYPERVISOR;
    }
    if (map_init(&hv->tbs, EMU_MAP_INIT) != 0) {
        nub_hv_fmt(err, len, "emu: out of memory");
        return NUB_E_NOMEM;
    }
    return NUB_OK;
}

static nub_status emu_create(const struct nub_hv_config *cfg, struct nub_hv **out, char *err,
                             size_t err_len)
{
    nub_status st = NUB_E_NOMEM;
    uc_err e;
    if (out == NULL || cfg == NULL) {
        nub_hv_fmt(err, err_len, "emu: NULL config or output pointer");
        return NUB_E_INVALID;
    }
    *out = NULL;
    if ((st = check_regions(cfg, err, err_len)) != NUB_OK)
        return st;
    struct nub_hv *hv = calloc(1, sizeof(*hv));
    if (hv == NULL) {
        nub_hv_fmt(err, err_len, "emu: out of memory");
        return NUB_E_NOMEM;
    }
    atomic_init(&hv->cancel, false);
    if ((st = emu_open(hv, err, err_len)) != NUB_OK)
        goto fail;
    if ((st = map_memory(hv, cfg, err, err_len)) != NUB_OK)
        goto fail;
    if ((e = setup_cpu(hv, cfg->cr3)) != UC_ERR_OK || (e = add_hooks(hv)) != UC_ERR_OK) {
        nub_hv_fmt(err, err_len, "emu: setting up the vCPU: %s", uc_strerror(e));
        st = e == UC_ERR_NOMEM ? NUB_E_NOMEM : NUB_E_BACKEND;
        goto fail;
    }
    *out = hv;
    return NUB_OK;
fail:
    emu_destroy(hv);
    return st;
}

static nub_status emu_available(char *why, size_t why_len)
{
    unsigned major = 0, minor = 0;
    uc_version(&major, &minor);
    if (major != UC_API_MAJOR || !uc_arch_supported(UC_ARCH_X86)) {
        nub_hv_fmt(why, why_len, "emu: Unicorn %u.%u without x86 support (built against %d.x)",
                   major, minor, UC_API_MAJOR);
        return NUB_E_NO_HYPERVISOR;
    }
    if (why != NULL && why_len > 0)
        why[0] = '\0';
    return NUB_OK;
}

static void emu_interrupt(struct nub_hv *hv)
{
    if (hv != NULL)
        atomic_store_explicit(&hv->cancel, true, memory_order_release);
}

static void emu_clear_interrupt(struct nub_hv *hv)
{
    if (hv != NULL)
        atomic_store_explicit(&hv->cancel, false, memory_order_release);
}

#define EMU_DROP_MAX (1ull << 20) /* most bytes of translated code one set_debug() drops */

/* Drop the translated code over [addr, addr + len) so hooks and bytes apply anew. */
static uc_err drop_code(struct nub_hv *hv, uint64_t addr, uint64_t len)
{
    uint64_t end = addr + (len > EMU_DROP_MAX ? EMU_DROP_MAX : len);
    return uc_ctl_remove_cache(hv->uc, addr, end > addr ? end : UINT64_MAX);
}

/* Replace the breakpoint hooks with one per address of `d` (none when NULL). */
static uc_err set_debug_hooks(struct nub_hv *hv, const struct nub_hv_debug *d)
{
    uc_err e = UC_ERR_OK;
    for (size_t i = 0; i < hv->dbg.nsw + hv->dbg.nhw && e == UC_ERR_OK; i++)
        e = drop_code(hv, i < hv->dbg.nsw ? hv->dbg.sw[i] : hv->dbg.hw[i - hv->dbg.nsw], 1);
    while (hv->ndbg_hooks > 0 && e == UC_ERR_OK)
        e = uc_hook_del(hv->uc, hv->dbg_hooks[--hv->ndbg_hooks]);
    for (size_t i = 0; d != NULL && i < d->nsw + d->nhw && e == UC_ERR_OK; i++) {
        uint64_t a = i < d->nsw ? d->sw[i] : d->hw[i - d->nsw];
        e = uc_hook_add(hv->uc, &hv->dbg_hooks[hv->ndbg_hooks], UC_HOOK_CODE, (void *)hook_debug,
                        hv, a, a);
        hv->ndbg_hooks += e == UC_ERR_OK;
        if (e == UC_ERR_OK)
            e = drop_code(hv, a, 1);
    }
    if (e == UC_ERR_OK && d != NULL && d->written_len != 0)
        e = drop_code(hv, d->written, d->written_len);
    return e;
}

/* Debugging: breakpoint hooks, translated code dropped where hooks or bytes changed. */
static nub_status emu_set_debug(struct nub_hv *hv, const struct nub_hv_debug *dbg, char *err,
                                size_t err_len)
{
    bool on = dbg != NULL && dbg->enabled;
    if (hv == NULL || (on && (dbg->nsw > NUB_HV_MAX_SW_BP || dbg->nhw > NUB_HV_MAX_HW_BP))) {
        nub_hv_fmt(err, err_len, "emu: at most %d software and %d hardware breakpoints",
                   NUB_HV_MAX_SW_BP, NUB_HV_MAX_HW_BP);
        return NUB_E_INVALID;
    }
    uc_err e = set_debug_hooks(hv, on ? dbg : NULL);
    if (e != UC_ERR_OK) {
        nub_hv_fmt(err, err_len, "emu: setting breakpoint hooks: %s", uc_strerror(e));
        return NUB_E_BACKEND;
    }
    if (on)
        hv->dbg = *dbg;
    else
        memset(&hv->dbg, 0, sizeof hv->dbg);
    return NUB_OK;
}

static nub_status emu_run_checked(struct nub_hv *hv, struct nub_hv_exit *exit)
{
    if (hv == NULL || exit == NULL)
        return NUB_E_INVALID;
    return emu_run(hv, exit);
}

static const struct nub_hv_ops emu_ops = {
    .name = "emu",
    .available = emu_available,
    .create = emu_create,
    .destroy = emu_destroy,
    .set_regs = emu_set_regs,
    .get_regs = emu_get_regs,
    .get_cpu = emu_get_cpu,
    .set_cpu = emu_set_cpu,
    .get_fpu = emu_get_fpu,
    .run = emu_run_checked,
    .interrupt = emu_interrupt,
    .clear_interrupt = emu_clear_interrupt,
    .set_debug = emu_set_debug,
    .sw_bp_in_memory = 0,
};

const struct nub_hv_ops *nub_hv_emu_ops(void)
{
    return &emu_ops;
}
