/* SPDX-License-Identifier: MIT */
/* Route actions answered by cairn itself: static responses and redirects. */
#include <stdio.h>
#include <string.h>

#include "core/str.h"
#include "engine/session.h"

static void
finish_local(cn_session_t *s, unsigned status, cairn_iov_t body)
{
    cn_session_respond(s, status, body);
}

void
cn_action_static(cn_session_t *s)
{
    const cn_conf_route_t *r = s->route;
    for (size_t i = 0; i < r->static_.n_headers; i++)
        cn_headers_add(&s->resp.headers, cn_iov_cstr(r->static_.headers[i].name),
                       cn_iov_cstr(r->static_.headers[i].value));
    cairn_iov_t body = cn_iov_cstr(r->static_.body);
    if (body.len > 0 && cn_headers_get(&s->resp.headers, CAIRN_IOV_LIT("content-type")) == NULL)
        cn_headers_add(&s->resp.headers, CAIRN_IOV_LIT("Content-Type"),
                       CAIRN_IOV_LIT("text/plain; charset=utf-8"));
    finish_local(s, r->static_.status, body);
}

void
cn_action_redirect(cn_session_t *s)
{
    const cn_conf_route_t *r = s->route;
    const cn_http_req_t *req = s->req;
    cairn_iov_t to = cn_iov_cstr(r->redirect.to);
    cairn_iov_t rest = {0};
    if (r->redirect.keep_path) {
        rest = req->path;
        const char *prefix = r->match.path_prefix;
        if (prefix != NULL && cn_iov_has_prefix(rest, cn_iov_cstr(prefix))) {
            size_t pl = strlen(prefix);
            rest = cn_iov(rest.base + pl, rest.len - pl);
        }
    }
    size_t need = to.len + rest.len + req->query.len + 2;
    char *loc = cn_arena_xalloc(s->arena, need);
    size_t n = 0;
    memcpy(loc, to.base, to.len);
    n += to.len;
    if (rest.len) {
        /* Avoid "//" when the target ends with a slash and the rest starts with one. */
        if (n > 0 && loc[n - 1] == '/' && rest.base[0] == '/') {
            rest.base++;
            rest.len--;
        }
        memcpy(loc + n, rest.base, rest.len);
        n += rest.len;
    }
    if (r->redirect.keep_path && req->has_query) {
        loc[n++] = '?';
        memcpy(loc + n, req->query.base, req->query.len);
        n += req->query.len;
    }
    cn_headers_add(&s->resp.headers, CAIRN_IOV_LIT("Location"), cn_iov(loc, n));
    cn_headers_add(&s->resp.headers, CAIRN_IOV_LIT("Content-Type"),
                   CAIRN_IOV_LIT("text/plain; charset=utf-8"));
    char *body = cn_arena_xalloc(s->arena, n + 64);
    int bl = snprintf(body, n + 64, "%u %s: %.*s\n", r->redirect.status,
                      cn_status_reason(r->redirect.status), (int)n, loc);
    finish_local(s, r->redirect.status, cn_iov(body, (size_t)bl));
}
