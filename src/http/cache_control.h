/* SPDX-License-Identifier: MIT */
/* Cache-Control (RFC 9111 §5.2) and targeted cache-control fields such as CDN-Cache-Control
 * (RFC 9213) parsed into one flat struct of request and response directives. Pure functions:
 * no allocation, no clock. Field-name arguments point into the header values they came from. */
#ifndef CN_HTTP_CACHE_CONTROL_H
#define CN_HTTP_CACHE_CONTROL_H

#include "core/types.h"

/** RFC 9111 §1.2.2: a delta-seconds value too large to represent is taken as 2^31. */
#define CN_CC_DELTA_MAX ((int64_t)2147483648LL)
/** The value of a bare max-stale (any staleness is acceptable). */
#define CN_CC_UNLIMITED INT64_MAX
/** Field names kept per qualified no-cache / private directive; more degrade to the bare,
 *  whole-response form of the directive (the restrictive reading). */
#define CN_CC_FIELDS_MAX 16

/* Directive bits of cn_cc_t.flags (and .invalid). A bit is set when the directive occurred
 * at all, in any form, valid or not. */
#define CN_CC_NO_CACHE (1u << 0)          /* no-cache for the whole message (bare) */
#define CN_CC_NO_CACHE_FIELDS (1u << 1)   /* no-cache="f1, f2": names in no_cache_fields */
#define CN_CC_NO_STORE (1u << 2)          /* no-store */
#define CN_CC_MAX_AGE (1u << 3)           /* max-age=N */
#define CN_CC_S_MAXAGE (1u << 4)          /* s-maxage=N */
#define CN_CC_MAX_STALE (1u << 5)         /* max-stale[=N] (request) */
#define CN_CC_MIN_FRESH (1u << 6)         /* min-fresh=N (request) */
#define CN_CC_ONLY_IF_CACHED (1u << 7)    /* only-if-cached (request) */
#define CN_CC_NO_TRANSFORM (1u << 8)      /* no-transform */
#define CN_CC_PRIVATE (1u << 9)           /* private for the whole response (bare) */
#define CN_CC_PRIVATE_FIELDS (1u << 10)   /* private="f1, f2": names in private_fields */
#define CN_CC_PUBLIC (1u << 11)           /* public */
#define CN_CC_MUST_REVALIDATE (1u << 12)  /* must-revalidate */
#define CN_CC_PROXY_REVALIDATE (1u << 13) /* proxy-revalidate */
#define CN_CC_MUST_UNDERSTAND (1u << 14)  /* must-understand */
#define CN_CC_IMMUTABLE (1u << 15)        /* immutable (RFC 8246) */
#define CN_CC_SWR (1u << 16)              /* stale-while-revalidate=N (RFC 5861) */
#define CN_CC_SIE (1u << 17)              /* stale-if-error=N (RFC 5861, request or response) */
#define CN_CC_PRAGMA_NO_CACHE (1u << 18)  /* request only: no-cache came from Pragma (§5.4) */

/** A list of field names given as the argument of no-cache or private. */
typedef struct cn_cc_fields {
    cairn_iov_t names[CN_CC_FIELDS_MAX]; /* borrowed from the parsed header values */
    size_t n;
} cn_cc_fields_t;

/**
 * Parsed directives. Delta fields hold seconds in [0, CN_CC_DELTA_MAX] (max_stale may also
 * be CN_CC_UNLIMITED), or -1 when the directive is absent or no occurrence had a valid
 * argument. When a directive occurs several times with different valid arguments, the most
 * restrictive is kept (the smallest; the largest for min-fresh) and its .invalid bit is set,
 * as RFC 9111 §4.2.1 asks ("the most restrictive directive should be honored"); callers that
 * prefer "consider it stale" test .invalid (cn_policy does so for max-age and s-maxage).
 */
typedef struct cn_cc {
    uint32_t flags;   /* CN_CC_* directives that occurred */
    uint32_t invalid; /* CN_CC_* directives with a malformed, missing, or conflicting argument */
    int64_t max_age;
    int64_t s_maxage;
    int64_t max_stale; /* CN_CC_UNLIMITED for a bare max-stale */
    int64_t min_fresh;
    int64_t stale_while_revalidate;
    int64_t stale_if_error;
    cn_cc_fields_t no_cache_fields; /* meaningful with CN_CC_NO_CACHE_FIELDS */
    cn_cc_fields_t private_fields;  /* meaningful with CN_CC_PRIVATE_FIELDS */
    bool targeted; /* parsed from a targeted field (RFC 9213): Expires no longer applies */
} cn_cc_t;

