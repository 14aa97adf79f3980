/* nub host<->guest ABI: addresses, memory layout, ports, PEB, scratch top page, wire message, statuses, boot info, cap directory (nubk's function ids and init data: nubk.h). */
#ifndef NUB_ABI_H
#define NUB_ABI_H

/*
 * This header is the contract between the host library and every guest.
 * It is freestanding (only <stddef.h> and <stdint.h>) and compiled into
 * both sides (C and C++), so a
 * struct here has exactly one layout: every field has an explicit width,
 * every struct is guarded by a static assertion (NUB_STATIC_ASSERT) on its
 * size and field offsets,
 * and nothing holds a pointer (guest addresses are u64 GVAs, references
 * inside guest data structures are offsets). All integers are
 * little-endian (nub runs x86-64 guests only).
 *
 * See docs/abi.md (memory, boot and calls, wire format) and docs/design.md
 * (why the layout is fixed); caps in docs/caps.md; the nubk kernel's own
 * function ids and init data are in nub/nubk.h (docs/nubk.md).
 */

#include <stddef.h>
#include <stdint.h>

/* A compile-time assertion that works in C11 and in C++11 and later. */
#if defined(__cplusplus)
#define NUB_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define NUB_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ABI version carried in the PEB; bumped on any incompatible change. */
#define NUB_ABI_VERSION 1u

/* ---- Address space ------------------------------- */

/* Guest page size. */
#define NUB_PAGE_SIZE 0x1000ull
/* First guest-physical address of the snapshot region (page 0 unmapped). */
#define NUB_BASE_GPA 0x1000ull
/* Virtual base of the snapshot region: GVA = NUB_KERNEL_BASE + (GPA - NUB_BASE_GPA). */
#define NUB_KERNEL_BASE 0xffffffff80000000ull
/* Highest guest-physical address; the scratch region ends here. */
#define NUB_MAX_GPA 0xfffffffffull
/* Highest mapped guest-virtual address; the scratch region ends here. */
#define NUB_MAX_GVA 0xffffffffffffefffull
/*
 * Both regions live in the top 2 GiB of the virtual address space, between
 * NUB_KERNEL_BASE and NUB_MAX_GVA: their sizes together must not exceed
 * NUB_MAX_REGIONS_SIZE.
 */
#define NUB_MAX_REGIONS_SIZE (NUB_MAX_GVA - NUB_KERNEL_BASE + 1ull)

/* Default sizes (nub_config: what a size of 0 means); every configured size
 * but max_image_size is rounded up to NUB_PAGE_SIZE. */
#define NUB_DEFAULT_HEAP_SIZE   (128ull * 1024)
#define NUB_DEFAULT_STACK_SIZE  (64ull * 1024)
#define NUB_DEFAULT_INPUT_SIZE  (64ull * 1024)
#define NUB_DEFAULT_OUTPUT_SIZE (64ull * 1024)
/* Exception stack (IST1) size: fixed. */
#define NUB_EXN_STACK_SIZE      (16ull * 1024)

/*
 * Scratch region, packed against its top (it ends at NUB_MAX_GVA), upwards:
 *   input buffer | output buffer | guard page | stack | guard page |
 *   exception stack | top page (struct nub_scratch_top)
 * A nub_config.scratch_size larger than these need leaves the extra bytes
 * unused below the input buffer (nub_peb.input_gva is then above
 * scratch_gva). The two guard pages are left unmapped in the guest page
 * tables.
 */
#define NUB_SCRATCH_FIXED_SIZE (2ull * NUB_PAGE_SIZE + NUB_EXN_STACK_SIZE + NUB_PAGE_SIZE)

/* Scratch base for a scratch region of `size` bytes. */
#define NUB_SCRATCH_BASE_GPA(size) (NUB_MAX_GPA - (uint64_t)(size) + 1ull)
#define NUB_SCRATCH_BASE_GVA(size) (NUB_MAX_GVA - (uint64_t)(size) + 1ull)
/* GVA of the top page of scratch (struct nub_scratch_top). */
#define NUB_SCRATCH_TOP_GVA (NUB_MAX_GVA - NUB_PAGE_SIZE + 1ull)

/* Memory permissions (init data, ELF segments). */
#define NUB_MEM_READ  0x1u
#define NUB_MEM_WRITE 0x2u
#define NUB_MEM_EXEC  0x4u

