/* Unit tests of common/cap.c: round trips, strict rejection of malformed encodings, hashes against a literal libsodium computation, fixed vectors. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nub/cap.h"

#define HSZ NUB_CAP_HASH_LEN

/* ------------------------------------------------------------------------ */
/* Helpers: random numbers, hex, a growable byte vector                      */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static void rnd_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rnd() >> 56);
}

static void to_hex(char *dst, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(dst + 2 * i, "%02x", p[i]);
    dst[2 * n] = 0;
}

static size_t from_hex(uint8_t *dst, const char *hex)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        dst[i] = (uint8_t)v;
    }
    return n;
}

/* memcmp that accepts NULL pointers with a zero length. */
static int mem_eq(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

static void assert_hash_eq(const uint8_t *got, const uint8_t *want, const char *what)
{
    if (memcmp(got, want, HSZ) != 0) {
        char a[2 * HSZ + 1], b[2 * HSZ + 1];
        to_hex(a, got, HSZ);
        to_hex(b, want, HSZ);
        cr_assert_fail("%s:\n  got  %s\n  want %s", what, a, b);
    }
}

struct vec {
    uint8_t *p;
    size_t n, cap;
};

static void v_put(struct vec *v, const void *p, size_t n)
{
    if (v->n + n > v->cap) {
        v->cap = (v->n + n) * 2 + 64;
        v->p = realloc(v->p, v->cap);
        cr_assert_not_null(v->p);
    }
    if (n)
        memcpy(v->p + v->n, p, n);
    v->n += n;
}

static void v_u8(struct vec *v, uint8_t x)
{
    v_put(v, &x, 1);
}

static void v_u32(struct vec *v, uint32_t x)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(x >> (8 * i));
    v_put(v, b, 4);
}

static void v_u64(struct vec *v, uint64_t x)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(x >> (8 * i));
    v_put(v, b, 8);
}

/* ------------------------------------------------------------------------ */
/* Independent reference: the spec written literally with libsodium          */
/* ------------------------------------------------------------------------ */

static void H(uint8_t out[HSZ], const void *in, size_t len)
{
    cr_assert_eq(crypto_generichash(out, HSZ, in, len, NULL, 0), 0);
}

/* Reduce a power-of-two list of hashes pairwise to its root (in place). */
static void ref_reduce(uint8_t (*lv)[HSZ], size_t p, uint8_t root[HSZ])
{
    uint8_t buf[1 + 2 * HSZ];
    for (; p > 1; p /= 2) {
        for (size_t i = 0; i < p / 2; i++) {
            buf[0] = 0x01;
            memcpy(buf + 1, lv[2 * i], HSZ);
            memcpy(buf + 1 + HSZ, lv[2 * i + 1], HSZ);
            H(lv[i], buf, sizeof buf);
        }
    }
    memcpy(root, lv[0], HSZ);
}

