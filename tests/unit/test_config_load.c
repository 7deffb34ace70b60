/* SPDX-License-Identifier: MIT */
/* src/config: valid configurations land in the structs with every value and default, the
 * embedded default loads, the dump reloads to the same text, refcounts and diagnostics. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/log.h"

#define DATA CN_SOURCE_DIR "/tests/data"

static cn_config_t *
load_ok(const char *text)
{
    cn_diags_t d = {0};
    cn_config_t *c = NULL;
    cairn_err_t rc = cn_config_load_string("test.yaml", text, strlen(text), &c, &d);
    if (rc != CAIRN_OK)
        cn_diags_print(&d, stderr);
    assert_int_equal(rc, CAIRN_OK);
    assert_int_equal(d.n, 0);
    assert_non_null(c);
    cn_diags_fini(&d);
    return c;
}

static char *
dump_to_string(const cn_config_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    cn_config_dump(c, f);
    fclose(f);
    return buf;
}

static uint16_t
port_of(const cn_conf_addr_t *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return 0;
}

static void
assert_v4(const cn_conf_addr_t *a, const char *ip, uint16_t port)
{
    char buf[INET_ADDRSTRLEN];
    assert_int_equal(a->ss.ss_family, AF_INET);
    assert_int_equal(a->sslen, sizeof(struct sockaddr_in));
    inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->ss)->sin_addr, buf, sizeof(buf));
    assert_string_equal(buf, ip);
    assert_int_equal(port_of(a), port);
}

static const cn_conf_kv_t *
kv_find(const cn_conf_kv_t *kv, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].name, name) == 0)
            return &kv[i];
    return NULL;
}

static void
test_embedded_default_loads(void **state)
{
    (void)state;
    cn_config_t *c = load_ok(cn_config_embedded_default());
    assert_true(c->server.workers >= 1 && c->server.workers <= 1024);
    assert_string_equal(c->server.access_log, "stdout");
    assert_true(c->admin.enabled);
    assert_v4(&c->admin.listen, "127.0.0.1", 9901);

    assert_int_equal(c->n_listeners, 2);
    assert_string_equal(c->listeners[0].name, "public");
    assert_v4(&c->listeners[0].addr, "127.0.0.1", 8080);
    assert_string_equal(c->listeners[1].name, "demo-origin");
    assert_v4(&c->listeners[1].addr, "127.0.0.1", 8081);

    const cn_conf_upstream_t *origin = cn_config_upstream(c, "origin");
    assert_non_null(origin);
    assert_int_equal(origin->n_peers, 1);
    assert_v4(&origin->peers[0].addr, "127.0.0.1", 8081);
    const cn_conf_cache_t *main_cache = cn_config_cache(c, "main");
    assert_non_null(main_cache);
    assert_int_equal(main_cache->memory_size, 64ull << 20);

    assert_int_equal(c->n_routes, 5);
    static const char *const paths[] = {"/", "/hello.txt", "/nocache", NULL};
    static const char *const cc[] = {"public, max-age=60", "public, max-age=30", "no-store", NULL};
    for (size_t i = 0; i < 4; i++) {
        const cn_conf_route_t *r = &c->routes[i];
        assert_int_equal(r->action, CN_ROUTE_STATIC);
        assert_string_equal(r->match.listener, "demo-origin");
        if (paths[i] != NULL) {
            assert_string_equal(r->match.path, paths[i]);
            assert_int_equal(r->static_.status, 200);
            const cn_conf_kv_t *h =
                kv_find(r->static_.headers, r->static_.n_headers, "Cache-Control");
            assert_non_null(h);
            assert_string_equal(h->value, cc[i]);
        } else {
            assert_null(r->match.path);
            assert_int_equal(r->static_.status, 404);
        }
    }
    assert_non_null(strstr(c->routes[0].static_.body, "/hello.txt"));
    assert_non_null(
        kv_find(c->routes[0].static_.headers, c->routes[0].static_.n_headers, "Content-Type"));
    assert_string_equal(c->routes[1].static_.body, "Hello from the cairn demo origin\n");
    const cn_conf_route_t *last = &c->routes[4];
    assert_int_equal(last->action, CN_ROUTE_PROXY);
    assert_null(last->match.listener);
    assert_ptr_equal(last->upstream, origin);
    assert_ptr_equal(last->cache, main_cache);
    cn_config_unref(c);
}

static void
test_defaults(void **state)
{
    (void)state;
    cn_config_t *c = load_ok("listeners:\n  - listen: 127.0.0.1:8080\n");
    const cn_conf_server_t *s = &c->server;
    assert_true(s->workers >= 1);
    assert_int_equal(s->shutdown_grace_ms, 30000);
    assert_int_equal(s->log_level, CN_LOG_INFO);
    assert_string_equal(s->error_log, "stderr");
    assert_string_equal(s->access_log, "stdout");
    assert_int_equal(s->access_log_format, CN_ACCESS_LOG_JSON);
    assert_false(s->daemon);
    assert_string_equal(s->pid_file, "cairn.pid");
    assert_false(s->pid_file_set);
    assert_string_equal(s->upgrade_socket, "cairn.upgrade.sock");
    assert_int_equal(s->header_timeout_ms, 10000);
    assert_int_equal(s->keepalive_timeout_ms, 60000);
    assert_int_equal(s->body_timeout_ms, 60000);
    assert_int_equal(s->send_timeout_ms, 60000);
    assert_int_equal(s->max_header_size, 64 * 1024);
    assert_int_equal(s->max_headers, 100);
    assert_int_equal(s->max_uri_size, 8 * 1024);
    assert_int_equal(s->max_body_size, 1ull << 30);
    assert_int_equal(s->request_memory, 1 << 20);
    assert_string_equal(s->server_header, "cairn");
    assert_int_equal(s->n_trusted_proxies, 2); /* loopback: a proxy on the same host */
    assert_int_equal(s->trusted_proxies[0].family, AF_INET);
    assert_memory_equal(s->trusted_proxies[0].addr, "\x7f\0\0\0", 4);
    assert_int_equal(s->trusted_proxies[0].prefix, 8);
    assert_int_equal(s->trusted_proxies[1].family, AF_INET6);
    assert_int_equal(s->trusted_proxies[1].prefix, 128);
    assert_true(c->admin.enabled);
    assert_v4(&c->admin.listen, "127.0.0.1", 9901);
    assert_string_equal(c->admin.listen.text, "127.0.0.1:9901");
    assert_null(c->admin.token);
    assert_null(c->listeners[0].name);
    assert_null(c->listeners[0].tls_cert);
    assert_null(c->listeners[0].tls_key);
    assert_int_equal(c->n_upstreams, 0);
    assert_int_equal(c->n_caches, 0);
    assert_int_equal(c->n_routes, 0);
    assert_string_equal(c->file, "test.yaml");
    assert_int_equal(c->refcnt, 1);
    cn_config_unref(c);
}

