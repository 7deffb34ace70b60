/* SPDX-License-Identifier: MIT */
/* The main() every example shares: paste the command-line addresses into the example's YAML,
 * load it, register the example's hook table and run until SIGTERM/SIGINT. Only the public
 * API (<cairn/cairn.h>) is used. */
#ifndef CAIRN_EXAMPLE_RUN_H
#define CAIRN_EXAMPLE_RUN_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cairn/cairn.h>

/* The arguments are pasted into a YAML document: accept address characters only. */
static bool
example_plain_arg(const char *s)
{
    static const char ok[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ.:-_[]/";
    return s[0] != '\0' && strspn(s, ok) == strlen(s);
}

/* Runs an example whose YAML @fmt takes @nargs "%s" (argv[1] .. argv[nargs]): the listen port
 * then upstream addresses, described by @usage. Returns the exit status. */
static int
example_run(int argc, char **argv, int nargs, const char *usage, const char *name, const char *fmt,
            const cairn_hooks_t *hooks)
{
    bool ok = argc == nargs + 1;
    for (int i = 1; ok && i <= nargs; i++)
        ok = example_plain_arg(argv[i]);
    if (!ok) {
        fprintf(stderr, "usage: %s %s\n", argv[0], usage);
        return 2;
    }
    /* Each "%s" of @fmt takes the next argument (no printf: the format is not a literal). */
    char yaml[2048];
    size_t n = 0;
    int next = 1;
    for (const char *p = fmt; *p != '\0' && n < sizeof(yaml) - 1; p++) {
        if (p[0] == '%' && p[1] == 's' && next <= nargs) {
            size_t l = strlen(argv[next]);
            if (n + l >= sizeof(yaml) - 1)
                break;
            memcpy(yaml + n, argv[next++], l);
            n += l;
            p++;
            continue;
        }
        yaml[n++] = *p;
    }
    if (n >= sizeof(yaml) - 1) {
        fprintf(stderr, "%s: arguments too long\n", argv[0]);
        return 2;
    }
    yaml[n] = '\0';
    cairn_config_t *cfg = NULL;
    if (cairn_config_load_string(name, yaml, n, &cfg, stderr) != CAIRN_OK)
        return 1;
    cairn_server_t *srv = cairn_server_new(cfg);
    int rc = 1;
    if (cairn_server_use(srv, hooks, NULL) == CAIRN_OK)
        rc = cairn_server_run(srv);
    cairn_server_free(srv);
    cairn_config_unref(cfg);
    return rc;
}

#endif
