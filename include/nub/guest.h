/* nub guest SDK (libnubguest.a): function registration, replies, host calls, logging, abort, heap, string helpers. */
#ifndef NUB_GUEST_H
#define NUB_GUEST_H

/*
 * A nub guest is a freestanding x86-64 ELF linked with guest/nub.ld and
 * build/libnubguest.a (no libc, no libgcc). The SDK owns the entry point
 * `_start`: it installs the guest's GDT, TSS and IDT (every CPU exception
 * is reported to the host as an abort), initialises the heap over the
 * PEB's heap region, calls the program's nub_guest_init() (which
 * registers functions with nub_register()), publishes the dispatch entry
 * in the PEB and halts. Each call from the host then runs the registered
 * function on a fresh stack.
 *
 * Minimal guest:
 *
 *     #include "nub/guest.h"
 *
 *     static uint32_t echo(const uint8_t *in, size_t in_len, struct nub_reply *r)
 *     {
 *         return nub_reply_set(r, in, in_len);
 *     }
 *
 *     void nub_guest_init(void)
 *     {
 *         nub_register(1, echo);
 *     }
 *
 * Everything here runs single-threaded with interrupts off; no function is
 * re-entrant with respect to the host (a guest function may call host
 * functions, but a host function cannot call back into the guest).
 * docs/guest-sdk.md describes the protocol in full.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "nub/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NUB_NORETURN __attribute__((noreturn))
/* C99 `restrict`, spelled so the header also compiles as C++. */
#ifdef __cplusplus
#define NUB_RESTRICT __restrict
#else
#define NUB_RESTRICT restrict
#endif
#define NUB_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))

/* ---- Program entry and function registration ---------------------------- */

/*
 * Defined by the guest program: called once during boot, after the
 * descriptor tables and the heap are set up and before the host's first
 * call. Register functions here; the heap, logging, host calls and abort
 * are usable. Returning completes init.
 */
void nub_guest_init(void);

/* Most functions one guest can register. */
#define NUB_GUEST_MAX_FNS 64u

struct nub_reply; /* the response being built for the current call */

/*
 * A guest function. `in` points at the request payload inside the input
 * buffer (8-byte aligned, read-only by convention, valid until the
 * function returns, also across host calls). The function builds its
 * result through `reply` and returns the response status: NUB_STATUS_OK
 * (0) for success, or another NUB_STATUS_* (a non-zero status reaches the
 * host caller as NUB_E_GUEST together with the message set by
 * nub_reply_error()).
 */
typedef uint32_t (*nub_guest_fn)(const uint8_t *in, size_t in_len, struct nub_reply *reply);

/* nub_register() results. */
#define NUB_REG_OK        0  /* registered */
#define NUB_REG_DUPLICATE -1 /* fn_id already registered */
#define NUB_REG_FULL      -2 /* NUB_GUEST_MAX_FNS functions already registered */
#define NUB_REG_INVALID   -3 /* fn is NULL */

/* Register `fn` under `fn_id`. Returns NUB_REG_OK or a negative NUB_REG_* code. */
int nub_register(uint32_t fn_id, nub_guest_fn fn);

/* The function registered under fn_id, or NULL. */
nub_guest_fn nub_lookup(uint32_t fn_id);

/* ---- Building the reply --------------------------------------------------
 *
 * The response payload is built in place in the output buffer, so a large
 * result is written once. The first nub_reply_reserve/set/append call
 * stakes out the reply at the current top of the output buffer as a
 * provisional NUB_MSG_RESPONSE frame; host calls and log messages made
 * afterwards are pushed above it (and popped by the host before control
 * returns), so they never overwrite the reply, and the pointer returned by
 * nub_reply_reserve() stays valid until the function returns. Each
 * further reserve/set/append re-frames the reply at the same address:
 * bytes already written below the new length are kept. When the function
 * returns, the SDK rewrites the frame with the final length, the status
 * and the error message.
 *
 * Space: the reply and everything pushed above it (host-call requests, log
 * messages) share the output buffer; a big reply leaves less room for
 * them. A function that needs a big request to the host and a big reply
 * should make the host call first.
 */

/* Largest payload length the reply could be resized to right now. */
size_t nub_reply_capacity(const struct nub_reply *reply);

/* Current payload length (0 until the reply is first sized). */
size_t nub_reply_len(const struct nub_reply *reply);

/*
 * Resize the reply payload to `len` bytes and return a pointer to its first
 * byte (8-byte aligned). Bytes below min(old length, len) keep their
 * values; bytes past the old length are unspecified until written. The
 * pointer stays the same across resizes. Returns NULL, leaving the reply
 * as it was, when `len` does not fit (see nub_reply_capacity()).
 */
uint8_t *nub_reply_reserve(struct nub_reply *reply, size_t len);

/* Replace the payload with a copy of `len` bytes at `data`.
 * Returns NUB_STATUS_OK or NUB_STATUS_TOO_LARGE (reply unchanged). */
uint32_t nub_reply_set(struct nub_reply *reply, const void *data, size_t len);

