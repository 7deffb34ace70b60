/* SPDX-License-Identifier: MIT */
/* Cache-Control lists (RFC 9111 §5.2) and targeted fields as Structured Field Dictionaries
 * (RFC 9213 §2.1, RFC 8941 §4.2.2) into cn_cc_t. */
#include "http/cache_control.h"

#include <sys/types.h>

#include <string.h>

#include "core/compiler.h"
#include "core/str.h"
#include "http/token.h"
#include "http/headers.h"

enum kind {
    K_FLAG,   /* no argument defined */
    K_DELTA,  /* delta-seconds argument */
    K_FIELDS, /* optional field-name list (no-cache, private) */
};

struct directive {
    const char *name;
    size_t len;
    uint32_t bit;        /* K_FIELDS: the bare (whole-message) bit */
    uint32_t fields_bit; /* K_FIELDS: the qualified bit */
    enum kind kind;
    size_t off; /* K_DELTA: the int64_t value; K_FIELDS: the cn_cc_fields_t */
};

#define DIR(n, b, fb, k, o)                                                                        \
    {                                                                                              \
        n, sizeof(n) - 1, b, fb, k, o                                                              \
    }

static const struct directive directives[] = {
    DIR("no-cache", CN_CC_NO_CACHE, CN_CC_NO_CACHE_FIELDS, K_FIELDS,
        offsetof(cn_cc_t, no_cache_fields)),
    DIR("no-store", CN_CC_NO_STORE, 0, K_FLAG, 0),
    DIR("max-age", CN_CC_MAX_AGE, 0, K_DELTA, offsetof(cn_cc_t, max_age)),
    DIR("s-maxage", CN_CC_S_MAXAGE, 0, K_DELTA, offsetof(cn_cc_t, s_maxage)),
    DIR("max-stale", CN_CC_MAX_STALE, 0, K_DELTA, offsetof(cn_cc_t, max_stale)),
    DIR("min-fresh", CN_CC_MIN_FRESH, 0, K_DELTA, offsetof(cn_cc_t, min_fresh)),
    DIR("only-if-cached", CN_CC_ONLY_IF_CACHED, 0, K_FLAG, 0),
    DIR("no-transform", CN_CC_NO_TRANSFORM, 0, K_FLAG, 0),
    DIR("private", CN_CC_PRIVATE, CN_CC_PRIVATE_FIELDS, K_FIELDS,
        offsetof(cn_cc_t, private_fields)),
    DIR("public", CN_CC_PUBLIC, 0, K_FLAG, 0),
    DIR("must-revalidate", CN_CC_MUST_REVALIDATE, 0, K_FLAG, 0),
    DIR("proxy-revalidate", CN_CC_PROXY_REVALIDATE, 0, K_FLAG, 0),
    DIR("must-understand", CN_CC_MUST_UNDERSTAND, 0, K_FLAG, 0),
    DIR("immutable", CN_CC_IMMUTABLE, 0, K_FLAG, 0),
    DIR("stale-while-revalidate", CN_CC_SWR, 0, K_DELTA, offsetof(cn_cc_t, stale_while_revalidate)),
    DIR("stale-if-error", CN_CC_SIE, 0, K_DELTA, offsetof(cn_cc_t, stale_if_error)),
};

/* A directive's argument, from either syntax. */
enum arg_type {
    ARG_NONE,    /* no "=": a bare directive, or SF Boolean true */
    ARG_FALSE,   /* SF Boolean false: the directive is absent */
    ARG_TOKEN,   /* token (Cache-Control) or SF Token */
    ARG_STRING,  /* quoted-string contents (Cache-Control) or SF String */
    ARG_INTEGER, /* SF Integer */
    ARG_BAD,     /* malformed (Cache-Control) or an SF type no directive takes */
};

struct arg {
    enum arg_type type;
    cairn_iov_t text; /* TOKEN / STRING: the characters, quotes excluded */
    bool escaped;     /* STRING: contains a backslash escape */
    int64_t num;      /* INTEGER */
};

static const struct directive *
lookup(cairn_iov_t name, bool exact)
{
    for (size_t i = 0; i < CN_ARRAY_LEN(directives); i++) {
        cairn_iov_t d = cn_iov(directives[i].name, directives[i].len);
        if (exact ? cn_iov_eq(name, d) : cn_iov_ieq(name, d))
            return &directives[i];
    }
    return NULL;
}

static int64_t *
delta_slot(cn_cc_t *cc, const struct directive *d)
{
    return (int64_t *)(void *)((char *)cc + d->off);
}

