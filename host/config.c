/* Configuration defaults and validation, backend names (availability and selection: hv/select.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "internal.h"

#define DEFAULT_MAX_IMAGE (64ull * 1024 * 1024)

/* $NUB_BACKEND: AUTO when unset, NUB_BACKEND_BAD_ENV for a value that names no backend. */
static enum nub_backend backend_from_env(void)
{
    const char *v = getenv("NUB_BACKEND");
    if (v == NULL || strcmp(v, "auto") == 0)
        return NUB_BACKEND_AUTO;
    if (strcmp(v, "kvm") == 0)
        return NUB_BACKEND_KVM;
    if (strcmp(v, "emu") == 0)
        return NUB_BACKEND_EMU;
    return NUB_BACKEND_BAD_ENV;
}

/* NUB_GDB_PORT: a port, "any", or (anything else) a value creation rejects. */
static uint32_t gdb_port_from_env(void)
{
    const char *v = getenv("NUB_GDB_PORT");
    if (v == NULL || *v == '\0')
        return 0;
    if (strcmp(v, "any") == 0)
        return NUB_GDB_PORT_ANY;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    return *end == '\0' && v[0] != '-' && n <= 65535 ? (uint32_t)n : UINT32_MAX;
}

void nub_config_default(struct nub_config *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->heap_size = NUB_DEFAULT_HEAP_SIZE;
    cfg->stack_size = NUB_DEFAULT_STACK_SIZE;
    cfg->input_size = NUB_DEFAULT_INPUT_SIZE;
    cfg->output_size = NUB_DEFAULT_OUTPUT_SIZE;
    cfg->scratch_size = 0;
    cfg->max_image_size = DEFAULT_MAX_IMAGE;
    cfg->backend = backend_from_env();
    cfg->max_guest_log_level = NUB_LOG_LEVEL_ERROR;
    cfg->call_timeout_ms = 0;
    const char *core = getenv("NUB_CORE_DUMP");
    cfg->guest_core_dump = core != NULL && strcmp(core, "1") == 0;
    cfg->gdb_port = gdb_port_from_env();
}

const char *nub_backend_name(enum nub_backend backend)
{
    switch (backend) {
    case NUB_BACKEND_AUTO: return "auto";
    case NUB_BACKEND_KVM: return "kvm";
    case NUB_BACKEND_EMU: return "emu";
    default: return "unknown";
    }
}

/* Default a zero size (dflt 0 keeps it 0), round it up to a page and bound it by
 * what the guest's address space can hold; NUB_E_LAYOUT naming the field otherwise. */
static nub_status norm_size(const char *name, uint64_t *v, uint64_t dflt, struct nub_error *err)
{
    uint64_t r;
    if (*v == 0)
        *v = dflt;
    if (!nub_align_up_u64(*v, NUB_PAGE_SIZE, &r) || r > NUB_MAX_REGIONS_SIZE)
        return nub_err_set(err, NUB_E_LAYOUT, "config.%s = %llu is larger than the %llu bytes of the guest address space",
                           name, (unsigned long long)*v, (unsigned long long)NUB_MAX_REGIONS_SIZE);
    *v = r;
    return NUB_OK;
}

/* Like norm_size, but the value is only bounded, not rounded (max_image_size compares bytes). */
static nub_status bound_size(const char *name, uint64_t *v, uint64_t dflt, struct nub_error *err)
{
    if (*v == 0)
        *v = dflt;
    if (*v > NUB_MAX_REGIONS_SIZE)
        return nub_err_set(err, NUB_E_LAYOUT, "config.%s = %llu is larger than the %llu bytes of the guest address space",
                           name, (unsigned long long)*v, (unsigned long long)NUB_MAX_REGIONS_SIZE);
    return NUB_OK;
}

nub_status nub_config_normalise(const struct nub_config *in, struct nub_config *out,
                                struct nub_error *err)
{
    struct nub_config d;
    nub_config_default(&d);
    *out = in ? *in : d;
    nub_status rc = NUB_OK;
    if ((rc = norm_size("heap_size", &out->heap_size, d.heap_size, err)) != NUB_OK ||
        (rc = norm_size("stack_size", &out->stack_size, d.stack_size, err)) != NUB_OK ||
        (rc = norm_size("input_size", &out->input_size, d.input_size, err)) != NUB_OK ||
        (rc = norm_size("output_size", &out->output_size, d.output_size, err)) != NUB_OK ||
        (rc = norm_size("scratch_size", &out->scratch_size, 0, err)) != NUB_OK ||
        (rc = bound_size("max_image_size", &out->max_image_size, d.max_image_size, err)) != NUB_OK)
        return rc;
    if (out->max_guest_log_level > NUB_LOG_LEVEL_TRACE)
        return nub_err_set(err, NUB_E_INVALID, "config.max_guest_log_level %u is above NUB_LOG_LEVEL_TRACE",
                           out->max_guest_log_level);
    if (out->backend == NUB_BACKEND_BAD_ENV && getenv("NUB_BACKEND") != NULL)
        return nub_err_set(err, NUB_E_INVALID, "NUB_BACKEND='%.64s' is not a backend: use auto, kvm or emu",
                           getenv("NUB_BACKEND"));
    if (out->backend != NUB_BACKEND_AUTO && out->backend != NUB_BACKEND_KVM &&
        out->backend != NUB_BACKEND_EMU)
        return nub_err_set(err, NUB_E_INVALID, "config.backend %d is not a nub_backend", (int)out->backend);
    if (out->gdb_port > NUB_GDB_PORT_ANY)
        return nub_err_set(err, NUB_E_INVALID, "config.gdb_port %u is not a port (1-65535), NUB_GDB_PORT_ANY or 0 "
                           "(NUB_GDB_PORT must be a port number or \"any\")", out->gdb_port);
    return NUB_OK;
}
