/* SPDX-License-Identifier: MIT */
/* Server lifecycle on the main thread: bind every listener before any thread starts (so a
 * failure leaves nothing half-started), start workers, handle signals, reload the
 * configuration (a new generation handed to every worker), hand the listening sockets to a
 * new process (graceful upgrade), drain and stop. */
#include "proxy/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin/admin.h"
#include "core/alloc.h"
#include "core/fmem.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/time.h"
#include "net/net.h"
#include "proxy/accesslog.h"
#include "proxy/cached.h"
#include "proxy/fill.h"
#include "proxy/session.h"

cn_server_t *
cn_server_new(cn_config_t *cfg, const cn_server_opts_t *opts)
{
    cn_server_t *srv = cn_xcalloc(1, sizeof(*srv));
    srv->cfg = cfg;
    cn_config_ref(cfg);
    srv->opts = *opts;
    srv->upgrade_conn = -1;
    return srv;
}

void
cn_server_use(cn_server_t *srv, const cairn_hooks_t *hooks, void *udata)
{
    srv->hooks = cn_xrealloc(srv->hooks, (srv->n_hooks + 1) * sizeof(*srv->hooks));
    srv->hooks[srv->n_hooks].hooks = hooks;
    srv->hooks[srv->n_hooks].udata = udata;
    srv->n_hooks++;
}

/* Workers call this at request start; the main thread may replace the view meanwhile. */
cn_cache_t *
cn_server_cache(cn_server_t *srv, const char *name)
{
    const cn_cache_view_t *v = atomic_load_explicit(&srv->cache_view, memory_order_acquire);
    for (size_t i = 0; v != NULL && i < v->n; i++)
        if (strcmp(cn_cache_name(v->items[i]), name) == 0)
            return v->items[i];
    return NULL;
}

/* Publishes srv->caches to the workers; returns the view it replaces. */
static cn_cache_view_t *
publish_caches(cn_server_t *srv)
{
    cn_cache_view_t *v = cn_xmalloc(sizeof(*v) + (srv->n_caches + 1) * sizeof(v->items[0]));
    v->n = srv->n_caches;
    for (size_t i = 0; i < srv->n_caches; i++)
        v->items[i] = srv->caches[i];
    return atomic_exchange_explicit(&srv->cache_view, v, memory_order_acq_rel);
}

static cn_cache_t *
find_cache(const cn_server_t *srv, const char *name)
{
    for (size_t i = 0; i < srv->n_caches; i++)
        if (strcmp(cn_cache_name(srv->caches[i]), name) == 0)
            return srv->caches[i];
    return NULL;
}

static void
create_missing_caches(cn_server_t *srv, const cn_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_caches; i++) {
        const cn_conf_cache_t *cc = &cfg->caches[i];
        if (find_cache(srv, cc->name) != NULL)
            continue;
        srv->caches = cn_xrealloc(srv->caches, (srv->n_caches + 1) * sizeof(*srv->caches));
        srv->caches[srv->n_caches++] =
            cn_cache_new(cc->name, cc->memory_size, cc->memory_max_object);
    }
}

cn_fill_table_t *
cn_server_fills(cn_server_t *srv)
{
    return srv->fills;
}

static void
open_caches(cn_server_t *srv)
{
    /* Address space (not memory) for the large body segments: room for every configured
     * cache four times over (fills in flight, evicted objects still being sent), at least
     * 8 GiB. Caches added by a reload that do not fit fall back to malloc. */
    uint64_t total = 0;
    for (size_t i = 0; i < srv->cfg->n_caches; i++)
        total += srv->cfg->caches[i].memory_size;
    if (total > 0)
        cn_fmem_init((size_t)CN_MIN(CN_MAX(total * 4, (uint64_t)8 << 30), (uint64_t)1 << 40));
    srv->fills = cn_fill_table_new();
    create_missing_caches(srv, srv->cfg);
    cn_free(publish_caches(srv));
}

