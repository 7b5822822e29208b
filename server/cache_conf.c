/*
 * The configuration of a cache (cache.h): uWSGI's --cache2 `key=value,...` string and the legacy
 * --cache N, parsed at start-up by options.c into a struct gy_cache_conf. Plain C; the store
 * that these configure is cache.c.
 *
 * Depends on: (nothing in server/) (server/README)
 */
#include "cache.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void conf_defaults(struct gy_cache_conf *o)
{
    memset(o, 0, sizeof(*o));
    o->blocksize = 65536;
    o->keysize = 2048;
    o->hashsize = 65536;
}

void cache_conf_legacy(struct gy_cache_conf *out, unsigned long long items,
                       unsigned long long blocksize, const char *store, bool lastmod)
{
    conf_defaults(out);
    out->name = "default";
    out->max_items = items;
    out->blocks = items;
    if (blocksize)
        out->blocksize = blocksize;
    out->store = store;
    out->lastmod = lastmod;
}

static const char *parse_n(const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || errno || *v == '-')
        return "expected a whole number";
    *out = n;
    return NULL;
}

static void add_warning(char *warn, size_t warnlen, const char *key, const char *why)
{
    size_t used = strlen(warn);
    if (used + 1 < warnlen)
        snprintf(warn + used, warnlen - used, "%s%s (%s)", used ? "; " : "", key, why);
}

/* One key=value (value NULL for a bare key) into o. */
static const char *conf_key(struct gy_cache_conf *o, const char *k, const char *v, char *warn,
                            size_t warnlen)
{
    static const struct {
        const char *name;
        size_t off;
    } numbers[] = {
        { "max_items", offsetof(struct gy_cache_conf, max_items) },
        { "maxitems", offsetof(struct gy_cache_conf, max_items) },
        { "items", offsetof(struct gy_cache_conf, max_items) },
        { "blocksize", offsetof(struct gy_cache_conf, blocksize) },
        { "blocks", offsetof(struct gy_cache_conf, blocks) },
        { "hashsize", offsetof(struct gy_cache_conf, hashsize) },
        { "hash_size", offsetof(struct gy_cache_conf, hashsize) },
        { "keysize", offsetof(struct gy_cache_conf, keysize) },
        { "key_size", offsetof(struct gy_cache_conf, keysize) },
    };
    static const struct {
        const char *name;
        size_t off;
    } flags[] = {
        { "bitmap", offsetof(struct gy_cache_conf, bitmap) },
        { "purge_lru", offsetof(struct gy_cache_conf, purge_lru) },
        { "lru", offsetof(struct gy_cache_conf, purge_lru) },
        { "ignore_full", offsetof(struct gy_cache_conf, ignore_full) },
        { "clear_on_full", offsetof(struct gy_cache_conf, clear_on_full) },
        { "no_expire", offsetof(struct gy_cache_conf, no_expire) },
        { "lastmod", offsetof(struct gy_cache_conf, lastmod) },
        { "store_delete", offsetof(struct gy_cache_conf, store_delete) },
        { "storedelete", offsetof(struct gy_cache_conf, store_delete) },
    };
    /* uWSGI's keys gyre needs not: the behaviour is gyre's anyway. */
    static const char *const accepted[] = {
        "lazy_expire", "lazy", "sweep_on_full", "store_sync", "storesync",
    };
    /* uWSGI's keys for its cache network: gyre has none (a Redis store shares a cache). */
    static const char *const unsupported[] = {
        "node", "nodes", "sync", "udp", "udp_servers", "udp_server", "udpservers", "udpserver",
    };
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
        if (!strcmp(k, numbers[i].name)) {
            if (!v)
                return "a number is due after it (KEY=N)";
            return parse_n(v, (unsigned long long *)((char *)o + numbers[i].off));
        }
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (!strcmp(k, flags[i].name)) {
            *(bool *)((char *)o + flags[i].off) = true; /* uWSGI: given at all means on */
            return NULL;
        }
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
        if (!strcmp(k, accepted[i]))
            return NULL;
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
        if (!strcmp(k, unsupported[i])) {
            add_warning(warn, warnlen, k, "uWSGI's cache network: not supported by gyre, ignored");
            return NULL;
        }
    if (!strcmp(k, "name")) {
        if (!v || !*v)
            return "name= needs a value";
        o->name = v;
    } else if (!strcmp(k, "store")) {
        if (!v || !*v)
            return "store= needs a file or a redis:// URL";
        o->store = v;
    } else if (!strcmp(k, "math_initial")) {
        if (!v)
            return "math_initial= needs a number";
        char *end;
        errno = 0;
        o->math_initial = strtoll(v, &end, 10);
        if (!*v || *end || errno)
            return "math_initial: expected a whole number";
    } else if (!strcmp(k, "hash")) {
        if (!v || strcmp(v, "djb33x"))
            add_warning(warn, warnlen, k, "gyre hashes keys with djb33x only");
    } else {
        add_warning(warn, warnlen, k, "no such key of --cache2: ignored");
    }
    return NULL;
}

const char *cache_conf_parse(char *spec, struct gy_cache_conf *o, char *warn, size_t warnlen)
{
    static char err[160];
    conf_defaults(o);
    if (warnlen)
        warn[0] = '\0';
    bool blocks_given = false;
    /* uWSGI's kvlist: ',' between items, '=' after the key, '\' escapes the next byte. */
    char *r = spec, *w = spec;
    while (*r) {
        char *item = w;
        char *eq = NULL;
        while (*r && *r != ',') {
            if (*r == '\\' && r[1]) {
                r++;
            } else if (*r == '=' && !eq) {
                *w++ = '\0';
                eq = w;
                r++;
                continue;
            }
            *w++ = *r++;
        }
        if (*r == ',')
            r++;
        *w++ = '\0';
        if (!*item)
            continue;
        if (!strcmp(item, "blocks"))
            blocks_given = true;
        const char *e = conf_key(o, item, eq, warn, warnlen);
        if (e) {
            snprintf(err, sizeof(err), "%s: %s", item, e);
            return err;
        }
    }
    if (!o->name)
        return "you have to specify a cache name (name=NAME)";
    if (!o->max_items)
        return "you have to specify the maximum number of cache items (items=N)";
    if (!blocks_given)
        o->blocks = o->max_items;
    if (!o->blocksize || !o->blocks || !o->hashsize)
        return "blocksize, blocks and hashsize must be at least 1";
    if (!o->keysize || o->keysize >= 65535)
        return "keysize must be from 1 to 65534";
    if (o->blocks < o->max_items)
        return "blocks must be at least items (each item needs a block)";
    return NULL;
}
