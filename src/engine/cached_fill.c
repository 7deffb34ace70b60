/* SPDX-License-Identifier: MIT */
/* Fills of the cache flow (see cached.c and cache/fill.h): leading a fill or joining one as
 * a waiter, streaming a waiter from the growing object, the waiter's events (the leader's
 * head, progress, failure, stale answer), wait_timeout and take-over on age_timeout. Also
 * the origin queue: fetches go through the upstream's limiter (max_in_flight), wait up to
 * queue_timeout for a slot and give it back when the origin's part is over. */
#include "engine/cached_int.h"

#include <stdio.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/str.h"
#include "core/time.h"
#include "http/conditional.h"
#include "engine/stats.h"

#define MAX_RESTARTS 2

/* ---- waiting on a fill; the origin queue ----------------------------------------------------- */

static void fill_pull(cn_session_t *s);

static void
timer_closed(uv_handle_t *h)
{
    cn_free(h);
}

/* Closes a timer handle we own (the memory goes in its close callback); NULL is a no-op. */
static void
close_timer(uv_timer_t **t)
{
    if (*t != NULL) {
        uv_close((uv_handle_t *)*t, timer_closed);
        *t = NULL;
    }
}

/* The wait on a fill is over: answered from it (its head is there), leading, or given up.
 * cairn_cache_lock_wait_seconds and the access log's lock_wait_ms get the same time;
 * streaming the body from the fill afterwards is not waiting. */
static void
end_wait(struct cn_cached *cc)
{
    if (cc->wait_start_ns == 0)
        return;
    uint64_t waited = cn_time_now_ns() - cc->wait_start_ns;
    cc->wait_start_ns = 0;
    cc->lock_wait_ns += waited;
    cn_metrics_cache_lock_waiters(cc->owner->w->metrics, -1);
    cn_metrics_cache_lock_wait(cc->owner->w->metrics, waited);
}

/* Stops waiting (the fill reference is kept for a leader, dropped otherwise). */
static void
leave_fill(struct cn_cached *cc)
{
    close_timer(&cc->timer);
    end_wait(cc);
    if (cc->wt != NULL) {
        cn_fill_leave(cc->fill_ref, cc->wt);
        cc->wt = NULL;
    }
}

void
cn_cached_drop_fill(struct cn_cached *cc)
{
    leave_fill(cc);
    cn_fill_unref(cc->fill_ref);
    cc->fill_ref = NULL;
}

const cn_conf_upstream_t *
cn_cached_upstream_of(const cn_session_t *s)
{
    return s->upstream_override != NULL ? s->upstream_override : s->route->upstream;
}

void
cn_cached_fill_metric(cn_session_t *s, cn_metrics_fill_event_t ev)
{
    uint32_t slot;
    if (cn_stats_cache_slot(s, &slot))
        cn_metrics_fill_event(s->w->metrics, slot, ev);
}

static void
queue_metric(cn_session_t *s, cn_metrics_queue_outcome_t outcome)
{
    struct cn_cached *cc = s->cc;
    cn_metrics_origin_queue_wait(s->w->metrics, cn_stats_upstream_slot(s, cn_cached_upstream_of(s)),
                                 outcome, cn_time_now_ns() - cc->queue_start_ns);
}

void
cn_cached_release_slot(struct cn_cached *cc)
{
    close_timer(&cc->queue_timer);
    close_timer(&cc->watch_timer);
    if (cc->slot_wait != NULL) {
        cn_limiter_cancel(cc->limiter, cc->slot_wait, false);
        cc->slot_wait = NULL;
        queue_metric(cc->owner, CN_METRICS_QUEUE_GONE);
    }
    if (cc->slot_held) {
        cc->slot_held = false;
        cn_limiter_release(cc->limiter);
    }
}

static void
queue_cancel(cn_session_t *s, void *src)
{
    struct cn_cached *cc = src;
    (void)s;
    cn_cached_release_slot(cc); /* the client left: out of the queue at once */
}

static void
queue_pull(cn_session_t *s, void *src)
{
    (void)s;
    (void)src;
}

static const cn_body_src_ops_t queue_ops = {
    .pull = queue_pull,
    .cancel = queue_cancel,
};

/* A fetch that waited in the origin queue looks in the cache once more: another fetch of
 * the key (a fill that was taken over) may have stored it meanwhile. */
