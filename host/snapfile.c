/* Snapshot files: save a snapshot with its header (nub/snapfile.h), load by mapping the file and verifying every field. */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checked.h"
#include "internal.h"
#include "nub/hash.h"
#include "nub/snapfile.h"

_Static_assert(sizeof(struct nub_snapfile_header) == 1280, "snapshot file header has no padding");
_Static_assert(NUB_SNAPFILE_MAX_SEGS == NUB_ELF_MAX_SEGMENTS, "segment table size");

/* ---- the CPU ------------------------------------------------------------ */

struct cpu_id {
    char vendor[12];
    uint32_t ecx1, edx1, ebx7, edx_ext;
};

static void host_cpu(struct cpu_id *c)
{
    unsigned a = 0, b = 0, cx = 0, d = 0;
    memset(c, 0, sizeof *c);
    if (__get_cpuid(0, &a, &b, &cx, &d)) {
        memcpy(c->vendor, &b, 4);
        memcpy(c->vendor + 4, &d, 4);
        memcpy(c->vendor + 8, &cx, 4);
    }
    if (__get_cpuid(1, &a, &b, &cx, &d))
        c->ecx1 = cx, c->edx1 = d;
    if (__get_cpuid_count(7, 0, &a, &b, &cx, &d))
        c->ebx7 = b;
    if (__get_cpuid(0x80000001u, &a, &b, &cx, &d))
        c->edx_ext = d;
}

/* ---- header <-> snapshot ------------------------------------------------- */

static void cpu_to_file(const struct nub_hv_cpu *c, struct nub_snapfile_cpu *f)
{
    const uint64_t g[16] = {c->regs.rax, c->regs.rbx, c->regs.rcx, c->regs.rdx, c->regs.rsi, c->regs.rdi,
                            c->regs.rsp, c->regs.rbp, c->regs.r8,  c->regs.r9,  c->regs.r10, c->regs.r11,
                            c->regs.r12, c->regs.r13, c->regs.r14, c->regs.r15};
    memcpy(f->gpr, g, sizeof g);
    f->rip = c->regs.rip;
    f->rflags = c->regs.rflags;
    f->gdt_base = c->gdt_base;
    f->idt_base = c->idt_base;
    f->gdt_limit = c->gdt_limit;
    f->idt_limit = c->idt_limit;
    f->tr_base = c->tr.base;
    f->tr_limit = c->tr.limit;
    f->tr_selector = c->tr.selector;
    f->tr_attr = c->tr.attr;
    f->fs_base = c->fs_base;
    f->gs_base = c->gs_base;
    f->mxcsr = c->mxcsr;
    f->fcw = c->fcw;
}

static void cpu_from_file(const struct nub_snapfile_cpu *f, struct nub_hv_cpu *c)
{
    uint64_t *g[16] = {&c->regs.rax, &c->regs.rbx, &c->regs.rcx, &c->regs.rdx, &c->regs.rsi, &c->regs.rdi,
                       &c->regs.rsp, &c->regs.rbp, &c->regs.r8,  &c->regs.r9,  &c->regs.r10, &c->regs.r11,
                       &c->regs.r12, &c->regs.r13, &c->regs.r14, &c->regs.r15};
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 16; i++)
        *g[i] = f->gpr[i];
    c->regs.rip = f->rip;
    c->regs.rflags = f->rflags;
    c->gdt_base = f->gdt_base;
    c->idt_base = f->idt_base;
    c->gdt_limit = f->gdt_limit;
    c->idt_limit = f->idt_limit;
    c->tr = (struct nub_hv_seg){f->tr_base, f->tr_limit, f->tr_selector, f->tr_attr};
    c->fs_base = f->fs_base;
    c->gs_base = f->gs_base;
    c->mxcsr = f->mxcsr;
    c->fcw = f->fcw;
}

static void header_check(const struct nub_snapfile_header *h, uint8_t out[32])
{
    nub_blake3(out, h, offsetof(struct nub_snapfile_header, header_check));
}

static void fill_cpu(struct nub_snapfile_header *h, bool evolved)
{
    struct cpu_id c;
    host_cpu(&c);
    memcpy(h->cpu_vendor, c.vendor, sizeof h->cpu_vendor);
    /* An evolved guest may have probed the CPU during init: it depends on all of it. */
    h->cpuid_1_ecx = evolved ? c.ecx1 : 0;
    h->cpuid_1_edx = evolved ? c.edx1 : NUB_SNAPFILE_BASE_1_EDX;
    h->cpuid_7_ebx = evolved ? c.ebx7 : 0;
    h->cpuid_ext_edx = evolved ? c.edx_ext : NUB_SNAPFILE_BASE_EXT_EDX;
}

