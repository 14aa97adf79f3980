/* Integration tests of caps and the nubk kernel on every backend: put/get, guest vs host hashes, rejection, full directory, the no-entry fast path, hostile directories. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "../../host/internal.h"
#include "harness.h"
#include "nub/abi.h"
#include "nub/cap.h"
#include "nub/cdir.h"
#include "nub/nubk.h"

/* ---- helpers ----------------------------------------------------------- */

struct logbook {
    int warnings;      /* host warnings (cache reader) */
    int guest_warnings; /* nubk WARN lines */
    char last[512];
};

static void on_log(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    struct logbook *lb = ctx;
    if (level != NUB_LOG_LEVEL_WARN)
        return;
    if (src == NUB_LOG_SRC_HOST)
        lb->warnings++;
    else if (src == NUB_LOG_SRC_GUEST)
        lb->guest_warnings++;
    snprintf(lb->last, sizeof lb->last, "%.*s", (int)len, msg);
}

/* A ready nubk sandbox with a directory of `capacity` slots and `arena` bytes (0: defaults). */
static nub_sandbox *new_nubk(enum nub_backend backend, uint64_t capacity, uint64_t arena,
                             uint64_t max_cap, struct logbook *lb)
{
    struct nub_config cfg = test_config(backend);
    struct nub_nubk_config kcfg;
    struct nub_init_data init;
    cfg.max_guest_log_level = NUB_LOG_LEVEL_WARN;
    cr_assert_eq(nub_nubk_setup(&cfg, &init, &kcfg, capacity, arena, max_cap), NUB_OK);
    nub_sandbox *sb = new_ready("nubk", &cfg, &init);
    if (lb != NULL) {
        memset(lb, 0, sizeof *lb);
        nub_sandbox_set_log(sb, on_log, lb);
    }
    return sb;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill_random(uint64_t *s, void *p, size_t n)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rng_next(s);
}

/* Canonical encoding of c (malloc'd). */
static uint8_t *encode(const struct nub_cap *c, size_t *len)
{
    cr_assert_eq(nub_cap_encoded_len(c, len), NUB_CAP_OK);
    uint8_t *buf = malloc(*len);
    cr_assert_not_null(buf);
    size_t got;
    cr_assert_eq(nub_cap_encode(c, buf, *len, &got), NUB_CAP_OK);
    cr_assert_eq(got, *len);
    return buf;
}

/* Put `len` canonical bytes; assert the guest's hash equals the host's; return it. */
static void put_expect(nub_sandbox *sb, const uint8_t *enc, size_t len, uint8_t hash[32])
{
    uint8_t host[32];
    cr_assert_eq(nub_cap_hash_bytes(enc, len, host), NUB_OK);
    nub_status rc = nub_put_cap(sb, enc, len, hash);
    cr_assert_eq(rc, NUB_OK, "put_cap of %zu bytes: %s: %s", len, nub_strerror(rc),
                 nub_sandbox_last_error(sb)->message);
    cr_assert_eq(memcmp(hash, host, 32), 0, "guest and host hashes differ for a %zu-byte cap", len);
}

/* The cache holds exactly `enc` under `hash`. */
static void expect_stored(nub_sandbox *sb, const uint8_t hash[32], const uint8_t *enc, size_t len)
{
    const uint8_t *data;
    size_t n;
    cr_assert_eq(nub_cache_contains(sb, hash), 1);
    cr_assert_eq(nub_cache_get(sb, hash, &data, &n), NUB_OK);
    cr_assert_eq(n, len);
    cr_assert_eq(memcmp(data, enc, len), 0, "stored bytes differ");
}

static uint64_t count_of(nub_sandbox *sb)
{
    uint64_t n = 0;
    nub_status rc = nub_cache_count(sb, &n);
    cr_assert_eq(rc, NUB_OK, "count: %s", nub_strerror(rc));
    return n;
}

