/* Backend choice: the kvm probe's verdict on this machine, AUTO's fallback warning, explicit kvm refusals, NUB_BACKEND errors, the CLI's notice and info. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "nub/abi.h"

#define TG_ECHO 1

/* NUB_TEST_BACKENDS names kvm explicitly: the person running the tests says kvm must work here. */
static bool kvm_demanded(void)
{
    const char *list = getenv("NUB_TEST_BACKENDS");
    return list != NULL && *list != '\0' && backend_requested(NUB_BACKEND_KVM);
}

static struct nub_backend_info kvm_info(void)
{
    struct nub_backend_info info;
    cr_assert_eq(nub_backend_info(NUB_BACKEND_KVM, &info), NUB_OK);
    return info;
}

Test(probe, verdict_matches_this_machine)
{
    struct nub_backend_info k = kvm_info();
    cr_assert_eq(k.backend, NUB_BACKEND_KVM);
    if (kvm_demanded()) {
        cr_assert(k.usable, "NUB_TEST_BACKENDS asks for kvm, but the probe failed: %s", k.reason);
        cr_assert(k.probe_ran && k.probe_passed);
        cr_assert_eq(k.kvm_api_version, 12);
        cr_assert_str_empty(k.reason);
        return;
    }
    if (strstr(k.kvm_modules, "kvm_pvm") != NULL && k.kvm_api_version >= 0) {
        /* The machines nub is built on: kvm-pvm emulates CPL0 code and fails on SSE there. */
        cr_assert_not(k.usable, "kvm_pvm is loaded, yet the probe passed");
        cr_assert(k.probe_ran, "the probe VM was not even created: %s", k.reason);
        cr_assert_not(k.probe_passed);
        cr_assert_not_null(strstr(k.reason, "kvm at /dev/kvm cannot run nub guests"), "%s", k.reason);
        cr_assert_not_null(strstr(k.reason, "CPL0"), "%s", k.reason);
        cr_assert_not_null(strstr(k.reason, "kvm_pvm is loaded"), "%s", k.reason);
        return;
    }
    if (k.usable) {
        cr_assert(k.probe_ran && k.probe_passed);
        cr_assert_str_empty(k.reason);
    } else {
        cr_assert_gt(strlen(k.reason), 10, "an unusable kvm needs a reason");
    }
}

Test(probe, runs_once_and_agrees_with_available)
{
    struct nub_backend_info a = kvm_info(), b = kvm_info();
    char why[NUB_BACKEND_REASON_MAX];
    cr_assert_eq(a.probe_ns, b.probe_ns, "the second query ran the probe again");
    cr_assert_str_eq(a.reason, b.reason);
    nub_status rc = nub_backend_available(NUB_BACKEND_KVM, why, sizeof why);
    cr_assert_eq(rc == NUB_OK, a.usable != 0);
    cr_assert_str_eq(why, a.reason);
    cr_assert_eq(rc == NUB_OK ? NUB_OK : NUB_E_NO_HYPERVISOR, rc);
}

Test(probe, info_rejects_bad_arguments)
{
    struct nub_backend_info info;
    cr_assert_eq(nub_backend_info(NUB_BACKEND_KVM, NULL), NUB_E_INVALID);
    cr_assert_eq(nub_backend_info(NUB_BACKEND_AUTO, &info), NUB_E_INVALID);
    cr_assert_eq(nub_backend_info((enum nub_backend)42, &info), NUB_E_INVALID);
    cr_assert_eq(nub_backend_info(NUB_BACKEND_EMU, &info), NUB_OK);
    cr_assert(info.usable, "%s", info.reason);
    cr_assert_eq(info.unicorn_version[0], '2', "Unicorn %s", info.unicorn_version);
}

struct captured {
    int warnings;
    char last[NUB_BACKEND_REASON_MAX + 64];
};

static void capture_log(void *ctx, enum nub_log_source src, uint32_t level, const char *msg, size_t len)
{
    struct captured *c = ctx;
    if (src != NUB_LOG_SRC_HOST || level != NUB_LOG_LEVEL_WARN)
        return;
    c->warnings++;
    snprintf(c->last, sizeof c->last, "%.*s", (int)len, msg);
}

