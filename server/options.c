/*
 * The command line, uWSGI style: `--opt value` and `--opt=value`, every option long.
 *
 * One table describes every option (name, argument, setter, help); parsing, --help and the
 * error messages all read it, so an option is added in exactly one place.
 *
 * Depends on: ini.c (server/README)
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum arg_kind { ARG_NONE, ARG_REQUIRED, ARG_OPTIONAL };

struct option_def {
    const char *name;
    enum arg_kind arg;
    /* Returns NULL on success or a description of what is wrong with value. */
    const char *(*set)(struct gy_config *cfg, const char *value);
    const char *metavar;
    const char *help;
};

static const char *parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno)
        return "expected a whole number";
    if (v < min || v > max)
        return "number out of range";
    *out = v;
    return NULL;
}

static const char *parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno || !(v >= 0) || v > 1e6)
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
    return add_socket(c, v, GY_PROTO_UWSGI);
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
    long n = 0;
    const char *err = parse_long(v, 1, 100000, &n);
    c->cores = (int)n;
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
    if (*v == '\0' || *end != '\0' || mode < 0 || mode > 07777)
        return "expected an octal file mode such as 660";
    c->chmod_socket = (int)mode;
    return NULL;
}

static const char *set_buffer_size(struct gy_config *c, const char *v)
{
    long n = 0;
    const char *err = parse_long(v, 64, 65535, &n);
    c->buffer_size = (unsigned)n;
    return err;
}

