/* SPDX-License-Identifier: MIT */
/* Lesson 13, custom errors: fail_to_proxy is the catch-all for every error that is about to
 * become a response, whatever phase raised it. Here request_filter fails "/oops" with a 400
 * on purpose, and an unreachable upstream gives a 502; both leave as the same JSON body.
 *
 *   example_lesson13_errors <listen_port> <upstream_addr>
 *   curl -v http://127.0.0.1:<listen_port>/oops */
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

static cairn_action_t
simulate_failure(cairn_req_t *req, void *ctx)
{
    (void)ctx;
    cairn_iov_t path = cairn_req_path(req);
    if (path.len == 5 && memcmp(path.base, "/oops", 5) == 0) {
        cairn_req_fail(req, 400);
        return CAIRN_FAIL;
    }
    return CAIRN_CONTINUE;
}

/* @status is what cairn would send (the 400 above, 502 for a refused connection, 504 for an
 * upstream timeout ...); @err says why. The body is copied by cairn_req_respond, so a stack
 * buffer will do, and Content-Length is computed by cairn. */
static cairn_action_t
json_error(cairn_req_t *req, void *ctx, cairn_err_t err, unsigned *status)
{
    (void)ctx;
    char body[128];
    int n = snprintf(body, sizeof(body),
                     "{\"status\": \"error\", \"code\": %u, \"message\": \"We caught a custom "
                     "error!\"}",
                     *status);
    if (n < 0 || (size_t)n >= sizeof(body))
        return CAIRN_CONTINUE; /* cannot happen; cairn's own error page would be sent */
    fprintf(stderr, "Fail to proxy: %u (%s)\n", *status, cairn_err_name(err));
    cairn_req_respond(req, *status, CAIRN_IOV_LIT("application/json"),
                      (cairn_iov_t){body, (size_t)n});
    return CAIRN_RESPONDED;
}

static const cairn_hooks_t error_hooks = {
    .abi = CAIRN_HOOKS_ABI,
    .name = "lesson13_errors",
    .request_filter = simulate_failure,
    .fail_to_proxy = json_error,
};

int
main(int argc, char **argv)
{
    return example_run(argc, argv, 2, "<listen_port> <upstream_addr>", "lesson13", config_fmt,
                       &error_hooks);
}
