/* SPDX-License-Identifier: MIT */
/* Proxying to an upstream over HTTP/1.1. A cn_upconn_t is an upstream connection: owned by
 * the worker's pool while idle, lent to one session while busy, and closed (never pooled)
 * after anything unusual. Response body slices point into the connection's read buffer and
 * reading pauses until the client has taken each slice: that is the backpressure. */
#include "proxy/upstream.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/log.h"
#include "core/str.h"
#include "core/time.h"
#include "http1/http1.h"
#include "net/net.h"
#include "proxy/cached.h"
#include "proxy/session.h"
#include "proxy/stats.h"

#define UPCONN_MAGIC 0x55504331u

enum up_state { UP_CONNECTING = 0, UP_IDLE, UP_BUSY, UP_CLOSED };

typedef struct cn_upconn cn_upconn_t;
struct proxy_ctx;

typedef struct cn_upstream_pool {
    struct cn_upstream_pool *next;
    char key[256];     /* upstream name, '\n', peer address */
    cn_upconn_t *idle; /* most recently used first */
    size_t n_idle;
} cn_upstream_pool_t;

struct cn_upconn {
    uint32_t magic;
    uint8_t state;
    cn_sock_t sock;
    uv_timer_t timer;
    cn_worker_t *w;
    cn_upstream_pool_t *pool;
    cn_upconn_t *idle_next, *idle_prev;
    struct proxy_ctx *px; /* the session using it; NULL when idle or detached */
    uint64_t idle_ms;
    uint64_t requests;
};

struct proxy_ctx {
    cn_session_t *s;
    const cn_conf_upstream_t *up;
    const cn_conf_peer_t *peer;
    cn_upconn_t *uc;
    unsigned attempt;
    bool pool_retry_used;
    cairn_iov_t head; /* the upstream request head */
    /* request body */
    bool body_started;
    bool body_sent; /* whole request (head + body) written */
    bool req_chunked;
    bool body_writing;
    bool body_eos_pending;
    char req_chunk_line[24];
    cairn_iov_t wiov[4];
    /* response */
    bool head_request;
    bool got_response_bytes;
    bool head_parsed;
    bool resp_keep_alive;
    bool resp_chunked;
    bool resp_close_delimited;
    bool resp_done;
    int64_t body_left;
    cn_h1_chunked_t chunked;
    size_t consume; /* bytes of the read buffer in the slice being sent */
    bool sending;
    bool up_eof; /* the upstream closed a close-delimited body */
    uint64_t t_start_ns;
};

static void up_on_read(cn_sock_t *sock, cairn_err_t status);
static void up_on_write(cn_sock_t *sock, cairn_err_t status);
static void up_close(cn_upconn_t *uc, bool reset);
static void proxy_fail(struct proxy_ctx *px, cairn_err_t err, const char *why);
static void start_attempt(struct proxy_ctx *px);
static void pull_body(cn_session_t *s, void *src);
static void cancel_proxy(cn_session_t *s, void *src);

static const cn_body_src_ops_t proxy_src_ops = {
    .pull = pull_body,
    .cancel = cancel_proxy,
};

/* ---- pools ----------------------------------------------------------------------------- */

/* A pool belongs to one upstream and one peer: two upstreams with the same address keep
 * their own connections, limits and idle timeouts (TLS settings will differ per upstream). */
static cn_upstream_pool_t *
pool_get(cn_worker_t *w, const cn_conf_upstream_t *up, const cn_conf_peer_t *peer)
{
    char key[sizeof(((cn_upstream_pool_t *)0)->key)];
    snprintf(key, sizeof(key), "%s\n%s", up->name, peer->addr.text);
    for (cn_upstream_pool_t *p = w->pools; p != NULL; p = p->next)
        if (strcmp(p->key, key) == 0)
            return p;
    cn_upstream_pool_t *p = cn_xcalloc(1, sizeof(*p));
    memcpy(p->key, key, sizeof(key));
    p->next = w->pools;
    w->pools = p;
    return p;
}

static void
pool_unlink(cn_upconn_t *uc)
{
    cn_upstream_pool_t *p = uc->pool;
    if (uc->state != UP_IDLE || p == NULL)
        return;
    if (uc->idle_prev)
        uc->idle_prev->idle_next = uc->idle_next;
    else
        p->idle = uc->idle_next;
    if (uc->idle_next)
        uc->idle_next->idle_prev = uc->idle_prev;
    uc->idle_next = uc->idle_prev = NULL;
    p->n_idle--;
}

static void
on_idle_timeout(uv_timer_t *t)
{
    cn_upconn_t *uc = t->data;
    up_close(uc, false);
}

static void
pool_put(cn_upconn_t *uc, const cn_conf_upstream_t *up)
{
    cn_upstream_pool_t *p = uc->pool;
    if (up->keepalive_pool == 0 || p->n_idle >= up->keepalive_pool || uc->w->draining) {
        up_close(uc, false);
        return;
    }
    uc->px = NULL;
    uc->state = UP_IDLE;
    uc->idle_prev = NULL;
    uc->idle_next = p->idle;
    if (p->idle)
        p->idle->idle_prev = uc;
    p->idle = uc;
    p->n_idle++;
    /* Keep reading while idle: EOF or stray bytes mean the connection must not be reused. */
    uc->sock.rbuf_limit = 4096;
    cn_sock_read_start(&uc->sock);
    uv_timer_start(&uc->timer, on_idle_timeout, up->keepalive_idle_ms, 0);
}

