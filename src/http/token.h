/* SPDX-License-Identifier: MIT */
/* RFC 9110 §5.6.2 tokens: the character class every HTTP grammar here shares. */
#ifndef CN_HTTP_TOKEN_H
#define CN_HTTP_TOKEN_H

#include "core/types.h"

/** tchar: "!#$%&'*+-.^_`|~", DIGIT, ALPHA. */
bool cn_http_is_tchar(unsigned char c);
/** 1*tchar. */
bool cn_http_is_token(cairn_iov_t s);

#endif