/* ---- Ports ------------------------------------------
 * The guest signals the host with `OUT dx, eax` (a 32-bit value):
 *   LOG   the guest pushed a NUB_MSG_LOG message onto the output buffer
 *   CALL  the guest pushed a NUB_MSG_REQUEST onto the output buffer (host
 *         call); the host pushes the NUB_MSG_RESPONSE onto the input buffer
 *   ABORT the guest filled the abort record in the scratch top page
 *   PRINT the low 8 bits of the value are one byte of console text
 *   HALT  init or the current call is complete
 * Any other port, any IN and any MMIO access is a protocol violation.
 */
#define NUB_PORT_LOG   99u
#define NUB_PORT_CALL  101u
#define NUB_PORT_ABORT 102u
#define NUB_PORT_PRINT 103u
#define NUB_PORT_HALT  108u

/* ---- PEB -------------------------------------------- */

#define NUB_PEB_MAGIC 0x313042455042554eull /* "NUBPEB01" little-endian */

/* Process environment block: written by the host, at a page-aligned GVA
 * passed to the entry point in RDI. The last two fields are filled in by
 * the guest during init. */
struct nub_peb {
    uint64_t magic;            /* NUB_PEB_MAGIC */
    uint32_t abi_version;      /* NUB_ABI_VERSION */
    uint32_t init_data_perms;  /* NUB_MEM_* of the init-data mapping */
    uint64_t input_gva;        /* input buffer (host -> guest stack) */
    uint64_t input_size;
    uint64_t output_gva;       /* output buffer (guest -> host stack) */
    uint64_t output_size;
    uint64_t heap_gva;
    uint64_t heap_size;
    uint64_t init_data_gva;    /* 0 when there is no init data */
    uint64_t init_data_size;   /* exact byte length of the blob */
    uint64_t stack_gva;        /* lowest address of the stack */
    uint64_t stack_size;       /* stack top = stack_gva + stack_size */
    uint64_t exn_stack_gva;    /* lowest address of the exception stack */
    uint64_t exn_stack_size;
    uint64_t scratch_gva;      /* scratch base */
    uint64_t scratch_size;
    uint64_t dispatch_gva;     /* guest: call entry point */
    uint64_t boot_info_gva;    /* guest: struct nub_boot_info, or 0 */
};
NUB_STATIC_ASSERT(sizeof(struct nub_peb) == 144, "nub_peb size");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, abi_version) == 8, "nub_peb.abi_version");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, input_gva) == 16, "nub_peb.input_gva");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, output_gva) == 32, "nub_peb.output_gva");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, heap_gva) == 48, "nub_peb.heap_gva");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, init_data_gva) == 64, "nub_peb.init_data_gva");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, stack_gva) == 80, "nub_peb.stack_gva");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, exn_stack_gva) == 96, "nub_peb.exn_stack_gva");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, scratch_gva) == 112, "nub_peb.scratch_gva");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, dispatch_gva) == 128, "nub_peb.dispatch_gva");
NUB_STATIC_ASSERT(offsetof(struct nub_peb, boot_info_gva) == 136, "nub_peb.boot_info_gva");

/* ---- Scratch top page ------------------------------ */

/* Longest abort message kept; longer ones are truncated and flagged. */
#define NUB_ABORT_MSG_MAX 1024u

/* nub_abort_record.kind */
#define NUB_ABORT_NONE      0u /* no abort pending */
#define NUB_ABORT_EXPLICIT  1u /* nub_abort(code, message) or a panic */
#define NUB_ABORT_EXCEPTION 2u /* unhandled CPU exception (vector etc. valid) */

/* nub_abort_record.flags */
#define NUB_ABORT_F_TRUNCATED 0x1u /* message was longer than NUB_ABORT_MSG_MAX */

