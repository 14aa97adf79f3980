/* Guest memory layout: region offsets, size checks and the host-built page tables. */
#include <string.h>

#include "checked.h"
#include "internal.h"
#include "nub/vmem.h"

#define MAX_MAPPINGS (NUB_ELF_MAX_SEGMENTS + 10)

struct mapping {
    uint64_t va, pa, len;
    uint32_t flags;
};

struct mapping_list {
    size_t n;
    struct mapping m[MAX_MAPPINGS];
};

static void add(struct mapping_list *l, uint64_t va, uint64_t pa, uint64_t len, uint32_t flags)
{
    if (len == 0)
        return;
    l->m[l->n++] = (struct mapping){va, pa, len, flags};
}

static uint32_t vmem_flags(uint32_t perms)
{
    uint32_t f = NUB_VMEM_R;
    if (perms & NUB_MEM_WRITE)
        f |= NUB_VMEM_W;
    if (perms & NUB_MEM_EXEC)
        f |= NUB_VMEM_X;
    return f;
}

/* Every mapping of the snapshot region except the page tables, then scratch. */
static void collect(const struct nub_layout *l, const struct nub_elf_image *img,
                    uint32_t init_perms, struct mapping_list *out)
{
    const uint32_t rw = NUB_VMEM_R | NUB_VMEM_W;
    out->n = 0;
    for (size_t i = 0; img != NULL && i < img->nsegs; i++) {
        const struct nub_elf_segment *s = &img->segs[i];
        uint64_t off = s->vaddr - NUB_KERNEL_BASE;
        add(out, s->vaddr, nub_snap_gpa(off), s->memsz, vmem_flags(s->perms));
    }
    add(out, nub_snap_gva(l->peb_off), nub_snap_gpa(l->peb_off), NUB_PAGE_SIZE, rw);
    add(out, nub_snap_gva(l->heap_off), nub_snap_gpa(l->heap_off), l->heap_size, rw);
    add(out, nub_snap_gva(l->init_off), nub_snap_gpa(l->init_off), l->init_alloc,
        vmem_flags(init_perms & ~NUB_MEM_EXEC));
    add(out, nub_scratch_gva(l, 0), nub_scratch_gpa(l, 0), l->stack_off - NUB_PAGE_SIZE, rw);
    add(out, nub_scratch_gva(l, l->stack_off), nub_scratch_gpa(l, l->stack_off), l->stack_size, rw);
    add(out, nub_scratch_gva(l, l->exn_off), nub_scratch_gpa(l, l->exn_off),
        l->scratch_size - l->exn_off, rw);
}

/* Page-table pages needed for the mappings plus a table area of `pt_pages` at pt_off. */
static int bound_with_tables(const struct nub_layout *l, const struct mapping_list *ml,
                             uint64_t pt_pages, uint64_t *pages)
{
    struct nub_vmem_range r[MAX_MAPPINGS + 1];
    size_t n = 0;
    for (size_t i = 0; i < ml->n; i++)
        r[n++] = (struct nub_vmem_range){ml->m[i].va, ml->m[i].len};
    r[n++] = (struct nub_vmem_range){nub_snap_gva(l->pt_off), pt_pages * NUB_PAGE_SIZE};
    return nub_vmem_tables_bound(r, n, pages);
}

static nub_status size_tables(struct nub_layout *l, struct nub_error *err)
{
    struct mapping_list ml;
    collect(l, NULL, NUB_MEM_READ, &ml);
    /* ELF segments lie inside [0, image_size): bound them as one range. */
    if (l->image_size != 0)
        add(&ml, NUB_KERNEL_BASE, NUB_BASE_GPA, l->image_size, NUB_VMEM_R);
    uint64_t pt_pages = 1, need = 0;
    for (int iter = 0; iter < 8; iter++) {
        if (bound_with_tables(l, &ml, pt_pages, &need) != NUB_VMEM_OK)
            return nub_err_set(err, NUB_E_LAYOUT, "cannot size the page tables");
        if (need <= pt_pages)
            break;
        pt_pages = need;
    }
    l->pt_size = pt_pages * NUB_PAGE_SIZE;
    return NUB_OK;
}

