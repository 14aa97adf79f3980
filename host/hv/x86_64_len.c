/* x86-64 instruction length decoder (64-bit mode only) used by the emu backend to find port I/O. */
#include "x86_64_len.h"

#include <stdint.h>

#define M   0x01 /* a ModRM byte (plus SIB / displacement) follows */
#define I8  0x02 /* imm8 */
#define IZ  0x04 /* imm16 with 0x66 and no REX.W, else imm32 */
#define I16 0x08 /* imm16 */
#define IV  0x10 /* like IZ, but imm64 with REX.W (B8+r) */
#define MO  0x20 /* moffs: 8 bytes, 4 with 0x67 */
#define BAD 0x40 /* invalid in 64-bit mode, or not decoded here */
#define G3  0x80 /* F6/F7: immediate only for /0 and /1 */

#define MAX_INSN 15u

/* One-byte opcodes. Prefixes, REX, 0F, C4/C5 are handled in code (0 here). */
static const uint8_t one_byte[256] = {
    /* 00 */ M, M, M, M, I8, IZ, BAD, BAD, M, M, M, M, I8, IZ, BAD, 0,
    /* 10 */ M, M, M, M, I8, IZ, BAD, BAD, M, M, M, M, I8, IZ, BAD, BAD,
    /* 20 */ M, M, M, M, I8, IZ, 0, BAD, M, M, M, M, I8, IZ, 0, BAD,
    /* 30 */ M, M, M, M, I8, IZ, 0, BAD, M, M, M, M, I8, IZ, 0, BAD,
    /* 40 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 50 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 60 */ BAD, BAD, BAD, M, 0, 0, 0, 0, IZ, M | IZ, I8, M | I8, 0, 0, 0, 0,
    /* 70 */ I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, I8,
    /* 80 */ M | I8, M | IZ, BAD, M | I8, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 90 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, BAD, 0, 0, 0, 0, 0,
    /* A0 */ MO, MO, MO, MO, 0, 0, 0, 0, I8, IZ, 0, 0, 0, 0, 0, 0,
    /* B0 */ I8, I8, I8, I8, I8, I8, I8, I8, IV, IV, IV, IV, IV, IV, IV, IV,
    /* C0 */ M | I8, M | I8, I16, 0, 0, 0, M | I8, M | IZ, I16 | I8, 0, I16, 0, 0, I8, BAD, 0,
    /* D0 */ M, M, M, M, BAD, BAD, BAD, 0, M, M, M, M, M, M, M, M,
    /* E0 */ I8, I8, I8, I8, I8, I8, I8, I8, IZ, IZ, BAD, I8, 0, 0, 0, 0,
    /* F0 */ 0, 0, 0, 0, 0, 0, M | G3, M | G3, 0, 0, 0, 0, 0, 0, M, M,
};

/* Two-byte opcodes 0F xx. 0F 38 / 0F 3A are handled in code. */
static const uint8_t two_byte[256] = {
    /* 00 */ M, M, M, M, BAD, 0, 0, 0, 0, 0, BAD, 0, BAD, M, 0, BAD,
    /* 10 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 20 */ M, M, M, M, BAD, BAD, BAD, BAD, M, M, M, M, M, M, M, M,
    /* 30 */ 0, 0, 0, 0, 0, 0, BAD, 0, 0, BAD, 0, BAD, BAD, BAD, BAD, BAD,
    /* 40 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 50 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 60 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 70 */ M | I8, M | I8, M | I8, M | I8, M, M, M, 0, M, M, BAD, BAD, M, M, M, M,
    /* 80 */ IZ, IZ, IZ, IZ, IZ, IZ, IZ, IZ, IZ, IZ, IZ, IZ, IZ, IZ, IZ, IZ,
    /* 90 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* A0 */ 0, 0, 0, M, M | I8, M, BAD, BAD, 0, 0, 0, M, M | I8, M, M, M,
    /* B0 */ M, M, M, M, M, M, M, M, M, M, M | I8, M, M, M, M, M,
    /* C0 */ M, M, M | I8, M, M | I8, M | I8, M | I8, M, 0, 0, 0, 0, 0, 0, 0, 0,
    /* D0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* E0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* F0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
};

struct dec {
    const unsigned char *p;
    size_t avail;
    size_t n;      /* bytes consumed */
    bool opsize;   /* 0x66 */
    bool addrsize; /* 0x67 */
    bool repnz;    /* 0xf2 */
    bool rex_w;
};

static bool take(struct dec *d, unsigned char *b)
{
    if (d->n >= d->avail || d->n >= MAX_INSN)
        return false;
    *b = d->p[d->n++];
    return true;
}

static bool skip(struct dec *d, size_t k)
{
    if (k > d->avail - d->n || d->n + k > MAX_INSN)
        return false;
    d->n += k;
    return true;
}

static bool is_legacy_prefix(unsigned char b)
{
    switch (b) {
    case 0xf0: case 0xf2: case 0xf3: case 0x2e: case 0x36:
    case 0x3e: case 0x26: case 0x64: case 0x65: case 0x66: case 0x67:
        return true;
    default:
        return false;
    }
}

