/* SPDX-License-Identifier: MIT */
/* The cache flow of a session (routes with `cache:`): lookup, serve hits from stored
 * objects by reference, revalidate stale ones, and store what the upstream sends while it
 * streams to the client. Private to src/engine/ (and the server that starts it). */
#ifndef CN_PROXY_CACHED_H
#define CN_PROXY_CACHED_H

#include "cache/cache.h"
#include "engine/session.h"

typedef enum cn_cached_head_result {
    CN_CACHED_STREAM,  /* stream the upstream response to the client (maybe storing it) */
    CN_CACHED_TAKEN,   /* the cache flow answered the client (e.g. a 304 revalidation) */
    CN_CACHED_ABANDON, /* nobody wants this response any more (detached leader, pass) */
} cn_cached_head_result_t;

/** Entry for GET/HEAD and unsafe methods on a caching route. */
void cn_cached_start(cn_session_t *s);
/** A request on a route without a cache is a pass: with the upstream's pass_takes_slot (and
 *  max_in_flight) it takes an origin slot first, queueing like a cache fill (503 after
 *  queue_timeout), then comes back to cn_action_proxy. False when no slot is needed (the
 *  caller proxies at once). */
bool cn_cached_pass(cn_session_t *s);
/** Upstream request: conditionals for a revalidation, none (full fetch) for a miss. */
void cn_cached_upstream_headers(cn_session_t *s, cn_headers_t *h);
/** The upstream response head arrived (s->resp is filled). */
cn_cached_head_result_t cn_cached_upstream_head(cn_session_t *s);
/** A body slice passed to the client; copied into the object being stored. */
void cn_cached_upstream_body(cn_session_t *s, cairn_iov_t data);
/** The whole upstream body arrived: store the object. */
void cn_cached_upstream_done(cn_session_t *s);
/** The upstream failed before any response was sent: may answer with a stale object
 *  (stale-if-error). Returns true when it did. */
bool cn_cached_upstream_error(cn_session_t *s, unsigned status);
/** True when a HEAD miss is fetched with GET (to store the full object). */
bool cn_cached_head_as_get(const cn_session_t *s);
/** The client of a fill leader left: true when the session must go on without it (the
 *  fetch still serves the fill's waiters and the cache). */
bool cn_cached_detach(cn_session_t *s);
/** After CN_CACHED_TAKEN (and the upstream connection released): answers the client from
 *  the refreshed object. Last call on the session: it may complete and end it. */
void cn_cached_serve_taken(cn_session_t *s);
/** Time this request waited on fills (another request's, or the full fetch of a Range miss)
 *  until it was answered, led the fetch or gave up; what cairn_cache_lock_wait_seconds
 *  observed for it. 0 off caching routes. */
uint64_t cn_cached_lock_wait_ns(const cn_session_t *s);
/** Counts a detached fetch that was stopped because nothing could use it. */
void cn_cached_abandoned(cn_session_t *s);
/** The key text a cache with @conf keeps for @url ("http://Host:80/p?q"): what admin
 *  purges by URL or prefix compare with. In @a. */
char *cn_cached_url_key_text(cn_arena_t *a, const cn_conf_cache_t *conf, const char *url);
/** Session end: drops every object reference (a partial object is never stored). */
void cn_cached_end(cn_session_t *s);
/** Adds the Cache-Status field for this response (RFC 9211). */
void cn_cached_status_header(cn_session_t *s);

#endif
