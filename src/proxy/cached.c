/* SPDX-License-Identifier: MIT */
/* The cache flow. A hit is answered from the stored object by reference: the head and up to
 * 64 body segments go out in one writev. A miss is proxied with conditionals and Range removed
 * (so the origin sends the full representation), and the body is copied into a new object as
 * it streams to the client; the object is inserted only once complete. A stale object is
 * revalidated with its validators; a 304 makes a new object that shares the old body. */
#include "proxy/cached.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cache/policy.h"
#include "http/cache_control.h"
#include "proxy/fill.h"
#include "metrics/metrics.h"
#include "proxy/limiter.h"
#include "proxy/stats.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/str.h"
#include "core/time.h"
#include "http/conditional.h"
#include "http/range.h"

#define SERVE_IOV 64
#define MAX_RESTARTS 2

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

static void serve_pull(cn_session_t *s, void *src);
static void serve_cancel(cn_session_t *s, void *src);

static const cn_body_src_ops_t serve_ops = {
    .pull = serve_pull,
    .cancel = serve_cancel,
};

/* ---- keys ------------------------------------------------------------------------------ */

/* Appends @v to the key buffer (growing it in the arena). */
static void
key_put(cn_arena_t *a, char **k, size_t *l, size_t *cap, const char *v, size_t n)
{
    if (*l + n + 1 > *cap) {
        size_t nc = (*cap + n + 1) * 2;
        char *nk = cn_arena_xalloc(a, nc);
        memcpy(nk, *k, *l);
        *k = nk;
        *cap = nc;
    }
    memcpy(*k + *l, v, n);
    *l += n;
}

static bool
name_listed(char **names, size_t n, cairn_iov_t name)
{
    for (size_t i = 0; i < n; i++)
        if (cn_iov_eq(name, cn_iov_cstr(names[i])))
            return true;
    return false;
}

/* The query part of the key: all of it, none, or without the dropped parameters. */
static void
key_query(cn_arena_t *a, const cn_conf_cache_t *conf, cairn_iov_t q, bool has_query, char **k,
          size_t *l, size_t *cap)
{
    if (!has_query || conf->key_query == 1)
        return;
    size_t start = 0;
    bool first = true;
    for (size_t i = 0; i <= q.len; i++) {
        if (i < q.len && q.base[i] != '&')
            continue;
        cairn_iov_t part = cn_iov(q.base + start, i - start);
        start = i + 1;
        const char *eq = memchr(part.base, '=', part.len);
        cairn_iov_t name = eq ? cn_iov(part.base, (size_t)(eq - part.base)) : part;
        if (conf->n_key_query_drop > 0 &&
            name_listed(conf->key_query_drop, conf->n_key_query_drop, name))
            continue;
        key_put(a, k, l, cap, first ? "?" : "&", 1);
        key_put(a, k, l, cap, part.base, part.len);
        first = false;
    }
}

/* The value of cookie @name in the request's Cookie fields. */
static cairn_iov_t
cookie_value(const cn_headers_t *h, const char *name)
{
    size_t nl = strlen(name);
    cairn_iov_t fname = CAIRN_IOV_LIT("cookie");
    for (ssize_t i = cn_headers_find(h, fname, -1); i >= 0; i = cn_headers_find(h, fname, i)) {
        cairn_iov_t v = h->items[i].value;
        size_t start = 0;
        for (size_t j = 0; j <= v.len; j++) {
            if (j < v.len && v.base[j] != ';')
                continue;
            cairn_iov_t c = cn_iov_trim(cn_iov(v.base + start, j - start));
            start = j + 1;
            if (c.len > nl && memcmp(c.base, name, nl) == 0 && c.base[nl] == '=')
                return cn_iov(c.base + nl + 1, c.len - nl - 1);
        }
    }
    return cn_iov("", 0);
}

char *
cn_cached_url_key_text(cn_arena_t *a, const cn_conf_cache_t *conf, const char *url)
{
    size_t n = strlen(url), cap = n + 16, l = 0;
    char *k = cn_arena_xalloc(a, cap);
    const char *sep = strstr(url, "://");
    const char *path = sep != NULL ? strchr(sep + 3, '/') : NULL;
    size_t host_end = path != NULL ? (size_t)(path - url) : n;
    for (size_t i = 0; i < host_end; i++) {
        char ch = url[i];
        ch = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        key_put(a, &k, &l, &cap, &ch, 1);
    }
    if (l > 3 && memcmp(k + l - 3, ":80", 3) == 0 && strncmp(k, "http://", 7) == 0)
        l -= 3;
    const char *q = path != NULL ? strchr(path, '?') : NULL;
    size_t plen = path == NULL ? 0 : (q != NULL ? (size_t)(q - path) : strlen(path));
    key_put(a, &k, &l, &cap, path != NULL ? path : "/", path != NULL ? plen : 1);
    if (q != NULL)
        key_query(a, conf, cn_iov_cstr(q + 1), true, &k, &l, &cap);
    k[l] = '\0';
    return k;
}

/* The key template: scheme, host (lowercase, without a default port), path, query (all,
 * none, or minus caches.<name>.key.query_drop), then configured headers and cookies. The text
 * is kept (cc->key_text) for prefix and URL purges; the key is its XXH3-128. */
