/* Unit tests of the ELF loader: a synthetic valid image loads; each kind of corruption is rejected with its message. */
#include <criterion/criterion.h>
#include <elf.h>
#include <string.h>

#include "../../host/internal.h"

#define KB NUB_KERNEL_BASE

/* A file with an ELF header, 3 program headers and data for two segments. */
struct img {
    Elf64_Ehdr eh;
    Elf64_Phdr ph[3];
    uint8_t text[64];
    uint8_t data[32];
};

static void make(struct img *m)
{
    memset(m, 0, sizeof *m);
    memcpy(m->eh.e_ident, ELFMAG, SELFMAG);
    m->eh.e_ident[EI_CLASS] = ELFCLASS64;
    m->eh.e_ident[EI_DATA] = ELFDATA2LSB;
    m->eh.e_ident[EI_VERSION] = EV_CURRENT;
    m->eh.e_type = ET_EXEC;
    m->eh.e_machine = EM_X86_64;
    m->eh.e_version = EV_CURRENT;
    m->eh.e_entry = KB + 0x10;
    m->eh.e_phoff = offsetof(struct img, ph);
    m->eh.e_ehsize = sizeof(Elf64_Ehdr);
    m->eh.e_phentsize = sizeof(Elf64_Phdr);
    m->eh.e_phnum = 3;
    m->ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = offsetof(struct img, text),
                            .p_vaddr = KB, .p_filesz = 64, .p_memsz = 64, .p_align = 4096};
    m->ph[1] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = offsetof(struct img, data),
                            .p_vaddr = KB + 0x2008, .p_filesz = 32, .p_memsz = 0x3000, .p_align = 4096};
    m->ph[2] = (Elf64_Phdr){.p_type = PT_GNU_STACK, .p_flags = PF_R | PF_W};
    for (int i = 0; i < 64; i++)
        m->text[i] = (uint8_t)(0x90 + i);
    for (int i = 0; i < 32; i++)
        m->data[i] = (uint8_t)i;
}

static void expect_reject(const struct img *m, size_t len, const char *needle)
{
    struct nub_elf_image img;
    struct nub_error err;
    nub_status rc = nub_elf_parse((const uint8_t *)m, len, 1 << 20, &img, &err);
    cr_assert_eq(rc, NUB_E_ELF, "expected NUB_E_ELF for '%s', got %d", needle, rc);
    cr_assert_eq(err.code, NUB_E_ELF);
    cr_assert(strstr(err.message, needle) != NULL, "message '%s' lacks '%s'", err.message, needle);
}

