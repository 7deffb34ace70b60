/* SPDX-License-Identifier: MIT */
/* Token characters as a 128-bit mask: one shift and a test per byte. */
#include "http/token.h"

bool
cn_http_is_tchar(unsigned char c)
{
    /* Bit n of the mask is character n. */
    static const uint64_t lo = 0x03ff6cfa00000000ULL; /* 0x00..0x3f */
    static const uint64_t hi = 0x57ffffffc7fffffeULL; /* 0x40..0x7f */
    if (c < 64)
        return (lo >> c) & 1;
    if (c < 128)
        return (hi >> (c - 64)) & 1;
    return false;
}

bool
cn_http_is_token(cairn_iov_t s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!cn_http_is_tchar((unsigned char)s.base[i]))
            return false;
    return true;
}