static void
make_key(cn_session_t *s, cn_cache_key_t *out)
{
    const cn_http_req_t *req = s->req;
    const cn_conf_cache_t *conf = s->route->cache;
    size_t cap = req->scheme.len + req->authority.len + req->path.len + req->query.len + 64;
    char *k = cn_arena_xalloc(s->arena, cap);
    size_t l = 0;
    key_put(s->arena, &k, &l, &cap, req->scheme.base, req->scheme.len);
    key_put(s->arena, &k, &l, &cap, "://", 3);
    for (size_t i = 0; i < req->authority.len; i++) {
        char ch = req->authority.base[i];
        ch = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        key_put(s->arena, &k, &l, &cap, &ch, 1);
    }
    if (l > 3 && memcmp(k + l - 3, ":80", 3) == 0 && cn_iov_eq(req->scheme, CAIRN_IOV_LIT("http")))
        l -= 3;
    key_put(s->arena, &k, &l, &cap, req->path.base, req->path.len);
    key_query(s->arena, conf, req->query, req->has_query, &k, &l, &cap);
    for (size_t i = 0; i < conf->n_key_headers; i++) {
        const cairn_iov_t *v = cn_headers_get(&req->headers, cn_iov_cstr(conf->key_headers[i]));
        key_put(s->arena, &k, &l, &cap, "\nh:", 3);
        key_put(s->arena, &k, &l, &cap, conf->key_headers[i], strlen(conf->key_headers[i]));
        key_put(s->arena, &k, &l, &cap, "=", 1);
        if (v != NULL)
            key_put(s->arena, &k, &l, &cap, v->base, v->len);
    }
    for (size_t i = 0; i < conf->n_key_cookies; i++) {
        cairn_iov_t v = cookie_value(&req->headers, conf->key_cookies[i]);
        key_put(s->arena, &k, &l, &cap, "\nc:", 3);
        key_put(s->arena, &k, &l, &cap, conf->key_cookies[i], strlen(conf->key_cookies[i]));
        key_put(s->arena, &k, &l, &cap, "=", 1);
        key_put(s->arena, &k, &l, &cap, v.base, v.len);
    }
    k[l] = '\0';
    if (s->n_hooks > 0) {
        struct cairn_cache_key hk = {.text = k, .len = l, .s = s};
        cn_hooks_cache_key(s, &hk);
        k = hk.text;
        l = hk.len;
    }
    if (s->cc != NULL)
        s->cc->key_text = k;
    cn_cache_key_hash(k, l, out);
}

static void
invalidate_uri(cn_session_t *s, cairn_iov_t path)
{
    const cn_http_req_t *req = s->req;
    cn_http_req_t copy = *req;
    copy.path = path;
    copy.has_query = false;
    const char *q = memchr(path.base, '?', path.len);
    if (q != NULL) {
        copy.path = cn_iov(path.base, (size_t)(q - path.base));
        copy.query = cn_iov(q + 1, path.len - copy.path.len - 1);
        copy.has_query = true;
    }
    cn_http_req_t *saved = s->req;
    const char *saved_text = s->cc->key_text;
    s->req = &copy;
    cn_cache_key_t key;
    make_key(s, &key);
    s->req = saved;
    s->cc->key_text = saved_text;
    size_t n = cn_cache_remove(s->cc->cache, &key);
    if (n > 0)
        CN_LOG_DEBUG(s->id, "invalidated %zu cached object(s) for %.*s", n, (int)path.len,
                     path.base);
}

/* ---- serving stored objects ------------------------------------------------------------ */

static void
add_item_mem(struct cn_cached *cc, size_t *k, cairn_iov_t v)
{
    cc->items[*k].mem = v;
    cc->items[(*k)++].len = 0;
}

static void
add_item_range(struct cn_cached *cc, size_t *k, uint64_t off, uint64_t len)
{
    cc->items[*k].mem = cn_iov(NULL, 0);
    cc->items[*k].off = off;
    cc->items[(*k)++].len = len;
}

/* Fills up to SERVE_IOV slices from the current position; returns the count. */
static size_t
fill_iov(struct cn_cached *cc, bool *eos)
{
    size_t n = 0;
    const cn_cache_obj_t *o = cc->hit;
    while (cc->cur < cc->n_items && n < SERVE_IOV) {
        struct serve_item *it = &cc->items[cc->cur];
        if (it->mem.len > 0) {
            cc->iov[n++] = it->mem;
            cc->cur++;
            continue;
        }
        /* Walk the segments to the item's current offset, then emit slices. */
        uint64_t pos = it->off + cc->cur_off, base = 0;
        const cn_cache_seg_t *seg = o->body;
        while (seg != NULL && base + seg->len <= pos) {
            base += seg->len;
            seg = seg->next;
        }
        while (seg != NULL && n < SERVE_IOV && cc->cur_off < it->len) {
            size_t in = (size_t)(pos - base);
            size_t take = (size_t)CN_MIN((uint64_t)(seg->len - in), it->len - cc->cur_off);
            cc->iov[n++] = cn_iov(seg->data + in, take);
            cc->cur_off += take;
            pos += take;
            base += seg->len;
            seg = seg->next;
        }
        if (cc->cur_off >= it->len) {
            cc->cur++;
            cc->cur_off = 0;
        }
    }
    *eos = cc->cur >= cc->n_items;
    return n;
}

static void
serve_pull(cn_session_t *s, void *src)
{
    struct cn_cached *cc = src;
    bool eos;
    size_t n = fill_iov(cc, &eos);
    cn_session_send(s, cc->iov, n, eos);
}

static void
serve_cancel(cn_session_t *s, void *src)
{
    (void)s;
    (void)src; /* references are dropped in cn_cached_end */
}

