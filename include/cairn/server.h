/* SPDX-License-Identifier: MIT */
/* Configs and servers: load a YAML configuration, register hook tables, run. */
#ifndef CAIRN_SERVER_H
#define CAIRN_SERVER_H

#include <stdbool.h>
#include <stdio.h>

#include <cairn/error.h>
#include <cairn/hooks.h>

typedef struct cairn_config cairn_config_t;
typedef struct cairn_server cairn_server_t;

/** Loads a configuration file. Every error is printed to @diag ("file:line:col: error: …")
 *  when @diag is not NULL. Returns CAIRN_OK and *@out, or CAIRN_ECONFIG / CAIRN_EIO. */
CAIRN_API cairn_err_t cairn_config_load_file(const char *path, cairn_config_t **out, FILE *diag);
/** Same from memory; @name stands for the file name in diagnostics. */
CAIRN_API cairn_err_t cairn_config_load_string(const char *name, const char *yaml, size_t len,
                                               cairn_config_t **out, FILE *diag);
/** Releases the caller's reference. NULL is a no-op. */
CAIRN_API void cairn_config_unref(cairn_config_t *cfg);

/** A server for @cfg (a reference is taken). */
CAIRN_API cairn_server_t *cairn_server_new(cairn_config_t *cfg);
/** Registers a hook table for every request, after the ones registered before it. @hooks
 *  and @udata are borrowed until cairn_server_free. Only before cairn_server_run.
 *  CAIRN_EINVAL for a table with another ABI. */
CAIRN_API cairn_err_t cairn_server_use(cairn_server_t *srv, const cairn_hooks_t *hooks,
                                       void *udata);
/** Binds, starts the workers and serves until SIGTERM/SIGINT or cairn_server_stop().
 *  Returns 0 after a clean stop, 1 when starting failed (the error was logged). */
CAIRN_API int cairn_server_run(cairn_server_t *srv);
/** Stops a running server; any thread. */
CAIRN_API void cairn_server_stop(cairn_server_t *srv, bool graceful);
/** The udata given with the hook table that is running now. */
CAIRN_API void *cairn_hooks_udata(cairn_req_t *req);
CAIRN_API void cairn_server_free(cairn_server_t *srv);

#endif
