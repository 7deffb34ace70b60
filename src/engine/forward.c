/* SPDX-License-Identifier: MIT */
/* The "upstream" route action: a session is the consumer of an upstream exchange. This file
 * turns the session's request into the exchange's request (forwarding fields, Via, route
 * header rules, the upstream_request_filter hooks), streams the client's body to it, and the
 * response back to the client, with the cache serving layer (cached.c) told of each step on
 * caching routes. The exchange itself (peers, pools, codecs) is in src/upstream/. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/str.h"
#include "engine/cached.h"
#include "engine/session.h"
#include "engine/stats.h"
#include "net/tls.h"
#include "upstream/upstream.h"

typedef struct forward {
    cn_session_t *s;
    const cn_conf_upstream_t *up;
    cn_ux_t *ux;
    bool stored_done; /* cn_cached_upstream_done was called */
} forward_t;

static void pull_body(cn_session_t *s, void *src);
static void cancel_forward(cn_session_t *s, void *src);

static const cn_body_src_ops_t forward_src_ops = {
    .pull = pull_body,
    .cancel = cancel_forward,
};

/* ---- the request -------------------------------------------------------------------------- */

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

/* The path the upstream gets: strip_prefix / rewrite_prefix applied. */
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

/* A peer chosen by an upstream_select hook (true, *@peer set), none (true, NULL), or an
 * invalid choice (false: answered 502). */
static bool
select_peer(void *cb, const cn_conf_peer_t **peer)
{
    forward_t *fw = cb;
    cn_session_t *s = fw->s;
    cairn_peer_t chosen;
    *peer = NULL;
    if (s->n_hooks == 0 || !cn_hooks_upstream_select(s, &chosen))
        return true;
    cn_conf_peer_t *p = cn_arena_xalloc(s->arena, sizeof(*p));
    memset(p, 0, sizeof(*p));
    chosen.address[sizeof(chosen.address) - 1] = '\0';
    if (!cn_addr_parse_numeric(chosen.address, &p->addr.ss, &p->addr.sslen)) {
        s->src_ops = NULL;
        cn_session_error(s, 502, "upstream_select chose an invalid peer address");
        return false;
    }
    p->addr.text = cn_session_strdup(s, cn_iov_cstr(chosen.address)).base;
    p->weight = 1;
    *peer = p;
    return true;
}

/* The verified client certificate in the route's client_cert_headers; what the client sent
 * under those names never passes. */
static void
add_client_cert(cn_session_t *s, cn_headers_t *h)
{
    const char *names[] = {s->route->client_cert_headers.subject, s->route->client_cert_headers.san,
                           s->route->client_cert_headers.fingerprint,
                           s->route->client_cert_headers.serial};
    const size_t n = CN_ARRAY_LEN(names);
    bool any = false;
    for (size_t i = 0; i < n; i++)
        if (names[i] != NULL) {
            cn_headers_remove(h, cn_iov_cstr(names[i]));
            any = true;
        }
    cn_tls_peer_t peer;
    if (!any || s->ds == NULL || s->ds->tls_sock == NULL ||
        !cn_tls_peer_identity(s->ds->tls_sock, &peer))
        return;
    const char *values[] = {peer.subject, peer.san, peer.fingerprint, peer.serial};
    for (size_t i = 0; i < n; i++)
        if (names[i] != NULL && values[i][0] != '\0')
            cn_headers_add_copy(h, cn_iov_cstr(names[i]), cn_iov_cstr(values[i]));
}

