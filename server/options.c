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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    { "pythonpath", ARG_REQUIRED, set_pythonpath, "DIR",
      "add DIR (each match, for a glob) to sys.path (repeatable)" },
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
    cfg->post_buffering_bufsize = 65536;
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
    if (!cfg->wsgi_file && !cfg->module && cfg->nmounts == 0)
        die_usage(NULL, "no app to serve: give --wsgi-file FILE, --module MOD or --mount");
    if (cfg->wsgi_file && cfg->module)
        die_usage(NULL, "give --wsgi-file or --module, not both");
}
