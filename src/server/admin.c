/* SPDX-License-Identifier: MIT */
/* Admin endpoints on the main thread: /healthz, /readyz, /metrics (Prometheus text), /config
 * (the running configuration, secrets redacted), /upstreams (JSON), POST /config/reload,
 * /cache/stats (JSON) and POST /cache/purge.
 * Each exchange is answered at once from memory owned by the exchange (its request arena and
 * one output buffer freed with it). When admin.token is set, every endpoint but /healthz
 * wants "Authorization: Bearer <token>". */
#include "server/admin.h"

#include <sys/resource.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cache/cache.h"
#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/str.h"
#include "core/time.h"
#include "metrics/metrics.h"
#include "net/tls.h"
#include "engine/cached.h"
#include "cache/fill.h"
#include "upstream/limiter.h"
#include "server/server_int.h"

struct admin_exchange {
    cn_arena_t *arena;
    cn_http_resp_t resp;
    cn_buf_t out;  /* a generated body (metrics, config, JSON) */
    cn_buf_t body; /* the request body of endpoints that read one (at most ADMIN_BODY_MAX) */
    const struct endpoint *ep;
    cn_server_t *srv;
    cn_http_ds_t *ds;
};

#define ADMIN_BODY_MAX 65536

static void
admin_free(struct admin_exchange *x)
{
    cn_buf_fini(&x->body);
    cn_arena_t *arena = x->arena;
    cn_buf_fini(&x->out);
    cn_arena_fini(arena);
    cn_free(arena);
}

static void
reply(struct admin_exchange *x, cn_http_ds_t *ds, unsigned status, const char *ctype,
      cairn_iov_t body)
{
    x->resp.status = status;
    x->resp.content_length = (int64_t)body.len;
    cn_headers_add(&x->resp.headers, CAIRN_IOV_LIT("Content-Type"), cn_iov_cstr(ctype));
    cn_headers_add(&x->resp.headers, CAIRN_IOV_LIT("Cache-Control"), CAIRN_IOV_LIT("no-store"));
    ds->ops->send(ds, &x->resp, &body, 1, true);
}

static void
reply_text(struct admin_exchange *x, cn_http_ds_t *ds, unsigned status, const char *text)
{
    reply(x, ds, status, "text/plain; charset=utf-8", cn_iov_cstr(text));
}

static void
reply_out(struct admin_exchange *x, cn_http_ds_t *ds, unsigned status, const char *ctype)
{
    reply(x, ds, status, ctype, cn_iov(cn_buf_start(&x->out), x->out.len));
}

/* Serialises @j (reference taken) into the exchange's buffer and replies with it. */
static void
reply_json(struct admin_exchange *x, cn_http_ds_t *ds, unsigned status, json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (text == NULL) {
        reply_text(x, ds, 500, "500 Internal Server Error\n");
        return;
    }
    cn_buf_append(&x->out, text, strlen(text));
    cn_buf_append(&x->out, "\n", 1);
    free(text);
    reply_out(x, ds, status, "application/json");
}

/* ---- authorisation ----------------------------------------------------------------------- */

/* Compares in time that depends on the length of @want only. */
static bool
token_equal(cairn_iov_t got, const char *want)
{
    size_t n = strlen(want);
    unsigned char diff = got.len != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)((i < got.len ? (unsigned char)got.base[i] : 0) ^
                                (unsigned char)want[i]);
    return diff == 0;
}

/* RFC 6750 §2.1: "Bearer" (case-insensitive), one or more spaces, the token. */
static bool
authorized(const cn_server_t *srv, const cn_http_req_t *req)
{
    const char *token = srv->cfg->admin.token;
    if (token == NULL || token[0] == '\0')
        return true;
    const cairn_iov_t *v = cn_headers_get(&req->headers, CAIRN_IOV_LIT("authorization"));
    if (v == NULL)
        return false;
    cairn_iov_t a = cn_iov_trim(*v);
    static const char scheme[] = "bearer";
    size_t k = sizeof(scheme) - 1;
    if (a.len <= k || !cn_iov_ieq_cstr(cn_iov(a.base, k), scheme) ||
        (a.base[k] != ' ' && a.base[k] != '\t'))
        return false;
    return token_equal(cn_iov_trim(cn_iov(a.base + k, a.len - k)), token);
}

