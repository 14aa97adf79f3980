/* nubk internals: the kernel's directory state shared by its files (function ids are NUB_FN_* in nub/nubk.h). */
#ifndef NUBK_H
#define NUBK_H

#include <stddef.h>
#include <stdint.h>

#include "nub/guest.h"
#include "nub/nubk.h"

/* The cache directory nubk owns (one heap allocation, never freed). */
struct nubk_dir {
    uint8_t *base;
    uint64_t size;
    uint64_t capacity;
    uint64_t arena_size;
};

extern struct nubk_dir nubk_dir;

/* caps.c: NUB_FN_PUT_CAP and NUB_FN_GET_CAP. */
uint32_t nubk_put_cap(const uint8_t *in, size_t in_len, struct nub_reply *r);
uint32_t nubk_get_cap(const uint8_t *in, size_t in_len, struct nub_reply *r);

#endif /* NUBK_H */
