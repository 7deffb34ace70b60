/* SPDX-License-Identifier: MIT */
/* Unit tests for src/http/path.c: percent-decoding, dot-segment removal, slash merging and
 * the escaped-slash modes. Each table row is an input, the options and the expected output or
 * refusal; every successful output is also checked to normalise to itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/str.h"
#include "http/path.h"

struct row {
    const char *in;
    const char *want; /* NULL when refused */
    cn_path_result_t err;
};

/* Normalises @in; returns the result and, on success, the output in @buf (NUL-terminated). */
static cn_path_result_t
norm(const char *in, const cn_path_opts_t *o, char *buf, size_t cap)
{
    size_t n = strlen(in), len = (size_t)-1;
    /* Both buffers have exactly the input's length, no NUL: ASan sees any overrun. */
    char *copy = malloc(n ? n : 1), *out = malloc(n ? n : 1);
    assert_non_null(copy);
    assert_non_null(out);
    memcpy(copy, in, n);
    cn_path_result_t r = cn_path_normalize(cn_iov(copy, n), out, &len, o);
    free(copy);
    if (r == CN_PATH_OK) {
        assert_true(len >= 1 && len <= n && len < cap);
        memcpy(buf, out, len);
        buf[len] = '\0';
    } else {
        assert_int_equal(len, (size_t)-1); /* not written on failure */
    }
    free(out);
    return r;
}

static void
run_table(const struct row *rows, size_t n, const cn_path_opts_t *o)
{
    char got[512], again[512];
    for (size_t i = 0; i < n; i++) {
        cn_path_result_t r = norm(rows[i].in, o, got, sizeof(got));
        if (rows[i].want == NULL) {
            if (r != rows[i].err)
                fail_msg("[%s]: result %d, want %d", rows[i].in, r, rows[i].err);
            continue;
        }
        if (r != CN_PATH_OK)
            fail_msg("[%s]: refused (%s), want [%s]", rows[i].in, cn_path_strerror(r),
                     rows[i].want);
        if (strcmp(got, rows[i].want) != 0)
            fail_msg("[%s]: got [%s], want [%s]", rows[i].in, got, rows[i].want);
        if (norm(got, o, again, sizeof(again)) != CN_PATH_OK || strcmp(again, got) != 0)
            fail_msg("[%s]: not idempotent: [%s] → [%s]", rows[i].in, got, again);
    }
}

#define RUN(rows, opts) run_table(rows, sizeof(rows) / sizeof(rows[0]), opts)
#define OK(in, want)                                                                               \
    {                                                                                              \
        in, want, CN_PATH_OK                                                                       \
    }
#define ERR(in, e)                                                                                 \
    {                                                                                              \
        in, NULL, e                                                                                \
    }

static const cn_path_opts_t defaults = CN_PATH_OPTS_DEFAULT;

/* The route bypasses of the defect: all of them must become "/blocked/q". */
static void
test_bypasses(void **state)
{
    (void)state;
    static const struct row rows[] = {
        OK("/x/../blocked/q", "/blocked/q"),
        OK("/./blocked/q", "/blocked/q"),
        OK("//blocked/q", "/blocked/q"),
        OK("/%62locked/q", "/blocked/q"),
        OK("/x/%2e%2e/blocked/q", "/blocked/q"),
        OK("/x/%2E%2E/blocked/q", "/blocked/q"),
        OK("/x/.%2e/blocked/q", "/blocked/q"),
        OK("/x/%2e./blocked/q", "/blocked/q"),
        OK("/%2e/blocked/q", "/blocked/q"),
        OK("/blocked/%2e/q", "/blocked/q"),
        ERR("/../blocked/q", CN_PATH_ERR_ABOVE_ROOT),
    };
    RUN(rows, &defaults);
    RUN(rows, NULL); /* NULL options are the defaults */
}

/* RFC 3986 §5.2.4 and the dot-segment results of the §5.4 examples (their paths, with the
 * base "/b/c/d;p" already merged in), plus the edges around the root. */
