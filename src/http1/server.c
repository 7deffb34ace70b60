/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 server connections: accepting, timers, reading and parsing request heads,
 * dispatching exchanges to the engine, request bodies, discarding unread bodies, linger and
 * close, drain. The response side (head building, sending, interim responses, write
 * completion, the end of an exchange, abort) is in server_send.c; what both share is in
 * server_int.h. States: HEAD (waiting for a request head), ACTIVE (an exchange is with the
 * engine), DISCARD (skipping an unread request body before the next request), LINGER
 * (response sent, write side shut, draining input before close). Responses go out in request
 * order because a new head is parsed only once the previous exchange ended. */
#include "http1/server_int.h"

#include <stdio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/assert.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/str.h"
#include "core/time.h"
#include "net/net.h"
#include "net/tls.h"

#define H1_LINGER_MS 2000

/* Connections are recycled per thread (accept-heavy loads allocate one per request). */
static cn_pool_t conn_pool = CN_POOL_INIT("h1-conn", sizeof(struct cn_h1_conn), 1024);

/* The parsers' field arrays: one per message being parsed, back in the pool before the
 * message is handed on (the fields are copied into the request arena). Sized for the
 * default max_headers; a larger configured limit falls back to malloc. */
#define H1_POOLED_HEADERS 101
static cn_pool_t headers_pool =
    CN_POOL_INIT("h1-headers", H1_POOLED_HEADERS * sizeof(cn_h1_header_t), 4);

cn_h1_header_t *
cn_h1_headers_get(size_t n)
{
    if (n <= H1_POOLED_HEADERS)
        return cn_pool_xalloc(&headers_pool);
    return cn_xmalloc(n * sizeof(cn_h1_header_t));
}

void
cn_h1_headers_put(cn_h1_header_t *h, size_t n)
{
    if (n <= H1_POOLED_HEADERS)
        cn_pool_free(&headers_pool, h);
    else
        cn_free(h);
}

static void conn_process(cn_h1_conn_t *c);
static void remember_peer(cn_h1_conn_t *c);
static void dispatch_error(cn_h1_conn_t *c, unsigned status, const char *why);
static void ds_read_body(cn_http_ds_t *ds);

static const cn_http_ds_ops_t h1_ds_ops = {
    .send = h1_ds_send,
    .read_body = ds_read_body,
    .abort = h1_ds_abort,
    .send_interim = h1_ds_send_interim,
};

/* ---- date ------------------------------------------------------------------------------ */

const char *
cn_h1_date_now(void)
{
    static _Thread_local time_t last;
    static _Thread_local char date[30];
    time_t now = time(NULL);
    if (now != last) {
        cn_time_http_date(now, date);
        last = now;
    }
    return date;
}

/* ---- timers ---------------------------------------------------------------------------- */

/* Bytes the kernel holds for this connection that the loop has not read yet. libuv runs due
 * timers before it polls, so after a long loop iteration a keep-alive or header timer can
 * fire while the client's request already sits in the socket. */
