/* SPDX-License-Identifier: MIT */
/* Unit tests for the HTTP/1.1 request, response and chunked parsers (src/http1/parser.h),
 * including the malformed-request corpus in tests/data/h1_bad_requests.txt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/str.h"
#include "http1/parser.h"

#define CORPUS_PATH CN_SOURCE_DIR "/tests/data/h1_bad_requests.txt"
#define MAX_HDRS 100

static const cn_h1_limits_t corpus_limits = {
    .max_head = 8192,
    .max_headers = MAX_HDRS,
    .max_target = 2048,
};
static const cn_h1_limits_t big_limits = {
    .max_head = 64 * 1024,
    .max_headers = MAX_HDRS,
    .max_target = 8192,
};

static cn_h1_header_t hdrs[MAX_HDRS];

static bool
iov_is(cairn_iov_t v, const char *s)
{
    return v.len == strlen(s) && memcmp(v.base, s, v.len) == 0;
}

#define assert_iov(v, s)                                                                           \
    do {                                                                                           \
        cairn_iov_t v_ = (v);                                                                      \
        if (!iov_is(v_, s))                                                                        \
            fail_msg("%s is \"%.*s\", expected \"%s\"", #v, (int)v_.len, v_.base ? v_.base : "",   \
                     s);                                                                           \
    } while (0)

static cn_h1_result_t
parse_req(const char *s, cn_h1_request_t *req)
{
    return cn_h1_parse_request(s, strlen(s), &big_limits, req, hdrs, MAX_HDRS);
}

static cn_h1_result_t
parse_resp(const char *s, bool head, cn_h1_response_t *resp)
{
    return cn_h1_parse_response(s, strlen(s), &big_limits, head, resp, hdrs, MAX_HDRS);
}

/* ---- requests ---- */

static void
test_get_with_headers(void **state)
{
    (void)state;
    cn_h1_request_t req;
    const char *s = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\n"
                    "User-Agent:  curl/8 \r\nAccept: */*\r\nX-Empty:\r\n\r\n";
    assert_int_equal(parse_req(s, &req), CN_H1_OK);
    assert_iov(req.method, "GET");
    assert_iov(req.target, "/a/b?x=1&y=2");
    assert_iov(req.path, "/a/b");
    assert_iov(req.query, "x=1&y=2");
    assert_true(req.has_query);
    assert_iov(req.host, "example.com:8080");
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.n_headers, 4);
    assert_iov(req.headers[1].name, "User-Agent");
    assert_iov(req.headers[1].value, "curl/8");
    assert_iov(req.headers[3].value, "");
    assert_int_equal(req.content_length, -1);
    assert_false(req.chunked);
    assert_true(req.keep_alive);
    assert_false(req.expect_continue);
    assert_false(req.upgrade);
    assert_int_equal(req.head_len, strlen(s));
}

static void
test_query_forms(void **state)
{
    (void)state;
    cn_h1_request_t req;
    assert_int_equal(parse_req("GET /? HTTP/1.1\r\nHost: a\r\n\r\n", &req), CN_H1_OK);
    assert_iov(req.path, "/");
    assert_true(req.has_query);
    assert_int_equal(req.query.len, 0);
    assert_int_equal(parse_req("GET /p HTTP/1.1\r\nHost: a\r\n\r\n", &req), CN_H1_OK);
    assert_false(req.has_query);
    assert_int_equal(req.query.len, 0);
}

static void
test_post_content_length(void **state)
{
    (void)state;
    cn_h1_request_t req;
    const char *s = "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world";
    assert_int_equal(parse_req(s, &req), CN_H1_OK);
    assert_iov(req.method, "POST");
    assert_int_equal(req.content_length, 11);
    assert_int_equal(req.head_len, strlen(s) - 11);
    /* identical duplicates and identical lists are merged */
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n"
                               "content-length: 7 , 7\r\n\r\n",
                               &req),
                     CN_H1_OK);
    assert_int_equal(req.content_length, 7);
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
                               "9223372036854775807\r\n\r\n",
                               &req),
                     CN_H1_OK);
    assert_int_equal(req.content_length, INT64_MAX);
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &req),
                     CN_H1_OK);
    assert_int_equal(req.content_length, 0);
}

