/* SPDX-License-Identifier: MIT */
/* The upstream side of the cache flow (see cached.c): the upstream request's headers, the
 * response head (invalidation, 304 refreshes, stale-if-error on a 5xx, the store decision and
 * hit-for-pass), copying the body into the object being stored, inserting it once complete,
 * stale answers for failed fetches, and a leader whose client left (detach). Also what a
 * stored object keeps for reuse and purges: validators, the key text and purge tags. */
#include "engine/cached_int.h"

#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/str.h"
#include "core/time.h"

/* ---- the stored object ----------------------------------------------------------------------- */

static bool
contains_icase(cairn_iov_t v, cairn_iov_t word)
{
    for (size_t i = 0; i + word.len <= v.len; i++)
        if (cn_mem_ieq(v.base + i, word.base, word.len))
            return true;
    return false;
}

static void
record_validators(cn_cache_obj_t *o)
{
    o->no_cache_hint = false;
    for (size_t i = 0; i < o->headers.n && !o->no_cache_hint; i++)
        o->no_cache_hint = contains_icase(o->headers.items[i].value, CAIRN_IOV_LIT("no-cache"));
    const cairn_iov_t *etag = cn_headers_get(&o->headers, CAIRN_IOV_LIT("etag"));
    o->etag = etag ? *etag : cn_iov(NULL, 0);
    const cairn_iov_t *lm = cn_headers_get(&o->headers, CAIRN_IOV_LIT("last-modified"));
    time_t t = 0;
    o->last_modified = lm && cn_time_parse_http_date(lm->base, lm->len, &t) ? t : 0;
}

/* Keeps what purges match on: the key text, and the tags of Surrogate-Key (space separated)
 * and Cache-Tag (comma separated), stored as " a b c ". */
static void
record_purge_info(struct cn_cached *cc, cn_cache_obj_t *o)
{
    o->key_text = cn_arena_strndup(&o->arena, cc->key_text, strlen(cc->key_text));
    size_t need = 2;
    static const char *const fields[] = {"surrogate-key", "cache-tag"};
    for (size_t f = 0; f < CN_ARRAY_LEN(fields); f++)
        for (ssize_t i = cn_headers_find(&o->headers, cn_iov_cstr(fields[f]), -1); i >= 0;
             i = cn_headers_find(&o->headers, cn_iov_cstr(fields[f]), i))
            need += o->headers.items[i].value.len + 2;
    if (need == 2)
        return;
    char *tags = cn_arena_xalloc(&o->arena, need + 1);
    size_t n = 0;
    tags[n++] = ' ';
    for (size_t f = 0; f < CN_ARRAY_LEN(fields); f++) {
        for (ssize_t i = cn_headers_find(&o->headers, cn_iov_cstr(fields[f]), -1); i >= 0;
             i = cn_headers_find(&o->headers, cn_iov_cstr(fields[f]), i)) {
            cairn_iov_t v = o->headers.items[i].value;
            for (size_t j = 0; j < v.len; j++) {
                char ch = v.base[j];
                bool sep = ch == ' ' || ch == '\t' || ch == ',';
                if (sep && tags[n - 1] == ' ')
                    continue;
                tags[n++] = sep ? ' ' : ch;
            }
            if (tags[n - 1] != ' ')
                tags[n++] = ' ';
        }
    }
    tags[n] = '\0';
    o->tags = tags;
}

/* The policy configuration of the route's cache. */
void
cn_cached_policy_conf(const cn_session_t *s, cn_policy_conf_t *pc)
{
    const cn_conf_cache_t *conf = s->route->cache;
    cn_policy_conf_init(pc);
    /* caches.<name>.targeted_field: null means none (not the policy's default name). */
    pc->target_field =
        conf->targeted_field != NULL ? cn_iov_cstr(conf->targeted_field) : cn_iov("", 0);
    pc->heuristic_fraction = conf->heuristic_percent / 100.0;
    pc->heuristic_max = (int64_t)(conf->heuristic_max_ms / 1000);
}

/* A 304 refreshes the stored object: new headers (RFC 9111 §4.3.4), the same body. NULL when
 * the updated response may no longer be stored (the 304 made it private or no-store). */
