/* SPDX-License-Identifier: MIT */
/* src/config: every kind of configuration error is reported at the exact line:col of the
 * offending node, with a recognisable message, and one file reports all of its errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"

#define L "listeners:\n  - listen: 127.0.0.1:8080\n"

struct error_case {
    const char *what;
    const char *yaml;
    unsigned line, col;
    const char *msg; /* substring of the one diagnostic */
};

static const struct error_case cases[] = {
    /* unknown keys, with and without a suggestion */
    {"unknown key", "server:\n  workrs: 2\n" L, 2, 3,
     "server: unknown key \"workrs\"; did you mean \"workers\"?"},
    {"unknown key, prefix",
     L "upstreams:\n  u:\n    peers: [{address: 1.2.3.4:80}]\n"
       "    connect: 1s\n",
     6, 5, "unknown key \"connect\"; did you mean \"connect_timeout\"?"},
    {"unknown key, no suggestion", "server:\n  zzzzzz: 1\n" L, 2, 3, "unknown key \"zzzzzz\""},
    {"unknown route key", L "routes:\n  - static: {}\n    upstrem: x\n", 5, 5,
     "routes[0]: unknown key \"upstrem\"; did you mean \"upstream\"?"},
    /* wrong types */
    {"integer expected", "server:\n  workers: abc\n" L, 2, 12,
     "server.workers: expected an integer, got \"abc\""},
    {"scalar expected", "server:\n  workers: [1, 2]\n" L, 2, 12,
     "server.workers: expected an integer, got a list"},
    {"boolean expected", "server:\n  daemon: maybe\n" L, 2, 11,
     "server.daemon: expected true or false, got \"maybe\""},
    {"mapping expected", "server: 5\n" L, 1, 9, "server: expected a mapping, got \"5\""},
    {"string expected", L "routes:\n  - static: {body: {a: b}}\n", 4, 20,
     "routes[0].static.body: expected a string, got a mapping"},
    {"list expected", "listeners: 127.0.0.1:80\n", 1, 12,
     "listeners: expected a list of mappings, got \"127.0.0.1:80\""},
    {"bad enum", "server:\n  log_level: verbose\n" L, 2, 14,
     "invalid value \"verbose\" (expected one of: error, warn, notice, info, debug, trace)"},
    {"null value", "server:\n  workers:\n" L, 2, 11,
     "server.workers: expected an integer, got null"},
    /* out of range */
    {"workers 0", "server:\n  workers: 0\n" L, 2, 12,
     "server.workers: must be between 1 and 1024, got 0"},
    {"workers 100000", "server:\n  workers: 100000\n" L, 2, 12, "must be between 1 and 1024"},
    {"integer overflow", "server:\n  max_headers: 99999999999999999999999\n" L, 2, 16,
     "must be between 1 and 10000"},
    {"size range", "server:\n  max_header_size: 32MiB\n" L, 2, 20,
     "must be between 1KiB and 16MiB, got 32MiB"},
    {"redirect status range", L "routes:\n  - redirect:\n      to: /x\n      status: 200\n", 6, 15,
     "routes[0].redirect.status: must be between 301 and 308, got 200"},
    {"redirect status set", L "routes:\n  - redirect: {to: /x, status: 304}\n", 4, 32,
     "must be one of 301, 302, 303, 307 or 308"},
    {"static status", L "routes:\n  - static: {status: 600}\n", 4, 22,
     "must be between 100 and 599"},
    {"error page status", L "routes:\n  - static: {}\n    error_pages: {200: {body: x}}\n", 5, 19,
     "invalid key \"200\": must be between 400 and 599"},
    /* durations and sizes */
    {"bad duration",
     L "upstreams:\n  u:\n    peers: [{address: 1.2.3.4:80}]\n"
       "    connect_timeout: 5x\n",
     6, 22, "upstreams.u.connect_timeout: invalid duration \"5x\""},
    {"duration overflow", "server:\n  shutdown_grace: 9999999999999999999d\n" L, 2, 19,
     "invalid duration"},
    {"fractional duration", "server:\n  header_timeout: 1.5s\n" L, 2, 19, "invalid duration"},
    {"zero timeout", "server:\n  header_timeout: 0s\n" L, 2, 19, "must be at least 1ms"},
    {"bad size", L "caches:\n  c:\n    memory: {size: 12QB}\n", 5, 20,
     "caches.c.memory.size: invalid size \"12QB\""},
    {"size overflow", "server:\n  max_body_size: 20000000000TiB\n" L, 2, 18, "invalid size"},
    {"max_object over size", L "caches:\n  c:\n    memory: {size: 1MiB, max_object: 2MiB}\n", 5, 38,
     "caches.c.memory.max_object: must not be larger than memory.size"},
    /* addresses */
    {"missing port", L "upstreams:\n  u:\n    peers:\n      - address: 127.0.0.1\n", 6, 18,
     "invalid address \"127.0.0.1\": expected host:port"},
    {"port 0", "listeners:\n  - listen: 127.0.0.1:0\n", 2, 13,
     "listeners[0].listen: invalid address \"127.0.0.1:0\": port must be a number between 1 "
     "and 65535"},
    {"port too big", "admin:\n  listen: 127.0.0.1:65536\n" L, 2, 11, "port must be"},
    {"listen host name", "listeners:\n  - listen: example.com:80\n", 2, 13,
     "a listen address must be a numeric IP, localhost or *"},
    {"bare ipv6", "listeners:\n  - listen: \"::1:80\"\n", 2, 13, "must be in brackets"},
    {"bad ipv6", "listeners:\n  - listen: \"[::g]:80\"\n", 2, 13, "invalid IPv6 address"},
    {"unix path too long",
     "listeners:\n  - listen: unix:/"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaa\n",
     2, 13, "socket path is longer than 107 bytes"},
    {"unresolvable peer", L "upstreams:\n  u:\n    peers: [{address: \"no host:80\"}]\n", 5, 23,
     "invalid host name"},
    {"bad cidr", "server:\n  trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]\n" L, 2, 33,
     "server.trusted_proxies[1]: invalid CIDR range \"10.0.0.0/33\""},
    /* references between sections */
    {"undefined upstream",
     L "upstreams:\n  origin: {peers: [{address: 1.2.3.4:80}]}\nroutes:\n  - upstream: orign\n", 6,
     15, "routes[0].upstream: undefined upstream \"orign\"; did you mean \"origin\"?"},
    {"undefined cache",
     L "upstreams:\n  o: {peers: [{address: 1.2.3.4:80}]}\n"
       "routes:\n  - upstream: o\n    cache: main\n",
     7, 12, "routes[0].cache: undefined cache \"main\""},
    {"undefined listener", L "routes:\n  - match: {listener: public}\n    static: {}\n", 4, 23,
     "routes[0].match.listener: undefined listener \"public\""},
    {"cache without upstream", L "caches: {c: {}}\nroutes:\n  - static: {}\n    cache: c\n", 6, 12,
     "routes[0].cache: cache is only valid with an upstream action"},
    {"duplicate listener address",
     "listeners:\n  - listen: 127.0.0.1:80\n  - listen: 127.0.0.1:80\n", 3, 13,
     "listeners[1].listen: duplicate listener address \"127.0.0.1:80\" (also at line 2)"},
    {"duplicate listener name",
     "listeners:\n  - {listen: 127.0.0.1:80, name: a}\n  - {listen: 127.0.0.1:81, name: a}\n", 3,
     34, "listeners[1].name: duplicate listener name \"a\""},
    /* route actions */
    {"two actions",
     L "upstreams: {x: {peers: [{address: 1.2.3.4:80}]}}\n"
       "routes:\n  - name: r\n    upstream: x\n    static: {}\n",
     5, 5, "routes[0]: a route has exactly one action, found both upstream and static"},
    {"no action", L "routes:\n  - {match: {path: /}, static: {}}\n  - name: empty\n", 5, 5,
     "routes[1]: no action: set one of upstream, static, redirect or files"},
    {"redirect without to", L "routes:\n  - redirect: {status: 302}\n", 4, 15,
     "routes[0].redirect: missing required key \"to\""},
    {"files root missing", L "routes:\n  - files: {root: /nonexistent/cairn/dir}\n", 4, 19,
     "routes[0].files.root: cannot read \"/nonexistent/cairn/dir\": No such file or directory"},
    {"files root not a dir", L "routes:\n  - files: {root: " CN_SOURCE_DIR "/CMakeLists.txt}\n", 4,
     19, "not a directory"},
    {"error page file missing",
     L "routes:\n  - static: {}\n    error_pages:\n      502: {file: /nonexistent.html}\n", 6, 19,
     "routes[0].error_pages.502.file: cannot read \"/nonexistent.html\""},
    {"error page body and file",
     L "routes:\n  - static: {}\n    error_pages:\n      502: {body: x, file: /y}\n", 6, 12,
     "set exactly one of body or file"},
    {"tls half", "listeners:\n  - listen: 127.0.0.1:1\n    tls: {cert: /x}\n", 3, 10,
     "cert and key must be set together"},
    {"tls unreadable",
     "listeners:\n  - listen: 127.0.0.1:1\n    tls: {cert: /nx/c, key: " CN_SOURCE_DIR
     "/tests/data/config_dummy.pem}\n",
     3, 17, "listeners[0].tls.cert: cannot read \"/nx/c\""},
    {"tls without a certificate", "listeners:\n  - listen: 127.0.0.1:1\n    tls: {}\n", 3, 10,
     "listeners[0].tls: set cert and key, or certificates"},
    {"tls with a file that is not a certificate",
     "listeners:\n  - listen: 127.0.0.1:1\n    tls: {cert: " CN_SOURCE_DIR
     "/tests/data/config_dummy.pem, key: " CN_SOURCE_DIR "/tests/data/config_dummy.pem}\n",
     3, 10, "listeners[0].tls: not a PEM certificate:"},
    {"tls version",
     "listeners:\n  - listen: 127.0.0.1:1\n    tls: {protocols: [TLSv1.0], cert: " CN_SOURCE_DIR
     "/tests/data/config_dummy.pem, key: " CN_SOURCE_DIR "/tests/data/config_dummy.pem}\n",
     3, 22, "unsupported TLS version \"TLSv1.0\""},
    {"bad regex", L "routes:\n  - match:\n      path_regex: \"^/(a\"\n    static: {}\n", 5, 19,
     "routes[0].match.path_regex: invalid regular expression: missing closing parenthesis"},
    {"lowercase method", L "routes:\n  - match: {methods: [GET, post]}\n    static: {}\n", 4, 28,
     "routes[0].match.methods[1]: invalid value \"post\""},
    {"bad header name", L "routes:\n  - static: {headers: {\"Bad Name\": x}}\n", 4, 24,
     "invalid name \"Bad Name\""},
    {"path without slash", L "routes:\n  - match: {path_prefix: api}\n    static: {}\n", 4, 26,
     "a path must start with \"/\""},
    {"strip without prefix",
     L "routes:\n  - upstream: u\n    strip_prefix: true\n"
       "upstreams: {u: {peers: [{address: 1.2.3.4:80}]}}\n",
     5, 19, "strip_prefix: requires match.path_prefix"},
    /* missing sections and structure */
    {"missing listeners", "server:\n  workers: 2\n", 1, 1, "missing required key \"listeners\""},
    {"empty listeners", "listeners: []\n", 1, 12, "listeners: must not be empty"},
    {"missing listen", "listeners:\n  - name: x\n", 2, 5,
     "listeners[0]: missing required key \"listen\""},
    {"no peers", L "upstreams:\n  u:\n    connect_timeout: 1s\n", 5, 5,
     "upstreams.u: missing required key \"peers\""},
    {"root not a mapping", "- a\n- b\n", 1, 1, "expected a mapping, got a list"},
    /* YAML itself */
    {"malformed YAML", "server:\n  workers: 2\nlisteners:\n  - listen: [127.0.0.1:8080\nx: 1\n", 5,
     2, "invalid YAML: did not find expected ',' or ']'"},
    {"tab indentation", "server:\n\tworkers: 2\n", 2, 1,
     "invalid YAML: found character that cannot start any token"},
    {"bad indentation", "server:\n  workers: 2\n listeners: x\n", 3, 2,
     "invalid YAML: did not find expected key"},
    {"duplicate key", "server:\n  workers: 2\n  workers: 3\n" L, 3, 3,
     "duplicate key \"workers\" (first defined at line 2, column 3)"},
    {"anchor", L "server: &s {workers: 2}\n", 3, 9, "anchors and aliases are not supported"},
    {"alias", L "admin: {token: *a}\n", 3, 16, "anchors and aliases are not supported"},
    {"two documents", L "---\nserver: {}\n", 3, 1, "only one YAML document is allowed"},
    {"invalid UTF-8", L "server: {server_header: \"\xff\"}\n", 3, 26, "invalid YAML"},
    {"complex key", L "[a]: 1\n", 3, 1, "mapping keys must be scalars"},
};

