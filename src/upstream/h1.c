/* SPDX-License-Identifier: MIT */
/* The HTTP/1.1 codec of the upstream exchange: serialises the request head (Host first, then
 * the fields, then the framing it derives), frames the request body (chunked when its length
 * is unknown), parses the response with the strict parser of src/http1/, and hands out body
 * slices that point into the connection's read buffer. Only a clean end of stream ends a
 * close-delimited body; a reset or a short body is a failure. */
#include "upstream/codec.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/str.h"
#include "core/time.h"

/* ---- request ------------------------------------------------------------------------------ */

static cairn_iov_t
serialise_head(cn_ux_t *ux)
{
    const cn_ux_request_t *rq = &ux->req;
    size_t need = 96 + rq->method.len + rq->path.len + rq->query.len + rq->authority.len;
    for (size_t i = 0; i < rq->headers.n; i++)
        need += rq->headers.items[i].name.len + rq->headers.items[i].value.len + 4;
    char *p = cn_arena_xalloc(ux->arena, need);
    size_t n = 0;
#define PUT(ptr, len)                                                                              \
    do {                                                                                           \
        memcpy(p + n, (ptr), (len));                                                               \
        n += (len);                                                                                \
    } while (0)
    PUT(rq->method.base, rq->method.len);
    PUT(" ", 1);
    PUT(rq->path.base, rq->path.len);
    if (rq->has_query) {
        PUT("?", 1);
        if (rq->query.len > 0)
            PUT(rq->query.base, rq->query.len);
    }
    PUT(" HTTP/1.1\r\nHost: ", 17);
    if (rq->authority.len > 0)
        PUT(rq->authority.base, rq->authority.len);
    PUT("\r\n", 2);
    for (size_t i = 0; i < rq->headers.n; i++) {
        PUT(rq->headers.items[i].name.base, rq->headers.items[i].name.len);
        PUT(": ", 2);
        PUT(rq->headers.items[i].value.base, rq->headers.items[i].value.len);
        PUT("\r\n", 2);
    }
    if (rq->has_body && rq->content_length >= 0) {
        PUT("Content-Length: ", 16);
        n += cn_fmt_u64(p + n, (uint64_t)rq->content_length);
        PUT("\r\n", 2);
    } else if (rq->has_body) {
        ux->h1.req_chunked = true;
        PUT("Transfer-Encoding: chunked\r\n", 28);
    }
    PUT("\r\n", 2);
#undef PUT
    return cn_iov(p, n);
}

static void
h1_begin(cn_ux_t *ux)
{
    cn_upconn_t *uc = ux->uc;
    cn_ux_h1_t *h = &ux->h1;
    if (h->head.base == NULL) {
        h->head = serialise_head(ux);
        h->head_request = cn_iov_eq(ux->req.method, CAIRN_IOV_LIT("HEAD"));
    }
    uc->requests++;
    uc->sock.rbuf_limit = 0;
    uc->sock.read_chunk = ux->up->buffer_size;
    h->wiov[0] = h->head;
    ux->writing = true;
    ux->t_start_ns = cn_time_now_ns();
    /* A pooled connection is already reading (it watches for the upstream closing it). */
    cn_sock_read_start(&uc->sock);
    switch (cn_sock_send(&uc->sock, h->wiov, 1)) {
    case CN_SOCK_SENT:
        ux->writing = false;
        ux->codec->on_write(ux, CAIRN_OK);
        return;
    case CN_SOCK_PENDING:
        cn_ux_arm(ux, ux->up->write_timeout_ms);
        return;
    case CN_SOCK_FAILED:
        ux->writing = false;
        cn_ux_fail(ux, CAIRN_ECLOSED, "upstream write failed");
        return;
    }
}

/* Timers while a request body is sent: write_timeout while a write is pending, none while
 * the consumer waits for its client's next bytes (the client's body_timeout governs), and
 * read_timeout once the whole request is written. The response is read all along, so an
 * early answer (413, 401) is relayed at once. */