static void fill_header(nub_snapshot *s, struct nub_snapfile_header *h)
{
    const struct nub_layout *l = &s->lay;
    memset(h, 0, sizeof *h);
    memcpy(h->magic, NUB_SNAPFILE_MAGIC, sizeof NUB_SNAPFILE_MAGIC);
    h->format_version = NUB_SNAPFILE_VERSION;
    h->header_size = NUB_SNAPFILE_HEADER_SIZE;
    h->abi_version = NUB_ABI_VERSION;
    h->flags = s->evolved ? NUB_SNAPFILE_F_EVOLVED : 0;
    fill_cpu(h, s->evolved);
    h->nregions = 2;
    h->mem_offset = NUB_SNAPFILE_MEM_OFFSET;
    h->mem_size = nub_snap_mem_size(s);
    h->regions[0] = (struct nub_snapfile_region){NUB_BASE_GPA, l->snapshot_size, NUB_SNAP_REGION_FLAGS, 0};
    h->regions[1] = (struct nub_snapfile_region){nub_scratch_gpa(l, 0), l->scratch_size, NUB_SCRATCH_REGION_FLAGS, 0};
    h->heap_size = s->cfg.heap_size;
    h->stack_size = s->cfg.stack_size;
    h->input_size = s->cfg.input_size;
    h->output_size = s->cfg.output_size;
    h->scratch_size = l->scratch_size;
    h->max_image_size = s->cfg.max_image_size;
    h->backend = (uint32_t)s->cfg.backend;
    h->max_guest_log_level = s->cfg.max_guest_log_level;
    h->call_timeout_ms = s->cfg.call_timeout_ms;
    h->max_log_level = s->max_log_level;
    h->image_size = l->image_size;
    h->init_size = l->init_size;
    h->cr3 = s->cr3;
    h->entry_gva = s->entry_gva;
    h->dispatch_gva = s->evolved ? s->dispatch_gva : 0;
    h->counter = s->evolved ? s->counter : 0;
    h->nsegs = (uint32_t)s->nsegs;
    for (size_t i = 0; i < s->nsegs; i++) {
        const struct nub_elf_segment *g = &s->segs[i];
        h->segs[i] = (struct nub_snapfile_segment){g->vaddr, g->memsz, g->file_off, g->copy_at, g->filesz, g->perms, 0};
    }
    if (s->evolved)
        cpu_to_file(&s->cpu, &h->cpu);
    nub_snapshot_hash(s, h->content_hash);
    header_check(h, h->header_check);
}

/* ---- save ---------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

nub_status nub_snapshot_save(nub_snapshot *snap, const char *path, struct nub_error *err)
{
    nub_err_clear(err);
    if (snap == NULL || path == NULL)
        return nub_err_set(err, NUB_E_INVALID, "%s is NULL", snap ? "path" : "snapshot");
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return nub_err_set(err, NUB_E_INVALID, "path is too long");
    static const uint8_t page[NUB_SNAPFILE_MEM_OFFSET] = {0};
    struct nub_snapfile_header h;
    fill_header(snap, &h);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return nub_err_set(err, NUB_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    int bad = write_all(fd, &h, sizeof h) != 0 ||
              write_all(fd, page, NUB_SNAPFILE_MEM_OFFSET - sizeof h) != 0 ||
              write_all(fd, snap->mem, (size_t)nub_snap_mem_size(snap)) != 0;
    int saved = errno;
    if (close(fd) != 0 && !bad)
        bad = 1, saved = errno;
    if (!bad && rename(tmp, path) != 0)
        bad = 1, saved = errno;
    if (bad) {
        unlink(tmp);
        return nub_err_set(err, NUB_E_IO, "cannot write snapshot file %s: %s", path, strerror(saved));
    }
    return NUB_OK;
}

/* ---- load: every check names itself ------------------------------------- */

/* The message starts with the name of the failed check ("header check: ..."). */
#define CORRUPT(err, path, check, ...) \
    ((void)(path), nub_err_set(err, NUB_E_SNAPSHOT_CORRUPT, check ": " __VA_ARGS__))
#define FOREIGN(err, path, check, ...) \
    ((void)(path), nub_err_set(err, NUB_E_SNAPSHOT_FOREIGN, check ": " __VA_ARGS__))

