/* SPDX-License-Identifier: MIT */
/* Unit tests for src/files/files.c: path resolution under a root (every traversal form must
 * be refused) and response planning (200/206/304/405/412/416). Builds a scratch tree in
 * /tmp with files, subdirectories, symlinks inside and outside the root, and a FIFO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/str.h"
#include "http/headers.h"
#include "http/mime.h"
#include "files/files.h"

#define MTIME ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 GMT */
#define MTIME_DATE "Tue, 14 Nov 2023 22:13:20 GMT"
#define ETAG "\"6553f100-b\""
#define NOW (MTIME + 100)

struct fixture {
    char base[64];
    char root[128];
    cn_arena_t arena;
    cn_headers_t req, resp;
    struct stat st; /* of root/a.txt */
};

static void
write_file(const char *dir, const char *name, const char *content)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

static void
make_dir(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void
make_link(const char *dir, const char *name, const char *target)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(symlink(target, p), 0);
}

static int
setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof(*f));
    char p[512];

    snprintf(f->base, sizeof(f->base), "/tmp/cn_files_XXXXXX");
    assert_non_null(mkdtemp(f->base));
    snprintf(f->root, sizeof(f->root), "%s/root", f->base);
    assert_int_equal(mkdir(f->root, 0755), 0);
    make_dir(f->base, "outside");
    write_file(f->base, "outside/secret.txt", "secret");
    write_file(f->base, "outside/index.html", "outside index");

    write_file(f->root, "index.html", "root index");
    write_file(f->root, "a.txt", "hello world");
    write_file(f->root, "empty.txt", "");
    write_file(f->root, "with space.txt", "spaced");
    write_file(f->root, "noread.txt", "private");
    snprintf(p, sizeof(p), "%s/noread.txt", f->root);
    assert_int_equal(chmod(p, 0), 0);
    make_dir(f->root, "sub");
    write_file(f->root, "sub/index.html", "sub index");
    write_file(f->root, "sub/b.css", "b{}");
    make_dir(f->root, "nodir");
    make_dir(f->root, "evil.com");
    make_dir(f->root, "sp ace");
    make_dir(f->root, "%2e%2e");
    write_file(f->root, "%2e%2e/x.txt", "literal");
    make_dir(f->root, "idxdir");
    make_dir(f->root, "idxdir/index.html");
    make_dir(f->root, "leakdir");
    snprintf(p, sizeof(p), "%s/outside/index.html", f->base);
    make_link(f->root, "leakdir/index.html", p);
    make_link(f->root, "link_in", "a.txt");
    make_link(f->root, "link_sub", "sub");
    make_link(f->root, "link_out", "../outside/secret.txt");
    snprintf(p, sizeof(p), "%s/outside/secret.txt", f->base);
    make_link(f->root, "link_abs_out", p);
    make_link(f->root, "link_dir_out", "../outside");
    make_link(f->root, "link_etc", "/etc/passwd");
    make_link(f->root, "link_loop", "link_loop");
    snprintf(p, sizeof(p), "%s/fifo", f->root);
    assert_int_equal(mkfifo(p, 0644), 0);
    snprintf(p, sizeof(p), "%s/rootlink", f->base);
    assert_int_equal(symlink("root", p), 0);

    snprintf(p, sizeof(p), "%s/a.txt", f->root);
    struct timespec ts[2] = {{MTIME, 0}, {MTIME, 0}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    assert_int_equal(stat(p, &f->st), 0);

    cn_arena_init(&f->arena, 0);
    cn_headers_init(&f->req, &f->arena);
    cn_headers_init(&f->resp, &f->arena);
    *state = f;
    return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    cn_arena_fini(&f->arena);
    test_free(f);
    return 0;
}

static int
resolve_with(struct fixture *f, const char *root, cairn_iov_t path, const char *index,
             cn_files_target_t *t)
{
    int s = cn_files_resolve(root, path, index, &f->arena, t);
    assert_int_equal(s, t->status);
    if (s != 200)
        assert_int_equal(t->fd, -1);
    else
        assert_true(t->fd >= 0);
    return s;
}

static void
expect_status_iov(struct fixture *f, cairn_iov_t path, int status)
{
    cn_files_target_t t;
    int s = resolve_with(f, f->root, path, "index.html", &t);
    if (t.fd >= 0)
        close(t.fd);
    if (s != status)
        fail_msg("%.*s: got %d, want %d", (int)path.len, path.base, s, status);
}

