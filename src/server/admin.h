/* SPDX-License-Identifier: MIT */
/* The admin listener's request handler: /healthz, /readyz (and later /metrics, /config,
 * the cache API). Runs on the main thread; never exposed publicly by default. */
#ifndef CN_ADMIN_ADMIN_H
#define CN_ADMIN_ADMIN_H

#include "http/msg.h"

/** cn_http_handler_t for the admin listener; its ctx is the cn_server_t. */
extern const cn_http_handler_t cn_admin_handler;

#endif
