/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the configuration loader (YAML → DOM → schema walk → checks). Any input
 * must load or fail with at least one diagnostic, without leaks. A configuration that loads
 * must dump to YAML that loads again and dumps to the same text (the dump is the effective
 * configuration, so it must be a valid one); violations __builtin_trap().
 *
 * Nothing is written to disk: dumps go to memory. Loading may stat or read the paths a route
 * names (files.root, tls, error_pages.file) and resolve peer host names, as cairn itself does. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The dump without its first line, which names the source. */
static char *
dump_body(const cn_config_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    cn_config_dump(c, f);
    CHECK(fclose(f) == 0);
    char *nl = strchr(buf, '\n');
    CHECK(nl != NULL);
    memmove(buf, nl + 1, strlen(nl + 1) + 1);
    return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cn_diags_t d = {0};
    cn_config_t *c = NULL, *again = NULL;
    cairn_err_t rc = cn_config_load_string("fuzz.yaml", (const char *)data, size, &c, &d);
    CHECK((rc == CAIRN_OK) == (d.n == 0));
    CHECK((rc == CAIRN_OK) == (c != NULL));
    for (size_t i = 1; i < d.n; i++) /* diagnostics come in file order */
        CHECK(d.items[i - 1].line < d.items[i].line ||
              (d.items[i - 1].line == d.items[i].line && d.items[i - 1].col <= d.items[i].col));
    if (rc == CAIRN_OK) {
        char *first = dump_body(c);
        rc = cn_config_load_string("dump.yaml", first, strlen(first), &again, &d);
        if (rc != CAIRN_OK) {
            fprintf(stderr, "the dump does not load:\n%s\n", first);
            cn_diags_print(&d, stderr);
        }
        CHECK(rc == CAIRN_OK);
        char *second = dump_body(again);
        CHECK(strcmp(first, second) == 0);
        free(first);
        free(second);
        cn_config_unref(again);
        cn_config_unref(c);
    }
    cn_diags_fini(&d);
    return 0;
}