static cn_cc_fields_t *
fields_slot(cn_cc_t *cc, const struct directive *d)
{
    return (cn_cc_fields_t *)(void *)((char *)cc + d->off);
}

bool
cn_cc_parse_delta(cairn_iov_t s, int64_t *out)
{
    int64_t v = 0;
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.base[i] - '0';
        if (d > 9)
            return false;
        v = v * 10 + d;
        if (v > CN_CC_DELTA_MAX)
            v = CN_CC_DELTA_MAX;
    }
    *out = v;
    return true;
}

static void
apply_delta(cn_cc_t *cc, const struct directive *d, const struct arg *a, bool sf)
{
    int64_t v = 0;
    bool ok = false;

    cc->flags |= d->bit;
    switch (a->type) {
    case ARG_NONE:
        ok = d->bit == CN_CC_MAX_STALE;
        v = CN_CC_UNLIMITED;
        break;
    case ARG_TOKEN:
    case ARG_STRING:
        /* RFC 9111 §5.2: both forms; RFC 9213 §2.1: only an Integer in a targeted field. */
        ok = !sf && !a->escaped && cn_cc_parse_delta(a->text, &v);
        break;
    case ARG_INTEGER:
        ok = a->num >= 0;
        v = CN_MIN(a->num, CN_CC_DELTA_MAX);
        break;
    case ARG_FALSE:
    case ARG_BAD:
        break;
    }
    if (!ok) {
        cc->invalid |= d->bit;
        return;
    }
    int64_t *slot = delta_slot(cc, d);
    if (*slot < 0) {
        *slot = v;
    } else if (*slot != v) {
        /* Conflicting duplicates: honour the most restrictive (RFC 9111 §4.2.1). */
        cc->invalid |= d->bit;
        *slot = d->bit == CN_CC_MIN_FRESH ? CN_MAX(*slot, v) : CN_MIN(*slot, v);
    }
}

/* Splits a comma list of field names into @f; false on an element that is not a token, an
 * empty list, or more than CN_CC_FIELDS_MAX distinct names. */
static bool
parse_field_list(cairn_iov_t s, cn_cc_fields_t *f)
{
    size_t start = 0;
    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.base[i] != ',')
            continue;
        cairn_iov_t name = cn_iov_trim(cn_iov(s.base + start, i - start));
        start = i + 1;
        if (name.len == 0)
            continue;
        if (!cn_http_is_token(name))
            return false;
        if (cn_cc_fields_has(f, name))
            continue;
        if (f->n == CN_CC_FIELDS_MAX)
            return false;
        f->names[f->n++] = name;
    }
    return f->n > 0;
}

static void
apply_fields(cn_cc_t *cc, const struct directive *d, const struct arg *a, bool sf)
{
    cn_cc_fields_t *list = fields_slot(cc, d);
    cn_cc_fields_t tmp = *list;
    bool ok = false;

    if (a->type == ARG_NONE) {
        cc->flags |= d->bit;
        return;
    }
    if (a->type == ARG_TOKEN && !sf)
        ok = parse_field_list(a->text, &tmp);
    else if (a->type == ARG_STRING && !a->escaped)
        ok = parse_field_list(a->text, &tmp);
    if (!ok) {
        /* An argument we cannot read: the whole-message form is the restrictive reading. */
        cc->flags |= d->bit;
        cc->invalid |= d->bit;
        return;
    }
    *list = tmp;
    cc->flags |= d->fields_bit;
}

static void
apply(cn_cc_t *cc, const struct directive *d, const struct arg *a, bool sf)
{
    switch (d->kind) {
    case K_FLAG:
        cc->flags |= d->bit;
        if (a->type != ARG_NONE)
            cc->invalid |= d->bit;
        return;
    case K_DELTA:
        apply_delta(cc, d, a, sf);
        return;
    case K_FIELDS:
        apply_fields(cc, d, a, sf);
        return;
    }
}

/* Forgets every earlier occurrence of @d (Structured Fields: the last duplicate key wins). */
static void
reset(cn_cc_t *cc, const struct directive *d)
{
    uint32_t bits = d->bit | d->fields_bit;
    cc->flags &= ~bits;
    cc->invalid &= ~bits;
    if (d->kind == K_DELTA)
        *delta_slot(cc, d) = -1;
    else if (d->kind == K_FIELDS)
        fields_slot(cc, d)->n = 0;
}