static nub_status layout_scratch(const struct nub_config *cfg, struct nub_layout *l,
                                 struct nub_error *err)
{
    const uint64_t limit = NUB_MAX_REGIONS_SIZE;
    uint64_t need;
    if (!nub_add3_u64(cfg->input_size, cfg->output_size, cfg->stack_size, &need) ||
        !nub_add_u64(need, NUB_SCRATCH_FIXED_SIZE, &need) || need > limit)
        return nub_err_set(err, NUB_E_LAYOUT,
                           "config.input_size + output_size + stack_size + %llu fixed bytes exceed the "
                           "%llu bytes of the guest address space",
                           (unsigned long long)NUB_SCRATCH_FIXED_SIZE, (unsigned long long)limit);
    uint64_t size = cfg->scratch_size ? cfg->scratch_size : need;
    if (size > limit || size % NUB_PAGE_SIZE != 0)
        return nub_err_set(err, NUB_E_LAYOUT, "config.scratch_size = %llu is not a page multiple within the %llu-byte address space",
                           (unsigned long long)size, (unsigned long long)limit);
    if (size < need)
        return nub_err_set(err, NUB_E_LAYOUT,
                           "config.scratch_size = %llu is too small: input, output, stack, "
                           "guards, exception stack and top page need %llu",
                           (unsigned long long)size, (unsigned long long)need);
    /* From here every offset is below size <= limit: no sum wraps. */
    l->scratch_size = size;
    l->input_off = size - need;
    l->input_size = cfg->input_size;
    l->output_off = l->input_off + cfg->input_size;
    l->output_size = cfg->output_size;
    l->stack_off = l->output_off + cfg->output_size + NUB_PAGE_SIZE;
    l->stack_size = cfg->stack_size;
    l->exn_off = l->stack_off + cfg->stack_size + NUB_PAGE_SIZE;
    l->top_off = size - NUB_PAGE_SIZE;
    return NUB_OK;
}

nub_status nub_layout_compute(const struct nub_config *cfg, uint64_t image_size,
                              uint64_t init_len, struct nub_layout *l, struct nub_error *err)
{
    const uint64_t limit = NUB_MAX_REGIONS_SIZE;
    memset(l, 0, sizeof *l);
    if (image_size > limit || init_len > limit)
        return nub_err_set(err, NUB_E_LAYOUT, "%s is larger than the guest address space",
                           image_size > limit ? "ELF image" : "init data");
    nub_status rc = layout_scratch(cfg, l, err);
    if (rc != NUB_OK)
        return rc;
    uint64_t before_pt;
    l->image_size = image_size;
    l->heap_size = cfg->heap_size;
    l->init_size = init_len;
    if (!nub_align_up_u64(image_size, NUB_PAGE_SIZE, &l->peb_off) ||
        !nub_align_up_u64(init_len, NUB_PAGE_SIZE, &l->init_alloc) ||
        !nub_add_u64(l->peb_off, NUB_PAGE_SIZE, &l->heap_off) ||
        !nub_add_u64(l->heap_off, l->heap_size, &l->init_off) ||
        !nub_add_u64(l->init_off, l->init_alloc, &l->pt_off) ||
        !nub_add_u64(l->pt_off, l->scratch_size, &before_pt) || before_pt > limit)
        goto too_big;
    if ((rc = size_tables(l, err)) != NUB_OK)
        return rc;
    if (!nub_add_u64(l->pt_off, l->pt_size, &l->snapshot_size) ||
        l->snapshot_size > limit - l->scratch_size)
        goto too_big;
    return NUB_OK;
too_big:
    return nub_err_set(err, NUB_E_LAYOUT,
                       "image (%llu) + heap (%llu) + init data (%llu) + scratch (%llu) + page "
                       "tables exceed the %llu bytes of the guest's top 2 GiB",
                       (unsigned long long)image_size, (unsigned long long)cfg->heap_size,
                       (unsigned long long)init_len, (unsigned long long)l->scratch_size,
                       (unsigned long long)limit);
}

nub_status nub_layout_build_tables(const struct nub_layout *l, const struct nub_elf_image *img,
                                   uint32_t init_perms, uint8_t *snapshot, uint64_t *cr3,
                                   struct nub_error *err)
{
    struct nub_vmem_buf buf;
    uint64_t root;
    struct mapping_list ml;
    int rc = nub_vmem_buf_init(&buf, snapshot + l->pt_off, nub_snap_gpa(l->pt_off), l->pt_size, &root);
    if (rc != NUB_VMEM_OK)
        goto fail;
    struct nub_vmem_ops ops = nub_vmem_buf_ops(&buf, root);
    collect(l, img, init_perms, &ml);
    add(&ml, nub_snap_gva(l->pt_off), nub_snap_gpa(l->pt_off), l->pt_size, NUB_VMEM_R | NUB_VMEM_W);
    for (size_t i = 0; i < ml.n; i++) {
        rc = nub_vmem_map(&ops, ml.m[i].va, ml.m[i].pa, ml.m[i].len, ml.m[i].flags);
        if (rc != NUB_VMEM_OK)
            goto fail;
    }
    *cr3 = root;
    return NUB_OK;
fail:
    return nub_err_set(err, NUB_E_LAYOUT, "building page tables failed: %s", nub_vmem_err_name(rc));
}
