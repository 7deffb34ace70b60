/* SPDX-License-Identifier: MIT */
/* cn_arena_t: a growable bump allocator with a byte cap and deferred cleanups.
 * Each connection and each request owns one; memory is released all at once. */
#ifndef CN_CORE_ARENA_H
#define CN_CORE_ARENA_H

#include "core/types.h"
#include "core/compiler.h"

typedef void (*cn_arena_cleanup_cb)(void *arg);

struct cn_arena_block;
struct cn_arena_defer;

struct cn_arena {
    struct cn_arena_block *blocks; /* current block first */
    struct cn_arena_defer *defers; /* run in reverse order of registration */
    size_t used;                   /* bytes handed out, for the cap */
    size_t cap;                    /* 0 = unlimited */
};

/** Initialises @a with a byte cap (0 = none). No memory is allocated until first use. */
void cn_arena_init(cn_arena_t *a, size_t cap);
/** Runs the deferred cleanups and releases every block. A zeroed arena is a no-op. */
void cn_arena_fini(cn_arena_t *a);
/** Releases everything but keeps the first block for reuse (keep-alive requests). */
void cn_arena_reset(cn_arena_t *a);
/** Returns 16-byte aligned memory, or NULL when the cap would be exceeded. */
CN_MUST_CHECK void *cn_arena_alloc(cn_arena_t *a, size_t n);
/** Like cn_arena_alloc, aborts instead of returning NULL (for small control data). */
void *cn_arena_xalloc(cn_arena_t *a, size_t n);
/** Copies @s into the arena with a trailing NUL; NULL when over the cap. */
char *cn_arena_strndup(cn_arena_t *a, const char *s, size_t n);
/** Registers @fn(@arg) to run at fini/reset. */
void cn_arena_defer(cn_arena_t *a, cn_arena_cleanup_cb fn, void *arg);

#endif
