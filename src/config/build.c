/* SPDX-License-Identifier: MIT */
/* The schema of cairn's YAML file as declarative tables (server, admin, listeners, upstreams,
 * caches and the root; the routes section is in build_routes.c), the checks that span several
 * keys (files that must exist, references between sections, duplicate listeners), the helpers
 * the post hooks of both files share (build_int.h), and the entry points cn_config_load_*()
 * that turn a file into an immutable, refcounted cn_config_t. */
#include "config/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/build_int.h"
#include "config/schema.h"
#include "core/alloc.h"
#include "core/log.h"

#define CONFIG_FILE_MAX (64 * MiB)
#define QUOTE_MAX 96

_Static_assert(sizeof(cn_access_log_format_t) == sizeof(int), "enums are stored as int");

char *
cn_conf_strdup(cn_arena_t *a, const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(cn_arena_xalloc(a, n), s, n);
}

/* ---- string checks ------------------------------------------------------------------- */

const char *
cn_conf_check_text(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return "control characters and line breaks are not allowed";
    return NULL;
}

const char *
cn_conf_check_nonempty_text(const char *s)
{
    if (*s == '\0')
        return "must not be empty";
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return "spaces and control characters are not allowed";
    return NULL;
}

/* ---- helpers for post hooks ---------------------------------------------------------- */

/* Reports an error at the value of @key inside @node (or at @node when the key is absent),
 * with the key appended to the path. */
void CN_PRINTF(4, 5) cn_conf_error_at_key(cn_conf_walk_t *w, const cn_dom_node_t *node,
                                          const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const cn_dom_node_t *at = cn_dom_get(node, key);
    size_t old = cn_conf_path_push(w, key, 0);
    cn_conf_error(w, at != NULL ? at : node, "%s", msg);
    cn_conf_path_pop(w, old);
}

/* Checks that @name is the name of one of @n objects of @size bytes whose char *name is at
 * @name_off; otherwise reports it at @key of @node with a suggestion. */
bool
cn_conf_check_ref(cn_conf_walk_t *w, const cn_dom_node_t *node, const char *key, const char *what,
                  const char *name, const void *items, size_t n, size_t size, size_t name_off)
{
    char q[QUOTE_MAX];
    const char **names = cn_xmalloc((n ? n : 1) * sizeof(*names));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = *(char *const *)((const char *)items + i * size + name_off);
        if (s != NULL && strcmp(s, name) == 0) {
            cn_free(names);
            return true;
        }
        if (s != NULL)
            names[k++] = s;
    }
    const char *sug = cn_conf_suggest(name, names, k);
    cn_conf_quote(q, sizeof(q), name);
    if (sug != NULL)
        cn_conf_error_at_key(w, node, key, "undefined %s %s; did you mean \"%s\"?", what, q, sug);
    else
        cn_conf_error_at_key(w, node, key, "undefined %s %s", what, q);
    cn_free(names);
    return false;
}

void
cn_conf_unreadable(cn_conf_walk_t *w, const cn_dom_node_t *node, const char *key, const char *path,
                   const char *why)
{
    char q[QUOTE_MAX];
    cn_conf_error_at_key(w, node, key, "cannot read %s: %s", cn_conf_quote(q, sizeof(q), path),
                         why);
}

/* ---- server and admin ---------------------------------------------------------------- */

static const char *const log_level_names[] = {"error", "warn",  "notice", "info",
                                              "debug", "trace", NULL};
static const char *const access_log_formats[] = {"json", "combined", NULL};
/* In the order of cn_path_slashes_t (http/path.h). */
static const char *const escaped_slashes_modes[] = {"keep", "reject", "decode", NULL};