static void
test_chunked_request(void **state)
{
    (void)state;
    cn_h1_request_t req;
    const char *s = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n";
    assert_int_equal(parse_req(s, &req), CN_H1_OK);
    assert_true(req.chunked);
    assert_int_equal(req.content_length, -1);

    cn_h1_chunked_t c;
    cn_h1_chunked_init(&c);
    size_t used = 0;
    cairn_iov_t data;
    const char *body = s + req.head_len;
    assert_int_equal(cn_h1_chunked_decode(&c, body, strlen(body), &used, &data), CN_H1_OK);
    assert_iov(data, "hello");
    body += used;
    assert_int_equal(cn_h1_chunked_decode(&c, body, strlen(body), &used, &data), CN_H1_OK);
    assert_true(c.done);
    assert_int_equal(used, strlen(body));
}

static void
test_http10_keep_alive(void **state)
{
    (void)state;
    cn_h1_request_t req;
    assert_int_equal(parse_req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req), CN_H1_OK);
    assert_int_equal(req.minor_version, 0);
    assert_true(req.keep_alive);
    assert_int_equal(req.host.len, 0);
    assert_int_equal(parse_req("GET / HTTP/1.0\r\nHost: a\r\n\r\n", &req), CN_H1_OK);
    assert_false(req.keep_alive);
    assert_iov(req.host, "a");
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", &req),
                     CN_H1_OK);
    assert_false(req.keep_alive);
    assert_int_equal(
        parse_req("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", &req),
        CN_H1_OK);
    assert_false(req.keep_alive);
}

static void
test_absolute_form(void **state)
{
    (void)state;
    cn_h1_request_t req;
    assert_int_equal(
        parse_req("GET http://origin.example:81/x/y?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", &req),
        CN_H1_OK);
    assert_iov(req.host, "origin.example:81");
    assert_iov(req.path, "/x/y");
    assert_iov(req.query, "q=1");
    assert_iov(req.target, "http://origin.example:81/x/y?q=1");
    assert_int_equal(parse_req("GET HTTPS://[::1]:8443 HTTP/1.1\r\nHost: x\r\n\r\n", &req),
                     CN_H1_OK);
    assert_iov(req.host, "[::1]:8443");
    assert_iov(req.path, "/");
    assert_false(req.has_query);
    const char *noslash = "GET http://h?a HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(parse_req(noslash, &req), CN_H1_OK);
    assert_iov(req.path, "/");
    assert_iov(req.query, "a");
    /* even the "/" of an empty path is a slice of the input */
    assert_true(req.path.base >= noslash && req.path.base < noslash + req.head_len);
    /* absolute-form still needs Host in HTTP/1.1 */
    assert_int_equal(parse_req("GET http://h/ HTTP/1.1\r\n\r\n", &req), CN_H1_ERROR);
    assert_int_equal(req.status, 400);
}

static void
test_connect_and_options(void **state)
{
    (void)state;
    cn_h1_request_t req;
    assert_int_equal(
        parse_req("CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n", &req),
        CN_H1_OK);
    assert_iov(req.method, "CONNECT");
    assert_iov(req.target, "db.example:5432");
    assert_iov(req.host, "db.example:5432");
    assert_int_equal(req.path.len, 0);
    assert_int_equal(parse_req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req), CN_H1_OK);
    assert_iov(req.target, "*");
    assert_iov(req.path, "*");
    assert_int_equal(parse_req("OPTIONS /x HTTP/1.1\r\nHost: a\r\n\r\n", &req), CN_H1_OK);
    assert_int_equal(parse_req("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", &req), CN_H1_OK);
    assert_iov(req.method, "PURGE");
    assert_int_equal(parse_req("get /x HTTP/1.1\r\nHost: a\r\n\r\n", &req), CN_H1_OK);
}

