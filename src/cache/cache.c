/* SPDX-License-Identifier: MIT */
/* The memory tier: a hash index in 16 shards, each with its own lock, byte budget and S3-FIFO
 * eviction (a small probationary FIFO, a main FIFO with reinsertion of recently used objects,
 * and a ghost list of keys evicted from the small queue). S3-FIFO keeps one-hit wonders and
 * scans from flushing the working set, which plain LRU does not (bench/micro/bench_evict.c). */
#include "cache/cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/alloc.h"
#include "core/fmem.h"
#include "core/assert.h"
#include "core/str.h"

#define SHARDS 16
#define BUCKETS 4096 /* per shard; chains grow beyond that */
#define GHOSTS 4096  /* per shard */
#define OBJ_OVERHEAD 512

enum { Q_NONE = 0, Q_SMALL, Q_MAIN };

struct queue {
    cn_cache_obj_t *head, *tail; /* evict from head, insert at tail */
    uint64_t bytes;
};

struct shard {
    pthread_mutex_t lock;
    struct cn_cache *owner;
    cn_cache_obj_t *buckets[BUCKETS];
    struct queue small, main;
    uint64_t budget;
    uint64_t ghosts[GHOSTS]; /* fingerprints of keys evicted from small */
    size_t ghost_pos;
    cn_cache_stats_t st;
};

struct cn_cache {
    char *name;
    uint64_t size, max_object;
    atomic_uint_fast64_t total; /* bytes charged across all shards: the bound is global */
    struct shard shards[SHARDS];
};

/* ---- fault injection (test builds) ----------------------------------------------------- */

#ifdef CN_TESTING
bool
cn_cache_fault(const char *op)
{
    const char *spec = getenv("CAIRN_FAULT_TIER");
    return spec != NULL && strstr(spec, op) != NULL;
}
#else
bool
cn_cache_fault(const char *op)
{
    (void)op;
    return false;
}
#endif

/* ---- keys and objects ------------------------------------------------------------------ */

void
cn_cache_key_hash(const char *data, size_t len, cn_cache_key_t *out)
{
    XXH128_hash_t h = XXH3_128bits(data, len);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out->b, c.digest, 16);
}

static uint64_t
key_fp(const cn_cache_key_t *k)
{
    uint64_t v;
    memcpy(&v, k->b + 8, 8);
    return v | 1; /* 0 marks an empty ghost slot */
}

cn_cache_obj_t *
cn_cache_obj_new(const cn_cache_key_t *key)
{
    cn_cache_obj_t *o = cn_xcalloc(1, sizeof(*o));
    o->magic = CN_CACHE_OBJ_MAGIC;
    atomic_init(&o->refcnt, 1);
    o->key = *key;
    o->expected_len = -1;
    cn_arena_init(&o->arena, 0);
    cn_headers_init(&o->headers, &o->arena);
    return o;
}

static cn_cache_seg_t *
seg_new(size_t cap)
{
    cn_cache_seg_t *seg;
    uint32_t slot = CN_FMEM_NONE;
    char *data = NULL;
    if (cap >= CN_CACHE_FMEM_MIN && cap <= CN_FMEM_SLOT)
        data = cn_fmem_alloc(&slot);
    if (data != NULL) {
        seg = cn_xmalloc(sizeof(*seg));
    } else {
        seg = cn_xmalloc(sizeof(*seg) + cap);
        data = (char *)(seg + 1);
    }
    seg->next = NULL;
    seg->len = 0;
    seg->cap = cap;
    seg->data = data;
    seg->slot = slot;
    return seg;
}