static const cn_conf_field_t server_fields[] = {
    CN_CONF_U32_AUTO("workers", cn_conf_server_t, workers, 1, 1024,
                     "Worker threads, each running its own event loop; auto = one per online "
                     "CPU."),
    CN_CONF_MSEC("shutdown_grace", cn_conf_server_t, shutdown_grace_ms, "30s", 0, 0,
                 "On shutdown or upgrade, how long in-flight requests may finish before their "
                 "connections are closed."),
    CN_CONF_ENUM("log_level", cn_conf_server_t, log_level, log_level_names, "info",
                 "Error log threshold."),
    CN_CONF_STR_X("error_log", cn_conf_server_t, error_log, "stderr", 0,
                  cn_conf_check_nonempty_text, NULL,
                  "Error log destination: stderr, or a file path (reopened on SIGUSR1)."),
    CN_CONF_STR_X("access_log", cn_conf_server_t, access_log, "stdout", 0,
                  cn_conf_check_nonempty_text, NULL,
                  "Access log destination: stdout, stderr, a file path, or off."),
    CN_CONF_ENUM("access_log_format", cn_conf_server_t, access_log_format, access_log_formats,
                 "json", "Access log line format."),
    CN_CONF_BOOL("daemon", cn_conf_server_t, daemon, "false",
                 "Detach from the terminal and run in the background."),
    CN_CONF_STR_X("pid_file", cn_conf_server_t, pid_file, "cairn.pid", 0,
                  cn_conf_check_nonempty_text, NULL, "File the process id is written to."),
    CN_CONF_STR_X("upgrade_socket", cn_conf_server_t, upgrade_socket, "cairn.upgrade.sock", 0,
                  cn_conf_check_nonempty_text, NULL,
                  "Unix socket through which a new cairn process takes over the listening "
                  "sockets during a zero-downtime upgrade."),
    CN_CONF_MSEC("header_timeout", cn_conf_server_t, header_timeout_ms, "10s", 1, 0,
                 "Time allowed for the whole request head to arrive (408 after it)."),
    CN_CONF_MSEC("keepalive_timeout", cn_conf_server_t, keepalive_timeout_ms, "60s", 1, 0,
                 "Idle time allowed between two requests on a client connection."),
    CN_CONF_MSEC("body_timeout", cn_conf_server_t, body_timeout_ms, "60s", 1, 0,
                 "Longest wait between two reads of a request body (408 after it)."),
    CN_CONF_MSEC("send_timeout", cn_conf_server_t, send_timeout_ms, "60s", 1, 0,
                 "Longest wait between two writes to a client."),
    CN_CONF_SIZE("max_header_size", cn_conf_server_t, max_header_size, "64KiB", 1 * KiB, 16 * MiB,
                 "Largest request head (431 above it)."),
    CN_CONF_U32("max_headers", cn_conf_server_t, max_headers, "100", 1, 10000,
                "Most header fields in one request (431 above it)."),
    CN_CONF_SIZE("max_uri_size", cn_conf_server_t, max_uri_size, "8KiB", 256, 1 * MiB,
                 "Longest request target (414 above it)."),
    CN_CONF_SIZE("max_body_size", cn_conf_server_t, max_body_size, "1GiB", 0, 0,
                 "Largest request body (413 above it); 0 = unlimited."),
    CN_CONF_SIZE("request_memory", cn_conf_server_t, request_memory, "1MiB", 16 * KiB, 1 * GiB,
                 "Memory cap of each request's arena."),
    CN_CONF_STR_X("server_header", cn_conf_server_t, server_header, "cairn", 0, cn_conf_check_text,
                  NULL, "Value of the Server response header; \"\" = no Server header."),
    CN_CONF_MSEC("tls_ticket_rotation", cn_conf_server_t, tls_ticket_rotation_ms, "12h", 1000, 0,
                 "TLS session tickets are encrypted with keys shared by every listener and "
                 "worker, replaced this often; a ticket resumes for up to two intervals."),
    CN_CONF_CIDRLIST("trusted_proxies", cn_conf_server_t, trusted_proxies, n_trusted_proxies,
                     "127.0.0.0/8, ::1/128",
                     "Client addresses (CIDR ranges) whose X-Forwarded-For and Forwarded "
                     "headers are believed; the default trusts a proxy on the same host, [] "
                     "trusts none."),
    CN_CONF_BOOL("merge_slashes", cn_conf_server_t, merge_slashes, "true",
                 "Merge repeated slashes in request paths (\"/a//b\" is routed and forwarded "
                 "as \"/a/b\")."),
    CN_CONF_ENUM("escaped_slashes", cn_conf_server_t, escaped_slashes, escaped_slashes_modes,
                 "keep",
                 "Encoded slashes (%2F) and backslashes (literal or %5C) in request paths: "
                 "keep them, reject the request (400), or decode them to \"/\"."),
    CN_CONF_END,
};

