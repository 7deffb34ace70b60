/* SPDX-License-Identifier: MIT */
/* The fill table and fill objects. Every field of a fill is guarded by its mutex; waiters
 * are told about progress on their own worker thread (one queued notification at most per
 * waiter, so a fast origin does not flood a slow worker). */
#include "cache/fill.h"

#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/time.h"

#define TABLE_BUCKETS 1024
#define PASS_SLOTS 4096

struct fill_node {
    struct fill_node *next;
    cn_fill_t *fill;
};

struct pass_slot {
    uint64_t fp;
    uint64_t until_ns;
};

struct cn_fill_table {
    pthread_mutex_t lock;
    struct fill_node *buckets[TABLE_BUCKETS];
    struct pass_slot pass[PASS_SLOTS];
};

struct lead_msg {
    cn_fill_t *fill;
    cn_fill_waiter_t *wt;
};

static uint32_t
key_bucket(const cn_cache_key_t *k)
{
    uint32_t h;
    memcpy(&h, k->b + 4, 4);
    return h % TABLE_BUCKETS;
}

static uint64_t
key_fp(const cn_cache_key_t *k)
{
    uint64_t v;
    memcpy(&v, k->b, 8);
    return v | 1;
}

cn_fill_table_t *
cn_fill_table_new(void)
{
    cn_fill_table_t *t = cn_xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void
cn_fill_table_free(cn_fill_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < TABLE_BUCKETS; i++) {
        while (t->buckets[i] != NULL) {
            struct fill_node *n = t->buckets[i];
            t->buckets[i] = n->next;
            n->fill->in_table = false;
            cn_fill_unref(n->fill);
            cn_free(n);
        }
    }
    pthread_mutex_destroy(&t->lock);
    cn_free(t);
}

cn_fill_t *
cn_fill_join(cn_fill_table_t *t, const cn_cache_key_t *key, bool *leader)
{
    pthread_mutex_lock(&t->lock);
    struct fill_node **pp = &t->buckets[key_bucket(key)];
    for (struct fill_node *n = *pp; n != NULL; n = n->next) {
        if (memcmp(n->fill->key.b, key->b, 16) == 0) {
            atomic_fetch_add(&n->fill->refcnt, 1);
            pthread_mutex_unlock(&t->lock);
            *leader = false;
            return n->fill;
        }
    }
    cn_fill_t *f = cn_xcalloc(1, sizeof(*f));
    atomic_init(&f->refcnt, 2); /* the table's and the caller's */
    f->table = t;
    f->key = *key;
    pthread_mutex_init(&f->lock, NULL);
    f->state = CN_FILL_PENDING;
    f->progress_ns = cn_time_now_ns();
    f->leader_gen = 1;
    f->in_table = true;
    struct fill_node *n = cn_xmalloc(sizeof(*n));
    n->fill = f;
    n->next = *pp;
    *pp = n;
    pthread_mutex_unlock(&t->lock);
    *leader = true;
    return f;
}

