/* SPDX-License-Identifier: MIT */
/* Unit tests for src/metrics/metrics.c: the Prometheus text of counters, gauges and
 * histograms, label escaping, summing per-worker sets by name, config-name slots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/buf.h"
#include "metrics/metrics.h"

#define MS 1000000ull

/* The exposition of @m as a NUL-terminated string (caller frees with cn_buf_fini). */
static const char *
render(const cn_metrics_t *m, cn_buf_t *b)
{
    cn_metrics_render(m, b);
    cn_buf_append(b, "", 1);
    return cn_buf_start(b);
}

/* @line must be one whole line of @text. */
static void
has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    fail_msg("line not found: %s\n---\n%s", line, text);
}

static void
no_line_starting(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, n) == 0)
            fail_msg("unexpected line starting %s", prefix);
}

static void
test_counters(void **state)
{
    (void)state;
    cn_metrics_t *m = cn_metrics_new();
    uint32_t r = cn_metrics_intern(m, CN_ML_ROUTE, "api");
    assert_int_equal(cn_metrics_intern(m, CN_ML_ROUTE, "api"), r);
    cn_metrics_request_done(m, r, 200, 1 * MS, 100);
    cn_metrics_request_done(m, r, 200, 1 * MS, 20);
    cn_metrics_request_done(m, r, 404, 1 * MS, 0);
    cn_metrics_request_done(m, r, 418, 1 * MS, 0);
    cn_metrics_request_done(m, r, 999, 1 * MS, 0);
    uint32_t u = cn_metrics_intern(m, CN_ML_UPSTREAM, "origin");
    cn_metrics_upstream_response(m, u, 502);
    cn_metrics_upstream_error(m, u, cn_metrics_err_kind(CAIRN_ETIMEDOUT));
    cn_metrics_upstream_error(m, u, cn_metrics_err_kind(CAIRN_ECONNREFUSED));
    cn_metrics_upstream_error(m, u, cn_metrics_err_kind(CAIRN_ECONNREFUSED));
    cn_buf_t b = {0};
    const char *t = render(m, &b);
    has_line(t, "# HELP cairn_requests_total Requests answered, by route and status code (499: "
                "the client left first).");
    has_line(t, "# TYPE cairn_requests_total counter");
    has_line(t, "cairn_requests_total{route=\"api\",code=\"200\"} 2");
    has_line(t, "cairn_requests_total{route=\"api\",code=\"404\"} 1");
    has_line(t, "cairn_requests_total{route=\"api\",code=\"4xx\"} 1");
    has_line(t, "cairn_requests_total{route=\"api\",code=\"other\"} 1");
    /* Codes with no requests are not written. */
    no_line_starting(t, "cairn_requests_total{route=\"api\",code=\"500\"}");
    has_line(t, "cairn_response_body_bytes_total{route=\"api\"} 120");
    has_line(t, "cairn_upstream_requests_total{upstream=\"origin\",code=\"502\"} 1");
    /* A small fixed label set is written in full, zeros included. */
    has_line(t, "cairn_upstream_errors_total{upstream=\"origin\",kind=\"connect\"} 2");
    has_line(t, "cairn_upstream_errors_total{upstream=\"origin\",kind=\"timeout\"} 1");
    has_line(t, "cairn_upstream_errors_total{upstream=\"origin\",kind=\"protocol\"} 0");
    has_line(t, "# TYPE cairn_cache_lock_waiters gauge");
    has_line(t, "cairn_cache_lock_waiters 0");
    has_line(t, "cairn_connections{state=\"active\"} 0");
    has_line(t, "cairn_config_reloads_total{result=\"error\"} 0");
    assert_int_equal(cn_metrics_get(m, CN_M_REQUESTS_TOTAL, r, 0), 2);
    cn_buf_fini(&b);
    cn_metrics_free(m);
}

