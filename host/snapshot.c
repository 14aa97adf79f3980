/* Snapshots: the sealed-memfd guest image built once, its content hash, sandboxes mapped copy-on-write from it, capture and restore. */
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
#include "obs.h"
#include "nub/hash.h"
#include "nub/wire.h"

static void keep_config(struct nub_snapshot *s, const struct nub_config *cfg);

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

/* ---- files and memfds --------------------------------------------------- */

nub_status nub_read_file(const char *path, uint8_t **data, size_t *len, uint64_t max,
                         struct nub_error *err)
{
    struct stat st;
    /* O_NONBLOCK keeps open() from waiting on a FIFO without a writer; the type is checked before any read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return nub_err_set(err, NUB_E_IO, "cannot open %s: %s", path, strerror(errno));
    nub_status rc = NUB_OK;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = nub_err_set(err, NUB_E_IO, "%s is not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
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

/* A memfd of `size` bytes, mapped shared and writable at *map for filling. */
static nub_status memfd_open(uint64_t size, int *fd_out, uint8_t **map, struct nub_error *err)
{
    int fd = memfd_create("nub-snapshot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return nub_err_set(err, NUB_E_NOMEM, "memfd_create: %s", strerror(errno));
    if (ftruncate(fd, (off_t)size) != 0) {
        close(fd);
        return nub_err_set(err, NUB_E_NOMEM, "cannot size the snapshot memfd to %llu bytes: %s",
                           (unsigned long long)size, strerror(errno));
    }
    if (map != NULL) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return nub_err_set(err, NUB_E_NOMEM, "cannot map the snapshot memfd: %s", strerror(errno));
        }
        *map = p;
    }
    *fd_out = fd;
    return NUB_OK;
}

/* Unmap the filling view and seal the memfd against any change. */
static nub_status memfd_seal(int fd, uint8_t *map, uint64_t size, struct nub_error *err)
{
    if (map != NULL)
        munmap(map, size);
    if (fcntl(fd, F_ADD_SEALS, SEALS) != 0)
        return nub_err_set(err, NUB_E_NOMEM, "cannot seal the snapshot memfd: %s", strerror(errno));
    return NUB_OK;
}

/* ---- the snapshot object ------------------------------------------------ */

nub_status nub_snapshot_wrap(int fd, uint64_t mem_off, const struct nub_layout *lay,
                             struct nub_snapshot **out, struct nub_error *err)
{
    struct nub_snapshot *s = calloc(1, sizeof *s);
    if (s == NULL) {
        close(fd);
        return nub_err_set(err, NUB_E_NOMEM, "cannot allocate the snapshot");
    }
    s->lay = *lay;
    void *p = mmap(NULL, nub_snap_mem_size(s), PROT_READ, MAP_SHARED, fd, (off_t)mem_off);
    if (p == MAP_FAILED) {
        nub_status rc = nub_err_set(err, NUB_E_NOMEM, "cannot map the snapshot image: %s", strerror(errno));
        close(fd);
        free(s);
        return rc;
    }
    atomic_init(&s->refs, 1);
    s->fd = fd;
    s->mem_off = mem_off;
    s->mem = p;
    pthread_mutex_init(&s->hash_lock, NULL);
    *out = s;
    return NUB_OK;
}

nub_snapshot *nub_snapshot_retain(nub_snapshot *snap)
{
    if (snap != NULL)
        atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
    return snap;
}

