/* The kvm backend: one Linux KVM VM and vCPU per sandbox, entered directly in 64-bit long mode, exits normalised for hv.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "checked.h"
#include "hv.h"
#include "kvm_probe.h"
#include "nub/abi.h"
#include "x86_64.h"

#define KVM_PATH "/dev/kvm"
#define KVM_API_VERSION_REQUIRED 12

/* The kick signal is SIGRTMIN + this; the environment variable
 * NUB_KVM_SIGNAL=N (0 <= N <= SIGRTMAX - SIGRTMIN) picks another. */
#ifndef NUB_KVM_SIGNAL_OFFSET
#define NUB_KVM_SIGNAL_OFFSET 4
#endif

#define KICK_RETRY_NS 50000L       /* interrupt(): pause between two kicks */
#define CPUID_FIRST_NENT 64u       /* KVM_GET_SUPPORTED_CPUID: first buffer size */
#define CPUID_MAX_NENT 4096u       /* ... grown on E2BIG up to this */
#define TSS_ADDR 0xfffbd000ull     /* 3 pages below 4 GiB for VMX's real-mode TSS, outside nub's GPAs */


struct nub_hv {
    int kvm_fd, vm_fd, vcpu_fd;
    struct kvm_run *run;          /* the vCPU's shared kvm_run page(s) */
    size_t run_size;
    int kick_sig;                 /* real-time signal that kicks the vCPU thread out of KVM_RUN */
    struct kvm_sregs sregs0;      /* long-mode special registers from create */
    bool sync_regs;               /* KVM_CAP_SYNC_REGS: registers travel in run->s.regs */
    struct kvm_regs *regs;        /* &run->s.regs.regs with sync_regs, else &own_regs */
    struct kvm_regs own_regs;     /* register copy without sync_regs */
    bool regs_dirty;              /* without sync_regs: own_regs must be loaded before KVM_RUN */
    bool regs_cached;             /* without sync_regs: own_regs holds the vCPU's registers */
    bool have_unblocked;          /* the kick signal was unblocked on `unblocked` */
    pthread_t unblocked;
    atomic_bool cancel;           /* interrupt() was called and not cleared */
    atomic_bool active;           /* a thread is inside run() */
    _Atomic(pthread_t) thread;    /* that thread (valid while active) */
    atomic_int kickers;           /* interrupt() calls looking at `thread` right now */
    bool guest_ran;               /* a KVM_RUN has entered the guest (its state is no longer only ours) */
    uint64_t hw_bp_dr6;           /* DR6 B0-B3 of the debug registers set_debug enabled */
};

/* ---- /dev/kvm ---------------------------------------------------------- */

/* Open /dev/kvm and check the API version and user memory; NUB_E_NO_HYPERVISOR with `why` otherwise. */
static nub_status open_kvm(int *fd_out, char *why, size_t why_len)
{
    int fd = open(KVM_PATH, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        nub_hv_fmt(why, why_len, "cannot open %s: %s", KVM_PATH, strerror(errno));
        return NUB_E_NO_HYPERVISOR;
    }
    int version = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION_REQUIRED) {
        nub_hv_fmt(why, why_len, "%s: KVM_GET_API_VERSION is %d, nub needs %d", KVM_PATH, version,
                   KVM_API_VERSION_REQUIRED);
        goto fail;
    }
    if (ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0) {
        nub_hv_fmt(why, why_len, "%s: KVM_CAP_USER_MEMORY is not supported", KVM_PATH);
        goto fail;
    }
    *fd_out = fd;
    return NUB_OK;
fail:
    close(fd);
    return NUB_E_NO_HYPERVISOR;
}

/* Record "IOCTL: strerror(errno)" in err; returns -1. */
static int ioctl_err(char *err, size_t err_len, const char *what)
{
    nub_hv_fmt(err, err_len, "%s: %s", what, strerror(errno));
    return -1;
}

/* ---- creation ---------------------------------------------------------- */

