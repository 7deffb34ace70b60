/* SPDX-License-Identifier: MIT */
/* The HTTP cache: immutable, refcounted objects in a tier behind one ops table. The memory
 * tier is shared by every worker (sharded locks); objects are never changed once inserted,
 * so a worker streams a hit straight from the stored segments (writev, no copy).
 * RFC 9111 decisions (storable, freshness, age) live in cache/policy.c; this module stores,
 * finds, evicts and counts. */
#ifndef CN_CACHE_CACHE_H
#define CN_CACHE_CACHE_H

#include <stdatomic.h>
#include <time.h>

#include "core/arena.h"
#include "core/compiler.h"
#include "core/types.h"
#include "cache/policy.h"
#include "http/headers.h"

#define CN_CACHE_OBJ_MAGIC 0xcac4e0b1u
#define CN_CACHE_SEG_SIZE 65536

typedef struct cn_cache cn_cache_t;
typedef struct cn_cache_obj cn_cache_obj_t;

/** A 128-bit key (XXH3-128 of the key template's expansion). */
typedef struct cn_cache_key {
    uint8_t b[16];
} cn_cache_key_t;

/* A body segment. Large ones (CN_CACHE_FMEM_MIN and up) live in a slot of the file-backed
 * region (core/fmem.h), so a socket writer can sendfile them; the rest follow the header. */
typedef struct cn_cache_seg {
    struct cn_cache_seg *next;
    size_t len;
    size_t cap;
    char *data;
    uint32_t slot; /* CN_FMEM_NONE: data is malloc'ed with the header */
} cn_cache_seg_t;

#define CN_CACHE_FMEM_MIN 16384

struct cn_cache_obj {
    uint32_t magic;
    atomic_int refcnt;
    cn_cache_key_t key;
    cn_arena_t arena; /* headers, vary strings */
    unsigned status;
    cn_headers_t headers; /* end-to-end fields as stored (no framing, no hop-by-hop) */
    cairn_iov_t vary_key; /* cn_policy_vary_key of the request that stored it ("" = no Vary) */
    cn_cache_seg_t *body;
    cn_cache_seg_t *body_tail;
    struct cn_cache_obj *shared_body; /* the body belongs to this object (a 304 refresh) */
    uint64_t body_len;
    bool complete;           /* every body byte arrived; only complete objects are inserted */
    int64_t expected_len;    /* Content-Length announced by the origin, -1 when unknown */
    char *key_text;          /* the key before hashing ("http://host/path?q"), for prefix purges */
    char *tags;              /* " a b c " from Surrogate-Key / Cache-Tag, for tag purges; or NULL */
    atomic_bool soft_purged; /* marked stale by a soft purge: revalidate before use */
    cn_policy_meta_t meta;   /* freshness and age inputs (RFC 9111 §4.2) */
    time_t last_modified;    /* 0 = none */
    cairn_iov_t etag;        /* empty = none */
    bool no_cache_hint;      /* some field value says "no-cache": a hit must look for
                                no-cache="field" (RFC 9111 §5.2.2.4); otherwise it need not */
    /* Owned by the tier, under its shard lock. */
    struct cn_cache_obj *chain;         /* hash chain */
    struct cn_cache_obj *qnext, *qprev; /* S3-FIFO queue */
    uint8_t queue;                      /* 0 none, 1 small, 2 main */
    uint8_t freq;                       /* 0..3 accesses since insertion/last pass */
    bool in_index;
    size_t charge; /* bytes accounted to the tier */
};

typedef struct cn_cache_stats {
    uint64_t objects;
    uint64_t bytes;
    uint64_t hits, misses, inserts, evictions, removals;
} cn_cache_stats_t;

/** A cache named @name bounded to @size bytes (memory tier); objects over @max_object are
 *  never stored. */
cn_cache_t *cn_cache_new(const char *name, uint64_t size, uint64_t max_object);
void cn_cache_free(cn_cache_t *c);
const char *cn_cache_name(const cn_cache_t *c);
uint64_t cn_cache_max_object(const cn_cache_t *c);

/** Builds a new object for @key (refcount 1, not in the cache). */
cn_cache_obj_t *cn_cache_obj_new(const cn_cache_key_t *key);
/** Appends body bytes (copied into segments). False when @max would be exceeded. */
bool cn_cache_obj_append(cn_cache_obj_t *o, const char *p, size_t n, uint64_t max);
void cn_cache_obj_ref(cn_cache_obj_t *o);
/** The last reference frees the object. NULL is a no-op. Any thread. */
void cn_cache_obj_unref(cn_cache_obj_t *o);

/** Finds the variant of @key whose Vary values match @req (an object with no Vary matches
 *  any request): CAIRN_OK with *@out a new reference or NULL (miss), or CAIRN_EIO when the
 *  tier failed (the caller proxies without the cache). Any thread. */
CN_MUST_CHECK cairn_err_t cn_cache_lookup(cn_cache_t *c, const cn_cache_key_t *key,
                                          const cn_headers_t *req, cn_cache_obj_t **out);
/** True when @o is the variant for @req (its Vary values match; no Vary matches all). */
bool cn_cache_obj_matches(const cn_cache_obj_t *o, const cn_headers_t *req);
/** Inserts a complete object, replacing the variant with the same Vary key. The cache takes
 *  its own reference. CAIRN_ETOOBIG when the object does not fit, CAIRN_EIO when the tier
 *  failed. Any thread. */
cairn_err_t cn_cache_insert(cn_cache_t *c, cn_cache_obj_t *o);
/** Test builds (CN_TESTING): the env var CAIRN_FAULT_TIER ("lookup", "insert" or
 *  "lookup,insert") makes those operations fail, to test degradation. Always false in
 *  release builds. */
bool cn_cache_fault(const char *op);
typedef enum cn_cache_purge_kind {
    CN_PURGE_URL,    /* @arg is the key text */
    CN_PURGE_PREFIX, /* @arg is a prefix of the key text */
    CN_PURGE_TAG,    /* @arg is one tag */
} cn_cache_purge_kind_t;

/** Removes (or, with @soft, marks stale) every object matching; returns how many. */
size_t cn_cache_purge(cn_cache_t *c, cn_cache_purge_kind_t kind, const char *arg, bool soft);
/** Removes every variant of @key; returns how many. Any thread. */
size_t cn_cache_remove(cn_cache_t *c, const cn_cache_key_t *key);
void cn_cache_stats(cn_cache_t *c, cn_cache_stats_t *out);

/** XXH3-128 of @data. */
void cn_cache_key_hash(const char *data, size_t len, cn_cache_key_t *out);

/** An immutable snapshot of a server's caches by name, which workers read and a reload
 *  replaces (src/server/). */
typedef struct cn_cache_view {
    size_t n;
    struct cn_cache *items[];
} cn_cache_view_t;

#endif
