/* SPDX-License-Identifier: MIT */
/* Route matching (first match wins) and header rules. Pure functions over the config. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <netinet/in.h>
#include <string.h>

#include "core/str.h"
#include "net/tls.h"
#include "engine/session.h"

static cairn_iov_t
host_without_port(cairn_iov_t h)
{
    if (h.len > 0 && h.base[0] == '[') {
        for (size_t i = 0; i < h.len; i++)
            if (h.base[i] == ']')
                return cn_iov(h.base, i + 1);
        return h;
    }
    for (size_t i = 0; i < h.len; i++)
        if (h.base[i] == ':')
            return cn_iov(h.base, i);
    return h;
}

/* @host against exact names and "*.suffix" patterns, case-insensitive. */
static bool
name_in(char **pats, size_t n, cairn_iov_t host)
{
    if (host.len > 0 && host.base[host.len - 1] == '.')
        host.len--; /* a fully qualified name with its root dot */
    for (size_t i = 0; i < n; i++) {
        const char *pat = pats[i];
        size_t pl = strlen(pat);
        if (pl > 2 && pat[0] == '*' && pat[1] == '.') {
            /* "*.example.com" matches any subdomain, not the bare domain. */
            cairn_iov_t suffix = cn_iov(pat + 1, pl - 1);
            if (host.len > suffix.len &&
                cn_iov_ieq(cn_iov(host.base + host.len - suffix.len, suffix.len), suffix))
                return true;
        } else if (cn_iov_ieq(host, cn_iov(pat, pl))) {
            return true;
        }
    }
    return false;
}

static bool
host_matches(const cn_conf_match_t *m, cairn_iov_t authority)
{
    return m->n_hosts == 0 || name_in(m->hosts, m->n_hosts, host_without_port(authority));
}

/* One "DNS:a, URI:b" entry of @sans equal to @pat (a trailing '*' matches any rest). */
static bool
san_in(const char *sans, const char *pat)
{
    size_t pl = strlen(pat);
    bool prefix = pl > 0 && pat[pl - 1] == '*';
    size_t pos = 0;
    cairn_iov_t item;
    while (cn_iov_next_item(cn_iov_cstr(sans), ',', &pos, &item))
        if (prefix ? item.len >= pl - 1 && memcmp(item.base, pat, pl - 1) == 0
                   : item.len == pl && memcmp(item.base, pat, pl) == 0)
            return true;
    return false;
}

/* The client certificate rules; @peer is looked up once, on the first route that asks. */
static bool
client_matches(const cn_conf_match_t *m, const cn_route_conn_t *conn, int *verified,
               cn_tls_peer_t *peer)
{
    if (m->client_cert == 0 && m->n_client_sans == 0)
        return true;
    if (*verified < 0)
        *verified = conn->tls_sock != NULL && cn_tls_peer_identity(conn->tls_sock, peer);
    if (m->client_cert == 2)
        return !*verified && m->n_client_sans == 0;
    if (!*verified)
        return false;
    for (size_t i = 0; i < m->n_client_sans; i++)
        if (san_in(peer->san, m->client_sans[i]))
            return true;
    return m->n_client_sans == 0;
}

static bool
sni_matches(const cn_conf_match_t *m, const char *sni)
{
    return m->n_snis == 0 || (sni != NULL && name_in(m->snis, m->n_snis, cn_iov_cstr(sni)));
}

static bool
methods_match(const cn_conf_match_t *m, cairn_iov_t method)
{
    if (m->n_methods == 0)
        return true;
    for (size_t i = 0; i < m->n_methods; i++)
        if (cn_iov_eq(method, cn_iov_cstr(m->methods[i])))
            return true;
    return false;
}

static bool
headers_match(const cn_conf_match_t *m, const cn_headers_t *h)
{
    for (size_t i = 0; i < m->n_headers; i++) {
        cairn_iov_t name = cn_iov_cstr(m->headers[i].name);
        ssize_t at = cn_headers_find(h, name, -1);
        if (at < 0)
            return false;
        if (m->headers[i].value == NULL)
            continue;
        bool any = false;
        for (; at >= 0 && !any; at = cn_headers_find(h, name, at))
            any = cn_iov_eq(h->items[at].value, cn_iov_cstr(m->headers[i].value));
        if (!any)
            return false;
    }
    return true;
}