static void
test_upstream_and_route_defaults(void **state)
{
    (void)state;
    cn_config_t *c = load_ok("listeners: [{listen: '*:8080'}]\n"
                             "upstreams: {u: {peers: [{address: 'localhost:81'}]}}\n"
                             "caches: {k: {}}\n"
                             "routes:\n"
                             "  - upstream: u\n"
                             "  - redirect: {to: /x}\n"
                             "  - files: {root: " DATA "}\n");
    assert_v4(&c->listeners[0].addr, "0.0.0.0", 8080);
    const cn_conf_upstream_t *u = &c->upstreams[0];
    assert_string_equal(u->name, "u");
    assert_int_equal(u->peers[0].weight, 1);
    assert_int_equal(port_of(&u->peers[0].addr), 81);
    assert_int_equal(u->connect_timeout_ms, 2000);
    assert_int_equal(u->read_timeout_ms, 30000);
    assert_int_equal(u->write_timeout_ms, 30000);
    assert_int_equal(u->retries, 1);
    assert_int_equal(u->max_in_flight, 0);
    assert_int_equal(u->queue_timeout_ms, 10000);
    assert_int_equal(u->retry_after, 1);
    assert_false(u->pass_takes_slot);
    assert_int_equal(u->keepalive_pool, 64);
    assert_int_equal(u->keepalive_idle_ms, 60000);
    assert_int_equal(u->buffer_size, 64 * 1024);
    const cn_conf_cache_t *k = &c->caches[0];
    assert_string_equal(k->name, "k");
    assert_int_equal(k->memory_size, 256ull << 20);
    assert_int_equal(k->memory_max_object, 8ull << 20);
    assert_int_equal(k->lock_wait_timeout_ms, 10000);
    assert_int_equal(k->lock_age_timeout_ms, 10000);

    assert_int_equal(c->n_routes, 3);
    for (size_t i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "route%zu", i);
        assert_string_equal(c->routes[i].name, name);
    }
    assert_int_equal(c->routes[0].action, CN_ROUTE_PROXY);
    assert_ptr_equal(c->routes[0].upstream, u);
    assert_null(c->routes[0].cache);
    assert_int_equal(c->routes[0].line, 5);
    assert_int_equal(c->routes[1].action, CN_ROUTE_REDIRECT);
    assert_int_equal(c->routes[1].redirect.status, 301);
    assert_false(c->routes[1].redirect.keep_path);
    assert_int_equal(c->routes[2].action, CN_ROUTE_FILES);
    assert_string_equal(c->routes[2].files.index, "index.html");
    cn_config_unref(c);
}

