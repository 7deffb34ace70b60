/* SPDX-License-Identifier: MIT */
/* Worker threads: each runs its own loop with its own SO_REUSEPORT listeners, so a
 * connection and everything it starts stay on one thread for life. */
#include "engine/worker.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/log.h"
#include "core/pool.h"
#include "metrics/metrics.h"
#include "server/server_int.h"
#include "engine/session.h"

static void maybe_stop(cn_worker_t *w);

static void
on_h1_tls(cn_h1_server_t *h1, const char *name, bool ok, bool resumed)
{
    cn_worker_t *w = h1->data;
    uint32_t slot = cn_metrics_intern(w->metrics, CN_ML_LISTENER, name ? name : "-");
    cn_metrics_tls_handshake(w->metrics, slot, ok, resumed);
}

static void
on_async(uv_async_t *a)
{
    cn_worker_run_posted(a->data);
}

/* The TLS context of @l in this worker's current generation (NULL: plain). Connections keep
 * the context they started with across a reload. */
static struct cn_tls_ctx *
listener_tls(const cn_worker_listener_t *l)
{
    const cn_config_t *cfg = l->w->cfg;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const cn_conf_addr_t *a = &cfg->listeners[i].addr;
        if (a->sslen == l->sslen && memcmp(&a->ss, &l->ss, l->sslen) == 0)
            return cfg->listeners[i].tls_ctx;
    }
    return NULL;
}

static void
on_connection(uv_stream_t *server, int status)
{
    cn_worker_listener_t *l = server->data;
    if (status != 0 || l->w->draining)
        return;
    cn_h1_server_accept(&l->w->h1, server, l->is_unix, l->name, listener_tls(l));
}

static void
settings_from_config(cn_h1_settings_t *set, const cn_config_t *cfg)
{
    const cn_conf_server_t *sc = &cfg->server;
    memset(set, 0, sizeof(*set));
    set->limits.max_head = sc->max_header_size;
    set->limits.max_headers = sc->max_headers;
    set->limits.max_target = sc->max_uri_size;
    set->header_timeout_ms = sc->header_timeout_ms;
    set->keepalive_timeout_ms = sc->keepalive_timeout_ms;
    set->body_timeout_ms = sc->body_timeout_ms;
    set->send_timeout_ms = sc->send_timeout_ms;
    set->max_body_size = sc->max_body_size;
    set->request_memory = sc->request_memory;
    set->server_header = sc->server_header;
}

static uint64_t
next_conn_id(void)
{
    return cn_next_id();
}

static void
on_h1_idle(cn_h1_server_t *h1)
{
    maybe_stop(h1->data);
}

static void
listener_freed(uv_handle_t *h)
{
    cn_free(h->data);
}

/* Closing our socket of a listener stops this worker accepting on it; connections already
 * accepted are not affected. After an upgrade the new process holds the same sockets, so
 * they stay open and the connections queued on them are accepted there. */
static void
close_listener(cn_worker_t *w, cn_worker_listener_t *l)
{
    cn_worker_listener_t **pp = &w->listeners;
    while (*pp != l)
        pp = &(*pp)->next;
    *pp = l->next;
    w->n_listeners--;
    uv_close(&l->u.handle, listener_freed);
}

static void
close_listeners(cn_worker_t *w)
{
    while (w->listeners != NULL)
        close_listener(w, w->listeners);
}

/* Takes ownership of @ls->fd. Main thread before the worker starts, then the worker's. */
static cairn_err_t
worker_listen(cn_worker_t *w, const cn_worker_listen_t *ls)
{
    cn_worker_listener_t *l = cn_xcalloc(1, sizeof(*l));
    l->w = w;
    l->id = ls->id;
    l->is_unix = ls->is_unix;
    l->name = ls->name;
    l->ss = ls->ss;
    l->sslen = ls->sslen;
    int r = l->is_unix ? uv_pipe_init(&w->loop, &l->u.pipe, 0) : uv_tcp_init(&w->loop, &l->u.tcp);
    CN_ASSERT(r == 0);
    l->u.handle.data = l;
    r = l->is_unix ? uv_pipe_open(&l->u.pipe, ls->fd) : uv_tcp_open(&l->u.tcp, ls->fd);
    if (r != 0)
        close(ls->fd);
    else
        r = uv_listen(&l->u.stream, 511, on_connection);
    if (r != 0) {
        CN_LOG_ERROR(0, "worker %u: cannot listen: %s", w->index, uv_strerror(r));
        uv_close(&l->u.handle, listener_freed);
        return CAIRN_EIO;
    }
    l->next = w->listeners;
    w->listeners = l;
    w->n_listeners++;
    return CAIRN_OK;
}

/* The engine's idle callback (cn_worker_t.on_idle): a draining worker whose last connection
 * and session ended stops. */
static void
maybe_stop(cn_worker_t *w)
{
    if (!w->draining || w->stopped || w->h1.n_conns > 0 || w->n_sessions > 0)
        return;
    w->stopped = true;
    close_listeners(w);
    cn_up_ctx_close(&w->up);
    uv_close((uv_handle_t *)&w->async, NULL);
}

enum drain_mode { DRAIN_FAST, DRAIN_GRACEFUL, DRAIN_HANDOVER };
static const enum drain_mode drain_modes[] = {DRAIN_FAST, DRAIN_GRACEFUL, DRAIN_HANDOVER};

static void
timer_freed(uv_handle_t *h)
{
    cn_free(h);
}

