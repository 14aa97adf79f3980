/* Sandbox lifecycle: create from an ELF (memory, PEB, page tables, VM), registration, guest counter, evolve, destroy. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checked.h"
#include "gdb.h"
#include "internal.h"
#include "nub/wire.h"

static void *map_region(uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static uint64_t random_u64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint64_t)(uintptr_t)&v ^ (uint64_t)getpid() << 32;
    return v;
}

static void write_peb(nub_sandbox *sb, uint32_t init_perms)
{
    const struct nub_layout *l = &sb->lay;
    struct nub_peb peb = {
        .magic = NUB_PEB_MAGIC,
        .abi_version = NUB_ABI_VERSION,
        .init_data_perms = l->init_size ? init_perms : 0,
        .input_gva = nub_scratch_gva(l, l->input_off),
        .input_size = l->input_size,
        .output_gva = nub_scratch_gva(l, l->output_off),
        .output_size = l->output_size,
        .heap_gva = nub_snap_gva(l->heap_off),
        .heap_size = l->heap_size,
        .init_data_gva = l->init_size ? nub_snap_gva(l->init_off) : 0,
        .init_data_size = l->init_size,
        .stack_gva = nub_scratch_gva(l, l->stack_off),
        .stack_size = l->stack_size,
        .exn_stack_gva = nub_scratch_gva(l, l->exn_off),
        .exn_stack_size = NUB_EXN_STACK_SIZE,
        .scratch_gva = nub_scratch_gva(l, 0),
        .scratch_size = l->scratch_size,
    };
    memcpy(sb->snapshot + l->peb_off, &peb, sizeof peb);
}

static void init_scratch(nub_sandbox *sb)
{
    const struct nub_layout *l = &sb->lay;
    struct nub_scratch_top *top = (struct nub_scratch_top *)(sb->scratch + l->top_off);
    nub_wire_init(sb->scratch + l->input_off, l->input_size);
    nub_wire_init(sb->scratch + l->output_off, l->output_size);
    top->magic = NUB_SCRATCH_TOP_MAGIC;
    top->scratch_size = l->scratch_size;
    sb->counter.slot = &top->guest_counter;
}

/* Allocate both regions and fill them: image, PEB, init data, tables, scratch. */
static nub_status build_memory(nub_sandbox *sb, const struct nub_elf_image *img,
                               const struct nub_init_data *init, uint32_t perms,
                               uint64_t *cr3, struct nub_error *err)
{
    const struct nub_layout *l = &sb->lay;
    sb->snapshot = map_region(l->snapshot_size);
    sb->scratch = map_region(l->scratch_size);
    if (sb->snapshot == NULL || sb->scratch == NULL)
        return nub_err_set(err, NUB_E_NOMEM, "cannot map %llu + %llu bytes of guest memory",
                           (unsigned long long)l->snapshot_size, (unsigned long long)l->scratch_size);
    nub_elf_load(img, sb->snapshot);
    write_peb(sb, perms);
    if (l->init_size != 0)
        memcpy(sb->snapshot + l->init_off, init->data, l->init_size);
    init_scratch(sb);
    return nub_layout_build_tables(l, img, perms, sb->snapshot, cr3, err);
}

static nub_status create_vm(nub_sandbox *sb, uint64_t cr3, struct nub_error *err)
{
    struct nub_hv_region regions[2] = {
        {NUB_BASE_GPA, sb->lay.snapshot_size, sb->snapshot},
        {nub_scratch_gpa(&sb->lay, 0), sb->lay.scratch_size, sb->scratch},
    };
    struct nub_hv_config hc = {regions, 2, cr3};
    char msg[256] = "";
    nub_status rc = sb->ops->create(&hc, &sb->hv, msg, sizeof msg);
    if (rc != NUB_OK)
        return nub_err_set(err, rc, "%s backend: %s", nub_backend_name(sb->backend), msg);
    return NUB_OK;
}

static nub_status check_init(const struct nub_init_data *init, uint32_t *perms, struct nub_error *err)
{
    *perms = NUB_MEM_READ;
    if (init == NULL || init->len == 0)
        return NUB_OK;
    if (init->data == NULL)
        return nub_err_set(err, NUB_E_INVALID, "init data: data is NULL with len %zu", init->len);
    if (init->perms & ~(uint32_t)(NUB_MEM_READ | NUB_MEM_WRITE | NUB_MEM_EXEC))
        return nub_err_set(err, NUB_E_INVALID, "init data: unknown permission bits 0x%x", init->perms);
    if (init->perms & NUB_MEM_EXEC)
        return nub_err_set(err, NUB_E_INVALID, "init data: executable init data is refused");
    *perms = init->perms | NUB_MEM_READ;
    return NUB_OK;
}