static bool
prepare(void *cb, cn_ux_request_t *rq)
{
    forward_t *fw = cb;
    cn_session_t *s = fw->s;
    const cn_http_req_t *req = s->req;
    cn_headers_t *h = &rq->headers;
    for (size_t i = 0; i < req->headers.n; i++)
        cn_headers_add(h, req->headers.items[i].name, req->headers.items[i].value);
    cn_up_strip_hop_by_hop(h);
    cairn_iov_t orig_host = req->authority;
    cn_headers_remove(h, CAIRN_IOV_LIT("host"));
    cn_cached_upstream_headers(s, h);
    cairn_iov_t host = s->route->host_header ? cn_iov_cstr(s->route->host_header) : orig_host;
    add_forwarded(s, h, orig_host);
    add_via(s, h, req->version);
    add_client_cert(s, h);
    cn_route_apply_headers(&s->route->request_headers, h);
    /* Host travels in the header list while hooks run, so they can read or change it. */
    cn_headers_add(h, CAIRN_IOV_LIT("Host"), host);
    cairn_action_t act = s->n_hooks > 0 ? cn_hooks_upstream_request(s, h) : CAIRN_CONTINUE;
    if (act == CAIRN_RESPONDED) {
        s->src_ops = NULL;
        cn_session_respond(s, s->resp.status, s->local_body);
        return false;
    }
    if (act != CAIRN_CONTINUE) {
        s->src_ops = NULL;
        cn_session_error(s, s->fail_status ? s->fail_status : 500,
                         "upstream_request_filter failed");
        return false;
    }
    const cairn_iov_t *hv = cn_headers_get(h, CAIRN_IOV_LIT("host"));
    rq->authority = hv != NULL ? *hv : host;
    cn_headers_remove(h, CAIRN_IOV_LIT("host"));
    rq->method = cn_cached_head_as_get(s) ? CAIRN_IOV_LIT("GET") : req->method;
    rq->path = upstream_path(s);
    rq->query = req->query;
    rq->has_query = req->has_query;
    rq->has_body = req->has_body;
    rq->content_length = req->content_length;
    rq->log_id = s->id;
    rq->max_head = s->cfg->server.max_header_size;
    rq->max_headers = s->cfg->server.max_headers;
    return true;
}

/* ---- the request body --------------------------------------------------------------------- */

static void
body_failed(forward_t *fw, unsigned status, const char *why)
{
    cn_session_t *s = fw->s;
    cn_ux_cancel(fw->ux);
    s->src_ops = NULL;
    if (s->resp_started)
        cn_session_abort(s);
    else
        cn_session_error(s, status, why);
}

static void
on_client_body(cn_session_t *s, cairn_iov_t data, bool eos, cairn_err_t err)
{
    forward_t *fw = s->src;
    if (fw == NULL || s->src_ops != &forward_src_ops || cn_ux_done(fw->ux))
        return;
    if (err != CAIRN_OK) {
        unsigned status = err == CAIRN_ETOOBIG ? 413 : (err == CAIRN_ETIMEDOUT ? 408 : 400);
        body_failed(fw, status, "request body failed");
        return;
    }
    if (s->n_hooks > 0 && cn_hooks_request_body(s, data, eos) == CAIRN_FAIL) {
        body_failed(fw, s->fail_status ? s->fail_status : 400,
                    "request_body_filter refused the body");
        return;
    }
    cn_ux_body(fw->ux, data, eos);
}

static void
want_body(void *cb)
{
    forward_t *fw = cb;
    cn_session_read_body(fw->s, on_client_body);
}

/* ---- the response ------------------------------------------------------------------------- */

static void
copy_info(forward_t *fw)
{
    const cn_ux_info_t *in = cn_ux_info(fw->ux);
    cn_session_t *s = fw->s;
    memcpy(s->upstream_addr, in->peer, sizeof(s->upstream_addr));
    s->upstream_reused = in->reused;
    s->upstream_connect_ns = in->connect_ns;
    s->upstream_header_ns = in->header_ns;
}

static void
on_interim(void *cb, unsigned status, const cn_headers_t *h)
{
    forward_t *fw = cb;
    /* 100 Continue is between cairn and each side (Expect is hop-by-hop). */
    if (status != 100 && !fw->s->background)
        cn_session_interim(fw->s, status, h);
}

