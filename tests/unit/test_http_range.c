/* SPDX-License-Identifier: MIT */
/* Unit tests for src/http/range.c: Range parsing, Content-Range and multipart layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/str.h"
#include "http/range.h"

#define MAXR 16

static cn_range_result_t
parse(const char *v, uint64_t len, cn_byte_range_t *r, size_t *n)
{
    *n = 0;
    return cn_range_parse(cn_iov_cstr(v), len, r, MAXR, n);
}

static void
expect_none(const char *v, uint64_t len)
{
    cn_byte_range_t r[MAXR];
    size_t n;
    if (parse(v, len, r, &n) != CN_RANGE_NONE)
        fail_msg("expected NONE for [%s]", v);
    assert_int_equal(n, 0);
}

static void
expect_unsat(const char *v, uint64_t len)
{
    cn_byte_range_t r[MAXR];
    size_t n;
    if (parse(v, len, r, &n) != CN_RANGE_UNSATISFIABLE)
        fail_msg("expected UNSATISFIABLE for [%s]", v);
}

/* Expects the single range [first, last]. */
static void
expect_one(const char *v, uint64_t len, uint64_t first, uint64_t last)
{
    cn_byte_range_t r[MAXR];
    size_t n;
    if (parse(v, len, r, &n) != CN_RANGE_SATISFIABLE)
        fail_msg("expected SATISFIABLE for [%s]", v);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].first, first);
    assert_int_equal(r[0].last, last);
}

static void
test_ignored(void **state)
{
    (void)state;
    expect_none("", 1000);
    expect_none("   ", 1000);
    expect_none("items=0-1", 1000);
    expect_none("bytes", 1000);
    expect_none("bytes 0-1", 1000);
    expect_none("bytes =0-1", 1000);
    expect_none("bytes= ", 1000);
    expect_none("bytes=", 1000);
    expect_none("bytes=,", 1000);
    expect_none("bytes=, ,", 1000);
    expect_none("bytes=1-0", 1000);
    expect_none("bytes=a-b", 1000);
    expect_none("bytes=0-1;", 1000);
    expect_none("bytes=-", 1000);
    expect_none("bytes=--1", 1000);
    expect_none("bytes=0--1", 1000);
    expect_none("bytes=0", 1000);
    expect_none("bytes=0-1 2-3", 1000);
    expect_none("bytes=0-12-3", 1000);
    expect_none("bytes=+1-2", 1000);
    expect_none("bytes=0x10-20", 1000);
    expect_none("bytes=0-1,5-2", 1000);
    expect_none("bytesx=0-1", 1000);
    /* An invalid spec makes the field invalid even next to a valid one. */
    expect_none("bytes=0-1,junk", 1000);
}

static void
test_single(void **state)
{
    (void)state;
    expect_one("bytes=0-499", 1000, 0, 499);
    expect_one("BYTES=0-499", 1000, 0, 499);
    expect_one("Bytes=500-", 1000, 500, 999);
    expect_one("bytes=-500", 1000, 500, 999);
    expect_one("bytes=-2000", 1000, 0, 999);
    expect_one("bytes=500-5000", 1000, 500, 999);
    expect_one("bytes=999-999", 1000, 999, 999);
    expect_one("bytes=0-0", 1, 0, 0);
    expect_one("  bytes=1-2\t", 1000, 1, 2);
    expect_one("bytes=0-99999999999999999999999999", 1000, 0, 999);
    expect_one("bytes=-99999999999999999999999999", 1000, 0, 999);
    expect_one("bytes=00010-0020", 1000, 10, 20);
    /* Empty list elements are ignored (RFC 9110 §5.6.1). */
    expect_one("bytes=,0-1,", 1000, 0, 1);
    expect_one("bytes= , 0-1 ,, ", 1000, 0, 1);
    /* Unsatisfiable specs are dropped when another one is satisfiable. */
    expect_one("bytes=2000-3000,0-1", 1000, 0, 1);
    expect_one("bytes=-0,3-4", 1000, 3, 4);
}

