/* Test guest: well-behaved functions (echo, add, host calls, replies, logging, environment) and the init hook. */
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "nub/guest.h"
#include "testguest.h"

static uint32_t tg_echo(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    uint8_t *out = nub_reply_reserve(r, in_len);
    if (out == NULL)
        return nub_reply_error(r, NUB_STATUS_TOO_LARGE, "echo: %zu bytes do not fit", in_len);
    memcpy(out, in, in_len);
    return NUB_STATUS_OK;
}

static uint32_t tg_add(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    if (in_len != 16)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "add: want 16 bytes, got %zu", in_len);
    uint8_t *out = nub_reply_reserve(r, 8);
    if (out == NULL)
        return NUB_STATUS_TOO_LARGE;
    nub_store_le64(out, nub_load_le64(in) + nub_load_le64(in + 8));
    return NUB_STATUS_OK;
}

/* Map a host-call result onto this call's status and error message. */
static uint32_t host_failure(struct nub_reply *r, const struct nub_host_result *res)
{
    /* A status the SDK made up (request too large) passes through as is. */
    uint32_t status = res->from_host ? NUB_STATUS_HOST_ERROR : res->status;
    return nub_reply_error(r, status, "%.*s", (int)res->error_len, res->error);
}

static uint32_t tg_host_call(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    if (in_len < 4)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "host_call: want u32 fn_id + bytes");
    struct nub_host_result res;
    uint32_t st = nub_host_call_begin(nub_load_le32(in), in + 4, in_len - 4, &res);
    if (st != NUB_STATUS_OK) {
        st = host_failure(r, &res);
        nub_host_call_end(&res);
        return st;
    }
    st = nub_reply_set(r, res.data, res.len);
    nub_host_call_end(&res);
    if (st != NUB_STATUS_OK)
        return nub_reply_error(r, st, "host_call: host result of %zu bytes does not fit", res.len);
    return NUB_STATUS_OK;
}

static uint32_t tg_host_call_loop(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    if (in_len != 8)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "host_call_loop: want u32 fn_id + u32 count");
    uint32_t id = nub_load_le32(in), count = nub_load_le32(in + 4);
    for (uint32_t i = 0; i < count; i++) {
        struct nub_host_result res;
        uint32_t st = nub_host_call_begin(id, NULL, 0, &res);
        nub_host_call_end(&res);
        if (st != NUB_STATUS_OK)
            return nub_reply_error(r, st, "host_call_loop: call %u failed", i);
    }
    return NUB_STATUS_OK;
}

static uint32_t tg_return_n(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    if (in_len != 8)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "return_n: want u64 N");
    uint64_t n = nub_load_le64(in);
    size_t cap = nub_reply_capacity(r);
    if (n > cap)
        return nub_reply_error(r, NUB_STATUS_TOO_LARGE,
                               "return_n: %llu bytes requested, %zu fit",
                               (unsigned long long)n, cap);
    uint8_t *out = nub_reply_reserve(r, (size_t)n);
    for (uint64_t i = 0; i < n; i++)
        out[i] = (uint8_t)i;
    return NUB_STATUS_OK;
}

static uint32_t tg_init_data(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    size_t len;
    const uint8_t *data = nub_init_data(&len);
    return nub_reply_set(r, data, len);
}

static uint32_t put_u64(struct nub_reply *r, uint64_t v)
{
    uint8_t *out = nub_reply_reserve(r, 8);
    if (out == NULL)
        return NUB_STATUS_TOO_LARGE;
    nub_store_le64(out, v);
    return NUB_STATUS_OK;
}

static uint32_t put_u32(struct nub_reply *r, uint32_t v)
{
    uint8_t *out = nub_reply_reserve(r, 4);
    if (out == NULL)
        return NUB_STATUS_TOO_LARGE;
    nub_store_le32(out, v);
    return NUB_STATUS_OK;
}

static uint32_t tg_guest_counter(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    return put_u64(r, nub_guest_counter());
}

static uint32_t tg_log_levels(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    uint32_t sent = 0;
    for (uint32_t lvl = NUB_LOG_LEVEL_ERROR; lvl <= NUB_LOG_LEVEL_TRACE; lvl++) {
        if (nub_log(lvl, "testguest level %u: %.*s", lvl, (int)in_len, (const char *)in) == 1)
            sent++;
    }
    return put_u32(r, sent);
}

static uint32_t tg_fail(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    return nub_reply_error(r, NUB_STATUS_GUEST_ERROR, NUB_TG_FAIL_MSG);
}

static uint32_t tg_fail_with(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    return nub_reply_error(r, NUB_STATUS_GUEST_ERROR, "%.*s", (int)in_len, (const char *)in);
}