static cn_upconn_t *
pool_take(cn_upstream_pool_t *p)
{
    cn_upconn_t *uc = p->idle;
    if (uc == NULL)
        return NULL;
    pool_unlink(uc);
    uc->state = UP_BUSY;
    uv_timer_stop(&uc->timer);
    return uc;
}

void
cn_upstream_pools_close(cn_worker_t *w)
{
    while (w->pools != NULL) {
        cn_upstream_pool_t *p = w->pools;
        while (p->idle != NULL)
            up_close(p->idle, false);
        w->pools = p->next;
        cn_free(p);
    }
}

/* ---- connection lifetime --------------------------------------------------------------- */

static void
on_timer_closed(uv_handle_t *h)
{
    cn_upconn_t *uc = h->data;
    uc->magic = 0;
    cn_free(uc);
}

static void
on_sock_closed(cn_sock_t *sock)
{
    cn_upconn_t *uc = sock->data;
    uv_close((uv_handle_t *)&uc->timer, on_timer_closed);
}

static void
up_close(cn_upconn_t *uc, bool reset)
{
    if (uc->state == UP_CLOSED)
        return;
    pool_unlink(uc);
    uc->state = UP_CLOSED;
    if (uc->px != NULL && uc->px->uc == uc)
        uc->px->uc = NULL;
    uc->px = NULL;
    uv_timer_stop(&uc->timer);
    cn_sock_close(&uc->sock, reset);
}

static cn_upconn_t *
upconn_new(cn_worker_t *w, cn_upstream_pool_t *pool)
{
    cn_upconn_t *uc = cn_xcalloc(1, sizeof(*uc));
    uc->magic = UPCONN_MAGIC;
    uc->w = w;
    uc->pool = pool;
    uc->state = UP_CONNECTING;
    uc->sock.data = uc;
    uc->sock.on_read = up_on_read;
    uc->sock.on_write = up_on_write;
    uc->sock.on_close = on_sock_closed;
    uv_timer_init(&w->loop, &uc->timer);
    uc->timer.data = uc;
    return uc;
}

/* ---- building the upstream request ----------------------------------------------------- */

static bool
is_hop_by_hop(cairn_iov_t name)
{
    static const char *const hop[] = {"connection",
                                      "keep-alive",
                                      "proxy-connection",
                                      "te",
                                      "trailer",
                                      "transfer-encoding",
                                      "upgrade",
                                      "content-length",
                                      "proxy-authenticate",
                                      "proxy-authorization"};
    for (size_t i = 0; i < CN_ARRAY_LEN(hop); i++)
        if (cn_iov_ieq_cstr(name, hop[i]))
            return true;
    return false;
}

/* Removes hop-by-hop fields, including every field named in Connection (RFC 9110 §7.6.1). */
static void
strip_hop_by_hop(cn_headers_t *h)
{
    for (ssize_t i = cn_headers_find(h, CAIRN_IOV_LIT("connection"), -1); i >= 0;
         i = cn_headers_find(h, CAIRN_IOV_LIT("connection"), i)) {
        cairn_iov_t v = h->items[i].value;
        size_t start = 0;
        for (size_t j = 0; j <= v.len; j++) {
            if (j < v.len && v.base[j] != ',')
                continue;
            cairn_iov_t tok = cn_iov_trim(cn_iov(v.base + start, j - start));
            start = j + 1;
            if (tok.len > 0 && !cn_iov_ieq_cstr(tok, "connection"))
                cn_headers_remove(h, tok);
        }
    }
    size_t w = 0;
    for (size_t r = 0; r < h->n; r++)
        if (!is_hop_by_hop(h->items[r].name))
            h->items[w++] = h->items[r];
    h->n = w;
}

/* "list, item" in the request arena: a list-valued field with one more member. */
static cairn_iov_t
list_append(cn_session_t *s, cairn_iov_t list, cairn_iov_t item)
{
    char *v = cn_arena_xalloc(s->arena, list.len + item.len + 2);
    memcpy(v, list.base, list.len);
    memcpy(v + list.len, ", ", 2);
    memcpy(v + list.len + 2, item.base, item.len);
    return cn_iov(v, list.len + item.len + 2);
}

