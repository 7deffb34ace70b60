/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 server responses: building the response head (framing rebuilt for each hop),
 * sending it and the body (chunked or not), interim 1xx responses, write completion,
 * finishing an exchange (then the next request, a discard or linger) and abort. The
 * connection side is in server.c; what both share is in server_int.h. */
#include "http1/server_int.h"

#include <string.h>

#include "core/arena.h"
#include "core/assert.h"
#include "core/str.h"
#include "net/net.h"

/* ---- response -------------------------------------------------------------------------- */

/* Framing fields are rebuilt for each hop; the engine's copies are dropped. */
static bool
skip_header(cairn_iov_t name)
{
    switch (name.len) {
    case 10:
        return cn_iov_ieq(name, CAIRN_IOV_LIT("connection")) ||
               cn_iov_ieq(name, CAIRN_IOV_LIT("keep-alive"));
    case 14:
        return cn_iov_ieq(name, CAIRN_IOV_LIT("content-length"));
    case 17:
        return cn_iov_ieq(name, CAIRN_IOV_LIT("transfer-encoding"));
    default:
        return false;
    }
}

static char *
put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static cairn_iov_t
build_head(cn_h1_conn_t *c, const cn_http_resp_t *resp)
{
    struct h1_exchange *ex = c->ex;
    const cn_http_req_t *req = ex->req;
    const cn_h1_settings_t *set = c->srv->settings;
    const char *server = set->server_header != NULL ? set->server_header : "";
    size_t server_len = strlen(server);
    const char *reason = cn_status_reason(resp->status);
    size_t reason_len = strlen(reason);
    bool has_date = false, has_server = false;
    size_t need = 192 + reason_len + server_len;
    for (size_t i = 0; i < resp->headers.n; i++) {
        cairn_iov_t name = resp->headers.items[i].name;
        need += name.len + resp->headers.items[i].value.len + 4;
        if (name.len == 4 && cn_iov_ieq(name, CAIRN_IOV_LIT("date")))
            has_date = true;
        else if (name.len == 6 && cn_iov_ieq(name, CAIRN_IOV_LIT("server")))
            has_server = true;
    }
    char *const start = cn_arena_xalloc(ex->arena, need);
    char *p = start;
    ex->resp_no_body = ex->head_request || cn_status_has_no_body(resp->status);
    if (c->srv->draining || !req->keep_alive) /* the engine may clear req->keep_alive */
        c->keep_alive = 0;
    /* An unread body with Expect: 100-continue that we never acknowledged: the client may
     * not send it, so the connection cannot be reused safely. */
    if (!ex->body_done && req->expect_continue && !ex->sent_continue)
        c->keep_alive = 0;
    bool chunked = false;
    unsigned status = resp->status % 1000;
    char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put(p, code, sizeof(code));
    p = put(p, reason, reason_len);
    p = PUT_LIT(p, "\r\n");
    if (!has_date) {
        p = PUT_LIT(p, "Date: ");
        p = put(p, cn_h1_date_now(), 29);
        p = PUT_LIT(p, "\r\n");
    }
    if (!has_server && server_len > 0) {
        p = PUT_LIT(p, "Server: ");
        p = put(p, server, server_len);
        p = PUT_LIT(p, "\r\n");
    }
    for (size_t i = 0; i < resp->headers.n; i++) {
        const cn_header_t *h = &resp->headers.items[i];
        if (skip_header(h->name))
            continue;
        p = put(p, h->name.base, h->name.len);
        p = PUT_LIT(p, ": ");
        p = put(p, h->value.base, h->value.len);
        p = PUT_LIT(p, "\r\n");
    }
    if (resp->status == 204 || resp->status < 200) {
        /* No framing fields (RFC 9110 §8.6). */
    } else if (resp->content_length >= 0) {
        p = PUT_LIT(p, "Content-Length: ");
        p += cn_fmt_u64(p, (uint64_t)resp->content_length);
        p = PUT_LIT(p, "\r\n");
    } else if (ex->resp_no_body) {
        /* HEAD or 304 without a known length: say nothing about the length. */
    } else if (req->version >= 11) {
        chunked = true;
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    } else {
        c->keep_alive = 0; /* close-delimited for HTTP/1.0 */
    }
    if (!c->keep_alive)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (req->version == 10)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    CN_ASSERT((size_t)(p - start) <= need);
    ex->resp_chunked = chunked;
    ex->head_sent = true;
    return cn_iov(start, (size_t)(p - start));
}

void
h1_ds_send(cn_http_ds_t *ds, const cn_http_resp_t *resp, const cairn_iov_t *iov, size_t n, bool eos)
{
    cn_h1_conn_t *c = ds->driver;
    CN_CHECK_OBJ(c, H1_CONN_MAGIC);
    struct h1_exchange *ex = c->ex;
    CN_ASSERT(!ex->writing && !ex->resp_done);
    size_t k = 0;
    if (ex->interim.len > 0) {
        ex->wiov[k++] = ex->interim;
        ex->interim = cn_iov(NULL, 0);
    }
    if (!ex->head_sent)
        ex->wiov[k++] = build_head(c, resp);
    size_t body = 0;
    if (!ex->resp_no_body) {
        for (size_t i = 0; i < n; i++)
            body += iov[i].len;
        if (ex->resp_chunked && body > 0) {
            size_t l = cn_fmt_hex(ex->chunk_line, body);
            ex->chunk_line[l++] = '\r';
            ex->chunk_line[l++] = '\n';
            ex->wiov[k++] = cn_iov(ex->chunk_line, l);
        }
        CN_ASSERT(n <= H1_MAX_IOV);
        for (size_t i = 0; i < n; i++)
            if (iov[i].len > 0)
                ex->wiov[k++] = iov[i];
        if (ex->resp_chunked && body > 0)
            ex->wiov[k++] = CAIRN_IOV_LIT("\r\n");
        if (ex->resp_chunked && eos)
            ex->wiov[k++] = CAIRN_IOV_LIT("0\r\n\r\n");
    }
    ex->write_eos = eos;
    ex->writing = true;
    if (k == 0) {
        /* Nothing to put on the wire (e.g. an empty non-final slice): complete at once. */
        h1_on_write(&c->sock, CAIRN_OK);
        return;
    }
    /* Most responses fit the socket buffer: written now, completed inline. */
    switch (cn_sock_send(&c->sock, ex->wiov, k)) {
    case CN_SOCK_SENT:
        h1_on_write(&c->sock, CAIRN_OK);
        return;
    case CN_SOCK_PENDING:
        h1_timer_arm(c, c->srv->settings->send_timeout_ms);
        return;
    case CN_SOCK_FAILED:
        ex->writing = false;
        h1_conn_close(c, true);
        return;
    }
}

