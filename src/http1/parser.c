/* SPDX-License-Identifier: MIT */
/* Strict RFC 9112 request and response head parsers (see parser.h); the chunked decoder is in
 * chunked.c.
 *
 * Each call scans the buffer from its start, left to right, and stops at the first problem.
 * A prefix of an input therefore never gets a different verdict than the whole input: it is
 * either INCOMPLETE or gets the same result. Bytes past max_head are never looked at; running
 * out of bytes there means 431 instead of INCOMPLETE. */
#include "http1/parser.h"

#include <string.h>

#include "core/compiler.h"
#include "core/str.h"
#include "http/token.h"

#define DEFAULT_MAX_HEAD ((size_t)64 * 1024)
#define DEFAULT_MAX_HEADERS ((size_t)100)
#define DEFAULT_MAX_TARGET ((size_t)8192)
#define MAX_LEADING_EMPTY_LINES 4

enum scan_result { SCAN_OK, SCAN_MORE, SCAN_ERR };

struct scan {
    const char *buf;
    size_t len; /* bytes we may look at: min(input length, max_head) */
    size_t pos;
    unsigned status; /* on SCAN_ERR */
    const char *error;
};

struct limits {
    size_t max_head;
    size_t max_fields; /* min(max_headers, hdr_cap) */
    size_t max_target;
};

/* The list-valued fields that decide framing and connection handling. */
enum field_kind {
    F_OTHER,
    F_HOST,
    F_CONTENT_LENGTH,
    F_TRANSFER_ENCODING,
    F_CONNECTION,
    F_UPGRADE,
    F_EXPECT,
};

struct te_info {
    size_t n_fields;
    size_t n_chunked;
    bool empty;        /* an empty list element */
    bool other;        /* a coding other than chunked */
    bool last_chunked; /* the final coding is chunked */
};

struct conn_info {
    bool close;
    bool keep_alive;
    bool upgrade;
};

bool
cn_h1_is_tchar(unsigned char c)
{
    return cn_http_is_tchar(c);
}

static bool
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* field-vchar / SP / HTAB, obs-text included (RFC 9110 §5.5). */
static bool
is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool
is_token(cairn_iov_t t)
{
    if (t.len == 0)
        return false;
    for (size_t i = 0; i < t.len; i++)
        if (!cn_h1_is_tchar((unsigned char)t.base[i]))
            return false;
    return true;
}

static enum scan_result
fail(struct scan *s, unsigned status, const char *error)
{
    s->status = status;
    s->error = error;
    return SCAN_ERR;
}

static void
resolve_limits(const cn_h1_limits_t *lim, size_t hdr_cap, struct limits *out)
{
    out->max_head = lim && lim->max_head ? lim->max_head : DEFAULT_MAX_HEAD;
    out->max_fields = lim && lim->max_headers ? lim->max_headers : DEFAULT_MAX_HEADERS;
    out->max_target = lim && lim->max_target ? lim->max_target : DEFAULT_MAX_TARGET;
    out->max_fields = CN_MIN(out->max_fields, hdr_cap);
}

/* s->buf[p] is CR or LF: a line ends there. Accepts only CRLF; *next is the byte after it. */
static enum scan_result
eat_crlf(struct scan *s, size_t p, size_t *next)
{
    if (s->buf[p] == '\n')
        return fail(s, 400, "bare LF");
    if (p + 1 >= s->len)
        return SCAN_MORE;
    if (s->buf[p + 1] != '\n')
        return fail(s, 400, "bare CR");
    *next = p + 2;
    return SCAN_OK;
}

/* Splits a list value at commas and trims OWS around each element. Returns false when no
 * element is left; an empty value yields one empty element. */
static bool
next_element(cairn_iov_t *rest, cairn_iov_t *elem)
{
    if (rest->base == NULL)
        return false;
    const char *comma = memchr(rest->base, ',', rest->len);
    if (comma == NULL) {
        *elem = cn_iov_trim(*rest);
        rest->base = NULL;
        rest->len = 0;
        return true;
    }
    size_t n = (size_t)(comma - rest->base);
    *elem = cn_iov_trim(cn_iov(rest->base, n));
    rest->base += n + 1;
    rest->len -= n + 1;
    return true;
}