/* ---- /healthz, /readyz --------------------------------------------------------------------- */

static void
ep_healthz(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds)
{
    (void)srv;
    reply_text(x, ds, 200, "ok\n");
}

static void
ep_readyz(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds)
{
    if (cn_server_is_draining(srv))
        reply_text(x, ds, 503, "draining\n");
    else
        reply_text(x, ds, 200, "ready\n");
}

/* ---- /metrics ------------------------------------------------------------------------------ */

static uint64_t
process_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return (uint64_t)rss * (uint64_t)(page > 0 ? page : 4096);
}

static uint64_t
process_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    uint64_t n = 0;
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

static void
set_process(cn_metrics_t *m, const cn_server_t *srv)
{
    uint64_t now = cn_time_now_ns(), up = now - srv->started_ns;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wall = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    cn_metrics_set(m, CN_M_BUILD_INFO, 0, 0, 1);
    cn_metrics_set(m, CN_M_WORKERS, 0, 0, srv->n_workers);
    cn_metrics_set(m, CN_M_PROCESS_START_TIME, 0, 0, wall - up);
    cn_metrics_set(m, CN_M_UPTIME, 0, 0, up);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        uint64_t us = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
                      (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
        cn_metrics_set(m, CN_M_PROCESS_CPU, 0, 0, us * 1000u);
    }
    cn_metrics_set(m, CN_M_PROCESS_RSS, 0, 0, process_rss());
    cn_metrics_set(m, CN_M_PROCESS_OPEN_FDS, 0, 0, process_open_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        cn_metrics_set(m, CN_M_PROCESS_MAX_FDS, 0, 0, (uint64_t)rl.rlim_cur);
    cn_metrics_set(m, CN_M_CONFIG_GENERATION, 0, 0, srv->generation ? srv->generation : 1);
    cn_metrics_set(m, CN_M_CONFIG_RELOADS, 0, CN_METRICS_RELOAD_OK, srv->reloads_ok);
    cn_metrics_set(m, CN_M_CONFIG_RELOADS, 0, CN_METRICS_RELOAD_ERROR, srv->reloads_failed);
}

/* The certificates of the running configuration's TLS listeners. */
static void
set_tls(cn_metrics_t *m, const cn_server_t *srv)
{
    const cn_config_t *cfg = srv->cfg;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const cn_conf_listener_t *l = &cfg->listeners[i];
        if (l->tls_ctx == NULL)
            continue;
        uint32_t slot = cn_metrics_intern(m, CN_ML_LISTENER, l->name ? l->name : "-");
        int64_t ns = cn_tls_ctx_expiry(l->tls_ctx) * 1000000000;
        cn_metrics_set(m, CN_M_TLS_CERT_EXPIRY, slot, 0, (uint64_t)ns);
    }
}

/* The memory tier of every cache the server opened (caches live until exit, also when a
 * reload dropped them from the configuration). */
static void
set_caches(cn_metrics_t *m, const cn_server_t *srv)
{
    for (size_t i = 0; i < srv->n_caches; i++) {
        cn_cache_stats_t st;
        cn_cache_stats(srv->caches[i], &st);
        uint32_t slot = cn_metrics_intern(m, CN_ML_CACHE, cn_cache_name(srv->caches[i]));
        size_t tier = CN_METRICS_TIER_MEMORY;
        size_t nl = cn_metrics_combos(CN_M_CACHE_LOOKUPS) / (CN_METRICS_TIER_MEMORY + 1);
        cn_metrics_set(m, CN_M_CACHE_LOOKUPS, slot, tier * nl + CN_METRICS_LOOKUP_HIT, st.hits);
        cn_metrics_set(m, CN_M_CACHE_LOOKUPS, slot, tier * nl + CN_METRICS_LOOKUP_MISS, st.misses);
        cn_metrics_set(m, CN_M_CACHE_OBJECTS, slot, tier, st.objects);
        cn_metrics_set(m, CN_M_CACHE_BYTES, slot, tier, st.bytes);
        cn_metrics_set(m, CN_M_CACHE_INSERTS, slot, tier, st.inserts);
        cn_metrics_set(m, CN_M_CACHE_EVICTIONS, slot, tier, st.evictions);
        cn_metrics_set(m, CN_M_CACHE_REMOVALS, slot, tier, st.removals);
    }
}

