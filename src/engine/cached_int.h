/* SPDX-License-Identifier: MIT */
/* What the parts of the cache flow share: the per-session state (struct cn_cached), the
 * outcome it reports in Cache-Status, and the helpers one part calls in another: cached.c
 * (key, lookup), cached_serve.c (serving, stale), cached_fill.c (fills, origin queue) and
 * cached_store.c (upstream callbacks, storing). Private to the cached*.c files. */
#ifndef CN_PROXY_CACHED_INT_H
#define CN_PROXY_CACHED_INT_H

#include "cache/policy.h"
#include "http/cache_control.h"
#include "metrics/metrics.h"
#include "engine/cached.h"
#include "cache/fill.h"
#include "upstream/limiter.h"

#define SERVE_IOV 64

typedef enum cache_outcome {
    OUT_NONE = 0,
    OUT_HIT,
    OUT_STALE,       /* served stale (max-stale, stale-while-revalidate, stale-if-error) */
    OUT_MISS,        /* forwarded: no object */
    OUT_VARY_MISS,   /* forwarded: objects for the URI, none for this variant */
    OUT_REVALIDATED, /* forwarded a conditional, got 304 */
    OUT_REFRESHED,   /* forwarded a conditional, got a new response */
    OUT_BYPASS,      /* the request may not be served from cache (method, no-cache) */
    OUT_ONLY_IF_CACHED,
    OUT_COALESCED, /* streamed from another request's fill */
    OUT_PASS,      /* hit-for-pass: known uncacheable, forwarded without waiting */
} cache_outcome_t;

/* Why a stale object answered in place of the origin (RFC 9111 §4.2.4, RFC 5861 §4). */
typedef enum stale_cause {
    CAUSE_NONE = 0,
    CAUSE_UNREACHABLE, /* connect failure, reset or close before a head, timeout */
    CAUSE_ERROR,       /* a 500/502/503/504 answer, or a failure after the head */
} stale_cause_t;

struct serve_item {
    cairn_iov_t mem;   /* when len > 0 */
    uint64_t off, len; /* else: object body bytes */
};

struct cn_cached {
    cn_cache_t *cache;
    cn_cache_key_t key;
    const char *key_text;  /* the key before hashing (arena) */
    cn_cc_t req_cc;        /* the request's cache directives */
    cn_cache_obj_t *stale; /* the stored object being revalidated (or served stale) */
    cn_cache_obj_t *hit;   /* the object being served */
    cn_cache_obj_t *fill;  /* the object being stored */
    bool miss;             /* fetching to store */
    bool revalidating;     /* the upstream request carries our validators */
    bool invalidate;       /* unsafe method: invalidate on success */
    bool no_store;         /* the request forbids storing */
    bool stored;
    bool head_as_get;   /* a HEAD miss fetched with GET so the object can be stored */
    const char *detail; /* why the response was not stored */
    /* What the origin answered; 0 when it never did (the response is cairn's own). */
    unsigned origin_status;
    cache_outcome_t outcome;
    int64_t ttl; /* remaining freshness of what was served (negative = stale) */
    int64_t request_time;
    /* serving */
    struct serve_item *items;
    size_t n_items, cur;
    uint64_t cur_off;
    cairn_iov_t iov[SERVE_IOV];
    /* coalescing */
    cn_fill_t *fill_ref;  /* the fill this request leads or waits on */
    cn_fill_waiter_t *wt; /* while waiting or streaming from the fill */
    uint64_t gen;         /* leader generation, when leading */
    bool leading;
    bool finished;     /* the fill was finished by us */
    bool streaming;    /* serving a waiter from the growing object */
    bool wt_sending;   /* a slice from the fill is with the client */
    uint64_t sent;     /* body bytes of the fill object already handed out */
    uv_timer_t *timer; /* wait_timeout / age_timeout while waiting */
    uint64_t wait_start_ns;
    /* Summed waits on fills (the access log's lock_wait_ms); wait_start_ns is 0 when not
     * waiting. fetched_full: a Range miss waiting on the full fetch it started. */
    uint64_t lock_wait_ns;
    bool fetched_full;
    unsigned restarts;
    /* origin backpressure */
    cn_limiter_t *limiter;
    cn_slot_wait_t *slot_wait; /* queued for a fetch slot */
    bool slot_held;
    uv_timer_t *queue_timer;
    uint64_t queue_start_ns;
    uv_timer_t *watch_timer; /* a detached queued leader watching for waiters to remain */
    cn_session_t *owner;     /* for metrics from callbacks that only have cc */
    bool detached;           /* the leader's client left; the fetch goes on for the fill */
    bool want_complete;      /* a Range waiter: serves from the complete object, not streaming */
    cn_cache_obj_t *taken;   /* the refreshed object a 304 revalidation answers with */
    /* stale on origin failure */
    bool got_head;       /* the origin's response head arrived */
    stale_cause_t cause; /* set when the stale object answers for a failed origin */
    unsigned fwd_status; /* the origin's 5xx behind that answer (0 = none, or a waiter's) */
    bool collapsed;      /* ... learnt from the fill this request waited on */
};

