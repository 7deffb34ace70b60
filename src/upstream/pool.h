/* SPDX-License-Identifier: MIT */
/* Upstream connections and their keep-alive pools. A cn_upconn_t is owned by the pool of its
 * upstream and peer while idle, lent to one exchange while busy, and closed (never pooled)
 * after anything unusual. Pools are per worker thread (cn_up_ctx_t): no locks. Private to
 * src/upstream/. */
#ifndef CN_UPSTREAM_POOL_H
#define CN_UPSTREAM_POOL_H

#include "upstream/upstream.h"

enum cn_upconn_state { CN_UP_CONNECTING = 0, CN_UP_IDLE, CN_UP_BUSY, CN_UP_CLOSED };

typedef struct cn_upconn cn_upconn_t;

typedef struct cn_up_pool {
    struct cn_up_pool *next;
    char key[256];     /* upstream name, '\n', peer address */
    cn_upconn_t *idle; /* most recently used first */
    size_t n_idle;
} cn_up_pool_t;

struct cn_upconn {
    uint32_t magic;
    uint8_t state;
    cn_sock_t sock; /* the transport */
    uv_timer_t timer;
    cn_up_ctx_t *ctx;
    cn_up_pool_t *pool;
    cn_upconn_t *idle_next, *idle_prev;
    cn_ux_t *ux; /* the exchange using it; NULL when idle or detached */
    uint64_t requests;
};

#define CN_UPCONN_MAGIC 0x55504331u

/** The pool of @up and @peer on this thread (created on first use). */
cn_up_pool_t *cn_up_pool_get(cn_up_ctx_t *ctx, const cn_conf_upstream_t *up,
                             const cn_conf_peer_t *peer);
/** An idle connection with no unread bytes, now busy, or NULL. */
cn_upconn_t *cn_up_pool_take(cn_up_pool_t *p);
/** Back to the pool (or closed when @up keeps none, the pool is full, or the thread drains). */
void cn_up_pool_put(cn_upconn_t *uc, const cn_conf_upstream_t *up);
/** A new connection of @pool, not yet connected; its socket callbacks are @on_read/@on_write. */
cn_upconn_t *cn_upconn_new(cn_up_ctx_t *ctx, cn_up_pool_t *pool, cn_sock_read_cb on_read,
                           cn_sock_write_cb on_write);
/** Closes @uc (a reset when @reset); memory is freed once the handles are closed. */
void cn_upconn_close(cn_upconn_t *uc, bool reset);

#endif
