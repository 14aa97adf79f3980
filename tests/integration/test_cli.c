/* The nub CLI (build/nub) as a user runs it: each usage error's exact one-line message and exit status, --help, --version, the man page, and every option of `nub run` on each usable backend. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../guests/testguest/testguest.h"
#include "harness.h"

extern char **environ;

/* What one run of the CLI did. */
struct cli {
    int status; /* exit status, -1 when killed by a signal */
    char *out;  /* stdout, NUL-terminated (out_len bytes before it) */
    size_t out_len;
    char *err; /* stderr, NUL-terminated */
};

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    for (size_t got; b != NULL && (got = fread(b + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap)
            b = realloc(b, (cap *= 2) + 1);
    }
    cr_assert_not_null(b);
    fclose(f);
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

/* The environment without the variables that change the CLI's defaults, plus `extra` (may be NULL). */
static char **test_env(const char *extra)
{
    static const char *const drop[] = {"NUB_BACKEND=", "NUB_LOG=", "NUB_GDB_PORT=", "NUB_CORE_DUMP=", NULL};
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    cr_assert_not_null(env);
    for (size_t i = 0; i < n; i++) {
        int keep = 1;
        for (const char *const *d = drop; *d; d++)
            keep &= strncmp(environ[i], *d, strlen(*d)) != 0;
        if (keep)
            env[k++] = environ[i];
    }
    if (extra)
        env[k++] = (char *)extra;
    return env;
}

/* Run the CLI with the NULL-terminated arguments (after "nub"), `env_extra` added to its environment. */
static void cli_argv(struct cli *r, const char *env_extra, const char *const *args)
{
    char out_path[] = "/tmp/nub-cli-out-XXXXXX", err_path[] = "/tmp/nub-cli-err-XXXXXX";
    int fo = mkstemp(out_path), fe = mkstemp(err_path);
    cr_assert(fo >= 0 && fe >= 0);
    const char *argv[64];
    size_t n = 0;
    argv[n++] = nub_cli_path();
    for (; *args != NULL; args++) {
        cr_assert_lt(n, 63);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fo, 1);
    posix_spawn_file_actions_adddup2(&fa, fe, 2);
    char **env = test_env(env_extra);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, env);
    cr_assert_eq(rc, 0, "cannot run %s: %s (build it with `make all` or set NUB_CLI)", argv[0], strerror(rc));
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fo);
    close(fe);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->out = slurp(out_path, &r->out_len);
    r->err = slurp(err_path, NULL);
    unlink(out_path);
    unlink(err_path);
}

#define CLI(r, ...) cli_argv((r), NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CLI_ENV(r, env, ...) cli_argv((r), (env), (const char *const[]){__VA_ARGS__, NULL})

static void cli_free(struct cli *r)
{
    free(r->out);
    free(r->err);
}

/* A usage error: exit 2, nothing on stdout, exactly `line` on stderr. */
static void expect_usage(struct cli *r, const char *line)
{
    cr_assert_eq(r->status, 2, "exit %d, stderr: %s", r->status, r->err);
    cr_assert_str_empty(r->out, "stdout: %s", r->out);
    cr_assert_str_eq(r->err, line);
    cli_free(r);
}

#define USAGE(line, ...)              \
    do {                              \
        struct cli r_;                \
        CLI(&r_, __VA_ARGS__);        \
        expect_usage(&r_, line "\n"); \
    } while (0)

/* Exit 0 with exactly `out` on stdout and nothing on stderr. */
static void expect_ok(struct cli *r, const char *out)
{
    cr_assert_eq(r->status, 0, "exit %d, stderr: %s", r->status, r->err);
    cr_assert_str_empty(r->err, "stderr: %s", r->err);
    cr_assert_str_eq(r->out, out);
    cli_free(r);
}

static const char *tg(void)
{
    return guest_path("testguest");
}

