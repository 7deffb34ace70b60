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

static const char *const long_wdays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};

static char
ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* Does @s (exactly @n bytes) spell @name, ignoring ASCII letter case? */
static bool
name_ieq(const char *s, size_t n, const char *name)
{
    if (strlen(name) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(s[i]) != ascii_lower(name[i]))
            return false;
    return true;
}

/* The index of @s (@n bytes) in @table, case-insensitively; -1 when absent. */
static int
name_index(const char *s, size_t n, const char *const *table, int count)
{
    for (int i = 0; i < count; i++)
        if (name_ieq(s, n, table[i]))
            return i;
    return -1;
}

/* Exactly @n ASCII digits at @s. */
static bool
digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

struct date_parts {
    int year, mon, day, hh, mm, ss; /* mon 0..11 */
};

/* month SP, month "-": the three-letter name at @s. */
static bool
month_at(const char *s, struct date_parts *p)
{
    p->mon = name_index(s, 3, months, 12);
    return p->mon >= 0;
}

/* time-of-day = hour ":" minute ":" second, two digits each (8 bytes at @s). */
static bool
time_of_day_at(const char *s, struct date_parts *p)
{
    return digits(s, 2, &p->hh) && s[2] == ':' && digits(s + 3, 2, &p->mm) && s[5] == ':' &&
           digits(s + 6, 2, &p->ss);
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (29 bytes). */
static bool
parse_imf_fixdate(const char *s, size_t len, struct date_parts *p)
{
    return len == 29 && name_index(s, 3, wdays, 7) >= 0 && s[3] == ',' && s[4] == ' ' &&
           digits(s + 5, 2, &p->day) && s[7] == ' ' && month_at(s + 8, p) && s[11] == ' ' &&
           digits(s + 12, 4, &p->year) && s[16] == ' ' && time_of_day_at(s + 17, p) &&
           s[25] == ' ' && name_ieq(s + 26, 3, "GMT");
}

/* rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT": a full day name, then 24 bytes. */
static bool
parse_rfc850(const char *s, size_t len, struct date_parts *p)
{
    const char *comma = memchr(s, ',', len);
    if (!comma || name_index(s, (size_t)(comma - s), long_wdays, 7) < 0)
        return false;
    size_t rest = len - (size_t)(comma - s);
    const char *d = comma + 2;
    if (rest != 24 || comma[1] != ' ' || !digits(d, 2, &p->day) || d[2] != '-' ||
        !month_at(d + 3, p) || d[6] != '-' || !digits(d + 7, 2, &p->year) || d[9] != ' ' ||
        !time_of_day_at(d + 10, p) || d[18] != ' ' || !name_ieq(d + 19, 3, "GMT"))
        return false;
    /* RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is in the past century. A
     * fixed pivot keeps the parser independent of the clock. */
    p->year += p->year < 70 ? 2000 : 1900;
    return true;
}

/* asctime-date: "Sun Nov  6 08:49:37 1994" (24 bytes); the day is 2DIGIT or SP DIGIT. */
static bool
parse_asctime(const char *s, size_t len, struct date_parts *p)
{
    if (len != 24 || name_index(s, 3, wdays, 7) < 0 || s[3] != ' ' || !month_at(s + 4, p) ||
        s[7] != ' ')
        return false;
    if (!(s[8] == ' ' ? digits(s + 9, 1, &p->day) : digits(s + 8, 2, &p->day)))
        return false;
    return s[10] == ' ' && time_of_day_at(s + 11, p) && s[19] == ' ' && digits(s + 20, 4, &p->year);
}

static bool
is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool
in_range(const struct date_parts *p)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int last = mdays[p->mon] + (p->mon == 1 && is_leap(p->year));
    /* second 60 is a leap second (RFC 9110 §5.6.7). */
    return p->day >= 1 && p->day <= last && p->hh <= 23 && p->mm <= 59 && p->ss <= 60;
}

/* Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t
days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool
cn_time_parse_http_date(const char *s, size_t len, time_t *out)
{
    struct date_parts p;
    if (len == 0)
        return false;
    if (!(parse_imf_fixdate(s, len, &p) || parse_rfc850(s, len, &p) || parse_asctime(s, len, &p)) ||
        !in_range(&p))
        return false;
    int64_t days = days_from_civil(p.year, p.mon + 1, p.day);
    *out = (time_t)(days * 86400 + p.hh * 3600 + p.mm * 60 + p.ss);
    return true;
}
