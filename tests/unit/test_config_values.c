/* SPDX-License-Identifier: MIT */
/* src/config value formats: durations and sizes (the core parsers and formatters the schema
 * uses, including overflow and bad units), and how the loader reports each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/str.h"

static void
test_durations(void **state)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {
        {"0", 0},         {"0s", 0},
        {"500ms", 500},   {"1s", 1000},
        {"30", 30000},    {"2m", 120000},
        {"1h", 3600000},  {"1d", 86400000},
        {"1500ms", 1500}, {"18446744073709551615ms", UINT64_MAX},
    };
    static const char *const bad[] = {
        "",
        "s",
        "5x",
        "1.5s",
        "-1s",
        " 1s",
        "1s ",
        "1 s",
        "1S",
        "1sec",
        "1ms2",
        "0x10",
        "1e3",
        "18446744073709551616ms",
        "18446744073709551615s",
        "213503982334602d",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 7;
        if (!cn_parse_duration_ms(good[i].s, &v) || v != good[i].ms)
            fail_msg("duration \"%s\": want %llu, got %llu", good[i].s,
                     (unsigned long long)good[i].ms, (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        if (cn_parse_duration_ms(bad[i], &v))
            fail_msg("duration \"%s\" accepted as %llu", bad[i], (unsigned long long)v);
        assert_int_equal(v, 7); /* untouched on failure */
    }
}

static void
test_sizes(void **state)
{
    static const struct {
        const char *s;
        uint64_t n;
    } good[] = {
        {"0", 0},
        {"123", 123},
        {"10B", 10},
        {"64KiB", 65536},
        {"64k", 65536},
        {"64K", 65536},
        {"1KB", 1000},
        {"256MiB", 256ull << 20},
        {"2M", 2ull << 20},
        {"3MB", 3000000},
        {"10GiB", 10ull << 30},
        {"1g", 1ull << 30},
        {"4GB", 4000000000ull},
        {"2TiB", 2ull << 40},
        {"16777215TiB", 16777215ull << 40},
    };
    static const char *const bad[] = {
        "",
        "KiB",
        "12QB",
        "1.5MiB",
        "-1",
        " 1",
        "1 KiB",
        "1kib",
        "1Kib",
        "1KiBs",
        "0x10",
        "16777216TiB",
        "18446744073709551616",
        "20000000000GiB",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 7;
        if (!cn_parse_size(good[i].s, &v) || v != good[i].n)
            fail_msg("size \"%s\": want %llu, got %llu", good[i].s, (unsigned long long)good[i].n,
                     (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        if (cn_parse_size(bad[i], &v))
            fail_msg("size \"%s\" accepted as %llu", bad[i], (unsigned long long)v);
    }
}

static void
test_formatting(void **state)
{
    static const struct {
        uint64_t v;
        const char *dur, *size;
    } rows[] = {
        {0, "0s", "0"},
        {1, "1ms", "1"},
        {1000, "1s", "1000"},
        {1024, "1024ms", "1KiB"},
        {60000, "1m", "60000"},
        {65536, "65536ms", "64KiB"},
        {3600000, "1h", "3600000"},
        {86400000, "24h", "84375KiB"},
        {1ull << 20, "1048576ms", "1MiB"},
        {1ull << 30, "1073741824ms", "1GiB"},
        {1536, "1536ms", "1536"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char buf[64];
        uint64_t back;
        cn_format_duration_ms(rows[i].v, buf, sizeof(buf));
        assert_string_equal(buf, rows[i].dur);
        assert_true(cn_parse_duration_ms(buf, &back));
        assert_int_equal(back, rows[i].v);
        cn_format_size(rows[i].v, buf, sizeof(buf));
        assert_string_equal(buf, rows[i].size);
        assert_true(cn_parse_size(buf, &back));
        assert_int_equal(back, rows[i].v);
    }
}

static void
expect_one_error(const char *yaml, const char *msg)
{
    cn_diags_t d = {0};
    cn_config_t *c = NULL;
    assert_int_equal(cn_config_load_string("v", yaml, strlen(yaml), &c, &d), CAIRN_ECONFIG);
    if (d.n != 1 || strstr(d.items[0].msg, msg) == NULL) {
        cn_diags_print(&d, stderr);
        cn_diags_fini(&d);
        fail_msg("want one error containing '%s' for:\n%s", msg, yaml);
    }
    cn_diags_fini(&d);
}

static uint64_t
load_value(const char *yaml, size_t off)
{
    cn_diags_t d = {0};
    cn_config_t *c = NULL;
    if (cn_config_load_string("v", yaml, strlen(yaml), &c, &d) != CAIRN_OK) {
        cn_diags_print(&d, stderr);
        cn_diags_fini(&d);
        fail_msg("did not load:\n%s", yaml);
    }
    uint64_t v;
    memcpy(&v, (char *)c + off, sizeof(v));
    cn_config_unref(c);
    return v;
}

#define LST "listeners: [{listen: 127.0.0.1:80}]\n"

static void
test_config_values(void **state)
{
    (void)state;
    assert_int_equal(
        load_value("server: {max_body_size: 0}\n" LST, offsetof(cn_config_t, server.max_body_size)),
        0);
    assert_int_equal(load_value("server: {max_body_size: 16777215TiB}\n" LST,
                                offsetof(cn_config_t, server.max_body_size)),
                     16777215ull << 40);
    assert_int_equal(load_value("server: {shutdown_grace: \"90\"}\n" LST,
                                offsetof(cn_config_t, server.shutdown_grace_ms)),
                     90000);
    assert_int_equal(load_value("server: {max_header_size: 1KiB}\n" LST,
                                offsetof(cn_config_t, server.max_header_size)),
                     1024);
    assert_int_equal(load_value("server: {max_header_size: 16MiB}\n" LST,
                                offsetof(cn_config_t, server.max_header_size)),
                     16ull << 20);
    assert_int_equal(load_value("server: {trusted_proxies: []}\n" LST,
                                offsetof(cn_config_t, server.n_trusted_proxies)),
                     0);
    assert_int_equal(load_value(LST, offsetof(cn_config_t, server.n_trusted_proxies)), 2);
    expect_one_error("server: {max_header_size: 1023}\n" LST, "between 1KiB and 16MiB, got 1023");
    expect_one_error("server: {max_body_size: 16777216TiB}\n" LST, "invalid size");
    expect_one_error("server: {max_uri_size: 12QB}\n" LST, "invalid size \"12QB\"");
    expect_one_error("server: {send_timeout: 1fortnight}\n" LST, "invalid duration");
    expect_one_error("server: {send_timeout: 99999999999999999999}\n" LST, "invalid duration");
    expect_one_error("server: {workers: 4294967296}\n" LST, "between 1 and 1024");
    expect_one_error("server: {workers: -1}\n" LST, "expected an integer");
    expect_one_error("server: {workers: 1.0}\n" LST, "expected an integer");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_formatting),
        cmocka_unit_test(test_config_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