static void expect_smoke(nub_sandbox *sb)
{
    uint8_t v = 0;
    size_t n = 0;
    nub_status rc = nub_call_into(sb, NUB_FN_SMOKE, NULL, 0, &v, 1, &n);
    cr_assert_eq(rc, NUB_OK, "smoke: %s: %s", nub_strerror(rc), nub_sandbox_last_error(sb)->message);
    cr_assert_eq(n, 1);
    cr_assert_eq(v, 42);
}

/* A small DATA cap whose bytes are the 8-byte value i. */
static uint8_t *small_data(uint64_t i, size_t *len)
{
    struct nub_cap c;
    nub_cap_data(&c, &i, sizeof i);
    return encode(&c, len);
}

/* ---- random caps of every kind ---------------------------------------- */

struct capbuf {
    uint8_t bytes[2][600];
    struct nub_cap_slot slots[40];
    uint32_t jumps[16];
    struct nub_cap_endpoint eps[3];
    struct nub_cap_mapping maps[4];
    struct nub_cap_overlay ovs[4];
    uint8_t ov_bytes[4][32];
};

static void random_slots(uint64_t *s, struct nub_cap_slot *slots, uint32_t count, uint32_t limit)
{
    uint32_t idx = (uint32_t)(rng_next(s) % 4);
    for (uint32_t i = 0; i < count; i++) {
        slots[i].index = idx;
        fill_random(s, slots[i].hash, 32);
        idx += 1 + (uint32_t)(rng_next(s) % (limit / (count + 1) + 1));
    }
}

static void random_image(uint64_t *s, struct capbuf *b, struct nub_cap *c)
{
    nub_cap_image(c);
    size_t code = rng_next(s) % 600, mask = rng_next(s) % 80;
    fill_random(s, b->bytes[0], code);
    fill_random(s, b->bytes[1], mask);
    nub_cap_image_code(c, b->bytes[0], code);
    nub_cap_image_bitmask(c, b->bytes[1], mask);
    uint32_t nj = (uint32_t)(rng_next(s) % 16), ne = (uint32_t)(rng_next(s) % 4),
             nm = (uint32_t)(rng_next(s) % 5), ns = (uint32_t)(rng_next(s) % 10);
    fill_random(s, b->jumps, sizeof b->jumps);
    fill_random(s, b->eps, sizeof b->eps);
    for (uint32_t i = 0; i < nm; i++) {
        fill_random(s, &b->maps[i], sizeof b->maps[i]);
        b->maps[i].path_len = (uint32_t)(rng_next(s) % (NUB_CAP_PATH_MAX + 1));
    }
    random_slots(s, b->slots, ns, 1000);
    nub_cap_image_jump_table(c, b->jumps, nj);
    nub_cap_image_endpoints(c, b->eps, ne);
    nub_cap_image_mappings(c, b->maps, nm);
    nub_cap_image_init_slots(c, b->slots, ns);
}

static void random_instance(uint64_t *s, struct capbuf *b, struct nub_cap *c)
{
    uint8_t image[32], root[32];
    uint64_t regs[NUB_CAP_REGS];
    fill_random(s, image, 32);
    fill_random(s, root, 32);
    fill_random(s, regs, sizeof regs);
    nub_cap_instance(c, image, root, rng_next(s), rng_next(s), rng_next(s));
    nub_cap_instance_regs(c, regs);
    uint32_t n = (uint32_t)(rng_next(s) % 5);
    uint64_t at = rng_next(s) % 4096;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t len = 1 + rng_next(s) % 32;
        fill_random(s, b->ov_bytes[i], (size_t)len);
        b->ovs[i] = (struct nub_cap_overlay){at, b->ov_bytes[i], len};
        at += len + rng_next(s) % 100;
    }
    nub_cap_instance_overlays(c, b->ovs, n);
}