static const char *set_listen(struct gy_config *c, const char *v)
{
    long n = 0;
    const char *err = parse_long(v, 1, INT_MAX, &n);
    c->listen_backlog = (int)n;
    return err;
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
    long n = 0;
    const char *err = parse_long(v, 1, INT_MAX, &n);
    c->max_conns = (int)n;
    return err;
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
    return ini_load(c, v);
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

static const char *set_processes(struct gy_config *c, const char *v)
{
    long n = 0;
    const char *err = parse_long(v, 1, 1024, &n);
    c->processes = (int)n;
    return err;
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
/* A POSIX extended regexp (uWSGI's are PCRE; the common subset is the same). Compiled again
 * by static.c where it is used: here it is only checked, so that a typo stops the start. */
static const char *check_regexp(const char *re, size_t len)
{
    char pattern[512];
    if (len >= sizeof(pattern))
        return "regexp too long";
    memcpy(pattern, re, len);
    pattern[len] = '\0';
    regex_t rx;
    if (regcomp(&rx, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return "not a valid (POSIX extended) regexp";
    regfree(&rx);
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

/* -- setters: processes, hooks and daemons (issue 10, group 4) -- */

/* -- setters: logging (issue 10, group 5) -- */

static const struct option_def OPTIONS[] = {
    { "socket", ARG_REQUIRED, set_socket, "ADDR",
      "serve the uwsgi protocol on a unix socket PATH or HOST:PORT (repeatable)" },
    { "uwsgi-socket", ARG_REQUIRED, set_socket, "ADDR", "same as --socket" },
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
    { "greenlet", ARG_NONE, set_greenlet, NULL, "use greenlet as the suspend engine (always on)" },
    { "chmod-socket", ARG_OPTIONAL, set_chmod_socket, "MODE",
      "chmod unix sockets to MODE (666 when given bare)" },
    { "buffer-size", ARG_REQUIRED, set_buffer_size, "N",
      "largest request head (uwsgi vars, FastCGI params) accepted, in bytes (default: 4096, max "
      "65535)" },
    { "listen", ARG_REQUIRED, set_listen, "N", "listen backlog of every socket (default: 1024)" },
    { "socket-timeout", ARG_REQUIRED, set_socket_timeout, "SECONDS",
      "drop a client silent this long on a read or write (default: 30)" },
    { "keepalive-timeout", ARG_REQUIRED, set_keepalive_timeout, "SECONDS",
      "close a kept-alive connection idle this long between requests (default: 75)" },
    { "max-conns", ARG_REQUIRED, set_max_conns, "N",
      "open client connections per process at most; more wait in the listen backlog (default: the "
      "fd limit minus a reserve)" },
    { "worker-reload-mercy", ARG_REQUIRED, set_stop_grace, "SECONDS",
      "time in-flight requests get to finish on SIGTERM (default: 5)" },
    { "chdir", ARG_REQUIRED, set_chdir, "DIR", "chdir to DIR before loading the app" },
    { "pythonpath", ARG_REQUIRED, set_pythonpath, "DIR", "add DIR to sys.path (repeatable)" },
    { "python-path", ARG_REQUIRED, set_pythonpath, "DIR", "same as --pythonpath" },
    { "pp", ARG_REQUIRED, set_pythonpath, "DIR", "same as --pythonpath" },
    { "env", ARG_REQUIRED, set_env, "KEY=VALUE", "set an environment variable (repeatable)" },
    { "disable-logging", ARG_NONE, set_disable_logging, NULL, "no log line per request" },
    { "log-format", ARG_REQUIRED, set_log_format, "FORMAT",
      "request log line with %(method) %(uri) %(status) %(size) %(msecs) %(pid) %(core) ..." },
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
    { "reload-mercy", ARG_REQUIRED, set_reload_mercy, "SECONDS",
      "time an old worker gets to finish its requests on a reload (default: 30)" },
    { "max-requests", ARG_REQUIRED, set_max_requests, "N",
      "gracefully recycle a worker after N requests" },
    { "reload-on-rss", ARG_REQUIRED, set_reload_on_rss, "MIB",
      "gracefully recycle a worker whose RSS passes MIB megabytes" },
    { "harakiri", ARG_REQUIRED, set_harakiri, "SECONDS",
      "cancel a request running longer than SECONDS; kill a worker whose loop is stuck that long" },
    { "uid", ARG_REQUIRED, set_uid, "USER",
      "workers run as USER (name or number), dropped to after binding" },
    { "gid", ARG_REQUIRED, set_gid, "GROUP", "workers run as GROUP (name or number)" },
    { "ini", ARG_REQUIRED, set_ini, "FILE",
      "read options from the [uwsgi] and [gyre] sections of an .ini file" },
    { "stats", ARG_REQUIRED, set_stats, "ADDR",
      "serve uWSGI-style stats JSON on a unix socket PATH or HOST:PORT" },
    { "stats-server", ARG_REQUIRED, set_stats, "ADDR", "same as --stats" },
    { "stats-http", ARG_NONE, set_stats_http, NULL, "serve the --stats JSON as an HTTP response" },
    { "metrics-http", ARG_REQUIRED, set_metrics_http, "ADDR",
      "serve Prometheus metrics over HTTP on HOST:PORT or a unix socket PATH" },
    { "plugin", ARG_REQUIRED, set_ignored, "NAME",
      "accepted for uWSGI compatibility and ignored: the engine is built in" },
    { "plugins", ARG_REQUIRED, set_ignored, "NAMES", "same as --plugin" },

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

    /* -- processes, hooks and daemons (issue 10, group 4) -- */

    /* -- logging (issue 10, group 5) -- */
};
#define NOPTIONS (sizeof(OPTIONS) / sizeof(OPTIONS[0]))

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: gyre [OPTIONS]\n"
            "Serve a WSGI app behind nginx on greenlet cores scheduled by the Tornado IOLoop.\n\n"
            "  e.g. gyre --socket /run/app.sock --wsgi-file app.py --tornado 100 --greenlet\n\n");
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

static void die_usage(const char *opt, const char *what)
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

const char *options_set(struct gy_config *cfg, const char *name, const char *value)
{
    const struct option_def *o = find_option(name, strlen(name));
    if (!o)
        return "unknown option";
    if (o->arg == ARG_REQUIRED && !value)
        return "missing value";
    if (o->arg == ARG_NONE && value) {
        /* From an .ini file or the environment: "true" sets a flag, "false" leaves it. */
        if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no") ||
            !strcmp(value, "off"))
            return NULL;
        if (*value && strcmp(value, "true") && strcmp(value, "1") && strcmp(value, "yes") &&
            strcmp(value, "on"))
            return "this option takes no value (or true/false)";
        value = NULL;
    }
    return o->set(cfg, value);
}

static void set_defaults(struct gy_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->set_option = options_set;
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
}

void options_parse(struct gy_config *cfg, int argc, char **argv)
{
    set_defaults(cfg);
    /* UWSGI_<OPTION>/GYRE_<OPTION> first: the command line adds to them or overrides them. */
    env_load(cfg);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(arg, "--version") == 0) {
            printf("gyre %s\n", GYRE_VERSION);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            die_usage(arg, "unexpected argument: options start with --");

        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const struct option_def *o = find_option(name, name_len);
        if (!o)
            die_usage(arg, "unknown option");

        const char *value = eq ? eq + 1 : NULL;
        switch (o->arg) {
        case ARG_NONE:
            if (value)
                die_usage(arg, "this option takes no value");
            break;
        case ARG_REQUIRED:
            if (!value) {
                if (i + 1 >= argc)
                    die_usage(arg, "missing value");
                value = argv[++i];
            }
            break;
        case ARG_OPTIONAL:
            /* uWSGI users write both --chmod-socket=660 and --chmod-socket 660. */
            if (!value && i + 1 < argc && is_octal_word(argv[i + 1]))
                value = argv[++i];
            break;
        }
        const char *err = o->set(cfg, value);
        if (err) {
            char what[256];
            snprintf(what, sizeof(what), "%s: %s", value ? value : "", err);
            die_usage(arg, what);
        }
    }
    if (cfg->nsockets == 0)
        die_usage(NULL, "no socket to serve: give --socket, --fastcgi-socket or --http-socket");
    if (!cfg->wsgi_file && !cfg->module)
        die_usage(NULL, "no app to serve: give --wsgi-file FILE or --module MOD");
    if (cfg->wsgi_file && cfg->module)
        die_usage(NULL, "give --wsgi-file or --module, not both");
}
