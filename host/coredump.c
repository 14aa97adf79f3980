/* Crash dumps: an ELF core file of the guest (registers, FPU, memory at guest virtual addresses from its own page tables, auxv, nub's error record). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/procfs.h>
#include <unistd.h>

#include "internal.h"
#include "nub/vmem.h"
#include "x86_64.h"

#define CORE_MAX_SEGMENTS 1024u      /* PT_LOAD segments at most */
#define CORE_WALK_BUDGET (1u << 20)  /* page-table entries read at most */
#define CORE_NOTE_NUB_ERROR 0x4e554201u /* "NUB" note: struct nub_error (nub/nub.h) */

struct core_seg {
    uint64_t va, len;
    const uint8_t *host;
    uint32_t flags; /* PF_* */
};

struct core {
    nub_sandbox *sb;
    struct core_seg *segs;
    size_t nsegs;
    uint64_t bytes, max_bytes;
    struct nub_hv_regs regs;
    struct nub_hv_fpu fpu;
    int have_fpu;
};

/* ---- guest memory --------------------------------------------------------- */

/* Host pointer to [gpa, gpa + len) when one region backs all of it, else NULL. */
static const uint8_t *host_of(const nub_sandbox *sb, uint64_t gpa, uint64_t len)
{
    const struct nub_layout *l = &sb->lay;
    uint64_t base[2] = {NUB_BASE_GPA, nub_scratch_gpa(l, 0)};
    uint64_t size[2] = {l->snapshot_size, l->scratch_size};
    const uint8_t *host[2] = {sb->snapshot, sb->scratch};
    for (int i = 0; i < 2; i++)
        if (gpa >= base[i] && gpa - base[i] <= size[i] && len <= size[i] - (gpa - base[i]))
            return host[i] + (gpa - base[i]);
    return NULL;
}

static int table_read(void *ctx, uint64_t pa, uint64_t *val)
{
    const uint8_t *p = (pa & 7) == 0 ? host_of(ctx, pa, 8) : NULL;
    if (p == NULL)
        return NUB_VMEM_E_ACCESS;
    memcpy(val, p, 8);
    return NUB_VMEM_OK;
}

static nub_status add_seg(struct core *c, uint64_t va, uint64_t len, const uint8_t *host, uint32_t vflags)
{
    if (c->nsegs == CORE_MAX_SEGMENTS || len > c->max_bytes - c->bytes)
        return NUB_E_TOO_LARGE;
    c->segs[c->nsegs++] = (struct core_seg){va, len, host,
        PF_R | ((vflags & NUB_VMEM_W) ? PF_W : 0) | ((vflags & NUB_VMEM_X) ? PF_X : 0)};
    c->bytes += len;
    return NUB_OK;
}

/* Add the backed parts of one run, page by page coalesced (a hostile table may point anywhere). */
static nub_status add_run(struct core *c, const struct nub_vmem_run *r)
{
    uint64_t start = 0, off = 0;
    const uint8_t *first = NULL;
    for (off = 0; off < r->len; off += NUB_PAGE_SIZE) {
        const uint8_t *p = host_of(c->sb, r->pa + off, NUB_PAGE_SIZE);
        if (first != NULL && p == first + (off - start))
            continue;
        if (first != NULL && add_seg(c, r->va + start, off - start, first, r->flags) != NUB_OK)
            return NUB_E_TOO_LARGE;
        first = p;
        start = off;
    }
    if (first != NULL)
        return add_seg(c, r->va + start, off - start, first, r->flags);
    return NUB_OK;
}

/* Collect the mapped, backed guest-virtual ranges from the page tables at sb->obs.cr3;
 * a walk cut short (budget, limits) keeps what it found and says so in why. */
static void collect_segments(struct core *c, char *why, size_t why_len)
{
    struct nub_vmem_ops ops = {.ctx = c->sb, .read = table_read, .root = c->sb->obs.cr3};
    struct nub_vmem_walk w;
    struct nub_vmem_run run;
    int rc;
    nub_vmem_runs_init(&w, &ops);
    nub_vmem_walk_budget(&w, CORE_WALK_BUDGET);
    while ((rc = nub_vmem_runs_next(&w, &run)) > 0) {
        if (add_run(c, &run) != NUB_OK) {
            snprintf(why, why_len, "memory truncated at %u segments or %llu bytes (the page tables map more)",
                     CORE_MAX_SEGMENTS, (unsigned long long)c->max_bytes);
            return;
        }
    }
    if (rc < 0)
        snprintf(why, why_len, "page-table walk stopped: %s (dump has the ranges found before)",
                 nub_vmem_err_name(rc));
}

/* ---- registers ---------------------------------------------------------- */

