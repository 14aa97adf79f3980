/* libFuzzer target: the strict cap decoder and nub_cap_hash_encoded, with the property that whatever decodes re-encodes (decoded and rebuilt) to the same bytes and hash. */
#include "fuzz.h"

#include "nub/cap.h"

#define HSZ NUB_CAP_HASH_LEN

/* C arrays holding a decoded cap's lists, for rebuilding it with the builders. */
struct rebuilt {
    struct nub_cap cap;
    struct nub_cap_slot *slots;
    uint32_t *jumps;
    struct nub_cap_endpoint *eps;
    struct nub_cap_mapping *maps;
    struct nub_cap_slot *init;
    struct nub_cap_overlay *ovs;
};

static void *array(uint32_t n, size_t each)
{
    void *p = calloc(n ? n : 1, each);
    FUZZ_CHECK(p != NULL, "calloc of %u entries", n);
    return p;
}

static void rebuild_cnode(const struct nub_cap *d, struct rebuilt *r)
{
    uint32_t n = d->cnode.slots.count;
    r->slots = array(n, sizeof *r->slots);
    for (uint32_t i = 0; i < n; i++)
        FUZZ_CHECK(nub_cap_cnode_slot(d, i, &r->slots[i].index, r->slots[i].hash) == NUB_CAP_OK, "slot %u", i);
    nub_cap_cnode(&r->cap, d->cnode.size_log, r->slots, n);
}

static void rebuild_image(const struct nub_cap *d, struct rebuilt *r)
{
    const struct nub_cap_image_body *b = &d->image;
    struct nub_cap_cursor cur;
    r->jumps = array(b->jump_table.count, sizeof *r->jumps);
    r->eps = array(b->endpoints.count, sizeof *r->eps);
    r->maps = array(b->mappings.count, sizeof *r->maps);
    r->init = array(b->init_slots.count, sizeof *r->init);
    for (uint32_t i = 0; i < b->jump_table.count; i++)
        FUZZ_CHECK(nub_cap_image_jump(d, i, &r->jumps[i]) == NUB_CAP_OK, "jump %u", i);
    for (uint32_t i = 0; i < b->endpoints.count; i++)
        FUZZ_CHECK(nub_cap_image_endpoint(d, i, &r->eps[i]) == NUB_CAP_OK, "endpoint %u", i);
    for (uint32_t i = 0; i < b->init_slots.count; i++)
        FUZZ_CHECK(nub_cap_image_init_slot(d, i, &r->init[i].index, r->init[i].hash) == NUB_CAP_OK, "init %u", i);
    nub_cap_cursor_init(&cur, &b->mappings);
    for (uint32_t i = 0; i < b->mappings.count; i++)
        FUZZ_CHECK(nub_cap_next_mapping(&cur, &r->maps[i]) == 1, "mapping %u", i);
    FUZZ_CHECK(nub_cap_next_mapping(&cur, &r->maps[0]) == 0, "cursor runs past the mappings");
    if (b->mappings.count > 0) {
        struct nub_cap_mapping last;
        FUZZ_CHECK(nub_cap_image_mapping(d, b->mappings.count - 1, &last) == NUB_CAP_OK &&
                       memcmp(&last, &r->maps[b->mappings.count - 1], sizeof last) == 0,
                   "indexed mapping differs from the cursor's");
    }
    nub_cap_image(&r->cap);
    nub_cap_image_code(&r->cap, b->code.ptr, b->code.len);
    nub_cap_image_bitmask(&r->cap, b->bitmask.ptr, b->bitmask.len);
    nub_cap_image_jump_table(&r->cap, r->jumps, b->jump_table.count);
    nub_cap_image_endpoints(&r->cap, r->eps, b->endpoints.count);
    nub_cap_image_mappings(&r->cap, r->maps, b->mappings.count);
    nub_cap_image_init_slots(&r->cap, r->init, b->init_slots.count);
}

