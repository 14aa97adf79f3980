/* The kvm probe: a tiny VM with nub's own long-mode setup proves this machine's KVM runs nub guests; cached once per process. */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hv.h"
#include "kvm_probe.h"
#include "../testing.h"
#include "nub/abi.h"
#include "nub/vmem.h"
#include "x86_64.h"

#define PROBE_DEV "/dev/kvm"
#define PROBE_PAGES 8u                                /* code, data, then page tables */
#define PROBE_CODE_GPA NUB_BASE_GPA
#define PROBE_DATA_GPA (NUB_BASE_GPA + NUB_PAGE_SIZE)
#define PROBE_TABLES_GPA (NUB_BASE_GPA + 2 * NUB_PAGE_SIZE)
#define PROBE_CODE_GVA NUB_KERNEL_BASE                /* the high half, where every nub guest runs */
#define PROBE_DATA_GVA (NUB_KERNEL_BASE + NUB_PAGE_SIZE)
#define PROBE_MAGIC 0x0123456789abcdefull
#define PROBE_FILL 0xa5u                              /* data page before the run: the store must replace it */

/*
 * The probe's code, run at CPL0 in 64-bit mode with RDI = PROBE_DATA_GVA:
 *   0x00 movabs $PROBE_MAGIC, %rax
 *   0x0a movq   %rax, %xmm1        SSE2 at CPL0 (the SDK's boot code does the like)
 *   0x0f pxor   %xmm0, %xmm0
 *   0x13 paddq  %xmm1, %xmm0
 *   0x17 movdqu %xmm0, (%rdi)      16-byte store through the high-half mapping
 *   0x1b mov    (%rdi), %rbx       load back through it
 *   0x1e mov    $NUB_PORT_HALT, %dx
 *   0x22 out    %al, %dx
 *   0x23 hlt                       (never reached: the OUT exit ends the probe)
 */
static const uint8_t probe_code[] = {
    0x48, 0xb8, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,
    0x66, 0x48, 0x0f, 0x6e, 0xc8,
    0x66, 0x0f, 0xef, 0xc0,
    0x66, 0x0f, 0xd4, 0xc1,
    0xf3, 0x0f, 0x7f, 0x07,
    0x48, 0x8b, 0x1f,
    0x66, 0xba, NUB_PORT_HALT & 0xff, NUB_PORT_HALT >> 8,
    0xee,
    0xf4,
};
#define PROBE_OUT_AT 0x22u  /* the OUT: kvm reports its exit there (emu-style backends after it) */
#define PROBE_OUT_END 0x23u /* RIP after the OUT */

/* What each instruction of probe_code is, by its offset, for the reason text. */
static const struct probe_step {
    uint64_t off;
    const char *what;
} probe_steps[] = {
    {0x00, "the first 64-bit instruction at CPL0 (movabs)"},
    {0x0a, "an SSE2 instruction at CPL0 (movq %rax,%xmm1)"},
    {0x0f, "an SSE2 instruction at CPL0 (pxor)"},
    {0x13, "an SSE2 instruction at CPL0 (paddq)"},
    {0x17, "an SSE2 store through the high-half mapping (movdqu)"},
    {0x1b, "a load through the high-half mapping"},
    {0x1e, "the OUT to the halt port"},
};

/* The probe VM's memory: one region of PROBE_PAGES pages at NUB_BASE_GPA. */
struct probe_vm {
    uint8_t *mem;
    uint64_t cr3;
};

/* ---- facts about the machine ------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static bool module_loaded(const char *name)
{
    char path[64];
    snprintf(path, sizeof path, "/sys/module/%s", name);
    return access(path, F_OK) == 0;
}

/* The KVM modules in /sys/module, space-separated, or "none". */
static void find_modules(char *out, size_t cap)
{
    static const char *const names[] = {"kvm_amd", "kvm_intel", "kvm_pvm"};
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (module_loaded(names[i]))
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", n ? " " : "", names[i]);
    if (n == 0)
        snprintf(out, cap, "%s", module_loaded("kvm") ? "kvm" : "none");
}

