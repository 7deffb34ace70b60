/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the Range parser, Content-Range / multipart layout, ETag comparison
 * and the precondition evaluator. Input: 16 bytes of parameters (representation length,
 * Last-Modified, clock, flags), then newline-separated field values:
 *   Range \n method \n If-Match \n If-None-Match \n If-Modified-Since \n
 *   If-Unmodified-Since \n If-Range \n current ETag
 * A missing field is absent from the request. Invariants are checked with __builtin_trap(). */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/str.h"
#include "http/conditional.h"
#include "http/etag.h"
#include "http/headers.h"
#include "http/range.h"

#define CHECK(e)                                                                                   \
    do {                                                                                           \
        if (!(e))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

enum { F_RANGE, F_METHOD, F_IF_MATCH, F_INM, F_IMS, F_IUS, F_IF_RANGE, F_ETAG, F_COUNT };

static const char *const field_names[F_COUNT] = {
    "Range",    "", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
    "If-Range", "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
read_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void
check_ranges(cairn_iov_t value, uint64_t length, size_t max, cn_arena_t *arena)
{
    cn_byte_range_t r[CN_RANGE_MAX_DEFAULT], again[CN_RANGE_MAX_DEFAULT];
    size_t n = 0, n2 = 0;
    cn_range_result_t res = cn_range_parse(value, length, r, max, &n);

    CHECK(res == CN_RANGE_NONE || res == CN_RANGE_SATISFIABLE || res == CN_RANGE_UNSATISFIABLE);
    CHECK(cn_range_parse(value, length, again, max, &n2) == res);
    if (res != CN_RANGE_SATISFIABLE) {
        CHECK(n == 0);
        return;
    }
    CHECK(n >= 1 && n <= max && n == n2);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(r[i].first <= r[i].last && r[i].last < length);
        CHECK(r[i].first == again[i].first && r[i].last == again[i].last);
        /* Ascending, disjoint and not even adjacent after coalescing. */
        CHECK(i == 0 || r[i].first > r[i - 1].last + 1);
        total += r[i].last - r[i].first + 1;
        char cr[CN_RANGE_CONTENT_RANGE_MAX];
        size_t crlen = cn_range_format(cr, r[i], length);
        CHECK(crlen > 0 && crlen < sizeof(cr) && cr[crlen] == '\0');
    }
    CHECK(total <= length);

    char b[CN_RANGE_BOUNDARY_MAX];
    cairn_iov_t boundary = cn_iov(b, cn_range_boundary(b, length));
    cn_multipart_t mp;
    if (cn_multipart_build(&mp, arena, r, n, CAIRN_IOV_LIT("text/plain"), length, boundary) !=
        CAIRN_OK)
        return;
    uint64_t body = mp.tail.len;
    for (size_t i = 0; i < mp.n; i++)
        body += mp.parts[i].head.len + (mp.parts[i].range.last - mp.parts[i].range.first + 1);
    CHECK(mp.n == n && body == mp.body_length);
}

static void
check_etags(cairn_iov_t a, cairn_iov_t b)
{
    bool s = cn_etag_strong_eq(a, b), w = cn_etag_weak_eq(a, b);
    CHECK(s == cn_etag_strong_eq(b, a));
    CHECK(w == cn_etag_weak_eq(b, a));
    CHECK(!s || w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t params[16] = {0};
    cairn_iov_t f[F_COUNT];
    bool present[F_COUNT] = {false};
    cn_arena_t arena;
    cn_headers_t req;

    memcpy(params, data, size < 16 ? size : 16);
    data += size < 16 ? size : 16;
    size -= size < 16 ? size : 16;
    uint64_t length = read_u64(params);
    /* Small lengths are where the edge cases are; keep most inputs there. */
    if (params[15] & 1)
        length &= 0xffff;
    time_t lm = (time_t)(read_u64(params + 8) >> 32);
    time_t now = lm + (time_t)(params[14] % 4);
    size_t max = 1 + params[13] % CN_RANGE_MAX_DEFAULT;

    const char *p = (const char *)data, *end = p + size;
    for (int i = 0; i < F_COUNT && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        f[i] = cn_iov(p, (size_t)(e - p));
        present[i] = true;
        p = e + 1;
        if (!nl)
            break;
    }

    cn_arena_init(&arena, 1 << 20);
    if (present[F_RANGE])
        check_ranges(f[F_RANGE], length, max, &arena);

    cn_headers_init(&req, &arena);
    for (int i = 0; i < F_COUNT; i++)
        if (present[i] && field_names[i][0])
            cn_headers_add(&req, cn_iov_cstr(field_names[i]), f[i]);
    cn_validators_t v = {
        .etag = present[F_ETAG] ? f[F_ETAG] : cn_iov(NULL, 0),
        .last_modified = (params[15] & 2) ? 0 : lm,
        .exists = !(params[15] & 4),
    };
    cairn_iov_t method = present[F_METHOD] ? f[F_METHOD] : CAIRN_IOV_LIT("GET");
    cn_cond_result_t c = cn_cond_evaluate(method, &req, &v);
    CHECK(c == CN_COND_PROCEED || c == CN_COND_NOT_MODIFIED || c == CN_COND_PRECONDITION_FAILED);
    if (c == CN_COND_NOT_MODIFIED)
        CHECK(cn_iov_eq(method, CAIRN_IOV_LIT("GET")) || cn_iov_eq(method, CAIRN_IOV_LIT("HEAD")));
    bool ir = cn_cond_if_range(&req, &v, now);
    CHECK(ir || present[F_IF_RANGE]);

    if (present[F_IF_RANGE] && present[F_ETAG])
        check_etags(f[F_IF_RANGE], f[F_ETAG]);
    if (present[F_IF_MATCH] && present[F_INM])
        check_etags(f[F_IF_MATCH], f[F_INM]);
    cn_arena_fini(&arena);
    return 0;
}
