/* SPDX-License-Identifier: MIT */
/* src/core/fmem.c: slots of the file-backed region — allocation until full, locating a slice
 * (file offset for sendfile), punching a freed slot's pages (a reused slot reads zeros until
 * written), and the fallback answers when there is no region. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/fmem.h"

static void
test_no_region(void **state)
{
    (void)state;
    uint32_t slot;
    char buf[8];
    int fd;
    off_t off;
    assert_null(cn_fmem_alloc(&slot));
    assert_false(cn_fmem_locate(buf, sizeof(buf), &fd, &off));
    cn_fmem_free(CN_FMEM_NONE);      /* a no-op */
    assert_false(cn_fmem_init(100)); /* smaller than a slot */
}

static void
test_slots(void **state)
{
    (void)state;
    assert_true(cn_fmem_init(4 * CN_FMEM_SLOT + 100));
    assert_true(cn_fmem_init(1)); /* idempotent: the region exists */
    uint32_t s[5];
    char *p[5];
    for (int i = 0; i < 4; i++) {
        p[i] = cn_fmem_alloc(&s[i]);
        assert_non_null(p[i]);
        memset(p[i], 'a' + i, CN_FMEM_SLOT);
    }
    assert_null(cn_fmem_alloc(&s[4])); /* full */
    assert_int_equal(cn_fmem_used(), 4);

    int fd;
    off_t off;
    assert_true(cn_fmem_locate(p[2] + 10, 100, &fd, &off));
    assert_int_equal(off, (off_t)s[2] * CN_FMEM_SLOT + 10);
    char back[4];
    assert_int_equal(pread(fd, back, sizeof(back), off), (ssize_t)sizeof(back));
    assert_memory_equal(back, "cccc", 4); /* the file is the memory */
    assert_false(cn_fmem_locate(p[0] + CN_FMEM_SLOT - 4, 8, &fd, &off)); /* spans two slots */
    char outside[16];
    assert_false(cn_fmem_locate(outside, sizeof(outside), &fd, &off));

    /* A freed slot is punched: its next owner starts from zeros, not the old bytes. */
    cn_fmem_free(s[1]);
    assert_int_equal(cn_fmem_used(), 3);
    uint32_t again;
    char *q = cn_fmem_alloc(&again);
    assert_int_equal(again, s[1]);
    assert_ptr_equal(q, p[1]);
    for (size_t i = 0; i < CN_FMEM_SLOT; i += 4096)
        assert_int_equal(q[i], 0);
    for (int i = 0; i < 4; i++)
        cn_fmem_free(s[i]);
    assert_int_equal(cn_fmem_used(), 0);
    cn_fmem_fini();
    assert_null(cn_fmem_alloc(&again));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_region),
        cmocka_unit_test(test_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
