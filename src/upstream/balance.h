/* SPDX-License-Identifier: MIT */
/* Peer choice behind an ops table: pick a peer for an attempt, hear how the attempt went.
 * Weighted round robin is the first implementation; retries ask again. Private to
 * src/upstream/. */
#ifndef CN_UPSTREAM_BALANCE_H
#define CN_UPSTREAM_BALANCE_H

#include "upstream/upstream.h"

typedef enum cn_balance_outcome {
    CN_BALANCE_OK,
    CN_BALANCE_CONNECT_FAILED,
    CN_BALANCE_FAILED, /* reset, timeout or protocol error after connecting */
} cn_balance_outcome_t;

typedef struct cn_balancer_ops {
    const char *name;
    /** A peer of @up for attempt number @attempt (0 first). Never NULL when @up has peers. */
    const cn_conf_peer_t *(*pick)(cn_up_ctx_t *ctx, const cn_conf_upstream_t *up, unsigned attempt);
    /** How an attempt on @peer ended (health and least-request balancers listen). */
    void (*report)(cn_up_ctx_t *ctx, const cn_conf_upstream_t *up, const cn_conf_peer_t *peer,
                   cn_balance_outcome_t outcome);
} cn_balancer_ops_t;

/** The balancer @up is configured with. */
const cn_balancer_ops_t *cn_balancer_for(const cn_conf_upstream_t *up);

extern const cn_balancer_ops_t cn_balancer_round_robin;

#endif