Test(probe, auto_takes_kvm_only_when_the_probe_passes)
{
    struct nub_backend_info k = kvm_info();
    if (!k.usable)
        require_backend(NUB_BACKEND_EMU); /* AUTO will run it there */
    struct nub_config cfg = test_config(NUB_BACKEND_AUTO);
    struct nub_error err;
    struct captured log = {0};
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err);
    cr_assert_eq(rc, NUB_OK, "%s", err.message);
    cr_assert_eq(nub_sandbox_set_log(sb, capture_log, &log), NUB_OK);
    if (k.usable) {
        cr_assert_eq(nub_sandbox_backend(sb), NUB_BACKEND_KVM);
        cr_assert_null(nub_sandbox_backend_note(sb));
        cr_assert_eq(log.warnings, 0);
    } else {
        const char *note = nub_sandbox_backend_note(sb);
        cr_assert_eq(nub_sandbox_backend(sb), NUB_BACKEND_EMU);
        cr_assert_not_null(note, "AUTO fell back to emu silently");
        cr_assert_not_null(strstr(note, "running on emu, which is not an isolation boundary: "), "%s", note);
        cr_assert_not_null(strstr(note, k.reason), "the warning lacks the probe's reason: %s", note);
        cr_assert_eq(log.warnings, 1, "the log callback did not get the warning");
        cr_assert_str_eq(log.last, note);
    }
    cr_assert_eq(nub_sandbox_evolve(sb), NUB_OK, "%s", nub_sandbox_last_error(sb)->message);
    uint8_t *out = NULL;
    size_t out_len = 0;
    cr_assert_eq(nub_call(sb, TG_ECHO, "auto", 4, &out, &out_len), NUB_OK);
    cr_assert_eq(out_len, 4);
    cr_assert_eq(memcmp(out, "auto", 4), 0);
    nub_buffer_free(out);
    nub_sandbox_destroy(sb);
}

Test(probe, explicit_emu_has_no_note)
{
    require_backend(NUB_BACKEND_EMU);
    struct nub_config cfg = test_config(NUB_BACKEND_EMU);
    struct nub_error err;
    struct captured log = {0};
    nub_sandbox *sb = NULL;
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err), NUB_OK, "%s",
                 err.message);
    cr_assert_null(nub_sandbox_backend_note(sb));
    nub_sandbox_set_log(sb, capture_log, &log);
    cr_assert_eq(log.warnings, 0);
    nub_sandbox_destroy(sb);
}

Test(probe, explicit_kvm_fails_at_creation_with_the_reason)
{
    struct nub_backend_info k = kvm_info();
    if (k.usable)
        cr_skip_test("kvm is usable on this machine: nothing to refuse");
    struct nub_config cfg = test_config(NUB_BACKEND_KVM);
    struct nub_error err;
    nub_sandbox *sb = (nub_sandbox *)1;
    nub_status rc = nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err);
    cr_assert_eq(rc, NUB_E_NO_HYPERVISOR, "%s", nub_strerror(rc));
    cr_assert_null(sb, "a sandbox was handed out");
    cr_assert_eq(err.code, NUB_E_NO_HYPERVISOR);
    cr_assert_not_null(strstr(err.message, k.reason), "%s", err.message);
    cr_assert_null(strstr(err.message, "backend failure"), "the guest ran: %s", err.message);
}

/* A backend the tests may run on here: kvm when requested and usable, else emu (or skip). */
static enum nub_backend usable_backend(void)
{
    if (backend_requested(NUB_BACKEND_KVM) && nub_backend_available(NUB_BACKEND_KVM, NULL, 0) == NUB_OK)
        return NUB_BACKEND_KVM;
    require_backend(NUB_BACKEND_EMU);
    return NUB_BACKEND_EMU;
}

Test(config, bogus_backend_env_is_an_error)
{
    struct nub_config cfg;
    struct nub_error err;
    nub_sandbox *sb = NULL;
    cr_assert_eq(setenv("NUB_BACKEND", "bogus", 1), 0);
    nub_config_default(&cfg);
    nub_status rc = nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err);
    cr_assert_eq(rc, NUB_E_INVALID, "%s", nub_strerror(rc));
    cr_assert_null(sb);
    cr_assert_not_null(strstr(err.message, "NUB_BACKEND='bogus'"), "%s", err.message);
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, NULL, &sb, &err), NUB_E_INVALID);
    cfg.backend = usable_backend(); /* an explicit choice overrides the environment */
    cr_assert_eq(nub_sandbox_new_from_file(guest_path("testguest"), NULL, &cfg, &sb, &err), NUB_OK, "%s",
                 err.message);
    nub_sandbox_destroy(sb);
    cr_assert_eq(setenv("NUB_BACKEND", "emu", 1), 0);
    nub_config_default(&cfg);
    cr_assert_eq(cfg.backend, NUB_BACKEND_EMU);
    cr_assert_eq(setenv("NUB_BACKEND", "auto", 1), 0);
    nub_config_default(&cfg);
    cr_assert_eq(cfg.backend, NUB_BACKEND_AUTO);
    unsetenv("NUB_BACKEND");
}

/* ---- the CLI -------------------------------------------------------------- */

