/* SPDX-License-Identifier: MIT */
/* TLS contexts from the configuration. A server context is a list of OpenSSL contexts, one
 * per set of names (an RSA and an ECDSA certificate for the same names share one, and OpenSSL
 * picks by what the client supports); the servername callback switches to the context whose
 * names match the client's SNI (exact, then *.wildcard), else the first stays. A client
 * context verifies the origin (CA file or the system store) and remembers the last session
 * for resumption. Contexts are shared by every worker and refcounted: a configuration
 * generation holds them, connections in progress keep theirs across a reload. */
#include "net/tls_int.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"

/* Modern defaults (Mozilla "intermediate" for TLS 1.2; TLS 1.3 suites are OpenSSL's). */
#define DEFAULT_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_GROUPS "X25519:P-256:P-384"

static void
set_err(char *err, size_t errlen, const char *what, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    char reason[160];
    reason[0] = '\0';
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s%s%s", what, path ? " " : "", path ? path : "",
             reason[0] ? ": " : "", reason);
}

static void
base_options(SSL_CTX *c, unsigned min, unsigned max)
{
    SSL_CTX_set_min_proto_version(c, (int)min);
    SSL_CTX_set_max_proto_version(c, (int)max);
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set1_groups_list(c, DEFAULT_GROUPS);
    SSL_CTX_set_max_early_data(c, 0); /* 0-RTT off */
}

/* ALPN: http/1.1 (h2 comes with HTTP/2). */
static int
select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}

/* The DNS names of @x (SANs; the CN when there is none), lower-cased, in @out. */
static size_t
cert_names(X509 *x, char names[][256], size_t max)
{
    size_t n = 0;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && n < max; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS)
            continue;
        const ASN1_STRING *s = g->d.dNSName;
        int len = ASN1_STRING_length(s);
        if (len <= 0 || len >= 256)
            continue;
        memcpy(names[n], ASN1_STRING_get0_data(s), (size_t)len);
        names[n++][len] = '\0';
    }
    GENERAL_NAMES_free(sans);
    if (n == 0 && max > 0 &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, names[0], 256) > 0)
        n = 1;
    for (size_t i = 0; i < n; i++)
        for (char *p = names[i]; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    return n;
}

static bool
same_names(const cn_tls_slot_t *slot, char names[][256], size_t n)
{
    if (slot->n_names != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(slot->names[i], names[i]) != 0)
            return false;
    return true;
}

/* @host (@len bytes) against a certificate name: exact, or "*.rest" for one label. */
static bool
name_fits(const char *pat, const char *host, size_t len)
{
    size_t pl = strlen(pat);
    if (pl == len && strncasecmp(pat, host, len) == 0)
        return true;
    if (pl < 3 || pat[0] != '*' || pat[1] != '.')
        return false;
    const char *dot = memchr(host, '.', len);
    return dot != NULL && (size_t)(host + len - dot) == pl - 1 &&
           strncasecmp(dot, pat + 1, pl - 1) == 0;
}

/* The slot with an exact name @host (@wildcard false) or a wildcard that covers it. */
static const cn_tls_slot_t *
slot_for(const cn_tls_ctx_t *ctx, const char *host, bool wildcard)
{
    size_t len = strlen(host);
    for (size_t i = 0; i < ctx->n_slots; i++)
        for (size_t j = 0; j < ctx->slots[i].n_names; j++) {
            const char *pat = ctx->slots[i].names[j];
            if ((pat[0] == '*') == wildcard && name_fits(pat, host, len))
                return &ctx->slots[i];
        }
    return NULL;
}