static void
body_written(cn_ux_t *ux)
{
    if (ux->h1.body_eos_pending) {
        ux->body_sent = true;
        if (!ux->head_parsed)
            cn_ux_arm(ux, ux->up->read_timeout_ms);
        return;
    }
    if (!ux->head_parsed)
        cn_ux_arm(ux, 0);
    cn_ux_want_body(ux);
}

static void
h1_send_body(cn_ux_t *ux, cairn_iov_t data, bool eos)
{
    cn_ux_h1_t *h = &ux->h1;
    size_t k = 0;
    if (h->req_chunked && data.len > 0) {
        int l = snprintf(h->req_chunk_line, sizeof(h->req_chunk_line), "%zx\r\n", data.len);
        h->wiov[k++] = cn_iov(h->req_chunk_line, (size_t)l);
    }
    if (data.len > 0)
        h->wiov[k++] = data;
    if (h->req_chunked && data.len > 0)
        h->wiov[k++] = CAIRN_IOV_LIT("\r\n");
    if (h->req_chunked && eos)
        h->wiov[k++] = CAIRN_IOV_LIT("0\r\n\r\n");
    h->body_eos_pending = eos;
    if (k == 0) {
        body_written(ux);
        return;
    }
    ux->writing = true;
    if (!ux->head_parsed)
        cn_ux_arm(ux, ux->up->write_timeout_ms);
    if (cn_sock_write(&ux->uc->sock, h->wiov, k) != CAIRN_OK) {
        ux->writing = false;
        cn_ux_fail(ux, CAIRN_ECLOSED, "upstream write failed");
    }
}

static void
h1_on_write(cn_ux_t *ux, cairn_err_t status)
{
    if (status != CAIRN_OK) {
        if (!ux->head_parsed)
            cn_ux_fail(ux, CAIRN_ECLOSED, "upstream write failed");
        return;
    }
    if (ux->body_started) {
        body_written(ux);
        return;
    }
    if (ux->req.has_body) {
        if (!ux->head_parsed)
            cn_ux_arm(ux, 0);
        cn_ux_want_body(ux);
        return;
    }
    ux->body_sent = true;
    if (!ux->head_parsed)
        cn_ux_arm(ux, ux->up->read_timeout_ms);
}

/* ---- response body ------------------------------------------------------------------------ */

static void
finish(cn_ux_t *ux, bool taken)
{
    cn_upconn_t *uc = ux->uc;
    bool reusable =
        ux->h1.resp_keep_alive && ux->body_sent && !ux->writing && uc->sock.rbuf.len == 0;
    cn_ux_finish(ux, reusable, taken);
}

/* True when the slice being handed out ends the body: no Content-Length bytes left, or only
 * the last chunk (and trailers) left in the buffer. Peeks without consuming. */
static bool
body_ends_after(cn_ux_h1_t *h, const cn_buf_t *rb)
{
    if (h->resp_close_delimited)
        return false;
    if (!h->resp_chunked)
        return h->body_left == 0;
    cn_h1_chunked_t peek = h->chunked;
    size_t off = h->consume;
    while (off < rb->len && !peek.done) {
        size_t used = 0;
        cairn_iov_t data = {0};
        if (cn_h1_chunked_decode(&peek, cn_buf_start(rb) + off, rb->len - off, &used, &data) !=
                CN_H1_OK ||
            data.len > 0 || used == 0)
            return false;
        off += used;
    }
    return peek.done;
}

enum slice_result {
    SLICE_NEED_MORE, /* nothing to hand out yet: read more */
    SLICE_DONE,      /* a slice went out, or the exchange ended: @ux may be gone */
};

/* The next chunk-data slice of the buffer, or false after a framing error (already failed). */
static bool
next_chunk(cn_ux_t *ux, cn_buf_t *rb, cairn_iov_t *v, bool *ended)
{
    cn_ux_h1_t *h = &ux->h1;
    size_t off = 0;
    *v = cn_iov(NULL, 0);
    *ended = false;
    while (off < rb->len && v->len == 0) {
        size_t used = 0;
        cn_h1_result_t r =
            cn_h1_chunked_decode(&h->chunked, cn_buf_start(rb) + off, rb->len - off, &used, v);
        if (r == CN_H1_ERROR) {
            cn_ux_fail(ux, CAIRN_EPROTO, "malformed chunked body from upstream");
            return false;
        }
        off += used;
        if (v->len == 0 && h->chunked.done) {
            *ended = true;
            break;
        }
        if (v->len == 0 && (r == CN_H1_INCOMPLETE || used == 0))
            break;
    }
    if (v->len == 0)
        cn_buf_consume(rb, off);
    else
        h->consume = off;
    return true;
}

