/* SPDX-License-Identifier: MIT */
/* Umbrella header of libcairn: includes the public headers and nothing else. */
#ifndef CAIRN_CAIRN_H
#define CAIRN_CAIRN_H

#include <cairn/cache.h>
#include <cairn/error.h>
#include <cairn/headers.h>
#include <cairn/hooks.h>
#include <cairn/iov.h>
#include <cairn/request.h>
#include <cairn/response.h>
#include <cairn/server.h>
#include <cairn/version.h>

#endif