void nub_snapshot_release(nub_snapshot *snap)
{
    if (snap == NULL || atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) != 1)
        return;
    munmap((void *)snap->mem, nub_snap_mem_size(snap));
    close(snap->fd);
    pthread_mutex_destroy(&snap->hash_lock);
    free(snap);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void nub_snapshot_compute_hash(const uint8_t *mem, const struct nub_layout *lay, uint8_t out[32])
{
    const uint64_t gpa[2] = {NUB_BASE_GPA, NUB_SCRATCH_BASE_GPA(lay->scratch_size)};
    const uint64_t len[2] = {lay->snapshot_size, lay->scratch_size};
    const uint32_t flags[2] = {NUB_SNAP_REGION_FLAGS, NUB_SCRATCH_REGION_FLAGS};
    nub_blake3_state st;
    nub_blake3_init(&st);
    nub_blake3_update(&st, mem, (size_t)(len[0] + len[1]));
    for (int i = 0; i < 2; i++) {
        uint8_t rec[20];
        put_le(rec, gpa[i], 8);
        put_le(rec + 8, len[i], 8);
        put_le(rec + 16, flags[i], 4);
        nub_blake3_update(&st, rec, sizeof rec);
    }
    nub_blake3_final(&st, out);
}

nub_status nub_snapshot_hash(nub_snapshot *snap, uint8_t out[32])
{
    if (snap == NULL || out == NULL)
        return NUB_E_INVALID;
    pthread_mutex_lock(&snap->hash_lock);
    if (!snap->hashed) {
        nub_snapshot_compute_hash(snap->mem, &snap->lay, snap->hash);
        snap->hashed = true;
    }
    memcpy(out, snap->hash, 32);
    pthread_mutex_unlock(&snap->hash_lock);
    return NUB_OK;
}

int nub_snapshot_equal(nub_snapshot *a, nub_snapshot *b)
{
    uint8_t ha[32], hb[32];
    if (a == NULL || b == NULL || nub_snapshot_hash(a, ha) != NUB_OK || nub_snapshot_hash(b, hb) != NUB_OK)
        return 0;
    return memcmp(ha, hb, 32) == 0;
}

int nub_snapshot_is_evolved(const nub_snapshot *snap)
{
    return snap != NULL && snap->evolved;
}

uint64_t nub_snapshot_memory_size(const nub_snapshot *snap)
{
    return snap ? nub_snap_mem_size(snap) : 0;
}

nub_status nub_snapshot_config(const nub_snapshot *snap, struct nub_config *out)
{
    if (snap == NULL || out == NULL)
        return NUB_E_INVALID;
    *out = snap->cfg;
    return NUB_OK;
}

int nub_in_exec_segment(const struct nub_elf_segment *segs, size_t nsegs, uint64_t gva)
{
    for (size_t i = 0; i < nsegs; i++) {
        const struct nub_elf_segment *s = &segs[i];
        if ((s->perms & NUB_MEM_EXEC) && gva >= s->vaddr && gva - s->vaddr < s->memsz)
            return 1;
    }
    return 0;
}

/* ---- building the pre-init image ----------------------------------------- */

static void write_peb(const struct nub_layout *l, uint8_t *snap, uint32_t init_perms)
{
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
    memcpy(snap + l->peb_off, &peb, sizeof peb);
}

/* The scratch region's initial bytes: empty buffers, the top page, and the
 * guest log level the host publishes there (nub_log_publish_level). */
