/* SPDX-License-Identifier: MIT */
/* Unit tests for src/http/mime.c: extension → Content-Type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/str.h"
#include "http/mime.h"

static void
expect_type(const char *path, const char *type)
{
    const char *t = cn_mime_type_for_path(cn_iov_cstr(path));
    if (strcmp(t, type) != 0)
        fail_msg("%s: got %s, want %s", path, t, type);
}

static void
test_common(void **state)
{
    static const char *const exts[] = {
        "html", "htm", "css",  "js",   "mjs", "json", "txt",   "xml",  "svg", "png", "jpg",
        "jpeg", "gif", "webp", "avif", "ico", "woff", "woff2", "ttf",  "otf", "pdf", "zip",
        "gz",   "tar", "mp4",  "webm", "mp3", "ogg",  "wav",   "wasm", "csv", "md",  "map",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
        if (cn_mime_type_for_ext(cn_iov_cstr(exts[i])) == NULL)
            fail_msg("no type for %s", exts[i]);
    expect_type("index.html", "text/html; charset=utf-8");
    expect_type("/a/b/style.css", "text/css; charset=utf-8");
    expect_type("app.js", "text/javascript; charset=utf-8");
    expect_type("mod.mjs", "text/javascript; charset=utf-8");
    expect_type("data.json", "application/json; charset=utf-8");
    expect_type("readme.txt", "text/plain; charset=utf-8");
    expect_type("README.md", "text/markdown; charset=utf-8");
    expect_type("x.svg", "image/svg+xml; charset=utf-8");
    expect_type("photo.jpg", "image/jpeg");
    expect_type("photo.jpeg", "image/jpeg");
    expect_type("f.woff2", "font/woff2");
    expect_type("m.wasm", "application/wasm");
    expect_type("clip.mp4", "video/mp4");
    expect_type("doc.pdf", "application/pdf");
}

static void
test_case_and_edges(void **state)
{
    (void)state;
    expect_type("INDEX.HTML", "text/html; charset=utf-8");
    expect_type("Photo.JpG", "image/jpeg");
    expect_type("archive.tar.gz", "application/gzip");
    expect_type("noext", CN_MIME_DEFAULT);
    expect_type("trailingdot.", CN_MIME_DEFAULT);
    expect_type(".htaccess", CN_MIME_DEFAULT);
    expect_type("dir/.bashrc", CN_MIME_DEFAULT);
    expect_type(".hidden.css", "text/css; charset=utf-8");
    expect_type("dir.d/file", CN_MIME_DEFAULT);
    expect_type("file.unknownext", CN_MIME_DEFAULT);
    expect_type("", CN_MIME_DEFAULT);
    expect_type("/", CN_MIME_DEFAULT);
    assert_null(cn_mime_type_for_ext(cn_iov(NULL, 0)));
    assert_null(cn_mime_type_for_ext(cn_iov_cstr("htmlx")));
    assert_non_null(cn_mime_type_for_ext(cn_iov("html", 3)));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common),
        cmocka_unit_test(test_case_and_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