static enum slice_result
next_slice(cn_ux_t *ux)
{
    cn_ux_h1_t *h = &ux->h1;
    cn_buf_t *rb = &ux->uc->sock.rbuf;
    cairn_iov_t v;
    bool ended = false;
    if (h->resp_close_delimited) {
        ended = rb->len == 0 && h->up_eof;
        h->consume = rb->len;
        v = cn_iov(cn_buf_start(rb), rb->len);
    } else if (!h->resp_chunked) {
        ended = h->body_left == 0;
        size_t n = ended ? 0 : (size_t)CN_MIN((int64_t)rb->len, h->body_left);
        h->body_left -= (int64_t)n;
        h->consume = n;
        v = cn_iov(cn_buf_start(rb), n);
    } else if (!next_chunk(ux, rb, &v, &ended)) {
        return SLICE_DONE;
    }
    if (ended) {
        finish(ux, false);
        return SLICE_DONE;
    }
    if (v.len == 0)
        return SLICE_NEED_MORE;
    cn_ux_deliver(ux, v, body_ends_after(h, rb));
    return SLICE_DONE;
}

static void
pump(cn_ux_t *ux)
{
    if (ux->sending || ux->uc == NULL)
        return;
    if (next_slice(ux) != SLICE_NEED_MORE)
        return;
    if (ux->h1.up_eof) {
        cn_ux_fail(ux, CAIRN_ECLOSED, "upstream closed mid-response");
        return;
    }
    cn_sock_read_start(&ux->uc->sock);
    cn_ux_arm(ux, ux->up->read_timeout_ms);
}

static void
h1_pull(cn_ux_t *ux)
{
    cn_ux_h1_t *h = &ux->h1;
    if (h->consume) {
        cn_buf_consume(&ux->uc->sock.rbuf, h->consume);
        h->consume = 0;
    }
    pump(ux);
}

/* ---- response head ------------------------------------------------------------------------ */

/* The fields of @r (parsed from @base) copied into @out, without hop-by-hop fields. */
static void
copy_fields(cn_ux_t *ux, cn_headers_t *out, const cn_h1_response_t *r, const char *base)
{
    char *copy = cn_arena_xalloc(ux->arena, r->head_len);
    memcpy(copy, base, r->head_len);
    cn_headers_init(out, ux->arena);
    for (size_t i = 0; i < r->n_headers; i++) {
        cairn_iov_t n = cn_iov(copy + (r->headers[i].name.base - base), r->headers[i].name.len);
        cairn_iov_t v = cn_iov(copy + (r->headers[i].value.base - base), r->headers[i].value.len);
        cn_headers_add(out, n, v);
    }
    cn_up_strip_hop_by_hop(out);
}

/* The length the client will see; known before hooks and the cache decide. */
static int64_t
client_length(const cn_ux_h1_t *h, const cn_h1_response_t *r)
{
    if (r->no_body && h->head_request && r->content_length >= 0)
        return r->content_length;
    if (r->no_body && r->status != 304)
        return cn_status_has_no_body(r->status) ? -1 : 0;
    if (r->no_body)
        return r->content_length;
    if (r->chunked || r->close_delimited)
        return -1;
    return r->content_length >= 0 ? r->content_length : 0;
}

