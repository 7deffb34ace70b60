/* SPDX-License-Identifier: MIT */
/* The session: accepts a request from a protocol driver, routes it, runs the route's action
 * and streams the response back one slice at a time (a slice is released only when the
 * driver has written it, which is the backpressure of every body source). */
#include "engine/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/log.h"
#include "core/str.h"
#include "core/time.h"
#include "http/path.h"
#include "net/tls.h"
#include "engine/cached.h"
#include "engine/stats.h"

static void *on_request(void *ctx, cn_http_ds_t *ds, cn_http_req_t *req, cn_arena_t *arena);
static void on_sent(void *session, cairn_err_t status);
static void on_body(void *session, cairn_iov_t data, bool eos, cairn_err_t status);
static void on_gone(void *session);

const cn_http_handler_t cn_session_handler = {
    .on_request = on_request,
    .on_sent = on_sent,
    .on_body = on_body,
    .on_gone = on_gone,
};

cairn_iov_t
cn_session_strdup(cn_session_t *s, cairn_iov_t v)
{
    char *p = cn_arena_xalloc(s->arena, v.len + 1);
    if (v.len)
        memcpy(p, v.base, v.len);
    p[v.len] = '\0';
    return cn_iov(p, v.len);
}

static void
session_end(cn_session_t *s)
{
    if (s->ended)
        return;
    if (s->post_pending) {
        s->end_after_post = true; /* freed when the queued message runs */
        return;
    }
    s->ended = true;
    /* The body source is released however the session ends. */
    if (s->src_ops != NULL && s->src_ops->cancel != NULL) {
        const cn_body_src_ops_t *ops = s->src_ops;
        s->src_ops = NULL;
        ops->cancel(s, s->src);
    }
    cn_accesslog_write(s);
    cn_stats_request_done(s);
    cn_hooks_end(s);
    cn_cached_end(s);
    cn_worker_t *w = s->w;
    cn_config_t *cfg = s->cfg;
    cn_arena_t *arena = s->arena;
    s->base.magic = 0;
    cn_arena_fini(arena);
    cn_free(arena);
    cn_config_unref(cfg);
    w->n_sessions--;
    cn_worker_maybe_stop(w);
}

