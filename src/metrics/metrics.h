/* SPDX-License-Identifier: MIT */
/* Metrics: per-thread storage for the families of metrics.def, and the Prometheus text
 * exposition. Each worker owns one cn_metrics_t and updates it with plain stores (no locks, no
 * atomic read-modify-write): it is the only writer. The admin (main thread) builds a scrape by
 * merging every worker's set into a fresh one (cn_metrics_merge), setting the values it reads
 * elsewhere (cache tiers, connections, process), and rendering it (cn_metrics_render).
 *
 * Labels whose values are config names (route, upstream, cache) are interned per set into
 * stable slots, so a reload that reorders or renames routes never moves a count from one
 * series to another. cn_metrics_config_slot() maps a config position to its slot. */
#ifndef CN_METRICS_METRICS_H
#define CN_METRICS_METRICS_H

#include "config/config.h"
#include "core/buf.h"
#include "core/types.h"

typedef struct cn_metrics cn_metrics_t;

typedef enum cn_metric_id {
#define X(id, name, type, help, ...) CN_M_##id,
#include "metrics/metrics.def"
#undef X
    CN_M__COUNT
} cn_metric_id_t;

/* Label dimensions. The first CN_ML__NAMED take config names; the others a fixed value
 * table (metrics.c), indexed by the enums below. */
typedef enum cn_metrics_label {
    CN_ML_ROUTE = 0,     /* route */
    CN_ML_UPSTREAM,      /* upstream */
    CN_ML_CACHE,         /* cache */
    CN_ML_LISTENER,      /* listener (its name, or its address) */
    CN_ML_CODE,          /* code: a fixed table of status codes, then "1xx".."5xx", "other" */
    CN_ML_TIER,          /* tier: cn_metrics_tier_t */
    CN_ML_LOOKUP,        /* result: hit, miss */
    CN_ML_CACHE_STATUS,  /* status: cn_metrics_cache_status_t */
    CN_ML_ERROR_KIND,    /* kind: cn_metrics_err_kind_t */
    CN_ML_QUEUE_OUTCOME, /* outcome: cn_metrics_queue_outcome_t */
    CN_ML_FILL_EVENT,    /* event: cn_metrics_fill_event_t */
    CN_ML_CONN_STATE,    /* state: active, idle */
    CN_ML_RELOAD_RESULT, /* result: ok, error */
    CN_ML_VERSION,       /* version: CAIRN_VERSION_STRING */
    CN_ML_HANDSHAKE,     /* result: ok, failed */
    CN_ML__COUNT
} cn_metrics_label_t;
#define CN_ML__NAMED 4

/** Config names per label in one set; past this, names share the slot "_other". */
#define CN_METRICS_MAX_NAMES 256

typedef enum cn_metrics_tier {
    CN_METRICS_TIER_MEMORY = 0,
} cn_metrics_tier_t;

typedef enum cn_metrics_lookup {
    CN_METRICS_LOOKUP_HIT = 0,
    CN_METRICS_LOOKUP_MISS,
} cn_metrics_lookup_t;

typedef enum cn_metrics_cache_status {
    CN_METRICS_CS_HIT = 0,
    CN_METRICS_CS_STALE,
    CN_METRICS_CS_MISS,
    CN_METRICS_CS_EXPIRED,
    CN_METRICS_CS_REVALIDATED,
    CN_METRICS_CS_COALESCED, /* served from another request's fill of the same key */
    CN_METRICS_CS_PASS,      /* hit-for-pass: known uncacheable, fetched alone */
    CN_METRICS_CS_ERROR,     /* the tier failed; proxied uncached */
    CN_METRICS_CS_BYPASS,    /* not looked up (method, no-store, no cache) */
    CN_METRICS_CS_OTHER,
} cn_metrics_cache_status_t;

typedef enum cn_metrics_err_kind {
    CN_METRICS_ERR_CONNECT = 0, /* refused, unreachable */
    CN_METRICS_ERR_TIMEOUT,     /* connect or read timeout */
    CN_METRICS_ERR_PROTOCOL,    /* malformed response */
    CN_METRICS_ERR_CLOSED,      /* closed or reset before the response was complete */
    CN_METRICS_ERR_OTHER,
} cn_metrics_err_kind_t;

typedef enum cn_metrics_fill_event {
    CN_METRICS_FILL_BACKGROUND = 0, /* a stale-while-revalidate refresh started */
    CN_METRICS_FILL_TAKEOVER,       /* age_timeout: a waiter took a stalled fill over */
    CN_METRICS_FILL_ELECTED,        /* the leader failed before its head: a waiter leads */
    CN_METRICS_FILL_ABANDONED,      /* a detached fetch nobody could use was stopped */
} cn_metrics_fill_event_t;

typedef enum cn_metrics_queue_outcome {
    CN_METRICS_QUEUE_ADMITTED = 0, /* got a slot */
    CN_METRICS_QUEUE_TIMEOUT,      /* queue_timeout: answered 503 */
    CN_METRICS_QUEUE_GONE,         /* the client left while queued */
} cn_metrics_queue_outcome_t;