static void
server_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    cn_conf_server_t *s = obj;
    (void)w;
    (void)index;
    s->pid_file_set = cn_dom_get_key(node, "pid_file") != NULL;
    if (s->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->workers = n < 1 ? 1 : n > 1024 ? 1024 : (uint32_t)n;
    }
}

static bool
admin_tls_shown(const void *obj)
{
    return ((const cn_conf_admin_t *)obj)->tls.tls_ctx != NULL;
}

static const cn_conf_field_t admin_fields[] = {
    CN_CONF_ADDR("listen", cn_conf_admin_t, listen, "127.0.0.1:9901", CN_ADDR_LISTEN | CN_ADDR_OFF,
                 "Address of the admin API (health, metrics, config), or off."),
    CN_CONF_STR_X("token", cn_conf_admin_t, token, NULL, CN_NULLABLE, cn_conf_check_nonempty_text,
                  NULL, "Bearer token the admin API requires; null = no authentication."),
    CN_CONF_STRUCT_X("tls", cn_conf_admin_t, tls, cn_conf_listener_tls_fields,
                     cn_conf_listener_tls_post, admin_tls_shown,
                     "Serve the admin API over TLS: the keys of listeners[].tls."),
    CN_CONF_END,
};

static void
admin_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    cn_conf_admin_t *a = obj;
    (void)w;
    (void)node;
    (void)index;
    a->enabled = a->listen.sslen != 0;
}

/* ---- listeners ------------------------------------------------------------------------- */

static const cn_conf_field_t listener_fields[] = {
    CN_CONF_ADDR("listen", cn_conf_listener_t, addr, NULL, CN_REQUIRED | CN_ADDR_LISTEN,
                 "Address to accept connections on: ip:port, [ipv6]:port, localhost:port, "
                 "*:port (all IPv4 interfaces) or unix:/path."),
    CN_CONF_STR_X("name", cn_conf_listener_t, name, NULL, CN_NULLABLE, cn_conf_check_nonempty_text,
                  NULL, "Unique name, which routes can match on (match.listener)."),
    CN_CONF_GROUP("tls", cn_conf_listener_tls_fields, cn_conf_listener_tls_post,
                  cn_conf_listener_tls_shown,
                  "Serve TLS 1.2 and 1.3 on this listener (ALPN http/1.1); see docs/tls.md."),
    CN_CONF_END,
};

/* ---- upstreams and caches ------------------------------------------------------------ */

static const cn_conf_field_t peer_fields[] = {
    CN_CONF_ADDR("address", cn_conf_peer_t, addr, NULL, CN_REQUIRED,
                 "host:port, [ipv6]:port, hostname:port (resolved once at load) or unix:/path."),
    CN_CONF_U32("weight", cn_conf_peer_t, weight, "1", 1, 1000,
                "Relative share of requests sent to this peer."),
    CN_CONF_END,
};

