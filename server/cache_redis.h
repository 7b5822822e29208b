/*
 * The Redis store of a cache (`--cache2 name=...,store=redis://HOST:PORT/DB` or
 * `redis+unix:///PATH?db=N`): the same `uwsgi.cache_*` API on a Redis server, so that many gyre
 * hosts share one cache. libhiredis, driven by the IOLoop: a call from a greenlet core suspends
 * only that core while Redis answers.
 */
#ifndef GYRE_CACHE_REDIS_H
#define GYRE_CACHE_REDIS_H

#include "cache_ops.h"
#include "core.h"

struct cache_redis;

/* In a worker (after the fork), on the cache's first use: nothing is connected yet (the first
 * call connects). NULL with a message in err when url is not a Redis URL (options.c refused it at
 * start-up already, with redis_url_parse) or memory ran out. */
struct cache_redis *cache_redis_open(const char *cache_name, const char *url, size_t keysize,
                                     size_t blocksize, char *err, size_t errlen);

/* Run req on Redis. 1: done; for GET, NUM and KEYS *out is a new reference (bytes, int, list of
 * bytes). 0: not done (a missing key, SET of a key that is there, a value over blocksize, a key over
 * keysize): the uwsgi function answers None. -1: a Python exception is set (Redis unreachable or
 * failing): the uwsgi function raises it. The next call after Redis comes back works again. */
int cache_redis_do(struct cache_redis *r, const struct cache_req *req, PyObject **out);

#endif
