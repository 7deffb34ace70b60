/* SPDX-License-Identifier: MIT */
/* cairn_resp_t: a response inside hooks (upstream_response_filter, response_filter). */
#ifndef CAIRN_RESPONSE_H
#define CAIRN_RESPONSE_H

#include <cairn/hooks.h>

CAIRN_API unsigned cairn_resp_status(const cairn_resp_t *resp);
CAIRN_API void cairn_resp_set_status(cairn_resp_t *resp, unsigned status);
/** The response's headers; framing fields (Content-Length, Transfer-Encoding) are cairn's. */
CAIRN_API cairn_headers_t *cairn_resp_headers(cairn_resp_t *resp);

#endif
