/* SPDX-License-Identifier: MIT */
/* Typed, immutable, refcounted configuration generations built from one YAML file.
 * Loading reports every error as a cn_diag_t with file:line:col. The structs below are
 * what the rest of cairn reads; they are never mutated after cn_config_load_*() returns. */
#ifndef CN_CONFIG_CONFIG_H
#define CN_CONFIG_CONFIG_H

#include <stdio.h>
#include <sys/socket.h>

#include "core/arena.h"
#include "core/types.h"

/* ---- diagnostics ---------------------------------------------------------------------- */

struct cn_diag {
    char *file;         /* owned by the list */
    unsigned line, col; /* 1-based; 0 when the error has no position (e.g. unreadable file) */
    char *msg;          /* owned by the list */
};

typedef struct cn_diags {
    cn_diag_t *items;
    size_t n, cap;
} cn_diags_t;

void cn_diags_add(cn_diags_t *d, const char *file, unsigned line, unsigned col, const char *fmt,
                  ...) CN_PRINTF(5, 6);
/** Prints "file:line:col: error: msg" lines, one per diagnostic. */
void cn_diags_print(const cn_diags_t *d, FILE *out);
void cn_diags_fini(cn_diags_t *d);

/* ---- typed config --------------------------------------------------------------------- */

typedef struct cn_conf_addr {
    char *text; /* as written: "127.0.0.1:8080", "[::1]:80", "unix:/run/c.sock" */
    struct sockaddr_storage ss;
    socklen_t sslen; /* family in ss.ss_family: AF_INET, AF_INET6 or AF_UNIX */
} cn_conf_addr_t;

typedef struct cn_conf_kv {
    char *name;
    char *value; /* NULL where only presence matters (match.headers, match.query) */
} cn_conf_kv_t;

typedef struct cn_conf_cidr {
    int family; /* AF_INET / AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
} cn_conf_cidr_t;

typedef struct cn_conf_header_rules {
    cn_conf_kv_t *add; /* appended, keeping existing values */
    size_t n_add;
    cn_conf_kv_t *set; /* replaces every existing value */
    size_t n_set;
    char **remove;
    size_t n_remove;
} cn_conf_header_rules_t;

typedef enum cn_access_log_format {
    CN_ACCESS_LOG_JSON = 0,
    CN_ACCESS_LOG_COMBINED,
} cn_access_log_format_t;

typedef struct cn_conf_server {
    uint32_t workers;                         /* default: number of CPUs (resolved at load) */
    uint64_t shutdown_grace_ms;               /* 30s */
    int log_level;                            /* cn_log_level_t; "info" */
    char *error_log;                          /* "stderr" */
    char *access_log;                         /* "stdout", a path, or "off" */
    cn_access_log_format_t access_log_format; /* json */
    bool daemon;                              /* false */
    char *pid_file;                           /* "cairn.pid" */
    bool pid_file_set;                        /* true when the key was written in the file */
    char *upgrade_socket;                     /* "cairn.upgrade.sock" */
    uint64_t header_timeout_ms;               /* 10s: whole request head must arrive (→ 408) */
    uint64_t keepalive_timeout_ms;            /* 60s: idle between requests */
    uint64_t body_timeout_ms; /* 60s: between two reads of a request body (→ 408) */
    uint64_t send_timeout_ms; /* 60s: between two writes to a client */
    uint64_t max_header_size; /* 64KiB (→ 431) */
    uint32_t max_headers;     /* 100 (→ 431) */
    uint64_t max_uri_size;    /* 8KiB (→ 414) */
    uint64_t max_body_size;   /* 1GiB (→ 413); 0 = unlimited */
    uint64_t request_memory;  /* 1MiB: per-request arena cap */
    char *server_header;      /* "cairn"; "" = no Server header */
    cn_conf_cidr_t *trusted_proxies;
    size_t n_trusted_proxies;
    bool merge_slashes;  /* true: "//" in a request path becomes "/" */
    int escaped_slashes; /* cn_path_slashes_t (http/path.h): 0 keep, 1 reject, 2 decode */
    uint64_t tls_ticket_rotation_ms; /* 12h */
} cn_conf_server_t;

typedef struct cn_conf_tls_cert {
    char *cert;
    char *key;
} cn_conf_tls_cert_t;

