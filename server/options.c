/*
 * The options: one table describes every option gyre has (name, argument, setter, help);
 * parsing, --help and the error messages all read it, so an option is added in exactly one
 * place. And the command line, as uWSGI's: `--opt value`, `--opt=value`, uWSGI's short flags
 * (-s ADDR, -M, -p4...), a config file as a bare argument (app.ini, app.ini:section).
 *
 * Every source (the environment, the command line, .ini files) is collected by ini.c into one
 * list of entries first; options_apply() then applies them in order. A key that is no option of
 * gyre is, as in uWSGI:
 *   - a placeholder (silently: an .ini may define %(base) that way) when it is no uWSGI option
 *     either, except that a command-line option gyre and uWSGI do not know is an error (exit 2);
 *   - one warning line when it is one of uWSGI's options (server/uwsgi_options.h, generated from
 *     Debian's uWSGI by scripts/uwsgi-options.py) that gyre does not implement, saying what gyre
 *     does instead (UNSUPPORTED), or "not supported by gyre: ignored";
 *   - an error under --strict (exit 1, uWSGI's status), both kinds.
 *
 * Depends on: cache_conf.c, ini.c, metrics.c, redis_url.c, regexp.c, signals.c (server/README)
 */
#include "config.h"
#include "regexp.h"
#include "hooks.h"
#include "cache.h" /* cache_conf.c */
#include "redis_url.h"
#include "metrics.h"
#include "signals.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

enum arg_kind { ARG_NONE, ARG_REQUIRED, ARG_OPTIONAL };

struct option_def {
    const char *name;
    enum arg_kind arg;
    /* Returns NULL on success or a description of what is wrong with value. */
    const char *(*set)(struct gy_config *cfg, const char *value);
    const char *metavar;
    const char *help;
};

/* Is end the end of a number or word: nothing, or blanks then a " ; comment" or " # comment"?
 * uWSGI keeps such a comment in the value and reads numbers with atoi(), so `processes = 4 ;
 * four workers` is 4 there: so it is here, for numbers and flags (a string keeps it whole, as in
 * uWSGI). A comment right after the number ("4;x") is not one. */
static bool at_value_end(const char *end)
{
    const char *p = end;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || (p > end && (*p == ';' || *p == '#'));
}

/* A yes/no word where a number is due: uWSGI reads the number with atoi, so that
 * `post-buffering = true` or `cheaper = true` (real configs have both) means 0. */
static bool is_bool_word(const char *s)
{
    static const char *const words[] = { "true", "false", "yes", "no", "on", "off" };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t n = strlen(words[i]);
        if (strncasecmp(s, words[i], n) == 0 && at_value_end(s + n))
            return true;
    }
    return false;
}

static const char *parse_long(const char *s, long min, long max, long *out)
{
    if (is_bool_word(s)) {
        if (min > 0)
            return "expected a whole number (uWSGI would read this word as 0)";
        *out = 0;
        return NULL;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || end == s || !at_value_end(end) || errno)
        return "expected a whole number";
    if (v < min || v > max)
        return "number out of range";
    *out = v;
    return NULL;
}

/* parse_long into an int field. */
static const char *parse_int(const char *s, long min, long max, int *out)
{
    long n = 0;
    const char *err = parse_long(s, min, max, &n);
    *out = (int)n;
    return err;
}

static const char *parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || end == s || !at_value_end(end) || errno || !(v >= 0) || v > 1e9)
        return "expected a number of seconds";
    *out = v;
    return NULL;
}

static const char *add_socket(struct gy_config *cfg, const char *v, enum gy_proto proto)
{
    if (*v == '\0')
        return "empty socket address";
    if (cfg->nsockets == GY_MAX_SOCKETS)
        return "too many sockets";
    /* HOST:PORT (or :PORT); a path has a '/' or no ':' (uWSGI's rule, also listen.c's). */
    const char *colon = strrchr(v, ':');
    if (colon && !strchr(v, '/')) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
            return "the port must be a number from 1 to 65535";
    }
    cfg->sockets[cfg->nsockets].addr = v;
    cfg->sockets[cfg->nsockets].proto = proto;
    cfg->nsockets++;
    return NULL;
}

static const char *add_list(const char **list, int *n, const char *v)
{
    if (*n == GY_MAX_LIST)
        return "given too many times";
    list[(*n)++] = v;
    return NULL;
}

static const char *set_socket(struct gy_config *c, const char *v)
{
    const char *err = add_socket(c, v, GY_PROTO_UWSGI);
    if (!err)
        c->sockets[c->nsockets - 1].by_protocol = true;
    return err;
}
static const char *set_uwsgi_socket(struct gy_config *c, const char *v)
{
    return add_socket(c, v, GY_PROTO_UWSGI);
}
/* uWSGI's --protocol: the protocol of the "default" sockets (--socket, -s), wherever it is
 * given; --uwsgi-socket, --http-socket and --fastcgi-socket say theirs. */
static const char *set_protocol(struct gy_config *c, const char *v)
{
    static const struct {
        const char *name;
        enum gy_proto proto;
    } known[] = { { "uwsgi", GY_PROTO_UWSGI },
                  { "http", GY_PROTO_HTTP },
                  { "http11", GY_PROTO_HTTP },
                  { "fastcgi", GY_PROTO_FASTCGI },
                  { "fcgi", GY_PROTO_FASTCGI } };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(v, known[i].name) == 0) {
            c->protocol = known[i].proto;
            return NULL;
        }
    }
    return "gyre speaks uwsgi, http (http11) and fastcgi (fcgi)";
}
static const char *set_fastcgi_socket(struct gy_config *c, const char *v)
{
    return add_socket(c, v, GY_PROTO_FASTCGI);
}
static const char *set_http_socket(struct gy_config *c, const char *v)
{
    return add_socket(c, v, GY_PROTO_HTTP);
}
static const char *set_wsgi_file(struct gy_config *c, const char *v)
{
    c->wsgi_file = v;
    return NULL;
}
static const char *set_module(struct gy_config *c, const char *v)
{
    c->module = v;
    return NULL;
}
static const char *set_callable(struct gy_config *c, const char *v)
{
    c->callable = v;
    return NULL;
}
static const char *set_chdir(struct gy_config *c, const char *v)
{
    c->chdir = v;
    return NULL;
}
static const char *set_pythonpath(struct gy_config *c, const char *v)
{
    return add_list(c->pythonpath, &c->npythonpath, v);
}
static const char *set_greenlet(struct gy_config *c, const char *v)
{
    (void)v;
    c->greenlet = true;
    return NULL;
}
static const char *set_disable_logging(struct gy_config *c, const char *v)
{
    (void)v;
    c->disable_logging = true;
    return NULL;
}
static const char *set_ignored(struct gy_config *c, const char *v)
{
    (void)c;
    (void)v;
    return NULL;
}

static const char *set_env(struct gy_config *c, const char *v)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v)
        return "expected KEY=VALUE";
    return add_list(c->env, &c->nenv, v);
}

static const char *set_cores(struct gy_config *c, const char *v)
{
    const char *err = parse_int(v, 1, 100000, &c->cores);
    c->cores_given = true;
    return err;
}

static const char *set_threads(struct gy_config *c, const char *v)
{
    return parse_int(v, 1, 10000, &c->threads);
}

static const char *set_thread_stacksize(struct gy_config *c, const char *v)
{
    long n = 0;
    /* KiB, as uWSGI counts it; a thread needs at least PTHREAD_STACK_MIN (16 KiB here) and
     * the interpreter's frames need far more: threads.c raises a small value to that floor. */
    const char *err = parse_long(v, 1, 1L << 22, &n);
    c->thread_stacksize_kb = (unsigned long)n;
    return err;
}

static const char *set_chmod_socket(struct gy_config *c, const char *v)
{
    if (!v) {
        c->chmod_socket = 0666;
        return NULL;
    }
    char *end;
    long mode = strtol(v, &end, 8);
    if (*v == '\0' || end == v || !at_value_end(end) || mode < 0 || mode > 07777)
        return "expected an octal file mode such as 660";
    c->chmod_socket = (int)mode;
    return NULL;
}

static const char *set_buffer_size(struct gy_config *c, const char *v)
{
    long n = 0;
    const char *err = parse_long(v, 64, GY_MAX_BUFFER_SIZE, &n);
    c->buffer_size = (unsigned)n;
    return err;
}

static const char *set_listen(struct gy_config *c, const char *v)
{
    return parse_int(v, 1, INT_MAX, &c->listen_backlog);
}

static const char *set_socket_timeout(struct gy_config *c, const char *v)
{
    const char *err = parse_seconds(v, &c->socket_timeout);
    if (!err && c->socket_timeout <= 0)
        return "must be more than 0";
    return err;
}

static const char *set_keepalive_timeout(struct gy_config *c, const char *v)
{
    return parse_seconds(v, &c->keepalive_timeout);
}

static const char *set_max_conns(struct gy_config *c, const char *v)
{
    return parse_int(v, 1, INT_MAX, &c->max_conns);
}

static const char *set_stop_grace(struct gy_config *c, const char *v)
{
    return parse_seconds(v, &c->stop_grace);
}

static const char *set_string(const char **field, const char *v)
{
    *field = v;
    return NULL;
}

static const char *parse_ulong(const char *v, unsigned long *out)
{
    long n = 0;
    const char *err = parse_long(v, 0, LONG_MAX, &n);
    *out = (unsigned long)n;
    return err;
}

static const char *set_log_format(struct gy_config *c, const char *v)
{
    return set_string(&c->log_format, v);
}
static const char *set_logto(struct gy_config *c, const char *v)
{
    return set_string(&c->logto, v);
}
static const char *set_pidfile(struct gy_config *c, const char *v)
{
    return set_string(&c->pidfile, v);
}
static const char *set_uid(struct gy_config *c, const char *v)
{
    return set_string(&c->uid, v);
}
static const char *set_gid(struct gy_config *c, const char *v)
{
    return set_string(&c->gid, v);
}
static const char *set_master(struct gy_config *c, const char *v)
{
    (void)v;
    c->master = true;
    return NULL;
}
static const char *set_touch_reload(struct gy_config *c, const char *v)
{
    return add_list(c->touch_reload, &c->ntouch_reload, v);
}
static const char *set_reload_mercy(struct gy_config *c, const char *v)
{
    return parse_seconds(v, &c->reload_mercy);
}
static const char *set_harakiri(struct gy_config *c, const char *v)
{
    return parse_seconds(v, &c->harakiri);
}
static const char *set_harakiri_grace(struct gy_config *c, const char *v)
{
    return parse_seconds(v, &c->harakiri_grace);
}
static const char *set_websocket_max_size(struct gy_config *c, const char *v)
{
    long kib;
    const char *err = parse_long(v, 1, 1L << 30, &kib);
    if (!err)
        c->websocket_max_size = (unsigned long long)kib * 1024;
    return err;
}
static const char *set_websocket_ping_freq(struct gy_config *c, const char *v)
{
    const char *err = parse_seconds(v, &c->websocket_ping_freq);
    return err ? err : c->websocket_ping_freq > 0 ? NULL : "must be more than 0 seconds";
}
static const char *set_websocket_pong_tolerance(struct gy_config *c, const char *v)
{
    const char *err = parse_seconds(v, &c->websocket_pong_tolerance);
    return err ? err : c->websocket_pong_tolerance > 0 ? NULL : "must be more than 0 seconds";
}
static const char *set_locks(struct gy_config *c, const char *v)
{
    return parse_int(v, 0, GY_MAX_LOCKS, &c->locks);
}
static const char *set_max_requests(struct gy_config *c, const char *v)
{
    return parse_ulong(v, &c->max_requests);
}
static const char *set_reload_on_rss(struct gy_config *c, const char *v)
{
    return parse_ulong(v, &c->reload_on_rss);
}
static const char *set_ini(struct gy_config *c, const char *v)
{
    /* Only reached by a direct options_set("ini"): sources read "ini" themselves. */
    int status;
    const char *err = config_add_file(v, NULL);
    return err ? err : options_apply(c, &status);
}
static const char *set_stats(struct gy_config *c, const char *v)
{
    return set_string(&c->stats, v);
}
static const char *set_stats_http(struct gy_config *c, const char *v)
{
    (void)v;
    c->stats_http = true;
    return NULL;
}
static const char *set_metrics_http(struct gy_config *c, const char *v)
{
    return set_string(&c->metrics_http, v);
}

/* --metric: checked here, where a bad one is an error naming it (exit 2), and made by
 * metrics.c before the workers are forked. A key gyre accepts without honouring is a warning,
 * an error under --strict. alias= and children= must name metrics given before, as in uWSGI. */
static const char *set_metric(struct gy_config *c, const char *v)
{
    static char err[768];
    struct gy_metric m;
    char *text, e[256], warn[512];
    if (metric_parse(v, &m, &text, e, sizeof(e), warn, sizeof(warn)) < 0) {
        free(text);
        snprintf(err, sizeof(err), "%s", e);
        return err;
    }
    e[0] = '\0';
    const char *refs[2] = { m.alias, m.children_names };
    char *names = NULL;
    for (int r = 0; r < 2 && !e[0]; r++) {
        free(names);
        names = refs[r] ? strdup(refs[r]) : NULL;
        char *save = NULL;
        for (char *p = names ? strtok_r(names, ";", &save) : NULL; p && !e[0];
             p = strtok_r(NULL, ";", &save)) {
            bool found = false;
            for (int i = 0; i < c->nmetrics && !found; i++) {
                struct gy_metric other;
                char *t, oe[256], ow[512];
                found = metric_parse(c->metrics[i], &other, &t, oe, sizeof(oe), ow, sizeof(ow)) ==
                            0 &&
                        strcmp(other.name, p) == 0;
                free(t);
            }
            if (!found)
                snprintf(e, sizeof(e),
                         "unable to find metric \"%s\" (%s= names a --metric given "
                         "before)",
                         p, r == 0 ? "alias" : "children");
        }
    }
    free(names);
    free(text);
    if (e[0]) {
        snprintf(err, sizeof(err), "%s", e);
        return err;
    }
    if (warn[0] && c->strict) {
        snprintf(err, sizeof(err), "%s (strict mode)", warn);
        return err;
    }
    if (warn[0])
        fprintf(stderr, "gyre: warning: --metric %s: %s\n", v, warn);
    c->enable_metrics = true;
    return add_list(c->metrics, &c->nmetrics, v);
}
static const char *set_enable_metrics(struct gy_config *c, const char *v)
{
    (void)v;
    c->enable_metrics = true;
    return NULL;
}
static const char *set_metrics_dir(struct gy_config *c, const char *v)
{
    c->enable_metrics = true;
    return set_string(&c->metrics_dir, v);
}
static const char *set_metrics_dir_restore(struct gy_config *c, const char *v)
{
    (void)v;
    c->metrics_dir_restore = true;
    return NULL;
}
static const char *set_stats_no_metrics(struct gy_config *c, const char *v)
{
    (void)v;
    c->stats_no_metrics = true;
    return NULL;
}