static void
table_remove(cn_fill_t *f)
{
    cn_fill_table_t *t = f->table;
    bool removed = false;
    pthread_mutex_lock(&t->lock);
    for (struct fill_node **pp = &t->buckets[key_bucket(&f->key)]; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->fill == f) {
            struct fill_node *n = *pp;
            *pp = n->next;
            cn_free(n);
            removed = true;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (removed) {
        f->in_table = false;
        cn_fill_unref(f);
    }
}

static void
waiter_unref(cn_fill_waiter_t *wt)
{
    if (atomic_fetch_sub(&wt->refcnt, 1) == 1)
        cn_free(wt);
}

void
cn_fill_ref(cn_fill_t *f)
{
    atomic_fetch_add(&f->refcnt, 1);
}

void
cn_fill_unref(cn_fill_t *f)
{
    if (f == NULL || atomic_fetch_sub(&f->refcnt, 1) != 1)
        return;
    CN_ASSERT(f->waiters == NULL);
    cn_cache_obj_unref(f->obj);
    pthread_mutex_destroy(&f->lock);
    cn_free(f);
}

/* ---- notifications --------------------------------------------------------------------- */

struct progress_msg {
    cn_fill_t *fill;
    cn_fill_waiter_t *wt;
};

static void
deliver_progress(void *arg)
{
    struct progress_msg *m = arg;
    atomic_store(&m->wt->posted, false);
    if (m->wt->session != NULL)
        m->wt->notify(m->wt->session, m->fill, CN_FILL_EV_PROGRESS);
    waiter_unref(m->wt);
    cn_fill_unref(m->fill);
    cn_free(m);
}

/* Under f->lock. */
static void
notify_all(cn_fill_t *f)
{
    for (cn_fill_waiter_t *wt = f->waiters; wt != NULL; wt = wt->next) {
        if (atomic_exchange(&wt->posted, true))
            continue;
        struct progress_msg *m = cn_xmalloc(sizeof(*m));
        m->fill = f;
        m->wt = wt;
        atomic_fetch_add(&f->refcnt, 1);
        atomic_fetch_add(&wt->refcnt, 1);
        cn_exec_post(wt->exec, deliver_progress, m);
    }
}

static void post_lead(cn_fill_t *f);

static void
deliver_lead(void *arg)
{
    struct lead_msg *m = arg;
    if (m->wt->session != NULL) {
        m->wt->notify(m->wt->session, m->fill, CN_FILL_EV_LEAD);
    } else {
        /* The elected waiter left meanwhile: elect the next one. */
        pthread_mutex_lock(&m->fill->lock);
        post_lead(m->fill);
        bool gone = m->fill->state != CN_FILL_PENDING;
        pthread_mutex_unlock(&m->fill->lock);
        if (gone)
            table_remove(m->fill);
    }
    waiter_unref(m->wt);
    cn_fill_unref(m->fill);
    cn_free(m);
}

/* Under f->lock: the oldest waiter leads now (it leaves the waiter list). Without waiters,
 * the fill leaves the table so the next request starts afresh. */
static void
post_lead(cn_fill_t *f)
{
    cn_fill_waiter_t **pp = &f->waiters;
    if (*pp == NULL) {
        f->state = CN_FILL_FAILED;
        return;
    }
    while ((*pp)->next != NULL)
        pp = &(*pp)->next; /* waiters are pushed at the head: the oldest is last */
    cn_fill_waiter_t *wt = *pp;
    *pp = NULL;
    wt->linked = false;
    f->n_waiters--;
    f->leader_gen++;
    f->progress_ns = cn_time_now_ns();
    struct lead_msg *m = cn_xmalloc(sizeof(*m));
    m->fill = f;
    m->wt = wt; /* the list's reference moves to the message */
    atomic_fetch_add(&f->refcnt, 1);
    cn_exec_post(wt->exec, deliver_lead, m);
}

/* ---- waiters --------------------------------------------------------------------------- */

cn_fill_waiter_t *
cn_fill_wait(cn_fill_t *f, cn_exec_t *exec, void *session, cn_fill_notify_cb notify)
{
    cn_fill_waiter_t *wt = cn_xcalloc(1, sizeof(*wt));
    atomic_init(&wt->refcnt, 2); /* the list's and the caller's */
    wt->exec = exec;
    wt->session = session;
    wt->notify = notify;
    pthread_mutex_lock(&f->lock);
    wt->next = f->waiters;
    f->waiters = wt;
    wt->linked = true;
    f->n_waiters++;
    pthread_mutex_unlock(&f->lock);
    return wt;
}

void
cn_fill_leave(cn_fill_t *f, cn_fill_waiter_t *wt)
{
    wt->session = NULL;
    pthread_mutex_lock(&f->lock);
    bool was_linked = wt->linked;
    if (wt->linked) {
        for (cn_fill_waiter_t **pp = &f->waiters; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == wt) {
                *pp = wt->next;
                break;
            }
        }
        wt->linked = false;
        f->n_waiters--;
    }
    pthread_mutex_unlock(&f->lock);
    if (was_linked)
        waiter_unref(wt); /* the list's reference */
    waiter_unref(wt);     /* the caller's */
}

/* ---- leader side ----------------------------------------------------------------------- */

