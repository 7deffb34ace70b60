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

/* The arguments are pasted into a YAML document: accept address characters only. */
static bool
is_plain_arg(const char *s)
{
    static const char ok[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ.:-_[]/";
    return s[0] != '\0' && strspn(s, ok) == strlen(s);
}

int
main(int argc, char **argv)
{
    if (argc != 3 || !is_plain_arg(argv[1]) || !is_plain_arg(argv[2])) {
        fprintf(stderr, "usage: %s <listen_port> <upstream_addr>\n", argv[0]);
        return 2;
    }
    char yaml[1024];
    int n = snprintf(yaml, sizeof(yaml), config_fmt, argv[1], argv[2]);
    if (n < 0 || (size_t)n >= sizeof(yaml)) {
        fprintf(stderr, "%s: arguments too long\n", argv[0]);
        return 2;
    }
    cairn_config_t *cfg = NULL;
    if (cairn_config_load_string("lesson25", yaml, (size_t)n, &cfg, stderr) != CAIRN_OK)
        return 1;
    cairn_server_t *srv = cairn_server_new(cfg);
    int rc = 1;
    if (cairn_server_use(srv, &pool_hooks, NULL) == CAIRN_OK)
        rc = cairn_server_run(srv);
    cairn_server_free(srv);
    cairn_config_unref(cfg);
    return rc;
}
