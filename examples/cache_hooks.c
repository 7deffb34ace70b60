/* SPDX-License-Identifier: MIT */
/* Cache hooks: one caching route whose behaviour a program adjusts per request.
 *
 *   cache_key                 a request's X-Tenant value is appended to the cache key, so
 *                             every tenant gets its own objects (cairn_cache_key_add)
 *   cache_hit_filter          a request with X-Force-Revalidate does not take a stored
 *                             response as it is: cairn revalidates it with the origin
 *   upstream_response_filter  an origin response with X-No-Cache-Please is never stored; one
 *                             with X-Cache-7 is stored for 7 seconds, whatever its own
 *                             Cache-Control says (cairn_resp_set_cache)
 *   request_filter            a request with X-No-Stale never gets stale content
 *                             (stale-while-revalidate, max-stale, stale-if-error)
 *
 *   example_cache_hooks <listen_port> <origin_addr>
 *   curl -v -H 'X-Tenant: acme' http://127.0.0.1:<listen_port>/page */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cairn/cairn.h>

#include "example_run.h"

static const char config_fmt[] = "server: {workers: 1, access_log: \"off\"}\n"
                                 "admin: {listen: \"off\"}\n"
                                 "listeners: [{listen: \"127.0.0.1:%s\"}]\n"
                                 "upstreams:\n"
                                 "  origin: {peers: [{address: \"%s\"}]}\n"
                                 "caches:\n"
                                 "  main: {memory: {size: 16MiB, max_object: 1MiB}}\n"
                                 "routes:\n"
                                 "  - upstream: origin\n"
                                 "    cache: main\n";

static bool
has_header(cairn_headers_t *h, cairn_iov_t name)
{
    cairn_iov_t value;
    return cairn_headers_get(h, name, &value);
}

/* The tenant part goes after a newline, like the parts cairn adds for caches.<name>.key
 * headers and cookies: it cannot run into the path, and a purge of the URL takes every
 * tenant's object. */
static cairn_action_t
tenant_key(cairn_req_t *req, void *ctx, cairn_cache_key_t *key)
{
    (void)ctx;
    cairn_iov_t tenant;
    if (cairn_headers_get(cairn_req_headers(req), CAIRN_IOV_LIT("X-Tenant"), &tenant)) {
        cairn_cache_key_add(key, CAIRN_IOV_LIT("\ntenant="));
        cairn_cache_key_add(key, tenant);
    }
    return CAIRN_CONTINUE;
}

static cairn_action_t
force_revalidate(cairn_req_t *req, void *ctx, cairn_cache_meta_t *m)
{
    (void)ctx;
    if (has_header(cairn_req_headers(req), CAIRN_IOV_LIT("X-Force-Revalidate")))
        m->expire = true;
    return CAIRN_CONTINUE;
}

static cairn_action_t
origin_cache_wishes(cairn_req_t *req, void *ctx, cairn_resp_t *resp)
{
    (void)req;
    (void)ctx;
    cairn_headers_t *h = cairn_resp_headers(resp);
    if (has_header(h, CAIRN_IOV_LIT("X-No-Cache-Please")))
        cairn_resp_set_cache(resp, false, -1);
    else if (has_header(h, CAIRN_IOV_LIT("X-Cache-7")))
        cairn_resp_set_cache(resp, true, 7);
    return CAIRN_CONTINUE;
}

static cairn_action_t
refuse_stale(cairn_req_t *req, void *ctx)
{
    (void)ctx;
    if (has_header(cairn_req_headers(req), CAIRN_IOV_LIT("X-No-Stale")))
        cairn_req_allow_stale(req, false);
    return CAIRN_CONTINUE;
}

static const cairn_hooks_t cache_hooks = {
    .abi = CAIRN_HOOKS_ABI,
    .name = "cache_hooks",
    .request_filter = refuse_stale,
    .upstream_response_filter = origin_cache_wishes,
    .cache_key = tenant_key,
    .cache_hit_filter = force_revalidate,
};

int
main(int argc, char **argv)
{
    return example_run(argc, argv, 2, "<listen_port> <origin_addr>", "cache_hooks", config_fmt,
                       &cache_hooks);
}
