/* Writes the hand-made seed inputs of the fuzz targets into tests/fuzz/corpus/TARGET/ (run by `make fuzz-seeds`; the output is committed). */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nub/abi.h"
#include "nub/cap.h"
#include "nub/cdir.h"
#include "nub/nub.h"
#include "nub/wire.h"

static const char *root = "tests/fuzz/corpus";

static void put(const char *target, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ---- ELF: the smallest images the loader accepts, and near misses ---- */

struct mini_elf {
    Elf64_Ehdr eh;
    Elf64_Phdr ph[3];
    uint8_t code[16];
};

static void mini_elf(struct mini_elf *e, int nph)
{
    memset(e, 0, sizeof *e);
    memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
    e->eh.e_ident[EI_CLASS] = ELFCLASS64;
    e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
    e->eh.e_ident[EI_VERSION] = EV_CURRENT;
    e->eh.e_type = ET_EXEC;
    e->eh.e_machine = EM_X86_64;
    e->eh.e_version = EV_CURRENT;
    e->eh.e_entry = NUB_KERNEL_BASE + offsetof(struct mini_elf, code);
    e->eh.e_phoff = offsetof(struct mini_elf, ph);
    e->eh.e_ehsize = sizeof(Elf64_Ehdr);
    e->eh.e_phentsize = sizeof(Elf64_Phdr);
    e->eh.e_phnum = (Elf64_Half)nph;
    e->ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 0,
                            .p_vaddr = NUB_KERNEL_BASE, .p_paddr = NUB_KERNEL_BASE,
                            .p_filesz = sizeof *e, .p_memsz = sizeof *e, .p_align = 4096};
    e->ph[1] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = 0,
                            .p_vaddr = NUB_KERNEL_BASE + 0x1000, .p_filesz = 0, .p_memsz = 0x2000,
                            .p_align = 4096};
    e->ph[2] = (Elf64_Phdr){.p_type = PT_GNU_STACK, .p_flags = PF_R | PF_W};
    static const uint8_t code[] = {0x66, 0xba, 0xf4, 0x00, 0xee, 0xf4}; /* mov dx, 0xf4; out dx, al; hlt */
    memcpy(e->code, code, sizeof code);
}

static void elf_seeds(void)
{
    struct mini_elf e;
    mini_elf(&e, 1);
    put("elf", "min-one-segment", &e, sizeof e);
    mini_elf(&e, 3);
    put("elf", "min-text-bss-stack", &e, sizeof e);
    mini_elf(&e, 2);
    e.ph[1].p_vaddr = NUB_KERNEL_BASE + 0x3ffff000;
    e.ph[1].p_memsz = 0x1000;
    put("elf", "far-bss", &e, sizeof e);
    mini_elf(&e, 2);
    e.ph[1].p_type = PT_TLS;
    put("elf", "tls-refused", &e, sizeof e);
}

/* ---- wire: buffers holding stacks of messages ---- */

static void wire_seeds(void)
{
    uint8_t b[512];
    nub_wire_init(b, 64);
    put("wire", "empty-64", b, 64);
    nub_wire_init(b, sizeof b);
    nub_wire_push(b, sizeof b, NUB_MSG_REQUEST, 7, "hello", 5, NULL, 0);
    put("wire", "request", b, 128);
    nub_wire_push(b, sizeof b, NUB_MSG_LOG, NUB_LOG_LEVEL_WARN, "careful", 7, NULL, 0);
    put("wire", "request-log", b, 192);
    nub_wire_init(b, sizeof b);
    nub_wire_push(b, sizeof b, NUB_MSG_RESPONSE, NUB_STATUS_HOST_ERROR, "pay", 3, "an error text", 13);
    nub_wire_push(b, sizeof b, NUB_MSG_RESPONSE, NUB_STATUS_OK, NULL, 0, NULL, 0);
    nub_wire_push(b, sizeof b, NUB_MSG_REQUEST, 0xffffffffu, "12345678", 8, "e", 1);
    put("wire", "three-frames", b, sizeof b);
}

/* ---- caps: one canonical encoding of each kind (the docs/caps.md examples) ---- */

static void put_cap(const char *name, const struct nub_cap *c)
{
    static uint8_t buf[4096];
    size_t len;
    if (nub_cap_encode(c, buf, sizeof buf, &len) != NUB_CAP_OK) {
        fprintf(stderr, "mkseeds: cap %s does not encode\n", name);
        exit(1);
    }
    put("cap", name, buf, len);
}

