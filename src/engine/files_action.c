/* SPDX-License-Identifier: MIT */
/* The "files" route action, executing half: resolve the path on the libuv thread pool (disk
 * I/O never runs on a worker loop), plan the response (files.c), then stream the file in
 * 64 KiB reads from one buffer, each read issued only after the client took the previous
 * slice. The job outlives the session when the client leaves mid-read: it frees itself. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/str.h"
#include "core/time.h"
#include "http/mime.h"
#include "files/files.h"
#include "engine/session.h"

#define FILES_CHUNK 65536

struct file_item {
    cairn_iov_t mem; /* sent as is when len > 0 */
    uint64_t offset; /* else: this file range */
    uint64_t length;
};

struct files_job {
    uv_work_t work;
    uv_fs_t fs;
    cn_session_t *s;  /* NULL once the session ended */
    cn_arena_t arena; /* resolve results; the job's own */
    char *root, *index;
    cairn_iov_t path;
    cn_files_target_t target;
    struct file_item *items;
    size_t n_items, cur;
    uint64_t done_in_item; /* bytes of the current file item already sent */
    char *buf;
    bool reading;
};

static void files_pull(cn_session_t *s, void *src);
static void files_cancel(cn_session_t *s, void *src);

static const cn_body_src_ops_t files_src_ops = {
    .pull = files_pull,
    .cancel = files_cancel,
};

static void
job_free(struct files_job *job)
{
    if (job->target.fd >= 0)
        close(job->target.fd);
    cn_arena_fini(&job->arena);
    cn_free(job->buf);
    cn_free(job->root);
    cn_free(job->index);
    cn_free(job->path.base);
    cn_free(job);
}

static void
on_read_done(uv_fs_t *req)
{
    struct files_job *job = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    job->reading = false;
    cn_session_t *s = job->s;
    if (s == NULL) {
        job_free(job);
        return;
    }
    if (n <= 0) {
        /* The file shrank or failed under us: the response cannot be completed. */
        s->error = "file read failed";
        s->src_ops = NULL;
        job->s = NULL;
        job_free(job);
        cn_session_abort(s);
        return;
    }
    struct file_item *it = &job->items[job->cur];
    job->done_in_item += (uint64_t)n;
    bool item_done = job->done_in_item >= it->length;
    if (item_done) {
        job->cur++;
        job->done_in_item = 0;
    }
    bool eos = job->cur >= job->n_items;
    cairn_iov_t v = cn_iov(job->buf, (size_t)n);
    cn_session_send(s, &v, 1, eos);
}

static void
files_pull(cn_session_t *s, void *src)
{
    struct files_job *job = src;
    if (job->cur >= job->n_items)
        return;
    struct file_item *it = &job->items[job->cur];
    if (it->length == 0) {
        job->cur++;
        bool eos = job->cur >= job->n_items;
        cn_session_send(s, &it->mem, 1, eos);
        return;
    }
    uint64_t left = it->length - job->done_in_item;
    if (job->buf == NULL)
        job->buf = cn_xmalloc(FILES_CHUNK);
    uv_buf_t b = uv_buf_init(job->buf, (unsigned)CN_MIN(left, (uint64_t)FILES_CHUNK));
    job->fs.data = job;
    job->reading = true;
    if (uv_fs_read(&s->w->loop, &job->fs, job->target.fd, &b, 1,
                   (int64_t)(it->offset + job->done_in_item), on_read_done) != 0) {
        job->reading = false;
        s->src_ops = NULL;
        job->s = NULL;
        job_free(job);
        cn_session_abort(s);
    }
}

static void
files_cancel(cn_session_t *s, void *src)
{
    struct files_job *job = src;
    (void)s;
    job->s = NULL;
    if (!job->reading)
        job_free(job);
}

static void
build_items(struct files_job *job, const cn_files_plan_t *plan)
{
    if (plan->body == CN_FILES_BODY_RANGE) {
        job->items = cn_arena_xalloc(&job->arena, sizeof(*job->items));
        memset(job->items, 0, sizeof(*job->items));
        job->items[0].offset = plan->offset;
        job->items[0].length = plan->length;
        job->n_items = plan->length > 0 ? 1 : 0;
        return;
    }
    const cn_multipart_t *mp = &plan->multipart;
    job->items = cn_arena_xalloc(&job->arena, sizeof(*job->items) * (2 * mp->n + 1));
    memset(job->items, 0, sizeof(*job->items) * (2 * mp->n + 1));
    size_t k = 0;
    for (size_t i = 0; i < mp->n; i++) {
        job->items[k++].mem = mp->parts[i].head;
        job->items[k].offset = mp->parts[i].range.first;
        job->items[k++].length = mp->parts[i].range.last - mp->parts[i].range.first + 1;
    }
    job->items[k++].mem = mp->tail;
    job->n_items = k;
}