/* DATA: materialise every leaf, pad with zero hashes to a power of two, reduce. */
static void ref_data_hash(const uint8_t *b, size_t len, uint8_t out[HSZ])
{
    size_t n = (len + 4095) / 4096, p = 1;
    while (p < n)
        p *= 2;
    uint8_t (*lv)[HSZ] = calloc(p, HSZ);
    uint8_t *page = malloc(1 + 4096);
    cr_assert(lv && page);
    for (size_t i = 0; i < n; i++) {
        size_t take = len - i * 4096 < 4096 ? len - i * 4096 : 4096;
        memset(page, 0, 1 + 4096);
        memcpy(page + 1, b + i * 4096, take);
        H(lv[i], page, 1 + 4096);
    }
    uint8_t buf[1 + 8 + HSZ] = {0x30};
    for (int i = 0; i < 8; i++)
        buf[1 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    if (n > 0)
        ref_reduce(lv, p, buf + 9);
    H(out, buf, sizeof buf);
    free(lv);
    free(page);
}

/* CNODE: the full list of 2^size_log leaves, reduced. */
static void ref_cnode_hash(unsigned size_log, const struct nub_cap_slot *slots, size_t count,
                           uint8_t out[HSZ])
{
    size_t n = (size_t)1 << size_log;
    uint8_t (*lv)[HSZ] = malloc(n * HSZ);
    uint8_t empty[HSZ], tag = 0x02, buf[1 + HSZ];
    cr_assert_not_null(lv);
    H(empty, &tag, 1);
    for (size_t i = 0; i < n; i++)
        memcpy(lv[i], empty, HSZ);
    for (size_t i = 0; i < count; i++) {
        buf[0] = 0x03;
        memcpy(buf + 1, slots[i].hash, HSZ);
        H(lv[slots[i].index], buf, sizeof buf);
    }
    uint8_t fin[2 + HSZ] = {0x40, (uint8_t)size_log};
    ref_reduce(lv, n, fin + 2);
    H(out, fin, sizeof fin);
    free(lv);
}

/* Canonical encoding of a built cap, written independently of common/cap.c. */
static void ref_encode(const struct nub_cap *c, struct vec *v)
{
    v_u8(v, c->kind);
    if (c->kind == NUB_CAP_DATA) {
        v_u32(v, (uint32_t)c->data.bytes.len);
        v_put(v, c->data.bytes.ptr, c->data.bytes.len);
    } else if (c->kind == NUB_CAP_CNODE) {
        const struct nub_cap_slot *s = c->cnode.slots.items;
        v_u8(v, c->cnode.size_log);
        v_u32(v, c->cnode.slots.count);
        for (uint32_t i = 0; i < c->cnode.slots.count; i++) {
            v_u32(v, s[i].index);
            v_put(v, s[i].hash, HSZ);
        }
    } else if (c->kind == NUB_CAP_IMAGE) {
        const struct nub_cap_image_body *im = &c->image;
        const uint32_t *j = im->jump_table.items;
        const struct nub_cap_endpoint *e = im->endpoints.items;
        const struct nub_cap_mapping *m = im->mappings.items;
        const struct nub_cap_slot *s = im->init_slots.items;
        v_u32(v, (uint32_t)im->code.len);
        v_put(v, im->code.ptr, im->code.len);
        v_u32(v, (uint32_t)im->bitmask.len);
        v_put(v, im->bitmask.ptr, im->bitmask.len);
        v_u32(v, im->jump_table.count);
        for (uint32_t i = 0; i < im->jump_table.count; i++)
            v_u32(v, j[i]);
        v_u32(v, im->endpoints.count);
        for (uint32_t i = 0; i < im->endpoints.count; i++) {
            v_u64(v, e[i].pc);
            v_u64(v, e[i].stack_top);
            v_u32(v, e[i].arg_slot);
            v_u32(v, e[i].arg_size);
            for (int r = 0; r < 13; r++)
                v_u64(v, e[i].regs[r]);
        }
        v_u32(v, im->mappings.count);
        for (uint32_t i = 0; i < im->mappings.count; i++) {
            v_u64(v, m[i].start);
            v_u64(v, m[i].size);
            v_u32(v, m[i].path_len);
            for (uint32_t k = 0; k < m[i].path_len; k++)
                v_u32(v, m[i].path[k]);
        }
        v_u32(v, im->init_slots.count);
        for (uint32_t i = 0; i < im->init_slots.count; i++) {
            v_u32(v, s[i].index);
            v_put(v, s[i].hash, HSZ);
        }
    } else {
        const struct nub_cap_instance_body *in = &c->instance;
        const struct nub_cap_overlay *o = in->overlays.items;
        v_put(v, in->image, HSZ);
        v_put(v, in->root, HSZ);
        v_u32(v, in->overlays.count);
        for (uint32_t i = 0; i < in->overlays.count; i++) {
            v_u64(v, o[i].start);
            v_u32(v, (uint32_t)o[i].len);
            v_put(v, o[i].bytes, o[i].len);
        }
        v_u64(v, in->mem_size);
        for (int r = 0; r < 13; r++)
            v_u64(v, in->regs[r]);
        v_u64(v, in->pc);
        v_u64(v, in->gas);
    }
}

/* Reference hash of a built cap. */
static void ref_hash(const struct nub_cap *c, uint8_t out[HSZ])
{
    if (c->kind == NUB_CAP_DATA) {
        ref_data_hash(c->data.bytes.ptr, c->data.bytes.len, out);
    } else if (c->kind == NUB_CAP_CNODE) {
        ref_cnode_hash(c->cnode.size_log, c->cnode.slots.items, c->cnode.slots.count, out);
    } else {
        struct vec v = {0};
        v_u8(&v, c->kind == NUB_CAP_IMAGE ? 0x20 : 0x10);
        ref_encode(c, &v);
        H(out, v.p, v.n);
        free(v.p);
    }
}

/* ------------------------------------------------------------------------ */
/* Random caps                                                               */
/* ------------------------------------------------------------------------ */

struct owned {
    struct nub_cap c;
    void *allocs[8];
    int nalloc;
};

static void *o_alloc(struct owned *o, size_t n)
{
    void *p = calloc(1, n ? n : 1);
    cr_assert_not_null(p);
    cr_assert_lt(o->nalloc, 8);
    o->allocs[o->nalloc++] = p;
    return p;
}

static void o_free(struct owned *o)
{
    for (int i = 0; i < o->nalloc; i++)
        free(o->allocs[i]);
    o->nalloc = 0;
}

/* `count` strictly ascending indices below `limit` (count <= limit). */
static void rnd_sorted_slots(struct nub_cap_slot *s, uint32_t count, uint64_t limit)
{
    uint32_t got = 0;
    if (limit <= 65536) {
        for (uint64_t i = 0; i < limit && got < count; i++) /* selection sampling */
            if (rnd_below(limit - i) < count - got)
                s[got++].index = (uint32_t)i;
    } else {
        uint64_t idx = rnd_below(1000);
        for (; got < count; got++, idx += 1 + rnd_below(100000000))
            s[got].index = (uint32_t)idx;
    }
    for (uint32_t i = 0; i < count; i++)
        rnd_fill(s[i].hash, HSZ);
}

static void gen_data(struct owned *o, size_t max)
{
    size_t len = rnd_below(4) == 0 ? rnd_below(max + 1) : rnd_below(64);
    uint8_t *b = o_alloc(o, len);
    rnd_fill(b, len);
    nub_cap_data(&o->c, len ? b : NULL, len);
}

static void gen_cnode(struct owned *o)
{
    unsigned s = (unsigned)rnd_below(17);
    uint64_t n = (uint64_t)1 << s;
    uint32_t count = (uint32_t)(n <= 64 ? rnd_below(n + 1) : rnd_below(40));
    struct nub_cap_slot *slots = o_alloc(o, count * sizeof *slots);
    rnd_sorted_slots(slots, count, n);
    nub_cap_cnode(&o->c, (uint8_t)s, slots, count);
}

static void gen_image(struct owned *o)
{
    uint64_t code_len = rnd_below(200), nj = rnd_below(10), ne = rnd_below(4);
    uint64_t nm = rnd_below(5), ns = rnd_below(5);
    uint8_t *code = o_alloc(o, code_len), *bm = o_alloc(o, (code_len + 7) / 8);
    uint32_t *jt = o_alloc(o, nj * 4);
    struct nub_cap_endpoint *ep = o_alloc(o, ne * sizeof *ep);
    struct nub_cap_mapping *mp = o_alloc(o, nm * sizeof *mp);
    struct nub_cap_slot *sl = o_alloc(o, ns * sizeof *sl);
    rnd_fill(code, code_len);
    rnd_fill(bm, (code_len + 7) / 8);
    rnd_fill((uint8_t *)jt, nj * 4);
    rnd_fill((uint8_t *)ep, ne * sizeof *ep);
    for (uint64_t i = 0; i < nm; i++) {
        mp[i].start = rnd();
        mp[i].size = rnd();
        mp[i].path_len = (uint32_t)rnd_below(NUB_CAP_PATH_MAX + 1);
        for (uint32_t k = 0; k < mp[i].path_len; k++)
            mp[i].path[k] = (uint32_t)rnd();
    }
    rnd_sorted_slots(sl, (uint32_t)ns, UINT64_C(1) << 32);
    nub_cap_image(&o->c);
    nub_cap_image_code(&o->c, code, code_len);
    nub_cap_image_bitmask(&o->c, bm, (code_len + 7) / 8);
    nub_cap_image_jump_table(&o->c, jt, (uint32_t)nj);
    nub_cap_image_endpoints(&o->c, ep, (uint32_t)ne);
    nub_cap_image_mappings(&o->c, mp, (uint32_t)nm);
    nub_cap_image_init_slots(&o->c, sl, (uint32_t)ns);
}

static void gen_instance(struct owned *o)
{
    uint8_t img[HSZ], root[HSZ];
    uint64_t regs[13];
    uint32_t n = (uint32_t)rnd_below(5);
    struct nub_cap_overlay *ov = o_alloc(o, n * sizeof *ov);
    uint8_t *bytes = o_alloc(o, 100 * n);
    uint64_t at = rnd_below(2) ? rnd_below(1u << 20) : UINT64_MAX - 1000;
    rnd_fill(img, HSZ);
    rnd_fill(root, HSZ);
    rnd_fill((uint8_t *)regs, sizeof regs);
    rnd_fill(bytes, 100 * n);
    for (uint32_t i = 0; i < n; i++) {
        ov[i].start = at;
        ov[i].len = 1 + rnd_below(100);
        ov[i].bytes = bytes + 100 * i;
        at += ov[i].len + rnd_below(3);
    }
    if (n && rnd_below(3) == 0) { /* the last one ends exactly at 2^64 */
        ov[n - 1].start = UINT64_MAX - 99;
        ov[n - 1].len = 100;
    }
    nub_cap_instance(&o->c, img, root, rnd(), rnd(), rnd());
    nub_cap_instance_regs(&o->c, regs);
    nub_cap_instance_overlays(&o->c, ov, n);
}

static void gen_cap(struct owned *o, uint8_t kind)
{
    o->nalloc = 0;
    switch (kind) {
    case NUB_CAP_DATA: gen_data(o, 3 * 4096 + 100); break;
    case NUB_CAP_CNODE: gen_cnode(o); break;
    case NUB_CAP_IMAGE: gen_image(o); break;
    default: gen_instance(o); break;
    }
}

/* Encode with the library into a fresh buffer; checks the length-only path. */
static uint8_t *encode(const struct nub_cap *c, size_t *len)
{
    size_t n1 = 0, n2 = 0, n3 = 0;
    cr_assert_eq(nub_cap_encoded_len(c, &n1), NUB_CAP_OK);
    cr_assert_eq(nub_cap_encode(c, NULL, 0, &n2), NUB_CAP_OK);
    cr_assert_eq(n1, n2);
    uint8_t *b = malloc(n1);
    cr_assert_not_null(b);
    cr_assert_eq(nub_cap_encode(c, b, n1, &n3), NUB_CAP_OK);
    cr_assert_eq(n3, n1);
    *len = n1;
    return b;
}

/* ------------------------------------------------------------------------ */
/* Field-by-field comparison through the accessors                           */
/* ------------------------------------------------------------------------ */

static void same_slots(const struct nub_cap *a, const struct nub_cap *b, int image)
{
    uint32_t n = image ? a->image.init_slots.count : a->cnode.slots.count;
    cr_assert_eq(n, image ? b->image.init_slots.count : b->cnode.slots.count);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ia, ib;
        uint8_t ha[HSZ], hb[HSZ];
        if (image) {
            cr_assert_eq(nub_cap_image_init_slot(a, i, &ia, ha), NUB_CAP_OK);
            cr_assert_eq(nub_cap_image_init_slot(b, i, &ib, hb), NUB_CAP_OK);
        } else {
            cr_assert_eq(nub_cap_cnode_slot(a, i, &ia, ha), NUB_CAP_OK);
            cr_assert_eq(nub_cap_cnode_slot(b, i, &ib, hb), NUB_CAP_OK);
        }
        cr_assert_eq(ia, ib);
        cr_assert_eq(memcmp(ha, hb, HSZ), 0);
    }
}

