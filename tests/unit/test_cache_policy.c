/* SPDX-License-Identifier: MIT */
/* Unit tests for src/cache/policy.c: RFC 9111 shared-cache decisions. Table-driven; each row
 * names the section (RFC 9111 unless another RFC is given) it checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache/policy.h"
#include "core/arena.h"
#include "core/str.h"
#include "http/cache_control.h"
#include "http/headers.h"
#include "http/msg.h"

#define MAX_H 8

/* T = Sun, 06 Nov 1994 08:49:37 GMT; D<offset> = T + offset seconds as an HTTP-date. */
#define T ((int64_t)784111777)
#define D0 "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_P5 "Sun, 06 Nov 1994 08:49:42 GMT"
#define D_P10 "Sun, 06 Nov 1994 08:49:47 GMT"
#define D_P100 "Sun, 06 Nov 1994 08:51:17 GMT"
#define D_P3600 "Sun, 06 Nov 1994 09:49:37 GMT"
#define D_M50 "Sun, 06 Nov 1994 08:48:47 GMT"
#define D_M100 "Sun, 06 Nov 1994 08:47:57 GMT"
#define D_M1000 "Sun, 06 Nov 1994 08:32:57 GMT"
#define D_M10D "Thu, 27 Oct 1994 08:49:37 GMT"
#define D_M100D "Fri, 29 Jul 1994 08:49:37 GMT"

struct fixture {
    cn_arena_t arena;
    cn_policy_conf_t conf;
};

static int
setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof(*f));
    cn_arena_init(&f->arena, 0);
    cn_policy_conf_init(&f->conf);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    cn_arena_fini(&f->arena);
    test_free(f);
    return 0;
}

/* Fills @h from "Name: value" strings (up to MAX_H, NULL-terminated). */
static void
load(cn_headers_t *h, cn_arena_t *a, const char *const *lines)
{
    cn_headers_init(h, a);
    for (size_t i = 0; i < MAX_H && lines && lines[i]; i++) {
        const char *colon = strchr(lines[i], ':');
        assert_non_null(colon);
        cn_headers_add(h, cn_iov(lines[i], (size_t)(colon - lines[i])),
                       cn_iov_trim(cn_iov_cstr(colon + 1)));
    }
}

/* "Name: value\n" per line. */
static const char *
dump(const cn_headers_t *h)
{
    static char out[2048];
    size_t l = 0;
    out[0] = '\0';
    for (size_t i = 0; i < h->n; i++)
        l += (size_t)snprintf(out + l, sizeof(out) - l, "%.*s: %.*s\n", (int)h->items[i].name.len,
                              h->items[i].name.base, (int)h->items[i].value.len,
                              h->items[i].value.base);
    return out;
}

/* ---- §3 storing ---- */

struct store_case {
    const char *ref;
    const char *method;
    const char *req[MAX_H];
    unsigned status;
    const char *resp[MAX_H];
    cn_policy_store_t expect;
};

static const struct store_case store_cases[] = {
    {"§3 explicit max-age", "GET", {NULL}, 200, {"Cache-Control: max-age=60"}, CN_POLICY_STORE},
    {"§3/§4.2.2 heuristically cacheable 200", "GET", {NULL}, 200, {NULL}, CN_POLICY_STORE},
    {"§3 302 without freshness", "GET", {NULL}, 302, {NULL}, CN_POLICY_NS_NOT_CACHEABLE},
    {"§3 302 with max-age", "GET", {NULL}, 302, {"Cache-Control: max-age=60"}, CN_POLICY_STORE},
    {"§3 302 with s-maxage", "GET", {NULL}, 302, {"Cache-Control: s-maxage=60"}, CN_POLICY_STORE},
    {"§3 302 with Expires", "GET", {NULL}, 302, {"Expires: " D_P100}, CN_POLICY_STORE},
    {"§3 302 with invalid Expires still stored (stale)",
     "GET",
     {NULL},
     302,
     {"Expires: 0"},
     CN_POLICY_STORE},
    {"§3 302 with public", "GET", {NULL}, 302, {"Cache-Control: public"}, CN_POLICY_STORE},
    {"§3 a validator alone does not make 302 storable",
     "GET",
     {NULL},
     302,
     {"ETag: \"a\""},
     CN_POLICY_NS_NOT_CACHEABLE},
    {"§3 invalid max-age still counts as max-age",
     "GET",
     {NULL},
     302,
     {"Cache-Control: max-age=soon"},
     CN_POLICY_STORE},
    {"§4.2.2 404 heuristic", "GET", {NULL}, 404, {NULL}, CN_POLICY_STORE},
    {"RFC 7725 §3 451 heuristic", "GET", {NULL}, 451, {NULL}, CN_POLICY_STORE},
    {"§4.2.2 500 is not heuristic", "GET", {NULL}, 500, {NULL}, CN_POLICY_NS_NOT_CACHEABLE},
    {"§3 500 with max-age", "GET", {NULL}, 500, {"Cache-Control: max-age=5"}, CN_POLICY_STORE},
    {"§3 unknown status with max-age",
     "GET",
     {NULL},
     299,
     {"Cache-Control: max-age=5"},
     CN_POLICY_STORE},
    {"§3 method not understood",
     "POST",
     {NULL},
     200,
     {"Cache-Control: max-age=60"},
     CN_POLICY_NS_METHOD},
    {"RFC 9110 §9.1 methods are case-sensitive", "get", {NULL}, 200, {NULL}, CN_POLICY_NS_METHOD},
    {"RFC 9110 §9.3.2 HEAD only updates",
     "HEAD",
     {NULL},
     200,
     {"Cache-Control: max-age=60"},
     CN_POLICY_NS_HEAD},
    {"§3 status not final", "GET", {NULL}, 103, {"Cache-Control: max-age=60"}, CN_POLICY_NS_STATUS},
    {"§3 status out of range",
     "GET",
     {NULL},
     600,
     {"Cache-Control: max-age=60"},
     CN_POLICY_NS_STATUS},
    {"RFC 6585 §4 429 never stored",
     "GET",
     {NULL},
     429,
     {"Cache-Control: max-age=60"},
     CN_POLICY_NS_STATUS},
    {"RFC 6585 §6 511 never stored",
     "GET",
     {NULL},
     511,
     {"Cache-Control: public"},
     CN_POLICY_NS_STATUS},
    {"§3 206 (only complete responses)",
     "GET",
     {"Range: bytes=0-9"},
     206,
     {"Cache-Control: max-age=60"},
     CN_POLICY_NS_PARTIAL},
    {"§3 200 to a Range request is complete",
     "GET",
     {"Range: bytes=0-9"},
     200,
     {"Cache-Control: max-age=60"},
     CN_POLICY_STORE},
    {"§4.3.4 304 is an update",
     "GET",
     {NULL},
     304,
     {"Cache-Control: max-age=60"},
     CN_POLICY_NS_NOT_MODIFIED},
    {"§5.2.1.5 request no-store",
     "GET",
     {"Cache-Control: no-store"},
     200,
     {"Cache-Control: max-age=60"},
     CN_POLICY_NS_REQ_NO_STORE},
    {"§5.2.2.5 response no-store",
     "GET",
     {NULL},
     200,
     {"Cache-Control: max-age=60, no-store"},
     CN_POLICY_NS_NO_STORE},
    {"§5.2.2.3 must-understand + understood status overrides no-store",
     "GET",
     {NULL},
     200,
     {"Cache-Control: must-understand, no-store, max-age=60"},
     CN_POLICY_STORE},
    {"§5.2.2.3 must-understand + unknown status",
     "GET",
     {NULL},
     299,
     {"Cache-Control: must-understand, no-store, max-age=60"},
     CN_POLICY_NS_MUST_UNDERSTAND},
    {"§5.2.2.3 must-understand + unused 418",
     "GET",
     {NULL},
     418,
     {"Cache-Control: must-understand, max-age=60"},
     CN_POLICY_NS_MUST_UNDERSTAND},
    {"§5.2.2.3 must-understand does not override private",
     "GET",
     {NULL},
     200,
     {"Cache-Control: must-understand, no-store, private"},
     CN_POLICY_NS_PRIVATE},
    {"§5.2.2.7 bare private",
     "GET",
     {NULL},
     200,
     {"Cache-Control: private, max-age=60"},
     CN_POLICY_NS_PRIVATE},
    {"§5.2.2.7 private=\"Set-Cookie\" is storable",
     "GET",
     {NULL},
     200,
     {"Cache-Control: private=\"Set-Cookie\", max-age=60"},
     CN_POLICY_STORE},
    {"§5.2.2.4 no-cache is storable",
     "GET",
     {NULL},
     200,
     {"Cache-Control: no-cache"},
     CN_POLICY_STORE},
    {"§3.5 Authorization without permission",
     "GET",
     {"Authorization: Basic eDp5"},
     200,
     {"Cache-Control: max-age=60"},
     CN_POLICY_NS_AUTHORIZATION},
    {"§3.5 Authorization + public",
     "GET",
     {"Authorization: Basic eDp5"},
     200,
     {"Cache-Control: public, max-age=60"},
     CN_POLICY_STORE},
    {"§3.5 Authorization + s-maxage",
     "GET",
     {"Authorization: Basic eDp5"},
     200,
     {"Cache-Control: s-maxage=60"},
     CN_POLICY_STORE},
    {"§3.5 Authorization + must-revalidate",
     "GET",
     {"Authorization: Basic eDp5"},
     200,
     {"Cache-Control: must-revalidate, max-age=60"},
     CN_POLICY_STORE},
    {"§3.5 proxy-revalidate does not allow Authorization",
     "GET",
     {"Authorization: Basic eDp5"},
     200,
     {"Cache-Control: proxy-revalidate, max-age=60"},
     CN_POLICY_NS_AUTHORIZATION},
    {"§4.1 Vary: *",
     "GET",
     {NULL},
     200,
     {"Cache-Control: max-age=60", "Vary: *"},
     CN_POLICY_NS_VARY_STAR},
    {"§4.1 Vary list with *",
     "GET",
     {NULL},
     200,
     {"Cache-Control: max-age=60", "Vary: Accept", "Vary: Origin, *"},
     CN_POLICY_NS_VARY_STAR},
    {"§4.1 unparsable Vary",
     "GET",
     {NULL},
     200,
     {"Cache-Control: max-age=60", "Vary: a b"},
     CN_POLICY_NS_VARY_STAR},
    {"§4.1 Vary on a field",
     "GET",
     {NULL},
     200,
     {"Cache-Control: max-age=60", "Vary: Accept-Encoding"},
     CN_POLICY_STORE},
    {"RFC 9213 §2.1 CDN-Cache-Control overrides Cache-Control",
     "GET",
     {NULL},
     200,
     {"Cache-Control: no-store, private", "CDN-Cache-Control: max-age=60"},
     CN_POLICY_STORE},
    {"RFC 9213 §2.1 CDN-Cache-Control no-store",
     "GET",
     {NULL},
     200,
     {"Cache-Control: max-age=60", "CDN-Cache-Control: no-store"},
     CN_POLICY_NS_NO_STORE},
    {"RFC 9213 §2.1 invalid targeted field: fall back",
     "GET",
     {NULL},
     200,
     {"Cache-Control: no-store", "CDN-Cache-Control: Max-Age=60"},
     CN_POLICY_NS_NO_STORE},
    {"RFC 9213 §2.1 cairn's field first",
     "GET",
     {NULL},
     200,
     {"CDN-Cache-Control: max-age=60", "Cairn-Cache-Control: private"},
     CN_POLICY_NS_PRIVATE},
    {"RFC 9213 §2.1 Expires ignored with a targeted field",
     "GET",
     {NULL},
     302,
     {"CDN-Cache-Control: none", "Expires: " D_P100},
     CN_POLICY_NS_NOT_CACHEABLE},
    {"RFC 9213 §3.1 Cache-Control: no-store + CDN-Cache-Control: none",
     "GET",
     {NULL},
     200,
     {"Cache-Control: no-store", "CDN-Cache-Control: none"},
     CN_POLICY_STORE},
};

