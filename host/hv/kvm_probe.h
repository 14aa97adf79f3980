/* The kvm probe: proves that this machine's KVM runs nub guests, once per process (the library's one process-wide cache). */
#ifndef NUB_HOST_KVM_PROBE_H
#define NUB_HOST_KVM_PROBE_H

#include "nub/nub.h"

/*
 * The probe's result for this process: the probe run the first time
 * (nub_kvm_probe_run(), declared in the test-only host/testing.h, behind
 * pthread_once), the same result after. This is the library's one
 * piece of process-wide mutable state; it is written once and then only read.
 */
const struct nub_backend_info *nub_kvm_probe(void);

/* The kvm ops' available(): the cached probe's verdict; NUB_E_NO_HYPERVISOR with its reason. */
nub_status nub_kvm_probe_available(char *why, size_t why_len);

#endif /* NUB_HOST_KVM_PROBE_H */