/* "static:" with nothing after it is a null value, which is no action at all. */
static void
test_static_null_is_no_action(void **state)
{
    (void)state;
    cn_diags_t d = {0};
    cn_config_t *c = NULL;
    const char *y = "listeners: [{listen: 127.0.0.1:1}]\nroutes:\n  - static: {}\n  - static:\n";
    assert_int_equal(cn_config_load_string("t", y, strlen(y), &c, &d), CAIRN_ECONFIG);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.items[0].line, 4);
    assert_non_null(strstr(d.items[0].msg, "no action"));
    cn_diags_fini(&d);
}

static const char full_yaml[] =
    "server:\n"
    "  workers: 3\n"
    "  shutdown_grace: 5s\n"
    "  log_level: trace\n"
    "  error_log: /var/log/cairn/error.log\n"
    "  access_log: /var/log/cairn/access.log\n"
    "  access_log_format: combined\n"
    "  daemon: true\n"
    "  pid_file: /run/cairn.pid\n"
    "  upgrade_socket: /run/cairn.upgrade\n"
    "  header_timeout: 1500ms\n"
    "  keepalive_timeout: 2m\n"
    "  body_timeout: 1h\n"
    "  send_timeout: 1d\n"
    "  max_header_size: 32KiB\n"
    "  max_headers: 50\n"
    "  max_uri_size: 4KB\n"
    "  max_body_size: 0\n"
    "  request_memory: 2MiB\n"
    "  server_header: \"\"\n"
    "  trusted_proxies: [127.0.0.1/32, \"::1/128\", 10.0.0.0/8, 192.168.1.7]\n"
    "admin:\n"
    "  listen: \"off\"\n"
    "  token: s3cret\n"
    "listeners:\n"
    "  - listen: 127.0.0.1:8080\n"
    "    name: public\n"
    "  - listen: \"[::1]:8443\"\n"
    "    name: tls\n"
    "  - listen: unix:/tmp/cairn-test.sock\n"
    "upstreams:\n"
    "  origin:\n"
    "    peers:\n"
    "      - address: 127.0.0.1:8081\n"
    "        weight: 5\n"
    "      - address: \"[::1]:8082\"\n"
    "      - address: unix:/run/app.sock\n"
    "    connect_timeout: 250ms\n"
    "    read_timeout: 45s\n"
    "    write_timeout: 15s\n"
    "    retries: 3\n"
    "    max_in_flight: 200\n"
    "    queue_timeout: 2s\n"
    "    retry_after: 7\n"
    "    pass_takes_slot: true\n"
    "    keepalive_pool: 16\n"
    "    keepalive_idle: 90s\n"
    "    buffer_size: 128KiB\n"
    "  other:\n"
    "    peers: [{address: 10.1.2.3:80}]\n"
    "caches:\n"
    "  main:\n"
    "    memory: {size: 512MiB, max_object: 16MiB}\n"
    "    lock: {wait_timeout: 3s, age_timeout: 20s}\n"
    "  small:\n"
    "    memory: {size: 1MiB}\n"
    "routes:\n"
    "  - name: api\n"
    "    match:\n"
    "      listener: public\n"
    "      host: [example.com, \"*.example.org\"]\n"
    "      path_prefix: /api\n"
    "      path_regex: \"^/api/v[0-9]+/\"\n"
    "      methods: [GET, HEAD]\n"
    "      headers: {X-Debug: null, X-Env: prod}\n"
    "      query: {debug: null, v: \"2\"}\n"
    "    upstream: origin\n"
    "    cache: main\n"
    "    rewrite_prefix: /v2\n"
    "    host_header: a.local\n"
    "    request_headers: {add: {X-A: \"1\"}, set: {X-S: s}, remove: [Cookie, X-R]}\n"
    "    response_headers: {add: {X-Served-By: cairn}, set: {}, remove: [Server]}\n"
    "    error_pages:\n"
    "      502: {body: \"bad gateway\\n\"}\n"
    "      504: {file: " DATA "/config_504.html}\n"
    "      503: {file: " DATA "/config_dummy.pem, content_type: text/x-test}\n"
    "  - match: {host: exact.example, path: /exact}\n"
    "    upstream: other\n"
    "    strip_prefix: false\n"
    "  - name: hello\n"
    "    match: {path: /hello}\n"
    "    static: {status: 201, headers: {Content-Type: text/plain}, body: \"hello\\n\"}\n"
    "  - name: moved\n"
    "    match: {path_prefix: /old/}\n"
    "    redirect: {to: \"https://example.com/new\", status: 307, keep_path: true}\n"
    "  - name: www\n"
    "    match: {path_prefix: /www}\n"
    "    strip_prefix: true\n"
    "    files: {root: " DATA ", index: default.htm}\n";

