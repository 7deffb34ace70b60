/* SPDX-License-Identifier: MIT */
/* Private to src/config: declarative field tables (name, type, offset, default, bounds, doc)
 * and the one generic walker that applies a table to a DOM mapping. build.c holds the tables
 * for every section; dump.c renders them back as YAML and as docs/config.md. */
#ifndef CN_CONFIG_SCHEMA_H
#define CN_CONFIG_SCHEMA_H

#include <stddef.h>

#include "config/config.h"
#include "config/dom.h"

typedef enum cn_conf_type {
    CN_CONF_T_END = 0,
    CN_CONF_T_STR,      /* char * */
    CN_CONF_T_U32,      /* uint32_t */
    CN_CONF_T_BOOL,     /* bool */
    CN_CONF_T_MSEC,     /* uint64_t milliseconds, written as a duration */
    CN_CONF_T_SIZE,     /* uint64_t bytes, written as a size */
    CN_CONF_T_ENUM,     /* int, index into names[] */
    CN_CONF_T_ADDR,     /* cn_conf_addr_t */
    CN_CONF_T_STRUCT,   /* nested mapping; sub-table offsets are relative to base + off */
    CN_CONF_T_LIST,     /* sequence of mappings → T *items; size_t n */
    CN_CONF_T_MAP,      /* name → mapping → T *items (name stored in each); size_t n */
    CN_CONF_T_STRLIST,  /* sequence of strings → char **; size_t n */
    CN_CONF_T_STRMAP,   /* mapping string → string → cn_conf_kv_t *; size_t n */
    CN_CONF_T_CIDRLIST, /* sequence of CIDRs → cn_conf_cidr_t *; size_t n */
} cn_conf_type_t;

/* Field flags. */
#define CN_REQUIRED 0x01u    /* the key must be present */
#define CN_NULLABLE 0x02u    /* string: null (or absent without default) leaves NULL */
#define CN_NONEMPTY 0x04u    /* list or map: at least one entry */
#define CN_SCALAR_OK 0x08u   /* string list: one string stands for a one-item list */
#define CN_NULL_VALUES 0x10u /* string map: null values mean "presence only" */
#define CN_ADDR_LISTEN 0x20u /* address: numeric IP or localhost; "*:p" and ":p" = 0.0.0.0 */
#define CN_ADDR_OFF 0x40u    /* address: "off" is accepted and leaves sslen 0 */
#define CN_KEY_U32 0x80u     /* map: keys are integers in [min, max], stored as uint32_t */
#define CN_AUTO 0x100u       /* integer: "auto" is accepted and stored as 0 */

typedef struct cn_conf_walk cn_conf_walk_t;
typedef struct cn_conf_field cn_conf_field_t;

/** Runs after the fields of one object (@obj) were applied from @node (NULL when the
 *  section was absent); @index is the position in a list or map. */
typedef void (*cn_conf_post_cb)(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj,
                                size_t index);
/** Extra validation of a string; returns a static reason, or NULL when @s is fine. */
typedef const char *(*cn_conf_check_cb)(const char *s);
/** Dump filter: false hides the field of @obj (e.g. the inactive actions of a route). */
typedef bool (*cn_conf_show_cb)(const void *obj);

struct cn_conf_field {
    const char *name;
    cn_conf_type_t type;
    unsigned flags;
    size_t off;       /* the value; for lists and maps the element array pointer */
    size_t n_off;     /* lists and maps: the size_t count */
    size_t elem_size; /* lists and maps */
    size_t key_off;   /* maps: the element's char *name (uint32_t with CN_KEY_U32) */
    const cn_conf_field_t *sub;
    const char *def;          /* default exactly as it would be written in YAML; NULL = none */
    uint64_t min, max;        /* integers, durations, sizes, CN_KEY_U32 keys; max 0 = no limit */
    const char *const *names; /* enums: NULL-terminated, index = value */
    cn_conf_check_cb check;
    cn_conf_post_cb post;
    cn_conf_show_cb show;
    const char *doc;
};

#define CN_CONF_FIELD_(k_, ty_, fl_, off_, ...)                                                    \
    {                                                                                              \
        .name = (k_), .type = (ty_), .flags = (fl_), .off = (off_), __VA_ARGS__                    \
    }