static void
close_caches(cn_server_t *srv)
{
    cn_free(atomic_exchange(&srv->cache_view, NULL));
    for (size_t i = 0; i < srv->n_caches; i++)
        cn_cache_free(srv->caches[i]);
    cn_free(srv->caches);
    srv->caches = NULL;
    srv->n_caches = 0;
    cn_fill_table_free(srv->fills);
    srv->fills = NULL;
    cn_fmem_fini();
}

const cn_hook_reg_t *
cn_server_hooks(const cn_server_t *srv, size_t *n)
{
    *n = srv->n_hooks;
    return srv->hooks;
}

void
cn_server_free(cn_server_t *srv)
{
    if (srv == NULL)
        return;
    cn_free(srv->hooks);
    for (size_t i = 0; i < srv->n_listeners; i++) {
        cn_free(srv->listeners[i].addr.text);
        cn_free(srv->listeners[i].fds);
        cn_free(srv->listeners[i].owner);
    }
    cn_free(srv->listeners);
    for (size_t i = 0; i < srv->n_names; i++)
        cn_free(srv->names[i]);
    cn_free(srv->names);
    cn_config_unref(srv->retired_cfg);
    cn_config_unref(srv->cfg);
    cn_free(srv->pid_file);
    cn_free(srv);
}

bool
cn_server_is_draining(const cn_server_t *srv)
{
    return srv->stopping;
}

/* A daemon keeps no terminal or pipe of its launcher: once it serves, stdio goes to
 * /dev/null (so logs meant for a daemon belong in files). */
static void
detach_stdio(void)
{
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0)
        return;
    dup2(nul, 0);
    dup2(nul, 1);
    dup2(nul, 2);
    close(nul);
}

static void
report_ready(cn_server_t *srv, const char *msg)
{
    if (srv->opts.ready_fd < 0)
        return;
    size_t len = strlen(msg);
    ssize_t w = write(srv->opts.ready_fd, msg, len);
    (void)w;
    if (msg[0] == 'O')
        detach_stdio();
    close(srv->opts.ready_fd);
    srv->opts.ready_fd = -1;
}

static void
fail_start(cn_server_t *srv, const char *msg)
{
    CN_LOG_ERROR(0, "%s", msg);
    char line[1100];
    snprintf(line, sizeof(line), "ERR %s\n", msg);
    report_ready(srv, line);
    if (srv->upgrade_conn >= 0) {
        /* The old instance keeps serving. */
        cn_upgrade_answer(srv->upgrade_conn, false, msg);
        srv->upgrade_conn = -1;
    }
}

/* ---- listening sockets ----------------------------------------------------------------- */

static bool
addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    if (a->sa_family == AF_UNIX) {
        const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
        return strncmp(x->sun_path, y->sun_path, sizeof(x->sun_path)) == 0;
    }
    return false;
}

/* Connections keep a pointer to their listener's name for life, longer than any generation:
 * names are copied once and freed at exit. */
static const char *
intern_name(cn_server_t *srv, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < srv->n_names; i++)
        if (strcmp(srv->names[i], name) == 0)
            return srv->names[i];
    srv->names = cn_xrealloc(srv->names, (srv->n_names + 1) * sizeof(*srv->names));
    srv->names[srv->n_names] = cn_xstrdup(name);
    return srv->names[srv->n_names++];
}

static void
listener_init(cn_server_t *srv, cn_srv_listener_t *l, const cn_conf_listener_t *cl)
{
    memset(l, 0, sizeof(*l));
    l->id = ++srv->next_listener_id;
    l->addr = cl->addr;
    l->addr.text = cn_xstrdup(cl->addr.text);
    l->name = intern_name(srv, cl->name);
    l->is_unix = cl->addr.ss.ss_family == AF_UNIX;
}

/* Frees the table entry; the sockets are the workers' (or already closed). */
static void
listener_fini(cn_srv_listener_t *l)
{
    cn_free(l->addr.text);
    cn_free(l->fds);
    cn_free(l->owner);
    memset(l, 0, sizeof(*l));
}

static void
listener_close_fds(cn_srv_listener_t *l)
{
    for (size_t k = 0; k < l->n_fds; k++)
        close(l->fds[k]);
    l->n_fds = 0;
}

