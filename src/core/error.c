/* SPDX-License-Identifier: MIT */
/* cairn_strerror / cairn_err_name from the one error table, and the assertion handler. */
#include <stdio.h>
#include <stdlib.h>

#include <cairn/error.h>

#include "core/assert.h"

const char *
cairn_strerror(cairn_err_t err)
{
    switch (err) {
#define CN_ERR_TEXT_(name, val, text)                                                              \
    case CAIRN_##name:                                                                             \
        return text;
        CAIRN_ERROR_MAP(CN_ERR_TEXT_)
#undef CN_ERR_TEXT_
    }
    return "unknown error";
}

const char *
cairn_err_name(cairn_err_t err)
{
    switch (err) {
#define CN_ERR_NAME_(name, val, text)                                                              \
    case CAIRN_##name:                                                                             \
        return #name;
        CAIRN_ERROR_MAP(CN_ERR_NAME_)
#undef CN_ERR_NAME_
    }
    return "UNKNOWN";
}

void
cn_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "cairn: assertion failed: %s at %s:%d\n", expr, file, line);
    abort();
}
