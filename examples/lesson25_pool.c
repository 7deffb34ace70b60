/* SPDX-License-Identifier: MIT */
/* Lesson 25, connection reuse: cairn keeps idle upstream connections in a per-worker
 * keep-alive pool. The logging hook, called exactly once when a request ends, reports
 * whether the request's upstream connection came from that pool.
 *
 *   example_lesson25_pool <listen_port> <upstream_addr>
 *   curl -s http://127.0.0.1:<listen_port>/ http://127.0.0.1:<listen_port>/ */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cairn/cairn.h>

#include "example_run.h"

/* One worker, so both requests share one pool; idle connections are kept for 30 s. */
static const char config_fmt[] = "server: {workers: 1, access_log: \"off\"}\n"
                                 "admin: {listen: \"off\"}\n"
                                 "listeners: [{listen: \"127.0.0.1:%s\"}]\n"
                                 "upstreams:\n"
                                 "  blue:\n"
                                 "    peers: [{address: \"%s\"}]\n"
                                 "    keepalive_pool: 16\n"
                                 "    keepalive_idle: 30s\n"
                                 "routes:\n"
                                 "  - upstream: blue\n";

/* The summary and its strings are valid during the call only. */
static void
log_reuse(cairn_req_t *req, void *ctx, const cairn_req_summary_t *sum)
{
    (void)req;
    (void)ctx;
    printf("Request Complete. Reused Connection: %s\n", sum->upstream_reused ? "true" : "false");
    fflush(stdout);
}

static const cairn_hooks_t pool_hooks = {
    .abi = CAIRN_HOOKS_ABI,
    .name = "lesson25_pool",
    .logging = log_reuse,
};

int
main(int argc, char **argv)
{
    return example_run(argc, argv, 2, "<listen_port> <upstream_addr>", "lesson25", config_fmt,
                       &pool_hooks);
}