static void same_mapping(const struct nub_cap_mapping *x, const struct nub_cap_mapping *y)
{
    cr_assert_eq(x->start, y->start);
    cr_assert_eq(x->size, y->size);
    cr_assert_eq(x->path_len, y->path_len);
    cr_assert(mem_eq(x->path, y->path, 4 * x->path_len));
}

static void same_image(const struct nub_cap *a, const struct nub_cap *b)
{
    const struct nub_cap_image_body *x = &a->image, *y = &b->image;
    cr_assert_eq(x->code.len, y->code.len);
    cr_assert(mem_eq(x->code.ptr, y->code.ptr, x->code.len));
    cr_assert_eq(x->bitmask.len, y->bitmask.len);
    cr_assert(mem_eq(x->bitmask.ptr, y->bitmask.ptr, x->bitmask.len));
    cr_assert_eq(x->jump_table.count, y->jump_table.count);
    for (uint32_t i = 0; i < x->jump_table.count; i++) {
        uint32_t p, q;
        cr_assert_eq(nub_cap_image_jump(a, i, &p) | nub_cap_image_jump(b, i, &q), 0);
        cr_assert_eq(p, q);
    }
    cr_assert_eq(x->endpoints.count, y->endpoints.count);
    for (uint32_t i = 0; i < x->endpoints.count; i++) {
        struct nub_cap_endpoint p, q;
        cr_assert_eq(nub_cap_image_endpoint(a, i, &p) | nub_cap_image_endpoint(b, i, &q), 0);
        cr_assert(p.pc == q.pc && p.stack_top == q.stack_top && p.arg_slot == q.arg_slot &&
                  p.arg_size == q.arg_size && memcmp(p.regs, q.regs, sizeof p.regs) == 0);
    }
    cr_assert_eq(x->mappings.count, y->mappings.count);
    struct nub_cap_cursor ca, cb;
    struct nub_cap_mapping ma, mb;
    nub_cap_cursor_init(&ca, &x->mappings);
    nub_cap_cursor_init(&cb, &y->mappings);
    for (uint32_t i = 0; i < x->mappings.count; i++) {
        cr_assert(nub_cap_next_mapping(&ca, &ma) && nub_cap_next_mapping(&cb, &mb));
        same_mapping(&ma, &mb);
        cr_assert_eq(nub_cap_image_mapping(b, i, &mb), NUB_CAP_OK);
        same_mapping(&ma, &mb);
    }
    cr_assert(!nub_cap_next_mapping(&ca, &ma) && !nub_cap_next_mapping(&cb, &mb));
    same_slots(a, b, 1);
}

static void same_overlay(const struct nub_cap_overlay *x, const struct nub_cap_overlay *y)
{
    cr_assert_eq(x->start, y->start);
    cr_assert_eq(x->len, y->len);
    cr_assert(mem_eq(x->bytes, y->bytes, x->len));
}

static void same_instance(const struct nub_cap *a, const struct nub_cap *b)
{
    const struct nub_cap_instance_body *x = &a->instance, *y = &b->instance;
    cr_assert_eq(memcmp(x->image, y->image, HSZ), 0);
    cr_assert_eq(memcmp(x->root, y->root, HSZ), 0);
    cr_assert(x->mem_size == y->mem_size && x->pc == y->pc && x->gas == y->gas);
    cr_assert_eq(memcmp(x->regs, y->regs, sizeof x->regs), 0);
    cr_assert_eq(x->overlays.count, y->overlays.count);
    struct nub_cap_cursor ca, cb;
    struct nub_cap_overlay oa, ob;
    nub_cap_cursor_init(&ca, &x->overlays);
    nub_cap_cursor_init(&cb, &y->overlays);
    for (uint32_t i = 0; i < x->overlays.count; i++) {
        cr_assert(nub_cap_next_overlay(&ca, &oa) && nub_cap_next_overlay(&cb, &ob));
        same_overlay(&oa, &ob);
        cr_assert_eq(nub_cap_instance_overlay(b, i, &ob), NUB_CAP_OK);
        same_overlay(&oa, &ob);
    }
    cr_assert(!nub_cap_next_overlay(&ca, &oa) && !nub_cap_next_overlay(&cb, &ob));
}

