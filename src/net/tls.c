/* SPDX-License-Identifier: MIT */
/* The TLS layer under cn_sock_t. Ciphertext read from the socket goes into a memory BIO and
 * plaintext comes out of SSL_read into the socket's read buffer, under the same rules as a
 * plain read (read_chunk, rbuf_limit, hold); plaintext written goes through SSL_write into a
 * memory BIO whose bytes are written to the socket in order. An owner's write completes
 * (on_write) once its ciphertext is written, so backpressure is the same as on a plain
 * socket. The handshake runs as bytes arrive and never blocks the loop: a server owner sees
 * its first on_read after it, a client owner its on_connect. A failed handshake is logged once
 * (at info: clients fail handshakes all the time) and reported as CAIRN_ETLS. */
#include "net/tls_int.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

struct tls_wr {
    uv_write_t req;
    cn_sock_t *s;
    bool notify;
    size_t len;
    char data[];
};

static void deliver(cn_sock_t *s);

/* ---- writing ciphertext ------------------------------------------------------------------- */

static void
wr_done(uv_write_t *req, int status)
{
    struct tls_wr *w = req->data;
    cn_sock_t *s = w->s;
    bool notify = w->notify;
    cn_free(w);
    if (!notify)
        return;
    s->writing = 0;
    if (!s->closing)
        s->on_write(s, status == 0 ? CAIRN_OK : CAIRN_ECLOSED);
}

/* Writes the ciphertext the BIO holds: what the socket takes now, the rest queued in order.
 * With @notify the owner's on_write follows once all of it is written (*@sent_now says it
 * was written at once instead, and no callback follows). */
static cairn_err_t
flush(cn_sock_t *s, bool notify, bool *sent_now)
{
    cn_tls_conn_t *t = s->tls;
    char *data = NULL;
    size_t pending = (size_t)BIO_get_mem_data(t->wbio, &data);
    size_t off = 0;
    if (sent_now != NULL)
        *sent_now = false;
    /* Written from the BIO's own memory when the socket takes it: no copy, no allocation. */
    if (pending > 0 && s->u.stream.write_queue_size == 0) {
        uv_buf_t b = uv_buf_init(data, (unsigned)pending);
        int r = uv_try_write(&s->u.stream, &b, 1);
        if (r < 0 && r != UV_EAGAIN)
            return CAIRN_ECLOSED;
        off = r > 0 ? (size_t)r : 0;
    }
    if (off == pending && (sent_now != NULL || !notify)) {
        (void)BIO_reset(t->wbio);
        if (sent_now != NULL)
            *sent_now = true;
        return CAIRN_OK;
    }
    /* The rest is copied out and queued in order (the BIO's memory moves on the next write). */
    size_t rest = pending - off;
    struct tls_wr *w = cn_xmalloc(sizeof(*w) + rest + 1);
    if (rest > 0)
        memcpy(w->data, data + off, rest);
    (void)BIO_reset(t->wbio);
    w->s = s;
    w->notify = notify;
    w->len = rest;
    w->req.data = w;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
    if (uv_write(&w->req, &s->u.stream, &b, 1, wr_done) != 0) {
        cn_free(w);
        return CAIRN_ECLOSED;
    }
    if (notify)
        s->writing = 1;
    return CAIRN_OK;
}

static cairn_err_t
encrypt(cn_sock_t *s, const cairn_iov_t *iov, size_t n, size_t *total)
{
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t w = 0;
        if (iov[i].len > 0 && SSL_write_ex(s->tls->ssl, iov[i].base, iov[i].len, &w) != 1)
            return CAIRN_ETLS;
        *total += w;
    }
    return CAIRN_OK;
}

cairn_err_t
cn_tls_sock_write(cn_sock_t *s, const cairn_iov_t *iov, size_t n)
{
    size_t total;
    if (s->tls->failed || encrypt(s, iov, n, &total) != CAIRN_OK)
        return CAIRN_ETLS;
    return flush(s, true, NULL);
}

ssize_t
cn_tls_sock_try_write(cn_sock_t *s, const cairn_iov_t *iov, size_t n)
{
    size_t total;
    if (s->tls->failed || !s->tls->established || encrypt(s, iov, n, &total) != CAIRN_OK)
        return -1;
    return flush(s, false, NULL) == CAIRN_OK ? (ssize_t)total : -1;
}