/* A temporary file holding `len` bytes of `data`; path in buf. */
static void temp_file(char *buf, size_t cap, const void *data, size_t len)
{
    snprintf(buf, cap, "/tmp/nub-cli-file-XXXXXX");
    int fd = mkstemp(buf);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* ---- help, version, man page -------------------------------------------------- */

Test(cli, help_of_every_command_exits_0_on_stdout)
{
    static const struct {
        const char *args[6];
        const char *starts;
    } cases[] = {
        {{"--help"}, "usage: nub run GUEST.elf"},
        {{"-h"}, "usage: nub run GUEST.elf"},
        {{"help"}, "usage: nub run GUEST.elf"},
        {{"run", "--help"}, "usage: nub run GUEST.elf --call FN [OPTION]...\n"},
        {{"run", "-h"}, "usage: nub run GUEST.elf --call FN [OPTION]...\n"},
        {{"run", "x.elf", "--call", "1", "--help"}, "usage: nub run GUEST.elf"},
        {{"snapshot", "--help"}, "usage: nub snapshot GUEST.elf -o FILE"},
        {{"info", "--help"}, "usage: nub info [--json]\n"},
        {{"caps", "--help"}, "usage: nub caps hash FILE...\n       nub caps put"},
        {{"caps", "hash", "--help"}, "usage: nub caps hash FILE...\n\n"},
        {{"caps", "put", "-h"}, "usage: nub caps put [--kernel NUBK.elf]"},
        {{"help", "caps", "put"}, "usage: nub caps put [--kernel NUBK.elf]"},
        {{"help", "run"}, "usage: nub run GUEST.elf --call FN [OPTION]...\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cli r;
        const char *const *a = cases[i].args;
        cli_argv(&r, NULL, a);
        cr_assert_eq(r.status, 0, "%s %s: exit %d: %s", a[0], a[1] ? a[1] : "", r.status, r.err);
        cr_assert_str_empty(r.err, "%s: %s", a[0], r.err);
        cr_assert_eq(strncmp(r.out, cases[i].starts, strlen(cases[i].starts)), 0, "%s %s: %s", a[0],
                     a[1] ? a[1] : "", r.out);
        cli_free(&r);
    }
    struct cli r;
    CLI(&r, "--help");
    cr_assert(strstr(r.out, "\nExit status:\n  0 ") != NULL && strstr(r.out, "\n  2           usage error") != NULL,
              "the exit statuses are documented: %s", r.out);
    cr_assert(strstr(r.out, "\nEnvironment:\n  NUB_BACKEND ") != NULL, "%s", r.out);
    cli_free(&r);
}

Test(cli, version_prints_the_makefile_version)
{
    struct cli r;
    CLI(&r, "--version");
    expect_ok(&r, "nub 0.1.0\n");
    USAGE("nub: unexpected argument 'x'; see 'nub --help'", "--version", "x");
}

/* Every line of `text` of the form "  --opt ..." or "  -x, --opt ...": the option names into opts. */
static size_t help_options(const char *text, char opts[][32], size_t max)
{
    size_t n = 0;
    for (const char *l = text; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *o = strncmp(l, "  -", 3) == 0 ? l + 2 : NULL;
        if (o != NULL && o[1] != '-' && strncmp(o + 2, ", --", 4) == 0)
            o += 4; /* "-v, --verbose": check the long name */
        if (o == NULL || n == max)
            continue;
        size_t len = strcspn(o, " \n=");
        cr_assert_lt(len, 32);
        memcpy(opts[n], o, len);
        opts[n++][len] = '\0';
    }
    return n;
}

/* `name` as it appears in roff (each '-' written \-). */
static void roff_name(const char *name, char *out, size_t cap)
{
    size_t k = 0;
    for (; *name && k + 3 < cap; name++) {
        if (*name == '-')
            out[k++] = '\\';
        out[k++] = *name;
    }
    out[k] = '\0';
}

Test(cli, man_page_lints_clean_and_documents_every_option_of_the_help)
{
    char man[700], cmd[1500];
    snprintf(man, sizeof man, "%s.1", nub_cli_path());
    if (access(man, R_OK) != 0 && getenv("NUB_GUEST_DIR") != NULL)
        cr_skip_test("no man page next to a relocated CLI (%s): it is checked in the build tree", man);
    cr_assert_eq(access(man, R_OK), 0, "%s is missing: make all builds it", man);
    cr_assert_eq(system("command -v groff >/dev/null"), 0, "groff is missing: run tools/deps.sh test (groff-base)");
    snprintf(cmd, sizeof cmd, "groff -man -ww -z '%s' 2>&1", man);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char warnings[4096];
    size_t n = fread(warnings, 1, sizeof warnings - 1, p);
    warnings[n] = '\0';
    cr_assert_eq(pclose(p), 0);
    cr_assert_str_empty(warnings, "groff warns about %s: %s", man, warnings);
    char *page = slurp(man, NULL);
    static const char *const sections[] = {".SH NAME\n", ".SH SYNOPSIS\n", ".SH DESCRIPTION\n", ".SH COMMANDS\n",
                                           ".SS \"nub run\"\n", ".SS \"nub caps put\"\n", ".SH EXIT STATUS\n",
                                           ".SH ENVIRONMENT\n", ".SH EXAMPLES\n"};
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        cr_assert(strstr(page, sections[i]) != NULL, "no %s in %s", sections[i], man);
    static const char *const commands[] = {"run", "snapshot", "info", "caps put"};
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        struct cli r;
        if (strcmp(commands[c], "caps put") == 0)
            CLI(&r, "caps", "put", "--help");
        else
            CLI(&r, commands[c], "--help");
        char opts[64][32], want[80];
        size_t k = help_options(r.out, opts, 64);
        cr_assert_gt(k, 1, "%s --help lists no options", commands[c]);
        for (size_t i = 0; i < k; i++) {
            roff_name(opts[i], want, sizeof want);
            cr_assert(strstr(page, want) != NULL, "%s --help has %s, the man page not", commands[c], opts[i]);
        }
        cli_free(&r);
    }
    free(page);
}

/* ---- usage errors ------------------------------------------------------------------ */

Test(cli, bad_call_number_is_named)
{
    USAGE("nub: --call needs a number, got 'x'; see 'nub run --help'", "run", tg(), "--call", "x");
    USAGE("nub: --call needs a number, got '-1'; see 'nub run --help'", "run", tg(), "--call", "-1");
    USAGE("nub: --call needs a number, got ''; see 'nub run --help'", "run", tg(), "--call", "");
    USAGE("nub: --call needs a number from 0 to 4294967295, got '4294967296'; see 'nub run --help'", "run", tg(),
          "--call", "4294967296");
    USAGE("nub: --call needs a number, got '1x'; see 'nub run --help'", "run", tg(), "--call=1x");
    USAGE("nub: --call needs a number, got 'y'; see 'nub snapshot --help'", "snapshot", tg(), "-o", "/tmp/x",
          "--call", "y");
}

Test(cli, missing_guest_file_is_named)
{
    USAGE("nub: cannot read GUEST.elf '/nonexistent/g.elf': No such file or directory; see 'nub run --help'", "run",
          "/nonexistent/g.elf", "--call", "1");
    USAGE("nub: cannot read --snapshot '/nonexistent/s.snap': No such file or directory; see 'nub run --help'",
          "run", "--snapshot", "/nonexistent/s.snap", "--call", "1");
    USAGE("nub: cannot read GUEST.elf '/nonexistent/g.elf': No such file or directory; see 'nub snapshot --help'",
          "snapshot", "/nonexistent/g.elf", "-o", "/tmp/x");
    USAGE("nub: cannot read SNAPSHOT_FILE '/nonexistent/s.snap': No such file or directory; see 'nub info --help'",
          "info", "/nonexistent/s.snap");
}

Test(cli, unknown_options_and_commands_are_named)
{
    USAGE("nub: unknown option '--bogus'; see 'nub run --help'", "run", tg(), "--call", "1", "--bogus");
    USAGE("nub: unknown option '--bogus'; see 'nub run --help'", "run", tg(), "--bogus=3");
    USAGE("nub: unknown option '-x'; see 'nub snapshot --help'", "snapshot", tg(), "-x");
    USAGE("nub: unknown option '--bogus'; see 'nub info --help'", "info", "--bogus");
    USAGE("nub: unknown option '--kernel'; see 'nub caps hash --help'", "caps", "hash", "--kernel", "k", "f");
    USAGE("nub: unknown option '--bogus'; see 'nub caps put --help'", "caps", "put", "--bogus", "f");
    USAGE("nub: unknown option '--bogus'; see 'nub --help'", "--bogus");
    USAGE("nub: unknown command 'walk'; see 'nub --help'", "walk");
    USAGE("nub: unknown caps command 'list' (hash or put); see 'nub caps --help'", "caps", "list");
    USAGE("nub: missing the command (run, snapshot, info, caps or help); see 'nub --help'", NULL);
    USAGE("nub: missing the caps command: hash or put; see 'nub caps --help'", "caps");
    USAGE("nub: no help for 'walk' (commands: run, snapshot, info, caps); see 'nub --help'", "help", "walk");
    USAGE("nub: no help for 'caps put x' (commands: run, snapshot, info, caps); see 'nub --help'", "help", "caps",
          "put", "x");
    USAGE("nub: --json takes no value, got '1'; see 'nub run --help'", "run", tg(), "--call", "1", "--json=1");
}

Test(cli, repeated_options_are_refused)
{
    USAGE("nub: --call given twice; see 'nub run --help'", "run", tg(), "--call", "1", "--call", "2");
    USAGE("nub: --backend given twice; see 'nub run --help'", "run", tg(), "--call", "1", "--backend", "emu",
          "--backend=kvm");
    USAGE("nub: --json given twice; see 'nub run --help'", "run", tg(), "--call", "1", "--json", "--json");
    USAGE("nub: --quiet given twice; see 'nub run --help'", "run", tg(), "--call", "1", "-q", "--quiet");
    USAGE("nub: --host-fn 7 given twice; see 'nub run --help'", "run", tg(), "--call", "3", "--host-fn", "7=echo",
          "--host-fn", "0x7=fail");
    USAGE("nub: --out-file given twice; see 'nub snapshot --help'", "snapshot", tg(), "-o", "a", "--out-file", "b");
    USAGE("nub: --json given twice; see 'nub info --help'", "info", "--json", "--json");
}

Test(cli, missing_values_and_arguments_are_named)
{
    USAGE("nub: --call needs a value (FN); see 'nub run --help'", "run", tg(), "--call");
    USAGE("nub: --in-file needs a value (FILE); see 'nub run --help'", "run", tg(), "--call", "1", "--in-file");
    USAGE("nub: --host-fn needs a value (ID=ACTION); see 'nub run --help'", "run", tg(), "--call", "1", "--host-fn");
    USAGE("nub: missing --call FN; see 'nub run --help'", "run", tg());
    USAGE("nub: missing GUEST.elf (or --snapshot FILE); see 'nub run --help'", "run", "--call", "1");
    USAGE("nub: give GUEST.elf or --snapshot FILE, not both; see 'nub run --help'", "run", tg(), "--snapshot", "s",
          "--call", "1");
    USAGE("nub: unexpected argument 'second.elf'; see 'nub run --help'", "run", tg(), "second.elf", "--call", "1");
    USAGE("nub: missing GUEST.elf; see 'nub snapshot --help'", "snapshot", "-o", "x");
    USAGE("nub: missing -o FILE; see 'nub snapshot --help'", "snapshot", tg());
    USAGE("nub: -o needs a value (FILE); see 'nub snapshot --help'", "snapshot", tg(), "-o");
    USAGE("nub: missing FILE; see 'nub caps hash --help'", "caps", "hash");
    USAGE("nub: missing FILE; see 'nub caps put --help'", "caps", "put", "--backend", "emu");
    USAGE("nub: unexpected argument 'b'; see 'nub info --help'", "info", "a", "b");
}

Test(cli, mixed_inputs_are_refused_by_name)
{
    USAGE("nub: --in and --in-text cannot be used together; see 'nub run --help'", "run", tg(), "--call", "1", "--in",
          "00", "--in-text", "a");
    USAGE("nub: --in-text and --in-file cannot be used together; see 'nub run --help'", "run", tg(), "--call", "1",
          "--in-text", "a", "--in-file", "/etc/hostname");
    USAGE("nub: --in-file and --in cannot be used together; see 'nub run --help'", "run", tg(), "--call", "1",
          "--in-file", "/etc/hostname", "--in", "00");
    USAGE("nub: --in and --in-text given for one --call; see 'nub snapshot --help'", "snapshot", tg(), "-o", "x",
          "--call", "2", "--in", "00", "--in-text", "a");
    USAGE("nub: --in comes before any --call; see 'nub snapshot --help'", "snapshot", tg(), "-o", "x", "--in", "00",
          "--call", "1");
}

Test(cli, conflicting_output_options_are_refused)
{
    USAGE("nub: --hex and --raw cannot be used together; see 'nub run --help'", "run", tg(), "--call", "1", "--hex",
          "--raw");
    USAGE("nub: --text and --json cannot be used together; see 'nub run --help'", "run", tg(), "--call", "1", "--text",
          "--json");
    USAGE("nub: --json and --metrics cannot be used together; see 'nub run --help'", "run", tg(), "--call", "1",
          "--json", "--metrics");
    USAGE("nub: --json cannot be used with a snapshot file; see 'nub info --help'", "info", "--json", tg());
    USAGE("nub: --heap cannot be used with --snapshot (the snapshot fixes the sizes); see 'nub run --help'", "run",
          "--snapshot", tg(), "--call", "1", "--heap", "1M");
}

Test(cli, malformed_values_are_named)
{
    USAGE("nub: --timeout needs a number, got '1s'; see 'nub run --help'", "run", tg(), "--call", "1", "--timeout",
          "1s");
    USAGE("nub: --heap needs a size such as 65536, 512K or 2M, got '12Q'; see 'nub run --help'", "run", tg(), "--call",
          "1", "--heap", "12Q");
    USAGE("nub: --stack needs a size such as 65536, 512K or 2M, got 'K'; see 'nub run --help'", "run", tg(), "--call",
          "1", "--stack", "K");
    USAGE("nub: --input needs a size such as 65536, 512K or 2M, got '99999999999999999999'; see 'nub run --help'",
          "run", tg(), "--call", "1", "--input", "99999999999999999999");
    USAGE("nub: --output needs a size such as 65536, 512K or 2M, got '17179869184G'; see 'nub run --help'", "run",
          tg(), "--call", "1", "--output", "17179869184G");
    USAGE("nub: --repeat needs a number from 1 to 10000000, got '0'; see 'nub run --help'", "run", tg(), "--call", "1",
          "--repeat", "0");
    USAGE("nub: --backend needs auto, kvm or emu, got 'qemu'; see 'nub run --help'", "run", tg(), "--call", "1",
          "--backend", "qemu");
    USAGE("nub: --backend needs auto, kvm or emu, got 'x'; see 'nub caps put --help'", "caps", "put", "--backend", "x",
          tg());
    USAGE("nub: --log needs error, warn, info, debug or trace, got 'loud'; see 'nub run --help'", "run", tg(),
          "--call", "1", "--log", "loud");
    USAGE("nub: --gdb needs a port from 1 to 65535 or 'any', got '0'; see 'nub run --help'", "run", tg(), "--call",
          "1", "--gdb", "0");
    USAGE("nub: --in needs an even number of hex digits, got 'abc'; see 'nub run --help'", "run", tg(), "--call", "1",
          "--in", "abc");
    USAGE("nub: --in needs an even number of hex digits, got 'zz'; see 'nub snapshot --help'", "snapshot", tg(), "-o",
          "x", "--call", "1", "--in", "zz");
    USAGE("nub: --host-fn needs ID=echo, ID=fail or ID=file:PATH, got 'echo'; see 'nub run --help'", "run", tg(),
          "--call", "3", "--host-fn", "echo");
    USAGE("nub: --host-fn's ID needs a number, got 'x'; see 'nub run --help'", "run", tg(), "--call", "3", "--host-fn",
          "x=echo");
    USAGE("nub: --host-fn 7 needs echo, fail or file:PATH, got 'shout'; see 'nub run --help'", "run", tg(), "--call",
          "3", "--host-fn", "7=shout");
}

Test(cli, unreadable_files_are_named)
{
    USAGE("nub: cannot read --in-file '/nonexistent/in': No such file or directory; see 'nub run --help'", "run", tg(),
          "--call", "1", "--in-file", "/nonexistent/in");
    USAGE("nub: cannot read --host-fn 7's file '/nonexistent/f': No such file or directory; see 'nub run --help'",
          "run", tg(), "--call", "3", "--host-fn", "7=file:/nonexistent/f");
    USAGE("nub: cannot write --out-file '/nonexistent/out': No such file or directory; see 'nub run --help'", "run",
          tg(), "--call", "1", "--out-file", "/nonexistent/out");
    USAGE("nub: cannot read '/nonexistent/cap': No such file or directory; see 'nub caps hash --help'", "caps", "hash",
          "/nonexistent/cap");
}

/* ---- run options on each backend ------------------------------------------------------ */

BACKEND_TEST(cli, timeout_stops_a_spinning_guest)
{
    struct cli r;
    CLI(&r, "run", tg(), "--backend", nub_backend_name(backend), "--call", "6", "--timeout", "200");
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert_str_empty(r.out);
    cr_assert_str_eq(r.err, "nub: the call failed: NUB_E_TIMEOUT: call exceeded its timeout of 200 ms\n");
    cli_free(&r);
}

BACKEND_TEST(cli, one_mib_input_needs_and_takes_a_larger_input_buffer)
{
    const char *b = nub_backend_name(backend);
    size_t len = 1u << 20;
    unsigned char *data = malloc(len);
    cr_assert_not_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i * 131 + (i >> 9));
    char in[64], out[80];
    temp_file(in, sizeof in, data, len);
    snprintf(out, sizeof out, "%s.out", in);
    struct cli r;
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in-file", in);
    expect_usage(&r, "nub: the input is 1048576 bytes, over the input buffer's 65488-byte limit (raise it with "
                     "--input SIZE); see 'nub run --help'\n");
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in-file", in, "--input", "2M");
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_eq(r.err, "nub: the call failed: NUB_E_GUEST: guest function failed with status 6: echo: 1048576 "
                            "bytes do not fit (raise the output buffer with --output SIZE)\n");
    cli_free(&r);
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in-file", in, "--input", "2M", "--output", "2048K",
        "--out-file", out);
    expect_ok(&r, "");
    size_t got_len;
    char *got = slurp(out, &got_len);
    cr_assert_eq(got_len, len);
    cr_assert_eq(memcmp(got, data, len), 0, "the echo differs from the 1 MiB input");
    free(got);
    unlink(out);
    unlink(in);
    free(data);
}

