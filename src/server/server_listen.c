/* SPDX-License-Identifier: MIT */
/* The running server's listening sockets (main thread): the listener table, binding a socket
 * per worker, taking over the sockets of an upgraded instance (`cairn -u`, new side) and
 * handing ours to a new process on SIGQUIT (old side). The wire protocol is in upgrade.c. */
#include "server/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "net/net.h"

/* ---- listening sockets ----------------------------------------------------------------- */

bool
cn_srv_addr_equal(const struct sockaddr *a, const struct sockaddr *b)
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
const char *
cn_srv_intern_name(cn_server_t *srv, const char *name)
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

void
cn_srv_listener_init(cn_server_t *srv, cn_srv_listener_t *l, const cn_conf_listener_t *cl)
{
    memset(l, 0, sizeof(*l));
    l->id = ++srv->next_listener_id;
    l->addr = cl->addr;
    l->addr.text = cn_xstrdup(cl->addr.text);
    l->name = cn_srv_intern_name(srv, cl->name);
    l->is_unix = cl->addr.ss.ss_family == AF_UNIX;
}

/* Frees the table entry; the sockets are the workers' (or already closed). */
void
cn_srv_listener_fini(cn_srv_listener_t *l)
{
    cn_free(l->addr.text);
    cn_free(l->fds);
    cn_free(l->owner);
    memset(l, 0, sizeof(*l));
}

void
cn_srv_listener_close_fds(cn_srv_listener_t *l)
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
cairn_err_t
cn_srv_listener_bind(cn_server_t *srv, cn_srv_listener_t *l, unsigned from, char *err,
                     size_t errlen)
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
bool
cn_srv_fd_listens_on(int fd, const struct sockaddr_storage *ss)
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
    return cn_srv_addr_equal((const struct sockaddr *)&got, (const struct sockaddr *)ss);
}

/* Takes the inherited sockets bound to @l's address (upgrade), spread over the workers; a
 * worker may get several when the old instance had more workers, so none is closed with
 * connections waiting in its queue. */
static void
listener_inherit(cn_server_t *srv, cn_srv_listener_t *l, cn_upgrade_fd_t *inh, size_t n_inh)
{
    size_t k = 0;
    for (size_t i = 0; i < n_inh; i++) {
        if (inh[i].fd < 0 || inh[i].kind != 'L' || !cn_srv_fd_listens_on(inh[i].fd, &l->addr.ss))
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

void
cn_srv_close_all_listener_fds(cn_server_t *srv)
{
    for (size_t i = 0; i < srv->n_listeners; i++)
        cn_srv_listener_close_fds(&srv->listeners[i]);
}

/* Builds srv->listeners: every listener gets a socket per worker, bound here before any
 * thread starts, or taken from @inh (an upgrade). */
cairn_err_t
cn_srv_bind_listeners(cn_server_t *srv, cn_upgrade_fd_t *inh, size_t n_inh)
{
    const cn_config_t *cfg = srv->cfg;
    srv->listeners = cn_xcalloc(cfg->n_listeners + 1, sizeof(*srv->listeners));
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        cn_srv_listener_t *l = &srv->listeners[srv->n_listeners++];
        cn_srv_listener_init(srv, l, &cfg->listeners[i]);
        listener_inherit(srv, l, inh, n_inh);
        unsigned from = l->n_fds < srv->n_workers ? (unsigned)l->n_fds : srv->n_workers;
        char err[512];
        if (cn_srv_listener_bind(srv, l, from, err, sizeof(err)) != CAIRN_OK) {
            cn_srv_fail_start(srv, err);
            return CAIRN_EADDRINUSE;
        }
    }
    return CAIRN_OK;
}

void
cn_srv_close_inherited(cn_upgrade_fd_t *inh, size_t n_inh, bool log)
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

/* ---- upgrade, new side: take over the running instance's sockets ----------------------- */

#define CN_UPGRADE_WAIT_MS 30000

/* `cairn -u`: waits for the running instance to send its sockets (it does on SIGQUIT). */
cairn_err_t
cn_srv_receive_sockets(cn_server_t *srv, cn_upgrade_fd_t **inh, size_t *n_inh)
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
        cn_srv_fail_start(srv, msg);
        return CAIRN_EIO;
    }
    srv->upgrade_conn = conn;
    CN_LOG_NOTICE(0, "upgrade: received %zu listening sockets from pid %ld", *n_inh, (long)peer);
    return CAIRN_OK;
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

void
cn_srv_handover_end(cn_server_t *srv)
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
    cn_srv_handover_end(u->srv);
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
    cn_srv_handover_end(srv);
    if (r < 0) {
        CN_LOG_ERROR(0, "upgrade: the new process (pid %ld) did not take over: %s; still serving",
                     (long)peer, msg);
        return;
    }
    CN_LOG_NOTICE(0, "upgrade: pid %ld serves on our sockets; draining", (long)peer);
    srv->handed_over = true;
    cn_srv_begin_stop(srv, true);
}

/* The old process keeps serving until the new one says it serves: a new process that fails
 * (bad config, cannot bind an added listener) changes nothing. */
void
cn_srv_start_handover(cn_server_t *srv)
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