/* Magic, format version and header size, then the header check, from the first bytes. */
static nub_status check_envelope(const char *path, const struct nub_snapfile_header *h, uint64_t fsize,
                                 struct nub_error *err)
{
    if (fsize < sizeof h->magic)
        return CORRUPT(err, path, "truncated", "%s is %llu bytes, shorter than the magic", path,
                       (unsigned long long)fsize);
    if (memcmp(h->magic, NUB_SNAPFILE_MAGIC, sizeof h->magic) != 0)
        return CORRUPT(err, path, "magic", "%s does not start with \"NUBSNAP\"", path);
    if (fsize < offsetof(struct nub_snapfile_header, header_size))
        return CORRUPT(err, path, "truncated", "%s ends inside the format version", path);
    if (h->format_version != NUB_SNAPFILE_VERSION)
        return FOREIGN(err, path, "format version", "%s has format version %u, this library reads %u",
                       path, h->format_version, NUB_SNAPFILE_VERSION);
    if (fsize < NUB_SNAPFILE_HEADER_SIZE)
        return CORRUPT(err, path, "truncated", "%s is %llu bytes, the header needs %u", path,
                       (unsigned long long)fsize, NUB_SNAPFILE_HEADER_SIZE);
    if (h->header_size != NUB_SNAPFILE_HEADER_SIZE)
        return CORRUPT(err, path, "header size", "%s says %u, format %u has %u", path, h->header_size,
                       NUB_SNAPFILE_VERSION, NUB_SNAPFILE_HEADER_SIZE);
    uint8_t want[32];
    header_check(h, want);
    if (memcmp(want, h->header_check, 32) != 0)
        return CORRUPT(err, path, "header check", "the header of %s is corrupt (its BLAKE3 differs)", path);
    return NUB_OK;
}

/* ABI version, CPU vendor and the CPUID features the image depends on. */
static nub_status check_origin(const char *path, const struct nub_snapfile_header *h, struct nub_error *err)
{
    struct cpu_id c;
    host_cpu(&c);
    if (h->abi_version != NUB_ABI_VERSION)
        return FOREIGN(err, path, "ABI version", "%s holds a guest of ABI version %u, this library speaks %u",
                       path, h->abi_version, NUB_ABI_VERSION);
    if (memcmp(h->cpu_vendor, c.vendor, sizeof c.vendor) != 0)
        return FOREIGN(err, path, "CPU vendor", "%s was captured on a \"%.12s\" CPU, this one is \"%.12s\"",
                       path, h->cpu_vendor, c.vendor);
    const uint32_t need[4] = {h->cpuid_1_ecx, h->cpuid_1_edx, h->cpuid_7_ebx, h->cpuid_ext_edx};
    const uint32_t have[4] = {c.ecx1, c.edx1, c.ebx7, c.edx_ext};
    static const char *const names[4] = {"CPUID.1:ECX", "CPUID.1:EDX", "CPUID.7:EBX", "CPUID.80000001h:EDX"};
    for (int i = 0; i < 4; i++)
        if (need[i] & ~have[i])
            return FOREIGN(err, path, "CPU features", "%s needs %s bits 0x%08x that this CPU lacks", path,
                           names[i], need[i] & ~have[i]);
    return NUB_OK;
}

static void config_from(const struct nub_snapfile_header *h, struct nub_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->heap_size = h->heap_size;
    cfg->stack_size = h->stack_size;
    cfg->input_size = h->input_size;
    cfg->output_size = h->output_size;
    cfg->scratch_size = h->scratch_size;
    cfg->max_image_size = h->max_image_size;
    cfg->backend = (enum nub_backend)h->backend;
    cfg->max_guest_log_level = h->max_guest_log_level;
    cfg->call_timeout_ms = h->call_timeout_ms;
}