static void
check_full_server(const cn_config_t *c)
{
    const cn_conf_server_t *s = &c->server;
    assert_int_equal(s->workers, 3);
    assert_int_equal(s->shutdown_grace_ms, 5000);
    assert_int_equal(s->log_level, CN_LOG_TRACE);
    assert_string_equal(s->error_log, "/var/log/cairn/error.log");
    assert_string_equal(s->access_log, "/var/log/cairn/access.log");
    assert_int_equal(s->access_log_format, CN_ACCESS_LOG_COMBINED);
    assert_true(s->daemon);
    assert_string_equal(s->pid_file, "/run/cairn.pid");
    assert_true(s->pid_file_set);
    assert_string_equal(s->upgrade_socket, "/run/cairn.upgrade");
    assert_int_equal(s->header_timeout_ms, 1500);
    assert_int_equal(s->keepalive_timeout_ms, 120000);
    assert_int_equal(s->body_timeout_ms, 3600000);
    assert_int_equal(s->send_timeout_ms, 86400000);
    assert_int_equal(s->max_header_size, 32 * 1024);
    assert_int_equal(s->max_headers, 50);
    assert_int_equal(s->max_uri_size, 4000);
    assert_int_equal(s->max_body_size, 0);
    assert_int_equal(s->request_memory, 2 << 20);
    assert_string_equal(s->server_header, "");
    assert_int_equal(s->n_trusted_proxies, 4);
    static const uint8_t v6one[16] = {[15] = 1};
    assert_int_equal(s->trusted_proxies[0].family, AF_INET);
    assert_memory_equal(s->trusted_proxies[0].addr, "\x7f\0\0\x01", 4);
    assert_int_equal(s->trusted_proxies[0].prefix, 32);
    assert_int_equal(s->trusted_proxies[1].family, AF_INET6);
    assert_memory_equal(s->trusted_proxies[1].addr, v6one, 16);
    assert_int_equal(s->trusted_proxies[1].prefix, 128);
    assert_int_equal(s->trusted_proxies[2].prefix, 8);
    assert_int_equal(s->trusted_proxies[3].prefix, 32);
    assert_false(c->admin.enabled);
    assert_int_equal(c->admin.listen.sslen, 0);
    assert_string_equal(c->admin.token, "s3cret");
}