/* Plans a Range answer from a complete 200 object; false when the Range does not apply. */
static bool
plan_range(cn_session_t *s, struct cn_cached *cc, const cn_cache_obj_t *o, size_t *k)
{
    const cairn_iov_t *range = cn_headers_get(&s->req->headers, CAIRN_IOV_LIT("range"));
    if (range == NULL || s->req->method_id != CN_METHOD_GET || o->status != 200)
        return false;
    cn_validators_t v = {.etag = o->etag, .last_modified = o->last_modified, .exists = true};
    if (!cn_cond_if_range(&s->req->headers, &v, (time_t)o->meta.date_value))
        return false;
    cn_byte_range_t r[CN_RANGE_MAX_DEFAULT];
    size_t nr = 0;
    cn_range_result_t res = cn_range_parse(*range, o->body_len, r, CN_RANGE_MAX_DEFAULT, &nr);
    if (res == CN_RANGE_NONE)
        return false;
    char cr[CN_RANGE_CONTENT_RANGE_MAX];
    if (res == CN_RANGE_UNSATISFIABLE) {
        size_t l = cn_range_format_unsatisfied(cr, o->body_len);
        s->resp.status = 416;
        cn_headers_add_copy(&s->resp.headers, CAIRN_IOV_LIT("Content-Range"), cn_iov(cr, l));
        return true;
    }
    s->resp.status = 206;
    cn_headers_remove(&s->resp.headers, CAIRN_IOV_LIT("content-range"));
    if (nr == 1) {
        size_t l = cn_range_format(cr, r[0], o->body_len);
        cn_headers_add_copy(&s->resp.headers, CAIRN_IOV_LIT("Content-Range"), cn_iov(cr, l));
        add_item_range(cc, k, r[0].first, r[0].last - r[0].first + 1);
        s->resp.content_length = (int64_t)(r[0].last - r[0].first + 1);
        return true;
    }
    const cairn_iov_t *ct = cn_headers_get(&o->headers, CAIRN_IOV_LIT("content-type"));
    char boundary[CN_RANGE_BOUNDARY_MAX];
    size_t bl = cn_range_boundary(boundary, cn_time_now_ns() ^ s->id);
    cn_multipart_t mp;
    if (cn_multipart_build(&mp, s->arena, r, nr, ct ? *ct : CAIRN_IOV_LIT(""), o->body_len,
                           cn_iov(boundary, bl)) != CAIRN_OK)
        return false;
    cn_headers_remove(&s->resp.headers, CAIRN_IOV_LIT("content-type"));
    cn_headers_add(&s->resp.headers, CAIRN_IOV_LIT("Content-Type"), mp.content_type);
    cc->items = cn_arena_xalloc(s->arena, (2 * nr + 2) * sizeof(*cc->items));
    *k = 0;
    for (size_t i = 0; i < mp.n; i++) {
        add_item_mem(cc, k, mp.parts[i].head);
        add_item_range(cc, k, mp.parts[i].range.first,
                       mp.parts[i].range.last - mp.parts[i].range.first + 1);
    }
    add_item_mem(cc, k, mp.tail);
    s->resp.content_length = (int64_t)mp.body_length;
    return true;
}

static void policy_conf(const cn_session_t *s, cn_policy_conf_t *pc);

static void
serve_object(cn_session_t *s, cn_cache_obj_t *o, cache_outcome_t outcome)
{
    struct cn_cached *cc = s->cc;
    if (cc->hit != o) {
        cn_cache_obj_ref(o);
        cn_cache_obj_unref(cc->hit);
        cc->hit = o;
    }
    cc->outcome = outcome;
    int64_t now = (int64_t)time(NULL);
    int64_t age = cn_policy_current_age(&o->meta, now);
    cc->ttl = o->meta.lifetime - age;
    cn_headers_init(&s->resp.headers, s->arena);
    for (size_t i = 0; i < o->headers.n; i++)
        cn_headers_add(&s->resp.headers, o->headers.items[i].name, o->headers.items[i].value);
    if ((outcome == OUT_HIT || outcome == OUT_STALE) && o->no_cache_hint) {
        /* no-cache="field": those fields go out only after a revalidation (§5.2.2.4). */
        cn_policy_conf_t pc;
        cn_cc_t rcc;
        policy_conf(s, &pc);
        cn_policy_response_cc(&pc, &o->headers, &rcc);
        cn_policy_strip_for_reuse(&s->resp.headers, &rcc);
    }
    char agebuf[24];
    size_t al = cn_fmt_u64(agebuf, (uint64_t)(age < 0 ? 0 : age));
    cn_headers_set_copy(&s->resp.headers, CAIRN_IOV_LIT("Age"), cn_iov(agebuf, al));
    s->resp.status = o->status;
    s->resp.content_length = (int64_t)o->body_len;
    cn_validators_t v = {.etag = o->etag,
                         .last_modified = o->last_modified,
                         .date = (time_t)o->meta.date_value,
                         .exists = true};
    cn_cond_result_t cond = cn_cond_evaluate(s->req->method, &s->req->headers, &v);
    if (cond == CN_COND_NOT_MODIFIED && o->status == 200) {
        s->resp.status = 304;
        s->resp.content_length = -1;
        cn_session_send(s, NULL, 0, true);
        return;
    }
    if (cond == CN_COND_PRECONDITION_FAILED) {
        cn_headers_init(&s->resp.headers, s->arena);
        cn_session_respond_status(s, 412);
        return;
    }
    cc->items = cn_arena_xalloc(s->arena, 2 * sizeof(*cc->items));
    size_t k = 0;
    if (!plan_range(s, cc, o, &k) && o->body_len > 0)
        add_item_range(cc, &k, 0, o->body_len);
    cc->n_items = k;
    cc->cur = 0;
    cc->cur_off = 0;
    if (s->resp.status == 416) {
        cn_session_respond_status(s, 416);
        return;
    }
    if (s->req->method_id == CN_METHOD_HEAD || k == 0) {
        cn_session_send(s, NULL, 0, true);
        return;
    }
    s->src_ops = &serve_ops;
    s->src = cc;
    serve_pull(s, cc);
}

/* ---- coalescing: waiting on and streaming from another request's fill ----------------- */

static void lookup_and_go(cn_session_t *s);
static void finish_fill(struct cn_cached *cc, cn_fill_state_t state);
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

static void
drop_fill(struct cn_cached *cc)
{
    leave_fill(cc);
    cn_fill_unref(cc->fill_ref);
    cc->fill_ref = NULL;
}

static const cn_conf_upstream_t *
upstream_of(const cn_session_t *s)
{
    return s->upstream_override != NULL ? s->upstream_override : s->route->upstream;
}

static void
fill_metric(cn_session_t *s, cn_metrics_fill_event_t ev)
{
    uint32_t slot;
    if (cn_stats_cache_slot(s, &slot))
        cn_metrics_fill_event(s->w->metrics, slot, ev);
}

static void
queue_metric(cn_session_t *s, cn_metrics_queue_outcome_t outcome)
{
    struct cn_cached *cc = s->cc;
    cn_metrics_origin_queue_wait(s->w->metrics, cn_stats_upstream_slot(s, upstream_of(s)), outcome,
                                 cn_time_now_ns() - cc->queue_start_ns);
}