static void
listener_add_fd(cn_srv_listener_t *l, int fd, unsigned owner)
{
    l->fds = cn_xrealloc(l->fds, (l->n_fds + 1) * sizeof(*l->fds));
    l->owner = cn_xrealloc(l->owner, (l->n_fds + 1) * sizeof(*l->owner));
    l->fds[l->n_fds] = fd;
    l->owner[l->n_fds++] = owner;
}

/* Gives workers @from.. a socket each: a new SO_REUSEPORT socket, or for a unix listener a
 * dup of its one socket. */
static cairn_err_t
listener_bind(cn_server_t *srv, cn_srv_listener_t *l, unsigned from, char *err, size_t errlen)
{
    for (unsigned w = from; w < srv->n_workers; w++) {
        int fd;
        if (l->is_unix && l->n_fds > 0) {
            fd = fcntl(l->fds[0], F_DUPFD_CLOEXEC, 0);
            if (fd < 0) {
                snprintf(err, errlen, "listen %s: %s", l->addr.text, strerror(errno));
                return CAIRN_EIO;
            }
        } else {
            fd = cn_listen_socket((const struct sockaddr *)&l->addr.ss, l->addr.sslen, 511, err,
                                  errlen);
            if (fd < 0)
                return CAIRN_EADDRINUSE;
        }
        listener_add_fd(l, fd, w);
    }
    return CAIRN_OK;
}

/* True when @fd is a listening socket bound to @ss. */
static bool
fd_listens_on(int fd, const struct sockaddr_storage *ss)
{
    struct sockaddr_storage got;
    socklen_t len = sizeof(got);
    int acc = 0;
    socklen_t alen = sizeof(acc);
    memset(&got, 0, sizeof(got));
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) != 0 || !acc)
        return false;
    if (getsockname(fd, (struct sockaddr *)&got, &len) != 0)
        return false;
    return addr_equal((const struct sockaddr *)&got, (const struct sockaddr *)ss);
}

/* Takes the inherited sockets bound to @l's address (upgrade), spread over the workers; a
 * worker may get several when the old instance had more workers, so none is closed with
 * connections waiting in its queue. */
static void
listener_inherit(cn_server_t *srv, cn_srv_listener_t *l, cn_upgrade_fd_t *inh, size_t n_inh)
{
    size_t k = 0;
    for (size_t i = 0; i < n_inh; i++) {
        if (inh[i].fd < 0 || inh[i].kind != 'L' || !fd_listens_on(inh[i].fd, &l->addr.ss))
            continue;
        int fd = inh[i].fd;
        inh[i].fd = -1;
        if (l->is_unix && l->n_fds > 0) {
            close(fd); /* the old instance's dups of the same socket */
            continue;
        }
        listener_add_fd(l, fd, (unsigned)(k++ % srv->n_workers));
    }
    if (l->n_fds > 0)
        CN_LOG_NOTICE(0, "upgrade: %s: %zu inherited socket%s", l->addr.text, l->n_fds,
                      l->n_fds == 1 ? "" : "s");
}

static void
close_all_listener_fds(cn_server_t *srv)
{
    for (size_t i = 0; i < srv->n_listeners; i++)
        listener_close_fds(&srv->listeners[i]);
}

/* ---- stopping -------------------------------------------------------------------------- */

static void handover_end(cn_server_t *srv);

static void
on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void
close_main_handles(cn_server_t *srv)
{
    if (srv->upgrade != NULL)
        handover_end(srv);
    for (size_t i = 0; i < srv->n_signals; i++)
        uv_close((uv_handle_t *)&srv->signals[i], on_handle_closed);
    srv->n_signals = 0;
    uv_close((uv_handle_t *)&srv->grace_timer, on_handle_closed);
    uv_close((uv_handle_t *)&srv->wake, on_handle_closed);
    if (srv->admin_open) {
        srv->admin_open = false;
        uv_close((uv_handle_t *)&srv->admin, on_handle_closed);
        cn_h1_server_close_all(&srv->admin_h1);
    }
}

static void
on_grace_expired(uv_timer_t *t)
{
    cn_server_t *srv = t->data;
    CN_LOG_WARN(0, "shutdown grace period expired: closing the remaining connections");
    srv->fast = true;
    for (unsigned i = 0; i < srv->n_workers; i++)
        cn_worker_drain(&srv->workers[i], false, false);
}

