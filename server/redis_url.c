/*
 * Redis URLs (redis_url.h): the store= of a `--cache2` cache. Parsed whole at start-up so that a
 * typo stops gyre with one line instead of surfacing as a failed connect in every request.
 *
 * Depends on: (nothing in server/)
 */
#include "redis_url.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DB 1000000 /* Redis's `databases` is a config; this only catches nonsense */
#define MAX_TIMEOUT 3600.0

bool redis_url_is_redis(const char *url)
{
    return !strncmp(url, "redis://", 8) || !strncmp(url, "redis+unix://", 13) ||
           !strncmp(url, "unix://", 7);
}

/* A whole decimal number in [lo, hi] spelled by s[0..len). */
static bool parse_uint(const char *s, size_t len, long lo, long hi, long *out)
{
    if (len == 0 || len > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_seconds(const char *s, size_t len, double *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || errno || !isfinite(v) || v <= 0 || v > MAX_TIMEOUT)
        return false;
    *out = v;
    return true;
}

/* The `?db=N&timeout=S` part (without the '?'). */
static int parse_options(const char *url, const char *q, struct redis_url *u, bool db_given,
                         char *err, size_t errlen)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (!eq) {
            snprintf(err, errlen, "%s: option '%.*s' has no value (db=N, timeout=SECONDS)", url,
                     (int)n, q);
            return -1;
        }
        size_t klen = (size_t)(eq - q), vlen = n - klen - 1;
        const char *v = eq + 1;
        if (klen == 2 && !memcmp(q, "db", 2)) {
            long db;
            if (db_given) {
                snprintf(err, errlen, "%s: the database is given twice", url);
                return -1;
            }
            if (!parse_uint(v, vlen, 0, MAX_DB, &db)) {
                snprintf(err, errlen, "%s: db=%.*s is not a database number", url, (int)vlen, v);
                return -1;
            }
            u->db = (int)db;
            db_given = true;
        } else if (klen == 7 && !memcmp(q, "timeout", 7)) {
            if (!parse_seconds(v, vlen, &u->timeout)) {
                snprintf(err, errlen, "%s: timeout=%.*s is not a number of seconds in (0, %g]", url,
                         (int)vlen, v, MAX_TIMEOUT);
                return -1;
            }
        } else {
            snprintf(err, errlen, "%s: unknown option '%.*s' (db=N, timeout=SECONDS)", url,
                     (int)klen, q);
            return -1;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

static int parse_unix(const char *url, const char *rest, struct redis_url *u, char *err,
                      size_t errlen)
{
    size_t n = strcspn(rest, "?");
    if (n == 0 || rest[0] != '/') {
        snprintf(err, errlen, "%s: a unix socket URL needs an absolute path (redis+unix:///PATH)",
                 url);
        return -1;
    }
    if (n >= sizeof(u->path)) {
        snprintf(err, errlen, "%s: the socket path is longer than %zu bytes", url,
                 sizeof(u->path) - 1);
        return -1;
    }
    memcpy(u->path, rest, n);
    u->path[n] = '\0';
    return rest[n] == '?' ? parse_options(url, rest + n + 1, u, false, err, errlen) : 0;
}

static int parse_tcp(const char *url, const char *rest, struct redis_url *u, char *err,
                     size_t errlen)
{
    size_t authority = strcspn(rest, "/?");
    if (memchr(rest, '@', authority)) {
        snprintf(err, errlen, "%s: a user or password in the URL is not supported", url);
        return -1;
    }
    const char *host = rest, *p;
    size_t hlen;
    if (*rest == '[') { /* [IPv6] */
        const char *close = memchr(rest, ']', authority);
        if (!close) {
            snprintf(err, errlen, "%s: '[' without ']' in the host", url);
            return -1;
        }
        host = rest + 1;
        hlen = (size_t)(close - host);
        p = close + 1;
    } else {
        hlen = strcspn(rest, ":/?");
        p = rest + hlen;
    }
    if (hlen == 0) {
        snprintf(err, errlen, "%s: no host (redis://HOST[:PORT][/DB])", url);
        return -1;
    }
    if (hlen >= sizeof(u->host)) {
        snprintf(err, errlen, "%s: the host name is too long", url);
        return -1;
    }
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/?");
        long port;
        if (!parse_uint(p + 1, n, 1, 65535, &port)) {
            snprintf(err, errlen, "%s: '%.*s' is not a port (1-65535)", url, (int)n, p + 1);
            return -1;
        }
        u->port = (int)port;
        p += 1 + n;
    } else if (*p && *p != '/' && *p != '?') {
        snprintf(err, errlen, "%s: unexpected '%c' after the host", url, *p);
        return -1;
    }
    bool db_given = false;
    if (*p == '/') {
        size_t n = strcspn(p + 1, "?");
        long db;
        if (n > 0) {
            if (!parse_uint(p + 1, n, 0, MAX_DB, &db)) {
                snprintf(err, errlen, "%s: '%.*s' is not a database number", url, (int)n, p + 1);
                return -1;
            }
            u->db = (int)db;
            db_given = true;
        }
        p += 1 + n;
    }
    return *p == '?' ? parse_options(url, p + 1, u, db_given, err, errlen) : 0;
}

int redis_url_parse(const char *url, struct redis_url *u, char *err, size_t errlen)
{
    *u = (struct redis_url){ .port = REDIS_URL_DEFAULT_PORT, .timeout = REDIS_URL_DEFAULT_TIMEOUT };
    if (!strncmp(url, "redis://", 8))
        return parse_tcp(url, url + 8, u, err, errlen);
    if (!strncmp(url, "redis+unix://", 13)) {
        u->port = 0;
        return parse_unix(url, url + 13, u, err, errlen);
    }
    if (!strncmp(url, "unix://", 7)) {
        u->port = 0;
        return parse_unix(url, url + 7, u, err, errlen);
    }
    snprintf(err, errlen, "%s: not a Redis URL (redis://HOST[:PORT][/DB] or redis+unix:///PATH)",
             url);
    return -1;
}
