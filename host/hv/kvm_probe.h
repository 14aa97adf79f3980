/* The kvm probe: proves that this machine's KVM runs nub guests, once per process (the library's one process-wide cache). */
#ifndef NUB_HOST_KVM_PROBE_H
#define NUB_HOST_KVM_PROBE_H

#include "nub/nub.h"

/*
 * Run the probe now, uncached (benchmarks and tests): describe this
 * machine's KVM (API version, modules, CPU vendor and VMX/SVM flags), then
 * create a probe VM through the kvm backend's own create() (sregs, CPUID,
 * page tables built with common/ vmem at the high half), run SSE2 register
 * operations at CPL0, a 16-byte store and a load through the high-half
 * mapping and an OUT to the halt port, and check the exit and the values.
 * Fills every field of *out; out->usable and out->reason give the verdict.
 */
void nub_kvm_probe_run(struct nub_backend_info *out);

/*
 * The probe's result for this process: nub_kvm_probe_run() the first time
 * (behind pthread_once), the same result after. This is the library's one
 * piece of process-wide mutable state; it is written once and then only read.
 */
const struct nub_backend_info *nub_kvm_probe(void);

/*
 * Create and destroy one bare kvm VM with the probe's memory and page
 * tables, without running it: the baseline the probe's cost is measured
 * against (bench/kvm_probe). NUB_OK, or the create() error with err filled.
 */
nub_status nub_kvm_probe_bare_vm(char *err, size_t err_len);

/* The kvm ops' available(): the cached probe's verdict; NUB_E_NO_HYPERVISOR with its reason. */
nub_status nub_kvm_probe_available(char *why, size_t why_len);

#endif /* NUB_HOST_KVM_PROBE_H */
