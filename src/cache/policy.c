/* SPDX-License-Identifier: MIT */
/* RFC 9111 shared-cache policy: storability, freshness, age, reuse, updates, invalidation,
 * Vary. Pure functions over header lists and caller-supplied times. */
#include "cache/policy.h"

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/compiler.h"
#include "core/str.h"
#include "http/token.h"
#include "core/time.h"
#include "http/etag.h"

#define LIT CAIRN_IOV_LIT

/* The latest instant cn_time_http_date can format (9999-12-31T23:59:59Z). */
#define HTTP_DATE_MAX ((int64_t)253402300799LL)

static int64_t
sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t
sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t
clamp_delta(int64_t v)
{
    return v < 0 ? 0 : CN_MIN(v, CN_CC_DELTA_MAX);
}

/* ---- Configuration and directive selection ---- */

void
cn_policy_conf_init(cn_policy_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->target_field = LIT("Cairn-Cache-Control");
    conf->cdn_cache_control = true;
    conf->heuristic_fraction = 0.1;
    conf->heuristic_max = 86400;
}

void
cn_policy_response_cc(const cn_policy_conf_t *conf, const cn_headers_t *resp, cn_cc_t *cc)
{
    if (conf->target_field.len > 0 && cn_cc_parse_targeted(cc, resp, conf->target_field))
        return;
    if (conf->cdn_cache_control && cn_cc_parse_targeted(cc, resp, LIT("CDN-Cache-Control")))
        return;
    cn_cc_parse(cc, resp, LIT("Cache-Control"));
}

/* ---- Status codes ---- */

bool
cn_policy_status_heuristic(unsigned status)
{
    switch (status) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 451:
    case 501:
        return true;
    default:
        return false;
    }
}

bool
cn_policy_status_understood(unsigned status)
{
    if ((status >= 200 && status <= 205) || (status >= 300 && status <= 303) ||
        (status >= 400 && status <= 417) || (status >= 500 && status <= 505))
        return true;
    switch (status) {
    case 307:
    case 308:
    case 421:
    case 422:
    case 426:
    case 428:
    case 429:
    case 431:
    case 451:
    case 511:
        return true;
    default:
        return false;
    }
}

bool
cn_policy_status_is_error(unsigned status)
{
    return status == 500 || status == 502 || status == 503 || status == 504;
}

/* RFC 6585 §3-§6: "Responses with the ... status code MUST NOT be stored by a cache." */
static bool
status_never_stored(unsigned status)
{
    return status == 428 || status == 429 || status == 431 || status == 511;
}

/* ---- Small header helpers ---- */

static bool
has_field(const cn_headers_t *h, cairn_iov_t name)
{
    return cn_headers_find(h, name, -1) >= 0;
}

/* First line of @name as an HTTP-date. */
static bool
field_date(const cn_headers_t *h, cairn_iov_t name, int64_t *out)
{
    const cairn_iov_t *v = cn_headers_get(h, name);
    time_t t;
    if (!v)
        return false;
    cairn_iov_t s = cn_iov_trim(*v);
    if (!cn_time_parse_http_date(s.base, s.len, &t))
        return false;
    *out = (int64_t)t;
    return true;
}

static int64_t
date_value(const cn_headers_t *resp, int64_t response_time)
{
    int64_t d;
    return field_date(resp, LIT("Date"), &d) ? d : response_time;
}

/* Splits a comma list without quoted strings (Vary, Connection): the next trimmed, non-empty
 * element from *@pos. */
static bool
next_item(cairn_iov_t v, size_t *pos, cairn_iov_t *item)
{
    while (*pos < v.len) {
        size_t s = *pos, e = s;
        while (e < v.len && v.base[e] != ',')
            e++;
        *pos = e + 1;
        *item = cn_iov_trim(cn_iov(v.base + s, e - s));
        if (item->len > 0)
            return true;
    }
    return false;
}

/* True when a Vary member is "*" or not a field name (both make the response unusable). */
static bool
vary_is_star(const cn_headers_t *resp)
{
    cairn_iov_t vary = LIT("Vary"), item;
    for (ssize_t i = cn_headers_find(resp, vary, -1); i >= 0; i = cn_headers_find(resp, vary, i)) {
        size_t pos = 0;
        while (next_item(resp->items[i].value, &pos, &item))
            if (!cn_http_is_token(item) || cn_iov_eq(item, LIT("*")))
                return true;
    }
    return false;
}

static void
remove_at(cn_headers_t *h, size_t i)
{
    memmove(&h->items[i], &h->items[i + 1], (h->n - i - 1) * sizeof(h->items[0]));
    h->n--;
}

/* ---- Storing ---- */

cn_policy_store_t
cn_policy_storable(const cn_http_req_t *req, const cn_cc_t *req_cc, unsigned status,
                   const cn_headers_t *resp, const cn_cc_t *resp_cc)
{
    uint32_t f = resp_cc->flags;

    if (!cn_iov_eq(req->method, LIT("GET")))
        return cn_iov_eq(req->method, LIT("HEAD")) ? CN_POLICY_NS_HEAD : CN_POLICY_NS_METHOD;
    if (status < 200 || status > 599 || status_never_stored(status))
        return CN_POLICY_NS_STATUS;
    if (status == 206)
        return CN_POLICY_NS_PARTIAL;
    if (status == 304)
        return CN_POLICY_NS_NOT_MODIFIED;
    if (req_cc && (req_cc->flags & CN_CC_NO_STORE))
        return CN_POLICY_NS_REQ_NO_STORE;
    if (f & CN_CC_MUST_UNDERSTAND) {
        /* §5.2.2.3: understood → no-store is ignored; not understood → never stored. */
        if (!cn_policy_status_understood(status))
            return CN_POLICY_NS_MUST_UNDERSTAND;
    } else if (f & CN_CC_NO_STORE) {
        return CN_POLICY_NS_NO_STORE;
    }
    if (f & CN_CC_PRIVATE)
        return CN_POLICY_NS_PRIVATE;
    if (has_field(&req->headers, LIT("Authorization")) &&
        !(f & (CN_CC_PUBLIC | CN_CC_S_MAXAGE | CN_CC_MUST_REVALIDATE)))
        return CN_POLICY_NS_AUTHORIZATION;
    if (vary_is_star(resp))
        return CN_POLICY_NS_VARY_STAR;
    if (f & (CN_CC_PUBLIC | CN_CC_MAX_AGE | CN_CC_S_MAXAGE))
        return CN_POLICY_STORE;
    if (!resp_cc->targeted && has_field(resp, LIT("Expires")))
        return CN_POLICY_STORE;
    if (cn_policy_status_heuristic(status))
        return CN_POLICY_STORE;
    return CN_POLICY_NS_NOT_CACHEABLE;
}