/* A random valid cap of `kind` whose fields live in *b. */
static void random_cap(uint64_t *s, uint8_t kind, struct capbuf *b, struct nub_cap *c)
{
    switch (kind) {
    case NUB_CAP_DATA: {
        size_t n = rng_next(s) % 600;
        fill_random(s, b->bytes[0], n);
        nub_cap_data(c, b->bytes[0], n);
        break;
    }
    case NUB_CAP_CNODE: {
        uint8_t size_log = (uint8_t)(rng_next(s) % (NUB_CAP_SIZE_LOG_MAX + 1));
        uint32_t slots = 1u << size_log, count = (uint32_t)(rng_next(s) % 40);
        count = count > slots / 4 ? slots / 4 : count;
        random_slots(s, b->slots, count, slots - 4);
        nub_cap_cnode(c, size_log, b->slots, count);
        break;
    }
    case NUB_CAP_IMAGE:
        random_image(s, b, c);
        break;
    default:
        random_instance(s, b, c);
        break;
    }
    cr_assert_eq(nub_cap_validate(c), NUB_CAP_OK, "generated an invalid cap of kind %u", kind);
}

/* ---- tests ------------------------------------------------------------- */

BACKEND_TEST(caps, smoke_boot_info_heap_stats)
{
    nub_sandbox *sb = new_nubk(backend, 0, 0, 0, NULL);
    expect_smoke(sb);
    struct nub_boot_info bi;
    size_t n = 0;
    cr_assert_eq(nub_call_into(sb, NUB_FN_GET_BOOT_INFO, NULL, 0, &bi, sizeof bi, &n), NUB_OK);
    cr_assert_eq(n, sizeof bi);
    cr_assert_eq(bi.magic, NUB_BOOT_INFO_MAGIC);
    cr_assert_eq(bi.version, NUB_BOOT_INFO_VERSION);
    cr_assert_geq(bi.dir_gva, NUB_KERNEL_BASE);
    uint64_t want;
    nub_cdir_size(NUB_NUBK_DEFAULT_CAPACITY, NUB_NUBK_DEFAULT_ARENA_SIZE, &want);
    cr_assert_eq(bi.dir_size, want);
    struct nub_heap_stats st;
    cr_assert_eq(nub_call_into(sb, NUB_FN_HEAP_STATS, NULL, 0, &st, sizeof st, &n), NUB_OK);
    cr_assert_eq(n, sizeof st);
    cr_assert_geq(st.bytes_in_use, want, "the directory is on the heap");
    cr_assert_eq(count_of(sb), 0);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, default_config_fits_a_small_heap)
{
    struct nub_config cfg = test_config(backend); /* 128 KiB heap, no init data */
    nub_sandbox *sb = new_ready("nubk", &cfg, NULL);
    expect_smoke(sb);
    size_t len;
    uint8_t *enc = small_data(7, &len), hash[32];
    put_expect(sb, enc, len, hash);
    expect_stored(sb, hash, enc, len);
    free(enc);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, bad_config_fails_init)
{
    struct nub_config cfg = test_config(backend);
    struct nub_nubk_config kcfg = {NUB_NUBK_CONFIG_MAGIC, 1000, 4096}; /* not a power of two */
    struct nub_init_data init = {&kcfg, sizeof kcfg, NUB_MEM_READ};
    nub_sandbox *sb = NULL;
    struct nub_error err;
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("nubk"), &init, &cfg, &sb, &err), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_E_GUEST_ABORT);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "power of two") != NULL, "%s",
              nub_sandbox_last_error(sb)->message);
    nub_sandbox_destroy(sb);
    kcfg = (struct nub_nubk_config){NUB_NUBK_CONFIG_MAGIC, 1u << 16, 64u << 20}; /* heap too small */
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("nubk"), &init, &cfg, &sb, &err), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_E_GUEST_ABORT);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "heap_size") != NULL, "%s",
              nub_sandbox_last_error(sb)->message);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, data_sizes_match_host_hash)
{
    static const size_t sizes[] = {0, 1, 4096, 4097, 1u << 20};
    struct logbook lb;
    nub_sandbox *sb = new_nubk(backend, 0, 0, (1u << 20) + 64, &lb);
    cr_assert_geq(nub_sandbox_max_input(sb), (1u << 20) + 5);
    uint64_t seed = 0x1234567;
    uint8_t *bytes = malloc(1u << 20);
    fill_random(&seed, bytes, 1u << 20);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct nub_cap c;
        size_t len;
        uint8_t hash[32], direct[32];
        nub_cap_data(&c, bytes, sizes[i]);
        uint8_t *enc = encode(&c, &len);
        put_expect(sb, enc, len, hash);
        nub_cap_data_hash(bytes, sizes[i], direct);
        cr_assert_eq(memcmp(hash, direct, 32), 0, "DATA %zu: nub_cap_data_hash agrees", sizes[i]);
        expect_stored(sb, hash, enc, len);
        /* NUB_FN_GET_CAP returns the same canonical bytes. */
        uint8_t *out = NULL;
        size_t out_len = 0;
        cr_assert_eq(nub_call(sb, NUB_FN_GET_CAP, hash, 32, &out, &out_len), NUB_OK);
        cr_assert_eq(out_len, len);
        cr_assert_eq(memcmp(out, enc, len), 0);
        nub_buffer_free(out);
        free(enc);
    }
    cr_assert_eq(count_of(sb), 5);
    cr_assert_eq(lb.warnings + lb.guest_warnings, 0, "no warnings: %s", lb.last);
    free(bytes);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, random_caps_of_every_kind, .timeout = 600)
{
    const int per_kind = 600;
    nub_sandbox *sb = new_nubk(backend, 8192, 8u << 20, 0, NULL);
    struct capbuf *b = malloc(sizeof *b);
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)backend;
    uint64_t expected = 0;
    for (int i = 0; i < 4 * per_kind; i++) {
        struct nub_cap c;
        size_t len;
        uint8_t hash[32], host[32];
        random_cap(&seed, (uint8_t)(NUB_CAP_DATA + i % 4), b, &c);
        cr_assert_eq(nub_cap_hash(&c, host), NUB_CAP_OK);
        uint8_t *enc = encode(&c, &len);
        int present = nub_cache_contains(sb, host);
        put_expect(sb, enc, len, hash);
        cr_assert_eq(memcmp(hash, host, 32), 0, "cap %d (kind %u)", i, c.kind);
        expected += !present;
        if (i % 97 == 0)
            expect_stored(sb, hash, enc, len);
        free(enc);
    }
    cr_assert_eq(count_of(sb), expected);
    cr_assert_geq(expected, 4 * per_kind * 9 / 10, "mostly distinct caps: %llu", (unsigned long long)expected);
    free(b);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, cnode_size_log_16)
{
    nub_sandbox *sb = new_nubk(backend, 0, 0, 0, NULL);
    struct nub_cap_slot slots[4] = {{0, {1}}, {77, {2}}, {40000, {3}}, {65535, {4}}};
    struct nub_cap c;
    size_t len;
    uint8_t hash[32];
    nub_cap_cnode(&c, 16, slots, 4);
    uint8_t *enc = encode(&c, &len);
    put_expect(sb, enc, len, hash);
    expect_stored(sb, hash, enc, len);
    free(enc);
    nub_cap_cnode(&c, 16, NULL, 0);
    enc = encode(&c, &len);
    put_expect(sb, enc, len, hash);
    free(enc);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, rejected_cap_keeps_sandbox_usable)
{
    struct logbook lb;
    nub_sandbox *sb = new_nubk(backend, 0, 0, 0, &lb);
    size_t len;
    uint8_t *enc = small_data(1, &len), hash[32];
    uint8_t *bad = malloc(len + 1);
    memcpy(bad, enc, len);
    bad[len] = 0; /* trailing byte: not canonical */
    nub_status rc = nub_put_cap(sb, bad, len + 1, hash);
    cr_assert_eq(rc, NUB_E_CAP_REJECTED, "%s", nub_strerror(rc));
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "NUB_CAP_E_TRAILING") != NULL, "%s",
              nub_sandbox_last_error(sb)->message);
    cr_assert_eq(lb.guest_warnings, 1, "nubk logs the reason at WARN");
    cr_assert(strstr(lb.last, "NUB_CAP_E_TRAILING") != NULL, "%s", lb.last);
    uint8_t kind9[] = {9, 0, 0, 0, 0};
    cr_assert_eq(nub_put_cap(sb, kind9, sizeof kind9, hash), NUB_E_CAP_REJECTED);
    cr_assert_eq(nub_put_cap(sb, NULL, 0, hash), NUB_E_CAP_REJECTED);
    cr_assert_eq(nub_cap_hash_bytes(bad, len + 1, hash), NUB_E_INVALID);
    expect_smoke(sb);
    put_expect(sb, enc, len, hash);
    cr_assert_eq(count_of(sb), 1);
    free(bad);
    free(enc);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, full_directory_rejects_new_caps_keeps_old)
{
    struct logbook lb;
    nub_sandbox *sb = new_nubk(backend, 16, 0, 0, &lb);
    const uint64_t limit = NUB_CDIR_MAX_ENTRIES(16);
    uint8_t hashes[16][32];
    size_t len;
    for (uint64_t i = 0; i < limit; i++) {
        uint8_t *enc = small_data(i, &len);
        put_expect(sb, enc, len, hashes[i]);
        free(enc);
    }
    cr_assert_eq(count_of(sb), limit);
    uint8_t *enc = small_data(1000, &len), hash[32];
    nub_status rc = nub_put_cap(sb, enc, len, hash);
    cr_assert_eq(rc, NUB_E_CAP_REJECTED);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "full") != NULL, "%s",
              nub_sandbox_last_error(sb)->message);
    cr_assert(strstr(lb.last, "directory full") != NULL, "guest log: %s", lb.last);
    cr_assert_eq(nub_cache_contains(sb, hash), 0);
    free(enc);
    for (uint64_t i = 0; i < limit; i++) {
        enc = small_data(i, &len);
        cr_assert_eq(nub_cache_contains(sb, hashes[i]), 1);
        put_expect(sb, enc, len, hash); /* re-put of a present cap still works */
        cr_assert_eq(nub_put_cap_with_hash(sb, hashes[i], enc, len), NUB_OK);
        free(enc);
    }
    cr_assert_eq(count_of(sb), limit);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, full_arena_rejects)
{
    nub_sandbox *sb = new_nubk(backend, 64, 64, 0, NULL);
    size_t len;
    uint8_t hash[32];
    uint64_t stored = 0;
    nub_status rc = NUB_OK;
    for (uint64_t i = 0; rc == NUB_OK && i < 64; i++) {
        uint8_t *enc = small_data(i, &len);
        rc = nub_put_cap(sb, enc, len, hash);
        stored += rc == NUB_OK;
        free(enc);
    }
    cr_assert_eq(rc, NUB_E_CAP_REJECTED);
    cr_assert_eq(stored, 64 / len);
    cr_assert(strstr(nub_sandbox_last_error(sb)->message, "arena") != NULL, "%s",
              nub_sandbox_last_error(sb)->message);
    cr_assert_eq(count_of(sb), stored);
    expect_smoke(sb);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, put_with_hash_fast_path_does_not_enter)
{
    nub_sandbox *sb = new_nubk(backend, 0, 0, 0, NULL);
    size_t len, len2;
    uint8_t *enc = small_data(42, &len), *other = small_data(43, &len2), hash[32], hash2[32];
    cr_assert_eq(nub_cap_hash_bytes(enc, len, hash), NUB_OK);
    cr_assert_eq(nub_cap_hash_bytes(other, len2, hash2), NUB_OK);
    uint64_t calls = nub_sandbox_call_count(sb);
    cr_assert_eq(nub_put_cap_with_hash(sb, hash, enc, len), NUB_OK, "miss: enters");
    cr_assert_eq(nub_sandbox_call_count(sb), calls + 1);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(nub_put_cap_with_hash(sb, hash, enc, len), NUB_OK);
    cr_assert_eq(nub_sandbox_call_count(sb), calls + 1, "hits never enter the guest");
    uint8_t got[32];
    cr_assert_eq(nub_put_cap(sb, enc, len, got), NUB_OK);
    cr_assert_eq(nub_sandbox_call_count(sb), calls + 2, "nub_put_cap always enters");
    /* Claim the wrong hash for `other`: mismatch, stored under its real hash. */
    uint8_t wrong[32];
    memcpy(wrong, hash2, 32);
    wrong[0] ^= 1;
    nub_status rc = nub_put_cap_with_hash(sb, wrong, other, len2);
    cr_assert_eq(rc, NUB_E_CAP_MISMATCH, "%s", nub_strerror(rc));
    cr_assert_eq(nub_cache_contains(sb, hash2), 1);
    expect_smoke(sb);
    cr_assert_eq(count_of(sb), 2);
    free(enc);
    free(other);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, contains_get_count_absent)
{
    nub_sandbox *sb = new_nubk(backend, 0, 0, 0, NULL);
    uint8_t absent[32] = {0xab}, *out = NULL;
    const uint8_t *data = (const uint8_t *)"x";
    size_t n = 5;
    cr_assert_eq(nub_cache_contains(sb, absent), 0);
    cr_assert_eq(nub_cache_get(sb, absent, &data, &n), NUB_E_NOT_FOUND);
    cr_assert_null(data);
    cr_assert_eq(n, 0);
    cr_assert_eq(nub_call(sb, NUB_FN_GET_CAP, absent, 32, &out, &n), NUB_E_GUEST);
    cr_assert_eq(nub_sandbox_last_error(sb)->guest_status, NUB_STATUS_BAD_PAYLOAD);
    cr_assert_eq(nub_call(sb, NUB_FN_GET_CAP, absent, 31, &out, &n), NUB_E_GUEST);
    uint8_t hashes[10][32];
    size_t len;
    for (uint64_t i = 0; i < 10; i++) {
        uint8_t *enc = small_data(i, &len);
        put_expect(sb, enc, len, hashes[i]);
        cr_assert_eq(count_of(sb), i + 1);
        free(enc);
    }
    for (uint64_t i = 0; i < 10; i++) {
        uint8_t *enc = small_data(i, &len);
        expect_stored(sb, hashes[i], enc, len);
        free(enc);
    }
    cr_assert_eq(nub_cache_get(sb, absent, NULL, &n), NUB_E_INVALID);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(caps, two_sandboxes_have_separate_directories)
{
    nub_sandbox *a = new_nubk(backend, 0, 0, 0, NULL), *b = new_nubk(backend, 0, 0, 0, NULL);
    size_t la, lb;
    uint8_t *ea = small_data(1, &la), *eb = small_data(2, &lb), ha[32], hb[32];
    put_expect(a, ea, la, ha);
    put_expect(b, eb, lb, hb);
    cr_assert_eq(nub_cache_contains(a, ha), 1);
    cr_assert_eq(nub_cache_contains(a, hb), 0);
    cr_assert_eq(nub_cache_contains(b, hb), 1);
    cr_assert_eq(nub_cache_contains(b, ha), 0);
    cr_assert_eq(count_of(a), 1);
    cr_assert_eq(count_of(b), 1);
    free(ea);
    free(eb);
    nub_sandbox_destroy(a);
    nub_sandbox_destroy(b);
}

BACKEND_TEST(caps, reader_on_other_guests_and_states)
{
    struct nub_config cfg = test_config(backend);
    uint8_t hash[32] = {0};
    uint64_t n = 9;
    nub_sandbox *sb = NULL;
    struct nub_error err;
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err), NUB_OK);
    cr_assert_eq(nub_cache_count(sb, &n), NUB_E_STATE, "not evolved");
    cr_assert_eq(nub_put_cap_with_hash(sb, hash, "x", 1), NUB_E_STATE);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK);
    cr_assert_eq(nub_cache_contains(sb, hash), 0);
    cr_assert_eq(nub_cache_count(sb, &n), NUB_E_NOT_FOUND, "testguest publishes no directory");
    /* testguest's fn 4 answers 48 bytes: a put_cap protocol violation, which poisons. */
    cr_assert_eq(nub_put_cap(sb, "x", 1, hash), NUB_E_PROTOCOL);
    cr_assert_eq(nub_cache_contains(sb, hash), 0);
    cr_assert_eq(nub_cache_count(sb, &n), NUB_E_POISONED);
    cr_assert_eq(nub_put_cap_with_hash(sb, hash, "x", 1), NUB_E_POISONED);
    nub_sandbox_destroy(sb);
}