/* The configuration must reproduce the region table and the file's size exactly. */
static nub_status check_layout(const char *path, const struct nub_snapfile_header *h, uint64_t fsize,
                               struct nub_config *cfg, struct nub_layout *lay, struct nub_error *err)
{
    struct nub_config in;
    struct nub_error why = {0}; /* normalisation leaves it alone when it succeeds */
    config_from(h, &in);
    if (in.max_image_size == 0 || in.heap_size == 0 || in.stack_size == 0 || in.input_size == 0 ||
        in.output_size == 0 || h->max_log_level > NUB_LOG_LEVEL_TRACE)
        return CORRUPT(err, path, "configuration", "a size or log level in %s is out of range", path);
    if (nub_config_normalise(&in, cfg, &why) != NUB_OK || memcmp(&in, cfg, sizeof in) != 0)
        return CORRUPT(err, path, "configuration", "%s", why.message[0] ? why.message : "sizes are not normalised");
    if (h->image_size > cfg->max_image_size ||
        nub_layout_compute(cfg, h->image_size, h->init_size, lay, &why) != NUB_OK)
        return CORRUPT(err, path, "layout", "%s", h->image_size > cfg->max_image_size ? "image above its limit" : why.message);
    if (h->nregions != 2 || h->regions[0].gpa != NUB_BASE_GPA || h->regions[0].len != lay->snapshot_size ||
        h->regions[0].flags != NUB_SNAP_REGION_FLAGS || h->regions[1].gpa != nub_scratch_gpa(lay, 0) ||
        h->regions[1].len != lay->scratch_size || h->regions[1].flags != NUB_SCRATCH_REGION_FLAGS)
        return CORRUPT(err, path, "region table", "the regions of %s do not match its configuration", path);
    if (h->mem_offset != NUB_SNAPFILE_MEM_OFFSET || h->mem_size != lay->snapshot_size + lay->scratch_size)
        return CORRUPT(err, path, "memory offset", "memory at %llu, %llu bytes: expected %u, %llu", 
                       (unsigned long long)h->mem_offset, (unsigned long long)h->mem_size,
                       NUB_SNAPFILE_MEM_OFFSET, (unsigned long long)(lay->snapshot_size + lay->scratch_size));
    uint64_t total = 0;
    if (!nub_add_u64(h->mem_offset, h->mem_size, &total) || fsize < total)
        return CORRUPT(err, path, "truncated", "%s is %llu bytes, header and memory make %llu", path,
                       (unsigned long long)fsize, (unsigned long long)total);
    if (fsize > total)
        return CORRUPT(err, path, "trailing bytes", "%s is %llu bytes, header and memory make %llu", path,
                       (unsigned long long)fsize, (unsigned long long)total);
    return NUB_OK;
}

/* Segments inside the image, entry and dispatch in executable ones, CR3 in the page tables. */
static nub_status check_entries(const char *path, const struct nub_snapfile_header *h,
                                const struct nub_layout *lay, struct nub_snapshot *s, struct nub_error *err)
{
    if (h->nsegs == 0 || h->nsegs > NUB_SNAPFILE_MAX_SEGS)
        return CORRUPT(err, path, "segments", "%u segments", h->nsegs);
    for (uint32_t i = 0; i < h->nsegs; i++) {
        const struct nub_snapfile_segment *g = &h->segs[i];
        if (g->vaddr < NUB_KERNEL_BASE || (g->vaddr & (NUB_PAGE_SIZE - 1)) || (g->perms & ~7u) ||
            !nub_range_inside(g->vaddr - NUB_KERNEL_BASE, g->memsz, lay->image_size))
            return CORRUPT(err, path, "segments", "segment %u lies outside the image", i);
        s->segs[i] = (struct nub_elf_segment){g->vaddr, g->memsz, g->file_off, g->copy_at, g->filesz, g->perms};
    }
    s->nsegs = h->nsegs;
    bool evolved = h->flags & NUB_SNAPFILE_F_EVOLVED;
    if (h->flags & ~NUB_SNAPFILE_F_EVOLVED)
        return CORRUPT(err, path, "flags", "unknown flags 0x%x", h->flags);
    if (!nub_in_exec_segment(s->segs, s->nsegs, h->entry_gva))
        return CORRUPT(err, path, "entry point", "0x%llx is not in an executable segment", (unsigned long long)h->entry_gva);
    if (evolved && !nub_in_exec_segment(s->segs, s->nsegs, h->dispatch_gva))
        return CORRUPT(err, path, "dispatch entry", "0x%llx is not in an executable segment",
                       (unsigned long long)h->dispatch_gva);
    uint64_t pt = nub_snap_gpa(lay->pt_off);
    if ((h->cr3 & (NUB_PAGE_SIZE - 1)) || h->cr3 < pt || h->cr3 - pt >= lay->pt_size)
        return CORRUPT(err, path, "page-table root", "CR3 0x%llx is not a page of the page tables",
                       (unsigned long long)h->cr3);
    return NUB_OK;
}