bool
cn_cache_obj_append(cn_cache_obj_t *o, const char *p, size_t n, uint64_t max)
{
    if (max != 0 && o->body_len + n > max)
        return false;
    while (n > 0) {
        cn_cache_seg_t *seg = o->body_tail;
        if (seg == NULL || seg->len == seg->cap) {
            /* A segment as large as what is left of an announced length, at most a slot:
             * a 1 KiB object takes 1 KiB, not 64. */
            size_t want = CN_CACHE_SEG_SIZE;
            if (o->expected_len >= 0 && (uint64_t)o->expected_len > o->body_len)
                want = (size_t)CN_MIN((uint64_t)want, (uint64_t)o->expected_len - o->body_len);
            size_t cap = CN_MAX(n, want);
            if (max != 0 && cap > max - o->body_len + n)
                cap = CN_MAX(n, (size_t)(max - o->body_len + n));
            seg = seg_new(cap);
            if (o->body_tail)
                o->body_tail->next = seg;
            else
                o->body = seg;
            o->body_tail = seg;
        }
        size_t k = CN_MIN(n, seg->cap - seg->len);
        memcpy(seg->data + seg->len, p, k);
        seg->len += k;
        o->body_len += k;
        p += k;
        n -= k;
    }
    return true;
}

void
cn_cache_obj_ref(cn_cache_obj_t *o)
{
    atomic_fetch_add_explicit(&o->refcnt, 1, memory_order_relaxed);
}

void
cn_cache_obj_unref(cn_cache_obj_t *o)
{
    if (o == NULL)
        return;
    CN_CHECK_OBJ(o, CN_CACHE_OBJ_MAGIC);
    if (atomic_fetch_sub_explicit(&o->refcnt, 1, memory_order_acq_rel) != 1)
        return;
    cn_cache_seg_t *s = o->shared_body != NULL ? NULL : o->body;
    cn_cache_obj_unref(o->shared_body);
    while (s != NULL) {
        cn_cache_seg_t *next = s->next;
        cn_fmem_free(s->slot);
        cn_free(s);
        s = next;
    }
    cn_arena_fini(&o->arena);
    o->magic = 0;
    cn_free(o);
}

/* ---- Vary ------------------------------------------------------------------------------ */

bool
cn_cache_obj_matches(const cn_cache_obj_t *o, const cn_headers_t *req)
{
    if (o->vary_key.len == 0 && cn_headers_get(&o->headers, CAIRN_IOV_LIT("vary")) == NULL)
        return true;
    cn_arena_t tmp;
    cn_arena_init(&tmp, 0);
    cairn_iov_t key = {0};
    bool star = false;
    bool eq = cn_policy_vary_key(&tmp, &o->headers, req, &key, &star) == CAIRN_OK && !star &&
              cn_iov_eq(key, o->vary_key);
    cn_arena_fini(&tmp);
    return eq;
}

/* ---- the tier -------------------------------------------------------------------------- */

cn_cache_t *
cn_cache_new(const char *name, uint64_t size, uint64_t max_object)
{
    cn_cache_t *c = cn_xcalloc(1, sizeof(*c));
    c->name = cn_xstrdup(name);
    c->size = size;
    c->max_object = max_object;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&c->shards[i].lock, NULL);
        c->shards[i].owner = c;
        c->shards[i].budget = size / SHARDS;
    }
    return c;
}

static void
queue_unlink(struct queue *q, cn_cache_obj_t *o)
{
    if (o->qprev)
        o->qprev->qnext = o->qnext;
    else
        q->head = o->qnext;
    if (o->qnext)
        o->qnext->qprev = o->qprev;
    else
        q->tail = o->qprev;
    o->qnext = o->qprev = NULL;
    q->bytes -= o->charge;
}

static void
queue_push(struct queue *q, cn_cache_obj_t *o)
{
    o->qnext = NULL;
    o->qprev = q->tail;
    if (q->tail)
        q->tail->qnext = o;
    else
        q->head = o;
    q->tail = o;
    q->bytes += o->charge;
}

static struct queue *
queue_of(struct shard *sh, cn_cache_obj_t *o)
{
    return o->queue == Q_SMALL ? &sh->small : &sh->main;
}