/* cached.c */
/** Removes the objects stored for @path (a URI reference of the response) from the cache. */
void cn_cached_invalidate_uri(cn_session_t *s, cairn_iov_t path);
/** Looks the key up and goes on: serves a hit or stale object, or fetches (alone, leading or
 *  waiting on a fill). Called again by a waiter whose fill did not give it an object. */
void cn_cached_lookup_and_go(cn_session_t *s);

/* cached_serve.c */
/** Answers from the stored object @o (a reference is kept until cn_cached_end), honouring
 *  HEAD, conditionals and Range. May complete and end the session. */
void cn_cached_serve_object(cn_session_t *s, cn_cache_obj_t *o, cache_outcome_t outcome);
/** True for failures that leave the cache disconnected from the origin. */
bool cn_cached_origin_unreachable(cairn_err_t err);
/** May the stored object @o answer this request in place of an origin failure? */
bool cn_cached_may_serve_stale(const cn_session_t *s, const cn_cache_obj_t *o, stale_cause_t cause);
/** Answers with the stale object (cc->stale) in place of a failed origin. */
void cn_cached_serve_stale(cn_session_t *s, stale_cause_t cause, unsigned fwd_status);
/** A client-less session leading fill @f (its reference is taken) for @parent's key: a
 *  revalidation of @o, or (@o NULL) a full fetch. */
void cn_cached_fetch_in_background(cn_session_t *parent, cn_cache_obj_t *o, cn_fill_t *f);
/** Starts the one background revalidation of @o for @parent's key. */
void cn_cached_revalidate_in_background(cn_session_t *parent, cn_cache_obj_t *o);

/* cached_fill.c */
/** Stops waiting on the fill and drops its reference. */
void cn_cached_drop_fill(struct cn_cached *cc);
/** The upstream this session fetches from (a hook's override, else the route's). */
const cn_conf_upstream_t *cn_cached_upstream_of(const cn_session_t *s);
/** Counts a fill event for the route's cache. */
void cn_cached_fill_metric(cn_session_t *s, cn_metrics_fill_event_t ev);
/** Leaves the origin queue, or gives back the origin slot held. */
void cn_cached_release_slot(struct cn_cached *cc);
/** Starts the origin fetch, through the upstream's limiter when @takes_slot and it has
 *  max_in_flight. */
void cn_cached_begin_fetch(cn_session_t *s, bool takes_slot);
/** Fetches without coalescing: a pass (@store false) or an own fetch that may store. */
void cn_cached_fetch_alone(cn_session_t *s, bool store, cache_outcome_t outcome);
/** Waits on fill @f (its reference is taken), led by another request. */
void cn_cached_wait_for_fill(cn_session_t *s, cn_fill_t *f);
/** The leader ends its fill (once): waiters are told, the fill leaves the table. */
void cn_cached_finish_fill(struct cn_cached *cc, cn_fill_state_t state);

/* cached_store.c */
/** The policy configuration of the route's cache. */
void cn_cached_policy_conf(const cn_session_t *s, cn_policy_conf_t *pc);

#endif