static void
begin_stop(cn_server_t *srv, bool graceful)
{
    if (srv->stopping && (graceful || srv->fast))
        return;
    if (!srv->stopping) {
        CN_LOG_NOTICE(0, "%s shutdown requested", graceful ? "graceful" : "fast");
        /* A graceful stop keeps the admin listener through the drain, so a load balancer's
         * or Kubernetes' probe of /readyz gets "503 draining" (and /metrics still scrapes)
         * until the process exits. After an upgrade hand-over the new process accepts on
         * the same socket: this one stops accepting at once. */
        if (srv->admin_open && graceful && srv->handed_over) {
            srv->admin_open = false;
            uv_close((uv_handle_t *)&srv->admin, on_handle_closed);
            cn_h1_server_drain(&srv->admin_h1);
        }
    }
    srv->stopping = true;
    srv->fast = !graceful;
    for (unsigned i = 0; i < srv->n_workers && srv->workers != NULL; i++)
        cn_worker_drain(&srv->workers[i], graceful, srv->handed_over);
    if (graceful)
        uv_timer_start(&srv->grace_timer, on_grace_expired, srv->cfg->server.shutdown_grace_ms, 0);
}

static void
on_wake(uv_async_t *a)
{
    cn_server_t *srv = a->data;
    /* A reload's caller (an admin request) has returned by now: the old generation may go
     * (the workers and in-flight sessions hold their own references). */
    cn_config_unref(srv->retired_cfg);
    srv->retired_cfg = NULL;
    int req = atomic_exchange(&srv->stop_request, 0);
    if (req != 0)
        begin_stop(srv, req == 1);
    if (atomic_load(&srv->workers_running) == 0)
        close_main_handles(srv);
}

void
cn_server_worker_exited(cn_server_t *srv, cn_worker_t *w)
{
    (void)w;
    atomic_fetch_sub(&srv->workers_running, 1);
    uv_async_send(&srv->wake);
}

