/* SPDX-License-Identifier: MIT */
/* Keep-alive pools keyed by upstream and peer, so two upstreams that name one address keep
 * their own connections, limits and idle timeouts (TLS settings will differ per upstream).
 * An idle connection keeps reading: EOF or stray bytes mean it must not be reused. */
#include "upstream/pool.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

cn_up_pool_t *
cn_up_pool_get(cn_up_ctx_t *ctx, const cn_conf_upstream_t *up, const cn_conf_peer_t *peer)
{
    char key[sizeof(((cn_up_pool_t *)0)->key)];
    snprintf(key, sizeof(key), "%s\n%s", up->name, peer->addr.text);
    for (cn_up_pool_t *p = ctx->pools; p != NULL; p = p->next)
        if (strcmp(p->key, key) == 0)
            return p;
    cn_up_pool_t *p = cn_xcalloc(1, sizeof(*p));
    memcpy(p->key, key, sizeof(key));
    p->next = ctx->pools;
    ctx->pools = p;
    return p;
}

static void
pool_unlink(cn_upconn_t *uc)
{
    cn_up_pool_t *p = uc->pool;
    if (uc->state != CN_UP_IDLE || p == NULL)
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
    cn_upconn_close(t->data, false);
}

void
cn_up_pool_put(cn_upconn_t *uc, const cn_conf_upstream_t *up)
{
    cn_up_pool_t *p = uc->pool;
    if (up->keepalive_pool == 0 || p->n_idle >= up->keepalive_pool || uc->ctx->draining) {
        cn_upconn_close(uc, false);
        return;
    }
    uc->ux = NULL;
    uc->state = CN_UP_IDLE;
    uc->idle_prev = NULL;
    uc->idle_next = p->idle;
    if (p->idle)
        p->idle->idle_prev = uc;
    p->idle = uc;
    p->n_idle++;
    uc->sock.rbuf_limit = 4096;
    cn_sock_read_start(&uc->sock);
    uv_timer_start(&uc->timer, on_idle_timeout, up->keepalive_idle_ms, 0);
}

cn_upconn_t *
cn_up_pool_take(cn_up_pool_t *p)
{
    for (;;) {
        cn_upconn_t *uc = p->idle;
        if (uc == NULL)
            return NULL;
        pool_unlink(uc);
        uv_timer_stop(&uc->timer);
        if (uc->sock.rbuf.len == 0) {
            uc->state = CN_UP_BUSY;
            return uc;
        }
        cn_upconn_close(uc, false); /* unsolicited bytes: never reused */
    }
}

void
cn_up_ctx_close(cn_up_ctx_t *ctx)
{
    while (ctx->pools != NULL) {
        cn_up_pool_t *p = ctx->pools;
        while (p->idle != NULL)
            cn_upconn_close(p->idle, false);
        ctx->pools = p->next;
        cn_free(p);
    }
}

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

void
cn_upconn_close(cn_upconn_t *uc, bool reset)
{
    if (uc->state == CN_UP_CLOSED)
        return;
    pool_unlink(uc);
    uc->state = CN_UP_CLOSED;
    uc->ux = NULL;
    uv_timer_stop(&uc->timer);
    cn_sock_close(&uc->sock, reset);
}

cn_upconn_t *
cn_upconn_new(cn_up_ctx_t *ctx, cn_up_pool_t *pool, cn_sock_read_cb on_read,
              cn_sock_write_cb on_write)
{
    cn_upconn_t *uc = cn_xcalloc(1, sizeof(*uc));
    uc->magic = CN_UPCONN_MAGIC;
    uc->ctx = ctx;
    uc->pool = pool;
    uc->state = CN_UP_CONNECTING;
    uc->sock.data = uc;
    uc->sock.on_read = on_read;
    uc->sock.on_write = on_write;
    uc->sock.on_close = on_sock_closed;
    uv_timer_init(ctx->loop, &uc->timer);
    uc->timer.data = uc;
    return uc;
}
