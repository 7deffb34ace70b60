/* SPDX-License-Identifier: MIT */
/* Method interning and status reason phrases (RFC 9110 §9, §15). */
#include "http/msg.h"

#include <stdio.h>

#include "core/str.h"

cn_method_t
cn_method_from_iov(cairn_iov_t m)
{
    static const struct {
        const char *name;
        cn_method_t id;
    } methods[] = {
        {"GET", CN_METHOD_GET},         {"HEAD", CN_METHOD_HEAD},       {"POST", CN_METHOD_POST},
        {"PUT", CN_METHOD_PUT},         {"DELETE", CN_METHOD_DELETE},   {"PATCH", CN_METHOD_PATCH},
        {"OPTIONS", CN_METHOD_OPTIONS}, {"CONNECT", CN_METHOD_CONNECT}, {"TRACE", CN_METHOD_TRACE}};
    /* Methods are case-sensitive (RFC 9110 §9.1). */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (cn_iov_eq(m, cn_iov_cstr(methods[i].name)))
            return methods[i].id;
    return CN_METHOD_OTHER;
}

cairn_iov_t
cn_status_body(cn_arena_t *a, unsigned status)
{
    char *p = cn_arena_xalloc(a, 64);
    int n = snprintf(p, 64, "%u %s\n", status, cn_status_reason(status));
    return cn_iov(p, (size_t)n);
}

const char *
cn_status_reason(unsigned status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}