typedef enum cn_metrics_conn_state {
    CN_METRICS_CONN_ACTIVE = 0,
    CN_METRICS_CONN_IDLE,
} cn_metrics_conn_state_t;

typedef enum cn_metrics_reload_result {
    CN_METRICS_RELOAD_OK = 0,
    CN_METRICS_RELOAD_ERROR,
} cn_metrics_reload_result_t;

/* ---- sets ------------------------------------------------------------------------------- */

/** A zeroed set. Aborts on allocation failure. */
cn_metrics_t *cn_metrics_new(void);
/** Frees the set and drops its config references. NULL is a no-op. No other thread may be
 *  reading it. */
void cn_metrics_free(cn_metrics_t *m);

/** The slot of config name @name for a named label (CN_ML_ROUTE/UPSTREAM/CACHE), added when
 *  new. Owner thread only. @name is copied. */
uint32_t cn_metrics_intern(cn_metrics_t *m, cn_metrics_label_t label, const char *name);
/** The slot of the @index'th route / upstream / cache of @cfg. The mapping is cached for the
 *  last two generations seen (holding a reference to each). Owner thread only. */
uint32_t cn_metrics_config_slot(cn_metrics_t *m, cn_config_t *cfg, cn_metrics_label_t label,
                                size_t index);

/* ---- events (owner thread) -------------------------------------------------------------- */

/** A request ended: requests_total, request_duration_seconds, response_body_bytes_total. */
void cn_metrics_request_done(cn_metrics_t *m, uint32_t route_slot, unsigned status,
                             uint64_t duration_ns, uint64_t body_bytes);
/** What the cache answered on a caching route. */
void cn_metrics_cache_request(cn_metrics_t *m, uint32_t cache_slot, cn_metrics_cache_status_t st);
/** One fill event of the cache in @cache_slot. */
void cn_metrics_fill_event(cn_metrics_t *m, uint32_t cache_slot, cn_metrics_fill_event_t ev);
/** An upstream response head arrived with @status. */
void cn_metrics_upstream_response(cn_metrics_t *m, uint32_t upstream_slot, unsigned status);
/** An upstream attempt failed. */
void cn_metrics_upstream_error(cn_metrics_t *m, uint32_t upstream_slot, cn_metrics_err_kind_t kind);
/** The kind of an upstream failure. */
cn_metrics_err_kind_t cn_metrics_err_kind(cairn_err_t err);
/** A TLS handshake on the listener in @listener_slot ended (resumed: a session was reused). */
void cn_metrics_tls_handshake(cn_metrics_t *m, uint32_t listener_slot, bool ok, bool resumed);
/** A request started (+1) or stopped (-1) waiting on another request's fill. */
void cn_metrics_cache_lock_waiters(cn_metrics_t *m, int delta);
/** A wait on a fill ended after @wait_ns. */
void cn_metrics_cache_lock_wait(cn_metrics_t *m, uint64_t wait_ns);
/** A wait in the origin queue ended after @wait_ns with @outcome. */
void cn_metrics_origin_queue_wait(cn_metrics_t *m, uint32_t upstream_slot,
                                  cn_metrics_queue_outcome_t outcome, uint64_t wait_ns);

/* ---- scrape (the thread that owns the destination set) ----------------------------------- */

/** Adds the named slot @name to @m with every family that uses @label, so the series are
 *  exposed (at zero) before the first event. */
void cn_metrics_declare(cn_metrics_t *m, cn_metrics_label_t label, const char *name);
/** Adds every value of @src (owned by another thread, which may keep updating it) to @dst,
 *  matching config names by name. */
void cn_metrics_merge(cn_metrics_t *dst, const cn_metrics_t *src);
/** Number of fixed-label combinations of a family (1 when it has none). */
size_t cn_metrics_combos(cn_metric_id_t id);
/** Overwrites one value of a counter or gauge. @slot is ignored by families without a named
 *  label; @combo indexes the fixed labels (the first one most significant). Gauges are signed:
 *  pass (uint64_t)value. */
void cn_metrics_set(cn_metrics_t *m, cn_metric_id_t id, uint32_t slot, size_t combo, uint64_t v);
/** One value of a counter or gauge, or of a histogram's count; 0 when never set. */
uint64_t cn_metrics_get(const cn_metrics_t *m, cn_metric_id_t id, uint32_t slot, size_t combo);
/** The @index'th value of a fixed label (a static string), or NULL past the end. */
const char *cn_metrics_label_value(cn_metrics_label_t label, size_t index);
/** Finds the slot of @name; false when @m has none. */
bool cn_metrics_find(const cn_metrics_t *m, cn_metrics_label_t label, const char *name,
                     uint32_t *slot);
/** Appends the Prometheus text exposition (format 0.0.4) of @m to @out. */
void cn_metrics_render(const cn_metrics_t *m, cn_buf_t *out);

#endif
