/* SPDX-License-Identifier: MIT */
/* bench_origin: the origin server of the proxy benchmark (bench/run.py). One thread, plain
 * epoll (level-triggered), HTTP/1.1 keep-alive and pipelining, no allocation per request.
 *
 *   GET /c/1k, /c/16k, /c/100k, /c/1m[/anything]  fixed bodies, Cache-Control: public, max-age=3600
 *   GET /nostore/1k[/anything]                     1 KiB, Cache-Control: no-store
 *   GET /slow/<anything>                            1 KiB, cacheable, answered after the slow delay
 *   GET /__stats                                    {"total":N,"paths":{"/c/1k":N,...}}
 *   POST /__reset                                   zero the counters
 *   anything else                                   404 (counted too)
 *
 * Every request except /__stats and /__reset is counted by path (query string excluded).
 * Usage: bench_origin PORT [SLOW_DELAY_MS]   (listens on 127.0.0.1, prints "ready" on stdout) */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP 65536
#define HEAD_CAP 512
#define MAX_PATHS 8192
#define PATH_MAX_LEN 256
#define STATS_CAP (MAX_PATHS * (PATH_MAX_LEN + 32) + 64)

struct body {
    const char *prefix;
    size_t size;
    const char *cache_control;
    char *data;
};

static struct body bodies[] = {
    {"/c/1k", 1024, "public, max-age=3600", NULL},
    {"/c/16k", 16384, "public, max-age=3600", NULL},
    {"/c/100k", 102400, "public, max-age=3600", NULL},
    {"/c/1m", 1048576, "public, max-age=3600", NULL},
    {"/nostore/1k", 1024, "no-store", NULL},
    {"/slow/", 1024, "public, max-age=3600", NULL},
};
#define SLOW_BODY 5

struct conn {
    int fd;
    int close_after;  /* close once the output is flushed */
    int waiting_slow; /* a /slow/ answer is scheduled: stop parsing until it is sent */
    size_t in_len;
    size_t skip_body; /* request body bytes still to discard */
    char head[HEAD_CAP];
    size_t head_len, head_off;
    const char *out_body;
    size_t out_len, out_off;
    struct conn *slow_next;
    uint64_t slow_due;
    int slow_head_only;
    char in[IN_CAP];
};

struct path_count {
    char path[PATH_MAX_LEN];
    uint64_t count;
    int used;
};