static void cap_seeds(void)
{
    struct nub_cap c;
    struct nub_cap_slot slots[2] = {{.index = 1}, {.index = 3}};
    memset(slots[0].hash, 0x11, sizeof slots[0].hash);
    memset(slots[1].hash, 0x22, sizeof slots[1].hash);
    nub_cap_data(&c, "abc", 3);
    put_cap("data-abc", &c);
    nub_cap_data(&c, NULL, 0);
    put_cap("data-empty", &c);
    nub_cap_cnode(&c, 0, NULL, 0);
    put_cap("cnode-0", &c);
    nub_cap_cnode(&c, 2, slots, 2);
    put_cap("cnode-2", &c);
    static const uint8_t code[] = {0x00, 0x01, 0x02}, bitmask[] = {0x07};
    static const uint32_t jumps[] = {0, 2};
    struct nub_cap_endpoint ep = {.pc = 0, .stack_top = 0x10000, .arg_slot = 1, .arg_size = 4, .regs = {7}};
    struct nub_cap_mapping maps[2] = {{.start = 0x20000, .size = 0x1000, .path_len = 2, .path = {1, 2}},
                                      {.start = 0x10000, .size = 0x1000, .path_len = 0}};
    nub_cap_image(&c);
    nub_cap_image_code(&c, code, sizeof code);
    nub_cap_image_bitmask(&c, bitmask, sizeof bitmask);
    nub_cap_image_jump_table(&c, jumps, 2);
    nub_cap_image_endpoints(&c, &ep, 1);
    nub_cap_image_mappings(&c, maps, 2);
    nub_cap_image_init_slots(&c, slots, 2);
    put_cap("image", &c);
    uint8_t img[NUB_CAP_HASH_LEN], rootc[NUB_CAP_HASH_LEN];
    uint64_t regs[NUB_CAP_REGS];
    memset(img, 0x11, sizeof img);
    memset(rootc, 0x33, sizeof rootc);
    for (unsigned i = 0; i < NUB_CAP_REGS; i++)
        regs[i] = i;
    struct nub_cap_overlay ovs[2] = {{.start = 0x1000, .bytes = (const uint8_t *)"hi", .len = 2},
                                     {.start = 0x2000, .bytes = (const uint8_t *)"there", .len = 5}};
    nub_cap_instance(&c, img, rootc, 0x10000, 0x1000, 1000000);
    nub_cap_instance_regs(&c, regs);
    nub_cap_instance_overlays(&c, ovs, 2);
    put_cap("instance", &c);
}

/* ---- cdir: a snapshot region with PEB, boot info and a directory of three caps ---- */

#define SNAP_SIZE 4096u
#define BI_OFF 0x100u
#define DIR_OFF 0x200u

static void dir_insert(uint8_t *dir, uint64_t size, const char *text, uint8_t fill)
{
    struct nub_cap c;
    uint8_t h[NUB_CAP_HASH_LEN], *dst;
    size_t len;
    nub_cap_data(&c, text, strlen(text));
    nub_cap_encoded_len(&c, &len);
    nub_cap_hash(&c, h);
    h[0] = fill ? fill : h[0]; /* fill: force a probe collision on slot (fill & 7) */
    if (nub_cdir_insert(dir, size, h, len, &dst) != NUB_CDIR_OK ||
        nub_cap_encode(&c, dst, len, &len) != NUB_CAP_OK) {
        fprintf(stderr, "mkseeds: cdir insert failed\n");
        exit(1);
    }
}

