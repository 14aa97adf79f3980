/* Integration tests of snapshot files: round trip on every backend, mapping without copy, b3sum recomputation, every corruption rejected. */
#include <cpuid.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "nub/abi.h"
#include "nub/hash.h"
#include "nub/snapfile.h"
#include "../../guests/testguest/testguest.h"

/* kvm when it is requested and usable, else emu (for the tests that are not per backend). */
static enum nub_backend any_backend(void)
{
    if (backend_requested(NUB_BACKEND_KVM) && nub_backend_available(NUB_BACKEND_KVM, NULL, 0) == NUB_OK)
        return NUB_BACKEND_KVM;
    return NUB_BACKEND_EMU;
}

static nub_snapshot *evolved(enum nub_backend backend)
{
    struct nub_config cfg = test_config(backend);
    struct nub_error err;
    nub_snapshot *pre = NULL, *evo = NULL;
    nub_sandbox *sb = NULL;
    cr_assert_eq(nub_snapshot_from_file(guest_path("testguest"), NULL, &cfg, &pre, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(nub_sandbox_new_from_snapshot(pre, NULL, &sb, &err), NUB_OK, "%s", err.message);
    nub_snapshot_release(pre);
    nub_guest_counter *c = NULL;
    cr_assert_eq(nub_sandbox_guest_counter(sb, &c), NUB_OK);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(nub_guest_counter_increment(c), NUB_OK);
    cr_assert_eq(nub_sandbox_snapshot(sb, &evo), NUB_OK);
    nub_sandbox_destroy(sb);
    return evo;
}

static void temp_path(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "/tmp/nub-snapfile-%s-%d.snap", tag, (int)getpid());
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(*len);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static void write_all(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

/* Mappings of `path` in this process. */
static int maps_of(const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    int n = 0;
    while (f != NULL && fgets(line, sizeof line, f))
        n += strstr(line, path) != NULL;
    if (f)
        fclose(f);
    return n;
}

BACKEND_TEST(snapfile, round_trip_keeps_hash_state_and_maps_the_file)
{
    char path[128];
    struct nub_error err;
    temp_path(path, sizeof path, "rt");
    nub_snapshot *evo = evolved(backend), *back = NULL;
    cr_assert_eq(nub_snapshot_save(evo, path, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(nub_snapshot_load(path, &back, &err), NUB_OK, "%s", err.message);
    cr_assert_geq(maps_of(path), 1, "the image is mapped from the file, not copied");
    cr_assert_eq(nub_snapshot_equal(evo, back), 1);
    cr_assert_eq(nub_snapshot_is_evolved(back), 1);
    cr_assert_eq(nub_snapshot_memory_size(back), nub_snapshot_memory_size(evo));
    nub_snapshot_release(evo);
    nub_sandbox *sb = NULL;
    struct nub_config ov = test_config(backend);
    cr_assert_eq(nub_sandbox_new_from_snapshot(back, &ov, &sb, &err), NUB_OK, "%s", err.message);
    uint64_t ab[2] = {40, 2}, sum = 0, counter = 0;
    size_t len = 0;
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ADD, ab, sizeof ab, &sum, sizeof sum, &len), NUB_OK,
                 "%s", nub_sandbox_last_error(sb)->message);
    cr_assert_eq(sum, 42);
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_GUEST_COUNTER, NULL, 0, &counter, sizeof counter, &len), NUB_OK);
    cr_assert_eq(counter, 1, "the guest counter travelled through the file");
    cr_assert_eq(nub_sandbox_restore(sb, back), NUB_OK);
    nub_snapshot_release(back);
    unlink(path); /* the sandbox's mapping keeps the image */
    cr_assert_eq(nub_call_into(sb, NUB_TG_FN_ADD, ab, sizeof ab, &sum, sizeof sum, &len), NUB_OK);
    nub_sandbox_destroy(sb);
}

BACKEND_TEST(snapfile, pre_init_snapshot_round_trips)
{
    char path[128];
    struct nub_config cfg = test_config(backend);
    struct nub_error err;
    temp_path(path, sizeof path, "pre");
    nub_snapshot *pre = NULL, *back = NULL;
    cr_assert_eq(nub_snapshot_from_file(guest_path("testguest"), NULL, &cfg, &pre, &err), NUB_OK);
    cr_assert_eq(nub_snapshot_save(pre, path, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(nub_snapshot_load(path, &back, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(nub_snapshot_equal(pre, back), 1);
    cr_assert_eq(nub_snapshot_is_evolved(back), 0);
    nub_sandbox *sb = NULL;
    cr_assert_eq(nub_sandbox_new_from_snapshot(back, NULL, &sb, &err), NUB_OK, "%s", err.message);
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    uint8_t *out = NULL;
    cr_assert_eq(nub_call(sb, NUB_TG_FN_ECHO, "x", 1, &out, (size_t[]){0}), NUB_OK);
    nub_buffer_free(out);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(pre);
    nub_snapshot_release(back);
    unlink(path);
}

#define B3SUM "/usr/bin/b3sum"

/* docs/snapshots.md: the hash is BLAKE3 (b3sum) over the memory image followed by the two region records. */
Test(snapfile, hash_recomputes_from_the_file)
{
    char path[128], cmd[512], line[256];
    struct nub_error err;
    temp_path(path, sizeof path, "b3");
    nub_snapshot *snap = evolved(any_backend());
    cr_assert_eq(nub_snapshot_save(snap, path, &err), NUB_OK, "%s", err.message);
    size_t len = 0;
    uint8_t *buf = read_all(path, &len);
    struct nub_snapfile_header h;
    memcpy(&h, buf, sizeof h);
    uint8_t *msg = malloc(h.mem_size + 40);
    memcpy(msg, buf + h.mem_offset, h.mem_size);
    for (int r = 0; r < 2; r++)
        memcpy(msg + h.mem_size + 20 * r, &h.regions[r], 20); /* gpa, len, flags: LE on x86-64 */
    uint8_t want[32], mine[32];
    cr_assert_eq(nub_snapshot_hash(snap, want), NUB_OK);
    nub_blake3(mine, msg, h.mem_size + 40); /* the documented formula, with the library's BLAKE3 */
    cr_assert_eq(memcmp(mine, want, 32), 0, "BLAKE3(memory || region records) is the content hash");
    if (access(B3SUM, X_OK) == 0) { /* and with b3sum where it is installed (not inside the kvm VM) */
        char raw[160], hex[65];
        snprintf(raw, sizeof raw, "%s.raw", path);
        write_all(raw, msg, h.mem_size + 40);
        snprintf(cmd, sizeof cmd, "%s --no-names %s", B3SUM, raw);
        FILE *p = popen(cmd, "r");
        cr_assert_not_null(p);
        cr_assert_not_null(fgets(line, sizeof line, p));
        cr_assert_eq(pclose(p), 0);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", want[i]);
        cr_assert_eq(strncmp(line, hex, 64), 0, "b3sum %.64s, nub %s", line, hex);
        unlink(raw);
    }
    cr_assert_eq(memcmp(h.content_hash, want, 32), 0);
    unlink(path);
    free(msg);
    free(buf);
    nub_snapshot_release(snap);
}

struct corpus {
    char path[128], bad[140];
    uint8_t *buf;
    size_t len;
};

static void corpus_open(struct corpus *c)
{
    struct nub_error err;
    temp_path(c->path, sizeof c->path, "bad");
    snprintf(c->bad, sizeof c->bad, "%s.bad", c->path);
    nub_snapshot *snap = evolved(any_backend());
    cr_assert_eq(nub_snapshot_save(snap, c->path, &err), NUB_OK, "%s", err.message);
    nub_snapshot_release(snap);
    c->buf = read_all(c->path, &c->len);
}

static void corpus_close(struct corpus *c)
{
    unlink(c->path);
    unlink(c->bad);
    free(c->buf);
}

/* Load `len` bytes of `img` from a file; expect `code` and a message starting with `check`. */
static void expect_reject(struct corpus *c, const uint8_t *img, size_t len, nub_status code, const char *check,
                          const char *what)
{
    struct nub_error err;
    nub_snapshot *s = NULL;
    write_all(c->bad, img, len);
    int fds = count_fds();
    nub_status rc = nub_snapshot_load(c->bad, &s, &err);
    cr_assert_eq(rc, code, "%s: got %s (%s)", what, nub_strerror(rc), err.message);
    cr_assert_null(s);
    size_t n = strlen(check);
    cr_assert(strncmp(err.message, check, n) == 0 && strncmp(err.message + n, ": ", 2) == 0 &&
                  err.message[n + 2] != '\0',
              "%s: message \"%s\" is \"%s: \" and what failed", what, err.message, check);
    cr_assert_eq(count_fds(), fds, "%s: no fd left open", what);
}

/* A copy of the file with a header edit, the header check recomputed so a later check is reached. */
static uint8_t *edited(struct corpus *c, void (*edit)(struct nub_snapfile_header *h))
{
    uint8_t *img = malloc(c->len);
    memcpy(img, c->buf, c->len);
    struct nub_snapfile_header h;
    memcpy(&h, img, sizeof h);
    edit(&h);
    nub_blake3(h.header_check, &h, offsetof(struct nub_snapfile_header, header_check));
    memcpy(img, &h, sizeof h);
    return img;
}

static void ed_format(struct nub_snapfile_header *h) { h->format_version = 2; }
static void ed_abi(struct nub_snapfile_header *h) { h->abi_version += 1; }
static void ed_vendor(struct nub_snapfile_header *h) { memcpy(h->cpu_vendor, "ForeignCPUxx", 12); }
static void ed_regions(struct nub_snapfile_header *h) { h->regions[1].gpa -= NUB_PAGE_SIZE; }
static void ed_nregions(struct nub_snapfile_header *h) { h->nregions = 3; }
static void ed_heap(struct nub_snapfile_header *h) { h->heap_size += NUB_PAGE_SIZE; }
static void ed_unaligned(struct nub_snapfile_header *h) { h->stack_size += 1; }
static void ed_entry(struct nub_snapfile_header *h) { h->entry_gva = NUB_KERNEL_BASE - 16; }
static void ed_dispatch(struct nub_snapfile_header *h) { h->dispatch_gva = 0; }
static void ed_cr3(struct nub_snapfile_header *h) { h->cr3 += 8; }
static void ed_flags(struct nub_snapfile_header *h) { h->flags |= 0x80; }
static void ed_segs(struct nub_snapfile_header *h) { h->segs[0].memsz = UINT64_MAX - 4095; }
static void ed_nsegs(struct nub_snapfile_header *h) { h->nsegs = 99; }
static void ed_memoff(struct nub_snapfile_header *h) { h->mem_offset = 8192; }
static void ed_loglevel(struct nub_snapfile_header *h) { h->max_log_level = 77; }
static void ed_hash(struct nub_snapfile_header *h) { h->content_hash[5] ^= 0x40; }

/* The first CPUID.1:ECX feature bit this CPU lacks, required by the file. */
static void ed_feature(struct nub_snapfile_header *h)
{
    unsigned a, b, cx = 0, d;
    __get_cpuid(1, &a, &b, &cx, &d);
    for (int i = 0; i < 32; i++)
        if (!(cx & (1u << i))) {
            h->cpuid_1_ecx |= 1u << i;
            return;
        }
    h->cpuid_7_ebx = ~0u;
}

Test(snapfile, every_corruption_is_rejected_with_the_failed_check)
{
    struct corpus c;
    corpus_open(&c);
    static const struct {
        void (*edit)(struct nub_snapfile_header *);
        nub_status code;
        const char *check;
    } edits[] = {
        {ed_format, NUB_E_SNAPSHOT_FOREIGN, "format version"},
        {ed_abi, NUB_E_SNAPSHOT_FOREIGN, "ABI version"},
        {ed_vendor, NUB_E_SNAPSHOT_FOREIGN, "CPU vendor"},
        {ed_feature, NUB_E_SNAPSHOT_FOREIGN, "CPU features"},
        {ed_regions, NUB_E_SNAPSHOT_CORRUPT, "region table"},
        {ed_nregions, NUB_E_SNAPSHOT_CORRUPT, "region table"},
        {ed_heap, NUB_E_SNAPSHOT_CORRUPT, "region table"},
        {ed_unaligned, NUB_E_SNAPSHOT_CORRUPT, "configuration"},
        {ed_loglevel, NUB_E_SNAPSHOT_CORRUPT, "configuration"},
        {ed_entry, NUB_E_SNAPSHOT_CORRUPT, "entry point"},
        {ed_dispatch, NUB_E_SNAPSHOT_CORRUPT, "dispatch entry"},
        {ed_cr3, NUB_E_SNAPSHOT_CORRUPT, "page-table root"},
        {ed_flags, NUB_E_SNAPSHOT_CORRUPT, "flags"},
        {ed_segs, NUB_E_SNAPSHOT_CORRUPT, "segments"},
        {ed_nsegs, NUB_E_SNAPSHOT_CORRUPT, "segments"},
        {ed_memoff, NUB_E_SNAPSHOT_CORRUPT, "memory offset"},
        {ed_hash, NUB_E_SNAPSHOT_CORRUPT, "content hash"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        uint8_t *img = edited(&c, edits[i].edit);
        expect_reject(&c, img, c.len, edits[i].code, edits[i].check, edits[i].check);
        free(img);
    }
    uint8_t *img = malloc(c.len + 1);
    memcpy(img, c.buf, c.len);
    img[0] ^= 1;
    expect_reject(&c, img, c.len, NUB_E_SNAPSHOT_CORRUPT, "magic", "magic");
    img[0] ^= 1;
    img[offsetof(struct nub_snapfile_header, header_size)] ^= 1;
    expect_reject(&c, img, c.len, NUB_E_SNAPSHOT_CORRUPT, "header size", "header size");
    img[offsetof(struct nub_snapfile_header, header_size)] ^= 1;
    img[NUB_SNAPFILE_HEADER_SIZE + 100] = 1;
    expect_reject(&c, img, c.len, NUB_E_SNAPSHOT_CORRUPT, "header padding", "padding");
    img[NUB_SNAPFILE_HEADER_SIZE + 100] = 0;
    img[c.len] = 0;
    expect_reject(&c, img, c.len + 1, NUB_E_SNAPSHOT_CORRUPT, "trailing bytes", "one byte appended");
    const size_t mem_flips[] = {NUB_SNAPFILE_MEM_OFFSET, NUB_SNAPFILE_MEM_OFFSET + 12345, c.len / 2, c.len - 1};
    for (size_t i = 0; i < sizeof mem_flips / sizeof mem_flips[0]; i++) {
        img[mem_flips[i]] ^= 0x10;
        expect_reject(&c, img, c.len, NUB_E_SNAPSHOT_CORRUPT, "content hash", "memory byte flipped");
        img[mem_flips[i]] ^= 0x10;
    }
    /* Every header byte flipped on its own: caught (by the header check or an earlier field check). */
    write_all(c.bad, img, c.len);
    FILE *f = fopen(c.bad, "r+b");
    cr_assert_not_null(f);
    for (size_t off = 0; off < NUB_SNAPFILE_HEADER_SIZE; off++) {
        uint8_t flipped = img[off] ^ 0x04;
        struct nub_error err;
        nub_snapshot *s = NULL;
        cr_assert_eq(pwrite(fileno(f), &flipped, 1, (off_t)off), 1);
        nub_status rc = nub_snapshot_load(c.bad, &s, &err);
        cr_assert(rc == NUB_E_SNAPSHOT_CORRUPT || rc == NUB_E_SNAPSHOT_FOREIGN, "byte %zu: %s", off, nub_strerror(rc));
        cr_assert_eq(pwrite(fileno(f), &img[off], 1, (off_t)off), 1);
    }
    fclose(f);
    free(img);
    corpus_close(&c);
}

Test(snapfile, truncation_at_every_header_field_is_rejected)
{
    struct corpus c;
    corpus_open(&c);
    const size_t cuts[] = {
        0, 4, offsetof(struct nub_snapfile_header, format_version),
        offsetof(struct nub_snapfile_header, format_version) + 2,
        offsetof(struct nub_snapfile_header, header_size), offsetof(struct nub_snapfile_header, abi_version),
        offsetof(struct nub_snapfile_header, flags), offsetof(struct nub_snapfile_header, cpu_vendor),
        offsetof(struct nub_snapfile_header, cpuid_1_ecx), offsetof(struct nub_snapfile_header, nregions),
        offsetof(struct nub_snapfile_header, mem_offset), offsetof(struct nub_snapfile_header, mem_size),
        offsetof(struct nub_snapfile_header, regions), offsetof(struct nub_snapfile_header, heap_size),
        offsetof(struct nub_snapfile_header, backend), offsetof(struct nub_snapfile_header, image_size),
        offsetof(struct nub_snapfile_header, cr3), offsetof(struct nub_snapfile_header, nsegs),
        offsetof(struct nub_snapfile_header, segs), offsetof(struct nub_snapfile_header, cpu),
        offsetof(struct nub_snapfile_header, content_hash), offsetof(struct nub_snapfile_header, header_check),
        NUB_SNAPFILE_HEADER_SIZE - 1, NUB_SNAPFILE_HEADER_SIZE, NUB_SNAPFILE_MEM_OFFSET,
        NUB_SNAPFILE_MEM_OFFSET + 1, c.len / 2, c.len - NUB_PAGE_SIZE, c.len - 1,
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "cut at %zu", cuts[i]);
        expect_reject(&c, c.buf, cuts[i], NUB_E_SNAPSHOT_CORRUPT, "truncated", what);
    }
    corpus_close(&c);
}

Test(snapfile, io_errors_and_bad_arguments)
{
    struct nub_error err;
    nub_snapshot *s = NULL;
    cr_assert_eq(nub_snapshot_load("/nonexistent/nub.snap", &s, &err), NUB_E_IO);
    cr_assert_eq(nub_snapshot_load("/tmp", &s, &err), NUB_E_IO);
    cr_assert_eq(nub_snapshot_load(NULL, &s, &err), NUB_E_INVALID);
    cr_assert_eq(nub_snapshot_save(NULL, "/tmp/x", &err), NUB_E_INVALID);
    nub_snapshot *snap = evolved(any_backend());
    cr_assert_eq(nub_snapshot_save(snap, "/nonexistent/dir/nub.snap", &err), NUB_E_IO);
    cr_assert(strstr(err.message, "/nonexistent/dir") != NULL);
    nub_snapshot_release(snap);
}

/* Output of a shell command (at most cap-1 bytes) and its exit status. */
static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    return pclose(p);
}

BACKEND_TEST(snapfile, cli_snapshot_info_and_run)
{
    char path[128], cmd[2048], out[4096];
    const char *nub = nub_cli_path();
    if (access(nub, X_OK) != 0)
        cr_assert_fail("no CLI at %s: build it with `make all` or set NUB_CLI", nub);
    const char *b = nub_backend_name(backend);
    temp_path(path, sizeof path, "cli");
    /* ADD 40 + 2 as a set-up call, then capture */
    snprintf(cmd, sizeof cmd, "%s snapshot %s -o %s --backend %s --call %u --in 28000000000000000200000000000000 2>&1",
             nub, guest_path("testguest"), path, b, NUB_TG_FN_ADD);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strlen(out) > 66 && out[64] == ' ' && strstr(out, path) != NULL, "prints HASH  FILE: %s", out);
    char hash[65];
    memcpy(hash, out, 64);
    hash[64] = '\0';
    snprintf(cmd, sizeof cmd, "%s info %s 2>&1", nub, path);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, hash) != NULL, "info shows the hash: %s", out);
    cr_assert(strstr(out, "evolved") != NULL && strstr(out, "ABI version 1") != NULL && strstr(out, "region 1") != NULL,
              "%s", out);
    snprintf(cmd, sizeof cmd, "%s run --snapshot %s --backend %s --call %u --in-text from-file 2>&1", nub, path, b,
             NUB_TG_FN_ECHO);
    cr_assert_eq(run_cmd(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "from-file") != NULL, "%s", out);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, NUB_SNAPFILE_MEM_OFFSET + 100, SEEK_SET);
    int byte = fgetc(f);
    fseek(f, NUB_SNAPFILE_MEM_OFFSET + 100, SEEK_SET);
    fputc(byte ^ 0xff, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s info %s 2>&1", nub, path);
    cr_assert_neq(run_cmd(cmd, out, sizeof out), 0, "a corrupt file is refused");
    cr_assert(strstr(out, "content hash") != NULL || strstr(out, "NUB_E_SNAPSHOT") != NULL, "%s", out);
    unlink(path);
}
