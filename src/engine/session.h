/* SPDX-License-Identifier: MIT */
/* cn_session_t: one request/response exchange, driven as a state machine of small steps.
 * Private to src/engine/ (and the server that starts it). The session owns its request arena and a
 * config reference; the protocol driver owns the connection. Background objects (upstream
 * connections, file readers) point back at the session and are detached when it ends early. */
#ifndef CN_PROXY_SESSION_H
#define CN_PROXY_SESSION_H

#include <cairn/hooks.h>

#include "config/config.h"
#include "http/msg.h"
#include "engine/worker.h"

/* The public handles are views of internal objects (see src/api/api.c). */
struct cairn_req {
    uint32_t magic;
};
struct cairn_headers {
    cn_headers_t base;
};
struct cairn_resp {
    cn_http_resp_t base;
};
struct cairn_cache_key {
    char *text; /* in the request arena */
    size_t len;
    struct cn_session *s;
};

/* A hook table registered with cairn_server_use(). */
typedef struct cn_hook_reg {
    const cairn_hooks_t *hooks;
    void *udata;
} cn_hook_reg_t;

#define CN_SESSION_MAGIC 0x5e55104eu

typedef struct cn_body_src_ops {
    /** The previous slice was written: produce the next one with cn_session_send(). */
    void (*pull)(cn_session_t *s, void *src);
    /** The session ends (normally, or early when the client left): release everything. */
    void (*cancel)(cn_session_t *s, void *src);
} cn_body_src_ops_t;

typedef void (*cn_session_body_cb)(cn_session_t *s, cairn_iov_t data, bool eos, cairn_err_t err);

struct cn_session {
    struct cairn_req base; /* base.magic == CN_SESSION_MAGIC */
    cn_worker_t *w;
    cn_config_t *cfg;
    cn_http_ds_t *ds;
    cn_arena_t *arena;
    cn_http_req_t *req;
    cn_http_resp_t resp; /* seen by hooks as a struct cairn_resp */
    const cn_conf_route_t *route;
    uint64_t id;
    uint64_t start_ns;
    /* response body production */
    const cn_body_src_ops_t *src_ops;
    void *src;
    cn_session_body_cb on_req_body; /* who receives request body slices */
    bool resp_started;
    bool resp_eos; /* the final slice was handed to the driver */
    bool sending;
    bool ended;
    /* for the access log */
    uint64_t bytes_sent;
    const char *upstream_name;
    char upstream_addr[64];
    const char *cache_status;
    const char *error; /* why cairn generated an error response */
    char client[48];
    uint64_t upstream_connect_ns;
    uint64_t upstream_header_ns;
    bool upstream_reused;
    const char *tls_version, *tls_cipher; /* the client connection's (static strings) */
    bool tls_resumed;
    /* hooks */
    const cn_hook_reg_t *hooks;
    size_t n_hooks;
    void **hook_ctx;             /* one per table, allocated when the request starts */
    size_t hook_cur;             /* table running now (for cairn_hooks_udata) */
    size_t hook_next;            /* request_filter: next table to run */
    bool hook_pending;           /* a request_filter returned CAIRN_PENDING */
    bool hook_in_call;           /* inside a request_filter call (resume is deferred) */
    cairn_action_t hook_resumed; /* the action given to cairn_req_resume during the call */
    bool hook_resume_seen;
    bool resp_filtered;                          /* response_filter ran */
    unsigned fail_status;                        /* status of CAIRN_FAIL (cairn_req_fail) */
    cairn_err_t last_err;                        /* cause of the error being answered */
    const cn_conf_upstream_t *upstream_override; /* cairn_req_set_upstream */
    cairn_iov_t local_body;                      /* cairn_req_respond's body */
    struct cn_cached *cc;                        /* the cache flow, on caching routes */
    bool detached;     /* the client left; the session goes on for a fill (sends go nowhere) */
    bool post_pending; /* a detached_sent message is queued: the session must outlive it */
    bool end_after_post;
    unsigned retry_after; /* Retry-After of a 503 (0 = 1 second) */
    bool background;      /* no client: a background revalidation */
    int stale_policy;     /* hooks: -1 refuse stale, 0 default, 1 allow */
    int cache_override;   /* cairn_resp_set_cache: 0 none, 1 store, -1 never store */
    int64_t cache_ttl;    /* cairn_resp_set_cache TTL, -1 = the response's own */
};

/** The cn_http_handler_t for client-facing listeners (ctx is the worker). */
extern const cn_http_handler_t cn_session_handler;