static void
test_histogram(void **state)
{
    (void)state;
    cn_metrics_t *m = cn_metrics_new();
    uint32_t r = cn_metrics_intern(m, CN_ML_ROUTE, "r");
    cn_metrics_request_done(m, r, 200, 1500000, 0); /* 1.5 ms */
    cn_metrics_request_done(m, r, 200, 2500000, 0); /* on a bound: le is inclusive */
    cn_metrics_request_done(m, r, 200, 3 * MS, 0);
    cn_metrics_request_done(m, r, 200, 500000ull * MS, 0); /* 500 s: above every bound */
    cn_buf_t b = {0};
    const char *t = render(m, &b);
    has_line(t, "# TYPE cairn_request_duration_seconds histogram");
    has_line(t, "cairn_request_duration_seconds_bucket{le=\"0.0001\"} 0");
    has_line(t, "cairn_request_duration_seconds_bucket{le=\"0.001\"} 0");
    has_line(t, "cairn_request_duration_seconds_bucket{le=\"0.0025\"} 2");
    has_line(t, "cairn_request_duration_seconds_bucket{le=\"0.005\"} 3");
    has_line(t, "cairn_request_duration_seconds_bucket{le=\"100\"} 3");
    has_line(t, "cairn_request_duration_seconds_bucket{le=\"+Inf\"} 4");
    has_line(t, "cairn_request_duration_seconds_sum 500.007");
    has_line(t, "cairn_request_duration_seconds_count 4");
    assert_int_equal(cn_metrics_get(m, CN_M_REQUEST_DURATION, 0, 0), 4);
    /* A labelled histogram: le comes last; each outcome is its own series. */
    uint32_t u = cn_metrics_intern(m, CN_ML_UPSTREAM, "o");
    cn_metrics_origin_queue_wait(m, u, CN_METRICS_QUEUE_TIMEOUT, 10000 * MS);
    cn_buf_fini(&b);
    t = render(m, &b);
    has_line(t, "cairn_origin_fetch_queue_wait_seconds_bucket{upstream=\"o\",outcome=\"timeout\","
                "le=\"10\"} 1");
    has_line(t, "cairn_origin_fetch_queue_wait_seconds_bucket{upstream=\"o\",outcome=\"timeout\","
                "le=\"5\"} 0");
    has_line(t, "cairn_origin_fetch_queue_wait_seconds_sum{upstream=\"o\",outcome=\"timeout\"} 10");
    has_line(t,
             "cairn_origin_fetch_queue_wait_seconds_count{upstream=\"o\",outcome=\"admitted\"} 0");
    cn_buf_fini(&b);
    cn_metrics_free(m);
}

static void
test_escaping(void **state)
{
    (void)state;
    cn_metrics_t *m = cn_metrics_new();
    uint32_t r = cn_metrics_intern(m, CN_ML_ROUTE, "a\"b\\c\nd");
    cn_metrics_request_done(m, r, 503, 0, 0);
    cn_buf_t b = {0};
    const char *t = render(m, &b);
    has_line(t, "cairn_requests_total{route=\"a\\\"b\\\\c\\nd\",code=\"503\"} 1");
    cn_buf_fini(&b);
    cn_metrics_free(m);
}

static void
test_merge(void **state)
{
    (void)state;
    cn_metrics_t *w1 = cn_metrics_new(), *w2 = cn_metrics_new();
    /* Each worker interns in its own order. */
    uint32_t a1 = cn_metrics_intern(w1, CN_ML_ROUTE, "a");
    uint32_t b1 = cn_metrics_intern(w1, CN_ML_ROUTE, "b");
    uint32_t b2 = cn_metrics_intern(w2, CN_ML_ROUTE, "b");
    uint32_t c2 = cn_metrics_intern(w2, CN_ML_ROUTE, "c");
    uint32_t a2 = cn_metrics_intern(w2, CN_ML_ROUTE, "a");
    assert_int_not_equal(a1, a2);
    cn_metrics_request_done(w1, a1, 200, 1 * MS, 1);
    cn_metrics_request_done(w1, b1, 200, 1 * MS, 2);
    cn_metrics_request_done(w2, a2, 200, 20 * MS, 4);
    cn_metrics_request_done(w2, b2, 500, 20 * MS, 8);
    cn_metrics_request_done(w2, c2, 200, 20 * MS, 16);
    cn_metrics_cache_lock_waiters(w1, 2);
    cn_metrics_cache_lock_waiters(w2, -1);
    cn_metrics_cache_lock_waiters(w2, -2);
    cn_metrics_origin_queue_wait(w2, cn_metrics_intern(w2, CN_ML_UPSTREAM, "o"),
                                 CN_METRICS_QUEUE_GONE, 3 * MS);

    cn_metrics_t *s = cn_metrics_new();
    cn_metrics_declare(s, CN_ML_ROUTE, "z"); /* a configured route that saw nothing */
    cn_metrics_declare(s, CN_ML_UPSTREAM, "o");
    cn_metrics_merge(s, w1);
    cn_metrics_merge(s, w2);
    cn_buf_t b = {0};
    const char *t = render(s, &b);
    has_line(t, "cairn_requests_total{route=\"a\",code=\"200\"} 2");
    has_line(t, "cairn_requests_total{route=\"b\",code=\"200\"} 1");
    has_line(t, "cairn_requests_total{route=\"b\",code=\"500\"} 1");
    has_line(t, "cairn_requests_total{route=\"c\",code=\"200\"} 1");
    has_line(t, "cairn_response_body_bytes_total{route=\"a\"} 5");
    has_line(t, "cairn_response_body_bytes_total{route=\"b\"} 10");
    has_line(t, "cairn_response_body_bytes_total{route=\"z\"} 0");
    has_line(t, "cairn_request_duration_seconds_bucket{le=\"0.001\"} 2");
    has_line(t, "cairn_request_duration_seconds_bucket{le=\"0.025\"} 5");
    has_line(t, "cairn_request_duration_seconds_sum 0.062");
    has_line(t, "cairn_request_duration_seconds_count 5");
    /* Gauges are signed. */
    has_line(t, "cairn_cache_lock_waiters -1");
    has_line(t, "cairn_origin_fetch_queue_wait_seconds_count{upstream=\"o\",outcome=\"gone\"} 1");
    has_line(t, "cairn_origin_fetches_queued{upstream=\"o\"} 0");
    /* Declared names come first, in declaration order. */
    assert_true(strstr(t, "cairn_response_body_bytes_total{route=\"z\"}") <
                strstr(t, "cairn_response_body_bytes_total{route=\"a\"}"));
    cn_buf_fini(&b);
    cn_metrics_free(s);
    cn_metrics_free(w1);
    cn_metrics_free(w2);
}