static const cn_conf_field_t upstream_fields[] = {
    CN_CONF_LIST("peers", cn_conf_upstream_t, peers, n_peers, cn_conf_peer_t, peer_fields,
                 CN_REQUIRED | CN_NONEMPTY, NULL, "Origin servers of this upstream."),
    CN_CONF_GROUP("tls", cn_conf_upstream_tls_fields, cn_conf_upstream_tls_post,
                  cn_conf_upstream_tls_shown,
                  "Speak TLS to the peers (a mapping, {} for the defaults: verify against the "
                  "system store, SNI from the peer's host name)."),
    CN_CONF_MSEC("connect_timeout", cn_conf_upstream_t, connect_timeout_ms, "2s", 1, 0,
                 "Time allowed to establish a connection to a peer."),
    CN_CONF_MSEC("read_timeout", cn_conf_upstream_t, read_timeout_ms, "30s", 1, 0,
                 "Longest wait for data from a peer (504 when nothing was sent yet)."),
    CN_CONF_MSEC("write_timeout", cn_conf_upstream_t, write_timeout_ms, "30s", 1, 0,
                 "Longest wait between two writes to a peer."),
    CN_CONF_U32("retries", cn_conf_upstream_t, retries, "1", 0, 16,
                "Extra attempts on another peer when a connection fails before any response "
                "byte (idempotent requests only)."),
    CN_CONF_U32("max_in_flight", cn_conf_upstream_t, max_in_flight, "0", 0, 0,
                "Most concurrent origin fetches of this upstream, across workers: cache fills "
                "(leaders of cacheable misses and revalidations; hits and coalesced waiters take "
                "no slot) and, only with pass_takes_slot, passes. Others wait in a FIFO queue "
                "(queue_timeout); 0 = unlimited."),
    CN_CONF_MSEC("queue_timeout", cn_conf_upstream_t, queue_timeout_ms, "10s", 1, 0,
                 "Longest wait in the max_in_flight queue (503 after it)."),
    CN_CONF_U32("retry_after", cn_conf_upstream_t, retry_after, "1", 0, 86400,
                "Retry-After value, in seconds, of the 503 sent on a queue timeout."),
    CN_CONF_BOOL("pass_takes_slot", cn_conf_upstream_t, pass_takes_slot, "false",
                 "Whether passes count against max_in_flight: every request on a route without "
                 "a cache, and on caching routes uncacheable requests (no-store, hit-for-pass, "
                 "range bypass) and unsafe methods. false: passes are never limited."),
    CN_CONF_U32("keepalive_pool", cn_conf_upstream_t, keepalive_pool, "64", 0, 100000,
                "Idle connections kept per worker for reuse; 0 = no reuse."),
    CN_CONF_MSEC("keepalive_idle", cn_conf_upstream_t, keepalive_idle_ms, "60s", 1, 0,
                 "How long an idle pooled connection is kept."),
    CN_CONF_SIZE("buffer_size", cn_conf_upstream_t, buffer_size, "64KiB", 4 * KiB, 16 * MiB,
                 "I/O buffer per direction of a proxied exchange."),
    CN_CONF_END,
};

static const cn_conf_field_t cache_memory_fields[] = {
    CN_CONF_SIZE("size", cn_conf_cache_t, memory_size, "256MiB", 64 * KiB, 0,
                 "Memory for cached objects (headers and bodies)."),
    CN_CONF_SIZE("max_object", cn_conf_cache_t, memory_max_object, "8MiB", 1, 0,
                 "Largest object stored; larger responses are passed through uncached."),
    CN_CONF_END,
};

static const cn_conf_field_t cache_lock_fields[] = {
    CN_CONF_MSEC("wait_timeout", cn_conf_cache_t, lock_wait_timeout_ms, "10s", 0, 0,
                 "How long a request waits for a concurrent fetch of the same object before "
                 "fetching it itself."),
    CN_CONF_MSEC("age_timeout", cn_conf_cache_t, lock_age_timeout_ms, "10s", 0, 0,
                 "Age after which a pending fetch no longer holds back other requests."),
    CN_CONF_END,
};

static const char *const key_query_modes[] = {"all", "none", NULL};
static const char *const range_modes[] = {"fetch_full", "bypass", NULL};

static const cn_conf_field_t cache_key_fields[] = {
    CN_CONF_ENUM("query", cn_conf_cache_t, key_query, key_query_modes, "all",
                 "Whether the query string is part of the key: all or none."),
    CN_CONF_STRLIST("query_drop", cn_conf_cache_t, key_query_drop, n_key_query_drop, 0, NULL,
                    "Query parameters left out of the key (e.g. utm_source)."),
    CN_CONF_STRLIST("headers", cn_conf_cache_t, key_headers, n_key_headers, 0, NULL,
                    "Request headers whose values are added to the key."),
    CN_CONF_STRLIST("cookies", cn_conf_cache_t, key_cookies, n_key_cookies, 0, NULL,
                    "Cookies whose values are added to the key."),
    CN_CONF_END,
};

static const cn_conf_field_t cache_heuristic_fields[] = {
    CN_CONF_U32("percent", cn_conf_cache_t, heuristic_percent, "10", 0, 100,
                "Heuristic freshness: this share of the time since Last-Modified (0 = off)."),
    CN_CONF_MSEC("max", cn_conf_cache_t, heuristic_max_ms, "1d", 0, 0,
                 "Upper bound of a heuristic freshness lifetime."),
    CN_CONF_END,
};

static const cn_conf_field_t cache_purge_fields[] = {
    CN_CONF_BOOL("method", cn_conf_cache_t, purge_method, "false",
                 "Accept the PURGE method on routes using this cache."),
    CN_CONF_CIDRLIST("allow", cn_conf_cache_t, purge_allow, n_purge_allow, "127.0.0.0/8, ::1/128",
                     "Client addresses allowed to send PURGE (403 otherwise)."),
    CN_CONF_END,
};