static void
test_error_positions(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct error_case *c = &cases[i];
        cn_diags_t d = {0};
        cn_config_t *cfg = NULL;
        cairn_err_t rc = cn_config_load_string("t.yaml", c->yaml, strlen(c->yaml), &cfg, &d);
        bool ok = rc == CAIRN_ECONFIG && cfg == NULL && d.n == 1 && d.items[0].line == c->line &&
                  d.items[0].col == c->col && strstr(d.items[0].msg, c->msg) != NULL &&
                  strcmp(d.items[0].file, "t.yaml") == 0;
        if (!ok) {
            failures++;
            print_error("case \"%s\": want exactly one error at %u:%u containing '%s'; got rc %d "
                        "and %zu diagnostic(s):\n",
                        c->what, c->line, c->col, c->msg, rc, d.n);
            cn_diags_print(&d, stderr);
        }
        cn_config_unref(cfg);
        cn_diags_fini(&d);
    }
    assert_int_equal(failures, 0);
}

/* Walking goes on after an error: every mistake of the file is reported, in file order. */
static void
test_all_errors_reported(void **state)
{
    (void)state;
    static const char yaml[] = "server:\n"                          /* 1 */
                               "  workers: many\n"                  /* 2 */
                               "  bogus_key: 1\n"                   /* 3 */
                               "  keepalive_timeout: 5 minutes\n"   /* 4 */
                               "admin:\n"                           /* 5 */
                               "  listen: 127.0.0.1\n"              /* 6 */
                               "listeners:\n"                       /* 7 */
                               "  - listen: 127.0.0.1:8080\n"       /* 8 */
                               "caches:\n"                          /* 9 */
                               "  c: {memory: {size: lots}}\n"      /* 10 */
                               "routes:\n"                          /* 11 */
                               "  - match: {listener: nope}\n"      /* 12 */
                               "    upstream: nowhere\n"            /* 13 */
                               "  - redirect:\n"                    /* 14 */
                               "      to: /y\n"                     /* 15 */
                               "      status: 299\n"                /* 16 */
                               "  - static: {}\n"                   /* 17 */
                               "    files: {root: /nonexistent}\n"; /* 18 */
    static const struct {
        unsigned line, col;
        const char *msg;
    } want[] = {
        {2, 12, "expected an integer"},
        {3, 3, "unknown key \"bogus_key\""},
        {4, 22, "invalid duration"},
        {6, 11, "invalid address"},
        {10, 22, "invalid size"},
        {12, 23, "undefined listener \"nope\""},
        {13, 15, "undefined upstream \"nowhere\""},
        {16, 15, "must be between 301 and 308"},
        {17, 5, "exactly one action"},
        {18, 19, "cannot read \"/nonexistent\""},
    };
    cn_diags_t d = {0};
    cn_config_t *cfg = NULL;
    assert_int_equal(cn_config_load_string("m.yaml", yaml, strlen(yaml), &cfg, &d), CAIRN_ECONFIG);
    assert_null(cfg);
    if (d.n != sizeof(want) / sizeof(want[0]))
        cn_diags_print(&d, stderr);
    assert_int_equal(d.n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < d.n; i++) {
        if (d.items[i].line != want[i].line || d.items[i].col != want[i].col ||
            strstr(d.items[i].msg, want[i].msg) == NULL) {
            cn_diags_print(&d, stderr);
            fail_msg("diagnostic %zu: want %u:%u '%s', got %u:%u '%s'", i, want[i].line,
                     want[i].col, want[i].msg, d.items[i].line, d.items[i].col, d.items[i].msg);
        }
    }
    cn_diags_fini(&d);
}

