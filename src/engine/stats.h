/* SPDX-License-Identifier: MIT */
/* The engine's metric events: one call at each point of the request flow, turning a session's
 * state (route, upstream, cache, status) into metrics/metrics.h slots on the worker's own set.
 * Private to src/engine/ (and the server that starts it). Worker thread only. */
#ifndef CN_PROXY_STATS_H
#define CN_PROXY_STATS_H

#include "metrics/metrics.h"
#include "engine/session.h"

/** The session ends (session_end, after the access log): requests_total{route,code} with the
 *  status the access log writes, the duration histogram, body bytes, and on caching routes
 *  what the cache answered. */
void cn_stats_request_done(cn_session_t *s);
/** An upstream response head with @status arrived from @up. */
void cn_stats_upstream_response(cn_session_t *s, const cn_conf_upstream_t *up, unsigned status);
/** An attempt on @up failed with @err (connect, timeout, protocol, closed, other). */
void cn_stats_upstream_error(cn_session_t *s, const cn_conf_upstream_t *up, cairn_err_t err);
/** The metrics slot of @up (an upstream of s->cfg, or one named by a hook). */
uint32_t cn_stats_upstream_slot(cn_session_t *s, const cn_conf_upstream_t *up);
/** The metrics slot of the cache of s->route; false when the route has none. */
bool cn_stats_cache_slot(cn_session_t *s, uint32_t *slot);

#endif
