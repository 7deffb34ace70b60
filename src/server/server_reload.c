/* SPDX-License-Identifier: MIT */
/* Configuration reload (SIGHUP, admin): loads a new generation, reconciles the listeners
 * (open addresses keep their sockets, new ones are bound, gone ones closed by the workers),
 * creates the caches it names and hands it to every worker in one cn_reload_t. Settings read
 * only at start are kept, with a warning. Main thread. */
#include "server/server_int.h"

#include "net/tls.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "engine/cached.h"

/* ---- reload ---------------------------------------------------------------------------- */

void
cn_reload_free(cn_reload_t *r)
{
    if (r == NULL)
        return;
    cn_free(r->old_view);
    cn_free(r->add);
    cn_free(r->add_owner);
    cn_free(r->remove);
    cn_free(r->keep);
    cn_free(r);
}

static size_t
find_listener(const cn_server_t *srv, const cn_conf_addr_t *a, const bool *taken)
{
    for (size_t j = 0; j < srv->n_listeners; j++)
        if (!taken[j] && cn_srv_addr_equal((const struct sockaddr *)&srv->listeners[j].addr.ss,
                                           (const struct sockaddr *)&a->ss))
            return j;
    return srv->n_listeners;
}

/* Fills @r from the new table @tab (entries with ids from @first_new are new) and makes @tab
 * the server's; old entries not @taken are removed. */
static void
commit_listeners(cn_server_t *srv, cn_srv_listener_t *tab, size_t n, const bool *taken,
                 uint64_t first_new, cn_reload_t *r)
{
    r->add = cn_xcalloc(r->n_add + 1, sizeof(*r->add));
    r->add_owner = cn_xcalloc(r->n_add + 1, sizeof(*r->add_owner));
    r->keep = cn_xcalloc(n + 1, sizeof(*r->keep));
    size_t a = 0;
    for (size_t i = 0; i < n; i++) {
        cn_srv_listener_t *l = &tab[i];
        if (l->id < first_new) {
            r->keep[r->n_keep++] = (cn_worker_listen_t){.id = l->id, .fd = -1, .name = l->name};
            continue;
        }
        CN_LOG_NOTICE(0, "listening on %s", l->addr.text);
        for (size_t k = 0; k < l->n_fds; k++, a++) {
            r->add[a] = (cn_worker_listen_t){.id = l->id,
                                             .fd = l->fds[k],
                                             .is_unix = l->is_unix,
                                             .name = l->name,
                                             .ss = l->addr.ss,
                                             .sslen = l->addr.sslen};
            r->add_owner[a] = l->owner[k];
        }
    }
    r->remove = cn_xcalloc(srv->n_listeners + 1, sizeof(*r->remove));
    for (size_t j = 0; j < srv->n_listeners; j++) {
        if (taken[j])
            continue;
        CN_LOG_NOTICE(0, "no longer listening on %s (its connections stay)",
                      srv->listeners[j].addr.text);
        r->remove[r->n_remove++] = srv->listeners[j].id;
        cn_srv_listener_fini(&srv->listeners[j]);
    }
    cn_free(srv->listeners);
    srv->listeners = tab;
    srv->n_listeners = n;
}

/* Makes srv->listeners those of @cfg and records the changes in @r. Addresses already open keep
 * their sockets (never closed and rebound, so no connection is refused); new ones are bound
 * here, on the main thread; the others are closed by the workers. On failure nothing changed
 * and @err says why. */
static cairn_err_t
reload_listeners(cn_server_t *srv, const cn_config_t *cfg, cn_reload_t *r, char *err, size_t errlen)
{
    size_t n = cfg->n_listeners;
    uint64_t first_new = srv->next_listener_id + 1;
    cn_srv_listener_t *tab = cn_xcalloc(n ? n : 1, sizeof(*tab));
    bool *taken = cn_xcalloc(srv->n_listeners + 1, sizeof(*taken));
    cairn_err_t e = CAIRN_OK;
    for (size_t i = 0; i < n && e == CAIRN_OK; i++) {
        const cn_conf_listener_t *cl = &cfg->listeners[i];
        size_t j = find_listener(srv, &cl->addr, taken);
        if (j < srv->n_listeners) {
            taken[j] = true;
            tab[i] = srv->listeners[j];
            tab[i].name = cn_srv_intern_name(srv, cl->name);
            continue;
        }
        cn_srv_listener_init(srv, &tab[i], cl);
        e = cn_srv_listener_bind(srv, &tab[i], 0, err, errlen);
        r->n_add += tab[i].n_fds;
    }
    if (e != CAIRN_OK) {
        for (size_t i = 0; i < n; i++) {
            if (tab[i].id >= first_new) {
                cn_srv_listener_close_fds(&tab[i]);
                cn_srv_listener_fini(&tab[i]);
            }
        }
        r->n_add = 0;
        cn_free(tab);
        cn_free(taken);
        return e;
    }
    commit_listeners(srv, tab, n, taken, first_new, r);
    cn_free(taken);
    return CAIRN_OK;
}

static void
warn_restart(const char *key, const char *old, const char *new)
{
    CN_LOG_WARN(0, "reload: %s changed (%s -> %s); it takes effect after a restart", key, old, new);
}

static const char *
str_or(const char *s, const char *dflt)
{
    return s != NULL ? s : dflt;
}

