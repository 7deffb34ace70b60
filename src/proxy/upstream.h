/* SPDX-License-Identifier: MIT */
/* Upstream HTTP/1.1 client and per-worker keep-alive pools. Private to src/proxy/. */
#ifndef CN_PROXY_UPSTREAM_H
#define CN_PROXY_UPSTREAM_H

#include "proxy/worker.h"

/** Closes every idle pooled connection of @w (worker stop). */
void cn_upstream_pools_close(cn_worker_t *w);

#endif