const char *
cn_policy_store_reason(cn_policy_store_t r)
{
    static const char *const reasons[] = {
        [CN_POLICY_STORE] = "stored",
        [CN_POLICY_NS_METHOD] = "method",
        [CN_POLICY_NS_HEAD] = "head",
        [CN_POLICY_NS_STATUS] = "status",
        [CN_POLICY_NS_PARTIAL] = "partial-content",
        [CN_POLICY_NS_NOT_MODIFIED] = "not-modified",
        [CN_POLICY_NS_REQ_NO_STORE] = "request-no-store",
        [CN_POLICY_NS_MUST_UNDERSTAND] = "must-understand",
        [CN_POLICY_NS_NO_STORE] = "no-store",
        [CN_POLICY_NS_PRIVATE] = "private",
        [CN_POLICY_NS_AUTHORIZATION] = "authorization",
        [CN_POLICY_NS_VARY_STAR] = "vary-star",
        [CN_POLICY_NS_NOT_CACHEABLE] = "not-cacheable",
    };
    if ((size_t)r >= CN_ARRAY_LEN(reasons) || !reasons[r])
        return "unknown";
    return reasons[r];
}

static bool
is_hop_by_hop(cairn_iov_t name)
{
    static const cairn_iov_t hop[] = {LIT("Connection"),        LIT("Keep-Alive"),
                                      LIT("Proxy-Connection"),  LIT("TE"),
                                      LIT("Transfer-Encoding"), LIT("Upgrade")};
    for (size_t i = 0; i < CN_ARRAY_LEN(hop); i++)
        if (cn_iov_ieq(name, hop[i]))
            return true;
    return false;
}