static bool
bytes_waiting(cn_h1_conn_t *c)
{
    uv_os_fd_t fd;
    int n = 0;
    return uv_fileno(&c->sock.u.handle, &fd) == 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* How long a timed-out head waits when its bytes are in the kernel: the next poll reads them. */
#define H1_TIMEOUT_RECHECK_MS 100

static void
on_timeout(uv_timer_t *t)
{
    cn_h1_conn_t *c = t->data;
    CN_CHECK_OBJ(c, H1_CONN_MAGIC);
    switch (c->state) {
    case H1_HEAD:
        if (c->sock.reading && bytes_waiting(c)) {
            /* Not the client's delay but ours: read first, then judge. */
            uv_timer_start(&c->timer, on_timeout, H1_TIMEOUT_RECHECK_MS, 0);
            return;
        }
        if (c->sock.rbuf.len == 0 && !c->head_timer) {
            CN_LOG_DEBUG(c->id, "keep-alive timeout, closing connection");
            h1_conn_close(c, false);
            return;
        }
        /* Slowloris: a head that never completes gets 408 (through the engine, so it is logged). */
        CN_LOG_DEBUG(c->id, "request header timeout");
        break;
    case H1_ACTIVE:
        if (c->ex != NULL && c->ex->body_wanted) {
            CN_LOG_DEBUG(c->id, "request body timeout");
            c->ex->body_wanted = false;
            c->keep_alive = 0;
            c->srv->handler->on_body(c->ds->session, cn_iov(NULL, 0), false, CAIRN_ETIMEDOUT);
            return;
        }
        CN_LOG_DEBUG(c->id, "send timeout, closing connection");
        h1_conn_close(c, true);
        return;
    case H1_DISCARD:
    case H1_LINGER:
    default:
        h1_conn_close(c, false);
        return;
    }
    /* Header timeout: answer 408 through the engine. */
    c->state = H1_ACTIVE;
    c->keep_alive = 0;
    cn_sock_read_stop(&c->sock);
    cn_buf_consume(&c->sock.rbuf, c->sock.rbuf.len);
    dispatch_error(c, 408, "request header timeout");
}

void
h1_timer_arm(cn_h1_conn_t *c, uint64_t ms)
{
    if (ms == 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timeout, ms, 0);
}

/* ---- connection lifetime --------------------------------------------------------------- */

static void
on_timer_closed(uv_handle_t *h)
{
    cn_h1_conn_t *c = h->data;
    cn_h1_server_t *srv = c->srv;
    c->magic = 0;
    cn_free(c->shut);
    cn_pool_free(&conn_pool, c);
    if (srv->draining && srv->n_conns == 0 && srv->on_idle != NULL)
        srv->on_idle(srv);
}

/* The timer handle is closed last and its callback frees the connection. */
static void
on_sock_closed(cn_sock_t *s)
{
    cn_h1_conn_t *c = s->data;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void
release_exchange(cn_h1_conn_t *c, bool gone)
{
    if (c->ex == NULL)
        return;
    cn_http_ds_t *ds = c->ds;
    c->ex = NULL;
    c->ds = NULL;
    c->srv->n_active--;
    if (gone && ds->session != NULL) {
        void *session = ds->session;
        ds->session = NULL;
        c->srv->handler->on_gone(session);
    }
}

void
h1_conn_close(cn_h1_conn_t *c, bool reset)
{
    if (c->closing)
        return;
    c->closing = 1;
    release_exchange(c, true);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->srv->n_conns--;
    uv_timer_stop(&c->timer);
    /* The socket closes first, then the timer; the timer's close callback frees @c. */
    cn_sock_close(&c->sock, reset);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    (void)req;
}

/* After a final response with "Connection: close": send FIN, keep reading (and dropping)
 * what the client still sends for a short time so our close does not turn into an RST that
 * could destroy the response in the client's receive buffer (nginx's lingering close). */
void
h1_conn_linger(cn_h1_conn_t *c)
{
    c->state = H1_LINGER;
    cn_buf_consume(&c->sock.rbuf, c->sock.rbuf.len);
    if (c->shut == NULL)
        c->shut = cn_xcalloc(1, sizeof(*c->shut));
    cn_sock_close_notify(&c->sock);
    if (uv_shutdown(c->shut, &c->sock.u.stream, on_shutdown) != 0) {
        h1_conn_close(c, false);
        return;
    }
    h1_timer_arm(c, H1_LINGER_MS);
    cn_sock_read_start(&c->sock);
}

/* ---- reading --------------------------------------------------------------------------- */

static void
on_read(cn_sock_t *s, cairn_err_t status)
{
    cn_h1_conn_t *c = s->data;
    CN_CHECK_OBJ(c, H1_CONN_MAGIC);
    if (status != CAIRN_OK) {
        if (c->state == H1_ACTIVE && c->ex != NULL)
            CN_LOG_DEBUG(c->id, "client closed the connection during the exchange");
        h1_conn_close(c, false);
        return;
    }
    if (c->state == H1_LINGER) {
        cn_buf_consume(&s->rbuf, s->rbuf.len);
        return;
    }
    conn_process(c);
}

void
h1_start_head(cn_h1_conn_t *c)
{
    c->state = H1_HEAD;
    c->head_timer = 0;
    if (c->srv->draining) {
        h1_conn_close(c, false);
        return;
    }
    if (c->sock.rbuf.len == 0) {
        /* Idle keep-alive connections hold no read buffer (STYLE: bounded memory). */
        cn_buf_fini(&c->sock.rbuf);
        c->sock.read_chunk = 0;
        h1_timer_arm(c, c->srv->settings->keepalive_timeout_ms);
    } else {
        c->head_timer = 1;
        h1_timer_arm(c, c->srv->settings->header_timeout_ms);
    }
    c->sock.rbuf_limit = c->srv->settings->limits.max_head + 1;
    cn_sock_read_start(&c->sock);
}

void
cn_h1_server_init(cn_h1_server_t *srv, uv_loop_t *loop, const cn_h1_settings_t *settings,
                  const cn_http_handler_t *handler, void *ctx)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->settings = settings;
    srv->handler = handler;
    srv->handler_ctx = ctx;
}

static void
on_handshake(cn_sock_t *s, bool ok)
{
    cn_h1_conn_t *c = s->data;
    cn_tls_info_t ti;
    if (c->srv->on_tls != NULL)
        c->srv->on_tls(c->srv, c->listener, ok, ok && cn_tls_get_info(s, &ti) && ti.resumed);
}

void
cn_h1_server_accept(cn_h1_server_t *srv, uv_stream_t *listener, bool is_unix, const char *name,
                    struct cn_tls_ctx *tls)
{
    cn_h1_conn_t *c = cn_pool_xalloc(&conn_pool);
    memset(c, 0, sizeof(*c));
    c->magic = H1_CONN_MAGIC;
    c->srv = srv;
    c->listener = name;
    c->sock.data = c;
    c->sock.on_read = on_read;
    c->sock.on_write = h1_on_write;
    c->sock.on_close = on_sock_closed;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    if (cn_sock_accept(listener, &c->sock, is_unix) != CAIRN_OK) {
        c->closing = 1;
        cn_sock_close(&c->sock, false);
        return;
    }
    c->sock.on_handshake = tls != NULL ? on_handshake : NULL;
    if (tls != NULL && cn_tls_accept(&c->sock, tls) != CAIRN_OK) {
        c->closing = 1;
        cn_sock_close(&c->sock, true);
        return;
    }
    c->is_unix = is_unix;
    cn_sock_tune(&c->sock);
    remember_peer(c);
    c->id = srv->next_id ? srv->next_id() : 0;
    c->keep_alive = 1;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    /* The first head of a connection gets the header timeout, not the idle one. */
    c->state = H1_HEAD;
    c->head_timer = 1;
    h1_timer_arm(c, srv->settings->header_timeout_ms);
    c->sock.rbuf_limit = srv->settings->limits.max_head + 1;
    cn_sock_read_start(&c->sock);
}

/* ---- dispatching requests to the engine ------------------------------------------------ */

static void
remember_peer(cn_h1_conn_t *c)
{
    struct sockaddr_storage ss;
    char text[64];
    cn_sock_peer(&c->sock, text, sizeof(text), &ss);
    c->peer_family = (uint8_t)ss.ss_family;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        memcpy(c->peer_addr, &in->sin_addr, 4);
        c->peer_port = in->sin_port;
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        memcpy(c->peer_addr, &in6->sin6_addr, 16);
        c->peer_port = in6->sin6_port;
    }
}

