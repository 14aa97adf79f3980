/* Unit tests of the metrics code without a VM: latency buckets at their edges and the exact Prometheus text of hand-built counters. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/obs.h"
#include "nub/nub.h"

Test(metrics, latency_bucket_edges)
{
    cr_assert_eq(nub_metrics_latency_bucket(0), 0);
    cr_assert_eq(nub_metrics_latency_bucket(1000), 0, "1 us is inside le=1us");
    cr_assert_eq(nub_metrics_latency_bucket(1001), 1);
    cr_assert_eq(nub_metrics_latency_bucket(2000), 1);
    cr_assert_eq(nub_metrics_latency_bucket(2001), 2);
    cr_assert_eq(nub_metrics_latency_bucket(4000), 2);
    cr_assert_eq(nub_metrics_latency_bucket(1000ull << 25), 25);
    cr_assert_eq(nub_metrics_latency_bucket((1000ull << 25) + 1), NUB_METRICS_BUCKETS - 1);
    cr_assert_eq(nub_metrics_latency_bucket(UINT64_MAX), NUB_METRICS_BUCKETS - 1);
    for (unsigned i = 1; i < NUB_METRICS_BUCKETS - 1; i++) {
        uint64_t le = NUB_METRICS_BUCKET_US(i) * 1000u;
        cr_assert_eq(nub_metrics_latency_bucket(le), i, "edge of bucket %u", i);
        cr_assert_eq(nub_metrics_latency_bucket(le + 1), i + 1, "just past bucket %u", i);
    }
}

static char *format(const struct nub_metrics *m)
{
    size_t len = 0;
    cr_assert_eq(nub_metrics_format_prometheus(m, NULL, 0, &len), NUB_E_TOO_LARGE);
    char *buf = malloc(len + 1);
    size_t len2 = 0;
    cr_assert_eq(nub_metrics_format_prometheus(m, buf, len + 1, &len2), NUB_OK);
    cr_assert_eq(len2, len);
    cr_assert_eq(strlen(buf), len);
    return buf;
}

static void expect_line(const char *text, const char *line)
{
    char want[256];
    snprintf(want, sizeof want, "\n%s\n", line);
    cr_assert(strstr(text, want) != NULL, "missing line '%s' in:\n%s", line, text);
}

Test(metrics, prometheus_text_of_known_counters)
{
    struct nub_metrics m;
    memset(&m, 0, sizeof m);
    m.calls = 7;
    m.calls_failed = 3;
    m.call_errors[-NUB_E_GUEST_FAULT] = 2;
    m.call_errors[-NUB_E_TIMEOUT] = 1;
    m.guest_errors[3] = 4;
    m.faults[14] = 2;
    m.timeouts = 1;
    m.host_calls = 9;
    m.host_calls_unregistered = 2;
    m.nhost_fns = 2;
    m.host_fn_ids[0] = 5;
    m.host_fn_calls[0] = 3;
    m.host_fn_ids[1] = 4000000000u;
    m.host_fn_calls[1] = 4;
    m.latency_buckets[0] = 1;
    m.latency_buckets[3] = 5;
    m.latency_buckets[NUB_METRICS_BUCKETS - 1] = 1;
    m.latency_sum_ns = 1500000000ull;
    char *t = format(&m);
    cr_assert(strncmp(t, "# HELP nub_calls_total ", 23) == 0, "%s", t);
    expect_line(t, "# TYPE nub_calls_total counter");
    expect_line(t, "nub_calls_total 7");
    expect_line(t, "nub_calls_failed_total 3");
    expect_line(t, "nub_call_errors_total{code=\"NUB_E_GUEST_FAULT\"} 2");
    expect_line(t, "nub_call_errors_total{code=\"NUB_E_TIMEOUT\"} 1");
    cr_assert_null(strstr(t, "code=\"NUB_E_GUEST\"}"), "zero series are left out");
    expect_line(t, "nub_guest_errors_total{code=\"3\"} 4");
    expect_line(t, "nub_guest_faults_total{vector=\"14\"} 2");
    expect_line(t, "nub_timeouts_total 1");
    expect_line(t, "nub_host_calls_total{fn_id=\"5\"} 3");
    expect_line(t, "nub_host_calls_total{fn_id=\"4000000000\"} 4");
    expect_line(t, "nub_host_calls_total{fn_id=\"unregistered\"} 2");
    expect_line(t, "# TYPE nub_call_duration_seconds histogram");
    expect_line(t, "nub_call_duration_seconds_bucket{le=\"0.000001\"} 1");
    expect_line(t, "nub_call_duration_seconds_bucket{le=\"0.000004\"} 1");
    expect_line(t, "nub_call_duration_seconds_bucket{le=\"0.000008\"} 6");
    expect_line(t, "nub_call_duration_seconds_bucket{le=\"33.554432\"} 6");
    expect_line(t, "nub_call_duration_seconds_bucket{le=\"+Inf\"} 7");
    expect_line(t, "nub_call_duration_seconds_sum 1.500000000");
    expect_line(t, "nub_call_duration_seconds_count 7");
    cr_assert_eq(t[strlen(t) - 1], '\n');
    free(t);
}

Test(metrics, totals_have_no_fn_id_label)
{
    char *t = format(NULL);
    expect_line(t, "nub_host_calls_total 0");
    cr_assert_null(strstr(t, "fn_id="));
    free(t);
}
