/* SPDX-License-Identifier: MIT */
/* Graceful upgrade: the running instance passes its listening sockets to a new `cairn -u`
 * over a unix SOCK_SEQPACKET socket with SCM_RIGHTS (the protocol is in server_int.h). Plain
 * blocking system calls bounded by timeouts: the new process runs this before any thread or
 * loop starts, and the old one sends a few small messages from its main thread. */
#include "server/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/time.h"
#include "net/tls.h"

#define MSG_TIMEOUT_MS 10000

static bool
make_addr(const char *path, struct sockaddr_un *un, char *err, size_t errlen)
{
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(un->sun_path)) {
        snprintf(err, errlen, "upgrade socket path \"%s\" is empty or too long", path);
        return false;
    }
    memcpy(un->sun_path, path, len + 1);
    return true;
}

/* Whoever holds the listening sockets can serve (or spy on) every client: the peer must run
 * as our user. */
static bool
peer_is_us(int fd, pid_t *pid, char *err, size_t errlen)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        snprintf(err, errlen, "cannot identify the peer: %s", strerror(errno));
        return false;
    }
    if (cr.uid != geteuid()) {
        snprintf(err, errlen, "the peer (pid %ld) runs as uid %u, not %u", (long)cr.pid,
                 (unsigned)cr.uid, (unsigned)geteuid());
        return false;
    }
    *pid = cr.pid;
    return true;
}

/* Waits until @fd is readable or @deadline_ns passes. */
static bool
wait_readable(int fd, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = cn_time_now_ns();
        if (now >= deadline_ns)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ms = (int)((deadline_ns - now + 999999) / 1000000);
        int r = poll(&p, 1, ms);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

static void
push_fd(cn_upgrade_fd_t **arr, size_t *n, size_t *cap, int fd, char kind)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *arr = cn_xrealloc(*arr, *cap * sizeof(**arr));
    }
    (*arr)[*n].fd = fd;
    (*arr)[(*n)++].kind = kind;
}

/* Receives one message. Returns 1 for a batch of sockets, 0 for the end of the list, -1 on
 * error. Every socket received is appended (kind '?' when the message is malformed), so the
 * caller closes them all on failure. */
static int
recv_batch(int conn, cn_upgrade_fd_t **arr, size_t *n, size_t *cap, char *err, size_t errlen)
{
    char payload[CN_UPGRADE_BATCH + CN_TLS_TICKETS_WIRE + 1];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * CN_UPGRADE_BATCH)];
    } ctl;
    struct iovec iov = {.iov_base = payload, .iov_len = sizeof(payload)};
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof(ctl.buf);
    if (!wait_readable(conn, cn_time_now_ns() + (uint64_t)MSG_TIMEOUT_MS * 1000000)) {
        snprintf(err, errlen, "the running instance stopped sending");
        return -1;
    }
    ssize_t r;
    do
        r = recvmsg(conn, &m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        snprintf(err, errlen, "receiving sockets: %s",
                 r == 0 ? "connection closed" : strerror(errno));
        return -1;
    }
    size_t first = *n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            push_fd(arr, n, cap, fd, '?');
        }
    }
    size_t got = *n - first;
    if (got == 0 && r == 1 && payload[0] == '.')
        return 0;
    if (got == 0 && r == 1 + CN_TLS_TICKETS_WIRE && payload[0] == 'K') {
        /* The TLS ticket keys: tickets of the old instance resume here. */
        if (!cn_tls_tickets_import((const unsigned char *)payload + 1, CN_TLS_TICKETS_WIRE)) {
            snprintf(err, errlen, "malformed ticket keys");
            return -1;
        }
        return 1;
    }
    if ((m.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0 || got != (size_t)r) {
        snprintf(err, errlen, "malformed message (%zd bytes, %zu sockets)", r, got);
        return -1;
    }
    for (size_t i = 0; i < got; i++) {
        if (payload[i] != 'L' && payload[i] != 'A') {
            snprintf(err, errlen, "malformed message (kind 0x%02x)", (unsigned char)payload[i]);
            return -1;
        }
        (*arr)[first + i].kind = payload[i];
    }
    return 1;
}

