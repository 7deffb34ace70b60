/* SPDX-License-Identifier: MIT */
/* The tls sections of listeners and upstreams. The TLS contexts are built at load (net/tls.h),
 * so a bad or mismatched key, an unreadable file or a certificate that is not one is a
 * positioned error of this configuration, and the context belongs to this generation:
 * connections in progress keep theirs across a reload. */
#include <errno.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/build_int.h"
#include "config/config.h"
#include "config/dom.h"
#include "net/tls.h"

static void
unref_ctx(void *ctx)
{
    cn_tls_ctx_unref(ctx);
}

/* The context built from this section, or its error at @node; owned by the generation. */
static struct cn_tls_ctx *
owned_ctx(cn_conf_walk_t *w, const cn_dom_node_t *node, struct cn_tls_ctx *ctx, const char *err)
{
    if (ctx == NULL) {
        cn_conf_error(w, node, "%s", err);
        return NULL;
    }
    cn_arena_defer(w->arena, unref_ctx, ctx);
    return ctx;
}

static bool
readable(cn_conf_walk_t *w, const cn_dom_node_t *node, const char *key, const char *path)
{
    if (path == NULL || access(path, R_OK) == 0)
        return true;
    cn_conf_unreadable(w, node, key, path, strerror(errno));
    return false;
}

/* ---- listeners ---------------------------------------------------------------------------- */

static const cn_conf_field_t cert_fields[] = {
    CN_CONF_STR("cert", cn_conf_tls_cert_t, cert, NULL, CN_REQUIRED, "PEM certificate chain file."),
    CN_CONF_STR("key", cn_conf_tls_cert_t, key, NULL, CN_REQUIRED, "PEM private key file."),
    CN_CONF_END,
};

static const char *const client_verify_names[] = {"required", "optional", NULL};

const cn_conf_field_t cn_conf_listener_tls_fields[] = {
    CN_CONF_STR("cert", cn_conf_listener_t, tls_cert, NULL, CN_NULLABLE,
                "PEM certificate chain file (one certificate; or use certificates)."),
    CN_CONF_STR("key", cn_conf_listener_t, tls_key, NULL, CN_NULLABLE, "PEM private key file."),
    CN_CONF_LIST("certificates", cn_conf_listener_t, tls_certs, n_tls_certs, cn_conf_tls_cert_t,
                 cert_fields, 0, NULL,
                 "Several certificates, chosen by the client's SNI: exact name, then "
                 "*.wildcard, then the first; an RSA and an ECDSA certificate for the same "
                 "names are both served."),
    CN_CONF_STRLIST("protocols", cn_conf_listener_t, tls_protocols, n_tls_protocols, 0, NULL,
                    "TLS versions: TLSv1.2, TLSv1.3 (default both)."),
    CN_CONF_STR("ciphers", cn_conf_listener_t, tls_ciphers, NULL, CN_NULLABLE,
                "TLS 1.2 cipher list (OpenSSL syntax); default: ECDHE with AES-GCM or "
                "ChaCha20-Poly1305."),
    CN_CONF_STR("client_ca", cn_conf_listener_t, tls_client_ca, NULL, CN_NULLABLE,
                "mTLS: PEM file of the CAs client certificates are verified against."),
    CN_CONF_ENUM("client_verify", cn_conf_listener_t, tls_client_verify, client_verify_names,
                 "required",
                 "With client_ca: required (no valid certificate, no handshake) or optional."),
    CN_CONF_MSEC("handshake_timeout", cn_conf_listener_t, tls_handshake_timeout_ms, "10s", 1, 0,
                 "Time allowed for the TLS handshake; the request head then has "
                 "server.header_timeout."),
    CN_CONF_BOOL("strict_sni", cn_conf_listener_t, tls_strict_sni, "false",
                 "Answer 421 to a request whose Host is not a name of the certificate the "
                 "connection was served."),
    CN_CONF_END,
};

static bool
version_of(const char *s, unsigned *v)
{
    if (strcmp(s, "TLSv1.2") == 0)
        *v = TLS1_2_VERSION;
    else if (strcmp(s, "TLSv1.3") == 0)
        *v = TLS1_3_VERSION;
    else
        return false;
    return true;
}

static bool
protocol_range(cn_conf_walk_t *w, const cn_dom_node_t *node, const cn_conf_listener_t *l,
               cn_tls_server_conf_t *sc)
{
    sc->min_version = TLS1_2_VERSION;
    sc->max_version = TLS1_3_VERSION;
    if (l->n_tls_protocols == 0)
        return true;
    sc->min_version = TLS1_3_VERSION;
    sc->max_version = TLS1_2_VERSION;
    for (size_t i = 0; i < l->n_tls_protocols; i++) {
        unsigned v;
        if (!version_of(l->tls_protocols[i], &v)) {
            cn_conf_error_at_key(w, node, "protocols",
                                 "unsupported TLS version \"%s\" (TLSv1.2 or TLSv1.3)",
                                 l->tls_protocols[i]);
            return false;
        }
        sc->min_version = v < sc->min_version ? v : sc->min_version;
        sc->max_version = v > sc->max_version ? v : sc->max_version;
    }
    return true;
}

