/* SPDX-License-Identifier: MIT */
/* docs/config.md is generated from the schema tables: this test fails when the committed file
 * differs from what cn_config_write_docs() writes. Run it with CN_UPDATE_DOCS=1 to rewrite
 * the file after changing a table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"

#define DOCS CN_SOURCE_DIR "/docs/config.md"

static char *
render(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    cn_config_write_docs(f);
    fclose(f);
    return buf;
}

static char *
read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len == cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        size_t k = fread(buf + *len, 1, cap - *len, f);
        *len += k;
        if (k == 0)
            break;
    }
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

static void
test_docs_up_to_date(void **state)
{
    (void)state;
    size_t want_len, have_len = 0;
    char *want = render(&want_len);
    if (getenv("CN_UPDATE_DOCS") != NULL) {
        FILE *f = fopen(DOCS, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(want, 1, want_len, f), want_len);
        assert_int_equal(fclose(f), 0);
    }
    char *have = read_all(DOCS, &have_len);
    if (have == NULL || have_len != want_len || memcmp(have, want, want_len) != 0) {
        free(have);
        free(want);
        fail_msg("%s is stale: regenerate it with `make docs` (or run this test with "
                 "CN_UPDATE_DOCS=1)",
                 DOCS);
    }
    free(have);
    free(want);
}

/* Every key of the schema appears in the reference with its full path. */
static void
test_docs_mention_keys(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "`server.workers`",
        "`server.trusted_proxies`",
        "`admin.listen`",
        "`listeners[].tls.cert`",
        "`upstreams.<name>.peers[].address`",
        "`upstreams.<name>.buffer_size`",
        "`caches.<name>.memory.max_object`",
        "`caches.<name>.lock.wait_timeout`",
        "`routes[].match.path_regex`",
        "`routes[].response_headers.remove`",
        "`routes[].redirect.keep_path`",
        "`routes[].error_pages.<status>.content_type`",
        "| `server.max_header_size` | size | `64KiB` | 1KiB..16MiB |",
        "| `server.workers` | integer or `auto` | `auto` | 1..1024 |",
        "| `listeners[].listen` | address | **required** |",
        "`cairn -t`",
    };
    size_t len;
    char *docs = render(&len);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strstr(docs, keys[i]) == NULL) {
            free(docs);
            fail_msg("docs lack %s", keys[i]);
        }
    free(docs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docs_up_to_date),
        cmocka_unit_test(test_docs_mention_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
