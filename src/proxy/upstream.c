/* SPDX-License-Identifier: MIT */
/* placeholder, replaced by the upstream client */
#include "proxy/upstream.h"

#include "proxy/session.h"

void
cn_upstream_pools_close(cn_worker_t *w)
{
    (void)w;
}

void
cn_action_proxy(cn_session_t *s)
{
    cn_session_error(s, 502, "proxying not implemented yet");
}

void
cn_action_files(cn_session_t *s)
{
    cn_session_error(s, 404, "files not implemented yet");
}
