/* ELF64 loader: validates a guest executable linked at NUB_KERNEL_BASE and copies its PT_LOAD segments. */
#include <elf.h>
#include <string.h>

#include "checked.h"
#include "internal.h"

#define PAGE_MASK (NUB_PAGE_SIZE - 1)

static nub_status bad(struct nub_error *err, const char *what)
{
    return nub_err_set(err, NUB_E_ELF, "invalid guest ELF: %s", what);
}

static nub_status check_ident(const Elf64_Ehdr *eh, struct nub_error *err)
{
    if (eh->e_ident[EI_CLASS] != ELFCLASS64)
        return bad(err, "wrong class (need ELFCLASS64)");
    if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
        return bad(err, "wrong data encoding (need little-endian)");
    if (eh->e_ident[EI_VERSION] != EV_CURRENT)
        return bad(err, "unsupported ELF version");
    if (eh->e_machine != EM_X86_64)
        return bad(err, "wrong machine (need EM_X86_64)");
    if (eh->e_type != ET_EXEC)
        return bad(err, "wrong type (need ET_EXEC linked at NUB_KERNEL_BASE)");
    return NUB_OK;
}

static nub_status check_phdrs(const Elf64_Ehdr *eh, size_t len, struct nub_error *err)
{
    if (eh->e_phentsize != sizeof(Elf64_Phdr))
        return bad(err, "program header entry size is not sizeof(Elf64_Phdr)");
    if (eh->e_phnum == 0 || eh->e_phnum == PN_XNUM)
        return bad(err, "no program headers");
    uint64_t table = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr); /* at most 65535 * 56 */
    if (!nub_range_inside(eh->e_phoff, table, len))
        return bad(err, "truncated program headers (past the end of the file)");
    return NUB_OK;
}

static uint32_t perms_of(uint32_t p_flags)
{
    uint32_t p = 0;
    if (p_flags & PF_R)
        p |= NUB_MEM_READ;
    if (p_flags & PF_W)
        p |= NUB_MEM_WRITE;
    if (p_flags & PF_X)
        p |= NUB_MEM_EXEC;
    return p;
}

/* Validate one PT_LOAD and append it to img. */
static nub_status add_segment(const Elf64_Phdr *ph, size_t len, uint64_t max_image,
                              struct nub_elf_image *img, struct nub_error *err)
{
    if (ph->p_filesz > ph->p_memsz)
        return bad(err, "segment filesz is larger than memsz");
    if (!nub_range_inside(ph->p_offset, ph->p_filesz, len))
        return bad(err, "segment data lies outside the file");
    if ((ph->p_flags & PF_W) && (ph->p_flags & PF_X))
        return bad(err, "segment is both writable and executable (W+X)");
    if (ph->p_vaddr < NUB_KERNEL_BASE)
        return bad(err, "segment below NUB_KERNEL_BASE (link the guest at 0xffffffff80000000)");
    uint64_t rel = ph->p_vaddr - NUB_KERNEL_BASE, end;
    if (rel >= max_image || !nub_range_inside(rel, ph->p_memsz, max_image))
        return nub_err_set(err, NUB_E_ELF,
                           "invalid guest ELF: image larger than the configured maximum (%llu bytes)",
                           (unsigned long long)max_image);
    /* Whatever max_image is, the page-rounded end must not wrap nor leave the address space. */
    if (!nub_add_u64(rel, ph->p_memsz, &end) || !nub_align_up_u64(end, NUB_PAGE_SIZE, &end) ||
        end > NUB_MAX_REGIONS_SIZE)
        return bad(err, "segment ends beyond the guest address space");
    if (img->nsegs == NUB_ELF_MAX_SEGMENTS)
        return bad(err, "too many PT_LOAD segments");
    struct nub_elf_segment *s = &img->segs[img->nsegs++];
    s->vaddr = ph->p_vaddr & ~PAGE_MASK;
    s->memsz = NUB_KERNEL_BASE + end - s->vaddr;
    s->copy_at = ph->p_vaddr - s->vaddr;
    s->file_off = ph->p_offset;
    s->filesz = ph->p_filesz;
    s->perms = perms_of(ph->p_flags);
    if (end > img->image_size)
        img->image_size = end;
    return NUB_OK;
}

