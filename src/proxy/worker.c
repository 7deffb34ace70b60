/* SPDX-License-Identifier: MIT */
/* Worker threads: each runs its own loop with its own SO_REUSEPORT listeners, so a
 * connection and everything it starts stay on one thread for life. */
#include "proxy/worker.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/log.h"
#include "proxy/server_int.h"
#include "proxy/session.h"
#include "proxy/upstream.h"

struct cn_worker_msg {
    struct cn_worker_msg *next;
    cn_worker_fn fn;
    void *arg;
};

static atomic_uint_fast64_t id_counter;

uint64_t
cn_next_id(void)
{
    return atomic_fetch_add_explicit(&id_counter, 1, memory_order_relaxed) + 1;
}

void
cn_worker_post(cn_worker_t *w, cn_worker_fn fn, void *arg)
{
    struct cn_worker_msg *m = cn_xmalloc(sizeof(*m));
    m->fn = fn;
    m->arg = arg;
    m->next = NULL;
    pthread_mutex_lock(&w->lock);
    struct cn_worker_msg **tail = &w->msgs;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = m;
    pthread_mutex_unlock(&w->lock);
    uv_async_send(&w->async);
}

static void
on_async(uv_async_t *a)
{
    cn_worker_t *w = a->data;
    pthread_mutex_lock(&w->lock);
    struct cn_worker_msg *m = w->msgs;
    w->msgs = NULL;
    pthread_mutex_unlock(&w->lock);
    while (m != NULL) {
        struct cn_worker_msg *next = m->next;
        m->fn(w, m->arg);
        cn_free(m);
        m = next;
    }
}

static void
on_connection(uv_stream_t *server, int status)
{
    cn_worker_listener_t *l = server->data;
    if (status != 0 || l->w->draining)
        return;
    cn_h1_server_accept(&l->w->h1, server, l->is_unix, l->name);
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
    cn_worker_maybe_stop(h1->data);
}

static void
listener_closed(uv_handle_t *h)
{
    (void)h;
}

static void
close_listeners(cn_worker_t *w)
{
    for (size_t i = 0; i < w->n_listeners; i++)
        if (!uv_is_closing(&w->listeners[i].u.handle))
            uv_close(&w->listeners[i].u.handle, listener_closed);
}

void
cn_worker_maybe_stop(cn_worker_t *w)
{
    if (!w->draining || w->stopped || w->h1.n_conns > 0 || w->n_sessions > 0)
        return;
    w->stopped = true;
    close_listeners(w);
    cn_upstream_pools_close(w);
    uv_close((uv_handle_t *)&w->async, NULL);
}

static void
msg_drain(cn_worker_t *w, void *arg)
{
    bool graceful = arg != NULL;
    w->draining = true;
    close_listeners(w);
    if (graceful)
        cn_h1_server_drain(&w->h1);
    else
        cn_h1_server_close_all(&w->h1);
    cn_worker_maybe_stop(w);
}

void
cn_worker_drain(cn_worker_t *w, bool graceful)
{
    cn_worker_post(w, msg_drain, graceful ? (void *)w : NULL);
}

static void *
worker_main(void *arg)
{
    cn_worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "cairn-w%u", w->index);
    pthread_setname_np(pthread_self(), name);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    cn_server_worker_exited(w->srv, w);
    return NULL;
}

cairn_err_t
cn_worker_start(cn_worker_t *w, cn_server_t *srv, unsigned index, cn_config_t *cfg, const int *fds,
                const bool *is_unix, const char *const *names, size_t n)
{
    w->srv = srv;
    w->index = index;
    w->cfg = cfg;
    cn_config_ref(cfg);
    pthread_mutex_init(&w->lock, NULL);
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->async, on_async);
    w->async.data = w;
    settings_from_config(&w->h1set, cfg);
    cn_h1_server_init(&w->h1, &w->loop, &w->h1set, &cn_session_handler, w);
    w->h1.next_id = next_conn_id;
    w->h1.on_idle = on_h1_idle;
    w->h1.data = w;
    w->listeners = cn_xcalloc(n ? n : 1, sizeof(*w->listeners));
    w->n_listeners = n;
    for (size_t i = 0; i < n; i++) {
        cn_worker_listener_t *l = &w->listeners[i];
        l->w = w;
        l->is_unix = is_unix[i];
        l->name = names[i];
        int r =
            is_unix[i] ? uv_pipe_init(&w->loop, &l->u.pipe, 0) : uv_tcp_init(&w->loop, &l->u.tcp);
        CN_ASSERT(r == 0);
        l->u.handle.data = l;
        r = is_unix[i] ? uv_pipe_open(&l->u.pipe, fds[i]) : uv_tcp_open(&l->u.tcp, fds[i]);
        if (r == 0)
            r = uv_listen(&l->u.stream, 511, on_connection);
        if (r != 0) {
            CN_LOG_ERROR(0, "worker %u: cannot listen: %s", index, uv_strerror(r));
            return CAIRN_EIO;
        }
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return CAIRN_ENOMEM;
    return CAIRN_OK;
}

void
cn_worker_fini(cn_worker_t *w)
{
    pthread_join(w->thread, NULL);
    uv_loop_close(&w->loop);
    pthread_mutex_destroy(&w->lock);
    struct cn_worker_msg *m = w->msgs;
    while (m != NULL) {
        struct cn_worker_msg *next = m->next;
        cn_free(m);
        m = next;
    }
    cn_free(w->listeners);
    cn_config_unref(w->cfg);
}
