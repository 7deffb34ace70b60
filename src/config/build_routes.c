/* SPDX-License-Identifier: MIT */
/* The routes section of cairn's YAML: the schema tables of a route (match, the actions
 * upstream, static, redirect and files, header rules, error pages), the checks of the values
 * they take (header names, methods, paths, hosts), and the post hooks that check a route
 * across its keys (exactly one action, references to listeners, upstreams and caches). The
 * root table in build.c refers to cn_conf_route_fields and cn_conf_route_post. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config/build_int.h"
#include "config/config.h"
#include "config/schema.h"

#define ERROR_PAGE_MAX (1 * MiB)

/* ---- value checks -------------------------------------------------------------------- */

static bool
is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *
check_header_name(const char *s)
{
    if (*s == '\0')
        return "a header name must not be empty";
    for (; *s != '\0'; s++)
        if (!is_tchar(*s))
            return "a header name is an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
    return NULL;
}

static const char *
check_method(const char *s)
{
    if (*s == '\0')
        return "a method must not be empty";
    for (; *s != '\0'; s++)
        if (!is_tchar(*s) || (*s >= 'a' && *s <= 'z'))
            return "a method is an uppercase token such as GET";
    return NULL;
}

static const char *
check_path(const char *s)
{
    if (s[0] != '/')
        return "a path must start with \"/\"";
    return cn_conf_check_text(s);
}

static const char *
check_host(const char *s)
{
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    if (*s == '\0')
        return "expected a host name or *.domain";
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_' || *s == ':' || *s == '[' || *s == ']'))
            return "expected a host name or *.domain";
    return NULL;
}

/* ---- routes -------------------------------------------------------------------------- */

static void
free_regex(void *code)
{
    pcre2_code_free(code);
}

static const char *const client_cert_names[] = {"any", "verified", "none", NULL};

static const cn_conf_field_t match_fields[] = {
    CN_CONF_STR("listener", cn_conf_match_t, listener, NULL, CN_NULLABLE,
                "Name of the listener the request arrived on."),
    CN_CONF_STRLIST("host", cn_conf_match_t, hosts, n_hosts, CN_SCALAR_OK, check_host,
                    "Host of the request: a name or a list of names; \"*.example.com\" matches "
                    "any subdomain; case-insensitive."),
    CN_CONF_ENUM("client_cert", cn_conf_match_t, client_cert, client_cert_names, "any",
                 "mTLS: any, verified (the connection presented a verified client "
                 "certificate) or none."),
    CN_CONF_STRLIST("client_san", cn_conf_match_t, client_sans, n_client_sans, CN_SCALAR_OK, NULL,
                    "mTLS: one subjectAltName of the verified client certificate, written "
                    "\"DNS:name\", \"URI:spiffe://x/y\" or \"email:a@b\"; a trailing * matches "
                    "any rest."),
    CN_CONF_STRLIST("sni", cn_conf_match_t, snis, n_snis, CN_SCALAR_OK, check_host,
                    "TLS server name the client sent (SNI): a name or a list, \"*.example.com\" "
                    "for any subdomain; never matches a plain connection."),
    CN_CONF_STR_X("path_prefix", cn_conf_match_t, path_prefix, NULL, CN_NULLABLE, check_path, NULL,
                  "The path starts with this."),
    CN_CONF_STR_X("path", cn_conf_match_t, path, NULL, CN_NULLABLE, check_path, NULL,
                  "The path equals this."),
    CN_CONF_STR("path_regex", cn_conf_match_t, path_regex, NULL, CN_NULLABLE,
                "The path matches this PCRE2 regular expression (compiled at load)."),
    CN_CONF_STRLIST("methods", cn_conf_match_t, methods, n_methods, 0, check_method,
                    "The method is one of these (uppercase tokens)."),
    CN_CONF_STRMAP("headers", cn_conf_match_t, headers, n_headers, CN_NULL_VALUES,
                   check_header_name,
                   "Request headers that must be present (null) or have exactly this value."),
    CN_CONF_STRMAP("query", cn_conf_match_t, query, n_query, CN_NULL_VALUES, NULL,
                   "Query parameters that must be present (null) or have exactly this value."),
    CN_CONF_END,
};