static bool
cached_meanwhile(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    if (!cc->leading || cc->revalidating || s->background)
        return false;
    cn_cache_obj_t *o = NULL;
    if (cn_cache_lookup(cc->cache, &cc->key, &s->req->headers, &o) != CAIRN_OK || o == NULL)
        return false;
    if (cn_policy_freshness_check(&o->meta, &cc->req_cc, (int64_t)time(NULL)) != CN_POLICY_FRESH) {
        cn_cache_obj_unref(o);
        return false;
    }
    cn_cached_release_slot(cc);
    cn_cached_finish_fill(cc, CN_FILL_DONE); /* waiters look it up too */
    s->cache_status = "HIT";
    cn_cached_serve_object(s, o, OUT_HIT);
    cn_cache_obj_unref(o);
    return true;
}

static void
on_slot_granted(void *arg)
{
    cn_session_t *s = arg;
    struct cn_cached *cc = s->cc;
    cc->slot_wait = NULL;
    cc->slot_held = true;
    queue_metric(s, CN_METRICS_QUEUE_ADMITTED);
    close_timer(&cc->queue_timer);
    close_timer(&cc->watch_timer);
    if (cc->leading && cc->fill_ref != NULL)
        cn_fill_set_queued(cc->fill_ref, cc->gen, false);
    /* RFC 9111 §4.2.3: request_time is when the request goes out, not when it queued. */
    cc->request_time = (int64_t)time(NULL);
    s->src_ops = NULL;
    if (cached_meanwhile(s))
        return;
    cn_action_proxy(s);
}

static void
on_queue_timeout(uv_timer_t *t)
{
    cn_session_t *s = t->data;
    struct cn_cached *cc = s->cc;
    const cn_conf_upstream_t *up = cn_cached_upstream_of(s);
    cn_limiter_cancel(cc->limiter, cc->slot_wait, true);
    cc->slot_wait = NULL;
    queue_metric(s, CN_METRICS_QUEUE_TIMEOUT);
    close_timer(&cc->watch_timer);
    /* The fill never reached the origin: its waiters get the same answer, now (they waited
     * as long), rather than queueing again one after the other. */
    cn_cached_finish_fill(cc, CN_FILL_BUSY);
    close_timer(&cc->queue_timer);
    s->src_ops = NULL;
    s->retry_after = up->retry_after;
    s->upstream_name = up->name;
    cc->detail = "queue-timeout";
    char *why = cn_arena_xalloc(s->arena, 96);
    snprintf(why, 96, "origin queue timeout (max_in_flight %u)", up->max_in_flight);
    cn_session_error(s, 503, why);
}

/* Starts the origin fetch, through the upstream's limiter when it has max_in_flight. */
void
cn_cached_begin_fetch(cn_session_t *s, bool takes_slot)
{
    struct cn_cached *cc = s->cc;
    const cn_conf_upstream_t *up = cn_cached_upstream_of(s);
    if (!takes_slot || up == NULL || up->max_in_flight == 0) {
        cn_action_proxy(s);
        return;
    }
    cc->limiter = cn_limiter_of(s->w->limiters, up->name);
    if (cn_limiter_acquire(cc->limiter, up->max_in_flight, &s->w->exec, on_slot_granted, s,
                           &cc->slot_wait)) {
        cc->slot_held = true;
        cc->request_time = (int64_t)time(NULL);
        cn_action_proxy(s);
        return;
    }
    if (cc->leading && cc->fill_ref != NULL)
        cn_fill_set_queued(cc->fill_ref, cc->gen, true);
    cc->queue_start_ns = cn_time_now_ns();
    cc->queue_timer = cn_xmalloc(sizeof(*cc->queue_timer));
    uv_timer_init(&s->w->loop, cc->queue_timer);
    cc->queue_timer->data = s;
    uv_timer_start(cc->queue_timer, on_queue_timeout, up->queue_timeout_ms, 0);
    s->src_ops = &queue_ops;
    s->src = cc;
}

