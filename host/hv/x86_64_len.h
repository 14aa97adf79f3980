/* x86-64 instruction length decoder for the emu backend: finds port I/O instructions in translated blocks. */
#ifndef NUB_HOST_HV_X86_64_LEN_H
#define NUB_HOST_HV_X86_64_LEN_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Decode the length of the 64-bit-mode instruction at p (avail bytes
 * readable), following the decoding rules of the QEMU 5 translator that
 * Unicorn 2.0.1 uses (prefix handling, immediate sizes). Returns 1..15, or 0
 * when the bytes are not an instruction this decoder knows for certain
 * (invalid in 64-bit mode, EVEX/XOP/3DNow!, truncated, longer than 15). *io
 * is set when the instruction is IN, OUT, INS or OUTS.
 */
size_t nub_x86_64_insn_len(const unsigned char *p, size_t avail, bool *io);

/* True when p[0..n) holds a byte that could be an IN/OUT/INS/OUTS opcode. */
bool nub_x86_64_may_have_io(const unsigned char *p, size_t n);

#endif /* NUB_HOST_HV_X86_64_LEN_H */