static void
check_full_listeners(const cn_config_t *c)
{
    assert_int_equal(c->n_listeners, 3);
    assert_v4(&c->listeners[0].addr, "127.0.0.1", 8080);
    assert_string_equal(c->listeners[0].addr.text, "127.0.0.1:8080");
    assert_string_equal(c->listeners[1].name, "tls");
    assert_int_equal(c->listeners[1].addr.ss.ss_family, AF_INET6);
    assert_int_equal(port_of(&c->listeners[1].addr), 8443);
    assert_null(c->listeners[1].tls_cert); /* tls is refused until TLS exists */
    const cn_conf_addr_t *u = &c->listeners[2].addr;
    assert_null(c->listeners[2].name);
    assert_int_equal(u->ss.ss_family, AF_UNIX);
    assert_string_equal(((const struct sockaddr_un *)&u->ss)->sun_path, "/tmp/cairn-test.sock");
    assert_int_equal(u->sslen,
                     offsetof(struct sockaddr_un, sun_path) + strlen("/tmp/cairn-test.sock") + 1);
}

static void
check_full_upstreams(const cn_config_t *c)
{
    assert_int_equal(c->n_upstreams, 2);
    const cn_conf_upstream_t *u = cn_config_upstream(c, "origin");
    assert_non_null(u);
    assert_int_equal(u->n_peers, 3);
    assert_v4(&u->peers[0].addr, "127.0.0.1", 8081);
    assert_int_equal(u->peers[0].weight, 5);
    assert_int_equal(u->peers[1].addr.ss.ss_family, AF_INET6);
    assert_int_equal(u->peers[1].weight, 1);
    assert_int_equal(u->peers[2].addr.ss.ss_family, AF_UNIX);
    assert_int_equal(u->connect_timeout_ms, 250);
    assert_int_equal(u->read_timeout_ms, 45000);
    assert_int_equal(u->write_timeout_ms, 15000);
    assert_int_equal(u->retries, 3);
    assert_int_equal(u->max_in_flight, 200);
    assert_int_equal(u->queue_timeout_ms, 2000);
    assert_int_equal(u->retry_after, 7);
    assert_true(u->pass_takes_slot);
    assert_int_equal(u->keepalive_pool, 16);
    assert_int_equal(u->keepalive_idle_ms, 90000);
    assert_int_equal(u->buffer_size, 128 * 1024);
    assert_null(cn_config_upstream(c, "nope"));

    assert_int_equal(c->n_caches, 2);
    const cn_conf_cache_t *m = cn_config_cache(c, "main");
    assert_int_equal(m->memory_size, 512ull << 20);
    assert_int_equal(m->memory_max_object, 16ull << 20);
    assert_int_equal(m->lock_wait_timeout_ms, 3000);
    assert_int_equal(m->lock_age_timeout_ms, 20000);
    assert_int_equal(cn_config_cache(c, "small")->memory_size, 1 << 20);
    /* An unwritten max_object is clamped to a smaller size instead of being an error. */
    assert_int_equal(cn_config_cache(c, "small")->memory_max_object, 1 << 20);
}