static nub_status create(const uint8_t *elf, size_t len, const struct nub_init_data *init,
                         const struct nub_config *cfg, nub_sandbox **out, struct nub_error *err)
{
    struct nub_elf_image img;
    uint32_t perms;
    uint64_t cr3 = 0;
    nub_sandbox *sb = calloc(1, sizeof *sb);
    if (sb == NULL)
        return nub_err_set(err, NUB_E_NOMEM, "cannot allocate the sandbox");
    nub_status rc = nub_config_normalise(cfg, &sb->cfg, err);
    if (rc == NUB_OK)
        rc = check_init(init, &perms, err);
    if (rc == NUB_OK)
        rc = nub_elf_parse(elf, len, sb->cfg.max_image_size, &img, err);
    if (rc == NUB_OK)
        rc = nub_layout_compute(&sb->cfg, img.image_size, init ? init->len : 0, &sb->lay, err);
    if (rc == NUB_OK)
        rc = nub_backend_pick(sb->cfg.backend, &sb->ops, &sb->backend, err);
    if (rc == NUB_OK)
        rc = build_memory(sb, &img, init, perms, &cr3, err);
    if (rc == NUB_OK)
        rc = create_vm(sb, cr3, err);
    sb->cr3 = cr3;
    if (rc == NUB_OK && sb->cfg.gdb_port != 0)
        rc = nub_gdb_open(sb, err);
    if (rc == NUB_OK)
        rc = nub_state_new(sb, err);
    if (rc != NUB_OK)
        goto fail;
    pthread_mutex_init(&sb->counter.lock, NULL);
    sb->id = random_u64() | 1;
    sb->seed = random_u64();
    sb->entry_gva = img.entry;
    sb->nsegs = img.nsegs;
    memcpy(sb->segs, img.segs, sizeof img.segs);
    sb->max_log_level = sb->cfg.max_guest_log_level;
    *out = sb;
    return NUB_OK;
fail:
    nub_gdb_close(sb);
    if (sb->hv)
        sb->ops->destroy(sb->hv);
    if (sb->snapshot)
        munmap(sb->snapshot, sb->lay.snapshot_size);
    if (sb->scratch)
        munmap(sb->scratch, sb->lay.scratch_size);
    free(sb);
    return rc;
}

nub_status nub_sandbox_new_from_buffer(const void *elf, size_t len, const struct nub_init_data *init,
                                       const struct nub_config *cfg, nub_sandbox **out,
                                       struct nub_error *err)
{
    nub_err_clear(err);
    if (out == NULL)
        return nub_err_set(err, NUB_E_INVALID, "out is NULL");
    *out = NULL;
    if (elf == NULL)
        return nub_err_set(err, NUB_E_INVALID, "elf is NULL");
    return create(elf, len, init, cfg, out, err);
}

/* Read a whole regular file into a malloc'd buffer. O_NONBLOCK keeps open()
 * from waiting on a FIFO without a writer; the type is checked before any read. */
static nub_status read_file(const char *path, uint8_t **data, size_t *len, uint64_t max,
                            struct nub_error *err)
{
    struct stat st;
    uint64_t limit;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return nub_err_set(err, NUB_E_IO, "cannot open %s: %s", path, strerror(errno));
    nub_status rc = NUB_OK;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = nub_err_set(err, NUB_E_IO, "%s is not a regular file", path);
        goto out;
    }
    if (!nub_add_u64(max, 1u << 20, &limit)) /* headers and symbols beyond the image */
        limit = UINT64_MAX;
    if ((uint64_t)st.st_size > limit) {
        rc = nub_err_set(err, NUB_E_ELF, "invalid guest ELF: %s is %lld bytes, above the image limit",
                         path, (long long)st.st_size);
        goto out;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (buf == NULL) {
        rc = nub_err_set(err, NUB_E_NOMEM, "cannot allocate %lld bytes for %s", (long long)st.st_size, path);
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = nub_err_set(err, NUB_E_IO, "cannot read %s: %s", path, n ? strerror(errno) : "short read");
            goto out;
        }
        got += (size_t)n;
    }
    *data = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

nub_status nub_sandbox_new_from_file(const char *path, const struct nub_init_data *init,
                                     const struct nub_config *cfg, nub_sandbox **out,
                                     struct nub_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct nub_config norm;
    nub_err_clear(err);
    if (out == NULL || path == NULL)
        return nub_err_set(err, NUB_E_INVALID, "%s is NULL", out ? "path" : "out");
    *out = NULL;
    nub_status rc = nub_config_normalise(cfg, &norm, err);
    if (rc == NUB_OK)
        rc = read_file(path, &data, &len, norm.max_image_size, err);
    if (rc == NUB_OK)
        rc = create(data, len, init, cfg, out, err);
    free(data);
    return rc;
}

