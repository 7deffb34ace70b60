/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the HTTP-date parser (RFC 9110 §5.6.7) and its formatter. Input: the
 * candidate date itself. Invariants are checked with __builtin_trap(): the parse is
 * deterministic, an accepted date has one of the three formats' lengths, no strict prefix of
 * it is accepted, changing the letter case gives the same instant, and a representable
 * instant formats as an IMF-fixdate that parses back to it. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/time.h"

#define CHECK(e)                                                                                   \
    do {                                                                                           \
        if (!(e))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

/* The latest instant cn_time_http_date can format (9999-12-31T23:59:59Z). */
#define HTTP_DATE_MAX ((time_t)253402300799LL)
#define INPUT_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_case(const char *s, size_t n, time_t want, int upper)
{
    char buf[INPUT_MAX];
    time_t t = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        buf[i] = c;
    }
    CHECK(cn_time_parse_http_date(buf, n, &t));
    CHECK(t == want);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    time_t t = 7, again = 9;

    if (size > INPUT_MAX)
        return 0;
    bool ok = cn_time_parse_http_date(s, size, &t);
    CHECK(ok == cn_time_parse_http_date(s, size, &again));
    if (!ok) {
        CHECK(t == 7);
        return 0;
    }
    CHECK(t == again);
    /* IMF-fixdate is 29 bytes, asctime 24, RFC 850 24 after a 6-9 letter day name. */
    CHECK(size == 24 || (size >= 29 && size <= 33));
    for (size_t n = 0; n < size; n++) {
        time_t p = 5;
        CHECK(!cn_time_parse_http_date(s, n, &p));
        CHECK(p == 5);
    }
    check_case(s, size, t, 1);
    check_case(s, size, t, 0);
    if (t >= 0 && t <= HTTP_DATE_MAX) {
        char out[30];
        time_t back = 0;
        cn_time_http_date(t, out);
        CHECK(strlen(out) == 29);
        CHECK(cn_time_parse_http_date(out, 29, &back));
        CHECK(back == t);
    }
    return 0;
}