static void
add_forwarded(cn_session_t *s, cn_headers_t *h, cairn_iov_t orig_host)
{
    bool trusted =
        s->ds != NULL && cn_route_addr_in(s->cfg->server.trusted_proxies,
                                          s->cfg->server.n_trusted_proxies, s->ds->client_addr);
    cairn_iov_t client = cn_iov_cstr(s->client);
    if (s->background)
        return; /* a background revalidation forwards no client */
    const cairn_iov_t *xff = cn_headers_get(h, CAIRN_IOV_LIT("x-forwarded-for"));
    if (trusted && xff != NULL) {
        cairn_iov_t v = list_append(s, *xff, client);
        cn_headers_remove(h, CAIRN_IOV_LIT("x-forwarded-for"));
        cn_headers_add(h, CAIRN_IOV_LIT("X-Forwarded-For"), v);
    } else {
        cn_headers_set_copy(h, CAIRN_IOV_LIT("X-Forwarded-For"), client);
    }
    if (!trusted || cn_headers_get(h, CAIRN_IOV_LIT("x-forwarded-proto")) == NULL)
        cn_headers_set_copy(h, CAIRN_IOV_LIT("X-Forwarded-Proto"), s->req->scheme);
    if ((!trusted || cn_headers_get(h, CAIRN_IOV_LIT("x-forwarded-host")) == NULL) &&
        orig_host.len > 0)
        cn_headers_set_copy(h, CAIRN_IOV_LIT("X-Forwarded-Host"), orig_host);
    else if (!trusted)
        cn_headers_remove(h, CAIRN_IOV_LIT("x-forwarded-host"));
}

/* Appends "1.1 cairn" to Via (RFC 9110 §7.6.3). */
static void
add_via(cn_session_t *s, cn_headers_t *h, int version)
{
    cairn_iov_t ours = version == 10 ? CAIRN_IOV_LIT("1.0 cairn") : CAIRN_IOV_LIT("1.1 cairn");
    const cairn_iov_t *via = cn_headers_get(h, CAIRN_IOV_LIT("via"));
    if (via == NULL) {
        cn_headers_add(h, CAIRN_IOV_LIT("Via"), ours);
        return;
    }
    cairn_iov_t v = list_append(s, *via, ours);
    cn_headers_remove(h, CAIRN_IOV_LIT("via"));
    cn_headers_add(h, CAIRN_IOV_LIT("Via"), v);
}

static cairn_iov_t
upstream_path(cn_session_t *s)
{
    const cn_conf_route_t *r = s->route;
    cairn_iov_t path = s->req->path;
    const char *prefix = r->match.path_prefix;
    if (prefix == NULL || !cn_iov_has_prefix(path, cn_iov_cstr(prefix)))
        return path;
    size_t pl = strlen(prefix);
    cairn_iov_t rest = cn_iov(path.base + pl, path.len - pl);
    const char *repl = r->rewrite_prefix ? r->rewrite_prefix : (r->strip_prefix ? "" : NULL);
    if (repl == NULL)
        return path;
    size_t rl = strlen(repl);
    char *p = cn_arena_xalloc(s->arena, rl + rest.len + 2);
    size_t n = 0;
    memcpy(p, repl, rl);
    n = rl;
    if ((n == 0 || p[n - 1] != '/') && (rest.len == 0 || rest.base[0] != '/'))
        p[n++] = '/';
    else if (n > 0 && p[n - 1] == '/' && rest.len > 0 && rest.base[0] == '/')
        n--;
    memcpy(p + n, rest.base, rest.len);
    n += rest.len;
    return cn_iov(p, n);
}

static cairn_iov_t
build_request_head(struct proxy_ctx *px, cairn_action_t *action)
{
    cn_session_t *s = px->s;
    const cn_http_req_t *req = s->req;
    cn_headers_t h;
    cn_headers_init(&h, s->arena);
    for (size_t i = 0; i < req->headers.n; i++)
        cn_headers_add(&h, req->headers.items[i].name, req->headers.items[i].value);
    strip_hop_by_hop(&h);
    cairn_iov_t orig_host = req->authority;
    cn_headers_remove(&h, CAIRN_IOV_LIT("host"));
    cn_cached_upstream_headers(s, &h);
    cairn_iov_t host = s->route->host_header ? cn_iov_cstr(s->route->host_header) : orig_host;
    add_forwarded(s, &h, orig_host);
    add_via(s, &h, req->version);
    cn_route_apply_headers(&s->route->request_headers, &h);
    /* Host travels in the header list while hooks run, so they can read or change it. */
    cn_headers_add(&h, CAIRN_IOV_LIT("Host"), host);
    if (s->n_hooks > 0)
        *action = cn_hooks_upstream_request(s, &h);
    const cairn_iov_t *hv = cn_headers_get(&h, CAIRN_IOV_LIT("host"));
    host = hv != NULL ? *hv : host;
    cn_headers_remove(&h, CAIRN_IOV_LIT("host"));
    cairn_iov_t path = upstream_path(s);
    size_t need = 64 + req->method.len + path.len + req->query.len + host.len;
    for (size_t i = 0; i < h.n; i++)
        need += h.items[i].name.len + h.items[i].value.len + 4;
    char *p = cn_arena_xalloc(s->arena, need);
    size_t n = 0;
#define PUT(ptr, len)                                                                              \
    do {                                                                                           \
        memcpy(p + n, (ptr), (len));                                                               \
        n += (len);                                                                                \
    } while (0)
    cairn_iov_t method = cn_cached_head_as_get(s) ? CAIRN_IOV_LIT("GET") : req->method;
    PUT(method.base, method.len);
    PUT(" ", 1);
    PUT(path.base, path.len);
    if (req->has_query) {
        PUT("?", 1);
        PUT(req->query.base, req->query.len);
    }
    PUT(" HTTP/1.1\r\nHost: ", 17);
    PUT(host.base, host.len);
    PUT("\r\n", 2);
    for (size_t i = 0; i < h.n; i++) {
        PUT(h.items[i].name.base, h.items[i].name.len);
        PUT(": ", 2);
        PUT(h.items[i].value.base, h.items[i].value.len);
        PUT("\r\n", 2);
    }
    if (req->has_body && req->content_length >= 0) {
        PUT("Content-Length: ", 16);
        n += cn_fmt_u64(p + n, (uint64_t)req->content_length);
        PUT("\r\n", 2);
    } else if (req->has_body) {
        px->req_chunked = true;
        PUT("Transfer-Encoding: chunked\r\n", 28);
    }
    PUT("\r\n", 2);
#undef PUT
    return cn_iov(p, n);
}

