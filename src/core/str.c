/* SPDX-License-Identifier: MIT */
/* Byte-slice comparison, trimming and the config's duration and size formats. */
#include "core/str.h"

#include <stdio.h>
#include <stdlib.h>

static inline unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

bool
cn_iov_eq(cairn_iov_t a, cairn_iov_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

bool
cn_mem_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

size_t
cn_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    memcpy(out, tmp + i, sizeof(tmp) - i);
    return sizeof(tmp) - i;
}

size_t
cn_fmt_hex(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    memcpy(out, tmp + i, sizeof(tmp) - i);
    return sizeof(tmp) - i;
}

bool
cn_iov_has_prefix(cairn_iov_t a, cairn_iov_t prefix)
{
    return a.len >= prefix.len && memcmp(a.base, prefix.base, prefix.len) == 0;
}

cairn_iov_t
cn_iov_trim(cairn_iov_t a)
{
    while (a.len && (a.base[0] == ' ' || a.base[0] == '\t')) {
        a.base++;
        a.len--;
    }
    while (a.len && (a.base[a.len - 1] == ' ' || a.base[a.len - 1] == '\t'))
        a.len--;
    return a;
}

int
cn_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool
cn_parse_u64(cairn_iov_t s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.base[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool
split_number(const char *s, uint64_t *num, const char **unit)
{
    size_t i = 0;
    while (s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 0 || !cn_parse_u64(cn_iov(s, i), num))
        return false;
    *unit = s + i;
    return true;
}

static bool
mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b)
        return false;
    *out = a * b;
    return true;
}

bool
cn_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *u;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    uint64_t n;
    const char *unit;
    if (!split_number(s, &n, &unit))
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(unit, units[i].u) == 0)
            return mul_ok(n, units[i].ms, out);
    return false;
}

bool
cn_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *u;
        uint64_t m;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"k", 1024},
                 {"K", 1024},
                 {"KiB", 1024},
                 {"KB", 1000},
                 {"m", 1048576},
                 {"M", 1048576},
                 {"MiB", 1048576},
                 {"MB", 1000000},
                 {"g", 1073741824},
                 {"G", 1073741824},
                 {"GiB", 1073741824},
                 {"GB", 1000000000},
                 {"TiB", 1099511627776ull}};
    uint64_t n;
    const char *unit;
    if (!split_number(s, &n, &unit))
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(unit, units[i].u) == 0)
            return mul_ok(n, units[i].m, out);
    return false;
}

void
cn_format_duration_ms(uint64_t ms, char *out, size_t n)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(out, n, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, n, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, n, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, n, "%llums", (unsigned long long)ms);
}

void
cn_format_size(uint64_t b, char *out, size_t n)
{
    if (b != 0 && b % 1073741824ull == 0)
        snprintf(out, n, "%lluGiB", (unsigned long long)(b / 1073741824ull));
    else if (b != 0 && b % 1048576 == 0)
        snprintf(out, n, "%lluMiB", (unsigned long long)(b / 1048576));
    else if (b != 0 && b % 1024 == 0)
        snprintf(out, n, "%lluKiB", (unsigned long long)(b / 1024));
    else
        snprintf(out, n, "%llu", (unsigned long long)b);
}

size_t
cn_str_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 64;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

bool
cn_iov_next_item(cairn_iov_t v, char sep, size_t *pos, cairn_iov_t *item)
{
    while (*pos < v.len) {
        size_t s = *pos, e = s;
        while (e < v.len && v.base[e] != sep)
            e++;
        *pos = e + 1;
        *item = cn_iov_trim(cn_iov(v.base + s, e - s));
        if (item->len > 0)
            return true;
    }
    return false;
}