static void
test_unsatisfiable(void **state)
{
    (void)state;
    expect_unsat("bytes=1000-", 1000);
    expect_unsat("bytes=1000-2000", 1000);
    expect_unsat("bytes=-0", 1000);
    expect_unsat("bytes=99999999999999999999999-", 1000);
    expect_unsat("bytes=1000-1000,2000-", 1000);
    expect_unsat("bytes=0-", 0);
    expect_unsat("bytes=0-0", 0);
    expect_unsat("bytes=-0", 0);
    /* A suffix range of an empty representation is "all of it": served as a plain 200. */
    expect_none("bytes=-5", 0);
    expect_none("bytes=0-1,-5", 0);
}

static void
test_lists_and_coalescing(void **state)
{
    cn_byte_range_t r[MAXR];
    size_t n;
    (void)state;

    assert_int_equal(parse("bytes=0-0, -1", 1000, r, &n), CN_RANGE_SATISFIABLE);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(r[0].last, 0);
    assert_int_equal(r[1].first, 999);
    assert_int_equal(r[1].last, 999);

    /* Sorted, overlapping and adjacent ranges merged. */
    assert_int_equal(parse("bytes=100-200,0-10,5-20,21-30,50-60", 1000, r, &n),
                     CN_RANGE_SATISFIABLE);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(r[0].last, 30);
    assert_int_equal(r[1].first, 50);
    assert_int_equal(r[1].last, 60);
    assert_int_equal(r[2].first, 100);
    assert_int_equal(r[2].last, 200);

    /* The classic overlapping-ranges amplification collapses to one range. */
    expect_one("bytes=0-,0-,0-,0-,0-,0-,0-,0-,0-,0-", 1000, 0, 999);
    expect_one("bytes=-1,999-", 1000, 999, 999);
    expect_one("bytes=0-499,500-999", 1000, 0, 999);
    expect_one("bytes=500-999,-600", 1000, 400, 999);
}

static void
test_limit(void **state)
{
    char v[512];
    cn_byte_range_t r[MAXR];
    size_t n, w;
    (void)state;

    w = (size_t)snprintf(v, sizeof(v), "bytes=");
    for (int i = 0; i < MAXR; i++)
        w += (size_t)snprintf(v + w, sizeof(v) - w, "%s%d-%d", i ? "," : "", i * 10, i * 10 + 1);
    assert_int_equal(parse(v, 1000, r, &n), CN_RANGE_SATISFIABLE);
    assert_int_equal(n, MAXR);
    snprintf(v + w, sizeof(v) - w, ",900-901");
    expect_none(v, 1000);
    /* Unsatisfiable specs count against the limit too. */
    w = (size_t)snprintf(v, sizeof(v), "bytes=0-1");
    for (int i = 0; i < MAXR; i++)
        w += (size_t)snprintf(v + w, sizeof(v) - w, ",5000-");
    expect_none(v, 1000);
    /* A cap of 1 still works; max_ranges 0 disables ranges. */
    n = 0;
    assert_int_equal(cn_range_parse(cn_iov_cstr("bytes=1-2"), 10, r, 1, &n), CN_RANGE_SATISFIABLE);
    assert_int_equal(n, 1);
    assert_int_equal(cn_range_parse(cn_iov_cstr("bytes=1-2,4-5"), 10, r, 1, &n), CN_RANGE_NONE);
    assert_int_equal(cn_range_parse(cn_iov_cstr("bytes=1-2"), 10, r, 0, &n), CN_RANGE_NONE);
}

static void
test_format(void **state)
{
    char buf[CN_RANGE_CONTENT_RANGE_MAX];
    (void)state;

    assert_int_equal(cn_range_format(buf, (cn_byte_range_t){0, 499}, 1000), 16);
    assert_string_equal(buf, "bytes 0-499/1000");
    cn_range_format(buf, (cn_byte_range_t){UINT64_MAX - 1, UINT64_MAX - 1}, UINT64_MAX);
    assert_string_equal(buf,
                        "bytes 18446744073709551614-18446744073709551614/18446744073709551615");
    assert_int_equal(cn_range_format_unsatisfied(buf, 1000), 12);
    assert_string_equal(buf, "bytes */1000");
}

static void
test_boundary(void **state)
{
    char a[CN_RANGE_BOUNDARY_MAX], b[CN_RANGE_BOUNDARY_MAX], c[CN_RANGE_BOUNDARY_MAX];
    (void)state;

    assert_int_equal(cn_range_boundary(a, 1), 32);
    cn_range_boundary(b, 1);
    cn_range_boundary(c, 2);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
}