void
cn_server_stop(cn_server_t *srv, bool graceful)
{
    int want = graceful ? 1 : 2;
    int cur = atomic_load(&srv->stop_request);
    if (cur < want)
        atomic_store(&srv->stop_request, want);
    uv_async_send(&srv->wake);
}

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
        if (!taken[j] && addr_equal((const struct sockaddr *)&srv->listeners[j].addr.ss,
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
            r->add[a] = (cn_worker_listen_t){
                .id = l->id, .fd = l->fds[k], .is_unix = l->is_unix, .name = l->name};
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
        listener_fini(&srv->listeners[j]);
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
            tab[i].name = intern_name(srv, cl->name);
            continue;
        }
        listener_init(srv, &tab[i], cl);
        e = listener_bind(srv, &tab[i], 0, err, errlen);
        r->n_add += tab[i].n_fds;
    }
    if (e != CAIRN_OK) {
        for (size_t i = 0; i < n; i++) {
            if (tab[i].id >= first_new) {
                listener_close_fds(&tab[i]);
                listener_fini(&tab[i]);
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
    create_missing_caches(srv, cfg);
    r->old_view = publish_caches(srv);
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

/* ---- upgrade, old side: hand the listening sockets to `cairn -u` ----------------------- */

#define CN_UPGRADE_ANSWER_TIMEOUT_MS 30000

struct cn_upgrade_out {
    cn_server_t *srv;
    int fd;
    pid_t peer;
    uv_poll_t poll;
    uv_timer_t timer;
    int open_handles;
};

static void
handover_freed(uv_handle_t *h)
{
    struct cn_upgrade_out *u = h->data;
    if (--u->open_handles == 0)
        cn_free(u);
}

static void
handover_end(cn_server_t *srv)
{
    struct cn_upgrade_out *u = srv->upgrade;
    srv->upgrade = NULL;
    uv_poll_stop(&u->poll);
    close(u->fd);
    uv_close((uv_handle_t *)&u->poll, handover_freed);
    uv_close((uv_handle_t *)&u->timer, handover_freed);
}

static void
on_handover_timeout(uv_timer_t *t)
{
    struct cn_upgrade_out *u = t->data;
    CN_LOG_ERROR(0, "upgrade: pid %ld did not answer within %d s; still serving", (long)u->peer,
                 CN_UPGRADE_ANSWER_TIMEOUT_MS / 1000);
    handover_end(u->srv);
}

static void
on_handover_answer(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct cn_upgrade_out *u = p->data;
    cn_server_t *srv = u->srv;
    pid_t peer = u->peer;
    char msg[600];
    int r = -1;
    if (status < 0)
        snprintf(msg, sizeof(msg), "%s", uv_strerror(status));
    else
        r = cn_upgrade_read_answer(u->fd, msg, sizeof(msg));
    if (r == 0)
        return;
    handover_end(srv);
    if (r < 0) {
        CN_LOG_ERROR(0, "upgrade: the new process (pid %ld) did not take over: %s; still serving",
                     (long)peer, msg);
        return;
    }
    CN_LOG_NOTICE(0, "upgrade: pid %ld serves on our sockets; draining", (long)peer);
    srv->handed_over = true;
    begin_stop(srv, true);
}

/* The old process keeps serving until the new one says it serves: a new process that fails
 * (bad config, cannot bind an added listener) changes nothing. */
static void
start_handover(cn_server_t *srv)
{
    if (srv->stopping || srv->workers == NULL || srv->upgrade != NULL) {
        CN_LOG_WARN(0, "upgrade: ignored (%s)",
                    srv->upgrade != NULL ? "a hand-over is in progress" : "shutting down");
        return;
    }
    size_t n = 1;
    for (size_t i = 0; i < srv->n_listeners; i++)
        n += srv->listeners[i].n_fds;
    cn_upgrade_fd_t *fds = cn_xcalloc(n, sizeof(*fds));
    n = 0;
    for (size_t i = 0; i < srv->n_listeners; i++)
        for (size_t k = 0; k < srv->listeners[i].n_fds; k++)
            fds[n++] = (cn_upgrade_fd_t){.fd = srv->listeners[i].fds[k], .kind = 'L'};
    uv_os_fd_t afd;
    if (srv->admin_open && uv_fileno((uv_handle_t *)&srv->admin, &afd) == 0)
        fds[n++] = (cn_upgrade_fd_t){.fd = afd, .kind = 'A'};
    const char *path = srv->cfg->server.upgrade_socket;
    char err[600];
    pid_t peer = 0;
    int fd = cn_upgrade_send(path, fds, n, &peer, err, sizeof(err));
    cn_free(fds);
    if (fd < 0) {
        CN_LOG_ERROR(0, "upgrade: %s; still serving (start `cairn -u` first)", err);
        return;
    }
    CN_LOG_NOTICE(0, "upgrade: sent %zu listening sockets to pid %ld over %s", n, (long)peer, path);
    struct cn_upgrade_out *u = cn_xcalloc(1, sizeof(*u));
    u->srv = srv;
    u->fd = fd;
    u->peer = peer;
    u->open_handles = 2;
    if (uv_poll_init(&srv->loop, &u->poll, fd) != 0) {
        CN_LOG_ERROR(0, "upgrade: cannot wait for the answer; still serving");
        close(fd);
        cn_free(u);
        return;
    }
    uv_timer_init(&srv->loop, &u->timer);
    u->poll.data = u;
    u->timer.data = u;
    srv->upgrade = u;
    uv_poll_start(&u->poll, UV_READABLE | UV_DISCONNECT, on_handover_answer);
    uv_timer_start(&u->timer, on_handover_timeout, CN_UPGRADE_ANSWER_TIMEOUT_MS, 0);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    cn_server_t *srv = h->data;
    switch (signum) {
    case SIGTERM:
        CN_LOG_NOTICE(0, "SIGTERM received: graceful shutdown");
        begin_stop(srv, true);
        break;
    case SIGINT:
        CN_LOG_NOTICE(0, "SIGINT received: fast shutdown");
        begin_stop(srv, false);
        break;
    case SIGUSR1:
        CN_LOG_NOTICE(0, "SIGUSR1 received: reopening log files");
        /* Each result is logged after the reopen, so it lands in the new file. */
        if (cn_log_reopen() != CAIRN_OK)
            CN_LOG_ERROR(0, "reopening the error log failed; still writing to the old file");
        else
            CN_LOG_NOTICE(0, "error log reopened");
        if (cn_accesslog_reopen() != CAIRN_OK)
            CN_LOG_ERROR(0, "reopening the access log failed; still writing to the old file");
        else
            CN_LOG_NOTICE(0, "access log reopened");
        break;
    case SIGHUP:
        CN_LOG_NOTICE(0, "SIGHUP received: reloading %s", srv->cfg->file);
        cn_server_reload(srv, NULL, 0);
        break;
    case SIGQUIT:
        CN_LOG_NOTICE(0, "SIGQUIT received: handing the listening sockets over (upgrade)");
        start_handover(srv);
        break;
    default:
        break;
    }
}

static void
start_signals(cn_server_t *srv)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP, SIGQUIT};
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        uv_signal_t *h = &srv->signals[srv->n_signals++];
        uv_signal_init(&srv->loop, h);
        h->data = srv;
        uv_signal_start(h, on_signal, sigs[i]);
    }
}

