/* SPDX-License-Identifier: MIT */
/* Per-upstream fetch slots. The queue is FIFO; a released slot moves straight to the oldest
 * queued entry (the in-flight count never drops in between, so no newcomer overtakes it). */
#include "upstream/limiter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/time.h"

enum wait_state { W_QUEUED = 0, W_GRANTED, W_CANCELED };

struct cn_slot_wait {
    cn_slot_wait_t *next;
    cn_limiter_t *l;
    atomic_int refcnt;
    int state; /* under the limiter lock */
    cn_exec_t *exec;
    cn_slot_granted_cb cb;
    void *arg;
    uint64_t queued_ns;
};

struct cn_limiter {
    char *name;
    pthread_mutex_t lock;
    uint64_t in_flight;
    cn_slot_wait_t *head, *tail;
    cn_limiter_stats_t st;
};

cn_limiter_t *
cn_limiter_new(const char *upstream)
{
    cn_limiter_t *l = cn_xcalloc(1, sizeof(*l));
    l->name = cn_xstrdup(upstream);
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

void
cn_limiter_free(cn_limiter_t *l)
{
    if (l == NULL)
        return;
    while (l->head != NULL) {
        cn_slot_wait_t *w = l->head;
        l->head = w->next;
        if (atomic_fetch_sub(&w->refcnt, 1) == 1)
            cn_free(w);
    }
    pthread_mutex_destroy(&l->lock);
    cn_free(l->name);
    cn_free(l);
}

const char *
cn_limiter_name(const cn_limiter_t *l)
{
    return l->name;
}

static void
wait_unref(cn_slot_wait_t *w)
{
    if (atomic_fetch_sub(&w->refcnt, 1) == 1)
        cn_free(w);
}

/* Under the lock: the wait of @e ended (its owner's thread decides how: admitted when the
 * grant reaches it, timeout or gone when it leaves first). */
static void
count_wait(cn_limiter_t *l, const cn_slot_wait_t *e, uint64_t *outcome)
{
    (*outcome)++;
    l->st.wait_ns_total += cn_time_now_ns() - e->queued_ns;
}

static void
deliver_grant(void *arg)
{
    cn_slot_wait_t *e = arg;
    pthread_mutex_lock(&e->l->lock);
    bool canceled = e->state == W_CANCELED;
    if (!canceled)
        count_wait(e->l, e, &e->l->st.admitted);
    pthread_mutex_unlock(&e->l->lock);
    if (canceled) {
        cn_limiter_release(e->l); /* its owner left after the grant was sent */
    } else {
        e->cb(e->arg);
        wait_unref(e); /* the owner forgets the entry once granted */
    }
    wait_unref(e);
}

bool
cn_limiter_acquire(cn_limiter_t *l, uint32_t max, cn_exec_t *exec, cn_slot_granted_cb cb, void *arg,
                   cn_slot_wait_t **wait)
{
    pthread_mutex_lock(&l->lock);
    if (max == 0 || l->in_flight < max) {
        l->in_flight++;
        l->st.immediate++;
        pthread_mutex_unlock(&l->lock);
        return true;
    }
    cn_slot_wait_t *e = cn_xcalloc(1, sizeof(*e));
    atomic_init(&e->refcnt, 2); /* the queue's and the caller's */
    e->l = l;
    e->exec = exec;
    e->cb = cb;
    e->arg = arg;
    e->queued_ns = cn_time_now_ns();
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->st.queued++;
    pthread_mutex_unlock(&l->lock);
    *wait = e;
    return false;
}

bool
cn_limiter_cancel(cn_limiter_t *l, cn_slot_wait_t *e, bool timeout)
{
    pthread_mutex_lock(&l->lock);
    bool was_queued = e->state == W_QUEUED;
    if (was_queued) {
        cn_slot_wait_t **pp = &l->head, *prev = NULL;
        while (*pp != NULL && *pp != e) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        CN_ASSERT(*pp == e);
        *pp = e->next;
        if (l->tail == e)
            l->tail = prev;
        l->st.queued--;
    }
    if (e->state != W_CANCELED)
        count_wait(l, e, timeout ? &l->st.timeouts : &l->st.canceled);
    e->state = W_CANCELED; /* a grant on its way will give the slot back */
    pthread_mutex_unlock(&l->lock);
    if (was_queued)
        wait_unref(e); /* the queue's reference */
    wait_unref(e);     /* the caller's */
    return was_queued;
}

void
cn_limiter_release(cn_limiter_t *l)
{
    pthread_mutex_lock(&l->lock);
    CN_ASSERT(l->in_flight > 0);
    cn_slot_wait_t *e = l->head;
    if (e == NULL) {
        l->in_flight--;
        pthread_mutex_unlock(&l->lock);
        return;
    }
    /* The slot passes to the oldest entry: in_flight stays the same. */
    l->head = e->next;
    if (l->head == NULL)
        l->tail = NULL;
    e->state = W_GRANTED; /* admitted when the grant reaches its owner (deliver_grant) */
    l->st.queued--;
    pthread_mutex_unlock(&l->lock);
    cn_exec_post(e->exec, deliver_grant, e); /* the queue's reference moves to the message */
}

void
cn_limiter_stats(cn_limiter_t *l, cn_limiter_stats_t *out)
{
    pthread_mutex_lock(&l->lock);
    *out = l->st;
    out->in_flight = l->in_flight;
    pthread_mutex_unlock(&l->lock);
}

/* ---- the table of an upstream's limiters ---------------------------------------------- */

struct cn_limiter_table {
    pthread_mutex_t lock;
    cn_limiter_t **items;
    size_t n;
};

cn_limiter_table_t *
cn_limiter_table_new(void)
{
    cn_limiter_table_t *t = cn_xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void
cn_limiter_table_free(cn_limiter_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        cn_limiter_free(t->items[i]);
    cn_free(t->items);
    pthread_mutex_destroy(&t->lock);
    cn_free(t);
}

cn_limiter_t *
cn_limiter_of(cn_limiter_table_t *t, const char *upstream)
{
    pthread_mutex_lock(&t->lock);
    cn_limiter_t *found = NULL;
    for (size_t i = 0; i < t->n && found == NULL; i++)
        if (strcmp(t->items[i]->name, upstream) == 0)
            found = t->items[i];
    if (found == NULL) {
        t->items = cn_xrealloc(t->items, (t->n + 1) * sizeof(*t->items));
        found = t->items[t->n++] = cn_limiter_new(upstream);
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}
