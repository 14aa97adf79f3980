/* libFuzzer target: the snapshot-file loader (nub_snapshot_load) over a memfd holding the input, optionally with the header's origin, content hash and header check fixed up after mutation. */
#include "fuzz.h"

#include <cpuid.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "nub/hash.h"
#include "nub/snapfile.h"

/*
 * Input: one mode byte, then the snapshot file. Mode bits:
 *   FIXUP   after mutation, set the header's CPU vendor to this CPU's, clear
 *           the feature bits this CPU lacks (so seeds captured elsewhere get
 *           past the origin checks), then recompute content_hash (as
 *           docs/snapshots.md defines it, from the file's own region table)
 *           and header_check, so mutations of the layout, segments and
 *           memory reach the checks behind the two hashes;
 *   SANDBOX with FIXUP, a loaded snapshot also starts an emu sandbox, which
 *           is destroyed at once (the guest does not run).
 */
#define MODE_FIXUP 0x1u
#define MODE_SANDBOX 0x2u

#define HDR_OFF(field) offsetof(struct nub_snapfile_header, field)

/* The memfd the inputs are written to, its /proc path, and the number of runs so far. */
static int memfd = -1;
static char memfd_path[64];
static unsigned long runs;

static void put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof v); /* the format is little-endian, as is the host */
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* CPUID leaf 0 vendor and the four feature words snapfile.c records. */
static void host_origin(char vendor[12], uint32_t feat[4])
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    memset(vendor, 0, 12);
    memset(feat, 0, 4 * sizeof feat[0]);
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &d, 4);
        memcpy(vendor + 8, &c, 4);
    }
    if (__get_cpuid(1, &a, &b, &c, &d))
        feat[0] = c, feat[1] = d;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d))
        feat[2] = b;
    if (__get_cpuid(0x80000001u, &a, &b, &c, &d))
        feat[3] = d;
}

/* The fix-up: origin of this CPU, then content_hash and header_check recomputed. */
static void fix_up(uint8_t *file, size_t len)
{
    if (len < NUB_SNAPFILE_HEADER_SIZE)
        return;
    char vendor[12];
    uint32_t feat[4];
    host_origin(vendor, feat);
    memcpy(file + HDR_OFF(cpu_vendor), vendor, sizeof vendor);
    for (int i = 0; i < 4; i++) {
        uint8_t *p = file + HDR_OFF(cpuid_1_ecx) + 4 * (size_t)i;
        put_u32(p, get_u32(p) & feat[i]);
    }
    /* BLAKE3(memory image || each region record's gpa, len, flags): 20 bytes of each 24-byte entry. */
    nub_blake3_state s;
    nub_blake3_init(&s);
    if (len > NUB_SNAPFILE_MEM_OFFSET)
        nub_blake3_update(&s, file + NUB_SNAPFILE_MEM_OFFSET, len - NUB_SNAPFILE_MEM_OFFSET);
    for (size_t i = 0; i < 2; i++)
        nub_blake3_update(&s, file + HDR_OFF(regions) + i * sizeof(struct nub_snapfile_region), 20);
    nub_blake3_final(&s, file + HDR_OFF(content_hash));
    nub_blake3(file + HDR_OFF(header_check), file, HDR_OFF(header_check));
}

/* The input becomes the whole content of the memfd. */
static void write_file(const uint8_t *data, size_t len)
{
    FUZZ_CHECK(ftruncate(memfd, 0) == 0, "ftruncate");
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(memfd, data + done, len - done, (off_t)done);
        FUZZ_CHECK(n > 0, "pwrite");
        done += (size_t)n;
    }
}

/* Every refusal is typed and its message starts with the name of a check from docs/snapshots.md. */
static void check_refusal(nub_status rc, const struct nub_error *err)
{
    static const char *const checks[] = {
        "truncated",     "magic",          "format version", "header size",    "header check",
        "header padding", "ABI version",   "CPU vendor",     "CPU features",   "configuration",
        "layout",        "region table",   "memory offset",  "trailing bytes", "segments",
        "flags",         "entry point",    "dispatch entry", "page-table root", "content hash",
    };
    FUZZ_CHECK(rc == NUB_E_SNAPSHOT_CORRUPT || rc == NUB_E_SNAPSHOT_FOREIGN, "status %d: %s", rc, err->message);
    FUZZ_CHECK(err->code == rc, "error code %d, status %d", err->code, rc);
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        size_t n = strlen(checks[i]);
        if (strncmp(err->message, checks[i], n) == 0 && err->message[n] == ':')
            return;
    }
    FUZZ_CHECK(0, "message names no check: \"%s\"", err->message);
}

