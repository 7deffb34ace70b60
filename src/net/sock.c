/* SPDX-License-Identifier: MIT */
/* cn_sock_t over uv_tcp_t / uv_pipe_t: reads land in an owned buffer that is released when
 * empty, so an idle keep-alive connection holds no read memory. */
#include "net/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/alloc.h"
#include "core/fmem.h"
#include "core/assert.h"
#include "core/str.h"
#include "net/tls_int.h"

static cairn_err_t
map_uv(int r)
{
    switch (r) {
    case 0:
        return CAIRN_OK;
    case UV_EOF:
    case UV_EPIPE:
        return CAIRN_ECLOSED;
    case UV_ECONNRESET:
        return CAIRN_ERESET; /* never a clean end: a close-delimited body is truncated */
    case UV_ECONNREFUSED:
        return CAIRN_ECONNREFUSED;
    case UV_ENOENT:
        return CAIRN_ENOENT; /* a unix socket path that does not exist: nothing refused */
    case UV_ETIMEDOUT:
        return CAIRN_ETIMEDOUT;
    case UV_ENOMEM:
    case UV_ENOBUFS:
        return CAIRN_ENOMEM;
    case UV_ECANCELED:
        return CAIRN_ECANCELED;
    case UV_EADDRINUSE:
        return CAIRN_EADDRINUSE;
    default:
        return CAIRN_EIO;
    }
}

cairn_err_t
cn_sock_accept(uv_stream_t *server, cn_sock_t *s, bool is_unix)
{
    int r =
        is_unix ? uv_pipe_init(server->loop, &s->u.pipe, 0) : uv_tcp_init(server->loop, &s->u.tcp);
    if (r != 0)
        return map_uv(r);
    s->is_unix = is_unix;
    s->u.handle.data = s;
    r = uv_accept(server, &s->u.stream);
    return map_uv(r);
}

static void
on_connect_done(uv_connect_t *req, int status)
{
    cn_sock_t *s = req->data;
    cn_free(req);
    if (s->closing)
        return;
    if (status == 0 && s->tls_connect != NULL) {
        cn_tls_sock_connected(s); /* on_connect follows the handshake */
        return;
    }
    s->on_connect(s, map_uv(status));
}

cairn_err_t
cn_sock_connect(uv_loop_t *loop, cn_sock_t *s, const struct sockaddr *addr, cn_sock_connect_cb cb)
{
    int r;
    s->on_connect = cb;
    /* Only outgoing connections pay for a connect request, and only while connecting. */
    uv_connect_t *creq = cn_xmalloc(sizeof(*creq));
    creq->data = s;
    if (addr->sa_family == AF_UNIX) {
        r = uv_pipe_init(loop, &s->u.pipe, 0);
        if (r != 0) {
            cn_free(creq);
            return map_uv(r);
        }
        s->is_unix = 1;
        s->u.handle.data = s;
        uv_pipe_connect(creq, &s->u.pipe, ((const struct sockaddr_un *)addr)->sun_path,
                        on_connect_done);
        return CAIRN_OK;
    }
    r = uv_tcp_init(loop, &s->u.tcp);
    if (r != 0) {
        cn_free(creq);
        return map_uv(r);
    }
    s->u.handle.data = s;
    uv_tcp_nodelay(&s->u.tcp, 1);
    r = uv_tcp_connect(creq, &s->u.tcp, addr, on_connect_done);
    if (r != 0) {
        /* The handle is initialised: the caller must still close it. */
        cn_free(creq);
        return map_uv(r);
    }
    return CAIRN_OK;
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    cn_sock_t *s = h->data;
    (void)suggested;
    if (s->tls != NULL) {
        cn_tls_sock_alloc(s, out);
        return;
    }
    size_t want = s->hold ? 0 : (s->read_chunk ? s->read_chunk : 16384);
    size_t room_limit = s->rbuf_limit;
    if (room_limit != 0 && s->rbuf.len + want > room_limit)
        want = room_limit > s->rbuf.len ? room_limit - s->rbuf.len : 0;
    if (want == 0 || cn_buf_reserve(&s->rbuf, want, 0) != CAIRN_OK) {
        out->base = NULL;
        out->len = 0;
        return;
    }
    out->base = cn_buf_tail(&s->rbuf);
    out->len = cn_buf_room(&s->rbuf);
}