cn_session_t *
cn_session_background(cn_session_t *parent)
{
    cn_arena_t *arena = cn_xmalloc(sizeof(*arena));
    cn_arena_init(arena, parent->cfg->server.request_memory);
    const cn_http_req_t *pr = parent->req;
    cn_http_req_t *req = cn_arena_xalloc(arena, sizeof(*req));
    memset(req, 0, sizeof(*req));
    cn_session_t *s = cn_arena_xalloc(arena, sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->arena = arena;
    req->method = CAIRN_IOV_LIT("GET");
    req->method_id = CN_METHOD_GET;
    req->scheme = cn_session_strdup(s, pr->scheme);
    req->authority = cn_session_strdup(s, pr->authority);
    req->path = cn_session_strdup(s, pr->path);
    req->query = cn_session_strdup(s, pr->query);
    req->has_query = pr->has_query;
    req->version = 11;
    cn_headers_init(&req->headers, arena);
    for (size_t i = 0; i < pr->headers.n; i++)
        cn_headers_add_copy(&req->headers, pr->headers.items[i].name, pr->headers.items[i].value);
    s->base.magic = CN_SESSION_MAGIC;
    s->w = parent->w;
    s->cfg = parent->cfg;
    cn_config_ref(s->cfg);
    s->req = req;
    s->route = parent->route;
    s->upstream_override = parent->upstream_override;
    s->id = cn_next_id();
    s->start_ns = cn_time_now_ns();
    s->detached = true;
    s->background = true;
    s->cache_ttl = -1;
    snprintf(s->client, sizeof(s->client), "-");
    cn_headers_init(&s->resp.headers, arena);
    s->resp.content_length = -1;
    s->w->n_sessions++;
    return s;
}

static void
run_local_action(cn_session_t *s)
{
    switch (s->route->action) {
    case CN_ROUTE_STATIC:
        cn_action_static(s);
        return;
    case CN_ROUTE_REDIRECT:
        cn_action_redirect(s);
        return;
    case CN_ROUTE_FILES:
        cn_action_files(s);
        return;
    case CN_ROUTE_PROXY:
        break;
    }
    cn_session_error(s, 500, "route has no local action");
}

/* A route answered by cairn itself reads the request body to its end first (discarding it),
 * so a malformed, oversized or stalled body gets its 400/413/408 and the connection stays
 * usable for the next request. */
static void
drain_body(cn_session_t *s, cairn_iov_t data, bool eos, cairn_err_t err)
{
    (void)data;
    if (err != CAIRN_OK) {
        s->on_req_body = NULL;
        unsigned status = err == CAIRN_ETOOBIG ? 413 : (err == CAIRN_ETIMEDOUT ? 408 : 400);
        cn_session_error(s, status,
                         status == 413   ? "request body larger than max_body_size"
                         : status == 408 ? "request body timeout"
                                         : "malformed request body");
        return;
    }
    if (eos) {
        s->on_req_body = NULL;
        run_local_action(s);
        return;
    }
    cn_session_read_body(s, drain_body);
}

/* Used when a hook chose an upstream (cairn_req_set_upstream) and no route matched. */
static const cn_conf_route_t hook_route = {.name = "-", .action = CN_ROUTE_PROXY};

void
cn_session_route(cn_session_t *s)
{
    const cn_http_req_t *req = s->req;
    const cn_route_conn_t conn = {s->ds->listener, s->ds->tls_sni, s->ds->tls_sock};
    s->route = cn_route_match(s->cfg, req, &conn);
    if (s->route == NULL && s->upstream_override != NULL)
        s->route = &hook_route;
    if (s->route == NULL) {
        cn_session_error(s, 404, "no route matched");
        return;
    }
    if (s->route->action == CN_ROUTE_PROXY) {
        if (s->route->cache != NULL)
            cn_cached_start(s);
        else
            cn_action_proxy(s);
        return;
    }
    if (req->has_body) {
        cn_session_read_body(s, drain_body);
        return;
    }
    run_local_action(s);
}

#ifdef CN_TESTING
#include <unistd.h>
/* Test builds: with CAIRN_FAULT_STALL_MS=N, a request for /__fault/stall blocks its worker
 * for N ms, so tests can see what a starved event loop does to other connections. */
static void
fault_stall(const cn_http_req_t *req)
{
    const char *ms = getenv("CAIRN_FAULT_STALL_MS");
    if (ms != NULL && cn_iov_eq(req->path, CAIRN_IOV_LIT("/__fault/stall")))
        usleep((useconds_t)strtoul(ms, NULL, 10) * 1000);
}
#else
#define fault_stall(req) ((void)0)
#endif

/* Replaces the path with its normal form (http/path.h) before routing, request hooks, the
 * cache key, the access log and the upstream request see it. The asterisk-form "*" and
 * CONNECT's empty path are left alone. A refused path is answered 400 and the connection is
 * closed (the client and cairn no longer agree on what it asked for); returns false then. */
static bool
normalize_path(cn_session_t *s, cn_http_req_t *req)
{
    if (req->path.len == 0 || req->path.base[0] != '/')
        return true;
    const cn_conf_server_t *conf = &s->cfg->server;
    cn_path_opts_t opts = {.merge_slashes = conf->merge_slashes,
                           .escaped_slashes = (cn_path_slashes_t)conf->escaped_slashes};
    char *out = cn_arena_alloc(s->arena, req->path.len);
    size_t len = 0;
    unsigned status = 0;
    const char *why = NULL;
    if (out == NULL) {
        status = 414;
        why = "request path larger than request_memory";
    } else {
        cn_path_result_t r = cn_path_normalize(req->path, out, &len, &opts);
        status = r == CN_PATH_OK ? 0 : 400;
        why = cn_path_strerror(r);
    }
    if (status != 0) {
        req->keep_alive = false; /* the driver closes the connection after the answer */
        cn_session_error(s, status, why);
        return false;
    }
    req->path = cn_iov(out, len);
    return true;
}

static void *
on_request(void *ctx, cn_http_ds_t *ds, cn_http_req_t *req, cn_arena_t *arena)
{
    cn_worker_t *w = ctx;
    fault_stall(req);
    cn_session_t *s = cn_arena_xalloc(arena, sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->base.magic = CN_SESSION_MAGIC;
    s->w = w;
    s->cfg = w->cfg;
    cn_config_ref(s->cfg);
    s->ds = ds;
    s->arena = arena;
    s->req = req;
    s->id = cn_next_id();
    s->start_ns = cn_time_now_ns();
    s->cache_status = NULL;
    s->cache_ttl = -1;
    cn_headers_init(&s->resp.headers, arena);
    s->resp.content_length = -1;
    ds->session = s;
    memcpy(s->client, ds->client, sizeof(s->client));
    s->tls_version = ds->tls_version; /* the log line is written after the driver let go */
    s->tls_cipher = ds->tls_cipher;
    s->tls_resumed = ds->tls_resumed;
    w->n_sessions++;
    s->hooks = w->hooks;
    s->n_hooks = w->n_hooks;
    if (s->n_hooks > 0) {
        s->hook_ctx = cn_arena_xalloc(arena, s->n_hooks * sizeof(void *));
        for (size_t i = 0; i < s->n_hooks; i++) {
            size_t n = s->hooks[i].hooks->ctx_size;
            s->hook_ctx[i] = n ? cn_arena_xalloc(arena, n) : NULL;
            if (n)
                memset(s->hook_ctx[i], 0, n);
        }
    }
    if (req->error_status != 0) {
        cn_session_error(s, req->error_status, req->error ? req->error : "bad request");
        return s;
    }
    if (!normalize_path(s, req))
        return s;
    if (ds->tls_sock != NULL &&
        !cn_tls_host_fits(ds->tls_sock, req->authority.base, req->authority.len)) {
        cn_session_error(s, 421, "Host is not a name of this connection's certificate");
        return s;
    }
    cn_hooks_request_filter(s, cn_session_route);
    return s;
}

/* A detached session's sends complete on the next loop turn (nobody reads them). */
static void
detached_sent(cn_worker_t *w, void *arg)
{
    cn_session_t *s = arg;
    (void)w;
    s->post_pending = false;
    if (s->end_after_post) {
        session_end(s);
        return;
    }
    on_sent(s, CAIRN_OK);
}

static void
complete_detached(cn_session_t *s)
{
    s->post_pending = true;
    cn_worker_post(s->w, detached_sent, s);
}

void
cn_session_interim(cn_session_t *s, unsigned status, const cn_headers_t *headers)
{
    if (s->ds == NULL || s->resp_started || s->ds->ops->send_interim == NULL)
        return;
    s->ds->ops->send_interim(s->ds, status, headers);
}

void
cn_session_send(cn_session_t *s, const cairn_iov_t *iov, size_t n, bool eos)
{
    CN_ASSERT(s != NULL && s->base.magic == CN_SESSION_MAGIC);
    CN_ASSERT(!s->sending && !s->resp_eos);
    if (s->ds == NULL && s->detached) {
        s->sending = true;
        s->resp_eos = eos;
        complete_detached(s);
        return;
    }
    if (s->ds == NULL)
        return;
    if (!s->resp_filtered) {
        s->resp_filtered = true;
        /* Built-in response rules run first (inner layer), then the hooks in reverse. */
        cn_cached_status_header(s);
        if (s->route != NULL)
            cn_route_apply_headers(&s->route->response_headers, &s->resp.headers);
        if (s->n_hooks > 0 && cn_hooks_response(s) == CAIRN_FAIL) {
            cn_session_error(s, s->fail_status ? s->fail_status : 500, "response_filter failed");
            return;
        }
    }
    if (s->n_hooks > 0 && (n > 0 || eos) && cn_hooks_response_body(s, iov, n, eos) == CAIRN_FAIL) {
        s->error = "response_body_filter failed";
        cn_session_abort(s);
        return;
    }
    s->resp_started = true;
    s->sending = true;
    s->resp_eos = eos;
    for (size_t i = 0; i < n; i++)
        s->bytes_sent += iov[i].len;
    s->ds->ops->send(s->ds, &s->resp, iov, n, eos);
}

static void
on_sent(void *session, cairn_err_t status)
{
    cn_session_t *s = session;
    CN_ASSERT(s != NULL && s->base.magic == CN_SESSION_MAGIC);
    s->sending = false;
    if (s->resp_eos) {
        /* The driver released the exchange before calling us. */
        s->ds = NULL;
        session_end(s);
        return;
    }
    if (status != CAIRN_OK) {
        on_gone(s);
        return;
    }
    if (s->src_ops != NULL)
        s->src_ops->pull(s, s->src);
}

static void
on_body(void *session, cairn_iov_t data, bool eos, cairn_err_t status)
{
    cn_session_t *s = session;
    CN_ASSERT(s != NULL && s->base.magic == CN_SESSION_MAGIC);
    if (s->on_req_body != NULL)
        s->on_req_body(s, data, eos, status);
}

static void
on_gone(void *session)
{
    cn_session_t *s = session;
    CN_ASSERT(s != NULL && s->base.magic == CN_SESSION_MAGIC);
    s->ds = NULL;
    if (!s->detached && s->cc != NULL && cn_cached_detach(s)) {
        s->detached = true;
        s->error = "client closed the connection (fill continues)";
        /* A write that was in flight will never complete: complete it ourselves. */
        if (s->sending)
            complete_detached(s);
        return;
    }
    if (!s->resp_eos)
        s->error = s->error ? s->error : "client closed the connection";
    if (s->src_ops != NULL && s->src_ops->cancel != NULL) {
        const cn_body_src_ops_t *ops = s->src_ops;
        s->src_ops = NULL;
        ops->cancel(s, s->src);
    }
    session_end(s);
}

void
cn_session_read_body(cn_session_t *s, cn_session_body_cb cb)
{
    s->on_req_body = cb;
    if (s->ds != NULL)
        s->ds->ops->read_body(s->ds);
}

void
cn_session_respond(cn_session_t *s, unsigned status, cairn_iov_t body)
{
    s->resp.status = status;
    s->resp.content_length = (int64_t)body.len;
    s->src_ops = NULL;
    cn_session_send(s, &body, 1, true);
}

static const cn_conf_error_page_t *
find_error_page(const cn_conf_route_t *route, unsigned status)
{
    if (route == NULL)
        return NULL;
    for (size_t i = 0; i < route->n_error_pages; i++)
        if (route->error_pages[i].status == status)
            return &route->error_pages[i];
    return NULL;
}

void
cn_session_error(cn_session_t *s, unsigned status, const char *why)
{
    CN_ASSERT(s != NULL && s->base.magic == CN_SESSION_MAGIC);
    s->error = why;
    if (status >= 500)
        CN_LOG_WARN(s->id, "%u %s: %s (client %s, path %.*s, upstream %s)", status,
                    cn_status_reason(status), why, s->ds ? s->ds->client : "-",
                    (int)CN_MIN(s->req->path.len, 200), s->req->path.base,
                    s->upstream_name ? s->upstream_name : "-");
    else
        CN_LOG_DEBUG(s->id, "%u %s: %s", status, cn_status_reason(status), why);
    if (s->resp_started) {
        cn_session_abort(s);
        return;
    }
    cn_headers_init(&s->resp.headers, s->arena);
    if (s->n_hooks > 0 && !s->resp_filtered) {
        cairn_err_t err = s->last_err != CAIRN_OK ? s->last_err
                          : status == 504         ? CAIRN_ETIMEDOUT
                          : status >= 500         ? CAIRN_EIO
                                                  : CAIRN_EPROTO;
        if (cn_hooks_fail(s, err, &status) == CAIRN_RESPONDED) {
            cn_session_respond(s, s->resp.status, s->local_body);
            return;
        }
        cn_headers_init(&s->resp.headers, s->arena);
    }
    const cn_conf_error_page_t *page = find_error_page(s->route, status);
    cairn_iov_t body;
    if (page != NULL) {
        body = cn_iov_cstr(page->body);
        cn_headers_add(&s->resp.headers, CAIRN_IOV_LIT("Content-Type"),
                       cn_iov_cstr(page->content_type ? page->content_type : "text/plain"));
    } else {
        body = cn_status_body(s->arena, status);
        cn_headers_add(&s->resp.headers, CAIRN_IOV_LIT("Content-Type"),
                       CAIRN_IOV_LIT("text/plain; charset=utf-8"));
    }
    /* Errors are never cached by anyone downstream. */
    cn_headers_add(&s->resp.headers, CAIRN_IOV_LIT("Cache-Control"),
                   CAIRN_IOV_LIT("private, no-store"));
    if (status == 503) {
        char ra[16];
        int l = snprintf(ra, sizeof(ra), "%u", s->retry_after ? s->retry_after : 1);
        cn_headers_add_copy(&s->resp.headers, CAIRN_IOV_LIT("Retry-After"), cn_iov(ra, (size_t)l));
    }
    cn_session_respond(s, status, body);
}

void
cn_session_respond_status(cn_session_t *s, unsigned status)
{
    cn_headers_add(&s->resp.headers, CAIRN_IOV_LIT("Content-Type"),
                   CAIRN_IOV_LIT("text/plain; charset=utf-8"));
    cn_session_respond(s, status, cn_status_body(s->arena, status));
}

unsigned
cn_session_status(const cn_session_t *s)
{
    return s->resp_eos && (!s->detached || s->background) ? s->resp.status : 499;
}

void
cn_session_abort(cn_session_t *s)
{
    if (s->src_ops != NULL && s->src_ops->cancel != NULL) {
        const cn_body_src_ops_t *ops = s->src_ops;
        s->src_ops = NULL;
        ops->cancel(s, s->src);
    }
    if (s->ds != NULL) {
        cn_http_ds_t *ds = s->ds;
        s->ds = NULL;
        ds->ops->abort(ds);
    }
    session_end(s);
}
