/* SPDX-License-Identifier: MIT */
/* RFC 9111 rules for the cache flow (shared cache). */
#include "proxy/cache_rules.h"

#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "core/time.h"

#define DELTA_MAX 2147483648LL /* RFC 9111 §1.2.2 */

struct dirs {
    bool no_store, no_cache, no_cache_fields, private_, private_fields, public_;
    bool must_revalidate, proxy_revalidate, must_understand, only_if_cached;
    int64_t max_age, s_maxage, max_stale, min_fresh, swr, sie;
    bool max_stale_any;
    bool seen; /* at least one directive */
};

static int64_t
parse_delta(cairn_iov_t v)
{
    if (v.len >= 2 && v.base[0] == '"' && v.base[v.len - 1] == '"')
        v = cn_iov(v.base + 1, v.len - 2);
    uint64_t n;
    if (v.len == 0)
        return -2;
    for (size_t i = 0; i < v.len; i++)
        if (v.base[i] < '0' || v.base[i] > '9')
            return -2;
    if (v.len > 12 || !cn_parse_u64(v, &n) || n > (uint64_t)DELTA_MAX)
        return DELTA_MAX;
    return (int64_t)n;
}

static void
apply_directive(struct dirs *d, cairn_iov_t name, cairn_iov_t value, bool has_value)
{
    d->seen = true;
#define IS(s) cn_iov_ieq_cstr(name, s)
    if (IS("no-store")) {
        d->no_store = true;
    } else if (IS("no-cache")) {
        if (has_value)
            d->no_cache_fields = true;
        else
            d->no_cache = true;
    } else if (IS("private")) {
        if (has_value)
            d->private_fields = true;
        else
            d->private_ = true;
    } else if (IS("public")) {
        d->public_ = true;
    } else if (IS("must-revalidate")) {
        d->must_revalidate = true;
    } else if (IS("proxy-revalidate")) {
        d->proxy_revalidate = true;
    } else if (IS("must-understand")) {
        d->must_understand = true;
    } else if (IS("only-if-cached")) {
        d->only_if_cached = true;
    } else if (IS("max-age")) {
        int64_t v = parse_delta(value);
        /* Duplicates or invalid values: the most restrictive reading (§4.2.1). */
        d->max_age = (v == -2) ? 0 : (d->max_age >= 0 ? CN_MIN(d->max_age, v) : v);
    } else if (IS("s-maxage")) {
        int64_t v = parse_delta(value);
        d->s_maxage = (v == -2) ? 0 : (d->s_maxage >= 0 ? CN_MIN(d->s_maxage, v) : v);
    } else if (IS("max-stale")) {
        int64_t v = has_value ? parse_delta(value) : -1;
        if (!has_value)
            d->max_stale_any = true;
        else if (v >= 0)
            d->max_stale = v;
    } else if (IS("min-fresh")) {
        int64_t v = parse_delta(value);
        if (v >= 0)
            d->min_fresh = v;
    } else if (IS("stale-while-revalidate")) {
        int64_t v = parse_delta(value);
        if (v >= 0)
            d->swr = v;
    } else if (IS("stale-if-error")) {
        int64_t v = parse_delta(value);
        if (v >= 0)
            d->sie = v;
    }
#undef IS
}

/* Parses every line of field @name (a comma list of directives, values token or quoted). */
static void
parse_dirs(const cn_headers_t *h, const char *field, struct dirs *d)
{
    memset(d, 0, sizeof(*d));
    d->max_age = d->s_maxage = d->max_stale = d->min_fresh = -1;
    cairn_iov_t fname = cn_iov_cstr(field);
    for (ssize_t i = cn_headers_find(h, fname, -1); i >= 0; i = cn_headers_find(h, fname, i)) {
        cairn_iov_t v = h->items[i].value;
        size_t p = 0;
        while (p < v.len) {
            while (p < v.len && (v.base[p] == ' ' || v.base[p] == '\t' || v.base[p] == ','))
                p++;
            size_t ns = p;
            while (p < v.len && v.base[p] != '=' && v.base[p] != ',' && v.base[p] != ' ' &&
                   v.base[p] != '\t')
                p++;
            cairn_iov_t name = cn_iov(v.base + ns, p - ns);
            while (p < v.len && (v.base[p] == ' ' || v.base[p] == '\t'))
                p++;
            cairn_iov_t value = {0};
            bool has_value = false;
            if (p < v.len && v.base[p] == '=') {
                p++;
                has_value = true;
                size_t vs = p;
                if (p < v.len && v.base[p] == '"') {
                    p++;
                    while (p < v.len && v.base[p] != '"')
                        p += (v.base[p] == '\\' && p + 1 < v.len) ? 2 : 1;
                    if (p < v.len)
                        p++;
                } else {
                    while (p < v.len && v.base[p] != ',' && v.base[p] != ' ' && v.base[p] != '\t')
                        p++;
                }
                value = cn_iov(v.base + vs, p - vs);
            }
            while (p < v.len && v.base[p] != ',')
                p++;
            if (name.len > 0)
                apply_directive(d, name, value, has_value);
        }
    }
}