static void
test_storable_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(store_cases) / sizeof(store_cases[0]); i++) {
        const struct store_case *c = &store_cases[i];
        cn_http_req_t req;
        cn_headers_t resp;
        cn_cc_t req_cc, resp_cc;
        memset(&req, 0, sizeof(req));
        req.method = cn_iov_cstr(c->method);
        load(&req.headers, &f->arena, c->req);
        load(&resp, &f->arena, c->resp);
        cn_cc_parse_request(&req_cc, &req.headers);
        cn_policy_response_cc(&f->conf, &resp, &resp_cc);
        cn_policy_store_t got = cn_policy_storable(&req, &req_cc, c->status, &resp, &resp_cc);
        if (got != c->expect)
            fail_msg("%s: got %s, want %s", c->ref, cn_policy_store_reason(got),
                     cn_policy_store_reason(c->expect));
    }
}

static void
test_store_reasons(void **state)
{
    (void)state;
    /* RFC 9211 §2.8 detail tokens. */
    assert_string_equal(cn_policy_store_reason(CN_POLICY_STORE), "stored");
    assert_string_equal(cn_policy_store_reason(CN_POLICY_NS_NO_STORE), "no-store");
    assert_string_equal(cn_policy_store_reason(CN_POLICY_NS_PARTIAL), "partial-content");
    assert_string_equal(cn_policy_store_reason(CN_POLICY_NS_AUTHORIZATION), "authorization");
    assert_string_equal(cn_policy_store_reason(CN_POLICY_NS_NOT_CACHEABLE), "not-cacheable");
    assert_string_equal(cn_policy_store_reason((cn_policy_store_t)99), "unknown");
}

static void
test_status_classes(void **state)
{
    (void)state;
    /* §4.2.2 heuristically cacheable (RFC 9110 §15.1) */
    static const unsigned heuristic[] = {200, 203, 204, 206, 300, 301, 308,
                                         404, 405, 410, 414, 451, 501};
    for (size_t i = 0; i < sizeof(heuristic) / sizeof(heuristic[0]); i++)
        assert_true(cn_policy_status_heuristic(heuristic[i]));
    assert_false(cn_policy_status_heuristic(302));
    assert_false(cn_policy_status_heuristic(500));
    /* §5.2.2.3 understood */
    assert_true(cn_policy_status_understood(200));
    assert_true(cn_policy_status_understood(308));
    assert_true(cn_policy_status_understood(307));
    assert_true(cn_policy_status_understood(429));
    assert_false(cn_policy_status_understood(206));
    assert_false(cn_policy_status_understood(304));
    assert_false(cn_policy_status_understood(418));
    assert_false(cn_policy_status_understood(299));
    /* RFC 5861 §4 */
    assert_true(cn_policy_status_is_error(500));
    assert_true(cn_policy_status_is_error(504));
    assert_false(cn_policy_status_is_error(501));
    assert_false(cn_policy_status_is_error(404));
}

/* ---- §3.1 / §5.2.2.4 stripping ---- */

static void
test_strip(void **state)
{
    struct fixture *f = *state;
    cn_headers_t h;
    cn_cc_t cc;
    const char *lines[] = {"Connection: close, X-Hop",
                           "X-Hop: 1",
                           "Keep-Alive: timeout=5",
                           "Transfer-Encoding: chunked",
                           "Set-Cookie: a=1",
                           "Content-Type: text/plain",
                           "X-User: bob",
                           NULL};
    load(&h, &f->arena, lines);
    cn_cc_init(&cc);
    cn_cc_add_value(&cc, CAIRN_IOV_LIT("private=\"set-cookie, x-user\", no-cache=content-type"));
    /* §3.1 / RFC 9110 §7.6.1 hop-by-hop; §5.2.2.7 private fields */
    assert_int_equal(cn_policy_strip_for_storage(&h, &cc), 6);
    assert_string_equal(dump(&h), "Content-Type: text/plain\n");
    /* §5.2.2.4 qualified no-cache: stripped when reused unvalidated */
    assert_int_equal(cn_policy_strip_for_reuse(&h, &cc), 1);
    assert_int_equal(h.n, 0);
    cn_cc_init(&cc);
    load(&h, &f->arena, lines);
    assert_int_equal(cn_policy_strip_for_reuse(&h, &cc), 0);
    assert_int_equal(h.n, 7);
}

/* ---- §4.2.1 / §4.2.2 freshness lifetime ---- */

struct life_case {
    const char *ref;
    unsigned status;
    const char *resp[MAX_H];
    int64_t expect;
    bool heuristic;
};