static void cdir_seeds(void)
{
    static uint8_t in[8 + SNAP_SIZE];
    uint8_t *snap = in + 8;
    uint64_t dir_size;
    memset(in, 0, sizeof in); /* peb_off = 0 */
    nub_cdir_size(8, 512, &dir_size);
    struct nub_peb peb = {.magic = NUB_PEB_MAGIC, .abi_version = NUB_ABI_VERSION,
                          .boot_info_gva = NUB_KERNEL_BASE + BI_OFF};
    struct nub_boot_info bi = {NUB_BOOT_INFO_MAGIC, NUB_BOOT_INFO_VERSION, 0, NUB_KERNEL_BASE + DIR_OFF, dir_size};
    memcpy(snap, &peb, sizeof peb);
    memcpy(snap + BI_OFF, &bi, sizeof bi);
    nub_cdir_init(snap + DIR_OFF, dir_size, 8, 512);
    put("cdir", "empty-directory", in, 8 + DIR_OFF + dir_size);
    dir_insert(snap + DIR_OFF, dir_size, "abc", 0);
    dir_insert(snap + DIR_OFF, dir_size, "collides-1", 0x21);
    dir_insert(snap + DIR_OFF, dir_size, "collides-2", 0x29);
    put("cdir", "three-caps", in, 8 + DIR_OFF + dir_size);
    peb.boot_info_gva = 0;
    memcpy(snap, &peb, sizeof peb);
    put("cdir", "no-directory", in, 8 + sizeof peb);
    /* The directory alone at offset 0 (read directly as well as through a PEB). */
    static uint8_t d[8 + 1024];
    memset(d, 0, sizeof d);
    nub_cdir_init(d + 8, dir_size, 8, 512);
    dir_insert(d + 8, dir_size, "direct", 0);
    put("cdir", "bare-directory", d, 8 + dir_size);
}

/* ---- config: struct nub_config images ---- */

static void config_seeds(void)
{
    struct nub_config c;
    nub_config_default(&c);
    c.backend = NUB_BACKEND_EMU;
    put("config", "default", &c, sizeof c);
    memset(&c, 0, sizeof c);
    put("config", "zero", &c, sizeof c);
    nub_config_default(&c);
    c.heap_size = 1;
    c.input_size = 4097;
    c.scratch_size = 0x10000;
    c.max_guest_log_level = NUB_LOG_LEVEL_TRACE;
    put("config", "odd-sizes", &c, sizeof c);
    memset(&c, 0xff, sizeof c);
    put("config", "all-ones", &c, sizeof c);
}

/* ---- snapfile: the bare guest's snapshot files, pre-init and evolved, smallest sizes ---- */

/* The file at `path` behind one mode byte (fuzz_snapfile.c: 1 = fix up origin and hashes). */
static void put_snapfile(const char *name, const char *path)
{
    static uint8_t buf[1u << 20];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf + 1, 1, sizeof buf - 1, f) : 0;
    if (f == NULL || n == 0 || n == sizeof buf - 1) {
        fprintf(stderr, "mkseeds: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    buf[0] = 1;
    put("snapfile", name, buf, n + 1);
    remove(path);
}

static void snapfile_seeds(const char *guest)
{
    struct nub_config cfg;
    struct nub_error err;
    nub_snapshot *pre = NULL, *ready = NULL;
    nub_sandbox *sb = NULL;
    static const char tmp[] = "tests/fuzz/corpus/.snapfile.tmp";
    nub_config_default(&cfg);
    cfg.backend = NUB_BACKEND_EMU;
    cfg.heap_size = cfg.stack_size = cfg.input_size = cfg.output_size = 4096; /* the smallest sizes */
    if (nub_snapshot_from_file(guest, NULL, &cfg, &pre, &err) != NUB_OK ||
        nub_snapshot_save(pre, tmp, &err) != NUB_OK)
        goto fail;
    put_snapfile("bare-pre-init", tmp);
    if (nub_sandbox_new_from_snapshot(pre, &cfg, &sb, &err) != NUB_OK)
        goto fail;
    if (nub_sandbox_evolve(sb) != NUB_OK || nub_sandbox_snapshot(sb, &ready) != NUB_OK ||
        nub_snapshot_save(ready, tmp, &err) != NUB_OK) {
        const struct nub_error *why = nub_sandbox_last_error(sb);
        fprintf(stderr, "mkseeds: evolving or capturing %s: %s\n", guest, why ? why->message : "");
        exit(1);
    }
    put_snapfile("bare-evolved", tmp);
    nub_sandbox_destroy(sb);
    nub_snapshot_release(ready);
    nub_snapshot_release(pre);
    return;
fail:
    fprintf(stderr, "mkseeds: snapshot of %s: %s\n", guest, err.message);
    exit(1);
}

/* ---- gdb: remote-protocol byte streams as a client sends them (after the out_cap byte) ---- */

/* Appends "$payload#hh" (payload already escaped) to dst at *k. */
static void gdb_packet(uint8_t *dst, size_t *k, const char *payload, size_t n, int bad_sum)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t sum = 0;
    dst[(*k)++] = '$';
    for (size_t i = 0; i < n; i++) {
        dst[(*k)++] = (uint8_t)payload[i];
        sum = (uint8_t)(sum + (uint8_t)payload[i]);
    }
    sum = (uint8_t)(sum + bad_sum);
    dst[(*k)++] = '#';
    dst[(*k)++] = (uint8_t)hex[sum >> 4];
    dst[(*k)++] = (uint8_t)hex[sum & 15];
}

