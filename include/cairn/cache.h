/* SPDX-License-Identifier: MIT */
/* Cache controls for hooks: the cache key (cache_key hook), what a hit looks like
 * (cache_hit_filter hook), and cacheability/TTL from upstream_response_filter. */
#ifndef CAIRN_CACHE_H
#define CAIRN_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include <cairn/iov.h>
#include <cairn/version.h>

typedef struct cairn_cache_key cairn_cache_key_t;
typedef struct cairn_resp cairn_resp_t;

/** The key cairn built from the route's template ("http://host/path?query" plus configured
 *  header and cookie parts). Valid during the cache_key hook. */
CAIRN_API cairn_iov_t cairn_cache_key_text(const cairn_cache_key_t *key);
/** Replaces the whole key (copied). */
CAIRN_API void cairn_cache_key_set(cairn_cache_key_t *key, cairn_iov_t text);
/** Appends a part to the key (copied), e.g. a tenant id. */
CAIRN_API void cairn_cache_key_add(cairn_cache_key_t *key, cairn_iov_t part);

/** What cache_hit_filter sees about a stored response. */
typedef struct cairn_cache_meta {
    unsigned status;
    int64_t age; /* seconds */
    int64_t ttl; /* remaining freshness in seconds; <= 0 when stale */
    uint64_t body_len;
    bool expire; /* set to true to revalidate with the origin instead of serving the hit */
} cairn_cache_meta_t;

/** From upstream_response_filter: decides cacheability (false: never store this response;
 *  true: store it even when the response's own headers would not allow it) and, when @ttl
 *  is >= 0, its freshness lifetime in seconds. */
CAIRN_API void cairn_resp_set_cache(cairn_resp_t *resp, bool cacheable, int64_t ttl);

#endif