static void
expect_status(struct fixture *f, const char *path, int status)
{
    expect_status_iov(f, cn_iov_cstr(path), status);
}

static void
expect_file_at(struct fixture *f, const char *root, const char *path, const char *content)
{
    cn_files_target_t t;
    char buf[256];
    int s = resolve_with(f, root, cn_iov_cstr(path), "index.html", &t);
    if (s != 200)
        fail_msg("%s: got %d, want 200", path, s);
    ssize_t n = read(t.fd, buf, sizeof(buf) - 1);
    close(t.fd);
    assert_true(n >= 0);
    buf[n] = '\0';
    if (strcmp(buf, content) != 0)
        fail_msg("%s: got [%s], want [%s]", path, buf, content);
    assert_int_equal(t.st.st_size, (off_t)strlen(content));
    assert_true(S_ISREG(t.st.st_mode));
    assert_int_equal(t.path.base[t.path.len], '\0');
}

static void
expect_file(struct fixture *f, const char *path, const char *content)
{
    expect_file_at(f, f->root, path, content);
}

static void
expect_redirect(struct fixture *f, const char *path, const char *location)
{
    cn_files_target_t t;
    int s = resolve_with(f, f->root, cn_iov_cstr(path), "index.html", &t);
    if (s != 301)
        fail_msg("%s: got %d, want 301", path, s);
    if (!cn_iov_eq(t.location, cn_iov_cstr(location)))
        fail_msg("%s: Location [%.*s], want [%s]", path, (int)t.location.len, t.location.base,
                 location);
}

static void
test_serves_files(void **state)
{
    struct fixture *f = *state;
    cn_files_target_t t;

    expect_file(f, "/a.txt", "hello world");
    expect_file(f, "/a.txt?x=1&y=/../", "hello world");
    expect_file(f, "/", "root index");
    expect_file(f, "/sub/", "sub index");
    expect_file(f, "/sub/b.css", "b{}");
    expect_file(f, "//sub//./b.css", "b{}");
    expect_file(f, "/./sub/.//b.css", "b{}");
    expect_file(f, "/%73ub/b.css", "b{}");
    expect_file(f, "/sub%2fb.css", "b{}");
    expect_file(f, "/sub%2Fb.css", "b{}");
    expect_file(f, "/with%20space.txt", "spaced");
    expect_file(f, "/link_in", "hello world");
    expect_file(f, "/link_sub/b.css", "b{}");
    expect_file(f, "/link_sub/", "sub index");
    /* Decoded once: "%252e%252e" is the literal directory name "%2e%2e", not "..". */
    expect_file(f, "/%252e%252e/x.txt", "literal");
    /* The root may itself be reached through a symlink. */
    char rl[160];
    snprintf(rl, sizeof(rl), "%s/rootlink", f->base);
    expect_file_at(f, rl, "/sub/b.css", "b{}");

    assert_int_equal(resolve_with(f, f->root, cn_iov_cstr("/sub/"), "index.html", &t), 200);
    close(t.fd);
    assert_true(t.path.len > 15);
    assert_string_equal(t.path.base + t.path.len - 15, "/sub/index.html");
    assert_string_equal(cn_mime_type_for_path(t.path), "text/html; charset=utf-8");
}

static void
test_fd_flags(void **state)
{
    struct fixture *f = *state;
    cn_files_target_t t;

    assert_int_equal(resolve_with(f, f->root, cn_iov_cstr("/a.txt"), NULL, &t), 200);
    assert_true(fcntl(t.fd, F_GETFD) & FD_CLOEXEC);
    int fl = fcntl(t.fd, F_GETFL);
    assert_int_equal(fl & O_ACCMODE, O_RDONLY);
    assert_int_equal(fl & O_NONBLOCK, 0);
    close(t.fd);
}

static void
test_directories(void **state)
{
    struct fixture *f = *state;
    cn_files_target_t t;

    expect_redirect(f, "/sub", "/sub/");
    expect_redirect(f, "/sub?x=1&y", "/sub/?x=1&y");
    expect_redirect(f, "/link_sub", "/link_sub/");
    expect_redirect(f, "/sp%20ace", "/sp%20ace/");
    expect_redirect(f, "/sub/.", "/sub/");
    expect_redirect(f, "/.", "/");
    /* The Location is rebuilt from the normalised path: no protocol-relative "//host/". */
    expect_redirect(f, "//evil.com", "/evil.com/");
    expect_redirect(f, "/%2fevil.com", "/evil.com/");
    /* No index file, an index that is a directory, or one that leaves the root: 404. */
    expect_status(f, "/nodir/", 404);
    expect_status(f, "/idxdir/", 404);
    expect_status(f, "/leakdir/", 404);
    assert_int_equal(resolve_with(f, f->root, cn_iov_cstr("/sub/"), NULL, &t), 404);
    assert_int_equal(resolve_with(f, f->root, cn_iov_cstr("/sub/"), "", &t), 404);
    assert_int_equal(resolve_with(f, f->root, cn_iov_cstr("/sub/"), "b.css", &t), 200);
    close(t.fd);
}