static void
release_slot(struct cn_cached *cc)
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
    release_slot(cc); /* the client left: out of the queue at once */
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
    release_slot(cc);
    finish_fill(cc, CN_FILL_DONE); /* waiters look it up too */
    s->cache_status = "HIT";
    serve_object(s, o, OUT_HIT);
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
    const cn_conf_upstream_t *up = upstream_of(s);
    cn_limiter_cancel(cc->limiter, cc->slot_wait, true);
    cc->slot_wait = NULL;
    queue_metric(s, CN_METRICS_QUEUE_TIMEOUT);
    close_timer(&cc->watch_timer);
    /* The fill never reached the origin: its waiters get the same answer, now (they waited
     * as long), rather than queueing again one after the other. */
    finish_fill(cc, CN_FILL_BUSY);
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
static void
begin_fetch(cn_session_t *s, bool takes_slot)
{
    struct cn_cached *cc = s->cc;
    const cn_conf_upstream_t *up = upstream_of(s);
    if (!takes_slot || up == NULL || up->max_in_flight == 0) {
        cn_action_proxy(s);
        return;
    }
    cc->limiter = cn_fill_limiter(cn_server_fills(s->w->srv), up->name);
    if (cn_limiter_acquire(cc->limiter, up->max_in_flight, s->w, on_slot_granted, s,
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
    drop_fill(cc);
    s->src_ops = NULL;
    cc->miss = store;
    cc->outcome = outcome;
    const cn_conf_upstream_t *up = upstream_of(s);
    begin_fetch(s, slot || (!store && up != NULL && up->pass_takes_slot));
}

static void
fetch_alone(cn_session_t *s, bool store, cache_outcome_t outcome)
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
    begin_fetch(s, true);
}

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
    drop_fill(cc);
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

/* ---- stale on origin failure (RFC 9111 §4.2.4, RFC 5861 §4) --------------------------- */

/* The failures that leave the cache disconnected from the origin: connect failures, resets,
 * closes, timeouts (not an answer that broke the protocol, nor a local failure). */
static bool
origin_unreachable(cairn_err_t err)
{
    switch (err) {
    case CAIRN_OK:
    case CAIRN_EPROTO:
    case CAIRN_ETOOBIG:
    case CAIRN_ENOMEM:
    case CAIRN_EINVAL:
    case CAIRN_ECONFIG:
    case CAIRN_ECANCELED:
        return false;
    default:
        return true;
    }
}

/* RFC 9111 §5.2.1: the client asked for a validated response (no-cache), or for one younger
 * (max-age), fresher (min-fresh) or less stale (max-stale) than @m at @age; its own
 * stale-if-error overrides that (RFC 5861 §4). */
static bool
request_refuses_stale(const cn_cc_t *rc, const cn_policy_meta_t *m, int64_t age)
{
    int64_t staleness = CN_MAX(0, age - m->lifetime);
    if (rc->stale_if_error >= 0 && staleness <= rc->stale_if_error)
        return false;
    if (rc->flags & (CN_CC_NO_CACHE | CN_CC_PRAGMA_NO_CACHE))
        return true;
    if (rc->max_age >= 0 && age > rc->max_age)
        return true;
    if (rc->min_fresh >= 0 && m->lifetime - age < rc->min_fresh)
        return true;
    return rc->max_stale >= 0 && staleness > rc->max_stale;
}

/* May the stored object @o answer this request in place of an origin failure? Never when a
 * hook refused stale content, the response forbids it (no-cache, must-revalidate,
 * proxy-revalidate, s-maxage: RFC 9111 §4.2.4) or the request does. Then stale-if-error
 * (RFC 5861 §4) covers every failure, and a disconnected cache (RFC 9111 §4.2.4) may serve
 * it stale by up to caches.<name>.stale_if_unreachable. */
static bool
may_serve_stale(const cn_session_t *s, const cn_cache_obj_t *o, stale_cause_t cause)
{
    if (o == NULL || s->stale_policy < 0 ||
        (o->meta.flags & (CN_POLICY_NO_CACHE | CN_POLICY_NO_STALE)))
        return false;
    int64_t now = (int64_t)time(NULL);
    int64_t age = cn_policy_current_age(&o->meta, now);
    if (request_refuses_stale(&s->cc->req_cc, &o->meta, age))
        return false;
    if (cn_policy_stale_if_error(&o->meta, &s->cc->req_cc, now))
        return true;
    uint64_t max_ms = s->route->cache->stale_if_unreachable_ms;
    int64_t staleness = CN_MAX(0, age - o->meta.lifetime);
    return cause == CAUSE_UNREACHABLE && (uint64_t)staleness * 1000 <= max_ms && max_ms > 0;
}

static void
serve_stale(cn_session_t *s, stale_cause_t cause, unsigned fwd_status)
{
    struct cn_cached *cc = s->cc;
    cc->cause = cause;
    cc->fwd_status = fwd_status;
    cc->miss = false;
    s->cache_status = "STALE";
    s->src_ops = NULL;
    serve_object(s, cc->stale, OUT_STALE);
}

/* A waiter whose leader answered stale: the same answer when this request allows it, else
 * a fetch of its own. */
static void
stale_after_fill(cn_session_t *s, cn_fill_state_t state)
{
    struct cn_cached *cc = s->cc;
    stale_cause_t cause = state == CN_FILL_UNREACHABLE ? CAUSE_UNREACHABLE : CAUSE_ERROR;
    drop_fill(cc);
    cc->want_complete = false;
    if (!may_serve_stale(s, cc->stale, cause)) {
        fetch_alone(s, true, OUT_MISS);
        return;
    }
    cc->collapsed = true;
    serve_stale(s, cause, 0);
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
        lookup_and_go(s);
        return;
    }
    cc->origin_status = o->status;
    if (!cc->fetched_full) {
        s->cache_status = "COALESCED";
        serve_object(s, o, OUT_COALESCED);
        return;
    }
    s->cache_status = cc->stale != NULL ? "EXPIRED" : "MISS";
    serve_object(s, o, cc->stale != NULL ? OUT_REFRESHED : OUT_MISS);
}

