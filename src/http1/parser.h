/* SPDX-License-Identifier: MIT */
/* Strict RFC 9112 parsers: request head, response head, chunked body. They never allocate:
 * results are slices of the caller's buffer, headers go into a caller-provided array.
 * Private to src/http1/ (server.c and client.c use it); fuzzed by fuzz/fuzz_h1_*.c. */
#ifndef CN_HTTP1_PARSER_H
#define CN_HTTP1_PARSER_H

#include "core/types.h"

typedef enum cn_h1_result {
    CN_H1_OK = 0,     /* a complete element was parsed (or progress was made) */
    CN_H1_INCOMPLETE, /* more input is needed */
    CN_H1_ERROR,      /* malformed or ambiguous: status and error are set */
} cn_h1_result_t;

typedef struct cn_h1_header {
    cairn_iov_t name;  /* as received (case preserved), validated token */
    cairn_iov_t value; /* OWS trimmed both sides */
} cn_h1_header_t;

typedef struct cn_h1_limits {
    size_t max_head;    /* whole head incl. request line and final CRLF; over → 431 */
    size_t max_headers; /* number of header fields; over → 431 */
    size_t max_target;  /* request-target length; over → 414 */
} cn_h1_limits_t;

typedef struct cn_h1_request {
    cairn_iov_t method;
    cairn_iov_t
        target;       /* as received: origin-form, absolute-form, authority-form (CONNECT) or "*" */
    cairn_iov_t path; /* origin-form path (for absolute-form: the path part, "/" if empty) */
    cairn_iov_t query; /* after '?', without it; len 0 when none (has_query tells "?" alone) */
    bool has_query;
    cairn_iov_t host;  /* Host header value, or the authority of an absolute-form target */
    int minor_version; /* 0 or 1 */
    cn_h1_header_t *headers;
    size_t n_headers;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
    bool expect_continue;   /* Expect: 100-continue */
    bool upgrade;           /* Connection: upgrade and an Upgrade header */
    size_t head_len;        /* bytes of the head including the empty line */
    unsigned status;        /* on CN_H1_ERROR: 400, 414, 431, 501 or 505 */
    const char *error;      /* on CN_H1_ERROR: short static reason, for logs */
} cn_h1_request_t;

/** Parses a request head from @buf[0..@len). @hdrs has room for @hdr_cap fields (at least
 *  lim->max_headers). CN_H1_OK: @req is filled, req->head_len bytes were the head.
 *  CN_H1_INCOMPLETE: no complete head yet and no limit exceeded. CN_H1_ERROR: req->status
 *  and req->error say why. Every ambiguous shape (RFC 9112 §6.1, §6.3, §11.2) is an error. */
cn_h1_result_t cn_h1_parse_request(const char *buf, size_t len, const cn_h1_limits_t *lim,
                                   cn_h1_request_t *req, cn_h1_header_t *hdrs, size_t hdr_cap);

typedef struct cn_h1_response {
    int minor_version;
    unsigned status; /* 100..999 */
    cairn_iov_t reason;
    cn_h1_header_t *headers;
    size_t n_headers;
    int64_t content_length; /* -1 when absent */
    bool chunked;
    bool keep_alive;      /* the connection may be reused after this response */
    bool close_delimited; /* body runs until the connection closes */
    bool no_body;         /* 1xx, 204, 304, or a response to HEAD */
    size_t head_len;
    const char *error; /* on CN_H1_ERROR */
} cn_h1_response_t;

/** Parses a response head. @head_request: the request was HEAD (no body follows).
 *  Same result contract as cn_h1_parse_request; a 1xx response is returned like any other
 *  (the caller skips it and parses the next head). */
cn_h1_result_t cn_h1_parse_response(const char *buf, size_t len, const cn_h1_limits_t *lim,
                                    bool head_request, cn_h1_response_t *resp, cn_h1_header_t *hdrs,
                                    size_t hdr_cap);

typedef struct cn_h1_chunked {
    int state;
    uint64_t remaining; /* bytes of chunk data still to come */
    size_t line_len;    /* bytes of the current size/extension/trailer line so far */
    size_t trailer_len; /* bytes of trailer section so far */
    size_t max_trailer; /* limit for the trailer section (0 = 16 KiB) */
    bool done;          /* the last chunk and trailer section were consumed */
    const char *error;
} cn_h1_chunked_t;

void cn_h1_chunked_init(cn_h1_chunked_t *c);
/** Decodes from @in[0..@len): *@consumed is set to the bytes used and *@data to the body
 *  bytes found (a slice of @in, possibly empty). Call repeatedly with the remaining input.
 *  Returns CN_H1_OK after progress (c->done once the message ended; bytes after the end are
 *  not consumed), CN_H1_INCOMPLETE when all input was used and more is needed,
 *  CN_H1_ERROR on a malformed chunk (c->error says why). */
cn_h1_result_t cn_h1_chunked_decode(cn_h1_chunked_t *c, const char *in, size_t len,
                                    size_t *consumed, cairn_iov_t *data);

/** RFC 9110 §5.6.2 token character. */
bool cn_h1_is_tchar(unsigned char c);

#endif