static void
test_dot_segments(void **state)
{
    (void)state;
    static const struct row rows[] = {
        OK("/a/b/c/./../../g", "/a/g"), OK("/b/c/g", "/b/c/g"), OK("/b/c/./g", "/b/c/g"),
        OK("/b/c/g/", "/b/c/g/"), OK("/b/c/.", "/b/c/"), OK("/b/c/./", "/b/c/"),
        OK("/b/c/..", "/b/"), OK("/b/c/../", "/b/"), OK("/b/c/../g", "/b/g"), OK("/b/c/../..", "/"),
        OK("/b/c/../../", "/"), OK("/b/c/../../g", "/g"), OK("/b/c/g.", "/b/c/g."),
        OK("/b/c/.g", "/b/c/.g"), OK("/b/c/g..", "/b/c/g.."), OK("/b/c/..g", "/b/c/..g"),
        OK("/b/c/./../g", "/b/g"), OK("/b/c/./g/.", "/b/c/g/"), OK("/b/c/g/./h", "/b/c/g/h"),
        OK("/b/c/g/../h", "/b/c/h"), OK("/b/c/g;x=1/./y", "/b/c/g;x=1/y"),
        OK("/b/c/g;x=1/../y", "/b/c/y"), OK("/mid/content=5/../6", "/mid/6"), OK("/", "/"),
        OK("/.", "/"), OK("/./", "/"), OK("/a/..", "/"), OK("/a/../", "/"), OK("/...", "/..."),
        OK("/a/.../b", "/a/.../b"), OK("/a/b/", "/a/b/"),
        /* §5.4.2 would turn these into "/g" (it drops the excess ".."); cairn refuses them. */
        ERR("/b/c/../../../g", CN_PATH_ERR_ABOVE_ROOT),
        ERR("/b/c/../../../../g", CN_PATH_ERR_ABOVE_ROOT), ERR("/..", CN_PATH_ERR_ABOVE_ROOT),
        ERR("/../", CN_PATH_ERR_ABOVE_ROOT), ERR("/../x", CN_PATH_ERR_ABOVE_ROOT),
        ERR("/a/../../x", CN_PATH_ERR_ABOVE_ROOT), ERR("/a/./../..", CN_PATH_ERR_ABOVE_ROOT),
        ERR("/%2e%2e/x", CN_PATH_ERR_ABOVE_ROOT), ERR("/.%2E", CN_PATH_ERR_ABOVE_ROOT),
        ERR("//../x", CN_PATH_ERR_ABOVE_ROOT), /* merged first: "/../x" */
    };
    RUN(rows, &defaults);
}

static void
test_percent(void **state)
{
    (void)state;
    static const struct row rows[] = {
        OK("/a//b/./c/%7euser", "/a/b/c/~user"),
        OK("/%41%5a%61%7A%30%39%2D%2E%5F%7E", "/AZaz09-._~"),
        OK("/%c3%a9t%c3%A9", "/%C3%A9t%C3%A9"),
        OK("/a%20b", "/a%20b"),
        OK("/%25", "/%25"), /* an encoded "%" stays encoded: never decoded twice */
        OK("/%252e%252e", "/%252e%252e"),
        OK("/%3f%23%3B", "/%3F%23%3B"),
        OK("/%00", "/%00"),
        OK("/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;="),
        ERR("/%zz", CN_PATH_ERR_ESCAPE),
        ERR("/%4", CN_PATH_ERR_ESCAPE),
        ERR("/%", CN_PATH_ERR_ESCAPE),
        ERR("/a%g0", CN_PATH_ERR_ESCAPE),
        ERR("/a%0g/b", CN_PATH_ERR_ESCAPE),
        ERR("/%%41", CN_PATH_ERR_ESCAPE),
        ERR("/ok/%4", CN_PATH_ERR_ESCAPE),
    };
    RUN(rows, &defaults);
}

static void
test_merge(void **state)
{
    (void)state;
    static const struct row merged[] = {
        OK("//", "/"),         OK("///a", "/a"), OK("/a//b", "/a/b"), OK("/a///b//", "/a/b/"),
        OK("/a//..//b", "/b"), OK("//./", "/"),  OK("/a//", "/a/"),   OK("//a/../b", "/b"),
    };
    static const struct row kept[] = {
        OK("//a", "//a"),
        OK("/a//b", "/a//b"),
        OK("/a//", "/a//"),
        OK("//", "//"),
        OK("/a//..", "/a/"), /* RFC 3986 §5.2.4: ".." removes the empty segment */
        OK("/a//b/..", "/a//"),
        OK("//..", "/"),
        OK("//../x", "/x"),
        OK("/.//a", "//a"),
        OK("/x/..//a", "//a"),
        ERR("/../a", CN_PATH_ERR_ABOVE_ROOT),
        ERR("//../..", CN_PATH_ERR_ABOVE_ROOT),
    };
    static const cn_path_opts_t nomerge = {.merge_slashes = false};
    RUN(merged, &defaults);
    RUN(kept, &nomerge);
}

