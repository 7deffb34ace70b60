/* SPDX-License-Identifier: MIT */
/* Inside the TLS transport: the context and connection objects shared by tls_ctx.c (contexts
 * from the configuration) and tls.c (the layer under cn_sock_t). Private to src/net/. */
#ifndef CN_NET_TLS_INT_H
#define CN_NET_TLS_INT_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "net/net.h"
#include "net/tls.h"

#define CN_TLS_MAX_SLOTS 32
#define CN_TLS_MAX_NAMES 16
#define CN_TLS_CBUF 16384

typedef struct cn_tls_slot {
    SSL_CTX *ssl_ctx;
    char names[CN_TLS_MAX_NAMES][256];
    size_t n_names;
} cn_tls_slot_t;

struct cn_tls_ctx {
    atomic_int refcnt;
    bool server;
    bool verify;
    bool strict_sni;
    uint64_t handshake_timeout_ms;
    cn_tls_slot_t slots[CN_TLS_MAX_SLOTS]; /* server: the first is the default */
    size_t n_slots;
    size_t n_certs;
    int64_t expiry;
    char sni[256]; /* client: the name sent and verified */
    pthread_mutex_t lock;
    SSL_SESSION *last_session; /* client: resumed by the next connection */
};

struct cn_tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* ciphertext in, ciphertext out */
    cn_tls_ctx_t *ctx;
    cn_sock_t *sock;
    uv_timer_t drain; /* delivers plaintext left in OpenSSL once reading resumes */
    bool client;
    bool established;
    bool failed;
    cairn_err_t eof; /* the socket ended: reported once the plaintext before it is read */
    char error[200];
    char cbuf[CN_TLS_CBUF]; /* ciphertext read from the socket */
};

/** Makes @c use the process-wide ticket keys (tls_ticket.c). */
void cn_tls_tickets_attach(SSL_CTX *c);

/** The session a new client connection of @ctx resumes (a reference), or NULL. */
SSL_SESSION *cn_tls_ctx_session(cn_tls_ctx_t *ctx);

/* The layer's side of cn_sock_t (sock.c calls these for a socket with s->tls). */
void cn_tls_sock_alloc(cn_sock_t *s, uv_buf_t *out);
void cn_tls_sock_input(cn_sock_t *s, size_t n);
void cn_tls_sock_end(cn_sock_t *s, cairn_err_t err);
cairn_err_t cn_tls_sock_write(cn_sock_t *s, const cairn_iov_t *iov, size_t n);
ssize_t cn_tls_sock_try_write(cn_sock_t *s, const cairn_iov_t *iov, size_t n);
enum cn_sock_send_result cn_tls_sock_send(cn_sock_t *s, const cairn_iov_t *iov, size_t n);
void cn_tls_sock_read_started(cn_sock_t *s);
void cn_tls_sock_close(cn_sock_t *s);
void cn_tls_sock_close_notify(cn_sock_t *s);
/** After the TCP connect of a socket prepared with cn_tls_sock_connect_prepare(). */
void cn_tls_sock_connected(cn_sock_t *s);

#endif
