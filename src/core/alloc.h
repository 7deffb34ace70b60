/* SPDX-License-Identifier: MIT */
/* All heap traffic: cn_x* abort on failure (sizes we choose), cn_* may fail (peer sizes). */
#ifndef CN_CORE_ALLOC_H
#define CN_CORE_ALLOC_H

#include <stddef.h>

#include "core/compiler.h"

/** Allocates or aborts; for control structures whose size cairn decides. */
void *cn_xmalloc(size_t n);
void *cn_xcalloc(size_t nmemb, size_t n);
void *cn_xrealloc(void *p, size_t n);
char *cn_xstrdup(const char *s);
char *cn_xstrndup(const char *s, size_t n);
/** Fallible allocation for peer-sized data; returns NULL on failure. */
CN_MUST_CHECK void *cn_malloc(size_t n);
CN_MUST_CHECK void *cn_realloc(void *p, size_t n);
/** Frees memory from any of the above; NULL is a no-op. */
void cn_free(void *p);

#endif
