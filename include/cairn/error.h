/* SPDX-License-Identifier: MIT */
/* The single error enumeration used by every fallible cairn function. */
#ifndef CAIRN_ERROR_H
#define CAIRN_ERROR_H

#include <cairn/version.h>

#define CAIRN_ERROR_MAP(X)                                                                         \
    X(OK, 0, "success")                                                                            \
    X(ENOMEM, -1, "out of memory")                                                                 \
    X(EINVAL, -2, "invalid argument")                                                              \
    X(ECONFIG, -3, "invalid configuration")                                                        \
    X(ETOOBIG, -4, "size limit exceeded")                                                          \
    X(EPROTO, -5, "peer violated the protocol")                                                    \
    X(ETIMEDOUT, -6, "timed out")                                                                  \
    X(ECONNREFUSED, -7, "connection refused")                                                      \
    X(ECLOSED, -8, "connection closed by peer")                                                    \
    X(ETLS, -9, "TLS failure")                                                                     \
    X(EIO, -10, "I/O error")                                                                       \
    X(ECANCELED, -11, "operation canceled")                                                        \
    X(ENOUPSTREAM, -12, "no healthy upstream")                                                     \
    X(ENOTFOUND, -13, "not found")                                                                 \
    X(EADDRINUSE, -14, "address already in use")                                                   \
    X(ERESET, -15, "connection reset by peer")                                                     \
    X(ENOENT, -16, "no such file or directory")

typedef enum cairn_err {
#define CAIRN_ERR_ENUM_(name, val, text) CAIRN_##name = (val),
    CAIRN_ERROR_MAP(CAIRN_ERR_ENUM_)
#undef CAIRN_ERR_ENUM_
} cairn_err_t;

/** Human-readable text of @err; a static string, valid forever. Any thread. */
CAIRN_API const char *cairn_strerror(cairn_err_t err);
/** Symbolic name of @err ("ETIMEDOUT"); a static string, valid forever. Any thread. */
CAIRN_API const char *cairn_err_name(cairn_err_t err);

#endif