/* The origin limiter of every configured upstream (shared by the workers). */
static bool
limiter_stats(cn_server_t *srv, const char *upstream, cn_limiter_stats_t *st)
{
    if (srv->limiters == NULL)
        return false;
    cn_limiter_stats(cn_limiter_of(srv->limiters, upstream), st);
    return true;
}

static void
set_origin(cn_metrics_t *m, cn_server_t *srv)
{
    const cn_config_t *cfg = srv->cfg;
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        cn_limiter_stats_t st;
        if (!limiter_stats(srv, cfg->upstreams[i].name, &st))
            continue;
        uint32_t slot = cn_metrics_intern(m, CN_ML_UPSTREAM, cfg->upstreams[i].name);
        cn_metrics_set(m, CN_M_ORIGIN_IN_FLIGHT, slot, 0, st.in_flight);
        cn_metrics_set(m, CN_M_ORIGIN_QUEUED, slot, 0, st.queued);
    }
}

/* Client connections of every worker; the counts are the workers' own, read without a lock
 * (a scrape may see one a moment old). */
static void
set_connections(cn_metrics_t *m, const cn_server_t *srv)
{
    uint64_t conns = 0, active = 0;
    for (unsigned i = 0; srv->workers != NULL && i < srv->n_workers; i++) {
        const cn_worker_t *w = &srv->workers[i];
        if (w->srv == NULL)
            continue;
        size_t c = __atomic_load_n(&w->h1.n_conns, __ATOMIC_RELAXED);
        size_t a = __atomic_load_n(&w->h1.n_active, __ATOMIC_RELAXED);
        conns += c;
        active += a < c ? a : c;
    }
    cn_metrics_set(m, CN_M_CONNECTIONS, 0, CN_METRICS_CONN_ACTIVE, active);
    cn_metrics_set(m, CN_M_CONNECTIONS, 0, CN_METRICS_CONN_IDLE, conns - active);
}

/* Every worker's counters summed, the running config's names declared (so their series exist
 * at zero). Free with cn_metrics_free. */
static cn_metrics_t *
collect(const cn_server_t *srv)
{
    const cn_config_t *cfg = srv->cfg;
    cn_metrics_t *m = cn_metrics_new();
    for (size_t i = 0; i < cfg->n_routes; i++)
        cn_metrics_declare(m, CN_ML_ROUTE, cfg->routes[i].name ? cfg->routes[i].name : "-");
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        cn_metrics_declare(m, CN_ML_UPSTREAM, cfg->upstreams[i].name);
    for (size_t i = 0; i < cfg->n_caches; i++)
        cn_metrics_declare(m, CN_ML_CACHE, cfg->caches[i].name);
    for (unsigned i = 0; srv->workers != NULL && i < srv->n_workers; i++)
        if (srv->workers[i].metrics != NULL)
            cn_metrics_merge(m, srv->workers[i].metrics);
    return m;
}

static void
ep_metrics(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds)
{
    cn_metrics_t *m = collect(srv);
    set_tls(m, srv);
    set_caches(m, srv);
    set_origin(m, srv);
    set_connections(m, srv);
    set_process(m, srv);
    cn_metrics_render(m, &x->out);
    cn_metrics_free(m);
    reply_out(x, ds, 200, "text/plain; version=0.0.4; charset=utf-8");
}

/* ---- /config --------------------------------------------------------------------------------- */

static const char redacted[] = "<redacted>";

/* A key whose value is a credential, by name: a backstop for keys added after the structural
 * redaction below was written. @parent is the enclosing mapping's key ("" at the top). */
