/* SPDX-License-Identifier: MIT */
/* Private to src/config: the YAML document as a small tree (scalar, sequence, mapping) in
 * which every node keeps its 1-based line:col. yaml.c builds it; schema.c walks it. */
#ifndef CN_CONFIG_DOM_H
#define CN_CONFIG_DOM_H

#include "config/config.h"

typedef enum cn_dom_kind {
    CN_DOM_SCALAR = 0,
    CN_DOM_SEQ,
    CN_DOM_MAP,
} cn_dom_kind_t;

typedef struct cn_dom_node cn_dom_node_t;

typedef struct cn_dom_pair {
    cn_dom_node_t *key; /* always a scalar */
    cn_dom_node_t *value;
} cn_dom_pair_t;

struct cn_dom_node {
    cn_dom_kind_t kind;
    unsigned line, col;
    bool is_null; /* plain scalar "", "~" or "null" */
    char *str;    /* scalar text, NUL-terminated */
    size_t len;
    cn_dom_node_t **items; /* sequence */
    cn_dom_pair_t *pairs;  /* mapping, in file order */
    size_t n;              /* items or pairs */
};

/** Parses @text into a tree allocated in @arena. Returns the root (a null scalar for an empty
 *  document), or NULL after adding a diagnostic for malformed YAML or excessive nesting.
 *  Duplicate keys, non-scalar keys, anchors, aliases and extra documents add a diagnostic but
 *  still return a tree (without the offending pair; an alias reads as null), so that the
 *  caller can go on and report the file's other errors too. */
cn_dom_node_t *cn_dom_parse(cn_arena_t *arena, const char *file, const char *text, size_t len,
                            cn_diags_t *diags);
/** The value of @key in mapping @map; NULL when @map is not a mapping or has no such key. */
const cn_dom_node_t *cn_dom_get(const cn_dom_node_t *map, const char *key);
/** The key node of @key in mapping @map, or NULL. */
const cn_dom_node_t *cn_dom_get_key(const cn_dom_node_t *map, const char *key);
/** True when @n is absent or a null scalar. */
bool cn_dom_is_none(const cn_dom_node_t *n);

#endif
