/* Unit tests of the guest memory layout: defaults, limits, error messages and the page tables built for it. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../host/internal.h"
#include "nub/vmem.h"

static struct nub_config norm(const struct nub_config *in)
{
    struct nub_config out;
    struct nub_error err;
    cr_assert_eq(nub_config_normalise(in, &out, &err), NUB_OK, "%s", err.message);
    return out;
}

Test(layout, defaults)
{
    struct nub_config cfg = norm(NULL);
    struct nub_layout l;
    struct nub_error err;
    cr_assert_eq(cfg.heap_size, 128 * 1024);
    cr_assert_eq(cfg.stack_size, 64 * 1024);
    cr_assert_eq(cfg.input_size, 64 * 1024);
    cr_assert_eq(cfg.output_size, 64 * 1024);
    cr_assert_eq(nub_layout_compute(&cfg, 0x5000, 100, &l, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(l.peb_off, 0x5000);
    cr_assert_eq(l.heap_off, 0x6000);
    cr_assert_eq(l.init_off, 0x6000 + 128 * 1024);
    cr_assert_eq(l.init_alloc, 0x1000);
    cr_assert_eq(l.pt_off % NUB_PAGE_SIZE, 0);
    cr_assert_eq(l.scratch_size, 3 * 64 * 1024 + NUB_SCRATCH_FIXED_SIZE);
    cr_assert_eq(l.input_off, 0);
    cr_assert_eq(l.top_off, l.scratch_size - NUB_PAGE_SIZE);
    cr_assert_eq(l.exn_off + NUB_EXN_STACK_SIZE, l.top_off);
    cr_assert_eq(nub_scratch_gva(&l, l.top_off), NUB_SCRATCH_TOP_GVA);
    cr_assert_eq(nub_scratch_gva(&l, l.scratch_size) - 1, NUB_MAX_GVA);
    cr_assert_eq(nub_scratch_gpa(&l, l.scratch_size) - 1, NUB_MAX_GPA);
}

Test(layout, sizes_round_to_pages)
{
    struct nub_config in;
    nub_config_default(&in);
    in.heap_size = 1;
    in.stack_size = 4097;
    struct nub_config cfg = norm(&in);
    cr_assert_eq(cfg.heap_size, 4096);
    cr_assert_eq(cfg.stack_size, 8192);
}

Test(layout, too_large_names_the_field)
{
    struct nub_config in, out;
    struct nub_error err;
    nub_config_default(&in);
    in.heap_size = UINT64_MAX - 5;
    cr_assert_eq(nub_config_normalise(&in, &out, &err), NUB_E_LAYOUT);
    cr_assert(strstr(err.message, "heap_size") != NULL, "%s", err.message);
    nub_config_default(&in);
    in.input_size = 4ull << 30;
    cr_assert_eq(nub_config_normalise(&in, &out, &err), NUB_E_LAYOUT);
    cr_assert(strstr(err.message, "input_size") != NULL, "%s", err.message);
}

/* Each size field: 0 takes its default, a nonzero value past the address space is
 * NUB_E_LAYOUT naming that field (nub_config's documented rule). */
Test(layout, zero_sizes_are_defaults_and_oversized_ones_name_the_field)
{
    struct nub_config d = norm(NULL), in, out;
    struct nub_error err;
    static const char *const names[] = {"heap_size", "stack_size", "input_size", "output_size",
                                        "scratch_size", "max_image_size"};
    for (size_t f = 0; f < 6; f++) {
        nub_config_default(&in);
        uint64_t *field[] = {&in.heap_size, &in.stack_size, &in.input_size, &in.output_size,
                             &in.scratch_size, &in.max_image_size};
        *field[f] = 0;
        out = norm(&in);
        cr_assert_eq(memcmp(&out, &d, sizeof out), 0, "%s = 0 is not the default", names[f]);
        *field[f] = NUB_MAX_REGIONS_SIZE + NUB_PAGE_SIZE;
        cr_assert_eq(nub_config_normalise(&in, &out, &err), NUB_E_LAYOUT, "%s", names[f]);
        cr_assert(strstr(err.message, names[f]) != NULL, "'%s' does not name %s", err.message, names[f]);
    }
    struct nub_config zero;
    memset(&zero, 0, sizeof zero);
    out = norm(&zero);
    cr_assert_eq(out.heap_size, d.heap_size);
    cr_assert_eq(out.stack_size, d.stack_size);
    cr_assert_eq(out.input_size, d.input_size);
    cr_assert_eq(out.output_size, d.output_size);
    cr_assert_eq(out.scratch_size, 0, "computed by the layout");
    cr_assert_eq(out.max_image_size, d.max_image_size);
}