/* Settings read once at start; a reload keeps the running values. */
static void
warn_restart_only(const cn_server_t *srv, const cn_config_t *cfg)
{
    const cn_conf_server_t *o = &srv->cfg->server, *n = &cfg->server;
    char a[32], b[32];
    if (n->workers != srv->n_workers) {
        snprintf(a, sizeof(a), "%u", srv->n_workers);
        snprintf(b, sizeof(b), "%u", n->workers);
        warn_restart("server.workers", a, b);
    }
    if (strcmp(o->error_log, n->error_log) != 0)
        warn_restart("server.error_log", o->error_log, n->error_log);
    if (strcmp(o->access_log, n->access_log) != 0)
        warn_restart("server.access_log", o->access_log, n->access_log);
    if (o->access_log_format != n->access_log_format)
        warn_restart("server.access_log_format", o->access_log_format ? "combined" : "json",
                     n->access_log_format ? "combined" : "json");
    if (o->log_level != n->log_level)
        warn_restart("server.log_level", cn_log_level_name((cn_log_level_t)o->log_level),
                     cn_log_level_name((cn_log_level_t)n->log_level));
    if (strcmp(o->pid_file, n->pid_file) != 0)
        warn_restart("server.pid_file", o->pid_file, n->pid_file);
    const char *oa = srv->cfg->admin.enabled ? srv->cfg->admin.listen.text : "off";
    const char *na = cfg->admin.enabled ? cfg->admin.listen.text : "off";
    if (strcmp(str_or(oa, "?"), str_or(na, "?")) != 0)
        warn_restart("admin.listen", oa, na);
    for (size_t i = 0; i < cfg->n_caches; i++) {
        const cn_conf_cache_t *nc = &cfg->caches[i];
        const cn_conf_cache_t *oc = cn_config_cache(srv->cfg, nc->name);
        if (oc == NULL ||
            (oc->memory_size == nc->memory_size && oc->memory_max_object == nc->memory_max_object))
            continue;
        CN_LOG_WARN(0,
                    "reload: caches.%s: memory sizes take effect after a restart (the cache "
                    "and its objects are kept)",
                    nc->name);
    }
}

static void
log_diags(const cn_diags_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        const cn_diag_t *it = &d->items[i];
        if (it->line == 0)
            CN_LOG_ERROR(0, "%s: error: %s", it->file, it->msg);
        else
            CN_LOG_ERROR(0, "%s:%u:%u: error: %s", it->file, it->line, it->col, it->msg);
    }
}

static cairn_err_t
reload(cn_server_t *srv, char *err, size_t errlen)
{
    if (srv->workers == NULL || srv->stopping) {
        snprintf(err, errlen, "the server is %s", srv->stopping ? "shutting down" : "not running");
        return CAIRN_EINVAL;
    }
    const char *path = srv->cfg->file;
    if (path == NULL || strcmp(path, "<embedded>") == 0) {
        snprintf(err, errlen, "the embedded configuration has no file to reload");
        return CAIRN_EINVAL;
    }
    cn_config_t *cfg = NULL;
    cn_diags_t diags = {0};
    if (cn_config_load_file(path, &cfg, &diags) != CAIRN_OK) {
        log_diags(&diags);
        const cn_diag_t *d = diags.n > 0 ? &diags.items[0] : NULL;
        snprintf(err, errlen, "%s has %zu error%s; first: %s:%u:%u: %s", path, diags.n,
                 diags.n == 1 ? "" : "s", d ? d->file : path, d ? d->line : 0, d ? d->col : 0,
                 d ? d->msg : "?");
        cn_diags_fini(&diags);
        return CAIRN_ECONFIG;
    }
    cn_diags_fini(&diags);
    cn_reload_t *r = cn_xcalloc(1, sizeof(*r));
    if (reload_listeners(srv, cfg, r, err, errlen) != CAIRN_OK) {
        cn_reload_free(r);
        cn_config_unref(cfg);
        return CAIRN_EADDRINUSE;
    }
    warn_restart_only(srv, cfg);
    /* The caches exist before any worker sees a generation that names them. */
    cn_srv_create_missing_caches(srv, cfg);
    r->old_view = cn_srv_publish_caches(srv);
    r->cfg = cfg;
    atomic_init(&r->pending, srv->n_workers);
    for (unsigned w = 0; w < srv->n_workers; w++)
        cn_config_ref(cfg);
    cn_config_unref(srv->retired_cfg);
    srv->retired_cfg = srv->cfg;
    srv->cfg = cfg;
    srv->generation++;
    for (unsigned w = 0; w < srv->n_workers; w++)
        cn_worker_reload(&srv->workers[w], r);
    uv_async_send(&srv->wake);
    CN_LOG_NOTICE(0, "configuration reloaded (generation %" PRIu64 ")", srv->generation);
    cn_srv_warn_tls_expiry(cfg);
    cn_tls_tickets_configure(cfg->server.tls_ticket_rotation_ms);
    return CAIRN_OK;
}

int
cn_server_reload(cn_server_t *srv, char *err, size_t errlen)
{
    char msg[1024];
    if (reload(srv, msg, sizeof(msg)) == CAIRN_OK) {
        srv->reloads_ok++;
        return 0;
    }
    srv->reloads_failed++;
    CN_LOG_ERROR(0, "reload failed: %s; generation %" PRIu64 " keeps running", msg,
                 srv->generation);
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
    return -1;
}