BACKEND_TEST(cli, sizes_the_library_refuses_are_reported_with_its_message)
{
    struct cli r;
    CLI(&r, "run", tg(), "--backend", nub_backend_name(backend), "--call", "1", "--heap", "3G");
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    static const char want[] = "nub: creating the sandbox failed: NUB_E_LAYOUT: config.heap_size = 3221225472 ";
    cr_assert_eq(strncmp(r.err, want, sizeof want - 1), 0, "%s", r.err);
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line: %s", r.err);
    cli_free(&r);
    CLI(&r, "run", tg(), "--backend", nub_backend_name(backend), "--call", "4", "--heap", "1M", "--stack", "128K");
    cr_assert_eq(r.status, 0, "a larger heap and stack work: %s", r.err);
    cli_free(&r);
}

BACKEND_TEST(cli, output_formats)
{
    const char *b = nub_backend_name(backend);
    const char *add = "02000000000000000300000000000000";
    struct cli r;
    CLI(&r, "run", tg(), "--backend", b, "--call", "2", "--in", add);
    expect_ok(&r, "0500000000000000\n");
    CLI(&r, "run", tg(), "--backend", b, "--call", "2", "--in", add, "--hex");
    expect_ok(&r, "0500000000000000\n");
    CLI(&r, "run", tg(), "--backend", b, "--call", "2", "--in", add, "--text");
    expect_ok(&r, "\\x05\\x00\\x00\\x00\\x00\\x00\\x00\\x00\n");
    CLI(&r, "run", tg(), "--backend", b, "--call", "2", "--in", add, "--raw");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(r.out_len, 8);
    cr_assert_eq(memcmp(r.out, "\x05\0\0\0\0\0\0\0", 8), 0);
    cli_free(&r);
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in-text", "tab\there");
    expect_ok(&r, "tab\there\n");
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in-text", "hi", "--hex");
    expect_ok(&r, "6869\n");
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in-text", "hi", "--raw");
    expect_ok(&r, "hi");
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in", "68691b5b", "--text");
    expect_ok(&r, "hi\\x1b[\n");
    CLI(&r, "run", tg(), "--backend", b, "--call", "21");
    expect_ok(&r, "\n");
}

