/* SPDX-License-Identifier: MIT */
/* Request path normalisation (RFC 3986 §6.2.2): one canonical spelling of a path, so that
 * routing, the cache key, hooks, the access log and the origin all see the same resource.
 * A pure function over plain values; the engine applies it to every request before anything
 * looks at the path (src/engine/session.c). The query is never part of its input. */
#ifndef CN_HTTP_PATH_H
#define CN_HTTP_PATH_H

#include "core/types.h"

/** What to do with an encoded slash (%2F) or a backslash ("\" or %5C) in a path. The values
 *  are those of the server.escaped_slashes config key (keep, reject, decode). */
typedef enum cn_path_slashes {
    CN_PATH_SLASHES_KEEP = 0, /* leave them as they are (only the hex digits upper-cased) */
    CN_PATH_SLASHES_REJECT,   /* refuse the path (CN_PATH_ERR_SLASH) */
    CN_PATH_SLASHES_DECODE,   /* turn them into "/" before dot-segments and merging */
} cn_path_slashes_t;

typedef struct cn_path_opts {
    bool merge_slashes; /* "//" → "/" (server.merge_slashes, on by default) */
    cn_path_slashes_t escaped_slashes;
} cn_path_opts_t;

/** The defaults of the config keys: merge slashes, keep escaped slashes. */
#define CN_PATH_OPTS_DEFAULT ((cn_path_opts_t){.merge_slashes = true})

typedef enum cn_path_result {
    CN_PATH_OK = 0,
    CN_PATH_ERR_NOT_ABSOLUTE, /* empty, or does not start with "/" */
    CN_PATH_ERR_ESCAPE,       /* "%" not followed by two hex digits */
    CN_PATH_ERR_ABOVE_ROOT,   /* a ".." segment would climb above "/" */
    CN_PATH_ERR_SLASH,        /* %2F, "\" or %5C with CN_PATH_SLASHES_REJECT */
} cn_path_result_t;

/**
 * Normalises the absolute path @in into @out, which has room for @in.len bytes (the result
 * is never longer than its input), and stores its length in *out_len. @opts NULL means
 * CN_PATH_OPTS_DEFAULT. In this order of effect:
 *
 *  - percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded; the hex
 *    digits of every other escape are upper-cased ("%7e" → "~", "%c3" → "%C3");
 *  - with CN_PATH_SLASHES_DECODE, %2F, %5C and "\" become segment separators; with REJECT
 *    they refuse the path; with KEEP they stay (%2f → %2F) and are ordinary characters;
 *  - dot-segments are removed as in RFC 3986 §5.2.4 (after decoding, so "%2e%2E" is ".."),
 *    except that a ".." with no segment left to remove refuses the path instead of being
 *    dropped ("/../x", "/a/../../x");
 *  - with merge_slashes, empty segments are dropped ("//a///b" → "/a/b"), a trailing "/"
 *    is kept.
 *
 * Other bytes are copied unchanged. On success the result starts with "/", holds no "." or
 * ".." segment, and normalising it again gives it back unchanged. On failure *out_len is
 * not written and @out holds garbage. Any thread.
 */
cn_path_result_t cn_path_normalize(cairn_iov_t in, char *out, size_t *out_len,
                                   const cn_path_opts_t *opts);

/** A short reason for a failure ("path climbs above the root"), for a 400 and the log. */
const char *cn_path_strerror(cn_path_result_t r);

#endif
