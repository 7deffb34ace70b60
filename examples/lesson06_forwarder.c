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
    if (cairn_config_load_string("lesson06", yaml, (size_t)n, &cfg, stderr) != CAIRN_OK)
        return 1;
    cairn_server_t *srv = cairn_server_new(cfg);
    int rc = 1;
    if (cairn_server_use(srv, &forwarder_hooks, NULL) == CAIRN_OK)
        rc = cairn_server_run(srv);
    cairn_server_free(srv);
    cairn_config_unref(cfg);
    return rc;
}
