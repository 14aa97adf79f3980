/* Caps: builders, accessors, canonical encoder, strict zero-copy decoder and content hashing (docs/design.md, docs/caps.md). */
#include "nub/cap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "nub/hash.h"

#define HS NUB_CAP_HASH_LEN

/* Domain-separation tags (docs/caps.md, "Hashing"). */
#define TAG_DATA_LEAF 0x00u
#define TAG_NODE 0x01u
#define TAG_CNODE_EMPTY 0x02u
#define TAG_CNODE_FILLED 0x03u
#define TAG_INSTANCE 0x10u
#define TAG_IMAGE 0x20u
#define TAG_DATA 0x30u
#define TAG_CNODE 0x40u

/* Encoded sizes of the fixed parts of the variable-size records. */
#define MAPPING_HEAD_SIZE 20u /* u64 start, u64 size, u32 path_len */
#define OVERLAY_HEAD_SIZE 12u /* u64 start, u32 len */

/* Deepest DATA merkle tree: 2^64 bytes are 2^52 pages; 64 levels is ample. */
#define MERKLE_MAX_DEPTH 64u

/* Image initial slots may use any u32 slot number. */
#define ANY_SLOT ((uint64_t)1 << 32)

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static void h256(uint8_t out[HS], const void *in, size_t len)
{
    nub_blake2b_256(out, in, len);
}

/* node = H(0x01 || l || r). out may alias l or r. */
static void hash_node(uint8_t out[HS], const uint8_t l[HS], const uint8_t r[HS])
{
    uint8_t buf[1 + 2 * HS];
    buf[0] = TAG_NODE;
    nub_bytes_copy(buf + 1, l, HS);
    nub_bytes_copy(buf + 1 + HS, r, HS);
    h256(out, buf, sizeof buf);
}

static void h_start(nub_blake2b_state *s, uint8_t tag)
{
    nub_blake2b_init(s, HS);
    nub_blake2b_update(s, &tag, 1);
}

static void list_set(struct nub_cap_list *l, const void *items, uint32_t count)
{
    l->items = count ? items : NULL;
    l->enc = NULL;
    l->enc_len = 0;
    l->count = count;
}

static void bytes_set(struct nub_cap_bytes *b, const void *p, uint64_t len)
{
    b->ptr = p;
    b->len = len;
}

/* ------------------------------------------------------------------------ */
/* Builders                                                                  */
/* ------------------------------------------------------------------------ */

void nub_cap_data(struct nub_cap *c, const void *bytes, uint64_t len)
{
    nub_bytes_zero(c, sizeof *c);
    c->kind = NUB_CAP_DATA;
    bytes_set(&c->data.bytes, bytes, len);
}

void nub_cap_cnode(struct nub_cap *c, uint8_t size_log, const struct nub_cap_slot *slots,
                   uint32_t count)
{
    nub_bytes_zero(c, sizeof *c);
    c->kind = NUB_CAP_CNODE;
    c->cnode.size_log = size_log;
    list_set(&c->cnode.slots, slots, count);
}

void nub_cap_image(struct nub_cap *c)
{
    nub_bytes_zero(c, sizeof *c);
    c->kind = NUB_CAP_IMAGE;
}

void nub_cap_image_code(struct nub_cap *c, const void *code, uint64_t len)
{
    bytes_set(&c->image.code, code, len);
}

void nub_cap_image_bitmask(struct nub_cap *c, const void *bitmask, uint64_t len)
{
    bytes_set(&c->image.bitmask, bitmask, len);
}

void nub_cap_image_jump_table(struct nub_cap *c, const uint32_t *targets, uint32_t count)
{
    list_set(&c->image.jump_table, targets, count);
}

void nub_cap_image_endpoints(struct nub_cap *c, const struct nub_cap_endpoint *eps, uint32_t count)
{
    list_set(&c->image.endpoints, eps, count);
}

void nub_cap_image_mappings(struct nub_cap *c, const struct nub_cap_mapping *maps, uint32_t count)
{
    list_set(&c->image.mappings, maps, count);
}

void nub_cap_image_init_slots(struct nub_cap *c, const struct nub_cap_slot *slots, uint32_t count)
{
    list_set(&c->image.init_slots, slots, count);
}

void nub_cap_instance(struct nub_cap *c, const uint8_t image[NUB_CAP_HASH_LEN],
                      const uint8_t root[NUB_CAP_HASH_LEN], uint64_t mem_size, uint64_t pc,
                      uint64_t gas)
{
    nub_bytes_zero(c, sizeof *c);
    c->kind = NUB_CAP_INSTANCE;
    nub_bytes_copy(c->instance.image, image, HS);
    nub_bytes_copy(c->instance.root, root, HS);
    c->instance.mem_size = mem_size;
    c->instance.pc = pc;
    c->instance.gas = gas;
}

void nub_cap_instance_regs(struct nub_cap *c, const uint64_t regs[NUB_CAP_REGS])
{
    for (unsigned i = 0; i < NUB_CAP_REGS; i++)
        c->instance.regs[i] = regs[i];
}

