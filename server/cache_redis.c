/*
 * The Redis store of a cache (cache_redis.h). Placeholder while the store is being written:
 * every call raises, so that nothing pretends to have cached.
 *
 * Depends on: (nothing in server/)
 */
#include "cache_redis.h"

#include <stdio.h>

struct cache_redis *cache_redis_open(const char *cache_name, const char *url, size_t keysize,
                                     size_t blocksize, char *err, size_t errlen)
{
    (void)url, (void)keysize, (void)blocksize;
    snprintf(err, errlen, "cache %s: the Redis store is not built yet", cache_name);
    return NULL;
}

int cache_redis_do(struct cache_redis *r, const struct cache_req *req, PyObject **out)
{
    (void)r, (void)req, (void)out;
    PyErr_SetString(PyExc_NotImplementedError, "the Redis cache store is not built yet");
    return -1;
}