static cn_cache_obj_t *
refresh_object(cn_session_t *s, cn_cache_obj_t *old)
{
    struct cn_cached *cc = s->cc;
    cn_policy_conf_t pc;
    cn_cached_policy_conf(s, &pc);
    int64_t now = (int64_t)time(NULL);
    cn_cc_t update_cc, cc_new;
    cn_policy_response_cc(&pc, &s->resp.headers, &update_cc);
    cn_cache_obj_t *o = cn_cache_obj_new(&old->key);
    o->status = old->status;
    if (cn_policy_update_headers(&o->arena, &old->headers, &s->resp.headers, &update_cc, now,
                                 &o->headers) != CAIRN_OK) {
        cn_cache_obj_unref(o);
        return NULL;
    }
    cn_policy_response_cc(&pc, &o->headers, &cc_new);
    cn_http_req_t as_get = *s->req;
    as_get.method_id = CN_METHOD_GET;
    as_get.method = CAIRN_IOV_LIT("GET");
    if (cn_policy_storable(&as_get, &cc->req_cc, o->status, &o->headers, &cc_new) !=
        CN_POLICY_STORE) {
        cn_cache_obj_unref(o);
        return NULL;
    }
    cn_policy_meta_init(&o->meta, &pc, o->status, &o->headers, &cc_new, cc->request_time, now);
    o->vary_key = old->vary_key;
    o->shared_body = old;
    cn_cache_obj_ref(old);
    o->body = old->body;
    o->body_len = old->body_len;
    o->complete = true;
    record_validators(o);
    record_purge_info(cc, o); /* the 304 may bring new Surrogate-Key / Cache-Tag values */
    return o;
}

/* RFC 9111 §3 through the policy module, plus cairn's rule that a response with neither
 * explicit freshness nor a validator is not worth storing (it could never be reused). The
 * reason is a Cache-Status detail token. */
static bool
store_decision(const cn_http_req_t *req, const cn_cc_t *req_cc, unsigned status,
               const cn_headers_t *h, const cn_cc_t *resp_cc, const cn_policy_conf_t *pc,
               const char **why)
{
    cn_policy_store_t r = cn_policy_storable(req, req_cc, status, h, resp_cc);
    switch (r) {
    case CN_POLICY_STORE:
        break;
    case CN_POLICY_NS_NOT_CACHEABLE:
    case CN_POLICY_NS_PARTIAL:
    case CN_POLICY_NS_NOT_MODIFIED:
        *why = "status";
        return false;
    default:
        *why = cn_policy_store_reason(r);
        return false;
    }
    cn_policy_meta_t m;
    cn_policy_meta_init(&m, pc, status, h, resp_cc, 0, 0);
    bool explicit_fresh = (resp_cc->flags & (CN_CC_MAX_AGE | CN_CC_S_MAXAGE)) != 0 ||
                          (!resp_cc->targeted && cn_headers_get(h, CAIRN_IOV_LIT("expires")));
    if (!explicit_fresh && !(m.flags & CN_POLICY_VALIDATOR)) {
        *why = "no-freshness";
        return false;
    }
    return true;
}

/* Reasons that come from the response itself: every request for the key would get them. */
static bool
pass_worthy(const char *why)
{
    static const char *const r[] = {"no-store",     "private", "vary-star",
                                    "no-freshness", "status",  "must-understand"};
    for (size_t i = 0; why != NULL && i < CN_ARRAY_LEN(r); i++)
        if (strcmp(why, r[i]) == 0)
            return true;
    return false;
}

/* ---- upstream callbacks ---------------------------------------------------------------------- */

void
cn_cached_upstream_headers(cn_session_t *s, cn_headers_t *h)
{
    struct cn_cached *cc = s->cc;
    if (cc == NULL || !cc->miss)
        return;
    /* Fetch the full representation; the client's conditionals and Range are answered
     * from it (RFC 9111 §4.3.2 lets a cache use its own validators). */
    static const char *const drop[] = {"if-none-match",       "if-modified-since", "if-match",
                                       "if-unmodified-since", "if-range",          "range"};
    for (size_t i = 0; i < CN_ARRAY_LEN(drop); i++)
        cn_headers_remove(h, cn_iov_cstr(drop[i]));
    if (cc->revalidating)
        cn_policy_add_validators(h, &cc->stale->headers);
}