/* Read the first page (header and padding) of the file, or as much as there is. */
static nub_status read_header(int fd, const char *path, uint8_t page[NUB_SNAPFILE_MEM_OFFSET],
                              struct nub_snapfile_header *h, uint64_t fsize, struct nub_error *err)
{
    size_t want = fsize < NUB_SNAPFILE_MEM_OFFSET ? (size_t)fsize : NUB_SNAPFILE_MEM_OFFSET;
    memset(page, 0, NUB_SNAPFILE_MEM_OFFSET);
    ssize_t n = pread(fd, page, want, 0);
    if (n < 0 || (size_t)n != want)
        return nub_err_set(err, NUB_E_IO, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "short read");
    memcpy(h, page, sizeof *h);
    return NUB_OK;
}

/* The bytes between the header and the memory are zero. */
static nub_status check_padding(const char *path, const uint8_t page[NUB_SNAPFILE_MEM_OFFSET],
                                struct nub_error *err)
{
    for (size_t i = NUB_SNAPFILE_HEADER_SIZE; i < NUB_SNAPFILE_MEM_OFFSET; i++)
        if (page[i] != 0)
            return CORRUPT(err, path, "header padding", "byte %zu of %s is not zero", i, path);
    return NUB_OK;
}

/* Take the verified header's metadata into the snapshot, then check the content hash. */
static nub_status adopt(const char *path, const struct nub_snapfile_header *h, const struct nub_config *cfg,
                        struct nub_snapshot *s, struct nub_error *err)
{
    s->cfg = *cfg;
    s->cr3 = h->cr3;
    s->entry_gva = h->entry_gva;
    s->evolved = h->flags & NUB_SNAPFILE_F_EVOLVED;
    s->dispatch_gva = s->evolved ? h->dispatch_gva : 0;
    s->counter = s->evolved ? h->counter : 0;
    s->max_log_level = h->max_log_level;
    if (s->evolved)
        cpu_from_file(&h->cpu, &s->cpu);
    nub_snapshot_compute_hash(s->mem, &s->lay, s->hash);
    if (memcmp(s->hash, h->content_hash, 32) != 0)
        return CORRUPT(err, path, "content hash", "the memory of %s does not match its content hash", path);
    s->hashed = true;
    return NUB_OK;
}

nub_status nub_snapshot_load(const char *path, nub_snapshot **out, struct nub_error *err)
{
    static const size_t page_size = NUB_SNAPFILE_MEM_OFFSET;
    struct nub_snapfile_header h;
    struct nub_snapshot meta;
    struct nub_config cfg;
    struct stat st;
    nub_err_clear(err);
    if (out == NULL || path == NULL)
        return nub_err_set(err, NUB_E_INVALID, "%s is NULL", out ? "path" : "out");
    *out = NULL;
    uint8_t *page = malloc(page_size);
    if (page == NULL)
        return nub_err_set(err, NUB_E_NOMEM, "cannot allocate %zu bytes", page_size);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY); /* no wait on a FIFO */
    if (fd < 0) {
        free(page);
        return nub_err_set(err, NUB_E_IO, "cannot open %s: %s", path, strerror(errno));
    }
    nub_status rc = NUB_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = nub_err_set(err, NUB_E_IO, "%s is not a regular file", path);
    memset(&meta, 0, sizeof meta);
    if (rc == NUB_OK)
        rc = read_header(fd, path, page, &h, (uint64_t)st.st_size, err);
    if (rc == NUB_OK)
        rc = check_envelope(path, &h, (uint64_t)st.st_size, err);
    if (rc == NUB_OK)
        rc = check_padding(path, page, err);
    if (rc == NUB_OK)
        rc = check_origin(path, &h, err);
    if (rc == NUB_OK)
        rc = check_layout(path, &h, (uint64_t)st.st_size, &cfg, &meta.lay, err);
    if (rc == NUB_OK)
        rc = check_entries(path, &h, &meta.lay, &meta, err);
    free(page);
    if (rc != NUB_OK) {
        close(fd);
        return rc;
    }
    rc = nub_snapshot_wrap(fd, h.mem_offset, &meta.lay, out, err);
    if (rc != NUB_OK)
        return rc;
    (*out)->nsegs = meta.nsegs;
    memcpy((*out)->segs, meta.segs, sizeof meta.segs);
    rc = adopt(path, &h, &cfg, *out, err);
    if (rc != NUB_OK) {
        nub_snapshot_release(*out);
        *out = NULL;
    }
    return rc;
}