/* The text form of an address; the last one is kept per thread (clients behind a load
 * balancer, or a benchmark, come from a few addresses). */
static void
peer_text(int family, const uint8_t *addr, char *text, size_t n)
{
    static _Thread_local int last_family;
    static _Thread_local uint8_t last_addr[16];
    static _Thread_local char last_text[INET6_ADDRSTRLEN];
    size_t alen = family == AF_INET ? 4 : 16;
    if (family != last_family || memcmp(addr, last_addr, alen) != 0) {
        if (inet_ntop(family, addr, last_text, sizeof(last_text)) == NULL)
            memcpy(last_text, "-", 2);
        last_family = family;
        memcpy(last_addr, addr, alen);
    }
    size_t l = strlen(last_text);
    if (l >= n)
        l = n - 1;
    memcpy(text, last_text, l);
    text[l] = '\0';
}

/* The peer as a sockaddr (in @arena) and as text, from what remember_peer kept. */
static struct sockaddr_storage *
peer_of(const cn_h1_conn_t *c, cn_arena_t *arena, char *text, size_t n)
{
    struct sockaddr_storage *ss = cn_arena_xalloc(arena, sizeof(*ss));
    memset(ss, 0, sizeof(*ss));
    ss->ss_family = c->peer_family;
    if (c->peer_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        memcpy(&in->sin_addr, c->peer_addr, 4);
        in->sin_port = c->peer_port;
        peer_text(AF_INET, c->peer_addr, text, n);
    } else if (c->peer_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        memcpy(&in6->sin6_addr, c->peer_addr, 16);
        in6->sin6_port = c->peer_port;
        peer_text(AF_INET6, c->peer_addr, text, n);
    } else {
        snprintf(text, n, "unix");
    }
    return ss;
}