/* The directory header, through the boot info the guest published. */
static uint8_t *dir_header(nub_sandbox *sb)
{
    const struct nub_peb *peb = (const struct nub_peb *)(sb->snapshot + sb->lay.peb_off);
    const struct nub_boot_info *bi =
        (const struct nub_boot_info *)(sb->snapshot + (peb->boot_info_gva - NUB_KERNEL_BASE));
    return sb->snapshot + (bi->dir_gva - NUB_KERNEL_BASE);
}

BACKEND_TEST(caps, corrupted_directory_reads_absent_and_warns_once)
{
    struct logbook lb;
    nub_sandbox *sb = new_nubk(backend, 64, 0, 0, &lb);
    size_t len;
    uint8_t *enc = small_data(5, &len), hash[32];
    put_expect(sb, enc, len, hash);
    struct nub_cdir_header *h = (struct nub_cdir_header *)dir_header(sb);
    struct nub_cdir_slot *slots = (struct nub_cdir_slot *)((uint8_t *)h + h->table_off);
    /* A slot pointing past the arena: absent, one warning, no crash. */
    uint64_t i = 0;
    while (slots[i].blob_len == 0)
        i++;
    uint64_t saved = slots[i].blob_off;
    slots[i].blob_off = UINT64_MAX - 2;
    cr_assert_eq(nub_cache_contains(sb, hash), 0);
    cr_assert_eq(nub_cache_contains(sb, hash), 0);
    cr_assert_eq(nub_put_cap_with_hash(sb, hash, enc, len), NUB_E_CAP_REJECTED,
                 "a miss enters the guest, whose own directory check refuses it");
    cr_assert_geq(lb.warnings, 1);
    slots[i].blob_off = saved;
    cr_assert_eq(nub_cache_contains(sb, hash), 0, "still unusable until the guest runs");
    expect_smoke(sb);
    cr_assert_eq(nub_cache_contains(sb, hash), 1, "the guest ran: looked at again");
    int warned = lb.warnings;
    /* A broken header magic (the host caches a validated header until the guest runs). */
    h->magic ^= 1;
    expect_smoke(sb);
    cr_assert_eq(nub_cache_contains(sb, hash), 0);
    cr_assert_eq(nub_cache_contains(sb, hash), 0);
    uint64_t n;
    cr_assert_eq(nub_cache_count(sb, &n), NUB_E_PROTOCOL);
    cr_assert_eq(lb.warnings, warned + 1, "one warning until the guest runs again");
    h->magic ^= 1;
    /* A capacity that is not a power of two / a count that lies. */
    h->capacity = 63;
    expect_smoke(sb);
    cr_assert_eq(nub_cache_contains(sb, hash), 0);
    h->capacity = 64;
    h->count = 1000;
    expect_smoke(sb);
    cr_assert_eq(nub_cache_contains(sb, hash), 0);
    h->count = 1;
    expect_smoke(sb);
    cr_assert_eq(nub_cache_contains(sb, hash), 1);
    free(enc);
    nub_sandbox_destroy(sb);
}