static uint32_t tg_info(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    const struct nub_peb *peb = nub_peb();
    uint64_t rsp;
    __asm__ volatile("movq %%rsp, %0" : "=r"(rsp));
    struct nub_tg_info info = {
        .seed = nub_seed(), .page_size = nub_page_size(), .max_log_level = nub_max_log_level(),
        .peb_gva = (uint64_t)(uintptr_t)peb,
        .input_gva = peb->input_gva, .input_size = peb->input_size,
        .output_gva = peb->output_gva, .output_size = peb->output_size,
        .heap_gva = peb->heap_gva, .heap_size = peb->heap_size,
        .init_data_gva = peb->init_data_gva, .init_data_size = peb->init_data_size,
        .stack_gva = peb->stack_gva, .stack_size = peb->stack_size,
        .scratch_gva = peb->scratch_gva, .scratch_size = peb->scratch_size,
        .dispatch_gva = peb->dispatch_gva, .rsp = rsp,
    };
    return nub_reply_set(r, &info, sizeof(info));
}

static uint32_t tg_noop(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    (void)r;
    return NUB_STATUS_OK;
}

static uint32_t tg_log_flood(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    uint32_t count = in_len == 4 ? nub_load_le32(in) : NUB_TG_LOG_FLOOD_DEFAULT;
    uint32_t sent = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (nub_log(NUB_LOG_LEVEL_ERROR, "flood %u", i) == 1)
            sent++;
    }
    return put_u32(r, sent);
}

static uint32_t tg_missing_host_fn(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    struct nub_host_result res;
    uint32_t st = nub_host_call_begin(NUB_TG_MISSING_HOST_FN, NULL, 0, &res);
    uint8_t *out = nub_reply_reserve(r, 4 + res.error_len);
    if (out != NULL) {
        nub_store_le32(out, st);
        memcpy(out + 4, res.error, res.error_len);
    }
    nub_host_call_end(&res);
    return out != NULL ? NUB_STATUS_OK : NUB_STATUS_TOO_LARGE;
}

static uint32_t tg_reply_then_call(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    if (in_len < 4)
        return nub_reply_error(r, NUB_STATUS_BAD_PAYLOAD, "reply_then_call: want u32 fn_id + bytes");
    size_t n = in_len - 4;
    uint8_t *out = nub_reply_reserve(r, n);
    if (out == NULL)
        return nub_reply_error(r, NUB_STATUS_TOO_LARGE, "reply_then_call: %zu bytes do not fit", n);
    memcpy(out, in + 4, n);
    nub_log(NUB_LOG_LEVEL_INFO, "reply_then_call: staged %zu bytes", n);
    struct nub_host_result res;
    /* The request's bytes come from the staged reply itself. */
    if (nub_host_call_begin(nub_load_le32(in), out, n, &res) != NUB_STATUS_OK) {
        uint32_t st = host_failure(r, &res);
        nub_host_call_end(&res);
        return st;
    }
    uint32_t st = nub_reply_append(r, res.data, res.len);
    nub_host_call_end(&res);
    if (st != NUB_STATUS_OK)
        return nub_reply_error(r, st, "reply_then_call: result does not fit");
    return memcmp(out, in + 4, n) == 0
               ? NUB_STATUS_OK
               : nub_reply_error(r, NUB_STATUS_GUEST_ERROR, "reply_then_call: staged bytes changed");
}

static uint32_t tg_print(const uint8_t *in, size_t in_len, struct nub_reply *r)
{
    (void)in;
    (void)in_len;
    (void)r;
    nub_print("testguest\n");
    return NUB_STATUS_OK;
}

void nub_tg_register_basic(void)
{
    static const struct {
        uint32_t id;
        nub_guest_fn fn;
    } fns[] = {
        {NUB_TG_FN_ECHO, tg_echo},
        {NUB_TG_FN_ADD, tg_add},
        {NUB_TG_FN_HOST_CALL, tg_host_call},
        {NUB_TG_FN_RETURN_N, tg_return_n},
        {NUB_TG_FN_INIT_DATA, tg_init_data},
        {NUB_TG_FN_GUEST_COUNTER, tg_guest_counter},
        {NUB_TG_FN_LOG_LEVELS, tg_log_levels},
        {NUB_TG_FN_FAIL, tg_fail},
        {NUB_TG_FN_INFO, tg_info},
        {NUB_TG_FN_NOOP, tg_noop},
        {NUB_TG_FN_LOG_FLOOD, tg_log_flood},
        {NUB_TG_FN_MISSING_HOST_FN, tg_missing_host_fn},
        {NUB_TG_FN_REPLY_THEN_CALL, tg_reply_then_call},
        {NUB_TG_FN_FAIL_WITH, tg_fail_with},
        {NUB_TG_FN_PRINT, tg_print},
        {NUB_TG_FN_HOST_CALL_LOOP, tg_host_call_loop},
    };
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        if (nub_register(fns[i].id, fns[i].fn) != NUB_REG_OK)
            nub_panic("testguest: cannot register fn %u", fns[i].id);
    }
}

void nub_guest_init(void)
{
    nub_tg_register_basic();
    nub_tg_register_faults();
    nub_tg_register_heap();
    nub_tg_register_hostile();
    nub_log(NUB_LOG_LEVEL_DEBUG, "testguest: ready");
}
