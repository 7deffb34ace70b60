/* SPDX-License-Identifier: MIT */
/* Unit tests for src/http/cache_control.c: Cache-Control (RFC 9111 §5.2), Pragma (§5.4) and
 * targeted fields parsed as Structured Field Dictionaries (RFC 9213, RFC 8941). Each case
 * renders the parsed struct as text ("name=value", "!" after the name when .invalid) and
 * compares it with the expected rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/str.h"
#include "http/cache_control.h"
#include "http/headers.h"

#define MAX_LINES 4

static const struct {
    uint32_t bit;
    const char *name;
} names[] = {
    {CN_CC_NO_CACHE, "no-cache"},
    {CN_CC_NO_CACHE_FIELDS, "no-cache-fields"},
    {CN_CC_NO_STORE, "no-store"},
    {CN_CC_MAX_AGE, "max-age"},
    {CN_CC_S_MAXAGE, "s-maxage"},
    {CN_CC_MAX_STALE, "max-stale"},
    {CN_CC_MIN_FRESH, "min-fresh"},
    {CN_CC_ONLY_IF_CACHED, "only-if-cached"},
    {CN_CC_NO_TRANSFORM, "no-transform"},
    {CN_CC_PRIVATE, "private"},
    {CN_CC_PRIVATE_FIELDS, "private-fields"},
    {CN_CC_PUBLIC, "public"},
    {CN_CC_MUST_REVALIDATE, "must-revalidate"},
    {CN_CC_PROXY_REVALIDATE, "proxy-revalidate"},
    {CN_CC_MUST_UNDERSTAND, "must-understand"},
    {CN_CC_IMMUTABLE, "immutable"},
    {CN_CC_SWR, "swr"},
    {CN_CC_SIE, "sie"},
    {CN_CC_PRAGMA_NO_CACHE, "pragma"},
};

static void
put_delta(char *out, size_t n, int64_t v)
{
    size_t l = strlen(out);
    if (v == CN_CC_UNLIMITED)
        snprintf(out + l, n - l, "=inf");
    else if (v < 0)
        snprintf(out + l, n - l, "=?");
    else
        snprintf(out + l, n - l, "=%lld", (long long)v);
}

static void
put_fields(char *out, size_t n, const cn_cc_fields_t *f)
{
    size_t l = strlen(out);
    l += (size_t)snprintf(out + l, n - l, "=[");
    for (size_t i = 0; i < f->n; i++)
        l += (size_t)snprintf(out + l, n - l, "%s%.*s", i ? "," : "", (int)f->names[i].len,
                              f->names[i].base);
    snprintf(out + l, n - l, "]");
}

/* "max-age=60 no-cache-fields=[a,b] s-maxage!=?" (+ " targeted"). */
static const char *
render(const cn_cc_t *cc)
{
    static char out[1024];
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        uint32_t bit = names[i].bit;
        if (!(cc->flags & bit))
            continue;
        size_t l = strlen(out);
        snprintf(out + l, sizeof(out) - l, "%s%s%s", l ? " " : "", names[i].name,
                 (cc->invalid & bit) ? "!" : "");
        if (bit == CN_CC_MAX_AGE)
            put_delta(out, sizeof(out), cc->max_age);
        else if (bit == CN_CC_S_MAXAGE)
            put_delta(out, sizeof(out), cc->s_maxage);
        else if (bit == CN_CC_MAX_STALE)
            put_delta(out, sizeof(out), cc->max_stale);
        else if (bit == CN_CC_MIN_FRESH)
            put_delta(out, sizeof(out), cc->min_fresh);
        else if (bit == CN_CC_SWR)
            put_delta(out, sizeof(out), cc->stale_while_revalidate);
        else if (bit == CN_CC_SIE)
            put_delta(out, sizeof(out), cc->stale_if_error);
        else if (bit == CN_CC_NO_CACHE_FIELDS)
            put_fields(out, sizeof(out), &cc->no_cache_fields);
        else if (bit == CN_CC_PRIVATE_FIELDS)
            put_fields(out, sizeof(out), &cc->private_fields);
    }
    if (cc->targeted) {
        size_t l = strlen(out);
        snprintf(out + l, sizeof(out) - l, "%stargeted", l ? " " : "");
    }
    return out;
}

struct fixture {
    cn_arena_t arena;
    cn_headers_t h;
};

static int
setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof(*f));
    cn_arena_init(&f->arena, 0);
    cn_headers_init(&f->h, &f->arena);
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
set_lines(struct fixture *f, const char *name, const char *const *lines)
{
    f->h.n = 0;
    for (size_t i = 0; i < MAX_LINES && lines[i]; i++)
        cn_headers_add(&f->h, cn_iov_cstr(name), cn_iov_cstr(lines[i]));
}

