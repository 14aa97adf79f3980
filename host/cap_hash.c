/* Host-side cap hashing for the public API (nub_cap_hash_bytes): the common/ cap codec with a nub_status answer. */
#include "internal.h"
#include "nub/cap.h"

nub_status nub_cap_hash_bytes(const void *cap, size_t len, uint8_t out[NUB_CAP_HASH_LEN])
{
    if (out == NULL || (cap == NULL && len != 0))
        return NUB_E_INVALID;
    return nub_cap_hash_encoded(cap, len, out) == NUB_CAP_OK ? NUB_OK : NUB_E_INVALID;
}
