/* SPDX-License-Identifier: MIT */
/* RFC 9111 decisions for a shared cache, as pure functions: may a response be stored (§3),
 * how long it is fresh (§4.2.1, §4.2.2, RFC 9213), how old it is (§4.2.3), may a stored
 * response be used for a request (§4, §4.2.4, RFC 5861), updating it from a 304 or a HEAD
 * (§4.3.4, §4.3.5), invalidation (§4.4) and the Vary secondary key (§4.1).
 * No clock is read: every time is int64_t seconds since the epoch passed in by the caller.
 * No allocation except from an arena passed in. Every function may be called on any thread;
 * arguments are only read during the call unless stated otherwise.
 *
 * The prefix is cn_policy_ because the cache tier (cache.c) already owns the cn_cache_*
 * names (cn_cache_storable, cn_cache_invalidates, ...). */
#ifndef CN_CACHE_POLICY_H
#define CN_CACHE_POLICY_H

#include "core/arena.h"
#include "core/types.h"
#include "http/cache_control.h"
#include "http/conditional.h"
#include "http/headers.h"
#include "http/msg.h"

/* ---- Configuration ---- */

typedef struct cn_policy_conf {
    /* cairn's own targeted field (RFC 9213), the most specific one: it takes precedence over
     * CDN-Cache-Control. Empty = none. Borrowed; must outlive every call using the conf. */
    cairn_iov_t target_field;
    bool cdn_cache_control;    /* obey CDN-Cache-Control (RFC 9213 §3) */
    double heuristic_fraction; /* of (Date - Last-Modified), §4.2.2; <= 0 disables heuristics */
    int64_t heuristic_max;     /* cap on a heuristic lifetime, seconds */
} cn_policy_conf_t;

/** Defaults: target_field "Cairn-Cache-Control", cdn_cache_control true, heuristic_fraction
 *  0.1, heuristic_max 86400 (one day). */
void cn_policy_conf_init(cn_policy_conf_t *conf);

/**
 * The response directives cairn obeys (RFC 9213 §2.1): the first of conf->target_field and
 * then CDN-Cache-Control (when conf->cdn_cache_control) that is present, parses as a
 * Structured Field Dictionary and is non-empty; cc->targeted is then true and Cache-Control
 * AND Expires are ignored for every decision below, storability included (a targeted
 * "max-age=60" makes a "Cache-Control: no-store, private" response storable by cairn).
 * Otherwise the Cache-Control field lines (cc->targeted false). Field names in *@cc point
 * into @resp's values.
 */
void cn_policy_response_cc(const cn_policy_conf_t *conf, const cn_headers_t *resp, cn_cc_t *cc);

/* ---- Status codes ---- */

/** §4.2.2 / RFC 9110 §15.1: 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501, and
 *  451 (RFC 7725 §3: "cacheable by default"). */
bool cn_policy_status_heuristic(unsigned status);
/** Status codes whose caching requirements cairn implements (§5.2.2.3 must-understand): the
 *  final codes defined by RFC 9110 §15 except 206 (cairn stores only complete responses),
 *  304 (an update, never stored), the unused 305/306/418, plus 428, 429, 431, 451 and 511. */
bool cn_policy_status_understood(unsigned status);
/** RFC 5861 §4: the statuses that count as an origin error for stale-if-error: 500, 502,
 *  503, 504. (A failure to connect or a timeout counts too; the caller knows those.) */
bool cn_policy_status_is_error(unsigned status);

/* ---- Storing (§3) ---- */

typedef enum cn_policy_store {
    CN_POLICY_STORE = 0,          /* may be stored */
    CN_POLICY_NS_METHOD,          /* request method is not GET (nor HEAD) */
    CN_POLICY_NS_HEAD,            /* HEAD: not stored; use cn_policy_head_update (§4.3.5) */
    CN_POLICY_NS_STATUS,          /* 1xx / not in 200..599, or 428, 429, 431, 511 (RFC 6585:
                                     "MUST NOT be stored by a cache") */
    CN_POLICY_NS_PARTIAL,         /* 206: only complete responses are stored */
    CN_POLICY_NS_NOT_MODIFIED,    /* 304: updates a stored response, is never stored itself */
    CN_POLICY_NS_REQ_NO_STORE,    /* request no-store (§5.2.1.5) */
    CN_POLICY_NS_MUST_UNDERSTAND, /* must-understand on a status cairn does not understand */
    CN_POLICY_NS_NO_STORE,        /* response no-store (without an understood must-understand) */
    CN_POLICY_NS_PRIVATE,         /* bare private (§5.2.2.7) */
    CN_POLICY_NS_AUTHORIZATION,   /* request Authorization without public, s-maxage or
                                     must-revalidate (§3.5) */
    CN_POLICY_NS_VARY_STAR,       /* Vary: * (or an unparsable Vary): would never match (§4.1) */
    CN_POLICY_NS_NOT_CACHEABLE,   /* none of public, max-age, s-maxage, Expires, or a
                                     heuristically cacheable status (§3 last bullet) */
} cn_policy_store_t;