static const char *set_processes(struct gy_config *c, const char *v)
{
    return parse_int(v, 1, 1024, &c->processes);
}

static const char *set_strict(struct gy_config *c, const char *v)
{
    (void)v;
    c->strict = true;
    return NULL;
}

/* Was plugin name warned about already? Remembers it if not (a few names at most). */
static bool plugin_warned(const char *name)
{
    static char warned[16][64];
    static int nwarned;
    for (int i = 0; i < nwarned; i++)
        if (strcmp(warned[i], name) == 0)
            return true;
    if (nwarned < 16)
        snprintf(warned[nwarned++], sizeof(warned[0]), "%s", name);
    return false;
}

/* --plugin python3,tornado_python3 (commas or blanks, repeatable): gyre has its plugins built
 * in (ini.c's EMBEDDED_PLUGINS); one it has not is a warning, once, or an error under --strict,
 * since what it would have done is not done. */
static const char *set_plugin(struct gy_config *c, const char *v)
{
    static char err[256];
    char *list = strdup(v), *save = NULL;
    if (!list)
        return "out of memory";
    for (char *name = strtok_r(list, ", \t", &save); name; name = strtok_r(NULL, ", \t", &save)) {
        if (config_plugin_is_embedded(name))
            continue;
        if (c->strict) {
            snprintf(err, sizeof(err), "plugin '%s' is not built into gyre (strict mode)", name);
            free(list);
            return err;
        }
        if (!plugin_warned(name))
            fprintf(stderr, "gyre: warning: plugin '%s' is not built into gyre: ignored\n", name);
    }
    free(list);
    return NULL;
}

/* -- setters: uwsgi.cache_* (issue 12: cache.c, cache_redis.c) -- */

static const char *parse_bytes(const char *v, unsigned long long *out);

/* --cache2 name=...,items=...: one cache more (cache.c parses uWSGI's keys). A store= that is a
 * Redis URL is checked here, so that a bad one stops the start, not the first request. */
static const char *set_cache2(struct gy_config *c, const char *v)
{
    static char err[512];
    int base = c->cache_items ? 1 : 0; /* the legacy --cache, first (see finish_caches) */
    if (c->ncaches - base >= GY_MAX_CACHES)
        return "given too many times (16 caches at most)";
    char *spec = strdup(v);
    if (!spec)
        return "out of memory";
    struct gy_cache_conf conf;
    char warn[256];
    const char *e = cache_conf_parse(spec, &conf, warn, sizeof(warn));
    if (e)
        return e;
    if (warn[0] && c->strict) {
        snprintf(err, sizeof(err), "%s (strict mode)", warn);
        return err;
    }
    if (warn[0])
        fprintf(stderr, "gyre: warning: --cache2 %s: %s\n", conf.name, warn);
    for (int i = 0; i < c->ncaches; i++)
        if (!strcmp(c->caches[i].name, conf.name))
            return "a cache of this name exists already";
    if (conf.store && redis_url_is_redis(conf.store)) {
        struct redis_url u;
        char why[256];
        if (redis_url_parse(conf.store, &u, why, sizeof(why)) < 0) {
            snprintf(err, sizeof(err), "store: %s", why);
            return err;
        }
        conf.store_redis = true;
    }
    c->caches[c->ncaches++] = conf;
    return NULL;
}

/* --cache N: uWSGI's first-generation cache, "default"; made in finish_caches once every
 * --cache-* option is known, whatever their order. */
static const char *set_cache(struct gy_config *c, const char *v)
{
    unsigned long long n;
    const char *err = parse_bytes(v, &n);
    if (!err && n == 1)
        err = "at least 2 (slot 0 is never used, as in uWSGI)";
    if (!err)
        c->cache_items = n;
    return err;
}

static const char *set_cache_blocksize(struct gy_config *c, const char *v)
{
    const char *err = parse_bytes(v, &c->cache_blocksize);
    return !err && !c->cache_blocksize ? "at least 1" : err;
}

static const char *set_cache_store(struct gy_config *c, const char *v)
{
    return set_string(&c->cache_store, v);
}

static const char *set_cache_lastmod(struct gy_config *c, const char *v)
{
    (void)v;
    c->cache_lastmod = true;
    return NULL;
}

static const char *set_cache_expire_freq(struct gy_config *c, const char *v)
{
    return parse_int(v, 1, 86400, &c->cache_expire_freq);
}

static const char *set_cache_no_expire(struct gy_config *c, const char *v)
{
    (void)v;
    c->cache_no_expire = true;
    return NULL;
}

static const char *set_cache_report_freed(struct gy_config *c, const char *v)
{
    (void)v;
    c->cache_report_freed = true;
    return NULL;
}

static const char *set_add_cache_item(struct gy_config *c, const char *v)
{
    const char *space = strchr(v, ' ');
    if (!strchr(space ? space + 1 : v, '='))
        return "expected [CACHE ]KEY=VALUE";
    return add_list(c->add_cache_item, &c->nadd_cache_item, v);
}

static const char *set_load_file_in_cache(struct gy_config *c, const char *v)
{
    return add_list(c->load_file_in_cache, &c->nload_file_in_cache, v);
}

/* The legacy --cache as cache "default", first (uWSGI makes it before the --cache2 ones, and
 * uwsgi.cache_get(key) without a name uses the first). */
static const char *finish_caches(struct gy_config *c)
{
    if (!c->cache_items)
        return NULL;
    for (int i = 0; i < c->ncaches; i++)
        if (!strcmp(c->caches[i].name, "default"))
            return "--cache: a --cache2 is named \"default\" already";
    memmove(&c->caches[1], &c->caches[0], sizeof(c->caches[0]) * (size_t)c->ncaches);
    c->ncaches++;
    cache_conf_legacy(&c->caches[0], c->cache_items, c->cache_blocksize, c->cache_store,
                      c->cache_lastmod);
    struct gy_cache_conf *d = &c->caches[0];
    if (d->store && redis_url_is_redis(d->store)) {
        struct redis_url u;
        static char why[256];
        if (redis_url_parse(d->store, &u, why, sizeof(why)) < 0)
            return why;
        d->store_redis = true;
    }
    return NULL;
}

/* -- setters: options that are already gyre's behaviour or a true no-op (issue 10, group 1) -- */

/* -- setters: the HTTP router and static files (issue 10, groups 2 and 6) -- */

/* --http ADDR: uWSGI starts a router process there that proxies to the workers; gyre's workers
 * serve HTTP/1.1 on ADDR themselves (keep-alive, chunked, pipelining), as --http-socket. */
static const char *set_http(struct gy_config *c, const char *v)
{
    if (*v == '=')
        return "=N names a --shared-socket, which gyre does not have: give the address "
               "(e.g. :8080)";
    return add_socket(c, v, GY_PROTO_HTTP);
}
static const char *set_https(struct gy_config *c, const char *v)
{
    (void)c;
    (void)v;
    return "gyre speaks no TLS: let nginx (or another proxy) terminate TLS and give gyre "
           "--http or --http-socket";
}
/* Between the router and its client in uWSGI; gyre's HTTP sockets are its clients' sockets,
 * and gyre has one client timeout for every socket: --socket-timeout. */
static const char *set_http_timeout(struct gy_config *c, const char *v)
{
    return set_socket_timeout(c, v);
}
/* A number that gyre checks and has no use for (the option's work is gyre's behaviour). */
static const char *check_number(const char *v, long min, long max)
{
    long n;
    return v ? parse_long(v, min, max, &n) : NULL;
}
/* uWSGI's optional-number flags (--http-keepalive, --http-manage-expect) are written bare, with
 * a number, or as an .ini boolean ("http-keepalive = true"): all mean the same to gyre. */
static const char *set_http_keepalive(struct gy_config *c, const char *v)
{
    (void)c;
    static const char *const words[] = { "true", "false", "yes", "no", "on", "off" };
    for (size_t i = 0; v && i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(v, words[i]) == 0)
            return NULL;
    return check_number(v, 0, INT_MAX);
}
static const char *set_modifier(struct gy_config *c, const char *v)
{
    (void)c;
    return check_number(v, 0, 255);
}
static const char *set_accepted_count(struct gy_config *c, const char *v)
{
    (void)c;
    return check_number(v, 0, 1000000);
}
static const char *set_chown_socket(struct gy_config *c, const char *v)
{
    if (*v == '\0' || *v == ':')
        return "expected USER or USER:GROUP";
    c->chown_socket = v;
    return NULL;
}

/* MOUNT=DIR (or MOUNT=FILE), as uWSGI writes a static mapping. */
static const char *add_static_map(const char **list, int *n, const char *v)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || eq[1] == '\0')
        return "expected MOUNTPOINT=DIR, e.g. /static=/srv/app/static";
    if (*v != '/')
        return "the mountpoint must start with '/'";
    return add_list(list, n, v);
}
static const char *set_static_map(struct gy_config *c, const char *v)
{
    return add_static_map(c->static_maps, &c->nstatic_maps, v);
}
static const char *set_static_map2(struct gy_config *c, const char *v)
{
    return add_static_map(c->static_maps2, &c->nstatic_maps2, v);
}
static const char *set_check_static(struct gy_config *c, const char *v)
{
    return add_list(c->check_static, &c->ncheck_static, v);
}
static const char *set_check_static_docroot(struct gy_config *c, const char *v)
{
    (void)v;
    c->check_static_docroot = true;
    return NULL;
}
static const char *set_static_index(struct gy_config *c, const char *v)
{
    if (strchr(v, '/'))
        return "an index is a file name, without '/'";
    return add_list(c->static_index, &c->nstatic_index, v);
}
static const char *set_static_skip_ext(struct gy_config *c, const char *v)
{
    return add_list(c->static_skip_ext, &c->nstatic_skip_ext, v);
}
static const char *set_static_safe(struct gy_config *c, const char *v)
{
    return add_list(c->static_safe, &c->nstatic_safe, v);
}
static const char *set_mimefile(struct gy_config *c, const char *v)
{
    return add_list(c->mimefiles, &c->nmimefiles, v);
}
static const char *set_static_gzip_all(struct gy_config *c, const char *v)
{
    (void)v;
    c->static_gzip_all = true;
    return NULL;
}
static const char *set_static_gzip_dir(struct gy_config *c, const char *v)
{
    return add_list(c->static_gzip_dir, &c->nstatic_gzip_dir, v);
}
static const char *set_static_gzip_ext(struct gy_config *c, const char *v)
{
    return add_list(c->static_gzip_ext, &c->nstatic_gzip_ext, v);
}
/* A regexp (PCRE, as uWSGI's). Compiled again by static.c where it is used: here it is only
 * checked, so that a typo stops the start. */
static const char *check_regexp(const char *re, size_t len)
{
    static char err[192];
    struct gy_regexp *rx = regexp_compile(re, len, err, sizeof(err));
    if (!rx)
        return err;
    regexp_free(rx);
    return NULL;
}
static const char *set_static_gzip_re(struct gy_config *c, const char *v)
{
    const char *err = check_regexp(v, strlen(v));
    return err ? err : add_list(c->static_gzip_re, &c->nstatic_gzip_re, v);
}
static const char *add_expires(struct gy_config *c, const char *v, enum gy_expires_on on,
                               bool from_mtime)
{
    /* uWSGI's forms: "text/css=3600" for a content type, "REGEXP 3600" for the others. */
    const char *sep = strchr(v, on == EXPIRES_TYPE ? '=' : ' ');
    if (!sep || sep == v)
        return on == EXPIRES_TYPE ? "expected TYPE=SECONDS, e.g. text/css=86400"
                                  : "expected REGEXP SECONDS, e.g. \\.css$ 86400";
    long secs;
    if (parse_long(sep + 1, 0, 100L * 365 * 86400, &secs))
        return "expected a number of seconds after the separator";
    if (on != EXPIRES_TYPE) {
        const char *err = check_regexp(v, (size_t)(sep - v));
        if (err)
            return err;
    }
    if (c->nstatic_expires == GY_MAX_LIST)
        return "given too many times";
    c->static_expires[c->nstatic_expires++] = (struct gy_expires_rule){ .on = on,
                                                                        .from_mtime = from_mtime,
                                                                        .spec = v };
    return NULL;
}
static const char *set_expires_type(struct gy_config *c, const char *v)
{
    return add_expires(c, v, EXPIRES_TYPE, false);
}
static const char *set_expires_type_mtime(struct gy_config *c, const char *v)
{
    return add_expires(c, v, EXPIRES_TYPE, true);
}
static const char *set_expires(struct gy_config *c, const char *v)
{
    return add_expires(c, v, EXPIRES_FILENAME, false);
}
static const char *set_expires_mtime(struct gy_config *c, const char *v)
{
    return add_expires(c, v, EXPIRES_FILENAME, true);
}
static const char *set_expires_uri(struct gy_config *c, const char *v)
{
    return add_expires(c, v, EXPIRES_URI, false);
}
static const char *set_expires_uri_mtime(struct gy_config *c, const char *v)
{
    return add_expires(c, v, EXPIRES_URI, true);
}
static const char *set_expires_path_info(struct gy_config *c, const char *v)
{
    return add_expires(c, v, EXPIRES_PATH_INFO, false);
}
static const char *set_expires_path_info_mtime(struct gy_config *c, const char *v)
{
    return add_expires(c, v, EXPIRES_PATH_INFO, true);
}

/* -- setters: the Python environment, routes and request handling (issue 10, groups 3 and 8) -- */

