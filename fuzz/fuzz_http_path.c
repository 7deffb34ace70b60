/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the path normaliser (src/http/path.c). Input: one byte of options
 * (bit 0: merge_slashes; (byte >> 1) % 3: escaped_slashes keep, reject, decode), then the
 * path; a "/" is put in front when it does not start with one, after checking that such a
 * path is refused. Both buffers are exactly as long as the path, so ASan sees any overrun.
 * Invariants are checked with __builtin_trap(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "http/path.h"

#define CHECK(e)                                                                                   \
    do {                                                                                           \
        if (!(e))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
is_unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static bool
is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* What every successful output looks like. */
static void
check_shape(const char *p, size_t n, const cn_path_opts_t *o)
{
    CHECK(n >= 1 && p[0] == '/');
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            CHECK(i + 2 < n && is_upper_hex(p[i + 1]) && is_upper_hex(p[i + 2]));
            int v = cn_hex_digit(p[i + 1]) << 4 | cn_hex_digit(p[i + 2]);
            CHECK(!is_unreserved(v));
            CHECK(o->escaped_slashes == CN_PATH_SLASHES_KEEP || (v != '/' && v != '\\'));
        }
        if (p[i] == '\\')
            CHECK(o->escaped_slashes == CN_PATH_SLASHES_KEEP);
        if (p[i] != '/')
            continue;
        /* The segment after this "/": never "." or "..", and never empty when merging unless
         * it ends the path (the trailing slash). */
        size_t e = i + 1;
        while (e < n && p[e] != '/')
            e++;
        size_t len = e - i - 1;
        CHECK(!(len == 1 && p[i + 1] == '.'));
        CHECK(!(len == 2 && p[i + 1] == '.' && p[i + 2] == '.'));
        CHECK(!(o->merge_slashes && len == 0 && e < n));
    }
}

static void
check_path(const char *in, size_t n, const cn_path_opts_t *o)
{
    char *out = malloc(n), *again = malloc(n);
    size_t len = 0, len2 = 0;
    CHECK(out != NULL && again != NULL);
    cn_path_result_t r = cn_path_normalize(cn_iov((char *)in, n), out, &len, o);
    CHECK(r >= CN_PATH_OK && r <= CN_PATH_ERR_SLASH && r != CN_PATH_ERR_NOT_ABSOLUTE);
    CHECK(cn_path_strerror(r)[0] != '\0');
    if (r == CN_PATH_OK) {
        CHECK(len <= n);
        check_shape(out, len, o);
        /* Idempotent: the normal form is its own normal form. */
        CHECK(cn_path_normalize(cn_iov(out, len), again, &len2, o) == CN_PATH_OK);
        CHECK(len2 == len && memcmp(again, out, len) == 0);
    }
    free(out);
    free(again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    cn_path_opts_t o = {.merge_slashes = data[0] & 1,
                        .escaped_slashes = (cn_path_slashes_t)((data[0] >> 1) % 3)};
    const char *p = (const char *)data + 1;
    size_t n = size - 1;

    if (n > 0 && p[0] == '/') {
        char *copy = malloc(n);
        CHECK(copy != NULL);
        memcpy(copy, p, n);
        check_path(copy, n, &o);
        free(copy);
        return 0;
    }
    char out[1];
    size_t len = 7;
    CHECK(cn_path_normalize(cn_iov((char *)p, n), out, &len, &o) == CN_PATH_ERR_NOT_ABSOLUTE);
    CHECK(len == 7);
    char *slashed = malloc(n + 1);
    CHECK(slashed != NULL);
    slashed[0] = '/';
    memcpy(slashed + 1, p, n);
    check_path(slashed, n + 1, &o);
    free(slashed);
    return 0;
}