static void
test_upgrade_expect(void **state)
{
    (void)state;
    cn_h1_request_t req;
    assert_int_equal(parse_req("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                               "Upgrade: websocket\r\n\r\n",
                               &req),
                     CN_H1_OK);
    assert_true(req.upgrade);
    assert_true(req.keep_alive);
    assert_int_equal(parse_req("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &req),
                     CN_H1_OK);
    assert_false(req.upgrade);
    assert_int_equal(parse_req("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", &req),
                     CN_H1_OK);
    assert_false(req.upgrade);
    assert_int_equal(parse_req("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                               "Expect: 100-Continue\r\n\r\n",
                               &req),
                     CN_H1_OK);
    assert_true(req.expect_continue);
    assert_int_equal(parse_req("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", &req),
                     CN_H1_ERROR);
    assert_int_equal(req.status, 417);
    assert_string_equal(req.error, "unsupported expectation");
}

static void
test_leading_empty_lines_and_pipelining(void **state)
{
    (void)state;
    cn_h1_request_t req;
    const char *one = "\r\n\r\nGET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *two = "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    char buf[256];
    snprintf(buf, sizeof(buf), "%s%s", one, two);
    assert_int_equal(parse_req(buf, &req), CN_H1_OK);
    assert_int_equal(req.head_len, strlen(one));
    assert_iov(req.path, "/1");
    assert_int_equal(parse_req(buf + req.head_len, &req), CN_H1_OK);
    assert_int_equal(req.head_len, strlen(two));
    assert_iov(req.path, "/2");
}

static void
test_incremental_bytewise(void **state)
{
    (void)state;
    const char *s = "\r\nPOST /up?x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX: y\r\n\r\nhi";
    size_t head = strlen(s) - 2;
    cn_h1_request_t req;
    for (size_t n = 0; n <= strlen(s); n++) {
        char *b = malloc(n + 1);
        memcpy(b, s, n);
        cn_h1_result_t r = cn_h1_parse_request(b, n, &big_limits, &req, hdrs, MAX_HDRS);
        if (n < head) {
            assert_int_equal(r, CN_H1_INCOMPLETE);
        } else {
            assert_int_equal(r, CN_H1_OK);
            assert_int_equal(req.head_len, head);
            assert_int_equal(req.content_length, 2);
        }
        free(b);
    }
}

static void
test_request_limits(void **state)
{
    (void)state;
    cn_h1_request_t req;
    cn_h1_limits_t lim = {.max_head = 64, .max_headers = 2, .max_target = 8};
    char big[256];

    /* 414 as soon as the target is too long, before the line ends */
    const char *t = "GET /123456789";
    assert_int_equal(cn_h1_parse_request(t, 12, &lim, &req, hdrs, MAX_HDRS), CN_H1_INCOMPLETE);
    assert_int_equal(cn_h1_parse_request(t, 13, &lim, &req, hdrs, MAX_HDRS), CN_H1_ERROR);
    assert_int_equal(req.status, 414);
    /* a head of exactly max_head bytes is fine, one more byte is 431 */
    memset(big, 0, sizeof(big));
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: %s\r\n\r\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    size_t n = strlen(big);
    assert_int_equal(n, 64);
    assert_int_equal(cn_h1_parse_request(big, n, &lim, &req, hdrs, MAX_HDRS), CN_H1_OK);
    lim.max_head = 63;
    assert_int_equal(cn_h1_parse_request(big, n, &lim, &req, hdrs, MAX_HDRS), CN_H1_ERROR);
    assert_int_equal(req.status, 431);
    assert_int_equal(cn_h1_parse_request(big, 62, &lim, &req, hdrs, MAX_HDRS), CN_H1_INCOMPLETE);
    /* an incomplete head that has reached max_head is 431 without waiting for more */
    assert_int_equal(cn_h1_parse_request(big, 63, &lim, &req, hdrs, MAX_HDRS), CN_H1_ERROR);
    assert_int_equal(req.status, 431);
    /* header count */
    lim.max_head = 1024;
    const char *three = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_int_equal(cn_h1_parse_request(three, strlen(three), &lim, &req, hdrs, MAX_HDRS),
                     CN_H1_ERROR);
    assert_int_equal(req.status, 431);
    lim.max_headers = 3;
    assert_int_equal(cn_h1_parse_request(three, strlen(three), &lim, &req, hdrs, MAX_HDRS),
                     CN_H1_OK);
    /* hdr_cap smaller than max_headers also bounds the count */
    assert_int_equal(cn_h1_parse_request(three, strlen(three), &lim, &req, hdrs, 2), CN_H1_ERROR);
    assert_int_equal(req.status, 431);
}

static void
test_request_errors_misc(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        unsigned status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\nX: \x80\xff ok\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost:\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a%2e\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n", 0},
        {"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: \x1b\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cn_h1_request_t req;
        cn_h1_result_t r = parse_req(cases[i].s, &req);
        if (cases[i].status == 0) {
            if (r != CN_H1_OK)
                fail_msg("case %zu: %s", i, req.error);
        } else {
            assert_int_equal(r, CN_H1_ERROR);
            if (req.status != cases[i].status)
                fail_msg("case %zu: status %u", i, req.status);
            assert_non_null(req.error);
        }
    }
}

/* ---- corpus ---- */

struct entry {
    unsigned status;
    char name[128];
    char *raw;
    size_t len;
};

/* Appends the bytes of one data line (escapes decoded) to @e. */
static void
decode_line(struct entry *e, const char *line, size_t n)
{
    e->raw = realloc(e->raw, e->len + n + 1);
    assert_non_null(e->raw);
    for (size_t i = 0; i < n; i++) {
        char c = line[i];
        if (c != '\\') {
            e->raw[e->len++] = c;
            continue;
        }
        if (++i >= n)
            fail_msg("%s: dangling backslash", e->name);
        switch (line[i]) {
        case 'r':
            c = '\r';
            break;
        case 'n':
            c = '\n';
            break;
        case 't':
            c = '\t';
            break;
        case '0':
            c = '\0';
            break;
        case '\\':
            c = '\\';
            break;
        case 'x':
            if (i + 2 >= n)
                fail_msg("%s: short \\x escape", e->name);
            if (cn_hex_digit(line[i + 1]) < 0 || cn_hex_digit(line[i + 2]) < 0)
                fail_msg("%s: bad \\x escape", e->name);
            c = (char)(cn_hex_digit(line[i + 1]) * 16 + cn_hex_digit(line[i + 2]));
            i += 2;
            break;
        default:
            fail_msg("%s: unknown escape \\%c", e->name, line[i]);
        }
        e->raw[e->len++] = c;
    }
}

static size_t
load_corpus(struct entry **out)
{
    FILE *f = fopen(CORPUS_PATH, "r");
    if (f == NULL)
        fail_msg("cannot open %s", CORPUS_PATH);
    struct entry *v = NULL;
    size_t n = 0;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        size_t l = strlen(line);
        if (l == sizeof(line) - 1 && line[l - 1] != '\n')
            fail_msg("corpus line too long");
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = 0;
        if (strncmp(line, "### ", 4) == 0) {
            v = realloc(v, (n + 1) * sizeof(*v));
            assert_non_null(v);
            memset(&v[n], 0, sizeof(v[n]));
            char *end = NULL;
            v[n].status = (unsigned)strtoul(line + 4, &end, 10);
            assert_true(end == line + 7 && *end == ' ');
            snprintf(v[n].name, sizeof(v[n].name), "%s", end + 1);
            n++;
            continue;
        }
        if (line[0] == '#' || n == 0)
            continue;
        decode_line(&v[n - 1], line, l);
    }
    fclose(f);
    *out = v;
    return n;
}