static void rebuild_instance(const struct nub_cap *d, struct rebuilt *r)
{
    const struct nub_cap_instance_body *b = &d->instance;
    struct nub_cap_cursor cur;
    r->ovs = array(b->overlays.count, sizeof *r->ovs);
    nub_cap_cursor_init(&cur, &b->overlays);
    for (uint32_t i = 0; i < b->overlays.count; i++)
        FUZZ_CHECK(nub_cap_next_overlay(&cur, &r->ovs[i]) == 1, "overlay %u", i);
    nub_cap_instance(&r->cap, b->image, b->root, b->mem_size, b->pc, b->gas);
    nub_cap_instance_regs(&r->cap, b->regs);
    nub_cap_instance_overlays(&r->cap, r->ovs, b->overlays.count);
}

/* Build the same cap from plain C values read through the accessors. */
static void rebuild(const struct nub_cap *d, struct rebuilt *r)
{
    memset(r, 0, sizeof *r);
    switch (d->kind) {
    case NUB_CAP_DATA: nub_cap_data(&r->cap, d->data.bytes.ptr, d->data.bytes.len); break;
    case NUB_CAP_CNODE: rebuild_cnode(d, r); break;
    case NUB_CAP_IMAGE: rebuild_image(d, r); break;
    case NUB_CAP_INSTANCE: rebuild_instance(d, r); break;
    default: FUZZ_CHECK(0, "decoded an unknown kind %u", d->kind);
    }
}

static void free_rebuilt(struct rebuilt *r)
{
    free(r->slots);
    free(r->jumps);
    free(r->eps);
    free(r->maps);
    free(r->init);
    free(r->ovs);
}

/* c encodes to exactly enc[0, n) and hashes to `want`. */
static void check_encodes_to(const struct nub_cap *c, const uint8_t *enc, size_t n,
                             const uint8_t want[HSZ], const char *what)
{
    size_t len = 0;
    uint8_t h[HSZ];
    uint8_t *out = malloc(n ? n : 1);
    FUZZ_CHECK(out != NULL, "malloc");
    FUZZ_CHECK(nub_cap_validate(c) == NUB_CAP_OK, "%s cap fails validation", what);
    FUZZ_CHECK(nub_cap_encoded_len(c, &len) == NUB_CAP_OK && len == n, "%s: encoded_len %zu, input %zu", what, len, n);
    FUZZ_CHECK(nub_cap_encode(c, out, n, &len) == NUB_CAP_OK && len == n && memcmp(out, enc, n) == 0,
               "%s cap does not re-encode to the input", what);
    if (n > 0)
        FUZZ_CHECK(nub_cap_encode(c, out, n - 1, &len) == NUB_CAP_E_NOSPACE && len == n,
                   "%s: encode into one byte less is not NOSPACE", what);
    FUZZ_CHECK(nub_cap_hash(c, h) == NUB_CAP_OK && memcmp(h, want, HSZ) == 0,
               "%s cap hashes differently from nub_cap_hash_encoded", what);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nub_cap c;
    uint8_t h[HSZ], untouched[HSZ];
    uint8_t *enc = fuzz_copy(data, size);
    int rc = nub_cap_decode(enc, size, &c);
    FUZZ_CHECK(rc <= 0 && rc >= NUB_CAP_E_NOSPACE && rc != NUB_CAP_E_NOSPACE, "decode returned %d", rc);
    memset(h, 0xa5, HSZ);
    memcpy(untouched, h, HSZ);
    int hrc = nub_cap_hash_encoded(enc, size, h);
    FUZZ_CHECK(hrc == rc, "hash_encoded returned %d, decode %d", hrc, rc);
    if (rc != NUB_CAP_OK) {
        FUZZ_CHECK(memcmp(h, untouched, HSZ) == 0, "hash_encoded wrote its output on error %d", rc);
        FUZZ_CHECK(strlen(nub_cap_strerror(rc)) > 0, "unnamed error");
        free(enc);
        return 0;
    }
    check_encodes_to(&c, enc, size, h, "decoded");
    struct rebuilt r;
    rebuild(&c, &r);
    check_encodes_to(&r.cap, enc, size, h, "rebuilt");
    free_rebuilt(&r);
    free(enc);
    return 0;
}