/* ---- peers and attempts ---------------------------------------------------------------- */

static const cn_conf_peer_t *
pick_peer(struct proxy_ctx *px)
{
    const cn_conf_upstream_t *up = px->up;
    uint64_t total = 0;
    for (size_t i = 0; i < up->n_peers; i++)
        total += up->peers[i].weight ? up->peers[i].weight : 1;
    uint64_t k = px->s->w->rr++ % (total ? total : 1);
    for (size_t i = 0; i < up->n_peers; i++) {
        uint64_t wgt = up->peers[i].weight ? up->peers[i].weight : 1;
        if (k < wgt)
            return &up->peers[i];
        k -= wgt;
    }
    return &up->peers[0];
}

static void
on_rw_timeout(uv_timer_t *t)
{
    cn_upconn_t *uc = t->data;
    struct proxy_ctx *px = uc->px;
    if (px == NULL) {
        up_close(uc, false);
        return;
    }
    if (uc->state == UP_CONNECTING)
        proxy_fail(px, CAIRN_ETIMEDOUT, "upstream connect timeout");
    else if (px->body_writing)
        proxy_fail(px, CAIRN_ETIMEDOUT, "upstream write timeout");
    else
        proxy_fail(px, CAIRN_ETIMEDOUT, "upstream read timeout");
}

static void
arm(cn_upconn_t *uc, uint64_t ms)
{
    uv_timer_start(&uc->timer, on_rw_timeout, ms, 0);
}

static void
write_head(struct proxy_ctx *px)
{
    cn_upconn_t *uc = px->uc;
    cn_session_t *s = px->s;
    s->upstream_reused = uc->requests > 0;
    uc->requests++;
    uc->sock.rbuf_limit = 0;
    uc->sock.read_chunk = px->up->buffer_size;
    px->wiov[0] = px->head;
    px->body_writing = true;
    px->t_start_ns = cn_time_now_ns();
    /* A pooled connection is already reading (it watches for the upstream closing it). */
    cn_sock_read_start(&uc->sock);
    switch (cn_sock_send(&uc->sock, px->wiov, 1)) {
    case CN_SOCK_SENT:
        up_on_write(&uc->sock, CAIRN_OK); /* arms the read timeout */
        return;
    case CN_SOCK_PENDING:
        arm(uc, px->up->write_timeout_ms);
        return;
    case CN_SOCK_FAILED:
        px->body_writing = false;
        proxy_fail(px, CAIRN_ECLOSED, "upstream write failed");
        return;
    }
}

static void
on_connected(cn_sock_t *sock, cairn_err_t status)
{
    cn_upconn_t *uc = sock->data;
    struct proxy_ctx *px = uc->px;
    if (px == NULL) {
        up_close(uc, false);
        return;
    }
    if (status != CAIRN_OK) {
        proxy_fail(
            px, status == CAIRN_ETIMEDOUT || status == CAIRN_ENOENT ? status : CAIRN_ECONNREFUSED,
            "upstream connect failed");
        return;
    }
    uc->state = UP_BUSY;
    px->s->upstream_connect_ns = cn_time_now_ns() - px->t_start_ns;
    write_head(px);
}

/* A peer chosen by an upstream_select hook, or the upstream's own balancing. */
static const cn_conf_peer_t *
select_peer(struct proxy_ctx *px)
{
    cn_session_t *s = px->s;
    cairn_peer_t chosen;
    if (s->n_hooks == 0 || !cn_hooks_upstream_select(s, &chosen))
        return pick_peer(px);
    cn_conf_peer_t *p = cn_arena_xalloc(s->arena, sizeof(*p));
    memset(p, 0, sizeof(*p));
    chosen.address[sizeof(chosen.address) - 1] = '\0';
    if (!cn_addr_parse_numeric(chosen.address, &p->addr.ss, &p->addr.sslen))
        return NULL;
    p->addr.text = cn_session_strdup(s, cn_iov_cstr(chosen.address)).base;
    p->weight = 1;
    return p;
}