#define CN_CONF_STR(k_, t_, m_, def_, fl_, doc_)                                                   \
    CN_CONF_FIELD_(k_, CN_CONF_T_STR, fl_, offsetof(t_, m_), .def = (def_), .doc = (doc_))
#define CN_CONF_STR_X(k_, t_, m_, def_, fl_, check_, show_, doc_)                                  \
    CN_CONF_FIELD_(k_, CN_CONF_T_STR, fl_, offsetof(t_, m_), .def = (def_), .check = (check_),     \
                   .show = (show_), .doc = (doc_))
#define CN_CONF_U32(k_, t_, m_, def_, min_, max_, doc_)                                            \
    CN_CONF_FIELD_(k_, CN_CONF_T_U32, 0, offsetof(t_, m_), .def = (def_), .min = (min_),           \
                   .max = (max_), .doc = (doc_))
#define CN_CONF_U32_AUTO(k_, t_, m_, min_, max_, doc_)                                             \
    CN_CONF_FIELD_(k_, CN_CONF_T_U32, CN_AUTO, offsetof(t_, m_), .def = "auto", .min = (min_),     \
                   .max = (max_), .doc = (doc_))
#define CN_CONF_BOOL(k_, t_, m_, def_, doc_)                                                       \
    CN_CONF_FIELD_(k_, CN_CONF_T_BOOL, 0, offsetof(t_, m_), .def = (def_), .doc = (doc_))
#define CN_CONF_MSEC(k_, t_, m_, def_, min_, max_, doc_)                                           \
    CN_CONF_FIELD_(k_, CN_CONF_T_MSEC, 0, offsetof(t_, m_), .def = (def_), .min = (min_),          \
                   .max = (max_), .doc = (doc_))
#define CN_CONF_SIZE(k_, t_, m_, def_, min_, max_, doc_)                                           \
    CN_CONF_FIELD_(k_, CN_CONF_T_SIZE, 0, offsetof(t_, m_), .def = (def_), .min = (min_),          \
                   .max = (max_), .doc = (doc_))
#define CN_CONF_ENUM(k_, t_, m_, names_, def_, doc_)                                               \
    CN_CONF_FIELD_(k_, CN_CONF_T_ENUM, 0, offsetof(t_, m_), .names = (names_), .def = (def_),      \
                   .doc = (doc_))
#define CN_CONF_ADDR(k_, t_, m_, def_, fl_, doc_)                                                  \
    CN_CONF_FIELD_(k_, CN_CONF_T_ADDR, fl_, offsetof(t_, m_), .def = (def_), .doc = (doc_))
/* A nested struct member of the object. */
#define CN_CONF_STRUCT(k_, t_, m_, sub_, post_, doc_)                                              \
    CN_CONF_FIELD_(k_, CN_CONF_T_STRUCT, 0, offsetof(t_, m_), .sub = (sub_), .post = (post_),      \
                   .doc = (doc_))
/* A nested struct member, shown in dumps only when @show_(object) says so. */
#define CN_CONF_STRUCT_X(k_, t_, m_, sub_, post_, show_, doc_)                                     \
    CN_CONF_FIELD_(k_, CN_CONF_T_STRUCT, 0, offsetof(t_, m_), .sub = (sub_), .post = (post_),      \
                   .show = (show_), .doc = (doc_))
/* A YAML sub-mapping whose fields live flat in the same object (sub-table offsets are
 * relative to the object itself). */
#define CN_CONF_GROUP(k_, sub_, post_, show_, doc_)                                                \
    CN_CONF_FIELD_(k_, CN_CONF_T_STRUCT, 0, 0, .sub = (sub_), .post = (post_), .show = (show_),    \
                   .doc = (doc_))
#define CN_CONF_LIST(k_, t_, m_, nm_, et_, sub_, fl_, post_, doc_)                                 \
    CN_CONF_FIELD_(k_, CN_CONF_T_LIST, fl_, offsetof(t_, m_), .n_off = offsetof(t_, nm_),          \
                   .elem_size = sizeof(et_), .sub = (sub_), .post = (post_), .doc = (doc_))
#define CN_CONF_MAP(k_, t_, m_, nm_, et_, km_, sub_, fl_, post_, doc_)                             \
    CN_CONF_FIELD_(k_, CN_CONF_T_MAP, fl_, offsetof(t_, m_), .n_off = offsetof(t_, nm_),           \
                   .elem_size = sizeof(et_), .key_off = offsetof(et_, km_), .sub = (sub_),         \
                   .post = (post_), .doc = (doc_))
