/* SPDX-License-Identifier: MIT */
/* cairn_req_t: the request inside hooks. Every returned cairn_iov_t is valid until the request
 * ends unless stated otherwise. Loop thread only, except where noted. */
#ifndef CAIRN_REQUEST_H
#define CAIRN_REQUEST_H

#include <stdint.h>

#include <cairn/hooks.h>

CAIRN_API uint64_t cairn_req_id(const cairn_req_t *req);
CAIRN_API cairn_iov_t cairn_req_method(const cairn_req_t *req);
/** Path without the query (after any rewrite by cairn_req_set_path). */
CAIRN_API cairn_iov_t cairn_req_path(const cairn_req_t *req);
/** Query without '?'; empty when none. */
CAIRN_API cairn_iov_t cairn_req_query(const cairn_req_t *req);
CAIRN_API cairn_iov_t cairn_req_host(const cairn_req_t *req);
/** Client address text ("127.0.0.1"). */
CAIRN_API cairn_iov_t cairn_req_client(const cairn_req_t *req);
/** The request's own headers (what the client sent). */
CAIRN_API cairn_headers_t *cairn_req_headers(cairn_req_t *req);

/** The TLS facts of the request's connection; all fields empty ("" / false) on a plain one. */
typedef struct cairn_tls_info {
    bool tls;
    const char *version; /* "TLSv1.3" */
    const char *cipher;
    const char *sni; /* the server name the client sent */
    bool resumed;
    bool client_verified;        /* a client certificate was presented and verified (mTLS) */
    char client_subject[512];    /* RFC 2253 */
    char client_san[512];        /* "DNS:a.example, URI:spiffe://..." */
    char client_fingerprint[65]; /* SHA-256, lower-case hex */
    char client_serial[80];      /* hex */
} cairn_tls_info_t;
/** Fills @out; false (and an empty @out) on a plain connection or without a client. */
CAIRN_API bool cairn_req_tls(const cairn_req_t *req, cairn_tls_info_t *out);
/** Replaces the path sent upstream (copied). */
CAIRN_API void cairn_req_set_path(cairn_req_t *req, cairn_iov_t path);
/** Replaces the query sent upstream (copied; empty = none). */
CAIRN_API void cairn_req_set_query(cairn_req_t *req, cairn_iov_t query);
/** Sends the request to the configured upstream @name instead of the route's. Returns
 *  CAIRN_ENOTFOUND when no such upstream exists. */
CAIRN_API cairn_err_t cairn_req_set_upstream(cairn_req_t *req, const char *name);
/** Allows (@allow true) or refuses stale cached content for this request: stale-while-
 *  revalidate, max-stale and stale-if-error answers. Call from request_filter. By default
 *  the RFC 9111 / RFC 5861 rules decide. */
CAIRN_API void cairn_req_allow_stale(cairn_req_t *req, bool allow);
/** Request-lifetime memory, zeroed; NULL when the request's memory cap is reached. */
CAIRN_API void *cairn_req_alloc(cairn_req_t *req, size_t n);
/** Prepares a complete response (headers may be added with cairn_resp_* on
 *  cairn_req_response()); return CAIRN_RESPONDED from the hook to send it. @body is copied. */
CAIRN_API void cairn_req_respond(cairn_req_t *req, unsigned status, cairn_iov_t content_type,
                                 cairn_iov_t body);
/** The response being built by cairn_req_respond (to add headers). */
CAIRN_API cairn_resp_t *cairn_req_response(cairn_req_t *req);
/** Sets the status a following CAIRN_FAIL produces (default 500). */
CAIRN_API void cairn_req_fail(cairn_req_t *req, unsigned status);
/** Resumes a request whose request_filter returned CAIRN_PENDING, with that hook's final
 *  action. Calling it for a request whose client went away is a defined no-op as long as it
 *  happens before ctx_dispose returned. Loop thread only. */
CAIRN_API void cairn_req_resume(cairn_req_t *req, cairn_action_t action);

#endif