static void init_scratch(const struct nub_layout *l, uint8_t *scratch, uint32_t max_log_level)
{
    struct nub_scratch_top *top = (struct nub_scratch_top *)(scratch + l->top_off);
    nub_wire_init(scratch + l->input_off, l->input_size);
    nub_wire_init(scratch + l->output_off, l->output_size);
    top->magic = NUB_SCRATCH_TOP_MAGIC;
    top->scratch_size = l->scratch_size;
    top->max_log_level = max_log_level;
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

/* Fill a fresh memfd with both regions: image, PEB, init data, tables, scratch. */
static nub_status build_image(struct nub_snapshot *meta, const struct nub_elf_image *img,
                              const struct nub_init_data *init, uint32_t perms, int *fd,
                              struct nub_error *err)
{
    const struct nub_layout *l = &meta->lay;
    uint8_t *mem = NULL;
    nub_status rc = memfd_open(nub_snap_mem_size(meta), fd, &mem, err);
    if (rc != NUB_OK)
        return rc;
    nub_elf_load(img, mem);
    write_peb(l, mem, perms);
    if (l->init_size != 0)
        memcpy(mem + l->init_off, init->data, l->init_size);
    init_scratch(l, mem + l->snapshot_size, meta->cfg.max_guest_log_level);
    rc = nub_layout_build_tables(l, img, perms, mem, &meta->cr3, err);
    if (rc == NUB_OK)
        rc = memfd_seal(*fd, mem, nub_snap_mem_size(meta), err);
    else
        munmap(mem, nub_snap_mem_size(meta));
    if (rc != NUB_OK)
        close(*fd);
    return rc;
}

static nub_status from_elf(const uint8_t *elf, size_t len, const struct nub_init_data *init,
                           const struct nub_config *cfg, nub_snapshot **out, struct nub_error *err)
{
    struct nub_snapshot meta;
    struct nub_elf_image img;
    uint32_t perms;
    int fd = -1;
    memset(&meta, 0, sizeof meta);
    nub_status rc = nub_config_normalise(cfg, &meta.cfg, err);
    if (rc == NUB_OK)
        rc = check_init(init, &perms, err);
    if (rc == NUB_OK)
        rc = nub_elf_parse(elf, len, meta.cfg.max_image_size, &img, err);
    if (rc == NUB_OK)
        rc = nub_layout_compute(&meta.cfg, img.image_size, init ? init->len : 0, &meta.lay, err);
    if (rc == NUB_OK)
        rc = build_image(&meta, &img, init, perms, &fd, err);
    if (rc == NUB_OK)
        rc = nub_snapshot_wrap(fd, 0, &meta.lay, out, err);
    if (rc != NUB_OK)
        return rc;
    struct nub_snapshot *s = *out;
    keep_config(s, &meta.cfg);
    s->cr3 = meta.cr3;
    s->entry_gva = img.entry;
    s->nsegs = img.nsegs;
    memcpy(s->segs, img.segs, sizeof img.segs);
    s->max_log_level = meta.cfg.max_guest_log_level;
    return NUB_OK;
}

nub_status nub_snapshot_from_buffer(const void *elf, size_t len, const struct nub_init_data *init,
                                    const struct nub_config *cfg, nub_snapshot **out,
                                    struct nub_error *err)
{
    nub_err_clear(err);
    if (out == NULL || elf == NULL)
        return nub_err_set(err, NUB_E_INVALID, "%s is NULL", out ? "elf" : "out");
    *out = NULL;
    return from_elf(elf, len, init, cfg, out, err);
}

nub_status nub_snapshot_from_file(const char *path, const struct nub_init_data *init,
                                  const struct nub_config *cfg, nub_snapshot **out,
                                  struct nub_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct nub_config norm;
    nub_err_clear(err);
    if (out == NULL || path == NULL)
        return nub_err_set(err, NUB_E_INVALID, "%s is NULL", out ? "path" : "out");
    *out = NULL;
    uint64_t limit;
    nub_status rc = nub_config_normalise(cfg, &norm, err);
    if (!nub_add_u64(norm.max_image_size, 1u << 20, &limit)) /* headers and symbols beyond the image */
        limit = UINT64_MAX;
    if (rc == NUB_OK)
        rc = nub_read_file(path, &data, &len, limit, err);
    if (rc == NUB_OK)
        rc = from_elf(data, len, init, cfg, out, err);
    free(data);
    return rc;
}

/* ---- sandboxes from snapshots ------------------------------------------- */

static uint64_t random_u64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint64_t)(uintptr_t)&v ^ (uint64_t)getpid() << 32;
    return v;
}