/* A final head: the consumer decides, then the body (if any) is relayed. */
static void
final_head(cn_ux_t *ux, const cn_h1_response_t *r)
{
    cn_ux_h1_t *h = &ux->h1;
    cn_ux_verdict_t v = cn_ux_head(ux);
    if (v == CN_UX_ABANDON)
        return;
    if (v == CN_UX_TAKEN) {
        /* Answered without the body (a 304 to a revalidation): nothing to relay. */
        h->resp_keep_alive = r->keep_alive && r->no_body;
        h->body_left = 0;
        finish(ux, true);
        return;
    }
    h->resp_keep_alive = r->keep_alive;
    h->resp_chunked = r->chunked && !r->no_body;
    h->resp_close_delimited = r->close_delimited && !r->no_body;
    if (r->chunked)
        cn_h1_chunked_init(&h->chunked);
    h->body_left = r->no_body ? 0 : (r->content_length > 0 ? r->content_length : 0);
    if (r->no_body) {
        finish(ux, false);
        return;
    }
    pump(ux);
}

/* One response head of the buffer: an interim one (true: parse on), or the final one. */
static bool
parse_one(cn_ux_t *ux, const cn_h1_limits_t *lim)
{
    cn_buf_t *rb = &ux->uc->sock.rbuf;
    size_t n_hdrs = lim->max_headers + 1;
    cn_h1_header_t *hdrs = cn_h1_headers_get(n_hdrs);
    cn_h1_response_t r;
    memset(&r, 0, sizeof(r));
    cn_h1_result_t res =
        cn_h1_parse_response(cn_buf_start(rb), rb->len, lim, ux->h1.head_request, &r, hdrs, n_hdrs);
    if (res != CN_H1_OK) {
        cn_h1_headers_put(hdrs, n_hdrs);
        if (res == CN_H1_ERROR)
            cn_ux_fail(ux, CAIRN_EPROTO, r.error ? r.error : "malformed upstream response");
        else if (rb->len > lim->max_head)
            cn_ux_fail(ux, CAIRN_EPROTO, "upstream response head too large");
        return false;
    }
    if (r.status == 101) {
        copy_fields(ux, &ux->resp->headers, &r, cn_buf_start(rb));
        cn_h1_headers_put(hdrs, n_hdrs);
        ux->resp->status = 101;
        cn_buf_consume(rb, r.head_len);
        cn_ux_switch(ux);
        return false;
    }
    if (r.status < 200) {
        cn_headers_t ih;
        copy_fields(ux, &ih, &r, cn_buf_start(rb));
        cn_h1_headers_put(hdrs, n_hdrs);
        cn_buf_consume(rb, r.head_len);
        if (ux->ops->on_interim != NULL)
            ux->ops->on_interim(ux->cb, r.status, &ih);
        return true;
    }
    ux->resp->status = r.status;
    copy_fields(ux, &ux->resp->headers, &r, cn_buf_start(rb));
    ux->resp->content_length = client_length(&ux->h1, &r);
    cn_h1_headers_put(hdrs, n_hdrs);
    cn_buf_consume(rb, r.head_len);
    final_head(ux, &r);
    return false;
}

static void
parse_head(cn_ux_t *ux)
{
    const cn_h1_limits_t lim = {.max_head = ux->req.max_head,
                                .max_headers = ux->req.max_headers,
                                .max_target = ux->req.max_head};
    while (parse_one(ux, &lim)) /* false once @ux may be gone */
        ;
}

static void
h1_on_read(cn_ux_t *ux, cairn_err_t status)
{
    if (status != CAIRN_OK) {
        if (ux->head_parsed && status == CAIRN_ECLOSED) {
            /* Deliver what is buffered first; the end (or the truncation) is decided once the
             * buffer is empty. */
            ux->h1.up_eof = true;
            ux->h1.resp_keep_alive = false;
            pump(ux);
            return;
        }
        cn_ux_fail(ux, status,
                   ux->head_parsed ? "upstream closed mid-response"
                                   : "upstream closed the connection before responding");
        return;
    }
    if (!ux->head_parsed) {
        parse_head(ux);
        return;
    }
    pump(ux);
}

const cn_ux_codec_t cn_ux_codec_h1 = {
    .name = "http1",
    .begin = h1_begin,
    .on_read = h1_on_read,
    .on_write = h1_on_write,
    .send_body = h1_send_body,
    .pull = h1_pull,
};