static void
test_traversal_refused(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "/../etc/passwd",
        "/../outside/secret.txt",
        "/..",
        "/../",
        "/%2e%2e/",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2e%2f",
        "/%2E%2e%2foutside%2fsecret.txt",
        "/.%2e/outside/secret.txt",
        "/%2e./outside/secret.txt",
        "/a/../../",
        "/a/../../outside/secret.txt",
        "/sub/../../outside/secret.txt",
        "/sub/..",
        "/sub/../a.txt",
        "/..%2f",
        "/..%2foutside/secret.txt",
        "/sub%2f..%2f..%2foutside%2fsecret.txt",
        "/%252e%252e/",
        "/%252e%252e/outside/secret.txt",
        "/a\\..\\",
        "/a\\..\\outside\\secret.txt",
        "/sub%5c..%5c..%5coutside%5csecret.txt",
        "/sub%5C..",
        "/%00",
        "/a.txt%00",
        "/a.txt%00.html",
        "/link_out",
        "/link_abs_out",
        "/link_dir_out/secret.txt",
        "/link_dir_out/",
        "/link_dir_out",
        "/link_etc",
        "/link_loop",
        "",
        "a.txt",
        "*",
        "http://x/a.txt",
        "/%zz",
        "/%4",
        "/a.txt%",
        "/a.txt%2",
        "/%g0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_status(f, bad[i], 404);
    /* A raw NUL inside the slice is refused too. */
    expect_status_iov(f, cn_iov("/a.txt\0.html", 12), 404);
    expect_status_iov(f, cn_iov(NULL, 0), 404);
}

static void
test_missing_and_special(void **state)
{
    struct fixture *f = *state;
    cn_files_target_t t;

    expect_status(f, "/nonexistent", 404);
    expect_status(f, "/sub/nonexistent.css", 404);
    expect_status(f, "/a.txt/", 404);
    expect_status(f, "/a.txt/x", 404);
    /* A FIFO is opened non-blocking and refused: not a regular file. */
    expect_status(f, "/fifo", 404);
    /* A missing root is a 404, not a crash. */
    assert_int_equal(resolve_with(f, "/nonexistent/cairn/root", cn_iov_cstr("/a.txt"), NULL, &t),
                     404);
    assert_int_equal(resolve_with(f, NULL, cn_iov_cstr("/a.txt"), NULL, &t), 404);
    /* Very long paths are refused without overflowing anything. */
    size_t n = 3 * 4096 + 10;
    char *lp = test_malloc(n + 1);
    lp[0] = '/';
    memset(lp + 1, 'a', n - 1);
    lp[n] = '\0';
    expect_status(f, lp, 404);
    for (size_t i = 1; i + 2 < n; i += 2)
        lp[i] = 'a', lp[i + 1] = '/';
    expect_status(f, lp, 404);
    test_free(lp);
}

static void
test_unreadable(void **state)
{
    struct fixture *f = *state;
    char p[256];

    snprintf(p, sizeof(p), "%s/noread.txt", f->root);
    int fd = open(p, O_RDONLY);
    if (fd >= 0) {
        /* Running as root (or with CAP_DAC_OVERRIDE): mode 000 is still readable, so the 403
         * cannot be provoked here. Only this one assertion is skipped. */
        close(fd);
        expect_status(f, "/noread.txt", 200);
        return;
    }
    expect_status(f, "/noread.txt", 403);
}

/* ---- planning ---- */

static cn_files_plan_t
plan_with(struct fixture *f, const char *method, const struct stat *st, time_t now)
{
    cn_files_plan_t p;
    cn_files_plan_in_t in = {
        .method = cn_iov_cstr(method),
        .req = &f->req,
        .st = st,
        .content_type = CAIRN_IOV_LIT("text/plain; charset=utf-8"),
        .now = now,
        .boundary_seed = 7,
    };
    f->resp.n = 0;
    memset(&p, 0xa5, sizeof(p));
    assert_int_equal(cn_files_plan(&in, &f->arena, &f->resp, &p), CAIRN_OK);
    return p;
}