/*
 * A CPU exception the guest reported through its own IDT (kvm) leaves the
 * vCPU in the guest's exception handler; the faulting context is what the
 * SDK's exception entry left at the top of the exception stack (the
 * interrupt frame and the saved general-purpose registers). Use it when its
 * RIP is the one the abort record named.
 */
static void use_exception_frame(struct core *c)
{
    const nub_sandbox *sb = c->sb;
    if (sb->last.code != NUB_E_GUEST_FAULT || c->regs.rip == sb->last.rip)
        return;
    struct nub_hv_regs r = c->regs;
    nub_exn_context(sb, &r);
    if (r.rip == sb->last.rip)
        c->regs = r;
}

static int signal_of(const struct nub_error *e)
{
    switch (e->code) {
    case NUB_E_GUEST_ABORT: return SIGABRT;
    case NUB_E_TIMEOUT: return SIGXCPU;
    case NUB_E_CANCELLED: return SIGINT;
    case NUB_E_GUEST_FAULT:
        switch (e->vector) {
        case 0: case 16: case 19: return SIGFPE;
        case 6: return SIGILL;
        case 1: case 3: return SIGTRAP;
        case 17: return SIGBUS;
        default: return SIGSEGV;
        }
    default: return 0;
    }
}

static void fill_prstatus(const struct core *c, struct elf_prstatus *p)
{
    const struct nub_hv_regs *r = &c->regs;
    memset(p, 0, sizeof *p);
    p->pr_cursig = (short)signal_of(&c->sb->last);
    p->pr_info.si_signo = p->pr_cursig;
    p->pr_pid = 1;
    struct user_regs_struct u = {
        .r15 = r->r15, .r14 = r->r14, .r13 = r->r13, .r12 = r->r12, .rbp = r->rbp, .rbx = r->rbx,
        .r11 = r->r11, .r10 = r->r10, .r9 = r->r9, .r8 = r->r8, .rax = r->rax, .rcx = r->rcx,
        .rdx = r->rdx, .rsi = r->rsi, .rdi = r->rdi, .orig_rax = (unsigned long long)-1,
        .rip = r->rip, .cs = NUB_X86_SEL_CODE, .eflags = r->rflags, .rsp = r->rsp,
        .ss = NUB_X86_SEL_DATA, .ds = NUB_X86_SEL_DATA, .es = NUB_X86_SEL_DATA,
    };
    _Static_assert(sizeof u == sizeof p->pr_reg, "user_regs_struct is elf_gregset_t");
    memcpy(&p->pr_reg, &u, sizeof u);
    p->pr_fpvalid = c->have_fpu;
}

/* ---- writing ------------------------------------------------------------ */

struct writer {
    int fd;
    uint64_t off;
    int err;   /* errno of the first failure */
    bool hole; /* off is past the file position: seek before the next write */
};

static void wr(struct writer *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0 && w->err == 0) {
        ssize_t k = write(w->fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            w->err = k < 0 ? errno : EIO;
            return;
        }
        b += k;
        n -= (size_t)k;
        w->off += (uint64_t)k;
    }
}

/* Segment bytes: whole zero pages become holes, so untouched guest memory costs no disk. */
static void wr_sparse(struct writer *w, const uint8_t *p, uint64_t n)
{
    static const uint8_t zeros[NUB_PAGE_SIZE];
    for (uint64_t off = 0; off < n && w->err == 0; off += NUB_PAGE_SIZE) {
        size_t k = n - off < NUB_PAGE_SIZE ? (size_t)(n - off) : (size_t)NUB_PAGE_SIZE;
        if (k == NUB_PAGE_SIZE && memcmp(p + off, zeros, k) == 0) {
            w->off += k;
            w->hole = true;
            continue;
        }
        if (w->hole && lseek(w->fd, (off_t)w->off, SEEK_SET) < 0) {
            w->err = errno;
            return;
        }
        w->hole = false;
        wr(w, p + off, k);
    }
}

/* After a trailing hole the file must still reach its full size. */
static void finish_sparse(struct writer *w)
{
    if (w->err == 0 && w->hole && ftruncate(w->fd, (off_t)w->off) != 0)
        w->err = errno;
}

static void pad_to(struct writer *w, uint64_t off)
{
    static const uint8_t zeros[4096];
    while (w->off < off && w->err == 0)
        wr(w, zeros, off - w->off < sizeof zeros ? (size_t)(off - w->off) : sizeof zeros);
}

static size_t note_size(size_t namesz, size_t descsz)
{
    return sizeof(Elf64_Nhdr) + ((namesz + 3) & ~(size_t)3) + ((descsz + 3) & ~(size_t)3);
}