static nub_status check_overlaps(const struct nub_elf_image *img, struct nub_error *err)
{
    for (size_t i = 0; i < img->nsegs; i++)
        for (size_t j = i + 1; j < img->nsegs; j++) {
            const struct nub_elf_segment *a = &img->segs[i], *b = &img->segs[j];
            /* add_segment bounded every end by the address space: the sums do not wrap. */
            if (nub_ranges_overlap(a->vaddr, a->memsz, b->vaddr, b->memsz))
                return bad(err, "segments overlap (at page granularity)");
        }
    return NUB_OK;
}

static nub_status check_entry(const struct nub_elf_image *img, struct nub_error *err)
{
    for (size_t i = 0; i < img->nsegs; i++) {
        const struct nub_elf_segment *s = &img->segs[i];
        if ((s->perms & NUB_MEM_EXEC) && img->entry >= s->vaddr + s->copy_at &&
            img->entry - s->vaddr < s->memsz)
            return NUB_OK;
    }
    return bad(err, "entry point is not inside an executable segment");
}

/* The magic first, so that a short file that is not an ELF says so; then the header's size. */
static nub_status check_magic_and_size(const uint8_t *file, size_t len, struct nub_error *err)
{
    if (file == NULL || len == 0)
        return bad(err, "not an ELF file (empty)");
    if (memcmp(file, ELFMAG, len < SELFMAG ? len : SELFMAG) != 0)
        return bad(err, "not an ELF file (no \\x7fELF magic)");
    if (len < sizeof(Elf64_Ehdr))
        return nub_err_set(err, NUB_E_ELF, "invalid guest ELF: truncated ELF header (%zu of %zu bytes)",
                           len, sizeof(Elf64_Ehdr));
    return NUB_OK;
}

nub_status nub_elf_parse(const uint8_t *file, size_t len, uint64_t max_image,
                         struct nub_elf_image *img, struct nub_error *err)
{
    Elf64_Ehdr eh;
    memset(img, 0, sizeof *img);
    nub_status rc = check_magic_and_size(file, len, err);
    if (rc != NUB_OK)
        return rc;
    memcpy(&eh, file, sizeof eh);
    rc = check_ident(&eh, err);
    if (rc == NUB_OK)
        rc = check_phdrs(&eh, len, err);
    for (size_t i = 0; rc == NUB_OK && i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, file + eh.e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_type == PT_INTERP || ph.p_type == PT_DYNAMIC)
            rc = bad(err, "dynamically linked (PT_INTERP/PT_DYNAMIC); link statically");
        else if (ph.p_type == PT_TLS)
            rc = bad(err, "thread-local storage (PT_TLS) is not supported");
        else if (ph.p_type == PT_LOAD && ph.p_memsz != 0)
            rc = add_segment(&ph, len, max_image, img, err);
    }
    if (rc != NUB_OK)
        return rc;
    if (img->nsegs == 0)
        return bad(err, "no loadable segments");
    img->file = file;
    img->file_len = len;
    img->entry = eh.e_entry;
    rc = check_overlaps(img, err);
    return rc == NUB_OK ? check_entry(img, err) : rc;
}

void nub_elf_load(const struct nub_elf_image *img, uint8_t *dst)
{
    for (size_t i = 0; i < img->nsegs; i++) {
        const struct nub_elf_segment *s = &img->segs[i];
        uint64_t off = s->vaddr - NUB_KERNEL_BASE + s->copy_at;
        memcpy(dst + off, img->file + s->file_off, s->filesz);
    }
}
