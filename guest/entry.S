/* Guest SDK entry points: boot (_start), call dispatch, and the 32 CPU exception stubs feeding nub_guest_exception. */

#define PORT_HALT 108

    .section .text.entry, "ax", @progbits

/*
 * Boot: the host enters here with RSP = stack top, RDI = PEB GVA,
 * RSI = seed, RDX = page size, RCX = max guest log level, interrupts off.
 * The four registers are already the arguments of nub_guest_boot().
 */
    .globl _start
    .type _start, @function
_start:
    cld
    xorl %ebp, %ebp
    andq $-16, %rsp
    call nub_guest_boot
1:  hlt
    jmp 1b
    .size _start, . - _start

/*
 * Call: the host enters here with RSP = stack top and RFLAGS = 0x2 after
 * pushing a request onto the input buffer.
 */
    .globl nub_dispatch_entry
    .type nub_dispatch_entry, @function
nub_dispatch_entry:
    cld
    xorl %ebp, %ebp
    andq $-16, %rsp
    /* nub_guest_dispatch never returns: jump with the stack as a call
     * would leave it, without storing a return address (a store is the
     * emu backend's main cost). */
    subq $8, %rsp
    jmp nub_guest_dispatch
    .size nub_dispatch_entry, . - nub_dispatch_entry

    .text

/* One stub per vector; the CPU pushes an error code for 8, 10-14, 17, 21, 29, 30. */
    .macro exn_stub vec
    .align 16
nub_exn_stub_\vec:
    .if !((\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || (\vec == 13) || \
          (\vec == 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30))
    pushq $0
    .endif
    pushq $\vec
    jmp nub_exn_common
    .endm

    .altmacro
    .set .Lvec, 0
    .rept 32
    exn_stub %.Lvec
    .set .Lvec, .Lvec + 1
    .endr

/*
 * Stack: vector, error code, RIP, CS, RFLAGS, RSP, SS (struct nub_exn_frame).
 * Below that, save the interrupted context's general-purpose registers
 * (struct nub_exn_regs in abi.h: rax pushed first, then a slot for the
 * magic that nub_guest_exception writes), so the host's debugger can show
 * them; RDI then points at the frame again.
 */
    .type nub_exn_common, @function
nub_exn_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    cld
    leaq 128(%rsp), %rdi
    andq $-16, %rsp
    call nub_guest_exception
1:  hlt
    jmp 1b
    .size nub_exn_common, . - nub_exn_common

    .section .rodata
    .align 8
    .globl nub_exn_stubs
    .type nub_exn_stubs, @object
nub_exn_stubs:
    .macro exn_addr vec
    .quad nub_exn_stub_\vec
    .endm
    .set .Lvec, 0
    .rept 32
    exn_addr %.Lvec
    .set .Lvec, .Lvec + 1
    .endr
    .size nub_exn_stubs, . - nub_exn_stubs

    .section .note.GNU-stack, "", @progbits
