/*
 * Redis URLs (redis_url.c), plain C so that options.c can refuse a bad one at start-up:
 *   redis://HOST[:PORT][/DB][?OPTIONS]     TCP, port 6379 and db 0 by default; HOST may be
 *                                          an [IPv6] address in brackets
 *   redis+unix:///PATH[?OPTIONS]           a unix socket (also unix:///PATH)
 * OPTIONS: `db=N` (the database, for a unix socket or instead of /DB) and `timeout=SECONDS`
 * (how long a call waits for Redis before it raises TimeoutError; 3 by default), joined by `&`.
 * No user or password part: a URL with one is refused rather than half-honoured.
 */
#ifndef GYRE_REDIS_URL_H
#define GYRE_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

#define REDIS_URL_DEFAULT_PORT 6379
#define REDIS_URL_DEFAULT_TIMEOUT 3.0 /* seconds */

struct redis_url {
    char host[256]; /* "" for a unix socket */
    int port;
    char path[108]; /* the unix socket, or "" */
    int db;
    double timeout; /* seconds a call waits for an answer (> 0) */
};

/* true when url starts with one of the Redis schemes (the rest may still be bad). */
bool redis_url_is_redis(const char *url);

/* 0 and *u filled, or -1 with why in err. */
int redis_url_parse(const char *url, struct redis_url *u, char *err, size_t errlen);

#endif
