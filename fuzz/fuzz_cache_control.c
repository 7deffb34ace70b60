/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the Cache-Control / targeted-field parser and the RFC 9111 policy.
 * Input: 4 bytes of parameters (status, method and flags, clock offsets), then '\n'-separated
 * field values; '\r' inside one splits it into several field lines:
 *   Cache-Control \n CDN-Cache-Control \n Vary \n Expires \n Date \n Age \n Last-Modified \n
 *   request Cache-Control \n Location \n Content-Location \n request field "name: value" ...
 * An empty segment is an absent field. Invariants are checked with __builtin_trap(). */
#include <stdint.h>
#include <string.h>

#include "cache/policy.h"
#include "core/arena.h"
#include "core/str.h"
#include "http/cache_control.h"
#include "http/headers.h"
#include "http/msg.h"

#define CHECK(e)                                                                                   \
    do {                                                                                           \
        if (!(e))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

enum {
    F_CC,
    F_CDN,
    F_VARY,
    F_EXPIRES,
    F_DATE,
    F_AGE,
    F_LM,
    F_REQ_CC,
    F_LOCATION,
    F_CONTENT_LOCATION,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "Cache-Control", "CDN-Cache-Control", "Vary",          "Expires",  "Date",
    "Age",           "Last-Modified",     "Cache-Control", "Location", "Content-Location",
};

static const unsigned statuses[16] = {200, 203, 204, 206, 299, 301, 302, 304,
                                      404, 418, 429, 451, 500, 501, 503, 103};

#define T0 ((int64_t)784111777)
#define ALL_CC_BITS ((1u << 19) - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool
cc_equal(const cn_cc_t *a, const cn_cc_t *b)
{
    if (a->flags != b->flags || a->invalid != b->invalid || a->targeted != b->targeted ||
        a->max_age != b->max_age || a->s_maxage != b->s_maxage || a->max_stale != b->max_stale ||
        a->min_fresh != b->min_fresh || a->stale_while_revalidate != b->stale_while_revalidate ||
        a->stale_if_error != b->stale_if_error || a->no_cache_fields.n != b->no_cache_fields.n ||
        a->private_fields.n != b->private_fields.n)
        return false;
    for (size_t i = 0; i < a->no_cache_fields.n; i++)
        if (!cn_iov_eq(a->no_cache_fields.names[i], b->no_cache_fields.names[i]))
            return false;
    for (size_t i = 0; i < a->private_fields.n; i++)
        if (!cn_iov_eq(a->private_fields.names[i], b->private_fields.names[i]))
            return false;
    return true;
}

static void
check_delta(int64_t v, bool allow_unlimited)
{
    CHECK(v >= -1 && (v <= CN_CC_DELTA_MAX || (allow_unlimited && v == CN_CC_UNLIMITED)));
}

static void
check_fields(const cn_cc_fields_t *f)
{
    CHECK(f->n <= CN_CC_FIELDS_MAX);
    for (size_t i = 0; i < f->n; i++) {
        CHECK(f->names[i].len > 0);
        for (size_t k = 0; k < f->names[i].len; k++)
            CHECK(is_tchar((unsigned char)f->names[i].base[k]));
        for (size_t j = 0; j < i; j++)
            CHECK(!cn_iov_ieq(f->names[i], f->names[j]));
    }
}

static void
check_cc(const cn_cc_t *cc)
{
    CHECK((cc->flags & ~ALL_CC_BITS) == 0);
    CHECK((cc->invalid & ~cc->flags) == 0);
    check_delta(cc->max_age, false);
    check_delta(cc->s_maxage, false);
    check_delta(cc->max_stale, true);
    check_delta(cc->min_fresh, false);
    check_delta(cc->stale_while_revalidate, false);
    check_delta(cc->stale_if_error, false);
    check_fields(&cc->no_cache_fields);
    check_fields(&cc->private_fields);
    /* A valid value implies the directive occurred. */
    CHECK(cc->max_age < 0 || (cc->flags & CN_CC_MAX_AGE));
    CHECK(cc->s_maxage < 0 || (cc->flags & CN_CC_S_MAXAGE));
    CHECK(cc->no_cache_fields.n == 0 || (cc->flags & CN_CC_NO_CACHE_FIELDS));
}

/* Parses one segment both ways and checks the parser's own invariants. */
static void
check_parsers(const cn_headers_t *h, cairn_iov_t name, cairn_iov_t joined)
{
    cn_cc_t a, b, c;

    cn_cc_parse(&a, h, name);
    check_cc(&a);
    CHECK(!a.targeted);
    cn_cc_parse(&b, h, name);
    CHECK(cc_equal(&a, &b));
    /* Every line added twice changes nothing: duplicates are identical. */
    for (ssize_t i = cn_headers_find(h, name, -1); i >= 0; i = cn_headers_find(h, name, i))
        cn_cc_add_value(&b, h->items[i].value);
    CHECK(cc_equal(&a, &b));
    /* Without quotes, lines behave as one comma-joined line. */
    if (joined.base && !memchr(joined.base, '"', joined.len)) {
        cn_cc_init(&c);
        cn_cc_add_value(&c, joined);
        CHECK(c.flags == a.flags && c.invalid == a.invalid && c.max_age == a.max_age &&
              c.max_stale == a.max_stale && c.no_cache_fields.n == a.no_cache_fields.n);
    }

    memset(&c, 0xa5, sizeof(c));
    cn_cc_t sentinel = c;
    bool ok = cn_cc_parse_targeted(&c, h, name);
    if (!ok) {
        CHECK(memcmp(&c, &sentinel, sizeof(c)) == 0);
        return;
    }
    check_cc(&c);
    CHECK(c.targeted);
    CHECK(cn_headers_find(h, name, -1) >= 0);
    /* Structured Fields: the dictionary repeated is the same dictionary (last key wins). */
    if (joined.base) {
        cn_cc_t d;
        CHECK(cn_cc_parse_targeted_value(&d, joined));
        CHECK(cc_equal(&c, &d));
    }
}

struct input {
    cairn_iov_t seg[F_COUNT];
    bool present[F_COUNT];
    const uint8_t *rest;
    size_t rest_len;
};

static void
split_input(const uint8_t *p, size_t n, struct input *in)
{
    memset(in, 0, sizeof(*in));
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= n && k < F_COUNT; i++) {
        if (i < n && p[i] != '\n')
            continue;
        in->seg[k] = cn_iov((const char *)p + start, i - start);
        in->present[k] = i > start;
        k++;
        start = i + 1;
    }
    if (start < n) {
        in->rest = p + start;
        in->rest_len = n - start;
    }
}

