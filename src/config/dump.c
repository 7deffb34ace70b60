/* SPDX-License-Identifier: MIT */
/* The schema tables rendered two ways: cn_config_dump() writes a loaded configuration back as
 * YAML with every default filled in (what `cairn` actually runs with), and
 * cn_config_write_docs() writes docs/config.md, so the reference cannot drift from the code. */
#include "config/config.h"

#include <stdio.h>
#include <string.h>

#include "config/schema.h"
#include "core/str.h"

/* ---- YAML output --------------------------------------------------------------------- */

static bool
plain_ok(const char *s, bool flow)
{
    static const char *const reserved[] = {"null", "Null", "NULL", "~"};
    if (*s == '\0')
        return false;
    for (size_t i = 0; i < CN_ARRAY_LEN(reserved); i++)
        if (strcmp(s, reserved[i]) == 0)
            return false;
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '/' || *s == '_' || *s == '.'))
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (strchr("_./-+=*", c) != NULL || (c == ':' && !flow && p[1] != '\0' && p[1] != ' '))
            continue;
        return false;
    }
    return true;
}

static void
put_str(FILE *out, const char *s, bool flow)
{
    if (s == NULL) {
        fputs("null", out);
        return;
    }
    if (plain_ok(s, flow)) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void
pad(FILE *out, int n)
{
    fprintf(out, "%*s", n, "");
}

/* Multi-line text reads best as a literal block: it must end with exactly one newline (the
 * default "clip" chomping), not start with a space or newline, and hold no other control
 * characters than newline and tab. */
static bool
block_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || s[0] == ' ' || s[0] == '\n' || s[n - 1] != '\n' || s[n - 2] == '\n')
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
            return false;
    return strchr(s, '\n') != s + n - 1;
}

static void
put_block(FILE *out, const char *s, int indent)
{
    fputs("|\n", out);
    while (*s != '\0') {
        const char *nl = strchr(s, '\n');
        if (nl != s)
            pad(out, indent);
        fwrite(s, 1, (size_t)(nl - s) + 1, out);
        s = nl + 1;
    }
}

static const void *
at(const void *base, size_t off)
{
    return (const char *)base + off;
}

/* Writes the value after "key: "; a literal block ends with its own newline. */
static void
dump_scalar(FILE *out, const cn_conf_field_t *f, const void *p, int indent)
{
    const char *str;
    char buf[64];
    int e;
    switch (f->type) {
    case CN_CONF_T_STR:
        str = *(char *const *)p;
        if (str != NULL && block_ok(str)) {
            put_block(out, str, indent + 2);
            return;
        }
        put_str(out, str, false);
        break;
    case CN_CONF_T_U32:
        fprintf(out, "%u", *(const uint32_t *)p);
        break;
    case CN_CONF_T_BOOL:
        fputs(*(const bool *)p ? "true" : "false", out);
        break;
    case CN_CONF_T_MSEC:
        cn_format_duration_ms(*(const uint64_t *)p, buf, sizeof(buf));
        fputs(buf, out);
        break;
    case CN_CONF_T_SIZE:
        cn_format_size(*(const uint64_t *)p, buf, sizeof(buf));
        fputs(buf, out);
        break;
    case CN_CONF_T_ENUM:
        e = *(const int *)p;
        for (int i = 0; f->names[i] != NULL; i++)
            if (i == e)
                fputs(f->names[i], out);
        break;
    case CN_CONF_T_ADDR:
        put_str(out, ((const cn_conf_addr_t *)p)->text, false);
        break;
    default:
        break;
    }
    fputc('\n', out);
}

static void dump_fields(FILE *out, const cn_conf_field_t *fields, const void *base, int indent,
                        bool *inline_first);

/* Starts a line for @key: indentation unless the line was begun by a list dash. */
static void
key_line(FILE *out, const char *key, int indent, bool *inline_first)
{
    if (*inline_first)
        *inline_first = false;
    else
        pad(out, indent);
    put_str(out, key, false);
    fputc(':', out);
}