/* Map both regions of `snap` copy-on-write; at the fixed addresses of `sb` when `fixed`. */
static nub_status map_regions(nub_sandbox *sb, const struct nub_snapshot *snap, bool fixed,
                              struct nub_error *err)
{
    const int flags = MAP_PRIVATE | MAP_NORESERVE | (fixed ? MAP_FIXED : 0);
    const int prot = PROT_READ | PROT_WRITE;
    const struct nub_layout *l = &snap->lay;
    void *a = mmap(fixed ? sb->snapshot : NULL, l->snapshot_size, prot, flags, snap->fd,
                   (off_t)snap->mem_off);
    if (a == MAP_FAILED)
        return nub_err_set(err, NUB_E_NOMEM, "cannot map the snapshot region: %s", strerror(errno));
    sb->snapshot = a;
    void *b = mmap(fixed ? sb->scratch : NULL, l->scratch_size, prot, flags, snap->fd,
                   (off_t)(snap->mem_off + l->snapshot_size));
    if (b == MAP_FAILED)
        return nub_err_set(err, NUB_E_NOMEM, "cannot map the scratch region: %s", strerror(errno));
    sb->scratch = b;
    return NUB_OK;
}

/* A backend VM over sb's two regions with page-table root cr3 (msg: the backend's reason on failure). */
static nub_status create_backend_vm(const nub_sandbox *sb, uint64_t cr3, struct nub_hv **out, char *msg,
                                    size_t msg_len)
{
    struct nub_hv_region regions[2] = {
        {NUB_BASE_GPA, sb->lay.snapshot_size, sb->snapshot},
        {nub_scratch_gpa(&sb->lay, 0), sb->lay.scratch_size, sb->scratch},
    };
    struct nub_hv_config hc = {regions, 2, cr3};
    return sb->ops->create(&hc, out, msg, msg_len);
}

nub_status nub_test_bare_vm_create(nub_sandbox *sb, struct nub_hv **out, char *msg, size_t msg_len)
{
    if (sb == NULL || out == NULL || sb->hv == NULL)
        return NUB_E_INVALID;
    return create_backend_vm(sb, sb->cr3, out, msg, msg_len);
}

void nub_test_bare_vm_destroy(nub_sandbox *sb, struct nub_hv *vm)
{
    if (sb != NULL && vm != NULL)
        sb->ops->destroy(vm);
}

static nub_status create_vm(nub_sandbox *sb, uint64_t cr3, struct nub_error *err)
{
    char msg[256] = "";
    nub_status rc = create_backend_vm(sb, cr3, &sb->hv, msg, sizeof msg);
    if (rc != NUB_OK)
        return nub_err_set(err, rc, "%s backend: %s", nub_backend_name(sb->backend), msg);
    if (sb->ops->get_cpu(sb->hv, &sb->cpu0) != NUB_OK)
        return nub_err_set(err, NUB_E_BACKEND, "%s backend: cannot read the initial vCPU state",
                           nub_backend_name(sb->backend));
    return NUB_OK;
}

/* Load `cpu` into the vCPU, whose state is `known` (NULL: read it). The
 * descriptor tables and control words change only when a guest reloads
 * them, so when they already match (the usual case) only the registers are
 * written: a full load costs kvm an MMU reset. */
static nub_status load_cpu(nub_sandbox *sb, const struct nub_hv_cpu *cpu, const struct nub_hv_cpu *known)
{
    struct nub_hv_cpu now;
    if (known != NULL || sb->ops->get_cpu(sb->hv, &now) == NUB_OK) {
        if (known != NULL)
            now = *known;
        now.regs = cpu->regs;
        if (memcmp(&now, cpu, sizeof now) == 0)
            return sb->ops->set_regs(sb->hv, &cpu->regs);
    }
    return sb->ops->set_cpu(sb->hv, cpu);
}

/* Take the evolved state of `snap`: vCPU, dispatch entry, counter, log level.
 * `known`: the vCPU's current state when the caller has it (a new VM: cpu0). */
static nub_status adopt_state(nub_sandbox *sb, const struct nub_snapshot *snap, const struct nub_hv_cpu *known)
{
    const struct nub_hv_cpu *cpu = snap->evolved ? &snap->cpu : &sb->cpu0;
    if (load_cpu(sb, cpu, known) != NUB_OK)
        return nub_err_set(&sb->last, NUB_E_BACKEND, "%s backend: cannot load the snapshot's vCPU state",
                           nub_backend_name(sb->backend));
    sb->dispatch_gva = snap->evolved ? snap->dispatch_gva : 0;
    pthread_mutex_lock(&sb->counter.lock);
    __atomic_store_n(&sb->counter.value, snap->evolved ? snap->counter : 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sb->counter.lock);
    return NUB_OK;
}