/* response_time is T + 5 throughout. */
static const struct life_case life_cases[] = {
    {"§4.2.1 s-maxage over max-age", 200, {"Cache-Control: max-age=10, s-maxage=100"}, 100, false},
    {"§4.2.1 max-age over Expires",
     200,
     {"Cache-Control: max-age=10", "Date: " D0, "Expires: " D_P3600},
     10,
     false},
    {"§5.3 s-maxage over Expires",
     200,
     {"Cache-Control: s-maxage=7", "Date: " D0, "Expires: " D_P3600},
     7,
     false},
    {"§4.2.1 Expires - Date", 200, {"Date: " D0, "Expires: " D_P3600}, 3600, false},
    {"§4.2.1 Expires without Date: response time", 200, {"Expires: " D_P3600}, 3595, false},
    {"§4.2.1 Expires with invalid Date: response time",
     200,
     {"Date: yesterday", "Expires: " D_P3600},
     3595,
     false},
    {"§5.3 Expires: 0 is already expired", 200, {"Date: " D0, "Expires: 0"}, 0, false},
    {"§5.3 invalid Expires", 200, {"Date: " D0, "Expires: soon"}, 0, false},
    {"§5.3 Expires in the past", 200, {"Date: " D0, "Expires: " D_M100}, 0, false},
    {"§4.2.1 conflicting Expires lines: stale",
     200,
     {"Date: " D0, "Expires: " D_P3600, "Expires: " D_P100},
     0,
     false},
    {"§4.2.1 repeated identical Expires",
     200,
     {"Date: " D0, "Expires: " D_P100, "Expires: " D_P100},
     100,
     false},
    {"§4.2.1 invalid max-age: stale, Expires not used",
     200,
     {"Cache-Control: max-age=abc", "Date: " D0, "Expires: " D_P3600},
     0,
     false},
    {"§4.2.1 conflicting max-age: stale", 200, {"Cache-Control: max-age=10, max-age=20"}, 0, false},
    {"§4.2.1 invalid s-maxage: stale despite max-age",
     200,
     {"Cache-Control: s-maxage=x, max-age=60"},
     0,
     false},
    {"§1.2.2 clamps to 2^31", 200, {"Cache-Control: max-age=9999999999999"}, 2147483648LL, false},
    {"RFC 9213 §2.1 CDN-Cache-Control wins",
     200,
     {"Cache-Control: max-age=10", "CDN-Cache-Control: max-age=300"},
     300,
     false},
    {"RFC 9213 §2.1 Cache-Control s-maxage ignored",
     200,
     {"Cache-Control: s-maxage=10", "CDN-Cache-Control: max-age=300"},
     300,
     false},
    {"RFC 9213 §2.1 Cairn-Cache-Control first",
     200,
     {"Cairn-Cache-Control: max-age=5", "CDN-Cache-Control: max-age=300"},
     5,
     false},
    {"RFC 9213 §2.1 invalid targeted: fall back",
     200,
     {"Cache-Control: max-age=10", "CDN-Cache-Control: max-age=300,"},
     10,
     false},
    {"RFC 9213 §2.1 targeted: Expires ignored, heuristic",
     200,
     {"CDN-Cache-Control: none", "Date: " D0, "Expires: " D_P3600, "Last-Modified: " D_M1000},
     100,
     true},
    {"§4.2.2 10% of Date - Last-Modified",
     200,
     {"Date: " D0, "Last-Modified: " D_M1000},
     100,
     true},
    {"§4.2.2 capped at one day", 200, {"Date: " D0, "Last-Modified: " D_M100D}, 86400, true},
    {"§4.2.2 exactly one day", 200, {"Date: " D0, "Last-Modified: " D_M10D}, 86400, true},
    {"§4.2.2 no Date: response time", 200, {"Last-Modified: " D_M1000}, 100, true},
    {"§4.2.2 not for 302", 302, {"Date: " D0, "Last-Modified: " D_M1000}, 0, false},
    {"§4.2.2 302 + public",
     302,
     {"Cache-Control: public", "Date: " D0, "Last-Modified: " D_M1000},
     100,
     true},
    {"§4.2.2 never with explicit freshness",
     200,
     {"Cache-Control: max-age=0", "Date: " D0, "Last-Modified: " D_M1000},
     0,
     false},
    {"§4.2.2 never with Expires",
     200,
     {"Date: " D0, "Expires: " D0, "Last-Modified: " D_M1000},
     0,
     false},
    {"§4.2.2 without Last-Modified", 200, {"Date: " D0}, 0, false},
    {"§4.2.2 Last-Modified after Date", 200, {"Date: " D0, "Last-Modified: " D_P100}, 0, false},
    {"§4.2.2 invalid Last-Modified", 200, {"Date: " D0, "Last-Modified: never"}, 0, false},
};

static void
test_lifetime_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(life_cases) / sizeof(life_cases[0]); i++) {
        const struct life_case *c = &life_cases[i];
        cn_headers_t resp;
        cn_cc_t cc;
        bool heuristic = !c->heuristic;
        load(&resp, &f->arena, c->resp);
        cn_policy_response_cc(&f->conf, &resp, &cc);
        int64_t got =
            cn_policy_freshness_lifetime(&f->conf, c->status, &resp, &cc, T + 5, &heuristic);
        if (got != c->expect || heuristic != c->heuristic)
            fail_msg("%s: got %lld%s, want %lld%s", c->ref, (long long)got,
                     heuristic ? " (heuristic)" : "", (long long)c->expect,
                     c->heuristic ? " (heuristic)" : "");
    }
}

static void
test_heuristic_conf(void **state)
{
    struct fixture *f = *state;
    cn_headers_t resp;
    cn_cc_t cc;
    const char *lines[] = {"Date: " D0, "Last-Modified: " D_M1000, NULL};
    load(&resp, &f->arena, lines);
    cn_cc_init(&cc);
    /* §4.2.2 the fraction and the cap are configurable */
    f->conf.heuristic_fraction = 0.2;
    assert_int_equal(cn_policy_freshness_lifetime(&f->conf, 200, &resp, &cc, T, NULL), 200);
    f->conf.heuristic_max = 50;
    assert_int_equal(cn_policy_freshness_lifetime(&f->conf, 200, &resp, &cc, T, NULL), 50);
    f->conf.heuristic_fraction = 0;
    assert_int_equal(cn_policy_freshness_lifetime(&f->conf, 200, &resp, &cc, T, NULL), 0);
    /* RFC 9213: CDN-Cache-Control can be turned off, and cairn's field renamed. */
    cn_policy_conf_init(&f->conf);
    const char *targeted[] = {"CDN-Cache-Control: max-age=300", "Cache-Control: max-age=10",
                              "Edge-Control: max-age=7", NULL};
    load(&resp, &f->arena, targeted);
    f->conf.cdn_cache_control = false;
    cn_policy_response_cc(&f->conf, &resp, &cc);
    assert_false(cc.targeted);
    assert_int_equal(cc.max_age, 10);
    f->conf.target_field = CAIRN_IOV_LIT("Edge-Control");
    cn_policy_response_cc(&f->conf, &resp, &cc);
    assert_true(cc.targeted);
    assert_int_equal(cc.max_age, 7);
}

/* ---- §4.2.3 age ---- */

struct age_case {
    const char *ref;
    const char *resp[MAX_H];
    int64_t request_time, response_time;
    int64_t expect;
};

static const struct age_case age_cases[] = {
    {"§4.2.3 Age + response_delay beats apparent_age", {"Date: " D_P5, "Age: 20"}, T, T + 10, 30},
    {"§4.2.3 apparent_age beats corrected_age_value", {"Date: " D_M50}, T, T + 10, 60},
    {"§4.2.3 Date in the future: apparent_age 0", {"Date: " D_P100}, T, T + 10, 10},
    {"§4.2.3 no Date: date_value = response_time", {"Age: 7"}, T, T + 3, 10},
    {"§4.2.3 invalid Age counts as 0", {"Date: " D_P10, "Age: abc"}, T, T + 10, 10},
    {"§4.2.3 negative Age counts as 0", {"Date: " D_P10, "Age: -5"}, T, T + 10, 10},
    {"§1.2.2 huge Age clamps", {"Age: 99999999999999"}, T, T, 2147483648LL},
    {"§5.1 several Age lines: the first", {"Age: 10", "Age: 20"}, T, T + 1, 11},
    {"§5.1 several Age lines: the first, not the largest", {"Age: 0", "Age: 7200"}, T, T, 0},
    {"§5.1 Age list: the first member", {"Age: 7200, 0"}, T, T, 7200},
    {"§5.1 Age list: the first member, not the largest", {"Age: 5 ,7200"}, T, T + 1, 6},
    {"§5.1 Age list: empty elements are not members", {"Age: , 30"}, T, T, 30},
    {"§5.1 empty first line: the next line's member", {"Age: ", "Age: 40, 1"}, T, T, 40},
    {"§5.1 invalid first member: age 0", {"Age: abc, 5"}, T, T + 2, 2},
    {"§5.1 invalid first line: later lines discarded", {"Age: 1.5", "Age: 9"}, T, T, 0},
    {"§4.2.3 clock skew: negative response_delay is 0", {"Age: 5"}, T + 10, T, 5},
    {"§4.2.3 nothing: age 0", {NULL}, T, T, 0},
};

static void
test_age_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(age_cases) / sizeof(age_cases[0]); i++) {
        const struct age_case *c = &age_cases[i];
        cn_headers_t resp;
        load(&resp, &f->arena, c->resp);
        int64_t got = cn_policy_initial_age(&resp, c->request_time, c->response_time);
        if (got != c->expect)
            fail_msg("%s: got %lld, want %lld", c->ref, (long long)got, (long long)c->expect);
    }
}

