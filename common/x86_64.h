/* Freestanding x86-64 architecture constants shared by both backends, the host's core dumps and the guest SDK: control-register and EFER bits, the GDT's selectors and descriptors, segment types, the initial long-mode state, exception vectors and error-code bits. */
#ifndef NUB_COMMON_X86_64_H
#define NUB_COMMON_X86_64_H

/* Intel SDM vol. 3 (system programming) for every value below. */

/* ---- Control registers and EFER ---------------------------------------- */

#define NUB_X86_CR0_PE (1ull << 0)  /* protection enable */
#define NUB_X86_CR0_MP (1ull << 1)  /* monitor coprocessor */
#define NUB_X86_CR0_ET (1ull << 4)  /* extension type (always 1) */
#define NUB_X86_CR0_NE (1ull << 5)  /* native x87 error reporting */
#define NUB_X86_CR0_WP (1ull << 16) /* write protect, also at CPL0 */
#define NUB_X86_CR0_PG (1ull << 31) /* paging */

#define NUB_X86_CR4_PAE        (1ull << 5)  /* physical address extension (long mode) */
#define NUB_X86_CR4_OSFXSR     (1ull << 9)  /* FXSAVE/FXRSTOR and SSE enabled */
#define NUB_X86_CR4_OSXMMEXCPT (1ull << 10) /* unmasked SSE exceptions raise #XM */

#define NUB_X86_MSR_EFER 0xc0000080u
#define NUB_X86_EFER_SCE (1ull << 0)  /* SYSCALL enable */
#define NUB_X86_EFER_LME (1ull << 8)  /* long mode enable */
#define NUB_X86_EFER_LMA (1ull << 10) /* long mode active */
#define NUB_X86_EFER_NXE (1ull << 11) /* no-execute page bit enabled */

/* RFLAGS bit 1 is reserved and always 1: the value of RFLAGS with nothing set. */
#define NUB_X86_RFLAGS_FIXED 0x2ull

/* ---- nub's initial long-mode state (host/hv/hv.h, nub_hv_config) --------
 * Both backends start every vCPU with these. The emu backend leaves
 * NUB_X86_CR0_PG out (Unicorn maps virtual addresses directly). */
#define NUB_X86_CR0_LONG_MODE                                                              \
    (NUB_X86_CR0_PE | NUB_X86_CR0_MP | NUB_X86_CR0_ET | NUB_X86_CR0_NE | NUB_X86_CR0_WP | \
     NUB_X86_CR0_PG)
#define NUB_X86_CR4_LONG_MODE (NUB_X86_CR4_PAE | NUB_X86_CR4_OSFXSR | NUB_X86_CR4_OSXMMEXCPT)
#define NUB_X86_EFER_LONG_MODE \
    (NUB_X86_EFER_LME | NUB_X86_EFER_LMA | NUB_X86_EFER_NXE | NUB_X86_EFER_SCE)
#define NUB_X86_FPCW_INIT  0x037fu /* x87 control word: every exception masked */
#define NUB_X86_MXCSR_INIT 0x1f80u /* SSE control: every exception masked */

/* ---- Segments ------------------------------------------------------------
 * The guest SDK's GDT: null, flat 64-bit code, flat data, then the 64-bit
 * TSS (two slots). The host loads the same selectors before the guest's
 * first instruction and names them in core dumps. */
#define NUB_X86_SEL_CODE 0x08u
#define NUB_X86_SEL_DATA 0x10u
#define NUB_X86_SEL_TSS  0x18u

/* Segment descriptor types (the 4-bit type field). */
#define NUB_X86_SEG_TYPE_CODE_XRA   0xbu /* code: execute/read, accessed */
#define NUB_X86_SEG_TYPE_DATA_RWA   0x3u /* data: read/write, accessed */
#define NUB_X86_SEG_TYPE_LDT        0x2u /* system: LDT */
#define NUB_X86_SEG_TYPE_TSS64_AVAIL 0x9u /* system: available 64-bit TSS */
#define NUB_X86_SEG_TYPE_TSS64_BUSY 0xbu /* system: busy 64-bit TSS */

/* GDT entries of the code and data segments above. */
#define NUB_X86_GDT_CODE64 0x00af9b000000ffffull /* P, DPL 0, S, execute/read, accessed, L, G */
#define NUB_X86_GDT_DATA   0x00cf93000000ffffull /* P, DPL 0, S, read/write, accessed, D/B, G */
/* Access byte of the TSS descriptor: present, DPL 0, available 64-bit TSS. */
#define NUB_X86_DESC_PRESENT 0x80u
#define NUB_X86_TSS_ACCESS   (NUB_X86_DESC_PRESENT | NUB_X86_SEG_TYPE_TSS64_AVAIL)
/* Gate attributes: present, DPL 0, 64-bit interrupt gate. */
#define NUB_X86_IDT_INTR_GATE 0x8eu

/* Bytes in a 64-bit TSS without an I/O permission bitmap (limit = size - 1). */
#define NUB_X86_TSS64_SIZE 104u

/* ---- Exceptions ----------------------------------------------------------- */

#define NUB_X86_VEC_UD 6u  /* invalid opcode */
#define NUB_X86_VEC_GP 13u /* general protection */
#define NUB_X86_VEC_PF 14u /* page fault */
/* CPU exception vectors are 0..31; `int n` above them is a software interrupt. */
#define NUB_X86_EXN_VECTORS 32u

/* #PF error code bits. */
#define NUB_X86_PF_P (1ull << 0) /* the page was present: a protection violation */
#define NUB_X86_PF_W (1ull << 1) /* a write */
#define NUB_X86_PF_I (1ull << 4) /* an instruction fetch */
/* #GP (and other selector) error code bit: the index names an IDT entry. */
#define NUB_X86_ERR_IDT (1ull << 1)

#endif /* NUB_COMMON_X86_64_H */
