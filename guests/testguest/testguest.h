/* Test guest function ids and payload formats, shared by guests/testguest and the host tests. */
#ifndef NUB_TESTGUEST_H
#define NUB_TESTGUEST_H

/*
 * Freestanding (only <stdint.h> and nub/abi.h): included by the guest and
 * by host tests; installed as <nub/testguest.h> for programs that drive the
 * installed testguest.elf.
 * All integers in payloads are little-endian. "Empty" means a zero-length
 * payload. Functions that fault or abort never return a response; the
 * host reports the fault/abort instead.
 */

#include <stdint.h>

#include "nub/abi.h"

/* in: any bytes. out: the same bytes (built in place). */
#define NUB_TG_FN_ECHO 1u
/* in: u64 a, u64 b. out: u64 a + b (wrapping). Other lengths: NUB_STATUS_BAD_PAYLOAD. */
#define NUB_TG_FN_ADD 2u
/* in: u32 host fn_id, then bytes. Calls that host function with the bytes.
 * out: exactly the host's payload; a host error becomes NUB_STATUS_HOST_ERROR
 * with the host's message (a status the SDK produced, such as
 * NUB_STATUS_TOO_LARGE, is passed through with its message). */
#define NUB_TG_FN_HOST_CALL 3u
/* in: empty, or u64 PRNG seed and optional u32 iteration count (default 2000).
 * Allocates, frees, reallocs and callocs many blocks of varying sizes,
 * verifying contents and nub_heap_check(). out: struct nub_heap_stats after
 * everything was freed. Mismatch: NUB_STATUS_GUEST_ERROR with a message. */
#define NUB_TG_FN_ALLOC 4u
/* in: u64 N. out: N bytes, byte i = i & 0xff. N larger than the output
 * buffer allows: NUB_STATUS_TOO_LARGE. */
#define NUB_TG_FN_RETURN_N 5u
/* Never returns (for timeouts and nub_interrupt). */
#define NUB_TG_FN_SPIN 6u
/* Integer divide by zero: #DE, vector 0. */
#define NUB_TG_FN_DIV_ZERO 7u
/* Read from address 0: #PF, vector 14, CR2 = 0. */
#define NUB_TG_FN_NULL_DEREF 8u
/* Unbounded recursion: #PF on the guard page below the stack. */
#define NUB_TG_FN_STACK_OVERFLOW 9u
/* in: message bytes. nub_abort(0x1234, message): explicit abort (messages
 * over NUB_ABORT_MSG_MAX bytes are truncated and flagged). */
#define NUB_TG_FN_ABORT 10u
#define NUB_TG_ABORT_CODE 0x1234u
/* Write to its own text: #PF, vector 14, error code write|present. */
#define NUB_TG_FN_WRITE_TEXT 11u
/* Call into heap memory holding a `ret`: #PF on the instruction fetch (NX). */
#define NUB_TG_FN_EXEC_HEAP 12u
/* OUT to port 0x3f8 (not a nub port): protocol violation. */
#define NUB_TG_FN_BAD_PORT 13u
#define NUB_TG_BAD_PORT 0x3f8u
/* out: a copy of the init data (empty when there is none). */
#define NUB_TG_FN_INIT_DATA 14u
/* out: u64 guest counter. */
#define NUB_TG_FN_GUEST_COUNTER 15u
/* in: empty or message text. Logs "testguest level N: <text>" at levels
 * ERROR..TRACE. out: u32 number of messages sent (those within the max
 * guest log level). */
#define NUB_TG_FN_LOG_LEVELS 16u
/* Returns NUB_STATUS_GUEST_ERROR with the message "guest says no". */
#define NUB_TG_FN_FAIL 17u
#define NUB_TG_FAIL_MSG "guest says no"
/* out: struct nub_heap_stats (abi.h). */
#define NUB_TG_FN_HEAP_STATS 18u
/* ud2: #UD, vector 6. */
#define NUB_TG_FN_UD2 19u
/* out: struct nub_tg_info. */
#define NUB_TG_FN_INFO 20u
/* out: empty (the cheapest possible call). */
#define NUB_TG_FN_NOOP 21u
/* Writes 0xA5 over the whole output buffer (stack pointer included), then OUT HALT. */
#define NUB_TG_FN_TRASH_OUTPUT 22u
/* Sets the output stack pointer to 0xfffffffffffffff8, then OUT HALT. */
#define NUB_TG_FN_BAD_OUTPUT_SP 23u
/* Hand-writes a response whose payload_len is UINT64_MAX - 7, then OUT HALT. */
#define NUB_TG_FN_HUGE_PAYLOAD_LEN 24u
/* in: empty or u32 count (default 10000). Logs that many ERROR-level
 * messages. out: u32 number sent. */
#define NUB_TG_FN_LOG_FLOOD 25u
#define NUB_TG_LOG_FLOOD_DEFAULT 10000u
/* Loads an IDT with limit 0, then executes ud2: triple fault / shutdown. */
#define NUB_TG_FN_TRIPLE_FAULT 26u
/* IN from port 0x3f8: protocol violation. */
#define NUB_TG_FN_PORT_IN 27u
/* Calls host function NUB_TG_MISSING_HOST_FN. out: u32 status it got
 * (status NUB_STATUS_OK), followed by the host's error message bytes. */
