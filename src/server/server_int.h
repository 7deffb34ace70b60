/* SPDX-License-Identifier: MIT */
/* The server object shared by server.c, server_listen.c, server_reload.c and worker.c, and
 * what those server files share with each other. Private to src/server/. */
#ifndef CN_PROXY_SERVER_INT_H
#define CN_PROXY_SERVER_INT_H

#include <stdatomic.h>
#include <sys/types.h>
#include <uv.h>

#include "cache/cache.h"
#include "http1/http1.h"
#include "server/server.h"
#include "engine/worker.h"

/* One listening address of the running server and its sockets (main thread only). A TCP
 * listener has one SO_REUSEPORT socket per worker, or more after an upgrade from an instance
 * that had more workers; a unix listener is one socket, dup()ed for each worker. The workers
 * own (and close) the sockets once they listen on them; the numbers stay here so that an
 * upgrade can send them, and a worker closes one only when the main thread tells it to. */
typedef struct cn_srv_listener {
    uint64_t id;         /* names this listener in messages to the workers */
    cn_conf_addr_t addr; /* a copy; text is owned */
    const char *name;    /* interned in cn_server.names (lives until exit); NULL = unnamed */
    bool is_unix;
    int *fds;
    unsigned *owner; /* owner[k]: the worker that listens on fds[k] */
    size_t n_fds;
} cn_srv_listener_t;

/* One socket a worker is told to listen on (at start and on reload). */
typedef struct cn_worker_listen {
    uint64_t id; /* cn_srv_listener_t.id */
    int fd;      /* the worker takes ownership */
    bool is_unix;
    const char *name;           /* interned; NULL = unnamed */
    struct sockaddr_storage ss; /* the configured address: finds the listener's tls */
    socklen_t sslen;
} cn_worker_listen_t;

/* The caches the workers look up (cn_server_cache): an immutable snapshot, replaced on
 * reload. The main thread publishes a new one before it posts the new generation, and the
 * old one is freed by the last worker to apply that reload (no worker can still be reading
 * it then). The caches themselves live until exit. */

/* A reload handed to every worker (cn_worker_reload). The last worker to apply it frees it
 * (cn_reload_free). */
typedef struct cn_reload {
    atomic_uint pending;       /* workers that have not applied it yet */
    cn_config_t *cfg;          /* the new generation: one reference per worker */
    cn_cache_view_t *old_view; /* freed with the message */
    cn_worker_listen_t *add;   /* new sockets; add_owner[k] is the worker for add[k] */
    unsigned *add_owner;
    size_t n_add;
    uint64_t *remove; /* listener ids whose sockets close (established connections stay) */
    size_t n_remove;
    cn_worker_listen_t *keep; /* listeners that stay: id and (maybe new) name; fd unused */
    size_t n_keep;
} cn_reload_t;

struct cn_upgrade_out;

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
    char *pid_file;                    /* written by us; removed at exit */
    struct cn_hook_reg *hooks;         /* cairn_server_use(), fixed once running */
    struct cn_cache **caches;          /* one per caches.<name>, shared by every worker */
    struct cn_fill_table *fills;       /* in-progress cache fills, shared by every worker */
    struct cn_limiter_table *limiters; /* origin fetch slots per upstream, shared */
    size_t n_caches;
    size_t n_hooks;
    uint64_t started_ns;
    /* Listening sockets (main thread). */
    cn_srv_listener_t *listeners;
    size_t n_listeners;
    uint64_t next_listener_id;
    char **names; /* interned listener names: connections borrow them, so they live until exit */
    size_t n_names;
    _Atomic(cn_cache_view_t *) cache_view; /* what cn_worker_cache() reads on the workers */
    cn_config_t *retired_cfg; /* the generation before the last reload, released on the next
                                 main-loop turn (an admin request may still be reading it) */
    /* Reload results, written and read on the main thread only (signals, admin, /metrics).
     * generation is 1 for the configuration the server started with and grows by one per
     * successful reload; every reload attempt counts in exactly one of reloads_ok and
     * reloads_failed. */
    uint64_t generation;
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    /* Graceful upgrade. New side: the connection to the old instance until we answer it (-1
     * otherwise). Old side: the hand-over in progress, and whether it completed. */
    int upgrade_conn;
    struct cn_upgrade_out *upgrade;
    bool handed_over;
};

/** Starts worker @index listening on @ls (@n sockets; the worker owns them from now on, also
 *  on failure). Main thread. */
cairn_err_t cn_worker_start(cn_worker_t *w, cn_server_t *srv, unsigned index, cn_config_t *cfg,
                            const cn_worker_listen_t *ls, size_t n);
/** Stops accepting and drains (graceful) or closes every connection (fast). @handover: the
 *  listening sockets now belong to a new process too, so connections accepted just before
 *  get a moment (CN_HANDOVER_DRAIN_DELAY_MS) to send their first request before the drain
 *  closes idle ones. A worker that never started ignores it. Main thread. */
void cn_worker_drain(cn_worker_t *w, bool graceful, bool handover);
/** Posts @r to @w: the worker swaps its generation and listeners. Main thread. */
void cn_worker_reload(cn_worker_t *w, cn_reload_t *r);
/** Frees a reload message once every worker applied it. Any thread. */
void cn_reload_free(cn_reload_t *r);
void cn_worker_fini(cn_worker_t *w);

#define CN_HANDOVER_DRAIN_DELAY_MS 200

