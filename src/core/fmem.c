/* SPDX-License-Identifier: MIT */
/* One memfd, ftruncated to the region's size (sparse: a page exists once written) and mapped
 * shared; a stack of free slot numbers under a mutex. */
#include "core/fmem.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"

static struct {
    pthread_mutex_t lock;
    char *base;     /* NULL = no region */
    size_t size;    /* bytes mapped */
    int fd;         /* the memfd */
    uint32_t slots; /* slots in the region */
    uint32_t high;  /* slots ever handed out: [0, high) */
    uint32_t *free; /* stack of freed slots below high */
    uint32_t n_free;
    size_t used;
} fm = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

bool
cn_fmem_init(size_t bytes)
{
    pthread_mutex_lock(&fm.lock);
    bool ok = fm.base != NULL;
    if (!ok && bytes >= CN_FMEM_SLOT) {
        size_t slots = bytes / CN_FMEM_SLOT;
        if (slots > UINT32_MAX - 1)
            slots = UINT32_MAX - 1;
        size_t size = slots * CN_FMEM_SLOT;
        int fd = memfd_create("cairn-cache", MFD_CLOEXEC);
        void *p = MAP_FAILED;
        if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
            p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
        if (p != MAP_FAILED) {
            fm.base = p;
            fm.size = size;
            fm.fd = fd;
            fm.slots = (uint32_t)slots;
            fm.free = cn_xmalloc(slots * sizeof(*fm.free));
            ok = true;
        } else if (fd >= 0) {
            close(fd);
        }
    }
    pthread_mutex_unlock(&fm.lock);
    return ok;
}

void
cn_fmem_fini(void)
{
    pthread_mutex_lock(&fm.lock);
    if (fm.base != NULL) {
        munmap(fm.base, fm.size);
        close(fm.fd);
        cn_free(fm.free);
        fm.base = NULL;
        fm.free = NULL;
        fm.fd = -1;
        fm.size = 0;
        fm.slots = fm.high = fm.n_free = 0;
        fm.used = 0;
    }
    pthread_mutex_unlock(&fm.lock);
}

char *
cn_fmem_alloc(uint32_t *slot)
{
    char *p = NULL;
    pthread_mutex_lock(&fm.lock);
    if (fm.base != NULL) {
        uint32_t s = CN_FMEM_NONE;
        if (fm.n_free > 0)
            s = fm.free[--fm.n_free];
        else if (fm.high < fm.slots)
            s = fm.high++;
        if (s != CN_FMEM_NONE) {
            fm.used++;
            *slot = s;
            p = fm.base + (size_t)s * CN_FMEM_SLOT;
        }
    }
    pthread_mutex_unlock(&fm.lock);
    return p;
}

void
cn_fmem_free(uint32_t slot)
{
    if (slot == CN_FMEM_NONE)
        return;
    /* The pages leave the file (and the process); a socket still holding them keeps them. */
    bool punched = fallocate(fm.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                             (off_t)slot * CN_FMEM_SLOT, CN_FMEM_SLOT) == 0;
    pthread_mutex_lock(&fm.lock);
    CN_ASSERT(slot < fm.high && fm.n_free < fm.slots);
    /* A slot whose pages could not be dropped is not reused: a socket may still be sending
     * them, and a new owner would write into them. */
    if (punched)
        fm.free[fm.n_free++] = slot;
    fm.used--;
    pthread_mutex_unlock(&fm.lock);
}

bool
cn_fmem_locate(const void *p, size_t len, int *fd, off_t *off)
{
    const char *c = p;
    /* base and size are set once, before any worker starts, and cleared after they stop. */
    if (fm.base == NULL || c < fm.base || c >= fm.base + fm.size)
        return false;
    size_t at = (size_t)(c - fm.base);
    if (at / CN_FMEM_SLOT != (at + len - 1) / CN_FMEM_SLOT)
        return false;
    *fd = fm.fd;
    *off = (off_t)at;
    return true;
}

size_t
cn_fmem_used(void)
{
    pthread_mutex_lock(&fm.lock);
    size_t n = fm.used;
    pthread_mutex_unlock(&fm.lock);
    return n;
}