/* Fetches without coalescing: a pass (@store false) or an own fetch that may store. */
static void
fetch_alone_x(cn_session_t *s, bool store, cache_outcome_t outcome, bool slot)
{
    struct cn_cached *cc = s->cc;
    cn_cached_drop_fill(cc);
    s->src_ops = NULL;
    cc->miss = store;
    cc->outcome = outcome;
    const cn_conf_upstream_t *up = cn_cached_upstream_of(s);
    cn_cached_begin_fetch(s, slot || (!store && up != NULL && up->pass_takes_slot));
}

void
cn_cached_fetch_alone(cn_session_t *s, bool store, cache_outcome_t outcome)
{
    fetch_alone_x(s, store, outcome, false);
}

static void
lead(cn_session_t *s, uint64_t gen)
{
    struct cn_cached *cc = s->cc;
    leave_fill(cc);
    s->src_ops = NULL;
    cc->leading = true;
    cc->gen = gen;
    cc->miss = true;
    cn_cached_begin_fetch(s, true);
}

/* ---- streaming from another request's fill --------------------------------------------------- */

static void
fill_serve_pull(cn_session_t *s, void *src)
{
    struct cn_cached *cc = src;
    cc->wt_sending = false;
    fill_pull(s);
}

static void
fill_cancel(cn_session_t *s, void *src)
{
    struct cn_cached *cc = src;
    (void)s;
    /* The client left: this waiter is dropped from the fill at once (seed 000). */
    cn_cached_drop_fill(cc);
}

static const cn_body_src_ops_t fill_ops = {
    .pull = fill_serve_pull,
    .cancel = fill_cancel,
};

/* Collects the next slices of the growing object (under the fill lock: the tail segment may
 * be growing; bytes below avail never change). */
static size_t
fill_slices(struct cn_cached *cc, cn_fill_state_t *state)
{
    cn_fill_t *f = cc->fill_ref;
    size_t n = 0;
    pthread_mutex_lock(&f->lock);
    *state = f->state;
    uint64_t avail = f->avail, pos = cc->sent, base = 0;
    const cn_cache_seg_t *seg = cc->hit->body;
    while (seg != NULL && base + seg->len <= pos) {
        base += seg->len;
        seg = seg->next;
    }
    while (seg != NULL && n < SERVE_IOV && pos < avail) {
        size_t in = (size_t)(pos - base);
        size_t take = (size_t)CN_MIN((uint64_t)seg->len - in, avail - pos);
        if (take > 0)
            cc->iov[n++] = cn_iov(seg->data + in, take);
        pos += take;
        base += seg->len;
        seg = seg->next;
    }
    cc->sent = pos;
    if (*state == CN_FILL_DONE && pos < avail)
        *state = CN_FILL_STREAMING; /* more to send before the end */
    pthread_mutex_unlock(&f->lock);
    return n;
}

static void
fill_pull(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    if (cc->wt_sending || s->ds == NULL)
        return;
    cn_fill_state_t state;
    size_t n = fill_slices(cc, &state);
    if (state != CN_FILL_STREAMING && state != CN_FILL_DONE) {
        /* The fill broke after its head: a truncated body must never look complete. */
        s->error = "coalesced fill failed mid-body";
        cn_session_abort(s);
        return;
    }
    bool eos = state == CN_FILL_DONE;
    if (n == 0 && !eos)
        return; /* wait for the next progress notification */
    if (eos)
        leave_fill(cc);
    cc->wt_sending = true;
    cn_session_send(s, cc->iov, n, eos);
}

static void
start_streaming(cn_session_t *s, cn_cache_obj_t *o)
{
    struct cn_cached *cc = s->cc;
    close_timer(&cc->timer);
    end_wait(cc);
    cc->streaming = true;
    cc->outcome = OUT_COALESCED;
    s->cache_status = "COALESCED";
    cn_cache_obj_ref(o);
    cc->hit = o;
    cc->ttl = o->meta.lifetime;
    cn_headers_init(&s->resp.headers, s->arena);
    for (size_t i = 0; i < o->headers.n; i++)
        cn_headers_add(&s->resp.headers, o->headers.items[i].name, o->headers.items[i].value);
    s->resp.status = o->status;
    s->resp.content_length = o->expected_len;
    cn_validators_t v = {.etag = o->etag,
                         .last_modified = o->last_modified,
                         .date = (time_t)o->meta.date_value,
                         .exists = true};
    cn_cond_result_t cond = cn_cond_evaluate(s->req->method, &s->req->headers, &v);
    if ((cond == CN_COND_NOT_MODIFIED && o->status == 200) || s->req->method_id == CN_METHOD_HEAD) {
        if (cond == CN_COND_NOT_MODIFIED && o->status == 200) {
            s->resp.status = 304;
            s->resp.content_length = -1;
        }
        leave_fill(cc);
        cn_session_send(s, NULL, 0, true);
        return;
    }
    s->src_ops = &fill_ops;
    s->src = cc;
    fill_pull(s);
}