#define CN_CONF_U32_MAP(k_, t_, m_, nm_, et_, km_, min_, max_, sub_, post_, doc_)                  \
    CN_CONF_FIELD_(k_, CN_CONF_T_MAP, CN_KEY_U32, offsetof(t_, m_), .n_off = offsetof(t_, nm_),    \
                   .elem_size = sizeof(et_), .key_off = offsetof(et_, km_), .min = (min_),         \
                   .max = (max_), .sub = (sub_), .post = (post_), .doc = (doc_))
#define CN_CONF_STRLIST(k_, t_, m_, nm_, fl_, check_, doc_)                                        \
    CN_CONF_FIELD_(k_, CN_CONF_T_STRLIST, fl_, offsetof(t_, m_), .n_off = offsetof(t_, nm_),       \
                   .check = (check_), .doc = (doc_))
#define CN_CONF_STRMAP(k_, t_, m_, nm_, fl_, check_, doc_)                                         \
    CN_CONF_FIELD_(k_, CN_CONF_T_STRMAP, fl_, offsetof(t_, m_), .n_off = offsetof(t_, nm_),        \
                   .check = (check_), .doc = (doc_))
/* @def_ is a comma-separated list of ranges used when the key is absent ("" = none). */
#define CN_CONF_CIDRLIST(k_, t_, m_, nm_, def_, doc_)                                              \
    CN_CONF_FIELD_(k_, CN_CONF_T_CIDRLIST, 0, offsetof(t_, m_), .n_off = offsetof(t_, nm_),        \
                   .def = (def_), .doc = (doc_))
#define CN_CONF_END                                                                                \
    {                                                                                              \
        .name = NULL                                                                               \
    }

#define CN_CONF_PATH_MAX 256

struct cn_conf_walk {
    cn_arena_t *arena; /* the config's arena: every string copied out of the DOM goes here */
    cn_diags_t *diags;
    const char *file;
    cn_config_t *cfg;
    size_t n_errors;
    size_t path_len;
    char path[CN_CONF_PATH_MAX]; /* "routes[2].match" while walking that mapping */
};

/** The root table (server, admin, listeners, upstreams, caches, routes). */
extern const cn_conf_field_t cn_conf_root_fields[];

/** Applies @fields to mapping @map (NULL or a null scalar: the section is absent, so only
 *  defaults are set) writing into @base. Errors are collected in @w and walking goes on. */
void cn_conf_apply(cn_conf_walk_t *w, const cn_conf_field_t *fields, const cn_dom_node_t *map,
                   void *base);
/** Adds "path: message" at @at (NULL = no position) and counts the error. */
void cn_conf_error(cn_conf_walk_t *w, const cn_dom_node_t *at, const char *fmt, ...)
    CN_PRINTF(3, 4);
/** Appends ".key" (or "[i]" with key NULL) to the walk path; returns the old length. */
size_t cn_conf_path_push(cn_conf_walk_t *w, const char *key, size_t index);
void cn_conf_path_pop(cn_conf_walk_t *w, size_t len);
/** Writes @s double-quoted, escaped and truncated to fit @n bytes; returns @out. */
const char *cn_conf_quote(char *out, size_t n, const char *s);
/** Best "did you mean" candidate for @s among @cands (NULL-terminated), or NULL. */
const char *cn_conf_suggest(const char *s, const char *const *cands, size_t n_cands);

/** Parses an address (see CN_ADDR_* flags) into @out (text is not set). On failure writes a
 *  reason into @err and returns false. May call getaddrinfo for peer host names. */
bool cn_conf_addr_parse(const char *s, unsigned flags, cn_conf_addr_t *out, char *err,
                        size_t errlen);
/** Parses "10.0.0.0/8", "::1/128" or a bare address (full prefix). */
bool cn_conf_cidr_parse(const char *s, cn_conf_cidr_t *out);
/** Formats a CIDR back as text. */
void cn_conf_cidr_format(const cn_conf_cidr_t *c, char *out, size_t n);

/** Sorts d->items[from..] by line and column, keeping the order of equal positions. */
void cn_diags_sort(cn_diags_t *d, size_t from);

#endif