/* Append `len` bytes at `data` to the payload.
 * Returns NUB_STATUS_OK or NUB_STATUS_TOO_LARGE (reply unchanged). */
uint32_t nub_reply_append(struct nub_reply *reply, const void *data, size_t len);

/* Longest error message kept; longer ones are truncated. */
#define NUB_GUEST_ERROR_MAX 1024u

/*
 * Set the response's error message (printf-style, see nub_vformat()),
 * replacing an earlier one. It is sent with whatever status the function
 * returns; when a function returns a non-zero status without a message,
 * the SDK supplies a generic one. Returns the status `status` so a
 * function can `return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "...")`.
 */
uint32_t nub_reply_error(struct nub_reply *reply, uint32_t status, const char *fmt, ...)
    NUB_PRINTF(3, 4);

/* ---- Host calls ------------------------------------------------------------ */

/* Result of a host call. Views point into the input buffer. */
struct nub_host_result {
    uint32_t status;          /* NUB_STATUS_* reported by the host (or by the SDK, see below) */
    uint32_t from_host;       /* 1 when the host responded, 0 when the SDK made up the status */
    const uint8_t *data;      /* response payload */
    size_t len;
    const char *error;        /* error message bytes (not NUL-terminated) */
    size_t error_len;
    uint64_t frame_off_;      /* SDK private: the response frame, 0 when none is held */
};

/*
 * Call host function `fn_id` with `in_len` bytes at `in` and leave the
 * response in the input buffer: *res gets the status and views of the
 * payload and the error message, valid until nub_host_call_end(res).
 * Results must be ended in reverse order of the calls that made them.
 * `in` must not point into the output buffer's free space (it may point
 * into the reply).
 *
 * Returns res->status. Statuses produced by the SDK itself (no host
 * response was received): NUB_STATUS_TOO_LARGE with an SDK message when
 * the request does not fit the output buffer. A malformed host response
 * aborts the guest (NUB_GUEST_ABORT_PROTOCOL).
 */
uint32_t nub_host_call_begin(uint32_t fn_id, const void *in, size_t in_len,
                             struct nub_host_result *res);

/* Drop the response held by *res from the input buffer (no-op when none). */
void nub_host_call_end(struct nub_host_result *res);

/*
 * Call host function `fn_id` and copy its payload into `out` (capacity
 * `out_cap`); *out_len (may be NULL) gets the payload length even when it
 * did not fit. Returns the host status, or NUB_STATUS_TOO_LARGE when the
 * request did not fit or the payload is longer than out_cap (nothing is
 * copied then). The host's error message, if any, is copied NUL-terminated
 * into `err` (capacity `err_cap`, may be 0/NULL).
 */
uint32_t nub_host_call(uint32_t fn_id, const void *in, size_t in_len,
                       void *out, size_t out_cap, size_t *out_len,
                       char *err, size_t err_cap);

/* ---- Logging and console ----------------------------------------------------- */

/* Longest log message; longer ones are truncated. */
#define NUB_GUEST_LOG_MAX 1024u

/* True when a message at `level` (NUB_LOG_LEVEL_*) would reach the host. */
int nub_log_enabled(uint32_t level);

/*
 * Send a log message at `level` (NUB_LOG_LEVEL_ERROR..TRACE): formatted
 * with nub_vformat(), pushed onto the output buffer as NUB_MSG_LOG and
 * announced with OUT NUB_PORT_LOG. Returns 1 when sent (cut to
 * NUB_GUEST_LOG_MAX bytes, or to the room left in the output buffer), 0
 * when filtered by the host's maximum guest log level (or level 0 / above
 * TRACE), -1 when the output buffer had no room for even an empty message.
 */
int nub_log(uint32_t level, const char *fmt, ...) NUB_PRINTF(2, 3);
int nub_vlog(uint32_t level, const char *fmt, va_list ap);

/* Write `s` to the host console, one byte per OUT NUB_PORT_PRINT. */
void nub_print(const char *s);
/* Write `len` bytes to the host console. */
void nub_print_bytes(const void *s, size_t len);
/* Formatted console output (up to NUB_GUEST_LOG_MAX bytes). */
void nub_printf(const char *fmt, ...) NUB_PRINTF(1, 2);

/* ---- Formatting ----------------------------------------------------------------
 *
 * A small printf subset: %d %i %u %x %X %p %s %c %%, flags '-' and '0',
 * a width (number or *), a precision for %s (number or *, e.g. "%.*s"),
 * length modifiers hh h l ll z j t. %p prints 0x followed by 16 hex
 * digits. No floating point, no %n.
 */

/* Format into buf (at most cap bytes, no NUL terminator written); returns
 * the full length the output would have, which may exceed cap. */
size_t nub_vformat(char *buf, size_t cap, const char *fmt, va_list ap);
size_t nub_format(char *buf, size_t cap, const char *fmt, ...) NUB_PRINTF(3, 4);

/* snprintf semantics: NUL-terminates when cap > 0; returns the full length. */
size_t nub_snprintf(char *buf, size_t cap, const char *fmt, ...) NUB_PRINTF(3, 4);
size_t nub_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap);