BACKEND_TEST(cli, out_file_gets_the_bytes_or_the_format_asked)
{
    const char *b = nub_backend_name(backend);
    char path[64];
    temp_file(path, sizeof path, "old contents", 12);
    struct cli r;
    CLI(&r, "run", tg(), "--backend", b, "--call", "2", "--in", "02000000000000000300000000000000", "--out-file",
        path);
    expect_ok(&r, "");
    size_t n;
    char *got = slurp(path, &n);
    cr_assert_eq(n, 8);
    cr_assert_eq(memcmp(got, "\x05\0\0\0\0\0\0\0", 8), 0);
    free(got);
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in-text", "hi", "--hex", "--out-file", path);
    expect_ok(&r, "");
    got = slurp(path, NULL);
    cr_assert_str_eq(got, "6869\n");
    free(got);
    CLI(&r, "run", tg(), "--backend", b, "--call", "17", "--out-file", path);
    cr_assert_eq(r.status, 1);
    cr_assert_eq(access(path, F_OK), -1, "a failed run leaves no partial --out-file");
    cli_free(&r);
}

static json_object *json_key(json_object *o, const char *key, json_type type)
{
    json_object *v = NULL;
    cr_assert(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s", key, json_object_to_json_string(o));
    cr_assert(json_object_is_type(v, type), "\"%s\" has type %s", key, json_type_to_name(json_object_get_type(v)));
    return v;
}

static const char *json_str(json_object *o, const char *key)
{
    return json_object_get_string(json_key(o, key, json_type_string));
}

/* The whole of stdout as one JSON object (nothing after it but a newline). */
static json_object *parse_json(const struct cli *r)
{
    enum json_tokener_error e;
    json_object *o = json_tokener_parse_verbose(r->out, &e);
    cr_assert_not_null(o, "not JSON (%s): %s", json_tokener_error_desc(e), r->out);
    cr_assert(json_object_is_type(o, json_type_object));
    cr_assert_eq(r->out[r->out_len - 1], '\n');
    return o;
}

BACKEND_TEST(cli, json_has_result_status_timings_and_backend)
{
    const char *b = nub_backend_name(backend);
    struct cli r;
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in-text", "hi \"json\"", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.err);
    json_object *o = parse_json(&r);
    json_object *res = json_key(o, "result", json_type_object);
    cr_assert_str_eq(json_str(res, "hex"), "686920226a736f6e22");
    cr_assert_str_eq(json_str(res, "text"), "hi \"json\"");
    cr_assert_eq(json_object_get_int(json_key(res, "length", json_type_int)), 9);
    json_object *st = json_key(o, "status", json_type_object);
    cr_assert_eq(json_object_get_int(json_key(st, "code", json_type_int)), 0);
    cr_assert_str_eq(json_str(st, "name"), "NUB_OK");
    cr_assert_str_eq(json_str(st, "guest_status_name"), "NUB_STATUS_OK");
    json_object *t = json_key(o, "timings_us", json_type_object);
    cr_assert_gt(json_object_get_double(json_key(t, "create", json_type_double)), 0);
    cr_assert_gt(json_object_get_double(json_key(t, "evolve", json_type_double)), 0);
    cr_assert_gt(json_object_get_double(json_key(t, "call", json_type_double)), 0);
    cr_assert(!json_object_object_get_ex(t, "call_p50", NULL), "p50 only with --repeat");
    cr_assert_eq(json_object_get_int(json_key(o, "calls", json_type_int)), 1);
    cr_assert_str_eq(json_str(o, "backend"), b);
    json_object_put(o);
    cli_free(&r);

    CLI(&r, "run", tg(), "--backend", b, "--call", "2", "--in", "0100000000000000ff00000000000000", "--json");
    o = parse_json(&r);
    res = json_key(o, "result", json_type_object);
    cr_assert_str_eq(json_str(res, "hex"), "0001000000000000");
    cr_assert(!json_object_object_get_ex(res, "text", NULL), "no text for bytes that are not printable");
    json_object_put(o);
    cli_free(&r);

    CLI(&r, "run", tg(), "--backend", b, "--call", "17", "--json");
    cr_assert_eq(r.status, 1, "a failing call exits 1 with --json too");
    cr_assert_str_eq(r.err, "nub: the call failed: NUB_E_GUEST: guest function failed with status 3: guest says no\n");
    o = parse_json(&r);
    json_key(o, "result", json_type_null);
    st = json_key(o, "status", json_type_object);
    cr_assert_eq(json_object_get_int(json_key(st, "code", json_type_int)), NUB_E_GUEST);
    cr_assert_str_eq(json_str(st, "name"), "NUB_E_GUEST");
    cr_assert_str_eq(json_str(st, "step"), "the call");
    cr_assert(strstr(json_str(st, "message"), NUB_TG_FAIL_MSG) != NULL, "%s", json_str(st, "message"));
    cr_assert_eq(json_object_get_int(json_key(st, "guest_status", json_type_int)), NUB_STATUS_GUEST_ERROR);
    cr_assert_str_eq(json_str(st, "guest_status_name"), "NUB_STATUS_GUEST_ERROR");
    cr_assert_eq(json_object_get_int(json_key(o, "calls", json_type_int)), 0);
    json_object_put(o);
    cli_free(&r);
}