/* SNI: the exact name first, then a wildcard, else the first certificate stays. */
static int
on_servername(SSL *ssl, int *alert, void *arg)
{
    cn_tls_ctx_t *ctx = arg;
    (void)alert;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;
    const cn_tls_slot_t *hit = slot_for(ctx, name, false);
    if (hit == NULL)
        hit = slot_for(ctx, name, true);
    if (hit != NULL && hit->ssl_ctx != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, hit->ssl_ctx);
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *
new_server_ssl_ctx(const cn_tls_server_conf_t *conf, cn_tls_ctx_t *ctx, char *err, size_t errlen)
{
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (c == NULL) {
        set_err(err, errlen, "cannot create a TLS context", NULL);
        return NULL;
    }
    base_options(c, conf->min_version, conf->max_version);
    static const unsigned char sid[] = "cairn";
    SSL_CTX_set_session_id_context(c, sid, sizeof(sid) - 1);
    SSL_CTX_set_alpn_select_cb(c, select_alpn, NULL);
    /* Resumption is stateless: tickets under the shared, rotating keys, no session cache. */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    cn_tls_tickets_attach(c);
    SSL_CTX_set_tlsext_servername_callback(c, on_servername);
    SSL_CTX_set_tlsext_servername_arg(c, ctx);
    if (SSL_CTX_set_cipher_list(c, conf->ciphers ? conf->ciphers : DEFAULT_CIPHERS) != 1) {
        set_err(err, errlen, "invalid cipher list", NULL);
        SSL_CTX_free(c);
        return NULL;
    }
    if (conf->client_ca != NULL) {
        if (SSL_CTX_load_verify_locations(c, conf->client_ca, NULL) != 1) {
            set_err(err, errlen, "cannot load client_ca", conf->client_ca);
            SSL_CTX_free(c);
            return NULL;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(conf->client_ca);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(c, names);
        int mode = SSL_VERIFY_PEER | (conf->client_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
        SSL_CTX_set_verify(c, mode, NULL);
    }
    return c;
}

/* Loads one certificate and its key into the slot for its names (a new slot or one with the
 * same names). */
static bool
add_cert(cn_tls_ctx_t *ctx, const cn_tls_server_conf_t *conf, const cn_tls_cert_conf_t *cc,
         char *err, size_t errlen)
{
    BIO *b = BIO_new_file(cc->cert, "r");
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (x == NULL) {
        set_err(err, errlen, "not a PEM certificate:", cc->cert);
        return false;
    }
    char names[CN_TLS_MAX_NAMES][256];
    size_t n = cert_names(x, names, CN_TLS_MAX_NAMES);
    int64_t left = 0;
    const ASN1_TIME *na = X509_get0_notAfter(x);
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, na) == 1)
        left = (int64_t)days * 86400 + secs;
    X509_free(x);
    cn_tls_slot_t *slot = NULL;
    for (size_t i = 0; i < ctx->n_slots && slot == NULL; i++)
        if (same_names(&ctx->slots[i], names, n))
            slot = &ctx->slots[i];
    if (slot == NULL) {
        if (ctx->n_slots == CN_TLS_MAX_SLOTS) {
            snprintf(err, errlen, "too many certificates (at most %d)", CN_TLS_MAX_SLOTS);
            return false;
        }
        slot = &ctx->slots[ctx->n_slots];
        memset(slot, 0, sizeof(*slot));
        slot->ssl_ctx = new_server_ssl_ctx(conf, ctx, err, errlen);
        if (slot->ssl_ctx == NULL)
            return false;
        ctx->n_slots++;
        slot->n_names = n;
        memcpy(slot->names, names, n * sizeof(names[0]));
    }
    if (SSL_CTX_use_certificate_chain_file(slot->ssl_ctx, cc->cert) != 1) {
        set_err(err, errlen, "cannot load certificate", cc->cert);
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(slot->ssl_ctx, cc->key, SSL_FILETYPE_PEM) != 1) {
        set_err(err, errlen, "cannot load key", cc->key);
        return false;
    }
    if (SSL_CTX_check_private_key(slot->ssl_ctx) != 1) {
        set_err(err, errlen, "the key does not match the certificate", cc->cert);
        return false;
    }
    if (ctx->n_certs == 0 || left < ctx->expiry)
        ctx->expiry = left;
    ctx->n_certs++;
    return true;
}

cn_tls_ctx_t *
cn_tls_server_new(const cn_tls_server_conf_t *conf, char *err, size_t errlen)
{
    cn_tls_ctx_t *ctx = cn_xcalloc(1, sizeof(*ctx));
    atomic_init(&ctx->refcnt, 1);
    ctx->server = true;
    ctx->strict_sni = conf->strict_sni;
    ctx->handshake_timeout_ms = conf->handshake_timeout_ms;
    pthread_mutex_init(&ctx->lock, NULL);
    for (size_t i = 0; i < conf->n_certs; i++) {
        if (!add_cert(ctx, conf, &conf->certs[i], err, errlen)) {
            cn_tls_ctx_unref(ctx);
            return NULL;
        }
    }
    return ctx;
}

/* A new client session: kept as the one the next connection of this context resumes. */
static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    cn_tls_ctx_t *ctx = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0);
    if (ctx == NULL)
        return 0;
    pthread_mutex_lock(&ctx->lock);
    SSL_SESSION_free(ctx->last_session);
    ctx->last_session = sess;
    pthread_mutex_unlock(&ctx->lock);
    return 1; /* we keep the reference */
}

