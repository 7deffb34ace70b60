/* SPDX-License-Identifier: MIT */
/* Project-wide forward typedefs, so headers can name each other's types without cycles. */
#ifndef CN_CORE_TYPES_H
#define CN_CORE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairn/error.h>
#include <cairn/iov.h>

typedef struct cn_arena cn_arena_t;
typedef struct cn_buf cn_buf_t;
typedef struct cn_config cn_config_t;
typedef struct cn_server cn_server_t;
typedef struct cn_worker cn_worker_t;
typedef struct cn_conn cn_conn_t;
typedef struct cn_session cn_session_t;
typedef struct cn_headers cn_headers_t;
typedef struct cn_diag cn_diag_t;

#endif