static cn_files_plan_t
plan(struct fixture *f, const char *method)
{
    return plan_with(f, method, &f->st, NOW);
}

static void
req(struct fixture *f, const char *name, const char *value)
{
    cn_headers_add(&f->req, cn_iov_cstr(name), cn_iov_cstr(value));
}

static void
expect_field(struct fixture *f, const char *name, const char *value)
{
    const cairn_iov_t *v = cn_headers_get(&f->resp, cn_iov_cstr(name));
    if (value == NULL) {
        if (v != NULL)
            fail_msg("%s present: [%.*s]", name, (int)v->len, v->base);
        return;
    }
    if (v == NULL)
        fail_msg("%s missing", name);
    if (!cn_iov_eq(*v, cn_iov_cstr(value)))
        fail_msg("%s: [%.*s], want [%s]", name, (int)v->len, v->base, value);
}

static void
test_plan_full(void **state)
{
    struct fixture *f = *state;
    cn_files_plan_t p = plan(f, "GET");

    assert_int_equal(p.status, 200);
    assert_int_equal(p.body, CN_FILES_BODY_RANGE);
    assert_int_equal(p.offset, 0);
    assert_int_equal(p.length, 11);
    assert_int_equal(p.content_length, 11);
    expect_field(f, "Content-Type", "text/plain; charset=utf-8");
    expect_field(f, "Content-Length", "11");
    expect_field(f, "ETag", ETAG);
    expect_field(f, "Last-Modified", MTIME_DATE);
    expect_field(f, "Accept-Ranges", "bytes");
    expect_field(f, "Content-Range", NULL);

    p = plan(f, "HEAD");
    assert_int_equal(p.status, 200);
    assert_int_equal(p.body, CN_FILES_BODY_NONE);
    assert_int_equal(p.content_length, 11);
    expect_field(f, "Content-Length", "11");
    expect_field(f, "ETag", ETAG);

    /* Range is GET-only: HEAD ignores it. */
    req(f, "Range", "bytes=0-1");
    p = plan(f, "HEAD");
    assert_int_equal(p.status, 200);
    expect_field(f, "Content-Length", "11");
}

static void
test_plan_method(void **state)
{
    struct fixture *f = *state;
    static const char *const methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "get", "PATCH"};

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        cn_files_plan_t p = plan(f, methods[i]);
        assert_int_equal(p.status, 405);
        assert_int_equal(p.body, CN_FILES_BODY_NONE);
        expect_field(f, "Allow", "GET, HEAD");
        expect_field(f, "Content-Length", NULL);
    }
}

static void
test_plan_ranges(void **state)
{
    struct fixture *f = *state;
    cn_files_plan_t p;

    req(f, "Range", "bytes=0-4");
    p = plan(f, "GET");
    assert_int_equal(p.status, 206);
    assert_int_equal(p.body, CN_FILES_BODY_RANGE);
    assert_int_equal(p.offset, 0);
    assert_int_equal(p.length, 5);
    expect_field(f, "Content-Range", "bytes 0-4/11");
    expect_field(f, "Content-Length", "5");
    expect_field(f, "Content-Type", "text/plain; charset=utf-8");
    expect_field(f, "ETag", ETAG);

    f->req.n = 0;
    req(f, "range", "bytes=-3");
    p = plan(f, "GET");
    assert_int_equal(p.status, 206);
    assert_int_equal(p.offset, 8);
    assert_int_equal(p.length, 3);
    expect_field(f, "Content-Range", "bytes 8-10/11");

    /* Overlapping ranges are coalesced into one plain 206. */
    f->req.n = 0;
    req(f, "Range", "bytes=0-1,1-3,0-2");
    p = plan(f, "GET");
    assert_int_equal(p.status, 206);
    assert_int_equal(p.body, CN_FILES_BODY_RANGE);
    expect_field(f, "Content-Range", "bytes 0-3/11");

    f->req.n = 0;
    req(f, "Range", "bytes=20-");
    p = plan(f, "GET");
    assert_int_equal(p.status, 416);
    assert_int_equal(p.body, CN_FILES_BODY_NONE);
    expect_field(f, "Content-Range", "bytes */11");
    expect_field(f, "Content-Length", NULL);

    /* Invalid or foreign-unit Range: ignored, 200. */
    f->req.n = 0;
    req(f, "Range", "bytes=5-2");
    assert_int_equal(plan(f, "GET").status, 200);
    f->req.n = 0;
    req(f, "Range", "items=0-1");
    assert_int_equal(plan(f, "GET").status, 200);
    /* Two Range fields: not one valid ranges-specifier, ignored. */
    f->req.n = 0;
    req(f, "Range", "bytes=0-1");
    req(f, "Range", "bytes=2-3");
    assert_int_equal(plan(f, "GET").status, 200);
}