static void
match_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    cn_conf_match_t *m = obj;
    cn_config_t *cfg = w->cfg;
    (void)index;
    if (m->listener != NULL)
        cn_conf_check_ref(w, node, "listener", "listener", m->listener, cfg->listeners,
                          cfg->n_listeners, sizeof(cn_conf_listener_t),
                          offsetof(cn_conf_listener_t, name));
    if (m->path_regex != NULL) {
        int code;
        PCRE2_SIZE off;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)m->path_regex, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
        if (re == NULL) {
            char msg[256];
            pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
            cn_conf_error_at_key(w, node, "path_regex",
                                 "invalid regular expression: %s at offset %zu", msg, (size_t)off);
        } else {
            m->path_re = re;
            cn_arena_defer(w->arena, free_regex, re);
        }
    }
}

static const cn_conf_field_t client_cert_fields[] = {
    CN_CONF_STR_X("subject", cn_conf_route_t, client_cert_headers.subject, NULL, CN_NULLABLE,
                  check_header_name, NULL, "Header with the subject (RFC 2253)."),
    CN_CONF_STR_X("san", cn_conf_route_t, client_cert_headers.san, NULL, CN_NULLABLE,
                  check_header_name, NULL,
                  "Header with the subjectAltNames (DNS:, URI:, email:), comma-separated."),
    CN_CONF_STR_X("fingerprint", cn_conf_route_t, client_cert_headers.fingerprint, NULL,
                  CN_NULLABLE, check_header_name, NULL,
                  "Header with the SHA-256 fingerprint (lower-case hex)."),
    CN_CONF_STR_X("serial", cn_conf_route_t, client_cert_headers.serial, NULL, CN_NULLABLE,
                  check_header_name, NULL, "Header with the serial number (hex)."),
    CN_CONF_END,
};

static const cn_conf_field_t header_rules_fields[] = {
    CN_CONF_STRMAP("add", cn_conf_header_rules_t, add, n_add, 0, check_header_name,
                   "Headers appended, keeping existing values."),
    CN_CONF_STRMAP("set", cn_conf_header_rules_t, set, n_set, 0, check_header_name,
                   "Headers set, replacing every existing value."),
    CN_CONF_STRLIST("remove", cn_conf_header_rules_t, remove, n_remove, 0, check_header_name,
                    "Headers removed."),
    CN_CONF_END,
};

static const cn_conf_field_t static_fields[] = {
    CN_CONF_U32("status", cn_conf_route_t, static_.status, "200", 100, 599, "Response status."),
    CN_CONF_STRMAP("headers", cn_conf_route_t, static_.headers, static_.n_headers, 0,
                   check_header_name, "Response headers."),
    CN_CONF_STR("body", cn_conf_route_t, static_.body, "", 0, "Response body."),
    CN_CONF_END,
};

static const cn_conf_field_t redirect_fields[] = {
    CN_CONF_STR_X("to", cn_conf_route_t, redirect.to, NULL, CN_REQUIRED,
                  cn_conf_check_nonempty_text, NULL, "Target URL or path (the Location header)."),
    CN_CONF_U32("status", cn_conf_route_t, redirect.status, "301", 301, 308,
                "Redirect status: 301, 302, 303, 307 or 308."),
    CN_CONF_BOOL("keep_path", cn_conf_route_t, redirect.keep_path, "false",
                 "Append the part of the request path after match.path_prefix to the target."),
    CN_CONF_END,
};

static void
redirect_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    const cn_conf_route_t *r = obj;
    uint32_t s = r->redirect.status;
    (void)index;
    if (node != NULL && s != 301 && s != 302 && s != 303 && s != 307 && s != 308)
        cn_conf_error_at_key(w, node, "status", "must be one of 301, 302, 303, 307 or 308");
}

static const cn_conf_field_t files_fields[] = {
    CN_CONF_STR_X("root", cn_conf_route_t, files.root, NULL, CN_REQUIRED,
                  cn_conf_check_nonempty_text, NULL,
                  "Directory served; it must exist when the configuration is loaded."),
    CN_CONF_STR_X("index", cn_conf_route_t, files.index, "index.html", 0,
                  cn_conf_check_nonempty_text, NULL,
                  "File served for a request that names a directory."),
    CN_CONF_END,
};

