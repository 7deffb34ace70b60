/* SPDX-License-Identifier: MIT */
/* Hit ratio of cairn's memory tier (S3-FIFO, src/cache/cache.c) against a plain LRU of the
 * same byte budget, on a Zipf(0.9) trace over 200,000 keys interleaved with one-time scans
 * (20,000 never-repeated keys every 100,000 requests). Every object is 1 KiB; both caches
 * admit every miss. Usage: bench_evict [cache_fraction_percent] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/alloc.h"

#define KEYS 200000
#define REQUESTS 3000000
#define SCAN_EVERY 100000
#define SCAN_LEN 20000
#define OBJ_BYTES 1024

/* ---- a plain LRU (hash + doubly linked list) for comparison -------------------------- */

struct lru_node {
    uint64_t key;
    struct lru_node *prev, *next, *hnext;
};

struct lru {
    struct lru_node **tab;
    size_t tabsz, n, cap;
    struct lru_node *head, *tail; /* head = most recent */
};

static void
lru_unlink(struct lru *l, struct lru_node *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        l->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        l->tail = x->prev;
}

static void
lru_push(struct lru *l, struct lru_node *x)
{
    x->prev = NULL;
    x->next = l->head;
    if (l->head)
        l->head->prev = x;
    l->head = x;
    if (!l->tail)
        l->tail = x;
}

static int
lru_access(struct lru *l, uint64_t key)
{
    size_t b = key % l->tabsz;
    for (struct lru_node *x = l->tab[b]; x; x = x->hnext)
        if (x->key == key) {
            lru_unlink(l, x);
            lru_push(l, x);
            return 1;
        }
    if (l->n == l->cap) {
        struct lru_node *v = l->tail;
        lru_unlink(l, v);
        struct lru_node **pp = &l->tab[v->key % l->tabsz];
        while (*pp != v)
            pp = &(*pp)->hnext;
        *pp = v->hnext;
        free(v);
        l->n--;
    }
    struct lru_node *x = calloc(1, sizeof(*x));
    x->key = key;
    x->hnext = l->tab[b];
    l->tab[b] = x;
    lru_push(l, x);
    l->n++;
    return 0;
}

/* ---- trace ---------------------------------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;

static double
uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / (double)(1ull << 53);
}

static double *zipf_cdf;

static uint64_t
zipf_key(void)
{
    double u = uniform();
    size_t lo = 0, hi = KEYS - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo + 1;
}

int
main(int argc, char **argv)
{
    double frac = argc > 1 ? atof(argv[1]) / 100.0 : 0.05;
    zipf_cdf = malloc(sizeof(double) * KEYS);
    double sum = 0;
    for (size_t i = 0; i < KEYS; i++)
        sum += 1.0 / pow((double)(i + 1), 0.9);
    double acc = 0;
    for (size_t i = 0; i < KEYS; i++) {
        acc += 1.0 / pow((double)(i + 1), 0.9) / sum;
        zipf_cdf[i] = acc;
    }
    size_t objects = (size_t)(KEYS * frac);
    /* cairn charges body + headers + 512 bytes of overhead per object. */
    uint64_t bytes = (uint64_t)objects * (OBJ_BYTES + 512 + 64);
    cn_cache_t *c = cn_cache_new("bench", bytes, 1 << 20);
    struct lru l = {.tabsz = 1 << 20, .cap = objects};
    l.tab = calloc(l.tabsz, sizeof(*l.tab));
    cn_headers_t empty;
    cn_arena_t a;
    cn_arena_init(&a, 0);
    cn_headers_init(&empty, &a);
    static char body[OBJ_BYTES];
    uint64_t hits_s3 = 0, hits_lru = 0, scan_key = 1ull << 40;
    for (size_t r = 0; r < REQUESTS; r++) {
        uint64_t key;
        if (r % SCAN_EVERY < SCAN_LEN && r > SCAN_EVERY)
            key = scan_key++;
        else
            key = zipf_key();
        cn_cache_key_t k;
        cn_cache_key_hash((const char *)&key, sizeof(key), &k);
        cn_cache_obj_t *o = NULL;
        if (cn_cache_lookup(c, &k, &empty, &o) == CAIRN_OK && o != NULL) {
            hits_s3++;
            cn_cache_obj_unref(o);
        } else {
            o = cn_cache_obj_new(&k);
            cn_cache_obj_append(o, body, sizeof(body), 0);
            o->complete = true;
            cn_cache_insert(c, o);
            cn_cache_obj_unref(o);
        }
        hits_lru += (uint64_t)lru_access(&l, key);
    }
    cn_cache_stats_t st;
    cn_cache_stats(c, &st);
    printf("trace: %d requests, Zipf(0.9) over %d keys, scans of %d one-time keys every %d\n",
           REQUESTS, KEYS, SCAN_LEN, SCAN_EVERY);
    printf("cache size: %zu objects (%.0f%% of the keys)\n", objects, frac * 100);
    printf("cairn S3-FIFO hit ratio: %.4f (objects %llu, evictions %llu)\n",
           (double)hits_s3 / REQUESTS, (unsigned long long)st.objects,
           (unsigned long long)st.evictions);
    printf("LRU           hit ratio: %.4f\n", (double)hits_lru / REQUESTS);
    cn_cache_free(c);
    cn_arena_fini(&a);
    return 0;
}
