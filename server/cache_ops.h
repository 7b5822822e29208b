/*
 * One cache operation, as the `uwsgi` module asks it of a cache's store: the shared-memory cache
 * (cache.c) or the Redis store (cache_redis.c). Plain C: the module (uwsgi_cache.c) parses the
 * Python arguments into a struct cache_req and maps the store's answer to what uWSGI returns.
 */
#ifndef GYRE_CACHE_OPS_H
#define GYRE_CACHE_OPS_H

#include <stddef.h>
#include <stdint.h>

enum cache_op {
    CACHE_GET,     /* the value */
    CACHE_EXISTS,  /* done when the key is there */
    CACHE_SET,     /* only when the key is absent (uWSGI's cache_set never overwrites) */
    CACHE_UPDATE,  /* set, overwriting */
    CACHE_DEL,     /* done when the key was there */
    CACHE_CLEAR,   /* every key */
    CACHE_KEYS,    /* every key */
    CACHE_INC,     /* the 64-bit number under key (8 bytes, native order, as uWSGI) += num */
    CACHE_DEC,     /* -= num */
    CACHE_MUL,     /* *= num */
    CACHE_DIV,     /* /= num */
    CACHE_APPEND,  /* value += val */
    CACHE_PREPEND, /* value = val + value */
    CACHE_NUM,     /* the 64-bit number under key */
};

struct cache_req {
    enum cache_op op;
    const char *key;
    size_t klen;
    const char *val; /* SET, UPDATE, APPEND, PREPEND */
    size_t vlen;
    int64_t num;      /* INC, DEC, MUL, DIV */
    uint64_t expires; /* seconds from now; 0: never (SET, UPDATE, and the math ops on a new key) */
};

#endif