cn_tls_ctx_t *
cn_tls_client_new(const cn_tls_client_conf_t *conf, char *err, size_t errlen)
{
    cn_tls_ctx_t *ctx = cn_xcalloc(1, sizeof(*ctx));
    atomic_init(&ctx->refcnt, 1);
    pthread_mutex_init(&ctx->lock, NULL);
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    ctx->slots[0].ssl_ctx = c;
    ctx->n_slots = 1;
    if (c == NULL) {
        set_err(err, errlen, "cannot create a TLS context", NULL);
        cn_tls_ctx_unref(ctx);
        return NULL;
    }
    base_options(c, TLS1_2_VERSION, TLS1_3_VERSION);
    SSL_CTX_set_ex_data(c, 0, ctx);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, on_new_session);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(c, alpn, sizeof(alpn) - 1);
    ctx->verify = conf->verify;
    if (conf->verify) {
        int ok = conf->ca ? SSL_CTX_load_verify_locations(c, conf->ca, NULL)
                          : SSL_CTX_set_default_verify_paths(c);
        if (ok != 1) {
            set_err(err, errlen, "cannot load ca", conf->ca);
            cn_tls_ctx_unref(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    }
    if (conf->cert != NULL && (SSL_CTX_use_certificate_chain_file(c, conf->cert) != 1 ||
                               SSL_CTX_use_PrivateKey_file(c, conf->key, SSL_FILETYPE_PEM) != 1 ||
                               SSL_CTX_check_private_key(c) != 1)) {
        set_err(err, errlen, "cannot load the client certificate or its key", conf->cert);
        cn_tls_ctx_unref(ctx);
        return NULL;
    }
    if (conf->sni != NULL)
        snprintf(ctx->sni, sizeof(ctx->sni), "%s", conf->sni);
    return ctx;
}

void
cn_tls_ctx_ref(cn_tls_ctx_t *ctx)
{
    atomic_fetch_add(&ctx->refcnt, 1);
}

void
cn_tls_ctx_unref(cn_tls_ctx_t *ctx)
{
    if (ctx == NULL || atomic_fetch_sub(&ctx->refcnt, 1) != 1)
        return;
    for (size_t i = 0; i < ctx->n_slots; i++)
        SSL_CTX_free(ctx->slots[i].ssl_ctx);
    SSL_SESSION_free(ctx->last_session);
    pthread_mutex_destroy(&ctx->lock);
    cn_free(ctx);
}

int64_t
cn_tls_ctx_expiry(const cn_tls_ctx_t *ctx)
{
    return ctx->expiry;
}

SSL_SESSION *
cn_tls_ctx_session(cn_tls_ctx_t *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    SSL_SESSION *s = ctx->last_session;
    if (s != NULL && !SSL_SESSION_is_resumable(s))
        s = NULL;
    if (s != NULL)
        SSL_SESSION_up_ref(s);
    pthread_mutex_unlock(&ctx->lock);
    return s;
}

bool
cn_tls_host_fits(cn_sock_t *s, const char *host, size_t len)
{
    cn_tls_conn_t *t = s->tls;
    if (t == NULL || !t->ctx->strict_sni || len == 0)
        return true; /* a request without Host has nothing to misdirect */
    const char *colon = memchr(host, ':', len);
    if (host[0] != '[' && colon != NULL)
        len = (size_t)(colon - host);
    if (len > 0 && host[len - 1] == '.')
        len--;
    SSL_CTX *served = SSL_get_SSL_CTX(t->ssl);
    for (size_t i = 0; i < t->ctx->n_slots; i++) {
        const cn_tls_slot_t *slot = &t->ctx->slots[i];
        if (slot->ssl_ctx != served)
            continue;
        for (size_t j = 0; j < slot->n_names; j++)
            if (name_fits(slot->names[j], host, len))
                return true;
    }
    return false;
}
