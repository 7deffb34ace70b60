/* SPDX-License-Identifier: MIT */
/* Chunked transfer coding decoder (RFC 9112 §7.1), a byte-driven state machine so that any
 * split of the input decodes to the same body. Chunk data is handed out as slices of the
 * input, never copied. */
#include "http1/parser.h"

#include <string.h>

#include "core/str.h"

#define MAX_CHUNK_LINE 4096             /* chunk-size and extensions, CRLF excluded */
#define MAX_SIZE_DIGITS 16              /* hex digits in chunk-size */
#define DEFAULT_MAX_TRAILER (16 * 1024) /* trailer section, final CRLF included */

enum chunk_state {
    C_SIZE = 0,    /* chunk-size hex digits */
    C_SIZE_BWS,    /* whitespace after the size or an extension value: only ';' may follow */
    C_NAME_START,  /* after ';': BWS, then an extension name */
    C_NAME,        /* extension name */
    C_NAME_BWS,    /* whitespace after a name: '=' or ';' must follow */
    C_VALUE_START, /* after '=': BWS, then a token or a quoted-string */
    C_TOKEN,       /* token extension value */
    C_QUOTED,      /* inside a quoted-string value */
    C_QUOTED_PAIR, /* after a backslash inside a quoted-string */
    C_QUOTED_END,  /* after the closing quote */
    C_SIZE_LF,     /* CR of the size line seen */
    C_DATA,        /* chunk data, c->remaining bytes to go */
    C_DATA_CR,     /* CRLF after chunk data */
    C_DATA_LF,
    C_TRAILER_START, /* beginning of a trailer line (or of the final CRLF) */
    C_TRAILER_NAME,
    C_TRAILER_VALUE,
    C_TRAILER_LF,
    C_END_LF, /* CR of the final empty line seen */
    C_DONE,
    C_ERROR,
};

static bool
is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* qdtext and the characters allowed after a backslash (RFC 9110 §5.6.4). */
static bool
is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

static bool
is_quoted_pair_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

void
cn_h1_chunked_init(cn_h1_chunked_t *c)
{
    memset(c, 0, sizeof(*c));
    c->state = C_SIZE;
}

/* The end of a size line: the chunk data or the trailer section follows. */
static int
end_size_line(cn_h1_chunked_t *c)
{
    c->line_len = 0;
    return c->remaining ? C_DATA : C_TRAILER_START;
}

/* Accepts one byte of a chunk-size digit run. Returns the next state or C_ERROR. */
static int
step_size(cn_h1_chunked_t *c, unsigned char ch)
{
    int d = cn_hex_digit(ch);
    if (d >= 0) {
        if (c->line_len > MAX_SIZE_DIGITS) {
            c->error = "chunk size too long";
            return C_ERROR;
        }
        if (c->remaining > ((uint64_t)INT64_MAX - (uint64_t)d) / 16) {
            c->error = "chunk size overflow";
            return C_ERROR;
        }
        c->remaining = c->remaining * 16 + (uint64_t)d;
        return C_SIZE;
    }
    if (c->line_len == 1) {
        c->error = "invalid chunk size";
        return C_ERROR;
    }
    if (ch == ';')
        return C_NAME_START;
    if (is_ows(ch))
        return C_SIZE_BWS;
    if (ch == '\r')
        return C_SIZE_LF;
    c->error = ch == '\n' ? "bare LF in chunk line" : "invalid chunk size";
    return C_ERROR;
}

/* After an extension name or value: ';', BWS or the end of the line. */
static int
after_ext_item(unsigned char ch)
{
    if (ch == ';')
        return C_NAME_START;
    if (is_ows(ch))
        return C_SIZE_BWS;
    if (ch == '\r')
        return C_SIZE_LF;
    return C_ERROR;
}

/* One byte of the chunk-size line after the digits (extensions, RFC 9112 §7.1.1). */
static int
step_ext(int state, unsigned char ch)
{
    switch (state) {
    case C_SIZE_BWS:
        return is_ows(ch) ? C_SIZE_BWS : ch == ';' ? C_NAME_START : C_ERROR;
    case C_NAME_START:
        return is_ows(ch) ? C_NAME_START : cn_h1_is_tchar(ch) ? C_NAME : C_ERROR;
    case C_NAME:
        if (cn_h1_is_tchar(ch))
            return C_NAME;
        if (ch == '=')
            return C_VALUE_START;
        return is_ows(ch) ? C_NAME_BWS : after_ext_item(ch);
    case C_NAME_BWS:
        return is_ows(ch)  ? C_NAME_BWS
               : ch == '=' ? C_VALUE_START
               : ch == ';' ? C_NAME_START
                           : C_ERROR;
    case C_VALUE_START:
        if (is_ows(ch))
            return C_VALUE_START;
        return ch == '"' ? C_QUOTED : cn_h1_is_tchar(ch) ? C_TOKEN : C_ERROR;
    case C_TOKEN:
        return cn_h1_is_tchar(ch) ? C_TOKEN : after_ext_item(ch);
    case C_QUOTED:
        return ch == '"'       ? C_QUOTED_END
               : ch == '\\'    ? C_QUOTED_PAIR
               : is_qdtext(ch) ? C_QUOTED
                               : C_ERROR;
    case C_QUOTED_PAIR:
        return is_quoted_pair_char(ch) ? C_QUOTED : C_ERROR;
    case C_QUOTED_END:
        return after_ext_item(ch);
    default:
        return C_ERROR;
    }
}