#define NUB_TG_FN_MISSING_HOST_FN 28u
#define NUB_TG_MISSING_HOST_FN 0xdeadu
/* Edits its live page tables so the guard page below the stack maps
 * guest-physical 1 GiB (backed by no region), then reads it: an MMIO access
 * on kvm (protocol violation). The emu backend maps memory once at creation
 * and ignores later page-table edits, so there the read is a page fault. */
#define NUB_TG_FN_MMIO 29u
/* in: u32 host fn_id, then bytes. Reserves a reply holding the bytes,
 * logs at INFO, calls the host function with the bytes, then appends the
 * host's payload: out = bytes ++ host payload. Exercises host calls and
 * logs made while a reply is staged. Host error: NUB_STATUS_HOST_ERROR. */
#define NUB_TG_FN_REPLY_THEN_CALL 30u
/* in: u64 N. Allocates N bytes with malloc, fills and frees them.
 * out: u8 1 when the allocation succeeded, 0 when it failed. */
#define NUB_TG_FN_MALLOC_N 31u
/* Frees the same heap block twice: explicit abort with NUB_GUEST_ABORT_HEAP. */
#define NUB_TG_FN_DOUBLE_FREE 32u
/* in: message bytes. Returns NUB_STATUS_GUEST_ERROR with that message
 * (longer than NUB_GUEST_ERROR_MAX: truncated). */
#define NUB_TG_FN_FAIL_WITH 33u
/* Writes "testguest\n" to the host console (NUB_PORT_PRINT); out: empty. */
#define NUB_TG_FN_PRINT 34u
/* in: u32 host fn_id, u32 count. Calls that host function `count` times
 * with an empty payload. out: empty. (For measuring host-call cost.) */
#define NUB_TG_FN_HOST_CALL_LOOP 35u
/* Publishes an output stack whose back-pointer lies past the stack pointer, then OUT HALT. */
#define NUB_TG_FN_BOGUS_BACKPTR 36u

/* ---- Hostile behaviours aimed at the host (guests/testguest/hostile.c) ---- */
#define NUB_TG_STR_(x) #x
#define NUB_TG_STR(x) NUB_TG_STR_(x)
/* in: u32 n <= NUB_TG_OUT_SITES_MAX, optional u32 layout. Executes n
 * distinct OUT sites (OUT to NUB_PORT_PRINT of '.'), each in its own
 * translated block (layout NUB_TG_OUT_SITES_SEPARATE, the default) or back
 * to back (NUB_TG_OUT_SITES_PACKED). out: u32 n. */
#define NUB_TG_FN_OUT_SITES 60u
#define NUB_TG_OUT_SITES_SEPARATE 0u
#define NUB_TG_OUT_SITES_PACKED 1u
#define NUB_TG_OUT_SITES_MAX 4096
#define NUB_TG_OUT_SITE_BYTES 3u
/* sysenter in 64-bit mode (#UD on AMD; kvm cannot emulate it on some hosts). */
#define NUB_TG_FN_SYSENTER 61u
/* rep insb (8 bytes) from port NUB_TG_BAD_PORT: string IN, a protocol violation. */
#define NUB_TG_FN_REP_INSB 62u
/* rep outsb of "outs\n" (5 bytes) to NUB_PORT_PRINT: string OUT. */
#define NUB_TG_FN_REP_OUTSB 63u
/* mov 0xfffffffff000 -> CR3 (beyond any physical address width). */
#define NUB_TG_FN_BAD_CR3 64u
/* in: u8 vector (0x21, 0x80 or 0xff). Executes `int $vector`. */
#define NUB_TG_FN_SOFT_INT 65u
/* in: up to sizeof(struct nub_abort_record) bytes copied over the zeroed
 * abort record, then OUT NUB_PORT_ABORT with the record's kind. */
#define NUB_TG_FN_FORGE_ABORT 66u
/* in: bytes, each sent to NUB_PORT_PRINT. out: empty. */
#define NUB_TG_FN_PRINT_BYTES 67u
/* in: u64 capacity (power of two > NUB_CDIR_MAX_PROBE), 32-byte hash H.
 * Publishes a cache directory whose every slot is filled (slot i holds a
 * hash whose home slot is i), with H stored NUB_CDIR_MAX_PROBE slots past
 * its home slot: one probe beyond the bound. out: empty. */
#define NUB_TG_FN_FULL_CDIR 68u

/* Environment as the guest saw it (NUB_TG_FN_INFO). */
struct nub_tg_info {
    uint64_t seed;            /* RSI at boot */
    uint64_t page_size;       /* RDX at boot */
    uint64_t max_log_level;   /* RCX at boot (clamped to NUB_LOG_LEVEL_TRACE) */
    uint64_t peb_gva;         /* RDI at boot */
    uint64_t input_gva;
    uint64_t input_size;
    uint64_t output_gva;
    uint64_t output_size;
    uint64_t heap_gva;
    uint64_t heap_size;
    uint64_t init_data_gva;
    uint64_t init_data_size;
    uint64_t stack_gva;
    uint64_t stack_size;
    uint64_t scratch_gva;
    uint64_t scratch_size;
    uint64_t dispatch_gva;
    uint64_t rsp;             /* stack pointer inside the function */
};
NUB_STATIC_ASSERT(sizeof(struct nub_tg_info) == 18 * 8, "nub_tg_info size");

#ifdef NUB_GUEST
/* Guest side only: each source file of the test guest registers its functions. */
void nub_tg_register_basic(void);
void nub_tg_register_faults(void);
void nub_tg_register_heap(void);
void nub_tg_register_hostile(void);
#endif

#endif /* NUB_TESTGUEST_H */
