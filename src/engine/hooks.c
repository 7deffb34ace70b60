/* SPDX-License-Identifier: MIT */
/* Calling the registered hook tables at each phase of a session. Request-side phases run the
 * tables in registration order, response-side phases and logging in reverse (the onion). */
#include <string.h>

#include "core/assert.h"
#include "core/log.h"
#include "core/time.h"
#include "engine/session.h"

#define REQ(s) (&(s)->base)
#define RESP(s) CN_CONTAINER_OF(&(s)->resp, struct cairn_resp, base)
#define HDRS(h) CN_CONTAINER_OF((h), struct cairn_headers, base)

static void *
ctx_of(cn_session_t *s, size_t i)
{
    return s->hook_ctx != NULL ? s->hook_ctx[i] : NULL;
}

/* request_filter may suspend: the loop keeps its position in s->hook_next. */
void
cn_hooks_request_filter(cn_session_t *s, void (*done)(cn_session_t *s))
{
    while (s->hook_next < s->n_hooks) {
        size_t i = s->hook_next++;
        const cairn_hooks_t *h = s->hooks[i].hooks;
        if (h->request_filter == NULL)
            continue;
        s->hook_cur = i;
        s->hook_in_call = true;
        s->hook_resume_seen = false;
        cairn_action_t a = h->request_filter(REQ(s), ctx_of(s, i));
        s->hook_in_call = false;
        if (a == CAIRN_PENDING && s->hook_resume_seen)
            a = s->hook_resumed; /* resumed before returning */
        if (a == CAIRN_PENDING) {
            s->hook_pending = true;
            return;
        }
        if (a == CAIRN_RESPONDED) {
            cn_session_respond(s, s->resp.status, s->local_body);
            return;
        }
        if (a == CAIRN_FAIL) {
            cn_session_error(s, s->fail_status ? s->fail_status : 500, "request_filter failed");
            return;
        }
    }
    done(s);
}

bool
cn_hooks_upstream_select(cn_session_t *s, cairn_peer_t *peer)
{
    for (size_t i = 0; i < s->n_hooks; i++) {
        const cairn_hooks_t *h = s->hooks[i].hooks;
        if (h->upstream_select == NULL)
            continue;
        s->hook_cur = i;
        memset(peer, 0, sizeof(*peer));
        if (h->upstream_select(REQ(s), ctx_of(s, i), peer) == CAIRN_CONTINUE &&
            peer->address[0] != '\0')
            return true;
    }
    return false;
}

cairn_action_t
cn_hooks_upstream_request(cn_session_t *s, cn_headers_t *hdrs)
{
    for (size_t i = 0; i < s->n_hooks; i++) {
        const cairn_hooks_t *h = s->hooks[i].hooks;
        if (h->upstream_request_filter == NULL)
            continue;
        s->hook_cur = i;
        cairn_action_t a = h->upstream_request_filter(REQ(s), ctx_of(s, i), HDRS(hdrs));
        if (a != CAIRN_CONTINUE)
            return a;
    }
    return CAIRN_CONTINUE;
}

/* Runs a response-side head hook (selected by @which) over every table in reverse. */
static cairn_action_t
run_reverse_resp(cn_session_t *s, bool upstream_phase)
{
    for (size_t k = s->n_hooks; k > 0; k--) {
        size_t i = k - 1;
        const cairn_hooks_t *h = s->hooks[i].hooks;
        cairn_action_t (*fn)(cairn_req_t *, void *, cairn_resp_t *) =
            upstream_phase ? h->upstream_response_filter : h->response_filter;
        if (fn == NULL)
            continue;
        s->hook_cur = i;
        cairn_action_t a = fn(REQ(s), ctx_of(s, i), RESP(s));
        if (a != CAIRN_CONTINUE)
            return a;
    }
    return CAIRN_CONTINUE;
}

cairn_action_t
cn_hooks_upstream_response(cn_session_t *s)
{
    return run_reverse_resp(s, true);
}