static void find_cpu(struct nub_backend_info *info)
{
    unsigned a, b, c, d;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(info->cpu_vendor, &b, 4);
        memcpy(info->cpu_vendor + 4, &d, 4);
        memcpy(info->cpu_vendor + 8, &c, 4);
        info->cpu_vendor[12] = '\0';
    }
    if (__get_cpuid(1, &a, &b, &c, &d))
        info->cpu_vmx = (c >> 5) & 1;
    if (__get_cpuid(0x80000001, &a, &b, &c, &d))
        info->cpu_svm = (c >> 2) & 1;
}

/* KVM_GET_API_VERSION, or -1 with the reason in info->reason when /dev/kvm does not open. */
static int api_version(struct nub_backend_info *info)
{
    int fd = open(PROBE_DEV, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        nub_hv_fmt(info->reason, sizeof info->reason, "kvm at %s is not usable: cannot open %s: %s",
                   PROBE_DEV, PROBE_DEV, strerror(errno));
        return -1;
    }
    int v = ioctl(fd, KVM_GET_API_VERSION, 0);
    close(fd);
    return v;
}

/* The likely cause of a failed probe, from the modules and CPU flags ("" when nothing stands out). */
static const char *likely_cause(const struct nub_backend_info *info)
{
    if (strstr(info->kvm_modules, "kvm_pvm") != NULL)
        return "; this KVM emulates supervisor-mode code (kvm_pvm is loaded), which nub does not support";
    if (!info->cpu_vmx && !info->cpu_svm)
        return "; the CPU shows neither VMX nor SVM, so this KVM is nested or paravirtual";
    return "";
}

/* ---- the probe VM ------------------------------------------------------ */

static nub_status build_probe_vm(struct probe_vm *vm, char *err, size_t err_len)
{
    const uint64_t size = (uint64_t)PROBE_PAGES * NUB_PAGE_SIZE;
    vm->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (vm->mem == MAP_FAILED) {
        vm->mem = NULL;
        nub_hv_fmt(err, err_len, "cannot map the probe VM's memory: %s", strerror(errno));
        return NUB_E_NOMEM;
    }
    memcpy(vm->mem, probe_code, sizeof probe_code);
    memset(vm->mem + NUB_PAGE_SIZE, PROBE_FILL, NUB_PAGE_SIZE);
    struct nub_vmem_buf buf;
    uint64_t root = 0;
    int rc = nub_vmem_buf_init(&buf, vm->mem + 2 * NUB_PAGE_SIZE, PROBE_TABLES_GPA,
                               size - 2 * NUB_PAGE_SIZE, &root);
    struct nub_vmem_ops ops = nub_vmem_buf_ops(&buf, root);
    if (rc == NUB_VMEM_OK)
        rc = nub_vmem_map(&ops, PROBE_CODE_GVA, PROBE_CODE_GPA, NUB_PAGE_SIZE, NUB_VMEM_R | NUB_VMEM_X);
    if (rc == NUB_VMEM_OK)
        rc = nub_vmem_map(&ops, PROBE_DATA_GVA, PROBE_DATA_GPA, NUB_PAGE_SIZE, NUB_VMEM_R | NUB_VMEM_W);
    if (rc != NUB_VMEM_OK) {
        nub_hv_fmt(err, err_len, "building the probe's page tables: %s", nub_vmem_err_name(rc));
        munmap(vm->mem, size);
        vm->mem = NULL;
        return NUB_E_BACKEND;
    }
    vm->cr3 = root;
    return NUB_OK;
}

static void free_probe_vm(struct probe_vm *vm)
{
    if (vm->mem != NULL)
        munmap(vm->mem, (size_t)PROBE_PAGES * NUB_PAGE_SIZE);
    vm->mem = NULL;
}

/* Create the kvm VM over the probe's memory with the backend's own create(). */
static nub_status create_probe_hv(const struct probe_vm *vm, struct nub_hv **hv, char *err, size_t err_len)
{
    struct nub_hv_region region = {NUB_BASE_GPA, (uint64_t)PROBE_PAGES * NUB_PAGE_SIZE, vm->mem};
    struct nub_hv_config cfg = {&region, 1, vm->cr3};
    return nub_hv_kvm_ops()->create(&cfg, hv, err, err_len);
}

