/* SPDX-License-Identifier: MIT */
/* Byte-slice helpers and the number formats of the config (durations, sizes). */
#ifndef CN_CORE_STR_H
#define CN_CORE_STR_H

#include <string.h>

#include "core/types.h"

static inline cairn_iov_t
cn_iov(const char *p, size_t n)
{
    return (cairn_iov_t){(char *)p, n};
}
static inline cairn_iov_t
cn_iov_cstr(const char *s)
{
    return (cairn_iov_t){(char *)s, s ? strlen(s) : 0};
}
bool cn_iov_eq(cairn_iov_t a, cairn_iov_t b);
/** ASCII case-insensitive comparison of @n bytes. */
bool cn_mem_ieq(const char *a, const char *b, size_t n);
/** ASCII case-insensitive comparison (inline: most header lookups differ in length). */
static inline bool
cn_iov_ieq(cairn_iov_t a, cairn_iov_t b)
{
    return a.len == b.len && cn_mem_ieq(a.base, b.base, a.len);
}
static inline bool
cn_iov_ieq_cstr(cairn_iov_t a, const char *s)
{
    return cn_iov_ieq(a, cn_iov_cstr(s));
}
bool cn_iov_has_prefix(cairn_iov_t a, cairn_iov_t prefix);
/** Strips optional whitespace (SP/HTAB) at both ends. */
cairn_iov_t cn_iov_trim(cairn_iov_t a);
/** The next non-empty, trimmed item of the @sep-separated list @v from *@pos on (which it
 *  advances); false at the end. Start with *@pos = 0. */
bool cn_iov_next_item(cairn_iov_t v, char sep, size_t *pos, cairn_iov_t *item);
/** The value of hex digit @c, or -1. */
int cn_hex_digit(int c);
/** Parses a non-negative decimal; false on empty, non-digits or overflow. */
bool cn_parse_u64(cairn_iov_t s, uint64_t *out);
/** "500ms", "2s", "1m", "1h", "1d" (a bare number is seconds) → milliseconds. */
bool cn_parse_duration_ms(const char *s, uint64_t *out);
/** "123", "64KiB", "256MiB", "10GiB", also "KB/MB/GB" (powers of 1000) and "k/m/g" (1024) → bytes.
 */
bool cn_parse_size(const char *s, uint64_t *out);
/** Formats milliseconds back to the shortest exact duration string ("30s"). */
void cn_format_duration_ms(uint64_t ms, char *out, size_t n);
/** Formats bytes to the shortest exact size string ("64KiB"). */
void cn_format_size(uint64_t bytes, char *out, size_t n);
/** Writes @v in decimal to @out (room for 20 bytes); returns the length. */
size_t cn_fmt_u64(char *out, uint64_t v);
/** Writes @v in lower-case hex to @out (room for 16 bytes); returns the length. */
size_t cn_fmt_hex(char *out, uint64_t v);
/** Levenshtein distance, capped; used for "did you mean" suggestions. */
size_t cn_str_distance(const char *a, const char *b);

#endif