void
cn_cc_init(cn_cc_t *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->max_age = cc->s_maxage = cc->max_stale = cc->min_fresh = -1;
    cc->stale_while_revalidate = cc->stale_if_error = -1;
}

bool
cn_cc_fields_has(const cn_cc_fields_t *f, cairn_iov_t name)
{
    for (size_t i = 0; i < f->n; i++)
        if (cn_iov_ieq(f->names[i], name))
            return true;
    return false;
}

/* ---- Cache-Control syntax (RFC 9110 §5.6.1 lists of RFC 9111 §5.2 directives) ---- */

static size_t
skip_ows(cairn_iov_t v, size_t i)
{
    while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t'))
        i++;
    return i;
}

/* Index of the next comma at or after @i that is outside a quoted string, or v.len. */
static size_t
skip_to_comma(cairn_iov_t v, size_t i)
{
    bool quoted = false;
    for (; i < v.len; i++) {
        char c = v.base[i];
        if (quoted) {
            if (c == '\\')
                i++;
            else if (c == '"')
                quoted = false;
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            return i;
        }
    }
    return v.len;
}

/* Reads [ OWS "=" OWS ( token / quoted-string ) ] OWS after a directive name at @i, up to the
 * end of the list element. Returns the index of the element's terminating comma (or v.len). */
static size_t
parse_legacy_arg(cairn_iov_t v, size_t i, struct arg *a)
{
    size_t j = skip_ows(v, i);
    a->type = ARG_NONE;
    if (j < v.len && v.base[j] == '=') {
        j = skip_ows(v, j + 1);
        if (j < v.len && v.base[j] == '"') {
            size_t s = ++j;
            bool esc = false, closed = false;
            for (; j < v.len; j++) {
                if (v.base[j] == '\\') {
                    esc = true;
                    j++;
                } else if (v.base[j] == '"') {
                    closed = true;
                    break;
                }
            }
            if (!closed) {
                a->type = ARG_BAD;
                return v.len;
            }
            a->type = ARG_STRING;
            a->text = cn_iov(v.base + s, j - s);
            a->escaped = esc;
            j++;
        } else {
            size_t s = j;
            while (j < v.len && cn_http_is_tchar((unsigned char)v.base[j]))
                j++;
            a->type = j > s ? ARG_TOKEN : ARG_BAD;
            a->text = cn_iov(v.base + s, j - s);
        }
        j = skip_ows(v, j);
    }
    if (j < v.len && v.base[j] != ',') {
        a->type = ARG_BAD;
        return skip_to_comma(v, j);
    }
    return j;
}

/* Iterates the elements of a Cache-Control-style list: on each call, the next element's
 * name (empty when the element does not start with a token) and argument. False at the end. */
static bool
next_element(cairn_iov_t v, size_t *pos, cairn_iov_t *name, struct arg *a)
{
    size_t i = *pos;
    while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t' || v.base[i] == ','))
        i++;
    if (i >= v.len) {
        *pos = i;
        return false;
    }
    size_t s = i;
    while (i < v.len && cn_http_is_tchar((unsigned char)v.base[i]))
        i++;
    *name = cn_iov(v.base + s, i - s);
    *pos = parse_legacy_arg(v, i, a);
    return true;
}

void
cn_cc_add_value(cn_cc_t *cc, cairn_iov_t value)
{
    size_t pos = 0;
    cairn_iov_t name;
    struct arg a;
    memset(&a, 0, sizeof(a));
    while (next_element(value, &pos, &name, &a)) {
        const struct directive *d = name.len ? lookup(name, false) : NULL;
        if (d)
            apply(cc, d, &a, false);
    }
}

void
cn_cc_parse(cn_cc_t *cc, const cn_headers_t *h, cairn_iov_t name)
{
    cn_cc_init(cc);
    for (ssize_t i = cn_headers_find(h, name, -1); i >= 0; i = cn_headers_find(h, name, i))
        cn_cc_add_value(cc, h->items[i].value);
}

static bool
pragma_no_cache(const cn_headers_t *req)
{
    cairn_iov_t pragma = CAIRN_IOV_LIT("Pragma");
    for (ssize_t i = cn_headers_find(req, pragma, -1); i >= 0;
         i = cn_headers_find(req, pragma, i)) {
        cairn_iov_t v = req->items[i].value, name;
        size_t pos = 0;
        struct arg a;
        memset(&a, 0, sizeof(a));
        while (next_element(v, &pos, &name, &a))
            if (a.type == ARG_NONE && cn_iov_ieq_cstr(name, "no-cache"))
                return true;
    }
    return false;
}

