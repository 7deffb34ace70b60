/* SPDX-License-Identifier: MIT */
/* cairn: the gateway program. CLI, daemonising and the run loop; all behaviour is in
 * libcairn. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cairn/version.h>

#include "config/config.h"
#include "core/log.h"
#include "server/server.h"

static void
usage(FILE *out)
{
    fprintf(out,
            "Usage: cairn [options]\n"
            "\n"
            "cairn is a programmable caching reverse proxy and API gateway.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   run with the YAML configuration FILE\n"
            "                      (without -c: the embedded demo configuration)\n"
            "  -t, --test          check the configuration, print every error, and exit\n"
            "  -T, --dump          check the configuration and print the effective config\n"
            "  -d, --daemon        run in the background (the launcher returns once serving)\n"
            "  -u, --upgrade       take the listening sockets of a running instance: wait on\n"
            "                      server.upgrade_socket until it is sent SIGQUIT\n"
            "  -v, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "      --dump-config-docs  print docs/config.md (generated from the schema)\n"
            "\n"
            "Signals: TERM graceful stop, INT fast stop, HUP reload, QUIT graceful upgrade,\n"
            "USR1 reopen log files. Environment: CAIRN_LOG=level overrides server.log_level.\n");
}

struct cli {
    const char *config;
    bool test, dump, daemon, upgrade;
};

static int
parse_cli(int argc, char **argv, struct cli *cli)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"test", no_argument, NULL, 't'},
                                         {"dump", no_argument, NULL, 'T'},
                                         {"daemon", no_argument, NULL, 'd'},
                                         {"upgrade", no_argument, NULL, 'u'},
                                         {"version", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"dump-config-docs", no_argument, NULL, 'D'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:tTduvh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cli->config = optarg;
            break;
        case 't':
            cli->test = true;
            break;
        case 'T':
            cli->dump = true;
            break;
        case 'd':
            cli->daemon = true;
            break;
        case 'u':
            cli->upgrade = true;
            break;
        case 'v':
            printf("cairn %s\n", CAIRN_VERSION_STRING);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        case 'D':
            cn_config_write_docs(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cairn: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return 0;
}

static cn_config_t *
load_config(const char *path)
{
    cn_diags_t diags = {0};
    cn_config_t *cfg = NULL;
    cairn_err_t err;
    if (path != NULL) {
        err = cn_config_load_file(path, &cfg, &diags);
    } else {
        const char *text = cn_config_embedded_default();
        err = cn_config_load_string("<embedded>", text, strlen(text), &cfg, &diags);
    }
    if (err != CAIRN_OK) {
        cn_diags_print(&diags, stderr);
        fprintf(stderr, "cairn: configuration %s has %zu error%s\n", path ? path : "<embedded>",
                diags.n, diags.n == 1 ? "" : "s");
        cn_diags_fini(&diags);
        return NULL;
    }
    cn_diags_fini(&diags);
    return cfg;
}

/* Forks; the parent waits until the child reports "OK" (serving) or an error, so a start
 * failure is the launcher's exit status. Returns in the child with the pipe's write end. */
static int
daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("cairn: pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("cairn: fork");
        exit(1);
    }
    if (pid > 0) {
        close(p[1]);
        char buf[1200];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof(buf) - 1 && (r = read(p[0], buf + n, sizeof(buf) - 1 - n)) != 0) {
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                break;
            n += (size_t)r;
        }
        buf[n] = '\0';
        if (strncmp(buf, "OK", 2) == 0)
            exit(0);
        if (n > 4)
            fprintf(stderr, "cairn: %s", buf + 4);
        else
            fprintf(stderr, "cairn: the daemon exited before it was ready\n");
        int status;
        waitpid(pid, &status, WNOHANG);
        exit(1);
    }
    close(p[0]);
    setsid();
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, 0);
        if (nul > 2)
            close(nul);
    }
    return p[1];
}

/* A proxy holds two descriptors per proxied request: raise the soft limit to the hard one. */
static void
raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int
main(int argc, char **argv)
{
    struct cli cli = {0};
    int rc = parse_cli(argc, argv, &cli);
    if (rc != 0)
        return rc;
    cn_config_t *cfg = load_config(cli.config);
    if (cfg == NULL)
        return 1;
    if (cli.test || cli.dump) {
        if (cli.dump)
            cn_config_dump(cfg, stdout);
        printf("configuration OK: %s\n", cli.config ? cli.config : "<embedded>");
        cn_config_unref(cfg);
        return 0;
    }
    cn_log_level_t level = (cn_log_level_t)cfg->server.log_level;
    const char *env = getenv("CAIRN_LOG");
    if (env != NULL && !cn_log_level_parse(env, &level))
        fprintf(stderr, "cairn: ignoring CAIRN_LOG=%s (not a log level)\n", env);
    cn_log_threshold = level;
    if (cn_log_open(cfg->server.error_log) != CAIRN_OK) {
        fprintf(stderr, "cairn: cannot open error log %s: %s\n", cfg->server.error_log,
                strerror(errno));
        cn_config_unref(cfg);
        return 1;
    }
    cn_server_opts_t opts = {
        .daemon = cli.daemon || cfg->server.daemon, .upgrade = cli.upgrade, .ready_fd = -1};
    if (opts.daemon)
        opts.ready_fd = daemonize();
    raise_fd_limit();
    cn_server_t *srv = cn_server_new(cfg, &opts);
    rc = cn_server_run(srv);
    cn_server_free(srv);
    cn_config_unref(cfg);
    return rc;
}