/* RFC 5861 §4: the origin answered @status (500, 502, 503 or 504) and the stored object may
 * answer instead. The error is neither stored over it nor relayed (its body is dropped with
 * the connection); the fill's waiters are told so that they may answer stale too. */
static cn_cached_head_result_t
stale_for_error_status(cn_session_t *s, unsigned status)
{
    struct cn_cached *cc = s->cc;
    CN_LOG_INFO(s->id, "origin answered %u: serving the stored object (stale-if-error)", status);
    cn_cached_finish_fill(cc, CN_FILL_ORIGIN_ERROR);
    cc->miss = false;
    if (s->background || cc->detached)
        return CN_CACHED_ABANDON; /* nobody to answer; the stored object stays */
    cc->cause = CAUSE_ERROR;
    cc->fwd_status = status;
    s->cache_status = "STALE";
    cn_cache_obj_ref(cc->stale);
    cc->taken = cc->stale; /* served by cn_cached_serve_taken, as a 304 would be */
    return CN_CACHED_TAKEN;
}

cn_cached_head_result_t
cn_cached_upstream_head(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    if (cc == NULL)
        return CN_CACHED_STREAM;
    unsigned status = s->resp.status;
    cc->origin_status = status;
    if (cc->invalidate) {
        if (cn_policy_invalidates(s->req->method, status)) {
            /* The effective request URI, query included, and same-origin Location and
             * Content-Location (RFC 9111 §4.4). */
            cn_cache_remove(cc->cache, &cc->key);
            cairn_iov_t targets[2];
            size_t nt = 0;
            if (cn_policy_invalidation_targets(s->arena, s->req, &s->resp.headers, targets, &nt) ==
                CAIRN_OK)
                for (size_t i = 0; i < nt; i++)
                    cn_cached_invalidate_uri(s, targets[i]);
        }
        return CN_CACHED_STREAM;
    }
    cc->got_head = true;
    if (cc->stale != NULL && cn_policy_status_is_error(status) &&
        cn_cached_may_serve_stale(s, cc->stale, CAUSE_ERROR))
        return stale_for_error_status(s, status);
    if (!cc->miss)
        return CN_CACHED_STREAM;
    if (cc->revalidating && status == 304) {
        cn_cache_obj_t *o = refresh_object(s, cc->stale);
        if (o == NULL) {
            /* The 304 made the response unstorable: drop it, the client still gets it. */
            cn_cache_remove(cc->cache, &cc->key);
            o = cc->stale;
            cn_cache_obj_ref(o);
        } else if (cn_cache_insert(cc->cache, o) != CAIRN_OK)
            CN_LOG_WARN(s->id, "cache %s: storing the refreshed object failed",
                        cn_cache_name(cc->cache));
        cn_cached_finish_fill(cc, CN_FILL_DONE); /* waiters look the refreshed object up */
        s->cache_status = "REVALIDATED";
        cc->taken = o; /* served by cn_cached_serve_taken once the upstream side is done */
        return CN_CACHED_TAKEN;
    }
    cc->outcome = cc->stale != NULL ? OUT_REFRESHED : OUT_MISS;
    if (cc->no_store) {
        cc->detail = "request-no-store";
        cn_cached_finish_fill(cc, CN_FILL_PASS);
        return cc->detached ? CN_CACHED_ABANDON : CN_CACHED_STREAM;
    }
    cn_policy_conf_t pc;
    cn_cached_policy_conf(s, &pc);
    cn_cc_t resp_cc;
    cn_policy_response_cc(&pc, &s->resp.headers, &resp_cc);
    const char *why = NULL;
    cn_http_req_t as_get = *s->req;
    if (cc->head_as_get) {
        as_get.method_id = CN_METHOD_GET;
        as_get.method = CAIRN_IOV_LIT("GET");
    }
    bool storable =
        store_decision(&as_get, &cc->req_cc, status, &s->resp.headers, &resp_cc, &pc, &why);
    if (s->cache_override != 0) {
        storable = s->cache_override > 0; /* upstream_response_filter decided */
        why = "hook";
    }
    if (!storable) {
        cc->detail = why;
        if (cc->stale != NULL && status < 500)
            cn_cache_remove(cc->cache, &cc->key);
        /* Hit-for-pass: later requests for the key go straight to the origin. */
        if (cc->leading && pass_worthy(why))
            cn_fill_mark_pass(s->w->fills, &cc->key, s->route->cache->hit_for_pass_ms);
        cn_cached_finish_fill(cc, cc->leading && status >= 500 ? CN_FILL_FAILED : CN_FILL_PASS);
        return cc->detached ? CN_CACHED_ABANDON : CN_CACHED_STREAM;
    }
    if (cn_cache_fault("insert")) {
        /* The tier refuses stores: say so now rather than claim "stored" in the head. */
        CN_LOG_WARN(s->id, "cache %s: store failed; the response is still served",
                    cn_cache_name(cc->cache));
        cc->detail = "tier-error";
        s->cache_status = "ERROR";
        cn_cached_finish_fill(cc, CN_FILL_PASS);
        return cc->detached ? CN_CACHED_ABANDON : CN_CACHED_STREAM;
    }
    if (s->resp.content_length > 0 &&
        (uint64_t)s->resp.content_length > cn_cache_max_object(cc->cache)) {
        cc->detail = "too-large";
        cn_cached_finish_fill(cc, CN_FILL_PASS);
        return cc->detached ? CN_CACHED_ABANDON : CN_CACHED_STREAM;
    }
    cn_cache_obj_t *o = cn_cache_obj_new(&cc->key);
    o->status = status;
    for (size_t i = 0; i < s->resp.headers.n; i++)
        cn_headers_add_copy(&o->headers, s->resp.headers.items[i].name,
                            s->resp.headers.items[i].value);
    /* private="field" fields are not stored (RFC 9111 §5.2.2.7). */
    cn_policy_response_cc(&pc, &o->headers, &resp_cc);
    cn_policy_strip_for_storage(&o->headers, &resp_cc);
    record_validators(o);
    int64_t now = (int64_t)time(NULL);
    cn_policy_response_cc(&pc, &o->headers, &resp_cc);
    cn_policy_meta_init(&o->meta, &pc, status, &o->headers, &resp_cc, cc->request_time, now);
    if (s->cache_ttl >= 0)
        o->meta.lifetime = s->cache_ttl + cn_policy_current_age(&o->meta, now);
    record_purge_info(cc, o);
    bool star = false;
    if (cn_policy_vary_key(&o->arena, &o->headers, &s->req->headers, &o->vary_key, &star) !=
        CAIRN_OK)
        o->vary_key = cn_iov("", 0);
    o->expected_len = s->resp.content_length;
    cc->fill = o;
    if (cc->leading && !cc->finished && cn_fill_gen(cc->fill_ref) != cc->gen)
        cc->leading = false; /* taken over: the object is stored, not shared */
    if (cc->leading && !cc->finished)
        cn_fill_publish_head(cc->fill_ref, cc->gen, o);
    return CN_CACHED_STREAM;
}