static cn_cache_obj_t **
bucket_of(struct shard *sh, const cn_cache_key_t *k)
{
    uint32_t h;
    memcpy(&h, k->b + 4, 4);
    return &sh->buckets[h % BUCKETS];
}

/* Takes @o out of the index and its queue; the caller drops the index's reference. */
static void
index_unlink(struct shard *sh, cn_cache_obj_t *o)
{
    cn_cache_obj_t **pp = bucket_of(sh, &o->key);
    while (*pp != NULL && *pp != o)
        pp = &(*pp)->chain;
    CN_ASSERT(*pp == o);
    *pp = o->chain;
    o->chain = NULL;
    queue_unlink(queue_of(sh, o), o);
    o->queue = Q_NONE;
    o->in_index = false;
    sh->st.objects--;
    sh->st.bytes -= o->charge;
    atomic_fetch_sub(&sh->owner->total, o->charge);
}

static bool
ghost_has(struct shard *sh, uint64_t fp)
{
    for (size_t i = 0; i < GHOSTS; i++)
        if (sh->ghosts[i] == fp)
            return true;
    return false;
}

/* One S3-FIFO eviction step; returns the evicted object (reference to drop) or NULL when a
 * candidate was only moved. */
static cn_cache_obj_t *
evict_step(struct shard *sh, const cn_cache_obj_t *protect)
{
    /* Evict from small while it holds more than 10% of the shard, else from main; never
     * @protect (the object being inserted). */
    bool from_small =
        sh->small.head != NULL && (sh->small.bytes * 10 >= sh->budget || sh->main.head == NULL);
    if (from_small && sh->small.head == protect)
        from_small = false;
    if (!from_small && sh->main.head == protect)
        return NULL;
    if (from_small) {
        cn_cache_obj_t *o = sh->small.head;
        queue_unlink(&sh->small, o);
        if (o->freq > 0) {
            /* Used while on probation: promote to main. */
            o->freq = 0;
            o->queue = Q_MAIN;
            queue_push(&sh->main, o);
            return NULL;
        }
        queue_push(&sh->small, o); /* index_unlink expects it queued */
        sh->ghosts[sh->ghost_pos++ % GHOSTS] = key_fp(&o->key);
        index_unlink(sh, o);
        return o;
    }
    cn_cache_obj_t *o = sh->main.head;
    if (o == NULL)
        return NULL;
    if (o->freq > 0) {
        o->freq--;
        queue_unlink(&sh->main, o);
        queue_push(&sh->main, o);
        return NULL;
    }
    index_unlink(sh, o);
    return o;
}

/* A large object pushed the cache over its bound: evict from the other shards (one lock at
 * a time) until it fits again. */
static void
evict_elsewhere(cn_cache_t *c, struct shard *except)
{
    for (size_t i = 0; i < SHARDS && atomic_load(&c->total) > c->size; i++) {
        struct shard *sh = &c->shards[i];
        if (sh == except)
            continue;
        cn_cache_obj_t *victims[64];
        size_t nv = 0;
        pthread_mutex_lock(&sh->lock);
        size_t guard = 0;
        while (atomic_load(&c->total) > c->size && sh->st.objects > 0 &&
               nv < CN_ARRAY_LEN(victims) && guard++ < 100000) {
            cn_cache_obj_t *v = evict_step(sh, NULL);
            if (v != NULL) {
                sh->st.evictions++;
                victims[nv++] = v;
            }
        }
        pthread_mutex_unlock(&sh->lock);
        for (size_t k = 0; k < nv; k++)
            cn_cache_obj_unref(victims[k]);
        if (nv == CN_ARRAY_LEN(victims))
            i--; /* more to do in this shard */
    }
}

