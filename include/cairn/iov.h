/* SPDX-License-Identifier: MIT */
/* cairn_iov_t: a non-owning byte slice with the layout of struct iovec. */
#ifndef CAIRN_IOV_H
#define CAIRN_IOV_H

#include <stddef.h>

typedef struct cairn_iov {
    char *base;
    size_t len;
} cairn_iov_t;

/** A slice over a string literal. */
#define CAIRN_IOV_LIT(s) ((cairn_iov_t){(char *)(s), sizeof(s) - 1})

#endif
