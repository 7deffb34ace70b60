/* SPDX-License-Identifier: MIT */
/* Conditional requests (RFC 9110 §13): evaluating If-Match, If-Unmodified-Since,
 * If-None-Match, If-Modified-Since and If-Range against a representation's validators.
 * Pure functions over plain values: the files route action uses them with a stat(), the
 * cache with a stored object's ETag and Last-Modified. */
#ifndef CN_HTTP_CONDITIONAL_H
#define CN_HTTP_CONDITIONAL_H

#include <time.h>

#include "core/types.h"

typedef enum cn_cond_result {
    CN_COND_PROCEED = 0,         /* no precondition stops the request: handle it normally */
    CN_COND_NOT_MODIFIED,        /* answer 304 (GET/HEAD only) */
    CN_COND_PRECONDITION_FAILED, /* answer 412 */
} cn_cond_result_t;

/** The validators of the selected (current) representation. Borrowed by every call. */
typedef struct cn_validators {
    /* The ETag field value, quotes included ("\"abc\"" or "W/\"abc\""); an empty iov means
     * no ETag, and a malformed one is treated as no ETag. */
    cairn_iov_t etag;
    time_t last_modified; /* seconds since the epoch; 0 = no Last-Modified */
    /* A cache's stored response: its Date (seconds since the epoch), which If-Modified-Since
     * compares with when there is no Last-Modified (RFC 9110 §13.1.3). 0 = none (an origin's
     * own representation: leave it 0). */
    time_t date;
    bool exists; /* whether a current representation exists at all */
} cn_validators_t;

/**
 * RFC 9110 §13.2.2 steps 1-4, in order, for a request with method @method (case-sensitive,
 * "GET", "PUT", ...) and header list @req, against @v:
 *  1. If-Match present: false (no listed tag strongly matches the current ETag, or "*" and
 *     no representation exists) → PRECONDITION_FAILED.
 *  2. Else If-Unmodified-Since present, a valid HTTP-date, and v->last_modified known: the
 *     representation was modified after that date → PRECONDITION_FAILED.
 *  3. If-None-Match present: true unless a listed tag weakly matches, or "*" and the
 *     representation exists; when false → NOT_MODIFIED for GET/HEAD, PRECONDITION_FAILED for
 *     every other method.
 *  4. Else, for GET/HEAD only, If-Modified-Since a valid HTTP-date and v->last_modified
 *     known, or else v->date: not modified since (that time <= the field's date) →
 *     NOT_MODIFIED.
 * Otherwise PROCEED. Several field lines of a list field (If-Match, If-None-Match) are one
 * list; a list element that does not parse ends that line (what parsed before it counts),
 * which can only make If-Match fail and If-None-Match succeed, the safe outcomes. A date field
 * that is not exactly one valid HTTP-date (including a repeated field) is ignored, as §13.1.3
 * and §13.1.4 require. When !v->exists the ETag and dates are not consulted. v->date is
 * never used by If-Unmodified-Since or If-Range: a Date is not a validator. Step 5 (If-Range)
 * is cn_cond_if_range. Any thread; @req and @v are only read during the call.
 */
cn_cond_result_t cn_cond_evaluate(cairn_iov_t method, const cn_headers_t *req,
                                  const cn_validators_t *v);

/**
 * RFC 9110 §13.1.5 / §13.2.2 step 5: whether a Range field of @req should be honoured given
 * its If-Range field. Returns true when there is no If-Range. With an entity-tag, true only
 * when it is strong and strongly matches v->etag. With an HTTP-date, true only when it equals
 * v->last_modified exactly and that Last-Modified is a strong validator (§8.8.2.2): at least
 * one second older than @now (for an origin, the current time; for a cache, the Date of the
 * stored response). A malformed or repeated If-Range yields false (the Range is ignored and
 * the full representation is sent, which is always correct). Does not look at Range itself.
 */
bool cn_cond_if_range(const cn_headers_t *req, const cn_validators_t *v, time_t now);

#endif