/* Adds segment @s as one field line per '\r'-separated piece. */
static void
add_lines(cn_headers_t *h, const char *name, cairn_iov_t s)
{
    size_t start = 0;
    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.base[i] != '\r')
            continue;
        cn_headers_add(h, cn_iov_cstr(name), cn_iov(s.base + start, i - start));
        start = i + 1;
    }
}

/* Joins the '\r' pieces of @s with ", " into @buf (NULL base when it does not fit), and for
 * the Structured Field check writes the value twice. */
static cairn_iov_t
join(cairn_iov_t s, char *buf, size_t cap, bool twice)
{
    size_t w = 0;
    for (int round = 0; round < (twice ? 2 : 1); round++) {
        for (size_t i = 0; i < s.len; i++) {
            if (w + 2 > cap)
                return cn_iov(NULL, 0);
            if (s.base[i] == '\r') {
                buf[w++] = ',';
                buf[w++] = ' ';
            } else {
                buf[w++] = s.base[i];
            }
        }
        if (round == 0 && twice) {
            if (w + 2 > cap)
                return cn_iov(NULL, 0);
            buf[w++] = ',';
            buf[w++] = ' ';
        }
    }
    return cn_iov(buf, w);
}

static void
check_freshness(const cn_policy_meta_t *m, const cn_cc_t *req_cc, int64_t now)
{
    static const int64_t steps[] = {0, 1, 59, 3600, 86400, 2147483648LL};
    int64_t prev_age = -1;
    CHECK(m->lifetime >= 0 && m->lifetime <= CN_CC_DELTA_MAX);
    CHECK(m->corrected_initial_age >= 0 && m->corrected_initial_age <= CN_CC_DELTA_MAX);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        int64_t t = now + steps[i];
        int64_t age = cn_policy_current_age(m, t);
        CHECK(age >= m->corrected_initial_age && age >= prev_age);
        prev_age = age;
        cn_policy_fresh_t r = cn_policy_freshness_check(m, req_cc, t);
        CHECK(r <= CN_POLICY_REVALIDATE_REQ);
        if (r == CN_POLICY_FRESH)
            CHECK(m->lifetime > age && !(m->flags & CN_POLICY_NO_CACHE));
        if (r == CN_POLICY_STALE_OK || r == CN_POLICY_STALE_SWR)
            CHECK(m->lifetime <= age && !(m->flags & (CN_POLICY_NO_CACHE | CN_POLICY_NO_STALE)));
        if (m->flags & (CN_POLICY_NO_CACHE | CN_POLICY_NO_STALE))
            CHECK(!cn_policy_stale_if_error(m, req_cc, t));
        CHECK((cn_policy_fresh_fwd(r) == NULL) ==
              (r == CN_POLICY_FRESH || r == CN_POLICY_STALE_OK || r == CN_POLICY_STALE_SWR));
    }
    CHECK(cn_policy_usable_until(m) >= cn_policy_stale_at(m));
}