/* ---- starting -------------------------------------------------------------------------- */

static cairn_err_t
write_pid_file(cn_server_t *srv)
{
    const cn_conf_server_t *sc = &srv->cfg->server;
    if (!(srv->opts.daemon || sc->daemon || sc->pid_file_set))
        return CAIRN_OK;
    FILE *f = fopen(sc->pid_file, "w");
    if (f == NULL) {
        char msg[512];
        snprintf(msg, sizeof(msg), "cannot write pid file %s: %s", sc->pid_file, strerror(errno));
        fail_start(srv, msg);
        return CAIRN_EIO;
    }
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    srv->pid_file = cn_xstrdup(sc->pid_file);
    return CAIRN_OK;
}

/* After an upgrade the file names the new process: leave it. */
static void
remove_pid_file(cn_server_t *srv)
{
    FILE *f = fopen(srv->pid_file, "r");
    if (f == NULL)
        return;
    long pid = 0;
    bool ours = fscanf(f, "%ld", &pid) != 1 || pid == (long)getpid();
    fclose(f);
    if (ours)
        unlink(srv->pid_file);
}

static void
on_admin_connection(uv_stream_t *server, int status)
{
    cn_server_t *srv = server->data;
    /* Also while a graceful stop drains: probes learn "503 draining" from /readyz. */
    if (status != 0 || !srv->admin_open)
        return;
    cn_h1_server_accept(&srv->admin_h1, server, false, "admin");
}

static uint64_t
admin_conn_id(void)
{
    return cn_next_id();
}

/* @inh: sockets inherited from an upgraded instance; the admin one is taken when its address
 * is still admin.listen. */
static cairn_err_t
start_admin(cn_server_t *srv, cn_upgrade_fd_t *inh, size_t n_inh)
{
    const cn_conf_admin_t *ac = &srv->cfg->admin;
    if (!ac->enabled)
        return CAIRN_OK;
    char err[512];
    int fd = -1;
    for (size_t i = 0; i < n_inh && fd < 0; i++) {
        if (inh[i].fd >= 0 && inh[i].kind == 'A' && fd_listens_on(inh[i].fd, &ac->listen.ss)) {
            fd = inh[i].fd;
            inh[i].fd = -1;
        }
    }
    if (fd < 0)
        fd = cn_listen_socket((const struct sockaddr *)&ac->listen.ss, ac->listen.sslen, 128, err,
                              sizeof(err));
    if (fd < 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "admin %s", err);
        fail_start(srv, msg);
        return CAIRN_EADDRINUSE;
    }
    memset(&srv->admin_set, 0, sizeof(srv->admin_set));
    srv->admin_set.limits.max_head = 16384;
    srv->admin_set.limits.max_headers = 100;
    srv->admin_set.limits.max_target = 4096;
    srv->admin_set.header_timeout_ms = 10000;
    srv->admin_set.keepalive_timeout_ms = 10000;
    srv->admin_set.body_timeout_ms = 10000;
    srv->admin_set.send_timeout_ms = 10000;
    srv->admin_set.max_body_size = 1 << 20;
    srv->admin_set.request_memory = 1 << 22;
    srv->admin_set.server_header = "cairn";
    cn_h1_server_init(&srv->admin_h1, &srv->loop, &srv->admin_set, &cn_admin_handler, srv);
    srv->admin_h1.next_id = admin_conn_id;
    uv_tcp_init(&srv->loop, &srv->admin);
    srv->admin.data = srv;
    uv_tcp_open(&srv->admin, fd);
    if (uv_listen((uv_stream_t *)&srv->admin, 128, on_admin_connection) != 0) {
        fail_start(srv, "admin: listen failed");
        return CAIRN_EIO;
    }
    srv->admin_open = true;
    return CAIRN_OK;
}

