/* SPDX-License-Identifier: MIT */
/* The protocol-neutral request/response model and the boundary between a protocol driver
 * (HTTP/1.1 today, HTTP/2 later) and the request engine. The engine never sees framing:
 * it gets a cn_http_req_t, answers with a cn_http_resp_t plus body slices, and pulls the
 * request body on demand. */
#ifndef CN_HTTP_MSG_H
#define CN_HTTP_MSG_H

#include "http/headers.h"

typedef enum cn_method {
    CN_METHOD_OTHER = 0,
    CN_METHOD_GET,
    CN_METHOD_HEAD,
    CN_METHOD_POST,
    CN_METHOD_PUT,
    CN_METHOD_DELETE,
    CN_METHOD_PATCH,
    CN_METHOD_OPTIONS,
    CN_METHOD_CONNECT,
    CN_METHOD_TRACE,
} cn_method_t;

typedef struct cn_http_req {
    cn_method_t method_id;
    cairn_iov_t method;
    cairn_iov_t scheme;    /* "http" or "https" */
    cairn_iov_t authority; /* Host (or the absolute-form authority) */
    cairn_iov_t path;      /* without the query */
    cairn_iov_t query;     /* without '?' */
    bool has_query;
    int version; /* 10, 11 or 20 */
    cn_headers_t headers;
    int64_t content_length; /* -1 when the body length is unknown (chunked) */
    bool has_body;
    bool expect_continue;
    bool keep_alive;       /* the client allows another request on this connection; the engine
                              clears it to have the connection closed after the response */
    unsigned error_status; /* non-zero: the head was refused (400, 413, 414, 431, 505 ...) */
    const char *error;     /* short reason for the log when error_status is set */
} cn_http_req_t;

typedef struct cn_http_resp {
    unsigned status;
    cn_headers_t headers;   /* without framing fields: drivers add Content-Length etc. */
    int64_t content_length; /* -1 = unknown (chunked / close-delimited on HTTP/1.1) */
} cn_http_resp_t;

typedef struct cn_http_ds cn_http_ds_t;

/** Operations the engine calls on the client side of one exchange (a "downstream"). */
typedef struct cn_http_ds_ops {
    /** Sends @resp's head (on the first call) and @n body slices; @eos ends the response.
     *  Slices must stay valid until on_sent. At most one send in flight. */
    void (*send)(cn_http_ds_t *ds, const cn_http_resp_t *resp, const cairn_iov_t *iov, size_t n,
                 bool eos);
    /** Asks for more request body; answered once through on_body. The slice of the
     *  previous on_body stays valid until this call. */
    void (*read_body)(cn_http_ds_t *ds);
    /** The response cannot be completed: reset the stream/connection, never end it cleanly. */
    void (*abort)(cn_http_ds_t *ds);
    /** Relays an interim (1xx) response before the final head; dropped where the protocol
     *  version cannot carry it (HTTP/1.0). @headers are copied. Optional (NULL). */
    void (*send_interim)(cn_http_ds_t *ds, unsigned status, const cn_headers_t *headers);
} cn_http_ds_ops_t;

struct cn_http_ds {
    const cn_http_ds_ops_t *ops;
    void *session;   /* the engine's object for this exchange; NULL once released */
    void *driver;    /* the protocol driver's object (connection or stream) */
    char client[48]; /* peer address text */
    struct sockaddr_storage *client_addr;
    uint64_t conn_id;
    const char *listener; /* listener name, or NULL */
    bool tls;
    /* The connection's TLS facts (static or connection-lived strings; NULL when plain). */
    const char *tls_version, *tls_cipher, *tls_sni;
    struct cn_sock *tls_sock; /* the TLS connection (client certificate identity), or NULL */
    bool tls_resumed;
};

/** Upcalls from protocol drivers into the engine (one table, installed at startup). */
typedef struct cn_http_handler {
    /** A request head arrived. @arena is the request's arena (owned by the driver until
     *  on_done). Returns the engine's session object, stored in ds->session. */
    void *(*on_request)(void *ctx, cn_http_ds_t *ds, cn_http_req_t *req, cn_arena_t *arena);
    /** The previous send completed (or failed; then no more sends happen). */
    void (*on_sent)(void *session, cairn_err_t status);
    /** Request body bytes (@data), @eos at the end, or an error (status != OK). */
    void (*on_body)(void *session, cairn_iov_t data, bool eos, cairn_err_t status);
    /** The client went away before the exchange ended. The engine must stop using @ds
     *  before returning (it may finish background work, e.g. a cache fill, on its own). */
    void (*on_gone)(void *session);
} cn_http_handler_t;

cn_method_t cn_method_from_iov(cairn_iov_t m);
/** Reason phrase of @status ("Not Found"); "Unknown" when unlisted. */
const char *cn_status_reason(unsigned status);
/** The short text body of a status cairn answers itself: "404 Not Found\n", in @a. */
cairn_iov_t cn_status_body(cn_arena_t *a, unsigned status);
/** True when a response with @status never has a body (1xx, 204, 304). */
static inline bool
cn_status_has_no_body(unsigned status)
{
    return status < 200 || status == 204 || status == 304;
}

#endif
