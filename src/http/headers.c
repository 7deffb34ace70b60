/* SPDX-License-Identifier: MIT */
/* Header list operations over arena storage. */
#include "http/headers.h"

#include <string.h>
#include <sys/types.h>

#include "core/str.h"

void
cn_headers_init(cn_headers_t *h, cn_arena_t *arena)
{
    memset(h, 0, sizeof(*h));
    h->arena = arena;
}

void
cn_headers_add(cn_headers_t *h, cairn_iov_t name, cairn_iov_t value)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        cn_header_t *items = cn_arena_xalloc(h->arena, cap * sizeof(*items));
        if (h->n)
            memcpy(items, h->items, h->n * sizeof(*items));
        h->items = items;
        h->cap = cap;
    }
    h->items[h->n].name = name;
    h->items[h->n].value = value;
    h->n++;
}

static cairn_iov_t
dup_iov(cn_arena_t *a, cairn_iov_t s)
{
    char *p = cn_arena_xalloc(a, s.len + 1);
    if (s.len)
        memcpy(p, s.base, s.len);
    p[s.len] = '\0';
    return cn_iov(p, s.len);
}

void
cn_headers_add_copy(cn_headers_t *h, cairn_iov_t name, cairn_iov_t value)
{
    cn_headers_add(h, dup_iov(h->arena, name), dup_iov(h->arena, value));
}

void
cn_headers_set_copy(cn_headers_t *h, cairn_iov_t name, cairn_iov_t value)
{
    cn_headers_remove(h, name);
    cn_headers_add_copy(h, name, value);
}

size_t
cn_headers_remove(cn_headers_t *h, cairn_iov_t name)
{
    size_t w = 0, removed = 0;
    for (size_t r = 0; r < h->n; r++) {
        if (cn_iov_ieq(h->items[r].name, name)) {
            removed++;
            continue;
        }
        h->items[w++] = h->items[r];
    }
    h->n = w;
    return removed;
}

const cairn_iov_t *
cn_headers_get(const cn_headers_t *h, cairn_iov_t name)
{
    for (size_t i = 0; i < h->n; i++)
        if (cn_iov_ieq(h->items[i].name, name))
            return &h->items[i].value;
    return NULL;
}

ssize_t
cn_headers_find(const cn_headers_t *h, cairn_iov_t name, ssize_t from)
{
    for (size_t i = (size_t)(from + 1); i < h->n; i++)
        if (cn_iov_ieq(h->items[i].name, name))
            return (ssize_t)i;
    return -1;
}

bool
cn_headers_has_token(const cn_headers_t *h, cairn_iov_t name, cairn_iov_t tok)
{
    for (ssize_t i = cn_headers_find(h, name, -1); i >= 0; i = cn_headers_find(h, name, i)) {
        cairn_iov_t v = h->items[i].value;
        size_t start = 0;
        for (size_t j = 0; j <= v.len; j++) {
            if (j == v.len || v.base[j] == ',') {
                if (cn_iov_ieq(cn_iov_trim(cn_iov(v.base + start, j - start)), tok))
                    return true;
                start = j + 1;
            }
        }
    }
    return false;
}
