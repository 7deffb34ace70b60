/* SPDX-License-Identifier: MIT */
/* Weighted round robin over peers[].weight with this thread's cursor. (The rotation is per
 * worker today; a shared one comes with the balancing issue.) */
#include "upstream/balance.h"

static const cn_conf_peer_t *
rr_pick(cn_up_ctx_t *ctx, const cn_conf_upstream_t *up, unsigned attempt)
{
    (void)attempt;
    uint64_t total = 0;
    for (size_t i = 0; i < up->n_peers; i++)
        total += up->peers[i].weight ? up->peers[i].weight : 1;
    uint64_t k = ctx->rr++ % (total ? total : 1);
    for (size_t i = 0; i < up->n_peers; i++) {
        uint64_t wgt = up->peers[i].weight ? up->peers[i].weight : 1;
        if (k < wgt)
            return &up->peers[i];
        k -= wgt;
    }
    return &up->peers[0];
}

static void
rr_report(cn_up_ctx_t *ctx, const cn_conf_upstream_t *up, const cn_conf_peer_t *peer,
          cn_balance_outcome_t outcome)
{
    (void)ctx;
    (void)up;
    (void)peer;
    (void)outcome;
}

const cn_balancer_ops_t cn_balancer_round_robin = {
    .name = "round_robin",
    .pick = rr_pick,
    .report = rr_report,
};

const cn_balancer_ops_t *
cn_balancer_for(const cn_conf_upstream_t *up)
{
    (void)up;
    return &cn_balancer_round_robin;
}
