/* libFuzzer target: config normalisation (nub_config_normalise) and the layout computed from a normalised config, at the limits. */
#include "fuzz.h"

#include "internal.h"

static uint64_t round_up_page(uint64_t v)
{
    return (v + NUB_PAGE_SIZE - 1) & ~(NUB_PAGE_SIZE - 1);
}

/* A normalised size: the default for 0, else the value rounded up to a page, inside the address space. */
static void check_size(const char *name, uint64_t in, uint64_t out, uint64_t dflt)
{
    uint64_t want = in == 0 ? round_up_page(dflt) : round_up_page(in);
    FUZZ_CHECK(out == want && out != 0 && out <= NUB_MAX_REGIONS_SIZE, "%s: %llu -> %llu", name,
               (unsigned long long)in, (unsigned long long)out);
}

static void check_normalised(const struct nub_config *in, const struct nub_config *out)
{
    struct nub_config d, again;
    struct nub_error err;
    nub_config_default(&d);
    check_size("heap_size", in->heap_size, out->heap_size, d.heap_size);
    check_size("stack_size", in->stack_size, out->stack_size, d.stack_size);
    check_size("input_size", in->input_size, out->input_size, d.input_size);
    check_size("output_size", in->output_size, out->output_size, d.output_size);
    FUZZ_CHECK(out->scratch_size == (in->scratch_size ? round_up_page(in->scratch_size) : 0) &&
                   (in->scratch_size == 0 || out->scratch_size >= in->scratch_size),
               "scratch_size %llu -> %llu", (unsigned long long)in->scratch_size, (unsigned long long)out->scratch_size);
    FUZZ_CHECK(out->max_image_size == (in->max_image_size ? in->max_image_size : d.max_image_size), "max_image_size");
    FUZZ_CHECK(out->max_guest_log_level <= NUB_LOG_LEVEL_TRACE && out->max_guest_log_level == in->max_guest_log_level,
               "log level %u", out->max_guest_log_level);
    FUZZ_CHECK(out->backend == in->backend && (out->backend == NUB_BACKEND_AUTO || out->backend == NUB_BACKEND_KVM ||
                                               out->backend == NUB_BACKEND_EMU),
               "backend %d", (int)out->backend);
    FUZZ_CHECK(out->call_timeout_ms == in->call_timeout_ms, "call_timeout_ms changed");
    FUZZ_CHECK(nub_config_normalise(out, &again, &err) == NUB_OK && memcmp(&again, out, sizeof again) == 0,
               "normalising twice changes the config");
}

/* Every part of both regions in order, disjoint, and both regions inside the guest's top 2 GiB. */
static void check_layout(const struct nub_config *cfg, const struct nub_layout *l, uint64_t image_size, uint64_t init_len)
{
    const uint64_t limit = NUB_MAX_REGIONS_SIZE;
    FUZZ_CHECK(l->scratch_size <= limit && l->snapshot_size <= limit - l->scratch_size,
               "snapshot %llu + scratch %llu exceed %llu", (unsigned long long)l->snapshot_size,
               (unsigned long long)l->scratch_size, (unsigned long long)limit);
    FUZZ_CHECK(l->image_size == image_size && l->peb_off >= image_size && l->heap_off >= l->peb_off + NUB_PAGE_SIZE &&
                   l->heap_size == cfg->heap_size && l->init_off >= l->heap_off + l->heap_size &&
                   l->init_size == init_len && l->init_alloc >= init_len &&
                   l->pt_off >= l->init_off + l->init_alloc && l->pt_size > 0 &&
                   l->snapshot_size >= l->pt_off + l->pt_size,
               "snapshot region parts out of order");
    FUZZ_CHECK(l->input_off + l->input_size <= l->output_off && l->output_off + l->output_size <= l->stack_off &&
                   l->stack_off + l->stack_size <= l->exn_off && l->exn_off < l->top_off &&
                   l->top_off + NUB_PAGE_SIZE == l->scratch_size,
               "scratch region parts out of order");
    FUZZ_CHECK(l->input_size == cfg->input_size && l->output_size == cfg->output_size && l->stack_size == cfg->stack_size,
               "scratch sizes differ from the config");
}

/* Input: a struct nub_config (zero-padded), then u64 image size and init length. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nub_config in, out;
    struct nub_error err;
    struct nub_layout lay;
    memset(&in, 0, sizeof in);
    memcpy(&in, data, size < sizeof in ? size : sizeof in);
    struct fuzz_tail t = {data, size};
    uint64_t image_size = fuzz_tail_u64(&t) >> (fuzz_tail_u8(&t) % 64);
    uint64_t init_len = fuzz_tail_u64(&t) >> (fuzz_tail_u8(&t) % 64);
    nub_status rc = nub_config_normalise(&in, &out, &err);
    if (rc != NUB_OK) {
        FUZZ_CHECK((rc == NUB_E_LAYOUT || rc == NUB_E_INVALID) && err.code == rc && err.message[0] != '\0',
                   "normalise failed with %d (%s)", rc, err.message);
        return 0;
    }
    check_normalised(&in, &out);
    rc = nub_layout_compute(&out, image_size, init_len, &lay, &err);
    if (rc != NUB_OK) {
        FUZZ_CHECK(rc == NUB_E_LAYOUT && err.message[0] != '\0', "layout failed with %d", rc);
        return 0;
    }
    check_layout(&out, &lay, image_size, init_len);
    return 0;
}