static int map_regions(struct nub_hv *hv, const struct nub_hv_config *cfg, char *err, size_t err_len)
{
    for (size_t i = 0; i < cfg->nregions; i++) {
        const struct nub_hv_region *r = &cfg->regions[i];
        struct kvm_userspace_memory_region m = {
            .slot = (uint32_t)i,
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uint64_t)(uintptr_t)r->host,
        };
        if (ioctl(hv->vm_fd, KVM_SET_USER_MEMORY_REGION, &m) != 0) {
            nub_hv_fmt(err, err_len, "KVM_SET_USER_MEMORY_REGION (slot %zu, gpa 0x%llx, %llu bytes): %s", i,
                       (unsigned long long)r->gpa, (unsigned long long)r->size, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int make_vm(struct nub_hv *hv, const struct nub_hv_config *cfg, char *err, size_t err_len)
{
    if (ioctl(hv->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0) {
        nub_hv_fmt(err, err_len, "KVM_CAP_IMMEDIATE_EXIT is not supported (Linux 4.11 or later is needed)");
        return -1;
    }
    hv->vm_fd = ioctl(hv->kvm_fd, KVM_CREATE_VM, 0);
    if (hv->vm_fd < 0)
        return ioctl_err(err, err_len, "KVM_CREATE_VM");
    /* Only VMX uses it (real mode, which nub never enters); harmless elsewhere. */
    if (ioctl(hv->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0 &&
        ioctl(hv->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_ADDR) != 0)
        return ioctl_err(err, err_len, "KVM_SET_TSS_ADDR");
    return map_regions(hv, cfg, err, err_len);
}

static int make_vcpu(struct nub_hv *hv, char *err, size_t err_len)
{
    hv->vcpu_fd = ioctl(hv->vm_fd, KVM_CREATE_VCPU, 0);
    if (hv->vcpu_fd < 0)
        return ioctl_err(err, err_len, "KVM_CREATE_VCPU");
    int size = ioctl(hv->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size < (int)sizeof(struct kvm_run))
        return ioctl_err(err, err_len, "KVM_GET_VCPU_MMAP_SIZE");
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, hv->vcpu_fd, 0);
    if (p == MAP_FAILED)
        return ioctl_err(err, err_len, "mmap of the vCPU's kvm_run");
    hv->run = p;
    hv->run_size = (size_t)size;
    return 0;
}

/* Give the vCPU every CPUID leaf KVM supports on this host. */
static int set_cpuid(struct nub_hv *hv, char *err, size_t err_len)
{
    for (uint32_t n = CPUID_FIRST_NENT; n <= CPUID_MAX_NENT; n *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof *c + n * sizeof(struct kvm_cpuid_entry2));
        if (c == NULL) {
            nub_hv_fmt(err, err_len, "cannot allocate the CPUID table");
            return -1;
        }
        c->nent = n;
        int rc = ioctl(hv->kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
        if (rc != 0 && errno == E2BIG) {
            free(c);
            continue;
        }
        if (rc != 0)
            ioctl_err(err, err_len, "KVM_GET_SUPPORTED_CPUID");
        else if ((rc = ioctl(hv->vcpu_fd, KVM_SET_CPUID2, c)) != 0)
            ioctl_err(err, err_len, "KVM_SET_CPUID2");
        free(c);
        return rc == 0 ? 0 : -1;
    }
    nub_hv_fmt(err, err_len, "KVM_GET_SUPPORTED_CPUID: more than %u entries", CPUID_MAX_NENT);
    return -1;
}

/* Flat 64-bit code (L set, D clear), DPL 0, present: the GDT's NUB_X86_SEL_CODE. */
static struct kvm_segment code64_segment(void)
{
    struct kvm_segment seg = {
        .base = 0, .limit = 0xffffffff, .selector = NUB_X86_SEL_CODE, .type = NUB_X86_SEG_TYPE_CODE_XRA,
        .present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
    };
    return seg;
}

/* Flat read/write data (D/B set), DPL 0, present: the GDT's NUB_X86_SEL_DATA. */
static struct kvm_segment data_segment(void)
{
    struct kvm_segment seg = {
        .base = 0, .limit = 0xffffffff, .selector = NUB_X86_SEL_DATA, .type = NUB_X86_SEG_TYPE_DATA_RWA,
        .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
    };
    return seg;
}

/* A busy 64-bit TSS at base 0 (byte granular): VMX refuses long mode without one. */
static struct kvm_segment tss_segment(void)
{
    struct kvm_segment seg = {
        .base = 0, .limit = NUB_X86_TSS64_SIZE - 1, .selector = NUB_X86_SEL_TSS,
        .type = NUB_X86_SEG_TYPE_TSS64_BUSY, .present = 1, .dpl = 0, .db = 0, .s = 0, .l = 0, .g = 0,
    };
    return seg;
}

/* No LDT: marked unusable. */
static struct kvm_segment no_ldt_segment(void)
{
    struct kvm_segment seg = {.type = NUB_X86_SEG_TYPE_LDT, .unusable = 1};
    return seg;
}

/* Long mode with paging on: control registers, EFER, flat segments, a busy TSS, no LDT. */
static int set_sregs(struct nub_hv *hv, uint64_t cr3, char *err, size_t err_len)
{
    struct kvm_sregs s;
    if (ioctl(hv->vcpu_fd, KVM_GET_SREGS, &s) != 0)
        return ioctl_err(err, err_len, "KVM_GET_SREGS");
    s.cr0 = NUB_X86_CR0_LONG_MODE;
    s.cr4 = NUB_X86_CR4_LONG_MODE;
    s.efer = NUB_X86_EFER_LONG_MODE;
    s.cr3 = cr3;
    s.cs = code64_segment();
    s.ds = s.es = s.fs = s.gs = s.ss = data_segment();
    s.tr = tss_segment();
    s.ldt = no_ldt_segment();
    s.gdt.base = s.idt.base = 0;
    s.gdt.limit = s.idt.limit = 0;     /* the guest installs its own */
    if (ioctl(hv->vcpu_fd, KVM_SET_SREGS, &s) != 0)
        return ioctl_err(err, err_len, "KVM_SET_SREGS");
    hv->sregs0 = s;
    return 0;
}

/* Registers travel through kvm_run where KVM supports it, else through KVM_GET/SET_REGS. */
static int setup_regs(struct nub_hv *hv, char *err, size_t err_len)
{
    int caps = ioctl(hv->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
    const char *off = getenv("NUB_KVM_NO_SYNC_REGS"); /* testing the fallback */
    hv->sync_regs = caps > 0 && (caps & KVM_SYNC_X86_REGS) && (off == NULL || *off == '\0' || *off == '0');
    hv->regs = hv->sync_regs ? &hv->run->s.regs.regs : &hv->own_regs;
    if (ioctl(hv->vcpu_fd, KVM_GET_REGS, hv->regs) != 0)
        return ioctl_err(err, err_len, "KVM_GET_REGS");
    hv->regs_cached = true;
    if (hv->sync_regs)
        hv->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
    return 0;
}

static void kick_handler(int sig)
{
    (void)sig;
}

/* The kick signal from NUB_KVM_SIGNAL, or the default; -1 when out of range. */
static int kick_signal(void)
{
    const char *v = getenv("NUB_KVM_SIGNAL");
    long off = NUB_KVM_SIGNAL_OFFSET;
    if (v != NULL && *v != '\0') {
        char *end;
        off = strtol(v, &end, 10);
        if (*end != '\0')
            return -1;
    }
    if (off < 0 || off > SIGRTMAX - SIGRTMIN)
        return -1;
    return SIGRTMIN + (int)off;
}

/*
 * Install the no-op handler for the kick signal unless a handler is
 * already there (ours from an earlier sandbox, or the application's: any
 * handler that returns makes KVM_RUN fail with EINTR). Process-wide and
 * idempotent.
 */
static int install_kick(struct nub_hv *hv, char *err, size_t err_len)
{
    hv->kick_sig = kick_signal();
    if (hv->kick_sig < 0) {
        nub_hv_fmt(err, err_len, "NUB_KVM_SIGNAL must be a number from 0 to %d (an offset from SIGRTMIN)",
                   SIGRTMAX - SIGRTMIN);
        return -1;
    }
    struct sigaction old;
    if (sigaction(hv->kick_sig, NULL, &old) != 0)
        return ioctl_err(err, err_len, "sigaction");
    if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART */
    if (sigaction(hv->kick_sig, &sa, NULL) != 0)
        return ioctl_err(err, err_len, "sigaction");
    return 0;
}

static void kvm_destroy(struct nub_hv *hv)
{
    if (hv == NULL)
        return;
    if (hv->run != NULL)
        munmap(hv->run, hv->run_size);
    if (hv->vcpu_fd >= 0)
        close(hv->vcpu_fd);
    if (hv->vm_fd >= 0)
        close(hv->vm_fd);
    if (hv->kvm_fd >= 0)
        close(hv->kvm_fd);
    free(hv);
}

static nub_status kvm_create(const struct nub_hv_config *cfg, struct nub_hv **out, char *err,
                             size_t err_len)
{
    *out = NULL;
    struct nub_hv *hv = calloc(1, sizeof *hv);
    if (hv == NULL) {
        nub_hv_fmt(err, err_len, "cannot allocate the kvm backend state");
        return NUB_E_NOMEM;
    }
    hv->kvm_fd = hv->vm_fd = hv->vcpu_fd = -1;
    atomic_init(&hv->cancel, false);
    atomic_init(&hv->active, false);
    atomic_init(&hv->kickers, 0);
    nub_status rc = open_kvm(&hv->kvm_fd, err, err_len);
    if (rc != NUB_OK)
        goto fail;
    rc = NUB_E_BACKEND;
    if (make_vm(hv, cfg, err, err_len) != 0 || make_vcpu(hv, err, err_len) != 0 ||
        set_cpuid(hv, err, err_len) != 0 || set_sregs(hv, cfg->cr3, err, err_len) != 0 ||
        setup_regs(hv, err, err_len) != 0 || install_kick(hv, err, err_len) != 0)
        goto fail;
    *out = hv;
    return NUB_OK;
fail:
    kvm_destroy(hv);
    return rc;
}

/* ---- registers --------------------------------------------------------- */

static nub_status kvm_set_regs(struct nub_hv *hv, const struct nub_hv_regs *r)
{
    struct kvm_regs *k = hv->regs;
    k->rax = r->rax; k->rbx = r->rbx; k->rcx = r->rcx; k->rdx = r->rdx;
    k->rsi = r->rsi; k->rdi = r->rdi; k->rsp = r->rsp; k->rbp = r->rbp;
    k->r8 = r->r8; k->r9 = r->r9; k->r10 = r->r10; k->r11 = r->r11;
    k->r12 = r->r12; k->r13 = r->r13; k->r14 = r->r14; k->r15 = r->r15;
    k->rip = r->rip; k->rflags = r->rflags;
    if (hv->sync_regs)
        hv->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
    hv->regs_dirty = !hv->sync_regs;
    hv->regs_cached = true;
    return NUB_OK;
}

/* Make *hv->regs the vCPU's current registers (a KVM_GET_REGS only without sync_regs, after a run). */
static int fetch_regs(struct nub_hv *hv)
{
    if (hv->regs_cached)
        return 0;
    if (ioctl(hv->vcpu_fd, KVM_GET_REGS, hv->regs) != 0)
        return -1;
    hv->regs_cached = true;
    return 0;
}

static nub_status kvm_get_regs(struct nub_hv *hv, struct nub_hv_regs *r)
{
    if (fetch_regs(hv) != 0)
        return NUB_E_BACKEND;
    const struct kvm_regs *k = hv->regs;
    r->rax = k->rax; r->rbx = k->rbx; r->rcx = k->rcx; r->rdx = k->rdx;
    r->rsi = k->rsi; r->rdi = k->rdi; r->rsp = k->rsp; r->rbp = k->rbp;
    r->r8 = k->r8; r->r9 = k->r9; r->r10 = k->r10; r->r11 = k->r11;
    r->r12 = k->r12; r->r13 = k->r13; r->r14 = k->r14; r->r15 = k->r15;
    r->rip = k->rip; r->rflags = k->rflags;
    return NUB_OK;
}

static uint16_t seg_attr(const struct kvm_segment *k)
{
    return (uint16_t)(k->type | k->s << 4 | k->dpl << 5 | k->present << 7 | k->avl << 12 |
                      k->l << 13 | k->db << 14 | k->g << 15);
}

static void seg_from_attr(struct kvm_segment *k, const struct nub_hv_seg *s)
{
    k->base = s->base;
    k->limit = s->limit;
    k->selector = s->selector;
    k->type = s->attr & 0xf;
    k->s = (s->attr >> 4) & 1;
    k->dpl = (s->attr >> 5) & 3;
    k->present = (s->attr >> 7) & 1;
    k->avl = (s->attr >> 12) & 1;
    k->l = (s->attr >> 13) & 1;
    k->db = (s->attr >> 14) & 1;
    k->g = (s->attr >> 15) & 1;
    k->unusable = !k->present;
}

/* The snapshot state (hv.h nub_hv_cpu) from KVM_GET_SREGS and KVM_GET_FPU. */
static nub_status kvm_get_cpu(struct nub_hv *hv, struct nub_hv_cpu *cpu)
{
    struct kvm_sregs s;
    struct kvm_fpu f;
    memset(cpu, 0, sizeof *cpu);
    if (kvm_get_regs(hv, &cpu->regs) != NUB_OK || ioctl(hv->vcpu_fd, KVM_GET_SREGS, &s) != 0 ||
        ioctl(hv->vcpu_fd, KVM_GET_FPU, &f) != 0)
        return NUB_E_BACKEND;
    cpu->gdt_base = s.gdt.base;
    cpu->gdt_limit = s.gdt.limit;
    cpu->idt_base = s.idt.base;
    cpu->idt_limit = s.idt.limit;
    cpu->tr = (struct nub_hv_seg){s.tr.base, s.tr.limit, s.tr.selector, seg_attr(&s.tr)};
    cpu->fs_base = s.fs.base;
    cpu->gs_base = s.gs.base;
    cpu->mxcsr = f.mxcsr;
    cpu->fcw = f.fcw;
    return NUB_OK;
}

/* Load it over nub's long-mode setup from create (hv->sregs0). */
static nub_status kvm_set_cpu(struct nub_hv *hv, const struct nub_hv_cpu *cpu)
{
    struct kvm_sregs s = hv->sregs0;
    struct kvm_fpu f;
    memset(&f, 0, sizeof f);
    s.gdt.base = cpu->gdt_base;
    s.gdt.limit = (uint16_t)cpu->gdt_limit;
    s.idt.base = cpu->idt_base;
    s.idt.limit = (uint16_t)cpu->idt_limit;
    seg_from_attr(&s.tr, &cpu->tr);
    s.fs.base = cpu->fs_base;
    s.gs.base = cpu->gs_base;
    f.fcw = cpu->fcw;
    f.mxcsr = cpu->mxcsr;
    if (kvm_set_regs(hv, &cpu->regs) != NUB_OK || ioctl(hv->vcpu_fd, KVM_SET_SREGS, &s) != 0 ||
        ioctl(hv->vcpu_fd, KVM_SET_FPU, &f) != 0)
        return NUB_E_BACKEND;
    return NUB_OK;
}

/* KVM_GET_FPU rearranged into the FXSAVE layout. */
static nub_status kvm_get_fpu(struct nub_hv *hv, struct nub_hv_fpu *fpu)
{
    struct kvm_fpu k;
    if (ioctl(hv->vcpu_fd, KVM_GET_FPU, &k) != 0)
        return NUB_E_BACKEND;
    uint8_t *f = fpu->fxsave;
    memset(f, 0, sizeof fpu->fxsave);
    memcpy(f, &k.fcw, 2);
    memcpy(f + 2, &k.fsw, 2);
    f[4] = k.ftwx;
    memcpy(f + 6, &k.last_opcode, 2);
    memcpy(f + 8, &k.last_ip, 8);
    memcpy(f + 16, &k.last_dp, 8);
    memcpy(f + 24, &k.mxcsr, 4);
    memcpy(f + 32, k.fpr, sizeof k.fpr);
    memcpy(f + 160, k.xmm, sizeof k.xmm);
    return NUB_OK;
}

/* exit->rip from the registers (0 when they cannot be read). */
static void exit_rip(struct nub_hv *hv, struct nub_hv_exit *x)
{
    x->rip = fetch_regs(hv) == 0 ? hv->regs->rip : 0;
}

/* ---- exits ------------------------------------------------------------- */

static nub_status internal(struct nub_hv_exit *x, const char *what, unsigned long long detail)
{
    x->kind = NUB_HV_EXIT_INTERNAL;
    nub_hv_fmt(x->msg, sizeof x->msg, "%s 0x%llx at rip 0x%llx", what, detail, (unsigned long long)x->rip);
    return NUB_OK;
}

/* A guest-caused exit reported as CPU exception `vector` (0..31) with what happened in msg. */
static nub_status guest_fault(struct nub_hv_exit *x, uint64_t vector, const char *what, unsigned long long detail)
{
    x->kind = NUB_HV_EXIT_FAULT;
    x->vector = vector;
    nub_hv_fmt(x->msg, sizeof x->msg, "%s 0x%llx", what, detail);
    return NUB_OK;
}

/* A guest-caused exit that nub's protocol has no place for. */
static nub_status guest_protocol(struct nub_hv_exit *x, const char *what, unsigned long long detail)
{
    x->kind = NUB_HV_EXIT_PROTOCOL;
    nub_hv_fmt(x->msg, sizeof x->msg, "%s 0x%llx at rip 0x%llx", what, detail, (unsigned long long)x->rip);
    return NUB_OK;
}

/* The ports whose OUT needs no RIP (served without an error message). */
static bool hot_port(uint16_t port)
{
    return port == NUB_PORT_LOG || port == NUB_PORT_CALL || port == NUB_PORT_PRINT || port == NUB_PORT_HALT;
}

static nub_status io_exit(struct nub_hv *hv, struct nub_hv_exit *x)
{
    const struct kvm_run *run = hv->run;
    x->port = run->io.port;
    x->size = run->io.size;
    if (hv->sync_regs || !hot_port(x->port) || run->io.direction != KVM_EXIT_IO_OUT || run->io.count != 1)
        exit_rip(hv, x);
    if (run->io.direction == KVM_EXIT_IO_IN) { /* IN and INS (any count): the guest's protocol violation */
        x->kind = NUB_HV_EXIT_IO_IN;
        return NUB_OK;
    }
    if (run->io.count != 1) {
        x->kind = NUB_HV_EXIT_PROTOCOL;
        nub_hv_fmt(x->msg, sizeof x->msg, "string OUT (rep outs, %u x %u bytes) to port %u at rip 0x%llx",
                   run->io.count, run->io.size, x->port, (unsigned long long)x->rip);
        return NUB_OK;
    }
    if (run->io.size == 0 || run->io.size > sizeof x->value ||
        !nub_range_inside(run->io.data_offset, run->io.size, hv->run_size)) {
        x->kind = NUB_HV_EXIT_INTERNAL; /* KVM's own report is inconsistent */
        nub_hv_fmt(x->msg, sizeof x->msg, "KVM_EXIT_IO with size %u at data offset 0x%llx (kvm_run is %zu bytes)",
                   run->io.size, (unsigned long long)run->io.data_offset, hv->run_size);
        return NUB_OK;
    }
    x->kind = NUB_HV_EXIT_IO_OUT;
    uint32_t v = 0;
    memcpy(&v, (const uint8_t *)run + run->io.data_offset, run->io.size);
    x->value = v;
    return NUB_OK;
}

/*
 * KVM_EXIT_INTERNAL_ERROR happens only while KVM runs or emulates guest
 * code, so the guest caused it: an instruction KVM cannot emulate (e.g.
 * sysenter in long mode) is #UD, a fault while delivering a fault or an
 * event (an unusable IDT, GDT or exception stack) is #DF, anything else is
 * an exit nub's protocol has no place for.
 */
static nub_status internal_error_exit(struct nub_hv_exit *x, uint32_t sub)
{
    switch (sub) {
    case KVM_INTERNAL_ERROR_EMULATION:
        return guest_fault(x, 6, "invalid opcode: an instruction kvm cannot execute or emulate "
                                 "(KVM_EXIT_INTERNAL_ERROR, emulation failure): suberror", sub);
    case KVM_INTERNAL_ERROR_SIMUL_EX:
        return guest_fault(x, 8, "double fault: an exception while delivering an exception "
                                 "(KVM_EXIT_INTERNAL_ERROR): suberror", sub);
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
        return guest_fault(x, 8, "double fault: delivering an event touched memory kvm cannot back "
                                 "(KVM_EXIT_INTERNAL_ERROR): suberror", sub);
    default:
        return guest_protocol(x, "the guest made kvm fail (KVM_EXIT_INTERNAL_ERROR) with suberror", sub);
    }
}

/*
 * On SVM, KVM resets the vCPU after a triple fault (paging off, RIP 0xfff0):
 * then the RIP is unknown, and the long-mode special registers from create
 * are loaded again so the vCPU can run after the host sets new registers.
 */
static void after_shutdown(struct nub_hv *hv, struct nub_hv_exit *x)
{
    struct kvm_sregs s;
    if (ioctl(hv->vcpu_fd, KVM_GET_SREGS, &s) != 0 || (s.cr0 & NUB_X86_CR0_PG))
        return;
    x->rip = 0;
    if (ioctl(hv->vcpu_fd, KVM_SET_SREGS, &hv->sregs0) != 0)
        nub_hv_fmt(x->msg, sizeof x->msg, "KVM reset the vCPU; KVM_SET_SREGS: %s", strerror(errno));
    else
        nub_hv_fmt(x->msg, sizeof x->msg, "KVM reset the vCPU (rip unknown); long mode restored");
}

/*
 * KVM_EXIT_DEBUG: #BP is a software breakpoint; #DB a hardware one when
 * DR6 names an enabled debug register, else a step. Only enabled ones
 * count: a CPU may set B0-B3 for a register whose address matches although
 * DR7 does not enable it (one left over from an earlier debugging session).
 */
static uint32_t debug_stop(const struct nub_hv *hv, const struct kvm_debug_exit_arch *d)
{
    if (d->exception == 3)
        return NUB_HV_DBG_SW_BP;
    return (d->dr6 & hv->hw_bp_dr6) ? NUB_HV_DBG_HW_BP : NUB_HV_DBG_STEP;
}

/* Translate the exit KVM_RUN reported in kvm_run. */
static nub_status translate(struct nub_hv *hv, struct nub_hv_exit *x)
{
    const struct kvm_run *run = hv->run;
    if (run->exit_reason == KVM_EXIT_IO)
        return io_exit(hv, x);
    exit_rip(hv, x);
    switch (run->exit_reason) {
    case KVM_EXIT_HLT:
        x->kind = NUB_HV_EXIT_HALT;
        return NUB_OK;
    case KVM_EXIT_MMIO:
        x->kind = NUB_HV_EXIT_MMIO;
        x->addr = run->mmio.phys_addr;
        return NUB_OK;
    case KVM_EXIT_DEBUG:
        x->kind = NUB_HV_EXIT_DEBUG;
        x->debug = debug_stop(hv, &run->debug.arch);
        return NUB_OK;
    case KVM_EXIT_SHUTDOWN:
        x->kind = NUB_HV_EXIT_SHUTDOWN;
        after_shutdown(hv, x);
        return NUB_OK;
    case KVM_EXIT_FAIL_ENTRY:
        /* Before the guest ever ran, the vCPU state is nub's own; after, the guest's (CR3, CR4, EFER, segments). */
        if (!hv->guest_ran)
            return internal(x, "KVM_EXIT_FAIL_ENTRY on the first entry: hardware entry failure reason",
                            run->fail_entry.hardware_entry_failure_reason);
        return guest_fault(x, 13, "general protection fault: the guest left control registers or segments "
                                  "the CPU refuses to enter (KVM_EXIT_FAIL_ENTRY): hardware reason",
                           run->fail_entry.hardware_entry_failure_reason);
    case KVM_EXIT_INTERNAL_ERROR:
        return internal_error_exit(x, run->internal.suberror);
    default:
        return guest_protocol(x, "unexpected kvm exit reason", run->exit_reason);
    }
}

/* ---- run and interrupt ------------------------------------------------- */

static nub_status cancelled(struct nub_hv_exit *x)
{
    x->kind = NUB_HV_EXIT_CANCELLED;
    return NUB_OK;
}

/* Unblock the kick signal on a thread that runs this vCPU for the first time. */
static int unblock_kick(struct nub_hv *hv, pthread_t self, struct nub_hv_exit *x)
{
    if (hv->have_unblocked && pthread_equal(hv->unblocked, self))
        return 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, hv->kick_sig);
    int rc = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    if (rc != 0) {
        nub_hv_fmt(x->msg, sizeof x->msg, "pthread_sigmask: %s", strerror(rc));
        return -1;
    }
    hv->unblocked = self;
    hv->have_unblocked = true;
    return 0;
}

/* KVM_SET_REGS of *hv->regs now: nothing is left pending for KVM_RUN. -1 (errno set) on failure. */
static int load_regs(struct nub_hv *hv)
{
    if (ioctl(hv->vcpu_fd, KVM_SET_REGS, hv->regs) != 0)
        return -1;
    hv->regs_dirty = false;
    if (hv->sync_regs)
        hv->run->kvm_dirty_regs &= ~(uint64_t)KVM_SYNC_X86_REGS;
    return 0;
}

/* Load dirty registers (without sync_regs), then publish this thread as the one in run(). */
static int enter_run(struct nub_hv *hv, struct nub_hv_exit *x)
{
    pthread_t self = pthread_self();
    if (unblock_kick(hv, self, x) != 0)
        return -1;
    if (hv->regs_dirty && load_regs(hv) != 0) {
        nub_hv_fmt(x->msg, sizeof x->msg, "KVM_SET_REGS: %s", strerror(errno));
        return -1;
    }
    atomic_store(&hv->thread, self);
    atomic_store(&hv->active, true);
    return 0;
}

/* Leave run(): once no interrupt() still holds our thread id, it may go away. */
static void leave_run(struct nub_hv *hv)
{
    atomic_store(&hv->active, false);
    while (atomic_load(&hv->kickers) != 0)
        sched_yield();
}

/* KVM_RUN until a real exit or a cancellation; returns 0 or the failing errno. */
static int run_vcpu(struct nub_hv *hv)
{
    for (;;) {
        if (ioctl(hv->vcpu_fd, KVM_RUN, 0) == 0)
            return 0;
        if (errno != EINTR || atomic_load(&hv->cancel))
            return errno;
    }
}

static nub_status kvm_run(struct nub_hv *hv, struct nub_hv_exit *x)
{
    memset(x, 0, sizeof *x);
    if (atomic_load(&hv->cancel))
        return cancelled(x);
    if (enter_run(hv, x) != 0) {
        x->kind = NUB_HV_EXIT_INTERNAL;
        return NUB_E_BACKEND;
    }
    int e = run_vcpu(hv);
    leave_run(hv);
    hv->regs_cached = hv->sync_regs;
    if (e == EINTR)
        return cancelled(x);
    if (e != 0) {
        x->kind = NUB_HV_EXIT_INTERNAL;
        nub_hv_fmt(x->msg, sizeof x->msg, "KVM_RUN: %s", strerror(e));
        return NUB_E_BACKEND;
    }
    nub_status rc = translate(hv, x);
    hv->guest_ran = hv->guest_ran || hv->run->exit_reason != KVM_EXIT_FAIL_ENTRY;
    return rc;
}

/*
 * Set the cancel flag and immediate_exit (which stops a KVM_RUN that has
 * not entered the guest yet), then kick the thread in run() with the
 * signal until it has left run(). From the vCPU's own thread (a signal
 * handler) no kick is needed: the signal that runs the handler already
 * interrupted KVM_RUN.
 */
static void kvm_interrupt(struct nub_hv *hv)
{
    const struct timespec pause = {0, KICK_RETRY_NS};
    atomic_store(&hv->cancel, true);
    __atomic_store_n(&hv->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        atomic_fetch_add(&hv->kickers, 1);
        bool in_run = atomic_load(&hv->active);
        pthread_t t = atomic_load(&hv->thread);
        bool self = in_run && pthread_equal(t, pthread_self());
        if (in_run && !self)
            pthread_kill(t, hv->kick_sig);
        atomic_fetch_sub(&hv->kickers, 1);
        if (!in_run || self)
            return;
        nanosleep(&pause, NULL);
    }
}

static void kvm_clear_interrupt(struct nub_hv *hv)
{
    atomic_store(&hv->cancel, false);
    __atomic_store_n(&hv->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

/*
 * KVM_SET_GUEST_DEBUG: int3 exits (the stub writes them), DR0-3 execution
 * breakpoints, TF stepping. KVM takes the address to step from the vCPU's
 * RIP at this ioctl (singlestep_rip) and sets TF only while RIP is there, so
 * registers set since the last run (a new call's entry, a debugger's write)
 * are loaded first: left to KVM_RUN, they would move RIP off that address
 * and the step would not stop.
 */
static nub_status kvm_set_debug(struct nub_hv *hv, const struct nub_hv_debug *d, char *err,
                                size_t err_len)
{
    struct kvm_guest_debug g;
    memset(&g, 0, sizeof g);
    bool pending = hv->regs_dirty || (hv->sync_regs && (hv->run->kvm_dirty_regs & KVM_SYNC_X86_REGS));
    if (pending && load_regs(hv) != 0) {
        nub_hv_fmt(err, err_len, "KVM_SET_REGS before KVM_SET_GUEST_DEBUG: %s", strerror(errno));
        return NUB_E_BACKEND;
    }
    if (d != NULL && d->enabled) {
        if (d->nhw > NUB_HV_MAX_HW_BP) {
            nub_hv_fmt(err, err_len, "at most %d hardware breakpoints", NUB_HV_MAX_HW_BP);
            return NUB_E_INVALID;
        }
        g.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP;
        if (d->single_step)
            g.control |= KVM_GUESTDBG_SINGLESTEP;
        if (d->nhw != 0)
            g.control |= KVM_GUESTDBG_USE_HW_BP;
        for (size_t i = 0; i < d->nhw; i++) {
            g.arch.debugreg[i] = d->hw[i];
            g.arch.debugreg[7] |= 1ull << (2 * i); /* L<i>; R/W and LEN 00: instruction execution */
        }
    }
    if (ioctl(hv->vcpu_fd, KVM_SET_GUEST_DEBUG, &g) != 0) {
        nub_hv_fmt(err, err_len, "KVM_SET_GUEST_DEBUG: %s", strerror(errno));
        return NUB_E_BACKEND;
    }
    hv->hw_bp_dr6 = (g.control & KVM_GUESTDBG_USE_HW_BP) ? (1u << (d->nhw)) - 1u : 0;
    return NUB_OK;
}

static nub_status kvm_get_idt(struct nub_hv *hv, uint64_t *base, uint16_t *limit)
{
    struct kvm_sregs s;
    if (ioctl(hv->vcpu_fd, KVM_GET_SREGS, &s) != 0)
        return NUB_E_BACKEND;
    *base = s.idt.base;
    *limit = s.idt.limit;
    return NUB_OK;
}

static const struct nub_hv_ops kvm_ops = {
    .name = "kvm",
    .available = nub_kvm_probe_available, /* the probe (kvm_probe.c), not just open() */
    .create = kvm_create,
    .destroy = kvm_destroy,
    .set_regs = kvm_set_regs,
    .get_regs = kvm_get_regs,
    .get_cpu = kvm_get_cpu,
    .set_cpu = kvm_set_cpu,
    .get_fpu = kvm_get_fpu,
    .run = kvm_run,
    .interrupt = kvm_interrupt,
    .clear_interrupt = kvm_clear_interrupt,
    .set_debug = kvm_set_debug,
    .sw_bp_in_memory = 1,
    .get_idt = kvm_get_idt,
};

const struct nub_hv_ops *nub_hv_kvm_ops(void)
{
    return &kvm_ops;
}
