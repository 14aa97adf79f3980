/* libFuzzer target: the emu backend's x86-64 instruction-length decoder, differentially against Capstone (lengths and the port-I/O flag must agree on every instruction both decode). */
#include "fuzz.h"

#include <capstone/capstone.h>
#include <stdbool.h>

#include "hv/x86_64_len.h"

/* Capstone's handle and instruction, made once per process (fuzz-target state, not library state). */
static csh cs;
static cs_insn *insn;

static void capstone_open(void)
{
    if (insn != NULL)
        return;
    FUZZ_CHECK(cs_open(CS_ARCH_X86, CS_MODE_64, &cs) == CS_ERR_OK, "cs_open");
    insn = cs_malloc(cs);
    FUZZ_CHECK(insn != NULL, "cs_malloc");
}

/* Capstone's length of the first instruction in p[0, n), 0 when it does not decode one. */
static size_t capstone_len(const uint8_t *p, size_t n, bool *io)
{
    const uint8_t *code = p;
    size_t left = n;
    uint64_t addr = 0;
    *io = false;
    if (!cs_disasm_iter(cs, &code, &left, &addr, insn))
        return 0;
    *io = insn->id == X86_INS_IN || insn->id == X86_INS_OUT || insn->id == X86_INS_INSB ||
          insn->id == X86_INS_INSW || insn->id == X86_INS_INSD || insn->id == X86_INS_OUTSB ||
          insn->id == X86_INS_OUTSW || insn->id == X86_INS_OUTSD;
    return insn->size;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n && i < 16; i++)
        sprintf(out + 3 * i, "%02x ", p[i]);
}

static bool is_legacy_prefix(uint8_t b)
{
    return b == 0xf0 || b == 0xf2 || b == 0xf3 || b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 ||
           b == 0x64 || b == 0x65 || b == 0x66 || b == 0x67;
}

static bool is_rex(uint8_t b)
{
    return (b & 0xf0) == 0x40;
}

/* The prefixes of an instruction (legacy and REX, in any order) and what follows them. */
struct prefixes {
    size_t len;        /* prefix bytes */
    bool opsize;       /* 0x66 seen */
    bool repnz;        /* 0xf2 seen */
    bool rex_w;        /* the last REX has W set (QEMU 5 keeps it across later legacy prefixes) */
};

static void scan_prefixes(const uint8_t *p, size_t n, struct prefixes *px)
{
    memset(px, 0, sizeof *px);
    for (; px->len < n && px->len < 15; px->len++) {
        uint8_t b = p[px->len];
        if (is_rex(b)) {
            px->rex_w = (b & 0x08) != 0;
        } else if (is_legacy_prefix(b)) {
            px->opsize |= b == 0x66;
            px->repnz |= b == 0xf2;
        } else {
            break;
        }
    }
}

/*
 * The architectural spelling of the same instruction for Capstone, with
 * the same length as p[0, plen) + rest. QEMU 5 (what Unicorn 2.0.1
 * executes, and what the decoder follows) honours a REX prefix even when
 * legacy prefixes follow it and 0x66 whatever F2/F3 follow it; the
 * architecture ignores such a REX and Capstone 4 lets a later F2/F3 cancel
 * 0x66 on one-byte opcodes. So: legacy prefixes first, REX bytes last (in
 * order), and on one-byte opcodes (where F2/F3 never change the length)
 * F2/F3 left out; returns how many bytes were left out.
 */
static size_t canonical(const uint8_t *p, size_t plen, bool one_byte_map, uint8_t *out)
{
    size_t k = 0, dropped = 0;
    for (size_t i = 0; i < plen; i++) {
        if (is_rex(p[i]))
            continue;
        if (one_byte_map && (p[i] == 0xf2 || p[i] == 0xf3))
            dropped++;
        else
            out[k++] = p[i];
    }
    for (size_t i = 0; i < plen; i++)
        if (is_rex(p[i]))
            out[k++] = p[i];
    return dropped;
}

