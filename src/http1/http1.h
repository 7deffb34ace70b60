/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 server driver: turns client connections into cn_http_req_t exchanges for the
 * engine (through cn_http_handler_t) and frames the engine's responses. One cn_h1_server_t
 * per worker; every connection belongs to it for life. */
#ifndef CN_HTTP1_HTTP1_H
#define CN_HTTP1_HTTP1_H

#include <uv.h>

#include "http/msg.h"
#include "http1/parser.h"

typedef struct cn_h1_settings {
    cn_h1_limits_t limits;
    uint64_t header_timeout_ms;
    uint64_t keepalive_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t send_timeout_ms;
    uint64_t max_body_size;    /* 0 = unlimited */
    size_t request_memory;     /* request arena cap */
    const char *server_header; /* NULL or "" = none */
} cn_h1_settings_t;

typedef struct cn_h1_conn cn_h1_conn_t;
typedef struct cn_h1_server cn_h1_server_t;

struct cn_h1_server {
    uv_loop_t *loop;
    const cn_h1_settings_t *settings; /* read at each request start; swapped on reload */
    const cn_http_handler_t *handler;
    void *handler_ctx;
    cn_h1_conn_t *conns; /* intrusive list of live connections */
    size_t n_conns;
    size_t n_active; /* connections with an exchange in progress */
    bool draining;
    uint64_t (*next_id)(void);            /* connection ids, unique in the process */
    void (*on_idle)(cn_h1_server_t *srv); /* called when draining and the last conn closed */
    /* Optional: a TLS handshake of a connection of listener @name ended. */
    void (*on_tls)(cn_h1_server_t *srv, const char *name, bool ok, bool resumed);
    void *data;
};

void cn_h1_server_init(cn_h1_server_t *srv, uv_loop_t *loop, const cn_h1_settings_t *settings,
                       const cn_http_handler_t *handler, void *ctx);
struct cn_tls_ctx;
/** Accepts one pending connection from @listener. @name: the listener's name (borrowed for
 *  the server's lifetime) or NULL. @tls: serve TLS with this context (net/tls.h), or NULL. */
void cn_h1_server_accept(cn_h1_server_t *srv, uv_stream_t *listener, bool is_unix, const char *name,
                         struct cn_tls_ctx *tls);
/** Graceful drain: idle connections close now, busy ones after their current response.
 *  on_idle runs once nothing is left. */
void cn_h1_server_drain(cn_h1_server_t *srv);
/** Closes every connection now (fast shutdown); in-flight exchanges are cut. */
void cn_h1_server_close_all(cn_h1_server_t *srv);
/** Writes the HTTP-date of the current second (cached per thread) into @out (30 bytes). */
const char *cn_h1_date_now(void);

/** A parser's field array of @n entries, recycled per thread (no malloc per message when
 *  @n is at most the default max_headers + 1). Give it back with cn_h1_headers_put(). */
cn_h1_header_t *cn_h1_headers_get(size_t n);
void cn_h1_headers_put(cn_h1_header_t *h, size_t n);

#endif