static void
check_full_api_route(const cn_config_t *c)
{
    const cn_conf_route_t *r = &c->routes[0];
    assert_string_equal(r->name, "api");
    assert_int_equal(r->action, CN_ROUTE_PROXY);
    assert_string_equal(r->match.listener, "public");
    assert_int_equal(r->match.n_hosts, 2);
    assert_string_equal(r->match.hosts[0], "example.com");
    assert_string_equal(r->match.hosts[1], "*.example.org");
    assert_string_equal(r->match.path_prefix, "/api");
    assert_string_equal(r->match.path_regex, "^/api/v[0-9]+/");
    assert_non_null(r->match.path_re);
    assert_int_equal(r->match.n_methods, 2);
    assert_string_equal(r->match.methods[1], "HEAD");
    assert_int_equal(r->match.n_headers, 2);
    assert_string_equal(r->match.headers[0].name, "X-Debug");
    assert_null(r->match.headers[0].value);
    assert_string_equal(r->match.headers[1].value, "prod");
    assert_int_equal(r->match.n_query, 2);
    assert_null(r->match.query[0].value);
    assert_string_equal(r->match.query[1].value, "2");
    assert_string_equal(r->upstream_name, "origin");
    assert_ptr_equal(r->upstream, cn_config_upstream(c, "origin"));
    assert_string_equal(r->cache_name, "main");
    assert_ptr_equal(r->cache, cn_config_cache(c, "main"));
    assert_string_equal(r->rewrite_prefix, "/v2");
    assert_string_equal(r->host_header, "a.local");
    assert_int_equal(r->request_headers.n_add, 1);
    assert_string_equal(r->request_headers.add[0].name, "X-A");
    assert_string_equal(r->request_headers.add[0].value, "1");
    assert_string_equal(r->request_headers.set[0].value, "s");
    assert_int_equal(r->request_headers.n_remove, 2);
    assert_string_equal(r->request_headers.remove[1], "X-R");
    assert_int_equal(r->response_headers.n_set, 0);
    assert_string_equal(r->response_headers.remove[0], "Server");
    assert_int_equal(r->n_error_pages, 3);
    assert_int_equal(r->error_pages[0].status, 502);
    assert_string_equal(r->error_pages[0].body, "bad gateway\n");
    assert_string_equal(r->error_pages[0].content_type, "text/plain");
    assert_int_equal(r->error_pages[1].status, 504);
    assert_non_null(strstr(r->error_pages[1].body, "The origin took too long."));
    assert_string_equal(r->error_pages[1].content_type, "text/html");
    assert_string_equal(r->error_pages[2].content_type, "text/x-test");
}

static void
check_full_other_routes(const cn_config_t *c)
{
    assert_int_equal(c->n_routes, 5);
    const cn_conf_route_t *r = &c->routes[1];
    assert_string_equal(r->name, "route1");
    assert_int_equal(r->match.n_hosts, 1);
    assert_string_equal(r->match.hosts[0], "exact.example");
    assert_string_equal(r->match.path, "/exact");
    assert_null(r->cache);
    r = &c->routes[2];
    assert_int_equal(r->action, CN_ROUTE_STATIC);
    assert_int_equal(r->static_.status, 201);
    assert_string_equal(r->static_.headers[0].name, "Content-Type");
    assert_string_equal(r->static_.body, "hello\n");
    r = &c->routes[3];
    assert_int_equal(r->action, CN_ROUTE_REDIRECT);
    assert_string_equal(r->redirect.to, "https://example.com/new");
    assert_int_equal(r->redirect.status, 307);
    assert_true(r->redirect.keep_path);
    r = &c->routes[4];
    assert_int_equal(r->action, CN_ROUTE_FILES);
    assert_true(r->strip_prefix);
    assert_string_equal(r->files.root, DATA);
    assert_string_equal(r->files.index, "default.htm");
}

static void
check_full(const cn_config_t *c)
{
    check_full_server(c);
    check_full_listeners(c);
    check_full_upstreams(c);
    check_full_api_route(c);
    check_full_other_routes(c);
}

static void
test_full_config(void **state)
{
    (void)state;
    cn_config_t *c = load_ok(full_yaml);
    check_full(c);
    cn_config_unref(c);
}

/* The dump is YAML that loads again into the same values and dumps to the same text. */
static void
test_dump_round_trip(void **state)
{
    (void)state;
    const char *inputs[] = {full_yaml, cn_config_embedded_default()};
    for (size_t i = 0; i < 2; i++) {
        cn_config_t *a = load_ok(inputs[i]);
        char *text_a = dump_to_string(a);
        cn_config_t *b = load_ok(text_a);
        if (i == 0)
            check_full(b);
        char *text_b = dump_to_string(b);
        /* Only the first line differs: it names the source. */
        assert_string_equal(strchr(text_a, '\n'), strchr(text_b, '\n'));
        free(text_a);
        free(text_b);
        cn_config_unref(a);
        cn_config_unref(b);
    }
}