static const char *set_home(struct gy_config *c, const char *v)
{
    return set_string(&c->home, v);
}
static const char *set_mount(struct gy_config *c, const char *v)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1])
        return "expected MOUNTPOINT=APP (e.g. /blog=blog/wsgi.py or /api=api.wsgi:app)";
    return add_list(c->mounts, &c->nmounts, v);
}
static const char *set_manage_script_name(struct gy_config *c, const char *v)
{
    (void)v;
    c->manage_script_name = true;
    return NULL;
}
static const char *set_honour_stdin(struct gy_config *c, const char *v)
{
    (void)v;
    c->honour_stdin = true;
    return NULL;
}
static const char *set_disable_write_exception(struct gy_config *c, const char *v)
{
    (void)v;
    c->disable_write_exception = true;
    return NULL;
}
static const char *set_ignore_write_errors(struct gy_config *c, const char *v)
{
    (void)v;
    c->ignore_write_errors = true;
    return NULL;
}
static const char *parse_bytes(const char *v, unsigned long long *out)
{
    unsigned long n = 0;
    const char *err = parse_ulong(v, &n);
    *out = n;
    return err;
}
static const char *set_limit_post(struct gy_config *c, const char *v)
{
    return parse_bytes(v, &c->limit_post);
}
static const char *set_write_behind_size(struct gy_config *c, const char *v)
{
    return parse_bytes(v, &c->write_behind_size);
}
static const char *set_post_buffering(struct gy_config *c, const char *v)
{
    return parse_bytes(v, &c->post_buffering);
}
static const char *set_post_buffering_bufsize(struct gy_config *c, const char *v)
{
    long n = 0;
    const char *err = parse_long(v, 512, 64L << 20, &n);
    c->post_buffering_bufsize = (unsigned long)n;
    return err;
}
static const char *set_add_header(struct gy_config *c, const char *v)
{
    const char *colon = strchr(v, ':');
    if (!colon || colon == v)
        return "expected \"Name: value\"";
    return add_list(c->add_headers, &c->nadd_headers, v);
}
static const char *add_route_kind(struct gy_config *c, enum gy_route_kind kind, const char *subject,
                                  const char *v)
{
    if (c->nroutes == GY_MAX_LIST)
        return "given too many times";
    if (kind != GY_ROUTE_RUN && !strchr(v, ' '))
        return kind == GY_ROUTE_REGEX ? "expected REGEX ACTION[:ARGS]"
                                      : "expected CONDITION:ARGS ACTION[:ARGS]";
    c->routes[c->nroutes].kind = kind;
    c->routes[c->nroutes].subject = subject;
    c->routes[c->nroutes].spec = v;
    c->nroutes++;
    return NULL;
}
static const char *add_route(struct gy_config *c, const char *subject, const char *v)
{
    return add_route_kind(c, GY_ROUTE_REGEX, subject, v);
}
static const char *set_route_if(struct gy_config *c, const char *v)
{
    return add_route_kind(c, GY_ROUTE_IF, NULL, v);
}
static const char *set_route_if_not(struct gy_config *c, const char *v)
{
    return add_route_kind(c, GY_ROUTE_IF_NOT, NULL, v);
}
static const char *set_route(struct gy_config *c, const char *v)
{
    return add_route(c, "PATH_INFO", v);
}
static const char *set_route_uri(struct gy_config *c, const char *v)
{
    return add_route(c, "REQUEST_URI", v);
}
static const char *set_route_host(struct gy_config *c, const char *v)
{
    return add_route(c, "HTTP_HOST", v);
}
static const char *set_route_qs(struct gy_config *c, const char *v)
{
    return add_route(c, "QUERY_STRING", v);
}
static const char *set_route_remote_addr(struct gy_config *c, const char *v)
{
    return add_route(c, "REMOTE_ADDR", v);
}
static const char *set_route_user_agent(struct gy_config *c, const char *v)
{
    return add_route(c, "HTTP_USER_AGENT", v);
}
static const char *set_route_referer(struct gy_config *c, const char *v)
{
    return add_route(c, "HTTP_REFERER", v);
}
static const char *set_route_remote_user(struct gy_config *c, const char *v)
{
    return add_route(c, "REMOTE_USER", v);
}
static const char *set_route_run(struct gy_config *c, const char *v)
{
    return add_route_kind(c, GY_ROUTE_RUN, NULL, v);
}
static const char *set_pymodule_alias(struct gy_config *c, const char *v)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1])
        return "expected NAME=MODULE or NAME=FILE.py";
    return add_list(c->pymodule_aliases, &c->npymodule_aliases, v);
}
static const char *set_import(struct gy_config *c, const char *v)
{
    return add_list(c->imports, &c->nimports, v);
}
static const char *set_py_autoreload(struct gy_config *c, const char *v)
{
    return parse_seconds(v, &c->py_autoreload);
}

/* -- setters: processes, hooks and daemons (issue 10, group 4) -- */

/* The fields hold what the options say; the master applies them (master.c). */
static const char *parse_count(const char *v, long min, int *out)
{
    return parse_int(v, min, 1024, out);
}
static const char *set_cheaper(struct gy_config *c, const char *v)
{
    c->master = true; /* adaptive workers are the master's job */
    return parse_count(v, 0, &c->cheaper);
}
static const char *set_cheaper_initial(struct gy_config *c, const char *v)
{
    return parse_count(v, 0, &c->cheaper_initial);
}
static const char *set_cheaper_step(struct gy_config *c, const char *v)
{
    return parse_count(v, 1, &c->cheaper_step);
}
static const char *set_cheaper_overload(struct gy_config *c, const char *v)
{
    const char *err = parse_seconds(v, &c->cheaper_overload);
    c->cheaper_overload_given = !err;
    return err;
}
static const char *set_cheaper_algo(struct gy_config *c, const char *v)
{
    static const char *const known[] = { "spare", "spare2", "busyness", "backlog", "manual" };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (!strcmp(v, known[i])) {
            c->cheaper_algo = v;
            return NULL;
        }
    return "expected spare, spare2, busyness, backlog or manual";
}
static const char *set_cheaper_knob(struct gy_config *c, const char *v)
{
    (void)c;
    long n;
    return parse_long(v, 0, LONG_MAX, &n);
}
static const char *set_max_worker_lifetime(struct gy_config *c, const char *v)
{
    return parse_seconds(v, &c->max_worker_lifetime);
}
static const char *set_max_worker_lifetime_delta(struct gy_config *c, const char *v)
{
    return parse_seconds(v, &c->max_worker_lifetime_delta);
}
static const char *set_fs_reload(struct gy_config *c, const char *v)
{
    return add_list(c->fs_reload, &c->nfs_reload, v);
}
/* uWSGI signals' options: the syntax checked here, signals.c parses them again in the master. */
static const char *set_timer(struct gy_config *c, const char *v)
{
    int sig, secs;
    if (timer_spec_parse(v, &sig, &secs) < 0)
        return "expected SIGNAL SECONDS (a signal 0..255, a positive number of seconds)";
    return add_list(c->timers, &c->ntimers, v);
}
static const char *set_rbtimer(struct gy_config *c, const char *v)
{
    int sig, secs;
    if (timer_spec_parse(v, &sig, &secs) < 0)
        return "expected SIGNAL SECONDS (a signal 0..255, a positive number of seconds)";
    return add_list(c->rbtimers, &c->nrbtimers, v);
}
static const char *add_cron_option(struct gy_config *c, const char *v, bool unique, bool cron2)
{
    int fields[5];
    const char *cmd = NULL, *err = "expected MIN HOUR DAY MONTH WEEKDAY COMMAND (-1: any, -N: "
                                   "every N)";
    bool u;
    if (cron2 ? cron2_parse(v, fields, &u, &cmd, &err) < 0 : cron_parse(v, fields, &cmd) < 0)
        return err;
    if (!cmd || !*cmd)
        return "no command to run";
    if (c->ncrons == GY_MAX_LIST)
        return "given too many times";
    c->crons[c->ncrons].spec = v;
    c->crons[c->ncrons].unique = unique;
    c->crons[c->ncrons].cron2 = cron2;
    c->ncrons++;
    return NULL;
}
static const char *set_cron(struct gy_config *c, const char *v)
{
    return add_cron_option(c, v, false, false);
}
static const char *set_unique_cron(struct gy_config *c, const char *v)
{
    return add_cron_option(c, v, true, false);
}
static const char *set_cron2(struct gy_config *c, const char *v)
{
    return add_cron_option(c, v, false, true);
}
static const char *set_fs_signal(struct gy_config *c, const char *v)
{
    char path[GY_SIGNAL_PATH_MAX];
    int sig;
    if (file_signal_parse(v, path, sizeof(path), &sig) < 0)
        return "expected FILE SIGNAL (a signal 0..255)";
    return add_list(c->fs_signals, &c->nfs_signals, v);
}
static const char *set_attach_daemon(struct gy_config *c, const char *v)
{
    if (!*v)
        return "expected a command";
    c->master = true; /* the master starts, restarts and stops it */
    return add_list(c->attach_daemon, &c->nattach_daemon, v);
}
static const char *set_smart_attach_daemon(struct gy_config *c, const char *v)
{
    const char *space = strchr(v, ' ');
    if (!space || space == v || !space[1])
        return "expected PIDFILE COMMAND";
    c->master = true;
    return add_list(c->smart_daemon, &c->nsmart_daemon, v);
}
static const char *set_smart_attach_daemon2(struct gy_config *c, const char *v)
{
    const char *space = strchr(v, ' ');
    if (!space || space == v || !space[1])
        return "expected PIDFILE COMMAND";
    c->master = true;
    return add_list(c->smart_daemon2, &c->nsmart_daemon2, v);
}
static const char *set_attach_daemon2(struct gy_config *c, const char *v)
{
    if (!strstr(v, "cmd=") && !strstr(v, "command=") && !strstr(v, "exec="))
        return "expected cmd=COMMAND[,pidfile=FILE][,daemonize=1][,stopsignal=N]";
    c->master = true;
    return add_list(c->attach_daemon2, &c->nattach_daemon2, v);
}
static const char *set_daemonize(struct gy_config *c, const char *v)
{
    return set_string(&c->daemonize, v);
}
static const char *set_pidfile2(struct gy_config *c, const char *v)
{
    return set_string(&c->pidfile2, v);
}
static const char *set_auto_procname(struct gy_config *c, const char *v)
{
    (void)v;
    c->auto_procname = true;
    return NULL;
}
static const char *set_procname_prefix(struct gy_config *c, const char *v)
{
    return set_string(&c->procname_prefix, v);
}
static const char *set_procname_prefix_spaced(struct gy_config *c, const char *v)
{
    char *spaced = malloc(strlen(v) + 2); /* lives as long as the configuration */
    if (!spaced)
        return "out of memory";
    sprintf(spaced, "%s ", v);
    c->procname_prefix = spaced;
    return NULL;
}
static const char *set_procname_append(struct gy_config *c, const char *v)
{
    return set_string(&c->procname_append, v);
}
static const char *set_procname(struct gy_config *c, const char *v)
{
    return set_string(&c->procname, v);
}
static const char *set_procname_master(struct gy_config *c, const char *v)
{
    return set_string(&c->procname_master, v);
}
static const char *set_no_orphans(struct gy_config *c, const char *v)
{
    (void)v;
    c->no_orphans = true;
    return NULL;
}
/* uWSGI sets the umask as it reads the option: every file gyre creates from then on (sockets,
 * pid files, logs) gets it. */
static const char *set_umask(struct gy_config *c, const char *v)
{
    (void)c;
    char *end;
    long mode = strtol(v, &end, 8);
    if (*v == '\0' || *end != '\0' || mode < 0 || mode > 0777)
        return "expected an octal mask such as 022";
    umask((mode_t)mode);
    return NULL;
}
static const char *set_reload_on_as(struct gy_config *c, const char *v)
{
    return parse_ulong(v, &c->reload_on_as);
}
static const char *set_evil_reload_on_rss(struct gy_config *c, const char *v)
{
    return parse_ulong(v, &c->evil_reload_on_rss);
}
static const char *set_evil_reload_on_as(struct gy_config *c, const char *v)
{
    return parse_ulong(v, &c->evil_reload_on_as);
}
static const char *set_min_worker_lifetime(struct gy_config *c, const char *v)
{
    return parse_seconds(v, &c->min_worker_lifetime);
}
static const char *set_cheaper_rss_limit_soft(struct gy_config *c, const char *v)
{
    unsigned long n = 0;
    const char *err = parse_ulong(v, &n);
    c->cheaper_rss_limit_soft = n;
    return err;
}
static const char *set_cheaper_rss_limit_hard(struct gy_config *c, const char *v)
{
    unsigned long n = 0;
    const char *err = parse_ulong(v, &n);
    c->cheaper_rss_limit_hard = n;
    return err;
}
static const char *set_master_fifo(struct gy_config *c, const char *v)
{
    if (c->nmaster_fifo == 10)
        return "given too many times (uWSGI's commands 0-9 select one of ten)";
    c->master = true;
    c->master_fifo[c->nmaster_fifo++] = v;
    return NULL;
}
static const char *set_worker_reload_mercy(struct gy_config *c, const char *v)
{
    const char *err = set_stop_grace(c, v);
    c->worker_reload_mercy_given = !err;
    return err;
}
static const char *set_reload_mercy_opt(struct gy_config *c, const char *v)
{
    const char *err = set_reload_mercy(c, v);
    c->reload_mercy_given = !err;
    return err;
}

/* --hook-PHASE ACTION:ARG, --exec-PHASE CMD (exec:CMD) and --call-PHASE SYMBOL (call:SYMBOL);
 * hooks.h's hooks_check names a bad action. */
static const char *add_hook(struct gy_config *c, int phase, const char *v)
{
    if (!strchr(v, ':'))
        return "expected ACTION:ARG, e.g. exec:COMMAND";
    return add_list(c->hooks[phase], &c->nhooks[phase], v);
}
static const char *add_action(struct gy_config *c, int phase, const char *action, const char *v)
{
    char *hook = malloc(strlen(action) + strlen(v) + 2); /* lives as long as the configuration */
    if (!hook)
        return "out of memory";
    sprintf(hook, "%s:%s", action, v);
    return add_list(c->hooks[phase], &c->nhooks[phase], hook);
}
/* uWSGI has not every form for every phase: the forms a phase lacks stay unused. */
#define HOOK_SETTERS(fn, phase)                                                                    \
    static const char *set_hook_##fn(struct gy_config *c, const char *v)                           \
    {                                                                                              \
        return add_hook(c, phase, v);                                                              \
    }                                                                                              \
    __attribute__((unused)) static const char *set_exec_##fn(struct gy_config *c, const char *v)   \
    {                                                                                              \
        return add_action(c, phase, "exec", v);                                                    \
    }                                                                                              \
    __attribute__((unused)) static const char *set_call_##fn(struct gy_config *c, const char *v)   \
    {                                                                                              \
        return add_action(c, phase, "call", v);                                                    \
    }