static void
dump_list(FILE *out, const cn_conf_field_t *f, const void *base, int indent)
{
    const char *items = *(char *const *)at(base, f->off);
    size_t n = *(const size_t *)at(base, f->n_off);
    if (n == 0) {
        fputs(" []\n", out);
        return;
    }
    fputc('\n', out);
    for (size_t i = 0; i < n; i++) {
        bool first = true;
        pad(out, indent + 2);
        fputs("- ", out);
        dump_fields(out, f->sub, items + i * f->elem_size, indent + 4, &first);
        if (first)
            fputs("{}\n", out);
    }
}

static void
dump_map(FILE *out, const cn_conf_field_t *f, const void *base, int indent)
{
    const char *items = *(char *const *)at(base, f->off);
    size_t n = *(const size_t *)at(base, f->n_off);
    bool no = false;
    if (n == 0) {
        fputs(" {}\n", out);
        return;
    }
    fputc('\n', out);
    for (size_t i = 0; i < n; i++) {
        const char *elem = items + i * f->elem_size;
        pad(out, indent + 2);
        if (f->flags & CN_KEY_U32)
            fprintf(out, "%u:\n", *(const uint32_t *)at(elem, f->key_off));
        else
            key_line(out, *(char *const *)at(elem, f->key_off), 0, &no);
        if (!(f->flags & CN_KEY_U32))
            fputc('\n', out);
        dump_fields(out, f->sub, elem, indent + 4, &no);
    }
}

static void
dump_strs(FILE *out, const cn_conf_field_t *f, const void *base)
{
    size_t n = *(const size_t *)at(base, f->n_off);
    char buf[64];
    fputs(" [", out);
    for (size_t i = 0; i < n; i++) {
        if (i != 0)
            fputs(", ", out);
        if (f->type == CN_CONF_T_CIDRLIST) {
            cn_conf_cidr_format(&(*(cn_conf_cidr_t *const *)at(base, f->off))[i], buf, sizeof(buf));
            put_str(out, buf, true);
        } else {
            put_str(out, (*(char **const *)at(base, f->off))[i], true);
        }
    }
    fputs("]\n", out);
}

static void
dump_strmap(FILE *out, const cn_conf_field_t *f, const void *base, int indent)
{
    const cn_conf_kv_t *kv = *(cn_conf_kv_t *const *)at(base, f->off);
    size_t n = *(const size_t *)at(base, f->n_off);
    bool no = false;
    if (n == 0) {
        fputs(" {}\n", out);
        return;
    }
    fputc('\n', out);
    for (size_t i = 0; i < n; i++) {
        key_line(out, kv[i].name, indent + 2, &no);
        fputc(' ', out);
        put_str(out, kv[i].value, false);
        fputc('\n', out);
    }
}

static void
dump_fields(FILE *out, const cn_conf_field_t *fields, const void *base, int indent,
            bool *inline_first)
{
    for (const cn_conf_field_t *f = fields; f->name != NULL; f++) {
        if (f->show != NULL && !f->show(base))
            continue;
        key_line(out, f->name, indent, inline_first);
        const void *p = at(base, f->off);
        if (f->type == CN_CONF_T_STRUCT) {
            fputc('\n', out);
            dump_fields(out, f->sub, p, indent + 2, inline_first);
        } else if (f->type == CN_CONF_T_LIST) {
            dump_list(out, f, base, indent);
        } else if (f->type == CN_CONF_T_MAP) {
            dump_map(out, f, base, indent);
        } else if (f->type == CN_CONF_T_STRLIST || f->type == CN_CONF_T_CIDRLIST) {
            dump_strs(out, f, base);
        } else if (f->type == CN_CONF_T_STRMAP) {
            dump_strmap(out, f, base, indent);
        } else {
            fputc(' ', out);
            dump_scalar(out, f, p, indent);
        }
    }
}

void
cn_config_dump(const cn_config_t *c, FILE *out)
{
    bool no = false;
    fprintf(out, "# effective configuration loaded from %s\n", c->file ? c->file : "?");
    dump_fields(out, cn_conf_root_fields, c, 0, &no);
}