void
cn_cc_parse_request(cn_cc_t *cc, const cn_headers_t *req)
{
    cairn_iov_t cc_name = CAIRN_IOV_LIT("Cache-Control");
    cn_cc_parse(cc, req, cc_name);
    /* RFC 9111 §5.4: Pragma counts only when Cache-Control is absent. */
    if (cn_headers_find(req, cc_name, -1) < 0 && pragma_no_cache(req))
        cc->flags |= CN_CC_NO_CACHE | CN_CC_PRAGMA_NO_CACHE;
}

/* ---- Structured Field Dictionary (RFC 8941 §4.2, RFC 9651 §4.2) ---- */

struct sf {
    const char *p;
    size_t n, i;
};

static int
peek(const struct sf *s)
{
    return s->i < s->n ? (unsigned char)s->p[s->i] : -1;
}

static bool
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool
is_lcalpha(int c)
{
    return c >= 'a' && c <= 'z';
}

static bool
is_alpha(int c)
{
    return is_lcalpha(c) || (c >= 'A' && c <= 'Z');
}

static void
sf_skip_sp(struct sf *s)
{
    while (peek(s) == ' ')
        s->i++;
}

static void
sf_skip_ows(struct sf *s)
{
    while (peek(s) == ' ' || peek(s) == '\t')
        s->i++;
}

static bool
sf_key(struct sf *s, cairn_iov_t *key)
{
    int c = peek(s);
    if (!is_lcalpha(c) && c != '*')
        return false;
    size_t start = s->i++;
    for (c = peek(s); is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.' || c == '*';
         c = peek(s))
        s->i++;
    *key = cn_iov(s->p + start, s->i - start);
    return true;
}

/* Integer or Decimal (RFC 8941 §4.2.4). A Decimal is reported as ARG_BAD (no directive takes
 * one, RFC 9213 §2.1). */
static bool
sf_number(struct sf *s, struct arg *a, bool integer_only)
{
    bool neg = false, dec = false;
    size_t digits = 0, frac = 0;
    int64_t v = 0;

    if (peek(s) == '-') {
        neg = true;
        s->i++;
    }
    if (!is_digit(peek(s)))
        return false;
    for (int c = peek(s);; c = peek(s)) {
        if (is_digit(c)) {
            if (dec) {
                if (++frac > 3)
                    return false;
            } else {
                if (++digits > 15)
                    return false;
                v = v * 10 + (c - '0');
            }
            s->i++;
        } else if (c == '.' && !dec) {
            if (integer_only || digits > 12)
                return false;
            dec = true;
            s->i++;
        } else {
            break;
        }
    }
    if (dec && frac == 0)
        return false;
    a->type = dec ? ARG_BAD : ARG_INTEGER;
    a->num = neg ? -v : v;
    return true;
}

static bool
sf_string(struct sf *s, struct arg *a)
{
    size_t start = ++s->i;
    a->escaped = false;
    for (;;) {
        int c = peek(s);
        if (c < 0)
            return false;
        if (c == '\\') {
            s->i++;
            c = peek(s);
            if (c != '"' && c != '\\')
                return false;
            a->escaped = true;
        } else if (c == '"') {
            a->type = ARG_STRING;
            a->text = cn_iov(s->p + start, s->i - start);
            s->i++;
            return true;
        } else if (c < 0x20 || c > 0x7e) {
            return false;
        }
        s->i++;
    }
}

static bool
sf_token(struct sf *s, struct arg *a)
{
    size_t start = s->i++;
    for (int c = peek(s); c >= 0 && (cn_http_is_tchar((unsigned char)c) || c == ':' || c == '/');
         c = peek(s))
        s->i++;
    a->type = ARG_TOKEN;
    a->text = cn_iov(s->p + start, s->i - start);
    return true;
}

static bool
sf_bytes(struct sf *s, struct arg *a)
{
    s->i++;
    for (int c = peek(s); c != ':'; c = peek(s)) {
        if (!(is_alpha(c) || is_digit(c) || c == '+' || c == '/' || c == '='))
            return false;
        s->i++;
    }
    s->i++;
    a->type = ARG_BAD;
    return true;
}

static bool
is_lchex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f');
}

/* RFC 9651 §4.2.10 Display String. The decoded bytes are not checked for valid UTF-8: the
 * value is never used, and no directive takes one. */