Test(layout, regions_must_fit_top_2gib)
{
    struct nub_config in;
    struct nub_layout l;
    struct nub_error err;
    nub_config_default(&in);
    in.heap_size = 1ull << 30;
    in.stack_size = 1ull << 30; /* together with the rest: over 2 GiB */
    struct nub_config cfg = norm(&in);
    cr_assert_eq(nub_layout_compute(&cfg, 0x1000, 0, &l, &err), NUB_E_LAYOUT);
    cr_assert(strstr(err.message, "2 GiB") != NULL, "%s", err.message);
    in.stack_size = 64 * 1024; /* 1 GiB heap alone fits */
    cfg = norm(&in);
    cr_assert_eq(nub_layout_compute(&cfg, 0x1000, 0, &l, &err), NUB_OK, "%s", err.message);
    cr_assert_leq(l.snapshot_size + l.scratch_size, NUB_MAX_REGIONS_SIZE);
}

Test(layout, scratch_size_checked)
{
    struct nub_config in;
    struct nub_layout l;
    struct nub_error err;
    nub_config_default(&in);
    in.scratch_size = 64 * 1024;
    struct nub_config cfg = norm(&in);
    cr_assert_eq(nub_layout_compute(&cfg, 0x1000, 0, &l, &err), NUB_E_LAYOUT);
    cr_assert(strstr(err.message, "scratch_size") != NULL, "%s", err.message);
    in.scratch_size = 1024 * 1024;
    cfg = norm(&in);
    cr_assert_eq(nub_layout_compute(&cfg, 0x1000, 0, &l, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(l.scratch_size, 1024 * 1024);
    cr_assert_eq(l.top_off, 1024 * 1024 - NUB_PAGE_SIZE);
}

/* Buffer ops over the snapshot's table area for translating. */
static int translate(const struct nub_layout *l, uint8_t *snap, uint64_t cr3, uint64_t va,
                     uint64_t *pa, uint32_t *flags)
{
    struct nub_vmem_buf buf;
    nub_vmem_buf_attach(&buf, snap + l->pt_off, nub_snap_gpa(l->pt_off), l->pt_size);
    struct nub_vmem_ops ops = nub_vmem_buf_ops(&buf, cr3);
    return nub_vmem_virt_to_phys(&ops, va, pa, flags);
}

Test(layout, page_tables_map_every_region_and_leave_guards)
{
    struct nub_config cfg = norm(NULL);
    struct nub_layout l;
    struct nub_error err;
    struct nub_elf_image img = {.nsegs = 2, .image_size = 0x3000};
    img.segs[0] = (struct nub_elf_segment){.vaddr = NUB_KERNEL_BASE, .memsz = 0x1000,
                                           .perms = NUB_MEM_READ | NUB_MEM_EXEC};
    img.segs[1] = (struct nub_elf_segment){.vaddr = NUB_KERNEL_BASE + 0x2000, .memsz = 0x1000,
                                           .perms = NUB_MEM_READ | NUB_MEM_WRITE};
    cr_assert_eq(nub_layout_compute(&cfg, img.image_size, 10, &l, &err), NUB_OK);
    uint8_t *snap = calloc(1, l.snapshot_size);
    uint64_t cr3, pa;
    uint32_t f;
    cr_assert_eq(nub_layout_build_tables(&l, &img, NUB_MEM_READ, snap, &cr3, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(translate(&l, snap, cr3, NUB_KERNEL_BASE + 8, &pa, &f), 0);
    cr_assert_eq(pa, NUB_BASE_GPA + 8);
    cr_assert_eq(f & (NUB_VMEM_W | NUB_VMEM_X), NUB_VMEM_X, "text is R+X");
    cr_assert_neq(translate(&l, snap, cr3, NUB_KERNEL_BASE + 0x1000, &pa, &f), 0, "gap unmapped");
    cr_assert_eq(translate(&l, snap, cr3, NUB_KERNEL_BASE + 0x2000, &pa, &f), 0);
    cr_assert_eq(f & (NUB_VMEM_W | NUB_VMEM_X), NUB_VMEM_W, "data is R+W+NX");
    cr_assert_eq(translate(&l, snap, cr3, nub_snap_gva(l.heap_off), &pa, &f), 0);
    cr_assert_eq(f & NUB_VMEM_X, 0, "heap is NX");
    cr_assert_eq(translate(&l, snap, cr3, nub_snap_gva(l.init_off), &pa, &f), 0);
    cr_assert_eq(f & (NUB_VMEM_W | NUB_VMEM_X), 0, "init data read-only by default");
    cr_assert_eq(translate(&l, snap, cr3, nub_scratch_gva(&l, l.stack_off), &pa, &f), 0);
    cr_assert_eq(pa, nub_scratch_gpa(&l, l.stack_off));
    cr_assert_neq(translate(&l, snap, cr3, nub_scratch_gva(&l, l.stack_off) - 1, &pa, &f), 0,
                  "guard below the stack");
    cr_assert_neq(translate(&l, snap, cr3, nub_scratch_gva(&l, l.exn_off) - 1, &pa, &f), 0,
                  "guard below the exception stack");
    cr_assert_eq(translate(&l, snap, cr3, NUB_MAX_GVA, &pa, &f), 0);
    cr_assert_eq(pa, NUB_MAX_GPA);
    cr_assert_neq(translate(&l, snap, cr3, NUB_MAX_GVA + 1, &pa, &f), 0, "last page unmapped");
    free(snap);
}

/* Sizes near UINT64_MAX: normalisation names the field, and the layout's own sums are
 * checked even for a config that skipped normalisation (the old sum pt_off + scratch_size wrapped). */
Test(layout, huge_sizes_name_the_field_without_wrapping)
{
    struct nub_config in, out;
    struct nub_layout l;
    struct nub_error err;
    nub_config_default(&in);
    in.scratch_size = UINT64_MAX - (NUB_PAGE_SIZE - 1);
    cr_assert_eq(nub_config_normalise(&in, &out, &err), NUB_E_LAYOUT);
    cr_assert(strstr(err.message, "scratch_size") != NULL, "%s", err.message);
    nub_config_default(&in);
    in.max_image_size = UINT64_MAX;
    cr_assert_eq(nub_config_normalise(&in, &out, &err), NUB_E_LAYOUT);
    cr_assert(strstr(err.message, "max_image_size") != NULL, "%s", err.message);
    nub_config_default(&in);
    in.max_image_size = NUB_MAX_REGIONS_SIZE;
    cr_assert_eq(nub_config_normalise(&in, &out, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(out.max_image_size, NUB_MAX_REGIONS_SIZE);

    struct nub_config raw = norm(NULL);
    raw.scratch_size = UINT64_MAX - (NUB_PAGE_SIZE - 1);
    cr_assert_eq(nub_layout_compute(&raw, 0x1000, 0, &l, &err), NUB_E_LAYOUT);
    cr_assert(strstr(err.message, "scratch_size") != NULL, "%s", err.message);
    raw = norm(NULL);
    raw.input_size = UINT64_MAX - (NUB_PAGE_SIZE - 1);
    raw.output_size = 2 * NUB_PAGE_SIZE;
    cr_assert_eq(nub_layout_compute(&raw, 0x1000, 0, &l, &err), NUB_E_LAYOUT);
    cr_assert(strstr(err.message, "input_size") != NULL, "%s", err.message);
    raw = norm(NULL);
    raw.heap_size = UINT64_MAX - (NUB_PAGE_SIZE - 1);
    cr_assert_eq(nub_layout_compute(&raw, 0x1000, 0, &l, &err), NUB_E_LAYOUT);
    cr_assert(strstr(err.message, "heap") != NULL, "%s", err.message);
}
