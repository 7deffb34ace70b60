/* SPDX-License-Identifier: MIT */
/* cn_buf_t: an owned contiguous I/O buffer with a cheap consume and compaction on reserve. */
#ifndef CN_CORE_BUF_H
#define CN_CORE_BUF_H

#include "core/types.h"
#include "core/compiler.h"

struct cn_buf {
    char *data;
    size_t head; /* first unread byte */
    size_t len;  /* unread bytes from head */
    size_t cap;
};

/** Readable bytes. */
static inline char *
cn_buf_start(const cn_buf_t *b)
{
    return b->data + b->head;
}

static inline bool
cn_buf_is_empty(const cn_buf_t *b)
{
    return b->len == 0;
}

/** Makes room for @n more bytes after the readable ones, up to @limit total capacity.
 *  Returns CAIRN_ETOOBIG past the limit, CAIRN_ENOMEM on allocation failure. */
CN_MUST_CHECK cairn_err_t cn_buf_reserve(cn_buf_t *b, size_t n, size_t limit);
/** Pointer to the free space after the readable bytes (valid until the next reserve). */
static inline char *
cn_buf_tail(const cn_buf_t *b)
{
    return b->data + b->head + b->len;
}
static inline size_t
cn_buf_room(const cn_buf_t *b)
{
    return b->cap - b->head - b->len;
}
/** Marks @n bytes written at the tail as readable. */
void cn_buf_commit(cn_buf_t *b, size_t n);
/** Drops @n readable bytes from the front. */
void cn_buf_consume(cn_buf_t *b, size_t n);
/** Appends @n bytes (reserving as needed, aborting on OOM; for data cairn sizes). */
void cn_buf_append(cn_buf_t *b, const void *p, size_t n);
/** Releases the storage; a zeroed buffer is a no-op. */
void cn_buf_fini(cn_buf_t *b);

#endif