void
cn_cached_upstream_body(cn_session_t *s, cairn_iov_t data)
{
    struct cn_cached *cc = s->cc;
    if (cc == NULL || cc->fill == NULL)
        return;
    uint64_t max = cn_cache_max_object(cc->cache);
    if (cc->leading && !cc->finished && cn_fill_gen(cc->fill_ref) != cc->gen) {
        /* Our fill was taken over (age_timeout): we fetch on, for the cache only. */
        cc->leading = false;
    }
    bool ok = cc->leading && !cc->finished
                  ? cn_fill_append(cc->fill_ref, cc->gen, data.base, data.len, max)
                  : cn_cache_obj_append(cc->fill, data.base, data.len, max);
    if (!ok) {
        cc->detail = "too-large";
        cn_cache_obj_unref(cc->fill);
        cc->fill = NULL;
        cn_cached_finish_fill(cc, CN_FILL_FAILED);
    }
}

void
cn_cached_upstream_done(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    if (cc == NULL || cc->fill == NULL)
        return;
    cc->fill->complete = true;
    cairn_err_t err = cn_cache_insert(cc->cache, cc->fill);
    cc->stored = err == CAIRN_OK;
    if (err == CAIRN_EIO) {
        CN_LOG_WARN(s->id, "cache %s: store failed; the response was still served",
                    cn_cache_name(cc->cache));
        cc->detail = "tier-error";
    } else if (err != CAIRN_OK) {
        cc->detail = "too-large";
    }
    cn_cached_finish_fill(cc, CN_FILL_DONE);
    cn_cache_obj_unref(cc->fill);
    cc->fill = NULL;
    cn_cached_release_slot(cc); /* the origin's part is over */
}

