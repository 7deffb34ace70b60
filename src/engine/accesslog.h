/* SPDX-License-Identifier: MIT */
/* The access log sink: one line per request, JSON or Apache combined. */
#ifndef CN_PROXY_ACCESSLOG_H
#define CN_PROXY_ACCESSLOG_H

#include "config/config.h"

/** Opens the access log named by @cfg (stdout, a path, or off). Main thread. */
cairn_err_t cn_accesslog_open(const cn_config_t *cfg);
/** Reopens the file (SIGUSR1). */
cairn_err_t cn_accesslog_reopen(void);
void cn_accesslog_close(void);

#endif
