/* SPDX-License-Identifier: MIT */
/* Unit tests for src/http/conditional.c and the ETag helpers of src/http/etag.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/str.h"
#include "http/conditional.h"
#include "http/etag.h"
#include "http/headers.h"

/* Sun, 06 Nov 1994 08:49:37 GMT */
#define LM ((time_t)784111777)
#define LM_DATE "Sun, 06 Nov 1994 08:49:37 GMT"
#define BEFORE_DATE "Sun, 06 Nov 1994 08:49:36 GMT"
#define AFTER_DATE "Sun, 06 Nov 1994 08:49:38 GMT"

struct fixture {
    cn_arena_t arena;
    cn_headers_t h;
    cn_validators_t v;
};

static int
setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof(*f));
    cn_arena_init(&f->arena, 0);
    cn_headers_init(&f->h, &f->arena);
    f->v.etag = CAIRN_IOV_LIT("\"v1\"");
    f->v.last_modified = LM;
    f->v.exists = true;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    cn_arena_fini(&f->arena);
    test_free(f);
    return 0;
}

static void
add(struct fixture *f, const char *name, const char *value)
{
    cn_headers_add(&f->h, cn_iov_cstr(name), cn_iov_cstr(value));
}

static void
reset(struct fixture *f)
{
    f->h.n = 0;
}

static cn_cond_result_t
eval(struct fixture *f, const char *method)
{
    return cn_cond_evaluate(cn_iov_cstr(method), &f->h, &f->v);
}

static void
test_etag_compare(void **state)
{
    (void)state;
    assert_true(cn_etag_strong_eq(CAIRN_IOV_LIT("\"1\""), CAIRN_IOV_LIT("\"1\"")));
    assert_false(cn_etag_strong_eq(CAIRN_IOV_LIT("W/\"1\""), CAIRN_IOV_LIT("W/\"1\"")));
    assert_false(cn_etag_strong_eq(CAIRN_IOV_LIT("W/\"1\""), CAIRN_IOV_LIT("\"1\"")));
    assert_false(cn_etag_strong_eq(CAIRN_IOV_LIT("\"1\""), CAIRN_IOV_LIT("\"2\"")));
    assert_true(cn_etag_weak_eq(CAIRN_IOV_LIT("W/\"1\""), CAIRN_IOV_LIT("W/\"1\"")));
    assert_true(cn_etag_weak_eq(CAIRN_IOV_LIT("W/\"1\""), CAIRN_IOV_LIT("\"1\"")));
    assert_false(cn_etag_weak_eq(CAIRN_IOV_LIT("W/\"1\""), CAIRN_IOV_LIT("W/\"2\"")));
    /* Malformed tags never match, not even themselves. */
    assert_false(cn_etag_weak_eq(CAIRN_IOV_LIT("1"), CAIRN_IOV_LIT("1")));
    assert_false(cn_etag_weak_eq(CAIRN_IOV_LIT("w/\"1\""), CAIRN_IOV_LIT("w/\"1\"")));
    assert_false(cn_etag_weak_eq(CAIRN_IOV_LIT("\"1"), CAIRN_IOV_LIT("\"1")));
    assert_false(cn_etag_weak_eq(CAIRN_IOV_LIT("\"a b\""), CAIRN_IOV_LIT("\"a b\"")));
    assert_false(cn_etag_strong_eq(CAIRN_IOV_LIT("\"1\"x"), CAIRN_IOV_LIT("\"1\"x")));
    assert_true(cn_etag_strong_eq(CAIRN_IOV_LIT(" \"\" "), CAIRN_IOV_LIT("\"\"")));
}

static void
test_etag_make(void **state)
{
    char buf[CN_ETAG_MAX];
    (void)state;

    assert_int_equal(cn_etag_make(buf, 11, 1700000000LL * 1000000000LL, 0), 12);
    assert_string_equal(buf, "\"6553f100-b\"");
    cn_etag_make(buf, 11, 1700000000LL * 1000000000LL + 5, 0);
    assert_string_equal(buf, "\"6553f100-b-5\"");
    cn_etag_make(buf, 11, 1700000000LL * 1000000000LL, 0x42);
    assert_string_equal(buf, "\"6553f100-b-0-42\"");
    cn_etag_make(buf, UINT64_MAX, INT64_MAX, UINT64_MAX);
    assert_true(strlen(buf) < CN_ETAG_MAX);
    cn_etag_make(buf, 0, -5, 0);
    assert_string_equal(buf, "\"0-0\"");
}

static void
test_no_conditions(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    assert_int_equal(eval(f, "PUT"), CN_COND_PROCEED);
}

