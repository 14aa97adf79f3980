/* Snapshot file format (nub_snapshot_save / nub_snapshot_load): the fixed header at offset 0, little-endian. */
#ifndef NUB_SNAPFILE_H
#define NUB_SNAPFILE_H

#include <stdint.h>

/*
 * A snapshot file is this header (NUB_SNAPFILE_HEADER_SIZE bytes, zero
 * padded to mem_offset), then the memory image: the snapshot region
 * (regions[0].len bytes) followed by the scratch region (regions[1].len),
 * mem_size bytes in all, at mem_offset (a multiple of 4096), ending the
 * file. All integers are little-endian. docs/snapshots.md lists every
 * field with what nub_snapshot_load checks.
 */

#define NUB_SNAPFILE_MAGIC "NUBSNAP" /* 8 bytes with the NUL */
#define NUB_SNAPFILE_VERSION 1u
#define NUB_SNAPFILE_MEM_OFFSET 4096u
#define NUB_SNAPFILE_F_EVOLVED 0x1u
#define NUB_SNAPFILE_MAX_SEGS 16u

/* CPUID bits every nub image depends on (leaf 1 EDX: FXSR, SSE, SSE2;
 * leaf 0x80000001 EDX: NX, LM). */
#define NUB_SNAPFILE_BASE_1_EDX ((1u << 24) | (1u << 25) | (1u << 26))
#define NUB_SNAPFILE_BASE_EXT_EDX ((1u << 20) | (1u << 29))

struct nub_snapfile_region {
    uint64_t gpa;
    uint64_t len;
    uint32_t flags; /* NUB_MEM_* */
    uint32_t reserved;
};

struct nub_snapfile_segment {
    uint64_t vaddr, memsz, file_off, copy_at, filesz;
    uint32_t perms;
    uint32_t reserved;
};

struct nub_snapfile_cpu {
    uint64_t gpr[16];           /* rax rbx rcx rdx rsi rdi rsp rbp r8..r15 */
    uint64_t rip, rflags;
    uint64_t gdt_base, idt_base;
    uint32_t gdt_limit, idt_limit;
    uint64_t tr_base;
    uint32_t tr_limit;
    uint16_t tr_selector, tr_attr; /* VMX access-rights layout */
    uint64_t fs_base, gs_base;
    uint32_t mxcsr;
    uint16_t fcw;
    uint16_t reserved;
};

struct nub_snapfile_header {
    char magic[8];              /* NUB_SNAPFILE_MAGIC */
    uint32_t format_version;    /* NUB_SNAPFILE_VERSION */
    uint32_t header_size;       /* sizeof(struct nub_snapfile_header) */
    uint32_t abi_version;       /* NUB_ABI_VERSION of the guest image */
    uint32_t flags;             /* NUB_SNAPFILE_F_EVOLVED */
    char cpu_vendor[12];        /* CPUID leaf 0 EBX, EDX, ECX of the capturing host */
    uint32_t cpuid_1_ecx;       /* features the image depends on: the loading CPU needs all of them */
    uint32_t cpuid_1_edx;
    uint32_t cpuid_7_ebx;
    uint32_t cpuid_ext_edx;     /* leaf 0x80000001 EDX */
    uint32_t nregions;          /* 2 */
    uint64_t mem_offset;        /* NUB_SNAPFILE_MEM_OFFSET */
    uint64_t mem_size;          /* regions[0].len + regions[1].len */
    struct nub_snapfile_region regions[2]; /* snapshot region, scratch region */
    /* the configuration the layout is computed from (nub_config) */
    uint64_t heap_size, stack_size, input_size, output_size, scratch_size, max_image_size;
    uint32_t backend, max_guest_log_level, call_timeout_ms, max_log_level;
    uint64_t image_size;        /* loaded ELF image bytes */
    uint64_t init_size;         /* init data bytes */
    uint64_t cr3, entry_gva, dispatch_gva, counter;
    uint32_t nsegs;
    uint32_t reserved;
    struct nub_snapfile_segment segs[NUB_SNAPFILE_MAX_SEGS];
    struct nub_snapfile_cpu cpu;
    uint8_t content_hash[32];   /* nub_snapshot_hash() of the memory image */
    uint8_t header_check[32];   /* BLAKE3 of every header byte before this field */
};

#define NUB_SNAPFILE_HEADER_SIZE ((uint32_t)sizeof(struct nub_snapfile_header))

#endif /* NUB_SNAPFILE_H */
