/* SPDX-License-Identifier: MIT */
/* The server object shared by server.c and worker.c. Private to src/proxy/. */
#ifndef CN_PROXY_SERVER_INT_H
#define CN_PROXY_SERVER_INT_H

#include <stdatomic.h>
#include <uv.h>

#include "http1/http1.h"
#include "proxy/proxy.h"
#include "proxy/worker.h"

struct cn_server {
    cn_config_t *cfg;
    cn_server_opts_t opts;
    uv_loop_t loop; /* main thread: signals, admin, shutdown timer */
    cn_worker_t *workers;
    unsigned n_workers;
    atomic_uint workers_running;
    uv_async_t wake;         /* a worker exited, or cn_server_stop() was called */
    atomic_int stop_request; /* 0 none, 1 graceful, 2 fast */
    uv_signal_t signals[5];
    size_t n_signals;
    uv_timer_t grace_timer;
    bool stopping;
    bool fast;
    /* admin listener on the main loop */
    uv_tcp_t admin;
    bool admin_open;
    cn_h1_settings_t admin_set;
    cn_h1_server_t admin_h1;
    char *pid_file;            /* written by us; removed at exit */
    struct cn_hook_reg *hooks; /* cairn_server_use(), fixed once running */
    struct cn_cache **caches;  /* one per caches.<name>, shared by every worker */
    size_t n_caches;
    size_t n_hooks;
    uint64_t started_ns;
};

cairn_err_t cn_worker_start(cn_worker_t *w, cn_server_t *srv, unsigned index, cn_config_t *cfg,
                            const int *fds, const bool *is_unix, const char *const *names,
                            size_t n);
void cn_worker_drain(cn_worker_t *w, bool graceful);
void cn_worker_fini(cn_worker_t *w);
/** Called on a worker's thread as it exits. */
void cn_server_worker_exited(cn_server_t *srv, cn_worker_t *w);
/** Whether the server is draining (for /readyz). */
bool cn_server_is_draining(const cn_server_t *srv);

#endif