static void
test_escaped_slashes(void **state)
{
    (void)state;
    static const struct row keep[] = {
        OK("/a%2Fb", "/a%2Fb"),         OK("/a%2fb", "/a%2Fb"),
        OK("/a%5cb", "/a%5Cb"),         OK("/a\\b", "/a\\b"),
        OK("/x/%2F../y", "/x/%2F../y"), /* "%2F.." is an ordinary segment, not ".." */
        OK("/x/..%2F/y", "/x/..%2F/y"), OK("/x/a%2F..%2Fb", "/x/a%2F..%2Fb"),
        OK("/x/..\\y", "/x/..\\y"),
    };
    static const struct row reject[] = {
        ERR("/a%2Fb", CN_PATH_ERR_SLASH),     ERR("/a%2fb", CN_PATH_ERR_SLASH),
        ERR("/a%5Cb", CN_PATH_ERR_SLASH),     ERR("/a%5cb", CN_PATH_ERR_SLASH),
        ERR("/a\\b", CN_PATH_ERR_SLASH),      ERR("/%2F", CN_PATH_ERR_SLASH),
        OK("/a/b/%2e/c", "/a/b/c"),           OK("/a%2Eb", "/a.b"),
        ERR("/a/%zz%2F", CN_PATH_ERR_ESCAPE),
    };
    static const struct row decode[] = {
        OK("/a%2Fb", "/a/b"),
        OK("/a%2fb", "/a/b"),
        OK("/a%5Cb", "/a/b"),
        OK("/a\\b", "/a/b"),
        OK("/a%2F%2Fb", "/a/b"), /* decoded before merging */
        OK("/x/..%2Fblocked/q", "/blocked/q"),
        OK("/x\\..\\blocked/q", "/blocked/q"),
        OK("/x%5c%2e%2e%5cblocked", "/blocked"),
        OK("/%2F", "/"),
        OK("/a%2F", "/a/"),
        ERR("/..%2Fx", CN_PATH_ERR_ABOVE_ROOT),
        ERR("/a\\..\\..\\x", CN_PATH_ERR_ABOVE_ROOT),
    };
    static const struct row decode_nomerge[] = {
        OK("/a%2F%2Fb", "/a//b"),
        OK("/a\\b", "/a/b"),
    };
    static const cn_path_opts_t o_keep = {.merge_slashes = true,
                                          .escaped_slashes = CN_PATH_SLASHES_KEEP};
    static const cn_path_opts_t o_reject = {.merge_slashes = true,
                                            .escaped_slashes = CN_PATH_SLASHES_REJECT};
    static const cn_path_opts_t o_decode = {.merge_slashes = true,
                                            .escaped_slashes = CN_PATH_SLASHES_DECODE};
    static const cn_path_opts_t o_decode_nomerge = {.escaped_slashes = CN_PATH_SLASHES_DECODE};
    RUN(keep, &o_keep);
    RUN(keep, &defaults);
    RUN(reject, &o_reject);
    RUN(decode, &o_decode);
    RUN(decode_nomerge, &o_decode_nomerge);
}

static void
test_not_absolute(void **state)
{
    char out[8];
    size_t len = 0;
    (void)state;
    assert_int_equal(cn_path_normalize(cn_iov(NULL, 0), out, &len, NULL), CN_PATH_ERR_NOT_ABSOLUTE);
    assert_int_equal(cn_path_normalize(CAIRN_IOV_LIT("*"), out, &len, NULL),
                     CN_PATH_ERR_NOT_ABSOLUTE);
    assert_int_equal(cn_path_normalize(CAIRN_IOV_LIT("a/b"), out, &len, NULL),
                     CN_PATH_ERR_NOT_ABSOLUTE);
    assert_int_equal(cn_path_normalize(CAIRN_IOV_LIT("\\a"), out, &len, NULL),
                     CN_PATH_ERR_NOT_ABSOLUTE);
    assert_int_equal(len, 0);
}

static void
test_strerror(void **state)
{
    (void)state;
    assert_string_equal(cn_path_strerror(CN_PATH_ERR_ABOVE_ROOT), "path climbs above the root");
    assert_string_equal(cn_path_strerror(CN_PATH_ERR_ESCAPE), "invalid percent-encoding in path");
    assert_string_equal(cn_path_strerror(CN_PATH_ERR_SLASH), "encoded slash or backslash in path");
    assert_string_equal(cn_path_strerror(CN_PATH_ERR_NOT_ABSOLUTE), "path does not start with /");
}

/* A long path of every kind of unit: exercises the bound (output ≤ input) at size. */
static void
test_long(void **state)
{
    enum { N = 4000 };
    char *in = malloc(N * 6 + 2), *out = malloc(N * 6 + 2);
    size_t n = 0, len = 0;
    (void)state;
    for (int i = 0; i < N; i++) {
        memcpy(in + n, "/a%7e/", 6);
        n += 6;
    }
    assert_int_equal(cn_path_normalize(cn_iov(in, n), out, &len, NULL), CN_PATH_OK);
    assert_int_equal(len, (size_t)N * 3 + 1); /* "/a~" times N, then a trailing "/" */
    assert_memory_equal(out, "/a~/a~", 6);
    assert_int_equal(out[len - 1], '/');
    free(in);
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bypasses),        cmocka_unit_test(test_dot_segments),
        cmocka_unit_test(test_percent),         cmocka_unit_test(test_merge),
        cmocka_unit_test(test_escaped_slashes), cmocka_unit_test(test_not_absolute),
        cmocka_unit_test(test_strerror),        cmocka_unit_test(test_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
