/* SPDX-License-Identifier: MIT */
/* libyaml events → cn_dom_node_t tree with 1-based line:col on every node. This is the first
 * step of cn_config_load_*(): syntax errors, duplicate keys and aliases are reported here;
 * everything about meaning is left to the schema walker. */
#include "config/dom.h"

#include <string.h>

#include <yaml.h>

#include "core/alloc.h"

/* Deeper documents are refused so the recursive builder cannot exhaust the stack. */
#define DOM_MAX_DEPTH 64

struct builder {
    yaml_parser_t parser;
    cn_arena_t *arena;
    const char *file;
    const char *text;
    size_t len;
    cn_diags_t *diags;
    bool failed;
};

static cn_dom_node_t *build_node(struct builder *b, yaml_event_t *ev, unsigned depth);

static void
offset_to_pos(const char *text, size_t len, size_t off, unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void
syntax_error(struct builder *b)
{
    yaml_parser_t *p = &b->parser;
    unsigned line = (unsigned)p->problem_mark.line + 1, col = (unsigned)p->problem_mark.column + 1;
    const char *problem = p->problem != NULL ? p->problem : "syntax error";

    b->failed = true;
    if (p->error == YAML_READER_ERROR) {
        offset_to_pos(b->text, b->len, p->problem_offset, &line, &col);
        cn_diags_add(b->diags, b->file, line, col, "invalid YAML: %s", problem);
    } else if (p->error == YAML_MEMORY_ERROR) {
        cn_diags_add(b->diags, b->file, 0, 0, "invalid YAML: out of memory");
    } else if (p->context != NULL) {
        cn_diags_add(b->diags, b->file, line, col, "invalid YAML: %s (%s at line %u, column %u)",
                     problem, p->context, (unsigned)p->context_mark.line + 1,
                     (unsigned)p->context_mark.column + 1);
    } else {
        cn_diags_add(b->diags, b->file, line, col, "invalid YAML: %s", problem);
    }
}

static bool
next_event(struct builder *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev)) {
        syntax_error(b);
        return false;
    }
    return true;
}

static void
fail_at(struct builder *b, const yaml_mark_t *m, const char *msg)
{
    b->failed = true;
    cn_diags_add(b->diags, b->file, (unsigned)m->line + 1, (unsigned)m->column + 1, "%s", msg);
}

static cn_dom_node_t *
new_node(struct builder *b, cn_dom_kind_t kind, const yaml_mark_t *m)
{
    cn_dom_node_t *n = cn_arena_xalloc(b->arena, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = (unsigned)m->line + 1;
    n->col = (unsigned)m->column + 1;
    return n;
}

static bool
is_null_text(const char *s, size_t len)
{
    return len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 &&
            (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 || memcmp(s, "NULL", 4) == 0));
}

static cn_dom_node_t *
build_scalar(struct builder *b, yaml_event_t *ev)
{
    cn_dom_node_t *n = new_node(b, CN_DOM_SCALAR, &ev->start_mark);
    const char *v = (const char *)ev->data.scalar.value;
    n->len = ev->data.scalar.length;
    n->str = cn_arena_xalloc(b->arena, n->len + 1);
    memcpy(n->str, v, n->len);
    n->str[n->len] = '\0';
    n->is_null = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && is_null_text(n->str, n->len);
    return n;
}

/* Children are collected on the heap while their count is unknown, then copied once. */
struct vec {
    void *items;
    size_t n, cap, size;
};

static void *
vec_push(struct vec *v)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->items = cn_xrealloc(v->items, v->cap * v->size);
    }
    return (char *)v->items + v->size * v->n++;
}

static void *
vec_finish(struct builder *b, struct vec *v)
{
    void *out = NULL;
    if (v->n != 0) {
        out = cn_arena_xalloc(b->arena, v->n * v->size);
        memcpy(out, v->items, v->n * v->size);
    }
    cn_free(v->items);
    v->items = NULL;
    return out;
}

static cn_dom_node_t *
build_seq(struct builder *b, yaml_event_t *start, unsigned depth)
{
    cn_dom_node_t *n = new_node(b, CN_DOM_SEQ, &start->start_mark);
    struct vec v = {.size = sizeof(cn_dom_node_t *)};
    yaml_event_t ev;
    while (next_event(b, &ev)) {
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            n->n = v.n;
            n->items = vec_finish(b, &v);
            return n;
        }
        cn_dom_node_t *child = build_node(b, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (child == NULL)
            break;
        *(cn_dom_node_t **)vec_push(&v) = child;
    }
    cn_free(v.items);
    return NULL;
}

/* Not fatal: the pair is reported and left out, and parsing goes on to find more errors. */
static void
add_pair(struct builder *b, struct vec *v, cn_dom_node_t *key, cn_dom_node_t *value)
{
    if (key->kind != CN_DOM_SCALAR) {
        cn_diags_add(b->diags, b->file, key->line, key->col, "mapping keys must be scalars");
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const cn_dom_node_t *prev = ((cn_dom_pair_t *)v->items)[i].key;
        if (prev->len == key->len && memcmp(prev->str, key->str, key->len) == 0) {
            cn_diags_add(b->diags, b->file, key->line, key->col,
                         "duplicate key \"%s\" (first defined at line %u, column %u)", key->str,
                         prev->line, prev->col);
            return;
        }
    }
    cn_dom_pair_t *p = vec_push(v);
    p->key = key;
    p->value = value;
}