static void
on_fill_event(void *session, cn_fill_t *f, cn_fill_event_t ev)
{
    cn_session_t *s = session;
    struct cn_cached *cc = s->cc;
    if (ev == CN_FILL_EV_LEAD) {
        CN_LOG_DEBUG(s->id, "the fill's leader failed before its head: leading the fetch");
        fill_metric(s, CN_METRICS_FILL_ELECTED);
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
        drop_fill(cc);
        cc->want_complete = false;
        serve_full_fetch(s, o);
        cn_cache_obj_unref(o);
        return;
    }
    if (cc->want_complete && state != CN_FILL_PENDING) {
        /* Not stored (pass, failure): forward the Range request as it is. */
        cn_cache_obj_unref(o);
        cc->want_complete = false;
        fetch_alone(s, false, state == CN_FILL_PASS ? OUT_PASS : OUT_MISS);
        return;
    }
    switch (state) {
    case CN_FILL_PENDING:
        break;
    case CN_FILL_STREAMING:
    case CN_FILL_DONE:
        if (o == NULL) {
            /* Finished without a body to share (e.g. a 304 refreshed the stored object). */
            drop_fill(cc);
            if (++cc->restarts > MAX_RESTARTS)
                fetch_alone(s, true, OUT_MISS);
            else
                lookup_and_go(s);
        } else if (!cn_cache_obj_matches(o, &s->req->headers)) {
            fetch_alone(s, true, OUT_VARY_MISS);
        } else {
            start_streaming(s, o);
        }
        break;
    case CN_FILL_PASS:
        fetch_alone(s, false, OUT_PASS);
        break;
    case CN_FILL_BUSY: {
        drop_fill(cc);
        s->src_ops = NULL;
        const cn_conf_upstream_t *up = upstream_of(s);
        s->retry_after = up != NULL ? up->retry_after : 1;
        s->upstream_name = up != NULL ? up->name : NULL;
        cc->detail = "queue-timeout";
        cn_session_error(s, 503, "the fill this request waited on timed out in the origin queue");
        break;
    }
    case CN_FILL_FAILED:
        fetch_alone(s, true, OUT_MISS);
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
        fill_metric(s, CN_METRICS_FILL_TAKEOVER);
        lead(s, gen);
    }
}