/* What the guest reports with OUT NUB_PORT_ABORT. */
struct nub_abort_record {
    uint32_t kind;        /* NUB_ABORT_* */
    uint32_t flags;       /* NUB_ABORT_F_* */
    uint64_t code;        /* guest-chosen code (explicit aborts) */
    uint64_t vector;      /* exception vector (0..31) */
    uint64_t error_code;  /* exception error code, 0 if none */
    uint64_t fault_addr;  /* CR2 at the time of the exception */
    uint64_t rip;         /* exception: the faulting instruction (the frame's RIP); explicit
                           * abort: the return address into nub_abort()'s caller */
    uint32_t msg_len;     /* bytes valid in msg, <= NUB_ABORT_MSG_MAX */
    uint32_t reserved;
    char msg[NUB_ABORT_MSG_MAX];
};
NUB_STATIC_ASSERT(sizeof(struct nub_abort_record) == 56 + NUB_ABORT_MSG_MAX, "abort record size");
NUB_STATIC_ASSERT(offsetof(struct nub_abort_record, code) == 8, "abort.code");
NUB_STATIC_ASSERT(offsetof(struct nub_abort_record, vector) == 16, "abort.vector");
NUB_STATIC_ASSERT(offsetof(struct nub_abort_record, rip) == 40, "abort.rip");
NUB_STATIC_ASSERT(offsetof(struct nub_abort_record, msg_len) == 48, "abort.msg_len");
NUB_STATIC_ASSERT(offsetof(struct nub_abort_record, msg) == 56, "abort.msg");

/*
 * The top of the exception stack (IST1: exn_stack_gva + exn_stack_size,
 * 16-byte aligned) while the SDK reports a CPU exception: the CPU's frame
 * plus the stub's vector and error code (NUB_EXN_FRAME_SIZE bytes: vector,
 * error code, RIP, CS, RFLAGS, RSP, SS, from low to high addresses) and,
 * right below it, the interrupted context's general-purpose registers as
 * the exception entry saved them, marked with NUB_EXN_REGS_MAGIC. The host
 * only shows these to a debugger (gdb's fault stop on kvm, where the vCPU
 * is left in the handler); a guest that writes something else there
 * misleads only its own debugger. No magic: the registers are not there.
 */
#define NUB_EXN_FRAME_SIZE 56u
#define NUB_EXN_REGS_MAGIC 0x3153474552584e45ull /* "ENXREGS1" little-endian */

struct nub_exn_regs {
    uint64_t magic; /* NUB_EXN_REGS_MAGIC */
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
};
NUB_STATIC_ASSERT(sizeof(struct nub_exn_regs) == 128, "exception register save area size");
NUB_STATIC_ASSERT(offsetof(struct nub_exn_regs, rax) == 120, "exn_regs.rax (pushed first)");

/* Offset of the host-authoritative guest counter, counted down from the top
 * of scratch: counter GVA = NUB_MAX_GVA + 1 - this. */
#define NUB_SCRATCH_TOP_GUEST_COUNTER_OFFSET 0x10ull

/* Offset, counted down from the top of scratch, of the host-written u32 max
 * guest log level (NUB_LOG_LEVEL_*): the guest reads it before each log
 * message, so nub_sandbox_set_max_guest_log_level() applies at once. */
#define NUB_SCRATCH_TOP_LOG_LEVEL_OFFSET 0x08ull

#define NUB_SCRATCH_TOP_MAGIC 0x504f544843524353ull /* "SCRCHTOP" */

/* The top page of scratch, at NUB_SCRATCH_TOP_GVA. */
struct nub_scratch_top {
    uint64_t magic;                     /* NUB_SCRATCH_TOP_MAGIC */
    uint64_t scratch_size;              /* total scratch bytes */
    struct nub_abort_record abort_rec;  /* filled by the guest before OUT ABORT */
    uint8_t reserved[4096 - 16 - sizeof(struct nub_abort_record) - 16];
    uint64_t guest_counter;             /* written by the host only */
    uint32_t max_log_level;             /* written by the host only (NUB_LOG_LEVEL_*) */
    uint32_t reserved_tail;
};
NUB_STATIC_ASSERT(sizeof(struct nub_scratch_top) == NUB_PAGE_SIZE, "scratch top is one page");
NUB_STATIC_ASSERT(offsetof(struct nub_scratch_top, abort_rec) == 16, "scratch_top.abort_rec");
NUB_STATIC_ASSERT(offsetof(struct nub_scratch_top, guest_counter) ==
                   NUB_PAGE_SIZE - NUB_SCRATCH_TOP_GUEST_COUNTER_OFFSET,
               "guest counter at its fixed offset from the top of scratch");
NUB_STATIC_ASSERT(offsetof(struct nub_scratch_top, max_log_level) ==
                   NUB_PAGE_SIZE - NUB_SCRATCH_TOP_LOG_LEVEL_OFFSET,
               "max guest log level at its fixed offset from the top of scratch");

