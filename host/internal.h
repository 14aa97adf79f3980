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
#include "obs.h"
#include "nub/abi.h"
#include "nub/nub.h"
#include "testing.h"

/* ---- Errors (errors.c) ------------------------------------------------- */

/* Reset `err` to "no error". NULL is ignored. */
void nub_err_clear(struct nub_error *err);

/* Record code + formatted message in `err` (NULL ignored); returns code. */
nub_status nub_err_set(struct nub_error *err, nub_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replace, in place, every byte of untrusted text that is not printable
 * ASCII (0x20..0x7e: control bytes, DEL, bytes >= 0x80) with '?'. */
void nub_text_sanitize(char *text, size_t len);

/* Copy min(len, cap - 1) bytes of untrusted text into dst (cap > 0),
 * sanitized as above, NUL-terminated; returns the bytes copied. */
size_t nub_text_copy(char *dst, size_t cap, const uint8_t *src, uint64_t len);

/* Check every field a guest wrote into its abort record (kind, flags,
 * msg_len, reserved, rip, and vector/error_code/code/fault_addr for the
 * kind). 0 when it is one the SDK can write; else -1 with *why describing
 * the first bad field and its value (NUL-terminated, why_len bytes). */
int nub_abort_record_check(const struct nub_abort_record *rec, char *why, size_t why_len);

/* The interrupted context the SDK's exception entry left at the top of the
 * exception stack (abi.h, NUB_EXN_FRAME_SIZE): RIP, RSP and RFLAGS from the
 * frame and, when marked with NUB_EXN_REGS_MAGIC, the general-purpose
 * registers saved below it, over the fields of *r (the others stay).
 * Guest-written bytes, read once and in bounds: fit only to be shown. */
void nub_exn_context(const nub_sandbox *sb, struct nub_hv_regs *r);

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

/* nub_config_default()'s backend when $NUB_BACKEND names no backend: creation fails with NUB_E_INVALID. */
#define NUB_BACKEND_BAD_ENV ((enum nub_backend)-1)

/* ---- Backend selection (hv/select.c) ----------------------------------- */

/* Room for a sandbox's backend note: the fallback warning plus the probe's reason. */
#define NUB_BACKEND_NOTE_MAX (NUB_BACKEND_REASON_MAX + 64)

/*
 * Choose the backend ops for `want` (AUTO resolved through the kvm probe).
 * When AUTO falls back to emu, note gets the warning to log (else "").
 * Errors: NUB_E_NO_HYPERVISOR with the backend's reason in err.
 */
nub_status nub_backend_pick(enum nub_backend want, const struct nub_hv_ops **ops,
                            enum nub_backend *chosen, char *note, size_t note_len,
                            struct nub_error *err);

/* What to add to a backend failure message `msg` on `backend` ("" or "; what it means ..."). */
const char *nub_backend_failure_hint(enum nub_backend backend, const char *msg);

/* ---- State machine (state.c) ------------------------------------------ */

enum nub_sb_state { NUB_SB_UNINIT, NUB_SB_READY, NUB_SB_POISONED };

/* What a claim requires of the phase. */
enum nub_claim {
    NUB_CLAIM_UNINIT, /* not evolved yet (evolve, registration) */
    NUB_CLAIM_READY,  /* evolved and not poisoned (calls, cache reads) */
    NUB_CLAIM_ANY,    /* any phase, poisoned included (restore, settings) */
};

/* Why the claimed generation was interrupted. */
enum nub_cancel { NUB_CANCEL_NONE, NUB_CANCEL_INTERRUPT, NUB_CANCEL_TIMEOUT };

/* The state machine; an interrupt handle is a counted reference to it. */
typedef struct nub_interrupt_handle nub_state;

/* Allocate sb->st (phase UNINIT) once sb->ops and sb->hv exist. */
nub_status nub_state_new(nub_sandbox *sb, struct nub_error *err);

/* At destroy: later interrupts through handles become no-ops; drops the sandbox's reference. */
void nub_state_detach(nub_sandbox *sb);

/*
 * Claim the sandbox for one operation: NUB_E_BUSY (nothing recorded) while
 * another claim is held; NUB_E_POISONED / NUB_E_STATE, recorded in
 * sb->last, when the phase does not match `want`. On success a new
 * generation starts and interrupts sent before it are discarded. Every
 * write to the sandbox happens between a claim and its release.
 */
nub_status nub_state_claim(nub_sandbox *sb, enum nub_claim want);
void nub_state_release(nub_sandbox *sb);

/* Phase changes, by the claimer only. */
void nub_state_poison(nub_sandbox *sb);
void nub_state_evolved(nub_sandbox *sb);
/* Back to READY (poisoning cleared) once the claimer restored guest memory and registers. */
void nub_state_restore(nub_sandbox *sb);
/* The same, to UNINIT when !evolved (a sandbox restored to a pre-init snapshot). */
void nub_state_restore_to(nub_sandbox *sb, bool evolved);

enum nub_sb_state nub_state_phase(const nub_sandbox *sb);
/* Generation of the current claim (the claimer's own). */
uint64_t nub_state_gen(const nub_sandbox *sb);
/* Why the current generation was interrupted (NUB_CANCEL_NONE if it was not). */
enum nub_cancel nub_state_cancel_reason(const nub_sandbox *sb);

/*
 * Interrupt generation `gen` (0: whichever is claimed now) with reason
 * `why`: delivered to the backend only while that generation holds the
 * claim, else no effect. NUB_E_STATE when the sandbox was destroyed.
 */
nub_status nub_state_interrupt(nub_state *st, uint64_t gen, enum nub_cancel why);

/* Fail an unclaimed entry point: record code + message unless a claim is
 * held (the running call's record is left alone); returns code. */
nub_status nub_state_reject(nub_sandbox *sb, nub_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Snapshots (snapshot.c, snapfile.c) -------------------------------- */

/* Region flags in the content hash and the file's region table. */
#define NUB_SNAP_REGION_FLAGS (NUB_MEM_READ | NUB_MEM_WRITE | NUB_MEM_EXEC)
#define NUB_SCRATCH_REGION_FLAGS (NUB_MEM_READ | NUB_MEM_WRITE)

struct nub_snapshot {
    atomic_uint refs;
    int fd;                   /* sealed memfd, or the loaded snapshot file */
    uint64_t mem_off;         /* file offset of the memory image (page-aligned) */
    const uint8_t *mem;       /* read-only view: snapshot region, then scratch region */
    struct nub_config cfg;    /* normalised; sizes fix the layout */
    char core_dir[NUB_CORE_DIR_MAX]; /* cfg.core_dump_dir's own copy (the caller's string need not live on) */
    struct nub_layout lay;
    uint64_t cr3;             /* page-table root GPA */
    uint64_t entry_gva;
    size_t nsegs;             /* the image's segments, for checking dispatch_gva */
    struct nub_elf_segment segs[NUB_ELF_MAX_SEGMENTS];
    bool evolved;             /* ready for calls: cpu, dispatch_gva, counter, log level valid */
    uint64_t dispatch_gva;
    struct nub_hv_cpu cpu;
    uint64_t counter;
    uint32_t max_log_level;
    pthread_mutex_t hash_lock;
    bool hashed;
    uint8_t hash[32];
};

/* Total bytes of the memory image. */
static inline uint64_t nub_snap_mem_size(const struct nub_snapshot *s)
{
    return s->lay.snapshot_size + s->lay.scratch_size;
}

/* A new snapshot with one reference, owning `fd` (closed on failure) whose
 * image starts at mem_off; maps the read-only view. Metadata is the caller's. */
nub_status nub_snapshot_wrap(int fd, uint64_t mem_off, const struct nub_layout *lay,
                             struct nub_snapshot **out, struct nub_error *err);

/* Compute the content hash of `mem` (the image) for layout `lay`. */
void nub_snapshot_compute_hash(const uint8_t *mem, const struct nub_layout *lay, uint8_t out[32]);

/* dispatch_gva / entry must point into one of the image's executable segments. */
int nub_in_exec_segment(const struct nub_elf_segment *segs, size_t nsegs, uint64_t gva);

/* Read a whole regular file of at most `max` bytes into a malloc'd buffer. */
nub_status nub_read_file(const char *path, uint8_t **data, size_t *len, uint64_t max,
                         struct nub_error *err);

/* ---- Host functions (hostfn.c) ----------------------------------------- */

struct nub_sandbox;
/* Release the VM, both mappings, the snapshot reference and the struct (snapshot.c). */
void nub_sandbox_free(struct nub_sandbox *sb);

#define NUB_MAX_HOST_FNS 64

struct nub_host_fn_entry {
    uint32_t fn_id;
    nub_host_fn fn;
    void *ctx;
};

/* The registered host functions; written only by nub_sandbox_register. */
struct nub_host_fns {
    size_t n;
    struct nub_host_fn_entry e[NUB_MAX_HOST_FNS];
};

/* The entry registered under fn_id, or NULL. */
const struct nub_host_fn_entry *nub_host_fn_find(const struct nub_host_fns *t, uint32_t fn_id);

/* ---- Watchdog (watchdog.c) --------------------------------------------- */

/* The call-timeout watchdog, started on the first timed run; fields owned by watchdog.c. */
struct nub_watchdog {
    bool running;
    bool armed;
    bool stop;
    uint64_t gen;                /* claim generation the armed deadline belongs to */
    struct timespec deadline;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

/* Arm the timeout watchdog for one run (starting its thread if needed).
 * NUB_E_NOMEM when its thread cannot be started (the sandbox is unchanged). */
nub_status nub_watchdog_arm(nub_sandbox *sb);

/* Disarm it at the end of a run. */
void nub_watchdog_disarm(nub_sandbox *sb);

/* Stop and join the watchdog thread, if any. */
void nub_watchdog_stop(nub_sandbox *sb);

/* ---- Host state of a guest kernel's own host API ---------------------- */

/* The core knows no particular guest. Host code written for one guest
 * kernel (host/nubk/: nubk's cap-directory reader) keeps its per-sandbox
 * state here: one block it allocates on first use (the caller holding the
 * sandbox's claim) and `free_state` releases at destroy. That code tells a
 * stale view of guest memory from a current one by sb->mem_epoch. */
struct nub_guest_ext {
    void *state;                    /* NULL until first use */
    void (*free_state)(void *state);
};

/* ---- Sandbox ----------------------------------------------------------- */

struct nub_guest_counter {
    pthread_mutex_t lock;
    uint64_t value;
    volatile uint64_t *slot; /* in guest memory */
};

/* Copy the counter's value into guest memory under its lock (before each run). */
void nub_guest_counter_publish(nub_sandbox *sb);

struct nub_sandbox {
    uint64_t id;
    struct nub_config cfg;
    struct nub_layout lay;
    enum nub_backend backend;
    const struct nub_hv_ops *ops;
    struct nub_hv *hv;
    nub_state *st;            /* phase, claim, generation, interrupts (state.c) */
    struct nub_snapshot *base; /* the snapshot both regions are mapped from (a reference) */
    struct nub_hv_cpu cpu0;   /* the backend's initial vCPU state, for restoring pre-init snapshots */
    bool guest_ran;           /* the guest ran since creation (registration closes) */
    bool log_level_fixed;     /* created with overrides: restore keeps cfg.max_guest_log_level */
    uint8_t *snapshot;        /* host mapping of the snapshot region */
    uint8_t *scratch;         /* host mapping of the scratch region */
    uint64_t entry_gva;
    uint64_t dispatch_gva;    /* read from the PEB after init */
    size_t nsegs;             /* the image's segments, for checking dispatch_gva */
    struct nub_elf_segment segs[NUB_ELF_MAX_SEGMENTS];
    uint64_t seed;
    uint32_t max_log_level;
    struct nub_host_fns host_fns;
    struct nub_guest_counter counter;
    bool counter_taken;
    struct nub_error last;
    nub_log_fn log_fn;
    void *log_ctx;
    bool log_raw; /* pass guest text to log_fn unsanitized (nub_sandbox_set_log_raw) */
    char backend_note[NUB_BACKEND_NOTE_MAX]; /* AUTO fell back to emu: the warning, else "" */
    struct nub_watchdog wd;
    /* console text from the print port, flushed at newline or when full */
    size_t print_len;
    char print_buf[256];
    /* calls that entered the guest through do_call (nub_sandbox_call_count) */
    _Atomic uint64_t calls;
    uint64_t mem_epoch;         /* +1 before every guest run and at every restore: guest memory may have changed */
    struct nub_guest_ext ext;   /* a guest kernel's host API state (host/nubk/), else empty */
    struct nub_test_hooks test; /* testing.h; all NULL outside tests */
    struct nub_obs obs;         /* metrics and crash dumps (obs.h) */
    uint64_t cr3;             /* root of the host-built page tables (GPA) */
    struct nub_gdb *gdb;      /* gdb stub (gdb.c), NULL when config.gdb_port is 0 */
};

/* nub_call_into inside a claim the caller holds (NUB_CLAIM_READY); the
 * caller releases. Used by calls built on it (nub_put_cap, nubk/caps.c). */
nub_status nub_call_into_claimed(nub_sandbox *sb, uint32_t fn_id, const void *in, size_t in_len,
                                 void *out, size_t out_cap, size_t *out_len);

/* Run the guest from (rip, rsp) until it halts, servicing ports. Used by
 * evolve and call. On failure records in sb->last, poisons as needed. */
nub_status nub_run_guest(nub_sandbox *sb, uint64_t rip);

/* Forward a host-library log line (no-op unless logging is configured). */
void nub_log_host(const nub_sandbox *sb, uint32_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* NUB_HOST_INTERNAL_H */
