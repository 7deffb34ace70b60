/* SPDX-License-Identifier: MIT */
/* Bump allocator in 4 KiB blocks; large requests get a block of their own. */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/pool.h"

#define ARENA_BLOCK 4096
#define ARENA_ALIGN 16

struct cn_arena_block {
    struct cn_arena_block *next;
    size_t size, off;
    _Alignas(ARENA_ALIGN) char data[];
};

/* The standard blocks are recycled per thread (request arenas come and go constantly). */
static cn_pool_t block_pool =
    CN_POOL_INIT("arena-block", sizeof(struct cn_arena_block) + ARENA_BLOCK, 256);

static void
block_free(struct cn_arena_block *b)
{
    if (b->size == ARENA_BLOCK)
        cn_pool_free(&block_pool, b);
    else
        cn_free(b);
}

struct cn_arena_defer {
    struct cn_arena_defer *next;
    cn_arena_cleanup_cb fn;
    void *arg;
};

void
cn_arena_init(cn_arena_t *a, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->cap = cap;
}

static void
run_defers(cn_arena_t *a)
{
    while (a->defers != NULL) {
        struct cn_arena_defer *d = a->defers;
        a->defers = d->next;
        d->fn(d->arg);
    }
}

void
cn_arena_fini(cn_arena_t *a)
{
    run_defers(a);
    while (a->blocks != NULL) {
        struct cn_arena_block *b = a->blocks;
        a->blocks = b->next;
        block_free(b);
    }
    a->used = 0;
}

void
cn_arena_reset(cn_arena_t *a)
{
    run_defers(a);
    struct cn_arena_block *keep = NULL;
    while (a->blocks != NULL) {
        struct cn_arena_block *b = a->blocks;
        a->blocks = b->next;
        if (keep == NULL && b->size == ARENA_BLOCK)
            keep = b;
        else
            block_free(b);
    }
    if (keep != NULL) {
        keep->off = 0;
        keep->next = NULL;
        a->blocks = keep;
    }
    a->used = 0;
}

void *
cn_arena_alloc(cn_arena_t *a, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n || (a->cap != 0 && a->used + need > a->cap))
        return NULL;
    struct cn_arena_block *b = a->blocks;
    if (b != NULL && b->size - b->off >= need) {
        void *p = b->data + b->off;
        b->off += need;
        a->used += need;
        return p;
    }
    size_t size = need > ARENA_BLOCK / 4 ? need : ARENA_BLOCK;
    struct cn_arena_block *nb;
    if (size == ARENA_BLOCK) {
        nb = cn_pool_xalloc(&block_pool);
    } else {
        nb = cn_malloc(sizeof(*nb) + size);
        if (nb == NULL)
            return NULL;
    }
    nb->size = size;
    nb->off = need;
    if (size == ARENA_BLOCK || b == NULL) {
        nb->next = b;
        a->blocks = nb;
    } else {
        /* A large block goes behind the current one so the bump block stays in front. */
        nb->next = b->next;
        b->next = nb;
    }
    a->used += need;
    return nb->data;
}

void *
cn_arena_xalloc(cn_arena_t *a, size_t n)
{
    size_t cap = a->cap;
    a->cap = 0;
    void *p = cn_arena_alloc(a, n);
    a->cap = cap;
    if (p == NULL)
        abort();
    return p;
}

char *
cn_arena_strndup(cn_arena_t *a, const char *s, size_t n)
{
    char *p = cn_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void
cn_arena_defer(cn_arena_t *a, cn_arena_cleanup_cb fn, void *arg)
{
    struct cn_arena_defer *d = cn_arena_xalloc(a, sizeof(*d));
    d->fn = fn;
    d->arg = arg;
    d->next = a->defers;
    a->defers = d;
}
