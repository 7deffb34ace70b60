/* SPDX-License-Identifier: MIT */
/* The public API (include/cairn/): thin views of the internal objects. A cairn_req_t is a
 * session, a cairn_headers_t a cn_headers_t, a cairn_resp_t a cn_http_resp_t. */
#include <stdlib.h>
#include <string.h>

#include <cairn/cairn.h>

#include "config/config.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/str.h"
#include "server/server.h"
#include "engine/session.h"
#include "net/tls.h"

#define SESSION(req) CN_CONTAINER_OF((req), cn_session_t, base)

struct cairn_config {
    cn_config_t *cfg;
};

struct cairn_server {
    cn_server_t *srv;
};

static cn_session_t *
session_of(const cairn_req_t *req)
{
    cn_session_t *s = SESSION((cairn_req_t *)req);
    CN_ASSERT(s->base.magic == CN_SESSION_MAGIC);
    return s;
}

/* ---- headers --------------------------------------------------------------------------- */

bool
cairn_headers_get(const cairn_headers_t *h, cairn_iov_t name, cairn_iov_t *value)
{
    const cairn_iov_t *v = cn_headers_get(&h->base, name);
    if (v == NULL)
        return false;
    *value = *v;
    return true;
}

void
cairn_headers_set(cairn_headers_t *h, cairn_iov_t name, cairn_iov_t value)
{
    cn_headers_set_copy(&h->base, name, value);
}

void
cairn_headers_add(cairn_headers_t *h, cairn_iov_t name, cairn_iov_t value)
{
    cn_headers_add_copy(&h->base, name, value);
}

size_t
cairn_headers_remove(cairn_headers_t *h, cairn_iov_t name)
{
    return cn_headers_remove(&h->base, name);
}

size_t
cairn_headers_count(const cairn_headers_t *h)
{
    return h->base.n;
}

void
cairn_headers_at(const cairn_headers_t *h, size_t i, cairn_iov_t *name, cairn_iov_t *value)
{
    CN_ASSERT(i < h->base.n);
    *name = h->base.items[i].name;
    *value = h->base.items[i].value;
}

/* ---- requests -------------------------------------------------------------------------- */

uint64_t
cairn_req_id(const cairn_req_t *req)
{
    return session_of(req)->id;
}

cairn_iov_t
cairn_req_method(const cairn_req_t *req)
{
    return session_of(req)->req->method;
}

cairn_iov_t
cairn_req_path(const cairn_req_t *req)
{
    return session_of(req)->req->path;
}

cairn_iov_t
cairn_req_query(const cairn_req_t *req)
{
    return session_of(req)->req->query;
}

cairn_iov_t
cairn_req_host(const cairn_req_t *req)
{
    return session_of(req)->req->authority;
}

cairn_iov_t
cairn_req_client(const cairn_req_t *req)
{
    return cn_iov_cstr(session_of(req)->client);
}

bool
cairn_req_tls(const cairn_req_t *req, cairn_tls_info_t *out)
{
    const cn_session_t *s = session_of(req);
    memset(out, 0, sizeof(*out));
    out->version = out->cipher = out->sni = "";
    if (s->ds == NULL || s->ds->tls_sock == NULL)
        return false;
    out->tls = true;
    out->version = s->ds->tls_version ? s->ds->tls_version : "";
    out->cipher = s->ds->tls_cipher ? s->ds->tls_cipher : "";
    out->sni = s->ds->tls_sni ? s->ds->tls_sni : "";
    out->resumed = s->ds->tls_resumed;
    cn_tls_peer_t peer;
    if (cn_tls_peer_identity(s->ds->tls_sock, &peer)) {
        out->client_verified = true;
        memcpy(out->client_subject, peer.subject, sizeof(out->client_subject));
        memcpy(out->client_san, peer.san, sizeof(out->client_san));
        memcpy(out->client_fingerprint, peer.fingerprint, sizeof(out->client_fingerprint));
        memcpy(out->client_serial, peer.serial, sizeof(out->client_serial));
    }
    return true;
}

cairn_headers_t *
cairn_req_headers(cairn_req_t *req)
{
    return CN_CONTAINER_OF(&session_of(req)->req->headers, struct cairn_headers, base);
}

void
cairn_req_set_path(cairn_req_t *req, cairn_iov_t path)
{
    cn_session_t *s = session_of(req);
    s->req->path = cn_session_strdup(s, path);
}

void
cairn_req_set_query(cairn_req_t *req, cairn_iov_t query)
{
    cn_session_t *s = session_of(req);
    s->req->query = cn_session_strdup(s, query);
    s->req->has_query = query.len > 0;
}

cairn_err_t
cairn_req_set_upstream(cairn_req_t *req, const char *name)
{
    cn_session_t *s = session_of(req);
    const cn_conf_upstream_t *up = cn_config_upstream(s->cfg, name);
    if (up == NULL)
        return CAIRN_ENOTFOUND;
    s->upstream_override = up;
    return CAIRN_OK;
}

void
cairn_req_allow_stale(cairn_req_t *req, bool allow)
{
    session_of(req)->stale_policy = allow ? 1 : -1;
}