void
cn_cache_parse_request(const cn_headers_t *req, cn_cache_req_dirs_t *out)
{
    struct dirs d;
    parse_dirs(req, "cache-control", &d);
    memset(out, 0, sizeof(*out));
    out->no_store = d.no_store;
    out->no_cache = d.no_cache;
    out->only_if_cached = d.only_if_cached;
    out->max_age = d.max_age;
    out->max_stale = d.max_stale_any ? INT64_MAX : d.max_stale;
    out->min_fresh = d.min_fresh;
    /* RFC 9111 §5.4: Pragma: no-cache only when the request has no Cache-Control. */
    if (cn_headers_get(req, CAIRN_IOV_LIT("cache-control")) == NULL &&
        cn_headers_has_token(req, CAIRN_IOV_LIT("pragma"), CAIRN_IOV_LIT("no-cache")))
        out->no_cache = true;
}

int64_t
cn_cache_current_age(const cn_cache_times_t *t, int64_t now)
{
    int64_t apparent_age = CN_MAX((int64_t)0, t->response_time - t->date_value);
    int64_t response_delay = t->response_time - t->request_time;
    int64_t corrected_age_value = t->age_value + response_delay;
    int64_t corrected_initial_age = CN_MAX(apparent_age, corrected_age_value);
    int64_t resident_time = now - t->response_time;
    return corrected_initial_age + resident_time;
}

cn_cache_use_t
cn_cache_usable(const cn_cache_times_t *t, const cn_cache_req_dirs_t *req, int64_t now)
{
    if (req->no_cache || t->no_cache)
        return CN_CACHE_USE_REVALIDATE;
    int64_t age = cn_cache_current_age(t, now);
    int64_t lifetime = t->lifetime;
    if (req->max_age >= 0 && age > req->max_age)
        return CN_CACHE_USE_REVALIDATE;
    int64_t left = lifetime - age;
    if (req->min_fresh >= 0 && left < req->min_fresh)
        return CN_CACHE_USE_REVALIDATE;
    if (left > 0)
        return CN_CACHE_USE_FRESH;
    /* RFC 5861 §3: within stale-while-revalidate, serve now and revalidate behind. */
    if (!t->must_revalidate && t->swr > 0 && -left <= t->swr)
        return CN_CACHE_USE_STALE_SWR;
    /* must-revalidate, proxy-revalidate and s-maxage forbid serving stale (§4.2.4). */
    if (!t->must_revalidate && req->max_stale >= 0 && -left <= req->max_stale)
        return CN_CACHE_USE_STALE_OK;
    return CN_CACHE_USE_REVALIDATE;
}

bool
cn_cache_stale_if_error_ok(const cn_cache_times_t *t, const cn_cache_req_dirs_t *req, int64_t now)
{
    (void)req;
    if (t->must_revalidate || t->sie <= 0)
        return false;
    int64_t stale_for = cn_cache_current_age(t, now) - t->lifetime;
    return stale_for <= t->sie;
}

static bool
header_time(const cn_headers_t *h, const char *name, int64_t *out)
{
    const cairn_iov_t *v = cn_headers_get(h, cn_iov_cstr(name));
    time_t t;
    if (v == NULL || !cn_time_parse_http_date(v->base, v->len, &t))
        return false;
    *out = (int64_t)t;
    return true;
}

static bool
heuristically_cacheable(unsigned status)
{
    static const unsigned ok[] = {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501};
    for (size_t i = 0; i < CN_ARRAY_LEN(ok); i++)
        if (ok[i] == status)
            return true;
    return false;
}

/* A targeted field (RFC 9213): the configured cairn one, else CDN-Cache-Control, replaces
 * Cache-Control for freshness when present. */