/* YAML-level mistakes that leave the structure intact do not stop the walk either. */
static void
test_yaml_errors_do_not_stop(void **state)
{
    (void)state;
    static const char yaml[] = "server:\n"
                               "  workers: 2\n"
                               "  workers: 3\n"
                               "  bogus: 1\n"
                               "admin: {token: *nothing}\n"
                               "listeners: []\n";
    static const unsigned want[][2] = {{3, 3}, {4, 3}, {5, 16}, {6, 12}};
    cn_diags_t d = {0};
    cn_config_t *cfg = NULL;
    assert_int_equal(cn_config_load_string("y", yaml, strlen(yaml), &cfg, &d), CAIRN_ECONFIG);
    if (d.n != 4)
        cn_diags_print(&d, stderr);
    assert_int_equal(d.n, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(d.items[i].line, want[i][0]);
        assert_int_equal(d.items[i].col, want[i][1]);
    }
    assert_non_null(strstr(d.items[0].msg, "duplicate key"));
    cn_diags_fini(&d);
}

/* A failed load leaves earlier diagnostics of the same list alone and does not touch *out. */
static void
test_failed_load_keeps_out_and_appends(void **state)
{
    (void)state;
    cn_diags_t d = {0};
    cn_config_t *cfg = (cn_config_t *)0x1;
    cn_diags_add(&d, "earlier", 9, 9, "kept");
    const char *y = "listeners: []\n";
    assert_int_equal(cn_config_load_string("x", y, strlen(y), &cfg, &d), CAIRN_ECONFIG);
    assert_ptr_equal(cfg, (cn_config_t *)0x1);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.items[0].msg, "kept");
    assert_int_equal(d.items[1].line, 1);
    cn_diags_fini(&d);
}

static void
test_diagnostic_text(void **state)
{
    (void)state;
    const char *y = "server:\n  workrs: 2\n" L;
    cn_diags_t d = {0};
    cn_config_t *cfg = NULL;
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(cn_config_load_string("c.yaml", y, strlen(y), &cfg, &d), CAIRN_ECONFIG);
    FILE *f = open_memstream(&buf, &len);
    cn_diags_print(&d, f);
    fclose(f);
    assert_string_equal(
        buf, "c.yaml:2:3: error: server: unknown key \"workrs\"; did you mean \"workers\"?\n");
    free(buf);
    cn_diags_fini(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_positions),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_yaml_errors_do_not_stop),
        cmocka_unit_test(test_failed_load_keeps_out_and_appends),
        cmocka_unit_test(test_diagnostic_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