/* Builds srv->listeners: every listener gets a socket per worker, bound here before any
 * thread starts, or taken from @inh (an upgrade). */
static cairn_err_t
bind_listeners(cn_server_t *srv, cn_upgrade_fd_t *inh, size_t n_inh)
{
    const cn_config_t *cfg = srv->cfg;
    srv->listeners = cn_xcalloc(cfg->n_listeners + 1, sizeof(*srv->listeners));
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        cn_srv_listener_t *l = &srv->listeners[srv->n_listeners++];
        listener_init(srv, l, &cfg->listeners[i]);
        listener_inherit(srv, l, inh, n_inh);
        unsigned from = l->n_fds < srv->n_workers ? (unsigned)l->n_fds : srv->n_workers;
        char err[512];
        if (listener_bind(srv, l, from, err, sizeof(err)) != CAIRN_OK) {
            fail_start(srv, err);
            return CAIRN_EADDRINUSE;
        }
    }
    return CAIRN_OK;
}

static void
close_inherited(cn_upgrade_fd_t *inh, size_t n_inh, bool log)
{
    for (size_t i = 0; i < n_inh; i++) {
        if (inh[i].fd < 0)
            continue;
        if (log) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            char name[256] = "?";
            memset(&ss, 0, sizeof(ss));
            if (getsockname(inh[i].fd, (struct sockaddr *)&ss, &len) == 0)
                cn_addr_format((const struct sockaddr *)&ss, name, sizeof(name));
            CN_LOG_NOTICE(0, "upgrade: %s is not in the configuration: its socket is closed here",
                          name);
        }
        close(inh[i].fd);
        inh[i].fd = -1;
    }
}

static cairn_err_t
start_workers(cn_server_t *srv)
{
    size_t total = 0;
    for (size_t i = 0; i < srv->n_listeners; i++)
        total += srv->listeners[i].n_fds;
    cn_worker_listen_t *ls = cn_xcalloc(total + 1, sizeof(*ls));
    srv->workers = cn_xcalloc(srv->n_workers, sizeof(cn_worker_t));
    cairn_err_t err = CAIRN_OK;
    for (unsigned w = 0; w < srv->n_workers; w++) {
        size_t n = 0;
        for (size_t i = 0; i < srv->n_listeners; i++) {
            const cn_srv_listener_t *l = &srv->listeners[i];
            for (size_t k = 0; k < l->n_fds; k++)
                if (l->owner[k] == w)
                    ls[n++] = (cn_worker_listen_t){
                        .id = l->id, .fd = l->fds[k], .is_unix = l->is_unix, .name = l->name};
        }
        if (err != CAIRN_OK) {
            for (size_t k = 0; k < n; k++)
                close(ls[k].fd);
            continue;
        }
        atomic_fetch_add(&srv->workers_running, 1);
        err = cn_worker_start(&srv->workers[w], srv, w, srv->cfg, ls, n);
        if (err != CAIRN_OK)
            atomic_fetch_sub(&srv->workers_running, 1);
    }
    cn_free(ls);
    return err;
}

#define CN_UPGRADE_WAIT_MS 30000

