/* SPDX-License-Identifier: MIT */
/* Inside the upstream layer: the exchange object, upstream connections, and the codec ops
 * table. exchange.c owns attempts, peers, pools, timers and retries; a codec (h1.c) owns the
 * bytes on the connection: it serialises the request, frames the request body and parses
 * the response. A new protocol is a new codec (plus its case in cn_ux_codec_for()). Private
 * to src/upstream/. */
#ifndef CN_UPSTREAM_CODEC_H
#define CN_UPSTREAM_CODEC_H

#include "http1/http1.h"
#include "upstream/pool.h"
#include "upstream/upstream.h"

typedef struct cn_ux_codec {
    const char *name;
    /** The connection is ready (new, or idle from the pool): send the request. */
    void (*begin)(cn_ux_t *ux);
    /** Bytes arrived in the connection's read buffer (OK), or reading ended (the error). */
    void (*on_read)(cn_ux_t *ux, cairn_err_t status);
    /** The pending write finished (OK) or failed. */
    void (*on_write)(cn_ux_t *ux, cairn_err_t status);
    /** A request body slice from the consumer. */
    void (*send_body)(cn_ux_t *ux, cairn_iov_t data, bool eos);
    /** The consumer took the last body slice. */
    void (*pull)(cn_ux_t *ux);
} cn_ux_codec_t;

/* HTTP/1.1 state of an exchange (h1.c). */
typedef struct cn_ux_h1 {
    cairn_iov_t head; /* the serialised request head (kept for a retry) */
    bool req_chunked;
    bool body_eos_pending;
    char req_chunk_line[24];
    cairn_iov_t wiov[4];
    bool head_request;
    bool resp_keep_alive;
    bool resp_chunked;
    bool resp_close_delimited;
    int64_t body_left;
    cn_h1_chunked_t chunked;
    size_t consume; /* bytes of the read buffer in the slice with the consumer */
    bool up_eof;    /* the upstream ended a close-delimited body cleanly */
} cn_ux_h1_t;

struct cn_ux {
    cn_up_ctx_t *ctx;
    cn_arena_t *arena;
    const cn_conf_upstream_t *up;
    const cn_conf_peer_t *peer;
    const cn_ux_ops_t *ops;
    void *cb;
    cn_http_resp_t *resp;
    const cn_ux_codec_t *codec;
    cn_ux_request_t req;
    cn_ux_info_t info;
    cn_upconn_t *uc;
    unsigned attempt;
    bool pool_retry_used;
    bool prepared;
    /* progress, seen by the retry rule and the timers */
    bool got_response_bytes;
    bool head_parsed;
    bool body_started; /* request body bytes went out: never retried */
    bool body_sent;    /* the whole request is written */
    bool writing;      /* a write to the connection is pending */
    bool sending;      /* a body slice is with the consumer */
    bool relayed;      /* response body bytes reached the consumer */
    bool done;
    uint64_t t_start_ns;
    cn_ux_h1_t h1;
};

/* Services of exchange.c for codecs. Every call that reaches the consumer (fail, finish,
 * deliver, want_body, switch, and head with ABANDON) is a tail call: the consumer may end
 * and free the exchange inside it. */
/** Arms the connection's timer (the phase's timeout); 0 stops it. */
void cn_ux_arm(cn_ux_t *ux, uint64_t ms);
/** The attempt failed: retried when safe, else on_error(final) and the exchange is over. */
void cn_ux_fail(cn_ux_t *ux, cairn_err_t err, const char *why);
/** The response is complete: the connection goes back to its pool when @reusable, then
 *  on_end(@taken). */
void cn_ux_finish(cn_ux_t *ux, bool reusable, bool taken);
/** The final head is in ux->resp: asks the consumer. After CN_UX_ABANDON the consumer has
 *  canceled the exchange and @ux must not be touched. */
cn_ux_verdict_t cn_ux_head(cn_ux_t *ux);
/** Hands a body slice to the consumer. */
void cn_ux_deliver(cn_ux_t *ux, cairn_iov_t data, bool last);
/** Asks the consumer for the next request body slice. */
void cn_ux_want_body(cn_ux_t *ux);
/** A 101: the transport goes to the consumer's on_switch (or fails the exchange). */
void cn_ux_switch(cn_ux_t *ux);

extern const cn_ux_codec_t cn_ux_codec_h1;

#endif
