/* SPDX-License-Identifier: MIT */
/* cairn_headers_t: a header list seen inside hooks. Names compare case-insensitively.
 * Strings passed in are copied; values returned are valid until the next change of the
 * same list. Loop thread only. */
#ifndef CAIRN_HEADERS_H
#define CAIRN_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include <cairn/iov.h>
#include <cairn/version.h>

typedef struct cairn_headers cairn_headers_t;

/** First value of @name; false when absent. */
CAIRN_API bool cairn_headers_get(const cairn_headers_t *h, cairn_iov_t name, cairn_iov_t *value);
/** Replaces every value of @name by one. */
CAIRN_API void cairn_headers_set(cairn_headers_t *h, cairn_iov_t name, cairn_iov_t value);
/** Appends a value, keeping existing ones (e.g. Set-Cookie). */
CAIRN_API void cairn_headers_add(cairn_headers_t *h, cairn_iov_t name, cairn_iov_t value);
/** Removes every value of @name; returns how many were removed. */
CAIRN_API size_t cairn_headers_remove(cairn_headers_t *h, cairn_iov_t name);
/** Number of fields, and the @i-th one (for iteration). */
CAIRN_API size_t cairn_headers_count(const cairn_headers_t *h);
CAIRN_API void cairn_headers_at(const cairn_headers_t *h, size_t i, cairn_iov_t *name,
                                cairn_iov_t *value);

#endif
