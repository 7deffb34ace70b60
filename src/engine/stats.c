/* SPDX-License-Identifier: MIT */
/* Metric events of the request flow (see stats.h). Config objects are found by their
 * position in the session's config generation; anything else (the route of a hook-chosen
 * upstream, no route at all) is counted under its name, or "-". */
#include "engine/stats.h"

#include <stdint.h>
#include <string.h>

#include "core/time.h"

/* The position of @elem in @base[0..n), compared as addresses so that a pointer to an object
 * outside the array (a built-in route) is never subtracted from it. */
static bool
index_in(const void *base, size_t n, size_t size, const void *elem, size_t *out)
{
    uintptr_t b = (uintptr_t)base, e = (uintptr_t)elem;
    if (elem == NULL || base == NULL || e < b || e >= b + n * size || (e - b) % size != 0)
        return false;
    *out = (e - b) / size;
    return true;
}

static uint32_t
route_slot(cn_session_t *s)
{
    const cn_config_t *cfg = s->cfg;
    size_t i;
    if (index_in(cfg->routes, cfg->n_routes, sizeof(*cfg->routes), s->route, &i))
        return cn_metrics_config_slot(s->w->metrics, s->cfg, CN_ML_ROUTE, i);
    const char *name = s->route != NULL && s->route->name != NULL ? s->route->name : "-";
    return cn_metrics_intern(s->w->metrics, CN_ML_ROUTE, name);
}

uint32_t
cn_stats_upstream_slot(cn_session_t *s, const cn_conf_upstream_t *up)
{
    const cn_config_t *cfg = s->cfg;
    size_t i;
    if (index_in(cfg->upstreams, cfg->n_upstreams, sizeof(*cfg->upstreams), up, &i))
        return cn_metrics_config_slot(s->w->metrics, s->cfg, CN_ML_UPSTREAM, i);
    return cn_metrics_intern(s->w->metrics, CN_ML_UPSTREAM, up && up->name ? up->name : "-");
}

bool
cn_stats_cache_slot(cn_session_t *s, uint32_t *slot)
{
    const cn_config_t *cfg = s->cfg;
    size_t i;
    if (s->route == NULL || s->route->cache == NULL)
        return false;
    if (index_in(cfg->caches, cfg->n_caches, sizeof(*cfg->caches), s->route->cache, &i))
        *slot = cn_metrics_config_slot(s->w->metrics, s->cfg, CN_ML_CACHE, i);
    else
        *slot = cn_metrics_intern(s->w->metrics, CN_ML_CACHE, s->route->cache->name);
    return true;
}

/* The Cache-Status word the cache flow left in s->cache_status. */
static cn_metrics_cache_status_t
cache_status(const char *st)
{
    /* In cn_metrics_cache_status_t order. */
    static const char *const words[] = {"HIT",         "STALE",     "MISS", "EXPIRED",
                                        "REVALIDATED", "COALESCED", "PASS", "ERROR"};
    _Static_assert(CN_ARRAY_LEN(words) == CN_METRICS_CS_BYPASS, "Cache-Status words");
    if (st == NULL)
        return CN_METRICS_CS_BYPASS;
    for (size_t i = 0; i < CN_ARRAY_LEN(words); i++)
        if (strcmp(st, words[i]) == 0)
            return (cn_metrics_cache_status_t)i;
    return CN_METRICS_CS_OTHER;
}

void
cn_stats_request_done(cn_session_t *s)
{
    cn_metrics_t *m = s->w->metrics;
    /* A background revalidation answers no client (its upstream response is counted). */
    if (m == NULL || s->background)
        return;
    /* The status the access log writes: 499 when the client left first. */
    unsigned status = cn_session_status(s);
    cn_metrics_request_done(m, route_slot(s), status, cn_time_now_ns() - s->start_ns,
                            s->bytes_sent);
    uint32_t cache;
    if (cn_stats_cache_slot(s, &cache))
        cn_metrics_cache_request(m, cache, cache_status(s->cache_status));
}

void
cn_stats_upstream_response(cn_session_t *s, const cn_conf_upstream_t *up, unsigned status)
{
    if (s->w->metrics != NULL)
        cn_metrics_upstream_response(s->w->metrics, cn_stats_upstream_slot(s, up), status);
}

void
cn_stats_upstream_error(cn_session_t *s, const cn_conf_upstream_t *up, cairn_err_t err)
{
    if (s->w->metrics != NULL)
        cn_metrics_upstream_error(s->w->metrics, cn_stats_upstream_slot(s, up),
                                  cn_metrics_err_kind(err));
}
