/* SPDX-License-Identifier: MIT */
/* cn_exec_t: a thread that runs tasks posted from any thread. It is what the lower layers
 * (the fill table, the origin limiter) need of a worker, handed down to them by whoever
 * waits, so they never reach up for the worker or the server. */
#ifndef CN_CORE_EXEC_H
#define CN_CORE_EXEC_H

typedef void (*cn_task_fn)(void *arg);

typedef struct cn_exec cn_exec_t;
struct cn_exec {
    /** Runs @fn(@arg) on the executor's own thread, soon. Any thread. */
    void (*post)(cn_exec_t *ex, cn_task_fn fn, void *arg);
};

static inline void
cn_exec_post(cn_exec_t *ex, cn_task_fn fn, void *arg)
{
    ex->post(ex, fn, arg);
}

#endif