typedef struct cn_conf_listener {
    char *name; /* optional; routes may match on it (match.listener) */
    cn_conf_addr_t addr;
    char *tls_cert; /* NULL = plain (unless tls_certs) */
    char *tls_key;
    cn_conf_tls_cert_t *tls_certs; /* chosen by SNI */
    size_t n_tls_certs;
    char **tls_protocols; /* TLSv1.2, TLSv1.3 */
    size_t n_tls_protocols;
    char *tls_ciphers;
    char *tls_client_ca;
    int tls_client_verify; /* 0 required, 1 optional */
    bool tls_strict_sni;
    uint64_t tls_handshake_timeout_ms; /* 10s */
    struct cn_tls_ctx *tls_ctx;        /* built at load (net/tls.h); NULL = plain */
} cn_conf_listener_t;

typedef struct cn_conf_admin {
    bool enabled;           /* false when listen is "off" */
    cn_conf_addr_t listen;  /* 127.0.0.1:9901 */
    char *token;            /* optional bearer token; NULL = none */
    cn_conf_listener_t tls; /* admin.tls: only its tls_* fields are used */
} cn_conf_admin_t;

typedef struct cn_conf_peer {
    cn_conf_addr_t addr;
    uint32_t weight; /* 1 */
} cn_conf_peer_t;

typedef struct cn_conf_upstream {
    char *name;
    cn_conf_peer_t *peers;
    size_t n_peers;
    uint64_t connect_timeout_ms; /* 2s */
    uint64_t read_timeout_ms;    /* 30s */
    uint64_t write_timeout_ms;   /* 30s */
    uint32_t retries;            /* 1 */
    uint32_t max_in_flight;      /* 0 = unlimited */
    uint64_t queue_timeout_ms;   /* 10s */
    uint32_t retry_after;        /* 1 (seconds, the Retry-After of a queue timeout) */
    bool pass_takes_slot;        /* false */
    uint32_t keepalive_pool;     /* 64 idle connections per worker */
    uint64_t keepalive_idle_ms;  /* 60s */
    uint64_t buffer_size;        /* 64KiB per direction */
    char *tls_sni, *tls_ca, *tls_cert, *tls_key;
    bool tls_verify;            /* true */
    struct cn_tls_ctx *tls_ctx; /* built at load when `tls` is set; NULL = plain */
} cn_conf_upstream_t;

typedef struct cn_conf_cache {
    char *name;
    uint64_t memory_size;          /* 256MiB */
    uint64_t memory_max_object;    /* 8MiB */
    uint64_t lock_wait_timeout_ms; /* 10s */
    uint64_t lock_age_timeout_ms;  /* 10s */
    int key_query;                 /* 0 = the whole query in the key, 1 = none */
    char **key_query_drop;         /* parameters left out of the key */
    size_t n_key_query_drop;
    char **key_headers; /* request headers added to the key */
    size_t n_key_headers;
    char **key_cookies; /* cookie values added to the key */
    size_t n_key_cookies;
    int range_mode;              /* 0 = fetch_full, 1 = bypass */
    uint32_t heuristic_percent;  /* 10 */
    uint64_t heuristic_max_ms;   /* 1d */
    char *targeted_field;        /* e.g. "Cairn-Cache-Control"; NULL = none */
    uint64_t hit_for_pass_ms;    /* 10s */
    bool purge_method;           /* accept the PURGE method on the routes of this cache */
    cn_conf_cidr_t *purge_allow; /* who may send PURGE (default loopback) */
    size_t n_purge_allow;
    /* Most staleness served when the origin cannot be reached (1h; 0 = off). */
    uint64_t stale_if_unreachable_ms;
} cn_conf_cache_t;

typedef struct cn_conf_match {
    char *listener; /* listener name; NULL = any */
    char **hosts;   /* exact "a.example" or "*.example" (any subdomain); case-insensitive */
    size_t n_hosts;
    char **snis; /* TLS server names, patterns as for hosts; a plain connection never matches */
    size_t n_snis;
    int client_cert;    /* 0 any, 1 verified (mTLS certificate presented and verified), 2 none */
    char **client_sans; /* SAN patterns ("URI:spiffe:..." with a trailing star) */
    size_t n_client_sans;
    char *path_prefix;
    char *path;       /* exact */
    char *path_regex; /* PCRE2 */
    void *path_re;    /* compiled pcre2_code *, owned by the config */
    char **methods;
    size_t n_methods;
    cn_conf_kv_t *headers; /* value NULL = must be present */
    size_t n_headers;
    cn_conf_kv_t *query; /* value NULL = parameter present */
    size_t n_query;
} cn_conf_match_t;