size_t
cn_policy_strip_for_storage(cn_headers_t *h, const cn_cc_t *resp_cc)
{
    size_t removed = 0;
    /* The fields Connection names first: the value slices stay valid while lines move. */
    for (ssize_t i; (i = cn_headers_find(h, LIT("Connection"), -1)) >= 0;) {
        cairn_iov_t v = h->items[i].value, item;
        size_t pos = 0;
        remove_at(h, (size_t)i);
        removed++;
        while (next_item(v, &pos, &item))
            removed += cn_headers_remove(h, item);
    }
    for (size_t i = 0; i < h->n;) {
        cairn_iov_t name = h->items[i].name;
        if (is_hop_by_hop(name) || ((resp_cc->flags & CN_CC_PRIVATE_FIELDS) &&
                                    cn_cc_fields_has(&resp_cc->private_fields, name))) {
            remove_at(h, i);
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

size_t
cn_policy_strip_for_reuse(cn_headers_t *h, const cn_cc_t *resp_cc)
{
    size_t removed = 0;
    if (!(resp_cc->flags & CN_CC_NO_CACHE_FIELDS))
        return 0;
    for (size_t i = 0; i < resp_cc->no_cache_fields.n; i++)
        removed += cn_headers_remove(h, resp_cc->no_cache_fields.names[i]);
    return removed;
}

/* ---- Freshness and age ---- */

/* Expires: the value when every line carries the same valid date. */
static bool
expires_value(const cn_headers_t *resp, int64_t *out)
{
    cairn_iov_t name = LIT("Expires");
    ssize_t first = cn_headers_find(resp, name, -1);
    int64_t t;
    if (first < 0 || !field_date(resp, name, &t))
        return false;
    cairn_iov_t v0 = cn_iov_trim(resp->items[first].value);
    for (ssize_t i = cn_headers_find(resp, name, first); i >= 0; i = cn_headers_find(resp, name, i))
        if (!cn_iov_eq(cn_iov_trim(resp->items[i].value), v0))
            return false;
    *out = t;
    return true;
}

static int64_t
explicit_delta(const cn_cc_t *cc, uint32_t bit, int64_t v)
{
    return (cc->invalid & bit) || v < 0 ? 0 : clamp_delta(v);
}

/* §4.2.2 with the Last-Modified fraction; -1 when it does not apply. */
static int64_t
heuristic_lifetime(const cn_policy_conf_t *conf, const cn_headers_t *resp, int64_t date)
{
    int64_t lm;
    if (!(conf->heuristic_fraction > 0) || conf->heuristic_max <= 0)
        return -1;
    if (!field_date(resp, LIT("Last-Modified"), &lm) || lm > date)
        return -1;
    double h = (double)sat_sub(date, lm) * conf->heuristic_fraction;
    int64_t cap = CN_MIN(conf->heuristic_max, CN_CC_DELTA_MAX);
    return h >= (double)cap ? cap : clamp_delta((int64_t)h);
}

int64_t
cn_policy_freshness_lifetime(const cn_policy_conf_t *conf, unsigned status,
                             const cn_headers_t *resp, const cn_cc_t *resp_cc,
                             int64_t response_time, bool *heuristic)
{
    if (heuristic)
        *heuristic = false;
    if (resp_cc->flags & CN_CC_S_MAXAGE)
        return explicit_delta(resp_cc, CN_CC_S_MAXAGE, resp_cc->s_maxage);
    if (resp_cc->flags & CN_CC_MAX_AGE)
        return explicit_delta(resp_cc, CN_CC_MAX_AGE, resp_cc->max_age);

    int64_t date = date_value(resp, response_time);
    if (!resp_cc->targeted && has_field(resp, LIT("Expires"))) {
        int64_t expires;
        if (!expires_value(resp, &expires))
            return 0; /* §5.3: an invalid date means "already expired" */
        return clamp_delta(sat_sub(expires, date));
    }
    if (!cn_policy_status_heuristic(status) && !(resp_cc->flags & CN_CC_PUBLIC))
        return 0;
    int64_t h = heuristic_lifetime(conf, resp, date);
    if (h < 0)
        return 0;
    if (heuristic)
        *heuristic = true;
    return h;
}

/* §5.1: Age is a singleton, but a list value (or several lines, which combine into one list)
 * counts by its first member; the rest is discarded. A first member that is not delta-seconds
 * makes the field invalid: age 0. Empty list elements are not members (RFC 9110 §5.6.1). */
static int64_t
age_value(const cn_headers_t *resp)
{
    cairn_iov_t name = LIT("Age"), item;
    int64_t v;
    for (ssize_t i = cn_headers_find(resp, name, -1); i >= 0; i = cn_headers_find(resp, name, i)) {
        size_t pos = 0;
        if (next_item(resp->items[i].value, &pos, &item))
            return cn_cc_parse_delta(item, &v) ? v : 0;
    }
    return 0;
}

int64_t
cn_policy_initial_age(const cn_headers_t *resp, int64_t request_time, int64_t response_time)
{
    int64_t apparent_age = CN_MAX(0, sat_sub(response_time, date_value(resp, response_time)));
    int64_t response_delay = CN_MAX(0, sat_sub(response_time, request_time));
    int64_t corrected_age_value = sat_add(age_value(resp), response_delay);
    return clamp_delta(CN_MAX(apparent_age, corrected_age_value));
}

void
cn_policy_meta_init(cn_policy_meta_t *m, const cn_policy_conf_t *conf, unsigned status,
                    const cn_headers_t *resp, const cn_cc_t *resp_cc, int64_t request_time,
                    int64_t response_time)
{
    bool heuristic = false;
    uint32_t f = resp_cc->flags;

    memset(m, 0, sizeof(*m));
    m->request_time = request_time;
    m->response_time = response_time;
    m->date_value = date_value(resp, response_time);
    m->corrected_initial_age = cn_policy_initial_age(resp, request_time, response_time);
    m->lifetime =
        cn_policy_freshness_lifetime(conf, status, resp, resp_cc, response_time, &heuristic);
    m->stale_while_revalidate = resp_cc->stale_while_revalidate;
    m->stale_if_error = resp_cc->stale_if_error;
    if (f & CN_CC_NO_CACHE)
        m->flags |= CN_POLICY_NO_CACHE;
    else if (f & CN_CC_NO_CACHE_FIELDS)
        m->flags |= CN_POLICY_NO_CACHE_FIELDS;
    if (f & (CN_CC_MUST_REVALIDATE | CN_CC_PROXY_REVALIDATE | CN_CC_S_MAXAGE))
        m->flags |= CN_POLICY_NO_STALE;
    if (heuristic)
        m->flags |= CN_POLICY_HEURISTIC;
    if (has_field(resp, LIT("ETag")) || has_field(resp, LIT("Last-Modified")))
        m->flags |= CN_POLICY_VALIDATOR;
    if (f & CN_CC_IMMUTABLE)
        m->flags |= CN_POLICY_IMMUTABLE;
}

int64_t
cn_policy_current_age(const cn_policy_meta_t *m, int64_t now)
{
    int64_t resident_time = CN_MAX(0, sat_sub(now, m->response_time));
    return CN_MAX(0, sat_add(m->corrected_initial_age, resident_time));
}

int64_t
cn_policy_stale_at(const cn_policy_meta_t *m)
{
    return sat_sub(sat_add(m->response_time, m->lifetime), m->corrected_initial_age);
}

int64_t
cn_policy_usable_until(const cn_policy_meta_t *m)
{
    int64_t extra = 0;
    if (!(m->flags & (CN_POLICY_NO_STALE | CN_POLICY_NO_CACHE)))
        extra = CN_MAX(0, CN_MAX(m->stale_while_revalidate, m->stale_if_error));
    return sat_add(cn_policy_stale_at(m), extra);
}

cn_policy_fresh_t
cn_policy_freshness_check(const cn_policy_meta_t *m, const cn_cc_t *req_cc, int64_t now)
{
    cn_cc_t none;
    if (!req_cc) {
        cn_cc_init(&none);
        req_cc = &none;
    }
    if (m->flags & CN_POLICY_NO_CACHE)
        return CN_POLICY_REVALIDATE;
    if (req_cc->flags & CN_CC_NO_CACHE)
        return CN_POLICY_REVALIDATE_REQ;

    int64_t age = cn_policy_current_age(m, now);
    int64_t remaining = sat_sub(m->lifetime, age);
    bool fresh = remaining > 0;

    if (req_cc->max_age >= 0 && age > req_cc->max_age)
        return CN_POLICY_REVALIDATE_REQ;
    if (req_cc->min_fresh >= 0 && remaining < req_cc->min_fresh)
        return fresh ? CN_POLICY_REVALIDATE_REQ : CN_POLICY_REVALIDATE;
    if (fresh)
        return CN_POLICY_FRESH;
    if (m->flags & CN_POLICY_NO_STALE)
        return CN_POLICY_REVALIDATE;

    int64_t staleness = sat_sub(age, m->lifetime);
    if (m->stale_while_revalidate >= 0 && staleness <= m->stale_while_revalidate)
        return CN_POLICY_STALE_SWR;
    if (req_cc->max_stale >= 0 && staleness <= req_cc->max_stale)
        return CN_POLICY_STALE_OK;
    return CN_POLICY_REVALIDATE;
}

const char *
cn_policy_fresh_fwd(cn_policy_fresh_t r)
{
    switch (r) {
    case CN_POLICY_REVALIDATE:
        return "stale";
    case CN_POLICY_REVALIDATE_REQ:
        return "request";
    case CN_POLICY_FRESH:
    case CN_POLICY_STALE_OK:
    case CN_POLICY_STALE_SWR:
        break;
    }
    return NULL;
}

bool
cn_policy_stale_if_error(const cn_policy_meta_t *m, const cn_cc_t *req_cc, int64_t now)
{
    if (m->flags & (CN_POLICY_NO_CACHE | CN_POLICY_NO_STALE))
        return false;
    int64_t staleness = CN_MAX(0, sat_sub(cn_policy_current_age(m, now), m->lifetime));
    if (m->stale_if_error >= 0 && staleness <= m->stale_if_error)
        return true;
    return req_cc && req_cc->stale_if_error >= 0 && staleness <= req_cc->stale_if_error;
}

/* ---- Validation ---- */

#define COND_LINES_MAX 16

bool
cn_policy_add_validators(cn_headers_t *fwd, const cn_headers_t *stored)
{
    const cairn_iov_t *etag = cn_headers_get(stored, LIT("ETag"));
    const cairn_iov_t *lm = cn_headers_get(stored, LIT("Last-Modified"));
    if (!etag && !lm)
        return false;
    cn_headers_remove(fwd, LIT("If-None-Match"));
    cn_headers_remove(fwd, LIT("If-Modified-Since"));
    if (etag)
        cn_headers_add(fwd, LIT("If-None-Match"), cn_iov_trim(*etag));
    if (lm)
        cn_headers_add(fwd, LIT("If-Modified-Since"), cn_iov_trim(*lm));
    return true;
}

cn_cond_result_t
cn_policy_conditional(cairn_iov_t method, const cn_headers_t *req, const cn_headers_t *stored,
                      int64_t response_time)
{
    cn_header_t items[COND_LINES_MAX];
    cn_headers_t view = {items, 0, COND_LINES_MAX, NULL};
    cn_validators_t v;
    int64_t lm;

    if (!cn_iov_eq(method, LIT("GET")) && !cn_iov_eq(method, LIT("HEAD")))
        return CN_COND_PROCEED;
    /* Only the fields that apply to a cache: a view without If-Match / If-Unmodified-Since. */
    for (size_t i = 0; i < req->n; i++) {
        cairn_iov_t name = req->items[i].name;
        if (!cn_iov_ieq(name, LIT("If-None-Match")) && !cn_iov_ieq(name, LIT("If-Modified-Since")))
            continue;
        if (view.n == COND_LINES_MAX)
            return CN_COND_PROCEED;
        items[view.n++] = req->items[i];
    }
    if (view.n == 0)
        return CN_COND_PROCEED;
    memset(&v, 0, sizeof(v));
    v.exists = true;
    const cairn_iov_t *etag = cn_headers_get(stored, LIT("ETag"));
    if (etag)
        v.etag = cn_iov_trim(*etag);
    if (field_date(stored, LIT("Last-Modified"), &lm))
        v.last_modified = (time_t)lm;
    else
        v.date = (time_t)date_value(stored, response_time);
    return cn_cond_evaluate(method, &view, &v) == CN_COND_NOT_MODIFIED ? CN_COND_NOT_MODIFIED
                                                                       : CN_COND_PROCEED;
}

/* ---- Updating stored responses ---- */

enum etag_state { ETAG_NONE, ETAG_OK, ETAG_BAD };

static enum etag_state
get_etag(const cn_headers_t *h, cairn_iov_t *tag, bool *weak)
{
    const cairn_iov_t *v = cn_headers_get(h, LIT("ETag"));
    cairn_iov_t opaque;
    size_t used;
    if (!v)
        return ETAG_NONE;
    *tag = cn_iov_trim(*v);
    if (!cn_etag_parse(*tag, &opaque, weak, &used) || used != tag->len)
        return ETAG_BAD;
    return ETAG_OK;
}

bool
cn_policy_304_matches(const cn_headers_t *stored, const cn_headers_t *r304)
{
    cairn_iov_t tag, stored_tag;
    bool weak = false, stored_weak = false;
    enum etag_state e = get_etag(r304, &tag, &weak);
    enum etag_state se = get_etag(stored, &stored_tag, &stored_weak);
    bool has_lm = has_field(r304, LIT("Last-Modified"));

    if (e == ETAG_BAD)
        return false;
    if (e == ETAG_OK && !weak)
        return se == ETAG_OK && cn_etag_strong_eq(tag, stored_tag);
    if (e == ETAG_OK || has_lm) {
        if (e == ETAG_OK && !(se == ETAG_OK && cn_etag_weak_eq(tag, stored_tag)))
            return false;
        if (has_lm) {
            int64_t lm, stored_lm;
            if (!field_date(r304, LIT("Last-Modified"), &lm) ||
                !field_date(stored, LIT("Last-Modified"), &stored_lm) || lm != stored_lm)
                return false;
        }
        return true;
    }
    return !has_field(stored, LIT("ETag")) && !has_field(stored, LIT("Last-Modified"));
}

/* Fields an update never changes (§4.3.4 and §3.1). */
static bool
never_updated(const cn_headers_t *update, const cn_cc_t *update_cc, cairn_iov_t name)
{
    static const cairn_iov_t fixed[] = {LIT("Content-Length"), LIT("Content-Range"),
                                        LIT("Content-Encoding")};
    for (size_t i = 0; i < CN_ARRAY_LEN(fixed); i++)
        if (cn_iov_ieq(name, fixed[i]))
            return true;
    if (is_hop_by_hop(name) || cn_headers_has_token(update, LIT("Connection"), name))
        return true;
    return update_cc && (update_cc->flags & CN_CC_PRIVATE_FIELDS) &&
           cn_cc_fields_has(&update_cc->private_fields, name);
}

static bool
is_private_field(const cn_cc_t *cc, cairn_iov_t name)
{
    return cc && (cc->flags & CN_CC_PRIVATE_FIELDS) && cn_cc_fields_has(&cc->private_fields, name);
}

static bool
dup_iov(cn_arena_t *a, cairn_iov_t s, cairn_iov_t *out)
{
    char *p = cn_arena_alloc(a, s.len + 1);
    if (!p)
        return false;
    if (s.len)
        memcpy(p, s.base, s.len);
    p[s.len] = '\0';
    *out = cn_iov(p, s.len);
    return true;
}

static bool
emit(cn_arena_t *a, cn_headers_t *out, cairn_iov_t name, cairn_iov_t value)
{
    cn_header_t *item = &out->items[out->n];
    if (!dup_iov(a, name, &item->name) || !dup_iov(a, value, &item->value))
        return false;
    out->n++;
    return true;
}

/* Whether stored line @i is the first of its name. */
static bool
first_of_name(const cn_headers_t *h, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (cn_iov_ieq(h->items[k].name, h->items[i].name))
            return false;
    return true;
}

static bool
emit_all(cn_arena_t *a, cn_headers_t *out, const cn_headers_t *from, cairn_iov_t name)
{
    for (ssize_t j = cn_headers_find(from, name, -1); j >= 0; j = cn_headers_find(from, name, j))
        if (!emit(a, out, from->items[j].name, from->items[j].value))
            return false;
    return true;
}

cairn_err_t
cn_policy_update_headers(cn_arena_t *a, const cn_headers_t *stored, const cn_headers_t *update,
                         const cn_cc_t *update_cc, int64_t response_time, cn_headers_t *out)
{
    cn_headers_t res;
    char date[30];
    bool synth_date = !has_field(update, LIT("Date")), date_done = false;
    bool keep_age = has_field(update, LIT("Age"));

    cn_headers_init(&res, a);
    res.cap = stored->n + update->n + 1;
    res.items = cn_arena_alloc(a, res.cap * sizeof(*res.items));
    if (!res.items)
        return CAIRN_ENOMEM;
    if (synth_date)
        cn_time_http_date((time_t)CN_MAX(0, CN_MIN(response_time, HTTP_DATE_MAX)), date);

    for (size_t i = 0; i < stored->n; i++) {
        cairn_iov_t name = stored->items[i].name;
        if (is_private_field(update_cc, name))
            continue;
        if (cn_iov_ieq(name, LIT("Age")) && !keep_age)
            continue;
        if (synth_date && cn_iov_ieq(name, LIT("Date"))) {
            if (!date_done && !emit(a, &res, LIT("Date"), cn_iov(date, 29)))
                return CAIRN_ENOMEM;
            date_done = true;
            continue;
        }
        if (!never_updated(update, update_cc, name) && has_field(update, name)) {
            if (first_of_name(stored, i) && !emit_all(a, &res, update, name))
                return CAIRN_ENOMEM;
            continue;
        }
        if (!emit(a, &res, name, stored->items[i].value))
            return CAIRN_ENOMEM;
    }
    for (size_t j = 0; j < update->n; j++) {
        cairn_iov_t name = update->items[j].name;
        if (never_updated(update, update_cc, name) || has_field(stored, name))
            continue;
        if (!emit(a, &res, name, update->items[j].value))
            return CAIRN_ENOMEM;
    }
    if (synth_date && !date_done && !emit(a, &res, LIT("Date"), cn_iov(date, 29)))
        return CAIRN_ENOMEM;
    *out = res;
    return CAIRN_OK;
}

static bool
same_field_value(const cn_headers_t *a, const cn_headers_t *b, cairn_iov_t name)
{
    const cairn_iov_t *va = cn_headers_get(a, name), *vb = cn_headers_get(b, name);
    return va && vb && cn_iov_eq(cn_iov_trim(*va), cn_iov_trim(*vb));
}

cn_policy_head_t
cn_policy_head_update(unsigned status, const cn_headers_t *stored, int64_t stored_length,
                      const cn_headers_t *head)
{
    static const cairn_iov_t validators[] = {LIT("ETag"), LIT("Last-Modified")};
    if (status != 200)
        return CN_POLICY_HEAD_IGNORE;
    for (size_t i = 0; i < CN_ARRAY_LEN(validators); i++)
        if (has_field(head, validators[i]) && !same_field_value(stored, head, validators[i]))
            return CN_POLICY_HEAD_INVALIDATE;

    const cairn_iov_t *cl = cn_headers_get(head, LIT("Content-Length"));
    if (cl) {
        uint64_t head_len, len;
        const cairn_iov_t *scl = cn_headers_get(stored, LIT("Content-Length"));
        if (!cn_parse_u64(cn_iov_trim(*cl), &head_len))
            return CN_POLICY_HEAD_INVALIDATE;
        if (stored_length >= 0)
            len = (uint64_t)stored_length;
        else if (!scl || !cn_parse_u64(cn_iov_trim(*scl), &len))
            return CN_POLICY_HEAD_INVALIDATE;
        if (len != head_len)
            return CN_POLICY_HEAD_INVALIDATE;
    }
    return CN_POLICY_HEAD_UPDATE;
}

/* ---- Invalidation ---- */

bool
cn_policy_method_is_safe(cairn_iov_t method)
{
    return cn_iov_eq(method, LIT("GET")) || cn_iov_eq(method, LIT("HEAD")) ||
           cn_iov_eq(method, LIT("OPTIONS")) || cn_iov_eq(method, LIT("TRACE"));
}

bool
cn_policy_invalidates(cairn_iov_t method, unsigned status)
{
    return !cn_policy_method_is_safe(method) && status >= 200 && status < 400;
}

struct origin {
    cairn_iov_t scheme;
    cairn_iov_t host;
    long port; /* -1 = the scheme has no known default */
};

static long
default_port(cairn_iov_t scheme)
{
    if (cn_iov_ieq(scheme, LIT("http")))
        return 80;
    if (cn_iov_ieq(scheme, LIT("https")))
        return 443;
    return -1;
}

/* authority = host [ ":" port ]; userinfo is refused. */
static bool
parse_authority(cairn_iov_t scheme, cairn_iov_t auth, struct origin *o)
{
    size_t i = 0;
    if (auth.len == 0 || memchr(auth.base, '@', auth.len))
        return false;
    if (auth.base[0] == '[') {
        const char *close = memchr(auth.base, ']', auth.len);
        if (!close)
            return false;
        i = (size_t)(close - auth.base) + 1;
    } else {
        while (i < auth.len && auth.base[i] != ':')
            i++;
    }
    o->scheme = scheme;
    o->host = cn_iov(auth.base, i);
    o->port = default_port(scheme);
    if (o->host.len == 0)
        return false;
    if (i == auth.len)
        return true;
    if (auth.base[i] != ':')
        return false;
    cairn_iov_t port = cn_iov(auth.base + i + 1, auth.len - i - 1);
    uint64_t p;
    if (port.len == 0)
        return true;
    if (!cn_parse_u64(port, &p) || p > 65535)
        return false;
    o->port = (long)p;
    return true;
}

static bool
same_origin(const struct origin *a, const struct origin *b)
{
    return cn_iov_ieq(a->scheme, b->scheme) && cn_iov_ieq(a->host, b->host) && a->port == b->port;
}

/* RFC 3986 §5.2.4 over @in (modified), into @out; returns the output length. */
static size_t
remove_dot_segments(char *in, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        const char *p = in + i;
        size_t rem = n - i;
        if (rem >= 3 && memcmp(p, "../", 3) == 0) {
            i += 3;
        } else if (rem >= 2 && memcmp(p, "./", 2) == 0) {
            i += 2;
        } else if (rem >= 3 && memcmp(p, "/./", 3) == 0) {
            i += 2;
        } else if (rem == 2 && memcmp(p, "/.", 2) == 0) {
            i += 1;
            in[i] = '/';
        } else if ((rem >= 4 && memcmp(p, "/../", 4) == 0) ||
                   (rem == 3 && memcmp(p, "/..", 3) == 0)) {
            if (rem == 3) {
                i += 2;
                in[i] = '/';
            } else {
                i += 3;
            }
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else if ((rem == 1 && p[0] == '.') || (rem == 2 && memcmp(p, "..", 2) == 0)) {
            i = n;
        } else {
            size_t j = i + (in[i] == '/');
            while (j < n && in[j] != '/')
                j++;
            memcpy(out + o, in + i, j - i);
            o += j - i;
            i = j;
        }
    }
    return o;
}

static bool
has_scheme(cairn_iov_t ref, size_t *colon)
{
    if (ref.len == 0 || !((ref.base[0] | 0x20) >= 'a' && (ref.base[0] | 0x20) <= 'z'))
        return false;
    for (size_t i = 1; i < ref.len; i++) {
        char c = ref.base[i];
        if (c == ':') {
            *colon = i;
            return true;
        }
        if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '-' || c == '.'))
            return false;
    }
    return false;
}

static bool
uri_chars_ok(cairn_iov_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* Writes "/" + remove_dot_segments(@dir + @path) + @query into @a. */
static cairn_err_t
build_target(cn_arena_t *a, cairn_iov_t dir, cairn_iov_t path, cairn_iov_t query, cairn_iov_t *out)
{
    size_t in_len = dir.len + path.len;
    char *in = cn_arena_alloc(a, in_len + 1);
    char *res = cn_arena_alloc(a, in_len + 1 + query.len + 1);
    if (!in || !res)
        return CAIRN_ENOMEM;
    if (dir.len)
        memcpy(in, dir.base, dir.len);
    if (path.len)
        memcpy(in + dir.len, path.base, path.len);
    size_t n = remove_dot_segments(in, in_len, res + 1);
    if (n == 0 || res[1] != '/') {
        res[0] = '/';
        n++;
    } else {
        memmove(res, res + 1, n);
    }
    if (query.len)
        memcpy(res + n, query.base, query.len);
    n += query.len;
    res[n] = '\0';
    *out = cn_iov(res, n);
    return CAIRN_OK;
}

/* Resolves @ref against @req (RFC 3986 §5.2) into an origin-form target; *@ok is false when
 * it is not a same-origin URI reference. */
static cairn_err_t
resolve_target(cn_arena_t *a, const cn_http_req_t *req, const struct origin *base, cairn_iov_t ref,
               cairn_iov_t *out, bool *ok)
{
    size_t colon;
    struct origin o;
    const char *hash = memchr(ref.base, '#', ref.len);
    *ok = false;
    if (hash)
        ref.len = (size_t)(hash - ref.base);
    if (ref.len == 0 || !uri_chars_ok(ref))
        return CAIRN_OK;

    cairn_iov_t scheme = base->scheme, rest = ref;
    if (has_scheme(ref, &colon)) {
        scheme = cn_iov(ref.base, colon);
        rest = cn_iov(ref.base + colon + 1, ref.len - colon - 1);
        if (rest.len < 2 || memcmp(rest.base, "//", 2) != 0)
            return CAIRN_OK;
    }
    cairn_iov_t dir = cn_iov(NULL, 0);
    if (rest.len >= 2 && memcmp(rest.base, "//", 2) == 0) {
        size_t e = 2;
        while (e < rest.len && rest.base[e] != '/' && rest.base[e] != '?')
            e++;
        if (!parse_authority(scheme, cn_iov(rest.base + 2, e - 2), &o) || !same_origin(&o, base))
            return CAIRN_OK;
        rest = cn_iov(rest.base + e, rest.len - e);
    } else if (rest.base[0] == '?') {
        dir = req->path; /* §5.2.2: "?query" keeps the base path */
    } else if (rest.base[0] != '/') {
        /* §5.2.3 merge: the base path up to and including its last "/". */
        const char *slash = req->path.len ? memrchr(req->path.base, '/', req->path.len) : NULL;
        dir = slash ? cn_iov(req->path.base, (size_t)(slash - req->path.base) + 1) : cn_iov("/", 1);
    }

    const char *q = rest.len ? memchr(rest.base, '?', rest.len) : NULL;
    cairn_iov_t path = cn_iov(rest.base, q ? (size_t)(q - rest.base) : rest.len);
    cairn_iov_t query = q ? cn_iov(q, rest.len - path.len) : cn_iov(NULL, 0);
    cairn_err_t err = build_target(a, dir, path, query, out);
    *ok = err == CAIRN_OK;
    return err;
}

cairn_err_t
cn_policy_invalidation_targets(cn_arena_t *a, const cn_http_req_t *req, const cn_headers_t *resp,
                               cairn_iov_t out[2], size_t *n)
{
    static const cairn_iov_t fields[] = {LIT("Location"), LIT("Content-Location")};
    cairn_iov_t found[2];
    size_t count = 0;
    struct origin base;

    if (!parse_authority(req->scheme, req->authority, &base)) {
        *n = 0;
        return CAIRN_OK;
    }
    for (size_t f = 0; f < CN_ARRAY_LEN(fields); f++) {
        ssize_t i = cn_headers_find(resp, fields[f], -1);
        if (i < 0 || cn_headers_find(resp, fields[f], i) >= 0)
            continue;
        cairn_iov_t target;
        bool ok;
        cairn_err_t err =
            resolve_target(a, req, &base, cn_iov_trim(resp->items[i].value), &target, &ok);
        if (err != CAIRN_OK)
            return err;
        if (ok && !(count == 1 && cn_iov_eq(found[0], target)))
            found[count++] = target;
    }
    for (size_t i = 0; i < count; i++)
        out[i] = found[i];
    *n = count;
    return CAIRN_OK;
}

/* ---- Vary ---- */

static int
cmp_iov(const void *pa, const void *pb)
{
    const cairn_iov_t *a = pa, *b = pb;
    size_t n = CN_MIN(a->len, b->len);
    int c = n ? memcmp(a->base, b->base, n) : 0;
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Writes one byte of a key value (escaped when needed) at @out + *@w (when @out is set). */
static void
put_byte(char *out, size_t *w, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    if (c < 0x20 || c == 0x7f || c == '%') {
        if (out) {
            out[*w] = '%';
            out[*w + 1] = hex[c >> 4];
            out[*w + 2] = hex[c & 15];
        }
        *w += 3;
        return;
    }
    if (out)
        out[*w] = (char)c;
    (*w)++;
}

/* The normalised value of every @req line named @name (see cn_policy_vary_key). Returns its
 * length; writes it at @out when @out is not NULL. */
static size_t
normalise_field(const cn_headers_t *req, cairn_iov_t name, char *out)
{
    size_t w = 0;
    bool first = true;
    for (ssize_t i = cn_headers_find(req, name, -1); i >= 0; i = cn_headers_find(req, name, i)) {
        cairn_iov_t v = req->items[i].value;
        bool quoted = false, pending_ws = false, at_start = true;
        if (!first)
            put_byte(out, &w, ',');
        first = false;
        for (size_t k = 0; k < v.len; k++) {
            unsigned char c = (unsigned char)v.base[k];
            if (quoted) {
                put_byte(out, &w, c);
                if (c == '\\' && k + 1 < v.len)
                    put_byte(out, &w, (unsigned char)v.base[++k]);
                else if (c == '"')
                    quoted = false;
                continue;
            }
            if (c == ' ' || c == '\t') {
                pending_ws = true;
                continue;
            }
            if (c == ',') {
                put_byte(out, &w, ',');
                pending_ws = false;
                at_start = true;
                continue;
            }
            if (pending_ws && !at_start)
                put_byte(out, &w, ' ');
            pending_ws = false;
            at_start = false;
            if (c == '"')
                quoted = true;
            put_byte(out, &w, c);
        }
    }
    return w;
}

/* Fields whose members are compared as a set-like list (see cn_policy_vary_key); @name is
 * lowercased. */
static bool
is_list_compared(cairn_iov_t name)
{
    return cn_iov_eq(name, LIT("accept-encoding")) || cn_iov_eq(name, LIT("accept-language"));
}

static bool
has_dquote(const cn_headers_t *req, cairn_iov_t name)
{
    for (ssize_t i = cn_headers_find(req, name, -1); i >= 0; i = cn_headers_find(req, name, i))
        if (req->items[i].value.len &&
            memchr(req->items[i].value.base, '"', req->items[i].value.len))
            return true;
    return false;
}

/* The members of every @req line named @name, each lowercased with its whitespace removed
 * (q-values stay part of the member, uninterpreted), sorted and joined with ",", escaped as
 * put_byte does, in @a. */
static cairn_err_t
list_value(cn_arena_t *a, const cn_headers_t *req, cairn_iov_t name, cairn_iov_t *out)
{
    size_t count = 0, total = 0, pos, w = 0;
    cairn_iov_t item;
    for (ssize_t i = cn_headers_find(req, name, -1); i >= 0; i = cn_headers_find(req, name, i))
        for (pos = 0; next_item(req->items[i].value, &pos, &item);) {
            count++;
            total += item.len;
        }
    cairn_iov_t *members = cn_arena_alloc(a, (count + 1) * sizeof(*members));
    char *bytes = cn_arena_alloc(a, total + 1);
    if (!members || !bytes)
        return CAIRN_ENOMEM;
    size_t n = 0, used = 0;
    for (ssize_t i = cn_headers_find(req, name, -1); i >= 0; i = cn_headers_find(req, name, i))
        for (pos = 0; next_item(req->items[i].value, &pos, &item); n++) {
            char *m = bytes + used;
            for (size_t k = 0; k < item.len; k++) {
                char c = item.base[k];
                if (c != ' ' && c != '\t')
                    bytes[used++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            members[n] = cn_iov(m, (size_t)(bytes + used - m));
        }
    qsort(members, n, sizeof(*members), cmp_iov);
    for (size_t i = 0; i < n; i++) {
        w += i > 0;
        for (size_t k = 0; k < members[i].len; k++)
            put_byte(NULL, &w, (unsigned char)members[i].base[k]);
    }
    char *val = cn_arena_alloc(a, w + 1);
    if (!val)
        return CAIRN_ENOMEM;
    w = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            val[w++] = ',';
        for (size_t k = 0; k < members[i].len; k++)
            put_byte(val, &w, (unsigned char)members[i].base[k]);
    }
    *out = cn_iov(val, w);
    return CAIRN_OK;
}

/* The normalised value of @req's @name lines for the secondary key, in @a: a list for
 * Accept-Encoding and Accept-Language (unless a line holds a quoted string, which their
 * grammar does not allow), normalise_field otherwise. out->base is never NULL. */
static cairn_err_t
field_value(cn_arena_t *a, const cn_headers_t *req, cairn_iov_t name, cairn_iov_t *out)
{
    if (is_list_compared(name) && !has_dquote(req, name))
        return list_value(a, req, name, out);
    size_t n = normalise_field(req, name, NULL);
    char *p = cn_arena_alloc(a, n + 1);
    if (!p)
        return CAIRN_ENOMEM;
    normalise_field(req, name, p);
    *out = cn_iov(p, n);
    return CAIRN_OK;
}

/* The lowercased, sorted, deduplicated Vary names of @resp in @a. */
static cairn_err_t
vary_names(cn_arena_t *a, const cn_headers_t *resp, cairn_iov_t **names, size_t *count)
{
    cairn_iov_t vary = LIT("Vary"), item;
    size_t cap = 0, n = 0;
    for (ssize_t i = cn_headers_find(resp, vary, -1); i >= 0; i = cn_headers_find(resp, vary, i)) {
        size_t pos = 0;
        while (next_item(resp->items[i].value, &pos, &item))
            cap++;
    }
    *names = NULL;
    *count = 0;
    if (cap == 0)
        return CAIRN_OK;
    cairn_iov_t *list = cn_arena_alloc(a, cap * sizeof(*list));
    if (!list)
        return CAIRN_ENOMEM;
    for (ssize_t i = cn_headers_find(resp, vary, -1); i >= 0; i = cn_headers_find(resp, vary, i)) {
        size_t pos = 0;
        while (next_item(resp->items[i].value, &pos, &item)) {
            char *p = cn_arena_alloc(a, item.len);
            if (!p)
                return CAIRN_ENOMEM;
            for (size_t k = 0; k < item.len; k++) {
                char c = item.base[k];
                p[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            list[n++] = cn_iov(p, item.len);
        }
    }
    qsort(list, n, sizeof(*list), cmp_iov);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || !cn_iov_eq(list[u - 1], list[i]))
            list[u++] = list[i];
    *names = list;
    *count = u;
    return CAIRN_OK;
}

cairn_err_t
cn_policy_vary_key(cn_arena_t *a, const cn_headers_t *resp, const cn_headers_t *req,
                   cairn_iov_t *key, bool *star)
{
    cairn_iov_t *names, *values = NULL;
    size_t count, len = 0;

    if (vary_is_star(resp)) {
        *key = cn_iov("", 0);
        *star = true;
        return CAIRN_OK;
    }
    cairn_err_t err = vary_names(a, resp, &names, &count);
    if (err != CAIRN_OK)
        return err;
    if (count > 0 && !(values = cn_arena_alloc(a, count * sizeof(*values))))
        return CAIRN_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        /* values[i].base NULL: the request has no such field ("name" alone in the key). */
        values[i] = cn_iov(NULL, 0);
        if (has_field(req, names[i])) {
            err = field_value(a, req, names[i], &values[i]);
            if (err != CAIRN_OK)
                return err;
        }
        len += (i > 0) + names[i].len + (values[i].base ? 1 + values[i].len : 0);
    }
    char *buf = cn_arena_alloc(a, len + 1);
    if (!buf)
        return CAIRN_ENOMEM;
    size_t w = 0;
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            buf[w++] = '\n';
        memcpy(buf + w, names[i].base, names[i].len);
        w += names[i].len;
        if (!values[i].base)
            continue;
        buf[w++] = ':';
        if (values[i].len)
            memcpy(buf + w, values[i].base, values[i].len);
        w += values[i].len;
    }
    buf[w] = '\0';
    *key = cn_iov(buf, w);
    *star = false;
    return CAIRN_OK;
}