static cn_http_ds_t *
new_exchange(cn_h1_conn_t *c, cn_arena_t **arena_out)
{
    cn_arena_t *arena = cn_xmalloc(sizeof(*arena));
    cn_arena_init(arena, c->srv->settings->request_memory);
    struct h1_exchange *ex = cn_arena_xalloc(arena, sizeof(*ex));
    memset(ex, 0, sizeof(*ex));
    ex->arena = arena;
    cn_http_ds_t *ds = cn_arena_xalloc(arena, sizeof(*ds));
    memset(ds, 0, sizeof(*ds));
    ds->ops = &h1_ds_ops;
    ds->driver = c;
    ds->conn_id = c->id;
    ds->listener = c->listener;
    cn_tls_info_t ti;
    ds->tls = cn_tls_get_info(&c->sock, &ti);
    ds->tls_version = ti.version;
    ds->tls_cipher = ti.cipher;
    ds->tls_sni = ti.sni;
    ds->tls_resumed = ti.resumed;
    ds->tls_sock = ds->tls ? &c->sock : NULL;
    ds->client_addr = peer_of(c, arena, ds->client, sizeof(ds->client));
    c->ex = ex;
    c->ds = ds;
    c->srv->n_active++;
    *arena_out = arena;
    return ds;
}

/* While an exchange runs, keep reading so that a client that goes away is noticed at once
 * (EOF or reset → on_gone), not when a timeout fires. Bytes that arrive meanwhile (pipelined
 * requests, the request body) are buffered up to one head's worth; reading pauses while a
 * body slice is lent to the engine, since a read could move the buffer under it. */
static void
watch_client(cn_h1_conn_t *c)
{
    if (c->closing || c->state != H1_ACTIVE || c->ex == NULL || c->ex->body_consume != 0)
        return;
    size_t limit = c->srv->settings->limits.max_head + 1;
    c->sock.rbuf_limit = CN_MAX(limit, c->sock.rbuf.len + 4096);
    /* Watching needs little memory: the buffer that read the head goes (when empty), and
     * reads are 1 KiB (a thousand clients reading a large response must not each hold a
     * 16 KiB buffer); the buffer still grows for pipelined requests. */
    if (c->sock.rbuf.len == 0) {
        cn_buf_fini(&c->sock.rbuf);
        c->sock.read_chunk = 1024;
    }
    cn_sock_read_start(&c->sock);
}

static void
dispatch(cn_h1_conn_t *c, cn_http_ds_t *ds, cn_http_req_t *req, cn_arena_t *arena)
{
    c->ex->req = req;
    c->state = H1_ACTIVE;
    h1_timer_arm(c, 0);
    void *session = c->srv->handler->on_request(c->srv->handler_ctx, ds, req, arena);
    /* The engine may already have finished (and released) the exchange synchronously. */
    if (c->ds == ds && ds->session == NULL)
        ds->session = session;
    watch_client(c);
}

