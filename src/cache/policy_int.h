/* SPDX-License-Identifier: MIT */
/* Helpers shared by the parts of the RFC 9111 policy (policy.c, policy_update.c, vary.c).
 * Private to src/cache/: everything public is in cache/policy.h. Defined in policy.c, except
 * cn_policy_vary_is_star (vary.c). */
#ifndef CN_CACHE_POLICY_INT_H
#define CN_CACHE_POLICY_INT_H

#include "core/types.h"
#include "http/headers.h"

/** Whether @h has a line named @name. */
bool cn_policy_has_field(const cn_headers_t *h, cairn_iov_t name);

/** The first line of @name as an HTTP-date, in *@out; false when absent or invalid. */
bool cn_policy_field_date(const cn_headers_t *h, cairn_iov_t name, int64_t *out);

/** Date of @resp, or @response_time when absent or invalid. */
int64_t cn_policy_date_value(const cn_headers_t *resp, int64_t response_time);

/** Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade. */
bool cn_policy_is_hop_by_hop(cairn_iov_t name);

/** True when a Vary member of @resp is "*" or not a field name (both make the response
 *  unusable, §4.1). */
bool cn_policy_vary_is_star(const cn_headers_t *resp);

#endif