static void
test_set_and_seconds(void **state)
{
    (void)state;
    cn_metrics_t *m = cn_metrics_new();
    uint32_t c = cn_metrics_intern(m, CN_ML_CACHE, "main");
    size_t nl = cn_metrics_combos(CN_M_CACHE_LOOKUPS);
    assert_int_equal(nl, 2); /* tier memory × result hit, miss */
    cn_metrics_set(m, CN_M_CACHE_LOOKUPS, c, CN_METRICS_LOOKUP_MISS, 7);
    cn_metrics_set(m, CN_M_CACHE_BYTES, c, CN_METRICS_TIER_MEMORY, 4096);
    cn_metrics_set(m, CN_M_UPTIME, 0, 0, 12 * 1000000000ull + 250 * MS);
    cn_metrics_set(m, CN_M_PROCESS_START_TIME, 0, 0, 1700000000ull * 1000000000ull);
    cn_metrics_set(m, CN_M_BUILD_INFO, 0, 0, 1);
    cn_metrics_cache_request(m, c, CN_METRICS_CS_REVALIDATED);
    cn_buf_t b = {0};
    const char *t = render(m, &b);
    has_line(t, "cairn_cache_lookups_total{cache=\"main\",tier=\"memory\",result=\"miss\"} 7");
    has_line(t, "cairn_cache_lookups_total{cache=\"main\",tier=\"memory\",result=\"hit\"} 0");
    has_line(t, "cairn_cache_bytes{cache=\"main\",tier=\"memory\"} 4096");
    has_line(t, "cairn_cache_requests_total{cache=\"main\",status=\"revalidated\"} 1");
    has_line(t, "cairn_uptime_seconds 12.25");
    has_line(t, "cairn_process_start_time_seconds 1700000000");
    assert_non_null(strstr(t, "cairn_build_info{version=\""));
    assert_string_equal(cn_metrics_label_value(CN_ML_CODE, 0), "200");
    assert_null(cn_metrics_label_value(CN_ML_ROUTE, 0));
    cn_buf_fini(&b);
    cn_metrics_free(m);
}

/* Every sample line belongs to a family declared by # TYPE before it. */
static void
test_every_sample_declared(void **state)
{
    (void)state;
    cn_metrics_t *m = cn_metrics_new();
    cn_metrics_declare(m, CN_ML_ROUTE, "r");
    cn_metrics_declare(m, CN_ML_UPSTREAM, "u");
    cn_metrics_declare(m, CN_ML_CACHE, "c");
    cn_buf_t b = {0};
    const char *t = render(m, &b);
    char family[128] = "";
    size_t n_types = 0;
    for (const char *p = t; *p;) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        if (strncmp(p, "# TYPE ", 7) == 0) {
            const char *sp = strchr(p + 7, ' ');
            snprintf(family, sizeof(family), "%.*s", (int)(sp - p - 7), p + 7);
            n_types++;
        } else if (p[0] != '#') {
            size_t fl = strlen(family);
            assert_true(fl > 0 && strncmp(p, family, fl) == 0);
            assert_true(strchr("{ _", p[fl]) != NULL);
        }
        p = eol + 1;
    }
    assert_int_equal(n_types, CN_M__COUNT);
    cn_buf_fini(&b);
    cn_metrics_free(m);
}