static void
test_current_age(void **state)
{
    struct fixture *f = *state;
    cn_headers_t resp;
    cn_cc_t cc;
    cn_policy_meta_t m;
    /* §4.2.3: request at T, response at T+10 carrying Date T+5 and Age 20. */
    const char *lines[] = {"Date: " D_P5, "Age: 20", "Cache-Control: max-age=100", NULL};
    load(&resp, &f->arena, lines);
    cn_policy_response_cc(&f->conf, &resp, &cc);
    cn_policy_meta_init(&m, &f->conf, 200, &resp, &cc, T, T + 10);
    assert_int_equal(m.date_value, T + 5);
    assert_int_equal(m.corrected_initial_age, 30);
    assert_int_equal(m.lifetime, 100);
    /* resident_time = now - response_time */
    assert_int_equal(cn_policy_current_age(&m, T + 10), 30);
    assert_int_equal(cn_policy_current_age(&m, T + 100), 120);
    assert_int_equal(cn_policy_current_age(&m, T), 30); /* clock went back */
    assert_int_equal(cn_policy_stale_at(&m), T + 10 + 100 - 30);
    assert_int_equal(cn_policy_usable_until(&m), T + 80);
    /* extreme clocks saturate instead of overflowing */
    assert_true(cn_policy_current_age(&m, INT64_MAX) > 0);
    assert_int_equal(cn_policy_current_age(&m, INT64_MIN), 30);
}

static void
test_meta_flags(void **state)
{
    struct fixture *f = *state;
    cn_headers_t resp;
    cn_cc_t cc;
    cn_policy_meta_t m;
    const char *a[] = {"Cache-Control: no-cache=\"Set-Cookie\", s-maxage=10, "
                       "stale-while-revalidate=30, stale-if-error=300, immutable",
                       "ETag: \"x\"", NULL};
    load(&resp, &f->arena, a);
    cn_policy_response_cc(&f->conf, &resp, &cc);
    cn_policy_meta_init(&m, &f->conf, 200, &resp, &cc, T, T);
    assert_int_equal(m.flags, CN_POLICY_NO_CACHE_FIELDS | CN_POLICY_NO_STALE | CN_POLICY_VALIDATOR |
                                  CN_POLICY_IMMUTABLE);
    assert_int_equal(m.stale_while_revalidate, 30);
    assert_int_equal(m.stale_if_error, 300);
    /* s-maxage: the windows do not extend usability (§5.2.2.10 implies proxy-revalidate). */
    assert_int_equal(cn_policy_usable_until(&m), T + 10);
    const char *b[] = {"Cache-Control: no-cache, no-cache=\"a\"", "Date: " D0,
                       "Last-Modified: " D_M1000, NULL};
    load(&resp, &f->arena, b);
    cn_policy_response_cc(&f->conf, &resp, &cc);
    cn_policy_meta_init(&m, &f->conf, 200, &resp, &cc, T, T);
    assert_int_equal(m.flags, CN_POLICY_NO_CACHE | CN_POLICY_HEURISTIC | CN_POLICY_VALIDATOR);
    assert_int_equal(m.lifetime, 100);
    assert_int_equal(m.stale_while_revalidate, -1);
}

/* ---- §4, §4.2.4, RFC 5861: using a stored response ---- */

struct fresh_case {
    const char *ref;
    const char *resp_cc; /* the stored response's Cache-Control */
    int64_t age;         /* current_age at the check */
    const char *req_cc;  /* the request's Cache-Control, or NULL */
    cn_policy_fresh_t expect;
};

static const struct fresh_case fresh_cases[] = {
    {"§4.2 fresh", "max-age=100", 50, NULL, CN_POLICY_FRESH},
    {"§4.2 age == lifetime is stale", "max-age=100", 100, NULL, CN_POLICY_REVALIDATE},
    {"§4.2.4 stale without permission", "max-age=100", 150, NULL, CN_POLICY_REVALIDATE},
    {"§4.2 max-age=0 response", "max-age=0", 0, NULL, CN_POLICY_REVALIDATE},
    {"§5.2.1.1 request max-age exceeded", "max-age=100", 50, "max-age=30",
     CN_POLICY_REVALIDATE_REQ},
    {"§5.2.1.1 request max-age equal is fine", "max-age=100", 50, "max-age=50", CN_POLICY_FRESH},
    {"§5.2.1.1 request max-age=0", "max-age=100", 1, "max-age=0", CN_POLICY_REVALIDATE_REQ},
    {"§5.2.1.1 request max-age=0 at age 0", "max-age=100", 0, "max-age=0", CN_POLICY_FRESH},
    {"§5.2.1.1 max-age does not allow stale", "max-age=100", 150, "max-age=200",
     CN_POLICY_REVALIDATE},
    {"§5.2.1.1 invalid request max-age ignored", "max-age=100", 50, "max-age=soon",
     CN_POLICY_FRESH},
    {"§5.2.1.3 min-fresh not met", "max-age=100", 50, "min-fresh=60", CN_POLICY_REVALIDATE_REQ},
    {"§5.2.1.3 min-fresh met exactly", "max-age=100", 50, "min-fresh=50", CN_POLICY_FRESH},
    {"§5.2.1.3 min-fresh beats max-stale", "max-age=100", 150, "min-fresh=1, max-stale",
     CN_POLICY_REVALIDATE},
    {"§5.2.1.2 bare max-stale", "max-age=100", 100000, "max-stale", CN_POLICY_STALE_OK},
    {"§5.2.1.2 max-stale=50 at staleness 50", "max-age=100", 150, "max-stale=50",
     CN_POLICY_STALE_OK},
    {"§5.2.1.2 max-stale=49 at staleness 50", "max-age=100", 150, "max-stale=49",
     CN_POLICY_REVALIDATE},
    {"§5.2.1.2 conflicting max-stale: smallest", "max-age=100", 150, "max-stale, max-stale=10",
     CN_POLICY_REVALIDATE},
    {"§5.2.2.2 must-revalidate: never stale with max-stale", "max-age=100, must-revalidate", 150,
     "max-stale", CN_POLICY_REVALIDATE},
    {"§5.2.2.8 proxy-revalidate: never stale", "max-age=100, proxy-revalidate", 150, "max-stale",
     CN_POLICY_REVALIDATE},
    {"§5.2.2.10 s-maxage: never stale", "s-maxage=100", 150, "max-stale", CN_POLICY_REVALIDATE},
    {"§5.2.2.2 must-revalidate while fresh", "max-age=100, must-revalidate", 50, NULL,
     CN_POLICY_FRESH},
    {"§5.2.1.4 request no-cache", "max-age=100", 0, "no-cache", CN_POLICY_REVALIDATE_REQ},
    {"§5.2.2.4 response no-cache", "max-age=100, no-cache", 0, NULL, CN_POLICY_REVALIDATE},
    {"§5.2.2.4 response no-cache beats max-stale", "no-cache", 10, "max-stale",
     CN_POLICY_REVALIDATE},
    {"§5.2.2.4 qualified no-cache does not stop reuse", "max-age=100, no-cache=\"Set-Cookie\"", 10,
     NULL, CN_POLICY_FRESH},
    {"RFC 5861 §3 within stale-while-revalidate", "max-age=100, stale-while-revalidate=60", 150,
     NULL, CN_POLICY_STALE_SWR},
    {"RFC 5861 §3 at the end of the window", "max-age=100, stale-while-revalidate=60", 160, NULL,
     CN_POLICY_STALE_SWR},
    {"RFC 5861 §3 past the window", "max-age=100, stale-while-revalidate=60", 161, NULL,
     CN_POLICY_REVALIDATE},
    {"RFC 5861 §3 past the window, max-stale", "max-age=100, stale-while-revalidate=60", 161,
     "max-stale", CN_POLICY_STALE_OK},
    {"§4.2.4 must-revalidate beats stale-while-revalidate",
     "max-age=100, stale-while-revalidate=60, must-revalidate", 150, NULL, CN_POLICY_REVALIDATE},
    {"RFC 5861 §3 request max-age still applies", "max-age=100, stale-while-revalidate=60", 150,
     "max-age=120", CN_POLICY_REVALIDATE_REQ},
    {"RFC 5861 invalid window ignored", "max-age=100, stale-while-revalidate=x", 150, NULL,
     CN_POLICY_REVALIDATE},
    {"§5.2.1.7 only-if-cached does not change the decision", "max-age=100", 150, "only-if-cached",
     CN_POLICY_REVALIDATE},
};

static void
meta_for(struct fixture *f, const char *resp_cc, cn_policy_meta_t *m)
{
    cn_headers_t resp;
    cn_cc_t cc;
    const char *lines[] = {"Date: " D0, NULL, NULL};
    char line[256];
    snprintf(line, sizeof(line), "Cache-Control: %s", resp_cc);
    lines[1] = line;
    load(&resp, &f->arena, lines);
    cn_policy_response_cc(&f->conf, &resp, &cc);
    cn_policy_meta_init(m, &f->conf, 200, &resp, &cc, T, T);
}

static void
test_freshness_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(fresh_cases) / sizeof(fresh_cases[0]); i++) {
        const struct fresh_case *c = &fresh_cases[i];
        cn_policy_meta_t m;
        cn_cc_t req;
        meta_for(f, c->resp_cc, &m);
        cn_cc_init(&req);
        if (c->req_cc)
            cn_cc_add_value(&req, cn_iov_cstr(c->req_cc));
        cn_policy_fresh_t got = cn_policy_freshness_check(&m, c->req_cc ? &req : NULL, T + c->age);
        if (got != c->expect)
            fail_msg("%s: got %d, want %d", c->ref, (int)got, (int)c->expect);
    }
}

