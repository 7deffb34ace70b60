/* SPDX-License-Identifier: MIT */
/* Listening sockets. TCP listeners are created once per worker with SO_REUSEPORT so that the
 * kernel spreads connections and no accept lock exists; a unix listener is one socket shared. */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

void
cn_addr_format(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(out, n, "unix:%s", ((const struct sockaddr_un *)sa)->sun_path);
    } else {
        snprintf(out, n, "?");
    }
}

/* A unix socket path left behind by a dead process is removed; a live one is "in use". */
static void
unlink_stale_unix(const struct sockaddr_un *un)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (const struct sockaddr *)un, sizeof(*un)) != 0 && errno == ECONNREFUSED)
        unlink(un->sun_path);
    close(fd);
}

int
cn_listen_socket(const struct sockaddr *addr, socklen_t len, int backlog, char *err,
                 size_t errlen)
{
    char name[256];
    cn_addr_format(addr, name, sizeof(name));
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    if (addr->sa_family == AF_UNIX) {
        unlink_stale_unix((const struct sockaddr_un *)addr);
    } else {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
            goto fail;
        if (addr->sa_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, addr, len) != 0 || listen(fd, backlog) != 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    snprintf(err, errlen, "listen %s: %s", name, strerror(e));
    if (fd >= 0)
        close(fd);
    return -e;
}
