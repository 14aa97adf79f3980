/* libFuzzer target: the ELF loader (parse, layout, load) under the default image limit, the largest one a caller can pass, and config values taken from the input. */
#include "fuzz.h"

#include "internal.h"

/* Images up to this size are really loaded into an exactly sized heap buffer (ASan-checked). */
#define LOAD_LIMIT (8u << 20)

/* A config value from the tail: a u64 shifted right by a tail byte, so small values are common. */
static uint64_t tail_size(struct fuzz_tail *t)
{
    uint64_t v = fuzz_tail_u64(t);
    return v >> (fuzz_tail_u8(t) % 64);
}

static void config_from_tail(const uint8_t *data, size_t size, struct nub_config *cfg)
{
    struct fuzz_tail t = {data, size};
    memset(cfg, 0, sizeof *cfg);
    cfg->heap_size = tail_size(&t);
    cfg->stack_size = tail_size(&t);
    cfg->input_size = tail_size(&t);
    cfg->output_size = tail_size(&t);
    cfg->scratch_size = tail_size(&t);
    cfg->max_image_size = fuzz_tail_u8(&t) & 1 ? UINT64_MAX : tail_size(&t);
    cfg->backend = NUB_BACKEND_EMU;
}

/* A property of the image parsed under the config named `what`. */
#define ELF_CHECK(cond, fmt, ...) FUZZ_CHECK(cond, "config %s: " fmt, what, __VA_ARGS__)

/* What a parsed image promises nub_elf_load() and the page-table builder. */
static void check_image(const struct nub_elf_image *img, const uint8_t *file, size_t len, uint64_t max_image,
                        const char *what)
{
    ELF_CHECK(img->nsegs >= 1 && img->nsegs <= NUB_ELF_MAX_SEGMENTS, "%zu segments", img->nsegs);
    ELF_CHECK(img->file == file && img->file_len == len, "%s", "image does not refer to the file");
    /* Segments end within the limit; the image is that end rounded up to a page. */
    ELF_CHECK((img->image_size <= max_image || img->image_size - max_image < NUB_PAGE_SIZE) &&
                   img->image_size % NUB_PAGE_SIZE == 0,
               "image_size %llu, limit %llu", (unsigned long long)img->image_size, (unsigned long long)max_image);
    int entry_ok = 0;
    for (size_t i = 0; i < img->nsegs; i++) {
        const struct nub_elf_segment *s = &img->segs[i];
        ELF_CHECK(s->vaddr >= NUB_KERNEL_BASE && s->vaddr % NUB_PAGE_SIZE == 0, "segment %zu vaddr", i);
        uint64_t rel = s->vaddr - NUB_KERNEL_BASE;
        ELF_CHECK(s->memsz > 0 && s->memsz % NUB_PAGE_SIZE == 0 && rel <= img->image_size &&
                       s->memsz <= img->image_size - rel,
                   "segment %zu [%llu, +%llu) outside the image of %llu bytes", i, (unsigned long long)rel,
                   (unsigned long long)s->memsz, (unsigned long long)img->image_size);
        ELF_CHECK(s->copy_at <= s->memsz && s->filesz <= s->memsz - s->copy_at,
                   "segment %zu copies %llu bytes at %llu into %llu", i, (unsigned long long)s->filesz,
                   (unsigned long long)s->copy_at, (unsigned long long)s->memsz);
        ELF_CHECK(s->file_off <= len && s->filesz <= len - s->file_off, "segment %zu reads past the file", i);
        ELF_CHECK((s->perms & (NUB_MEM_WRITE | NUB_MEM_EXEC)) != (NUB_MEM_WRITE | NUB_MEM_EXEC), "W+X segment %zu", i);
        for (size_t j = 0; j < i; j++)
            ELF_CHECK(img->segs[j].vaddr + img->segs[j].memsz <= s->vaddr || s->vaddr + s->memsz <= img->segs[j].vaddr,
                       "segments %zu and %zu overlap", j, i);
        if ((s->perms & NUB_MEM_EXEC) && img->entry >= s->vaddr && img->entry - s->vaddr < s->memsz)
            entry_ok = 1;
    }
    ELF_CHECK(entry_ok, "entry 0x%llx not in an executable segment", (unsigned long long)img->entry);
}

/* The sandbox-creation path up to guest memory: normalise, parse, lay out, load. */
static void load(const uint8_t *file, size_t len, const struct nub_config *in, int must_normalise,
                 const char *what)
{
    struct nub_config cfg;
    struct nub_error err;
    struct nub_elf_image img;
    struct nub_layout lay;
    nub_status rc = nub_config_normalise(in, &cfg, &err);
    if (rc != NUB_OK) {
        FUZZ_CHECK(!must_normalise, "config %s refused: %s", what, err.message);
        return;
    }
    rc = nub_elf_parse(file, len, cfg.max_image_size, &img, &err);
    if (rc != NUB_OK) {
        FUZZ_CHECK(rc == NUB_E_ELF && err.code == NUB_E_ELF && err.message[0] != '\0', "parse error %d", rc);
        return;
    }
    check_image(&img, file, len, cfg.max_image_size, what);
    if (nub_layout_compute(&cfg, img.image_size, 0, &lay, &err) != NUB_OK)
        return;
    FUZZ_CHECK(lay.snapshot_size >= img.image_size && lay.peb_off >= img.image_size, "layout smaller than the image");
    if (img.image_size > LOAD_LIMIT)
        return;
    uint8_t *dst = calloc(1, img.image_size ? img.image_size : 1);
    FUZZ_CHECK(dst != NULL, "calloc %llu", (unsigned long long)img.image_size);
    nub_elf_load(&img, dst);
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nub_config cfg;
    uint8_t *file = fuzz_copy(data, size);
    nub_config_default(&cfg);
    cfg.backend = NUB_BACKEND_EMU;
    load(file, size, &cfg, 1, "default");
    cfg.max_image_size = UINT64_MAX;
    load(file, size, &cfg, 0, "max_image_size=UINT64_MAX");
    config_from_tail(data, size, &cfg);
    load(file, size, &cfg, 0, "from the input's tail");
    free(file);
    return 0;
}
