/* Private declarations shared by the host library's files: sandbox state, ELF image, layout, error helpers. */
#ifndef NUB_HOST_INTERNAL_H
#define NUB_HOST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hv/hv.h"
#include "nub/abi.h"
#include "nub/cdir.h"
#include "nub/nub.h"

/* ---- Errors (errors.c) ------------------------------------------------- */

/* Reset `err` to "no error". NULL is ignored. */
void nub_err_clear(struct nub_error *err);

/* Record code + formatted message in `err` (NULL ignored); returns code. */
nub_status nub_err_set(struct nub_error *err, nub_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- ELF loader (elf.c) ------------------------------------------------ */

#define NUB_ELF_MAX_SEGMENTS 16

struct nub_elf_segment {
    uint64_t vaddr;   /* page-aligned start (GVA) */
    uint64_t memsz;   /* page-rounded size */
    uint64_t file_off;/* offset in the file of the first byte to copy */
    uint64_t copy_at; /* offset inside the segment where file bytes start */
    uint64_t filesz;  /* bytes to copy */
    uint32_t perms;   /* NUB_MEM_* */
};

struct nub_elf_image {
    const uint8_t *file;  /* the ELF bytes (borrowed) */
    size_t file_len;
    uint64_t entry;       /* entry GVA */
    uint64_t image_size;  /* bytes from NUB_KERNEL_BASE to the end of the last segment, page-rounded */
    size_t nsegs;
    struct nub_elf_segment segs[NUB_ELF_MAX_SEGMENTS];
};

/* Parse and check an ELF for loading at NUB_KERNEL_BASE. NUB_E_ELF with a
 * message naming the problem on failure. */
nub_status nub_elf_parse(const uint8_t *file, size_t len, uint64_t max_image,
                         struct nub_elf_image *img, struct nub_error *err);

/* Copy the segments into `dst` (image_size bytes, zeroed by the caller). */
void nub_elf_load(const struct nub_elf_image *img, uint8_t *dst);

/* ---- Layout (layout.c) ------------------------------------------------- */

/* Offsets are from the start of a region; GPAs/GVAs absolute. */
struct nub_layout {
    /* snapshot region, at NUB_BASE_GPA */
    uint64_t image_size;
    uint64_t peb_off;
    uint64_t heap_off, heap_size;
    uint64_t init_off, init_size, init_alloc; /* init_alloc: page-rounded */
    uint64_t pt_off, pt_size;
    uint64_t snapshot_size;
    /* scratch region, ending at NUB_MAX_GPA / NUB_MAX_GVA */
    uint64_t scratch_size;
    uint64_t input_off, input_size;
    uint64_t output_off, output_size;
    uint64_t stack_off, stack_size;
    uint64_t exn_off;
    uint64_t top_off;
};

/* Compute the layout for a config (sizes already validated non-zero),
 * image size and init-data length. NUB_E_LAYOUT naming the field. */
nub_status nub_layout_compute(const struct nub_config *cfg, uint64_t image_size,
                              uint64_t init_len, struct nub_layout *lay,
                              struct nub_error *err);

static inline uint64_t nub_snap_gva(uint64_t off)
{
    return NUB_KERNEL_BASE + off;
}

static inline uint64_t nub_snap_gpa(uint64_t off)
{
    return NUB_BASE_GPA + off;
}

static inline uint64_t nub_scratch_gva(const struct nub_layout *l, uint64_t off)
{
    return NUB_SCRATCH_BASE_GVA(l->scratch_size) + off;
}

static inline uint64_t nub_scratch_gpa(const struct nub_layout *l, uint64_t off)
{
    return NUB_SCRATCH_BASE_GPA(l->scratch_size) + off;
}

/* Build the page tables into snapshot + lay->pt_off; returns the root GPA. */
nub_status nub_layout_build_tables(const struct nub_layout *lay, const struct nub_elf_image *img,
                                   uint32_t init_perms, uint8_t *snapshot, uint64_t *cr3,
                                   struct nub_error *err);

/* ---- Config (config.c) ------------------------------------------------- */

/* Validate and normalise (page-round, defaults for zero sizes) into *out. */
nub_status nub_config_normalise(const struct nub_config *in, struct nub_config *out,
                                struct nub_error *err);

/* Choose the backend ops for cfg->backend (AUTO resolved). */
nub_status nub_backend_pick(enum nub_backend want, const struct nub_hv_ops **ops,
                            enum nub_backend *chosen, struct nub_error *err);

/* ---- Sandbox ----------------------------------------------------------- */

#define NUB_MAX_HOST_FNS 64

struct nub_host_fn_entry {
    uint32_t fn_id;
    nub_host_fn fn;
    void *ctx;
};

struct nub_guest_counter {
    pthread_mutex_t lock;
    uint64_t value;
    volatile uint64_t *slot; /* in guest memory */
};

enum nub_sb_state { NUB_SB_UNINIT, NUB_SB_READY, NUB_SB_POISONED };

struct nub_sandbox {
    uint64_t id;
    struct nub_config cfg;
    struct nub_layout lay;
    enum nub_backend backend;
    const struct nub_hv_ops *ops;
    struct nub_hv *hv;
    uint8_t *snapshot;        /* host mapping of the snapshot region */
    uint8_t *scratch;         /* host mapping of the scratch region */
    uint64_t entry_gva;
    uint64_t dispatch_gva;    /* read from the PEB after init */
    size_t nsegs;             /* the image's segments, for checking dispatch_gva */
    struct nub_elf_segment segs[NUB_ELF_MAX_SEGMENTS];
    uint64_t seed;
    enum nub_sb_state state;
    atomic_bool busy;
    atomic_bool timed_out;
    uint32_t max_log_level;
    size_t nhost_fns;
    struct nub_host_fn_entry host_fns[NUB_MAX_HOST_FNS];
    struct nub_guest_counter counter;
    bool counter_taken;
    struct nub_error last;
    nub_log_fn log_fn;
    void *log_ctx;
    /* call timeout watchdog (watchdog.c), started on the first timed call */
    bool wd_running;
    bool wd_armed;
    bool wd_stop;
    uint64_t wd_gen;
    struct timespec wd_deadline;
    pthread_t wd_thread;
    pthread_mutex_t wd_lock;
    pthread_cond_t wd_cond;
    /* console text from the print port, flushed at newline or when full */
    size_t print_len;
    char print_buf[256];
    /* calls that entered the guest through do_call (nub_sandbox_call_count) */
    uint64_t calls;
    /* cache reader (cache.c): enum nub_cache_state, reset by every guest run */
    uint8_t cache_state;
    struct nub_cdir_view cache_dir; /* valid while cache_state == NUB_CACHE_READY */
};

/* Run the guest from (rip, rsp) until it halts, servicing ports. Used by
 * evolve and call. On failure records in sb->last, poisons as needed. */
nub_status nub_run_guest(nub_sandbox *sb, uint64_t rip);

/* Arm the timeout watchdog for one call (starting its thread if needed). */
nub_status nub_watchdog_arm(nub_sandbox *sb);

/* Disarm it at the end of a call. */
void nub_watchdog_disarm(nub_sandbox *sb);

/* Stop and join the watchdog thread, if any. */
void nub_watchdog_stop(nub_sandbox *sb);

/* Forward a host-library log line (no-op unless logging is configured). */
void nub_log_host(const nub_sandbox *sb, uint32_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Cap cache reader (cache.c) --------------------------------------- */

/* What the reader knows about the guest's cache directory (sb->cache_state). */
enum nub_cache_state {
    NUB_CACHE_UNCHECKED = 0, /* the guest ran since the last look: locate it again */
    NUB_CACHE_READY = 1,     /* sb->cache_dir holds a validated header */
    NUB_CACHE_NONE = 2,      /* the guest published no directory */
    NUB_CACHE_BAD = 3,       /* inconsistent: every cap is absent until the guest runs again */
};

/* nub_cache_locate() result when the guest published no directory (boot_info_gva == 0). */
#define NUB_CACHE_LOCATE_NONE 1

/*
 * Find and validate the cache directory published by a guest, reading only
 * the `snap_size` bytes at `snap` (the host mapping of the snapshot region:
 * GVA = NUB_KERNEL_BASE + offset), all of it hostile: the PEB at peb_off,
 * its boot_info_gva, the boot info (magic, version), the directory range
 * and header (nub_cdir_open). A GVA is translated only when the whole
 * range lies inside the region. Returns NUB_CDIR_OK with *v filled,
 * NUB_CACHE_LOCATE_NONE, or NUB_CDIR_E_CORRUPT with a static reason in *why.
 * A pure function over bytes, so unit tests can feed it corrupted memory.
 */
int nub_cache_locate(const uint8_t *snap, uint64_t snap_size, uint64_t peb_off,
                     struct nub_cdir_view *v, const char **why);

/*
 * Look `hash` up in the guest's directory on behalf of a caller that has
 * claimed the sandbox (sb->busy) and checked that it is ready. Returns 1
 * with the stored encoding in *data and *len (either may be NULL), or 0 when absent
 * or when the directory is missing or inconsistent (logged once per guest
 * run through the sandbox's log callback).
 */
int nub_cache_lookup_claimed(nub_sandbox *sb, const uint8_t hash[NUB_CAP_HASH_SIZE],
                             const uint8_t **data, uint64_t *len);

/* Claim the sandbox for a host-side read of guest memory: NUB_E_BUSY while
 * a call runs, NUB_E_POISONED / NUB_E_STATE (recorded in sb->last) unless
 * it is ready. Release with nub_cache_release(). */
nub_status nub_cache_claim(nub_sandbox *sb);
void nub_cache_release(nub_sandbox *sb);

#endif /* NUB_HOST_INTERNAL_H */