static void put_note(struct writer *w, const char *name, uint32_t type, const void *desc, size_t descsz)
{
    Elf64_Nhdr h = {.n_namesz = (Elf64_Word)(strlen(name) + 1), .n_descsz = (Elf64_Word)descsz, .n_type = type};
    uint64_t start = w->off;
    wr(w, &h, sizeof h);
    wr(w, name, h.n_namesz);
    pad_to(w, start + sizeof h + ((h.n_namesz + 3u) & ~3u));
    wr(w, desc, descsz);
    pad_to(w, start + note_size(h.n_namesz, descsz));
}

struct notes {
    struct elf_prstatus prstatus;
    struct elf_prpsinfo psinfo;
    uint64_t auxv[6];
};

static size_t notes_size(void)
{
    return note_size(5, sizeof(struct elf_prstatus)) + note_size(5, sizeof(struct elf_prpsinfo)) +
           note_size(5, sizeof(struct nub_hv_fpu)) + note_size(5, 6 * sizeof(uint64_t)) +
           note_size(4, sizeof(struct nub_error));
}

static void write_notes(struct writer *w, const struct core *c, struct notes *n)
{
    fill_prstatus(c, &n->prstatus);
    memset(&n->psinfo, 0, sizeof n->psinfo);
    n->psinfo.pr_pid = 1;
    n->psinfo.pr_sname = 'R';
    snprintf(n->psinfo.pr_fname, sizeof n->psinfo.pr_fname, "nub-guest");
    snprintf(n->psinfo.pr_psargs, sizeof n->psinfo.pr_psargs, "nub sandbox %llu (%s)",
             (unsigned long long)c->sb->id, nub_backend_name(c->sb->backend));
    uint64_t auxv[6] = {AT_ENTRY, c->sb->entry_gva, AT_PAGESZ, NUB_PAGE_SIZE, AT_NULL, 0};
    put_note(w, "CORE", NT_PRSTATUS, &n->prstatus, sizeof n->prstatus);
    put_note(w, "CORE", NT_PRPSINFO, &n->psinfo, sizeof n->psinfo);
    put_note(w, "CORE", NT_FPREGSET, &c->fpu, sizeof c->fpu);
    put_note(w, "CORE", NT_AUXV, auxv, sizeof auxv);
    put_note(w, "NUB", CORE_NOTE_NUB_ERROR, &c->sb->last, sizeof c->sb->last);
}

static void write_headers(struct writer *w, const struct core *c, uint64_t data_off)
{
    Elf64_Ehdr eh = {
        .e_ident = {ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE},
        .e_type = ET_CORE, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
        .e_phoff = sizeof(Elf64_Ehdr), .e_ehsize = sizeof(Elf64_Ehdr),
        .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = (Elf64_Half)(c->nsegs + 1),
    };
    wr(w, &eh, sizeof eh);
    uint64_t notes_off = sizeof eh + (c->nsegs + 1) * sizeof(Elf64_Phdr);
    Elf64_Phdr note = {.p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = notes_size(), .p_align = 4};
    wr(w, &note, sizeof note);
    uint64_t off = data_off;
    for (size_t i = 0; i < c->nsegs; i++) {
        Elf64_Phdr ph = {.p_type = PT_LOAD, .p_flags = c->segs[i].flags, .p_offset = off,
                         .p_vaddr = c->segs[i].va, .p_filesz = c->segs[i].len,
                         .p_memsz = c->segs[i].len, .p_align = NUB_PAGE_SIZE};
        wr(w, &ph, sizeof ph);
        off += c->segs[i].len;
    }
}

static nub_status write_core(struct core *c, int fd, char *why, size_t why_len)
{
    struct writer w = {fd, 0, 0, false};
    struct notes n;
    uint64_t notes_off = sizeof(Elf64_Ehdr) + (c->nsegs + 1) * sizeof(Elf64_Phdr);
    uint64_t data_off = (notes_off + notes_size() + NUB_PAGE_SIZE - 1) & ~(NUB_PAGE_SIZE - 1);
    write_headers(&w, c, data_off);
    write_notes(&w, c, &n);
    pad_to(&w, data_off);
    for (size_t i = 0; i < c->nsegs; i++)
        wr_sparse(&w, c->segs[i].host, c->segs[i].len);
    finish_sparse(&w);
    if (w.err != 0) {
        snprintf(why, why_len, "write failed: %s", strerror(w.err));
        return NUB_E_IO;
    }
    return NUB_OK;
}

