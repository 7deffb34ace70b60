/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the HTTP/1.1 response head parser. The input's length parity says whether
 * the request was HEAD. Checks invariants with __builtin_trap(): results are slices of the
 * input, the framing flags are consistent, and prefixes never contradict the whole input. */
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

static void
check_ok(const char *buf, size_t size, bool head, const cn_h1_response_t *resp)
{
    size_t h = resp->head_len;
    unsigned st = resp->status;
    CHECK(h >= 4 && h <= size && h <= limits.max_head);
    CHECK(memcmp(buf + h - 4, "\r\n\r\n", 4) == 0);
    CHECK(resp->minor_version == 0 || resp->minor_version == 1);
    CHECK(st >= 100 && st <= 999);
    CHECK(within(resp->reason, buf, h));
    CHECK(resp->n_headers <= limits.max_headers);
    for (size_t i = 0; i < resp->n_headers; i++)
        CHECK(resp->headers[i].name.len > 0 && within(resp->headers[i].name, buf, h) &&
              within(resp->headers[i].value, buf, h));
    CHECK(resp->content_length >= -1);
    CHECK(!(resp->chunked && resp->content_length >= 0));
    if (st < 200 || st == 204 || st == 304 || head)
        CHECK(resp->no_body);
    if ((st < 200 || st == 204))
        CHECK(resp->content_length <= 0);
    if (resp->no_body) {
        CHECK(!resp->chunked && !resp->close_delimited);
    } else {
        /* exactly one way to find the end of the body */
        int ways = (resp->chunked ? 1 : 0) + (resp->content_length >= 0 ? 1 : 0) +
                   (resp->close_delimited ? 1 : 0);
        CHECK(ways == 1);
    }
    CHECK(!(resp->close_delimited && resp->keep_alive));
}

static void
check_prefix(const uint8_t *data, size_t k, bool head, cn_h1_result_t full,
             const cn_h1_response_t *fresp)
{
    cn_h1_header_t hdrs[MAX_HDRS];
    cn_h1_response_t resp;
    char *copy = malloc(k ? k : 1);
    memcpy(copy, data, k);
    cn_h1_result_t r = cn_h1_parse_response(copy, k, &limits, head, &resp, hdrs, MAX_HDRS);
    free(copy);

    if (full == CN_H1_OK) {
        if (k < fresp->head_len)
            CHECK(r == CN_H1_INCOMPLETE);
        else
            CHECK(r == CN_H1_OK && resp.head_len == fresp->head_len);
    } else {
        CHECK(r == CN_H1_INCOMPLETE || r == full);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cn_h1_header_t hdrs[MAX_HDRS];
    cn_h1_response_t resp;
    bool head = size % 2;
    const char *buf = (const char *)data;
    cn_h1_result_t r = cn_h1_parse_response(buf, size, &limits, head, &resp, hdrs, MAX_HDRS);

    if (r == CN_H1_OK)
        check_ok(buf, size, head, &resp);
    else if (r == CN_H1_ERROR)
        CHECK(resp.error != NULL);
    else
        CHECK(size < limits.max_head);

    size_t cuts[4] = {size / 2, size ? size - 1 : 0, size ? data[0] % size : 0, 0};
    if (r == CN_H1_OK)
        cuts[3] = resp.head_len - 1;
    for (size_t i = 0; i < 4; i++)
        check_prefix(data, cuts[i], head, r, &resp);
    return 0;
}