/* Keep the config in the snapshot, with its own copy of the core-dump directory. */
static void keep_config(struct nub_snapshot *s, const struct nub_config *cfg)
{
    s->cfg = *cfg;
    s->core_dir[0] = '\0';
    if (cfg->core_dump_dir != NULL &&
        (size_t)snprintf(s->core_dir, sizeof s->core_dir, "%s", cfg->core_dump_dir) >= sizeof s->core_dir)
        s->core_dir[0] = '\0'; /* too long: as if unset */
    s->cfg.core_dump_dir = s->core_dir[0] != '\0' ? s->core_dir : NULL;
}

static void apply_overrides(nub_sandbox *sb, const struct nub_snapshot *snap,
                            const struct nub_config *ov)
{
    sb->cfg = snap->cfg;
    sb->max_log_level = snap->max_log_level;
    if (ov == NULL)
        return;
    sb->log_level_fixed = true;
    sb->cfg.backend = ov->backend;
    sb->cfg.call_timeout_ms = ov->call_timeout_ms;
    sb->cfg.max_guest_log_level = ov->max_guest_log_level;
    sb->max_log_level = ov->max_guest_log_level;
    sb->cfg.gdb_port = ov->gdb_port;
    sb->cfg.guest_core_dump = ov->guest_core_dump;
    sb->cfg.core_dump_dir = ov->core_dump_dir; /* copied by nub_obs_init */
    sb->cfg.disable_metrics = ov->disable_metrics;
}

static nub_status check_overrides(const struct nub_config *ov, struct nub_error *err)
{
    if (ov == NULL)
        return NUB_OK;
    if (ov->max_guest_log_level > NUB_LOG_LEVEL_TRACE)
        return nub_err_set(err, NUB_E_INVALID, "config.max_guest_log_level %u is above NUB_LOG_LEVEL_TRACE",
                           ov->max_guest_log_level);
    if (ov->backend != NUB_BACKEND_AUTO && ov->backend != NUB_BACKEND_KVM && ov->backend != NUB_BACKEND_EMU)
        return nub_err_set(err, NUB_E_INVALID, "config.backend %d is not a nub_backend", (int)ov->backend);
    if (ov->gdb_port > NUB_GDB_PORT_ANY)
        return nub_err_set(err, NUB_E_INVALID, "config.gdb_port %u is not a port (1-65535), NUB_GDB_PORT_ANY or 0",
                           ov->gdb_port);
    return NUB_OK;
}

static void sandbox_free(nub_sandbox *sb)
{
    nub_state_detach(sb); /* no-op when destroy already detached it */
    if (sb->hv)
        sb->ops->destroy(sb->hv);
    if (sb->snapshot)
        munmap(sb->snapshot, sb->lay.snapshot_size);
    if (sb->scratch)
        munmap(sb->scratch, sb->lay.scratch_size);
    nub_snapshot_release(sb->base);
    if (sb->ext.state != NULL)
        sb->ext.free_state(sb->ext.state);
    free(sb);
}