static void
check_vary(cn_arena_t *arena, const cn_headers_t *resp, const cn_headers_t *req)
{
    cairn_iov_t key, key2;
    bool star, star2;
    cn_headers_t reversed;

    if (cn_policy_vary_key(arena, resp, req, &key, &star) != CAIRN_OK)
        return;
    CHECK(!star || key.len == 0);
    for (size_t i = 0; i < key.len; i++) {
        unsigned char c = (unsigned char)key.base[i];
        CHECK(c == '\n' || (c >= 0x20 && c != 0x7f));
    }
    /* The Vary lines in reverse order name the same fields. */
    cn_headers_init(&reversed, arena);
    for (size_t i = resp->n; i-- > 0;)
        cn_headers_add(&reversed, resp->items[i].name, resp->items[i].value);
    if (cn_policy_vary_key(arena, &reversed, req, &key2, &star2) != CAIRN_OK)
        return;
    CHECK(star == star2 && cn_iov_eq(key, key2));
}

static void
check_target(cairn_iov_t t)
{
    CHECK(t.len > 0 && t.base[0] == '/');
    CHECK(!memchr(t.base, '#', t.len));
    const char *q = memchr(t.base, '?', t.len);
    size_t plen = q ? (size_t)(q - t.base) : t.len;
    for (size_t i = 0; i < t.len; i++)
        CHECK((unsigned char)t.base[i] > 0x20 && (unsigned char)t.base[i] < 0x7f);
    /* No dot segments left in the path. */
    for (size_t i = 0; i < plen; i++) {
        if (t.base[i] != '/')
            continue;
        size_t e = i + 1;
        while (e < plen && t.base[e] != '/')
            e++;
        size_t seg = e - i - 1;
        CHECK(!(seg == 1 && t.base[i + 1] == '.'));
        CHECK(!(seg == 2 && t.base[i + 1] == '.' && t.base[i + 2] == '.'));
    }
}