static void
files_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    const cn_conf_route_t *r = obj;
    struct stat st;
    (void)index;
    if (node == NULL || r->files.root == NULL)
        return;
    if (stat(r->files.root, &st) != 0)
        cn_conf_unreadable(w, node, "root", r->files.root, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        cn_conf_unreadable(w, node, "root", r->files.root, "not a directory");
}

static bool
page_has_body(const void *obj)
{
    return ((const cn_conf_error_page_t *)obj)->file == NULL;
}

static const cn_conf_field_t error_page_fields[] = {
    CN_CONF_STR_X("body", cn_conf_error_page_t, body, NULL, CN_NULLABLE, NULL, page_has_body,
                  "Inline body (exclusive with file)."),
    CN_CONF_STR("file", cn_conf_error_page_t, file, NULL, CN_NULLABLE,
                "File whose content is the body, read once at load (at most 1MiB)."),
    CN_CONF_STR_X("content_type", cn_conf_error_page_t, content_type, NULL, CN_NULLABLE,
                  cn_conf_check_text, NULL,
                  "Content-Type of the page; default text/html for a file ending in .html or "
                  ".htm, else text/plain."),
    CN_CONF_END,
};

static const char *
read_small_file(cn_arena_t *arena, const char *path, char **out)
{
    struct stat st;
    /* Non-blocking so that a FIFO or device named by mistake cannot hang the load. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return strerror(errno);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)ERROR_PAGE_MAX) {
        close(fd);
        return S_ISREG(st.st_mode) ? "larger than 1MiB" : "not a regular file";
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *buf = cn_arena_xalloc(arena, len + 1);
    while (got < len) {
        ssize_t k = read(fd, buf + got, len - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    return NULL;
}

static bool
has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void
error_page_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    cn_conf_error_page_t *p = obj;
    const char *why;
    (void)index;
    if ((p->body == NULL) == (p->file == NULL)) {
        cn_conf_error(w, node, "set exactly one of body or file");
        return;
    }
    if (p->file != NULL && (why = read_small_file(w->arena, p->file, &p->body)) != NULL)
        cn_conf_unreadable(w, node, "file", p->file, why);
    if (p->content_type == NULL)
        p->content_type =
            (p->file != NULL && (has_suffix(p->file, ".html") || has_suffix(p->file, ".htm")))
                ? "text/html"
                : "text/plain";
}

static bool
route_is_proxy(const void *obj)
{
    return ((const cn_conf_route_t *)obj)->action == CN_ROUTE_PROXY;
}

static bool
route_is_static(const void *obj)
{
    return ((const cn_conf_route_t *)obj)->action == CN_ROUTE_STATIC;
}

static bool
route_is_redirect(const void *obj)
{
    return ((const cn_conf_route_t *)obj)->action == CN_ROUTE_REDIRECT;
}

static bool
route_is_files(const void *obj)
{
    return ((const cn_conf_route_t *)obj)->action == CN_ROUTE_FILES;
}

const cn_conf_field_t cn_conf_route_fields[] = {
    CN_CONF_STR_X("name", cn_conf_route_t, name, NULL, CN_NULLABLE, cn_conf_check_nonempty_text,
                  NULL, "Name used in logs and metrics; default route<N> (N = 0-based position)."),
    CN_CONF_STRUCT("match", cn_conf_route_t, match, match_fields, match_post,
                   "Conditions that must all hold; absent or empty = every request."),
    CN_CONF_STR_X("upstream", cn_conf_route_t, upstream_name, NULL, CN_NULLABLE, NULL,
                  route_is_proxy, "Action: proxy to this upstream."),
    CN_CONF_STR_X("cache", cn_conf_route_t, cache_name, NULL, CN_NULLABLE, NULL, route_is_proxy,
                  "Cache for proxied responses (only with upstream); null = no caching."),
    CN_CONF_BOOL("strip_prefix", cn_conf_route_t, strip_prefix, "false",
                 "Remove match.path_prefix from the path before forwarding."),
    CN_CONF_STR_X("rewrite_prefix", cn_conf_route_t, rewrite_prefix, NULL, CN_NULLABLE, check_path,
                  NULL, "Replace match.path_prefix with this before forwarding."),
    CN_CONF_STR_X("host_header", cn_conf_route_t, host_header, NULL, CN_NULLABLE,
                  cn_conf_check_nonempty_text, NULL,
                  "Host header sent upstream; null = the client's."),
    CN_CONF_STRUCT("request_headers", cn_conf_route_t, request_headers, header_rules_fields, NULL,
                   "Edits of the request headers sent upstream."),
    CN_CONF_GROUP("client_cert_headers", client_cert_fields, NULL, NULL,
                  "mTLS: headers that carry the verified client certificate upstream. Fields "
                  "with these names coming from the client are always removed first."),
    CN_CONF_STRUCT("response_headers", cn_conf_route_t, response_headers, header_rules_fields, NULL,
                   "Edits of the response headers sent to the client."),
    CN_CONF_GROUP("static", static_fields, NULL, route_is_static,
                  "Action: answer with a fixed response."),
    CN_CONF_GROUP("redirect", redirect_fields, redirect_post, route_is_redirect,
                  "Action: answer with a redirect."),
    CN_CONF_GROUP("files", files_fields, files_post, route_is_files,
                  "Action: serve files from a directory."),
    CN_CONF_U32_MAP("error_pages", cn_conf_route_t, error_pages, n_error_pages,
                    cn_conf_error_page_t, status, 400, 599, error_page_fields, error_page_post,
                    "Replacement bodies for error responses, keyed by status (400-599)."),
    CN_CONF_END,
};

static void
route_action(cn_conf_walk_t *w, const cn_dom_node_t *node, cn_conf_route_t *r)
{
    static const char *const keys[] = {"upstream", "static", "redirect", "files"};
    static const cn_route_action_t actions[] = {CN_ROUTE_PROXY, CN_ROUTE_STATIC, CN_ROUTE_REDIRECT,
                                                CN_ROUTE_FILES};
    const char *found[4];
    size_t n = 0;
    for (size_t i = 0; i < CN_ARRAY_LEN(keys); i++) {
        if (!cn_dom_is_none(cn_dom_get(node, keys[i]))) {
            r->action = actions[i];
            found[n++] = keys[i];
        }
    }
    if (n == 0)
        cn_conf_error(w, node, "no action: set one of upstream, static, redirect or files");
    else if (n > 1)
        cn_conf_error(w, node, "a route has exactly one action, found both %s and %s", found[0],
                      found[1]);
}

void
cn_conf_route_post(cn_conf_walk_t *w, const cn_dom_node_t *node, void *obj, size_t index)
{
    cn_conf_route_t *r = obj;
    cn_config_t *cfg = w->cfg;
    r->line = node->line;
    if (r->name == NULL) {
        char name[32];
        snprintf(name, sizeof(name), "route%zu", index);
        r->name = cn_conf_strdup(&cfg->arena, name);
    }
    route_action(w, node, r);
    if (r->upstream_name != NULL &&
        cn_conf_check_ref(w, node, "upstream", "upstream", r->upstream_name, cfg->upstreams,
                          cfg->n_upstreams, sizeof(cn_conf_upstream_t),
                          offsetof(cn_conf_upstream_t, name)))
        r->upstream = cn_config_upstream(cfg, r->upstream_name);
    if (r->cache_name != NULL && r->upstream_name == NULL)
        cn_conf_error_at_key(w, node, "cache", "cache is only valid with an upstream action");
    else if (r->cache_name != NULL &&
             cn_conf_check_ref(w, node, "cache", "cache", r->cache_name, cfg->caches, cfg->n_caches,
                               sizeof(cn_conf_cache_t), offsetof(cn_conf_cache_t, name)))
        r->cache = cn_config_cache(cfg, r->cache_name);
    if ((r->strip_prefix || r->rewrite_prefix != NULL) && r->match.path_prefix == NULL)
        cn_conf_error_at_key(w, node, r->strip_prefix ? "strip_prefix" : "rewrite_prefix",
                             "requires match.path_prefix");
    else if (r->strip_prefix && r->rewrite_prefix != NULL)
        cn_conf_error_at_key(w, node, "rewrite_prefix",
                             "strip_prefix and rewrite_prefix are exclusive");
}