static void same_cap(const struct nub_cap *a, const struct nub_cap *b)
{
    cr_assert_eq(a->kind, b->kind);
    switch (a->kind) {
    case NUB_CAP_DATA:
        cr_assert_eq(a->data.bytes.len, b->data.bytes.len);
        cr_assert(mem_eq(a->data.bytes.ptr, b->data.bytes.ptr, a->data.bytes.len));
        break;
    case NUB_CAP_CNODE:
        cr_assert_eq(a->cnode.size_log, b->cnode.size_log);
        same_slots(a, b, 0);
        break;
    case NUB_CAP_IMAGE:
        same_image(a, b);
        break;
    default:
        same_instance(a, b);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */
/* ------------------------------------------------------------------------ */

/* Encode, compare with the reference encoding, decode, re-encode, hash every way. */
static void round_trip(const struct nub_cap *c)
{
    size_t len, len2;
    uint8_t *enc = encode(c, &len);
    struct vec ref = {0};
    ref_encode(c, &ref);
    cr_assert_eq(len, ref.n, "kind %u: length %zu vs reference %zu", c->kind, len, ref.n);
    cr_assert_eq(memcmp(enc, ref.p, len), 0, "kind %u: encoding differs from reference", c->kind);

    struct nub_cap d;
    cr_assert_eq(nub_cap_decode(enc, len, &d), NUB_CAP_OK);
    same_cap(c, &d);
    uint8_t *enc2 = encode(&d, &len2);
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(enc, enc2, len), 0);

    uint8_t h1[HSZ], h2[HSZ], h3[HSZ], hr[HSZ];
    cr_assert_eq(nub_cap_hash(c, h1), NUB_CAP_OK);
    cr_assert_eq(nub_cap_hash(&d, h2), NUB_CAP_OK);
    cr_assert_eq(nub_cap_hash_encoded(enc, len, h3), NUB_CAP_OK);
    ref_hash(c, hr);
    assert_hash_eq(h1, hr, "built cap vs reference");
    assert_hash_eq(h2, hr, "decoded cap vs reference");
    assert_hash_eq(h3, hr, "encoded cap vs reference");
    free(enc);
    free(enc2);
    free(ref.p);
}

Test(cap, round_trip_random_every_kind)
{
    rng_seed(1);
    for (int it = 0; it < 4000; it++) {
        struct owned o;
        gen_cap(&o, (uint8_t)(NUB_CAP_DATA + it % 4));
        round_trip(&o.c);
        o_free(&o);
    }
}

Test(cap, round_trip_empty_fields)
{
    struct nub_cap c;
    uint8_t z[HSZ] = {0};
    nub_cap_data(&c, NULL, 0);
    round_trip(&c);
    nub_cap_cnode(&c, 0, NULL, 0);
    round_trip(&c);
    nub_cap_cnode(&c, 16, NULL, 0);
    round_trip(&c);
    nub_cap_image(&c);
    round_trip(&c);
    nub_cap_instance(&c, z, z, 0, 0, 0);
    round_trip(&c);
}

/* Every strict prefix of a valid encoding is TRUNCATED. */
static void all_prefixes_truncated(const uint8_t *enc, size_t len)
{
    struct nub_cap d;
    uint8_t h[HSZ];
    for (size_t n = 0; n < len; n++) {
        int rc = nub_cap_decode(enc, n, &d);
        cr_assert_eq(rc, NUB_CAP_E_TRUNCATED, "prefix %zu of %zu: %s", n, len, nub_cap_strerror(rc));
        cr_assert_eq(nub_cap_hash_encoded(enc, n, h), NUB_CAP_E_TRUNCATED);
    }
}

/* A valid encoding with one extra byte is TRAILING. */
static void trailing_rejected(const uint8_t *enc, size_t len)
{
    uint8_t *b = malloc(len + 1);
    struct nub_cap d;
    memcpy(b, enc, len);
    for (int v = 0; v < 256; v += 85) {
        b[len] = (uint8_t)v;
        cr_assert_eq(nub_cap_decode(b, len + 1, &d), NUB_CAP_E_TRAILING);
    }
    free(b);
}

Test(cap, truncation_and_trailing_random)
{
    rng_seed(2);
    for (int it = 0; it < 400; it++) {
        struct owned o;
        size_t len;
        gen_cap(&o, (uint8_t)(NUB_CAP_DATA + it % 4));
        uint8_t *enc = encode(&o.c, &len);
        if (len <= 4096)
            all_prefixes_truncated(enc, len);
        trailing_rejected(enc, len);
        free(enc);
        o_free(&o);
    }
}

/* ------------------------------------------------------------------------ */
/* Fixed vectors (docs/caps.md); hashes computed with the literal reference  */
/* ------------------------------------------------------------------------ */

#define VEC_DATA_ABC_ENC "0103000000616263"
#define VEC_DATA_ABC_HASH "20fe60c9528ffcfbd2019ea64ea438f0f88a561eb028d3058c9ffa4aac6dcc43"
#define VEC_DATA_EMPTY_ENC "0100000000"
#define VEC_DATA_EMPTY_HASH "580b7e8907f63f33734d903b270e88b56ca603fd397fc222e55f7845fbb84245"
#define VEC_DATA_4097_HASH "439d9bbe7f751fc66b3ebefb3ca7157adf39f01dfde398ab53802e1521e6294c"
#define VEC_CNODE0_ENC "020000000000"
#define VEC_CNODE0_HASH "b976f79f8b76502523813254589b684841d12025875cd85d91622faf0f171cef"
#define VEC_CNODE2_ENC                                                                         \
    "02020100000001000000"                                                                     \
    "20fe60c9528ffcfbd2019ea64ea438f0f88a561eb028d3058c9ffa4aac6dcc43"
#define VEC_CNODE2_HASH "1b5a5c22706830b4cde498575fab932f3e2d4d5bd834030c95b513e7ce1c7fa8"
#define VEC_IMAGE_ENC                                                                          \
    "03" "03000000" "000102" "01000000" "07" "02000000" "00000000" "02000000"                 \
    "01000000" "0000000000000000" "0000010000000000" "01000000" "04000000"                     \
    "0700000000000000" "0000000000000000" "0000000000000000" "0000000000000000"                \
    "0000000000000000" "0000000000000000" "0000000000000000" "0000000000000000"                \
    "0000000000000000" "0000000000000000" "0000000000000000" "0000000000000000"                \
    "0000000000000000"                                                                         \
    "01000000" "0000020000000000" "0010000000000000" "02000000" "01000000" "02000000"          \
    "01000000" "01000000"                                                                      \
    "20fe60c9528ffcfbd2019ea64ea438f0f88a561eb028d3058c9ffa4aac6dcc43"
#define VEC_IMAGE_HASH "a232df2c09556a86d32c202dca8947e7817549c8e73e3498f24ecf50a698ea84"
#define VEC_INSTANCE_ENC                                                                       \
    "04"                                                                                       \
    "1111111111111111111111111111111111111111111111111111111111111111"                         \
    "1b5a5c22706830b4cde498575fab932f3e2d4d5bd834030c95b513e7ce1c7fa8"                         \
    "01000000" "0010000000000000" "02000000" "6869"                                            \
    "0000010000000000"                                                                         \
    "0000000000000000" "0100000000000000" "0200000000000000" "0300000000000000"                \
    "0400000000000000" "0500000000000000" "0600000000000000" "0700000000000000"                \
    "0800000000000000" "0900000000000000" "0a00000000000000" "0b00000000000000"                \
    "0c00000000000000"                                                                         \
    "0010000000000000" "40420f0000000000"
#define VEC_INSTANCE_HASH "bf2007256956d22328b15d77432f9bc49ff45c17fbfd35c0060b557f0376fda4"

/* Check a built cap against its documented encoding and hash, and the hash
 * against the reference computation. */
static void check_vector(const struct nub_cap *c, const char *enc_hex, const char *hash_hex)
{
    static uint8_t want_enc[4096];
    uint8_t want_hash[HSZ], got[HSZ], ref[HSZ];
    size_t len;
    from_hex(want_hash, hash_hex);
    ref_hash(c, ref);
    assert_hash_eq(ref, want_hash, "reference vs documented hash");
    cr_assert_eq(nub_cap_hash(c, got), NUB_CAP_OK);
    assert_hash_eq(got, want_hash, "nub_cap_hash vs documented hash");
    if (enc_hex == NULL)
        return;
    size_t want_len = from_hex(want_enc, enc_hex);
    uint8_t *enc = encode(c, &len);
    cr_assert_eq(len, want_len);
    cr_assert_eq(memcmp(enc, want_enc, len), 0, "encoding differs from docs/caps.md");
    cr_assert_eq(nub_cap_hash_encoded(want_enc, want_len, got), NUB_CAP_OK);
    assert_hash_eq(got, want_hash, "nub_cap_hash_encoded vs documented hash");
    free(enc);
}

/* The examples of docs/caps.md, built with the builders. */
Test(cap, fixed_vectors)
{
    struct nub_cap c, abc;
    uint8_t habc[HSZ], hcnode[HSZ];
    nub_cap_data(&abc, "abc", 3);
    check_vector(&abc, VEC_DATA_ABC_ENC, VEC_DATA_ABC_HASH);
    cr_assert_eq(nub_cap_hash(&abc, habc), NUB_CAP_OK);

    nub_cap_data(&c, NULL, 0);
    check_vector(&c, VEC_DATA_EMPTY_ENC, VEC_DATA_EMPTY_HASH);

    uint8_t *a4097 = malloc(4097);
    memset(a4097, 'a', 4097);
    nub_cap_data(&c, a4097, 4097);
    check_vector(&c, NULL, VEC_DATA_4097_HASH);
    free(a4097);

    nub_cap_cnode(&c, 0, NULL, 0);
    check_vector(&c, VEC_CNODE0_ENC, VEC_CNODE0_HASH);

    struct nub_cap_slot slot = {.index = 1};
    memcpy(slot.hash, habc, HSZ);
    nub_cap_cnode(&c, 2, &slot, 1);
    check_vector(&c, VEC_CNODE2_ENC, VEC_CNODE2_HASH);
    cr_assert_eq(nub_cap_hash(&c, hcnode), NUB_CAP_OK);

    static const uint8_t code[] = {0x00, 0x01, 0x02}, bitmask[] = {0x07};
    static const uint32_t jumps[] = {0, 2};
    struct nub_cap_endpoint ep = {.pc = 0, .stack_top = 0x10000, .arg_slot = 1, .arg_size = 4,
                                  .regs = {7}};
    struct nub_cap_mapping map = {.start = 0x20000, .size = 0x1000, .path_len = 2, .path = {1, 2}};
    nub_cap_image(&c);
    nub_cap_image_code(&c, code, sizeof code);
    nub_cap_image_bitmask(&c, bitmask, sizeof bitmask);
    nub_cap_image_jump_table(&c, jumps, 2);
    nub_cap_image_endpoints(&c, &ep, 1);
    nub_cap_image_mappings(&c, &map, 1);
    nub_cap_image_init_slots(&c, &slot, 1);
    check_vector(&c, VEC_IMAGE_ENC, VEC_IMAGE_HASH);

    uint8_t img[HSZ];
    uint64_t regs[13];
    memset(img, 0x11, HSZ);
    for (int i = 0; i < 13; i++)
        regs[i] = (uint64_t)i;
    struct nub_cap_overlay ov = {.start = 0x1000, .bytes = (const uint8_t *)"hi", .len = 2};
    nub_cap_instance(&c, img, hcnode, 0x10000, 0x1000, 1000000);
    nub_cap_instance_regs(&c, regs);
    nub_cap_instance_overlays(&c, &ov, 1);
    check_vector(&c, VEC_INSTANCE_ENC, VEC_INSTANCE_HASH);
}

/* Every documented encoding is decodable, re-encodes identically and fails
 * at every truncation and with a trailing byte. */
Test(cap, fixed_vectors_decode_strictly)
{
    static const char *const encs[] = {VEC_DATA_ABC_ENC, VEC_DATA_EMPTY_ENC, VEC_CNODE0_ENC,
                                       VEC_CNODE2_ENC, VEC_IMAGE_ENC, VEC_INSTANCE_ENC};
    static uint8_t b[4096];
    for (size_t i = 0; i < sizeof encs / sizeof encs[0]; i++) {
        size_t n = from_hex(b, encs[i]), n2;
        struct nub_cap d;
        cr_assert_eq(nub_cap_decode(b, n, &d), NUB_CAP_OK);
        uint8_t *e = encode(&d, &n2);
        cr_assert_eq(n2, n);
        cr_assert_eq(memcmp(e, b, n), 0);
        free(e);
        all_prefixes_truncated(b, n);
        trailing_rejected(b, n);
    }
}

/* ------------------------------------------------------------------------ */
/* Hashing against the literal reference                                     */
/* ------------------------------------------------------------------------ */

static void check_data_hash(size_t len, uint64_t seed)
{
    uint8_t *b = malloc(len ? len : 1);
    uint8_t got[HSZ], got2[HSZ], ref[HSZ];
    struct nub_cap c;
    rng_seed(seed);
    rnd_fill(b, len);
    ref_data_hash(b, len, ref);
    nub_cap_data(&c, b, len);
    cr_assert_eq(nub_cap_hash(&c, got), NUB_CAP_OK);
    nub_cap_data_hash(b, len, got2);
    char what[64];
    snprintf(what, sizeof what, "DATA of %zu bytes", len);
    assert_hash_eq(got, ref, what);
    assert_hash_eq(got2, ref, what);
    free(b);
}

Test(cap, data_hash_spec_sizes)
{
    static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 - 1,
                                   5 * 4096, 5 * 4096 - 3, 8 * 4096, 9 * 4096 + 1,
                                   1u << 20, (1u << 20) + 1, (1u << 20) - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check_data_hash(sizes[i], 100 + i);
}

Test(cap, data_hash_every_page_count_to_70)
{
    for (size_t pages = 1; pages <= 70; pages++) {
        check_data_hash(pages * 4096, pages);
        check_data_hash(pages * 4096 - 1 - (size_t)(pages * 37 % 4095), 1000 + pages);
    }
}

Test(cap, data_one_mib_round_trip)
{
    struct nub_cap c;
    size_t len = (1u << 20) + 5;
    uint8_t *b = malloc(len);
    rng_seed(9);
    rnd_fill(b, len);
    nub_cap_data(&c, b, len);
    round_trip(&c);
    free(b);
}

static void check_cnode(unsigned s, uint32_t count, uint64_t seed)
{
    uint64_t n = (uint64_t)1 << s;
    struct nub_cap_slot *slots = malloc((count ? count : 1) * sizeof *slots);
    uint8_t got[HSZ], ref[HSZ];
    struct nub_cap c;
    rng_seed(seed);
    rnd_sorted_slots(slots, count, n);
    nub_cap_cnode(&c, (uint8_t)s, slots, count);
    cr_assert_eq(nub_cap_hash(&c, got), NUB_CAP_OK);
    ref_cnode_hash(s, slots, count, ref);
    char what[64];
    snprintf(what, sizeof what, "CNODE size_log %u with %u slots", s, count);
    assert_hash_eq(got, ref, what);
    size_t len;
    uint8_t *enc = encode(&c, &len);
    cr_assert_eq(nub_cap_hash_encoded(enc, len, got), NUB_CAP_OK);
    assert_hash_eq(got, ref, what);
    free(enc);
    free(slots);
}

Test(cap, cnode_hash_size_log_0_to_10)
{
    for (unsigned s = 0; s <= 10; s++) {
        uint32_t n = 1u << s;
        check_cnode(s, 0, s);
        check_cnode(s, 1, 10 + s);
        check_cnode(s, n, 20 + s);
        for (int k = 0; k < 6; k++)
            check_cnode(s, (uint32_t)(1 + (uint64_t)(k * 0x9E3779B9u + s) % n), 30 + 7 * s + k);
    }
}

Test(cap, cnode_hash_size_log_16_sparse_vs_full_tree)
{
    struct nub_cap_slot slots[4] = {{.index = 0}, {.index = 1}, {.index = 12345}, {.index = 65535}};
    uint8_t got[HSZ], ref[HSZ];
    struct nub_cap c;
    for (int i = 0; i < 4; i++)
        memset(slots[i].hash, 0xA0 + i, HSZ);
    for (uint32_t k = 1; k <= 4; k++) {
        nub_cap_cnode(&c, 16, slots + 4 - k, k);
        cr_assert_eq(nub_cap_hash(&c, got), NUB_CAP_OK);
        ref_cnode_hash(16, slots + 4 - k, k, ref);
        assert_hash_eq(got, ref, "size_log 16, few slots");
    }
    check_cnode(16, 0, 5);
    check_cnode(16, 3, 6);
    check_cnode(16, 65536, 7);
    check_cnode(15, 1000, 8);
}

Test(cap, cnode_slot_hash_of_zeros_differs_from_empty)
{
    struct nub_cap_slot zero = {.index = 0};
    struct nub_cap c;
    uint8_t a[HSZ], b[HSZ];
    nub_cap_cnode(&c, 1, &zero, 1);
    cr_assert_eq(nub_cap_hash(&c, a), NUB_CAP_OK);
    nub_cap_cnode(&c, 1, NULL, 0);
    cr_assert_eq(nub_cap_hash(&c, b), NUB_CAP_OK);
    cr_assert_neq(memcmp(a, b, HSZ), 0);
}

Test(cap, image_instance_hash_is_tagged_encoding)
{
    rng_seed(11);
    for (int it = 0; it < 200; it++) {
        struct owned o;
        size_t len;
        gen_cap(&o, (uint8_t)(it % 2 ? NUB_CAP_IMAGE : NUB_CAP_INSTANCE));
        uint8_t *enc = encode(&o.c, &len);
        uint8_t *tagged = malloc(len + 1), got[HSZ], ref[HSZ];
        tagged[0] = o.c.kind == NUB_CAP_IMAGE ? 0x20 : 0x10;
        memcpy(tagged + 1, enc, len);
        H(ref, tagged, len + 1);
        cr_assert_eq(nub_cap_hash(&o.c, got), NUB_CAP_OK);
        assert_hash_eq(got, ref, "H(tag || encoding)");
        free(tagged);
        free(enc);
        o_free(&o);
    }
}

/* ------------------------------------------------------------------------ */
/* Malformed encodings: each gets its own code                               */
/* ------------------------------------------------------------------------ */

static int decode_vec(const struct vec *v)
{
    struct nub_cap d;
    uint8_t h[HSZ];
    int rc = nub_cap_decode(v->p, v->n, &d);
    cr_assert_eq(nub_cap_hash_encoded(v->p, v->n, h), rc, "hash_encoded disagrees with decode");
    return rc;
}

static void put_slot(struct vec *v, uint32_t index)
{
    uint8_t h[HSZ];
    memset(h, (int)(index & 0xff), HSZ);
    v_u32(v, index);
    v_put(v, h, HSZ);
}

/* CNODE with these slot indices, in this order. */
static int cnode_with(uint8_t size_log, const uint32_t *idx, uint32_t n)
{
    struct vec v = {0};
    v_u8(&v, NUB_CAP_CNODE);
    v_u8(&v, size_log);
    v_u32(&v, n);
    for (uint32_t i = 0; i < n; i++)
        put_slot(&v, idx[i]);
    int rc = decode_vec(&v);
    free(v.p);
    return rc;
}

Test(cap, reject_cnode_slots)
{
    cr_assert_eq(cnode_with(4, (uint32_t[]){1, 3, 7}, 3), NUB_CAP_OK);
    cr_assert_eq(cnode_with(4, (uint32_t[]){3, 1}, 2), NUB_CAP_E_SLOT_UNSORTED);
    cr_assert_eq(cnode_with(4, (uint32_t[]){1, 5, 2}, 3), NUB_CAP_E_SLOT_UNSORTED);
    cr_assert_eq(cnode_with(4, (uint32_t[]){2, 2}, 2), NUB_CAP_E_SLOT_DUP);
    cr_assert_eq(cnode_with(4, (uint32_t[]){0, 9, 9}, 3), NUB_CAP_E_SLOT_DUP);
    cr_assert_eq(cnode_with(2, (uint32_t[]){4}, 1), NUB_CAP_E_SLOT_RANGE);
    cr_assert_eq(cnode_with(2, (uint32_t[]){3}, 1), NUB_CAP_OK);
    cr_assert_eq(cnode_with(0, (uint32_t[]){1}, 1), NUB_CAP_E_SLOT_RANGE);
    cr_assert_eq(cnode_with(0, (uint32_t[]){0}, 1), NUB_CAP_OK);
    cr_assert_eq(cnode_with(16, (uint32_t[]){65535}, 1), NUB_CAP_OK);
    cr_assert_eq(cnode_with(16, (uint32_t[]){65536}, 1), NUB_CAP_E_SLOT_RANGE);
    cr_assert_eq(cnode_with(16, (uint32_t[]){UINT32_MAX}, 1), NUB_CAP_E_SLOT_RANGE);
    cr_assert_eq(cnode_with(17, NULL, 0), NUB_CAP_E_SIZE_LOG);
    cr_assert_eq(cnode_with(255, NULL, 0), NUB_CAP_E_SIZE_LOG);
    cr_assert_eq(cnode_with(16, NULL, 0), NUB_CAP_OK);
}

Test(cap, reject_unknown_kind_and_empty_input)
{
    static const uint8_t kinds[] = {0, 5, 6, 0x10, 0x7f, 0xff};
    uint8_t b[16] = {0};
    struct nub_cap d;
    for (size_t i = 0; i < sizeof kinds; i++) {
        b[0] = kinds[i];
        cr_assert_eq(nub_cap_decode(b, 1, &d), NUB_CAP_E_KIND);
        cr_assert_eq(nub_cap_decode(b, sizeof b, &d), NUB_CAP_E_KIND);
    }
    cr_assert_eq(nub_cap_decode(b, 0, &d), NUB_CAP_E_TRUNCATED);
    cr_assert_eq(nub_cap_decode(NULL, 0, &d), NUB_CAP_E_TRUNCATED);
    cr_assert_eq(nub_cap_decode(NULL, 5, &d), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_decode(b, 5, NULL), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_hash_encoded(b, 5, NULL), NUB_CAP_E_ARG);
}

/* Lengths and counts near UINT32_MAX, including products that wrap in 32 bits. */
Test(cap, reject_huge_lengths)
{
    struct vec v = {0};
    uint8_t pad[256] = {0};

    static const uint32_t lens[] = {UINT32_MAX, UINT32_MAX - 1, 0x80000000u, 300};
    for (size_t i = 0; i < 4; i++) {
        v.n = 0;
        v_u8(&v, NUB_CAP_DATA);
        v_u32(&v, lens[i]);
        v_put(&v, pad, sizeof pad);
        cr_assert_eq(decode_vec(&v), NUB_CAP_E_TRUNCATED, "DATA length %u", lens[i]);
    }
    /* 0x071C71C8 * 36 = 2^32 + 32: a 32-bit product would see 32 bytes. */
    static const uint32_t counts[] = {UINT32_MAX, 0x071C71C8u, 0x80000000u};
    for (size_t i = 0; i < 3; i++) {
        v.n = 0;
        v_u8(&v, NUB_CAP_CNODE);
        v_u8(&v, 16);
        v_u32(&v, counts[i]);
        v_put(&v, pad, 32);
        cr_assert_eq(decode_vec(&v), NUB_CAP_E_TRUNCATED, "cnode count %u", counts[i]);
    }
    /* IMAGE: empty code and bitmask, then a huge jump/endpoint/mapping/slot count. */
    for (int field = 0; field < 4; field++) {
        v.n = 0;
        v_u8(&v, NUB_CAP_IMAGE);
        v_u32(&v, 0);
        v_u32(&v, 0);
        for (int f = 0; f < field; f++)
            v_u32(&v, 0);
        v_u32(&v, field == 1 ? 0x02000000u : UINT32_MAX); /* 2^25 * 128 = 2^32 */
        v_put(&v, pad, sizeof pad);
        cr_assert_eq(decode_vec(&v), NUB_CAP_E_TRUNCATED, "image field %d", field);
    }
    /* INSTANCE overlay length near UINT32_MAX. */
    v.n = 0;
    v_u8(&v, NUB_CAP_INSTANCE);
    v_put(&v, pad, 64);
    v_u32(&v, 1);
    v_u64(&v, 0);
    v_u32(&v, UINT32_MAX);
    v_put(&v, pad, sizeof pad);
    cr_assert_eq(decode_vec(&v), NUB_CAP_E_TRUNCATED);
    free(v.p);
}

/* IMAGE with one mapping of `path_len` and initial slots in the given order. */
static int image_with(uint32_t path_len, const uint32_t *slots, uint32_t nslots)
{
    struct vec v = {0};
    v_u8(&v, NUB_CAP_IMAGE);
    v_u32(&v, 0);
    v_u32(&v, 0);
    v_u32(&v, 0);
    v_u32(&v, 0);
    v_u32(&v, 1);
    v_u64(&v, 0x1000);
    v_u64(&v, 0x2000);
    v_u32(&v, path_len);
    for (uint32_t i = 0; i < path_len && i < 16; i++)
        v_u32(&v, i);
    v_u32(&v, nslots);
    for (uint32_t i = 0; i < nslots; i++)
        put_slot(&v, slots[i]);
    int rc = decode_vec(&v);
    free(v.p);
    return rc;
}

Test(cap, reject_image_paths_and_slots)
{
    cr_assert_eq(image_with(0, NULL, 0), NUB_CAP_OK);
    cr_assert_eq(image_with(8, NULL, 0), NUB_CAP_OK);
    cr_assert_eq(image_with(9, NULL, 0), NUB_CAP_E_PATH_LEN);
    cr_assert_eq(image_with(16, NULL, 0), NUB_CAP_E_PATH_LEN);
    cr_assert_eq(image_with(UINT32_MAX, NULL, 0), NUB_CAP_E_PATH_LEN);
    cr_assert_eq(image_with(2, (uint32_t[]){0, 7, UINT32_MAX}, 3), NUB_CAP_OK);
    cr_assert_eq(image_with(2, (uint32_t[]){7, 0}, 2), NUB_CAP_E_SLOT_UNSORTED);
    cr_assert_eq(image_with(2, (uint32_t[]){7, 7}, 2), NUB_CAP_E_SLOT_DUP);
}

struct ov_spec {
    uint64_t start;
    uint32_t len;
};

static int instance_with(const struct ov_spec *ov, uint32_t n)
{
    struct vec v = {0};
    uint8_t zero[13 * 8 + 64] = {0};
    v_u8(&v, NUB_CAP_INSTANCE);
    v_put(&v, zero, 64);
    v_u32(&v, n);
    for (uint32_t i = 0; i < n; i++) {
        v_u64(&v, ov[i].start);
        v_u32(&v, ov[i].len);
        for (uint32_t k = 0; k < ov[i].len; k++)
            v_u8(&v, (uint8_t)k);
    }
    v_u64(&v, 0x10000);
    v_put(&v, zero, 13 * 8);
    v_u64(&v, 0);
    v_u64(&v, 0);
    int rc = decode_vec(&v);
    free(v.p);
    return rc;
}

Test(cap, reject_instance_overlays)
{
    cr_assert_eq(instance_with((struct ov_spec[]){{0, 4}, {4, 4}, {100, 1}}, 3), NUB_CAP_OK);
    cr_assert_eq(instance_with((struct ov_spec[]){{0, 0}}, 1), NUB_CAP_E_OVERLAY_EMPTY);
    cr_assert_eq(instance_with((struct ov_spec[]){{0, 4}, {3, 4}}, 2), NUB_CAP_E_OVERLAY_ORDER);
    cr_assert_eq(instance_with((struct ov_spec[]){{8, 4}, {0, 4}}, 2), NUB_CAP_E_OVERLAY_ORDER);
    cr_assert_eq(instance_with((struct ov_spec[]){{8, 4}, {8, 4}}, 2), NUB_CAP_E_OVERLAY_ORDER);
    cr_assert_eq(instance_with((struct ov_spec[]){{UINT64_MAX, 1}}, 1), NUB_CAP_OK);
    cr_assert_eq(instance_with((struct ov_spec[]){{UINT64_MAX - 3, 4}}, 1), NUB_CAP_OK);
    cr_assert_eq(instance_with((struct ov_spec[]){{UINT64_MAX, 2}}, 1), NUB_CAP_E_OVERLAY_RANGE);
    cr_assert_eq(instance_with((struct ov_spec[]){{UINT64_MAX - 3, 4}, {UINT64_MAX, 1}}, 2),
                 NUB_CAP_E_OVERLAY_ORDER);
}

/* Flip single bytes of valid encodings: the decoder never crashes, and any
 * accepted input re-encodes to itself. */
Test(cap, mutations_accept_only_canonical)
{
    rng_seed(13);
    for (int it = 0; it < 300; it++) {
        struct owned o;
        size_t len, len2;
        gen_cap(&o, (uint8_t)(NUB_CAP_DATA + it % 4));
        uint8_t *enc = encode(&o.c, &len);
        for (int m = 0; m < 40; m++) {
            size_t at = rnd_below(len);
            uint8_t old = enc[at];
            enc[at] ^= (uint8_t)(1u << rnd_below(8));
            struct nub_cap d;
            int rc = nub_cap_decode(enc, len, &d);
            cr_assert(rc <= 0 && rc >= NUB_CAP_E_NOSPACE);
            if (rc == NUB_CAP_OK) {
                uint8_t *e2 = encode(&d, &len2);
                cr_assert_eq(len2, len);
                cr_assert_eq(memcmp(e2, enc, len), 0);
                free(e2);
            }
            enc[at] = old;
        }
        free(enc);
        o_free(&o);
    }
}

/* ------------------------------------------------------------------------ */
/* Encoder-side validation and arguments                                     */
/* ------------------------------------------------------------------------ */

static int encode_rc(const struct nub_cap *c)
{
    size_t len;
    uint8_t h[HSZ];
    int rc = nub_cap_encode(c, NULL, 0, &len);
    cr_assert_eq(nub_cap_validate(c), rc);
    cr_assert_eq(nub_cap_hash(c, h), rc);
    return rc;
}

Test(cap, encoder_rejects_what_decoder_rejects)
{
    struct nub_cap c;
    struct nub_cap_slot s[3] = {{.index = 2}, {.index = 1}, {.index = 1}};
    nub_cap_cnode(&c, 4, s, 2);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_SLOT_UNSORTED);
    nub_cap_cnode(&c, 4, s + 1, 2);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_SLOT_DUP);
    nub_cap_cnode(&c, 1, s, 1);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_SLOT_RANGE);
    nub_cap_cnode(&c, 17, NULL, 0);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_SIZE_LOG);
    nub_cap_cnode(&c, 4, NULL, 0);
    c.cnode.slots.count = 2; /* count without items */
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_ARG);

    nub_cap_data(&c, "x", UINT64_C(1) << 32);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_TOO_LONG);
    nub_cap_data(&c, NULL, 1);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_ARG);

    struct nub_cap_mapping m = {.path_len = 9};
    nub_cap_image(&c);
    nub_cap_image_mappings(&c, &m, 1);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_PATH_LEN);
    nub_cap_image(&c);
    nub_cap_image_init_slots(&c, s, 2);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_SLOT_UNSORTED);
    nub_cap_image(&c);
    nub_cap_image_code(&c, "x", UINT64_C(1) << 32);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_TOO_LONG);

    uint8_t z[HSZ] = {0};
    struct nub_cap_overlay ov[2] = {{.start = 10, .bytes = z, .len = 4},
                                    {.start = 12, .bytes = z, .len = 4}};
    nub_cap_instance(&c, z, z, 0, 0, 0);
    nub_cap_instance_overlays(&c, ov, 2);
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_OVERLAY_ORDER);
    ov[0].len = 0;
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_OVERLAY_EMPTY);
    ov[0].len = 2;
    cr_assert_eq(encode_rc(&c), NUB_CAP_OK);
    ov[1].start = UINT64_MAX - 2;
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_OVERLAY_RANGE);

    c.kind = 9;
    cr_assert_eq(encode_rc(&c), NUB_CAP_E_KIND);
    cr_assert_eq(nub_cap_validate(NULL), NUB_CAP_E_ARG);
    size_t len;
    nub_cap_data(&c, "abc", 3);
    cr_assert_eq(nub_cap_encode(&c, NULL, 0, NULL), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_hash(&c, NULL), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_encoded_len(&c, &len), NUB_CAP_OK);
    cr_assert_eq(len, 8);
}