/* What cairn answers to @raw: the parser's status, 400 for a chunked body the decoder refuses,
 * 200 when everything is accepted, 0 when more input would be needed. */
static unsigned
corpus_verdict(const char *raw, size_t len, cn_h1_request_t *req)
{
    cn_h1_result_t r = cn_h1_parse_request(raw, len, &corpus_limits, req, hdrs, MAX_HDRS);
    if (r == CN_H1_ERROR)
        return req->status;
    if (r == CN_H1_INCOMPLETE)
        return 0;
    if (!req->chunked)
        return 200;
    cn_h1_chunked_t c;
    cn_h1_chunked_init(&c);
    const char *p = raw + req->head_len;
    size_t left = len - req->head_len;
    for (;;) {
        size_t used = 0;
        cairn_iov_t data;
        r = cn_h1_chunked_decode(&c, p, left, &used, &data);
        if (r == CN_H1_ERROR)
            return 400;
        p += used;
        left -= used;
        if (c.done)
            return 200;
        if (r == CN_H1_INCOMPLETE)
            return 0;
    }
}

static void
test_bad_request_corpus(void **state)
{
    (void)state;
    struct entry *v = NULL;
    size_t n = load_corpus(&v);
    assert_true(n >= 45);
    unsigned failures = 0;
    for (size_t i = 0; i < n; i++) {
        cn_h1_request_t req;
        char *copy = malloc(v[i].len ? v[i].len : 1);
        memcpy(copy, v[i].raw, v[i].len);
        unsigned got = corpus_verdict(copy, v[i].len, &req);
        if (got != v[i].status) {
            print_error("corpus \"%s\": expected %u, got %u\n", v[i].name, v[i].status, got);
            failures++;
        }
        /* every prefix is INCOMPLETE or already gets the same verdict (head errors only) */
        cn_h1_result_t full =
            cn_h1_parse_request(copy, v[i].len, &corpus_limits, &req, hdrs, MAX_HDRS);
        unsigned full_status = req.status;
        for (size_t k = 0; k < v[i].len && v[i].len <= 4096; k++) {
            cn_h1_result_t r = cn_h1_parse_request(copy, k, &corpus_limits, &req, hdrs, MAX_HDRS);
            if (r == CN_H1_INCOMPLETE)
                continue;
            if (r != full || (r == CN_H1_ERROR && req.status != full_status)) {
                print_error("corpus \"%s\": prefix %zu gives %d/%u\n", v[i].name, k, r, req.status);
                failures++;
                break;
            }
        }
        free(copy);
        free(v[i].raw);
    }
    free(v);
    assert_int_equal(failures, 0);
}

