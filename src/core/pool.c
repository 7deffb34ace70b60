/* SPDX-License-Identifier: MIT */
/* Per-thread free lists: no locks, no atomics on the hot path. Slots are assigned to pools on
 * first use, in a small fixed table. */
#include "core/pool.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/assert.h"

struct free_obj {
    struct free_obj *next;
};

struct thread_list {
    struct free_obj *head;
    size_t n;
    size_t size;
};

static _Thread_local struct thread_list lists[CN_POOL_MAX];
static atomic_uint next_slot = 1; /* 0 = not registered yet */

static unsigned
slot_of(cn_pool_t *p)
{
    unsigned s = __atomic_load_n(&p->slot, __ATOMIC_ACQUIRE);
    if (CN_LIKELY(s != 0))
        return s - 1;
    unsigned want = atomic_fetch_add(&next_slot, 1);
    CN_ASSERT(want <= CN_POOL_MAX);
    unsigned expected = 0;
    if (!__atomic_compare_exchange_n(&p->slot, &expected, want, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        want = expected; /* another thread registered it first */
    return want - 1;
}

void *
cn_pool_xalloc(cn_pool_t *p)
{
    struct thread_list *l = &lists[slot_of(p)];
    if (l->head != NULL) {
        struct free_obj *o = l->head;
        l->head = o->next;
        l->n--;
        return o;
    }
    return cn_xmalloc(p->size < sizeof(struct free_obj) ? sizeof(struct free_obj) : p->size);
}

void
cn_pool_free(cn_pool_t *p, void *obj)
{
    if (obj == NULL)
        return;
    struct thread_list *l = &lists[slot_of(p)];
    if (l->n >= p->max_free) {
        cn_free(obj);
        return;
    }
    struct free_obj *o = obj;
    o->next = l->head;
    l->head = o;
    l->n++;
}

void
cn_pool_thread_release(void)
{
    for (size_t i = 0; i < CN_POOL_MAX; i++) {
        while (lists[i].head != NULL) {
            struct free_obj *o = lists[i].head;
            lists[i].head = o->next;
            cn_free(o);
        }
        lists[i].n = 0;
    }
}