static struct path_count paths[MAX_PATHS];
static uint64_t total_count;
static size_t npaths;
static char *stats_buf;
static int slow_ms = 200;
static int ep;
static struct conn *slow_head, *slow_tail;
static char date_hdr[64];
static time_t date_sec;

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
update_date(void)
{
    time_t t = time(NULL);
    if (t == date_sec)
        return;
    date_sec = t;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date_hdr, sizeof date_hdr, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static uint64_t
hash_path(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static void
count_path(const char *p, size_t n)
{
    total_count++;
    if (n >= PATH_MAX_LEN)
        n = PATH_MAX_LEN - 1;
    size_t i = hash_path(p, n) % MAX_PATHS;
    for (size_t probes = 0; probes < MAX_PATHS; probes++, i = (i + 1) % MAX_PATHS) {
        if (!paths[i].used) {
            if (npaths >= MAX_PATHS * 3 / 4)
                return; /* table full: only the total counts */
            paths[i].used = 1;
            memcpy(paths[i].path, p, n);
            paths[i].path[n] = 0;
            paths[i].count = 1;
            npaths++;
            return;
        }
        if (strlen(paths[i].path) == n && memcmp(paths[i].path, p, n) == 0) {
            paths[i].count++;
            return;
        }
    }
}

static size_t
render_stats(void)
{
    size_t o = 0;
    o += (size_t)snprintf(stats_buf + o, STATS_CAP - o, "{\"total\":%llu,\"paths\":{",
                          (unsigned long long)total_count);
    int first = 1;
    for (size_t i = 0; i < MAX_PATHS; i++) {
        if (!paths[i].used)
            continue;
        if (!first)
            stats_buf[o++] = ',';
        first = 0;
        stats_buf[o++] = '"';
        for (const char *c = paths[i].path; *c; c++) {
            unsigned char ch = (unsigned char)*c;
            if (ch == '"' || ch == '\\' || ch < 0x20 || ch > 0x7e)
                o += (size_t)snprintf(stats_buf + o, STATS_CAP - o, "\\u%04x", ch);
            else
                stats_buf[o++] = (char)ch;
        }
        o += (size_t)snprintf(stats_buf + o, STATS_CAP - o, "\":%llu",
                              (unsigned long long)paths[i].count);
    }
    o += (size_t)snprintf(stats_buf + o, STATS_CAP - o, "}}\n");
    return o;
}

static void
conn_close(struct conn *c)
{
    if (c->waiting_slow) {
        /* unlink from the slow queue */
        struct conn **pp = &slow_head, *prev = NULL;
        while (*pp && *pp != c) {
            prev = *pp;
            pp = &(*pp)->slow_next;
        }
        if (*pp) {
            *pp = c->slow_next;
            if (slow_tail == c)
                slow_tail = prev;
        }
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

static void
set_events(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what is pending. Returns -1 when the connection was closed, 1 when output remains,
 * 0 when everything was written. */
static int
flush_out(struct conn *c)
{
    while (c->head_off < c->head_len || c->out_off < c->out_len) {
        struct iovec iov[2];
        int n = 0;
        if (c->head_off < c->head_len)
            iov[n++] = (struct iovec){c->head + c->head_off, c->head_len - c->head_off};
        if (c->out_off < c->out_len)
            iov[n++] = (struct iovec){(char *)c->out_body + c->out_off, c->out_len - c->out_off};
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_events(c, EPOLLIN | EPOLLOUT);
                return 1;
            }
            conn_close(c);
            return -1;
        }
        size_t left = (size_t)w;
        size_t h = c->head_len - c->head_off;
        if (left >= h) {
            c->head_off = c->head_len;
            left -= h;
            c->out_off += left;
        } else {
            c->head_off += left;
        }
    }
    c->head_len = c->head_off = 0;
    c->out_len = c->out_off = 0;
    c->out_body = NULL;
    if (c->close_after) {
        shutdown(c->fd, SHUT_WR);
        conn_close(c);
        return -1;
    }
    return 0;
}

static void
set_response(struct conn *c, int status, const char *reason, const char *cc, const char *ctype,
             const char *body, size_t len, int head_only)
{
    update_date();
    int n = snprintf(c->head, HEAD_CAP,
                     "HTTP/1.1 %d %s\r\nServer: bench-origin\r\nDate: %s\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s\r\n",
                     status, reason, date_hdr, ctype, len, cc ? "Cache-Control: " : "",
                     cc ? cc : "", cc ? "\r\n" : "", c->close_after ? "Connection: close\r\n" : "");
    c->head_len = (size_t)n;
    c->head_off = 0;
    c->out_body = head_only ? NULL : body;
    c->out_len = head_only ? 0 : len;
    c->out_off = 0;
}

static int
header_has_token(const char *v, size_t n, const char *tok)
{
    size_t t = strlen(tok);
    for (size_t i = 0; i + t <= n; i++)
        if (strncasecmp(v + i, tok, t) == 0)
            return 1;
    return 0;
}

/* Parse and answer complete requests from the input buffer. Returns -1 if closed. */
static int
process(struct conn *c)
{
    for (;;) {
        if (c->skip_body) {
            size_t k = c->skip_body < c->in_len ? c->skip_body : c->in_len;
            memmove(c->in, c->in + k, c->in_len - k);
            c->in_len -= k;
            c->skip_body -= k;
            if (c->skip_body)
                return 0;
        }
        if (c->waiting_slow || c->head_len || c->out_len)
            return 0;
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) {
            if (c->in_len == IN_CAP) {
                conn_close(c);
                return -1;
            }
            return 0;
        }
        size_t reqlen = (size_t)(end - c->in) + 4;
        /* request line */
        char *sp1 = memchr(c->in, ' ', reqlen);
        if (!sp1) {
            conn_close(c);
            return -1;
        }
        char *target = sp1 + 1;
        char *sp2 = memchr(target, ' ', (size_t)(end - target));
        char *eol = memchr(c->in, '\r', reqlen);
        if (!sp2 || sp2 > eol) {
            conn_close(c);
            return -1;
        }
        size_t mlen = (size_t)(sp1 - c->in);
        int is_head = mlen == 4 && memcmp(c->in, "HEAD", 4) == 0;
        int is_post = mlen == 4 && memcmp(c->in, "POST", 4) == 0;
        size_t plen = (size_t)(sp2 - target);
        char *q = memchr(target, '?', plen);
        if (q)
            plen = (size_t)(q - target);
        int http10 = (size_t)(eol - sp2) >= 9 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
        /* headers of interest */
        int conn_close_hdr = 0, conn_keep = 0;
        size_t clen = 0;
        char *line = eol + 2;
        while (line < end) {
            char *le = memchr(line, '\r', (size_t)(end + 2 - line));
            if (!le)
                break;
            char *colon = memchr(line, ':', (size_t)(le - line));
            if (colon) {
                size_t nlen = (size_t)(colon - line);
                char *v = colon + 1;
                while (v < le && (*v == ' ' || *v == '\t'))
                    v++;
                if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
                    if (header_has_token(v, (size_t)(le - v), "close"))
                        conn_close_hdr = 1;
                    if (header_has_token(v, (size_t)(le - v), "keep-alive"))
                        conn_keep = 1;
                } else if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
                    clen = strtoull(v, NULL, 10);
                }
            }
            line = le + 2;
        }
        c->close_after = conn_close_hdr || (http10 && !conn_keep);

        if (plen == 8 && memcmp(target, "/__stats", 8) == 0) {
            size_t n = render_stats();
            set_response(c, 200, "OK", "no-store", "application/json", stats_buf, n, is_head);
        } else if (plen == 8 && memcmp(target, "/__reset", 8) == 0 && is_post) {
            memset(paths, 0, sizeof paths);
            npaths = 0;
            total_count = 0;
            set_response(c, 200, "OK", "no-store", "text/plain", "reset\n", 6, is_head);
        } else {
            count_path(target, plen);
            int found = -1;
            for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
                size_t bl = strlen(bodies[i].prefix);
                if (i == SLOW_BODY) {
                    if (plen > bl && memcmp(target, bodies[i].prefix, bl) == 0)
                        found = (int)i;
                } else if (plen >= bl && memcmp(target, bodies[i].prefix, bl) == 0 &&
                           (plen == bl || target[bl] == '/')) {
                    found = (int)i;
                }
                if (found >= 0)
                    break;
            }
            if (found == SLOW_BODY) {
                c->waiting_slow = 1;
                c->slow_head_only = is_head;
                c->slow_due = now_ms() + (uint64_t)slow_ms;
                c->slow_next = NULL;
                if (slow_tail)
                    slow_tail->slow_next = c;
                else
                    slow_head = c;
                slow_tail = c;
            } else if (found >= 0) {
                set_response(c, 200, "OK", bodies[found].cache_control, "application/octet-stream",
                             bodies[found].data, bodies[found].size, is_head);
            } else {
                set_response(c, 404, "Not Found", "no-store", "text/plain", "not found\n", 10,
                             is_head);
            }
        }
        memmove(c->in, c->in + reqlen, c->in_len - reqlen);
        c->in_len -= reqlen;
        c->skip_body = clen;
        if (c->head_len) {
            int r = flush_out(c);
            if (r)
                return r < 0 ? -1 : 0;
        }
    }
}

