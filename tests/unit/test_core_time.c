/* SPDX-License-Identifier: MIT */
/* Unit tests for src/core/time.c: the HTTP-date parser (RFC 9110 §5.6.7) accepts exactly the
 * three formats of the grammar, lenient only about the letter case of names, and the formatter
 * round-trips through it. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/time.h"

/* Sun, 06 Nov 1994 08:49:37 GMT, the example of RFC 9110 §5.6.7. */
#define T ((time_t)784111777)

struct valid_case {
    const char *in;
    time_t want;
};

static const struct valid_case valid_cases[] = {
    {"Sun, 06 Nov 1994 08:49:37 GMT", T},
    {"Sunday, 06-Nov-94 08:49:37 GMT", T},
    {"Sun Nov  6 08:49:37 1994", T},
    /* asctime's date3 is month SP ( 2DIGIT / ( SP DIGIT ) ). */
    {"Sun Nov 06 08:49:37 1994", T},
    /* Letter case of day names, month names and GMT is free. */
    {"sun, 06 nov 1994 08:49:37 gmt", T},
    {"SUN, 06 NOV 1994 08:49:37 GMT", T},
    {"Sat, 06 AUG 1994 08:49:37 gMT", 776162977},
    {"SUNDAY, 06-nOV-94 08:49:37 Gmt", T},
    {"sun NOV  6 08:49:37 1994", T},
    /* The day name is not checked against the date. */
    {"Mon, 06 Nov 1994 08:49:37 GMT", T},
    {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
    {"Fri, 31 Dec 9999 23:59:59 GMT", 253402300799},
    {"Mon, 01 Jan 0001 00:00:00 GMT", -62135596800},
    {"Thu, 29 Feb 2024 12:00:00 GMT", 1709208000},
    {"Tue, 29 Feb 2000 00:00:00 GMT", 951782400},
    /* Second 60 is a leap second: the next minute's first second. */
    {"Wed, 31 Dec 2008 23:59:60 GMT", 1230768000},
    /* RFC 850 two-digit years: 00-69 are 20xx, 70-99 are 19xx. */
    {"Tuesday, 01-Jan-69 00:00:00 GMT", 3124224000},
    {"Thursday, 01-Jan-70 00:00:00 GMT", 0},
    {"Wednesday, 02-Dec-26 00:00:00 GMT", 1796169600},
};

static const char *const invalid_cases[] = {
    "",
    "0",
    "yesterday",
    /* Spacing: exactly one SP where the grammar has one, none elsewhere. */
    "Sun, 06 Nov 1994  08:49:37 GMT",
    "Sun,  06 Nov 1994 08:49:37 GMT",
    "Sun, 06  Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37  GMT",
    "Sun,06 Nov 1994 08:49:37 GMT",
    " Sun, 06 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37 GMT ",
    "Sun,\t06 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37\tGMT",
    /* Field widths: two-digit day, hour, minute, second; four-digit year. */
    "Sun, 6 Nov 1994 08:49:37 GMT",
    "Sun,  6 Nov 1994 08:49:37 GMT",
    "Sun, +6 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 8:49:37 GMT",
    "Sun, 06 Nov 1994 08:9:37 GMT",
    "Sun, 06 Nov 1994 08:49:3 GMT",
    "Sun, 06 Nov 94 08:49:37 GMT",
    "Sun, 06 Nov 01994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49 GMT",
    "Sun, 06 Nov 1994 08-49-37 GMT",
    /* The zone: exactly "GMT". */
    "Sun, 06 Nov 1994 08:49:37",
    "Sun, 06 Nov 1994 08:49:37 UTC",
    "Sun, 06 Nov 1994 08:49:37 +0000",
    "Sun, 06 Nov 1994 08:49:37 GM",
    /* Trailing bytes. */
    "Sun, 06 Nov 1994 08:49:37 GMTx",
    "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994 GMT",
    "Sunday, 06-Nov-94 08:49:37 GMT;",
    /* Names. */
    "Sux, 06 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nox 1994 08:49:37 GMT",
    "Sunday, 06 Nov 1994 08:49:37 GMT",
    "Sun, 06-Nov-94 08:49:37 GMT",
    "Sundae, 06-Nov-94 08:49:37 GMT",
    "Sunday, 06-November-94 08:49:37 GMT",
    "Sunday Nov  6 08:49:37 1994",
    /* Out-of-range fields. */
    "Sun, 00 Nov 1994 08:49:37 GMT",
    "Sun, 32 Nov 1994 08:49:37 GMT",
    "Wed, 31 Nov 1994 08:49:37 GMT",
    "Wed, 29 Feb 2023 08:49:37 GMT",
    "Thu, 29 Feb 1900 08:49:37 GMT",
    "Sun, 06 Nov 1994 24:00:00 GMT",
    "Sun, 06 Nov 1994 08:60:37 GMT",
    "Sun, 06 Nov 1994 08:49:61 GMT",
    /* RFC 850 shape. */
    "Sunday, 06-Nov-1994 08:49:37 GMT",
    "Sunday,06-Nov-94 08:49:37 GMT",
    "Sunday,  06-Nov-94 08:49:37 GMT",
    "Sunday, 6-Nov-94 08:49:37 GMT",
    "Sunday, 06 Nov 94 08:49:37 GMT",
    "Sunday, 06-Nov-94 08:49:37",
    "Sunday, 32-Nov-94 08:49:37 GMT",
    /* asctime shape. */
    "Sun Nov 6 08:49:37 1994",
    "Sun Nov   6 08:49:37 1994",
    "Sun Nov  6 08:49:37 94",
    "Sun Nov  6 8:49:37 1994",
    "Sun, Nov  6 08:49:37 1994",
    "Sun Nov  0 08:49:37 1994",
    "Sun Nov 31 08:49:37 1994",
};

static void
test_valid_dates(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        const struct valid_case *c = &valid_cases[i];
        time_t got = 42;
        if (!cn_time_parse_http_date(c->in, strlen(c->in), &got))
            fail_msg("\"%s\": rejected, want %lld", c->in, (long long)c->want);
        if (got != c->want)
            fail_msg("\"%s\": got %lld, want %lld", c->in, (long long)got, (long long)c->want);
    }
}