/** Empties @cc: no directives, every delta -1. */
void cn_cc_init(cn_cc_t *cc);

/**
 * Adds the directives of one Cache-Control field line @value to @cc (RFC 9111 §5.2 syntax:
 * #( token [ "=" ( token / quoted-string ) ] )). Directive names are case-insensitive; empty
 * list elements are skipped; unknown directives are ignored; commas inside quoted strings do
 * not split. Both argument forms are accepted for every directive (max-age="60" is 60), and
 * OWS around "=" is tolerated. Per directive:
 *  - no-store, public, must-revalidate, ... (no argument defined): set even when an argument
 *    or trailing garbage is present (the .invalid bit records it).
 *  - max-age, s-maxage, min-fresh, stale-while-revalidate, stale-if-error: 1*DIGIT; larger
 *    than 2^31 clamps to 2^31; a missing, signed, fractional or otherwise malformed argument
 *    sets the .invalid bit and leaves the value untouched.
 *  - max-stale: bare means CN_CC_UNLIMITED; otherwise as above.
 *  - no-cache, private: bare sets CN_CC_NO_CACHE / CN_CC_PRIVATE. A token argument is one
 *    field name, a quoted-string a comma list of field names (CN_CC_*_FIELDS). An argument
 *    that is malformed, empty, holds a name that is not a token, or exceeds CN_CC_FIELDS_MAX
 *    distinct names is taken as the bare form (the restrictive reading) and marked .invalid.
 * @value is borrowed; field names in @cc point into it. Any thread.
 */
void cn_cc_add_value(cn_cc_t *cc, cairn_iov_t value);

/** cn_cc_init, then cn_cc_add_value for every field line of @h named @name, in order. */
void cn_cc_parse(cn_cc_t *cc, const cn_headers_t *h, cairn_iov_t name);

/**
 * Parses the request directives of @req: its Cache-Control field lines, or, only when the
 * request has no Cache-Control field line at all, Pragma (RFC 9111 §5.4): a "no-cache"
 * element of Pragma (case-insensitive) sets CN_CC_NO_CACHE | CN_CC_PRAGMA_NO_CACHE.
 */
void cn_cc_parse_request(cn_cc_t *cc, const cn_headers_t *req);

/**
 * Parses the targeted cache-control field @name of @h (RFC 9213, e.g. CDN-Cache-Control) as
 * a Structured Field Dictionary (RFC 8941 §4.2.2, with the RFC 9651 Date and Display String
 * items): keys are lowercase and exact, a bare key is Boolean true, duplicate keys keep the
 * last member, parameters are ignored. Values must have the types RFC 9213 §2.1 infers:
 * Integer for delta directives (negative → .invalid), Boolean true or a String comma list for
 * no-cache/private (anything else → bare and .invalid); a directive whose value is ?0 is
 * absent. Several field lines are parsed as one dictionary, in order; a member spanning two
 * lines, or an empty line, is a parse error (RFC 8941 would join the lines first).
 * Returns true and writes *@cc (with cc->targeted set) when the field is present, parses, and
 * has at least one member. Otherwise returns false and leaves *@cc untouched: the caller then
 * falls back to Cache-Control, as RFC 9213 §2.1 requires.
 */
bool cn_cc_parse_targeted(cn_cc_t *cc, const cn_headers_t *h, cairn_iov_t name);

/** Like cn_cc_parse_targeted, for one already combined field value @value. */
bool cn_cc_parse_targeted_value(cn_cc_t *cc, cairn_iov_t value);

/** delta-seconds (RFC 9111 §1.2.2): 1*DIGIT, no sign or space; a value over 2^31 is 2^31.
 *  False (writing nothing) when @s is empty or has a non-digit. */
bool cn_cc_parse_delta(cairn_iov_t s, int64_t *out);

/** True when @name (case-insensitive) is in @f. */
bool cn_cc_fields_has(const cn_cc_fields_t *f, cairn_iov_t name);

#endif