static bool
secret_key(const char *key, size_t n, const char *parent)
{
    static const char *const exact[] = {"token",   "password",    "passwd",   "secret",
                                        "tls_key", "private_key", "key_file", "client_key"};
    static const char *const suffix[] = {"_token", "_password", "_secret", "_key_file"};
    for (size_t i = 0; i < CN_ARRAY_LEN(exact); i++)
        if (n == strlen(exact[i]) && memcmp(key, exact[i], n) == 0)
            return true;
    for (size_t i = 0; i < CN_ARRAY_LEN(suffix); i++) {
        size_t k = strlen(suffix[i]);
        if (n > k && memcmp(key + n - k, suffix[i], k) == 0)
            return true;
    }
    return n == 3 && memcmp(key, "key", 3) == 0 && strcmp(parent, "tls") == 0;
}

/* One line of block-style YAML: "  key: value" or "  - key: value". */
struct yaml_line {
    int indent;      /* spaces before the text */
    const char *key; /* NULL when the line holds no "key:" */
    size_t key_len;
    int key_col;       /* column of the key (after any "- ") */
    const char *value; /* after ": ", up to the end of the line */
    size_t value_len;
};

static void
yaml_line(const char *p, const char *eol, struct yaml_line *l)
{
    const char *q = p;
    memset(l, 0, sizeof(*l));
    while (q < eol && *q == ' ')
        q++;
    l->indent = (int)(q - p);
    if (q + 1 < eol && q[0] == '-' && q[1] == ' ')
        q += 2;
    const char *k = q;
    while (q < eol && (isalnum((unsigned char)*q) || *q == '_' || *q == '-'))
        q++;
    if (q == k || q >= eol || *q != ':' || (q + 1 < eol && q[1] != ' '))
        return;
    l->key = k;
    l->key_len = (size_t)(q - k);
    l->key_col = (int)(k - p);
    for (q++; q < eol && *q == ' '; q++)
        ;
    l->value = q;
    l->value_len = (size_t)(eol - q);
}

/* Rewrites the YAML that cn_config_dump() wrote (block style, one key per line) into @out,
 * replacing the value of every secret key. The contents of block scalars are copied
 * untouched, or dropped when their key is secret. */
static void
redact_yaml(const char *text, size_t len, cn_buf_t *out)
{
    char parents[8][32] = {{0}}; /* keys of the enclosing mappings, with their columns */
    int parent_col[8] = {0};
    int depth = 0, block_col = -1;
    bool block_secret = false;
    for (const char *p = text, *end = text + len, *next; p < end; p = next) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        eol = eol ? eol : end;
        next = eol < end ? eol + 1 : end;
        struct yaml_line l;
        yaml_line(p, eol, &l);
        bool blank = l.indent == eol - p;
        if (block_col >= 0 && (blank || l.indent > block_col)) {
            if (!block_secret)
                cn_buf_append(out, p, (size_t)(next - p));
            continue;
        }
        block_col = -1;
        if (l.key == NULL) {
            cn_buf_append(out, p, (size_t)(next - p));
            continue;
        }
        while (depth > 0 && parent_col[depth - 1] >= l.key_col)
            depth--;
        bool secret = secret_key(l.key, l.key_len, depth > 0 ? parents[depth - 1] : "");
        bool has_value = l.value_len > 0 && !(l.value_len == 4 && !memcmp(l.value, "null", 4));
        if (l.value_len == 0 && depth < 8) {
            snprintf(parents[depth], sizeof(parents[0]), "%.*s", (int)l.key_len, l.key);
            parent_col[depth++] = l.key_col;
        }
        if (has_value && (l.value[0] == '|' || l.value[0] == '>')) {
            block_col = l.key_col;
            block_secret = secret;
        }
        if (!secret || !has_value) {
            cn_buf_append(out, p, (size_t)(next - p));
            continue;
        }
        cn_buf_append(out, p, (size_t)(l.value - p));
        cn_buf_append(out, "\"", 1);
        cn_buf_append(out, redacted, sizeof(redacted) - 1);
        cn_buf_append(out, "\"\n", 2);
    }
}

