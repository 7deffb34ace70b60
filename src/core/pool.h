/* SPDX-License-Identifier: MIT */
/* cn_pool_t: fixed-size object pools with a per-thread free list (HAProxy's typed pools, h2o's
 * recycle allocators). The hot objects (connections, request arena blocks) are recycled on the
 * thread that frees them instead of going back to malloc each time. */
#ifndef CN_CORE_POOL_H
#define CN_CORE_POOL_H

#include "core/types.h"

typedef struct cn_pool {
    const char *name;
    size_t size;     /* object size */
    size_t max_free; /* free objects kept per thread; beyond that they go back to malloc */
    unsigned slot;   /* index of this pool's per-thread free list */
} cn_pool_t;

#define CN_POOL_MAX 8 /* pools in the process (each has a per-thread list) */

/** Declares a pool; call once per pool at startup (or statically initialise with slot set by
 *  cn_pool_register on first use). */
#define CN_POOL_INIT(name_, size_, max_free_)                                                      \
    {                                                                                              \
        .name = (name_), .size = (size_), .max_free = (max_free_), .slot = 0                       \
    }

/** An object of p->size bytes (uninitialised); aborts on out of memory. Any thread. */
void *cn_pool_xalloc(cn_pool_t *p);
/** Returns @obj to this thread's free list (or to malloc when the list is full). NULL is a
 *  no-op. */
void cn_pool_free(cn_pool_t *p, void *obj);
/** Frees this thread's cached objects (at thread exit). */
void cn_pool_thread_release(void);

#endif