static void
check_update(cn_arena_t *arena, const cn_headers_t *stored, const cn_headers_t *update,
             const cn_cc_t *update_cc, int64_t now)
{
    cn_headers_t out;
    if (cn_policy_update_headers(arena, stored, update, update_cc, now, &out) != CAIRN_OK)
        return;
    CHECK(out.n <= stored->n + update->n + 1);
    CHECK(cn_headers_find(&out, CAIRN_IOV_LIT("Date"), -1) >= 0);
    /* Content-Length only ever comes from the stored response. */
    for (ssize_t i = cn_headers_find(&out, CAIRN_IOV_LIT("Content-Length"), -1); i >= 0;
         i = cn_headers_find(&out, CAIRN_IOV_LIT("Content-Length"), i)) {
        bool found = false;
        for (size_t k = 0; k < stored->n && !found; k++)
            found = cn_iov_ieq(stored->items[k].name, CAIRN_IOV_LIT("Content-Length")) &&
                    cn_iov_eq(stored->items[k].value, out.items[i].value);
        CHECK(found);
    }
    (void)cn_policy_304_matches(stored, update);
    CHECK(cn_policy_head_update(200, stored, -1, update) <= CN_POLICY_HEAD_INVALIDATE);
}

static size_t
count_lines(const cn_headers_t *h, cairn_iov_t name)
{
    size_t n = 0;
    for (ssize_t i = cn_headers_find(h, name, -1); i >= 0; i = cn_headers_find(h, name, i))
        n++;
    return n;
}