static void
dispatch_error(cn_h1_conn_t *c, unsigned status, const char *why)
{
    cn_arena_t *arena;
    cn_http_ds_t *ds = new_exchange(c, &arena);
    cn_http_req_t *req = cn_arena_xalloc(arena, sizeof(*req));
    memset(req, 0, sizeof(*req));
    cn_headers_init(&req->headers, arena);
    req->version = 11;
    req->method = CAIRN_IOV_LIT("-");
    req->path = CAIRN_IOV_LIT("-");
    req->error_status = status;
    req->error = why;
    c->keep_alive = 0;
    c->ex->body_done = true;
    dispatch(c, ds, req, arena);
}

static cairn_iov_t
rebase(cairn_iov_t v, const char *from, char *to)
{
    if (v.base == NULL)
        return v;
    return cn_iov(to + (v.base - from), v.len);
}

/* Copies the parsed head into the request arena so the read buffer can move freely. */
static cn_http_req_t *
build_request(cn_h1_conn_t *c, cn_arena_t *arena, const cn_h1_request_t *p, const char *buf)
{
    char *copy = cn_arena_xalloc(arena, p->head_len);
    memcpy(copy, buf, p->head_len);
    cn_http_req_t *req = cn_arena_xalloc(arena, sizeof(*req));
    memset(req, 0, sizeof(*req));
    req->method = rebase(p->method, buf, copy);
    req->method_id = cn_method_from_iov(req->method);
    req->scheme = c->sock.tls != NULL ? CAIRN_IOV_LIT("https") : CAIRN_IOV_LIT("http");
    req->authority = rebase(p->host, buf, copy);
    req->path = rebase(p->path, buf, copy);
    req->query = rebase(p->query, buf, copy);
    req->has_query = p->has_query;
    req->version = 10 + p->minor_version;
    cn_headers_init(&req->headers, arena);
    for (size_t i = 0; i < p->n_headers; i++)
        cn_headers_add(&req->headers, rebase(p->headers[i].name, buf, copy),
                       rebase(p->headers[i].value, buf, copy));
    req->content_length = p->chunked ? -1 : (p->content_length < 0 ? 0 : p->content_length);
    req->has_body = p->chunked || p->content_length > 0;
    req->expect_continue = p->expect_continue && req->has_body;
    req->keep_alive = p->keep_alive;
    (void)c;
    return req;
}

void
h1_parse_head(cn_h1_conn_t *c)
{
    const cn_h1_settings_t *set = c->srv->settings;
    cn_buf_t *rb = &c->sock.rbuf;
    /* RFC 9112 §2.2: skip at most a few empty lines between requests (the parser also
     * tolerates them; this keeps stray CRLF after a body from counting as a head). */
    size_t n_hdrs = set->limits.max_headers + 1;
    cn_h1_header_t *hdrs = cn_h1_headers_get(n_hdrs);
    cn_h1_request_t p;
    memset(&p, 0, sizeof(p));
    cn_h1_result_t r =
        cn_h1_parse_request(cn_buf_start(rb), rb->len, &set->limits, &p, hdrs, n_hdrs);
    if (r == CN_H1_INCOMPLETE) {
        cn_h1_headers_put(hdrs, n_hdrs);
        if (!c->head_timer) {
            c->head_timer = 1;
            h1_timer_arm(c, set->header_timeout_ms);
        }
        if (rb->len > set->limits.max_head) {
            cn_sock_read_stop(&c->sock);
            c->keep_alive = 0;
            dispatch_error(c, 431, "request head too large");
        }
        return;
    }
    if (r == CN_H1_ERROR) {
        cn_sock_read_stop(&c->sock);
        cn_h1_headers_put(hdrs, n_hdrs);
        cn_buf_consume(rb, rb->len);
        dispatch_error(c, p.status ? p.status : 400, p.error ? p.error : "bad request");
        return;
    }
    cn_arena_t *arena;
    cn_http_ds_t *ds = new_exchange(c, &arena);
    cn_http_req_t *req = build_request(c, arena, &p, cn_buf_start(rb));
    cn_h1_headers_put(hdrs, n_hdrs);
    cn_buf_consume(rb, p.head_len);
    struct h1_exchange *ex = c->ex;
    ex->head_request = req->method_id == CN_METHOD_HEAD;
    ex->body_chunked = p.chunked;
    ex->body_left = p.chunked ? -1 : (p.content_length > 0 ? p.content_length : 0);
    ex->body_done = !req->has_body;
    if (p.chunked)
        cn_h1_chunked_init(&ex->chunked);
    c->keep_alive = p.keep_alive && c->keep_alive;
    if (set->max_body_size != 0 && p.content_length > 0 &&
        (uint64_t)p.content_length > set->max_body_size) {
        req->error_status = 413;
        req->error = "request body larger than max_body_size";
        c->keep_alive = 0;
    }
    dispatch(c, ds, req, arena);
}