static void
test_plan_multipart(void **state)
{
    struct fixture *f = *state;
    cn_files_plan_t p;

    req(f, "Range", "bytes=0-1, 6-");
    p = plan(f, "GET");
    assert_int_equal(p.status, 206);
    assert_int_equal(p.body, CN_FILES_BODY_MULTIPART);
    assert_int_equal(p.multipart.n, 2);
    assert_int_equal(p.multipart.parts[0].range.first, 0);
    assert_int_equal(p.multipart.parts[0].range.last, 1);
    assert_int_equal(p.multipart.parts[1].range.first, 6);
    assert_int_equal(p.multipart.parts[1].range.last, 10);
    assert_int_equal(p.content_length, p.multipart.body_length);
    const cairn_iov_t *ct = cn_headers_get(&f->resp, CAIRN_IOV_LIT("Content-Type"));
    assert_non_null(ct);
    assert_true(cn_iov_eq(*ct, p.multipart.content_type));
    assert_true(cn_iov_has_prefix(*ct, CAIRN_IOV_LIT("multipart/byteranges; boundary=")));
    expect_field(f, "Content-Range", NULL);
    char cl[24];
    snprintf(cl, sizeof(cl), "%llu", (unsigned long long)p.content_length);
    expect_field(f, "Content-Length", cl);
    /* Assemble the body as the engine would and check it. */
    char body[1024];
    size_t w = 0;
    const char *content = "hello world";
    for (size_t i = 0; i < p.multipart.n; i++) {
        const cn_multipart_part_t *part = &p.multipart.parts[i];
        memcpy(body + w, part->head.base, part->head.len);
        w += part->head.len;
        size_t len = (size_t)(part->range.last - part->range.first + 1);
        memcpy(body + w, content + part->range.first, len);
        w += len;
    }
    memcpy(body + w, p.multipart.tail.base, p.multipart.tail.len);
    w += p.multipart.tail.len;
    assert_int_equal(w, p.content_length);
    body[w] = '\0';
    assert_non_null(strstr(body, "Content-Range: bytes 0-1/11\r\n\r\nhe\r\n--"));
    assert_non_null(strstr(body, "Content-Range: bytes 6-10/11\r\n\r\nworld\r\n--"));
    assert_non_null(strstr(body, "Content-Type: text/plain; charset=utf-8\r\n"));
}

static void
test_plan_conditionals(void **state)
{
    struct fixture *f = *state;
    cn_files_plan_t p;

    req(f, "If-None-Match", ETAG);
    p = plan(f, "GET");
    assert_int_equal(p.status, 304);
    assert_int_equal(p.body, CN_FILES_BODY_NONE);
    expect_field(f, "ETag", ETAG);
    expect_field(f, "Last-Modified", MTIME_DATE);
    expect_field(f, "Content-Length", NULL);
    expect_field(f, "Content-Type", NULL);
    assert_int_equal(plan(f, "HEAD").status, 304);
    /* Method check comes first. */
    assert_int_equal(plan(f, "POST").status, 405);

    f->req.n = 0;
    req(f, "If-None-Match", "\"other\"");
    assert_int_equal(plan(f, "GET").status, 200);

    f->req.n = 0;
    req(f, "If-Modified-Since", MTIME_DATE);
    assert_int_equal(plan(f, "GET").status, 304);
    f->req.n = 0;
    req(f, "If-Modified-Since", "Tue, 14 Nov 2023 22:13:19 GMT");
    assert_int_equal(plan(f, "GET").status, 200);

    f->req.n = 0;
    req(f, "If-Match", "\"other\"");
    p = plan(f, "GET");
    assert_int_equal(p.status, 412);
    assert_int_equal(p.body, CN_FILES_BODY_NONE);
    f->req.n = 0;
    req(f, "If-Match", ETAG);
    assert_int_equal(plan(f, "GET").status, 200);

    f->req.n = 0;
    req(f, "If-Unmodified-Since", "Tue, 14 Nov 2023 22:13:19 GMT");
    assert_int_equal(plan(f, "GET").status, 412);
    /* A precondition failure wins over a Range. */
    req(f, "Range", "bytes=0-1");
    assert_int_equal(plan(f, "GET").status, 412);

    /* 304 wins over a Range too. */
    f->req.n = 0;
    req(f, "Range", "bytes=0-1");
    req(f, "If-None-Match", ETAG);
    assert_int_equal(plan(f, "GET").status, 304);
}