static void
start_attempt(struct proxy_ctx *px)
{
    cn_session_t *s = px->s;
    px->peer = select_peer(px);
    if (px->peer == NULL) {
        s->src_ops = NULL;
        cn_session_error(s, 502, "upstream_select chose an invalid peer address");
        return;
    }
    if (px->head.base == NULL) {
        /* Pingora's order: the peer is chosen, then upstream_request_filter edits the request. */
        cairn_action_t act = CAIRN_CONTINUE;
        px->head = build_request_head(px, &act);
        if (act == CAIRN_RESPONDED) {
            s->src_ops = NULL;
            cn_session_respond(s, s->resp.status, s->local_body);
            return;
        }
        if (act != CAIRN_CONTINUE) {
            s->src_ops = NULL;
            cn_session_error(s, s->fail_status ? s->fail_status : 500,
                             "upstream_request_filter failed");
            return;
        }
    }
    size_t al = strnlen(px->peer->addr.text, sizeof(s->upstream_addr) - 1);
    memcpy(s->upstream_addr, px->peer->addr.text, al);
    s->upstream_addr[al] = '\0';
    px->got_response_bytes = false;
    px->head_parsed = false;
    cn_upstream_pool_t *pool = pool_get(s->w, px->up, px->peer);
    cn_upconn_t *uc = pool_take(pool);
    if (uc != NULL && uc->sock.rbuf.len == 0) {
        uc->px = px;
        px->uc = uc;
        write_head(px);
        return;
    }
    if (uc != NULL)
        up_close(uc, false);
    uc = upconn_new(s->w, pool);
    uc->px = px;
    px->uc = uc;
    px->t_start_ns = cn_time_now_ns();
    arm(uc, px->up->connect_timeout_ms);
    if (cn_sock_connect(&s->w->loop, &uc->sock, (const struct sockaddr *)&px->peer->addr.ss,
                        on_connected) != CAIRN_OK) {
        proxy_fail(px, CAIRN_ECONNREFUSED, "upstream connect failed");
    }
}

/* Can this failure be retried on another connection without risk of doing the work twice? */
static bool
can_retry(struct proxy_ctx *px, cairn_err_t err, bool *pool_retry)
{
    *pool_retry = false;
    if (px->got_response_bytes || px->s->resp_started || px->body_started)
        return false;
    cn_upconn_t *uc = px->uc;
    bool reused = uc != NULL && uc->requests > 1 && uc->state != UP_CONNECTING;
    /* A pooled connection that the upstream had closed: once, on a fresh connection. */
    if (reused && (err == CAIRN_ECLOSED || err == CAIRN_ERESET) && !px->pool_retry_used) {
        *pool_retry = true;
        return true;
    }
    bool connect_phase = uc == NULL || uc->state == UP_CONNECTING;
    if (connect_phase && px->attempt < px->up->retries)
        return true;
    return false;
}

static void
proxy_fail(struct proxy_ctx *px, cairn_err_t err, const char *why)
{
    cn_session_t *s = px->s;
    cn_stats_upstream_error(s, px->up, err);
    bool pool_retry;
    bool retry = can_retry(px, err, &pool_retry);
    if (px->uc != NULL)
        up_close(px->uc, true);
    if (retry) {
        if (pool_retry)
            px->pool_retry_used = true;
        else
            px->attempt++;
        CN_LOG_INFO(s->id, "%s (%s, %s): retrying", why, px->peer->addr.text, cairn_err_name(err));
        start_attempt(px);
        return;
    }
    s->src_ops = NULL;
    if (s->resp_started) {
        CN_LOG_WARN(s->id, "%s mid-response (upstream %s %s): aborting the client connection", why,
                    px->up->name, px->peer->addr.text);
        s->error = why;
        cn_session_abort(s);
        return;
    }
    unsigned status = err == CAIRN_ETIMEDOUT ? 504 : 502;
    s->last_err = err;
    if (s->cc != NULL && cn_cached_upstream_error(s, status))
        return;
    char *msg = cn_arena_xalloc(s->arena, 256);
    snprintf(msg, 256, "%s: %s %s (%s)", why, px->up->name, px->peer->addr.text,
             cairn_strerror(err));
    cn_session_error(s, status, msg);
}

/* ---- request body ---------------------------------------------------------------------- */

static void on_client_body(cn_session_t *s, cairn_iov_t data, bool eos, cairn_err_t err);

/* Timers while a request body is sent: write_timeout while a write is pending, none while
 * cairn waits for the client's next bytes (its body_timeout governs), and read_timeout once the
 * whole request is written. The response is read all along, so an early answer (413, 401)
 * is relayed at once. */
static void
request_body_written(struct proxy_ctx *px)
{
    if (px->body_eos_pending) {
        px->body_sent = true;
        if (!px->head_parsed)
            arm(px->uc, px->up->read_timeout_ms);
        return;
    }
    if (!px->head_parsed)
        uv_timer_stop(&px->uc->timer);
    cn_session_read_body(px->s, on_client_body);
}

