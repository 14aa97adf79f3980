/* nub host API: configure, create, evolve, call and destroy hardware-isolated guest sandboxes. */
#ifndef NUB_NUB_H
#define NUB_NUB_H

#include <stddef.h>
#include <stdint.h>

#include "nub/abi.h" /* log levels, memory permissions, hash size */
#include "nub/api.h"

#ifdef __cplusplus
extern "C" {
#endif

NUB_API_BEGIN

/*
 * Lifecycle
 *   1. nub_config_default(&cfg), adjust fields.
 *   2. nub_sandbox_new_from_file() / nub_sandbox_new_from_buffer(): load and
 *      check the guest ELF, lay out guest memory, build page tables, create
 *      the VM on the chosen backend. The sandbox is *uninitialised*.
 *   3. Optionally nub_sandbox_register() host functions,
 *      nub_sandbox_set_max_guest_log_level(), nub_sandbox_guest_counter().
 *   4. nub_sandbox_evolve(): run the guest's init until it signals halt. The
 *      sandbox is now *ready*.
 *   5. nub_call() / nub_call_into() any number of times, one at a time.
 *   6. nub_sandbox_destroy().
 *
 * With snapshots (see "Snapshots" below), build the guest image once and
 * start any number of sandboxes from it:
 *   nub_snapshot_from_file() -> nub_sandbox_new_from_snapshot() (uninitialised,
 *   evolve as above) -> nub_sandbox_snapshot() of the evolved sandbox ->
 *   nub_sandbox_new_from_snapshot() of that (ready for calls at once) ->
 *   call, nub_sandbox_restore() back to the snapshot, call, ... ; or a
 *   nub_pool of ready sandboxes. nub_sandbox_new_from_file/buffer are
 *   nub_snapshot_from_file/buffer + nub_sandbox_new_from_snapshot.
 *
 * Every function returns a nub_status: NUB_OK (0) or a negative NUB_E_*
 * code. Failures on a sandbox also leave a detail record readable with
 * nub_sandbox_last_error(). The library never exits, aborts or prints on
 * its own (it writes to stderr only through the logger $NUB_LOG asks
 * for); its only process-wide state is the kvm probe's cache, the metrics
 * totals (whose registry also numbers sandboxes for nub_sandbox_id()) and
 * the default logger (nub/observe.h), so any number of sandboxes
 * live in one process and distinct sandboxes may be used from different
 * threads at the same time. One sandbox is used by one thread at a time:
 * every operation claims it first, and a second thread meanwhile gets
 * NUB_E_BUSY without disturbing the first. The exceptions are
 * nub_interrupt() and interrupt handles, the guest counter's functions,
 * nub_sandbox_set_max_guest_log_level(), nub_sandbox_metrics(),
 * nub_sandbox_call_count() and the getters of what is fixed at creation
 * (nub_sandbox_id, _backend, _backend_note, _gdb_port, _max_input,
 * _shared_mem_size), which any thread may call while the sandbox lives
 * (docs/errors.md, "Threads"). A function returning a nub_status answers
 * NUB_E_INVALID for a NULL handle or required pointer (an input pointer
 * may be NULL when its length is 0; struct nub_error pointers are
 * optional); the others say what NULL gives.
 */

typedef int nub_status;

#define NUB_OK                   0
#define NUB_E_INVALID          (-1)  /* bad argument (NULL handle or pointer, value out of its range) */
#define NUB_E_NOMEM            (-2)  /* host memory or mapping allocation failed */
#define NUB_E_IO               (-3)  /* reading the guest binary failed */
#define NUB_E_ELF              (-4)  /* the guest binary is not an acceptable ELF */
#define NUB_E_LAYOUT           (-5)  /* the configured sizes do not fit the address space */
#define NUB_E_NO_HYPERVISOR    (-6)  /* the requested backend is not usable here */
#define NUB_E_BACKEND          (-7)  /* the backend itself failed (hardware or emulator error); never guest-caused */
#define NUB_E_GUEST            (-8)  /* the guest function returned a non-zero status */
#define NUB_E_GUEST_ABORT      (-9)  /* the guest aborted (explicit abort or panic) */
#define NUB_E_GUEST_FAULT      (-10) /* the guest took an unhandled CPU exception or triple fault */
#define NUB_E_PROTOCOL         (-11) /* the guest broke the host<->guest protocol */
#define NUB_E_CANCELLED        (-12) /* the call was interrupted with nub_interrupt() */
#define NUB_E_TIMEOUT          (-13) /* the call ran past nub_config.call_timeout_ms */
#define NUB_E_POISONED         (-14) /* an earlier failure left the sandbox unusable */
#define NUB_E_BUSY             (-15) /* another call is running on this sandbox */
#define NUB_E_TOO_LARGE        (-16) /* a payload or result does not fit its buffer */
#define NUB_E_STATE            (-17) /* not allowed in the sandbox's current state */
#define NUB_E_EXISTS           (-18) /* already registered or already taken */
#define NUB_E_OVERFLOW         (-19) /* counter overflow or underflow */
#define NUB_E_CAP_REJECTED     (-20) /* the guest refused a cap */
#define NUB_E_CAP_MISMATCH     (-21) /* the guest's cap hash differs from the claimed one */
#define NUB_E_NOT_FOUND        (-22) /* no such cap, or the guest published no cache directory */
#define NUB_E_SNAPSHOT_CORRUPT (-30) /* a snapshot file is truncated or corrupt (the message names the check) */
#define NUB_E_SNAPSHOT_FOREIGN (-31) /* a snapshot file from another format/ABI version or CPU */

/* Static name and description of a status code ("NUB_E_ELF: invalid guest ELF");
 * never NULL ("NUB_E_UNKNOWN: ..." for a value that is no NUB_* code). */
const char *nub_strerror(nub_status code);

/* ---- Configuration ----------------------------------------------------- */

enum nub_backend {
    NUB_BACKEND_AUTO = 0, /* kvm where the kvm probe passes, else emu (with a warning) */
    NUB_BACKEND_KVM = 1,  /* hardware virtualization (Linux KVM) */
    NUB_BACKEND_EMU = 2,  /* emulated CPU (Unicorn): development and CI; NOT an isolation boundary */
};

/* Short name of a backend: "auto", "kvm", "emu" ("unknown" for other values). */
const char *nub_backend_name(enum nub_backend backend);

/*
 * Report whether `backend` can be used in this process without creating a
 * sandbox. Returns NUB_OK, or NUB_E_NO_HYPERVISOR with the reason written
 * to `why` (may be NULL) as a NUL-terminated string of at most why_len bytes
 * (also for a value that is no nub_backend: "unknown backend N"). AUTO is
 * available when kvm or emu is; its reason is emu's.
 *
 * For kvm, usable means *proven*: opening /dev/kvm is not enough, because
 * some KVMs cannot run nub guests (kvm-pvm emulates supervisor-mode code and
 * fails on SSE at CPL0). The first kvm query in a process runs the kvm
 * probe: a small VM created with the sandbox's own long-mode setup (special
 * registers, CPUID, page tables in the high half) that runs SSE2 register
 * operations at CPL0, a store and load through the high-half mapping and an
 * OUT to the halt port, then checks the exit and the values. Its result is
 * kept for the life of the process behind pthread_once: this is the
 * library's one piece of process-wide state. AUTO asks the probe too.
 */
nub_status nub_backend_available(enum nub_backend backend, char *why, size_t why_len);

#define NUB_BACKEND_REASON_MAX 512

/* What nub found out about one backend on this machine (nub_backend_info). */
struct nub_backend_info {
    enum nub_backend backend;
    int usable;                           /* 1 when nub guests run on it here */
    char reason[NUB_BACKEND_REASON_MAX];  /* why not (NUL-terminated), "" when usable */
    /* kvm only */
    int kvm_api_version;                  /* KVM_GET_API_VERSION; -1 when /dev/kvm does not open */
    char kvm_modules[64];                 /* KVM modules loaded (/sys/module), space-separated:
                                           * "kvm_amd", "kvm_intel", "kvm_pvm", "kvm", or "none" */
    char cpu_vendor[16];                  /* the host CPU's CPUID vendor ("AuthenticAMD") */
    int cpu_vmx, cpu_svm;                 /* the host CPU's CPUID shows VMX / SVM */
    int probe_ran;                        /* the probe VM was created and entered */
    int probe_passed;                     /* ... and ended as expected with the right values */
    uint64_t probe_ns;                    /* wall time of the (once per process) probe */
    /* emu only */
    char unicorn_version[16];             /* runtime Unicorn version, "2.0" */
};

/*
 * Fill *info for NUB_BACKEND_KVM or NUB_BACKEND_EMU (runs the kvm probe
 * when it has not run yet in this process). NUB_OK even when the backend is
 * not usable (see info->usable); NUB_E_INVALID for a NULL info or another
 * backend value.
 */
nub_status nub_backend_info(enum nub_backend backend, struct nub_backend_info *info);

/* Defaults in brackets. A size field of 0 means its default. */
struct nub_config {
    uint64_t heap_size;           /* guest heap bytes [0 = 128 KiB] */
    uint64_t stack_size;          /* guest stack bytes [0 = 64 KiB] */
    uint64_t input_size;          /* host->guest buffer bytes [0 = 64 KiB] */
    uint64_t output_size;         /* guest->host buffer bytes [0 = 64 KiB] */
    uint64_t scratch_size;        /* [0 = computed from the three above]; else a page multiple
                                   * at least that large (NUB_E_LAYOUT naming it otherwise) */
    uint64_t max_image_size;      /* largest loaded ELF image [0 = 64 MiB]; the file may be
                                   * 1 MiB more */
    enum nub_backend backend;     /* [NUB_BACKEND_AUTO, or $NUB_BACKEND] */
    uint32_t max_guest_log_level; /* NUB_LOG_LEVEL_* (abi.h) [ERROR] */
    uint32_t call_timeout_ms;     /* 0 = no timeout [0] */
    int guest_core_dump;          /* 1 = write a core file when a run faults, aborts or times out
                                   * (nub/observe.h) [0, or 1 with $NUB_CORE_DUMP=1] */
    const char *core_dump_dir;    /* where those go; copied at creation [NULL: $NUB_CORE_DUMP_DIR,
                                   * else $TMPDIR, else /tmp] */
    int disable_metrics;          /* 1 = this sandbox counts no metrics (nub/observe.h) [0] */
    uint32_t gdb_port;            /* gdb stub on 127.0.0.1: 0 = off, 1-65535, or NUB_GDB_PORT_ANY
                                   * [0, or $NUB_GDB_PORT]; docs/debugging.md */
};

/* nub_config.gdb_port: listen on a free port the kernel picks (see nub_sandbox_gdb_port()). */
#define NUB_GDB_PORT_ANY 0x10000u

/*
 * Fill `cfg` with the defaults above. The environment variable
 * NUB_BACKEND=kvm|emu|auto, when set, picks the default backend; any other
 * value (or an empty one) makes creating a sandbox from this config fail
 * with NUB_E_INVALID naming the value, unless the caller sets cfg->backend.
 * NUB_GDB_PORT=N (or "any") turns the gdb stub on (a value that is not a
 * port makes sandbox creation fail with NUB_E_INVALID).
 * At creation a size field of 0 takes its default (a zeroed config is a
 * valid one for every size), the other sizes but max_image_size are
 * rounded up to whole pages, and a size field above NUB_MAX_REGIONS_SIZE
 * (abi.h, the top 2 GiB), or sizes that together do not fit it, are
 * NUB_E_LAYOUT with a message naming the field. Apart from scratch_size,
 * no nonzero size is too small: it is rounded up to at least one page.
 *
 * Backend choice at creation: AUTO takes kvm when the kvm probe passes
 * (nub_backend_available), else emu; that fallback is never silent: the
 * sandbox keeps a warning ("running on emu, which is not an isolation
 * boundary: <why kvm is not usable>") that is delivered, at
 * NUB_LOG_LEVEL_WARN from NUB_LOG_SRC_HOST, to every log callback installed
 * with nub_sandbox_set_log() (and, at creation, to the library's process
 * default logger where one is configured), and readable with
 * nub_sandbox_backend_note().
 * An explicit NUB_BACKEND_KVM where the probe fails is NUB_E_NO_HYPERVISOR
 * with the probe's reason, before any guest code runs.
 */
void nub_config_default(struct nub_config *cfg); /* NULL is ignored */

/* Optional blob copied into guest memory and described in the PEB. */
struct nub_init_data {
    const void *data;
    size_t len;
    uint32_t perms; /* NUB_MEM_READ | NUB_MEM_WRITE (abi.h); 0 = read-only. EXEC or unknown
                     * bits: NUB_E_INVALID. len 0 (data may then be NULL): no init data. */
};

/* ---- Errors ------------------------------------------------------------ */

#define NUB_ERROR_MSG_MAX 1280

/* Detail of the last failure on a sandbox (or of a failed creation). */
struct nub_error {
    nub_status code;         /* NUB_E_*, NUB_OK when nothing failed */
    uint32_t guest_status;   /* NUB_STATUS_* for NUB_E_GUEST, else 0 */
    uint64_t abort_code;     /* guest abort code for NUB_E_GUEST_ABORT */
    uint64_t vector;         /* exception vector for NUB_E_GUEST_FAULT */
    uint64_t error_code;     /* exception error code */
    uint64_t fault_addr;     /* CR2 / faulting address */
    uint64_t rip;            /* instruction pointer at the failure */
    int truncated;           /* the guest's message was cut to fit */
    char message[NUB_ERROR_MSG_MAX]; /* NUL-terminated description */
};

/* ---- Sandbox ----------------------------------------------------------- */

typedef struct nub_sandbox nub_sandbox;

/*
 * Create an uninitialised sandbox from the guest ELF at `path`, which must
 * be a regular file (a FIFO, device or directory is NUB_E_IO at once,
 * without waiting for a writer).
 * init: optional init data (NULL for none). cfg: NULL for defaults.
 * err: optional; filled on failure with the reason (e.g. which ELF check
 * failed, which layout field does not fit).
 * Errors: NUB_E_INVALID, NUB_E_IO (also: the gdb stub's port cannot be
 * listened on), NUB_E_ELF, NUB_E_LAYOUT, NUB_E_NOMEM, NUB_E_NO_HYPERVISOR,
 * NUB_E_BACKEND. *out is NULL on failure.
 */
nub_status nub_sandbox_new_from_file(const char *path, const struct nub_init_data *init,
                                     const struct nub_config *cfg, nub_sandbox **out,
                                     struct nub_error *err);

/* Same, from an ELF image in memory (copied; the caller keeps ownership). */
nub_status nub_sandbox_new_from_buffer(const void *elf, size_t len,
                                       const struct nub_init_data *init,
                                       const struct nub_config *cfg, nub_sandbox **out,
                                       struct nub_error *err);

/* Release every resource of the sandbox. NULL is ignored. Must not race
 * a call or nub_interrupt(sb); interrupt handles may race it. */
void nub_sandbox_destroy(nub_sandbox *sb);

/* The last failure recorded on `sb` (a record inside the sandbox that its
 * next operation overwrites and destroy frees); never NULL (for sb NULL, a
 * static record with code NUB_E_INVALID). */
const struct nub_error *nub_sandbox_last_error(const nub_sandbox *sb);

/* The sandbox's id: 1 for the first sandbox created in the process, then
 * increasing by one per sandbox created (any constructor, pools included);
 * never 0 and never reused within the process, fixed for the sandbox's
 * life. It names the sandbox in log lines and core file names. 0 for NULL. */
uint64_t nub_sandbox_id(const nub_sandbox *sb);

/* Total bytes of guest memory (snapshot region + scratch region); 0 for NULL. */
uint64_t nub_sandbox_shared_mem_size(const nub_sandbox *sb);

/* Backend actually used (never NUB_BACKEND_AUTO, except for sb NULL). */
enum nub_backend nub_sandbox_backend(const nub_sandbox *sb);

/*
 * The warning kept when AUTO fell back to emu ("running on emu, which is
 * not an isolation boundary: <reason>"), or NULL when there is none (kvm,
 * or emu asked for explicitly). Valid for the life of the sandbox.
 */
const char *nub_sandbox_backend_note(const nub_sandbox *sb);

/*
 * Debugging with gdb (nub_config.gdb_port != 0): the sandbox listens on
 * 127.0.0.1 from creation on; its first run (evolve, or the first call of
 * a sandbox made from an evolved snapshot) waits for gdb to connect and
 * stops before the guest's first instruction until gdb
 * continues. One debugger at a time; later runs stop only at gdb's
 * breakpoints, steps, Ctrl-C and guest faults. The port it listens on
 * (useful with NUB_GDB_PORT_ANY), or 0 when the stub is off.
 */
uint16_t nub_sandbox_gdb_port(const nub_sandbox *sb);

/* Largest payload nub_call() accepts (the input buffer's capacity less the
 * message framing); 0 for NULL. */
size_t nub_sandbox_max_input(const nub_sandbox *sb);

/* Set the most verbose guest log level forwarded (NUB_LOG_LEVEL_*). Any
 * state, from any thread, also while a call runs (it claims nothing): the
 * guest reads the level the host writes into its scratch top page before
 * each message, and the host filters by it too, so it applies from the
 * next message. Errors: NUB_E_INVALID (NULL, level above
 * NUB_LOG_LEVEL_TRACE). */
nub_status nub_sandbox_set_max_guest_log_level(nub_sandbox *sb, uint32_t level);

/* ---- Logging ----------------------------------------------------------- */

/* Where a log line came from. */
enum nub_log_source {
    NUB_LOG_SRC_HOST = 0,  /* the library itself (e.g. backend chosen) */
    NUB_LOG_SRC_GUEST = 1, /* a guest log message (NUB_PORT_LOG), already level-filtered */
    NUB_LOG_SRC_PRINT = 2, /* a line of guest console text (NUB_PORT_PRINT) */
};

/*
 * Log callback: `level` is NUB_LOG_LEVEL_* (abi.h), `msg` is `len` bytes
 * (not NUL-terminated). Guest text (NUB_LOG_SRC_GUEST and
 * NUB_LOG_SRC_PRINT) arrives sanitized: every byte outside printable ASCII
 * 0x20..0x7e (newlines, tabs, escapes, bytes >= 0x80) is replaced by '?',
 * so a guest cannot forge log lines or terminal escapes; call
 * nub_sandbox_set_log_raw() for the guest's bytes as they are. Called on
 * the thread running the call (host lines from creation and the backend
 * note: on the thread creating the sandbox or installing the callback),
 * never with a library lock held; functions that claim the sandbox
 * answer NUB_E_BUSY when called from it during a call.
 */
typedef void (*nub_log_fn)(void *ctx, enum nub_log_source src, uint32_t level,
                           const char *msg, size_t len);

/*
 * Install (or with fn == NULL remove) the sandbox's log callback. Default:
 * none, so lines go to the process default logger (nub_set_default_log()
 * in nub/observe.h, or $NUB_LOG), which is off unless installed.
 * NUB_E_BUSY while a call holds the sandbox. When the sandbox has a backend
 * note (AUTO fell back to emu), a newly installed callback receives it at
 * once as a NUB_LOG_LEVEL_WARN line from NUB_LOG_SRC_HOST.
 */
nub_status nub_sandbox_set_log(nub_sandbox *sb, nub_log_fn fn, void *ctx);

/* raw != 0: the log callback gets guest text byte for byte, control
 * bytes included (untrusted: the callback must not print it unescaped).
 * Default 0: sanitized as described at nub_log_fn. It does not claim the
 * sandbox: set it from the thread using the sandbox, between calls.
 * Errors: NUB_E_INVALID (NULL). */
nub_status nub_sandbox_set_log_raw(nub_sandbox *sb, int raw);

/* ---- Host functions ---------------------------------------------------- */

#define NUB_HOST_ERROR_MAX 256

/*
 * One host call in progress. `payload` points into the guest's output
 * buffer and `result` into its input buffer; both are valid only during the
 * callback. Write at most result_cap bytes to `result` and set result_len.
 * To fail, return non-zero and optionally put a message in `error` (the
 * guest sees NUB_STATUS_HOST_ERROR with that message).
 */
struct nub_host_call {
    uint32_t fn_id;
    const uint8_t *payload;
    size_t payload_len;
    uint8_t *result;
    size_t result_cap;
    size_t result_len;
    char error[NUB_HOST_ERROR_MAX];
};

typedef int (*nub_host_fn)(void *ctx, struct nub_host_call *call);

/*
 * Register `fn` under `fn_id` for guest->host calls; ctx is passed back.
 * Only on an uninitialised sandbox, or on one from an evolved snapshot
 * before its first call (NUB_E_STATE after that). A second registration
 * of one fn_id: NUB_E_EXISTS. More than 64 functions: NUB_E_TOO_LARGE.
 * NUB_E_INVALID for a NULL sb or fn; NUB_E_BUSY while another thread holds
 * the sandbox. The callback runs on the thread running the call.
 */
nub_status nub_sandbox_register(nub_sandbox *sb, uint32_t fn_id, nub_host_fn fn, void *ctx);

/* ---- Guest counter ----------------------------------------------------- */

/*
 * A u64 the host owns and the guest reads at the fixed scratch offset
 * NUB_SCRATCH_TOP_GUEST_COUNTER_OFFSET. Only the host writes it, so a guest
 * cannot change the host's view. One per sandbox, freed with it.
 */
typedef struct nub_guest_counter nub_guest_counter;

/* Hand out the sandbox's counter (value 0, or the value captured in the
 * evolved snapshot the sandbox was made from). A second request:
 * NUB_E_EXISTS; NUB_E_BUSY while a call runs; NUB_E_INVALID for NULL.
 * The counter functions below may then be called from any thread; each run
 * copies the value into guest memory under the counter's lock, so the guest
 * sees every change that completed before its run started. */
nub_status nub_sandbox_guest_counter(nub_sandbox *sb, nub_guest_counter **out);

/* Add one; NUB_E_OVERFLOW at UINT64_MAX (value unchanged). Thread-safe.
 * NUB_E_INVALID for NULL. */
nub_status nub_guest_counter_increment(nub_guest_counter *c);

/* Subtract one; NUB_E_OVERFLOW at 0 (value unchanged). Thread-safe.
 * NUB_E_INVALID for NULL. */
nub_status nub_guest_counter_decrement(nub_guest_counter *c);

/* Current host-side value (0 for NULL). Thread-safe. */
uint64_t nub_guest_counter_value(const nub_guest_counter *c);

/* ---- Init and calls ---------------------------------------------------- */

/*
 * Run the guest's initialisation (entry point) until it signals completion.
 * Afterwards the sandbox accepts calls and no longer accepts registrations.
 * Errors as for nub_call(), plus NUB_E_STATE when already evolved.
 */
nub_status nub_sandbox_evolve(nub_sandbox *sb);

/*
 * Call guest function `fn_id` with `in_len` bytes at `in` (NULL allowed
 * when in_len is 0). On success *out is a malloc'd copy of the result
 * (free with nub_buffer_free(); NULL when empty) and *out_len its length; on
 * failure *out is NULL and *out_len 0.
 * Errors: NUB_E_INVALID (NULL sb, out or out_len, or in NULL with a
 * length), NUB_E_STATE (not evolved), NUB_E_TOO_LARGE (payload over
 * nub_sandbox_max_input(), checked before entering the guest), NUB_E_GUEST,
 * NUB_E_GUEST_ABORT, NUB_E_GUEST_FAULT, NUB_E_PROTOCOL, NUB_E_CANCELLED,
 * NUB_E_TIMEOUT, NUB_E_POISONED, NUB_E_BUSY, NUB_E_NOMEM, NUB_E_BACKEND.
 */
nub_status nub_call(nub_sandbox *sb, uint32_t fn_id, const void *in, size_t in_len,
                    uint8_t **out, size_t *out_len);

/*
 * Same, copying the result into the caller's `out` (capacity out_cap; out
 * may be NULL when out_cap is 0) without allocating. A result longer than
 * out_cap: NUB_E_TOO_LARGE, with *out_len set to the length that was
 * needed, nothing copied, and the sandbox still usable.
 */
nub_status nub_call_into(nub_sandbox *sb, uint32_t fn_id, const void *in, size_t in_len,
                         void *out, size_t out_cap, size_t *out_len);

/* Free a buffer the library allocated for the caller: nub_call()'s *out (NULL is a no-op). */
void nub_buffer_free(void *p);

/*
 * Interrupt the call running on `sb`, from any thread. Every call (and
 * evolve) claims the sandbox and starts a new generation; an interrupt
 * targets the generation claimed when it is sent. Sent after a call
 * claimed the sandbox, it always ends that call: NUB_E_CANCELLED (poisoned)
 * once the guest runs or would resume, unless the call had already
 * finished in the guest or failed before entering it. Sent while no call
 * runs, it has no effect on any later call. Returns NUB_OK in both cases
 * (NUB_E_INVALID for NULL).
 * `sb` must stay alive for the duration of this function: a thread that
 * cannot know that (a watchdog, a supervisor) uses an interrupt handle.
 */
nub_status nub_interrupt(nub_sandbox *sb);

/*
 * A reference-counted handle for interrupting `sb` that stays valid after
 * the sandbox is destroyed. Each call adds a reference (release each with
 * nub_interrupt_handle_release(), from any thread, before or after
 * nub_sandbox_destroy). NULL when sb is NULL.
 */
typedef struct nub_interrupt_handle nub_interrupt_handle;
nub_interrupt_handle *nub_sandbox_interrupt_handle(nub_sandbox *sb);

/*
 * nub_interrupt() through a handle, from any thread, racing destroy
 * included. NUB_E_STATE when the sandbox was already destroyed: nothing
 * is interrupted and nothing else happens. NUB_E_INVALID for NULL.
 */
nub_status nub_interrupt_handle_interrupt(nub_interrupt_handle *h);

/* Drop one reference; the handle is freed with its last one. NULL is ignored. */
void nub_interrupt_handle_release(nub_interrupt_handle *h);

/* ---- Caps --------------------------------------------------------------
 *
 * Caps are typed, immutable, content-addressed objects (the encoding and
 * hashing are in nub/cap.h and docs/caps.md). Putting caps into the nubk
 * guest kernel and reading its cache directory: nub/nubk.h.
 */

/*
 * Host-side strict decode + hash of `len` canonical bytes (the same
 * computation nubk does). Errors: NUB_E_INVALID when the bytes are not a
 * canonical cap (nub_cap_hash_encoded() in nub/cap.h gives the precise
 * NUB_CAP_E_* reason).
 */
nub_status nub_cap_hash_bytes(const void *cap, size_t len, uint8_t out[NUB_CAP_HASH_LEN]);

/* ---- Snapshots ---------------------------------------------------------
 *
 * A nub_snapshot is an immutable guest image (both memory regions in a
 * sealed memfd, or in a loaded snapshot file) plus what a sandbox needs to
 * start from it: the layout, the page-table root, the entry point, and for
 * an evolved snapshot the vCPU state, the dispatch entry, the guest
 * counter's host value and the max guest log level. Sandboxes map the
 * image copy-on-write (MAP_PRIVATE): creating one copies no guest memory,
 * and a sandbox's own memory cost is the pages its guest writes.
 * Snapshots are reference-counted and thread-safe (any number of threads
 * may create sandboxes from one snapshot at once). A sandbox holds a
 * reference to the snapshot its memory is mapped from, so the caller may
 * release its own reference at any time. docs/snapshots.md has the details.
 */

typedef struct nub_snapshot nub_snapshot;

/*
 * Build the pre-init image of a guest ELF once: load, PEB, init data (copied),
 * page tables. Sandboxes from it are uninitialised (evolve them). cfg: NULL
 * for defaults; its sizes fix the layout of every sandbox made from it.
 * Errors as nub_sandbox_new_from_file() (no hypervisor is touched).
 */
nub_status nub_snapshot_from_file(const char *path, const struct nub_init_data *init,
                                  const struct nub_config *cfg, nub_snapshot **out,
                                  struct nub_error *err);

/* Same, from an ELF in memory (not kept after the call). */
nub_status nub_snapshot_from_buffer(const void *elf, size_t len, const struct nub_init_data *init,
                                    const struct nub_config *cfg, nub_snapshot **out,
                                    struct nub_error *err);

/*
 * Capture a sandbox: both memory regions as they are now, and, when it is
 * evolved, its vCPU state, dispatch entry, guest counter value (as the
 * host holds it) and max guest log level; sandboxes made from an evolved
 * snapshot are ready for calls without running init. Copies the guest's
 * memory once. Errors: NUB_E_INVALID, NUB_E_BUSY (a call runs),
 * NUB_E_POISONED, NUB_E_NOMEM, NUB_E_BACKEND.
 */
nub_status nub_sandbox_snapshot(nub_sandbox *sb, nub_snapshot **out);

/* Take / drop a reference (thread-safe). retain returns snap (NULL for
 * NULL). The last release frees the snapshot (its memory stays alive as
 * long as a sandbox maps it). NULL is ignored. */
nub_snapshot *nub_snapshot_retain(nub_snapshot *snap);
void nub_snapshot_release(nub_snapshot *snap);

/*
 * The content hash (computed on first request, then kept; thread-safe):
 * BLAKE3 over the memory image (snapshot region, then scratch region),
 * then for each of the two regions its GPA (u64), length (u64) and flags
 * (u32, NUB_MEM_* bits) as little-endian integers. docs/snapshots.md
 * shows how to recompute it from a snapshot file with b3sum.
 * Errors: NUB_E_INVALID (NULL).
 */
nub_status nub_snapshot_hash(nub_snapshot *snap, uint8_t out[32]);

/* 1 when both snapshots have the same content hash, else 0 (also for NULL). */
int nub_snapshot_equal(nub_snapshot *a, nub_snapshot *b);

/* 1 when sandboxes from `snap` are ready for calls (an evolved snapshot). */
int nub_snapshot_is_evolved(const nub_snapshot *snap);

/* Bytes of the memory image (both regions). */
uint64_t nub_snapshot_memory_size(const nub_snapshot *snap);

/*
 * The configuration `snap` was made with, into *out: its sizes as
 * normalised at creation (defaults filled in, rounded to pages) and its
 * backend, timeout, log level, gdb and core-dump settings; core_dump_dir
 * points into `snap` and stays valid while it is held. A starting point
 * for the overrides of nub_sandbox_new_from_snapshot() and nub_pool_new()
 * that changes only some fields. NUB_E_INVALID when either is NULL.
 */
nub_status nub_snapshot_config(const nub_snapshot *snap, struct nub_config *out);

/*
 * Create a sandbox from a snapshot, with no ELF parsing and no copy of
 * guest memory. cfg_overrides: NULL to use the snapshot's configuration;
 * otherwise every field but the sizes is taken from it (backend,
 * call_timeout_ms, max_guest_log_level, guest_core_dump, core_dump_dir,
 * disable_metrics, gdb_port) and its size fields are not looked at (the
 * layout is the snapshot's).
 * From a pre-init snapshot the sandbox is uninitialised; from an evolved
 * one it is ready, and host functions may still be registered until its
 * first call. Errors: NUB_E_INVALID (also an override out of range),
 * NUB_E_NOMEM, NUB_E_NO_HYPERVISOR, NUB_E_BACKEND, NUB_E_IO (gdb port).
 */
nub_status nub_sandbox_new_from_snapshot(nub_snapshot *snap, const struct nub_config *cfg_overrides,
                                         nub_sandbox **out, struct nub_error *err);

/*
 * Return `sb` to the state of `snap`: memory of both regions, vCPU state,
 * I/O buffers and abort record, dispatch entry, guest counter value and
 * max guest log level; poisoning is cleared and the last error reset.
 * Kept: the host-function table, the log callback, the backend's VM and
 * vCPU (reused, not recreated). When `snap` is the snapshot the sandbox's
 * memory is mapped from, the private copies of the pages written since are
 * dropped (madvise MADV_DONTNEED), so the cost follows the pages the guest
 * touched, not the size of guest memory; another snapshot of the same
 * layout is mapped over the old one. Errors: NUB_E_INVALID, NUB_E_BUSY (a
 * call is running), NUB_E_STATE (a snapshot of another layout), NUB_E_NOMEM,
 * NUB_E_BACKEND (the sandbox is then poisoned).
 */
nub_status nub_sandbox_restore(nub_sandbox *sb, nub_snapshot *snap);

/*
 * Snapshot files (format in docs/snapshots.md): a header with magic,
 * format version, ABI version, CPU vendor and required CPUID features,
 * the layout and vCPU state, a region table, the content hash and a
 * header check, then the page-aligned memory image.
 * nub_snapshot_save writes a new file (replacing `path` atomically).
 * nub_snapshot_load maps the file without copying it and verifies it all
 * (sizes, header check, versions, CPU, region table against a recomputed
 * layout, content hash over the memory, entry points): a failure is
 * NUB_E_SNAPSHOT_CORRUPT or NUB_E_SNAPSHOT_FOREIGN with a message naming
 * the check, or NUB_E_IO; both functions also answer NUB_E_INVALID (NULL,
 * a path too long for its temporary name) and load NUB_E_NOMEM. The file
 * must not be modified while loaded.
 */
nub_status nub_snapshot_save(nub_snapshot *snap, const char *path, struct nub_error *err);
nub_status nub_snapshot_load(const char *path, nub_snapshot **out, struct nub_error *err);

/* ---- Pool ----------------------------------------------------------------
 *
 * Ready sandboxes from one evolved snapshot for request-per-sandbox
 * services: acquire, call, release (which restores it to the snapshot).
 * Thread-safe. A filler thread of the pool creates sandboxes ahead until
 * `size` are ready. Empty: nub_pool_acquire creates one on the caller's
 * thread. Full: a released sandbox beyond `size` ready ones is destroyed.
 * A sandbox whose restore fails is destroyed. nub_pool_destroy destroys
 * the ready sandboxes; sandboxes still out stay valid and belong to the
 * caller from then on (nub_pool_release of them after destroy is not
 * allowed: destroy them with nub_sandbox_destroy).
 */

typedef struct nub_pool nub_pool;

/* Called once on every new sandbox of a pool (before it is handed out):
 * register host functions, set the log callback. It runs on the pool's
 * filler thread or on a nub_pool_acquire() caller's thread, possibly on
 * both at once for different sandboxes. Non-zero: the sandbox is
 * destroyed and the creation fails with NUB_E_INVALID. */
typedef int (*nub_pool_setup_fn)(void *ctx, nub_sandbox *sb);

/* A pool keeping up to `size` (>= 1) sandboxes from the evolved snapshot
 * `snap` ready (the pool holds a reference). cfg_overrides as for
 * nub_sandbox_new_from_snapshot (copied, but a core_dump_dir string in it
 * must stay valid until nub_pool_destroy); setup may be NULL. Errors:
 * NUB_E_INVALID (NULL, size 0, a pre-init snapshot), NUB_E_NOMEM (also:
 * the filler thread could not start). */
nub_status nub_pool_new(nub_snapshot *snap, size_t size, const struct nub_config *cfg_overrides,
                        nub_pool_setup_fn setup, void *setup_ctx, nub_pool **out,
                        struct nub_error *err);

/* Hand out a ready sandbox: at once when one is ready, else created now on
 * this thread (errors then as nub_sandbox_new_from_snapshot(), or
 * NUB_E_INVALID when the setup callback failed). */
nub_status nub_pool_acquire(nub_pool *pool, nub_sandbox **out, struct nub_error *err);

/* Give a sandbox from nub_pool_acquire back: restored and kept ready, or
 * destroyed when the pool is full or the restore fails. NULL is ignored. */
void nub_pool_release(nub_pool *pool, nub_sandbox *sb);

/* Sandboxes ready in the pool now (0 for NULL). */
size_t nub_pool_ready(nub_pool *pool);

/* Block until `size` sandboxes are ready (a warm pool). NUB_E_BACKEND when
 * the filler could not create one (nub_pool_acquire then reports why);
 * NUB_E_INVALID for NULL. */
nub_status nub_pool_wait_full(nub_pool *pool);

/* Stop the filler and destroy the ready sandboxes. NULL is ignored. */
void nub_pool_destroy(nub_pool *pool);

/* Calls made into the guest on `sb` by nub_call / nub_call_into and the
 * functions built on them (nub_put_cap, ...) that entered the guest: calls
 * refused before it (NUB_E_TOO_LARGE, NUB_E_INVALID, state errors, a
 * watchdog that could not start) and reads of the cache directory do not
 * count. */
uint64_t nub_sandbox_call_count(const nub_sandbox *sb);

NUB_API_END

#ifdef __cplusplus
}
#endif

#include "nub/observe.h"

#endif /* NUB_NUB_H */
