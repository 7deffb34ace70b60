/* SPDX-License-Identifier: MIT */
/* The files route action's planning: request path → file under a root (with every traversal
 * form refused), then validators, preconditions and ranges → status, fields and byte ranges.
 * The engine performs the I/O the plan describes. */
#include "files/files.h"

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/str.h"
#include "core/time.h"
#include "http/conditional.h"
#include "http/etag.h"
#include "http/headers.h"

/* Ends the segment rel[*seg, *w): drops "" and ".", refuses "..", else keeps it plus "/". */
static bool
end_segment(char *rel, size_t *w, size_t *seg, size_t cap)
{
    size_t len = *w - *seg;
    const char *s = rel + *seg;

    if (len == 0)
        return true;
    if (len == 1 && s[0] == '.') {
        *w = *seg;
        return true;
    }
    if (len == 2 && s[0] == '.' && s[1] == '.')
        return false;
    if (*w + 1 >= cap)
        return false;
    rel[(*w)++] = '/';
    *seg = *w;
    return true;
}

/*
 * Percent-decodes and normalises @raw ("/a/%62/./c/") into @rel ("a/b/c", no leading or
 * trailing slash, NUL-terminated). False when the path must be refused.
 */
static bool
normalise_path(cairn_iov_t raw, char *rel, size_t cap, bool *trailing_slash)
{
    size_t w = 0, seg = 0;
    char last = '/';

    if (raw.len == 0 || raw.base[0] != '/')
        return false;
    for (size_t i = 1; i < raw.len; i++) {
        char c = raw.base[i];
        if (c == '%') {
            int hi = i + 2 < raw.len ? cn_hex_digit(raw.base[i + 1]) : -1;
            int lo = hi >= 0 ? cn_hex_digit(raw.base[i + 2]) : -1;
            if (lo < 0)
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        last = c;
        if (c == '/') {
            if (!end_segment(rel, &w, &seg, cap))
                return false;
            continue;
        }
        if (c == '\0' || c == '\\' || w + 1 >= cap)
            return false;
        rel[w++] = c;
    }
    if (!end_segment(rel, &w, &seg, cap))
        return false;
    if (w > 0)
        w--; /* the separator end_segment appended */
    rel[w] = '\0';
    *trailing_slash = last == '/';
    return true;
}

static bool
is_within(const char *path, const char *root, size_t root_len)
{
    if (root_len == 1 && root[0] == '/')
        return path[0] == '/';
    return strncmp(path, root, root_len) == 0 && (path[root_len] == '/' || path[root_len] == '\0');
}

/* Maps an errno from open() to a status. EACCES is 403 only for a path inside the root, so
 * permissions outside it are not disclosed. */
static int
open_errno_status(int err, const char *cand, const char *root, size_t root_len)
{
    char real[PATH_MAX];

    switch (err) {
    case EACCES:
    case EPERM:
        return realpath(cand, real) != NULL && is_within(real, root, root_len) ? 403 : 404;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EIO:
        return 500;
    default:
        return 404;
    }
}

/* Opens @cand and proves it lies under @root; on 200 *fd and *st are set. */
static int
open_checked(const char *cand, const char *root, size_t root_len, int *fd_out, struct stat *st)
{
    char real[PATH_MAX];
    struct stat rst;
    int fd = open(cand, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0)
        return open_errno_status(errno, cand, root, root_len);
    if (fstat(fd, st) != 0)
        goto fail;
    /* The check runs on the object already opened: the realpath must be inside the root and
     * must still be that same inode, so a symlink swapped after open() is caught. */
    if (realpath(cand, real) == NULL || !is_within(real, root, root_len) || stat(real, &rst) != 0 ||
        rst.st_dev != st->st_dev || rst.st_ino != st->st_ino)
        goto fail;
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        goto fail;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
        goto fail;
    *fd_out = fd;
    return 200;
fail:
    close(fd);
    return 404;
}

static bool
is_pchar_safe(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("-._~!$&'()*+,;=:@/", c) != NULL;
}

/* "/" + percent-encoded @rel + "/" + query (control bytes and non-ASCII escaped). */
static cairn_iov_t
make_location(cn_arena_t *arena, const char *rel, cairn_iov_t query)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t rlen = strlen(rel), cap = 3 + rlen * 3 + query.len * 3;
    char *p = cn_arena_alloc(arena, cap);
    size_t w = 0;

    if (p == NULL)
        return (cairn_iov_t){NULL, 0};
    p[w++] = '/';
    for (size_t i = 0; i < rlen; i++) {
        unsigned char c = (unsigned char)rel[i];
        if (is_pchar_safe(c)) {
            p[w++] = (char)c;
            continue;
        }
        p[w++] = '%';
        p[w++] = hex[c >> 4];
        p[w++] = hex[c & 15];
    }
    if (rlen > 0)
        p[w++] = '/';
    for (size_t i = 0; i < query.len; i++) {
        unsigned char c = (unsigned char)query.base[i];
        if (c > 0x20 && c < 0x7f) {
            p[w++] = (char)c;
            continue;
        }
        p[w++] = '%';
        p[w++] = hex[c >> 4];
        p[w++] = hex[c & 15];
    }
    p[w] = '\0';
    return cn_iov(p, w);
}

