/* Freestanding BLAKE2b (RFC 7693) and BLAKE3 hashing, shared by host and guest. */
#ifndef NUB_HASH_H
#define NUB_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "nub/api.h"

#ifdef __cplusplus
extern "C" {
#endif

NUB_API_BEGIN

/*
 * Everything here is usable on both sides: no allocation, no libc, no
 * global mutable state. States are plain structs owned by the caller; they
 * may be copied (a copy forks the hash) and need no cleanup. Inputs may be
 * unaligned. Passing NULL with a zero length is allowed wherever a buffer
 * and a length are taken.
 */

/* ------------------------------------------------------------------ */
/* BLAKE2b (RFC 7693)                                                  */
/* ------------------------------------------------------------------ */

#define NUB_BLAKE2B_BLOCKBYTES 128u /* compression block size */
#define NUB_BLAKE2B_OUTBYTES 64u    /* largest digest */
#define NUB_BLAKE2B_KEYBYTES 64u    /* largest key */
#define NUB_BLAKE2B_256_BYTES 32u   /* digest size of nub_blake2b_256 */

/* Incremental BLAKE2b state. Fields are private. */
typedef struct nub_blake2b_state {
    uint64_t h[8];                        /* chaining value */
    uint64_t t[2];                        /* 128-bit byte counter */
    uint8_t buf[NUB_BLAKE2B_BLOCKBYTES];  /* pending input (last block kept back) */
    size_t buflen;                        /* bytes in buf, 0..128 */
    size_t outlen;                        /* digest length, 1..64 */
} nub_blake2b_state;

/*
 * Start an unkeyed BLAKE2b hash with a digest of outlen bytes.
 * outlen is written into the parameter block (so a 32-byte digest is not a
 * prefix of the 64-byte one).
 * s: state to initialise. outlen: 1..NUB_BLAKE2B_OUTBYTES.
 * Returns 0, or -1 (state untouched) if s is NULL or outlen is out of range.
 */
int nub_blake2b_init(nub_blake2b_state *s, size_t outlen);

/*
 * Start a keyed BLAKE2b hash (MAC) with a digest of outlen bytes.
 * s: state. outlen: 1..64. key: keylen bytes (may be NULL when keylen is 0).
 * keylen: 0..NUB_BLAKE2B_KEYBYTES; 0 is the same as nub_blake2b_init.
 * Returns 0, or -1 (state untouched) on a NULL state, a bad outlen or
 * keylen, or a NULL key with keylen > 0.
 */
int nub_blake2b_init_key(nub_blake2b_state *s, size_t outlen, const void *key, size_t keylen);

/*
 * Absorb len bytes of input. May be called any number of times; the
 * result depends only on the concatenation of all inputs.
 * s: initialised state. in: len bytes (NULL allowed when len is 0).
 */
void nub_blake2b_update(nub_blake2b_state *s, const void *in, size_t len);

/*
 * Finish the hash and write s->outlen digest bytes (the outlen given to
 * init) to out. The state is left finalised; re-initialise before reuse.
 * s: state. out: buffer of at least the init outlen bytes.
 */
void nub_blake2b_final(nub_blake2b_state *s, void *out);

/*
 * One-shot BLAKE2b: hash inlen bytes at in, with an optional key, into an
 * outlen-byte digest at out. Same result as init_key + update + final.
 * Returns 0, or -1 (out untouched) on a bad outlen/keylen or NULL pointer.
 */
int nub_blake2b(void *out, size_t outlen, const void *in, size_t inlen,
                const void *key, size_t keylen);

/*
 * Unkeyed BLAKE2b with a 32-byte digest (digest-length parameter 32).
 * out: 32 bytes. in: len bytes.
 */
void nub_blake2b_256(uint8_t out[NUB_BLAKE2B_256_BYTES], const void *in, size_t len);

/* ------------------------------------------------------------------ */
/* BLAKE3                                                              */
/* ------------------------------------------------------------------ */

#define NUB_BLAKE3_OUT_LEN 32u     /* default digest size */
#define NUB_BLAKE3_KEY_LEN 32u     /* key size for keyed mode */
#define NUB_BLAKE3_BLOCK_LEN 64u   /* compression block size */
#define NUB_BLAKE3_CHUNK_LEN 1024u /* leaf chunk size */
#define NUB_BLAKE3_MAX_DEPTH 54u   /* tree height limit for 2^64 bytes */

/* Incremental BLAKE3 state (~1.9 KiB). Fields are private. */
typedef struct nub_blake3_state {
    uint32_t key[8];                    /* IV or key words */
    uint32_t chunk_cv[8];               /* chaining value of the current chunk */
    uint64_t chunk_counter;             /* index of the current chunk */
    uint8_t buf[NUB_BLAKE3_BLOCK_LEN];  /* pending block of the current chunk */
    uint8_t buf_len;                    /* bytes in buf, 0..64 */
    uint8_t blocks_compressed;          /* full blocks of the chunk done, 0..15 */
    uint8_t flags;                      /* mode flags (0 or KEYED_HASH) */
    uint8_t cv_stack_len;               /* entries in cv_stack */
    uint8_t max_lanes;                  /* SIMD width cap (nub_blake3_limit_simd) */
    uint8_t cv_stack[(NUB_BLAKE3_MAX_DEPTH + 1) * NUB_BLAKE3_OUT_LEN]; /* subtree CVs */
} nub_blake3_state;

/*
 * Start a BLAKE3 hash (default hash mode).
 * s: state to initialise (not NULL).
 */
void nub_blake3_init(nub_blake3_state *s);

/*
 * Start a BLAKE3 keyed hash (MAC mode, the spec's keyed_hash).
 * s: state (not NULL). key: NUB_BLAKE3_KEY_LEN bytes.
 */
void nub_blake3_init_keyed(nub_blake3_state *s, const uint8_t key[NUB_BLAKE3_KEY_LEN]);

/*
 * Absorb len bytes of input. May be called any number of times with any
 * split; the result depends only on the concatenation of all inputs.
 * s: initialised state. in: len bytes (NULL allowed when len is 0).
 */
void nub_blake3_update(nub_blake3_state *s, const void *in, size_t len);

/*
 * Write the first outlen bytes of the BLAKE3 output stream (XOF) to out.
 * outlen 32 gives the standard digest; any length works, and a shorter
 * output is a prefix of a longer one. Does not modify the state, so more
 * input may be added and final called again.
 * s: state. out: outlen bytes. outlen: any, including 0.
 */
void nub_blake3_final_len(const nub_blake3_state *s, uint8_t *out, size_t outlen);

/*
 * Write the standard 32-byte digest; same as final_len(s, out, 32).
 * s: state. out: NUB_BLAKE3_OUT_LEN bytes.
 */
void nub_blake3_final(const nub_blake3_state *s, uint8_t out[NUB_BLAKE3_OUT_LEN]);

/*
 * One-shot BLAKE3 hash of len bytes into a 32-byte digest.
 * out: NUB_BLAKE3_OUT_LEN bytes. in: len bytes.
 */
void nub_blake3(uint8_t out[NUB_BLAKE3_OUT_LEN], const void *in, size_t len);

/*
 * Cap the SIMD width this state may use for large inputs: 1 (portable
 * scalar only), 4, 8 or 16 lanes; other values round down to one of these
 * (0 counts as 1).
 * The digest never depends on it; it exists so tests and benchmarks can
 * exercise every path. Call after init; init resets it to 16 (no cap).
 * s: initialised state. max_lanes: the cap.
 */
void nub_blake3_limit_simd(nub_blake3_state *s, unsigned max_lanes);

/*
 * Name of the BLAKE3 many-chunk SIMD path this process uses for large
 * inputs: "avx512" (16 chunks at a time), "avx2" (8), "sse2" (4) or
 * "portable". Host builds choose at run time from the CPU; guest builds
 * always use the x86-64 baseline ("sse2") or "portable" off x86-64.
 * Returns a static string.
 */
const char *nub_blake3_simd_path(void);

NUB_API_END

#ifdef __cplusplus
}
#endif

#endif /* NUB_HASH_H */
