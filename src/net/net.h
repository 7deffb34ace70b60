/* SPDX-License-Identifier: MIT */
/* The network layer: listening sockets and cn_sock_t, cairn's stream over libuv.
 * Nothing above src/net/ calls libuv stream functions directly. */
#ifndef CN_NET_NET_H
#define CN_NET_NET_H

#include <sys/socket.h>
#include <uv.h>

#include "core/buf.h"
#include "core/types.h"

typedef struct cn_sock cn_sock_t;

/** Called when bytes were appended to s->rbuf (status OK), or on EOF/error (status != OK). */
typedef void (*cn_sock_read_cb)(cn_sock_t *s, cairn_err_t status);
/** Called when the write started by cn_sock_write completed (or failed). */
typedef void (*cn_sock_write_cb)(cn_sock_t *s, cairn_err_t status);
/** Called once the handle is closed; the owner may free the memory holding @s now. */
typedef void (*cn_sock_close_cb)(cn_sock_t *s);
typedef void (*cn_sock_connect_cb)(cn_sock_t *s, cairn_err_t status);

struct cn_sock {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    cn_buf_t rbuf;
    size_t rbuf_limit; /* the most bytes ever buffered for reading */
    size_t read_chunk; /* bytes reserved per read */
    uv_write_t wreq;
    cn_sock_read_cb on_read;
    cn_sock_write_cb on_write;
    cn_sock_close_cb on_close;
    cn_sock_connect_cb on_connect;
    void *data;
    struct cn_tls_conn *tls;        /* the TLS layer, or NULL (net/tls.h) */
    struct cn_tls_ctx *tls_connect; /* cn_sock_connect() adds a client TLS layer */
    /* Optional: a server-side TLS handshake finished (ok) or failed. */
    void (*on_handshake)(cn_sock_t *s, bool ok);
    uint8_t is_unix : 1; /* 0 = TCP, 1 = unix socket */
    uint8_t reading : 1; /* uv_read_start is active */
    uint8_t writing : 1; /* one write in flight */
    uint8_t closing : 1; /* cn_sock_close was called */
    uint8_t hold : 1;    /* rbuf is lent out: reads stop (once) instead of moving it */
};

/** Initialises @s as an accepted connection from @server. Returns CAIRN_OK or an error. */
cairn_err_t cn_sock_accept(uv_stream_t *server, cn_sock_t *s, bool is_unix);
/** Starts an outgoing connection to @addr; @cb is called once. */
cairn_err_t cn_sock_connect(uv_loop_t *loop, cn_sock_t *s, const struct sockaddr *addr,
                            cn_sock_connect_cb cb);
/** Starts/stops delivering reads into s->rbuf. Idempotent. Staying armed is cheaper than
 *  toggling (each toggle is an epoll_ctl): while a slice of rbuf is lent out, set s->hold
 *  instead; a read that arrives meanwhile stops reading, and the owner restarts it. */
void cn_sock_read_start(cn_sock_t *s);
void cn_sock_read_stop(cn_sock_t *s);
/** Writes @n slices; they must stay valid until the write callback. One write at a time. */
cairn_err_t cn_sock_write(cn_sock_t *s, const cairn_iov_t *iov, size_t n);
/** Writes what the kernel takes right now without blocking; returns bytes written or <0. */
ssize_t cn_sock_try_write(cn_sock_t *s, const cairn_iov_t *iov, size_t n);

/** Slices at least this large that lie in the file-backed region (core/fmem.h) are sent
 *  with sendfile(2) by cn_sock_send; below it the extra system call costs about what the
 *  copy saves (hit-16k measured the same either way). */
#define CN_SENDFILE_MIN 32768

enum cn_sock_send_result {
    CN_SOCK_SENT = 1,    /* all written now: no write callback will come */
    CN_SOCK_PENDING = 0, /* the rest is queued: on_write runs when it is written */
    CN_SOCK_FAILED = -1,
};
/** Writes @n slices now as far as the kernel takes them and queues the rest with
 *  cn_sock_write, adjusting @iov in place (it must stay valid until the write callback).
 *  Most writes complete here, which spares libuv's write request and the epoll_ctl that
 *  re-arms after it. */
enum cn_sock_send_result cn_sock_send(cn_sock_t *s, cairn_iov_t *iov, size_t n);
/** The clean end of the stream before a shutdown: a TLS close_notify (nothing when plain). */
void cn_sock_close_notify(cn_sock_t *s);
/** Closes (deferred to the loop); on_close runs later. With @reset the peer gets an RST. */
void cn_sock_close(cn_sock_t *s, bool reset);
/** Disables Nagle etc. on TCP sockets. */
void cn_sock_tune(cn_sock_t *s);
/** The peer address as text ("127.0.0.1", "::1", "unix"). */
void cn_sock_peer(cn_sock_t *s, char *out, size_t n, struct sockaddr_storage *ss);

/* ---- listening sockets ---------------------------------------------------------------- */

/** Creates a bound, listening socket for @addr (SO_REUSEPORT for TCP so each worker can
 *  have its own). Returns the fd or a negative errno; @err gets a message on failure. */
int cn_listen_socket(const struct sockaddr *addr, socklen_t len, int backlog, char *err,
                     size_t errlen);
/** Parses a numeric "ip:port", "[ip6]:port" or "unix:/path" (no name resolution). */
bool cn_addr_parse_numeric(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/** Formats a sockaddr as "ip:port", "[ip6]:port" or "unix:/path". */
void cn_addr_format(const struct sockaddr *sa, char *out, size_t n);

#endif
