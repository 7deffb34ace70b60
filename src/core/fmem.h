/* SPDX-License-Identifier: MIT */
/* File-backed memory: fixed-size slots in one sparse memfd mapped into the process, for the
 * body segments of cached objects. The bytes are ordinary memory to the cache (memcpy in,
 * iovecs out), and a file to the kernel: a socket writer that finds an iovec inside the
 * region sends it with sendfile(2), which hands the page-cache pages to TCP instead of
 * copying them (nginx gets the same from its cache files). A freed slot's pages are punched
 * out of the file, so pages still queued in a socket keep their bytes and a new segment gets
 * fresh pages. Nothing here is required: when the region cannot be set up, or is full, the
 * caller falls back to malloc. */
#ifndef CN_CORE_FMEM_H
#define CN_CORE_FMEM_H

#include <sys/types.h>

#include "core/types.h"

#define CN_FMEM_SLOT 65536u
#define CN_FMEM_NONE UINT32_MAX

/** Reserves the region (@bytes of address space and file, rounded to slots; no memory is
 *  used until slots are written). Idempotent; false when memfd/mmap are not available. */
bool cn_fmem_init(size_t bytes);
/** Releases the region (at exit, after every slot was freed). */
void cn_fmem_fini(void);
/** A free slot's memory (CN_FMEM_SLOT bytes), or NULL (no region, or full). */
char *cn_fmem_alloc(uint32_t *slot);
/** Punches the slot's pages out of the file and makes it free. Any thread. */
void cn_fmem_free(uint32_t slot);
/** True when [@p, @p + @len) lies inside one slot of the region; gives the file and offset. */
bool cn_fmem_locate(const void *p, size_t len, int *fd, off_t *off);
/** Slots in use (for tests and stats). */
size_t cn_fmem_used(void);

#endif
