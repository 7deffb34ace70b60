/* SPDX-License-Identifier: MIT */
/* cn_session_t: one request/response exchange, driven as a state machine of small steps.
 * Private to src/proxy/. The session owns its request arena and a config reference; the
 * protocol driver owns the connection. Background objects (upstream connections, file
 * readers) point back at the session and are detached when it ends early. */
#ifndef CN_PROXY_SESSION_H
#define CN_PROXY_SESSION_H

#include "config/config.h"
#include "http/msg.h"
#include "proxy/worker.h"

#define CN_SESSION_MAGIC 0x5e55104eu

typedef struct cn_body_src_ops {
    /** The previous slice was written: produce the next one with cn_session_send(). */
    void (*pull)(cn_session_t *s, void *src);
    /** The session ends before the body does (client gone): release everything. */
    void (*cancel)(cn_session_t *s, void *src);
} cn_body_src_ops_t;

typedef void (*cn_session_body_cb)(cn_session_t *s, cairn_iov_t data, bool eos, cairn_err_t err);

struct cn_session {
    uint32_t magic;
    cn_worker_t *w;
    cn_config_t *cfg;
    cn_http_ds_t *ds;
    cn_arena_t *arena;
    cn_http_req_t *req;
    cn_http_resp_t resp;
    const cn_conf_route_t *route;
    uint64_t id;
    uint64_t start_ns;
    /* response body production */
    const cn_body_src_ops_t *src_ops;
    void *src;
    cn_session_body_cb on_req_body; /* who receives request body slices */
    bool resp_started;
    bool resp_eos;   /* the final slice was handed to the driver */
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
};

/** The cn_http_handler_t for client-facing listeners (ctx is the worker). */
extern const cn_http_handler_t cn_session_handler;

/** Sends @n body slices (head first on the first call); completes via the body source. */
void cn_session_send(cn_session_t *s, const cairn_iov_t *iov, size_t n, bool eos);
/** Sends a whole response whose body is in memory that lives as long as the session. */
void cn_session_respond(cn_session_t *s, unsigned status, cairn_iov_t body);
/** Generates an error response (custom page when the route has one) and logs @why once. */
void cn_session_error(cn_session_t *s, unsigned status, const char *why);
/** Aborts the client exchange (an incomplete response) and ends the session. */
void cn_session_abort(cn_session_t *s);
/** Starts pulling the request body; @cb receives each slice. */
void cn_session_read_body(cn_session_t *s, cn_session_body_cb cb);
/** Copies a string into the request arena. */
cairn_iov_t cn_session_strdup(cn_session_t *s, cairn_iov_t v);

/* route.c */
/** First route matching the request, or NULL. */
const cn_conf_route_t *cn_route_match(const cn_config_t *cfg, const cn_http_req_t *req,
                                      const char *listener);
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