/* One byte of the trailer section (RFC 9112 §7.1.2): field lines, then CRLF. */
static int
step_trailer(cn_h1_chunked_t *c, unsigned char ch)
{
    switch (c->state) {
    case C_TRAILER_START:
        if (ch == '\r')
            return C_END_LF;
        if (cn_h1_is_tchar(ch))
            return C_TRAILER_NAME;
        c->error = is_ows(ch) ? "obsolete line folding in trailer" : "invalid trailer field";
        return C_ERROR;
    case C_TRAILER_NAME:
        if (cn_h1_is_tchar(ch))
            return C_TRAILER_NAME;
        if (ch == ':')
            return C_TRAILER_VALUE;
        c->error = "invalid trailer field name";
        return C_ERROR;
    case C_TRAILER_VALUE:
        if (ch == '\r')
            return C_TRAILER_LF;
        if (ch == '\t' || (ch >= 0x20 && ch != 0x7f))
            return C_TRAILER_VALUE;
        c->error = "invalid character in trailer value";
        return C_ERROR;
    case C_TRAILER_LF:
        return ch == '\n' ? C_TRAILER_START : C_ERROR;
    case C_END_LF:
        return ch == '\n' ? C_DONE : C_ERROR;
    default:
        return C_ERROR;
    }
}

static int
step_trailer_counted(cn_h1_chunked_t *c, unsigned char ch)
{
    size_t max = c->max_trailer ? c->max_trailer : DEFAULT_MAX_TRAILER;
    int next;

    if (++c->trailer_len > max) {
        c->error = "trailer section too large";
        return C_ERROR;
    }
    if (ch == '\n' && c->state != C_TRAILER_LF && c->state != C_END_LF) {
        c->error = "bare LF in trailer section";
        return C_ERROR;
    }
    next = step_trailer(c, ch);
    if (next == C_ERROR && c->error == NULL)
        c->error = "bare CR in trailer section";
    return next;
}

/* One byte outside chunk data. Returns the next state; C_ERROR with c->error set. */
static int
step(cn_h1_chunked_t *c, unsigned char ch)
{
    int next;

    switch (c->state) {
    case C_SIZE_LF:
        if (ch != '\n') {
            c->error = "bare CR in chunk line";
            return C_ERROR;
        }
        return end_size_line(c);
    case C_DATA_CR:
        next = ch == '\r' ? C_DATA_LF : C_ERROR;
        break;
    case C_DATA_LF:
        next = ch == '\n' ? C_SIZE : C_ERROR;
        break;
    case C_TRAILER_START:
    case C_TRAILER_NAME:
    case C_TRAILER_VALUE:
    case C_TRAILER_LF:
    case C_END_LF:
        return step_trailer_counted(c, ch);
    default:
        if (++c->line_len > MAX_CHUNK_LINE + 1) { /* the line and its CR */
            c->error = "chunk line too long";
            return C_ERROR;
        }
        if (c->state == C_SIZE)
            return step_size(c, ch);
        if (ch == '\n') {
            c->error = "bare LF in chunk line";
            return C_ERROR;
        }
        next = step_ext(c->state, ch);
        if (next == C_ERROR)
            c->error = "invalid chunk extension";
        return next;
    }
    if (next == C_ERROR)
        c->error = "chunk data not followed by CRLF";
    return next;
}

cn_h1_result_t
cn_h1_chunked_decode(cn_h1_chunked_t *c, const char *in, size_t len, size_t *consumed,
                     cairn_iov_t *data)
{
    size_t pos = 0;

    data->base = (char *)in;
    data->len = 0;
    *consumed = 0;
    if (c->state == C_ERROR)
        return CN_H1_ERROR;
    if (c->state == C_DONE)
        return CN_H1_OK;
    while (pos < len) {
        if (c->state == C_DATA) {
            size_t n = len - pos;
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            data->base = (char *)in + pos;
            data->len = n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = C_DATA_CR;
            *consumed = pos + n;
            return CN_H1_OK;
        }
        int next = step(c, (unsigned char)in[pos]);
        if (next == C_ERROR) {
            c->state = C_ERROR;
            *consumed = pos;
            return CN_H1_ERROR;
        }
        c->state = next;
        pos++;
        if (next == C_DONE) {
            c->done = true;
            *consumed = pos;
            return CN_H1_OK;
        }
    }
    *consumed = pos;
    return CN_H1_INCOMPLETE;
}