static void
wait_for_fill(cn_session_t *s, cn_fill_t *f)
{
    struct cn_cached *cc = s->cc;
    const cn_conf_cache_t *conf = s->route->cache;
    cc->fill_ref = f;
    cc->wt = cn_fill_wait(f, s->w, s, on_fill_event);
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

/* ---- stale-while-revalidate ------------------------------------------------------------ */

/* A client-less session leading fill @f (its reference is taken) for @parent's key: a
 * revalidation of @o, or (@o NULL) a full fetch. */
static void
fetch_in_background(cn_session_t *parent, cn_cache_obj_t *o, cn_fill_t *f)
{
    struct cn_cached *pc = parent->cc;
    cn_session_t *b = cn_session_background(parent);
    struct cn_cached *cc = cn_arena_xalloc(b->arena, sizeof(*cc));
    memset(cc, 0, sizeof(*cc));
    b->cc = cc;
    cc->owner = b;
    cc->cache = pc->cache;
    cc->key = pc->key;
    cc->key_text = cn_session_strdup(b, cn_iov_cstr(pc->key_text)).base;
    cc->request_time = (int64_t)time(NULL);
    cn_cc_init(&cc->req_cc);
    if (o != NULL) {
        cn_cache_obj_ref(o);
        cc->stale = o;
        cc->revalidating = o->etag.len > 0 || o->last_modified != 0;
    }
    cc->fill_ref = f;
    cc->leading = true;
    cc->gen = cn_fill_gen(f);
    cc->miss = true;
    cc->detached = true;
    cc->outcome = o != NULL ? OUT_REFRESHED : OUT_MISS;
    b->cache_status = "BACKGROUND";
    CN_LOG_DEBUG(parent->id, "background fetch #%llu", (unsigned long long)b->id);
    begin_fetch(b, true);
}

/* Starts the one background revalidation of @o for @parent's key (none when a fetch for the
 * key is already running). */
static void
revalidate_in_background(cn_session_t *parent, cn_cache_obj_t *o)
{
    bool leader;
    cn_fill_t *f = cn_fill_join(cn_server_fills(parent->w->srv), &parent->cc->key, &leader);
    if (!leader) {
        cn_fill_unref(f);
        return;
    }
    fill_metric(parent, CN_METRICS_FILL_BACKGROUND);
    fetch_in_background(parent, o, f);
}

/* ---- entry ----------------------------------------------------------------------------- */

static void
lookup_and_go(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    cn_cache_obj_unref(cc->stale);
    cc->stale = NULL;
    cn_cache_obj_t *o = NULL;
    if (cn_cache_lookup(cc->cache, &cc->key, &s->req->headers, &o) != CAIRN_OK) {
        /* Seed 001: a failing tier never fails the request; it is proxied uncached. */
        CN_LOG_WARN(s->id, "cache %s: lookup failed; proxying without the cache",
                    cn_cache_name(cc->cache));
        cc->detail = "tier-error";
        s->cache_status = "ERROR";
        fetch_alone(s, false, OUT_MISS);
        return;
    }
    if (o != NULL) {
        cn_policy_fresh_t use =
            cn_policy_freshness_check(&o->meta, &cc->req_cc, (int64_t)time(NULL));
        if (atomic_load(&o->soft_purged))
            use = CN_POLICY_REVALIDATE; /* soft purge: stale until revalidated */
        if (s->n_hooks > 0 && use != CN_POLICY_REVALIDATE) {
            int64_t age = cn_policy_current_age(&o->meta, (int64_t)time(NULL));
            cairn_cache_meta_t meta = {.status = o->status,
                                       .age = age,
                                       .ttl = o->meta.lifetime - age,
                                       .body_len = o->body_len};
            if (cn_hooks_cache_hit(s, &meta))
                use = CN_POLICY_REVALIDATE;
        }
        if (s->stale_policy < 0 && use != CN_POLICY_FRESH)
            use = CN_POLICY_REVALIDATE; /* a hook refused stale content */
        if (use == CN_POLICY_STALE_SWR) {
            /* The refresh starts first: serving may complete (and free the session) at once. */
            revalidate_in_background(s, o);
            s->cache_status = "STALE";
            serve_object(s, o, OUT_STALE);
            cn_cache_obj_unref(o);
            return;
        }
        if (use == CN_POLICY_FRESH || use == CN_POLICY_STALE_OK) {
            s->cache_status = use == CN_POLICY_FRESH ? "HIT" : "STALE";
            serve_object(s, o, use == CN_POLICY_FRESH ? OUT_HIT : OUT_STALE);
            cn_cache_obj_unref(o);
            return;
        }
        cc->stale = o; /* keep the reference: revalidation, stale-if-error */
        cc->revalidating = o->etag.len > 0 || o->last_modified != 0;
        if ((cc->req_cc.flags & CN_CC_ONLY_IF_CACHED)) {
            s->cache_status = "STALE";
            serve_object(s, o, OUT_STALE);
            return;
        }
    } else if ((cc->req_cc.flags & CN_CC_ONLY_IF_CACHED)) {
        /* RFC 9111 §5.2.1.7: nothing stored to answer with. */
        cc->outcome = OUT_ONLY_IF_CACHED;
        s->cache_status = "MISS";
        cn_session_error(s, 504, "only-if-cached and nothing stored");
        return;
    }
    s->cache_status = o != NULL ? "EXPIRED" : "MISS";
    cn_fill_table_t *fills = cn_server_fills(s->w->srv);
    if (cn_fill_is_pass(fills, &cc->key)) {
        s->cache_status = "PASS";
        fetch_alone(s, false, OUT_PASS);
        return;
    }
    cc->head_as_get = s->req->method_id == CN_METHOD_HEAD && !cc->no_store;
    if (s->route->cache->range_mode == 1 &&
        cn_headers_get(&s->req->headers, CAIRN_IOV_LIT("range")) != NULL) {
        /* range: bypass: a Range miss goes to the origin as it is, uncached. */
        cc->detail = "range-bypass";
        fetch_alone(s, false, OUT_MISS);
        return;
    }
    if (s->req->method_id == CN_METHOD_GET && !cc->no_store &&
        cn_headers_get(&s->req->headers, CAIRN_IOV_LIT("range")) != NULL) {
        /* range: fetch_full: the whole object is fetched (by a client-less leader, so the
         * fill is shared as usual) and the range is answered from it once complete. */
        bool leader;
        cn_fill_t *f = cn_fill_join(cn_server_fills(s->w->srv), &cc->key, &leader);
        if (leader) {
            cn_fill_ref(f);
            fetch_in_background(s, NULL, f);
        }
        cc->want_complete = true;
        cc->fetched_full = leader;
        wait_for_fill(s, f);
        return;
    }
    if (cc->no_store || (cc->req_cc.flags & (CN_CC_NO_CACHE | CN_CC_PRAGMA_NO_CACHE))) {
        /* Requests that must not share a fill fetch on their own. */
        fetch_alone(s, !cc->no_store, OUT_MISS);
        if (cc->no_store)
            cc->detail = "request-no-store";
        return;
    }
    bool leader;
    cn_fill_t *f = cn_fill_join(fills, &cc->key, &leader);
    if (!leader) {
        wait_for_fill(s, f);
        return;
    }
    cc->fill_ref = f;
    cc->leading = true;
    cc->gen = cn_fill_gen(f);
    cc->miss = true;
    cc->outcome = OUT_MISS;
    begin_fetch(s, true);
}

/* The PURGE method (caches.<name>.purge.method): removes every variant of the URL, or marks
 * them stale with "Purge-Mode: soft". 403 outside purge.allow, 404 when nothing matched. */
static void
purge_request(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    const cn_conf_cache_t *conf = s->route->cache;
    cc->outcome = OUT_BYPASS;
    if (s->ds == NULL ||
        !cn_route_addr_in(conf->purge_allow, conf->n_purge_allow, s->ds->client_addr)) {
        cn_session_error(s, 403, "PURGE from a client outside purge.allow");
        return;
    }
    const cairn_iov_t *mode = cn_headers_get(&s->req->headers, CAIRN_IOV_LIT("purge-mode"));
    bool soft = mode != NULL && cn_iov_ieq_cstr(cn_iov_trim(*mode), "soft");
    /* The URL part of the key: every header/cookie variant of it goes. */
    const char *nl = strchr(cc->key_text, '\n');
    const char *url = nl == NULL
                          ? cc->key_text
                          : cn_arena_strndup(s->arena, cc->key_text, (size_t)(nl - cc->key_text));
    size_t n = cn_cache_purge(cc->cache, CN_PURGE_URL, url, soft);
    if (n == 0) {
        cn_session_error(s, 404, "PURGE: nothing cached for this URL");
        return;
    }
    char *body = cn_arena_xalloc(s->arena, 48);
    int l = snprintf(body, 48, "{\"purged\": %zu}\n", n);
    cn_headers_add(&s->resp.headers, CAIRN_IOV_LIT("Content-Type"),
                   CAIRN_IOV_LIT("application/json"));
    cn_session_respond(s, 200, cn_iov(body, (size_t)l));
}

void
cn_cached_start(cn_session_t *s)
{
    struct cn_cached *cc = cn_arena_xalloc(s->arena, sizeof(*cc));
    memset(cc, 0, sizeof(*cc));
    s->cc = cc;
    cc->owner = s;
    cc->cache = cn_server_cache(s->w->srv, s->route->cache->name);
    cc->request_time = (int64_t)time(NULL);
    cn_method_t m = s->req->method_id;
    if (cc->cache == NULL) {
        cc->outcome = OUT_BYPASS;
        cn_action_proxy(s);
        return;
    }
    make_key(s, &cc->key);
    if (s->route->cache->purge_method && cn_iov_eq(s->req->method, CAIRN_IOV_LIT("PURGE"))) {
        purge_request(s);
        return;
    }
    if (m != CN_METHOD_GET && m != CN_METHOD_HEAD) {
        cc->outcome = OUT_BYPASS;
        s->cache_status = "PASS";
        cc->invalidate = !cn_policy_method_is_safe(s->req->method);
        begin_fetch(s, upstream_of(s) != NULL && upstream_of(s)->pass_takes_slot); /* a pass */
        return;
    }
    cn_cc_parse_request(&cc->req_cc, &s->req->headers);
    cc->no_store = (cc->req_cc.flags & CN_CC_NO_STORE);
    lookup_and_go(s);
}

bool
cn_cached_pass(cn_session_t *s)
{
    const cn_conf_upstream_t *up = upstream_of(s);
    if (up == NULL || !up->pass_takes_slot || up->max_in_flight == 0)
        return false;
    /* Only the origin limiter of the cache flow is used: no key, no lookup, no Cache-Status. */
    struct cn_cached *cc = cn_arena_xalloc(s->arena, sizeof(*cc));
    memset(cc, 0, sizeof(*cc));
    s->cc = cc;
    cc->owner = s;
    cc->outcome = OUT_BYPASS;
    cc->request_time = (int64_t)time(NULL);
    begin_fetch(s, true); /* back to cn_action_proxy once the slot is held */
    return true;
}

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
static void
policy_conf(const cn_session_t *s, cn_policy_conf_t *pc)
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
    policy_conf(s, &pc);
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

/* The leader ends its fill (once): waiters are told, the fill leaves the table. */
static void
finish_fill(struct cn_cached *cc, cn_fill_state_t state)
{
    if (!cc->leading || cc->finished || cc->fill_ref == NULL)
        return;
    cc->finished = true;
    cn_fill_finish(cc->fill_ref, cc->gen, state);
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

/* RFC 5861 §4: the origin answered @status (500, 502, 503 or 504) and the stored object may
 * answer instead. The error is neither stored over it nor relayed (its body is dropped with
 * the connection); the fill's waiters are told so that they may answer stale too. */
static cn_cached_head_result_t
stale_for_error_status(cn_session_t *s, unsigned status)
{
    struct cn_cached *cc = s->cc;
    CN_LOG_INFO(s->id, "origin answered %u: serving the stored object (stale-if-error)", status);
    finish_fill(cc, CN_FILL_ORIGIN_ERROR);
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
                    invalidate_uri(s, targets[i]);
        }
        return CN_CACHED_STREAM;
    }
    cc->got_head = true;
    if (cc->stale != NULL && cn_policy_status_is_error(status) &&
        may_serve_stale(s, cc->stale, CAUSE_ERROR))
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
        finish_fill(cc, CN_FILL_DONE); /* waiters look the refreshed object up */
        s->cache_status = "REVALIDATED";
        cc->taken = o; /* served by cn_cached_serve_taken once the upstream side is done */
        return CN_CACHED_TAKEN;
    }
    cc->outcome = cc->stale != NULL ? OUT_REFRESHED : OUT_MISS;
    if (cc->no_store) {
        cc->detail = "request-no-store";
        finish_fill(cc, CN_FILL_PASS);
        return cc->detached ? CN_CACHED_ABANDON : CN_CACHED_STREAM;
    }
    cn_policy_conf_t pc;
    policy_conf(s, &pc);
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
            cn_fill_mark_pass(cn_server_fills(s->w->srv), &cc->key,
                              s->route->cache->hit_for_pass_ms);
        finish_fill(cc, cc->leading && status >= 500 ? CN_FILL_FAILED : CN_FILL_PASS);
        return cc->detached ? CN_CACHED_ABANDON : CN_CACHED_STREAM;
    }
    if (cn_cache_fault("insert")) {
        /* The tier refuses stores: say so now rather than claim "stored" in the head. */
        CN_LOG_WARN(s->id, "cache %s: store failed; the response is still served",
                    cn_cache_name(cc->cache));
        cc->detail = "tier-error";
        s->cache_status = "ERROR";
        finish_fill(cc, CN_FILL_PASS);
        return cc->detached ? CN_CACHED_ABANDON : CN_CACHED_STREAM;
    }
    if (s->resp.content_length > 0 &&
        (uint64_t)s->resp.content_length > cn_cache_max_object(cc->cache)) {
        cc->detail = "too-large";
        finish_fill(cc, CN_FILL_PASS);
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
        finish_fill(cc, CN_FILL_FAILED);
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
    finish_fill(cc, CN_FILL_DONE);
    cn_cache_obj_unref(cc->fill);
    cc->fill = NULL;
    release_slot(cc); /* the origin's part is over */
}

