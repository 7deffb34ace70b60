/* SPDX-License-Identifier: MIT */
/* TLS as a transport under cn_sock_t (OpenSSL 3 over memory BIOs, so handshakes and records
 * never block a loop): contexts built from the configuration (server certificates chosen by
 * SNI, client verification; client contexts with a CA, verification and a client
 * certificate), and the per-connection layer that cn_sock_t drives. A socket with a TLS layer
 * reads and writes plaintext like any other; its owner sees the handshake only as the first
 * read (server) or the connect callback (client) arriving after it. */
#ifndef CN_NET_TLS_H
#define CN_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/types.h"

typedef struct cn_sock cn_sock_t;
typedef struct cn_tls_ctx cn_tls_ctx_t;
typedef struct cn_tls_conn cn_tls_conn_t;

typedef struct cn_tls_cert_conf {
    const char *cert; /* PEM chain */
    const char *key;  /* PEM private key */
} cn_tls_cert_conf_t;

typedef struct cn_tls_server_conf {
    const cn_tls_cert_conf_t *certs; /* the first is the default */
    size_t n_certs;
    unsigned min_version, max_version; /* TLS1_2_VERSION / TLS1_3_VERSION */
    const char *ciphers;               /* TLS 1.2 list; NULL = cairn's default */
    const char *client_ca;             /* NULL = no client certificates */
    bool client_required;
    bool strict_sni;               /* cn_tls_host_fits() checks requests' Host */
    uint64_t handshake_timeout_ms; /* 0 = none */
} cn_tls_server_conf_t;

typedef struct cn_tls_client_conf {
    const char *ca; /* NULL = the system trust store */
    bool verify;
    const char *cert, *key; /* client certificate, or NULL */
    const char *sni;        /* server name sent and verified; NULL = none */
} cn_tls_client_conf_t;

/** A server context; NULL with a one-line reason in @err (a bad or mismatched key, an
 *  unreadable file...). Shared by every worker (tickets resume across them). */
cn_tls_ctx_t *cn_tls_server_new(const cn_tls_server_conf_t *conf, char *err, size_t errlen);
/** A client context for an upstream; NULL with a reason in @err. */
cn_tls_ctx_t *cn_tls_client_new(const cn_tls_client_conf_t *conf, char *err, size_t errlen);
void cn_tls_ctx_ref(cn_tls_ctx_t *ctx);
void cn_tls_ctx_unref(cn_tls_ctx_t *ctx);
/** Seconds until the earliest notAfter of the context's certificates (negative: expired). */
int64_t cn_tls_ctx_expiry(const cn_tls_ctx_t *ctx);

/** Session tickets of every listener are encrypted with process-wide keys that rotate every
 *  @rotation_ms (a ticket is accepted for up to two intervals). Any thread. */
void cn_tls_tickets_configure(uint64_t rotation_ms);
/** The ticket keys as bytes, for the new process of a graceful upgrade (which imports them,
 *  so tickets issued before the upgrade still resume after it). Returns the size, 0 when
 *  @cap is too small. */
#define CN_TLS_TICKETS_WIRE (2 * (1 + 16 + 32 + 32) + 8)
size_t cn_tls_tickets_export(unsigned char *out, size_t cap);
bool cn_tls_tickets_import(const unsigned char *in, size_t n);

/** Adds a TLS layer to an accepted socket (before its first read). */
cairn_err_t cn_tls_accept(cn_sock_t *s, cn_tls_ctx_t *ctx);

/** What a handshake established, for logs, hooks and routes (NULL/0 before it is done). */
typedef struct cn_tls_info {
    const char *version; /* "TLSv1.3" */
    const char *cipher;
    const char *sni; /* the client's server name */
    bool resumed;
} cn_tls_info_t;

/** Makes the next cn_sock_connect() of @s a TLS connection with @ctx: its connect callback
 *  comes after the handshake (CAIRN_ETLS when it fails; cn_tls_sock_error() says why). */
void cn_tls_sock_connect_prepare(cn_sock_t *s, cn_tls_ctx_t *ctx);
/** Why the TLS layer of @s failed, or NULL. */
const char *cn_tls_sock_error(const cn_sock_t *s);

/** The verified client certificate of a server connection. */
typedef struct cn_tls_peer {
    char subject[512];    /* RFC 2253 */
    char san[512];        /* "DNS:a.example, URI:spiffe://..., email:x@y" */
    char fingerprint[65]; /* SHA-256, lower-case hex */
    char serial[80];      /* hex */
} cn_tls_peer_t;

/** Fills @out when @s presented a certificate that was verified; false otherwise. */
bool cn_tls_peer_identity(cn_sock_t *s, cn_tls_peer_t *out);

/** With strict_sni: whether @host (a Host value, port allowed) is a name of the certificate
 *  the server connection @s was served. Always true without strict_sni. */
bool cn_tls_host_fits(cn_sock_t *s, const char *host, size_t len);

/** Fills @out for a socket with a TLS layer; false for a plain one. */
bool cn_tls_get_info(cn_sock_t *s, cn_tls_info_t *out);

#endif