static void
ep_config(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds)
{
    /* A shallow copy with the known secrets replaced, so they never reach the text. */
    cn_config_t copy = *srv->cfg;
    if (copy.admin.token != NULL)
        copy.admin.token = (char *)redacted;
    cn_conf_listener_t *ls = cn_arena_xalloc(x->arena, (copy.n_listeners + 1) * sizeof(*ls));
    for (size_t i = 0; i < copy.n_listeners; i++) {
        ls[i] = copy.listeners[i];
        if (ls[i].tls_key != NULL)
            ls[i].tls_key = (char *)redacted;
    }
    copy.listeners = ls;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        reply_text(x, ds, 500, "500 Internal Server Error\n");
        return;
    }
    cn_config_dump(&copy, f);
    fclose(f);
    redact_yaml(text, len, &x->out);
    free(text);
    reply_out(x, ds, 200, "application/yaml; charset=utf-8");
}

/* ---- /upstreams -------------------------------------------------------------------------------
 */

static json_t *
upstream_json(cn_server_t *srv, const cn_conf_upstream_t *up, const cn_metrics_t *m)
{
    json_t *peers = json_array();
    for (size_t i = 0; i < up->n_peers; i++)
        json_array_append_new(peers, json_pack("{s:s, s:I}", "address", up->peers[i].addr.text,
                                               "weight", (json_int_t)up->peers[i].weight));
    uint32_t slot = 0;
    bool known = cn_metrics_find(m, CN_ML_UPSTREAM, up->name, &slot);
    json_t *responses = json_object();
    json_int_t total = 0, errors = 0;
    size_t nc = cn_metrics_combos(CN_M_UPSTREAM_REQUESTS);
    for (size_t c = 0; known && c < nc; c++) {
        uint64_t v = cn_metrics_get(m, CN_M_UPSTREAM_REQUESTS, slot, c);
        total += (json_int_t)v;
        if (v > 0)
            json_object_set_new(responses, cn_metrics_label_value(CN_ML_CODE, c),
                                json_integer((json_int_t)v));
    }
    json_t *errs = json_object();
    for (size_t k = 0; k < cn_metrics_combos(CN_M_UPSTREAM_ERRORS); k++) {
        uint64_t v = known ? cn_metrics_get(m, CN_M_UPSTREAM_ERRORS, slot, k) : 0;
        errors += (json_int_t)v;
        json_object_set_new(errs, cn_metrics_label_value(CN_ML_ERROR_KIND, k),
                            json_integer((json_int_t)v));
    }
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(up->name));
    json_object_set_new(j, "peers", peers);
    json_object_set_new(j, "connect_timeout_ms", json_integer((json_int_t)up->connect_timeout_ms));
    json_object_set_new(j, "read_timeout_ms", json_integer((json_int_t)up->read_timeout_ms));
    json_object_set_new(j, "retries", json_integer((json_int_t)up->retries));
    json_object_set_new(j, "max_in_flight", json_integer((json_int_t)up->max_in_flight));
    json_object_set_new(j, "queue_timeout_ms", json_integer((json_int_t)up->queue_timeout_ms));
    json_object_set_new(j, "keepalive_pool", json_integer((json_int_t)up->keepalive_pool));
    cn_limiter_stats_t ls;
    memset(&ls, 0, sizeof(ls));
    limiter_stats(srv, up->name, &ls);
    json_object_set_new(j, "fetches_in_flight", json_integer((json_int_t)ls.in_flight));
    json_object_set_new(j, "fetches_queued", json_integer((json_int_t)ls.queued));
    /* The population of cairn_origin_fetch_queue_wait_seconds, plus the slots taken at once. */
    json_object_set_new(j, "queue",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "immediate",
                                  (json_int_t)ls.immediate, "admitted", (json_int_t)ls.admitted,
                                  "timeout", (json_int_t)ls.timeouts, "gone",
                                  (json_int_t)ls.canceled, "wait_ms_total",
                                  (json_int_t)(ls.wait_ns_total / 1000000u)));
    json_object_set_new(j, "requests", json_integer(total));
    json_object_set_new(j, "responses", responses);
    json_object_set_new(j, "errors_total", json_integer(errors));
    json_object_set_new(j, "errors", errs);
    return j;
}

static void
ep_upstreams(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds)
{
    const cn_config_t *cfg = srv->cfg;
    cn_metrics_t *m = collect(srv);
    json_t *list = json_array();
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        json_array_append_new(list, upstream_json(srv, &cfg->upstreams[i], m));
    cn_metrics_free(m);
    json_t *j = json_object();
    json_object_set_new(j, "generation",
                        json_integer((json_int_t)(srv->generation ? srv->generation : 1)));
    json_object_set_new(j, "upstreams", list);
    reply_json(x, ds, 200, j);
}