static void
serve_plan(cn_session_t *s, struct files_job *job)
{
    cn_files_plan_in_t in = {
        .method = s->req->method,
        .req = &s->req->headers,
        .st = &job->target.st,
        .content_type = cn_iov_cstr(cn_mime_type_for_path(job->target.path)),
        .now = time(NULL),
        .boundary_seed = cn_time_now_ns() ^ s->id,
    };
    cn_files_plan_t plan;
    if (cn_files_plan(&in, &job->arena, &s->resp.headers, &plan) != CAIRN_OK) {
        job_free(job);
        cn_session_error(s, 500, "files: out of request memory");
        return;
    }
    s->resp.status = (unsigned)plan.status;
    if (plan.status == 405 || plan.status == 412 || plan.status == 416) {
        job_free(job);
        cn_session_respond_status(s, (unsigned)plan.status);
        return;
    }
    s->resp.content_length = plan.status == 304 ? -1 : (int64_t)plan.content_length;
    bool head = s->req->method_id == CN_METHOD_HEAD;
    if (plan.status == 304 || head || plan.body == CN_FILES_BODY_NONE) {
        job_free(job);
        cn_session_send(s, NULL, 0, true);
        return;
    }
    build_items(job, &plan);
    s->src_ops = &files_src_ops;
    s->src = job;
    files_pull(s, job);
}

static void
resolve_work(uv_work_t *w)
{
    struct files_job *job = w->data;
    cn_files_resolve(job->root, job->path, job->index, &job->arena, &job->target);
}

static void
resolve_done(uv_work_t *w, int status)
{
    struct files_job *job = w->data;
    cn_session_t *s = job->s;
    (void)status;
    if (s == NULL) {
        job_free(job);
        return;
    }
    s->src_ops = NULL;
    int st = job->target.status;
    if (st == 200) {
        serve_plan(s, job);
        return;
    }
    if (st == 301) {
        /* The resolver saw the path without the route's stripped prefix: put it back. */
        cairn_iov_t loc = job->target.location;
        const char *prefix = s->route->match.path_prefix;
        if (s->route->strip_prefix && prefix != NULL) {
            size_t pl = strlen(prefix);
            while (pl > 0 && prefix[pl - 1] == '/')
                pl--;
            char *p = cn_arena_xalloc(s->arena, pl + loc.len + 1);
            memcpy(p, prefix, pl);
            memcpy(p + pl, loc.base, loc.len);
            loc = cn_iov(p, pl + loc.len);
        }
        cn_headers_add_copy(&s->resp.headers, CAIRN_IOV_LIT("Location"), loc);
        job_free(job);
        cn_session_respond_status(s, 301);
        return;
    }
    job_free(job);
    cn_session_error(s, (unsigned)st, st == 404 ? "file not found" : "file not readable");
}

/* While resolving, only the job pointer must be cleared when the client leaves. */
static void
resolve_pull(cn_session_t *s, void *src)
{
    (void)s;
    (void)src;
}

static void
resolve_cancel(cn_session_t *s, void *src)
{
    struct files_job *job = src;
    (void)s;
    job->s = NULL;
}

static const cn_body_src_ops_t resolve_src_ops = {
    .pull = resolve_pull,
    .cancel = resolve_cancel,
};

void
cn_action_files(cn_session_t *s)
{
    const cn_conf_route_t *r = s->route;
    struct files_job *job = cn_xcalloc(1, sizeof(*job));
    cn_arena_init(&job->arena, s->cfg->server.request_memory);
    job->s = s;
    job->target.fd = -1;
    job->root = cn_xstrdup(r->files.root);
    job->index = r->files.index ? cn_xstrdup(r->files.index) : NULL;
    cairn_iov_t path = s->req->path;
    const char *prefix = r->match.path_prefix;
    if (r->strip_prefix && prefix != NULL && cn_iov_has_prefix(path, cn_iov_cstr(prefix))) {
        size_t pl = strlen(prefix);
        path = cn_iov(path.base + pl, path.len - pl);
    }
    /* The resolver wants a leading slash; the query rides along only for the redirect. */
    size_t n = path.len + s->req->query.len + 3;
    char *p = cn_xmalloc(n);
    int l = snprintf(p, n, "%s%.*s%s%.*s", (path.len == 0 || path.base[0] != '/') ? "/" : "",
                     (int)path.len, path.base, s->req->has_query ? "?" : "", (int)s->req->query.len,
                     s->req->query.base);
    job->path = cn_iov(p, (size_t)l);
    job->work.data = job;
    s->src_ops = &resolve_src_ops;
    s->src = job;
    if (uv_queue_work(&s->w->loop, &job->work, resolve_work, resolve_done) != 0) {
        s->src_ops = NULL;
        job_free(job);
        cn_session_error(s, 500, "files: cannot queue work");
    }
}
