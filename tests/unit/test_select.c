/* Backend choice without a VM: the runtime KVM_EXIT_INTERNAL_ERROR hint and NUB_BACKEND parsing into nub_config. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/internal.h"

Test(select, internal_error_on_kvm_points_to_the_docs)
{
    const char *h = nub_backend_failure_hint(
        NUB_BACKEND_KVM, "KVM_EXIT_INTERNAL_ERROR: suberror 1 (instruction emulation failed) at rip 0x1");
    cr_assert_not_null(strstr(h, "docs/backends.md"), "%s", h);
    cr_assert_not_null(strstr(h, "KVMs that cannot run nub guests"), "%s", h);
    cr_assert_not_null(strstr(h, "NUB_BACKEND=emu"), "%s", h);
}

Test(select, other_failures_get_no_hint)
{
    cr_assert_str_empty(nub_backend_failure_hint(NUB_BACKEND_KVM, "KVM_RUN: Bad address"));
    cr_assert_str_empty(nub_backend_failure_hint(NUB_BACKEND_EMU, "KVM_EXIT_INTERNAL_ERROR"));
}

Test(select, bad_env_value_fails_normalisation)
{
    struct nub_config in, out;
    struct nub_error err;
    cr_assert_eq(setenv("NUB_BACKEND", "", 1), 0);
    nub_config_default(&in);
    cr_assert_eq(nub_config_normalise(&in, &out, &err), NUB_E_INVALID);
    cr_assert_not_null(strstr(err.message, "NUB_BACKEND=''"), "%s", err.message);
    cr_assert_eq(setenv("NUB_BACKEND", "KVM", 1), 0); /* names are lower case */
    nub_config_default(&in);
    cr_assert_eq(nub_config_normalise(&in, &out, &err), NUB_E_INVALID);
    cr_assert_eq(setenv("NUB_BACKEND", "kvm", 1), 0);
    nub_config_default(&in);
    cr_assert_eq(in.backend, NUB_BACKEND_KVM);
    cr_assert_eq(nub_config_normalise(&in, &out, &err), NUB_OK, "%s", err.message);
    unsetenv("NUB_BACKEND");
}