static void
on_handover_drain(uv_timer_t *t)
{
    cn_worker_t *w = t->data;
    uv_close((uv_handle_t *)t, timer_freed);
    if (!w->h1.draining)
        cn_h1_server_drain(&w->h1);
    maybe_stop(w);
}

static void
msg_drain(cn_worker_t *w, void *arg)
{
    enum drain_mode mode = *(const enum drain_mode *)arg;
    w->draining = true;
    w->up.draining = true;
    close_listeners(w);
    if (mode == DRAIN_HANDOVER && w->h1.n_conns > 0) {
        /* The drain closes connections that have not sent a request yet; one accepted a
         * moment ago has its request on the way, so it gets time to arrive. */
        uv_timer_t *t = cn_xmalloc(sizeof(*t));
        uv_timer_init(&w->loop, t);
        t->data = w;
        uv_timer_start(t, on_handover_drain, CN_HANDOVER_DRAIN_DELAY_MS, 0);
        return;
    }
    if (mode == DRAIN_FAST)
        cn_h1_server_close_all(&w->h1);
    else
        cn_h1_server_drain(&w->h1);
    maybe_stop(w);
}

void
cn_worker_drain(cn_worker_t *w, bool graceful, bool handover)
{
    if (!w->thread_started)
        return;
    enum drain_mode mode = !graceful ? DRAIN_FAST : handover ? DRAIN_HANDOVER : DRAIN_GRACEFUL;
    cn_worker_post(w, msg_drain, (void *)&drain_modes[mode]);
}

/* ---- reload ---------------------------------------------------------------------------- */

static cn_worker_listener_t *
find_listener(cn_worker_t *w, uint64_t id)
{
    for (cn_worker_listener_t *l = w->listeners; l != NULL; l = l->next)
        if (l->id == id)
            return l;
    return NULL;
}

static void
reload_listeners(cn_worker_t *w, const cn_reload_t *r)
{
    cn_worker_listener_t *l;
    for (size_t i = 0; i < r->n_remove; i++)
        while ((l = find_listener(w, r->remove[i])) != NULL)
            close_listener(w, l);
    for (size_t i = 0; i < r->n_keep; i++)
        for (l = w->listeners; l != NULL; l = l->next)
            if (l->id == r->keep[i].id)
                l->name = r->keep[i].name;
    for (size_t i = 0; i < r->n_add; i++) {
        if (r->add_owner[i] != w->index)
            continue;
        if (w->draining)
            close(r->add[i].fd);
        else
            worker_listen(w, &r->add[i]);
    }
}

/* Sessions that started before keep their own reference to the old generation and finish
 * on it; everything that starts from now on sees the new one. */
static void
msg_reload(cn_worker_t *w, void *arg)
{
    cn_reload_t *r = arg;
    cn_config_t *old = w->cfg;
    w->cfg = r->cfg;
    settings_from_config(&w->h1set, w->cfg);
    cn_config_unref(old);
    reload_listeners(w, r);
    if (atomic_fetch_sub(&r->pending, 1) == 1)
        cn_reload_free(r);
}

void
cn_worker_reload(cn_worker_t *w, cn_reload_t *r)
{
    cn_worker_post(w, msg_reload, r);
}

static void *
worker_main(void *arg)
{
    cn_worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "cairn-w%u", w->index);
    pthread_setname_np(pthread_self(), name);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    cn_pool_thread_release();
    cn_server_worker_exited(w->srv, w);
    return NULL;
}

cairn_err_t
cn_worker_start(cn_worker_t *w, cn_server_t *srv, unsigned index, cn_config_t *cfg,
                const cn_worker_listen_t *ls, size_t n)
{
    w->srv = srv;
    w->index = index;
    w->metrics = cn_metrics_new();
    w->cfg = cfg;
    cn_config_ref(cfg);
    pthread_mutex_init(&w->lock, NULL);
    uv_loop_init(&w->loop);
    w->up.loop = &w->loop;
    cn_worker_init_exec(w);
    w->on_idle = maybe_stop;
    w->hooks = cn_server_hooks(srv, &w->n_hooks);
    w->fills = srv->fills;
    w->limiters = srv->limiters;
    w->cache_view = &srv->cache_view;
    uv_async_init(&w->loop, &w->async, on_async);
    w->async.data = w;
    settings_from_config(&w->h1set, cfg);
    cn_h1_server_init(&w->h1, &w->loop, &w->h1set, &cn_session_handler, w);
    w->h1.next_id = next_conn_id;
    w->h1.on_idle = on_h1_idle;
    w->h1.on_tls = on_h1_tls;
    w->h1.data = w;
    cairn_err_t err = CAIRN_OK;
    for (size_t i = 0; i < n; i++) {
        if (err != CAIRN_OK)
            close(ls[i].fd);
        else
            err = worker_listen(w, &ls[i]);
    }
    if (err != CAIRN_OK)
        return err;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return CAIRN_ENOMEM;
    w->thread_started = true;
    return CAIRN_OK;
}

void
cn_worker_fini(cn_worker_t *w)
{
    if (w->thread_started) {
        pthread_join(w->thread, NULL);
    } else {
        /* Its start failed: nothing ran on its loop but the handles opened for it. */
        close_listeners(w);
        uv_close((uv_handle_t *)&w->async, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&w->loop);
    pthread_mutex_destroy(&w->lock);
    cn_worker_free_posted(w);
    cn_config_unref(w->cfg);
    cn_metrics_free(w->metrics);
    w->metrics = NULL;
}
