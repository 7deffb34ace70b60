/* SPDX-License-Identifier: MIT */
/* The exchange: attempts, peers, connections and timers. An attempt takes a pooled connection
 * of the chosen peer or connects a new one, then hands it to the codec. A failure is retried
 * when that cannot do the work twice: once on a fresh connection when a pooled one turned out
 * closed, and on the next peer for connect failures (up to `retries`). */
#include "upstream/codec.h"

#include <stdio.h>
#include <string.h>

#include "core/assert.h"
#include "core/log.h"
#include "core/time.h"
#include "net/tls.h"
#include "upstream/balance.h"

static void start_attempt(cn_ux_t *ux);

/* ---- connection callbacks ----------------------------------------------------------------- */

static void
on_conn_read(cn_sock_t *sock, cairn_err_t status)
{
    cn_upconn_t *uc = sock->data;
    CN_CHECK_OBJ(uc, CN_UPCONN_MAGIC);
    cn_ux_t *ux = uc->ux;
    if (ux == NULL) {
        /* Idle in the pool: the upstream closed it or sent unsolicited bytes. */
        cn_upconn_close(uc, false);
        return;
    }
    if (status == CAIRN_OK)
        ux->got_response_bytes = true;
    ux->codec->on_read(ux, status);
}

static void
on_conn_write(cn_sock_t *sock, cairn_err_t status)
{
    cn_upconn_t *uc = sock->data;
    cn_ux_t *ux = uc->ux;
    if (ux == NULL)
        return;
    ux->writing = false;
    ux->codec->on_write(ux, status);
}

static void
on_timeout(uv_timer_t *t)
{
    cn_upconn_t *uc = t->data;
    cn_ux_t *ux = uc->ux;
    if (ux == NULL) {
        cn_upconn_close(uc, false);
        return;
    }
    if (uc->state == CN_UP_CONNECTING)
        cn_ux_fail(ux, CAIRN_ETIMEDOUT, "upstream connect timeout");
    else if (ux->writing)
        cn_ux_fail(ux, CAIRN_ETIMEDOUT, "upstream write timeout");
    else
        cn_ux_fail(ux, CAIRN_ETIMEDOUT, "upstream read timeout");
}

void
cn_ux_arm(cn_ux_t *ux, uint64_t ms)
{
    if (ux->uc == NULL)
        return;
    if (ms == 0)
        uv_timer_stop(&ux->uc->timer);
    else
        uv_timer_start(&ux->uc->timer, on_timeout, ms, 0);
}

/* Lets go of the connection: back to its pool, or closed (reset unless @clean). */
static void
release_conn(cn_ux_t *ux, bool reusable, bool clean)
{
    cn_upconn_t *uc = ux->uc;
    if (uc == NULL)
        return;
    ux->uc = NULL;
    uc->ux = NULL;
    uc->sock.hold = 0;
    uv_timer_stop(&uc->timer);
    if (reusable)
        cn_up_pool_put(uc, ux->up);
    else
        cn_upconn_close(uc, !clean);
}

static void
on_connected(cn_sock_t *sock, cairn_err_t status)
{
    cn_upconn_t *uc = sock->data;
    cn_ux_t *ux = uc->ux;
    if (ux == NULL) {
        cn_upconn_close(uc, false);
        return;
    }
    if (status == CAIRN_ETLS) {
        /* The reason (a verification failure, no shared protocol...) goes in the log. */
        const char *why = cn_tls_sock_error(sock);
        char *msg = cn_arena_xalloc(ux->arena, 256);
        snprintf(msg, 256, "upstream TLS handshake failed: %s", why ? why : "?");
        cn_ux_fail(ux, CAIRN_ETLS, msg);
        return;
    }
    if (status != CAIRN_OK) {
        bool kept = status == CAIRN_ETIMEDOUT || status == CAIRN_ENOENT;
        cn_ux_fail(ux, kept ? status : CAIRN_ECONNREFUSED, "upstream connect failed");
        return;
    }
    uc->state = CN_UP_BUSY;
    ux->info.connect_ns = cn_time_now_ns() - ux->t_start_ns;
    ux->codec->begin(ux);
}