/* ---- Markdown reference -------------------------------------------------------------- */

static const char docs_intro[] =
    "# cairn configuration reference\n"
    "\n"
    "<!-- Generated from the schema tables in src/config/build.c by cn_config_write_docs();\n"
    "     do not edit by hand. tests/unit/test_config_docs.c fails when this file is stale;\n"
    "     regenerate it with `make docs`. -->\n"
    "\n"
    "cairn reads one YAML file. Every key is optional unless marked **required**; a key the\n"
    "schema does not know is an error (with a \"did you mean\" suggestion), so typos cannot\n"
    "silently fall back to defaults. `cairn -t` loads and checks the configuration, prints\n"
    "every problem it finds as `file:line:col: error: message` (all of them, not only the\n"
    "first), and exits with a non-zero status when there is any. A configuration that does\n"
    "not load is never applied: on reload the running one stays in place.\n"
    "\n"
    "Value formats:\n"
    "\n"
    "- **duration**: a whole number with a unit: `ms`, `s`, `m`, `h` or `d` (`500ms`, `30s`,\n"
    "  `5m`); a bare number is seconds.\n"
    "- **size**: a whole number of bytes, optionally with a unit: `KiB`, `MiB`, `GiB`, `TiB`\n"
    "  (powers of 1024, also written `k`/`K`, `m`/`M`, `g`/`G`) or `KB`, `MB`, `GB` (powers\n"
    "  of 1000); `B` means bytes.\n"
    "- **boolean**: `true` or `false` (`yes`/`no` and `on`/`off` are accepted too).\n"
    "- **address**: `ip:port`, `[ipv6]:port`, `hostname:port` or `unix:/path/to/socket` (at\n"
    "  most 107 bytes). Listen addresses must be numeric, `localhost`, or `*:port` for every\n"
    "  IPv4 interface; upstream host names are resolved once, when the file is loaded.\n"
    "- `null` (or nothing after the colon) leaves an optional string unset.\n"
    "- In paths below, `[]` stands for any list item and `<name>` for a key you choose.\n"
    "\n"
    "A minimal configuration:\n"
    "\n"
    "```yaml\n"
    "listeners:\n"
    "  - listen: 127.0.0.1:8080\n"
    "upstreams:\n"
    "  origin:\n"
    "    peers:\n"
    "      - address: 127.0.0.1:8081\n"
    "caches:\n"
    "  main:\n"
    "    memory: {size: 256MiB}\n"
    "routes:\n"
    "  - upstream: origin\n"
    "    cache: main\n"
    "```\n"
    "\n"
    "Each route needs exactly one action: `upstream`, `static`, `redirect` or `files`.\n"
    "Routes are tried in order; the first whose `match` holds handles the request.\n";

static const char *
doc_type(const cn_conf_field_t *f, char *buf, size_t n)
{
    size_t used;
    switch (f->type) {
    case CN_CONF_T_STR:
        return "string";
    case CN_CONF_T_U32:
        return (f->flags & CN_AUTO) ? "integer or `auto`" : "integer";
    case CN_CONF_T_BOOL:
        return "boolean";
    case CN_CONF_T_MSEC:
        return "duration";
    case CN_CONF_T_SIZE:
        return "size";
    case CN_CONF_T_ENUM:
        used = (size_t)snprintf(buf, n, "one of");
        for (size_t i = 0; f->names[i] != NULL && used < n; i++)
            used += (size_t)snprintf(buf + used, n - used, "%s `%s`", i ? "," : "", f->names[i]);
        return buf;
    case CN_CONF_T_ADDR:
        return (f->flags & CN_ADDR_OFF) ? "address or `off`" : "address";
    case CN_CONF_T_STRUCT:
        return "mapping";
    case CN_CONF_T_LIST:
        return "list of mappings";
    case CN_CONF_T_MAP:
        return (f->flags & CN_KEY_U32) ? "mapping of status to mapping"
                                       : "mapping of name to mapping";
    case CN_CONF_T_STRLIST:
        return (f->flags & CN_SCALAR_OK) ? "string or list of strings" : "list of strings";
    case CN_CONF_T_STRMAP:
        return (f->flags & CN_NULL_VALUES) ? "mapping of name to string or null"
                                           : "mapping of name to string";
    case CN_CONF_T_CIDRLIST:
        return "list of CIDR ranges";
    case CN_CONF_T_END:
        break;
    }
    return "?";
}