cairn_err_t
cn_cache_insert(cn_cache_t *c, cn_cache_obj_t *o)
{
    CN_ASSERT(o->complete && !o->in_index);
    if (cn_cache_fault("insert"))
        return CAIRN_EIO;
    o->charge = o->body_len + o->arena.used + OBJ_OVERHEAD;
    struct shard *sh = &c->shards[o->key.b[0] % SHARDS];
    /* The byte bound is the whole cache's, so an object larger than one shard's share (up to
     * max_object) is stored too: room is then made in the other shards. */
    if (o->body_len > c->max_object || o->charge > c->size)
        return CAIRN_ETOOBIG;
    cn_cache_obj_ref(o);
    cn_cache_obj_t *victims[64];
    size_t nv = 0;
    pthread_mutex_lock(&sh->lock);
    /* Replace the variant with the same secondary key (or any, when Vary changed). */
    cn_cache_obj_t **pp = bucket_of(sh, &o->key);
    for (cn_cache_obj_t *it = *pp; it != NULL;) {
        cn_cache_obj_t *next = it->chain;
        if (memcmp(it->key.b, o->key.b, 16) == 0 && cn_iov_eq(it->vary_key, o->vary_key) &&
            nv < CN_ARRAY_LEN(victims)) {
            index_unlink(sh, it);
            victims[nv++] = it;
            sh->st.removals++;
        }
        it = next;
    }
    o->chain = *pp;
    *pp = o;
    o->in_index = true;
    o->freq = 0;
    bool ghost = ghost_has(sh, key_fp(&o->key));
    o->queue = ghost ? Q_MAIN : Q_SMALL;
    queue_push(ghost ? &sh->main : &sh->small, o);
    sh->st.objects++;
    sh->st.bytes += o->charge;
    sh->st.inserts++;
    atomic_fetch_add(&c->total, o->charge);
    /* A new object competes like any other (S3-FIFO: a one-hit object on probation is the
     * first to go, which is what resists scans), except one larger than a shard's share:
     * that one is kept and room is made for it, here and in the other shards. */
    const cn_cache_obj_t *protect = o->charge > sh->budget ? o : NULL;
    size_t guard = 0;
    while ((sh->st.bytes > sh->budget || atomic_load(&c->total) > c->size) && sh->st.objects > 1 &&
           guard++ < 100000) {
        cn_cache_obj_t *v = evict_step(sh, protect);
        if (v == NULL) {
            if (sh->small.head == o && sh->main.head == NULL)
                break; /* only the new object is left here */
            continue;
        }
        sh->st.evictions++;
        if (nv < CN_ARRAY_LEN(victims)) {
            victims[nv++] = v;
        } else {
            pthread_mutex_unlock(&sh->lock);
            cn_cache_obj_unref(v);
            pthread_mutex_lock(&sh->lock);
        }
    }
    pthread_mutex_unlock(&sh->lock);
    for (size_t i = 0; i < nv; i++)
        cn_cache_obj_unref(victims[i]);
    if (atomic_load(&c->total) > c->size)
        evict_elsewhere(c, sh);
    return CAIRN_OK;
}

cairn_err_t
cn_cache_lookup(cn_cache_t *c, const cn_cache_key_t *key, const cn_headers_t *req,
                cn_cache_obj_t **out)
{
    if (cn_cache_fault("lookup"))
        return CAIRN_EIO;
    struct shard *sh = &c->shards[key->b[0] % SHARDS];
    cn_cache_obj_t *found = NULL;
    pthread_mutex_lock(&sh->lock);
    for (cn_cache_obj_t *it = *bucket_of(sh, key); it != NULL; it = it->chain) {
        if (memcmp(it->key.b, key->b, 16) != 0 || !cn_cache_obj_matches(it, req))
            continue;
        found = it;
        if (it->freq < 3)
            it->freq++;
        cn_cache_obj_ref(it);
        break;
    }
    if (found)
        sh->st.hits++;
    else
        sh->st.misses++;
    pthread_mutex_unlock(&sh->lock);
    *out = found;
    return CAIRN_OK;
}