bool
cn_cached_upstream_error(cn_session_t *s, unsigned status)
{
    struct cn_cached *cc = s->cc;
    (void)status;
    if (cc == NULL || cc->stale == NULL || s->resp_started)
        return false;
    stale_cause_t cause =
        !cc->got_head && origin_unreachable(s->last_err) ? CAUSE_UNREACHABLE : CAUSE_ERROR;
    if (!may_serve_stale(s, cc->stale, cause))
        return false;
    CN_LOG_INFO(s->id, "origin failed (%s): serving the stored object stale",
                cairn_err_name(s->last_err));
    if (cc->fill == NULL) /* nothing reached the waiters: they may answer stale too */
        finish_fill(cc, cause == CAUSE_UNREACHABLE ? CN_FILL_UNREACHABLE : CN_FILL_ORIGIN_ERROR);
    if (s->background)
        return false; /* no client; the stored object stays */
    serve_stale(s, cause, 0);
    return true;
}

void
cn_cached_serve_taken(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    cn_cache_obj_t *o = cc->taken;
    cc->taken = NULL;
    serve_object(s, o, cc->cause != CAUSE_NONE ? OUT_STALE : OUT_REVALIDATED);
    cn_cache_obj_unref(o); /* the local reference; serve_object keeps its own */
}

