/* SPDX-License-Identifier: MIT */
/* Clock helpers and HTTP-date formatting/parsing (RFC 9110 §5.6.7). */
#include "core/time.h"

#include <stdio.h>
#include <string.h>

uint64_t
cn_time_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void
cn_time_http_date(time_t t, char out[30])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    /* strftime would follow the locale; the HTTP date is always English. */
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday],
             tm.tm_mday & 63, months[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000, tm.tm_hour & 31,
             tm.tm_min & 63, tm.tm_sec & 63);
    memcpy(out, tmp, 29);
    out[29] = '\0';
}

static int
month_index(const char *m)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(m, months[i], 3) == 0)
            return i;
    return -1;
}

bool
cn_time_parse_http_date(const char *s, size_t len, time_t *out)
{
    char buf[64], mon[4] = {0}, wd[16] = {0};
    int d, y, hh, mm, ss, n = 0;
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(buf, "%3s, %2d %3s %4d %2d:%2d:%2d GMT%n", wd, &d, mon, &y, &hh, &mm, &ss, &n) ==
            7 &&
        (size_t)n == len) {
        /* IMF-fixdate */
    } else if (n = 0, sscanf(buf, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n", wd, &d, mon, &y,
                             &hh, &mm, &ss, &n) == 7 &&
                          (size_t)n == len) {
        /* RFC 850: two-digit years within 50 years of now are this century (§5.6.7). */
        y += y < 70 ? 2000 : 1900;
    } else if (n = 0, sscanf(buf, "%3s %3s %2d %2d:%2d:%2d %4d%n", wd, mon, &d, &hh, &mm, &ss, &y,
                             &n) == 7 &&
                          (size_t)n == len) {
        /* asctime */
    } else {
        return false;
    }
    int mi = month_index(mon);
    if (mi < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1900)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mi;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    *out = timegm(&tm);
    return true;
}