/* ---- POST /config/reload -----------------------------------------------------------------------
 */

static void
ep_reload(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds)
{
    char err[1024] = "";
    int r = cn_server_reload(srv, err, sizeof(err));
    json_t *j = json_object();
    json_object_set_new(j, "status", json_string(r == 0 ? "ok" : "error"));
    json_object_set_new(j, "generation", json_integer((json_int_t)srv->generation));
    if (r != 0)
        json_object_set_new(j, "error", json_string(err[0] ? err : "reload failed"));
    reply_json(x, ds, r == 0 ? 200 : 500, j);
}

/* ---- /cache/purge and /cache/stats ------------------------------------------------------ */

static void
ep_cache_purge(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds)
{
    json_error_t jerr;
    json_t *in = json_loadb(cn_buf_start(&x->body), x->body.len, 0, &jerr);
    const char *url = NULL, *prefix = NULL, *tag = NULL, *cache = NULL;
    int soft = 0;
    if (in == NULL ||
        json_unpack_ex(in, &jerr, 0, "{s?s, s?s, s?s, s?b, s?s}", "url", &url, "prefix", &prefix,
                       "tag", &tag, "soft", &soft, "cache", &cache) != 0 ||
        (url != NULL) + (prefix != NULL) + (tag != NULL) != 1) {
        json_decref(in);
        reply_text(x, ds, 400,
                   "400 Bad Request: expected {\"url\"|\"prefix\"|\"tag\": \"...\", "
                   "\"soft\": bool}\n");
        return;
    }
    cn_cache_purge_kind_t kind = url ? CN_PURGE_URL : prefix ? CN_PURGE_PREFIX : CN_PURGE_TAG;
    const char *arg = tag;
    size_t n = 0;
    for (size_t i = 0; i < srv->n_caches; i++) {
        const char *name = cn_cache_name(srv->caches[i]);
        const cn_conf_cache_t *conf = cn_config_cache(srv->cfg, name);
        if ((cache != NULL && strcmp(cache, name) != 0) || conf == NULL)
            continue;
        /* URLs and prefixes go through this cache's key template (query rules). */
        if (tag == NULL)
            arg = cn_cached_url_key_text(x->arena, conf, url ? url : prefix);
        n += cn_cache_purge(srv->caches[i], kind, arg, soft != 0);
    }
    CN_LOG_NOTICE(0, "admin purge %s %s%s: %zu object(s)",
                  kind == CN_PURGE_URL      ? "url"
                  : kind == CN_PURGE_PREFIX ? "prefix"
                                            : "tag",
                  arg != NULL ? arg : (url ? url : prefix), soft ? " (soft)" : "", n);
    json_decref(in); /* @arg may point into it */
    reply_json(x, ds, 200, json_pack("{s:I}", "purged", (json_int_t)n));
}

static void
ep_cache_stats(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds)
{
    json_t *caches = json_object();
    for (size_t i = 0; i < srv->n_caches; i++) {
        cn_cache_stats_t st;
        cn_cache_stats(srv->caches[i], &st);
        json_t *mem =
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "objects", (json_int_t)st.objects,
                      "bytes", (json_int_t)st.bytes, "hits", (json_int_t)st.hits, "misses",
                      (json_int_t)st.misses, "inserts", (json_int_t)st.inserts, "evictions",
                      (json_int_t)st.evictions, "removals", (json_int_t)st.removals);
        json_object_set_new(caches, cn_cache_name(srv->caches[i]),
                            json_pack("{s:{s:o}}", "tiers", "memory", mem));
    }
    reply_json(x, ds, 200, json_pack("{s:o}", "caches", caches));
}

/* ---- dispatch ----------------------------------------------------------------------------------
 */

typedef void (*endpoint_fn)(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds);