/* ---- Abort ----------------------------------------------------------------------- */

/* Codes used by the SDK for its own aborts (nub_abort_record.code). */
#define NUB_GUEST_ABORT_PANIC    0x6e756200ull /* nub_panic() */
#define NUB_GUEST_ABORT_PROTOCOL 0x6e756201ull /* malformed buffers / host protocol error */
#define NUB_GUEST_ABORT_HEAP     0x6e756202ull /* heap corruption, invalid or double free */
#define NUB_GUEST_ABORT_BOOT     0x6e756203ull /* bad PEB or boot arguments */
#define NUB_GUEST_ABORT_ASSERT   0x6e756204ull /* NUB_ASSERT failed */

/*
 * Report an explicit abort and stop: fills the abort record in the scratch
 * top page (kind NUB_ABORT_EXPLICIT, `code`, the message truncated to
 * NUB_ABORT_MSG_MAX bytes with NUB_ABORT_F_TRUNCATED set when longer),
 * executes OUT NUB_PORT_ABORT and halts forever. The host poisons the
 * sandbox (NUB_E_GUEST_ABORT).
 */
NUB_NORETURN void nub_abort(uint64_t code, const char *fmt, ...) NUB_PRINTF(2, 3);
NUB_NORETURN void nub_vabort(uint64_t code, const char *fmt, va_list ap);
/* nub_abort() with `len` raw message bytes (need not be NUL-terminated). */
NUB_NORETURN void nub_abort_bytes(uint64_t code, const void *msg, size_t len);
/* nub_abort(NUB_GUEST_ABORT_PANIC, ...). */
NUB_NORETURN void nub_panic(const char *fmt, ...) NUB_PRINTF(1, 2);

/* Abort with file, line and expression text when `cond` is false. */
#define NUB_ASSERT(cond)                                                          \
    do {                                                                          \
        if (!(cond))                                                              \
            nub_abort(NUB_GUEST_ABORT_ASSERT, "%s:%d: assertion failed: %s",      \
                      __FILE__, __LINE__, #cond);                                 \
    } while (0)

/* ---- Environment -------------------------------------------------------------------- */

/* The PEB passed by the host at boot. */
const struct nub_peb *nub_peb(void);
/* The per-sandbox random seed passed by the host at boot (RSI). */
uint64_t nub_seed(void);
/* The page size passed by the host at boot (RDX). */
uint64_t nub_page_size(void);
/* The host's current maximum guest log level (first passed at boot in RCX,
 * then read from the scratch top page, which the host updates at any time). */
uint32_t nub_max_log_level(void);
/* Init data: returns its address and stores its size in *len (may be NULL);
 * NULL and 0 when the sandbox has none. Writable only if the host mapped it so. */
const uint8_t *nub_init_data(size_t *len);
/* The host-maintained guest counter (a volatile read of the scratch top page). */
uint64_t nub_guest_counter(void);
/* Publish a struct nub_boot_info (writes its GVA into the PEB). */
void nub_set_boot_info(const struct nub_boot_info *info);

/* ---- Heap ------------------------------------------------------------------------------
 *
 * First-fit allocator over the PEB heap with address-ordered free list and
 * coalescing; every pointer is 16-byte aligned. Freeing a pointer that is
 * not a live allocation (double free, pointer into the middle of a block,
 * outside the heap) aborts with NUB_GUEST_ABORT_HEAP.
 */
void *nub_malloc(size_t size);
void *nub_calloc(size_t n, size_t size);       /* zeroed; NULL on n*size overflow */
void *nub_realloc(void *ptr, size_t size);     /* realloc(p, 0) frees p and returns NULL */
void nub_free(void *ptr);
/* Bytes usable in the allocation at ptr (>= the size requested); 0 for NULL.
 * A ptr that is not a live allocation aborts like nub_free(). */
size_t nub_malloc_usable_size(void *ptr);
void nub_heap_stats(struct nub_heap_stats *out);
/* Walk the whole heap checking every block header and the free list;
 * returns 0 when consistent, else a negative number (the check aborts nothing). */
int nub_heap_check(void);

/* Standard names, same behaviour. */
void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void *realloc(void *ptr, size_t size);
void free(void *ptr);

/* ---- Memory and string helpers (standard semantics) ---------------------------------- */

void *memcpy(void *NUB_RESTRICT dst, const void *NUB_RESTRICT src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
void *memchr(const void *s, int c, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);

/* ---- Low level --------------------------------------------------------------------------- */

/* OUT `value` to `port` (32-bit, port in DX). */
static inline void nub_outl(uint16_t port, uint32_t value)
{
    __asm__ volatile("outl %0, %1" : : "a"(value), "d"(port) : "memory");
}

/* Signal NUB_PORT_HALT and stop; the host never resumes after it. Used by
 * the SDK at the end of init and of each call. */
NUB_NORETURN void nub_halt(void);

#ifdef __cplusplus
}
#endif

#endif /* NUB_GUEST_H */