/* Gather registers and segments of sb, write them to fd. `why` explains a failure. */
static nub_status dump_to_fd(nub_sandbox *sb, int fd, char *why, size_t why_len)
{
    struct core c = {.sb = sb};
    nub_status rc = NUB_OK;
    c.max_bytes = 4 * (sb->lay.snapshot_size + sb->lay.scratch_size);
    c.segs = calloc(CORE_MAX_SEGMENTS, sizeof *c.segs);
    if (c.segs == NULL) {
        snprintf(why, why_len, "out of memory");
        return NUB_E_NOMEM;
    }
    if (sb->ops->get_regs(sb->hv, &c.regs) != NUB_OK) {
        snprintf(why, why_len, "cannot read the vCPU registers");
        rc = NUB_E_BACKEND;
        goto out;
    }
    use_exception_frame(&c);
    c.have_fpu = sb->ops->get_fpu != NULL && sb->ops->get_fpu(sb->hv, &c.fpu) == NUB_OK;
    why[0] = '\0';
    collect_segments(&c, why, why_len);
    rc = write_core(&c, fd, why, why_len);
out:
    free(c.segs);
    return rc;
}

/* ---- entry points ---------------------------------------------------------- */

nub_status nub_sandbox_core_dump(nub_sandbox *sb, const char *path)
{
    if (sb == NULL || path == NULL)
        return sb ? nub_state_reject(sb, NUB_E_INVALID, "core dump path is NULL") : NUB_E_INVALID;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_ANY);
    if (rc != NUB_OK)
        return rc;
    char why[256] = "";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, sizeof why, "cannot create it: %s", strerror(errno));
        rc = NUB_E_IO;
    } else {
        rc = dump_to_fd(sb, fd, why, sizeof why);
        if (close(fd) != 0 && rc == NUB_OK) {
            snprintf(why, sizeof why, "close failed: %s", strerror(errno));
            rc = NUB_E_IO;
        }
    }
    nub_metrics_count_core_dump(sb, rc == NUB_OK);
    if (rc != NUB_OK)
        nub_err_set(&sb->last, rc, "core dump to %s failed: %s", path, why);
    nub_state_release(sb);
    return rc;
}

/* Create a fresh nub-core.PID.ID.N in the dump directory (O_EXCL: never another's file). */
static int create_unique(nub_sandbox *sb, char *path, size_t cap, char *why, size_t why_len)
{
    if (sb->obs.core_dir[0] == '\0') {
        snprintf(why, why_len, "the core dump directory name is too long");
        return -1;
    }
    for (int tries = 0; tries < 64; tries++) {
        uint64_t n = ++sb->obs.core_seq;
        if ((size_t)snprintf(path, cap, "%s/nub-core.%ld.%llu.%llu", sb->obs.core_dir, (long)getpid(),
                             (unsigned long long)sb->id, (unsigned long long)n) >= cap) {
            snprintf(why, why_len, "the core file path is too long");
            return -1;
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST) {
            if (fd < 0)
                snprintf(why, why_len, "cannot create the file: %s", strerror(errno));
            return fd;
        }
    }
    snprintf(why, why_len, "64 core file names for this sandbox already exist there");
    return -1;
}

static int dumps_on(nub_status rc)
{
    return rc == NUB_E_GUEST_FAULT || rc == NUB_E_GUEST_ABORT || rc == NUB_E_TIMEOUT;
}

/* Append " [core dumped to PATH]" to the error message, as much as fits. */
static void note_path(struct nub_error *e, const char *path)
{
    size_t used = strnlen(e->message, sizeof e->message);
    snprintf(e->message + used, sizeof e->message - used, " [core dumped to %s]", path);
}

void nub_core_dump_on_failure(nub_sandbox *sb, nub_status rc)
{
    if (!sb->obs.core_on || !dumps_on(rc))
        return;
    char path[NUB_CORE_DIR_MAX + 64], why[256] = "";
    int fd = create_unique(sb, path, sizeof path, why, sizeof why);
    nub_status st = fd < 0 ? NUB_E_IO : dump_to_fd(sb, fd, why, sizeof why);
    if (fd >= 0 && close(fd) != 0 && st == NUB_OK) {
        snprintf(why, sizeof why, "close failed: %s", strerror(errno));
        st = NUB_E_IO;
    }
    nub_metrics_count_core_dump(sb, st == NUB_OK);
    if (st == NUB_OK) {
        note_path(&sb->last, path);
        nub_log_host(sb, NUB_LOG_LEVEL_INFO, "sandbox %llu: %s: core dumped to %s%s%s",
                     (unsigned long long)sb->id, nub_strerror(rc), path, why[0] ? "; " : "", why);
        return;
    }
    if (fd >= 0)
        unlink(path);
    nub_log_host(sb, NUB_LOG_LEVEL_WARN, "sandbox %llu: core dump to %s failed: %s", (unsigned long long)sb->id,
                 fd >= 0 ? path : sb->obs.core_dir, why);
}