/* `cairn -u`: waits for the running instance to send its sockets (it does on SIGQUIT). */
static cairn_err_t
receive_sockets(cn_server_t *srv, cn_upgrade_fd_t **inh, size_t *n_inh)
{
    const char *path = srv->cfg->server.upgrade_socket;
    CN_LOG_NOTICE(0,
                  "upgrade: waiting up to %d s on %s for the running instance's sockets (send it "
                  "SIGQUIT)",
                  CN_UPGRADE_WAIT_MS / 1000, path);
    char err[512];
    pid_t peer = 0;
    int conn = cn_upgrade_receive(path, CN_UPGRADE_WAIT_MS, inh, n_inh, &peer, err, sizeof(err));
    if (conn < 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "upgrade: %s", err);
        fail_start(srv, msg);
        return CAIRN_EIO;
    }
    srv->upgrade_conn = conn;
    CN_LOG_NOTICE(0, "upgrade: received %zu listening sockets from pid %ld", *n_inh, (long)peer);
    return CAIRN_OK;
}

static void
log_started(cn_server_t *srv)
{
    const cn_config_t *cfg = srv->cfg;
    for (size_t i = 0; i < cfg->n_listeners; i++)
        CN_LOG_NOTICE(0, "listening on %s", cfg->listeners[i].addr.text);
    if (cfg->admin.enabled)
        CN_LOG_NOTICE(0, "admin on %s", cfg->admin.listen.text);
    CN_LOG_NOTICE(0, "cairn started: %u workers, config %s", srv->n_workers, cfg->file);
}

int
cn_server_run(cn_server_t *srv)
{
    const cn_config_t *cfg = srv->cfg;
    srv->started_ns = cn_time_now_ns();
    srv->generation = 1;
    srv->n_workers = cfg->server.workers ? cfg->server.workers : 1;
    uv_loop_init(&srv->loop);
    uv_async_init(&srv->loop, &srv->wake, on_wake);
    srv->wake.data = srv;
    uv_timer_init(&srv->loop, &srv->grace_timer);
    srv->grace_timer.data = srv;
    if (cn_accesslog_open(cfg) != CAIRN_OK) {
        char msg[600];
        snprintf(msg, sizeof(msg), "cannot open access log %s: %s", cfg->server.access_log,
                 strerror(errno));
        fail_start(srv, msg);
        goto fail_early;
    }
    cn_upgrade_fd_t *inh = NULL;
    size_t n_inh = 0;
    if (srv->opts.upgrade && receive_sockets(srv, &inh, &n_inh) != CAIRN_OK)
        goto fail_early;
    if (bind_listeners(srv, inh, n_inh) != CAIRN_OK || start_admin(srv, inh, n_inh) != CAIRN_OK ||
        write_pid_file(srv) != CAIRN_OK) {
        close_inherited(inh, n_inh, false);
        cn_free(inh);
        close_all_listener_fds(srv);
        goto fail_early;
    }
    close_inherited(inh, n_inh, true);
    cn_free(inh);
    start_signals(srv);
    open_caches(srv);
    if (start_workers(srv) != CAIRN_OK) {
        fail_start(srv, "cannot start worker threads");
        begin_stop(srv, false);
        uv_async_send(&srv->wake);
    } else {
        log_started(srv);
        report_ready(srv, "OK\n");
        if (srv->upgrade_conn >= 0) {
            cn_upgrade_answer(srv->upgrade_conn, true, NULL);
            srv->upgrade_conn = -1;
            CN_LOG_NOTICE(0, "upgrade: serving; the old instance drains");
        }
    }
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    for (unsigned w = 0; w < srv->n_workers; w++)
        if (srv->workers[w].srv != NULL)
            cn_worker_fini(&srv->workers[w]);
    cn_free(srv->workers);
    srv->workers = NULL;
    close_caches(srv);
    uv_loop_close(&srv->loop);
    if (srv->pid_file != NULL)
        remove_pid_file(srv);
    cn_accesslog_close();
    cn_pool_thread_release(); /* the admin listener's connections (main thread) */
    CN_LOG_NOTICE(0, "cairn stopped");
    return 0;

fail_early:
    close_main_handles(srv);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    uv_loop_close(&srv->loop);
    cn_accesslog_close();
    return 1;
}