static cn_ux_verdict_t
on_head(void *cb)
{
    forward_t *fw = cb;
    cn_session_t *s = fw->s;
    copy_info(fw);
    add_via(s, &s->resp.headers, 11);
    cn_stats_upstream_response(s, fw->up, s->resp.status);
    if (s->n_hooks > 0 && cn_hooks_upstream_response(s) == CAIRN_FAIL) {
        cn_ux_cancel(fw->ux);
        s->src_ops = NULL;
        cn_session_error(s, s->fail_status ? s->fail_status : 502,
                         "upstream_response_filter failed");
        return CN_UX_ABANDON;
    }
    cn_cached_head_result_t cr = s->cc != NULL ? cn_cached_upstream_head(s) : CN_CACHED_STREAM;
    if (cr == CN_CACHED_ABANDON) {
        /* A detached leader whose response nobody can use: stop fetching. */
        cn_cached_abandoned(s);
        cn_ux_cancel(fw->ux);
        s->src_ops = NULL;
        cn_session_abort(s);
        return CN_UX_ABANDON;
    }
    return cr == CN_CACHED_TAKEN ? CN_UX_TAKEN : CN_UX_STREAM;
}

static void
store_done(forward_t *fw)
{
    if (fw->s->cc != NULL && !fw->stored_done) {
        fw->stored_done = true;
        cn_cached_upstream_done(fw->s);
    }
}

static void
on_body(void *cb, cairn_iov_t data, bool last)
{
    forward_t *fw = cb;
    cn_session_t *s = fw->s;
    if (s->cc != NULL) {
        cn_cached_upstream_body(s, data);
        /* The object is stored when its last byte arrives, before the client has it, so a
         * client that asks again at once finds it. */
        if (last)
            store_done(fw);
    }
    cn_session_send(s, &data, 1, false);
}

static void
on_end(void *cb, bool taken)
{
    forward_t *fw = cb;
    cn_session_t *s = fw->s;
    copy_info(fw);
    store_done(fw);
    if (taken) {
        cn_cached_serve_taken(s);
        return;
    }
    cn_session_send(s, NULL, 0, true);
}

static void
on_error(void *cb, cairn_err_t err, const char *why, bool final)
{
    forward_t *fw = cb;
    cn_session_t *s = fw->s;
    copy_info(fw);
    cn_stats_upstream_error(s, fw->up, err);
    if (!final)
        return;
    s->src_ops = NULL;
    if (s->resp_started) {
        CN_LOG_WARN(s->id, "%s mid-response (upstream %s %s): aborting the client connection", why,
                    fw->up->name, cn_ux_info(fw->ux)->peer_addr);
        s->error = why;
        cn_session_abort(s);
        return;
    }
    unsigned status = err == CAIRN_ETIMEDOUT ? 504 : 502;
    s->last_err = err;
    if (s->cc != NULL && cn_cached_upstream_error(s, status))
        return;
    char *msg = cn_arena_xalloc(s->arena, 256);
    snprintf(msg, 256, "%s: %s %s (%s)", why, fw->up->name, cn_ux_info(fw->ux)->peer_addr,
             cairn_strerror(err));
    cn_session_error(s, status, msg);
}

static const cn_ux_ops_t forward_ops = {
    .select_peer = select_peer,
    .prepare = prepare,
    .want_body = want_body,
    .on_interim = on_interim,
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_error = on_error,
};

static void
pull_body(cn_session_t *s, void *src)
{
    forward_t *fw = src;
    (void)s;
    cn_ux_pull(fw->ux);
}

static void
cancel_forward(cn_session_t *s, void *src)
{
    forward_t *fw = src;
    (void)s;
    cn_ux_cancel(fw->ux);
}

/* ---- entry -------------------------------------------------------------------------------- */

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
    forward_t *fw = cn_arena_xalloc(s->arena, sizeof(*fw));
    memset(fw, 0, sizeof(*fw));
    fw->s = s;
    fw->up = up;
    fw->ux = cn_ux_open(&s->w->up, s->arena, up, &forward_ops, fw, &s->resp);
    s->upstream_name = up->name;
    s->src_ops = &forward_src_ops;
    s->src = fw;
    cn_ux_start(fw->ux);
}