static void
on_client_body(cn_session_t *s, cairn_iov_t data, bool eos, cairn_err_t err)
{
    struct proxy_ctx *px = s->src;
    if (px == NULL || px->uc == NULL || px->resp_done)
        return;
    if (err != CAIRN_OK) {
        unsigned status = err == CAIRN_ETOOBIG ? 413 : (err == CAIRN_ETIMEDOUT ? 408 : 400);
        up_close(px->uc, true);
        s->src_ops = NULL;
        if (s->resp_started)
            cn_session_abort(s);
        else
            cn_session_error(s, status, "request body failed");
        return;
    }
    px->body_started = true;
    if (s->n_hooks > 0 && cn_hooks_request_body(s, data, eos) == CAIRN_FAIL) {
        up_close(px->uc, true);
        s->src_ops = NULL;
        if (s->resp_started)
            cn_session_abort(s);
        else
            cn_session_error(s, s->fail_status ? s->fail_status : 400,
                             "request_body_filter refused the body");
        return;
    }
    size_t k = 0;
    if (px->req_chunked && data.len > 0) {
        int l = snprintf(px->req_chunk_line, sizeof(px->req_chunk_line), "%zx\r\n", data.len);
        px->wiov[k++] = cn_iov(px->req_chunk_line, (size_t)l);
    }
    if (data.len > 0)
        px->wiov[k++] = data;
    if (px->req_chunked && data.len > 0)
        px->wiov[k++] = CAIRN_IOV_LIT("\r\n");
    if (px->req_chunked && eos)
        px->wiov[k++] = CAIRN_IOV_LIT("0\r\n\r\n");
    px->body_eos_pending = eos;
    if (k == 0) {
        request_body_written(px);
        return;
    }
    px->body_writing = true;
    if (!px->head_parsed)
        arm(px->uc, px->up->write_timeout_ms);
    if (cn_sock_write(&px->uc->sock, px->wiov, k) != CAIRN_OK) {
        px->body_writing = false;
        proxy_fail(px, CAIRN_ECLOSED, "upstream write failed");
    }
}

static void
up_on_write(cn_sock_t *sock, cairn_err_t status)
{
    cn_upconn_t *uc = sock->data;
    struct proxy_ctx *px = uc->px;
    if (px == NULL)
        return;
    px->body_writing = false;
    if (status != CAIRN_OK) {
        if (!px->head_parsed)
            proxy_fail(px, CAIRN_ECLOSED, "upstream write failed");
        return;
    }
    if (px->body_started || px->s->req->has_body) {
        if (!px->body_started && px->s->req->has_body) {
            px->body_started = true;
            if (!px->head_parsed)
                uv_timer_stop(&uc->timer);
            cn_session_read_body(px->s, on_client_body);
            return;
        }
        request_body_written(px);
        return;
    }
    px->body_sent = true;
    if (!px->head_parsed)
        arm(uc, px->up->read_timeout_ms);
}

/* ---- response -------------------------------------------------------------------------- */

static void
finish_response(struct proxy_ctx *px)
{
    cn_upconn_t *uc = px->uc;
    if (!px->resp_done && px->s->cc != NULL)
        cn_cached_upstream_done(px->s);
    px->resp_done = true;
    if (uc == NULL)
        return;
    px->uc = NULL;
    uc->px = NULL;
    uc->sock.hold = 0;
    uv_timer_stop(&uc->timer);
    if (px->resp_keep_alive && px->body_sent && !px->body_writing && uc->sock.rbuf.len == 0)
        pool_put(uc, px->up);
    else
        up_close(uc, false);
}

/* True when the slice being sent is the end of the body: no Content-Length bytes left, or
 * only the last chunk (and trailers) left in the buffer. Peeks without consuming. */
static bool
body_ends_after(struct proxy_ctx *px, const cn_buf_t *rb)
{
    if (px->resp_close_delimited)
        return false;
    if (!px->resp_chunked)
        return px->body_left == 0;
    cn_h1_chunked_t peek = px->chunked;
    size_t off = px->consume;
    while (off < rb->len && !peek.done) {
        size_t used = 0;
        cairn_iov_t data = {0};
        if (cn_h1_chunked_decode(&peek, cn_buf_start(rb) + off, rb->len - off, &used, &data) !=
                CN_H1_OK ||
            data.len > 0 || used == 0)
            return false;
        off += used;
    }
    return peek.done;
}

enum slice_result {
    SLICE_NEED_MORE, /* nothing to send yet: read more */
    SLICE_SENT,      /* a slice is with the client: wait for pull */
    SLICE_DONE,      /* the exchange ended or failed: px may be gone, do not touch it */
};