static const char *
doc_default(const cn_conf_field_t *f, char *buf, size_t n)
{
    if (f->flags & CN_REQUIRED)
        return "**required**";
    switch (f->type) {
    case CN_CONF_T_STRUCT:
        return "";
    case CN_CONF_T_CIDRLIST:
        if (f->def == NULL)
            return "`[]`";
        snprintf(buf, n, "`[%s]`", f->def);
        return buf;
    case CN_CONF_T_LIST:
    case CN_CONF_T_STRLIST:
        return "`[]`";
    case CN_CONF_T_MAP:
    case CN_CONF_T_STRMAP:
        return "`{}`";
    default:
        break;
    }
    if (f->def == NULL)
        return "`null`";
    snprintf(buf, n, f->def[0] == '\0' ? "`\"\"`" : "`%s`", f->def);
    return buf;
}

static const char *
doc_range(const cn_conf_field_t *f, char *buf, size_t n)
{
    char lo[32], hi[32];
    bool sized = f->type == CN_CONF_T_SIZE, msec = f->type == CN_CONF_T_MSEC;
    if (!(f->type == CN_CONF_T_U32 || sized || msec || (f->flags & CN_KEY_U32)))
        return "";
    if (f->min == 0 && f->max == 0)
        return "";
    if (sized) {
        cn_format_size(f->min, lo, sizeof(lo));
        cn_format_size(f->max, hi, sizeof(hi));
    } else if (msec) {
        cn_format_duration_ms(f->min, lo, sizeof(lo));
        cn_format_duration_ms(f->max, hi, sizeof(hi));
    } else {
        snprintf(lo, sizeof(lo), "%llu", (unsigned long long)f->min);
        snprintf(hi, sizeof(hi), "%llu", (unsigned long long)f->max);
    }
    if (f->max == 0)
        snprintf(buf, n, ">= %s", lo);
    else
        snprintf(buf, n, "%s..%s", lo, hi);
    return buf;
}

static void
doc_rows(FILE *out, const cn_conf_field_t *fields, const char *prefix)
{
    char path[256], type[160], def[96], range[80];
    for (const cn_conf_field_t *f = fields; f->name != NULL; f++) {
        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", f->name);
        fprintf(out, "| `%s` | %s | %s | %s | %s |\n", path, doc_type(f, type, sizeof(type)),
                doc_default(f, def, sizeof(def)), doc_range(f, range, sizeof(range)), f->doc);
        if (f->type == CN_CONF_T_STRUCT) {
            doc_rows(out, f->sub, path);
        } else if (f->type == CN_CONF_T_LIST) {
            strncat(path, "[]", sizeof(path) - strlen(path) - 1);
            doc_rows(out, f->sub, path);
        } else if (f->type == CN_CONF_T_MAP) {
            strncat(path, (f->flags & CN_KEY_U32) ? ".<status>" : ".<name>",
                    sizeof(path) - strlen(path) - 1);
            doc_rows(out, f->sub, path);
        }
    }
}

void
cn_config_write_docs(FILE *out)
{
    fputs(docs_intro, out);
    for (const cn_conf_field_t *f = cn_conf_root_fields; f->name != NULL; f++) {
        fprintf(out, "\n## `%s`\n\n%s\n\n", f->name, f->doc);
        fputs("| Key | Type | Default | Range | Description |\n", out);
        fputs("|---|---|---|---|---|\n", out);
        doc_rows(out, (const cn_conf_field_t[]){*f, CN_CONF_END}, "");
    }
}
