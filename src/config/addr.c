/* SPDX-License-Identifier: MIT */
/* Socket addresses and CIDR ranges as written in the config: "host:port", "[v6]:port",
 * "unix:/path" and "10.0.0.0/8". Peer host names are resolved once, at load time. */
#include "config/schema.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/str.h"

#define HOST_MAX 253

static bool
parse_port(const char *s, uint16_t *port, char *err, size_t errlen)
{
    uint64_t v;
    if (*s == '\0') {
        snprintf(err, errlen, "missing port");
        return false;
    }
    if (!cn_parse_u64(cn_iov_cstr(s), &v) || v < 1 || v > 65535) {
        snprintf(err, errlen, "port must be a number between 1 and 65535");
        return false;
    }
    *port = (uint16_t)v;
    return true;
}

static bool
parse_unix(const char *path, cn_conf_addr_t *out, char *err, size_t errlen)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
    size_t len = strlen(path);
    if (len == 0) {
        snprintf(err, errlen, "missing socket path after \"unix:\"");
        return false;
    }
    if (len >= sizeof(un->sun_path)) {
        snprintf(err, errlen, "socket path is longer than %zu bytes", sizeof(un->sun_path) - 1);
        return false;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len + 1);
    out->sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    return true;
}

static void
set_v4(cn_conf_addr_t *out, const struct in_addr *ip, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    sin->sin_family = AF_INET;
    sin->sin_addr = *ip;
    sin->sin_port = htons(port);
    out->sslen = sizeof(*sin);
}

static void
set_v6(cn_conf_addr_t *out, const struct in6_addr *ip, uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = *ip;
    sin6->sin6_port = htons(port);
    out->sslen = sizeof(*sin6);
}

static bool
is_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > HOST_MAX || h[0] == '-' || h[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return false;
    }
    return true;
}

static bool
resolve(const char *host, uint16_t port, cn_conf_addr_t *out, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve host: %s", rc != 0 ? gai_strerror(rc) : "no result");
        if (res != NULL)
            freeaddrinfo(res);
        return false;
    }
    bool ok = true;
    if (res->ai_family == AF_INET)
        set_v4(out, &((struct sockaddr_in *)res->ai_addr)->sin_addr, port);
    else if (res->ai_family == AF_INET6)
        set_v6(out, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, port);
    else
        ok = false;
    if (!ok)
        snprintf(err, errlen, "cannot resolve host: unsupported address family");
    freeaddrinfo(res);
    return ok;
}

static bool
parse_bracketed(const char *s, cn_conf_addr_t *out, char *err, size_t errlen)
{
    char host[64];
    struct in6_addr ip6;
    uint16_t port;
    const char *end = strchr(s, ']');
    if (end == NULL || (size_t)(end - s - 1) >= sizeof(host)) {
        snprintf(err, errlen, "expected [ipv6]:port");
        return false;
    }
    memcpy(host, s + 1, (size_t)(end - s - 1));
    host[end - s - 1] = '\0';
    if (inet_pton(AF_INET6, host, &ip6) != 1) {
        snprintf(err, errlen, "invalid IPv6 address");
        return false;
    }
    if (end[1] != ':') {
        snprintf(err, errlen, "missing port (expected [ipv6]:port)");
        return false;
    }
    if (!parse_port(end + 2, &port, err, errlen))
        return false;
    set_v6(out, &ip6, port);
    return true;
}

bool
cn_conf_addr_parse(const char *s, unsigned flags, cn_conf_addr_t *out, char *err, size_t errlen)
{
    char host[HOST_MAX + 1];
    struct in_addr ip4;
    struct in6_addr ip6;
    uint16_t port;
    cn_conf_addr_t a;
    memset(&a, 0, sizeof(a));

    if (strncmp(s, "unix:", 5) == 0) {
        if (!parse_unix(s + 5, &a, err, errlen))
            return false;
        *out = a;
        return true;
    }
    if (s[0] == '[') {
        if (!parse_bracketed(s, &a, err, errlen))
            return false;
        *out = a;
        return true;
    }
    const char *colon = strrchr(s, ':');
    if (colon == NULL) {
        snprintf(err, errlen, "expected host:port, [ipv6]:port or unix:/path");
        return false;
    }
    size_t hlen = (size_t)(colon - s);
    if (hlen > HOST_MAX) {
        snprintf(err, errlen, "host name is too long");
        return false;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (strchr(host, ':') != NULL) {
        snprintf(err, errlen, "IPv6 addresses must be in brackets, e.g. [::1]:8080");
        return false;
    }
    if (!parse_port(colon + 1, &port, err, errlen))
        return false;
    if ((flags & CN_ADDR_LISTEN) && (hlen == 0 || strcmp(host, "*") == 0)) {
        ip4.s_addr = htonl(INADDR_ANY);
        set_v4(&a, &ip4, port);
    } else if (hlen == 0) {
        snprintf(err, errlen, "missing host");
        return false;
    } else if (inet_pton(AF_INET, host, &ip4) == 1) {
        set_v4(&a, &ip4, port);
    } else if (inet_pton(AF_INET6, host, &ip6) == 1) {
        set_v6(&a, &ip6, port);
    } else if (strcmp(host, "localhost") == 0) {
        ip4.s_addr = htonl(INADDR_LOOPBACK);
        set_v4(&a, &ip4, port);
    } else if (flags & CN_ADDR_LISTEN) {
        snprintf(err, errlen, "a listen address must be a numeric IP, localhost or *");
        return false;
    } else if (!is_hostname(host)) {
        snprintf(err, errlen, "invalid host name");
        return false;
    } else if (!resolve(host, port, &a, err, errlen)) {
        return false;
    }
    *out = a;
    return true;
}

bool
cn_conf_cidr_parse(const char *s, cn_conf_cidr_t *out)
{
    char ip[64];
    cn_conf_cidr_t c;
    uint64_t prefix = 0;
    const char *slash = strchr(s, '/');
    size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
    memset(&c, 0, sizeof(c));
    if (n == 0 || n >= sizeof(ip))
        return false;
    memcpy(ip, s, n);
    ip[n] = '\0';
    if (slash != NULL && !cn_parse_u64(cn_iov_cstr(slash + 1), &prefix))
        return false;
    if (inet_pton(AF_INET, ip, c.addr) == 1)
        c.family = AF_INET;
    else if (inet_pton(AF_INET6, ip, c.addr) == 1)
        c.family = AF_INET6;
    else
        return false;
    unsigned bits = c.family == AF_INET ? 32 : 128;
    if (slash != NULL && prefix > bits)
        return false;
    c.prefix = slash != NULL ? (unsigned)prefix : bits;
    *out = c;
    return true;
}

void
cn_conf_cidr_format(const cn_conf_cidr_t *c, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    inet_ntop(c->family, c->addr, ip, sizeof(ip));
    snprintf(out, n, "%s/%u", ip, c->prefix);
}