/**
 * RFC 9111 §3 for a shared cache, evaluated in the order of the enum above (the first reason
 * found is returned). @req is the request as forwarded (method and headers are read),
 * @req_cc from cn_cc_parse_request, @resp_cc from cn_policy_response_cc.
 * Choices where the RFC leaves room:
 *  - HEAD responses are not stored (CN_POLICY_NS_HEAD); a stored GET response serves HEAD.
 *  - 206, and 200 answers to Range requests: only the complete 200 is storable; a request
 *    carrying Range gets CN_POLICY_STORE when the origin answered 200 with the full content.
 *  - must-understand with an understood status makes no-store ignored (§5.2.2.3); with any
 *    other status the response is not storable, whatever else it says.
 *  - An invalid max-age/s-maxage still counts as "contains max-age" (storable, but stale).
 *  - private="f1, f2" does not prevent storage: remove the fields with
 *    cn_policy_strip_for_storage. no-cache="f1" does not either (see cn_policy_strip_for_reuse).
 *  - A response with no validator and zero lifetime is still storable (a max-stale or
 *    stale-if-error request may use it); see CN_POLICY_VALIDATOR to decide whether it is
 *    worth the space.
 *  - Having a validator (ETag/Last-Modified) is not by itself a reason to store: §3 does
 *    not list it, and every status where it could matter is heuristically cacheable anyway.
 */
cn_policy_store_t cn_policy_storable(const cn_http_req_t *req, const cn_cc_t *req_cc,
                                     unsigned status, const cn_headers_t *resp,
                                     const cn_cc_t *resp_cc);

/** The Cache-Status (RFC 9211) detail token of @r: "stored", "method", "head", "status",
 *  "partial-content", "not-modified", "request-no-store", "must-understand", "no-store",
 *  "private", "authorization", "vary-star", "not-cacheable". A static string. */
const char *cn_policy_store_reason(cn_policy_store_t r);

/**
 * Removes from @h, in place, what a shared cache must not store (§3.1, RFC 9110 §7.6.1):
 * Connection and every field it names, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding,
 * Upgrade, and the fields named by a qualified private directive of @resp_cc (§5.2.2.7).
 * Returns the number of field lines removed.
 */
size_t cn_policy_strip_for_storage(cn_headers_t *h, const cn_cc_t *resp_cc);

/** Removes from @h, in place, the fields named by a qualified no-cache directive of @resp_cc:
 *  call it on the headers of a stored response served without successful validation
 *  (§5.2.2.4). Returns the number of field lines removed. */
size_t cn_policy_strip_for_reuse(cn_headers_t *h, const cn_cc_t *resp_cc);

/* ---- Freshness and age (§4.2) ---- */

/* cn_policy_meta_t.flags:
 *  NO_CACHE         bare no-cache: validate before every reuse
 *  NO_CACHE_FIELDS  no-cache="...": cn_policy_strip_for_reuse when served unvalidated
 *  NO_STALE         must-revalidate, proxy-revalidate or s-maxage: never served stale, not
 *                   even on error
 *  HEURISTIC        the lifetime is heuristic (§4.2.2)
 *  VALIDATOR        has ETag or Last-Modified: can be revalidated
 *  IMMUTABLE        immutable (RFC 8246); informational */
#define CN_POLICY_NO_CACHE 0x01u
#define CN_POLICY_NO_CACHE_FIELDS 0x02u
#define CN_POLICY_NO_STALE 0x04u
#define CN_POLICY_HEURISTIC 0x08u
#define CN_POLICY_VALIDATOR 0x10u
#define CN_POLICY_IMMUTABLE 0x20u

/**
 * What the freshness decisions need about a stored response, computed once when it is
 * stored (or updated by a 304). Plain data with no pointers: store it with the object.
 */
