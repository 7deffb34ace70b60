/* SPDX-License-Identifier: MIT */
/* The cache flow. A hit is answered from the stored object by reference: the head and up to
 * 64 body segments go out in one writev. A miss is proxied with conditionals and Range removed
 * (so the origin sends the full representation), and the body is copied into a new object as
 * it streams to the client; the object is inserted only once complete. A stale object is
 * revalidated with its validators; a 304 makes a new object that shares the old body.
 *
 * This file owns the entry points (cn_cached_start, cn_cached_pass), the cache key, the
 * lookup and its decision (hit, stale, miss, pass), PURGE requests, session end and the
 * Cache-Status field. Serving stored objects is in cached_serve.c, fills and the origin queue
 * in cached_fill.c, the upstream callbacks and storing in cached_store.c. */
#include "engine/cached_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/str.h"

/* ---- keys ------------------------------------------------------------------------------------ */

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
        size_t pos = 0;
        cairn_iov_t c;
        while (cn_iov_next_item(h->items[i].value, ';', &pos, &c))
            if (c.len > nl && memcmp(c.base, name, nl) == 0 && c.base[nl] == '=')
                return cn_iov(c.base + nl + 1, c.len - nl - 1);
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

void
cn_cached_invalidate_uri(cn_session_t *s, cairn_iov_t path)
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

/* ---- entry ----------------------------------------------------------------------------------- */

void
cn_cached_lookup_and_go(cn_session_t *s)
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
        cn_cached_fetch_alone(s, false, OUT_MISS);
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
            cn_cached_revalidate_in_background(s, o);
            s->cache_status = "STALE";
            cn_cached_serve_object(s, o, OUT_STALE);
            cn_cache_obj_unref(o);
            return;
        }
        if (use == CN_POLICY_FRESH || use == CN_POLICY_STALE_OK) {
            s->cache_status = use == CN_POLICY_FRESH ? "HIT" : "STALE";
            cn_cached_serve_object(s, o, use == CN_POLICY_FRESH ? OUT_HIT : OUT_STALE);
            cn_cache_obj_unref(o);
            return;
        }
        cc->stale = o; /* keep the reference: revalidation, stale-if-error */
        cc->revalidating = o->etag.len > 0 || o->last_modified != 0;
        if ((cc->req_cc.flags & CN_CC_ONLY_IF_CACHED)) {
            s->cache_status = "STALE";
            cn_cached_serve_object(s, o, OUT_STALE);
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
    cn_fill_table_t *fills = s->w->fills;
    if (cn_fill_is_pass(fills, &cc->key)) {
        s->cache_status = "PASS";
        cn_cached_fetch_alone(s, false, OUT_PASS);
        return;
    }
    cc->head_as_get = s->req->method_id == CN_METHOD_HEAD && !cc->no_store;
    if (s->route->cache->range_mode == 1 &&
        cn_headers_get(&s->req->headers, CAIRN_IOV_LIT("range")) != NULL) {
        /* range: bypass: a Range miss goes to the origin as it is, uncached. */
        cc->detail = "range-bypass";
        cn_cached_fetch_alone(s, false, OUT_MISS);
        return;
    }
    if (s->req->method_id == CN_METHOD_GET && !cc->no_store &&
        cn_headers_get(&s->req->headers, CAIRN_IOV_LIT("range")) != NULL) {
        /* range: fetch_full: the whole object is fetched (by a client-less leader, so the
         * fill is shared as usual) and the range is answered from it once complete. */
        bool leader;
        cn_fill_t *f = cn_fill_join(s->w->fills, &cc->key, &leader);
        if (leader) {
            cn_fill_ref(f);
            cn_cached_fetch_in_background(s, NULL, f);
        }
        cc->want_complete = true;
        cc->fetched_full = leader;
        cn_cached_wait_for_fill(s, f);
        return;
    }
    if (cc->no_store || (cc->req_cc.flags & (CN_CC_NO_CACHE | CN_CC_PRAGMA_NO_CACHE))) {
        /* Requests that must not share a fill fetch on their own. */
        cn_cached_fetch_alone(s, !cc->no_store, OUT_MISS);
        if (cc->no_store)
            cc->detail = "request-no-store";
        return;
    }
    bool leader;
    cn_fill_t *f = cn_fill_join(fills, &cc->key, &leader);
    if (!leader) {
        cn_cached_wait_for_fill(s, f);
        return;
    }
    cc->fill_ref = f;
    cc->leading = true;
    cc->gen = cn_fill_gen(f);
    cc->miss = true;
    cc->outcome = OUT_MISS;
    cn_cached_begin_fetch(s, true);
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
    cc->cache = cn_worker_cache(s->w, s->route->cache->name);
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
        cn_cached_begin_fetch(s, cn_cached_upstream_of(s) != NULL &&
                                     cn_cached_upstream_of(s)->pass_takes_slot); /* a pass */
        return;
    }
    cn_cc_parse_request(&cc->req_cc, &s->req->headers);
    cc->no_store = (cc->req_cc.flags & CN_CC_NO_STORE);
    cn_cached_lookup_and_go(s);
}

bool
cn_cached_pass(cn_session_t *s)
{
    const cn_conf_upstream_t *up = cn_cached_upstream_of(s);
    if (up == NULL || !up->pass_takes_slot || up->max_in_flight == 0)
        return false;
    /* Only the origin limiter of the cache flow is used: no key, no lookup, no Cache-Status. */
    struct cn_cached *cc = cn_arena_xalloc(s->arena, sizeof(*cc));
    memset(cc, 0, sizeof(*cc));
    s->cc = cc;
    cc->owner = s;
    cc->outcome = OUT_BYPASS;
    cc->request_time = (int64_t)time(NULL);
    cn_cached_begin_fetch(s, true); /* back to cn_action_proxy once the slot is held */
    return true;
}

void
cn_cached_end(cn_session_t *s)
{
    struct cn_cached *cc = s->cc;
    if (cc == NULL)
        return;
    /* A fill that did not finish failed: before its head a waiter takes over. */
    cn_cached_finish_fill(cc, CN_FILL_FAILED);
    cn_cached_drop_fill(cc);
    cn_cached_release_slot(cc);
    cn_cache_obj_unref(cc->fill);
    cn_cache_obj_unref(cc->hit);
    cn_cache_obj_unref(cc->stale);
    cn_cache_obj_unref(cc->taken);
    cc->taken = NULL;
    cc->fill = cc->hit = cc->stale = NULL;
}

/* ---- Cache-Status (RFC 9211) ----------------------------------------------------------------- */

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
