/* SPDX-License-Identifier: MIT */
/* Configuration diagnostics: a heap-owned list of "file:line:col: error: message" entries
 * that cn_config_load_*() fills and the caller prints and frees. */
#include "config/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema.h"
#include "core/alloc.h"

void
cn_diags_add(cn_diags_t *d, const char *file, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    char buf[1024];

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->items = cn_xrealloc(d->items, d->cap * sizeof(*d->items));
    }
    cn_diag_t *it = &d->items[d->n++];
    it->file = cn_xstrdup(file != NULL ? file : "<config>");
    it->line = line;
    it->col = col;
    it->msg = cn_xstrdup(buf);
}

void
cn_diags_print(const cn_diags_t *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const cn_diag_t *it = &d->items[i];
        if (it->line == 0)
            fprintf(out, "%s: error: %s\n", it->file, it->msg);
        else
            fprintf(out, "%s:%u:%u: error: %s\n", it->file, it->line, it->col, it->msg);
    }
}

void
cn_diags_fini(cn_diags_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        cn_free(d->items[i].file);
        cn_free(d->items[i].msg);
    }
    cn_free(d->items);
    d->items = NULL;
    d->n = d->cap = 0;
}

struct ranked {
    cn_diag_t diag;
    size_t seq;
};

static int
cmp_ranked(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    if (a->diag.line != b->diag.line)
        return a->diag.line < b->diag.line ? -1 : 1;
    if (a->diag.col != b->diag.col)
        return a->diag.col < b->diag.col ? -1 : 1;
    return a->seq < b->seq ? -1 : (a->seq > b->seq);
}

void
cn_diags_sort(cn_diags_t *d, size_t from)
{
    if (from >= d->n || d->n - from < 2)
        return;
    size_t n = d->n - from;
    struct ranked *r = cn_xmalloc(n * sizeof(*r));
    for (size_t i = 0; i < n; i++) {
        r[i].diag = d->items[from + i];
        r[i].seq = i;
    }
    qsort(r, n, sizeof(*r), cmp_ranked);
    for (size_t i = 0; i < n; i++)
        d->items[from + i] = r[i].diag;
    cn_free(r);
}