BACKEND_TEST(cli, repeat_calls_one_sandbox_and_reports_p50_p99)
{
    const char *b = nub_backend_name(backend);
    struct cli r;
    CLI(&r, "run", tg(), "--backend", b, "--call", "1", "--in-text", "again", "--repeat", "5", "--metrics");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(strncmp(r.out, "again\n", 6), 0, "%s", r.out);
    cr_assert(strstr(r.out, "\nnub_calls_total 5\n") != NULL, "five calls on one sandbox: %s", r.out);
    double p50, p99;
    char tail[8];
    cr_assert_eq(sscanf(r.err, "nub: 5 calls: p50 %lf us, p99 %lf us%1[\n]", &p50, &p99, tail), 3, "%s", r.err);
    cr_assert(p50 > 0 && p50 <= p99, "%s", r.err);
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line: %s", r.err);
    cli_free(&r);

    CLI(&r, "run", tg(), "--backend", b, "--call", "21", "--repeat", "7", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.err, "with --json the timings are in the JSON: %s", r.err);
    json_object *o = parse_json(&r);
    cr_assert_eq(json_object_get_int(json_key(o, "calls", json_type_int)), 7);
    json_object *t = json_key(o, "timings_us", json_type_object);
    p50 = json_object_get_double(json_key(t, "call_p50", json_type_double));
    p99 = json_object_get_double(json_key(t, "call_p99", json_type_double));
    cr_assert(p50 > 0 && p50 <= p99, "p50 %f p99 %f", p50, p99);
    json_object_put(o);
    cli_free(&r);
}