/* Finds parameter @name in a raw query string; *value gets its (undecoded) value. */
static bool
query_param(cairn_iov_t q, const char *name, cairn_iov_t *value)
{
    size_t nl = strlen(name), start = 0;
    for (size_t i = 0; i <= q.len; i++) {
        if (i < q.len && q.base[i] != '&')
            continue;
        cairn_iov_t part = cn_iov(q.base + start, i - start);
        start = i + 1;
        if (part.len < nl || memcmp(part.base, name, nl) != 0)
            continue;
        if (part.len == nl) {
            *value = cn_iov("", 0);
            return true;
        }
        if (part.base[nl] == '=') {
            *value = cn_iov(part.base + nl + 1, part.len - nl - 1);
            return true;
        }
    }
    return false;
}

static bool
query_match(const cn_conf_match_t *m, const cn_http_req_t *req)
{
    for (size_t i = 0; i < m->n_query; i++) {
        cairn_iov_t v;
        if (!query_param(req->query, m->query[i].name, &v))
            return false;
        if (m->query[i].value != NULL && !cn_iov_eq(v, cn_iov_cstr(m->query[i].value)))
            return false;
    }
    return true;
}

static bool
path_matches(const cn_conf_match_t *m, cairn_iov_t path)
{
    if (m->path != NULL && !cn_iov_eq(path, cn_iov_cstr(m->path)))
        return false;
    if (m->path_prefix != NULL && !cn_iov_has_prefix(path, cn_iov_cstr(m->path_prefix)))
        return false;
    if (m->path_re != NULL) {
        pcre2_match_data *md = pcre2_match_data_create(1, NULL);
        int rc = pcre2_match(m->path_re, (PCRE2_SPTR)path.base, path.len, 0, 0, md, NULL);
        pcre2_match_data_free(md);
        if (rc < 0)
            return false;
    }
    return true;
}

const cn_conf_route_t *
cn_route_match(const cn_config_t *cfg, const cn_http_req_t *req, const cn_route_conn_t *conn)
{
    const char *listener = conn->listener, *sni = conn->sni;
    int verified = -1;
    cn_tls_peer_t peer;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const cn_conf_route_t *r = &cfg->routes[i];
        const cn_conf_match_t *m = &r->match;
        if (m->listener != NULL && (listener == NULL || strcmp(m->listener, listener) != 0))
            continue;
        if (!host_matches(m, req->authority) || !sni_matches(m, sni) ||
            !client_matches(m, conn, &verified, &peer) || !methods_match(m, req->method) ||
            !path_matches(m, req->path) || !headers_match(m, &req->headers) || !query_match(m, req))
            continue;
        return r;
    }
    return NULL;
}

bool
cn_route_addr_in(const cn_conf_cidr_t *cidrs, size_t n, const struct sockaddr_storage *ss)
{
    for (size_t i = 0; ss != NULL && i < n; i++) {
        const cn_conf_cidr_t *c = &cidrs[i];
        if (ss->ss_family != c->family)
            continue;
        const uint8_t *a = ss->ss_family == AF_INET
                               ? (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr
                               : (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
        unsigned bits = c->prefix, k = 0;
        bool ok = true;
        for (; bits >= 8 && ok; bits -= 8, k++)
            ok = a[k] == c->addr[k];
        if (ok && bits > 0) {
            uint8_t mask = (uint8_t)(0xff << (8 - bits));
            ok = (a[k] & mask) == (c->addr[k] & mask);
        }
        if (ok)
            return true;
    }
    return false;
}

void
cn_route_apply_headers(const cn_conf_header_rules_t *rules, cn_headers_t *h)
{
    for (size_t i = 0; i < rules->n_remove; i++)
        cn_headers_remove(h, cn_iov_cstr(rules->remove[i]));
    for (size_t i = 0; i < rules->n_set; i++) {
        cn_headers_remove(h, cn_iov_cstr(rules->set[i].name));
        cn_headers_add(h, cn_iov_cstr(rules->set[i].name), cn_iov_cstr(rules->set[i].value));
    }
    for (size_t i = 0; i < rules->n_add; i++)
        cn_headers_add(h, cn_iov_cstr(rules->add[i].name), cn_iov_cstr(rules->add[i].value));
}