nub_status nub_sandbox_new_from_snapshot(nub_snapshot *snap, const struct nub_config *cfg_overrides,
                                         nub_sandbox **out, struct nub_error *err)
{
    nub_err_clear(err);
    if (out == NULL || snap == NULL)
        return nub_err_set(err, NUB_E_INVALID, "%s is NULL", out ? "snapshot" : "out");
    *out = NULL;
    nub_status rc = check_overrides(cfg_overrides, err);
    if (rc != NUB_OK)
        return rc;
    nub_sandbox *sb = calloc(1, sizeof *sb);
    if (sb == NULL)
        return nub_err_set(err, NUB_E_NOMEM, "cannot allocate the sandbox");
    pthread_mutex_init(&sb->counter.lock, NULL);
    apply_overrides(sb, snap, cfg_overrides);
    sb->lay = snap->lay;
    sb->base = nub_snapshot_retain(snap);
    rc = nub_backend_pick(sb->cfg.backend, &sb->ops, &sb->backend, sb->backend_note,
                          sizeof sb->backend_note, err);
    if (rc == NUB_OK)
        rc = map_regions(sb, snap, false, err);
    if (rc == NUB_OK)
        rc = create_vm(sb, snap->cr3, err);
    sb->cr3 = snap->cr3;
    if (rc == NUB_OK && sb->cfg.gdb_port != 0)
        rc = nub_gdb_open(sb, err);
    if (rc == NUB_OK)
        rc = nub_state_new(sb, err);
    if (rc == NUB_OK && (rc = adopt_state(sb, snap, &sb->cpu0)) != NUB_OK)
        nub_err_set(err, rc, "%s", sb->last.message);
    if (rc != NUB_OK)
        goto fail;
    if (snap->evolved)
        nub_state_evolved(sb); /* nobody else holds the new sandbox yet */
    sb->seed = random_u64();
    sb->entry_gva = snap->entry_gva;
    sb->nsegs = snap->nsegs;
    memcpy(sb->segs, snap->segs, sizeof sb->segs);
    sb->counter.slot = &((struct nub_scratch_top *)(sb->scratch + sb->lay.top_off))->guest_counter;
    nub_obs_init(sb, snap->cr3);
    /* The emu fallback warning: to the process default logger where there is one (no
     * callback can be installed yet); nub_sandbox_set_log() hands it to the callback. */
    if (sb->backend_note[0] != '\0')
        nub_log_host(sb, NUB_LOG_LEVEL_WARN, "%s", sb->backend_note);
    *out = sb;
    return NUB_OK;
fail:
    nub_gdb_close(sb);
    pthread_mutex_destroy(&sb->counter.lock);
    sandbox_free(sb);
    return rc;
}

void nub_sandbox_free(nub_sandbox *sb)
{
    pthread_mutex_destroy(&sb->counter.lock);
    sandbox_free(sb);
}

/* ---- capture ------------------------------------------------------------- */

/* Copy both regions of `sb` into a new sealed memfd. */
static nub_status copy_memory(nub_sandbox *sb, int *fd, struct nub_error *err)
{
    const struct nub_layout *l = &sb->lay;
    uint8_t *mem = NULL;
    nub_status rc = memfd_open(l->snapshot_size + l->scratch_size, fd, &mem, err);
    if (rc != NUB_OK)
        return rc;
    memcpy(mem, sb->snapshot, l->snapshot_size);
    memcpy(mem + l->snapshot_size, sb->scratch, l->scratch_size);
    rc = memfd_seal(*fd, mem, l->snapshot_size + l->scratch_size, err);
    if (rc != NUB_OK)
        close(*fd);
    return rc;
}

static nub_status capture(nub_sandbox *sb, nub_snapshot **out)
{
    struct nub_hv_cpu cpu;
    int fd = -1;
    bool evolved = nub_state_phase(sb) == NUB_SB_READY;
    if (evolved && sb->ops->get_cpu(sb->hv, &cpu) != NUB_OK)
        return nub_err_set(&sb->last, NUB_E_BACKEND, "%s backend: cannot read the vCPU state",
                           nub_backend_name(sb->backend));
    nub_status rc = copy_memory(sb, &fd, &sb->last);
    if (rc == NUB_OK)
        rc = nub_snapshot_wrap(fd, 0, &sb->lay, out, &sb->last);
    if (rc != NUB_OK)
        return rc;
    struct nub_snapshot *s = *out;
    const struct nub_snapshot *b = sb->base;
    keep_config(s, &sb->cfg);
    s->cr3 = b->cr3;
    s->entry_gva = b->entry_gva;
    s->nsegs = b->nsegs;
    memcpy(s->segs, b->segs, sizeof s->segs);
    s->evolved = evolved;
    s->max_log_level = sb->max_log_level;
    if (evolved) {
        s->cpu = cpu;
        s->dispatch_gva = sb->dispatch_gva;
        s->counter = nub_guest_counter_value(&sb->counter);
    }
    return NUB_OK;
}