/* ---- header section ---- */

static const char *
field_name_error(unsigned char c)
{
    if (c == ' ' || c == '\t')
        return "whitespace before colon";
    if (c == '\r' || c == '\n')
        return "field line without colon";
    return "invalid character in field name";
}

static enum scan_result
parse_field_line(struct scan *s, cn_h1_header_t *h)
{
    const char *b = s->buf;
    size_t p = s->pos;
    size_t start = p;

    while (p < s->len && cn_h1_is_tchar((unsigned char)b[p]))
        p++;
    if (p >= s->len)
        return SCAN_MORE;
    if (b[p] != ':')
        return fail(s, 400, field_name_error((unsigned char)b[p]));
    if (p == start)
        return fail(s, 400, "empty field name");
    h->name = cn_iov(b + start, p - start);
    size_t vstart = ++p;
    for (;; p++) {
        if (p >= s->len)
            return SCAN_MORE;
        unsigned char c = (unsigned char)b[p];
        if (c == '\r' || c == '\n')
            break;
        if (!is_field_char(c))
            return fail(s, 400, "invalid character in field value");
    }
    h->value = cn_iov_trim(cn_iov(b + vstart, p - vstart));
    return eat_crlf(s, p, &s->pos);
}

/* Parses field lines up to and including the empty line that ends the head. */
static enum scan_result
parse_fields(struct scan *s, cn_h1_header_t *hdrs, size_t max_fields, size_t *n_out)
{
    size_t n = 0;
    for (;;) {
        if (s->pos >= s->len)
            return SCAN_MORE;
        unsigned char c = (unsigned char)s->buf[s->pos];
        if (c == '\r' || c == '\n') {
            enum scan_result r = eat_crlf(s, s->pos, &s->pos);
            *n_out = n;
            return r;
        }
        if (c == ' ' || c == '\t')
            return fail(s, 400, "obsolete line folding");
        if (n >= max_fields)
            return fail(s, 431, "too many header fields");
        enum scan_result r = parse_field_line(s, &hdrs[n]);
        if (r != SCAN_OK)
            return r;
        n++;
    }
}

static enum field_kind
field_kind(cairn_iov_t name)
{
    switch (name.len) {
    case 4:
        return cn_iov_ieq_cstr(name, "host") ? F_HOST : F_OTHER;
    case 6:
        return cn_iov_ieq_cstr(name, "expect") ? F_EXPECT : F_OTHER;
    case 7:
        return cn_iov_ieq_cstr(name, "upgrade") ? F_UPGRADE : F_OTHER;
    case 10:
        return cn_iov_ieq_cstr(name, "connection") ? F_CONNECTION : F_OTHER;
    case 14:
        return cn_iov_ieq_cstr(name, "content-length") ? F_CONTENT_LENGTH : F_OTHER;
    case 17:
        return cn_iov_ieq_cstr(name, "transfer-encoding") ? F_TRANSFER_ENCODING : F_OTHER;
    default:
        return F_OTHER;
    }
}

/* Content-Length (RFC 9112 §6.3 rule 5): every element of every field must be the same
 * 1*DIGIT value. Returns NULL or an error. */
static const char *
merge_content_length(cairn_iov_t value, int64_t *cl)
{
    cairn_iov_t rest = value;
    cairn_iov_t e;

    while (next_element(&rest, &e)) {
        uint64_t v = 0;
        if (e.len == 0)
            return "empty Content-Length";
        for (size_t i = 0; i < e.len; i++) {
            unsigned char c = (unsigned char)e.base[i];
            if (!is_digit(c))
                return "invalid Content-Length";
            if (v > ((uint64_t)INT64_MAX - (c - '0')) / 10)
                return "Content-Length overflow";
            v = v * 10 + (c - '0');
        }
        if (*cl >= 0 && (uint64_t)*cl != v)
            return "conflicting Content-Length values";
        *cl = (int64_t)v;
    }
    return NULL;
}

static void
add_transfer_codings(cairn_iov_t value, struct te_info *te)
{
    cairn_iov_t rest = value;
    cairn_iov_t e;

    te->n_fields++;
    while (next_element(&rest, &e)) {
        te->last_chunked = cn_iov_ieq_cstr(e, "chunked");
        if (e.len == 0)
            te->empty = true;
        else if (te->last_chunked)
            te->n_chunked++;
        else
            te->other = true;
    }
}