static const cn_conf_field_t cache_fields[] = {
    CN_CONF_GROUP("memory", cache_memory_fields, NULL, NULL, "The in-memory tier."),
    CN_CONF_GROUP("lock", cache_lock_fields, NULL, NULL,
                  "Request collapsing: concurrent misses for one object wait for one fetch."),
    CN_CONF_GROUP("key", cache_key_fields, NULL, NULL,
                  "The cache key: scheme, host, path and (by default) query, plus these."),
    CN_CONF_ENUM("range", cn_conf_cache_t, range_mode, range_modes, "fetch_full",
                 "A Range request on a miss: fetch the whole object (and answer the range from "
                 "it), or bypass the cache."),
    CN_CONF_GROUP("heuristic", cache_heuristic_fields, NULL, NULL,
                  "Freshness of responses without explicit lifetime (RFC 9111 4.2.2)."),
    CN_CONF_STR("targeted_field", cn_conf_cache_t, targeted_field, NULL, CN_NULLABLE,
                "A cairn-targeted cache-control field (RFC 9213), e.g. Cairn-Cache-Control: "
                "it takes precedence over CDN-Cache-Control and Cache-Control."),
    CN_CONF_MSEC("hit_for_pass", cn_conf_cache_t, hit_for_pass_ms, "10s", 0, 0,
                 "How long a key whose response was not cacheable skips request collapsing."),
    CN_CONF_MSEC("stale_if_unreachable", cn_conf_cache_t, stale_if_unreachable_ms, "1h", 0, 0,
                 "Serve a stored object stale by at most this much when the origin cannot be "
                 "reached (connect failure, reset, timeout) and it allows stale use (0 = off)."),
    CN_CONF_GROUP("purge", cache_purge_fields, NULL, NULL, "Purging with the PURGE method."),
    CN_CONF_END,
};

static void
cache_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    cn_conf_cache_t *c = obj;
    const cn_dom_node_t *mem = cn_dom_get(node, "memory");
    (void)index;
    if (c->memory_max_object <= c->memory_size)
        return;
    if (cn_dom_get(mem, "max_object") == NULL) {
        /* Only the size was written: the default max_object shrinks to fit. */
        c->memory_max_object = c->memory_size;
        return;
    }
    size_t old = cn_conf_path_push(w, "memory", 0);
    cn_conf_error_at_key(w, mem, "max_object", "must not be larger than memory.size");
    cn_conf_path_pop(w, old);
}

const cn_conf_field_t cn_conf_root_fields[] = {
    CN_CONF_STRUCT("server", cn_config_t, server, server_fields, server_post,
                   "Process-wide settings."),
    CN_CONF_STRUCT("admin", cn_config_t, admin, admin_fields, admin_post,
                   "The admin API (health checks, metrics, effective configuration)."),
    CN_CONF_LIST("listeners", cn_config_t, listeners, n_listeners, cn_conf_listener_t,
                 listener_fields, CN_REQUIRED | CN_NONEMPTY, NULL,
                 "Sockets accepting client connections; at least one."),
    CN_CONF_MAP("upstreams", cn_config_t, upstreams, n_upstreams, cn_conf_upstream_t, name,
                upstream_fields, 0, NULL, "Groups of origin servers, by name."),
    CN_CONF_MAP("caches", cn_config_t, caches, n_caches, cn_conf_cache_t, name, cache_fields, 0,
                cache_post, "Caches, by name; routes refer to them with cache."),
    CN_CONF_LIST("routes", cn_config_t, routes, n_routes, cn_conf_route_t, cn_conf_route_fields, 0,
                 cn_conf_route_post,
                 "Routing rules; the first route whose match holds handles a request."),
    CN_CONF_END,
};

/* ---- checks across listeners --------------------------------------------------------- */

static bool
same_addr(const cn_conf_addr_t *a, const cn_conf_addr_t *b)
{
    return a->sslen != 0 && a->sslen == b->sslen && memcmp(&a->ss, &b->ss, a->sslen) == 0;
}