struct cc_case {
    const char *ref; /* RFC section the case exercises */
    const char *lines[MAX_LINES];
    const char *expect;
};

/* Cache-Control syntax (RFC 9111 §5.2), all lines of one field. */
static const struct cc_case cc_cases[] = {
    {"§5.2.2.1 max-age", {"max-age=60"}, "max-age=60"},
    {"§5.2 names are case-insensitive", {"MAX-AGE=60, No-Store"}, "no-store max-age=60"},
    {"§5.2 quoted-string argument accepted", {"max-age=\"60\""}, "max-age=60"},
    {"§5.2.2.10 s-maxage", {"max-age=60, s-maxage=120"}, "max-age=60 s-maxage=120"},
    {"§5.2.2.10 s-maxage=0", {"s-maxage=0"}, "s-maxage=0"},
    {"§1.2.2 leading zeros", {"max-age=007"}, "max-age=7"},
    {"§5.2.2.4 bare no-cache", {"no-cache"}, "no-cache"},
    {"§5.2.2.4 no-cache field list",
     {"no-cache=\"Set-Cookie, X-Foo\""},
     "no-cache-fields=[Set-Cookie,X-Foo]"},
    {"§5.2.2.4 no-cache token form", {"no-cache=Set-Cookie"}, "no-cache-fields=[Set-Cookie]"},
    {"§5.2.2.4 bare and qualified", {"no-cache, no-cache=\"x\""}, "no-cache no-cache-fields=[x]"},
    {"§5.2.2.4 duplicate field names merged", {"no-cache=\"a, A, a\""}, "no-cache-fields=[a]"},
    {"§5.2.2.4 empty list = bare", {"no-cache=\"\""}, "no-cache!"},
    {"§5.2.2.4 unterminated = bare", {"no-cache=\"Set-Cookie"}, "no-cache!"},
    {"§5.2.2.4 escaped list = bare", {"no-cache=\"a\\\"b\""}, "no-cache!"},
    {"§5.2.2.7 bare private", {"private"}, "private"},
    {"§5.2.2.7 private field list", {"private=\"Set-Cookie\""}, "private-fields=[Set-Cookie]"},
    {"§5.2 commas in quotes do not split",
     {"private=\"a, b\", max-age=10"},
     "max-age=10 private-fields=[a,b]"},
    {"§5.2.2.7 non-token field name = bare", {"private=\"a b\""}, "private!"},
    {"§5.2.2.7 too many names = bare",
     {"private=\"a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12,a13,a14,a15,a16,a17\""},
     "private!"},
    {"§1.2.2 non-numeric", {"max-age=abc"}, "max-age!=?"},
    {"§1.2.2 signed", {"max-age=-1"}, "max-age!=?"},
    {"§1.2.2 fraction", {"max-age=1.5"}, "max-age!=?"},
    {"§1.2.2 empty argument", {"max-age="}, "max-age!=?"},
    {"§1.2.2 missing argument", {"max-age"}, "max-age!=?"},
    {"§1.2.2 garbage after value", {"max-age=60 junk"}, "max-age!=?"},
    {"§1.2.2 parameter-like suffix", {"max-age=60;x"}, "max-age!=?"},
    {"§1.2.2 overflow clamps to 2^31", {"max-age=99999999999999999999999"}, "max-age=2147483648"},
    {"§1.2.2 2^31 exactly", {"max-age=2147483648"}, "max-age=2147483648"},
    {"§1.2.2 2^31-1", {"max-age=2147483647"}, "max-age=2147483647"},
    {"§4.2.1 conflicting duplicates: smallest, flagged", {"max-age=10, max-age=20"}, "max-age!=10"},
    {"§4.2.1 identical duplicates are fine", {"max-age=10, max-age=10"}, "max-age=10"},
    {"§4.2.1 invalid then valid: valid kept, flagged", {"max-age=x, max-age=5"}, "max-age!=5"},
    {"§5.2 several field lines", {"max-age=10", "no-store"}, "no-store max-age=10"},
    {"§5.2 duplicates across lines", {"s-maxage=30", "s-maxage=20"}, "s-maxage!=20"},
    {"§5.2.1.2 bare max-stale", {"max-stale"}, "max-stale=inf"},
    {"§5.2.1.2 max-stale=N", {"max-stale=30"}, "max-stale=30"},
    {"§5.2.1.2 bare and valued: most restrictive", {"max-stale, max-stale=30"}, "max-stale!=30"},
    {"§5.2.1.3 min-fresh: largest is most restrictive",
     {"min-fresh=5, min-fresh=10"},
     "min-fresh!=10"},
    {"§5.2.1.7 only-if-cached", {"only-if-cached"}, "only-if-cached"},
    {"§5.2.1.6 no-transform", {"no-transform"}, "no-transform"},
    {"§5.2.2 flag directives",
     {"public, must-revalidate, proxy-revalidate, must-understand, immutable"},
     "public must-revalidate proxy-revalidate must-understand immutable"},
    {"RFC 5861 windows", {"stale-while-revalidate=30, stale-if-error=600"}, "swr=30 sie=600"},
    {"RFC 5861 invalid window", {"stale-if-error=soon"}, "sie!=?"},
    {"RFC 9110 §5.6.1 empty list elements", {",, ,max-age=5,,"}, "max-age=5"},
    {"§5.2.3 unknown directives ignored", {"foo=bar, max-age=5, baz"}, "max-age=5"},
    {"§5.2.3 quoted comma in an extension", {"foo=\"a,max-age=1\", max-age=5"}, "max-age=5"},
    {"§5.2.2.5 argument on no-store", {"no-store=\"x\""}, "no-store!"},
    {"lenient OWS around =", {"max-age = 60"}, "max-age=60"},
    {"element not starting with a token", {"\"quoted\", =5, max-age=1"}, "max-age=1"},
    {"empty value", {""}, ""},
};

