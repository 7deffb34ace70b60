/* SPDX-License-Identifier: MIT */
/* Server lifecycle on the main thread: bind every listener before any thread starts (so a
 * failure leaves nothing half-started), start workers, handle signals, drain and stop. */
#include "proxy/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"
#include "net/net.h"
#include "proxy/accesslog.h"
#include "proxy/cached.h"
#include "proxy/session.h"

cn_server_t *
cn_server_new(cn_config_t *cfg, const cn_server_opts_t *opts)
{
    cn_server_t *srv = cn_xcalloc(1, sizeof(*srv));
    srv->cfg = cfg;
    cn_config_ref(cfg);
    srv->opts = *opts;
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

cn_cache_t *
cn_server_cache(cn_server_t *srv, const char *name)
{
    for (size_t i = 0; i < srv->n_caches; i++)
        if (strcmp(cn_cache_name(srv->caches[i]), name) == 0)
            return srv->caches[i];
    return NULL;
}

static void
open_caches(cn_server_t *srv)
{
    const cn_config_t *cfg = srv->cfg;
    srv->caches = cn_xcalloc(cfg->n_caches ? cfg->n_caches : 1, sizeof(*srv->caches));
    for (size_t i = 0; i < cfg->n_caches; i++)
        srv->caches[srv->n_caches++] = cn_cache_new(cfg->caches[i].name, cfg->caches[i].memory_size,
                                                    cfg->caches[i].memory_max_object);
}

static void
close_caches(cn_server_t *srv)
{
    for (size_t i = 0; i < srv->n_caches; i++)
        cn_cache_free(srv->caches[i]);
    cn_free(srv->caches);
    srv->caches = NULL;
    srv->n_caches = 0;
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
        cn_worker_drain(&srv->workers[i], false);
}

static void
begin_stop(cn_server_t *srv, bool graceful)
{
    if (srv->stopping && (graceful || srv->fast))
        return;
    if (!srv->stopping) {
        CN_LOG_NOTICE(0, "%s shutdown requested", graceful ? "graceful" : "fast");
        /* The admin listener stops accepting; /readyz would now answer 503. */
        if (srv->admin_open && graceful) {
            srv->admin_open = false;
            uv_close((uv_handle_t *)&srv->admin, on_handle_closed);
            cn_h1_server_drain(&srv->admin_h1);
        }
    }
    srv->stopping = true;
    srv->fast = !graceful;
    for (unsigned i = 0; i < srv->n_workers; i++)
        cn_worker_drain(&srv->workers[i], graceful);
    if (graceful)
        uv_timer_start(&srv->grace_timer, on_grace_expired, srv->cfg->server.shutdown_grace_ms, 0);
}

static void
on_wake(uv_async_t *a)
{
    cn_server_t *srv = a->data;
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
        cn_log_reopen();
        cn_accesslog_reopen();
        break;
    case SIGHUP:
        CN_LOG_NOTICE(0, "SIGHUP received: reload is not supported yet, ignoring");
        break;
    default:
        break;
    }
}

static void
start_signals(cn_server_t *srv)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP};
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

static void
on_admin_connection(uv_stream_t *server, int status)
{
    cn_server_t *srv = server->data;
    if (status != 0 || srv->stopping)
        return;
    cn_h1_server_accept(&srv->admin_h1, server, false, "admin");
}

static uint64_t
admin_conn_id(void)
{
    return cn_next_id();
}

static cairn_err_t
start_admin(cn_server_t *srv)
{
    const cn_conf_admin_t *ac = &srv->cfg->admin;
    if (!ac->enabled)
        return CAIRN_OK;
    char err[512];
    int fd = cn_listen_socket((const struct sockaddr *)&ac->listen.ss, ac->listen.sslen, 128, err,
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

/* Binds listener sockets: @fds[w * n + i] is worker w's socket for listener i. */
static cairn_err_t
bind_listeners(cn_server_t *srv, int *fds)
{
    const cn_config_t *cfg = srv->cfg;
    size_t n = cfg->n_listeners;
    for (size_t k = 0; k < n * srv->n_workers; k++)
        fds[k] = -1;
    for (size_t i = 0; i < n; i++) {
        const cn_conf_addr_t *a = &cfg->listeners[i].addr;
        bool is_unix = a->ss.ss_family == AF_UNIX;
        for (unsigned w = 0; w < srv->n_workers; w++) {
            char err[512];
            int fd;
            if (is_unix && w > 0) {
                fd = dup(fds[i]);
            } else {
                fd = cn_listen_socket((const struct sockaddr *)&a->ss, a->sslen, 511, err,
                                      sizeof(err));
                if (fd < 0) {
                    fail_start(srv, err);
                    return CAIRN_EADDRINUSE;
                }
            }
            fds[w * n + i] = fd;
        }
    }
    return CAIRN_OK;
}

static void
close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static cairn_err_t
start_workers(cn_server_t *srv, int *fds)
{
    const cn_config_t *cfg = srv->cfg;
    size_t n = cfg->n_listeners;
    bool *is_unix = cn_xcalloc(n ? n : 1, sizeof(bool));
    const char **names = cn_xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        is_unix[i] = cfg->listeners[i].addr.ss.ss_family == AF_UNIX;
        names[i] = cfg->listeners[i].name;
    }
    srv->workers = cn_xcalloc(srv->n_workers, sizeof(cn_worker_t));
    cairn_err_t err = CAIRN_OK;
    for (unsigned w = 0; w < srv->n_workers && err == CAIRN_OK; w++) {
        atomic_fetch_add(&srv->workers_running, 1);
        err = cn_worker_start(&srv->workers[w], srv, w, srv->cfg, fds + w * n, is_unix, names, n);
        if (err != CAIRN_OK)
            atomic_fetch_sub(&srv->workers_running, 1);
    }
    cn_free(is_unix);
    cn_free(names);
    return err;
}

int
cn_server_run(cn_server_t *srv)
{
    const cn_config_t *cfg = srv->cfg;
    srv->started_ns = cn_time_now_ns();
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
    size_t nfds = cfg->n_listeners * srv->n_workers;
    int *fds = cn_xcalloc(nfds ? nfds : 1, sizeof(int));
    if (bind_listeners(srv, fds) != CAIRN_OK || start_admin(srv) != CAIRN_OK ||
        write_pid_file(srv) != CAIRN_OK) {
        close_fds(fds, nfds);
        cn_free(fds);
        goto fail_early;
    }
    start_signals(srv);
    open_caches(srv);
    if (start_workers(srv, fds) != CAIRN_OK) {
        cn_free(fds);
        fail_start(srv, "cannot start worker threads");
        begin_stop(srv, false);
        uv_async_send(&srv->wake);
    } else {
        cn_free(fds);
        for (size_t i = 0; i < cfg->n_listeners; i++)
            CN_LOG_NOTICE(0, "listening on %s", cfg->listeners[i].addr.text);
        if (cfg->admin.enabled)
            CN_LOG_NOTICE(0, "admin on %s", cfg->admin.listen.text);
        CN_LOG_NOTICE(0, "cairn started: %u workers, config %s", srv->n_workers, cfg->file);
        report_ready(srv, "OK\n");
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
        unlink(srv->pid_file);
    cn_accesslog_close();
    CN_LOG_NOTICE(0, "cairn stopped");
    return 0;

fail_early:
    close_main_handles(srv);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    uv_loop_close(&srv->loop);
    cn_accesslog_close();
    return 1;
}
