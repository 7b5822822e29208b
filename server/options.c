/*
 * The command line, uWSGI style: `--opt value` and `--opt=value`, every option long.
 *
 * One table describes every option (name, argument, setter, help); parsing, --help and the
 * error messages all read it, so an option is added in exactly one place.
 *
 * Depends on: ini.c (server/README)
 */
#include "config.h"
#include "hooks.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* -- setters: processes, hooks and daemons (issue 10, group 4) -- */

/* The fields hold what the options say; the master applies them (master.c). */
static const char *parse_count(const char *v, long min, int *out)
{
    long n = 0;
    const char *err = parse_long(v, min, 1024, &n);
    *out = (int)n;
    return err;
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
    { "worker-reload-mercy", ARG_REQUIRED, set_worker_reload_mercy, "SECONDS",
      "time a worker's in-flight requests get on a stop or a reload (default: 5 on a stop, 30 "
      "on a reload)" },
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
    { "reload-mercy", ARG_REQUIRED, set_reload_mercy_opt, "SECONDS",
      "bound of a whole reload or stop: no worker gets longer (default: 30 on a reload, 5 on a "
      "stop)" },
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
    { "no-orphans", ARG_NONE, set_no_orphans, NULL,
      "a worker stops (SIGTERM: graceful) when the master dies" },

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