static void
test_cache_control_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(cc_cases) / sizeof(cc_cases[0]); i++) {
        cn_cc_t cc;
        set_lines(f, "Cache-Control", cc_cases[i].lines);
        cn_cc_parse(&cc, &f->h, CAIRN_IOV_LIT("cache-control"));
        if (strcmp(render(&cc), cc_cases[i].expect) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", cc_cases[i].ref, render(&cc),
                     cc_cases[i].expect);
        assert_false(cc.targeted);
    }
}

struct req_case {
    const char *ref;
    const char *cache_control[MAX_LINES]; /* NULL first = no Cache-Control field */
    const char *pragma;
    const char *expect;
};

static const struct req_case req_cases[] = {
    {"§5.4 Pragma alone", {NULL}, "no-cache", "no-cache pragma"},
    {"§5.4 Pragma case-insensitive in a list", {NULL}, "x, NO-CACHE", "no-cache pragma"},
    {"§5.4 Pragma ignored with Cache-Control", {"max-age=5"}, "no-cache", "max-age=5"},
    {"§5.4 even an empty Cache-Control wins", {""}, "no-cache", ""},
    {"§5.4 no-cache=1 is an extension pragma", {NULL}, "no-cache=1", ""},
    {"§5.4 other pragmas", {NULL}, "foo", ""},
    {"§5.2.1 request directives",
     {"max-age=0, min-fresh=5, only-if-cached"},
     NULL,
     "max-age=0 min-fresh=5 only-if-cached"},
    {"§5.2.1.5 request no-store", {"no-store"}, NULL, "no-store"},
};

static void
test_request_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
        cn_cc_t cc;
        set_lines(f, "Cache-Control", req_cases[i].cache_control);
        if (req_cases[i].pragma)
            cn_headers_add(&f->h, CAIRN_IOV_LIT("Pragma"), cn_iov_cstr(req_cases[i].pragma));
        cn_cc_parse_request(&cc, &f->h);
        if (strcmp(render(&cc), req_cases[i].expect) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", req_cases[i].ref, render(&cc),
                     req_cases[i].expect);
    }
}

struct sf_case {
    const char *ref;
    const char *lines[MAX_LINES];
    const char *expect; /* NULL = the field is ignored (parse error or empty) */
};

