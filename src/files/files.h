/* SPDX-License-Identifier: MIT */
/* The "files" route action, planning half: mapping a request path onto a document root
 * (cn_files_resolve) and deciding the response for an opened file (cn_files_plan). The
 * engine executes the plan (writes headers, streams the file by reference); nothing here
 * touches a socket. cn_files_resolve does blocking filesystem calls, so the engine runs it
 * on the thread pool; cn_files_plan is pure. */
#ifndef CN_PROXY_FILES_H
#define CN_PROXY_FILES_H

#include <sys/stat.h>
#include <time.h>

#include "core/arena.h"
#include "core/compiler.h"
#include "core/types.h"
#include "http/range.h"

/** Result of cn_files_resolve. */
typedef struct cn_files_target {
    /* 200: @fd is an open regular file.
     * 301: the path named a directory without a trailing slash; redirect to @location.
     * 403: the file exists inside the root but cannot be opened (permissions).
     * 404: missing, not a regular file, a directory without index, or refused: malformed or
     *      NUL percent-escapes, backslashes, ".." segments, a path not starting with "/",
     *      anything that resolves (through symlinks) outside the root.
     * 500: resource exhaustion (EMFILE, ENOMEM, arena cap) or an I/O error. */
    int status;
    /* 200 only: O_RDONLY|O_CLOEXEC descriptor; -1 otherwise. OWNED BY THE CALLER, who must
     * close() it (also when the plan ends up sending no body). */
    int fd;
    struct stat st; /* 200 only: fstat() of @fd */
    /* 200 only: the filesystem path that was opened (root realpath + relative path, with the
     * index appended for a directory), NUL-terminated, in the arena; use it for
     * cn_mime_type_for_path and logs. */
    cairn_iov_t path;
    /* 301 only: Location value, an absolute path: the normalised request path re-encoded,
     * "/" appended, then the query (if @path had one). NUL-terminated, in the arena. If the
     * route strips a URL prefix before calling, the caller puts it back in front. */
    cairn_iov_t location;
} cn_files_target_t;

/**
 * Maps the request path @path onto the directory @root and opens the result.
 *
 * @path is the request-target path, still percent-encoded, starting with "/"; it may carry a
 * "?query", which is ignored except for the redirect. Decoding and normalisation:
 *  - every %XX is decoded exactly once (so "%252e" is the literal name "%2e", never ".");
 *    a malformed escape or a decoded NUL refuses the request;
 *  - an encoded slash (%2F) is decoded like any other byte and then acts as a path
 *    separator, as in nginx; the dot-segment check below runs after decoding, so "%2f.." and
 *    "%2e%2e" are caught exactly like "/..";
 *  - empty and "." segments are dropped; any ".." segment refuses the request, even one that
 *    would stay inside the root ("/a/../b"), so no form of traversal is attempted at all;
 *  - a backslash, raw or decoded, refuses the request (it is never a separator here, but
 *    refusing it keeps behaviour identical to servers that treat it as one).
 * The result is opened below realpath(@root) with O_NONBLOCK (so a FIFO cannot block), and
 * realpath() of the opened path must stay under realpath(@root) and name the same inode as
 * the descriptor: symlinks within the root are followed, symlinks leaving it give 404, and a
 * symlink swapped during the check cannot smuggle another file in. Only regular files are
 * served. A directory is served through @index (a file name; NULL or "" = none → 404) when
 * the path ends in "/", and is otherwise a 301 to the slash form (like nginx).
 *
 * @root is NUL-terminated and borrowed. @arena receives @out->path / @out->location. @out is
 * always fully written; the return value equals @out->status. Blocking; any thread, but the
 * arena must belong to the calling thread for the duration of the call.
 */
int cn_files_resolve(const char *root, cairn_iov_t path, const char *index, cn_arena_t *arena,
                     cn_files_target_t *out);

/** Inputs of cn_files_plan; all borrowed for the duration of the call. */
typedef struct cn_files_plan_in {
    cairn_iov_t method;       /* request method, case-sensitive */
    const cn_headers_t *req;  /* request headers (Range, If-*) */
    const struct stat *st;    /* the file (cn_files_target_t.st) */
    cairn_iov_t content_type; /* e.g. cn_mime_type_for_path(target.path) */
    time_t now;               /* current time; decides If-Range date strength */
    size_t max_ranges;        /* Range specs accepted; 0 = CN_RANGE_MAX_DEFAULT */
    uint64_t boundary_seed;   /* multipart boundary seed; use a random per-request value */
    bool etag_inode;          /* put the inode in the ETag (see cn_etag_make) */
} cn_files_plan_in_t;

typedef enum cn_files_body {
    CN_FILES_BODY_NONE = 0,  /* no body from the file (HEAD, 304, 405, 412, 416, empty file) */
    CN_FILES_BODY_RANGE,     /* send the file bytes [offset, offset + length) */
    CN_FILES_BODY_MULTIPART, /* stream multipart: per part head, file range; then tail */
} cn_files_body_t;

/** The response decided by cn_files_plan. */
typedef struct cn_files_plan {
    int status;           /* 200, 206, 304, 405, 412 or 416 */
    cn_files_body_t body; /* what to send after the header block */
    uint64_t offset;      /* CN_FILES_BODY_RANGE */
    uint64_t length;      /* CN_FILES_BODY_RANGE */
    /* CN_FILES_BODY_MULTIPART: strings live in the arena given to cn_files_plan. */
    cn_multipart_t multipart;
    /* 200/206: the Content-Length written (for HEAD, what GET would send); 0 otherwise. */
    uint64_t content_length;
} cn_files_plan_t;

/**
 * Decides the response to a request for the regular file described by @in->st and appends
 * its header fields to @resp (copied into @resp's arena):
 *  - methods other than GET and HEAD: 405 with "Allow: GET, HEAD";
 *  - preconditions (cn_cond_evaluate with the file's ETag and mtime): 412 (no fields), or
 *    304 with ETag and Last-Modified;
 *  - GET with a Range that applies (single Range field, cn_cond_if_range true): 206 with
 *    Content-Range (one range) or a multipart/byteranges Content-Type (several), or 416 with
 *    "Content-Range: bytes (star)/size"; ranges are parsed and coalesced by cn_range_parse;
 *  - otherwise 200.
 * 200 and 206 carry Content-Type (the part type for multipart), Content-Length, ETag,
 * Last-Modified and Accept-Ranges: bytes; 416 carries Accept-Ranges too. 405, 412 and 416 have
 * no body from the plan: the engine sends its usual error body and sets its length. HEAD gets
 * the fields GET would get (a Range is ignored for HEAD, RFC 9110 §14.2) and no body.
 *
 * @arena holds the multipart layout (it may be @resp's arena). Returns CAIRN_OK, or
 * CAIRN_ENOMEM when @arena's cap is hit; @out is written only on success (fields may already
 * have been appended to @resp). Pure; any thread owning @arena and @resp.
 */
CN_MUST_CHECK cairn_err_t cn_files_plan(const cn_files_plan_in_t *in, cn_arena_t *arena,
                                        cn_headers_t *resp, cn_files_plan_t *out);

#endif