/* ---- attempts ----------------------------------------------------------------------------- */

static bool
choose_peer(cn_ux_t *ux)
{
    const cn_conf_peer_t *peer = NULL;
    if (ux->ops->select_peer != NULL && !ux->ops->select_peer(ux->cb, &peer))
        return false; /* the consumer answered: @ux may be gone */
    ux->peer = peer != NULL ? peer : cn_balancer_for(ux->up)->pick(ux->ctx, ux->up, ux->attempt);
    size_t al = strnlen(ux->peer->addr.text, sizeof(ux->info.peer) - 1);
    memcpy(ux->info.peer, ux->peer->addr.text, al);
    ux->info.peer[al] = '\0';
    ux->info.peer_addr = ux->peer->addr.text;
    return true;
}

static void
start_attempt(cn_ux_t *ux)
{
    if (!choose_peer(ux))
        return;
    if (!ux->prepared) {
        /* Pingora's order: the peer is chosen, then the request filters edit the request. */
        ux->prepared = true;
        cn_headers_init(&ux->req.headers, ux->arena);
        if (ux->ops->prepare != NULL && !ux->ops->prepare(ux->cb, &ux->req))
            return; /* the consumer answered: @ux may be gone */
    }
    ux->got_response_bytes = false;
    ux->head_parsed = false;
    cn_up_pool_t *pool = cn_up_pool_get(ux->ctx, ux->up, ux->peer);
    cn_upconn_t *uc = cn_up_pool_take(pool);
    if (uc != NULL) {
        uc->ux = ux;
        ux->uc = uc;
        ux->info.reused = true;
        ux->codec->begin(ux);
        return;
    }
    ux->info.reused = false;
    uc = cn_upconn_new(ux->ctx, pool, on_conn_read, on_conn_write);
    uc->ux = ux;
    ux->uc = uc;
    ux->t_start_ns = cn_time_now_ns();
    cn_ux_arm(ux, ux->up->connect_timeout_ms); /* the TLS handshake included */
    if (ux->up->tls_ctx != NULL)
        cn_tls_sock_connect_prepare(&uc->sock, ux->up->tls_ctx);
    cairn_err_t r = cn_sock_connect(ux->ctx->loop, &uc->sock,
                                    (const struct sockaddr *)&ux->peer->addr.ss, on_connected);
    if (r != CAIRN_OK)
        cn_ux_fail(ux, r == CAIRN_ENOENT ? r : CAIRN_ECONNREFUSED, "upstream connect failed");
}

/* Can this failure be retried on another connection without risk of doing the work twice? */
static bool
can_retry(cn_ux_t *ux, cairn_err_t err, bool *pool_retry)
{
    *pool_retry = false;
    if (ux->got_response_bytes || ux->relayed || ux->body_started)
        return false;
    cn_upconn_t *uc = ux->uc;
    bool reused = uc != NULL && uc->requests > 1 && uc->state != CN_UP_CONNECTING;
    /* A pooled connection that the upstream had closed: once, on a fresh connection. */
    if (reused && (err == CAIRN_ECLOSED || err == CAIRN_ERESET) && !ux->pool_retry_used) {
        *pool_retry = true;
        return true;
    }
    bool connect_phase = uc == NULL || uc->state == CN_UP_CONNECTING;
    return connect_phase && ux->attempt < ux->up->retries;
}

void
cn_ux_fail(cn_ux_t *ux, cairn_err_t err, const char *why)
{
    if (ux->done)
        return;
    bool pool_retry;
    bool retry = can_retry(ux, err, &pool_retry);
    bool connecting = ux->uc != NULL && ux->uc->state == CN_UP_CONNECTING;
    cn_balancer_for(ux->up)->report(ux->ctx, ux->up, ux->peer,
                                    connecting ? CN_BALANCE_CONNECT_FAILED : CN_BALANCE_FAILED);
    release_conn(ux, false, false);
    ux->writing = false;
    ux->sending = false;
    if (!retry) {
        ux->done = true;
        ux->ops->on_error(ux->cb, err, why, true); /* last: @ux may be gone after it */
        return;
    }
    ux->ops->on_error(ux->cb, err, why, false);
    if (pool_retry)
        ux->pool_retry_used = true;
    else
        ux->attempt++;
    CN_LOG_INFO(ux->req.log_id, "%s (%s, %s): retrying", why, ux->peer->addr.text,
                cairn_err_name(err));
    start_attempt(ux);
}