BACKEND_TEST(cli, host_fn_answers_echo_fail_and_file)
{
    const char *b = nub_backend_name(backend);
    char path[64];
    temp_file(path, sizeof path, "from a file", 11);
    char file_fn[80];
    snprintf(file_fn, sizeof file_fn, "8=file:%s", path);
    struct cli r;
    /* NUB_TG_FN_HOST_CALL: u32 host fn id (little-endian), then the payload */
    CLI(&r, "run", tg(), "--backend", b, "--call", "3", "--in", "070000006869", "--host-fn", "7=echo", "--host-fn",
        file_fn);
    expect_ok(&r, "hi\n");
    CLI(&r, "run", tg(), "--backend", b, "--call", "3", "--in", "08000000", "--host-fn", "7=echo", "--host-fn",
        file_fn);
    expect_ok(&r, "from a file\n");
    CLI(&r, "run", tg(), "--backend", b, "--call", "3", "--in", "090000006869", "--host-fn", "9=fail");
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_empty(r.out);
    cr_assert_str_eq(r.err, "nub: the call failed: NUB_E_GUEST: guest function failed with status 4: host function 9 "
                            "failed as asked (nub --host-fn 9=fail)\n");
    cli_free(&r);
    CLI(&r, "run", tg(), "--backend", b, "--call", "3", "--in", "0a000000", "--host-fn", "9=fail");
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_eq(r.err, "nub: the call failed: NUB_E_GUEST: guest function failed with status 4: no host "
                            "function registered for fn_id 10\n");
    cli_free(&r);
    unlink(path);
}