HOOK_SETTERS(asap, HOOK_ASAP)
HOOK_SETTERS(pre_jail, HOOK_PRE_JAIL)
HOOK_SETTERS(in_jail, HOOK_IN_JAIL)
HOOK_SETTERS(post_jail, HOOK_POST_JAIL)
HOOK_SETTERS(as_root, HOOK_AS_ROOT)
HOOK_SETTERS(as_user, HOOK_AS_USER)
HOOK_SETTERS(master_start, HOOK_MASTER_START)
HOOK_SETTERS(post_fork, HOOK_POST_FORK)
HOOK_SETTERS(pre_app, HOOK_PRE_APP)
HOOK_SETTERS(post_app, HOOK_POST_APP)
HOOK_SETTERS(accepting, HOOK_ACCEPTING)
HOOK_SETTERS(accepting_once, HOOK_ACCEPTING_ONCE)
HOOK_SETTERS(accepting1, HOOK_ACCEPTING1)
HOOK_SETTERS(accepting1_once, HOOK_ACCEPTING1_ONCE)
HOOK_SETTERS(as_user_atexit, HOOK_AS_USER_ATEXIT)

/* -- setters: logging (issue 10, group 5) -- */

#define LOG_FLAG(fn, field)                                                                        \
    static const char *fn(struct gy_config *c, const char *v)                                      \
    {                                                                                              \
        (void)v;                                                                                   \
        c->field = true;                                                                           \
        return NULL;                                                                               \
    }
LOG_FLAG(set_memory_report, memory_report)
LOG_FLAG(set_log_x_forwarded_for, log_x_forwarded_for)
LOG_FLAG(set_log_4xx, log_4xx)
LOG_FLAG(set_log_5xx, log_5xx)
LOG_FLAG(set_log_zero, log_zero)
LOG_FLAG(set_log_ioerror, log_ioerror)
LOG_FLAG(set_log_micros, log_micros)
LOG_FLAG(set_logformat_strftime, logformat_strftime)
LOG_FLAG(set_log_reopen, log_reopen)
LOG_FLAG(set_log_truncate, log_truncate)
LOG_FLAG(set_logfile_chown, logfile_chown)
LOG_FLAG(set_harakiri_verbose, harakiri_verbose)
#undef LOG_FLAG

static const char *parse_ullong(const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*v == '\0' || *v == '-' || *end != '\0' || errno)
        return "expected a whole number";
    *out = n;
    return NULL;
}
static const char *set_log_slow(struct gy_config *c, const char *v)
{
    return parse_ulong(v, &c->log_slow);
}
static const char *set_log_big(struct gy_config *c, const char *v)
{
    return parse_ullong(v, &c->log_big);
}
static const char *set_log_maxsize(struct gy_config *c, const char *v)
{
    return parse_ullong(v, &c->log_maxsize);
}
static const char *set_log_backupname(struct gy_config *c, const char *v)
{
    return set_string(&c->log_backupname, v);
}
/* uWSGI's uwsgi_opt_log_date: bare (or a true word), the date as ctime writes it; any other
 * value is a strftime format. --log-prefix is the same option under another name there. */
static const char *set_log_date(struct gy_config *c, const char *v)
{
    c->logdate = true;
    if (v && strcasecmp(v, "true") && strcasecmp(v, "1") && strcasecmp(v, "on") &&
        strcasecmp(v, "yes"))
        c->log_strftime = v;
    return NULL;
}
/* uWSGI's uwsgi_opt_logfile_chmod: exactly three octal digits. */
static const char *set_logfile_chmod(struct gy_config *c, const char *v)
{
    if (strlen(v) != 3 || strspn(v, "01234567") != 3)
        return "expected three octal digits such as 640";
    c->logfile_chmod = (int)strtol(v, NULL, 8);
    return NULL;
}
/* uWSGI opens --logto2 after dropping privileges, so that the file is the app user's; gyre
 * opens it before (the master stays root) and gives it to --uid/--gid: the same file. */
static const char *set_logto2(struct gy_config *c, const char *v)
{
    c->logto = v;
    c->logfile_chown = true;
    return NULL;
}
static const char *set_logger(struct gy_config *c, const char *v)
{
    return add_list(c->loggers, &c->nloggers, v);
}
static const char *set_log_syslog(struct gy_config *c, const char *v)
{
    /* uWSGI's log-syslog is "logger = syslog[:IDENT]". */
    static char specs[GY_MAX_LIST][128];
    if (c->nloggers == GY_MAX_LIST)
        return "given too many times";
    snprintf(specs[c->nloggers], sizeof(specs[0]), "syslog%s%s", v ? ":" : "", v ? v : "");
    return add_list(c->loggers, &c->nloggers, specs[c->nloggers]);
}
static const char *set_req_logger(struct gy_config *c, const char *v)
{
    return add_list(c->req_loggers, &c->nreq_loggers, v);
}
static const char *set_log_route(struct gy_config *c, const char *v)
{
    return add_list(c->log_routes, &c->nlog_routes, v);
}
static const char *set_log_req_route(struct gy_config *c, const char *v)
{
    return add_list(c->log_req_routes, &c->nlog_req_routes, v);
}
static const char *set_touch_logrotate(struct gy_config *c, const char *v)
{
    return add_list(c->touch_logrotate, &c->ntouch_logrotate, v);
}
static const char *set_touch_logreopen(struct gy_config *c, const char *v)
{
    return add_list(c->touch_logreopen, &c->ntouch_logreopen, v);
}
static const char *set_log_drain(struct gy_config *c, const char *v)
{
    return add_list(c->log_drains, &c->nlog_drains, v);
}
static const char *set_log_filter(struct gy_config *c, const char *v)
{
    return add_list(c->log_filters, &c->nlog_filters, v);
}
static const char *set_log_encoder(struct gy_config *c, const char *v)
{
    return add_list(c->log_encoders, &c->nlog_encoders, v);
}
static const char *set_log_req_encoder(struct gy_config *c, const char *v)
{
    return add_list(c->log_req_encoders, &c->nlog_req_encoders, v);
}