static cn_dom_node_t *
build_map(struct builder *b, yaml_event_t *start, unsigned depth)
{
    cn_dom_node_t *n = new_node(b, CN_DOM_MAP, &start->start_mark);
    struct vec v = {.size = sizeof(cn_dom_pair_t)};
    yaml_event_t ev;
    while (next_event(b, &ev)) {
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            n->n = v.n;
            n->pairs = vec_finish(b, &v);
            return n;
        }
        cn_dom_node_t *key = build_node(b, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (key == NULL || !next_event(b, &ev))
            break;
        cn_dom_node_t *value = build_node(b, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (value == NULL)
            break;
        add_pair(b, &v, key, value);
    }
    cn_free(v.items);
    return NULL;
}

static bool
has_anchor(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return ev->data.scalar.anchor != NULL;
    case YAML_SEQUENCE_START_EVENT:
        return ev->data.sequence_start.anchor != NULL;
    case YAML_MAPPING_START_EVENT:
        return ev->data.mapping_start.anchor != NULL;
    default:
        return false;
    }
}

/* @ev is the first event of a node; its events are consumed up to the node's end. */
static cn_dom_node_t *
build_node(struct builder *b, yaml_event_t *ev, unsigned depth)
{
    if (ev->type == YAML_ALIAS_EVENT || has_anchor(ev)) {
        /* Not fatal: an alias stands for null, an anchor is ignored. */
        cn_diags_add(b->diags, b->file, (unsigned)ev->start_mark.line + 1,
                     (unsigned)ev->start_mark.column + 1,
                     "YAML anchors and aliases are not supported");
        if (ev->type == YAML_ALIAS_EVENT) {
            cn_dom_node_t *n = new_node(b, CN_DOM_SCALAR, &ev->start_mark);
            n->str = "";
            n->is_null = true;
            return n;
        }
    }
    if (depth > DOM_MAX_DEPTH) {
        fail_at(b, &ev->start_mark, "YAML nesting is too deep");
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return build_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return build_seq(b, ev, depth);
    case YAML_MAPPING_START_EVENT:
        return build_map(b, ev, depth);
    default:
        fail_at(b, &ev->start_mark, "invalid YAML: unexpected event");
        return NULL;
    }
}

static cn_dom_node_t *
build_document(struct builder *b)
{
    yaml_event_t ev;
    cn_dom_node_t *root = NULL;
    if (!next_event(b, &ev))
        return NULL;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_mark_t start = {0, 0, 0};
        yaml_event_delete(&ev);
        root = new_node(b, CN_DOM_SCALAR, &start);
        root->str = "";
        root->is_null = true;
        return root;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    if (!next_event(b, &ev))
        return NULL;
    root = build_node(b, &ev, 0);
    yaml_event_delete(&ev);
    if (root == NULL || !next_event(b, &ev)) /* DOCUMENT-END */
        return NULL;
    yaml_event_delete(&ev);
    if (!next_event(b, &ev))
        return NULL;
    if (ev.type != YAML_STREAM_END_EVENT) {
        cn_diags_add(b->diags, b->file, (unsigned)ev.start_mark.line + 1,
                     (unsigned)ev.start_mark.column + 1, "only one YAML document is allowed");
    }
    yaml_event_delete(&ev);
    return root;
}

cn_dom_node_t *
cn_dom_parse(cn_arena_t *arena, const char *file, const char *text, size_t len, cn_diags_t *diags)
{
    struct builder b = {.arena = arena, .file = file, .text = text, .len = len, .diags = diags};
    yaml_event_t ev;
    cn_dom_node_t *root = NULL;

    if (!yaml_parser_initialize(&b.parser)) {
        cn_diags_add(diags, file, 0, 0, "cannot initialise the YAML parser");
        return NULL;
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
    if (next_event(&b, &ev)) { /* STREAM-START */
        yaml_event_delete(&ev);
        root = build_document(&b);
    }
    yaml_parser_delete(&b.parser);
    return b.failed ? NULL : root;
}

const cn_dom_node_t *
cn_dom_get_key(const cn_dom_node_t *map, const char *key)
{
    if (map == NULL || map->kind != CN_DOM_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->pairs[i].key->str, key) == 0)
            return map->pairs[i].key;
    return NULL;
}

const cn_dom_node_t *
cn_dom_get(const cn_dom_node_t *map, const char *key)
{
    if (map == NULL || map->kind != CN_DOM_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->pairs[i].key->str, key) == 0)
            return map->pairs[i].value;
    return NULL;
}

bool
cn_dom_is_none(const cn_dom_node_t *n)
{
    return n == NULL || (n->kind == CN_DOM_SCALAR && n->is_null);
}
