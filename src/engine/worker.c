/* SPDX-License-Identifier: MIT */
/* What the engine needs of its worker thread: the cross-thread message queue behind
 * cn_worker_post() and the cn_exec_t the lower layers are handed, request ids, and the
 * lookups the server handed down (caches by name). The threads themselves, their listeners
 * and their lifecycle are the server's (src/server/threads.c). */
#include "engine/worker.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "core/alloc.h"

struct cn_worker_msg {
    struct cn_worker_msg *next;
    cn_worker_fn fn;
    cn_task_fn task; /* posted through w->exec: fn is NULL */
    void *arg;
};

static atomic_uint_fast64_t id_counter;

uint64_t
cn_next_id(void)
{
    return atomic_fetch_add_explicit(&id_counter, 1, memory_order_relaxed) + 1;
}

static void
enqueue(cn_worker_t *w, cn_worker_fn fn, cn_task_fn task, void *arg)
{
    struct cn_worker_msg *m = cn_xmalloc(sizeof(*m));
    m->fn = fn;
    m->task = task;
    m->arg = arg;
    m->next = NULL;
    pthread_mutex_lock(&w->lock);
    struct cn_worker_msg **tail = &w->msgs;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = m;
    pthread_mutex_unlock(&w->lock);
    uv_async_send(&w->async);
}

void
cn_worker_post(cn_worker_t *w, cn_worker_fn fn, void *arg)
{
    enqueue(w, fn, NULL, arg);
}

static void
exec_post(cn_exec_t *ex, cn_task_fn fn, void *arg)
{
    cn_worker_t *w = (cn_worker_t *)((char *)ex - offsetof(cn_worker_t, exec));
    enqueue(w, NULL, fn, arg);
}

void
cn_worker_init_exec(cn_worker_t *w)
{
    w->exec.post = exec_post;
}

void
cn_worker_run_posted(cn_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    struct cn_worker_msg *m = w->msgs;
    w->msgs = NULL;
    pthread_mutex_unlock(&w->lock);
    while (m != NULL) {
        struct cn_worker_msg *next = m->next;
        if (m->fn != NULL)
            m->fn(w, m->arg);
        else
            m->task(m->arg);
        cn_free(m);
        m = next;
    }
}

void
cn_worker_free_posted(cn_worker_t *w)
{
    struct cn_worker_msg *m = w->msgs;
    while (m != NULL) {
        struct cn_worker_msg *next = m->next;
        cn_free(m);
        m = next;
    }
    w->msgs = NULL;
}

void
cn_worker_maybe_stop(cn_worker_t *w)
{
    if (w->on_idle != NULL)
        w->on_idle(w);
}

cn_cache_t *
cn_worker_cache(cn_worker_t *w, const char *name)
{
    const cn_cache_view_t *v = atomic_load_explicit(w->cache_view, memory_order_acquire);
    for (size_t i = 0; v != NULL && i < v->n; i++)
        if (strcmp(cn_cache_name(v->items[i]), name) == 0)
            return v->items[i];
    return NULL;
}