bool
cn_cached_upstream_error(cn_session_t *s, unsigned status)
{
    struct cn_cached *cc = s->cc;
    (void)status;
    if (cc == NULL || cc->stale == NULL || s->resp_started)
        return false;
    stale_cause_t cause = !cc->got_head && cn_cached_origin_unreachable(s->last_err)
                              ? CAUSE_UNREACHABLE
                              : CAUSE_ERROR;
    if (!cn_cached_may_serve_stale(s, cc->stale, cause))
        return false;
    CN_LOG_INFO(s->id, "origin failed (%s): serving the stored object stale",
                cairn_err_name(s->last_err));
    if (cc->fill == NULL) /* nothing reached the waiters: they may answer stale too */
        cn_cached_finish_fill(cc, cause == CAUSE_UNREACHABLE ? CN_FILL_UNREACHABLE
                                                             : CN_FILL_ORIGIN_ERROR);
    if (s->background)
        return false; /* no client; the stored object stays */
    cn_cached_serve_stale(s, cause, 0);
    return true;
}

void
cn_cached_serve_taken(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    cn_cache_obj_t *o = cc->taken;
    cc->taken = NULL;
    cn_cached_serve_object(s, o, cc->cause != CAUSE_NONE ? OUT_STALE : OUT_REVALIDATED);
    cn_cache_obj_unref(o); /* the local reference; cn_cached_serve_object keeps its own */
}

void
cn_cached_abandoned(cn_session_t *s)
{
    cn_cached_fill_metric(s, CN_METRICS_FILL_ABANDONED);
}

bool
cn_cached_head_as_get(const cn_session_t *s)
{
    return s->cc != NULL && s->cc->head_as_get;
}

/* A detached leader still queued: when no waiter is left, nothing can use the fetch. */
static void
on_watch_waiters(uv_timer_t *t)
{
    cn_session_t *s = t->data;
    struct cn_cached *cc = s->cc;
    if (cc->slot_wait == NULL || cn_fill_waiters(cc->fill_ref) > 0)
        return;
    CN_LOG_DEBUG(s->id, "queued fill has no client left: leaving the origin queue");
    cn_cached_fill_metric(s, CN_METRICS_FILL_ABANDONED);
    s->src_ops = NULL;
    cn_cached_release_slot(cc); /* closes this timer too */
    cn_session_abort(s);
}

bool
cn_cached_detach(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    if (cc == NULL || !cc->leading || cc->finished || cc->detached || !cc->miss)
        return false;
    if (cc->slot_wait != NULL && cc->fill_ref != NULL) {
        /* Queued: stay queued only for the waiters of the fill (seed 003's flaw avoided),
         * and leave the queue as soon as the last of them leaves too. */
        if (cn_fill_waiters(cc->fill_ref) == 0)
            return false;
        cc->watch_timer = cn_xmalloc(sizeof(*cc->watch_timer));
        uv_timer_init(&s->w->loop, cc->watch_timer);
        cc->watch_timer->data = s;
        uv_timer_start(cc->watch_timer, on_watch_waiters, 50, 50);
    }
    /* The fill belongs to its waiters and to the cache, not to this client. */
    cc->detached = true;
    CN_LOG_DEBUG(s->id, "client left; the fetch continues for the fill");
    return true;
}
