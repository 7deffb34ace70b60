/* SPDX-License-Identifier: MIT */
/* Always-on assertions for invariants (a failed one is a cairn bug). */
#ifndef CN_CORE_ASSERT_H
#define CN_CORE_ASSERT_H

#include "core/compiler.h"

CN_NORETURN void cn_assert_fail(const char *expr, const char *file, int line);

#define CN_ASSERT(e) (CN_LIKELY(e) ? (void)0 : cn_assert_fail(#e, __FILE__, __LINE__))
#define CN_CHECK_OBJ(p, m) CN_ASSERT((p) != NULL && (p)->magic == (m))

#endif