typedef struct cn_policy_meta {
    int64_t request_time;           /* when the request that produced it was sent */
    int64_t response_time;          /* when the response was received */
    int64_t date_value;             /* Date, or response_time when absent or invalid */
    int64_t corrected_initial_age;  /* §4.2.3, clamped to [0, 2^31] */
    int64_t lifetime;               /* freshness lifetime, [0, 2^31] */
    int64_t stale_while_revalidate; /* seconds, -1 = none */
    int64_t stale_if_error;         /* seconds, -1 = none */
    uint32_t flags;                 /* CN_POLICY_* */
} cn_policy_meta_t;

/**
 * Freshness lifetime for a shared cache (§4.2.1), from @resp_cc (cn_policy_response_cc):
 *  1. s-maxage, else 2. max-age: the value; if the directive is invalid (malformed, or
 *     repeated with different values) the lifetime is 0 ("consider it stale", §4.2.1).
 *  3. Expires − Date, only when !resp_cc->targeted (RFC 9213 ignores Expires then): Date is
 *     @response_time when absent or invalid; an invalid Expires ("0", garbage) or several
 *     Expires lines that disagree give 0 (§5.3); a negative difference gives 0.
 *  4. Otherwise a heuristic (§4.2.2), only for a heuristically cacheable status or a public
 *     response, and only with a valid Last-Modified not after Date:
 *     min(conf->heuristic_max, (Date − Last-Modified) × conf->heuristic_fraction), and then
 *     *@heuristic is set to true. Otherwise (no Last-Modified, heuristics disabled) 0.
 * The result is in [0, 2^31]. @heuristic may be NULL.
 */
int64_t cn_policy_freshness_lifetime(const cn_policy_conf_t *conf, unsigned status,
                                     const cn_headers_t *resp, const cn_cc_t *resp_cc,
                                     int64_t response_time, bool *heuristic);

/**
 * §4.2.3 corrected_initial_age = max(apparent_age, corrected_age_value) where
 * apparent_age = max(0, response_time − date_value), response_delay = response_time −
 * request_time (negative clamps to 0), corrected_age_value = age_value + response_delay.
 * age_value is the first member of the Age field (§5.1: "Age: 7200, 0" is 7200, and with
 * several lines the first member of the first line counts); 0 when absent or when that member
 * is not delta-seconds. date_value is Date, or @response_time when absent or invalid.
 * Clamped to [0, 2^31].
 */
int64_t cn_policy_initial_age(const cn_headers_t *resp, int64_t request_time,
                              int64_t response_time);

/** Fills @m for a response with @status and headers @resp (the stored headers) received for
 *  a request sent at @request_time, arriving at @response_time. */
void cn_policy_meta_init(cn_policy_meta_t *m, const cn_policy_conf_t *conf, unsigned status,
                         const cn_headers_t *resp, const cn_cc_t *resp_cc, int64_t request_time,
                         int64_t response_time);

/** §4.2.3 current_age = corrected_initial_age + (now − response_time); a clock that went back
 *  (now < response_time) counts as no resident time. Never negative. */
int64_t cn_policy_current_age(const cn_policy_meta_t *m, int64_t now);

/** When the response stops being fresh: response_time + lifetime − corrected_initial_age. */
int64_t cn_policy_stale_at(const cn_policy_meta_t *m);

/** The last time the response may be served without contacting the origin, under any
 *  response directive: stale_at plus the larger of stale-while-revalidate and stale-if-error
 *  (neither applies with CN_POLICY_NO_STALE or CN_POLICY_NO_CACHE). A request's max-stale can
 *  extend this; useful as an eviction hint for objects without a validator. */
int64_t cn_policy_usable_until(const cn_policy_meta_t *m);

typedef enum cn_policy_fresh {
    CN_POLICY_FRESH = 0,      /* fresh: serve it */
    CN_POLICY_STALE_OK,       /* stale, within the request's max-stale: serve it as is */
    CN_POLICY_STALE_SWR,      /* stale, within stale-while-revalidate: serve it and revalidate
                                 in the background */
    CN_POLICY_REVALIDATE,     /* stale (or bare no-cache response): validate before use */
    CN_POLICY_REVALIDATE_REQ, /* usable, but the request's directives require validation */
} cn_policy_fresh_t;

