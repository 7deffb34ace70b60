/* SPDX-License-Identifier: MIT */
/* Heap wrappers: one place to count, replace or harden allocation. */
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
oom(size_t n)
{
    fprintf(stderr, "cairn: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
cn_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *
cn_xcalloc(size_t nmemb, size_t n)
{
    void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
    if (p == NULL)
        oom(nmemb * n);
    return p;
}

void *
cn_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *
cn_xstrdup(const char *s)
{
    return cn_xstrndup(s, strlen(s));
}

char *
cn_xstrndup(const char *s, size_t n)
{
    char *p = cn_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *
cn_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *
cn_realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}

void
cn_free(void *p)
{
    free(p);
}
