/* SPDX-License-Identifier: MIT */
/* Server lifecycle on the main thread: the server object and its caches, start (bind every
 * listener before any thread starts, so a failure leaves nothing half-started; admin
 * listener, pid file, workers), signals, drain and stop. The listening sockets and the
 * upgrade hand-over are in server_listen.c, configuration reload in server_reload.c. */
#include "server/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/admin.h"
#include "core/alloc.h"
#include "core/fmem.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/time.h"
#include "net/net.h"
#include "net/tls.h"
#include "engine/accesslog.h"
#include "engine/cached.h"
#include "cache/fill.h"
#include "upstream/limiter.h"
#include "engine/session.h"

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

/* Publishes srv->caches to the workers; returns the view it replaces. */
cn_cache_view_t *
cn_srv_publish_caches(cn_server_t *srv)
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

void
cn_srv_create_missing_caches(cn_server_t *srv, const cn_config_t *cfg)
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

/* A listener certificate that expires within 30 days (or has) is worth a line at start and at
 * every reload. */
void
cn_srv_warn_tls_expiry(const cn_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const cn_conf_listener_t *l = &cfg->listeners[i];
        if (l->tls_ctx == NULL)
            continue;
        int64_t left = cn_tls_ctx_expiry(l->tls_ctx);
        if (left < 0)
            CN_LOG_WARN(0, "listener %s: a TLS certificate has expired", l->addr.text);
        else if (left < 30 * 86400)
            CN_LOG_WARN(0, "listener %s: a TLS certificate expires in %lld days", l->addr.text,
                        (long long)(left / 86400));
    }
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
    srv->limiters = cn_limiter_table_new();
    cn_srv_create_missing_caches(srv, srv->cfg);
    cn_free(cn_srv_publish_caches(srv));
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
    cn_limiter_table_free(srv->limiters);
    srv->limiters = NULL;
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

void
cn_srv_fail_start(cn_server_t *srv, const char *msg)
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

/* ---- stopping -------------------------------------------------------------------------- */

static void
on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void
close_main_handles(cn_server_t *srv)
{
    if (srv->upgrade != NULL)
        cn_srv_handover_end(srv);
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

void
cn_srv_begin_stop(cn_server_t *srv, bool graceful)
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
        cn_srv_begin_stop(srv, req == 1);
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

/* ---- signals --------------------------------------------------------------------------- */

static void
on_signal(uv_signal_t *h, int signum)
{
    cn_server_t *srv = h->data;
    switch (signum) {
    case SIGTERM:
        CN_LOG_NOTICE(0, "SIGTERM received: graceful shutdown");
        cn_srv_begin_stop(srv, true);
        break;
    case SIGINT:
        CN_LOG_NOTICE(0, "SIGINT received: fast shutdown");
        cn_srv_begin_stop(srv, false);
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
        cn_srv_start_handover(srv);
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
        cn_srv_fail_start(srv, msg);
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
    cn_h1_server_accept(&srv->admin_h1, server, false, "admin", srv->cfg->admin.tls.tls_ctx);
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
        if (inh[i].fd >= 0 && inh[i].kind == 'A' &&
            cn_srv_fd_listens_on(inh[i].fd, &ac->listen.ss)) {
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
        cn_srv_fail_start(srv, msg);
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
        cn_srv_fail_start(srv, "admin: listen failed");
        return CAIRN_EIO;
    }
    srv->admin_open = true;
    return CAIRN_OK;
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
                    ls[n++] = (cn_worker_listen_t){.id = l->id,
                                                   .fd = l->fds[k],
                                                   .is_unix = l->is_unix,
                                                   .name = l->name,
                                                   .ss = l->addr.ss,
                                                   .sslen = l->addr.sslen};
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

static void
log_started(cn_server_t *srv)
{
    const cn_config_t *cfg = srv->cfg;
    for (size_t i = 0; i < cfg->n_listeners; i++)
        CN_LOG_NOTICE(0, "listening on %s", cfg->listeners[i].addr.text);
    if (cfg->admin.enabled)
        CN_LOG_NOTICE(0, "admin on %s", cfg->admin.listen.text);
    CN_LOG_NOTICE(0, "cairn started: %u workers, config %s", srv->n_workers, cfg->file);
    cn_srv_warn_tls_expiry(cfg);
    cn_tls_tickets_configure(cfg->server.tls_ticket_rotation_ms);
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        if (cfg->upstreams[i].tls_ctx != NULL && !cfg->upstreams[i].tls_verify)
            CN_LOG_WARN(0, "upstream %s: tls.verify is false: its certificates are not checked",
                        cfg->upstreams[i].name);
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
        cn_srv_fail_start(srv, msg);
        goto fail_early;
    }
    cn_upgrade_fd_t *inh = NULL;
    size_t n_inh = 0;
    if (srv->opts.upgrade && cn_srv_receive_sockets(srv, &inh, &n_inh) != CAIRN_OK)
        goto fail_early;
    if (cn_srv_bind_listeners(srv, inh, n_inh) != CAIRN_OK ||
        start_admin(srv, inh, n_inh) != CAIRN_OK || write_pid_file(srv) != CAIRN_OK) {
        cn_srv_close_inherited(inh, n_inh, false);
        cn_free(inh);
        cn_srv_close_all_listener_fds(srv);
        goto fail_early;
    }
    cn_srv_close_inherited(inh, n_inh, true);
    cn_free(inh);
    start_signals(srv);
    open_caches(srv);
    if (start_workers(srv) != CAIRN_OK) {
        cn_srv_fail_start(srv, "cannot start worker threads");
        cn_srv_begin_stop(srv, false);
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