/**
 * May the stored response described by @m be used for a request with directives @req_cc
 * (cn_cc_parse_request; NULL = none) at @now? In order:
 *  1. bare no-cache on the response → REVALIDATE (a qualified no-cache does not stop reuse).
 *  2. no-cache on the request (or Pragma: no-cache without Cache-Control) → REVALIDATE_REQ.
 *  3. request max-age=N and current_age > N → REVALIDATE_REQ (§5.2.1.1).
 *  4. request min-fresh=N and lifetime − current_age < N → REVALIDATE_REQ when still fresh,
 *     REVALIDATE when stale (min-fresh overrides max-stale and stale-while-revalidate).
 *  5. lifetime > current_age → FRESH.
 *  6. stale and CN_POLICY_NO_STALE → REVALIDATE, whatever max-stale says (§4.2.4).
 *  7. staleness (current_age − lifetime) <= stale-while-revalidate → STALE_SWR.
 *  8. request max-stale (bare, or staleness <= N) → STALE_OK.
 *  9. → REVALIDATE.
 * Request directives with no valid argument are ignored; a repeated one uses its most
 * restrictive value. only-if-cached is not handled here: with CN_CC_ONLY_IF_CACHED in
 * @req_cc, answer 504 for any result other than FRESH, STALE_OK or STALE_SWR (§5.2.1.7).
 */
cn_policy_fresh_t cn_policy_freshness_check(const cn_policy_meta_t *m, const cn_cc_t *req_cc,
                                            int64_t now);

/** The Cache-Status "fwd" token for @r: NULL for FRESH, STALE_OK and STALE_SWR (a hit),
 *  "stale" for REVALIDATE, "request" for REVALIDATE_REQ. */
const char *cn_policy_fresh_fwd(cn_policy_fresh_t r);

/**
 * RFC 5861 §4 stale-if-error: when revalidating or fetching failed (connection failure,
 * timeout, or cn_policy_status_is_error), may the stored response be served at @now? True
 * when it has neither CN_POLICY_NO_CACHE nor CN_POLICY_NO_STALE (§4.2.4 and §5.2.2.2 forbid
 * stale responses then, even on error) and its staleness (0 when still fresh) is at most the
 * response's stale-if-error or the request's stale-if-error (either grants it).
 */
bool cn_policy_stale_if_error(const cn_policy_meta_t *m, const cn_cc_t *req_cc, int64_t now);

/* ---- Validation (§4.3.1, §4.3.2) ---- */

/**
 * §4.3.1: makes the forwarded request @fwd a validation request for the stored response
 * @stored: removes the client's If-None-Match and If-Modified-Since (evaluate those with
 * cn_policy_conditional against the result), then adds If-None-Match with the stored ETag
 * and If-Modified-Since with the stored Last-Modified, when present. Returns false (and
 * changes nothing) when @stored has neither validator: fetch unconditionally then. The
 * values are borrowed from @stored, which must outlive @fwd's use (hold the object's
 * reference until the request is sent).
 */
bool cn_policy_add_validators(cn_headers_t *fwd, const cn_headers_t *stored);

/**
 * §4.3.2: evaluates a client's conditional request against the stored response @stored that
 * the cache is about to serve (fresh, allowed stale, or just validated), with
 * cn_cond_evaluate. Only If-None-Match and If-Modified-Since are evaluated, only for GET
 * and HEAD (If-Match and If-Unmodified-Since are for the origin, If-Range is
 * cn_cond_if_range's); If-None-Match takes precedence. Without a stored Last-Modified,
 * If-Modified-Since compares with the stored Date, or else @response_time. Returns
 * CN_COND_NOT_MODIFIED (answer 304 from the cache) or CN_COND_PROCEED (answer in full). A
 * request with more than 16 such field lines is answered in full.
 */
cn_cond_result_t cn_policy_conditional(cairn_iov_t method, const cn_headers_t *req,
                                       const cn_headers_t *stored, int64_t response_time);

/* ---- Updating stored responses (§4.3.4, §4.3.5) ---- */

/**
 * §4.3.4 selection for one stored response: may the 304 with headers @r304 update the stored
 * response with headers @stored? When the 304 has a strong ETag: only if the stored ETag
 * strongly matches it. Else when it has a weak ETag and/or Last-Modified: only if each of
 * them matches (weak comparison; equal dates). Else (no validator at all): only if the
 * stored response has no validator either. When false, do not update; fetch again.
 */
bool cn_policy_304_matches(const cn_headers_t *stored, const cn_headers_t *r304);

/**
 * §4.3.4 freshening: writes to @out (initialised on @a) the stored headers updated with
 * those of the 304 (or 200 HEAD) @update, every string copied into @a:
 *  - every field of @update replaces all stored lines of the same name (at the position of
 *    the first one; new names are appended), except the ones never taken from an update:
 *    Content-Length, Content-Range, Content-Encoding (the stored body's coding must not
 *    change), Transfer-Encoding, Connection and the fields it names, Keep-Alive,
 *    Proxy-Connection, TE, Upgrade, and the fields named by private="..." in @update_cc
 *    (NULL = none), which are also removed from the stored ones;
 *  - Age describes one exchange, not the representation: the stored Age is dropped and only
 *    the update's Age (if any) is kept;
 *  - when @update has no Date, Date is set to @response_time (RFC 9110 §6.6.1).
 * Recompute the metadata afterwards with cn_policy_meta_init(out, the validation's request
 * and response times), and check cn_policy_storable on the result: an update can make the
 * response private or no-store. CAIRN_ENOMEM when @a is over its cap (@out untouched).
 */