/* Sends the next body slice found in the read buffer. */
static enum slice_result
send_next_slice(struct proxy_ctx *px)
{
    cn_upconn_t *uc = px->uc;
    cn_buf_t *rb = &uc->sock.rbuf;
    cn_session_t *s = px->s;
    cairn_iov_t v;
    if (px->resp_close_delimited) {
        if (rb->len == 0 && px->up_eof) {
            finish_response(px);
            cn_session_send(s, NULL, 0, true);
            return SLICE_DONE;
        }
        if (rb->len == 0)
            return SLICE_NEED_MORE;
        px->consume = rb->len;
        v = cn_iov(cn_buf_start(rb), rb->len);
    } else if (!px->resp_chunked) {
        if (px->body_left == 0) {
            finish_response(px);
            cn_session_send(s, NULL, 0, true);
            return SLICE_DONE;
        }
        if (rb->len == 0)
            return SLICE_NEED_MORE;
        size_t n = (size_t)CN_MIN((int64_t)rb->len, px->body_left);
        px->body_left -= (int64_t)n;
        px->consume = n;
        v = cn_iov(cn_buf_start(rb), n);
    } else {
        size_t off = 0;
        v = cn_iov(NULL, 0);
        while (off < rb->len && v.len == 0) {
            size_t used = 0;
            cn_h1_result_t r = cn_h1_chunked_decode(&px->chunked, cn_buf_start(rb) + off,
                                                    rb->len - off, &used, &v);
            if (r == CN_H1_ERROR) {
                proxy_fail(px, CAIRN_EPROTO, "malformed chunked body from upstream");
                return SLICE_DONE;
            }
            off += used;
            if (v.len == 0 && px->chunked.done) {
                cn_buf_consume(rb, off);
                finish_response(px);
                cn_session_send(s, NULL, 0, true);
                return SLICE_DONE;
            }
            if (v.len == 0 && (r == CN_H1_INCOMPLETE || used == 0))
                break;
        }
        if (v.len == 0) {
            cn_buf_consume(rb, off);
            return SLICE_NEED_MORE;
        }
        px->consume = off;
    }
    px->sending = true;
    uc->sock.hold = 1; /* the slice points into rbuf */
    uv_timer_stop(&uc->timer);
    if (s->cc != NULL) {
        cn_cached_upstream_body(s, v);
        /* The object is stored when its last byte arrives, before the client has it, so a
         * client that asks again at once finds it. */
        if (body_ends_after(px, rb))
            cn_cached_upstream_done(s);
    }
    cn_session_send(s, &v, 1, false);
    return SLICE_SENT;
}

static void
pump_body(struct proxy_ctx *px)
{
    if (px->sending || px->uc == NULL)
        return;
    if (send_next_slice(px) != SLICE_NEED_MORE)
        return;
    if (px->up_eof) {
        proxy_fail(px, CAIRN_ECLOSED, "upstream closed mid-response");
        return;
    }
    cn_sock_read_start(&px->uc->sock);
    arm(px->uc, px->up->read_timeout_ms);
}

static void
pull_body(cn_session_t *s, void *src)
{
    struct proxy_ctx *px = src;
    (void)s;
    px->sending = false;
    if (px->uc == NULL)
        return;
    px->uc->sock.hold = 0;
    if (px->consume) {
        cn_buf_consume(&px->uc->sock.rbuf, px->consume);
        px->consume = 0;
    }
    pump_body(px);
}

static void
cancel_proxy(cn_session_t *s, void *src)
{
    struct proxy_ctx *px = src;
    (void)s;
    if (px->uc != NULL) {
        cn_upconn_t *uc = px->uc;
        px->uc = NULL;
        uc->px = NULL;
        /* The response was not read to its end: the connection cannot be reused. */
        up_close(uc, true);
    }
}

/* The fields of @r (parsed from @base) copied into @h, without hop-by-hop fields. */
static void
copy_fields(cn_session_t *s, cn_headers_t *h, const cn_h1_response_t *r, const char *base)
{
    char *copy = cn_arena_xalloc(s->arena, r->head_len);
    memcpy(copy, base, r->head_len);
    cn_headers_init(h, s->arena);
    for (size_t i = 0; i < r->n_headers; i++) {
        cairn_iov_t n = cn_iov(copy + (r->headers[i].name.base - base), r->headers[i].name.len);
        cairn_iov_t v = cn_iov(copy + (r->headers[i].value.base - base), r->headers[i].value.len);
        cn_headers_add(h, n, v);
    }
    strip_hop_by_hop(h);
}

static void
copy_response_headers(struct proxy_ctx *px, const cn_h1_response_t *r, const char *base)
{
    copy_fields(px->s, &px->s->resp.headers, r, base);
    add_via(px->s, &px->s->resp.headers, 11);
}

/* A 1xx other than 101 (102 Processing, 103 Early Hints): relayed to the client as it is,
 * never stored, and its fields stay out of the final response. 100 Continue is cairn's own
 * business with the client (Expect is hop-by-hop), so it is not relayed. */
static void
relay_interim(struct proxy_ctx *px, const cn_h1_response_t *r, const char *base)
{
    if (r->status == 100 || px->s->background)
        return;
    cn_headers_t h;
    copy_fields(px->s, &h, r, base);
    cn_session_interim(px->s, r->status, &h);
}