static void
test_freshness_pragma_and_fwd(void **state)
{
    struct fixture *f = *state;
    cn_policy_meta_t m;
    cn_headers_t req;
    cn_cc_t cc;
    meta_for(f, "max-age=100", &m);
    /* §5.4 Pragma: no-cache without Cache-Control */
    const char *pragma[] = {"Pragma: no-cache", NULL};
    load(&req, &f->arena, pragma);
    cn_cc_parse_request(&cc, &req);
    assert_int_equal(cn_policy_freshness_check(&m, &cc, T), CN_POLICY_REVALIDATE_REQ);
    const char *both[] = {"Pragma: no-cache", "Cache-Control: max-stale", NULL};
    load(&req, &f->arena, both);
    cn_cc_parse_request(&cc, &req);
    assert_int_equal(cn_policy_freshness_check(&m, &cc, T), CN_POLICY_FRESH);
    /* RFC 9211 §2.2 fwd values */
    assert_null(cn_policy_fresh_fwd(CN_POLICY_FRESH));
    assert_null(cn_policy_fresh_fwd(CN_POLICY_STALE_OK));
    assert_null(cn_policy_fresh_fwd(CN_POLICY_STALE_SWR));
    assert_string_equal(cn_policy_fresh_fwd(CN_POLICY_REVALIDATE), "stale");
    assert_string_equal(cn_policy_fresh_fwd(CN_POLICY_REVALIDATE_REQ), "request");
}

struct sie_case {
    const char *ref;
    const char *resp_cc;
    int64_t age;
    const char *req_cc;
    bool expect;
};

static const struct sie_case sie_cases[] = {
    {"RFC 5861 §4 within the window", "max-age=100, stale-if-error=300", 400, NULL, true},
    {"RFC 5861 §4 past the window", "max-age=100, stale-if-error=300", 401, NULL, false},
    {"RFC 5861 §4 fresh counts as staleness 0", "max-age=100, stale-if-error=0", 50, NULL, true},
    {"RFC 5861 §4 no window", "max-age=100", 150, NULL, false},
    {"RFC 5861 §4 fresh but no window", "max-age=100", 50, NULL, false},
    {"RFC 5861 §4 request stale-if-error", "max-age=100", 400, "stale-if-error=300", true},
    {"RFC 5861 §4 request window too small", "max-age=100", 401, "stale-if-error=300", false},
    {"RFC 5861 §4 either window grants it", "max-age=100, stale-if-error=10", 400,
     "stale-if-error=300", true},
    {"§5.2.2.2 must-revalidate forbids it", "max-age=100, must-revalidate, stale-if-error=300", 150,
     NULL, false},
    {"§5.2.2.10 s-maxage forbids it", "s-maxage=100, stale-if-error=300", 150, "stale-if-error=300",
     false},
    {"§5.2.2.4 no-cache forbids it", "no-cache, stale-if-error=300", 10, NULL, false},
    {"RFC 5861 invalid window", "max-age=100, stale-if-error=soon", 150, NULL, false},
};

static void
test_stale_if_error_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(sie_cases) / sizeof(sie_cases[0]); i++) {
        const struct sie_case *c = &sie_cases[i];
        cn_policy_meta_t m;
        cn_cc_t req;
        meta_for(f, c->resp_cc, &m);
        cn_cc_init(&req);
        if (c->req_cc)
            cn_cc_add_value(&req, cn_iov_cstr(c->req_cc));
        if (cn_policy_stale_if_error(&m, c->req_cc ? &req : NULL, T + c->age) != c->expect)
            fail_msg("%s: want %s", c->ref, c->expect ? "true" : "false");
    }
}

/* ---- §4.3.4 / §4.3.5 updating ---- */

struct match_case {
    const char *ref;
    const char *stored[MAX_H];
    const char *r304[MAX_H];
    bool expect;
};

static const struct match_case match_cases[] = {
    {"§4.3.4 same strong ETag", {"ETag: \"a\""}, {"ETag: \"a\""}, true},
    {"§4.3.4 different strong ETag", {"ETag: \"a\""}, {"ETag: \"b\""}, false},
    {"§4.3.4 strong vs stored weak", {"ETag: W/\"a\""}, {"ETag: \"a\""}, false},
    {"§4.3.4 weak 304 ETag, weak match", {"ETag: \"a\""}, {"ETag: W/\"a\""}, true},
    {"§4.3.4 weak ETag mismatch", {"ETag: W/\"a\""}, {"ETag: W/\"b\""}, false},
    {"§4.3.4 Last-Modified equal", {"Last-Modified: " D0}, {"Last-Modified: " D0}, true},
    {"§4.3.4 Last-Modified differs", {"Last-Modified: " D0}, {"Last-Modified: " D_M100}, false},
    {"§4.3.4 weak ETag and Last-Modified must both match",
     {"ETag: W/\"a\"", "Last-Modified: " D0},
     {"ETag: W/\"a\"", "Last-Modified: " D_M100},
     false},
    {"§4.3.4 no validators on either side", {"Content-Type: a/b"}, {"Date: " D0}, true},
    {"§4.3.4 304 without validator, stored has one", {"ETag: \"a\""}, {"Date: " D0}, false},
    {"§4.3.4 malformed 304 ETag", {"ETag: \"a\""}, {"ETag: a"}, false},
};

static void
test_304_match_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *c = &match_cases[i];
        cn_headers_t stored, r304;
        load(&stored, &f->arena, c->stored);
        load(&r304, &f->arena, c->r304);
        if (cn_policy_304_matches(&stored, &r304) != c->expect)
            fail_msg("%s: want %s", c->ref, c->expect ? "true" : "false");
    }
}

static void
test_update_headers(void **state)
{
    struct fixture *f = *state;
    cn_headers_t stored, r304, out;
    cn_cc_t cc;
    const char *s[] = {("Date: " D0),
                       "ETag: \"a\"",
                       "Content-Length: 10",
                       "Content-Type: text/plain",
                       "Cache-Control: max-age=10",
                       "Age: 5",
                       "Set-Cookie: a=1",
                       "Set-Cookie: b=2"};
    const char *u[] = {("Date: " D_P100),   "ETag: \"a\"",     "Cache-Control: max-age=60",
                       "Content-Length: 0", "Set-Cookie: c=3", "Content-Encoding: gzip",
                       "Connection: X-Hop", "X-Hop: 1"};
    load(&stored, &f->arena, s);
    cn_headers_add(&stored, CAIRN_IOV_LIT("X-Old"), CAIRN_IOV_LIT("1"));
    load(&r304, &f->arena, u);
    cn_headers_add(&r304, CAIRN_IOV_LIT("X-New"), CAIRN_IOV_LIT("2"));
    /* §4.3.4: replace in place, keep Content-Length, drop the stored Age, skip framing and
     * hop-by-hop fields, append new names. */
    assert_int_equal(cn_policy_update_headers(&f->arena, &stored, &r304, NULL, T + 100, &out),
                     CAIRN_OK);
    assert_string_equal(dump(&out), "Date: " D_P100 "\n"
                                    "ETag: \"a\"\n"
                                    "Content-Length: 10\n"
                                    "Content-Type: text/plain\n"
                                    "Cache-Control: max-age=60\n"
                                    "Set-Cookie: c=3\n"
                                    "X-Old: 1\n"
                                    "X-New: 2\n");
    /* The result owns copies of its strings. */
    assert_ptr_not_equal(out.items[1].value.base, stored.items[1].value.base);

    /* RFC 9110 §6.6.1: a 304 without Date gets the receipt time; its Age is kept; §3.1 its
     * private fields are neither taken nor kept. */
    const char *u2[] = {"ETag: \"a\"", "Age: 3", "Cache-Control: private=\"X-Old\"", NULL};
    load(&r304, &f->arena, u2);
    cn_cc_parse(&cc, &r304, CAIRN_IOV_LIT("Cache-Control"));
    assert_int_equal(cn_policy_update_headers(&f->arena, &stored, &r304, &cc, T + 3600, &out),
                     CAIRN_OK);
    assert_string_equal(dump(&out), "Date: " D_P3600 "\n"
                                    "ETag: \"a\"\n"
                                    "Content-Length: 10\n"
                                    "Content-Type: text/plain\n"
                                    "Cache-Control: private=\"X-Old\"\n"
                                    "Age: 3\n"
                                    "Set-Cookie: a=1\n"
                                    "Set-Cookie: b=2\n");

    /* No Date anywhere: one is appended. */
    const char *s3[] = {"ETag: \"a\"", NULL};
    load(&stored, &f->arena, s3);
    load(&r304, &f->arena, s3);
    assert_int_equal(cn_policy_update_headers(&f->arena, &stored, &r304, NULL, T, &out), CAIRN_OK);
    assert_string_equal(dump(&out), "ETag: \"a\"\nDate: " D0 "\n");

    /* Over the arena cap: ENOMEM, @out untouched. */
    cn_arena_t small;
    cn_headers_t untouched = out;
    cn_arena_init(&small, 64);
    load(&stored, &f->arena, s);
    load(&r304, &f->arena, u);
    assert_int_equal(cn_policy_update_headers(&small, &stored, &r304, NULL, T, &out), CAIRN_ENOMEM);
    assert_memory_equal(&out, &untouched, sizeof(out));
    cn_arena_fini(&small);
}

