/* SPDX-License-Identifier: MIT */
/* ETag construction from (size, mtime, inode), parsing and strong/weak comparison. */
#include "http/etag.h"

#include <inttypes.h>
#include <stdio.h>

#include "core/str.h"

size_t
cn_etag_make(char out[CN_ETAG_MAX], uint64_t size, int64_t mtime_ns, uint64_t ino)
{
    uint64_t ns = mtime_ns > 0 ? (uint64_t)mtime_ns : 0;
    uint64_t sec = ns / 1000000000u, frac = ns % 1000000000u;
    int n;

    if (frac == 0 && ino == 0)
        n = snprintf(out, CN_ETAG_MAX, "\"%" PRIx64 "-%" PRIx64 "\"", sec, size);
    else if (ino == 0)
        n = snprintf(out, CN_ETAG_MAX, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"", sec, size, frac);
    else
        n = snprintf(out, CN_ETAG_MAX, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"", sec,
                     size, frac, ino);
    return n > 0 ? (size_t)n : 0;
}

bool
cn_etag_parse(cairn_iov_t s, cairn_iov_t *opaque, bool *weak, size_t *used)
{
    size_t i = 0;
    bool w = false;

    if (s.len >= 2 && s.base[0] == 'W' && s.base[1] == '/') {
        w = true;
        i = 2;
    }
    if (i >= s.len || s.base[i] != '"')
        return false;
    size_t start = i++;
    for (; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c == '"')
            break;
        /* etagc = %x21 / %x23-7E / obs-text */
        if (c < 0x21 || c == 0x7f)
            return false;
    }
    if (i >= s.len)
        return false;
    i++;
    *opaque = (cairn_iov_t){s.base + start, i - start};
    *weak = w;
    *used = i;
    return true;
}

/* Parses @s as exactly one entity-tag (surrounding whitespace allowed). */
static bool
parse_whole(cairn_iov_t s, cairn_iov_t *opaque, bool *weak)
{
    size_t used;
    s = cn_iov_trim(s);
    return cn_etag_parse(s, opaque, weak, &used) && used == s.len;
}

bool
cn_etag_strong_eq(cairn_iov_t a, cairn_iov_t b)
{
    cairn_iov_t oa, ob;
    bool wa, wb;
    return parse_whole(a, &oa, &wa) && parse_whole(b, &ob, &wb) && !wa && !wb && cn_iov_eq(oa, ob);
}

bool
cn_etag_weak_eq(cairn_iov_t a, cairn_iov_t b)
{
    cairn_iov_t oa, ob;
    bool wa, wb;
    return parse_whole(a, &oa, &wa) && parse_whole(b, &ob, &wb) && cn_iov_eq(oa, ob);
}