static bool
add_connection_options(cairn_iov_t value, struct conn_info *conn)
{
    cairn_iov_t rest = value;
    cairn_iov_t e;

    while (next_element(&rest, &e)) {
        if (e.len == 0)
            continue;
        if (!is_token(e))
            return false;
        if (cn_iov_ieq_cstr(e, "close"))
            conn->close = true;
        else if (cn_iov_ieq_cstr(e, "keep-alive"))
            conn->keep_alive = true;
        else if (cn_iov_ieq_cstr(e, "upgrade"))
            conn->upgrade = true;
    }
    return true;
}

/* ---- request line and target ---- */

static bool
is_regname_char(unsigned char c)
{
    /* RFC 3986 unreserved and sub-delims, without ',' (list confusion) and without
     * pct-encoded ('%'), which no real host name needs. */
    static const char extra[] = "-._~!$&'()*+;=";
    return is_alpha(c) || is_digit(c) || (c != 0 && memchr(extra, c, sizeof(extra) - 1));
}

static bool
valid_port(const char *p, size_t n)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)p[i]))
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535;
}

/* uri-host [ ":" port ] (RFC 3986 §3.2.2); no userinfo, no empty host, no empty port. */
static bool
valid_authority(cairn_iov_t a, bool need_port)
{
    size_t i = 0;

    if (a.len == 0)
        return false;
    if (a.base[0] == '[') {
        for (i = 1; i < a.len && a.base[i] != ']'; i++) {
            unsigned char c = (unsigned char)a.base[i];
            if (!is_hex(c) && c != ':' && c != '.')
                return false;
        }
        if (i == a.len || i == 1)
            return false;
        i++;
    } else {
        while (i < a.len && is_regname_char((unsigned char)a.base[i]))
            i++;
        if (i == 0)
            return false;
    }
    if (i == a.len)
        return !need_port;
    if (a.base[i] != ':')
        return false;
    return valid_port(a.base + i + 1, a.len - i - 1);
}

/* @rest is empty or starts with '/' or '?'. An empty path becomes @slash, a "/" inside the
 * caller's buffer (so that every result stays a slice of the input). */
static void
split_path(cn_h1_request_t *req, cairn_iov_t rest, cairn_iov_t slash)
{
    const char *q = rest.len ? memchr(rest.base, '?', rest.len) : NULL;
    size_t plen = q ? (size_t)(q - rest.base) : rest.len;

    req->path = plen ? cn_iov(rest.base, plen) : slash;
    if (q) {
        req->has_query = true;
        req->query = cn_iov(q + 1, rest.len - plen - 1);
    }
}

static enum scan_result
parse_absolute_form(struct scan *s, cn_h1_request_t *req)
{
    cairn_iov_t t = req->target;
    size_t i = 0;

    while (i < t.len && (is_alpha((unsigned char)t.base[i]) || is_digit((unsigned char)t.base[i]) ||
                         t.base[i] == '+' || t.base[i] == '-' || t.base[i] == '.'))
        i++;
    if (i == 0 || !is_alpha((unsigned char)t.base[0]) || i + 3 > t.len ||
        memcmp(t.base + i, "://", 3) != 0)
        return fail(s, 400, "invalid request target");
    cairn_iov_t scheme = cn_iov(t.base, i);
    if (!cn_iov_ieq_cstr(scheme, "http") && !cn_iov_ieq_cstr(scheme, "https"))
        return fail(s, 400, "unsupported URI scheme");
    size_t a = i + 3;
    size_t e = a;
    while (e < t.len && t.base[e] != '/' && t.base[e] != '?')
        e++;
    cairn_iov_t auth = cn_iov(t.base + a, e - a);
    if (auth.len && memchr(auth.base, '@', auth.len))
        return fail(s, 400, "userinfo in request target");
    if (!valid_authority(auth, false))
        return fail(s, 400, "invalid authority in request target");
    req->host = auth;
    split_path(req, cn_iov(t.base + e, t.len - e), cn_iov(t.base + i + 1, 1));
    return SCAN_OK;
}

