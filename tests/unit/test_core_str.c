/* SPDX-License-Identifier: MIT */
/* src/core helpers of the hot path: the integer formatters that replaced snprintf, the inline
 * case-insensitive comparison, and the read buffer's recycling of its standard size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/pool.h"
#include "core/str.h"

static const uint64_t values[] = {
    0,         1,          9,           10,          15,
    16,        99,         100,         255,         1024,
    4096,      0xdeadbeef, 4294967295u, 4294967296u, 1000000000000000000u,
    UINT64_MAX};

/* @fmt writes exactly what printf's @spec would, and nothing after it (no terminator). */
static void
check_formatter(size_t (*fmt)(char *, uint64_t), const char *spec)
{
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char got[24], want[24];
        memset(got, 'x', sizeof(got));
        size_t n = fmt(got, values[i]);
        int wn = snprintf(want, sizeof(want), spec, (unsigned long long)values[i]);
        assert_int_equal(n, (size_t)wn);
        assert_memory_equal(got, want, n);
        assert_int_equal(got[n], 'x');
    }
}

static void
test_fmt_u64(void **state)
{
    (void)state;
    check_formatter(cn_fmt_u64, "%llu");
}

static void
test_fmt_hex(void **state)
{
    (void)state;
    check_formatter(cn_fmt_hex, "%llx");
}

static void
test_iov_ieq(void **state)
{
    (void)state;
    assert_true(cn_iov_ieq(CAIRN_IOV_LIT("Content-Length"), CAIRN_IOV_LIT("content-length")));
    assert_true(cn_iov_ieq_cstr(CAIRN_IOV_LIT("DATE"), "date"));
    assert_true(cn_iov_ieq(CAIRN_IOV_LIT(""), CAIRN_IOV_LIT("")));
    assert_false(cn_iov_ieq(CAIRN_IOV_LIT("date"), CAIRN_IOV_LIT("dates")));
    assert_false(cn_iov_ieq(CAIRN_IOV_LIT("via"), CAIRN_IOV_LIT("vib")));
    /* Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by 32 but are not letters. */
    assert_false(cn_iov_ieq(CAIRN_IOV_LIT("@"), CAIRN_IOV_LIT("`")));
    assert_false(cn_mem_ieq("[", "{", 1));
}

static void
test_buf_recycles_standard_size(void **state)
{
    (void)state;
    cn_buf_t b = {0};
    assert_int_equal(cn_buf_reserve(&b, 16384, 0), CAIRN_OK);
    assert_int_equal(b.cap, 16384);
    char *first = b.data;
    memset(first, 'a', 16384); /* the whole block is ours */
    cn_buf_commit(&b, 16384);
    cn_buf_fini(&b);
    assert_null(b.data);
    /* The next standard buffer on this thread is the same block. */
    assert_int_equal(cn_buf_reserve(&b, 100, 0), CAIRN_OK);
    assert_int_equal(b.cap, 1024); /* small reservations are not rounded up to the pool size */
    cn_buf_fini(&b);
    assert_int_equal(cn_buf_reserve(&b, 16384, 0), CAIRN_OK);
    assert_ptr_equal(b.data, first);
    /* Growing past it copies the bytes and gives the block back. */
    cn_buf_append(&b, "xyz", 3);
    assert_int_equal(cn_buf_reserve(&b, 20000, 0), CAIRN_OK);
    assert_true(b.cap >= 20003);
    assert_memory_equal(cn_buf_start(&b), "xyz", 3);
    cn_buf_fini(&b);
    cn_pool_thread_release();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_u64),
        cmocka_unit_test(test_fmt_hex),
        cmocka_unit_test(test_iov_ieq),
        cmocka_unit_test(test_buf_recycles_standard_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