Test(cap, encode_nospace)
{
    struct nub_cap c;
    uint8_t buf[8];
    size_t len = 0;
    nub_cap_data(&c, "abc", 3);
    memset(buf, 0xEE, sizeof buf);
    cr_assert_eq(nub_cap_encode(&c, buf, 7, &len), NUB_CAP_E_NOSPACE);
    cr_assert_eq(len, 8);
    cr_assert_eq(buf[7], 0xEE, "wrote past the given capacity");
    cr_assert_eq(nub_cap_encode(&c, buf, 0, &len), NUB_CAP_E_NOSPACE);
    cr_assert_eq(nub_cap_encode(&c, buf, 8, &len), NUB_CAP_OK);
    cr_assert_eq(memcmp(buf, "\x01\x03\x00\x00\x00" "abc", 8), 0);
}

Test(cap, accessors_check_kind_and_range)
{
    struct nub_cap c;
    struct nub_cap_slot s = {.index = 3};
    uint32_t idx;
    uint8_t h[HSZ];
    struct nub_cap_endpoint ep;
    struct nub_cap_mapping m;
    struct nub_cap_overlay o;
    nub_cap_cnode(&c, 2, &s, 1);
    cr_assert_eq(nub_cap_cnode_slot(&c, 0, &idx, NULL), NUB_CAP_OK);
    cr_assert_eq(idx, 3);
    cr_assert_eq(nub_cap_cnode_slot(&c, 1, &idx, h), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_image_jump(&c, 0, &idx), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_image_endpoint(&c, 0, &ep), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_image_mapping(&c, 0, &m), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_image_init_slot(&c, 0, &idx, h), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_instance_overlay(&c, 0, &o), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_cnode_slot(NULL, 0, &idx, h), NUB_CAP_E_ARG);
    nub_cap_image(&c);
    cr_assert_eq(nub_cap_image_jump(&c, 0, &idx), NUB_CAP_E_ARG);
    cr_assert_eq(nub_cap_cnode_slot(&c, 0, &idx, h), NUB_CAP_E_ARG);
}