static void
response_dirs(const cn_headers_t *h, const cn_conf_cache_t *conf, struct dirs *d)
{
    struct dirs cdn;
    cdn.seen = false;
    if (conf != NULL && conf->targeted_field != NULL)
        parse_dirs(h, conf->targeted_field, &cdn);
    if (!cdn.seen)
        parse_dirs(h, "cdn-cache-control", &cdn);
    parse_dirs(h, "cache-control", d);
    if (!cdn.seen)
        return;
    d->max_age = cdn.max_age;
    d->s_maxage = cdn.s_maxage;
    d->no_store = d->no_store || cdn.no_store;
    d->private_ = cdn.private_;
    d->no_cache = cdn.no_cache;
    d->must_revalidate = cdn.must_revalidate;
    d->swr = cdn.swr ? cdn.swr : d->swr;
    d->sie = cdn.sie ? cdn.sie : d->sie;
}

void
cn_cache_compute_times(const cn_headers_t *h, unsigned status, int64_t request_time,
                       int64_t response_time, const cn_conf_cache_t *conf, cn_cache_times_t *t)
{
    struct dirs d;
    response_dirs(h, conf, &d);
    int64_t h_pct = conf != NULL ? (int64_t)conf->heuristic_percent : 10;
    int64_t h_max = conf != NULL ? (int64_t)(conf->heuristic_max_ms / 1000) : 86400;
    memset(t, 0, sizeof(*t));
    t->request_time = request_time;
    t->response_time = response_time;
    if (!header_time(h, "date", &t->date_value))
        t->date_value = response_time;
    const cairn_iov_t *age = cn_headers_get(h, CAIRN_IOV_LIT("age"));
    uint64_t a;
    if (age != NULL && cn_parse_u64(cn_iov_trim(*age), &a))
        t->age_value = (int64_t)CN_MIN(a, (uint64_t)DELTA_MAX);
    int64_t expires;
    if (d.s_maxage >= 0) {
        t->lifetime = d.s_maxage;
    } else if (d.max_age >= 0) {
        t->lifetime = d.max_age;
    } else if (cn_headers_get(h, CAIRN_IOV_LIT("expires")) != NULL) {
        /* An invalid Expires means "already expired" (§5.3). */
        t->lifetime = header_time(h, "expires", &expires) ? expires - t->date_value : 0;
    } else {
        int64_t lm;
        if ((heuristically_cacheable(status) || d.public_) &&
            header_time(h, "last-modified", &lm) && lm < t->date_value)
            t->lifetime = CN_MIN((t->date_value - lm) * h_pct / 100, h_max);
    }
    t->swr = d.swr;
    t->sie = d.sie;
    t->must_revalidate = d.must_revalidate || d.proxy_revalidate || d.s_maxage >= 0;
    t->no_cache = d.no_cache;
}

const char *
cn_cache_vary_names(const cn_headers_t *h, cn_arena_t *arena)
{
    char *names[32];
    size_t n = 0;
    cairn_iov_t vary = CAIRN_IOV_LIT("vary");
    for (ssize_t i = cn_headers_find(h, vary, -1); i >= 0; i = cn_headers_find(h, vary, i)) {
        cairn_iov_t v = h->items[i].value;
        size_t start = 0;
        for (size_t j = 0; j <= v.len; j++) {
            if (j < v.len && v.base[j] != ',')
                continue;
            cairn_iov_t tok = cn_iov_trim(cn_iov(v.base + start, j - start));
            start = j + 1;
            if (tok.len == 0 || n == CN_ARRAY_LEN(names))
                continue;
            char *s = cn_arena_strndup(arena, tok.base, tok.len);
            if (s == NULL)
                continue;
            for (char *c = s; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c + 32);
            if (strcmp(s, "*") == 0)
                return "*";
            bool dup = false;
            for (size_t k = 0; k < n; k++)
                dup = dup || strcmp(names[k], s) == 0;
            if (!dup)
                names[n++] = s;
        }
    }
    if (n == 0)
        return NULL;
    /* Sorted, so "A, B" and "B, A" make the same secondary key. */
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
            char *tmp = names[k];
            names[k] = names[k - 1];
            names[k - 1] = tmp;
        }
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    char *out = cn_arena_xalloc(arena, len + 1);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, names[i]);
    }
    return out;
}

