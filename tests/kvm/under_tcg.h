/* Tests: is this kvm nested under QEMU's software CPU (TCG), where some debug features of KVM do not work? */
#ifndef NUB_TESTS_UNDER_TCG_H
#define NUB_TESTS_UNDER_TCG_H

#include <stdint.h>
#include <string.h>

/*
 * 1 when CPUID leaf 0x40000000 names QEMU's TCG ("TCGTCGTCGTCG"), as in the
 * kvm stage of make test (tests/kvm/run.sh: Debian's kernel under
 * qemu-system-x86_64 -accel tcg -cpu max, KVM on nested SVM). There, with
 * QEMU 7.2 (docs/debugging.md has the details):
 * - a DR0-3 breakpoint set with KVM_SET_GUEST_DEBUG never fires: KVM loads
 *   DR7 into the nested guest through the VMCB, and QEMU's VMRUN
 *   (helper_vmrun, target/i386/tcg/sysemu/svm_helper.c) stores VMCB DR7
 *   straight into env->dr[7] without cpu_x86_update_dr7(), so the TCG
 *   breakpoint behind DR0-3 (hw_breakpoint_insert, bpt_helper.c) is never
 *   inserted; a DR7 the nested guest writes itself (MOV DR7) does work.
 *   Fixed in later QEMU (it fires with bookworm-backports' 10.0.2);
 * - int3 goes to the guest's #BP handler instead of KVM's #BP intercept:
 *   raise_interrupt2 (target/i386/tcg/excp_helper.c) checks only the
 *   INTn intercept (SVM_EXIT_SWINT) for an int3, never SVM_EXIT_EXCP_BASE+3
 *   (still so in QEMU 10.0.2).
 * Single-step (TF) is intercepted correctly there.
 */
static inline int nub_test_under_qemu_tcg(void)
{
    uint32_t a, b, c, d;
    char sig[13];
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000u), "c"(0));
    (void)a;
    memcpy(sig, &b, 4);
    memcpy(sig + 4, &c, 4);
    memcpy(sig + 8, &d, 4);
    sig[12] = '\0';
    return strcmp(sig, "TCGTCGTCGTCG") == 0;
}

#endif
