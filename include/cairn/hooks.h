/* SPDX-License-Identifier: MIT */
/* The programmable proxy API: a hook table with one optional function per request phase.
 *
 * Order is the onion: request-side phases (request_filter, request_body_filter,
 * upstream_select, upstream_request_filter, fail_to_proxy) call the registered tables in
 * registration order; response-side phases (upstream_response_filter, response_filter,
 * response_body_filter) and logging call them in reverse. logging is called exactly once per
 * request, also after errors, short-circuits and client disconnects.
 *
 * Built-in behaviour sits inside the onion: routing runs after every request_filter; the
 * route's header rules (request_headers, response_headers) and the cache's Cache-Status are
 * applied before upstream_request_filter and response_filter, so a program's hooks see them
 * and have the last word; the access log is written before the logging hooks run.
 * A proxied request runs the phases in this order: request_filter, (routing),
 * upstream_select, upstream_request_filter, request_body_filter, upstream_response_filter,
 * response_filter, response_body_filter, logging.
 *
 * Every hook runs on the worker thread that owns the request. */
#ifndef CAIRN_HOOKS_H
#define CAIRN_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairn/cache.h>
#include <cairn/error.h>
#include <cairn/headers.h>
#include <cairn/iov.h>
#include <cairn/version.h>

typedef struct cairn_req cairn_req_t;
typedef struct cairn_resp cairn_resp_t;

typedef enum cairn_action {
    CAIRN_CONTINUE = 0, /* proceed to the next hook / phase */
    CAIRN_RESPONDED,    /* the hook produced a response (cairn_req_respond); skip to sending it */
    CAIRN_PENDING,      /* request_filter only: the hook calls cairn_req_resume() later */
    CAIRN_FAIL,         /* abort with the status of cairn_req_fail(), or 500 */
} cairn_action_t;

/** A peer chosen by upstream_select: a numeric "ip:port", "[ip6]:port" or "unix:/path". */
typedef struct cairn_peer {
    char address[128];
} cairn_peer_t;

/** One slice of a body seen by a body filter. Read-only: valid during the call. */
typedef struct cairn_body {
    cairn_iov_t data;
    bool eos; /* the last slice */
} cairn_body_t;

/** What the logging hook receives. Strings are valid during the call. */
typedef struct cairn_req_summary {
    unsigned status;      /* 499 when the client left before the response was complete */
    uint64_t bytes_sent;  /* response body bytes handed to the client */
    uint64_t duration_ns; /* from the request head to the end */
    const char *upstream; /* upstream name, or NULL */
    bool upstream_reused; /* the upstream connection came from the keep-alive pool */
    const char *error;    /* why cairn produced an error, or NULL */
} cairn_req_summary_t;

typedef struct cairn_hooks {
    unsigned abi;     /* must be CAIRN_HOOKS_ABI; members are only ever appended */
    const char *name; /* used in logs */
    size_t ctx_size;  /* per-request state, zeroed, allocated in the request arena */
    void (*ctx_dispose)(cairn_req_t *req, void *ctx); /* runs when the request ends */

    /** The request head arrived. May answer (cairn_req_respond → CAIRN_RESPONDED), fail,
     *  or suspend (CAIRN_PENDING, then cairn_req_resume on the same thread). */
    cairn_action_t (*request_filter)(cairn_req_t *req, void *ctx);
    /** Each request body slice on its way to the upstream (inspection; FAIL aborts). */
    cairn_action_t (*request_body_filter)(cairn_req_t *req, void *ctx, const cairn_body_t *b);
    /** Picks a peer: the first hook that fills *peer and returns CONTINUE decides. Without
     *  one, the route's upstream (or cairn_req_set_upstream's) balances over its peers. */
    cairn_action_t (*upstream_select)(cairn_req_t *req, void *ctx, cairn_peer_t *peer);
    /** Edits the headers sent upstream (hop-by-hop fields are already removed, Host is
     *  set, X-Forwarded-* and Via added). */
    cairn_action_t (*upstream_request_filter)(cairn_req_t *req, void *ctx, cairn_headers_t *h);
    /** The upstream response head arrived (before any cache decision). */
    cairn_action_t (*upstream_response_filter)(cairn_req_t *req, void *ctx, cairn_resp_t *r);
    /** Any response (proxied, local or error) just before its head is sent. */
    cairn_action_t (*response_filter)(cairn_req_t *req, void *ctx, cairn_resp_t *r);
    /** Each response body slice on its way to the client (inspection). */
    cairn_action_t (*response_body_filter)(cairn_req_t *req, void *ctx, const cairn_body_t *b);
    /** An error is about to become a response with *status (502, 504, 400 ...). A hook may
     *  change *status, or write its own response (cairn_req_respond → CAIRN_RESPONDED). */
    cairn_action_t (*fail_to_proxy)(cairn_req_t *req, void *ctx, cairn_err_t err, unsigned *status);
    /** Exactly once, at the end. */
    void (*logging)(cairn_req_t *req, void *ctx, const cairn_req_summary_t *sum);
    /** Caching routes: the key before lookup; change it with cairn_cache_key_set/add. */
    cairn_action_t (*cache_key)(cairn_req_t *req, void *ctx, cairn_cache_key_t *key);
    /** A stored response was found; set m->expire to revalidate instead of serving it. */
    cairn_action_t (*cache_hit_filter)(cairn_req_t *req, void *ctx, cairn_cache_meta_t *m);
} cairn_hooks_t;

#endif