/* "HTTP/1.1 103 Early Hints" and its fields, in the request arena, after @prefix. */
static cairn_iov_t
build_interim(struct h1_exchange *ex, cairn_iov_t prefix, unsigned status,
              const cn_headers_t *headers)
{
    const char *reason = cn_status_reason(status);
    size_t need = prefix.len + 16 + strlen(reason) + 2;
    for (size_t i = 0; i < headers->n; i++)
        need += headers->items[i].name.len + headers->items[i].value.len + 4;
    char *const start = cn_arena_xalloc(ex->arena, need);
    char *p = prefix.len > 0 ? put(start, prefix.base, prefix.len) : start;
    char code[5] = {'1', (char)('0' + status / 10 % 10), (char)('0' + status % 10), ' ', 0};
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put(p, code, 4);
    p = put(p, reason, strlen(reason));
    p = PUT_LIT(p, "\r\n");
    for (size_t i = 0; i < headers->n; i++) {
        const cn_header_t *h = &headers->items[i];
        p = put(p, h->name.base, h->name.len);
        p = PUT_LIT(p, ": ");
        p = put(p, h->value.base, h->value.len);
        p = PUT_LIT(p, "\r\n");
    }
    p = PUT_LIT(p, "\r\n");
    CN_ASSERT((size_t)(p - start) <= need);
    return cn_iov(start, (size_t)(p - start));
}

/* Interim responses go to HTTP/1.1 clients only (RFC 9110 §15.2), before the final head.
 * Written at once when the socket takes them; what it does not take goes first in the next
 * send, so the order on the wire is kept. */
void
h1_ds_send_interim(cn_http_ds_t *ds, unsigned status, const cn_headers_t *headers)
{
    cn_h1_conn_t *c = ds->driver;
    CN_CHECK_OBJ(c, H1_CONN_MAGIC);
    struct h1_exchange *ex = c->ex;
    if (ex == NULL || ex->head_sent || ex->req->version < 11 || status < 100 || status > 199 ||
        status == 101)
        return;
    ex->interim = build_interim(ex, ex->interim, status, headers);
    if (ex->writing || ex->interim.len > 4096)
        return;
    ssize_t n = cn_sock_try_write(&c->sock, &ex->interim, 1);
    if (n < 0)
        n = 0; /* the socket failed: the final send will see it and close */
    ex->interim = cn_iov(ex->interim.base + n, ex->interim.len - (size_t)n);
}

static void
finish_exchange(cn_h1_conn_t *c)
{
    struct h1_exchange *ex = c->ex;
    bool body_done = ex->body_done;
    int64_t left = ex->body_left;
    bool chunked = ex->body_chunked;
    cn_h1_chunked_t ch = ex->chunked;
    size_t pending = ex->body_consume;
    cn_http_ds_t *ds = c->ds;
    void *session = ds->session;
    c->ex = NULL;
    c->ds = NULL;
    c->srv->n_active--;
    if (pending)
        cn_buf_consume(&c->sock.rbuf, pending);
    /* Tell the engine last: it frees the request arena (and with it ex and ds). */
    ds->session = NULL;
    c->srv->handler->on_sent(session, CAIRN_OK);
    if (c->closing)
        return;
    if (!c->keep_alive) {
        h1_conn_linger(c);
        return;
    }
    if (!body_done) {
        c->state = H1_DISCARD;
        c->discard_is_chunked = chunked;
        c->discard_left = chunked ? 1 : left;
        c->discard_chunked = ch;
        h1_discard_body(c);
        return;
    }
    h1_start_head(c);
    if (c->state == H1_HEAD && c->sock.rbuf.len > 0)
        h1_parse_head(c);
}

void
h1_on_write(cn_sock_t *s, cairn_err_t status)
{
    cn_h1_conn_t *c = s->data;
    CN_CHECK_OBJ(c, H1_CONN_MAGIC);
    struct h1_exchange *ex = c->ex;
    if (ex == NULL)
        return;
    ex->writing = false;
    if (status != CAIRN_OK) {
        h1_conn_close(c, true);
        return;
    }
    if (ex->write_eos) {
        ex->resp_done = true;
        h1_timer_arm(c, 0);
        finish_exchange(c);
        return;
    }
    h1_timer_arm(c, ex->body_wanted ? c->srv->settings->body_timeout_ms : 0);
    c->srv->handler->on_sent(c->ds->session, CAIRN_OK);
}

void
h1_ds_abort(cn_http_ds_t *ds)
{
    cn_h1_conn_t *c = ds->driver;
    CN_CHECK_OBJ(c, H1_CONN_MAGIC);
    ds->session = NULL;
    /* A truncated response must never look complete: reset the connection. */
    h1_conn_close(c, true);
}
