/* SPDX-License-Identifier: MIT */
/* Lesson 8, header manipulation: one hook table edits the request headers on their way to
 * the upstream (upstream_request_filter) and the response headers on their way back to the
 * client (response_filter, which runs after the upstream head arrived and before the body is
 * streamed).
 *
 *   example_lesson08_headers <listen_port> <upstream_addr>
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
                                 "  green: {peers: [{address: \"%s\"}]}\n"
                                 "routes:\n"
                                 "  - upstream: green\n";

/* The list is the request as it will be sent upstream, not the client's own
 * (cairn_req_headers): what is removed here only disappears from the upstream request. */
static cairn_action_t
edit_request_headers(cairn_req_t *req, void *ctx, cairn_headers_t *h)
{
    (void)req;
    (void)ctx;
    cairn_headers_set(h, CAIRN_IOV_LIT("Host"), CAIRN_IOV_LIT("green.pingora.local"));
    cairn_headers_set(h, CAIRN_IOV_LIT("X-Pingora-Proxy"), CAIRN_IOV_LIT("true"));
    cairn_headers_remove(h, CAIRN_IOV_LIT("User-Agent"));
    return CAIRN_CONTINUE;
}

/* Runs for every response the client gets: proxied ones, and cairn's own errors too. */
static cairn_action_t
edit_response_headers(cairn_req_t *req, void *ctx, cairn_resp_t *resp)
{
    (void)req;
    (void)ctx;
    cairn_headers_set(cairn_resp_headers(resp), CAIRN_IOV_LIT("X-Edited-By"),
                      CAIRN_IOV_LIT("Pingora"));
    return CAIRN_CONTINUE;
}

static const cairn_hooks_t header_hooks = {
    .abi = CAIRN_HOOKS_ABI,
    .name = "lesson08_headers",
    .upstream_request_filter = edit_request_headers,
    .response_filter = edit_response_headers,
};

int
main(int argc, char **argv)
{
    return example_run(argc, argv, 2, "<listen_port> <upstream_addr>", "lesson08", config_fmt,
                       &header_hooks);
}
