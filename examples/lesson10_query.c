/* SPDX-License-Identifier: MIT */
/* Lesson 10, query rewriting: request_filter drops every '&'-separated part of the query
 * that starts with "debug=" (and empty parts), keeps the others in order, and appends
 * "ref=pingora"; a request without a query gets "?ref=pingora". The new query is built in
 * request memory (cairn_req_alloc) and handed to cairn_req_set_query, which copies it.
 *
 *   example_lesson10_query <listen_port> <upstream_addr>
 *   curl -v 'http://127.0.0.1:<listen_port>/search?q=rust&debug=true&sort=asc' */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cairn/cairn.h>

#include "example_run.h"

static const char config_fmt[] = "server: {workers: 1, access_log: \"off\"}\n"
                                 "admin: {listen: \"off\"}\n"
                                 "listeners: [{listen: \"127.0.0.1:%s\"}]\n"
                                 "upstreams:\n"
                                 "  blue: {peers: [{address: \"%s\"}]}\n"
                                 "routes:\n"
                                 "  - upstream: blue\n";

static const char appended[] = "ref=pingora";

static bool
keep_param(const char *part, size_t len)
{
    static const char drop[] = "debug=";
    return len > 0 && !(len >= sizeof(drop) - 1 && memcmp(part, drop, sizeof(drop) - 1) == 0);
}

/* Writes the filtered @q followed by "ref=pingora" to @out, which holds q.len + sizeof(appended)
 * bytes at least; returns the length written. */
static size_t
rewrite_query(cairn_iov_t q, char *out)
{
    size_t n = 0, i = 0;
    while (i < q.len) {
        const char *amp = memchr(q.base + i, '&', q.len - i);
        size_t len = amp != NULL ? (size_t)(amp - (q.base + i)) : q.len - i;
        if (keep_param(q.base + i, len)) {
            memcpy(out + n, q.base + i, len);
            n += len;
            out[n++] = '&';
        }
        i += len + 1;
    }
    memcpy(out + n, appended, sizeof(appended) - 1);
    return n + sizeof(appended) - 1;
}

static cairn_action_t
rewrite_request_query(cairn_req_t *req, void *ctx)
{
    (void)ctx;
    cairn_iov_t q = cairn_req_query(req);
    cairn_iov_t path = cairn_req_path(req);
    char *buf = cairn_req_alloc(req, q.len + sizeof(appended));
    if (buf == NULL) {
        cairn_req_fail(req, 500); /* the request's memory cap is reached */
        return CAIRN_FAIL;
    }
    cairn_iov_t nq = {buf, rewrite_query(q, buf)};
    cairn_req_set_query(req, nq);
    /* Printing from a hook blocks the worker for the write: fine for a demonstration. */
    printf("Original Query: '%.*s'\nRewritten URI: %.*s?%.*s\n", (int)q.len, q.base, (int)path.len,
           path.base, (int)nq.len, nq.base);
    fflush(stdout);
    return CAIRN_CONTINUE;
}

static const cairn_hooks_t query_hooks = {
    .abi = CAIRN_HOOKS_ABI,
    .name = "lesson10_query",
    .request_filter = rewrite_request_query,
};

int
main(int argc, char **argv)
{
    return example_run(argc, argv, 2, "<listen_port> <upstream_addr>", "lesson10", config_fmt,
                       &query_hooks);
}