void *
cairn_req_alloc(cairn_req_t *req, size_t n)
{
    void *p = cn_arena_alloc(session_of(req)->arena, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

void
cairn_req_respond(cairn_req_t *req, unsigned status, cairn_iov_t content_type, cairn_iov_t body)
{
    cn_session_t *s = session_of(req);
    s->resp.status = status;
    cn_headers_init(&s->resp.headers, s->arena);
    if (content_type.len > 0)
        cn_headers_add_copy(&s->resp.headers, CAIRN_IOV_LIT("Content-Type"), content_type);
    s->local_body = cn_session_strdup(s, body);
}

cairn_resp_t *
cairn_req_response(cairn_req_t *req)
{
    return CN_CONTAINER_OF(&session_of(req)->resp, struct cairn_resp, base);
}

void
cairn_req_fail(cairn_req_t *req, unsigned status)
{
    session_of(req)->fail_status = status;
}

void
cairn_req_resume(cairn_req_t *req, cairn_action_t action)
{
    cn_session_t *s = session_of(req);
    if (s->ended)
        return;
    if (s->hook_in_call) {
        /* Resumed from inside the hook itself: treated as its return value. */
        s->hook_resumed = action;
        s->hook_resume_seen = true;
        return;
    }
    if (!s->hook_pending || s->ds == NULL)
        return;
    s->hook_pending = false;
    switch (action) {
    case CAIRN_RESPONDED:
        cn_session_respond(s, s->resp.status, s->local_body);
        return;
    case CAIRN_FAIL:
        cn_session_error(s, s->fail_status ? s->fail_status : 500, "request_filter failed");
        return;
    case CAIRN_PENDING:
        s->hook_pending = true;
        return;
    case CAIRN_CONTINUE:
        break;
    }
    cn_hooks_request_filter(s, cn_session_route);
}

void *
cairn_hooks_udata(cairn_req_t *req)
{
    cn_session_t *s = session_of(req);
    return s->hooks[s->hook_cur].udata;
}

/* ---- responses ------------------------------------------------------------------------- */

unsigned
cairn_resp_status(const cairn_resp_t *resp)
{
    return resp->base.status;
}

void
cairn_resp_set_status(cairn_resp_t *resp, unsigned status)
{
    resp->base.status = status;
}

cairn_headers_t *
cairn_resp_headers(cairn_resp_t *resp)
{
    return CN_CONTAINER_OF(&resp->base.headers, struct cairn_headers, base);
}

/* ---- cache controls ---------------------------------------------------------------------- */

cairn_iov_t
cairn_cache_key_text(const cairn_cache_key_t *key)
{
    return cn_iov(key->text, key->len);
}

void
cairn_cache_key_set(cairn_cache_key_t *key, cairn_iov_t text)
{
    cairn_iov_t v = cn_session_strdup(key->s, text);
    key->text = v.base;
    key->len = v.len;
}

void
cairn_cache_key_add(cairn_cache_key_t *key, cairn_iov_t part)
{
    char *p = cn_arena_xalloc(key->s->arena, key->len + part.len + 3);
    memcpy(p, key->text, key->len);
    p[key->len] = '\n';
    p[key->len + 1] = 'x';
    memcpy(p + key->len + 2, part.base, part.len);
    key->len += part.len + 2;
    p[key->len] = '\0';
    key->text = p;
}

void
cairn_resp_set_cache(cairn_resp_t *resp, bool cacheable, int64_t ttl)
{
    cn_session_t *s = CN_CONTAINER_OF(&resp->base, cn_session_t, resp);
    CN_ASSERT(s->base.magic == CN_SESSION_MAGIC);
    s->cache_override = cacheable ? 1 : -1;
    s->cache_ttl = ttl;
}

/* ---- configs and servers --------------------------------------------------------------- */

static cairn_err_t
wrap_config(cairn_err_t err, cn_config_t *cfg, cn_diags_t *diags, FILE *diag, cairn_config_t **out)
{
    if (err != CAIRN_OK) {
        if (diag != NULL)
            cn_diags_print(diags, diag);
        cn_diags_fini(diags);
        return err;
    }
    cn_diags_fini(diags);
    cairn_config_t *c = cn_xmalloc(sizeof(*c));
    c->cfg = cfg;
    *out = c;
    return CAIRN_OK;
}

cairn_err_t
cairn_config_load_file(const char *path, cairn_config_t **out, FILE *diag)
{
    cn_diags_t diags = {0};
    cn_config_t *cfg = NULL;
    cairn_err_t err = cn_config_load_file(path, &cfg, &diags);
    return wrap_config(err, cfg, &diags, diag, out);
}

cairn_err_t
cairn_config_load_string(const char *name, const char *yaml, size_t len, cairn_config_t **out,
                         FILE *diag)
{
    cn_diags_t diags = {0};
    cn_config_t *cfg = NULL;
    cairn_err_t err = cn_config_load_string(name, yaml, len, &cfg, &diags);
    return wrap_config(err, cfg, &diags, diag, out);
}

void
cairn_config_unref(cairn_config_t *cfg)
{
    if (cfg == NULL)
        return;
    cn_config_unref(cfg->cfg);
    cn_free(cfg);
}

cairn_server_t *
cairn_server_new(cairn_config_t *cfg)
{
    cn_server_opts_t opts = {.ready_fd = -1};
    cairn_server_t *s = cn_xmalloc(sizeof(*s));
    s->srv = cn_server_new(cfg->cfg, &opts);
    return s;
}

cairn_err_t
cairn_server_use(cairn_server_t *srv, const cairn_hooks_t *hooks, void *udata)
{
    if (hooks == NULL || hooks->abi != CAIRN_HOOKS_ABI)
        return CAIRN_EINVAL;
    cn_server_use(srv->srv, hooks, udata);
    return CAIRN_OK;
}

int
cairn_server_run(cairn_server_t *srv)
{
    return cn_server_run(srv->srv);
}

void
cairn_server_stop(cairn_server_t *srv, bool graceful)
{
    cn_server_stop(srv->srv, graceful);
}

void
cairn_server_free(cairn_server_t *srv)
{
    if (srv == NULL)
        return;
    cn_server_free(srv->srv);
    cn_free(srv);
}