/* ---- §4.3.1 / §4.3.2 validation ---- */

static void
test_add_validators(void **state)
{
    struct fixture *f = *state;
    cn_headers_t fwd, stored;
    const char *client[] = {"Host: example.com", "If-None-Match: \"zzz\"",
                            "If-Modified-Since: " D_M100, NULL};
    const char *s1[] = {"ETag: W/\"a\"", "Last-Modified: " D_M1000, "Date: " D0, NULL};
    const char *s2[] = {"Date: " D0, NULL};
    /* §4.3.1: send the stored validators instead of the client's */
    load(&fwd, &f->arena, client);
    load(&stored, &f->arena, s1);
    assert_true(cn_policy_add_validators(&fwd, &stored));
    assert_string_equal(dump(&fwd), "Host: example.com\n"
                                    "If-None-Match: W/\"a\"\n"
                                    "If-Modified-Since: " D_M1000 "\n");
    /* Nothing to validate with: unchanged. */
    load(&fwd, &f->arena, client);
    load(&stored, &f->arena, s2);
    assert_false(cn_policy_add_validators(&fwd, &stored));
    assert_int_equal(fwd.n, 3);
}

struct cond_case {
    const char *ref;
    const char *method;
    const char *req[MAX_H];
    const char *stored[MAX_H];
    cn_cond_result_t expect;
};

/* The stored response was received at T + 5. */
static const struct cond_case cond_cases[] = {
    {"§4.3.2 If-None-Match matches",
     "GET",
     {"If-None-Match: \"a\""},
     {"ETag: \"a\""},
     CN_COND_NOT_MODIFIED},
    {"§4.3.2 weak comparison",
     "GET",
     {"If-None-Match: W/\"a\""},
     {"ETag: \"a\""},
     CN_COND_NOT_MODIFIED},
    {"§4.3.2 If-None-Match differs",
     "GET",
     {"If-None-Match: \"b\""},
     {"ETag: \"a\""},
     CN_COND_PROCEED},
    {"§4.3.2 If-None-Match: *",
     "GET",
     {"If-None-Match: *"},
     {"Content-Type: a/b"},
     CN_COND_NOT_MODIFIED},
    {"§4.3.2 If-None-Match takes precedence",
     "GET",
     {"If-None-Match: \"b\"", "If-Modified-Since: " D0},
     {"ETag: \"a\"", "Last-Modified: " D_M1000},
     CN_COND_PROCEED},
    {"§4.3.2 If-Modified-Since not modified",
     "GET",
     {"If-Modified-Since: " D_M100},
     {"Last-Modified: " D_M1000},
     CN_COND_NOT_MODIFIED},
    {"§4.3.2 If-Modified-Since modified",
     "GET",
     {"If-Modified-Since: " D_M1000},
     {"Last-Modified: " D_M100},
     CN_COND_PROCEED},
    {"§4.3.2 no Last-Modified: stored Date",
     "GET",
     {"If-Modified-Since: " D0},
     {"Date: " D0},
     CN_COND_NOT_MODIFIED},
    {"§4.3.2 no Last-Modified: stored Date, older",
     "GET",
     {"If-Modified-Since: " D_M100},
     {"Date: " D0},
     CN_COND_PROCEED},
    {"§4.3.2 no Last-Modified nor Date: response time",
     "GET",
     {"If-Modified-Since: " D_P5},
     {"Content-Type: a/b"},
     CN_COND_NOT_MODIFIED},
    {"§4.3.2 no Last-Modified nor Date: response time, older",
     "GET",
     {"If-Modified-Since: " D0},
     {"Content-Type: a/b"},
     CN_COND_PROCEED},
    {"§4.3.2 If-Match is not for a cache",
     "GET",
     {"If-Match: \"x\""},
     {"ETag: \"a\""},
     CN_COND_PROCEED},
    {"§4.3.2 If-Match ignored, If-None-Match used",
     "GET",
     {"If-Match: \"x\"", "If-None-Match: \"a\""},
     {"ETag: \"a\""},
     CN_COND_NOT_MODIFIED},
    {"§4.3.2 If-Unmodified-Since ignored",
     "GET",
     {"If-Unmodified-Since: " D_M10D, "If-Modified-Since: " D0},
     {"Last-Modified: " D_M1000},
     CN_COND_NOT_MODIFIED},
    {"§4.3.2 HEAD", "HEAD", {"If-None-Match: \"a\""}, {"ETag: \"a\""}, CN_COND_NOT_MODIFIED},
    {"§4.3.2 not GET/HEAD", "POST", {"If-None-Match: \"a\""}, {"ETag: \"a\""}, CN_COND_PROCEED},
    {"§4.3.2 no conditionals", "GET", {"Accept: */*"}, {"ETag: \"a\""}, CN_COND_PROCEED},
};

static void
test_conditional_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(cond_cases) / sizeof(cond_cases[0]); i++) {
        const struct cond_case *c = &cond_cases[i];
        cn_headers_t req, stored;
        load(&req, &f->arena, c->req);
        load(&stored, &f->arena, c->stored);
        cn_cond_result_t got = cn_policy_conditional(cn_iov_cstr(c->method), &req, &stored, T + 5);
        if (got != c->expect)
            fail_msg("%s: got %d, want %d", c->ref, (int)got, (int)c->expect);
    }
}

static void
test_conditional_many_lines(void **state)
{
    struct fixture *f = *state;
    cn_headers_t req, stored;
    const char *s1[] = {"ETag: \"a\"", NULL};
    load(&stored, &f->arena, s1);
    cn_headers_init(&req, &f->arena);
    for (int i = 0; i < 16; i++)
        cn_headers_add(&req, CAIRN_IOV_LIT("If-None-Match"), CAIRN_IOV_LIT("\"a\""));
    assert_int_equal(cn_policy_conditional(CAIRN_IOV_LIT("GET"), &req, &stored, T),
                     CN_COND_NOT_MODIFIED);
    /* Past the bound the request is answered in full, which is always correct. */
    cn_headers_add(&req, CAIRN_IOV_LIT("If-None-Match"), CAIRN_IOV_LIT("\"a\""));
    assert_int_equal(cn_policy_conditional(CAIRN_IOV_LIT("GET"), &req, &stored, T),
                     CN_COND_PROCEED);
}

struct head_case {
    const char *ref;
    unsigned status;
    const char *stored[MAX_H];
    int64_t stored_length;
    const char *head[MAX_H];
    cn_policy_head_t expect;
};

static const struct head_case head_cases[] = {
    {"§4.3.5 not a 200", 404, {"ETag: \"a\""}, 10, {"ETag: \"b\""}, CN_POLICY_HEAD_IGNORE},
    {"§4.3.5 same ETag and length",
     200,
     {"ETag: \"a\""},
     10,
     {"ETag: \"a\"", "Content-Length: 10"},
     CN_POLICY_HEAD_UPDATE},
    {"§4.3.5 different ETag", 200, {"ETag: \"a\""}, 10, {"ETag: \"b\""}, CN_POLICY_HEAD_INVALIDATE},
    {"§4.3.5 ETag the stored response lacks",
     200,
     {"Content-Type: a/b"},
     10,
     {"ETag: \"b\""},
     CN_POLICY_HEAD_INVALIDATE},
    {"§4.3.5 different Last-Modified",
     200,
     {"Last-Modified: " D0},
     10,
     {"Last-Modified: " D_M100},
     CN_POLICY_HEAD_INVALIDATE},
    {"§4.3.5 different length",
     200,
     {"ETag: \"a\""},
     10,
     {"ETag: \"a\"", "Content-Length: 11"},
     CN_POLICY_HEAD_INVALIDATE},
    {"§4.3.5 no validators, no length",
     200,
     {"ETag: \"a\""},
     10,
     {"Content-Type: a/b"},
     CN_POLICY_HEAD_UPDATE},
    {"§4.3.5 stored length from the stored field",
     200,
     {"Content-Length: 10"},
     -1,
     {"Content-Length: 10"},
     CN_POLICY_HEAD_UPDATE},
    {"§4.3.5 unparsable HEAD Content-Length",
     200,
     {"ETag: \"a\""},
     10,
     {"Content-Length: x"},
     CN_POLICY_HEAD_INVALIDATE},
    {"§4.3.5 stored length unknown",
     200,
     {"ETag: \"a\""},
     -1,
     {"Content-Length: 10"},
     CN_POLICY_HEAD_INVALIDATE},
};

static void
test_head_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
        const struct head_case *c = &head_cases[i];
        cn_headers_t stored, head;
        load(&stored, &f->arena, c->stored);
        load(&head, &f->arena, c->head);
        cn_policy_head_t got = cn_policy_head_update(c->status, &stored, c->stored_length, &head);
        if (got != c->expect)
            fail_msg("%s: got %d, want %d", c->ref, (int)got, (int)c->expect);
    }
}

