/* SPDX-License-Identifier: MIT */
/* The request engine: servers, workers, sessions. A cn_server_t owns the config generation,
 * the worker threads (one libuv loop each) and the admin listener on the main thread. */
#ifndef CN_PROXY_PROXY_H
#define CN_PROXY_PROXY_H

#include <cairn/hooks.h>

#include "config/config.h"
#include "core/types.h"

struct cn_hook_reg;

typedef struct cn_server_opts {
    bool daemon;  /* -d (or server.daemon) */
    bool upgrade; /* -u: take the listening sockets of a running instance */
    int ready_fd; /* daemon: write one status line here once serving, then close; -1 */
} cn_server_opts_t;

/** Creates a server for @cfg (a reference is taken). Nothing is bound yet. */
cn_server_t *cn_server_new(cn_config_t *cfg, const cn_server_opts_t *opts);
/** Binds every listener, starts the workers and runs the main loop until shutdown.
 *  Returns 0 after a clean stop, non-zero when starting failed (the error was logged and,
 *  in daemon mode, written to opts->ready_fd). */
int cn_server_run(cn_server_t *srv);
/** Asks a running server to stop: graceful (drain, bounded by shutdown_grace) or fast.
 *  Any thread. */
void cn_server_stop(cn_server_t *srv, bool graceful);
void cn_server_free(cn_server_t *srv);
/** Reloads the configuration file of the running server (its cfg->file) as a new
 *  generation. On success every worker switches to it (requests in flight finish on the one
 *  they started with), new listener addresses are bound, removed ones stop accepting (their
 *  connections stay), unchanged ones keep their sockets, and caches are kept by name; 0 is
 *  returned. On any error (the file has errors, a new address cannot be bound, the server is
 *  not running or is stopping) the running generation stays, every diagnostic is logged, a
 *  one-line reason is written to @err (may be NULL) and -1 is returned. Settings read only at
 *  start (server.workers, logs, pid_file, admin.listen, cache sizes) keep their running
 *  values, with a warning. Main thread only (a signal handler or an admin request); the
 *  previous generation stays valid until the main loop's next turn. */
int cn_server_reload(cn_server_t *srv, char *err, size_t errlen);
/** Registers a hook table (before cn_server_run). @hooks/@udata are borrowed. */
void cn_server_use(cn_server_t *srv, const cairn_hooks_t *hooks, void *udata);
/** The registered tables, in registration order. */
const struct cn_hook_reg *cn_server_hooks(const cn_server_t *srv, size_t *n);

#endif
