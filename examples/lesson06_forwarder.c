/* SPDX-License-Identifier: MIT */
/* Lesson 6, the simple forwarder: every request goes to one upstream ("blue"), and an
 * upstream_request_filter hook rewrites the Host header the upstream sees.
 *
 *   example_lesson06_forwarder <listen_port> <upstream_addr>
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

/* Runs once the upstream request head is built: hop-by-hop fields are gone, Host holds the
 * client's value, X-Forwarded-* and Via are added. cairn_headers_set replaces every value
 * (Pingora's insert_header) and copies both strings. */
static cairn_action_t
set_upstream_host(cairn_req_t *req, void *ctx, cairn_headers_t *h)
{
    (void)req;
    (void)ctx;
    cairn_headers_set(h, CAIRN_IOV_LIT("Host"), CAIRN_IOV_LIT("blue.pingora.local"));
    return CAIRN_CONTINUE;
}

static const cairn_hooks_t forwarder_hooks = {
    .abi = CAIRN_HOOKS_ABI,
    .name = "lesson06_forwarder",
    .upstream_request_filter = set_upstream_host,
};

int
main(int argc, char **argv)
{
    return example_run(argc, argv, 2, "<listen_port> <upstream_addr>", "lesson06", config_fmt,
                       &forwarder_hooks);
}
