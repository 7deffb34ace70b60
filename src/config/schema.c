/* SPDX-License-Identifier: MIT */
/* The generic schema walker: applies a cn_conf_field_t table to a DOM mapping, filling a
 * struct through offsets. Unknown keys, wrong types, bad values and out-of-range numbers are
 * reported at the node's position; walking always continues so that every error is seen. */
#include "config/schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/assert.h"
#include "core/str.h"

#define ERR_MAX 512
#define QUOTE_MAX 96

const char *
cn_conf_quote(char *out, size_t n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    CN_ASSERT(n >= 8);
    out[o++] = '"';
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[5];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c == '\n') {
            esc[k++] = '\\';
            esc[k++] = 'n';
        } else if (c == '\t') {
            esc[k++] = '\\';
            esc[k++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            esc[k++] = '\\';
            esc[k++] = 'x';
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 15];
        } else {
            esc[k++] = (char)c;
        }
        if (o + k + 5 > n) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, esc, k);
        o += k;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

size_t
cn_conf_path_push(cn_conf_walk_t *w, const char *key, size_t index)
{
    size_t old = w->path_len, room = sizeof(w->path) - old;
    int k;
    if (key == NULL)
        k = snprintf(w->path + old, room, "[%zu]", index);
    else
        k = snprintf(w->path + old, room, "%s%s", old == 0 ? "" : ".", key);
    w->path_len = k < 0 ? old : CN_MIN(old + (size_t)k, sizeof(w->path) - 1);
    return old;
}

void
cn_conf_path_pop(cn_conf_walk_t *w, size_t len)
{
    w->path_len = len;
    w->path[len] = '\0';
}