uint64_t
cn_cached_lock_wait_ns(const cn_session_t *s)
{
    return s->cc != NULL ? s->cc->lock_wait_ns : 0;
}

void
cn_cached_abandoned(cn_session_t *s)
{
    fill_metric(s, CN_METRICS_FILL_ABANDONED);
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
    fill_metric(s, CN_METRICS_FILL_ABANDONED);
    s->src_ops = NULL;
    release_slot(cc); /* closes this timer too */
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

void
cn_cached_end(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    if (cc == NULL)
        return;
    /* A fill that did not finish failed: before its head a waiter takes over. */
    finish_fill(cc, CN_FILL_FAILED);
    drop_fill(cc);
    release_slot(cc);
    cn_cache_obj_unref(cc->fill);
    cn_cache_obj_unref(cc->hit);
    cn_cache_obj_unref(cc->stale);
    cn_cache_obj_unref(cc->taken);
    cc->taken = NULL;
    cc->fill = cc->hit = cc->stale = NULL;
}

/* Why cairn answered a forwarded request itself: a Cache-Status detail token. */
static const char *
own_answer_detail(const cn_session_t *s)
{
    const struct cn_cached *cc = s->cc;
    switch (s->last_err) {
    case CAIRN_OK:
        return cc->detail != NULL ? cc->detail : "internal-error"; /* e.g. queue-timeout */
    case CAIRN_ETIMEDOUT:
        return "upstream-timeout";
    case CAIRN_ECONNREFUSED:
    case CAIRN_ENOENT:
        return "upstream-connect";
    case CAIRN_ECLOSED:
    case CAIRN_ERESET:
        return "upstream-closed";
    case CAIRN_EPROTO:
    case CAIRN_ETOOBIG:
        return "upstream-protocol";
    default:
        return "upstream-error";
    }
}

/* Cache-Status of a forwarded request. fwd-status is what the origin answered (RFC 9211
 * §2.5), which is not always what the client gets (a Range answered from the full fetch); a
 * response cairn made itself (queue timeout, connect failure, timeout) has none, and its
 * detail says why. */
static int
format_forwarded(const cn_session_t *s, char *buf, size_t cap, const char *fwd, const char *detail)
{
    const struct cn_cached *cc = s->cc;
    if (cc->origin_status == 0)
        return snprintf(buf, cap, "cairn; fwd=%s; detail=%s", fwd, own_answer_detail(s));
    return snprintf(buf, cap, "cairn; fwd=%s; fwd-status=%u%s%s%s", fwd, cc->origin_status,
                    cc->fill != NULL || cc->stored ? "; stored" : "", detail ? "; detail=" : "",
                    detail ? detail : "");
}

void
cn_cached_status_header(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    if (cc == NULL || s->route->cache == NULL) /* no cache: only the origin limiter was used */
        return;
    char buf[160];
    int n;
    if (cc->outcome == OUT_STALE && cc->cause != CAUSE_NONE) {
        /* Stale in place of a failed origin: hit (the answer is stored), fwd=stale (the
         * request did go forward), and why. */
        char fs[24] = "";
        if (cc->fwd_status != 0)
            snprintf(fs, sizeof(fs), "; fwd-status=%u", cc->fwd_status);
        n = snprintf(buf, sizeof(buf), "cairn; hit; fwd=stale%s; ttl=%lld%s; detail=%s", fs,
                     (long long)cc->ttl, cc->collapsed ? "; collapsed" : "",
                     cc->cause == CAUSE_UNREACHABLE ? "origin-unreachable" : "origin-error");
        cn_headers_set_copy(&s->resp.headers, CAIRN_IOV_LIT("Cache-Status"),
                            cn_iov(buf, (size_t)CN_MIN((size_t)n, sizeof(buf) - 1)));
        return;
    }
    switch (cc->outcome) {
    case OUT_HIT:
    case OUT_STALE: {
        /* The answer of every hit: built by hand (snprintf costs more than the rest). */
        static const char hit[] = "cairn; hit; ttl=";
        memcpy(buf, hit, sizeof(hit) - 1);
        size_t l = sizeof(hit) - 1;
        if (cc->ttl < 0)
            buf[l++] = '-';
        l += cn_fmt_u64(buf + l, cc->ttl < 0 ? (uint64_t)0 - (uint64_t)cc->ttl : (uint64_t)cc->ttl);
        n = (int)l;
        break;
    }
    case OUT_REVALIDATED:
        n = snprintf(buf, sizeof(buf), "cairn; fwd=stale; fwd-status=304; ttl=%lld",
                     (long long)cc->ttl);
        break;
    case OUT_BYPASS:
        n = snprintf(buf, sizeof(buf), "cairn; fwd=%s", cc->cache == NULL ? "bypass" : "method");
        break;
    case OUT_ONLY_IF_CACHED:
        n = snprintf(buf, sizeof(buf), "cairn; fwd=miss; detail=only-if-cached");
        break;
    case OUT_COALESCED:
        n = snprintf(buf, sizeof(buf), "cairn; fwd=uri-miss; collapsed; ttl=%lld",
                     (long long)cc->ttl);
        break;
    case OUT_PASS:
        n = format_forwarded(s, buf, sizeof(buf), "uri-miss", "hit-for-pass");
        break;
    case OUT_MISS:
    case OUT_VARY_MISS:
    case OUT_REFRESHED:
    case OUT_NONE:
    default:
        n = format_forwarded(s, buf, sizeof(buf),
                             cc->outcome == OUT_REFRESHED ? "stale"
                             : (cc->req_cc.flags & (CN_CC_NO_CACHE | CN_CC_PRAGMA_NO_CACHE))
                                 ? "request"
                                 : "uri-miss",
                             cc->detail);
        break;
    }
    cn_headers_set_copy(&s->resp.headers, CAIRN_IOV_LIT("Cache-Status"),
                        cn_iov(buf, (size_t)CN_MIN((size_t)n, sizeof(buf) - 1)));
}
