/*
 * uWSGI's shared-memory cache (cache.c): the store behind uwsgi.cache_* for every cache that is
 * not a Redis one. Plain C. One shared mapping per cache, made before the master forks, so
 * that every worker reads and writes the same items; a robust process-shared mutex per cache,
 * held only inside one cache_do() call (never across Python code).
 *
 *   cache_conf_parse   a --cache2 value into a struct gy_cache_conf (cache_conf.c; options.c
 *                      calls it at start-up)
 *   caches_create      every configured cache, in the master (or the lone worker)
 *   caches_find        a cache by name (NULL or "": the first), for the uwsgi module
 *   cache_do           one operation (cache_ops.h)
 *   caches_sweep       the master's periodic purge of expired items
 */
#ifndef GYRE_CACHE_H
#define GYRE_CACHE_H

#include "cache_ops.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_shared; /* the mapping's header (cache.c) */

/* A cache as one process sees it: its configuration and where the mapping's parts are. */
struct cache {
    const struct gy_cache_conf *conf;
    uint64_t max_item_size; /* blocksize, or blocksize * blocks with `bitmap` */
    size_t item_size;       /* bytes per item slot: header + keysize, aligned */
    size_t map_size;
    struct cache_shared *sh; /* NULL for a Redis cache */
    uint64_t *hashtable;
    uint64_t *free_stack;
    uint8_t *bitmap;
    char *items;
    char *data;
};

/* What an operation hands back (cache_do). Callbacks run with the cache locked: they must not
 * run Python code, only allocate (PyBytes) and copy. */
struct cache_out {
    /* GET: the buffer the value is copied into (n bytes); NULL: out of memory (cache_do -1). */
    char *(*alloc)(void *ctx, size_t n);
    /* KEYS: each key; non-zero stops the walk (cache_do -1). */
    int (*key)(void *ctx, const char *key, size_t n);
    void *ctx;
    int64_t num; /* NUM: the number */
};

/* Statistics, as uWSGI's stats server shows them. */
struct cache_stats {
    uint64_t items, hits, miss, full, last_modified_at;
};

/* Parse spec (uWSGI's `name=...,items=...,...`) into *out (defaults filled in). NULL, or what is
 * wrong. Keys that uWSGI has and gyre does not honour, and keys nobody knows, are written to
 * warn (one line, "" if none) for the caller to log or, under --strict, refuse. */
const char *cache_conf_parse(char *spec, struct gy_cache_conf *out, char *warn, size_t warnlen);
/* The legacy --cache N as cache "default" (blocksize, store, lastmod from their own options). */
void cache_conf_legacy(struct gy_cache_conf *out, unsigned long long items,
                       unsigned long long blocksize, const char *store, bool lastmod);

/* Map (or, with a store file, open and check) one cache. 0, or -1 with why in err. */
int cache_open(struct cache *c, const struct gy_cache_conf *conf, char *err, size_t errlen);
void cache_close(struct cache *c);

/* Run req. 1: done (GET: value copied through out->alloc; NUM: out->num; KEYS: out->key per
 * key). 0: not done (a missing key, SET of a present key, a value too big, a full cache...).
 * -1: a callback failed, or the lock could not be taken (errno). */
int cache_do(struct cache *c, const struct cache_req *req, struct cache_out *out);
/* Remove the expired items: how many were removed. */
uint64_t cache_sweep(struct cache *c);
void cache_get_stats(const struct cache *c, struct cache_stats *st);

/* Every cache of cfg (a Redis one gets no mapping). 0, or -1 with a log line. */
int caches_create(const struct gy_config *cfg);
int caches_count(void);
struct cache *caches_at(int i);
/* By name; NULL or "" is the first cache (uWSGI's default). NULL when there is none. */
struct cache *caches_find(const char *name);
/* The master's tick: sweeps every --cache-expire-freq seconds (now: a monotonic second count). */
void caches_sweep(double now);

/* Tests only: called at named steps of a write while the lock is held (NULL in gyre). */
extern void (*cache_fault_hook)(const char *step);

#endif