static void
on_readable(struct conn *c)
{
    if (c->in_len == IN_CAP) {
        /* blocked on output or a slow answer with a full buffer: wait */
        set_events(c, c->head_len || c->out_len ? EPOLLOUT : 0);
        return;
    }
    ssize_t r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (r < 0)
        return;
    c->in_len += (size_t)r;
    process(c);
}

static void
fire_slow(uint64_t now)
{
    while (slow_head && slow_head->slow_due <= now) {
        struct conn *c = slow_head;
        slow_head = c->slow_next;
        if (!slow_head)
            slow_tail = NULL;
        c->waiting_slow = 0;
        set_response(c, 200, "OK", bodies[SLOW_BODY].cache_control, "application/octet-stream",
                     bodies[SLOW_BODY].data, bodies[SLOW_BODY].size, c->slow_head_only);
        if (flush_out(c) == 0) {
            set_events(c, EPOLLIN);
            process(c);
        }
    }
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [SLOW_DELAY_MS]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    if (argc > 2)
        slow_ms = atoi(argv[2]);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        bodies[i].data = malloc(bodies[i].size);
        for (size_t j = 0; j < bodies[i].size; j++)
            bodies[i].data[j] = (char)('a' + j % 26);
        if (bodies[i].size)
            bodies[i].data[bodies[i].size - 1] = '\n';
    }
    stats_buf = malloc(STATS_CAP);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0) {
        perror("bench_origin: bind/listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    printf("ready\n");
    fflush(stdout);

    struct epoll_event evs[256];
    for (;;) {
        int timeout = -1;
        if (slow_head) {
            uint64_t now = now_ms();
            timeout = slow_head->slow_due > now ? (int)(slow_head->slow_due - now) : 0;
        }
        int n = epoll_wait(ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                int r = flush_out(c);
                if (r < 0)
                    continue;
                if (r == 0) {
                    set_events(c, EPOLLIN);
                    if (process(c) < 0)
                        continue;
                    if (c->head_len || c->out_len)
                        continue;
                }
                if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                    continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c);
        }
        if (slow_head)
            fire_slow(now_ms());
    }
}