static void
test_multipart(void **state)
{
    cn_arena_t arena;
    cn_multipart_t mp;
    cn_byte_range_t r[2] = {{500, 999}, {7000, 7999}};
    (void)state;

    cn_arena_init(&arena, 0);
    assert_int_equal(cn_multipart_build(&mp, &arena, r, 2, CAIRN_IOV_LIT("application/pdf"), 8000,
                                        CAIRN_IOV_LIT("THIS_STRING_SEPARATES")),
                     CAIRN_OK);
    assert_int_equal(mp.n, 2);
    assert_true(cn_iov_eq(mp.content_type,
                          CAIRN_IOV_LIT("multipart/byteranges; boundary=THIS_STRING_SEPARATES")));
    assert_true(cn_iov_eq(mp.parts[0].head, CAIRN_IOV_LIT("--THIS_STRING_SEPARATES\r\n"
                                                          "Content-Type: application/pdf\r\n"
                                                          "Content-Range: bytes 500-999/8000\r\n"
                                                          "\r\n")));
    assert_true(cn_iov_eq(mp.parts[1].head, CAIRN_IOV_LIT("\r\n--THIS_STRING_SEPARATES\r\n"
                                                          "Content-Type: application/pdf\r\n"
                                                          "Content-Range: bytes 7000-7999/8000\r\n"
                                                          "\r\n")));
    assert_true(cn_iov_eq(mp.tail, CAIRN_IOV_LIT("\r\n--THIS_STRING_SEPARATES--\r\n")));
    assert_int_equal(mp.parts[1].range.first, 7000);
    assert_int_equal(mp.body_length,
                     mp.parts[0].head.len + 500 + mp.parts[1].head.len + 1000 + mp.tail.len);

    /* No content type: no Content-Type line in the parts. */
    assert_int_equal(
        cn_multipart_build(&mp, &arena, r, 1, cn_iov(NULL, 0), 8000, CAIRN_IOV_LIT("b")), CAIRN_OK);
    assert_true(cn_iov_eq(mp.parts[0].head,
                          CAIRN_IOV_LIT("--b\r\nContent-Range: bytes 500-999/8000\r\n\r\n")));

    /* Bad arguments leave @mp alone. */
    mp.n = 42;
    assert_int_equal(
        cn_multipart_build(&mp, &arena, r, 0, cn_iov(NULL, 0), 8000, CAIRN_IOV_LIT("b")),
        CAIRN_EINVAL);
    assert_int_equal(
        cn_multipart_build(&mp, &arena, r, 2, cn_iov(NULL, 0), 5000, CAIRN_IOV_LIT("b")),
        CAIRN_EINVAL);
    assert_int_equal(cn_multipart_build(&mp, &arena, r, 2, cn_iov(NULL, 0), 8000, cn_iov(NULL, 0)),
                     CAIRN_EINVAL);
    assert_int_equal(
        cn_multipart_build(&mp, &arena, r, 2, cn_iov(NULL, 0), 8000, CAIRN_IOV_LIT("a\r\nb")),
        CAIRN_EINVAL);
    assert_int_equal(cn_multipart_build(&mp, &arena, r, 2, CAIRN_IOV_LIT("text/x\r\nX: y"), 8000,
                                        CAIRN_IOV_LIT("b")),
                     CAIRN_EINVAL);
    assert_int_equal(mp.n, 42);
    cn_arena_fini(&arena);

    /* An arena cap too small for the layout reports ENOMEM. */
    cn_arena_init(&arena, 64);
    assert_int_equal(cn_multipart_build(&mp, &arena, r, 2, CAIRN_IOV_LIT("application/pdf"), 8000,
                                        CAIRN_IOV_LIT("THIS_STRING_SEPARATES")),
                     CAIRN_ENOMEM);
    cn_arena_fini(&arena);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ignored),       cmocka_unit_test(test_single),
        cmocka_unit_test(test_unsatisfiable), cmocka_unit_test(test_lists_and_coalescing),
        cmocka_unit_test(test_limit),         cmocka_unit_test(test_format),
        cmocka_unit_test(test_boundary),      cmocka_unit_test(test_multipart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
