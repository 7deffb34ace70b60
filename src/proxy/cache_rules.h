/* SPDX-License-Identifier: MIT */
/* The RFC 9111 questions the cache flow asks, in one place: request directives, whether a
 * response may be stored, its freshness, whether a stored response may be used. */
#ifndef CN_PROXY_CACHE_RULES_H
#define CN_PROXY_CACHE_RULES_H

#include "cache/cache.h"
#include "config/config.h"
#include "http/msg.h"

typedef struct cn_cache_req_dirs {
    bool no_store;
    bool no_cache; /* also Pragma: no-cache without Cache-Control */
    bool only_if_cached;
    int64_t max_age;   /* -1 = none */
    int64_t max_stale; /* -1 = none; INT64_MAX = any staleness */
    int64_t min_fresh; /* -1 = none */
} cn_cache_req_dirs_t;

typedef enum cn_cache_use {
    CN_CACHE_USE_FRESH,      /* serve it */
    CN_CACHE_USE_STALE_OK,   /* stale, but the request accepts it (max-stale) */
    CN_CACHE_USE_STALE_SWR,  /* stale within stale-while-revalidate: serve, refresh behind */
    CN_CACHE_USE_REVALIDATE, /* ask the origin first */
} cn_cache_use_t;

void cn_cache_parse_request(const cn_headers_t *req, cn_cache_req_dirs_t *out);
cn_cache_use_t cn_cache_usable(const cn_cache_times_t *t, const cn_cache_req_dirs_t *req,
                               int64_t now);
/** stale-if-error (RFC 5861): may @t be served now because the origin failed? */
bool cn_cache_stale_if_error_ok(const cn_cache_times_t *t, const cn_cache_req_dirs_t *req,
                                int64_t now);
/** RFC 9111 §4.2.3 current_age. */
int64_t cn_cache_current_age(const cn_cache_times_t *t, int64_t now);
/** Fills @t (lifetime, age inputs, stale windows) from a response's headers. */
void cn_cache_compute_times(const cn_headers_t *h, unsigned status, int64_t request_time,
                            int64_t response_time, const cn_conf_cache_t *conf,
                            cn_cache_times_t *t);
/** RFC 9111 §3 for a shared cache; *why gets a Cache-Status detail when false. */
bool cn_cache_storable(const cn_http_req_t *req, unsigned status, const cn_headers_t *h,
                       const cn_conf_cache_t *conf, const char **why);
/** The Vary field names, lowercase, sorted, deduplicated, comma-separated; NULL when no
 *  Vary. "*" when the response varies on everything (never stored). */
const char *cn_cache_vary_names(const cn_headers_t *h, cn_arena_t *arena);
/** RFC 9111 §4.3.4: the stored fields updated with those of a 304. */
void cn_cache_update_headers(const cn_headers_t *stored, const cn_headers_t *fresh,
                             cn_headers_t *out);
bool cn_cache_method_is_safe(cairn_iov_t method);
/** RFC 9111 §4.4: does a response with @status to unsafe @method invalidate? */
bool cn_cache_invalidates(cairn_iov_t method, unsigned status);
/** A Location/Content-Location value naming the same origin as @req: its path(+query). */
bool cn_cache_same_origin_path(const cn_http_req_t *req, cairn_iov_t value, cairn_iov_t *path);

#endif
