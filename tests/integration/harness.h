/* Integration-test harness: run each test once per usable backend (or those in NUB_TEST_BACKENDS), locate guests, count resources. */
#ifndef NUB_TEST_HARNESS_H
#define NUB_TEST_HARNESS_H

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nub/nub.h"

#ifndef NUB_GUEST_DIR_DEFAULT
#define NUB_GUEST_DIR_DEFAULT "build/guests"
#endif

/* Path of build/guests/NAME.elf (NUB_GUEST_DIR overrides the directory). */
static inline const char *guest_path(const char *name)
{
    static __thread char path[512];
    const char *dir = getenv("NUB_GUEST_DIR");
    snprintf(path, sizeof path, "%s/%s.elf", dir ? dir : NUB_GUEST_DIR_DEFAULT, name);
    return path;
}

/* Path of the nub CLI: $NUB_CLI, else build/nub next to the guest directory. */
static inline const char *nub_cli_path(void)
{
    static __thread char path[600];
    const char *cli = getenv("NUB_CLI"), *dir = getenv("NUB_GUEST_DIR");
    if (cli != NULL)
        snprintf(path, sizeof path, "%s", cli);
    else
        snprintf(path, sizeof path, "%s/../nub", dir ? dir : NUB_GUEST_DIR_DEFAULT);
    return path;
}

/*
 * Is `b` listed in NUB_TEST_BACKENDS ("emu,kvm")? Unset or empty: every
 * backend is requested, and require_backend() keeps those the probe finds
 * usable here (the others are skipped with the probe's reason).
 */
static inline int backend_requested(enum nub_backend b)
{
    const char *list = getenv("NUB_TEST_BACKENDS");
    char buf[64];
    if (list == NULL || *list == '\0')
        return 1;
    snprintf(buf, sizeof buf, ",%s,", list);
    char want[16];
    snprintf(want, sizeof want, ",%s,", nub_backend_name(b));
    return strstr(buf, want) != NULL;
}

/* Skip (never pass) when the backend is not requested or not usable here. */
static inline void require_backend(enum nub_backend b)
{
    char why[NUB_BACKEND_REASON_MAX] = "";
    if (!backend_requested(b))
        cr_skip_test("backend %s not in NUB_TEST_BACKENDS", nub_backend_name(b));
    if (nub_backend_available(b, why, sizeof why) != NUB_OK)
        cr_skip_test("backend %s unavailable: %s", nub_backend_name(b), why);
}

/*
 * BACKEND_TEST(suite, name) { ... uses `backend` ... }
 * defines a Criterion test run once for each backend.
 */
#define BACKEND_TEST(suite, name, ...)                                                    \
    ParameterizedTestParameters(suite, name)                                              \
    {                                                                                     \
        static enum nub_backend all[] = {NUB_BACKEND_EMU, NUB_BACKEND_KVM};              \
        return cr_make_param_array(enum nub_backend, all, 2);                            \
    }                                                                                     \
    static void suite##_##name##_body(enum nub_backend backend);                          \
    ParameterizedTest(enum nub_backend *bp, suite, name, ##__VA_ARGS__)                   \
    {                                                                                     \
        require_backend(*bp);                                                             \
        suite##_##name##_body(*bp);                                                       \
    }                                                                                     \
    static void suite##_##name##_body(enum nub_backend backend)

/* Default config on `backend`. */
static inline struct nub_config test_config(enum nub_backend backend)
{
    struct nub_config cfg;
    nub_config_default(&cfg);
    cfg.backend = backend;
    return cfg;
}

/* Create + evolve a sandbox from guest `name`; asserts success. */
static inline nub_sandbox *new_ready(const char *name, const struct nub_config *cfg,
                                     const struct nub_init_data *init)
{
    struct nub_error err;
    nub_sandbox *sb = NULL;
    nub_status rc = nub_sandbox_new_from_file(guest_path(name), init, cfg, &sb, &err);
    cr_assert_eq(rc, NUB_OK, "create %s: %s: %s", name, nub_strerror(rc), err.message);
    rc = nub_sandbox_evolve(sb);
    cr_assert_eq(rc, NUB_OK, "evolve %s: %s: %s", name, nub_strerror(rc),
                 nub_sandbox_last_error(sb)->message);
    return sb;
}

/* AddressSanitizer maps shadow memory and quarantines frees, so mapping and
 * RSS counts only mean something in a plain build; fd counts always do. */
#if defined(__SANITIZE_ADDRESS__)
#define NUB_TEST_MEMORY_COUNTS 0
#else
#define NUB_TEST_MEMORY_COUNTS 1
#endif

/* Number of open file descriptors of this process. */
static inline int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* Number of mappings of this process. */
static inline int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    if (f == NULL)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Resident set size in KiB. */
static inline long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

#endif /* NUB_TEST_HARNESS_H */