typedef enum cn_route_action {
    CN_ROUTE_PROXY = 0,
    CN_ROUTE_STATIC,
    CN_ROUTE_REDIRECT,
    CN_ROUTE_FILES,
} cn_route_action_t;

typedef struct cn_conf_error_page {
    uint32_t status;
    char *body;         /* inline body, or NULL */
    char *file;         /* read at load into body */
    char *content_type; /* "text/html" for files ending .html, else "text/plain" */
} cn_conf_error_page_t;

typedef struct cn_conf_route {
    unsigned line; /* position of the route in the file, for logs */
    char *name;    /* optional; default "route<N>" (0-based index); used in metrics */
    cn_conf_match_t match;
    cn_route_action_t action;
    char *upstream_name;
    cn_conf_upstream_t *upstream; /* resolved */
    char *cache_name;
    cn_conf_cache_t *cache; /* resolved; NULL = no cache */
    bool strip_prefix;      /* remove match.path_prefix before forwarding */
    char *rewrite_prefix;   /* replace match.path_prefix with this */
    char *host_header;      /* rewrite Host towards the upstream */
    struct {                /* mTLS identity forwarded upstream (header names; NULL = not sent) */
        char *subject, *san, *fingerprint, *serial;
    } client_cert_headers;
    cn_conf_header_rules_t request_headers;
    cn_conf_header_rules_t response_headers;
    struct {
        uint32_t status; /* 200 */
        cn_conf_kv_t *headers;
        size_t n_headers;
        char *body; /* "" */
    } static_;
    struct {
        char *to;
        uint32_t status; /* 301; one of 301 302 303 307 308 */
        bool keep_path;  /* append the request path after the matched prefix; false */
    } redirect;
    struct {
        char *root;  /* must exist and be a directory (checked at load) */
        char *index; /* "index.html" */
    } files;
    cn_conf_error_page_t *error_pages;
    size_t n_error_pages;
} cn_conf_route_t;

struct cn_config {
    int refcnt;       /* atomic */
    cn_arena_t arena; /* every string and array above lives here */
    char *file;       /* "<embedded>" for the built-in default */
    cn_conf_server_t server;
    cn_conf_admin_t admin;
    cn_conf_listener_t *listeners;
    size_t n_listeners;
    cn_conf_upstream_t *upstreams;
    size_t n_upstreams;
    cn_conf_cache_t *caches;
    size_t n_caches;
    cn_conf_route_t *routes;
    size_t n_routes;
};

/** Loads and validates @path. On success *@out holds a config with refcount 1 and
 *  CAIRN_OK is returned; otherwise CAIRN_ECONFIG (or CAIRN_EIO) with every error in @diags. */
cairn_err_t cn_config_load_file(const char *path, cn_config_t **out, cn_diags_t *diags);
/** Same from memory; @name is used as the file name in diagnostics. */
cairn_err_t cn_config_load_string(const char *name, const char *text, size_t len, cn_config_t **out,
                                  cn_diags_t *diags);
/** The YAML text of the embedded default configuration (a static string). */
const char *cn_config_embedded_default(void);
void cn_config_ref(cn_config_t *c);
/** Drops a reference; the last one frees. NULL is a no-op. Any thread. */
void cn_config_unref(cn_config_t *c);
/** Writes the effective configuration (every key, defaults filled in) as YAML. */
void cn_config_dump(const cn_config_t *c, FILE *out);
/** Writes docs/config.md (generated from the schema tables) to @out. */
void cn_config_write_docs(FILE *out);
/** Looks up an upstream/cache by name; NULL when absent. */
cn_conf_upstream_t *cn_config_upstream(const cn_config_t *c, const char *name);
cn_conf_cache_t *cn_config_cache(const cn_config_t *c, const char *name);

#endif