/* ---- services for codecs ------------------------------------------------------------------ */

void
cn_ux_finish(cn_ux_t *ux, bool reusable, bool taken)
{
    if (ux->done)
        return;
    ux->done = true;
    cn_balancer_for(ux->up)->report(ux->ctx, ux->up, ux->peer, CN_BALANCE_OK);
    release_conn(ux, reusable, true);
    ux->ops->on_end(ux->cb, taken);
}

cn_ux_verdict_t
cn_ux_head(cn_ux_t *ux)
{
    ux->head_parsed = true;
    ux->info.header_ns = cn_time_now_ns() - ux->t_start_ns;
    /* After CN_UX_ABANDON the consumer has canceled @ux and may have freed it. */
    return ux->ops->on_head(ux->cb);
}

void
cn_ux_deliver(cn_ux_t *ux, cairn_iov_t data, bool last)
{
    ux->sending = true;
    ux->relayed = true;
    ux->uc->sock.hold = 1; /* the slice points into the read buffer */
    uv_timer_stop(&ux->uc->timer);
    ux->ops->on_body(ux->cb, data, last);
}

void
cn_ux_want_body(cn_ux_t *ux)
{
    ux->body_started = true;
    ux->ops->want_body(ux->cb);
}

void
cn_ux_switch(cn_ux_t *ux)
{
    if (ux->ops->on_switch == NULL) {
        cn_ux_fail(ux, CAIRN_EPROTO, "upstream switched protocols unexpectedly");
        return;
    }
    cn_upconn_t *uc = ux->uc;
    ux->uc = NULL;
    uc->ux = NULL;
    uv_timer_stop(&uc->timer);
    uc->state = CN_UP_CLOSED; /* the pool forgets it: the socket is the consumer's now */
    ux->done = true;
    ux->ops->on_switch(ux->cb, &uc->sock);
}

/* ---- the consumer's interface ------------------------------------------------------------- */

static const cn_ux_codec_t *
codec_for(const cn_conf_upstream_t *up)
{
    (void)up; /* HTTP/2 adds its case here */
    return &cn_ux_codec_h1;
}

cn_ux_t *
cn_ux_open(cn_up_ctx_t *ctx, cn_arena_t *arena, const cn_conf_upstream_t *up,
           const cn_ux_ops_t *ops, void *cb, cn_http_resp_t *resp)
{
    CN_ASSERT(up->n_peers > 0 || ops->select_peer != NULL);
    cn_ux_t *ux = cn_arena_xalloc(arena, sizeof(*ux));
    memset(ux, 0, sizeof(*ux));
    ux->ctx = ctx;
    ux->arena = arena;
    ux->up = up;
    ux->ops = ops;
    ux->cb = cb;
    ux->resp = resp;
    ux->codec = codec_for(up);
    return ux;
}

void
cn_ux_start(cn_ux_t *ux)
{
    start_attempt(ux);
}

void
cn_ux_body(cn_ux_t *ux, cairn_iov_t data, bool eos)
{
    if (ux->done || ux->uc == NULL)
        return;
    ux->codec->send_body(ux, data, eos);
}

void
cn_ux_pull(cn_ux_t *ux)
{
    ux->sending = false;
    if (ux->done || ux->uc == NULL)
        return;
    ux->uc->sock.hold = 0;
    ux->codec->pull(ux);
}

void
cn_ux_cancel(cn_ux_t *ux)
{
    ux->done = true;
    /* The response was not read to its end: the connection cannot be reused. */
    release_conn(ux, false, false);
}

bool
cn_ux_done(const cn_ux_t *ux)
{
    return ux->done;
}

const cn_ux_info_t *
cn_ux_info(const cn_ux_t *ux)
{
    return &ux->info;
}
