/* SPDX-License-Identifier: MIT */
/* Strong ETags made from file metadata, for the files route action (and any cache object that
 * is backed by a file). nginx-compatible in the common case. */
#ifndef CN_HTTP_ETAG_H
#define CN_HTTP_ETAG_H

#include "core/types.h"

/** Room for the longest tag cn_etag_make writes, quotes and NUL included. */
#define CN_ETAG_MAX 72

/**
 * Writes a strong entity-tag (with its double quotes) into @out and returns its length.
 * The form is nginx's "<hex mtime seconds>-<hex size>" when @mtime_ns is a whole second and
 * @ino is 0. Otherwise the sub-second part is appended ("-<hex nsec>"), and then the inode
 * ("-<hex ino>") when @ino is not 0, so two writes within one second, or a file replaced by
 * rename with its mtime kept, still change the tag. Pass @ino = 0 when several servers share
 * the content and must agree on tags. @mtime_ns before 1970 is clamped to 0. Any thread.
 */
size_t cn_etag_make(char out[CN_ETAG_MAX], uint64_t size, int64_t mtime_ns, uint64_t ino);

/**
 * Parses one entity-tag (RFC 9110 §8.8.3: [ "W/" ] DQUOTE *etagc DQUOTE) at the start of @s.
 * On success sets *@opaque to the quoted part (quotes included), *@weak, and *@used to the
 * bytes consumed, and returns true; returns false (writing nothing) on a syntax error.
 * "W/" is case-sensitive. @s is borrowed; *@opaque points into it. Any thread.
 */
bool cn_etag_parse(cairn_iov_t s, cairn_iov_t *opaque, bool *weak, size_t *used);

/**
 * Strong comparison (RFC 9110 §8.8.3.2): both tags valid, neither weak, and the opaque tags
 * identical octet by octet. A malformed tag never matches. Any thread.
 */
bool cn_etag_strong_eq(cairn_iov_t a, cairn_iov_t b);

/** Weak comparison: both tags valid and the opaque tags identical, weakness ignored. */
bool cn_etag_weak_eq(cairn_iov_t a, cairn_iov_t b);

#endif
