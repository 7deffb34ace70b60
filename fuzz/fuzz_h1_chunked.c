/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the chunked decoder. The whole input, the input one byte at a time and the
 * input cut in two must all decode to the same body, the same outcome and the same number of
 * consumed bytes; data slices must lie inside what was consumed. Violations __builtin_trap(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/compiler.h"
#include "http1/parser.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    cn_h1_result_t last;
    bool done;
    size_t consumed;
    uint64_t body_len;
    uint64_t body_hash;
};

/* Decodes @in fed in pieces of at most @step bytes (0 = all at once, then what is left after
 * @cut when @cut is non-zero). */
static void
run(const uint8_t *in, size_t len, size_t step, size_t cut, size_t max_trailer, struct outcome *o)
{
    cn_h1_chunked_t c;
    cn_h1_chunked_init(&c);
    c.max_trailer = max_trailer;
    memset(o, 0, sizeof(*o));
    o->body_hash = 1469598103934665603ULL;
    size_t pos = 0;
    size_t avail = step ? CN_MIN(step, len) : cut ? cut : len;
    for (;;) {
        size_t used = 0;
        cairn_iov_t d;
        const char *p = (const char *)in + pos;
        cn_h1_result_t r = cn_h1_chunked_decode(&c, p, avail - pos, &used, &d);
        CHECK(used <= avail - pos);
        CHECK(d.len == 0 || (d.base >= p && d.base + d.len <= p + used));
        CHECK(r != CN_H1_INCOMPLETE || (used == avail - pos && d.len == 0));
        CHECK(r != CN_H1_OK || d.len > 0 || c.done);
        for (size_t i = 0; i < d.len; i++)
            o->body_hash = (o->body_hash ^ (uint8_t)d.base[i]) * 1099511628211ULL;
        o->body_len += d.len;
        pos += used;
        o->last = r;
        if (r == CN_H1_ERROR) {
            CHECK(c.error != NULL);
            break;
        }
        if (c.done)
            break;
        if (r == CN_H1_INCOMPLETE) {
            if (avail == len)
                break;
            avail = step ? CN_MIN(avail + step, len) : len;
        }
    }
    o->done = c.done;
    o->consumed = pos;
}

static void
same(const struct outcome *a, const struct outcome *b)
{
    CHECK(a->last == b->last && a->done == b->done);
    CHECK(a->body_len == b->body_len && a->body_hash == b->body_hash);
    if (a->last != CN_H1_ERROR)
        CHECK(a->consumed == b->consumed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome whole;
    struct outcome other;
    size_t max_trailer = size % 3 == 0 ? 0 : 64;

    run(data, size, 0, 0, max_trailer, &whole);
    CHECK(whole.consumed <= size && whole.body_len <= size);
    if (whole.done)
        CHECK(whole.consumed >= 5);
    run(data, size, 1, 0, max_trailer, &other);
    same(&whole, &other);
    if (size > 1) {
        run(data, size, 0, 1 + data[size - 1] * 31 % (size - 1), max_trailer, &other);
        same(&whole, &other);
        run(data, size, 7, 0, max_trailer, &other);
        same(&whole, &other);
    }
    return 0;
}