static const struct option_def OPTIONS[] = {
    { "socket", ARG_REQUIRED, set_socket, "ADDR",
      "serve the uwsgi protocol on a unix socket PATH or HOST:PORT (repeatable)" },
    { "uwsgi-socket", ARG_REQUIRED, set_uwsgi_socket, "ADDR",
      "the uwsgi protocol on ADDR, whatever --protocol says (repeatable)" },
    { "protocol", ARG_REQUIRED, set_protocol, "NAME",
      "what --socket sockets speak: uwsgi (default), http or fastcgi" },
    { "fastcgi-socket", ARG_REQUIRED, set_fastcgi_socket, "ADDR",
      "serve FastCGI on a unix socket PATH or HOST:PORT (repeatable)" },
    { "http-socket", ARG_REQUIRED, set_http_socket, "ADDR",
      "serve HTTP/1.1 on [HOST]:PORT or a unix socket PATH (repeatable)" },
    { "wsgi-file", ARG_REQUIRED, set_wsgi_file, "FILE", "load the WSGI app from a Python file" },
    { "file", ARG_REQUIRED, set_wsgi_file, "FILE", "same as --wsgi-file" },
    { "module", ARG_REQUIRED, set_module, "MOD[:CALLABLE]",
      "load the WSGI app from an importable module" },
    { "wsgi", ARG_REQUIRED, set_module, "MOD[:CALLABLE]", "same as --module" },
    { "callable", ARG_REQUIRED, set_callable, "NAME",
      "name of the WSGI callable (default: application)" },
    { "tornado", ARG_REQUIRED, set_cores, "N",
      "number of async cores: requests served at once (default: 1)" },
    { "async", ARG_REQUIRED, set_cores, "N", "same as --tornado" },
    { "threads", ARG_REQUIRED, set_threads, "N",
      "without --tornado: serve N requests at once per worker, each on an OS thread (thread "
      "cores); with --tornado: a pool of N threads for run_in_executor and gyre.run_in_thread" },
    { "threads-stacksize", ARG_REQUIRED, set_thread_stacksize, "KIB",
      "stack size of gyre's threads, in KiB (default: the system's)" },
    { "threads-stack-size", ARG_REQUIRED, set_thread_stacksize, "KIB",
      "same as --threads-stacksize" },
    { "thread-stacksize", ARG_REQUIRED, set_thread_stacksize, "KIB",
      "same as --threads-stacksize" },
    { "thread-stack-size", ARG_REQUIRED, set_thread_stacksize, "KIB",
      "same as --threads-stacksize" },
    { "write-behind-size", ARG_REQUIRED, set_write_behind_size, "BYTES",
      "thread cores: bytes of a response the loop holds and sends for a slow client, so that the "
      "thread moves on (default: 1048576; 0: the thread waits for the client)" },
    { "greenlet", ARG_NONE, set_greenlet, NULL, "use greenlet as the suspend engine (always on)" },
    { "chmod-socket", ARG_OPTIONAL, set_chmod_socket, "MODE",
      "chmod unix sockets to MODE (666 when given bare)" },
    { "buffer-size", ARG_REQUIRED, set_buffer_size, "N",
      "largest request head (uwsgi vars, FastCGI params) accepted, in bytes (default: 4096, max "
      "1 MiB; a uwsgi packet's vars are at most 65535 whatever it says)" },
    { "listen", ARG_REQUIRED, set_listen, "N", "listen backlog of every socket (default: 1024)" },
    { "socket-timeout", ARG_REQUIRED, set_socket_timeout, "SECONDS",
      "drop a client silent this long on a read or write (default: 30)" },
    { "keepalive-timeout", ARG_REQUIRED, set_keepalive_timeout, "SECONDS",
      "close a kept-alive connection idle this long between requests (default: 75)" },
    { "max-conns", ARG_REQUIRED, set_max_conns, "N",
      "open client connections per process at most; more wait in the listen backlog (default: the "
      "fd limit minus a reserve)" },
    { "worker-reload-mercy", ARG_REQUIRED, set_worker_reload_mercy, "SECONDS",
      "time a worker's in-flight requests get on a stop or a reload (default: 5 on a stop, 30 "
      "on a reload)" },
    { "chdir", ARG_REQUIRED, set_chdir, "DIR", "chdir to DIR before loading the app" },
    { "pythonpath", ARG_REQUIRED, set_pythonpath, "DIR",
      "add DIR (each match, for a glob) to sys.path (repeatable)" },
    { "python-path", ARG_REQUIRED, set_pythonpath, "DIR", "same as --pythonpath" },
    { "pp", ARG_REQUIRED, set_pythonpath, "DIR", "same as --pythonpath" },
    { "env", ARG_REQUIRED, set_env, "KEY=VALUE", "set an environment variable (repeatable)" },
    { "disable-logging", ARG_NONE, set_disable_logging, NULL, "no log line per request" },
    { "log-format", ARG_REQUIRED, set_log_format, "FORMAT",
      "request log line with uWSGI's variables: %(method) %(uri) %(status) %(msecs) %(addr) "
      "%(var.NAME) ... (README)" },
    { "logformat", ARG_REQUIRED, set_log_format, "FORMAT", "same as --log-format" },
    { "logto", ARG_REQUIRED, set_logto, "FILE", "append the log to FILE instead of stderr" },
    { "pidfile", ARG_REQUIRED, set_pidfile, "FILE", "write the (master) pid to FILE" },
    { "master", ARG_NONE, set_master, NULL,
      "run a master that binds the sockets and manages worker processes" },
    { "processes", ARG_REQUIRED, set_processes, "N",
      "number of worker processes (with --master; default: 1)" },
    { "workers", ARG_REQUIRED, set_processes, "N", "same as --processes" },
    { "lazy-apps", ARG_NONE, set_ignored, NULL,
      "accepted: every worker loads the app after the fork, always" },
    { "touch-reload", ARG_REQUIRED, set_touch_reload, "FILE",
      "gracefully reload the workers when FILE's mtime changes (repeatable)" },
    { "reload-mercy", ARG_REQUIRED, set_reload_mercy_opt, "SECONDS",
      "bound of a whole reload or stop: no worker gets longer (default: 30 on a reload, 5 on a "
      "stop)" },
    { "max-requests", ARG_REQUIRED, set_max_requests, "N",
      "gracefully recycle a worker after N requests" },
    { "reload-on-rss", ARG_REQUIRED, set_reload_on_rss, "MIB",
      "gracefully recycle a worker whose RSS passes MIB megabytes" },
    { "harakiri", ARG_REQUIRED, set_harakiri, "SECONDS",
      "cancel a request running longer than SECONDS; kill a worker whose loop is stuck that long" },
    { "harakiri-grace", ARG_REQUIRED, set_harakiri_grace, "SECONDS",
      "a thread core still running SECONDS after its harakiri exception (stuck in C, e.g. a "
      "sleep) has its worker recycled (default: 5)" },
    { "websocket-max-size", ARG_REQUIRED, set_websocket_max_size, "KIB",
      "the largest WebSocket message accepted, in KiB (default: 1024); a larger one is refused "
      "with close code 1009" },
    { "websockets-max-size", ARG_REQUIRED, set_websocket_max_size, "KIB",
      "same as --websocket-max-size" },
    { "websocket-ping-freq", ARG_REQUIRED, set_websocket_ping_freq, "SECONDS",
      "a WebSocket silent this long in uwsgi.websocket_recv() gets a ping (default: 30)" },
    { "websockets-ping-freq", ARG_REQUIRED, set_websocket_ping_freq, "SECONDS",
      "same as --websocket-ping-freq" },
    { "websocket-pong-tolerance", ARG_REQUIRED, set_websocket_pong_tolerance, "SECONDS",
      "a WebSocket that answers a ping with nothing within SECONDS is closed (default: 3)" },
    { "websockets-pong-tolerance", ARG_REQUIRED, set_websocket_pong_tolerance, "SECONDS",
      "same as --websocket-pong-tolerance" },
    { "http-websockets", ARG_NONE, set_ignored, NULL,
      "accepted: every HTTP socket takes WebSockets (uwsgi.websocket_handshake)" },
    { "locks", ARG_REQUIRED, set_locks, "N",
      "uwsgi.lock(n)/unlock(n) take n from 0 to N (lock 0 always exists), shared by the workers "
      "(at most 1024)" },
    { "uid", ARG_REQUIRED, set_uid, "USER",
      "workers run as USER (name or number), dropped to after binding" },
    { "gid", ARG_REQUIRED, set_gid, "GROUP", "workers run as GROUP (name or number)" },
    { "ini", ARG_REQUIRED, set_ini, "FILE[:SECTION]",
      "read options from the [uwsgi] and [gyre] sections (or SECTION) of an .ini file; "
      "`gyre FILE.ini` is the same" },
    { "cache2", ARG_REQUIRED, set_cache2, "name=NAME,items=N,...",
      "a shared cache for uwsgi.cache_*: uWSGI's keys items, blocksize, blocks, keysize, hashsize, "
      "bitmap, purge_lru, ignore_full, clear_on_full, math_initial, lastmod, no_expire, "
      "store=FILE (kept across restarts) or store=redis://HOST:PORT/DB (repeatable; README)" },
    { "cache", ARG_REQUIRED, set_cache, "N",
      "the cache \"default\" with N items (uWSGI's first-generation cache)" },
    { "cache-blocksize", ARG_REQUIRED, set_cache_blocksize, "BYTES",
      "--cache's value size at most (default: 65536)" },
    { "cache-store", ARG_REQUIRED, set_cache_store, "FILE",
      "--cache's items kept in FILE across restarts (or a redis:// URL)" },
    { "cache-use-last-modified", ARG_NONE, set_cache_lastmod, NULL,
      "--cache keeps the time of its last change (last_modified_at in --stats)" },
    { "cache-expire-freq", ARG_REQUIRED, set_cache_expire_freq, "SECONDS",
      "the master purges expired cache items this often (default: 3; an expired item is absent "
      "anyway)" },
    { "cache-no-expire", ARG_NONE, set_cache_no_expire, NULL,
      "the master never sweeps the caches (an expired item is still absent)" },
    { "cache-report-freed-items", ARG_NONE, set_cache_report_freed, NULL,
      "a log line for each sweep that purged expired cache items" },
    { "add-cache-item", ARG_REQUIRED, set_add_cache_item, "[CACHE ]KEY=VALUE",
      "put KEY in cache CACHE (every cache without a name) at start, unless it is there "
      "(repeatable)" },
    { "load-file-in-cache", ARG_REQUIRED, set_load_file_in_cache, "[CACHE ]PATH",
      "put the file PATH in cache CACHE (every cache without a name) under the key PATH at "
      "start (repeatable)" },
    { "cache-store-sync", ARG_REQUIRED, set_accepted_count, "N",
      "accepted: a store file is a shared mapping the kernel writes back by itself" },
    { "stats", ARG_REQUIRED, set_stats, "ADDR",
      "serve uWSGI-style stats JSON on a unix socket PATH or HOST:PORT" },
    { "stats-server", ARG_REQUIRED, set_stats, "ADDR", "same as --stats" },
    { "stats-http", ARG_NONE, set_stats_http, NULL, "serve the --stats JSON as an HTTP response" },
    { "metrics-http", ARG_REQUIRED, set_metrics_http, "ADDR",
      "serve Prometheus metrics over HTTP on HOST:PORT or a unix socket PATH" },
    { "metric", ARG_REQUIRED, set_metric, "name=N[,type=T,initial_value=V,...]",
      "a uWSGI metric shared by the workers (uwsgi.metric_*; repeatable); type counter, gauge, "
      "absolute or alias (alias=NAME); collector file, sum, accumulator, adder, multiplier, avg "
      "(children=A;B, arg1, arg1n, freq)" },
    { "enable-metrics", ARG_NONE, set_enable_metrics, NULL,
      "the stats JSON shows \"metrics\" even with no --metric (gyre has no built-in ones)" },
    { "metrics-dir", ARG_REQUIRED, set_metrics_dir, "DIR",
      "keep each metric's value in the file DIR/NAME (updated every second)" },
    { "metric-dir", ARG_REQUIRED, set_metrics_dir, "DIR", "same as --metrics-dir" },
    { "metrics-dir-restore", ARG_NONE, set_metrics_dir_restore, NULL,
      "start each metric from the value in its --metrics-dir file" },
    { "metric-dir-restore", ARG_NONE, set_metrics_dir_restore, NULL,
      "same as --metrics-dir-restore" },
    { "metrics-no-cores", ARG_NONE, set_ignored, NULL,
      "accepted: gyre defines no per-core metrics (no built-in metrics at all)" },
    { "stats-no-metrics", ARG_NONE, set_stats_no_metrics, NULL,
      "the stats JSON without its \"metrics\" object" },
    { "plugin", ARG_REQUIRED, set_plugin, "NAMES",
      "uWSGI's plugins gyre has built in (python3, tornado, greenlet, http...) are no-ops; "
      "another one is a warning (an error with --strict)" },
    { "plugins", ARG_REQUIRED, set_plugin, "NAMES", "same as --plugin" },
    { "include", ARG_REQUIRED, set_ini, "FILE", "same as --ini (uWSGI's immediate include)" },
    { "strict", ARG_NONE, set_strict, NULL,
      "a key that is no gyre option (a placeholder, a uWSGI option gyre lacks) is an error" },
    { "set", ARG_REQUIRED, set_ignored, "NAME=VALUE",
      "set an option, or a %(NAME) placeholder when NAME is no option (uWSGI's -S)" },
    { "set-placeholder", ARG_REQUIRED, set_ignored, "NAME=VALUE",
      "set a %(NAME) placeholder for .ini values" },
    { "set-ph", ARG_REQUIRED, set_ignored, "NAME=VALUE", "same as --set-placeholder" },

    /* -- options that are already gyre's behaviour or a true no-op (issue 10, group 1) -- */

    /* -- the HTTP router and static files (issue 10, groups 2 and 6) -- */
    { "http", ARG_REQUIRED, set_http, "ADDR",
      "serve HTTP/1.1 on [HOST]:PORT or a unix socket PATH from the workers (uWSGI's router: "
      "same as --http-socket)" },
    { "http11-socket", ARG_REQUIRED, set_http_socket, "ADDR", "same as --http-socket" },
    { "https", ARG_REQUIRED, set_https, "ADDR,CERT,KEY",
      "refused: gyre speaks no TLS (terminate it in nginx)" },
    { "https-socket", ARG_REQUIRED, set_https, "ADDR,CERT,KEY", "same as --https" },
    { "http-timeout", ARG_REQUIRED, set_http_timeout, "SECONDS",
      "same as --socket-timeout (one client timeout for every socket)" },
    { "http-keepalive", ARG_OPTIONAL, set_http_keepalive, "N",
      "accepted: HTTP/1.1 keep-alive is always on (idle time: --keepalive-timeout)" },
    { "http-auto-chunked", ARG_NONE, set_ignored, NULL,
      "accepted: an HTTP/1.1 response without Content-Length is always sent chunked" },
    { "http-modifier1", ARG_REQUIRED, set_modifier, "N",
      "accepted: every request goes to the WSGI app" },
    { "http-modifier2", ARG_REQUIRED, set_modifier, "N", "same as --http-modifier1" },
    { "http-socket-modifier1", ARG_REQUIRED, set_modifier, "N", "same as --http-modifier1" },
    { "http-socket-modifier2", ARG_REQUIRED, set_modifier, "N", "same as --http-modifier1" },
    { "chown-socket", ARG_REQUIRED, set_chown_socket, "USER[:GROUP]",
      "chown the unix sockets gyre binds to USER (and GROUP)" },
    { "check-static", ARG_REQUIRED, set_check_static, "DIR",
      "serve DIR + PATH_INFO when it is a file, without calling the app (repeatable)" },
    { "static-check", ARG_REQUIRED, set_check_static, "DIR", "same as --check-static" },
    { "check-static-docroot", ARG_NONE, set_check_static_docroot, NULL,
      "serve static files from the request's DOCUMENT_ROOT" },
    { "static-map", ARG_REQUIRED, set_static_map, "MOUNT=DIR",
      "serve DIR + the PATH_INFO after MOUNT (or the FILE MOUNT names) (repeatable)" },
    { "static-map2", ARG_REQUIRED, set_static_map2, "MOUNT=DIR",
      "serve DIR + the whole PATH_INFO under MOUNT (repeatable)" },
    { "static-index", ARG_REQUIRED, set_static_index, "NAME",
      "file served for a static directory, tried in order (repeatable)" },
    { "static-skip-ext", ARG_REQUIRED, set_static_skip_ext, "EXT",
      "never serve paths ending in EXT statically: the app gets them (repeatable)" },
    { "static-safe", ARG_REQUIRED, set_static_safe, "DIR",
      "a static file may resolve (through symlinks) into DIR too (repeatable)" },
    { "mimefile", ARG_REQUIRED, set_mimefile, "FILE",
      "Content-Type of static files from FILE (default: /etc/mime.types) (repeatable)" },
    { "mime-file", ARG_REQUIRED, set_mimefile, "FILE", "same as --mimefile" },
    { "static-gzip-all", ARG_NONE, set_static_gzip_all, NULL,
      "send FILE.gz (Content-Encoding: gzip) when it exists and the client accepts gzip" },
    { "static-gzip-dir", ARG_REQUIRED, set_static_gzip_dir, "PREFIX",
      "the same for the files under PREFIX (repeatable)" },
    { "static-gzip-prefix", ARG_REQUIRED, set_static_gzip_dir, "PREFIX",
      "same as --static-gzip-dir" },
    { "static-gzip-ext", ARG_REQUIRED, set_static_gzip_ext, "SUFFIX",
      "the same for the files ending in SUFFIX (repeatable)" },
    { "static-gzip-suffix", ARG_REQUIRED, set_static_gzip_ext, "SUFFIX",
      "same as --static-gzip-ext" },
    { "static-gzip", ARG_REQUIRED, set_static_gzip_re, "REGEXP",
      "the same for the files whose path matches REGEXP (repeatable)" },
    { "static-expires-type", ARG_REQUIRED, set_expires_type, "TYPE=SECONDS",
      "Expires: now + SECONDS on static files of Content-Type TYPE (repeatable)" },
    { "static-expires-type-mtime", ARG_REQUIRED, set_expires_type_mtime, "TYPE=SECONDS",
      "Expires: the file's mtime + SECONDS, by Content-Type (repeatable)" },
    { "static-expires", ARG_REQUIRED, set_expires, "REGEXP SECONDS",
      "Expires: now + SECONDS on static files whose path matches REGEXP (repeatable)" },
    { "static-expires-mtime", ARG_REQUIRED, set_expires_mtime, "REGEXP SECONDS",
      "Expires: mtime + SECONDS, by file path (repeatable)" },
    { "static-expires-uri", ARG_REQUIRED, set_expires_uri, "REGEXP SECONDS",
      "Expires: now + SECONDS, by REQUEST_URI (repeatable)" },
    { "static-expires-uri-mtime", ARG_REQUIRED, set_expires_uri_mtime, "REGEXP SECONDS",
      "Expires: mtime + SECONDS, by REQUEST_URI (repeatable)" },
    { "static-expires-path-info", ARG_REQUIRED, set_expires_path_info, "REGEXP SECONDS",
      "Expires: now + SECONDS, by PATH_INFO (repeatable)" },
    { "static-expires-path-info-mtime", ARG_REQUIRED, set_expires_path_info_mtime, "REGEXP SECONDS",
      "Expires: mtime + SECONDS, by PATH_INFO (repeatable)" },
    { "honour-range", ARG_NONE, set_ignored, NULL,
      "accepted: a single Range: bytes= on a static file is always honoured (206/416)" },
    { "offload-threads", ARG_REQUIRED, set_accepted_count, "N",
      "accepted: static files go out with sendfile() on each worker's loop, no thread needed" },
    { "offload-thread", ARG_REQUIRED, set_accepted_count, "N", "same as --offload-threads" },
    { "static-cache-paths", ARG_REQUIRED, set_accepted_count, "SECONDS",
      "accepted: static paths are resolved on every request (no stale answer after a deploy)" },
    { "static-cache-paths-name", ARG_REQUIRED, set_ignored, "CACHE",
      "accepted: see --static-cache-paths" },
    { "http-manage-expect", ARG_OPTIONAL, set_http_keepalive, "N",
      "accepted: Expect: 100-continue is always answered when the app first reads the body" },

    /* -- the Python environment, routes and request handling (issue 10, groups 3 and 8) -- */
    { "home", ARG_REQUIRED, set_home, "VENV",
      "import the app's packages from virtualenv VENV (its lib/python3.X/site-packages first)" },
    { "virtualenv", ARG_REQUIRED, set_home, "VENV", "same as --home" },
    { "venv", ARG_REQUIRED, set_home, "VENV", "same as --home" },
    { "pyhome", ARG_REQUIRED, set_home, "VENV", "same as --home" },
    { "mount", ARG_REQUIRED, set_mount, "/PREFIX=APP",
      "serve APP (a .py file or MOD[:CALLABLE]) for URLs under /PREFIX (repeatable)" },
    { "manage-script-name", ARG_NONE, set_manage_script_name, NULL,
      "move the --mount prefix from PATH_INFO to SCRIPT_NAME" },
    { "enable-threads", ARG_NONE, set_ignored, NULL,
      "accepted: Python threads always work in gyre" },
    { "single-interpreter", ARG_NONE, set_ignored, NULL,
      "accepted: gyre always runs one interpreter" },
    { "need-app", ARG_NONE, set_ignored, NULL,
      "accepted: gyre always exits when the app cannot be loaded" },
    { "honour-stdin", ARG_NONE, set_honour_stdin, NULL,
      "keep stdin (by default it is /dev/null in the workers, as in uWSGI)" },
    { "post-buffering", ARG_REQUIRED, set_post_buffering, "BYTES",
      "spool request bodies larger than BYTES to a temporary file before the app runs" },
    { "post-buffering-bufsize", ARG_REQUIRED, set_post_buffering_bufsize, "BYTES",
      "read size when spooling a body (default: 65536)" },
    { "limit-post", ARG_REQUIRED, set_limit_post, "BYTES",
      "answer 413 to a request whose body is larger than BYTES" },
    { "disable-write-exception", ARG_NONE, set_disable_write_exception, NULL,
      "write() to a client that went away returns instead of raising OSError" },
    { "ignore-write-errors", ARG_NONE, set_ignore_write_errors, NULL,
      "no log line when a client goes away during the response" },
    { "ignore-sigpipe", ARG_NONE, set_ignored, NULL,
      "accepted: gyre never dies of nor logs SIGPIPE" },
    { "wsgi-env-behaviour", ARG_REQUIRED, set_ignored, "MODE",
      "accepted: every request gets a fresh environ dict (uWSGI's 'cheat' and 'holy' alike)" },
    { "wsgi-env-behavior", ARG_REQUIRED, set_ignored, "MODE", "same as --wsgi-env-behaviour" },
    { "py-autoreload", ARG_REQUIRED, set_py_autoreload, "SECONDS",
      "with --master: replace a worker when a module it loaded changes (checked every SECONDS)" },
    { "python-autoreload", ARG_REQUIRED, set_py_autoreload, "SECONDS", "same as --py-autoreload" },
    { "py-auto-reload", ARG_REQUIRED, set_py_autoreload, "SECONDS", "same as --py-autoreload" },
    { "pymodule-alias", ARG_REQUIRED, set_pymodule_alias, "NAME=MODULE|FILE",
      "make `import NAME` give MODULE (or the module of a .py FILE) (repeatable)" },
    { "import", ARG_REQUIRED, set_import, "MODULE",
      "import MODULE in every worker before the app (repeatable)" },
    { "pyimport", ARG_REQUIRED, set_import, "MODULE", "same as --import" },
    { "py-import", ARG_REQUIRED, set_import, "MODULE", "same as --import" },
    { "python-import", ARG_REQUIRED, set_import, "MODULE", "same as --import" },
    { "shared-import", ARG_REQUIRED, set_import, "MODULE",
      "same as --import (no Python runs outside the workers)" },
    { "shared-pyimport", ARG_REQUIRED, set_import, "MODULE", "same as --shared-import" },
    { "shared-py-import", ARG_REQUIRED, set_import, "MODULE", "same as --shared-import" },
    { "shared-python-import", ARG_REQUIRED, set_import, "MODULE", "same as --shared-import" },
    { "add-header", ARG_REQUIRED, set_add_header, "\"NAME: VALUE\"",
      "add this header to every response (repeatable)" },
    { "route", ARG_REQUIRED, set_route, "\"REGEX ACTION\"",
      "uWSGI internal routing on PATH_INFO: redirect, rewrite, return, break, addheader, ..." },
    { "route-uri", ARG_REQUIRED, set_route_uri, "\"REGEX ACTION\"", "the same on REQUEST_URI" },
    { "route-host", ARG_REQUIRED, set_route_host, "\"REGEX ACTION\"", "the same on HTTP_HOST" },
    { "route-qs", ARG_REQUIRED, set_route_qs, "\"REGEX ACTION\"", "the same on QUERY_STRING" },
    { "route-remote-addr", ARG_REQUIRED, set_route_remote_addr, "\"REGEX ACTION\"",
      "the same on REMOTE_ADDR" },
    { "route-user-agent", ARG_REQUIRED, set_route_user_agent, "\"REGEX ACTION\"",
      "the same on HTTP_USER_AGENT" },
    { "route-referer", ARG_REQUIRED, set_route_referer, "\"REGEX ACTION\"",
      "the same on HTTP_REFERER" },
    { "route-remote-user", ARG_REQUIRED, set_route_remote_user, "\"REGEX ACTION\"",
      "the same on REMOTE_USER" },
    { "route-run", ARG_REQUIRED, set_route_run, "ACTION", "run ACTION on every request" },
    { "route-if", ARG_REQUIRED, set_route_if, "\"COND:A;B ACTION\"",
      "run ACTION when COND holds: equal, startswith, endswith, contains, regexp, empty, ..." },
    { "route-if-not", ARG_REQUIRED, set_route_if_not, "\"COND:A;B ACTION\"",
      "run ACTION when COND does not hold" },

    /* -- processes, hooks and daemons (issue 10, group 4) -- */
    { "cheaper", ARG_REQUIRED, set_cheaper, "N",
      "adaptive workers: keep at least N running, up to --processes (implies --master)" },
    { "cheaper-initial", ARG_REQUIRED, set_cheaper_initial, "N",
      "workers started with --cheaper (default: the --cheaper value)" },
    { "cheaper-step", ARG_REQUIRED, set_cheaper_step, "N",
      "workers added at once when every worker is busy (default: 1)" },
    { "cheaper-overload", ARG_REQUIRED, set_cheaper_overload, "SECONDS",
      "all workers busy this long adds --cheaper-step; an idle one this long is stopped (default: "
      "3)" },
    { "cheaper-algo", ARG_REQUIRED, set_cheaper_algo, "NAME",
      "spare (gyre's only algorithm; spare2, busyness, backlog run as spare, with a warning)" },
    { "cheaper-idle", ARG_REQUIRED, set_cheaper_knob, "N", "spare2's knob: accepted, spare runs" },
    { "cheaper-busyness-max", ARG_REQUIRED, set_cheaper_knob, "N",
      "busyness's knob: accepted, spare runs" },
    { "cheaper-busyness-min", ARG_REQUIRED, set_cheaper_knob, "N",
      "busyness's knob: accepted, spare runs" },
    { "cheaper-busyness-multiplier", ARG_REQUIRED, set_cheaper_knob, "N",
      "busyness's knob: accepted, spare runs" },
    { "cheaper-busyness-penalty", ARG_REQUIRED, set_cheaper_knob, "N",
      "busyness's knob: accepted, spare runs" },
    { "cheaper-busyness-verbose", ARG_NONE, set_ignored, NULL,
      "busyness's knob: accepted, spare runs" },
    { "cheaper-busyness-backlog-alert", ARG_REQUIRED, set_cheaper_knob, "N",
      "busyness's knob: accepted, spare runs" },
    { "cheaper-busyness-backlog-multiplier", ARG_REQUIRED, set_cheaper_knob, "N",
      "busyness's knob: accepted, spare runs" },
    { "cheaper-busyness-backlog-step", ARG_REQUIRED, set_cheaper_knob, "N",
      "busyness's knob: accepted, spare runs" },
    { "cheaper-busyness-backlog-nonzero", ARG_REQUIRED, set_cheaper_knob, "N",
      "busyness's knob: accepted, spare runs" },
    { "max-worker-lifetime", ARG_REQUIRED, set_max_worker_lifetime, "SECONDS",
      "gracefully replace a worker after it ran this long" },
    { "max-worker-lifetime-delta", ARG_REQUIRED, set_max_worker_lifetime_delta, "SECONDS",
      "... plus worker id times SECONDS, so that workers are not replaced all at once" },
    { "fs-reload", ARG_REQUIRED, set_fs_reload, "PATH",
      "gracefully reload the workers when PATH (a file or directory) changes: inotify "
      "(repeatable)" },
    { "touch-workers-reload", ARG_REQUIRED, set_touch_reload, "FILE", "same as --touch-reload" },
    { "touch-chain-reload", ARG_REQUIRED, set_touch_reload, "FILE",
      "same as --touch-reload (each worker is replaced before the old one stops)" },
    { "attach-daemon", ARG_REQUIRED, set_attach_daemon, "CMD",
      "the master runs CMD (not forking away), restarts it when it exits, stops it with itself" },
    { "smart-attach-daemon", ARG_REQUIRED, set_smart_attach_daemon, "PIDFILE CMD",
      "the master runs CMD whenever PIDFILE names no live process; stops it with itself" },
    { "smart-attach-daemon2", ARG_REQUIRED, set_smart_attach_daemon2, "PIDFILE CMD",
      "as --smart-attach-daemon, for a CMD that stays in the foreground: the master detaches it "
      "and writes PIDFILE" },
    { "attach-daemon2", ARG_REQUIRED, set_attach_daemon2, "KEY=VALUE,...",
      "a daemon in uWSGI's keyval form: cmd=, pidfile=, daemonize=, stopsignal= (other keys: "
      "logged, ignored)" },
    { "hook-asap", ARG_REQUIRED, set_hook_asap, "ACTION:ARG",
      "run a hook once the options are read (exec:, mkdir:, chdir:, print:, unlink:, write:, "
      "putenv:, ...)" },
    { "hook-as-root", ARG_REQUIRED, set_hook_as_root, "ACTION:ARG",
      "run a hook before the workers drop privileges" },
    { "hook-as-user", ARG_REQUIRED, set_hook_as_user, "ACTION:ARG",
      "run a hook once, as --uid/--gid" },
    { "hook-master-start", ARG_REQUIRED, set_hook_master_start, "ACTION:ARG",
      "run a hook in the master once it started its workers" },
    { "hook-post-fork", ARG_REQUIRED, set_hook_post_fork, "ACTION:ARG",
      "run a hook in each worker after its fork" },
    { "hook-pre-app", ARG_REQUIRED, set_hook_pre_app, "ACTION:ARG",
      "run a hook in each worker before it loads the app" },
    { "hook-post-app", ARG_REQUIRED, set_hook_post_app, "ACTION:ARG",
      "run a hook in each worker after it loaded the app" },
    { "hook-accepting", ARG_REQUIRED, set_hook_accepting, "ACTION:ARG",
      "run a hook in each worker before it starts accepting" },
    { "hook-as-user-atexit", ARG_REQUIRED, set_hook_as_user_atexit, "ACTION:ARG",
      "run a hook when gyre exits" },
    { "hook-pre-jail", ARG_REQUIRED, set_hook_pre_jail, "ACTION:ARG",
      "run a hook in the master before --hook-as-root (uWSGI's order; gyre has no jail)" },
    { "hook-in-jail", ARG_REQUIRED, set_hook_in_jail, "ACTION:ARG",
      "run a hook after --hook-pre-jail (uWSGI's order; gyre has no jail)" },
    { "hook-post-jail", ARG_REQUIRED, set_hook_post_jail, "ACTION:ARG",
      "accepted: runs after a jail, and gyre has none (nor does uWSGI without one)" },
    { "hook-accepting-once", ARG_REQUIRED, set_hook_accepting_once, "ACTION:ARG",
      "run a hook in each worker before it accepts, in its first process only (again after a "
      "reload)" },
    { "hook-accepting1", ARG_REQUIRED, set_hook_accepting1, "ACTION:ARG",
      "run a hook in worker 1 before it accepts" },
    { "hook-accepting1-once", ARG_REQUIRED, set_hook_accepting1_once, "ACTION:ARG",
      "run a hook in worker 1's first process before it accepts (again after a reload)" },
    { "exec-pre-jail", ARG_REQUIRED, set_exec_pre_jail, "CMD", "same as --hook-pre-jail exec:CMD" },
    { "exec-in-jail", ARG_REQUIRED, set_exec_in_jail, "CMD", "same as --hook-in-jail exec:CMD" },
    { "exec-post-jail", ARG_REQUIRED, set_exec_post_jail, "CMD",
      "same as --hook-post-jail exec:CMD" },
    { "call-asap", ARG_REQUIRED, set_call_asap, "SYMBOL", "same as --hook-asap call:SYMBOL" },
    { "call-pre-jail", ARG_REQUIRED, set_call_pre_jail, "SYMBOL",
      "same as --hook-pre-jail call:SYMBOL" },
    { "call-in-jail", ARG_REQUIRED, set_call_in_jail, "SYMBOL",
      "same as --hook-in-jail call:SYMBOL" },
    { "call-post-jail", ARG_REQUIRED, set_call_post_jail, "SYMBOL",
      "same as --hook-post-jail call:SYMBOL" },
    { "call-as-root", ARG_REQUIRED, set_call_as_root, "SYMBOL",
      "same as --hook-as-root call:SYMBOL" },
    { "call-as-user", ARG_REQUIRED, set_call_as_user, "SYMBOL",
      "same as --hook-as-user call:SYMBOL" },
    { "call-as-user-atexit", ARG_REQUIRED, set_call_as_user_atexit, "SYMBOL",
      "same as --hook-as-user-atexit call:SYMBOL" },
    { "call-pre-app", ARG_REQUIRED, set_call_pre_app, "SYMBOL",
      "same as --hook-pre-app call:SYMBOL" },
    { "call-post-app", ARG_REQUIRED, set_call_post_app, "SYMBOL",
      "same as --hook-post-app call:SYMBOL" },
    { "exec-asap", ARG_REQUIRED, set_exec_asap, "CMD", "same as --hook-asap exec:CMD" },
    { "exec-as-root", ARG_REQUIRED, set_exec_as_root, "CMD", "same as --hook-as-root exec:CMD" },
    { "exec-as-user", ARG_REQUIRED, set_exec_as_user, "CMD", "same as --hook-as-user exec:CMD" },
    { "exec-master-start", ARG_REQUIRED, set_exec_master_start, "CMD",
      "same as --hook-master-start exec:CMD" },
    { "exec-post-fork", ARG_REQUIRED, set_exec_post_fork, "CMD",
      "same as --hook-post-fork exec:CMD" },
    { "exec-pre-app", ARG_REQUIRED, set_exec_pre_app, "CMD", "same as --hook-pre-app exec:CMD" },
    { "exec-post-app", ARG_REQUIRED, set_exec_post_app, "CMD", "same as --hook-post-app exec:CMD" },
    { "exec-accepting", ARG_REQUIRED, set_exec_accepting, "CMD",
      "same as --hook-accepting exec:CMD" },
    { "exec-as-user-atexit", ARG_REQUIRED, set_exec_as_user_atexit, "CMD",
      "same as --hook-as-user-atexit exec:CMD" },
    { "daemonize", ARG_REQUIRED, set_daemonize, "LOGFILE",
      "detach from the terminal (fork, setsid) and log to LOGFILE (--logto wins)" },
    { "daemonize2", ARG_REQUIRED, set_daemonize, "LOGFILE", "same as --daemonize" },
    { "safe-pidfile", ARG_REQUIRED, set_pidfile, "FILE",
      "same as --pidfile (always written atomically)" },
    { "pidfile2", ARG_REQUIRED, set_pidfile2, "FILE", "a second pid file, like --pidfile" },
    { "vacuum", ARG_NONE, set_ignored, NULL,
      "accepted: gyre always removes its socket files and pid files on exit" },
    { "die-on-term", ARG_NONE, set_ignored, NULL,
      "accepted: SIGTERM always stops gyre gracefully" },
    { "thunder-lock", ARG_NONE, set_ignored, NULL,
      "accepted: a worker only accepts while it has a free core, no thundering herd to lock" },
    { "lazy", ARG_NONE, set_ignored, NULL, "same as --lazy-apps" },
    { "auto-procname", ARG_NONE, set_auto_procname, NULL,
      "process titles \"gyre master\", \"gyre worker N\"" },
    { "procname-prefix", ARG_REQUIRED, set_procname_prefix, "TEXT",
      "put TEXT before every process title (implies --auto-procname)" },
    { "procname-prefix-spaced", ARG_REQUIRED, set_procname_prefix_spaced, "TEXT",
      "same as --procname-prefix with a space after TEXT" },
    { "procname-append", ARG_REQUIRED, set_procname_append, "TEXT",
      "put TEXT after every process title (implies --auto-procname)" },
    { "procname", ARG_REQUIRED, set_procname, "NAME", "every process's title is NAME" },
    { "procname-master", ARG_REQUIRED, set_procname_master, "NAME", "the master's title is NAME" },
    { "umask", ARG_REQUIRED, set_umask, "MASK", "the file mode creation mask, as read (octal)" },
    { "reload-on-as", ARG_REQUIRED, set_reload_on_as, "MIB",
      "gracefully recycle a worker whose address space passes MIB megabytes" },
    { "evil-reload-on-rss", ARG_REQUIRED, set_evil_reload_on_rss, "MIB",
      "the master kills (and respawns) a worker whose RSS passes MIB megabytes" },
    { "evil-reload-on-as", ARG_REQUIRED, set_evil_reload_on_as, "MIB",
      "the master kills (and respawns) a worker whose address space passes MIB megabytes" },
    { "min-worker-lifetime", ARG_REQUIRED, set_min_worker_lifetime, "SECONDS",
      "a worker runs this long before --max-requests or --reload-on-rss/as may recycle it "
      "(default: 0)" },
    { "cheaper-rss-limit-soft", ARG_REQUIRED, set_cheaper_rss_limit_soft, "BYTES",
      "--cheaper starts no worker while the workers' RSS together is this much" },
    { "cheaper-rss-limit-hard", ARG_REQUIRED, set_cheaper_rss_limit_hard, "BYTES",
      "--cheaper stops a worker while the workers' RSS together is this much" },
    { "master-fifo", ARG_REQUIRED, set_master_fifo, "PATH",
      "the master reads commands from the FIFO PATH: r/w/c reload, q stop, Q stop now, +/- a "
      "worker more/less (--cheaper), s stats, P pid files, 0-9 the FIFO to read (repeatable)" },
    { "fs-brutal-reload", ARG_REQUIRED, set_fs_reload, "PATH",
      "same as --fs-reload (gyre's reloads are graceful)" },
    { "timer", ARG_REQUIRED, set_timer, "SIG SECS",
      "the master raises uWSGI signal SIG every SECS seconds (uwsgi.register_signal's handler)" },
    { "signal-timer", ARG_REQUIRED, set_timer, "SIG SECS", "same as --timer" },
    { "rbtimer", ARG_REQUIRED, set_rbtimer, "SIG SECS",
      "same as --timer (uWSGI's red-black timer)" },
    { "signal-rbtimer", ARG_REQUIRED, set_rbtimer, "SIG SECS", "same as --timer" },
    { "cron", ARG_REQUIRED, set_cron, "MIN HOUR DAY MON WEEK CMD",
      "the master runs CMD (/bin/sh -c) in each matching minute (-1: any, -N: every N)" },
    { "unique-cron", ARG_REQUIRED, set_unique_cron, "MIN HOUR DAY MON WEEK CMD",
      "--cron, not started again while its last run still runs" },
    { "cron2", ARG_REQUIRED, set_cron2, "minute=M,hour=H,...,unique=1 CMD",
      "--cron in key=val form (keys: minute hour day month week unique; missing: any)" },
    { "fs-signal", ARG_REQUIRED, set_fs_signal, "FILE SIG",
      "the master raises uWSGI signal SIG when FILE changes (inotify)" },
    { "touch-signal", ARG_REQUIRED, set_fs_signal, "FILE SIG",
      "same as --fs-signal (uWSGI checks the mtime; gyre's inotify also sees a touch)" },
    { "signal-bufsize", ARG_REQUIRED, set_accepted_count, "BYTES",
      "accepted: each worker's signal socket holds 256 pending signals" },
    { "signals-bufsize", ARG_REQUIRED, set_accepted_count, "BYTES", "same as --signal-bufsize" },
    { "no-orphans", ARG_NONE, set_no_orphans, NULL,
      "a worker stops (SIGTERM: graceful) when the master dies" },

    /* -- logging (issue 10, group 5) -- */
    { "memory-report", ARG_NONE, set_memory_report, NULL,
      "put the process's address space and RSS before every default request line" },
    { "log-x-forwarded-for", ARG_NONE, set_log_x_forwarded_for, NULL,
      "the request line's address is the X-Forwarded-For header's, when there is one" },
    { "log-4xx", ARG_NONE, set_log_4xx, NULL,
      "with --disable-logging: log the requests answered 4xx still" },
    { "log-5xx", ARG_NONE, set_log_5xx, NULL,
      "with --disable-logging: log the requests answered 5xx still" },
    { "log-slow", ARG_REQUIRED, set_log_slow, "MS",
      "with --disable-logging: log the requests that took MS milliseconds or more still" },
    { "log-big", ARG_REQUIRED, set_log_big, "BYTES",
      "with --disable-logging: log the responses of BYTES bytes or more still" },
    { "log-zero", ARG_NONE, set_log_zero, NULL,
      "with --disable-logging: log the responses without a body still" },
    { "log-ioerror", ARG_NONE, set_log_ioerror, NULL,
      "with --disable-logging: log the requests that met a read or write error still" },
    { "log-micros", ARG_NONE, set_log_micros, NULL,
      "the default request line says micros, not msecs" },
    { "log-date", ARG_OPTIONAL, set_log_date, "STRFTIME",
      "prefix every server message with the date (ctime's form, or a strftime format)" },
    { "logdate", ARG_OPTIONAL, set_log_date, "STRFTIME", "same as --log-date" },
    { "log-prefix", ARG_OPTIONAL, set_log_date, "TEXT",
      "same as --log-date (as in uWSGI: the text is a strftime format)" },
    { "logformat-strftime", ARG_NONE, set_logformat_strftime, NULL,
      "%(ftime) in the --log-date STRFTIME format" },
    { "log-format-strftime", ARG_NONE, set_logformat_strftime, NULL,
      "same as --logformat-strftime" },
    { "log-maxsize", ARG_REQUIRED, set_log_maxsize, "BYTES",
      "rename the --logto file (to FILE.UNIXTIME) once past BYTES and start a new one" },
    { "log-backupname", ARG_REQUIRED, set_log_backupname, "FILE",
      "the name --log-maxsize renames the --logto file to" },
    { "log-reopen", ARG_NONE, set_log_reopen, NULL,
      "reopen the --logto file once it was renamed or removed (logrotate)" },
    { "touch-logrotate", ARG_REQUIRED, set_touch_logrotate, "FILE",
      "rotate the --logto file when FILE's mtime changes (repeatable)" },
    { "touch-logreopen", ARG_REQUIRED, set_touch_logreopen, "FILE",
      "reopen the --logto file when FILE's mtime changes (repeatable)" },
    { "log-truncate", ARG_NONE, set_log_truncate, NULL, "empty the --logto file at start" },
    { "logfile-chmod", ARG_REQUIRED, set_logfile_chmod, "MODE",
      "chmod the --logto file (three octal digits)" },
    { "logfile-chown", ARG_NONE, set_logfile_chown, NULL, "chown the --logto file to --uid/--gid" },
    { "logto2", ARG_REQUIRED, set_logto2, "FILE",
      "--logto FILE, the file owned by --uid/--gid (uWSGI opens it after the privileges drop)" },
    { "logger", ARG_REQUIRED, set_logger, "[ID ]PLUGIN[:ARGS]",
      "log to file:PATH, fd:N, stdio or syslog[:IDENT[,FACILITY]] (repeatable; an ID only gets "
      "the lines --log-route sends it)" },
    { "log-syslog", ARG_OPTIONAL, set_log_syslog, "IDENT", "same as --logger syslog[:IDENT]" },
    { "req-logger", ARG_REQUIRED, set_req_logger, "[ID ]PLUGIN[:ARGS]",
      "request lines go to this logger, not --logger's (repeatable)" },
    { "logger-req", ARG_REQUIRED, set_req_logger, "[ID ]PLUGIN[:ARGS]", "same as --req-logger" },
    { "log-route", ARG_REQUIRED, set_log_route, "ID REGEX",
      "lines matching REGEX (PCRE) go to the logger ID (repeatable)" },
    { "log-req-route", ARG_REQUIRED, set_log_req_route, "ID REGEX",
      "request lines matching REGEX go to the logger ID (repeatable)" },
    { "log-drain", ARG_REQUIRED, set_log_drain, "REGEX",
      "do not log the lines matching REGEX (PCRE; repeatable)" },
    { "log-filter", ARG_REQUIRED, set_log_filter, "REGEX",
      "log only the lines matching REGEX (repeatable)" },
    { "log-encoder", ARG_REQUIRED, set_log_encoder, "NAME[:ID] [ARGS]",
      "encode log lines: prefix TEXT, suffix TEXT, nl, format TEMPLATE, json TEMPLATE "
      "(${msg} ${msgnl} ${unix} ${micros} ${millis} ${strftime:FMT}; repeatable)" },
    { "log-req-encoder", ARG_REQUIRED, set_log_req_encoder, "NAME[:ID] [ARGS]",
      "the same for the request lines of --req-logger" },
    { "log-master", ARG_NONE, set_ignored, NULL,
      "accepted: every gyre process writes its log lines itself, one write each" },
    { "threaded-logger", ARG_NONE, set_ignored, NULL,
      "accepted: every gyre process writes its log lines itself, one write each" },
    { "harakiri-verbose", ARG_NONE, set_harakiri_verbose, NULL,
      "on a harakiri kill, log the stuck worker's syscall and wchan (/proc)" },
};
#define NOPTIONS (sizeof(OPTIONS) / sizeof(OPTIONS[0]))