void nub_cap_instance_overlays(struct nub_cap *c, const struct nub_cap_overlay *ovs, uint32_t count)
{
    list_set(&c->instance.overlays, ovs, count);
}

/* ------------------------------------------------------------------------ */
/* List entry access (built items or decoded records)                        */
/* ------------------------------------------------------------------------ */

static void slot_at(const struct nub_cap_list *l, uint32_t i, uint32_t *index, uint8_t *hash)
{
    if (l->items != NULL) {
        const struct nub_cap_slot *s = (const struct nub_cap_slot *)l->items + i;
        *index = s->index;
        if (hash != NULL)
            nub_bytes_copy(hash, s->hash, HS);
        return;
    }
    const uint8_t *p = l->enc + (size_t)i * NUB_CAP_SLOT_ENC_SIZE;
    *index = nub_load_le32(p);
    if (hash != NULL)
        nub_bytes_copy(hash, p + 4, HS);
}

/* Pointer to the child hash of slot i, without copying. */
static const uint8_t *slot_hash_ptr(const struct nub_cap_list *l, uint32_t i)
{
    if (l->items != NULL)
        return ((const struct nub_cap_slot *)l->items)[i].hash;
    return l->enc + (size_t)i * NUB_CAP_SLOT_ENC_SIZE + 4;
}

static uint32_t jump_at(const struct nub_cap_list *l, uint32_t i)
{
    if (l->items != NULL)
        return ((const uint32_t *)l->items)[i];
    return nub_load_le32(l->enc + (size_t)i * 4);
}

static void endpoint_at(const struct nub_cap_list *l, uint32_t i, struct nub_cap_endpoint *ep)
{
    if (l->items != NULL) {
        *ep = ((const struct nub_cap_endpoint *)l->items)[i];
        return;
    }
    const uint8_t *p = l->enc + (size_t)i * NUB_CAP_ENDPOINT_ENC_SIZE;
    ep->pc = nub_load_le64(p);
    ep->stack_top = nub_load_le64(p + 8);
    ep->arg_slot = nub_load_le32(p + 16);
    ep->arg_size = nub_load_le32(p + 20);
    for (unsigned r = 0; r < NUB_CAP_REGS; r++)
        ep->regs[r] = nub_load_le64(p + 24 + 8 * r);
}

void nub_cap_cursor_init(struct nub_cap_cursor *cur, const struct nub_cap_list *list)
{
    cur->list = list;
    cur->next = 0;
    cur->off = 0;
}

int nub_cap_next_mapping(struct nub_cap_cursor *cur, struct nub_cap_mapping *m)
{
    const struct nub_cap_list *l = cur->list;
    if (cur->next >= l->count)
        return 0;
    if (l->items != NULL) {
        *m = ((const struct nub_cap_mapping *)l->items)[cur->next++];
        return 1;
    }
    const uint8_t *p = l->enc + cur->off;
    nub_bytes_zero(m, sizeof *m);
    m->start = nub_load_le64(p);
    m->size = nub_load_le64(p + 8);
    m->path_len = nub_load_le32(p + 16);
    for (uint32_t k = 0; k < m->path_len && k < NUB_CAP_PATH_MAX; k++)
        m->path[k] = nub_load_le32(p + MAPPING_HEAD_SIZE + 4 * k);
    cur->off += MAPPING_HEAD_SIZE + 4 * (size_t)m->path_len;
    cur->next++;
    return 1;
}