/* RFC 9112 §3.2: which target form is allowed depends on the method. */
static enum scan_result
classify_target(struct scan *s, cn_h1_request_t *req)
{
    cairn_iov_t t = req->target;

    if (cn_iov_eq(req->method, CAIRN_IOV_LIT("CONNECT"))) {
        if (!valid_authority(t, true))
            return fail(s, 400, "CONNECT needs an authority-form target");
        req->path = cn_iov(t.base, 0);
        return SCAN_OK;
    }
    if (t.base[0] == '/') {
        split_path(req, t, cn_iov(t.base, 1));
        return SCAN_OK;
    }
    if (t.len == 1 && t.base[0] == '*') {
        if (!cn_iov_eq(req->method, CAIRN_IOV_LIT("OPTIONS")))
            return fail(s, 400, "asterisk-form target needs OPTIONS");
        req->path = t;
        return SCAN_OK;
    }
    return parse_absolute_form(s, req);
}

/* "HTTP/" DIGIT "." DIGIT at @p. */
static enum scan_result
match_version(struct scan *s, size_t p, int *major, int *minor)
{
    static const char pat[] = "HTTP/0.0";
    for (size_t i = 0; i < 8; i++) {
        if (p + i >= s->len)
            return SCAN_MORE;
        unsigned char c = (unsigned char)s->buf[p + i];
        if (pat[i] == '0' ? !is_digit(c) : c != (unsigned char)pat[i])
            return fail(s, 400, "malformed HTTP version");
    }
    *major = s->buf[p + 5] - '0';
    *minor = s->buf[p + 7] - '0';
    return SCAN_OK;
}

static enum scan_result
skip_empty_lines(struct scan *s)
{
    for (int n = 0;; n++) {
        if (s->pos >= s->len)
            return SCAN_MORE;
        unsigned char c = (unsigned char)s->buf[s->pos];
        if (c != '\r' && c != '\n')
            return SCAN_OK;
        if (n == MAX_LEADING_EMPTY_LINES)
            return fail(s, 400, "too many empty lines before the request line");
        enum scan_result r = eat_crlf(s, s->pos, &s->pos);
        if (r != SCAN_OK)
            return r;
    }
}

/* method SP request-target SP HTTP-version CRLF, exactly one SP each. */
static enum scan_result
parse_request_line(struct scan *s, size_t max_target, cn_h1_request_t *req)
{
    const char *b = s->buf;
    enum scan_result r = skip_empty_lines(s);
    if (r != SCAN_OK)
        return r;

    size_t p = s->pos;
    while (p < s->len && cn_h1_is_tchar((unsigned char)b[p]))
        p++;
    if (p >= s->len)
        return SCAN_MORE;
    if (p == s->pos || b[p] != ' ')
        return fail(s, 400, "invalid method");
    req->method = cn_iov(b + s->pos, p - s->pos);

    size_t t = ++p;
    for (; p < s->len && b[p] != ' '; p++) {
        unsigned char c = (unsigned char)b[p];
        if (c == '\r' || c == '\n')
            return fail(s, 400, "missing HTTP version");
        if (c < 0x21 || c > 0x7e)
            return fail(s, 400, "invalid character in request target");
        if (c == '#')
            return fail(s, 400, "fragment in request target");
        if (p + 1 - t > max_target)
            return fail(s, 414, "request target too long");
    }
    if (p >= s->len)
        return SCAN_MORE;
    if (p == t)
        return fail(s, 400, "empty request target");
    req->target = cn_iov(b + t, p - t);

    int major = 0;
    int minor = 0;
    p++;
    if ((r = match_version(s, p, &major, &minor)) != SCAN_OK)
        return r;
    p += 8;
    if (p >= s->len)
        return SCAN_MORE;
    if (b[p] != '\r' && b[p] != '\n')
        return fail(s, 400, "malformed HTTP version");
    if ((r = eat_crlf(s, p, &s->pos)) != SCAN_OK)
        return r;
    if (major != 1 || minor > 1)
        return fail(s, 505, "HTTP version not supported");
    req->minor_version = minor;
    return classify_target(s, req);
}

/* ---- request semantics ---- */