/*
 * Random damage to the guest's directory header and table: every lookup is
 * absent or a view inside guest memory, an inconsistent directory is
 * reported with exactly one warning per guest run, and once the bytes are
 * back and the guest has run, every cap is found again (still usable).
 */
BACKEND_TEST(caps, random_directory_damage_reads_absent_warns_once_stays_usable, .timeout = 300)
{
    struct logbook lb;
    nub_sandbox *sb = new_nubk(backend, 64, 0, 0, &lb);
    uint8_t hashes[8][32], *encs[8];
    size_t lens[8];
    for (uint64_t i = 0; i < 8; i++) {
        encs[i] = small_data(i, &lens[i]);
        put_expect(sb, encs[i], lens[i], hashes[i]);
    }
    uint8_t *dir = dir_header(sb);
    size_t span = 64 + 64 * sizeof(struct nub_cdir_slot), reported = 0;
    uint8_t *saved = malloc(span);
    memcpy(saved, dir, span);
    uint64_t seed = 0x5eed;
    for (int round = 0; round < 60; round++) {
        for (int k = 0, n = 1 + (int)(rng_next(&seed) % 16); k < n; k++)
            dir[rng_next(&seed) % span] = (uint8_t)rng_next(&seed);
        expect_smoke(sb); /* the reader looks again after every guest run */
        int before = lb.warnings;
        uint64_t count = 0;
        nub_status crc = nub_cache_count(sb, &count);
        cr_assert(crc == NUB_OK || crc == NUB_E_PROTOCOL, "count: %s", nub_strerror(crc));
        for (int i = 0; i < 8; i++) {
            const uint8_t *data = NULL;
            size_t len = 0;
            int has = nub_cache_contains(sb, hashes[i]);
            nub_status grc = nub_cache_get(sb, hashes[i], &data, &len);
            cr_assert(has == 0 || has == 1);
            cr_assert(grc == NUB_OK || grc == NUB_E_NOT_FOUND, "get: %s", nub_strerror(grc));
            if (grc == NUB_OK)
                cr_assert(data >= sb->snapshot && len <= sb->lay.snapshot_size &&
                          (uint64_t)(data - sb->snapshot) <= sb->lay.snapshot_size - len,
                          "a view outside guest memory");
        }
        int delta = lb.warnings - before;
        cr_assert(delta == 0 || delta == 1, "%d warnings in one guest run", delta);
        cr_assert(crc == NUB_OK || delta == 1, "an inconsistent directory without a warning");
        reported += delta;
        memcpy(dir, saved, span);
        expect_smoke(sb);
        for (int i = 0; i < 8; i++)
            expect_stored(sb, hashes[i], encs[i], lens[i]);
    }
    cr_assert_gt(reported, 0, "no round produced an inconsistency");
    for (int i = 0; i < 8; i++)
        free(encs[i]);
    free(saved);
    nub_sandbox_destroy(sb);
}