/* libuv reports UV_EOF without reading when epoll says POLLHUP after a partial read, so a
 * reset that follows data can arrive as EOF. The pending socket error tells them apart: a
 * reset is never the clean end of a close-delimited body. */
static cairn_err_t
eof_or_reset(uv_stream_t *st)
{
    uv_os_fd_t fd;
    int err = 0;
    socklen_t len = sizeof(err);
    if (uv_fileno((uv_handle_t *)st, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return CAIRN_ECLOSED;
    return err == ECONNRESET ? CAIRN_ERESET : CAIRN_ECLOSED;
}

static void
read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    cn_sock_t *s = st->data;
    (void)buf;
    if (nread == 0) {
        if (s->rbuf.len == 0)
            cn_buf_fini(&s->rbuf);
        return;
    }
    if (nread == UV_ENOBUFS) {
        /* The buffer is full: the reader must consume before more is read. */
        cn_sock_read_stop(s);
        return;
    }
    if (s->tls != NULL && nread < 0) {
        cn_tls_sock_end(s, nread == UV_EOF ? eof_or_reset(st) : map_uv((int)nread));
        return;
    }
    if (s->tls != NULL) {
        cn_tls_sock_input(s, (size_t)nread);
        return;
    }
    if (nread < 0) {
        cn_sock_read_stop(s);
        if (s->rbuf.len == 0)
            cn_buf_fini(&s->rbuf);
        s->on_read(s, nread == UV_EOF ? eof_or_reset(st) : map_uv((int)nread));
        return;
    }
    cn_buf_commit(&s->rbuf, (size_t)nread);
    s->on_read(s, CAIRN_OK);
}

void
cn_sock_read_start(cn_sock_t *s)
{
    if (s->reading || s->closing)
        return;
    if (uv_read_start(&s->u.stream, alloc_cb, read_cb) == 0)
        s->reading = 1;
    if (s->reading && s->tls != NULL)
        cn_tls_sock_read_started(s);
}

void
cn_sock_read_stop(cn_sock_t *s)
{
    if (!s->reading)
        return;
    uv_read_stop(&s->u.stream);
    s->reading = 0;
}

static void
write_cb(uv_write_t *req, int status)
{
    cn_sock_t *s = req->data;
    s->writing = 0;
    if (s->closing)
        return;
    s->on_write(s, map_uv(status));
}

cairn_err_t
cn_sock_write(cn_sock_t *s, const cairn_iov_t *iov, size_t n)
{
    CN_ASSERT(!s->writing);
    if (s->closing)
        return CAIRN_ECLOSED;
    if (s->tls != NULL)
        return cn_tls_sock_write(s, iov, n);
    s->wreq.data = s;
    /* cairn_iov_t has the layout of uv_buf_t (struct iovec) on Unix. */
    int r = uv_write(&s->wreq, &s->u.stream, (const uv_buf_t *)iov, (unsigned)n, write_cb);
    if (r != 0)
        return map_uv(r);
    s->writing = 1;
    return CAIRN_OK;
}

ssize_t
cn_sock_try_write(cn_sock_t *s, const cairn_iov_t *iov, size_t n)
{
    if (s->writing || s->closing)
        return 0;
    if (s->tls != NULL)
        return cn_tls_sock_try_write(s, iov, n);
    int r = uv_try_write(&s->u.stream, (const uv_buf_t *)iov, (unsigned)n);
    if (r == UV_EAGAIN)
        return 0;
    return r;
}

/* Is iov[i] worth a sendfile (inside the file-backed region, and large)? */
static bool
file_backed(const cairn_iov_t *v, int *fd, off_t *off)
{
    return v->len >= CN_SENDFILE_MIN && cn_fmem_locate(v->base, v->len, fd, off);
}

/* Like cn_sock_try_write, but slices in the file-backed region go out with sendfile (the
 * kernel takes page references instead of copying) and the memory slices before them with
 * sendmsg(MSG_MORE), so the head and the body still leave in full segments. Returns the
 * bytes written (short when the socket is full) or < 0 on error. */
/* Adds the result @w of a send of @want bytes to *@total; false when the caller must stop
 * (socket full, short write, or an error, which makes *@total -1 if nothing was sent). */
static bool
sent(ssize_t w, size_t want, ssize_t *total)
{
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && *total == 0)
            *total = -1;
        return false;
    }
    *total += w;
    return (size_t)w == want;
}