static enum scan_result
check_request_framing(struct scan *s, cn_h1_request_t *req, const struct te_info *te)
{
    if (te->n_fields == 0)
        return SCAN_OK;
    if (req->minor_version == 0)
        return fail(s, 400, "Transfer-Encoding in HTTP/1.0");
    if (req->content_length >= 0)
        return fail(s, 400, "both Transfer-Encoding and Content-Length");
    if (te->empty)
        return fail(s, 400, "empty transfer coding");
    if (te->other)
        return fail(s, 400, "unsupported transfer coding");
    if (te->n_chunked > 1)
        return fail(s, 400, "chunked applied more than once");
    if (!te->last_chunked)
        return fail(s, 400, "final transfer coding is not chunked");
    req->chunked = true;
    return SCAN_OK;
}

static enum scan_result
check_request_fields(struct scan *s, cn_h1_request_t *req)
{
    struct te_info te = {0};
    struct conn_info conn = {0};
    size_t n_host = 0;
    cairn_iov_t host = {0};
    bool upgrade_field = false;
    const char *err;

    for (size_t i = 0; i < req->n_headers; i++) {
        const cn_h1_header_t *h = &req->headers[i];
        switch (field_kind(h->name)) {
        case F_HOST:
            n_host++;
            host = h->value;
            if (n_host > 1)
                return fail(s, 400, "more than one Host");
            if (host.len && !valid_authority(host, false))
                return fail(s, 400, "invalid Host");
            break;
        case F_CONTENT_LENGTH:
            if ((err = merge_content_length(h->value, &req->content_length)) != NULL)
                return fail(s, 400, err);
            break;
        case F_TRANSFER_ENCODING:
            add_transfer_codings(h->value, &te);
            break;
        case F_CONNECTION:
            if (!add_connection_options(h->value, &conn))
                return fail(s, 400, "invalid Connection option");
            break;
        case F_UPGRADE:
            upgrade_field = true;
            break;
        case F_EXPECT:
            if (!cn_iov_ieq_cstr(h->value, "100-continue"))
                return fail(s, 417, "unsupported expectation");
            req->expect_continue = req->minor_version >= 1;
            break;
        case F_OTHER:
            break;
        }
    }
    if (n_host == 0 && req->minor_version >= 1)
        return fail(s, 400, "missing Host");
    if (req->host.base == NULL)
        req->host = host;
    enum scan_result r = check_request_framing(s, req, &te);
    if (r != SCAN_OK)
        return r;
    req->keep_alive = !conn.close && (req->minor_version >= 1 || conn.keep_alive);
    req->upgrade = req->minor_version >= 1 && conn.upgrade && upgrade_field;
    return SCAN_OK;
}

cn_h1_result_t
cn_h1_parse_request(const char *buf, size_t len, const cn_h1_limits_t *lim, cn_h1_request_t *req,
                    cn_h1_header_t *hdrs, size_t hdr_cap)
{
    struct limits l;
    resolve_limits(lim, hdr_cap, &l);
    memset(req, 0, sizeof(*req));
    req->content_length = -1;
    req->headers = hdrs;

    struct scan s = {.buf = buf, .len = CN_MIN(len, l.max_head)};
    enum scan_result r = parse_request_line(&s, l.max_target, req);
    if (r == SCAN_OK)
        r = parse_fields(&s, hdrs, l.max_fields, &req->n_headers);
    if (r == SCAN_OK)
        r = check_request_fields(&s, req);
    if (r == SCAN_OK) {
        req->head_len = s.pos;
        return CN_H1_OK;
    }
    if (r == SCAN_MORE) {
        if (len < l.max_head)
            return CN_H1_INCOMPLETE;
        fail(&s, 431, "request head too large");
    }
    req->status = s.status;
    req->error = s.error;
    return CN_H1_ERROR;
}

/* ---- responses ---- */

