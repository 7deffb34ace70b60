/* SPDX-License-Identifier: MIT */
/* Range field parsing (RFC 9110 §14.1-14.2), Content-Range values (§14.4) and the
 * multipart/byteranges layout (§14.6). */
#include "http/range.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"

static size_t
skip_ows(const char *p, size_t i, size_t n)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    return i;
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1*DIGIT, saturating at UINT64_MAX: a position past any real length stays past it. */
static bool
parse_pos(const char *p, size_t *i, size_t n, uint64_t *out)
{
    size_t j = *i;
    uint64_t v = 0;

    if (j >= n || !is_digit(p[j]))
        return false;
    for (; j < n && is_digit(p[j]); j++) {
        unsigned d = (unsigned)(p[j] - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *i = j;
    *out = v;
    return true;
}

/* What one range-spec asks for, before it is applied to a length. */
struct range_spec {
    bool suffix;
    uint64_t first; /* or the suffix length */
    uint64_t last;  /* UINT64_MAX when absent */
};

static bool
parse_spec(const char *p, size_t *i, size_t n, struct range_spec *spec)
{
    spec->last = UINT64_MAX;
    if (*i < n && p[*i] == '-') {
        (*i)++;
        spec->suffix = true;
        return parse_pos(p, i, n, &spec->first);
    }
    spec->suffix = false;
    if (!parse_pos(p, i, n, &spec->first) || *i >= n || p[*i] != '-')
        return false;
    (*i)++;
    if (*i < n && is_digit(p[*i])) {
        if (!parse_pos(p, i, n, &spec->last))
            return false;
        /* RFC 9110 §14.1.1: last-pos < first-pos makes the int-range invalid. */
        if (spec->last < spec->first)
            return false;
    }
    return true;
}

/* Clamps @spec to @length; false when it does not overlap the representation. */
static bool
apply_spec(const struct range_spec *spec, uint64_t length, cn_byte_range_t *r)
{
    if (length == 0)
        return false;
    if (spec->suffix) {
        if (spec->first == 0)
            return false;
        r->first = spec->first >= length ? 0 : length - spec->first;
        r->last = length - 1;
        return true;
    }
    if (spec->first >= length)
        return false;
    r->first = spec->first;
    r->last = spec->last >= length ? length - 1 : spec->last;
    return true;
}

static int
cmp_range(const void *a, const void *b)
{
    const cn_byte_range_t *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return x->last < y->last ? -1 : x->last > y->last;
}

/* Sorts and merges overlapping or adjacent ranges in place; returns the new count. */
static size_t
coalesce(cn_byte_range_t *r, size_t n)
{
    size_t w = 0;

    if (n > 1)
        qsort(r, n, sizeof(*r), cmp_range);
    for (size_t i = 1; i < n; i++) {
        /* r[w].last < length ≤ UINT64_MAX, so the + 1 cannot wrap. */
        if (r[i].first <= r[w].last + 1) {
            if (r[i].last > r[w].last)
                r[w].last = r[i].last;
        } else {
            r[++w] = r[i];
        }
    }
    return n ? w + 1 : 0;
}

cn_range_result_t
cn_range_parse(cairn_iov_t value, uint64_t length, cn_byte_range_t *out, size_t max_ranges,
               size_t *n_out)
{
    const cairn_iov_t unit = CAIRN_IOV_LIT("bytes");
    size_t nspecs = 0, nsat = 0, i = unit.len + 1;
    bool empty_whole = false;

    value = cn_iov_trim(value);
    const char *p = value.base;
    size_t n = value.len;
    if (max_ranges == 0 || n <= unit.len || !cn_iov_ieq(cn_iov(p, unit.len), unit) ||
        p[unit.len] != '=')
        return CN_RANGE_NONE;
    for (;;) {
        struct range_spec spec;
        i = skip_ows(p, i, n);
        if (i == n)
            break;
        if (p[i] == ',') {
            /* RFC 9110 §5.6.1: empty list elements are ignored. */
            i++;
            continue;
        }
        if (!parse_spec(p, &i, n, &spec) || ++nspecs > max_ranges)
            return CN_RANGE_NONE;
        if (apply_spec(&spec, length, &out[nsat]))
            nsat++;
        else if (length == 0 && spec.suffix && spec.first > 0)
            empty_whole = true;
        i = skip_ows(p, i, n);
        if (i < n && p[i] != ',')
            return CN_RANGE_NONE;
    }
    if (nspecs == 0)
        return CN_RANGE_NONE;
    if (nsat == 0)
        return empty_whole ? CN_RANGE_NONE : CN_RANGE_UNSATISFIABLE;
    *n_out = coalesce(out, nsat);
    return CN_RANGE_SATISFIABLE;
}

size_t
cn_range_format(char out[CN_RANGE_CONTENT_RANGE_MAX], cn_byte_range_t r, uint64_t length)
{
    int n = snprintf(out, CN_RANGE_CONTENT_RANGE_MAX, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
                     r.first, r.last, length);
    return n > 0 ? (size_t)n : 0;
}

size_t
cn_range_format_unsatisfied(char out[CN_RANGE_CONTENT_RANGE_MAX], uint64_t length)
{
    int n = snprintf(out, CN_RANGE_CONTENT_RANGE_MAX, "bytes */%" PRIu64, length);
    return n > 0 ? (size_t)n : 0;
}

static uint64_t
splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

size_t
cn_range_boundary(char out[CN_RANGE_BOUNDARY_MAX], uint64_t seed)
{
    uint64_t a = splitmix64(&seed), b = splitmix64(&seed);
    int n = snprintf(out, CN_RANGE_BOUNDARY_MAX, "%016" PRIx64 "%016" PRIx64, a, b);
    return n > 0 ? (size_t)n : 0;
}

static bool
has_crlf(cairn_iov_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.base[i] == '\r' || s.base[i] == '\n')
            return true;
    return false;
}

/* Formats one part head into the arena; NULL when over the cap. */
static char *
format_part_head(cn_arena_t *arena, bool first_part, cairn_iov_t boundary, cairn_iov_t ctype,
                 cn_byte_range_t r, uint64_t length, size_t *len_out)
{
    char crange[CN_RANGE_CONTENT_RANGE_MAX];
    size_t crlen = cn_range_format(crange, r, length);
    size_t cap = 2 + 2 + boundary.len + 2 + 14 + ctype.len + 2 + 15 + crlen + 4 + 1;
    char *p = cn_arena_alloc(arena, cap);
    if (p == NULL)
        return NULL;
    int n =
        snprintf(p, cap, "%s--%.*s\r\n%s%.*s%sContent-Range: %s\r\n\r\n", first_part ? "" : "\r\n",
                 (int)boundary.len, boundary.base, ctype.len ? "Content-Type: " : "",
                 (int)ctype.len, ctype.base, ctype.len ? "\r\n" : "", crange);
    *len_out = n > 0 ? (size_t)n : 0;
    return p;
}

cairn_err_t
cn_multipart_build(cn_multipart_t *mp, cn_arena_t *arena, const cn_byte_range_t *ranges, size_t n,
                   cairn_iov_t content_type, uint64_t length, cairn_iov_t boundary)
{
    static const char ct_prefix[] = "multipart/byteranges; boundary=";
    cn_multipart_t m = {0};

    if (n == 0 || boundary.len == 0 || boundary.len > 70 || has_crlf(boundary) ||
        content_type.len > INT_MAX / 2 || has_crlf(content_type) || n > SIZE_MAX / sizeof(*m.parts))
        return CAIRN_EINVAL;
    m.parts = cn_arena_alloc(arena, n * sizeof(*m.parts));
    if (m.parts == NULL)
        return CAIRN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cn_byte_range_t r = ranges[i];
        size_t hlen;
        if (r.first > r.last || r.last >= length)
            return CAIRN_EINVAL;
        char *h = format_part_head(arena, i == 0, boundary, content_type, r, length, &hlen);
        if (h == NULL)
            return CAIRN_ENOMEM;
        m.parts[i].head = cn_iov(h, hlen);
        m.parts[i].range = r;
        uint64_t add = (r.last - r.first + 1) + hlen;
        if (add < hlen || m.body_length > UINT64_MAX - add)
            return CAIRN_EINVAL;
        m.body_length += add;
    }

    size_t tlen = 2 + 2 + boundary.len + 2 + 2;
    char *t = cn_arena_alloc(arena, tlen + 1);
    size_t ctlen = sizeof(ct_prefix) - 1 + boundary.len;
    char *ct = cn_arena_alloc(arena, ctlen + 1);
    if (t == NULL || ct == NULL)
        return CAIRN_ENOMEM;
    snprintf(t, tlen + 1, "\r\n--%.*s--\r\n", (int)boundary.len, boundary.base);
    snprintf(ct, ctlen + 1, "%s%.*s", ct_prefix, (int)boundary.len, boundary.base);
    m.tail = cn_iov(t, tlen);
    m.content_type = cn_iov(ct, ctlen);
    m.n = n;
    if (m.body_length > UINT64_MAX - tlen)
        return CAIRN_EINVAL;
    m.body_length += tlen;
    *mp = m;
    return CAIRN_OK;
}