/* ---- Wire format --------------------------------------
 * Each I/O buffer is a stack: its first 8 bytes hold the stack pointer (the
 * offset of the first free byte, NUB_WIRE_EMPTY_SP when empty). A push
 * writes a message (struct nub_msg followed by payload then error bytes),
 * pads it with zeros to a multiple of 8 bytes, then writes an 8-byte
 * back-pointer holding the message's start offset, and moves the stack
 * pointer past it. common/wire.c implements it (nub/wire.h).
 */
#define NUB_WIRE_EMPTY_SP 8ull
#define NUB_MSG_MAGIC 0x4d42554eu /* "NUBM" */

/* nub_msg.kind */
#define NUB_MSG_REQUEST  1u /* id = fn_id */
#define NUB_MSG_RESPONSE 2u /* id = status (NUB_STATUS_*) */
#define NUB_MSG_LOG      3u /* id = level (NUB_LOG_LEVEL_*), payload = text */

struct nub_msg {
    uint32_t magic;       /* NUB_MSG_MAGIC */
    uint32_t kind;        /* NUB_MSG_* */
    uint32_t id;          /* fn_id, status or log level, by kind */
    uint32_t reserved;    /* must be zero */
    uint64_t payload_len; /* payload bytes following the header */
    uint64_t error_len;   /* error-message bytes following the payload */
};
NUB_STATIC_ASSERT(sizeof(struct nub_msg) == 32, "nub_msg size");
NUB_STATIC_ASSERT(offsetof(struct nub_msg, kind) == 4, "nub_msg.kind");
NUB_STATIC_ASSERT(offsetof(struct nub_msg, id) == 8, "nub_msg.id");
NUB_STATIC_ASSERT(offsetof(struct nub_msg, payload_len) == 16, "nub_msg.payload_len");
NUB_STATIC_ASSERT(offsetof(struct nub_msg, error_len) == 24, "nub_msg.error_len");

/* Bytes a pushed message takes beyond its payload and error bytes (and
 * their zero padding): the header and the back-pointer. */
#define NUB_WIRE_FRAME_OVERHEAD ((uint64_t)40)
NUB_STATIC_ASSERT(NUB_WIRE_FRAME_OVERHEAD == sizeof(struct nub_msg) + 8u,
                  "frame overhead: the header plus the 8-byte back-pointer");

/* Response statuses (nub_msg.id of a NUB_MSG_RESPONSE). */
#define NUB_STATUS_OK           0u /* success */
#define NUB_STATUS_UNKNOWN_FN   1u /* no function registered for fn_id */
#define NUB_STATUS_BAD_PAYLOAD  2u /* the function rejected its input */
#define NUB_STATUS_GUEST_ERROR  3u /* a guest function failed */
#define NUB_STATUS_HOST_ERROR   4u /* a host function failed */
#define NUB_STATUS_NO_MEMORY    5u /* allocation failed */
#define NUB_STATUS_TOO_LARGE    6u /* the result does not fit the buffer */

/* Log levels (nub_msg.id of a NUB_MSG_LOG; also the max guest log level). */
#define NUB_LOG_LEVEL_OFF   0u
#define NUB_LOG_LEVEL_ERROR 1u
#define NUB_LOG_LEVEL_WARN  2u
#define NUB_LOG_LEVEL_INFO  3u
#define NUB_LOG_LEVEL_DEBUG 4u
#define NUB_LOG_LEVEL_TRACE 5u

/* Heap statistics returned by the guest SDK (and by nubk's NUB_FN_HEAP_STATS, nub/nubk.h). */
struct nub_heap_stats {
    uint64_t heap_size;      /* bytes managed */
    uint64_t bytes_in_use;   /* bytes in live allocations (payload) */
    uint64_t peak_in_use;    /* high-water mark of bytes_in_use */
    uint64_t allocs;         /* successful allocations so far */
    uint64_t frees;          /* frees so far */
    uint64_t failed_allocs;  /* allocations that returned NULL */
};
NUB_STATIC_ASSERT(sizeof(struct nub_heap_stats) == 48, "heap stats size");

/* ---- Boot info and cap directory ------------------- */