static int
finish(cn_files_target_t *out, int status)
{
    out->status = status;
    return status;
}

/* Serves the directory @cand (open as *fd) through @index; returns the status. */
static int
open_index(char *cand, const char *index, const char *root, size_t root_len, int *fd,
           struct stat *st)
{
    size_t clen = strlen(cand);

    close(*fd);
    *fd = -1;
    if (index == NULL || index[0] == '\0' || clen + 1 + strlen(index) >= PATH_MAX)
        return 404;
    snprintf(cand + clen, PATH_MAX - clen, "%s%s", clen && cand[clen - 1] == '/' ? "" : "/", index);
    int status = open_checked(cand, root, root_len, fd, st);
    if (status == 200 && !S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        return 404;
    }
    return status;
}

int
cn_files_resolve(const char *root, cairn_iov_t path, const char *index, cn_arena_t *arena,
                 cn_files_target_t *out)
{
    char root_real[PATH_MAX], rel[PATH_MAX], cand[PATH_MAX];
    const char *q = path.len ? memchr(path.base, '?', path.len) : NULL;
    cairn_iov_t raw = q ? cn_iov(path.base, (size_t)(q - path.base)) : path;
    cairn_iov_t query = q ? cn_iov(q, path.len - (size_t)(q - path.base)) : cn_iov(NULL, 0);
    bool trailing = false;
    struct stat st;
    int fd = -1;

    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (raw.len >= PATH_MAX * 3 || !normalise_path(raw, rel, sizeof(rel), &trailing))
        return finish(out, 404);
    if (root == NULL || realpath(root, root_real) == NULL)
        return finish(out, 404);
    size_t root_len = strlen(root_real);
    int n = snprintf(cand, sizeof(cand), "%s%s%s", root_real,
                     rel[0] && root_real[root_len - 1] != '/' ? "/" : "", rel);
    if (n < 0 || (size_t)n >= sizeof(cand))
        return finish(out, 404);

    int status = open_checked(cand, root_real, root_len, &fd, &st);
    if (status != 200)
        return finish(out, status);
    if (S_ISDIR(st.st_mode) && !trailing) {
        close(fd);
        out->location = make_location(arena, rel, query);
        return finish(out, out->location.base ? 301 : 500);
    }
    if (S_ISDIR(st.st_mode))
        status = open_index(cand, index, root_real, root_len, &fd, &st);
    else if (trailing)
        status = 404; /* "/file/" names no directory; open() of the joined path would agree. */
    if (status != 200) {
        if (fd >= 0)
            close(fd);
        return finish(out, status);
    }
    char *p = cn_arena_strndup(arena, cand, strlen(cand));
    if (p == NULL) {
        close(fd);
        return finish(out, 500);
    }
    out->fd = fd;
    out->st = st;
    out->path = cn_iov(p, strlen(p));
    return finish(out, 200);
}

static void
add_field(cn_headers_t *resp, const char *name, cairn_iov_t value)
{
    cn_headers_add_copy(resp, cn_iov_cstr(name), value);
}

static void
add_u64(cn_headers_t *resp, const char *name, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    add_field(resp, name, cn_iov(buf, (size_t)n));
}

/* ETag and Last-Modified, sent with 200, 206 and 304. */
static void
add_validators(cn_headers_t *resp, const cn_validators_t *v)
{
    char date[30];

    add_field(resp, "ETag", v->etag);
    if (v->last_modified != 0) {
        cn_time_http_date(v->last_modified, date);
        add_field(resp, "Last-Modified", cn_iov(date, 29));
    }
}

/* 206 with one range or multipart/byteranges for several. */
static cairn_err_t
plan_partial(const cn_files_plan_in_t *in, cn_arena_t *arena, cn_headers_t *resp,
             const cn_byte_range_t *r, size_t n, uint64_t size, cn_files_plan_t *p)
{
    char buf[CN_RANGE_CONTENT_RANGE_MAX];

    p->status = 206;
    if (n == 1) {
        add_field(resp, "Content-Range", cn_iov(buf, cn_range_format(buf, r[0], size)));
        if (in->content_type.len)
            add_field(resp, "Content-Type", in->content_type);
        p->body = CN_FILES_BODY_RANGE;
        p->offset = r[0].first;
        p->length = r[0].last - r[0].first + 1;
        p->content_length = p->length;
    } else {
        char bnd[CN_RANGE_BOUNDARY_MAX];
        cairn_iov_t b = cn_iov(bnd, cn_range_boundary(bnd, in->boundary_seed));
        cairn_err_t err = cn_multipart_build(&p->multipart, arena, r, n, in->content_type, size, b);
        if (err != CAIRN_OK)
            return err;
        add_field(resp, "Content-Type", p->multipart.content_type);
        p->body = CN_FILES_BODY_MULTIPART;
        p->content_length = p->multipart.body_length;
    }
    add_u64(resp, "Content-Length", p->content_length);
    return CAIRN_OK;
}