/* HTTP-version SP 3DIGIT [ SP reason-phrase ] CRLF. */
static enum scan_result
parse_status_line(struct scan *s, cn_h1_response_t *resp)
{
    const char *b = s->buf;
    int major = 0;
    int minor = 0;
    enum scan_result r = match_version(s, 0, &major, &minor);
    if (r != SCAN_OK)
        return r;
    if (major != 1 || minor > 1)
        return fail(s, 502, "unsupported HTTP version");
    resp->minor_version = minor;

    /* SP 3DIGIT (100..999), not followed by a fourth digit */
    if (s->len < 13)
        return SCAN_MORE;
    if (b[8] != ' ' || b[9] < '1' || b[9] > '9' || !is_digit((unsigned char)b[10]) ||
        !is_digit((unsigned char)b[11]) || is_digit((unsigned char)b[12]))
        return fail(s, 502, "malformed status line");
    resp->status = (unsigned)((b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0'));
    size_t p = 12;
    if (b[p] == ' ') {
        size_t start = ++p;
        for (; p < s->len && b[p] != '\r' && b[p] != '\n'; p++)
            if (!is_field_char((unsigned char)b[p]))
                return fail(s, 502, "invalid character in reason phrase");
        if (p >= s->len)
            return SCAN_MORE;
        resp->reason = cn_iov(b + start, p - start);
    } else if (b[p] != '\r' && b[p] != '\n') {
        return fail(s, 502, "malformed status line");
    }
    return eat_crlf(s, p, &s->pos);
}

static enum scan_result
check_response_framing(struct scan *s, cn_h1_response_t *resp, const struct te_info *te,
                       bool head_request)
{
    unsigned st = resp->status;
    bool bodiless = st < 200 || st == 204;

    if (te->n_fields) {
        if (resp->minor_version == 0)
            return fail(s, 502, "Transfer-Encoding in HTTP/1.0");
        if (resp->content_length >= 0)
            return fail(s, 502, "both Transfer-Encoding and Content-Length");
        if (te->empty)
            return fail(s, 502, "empty transfer coding");
        if (te->n_chunked > 1)
            return fail(s, 502, "chunked applied more than once");
    }
    if (bodiless && (te->n_fields || resp->content_length > 0))
        return fail(s, 502, "body framing on a 1xx or 204 response");
    resp->no_body = bodiless || st == 304 || head_request;
    if (!resp->no_body) {
        resp->chunked = te->n_fields && te->last_chunked;
        resp->close_delimited = !resp->chunked && resp->content_length < 0;
    }
    return SCAN_OK;
}

static enum scan_result
check_response_fields(struct scan *s, cn_h1_response_t *resp, bool head_request)
{
    struct te_info te = {0};
    struct conn_info conn = {0};
    const char *err;

    for (size_t i = 0; i < resp->n_headers; i++) {
        const cn_h1_header_t *h = &resp->headers[i];
        switch (field_kind(h->name)) {
        case F_CONTENT_LENGTH:
            if ((err = merge_content_length(h->value, &resp->content_length)) != NULL)
                return fail(s, 502, err);
            break;
        case F_TRANSFER_ENCODING:
            add_transfer_codings(h->value, &te);
            break;
        case F_CONNECTION:
            if (!add_connection_options(h->value, &conn))
                return fail(s, 502, "invalid Connection option");
            break;
        default:
            break;
        }
    }
    enum scan_result r = check_response_framing(s, resp, &te, head_request);
    if (r != SCAN_OK)
        return r;
    resp->keep_alive =
        !conn.close && !resp->close_delimited && (resp->minor_version >= 1 || conn.keep_alive);
    return SCAN_OK;
}

cn_h1_result_t
cn_h1_parse_response(const char *buf, size_t len, const cn_h1_limits_t *lim, bool head_request,
                     cn_h1_response_t *resp, cn_h1_header_t *hdrs, size_t hdr_cap)
{
    struct limits l;
    resolve_limits(lim, hdr_cap, &l);
    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
    resp->headers = hdrs;

    struct scan s = {.buf = buf, .len = CN_MIN(len, l.max_head)};
    enum scan_result r = parse_status_line(&s, resp);
    if (r == SCAN_OK)
        r = parse_fields(&s, hdrs, l.max_fields, &resp->n_headers);
    if (r == SCAN_OK)
        r = check_response_fields(&s, resp, head_request);
    if (r == SCAN_OK) {
        resp->head_len = s.pos;
        return CN_H1_OK;
    }
    if (r == SCAN_MORE) {
        if (len < l.max_head)
            return CN_H1_INCOMPLETE;
        fail(&s, 431, "response head too large");
    }
    resp->error = s.error;
    return CN_H1_ERROR;
}