CN_MUST_CHECK cairn_err_t cn_policy_update_headers(cn_arena_t *a, const cn_headers_t *stored,
                                                   const cn_headers_t *update,
                                                   const cn_cc_t *update_cc, int64_t response_time,
                                                   cn_headers_t *out);

typedef enum cn_policy_head {
    CN_POLICY_HEAD_IGNORE = 0, /* not a 200: nothing to do */
    CN_POLICY_HEAD_UPDATE,     /* update the stored GET response (cn_policy_update_headers) */
    CN_POLICY_HEAD_INVALIDATE, /* the representation changed: drop the stored response */
} cn_policy_head_t;

/**
 * §4.3.5: a HEAD response with @status and headers @head was received for a URI with a
 * stored GET response @stored whose body is @stored_length bytes (-1 = unknown: the stored
 * Content-Length field is used instead). UPDATE when every validator the HEAD carries (ETag,
 * Last-Modified) has an identical value in @stored and its Content-Length (if any) equals the
 * stored length; INVALIDATE otherwise; IGNORE when @status is not 200.
 */
cn_policy_head_t cn_policy_head_update(unsigned status, const cn_headers_t *stored,
                                       int64_t stored_length, const cn_headers_t *head);

/* ---- Invalidation (§4.4) ---- */

/** RFC 9110 §9.2.1: GET, HEAD, OPTIONS, TRACE (case-sensitive). Unknown methods are unsafe. */
bool cn_policy_method_is_safe(cairn_iov_t method);

/** §4.4: must the target URI be invalidated? True for an unsafe method (including unknown
 *  ones) answered with a non-error status (2xx or 3xx). */
bool cn_policy_invalidates(cairn_iov_t method, unsigned status);

/**
 * §4.4, for when cn_policy_invalidates is true: the URIs in the Location and Content-Location
 * fields of @resp that have the same origin as @req (scheme, host and port, with the
 * scheme's default port; case-insensitive; a URI with userinfo never matches), as
 * origin-form targets "path[?query]" in @a: references are resolved against req->path (RFC
 * 3986 §5.2, dot segments removed, fragment dropped, no percent-decoding). A field with
 * several lines, or a value that is not a URI reference, is skipped. Writes up to 2 targets
 * (duplicates merged) to @out and their count to *@n. CAIRN_ENOMEM when @a is over its cap.
 */
CN_MUST_CHECK cairn_err_t cn_policy_invalidation_targets(cn_arena_t *a, const cn_http_req_t *req,
                                                         const cn_headers_t *resp,
                                                         cairn_iov_t out[2], size_t *n);

/* ---- Vary (§4.1) ---- */

/**
 * The secondary cache key of request @req for the Vary field(s) of response @resp, in @a.
 * Field names are lowercased, sorted and deduplicated; for each one an entry "name:value"
 * when @req has the field, or "name" alone when it has not (absent differs from empty,
 * "name:"); entries are joined with "\n". For Accept-Encoding and Accept-Language the value
 * is the list of members of all the request's lines, each lowercased with its whitespace
 * removed (a q-value stays part of its member and is not interpreted), empty members dropped,
 * sorted and joined with ",": "gzip, br", "br,GZIP" and the two lines "BR " and "gzip" give
 * the same key (a value holding a '"', which their grammar does not allow, is compared as
 * other fields are). For other fields the value joins the request's field lines with ",",
 * and outside quoted strings drops whitespace around commas and at both ends and collapses
 * other whitespace runs to one SP. Control bytes and "%" are written %XX. No Vary gives the
 * empty key. Two requests select the same stored response iff their keys are equal. *@star
 * is true when Vary contains "*" or a member that is not a field name: such a response
 * matches no request (*@key is then empty). CAIRN_ENOMEM when @a is over its cap (outputs
 * untouched).
 */
CN_MUST_CHECK cairn_err_t cn_policy_vary_key(cn_arena_t *a, const cn_headers_t *resp,
                                             const cn_headers_t *req, cairn_iov_t *key, bool *star);

#endif