static void
duplicate(cn_conf_walk_t *w, const cn_dom_node_t *items, size_t i, size_t j, const char *key,
          const char *what, const char *text)
{
    char q[QUOTE_MAX];
    const cn_dom_node_t *prev = cn_dom_get(items->items[j], key);
    size_t old = cn_conf_path_push(w, "listeners", 0);
    cn_conf_path_push(w, NULL, i);
    cn_conf_error_at_key(w, items->items[i], key, "duplicate listener %s %s (also at line %u)",
                         what, cn_conf_quote(q, sizeof(q), text), prev != NULL ? prev->line : 0);
    cn_conf_path_pop(w, old);
}

static void
check_listeners(cn_conf_walk_t *w, const cn_dom_node_t *root)
{
    const cn_config_t *cfg = w->cfg;
    const cn_dom_node_t *items = cn_dom_get(root, "listeners");
    if (items == NULL || items->kind != CN_DOM_SEQ || items->n != cfg->n_listeners)
        return;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const cn_conf_listener_t *l = &cfg->listeners[i];
        for (size_t j = 0; j < i; j++) {
            const cn_conf_listener_t *p = &cfg->listeners[j];
            if (same_addr(&l->addr, &p->addr))
                duplicate(w, items, i, j, "listen", "address", l->addr.text);
            if (l->name != NULL && p->name != NULL && strcmp(l->name, p->name) == 0)
                duplicate(w, items, i, j, "name", "name", l->name);
        }
    }
}

/* ---- load, ref, lookups -------------------------------------------------------------- */

cairn_err_t
cn_config_load_string(const char *name, const char *text, size_t len, cn_config_t **out,
                      cn_diags_t *diags)
{
    size_t first = diags->n;
    cn_arena_t dom;
    cn_config_t *cfg = cn_xcalloc(1, sizeof(*cfg));

    if (name == NULL)
        name = "<string>";
    cfg->refcnt = 1;
    cn_arena_init(&cfg->arena, 0);
    cfg->file = cn_conf_strdup(&cfg->arena, name);
    cn_arena_init(&dom, 0);
    const cn_dom_node_t *root = cn_dom_parse(&dom, name, text, len, diags);
    if (root != NULL) {
        cn_conf_walk_t w = {.arena = &cfg->arena, .diags = diags, .file = name, .cfg = cfg};
        cn_conf_apply(&w, cn_conf_root_fields, root, cfg);
        check_listeners(&w, root);
    }
    cn_arena_fini(&dom);
    cn_diags_sort(diags, first);
    if (diags->n != first) {
        cn_config_unref(cfg);
        return CAIRN_ECONFIG;
    }
    *out = cfg;
    return CAIRN_OK;
}

cairn_err_t
cn_config_load_file(const char *path, cn_config_t **out, cn_diags_t *diags)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (f == NULL) {
        cn_diags_add(diags, path, 0, 0, "cannot read configuration file: %s", strerror(errno));
        return CAIRN_EIO;
    }
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16384;
            buf = cn_xrealloc(buf, cap);
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        len += k;
        if (k == 0 || len > CONFIG_FILE_MAX)
            break;
    }
    bool failed = ferror(f) != 0, too_big = len > CONFIG_FILE_MAX;
    int err = errno;
    fclose(f);
    if (failed || too_big) {
        cn_diags_add(diags, path, 0, 0, "cannot read configuration file: %s",
                     too_big ? "larger than 64MiB" : strerror(err));
        cn_free(buf);
        return CAIRN_EIO;
    }
    cairn_err_t rc = cn_config_load_string(path, buf, len, out, diags);
    cn_free(buf);
    return rc;
}

void
cn_config_ref(cn_config_t *c)
{
    __atomic_fetch_add(&c->refcnt, 1, __ATOMIC_RELAXED);
}

void
cn_config_unref(cn_config_t *c)
{
    if (c == NULL || __atomic_sub_fetch(&c->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    cn_arena_fini(&c->arena);
    cn_free(c);
}

cn_conf_upstream_t *
cn_config_upstream(const cn_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_upstreams; i++)
        if (c->upstreams[i].name != NULL && strcmp(c->upstreams[i].name, name) == 0)
            return &c->upstreams[i];
    return NULL;
}

cn_conf_cache_t *
cn_config_cache(const cn_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_caches; i++)
        if (c->caches[i].name != NULL && strcmp(c->caches[i].name, name) == 0)
            return &c->caches[i];
    return NULL;
}