static void put_gdb(const char *name, uint8_t cap, const char *const *packets, size_t count, int bad_last)
{
    static uint8_t buf[8192];
    size_t k = 0;
    buf[k++] = cap;
    for (size_t i = 0; i < count; i++) {
        if (packets[i][0] == '+' || packets[i][0] == '\x03') /* acks and Ctrl-C go as they are */
            buf[k++] = (uint8_t)packets[i][0];
        else
            gdb_packet(buf, &k, packets[i], strlen(packets[i]), bad_last && i + 1 == count);
    }
    put("gdb", name, buf, k);
}

static void gdb_seeds(void)
{
    static const char *const session[] = {
        "+", "qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;xmlRegisters=i386", "+", "?", "g",
        "qXfer:features:read:target.xml:0,ffb", "Hg0", "qfThreadInfo", "qC", "qAttached",
        "m ffffffff80001000,40", "Z0,ffffffff80001000,1", "vCont?", "vCont;c", "\x03", "z0,ffffffff80001000,1",
        "p10", "P0=0102030405060708", "s", "k"};
    put_gdb("session", 0x80, session, sizeof session / sizeof session[0], 0);
    static const char *const write_mem[] = {"X ffffffff80002000,6:a}]b}\x03}}#", "M ffffffff80002000,4:deadbeef",
                                            "G0000000000000000ffffffffffffffff"};
    put_gdb("write-memory-escapes", 0x80, write_mem, 3, 0);
    static const char *const bad[] = {"qSupported", "g"};
    put_gdb("bad-checksum", 0x80, bad, 2, 1);
    static const char *const small[] = {"m 0,8", "qSupported:multiprocess+"};
    put_gdb("small-out-cap", 0x08, small, 2, 0);
    static const uint8_t garbage[] = {0x80, '+', '+', 'x', '$', 'g', '$', 'g', '#', '6', '7', '$', '}', '#', '0', '0',
                                      '$', 'm', '#', 'z', 'z', '$', '?', '#', '3'};
    put("gdb", "garbage-and-partial", garbage, sizeof garbage);
}

/* ---- x86: instruction sequences (each input is one instruction stream) ---- */

static void x86_seeds(void)
{
    static const uint8_t out_dx[] = {0x66, 0xba, 0xf4, 0x00, 0xee, 0xf4};
    static const uint8_t mixed[] = {0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, /* mov rax, imm64 */
                                    0x66, 0x0f, 0x70, 0xd1, 0x1b,       /* pshufd */
                                    0xc4, 0xe2, 0xe0, 0xf2, 0xc8,       /* andn */
                                    0xc5, 0xec, 0x58, 0xd9,             /* vaddps */
                                    0xf3, 0x0f, 0x1e, 0xfa,             /* endbr64 */
                                    0x8b, 0x84, 0x24, 1, 2, 3, 4,       /* mov eax, [rsp+disp32] */
                                    0xf7, 0x05, 1, 2, 3, 4, 5, 6, 7, 8, /* test [rip+d], imm32 */
                                    0xe4, 0x10, 0x6c, 0x0f, 0x05};      /* in al, 0x10; insb; syscall */
    static const uint8_t prefixes[] = {0x66, 0x67, 0xf0, 0x2e, 0x48, 0x81, 0x00, 1, 2, 3, 4};
    put("x86len", "out-dx", out_dx, sizeof out_dx);
    put("x86len", "mixed", mixed, sizeof mixed);
    put("x86len", "prefixes", prefixes, sizeof prefixes);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        root = argv[1];
    const char *bare = argc > 2 ? argv[2] : "build/guests/bare.elf";
    elf_seeds();
    wire_seeds();
    cap_seeds();
    cdir_seeds();
    config_seeds();
    x86_seeds();
    gdb_seeds();
    snapfile_seeds(bare);
    return 0;
}
