/* SPDX-License-Identifier: MIT */
/* cn_headers_t: the protocol-neutral header list of a request or response.
 * Names keep their case; lookups are case-insensitive. Storage comes from an arena. */
#ifndef CN_HTTP_HEADERS_H
#define CN_HTTP_HEADERS_H

#include "core/arena.h"
#include <sys/types.h>

#include "core/types.h"

typedef struct cn_header {
    cairn_iov_t name;
    cairn_iov_t value;
} cn_header_t;

struct cn_headers {
    cn_header_t *items;
    size_t n, cap;
    cn_arena_t *arena; /* where items and copied strings live */
};

void cn_headers_init(cn_headers_t *h, cn_arena_t *arena);
/** Appends a field; @name/@value are borrowed and must outlive @h (see _copy variants). */
void cn_headers_add(cn_headers_t *h, cairn_iov_t name, cairn_iov_t value);
/** Appends a copy of both strings (made in the arena). */
void cn_headers_add_copy(cn_headers_t *h, cairn_iov_t name, cairn_iov_t value);
/** Removes every field named @name, then appends one copy. */
void cn_headers_set_copy(cn_headers_t *h, cairn_iov_t name, cairn_iov_t value);
/** Removes every field named @name; returns how many were removed. */
size_t cn_headers_remove(cn_headers_t *h, cairn_iov_t name);
/** First value of @name, or NULL. Valid until the next mutation of @h. */
const cairn_iov_t *cn_headers_get(const cn_headers_t *h, cairn_iov_t name);
/** Index of the next field named @name after index @from (-1 to start); -1 when none. */
ssize_t cn_headers_find(const cn_headers_t *h, cairn_iov_t name, ssize_t from);
/** True when a comma-separated list field @name contains the token @tok (case-insensitive). */
bool cn_headers_has_token(const cn_headers_t *h, cairn_iov_t name, cairn_iov_t tok);

#endif
