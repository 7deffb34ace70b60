/* SPDX-License-Identifier: MIT */
/* The error-log sink. Lines are formatted into a stack buffer and written with one write(). */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"

cn_log_level_t cn_log_threshold = CN_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug", "trace"};
static int log_fd = 2;
static char *log_path;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

bool
cn_log_level_parse(const char *s, cn_log_level_t *out)
{
    for (size_t i = 0; i < CN_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (cn_log_level_t)i;
            return true;
        }
    }
    return false;
}

const char *
cn_log_level_name(cn_log_level_t l)
{
    return (unsigned)l < CN_ARRAY_LEN(level_names) ? level_names[l] : "?";
}

static int
open_path(const char *path)
{
    if (path == NULL || strcmp(path, "stderr") == 0)
        return 2;
    if (strcmp(path, "stdout") == 0)
        return 1;
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

cairn_err_t
cn_log_open(const char *path)
{
    int fd = open_path(path);
    if (fd < 0)
        return CAIRN_EIO;
    pthread_mutex_lock(&log_lock);
    int old = log_fd;
    log_fd = fd;
    cn_free(log_path);
    log_path = path ? cn_xstrdup(path) : NULL;
    pthread_mutex_unlock(&log_lock);
    if (old > 2)
        close(old);
    return CAIRN_OK;
}

cairn_err_t
cn_log_reopen(void)
{
    pthread_mutex_lock(&log_lock);
    char *p = log_path ? cn_xstrdup(log_path) : NULL;
    pthread_mutex_unlock(&log_lock);
    cairn_err_t err = cn_log_open(p);
    cn_free(p);
    return err;
}

void
cn_log_write(cn_log_level_t l, uint64_t id, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    if (id != 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ [%s] #%llu ",
                      ts.tv_nsec / 1000000, cn_log_level_name(l), (unsigned long long)id);
    else
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ [%s] ", ts.tv_nsec / 1000000,
                      cn_log_level_name(l));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w;
    do {
        w = write(log_fd, line, (size_t)n);
    } while (w < 0 && errno == EINTR);
}
