/* SPDX-License-Identifier: MIT */
/* Serving a stored object by reference (cache flow, see cached.c): the head and up to
 * SERVE_IOV body slices per writev, Range answers (single and multipart), HEAD, and the
 * conditionals (304, 412). Also stale serving: whether a stored object may answer in place of
 * a failed origin (stale-if-error, stale on unreachable), and the background fetches of
 * stale-while-revalidate and range: fetch_full. */
#include "engine/cached_int.h"

#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/str.h"
#include "core/time.h"
#include "http/conditional.h"
#include "http/range.h"

/* ---- serving stored objects ------------------------------------------------------------------ */

static void serve_pull(cn_session_t *s, void *src);
static void serve_cancel(cn_session_t *s, void *src);

static const cn_body_src_ops_t serve_ops = {
    .pull = serve_pull,
    .cancel = serve_cancel,
};

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

void
cn_cached_serve_object(cn_session_t *s, cn_cache_obj_t *o, cache_outcome_t outcome)
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
        cn_cached_policy_conf(s, &pc);
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

/* ---- stale on origin failure (RFC 9111 §4.2.4, RFC 5861 §4) --------------------------- */

/* The failures that leave the cache disconnected from the origin: connect failures, resets,
 * closes, timeouts (not an answer that broke the protocol, nor a local failure). */
bool
cn_cached_origin_unreachable(cairn_err_t err)
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
bool
cn_cached_may_serve_stale(const cn_session_t *s, const cn_cache_obj_t *o, stale_cause_t cause)
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

void
cn_cached_serve_stale(cn_session_t *s, stale_cause_t cause, unsigned fwd_status)
{
    struct cn_cached *cc = s->cc;
    cc->cause = cause;
    cc->fwd_status = fwd_status;
    cc->miss = false;
    s->cache_status = "STALE";
    s->src_ops = NULL;
    cn_cached_serve_object(s, cc->stale, OUT_STALE);
}

/* ---- stale-while-revalidate ------------------------------------------------------------ */

/* A client-less session leading fill @f (its reference is taken) for @parent's key: a
 * revalidation of @o, or (@o NULL) a full fetch. */
void
cn_cached_fetch_in_background(cn_session_t *parent, cn_cache_obj_t *o, cn_fill_t *f)
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
    cn_cached_begin_fetch(b, true);
}

/* Starts the one background revalidation of @o for @parent's key (none when a fetch for the
 * key is already running). */
void
cn_cached_revalidate_in_background(cn_session_t *parent, cn_cache_obj_t *o)
{
    bool leader;
    cn_fill_t *f = cn_fill_join(parent->w->fills, &parent->cc->key, &leader);
    if (!leader) {
        cn_fill_unref(f);
        return;
    }
    cn_cached_fill_metric(parent, CN_METRICS_FILL_BACKGROUND);
    cn_cached_fetch_in_background(parent, o, f);
}
