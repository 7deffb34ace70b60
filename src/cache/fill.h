/* SPDX-License-Identifier: MIT */
/* Fills: one origin fetch per cache key at a time, across all workers. A fill is owned by no
 * client: its leader session fetches and appends to the fill's object; every waiter (on any
 * worker) streams from that object as bytes arrive. Waiters are reached on their own thread
 * through the executor each one names (cn_exec_t); a waiter whose client left is dropped at
 * once.
 * Used by the engine (src/engine/), which waits on fills. */
#ifndef CN_PROXY_FILL_H
#define CN_PROXY_FILL_H

#include <pthread.h>

#include "cache/cache.h"
#include "core/exec.h"

typedef struct cn_fill cn_fill_t;
typedef struct cn_fill_waiter cn_fill_waiter_t;
typedef struct cn_fill_table cn_fill_table_t;

typedef enum cn_fill_state {
    CN_FILL_PENDING = 0, /* the leader waits for the response head */
    CN_FILL_STREAMING,   /* head known, object body growing */
    CN_FILL_DONE,        /* complete (stored, or complete but not storable by the tier) */
    CN_FILL_PASS,        /* the response is not cacheable: fetch on your own */
    CN_FILL_FAILED,      /* the fetch failed after the head: abort */
    CN_FILL_BUSY,        /* the fetch never got an origin slot (queue_timeout): 503 */
    /* Before the head, the leader answered its client with the stale object because the
     * origin failed: each waiter does the same when its own request allows it (RFC 9111
     * §4.2.4, RFC 5861 §4), else it fetches on its own. */
    CN_FILL_UNREACHABLE,  /* connect failure, reset or close before a head, timeout */
    CN_FILL_ORIGIN_ERROR, /* a 500, 502, 503 or 504 answer (not stored) */
} cn_fill_state_t;

/** What a waiter is told on its own thread. */
typedef enum cn_fill_event {
    CN_FILL_EV_PROGRESS, /* state changed or bytes were appended */
    CN_FILL_EV_LEAD,     /* the leader failed before the head: this waiter leads now */
} cn_fill_event_t;

typedef void (*cn_fill_notify_cb)(void *session, cn_fill_t *f, cn_fill_event_t ev);

struct cn_fill {
    atomic_int refcnt;
    cn_fill_table_t *table;
    cn_cache_key_t key;
    pthread_mutex_t lock; /* guards everything below, and appends to obj's body */
    cn_fill_state_t state;
    cn_cache_obj_t *obj; /* set when the head is known (STREAMING and after) */
    uint64_t avail;      /* body bytes of obj readable now */
    cn_fill_waiter_t *waiters;
    size_t n_waiters;
    uint64_t progress_ns; /* last head/body progress, for age_timeout */
    uint64_t leader_gen;  /* bumps when a waiter takes over a stalled fill */
    bool queued;          /* the leader waits for an origin slot: not stalled at the origin */
    bool in_table;
};

struct cn_fill_waiter {
    atomic_int refcnt;
    cn_fill_waiter_t *next; /* in fill->waiters, under fill->lock */
    cn_exec_t *exec;        /* the waiter's thread */
    void *session;          /* NULL once the session left (touched only on w's thread) */
    cn_fill_notify_cb notify;
    atomic_bool posted; /* a progress notification is already queued */
    bool linked;
};

/** A process-wide table (one per server). */
cn_fill_table_t *cn_fill_table_new(void);
void cn_fill_table_free(cn_fill_table_t *t);

/** Finds the fill of @key, or creates it with the caller as leader (*@leader = true).
 *  Returns a reference. Any thread. */
cn_fill_t *cn_fill_join(cn_fill_table_t *t, const cn_cache_key_t *key, bool *leader);
void cn_fill_ref(cn_fill_t *f);
void cn_fill_unref(cn_fill_t *f);

/** Adds a waiter for @session on @w; returns it with a reference for the caller. */
cn_fill_waiter_t *cn_fill_wait(cn_fill_t *f, cn_exec_t *exec, void *session,
                               cn_fill_notify_cb notify);
/** The waiter's session leaves (client gone, timeout, finished). Caller's thread = w's. */
void cn_fill_leave(cn_fill_t *f, cn_fill_waiter_t *wt);

/** Leader: the head is known and storable: @obj (a reference is taken) becomes readable. */
void cn_fill_publish_head(cn_fill_t *f, uint64_t gen, cn_cache_obj_t *obj);
/** Leader: body bytes appended to the object (under the fill lock). False when the object
 *  would exceed @max (the fill then fails). */
bool cn_fill_append(cn_fill_t *f, uint64_t gen, const char *p, size_t n, uint64_t max);
/** Leader: end of the fetch with @state (DONE, PASS, FAILED, or before the head BUSY,
 *  UNREACHABLE, ORIGIN_ERROR). Before the head, FAILED
 *  hands leadership to the oldest waiter instead of failing them. The fill leaves the table. */
void cn_fill_finish(cn_fill_t *f, uint64_t gen, cn_fill_state_t state);
/** A waiter takes over a fill whose leader made no progress for @stall_ns; returns the new
 *  generation, or 0 when the fill is not stalled (or already past its head). */
uint64_t cn_fill_take_over(cn_fill_t *f, uint64_t stall_ns);
/** Leader: the fetch is queued for an origin slot (true) or got one (false). */
void cn_fill_set_queued(cn_fill_t *f, uint64_t gen, bool queued);
/** Number of waiters now. */
size_t cn_fill_waiters(cn_fill_t *f);
/** Current generation (a new leader's). */
uint64_t cn_fill_gen(cn_fill_t *f);

/** Hit-for-pass: remember that @key is not cacheable for @ttl_ms. */
void cn_fill_mark_pass(cn_fill_table_t *t, const cn_cache_key_t *key, uint64_t ttl_ms);
bool cn_fill_is_pass(cn_fill_table_t *t, const cn_cache_key_t *key);

#endif
