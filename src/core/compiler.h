/* SPDX-License-Identifier: MIT */
/* Compiler attributes and tiny helpers; the only place attributes are spelled. */
#ifndef CN_CORE_COMPILER_H
#define CN_CORE_COMPILER_H

#include <stddef.h>

#define CN_LIKELY(x) __builtin_expect(!!(x), 1)
#define CN_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CN_UNUSED __attribute__((unused))
#define CN_MUST_CHECK __attribute__((warn_unused_result))
#define CN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CN_NORETURN __attribute__((noreturn))
#define CN_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define CN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CN_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