static const char *cli_path(void)
{
    static char path[600];
    const char *cli = getenv("NUB_CLI"), *dir = getenv("NUB_GUEST_DIR");
    if (cli != NULL)
        snprintf(path, sizeof path, "%s", cli);
    else
        snprintf(path, sizeof path, "%s/../nub", dir ? dir : NUB_GUEST_DIR_DEFAULT);
    if (access(path, X_OK) != 0)
        cr_assert_fail("no CLI at %s: build it with `make all` or set NUB_CLI", path);
    return path;
}

struct cli_result {
    int status;
    char out[4096];
    char err[4096];
};

/* Run the CLI with `env` (e.g. "NUB_BACKEND=kvm", or "" for none) and `args`; capture stdout and stderr. */
static void run_cli(const char *env, const char *args, struct cli_result *r)
{
    char errfile[] = "/tmp/nub-cli-err-XXXXXX", cmd[2048];
    int fd = mkstemp(errfile);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(cmd, sizeof cmd, "env -u NUB_BACKEND %s '%s' %s 2>'%s'", env, cli_path(), args, errfile);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(r->out, 1, sizeof r->out - 1, p);
    r->out[n] = '\0';
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *e = fopen(errfile, "r");
    cr_assert_not_null(e);
    n = fread(r->err, 1, sizeof r->err - 1, e);
    r->err[n] = '\0';
    fclose(e);
    unlink(errfile);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(cli, readme_command_prints_hello_with_one_notice_on_emu)
{
    struct nub_backend_info k = kvm_info();
    struct cli_result r;
    char args[600];
    if (!k.usable)
        require_backend(NUB_BACKEND_EMU);
    snprintf(args, sizeof args, "run '%s' --call 1 --in-text 'hello, nub'", guest_path("testguest"));
    run_cli("", args, &r);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "hello, nub\n");
    if (k.usable) {
        cr_assert_str_empty(r.err, "kvm is usable, yet: %s", r.err);
        return;
    }
    cr_assert_eq(count_lines(r.err), 1, "want one notice line, got: %s", r.err);
    static const char notice[] = "nub: running on emu, which is not an isolation boundary: ";
    cr_assert_eq(strncmp(r.err, notice, sizeof notice - 1), 0, "%s", r.err);
    cr_assert_not_null(strstr(r.err, k.reason), "%s", r.err);
    snprintf(args, sizeof args, "run '%s' --call 1 --in-text 'hello, nub' --quiet", guest_path("testguest"));
    run_cli("", args, &r);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "hello, nub\n");
    cr_assert_str_empty(r.err, "--quiet still printed: %s", r.err);
}

Test(cli, explicit_kvm_refused_with_the_reason)
{
    struct nub_backend_info k = kvm_info();
    if (k.usable)
        cr_skip_test("kvm is usable on this machine: nothing to refuse");
    struct cli_result r;
    char args[600];
    snprintf(args, sizeof args, "run '%s' --call 1 --in-text hi", guest_path("testguest"));
    run_cli("NUB_BACKEND=kvm", args, &r);
    cr_assert_neq(r.status, 0);
    cr_assert_str_empty(r.out);
    cr_assert_not_null(strstr(r.err, "NUB_E_NO_HYPERVISOR"), "%s", r.err);
    cr_assert_not_null(strstr(r.err, k.reason), "%s", r.err);
    cr_assert_null(strstr(r.err, "backend failure"), "the guest ran: %s", r.err);
    run_cli("NUB_BACKEND=bogus", args, &r);
    cr_assert_neq(r.status, 0);
    cr_assert_not_null(strstr(r.err, "NUB_BACKEND='bogus'"), "%s", r.err);
}

Test(cli, info_reports_each_backend)
{
    struct nub_backend_info k = kvm_info();
    struct cli_result r;
    char want[NUB_BACKEND_REASON_MAX + 64];
    run_cli("", "info", &r);
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(want, sizeof want, "kvm: %s%s%s\n", k.usable ? "usable" : "not usable", k.usable ? "" : ": ", k.reason);
    cr_assert_not_null(strstr(r.out, want), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "KVM modules: "), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "probe: "), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "emu: usable\n  Unicorn 2."), "%s", r.out);
    cr_assert_not_null(strstr(r.out, k.usable ? "default: kvm (auto)" : "default: emu (auto)"), "%s", r.out);
    run_cli("", "info --json", &r);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(r.out[0], '{');
    snprintf(want, sizeof want, "{\"kvm\": {\"usable\": %s, \"reason\": \"%s\"", k.usable ? "true" : "false",
             k.reason);
    cr_assert_not_null(strstr(r.out, want), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\"emu\": {\"usable\": true"), "%s", r.out);
    run_cli("NUB_BACKEND=bogus", "info", &r);
    cr_assert_neq(r.status, 0, "a bad NUB_BACKEND passed for fine");
    run_cli("", "info --bogus", &r);
    cr_assert_eq(r.status, 2);
}