static void
conn_process(cn_h1_conn_t *c)
{
    switch (c->state) {
    case H1_HEAD:
        if (c->sock.rbuf.len > 0)
            h1_parse_head(c);
        return;
    case H1_ACTIVE:
        if (c->ex != NULL && c->ex->body_wanted) {
            c->ex->body_wanted = false;
            ds_read_body(c->ds);
            return;
        }
        /* Pipelined bytes wait in the buffer; stop reading when it is full. */
        return;
    case H1_DISCARD:
        h1_discard_body(c);
        return;
    default:
        return;
    }
}

/* ---- request body ---------------------------------------------------------------------- */

/* Takes the next body slice out of rbuf (without consuming it yet). Returns false when more
 * input is needed; *err is set on a framing error. */
static bool
next_body_slice(struct h1_exchange *ex, cn_buf_t *rb, cairn_iov_t *out, cairn_err_t *err)
{
    *err = CAIRN_OK;
    if (!ex->body_chunked) {
        if (rb->len == 0)
            return false;
        size_t n = (size_t)CN_MIN((int64_t)rb->len, ex->body_left);
        *out = cn_iov(cn_buf_start(rb), n);
        ex->body_consume = n;
        ex->body_left -= (int64_t)n;
        if (ex->body_left == 0)
            ex->body_done = true;
        return true;
    }
    size_t off = 0;
    while (off < rb->len) {
        size_t used = 0;
        cairn_iov_t data = {0};
        cn_h1_result_t r =
            cn_h1_chunked_decode(&ex->chunked, cn_buf_start(rb) + off, rb->len - off, &used, &data);
        if (r == CN_H1_ERROR) {
            *err = CAIRN_EPROTO;
            return true;
        }
        off += used;
        if (ex->chunked.done) {
            ex->body_done = true;
            ex->body_consume = off;
            *out = data;
            return true;
        }
        if (data.len > 0) {
            ex->body_consume = off;
            *out = data;
            return true;
        }
        if (r == CN_H1_INCOMPLETE || used == 0)
            break;
    }
    /* Only framing bytes so far: drop them and wait for more. */
    cn_buf_consume(rb, off);
    return false;
}