/* The certificates to load: cert/key, then the list. */
static size_t
cert_list(cn_conf_walk_t *w, const cn_dom_node_t *node, const cn_conf_listener_t *l,
          cn_tls_cert_conf_t *out, size_t max)
{
    size_t n = 0;
    if (l->tls_cert != NULL)
        out[n++] = (cn_tls_cert_conf_t){l->tls_cert, l->tls_key};
    for (size_t i = 0; i < l->n_tls_certs && n < max; i++)
        out[n++] = (cn_tls_cert_conf_t){l->tls_certs[i].cert, l->tls_certs[i].key};
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const char *key = l->tls_cert != NULL && i == 0 ? "cert" : "certificates";
        ok = readable(w, node, key, out[i].cert) && ok;
        ok =
            readable(w, node, l->tls_cert != NULL && i == 0 ? "key" : "certificates", out[i].key) &&
            ok;
    }
    return ok ? n : 0;
}

void
cn_conf_listener_tls_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    cn_conf_listener_t *l = obj;
    (void)index;
    if (node == NULL || node->kind != CN_DOM_MAP)
        return;
    if (l->tls_cert == NULL && l->tls_key == NULL && l->n_tls_certs == 0) {
        cn_conf_error(w, node, "set cert and key, or certificates");
        return;
    }
    if ((l->tls_cert == NULL) != (l->tls_key == NULL)) {
        cn_conf_error(w, node, "cert and key must be set together");
        return;
    }
    cn_tls_cert_conf_t certs[32];
    cn_tls_server_conf_t sc = {.certs = certs,
                               .ciphers = l->tls_ciphers,
                               .client_ca = l->tls_client_ca,
                               .client_required = l->tls_client_verify == 0,
                               .strict_sni = l->tls_strict_sni,
                               .handshake_timeout_ms = l->tls_handshake_timeout_ms};
    sc.n_certs = cert_list(w, node, l, certs, CN_ARRAY_LEN(certs));
    if (sc.n_certs == 0 || !protocol_range(w, node, l, &sc) ||
        !readable(w, node, "client_ca", l->tls_client_ca))
        return;
    char err[256] = "";
    l->tls_ctx = owned_ctx(w, node, cn_tls_server_new(&sc, err, sizeof(err)), err);
}

/* ---- upstreams ---------------------------------------------------------------------------- */

const cn_conf_field_t cn_conf_upstream_tls_fields[] = {
    CN_CONF_STR("sni", cn_conf_upstream_t, tls_sni, NULL, CN_NULLABLE,
                "Server name sent and verified; default: the host name of the first peer's "
                "address (none when it is an IP address)."),
    CN_CONF_STR("ca", cn_conf_upstream_t, tls_ca, NULL, CN_NULLABLE,
                "PEM file of the CAs the origin's certificate is verified against; default: the "
                "system trust store."),
    CN_CONF_BOOL("verify", cn_conf_upstream_t, tls_verify, "true",
                 "Verify the origin's certificate and name; false is logged at start."),
    CN_CONF_STR("cert", cn_conf_upstream_t, tls_cert, NULL, CN_NULLABLE,
                "Client certificate for mTLS to the origin (PEM chain)."),
    CN_CONF_STR("key", cn_conf_upstream_t, tls_key, NULL, CN_NULLABLE,
                "Private key of the client certificate."),
    CN_CONF_END,
};

/* "origin.example" of "origin.example:443"; NULL for an IP address or a unix socket. */
static const char *
peer_host(cn_arena_t *a, const cn_conf_upstream_t *u)
{
    if (u->n_peers == 0 || u->peers[0].addr.text == NULL)
        return NULL;
    const char *t = u->peers[0].addr.text;
    const char *colon = strrchr(t, ':');
    if (t[0] == '[' || strncmp(t, "unix:", 5) == 0 || colon == NULL)
        return NULL;
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - t), t);
    bool ip = true;
    for (const char *p = host; *p; p++)
        ip = ip && ((*p >= '0' && *p <= '9') || *p == '.');
    return ip ? NULL : cn_conf_strdup(a, host);
}

void
cn_conf_upstream_tls_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    cn_conf_upstream_t *u = obj;
    (void)index;
    if (node == NULL || node->kind != CN_DOM_MAP)
        return; /* a tls mapping, even an empty one, turns TLS on */
    if ((u->tls_cert == NULL) != (u->tls_key == NULL)) {
        cn_conf_error(w, node, "cert and key must be set together");
        return;
    }
    if (!readable(w, node, "ca", u->tls_ca) || !readable(w, node, "cert", u->tls_cert) ||
        !readable(w, node, "key", u->tls_key))
        return;
    cn_tls_client_conf_t cc = {.ca = u->tls_ca,
                               .verify = u->tls_verify,
                               .cert = u->tls_cert,
                               .key = u->tls_key,
                               .sni = u->tls_sni ? u->tls_sni : peer_host(w->arena, u)};
    char err[256] = "";
    u->tls_ctx = owned_ctx(w, node, cn_tls_client_new(&cc, err, sizeof(err)), err);
}

bool
cn_conf_listener_tls_shown(const void *obj)
{
    return ((const cn_conf_listener_t *)obj)->tls_ctx != NULL;
}

bool
cn_conf_upstream_tls_shown(const void *obj)
{
    return ((const cn_conf_upstream_t *)obj)->tls_ctx != NULL;
}