nub_status nub_sandbox_snapshot(nub_sandbox *sb, nub_snapshot **out)
{
    if (sb == NULL || out == NULL)
        return sb ? nub_err_set(&sb->last, NUB_E_INVALID, "out is NULL") : NUB_E_INVALID;
    *out = NULL;
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_ANY);
    if (rc != NUB_OK)
        return rc;
    if (nub_state_phase(sb) == NUB_SB_POISONED)
        rc = nub_err_set(&sb->last, NUB_E_POISONED, "a poisoned sandbox cannot be captured: restore it first");
    else
        rc = capture(sb, out);
    nub_state_release(sb);
    return rc;
}

/* ---- restore -------------------------------------------------------------- */

static int same_layout(const struct nub_layout *a, const struct nub_layout *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* Back to `snap`'s memory: drop private pages, or map another snapshot over the regions. */
static nub_status reset_memory(nub_sandbox *sb, nub_snapshot *snap)
{
    if (snap == sb->base) {
        if (madvise(sb->snapshot, sb->lay.snapshot_size, MADV_DONTNEED) != 0 ||
            madvise(sb->scratch, sb->lay.scratch_size, MADV_DONTNEED) != 0)
            return nub_err_set(&sb->last, NUB_E_BACKEND, "madvise(MADV_DONTNEED): %s", strerror(errno));
        return NUB_OK;
    }
    nub_status rc = map_regions(sb, snap, true, &sb->last);
    if (rc != NUB_OK)
        return rc;
    nub_snapshot_release(sb->base);
    sb->base = nub_snapshot_retain(snap);
    return NUB_OK;
}

/* Host-side leftovers of earlier runs (the claim already discarded interrupts). */
static void reset_host_side(nub_sandbox *sb)
{
    sb->print_len = 0;
    sb->mem_epoch++; /* memory is the snapshot's again: host-side views of it are stale */
    nub_err_clear(&sb->last);
}

nub_status nub_sandbox_restore(nub_sandbox *sb, nub_snapshot *snap)
{
    if (sb == NULL)
        return NUB_E_INVALID;
    if (snap == NULL)
        return nub_err_set(&sb->last, NUB_E_INVALID, "snapshot is NULL");
    nub_status rc = nub_state_claim(sb, NUB_CLAIM_ANY);
    if (rc != NUB_OK)
        return rc;
    if (!same_layout(&sb->lay, &snap->lay)) {
        rc = nub_err_set(&sb->last, NUB_E_STATE,
                         "snapshot layout differs from the sandbox's (snapshot region %llu vs %llu "
                         "bytes, scratch %llu vs %llu bytes)",
                         (unsigned long long)snap->lay.snapshot_size, (unsigned long long)sb->lay.snapshot_size,
                         (unsigned long long)snap->lay.scratch_size, (unsigned long long)sb->lay.scratch_size);
        goto out;
    }
    reset_host_side(sb);
    rc = reset_memory(sb, snap);
    if (rc == NUB_OK)
        rc = adopt_state(sb, snap, NULL);
    if (rc != NUB_OK) {
        nub_state_poison(sb);
        goto out;
    }
    nub_state_restore_to(sb, snap->evolved);
    /* the scratch top page came back from the snapshot: publish the level again */
    nub_log_publish_level(sb, sb->log_level_fixed ? sb->cfg.max_guest_log_level : snap->max_log_level);
    nub_metrics_count_restore(sb);
    sb->entry_gva = snap->entry_gva;
    sb->nsegs = snap->nsegs;
    memcpy(sb->segs, snap->segs, sizeof sb->segs);
out:
    nub_state_release(sb);
    return rc;
}
