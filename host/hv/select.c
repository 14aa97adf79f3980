/* Backend availability, facts and choice: kvm only when the kvm probe passes, emu never silently. */
#include <stdio.h>
#include <string.h>
#include <unicorn/unicorn.h>

#include "../internal.h"
#include "kvm_probe.h"

static const struct nub_hv_ops *ops_for(enum nub_backend b)
{
    switch (b) {
    case NUB_BACKEND_EMU: return nub_hv_emu_ops();
    case NUB_BACKEND_KVM: return nub_hv_kvm_ops();
    default: return NULL;
    }
}

nub_status nub_backend_available(enum nub_backend backend, char *why, size_t why_len)
{
    if (backend == NUB_BACKEND_AUTO) {
        if (nub_backend_available(NUB_BACKEND_KVM, NULL, 0) == NUB_OK)
            return NUB_OK;
        return nub_backend_available(NUB_BACKEND_EMU, why, why_len);
    }
    const struct nub_hv_ops *ops = ops_for(backend);
    if (ops == NULL) {
        nub_hv_fmt(why, why_len, "unknown backend %d", (int)backend);
        return NUB_E_NO_HYPERVISOR;
    }
    return ops->available(why, why_len);
}

static void emu_info(struct nub_backend_info *info)
{
    unsigned major = 0, minor = 0;
    uc_version(&major, &minor);
    memset(info, 0, sizeof *info);
    info->backend = NUB_BACKEND_EMU;
    info->kvm_api_version = -1;
    snprintf(info->unicorn_version, sizeof info->unicorn_version, "%u.%u", major, minor);
    info->usable = nub_backend_available(NUB_BACKEND_EMU, info->reason, sizeof info->reason) == NUB_OK;
}

nub_status nub_backend_info(enum nub_backend backend, struct nub_backend_info *info)
{
    if (info == NULL)
        return NUB_E_INVALID;
    if (backend == NUB_BACKEND_KVM) {
        *info = *nub_kvm_probe();
        return NUB_OK;
    }
    if (backend == NUB_BACKEND_EMU) {
        emu_info(info);
        return NUB_OK;
    }
    return NUB_E_INVALID;
}

nub_status nub_backend_pick(enum nub_backend want, const struct nub_hv_ops **ops,
                            enum nub_backend *chosen, char *note, size_t note_len,
                            struct nub_error *err)
{
    char why[NUB_BACKEND_REASON_MAX] = "";
    nub_hv_fmt(note, note_len, "%s", "");
    if (want == NUB_BACKEND_AUTO) {
        want = NUB_BACKEND_KVM;
        if (nub_backend_available(NUB_BACKEND_KVM, why, sizeof why) != NUB_OK) {
            want = NUB_BACKEND_EMU;
            nub_hv_fmt(note, note_len, "running on emu, which is not an isolation boundary: %s", why);
        }
    }
    if (nub_backend_available(want, why, sizeof why) != NUB_OK)
        return nub_err_set(err, NUB_E_NO_HYPERVISOR, "backend %s unavailable: %s", nub_backend_name(want), why);
    *ops = ops_for(want);
    *chosen = want;
    return NUB_OK;
}

const char *nub_backend_failure_hint(enum nub_backend backend, const char *msg)
{
    if (backend != NUB_BACKEND_KVM || strstr(msg, "KVM_EXIT_INTERNAL_ERROR") == NULL)
        return "";
    return "; KVM could not execute or emulate a guest instruction, so this KVM cannot run this guest "
           "(see 'KVMs that cannot run nub guests' in docs/backends.md; NUB_BACKEND=emu runs it emulated, "
           "without isolation)";
}