static void
parse_response_head(struct proxy_ctx *px)
{
    cn_upconn_t *uc = px->uc;
    cn_buf_t *rb = &uc->sock.rbuf;
    cn_session_t *s = px->s;
    const cn_h1_limits_t lim = {.max_head = s->cfg->server.max_header_size,
                                .max_headers = s->cfg->server.max_headers,
                                .max_target = s->cfg->server.max_uri_size};
    for (;;) {
        size_t n_hdrs = lim.max_headers + 1;
        cn_h1_header_t *hdrs = cn_h1_headers_get(n_hdrs);
        cn_h1_response_t r;
        memset(&r, 0, sizeof(r));
        cn_h1_result_t res = cn_h1_parse_response(cn_buf_start(rb), rb->len, &lim, px->head_request,
                                                  &r, hdrs, n_hdrs);
        if (res == CN_H1_INCOMPLETE) {
            cn_h1_headers_put(hdrs, n_hdrs);
            if (rb->len > lim.max_head)
                proxy_fail(px, CAIRN_EPROTO, "upstream response head too large");
            return;
        }
        if (res == CN_H1_ERROR) {
            cn_h1_headers_put(hdrs, n_hdrs);
            CN_LOG_DEBUG(s->id, "bad upstream response: %s", r.error ? r.error : "?");
            proxy_fail(px, CAIRN_EPROTO, r.error ? r.error : "malformed upstream response");
            return;
        }
        if (r.status >= 100 && r.status < 200) {
            if (r.status == 101) {
                cn_h1_headers_put(hdrs, n_hdrs);
                proxy_fail(px, CAIRN_EPROTO, "upstream switched protocols unexpectedly");
                return;
            }
            relay_interim(px, &r, cn_buf_start(rb));
            cn_h1_headers_put(hdrs, n_hdrs);
            cn_buf_consume(rb, r.head_len);
            continue;
        }
        s->upstream_header_ns = cn_time_now_ns() - px->t_start_ns;
        px->head_parsed = true;
        s->resp.status = r.status;
        cn_stats_upstream_response(s, px->up, r.status);
        copy_response_headers(px, &r, cn_buf_start(rb));
        cn_h1_headers_put(hdrs, n_hdrs);
        cn_buf_consume(rb, r.head_len);
        /* The length the client will see; known before hooks and the cache decide. */
        if (r.chunked || r.close_delimited)
            s->resp.content_length = -1;
        else
            s->resp.content_length = r.content_length >= 0 ? r.content_length : 0;
        if (r.no_body && px->head_request && r.content_length >= 0)
            s->resp.content_length = r.content_length;
        else if (r.no_body && r.status != 304)
            s->resp.content_length = cn_status_has_no_body(r.status) ? -1 : 0;
        else if (r.no_body)
            s->resp.content_length = r.content_length;
        if (s->n_hooks > 0 && cn_hooks_upstream_response(s) == CAIRN_FAIL) {
            up_close(uc, true);
            s->src_ops = NULL;
            cn_session_error(s, s->fail_status ? s->fail_status : 502,
                             "upstream_response_filter failed");
            return;
        }
        cn_cached_head_result_t cr = s->cc != NULL ? cn_cached_upstream_head(s) : CN_CACHED_STREAM;
        if (cr == CN_CACHED_ABANDON) {
            /* A detached leader whose response nobody can use: stop fetching. */
            cn_cached_abandoned(s);
            up_close(uc, true);
            s->src_ops = NULL;
            cn_session_abort(s);
            return;
        }
        if (cr == CN_CACHED_TAKEN) {
            /* Answered from the cache (a 304 to our revalidation): nothing to relay. */
            px->resp_keep_alive = r.keep_alive && r.no_body;
            px->body_left = 0;
            finish_response(px);
            cn_cached_serve_taken(s);
            return;
        }
        px->resp_keep_alive = r.keep_alive;
        px->resp_chunked = r.chunked && !r.no_body;
        px->resp_close_delimited = r.close_delimited && !r.no_body;
        if (r.chunked)
            cn_h1_chunked_init(&px->chunked);
        px->body_left = r.no_body ? 0 : (r.content_length > 0 ? r.content_length : 0);
        if (r.no_body) {
            finish_response(px);
            cn_session_send(s, NULL, 0, true);
            return;
        }
        pump_body(px);
        return;
    }
}

static void
up_on_read(cn_sock_t *sock, cairn_err_t status)
{
    cn_upconn_t *uc = sock->data;
    CN_CHECK_OBJ(uc, UPCONN_MAGIC);
    struct proxy_ctx *px = uc->px;
    if (px == NULL) {
        /* Idle in the pool: the upstream closed it or sent unsolicited bytes. */
        up_close(uc, false);
        return;
    }
    if (status != CAIRN_OK) {
        if (px->head_parsed && status == CAIRN_ECLOSED) {
            /* Deliver what is buffered first; the end (or the truncation) is decided once the
             * buffer is empty. */
            px->up_eof = true;
            px->resp_keep_alive = false;
            pump_body(px);
            return;
        }
        proxy_fail(px, status,
                   px->head_parsed ? "upstream closed mid-response"
                                   : "upstream closed the connection before responding");
        return;
    }
    px->got_response_bytes = true;
    if (!px->head_parsed) {
        parse_response_head(px);
        return;
    }
    pump_body(px);
}

/* ---- entry ----------------------------------------------------------------------------- */

void
cn_action_proxy(cn_session_t *s)
{
    const cn_conf_upstream_t *up =
        s->upstream_override != NULL ? s->upstream_override : s->route->upstream;
    if (up == NULL || up->n_peers == 0) {
        cn_session_error(s, 502, "route has no upstream");
        return;
    }
    if (s->cc == NULL && cn_cached_pass(s))
        return; /* a route without a cache: pass_takes_slot queues it for an origin slot */
    struct proxy_ctx *px = cn_arena_xalloc(s->arena, sizeof(*px));
    memset(px, 0, sizeof(*px));
    px->s = s;
    px->up = up;
    px->head_request = s->req->method_id == CN_METHOD_HEAD && !cn_cached_head_as_get(s);
    s->upstream_name = up->name;
    s->src_ops = &proxy_src_ops;
    s->src = px;
    start_attempt(px);
}