Test(cap, decode_is_zero_copy)
{
    uint8_t b[64];
    size_t n = from_hex(b, VEC_CNODE2_ENC);
    struct nub_cap d;
    cr_assert_eq(nub_cap_decode(b, n, &d), NUB_CAP_OK);
    cr_assert_null(d.cnode.slots.items);
    cr_assert_eq(d.cnode.slots.enc, b + 6);
    cr_assert_eq(d.cnode.slots.enc_len, 36);
    n = from_hex(b, VEC_DATA_ABC_ENC);
    cr_assert_eq(nub_cap_decode(b, n, &d), NUB_CAP_OK);
    cr_assert_eq(d.data.bytes.ptr, b + 5);
}

Test(cap, strerror_names_every_code)
{
    for (int e = NUB_CAP_OK; e >= NUB_CAP_E_NOSPACE; e--) {
        const char *s = nub_cap_strerror(e);
        cr_assert_not_null(s);
        cr_assert_eq(strncmp(s, "NUB_CAP_", 8), 0);
        cr_assert_null(strstr(s, "E_?"), "code %d unnamed", e);
        for (int f = e + 1; f <= NUB_CAP_OK; f++)
            cr_assert_str_neq(s, nub_cap_strerror(f));
    }
    cr_assert_not_null(strstr(nub_cap_strerror(-999), "unknown"));
}