static const char *step_at(uint64_t rip)
{
    const char *what = "code outside the probe";
    if (rip < PROBE_CODE_GVA || rip - PROBE_CODE_GVA > PROBE_OUT_END)
        return what;
    for (size_t i = 0; i < sizeof probe_steps / sizeof probe_steps[0]; i++)
        if (rip - PROBE_CODE_GVA >= probe_steps[i].off)
            what = probe_steps[i].what;
    return what;
}

/* "ended in ..." text for an exit that is not the expected OUT. */
static void describe_exit(const struct nub_hv_exit *x, char *out, size_t cap)
{
    if (x->msg[0] != '\0' && x->kind != NUB_HV_EXIT_IO_OUT) { /* the backend's own account, e.g. of KVM_EXIT_INTERNAL_ERROR */
        nub_hv_fmt(out, cap, "%s", x->msg);
        return;
    }
    switch (x->kind) {
    case NUB_HV_EXIT_INTERNAL: nub_hv_fmt(out, cap, "%s", x->msg); break;
    case NUB_HV_EXIT_FAULT:
        nub_hv_fmt(out, cap, "CPU exception %llu (error code 0x%llx, address 0x%llx)",
                   (unsigned long long)x->vector, (unsigned long long)x->error_code,
                   (unsigned long long)x->addr);
        break;
    case NUB_HV_EXIT_SHUTDOWN: nub_hv_fmt(out, cap, "a triple fault (shutdown)"); break;
    case NUB_HV_EXIT_MMIO: nub_hv_fmt(out, cap, "an MMIO exit at 0x%llx", (unsigned long long)x->addr); break;
    case NUB_HV_EXIT_HALT: nub_hv_fmt(out, cap, "HLT"); break;
    case NUB_HV_EXIT_IO_OUT: nub_hv_fmt(out, cap, "an OUT to port %u", x->port); break;
    default: nub_hv_fmt(out, cap, "exit kind %d", (int)x->kind); break;
    }
}

/* Check what the probe left: the 16 bytes stored through the high half, RIP at the OUT, RBX. */
static int check_values(struct nub_hv *hv, const struct probe_vm *vm, char *why, size_t cap)
{
    struct nub_hv_regs r;
    uint64_t lo, hi;
    memcpy(&lo, vm->mem + NUB_PAGE_SIZE, 8);
    memcpy(&hi, vm->mem + NUB_PAGE_SIZE + 8, 8);
    if (lo != PROBE_MAGIC || hi != 0) {
        nub_hv_fmt(why, cap, "the SSE2 store through the high half left 0x%016llx%016llx, not 0x%016llx%016llx",
                   (unsigned long long)hi, (unsigned long long)lo, 0ull, (unsigned long long)PROBE_MAGIC);
        return -1;
    }
    if (nub_hv_kvm_ops()->get_regs(hv, &r) != NUB_OK) {
        nub_hv_fmt(why, cap, "KVM_GET_REGS failed after the probe ran");
        return -1;
    }
    if (r.rip != PROBE_CODE_GVA + PROBE_OUT_AT && r.rip != PROBE_CODE_GVA + PROBE_OUT_END) {
        nub_hv_fmt(why, cap, "the OUT to the halt port came from rip 0x%llx, not the probe's OUT at 0x%llx",
                   (unsigned long long)r.rip, (unsigned long long)(PROBE_CODE_GVA + PROBE_OUT_AT));
        return -1;
    }
    if (r.rbx != PROBE_MAGIC) {
        nub_hv_fmt(why, cap, "the load through the high half gave 0x%llx, not 0x%llx",
                   (unsigned long long)r.rbx, (unsigned long long)PROBE_MAGIC);
        return -1;
    }
    return 0;
}