/* ---- a waiter's events ----------------------------------------------------------------------- */

/* A waiter whose leader answered stale: the same answer when this request allows it, else
 * a fetch of its own. */
static void
stale_after_fill(cn_session_t *s, cn_fill_state_t state)
{
    struct cn_cached *cc = s->cc;
    stale_cause_t cause = state == CN_FILL_UNREACHABLE ? CAUSE_UNREACHABLE : CAUSE_ERROR;
    cn_cached_drop_fill(cc);
    cc->want_complete = false;
    if (!cn_cached_may_serve_stale(s, cc->stale, cause)) {
        cn_cached_fetch_alone(s, true, OUT_MISS);
        return;
    }
    cc->collapsed = true;
    cn_cached_serve_stale(s, cause, 0);
}

/* range: fetch_full: the complete object of the fill answers the Range request. It was not in
 * the cache when the request came: a miss (expired when a stale object was there) for the
 * request that started the fetch, coalesced for one that joined it; not a second lookup, and
 * not a hit. Without a usable object (a 304 refreshed the stored one) the cache is asked. */
static void
serve_full_fetch(cn_session_t *s, cn_cache_obj_t *o)
{
    struct cn_cached *cc = s->cc;
    if (o == NULL || !o->complete || !cn_cache_obj_matches(o, &s->req->headers)) {
        cn_cached_lookup_and_go(s);
        return;
    }
    cc->origin_status = o->status;
    if (!cc->fetched_full) {
        s->cache_status = "COALESCED";
        cn_cached_serve_object(s, o, OUT_COALESCED);
        return;
    }
    s->cache_status = cc->stale != NULL ? "EXPIRED" : "MISS";
    cn_cached_serve_object(s, o, cc->stale != NULL ? OUT_REFRESHED : OUT_MISS);
}

static void
on_fill_event(void *session, cn_fill_t *f, cn_fill_event_t ev)
{
    cn_session_t *s = session;
    struct cn_cached *cc = s->cc;
    if (ev == CN_FILL_EV_LEAD) {
        CN_LOG_DEBUG(s->id, "the fill's leader failed before its head: leading the fetch");
        cn_cached_fill_metric(s, CN_METRICS_FILL_ELECTED);
        lead(s, cn_fill_gen(f));
        return;
    }
    if (cc->streaming) {
        fill_pull(s);
        return;
    }
    pthread_mutex_lock(&f->lock);
    cn_fill_state_t state = f->state;
    cn_cache_obj_t *o = f->obj;
    if (o != NULL)
        cn_cache_obj_ref(o);
    pthread_mutex_unlock(&f->lock);
    if (state == CN_FILL_UNREACHABLE || state == CN_FILL_ORIGIN_ERROR) {
        cn_cache_obj_unref(o);
        stale_after_fill(s, state);
        return;
    }
    if (cc->want_complete && state == CN_FILL_STREAMING) {
        cn_cache_obj_unref(o); /* a Range waiter answers from the complete object */
        return;
    }
    if (cc->want_complete && state == CN_FILL_DONE) {
        cn_cached_drop_fill(cc);
        cc->want_complete = false;
        serve_full_fetch(s, o);
        cn_cache_obj_unref(o);
        return;
    }
    if (cc->want_complete && state != CN_FILL_PENDING) {
        /* Not stored (pass, failure): forward the Range request as it is. */
        cn_cache_obj_unref(o);
        cc->want_complete = false;
        cn_cached_fetch_alone(s, false, state == CN_FILL_PASS ? OUT_PASS : OUT_MISS);
        return;
    }
    switch (state) {
    case CN_FILL_PENDING:
        break;
    case CN_FILL_STREAMING:
    case CN_FILL_DONE:
        if (o == NULL) {
            /* Finished without a body to share (e.g. a 304 refreshed the stored object). */
            cn_cached_drop_fill(cc);
            if (++cc->restarts > MAX_RESTARTS)
                cn_cached_fetch_alone(s, true, OUT_MISS);
            else
                cn_cached_lookup_and_go(s);
        } else if (!cn_cache_obj_matches(o, &s->req->headers)) {
            cn_cached_fetch_alone(s, true, OUT_VARY_MISS);
        } else {
            start_streaming(s, o);
        }
        break;
    case CN_FILL_PASS:
        cn_cached_fetch_alone(s, false, OUT_PASS);
        break;
    case CN_FILL_BUSY: {
        cn_cached_drop_fill(cc);
        s->src_ops = NULL;
        const cn_conf_upstream_t *up = cn_cached_upstream_of(s);
        s->retry_after = up != NULL ? up->retry_after : 1;
        s->upstream_name = up != NULL ? up->name : NULL;
        cc->detail = "queue-timeout";
        cn_session_error(s, 503, "the fill this request waited on timed out in the origin queue");
        break;
    }
    case CN_FILL_FAILED:
        cn_cached_fetch_alone(s, true, OUT_MISS);
        break;
    case CN_FILL_UNREACHABLE:
    case CN_FILL_ORIGIN_ERROR:
        break; /* answered above */
    }
    cn_cache_obj_unref(o);
}

