/* SPDX-License-Identifier: MIT */
/* What the two halves of the schema tables share: build.c (server, admin, listeners,
 * upstreams, caches, the root table, loading) defines the value checks and the helpers of
 * post hooks; build_routes.c (the routes section) defines the route table and its post hook,
 * which the root table names. Private to src/config/. */
#ifndef CN_CONFIG_BUILD_INT_H
#define CN_CONFIG_BUILD_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "config/schema.h"
#include "core/arena.h"
#include "core/compiler.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define GiB (1024ull * 1024 * 1024)

/* ---- build.c ---- */

/** A copy of @s in @a. */
char *cn_conf_strdup(cn_arena_t *a, const char *s);

/** Value checks (cn_conf_check_cb): NULL when @s is valid, else why not. No control
 *  characters or line breaks. */
const char *cn_conf_check_text(const char *s);
/** Not empty, and no spaces or control characters. */
const char *cn_conf_check_nonempty_text(const char *s);

/** Reports an error at the value of @key inside @node (or at @node when the key is absent),
 *  with the key appended to the path. */
void cn_conf_error_at_key(cn_conf_walk_t *w, const cn_dom_node_t *node, const char *key,
                          const char *fmt, ...) CN_PRINTF(4, 5);

/** Checks that @name is the name of one of @n objects of @size bytes whose char *name is at
 *  @name_off; otherwise reports it at @key of @node with a suggestion. */
bool cn_conf_check_ref(cn_conf_walk_t *w, const cn_dom_node_t *node, const char *key,
                       const char *what, const char *name, const void *items, size_t n, size_t size,
                       size_t name_off);

/** Reports that the file @path named at @key of @node cannot be read, and @why. */
void cn_conf_unreadable(cn_conf_walk_t *w, const cn_dom_node_t *node, const char *key,
                        const char *path, const char *why);

/* ---- build_tls.c ---- */

extern const cn_conf_field_t cn_conf_listener_tls_fields[];
extern const cn_conf_field_t cn_conf_upstream_tls_fields[];
void cn_conf_listener_tls_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj,
                               size_t index);
void cn_conf_upstream_tls_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj,
                               size_t index);
bool cn_conf_listener_tls_shown(const void *obj);
bool cn_conf_upstream_tls_shown(const void *obj);

/* ---- build_routes.c ---- */

/** The fields of one element of routes. */
extern const cn_conf_field_t cn_conf_route_fields[];
/** Checks across the keys of a route: its action, its references, prefix rewriting. */
void cn_conf_route_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index);

#endif