/* Returns the Range field when it applies to this request, else an empty iov. */
static cairn_iov_t
applicable_range(const cn_files_plan_in_t *in, const cn_validators_t *v)
{
    cairn_iov_t none = {NULL, 0};
    const cairn_iov_t name = CAIRN_IOV_LIT("Range");
    ssize_t i = cn_headers_find(in->req, name, -1);

    /* RFC 9110 §14.2: Range is defined for GET only; a repeated Range is not one valid
     * ranges-specifier, so it is ignored like any invalid one. */
    if (i < 0 || !cn_iov_eq(in->method, CAIRN_IOV_LIT("GET")) ||
        cn_headers_find(in->req, name, i) >= 0 || !cn_cond_if_range(in->req, v, in->now))
        return none;
    return in->req->items[i].value;
}

cairn_err_t
cn_files_plan(const cn_files_plan_in_t *in, cn_arena_t *arena, cn_headers_t *resp,
              cn_files_plan_t *out)
{
    cn_files_plan_t p = {0};
    char etag[CN_ETAG_MAX];
    uint64_t size = in->st->st_size > 0 ? (uint64_t)in->st->st_size : 0;
    int64_t mtime_ns = (int64_t)in->st->st_mtim.tv_sec * 1000000000 + in->st->st_mtim.tv_nsec;
    size_t max = in->max_ranges ? in->max_ranges : CN_RANGE_MAX_DEFAULT;
    cn_validators_t v = {
        .etag = cn_iov(etag, cn_etag_make(etag, size, mtime_ns,
                                          in->etag_inode ? (uint64_t)in->st->st_ino : 0)),
        .last_modified = in->st->st_mtim.tv_sec > 0 ? in->st->st_mtim.tv_sec : 0,
        .exists = true,
    };

    if (!cn_iov_eq(in->method, CAIRN_IOV_LIT("GET")) &&
        !cn_iov_eq(in->method, CAIRN_IOV_LIT("HEAD"))) {
        add_field(resp, "Allow", CAIRN_IOV_LIT("GET, HEAD"));
        p.status = 405;
        *out = p;
        return CAIRN_OK;
    }
    switch (cn_cond_evaluate(in->method, in->req, &v)) {
    case CN_COND_PRECONDITION_FAILED:
        p.status = 412;
        *out = p;
        return CAIRN_OK;
    case CN_COND_NOT_MODIFIED:
        add_validators(resp, &v);
        p.status = 304;
        *out = p;
        return CAIRN_OK;
    case CN_COND_PROCEED:
        break;
    }

    add_field(resp, "Accept-Ranges", CAIRN_IOV_LIT("bytes"));
    cairn_iov_t range = applicable_range(in, &v);
    if (range.len) {
        size_t n = 0;
        cn_byte_range_t *r =
            max <= SIZE_MAX / sizeof(*r) ? cn_arena_alloc(arena, max * sizeof(*r)) : NULL;
        if (r == NULL)
            return CAIRN_ENOMEM;
        switch (cn_range_parse(range, size, r, max, &n)) {
        case CN_RANGE_UNSATISFIABLE: {
            char buf[CN_RANGE_CONTENT_RANGE_MAX];
            add_field(resp, "Content-Range", cn_iov(buf, cn_range_format_unsatisfied(buf, size)));
            p.status = 416;
            *out = p;
            return CAIRN_OK;
        }
        case CN_RANGE_SATISFIABLE: {
            add_validators(resp, &v);
            cairn_err_t err = plan_partial(in, arena, resp, r, n, size, &p);
            if (err == CAIRN_OK)
                *out = p;
            return err;
        }
        case CN_RANGE_NONE:
            break;
        }
    }

    add_validators(resp, &v);
    if (in->content_type.len)
        add_field(resp, "Content-Type", in->content_type);
    add_u64(resp, "Content-Length", size);
    p.status = 200;
    p.content_length = size;
    if (size > 0 && cn_iov_eq(in->method, CAIRN_IOV_LIT("GET"))) {
        p.body = CN_FILES_BODY_RANGE;
        p.length = size;
    }
    *out = p;
    return CAIRN_OK;
}
