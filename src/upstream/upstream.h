/* SPDX-License-Identifier: MIT */
/* The upstream layer's interface: an exchange is one request sent to an upstream and its
 * response read back, owned by whoever opens it (a proxied session, a cache fill, a background
 * revalidation; later a health probe or an auth subrequest). The exchange chooses a peer (the
 * upstream's balancer, or the consumer's choice), takes a connection from the pool of that
 * upstream and peer, and is driven by a codec (HTTP/1.1 today) over a transport (cn_sock_t:
 * TCP or unix today). It reports events through the consumer's ops table and knows nothing of
 * sessions or caches. Body slices are pulled: one is with the consumer at a time, and the
 * transport is not read again until cn_ux_pull(), which is the backpressure. */
#ifndef CN_UPSTREAM_UPSTREAM_H
#define CN_UPSTREAM_UPSTREAM_H

#include <uv.h>

#include "config/config.h"
#include "core/arena.h"
#include "http/msg.h"
#include "net/net.h"

struct cn_up_pool;
struct cn_upconn;

/** What one worker thread gives the upstream layer: its loop and the state the layer keeps
 *  per thread (idle connections, balancer cursors). Touched only on that thread. */
typedef struct cn_up_ctx {
    uv_loop_t *loop;
    struct cn_up_pool *pools; /* per upstream and peer */
    uint64_t rr;              /* round-robin cursor */
    bool draining;            /* no connection goes back to a pool */
} cn_up_ctx_t;

/** Closes every idle pooled connection of @ctx (worker stop). */
void cn_up_ctx_close(cn_up_ctx_t *ctx);

/** The request as the codec needs it: no framing fields (the codec derives them). */
typedef struct cn_ux_request {
    cairn_iov_t method;
    cairn_iov_t path;  /* as sent */
    cairn_iov_t query; /* without '?' */
    bool has_query;
    cairn_iov_t authority; /* Host (HTTP/1.1) or :authority (HTTP/2) */
    cn_headers_t headers;  /* end-to-end fields only */
    bool has_body;
    int64_t content_length; /* -1 = unknown (sent chunked over HTTP/1.1) */
    uint64_t log_id;        /* the request id for log lines */
    size_t max_head;        /* limits of the response head */
    size_t max_headers;
} cn_ux_request_t;

/** What the exchange learnt, for logs and metrics; valid from the first attempt on. */
typedef struct cn_ux_info {
    char peer[64];         /* address text of the peer of the current attempt (cut short) */
    const char *peer_addr; /* the same, whole (config or arena memory) */
    bool reused;           /* the connection came from the pool */
    uint64_t connect_ns, header_ns;
} cn_ux_info_t;

typedef enum cn_ux_verdict {
    CN_UX_STREAM,  /* relay the body (on_body slices, then on_end) */
    CN_UX_TAKEN,   /* the consumer answered without the body: on_end(taken) follows */
    CN_UX_ABANDON, /* nobody wants the response: the consumer called cn_ux_cancel() */
} cn_ux_verdict_t;

typedef struct cn_ux cn_ux_t;

/** Events of one exchange. @cb is the consumer's pointer given to cn_ux_open(). Callbacks
 *  other than on_head, on_body, on_end and on_error may be NULL. The consumer may end (and
 *  free the arena of) the exchange inside on_end, on_error(final), on_body, want_body, a
 *  select_peer or prepare that returns false, and an on_head that returns CN_UX_ABANDON. */
typedef struct cn_ux_ops {
    /** Chooses the peer of an attempt (a hook's choice): true with *@peer set, true with
     *  NULL (the upstream's balancer chooses), or false when the consumer answered instead
     *  (the exchange then stops without another call). */
    bool (*select_peer)(void *cb, const cn_conf_peer_t **peer);
    /** Once, after the first peer is chosen: the consumer fills @req (request filters run
     *  here). False when the consumer answered instead. */
    bool (*prepare)(void *cb, cn_ux_request_t *req);
    /** The exchange can take the next request body slice: answer with cn_ux_body(). */
    void (*want_body)(void *cb);
    /** An interim response (1xx other than 101). */
    void (*on_interim)(void *cb, unsigned status, const cn_headers_t *h);
    /** The final response head is in the cn_http_resp_t given to cn_ux_open(). */
    cn_ux_verdict_t (*on_head)(void *cb);
    /** One body slice (valid until cn_ux_pull()); @last when no body byte follows it. */
    void (*on_body)(void *cb, cairn_iov_t data, bool last);
    /** The response ended (after the last slice was pulled, or after CN_UX_TAKEN or a
     *  response without a body); the connection is already back in its pool or closed. */
    void (*on_end)(void *cb, bool taken);
    /** An attempt failed with @err (ECONNREFUSED/ENOENT connect, ETIMEDOUT, ERESET,
     *  ECLOSED, EPROTO). @final false: it is retried (for metrics); true: the exchange is
     *  over, @mid_response when response bytes were already relayed. */
    void (*on_error)(void *cb, cairn_err_t err, const char *why, bool final);
    /** Optional: the upstream switched protocols (101). With it set, @sock (and any bytes
     *  already in its read buffer) becomes the consumer's byte stream: the tunnel hand-off.
     *  Without it a 101 is a protocol error. */
    void (*on_switch)(void *cb, cn_sock_t *sock);
} cn_ux_ops_t;

/** A new exchange in @arena (it lives as long as the arena) to @up. The response head is
 *  written to *@resp (its headers in @arena). Nothing happens until cn_ux_start(). */
cn_ux_t *cn_ux_open(cn_up_ctx_t *ctx, cn_arena_t *arena, const cn_conf_upstream_t *up,
                    const cn_ux_ops_t *ops, void *cb, cn_http_resp_t *resp);
/** Chooses the peer and starts the first attempt. */
void cn_ux_start(cn_ux_t *ux);
/** The next request body slice (after want_body); @data stays valid until the next
 *  want_body. Ignored once the exchange is over. */
void cn_ux_body(cn_ux_t *ux, cairn_iov_t data, bool eos);
/** The consumer is done with the slice of the last on_body. */
void cn_ux_pull(cn_ux_t *ux);
/** The consumer stops the exchange: no more callbacks; an unfinished connection is reset. */
void cn_ux_cancel(cn_ux_t *ux);
/** True once the exchange is over (ended, failed or canceled). */
bool cn_ux_done(const cn_ux_t *ux);
const cn_ux_info_t *cn_ux_info(const cn_ux_t *ux);

/* Field helpers shared with consumers. */
/** Removes hop-by-hop fields, including every field named in Connection (RFC 9110 §7.6.1). */
void cn_up_strip_hop_by_hop(cn_headers_t *h);

#endif