/* ---- §4.4 invalidation ---- */

struct inval_case {
    const char *method;
    unsigned status;
    bool expect;
};

static const struct inval_case inval_cases[] = {
    {"POST", 200, true},   {"POST", 201, true},  {"POST", 303, true},  {"POST", 404, false},
    {"POST", 500, false},  {"POST", 100, false}, {"PUT", 204, true},   {"DELETE", 200, true},
    {"PATCH", 200, true},  {"GET", 200, false},  {"HEAD", 200, false}, {"OPTIONS", 200, false},
    {"TRACE", 200, false}, {"PURGE", 200, true}, {"post", 200, true},  {"CONNECT", 200, true},
};

static void
test_invalidates_table(void **state)
{
    (void)state;
    /* §4.4: unsafe (or unknown) method + non-error status */
    for (size_t i = 0; i < sizeof(inval_cases) / sizeof(inval_cases[0]); i++)
        if (cn_policy_invalidates(cn_iov_cstr(inval_cases[i].method), inval_cases[i].status) !=
            inval_cases[i].expect)
            fail_msg("§4.4 %s %u: want %s", inval_cases[i].method, inval_cases[i].status,
                     inval_cases[i].expect ? "true" : "false");
    assert_true(cn_policy_method_is_safe(CAIRN_IOV_LIT("GET")));
    assert_false(cn_policy_method_is_safe(CAIRN_IOV_LIT("POST")));
}

struct target_case {
    const char *ref;
    const char *authority;
    const char *location; /* NULL = absent */
    const char *content_location;
    const char *expect[2];
};

/* Request: http://<authority>/a/b/c */
static const struct target_case target_cases[] = {
    {"§4.4 absolute path", "example.com", "/x", NULL, {"/x"}},
    {"§4.4 absolute URI, same origin", "example.com", "http://example.com/y?q=1", NULL, {"/y?q=1"}},
    {"§4.4 case-insensitive host, default port",
     "example.com",
     "HTTP://EXAMPLE.com:80/y",
     NULL,
     {"/y"}},
    {"§4.4 request authority with explicit default port",
     "example.com:80",
     "http://example.com/y",
     NULL,
     {"/y"}},
    {"§4.4 other scheme", "example.com", "https://example.com/y", NULL, {NULL}},
    {"§4.4 other host", "example.com", "http://other.example/y", NULL, {NULL}},
    {"§4.4 other port", "example.com", "http://example.com:8080/y", NULL, {NULL}},
    {"§4.4 network-path reference", "example.com", "//example.com/z", NULL, {"/z"}},
    {"§4.4 network-path to another host", "example.com", "//evil.example/z", NULL, {NULL}},
    {"§4.4 userinfo never matches", "example.com", "http://user@example.com/x", NULL, {NULL}},
    {"§4.4 non-hierarchical URI", "example.com", "mailto:x@example.com", NULL, {NULL}},
    {"RFC 3986 §5.2.3 relative path", "example.com", "d", NULL, {"/a/b/d"}},
    {"RFC 3986 §5.2.4 ../", "example.com", "../d", NULL, {"/a/d"}},
    {"RFC 3986 §5.2.4 ./ and ..", "example.com", "./d/../e", NULL, {"/a/b/e"}},
    {"RFC 3986 §5.2.4 dots in an absolute path", "example.com", "/x/./y/../z", NULL, {"/x/z"}},
    {"RFC 3986 §5.2.4 above the root", "example.com", "/../../x", NULL, {"/x"}},
    {"RFC 3986 §5.2.4 trailing /..", "example.com", "/x/y/..", NULL, {"/x/"}},
    {"RFC 3986 §5.2.2 query only", "example.com", "?q", NULL, {"/a/b/c?q"}},
    {"RFC 3986 empty path is /", "example.com", "http://example.com", NULL, {"/"}},
    {"RFC 3986 empty path with query", "example.com", "http://example.com?x", NULL, {"/?x"}},
    {"RFC 3986 fragment dropped", "example.com", "/x#frag", NULL, {"/x"}},
    {"§4.4 Content-Location too", "example.com", NULL, "/cl", {"/cl"}},
    {"§4.4 both", "example.com", "/x", "http://example.com/y", {"/x", "/y"}},
    {"§4.4 same target once", "example.com", "/x", "/./x", {"/x"}},
    {"§4.4 not a URI", "example.com", "/a b", NULL, {NULL}},
    {"§4.4 IPv6 literal", "[::1]:8080", "http://[::1]:8080/x", NULL, {"/x"}},
    {"§4.4 IPv6 other port", "[::1]:8080", "http://[::1]/x", NULL, {NULL}},
    {"§4.4 unterminated IPv6 literal", "example.com", "http://[::1/x", NULL, {NULL}},
    {"§4.4 port out of range", "example.com", "http://example.com:99999/x", NULL, {NULL}},
    {"§4.4 empty host", "example.com", "http://:80/x", NULL, {NULL}},
    {"RFC 3986 §3.2.3 empty port is the default",
     "example.com",
     "http://example.com:/x",
     NULL,
     {"/x"}},
    {"§4.4 junk after an IPv6 literal", "example.com", "http://[::1]x/y", NULL, {NULL}},
    {"§4.4 request without a usable authority", "", "/x", NULL, {NULL}},
};

static void
test_targets_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(target_cases) / sizeof(target_cases[0]); i++) {
        const struct target_case *c = &target_cases[i];
        cn_http_req_t req;
        cn_headers_t resp;
        cairn_iov_t out[2];
        size_t n = 99, want = (c->expect[0] != NULL) + (c->expect[1] != NULL);
        memset(&req, 0, sizeof(req));
        req.scheme = CAIRN_IOV_LIT("http");
        req.authority = cn_iov_cstr(c->authority);
        req.path = CAIRN_IOV_LIT("/a/b/c");
        cn_headers_init(&resp, &f->arena);
        if (c->location)
            cn_headers_add(&resp, CAIRN_IOV_LIT("Location"), cn_iov_cstr(c->location));
        if (c->content_location)
            cn_headers_add(&resp, CAIRN_IOV_LIT("Content-Location"),
                           cn_iov_cstr(c->content_location));
        assert_int_equal(cn_policy_invalidation_targets(&f->arena, &req, &resp, out, &n), CAIRN_OK);
        if (n != want)
            fail_msg("%s: %zu targets, want %zu (first: %.*s)", c->ref, n, want,
                     n ? (int)out[0].len : 0, n ? out[0].base : "");
        for (size_t k = 0; k < n; k++)
            if (!cn_iov_eq(out[k], cn_iov_cstr(c->expect[k])))
                fail_msg("%s: got %.*s, want %s", c->ref, (int)out[k].len, out[k].base,
                         c->expect[k]);
    }
}

static void
test_targets_repeated_location(void **state)
{
    struct fixture *f = *state;
    cn_http_req_t req;
    cn_headers_t resp;
    cairn_iov_t out[2];
    size_t n = 99;
    memset(&req, 0, sizeof(req));
    req.scheme = CAIRN_IOV_LIT("https");
    req.authority = CAIRN_IOV_LIT("example.com");
    req.path = CAIRN_IOV_LIT("/");
    const char *lines[] = {"Location: /x", "Location: /y",
                           "Content-Location: https://example.com:443/z", NULL};
    load(&resp, &f->arena, lines);
    /* A singleton field with two lines is invalid and skipped. */
    assert_int_equal(cn_policy_invalidation_targets(&f->arena, &req, &resp, out, &n), CAIRN_OK);
    assert_int_equal(n, 1);
    assert_true(cn_iov_eq(out[0], CAIRN_IOV_LIT("/z")));
}

/* ---- §4.1 Vary ---- */

struct vary_case {
    const char *ref;
    const char *resp[MAX_H];
    const char *req[MAX_H];
    const char *expect;
    bool star;
};