static bool
purge_matches(const cn_cache_obj_t *o, cn_cache_purge_kind_t kind, const char *arg)
{
    if (o->key_text == NULL)
        return false;
    switch (kind) {
    case CN_PURGE_URL: {
        /* Every variant of the URL: keys with header or cookie parts continue with "\n". */
        size_t al = strlen(arg);
        return strncmp(o->key_text, arg, al) == 0 &&
               (o->key_text[al] == '\0' || o->key_text[al] == '\n');
    }
    case CN_PURGE_PREFIX:
        return strncmp(o->key_text, arg, strlen(arg)) == 0;
    case CN_PURGE_TAG: {
        if (o->tags == NULL)
            return false;
        size_t al = strlen(arg);
        for (const char *p = strstr(o->tags, arg); p != NULL; p = strstr(p + 1, arg))
            if (p > o->tags && p[-1] == ' ' && p[al] == ' ')
                return true;
        return false;
    }
    }
    return false;
}

size_t
cn_cache_purge(cn_cache_t *c, cn_cache_purge_kind_t kind, const char *arg, bool soft)
{
    size_t n = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *sh = &c->shards[i];
        cn_cache_obj_t *victims[256];
        size_t nv = 0;
        bool more = true;
        while (more) {
            more = false;
            nv = 0;
            pthread_mutex_lock(&sh->lock);
            for (size_t b = 0; b < BUCKETS && !more; b++) {
                for (cn_cache_obj_t *it = sh->buckets[b]; it != NULL;) {
                    cn_cache_obj_t *next = it->chain;
                    if (purge_matches(it, kind, arg)) {
                        if (soft) {
                            if (!atomic_exchange(&it->soft_purged, true))
                                n++;
                        } else if (nv < CN_ARRAY_LEN(victims)) {
                            index_unlink(sh, it);
                            victims[nv++] = it;
                            sh->st.removals++;
                            n++;
                        } else {
                            more = true; /* drop these first, then scan again */
                            break;
                        }
                    }
                    it = next;
                }
            }
            pthread_mutex_unlock(&sh->lock);
            for (size_t k = 0; k < nv; k++)
                cn_cache_obj_unref(victims[k]);
        }
    }
    return n;
}

size_t
cn_cache_remove(cn_cache_t *c, const cn_cache_key_t *key)
{
    struct shard *sh = &c->shards[key->b[0] % SHARDS];
    cn_cache_obj_t *victims[64];
    size_t nv = 0;
    pthread_mutex_lock(&sh->lock);
    cn_cache_obj_t **pp = bucket_of(sh, key);
    for (cn_cache_obj_t *it = *pp; it != NULL && nv < CN_ARRAY_LEN(victims);) {
        cn_cache_obj_t *next = it->chain;
        if (memcmp(it->key.b, key->b, 16) == 0) {
            index_unlink(sh, it);
            victims[nv++] = it;
            sh->st.removals++;
        }
        it = next;
    }
    pthread_mutex_unlock(&sh->lock);
    for (size_t i = 0; i < nv; i++)
        cn_cache_obj_unref(victims[i]);
    return nv;
}

void
cn_cache_stats(cn_cache_t *c, cn_cache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        out->objects += sh->st.objects;
        out->bytes += sh->st.bytes;
        out->hits += sh->st.hits;
        out->misses += sh->st.misses;
        out->inserts += sh->st.inserts;
        out->evictions += sh->st.evictions;
        out->removals += sh->st.removals;
        pthread_mutex_unlock(&sh->lock);
    }
}

const char *
cn_cache_name(const cn_cache_t *c)
{
    return c->name;
}

uint64_t
cn_cache_max_object(const cn_cache_t *c)
{
    return c->max_object;
}

void
cn_cache_free(cn_cache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *sh = &c->shards[i];
        for (size_t b = 0; b < BUCKETS; b++) {
            while (sh->buckets[b] != NULL) {
                cn_cache_obj_t *o = sh->buckets[b];
                index_unlink(sh, o);
                cn_cache_obj_unref(o);
            }
        }
        pthread_mutex_destroy(&sh->lock);
    }
    cn_free(c->name);
    cn_free(c);
}
