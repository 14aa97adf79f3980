/* Bare guest for the backend round-trip benchmark: entry and dispatch only OUT NUB_PORT_HALT, with no SDK initialisation. */
#include <stddef.h>

#include "nub/abi.h"

/* The entry stores the dispatch address at this PEB offset. */
_Static_assert(offsetof(struct nub_peb, dispatch_gva) == 128, "bare.c hard-codes the dispatch_gva offset");
_Static_assert(NUB_PORT_HALT == 108, "bare.c hard-codes the halt port");

/*
 * _start: RDI = PEB. Publish bare_dispatch as the call entry and halt.
 * bare_dispatch: halt at once (no request is read, no response written).
 */
__asm__(".section .text.entry, \"ax\", @progbits\n"
        ".globl _start\n"
        ".type _start, @function\n"
        "_start:\n"
        "    leaq bare_dispatch(%rip), %rax\n"
        "    movq %rax, 128(%rdi)\n"
        "    movl $108, %edx\n"
        "    outl %eax, %dx\n"
        "1:  hlt\n"
        "    jmp 1b\n"
        ".size _start, . - _start\n"
        ".type bare_dispatch, @function\n"
        "bare_dispatch:\n"
        "    movl $108, %edx\n"
        "    outl %eax, %dx\n"
        "2:  hlt\n"
        "    jmp 2b\n"
        ".size bare_dispatch, . - bare_dispatch\n"
        ".section .rodata\n"
        ".asciz \"nub bare guest\"\n"
        ".text\n");