/* Targeted fields (RFC 9213 §2.1) are Structured Field Dictionaries (RFC 8941 §4.2.2). */
static const struct sf_case sf_cases[] = {
    {"9213 §2.1 max-age", {"max-age=60"}, "max-age=60 targeted"},
    {"9213 §2.1 several members", {"max-age=60, s-maxage=30"}, "max-age=60 s-maxage=30 targeted"},
    {"8941 §3.2 keys are lowercase", {"Max-Age=60"}, NULL},
    {"9213 §2.1 String for a delta is not consumed", {"max-age=\"60\""}, "max-age!=? targeted"},
    {"9213 §2.1 Decimal for a delta is not consumed", {"max-age=60.5"}, "max-age!=? targeted"},
    {"9213 §2.1 negative Integer", {"max-age=-5"}, "max-age!=? targeted"},
    {"9213 §2.1 Token for a delta", {"max-age=soon"}, "max-age!=? targeted"},
    {"9111 §1.2.2 15-digit Integer clamps",
     {"max-age=999999999999999"},
     "max-age=2147483648 targeted"},
    {"8941 §4.2.4 16-digit Integer fails", {"max-age=9999999999999999"}, NULL},
    {"8941 §4.2.2 duplicate keys: last wins", {"max-age=10, max-age=20"}, "max-age=20 targeted"},
    {"9213 §2.1 Boolean true", {"no-cache"}, "no-cache targeted"},
    {"9213 §2.1 String field list", {"no-cache=\"a, b\""}, "no-cache-fields=[a,b] targeted"},
    {"9213 §2.1 Token field list is not consumed", {"no-cache=a"}, "no-cache! targeted"},
    {"9213 §2.1 ?0 means absent", {"no-cache=?0"}, "targeted"},
    {"8941 last wins over false", {"private=?0, private"}, "private targeted"},
    {"8941 last wins: false", {"private, private=?0, max-age=1"}, "max-age=1 targeted"},
    {"8941 §4.2.3.2 parameters ignored",
     {"no-store;foo=bar, max-age=5;x"},
     "no-store max-age=5 targeted"},
    {"8941 §4.2.2 trailing comma", {"max-age=60,"}, NULL},
    {"9213 §2.1 empty field ignored", {""}, NULL},
    {"9213 §3.1 'none' is valid and non-empty", {"none"}, "targeted"},
    {"8941 inner list value", {"max-age=(1 2)"}, "max-age!=? targeted"},
    {"8941 OWS before comma", {"max-age=60 , no-store"}, "no-store max-age=60 targeted"},
    {"8941 parameter without key", {"max-age=60;"}, NULL},
    {"8941 Byte Sequence", {"a=:YWJj:, max-age=5"}, "max-age=5 targeted"},
    {"9651 Date", {"a=@1659578233, max-age=5"}, "max-age=5 targeted"},
    {"9651 Display String", {"a=%\"caf%c3%a9\", max-age=5"}, "max-age=5 targeted"},
    {"8941 bad Boolean", {"a=?2"}, NULL},
    {"8941 bad String escape", {"a=\"\\x\""}, NULL},
    {"8941 unterminated String", {"a=\"x"}, NULL},
    {"8941 garbage after member", {"max-age=5 no"}, NULL},
    {"8941 §4.2 lines are one dictionary",
     {"max-age=60", "private"},
     "max-age=60 private targeted"},
    {"8941 §4.2 last wins across lines", {"max-age=60", "max-age=5"}, "max-age=5 targeted"},
    {"8941 §4.2 an empty line breaks the field", {"max-age=60", ""}, NULL},
    {"9111 §5.2.2.3 must-understand",
     {"must-understand, no-store"},
     "no-store must-understand targeted"},
    {"5861 in a targeted field", {"stale-while-revalidate=30"}, "swr=30 targeted"},
    {"8941 §4.2.1.2 unterminated inner list", {"a=(1 2"}, NULL},
    {"8941 §4.2.1.2 comma in an inner list", {"a=(1,2)"}, NULL},
    {"8941 §4.2.1.2 inner list with parameters", {"a=(1;x 2);y, max-age=1"}, "max-age=1 targeted"},
    {"8941 §4.2.4 sign without digits", {"a=-"}, NULL},
    {"8941 §4.2.4 decimal ending with .", {"a=1."}, NULL},
    {"8941 §4.2.4 four fraction digits", {"a=1.2345"}, NULL},
    {"8941 §4.2.4 13 integer digits before .", {"a=1234567890123.5"}, NULL},
    {"8941 §4.2.3.2 uppercase parameter key", {"a;B=1"}, NULL},
    {"8941 §4.2.7 bad base64", {"a=:YW*:"}, NULL},
    {"9651 §4.2.10 bad percent escape", {"a=%\"%zz\""}, NULL},
    {"9651 §4.2.10 no quote", {"a=%x"}, NULL},
    {"9651 §4.2.9 Date must be an Integer", {"a=@1.5"}, NULL},
    {"8941 §4.2.5 non-ASCII in a String", {"a=\"\xc3\xa9\""}, NULL},
    {"8941 §4.2.5 escaped quote", {"a=\"\\\"\", max-age=1"}, "max-age=1 targeted"},
    {"9213 §2.1 escaped field list = bare", {"no-cache=\"x\\\\y\""}, "no-cache! targeted"},
    {"8941 §4.2.2 HTAB after comma", {"max-age=5,\tno-store"}, "no-store max-age=5 targeted"},
    {"8941 §4.2.2 leading SP", {"  max-age=5"}, "max-age=5 targeted"},
    {"8941 §4.2.3.3 key may start with *", {"*x=1, max-age=2"}, "max-age=2 targeted"},
    {"8941 §4.2.3.3 key cannot start with a digit", {"1x=1"}, NULL},
    {"8941 §4.2.8 Boolean true value", {"no-store=?1"}, "no-store targeted"},
    {"9213 §2.1 bare max-stale", {"max-stale"}, "max-stale=inf targeted"},
};