/* Legacy prefixes and REX (QEMU accepts them in any order); returns the opcode. */
static bool prefixes(struct dec *d, unsigned char *op)
{
    unsigned char b;
    for (;;) {
        if (!take(d, &b))
            return false;
        if (b == 0x66)
            d->opsize = true;
        else if (b == 0x67)
            d->addrsize = true;
        else if (b == 0xf2)
            d->repnz = true;
        else if ((b & 0xf0) == 0x40)
            d->rex_w = (b & 0x08) != 0;
        else if (!is_legacy_prefix(b))
            break;
    }
    *op = b;
    return true;
}

/* ModRM, optional SIB and displacement (64-bit and 32-bit addressing share the format). */
static bool modrm(struct dec *d, unsigned char *reg)
{
    unsigned char m, sib;
    if (!take(d, &m))
        return false;
    *reg = (unsigned char)((m >> 3) & 7);
    unsigned mod = m >> 6, rm = m & 7;
    if (mod == 3)
        return true;
    size_t disp = mod == 1 ? 1 : mod == 2 ? 4 : 0;
    if (rm == 4) {
        if (!take(d, &sib))
            return false;
        if (mod == 0 && (sib & 7) == 5)
            disp = 4;
    } else if (mod == 0 && rm == 5) {
        disp = 4; /* RIP-relative */
    }
    return skip(d, disp);
}

static size_t imm_size(const struct dec *d, unsigned flags)
{
    size_t z = d->opsize && !d->rex_w ? 2 : 4;
    size_t n = 0;
    if (flags & I8)
        n += 1;
    if (flags & I16)
        n += 2;
    if (flags & IZ)
        n += z;
    if (flags & IV)
        n += d->rex_w ? 8 : z;
    if (flags & MO)
        n += d->addrsize ? 4 : 8;
    return n;
}

/* Operands described by flags: ModRM, then immediates. */
static bool operands(struct dec *d, unsigned flags, unsigned char op)
{
    unsigned char reg = 0;
    if (flags & BAD)
        return false;
    if ((flags & M) && !modrm(d, &reg))
        return false;
    if ((flags & G3) && reg <= 1)
        flags |= op == 0xf6 ? I8 : IZ;
    return skip(d, imm_size(d, flags));
}

/* Opcode in map 1 (0F xx), 2 (0F 38 xx) or 3 (0F 3A xx); op already taken for map 1. */
static bool map_op(struct dec *d, unsigned map, unsigned char op)
{
    if (map == 1 && op == 0x38) {
        map = 2;
    } else if (map == 1 && op == 0x3a) {
        map = 3;
    } else if (map == 1 && op == 0x0f) {
        return false; /* 3DNow!: not decoded */
    } else if (map == 1 && op >= 0x20 && op <= 0x23) {
        unsigned char m;
        return take(d, &m); /* MOV to/from CR/DR: the mod bits are ignored, never SIB or displacement */
    }
    if (map == 1 && op == 0x78 && (d->opsize || d->repnz))
        return operands(d, M | I16, op); /* SSE4a EXTRQ / INSERTQ: imm8 length, imm8 index */
    if (map == 2 || map == 3) {
        if (!take(d, &op))
            return false;
        return operands(d, map == 3 ? (M | I8) : M, op);
    }
    return operands(d, two_byte[op], op);
}

/* C4 / C5 VEX prefixes (always VEX in 64-bit mode). */
static bool vex(struct dec *d, unsigned char first)
{
    unsigned char b1, b2, op;
    unsigned map = 1;
    if (!take(d, &b1))
        return false;
    if (first == 0xc4) {
        if (!take(d, &b2))
            return false;
        map = b1 & 0x1f;
        if (map < 1 || map > 3)
            return false;
    }
    if (map == 1) {
        if (!take(d, &op))
            return false;
        if (op == 0x38 || op == 0x3a || op == 0x0f)
            return false; /* not valid escapes under VEX */
        return map_op(d, 1, op);
    }
    return map_op(d, map, map == 2 ? 0x38 : 0x3a);
}

static bool is_io_opcode(unsigned char op)
{
    return (op >= 0xe4 && op <= 0xe7) || (op >= 0xec && op <= 0xef) ||
           (op >= 0x6c && op <= 0x6f);
}

size_t nub_x86_64_insn_len(const unsigned char *p, size_t avail, bool *io)
{
    struct dec d = {.p = p, .avail = avail};
    unsigned char op, op2;
    bool ok;
    *io = false;
    if (p == NULL || !prefixes(&d, &op))
        return 0;
    if (op == 0x0f)
        ok = take(&d, &op2) && map_op(&d, 1, op2);
    else if (op == 0xc4 || op == 0xc5)
        ok = vex(&d, op);
    else
        ok = operands(&d, one_byte[op], op);
    if (!ok)
        return 0;
    *io = is_io_opcode(op);
    return d.n;
}

bool nub_x86_64_may_have_io(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_io_opcode(p[i]))
            return true;
    return false;
}
