/* SPDX-License-Identifier: MIT */
/* Route matching (src/engine/route.c): first match wins over listener, host (exact and
 * wildcard), path (exact, prefix, regex), method, headers and query; header rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/str.h"
#include "http/msg.h"
#include "engine/session.h"

static const char routes_yaml[] =
    "listeners: [{listen: 127.0.0.1:1, name: pub}, {listen: 127.0.0.1:2, name: adm}]\n"
    "upstreams: {o: {peers: [{address: 127.0.0.1:3}]}}\n"
    "routes:\n"
    "  - {name: on-admin, match: {listener: adm}, static: {body: a}}\n"
    "  - {name: exact, match: {path: /exact}, static: {body: b}}\n"
    "  - {name: wild, match: {host: '*.example.com', path_prefix: /w}, static: {body: c}}\n"
    "  - {name: host, match: {host: [Example.COM, other.test]}, static: {body: d}}\n"
    "  - {name: regex, match: {path_regex: '^/v[0-9]+/'}, static: {body: e}}\n"
    "  - {name: post, match: {methods: [POST], path_prefix: /api}, upstream: o}\n"
    "  - {name: hdr, match: {headers: {X-Env: prod, X-Debug: null}}, static: {body: f}}\n"
    "  - {name: query, match: {query: {v: '2', dbg: null}}, static: {body: g}}\n"
    "  - {name: api, match: {path_prefix: /api}, upstream: o}\n";

struct fixture {
    cn_config_t *cfg;
    cn_arena_t arena;
};

static int
setup(void **state)
{
    static struct fixture f;
    cn_diags_t d = {0};
    assert_int_equal(
        cn_config_load_string("routes.yaml", routes_yaml, strlen(routes_yaml), &f.cfg, &d),
        CAIRN_OK);
    cn_diags_fini(&d);
    cn_arena_init(&f.arena, 0);
    *state = &f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    cn_config_unref(f->cfg);
    cn_arena_fini(&f->arena);
    return 0;
}

/* Builds a request: "METHOD host path?query" plus "Name: value" header strings. */
static cn_http_req_t *
req(struct fixture *f, const char *method, const char *host, const char *target, ...)
{
    cn_http_req_t *r = cn_arena_xalloc(&f->arena, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->method = cn_iov_cstr(method);
    r->method_id = cn_method_from_iov(r->method);
    r->authority = cn_iov_cstr(host);
    const char *q = strchr(target, '?');
    r->path = q ? cn_iov(target, (size_t)(q - target)) : cn_iov_cstr(target);
    if (q != NULL) {
        r->query = cn_iov_cstr(q + 1);
        r->has_query = true;
    }
    cn_headers_init(&r->headers, &f->arena);
    va_list ap;
    va_start(ap, target);
    for (const char *h = va_arg(ap, const char *); h != NULL; h = va_arg(ap, const char *)) {
        const char *colon = strchr(h, ':');
        cn_headers_add(&r->headers, cn_iov(h, (size_t)(colon - h)), cn_iov_cstr(colon + 2));
    }
    va_end(ap);
    return r;
}

static const char *
match(struct fixture *f, cn_http_req_t *r, const char *listener)
{
    const cn_conf_route_t *route =
        cn_route_match(f->cfg, r, &(cn_route_conn_t){listener, NULL, NULL});
    return route ? route->name : "(none)";
}

static void
test_first_match_wins(void **state)
{
    struct fixture *f = *state;
    /* The listener route comes first, whatever the path. */
    assert_string_equal(match(f, req(f, "GET", "x", "/exact", NULL), "adm"), "on-admin");
    assert_string_equal(match(f, req(f, "GET", "x", "/exact", NULL), "pub"), "exact");
    assert_string_equal(match(f, req(f, "GET", "x", "/exact/more", NULL), "pub"), "(none)");
}

static void
test_hosts(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(match(f, req(f, "GET", "a.example.com", "/w1", NULL), NULL), "wild");
    assert_string_equal(match(f, req(f, "GET", "A.B.Example.Com:8080", "/w", NULL), NULL), "wild");
    /* "*.example.com" does not match the bare domain; the bare domain route does. */
    assert_string_equal(match(f, req(f, "GET", "example.com", "/w", NULL), NULL), "host");
    assert_string_equal(match(f, req(f, "GET", "EXAMPLE.com.", "/", NULL), NULL), "host");
    assert_string_equal(match(f, req(f, "GET", "other.test:81", "/", NULL), NULL), "host");
    assert_string_equal(match(f, req(f, "GET", "evilexample.com", "/w", NULL), NULL), "(none)");
}

static void
test_paths_and_methods(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(match(f, req(f, "GET", "x", "/v12/items", NULL), NULL), "regex");
    assert_string_equal(match(f, req(f, "GET", "x", "/vx/items", NULL), NULL), "(none)");
    assert_string_equal(match(f, req(f, "POST", "x", "/api/items", NULL), NULL), "post");
    assert_string_equal(match(f, req(f, "GET", "x", "/api/items", NULL), NULL), "api");
    /* Methods are case-sensitive (RFC 9110 §9.1). */
    assert_string_equal(match(f, req(f, "post", "x", "/api/items", NULL), NULL), "api");
}

static void
test_headers_and_query(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(match(f, req(f, "GET", "x", "/h", "X-Env: prod", "x-debug: 1", NULL), NULL),
                        "hdr");
    assert_string_equal(match(f, req(f, "GET", "x", "/h", "X-Env: prod", NULL), NULL), "(none)");
    assert_string_equal(
        match(f, req(f, "GET", "x", "/h", "X-Env: staging", "X-Debug: 1", NULL), NULL), "(none)");
    assert_string_equal(match(f, req(f, "GET", "x", "/q?a=1&v=2&dbg", NULL), NULL), "query");
    assert_string_equal(match(f, req(f, "GET", "x", "/q?v=2&dbg=", NULL), NULL), "query");
    assert_string_equal(match(f, req(f, "GET", "x", "/q?v=3&dbg", NULL), NULL), "(none)");
    assert_string_equal(match(f, req(f, "GET", "x", "/q?vv=2&dbg", NULL), NULL), "(none)");
}

static void
test_header_rules(void **state)
{
    struct fixture *f = *state;
    cn_headers_t h;
    cn_headers_init(&h, &f->arena);
    cn_headers_add(&h, CAIRN_IOV_LIT("Set-Cookie"), CAIRN_IOV_LIT("a=1"));
    cn_headers_add(&h, CAIRN_IOV_LIT("X-Old"), CAIRN_IOV_LIT("x"));
    cn_headers_add(&h, CAIRN_IOV_LIT("X-Set"), CAIRN_IOV_LIT("old"));
    cn_conf_kv_t add[] = {{"Set-Cookie", "b=2"}};
    cn_conf_kv_t set[] = {{"x-set", "new"}};
    char *rm[] = {"x-old"};
    cn_conf_header_rules_t rules = {add, 1, set, 1, rm, 1};
    cn_route_apply_headers(&rules, &h);
    assert_null(cn_headers_get(&h, CAIRN_IOV_LIT("X-Old")));
    assert_true(cn_iov_eq(*cn_headers_get(&h, CAIRN_IOV_LIT("X-Set")), CAIRN_IOV_LIT("new")));
    /* add keeps every existing value (several Set-Cookie survive). */
    ssize_t first = cn_headers_find(&h, CAIRN_IOV_LIT("set-cookie"), -1);
    assert_true(first >= 0);
    assert_true(cn_headers_find(&h, CAIRN_IOV_LIT("set-cookie"), first) > first);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_match_wins),  cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_paths_and_methods), cmocka_unit_test(test_headers_and_query),
        cmocka_unit_test(test_header_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
