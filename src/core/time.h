/* SPDX-License-Identifier: MIT */
/* Monotonic nanoseconds for timing, wall clock for logs and HTTP dates. */
#ifndef CN_CORE_TIME_H
#define CN_CORE_TIME_H

#include <time.h>

#include "core/types.h"

uint64_t cn_time_now_ns(void);
/** Formats @t as an IMF-fixdate (29 chars + NUL) into @out. */
void cn_time_http_date(time_t t, char out[30]);
/**
 * Parses an HTTP-date (RFC 9110 §5.6.7) of exactly @len bytes at @s (no surrounding
 * whitespace: trim first) into seconds since the epoch at *@out. Accepted, and nothing else:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT" (years 00-69 are 20xx, 70-99 are 19xx)
 *   asctime      "Sun Nov  6 08:49:37 1994" (the day may also be "06")
 * with single SPs where the grammar has them, two-digit fields zero-padded, a day that
 * exists in its month, hour <= 23, minute <= 59 and second <= 60 (a leap second). Only the
 * letter case of day names, month names and "GMT" is free; the day name is not checked
 * against the date. False (writing nothing) for anything else. Any thread.
 */
bool cn_time_parse_http_date(const char *s, size_t len, time_t *out);

#endif
