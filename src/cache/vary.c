/* SPDX-License-Identifier: MIT */
/* RFC 9111 §4.1 for a shared cache: the Vary secondary key of a request (field names
 * lowercased and sorted, values normalised so equivalent requests select the same variant)
 * and the Vary: * test that makes a response match no request. Pure functions; allocation
 * only from a caller's arena. */
#include "cache/policy.h"
#include "cache/policy_int.h"

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "core/compiler.h"
#include "core/str.h"
#include "http/token.h"

#define LIT CAIRN_IOV_LIT

/* ---- Vary ---- */

/* True when a Vary member is "*" or not a field name (both make the response unusable). */
bool
cn_policy_vary_is_star(const cn_headers_t *resp)
{
    cairn_iov_t vary = LIT("Vary"), item;
    for (ssize_t i = cn_headers_find(resp, vary, -1); i >= 0; i = cn_headers_find(resp, vary, i)) {
        size_t pos = 0;
        while (cn_iov_next_item(resp->items[i].value, ',', &pos, &item))
            if (!cn_http_is_token(item) || cn_iov_eq(item, LIT("*")))
                return true;
    }
    return false;
}

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
        for (pos = 0; cn_iov_next_item(req->items[i].value, ',', &pos, &item);) {
            count++;
            total += item.len;
        }
    cairn_iov_t *members = cn_arena_alloc(a, (count + 1) * sizeof(*members));
    char *bytes = cn_arena_alloc(a, total + 1);
    if (!members || !bytes)
        return CAIRN_ENOMEM;
    size_t n = 0, used = 0;
    for (ssize_t i = cn_headers_find(req, name, -1); i >= 0; i = cn_headers_find(req, name, i))
        for (pos = 0; cn_iov_next_item(req->items[i].value, ',', &pos, &item); n++) {
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
        while (cn_iov_next_item(resp->items[i].value, ',', &pos, &item))
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
        while (cn_iov_next_item(resp->items[i].value, ',', &pos, &item)) {
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

    if (cn_policy_vary_is_star(resp)) {
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
        if (cn_policy_has_field(req, names[i])) {
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
