/* SPDX-License-Identifier: MIT */
/* RFC 9111 shared-cache policy, part one: storability (§3), freshness (§4.2.1, §4.2.2, RFC
 * 9213), age (§4.2.3) and whether a stored response may be reused (§4, §4.2.4, RFC 5861).
 * Also owns the small header helpers the other parts share (policy_int.h). Validation,
 * updates and invalidation are in policy_update.c; the Vary secondary key is in vary.c.
 * Pure functions over header lists and caller-supplied times. */
#include "cache/policy.h"
#include "cache/policy_int.h"

#include <sys/types.h>

#include <string.h>
#include <time.h>

#include "core/compiler.h"
#include "core/str.h"
#include "core/time.h"

#define LIT CAIRN_IOV_LIT

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

bool
cn_policy_has_field(const cn_headers_t *h, cairn_iov_t name)
{
    return cn_headers_find(h, name, -1) >= 0;
}

/* First line of @name as an HTTP-date. */
bool
cn_policy_field_date(const cn_headers_t *h, cairn_iov_t name, int64_t *out)
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

int64_t
cn_policy_date_value(const cn_headers_t *resp, int64_t response_time)
{
    int64_t d;
    return cn_policy_field_date(resp, LIT("Date"), &d) ? d : response_time;
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
    if (cn_policy_has_field(&req->headers, LIT("Authorization")) &&
        !(f & (CN_CC_PUBLIC | CN_CC_S_MAXAGE | CN_CC_MUST_REVALIDATE)))
        return CN_POLICY_NS_AUTHORIZATION;
    if (cn_policy_vary_is_star(resp))
        return CN_POLICY_NS_VARY_STAR;
    if (f & (CN_CC_PUBLIC | CN_CC_MAX_AGE | CN_CC_S_MAXAGE))
        return CN_POLICY_STORE;
    if (!resp_cc->targeted && cn_policy_has_field(resp, LIT("Expires")))
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

bool
cn_policy_is_hop_by_hop(cairn_iov_t name)
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
        while (cn_iov_next_item(v, ',', &pos, &item))
            removed += cn_headers_remove(h, item);
    }
    for (size_t i = 0; i < h->n;) {
        cairn_iov_t name = h->items[i].name;
        if (cn_policy_is_hop_by_hop(name) || ((resp_cc->flags & CN_CC_PRIVATE_FIELDS) &&
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
    if (first < 0 || !cn_policy_field_date(resp, name, &t))
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
    if (!cn_policy_field_date(resp, LIT("Last-Modified"), &lm) || lm > date)
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

    int64_t date = cn_policy_date_value(resp, response_time);
    if (!resp_cc->targeted && cn_policy_has_field(resp, LIT("Expires"))) {
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
        if (cn_iov_next_item(resp->items[i].value, ',', &pos, &item))
            return cn_cc_parse_delta(item, &v) ? v : 0;
    }
    return 0;
}

int64_t
cn_policy_initial_age(const cn_headers_t *resp, int64_t request_time, int64_t response_time)
{
    int64_t apparent_age =
        CN_MAX(0, sat_sub(response_time, cn_policy_date_value(resp, response_time)));
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
    m->date_value = cn_policy_date_value(resp, response_time);
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
    if (cn_policy_has_field(resp, LIT("ETag")) || cn_policy_has_field(resp, LIT("Last-Modified")))
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
