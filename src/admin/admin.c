/* SPDX-License-Identifier: MIT */
/* Admin endpoints. Each exchange is answered at once from memory in the request arena. */
#include "admin/admin.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/str.h"
#include "proxy/server_int.h"

struct admin_exchange {
    cn_arena_t *arena;
    cn_http_resp_t resp;
};

static void
admin_free(struct admin_exchange *x)
{
    cn_arena_t *arena = x->arena;
    cn_arena_fini(arena);
    cn_free(arena);
}

static void
reply(struct admin_exchange *x, cn_http_ds_t *ds, unsigned status, const char *ctype,
      cairn_iov_t body)
{
    x->resp.status = status;
    x->resp.content_length = (int64_t)body.len;
    cn_headers_add(&x->resp.headers, CAIRN_IOV_LIT("Content-Type"), cn_iov_cstr(ctype));
    cn_headers_add(&x->resp.headers, CAIRN_IOV_LIT("Cache-Control"), CAIRN_IOV_LIT("no-store"));
    ds->ops->send(ds, &x->resp, &body, 1, true);
}

static void
reply_text(struct admin_exchange *x, cn_http_ds_t *ds, unsigned status, const char *text)
{
    reply(x, ds, status, "text/plain; charset=utf-8", cn_iov_cstr(text));
}

static void *
admin_request(void *ctx, cn_http_ds_t *ds, cn_http_req_t *req, cn_arena_t *arena)
{
    cn_server_t *srv = ctx;
    struct admin_exchange *x = cn_arena_xalloc(arena, sizeof(*x));
    memset(x, 0, sizeof(*x));
    x->arena = arena;
    cn_headers_init(&x->resp.headers, arena);
    ds->session = x;
    if (req->error_status != 0) {
        char *b = cn_arena_xalloc(arena, 64);
        snprintf(b, 64, "%u %s\n", req->error_status, cn_status_reason(req->error_status));
        reply_text(x, ds, req->error_status, b);
        return x;
    }
    bool get = req->method_id == CN_METHOD_GET || req->method_id == CN_METHOD_HEAD;
    if (cn_iov_eq(req->path, CAIRN_IOV_LIT("/healthz"))) {
        if (!get)
            reply_text(x, ds, 405, "405 Method Not Allowed\n");
        else
            reply_text(x, ds, 200, "ok\n");
    } else if (cn_iov_eq(req->path, CAIRN_IOV_LIT("/readyz"))) {
        if (!get)
            reply_text(x, ds, 405, "405 Method Not Allowed\n");
        else if (cn_server_is_draining(srv))
            reply_text(x, ds, 503, "draining\n");
        else
            reply_text(x, ds, 200, "ready\n");
    } else {
        reply_text(x, ds, 404, "404 Not Found\n");
    }
    return x;
}

static void
admin_sent(void *session, cairn_err_t status)
{
    (void)status;
    admin_free(session);
}

static void
admin_body(void *session, cairn_iov_t data, bool eos, cairn_err_t status)
{
    (void)session;
    (void)data;
    (void)eos;
    (void)status;
}

static void
admin_gone(void *session)
{
    admin_free(session);
}

const cn_http_handler_t cn_admin_handler = {
    .on_request = admin_request,
    .on_sent = admin_sent,
    .on_body = admin_body,
    .on_gone = admin_gone,
};
