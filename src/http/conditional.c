/* SPDX-License-Identifier: MIT */
/* Precondition evaluation (RFC 9110 §13.1, §13.2.2) over a request header list. */
#include "http/conditional.h"

#include <sys/types.h>

#include "core/str.h"
#include "core/time.h"
#include "http/etag.h"
#include "http/headers.h"

enum list_match {
    LIST_ABSENT, /* no field line at all */
    LIST_MATCH,
    LIST_NO_MATCH,
};

/* Does one field line of If-Match / If-None-Match match the current validators? */
static bool
line_matches(cairn_iov_t line, const cn_validators_t *v, bool strong)
{
    cairn_iov_t cur, cur_opaque;
    bool cur_weak;
    size_t used, i = 0;

    line = cn_iov_trim(line);
    if (line.len == 1 && line.base[0] == '*')
        return v->exists;
    cur = cn_iov_trim(v->etag);
    if (!v->exists || !cn_etag_parse(cur, &cur_opaque, &cur_weak, &used) || used != cur.len)
        return false;
    if (strong && cur_weak)
        return false;
    while (i < line.len) {
        cairn_iov_t opaque;
        bool weak;
        char c = line.base[i];
        if (c == ' ' || c == '\t' || c == ',') {
            i++;
            continue;
        }
        if (!cn_etag_parse(cn_iov(line.base + i, line.len - i), &opaque, &weak, &used))
            return false;
        if (cn_iov_eq(opaque, cur_opaque) && !(strong && weak))
            return true;
        i += used;
        /* Tags must be separated by a comma (with optional whitespace around it). */
        while (i < line.len && (line.base[i] == ' ' || line.base[i] == '\t'))
            i++;
        if (i < line.len && line.base[i] != ',')
            return false;
    }
    return false;
}

static enum list_match
match_list(const cn_headers_t *req, cairn_iov_t name, const cn_validators_t *v, bool strong)
{
    enum list_match m = LIST_ABSENT;
    for (ssize_t i = cn_headers_find(req, name, -1); i >= 0; i = cn_headers_find(req, name, i)) {
        if (line_matches(req->items[i].value, v, strong))
            return LIST_MATCH;
        m = LIST_NO_MATCH;
    }
    return m;
}

/* The value of a single-valued field, or false when absent or repeated. */
static bool
single_value(const cn_headers_t *req, cairn_iov_t name, cairn_iov_t *out)
{
    ssize_t i = cn_headers_find(req, name, -1);
    if (i < 0 || cn_headers_find(req, name, i) >= 0)
        return false;
    *out = cn_iov_trim(req->items[i].value);
    return true;
}

static bool
date_field(const cn_headers_t *req, cairn_iov_t name, time_t *out)
{
    cairn_iov_t s;
    return single_value(req, name, &s) && cn_time_parse_http_date(s.base, s.len, out);
}

static bool
is_get_or_head(cairn_iov_t method)
{
    return cn_iov_eq(method, CAIRN_IOV_LIT("GET")) || cn_iov_eq(method, CAIRN_IOV_LIT("HEAD"));
}

cn_cond_result_t
cn_cond_evaluate(cairn_iov_t method, const cn_headers_t *req, const cn_validators_t *v)
{
    bool safe = is_get_or_head(method);
    bool has_lm = v->exists && v->last_modified != 0;
    /* §13.1.3: a cache without Last-Modified compares If-Modified-Since with the stored Date. */
    time_t modified = has_lm ? v->last_modified : v->exists ? v->date : 0;
    time_t date;

    /* Step 1, else step 2 (§13.1.4: If-Unmodified-Since is ignored next to If-Match). */
    enum list_match m = match_list(req, CAIRN_IOV_LIT("If-Match"), v, true);
    if (m == LIST_NO_MATCH)
        return CN_COND_PRECONDITION_FAILED;
    if (m == LIST_ABSENT && has_lm &&
        date_field(req, CAIRN_IOV_LIT("If-Unmodified-Since"), &date) && v->last_modified > date)
        return CN_COND_PRECONDITION_FAILED;

    /* Step 3, else step 4 (§13.1.3: If-Modified-Since is ignored next to If-None-Match). */
    m = match_list(req, CAIRN_IOV_LIT("If-None-Match"), v, false);
    if (m == LIST_MATCH)
        return safe ? CN_COND_NOT_MODIFIED : CN_COND_PRECONDITION_FAILED;
    if (m == LIST_ABSENT && safe && modified != 0 &&
        date_field(req, CAIRN_IOV_LIT("If-Modified-Since"), &date) && modified <= date)
        return CN_COND_NOT_MODIFIED;
    return CN_COND_PROCEED;
}

bool
cn_cond_if_range(const cn_headers_t *req, const cn_validators_t *v, time_t now)
{
    cairn_iov_t val, opaque;
    bool weak;
    size_t used;
    time_t date;

    if (cn_headers_find(req, CAIRN_IOV_LIT("If-Range"), -1) < 0)
        return true;
    if (!single_value(req, CAIRN_IOV_LIT("If-Range"), &val) || !v->exists)
        return false;
    if (cn_etag_parse(val, &opaque, &weak, &used))
        return used == val.len && cn_etag_strong_eq(val, v->etag);
    if (!cn_time_parse_http_date(val.base, val.len, &date))
        return false;
    /* §8.8.2.2: a modification time is a strong validator only when the representation
     * cannot have changed again within the same second, i.e. it is at least 1 s old. */
    return v->last_modified != 0 && date == v->last_modified && now - v->last_modified >= 1;
}
