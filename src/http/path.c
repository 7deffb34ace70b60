/* SPDX-License-Identifier: MIT */
/* Path normalisation (RFC 3986 §6.2.2.1-6.2.2.3 and the §5.2.4 dot-segment removal), done in
 * one pass: each input segment is decoded into the output right after its "/", then looked
 * at: a "." or ".." (spelled any way) is taken back out, along with the segment before it
 * for "..". The output only ever shrinks relative to the input consumed so far, so it fits
 * in a buffer of the input's length. */
#include "http/path.h"

#include <string.h>

#include "core/str.h"

struct norm {
    const char *in;
    size_t n; /* input length */
    size_t i; /* next input byte */
    char *out;
    size_t w; /* output length */
    const cn_path_opts_t *opts;
};

static const char hex_upper[] = "0123456789ABCDEF";

/* RFC 3986 §2.3. */
static bool
is_unreserved(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* A "%2F", "%5C" or "\" met in the input: a separator (*sep), a refusal, or kept as @keep. */
static cn_path_result_t
escaped_slash(struct norm *st, const char *keep, size_t keep_len, bool *sep)
{
    switch (st->opts->escaped_slashes) {
    case CN_PATH_SLASHES_DECODE:
        *sep = true;
        return CN_PATH_OK;
    case CN_PATH_SLASHES_REJECT:
        return CN_PATH_ERR_SLASH;
    case CN_PATH_SLASHES_KEEP:
        break;
    }
    memcpy(st->out + st->w, keep, keep_len);
    st->w += keep_len;
    return CN_PATH_OK;
}

/* "%XY" at st->i (the "%" already seen). */
static cn_path_result_t
percent(struct norm *st, bool *sep)
{
    if (st->n - st->i < 3)
        return CN_PATH_ERR_ESCAPE;
    int hi = cn_hex_digit((unsigned char)st->in[st->i + 1]);
    int lo = cn_hex_digit((unsigned char)st->in[st->i + 2]);
    if (hi < 0 || lo < 0)
        return CN_PATH_ERR_ESCAPE;
    st->i += 3;
    unsigned v = (unsigned)(hi << 4 | lo);
    if (is_unreserved(v)) {
        st->out[st->w++] = (char)v;
        return CN_PATH_OK;
    }
    char esc[3] = {'%', hex_upper[hi], hex_upper[lo]};
    if (v == '/' || v == '\\')
        return escaped_slash(st, esc, sizeof(esc), sep);
    memcpy(st->out + st->w, esc, sizeof(esc));
    st->w += sizeof(esc);
    return CN_PATH_OK;
}

/* Consumes one input unit (a byte or an escape): writes its normal form, or sets *sep when
 * it separates segments. */
static cn_path_result_t
next_unit(struct norm *st, bool *sep)
{
    char c = st->in[st->i];
    if (c == '%')
        return percent(st, sep);
    st->i++;
    if (c == '/') {
        *sep = true;
        return CN_PATH_OK;
    }
    if (c == '\\')
        return escaped_slash(st, "\\", 1, sep);
    st->out[st->w++] = c;
    return CN_PATH_OK;
}

/* Removes the last output segment and its "/"; false when there is none (above the root). */
static bool
pop_segment(struct norm *st)
{
    if (st->w == 0)
        return false;
    const char *slash = memrchr(st->out, '/', st->w);
    st->w = (size_t)(slash - st->out); /* every output segment starts with "/" */
    return true;
}

/* The segment written at out[seg] ("/" + text) is complete: apply §5.2.4 and merging to it.
 * The last segment of a path, when it is ".", ".." or empty, leaves a trailing "/". */
static cn_path_result_t
finish_segment(struct norm *st, size_t seg, bool last)
{
    const char *text = st->out + seg + 1;
    size_t len = st->w - seg - 1;

    if (len == 2 && text[0] == '.' && text[1] == '.') {
        st->w = seg;
        if (!pop_segment(st))
            return CN_PATH_ERR_ABOVE_ROOT;
    } else if (len == 1 && text[0] == '.') {
        st->w = seg;
    } else if (len == 0 && !last && st->opts->merge_slashes) {
        st->w = seg;
        return CN_PATH_OK;
    } else {
        return CN_PATH_OK; /* an ordinary segment stays */
    }
    if (last)
        st->out[st->w++] = '/';
    return CN_PATH_OK;
}

cn_path_result_t
cn_path_normalize(cairn_iov_t in, char *out, size_t *out_len, const cn_path_opts_t *opts)
{
    static const cn_path_opts_t defaults = CN_PATH_OPTS_DEFAULT;
    struct norm st = {.in = in.base, .n = in.len, .i = 1, .out = out, .opts = opts};

    if (in.len == 0 || in.base[0] != '/')
        return CN_PATH_ERR_NOT_ABSOLUTE;
    if (st.opts == NULL)
        st.opts = &defaults;
    for (;;) {
        size_t seg = st.w;
        bool sep = false;
        st.out[st.w++] = '/';
        while (!sep && st.i < st.n) {
            cn_path_result_t r = next_unit(&st, &sep);
            if (r != CN_PATH_OK)
                return r;
        }
        cn_path_result_t r = finish_segment(&st, seg, !sep);
        if (r != CN_PATH_OK)
            return r;
        if (!sep)
            break;
    }
    *out_len = st.w;
    return CN_PATH_OK;
}

const char *
cn_path_strerror(cn_path_result_t r)
{
    switch (r) {
    case CN_PATH_OK:
        return "ok";
    case CN_PATH_ERR_NOT_ABSOLUTE:
        return "path does not start with /";
    case CN_PATH_ERR_ESCAPE:
        return "invalid percent-encoding in path";
    case CN_PATH_ERR_ABOVE_ROOT:
        return "path climbs above the root";
    case CN_PATH_ERR_SLASH:
        return "encoded slash or backslash in path";
    }
    return "invalid path";
}