/* ---- responses ---- */

static void
test_response_valid(void **state)
{
    (void)state;
    cn_h1_response_t resp;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    assert_int_equal(parse_resp(s, false, &resp), CN_H1_OK);
    assert_int_equal(resp.status, 200);
    assert_iov(resp.reason, "OK");
    assert_int_equal(resp.minor_version, 1);
    assert_int_equal(resp.content_length, 5);
    assert_true(resp.keep_alive);
    assert_false(resp.no_body);
    assert_false(resp.close_delimited);
    assert_false(resp.chunked);
    assert_int_equal(resp.n_headers, 2);
    assert_int_equal(resp.head_len, strlen(s) - 5);

    assert_int_equal(
        parse_resp("HTTP/1.1 404 Not  Found \xe9\r\nContent-Length: 0\r\n\r\n", false, &resp),
        CN_H1_OK);
    assert_iov(resp.reason, "Not  Found \xe9");
    assert_int_equal(parse_resp("HTTP/1.1 204 \r\n\r\n", false, &resp), CN_H1_OK);
    assert_int_equal(resp.reason.len, 0);
    assert_int_equal(parse_resp("HTTP/1.1 204\r\n\r\n", false, &resp), CN_H1_OK);
    assert_int_equal(resp.status, 204);
    assert_int_equal(resp.reason.len, 0);

    assert_int_equal(
        parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, &resp),
        CN_H1_OK);
    assert_true(resp.chunked);
    assert_true(resp.keep_alive);
    assert_int_equal(
        parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, &resp),
        CN_H1_OK);
    assert_true(resp.chunked);
    assert_false(resp.close_delimited);
}

static void
test_response_bodiless(void **state)
{
    (void)state;
    cn_h1_response_t resp;
    assert_int_equal(parse_resp("HTTP/1.1 100 Continue\r\n\r\n", false, &resp), CN_H1_OK);
    assert_true(resp.no_body);
    assert_int_equal(resp.status, 100);
    assert_int_equal(parse_resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\n\r\n",
                                false, &resp),
                     CN_H1_OK);
    assert_true(resp.no_body);
    assert_int_equal(
        parse_resp("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false, &resp), CN_H1_OK);
    assert_true(resp.no_body);
    assert_true(resp.keep_alive);
    assert_int_equal(
        parse_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n", false, &resp),
        CN_H1_OK);
    assert_true(resp.no_body);
    assert_false(resp.close_delimited);
    assert_int_equal(resp.content_length, 1234);
    assert_int_equal(
        parse_resp("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, &resp),
        CN_H1_OK);
    assert_true(resp.no_body);
    assert_false(resp.chunked);
    /* HEAD */
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, &resp),
                     CN_H1_OK);
    assert_true(resp.no_body);
    assert_true(resp.keep_alive);
    assert_int_equal(resp.content_length, 99);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\n\r\n", true, &resp), CN_H1_OK);
    assert_true(resp.no_body);
    assert_false(resp.close_delimited);
    assert_true(resp.keep_alive);
}

static void
test_response_close_delimited(void **state)
{
    (void)state;
    cn_h1_response_t resp;
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nX: y\r\n\r\nbody...", false, &resp), CN_H1_OK);
    assert_true(resp.close_delimited);
    assert_false(resp.keep_alive);
    assert_int_equal(
        parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, &resp),
        CN_H1_OK);
    assert_true(resp.close_delimited);
    assert_false(resp.chunked);
    assert_false(resp.keep_alive);
    assert_int_equal(parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, &resp),
                     CN_H1_OK);
    assert_false(resp.keep_alive);
    assert_int_equal(parse_resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                                "Content-Length: 1\r\n\r\n",
                                false, &resp),
                     CN_H1_OK);
    assert_true(resp.keep_alive);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                                false, &resp),
                     CN_H1_OK);
    assert_false(resp.keep_alive);
}