static bool
sf_display(struct sf *s, struct arg *a)
{
    s->i++;
    if (peek(s) != '"')
        return false;
    s->i++;
    for (int c = peek(s); c != '"'; c = peek(s)) {
        if (c < 0x20 || c > 0x7e)
            return false;
        if (c == '%') {
            if (s->n - s->i < 3 || !is_lchex((unsigned char)s->p[s->i + 1]) ||
                !is_lchex((unsigned char)s->p[s->i + 2]))
                return false;
            s->i += 2;
        }
        s->i++;
    }
    s->i++;
    a->type = ARG_BAD;
    return true;
}

static bool
sf_bare_item(struct sf *s, struct arg *a)
{
    int c = peek(s);
    memset(a, 0, sizeof(*a));
    if (c == '-' || is_digit(c))
        return sf_number(s, a, false);
    if (c == '"')
        return sf_string(s, a);
    if (c == '*' || is_alpha(c))
        return sf_token(s, a);
    if (c == ':')
        return sf_bytes(s, a);
    if (c == '?') {
        s->i++;
        c = peek(s);
        if (c != '0' && c != '1')
            return false;
        s->i++;
        a->type = c == '1' ? ARG_NONE : ARG_FALSE;
        return true;
    }
    if (c == '@') {
        s->i++;
        if (!sf_number(s, a, true))
            return false;
        a->type = ARG_BAD;
        return true;
    }
    if (c == '%')
        return sf_display(s, a);
    return false;
}

static bool
sf_params(struct sf *s)
{
    while (peek(s) == ';') {
        cairn_iov_t key;
        struct arg ignored;
        s->i++;
        sf_skip_sp(s);
        if (!sf_key(s, &key))
            return false;
        if (peek(s) == '=') {
            s->i++;
            if (!sf_bare_item(s, &ignored))
                return false;
        }
    }
    return true;
}

static bool
sf_inner_list(struct sf *s)
{
    s->i++;
    for (;;) {
        struct arg item;
        sf_skip_sp(s);
        if (peek(s) == ')') {
            s->i++;
            return sf_params(s);
        }
        if (!sf_bare_item(s, &item) || !sf_params(s))
            return false;
        if (peek(s) != ' ' && peek(s) != ')')
            return false;
    }
}

static bool
sf_member(struct sf *s, cn_cc_t *cc)
{
    cairn_iov_t key;
    struct arg a;
    memset(&a, 0, sizeof(a));
    if (!sf_key(s, &key))
        return false;
    if (peek(s) == '=') {
        s->i++;
        if (peek(s) == '(') {
            if (!sf_inner_list(s))
                return false;
            a.type = ARG_BAD;
        } else if (!sf_bare_item(s, &a) || !sf_params(s)) {
            return false;
        }
    } else if (!sf_params(s)) {
        return false;
    }
    const struct directive *d = lookup(key, true);
    if (d) {
        reset(cc, d);
        if (a.type != ARG_FALSE)
            apply(cc, d, &a, true);
    }
    return true;
}

/* Parses one field line as (a continuation of) the dictionary; counts members in *@members. */
static bool
sf_dictionary(cairn_iov_t v, cn_cc_t *cc, size_t *members)
{
    struct sf s = {v.base, v.len, 0};
    sf_skip_sp(&s);
    if (peek(&s) < 0)
        return false; /* an empty line makes the combined value invalid */
    for (;;) {
        if (!sf_member(&s, cc))
            return false;
        (*members)++;
        sf_skip_ows(&s);
        if (peek(&s) < 0)
            return true;
        if (peek(&s) != ',')
            return false;
        s.i++;
        sf_skip_ows(&s);
        if (peek(&s) < 0)
            return false;
    }
}

bool
cn_cc_parse_targeted_value(cn_cc_t *cc, cairn_iov_t value)
{
    cn_cc_t tmp;
    size_t members = 0;
    cn_cc_init(&tmp);
    if (!sf_dictionary(value, &tmp, &members) || members == 0)
        return false;
    tmp.targeted = true;
    *cc = tmp;
    return true;
}

bool
cn_cc_parse_targeted(cn_cc_t *cc, const cn_headers_t *h, cairn_iov_t name)
{
    cn_cc_t tmp;
    size_t members = 0;
    ssize_t i = cn_headers_find(h, name, -1);
    if (i < 0)
        return false;
    cn_cc_init(&tmp);
    for (; i >= 0; i = cn_headers_find(h, name, i))
        if (!sf_dictionary(h->items[i].value, &tmp, &members))
            return false;
    if (members == 0)
        return false;
    tmp.targeted = true;
    *cc = tmp;
    return true;
}