int nub_cap_next_overlay(struct nub_cap_cursor *cur, struct nub_cap_overlay *o)
{
    const struct nub_cap_list *l = cur->list;
    if (cur->next >= l->count)
        return 0;
    if (l->items != NULL) {
        *o = ((const struct nub_cap_overlay *)l->items)[cur->next++];
        return 1;
    }
    const uint8_t *p = l->enc + cur->off;
    o->start = nub_load_le64(p);
    o->len = nub_load_le32(p + 8);
    o->bytes = p + OVERLAY_HEAD_SIZE;
    cur->off += OVERLAY_HEAD_SIZE + (size_t)o->len;
    cur->next++;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Public accessors                                                          */
/* ------------------------------------------------------------------------ */

static bool entry_ok(const struct nub_cap *c, uint8_t kind, const struct nub_cap_list *l,
                     uint32_t i)
{
    return c != NULL && c->kind == kind && i < l->count;
}

int nub_cap_cnode_slot(const struct nub_cap *c, uint32_t i, uint32_t *index,
                       uint8_t hash[NUB_CAP_HASH_LEN])
{
    if (c == NULL || index == NULL || !entry_ok(c, NUB_CAP_CNODE, &c->cnode.slots, i))
        return NUB_CAP_E_ARG;
    slot_at(&c->cnode.slots, i, index, hash);
    return NUB_CAP_OK;
}

int nub_cap_image_jump(const struct nub_cap *c, uint32_t i, uint32_t *target)
{
    if (c == NULL || target == NULL || !entry_ok(c, NUB_CAP_IMAGE, &c->image.jump_table, i))
        return NUB_CAP_E_ARG;
    *target = jump_at(&c->image.jump_table, i);
    return NUB_CAP_OK;
}

int nub_cap_image_endpoint(const struct nub_cap *c, uint32_t i, struct nub_cap_endpoint *ep)
{
    if (c == NULL || ep == NULL || !entry_ok(c, NUB_CAP_IMAGE, &c->image.endpoints, i))
        return NUB_CAP_E_ARG;
    endpoint_at(&c->image.endpoints, i, ep);
    return NUB_CAP_OK;
}

int nub_cap_image_init_slot(const struct nub_cap *c, uint32_t i, uint32_t *slot,
                            uint8_t hash[NUB_CAP_HASH_LEN])
{
    if (c == NULL || slot == NULL || !entry_ok(c, NUB_CAP_IMAGE, &c->image.init_slots, i))
        return NUB_CAP_E_ARG;
    slot_at(&c->image.init_slots, i, slot, hash);
    return NUB_CAP_OK;
}

int nub_cap_image_mapping(const struct nub_cap *c, uint32_t i, struct nub_cap_mapping *m)
{
    if (c == NULL || m == NULL || !entry_ok(c, NUB_CAP_IMAGE, &c->image.mappings, i))
        return NUB_CAP_E_ARG;
    struct nub_cap_cursor cur;
    nub_cap_cursor_init(&cur, &c->image.mappings);
    while (nub_cap_next_mapping(&cur, m) && cur.next <= i)
        ;
    return NUB_CAP_OK;
}

int nub_cap_instance_overlay(const struct nub_cap *c, uint32_t i, struct nub_cap_overlay *o)
{
    if (c == NULL || o == NULL || !entry_ok(c, NUB_CAP_INSTANCE, &c->instance.overlays, i))
        return NUB_CAP_E_ARG;
    struct nub_cap_cursor cur;
    nub_cap_cursor_init(&cur, &c->instance.overlays);
    while (nub_cap_next_overlay(&cur, o) && cur.next <= i)
        ;
    return NUB_CAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

static int check_bytes(const struct nub_cap_bytes *b)
{
    if (b->len > NUB_CAP_BYTES_MAX)
        return NUB_CAP_E_TOO_LONG;
    if (b->ptr == NULL && b->len != 0)
        return NUB_CAP_E_ARG;
    return NUB_CAP_OK;
}

static int check_list(const struct nub_cap_list *l)
{
    if (l->count != 0 && l->items == NULL && l->enc == NULL)
        return NUB_CAP_E_ARG;
    return NUB_CAP_OK;
}

/* Slots strictly ascending, every index below limit. */
static int check_slots(const struct nub_cap_list *l, uint64_t limit)
{
    int rc = check_list(l);
    if (rc != NUB_CAP_OK)
        return rc;
    uint32_t prev = 0;
    for (uint32_t i = 0; i < l->count; i++) {
        uint32_t idx;
        slot_at(l, i, &idx, NULL);
        if (i > 0 && idx == prev)
            return NUB_CAP_E_SLOT_DUP;
        if (i > 0 && idx < prev)
            return NUB_CAP_E_SLOT_UNSORTED;
        if (idx >= limit)
            return NUB_CAP_E_SLOT_RANGE;
        prev = idx;
    }
    return NUB_CAP_OK;
}

static int check_cnode(const struct nub_cap_cnode_body *n)
{
    if (n->size_log > NUB_CAP_SIZE_LOG_MAX)
        return NUB_CAP_E_SIZE_LOG;
    return check_slots(&n->slots, (uint64_t)1 << n->size_log);
}

static int check_mappings(const struct nub_cap_list *l)
{
    int rc = check_list(l);
    if (rc != NUB_CAP_OK)
        return rc;
    struct nub_cap_cursor cur;
    struct nub_cap_mapping m;
    nub_cap_cursor_init(&cur, l);
    while (nub_cap_next_mapping(&cur, &m))
        if (m.path_len > NUB_CAP_PATH_MAX)
            return NUB_CAP_E_PATH_LEN;
    return NUB_CAP_OK;
}

static int check_image(const struct nub_cap_image_body *im)
{
    int rc = check_bytes(&im->code);
    if (rc == NUB_CAP_OK)
        rc = check_bytes(&im->bitmask);
    if (rc == NUB_CAP_OK)
        rc = check_list(&im->jump_table);
    if (rc == NUB_CAP_OK)
        rc = check_list(&im->endpoints);
    if (rc == NUB_CAP_OK)
        rc = check_mappings(&im->mappings);
    if (rc == NUB_CAP_OK)
        rc = check_slots(&im->init_slots, ANY_SLOT);
    return rc;
}

/* One overlay against the inclusive last byte of the previous one. */
static int check_overlay(const struct nub_cap_overlay *o, bool first, uint64_t prev_last)
{
    struct nub_cap_bytes b = {o->bytes, o->len};
    int rc = check_bytes(&b);
    if (rc != NUB_CAP_OK)
        return rc;
    if (o->len == 0)
        return NUB_CAP_E_OVERLAY_EMPTY;
    if (o->len - 1 > UINT64_MAX - o->start)
        return NUB_CAP_E_OVERLAY_RANGE;
    if (!first && o->start <= prev_last)
        return NUB_CAP_E_OVERLAY_ORDER;
    return NUB_CAP_OK;
}

static int check_overlays(const struct nub_cap_list *l)
{
    int rc = check_list(l);
    struct nub_cap_cursor cur;
    struct nub_cap_overlay o;
    uint64_t prev_last = 0;
    nub_cap_cursor_init(&cur, l);
    while (rc == NUB_CAP_OK && nub_cap_next_overlay(&cur, &o)) {
        rc = check_overlay(&o, cur.next == 1, prev_last);
        prev_last = o.start + (o.len - 1);
    }
    return rc;
}

int nub_cap_validate(const struct nub_cap *c)
{
    if (c == NULL)
        return NUB_CAP_E_ARG;
    switch (c->kind) {
    case NUB_CAP_DATA:
        return check_bytes(&c->data.bytes);
    case NUB_CAP_CNODE:
        return check_cnode(&c->cnode);
    case NUB_CAP_IMAGE:
        return check_image(&c->image);
    case NUB_CAP_INSTANCE:
        return check_overlays(&c->instance.overlays);
    default:
        return NUB_CAP_E_KIND;
    }
}

/* ------------------------------------------------------------------------ */
/* Encoding: one emitter, three sinks (length, buffer, hash state)           */
/* ------------------------------------------------------------------------ */

struct sink {
    uint8_t *buf;          /* copy here while it fits (NULL: count only) */
    size_t cap;            /* bytes available at buf */
    size_t pos;            /* bytes emitted so far */
    bool overflow;         /* pos would have wrapped */
    nub_blake2b_state *h;  /* when set, bytes go into the hash instead */
};

static void put(struct sink *s, const void *p, size_t n)
{
    if (n > SIZE_MAX - s->pos) {
        s->overflow = true;
        return;
    }
    if (s->h != NULL)
        nub_blake2b_update(s->h, p, n);
    else if (s->buf != NULL && s->pos <= s->cap && n <= s->cap - s->pos)
        nub_bytes_copy(s->buf + s->pos, p, n);
    s->pos += n;
}

static void put_u8(struct sink *s, uint8_t v)
{
    put(s, &v, 1);
}

static void put_u32(struct sink *s, uint32_t v)
{
    uint8_t b[4];
    nub_store_le32(b, v);
    put(s, b, 4);
}

static void put_u64(struct sink *s, uint64_t v)
{
    uint8_t b[8];
    nub_store_le64(b, v);
    put(s, b, 8);
}

/* u32 length then the bytes (length validated <= NUB_CAP_BYTES_MAX). */
static void put_bytes(struct sink *s, const uint8_t *p, uint64_t len)
{
    put_u32(s, (uint32_t)len);
    put(s, p, (size_t)len);
}

static void put_slots(struct sink *s, const struct nub_cap_list *l)
{
    put_u32(s, l->count);
    if (l->items == NULL) {
        put(s, l->enc, l->enc_len);
        return;
    }
    for (uint32_t i = 0; i < l->count; i++) {
        const struct nub_cap_slot *e = (const struct nub_cap_slot *)l->items + i;
        put_u32(s, e->index);
        put(s, e->hash, HS);
    }
}

static void put_jumps(struct sink *s, const struct nub_cap_list *l)
{
    put_u32(s, l->count);
    if (l->items == NULL) {
        put(s, l->enc, l->enc_len);
        return;
    }
    for (uint32_t i = 0; i < l->count; i++)
        put_u32(s, ((const uint32_t *)l->items)[i]);
}

static void put_endpoint(struct sink *s, const struct nub_cap_endpoint *ep)
{
    put_u64(s, ep->pc);
    put_u64(s, ep->stack_top);
    put_u32(s, ep->arg_slot);
    put_u32(s, ep->arg_size);
    for (unsigned r = 0; r < NUB_CAP_REGS; r++)
        put_u64(s, ep->regs[r]);
}

static void put_endpoints(struct sink *s, const struct nub_cap_list *l)
{
    put_u32(s, l->count);
    if (l->items == NULL) {
        put(s, l->enc, l->enc_len);
        return;
    }
    for (uint32_t i = 0; i < l->count; i++)
        put_endpoint(s, (const struct nub_cap_endpoint *)l->items + i);
}

static void put_mappings(struct sink *s, const struct nub_cap_list *l)
{
    put_u32(s, l->count);
    if (l->items == NULL) {
        put(s, l->enc, l->enc_len);
        return;
    }
    for (uint32_t i = 0; i < l->count; i++) {
        const struct nub_cap_mapping *m = (const struct nub_cap_mapping *)l->items + i;
        put_u64(s, m->start);
        put_u64(s, m->size);
        put_u32(s, m->path_len);
        for (uint32_t k = 0; k < m->path_len; k++)
            put_u32(s, m->path[k]);
    }
}

static void put_overlays(struct sink *s, const struct nub_cap_list *l)
{
    put_u32(s, l->count);
    if (l->items == NULL) {
        put(s, l->enc, l->enc_len);
        return;
    }
    for (uint32_t i = 0; i < l->count; i++) {
        const struct nub_cap_overlay *o = (const struct nub_cap_overlay *)l->items + i;
        put_u64(s, o->start);
        put_bytes(s, o->bytes, o->len);
    }
}

static void put_image(struct sink *s, const struct nub_cap_image_body *im)
{
    put_bytes(s, im->code.ptr, im->code.len);
    put_bytes(s, im->bitmask.ptr, im->bitmask.len);
    put_jumps(s, &im->jump_table);
    put_endpoints(s, &im->endpoints);
    put_mappings(s, &im->mappings);
    put_slots(s, &im->init_slots);
}

static void put_instance(struct sink *s, const struct nub_cap_instance_body *in)
{
    put(s, in->image, HS);
    put(s, in->root, HS);
    put_overlays(s, &in->overlays);
    put_u64(s, in->mem_size);
    for (unsigned r = 0; r < NUB_CAP_REGS; r++)
        put_u64(s, in->regs[r]);
    put_u64(s, in->pc);
    put_u64(s, in->gas);
}

/* Emit the canonical encoding of a validated cap. */
static void put_cap(struct sink *s, const struct nub_cap *c)
{
    put_u8(s, c->kind);
    switch (c->kind) {
    case NUB_CAP_DATA:
        put_bytes(s, c->data.bytes.ptr, c->data.bytes.len);
        break;
    case NUB_CAP_CNODE:
        put_u8(s, c->cnode.size_log);
        put_slots(s, &c->cnode.slots);
        break;
    case NUB_CAP_IMAGE:
        put_image(s, &c->image);
        break;
    default:
        put_instance(s, &c->instance);
        break;
    }
}

int nub_cap_encode(const struct nub_cap *c, uint8_t *buf, size_t cap, size_t *len)
{
    if (len == NULL)
        return NUB_CAP_E_ARG;
    int rc = nub_cap_validate(c);
    if (rc != NUB_CAP_OK)
        return rc;
    struct sink s = {buf, cap, 0, false, NULL};
    put_cap(&s, c);
    if (s.overflow)
        return NUB_CAP_E_TOO_LONG;
    *len = s.pos;
    if (buf != NULL && s.pos > cap)
        return NUB_CAP_E_NOSPACE;
    return NUB_CAP_OK;
}

int nub_cap_encoded_len(const struct nub_cap *c, size_t *len)
{
    return nub_cap_encode(c, NULL, 0, len);
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */
/* ------------------------------------------------------------------------ */

struct reader {
    const uint8_t *p;
    size_t len;
    size_t off; /* always <= len */
};

/* Take n bytes (n may be any u64) or fail with TRUNCATED. */
static int take(struct reader *r, uint64_t n, const uint8_t **out)
{
    if (n > (uint64_t)(r->len - r->off))
        return NUB_CAP_E_TRUNCATED;
    *out = r->p + r->off;
    r->off += (size_t)n;
    return NUB_CAP_OK;
}

static int get_u8(struct reader *r, uint8_t *v)
{
    const uint8_t *p;
    int rc = take(r, 1, &p);
    if (rc == NUB_CAP_OK)
        *v = p[0];
    return rc;
}

static int get_u32(struct reader *r, uint32_t *v)
{
    const uint8_t *p;
    int rc = take(r, 4, &p);
    if (rc == NUB_CAP_OK)
        *v = nub_load_le32(p);
    return rc;
}

static int get_u64(struct reader *r, uint64_t *v)
{
    const uint8_t *p;
    int rc = take(r, 8, &p);
    if (rc == NUB_CAP_OK)
        *v = nub_load_le64(p);
    return rc;
}

static int get_bytes(struct reader *r, struct nub_cap_bytes *b)
{
    uint32_t n = 0;
    int rc = get_u32(r, &n);
    if (rc == NUB_CAP_OK)
        rc = take(r, n, &b->ptr);
    b->len = n;
    return rc;
}

/* A u32 count then count fixed-size records, kept as encoded bytes. */
static int get_fixed_list(struct reader *r, uint32_t rec_size, struct nub_cap_list *l)
{
    uint32_t n;
    int rc = get_u32(r, &n);
    if (rc != NUB_CAP_OK)
        return rc;
    uint64_t total = (uint64_t)n * rec_size;
    l->items = NULL;
    l->count = n;
    l->enc_len = (size_t)total;
    return take(r, total, &l->enc);
}

/* Start a variable-size record list: read its count; records begin at the new offset. */
static int begin_var_list(struct reader *r, struct nub_cap_list *l)
{
    int rc = get_u32(r, &l->count);
    l->items = NULL;
    l->enc = r->p + r->off;
    l->enc_len = 0;
    return rc;
}

static int get_mapping(struct reader *r)
{
    const uint8_t *p;
    int rc = take(r, MAPPING_HEAD_SIZE, &p);
    if (rc != NUB_CAP_OK)
        return rc;
    uint32_t path_len = nub_load_le32(p + 16);
    if (path_len > NUB_CAP_PATH_MAX)
        return NUB_CAP_E_PATH_LEN;
    return take(r, 4 * (uint64_t)path_len, &p);
}

static int get_mappings(struct reader *r, struct nub_cap_list *l)
{
    int rc = begin_var_list(r, l);
    size_t start = r->off;
    for (uint32_t i = 0; rc == NUB_CAP_OK && i < l->count; i++)
        rc = get_mapping(r);
    l->enc_len = r->off - start;
    return rc;
}

static int get_overlays(struct reader *r, struct nub_cap_list *l)
{
    int rc = begin_var_list(r, l);
    size_t start = r->off;
    uint64_t prev_last = 0;
    for (uint32_t i = 0; rc == NUB_CAP_OK && i < l->count; i++) {
        struct nub_cap_overlay o;
        struct nub_cap_bytes b;
        rc = get_u64(r, &o.start);
        if (rc == NUB_CAP_OK)
            rc = get_bytes(r, &b);
        if (rc != NUB_CAP_OK)
            break;
        o.bytes = b.ptr;
        o.len = b.len;
        rc = check_overlay(&o, i == 0, prev_last);
        prev_last = o.start + (o.len - 1);
    }
    l->enc_len = r->off - start;
    return rc;
}

static int decode_cnode(struct reader *r, struct nub_cap_cnode_body *n)
{
    int rc = get_u8(r, &n->size_log);
    if (rc != NUB_CAP_OK)
        return rc;
    if (n->size_log > NUB_CAP_SIZE_LOG_MAX)
        return NUB_CAP_E_SIZE_LOG;
    rc = get_fixed_list(r, NUB_CAP_SLOT_ENC_SIZE, &n->slots);
    if (rc != NUB_CAP_OK)
        return rc;
    return check_slots(&n->slots, (uint64_t)1 << n->size_log);
}

static int decode_image(struct reader *r, struct nub_cap_image_body *im)
{
    int rc = get_bytes(r, &im->code);
    if (rc == NUB_CAP_OK)
        rc = get_bytes(r, &im->bitmask);
    if (rc == NUB_CAP_OK)
        rc = get_fixed_list(r, 4, &im->jump_table);
    if (rc == NUB_CAP_OK)
        rc = get_fixed_list(r, NUB_CAP_ENDPOINT_ENC_SIZE, &im->endpoints);
    if (rc == NUB_CAP_OK)
        rc = get_mappings(r, &im->mappings);
    if (rc == NUB_CAP_OK)
        rc = get_fixed_list(r, NUB_CAP_SLOT_ENC_SIZE, &im->init_slots);
    if (rc == NUB_CAP_OK)
        rc = check_slots(&im->init_slots, ANY_SLOT);
    return rc;
}

static int decode_hash(struct reader *r, uint8_t out[HS])
{
    const uint8_t *p;
    int rc = take(r, HS, &p);
    if (rc == NUB_CAP_OK)
        nub_bytes_copy(out, p, HS);
    return rc;
}

static int decode_instance(struct reader *r, struct nub_cap_instance_body *in)
{
    int rc = decode_hash(r, in->image);
    if (rc == NUB_CAP_OK)
        rc = decode_hash(r, in->root);
    if (rc == NUB_CAP_OK)
        rc = get_overlays(r, &in->overlays);
    if (rc == NUB_CAP_OK)
        rc = get_u64(r, &in->mem_size);
    for (unsigned i = 0; rc == NUB_CAP_OK && i < NUB_CAP_REGS; i++)
        rc = get_u64(r, &in->regs[i]);
    if (rc == NUB_CAP_OK)
        rc = get_u64(r, &in->pc);
    if (rc == NUB_CAP_OK)
        rc = get_u64(r, &in->gas);
    return rc;
}

static int decode_body(struct reader *r, struct nub_cap *c)
{
    switch (c->kind) {
    case NUB_CAP_DATA:
        return get_bytes(r, &c->data.bytes);
    case NUB_CAP_CNODE:
        return decode_cnode(r, &c->cnode);
    case NUB_CAP_IMAGE:
        return decode_image(r, &c->image);
    case NUB_CAP_INSTANCE:
        return decode_instance(r, &c->instance);
    default:
        return NUB_CAP_E_KIND;
    }
}

int nub_cap_decode(const uint8_t *enc, size_t len, struct nub_cap *c)
{
    if (c == NULL || (enc == NULL && len != 0))
        return NUB_CAP_E_ARG;
    struct reader r = {enc, len, 0};
    nub_bytes_zero(c, sizeof *c);
    int rc = get_u8(&r, &c->kind);
    if (rc == NUB_CAP_OK)
        rc = decode_body(&r, c);
    if (rc == NUB_CAP_OK && r.off != len)
        rc = NUB_CAP_E_TRAILING;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* DATA hashing: streaming merkle root with a stack of pending subtrees      */
/* ------------------------------------------------------------------------ */

/* leaf = H(0x00 || page zero-padded to 4 KiB); len <= 4096. */
static void data_leaf(uint8_t out[HS], const uint8_t *page, size_t len)
{
    static const uint8_t zeros[128];
    nub_blake2b_state s;
    h_start(&s, TAG_DATA_LEAF);
    nub_blake2b_update(&s, page, len);
    for (size_t pad = NUB_CAP_PAGE_SIZE - len; pad > 0;) {
        size_t n = pad < sizeof zeros ? pad : sizeof zeros;
        nub_blake2b_update(&s, zeros, n);
        pad -= n;
    }
    nub_blake2b_final(&s, out);
}

/*
 * Pending subtrees: after n leaves, stack[k] holds the complete subtree for
 * the k-th set bit of n counted from the most significant one, so the top
 * entry is the smallest subtree (level = lowest set bit of n).
 */
struct merkle {
    uint8_t stack[MERKLE_MAX_DEPTH][HS];
    unsigned depth;
    uint64_t n;
};

static void merkle_push(struct merkle *m, const uint8_t leaf[HS])
{
    uint8_t cur[HS];
    nub_bytes_copy(cur, leaf, HS);
    for (uint64_t k = m->n; k & 1; k >>= 1)
        hash_node(cur, m->stack[--m->depth], cur);
    nub_bytes_copy(m->stack[m->depth++], cur, HS);
    m->n++;
}

/*
 * Root of the leaves pushed so far, as if the list were padded with
 * all-zero hashes to a power of two. Walks the levels bottom up keeping the
 * all-zero subtree hash z of the current level: a pending subtree at level
 * l (bit l of n set) is a left child whose right sibling is the partial
 * subtree built so far (or pure padding); a partial subtree with no pending
 * sibling is a left child of pure padding.
 */
static void merkle_root(struct merkle *m, uint8_t out[HS])
{
    if (m->n == 0) {
        nub_bytes_zero(out, HS);
        return;
    }
    if ((m->n & (m->n - 1)) == 0) {
        nub_bytes_copy(out, m->stack[0], HS);
        return;
    }
    uint8_t z[HS], cur[HS];
    bool have = false;
    nub_bytes_zero(z, HS);
    for (unsigned l = 0; (m->n >> l) != 0; l++) {
        if ((m->n >> l) & 1) {
            hash_node(cur, m->stack[--m->depth], have ? cur : z);
            have = true;
        } else if (have) {
            hash_node(cur, cur, z);
        }
        if ((m->n >> (l + 1)) != 0)
            hash_node(z, z, z);
    }
    nub_bytes_copy(out, cur, HS);
}

void nub_cap_data_hash(const void *bytes, uint64_t len, uint8_t out[NUB_CAP_HASH_LEN])
{
    const uint8_t *p = bytes;
    struct merkle m;
    uint8_t leaf[HS], root[HS];
    m.depth = 0;
    m.n = 0;
    for (uint64_t off = 0; off < len; off += NUB_CAP_PAGE_SIZE) {
        uint64_t left = len - off;
        data_leaf(leaf, p + off, left < NUB_CAP_PAGE_SIZE ? (size_t)left : NUB_CAP_PAGE_SIZE);
        merkle_push(&m, leaf);
    }
    merkle_root(&m, root);

    uint8_t buf[1 + 8 + HS];
    buf[0] = TAG_DATA;
    nub_store_le64(buf + 1, len);
    nub_bytes_copy(buf + 9, root, HS);
    h256(out, buf, sizeof buf);
}

/* ------------------------------------------------------------------------ */
/* CNODE hashing: sparse descent with precomputed empty subtrees             */
/* ------------------------------------------------------------------------ */

struct cnode_ctx {
    const struct nub_cap_list *slots;           /* sorted, in range */
    uint8_t empty[NUB_CAP_SIZE_LOG_MAX + 1][HS]; /* empty[l]: empty subtree of 2^l leaves */
};

/* First slot in [lo, hi) whose index is >= key (slots sorted). */
static uint32_t slot_lower_bound(const struct nub_cap_list *l, uint32_t lo, uint32_t hi,
                                 uint64_t key)
{
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t idx;
        slot_at(l, mid, &idx, NULL);
        if (idx < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void cnode_filled_leaf(uint8_t out[HS], const uint8_t child[HS])
{
    uint8_t buf[1 + HS];
    buf[0] = TAG_CNODE_FILLED;
    nub_bytes_copy(buf + 1, child, HS);
    h256(out, buf, sizeof buf);
}

/* Hash of the subtree of 2^level leaves starting at `base`, holding slots [lo, hi). */
static void cnode_subtree(const struct cnode_ctx *x, unsigned level, uint64_t base, uint32_t lo,
                          uint32_t hi, uint8_t out[HS])
{
    if (lo == hi) {
        nub_bytes_copy(out, x->empty[level], HS);
        return;
    }
    if (level == 0) {
        cnode_filled_leaf(out, slot_hash_ptr(x->slots, lo));
        return;
    }
    uint64_t mid = base + ((uint64_t)1 << (level - 1));
    uint32_t split = slot_lower_bound(x->slots, lo, hi, mid);
    uint8_t l[HS], r[HS];
    cnode_subtree(x, level - 1, base, lo, split, l);
    cnode_subtree(x, level - 1, mid, split, hi, r);
    hash_node(out, l, r);
}

/* Hash of a validated CNODE. */
static void cnode_hash(const struct nub_cap_cnode_body *n, uint8_t out[HS])
{
    struct cnode_ctx x;
    uint8_t tag = TAG_CNODE_EMPTY;
    x.slots = &n->slots;
    h256(x.empty[0], &tag, 1);
    for (unsigned l = 1; l <= n->size_log; l++)
        hash_node(x.empty[l], x.empty[l - 1], x.empty[l - 1]);

    uint8_t buf[2 + HS];
    cnode_subtree(&x, n->size_log, 0, 0, n->slots.count, buf + 2);
    buf[0] = TAG_CNODE;
    buf[1] = n->size_log;
    h256(out, buf, sizeof buf);
}

/* ------------------------------------------------------------------------ */
/* Cap hashes                                                                */
/* ------------------------------------------------------------------------ */

static uint8_t tag_of(uint8_t kind)
{
    return kind == NUB_CAP_IMAGE ? TAG_IMAGE : TAG_INSTANCE;
}

/* Hash of a validated cap; IMAGE/INSTANCE stream their encoding into H. */
static void hash_valid(const struct nub_cap *c, uint8_t out[HS])
{
    switch (c->kind) {
    case NUB_CAP_DATA:
        nub_cap_data_hash(c->data.bytes.ptr, c->data.bytes.len, out);
        return;
    case NUB_CAP_CNODE:
        cnode_hash(&c->cnode, out);
        return;
    default: {
        nub_blake2b_state h;
        struct sink s = {NULL, 0, 0, false, &h};
        h_start(&h, tag_of(c->kind));
        put_cap(&s, c);
        nub_blake2b_final(&h, out);
        return;
    }
    }
}

int nub_cap_hash(const struct nub_cap *c, uint8_t out[NUB_CAP_HASH_LEN])
{
    if (out == NULL)
        return NUB_CAP_E_ARG;
    int rc = nub_cap_validate(c);
    if (rc != NUB_CAP_OK)
        return rc;
    hash_valid(c, out);
    return NUB_CAP_OK;
}

int nub_cap_hash_encoded(const uint8_t *enc, size_t len, uint8_t out[NUB_CAP_HASH_LEN])
{
    struct nub_cap c;
    if (out == NULL)
        return NUB_CAP_E_ARG;
    int rc = nub_cap_decode(enc, len, &c);
    if (rc != NUB_CAP_OK)
        return rc;
    if (c.kind == NUB_CAP_IMAGE || c.kind == NUB_CAP_INSTANCE) {
        /* The input is canonical, so it is the encoding to hash. */
        nub_blake2b_state h;
        h_start(&h, tag_of(c.kind));
        nub_blake2b_update(&h, enc, len);
        nub_blake2b_final(&h, out);
        return NUB_CAP_OK;
    }
    hash_valid(&c, out);
    return NUB_CAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Error names                                                               */
/* ------------------------------------------------------------------------ */

const char *nub_cap_strerror(int err)
{
    switch (err) {
    case NUB_CAP_OK: return "NUB_CAP_OK: success";
    case NUB_CAP_E_ARG: return "NUB_CAP_E_ARG: invalid argument";
    case NUB_CAP_E_TRUNCATED: return "NUB_CAP_E_TRUNCATED: input ends inside a field";
    case NUB_CAP_E_TRAILING: return "NUB_CAP_E_TRAILING: trailing bytes after the cap";
    case NUB_CAP_E_KIND: return "NUB_CAP_E_KIND: unknown cap kind";
    case NUB_CAP_E_SIZE_LOG: return "NUB_CAP_E_SIZE_LOG: cnode size_log above 16";
    case NUB_CAP_E_SLOT_RANGE: return "NUB_CAP_E_SLOT_RANGE: cnode slot index >= 2^size_log";
    case NUB_CAP_E_SLOT_UNSORTED: return "NUB_CAP_E_SLOT_UNSORTED: slots not in ascending order";
    case NUB_CAP_E_SLOT_DUP: return "NUB_CAP_E_SLOT_DUP: duplicate slot index";
    case NUB_CAP_E_PATH_LEN: return "NUB_CAP_E_PATH_LEN: mapping path longer than 8";
    case NUB_CAP_E_OVERLAY_EMPTY: return "NUB_CAP_E_OVERLAY_EMPTY: empty instance overlay";
    case NUB_CAP_E_OVERLAY_RANGE: return "NUB_CAP_E_OVERLAY_RANGE: overlay ends past 2^64";
    case NUB_CAP_E_OVERLAY_ORDER: return "NUB_CAP_E_OVERLAY_ORDER: overlays unsorted or overlapping";
    case NUB_CAP_E_TOO_LONG: return "NUB_CAP_E_TOO_LONG: field longer than 4 GiB - 1 or size overflow";
    case NUB_CAP_E_NOSPACE: return "NUB_CAP_E_NOSPACE: output buffer too small";
    default: return "NUB_CAP_E_?: unknown cap error";
    }
}