void nub_sandbox_destroy(nub_sandbox *sb)
{
    if (sb == NULL)
        return;
    nub_watchdog_stop(sb);
    nub_gdb_close(sb); /* reads the phase: before the state goes */
    nub_state_detach(sb); /* interrupts through handles are no-ops from here on */
    if (sb->hv)
        sb->ops->destroy(sb->hv);
    munmap(sb->snapshot, sb->lay.snapshot_size);
    munmap(sb->scratch, sb->lay.scratch_size);
    pthread_mutex_destroy(&sb->counter.lock);
    free(sb);
}

const struct nub_error *nub_sandbox_last_error(const nub_sandbox *sb)
{
    static const struct nub_error none = {.code = NUB_E_INVALID, .message = "sandbox is NULL"};
    return sb ? &sb->last : &none;
}

uint64_t nub_sandbox_id(const nub_sandbox *sb)
{
    return sb ? sb->id : 0;
}

uint64_t nub_sandbox_shared_mem_size(const nub_sandbox *sb)
{
    return sb ? sb->lay.snapshot_size + sb->lay.scratch_size : 0;
}

enum nub_backend nub_sandbox_backend(const nub_sandbox *sb)
{
    return sb ? sb->backend : NUB_BACKEND_AUTO;
}

size_t nub_sandbox_max_input(const nub_sandbox *sb)
{
    return sb ? (size_t)nub_wire_max_payload(sb->lay.input_size) : 0;
}

nub_status nub_sandbox_set_max_guest_log_level(nub_sandbox *sb, uint32_t level)
{
    if (sb == NULL)
        return NUB_E_INVALID;
    if (level > NUB_LOG_LEVEL_TRACE)
        return nub_state_reject(sb, NUB_E_INVALID, "log level %u is above NUB_LOG_LEVEL_TRACE", level);
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_ANY);
    if (rc != NUB_OK)
        return rc;
    sb->max_log_level = level;
    nub_state_release(sb);
    return NUB_OK;
}

nub_status nub_sandbox_set_log(nub_sandbox *sb, nub_log_fn fn, void *ctx)
{
    if (sb == NULL)
        return NUB_E_INVALID;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_ANY);
    if (rc != NUB_OK)
        return rc;
    sb->log_fn = fn;
    sb->log_ctx = ctx;
    nub_state_release(sb);
    return NUB_OK;
}

nub_status nub_sandbox_guest_counter(nub_sandbox *sb, nub_guest_counter **out)
{
    if (sb == NULL || out == NULL)
        return NUB_E_INVALID;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_ANY);
    if (rc != NUB_OK)
        return rc;
    if (sb->counter_taken) {
        rc = nub_err_set(&sb->last, NUB_E_EXISTS, "the guest counter of this sandbox was already handed out");
    } else {
        sb->counter_taken = true;
        *out = &sb->counter;
    }
    nub_state_release(sb);
    return rc;
}

void nub_guest_counter_publish(nub_sandbox *sb)
{
    struct nub_guest_counter *c = &sb->counter;
    if (!sb->counter_taken)
        return;
    if (sb->test.before_counter_publish != NULL)
        sb->test.before_counter_publish(sb->test.ctx, sb);
    pthread_mutex_lock(&c->lock); /* an increment on another thread lands before or after, never between */
    __atomic_store_n(c->slot, c->value, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&c->lock);
}

static nub_status counter_add(nub_guest_counter *c, int delta)
{
    if (c == NULL)
        return NUB_E_INVALID;
    nub_status rc = NUB_OK;
    pthread_mutex_lock(&c->lock);
    uint64_t v = c->value;
    if ((delta > 0 && v == UINT64_MAX) || (delta < 0 && v == 0))
        rc = NUB_E_OVERFLOW;
    else
        v = delta > 0 ? v + 1 : v - 1;
    __atomic_store_n(&c->value, v, __ATOMIC_RELEASE);
    __atomic_store_n(c->slot, v, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

nub_status nub_guest_counter_increment(nub_guest_counter *c)
{
    return counter_add(c, 1);
}

nub_status nub_guest_counter_decrement(nub_guest_counter *c)
{
    return counter_add(c, -1);
}

uint64_t nub_guest_counter_value(const nub_guest_counter *c)
{
    return c ? __atomic_load_n(&c->value, __ATOMIC_ACQUIRE) : 0;
}