/* Run `nub caps MODE FILE` (the CLI next to the guest directory) and read the hash it prints. */
static int cli_hash(const char *nub, const char *mode, const char *backend, const char *file, char out[65])
{
    char cmd[2048], line[512];
    snprintf(cmd, sizeof cmd, "%s caps %s %s%s %s 2>/dev/null", nub, mode,
             backend ? "--backend " : "", backend ? backend : "", file);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int ok = fgets(line, sizeof line, p) != NULL && strlen(line) > 66 && line[64] == ' ' &&
             strstr(line, file) != NULL;
    if (ok)
        memcpy(out, line, 64), out[64] = '\0';
    return pclose(p) == 0 && ok ? 0 : -1;
}

BACKEND_TEST(caps, cli_put_and_hash_agree)
{
    char file[] = "/tmp/nub-caps-cli-XXXXXX", a[65], b[65];
    const char *nub = nub_cli_path();
    if (access(nub, X_OK) != 0)
        cr_assert_fail("no CLI at %s: build it with `make all` or set NUB_CLI", nub);
    int fd = mkstemp(file);
    cr_assert_geq(fd, 0);
    uint64_t seed = 77;
    uint8_t buf[5000];
    fill_random(&seed, buf, sizeof buf);
    cr_assert_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    close(fd);
    cr_assert_eq(cli_hash(nub, "hash", NULL, file, a), 0);
    cr_assert_eq(cli_hash(nub, "put", nub_backend_name(backend), file, b), 0);
    cr_assert_str_eq(a, b);
    uint8_t want[32];
    nub_cap_data_hash(buf, sizeof buf, want);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(a + 2 * i, "%2x", &v);
        cr_assert_eq(v, want[i]);
    }
    unlink(file);
}
