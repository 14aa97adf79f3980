/* Caps: builders, canonical encoding, strict zero-copy decoding and content hashing (docs/caps.md). */
#ifndef NUB_CAP_H
#define NUB_CAP_H

#include <stddef.h>
#include <stdint.h>

#include "nub/abi.h"
#include "nub/api.h"

#ifdef __cplusplus
extern "C" {
#endif

NUB_API_BEGIN

/*
 * A cap is a typed, immutable, content-addressed object named by its
 * 32-byte hash. This header is freestanding and compiled into the host
 * library and the guest: nothing here allocates, and nothing keeps state
 * between calls.
 *
 * struct nub_cap is a tagged union whose variable-length fields are views
 * (pointer + count) that the cap does not own:
 *   - a cap built with the nub_cap_* builders points at the caller's C
 *     arrays (struct nub_cap_slot[], uint32_t[], ...), which must outlive it;
 *   - a cap filled by nub_cap_decode() points into the encoded buffer
 *     (zero-copy), which must outlive it and stay unmodified.
 * Read list entries through the accessors below; they work for both.
 *
 * The canonical encoding is the only encoding: nub_cap_encode() refuses a
 * cap that breaks a rule (unsorted slots, ...) and nub_cap_decode() refuses
 * any input that is not exactly what nub_cap_encode() would produce, each
 * with its own error code. docs/caps.md gives the byte layout, the hashing
 * rules and worked examples.
 */

/* Registers in an IMAGE endpoint and in an INSTANCE. */
#define NUB_CAP_REGS 13u
/* Largest cnode size_log: a cnode has 2^size_log slots. */
#define NUB_CAP_SIZE_LOG_MAX 16u
/* Most slot indices in a mapping's source path. */
#define NUB_CAP_PATH_MAX 8u
/* Longest byte field (DATA bytes, code, bitmask, overlay bytes): the wire length is a u32. */
#define NUB_CAP_BYTES_MAX 0xffffffffull
/* DATA is hashed in pages of this size. */
#define NUB_CAP_PAGE_SIZE 4096u

/* Encoded record sizes of the fixed-size list entries. */
#define NUB_CAP_SLOT_ENC_SIZE 36u      /* u32 index, 32-byte hash */
#define NUB_CAP_ENDPOINT_ENC_SIZE 128u /* u64 pc, u64 stack top, u32 slot, u32 size, 13 x u64 */

/* Error codes (all negative; NUB_CAP_OK is 0). nub_cap_strerror() names them. */
enum nub_cap_err {
    NUB_CAP_OK = 0,
    NUB_CAP_E_ARG = -1,            /* NULL pointer or otherwise unusable argument */
    NUB_CAP_E_TRUNCATED = -2,      /* input ends inside a field, or a length/count runs past the end */
    NUB_CAP_E_TRAILING = -3,       /* bytes left over after a complete cap */
    NUB_CAP_E_KIND = -4,           /* unknown kind byte */
    NUB_CAP_E_SIZE_LOG = -5,       /* cnode size_log above NUB_CAP_SIZE_LOG_MAX */
    NUB_CAP_E_SLOT_RANGE = -6,     /* cnode slot index >= 2^size_log */
    NUB_CAP_E_SLOT_UNSORTED = -7,  /* cnode slots / image initial slots not in ascending order */
    NUB_CAP_E_SLOT_DUP = -8,       /* the same slot index appears twice */
    NUB_CAP_E_PATH_LEN = -9,       /* mapping source path longer than NUB_CAP_PATH_MAX */
    NUB_CAP_E_OVERLAY_EMPTY = -10, /* instance overlay with zero bytes */
    NUB_CAP_E_OVERLAY_RANGE = -11, /* instance overlay start + length past 2^64 */
    NUB_CAP_E_OVERLAY_ORDER = -12, /* instance overlays unsorted or overlapping */
    NUB_CAP_E_TOO_LONG = -13,      /* byte field longer than NUB_CAP_BYTES_MAX, or total size overflows */
    NUB_CAP_E_NOSPACE = -14,       /* encode: output buffer too small */
};

/* A byte string view. */
struct nub_cap_bytes {
    const uint8_t *ptr; /* len bytes (NULL allowed when len is 0) */
    uint64_t len;       /* at most NUB_CAP_BYTES_MAX to be encodable */
};

/*
 * A list view. Exactly one representation is in use:
 *   items != NULL: built; items is an array of `count` C structs of the
 *                  list's entry type (see each field below);
 *   enc != NULL:   decoded; enc is the canonical bytes of the `count`
 *                  records (after their u32 count), enc_len bytes.
 * Both NULL means an empty list (count must then be 0).
 */
struct nub_cap_list {
    const void *items;
    const uint8_t *enc;
    size_t enc_len;
    uint32_t count;
};

/* CNODE slot or IMAGE initial slot entry: slot index -> cap hash. */
struct nub_cap_slot {
    uint32_t index;
    uint8_t hash[NUB_CAP_HASH_LEN];
};

/* IMAGE endpoint. */
struct nub_cap_endpoint {
    uint64_t pc;             /* entry program counter */
    uint64_t stack_top;      /* initial stack top */
    uint32_t arg_slot;       /* argument cnode slot */
    uint32_t arg_size;       /* argument cnode size */
    uint64_t regs[NUB_CAP_REGS]; /* initial registers */
};

/* IMAGE memory mapping: [start, start + size) filled from the cap reached
 * by following `path` (slot indices, outermost first). */
struct nub_cap_mapping {
    uint64_t start;
    uint64_t size;
    uint32_t path_len;                /* 0..NUB_CAP_PATH_MAX */
    uint32_t path[NUB_CAP_PATH_MAX];  /* entries past path_len are ignored */
};

/* INSTANCE read-write overlay: `len` bytes written at `start`. */
struct nub_cap_overlay {
    uint64_t start;
    const uint8_t *bytes; /* decoded: points into the encoding */
    uint64_t len;         /* 1..NUB_CAP_BYTES_MAX */
};

/* Fields of each kind, in canonical encoding order. */
struct nub_cap_data_body {
    struct nub_cap_bytes bytes;
};

struct nub_cap_cnode_body {
    uint8_t size_log;          /* 0..NUB_CAP_SIZE_LOG_MAX */
    struct nub_cap_list slots; /* struct nub_cap_slot, strictly ascending index < 2^size_log */
};

struct nub_cap_image_body {
    struct nub_cap_bytes code;
    struct nub_cap_bytes bitmask;
    struct nub_cap_list jump_table; /* uint32_t */
    struct nub_cap_list endpoints;  /* struct nub_cap_endpoint */
    struct nub_cap_list mappings;   /* struct nub_cap_mapping, in any order */
    struct nub_cap_list init_slots; /* struct nub_cap_slot, strictly ascending index */
};

struct nub_cap_instance_body {
    uint8_t image[NUB_CAP_HASH_LEN]; /* IMAGE cap hash */
    uint8_t root[NUB_CAP_HASH_LEN];  /* root CNODE cap hash */
    struct nub_cap_list overlays;     /* struct nub_cap_overlay, ascending, non-overlapping, non-empty */
    uint64_t mem_size;
    uint64_t regs[NUB_CAP_REGS];
    uint64_t pc;
    uint64_t gas;                     /* gas remaining */
};

/* A cap: `kind` (NUB_CAP_DATA..NUB_CAP_INSTANCE from abi.h) selects the member. */
struct nub_cap {
    uint8_t kind;
    union {
        struct nub_cap_data_body data;
        struct nub_cap_cnode_body cnode;
        struct nub_cap_image_body image;
        struct nub_cap_instance_body instance;
    };
};

/* ---- Builders ------------------------------------------------------------
 * Each initialises *c completely (kind and every field). Arrays and bytes
 * are referenced, not copied. Rules (sorting, ranges) are checked later by
 * nub_cap_validate(), nub_cap_encode() and nub_cap_hash().
 */

/* DATA cap over `len` bytes. */
void nub_cap_data(struct nub_cap *c, const void *bytes, uint64_t len);

/* CNODE cap of 2^size_log slots; `slots` holds `count` filled slots sorted by index. */
void nub_cap_cnode(struct nub_cap *c, uint8_t size_log, const struct nub_cap_slot *slots,
                   uint32_t count);

/* Empty IMAGE cap (every field empty); fill it with the setters below. */
void nub_cap_image(struct nub_cap *c);
void nub_cap_image_code(struct nub_cap *c, const void *code, uint64_t len);
void nub_cap_image_bitmask(struct nub_cap *c, const void *bitmask, uint64_t len);
void nub_cap_image_jump_table(struct nub_cap *c, const uint32_t *targets, uint32_t count);
void nub_cap_image_endpoints(struct nub_cap *c, const struct nub_cap_endpoint *eps, uint32_t count);
void nub_cap_image_mappings(struct nub_cap *c, const struct nub_cap_mapping *maps, uint32_t count);
void nub_cap_image_init_slots(struct nub_cap *c, const struct nub_cap_slot *slots, uint32_t count);

/* INSTANCE cap with zero registers and no overlays; hashes are copied. */
void nub_cap_instance(struct nub_cap *c, const uint8_t image[NUB_CAP_HASH_LEN],
                      const uint8_t root[NUB_CAP_HASH_LEN], uint64_t mem_size, uint64_t pc,
                      uint64_t gas);
/* Copy the 13 registers into the instance. */
void nub_cap_instance_regs(struct nub_cap *c, const uint64_t regs[NUB_CAP_REGS]);
void nub_cap_instance_overlays(struct nub_cap *c, const struct nub_cap_overlay *ovs, uint32_t count);

/* ---- Accessors -----------------------------------------------------------
 * Index-based accessors return NUB_CAP_OK, or NUB_CAP_E_ARG when the cap is
 * of another kind, i >= count, or the cap or a required output pointer is
 * NULL (the hash outputs may be NULL). Fixed-size entries are O(1); mappings and
 * overlays have variable-size encodings, so indexing a decoded list is
 * O(i): walk them with a cursor instead.
 */

/* CNODE slot i: its index and child hash (hash may be NULL). */
int nub_cap_cnode_slot(const struct nub_cap *c, uint32_t i, uint32_t *index,
                       uint8_t hash[NUB_CAP_HASH_LEN]);
/* IMAGE jump table entry i. */
int nub_cap_image_jump(const struct nub_cap *c, uint32_t i, uint32_t *target);
/* IMAGE endpoint i. */
int nub_cap_image_endpoint(const struct nub_cap *c, uint32_t i, struct nub_cap_endpoint *ep);
/* IMAGE initial slot entry i: its slot and cap hash (hash may be NULL). */
int nub_cap_image_init_slot(const struct nub_cap *c, uint32_t i, uint32_t *slot,
                            uint8_t hash[NUB_CAP_HASH_LEN]);
/* IMAGE mapping i (O(i) when decoded). */
int nub_cap_image_mapping(const struct nub_cap *c, uint32_t i, struct nub_cap_mapping *m);
/* INSTANCE overlay i (O(i) when decoded). */
int nub_cap_instance_overlay(const struct nub_cap *c, uint32_t i, struct nub_cap_overlay *o);

/* Sequential reader over a mapping or overlay list, O(1) per entry. */
struct nub_cap_cursor {
    const struct nub_cap_list *list;
    uint32_t next;  /* index of the next entry */
    size_t off;     /* byte offset of the next entry in list->enc */
};

/* Start reading `list` (e.g. &c->image.mappings) from its first entry. */
void nub_cap_cursor_init(struct nub_cap_cursor *cur, const struct nub_cap_list *list);
/* Read the next mapping into *m. Returns 1, or 0 at the end of the list. */
int nub_cap_next_mapping(struct nub_cap_cursor *cur, struct nub_cap_mapping *m);
/* Read the next overlay into *o. Returns 1, or 0 at the end of the list. */
int nub_cap_next_overlay(struct nub_cap_cursor *cur, struct nub_cap_overlay *o);

/* ---- Validation, encoding, decoding -------------------------------------- */

/* Check every rule of the canonical form (kind, ranges, order, lengths).
 * Returns NUB_CAP_OK or the NUB_CAP_E_* code the decoder would give. */
int nub_cap_validate(const struct nub_cap *c);

/* Length of c's canonical encoding into *len. Returns NUB_CAP_OK or an error
 * as nub_cap_encode() with buf == NULL. */
int nub_cap_encoded_len(const struct nub_cap *c, size_t *len);

/*
 * Write c's canonical encoding into buf (cap bytes available) and its
 * length into *len. With buf == NULL only *len is computed. Returns
 * NUB_CAP_OK, a validation error, NUB_CAP_E_ARG (NULL len),
 * NUB_CAP_E_TOO_LONG (the length does not fit a size_t), or
 * NUB_CAP_E_NOSPACE (nothing useful in buf; *len still holds the length
 * needed).
 */
int nub_cap_encode(const struct nub_cap *c, uint8_t *buf, size_t cap, size_t *len);

/*
 * Decode `len` bytes at `enc` strictly into *c. Every non-canonical input is
 * rejected with its own code; on success *c views into enc (zero-copy) and
 * nub_cap_encode(c) reproduces enc byte for byte. *c is unspecified on error.
 */
int nub_cap_decode(const uint8_t *enc, size_t len, struct nub_cap *c);

/* ---- Hashing --------------------------------------------------------------- */

/* Validate c and compute its cap hash into out. Returns NUB_CAP_OK or a
 * validation error (out untouched). */
int nub_cap_hash(const struct nub_cap *c, uint8_t out[NUB_CAP_HASH_LEN]);

/* Decode `enc` strictly (every non-canonical input is a typed error) and
 * compute its cap hash into out. Returns NUB_CAP_OK (0) or a negative
 * NUB_CAP_E_* code (out untouched). */
int nub_cap_hash_encoded(const uint8_t *enc, size_t len, uint8_t out[NUB_CAP_HASH_LEN]);

/* Hash of the DATA cap over `len` bytes (any length; the wire limit does not
 * apply here). Same as building and hashing the DATA cap. */
void nub_cap_data_hash(const void *bytes, uint64_t len, uint8_t out[NUB_CAP_HASH_LEN]);

/* Name of an error code ("NUB_CAP_E_TRUNCATED: ..."); a static string, never NULL. */
const char *nub_cap_strerror(int err);

NUB_API_END

#ifdef __cplusplus
}
#endif

#endif /* NUB_CAP_H */