static cn_config_t *
load(const char *text)
{
    cn_diags_t d = {0};
    cn_config_t *c = NULL;
    cairn_err_t rc = cn_config_load_string("test.yaml", text, strlen(text), &c, &d);
    if (rc != CAIRN_OK)
        cn_diags_print(&d, stderr);
    assert_int_equal(rc, CAIRN_OK);
    cn_diags_fini(&d);
    return c;
}

/* Slots follow names, not positions: a reload that reorders routes keeps each series. */
static void
test_config_slots(void **state)
{
    (void)state;
    cn_config_t *g1 = load("listeners: [{listen: 127.0.0.1:1}]\n"
                           "upstreams: {u1: {peers: [{address: 127.0.0.1:2}]}}\n"
                           "routes:\n"
                           "  - {name: one, match: {path: /1}, static: {}}\n"
                           "  - {name: two, upstream: u1}\n");
    cn_config_t *g2 = load("listeners: [{listen: 127.0.0.1:1}]\n"
                           "upstreams: {u0: {peers: [{address: 127.0.0.1:3}]},"
                           " u1: {peers: [{address: 127.0.0.1:2}]}}\n"
                           "routes:\n"
                           "  - {name: two, upstream: u1}\n"
                           "  - {name: three, match: {path: /3}, static: {}}\n"
                           "  - {name: one, match: {path: /1}, static: {}}\n");
    cn_metrics_t *m = cn_metrics_new();
    uint32_t one = cn_metrics_config_slot(m, g1, CN_ML_ROUTE, 0);
    uint32_t two = cn_metrics_config_slot(m, g1, CN_ML_ROUTE, 1);
    uint32_t u1 = cn_metrics_config_slot(m, g1, CN_ML_UPSTREAM, 0);
    assert_int_not_equal(one, two);
    assert_int_equal(cn_metrics_config_slot(m, g2, CN_ML_ROUTE, 0), two);
    assert_int_equal(cn_metrics_config_slot(m, g2, CN_ML_ROUTE, 2), one);
    assert_int_equal(cn_metrics_config_slot(m, g2, CN_ML_UPSTREAM, 1), u1);
    uint32_t three = cn_metrics_config_slot(m, g2, CN_ML_ROUTE, 1);
    /* Back to the first generation (both stay cached), then a position past the end. */
    assert_int_equal(cn_metrics_config_slot(m, g1, CN_ML_ROUTE, 0), one);
    uint32_t dash = cn_metrics_config_slot(m, g1, CN_ML_ROUTE, 9);
    uint32_t found;
    assert_true(cn_metrics_find(m, CN_ML_ROUTE, "-", &found));
    assert_int_equal(found, dash);
    assert_true(cn_metrics_find(m, CN_ML_ROUTE, "three", &found));
    assert_int_equal(found, three);
    assert_false(cn_metrics_find(m, CN_ML_ROUTE, "four", &found));
    /* The set holds references: the configs outlive our own. */
    cn_config_unref(g1);
    cn_config_unref(g2);
    assert_int_equal(cn_metrics_config_slot(m, g2, CN_ML_ROUTE, 1), three);
    cn_metrics_free(m);
}

static void
test_name_overflow(void **state)
{
    (void)state;
    cn_metrics_t *m = cn_metrics_new();
    char name[32];
    uint32_t last = 0;
    for (int i = 0; i < CN_METRICS_MAX_NAMES + 10; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        last = cn_metrics_intern(m, CN_ML_ROUTE, name);
    }
    assert_int_equal(last, CN_METRICS_MAX_NAMES - 1);
    cn_metrics_request_done(m, last, 200, 0, 0);
    cn_buf_t b = {0};
    const char *t = render(m, &b);
    has_line(t, "cairn_requests_total{route=\"_other\",code=\"200\"} 1");
    cn_buf_fini(&b);
    cn_metrics_free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters),        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_escaping),        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_set_and_seconds), cmocka_unit_test(test_every_sample_declared),
        cmocka_unit_test(test_config_slots),    cmocka_unit_test(test_name_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