bool
cn_cache_storable(const cn_http_req_t *req, unsigned status, const cn_headers_t *h,
                  const cn_conf_cache_t *conf, const char **why)
{
    struct dirs d;
    response_dirs(h, conf, &d);
    if (req->method_id != CN_METHOD_GET) {
        *why = "method";
        return false;
    }
    /* RFC 6585 §3-§6: 428, 429, 431 and 511 MUST NOT be stored. */
    if (status == 206 || status < 200 || status >= 600 || status == 428 || status == 429 ||
        status == 431 || status == 511) {
        *why = "status";
        return false;
    }
    if (d.no_store && !(d.must_understand && status < 500)) {
        *why = "no-store";
        return false;
    }
    if (d.private_ || d.private_fields || d.no_cache_fields) {
        *why = "private";
        return false;
    }
    if (cn_headers_get(&req->headers, CAIRN_IOV_LIT("authorization")) != NULL &&
        !(d.public_ || d.s_maxage >= 0 || d.must_revalidate)) {
        *why = "authorization";
        return false;
    }
    cn_arena_t tmp;
    cn_arena_init(&tmp, 0);
    const char *vary = cn_cache_vary_names(h, &tmp);
    bool star = vary != NULL && strcmp(vary, "*") == 0;
    cn_arena_fini(&tmp);
    if (star) {
        *why = "vary-star";
        return false;
    }
    bool explicit_fresh =
        d.s_maxage >= 0 || d.max_age >= 0 || cn_headers_get(h, CAIRN_IOV_LIT("expires")) != NULL;
    bool validators = cn_headers_get(h, CAIRN_IOV_LIT("etag")) != NULL ||
                      cn_headers_get(h, CAIRN_IOV_LIT("last-modified")) != NULL;
    bool heuristic = heuristically_cacheable(status) || d.public_;
    if (!explicit_fresh && !heuristic) {
        *why = "status";
        return false;
    }
    /* Without explicit freshness and without validators a response is never reusable. */
    if (!explicit_fresh && !validators) {
        *why = "no-freshness";
        return false;
    }
    return true;
}

void
cn_cache_update_headers(const cn_headers_t *stored, const cn_headers_t *fresh, cn_headers_t *out)
{
    /* Fields of the 304 replace the stored ones, except framing fields (§4.3.4). */
    for (size_t i = 0; i < stored->n; i++) {
        cairn_iov_t name = stored->items[i].name;
        bool replaced =
            !cn_iov_ieq_cstr(name, "content-length") && cn_headers_get(fresh, name) != NULL;
        if (!replaced)
            cn_headers_add_copy(out, name, stored->items[i].value);
    }
    for (size_t i = 0; i < fresh->n; i++) {
        cairn_iov_t name = fresh->items[i].name;
        if (cn_iov_ieq_cstr(name, "content-length") || cn_iov_ieq_cstr(name, "cache-status"))
            continue;
        cn_headers_add_copy(out, name, fresh->items[i].value);
    }
}

bool
cn_cache_method_is_safe(cairn_iov_t m)
{
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < CN_ARRAY_LEN(safe); i++)
        if (cn_iov_eq(m, cn_iov_cstr(safe[i])))
            return true;
    return false;
}

bool
cn_cache_invalidates(cairn_iov_t method, unsigned status)
{
    return !cn_cache_method_is_safe(method) && status >= 200 && status < 400;
}

bool
cn_cache_same_origin_path(const cn_http_req_t *req, cairn_iov_t v, cairn_iov_t *path)
{
    v = cn_iov_trim(v);
    if (v.len > 0 && v.base[0] == '/' && (v.len == 1 || v.base[1] != '/')) {
        *path = v;
        return true;
    }
    /* Absolute URI: same scheme and authority only (§4.4). */
    size_t sl = req->scheme.len;
    if (v.len < sl + 3 || !cn_iov_ieq(cn_iov(v.base, sl), req->scheme) ||
        memcmp(v.base + sl, "://", 3) != 0)
        return false;
    cairn_iov_t rest = cn_iov(v.base + sl + 3, v.len - sl - 3);
    if (rest.len < req->authority.len ||
        !cn_iov_ieq(cn_iov(rest.base, req->authority.len), req->authority))
        return false;
    cairn_iov_t p = cn_iov(rest.base + req->authority.len, rest.len - req->authority.len);
    if (p.len == 0 || p.base[0] != '/')
        return false;
    *path = p;
    return true;
}