static void
test_response_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 OK\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cn_h1_response_t resp;
        cn_h1_result_t r = parse_resp(bad[i], false, &resp);
        if (r != CN_H1_ERROR)
            fail_msg("bad response %zu accepted (%d)", i, r);
        assert_non_null(resp.error);
    }
    static const char nul[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n";
    cn_h1_response_t resp;
    assert_int_equal(
        cn_h1_parse_response(nul, sizeof(nul) - 1, &big_limits, false, &resp, hdrs, MAX_HDRS),
        CN_H1_ERROR);
}

static void
test_response_limits_incremental(void **state)
{
    (void)state;
    cn_h1_response_t resp;
    const char *s = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 0\r\n\r\n";
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(cn_h1_parse_response(s, k, &big_limits, false, &resp, hdrs, MAX_HDRS),
                         CN_H1_INCOMPLETE);
    assert_int_equal(cn_h1_parse_response(s, n, &big_limits, false, &resp, hdrs, MAX_HDRS),
                     CN_H1_OK);
    assert_int_equal(resp.head_len, n);
    cn_h1_limits_t lim = {.max_head = n - 1, .max_headers = 10, .max_target = 10};
    assert_int_equal(cn_h1_parse_response(s, n, &lim, false, &resp, hdrs, MAX_HDRS), CN_H1_ERROR);
    lim.max_head = n;
    assert_int_equal(cn_h1_parse_response(s, n, &lim, false, &resp, hdrs, MAX_HDRS), CN_H1_OK);
    lim.max_headers = 2;
    assert_int_equal(cn_h1_parse_response(s, n, &lim, false, &resp, hdrs, MAX_HDRS), CN_H1_ERROR);
    assert_non_null(resp.error);
}

/* ---- chunked ---- */

struct decoded {
    cn_h1_result_t last;
    bool done;
    size_t consumed;
    char body[4096];
    size_t body_len;
};

/* Feeds @in to a fresh decoder in pieces cut at @cuts (sorted offsets, @n_cuts of them),
 * the way a connection would: each piece is appended to whatever was not consumed. */
static void
decode_split(const char *in, size_t len, const size_t *cuts, size_t n_cuts, size_t max_trailer,
             struct decoded *out)
{
    cn_h1_chunked_t c;
    cn_h1_chunked_init(&c);
    c.max_trailer = max_trailer;
    memset(out, 0, sizeof(*out));
    size_t pos = 0;
    for (size_t piece = 0; piece <= n_cuts; piece++) {
        size_t end = piece < n_cuts ? cuts[piece] : len;
        for (;;) {
            size_t used = 0;
            cairn_iov_t data;
            cn_h1_result_t r = cn_h1_chunked_decode(&c, in + pos, end - pos, &used, &data);
            assert_true(used <= end - pos);
            if (data.len) {
                assert_true(data.base >= in + pos && data.base + data.len <= in + pos + used);
                assert_true(out->body_len + data.len <= sizeof(out->body));
                memcpy(out->body + out->body_len, data.base, data.len);
                out->body_len += data.len;
            }
            pos += used;
            out->last = r;
            if (r == CN_H1_ERROR || c.done) {
                out->done = c.done;
                out->consumed = pos;
                return;
            }
            if (r == CN_H1_INCOMPLETE)
                break;
        }
    }
    out->consumed = pos;
}

static void
expect_decode(const char *in, size_t len, size_t max_trailer, cn_h1_result_t want, const char *body,
              size_t want_consumed)
{
    struct decoded whole;
    struct decoded split;
    decode_split(in, len, NULL, 0, max_trailer, &whole);
    if (whole.last != want)
        fail_msg("decode of \"%.*s\": %d, want %d", (int)len, in, whole.last, want);
    if (want != CN_H1_ERROR) {
        assert_int_equal(whole.body_len, strlen(body));
        assert_memory_equal(whole.body, body, whole.body_len);
        assert_int_equal(whole.consumed, want_consumed);
    }
    /* every two-piece split */
    for (size_t k = 0; k <= len; k++) {
        decode_split(in, len, &k, 1, max_trailer, &split);
        assert_int_equal(split.last, whole.last);
        assert_int_equal(split.done, whole.done);
        assert_int_equal(split.body_len, whole.body_len);
        assert_memory_equal(split.body, whole.body, whole.body_len);
        if (want != CN_H1_ERROR)
            assert_int_equal(split.consumed, whole.consumed);
    }
    /* one byte at a time */
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    for (size_t k = 0; k < len; k++)
        cuts[k] = k + 1;
    decode_split(in, len, cuts, len ? len - 1 : 0, max_trailer, &split);
    free(cuts);
    assert_int_equal(split.last, whole.last);
    assert_int_equal(split.body_len, whole.body_len);
    assert_memory_equal(split.body, whole.body, whole.body_len);
}