static void
test_if_none_match(void **state)
{
    struct fixture *f = *state;

    add(f, "If-None-Match", "\"v1\"");
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    assert_int_equal(eval(f, "HEAD"), CN_COND_NOT_MODIFIED);
    assert_int_equal(eval(f, "POST"), CN_COND_PRECONDITION_FAILED);
    assert_int_equal(eval(f, "get"), CN_COND_PRECONDITION_FAILED);
    reset(f);
    /* Weak comparison: W/ on either side still matches. */
    add(f, "If-None-Match", "W/\"v1\"");
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    f->v.etag = CAIRN_IOV_LIT("W/\"v1\"");
    reset(f);
    add(f, "If-None-Match", "\"v1\"");
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    f->v.etag = CAIRN_IOV_LIT("\"v1\"");
    reset(f);
    add(f, "If-None-Match", "\"a\", \"b\" ,\t\"v1\"");
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    reset(f);
    add(f, "If-None-Match", "\"a\", \"b\"");
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    /* Several field lines form one list. */
    add(f, "if-none-match", "\"v1\"");
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    reset(f);
    add(f, "If-None-Match", "*");
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    assert_int_equal(eval(f, "PUT"), CN_COND_PRECONDITION_FAILED);
    f->v.exists = false;
    f->v.etag = cn_iov(NULL, 0);
    assert_int_equal(eval(f, "PUT"), CN_COND_PROCEED);
    f->v.exists = true;
    reset(f);
    /* No current ETag: nothing matches. */
    add(f, "If-None-Match", "\"v1\"");
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    f->v.etag = CAIRN_IOV_LIT("v1");
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    f->v.etag = CAIRN_IOV_LIT("\"v1\"");
    reset(f);
    /* A malformed element ends the line: a later match does not count (safe direction). */
    add(f, "If-None-Match", "\"a\" junk, \"v1\"");
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-None-Match", "\"a\" \"v1\"");
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-None-Match", "v1");
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
}