static void
ds_read_body(cn_http_ds_t *ds)
{
    cn_h1_conn_t *c = ds->driver;
    CN_CHECK_OBJ(c, H1_CONN_MAGIC);
    struct h1_exchange *ex = c->ex;
    cn_buf_t *rb = &c->sock.rbuf;
    if (ex->body_consume) {
        cn_buf_consume(rb, ex->body_consume);
        ex->body_consume = 0;
    }
    if (ex->body_done) {
        c->srv->handler->on_body(ds->session, cn_iov(NULL, 0), true, CAIRN_OK);
        return;
    }
    if (ex->req->expect_continue && !ex->sent_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ex->sent_continue = true;
        cairn_iov_t v = CAIRN_IOV_LIT(cont);
        if (rb->len == 0 && cn_sock_try_write(&c->sock, &v, 1) != (ssize_t)v.len) {
            h1_conn_close(c, true);
            return;
        }
    }
    cairn_iov_t data = {0};
    cairn_err_t err;
    if (next_body_slice(ex, rb, &data, &err)) {
        if (err == CAIRN_OK) {
            ex->body_total += data.len;
            const cn_h1_settings_t *set = c->srv->settings;
            if (set->max_body_size != 0 && ex->body_total > set->max_body_size)
                err = CAIRN_ETOOBIG;
        }
        if (err != CAIRN_OK) {
            c->keep_alive = 0;
            ex->body_done = true;
            c->srv->handler->on_body(ds->session, cn_iov(NULL, 0), false, err);
            return;
        }
        h1_timer_arm(c, 0);
        cn_sock_read_stop(&c->sock);
        c->srv->handler->on_body(ds->session, data, ex->body_done, CAIRN_OK);
        return;
    }
    /* Wait for more input; the body timeout bounds the wait. */
    ex->body_wanted = true;
    c->sock.rbuf_limit = 0;
    c->sock.read_chunk = 65536;
    h1_timer_arm(c, c->srv->settings->body_timeout_ms);
    cn_sock_read_start(&c->sock);
}

/* Skips the rest of a request body the engine did not read, then serves the next request. */
void
h1_discard_body(cn_h1_conn_t *c)
{
    cn_buf_t *rb = &c->sock.rbuf;
    if (!c->discard_is_chunked) {
        size_t n = (size_t)CN_MIN((int64_t)rb->len, c->discard_left);
        cn_buf_consume(rb, n);
        c->discard_left -= (int64_t)n;
    } else {
        while (rb->len > 0 && !c->discard_chunked.done) {
            size_t used = 0;
            cairn_iov_t data;
            cn_h1_result_t r =
                cn_h1_chunked_decode(&c->discard_chunked, cn_buf_start(rb), rb->len, &used, &data);
            cn_buf_consume(rb, used);
            if (r == CN_H1_ERROR) {
                h1_conn_close(c, false);
                return;
            }
            if (r == CN_H1_INCOMPLETE || used == 0)
                break;
        }
        if (c->discard_chunked.done)
            c->discard_left = 0;
    }
    if (c->discard_left == 0) {
        h1_start_head(c);
        if (c->state == H1_HEAD && rb->len > 0)
            h1_parse_head(c);
        return;
    }
    h1_timer_arm(c, c->srv->settings->body_timeout_ms);
    c->sock.rbuf_limit = 0;
    cn_sock_read_start(&c->sock);
}

/* ---- server-wide operations ------------------------------------------------------------ */

/* True when a whole request head already waits in the kernel's buffer (sent before the
 * drain began): that request is served. A partial head is not a request in flight. */
static bool
has_pending_request(cn_h1_conn_t *c)
{
    uv_os_fd_t fd;
    char b[16384];
    if (c->sock.rbuf.len > 0 || uv_fileno(&c->sock.u.handle, &fd) != 0)
        return false;
    ssize_t n = recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
    return n > 0 && memmem(b, (size_t)n, "\r\n\r\n", 4) != NULL;
}

void
cn_h1_server_drain(cn_h1_server_t *srv)
{
    srv->draining = true;
    cn_h1_conn_t *c = srv->conns;
    while (c != NULL) {
        cn_h1_conn_t *next = c->next;
        /* An idle connection closes now, unless its next request already arrived: that one
         * is served (with Connection: close). */
        if (c->state == H1_HEAD && !has_pending_request(c))
            h1_conn_close(c, false);
        else
            c->keep_alive = 0;
        c = next;
    }
    if (srv->n_conns == 0 && srv->on_idle != NULL)
        srv->on_idle(srv);
}

void
cn_h1_server_close_all(cn_h1_server_t *srv)
{
    srv->draining = true;
    while (srv->conns != NULL)
        h1_conn_close(srv->conns, true);
}