/* ---- uWSGI's options gyre does not implement -------------------------------------------------- */

struct uwsgi_option {
    const char *name;
    char arg; /* 'N' no value, 'R' a value, 'O' an optional --opt=value */
    char short_flag;
};
#include "uwsgi_options.h"
#define NUWSGI_OPTIONS (sizeof(UWSGI_OPTIONS) / sizeof(UWSGI_OPTIONS[0]))

/* What gyre does instead, where there is more to say than the default. */
static const struct {
    const char *name, *instead;
} UNSUPPORTED[] = {
    { "gevent", "gyre serves concurrency with --tornado N greenlet cores" },
    { "gevent-monkey-patch", "no gevent in gyre: --tornado N greenlet cores on the Tornado loop" },
    { "gevent-early-monkey-patch",
      "no gevent in gyre: --tornado N greenlet cores on the Tornado loop" },
    { "asyncio", "gyre serves concurrency with --tornado N greenlet cores" },
    { "ugreen", "gyre serves concurrency with --tornado N greenlet cores" },
    { "emperor", "gyre runs one app: run one gyre per app (e.g. a systemd unit each)" },
    { "xmlconfig", "gyre reads .ini files only" },
    { "xml", "gyre reads .ini files only" },
    { "yaml", "gyre reads .ini files only" },
    { "yml", "gyre reads .ini files only" },
    { "json", "gyre reads .ini files only" },
    { "js", "gyre reads .ini files only" },
    { "metric-threshold", "gyre has no alarms: a metric's thresholds are not checked" },
    { "metric-alarm", "gyre has no alarms: a metric's thresholds are not checked" },
    { "alarm-metric", "gyre has no alarms: a metric's thresholds are not checked" },
};