static ssize_t
send_now(cn_sock_t *s, const cairn_iov_t *iov, size_t n)
{
    int sfd, ffd;
    off_t off;
    size_t first_file = 0;
    if (s->writing || s->closing)
        return 0;
    while (first_file < n && !file_backed(&iov[first_file], &ffd, &off))
        first_file++;
    if (first_file == n || s->is_unix || uv_fileno(&s->u.handle, &sfd) != 0)
        return cn_sock_try_write(s, iov, n);
    ssize_t total = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        size_t want = 0;
        while (j < n && !file_backed(&iov[j], &ffd, &off))
            want += iov[j++].len;
        if (j > i) {
            struct msghdr mh = {.msg_iov = (struct iovec *)(iov + i), .msg_iovlen = j - i};
            int flags = MSG_DONTWAIT | MSG_NOSIGNAL | (j < n ? MSG_MORE : 0);
            if (!sent(sendmsg(sfd, &mh, flags), want, &total))
                return total;
            i = j;
            continue;
        }
        /* iov[i] is file-backed (ffd, off); adjacent slots are sent in one call. */
        size_t len = iov[i].len;
        int fd2;
        off_t off2;
        for (j = i + 1; j < n && file_backed(&iov[j], &fd2, &off2) && off2 == off + (off_t)len; j++)
            len += iov[j].len;
        if (!sent(sendfile(sfd, ffd, &off, len), len, &total))
            return total;
        i = j;
    }
    return total;
}

enum cn_sock_send_result
cn_sock_send(cn_sock_t *s, cairn_iov_t *iov, size_t n)
{
    if (s->tls != NULL)
        return s->writing || s->closing ? CN_SOCK_FAILED : cn_tls_sock_send(s, iov, n);
    ssize_t w = send_now(s, iov, n);
    if (w < 0)
        return CN_SOCK_FAILED;
    size_t first = 0;
    while (first < n && (size_t)w >= iov[first].len) {
        w -= (ssize_t)iov[first].len;
        first++;
    }
    if (first == n)
        return CN_SOCK_SENT;
    iov[first].base += w;
    iov[first].len -= (size_t)w;
    return cn_sock_write(s, iov + first, n - first) == CAIRN_OK ? CN_SOCK_PENDING : CN_SOCK_FAILED;
}

static void
close_cb(uv_handle_t *h)
{
    cn_sock_t *s = h->data;
    cn_buf_fini(&s->rbuf);
    if (s->on_close)
        s->on_close(s);
}

void
cn_sock_close(cn_sock_t *s, bool reset)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->reading = 0;
    if (s->tls != NULL)
        cn_tls_sock_close(s);
    if (reset && !s->is_unix && uv_tcp_close_reset(&s->u.tcp, close_cb) == 0)
        return;
    uv_close(&s->u.handle, close_cb);
}

void
cn_sock_close_notify(cn_sock_t *s)
{
    if (s->tls != NULL && !s->closing)
        cn_tls_sock_close_notify(s);
}

void
cn_sock_tune(cn_sock_t *s)
{
    if (!s->is_unix)
        uv_tcp_nodelay(&s->u.tcp, 1);
}

void
cn_sock_peer(cn_sock_t *s, char *out, size_t n, struct sockaddr_storage *ss)
{
    int len = sizeof(*ss);
    memset(ss, 0, sizeof(*ss));
    if (s->is_unix || uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)ss, &len) != 0) {
        snprintf(out, n, "unix");
        ss->ss_family = AF_UNIX;
        return;
    }
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)n);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)n);
}