Test(elf, valid_image_loads)
{
    struct img m;
    struct nub_elf_image img;
    struct nub_error err;
    make(&m);
    cr_assert_eq(nub_elf_parse((const uint8_t *)&m, sizeof m, 1 << 20, &img, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(img.nsegs, 2);
    cr_assert_eq(img.entry, KB + 0x10);
    cr_assert_eq(img.image_size, 0x6000, "0x2008 + 0x3000 rounded up");
    cr_assert_eq(img.segs[0].perms, NUB_MEM_READ | NUB_MEM_EXEC);
    cr_assert_eq(img.segs[1].perms, NUB_MEM_READ | NUB_MEM_WRITE);
    cr_assert_eq(img.segs[1].vaddr, KB + 0x2000);
    cr_assert_eq(img.segs[1].memsz, 0x4000);
    uint8_t *dst = calloc(1, img.image_size);
    nub_elf_load(&img, dst);
    cr_assert_eq(memcmp(dst, m.text, 64), 0);
    cr_assert_eq(memcmp(dst + 0x2008, m.data, 32), 0);
    for (size_t i = 0x2008 + 32; i < img.image_size; i++)
        cr_assert_eq(dst[i], 0, "bss byte %zx not zero", i);
    free(dst);
}

Test(elf, truncated_header)
{
    struct img m;
    make(&m);
    expect_reject(&m, 10, "truncated ELF header (10 of 64 bytes)");
    expect_reject(&m, sizeof(Elf64_Ehdr) - 1, "truncated ELF header");
    expect_reject(&m, 3, "truncated ELF header (3 of 64 bytes)"); /* a prefix of the magic: a cut ELF */
}

/* The magic is checked before the header's size: short or empty non-ELF input says what it is. */
Test(elf, short_text_and_empty_input_are_not_elf)
{
    static const char text[] = "hello nub\n"; /* 10 bytes, shorter than an ELF header */
    struct nub_elf_image img;
    struct nub_error err;
    cr_assert_eq(nub_elf_parse((const uint8_t *)text, 10, 1 << 20, &img, &err), NUB_E_ELF);
    cr_assert_str_eq(err.message, "invalid guest ELF: not an ELF file (no \\x7fELF magic)");
    cr_assert_eq(nub_elf_parse((const uint8_t *)text, 0, 1 << 20, &img, &err), NUB_E_ELF);
    cr_assert_str_eq(err.message, "invalid guest ELF: not an ELF file (empty)");
    cr_assert_eq(nub_elf_parse(NULL, 0, 1 << 20, &img, &err), NUB_E_ELF);
    cr_assert_str_eq(err.message, "invalid guest ELF: not an ELF file (empty)");
    cr_assert_eq(nub_elf_parse((const uint8_t *)"\x7f" "EX", 3, 1 << 20, &img, &err), NUB_E_ELF);
    cr_assert(strstr(err.message, "no \\x7fELF magic") != NULL, "%s", err.message);
}

Test(elf, bad_ident_fields)
{
    struct img m;
    make(&m);
    m.eh.e_ident[0] = 0;
    expect_reject(&m, sizeof m, "not an ELF file (no \\x7fELF magic)");
    make(&m);
    m.eh.e_ident[EI_CLASS] = ELFCLASS32;
    expect_reject(&m, sizeof m, "wrong class");
    make(&m);
    m.eh.e_ident[EI_DATA] = ELFDATA2MSB;
    expect_reject(&m, sizeof m, "data encoding");
    make(&m);
    m.eh.e_machine = EM_AARCH64;
    expect_reject(&m, sizeof m, "wrong machine");
    make(&m);
    m.eh.e_type = ET_DYN;
    expect_reject(&m, sizeof m, "wrong type");
}

Test(elf, program_headers_outside_file)
{
    struct img m;
    make(&m);
    m.eh.e_phoff = sizeof m - 10;
    expect_reject(&m, sizeof m, "truncated program headers");
    make(&m);
    m.eh.e_phoff = UINT64_MAX - 8;
    expect_reject(&m, sizeof m, "truncated program headers");
    make(&m);
    m.eh.e_phnum = 0;
    expect_reject(&m, sizeof m, "no program headers");
    make(&m);
    m.eh.e_phentsize = 40;
    expect_reject(&m, sizeof m, "entry size");
    make(&m);
    expect_reject(&m, offsetof(struct img, ph) + sizeof(Elf64_Phdr), "truncated program headers");
}

Test(elf, segment_checks)
{
    struct img m;
    make(&m);
    m.ph[0].p_offset = sizeof m;
    expect_reject(&m, sizeof m, "outside the file");
    make(&m);
    m.ph[0].p_filesz = UINT64_MAX;
    m.ph[0].p_memsz = UINT64_MAX;
    expect_reject(&m, sizeof m, "outside the file");
    make(&m);
    m.ph[1].p_filesz = 0x4000;
    expect_reject(&m, sizeof m, "filesz is larger than memsz");
    make(&m);
    m.ph[1].p_flags = PF_R | PF_W | PF_X;
    expect_reject(&m, sizeof m, "W+X");
    make(&m);
    m.ph[1].p_vaddr = KB + 0x20; /* shares the text page */
    expect_reject(&m, sizeof m, "overlap");
    make(&m);
    m.ph[0].p_vaddr = 0x400000;
    m.eh.e_entry = 0x400010;
    expect_reject(&m, sizeof m, "below NUB_KERNEL_BASE");
    make(&m);
    m.ph[1].p_memsz = 2u << 20;
    expect_reject(&m, sizeof m, "larger than the configured maximum");
    make(&m);
    m.ph[1].p_vaddr = UINT64_MAX - 0x10;
    expect_reject(&m, sizeof m, "larger than the configured maximum");
    make(&m);
    m.ph[0].p_type = PT_NULL;
    m.ph[1].p_type = PT_NULL;
    expect_reject(&m, sizeof m, "no loadable segments");
    make(&m);
    m.ph[2].p_type = PT_INTERP;
    expect_reject(&m, sizeof m, "dynamically linked");
}

Test(elf, entry_must_be_executable)
{
    struct img m;
    make(&m);
    m.eh.e_entry = KB + 0x2010; /* data segment */
    expect_reject(&m, sizeof m, "entry point");
    make(&m);
    m.eh.e_entry = KB + 0x1000; /* past the text segment */
    expect_reject(&m, sizeof m, "entry point");
    make(&m);
    m.eh.e_entry = 0;
    expect_reject(&m, sizeof m, "entry point");
}

Test(elf, random_corruption_never_crashes)
{
    struct img m;
    struct nub_elf_image img;
    struct nub_error err;
    uint32_t seed = 7;
    for (int i = 0; i < 20000; i++) {
        make(&m);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            ((uint8_t *)&m)[(seed >> 8) % sizeof m] = (uint8_t)(seed >> 20);
        }
        nub_status rc = nub_elf_parse((const uint8_t *)&m, sizeof m, 1 << 20, &img, &err);
        cr_assert(rc == NUB_OK || rc == NUB_E_ELF);
        if (rc == NUB_OK) {
            cr_assert_leq(img.image_size, 1u << 20);
            for (size_t s = 0; s < img.nsegs; s++)
                cr_assert_leq(img.segs[s].file_off + img.segs[s].filesz, sizeof m);
        }
    }
}

/* max_image_size unbounded and a segment whose page-rounded end wraps to 0 (the old
 * loader kept image_size at 4 KiB and then copied file bytes 2 GiB past the mapping). */
Test(elf, wrapping_segment_end_is_refused_whatever_the_limit)
{
    struct img m;
    struct nub_elf_image img;
    struct nub_error err;
    make(&m);
    uint64_t rel = m.ph[1].p_vaddr - KB;
    m.ph[1].p_memsz = UINT64_MAX - rel;
    nub_status rc = nub_elf_parse((const uint8_t *)&m, sizeof m, UINT64_MAX, &img, &err);
    cr_assert_eq(rc, NUB_E_ELF, "parsed with image_size %llu", (unsigned long long)img.image_size);
    cr_assert(strstr(err.message, "beyond the guest address space") != NULL, "%s", err.message);
    make(&m);
    m.ph[1].p_vaddr = UINT64_MAX - 0x10; /* rel near 2 GiB, end wraps */
    m.ph[1].p_memsz = 0x20;
    m.ph[1].p_filesz = 0x20;
    cr_assert_eq(nub_elf_parse((const uint8_t *)&m, sizeof m, UINT64_MAX, &img, &err), NUB_E_ELF);
    make(&m); /* the same image under an unbounded limit is fine when it fits */
    cr_assert_eq(nub_elf_parse((const uint8_t *)&m, sizeof m, UINT64_MAX, &img, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(img.image_size, 0x6000);
}
