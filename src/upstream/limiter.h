/* SPDX-License-Identifier: MIT */
/* Origin backpressure (seed 003): a bounded number of concurrent origin fetches per upstream,
 * shared by every worker, with a FIFO queue. A slot belongs to a fetch (a fill), not to a
 * client: the fetch releases it however it ends. Private to src/upstream/ and its consumers. */
#ifndef CN_PROXY_LIMITER_H
#define CN_PROXY_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/exec.h"

typedef struct cn_limiter cn_limiter_t;
typedef struct cn_slot_wait cn_slot_wait_t;

/** Called on the waiter's worker when a queued request got its slot; the wait entry is gone
 *  after it (the owner must forget its pointer). */
typedef void (*cn_slot_granted_cb)(void *arg);

/* The queue counters have the population of cairn_origin_fetch_queue_wait_seconds: entries
 * that waited in the queue, by how the wait ended (admitted, timeout, gone). A slot taken at
 * once never waited: it counts in @immediate only. */
typedef struct cn_limiter_stats {
    uint64_t in_flight;
    uint64_t queued;
    uint64_t immediate;                    /* slots taken without queueing */
    uint64_t admitted, timeouts, canceled; /* queue outcomes */
    uint64_t wait_ns_total;                /* summed wait of every queued entry, any outcome */
} cn_limiter_stats_t;

cn_limiter_t *cn_limiter_new(const char *upstream);
void cn_limiter_free(cn_limiter_t *l);
const char *cn_limiter_name(const cn_limiter_t *l);

/** Takes a slot now (true) or queues the caller (false, *@wait set): @cb(@arg) then runs on
 *  @w's thread when the slot is granted. @max 0 means unlimited (always true). */
bool cn_limiter_acquire(cn_limiter_t *l, uint32_t max, cn_exec_t *exec, cn_slot_granted_cb cb,
                        void *arg, cn_slot_wait_t **wait);
/** Leaves the queue (client gone, or @timeout); the caller does not hold a slot afterwards
 *  and its grant callback never runs (a grant already on its way gives the slot back when it
 *  arrives). The wait counts as a timeout or gone either way, as the caller saw it. Returns
 *  true when the entry was still queued. Call on @w's thread. */
bool cn_limiter_cancel(cn_limiter_t *l, cn_slot_wait_t *wait, bool timeout);
/** Gives a slot back; the oldest queued entry gets it. Any thread. */
void cn_limiter_release(cn_limiter_t *l);
void cn_limiter_stats(cn_limiter_t *l, cn_limiter_stats_t *out);

/** The limiters of a running server, one per upstream name, shared by every worker. */
typedef struct cn_limiter_table cn_limiter_table_t;
cn_limiter_table_t *cn_limiter_table_new(void);
void cn_limiter_table_free(cn_limiter_table_t *t);
/** The limiter of upstream @upstream (created on first use; lives as long as @t). Any
 *  thread. */
cn_limiter_t *cn_limiter_of(cn_limiter_table_t *t, const char *upstream);

#endif
