/* SPDX-License-Identifier: MIT */
/* What the two halves of the HTTP/1.1 server driver share: the connection and exchange
 * structs and the functions each half calls in the other. server.c (connections, heads,
 * request bodies, discard, linger and close) defines h1_conn_close .. h1_parse_head;
 * server_send.c (the response side) defines h1_ds_send .. h1_on_write. Private to
 * src/http1/: what other folders use is in http1/http1.h. */
#ifndef CN_HTTP1_SERVER_INT_H
#define CN_HTTP1_SERVER_INT_H

#include <uv.h>

#include "core/arena.h"
#include "http1/http1.h"
#include "http1/parser.h"
#include "net/net.h"

#define H1_CONN_MAGIC 0x48314331u
#define H1_MAX_IOV 64

enum h1_state { H1_HEAD = 0, H1_ACTIVE, H1_DISCARD, H1_LINGER };

struct h1_exchange {
    cn_arena_t *arena;
    cn_http_req_t *req;
    bool head_request;
    /* request body */
    int64_t body_left; /* Content-Length bytes still unread, or -1 with chunked */
    cn_h1_chunked_t chunked;
    bool body_chunked;
    bool body_done;
    bool body_wanted;    /* the engine is waiting for on_body */
    size_t body_consume; /* bytes of rbuf handed out in the last on_body */
    uint64_t body_total;
    bool sent_continue;
    /* response */
    bool head_sent;
    bool resp_chunked;
    bool resp_no_body;
    bool resp_done;
    bool writing;
    bool write_eos;
    cairn_iov_t interim; /* 1xx bytes not yet written: they go first in the next send */
    char chunk_line[24];
    cairn_iov_t wiov[H1_MAX_IOV + 5];
};

struct cn_h1_conn {
    uint32_t magic;
    uint8_t state;
    uint8_t keep_alive : 1; /* may serve another request */
    uint8_t head_timer : 1; /* header timeout armed for the current head */
    uint8_t closing : 1;
    uint8_t is_unix : 1;
    cn_sock_t sock;
    uv_timer_t timer;
    cn_h1_server_t *srv;
    cn_h1_conn_t *prev, *next;
    const char *listener;
    struct h1_exchange *ex; /* only while ACTIVE; in the request arena */
    cn_http_ds_t *ds;       /* in the request arena */
    uv_shutdown_t *shut;
    uint64_t id;
    int64_t discard_left;
    cn_h1_chunked_t discard_chunked;
    bool discard_is_chunked;
    /* The peer, taken once at accept (20 bytes, not a 128-byte sockaddr_storage). */
    uint8_t peer_family; /* AF_INET, AF_INET6 or AF_UNIX */
    uint16_t peer_port;  /* network order */
    uint8_t peer_addr[16];
};

/* ---- server.c ---- */

/** Closes @c (at once with an RST when @reset); an exchange in progress is released and the
 *  engine told with on_gone. Idempotent. */
void h1_conn_close(cn_h1_conn_t *c, bool reset);
/** Arms the connection timer for @ms (0 stops it). */
void h1_timer_arm(cn_h1_conn_t *c, uint64_t ms);
/** After a final response with "Connection: close": FIN, then drain input for a while. */
void h1_conn_linger(cn_h1_conn_t *c);
/** Skips the rest of a request body the engine did not read, then serves the next request. */
void h1_discard_body(cn_h1_conn_t *c);
/** Waits for the next request head (keep-alive or header timeout). */
void h1_start_head(cn_h1_conn_t *c);
/** Parses the head in the read buffer and dispatches it (or an error) to the engine. */
void h1_parse_head(cn_h1_conn_t *c);

/* ---- server_send.c: the downstream ops (cn_http_ds_ops_t) and write completion ---- */

void h1_ds_send(cn_http_ds_t *ds, const cn_http_resp_t *resp, const cairn_iov_t *iov, size_t n,
                bool eos);
void h1_ds_abort(cn_http_ds_t *ds);
void h1_ds_send_interim(cn_http_ds_t *ds, unsigned status, const cn_headers_t *headers);
/** The socket's on_write: a send completed (or failed). */
void h1_on_write(cn_sock_t *s, cairn_err_t status);

#endif