static void
test_plan_if_range(void **state)
{
    struct fixture *f = *state;

    req(f, "Range", "bytes=0-1");
    req(f, "If-Range", ETAG);
    assert_int_equal(plan(f, "GET").status, 206);
    f->req.n = 0;
    req(f, "Range", "bytes=0-1");
    req(f, "If-Range", "\"stale\"");
    cn_files_plan_t p = plan(f, "GET");
    assert_int_equal(p.status, 200);
    assert_int_equal(p.length, 11);
    f->req.n = 0;
    req(f, "Range", "bytes=0-1");
    req(f, "If-Range", "W/" ETAG);
    assert_int_equal(plan(f, "GET").status, 200);
    f->req.n = 0;
    req(f, "Range", "bytes=0-1");
    req(f, "If-Range", MTIME_DATE);
    assert_int_equal(plan(f, "GET").status, 206);
    /* Modified in the current second: the date is a weak validator, the Range is ignored. */
    assert_int_equal(plan_with(f, "GET", &f->st, MTIME).status, 200);
    /* A stale If-Range also turns an unsatisfiable Range into a plain 200. */
    f->req.n = 0;
    req(f, "Range", "bytes=100-");
    req(f, "If-Range", "\"stale\"");
    assert_int_equal(plan(f, "GET").status, 200);
}

static void
test_plan_empty_and_etag_inode(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    char p[256];

    snprintf(p, sizeof(p), "%s/empty.txt", f->root);
    assert_int_equal(stat(p, &st), 0);
    cn_files_plan_t pl = plan_with(f, "GET", &st, NOW);
    assert_int_equal(pl.status, 200);
    assert_int_equal(pl.body, CN_FILES_BODY_NONE);
    expect_field(f, "Content-Length", "0");
    req(f, "Range", "bytes=-5");
    assert_int_equal(plan_with(f, "GET", &st, NOW).status, 200);
    f->req.n = 0;
    req(f, "Range", "bytes=0-");
    assert_int_equal(plan_with(f, "GET", &st, NOW).status, 416);
    expect_field(f, "Content-Range", "bytes */0");

    /* With the inode the tag changes; the default one is nginx's. */
    f->req.n = 0;
    cn_files_plan_in_t in = {
        .method = CAIRN_IOV_LIT("GET"),
        .req = &f->req,
        .st = &f->st,
        .now = NOW,
        .etag_inode = true,
    };
    f->resp.n = 0;
    assert_int_equal(cn_files_plan(&in, &f->arena, &f->resp, &pl), CAIRN_OK);
    const cairn_iov_t *etag = cn_headers_get(&f->resp, CAIRN_IOV_LIT("ETag"));
    assert_non_null(etag);
    assert_false(cn_iov_eq(*etag, CAIRN_IOV_LIT(ETAG)));
    /* No content type: no Content-Type field. */
    expect_field(f, "Content-Type", NULL);
}

static void
test_plan_arena_cap(void **state)
{
    struct fixture *f = *state;
    cn_arena_t small;
    cn_files_plan_t p = {.status = 1};

    req(f, "Range", "bytes=0-1,3-4,6-7");
    cn_files_plan_in_t in = {
        .method = CAIRN_IOV_LIT("GET"),
        .req = &f->req,
        .st = &f->st,
        .content_type = CAIRN_IOV_LIT("text/plain"),
        .now = NOW,
    };
    cn_arena_init(&small, 300);
    assert_int_equal(cn_files_plan(&in, &small, &f->resp, &p), CAIRN_ENOMEM);
    assert_int_equal(p.status, 1);
    cn_arena_fini(&small);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_serves_files),
        T(test_fd_flags),
        T(test_directories),
        T(test_traversal_refused),
        T(test_missing_and_special),
        T(test_unreadable),
        T(test_plan_full),
        T(test_plan_method),
        T(test_plan_ranges),
        T(test_plan_multipart),
        T(test_plan_conditionals),
        T(test_plan_if_range),
        T(test_plan_empty_and_etag_inode),
        T(test_plan_arena_cap),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