static void
test_targeted_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(sf_cases) / sizeof(sf_cases[0]); i++) {
        cn_cc_t cc;
        cn_cc_init(&cc);
        cc.max_age = 12345; /* untouched on failure */
        set_lines(f, "CDN-Cache-Control", sf_cases[i].lines);
        bool ok = cn_cc_parse_targeted(&cc, &f->h, CAIRN_IOV_LIT("cdn-cache-control"));
        if (!sf_cases[i].expect) {
            if (ok)
                fail_msg("%s: parsed as \"%s\", want ignored", sf_cases[i].ref, render(&cc));
            assert_int_equal(cc.max_age, 12345);
            continue;
        }
        if (!ok || strcmp(render(&cc), sf_cases[i].expect) != 0)
            fail_msg("%s: got %s \"%s\", want \"%s\"", sf_cases[i].ref, ok ? "" : "(ignored)",
                     render(&cc), sf_cases[i].expect);
    }
}

static void
test_targeted_absent(void **state)
{
    struct fixture *f = *state;
    cn_cc_t cc;
    /* RFC 9213 §2.1: absent → the caller falls back to Cache-Control. */
    cn_headers_add(&f->h, CAIRN_IOV_LIT("Cache-Control"), CAIRN_IOV_LIT("max-age=5"));
    assert_false(cn_cc_parse_targeted(&cc, &f->h, CAIRN_IOV_LIT("CDN-Cache-Control")));
    assert_true(cn_cc_parse_targeted_value(&cc, CAIRN_IOV_LIT("max-age=7")));
    assert_int_equal(cc.max_age, 7);
    assert_true(cc.targeted);
    assert_false(cn_cc_parse_targeted_value(&cc, CAIRN_IOV_LIT("max-age=7,")));
    assert_int_equal(cc.max_age, 7);
}

static void
test_parse_delta(void **state)
{
    (void)state;
    int64_t v = -7;
    /* RFC 9111 §1.2.2 delta-seconds = 1*DIGIT */
    assert_true(cn_cc_parse_delta(CAIRN_IOV_LIT("0"), &v));
    assert_int_equal(v, 0);
    assert_true(cn_cc_parse_delta(CAIRN_IOV_LIT("86400"), &v));
    assert_int_equal(v, 86400);
    assert_true(cn_cc_parse_delta(CAIRN_IOV_LIT("18446744073709551616"), &v));
    assert_int_equal(v, CN_CC_DELTA_MAX);
    v = -7;
    assert_false(cn_cc_parse_delta(CAIRN_IOV_LIT(""), &v));
    assert_false(cn_cc_parse_delta(CAIRN_IOV_LIT("+1"), &v));
    assert_false(cn_cc_parse_delta(CAIRN_IOV_LIT(" 1"), &v));
    assert_false(cn_cc_parse_delta(CAIRN_IOV_LIT("1s"), &v));
    assert_int_equal(v, -7);
}

static void
test_fields_and_borrowing(void **state)
{
    (void)state;
    cn_cc_t cc;
    char value[] = "private=\"Set-Cookie, X-Session\", no-cache=Authorization-Info";
    cn_cc_init(&cc);
    cn_cc_add_value(&cc, cn_iov_cstr(value));
    assert_true(cn_cc_fields_has(&cc.private_fields, CAIRN_IOV_LIT("set-cookie")));
    assert_true(cn_cc_fields_has(&cc.private_fields, CAIRN_IOV_LIT("X-SESSION")));
    assert_false(cn_cc_fields_has(&cc.private_fields, CAIRN_IOV_LIT("X-Sess")));
    assert_true(cn_cc_fields_has(&cc.no_cache_fields, CAIRN_IOV_LIT("authorization-info")));
    /* Names are slices of the parsed value, not copies. */
    assert_ptr_equal(cc.private_fields.names[0].base, value + 9);
    assert_int_equal(cc.flags, CN_CC_PRIVATE_FIELDS | CN_CC_NO_CACHE_FIELDS);
    assert_int_equal(cc.invalid, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_control_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_targeted_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_targeted_absent, setup, teardown),
        cmocka_unit_test(test_parse_delta),
        cmocka_unit_test(test_fields_and_borrowing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