BACKEND_TEST(cli, snapshot_sizes_carry_over_to_run)
{
    const char *b = nub_backend_name(backend);
    char snap[64];
    snprintf(snap, sizeof snap, "/tmp/nub-cli-snap-%d-%s", (int)getpid(), b);
    struct cli r;
    CLI(&r, "snapshot", tg(), "-o", snap, "--evolve", "--backend", b, "--input", "256K");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    unsigned char big[128 * 1024];
    memset(big, 'x', sizeof big);
    char in[64];
    temp_file(in, sizeof in, big, sizeof big);
    CLI(&r, "run", "--snapshot", snap, "--backend", b, "--call", "1", "--in-file", in, "--hex");
    cr_assert_eq(r.status, 1, "the echo does not fit the default output buffer: %s", r.err);
    cr_assert(strstr(r.err, "status 6") != NULL, "%s", r.err);
    cli_free(&r);
    CLI(&r, "run", "--snapshot", snap, "--backend", b, "--call", "6", "--timeout", "100");
    cr_assert_eq(r.status, 1);
    cr_assert_str_eq(r.err, "nub: the call failed: NUB_E_TIMEOUT: call exceeded its timeout of 100 ms\n");
    cli_free(&r);
    unlink(in);
    unlink(snap);
}

BACKEND_TEST(cli, snapshot_timeout_is_the_default_of_run)
{
    const char *b = nub_backend_name(backend);
    char snap[64];
    snprintf(snap, sizeof snap, "/tmp/nub-cli-snapt-%d-%s", (int)getpid(), b);
    struct cli r;
    CLI(&r, "snapshot", tg(), "-o", snap, "--evolve", "--backend", b, "--timeout", "150");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    CLI(&r, "run", "--snapshot", snap, "--backend", b, "--call", "6");
    cr_assert_eq(r.status, 1, "the spin stops at the snapshot's timeout: %s", r.err);
    cr_assert_str_eq(r.err, "nub: the call failed: NUB_E_TIMEOUT: call exceeded its timeout of 150 ms\n");
    cli_free(&r);
    CLI(&r, "run", "--snapshot", snap, "--backend", b, "--call", "6", "--timeout", "90");
    cr_assert_eq(r.status, 1);
    cr_assert_str_eq(r.err, "nub: the call failed: NUB_E_TIMEOUT: call exceeded its timeout of 90 ms\n",
                     "--timeout overrides the snapshot's");
    cli_free(&r);
    unlink(snap);
}
