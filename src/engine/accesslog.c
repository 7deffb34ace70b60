/* SPDX-License-Identifier: MIT */
/* Access log lines are built in a stack buffer and written with one write() (O_APPEND keeps
 * lines from several workers whole). Runs in the logging step, exactly once per request. */
#include "engine/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/str.h"
#include "core/time.h"
#include "engine/cached.h"
#include "engine/session.h"

static int log_fd = -1;
static cn_access_log_format_t log_format;
static char *log_path;

static int
open_target(const char *path)
{
    if (path == NULL || strcmp(path, "off") == 0)
        return -1;
    if (strcmp(path, "stdout") == 0)
        return 1;
    if (strcmp(path, "stderr") == 0)
        return 2;
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

cairn_err_t
cn_accesslog_open(const cn_config_t *cfg)
{
    const char *path = cfg->server.access_log;
    int fd = open_target(path);
    if (fd < 0 && path != NULL && strcmp(path, "off") != 0)
        return CAIRN_EIO;
    cn_accesslog_close();
    log_fd = fd;
    log_format = cfg->server.access_log_format;
    log_path = path ? cn_xstrdup(path) : NULL;
    return CAIRN_OK;
}

cairn_err_t
cn_accesslog_reopen(void)
{
    int fd = open_target(log_path);
    if (fd < 0)
        return log_path && strcmp(log_path, "off") != 0 ? CAIRN_EIO : CAIRN_OK;
    int old = log_fd;
    log_fd = fd;
    if (old > 2)
        close(old);
    return CAIRN_OK;
}

void
cn_accesslog_close(void)
{
    if (log_fd > 2)
        close(log_fd);
    log_fd = -1;
    cn_free(log_path);
    log_path = NULL;
}

/* Appends @v as a JSON string body (without quotes), escaping as RFC 8259 requires. */
static size_t
json_escape(char *out, size_t cap, cairn_iov_t v)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < v.len && n + 7 < cap; i++) {
        unsigned char ch = (unsigned char)v.base[i];
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            out[n++] = '\\';
            out[n++] = 'u';
            out[n++] = '0';
            out[n++] = '0';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        } else {
            out[n++] = (char)ch;
        }
    }
    return n;
}

static cairn_iov_t
req_target(cn_session_t *s, char *buf, size_t cap)
{
    const cn_http_req_t *req = s->req;
    if (!req->has_query)
        return req->path;
    int n = snprintf(buf, cap, "%.*s?%.*s", (int)req->path.len, req->path.base, (int)req->query.len,
                     req->query.base);
    return cn_iov(buf, (size_t)CN_MIN((size_t)n, cap - 1));
}

#define APPEND(...)                                                                                \
    do {                                                                                           \
        int k_ = snprintf(line + n, cap - n, __VA_ARGS__);                                         \
        if (k_ > 0)                                                                                \
            n = CN_MIN(n + (size_t)k_, cap - 1);                                                   \
    } while (0)

#define APPEND_JSON_STR(key, iov)                                                                  \
    do {                                                                                           \
        APPEND(",\"%s\":\"", key);                                                                 \
        n += json_escape(line + n, cap - n - 8, iov);                                              \
        APPEND("\"");                                                                              \
    } while (0)

static size_t
format_json(cn_session_t *s, char *line, size_t cap, unsigned status, double dur_ms)
{

    char tbuf[64], target[4096];
    struct timespec ts;
    struct tm tm;
    size_t n = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    APPEND("{\"time\":\"%s.%03ldZ\",\"request_id\":%llu", tbuf, ts.tv_nsec / 1000000,
           (unsigned long long)s->id);
    APPEND_JSON_STR("client", cn_iov_cstr(s->client));
    APPEND_JSON_STR("method", s->req->method);
    APPEND_JSON_STR("path", req_target(s, target, sizeof(target)));
    APPEND(",\"status\":%u,\"bytes\":%llu,\"duration_ms\":%.3f", status,
           (unsigned long long)s->bytes_sent, dur_ms);
    APPEND_JSON_STR("route", cn_iov_cstr(s->route && s->route->name ? s->route->name : "-"));
    APPEND_JSON_STR("upstream", cn_iov_cstr(s->upstream_name ? s->upstream_name : "-"));
    APPEND_JSON_STR("upstream_addr", cn_iov_cstr(s->upstream_addr[0] ? s->upstream_addr : "-"));
    APPEND(",\"upstream_connect_ms\":%.3f,\"upstream_response_ms\":%.3f,\"upstream_reused\":%s",
           s->upstream_connect_ns / 1e6, s->upstream_header_ns / 1e6,
           s->upstream_reused ? "true" : "false");
    APPEND_JSON_STR("cache", cn_iov_cstr(s->cache_status ? s->cache_status : "-"));
    APPEND(",\"lock_wait_ms\":%.3f", cn_cached_lock_wait_ns(s) / 1e6);
    if (s->tls_version != NULL) {
        APPEND_JSON_STR("tls_version", cn_iov_cstr(s->tls_version));
        APPEND_JSON_STR("tls_cipher", cn_iov_cstr(s->tls_cipher ? s->tls_cipher : "-"));
        APPEND(",\"tls_resumed\":%s", s->tls_resumed ? "true" : "false");
    }
    if (s->error != NULL)
        APPEND_JSON_STR("error", cn_iov_cstr(s->error));
    APPEND("}\n");
    return n;
}

static size_t
format_combined(cn_session_t *s, char *line, size_t cap, unsigned status, double dur_ms)
{

    char tbuf[64], target[4096];
    time_t now = time(NULL);
    struct tm tm;
    size_t n = 0;
    gmtime_r(&now, &tm);
    strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    const cairn_iov_t *ref = cn_headers_get(&s->req->headers, CAIRN_IOV_LIT("referer"));
    const cairn_iov_t *ua = cn_headers_get(&s->req->headers, CAIRN_IOV_LIT("user-agent"));
    cairn_iov_t t = req_target(s, target, sizeof(target));
    APPEND("%s - - [%s] \"%.*s %.*s HTTP/%d.%d\" %u %llu \"", s->client, tbuf,
           (int)s->req->method.len, s->req->method.base, (int)t.len, t.base, s->req->version / 10,
           s->req->version % 10, status, (unsigned long long)s->bytes_sent);
    n += json_escape(line + n, cap - n - 8, ref ? *ref : CAIRN_IOV_LIT("-"));
    APPEND("\" \"");
    n += json_escape(line + n, cap - n - 8, ua ? *ua : CAIRN_IOV_LIT("-"));
    APPEND("\" rid=%llu dur=%.3f cache=%s\n", (unsigned long long)s->id, dur_ms / 1000.0,
           s->cache_status ? s->cache_status : "-");
    return n;
}

void
cn_accesslog_write(cn_session_t *s)
{
    if (log_fd < 0)
        return;
    /* 499 (nginx's convention): the client went away before the response was complete. */
    unsigned status = cn_session_status(s);
    double dur_ms = (double)(cn_time_now_ns() - s->start_ns) / 1e6;
    char line[8192];
    size_t n = log_format == CN_ACCESS_LOG_COMBINED
                   ? format_combined(s, line, sizeof(line), status, dur_ms)
                   : format_json(s, line, sizeof(line), status, dur_ms);
    ssize_t w;
    do {
        w = write(log_fd, line, n);
    } while (w < 0 && errno == EINTR);
}