static void
test_dump_contents(void **state)
{
    (void)state;
    cn_config_t *c = load_ok("listeners: [{listen: 127.0.0.1:8080}]\n"
                             "routes: [{static: {body: \"two\\nlines\\n\"}}]\n");
    char *text = dump_to_string(c);
    static const char *const expect[] = {
        "\n  shutdown_grace: 30s\n",
        "\n  keepalive_timeout: 1m\n",
        "\n  max_header_size: 64KiB\n",
        "\n  max_body_size: 1GiB\n",
        "\n  log_level: info\n",
        "\nadmin:\n",
        "\n  listen: 127.0.0.1:9901\n",
        "\n  - listen: 127.0.0.1:8080\n",
        "\n      body: |\n        two\n        lines\n",
        "\n  - name: route0\n",
        "\n  trusted_proxies: [127.0.0.0/8, \"::1/128\"]\n",
    };
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
        if (strstr(text, expect[i]) == NULL)
            fail_msg("dump lacks %s:\n%s", expect[i], text);
    assert_null(strstr(text, "upstream:"));
    assert_null(strstr(text, "redirect:"));
    free(text);
    cn_config_unref(c);
}

static void
test_refcount(void **state)
{
    (void)state;
    cn_config_t *c = load_ok("listeners: [{listen: 127.0.0.1:8080}]\n"
                             "routes: [{match: {path_regex: \"^/a+$\"}, static: {}}]\n");
    cn_config_ref(c);
    assert_int_equal(c->refcnt, 2);
    cn_config_unref(c);
    assert_int_equal(c->refcnt, 1);
    assert_string_equal(c->routes[0].match.path_regex, "^/a+$");
    cn_config_unref(c); /* frees, including the compiled regex (checked by LeakSanitizer) */
    cn_config_unref(NULL);
}

static void
test_load_file(void **state)
{
    (void)state;
    cn_diags_t d = {0};
    cn_config_t *c = NULL;
    assert_int_equal(cn_config_load_file(DATA "/config_sample.yaml", &c, &d), CAIRN_OK);
    assert_int_equal(d.n, 0);
    assert_string_equal(c->file, DATA "/config_sample.yaml");
    assert_int_equal(c->server.workers, 4);
    assert_string_equal(c->server.access_log, "off");
    assert_false(c->admin.enabled);
    assert_int_equal(c->n_routes, 3);
    cn_config_unref(c);

    c = NULL;
    assert_int_equal(cn_config_load_file(DATA "/no-such-file.yaml", &c, &d), CAIRN_EIO);
    assert_null(c);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.items[0].line, 0);
    assert_string_equal(d.items[0].file, DATA "/no-such-file.yaml");
    assert_non_null(strstr(d.items[0].msg, "No such file"));
    cn_diags_fini(&d);
    cn_diags_fini(&d); /* a finished list is empty: fini again is a no-op */
}

static void
test_diags_print(void **state)
{
    (void)state;
    cn_diags_t d = {0};
    char *buf = NULL;
    size_t len = 0;
    cn_diags_add(&d, "a.yaml", 3, 7, "bad %s", "thing");
    cn_diags_add(&d, "a.yaml", 0, 0, "cannot read");
    cn_diags_add(&d, NULL, 1, 1, "x");
    FILE *f = open_memstream(&buf, &len);
    cn_diags_print(&d, f);
    fclose(f);
    assert_string_equal(buf, "a.yaml:3:7: error: bad thing\n"
                             "a.yaml: error: cannot read\n"
                             "<config>:1:1: error: x\n");
    free(buf);
    cn_diags_fini(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_default_loads),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_upstream_and_route_defaults),
        cmocka_unit_test(test_static_null_is_no_action),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_dump_contents),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_diags_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