static int compare_uwsgi_option(const void *key, const void *elem)
{
    return strcmp(key, ((const struct uwsgi_option *)elem)->name);
}

static const struct uwsgi_option *uwsgi_option_find(const char *name)
{
    return bsearch(name, UWSGI_OPTIONS, NUWSGI_OPTIONS, sizeof(UWSGI_OPTIONS[0]),
                   compare_uwsgi_option);
}

static const char *unsupported_text(const char *name)
{
    for (size_t i = 0; i < sizeof(UNSUPPORTED) / sizeof(UNSUPPORTED[0]); i++)
        if (strcmp(UNSUPPORTED[i].name, name) == 0)
            return UNSUPPORTED[i].instead;
    return "not supported by gyre: ignored";
}

/* uWSGI's short flags (uwsgi --help), as the long option each one stands for. */
static const struct {
    char flag;
    const char *name;
} SHORT_FLAGS[] = {
    { 'a', "abstract-socket" },
    { 'A', "sharedarea" },
    { 'b', "buffer-size" },
    { 'c', "cgi-mode" },
    { 'C', "chmod-socket" },
    { 'd', "daemonize" },
    { 'H', "home" },
    { 'i', "single-interpreter" },
    { 'j', "json" },
    { 'J', "test" },
    { 'l', "listen" },
    { 'L', "disable-logging" },
    { 'm', "memory-report" },
    { 'M', "master" },
    { 'O', "optimize" },
    { 'p', "processes" },
    { 'Q', "spooler" },
    { 'r', "reaper" },
    { 'R', "max-requests" },
    { 's', "socket" },
    { 'S', "set" },
    { 't', "harakiri" },
    { 'T', "enable-threads" },
    { 'v', "max-vars" },
    { 'w', "module" },
    { 'x', "xmlconfig" },
    { 'y', "yaml" },
    { 'z', "socket-timeout" },
};

static const char *short_flag_name(char flag)
{
    for (size_t i = 0; i < sizeof(SHORT_FLAGS) / sizeof(SHORT_FLAGS[0]); i++)
        if (SHORT_FLAGS[i].flag == flag)
            return SHORT_FLAGS[i].name;
    return NULL;
}