/* Run the probe code once; 0 when it ended in the OUT with the right values, else -1 with why. */
static int run_probe_code(struct nub_hv *hv, const struct probe_vm *vm, char *why, size_t cap)
{
    const struct nub_hv_ops *ops = nub_hv_kvm_ops();
    struct nub_hv_regs r = {0};
    struct nub_hv_exit x;
    char ended[200];
    r.rip = PROBE_CODE_GVA;
    r.rdi = PROBE_DATA_GVA;
    r.rflags = NUB_X86_RFLAGS_FIXED;
    if (ops->set_regs(hv, &r) != NUB_OK) {
        nub_hv_fmt(why, cap, "KVM_SET_REGS failed on the probe VM");
        return -1;
    }
    memset(&x, 0, sizeof x);
    nub_status rc = ops->run(hv, &x);
    /* x.rip is not checked here: without sync registers it is 0 for the halt port. */
    if (rc == NUB_OK && x.kind == NUB_HV_EXIT_IO_OUT && x.port == NUB_PORT_HALT && x.size == 1)
        return check_values(hv, vm, why, cap);
    describe_exit(&x, ended, sizeof ended);
    nub_hv_fmt(why, cap, "%s ended in %s", rc == NUB_OK ? step_at(x.rip) : "KVM_RUN", ended);
    return -1;
}

/* Create the probe VM, run it, tear it down; fills usable, probe_ran, probe_passed and the reason. */
static void probe_vm(struct nub_backend_info *info)
{
    struct probe_vm vm = {0};
    struct nub_hv *hv = NULL;
    char why[400] = "";
    nub_status rc = build_probe_vm(&vm, why, sizeof why);
    if (rc == NUB_OK)
        rc = create_probe_hv(&vm, &hv, why, sizeof why);
    if (rc != NUB_OK) {
        nub_hv_fmt(info->reason, sizeof info->reason, "kvm at %s cannot create nub's probe VM: %s%s",
                   PROBE_DEV, why, likely_cause(info));
        goto out;
    }
    info->probe_ran = 1;
    if (run_probe_code(hv, &vm, why, sizeof why) != 0) {
        nub_hv_fmt(info->reason, sizeof info->reason, "kvm at %s cannot run nub guests: %s%s", PROBE_DEV,
                   why, likely_cause(info));
        goto out;
    }
    info->probe_passed = 1;
    info->usable = 1;
out:
    nub_hv_kvm_ops()->destroy(hv);
    free_probe_vm(&vm);
}

void nub_kvm_probe_run(struct nub_backend_info *out)
{
    uint64_t t0 = now_ns();
    memset(out, 0, sizeof *out);
    out->backend = NUB_BACKEND_KVM;
    find_modules(out->kvm_modules, sizeof out->kvm_modules);
    find_cpu(out);
    out->kvm_api_version = api_version(out);
    if (out->kvm_api_version >= 0)
        probe_vm(out);
    out->probe_ns = now_ns() - t0;
}

nub_status nub_kvm_probe_bare_vm(char *err, size_t err_len)
{
    struct probe_vm vm = {0};
    struct nub_hv *hv = NULL;
    nub_status rc = build_probe_vm(&vm, err, err_len);
    if (rc == NUB_OK)
        rc = create_probe_hv(&vm, &hv, err, err_len);
    if (hv != NULL)
        nub_hv_kvm_ops()->destroy(hv);
    free_probe_vm(&vm);
    return rc;
}

/* ---- the process-wide cache ---------------------------------------------
 * The library's one piece of global mutable state: written once by
 * pthread_once, read-only afterwards. */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static struct nub_backend_info probe_result;

static void probe_once_fn(void)
{
    nub_kvm_probe_run(&probe_result);
}

const struct nub_backend_info *nub_kvm_probe(void)
{
    pthread_once(&probe_once, probe_once_fn);
    return &probe_result;
}

nub_status nub_kvm_probe_available(char *why, size_t why_len)
{
    const struct nub_backend_info *p = nub_kvm_probe();
    nub_hv_fmt(why, why_len, "%s", p->usable ? "" : p->reason);
    return p->usable ? NUB_OK : NUB_E_NO_HYPERVISOR;
}
