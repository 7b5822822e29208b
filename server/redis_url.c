/*
 * Redis URLs (redis_url.h). Placeholder while the Redis store is being written: every URL is
 * refused at start-up.
 *
 * Depends on: (nothing in server/)
 */
#include "redis_url.h"

#include <stdio.h>
#include <string.h>

bool redis_url_is_redis(const char *url)
{
    return !strncmp(url, "redis://", 8) || !strncmp(url, "redis+unix://", 13) ||
           !strncmp(url, "unix://", 7);
}

int redis_url_parse(const char *url, struct redis_url *u, char *err, size_t errlen)
{
    (void)u;
    snprintf(err, errlen, "%s: the Redis cache store is not built yet", url);
    return -1;
}