static void
test_invalid_dates(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        const char *in = invalid_cases[i];
        time_t got = 42;
        if (cn_time_parse_http_date(in, strlen(in), &got))
            fail_msg("\"%s\": accepted as %lld, want rejected", in, (long long)got);
        assert_int_equal(got, 42);
    }
}

static void
test_length_is_exact(void **state)
{
    (void)state;
    /* The length bounds the parse: a valid prefix is not enough, and bytes past @len (here an
     * embedded NUL and more) are not read as part of the date. */
    const char s[] = "Sun, 06 Nov 1994 08:49:37 GMT\0 trailing";
    time_t got = 0;
    assert_false(cn_time_parse_http_date(s, 30, &got));
    assert_false(cn_time_parse_http_date(s, 28, &got));
    assert_true(cn_time_parse_http_date(s, 29, &got));
    assert_int_equal(got, T);
    assert_false(cn_time_parse_http_date(NULL, 0, &got));
}

static void
test_format_round_trip(void **state)
{
    (void)state;
    static const time_t times[] = {0,          1,          T,          951782400,
                                   1709208000, 2147483647, 4102444800, 253402300799};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        char buf[30];
        time_t back = -1;
        cn_time_http_date(times[i], buf);
        assert_int_equal(strlen(buf), 29);
        if (!cn_time_parse_http_date(buf, 29, &back) || back != times[i])
            fail_msg("%lld formats as \"%s\", which parses to %lld", (long long)times[i], buf,
                     (long long)back);
    }
    char buf[30];
    cn_time_http_date(T, buf);
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_dates),
        cmocka_unit_test(test_invalid_dates),
        cmocka_unit_test(test_length_is_exact),
        cmocka_unit_test(test_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