/*
 * The length QEMU 5 gives the instruction at p, from Capstone (0 when
 * Capstone does not decode it, or to skip the comparison):
 *  - UD0 (0F FF) and UD1 (0F B9) always raise #UD, where QEMU ends the
 *    block whatever their length; Capstone 4 decodes them without ModRM;
 *    likewise 0F 78/79 without 0x66 or F2 (VMREAD/VMWRITE: QEMU 5 has no
 *    VMX; with 0x66 or F2 they are SSE4a EXTRQ/INSERTQ, which Capstone 4
 *    confuses with VMREAD under REX.W and decodes after 0x67 alone);
 *  - a near CALL/JMP/Jcc takes a rel16 in QEMU 5 with 0x66 and no REX.W
 *    (as on AMD), else a rel32 (Capstone 4 mixes them up under 0x66, 0x67
 *    and REX.W), and RET/RETF imm16 always has a 16-bit immediate
 *    (Capstone 4 reads 32 bits with 0x66 + REX.W): these lengths are
 *    computed here from the prefixes, not asked of Capstone.
 */
static size_t expected_len(const uint8_t *p, size_t n, bool *io)
{
    struct prefixes px;
    uint8_t q[16];
    size_t m = n < sizeof q ? n : sizeof q;
    scan_prefixes(p, m, &px);
    if (px.len >= m)
        return capstone_len(p, m, io);
    uint8_t op = p[px.len], op2 = px.len + 1 < m ? p[px.len + 1] : 0;
    bool one_byte_map = op != 0x0f && op != 0xc4 && op != 0xc5;
    size_t dropped = canonical(p, px.len, one_byte_map, q);
    memcpy(q + px.len - dropped, p + px.len, m - px.len);
    size_t theirs = capstone_len(q, m - dropped, io);
    if (theirs == 0)
        return 0;
    theirs += dropped;
    if (op == 0x0f && (op2 == 0xff || op2 == 0xb9))
        return 0;
    if (op == 0x0f && (op2 == 0x78 || op2 == 0x79) &&
        (!(px.opsize || px.repnz) || insn->id == X86_INS_VMREAD || insn->id == X86_INS_VMWRITE))
        return 0;
    bool near_branch = op == 0xe8 || op == 0xe9 || (op == 0x0f && op2 >= 0x80 && op2 <= 0x8f);
    if (near_branch)
        return px.len + (op == 0x0f ? 2 : 1) + (px.opsize && !px.rex_w ? 2 : 4);
    if (op == 0xc2 || op == 0xca)
        return px.len + 1 + 2;
    return theirs;
}

/* Each input is an instruction stream: decode it one instruction after another. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    capstone_open();
    uint8_t *p = fuzz_copy(data, size);
    size_t off = 0;
    while (off < size) {
        bool io = false, cs_io = false;
        size_t n = size - off;
        size_t ours = nub_x86_64_insn_len(p + off, n, &io);
        size_t theirs = expected_len(p + off, n, &cs_io);
        FUZZ_CHECK(ours <= 15 && ours <= n, "length %zu of %zu bytes", ours, n);
        if (ours != 0 && theirs != 0) {
            char h[64] = "";
            hex(p + off, n, h);
            FUZZ_CHECK(ours == theirs, "length %zu, Capstone %zu (%s %s) for %s", ours, theirs, insn->mnemonic,
                       insn->op_str, h);
            FUZZ_CHECK(io == cs_io, "io %d, Capstone %d (%s) for %s", io, cs_io, insn->mnemonic, h);
        }
        /* An io flag is the I/O opcode itself. */
        if (ours != 0 && io)
            FUZZ_CHECK(nub_x86_64_may_have_io(p + off, ours), "io instruction without an io opcode byte");
        size_t step = ours ? ours : theirs ? theirs : 1;
        off += step;
    }
    free(p);
    return 0;
}
