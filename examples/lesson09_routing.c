/* SPDX-License-Identifier: MIT */
/* Lesson 9, path routing in code: the configuration declares two upstreams and no routes;
 * request_filter picks one by path prefix (/blue, /green) and answers everything else with
 * a 404 itself. The choice travels to upstream_request_filter in the per-request ctx, which
 * sets the Host header of the chosen upstream.
 *
 *   example_lesson09_routing <listen_port> <blue_addr> <green_addr>
 *   curl -v http://127.0.0.1:<listen_port>/blue/x */
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
                                 "  green: {peers: [{address: \"%s\"}]}\n"
                                 "routes: []\n";

/* Per-request state: cairn allocates ctx_size zeroed bytes for every request. */
struct route_ctx {
    cairn_iov_t host; /* Host header for the chosen upstream (a literal); empty until chosen */
};

/* Plain prefix match, as in the tutorial: "/blueberry" goes to blue as well. */
static bool
has_prefix(cairn_iov_t path, const char *prefix)
{
    size_t n = strlen(prefix);
    return path.len >= n && memcmp(path.base, prefix, n) == 0;
}

static cairn_action_t
route_by_path(cairn_req_t *req, void *ctx)
{
    struct route_ctx *rc = ctx;
    cairn_iov_t path = cairn_req_path(req);
    const char *upstream = NULL;
    if (has_prefix(path, "/blue")) {
        upstream = "blue";
        rc->host = CAIRN_IOV_LIT("blue.pingora.local");
    } else if (has_prefix(path, "/green")) {
        upstream = "green";
        rc->host = CAIRN_IOV_LIT("green.pingora.local");
    }
    if (upstream == NULL) {
        /* An empty 404, like Pingora's respond_error(404); nothing reaches an upstream. */
        cairn_req_respond(req, 404, CAIRN_IOV_LIT(""), CAIRN_IOV_LIT(""));
        cairn_headers_set(cairn_resp_headers(cairn_req_response(req)),
                          CAIRN_IOV_LIT("Cache-Control"), CAIRN_IOV_LIT("private, no-store"));
        return CAIRN_RESPONDED;
    }
    if (cairn_req_set_upstream(req, upstream) != CAIRN_OK) {
        cairn_req_fail(req, 500);
        return CAIRN_FAIL;
    }
    return CAIRN_CONTINUE;
}

static cairn_action_t
set_upstream_host(cairn_req_t *req, void *ctx, cairn_headers_t *h)
{
    (void)req;
    const struct route_ctx *rc = ctx;
    if (rc->host.len > 0)
        cairn_headers_set(h, CAIRN_IOV_LIT("Host"), rc->host);
    return CAIRN_CONTINUE;
}

static const cairn_hooks_t routing_hooks = {
    .abi = CAIRN_HOOKS_ABI,
    .name = "lesson09_routing",
    .ctx_size = sizeof(struct route_ctx),
    .request_filter = route_by_path,
    .upstream_request_filter = set_upstream_host,
};

int
main(int argc, char **argv)
{
    return example_run(argc, argv, 3, "<listen_port> <blue_addr> <green_addr>", "lesson09",
                       config_fmt, &routing_hooks);
}
