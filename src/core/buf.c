/* SPDX-License-Identifier: MIT */
/* Growable I/O buffer; consumed space is reclaimed by moving data to the front. */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/pool.h"

/* The standard read buffer (a connection reading a request head) is recycled per thread:
 * it is taken for every request and given back as soon as it is empty. */
#define BUF_POOLED 16384
static cn_pool_t buf_pool = CN_POOL_INIT("buf-16k", BUF_POOLED, 64);

static char *
buf_alloc(size_t cap)
{
    return cap == BUF_POOLED ? cn_pool_xalloc(&buf_pool) : cn_malloc(cap);
}

static void
buf_free(char *p, size_t cap)
{
    if (cap == BUF_POOLED)
        cn_pool_free(&buf_pool, p);
    else
        cn_free(p);
}

cairn_err_t
cn_buf_reserve(cn_buf_t *b, size_t n, size_t limit)
{
    if (cn_buf_room(b) >= n)
        return CAIRN_OK;
    if (b->len == 0)
        b->head = 0;
    if (b->head > 0 && b->cap - b->len >= n) {
        memmove(b->data, b->data + b->head, b->len);
        b->head = 0;
        return CAIRN_OK;
    }
    size_t want = b->len + n;
    if (limit != 0 && want > limit)
        return CAIRN_ETOOBIG;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < want)
        cap *= 2;
    if (limit != 0 && cap > limit)
        cap = limit;
    char *p = buf_alloc(cap);
    if (p == NULL)
        return CAIRN_ENOMEM;
    if (b->len)
        memcpy(p, b->data + b->head, b->len);
    buf_free(b->data, b->cap);
    b->data = p;
    b->head = 0;
    b->cap = cap;
    return CAIRN_OK;
}

void
cn_buf_commit(cn_buf_t *b, size_t n)
{
    CN_ASSERT(n <= cn_buf_room(b));
    b->len += n;
}

void
cn_buf_consume(cn_buf_t *b, size_t n)
{
    CN_ASSERT(n <= b->len);
    b->head += n;
    b->len -= n;
    if (b->len == 0)
        b->head = 0;
}

void
cn_buf_append(cn_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return; /* p may be NULL for an empty slice */
    if (cn_buf_reserve(b, n, 0) != CAIRN_OK)
        abort();
    memcpy(cn_buf_tail(b), p, n);
    b->len += n;
}

void
cn_buf_fini(cn_buf_t *b)
{
    buf_free(b->data, b->cap);
    b->data = NULL;
    b->head = b->len = b->cap = 0;
}
