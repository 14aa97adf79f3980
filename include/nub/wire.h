/* Wire codec: the stack-framed message buffers shared by host and guest (docs/abi.md, "Wire format"). */
#ifndef NUB_WIRE_H
#define NUB_WIRE_H

#include <stdint.h>

#include "nub/abi.h"
#include "nub/api.h"

#ifdef __cplusplus
extern "C" {
#endif

NUB_API_BEGIN

/*
 * A buffer is a stack of messages. Bytes [0, 8) hold the stack pointer:
 * the offset of the first free byte, NUB_WIRE_EMPTY_SP when empty. A frame
 * is a struct nub_msg, its payload, its error bytes, zero padding to a
 * multiple of 8, and an 8-byte back-pointer holding the frame's start
 * offset. All integers are little-endian.
 *
 * Every function here treats the buffer as hostile: the stack pointer,
 * back-pointer, header and lengths are validated with overflow-checked
 * arithmetic before any byte they designate is read, and each kind of
 * malformation has its own error code. Buffer sizes must be multiples of 8
 * and at least NUB_WIRE_MIN_SIZE.
 */

/* Smallest buffer that can hold one empty message. */
#define NUB_WIRE_MIN_SIZE (NUB_WIRE_EMPTY_SP + NUB_WIRE_FRAME_OVERHEAD)

/* Error codes (all negative; NUB_WIRE_OK is 0). */
enum nub_wire_err {
    NUB_WIRE_OK = 0,
    NUB_WIRE_E_BUFFER = -1,    /* buffer NULL, smaller than NUB_WIRE_MIN_SIZE or size not 8-aligned */
    NUB_WIRE_E_SP_RANGE = -2,  /* stack pointer below 8 or past the end of the buffer */
    NUB_WIRE_E_SP_ALIGN = -3,  /* stack pointer not a multiple of 8 */
    NUB_WIRE_E_EMPTY = -4,     /* pop or peek on an empty stack */
    NUB_WIRE_E_BACKPTR = -5,   /* back-pointer misaligned, below 8, or not below the stack pointer */
    NUB_WIRE_E_TRUNCATED = -6, /* frame too short to hold a message header */
    NUB_WIRE_E_MAGIC = -7,     /* header magic is not NUB_MSG_MAGIC */
    NUB_WIRE_E_KIND = -8,      /* unknown message kind, or reserved field not zero */
    NUB_WIRE_E_LENGTH = -9,    /* payload/error lengths overflow or disagree with the frame size */
    NUB_WIRE_E_NOSPACE = -10,  /* message longer than the free space in the buffer */
    NUB_WIRE_E_UNEXPECTED = -11, /* message of another kind than the caller required */
};

/* A validated message: views into the buffer, valid until it is modified. */
struct nub_wire_msg {
    uint32_t kind;            /* NUB_MSG_* */
    uint32_t id;              /* fn_id, status or log level */
    const uint8_t *payload;   /* payload_len bytes inside the buffer */
    uint64_t payload_len;
    const uint8_t *error;     /* error_len bytes inside the buffer */
    uint64_t error_len;
    uint64_t frame_off;       /* offset of the frame (the back-pointer's value) */
};

/* Reset `buf` to an empty stack (sp = 8) and zero the rest. Returns 0 or NUB_WIRE_E_BUFFER. */
int nub_wire_init(uint8_t *buf, uint64_t size);

/* Read and validate the stack pointer into *sp. Returns 0 or a negative error. */
int nub_wire_sp(const uint8_t *buf, uint64_t size, uint64_t *sp);

/* Bytes a frame with these lengths occupies (header, data, padding and
 * back-pointer) into *frame_len. Returns 0, or NUB_WIRE_E_LENGTH on overflow. */
int nub_wire_frame_len(uint64_t payload_len, uint64_t error_len, uint64_t *frame_len);

/* Largest payload (with no error bytes) that fits in an empty buffer of
 * `size`; 0 when `size` is not a valid buffer size (see NUB_WIRE_E_BUFFER). */
uint64_t nub_wire_max_payload(uint64_t size);

/*
 * Reserve a frame for a message of these lengths on top of the stack and
 * return in *payload a pointer where the caller writes payload_len bytes
 * followed by error_len bytes. Nothing is visible until
 * nub_wire_push_commit() with the same lengths. Returns 0,
 * NUB_WIRE_E_NOSPACE when the frame does not fit, or a stack error.
 */
int nub_wire_push_reserve(uint8_t *buf, uint64_t size, uint64_t payload_len,
                          uint64_t error_len, uint8_t **payload);

/* Write the header, padding and back-pointer of a reserved frame and move
 * the stack pointer past it. Same return values as nub_wire_push_reserve(). */
int nub_wire_push_commit(uint8_t *buf, uint64_t size, uint32_t kind, uint32_t id,
                         uint64_t payload_len, uint64_t error_len);

/* Push a whole message (copying payload and error bytes; either may be NULL
 * when its length is 0). Returns 0 or a negative error; on error the
 * buffer is unchanged. */
int nub_wire_push(uint8_t *buf, uint64_t size, uint32_t kind, uint32_t id,
                  const void *payload, uint64_t payload_len,
                  const void *error, uint64_t error_len);

/* Validate the top message and describe it in *msg without changing the
 * buffer. Returns 0 or a negative error. */
int nub_wire_peek(const uint8_t *buf, uint64_t size, struct nub_wire_msg *msg);

/* Like nub_wire_peek() but also requires kind == `kind`
 * (NUB_WIRE_E_UNEXPECTED otherwise). */
int nub_wire_peek_kind(const uint8_t *buf, uint64_t size, uint32_t kind,
                       struct nub_wire_msg *msg);

/* Validate the top message (as nub_wire_peek() does) and store only its
 * frame offset in *frame_off. Returns 0 or a negative error. */
int nub_wire_top(const uint8_t *buf, uint64_t size, uint64_t *frame_off);

/* Remove the top message: validate it, zero its frame and rewind the stack
 * pointer. Views from an earlier peek become invalid. Returns 0 or a
 * negative error (the buffer is unchanged on error). */
int nub_wire_drop(uint8_t *buf, uint64_t size);

/*
 * Remove the top message like nub_wire_drop(), but leave its bytes in place
 * above the stack pointer: only the stack pointer changes. For a reader
 * popping a message whose writer already knows its contents, where nothing
 * reads above the stack pointer (the guest popping what the host pushed onto
 * its input buffer: see "Zeroing on pop" in docs/abi.md). Returns 0 or a
 * negative error (the buffer is unchanged on error).
 */
int nub_wire_discard(uint8_t *buf, uint64_t size);

/* Static, human-readable name of a wire error code. */
const char *nub_wire_strerror(int err);

NUB_API_END

#ifdef __cplusplus
}
#endif

#endif /* NUB_WIRE_H */