cairn_action_t
cn_hooks_response(cn_session_t *s)
{
    return run_reverse_resp(s, false);
}

cairn_action_t
cn_hooks_request_body(cn_session_t *s, cairn_iov_t data, bool eos)
{
    cairn_body_t b = {.data = data, .eos = eos};
    for (size_t i = 0; i < s->n_hooks; i++) {
        const cairn_hooks_t *h = s->hooks[i].hooks;
        if (h->request_body_filter == NULL)
            continue;
        s->hook_cur = i;
        cairn_action_t a = h->request_body_filter(REQ(s), ctx_of(s, i), &b);
        if (a != CAIRN_CONTINUE)
            return a;
    }
    return CAIRN_CONTINUE;
}

cairn_action_t
cn_hooks_response_body(cn_session_t *s, const cairn_iov_t *iov, size_t n, bool eos)
{
    for (size_t k = s->n_hooks; k > 0; k--) {
        size_t i = k - 1;
        const cairn_hooks_t *h = s->hooks[i].hooks;
        if (h->response_body_filter == NULL)
            continue;
        s->hook_cur = i;
        for (size_t j = 0; j < n || (j == 0 && eos); j++) {
            cairn_body_t b = {.data = j < n ? iov[j] : (cairn_iov_t){0}, .eos = eos && j + 1 >= n};
            cairn_action_t a = h->response_body_filter(REQ(s), ctx_of(s, i), &b);
            if (a != CAIRN_CONTINUE)
                return a;
        }
    }
    return CAIRN_CONTINUE;
}

void
cn_hooks_cache_key(cn_session_t *s, struct cairn_cache_key *key)
{
    for (size_t i = 0; i < s->n_hooks; i++) {
        const cairn_hooks_t *h = s->hooks[i].hooks;
        if (h->cache_key == NULL)
            continue;
        s->hook_cur = i;
        h->cache_key(REQ(s), ctx_of(s, i), key);
    }
}

bool
cn_hooks_cache_hit(cn_session_t *s, cairn_cache_meta_t *m)
{
    for (size_t k = s->n_hooks; k > 0; k--) {
        const cairn_hooks_t *h = s->hooks[k - 1].hooks;
        if (h->cache_hit_filter == NULL)
            continue;
        s->hook_cur = k - 1;
        h->cache_hit_filter(REQ(s), ctx_of(s, k - 1), m);
    }
    return m->expire;
}

cairn_action_t
cn_hooks_fail(cn_session_t *s, cairn_err_t err, unsigned *status)
{
    for (size_t i = 0; i < s->n_hooks; i++) {
        const cairn_hooks_t *h = s->hooks[i].hooks;
        if (h->fail_to_proxy == NULL)
            continue;
        s->hook_cur = i;
        cairn_action_t a = h->fail_to_proxy(REQ(s), ctx_of(s, i), err, status);
        if (a == CAIRN_RESPONDED)
            return a;
    }
    return CAIRN_CONTINUE;
}

void
cn_hooks_end(cn_session_t *s)
{
    if (s->n_hooks == 0)
        return;
    cairn_req_summary_t sum = {
        .status = cn_session_status(s),
        .bytes_sent = s->bytes_sent,
        .duration_ns = cn_time_now_ns() - s->start_ns,
        .upstream = s->upstream_name,
        .upstream_reused = s->upstream_reused,
        .error = s->error,
    };
    for (size_t k = s->n_hooks; k > 0; k--) {
        const cairn_hooks_t *h = s->hooks[k - 1].hooks;
        s->hook_cur = k - 1;
        if (h->logging != NULL)
            h->logging(REQ(s), ctx_of(s, k - 1), &sum);
    }
    for (size_t k = s->n_hooks; k > 0; k--) {
        const cairn_hooks_t *h = s->hooks[k - 1].hooks;
        s->hook_cur = k - 1;
        if (h->ctx_dispose != NULL)
            h->ctx_dispose(REQ(s), ctx_of(s, k - 1));
    }
}