/* A loaded snapshot: its hash is the header's and recomputes over the file's memory. */
static void check_loaded(nub_snapshot *snap, const uint8_t *file, size_t len, uint8_t mode)
{
    uint8_t h[32], again[32];
    FUZZ_CHECK(len >= NUB_SNAPFILE_MEM_OFFSET, "a %zu-byte file loaded", len);
    FUZZ_CHECK(nub_snapshot_hash(snap, h) == NUB_OK, "hash");
    FUZZ_CHECK(memcmp(h, file + HDR_OFF(content_hash), 32) == 0, "hash differs from the header's");
    FUZZ_CHECK(nub_snapshot_memory_size(snap) == len - NUB_SNAPFILE_MEM_OFFSET, "memory size %llu of a %zu-byte file",
               (unsigned long long)nub_snapshot_memory_size(snap), len);
    nub_snapshot_compute_hash(file + NUB_SNAPFILE_MEM_OFFSET, &snap->lay, again);
    FUZZ_CHECK(memcmp(h, again, 32) == 0, "hash does not recompute over the file's memory");
    uint32_t flags = get_u32(file + HDR_OFF(flags));
    FUZZ_CHECK(nub_snapshot_is_evolved(snap) == (int)(flags & NUB_SNAPFILE_F_EVOLVED), "evolved flag");
    if ((mode & (MODE_FIXUP | MODE_SANDBOX)) == (MODE_FIXUP | MODE_SANDBOX)) {
        struct nub_config over;
        nub_config_default(&over);
        over.backend = NUB_BACKEND_EMU;
        nub_sandbox *sb = NULL;
        nub_status rc = nub_sandbox_new_from_snapshot(snap, &over, &sb, NULL);
        FUZZ_CHECK((rc == NUB_OK) == (sb != NULL), "sandbox status %d", rc);
        nub_sandbox_destroy(sb);
    }
}

/* The lowest free descriptor: a descriptor left open by a load raises it. (Measured
 * around each load, not once at start: libFuzzer's symbolizer opens pipes between runs.) */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    FUZZ_CHECK(fd >= 0, "dup");
    close(fd);
    return fd;
}

/* No descriptor and no mapping of the memfd outlives a load. */
static void check_no_leak(int free_fd)
{
    int probe = lowest_free_fd();
    FUZZ_CHECK(probe == free_fd, "lowest free fd %d, %d before the load: a descriptor leaked", probe, free_fd);
    if (++runs % 64 != 0)
        return;
    FILE *maps = fopen("/proc/self/maps", "r");
    FUZZ_CHECK(maps != NULL, "/proc/self/maps");
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, maps))
        found |= strstr(line, "memfd:fuzz_snapfile") != NULL;
    fclose(maps);
    FUZZ_CHECK(!found, "a mapping of the snapshot file outlives its release");
}

static void setup(void)
{
    memfd = memfd_create("fuzz_snapfile", MFD_CLOEXEC);
    FUZZ_CHECK(memfd >= 0, "memfd_create");
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memfd < 0)
        setup();
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    size_t len = size - 1;
    uint8_t *file = fuzz_copy(data + 1, len);
    if (mode & MODE_FIXUP)
        fix_up(file, len);
    write_file(file, len);
    int free_fd = lowest_free_fd();
    nub_snapshot *snap = (nub_snapshot *)1;
    struct nub_error err;
    nub_status rc = nub_snapshot_load(memfd_path, &snap, &err);
    if (rc == NUB_OK) {
        FUZZ_CHECK(snap != NULL && err.code == NUB_OK, "loaded, snapshot %p, error %d", (void *)snap, err.code);
        check_loaded(snap, file, len, mode);
        nub_snapshot_release(snap);
    } else {
        FUZZ_CHECK(snap == NULL, "refused, yet a snapshot came back");
        check_refusal(rc, &err);
    }
    check_no_leak(free_fd);
    free(file);
    return 0;
}