void
cn_conf_error(cn_conf_walk_t *w, const cn_dom_node_t *at, const char *fmt, ...)
{
    char msg[ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    w->n_errors++;
    unsigned line = at != NULL ? at->line : 0, col = at != NULL ? at->col : 0;
    if (w->path_len != 0)
        cn_diags_add(w->diags, w->file, line, col, "%s: %s", w->path, msg);
    else
        cn_diags_add(w->diags, w->file, line, col, "%s", msg);
}

const char *
cn_conf_suggest(const char *s, const char *const *cands, size_t n_cands)
{
    const char *best = NULL;
    size_t best_d = 3, len = strlen(s);
    for (size_t i = 0; i < n_cands; i++) {
        size_t d = cn_str_distance(s, cands[i]), clen = strlen(cands[i]);
        if (d >= len || d >= clen)
            d = 3; /* "ab" is 2 edits from anything of 2 letters: not a suggestion */
        if (len >= 3 && strncmp(cands[i], s, len) == 0)
            d = CN_MIN(d, 2);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best;
}

static const char *
describe(const cn_dom_node_t *n, char *buf, size_t len)
{
    if (n->kind == CN_DOM_MAP)
        return "a mapping";
    if (n->kind == CN_DOM_SEQ)
        return "a list";
    if (n->is_null)
        return "null";
    return cn_conf_quote(buf, len, n->str);
}

static const char *
type_wanted(const cn_conf_field_t *f)
{
    switch (f->type) {
    case CN_CONF_T_STR:
        return "a string";
    case CN_CONF_T_U32:
        return "an integer";
    case CN_CONF_T_BOOL:
        return "true or false";
    case CN_CONF_T_MSEC:
        return "a duration";
    case CN_CONF_T_SIZE:
        return "a size";
    case CN_CONF_T_ENUM:
        return "one of its names";
    case CN_CONF_T_ADDR:
        return "an address";
    case CN_CONF_T_STRUCT:
        return "a mapping";
    case CN_CONF_T_LIST:
        return "a list of mappings";
    case CN_CONF_T_MAP:
        return "a mapping of names to mappings";
    case CN_CONF_T_STRLIST:
        return (f->flags & CN_SCALAR_OK) ? "a string or a list of strings" : "a list of strings";
    case CN_CONF_T_STRMAP:
        return "a mapping of names to strings";
    case CN_CONF_T_CIDRLIST:
        return "a list of CIDR ranges";
    case CN_CONF_T_END:
        break;
    }
    return "?";
}

static void
wrong_type(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *n)
{
    char q[QUOTE_MAX];
    cn_conf_error(w, n, "expected %s, got %s", type_wanted(f), describe(n, q, sizeof(q)));
}

static char *
arena_strdup(cn_conf_walk_t *w, const char *s)
{
    size_t n = strlen(s);
    char *p = cn_arena_xalloc(w->arena, n + 1);
    memcpy(p, s, n + 1);
    return p;
}

static uint64_t
max_of(const cn_conf_field_t *f)
{
    if (f->max != 0)
        return f->max;
    return f->type == CN_CONF_T_U32 || (f->flags & CN_KEY_U32) ? UINT32_MAX : UINT64_MAX;
}

static void
format_number(const cn_conf_field_t *f, uint64_t v, char *out, size_t n)
{
    if (f->type == CN_CONF_T_MSEC)
        cn_format_duration_ms(v, out, n);
    else if (f->type == CN_CONF_T_SIZE)
        cn_format_size(v, out, n);
    else
        snprintf(out, n, "%llu", (unsigned long long)v);
}

static bool
in_range(const cn_conf_field_t *f, uint64_t v, const char *as_written, char *err, size_t errlen)
{
    uint64_t max = max_of(f);
    char lo[32], hi[32];
    if (v >= f->min && v <= max)
        return true;
    format_number(f, f->min, lo, sizeof(lo));
    format_number(f, max, hi, sizeof(hi));
    if (max == UINT64_MAX)
        snprintf(err, errlen, "must be at least %s, got %s", lo, as_written);
    else
        snprintf(err, errlen, "must be between %s and %s, got %s", lo, hi, as_written);
    return false;
}

static bool
all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool
parse_int(const cn_conf_field_t *f, const char *s, uint64_t *v, char *err, size_t errlen)
{
    char q[QUOTE_MAX];
    if (!all_digits(s)) {
        snprintf(err, errlen, "expected an integer, got %s", cn_conf_quote(q, sizeof(q), s));
        return false;
    }
    if (!cn_parse_u64(cn_iov_cstr(s), v))
        *v = UINT64_MAX; /* too many digits: reported as out of range */
    return in_range(f, *v, s, err, errlen);
}

static bool
parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < CN_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool
parse_enum(const cn_conf_field_t *f, const char *s, int *out, char *err, size_t errlen)
{
    char q[QUOTE_MAX], list[256] = "";
    size_t n = 0, used = 0;
    for (; f->names[n] != NULL; n++) {
        if (strcmp(s, f->names[n]) == 0) {
            *out = (int)n;
            return true;
        }
        int k = snprintf(list + used, sizeof(list) - used, "%s%s", n ? ", " : "", f->names[n]);
        used = CN_MIN(used + (size_t)(k > 0 ? k : 0), sizeof(list) - 1);
    }
    const char *sug = cn_conf_suggest(s, f->names, n);
    snprintf(err, errlen, "invalid value %s (expected one of: %s)%s%s%s",
             cn_conf_quote(q, sizeof(q), s), list, sug ? "; did you mean \"" : "", sug ? sug : "",
             sug ? "\"?" : "");
    return false;
}

static bool
parse_addr(cn_conf_walk_t *w, const cn_conf_field_t *f, const char *s, cn_conf_addr_t *out,
           char *err, size_t errlen)
{
    char q[QUOTE_MAX], why[256];
    cn_conf_addr_t a;
    memset(&a, 0, sizeof(a));
    if (!((f->flags & CN_ADDR_OFF) && strcmp(s, "off") == 0) &&
        !cn_conf_addr_parse(s, f->flags, &a, why, sizeof(why))) {
        snprintf(err, errlen, "invalid address %s: %s", cn_conf_quote(q, sizeof(q), s), why);
        return false;
    }
    a.text = arena_strdup(w, s);
    *out = a;
    return true;
}

/* Parses scalar text @s for field @f into @dst; the same path serves defaults and values. */
static bool
parse_scalar(cn_conf_walk_t *w, const cn_conf_field_t *f, const char *s, void *dst, char *err,
             size_t errlen)
{
    char q[QUOTE_MAX];
    uint64_t v;
    const char *why;
    switch (f->type) {
    case CN_CONF_T_STR:
        if (f->check != NULL && (why = f->check(s)) != NULL) {
            snprintf(err, errlen, "invalid value %s: %s", cn_conf_quote(q, sizeof(q), s), why);
            return false;
        }
        *(char **)dst = arena_strdup(w, s);
        return true;
    case CN_CONF_T_U32:
        if ((f->flags & CN_AUTO) && strcmp(s, "auto") == 0) {
            *(uint32_t *)dst = 0;
            return true;
        }
        if (!parse_int(f, s, &v, err, errlen))
            return false;
        *(uint32_t *)dst = (uint32_t)v;
        return true;
    case CN_CONF_T_BOOL:
        if (parse_bool(s, (bool *)dst))
            return true;
        snprintf(err, errlen, "expected true or false, got %s", cn_conf_quote(q, sizeof(q), s));
        return false;
    case CN_CONF_T_MSEC:
        if (!cn_parse_duration_ms(s, &v)) {
            snprintf(err, errlen,
                     "invalid duration %s (expected a number with a unit: ms, s, m, h or d, "
                     "e.g. 30s)",
                     cn_conf_quote(q, sizeof(q), s));
            return false;
        }
        if (!in_range(f, v, s, err, errlen))
            return false;
        *(uint64_t *)dst = v;
        return true;
    case CN_CONF_T_SIZE:
        if (!cn_parse_size(s, &v)) {
            snprintf(err, errlen,
                     "invalid size %s (expected a number with a unit: B, KiB, MiB, GiB, TiB, KB, "
                     "MB or GB, e.g. 64KiB)",
                     cn_conf_quote(q, sizeof(q), s));
            return false;
        }
        if (!in_range(f, v, s, err, errlen))
            return false;
        *(uint64_t *)dst = v;
        return true;
    case CN_CONF_T_ENUM:
        return parse_enum(f, s, (int *)dst, err, errlen);
    case CN_CONF_T_ADDR:
        return parse_addr(w, f, s, (cn_conf_addr_t *)dst, err, errlen);
    default:
        CN_ASSERT(!"not a scalar type");
        return false;
    }
}

static bool
is_scalar_type(cn_conf_type_t t)
{
    return t == CN_CONF_T_STR || t == CN_CONF_T_U32 || t == CN_CONF_T_BOOL || t == CN_CONF_T_MSEC ||
           t == CN_CONF_T_SIZE || t == CN_CONF_T_ENUM || t == CN_CONF_T_ADDR;
}

static void
apply_scalar(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *v, void *dst)
{
    char err[ERR_MAX];
    if (f->def != NULL) {
        bool ok = parse_scalar(w, f, f->def, dst, err, sizeof(err));
        CN_ASSERT(ok); /* a default that does not parse is a bug in the table */
    }
    if (v == NULL)
        return;
    if (v->kind != CN_DOM_SCALAR) {
        wrong_type(w, f, v);
    } else if (v->is_null) {
        if (f->type == CN_CONF_T_STR && (f->flags & CN_NULLABLE))
            *(char **)dst = NULL;
        else
            wrong_type(w, f, v);
    } else if (!parse_scalar(w, f, v->str, dst, err, sizeof(err))) {
        cn_conf_error(w, v, "%s", err);
    }
}

static bool apply_obj(cn_conf_walk_t *w, const cn_conf_field_t *fields, const cn_dom_node_t *map,
                      void *base, bool must);

static void *
alloc_items(cn_conf_walk_t *w, void *base, const cn_conf_field_t *f, size_t n, size_t size)
{
    void *items = NULL;
    if (n != 0) {
        items = cn_arena_xalloc(w->arena, n * size);
        memset(items, 0, n * size);
    }
    *(void **)((char *)base + f->off) = items;
    *(size_t *)((char *)base + f->n_off) = n;
    return items;
}

/* Returns the node to iterate over, or NULL when the value is absent, null or of the wrong
 * kind (in which case the error has been reported). */
static const cn_dom_node_t *
container(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *v, cn_dom_kind_t kind)
{
    if (v == NULL)
        return NULL;
    if (cn_dom_is_none(v)) {
        if (f->flags & CN_NONEMPTY)
            cn_conf_error(w, v, "must not be empty");
        return NULL;
    }
    if (v->kind != kind) {
        wrong_type(w, f, v);
        return NULL;
    }
    if (v->n == 0 && (f->flags & CN_NONEMPTY))
        cn_conf_error(w, v, "must not be empty");
    return v;
}

static void
apply_list(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *v, void *base)
{
    const cn_dom_node_t *seq = container(w, f, v, CN_DOM_SEQ);
    char *items = alloc_items(w, base, f, seq ? seq->n : 0, f->elem_size);
    for (size_t i = 0; seq != NULL && i < seq->n; i++) {
        size_t old = cn_conf_path_push(w, NULL, i);
        void *elem = items + i * f->elem_size;
        if (apply_obj(w, f->sub, seq->items[i], elem, true) && f->post != NULL)
            f->post(w, seq->items[i], elem, i);
        cn_conf_path_pop(w, old);
    }
}

static bool
map_key(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *key, void *elem)
{
    char q[QUOTE_MAX], err[ERR_MAX];
    uint64_t v;
    if (f->flags & CN_KEY_U32) {
        if (!parse_int(f, key->str, &v, err, sizeof(err))) {
            cn_conf_error(w, key, "invalid key %s: %s", cn_conf_quote(q, sizeof(q), key->str), err);
            return false;
        }
        *(uint32_t *)((char *)elem + f->key_off) = (uint32_t)v;
        return true;
    }
    if (key->len == 0 || key->is_null) {
        cn_conf_error(w, key, "names must not be empty");
        return false;
    }
    *(char **)((char *)elem + f->key_off) = arena_strdup(w, key->str);
    return true;
}

static void
apply_map(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *v, void *base)
{
    const cn_dom_node_t *map = container(w, f, v, CN_DOM_MAP);
    char *items = alloc_items(w, base, f, map ? map->n : 0, f->elem_size);
    for (size_t i = 0; map != NULL && i < map->n; i++) {
        const cn_dom_pair_t *p = &map->pairs[i];
        void *elem = items + i * f->elem_size;
        bool ok = map_key(w, f, p->key, elem);
        size_t old = cn_conf_path_push(w, p->key->str, 0);
        if (apply_obj(w, f->sub, p->value, elem, true) && ok && f->post != NULL)
            f->post(w, p->value, elem, i);
        cn_conf_path_pop(w, old);
    }
}

/* A string taken from a list item or map value: a non-null scalar that passes f->check. */
static char *
take_string(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *n, bool check)
{
    char q[QUOTE_MAX];
    const char *why;
    if (n->kind != CN_DOM_SCALAR || n->is_null) {
        cn_conf_error(w, n, "expected a string, got %s", describe(n, q, sizeof(q)));
        return NULL;
    }
    if (check && f->check != NULL && (why = f->check(n->str)) != NULL) {
        cn_conf_error(w, n, "invalid value %s: %s", cn_conf_quote(q, sizeof(q), n->str), why);
        return NULL;
    }
    return arena_strdup(w, n->str);
}

static void
apply_strlist(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *v, void *base)
{
    const cn_dom_node_t *one = NULL, *seq = NULL;
    if (v != NULL && v->kind == CN_DOM_SCALAR && !v->is_null && (f->flags & CN_SCALAR_OK))
        one = v;
    else
        seq = container(w, f, v, CN_DOM_SEQ);
    size_t n = one != NULL ? 1 : seq != NULL ? seq->n : 0;
    char **items = alloc_items(w, base, f, n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        size_t old = one != NULL ? w->path_len : cn_conf_path_push(w, NULL, i);
        items[i] = take_string(w, f, one != NULL ? one : seq->items[i], true);
        cn_conf_path_pop(w, old);
    }
}

static void
apply_strmap(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *v, void *base)
{
    char q[QUOTE_MAX];
    const char *why;
    const cn_dom_node_t *map = container(w, f, v, CN_DOM_MAP);
    cn_conf_kv_t *items = alloc_items(w, base, f, map ? map->n : 0, sizeof(cn_conf_kv_t));
    for (size_t i = 0; map != NULL && i < map->n; i++) {
        const cn_dom_node_t *key = map->pairs[i].key, *val = map->pairs[i].value;
        if (f->check != NULL && (why = f->check(key->str)) != NULL)
            cn_conf_error(w, key, "invalid name %s: %s", cn_conf_quote(q, sizeof(q), key->str),
                          why);
        items[i].name = arena_strdup(w, key->str);
        size_t old = cn_conf_path_push(w, key->str, 0);
        if (!((f->flags & CN_NULL_VALUES) && cn_dom_is_none(val)))
            items[i].value = take_string(w, f, val, false);
        if (items[i].value != NULL && strpbrk(items[i].value, "\r\n") != NULL)
            cn_conf_error(w, val, "values must not contain line breaks");
        cn_conf_path_pop(w, old);
    }
}

static void
default_cidrs(cn_conf_walk_t *w, const cn_conf_field_t *f, void *base)
{
    char item[64];
    size_t n = 0;
    for (const char *p = f->def; *p != '\0'; p++)
        n += *p == ',';
    cn_conf_cidr_t *items = alloc_items(w, base, f, f->def[0] ? n + 1 : 0, sizeof(cn_conf_cidr_t));
    for (const char *p = f->def; *p != '\0' && items != NULL; items++) {
        size_t len = strcspn(p, ",");
        CN_ASSERT(len < sizeof(item));
        memcpy(item, p, len);
        item[len] = '\0';
        bool ok = cn_conf_cidr_parse(item, items);
        CN_ASSERT(ok); /* a default that does not parse is a bug in the table */
        p += len;
        p += strspn(p, ", ");
    }
}

static void
apply_cidrlist(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *v, void *base)
{
    char q[QUOTE_MAX];
    if (v == NULL && f->def != NULL) {
        default_cidrs(w, f, base);
        return;
    }
    const cn_dom_node_t *seq = container(w, f, v, CN_DOM_SEQ);
    cn_conf_cidr_t *items = alloc_items(w, base, f, seq ? seq->n : 0, sizeof(cn_conf_cidr_t));
    for (size_t i = 0; seq != NULL && i < seq->n; i++) {
        const cn_dom_node_t *it = seq->items[i];
        size_t old = cn_conf_path_push(w, NULL, i);
        if (it->kind != CN_DOM_SCALAR || it->is_null)
            cn_conf_error(w, it, "expected a CIDR range, got %s", describe(it, q, sizeof(q)));
        else if (!cn_conf_cidr_parse(it->str, &items[i]))
            cn_conf_error(w, it, "invalid CIDR range %s (expected e.g. 10.0.0.0/8 or ::1/128)",
                          cn_conf_quote(q, sizeof(q), it->str));
        cn_conf_path_pop(w, old);
    }
}

/* @v is the value node, or NULL when the key is absent (defaults only). */
static void
apply_field(cn_conf_walk_t *w, const cn_conf_field_t *f, const cn_dom_node_t *v, void *base)
{
    void *dst = (char *)base + f->off;
    if (is_scalar_type(f->type)) {
        apply_scalar(w, f, v, dst);
        return;
    }
    switch (f->type) {
    case CN_CONF_T_STRUCT:
        if (apply_obj(w, f->sub, v, dst, false) && f->post != NULL)
            f->post(w, cn_dom_is_none(v) ? NULL : v, dst, 0);
        break;
    case CN_CONF_T_LIST:
        apply_list(w, f, v, base);
        break;
    case CN_CONF_T_MAP:
        apply_map(w, f, v, base);
        break;
    case CN_CONF_T_STRLIST:
        apply_strlist(w, f, v, base);
        break;
    case CN_CONF_T_STRMAP:
        apply_strmap(w, f, v, base);
        break;
    case CN_CONF_T_CIDRLIST:
        apply_cidrlist(w, f, v, base);
        break;
    default:
        CN_ASSERT(!"unhandled field type");
    }
}

static const cn_conf_field_t *
find_field(const cn_conf_field_t *fields, const char *name)
{
    for (const cn_conf_field_t *f = fields; f->name != NULL; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static void
unknown_key(cn_conf_walk_t *w, const cn_conf_field_t *fields, const cn_dom_node_t *key)
{
    const char *names[64];
    char q[QUOTE_MAX];
    size_t n = 0;
    for (const cn_conf_field_t *f = fields; f->name != NULL && n < CN_ARRAY_LEN(names); f++)
        names[n++] = f->name;
    const char *sug = cn_conf_suggest(key->str, names, n);
    cn_conf_quote(q, sizeof(q), key->str);
    if (sug != NULL)
        cn_conf_error(w, key, "unknown key %s; did you mean \"%s\"?", q, sug);
    else
        cn_conf_error(w, key, "unknown key %s", q);
}

/* With @must, a null @map counts as an empty mapping (a list item must be an object);
 * otherwise it means "section absent". Returns false when @map is not a mapping. */
static bool
apply_obj(cn_conf_walk_t *w, const cn_conf_field_t *fields, const cn_dom_node_t *map, void *base,
          bool must)
{
    char q[QUOTE_MAX];
    bool ok = true;
    if (map != NULL && map->kind != CN_DOM_MAP && !(cn_dom_is_none(map))) {
        cn_conf_error(w, map, "expected a mapping, got %s", describe(map, q, sizeof(q)));
        map = NULL;
        ok = false;
    }
    if (map != NULL && cn_dom_is_none(map) && !must)
        map = NULL;
    for (size_t i = 0; map != NULL && i < map->n; i++)
        if (find_field(fields, map->pairs[i].key->str) == NULL)
            unknown_key(w, fields, map->pairs[i].key);
    for (const cn_conf_field_t *f = fields; f->name != NULL; f++) {
        const cn_dom_node_t *v = cn_dom_get(map, f->name);
        if (v == NULL && map != NULL && (f->flags & CN_REQUIRED))
            cn_conf_error(w, map, "missing required key \"%s\"", f->name);
        size_t old = cn_conf_path_push(w, f->name, 0);
        apply_field(w, f, v, base);
        cn_conf_path_pop(w, old);
    }
    return ok;
}

void
cn_conf_apply(cn_conf_walk_t *w, const cn_conf_field_t *fields, const cn_dom_node_t *map,
              void *base)
{
    apply_obj(w, fields, map, base, true);
}