uint64_t
cn_fill_gen(cn_fill_t *f)
{
    pthread_mutex_lock(&f->lock);
    uint64_t g = f->leader_gen;
    pthread_mutex_unlock(&f->lock);
    return g;
}

void
cn_fill_publish_head(cn_fill_t *f, uint64_t gen, cn_cache_obj_t *obj)
{
    pthread_mutex_lock(&f->lock);
    if (gen == f->leader_gen && f->state == CN_FILL_PENDING) {
        cn_cache_obj_ref(obj);
        f->obj = obj;
        f->avail = obj->body_len;
        f->state = CN_FILL_STREAMING;
        f->progress_ns = cn_time_now_ns();
        notify_all(f);
    }
    pthread_mutex_unlock(&f->lock);
}

bool
cn_fill_append(cn_fill_t *f, uint64_t gen, const char *p, size_t n, uint64_t max)
{
    pthread_mutex_lock(&f->lock);
    bool ok = true;
    if (gen == f->leader_gen && f->state == CN_FILL_STREAMING) {
        ok = cn_cache_obj_append(f->obj, p, n, max);
        f->avail = f->obj->body_len;
        f->progress_ns = cn_time_now_ns();
        notify_all(f);
    }
    pthread_mutex_unlock(&f->lock);
    return ok;
}

void
cn_fill_finish(cn_fill_t *f, uint64_t gen, cn_fill_state_t state)
{
    pthread_mutex_lock(&f->lock);
    if (gen != f->leader_gen) {
        pthread_mutex_unlock(&f->lock);
        return;
    }
    bool keep = false;
    if (state == CN_FILL_FAILED && f->state == CN_FILL_PENDING && f->waiters != NULL) {
        /* Nothing reached the waiters yet: one of them fetches next, not all at once. */
        post_lead(f);
        keep = f->state == CN_FILL_PENDING;
    } else {
        if (state == CN_FILL_DONE && f->obj != NULL)
            f->obj->complete = true;
        f->state = state;
        notify_all(f);
    }
    pthread_mutex_unlock(&f->lock);
    if (!keep)
        table_remove(f);
}

void
cn_fill_set_queued(cn_fill_t *f, uint64_t gen, bool queued)
{
    pthread_mutex_lock(&f->lock);
    if (gen == f->leader_gen) {
        f->queued = queued;
        f->progress_ns = cn_time_now_ns(); /* the origin part starts now */
    }
    pthread_mutex_unlock(&f->lock);
}

size_t
cn_fill_waiters(cn_fill_t *f)
{
    pthread_mutex_lock(&f->lock);
    size_t n = f->n_waiters;
    pthread_mutex_unlock(&f->lock);
    return n;
}

uint64_t
cn_fill_take_over(cn_fill_t *f, uint64_t stall_ns)
{
    uint64_t gen = 0;
    uint64_t now = cn_time_now_ns();
    pthread_mutex_lock(&f->lock);
    /* A fill queued for an origin slot has not stalled: it is not taken over. */
    if (f->state == CN_FILL_PENDING && !f->queued && now - f->progress_ns >= stall_ns) {
        gen = ++f->leader_gen;
        f->progress_ns = now;
    }
    pthread_mutex_unlock(&f->lock);
    return gen;
}

/* ---- hit-for-pass ---------------------------------------------------------------------- */

void
cn_fill_mark_pass(cn_fill_table_t *t, const cn_cache_key_t *key, uint64_t ttl_ms)
{
    uint64_t fp = key_fp(key);
    pthread_mutex_lock(&t->lock);
    struct pass_slot *s = &t->pass[fp % PASS_SLOTS];
    s->fp = fp;
    s->until_ns = cn_time_now_ns() + ttl_ms * 1000000ull;
    pthread_mutex_unlock(&t->lock);
}

bool
cn_fill_is_pass(cn_fill_table_t *t, const cn_cache_key_t *key)
{
    uint64_t fp = key_fp(key);
    pthread_mutex_lock(&t->lock);
    struct pass_slot *s = &t->pass[fp % PASS_SLOTS];
    bool pass = s->fp == fp && s->until_ns > cn_time_now_ns();
    pthread_mutex_unlock(&t->lock);
    return pass;
}