static int
listen_upgrade_socket(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un un;
    if (!make_addr(path, &un, err, errlen))
        return -1;
    int ls = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (ls < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* A socket file left by an earlier attempt. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    /* Only our user may connect (checked again with SO_PEERCRED). No thread runs yet, so the
     * process-wide umask can be narrowed for the bind. */
    mode_t old = umask(077);
    int r = bind(ls, (const struct sockaddr *)&un, sizeof(un));
    umask(old);
    if (r != 0 || listen(ls, 1) != 0) {
        snprintf(err, errlen, "listen on %s: %s", path, strerror(errno));
        close(ls);
        return -1;
    }
    return ls;
}

int
cn_upgrade_receive(const char *path, uint64_t timeout_ms, cn_upgrade_fd_t **fds, size_t *n,
                   pid_t *peer, char *err, size_t errlen)
{
    int ls = listen_upgrade_socket(path, err, errlen);
    if (ls < 0)
        return -1;
    int conn = -1;
    if (!wait_readable(ls, cn_time_now_ns() + timeout_ms * 1000000))
        snprintf(err, errlen, "no running instance sent its sockets over %s within %llu s", path,
                 (unsigned long long)(timeout_ms / 1000));
    else if ((conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC)) < 0)
        snprintf(err, errlen, "accept on %s: %s", path, strerror(errno));
    close(ls);
    unlink(path);
    if (conn < 0)
        return -1;
    cn_upgrade_fd_t *arr = NULL;
    size_t cnt = 0, cap = 0;
    pid_t pid = 0;
    int r = peer_is_us(conn, &pid, err, errlen) ? 1 : -1;
    while (r == 1)
        r = recv_batch(conn, &arr, &cnt, &cap, err, errlen);
    if (r < 0) {
        for (size_t i = 0; i < cnt; i++)
            close(arr[i].fd);
        cn_free(arr);
        close(conn);
        return -1;
    }
    *fds = arr;
    *n = cnt;
    *peer = pid;
    return conn;
}

void
cn_upgrade_answer(int conn, bool ok, const char *msg)
{
    char line[600];
    int len = ok ? snprintf(line, sizeof(line), "OK")
                 : snprintf(line, sizeof(line), "ERR %s", msg ? msg : "failed");
    if (len > (int)sizeof(line) - 1)
        len = (int)sizeof(line) - 1;
    ssize_t w = send(conn, line, (size_t)len, MSG_NOSIGNAL);
    (void)w;
    close(conn);
}

static bool
send_batch(int s, const cn_upgrade_fd_t *fds, size_t n, char *err, size_t errlen)
{
    char payload[CN_UPGRADE_BATCH];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * CN_UPGRADE_BATCH)];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    for (size_t i = 0; i < n; i++)
        payload[i] = fds[i].kind;
    struct iovec iov = {.iov_base = payload, .iov_len = n};
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    for (size_t i = 0; i < n; i++)
        memcpy(CMSG_DATA(c) + i * sizeof(int), &fds[i].fd, sizeof(int));
    ssize_t r;
    do
        r = sendmsg(s, &m, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)n) {
        snprintf(err, errlen, "sending sockets: %s", r < 0 ? strerror(errno) : "short write");
        return false;
    }
    return true;
}

int
cn_upgrade_send(const char *path, const cn_upgrade_fd_t *fds, size_t n, pid_t *peer, char *err,
                size_t errlen)
{
    struct sockaddr_un un;
    if (!make_addr(path, &un, err, errlen))
        return -1;
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(s, (const struct sockaddr *)&un, sizeof(un)) != 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(errno));
        close(s);
        return -1;
    }
    pid_t pid = 0;
    if (!peer_is_us(s, &pid, err, errlen)) {
        close(s);
        return -1;
    }
    for (size_t i = 0; i < n; i += CN_UPGRADE_BATCH) {
        size_t k = n - i < CN_UPGRADE_BATCH ? n - i : CN_UPGRADE_BATCH;
        if (!send_batch(s, fds + i, k, err, errlen)) {
            close(s);
            return -1;
        }
    }
    unsigned char keys[1 + CN_TLS_TICKETS_WIRE] = {'K'};
    if (cn_tls_tickets_export(keys + 1, CN_TLS_TICKETS_WIRE) != CN_TLS_TICKETS_WIRE ||
        send(s, keys, sizeof(keys), MSG_NOSIGNAL) != (ssize_t)sizeof(keys)) {
        snprintf(err, errlen, "sending the TLS ticket keys: %s", strerror(errno));
        close(s);
        return -1;
    }
    if (send(s, ".", 1, MSG_NOSIGNAL) != 1) {
        snprintf(err, errlen, "sending the end of the list: %s", strerror(errno));
        close(s);
        return -1;
    }
    int fl = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, fl | O_NONBLOCK);
    *peer = pid;
    return s;
}

int
cn_upgrade_read_answer(int conn, char *err, size_t errlen)
{
    char buf[600];
    ssize_t r = recv(conn, buf, sizeof(buf) - 1, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (r <= 0) {
        snprintf(err, errlen, "%s",
                 r == 0 ? "it closed the connection without an answer" : strerror(errno));
        return -1;
    }
    buf[r] = '\0';
    if (strcmp(buf, "OK") == 0)
        return 1;
    snprintf(err, errlen, "%s", strncmp(buf, "ERR ", 4) == 0 ? buf + 4 : buf);
    return -1;
}