/* ---- applying options ------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: gyre [OPTIONS] [FILE.ini[:SECTION]]\n"
        "Serve a WSGI app behind nginx on greenlet cores scheduled by the Tornado IOLoop.\n\n"
        "  e.g. gyre --socket /run/app.sock --wsgi-file app.py --tornado 100 --greenlet\n\n"
        "Options are also read from .ini files (--ini, or a bare FILE.ini) and UWSGI_<OPTION>\n"
        "or GYRE_<OPTION> variables; uWSGI's short flags (-s -w -M -p -b -t -L -C ...) stand\n"
        "for their long option; a uWSGI option gyre lacks is a warning (--strict: an error).\n\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option_def *o = &OPTIONS[i];
        char left[64];
        if (o->arg == ARG_NONE)
            snprintf(left, sizeof(left), "--%s", o->name);
        else if (o->arg == ARG_OPTIONAL)
            snprintf(left, sizeof(left), "--%s[=%s]", o->name, o->metavar);
        else
            snprintf(left, sizeof(left), "--%s %s", o->name, o->metavar);
        fprintf(out, "  %-34s %s\n", left, o->help);
    }
    fprintf(out, "  %-34s %s\n  %-34s %s\n", "--help", "show this help", "--version",
            "show the version");
}

__attribute__((noreturn)) static void die(int status, const char *what)
{
    fprintf(stderr, "gyre: %s\n", what);
    exit(status);
}

__attribute__((noreturn)) static void die_usage(const char *opt, const char *what)
{
    fprintf(stderr, "gyre: %s%s%s (see gyre --help)\n", opt ? opt : "", opt ? ": " : "", what);
    exit(2);
}

static const struct option_def *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(OPTIONS[i].name) == len && memcmp(OPTIONS[i].name, name, len) == 0)
            return &OPTIONS[i];
    return NULL;
}

static bool is_octal_word(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '7')
            return false;
    return true;
}

/* A flag's value: uWSGI's words, in any case, with a trailing " ; comment" allowed; an empty
 * value is true, as in uWSGI. Returns 1 (true), 0 (false) or -1. */
static int flag_value(const char *v)
{
    static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no",
                                                                                   "off", "0" };
    size_t len = 0;
    while (isalnum((unsigned char)v[len]))
        len++;
    if (!at_value_end(v + len))
        return -1;
    if (len == 0)
        return 1;
    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == len && strncasecmp(v, yes[i], len) == 0)
            return 1;
        if (strlen(no[i]) == len && strncasecmp(v, no[i], len) == 0)
            return 0;
    }
    return -1;
}

const char *options_set(struct gy_config *cfg, const char *name, const char *value)
{
    const struct option_def *o = find_option(name, strlen(name));
    if (!o)
        return GY_UNKNOWN_OPTION;
    if (o->arg == ARG_REQUIRED && !value)
        return "missing value";
    if (o->arg == ARG_NONE && value) {
        /* "true" sets a flag, "false" leaves it: master = True, --master=yes, UWSGI_MASTER=1. */
        int on = flag_value(value);
        if (on < 0)
            return "this option takes no value (or true/false, yes/no, on/off, 1/0)";
        if (on == 0)
            return NULL;
        value = NULL;
    }
    return o->set(cfg, value);
}

/* The entry's error err, saying where it was written. */
static const char *entry_error(const struct config_entry *e, const char *err)
{
    static char msg[1024];
    if (e->origin == CONFIG_FROM_CLI)
        snprintf(msg, sizeof(msg), "%s: %s%s%s (see gyre --help)", e->where,
                 e->value ? e->value : "", e->value ? ": " : "", err);
    else if (e->origin == CONFIG_FROM_FILE && e->value)
        snprintf(msg, sizeof(msg), "%s: %s = %s: %s", e->where, e->key, e->value, err);
    else if (e->origin == CONFIG_FROM_FILE)
        snprintf(msg, sizeof(msg), "%s: %s: %s", e->where, e->key, err);
    else
        snprintf(msg, sizeof(msg), "%s=%s: %s", e->where, e->value ? e->value : "", err);
    return msg;
}

/* Was an earlier entry of the same key warned about? (one warning per name) */
static bool warned_before(const struct config_entry *e)
{
    for (const struct config_entry *p = config_entries(); p && p != e; p = p->next)
        if (!p->placeholder_only && strcmp(p->key, e->key) == 0)
            return true;
    return false;
}

/* enable_threads -> enable-threads, when that is an option (uWSGI ignores such a key too, as a
 * placeholder: a hint costs nothing). */
static void hint_underscores(const struct config_entry *e)
{
    if (!strchr(e->key, '_') || warned_before(e))
        return;
    char dashed[128];
    snprintf(dashed, sizeof(dashed), "%s", e->key);
    for (char *p = dashed; *p; p++)
        if (*p == '_')
            *p = '-';
    if (find_option(dashed, strlen(dashed)) || uwsgi_option_find(dashed))
        fprintf(stderr,
                "gyre: warning: %s: '%s' is no option, only a placeholder (as in uWSGI): "
                "did you mean '%s'?\n",
                e->where, e->key, dashed);
}

/* A key that is no option of gyre's. */
static const char *apply_foreign(struct gy_config *cfg, const struct config_entry *e, int *status)
{
    static char msg[1024];
    if (e->placeholder_only || e->origin == CONFIG_FROM_GYRE_ENV)
        return NULL; /* GYRE_BIN and the like are the tools', not options */
    if (uwsgi_option_find(e->key)) {
        if (cfg->strict) {
            *status = 1;
            snprintf(msg, sizeof(msg),
                     "%s: %s: a uWSGI option gyre does not implement (%s), "
                     "refused by --strict",
                     e->where, e->key, unsupported_text(e->key));
            return msg;
        }
        if (!warned_before(e))
            fprintf(stderr, "gyre: warning: %s: %s: %s\n", e->where, e->key,
                    unsupported_text(e->key));
        return NULL;
    }
    if (cfg->strict) {
        *status = 1;
        snprintf(msg, sizeof(msg), "%s: unknown option '%s' (--strict: no placeholders)", e->where,
                 e->key);
        return msg;
    }
    hint_underscores(e);
    return NULL; /* a placeholder: its value was there for %(...) */
}

static const char *apply_entry(struct gy_config *cfg, struct config_entry *e, int *status)
{
    e->applied = true;
    if (e->placeholder_only || !find_option(e->key, strlen(e->key)))
        return apply_foreign(cfg, e, status);
    const char *err = options_set(cfg, e->key, e->value);
    if (err && cfg->strict && strstr(err, "(strict mode)"))
        *status = 1;
    return err ? entry_error(e, err) : NULL;
}

const char *options_apply(struct gy_config *cfg, int *status)
{
    *status = 2;
    const char *err = config_expand();
    if (err)
        return err;
    /* `strict` anywhere decides for every entry, the ones before it included (uWSGI's). */
    for (struct config_entry *e = config_entries(); e; e = e->next)
        if (!e->applied && strcmp(e->key, "strict") == 0 && (err = apply_entry(cfg, e, status)))
            return err;
    for (struct config_entry *e = config_entries(); e; e = e->next)
        if (!e->applied && (err = apply_entry(cfg, e, status)))
            return err;
    if ((err = finish_caches(cfg)))
        return err;
    /* --threads alone makes the cores threads; with --tornado it is a pool beside them. */
    cfg->thread_cores = cfg->threads > 0 && !cfg->cores_given;
    if (cfg->thread_cores)
        cfg->cores = cfg->threads;
    return NULL;
}

static void set_defaults(struct gy_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->callable = "application";
    cfg->cores = 1;
    cfg->chmod_socket = -1;
    cfg->buffer_size = 4096;
    cfg->listen_backlog = 1024;
    cfg->socket_timeout = 30;
    cfg->keepalive_timeout = -1; /* conn.c's default */
    cfg->stop_grace = 5;
    cfg->processes = 1;
    cfg->reload_mercy = 30;
    cfg->post_buffering_bufsize = 65536;
    cfg->harakiri_grace = 5;
    cfg->websocket_max_size = 1024 * 1024;
    cfg->websocket_ping_freq = 30;
    cfg->websocket_pong_tolerance = 3;
    cfg->write_behind_size = 1u << 20;
}

/* ---- the command line ------------------------------------------------------------------------ */

/* The argument kind of option name (len bytes), gyre's or uWSGI's; false if neither knows it. */
static bool option_arg(const char *name, size_t len, enum arg_kind *arg)
{
    const struct option_def *o = find_option(name, len);
    if (o) {
        *arg = o->arg;
        return true;
    }
    char buf[128];
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, name, len);
    buf[len] = '\0';
    const struct uwsgi_option *u = uwsgi_option_find(buf);
    if (!u)
        return false;
    *arg = u->arg == 'N' ? ARG_NONE : u->arg == 'R' ? ARG_REQUIRED : ARG_OPTIONAL;
    return true;
}

/* A config file given bare, as uWSGI takes one: FILE.ini or FILE.ini:SECTION. */
static void add_bare_file(const char *arg)
{
    static const char *const others[] = { ".xml", ".yaml", ".yml", ".json", ".js" };
    const char *colon = strrchr(arg, ':');
    size_t len = colon && !strchr(colon, '/') ? (size_t)(colon - arg) : strlen(arg);
    if (len > 4 && strncmp(arg + len - 4, ".ini", 4) == 0) {
        const char *err = config_add_file(arg, NULL);
        if (err)
            die(2, err);
        return;
    }
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        size_t n = strlen(others[i]);
        if (len > n && strncmp(arg + len - n, others[i], n) == 0)
            die_usage(arg, "gyre reads .ini config files only: write this one as an .ini");
    }
    die_usage(arg, "unexpected argument: options start with -- (a config file ends in .ini)");
}

/* The value of option arg (kind kind, "=value" already split off into *value), from argv[*i +
 * 1] where it takes one there. */
static void take_value(const char *arg, const char *name, enum arg_kind kind, int argc, char **argv,
                       int *i, const char **value)
{
    if (*value || kind == ARG_NONE)
        return;
    if (kind == ARG_REQUIRED) {
        if (*i + 1 >= argc)
            die_usage(arg, "missing value");
        *value = argv[++*i];
    } else if (strcmp(name, "chmod-socket") == 0 && *i + 1 < argc && is_octal_word(argv[*i + 1])) {
        /* uWSGI users write both --chmod-socket=660 and --chmod-socket 660. */
        *value = argv[++*i];
    }
}

static void add_cli(const char *name, const char *value, const char *where)
{
    const char *err = config_add(name, value, where, CONFIG_FROM_CLI);
    if (err)
        die(2, err);
}

/* -M, -p 4, -p4, -MT: uWSGI's short flags, bundled or not. */
static void parse_short(const char *arg, int argc, char **argv, int *i)
{
    for (const char *p = arg + 1; *p; p++) {
        const char *name = short_flag_name(*p);
        char flag[3] = { '-', *p, '\0' };
        enum arg_kind kind;
        if (!name || !option_arg(name, strlen(name), &kind))
            die_usage(flag, "unknown option");
        if (strcmp(name, "help") == 0) {
            usage(stdout);
            exit(0);
        }
        const char *value = NULL;
        if (kind != ARG_NONE && p[1]) {
            value = p + 1; /* -p4 */
        } else if (kind != ARG_NONE) {
            take_value(flag, name, kind, argc, argv, i, &value);
        }
        add_cli(name, value, strdup(flag));
        if (value && value == p + 1)
            return;
    }
}

static void parse_long_option(const char *arg, int argc, char **argv, int *i)
{
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    enum arg_kind kind;
    if (!option_arg(name, name_len, &kind)) {
        /* uWSGI refuses --enable_threads too; say what was meant. */
        char dashed[128];
        snprintf(dashed, sizeof(dashed), "%.*s", (int)name_len, name);
        for (char *p = dashed; *p; p++)
            if (*p == '_')
                *p = '-';
        if (strchr(dashed, '-') && option_arg(dashed, strlen(dashed), &kind)) {
            char what[192];
            snprintf(what, sizeof(what), "unknown option: did you mean --%s?", dashed);
            die_usage(arg, what);
        }
        die_usage(arg, "unknown option");
    }
    const char *value = eq ? eq + 1 : NULL;
    char *key = strndup(name, name_len);
    if (!key)
        die(1, "out of memory");
    take_value(arg, key, kind, argc, argv, i, &value);
    add_cli(key, value, eq ? strndup(arg, (size_t)(eq - arg)) : arg);
}

void options_parse(struct gy_config *cfg, int argc, char **argv)
{
    set_defaults(cfg);
    config_reset();
    /* UWSGI_<OPTION>/GYRE_<OPTION> first: the command line adds to them or overrides them. */
    const char *env_err = config_add_env();
    if (env_err)
        die(2, env_err);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "--usage") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(arg, "--version") == 0) {
            printf("gyre %s\n", GYRE_VERSION);
            exit(0);
        }
        if (arg[0] != '-' || arg[1] == '\0')
            add_bare_file(arg);
        else if (arg[1] != '-')
            parse_short(arg, argc, argv, &i);
        else if (arg[2] == '\0')
            die_usage(arg, "unexpected argument: options start with --");
        else
            parse_long_option(arg, argc, argv, &i);
    }
    int status;
    const char *err = options_apply(cfg, &status);
    if (err)
        die(status, err);
    for (int i = 0; i < cfg->nsockets; i++)
        if (cfg->sockets[i].by_protocol)
            cfg->sockets[i].proto = cfg->protocol;
    if (cfg->nsockets == 0)
        die_usage(NULL, "no socket to serve: give --socket, --fastcgi-socket or --http-socket");
    if (!cfg->wsgi_file && !cfg->module && cfg->nmounts == 0)
        die_usage(NULL, "no app to serve: give --wsgi-file FILE, --module MOD or --mount");
    if (cfg->wsgi_file && cfg->module) {
        /* uWSGI loads the module first, as the default app, and skips the file ("mountpoint
         * already configured"): real configs give both. */
        fprintf(stderr,
                "gyre: warning: --module %s and --wsgi-file %s both give the default app: the "
                "module serves, as in uWSGI\n",
                cfg->module, cfg->wsgi_file);
        cfg->wsgi_file = NULL;
    }
}
