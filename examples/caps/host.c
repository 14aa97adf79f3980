/* Example host for examples/caps: publish caps into the nubk guest kernel and look them up in its directory without entering the guest. */
#include <nub/cap.h>
#include <nub/nub.h>
#include <nub/nubk.h>
#include <stdio.h>
#include <string.h>

static void print_hash(const char *what, const uint8_t h[NUB_CAP_HASH_LEN])
{
    printf("%s ", what);
    for (int i = 0; i < NUB_CAP_HASH_LEN; i++)
        printf("%02x", h[i]);
    printf("\n");
}

/* Encode a cap into buf (canonical bytes); 0 on success. */
static int encode(const struct nub_cap *c, uint8_t *buf, size_t cap, size_t *len)
{
    int e = nub_cap_encode(c, buf, cap, len);
    if (e != NUB_CAP_OK)
        fprintf(stderr, "caps: encode: %s\n", nub_cap_strerror(e));
    return e;
}

static int run(nub_sandbox *sb)
{
    /* A DATA cap, encoded canonically and hashed on the host. */
    static const char text[] = "hello, caps";
    struct nub_cap data;
    uint8_t enc[256], hash[NUB_CAP_HASH_LEN], guest_hash[NUB_CAP_HASH_LEN];
    size_t len;
    nub_cap_data(&data, text, sizeof text - 1);
    if (encode(&data, enc, sizeof enc, &len) != 0 || nub_cap_hash_bytes(enc, len, hash) != NUB_OK)
        return 1;
    print_hash("data hash (host):  ", hash);

    /* Reads of the guest's directory do not enter the guest: the call count stays. */
    printf("present before put: %d (guest calls so far: %llu)\n", nub_cache_contains(sb, hash),
           (unsigned long long)nub_sandbox_call_count(sb));

    /* nub_put_cap enters the guest, which decodes, hashes and stores the cap. */
    if (nub_put_cap(sb, enc, len, guest_hash) != NUB_OK) {
        fprintf(stderr, "caps: put: %s\n", nub_sandbox_last_error(sb)->message);
        return 1;
    }
    print_hash("data hash (guest): ", guest_hash);
    printf("present after put:  %d (guest calls so far: %llu)\n", nub_cache_contains(sb, hash),
           (unsigned long long)nub_sandbox_call_count(sb));

    /* A zero-copy view of the stored bytes in guest memory. The guest wrote
     * them: decode before trusting them. */
    const uint8_t *stored;
    size_t stored_len;
    struct nub_cap back;
    if (nub_cache_get(sb, hash, &stored, &stored_len) != NUB_OK ||
        nub_cap_decode(stored, stored_len, &back) != NUB_CAP_OK || back.kind != NUB_CAP_DATA) {
        fprintf(stderr, "caps: the stored cap does not read back\n");
        return 1;
    }
    printf("stored: %zu bytes, DATA of %llu bytes: %.*s\n", stored_len,
           (unsigned long long)back.data.bytes.len, (int)back.data.bytes.len, (const char *)back.data.bytes.ptr);

    /* Publishing a cap the guest already holds: answered from the directory. */
    nub_status rc = nub_put_cap_with_hash(sb, hash, enc, len);
    printf("put again with hash: %s (guest calls so far: %llu)\n", nub_strerror(rc),
           (unsigned long long)nub_sandbox_call_count(sb));

    /* A CNODE whose slot 3 refers to the DATA cap by hash: not present yet,
     * so this one enters the guest. */
    struct nub_cap_slot slot = {.index = 3};
    memcpy(slot.hash, hash, sizeof slot.hash);
    struct nub_cap cnode;
    uint8_t chash[NUB_CAP_HASH_LEN];
    nub_cap_cnode(&cnode, 4, &slot, 1);
    if (encode(&cnode, enc, sizeof enc, &len) != 0 || nub_cap_hash_bytes(enc, len, chash) != NUB_OK)
        return 1;
    rc = nub_put_cap_with_hash(sb, chash, enc, len);
    uint64_t count = 0;
    nub_cache_count(sb, &count);
    printf("put cnode with hash: %s (guest calls so far: %llu, caps held: %llu)\n", nub_strerror(rc),
           (unsigned long long)nub_sandbox_call_count(sb), (unsigned long long)count);
    return rc == NUB_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *nubk = argc > 1 ? argv[1] : "nubk.elf"; /* installed in PREFIX/share/nub/ */

    /* nubk takes its directory size as init data: 64 slots, 64 KiB arena,
     * caps up to 4 KiB. kcfg and init must outlive the creation call. */
    struct nub_config cfg;
    struct nub_nubk_config kcfg;
    struct nub_init_data init;
    nub_config_default(&cfg);
    if (nub_nubk_setup(&cfg, &init, &kcfg, 64, 64 << 10, 4096) != NUB_OK)
        return 1;
    nub_sandbox *sb;
    struct nub_error err;
    if (nub_sandbox_new_from_file(nubk, &init, &cfg, &sb, &err) != NUB_OK) {
        fprintf(stderr, "caps: %s: %s\n", nubk, err.message);
        return 1;
    }
    int rc = 1;
    if (nub_sandbox_evolve(sb) == NUB_OK)
        rc = run(sb);
    else
        fprintf(stderr, "caps: evolve: %s\n", nub_sandbox_last_error(sb)->message);
    nub_sandbox_destroy(sb);
    return rc;
}
