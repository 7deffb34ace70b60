/* SPDX-License-Identifier: MIT */
/* Lessons 7 and 21 of the gateway guide: TLS termination with client certificates, and a
 * program that decides on the verified identity. The listener asks for a client certificate
 * (client_verify: optional, so a client without one still completes the handshake and gets a
 * clear 403 instead of a handshake failure); the request_filter refuses requests without a
 * verified certificate and forwards the subject upstream in X-Client-Subject (any such header
 * from the client is removed first).
 *
 *   lesson21_mtls <listen_port> <upstream_addr> <cert.pem> <key.pem> <client_ca.pem> */
#include <string.h>

#include <cairn/cairn.h>

#include "example_run.h"

static const char config_fmt[] =
    "server: {workers: 1, access_log: \"off\"}\n"
    "admin: {listen: \"off\"}\n"
    "listeners:\n"
    "  - listen: \"127.0.0.1:%s\"\n"
    "    tls: {cert: \"%s\", key: \"%s\", client_ca: \"%s\", client_verify: optional}\n"
    "upstreams:\n"
    "  app: {peers: [{address: \"%s\"}]}\n"
    "routes:\n"
    "  - upstream: app\n";

static cairn_action_t
require_client_cert(cairn_req_t *req, void *ctx)
{
    (void)ctx;
    cairn_tls_info_t ti;
    if (!cairn_req_tls(req, &ti) || !ti.client_verified) {
        cairn_req_respond(req, 403, CAIRN_IOV_LIT("text/plain"),
                          CAIRN_IOV_LIT("a client certificate is required\n"));
        return CAIRN_RESPONDED;
    }
    return CAIRN_CONTINUE;
}

static cairn_action_t
forward_identity(cairn_req_t *req, void *ctx, cairn_headers_t *h)
{
    (void)ctx;
    cairn_tls_info_t ti;
    cairn_headers_remove(h, CAIRN_IOV_LIT("X-Client-Subject"));
    if (cairn_req_tls(req, &ti) && ti.client_verified) {
        size_t n = strlen(ti.client_subject);
        char *v = cairn_req_alloc(req, n);
        if (v == NULL)
            return CAIRN_FAIL; /* the request's memory cap */
        memcpy(v, ti.client_subject, n);
        cairn_headers_set(h, CAIRN_IOV_LIT("X-Client-Subject"), (cairn_iov_t){v, n});
    }
    return CAIRN_CONTINUE;
}

static const cairn_hooks_t mtls_hooks = {
    .abi = CAIRN_HOOKS_ABI,
    .name = "lesson21_mtls",
    .request_filter = require_client_cert,
    .upstream_request_filter = forward_identity,
};

int
main(int argc, char **argv)
{
    /* The YAML takes the port, the three files, then the upstream. */
    if (argc == 6) {
        char *up = argv[2];
        argv[2] = argv[3];
        argv[3] = argv[4];
        argv[4] = argv[5];
        argv[5] = up;
    }
    return example_run(argc, argv, 5,
                       "<listen_port> <upstream_addr> <cert.pem> <key.pem> <client_ca.pem>",
                       "lesson21", config_fmt, &mtls_hooks);
}