#define NUB_BOOT_INFO_MAGIC   0x4f464e49544f4f42ull /* "BOOTINFO" */
#define NUB_BOOT_INFO_VERSION 1u

/* Published by the guest; its GVA goes into nub_peb.boot_info_gva. */
struct nub_boot_info {
    uint64_t magic;      /* NUB_BOOT_INFO_MAGIC */
    uint32_t version;    /* NUB_BOOT_INFO_VERSION */
    uint32_t reserved;
    uint64_t dir_gva;    /* cache directory (struct nub_cdir_header) */
    uint64_t dir_size;   /* bytes from dir_gva the directory may use */
};
NUB_STATIC_ASSERT(sizeof(struct nub_boot_info) == 32, "boot info size");
NUB_STATIC_ASSERT(offsetof(struct nub_boot_info, dir_gva) == 16, "boot_info.dir_gva");

/* Cap kinds: the first byte of a canonical cap encoding. */
#define NUB_CAP_DATA     1u
#define NUB_CAP_CNODE    2u
#define NUB_CAP_IMAGE    3u
#define NUB_CAP_INSTANCE 4u

#define NUB_CAP_HASH_LEN 32 /* bytes in a cap hash */

#define NUB_CDIR_MAGIC   0x3152494450414342ull /* "BCAPDIR1" */
#define NUB_CDIR_VERSION 1u

/*
 * Cache directory: a header, then an open-addressing table of `capacity`
 * slots (a power of two, linear probing from the hash's first 8 bytes as a
 * little-endian u64 masked by capacity - 1), then an arena holding the
 * canonical encodings. Every reference is a byte offset from the
 * directory base. A slot with blob_len == 0 is empty (no cap encodes to
 * zero bytes). Entries are never removed.
 */
struct nub_cdir_header {
    uint64_t magic;       /* NUB_CDIR_MAGIC */
    uint32_t version;     /* NUB_CDIR_VERSION */
    uint32_t reserved;
    uint64_t capacity;    /* slots in the table, a power of two */
    uint64_t count;       /* filled slots */
    uint64_t table_off;   /* offset of slot 0 */
    uint64_t arena_off;   /* offset of the arena */
    uint64_t arena_size;  /* arena bytes */
    uint64_t arena_used;  /* arena bytes in use */
};
NUB_STATIC_ASSERT(sizeof(struct nub_cdir_header) == 64, "cdir header size");
NUB_STATIC_ASSERT(offsetof(struct nub_cdir_header, capacity) == 16, "cdir.capacity");
NUB_STATIC_ASSERT(offsetof(struct nub_cdir_header, table_off) == 32, "cdir.table_off");
NUB_STATIC_ASSERT(offsetof(struct nub_cdir_header, arena_used) == 56, "cdir.arena_used");

struct nub_cdir_slot {
    uint8_t hash[NUB_CAP_HASH_LEN]; /* cap hash */
    uint64_t blob_off;               /* offset of the encoding from the directory base */
    uint64_t blob_len;               /* encoding length; 0 = empty slot */
};
NUB_STATIC_ASSERT(sizeof(struct nub_cdir_slot) == 48, "cdir slot size");
NUB_STATIC_ASSERT(offsetof(struct nub_cdir_slot, blob_off) == 32, "cdir_slot.blob_off");
NUB_STATIC_ASSERT(offsetof(struct nub_cdir_slot, blob_len) == 40, "cdir_slot.blob_len");

/*
 * Load limit: a directory of `capacity` slots holds at most
 * capacity - capacity / 8 entries (7/8), so a probe for an absent hash
 * always meets an empty slot in a well-formed table. Readers still bound
 * every probe sequence (see NUB_CDIR_MAX_PROBE).
 */
#define NUB_CDIR_MIN_CAPACITY 8ull
#define NUB_CDIR_MAX_CAPACITY (1ull << 32)
#define NUB_CDIR_MAX_ENTRIES(capacity) ((capacity) - (capacity) / 8u)

/*
 * Probe bound: a lookup visits at most NUB_CDIR_MAX_PROBE slots from a
 * hash's home slot (the home slot included) and reports the hash absent
 * after that, whatever the table holds; an insert whose first empty slot
 * lies further than that is refused. A lookup therefore costs at most this
 * many slot reads even in a directory a hostile guest filled completely.
 */
#define NUB_CDIR_MAX_PROBE 256u

#endif /* NUB_ABI_H */
