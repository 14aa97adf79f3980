/* nubk, the reference guest kernel: configuration from init data, the cache directory on the heap, boot info, smoke and heap stats. */
#include <stddef.h>
#include <stdint.h>

#include "nub/cdir.h"
#include "nub/guest.h"
#include "nubk.h"

struct nubk_dir nubk_dir;

/* Published through the PEB; lives in .bss, inside the snapshot region. */
static struct nub_boot_info boot_info;

/* Smallest directory tried when fitting the defaults into a small heap. */
#define NUBK_MIN_ARENA (16ull * 1024)

/* Read the init-data configuration; returns 1 when one was given. */
static int read_config(uint64_t *capacity, uint64_t *arena)
{
    size_t len;
    const uint8_t *p = nub_init_data(&len);
    struct nub_nubk_config cfg;
    *capacity = NUB_NUBK_DEFAULT_CAPACITY;
    *arena = NUB_NUBK_DEFAULT_ARENA_SIZE;
    if (p == NULL || len == 0)
        return 0;
    if (len != sizeof cfg)
        nub_panic("nubk: init data of %zu bytes is not a struct nub_nubk_config (%zu bytes)", len, sizeof cfg);
    memcpy(&cfg, p, sizeof cfg);
    if (cfg.magic != NUB_NUBK_CONFIG_MAGIC)
        nub_panic("nubk: init data magic 0x%llx is not NUB_NUBK_CONFIG_MAGIC", (unsigned long long)cfg.magic);
    if (cfg.capacity != 0)
        *capacity = cfg.capacity;
    if (cfg.arena_size != 0)
        *arena = cfg.arena_size;
    return 1;
}

/* Allocate and lay out the directory; 0 on success. */
static int make_dir(uint64_t capacity, uint64_t arena)
{
    uint64_t size;
    if (nub_cdir_size(capacity, arena, &size) != NUB_CDIR_OK || size > SIZE_MAX)
        return -1;
    uint8_t *base = nub_malloc((size_t)size);
    if (base == NULL)
        return -2;
    if (nub_cdir_init(base, size, capacity, arena) != NUB_CDIR_OK)
        nub_panic("nubk: cannot lay out the cache directory");
    nubk_dir = (struct nubk_dir){base, size, capacity, arena};
    return 0;
}

static void setup_directory(void)
{
    uint64_t capacity, arena;
    int explicit_cfg = read_config(&capacity, &arena);
    int rc = make_dir(capacity, arena);
    if (rc == -1)
        nub_panic("nubk: capacity %llu is not a power of two in [%llu, %llu] (or the size overflows)",
                  (unsigned long long)capacity, (unsigned long long)NUB_CDIR_MIN_CAPACITY,
                  (unsigned long long)NUB_CDIR_MAX_CAPACITY);
    /* Without a configuration, shrink the defaults until they fit the heap. */
    while (rc == -2 && !explicit_cfg && capacity > NUB_CDIR_MIN_CAPACITY && arena > NUBK_MIN_ARENA) {
        capacity /= 2;
        arena /= 2;
        rc = make_dir(capacity, arena);
    }
    if (rc != 0) {
        uint64_t need = 0;
        nub_cdir_size(capacity, arena, &need);
        nub_panic("nubk: the %llu-byte heap cannot hold a cache directory of %llu slots and a "
                  "%llu-byte arena (%llu bytes): raise nub_config.heap_size (nub_nubk_setup)",
                  (unsigned long long)nub_peb()->heap_size, (unsigned long long)capacity,
                  (unsigned long long)arena, (unsigned long long)need);
    }
    if (!explicit_cfg && capacity != NUB_NUBK_DEFAULT_CAPACITY)
        nub_log(NUB_LOG_LEVEL_INFO, "nubk: small heap: directory of %llu slots, %llu-byte arena",
                (unsigned long long)capacity, (unsigned long long)arena);
}

static uint32_t nubk_smoke(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    uint8_t v = 42;
    return nub_reply_set(r, &v, 1);
}

static uint32_t nubk_heap_stats(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    struct nub_heap_stats st;
    nub_heap_stats(&st);
    return nub_reply_set(r, &st, sizeof st);
}

static uint32_t nubk_boot_info(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    return nub_reply_set(r, &boot_info, sizeof boot_info);
}

static void reg(uint32_t id, nub_guest_fn fn)
{
    if (nub_register(id, fn) != NUB_REG_OK)
        nub_panic("nubk: cannot register function %u", id);
}

void nub_guest_init(void)
{
    setup_directory();
    boot_info = (struct nub_boot_info){
        .magic = NUB_BOOT_INFO_MAGIC,
        .version = NUB_BOOT_INFO_VERSION,
        .dir_gva = (uint64_t)(uintptr_t)nubk_dir.base,
        .dir_size = nubk_dir.size,
    };
    nub_set_boot_info(&boot_info);
    reg(NUB_FN_SMOKE, nubk_smoke);
    reg(NUB_FN_HEAP_STATS, nubk_heap_stats);
    reg(NUB_FN_PUT_CAP, nubk_put_cap);
    reg(NUB_FN_GET_BOOT_INFO, nubk_boot_info);
    reg(NUB_FN_GET_CAP, nubk_get_cap);
}