/* ---- graceful upgrade: passing listening sockets (upgrade.c) ---------------------------
 * The new process (`cairn -u`) listens on server.upgrade_socket (AF_UNIX, SOCK_SEQPACKET)
 * and the old one, on SIGQUIT, connects and sends every listening socket with SCM_RIGHTS,
 * up to CN_UPGRADE_BATCH per message, each message's payload being one kind byte per socket
 * ('L' a listener socket, 'A' the admin listener), then a message 'K' + the TLS ticket keys
 * (net/tls.h: cn_tls_tickets_export), then a message "." that ends the list.
 * The new process matches the sockets to its listeners by getsockname(), starts serving and
 * answers "OK" (or "ERR <reason>"); only then does the old one stop accepting and drain.
 * Both sides check that the peer runs as the same user. */

#define CN_UPGRADE_BATCH 64

typedef struct cn_upgrade_fd {
    int fd;
    char kind; /* 'L' a listener socket, 'A' the admin listener */
} cn_upgrade_fd_t;

/** New process: listens on @path and waits up to @timeout_ms for an instance to connect and
 *  send its sockets. Returns the connection (to answer with cn_upgrade_answer) and sets
 *  *@fds (cn_free it; the sockets are the caller's) / *@n / *@peer; -1 with @err otherwise.
 *  Blocking: main thread, before the workers start. The socket file is removed either way. */
int cn_upgrade_receive(const char *path, uint64_t timeout_ms, cn_upgrade_fd_t **fds, size_t *n,
                       pid_t *peer, char *err, size_t errlen);
/** New process: answers "OK" (@ok) or "ERR @msg" and closes @conn. */
void cn_upgrade_answer(int conn, bool ok, const char *msg);
/** Old process: connects to @path and sends @fds (borrowed). Returns the connection, now
 *  non-blocking, on which the answer arrives, and the peer's pid in *@peer; -1 with @err.
 *  Blocking for at most a few seconds (send timeout). Main thread. */
int cn_upgrade_send(const char *path, const cn_upgrade_fd_t *fds, size_t n, pid_t *peer, char *err,
                    size_t errlen);
/** Old process: reads the answer from non-blocking @conn. 1: "OK"; 0: nothing yet; -1: an
 *  error answer, EOF or a socket error, described in @err. */
int cn_upgrade_read_answer(int conn, char *err, size_t errlen);
/** Called on a worker's thread as it exits. */
void cn_server_worker_exited(cn_server_t *srv, cn_worker_t *w);
/** Whether the server is draining (for /readyz). */
bool cn_server_is_draining(const cn_server_t *srv);

/* ---- shared by server.c, server_listen.c and server_reload.c (main thread) ---------------- */

/* server.c */
/** Logs @msg as why the start failed, reports "ERR @msg" on the ready fd and, when started
 *  by an upgrade, tells the old instance (which keeps serving). */
void cn_srv_fail_start(cn_server_t *srv, const char *msg);
/** Starts a graceful or fast stop (again: only a graceful one can become fast). */
void cn_srv_begin_stop(cn_server_t *srv, bool graceful);
/** Creates the caches @cfg names that the server does not have yet. */
void cn_srv_create_missing_caches(cn_server_t *srv, const cn_config_t *cfg);
/** Publishes srv->caches to the workers; returns the view it replaces. */
cn_cache_view_t *cn_srv_publish_caches(cn_server_t *srv);

/* server_listen.c */
/** Same family, address and port (or unix path). */
bool cn_srv_addr_equal(const struct sockaddr *a, const struct sockaddr *b);
/** @name copied once for the server's life (connections borrow it); NULL stays NULL. */
const char *cn_srv_intern_name(cn_server_t *srv, const char *name);
/** A new table entry for @cl, with a fresh id and no socket yet. */
void cn_srv_listener_init(cn_server_t *srv, cn_srv_listener_t *l, const cn_conf_listener_t *cl);
/** Frees the table entry; the sockets are the workers' (or already closed). */
void cn_srv_listener_fini(cn_srv_listener_t *l);
/** Closes @l's sockets (before the workers own them). */
void cn_srv_listener_close_fds(cn_srv_listener_t *l);
/** Gives workers @from.. a socket each; @err says why not. */
cairn_err_t cn_srv_listener_bind(cn_server_t *srv, cn_srv_listener_t *l, unsigned from, char *err,
                                 size_t errlen);
/** True when @fd is a listening socket bound to @ss. */
bool cn_srv_fd_listens_on(int fd, const struct sockaddr_storage *ss);
void cn_srv_close_all_listener_fds(cn_server_t *srv);
/** Builds srv->listeners at start, from the configuration and the sockets @inh inherited from
 *  an upgraded instance (those taken are set to -1). */
cairn_err_t cn_srv_bind_listeners(cn_server_t *srv, cn_upgrade_fd_t *inh, size_t n_inh);
/** Closes the inherited sockets nobody took; @log names each one. */
void cn_srv_close_inherited(cn_upgrade_fd_t *inh, size_t n_inh, bool log);
/** `cairn -u`: waits for the running instance to send its sockets. */
cairn_err_t cn_srv_receive_sockets(cn_server_t *srv, cn_upgrade_fd_t **inh, size_t *n_inh);
/** SIGQUIT: sends the listening sockets to a new process; drains once it answers "OK". */
void cn_srv_start_handover(cn_server_t *srv);
/** Ends the hand-over in progress (srv->upgrade), whatever its outcome. */
void cn_srv_handover_end(cn_server_t *srv);

/** Warns about listener certificates that expire within 30 days (start, reload). */
void cn_srv_warn_tls_expiry(const cn_config_t *cfg);

#endif