enum cn_sock_send_result
cn_tls_sock_send(cn_sock_t *s, const cairn_iov_t *iov, size_t n)
{
    size_t total;
    bool now = false;
    if (s->tls->failed || encrypt(s, iov, n, &total) != CAIRN_OK ||
        flush(s, true, &now) != CAIRN_OK)
        return CN_SOCK_FAILED;
    return now ? CN_SOCK_SENT : CN_SOCK_PENDING;
}

/* ---- the handshake ------------------------------------------------------------------------ */

static void
describe_failure(cn_tls_conn_t *t)
{
    long v = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();
    char reason[160] = "";
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    if (v != X509_V_OK)
        snprintf(t->error, sizeof(t->error), "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    else
        snprintf(t->error, sizeof(t->error), "%s", reason[0] ? reason : "handshake failed");
}

static void
fail(cn_sock_t *s)
{
    cn_tls_conn_t *t = s->tls;
    if (t->failed)
        return;
    t->failed = true;
    describe_failure(t);
    CN_LOG_INFO(0, "TLS %s failed: %s", t->client ? "connect" : "handshake", t->error);
    if (!t->client && !t->established && s->on_handshake != NULL)
        s->on_handshake(s, false);
    if (t->client && !t->established)
        s->on_connect(s, CAIRN_ETLS);
    else
        s->on_read(s, CAIRN_ETLS);
}

/* Runs the handshake on what arrived; true once it is done (and a client owner told). */
static bool
handshake(cn_sock_t *s)
{
    cn_tls_conn_t *t = s->tls;
    int r = SSL_do_handshake(t->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    if (flush(s, false, NULL) != CAIRN_OK && e == SSL_ERROR_NONE)
        e = SSL_ERROR_SYSCALL;
    if (e == SSL_ERROR_WANT_READ)
        return false;
    if (e != SSL_ERROR_NONE) {
        fail(s);
        return false;
    }
    t->established = true;
    if (!t->client)
        uv_timer_stop(&t->drain);
    if (!t->client && s->on_handshake != NULL)
        s->on_handshake(s, true);
    if (t->client) {
        cn_sock_read_stop(s); /* the owner starts reading when it wants the response */
        s->on_connect(s, CAIRN_OK);
        return false;
    }
    return true;
}

/* ---- reading plaintext -------------------------------------------------------------------- */

static bool
plaintext_pending(const cn_tls_conn_t *t)
{
    return SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0;
}

/* SSL_read into the read buffer: >0 bytes, 0 nothing now, <0 the end (*@err set). */
static ssize_t
read_some(cn_sock_t *s, cairn_err_t *err)
{
    size_t want = s->read_chunk ? s->read_chunk : 16384;
    if (s->rbuf_limit != 0 && s->rbuf.len + want > s->rbuf_limit)
        want = s->rbuf_limit > s->rbuf.len ? s->rbuf_limit - s->rbuf.len : 0;
    if (want == 0 || cn_buf_reserve(&s->rbuf, want, 0) != CAIRN_OK)
        return 0;
    size_t got = 0;
    int r = SSL_read_ex(s->tls->ssl, cn_buf_tail(&s->rbuf), cn_buf_room(&s->rbuf), &got);
    if (r == 1) {
        cn_buf_commit(&s->rbuf, got);
        return (ssize_t)got;
    }
    int e = SSL_get_error(s->tls->ssl, r);
    flush(s, false, NULL); /* SSL_read may have answered a key update */
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    *err = e == SSL_ERROR_ZERO_RETURN ? CAIRN_ECLOSED : CAIRN_ETLS;
    return -1;
}

static void
deliver(cn_sock_t *s)
{
    cn_tls_conn_t *t = s->tls;
    while (s->reading && !s->hold && !s->closing && !t->failed) {
        cairn_err_t err = CAIRN_OK;
        ssize_t n = read_some(s, &err);
        if (n > 0) {
            s->on_read(s, CAIRN_OK);
            continue;
        }
        if (n < 0 && err == CAIRN_ETLS) {
            fail(s);
            return;
        }
        if (n < 0 || (t->eof != CAIRN_OK && !plaintext_pending(t))) {
            cairn_err_t end = n < 0 ? err : t->eof;
            cn_sock_read_stop(s);
            s->on_read(s, end);
            return;
        }
        if (s->rbuf_limit != 0 && s->rbuf.len >= s->rbuf_limit) {
            cn_sock_read_stop(s); /* as a plain socket does when its buffer is full */
            return;
        }
        return; /* OpenSSL needs more ciphertext */
    }
}

static void
on_drain(uv_timer_t *timer)
{
    cn_sock_t *s = timer->data;
    if (s != NULL && s->tls != NULL && !s->closing)
        deliver(s);
}

void
cn_tls_sock_input(cn_sock_t *s, size_t n)
{
    cn_tls_conn_t *t = s->tls;
    if (BIO_write(t->rbio, t->cbuf, (int)n) != (int)n) {
        fail(s);
        return;
    }
    if (!t->established && !handshake(s))
        return;
    deliver(s);
}

void
cn_tls_sock_end(cn_sock_t *s, cairn_err_t err)
{
    cn_tls_conn_t *t = s->tls;
    uv_read_stop(&s->u.stream);
    if (!t->established) {
        snprintf(t->error, sizeof(t->error), "connection closed during the handshake");
        t->failed = true;
        CN_LOG_INFO(0, "TLS %s failed: %s", t->client ? "connect" : "handshake", t->error);
        if (!t->client && s->on_handshake != NULL)
            s->on_handshake(s, false);
        if (t->client)
            s->on_connect(s, CAIRN_ETLS);
        else
            s->on_read(s, CAIRN_ETLS);
        return;
    }
    t->eof = err;
    deliver(s);
}

void
cn_tls_sock_alloc(cn_sock_t *s, uv_buf_t *out)
{
    if (s->hold && s->tls->established) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init(s->tls->cbuf, sizeof(s->tls->cbuf));
}

void
cn_tls_sock_read_started(cn_sock_t *s)
{
    cn_tls_conn_t *t = s->tls;
    if (t->established && (plaintext_pending(t) || t->eof != CAIRN_OK))
        uv_timer_start(&t->drain, on_drain, 0, 0);
}

/* ---- connections -------------------------------------------------------------------------- */

static cn_tls_conn_t *
conn_new(cn_sock_t *s, cn_tls_ctx_t *ctx, uv_loop_t *loop, bool client)
{
    cn_tls_conn_t *t = cn_xcalloc(1, sizeof(*t));
    t->ssl = SSL_new(ctx->slots[0].ssl_ctx);
    if (t->ssl == NULL) {
        cn_free(t);
        return NULL;
    }
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    cn_tls_ctx_ref(ctx);
    t->ctx = ctx;
    t->sock = s;
    t->client = client;
    uv_timer_init(loop, &t->drain);
    t->drain.data = s;
    s->tls = t;
    return t;
}

static void
on_handshake_timeout(uv_timer_t *timer)
{
    cn_sock_t *s = timer->data;
    if (s == NULL || s->tls == NULL || s->closing || s->tls->established)
        return;
    cn_tls_conn_t *t = s->tls;
    t->failed = true;
    snprintf(t->error, sizeof(t->error), "handshake timed out");
    CN_LOG_INFO(0, "TLS handshake failed: %s", t->error);
    if (s->on_handshake != NULL)
        s->on_handshake(s, false);
    s->on_read(s, CAIRN_ETLS);
}

cairn_err_t
cn_tls_accept(cn_sock_t *s, cn_tls_ctx_t *ctx)
{
    cn_tls_conn_t *t = conn_new(s, ctx, s->u.handle.loop, false);
    if (t == NULL)
        return CAIRN_ENOMEM;
    SSL_set_accept_state(t->ssl);
    /* The drain timer is idle until the handshake is done: it bounds the handshake first. */
    if (ctx->handshake_timeout_ms > 0)
        uv_timer_start(&t->drain, on_handshake_timeout, ctx->handshake_timeout_ms, 0);
    return CAIRN_OK;
}

void
cn_tls_sock_connect_prepare(cn_sock_t *s, cn_tls_ctx_t *ctx)
{
    s->tls_connect = ctx;
}

void
cn_tls_sock_connected(cn_sock_t *s)
{
    cn_tls_ctx_t *ctx = s->tls_connect;
    s->tls_connect = NULL;
    cn_tls_conn_t *t = conn_new(s, ctx, s->u.handle.loop, true);
    if (t == NULL) {
        s->on_connect(s, CAIRN_ENOMEM);
        return;
    }
    SSL_set_connect_state(t->ssl);
    if (ctx->sni[0] != '\0') {
        SSL_set_tlsext_host_name(t->ssl, ctx->sni);
        if (ctx->verify)
            SSL_set1_host(t->ssl, ctx->sni);
    }
    SSL_SESSION *sess = cn_tls_ctx_session(ctx);
    if (sess != NULL) {
        SSL_set_session(t->ssl, sess);
        SSL_SESSION_free(sess);
    }
    cn_sock_read_start(s);
    handshake(s);
}

void
cn_tls_sock_close_notify(cn_sock_t *s)
{
    cn_tls_conn_t *t = s->tls;
    if (!t->established || t->failed)
        return;
    SSL_shutdown(t->ssl); /* queues close_notify; the peer's is not waited for */
    flush(s, false, NULL);
}

static void
conn_freed(uv_handle_t *h)
{
    cn_tls_conn_t *t = (cn_tls_conn_t *)((char *)h - offsetof(cn_tls_conn_t, drain));
    /* Freed without a shutdown, OpenSSL would mark the session unusable: a connection that
     * worked keeps its session resumable (the last one of a client context is reused). */
    if (t->established && !t->failed)
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(t->ssl); /* frees both BIOs */
    cn_tls_ctx_unref(t->ctx);
    cn_free(t);
}

void
cn_tls_sock_close(cn_sock_t *s)
{
    cn_tls_conn_t *t = s->tls;
    t->drain.data = NULL;
    uv_close((uv_handle_t *)&t->drain, conn_freed);
}

const char *
cn_tls_sock_error(const cn_sock_t *s)
{
    return s->tls != NULL && s->tls->error[0] ? s->tls->error : NULL;
}

bool
cn_tls_get_info(cn_sock_t *s, cn_tls_info_t *out)
{
    cn_tls_conn_t *t = s->tls;
    memset(out, 0, sizeof(*out));
    if (t == NULL || !t->established)
        return false;
    out->version = SSL_get_version(t->ssl);
    out->cipher = SSL_get_cipher_name(t->ssl);
    out->sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
    out->resumed = SSL_session_reused(t->ssl) == 1;
    return true;
}

static void
append_san(char *out, size_t cap, const char *kind, const ASN1_STRING *v)
{
    size_t n = strlen(out);
    int len = ASN1_STRING_length(v);
    if (len <= 0 || n + (size_t)len + 16 >= cap)
        return;
    snprintf(out + n, cap - n, "%s%s:%.*s", n ? ", " : "", kind, len,
             (const char *)ASN1_STRING_get0_data(v));
}

bool
cn_tls_peer_identity(cn_sock_t *s, cn_tls_peer_t *out)
{
    memset(out, 0, sizeof(*out));
    cn_tls_conn_t *t = s->tls;
    if (t == NULL || !t->established)
        return false;
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (x == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK)
        return false;
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    int n = BIO_read(b, out->subject, sizeof(out->subject) - 1);
    out->subject[n > 0 ? n : 0] = '\0';
    BIO_free(b);
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            append_san(out->san, sizeof(out->san), "DNS", g->d.dNSName);
        else if (g->type == GEN_URI)
            append_san(out->san, sizeof(out->san), "URI", g->d.uniformResourceIdentifier);
        else if (g->type == GEN_EMAIL)
            append_san(out->san, sizeof(out->san), "email", g->d.rfc822Name);
    }
    GENERAL_NAMES_free(sans);
    unsigned char md[32];
    unsigned mdlen = 0;
    if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
        for (unsigned i = 0; i < mdlen && i < 32; i++)
            snprintf(out->fingerprint + 2 * i, 3, "%02x", md[i]);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex != NULL)
        snprintf(out->serial, sizeof(out->serial), "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    return true;
}