static void
on_wait_timer(uv_timer_t *t)
{
    cn_session_t *s = t->data;
    struct cn_cached *cc = s->cc;
    const cn_conf_cache_t *conf = s->route->cache;
    uint64_t waited = cn_time_now_ns() - cc->wait_start_ns;
    if (waited >= conf->lock_wait_timeout_ms * 1000000ull) {
        CN_LOG_INFO(s->id, "cache lock wait_timeout (%llu ms): fetching without the fill",
                    (unsigned long long)conf->lock_wait_timeout_ms);
        /* Still an origin fetch of a cacheable key: it goes through the origin limiter. */
        fetch_alone_x(s, false, OUT_MISS, true);
        return;
    }
    uint64_t gen = cn_fill_take_over(cc->fill_ref, conf->lock_age_timeout_ms * 1000000ull);
    if (gen != 0) {
        CN_LOG_INFO(s->id, "fill made no progress for age_timeout (%llu ms): taking it over",
                    (unsigned long long)conf->lock_age_timeout_ms);
        cn_cached_fill_metric(s, CN_METRICS_FILL_TAKEOVER);
        lead(s, gen);
    }
}

void
cn_cached_wait_for_fill(cn_session_t *s, cn_fill_t *f)
{
    struct cn_cached *cc = s->cc;
    const cn_conf_cache_t *conf = s->route->cache;
    cc->fill_ref = f;
    cc->wt = cn_fill_wait(f, &s->w->exec, s, on_fill_event);
    cc->wait_start_ns = cn_time_now_ns();
    cn_metrics_cache_lock_waiters(s->w->metrics, +1);
    uint64_t period = CN_MIN(conf->lock_wait_timeout_ms, conf->lock_age_timeout_ms);
    uint64_t tick = CN_MAX(period / 10, (uint64_t)20);
    cc->timer = cn_xmalloc(sizeof(*cc->timer));
    uv_timer_init(&s->w->loop, cc->timer);
    cc->timer->data = s;
    uv_timer_start(cc->timer, on_wait_timer, CN_MIN(period, tick), tick);
    s->src_ops = &fill_ops; /* cancel: leave the fill at once when the client goes */
    s->src = cc;
    s->cache_status = cc->fetched_full ? s->cache_status : "COALESCED";
    /* The fill may already be streaming: look now, not only at the next notification. */
    on_fill_event(s, f, CN_FILL_EV_PROGRESS);
}

/* ---- the leader's end ------------------------------------------------------------------------ */

/* The leader ends its fill (once): waiters are told, the fill leaves the table. */
void
cn_cached_finish_fill(struct cn_cached *cc, cn_fill_state_t state)
{
    if (!cc->leading || cc->finished || cc->fill_ref == NULL)
        return;
    cc->finished = true;
    cn_fill_finish(cc->fill_ref, cc->gen, state);
}

uint64_t
cn_cached_lock_wait_ns(const cn_session_t *s)
{
    return s->cc != NULL ? s->cc->lock_wait_ns : 0;
}
