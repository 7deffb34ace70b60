/* SPDX-License-Identifier: MIT */
/* Range requests (RFC 9110 §14): parsing a Range field value against a representation length,
 * Content-Range formatting and the multipart/byteranges body layout. Pure functions over
 * plain values, used by the files route action and by the cache when it answers ranges from
 * a stored object. Nothing here reads or copies the representation itself. */
#ifndef CN_HTTP_RANGE_H
#define CN_HTTP_RANGE_H

#include "core/arena.h"
#include "core/compiler.h"
#include "core/types.h"

/** A sensible default for the @max_ranges argument of cn_range_parse. */
#define CN_RANGE_MAX_DEFAULT 16
/** Longest Content-Range value cn_range_format writes, NUL included. */
#define CN_RANGE_CONTENT_RANGE_MAX 72
/** Longest boundary cn_range_boundary writes, NUL included. */
#define CN_RANGE_BOUNDARY_MAX 40

/** An inclusive byte range [first, last] of a representation; never empty. */
typedef struct cn_byte_range {
    uint64_t first;
    uint64_t last;
} cn_byte_range_t;

typedef enum cn_range_result {
    /* No usable Range: the field is absent, uses another unit, is syntactically invalid, has
     * more than @max_ranges specs, or asks for all of an empty representation. Serve the full
     * representation (200) as if there were no Range field (RFC 9110 §14.2). */
    CN_RANGE_NONE = 0,
    /* The ranges in @out are satisfiable: serve 206. */
    CN_RANGE_SATISFIABLE,
    /* Valid syntax but no range overlaps the representation: serve 416 with
     * "Content-Range: bytes (star)/length" (see cn_range_format_unsatisfied). */
    CN_RANGE_UNSATISFIABLE,
} cn_range_result_t;

/**
 * Parses the Range field value @value ("bytes=0-99, -500") for a representation of @length
 * bytes. @value may be surrounding-whitespace padded; an empty iov means "no Range".
 *
 * Grammar: the unit "bytes" is matched case-insensitively and must be followed directly by
 * "="; specs are "first-last", "first-" or "-suffix", separated by commas with optional
 * whitespace; empty list elements are skipped. A spec with last < first, a stray character,
 * a missing "=" or no spec at all make the whole field invalid (→ CN_RANGE_NONE). Numbers too
 * large for uint64_t saturate, which only ever makes a range bigger or unsatisfiable.
 *
 * Policy: a field with more than @max_ranges specs (satisfiable or not) is ignored
 * (→ CN_RANGE_NONE), which bounds the work and the response size whatever the client sends.
 * Otherwise each spec is clamped to the representation, the unsatisfiable ones are dropped,
 * and the rest are sorted and COALESCED: overlapping and adjacent ranges are merged (RFC 9110
 * §14.2 allows this "regardless of the order"), so the result is ascending, disjoint and sends
 * each byte at most once. A single resulting range means a plain 206; several mean
 * multipart/byteranges (cn_multipart_build).
 *
 * For @length == 0 no int range is satisfiable; a suffix range "-N" with N > 0 asks for the
 * whole (empty) representation, which is served as 200, so the field then yields
 * CN_RANGE_NONE, and CN_RANGE_UNSATISFIABLE otherwise.
 *
 * @out has room for @max_ranges entries (max_ranges ≥ 1; 0 makes every field CN_RANGE_NONE).
 * On CN_RANGE_SATISFIABLE it holds *n_out ≥ 1 ranges; for the other results @n_out is not
 * written and the contents of @out are unspecified (it is used as scratch space). Any thread.
 */
cn_range_result_t cn_range_parse(cairn_iov_t value, uint64_t length, cn_byte_range_t *out,
                                 size_t max_ranges, size_t *n_out);

/**
 * Writes the Content-Range field value "bytes first-last/length" for @r into @out (NUL
 * terminated) and returns its length. Any thread.
 */
size_t cn_range_format(char out[CN_RANGE_CONTENT_RANGE_MAX], cn_byte_range_t r, uint64_t length);

/** Writes the 416 Content-Range value "bytes (star)/length"; returns its length. Any thread. */
size_t cn_range_format_unsatisfied(char out[CN_RANGE_CONTENT_RANGE_MAX], uint64_t length);

/**
 * Writes a multipart boundary derived from @seed (e.g. a random number or a per-worker
 * counter mixed with the request id) into @out and returns its length. The boundary is not
 * checked against the content, so the seed should be unpredictable to the content's author.
 */
size_t cn_range_boundary(char out[CN_RANGE_BOUNDARY_MAX], uint64_t seed);

/** One part of a multipart/byteranges body: the part head, then the bytes of @range. */
typedef struct cn_multipart_part {
    /* "--B\r\nContent-Type: T\r\nContent-Range: bytes a-b/len\r\n\r\n", preceded by CRLF for
     * every part but the first. Lives in the arena given to cn_multipart_build. */
    cairn_iov_t head;
    cn_byte_range_t range; /* representation bytes to send right after @head */
} cn_multipart_part_t;

/**
 * The layout of a multipart/byteranges body (RFC 9110 §14.6). The caller streams, for each
 * part, parts[i].head from memory and then parts[i].range from the representation (a file,
 * a cached object) by reference, and finally @tail. Nothing of the representation is copied.
 */
typedef struct cn_multipart {
    cairn_iov_t content_type;   /* "multipart/byteranges; boundary=B" for the response */
    cn_multipart_part_t *parts; /* @n parts, in the order given */
    size_t n;
    cairn_iov_t tail;     /* "\r\n--B--\r\n" */
    uint64_t body_length; /* Content-Length: all heads + all ranges + tail */
} cn_multipart_t;

/**
 * Builds the layout for @n ranges (n ≥ 1, each within @length) of a representation of
 * @length bytes with type @content_type (an empty iov omits the per-part Content-Type line)
 * using @boundary (1-70 characters from RFC 2046's bchars, e.g. from cn_range_boundary).
 * Every string in @mp is allocated in @arena and lives as long as it. Returns CAIRN_OK, or
 * CAIRN_ENOMEM when the arena cap is hit, or CAIRN_EINVAL for bad arguments; @mp is written
 * only on success. The loop thread owning @arena.
 */
CN_MUST_CHECK cairn_err_t cn_multipart_build(cn_multipart_t *mp, cn_arena_t *arena,
                                             const cn_byte_range_t *ranges, size_t n,
                                             cairn_iov_t content_type, uint64_t length,
                                             cairn_iov_t boundary);

#endif
