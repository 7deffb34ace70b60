/* SPDX-License-Identifier: MIT */
/* Lesson 11, response modification: response_filter removes X-App-Version, sets
 * X-Content-Type-Options and copies the upstream's Date into X-Legacy-Date. Every other
 * header, including repeated ones such as Set-Cookie, passes through untouched.
 *
 *   example_lesson11_response <listen_port> <upstream_addr>
 *   curl -v http://127.0.0.1:<listen_port>/ */
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
edit_response(cairn_req_t *req, void *ctx, cairn_resp_t *resp)
{
    (void)ctx;
    cairn_headers_t *h = cairn_resp_headers(resp);
    cairn_headers_remove(h, CAIRN_IOV_LIT("X-App-Version"));
    cairn_headers_set(h, CAIRN_IOV_LIT("X-Content-Type-Options"), CAIRN_IOV_LIT("nosniff"));
    /* A value read from a list is only guaranteed until that list changes, and the set
     * below changes it: take a request-lifetime copy first. Without an upstream Date there
     * is nothing to copy, because cairn adds its own Date when it writes the head, after
     * every hook has run. */
    cairn_iov_t date;
    if (!cairn_headers_get(h, CAIRN_IOV_LIT("Date"), &date))
        return CAIRN_CONTINUE;
    char *copy = cairn_req_alloc(req, date.len + 1);
    if (copy == NULL)
        return CAIRN_CONTINUE; /* the request's memory cap is reached: skip the copy */
    memcpy(copy, date.base, date.len);
    cairn_headers_set(h, CAIRN_IOV_LIT("X-Legacy-Date"), (cairn_iov_t){copy, date.len});
    return CAIRN_CONTINUE;
}

static const cairn_hooks_t response_hooks = {
    .abi = CAIRN_HOOKS_ABI,
    .name = "lesson11_response",
    .response_filter = edit_response,
};

int
main(int argc, char **argv)
{
    return example_run(argc, argv, 2, "<listen_port> <upstream_addr>", "lesson11", config_fmt,
                       &response_hooks);
}