/** Sends @n body slices (head first on the first call); completes via the body source. */
void cn_session_send(cn_session_t *s, const cairn_iov_t *iov, size_t n, bool eos);
/** Relays an interim (1xx) response from the upstream to the client, before the final head.
 *  Never stored; dropped when the client cannot take it (HTTP/1.0, gone, detached). */
void cn_session_interim(cn_session_t *s, unsigned status, const cn_headers_t *headers);
/** Sends a whole response whose body is in memory that lives as long as the session. */
void cn_session_respond(cn_session_t *s, unsigned status, cairn_iov_t body);
/** Answers @status with its short text body, keeping the headers already set (Allow,
 *  Content-Range, Location...). */
void cn_session_respond_status(cn_session_t *s, unsigned status);
/** The status the exchange ended with for logs and metrics: 499 when the client left first
 *  (a background fetch has no client: its own status). */
unsigned cn_session_status(const cn_session_t *s);
/** Generates an error response (custom page when the route has one) and logs @why once. */
void cn_session_error(cn_session_t *s, unsigned status, const char *why);
/** Aborts the client exchange (an incomplete response) and ends the session. */
void cn_session_abort(cn_session_t *s);
/** Starts pulling the request body; @cb receives each slice. */
void cn_session_read_body(cn_session_t *s, cn_session_body_cb cb);
/** A session without a client for a background fetch of @parent's URL (GET, same route and
 *  headers), on the same worker. Hooks do not run for it; it logs one access-log line. */
cn_session_t *cn_session_background(cn_session_t *parent);
/** Routes the request and runs the route's action (after request_filter). */
void cn_session_route(cn_session_t *s);
/** Copies a string into the request arena. */
cairn_iov_t cn_session_strdup(cn_session_t *s, cairn_iov_t v);

/* hooks.c: the phases of the hook tables (see include/cairn/hooks.h for the order). */
/** Runs request_filter from s->hook_next, then @done (unless suspended or answered). */
void cn_hooks_request_filter(cn_session_t *s, void (*done)(cn_session_t *s));
/** upstream_select: true when a hook chose *peer. */
bool cn_hooks_upstream_select(cn_session_t *s, cairn_peer_t *peer);
cairn_action_t cn_hooks_upstream_request(cn_session_t *s, cn_headers_t *h);
cairn_action_t cn_hooks_upstream_response(cn_session_t *s);
cairn_action_t cn_hooks_response(cn_session_t *s);
cairn_action_t cn_hooks_request_body(cn_session_t *s, cairn_iov_t data, bool eos);
cairn_action_t cn_hooks_response_body(cn_session_t *s, const cairn_iov_t *iov, size_t n, bool eos);
/** cache_key: returns the (maybe changed) key text. */
void cn_hooks_cache_key(cn_session_t *s, struct cairn_cache_key *key);
/** cache_hit_filter: true when a hook asked to revalidate instead of serving. */
bool cn_hooks_cache_hit(cn_session_t *s, cairn_cache_meta_t *m);
/** fail_to_proxy: may change *status; CAIRN_RESPONDED when a hook wrote the response. */
cairn_action_t cn_hooks_fail(cn_session_t *s, cairn_err_t err, unsigned *status);
/** logging (reverse order) then ctx_dispose, exactly once. */
void cn_hooks_end(cn_session_t *s);

/* route.c */
/** What routes can match of the request's connection. */
typedef struct cn_route_conn {
    const char *listener;     /* its name, or NULL */
    const char *sni;          /* the TLS server name sent, or NULL (plain, or none sent) */
    struct cn_sock *tls_sock; /* the TLS connection (client certificate), or NULL */
} cn_route_conn_t;
/** First route matching the request, or NULL. */
const cn_conf_route_t *cn_route_match(const cn_config_t *cfg, const cn_http_req_t *req,
                                      const cn_route_conn_t *conn);
/** True when @ss (a client address) is inside one of the @n CIDR ranges. */
bool cn_route_addr_in(const cn_conf_cidr_t *cidrs, size_t n, const struct sockaddr_storage *ss);
/** Applies add/set/remove rules to @h. */
void cn_route_apply_headers(const cn_conf_header_rules_t *rules, cn_headers_t *h);

/* actions.c */
void cn_action_static(cn_session_t *s);
void cn_action_redirect(cn_session_t *s);
void cn_action_files(cn_session_t *s);

/* upstream.c */
void cn_action_proxy(cn_session_t *s);

/* accesslog.c */
void cn_accesslog_write(cn_session_t *s);

#endif