static const struct endpoint {
    const char *path;
    bool post;   /* POST only; otherwise GET and HEAD */
    bool public; /* answered without the admin token */
    endpoint_fn fn;
    bool body; /* reads the request body first */
} endpoints[] = {
    {"/healthz", false, true, ep_healthz, false},
    {"/readyz", false, false, ep_readyz, false},
    {"/metrics", false, false, ep_metrics, false},
    {"/config", false, false, ep_config, false},
    {"/upstreams", false, false, ep_upstreams, false},
    {"/config/reload", true, false, ep_reload, false},
    {"/cache/stats", false, false, ep_cache_stats, false},
    {"/cache/purge", true, false, ep_cache_purge, true},
};

static const struct endpoint *
find_endpoint(cairn_iov_t path)
{
    for (size_t i = 0; i < CN_ARRAY_LEN(endpoints); i++)
        if (cn_iov_eq(path, cn_iov_cstr(endpoints[i].path)))
            return &endpoints[i];
    return NULL;
}

static void
dispatch(cn_server_t *srv, struct admin_exchange *x, cn_http_ds_t *ds, const cn_http_req_t *req)
{
    const struct endpoint *ep = find_endpoint(req->path);
    /* Without the token, nothing tells which paths exist. */
    if ((ep == NULL || !ep->public) && !authorized(srv, req)) {
        cn_headers_add(&x->resp.headers, CAIRN_IOV_LIT("WWW-Authenticate"),
                       CAIRN_IOV_LIT("Bearer realm=\"cairn admin\""));
        reply_text(x, ds, 401, "401 Unauthorized\n");
        return;
    }
    if (ep == NULL) {
        reply_text(x, ds, 404, "404 Not Found\n");
        return;
    }
    bool ok = ep->post ? req->method_id == CN_METHOD_POST
                       : req->method_id == CN_METHOD_GET || req->method_id == CN_METHOD_HEAD;
    if (!ok) {
        cn_headers_add(&x->resp.headers, CAIRN_IOV_LIT("Allow"),
                       ep->post ? CAIRN_IOV_LIT("POST") : CAIRN_IOV_LIT("GET, HEAD"));
        reply_text(x, ds, 405, "405 Method Not Allowed\n");
        return;
    }
    if (ep->body) {
        /* The endpoint runs once the whole body arrived (admin_body). */
        x->ep = ep;
        x->srv = srv;
        x->ds = ds;
        ds->ops->read_body(ds);
        return;
    }
    ep->fn(srv, x, ds);
}

static void *
admin_request(void *ctx, cn_http_ds_t *ds, cn_http_req_t *req, cn_arena_t *arena)
{
    cn_server_t *srv = ctx;
    struct admin_exchange *x = cn_arena_xalloc(arena, sizeof(*x));
    memset(x, 0, sizeof(*x));
    x->arena = arena;
    cn_headers_init(&x->resp.headers, arena);
    ds->session = x;
    if (req->error_status != 0) {
        reply(x, ds, req->error_status, "text/plain; charset=utf-8",
              cn_status_body(arena, req->error_status));
        return x;
    }
    dispatch(srv, x, ds, req);
    return x;
}

static void
admin_sent(void *session, cairn_err_t status)
{
    (void)status;
    admin_free(session);
}

static void
admin_body(void *session, cairn_iov_t data, bool eos, cairn_err_t status)
{
    struct admin_exchange *x = session;
    if (x->ep == NULL)
        return;
    if (status != CAIRN_OK || x->body.len + data.len > ADMIN_BODY_MAX) {
        x->ep = NULL;
        reply_text(x, x->ds, status == CAIRN_ETIMEDOUT ? 408 : 413,
                   status == CAIRN_ETIMEDOUT ? "408 Request Timeout\n" : "413 Content Too Large\n");
        return;
    }
    cn_buf_append(&x->body, data.base, data.len);
    if (!eos) {
        x->ds->ops->read_body(x->ds);
        return;
    }
    const struct endpoint *ep = x->ep;
    x->ep = NULL;
    ep->fn(x->srv, x, x->ds);
}

static void
admin_gone(void *session)
{
    admin_free(session);
}

const cn_http_handler_t cn_admin_handler = {
    .on_request = admin_request,
    .on_sent = admin_sent,
    .on_body = admin_body,
    .on_gone = admin_gone,
};