/* §4.3.1 / §4.3.2 helpers: the request's conditionals against the response as stored. */
static void
check_validation(cn_arena_t *arena, const cn_http_req_t *req, const cn_headers_t *stored,
                 int64_t response_time)
{
    cn_cond_result_t r = cn_policy_conditional(req->method, &req->headers, stored, response_time);
    CHECK(r == CN_COND_PROCEED || r == CN_COND_NOT_MODIFIED);
    if (!cn_policy_method_is_safe(req->method) || cn_iov_eq(req->method, CAIRN_IOV_LIT("OPTIONS")))
        CHECK(r == CN_COND_PROCEED);

    cn_headers_t fwd;
    cn_headers_init(&fwd, arena);
    for (size_t i = 0; i < req->headers.n; i++)
        cn_headers_add(&fwd, req->headers.items[i].name, req->headers.items[i].value);
    bool etag = cn_headers_get(stored, CAIRN_IOV_LIT("ETag")) != NULL;
    bool lm = cn_headers_get(stored, CAIRN_IOV_LIT("Last-Modified")) != NULL;
    bool added = cn_policy_add_validators(&fwd, stored);
    CHECK(added == (etag || lm));
    if (added) {
        CHECK(count_lines(&fwd, CAIRN_IOV_LIT("If-None-Match")) == etag);
        CHECK(count_lines(&fwd, CAIRN_IOV_LIT("If-Modified-Since")) == lm);
    } else {
        CHECK(fwd.n == req->headers.n);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[4] = {"GET", "HEAD", "POST", "DELETE"};
    char buf[4096];
    struct input in;
    cn_arena_t arena;
    cn_headers_t resp;
    cn_http_req_t hreq;
    cn_policy_conf_t conf;
    cn_cc_t resp_cc, req_cc;

    if (size < 4)
        return 0;
    unsigned status = statuses[data[0] & 15];
    const char *method = methods[(data[0] >> 4) & 3];
    bool authorization = data[0] & 0x40, no_cdn = data[0] & 0x80;
    int64_t delay = data[1], later = (int64_t)data[2] * 37, skew = (int8_t)data[3];
    split_input(data + 4, size - 4, &in);

    cn_arena_init(&arena, 1 << 20);
    cn_headers_init(&resp, &arena);
    memset(&hreq, 0, sizeof(hreq));
    cn_headers_init(&hreq.headers, &arena);
    for (int f = 0; f < F_COUNT; f++) {
        if (!in.present[f])
            continue;
        add_lines(f == F_REQ_CC ? &hreq.headers : &resp, field_names[f], in.seg[f]);
    }
    /* Parser invariants on the two list-valued segments. */
    for (int f = F_CC; f <= F_CDN; f++) {
        if (!in.present[f])
            continue;
        cn_headers_t one;
        cn_headers_init(&one, &arena);
        add_lines(&one, "X", in.seg[f]);
        check_parsers(&one, CAIRN_IOV_LIT("X"), join(in.seg[f], buf, sizeof(buf), f == F_CDN));
    }
    /* Request fields for Vary: "name: value" per '\r' or '\n'. */
    for (size_t s = 0, i = 0; in.rest && i <= in.rest_len; i++) {
        if (i < in.rest_len && in.rest[i] != '\r' && in.rest[i] != '\n')
            continue;
        const char *line = (const char *)in.rest + s;
        const char *colon = memchr(line, ':', i - s);
        if (colon)
            cn_headers_add(&hreq.headers, cn_iov(line, (size_t)(colon - line)),
                           cn_iov_trim(cn_iov(colon + 1, (size_t)(line + (i - s) - colon - 1))));
        s = i + 1;
    }
    if (authorization)
        cn_headers_add(&hreq.headers, CAIRN_IOV_LIT("Authorization"), CAIRN_IOV_LIT("x"));
    hreq.method = cn_iov_cstr(method);
    hreq.scheme = CAIRN_IOV_LIT("http");
    hreq.authority = CAIRN_IOV_LIT("example.com");
    hreq.path = CAIRN_IOV_LIT("/a/b/c");

    cn_policy_conf_init(&conf);
    conf.cdn_cache_control = !no_cdn;
    cn_policy_response_cc(&conf, &resp, &resp_cc);
    check_cc(&resp_cc);
    cn_cc_parse_request(&req_cc, &hreq.headers);
    check_cc(&req_cc);

    cn_policy_store_t st = cn_policy_storable(&hreq, &req_cc, status, &resp, &resp_cc);
    CHECK(st <= CN_POLICY_NS_NOT_CACHEABLE);
    CHECK(strcmp(cn_policy_store_reason(st), "unknown") != 0);
    if (st == CN_POLICY_STORE) {
        CHECK(!(resp_cc.flags & CN_CC_PRIVATE) && !(req_cc.flags & CN_CC_NO_STORE));
        CHECK(!(resp_cc.flags & CN_CC_NO_STORE) || (resp_cc.flags & CN_CC_MUST_UNDERSTAND));
        CHECK(status >= 200 && status <= 599 && status != 206 && status != 304);
    }

    int64_t request_time = T0 + skew, response_time = T0 + delay;
    bool heuristic;
    int64_t life =
        cn_policy_freshness_lifetime(&conf, status, &resp, &resp_cc, response_time, &heuristic);
    CHECK(life >= 0 && life <= CN_CC_DELTA_MAX);
    if (heuristic)
        CHECK(!(resp_cc.flags & (CN_CC_MAX_AGE | CN_CC_S_MAXAGE)) && life <= conf.heuristic_max);
    cn_policy_meta_t m;
    cn_policy_meta_init(&m, &conf, status, &resp, &resp_cc, request_time, response_time);
    CHECK(m.lifetime == life);
    check_freshness(&m, &req_cc, response_time + later);

    check_vary(&arena, &resp, &hreq.headers);

    cairn_iov_t targets[2];
    size_t n = 0;
    if (cn_policy_invalidation_targets(&arena, &hreq, &resp, targets, &n) == CAIRN_OK) {
        CHECK(n <= 2);
        for (size_t i = 0; i < n; i++)
            check_target(targets[i]);
        CHECK(n < 2 || !cn_iov_eq(targets[0], targets[1]));
    }

    check_validation(&arena, &hreq, &resp, response_time);
    check_update(&arena, &resp, &hreq.headers, &req_cc, response_time);
    size_t before = resp.n;
    size_t removed = cn_policy_strip_for_storage(&resp, &resp_cc);
    CHECK(resp.n + removed == before);
    CHECK(cn_headers_find(&resp, CAIRN_IOV_LIT("Connection"), -1) < 0);
    if (resp_cc.flags & CN_CC_PRIVATE_FIELDS)
        for (size_t i = 0; i < resp.n; i++)
            CHECK(!cn_cc_fields_has(&resp_cc.private_fields, resp.items[i].name));

    cn_arena_fini(&arena);
    return 0;
}
