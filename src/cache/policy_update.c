/* SPDX-License-Identifier: MIT */
/* RFC 9111 shared-cache policy, part two: what happens to stored responses around a
 * forwarded request. Validation requests and conditional requests answered from the cache
 * (§4.3.1, §4.3.2), updating stored headers from a 304 or a HEAD (§4.3.4, §4.3.5), and
 * invalidation after an unsafe method (§4.4, with RFC 3986 reference resolution). Pure
 * functions; allocation only from a caller's arena. */
#include "cache/policy.h"
#include "cache/policy_int.h"

#include <sys/types.h>

#include <string.h>
#include <time.h>

#include "core/compiler.h"
#include "core/str.h"
#include "core/time.h"
#include "http/etag.h"

#define LIT CAIRN_IOV_LIT

/* The latest instant cn_time_http_date can format (9999-12-31T23:59:59Z). */
#define HTTP_DATE_MAX ((int64_t)253402300799LL)

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
    if (cn_policy_field_date(stored, LIT("Last-Modified"), &lm))
        v.last_modified = (time_t)lm;
    else
        v.date = (time_t)cn_policy_date_value(stored, response_time);
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
    bool has_lm = cn_policy_has_field(r304, LIT("Last-Modified"));

    if (e == ETAG_BAD)
        return false;
    if (e == ETAG_OK && !weak)
        return se == ETAG_OK && cn_etag_strong_eq(tag, stored_tag);
    if (e == ETAG_OK || has_lm) {
        if (e == ETAG_OK && !(se == ETAG_OK && cn_etag_weak_eq(tag, stored_tag)))
            return false;
        if (has_lm) {
            int64_t lm, stored_lm;
            if (!cn_policy_field_date(r304, LIT("Last-Modified"), &lm) ||
                !cn_policy_field_date(stored, LIT("Last-Modified"), &stored_lm) || lm != stored_lm)
                return false;
        }
        return true;
    }
    return !cn_policy_has_field(stored, LIT("ETag")) &&
           !cn_policy_has_field(stored, LIT("Last-Modified"));
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
    if (cn_policy_is_hop_by_hop(name) || cn_headers_has_token(update, LIT("Connection"), name))
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
    bool synth_date = !cn_policy_has_field(update, LIT("Date")), date_done = false;
    bool keep_age = cn_policy_has_field(update, LIT("Age"));

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
        if (!never_updated(update, update_cc, name) && cn_policy_has_field(update, name)) {
            if (first_of_name(stored, i) && !emit_all(a, &res, update, name))
                return CAIRN_ENOMEM;
            continue;
        }
        if (!emit(a, &res, name, stored->items[i].value))
            return CAIRN_ENOMEM;
    }
    for (size_t j = 0; j < update->n; j++) {
        cairn_iov_t name = update->items[j].name;
        if (never_updated(update, update_cc, name) || cn_policy_has_field(stored, name))
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
        if (cn_policy_has_field(head, validators[i]) &&
            !same_field_value(stored, head, validators[i]))
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
