/* SPDX-License-Identifier: MIT */
/* cn_worker_t: one thread, one libuv loop, its own listening sockets and upstream pools.
 * Everything a worker owns is touched only by its thread; other threads reach it through
 * cn_worker_post(). Private to src/engine/ (and the server that starts it). */
#ifndef CN_PROXY_WORKER_H
#define CN_PROXY_WORKER_H

#include <pthread.h>
#include <uv.h>

#include "cache/cache.h"
#include "config/config.h"
#include "core/exec.h"
#include "http1/http1.h"
#include "upstream/upstream.h"

typedef void (*cn_worker_fn)(cn_worker_t *w, void *arg);

typedef struct cn_worker_listener {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    cn_worker_t *w;
    struct cn_worker_listener *next; /* cn_worker.listeners */
    uint64_t id;                     /* the server's listener (cn_srv_listener_t.id) */
    bool is_unix;
    const char *name;           /* interned by the server; connections borrow it */
    struct sockaddr_storage ss; /* the configured address (finds its tls in the generation) */
    socklen_t sslen;
} cn_worker_listener_t;

struct cn_worker_msg;

struct cn_worker {
    cn_server_t *srv;
    unsigned index;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    pthread_mutex_t lock; /* guards msgs */
    struct cn_worker_msg *msgs;
    cn_config_t *cfg; /* this worker's current generation (sessions hold their own ref) */
    /* Derived from cfg and rewritten in place when a reload reaches this thread, the only one
     * that reads it: connections see the new limits and timeouts from their next read or
     * timer on; server_header points into cfg. */
    cn_h1_settings_t h1set;
    cn_h1_server_t h1;
    cn_worker_listener_t *listeners; /* open listening handles, each heap-allocated */
    size_t n_listeners;
    cn_up_ctx_t up;    /* this thread's upstream state: pools, balancer cursors */
    size_t n_sessions; /* live sessions, including background ones */
    bool thread_started;
    bool draining;
    bool stopped;
    /* This thread's counters (metrics/metrics.h); scrapes on the main thread read them. */
    struct cn_metrics *metrics;
    /* Handed down by the server when it starts the worker, so that the engine never reaches
     * up for it: */
    cn_exec_t exec;                  /* posts to this thread (fills and limiters wake it) */
    void (*on_idle)(cn_worker_t *w); /* a draining worker's last session ended */
    const struct cn_hook_reg *hooks; /* cairn_server_use() tables, fixed once running */
    size_t n_hooks;
    struct cn_fill_table *fills;          /* in-progress cache fills, shared by every worker */
    struct cn_limiter_table *limiters;    /* origin fetch slots per upstream, shared */
    cn_cache_view_t *_Atomic *cache_view; /* the caches by name, replaced on reload */
};

/** Runs @fn(@w, @arg) on @w's thread. Any thread. */
void cn_worker_post(cn_worker_t *w, cn_worker_fn fn, void *arg);
/** Called by the session layer when a session ended: tells the server (on_idle), which stops
 *  a draining worker without connections or sessions. */
void cn_worker_maybe_stop(cn_worker_t *w);
/** Sets up w->exec (posts through cn_worker_post). */
void cn_worker_init_exec(cn_worker_t *w);
/** Runs the messages posted to @w (its async callback). */
void cn_worker_run_posted(cn_worker_t *w);
/** Frees messages that were never run (worker teardown). */
void cn_worker_free_posted(cn_worker_t *w);
/** The cache named @name in this worker's current view, or NULL. */
cn_cache_t *cn_worker_cache(cn_worker_t *w, const char *name);
/** Unique ids for connections and requests (process-wide). */
uint64_t cn_next_id(void);

#endif
