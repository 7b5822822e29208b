/*
 * Redis URLs (redis_url.c), plain C so that options.c can refuse a bad one at start-up:
 *   redis://HOST[:PORT][/DB]      TCP, port 6379 and db 0 by default
 *   redis+unix:///PATH[?db=N]     a unix socket (also unix:///PATH)
 */
#ifndef GYRE_REDIS_URL_H
#define GYRE_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

struct redis_url {
    char host[256]; /* "" for a unix socket */
    int port;
    char path[108]; /* the unix socket, or "" */
    int db;
};

/* true when url starts with one of the Redis schemes (the rest may still be bad). */
bool redis_url_is_redis(const char *url);

/* 0 and *u filled, or -1 with why in err. */
int redis_url_parse(const char *url, struct redis_url *u, char *err, size_t errlen);

#endif
