/* SPDX-License-Identifier: MIT */
/* Monotonic nanoseconds for timing, wall clock for logs and HTTP dates. */
#ifndef CN_CORE_TIME_H
#define CN_CORE_TIME_H

#include <time.h>

#include "core/types.h"

uint64_t cn_time_now_ns(void);
/** Formats @t as an IMF-fixdate (29 chars + NUL) into @out. */
void cn_time_http_date(time_t t, char out[30]);
/** Parses IMF-fixdate, RFC 850 and asctime dates (RFC 9110 §5.6.7); false when invalid. */
bool cn_time_parse_http_date(const char *s, size_t len, time_t *out);

#endif