static void
test_if_modified_since(void **state)
{
    struct fixture *f = *state;

    add(f, "If-Modified-Since", LM_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    assert_int_equal(eval(f, "HEAD"), CN_COND_NOT_MODIFIED);
    /* Only GET and HEAD. */
    assert_int_equal(eval(f, "POST"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Modified-Since", AFTER_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    reset(f);
    add(f, "If-Modified-Since", BEFORE_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    /* The obsolete date formats are accepted. */
    add(f, "If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT");
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    reset(f);
    add(f, "If-Modified-Since", "Sun Nov  6 08:49:37 1994");
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    reset(f);
    /* Invalid dates, lists of dates and repeated fields are ignored. */
    add(f, "If-Modified-Since", "yesterday");
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Modified-Since", LM_DATE ", " LM_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Modified-Since", LM_DATE);
    add(f, "If-Modified-Since", LM_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    /* No Last-Modified: ignored. */
    add(f, "If-Modified-Since", LM_DATE);
    f->v.last_modified = 0;
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    f->v.last_modified = LM;
    /* If-None-Match takes precedence, even when it does not match. */
    add(f, "If-None-Match", "\"other\"");
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-None-Match", "\"v1\"");
    add(f, "If-Modified-Since", BEFORE_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
}

/* RFC 9110 §13.1.3: a cache's stored response without Last-Modified: If-Modified-Since
 * compares with its Date (v->date), which nothing else uses. */
static void
test_if_modified_since_date(void **state)
{
    struct fixture *f = *state;

    f->v.last_modified = 0;
    f->v.date = LM;
    add(f, "If-Modified-Since", LM_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    assert_int_equal(eval(f, "HEAD"), CN_COND_NOT_MODIFIED);
    assert_int_equal(eval(f, "POST"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Modified-Since", AFTER_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    reset(f);
    add(f, "If-Modified-Since", BEFORE_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    /* Last-Modified, when known, is what counts. */
    f->v.last_modified = LM - 10;
    f->v.date = LM + 10;
    add(f, "If-Modified-Since", LM_DATE);
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    f->v.last_modified = LM + 10;
    f->v.date = LM - 10;
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    /* No representation, or neither time known: ignored. */
    f->v.last_modified = 0;
    f->v.exists = false;
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    f->v.exists = true;
    f->v.date = 0;
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    /* A Date is not a validator: If-Unmodified-Since and If-Range do not use it. */
    f->v.date = LM;
    add(f, "If-Unmodified-Since", BEFORE_DATE);
    assert_int_equal(eval(f, "PUT"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Range", LM_DATE);
    assert_false(cn_cond_if_range(&f->h, &f->v, LM + 100));
}

static void
test_if_match(void **state)
{
    struct fixture *f = *state;

    add(f, "If-Match", "\"v1\"");
    assert_int_equal(eval(f, "PUT"), CN_COND_PROCEED);
    assert_int_equal(eval(f, "GET"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Match", "\"x\", \"v1\"");
    assert_int_equal(eval(f, "DELETE"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Match", "\"x\"");
    assert_int_equal(eval(f, "PUT"), CN_COND_PRECONDITION_FAILED);
    assert_int_equal(eval(f, "GET"), CN_COND_PRECONDITION_FAILED);
    reset(f);
    /* Strong comparison: weak tags never match. */
    add(f, "If-Match", "W/\"v1\"");
    assert_int_equal(eval(f, "PUT"), CN_COND_PRECONDITION_FAILED);
    reset(f);
    f->v.etag = CAIRN_IOV_LIT("W/\"v1\"");
    add(f, "If-Match", "\"v1\"");
    assert_int_equal(eval(f, "PUT"), CN_COND_PRECONDITION_FAILED);
    f->v.etag = CAIRN_IOV_LIT("\"v1\"");
    reset(f);
    add(f, "If-Match", "*");
    assert_int_equal(eval(f, "PUT"), CN_COND_PROCEED);
    f->v.exists = false;
    assert_int_equal(eval(f, "PUT"), CN_COND_PRECONDITION_FAILED);
    f->v.exists = true;
    reset(f);
    /* If-Match wins over If-None-Match: it is evaluated first. */
    add(f, "If-None-Match", "\"v1\"");
    add(f, "If-Match", "\"nope\"");
    assert_int_equal(eval(f, "GET"), CN_COND_PRECONDITION_FAILED);
    reset(f);
    add(f, "If-Match", "\"v1\"");
    add(f, "If-None-Match", "\"v1\"");
    assert_int_equal(eval(f, "GET"), CN_COND_NOT_MODIFIED);
    assert_int_equal(eval(f, "PUT"), CN_COND_PRECONDITION_FAILED);
}

static void
test_if_unmodified_since(void **state)
{
    struct fixture *f = *state;

    add(f, "If-Unmodified-Since", LM_DATE);
    assert_int_equal(eval(f, "PUT"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Unmodified-Since", BEFORE_DATE);
    assert_int_equal(eval(f, "PUT"), CN_COND_PRECONDITION_FAILED);
    assert_int_equal(eval(f, "GET"), CN_COND_PRECONDITION_FAILED);
    /* Ignored next to If-Match. */
    add(f, "If-Match", "\"v1\"");
    assert_int_equal(eval(f, "PUT"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Unmodified-Since", "not a date");
    assert_int_equal(eval(f, "PUT"), CN_COND_PROCEED);
    reset(f);
    add(f, "If-Unmodified-Since", BEFORE_DATE);
    f->v.last_modified = 0;
    assert_int_equal(eval(f, "PUT"), CN_COND_PROCEED);
}

static void
test_if_range(void **state)
{
    struct fixture *f = *state;
    time_t later = LM + 10;

    assert_true(cn_cond_if_range(&f->h, &f->v, later));
    add(f, "If-Range", "\"v1\"");
    assert_true(cn_cond_if_range(&f->h, &f->v, later));
    reset(f);
    add(f, "If-Range", "\"v0\"");
    assert_false(cn_cond_if_range(&f->h, &f->v, later));
    reset(f);
    add(f, "If-Range", "W/\"v1\"");
    assert_false(cn_cond_if_range(&f->h, &f->v, later));
    reset(f);
    add(f, "If-Range", "\"v1\", \"v2\"");
    assert_false(cn_cond_if_range(&f->h, &f->v, later));
    reset(f);
    f->v.etag = CAIRN_IOV_LIT("W/\"v1\"");
    add(f, "If-Range", "\"v1\"");
    assert_false(cn_cond_if_range(&f->h, &f->v, later));
    f->v.etag = CAIRN_IOV_LIT("\"v1\"");
    reset(f);
    add(f, "If-Range", LM_DATE);
    assert_true(cn_cond_if_range(&f->h, &f->v, later));
    assert_true(cn_cond_if_range(&f->h, &f->v, LM + 1));
    /* Modified within the current second: the date is weak. */
    assert_false(cn_cond_if_range(&f->h, &f->v, LM));
    f->v.last_modified = 0;
    assert_false(cn_cond_if_range(&f->h, &f->v, later));
    f->v.last_modified = LM;
    reset(f);
    /* Exact match only: a later date does not do. */
    add(f, "If-Range", AFTER_DATE);
    assert_false(cn_cond_if_range(&f->h, &f->v, later));
    reset(f);
    add(f, "If-Range", "garbage");
    assert_false(cn_cond_if_range(&f->h, &f->v, later));
    reset(f);
    add(f, "If-Range", "\"v1\"");
    add(f, "If-Range", "\"v1\"");
    assert_false(cn_cond_if_range(&f->h, &f->v, later));
    reset(f);
    add(f, "If-Range", "\"v1\"");
    f->v.exists = false;
    assert_false(cn_cond_if_range(&f->h, &f->v, later));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etag_compare),
        cmocka_unit_test(test_etag_make),
        cmocka_unit_test_setup_teardown(test_no_conditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_none_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_modified_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_modified_since_date, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_unmodified_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_range, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
