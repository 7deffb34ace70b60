/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the HTTP/1.1 request head parser, and the chunked decoder behind a chunked
 * head. Checks invariants with __builtin_trap(): results are slices of the input, limits hold,
 * and a prefix of the input never gets a verdict that the whole input contradicts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/compiler.h"
#include "http1/parser.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_HDRS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const cn_h1_limits_t limits = {.max_head = 4096, .max_headers = 24, .max_target = 1024};

static bool
within(cairn_iov_t v, const char *base, size_t len)
{
    return v.len == 0 ||
           (v.base >= base && v.len <= len && v.base - base <= (ptrdiff_t)(len - v.len));
}

static bool
is_ows_byte(char c)
{
    return c == ' ' || c == '\t';
}

static void
check_ok(const char *buf, size_t size, const cn_h1_request_t *req)
{
    size_t h = req->head_len;
    CHECK(h >= 4 && h <= size && h <= limits.max_head);
    CHECK(memcmp(buf + h - 4, "\r\n\r\n", 4) == 0);
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(req->n_headers <= limits.max_headers);
    CHECK(req->method.len > 0 && within(req->method, buf, h));
    CHECK(req->target.len > 0 && req->target.len <= limits.max_target);
    CHECK(within(req->target, buf, h));
    CHECK(within(req->path, buf, h));
    CHECK(req->path.len > 0 || req->path.base == req->target.base);
    CHECK(req->path.len == 0 || req->path.base[0] == '/' || req->path.base[0] == '*');
    CHECK(within(req->query, buf, h));
    CHECK(req->has_query || req->query.len == 0);
    CHECK(within(req->host, buf, h));
    CHECK(req->content_length >= -1);
    CHECK(!(req->chunked && req->content_length >= 0));
    CHECK(!req->chunked || req->minor_version == 1);
    CHECK(req->host.len > 0 || req->minor_version == 0 || req->n_headers > 0);
    for (size_t i = 0; i < req->n_headers; i++) {
        cairn_iov_t n = req->headers[i].name;
        cairn_iov_t v = req->headers[i].value;
        CHECK(n.len > 0 && within(n, buf, h) && within(v, buf, h));
        for (size_t j = 0; j < n.len; j++)
            CHECK(cn_h1_is_tchar((unsigned char)n.base[j]));
        for (size_t j = 0; j < v.len; j++)
            CHECK(v.base[j] != '\r' && v.base[j] != '\n' && v.base[j] != '\0');
        CHECK(v.len == 0 || (!is_ows_byte(v.base[0]) && !is_ows_byte(v.base[v.len - 1])));
    }
}

static cn_h1_result_t
parse_prefix(const uint8_t *data, size_t k, cn_h1_request_t *req, cn_h1_header_t *hdrs)
{
    char *copy = malloc(k ? k : 1);
    memcpy(copy, data, k);
    cn_h1_result_t r = cn_h1_parse_request(copy, k, &limits, req, hdrs, MAX_HDRS);
    free(copy);
    return r;
}

static void
check_prefix(const uint8_t *data, size_t k, cn_h1_result_t full, const cn_h1_request_t *freq)
{
    cn_h1_header_t hdrs[MAX_HDRS];
    cn_h1_request_t req;
    cn_h1_result_t r = parse_prefix(data, k, &req, hdrs);

    if (full == CN_H1_OK) {
        if (k < freq->head_len) {
            CHECK(r == CN_H1_INCOMPLETE);
        } else {
            CHECK(r == CN_H1_OK && req.head_len == freq->head_len);
            CHECK(req.content_length == freq->content_length && req.chunked == freq->chunked);
        }
    } else if (full == CN_H1_ERROR) {
        CHECK(r == CN_H1_INCOMPLETE || (r == CN_H1_ERROR && req.status == freq->status));
    } else {
        CHECK(r == CN_H1_INCOMPLETE);
    }
}

static void
check_body(const char *body, size_t len)
{
    cn_h1_chunked_t c;
    cn_h1_chunked_init(&c);
    size_t pos = 0;
    for (;;) {
        size_t used = 0;
        cairn_iov_t d;
        cn_h1_result_t r = cn_h1_chunked_decode(&c, body + pos, len - pos, &used, &d);
        CHECK(used <= len - pos);
        CHECK(within(d, body + pos, used));
        pos += used;
        if (r != CN_H1_OK || c.done)
            break;
        CHECK(d.len > 0);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cn_h1_header_t hdrs[MAX_HDRS];
    cn_h1_request_t req;
    const char *buf = (const char *)data;
    cn_h1_result_t r = cn_h1_parse_request(buf, size, &limits, &req, hdrs, MAX_HDRS);

    if (r == CN_H1_OK) {
        check_ok(buf, size, &req);
        if (req.chunked)
            check_body(buf + req.head_len, size - req.head_len);
    } else if (r == CN_H1_ERROR) {
        CHECK(req.error != NULL);
        CHECK(req.status == 400 || req.status == 414 || req.status == 417 || req.status == 431 ||
              req.status == 505);
    } else {
        CHECK(size < limits.max_head);
    }

    size_t cuts[4] = {size / 2, size ? size - 1 : 0, size ? data[0] % size : 0, 0};
    if (r == CN_H1_OK)
        cuts[3] = req.head_len - 1;
    for (size_t i = 0; i < 4; i++)
        check_prefix(data, cuts[i], r, &req);
    return 0;
}