static const struct vary_case vary_cases[] = {
    {"§4.1 no Vary", {NULL}, {"Accept: */*", false}, "", false},
    {"§4.1 one field",
     {"Vary: Accept-Encoding", false},
     {"Accept-Encoding: gzip, br", false},
     "accept-encoding:br,gzip",
     false},
    {"§4.1 whitespace around commas removed",
     {"Vary: accept-encoding", false},
     {"Accept-Encoding:  gzip ,  br ", false},
     "accept-encoding:br,gzip",
     false},
    {"§4.1 lines combined",
     {"Vary: Accept-Encoding", false},
     {"Accept-Encoding: gzip", "accept-encoding: br", false},
     "accept-encoding:br,gzip",
     false},
    {"§4.1 Accept-Encoding: members lowercased and sorted",
     {"Vary: Accept-Encoding", false},
     {"Accept-Encoding: BR , GZIP", false},
     "accept-encoding:br,gzip",
     false},
    {"§4.1 Accept-Encoding: q-values kept, lowercased, spaces removed",
     {"Vary: Accept-Encoding", false},
     {"Accept-Encoding: gzip;q=0.5, BR ; Q=1", false},
     "accept-encoding:br;q=1,gzip;q=0.5",
     false},
    {"§4.1 Accept-Encoding: empty members dropped",
     {"Vary: Accept-Encoding", false},
     {"Accept-Encoding: ,gzip,, br,", "Accept-Encoding: ", false},
     "accept-encoding:br,gzip",
     false},
    {"§4.1 Accept-Encoding: only empty members differs from absent",
     {"Vary: Accept-Encoding", false},
     {"Accept-Encoding: , ,", false},
     "accept-encoding:",
     false},
    {"§4.1 Accept-Language: a normalised list",
     {"Vary: Accept-Language", false},
     {"Accept-Language: fr-CH, fr;q=0.9", "accept-language: EN;q=0.8, *;q=0.5", false},
     "accept-language:*;q=0.5,en;q=0.8,fr-ch,fr;q=0.9",
     false},
    {"§4.1 Accept-Encoding: escaping still applies",
     {"Vary: Accept-Encoding", false},
     {"Accept-Encoding: x%y, a\x01", false},
     "accept-encoding:a%01,x%25y",
     false},
    {"§4.1 Accept-Encoding with a quoted string: compared as other fields",
     {"Vary: Accept-Encoding", false},
     {"Accept-Encoding: \"b, A\", gzip", false},
     "accept-encoding:\"b, A\",gzip",
     false},
    {"§4.1 other fields keep member order and case",
     {"Vary: X-Tenant", false},
     {"X-Tenant: b, A", false},
     "x-tenant:b,A",
     false},
    {"§4.1 absent field",
     {"Vary: Accept-Encoding", false},
     {"Accept: */*", false},
     "accept-encoding",
     false},
    {"§4.1 empty field differs from absent",
     {"Vary: Accept-Encoding", false},
     {"Accept-Encoding: ", false},
     "accept-encoding:",
     false},
    {"§4.1 names lowercased, sorted, deduplicated",
     {"Vary: User-Agent, accept-encoding", "Vary: ACCEPT-ENCODING", false},
     {"User-Agent: x", "Accept-Encoding: gzip", false},
     "accept-encoding:gzip\nuser-agent:x",
     false},
    {"§4.1 empty Vary members",
     {"Vary: , Accept,,", false},
     {"Accept: a", false},
     "accept:a",
     false},
    {"§4.1 internal whitespace collapsed",
     {"Vary: X", false},
     {"X: a  \t b", false},
     "x:a b",
     false},
    {"§4.1 quoted strings kept",
     {"Vary: X", false},
     {"X: \"a  b\" ,  c", false},
     "x:\"a  b\",c",
     false},
    {"§4.1 quoted comma kept", {"Vary: X", false}, {"X: \"a , b\"", false}, "x:\"a , b\"", false},
    {"§4.1 case of values kept", {"Vary: X", false}, {"X: GZip", false}, "x:GZip", false},
    {"§4.1 % and control bytes escaped",
     {"Vary: X", false},
     {"X: 100%\x01", false},
     "x:100%25%01",
     false},
    {"§4.1 Vary: *", {"Vary: *", false}, {"Accept: a", false}, "", true},
    {"§4.1 * in a list", {"Vary: Accept, *", false}, {"Accept: a", false}, "", true},
    {"§4.1 not a field name", {"Vary: Accept;q", false}, {"Accept: a", false}, "", true},
};

static void
test_vary_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(vary_cases) / sizeof(vary_cases[0]); i++) {
        const struct vary_case *c = &vary_cases[i];
        cn_headers_t resp, req;
        cairn_iov_t key;
        bool star = !c->star;
        load(&resp, &f->arena, c->resp);
        load(&req, &f->arena, c->req);
        assert_int_equal(cn_policy_vary_key(&f->arena, &resp, &req, &key, &star), CAIRN_OK);
        if (star != c->star || !cn_iov_eq(key, cn_iov_cstr(c->expect)))
            fail_msg("%s: got \"%.*s\"%s, want \"%s\"%s", c->ref, (int)key.len, key.base,
                     star ? " (*)" : "", c->expect, c->star ? " (*)" : "");
        assert_int_equal(key.base[key.len], '\0');
    }
}

static void
test_vary_matching(void **state)
{
    struct fixture *f = *state;
    cn_headers_t resp, a, b;
    cairn_iov_t ka, kb;
    bool star;
    const char *vary[] = {"Vary: Accept-Encoding, Accept-Language", NULL};
    const char *ra[] = {"Accept-Language: en, fr", "Accept-Encoding: gzip,br", NULL};
    const char *rb[] = {"accept-encoding: gzip", "ACCEPT-ENCODING:  br", "accept-language:en ,fr",
                        NULL};
    const char *rc[] = {"Accept-Encoding: gzip,br", NULL};
    load(&resp, &f->arena, vary);
    load(&a, &f->arena, ra);
    load(&b, &f->arena, rb);
    /* §4.1: equal after whitespace removal and combining lines */
    assert_int_equal(cn_policy_vary_key(&f->arena, &resp, &a, &ka, &star), CAIRN_OK);
    assert_int_equal(cn_policy_vary_key(&f->arena, &resp, &b, &kb, &star), CAIRN_OK);
    assert_true(cn_iov_eq(ka, kb));
    load(&b, &f->arena, rc);
    assert_int_equal(cn_policy_vary_key(&f->arena, &resp, &b, &kb, &star), CAIRN_OK);
    assert_false(cn_iov_eq(ka, kb));

    /* Accept-Encoding / Accept-Language: order, case, whitespace and line splitting of the
     * members do not make a new variant; different members or q-values do. */
    static const char *const same[][4] = {
        {"Accept-Encoding: gzip, br", "Accept-Language: en, fr", NULL},
        {"Accept-Encoding: br,GZIP", "Accept-Language: FR,EN", NULL},
        {"Accept-Encoding: BR , GZIP", "Accept-Language:  fr ,en ", NULL},
        {"accept-encoding: br", "accept-encoding: gzip", "Accept-Language: fr, EN", NULL},
        {"Accept-Language: en", "Accept-Encoding: gzip,br", "accept-language: FR", NULL},
    };
    static const char *const different[][3] = {
        {"Accept-Encoding: gzip", NULL},
        {"Accept-Encoding: gzip;q=0.5, br", NULL},
        {"Accept-Encoding: gzip, br, deflate", NULL},
        {"Accept-Encoding: gzip,br", "Accept-Language: en", NULL},
    };
    cn_headers_t ref;
    cairn_iov_t kref;
    const char *ref_lines[] = {"Accept-Encoding: gzip, br", "Accept-Language: en, fr", NULL};
    load(&ref, &f->arena, ref_lines);
    assert_int_equal(cn_policy_vary_key(&f->arena, &resp, &ref, &kref, &star), CAIRN_OK);
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        load(&b, &f->arena, same[i]);
        assert_int_equal(cn_policy_vary_key(&f->arena, &resp, &b, &kb, &star), CAIRN_OK);
        if (!cn_iov_eq(kref, kb))
            fail_msg("same[%zu]: \"%.*s\" != \"%.*s\"", i, (int)kb.len, kb.base, (int)kref.len,
                     kref.base);
    }
    for (size_t i = 0; i < sizeof(different) / sizeof(different[0]); i++) {
        load(&b, &f->arena, different[i]);
        assert_int_equal(cn_policy_vary_key(&f->arena, &resp, &b, &kb, &star), CAIRN_OK);
        if (cn_iov_eq(kref, kb))
            fail_msg("different[%zu]: same key \"%.*s\"", i, (int)kb.len, kb.base);
    }

    /* ENOMEM leaves the outputs untouched. */
    cn_arena_t small;
    cn_arena_init(&small, 8);
    kb = cn_iov("x", 1);
    star = true;
    assert_int_equal(cn_policy_vary_key(&small, &resp, &a, &kb, &star), CAIRN_ENOMEM);
    assert_true(cn_iov_eq(kb, CAIRN_IOV_LIT("x")));
    assert_true(star);
    cn_arena_fini(&small);
}

int
main(void)
{
#define T_(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_storable_table),
        T_(test_store_reasons),
        T_(test_status_classes),
        T_(test_strip),
        T_(test_lifetime_table),
        T_(test_heuristic_conf),
        T_(test_age_table),
        T_(test_current_age),
        T_(test_meta_flags),
        T_(test_freshness_table),
        T_(test_freshness_pragma_and_fwd),
        T_(test_stale_if_error_table),
        T_(test_304_match_table),
        T_(test_add_validators),
        T_(test_conditional_table),
        T_(test_conditional_many_lines),
        T_(test_update_headers),
        T_(test_head_table),
        T_(test_invalidates_table),
        T_(test_targets_table),
        T_(test_targets_repeated_location),
        T_(test_vary_table),
        T_(test_vary_matching),
    };
#undef T_
    return cmocka_run_group_tests(tests, NULL, NULL);
}
