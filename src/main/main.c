/* SPDX-License-Identifier: MIT */
/* cairn: the gateway program. */
#include <stdio.h>

int
main(void)
{
    puts("cairn");
    return 0;
}