#define DECODE_OK(lit, body, tail)                                                                 \
    expect_decode(lit tail, sizeof(lit tail) - 1, 0, CN_H1_OK, body, sizeof(lit) - 1)
#define DECODE_BAD(lit) expect_decode(lit, sizeof(lit) - 1, 0, CN_H1_ERROR, NULL, 0)

static void
test_chunked_valid(void **state)
{
    (void)state;
    DECODE_OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", "");
    DECODE_OK("0\r\n\r\n", "", "GET / HTTP/1.1\r\n");
    DECODE_OK("A\r\n0123456789\r\na\r\nabcdefghij\r\n000\r\n\r\n", "0123456789abcdefghij", "xx");
    DECODE_OK("000000000000000f\r\n0123456789abcde\r\n0\r\n\r\n", "0123456789abcde", "");
    /* extensions */
    DECODE_OK("5;a\r\nhello\r\n0;last=yes\r\n\r\n", "hello", "");
    DECODE_OK("5 ; a = b ;c=\"q \\\" ;\\\\\";d\r\nhello\r\n0\r\n\r\n", "hello", "");
    DECODE_OK("5;name=\"\xe9t\xe9\"\r\nhello\r\n0\r\n\r\n", "hello", "");
    /* trailers */
    DECODE_OK("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:\tv \xff\r\n\r\n", "hello", "NEXT");
    DECODE_OK("1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "\r\n", "");
}

static void
test_chunked_invalid(void **state)
{
    (void)state;
    DECODE_BAD("\r\n");
    DECODE_BAD("g\r\n");
    DECODE_BAD(" 5\r\nhello\r\n0\r\n\r\n");
    DECODE_BAD("5 \r\nhello\r\n0\r\n\r\n");
    DECODE_BAD("+5\r\nhello\r\n0\r\n\r\n");
    DECODE_BAD("5\nhello\r\n0\r\n\r\n");
    DECODE_BAD("5\rhello\r\n0\r\n\r\n");
    DECODE_BAD("5\r\nhelloo\r\n0\r\n\r\n");
    DECODE_BAD("5\r\nhello\n0\r\n\r\n");
    DECODE_BAD("5\r\nhello\r0\r\n\r\n");
    DECODE_BAD("00000000000000001\r\nx\r\n0\r\n\r\n");
    DECODE_BAD("8000000000000000\r\n");
    DECODE_BAD("ffffffffffffffff\r\n");
    DECODE_BAD("5;\r\nhello\r\n0\r\n\r\n");
    DECODE_BAD("5;a=\r\nhello\r\n0\r\n\r\n");
    DECODE_BAD("5;a=b c\r\nhello\r\n0\r\n\r\n");
    DECODE_BAD("5;a=\"b\r\nhello\r\n0\r\n\r\n");
    DECODE_BAD("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n");
    DECODE_BAD("5;a \r\nhello\r\n0\r\n\r\n");
    DECODE_BAD("5;a\n");
    DECODE_BAD("5;a=\"\x01\"\r\n");
    DECODE_BAD("0\r\nX: a\r\n b\r\n\r\n");
    DECODE_BAD("0\r\n b\r\n\r\n");
    DECODE_BAD("0\r\nX a\r\n\r\n");
    DECODE_BAD("0\r\nX : a\r\n\r\n");
    DECODE_BAD("0\r\n: a\r\n\r\n");
    DECODE_BAD("0\r\nX: a\n\r\n");
    DECODE_BAD("0\r\nX: a\0\r\n\r\n");
    DECODE_BAD("0\r\n\n");
    DECODE_BAD("0\r\n\rX");
    DECODE_BAD("0\n\r\n");
}

static void
test_chunked_limits(void **state)
{
    (void)state;
    char buf[8192];
    /* a size line of exactly 4096 bytes is accepted, 4097 is not */
    memset(buf, 0, sizeof(buf));
    strcpy(buf, "1;x=");
    memset(buf + 4, 'a', 4096 - 4);
    strcpy(buf + 4096, "\r\nZ\r\n0\r\n\r\n");
    struct decoded d;
    decode_split(buf, strlen(buf), NULL, 0, 0, &d);
    assert_int_equal(d.last, CN_H1_OK);
    assert_true(d.done);
    assert_int_equal(d.body_len, 1);
    memset(buf + 4, 'a', 4097 - 4);
    strcpy(buf + 4097, "\r\nZ\r\n0\r\n\r\n");
    decode_split(buf, strlen(buf), NULL, 0, 0, &d);
    assert_int_equal(d.last, CN_H1_ERROR);

    /* trailer section limit: "X: yy\r\n\r\n" is 9 bytes */
    const char *t = "0\r\nX: yy\r\n\r\n";
    decode_split(t, strlen(t), NULL, 0, 9, &d);
    assert_true(d.done);
    decode_split(t, strlen(t), NULL, 0, 8, &d);
    assert_int_equal(d.last, CN_H1_ERROR);
    /* default 16 KiB */
    static char big[20000];
    strcpy(big, "0\r\nX: ");
    memset(big + 6, 'v', 17000);
    strcpy(big + 17006, "\r\n\r\n");
    decode_split(big, strlen(big), NULL, 0, 0, &d);
    assert_int_equal(d.last, CN_H1_ERROR);
    decode_split(big, strlen(big), NULL, 0, 18000, &d);
    assert_true(d.done);
}

static void
test_chunked_api(void **state)
{
    (void)state;
    cn_h1_chunked_t c;
    size_t used = 99;
    cairn_iov_t data;
    cn_h1_chunked_init(&c);
    assert_int_equal(cn_h1_chunked_decode(&c, "", 0, &used, &data), CN_H1_INCOMPLETE);
    assert_int_equal(used, 0);
    assert_int_equal(data.len, 0);
    const char *s = "3\r\nabc\r\n0\r\n\r\nrest";
    assert_int_equal(cn_h1_chunked_decode(&c, s, 5, &used, &data), CN_H1_OK);
    assert_int_equal(used, 5);
    assert_true(data.base == s + 3 && data.len == 2);
    assert_int_equal(c.remaining, 1);
    assert_int_equal(cn_h1_chunked_decode(&c, s + 5, strlen(s + 5), &used, &data), CN_H1_OK);
    assert_int_equal(used, 1);
    assert_int_equal(cn_h1_chunked_decode(&c, s + 6, strlen(s + 6), &used, &data), CN_H1_OK);
    assert_true(c.done);
    assert_int_equal(data.len, 0);
    assert_int_equal(used, strlen(s + 6) - 4);
    /* after the end: nothing more is consumed */
    assert_int_equal(cn_h1_chunked_decode(&c, "rest", 4, &used, &data), CN_H1_OK);
    assert_int_equal(used, 0);
    /* after an error: stays an error */
    cn_h1_chunked_init(&c);
    assert_int_equal(cn_h1_chunked_decode(&c, "x", 1, &used, &data), CN_H1_ERROR);
    assert_non_null(c.error);
    assert_int_equal(cn_h1_chunked_decode(&c, "0\r\n\r\n", 5, &used, &data), CN_H1_ERROR);
}

static void
test_tchar(void **state)
{
    (void)state;
    const char *tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (int c = 0; c < 256; c++) {
        bool want = c != 0 && strchr(tchars, c) != NULL;
        if (cn_h1_is_tchar((unsigned char)c) != want)
            fail_msg("tchar 0x%02x", c);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_with_headers),
        cmocka_unit_test(test_query_forms),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_chunked_request),
        cmocka_unit_test(test_http10_keep_alive),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_connect_and_options),
        cmocka_unit_test(test_upgrade_expect),
        cmocka_unit_test(test_leading_empty_lines_and_pipelining),
        cmocka_unit_test(test_incremental_bytewise),
        cmocka_unit_test(test_request_limits),
        cmocka_unit_test(test_request_errors_misc),
        cmocka_unit_test(test_bad_request_corpus),
        cmocka_unit_test(test_response_valid),
        cmocka_unit_test(test_response_bodiless),
        cmocka_unit_test(test_response_close_delimited),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_response_limits_incremental),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_invalid),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_api),
        cmocka_unit_test(test_tchar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
