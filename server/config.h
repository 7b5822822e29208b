/*
 * Everything the command line (and later .ini files and the environment) can set.
 * One struct, filled by options.c, read-only once the server starts.
 */
#ifndef GYRE_CONFIG_H
#define GYRE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define GYRE_VERSION "0.1.0"
#define GY_MAX_SOCKETS 32
#define GY_MAX_LIST 64

enum gy_proto {
    GY_PROTO_UWSGI,
    GY_PROTO_FASTCGI,
    GY_PROTO_HTTP,
};

struct gy_socket_conf {
    const char *addr; /* as given: a path, HOST:PORT or :PORT */
    enum gy_proto proto;
};

struct gy_config;
typedef const char *(*option_setter)(struct gy_config *cfg, const char *name, const char *value);

struct gy_config {
    option_setter set_option; /* how ini.c applies an option: options_set (options_parse) */
    struct gy_socket_conf sockets[GY_MAX_SOCKETS];
    int nsockets;

    const char *wsgi_file;
    const char *module;   /* pkg.mod or pkg.mod:callable */
    const char *callable; /* default "application" */
    const char *chdir;
    const char *pythonpath[GY_MAX_LIST];
    int npythonpath;
    const char *env[GY_MAX_LIST];
    int nenv;

    int cores; /* --tornado N */
    bool greenlet;
    int chmod_socket;     /* file mode, or -1 to leave the umask's */
    unsigned buffer_size; /* largest uwsgi vars block accepted */
    int listen_backlog;
    double socket_timeout;    /* seconds a client may stay silent on a read or write, and
                                 seconds a request head may take to arrive whole */
    double keepalive_timeout; /* seconds a kept-alive connection may wait for its next request
                                 (< 0: not given, the smaller of 5 and socket_timeout) */
    int max_conns;            /* open client connections at most (0: from RLIMIT_NOFILE) */
    double stop_grace;        /* seconds in-flight requests get on SIGINT/SIGTERM */
    bool disable_logging;     /* the per-request log line */
    const char *log_format;   /* --log-format: the request line with %(name) variables */
    const char *logto;        /* --logto FILE: the log goes there instead of stderr */
    const char *pidfile;

    /* process manager */
    bool master;
    int processes; /* workers the master forks */
    const char *touch_reload[GY_MAX_LIST];
    int ntouch_reload;
    double reload_mercy;         /* seconds an old worker gets to finish on a reload */
    unsigned long max_requests;  /* a worker retires after serving this many (0: never) */
    unsigned long reload_on_rss; /* ... or once its RSS passes this many MiB (0: never) */
    double harakiri;             /* seconds a request may run (0: forever) */
    const char *uid, *gid;       /* the workers' identity, dropped to after binding */

    /* observability */
    const char *stats;        /* --stats ADDR: one JSON document per connection */
    bool stats_http;          /* ... wrapped in an HTTP response */
    const char *metrics_http; /* --metrics-http ADDR: Prometheus text format over HTTP */

    /* -- options that are already gyre's behaviour or a true no-op (issue 10, group 1) -- */

    /* -- the HTTP router and static files (issue 10, groups 2 and 6) -- */

    /* -- the Python environment, routes and request handling (issue 10, groups 3 and 8) -- */

    /* -- processes, hooks and daemons (issue 10, group 4) -- */
    /* adaptive workers (uWSGI's cheaper subsystem, algorithm "spare"): 0 = off */
    int cheaper;             /* the fewest workers kept running */
    int cheaper_initial;     /* workers started (0: cheaper) */
    int cheaper_step;        /* workers added at once when all are busy (0: 1) */
    double cheaper_overload; /* seconds all busy before adding, idle before stopping one (3) */
    bool cheaper_overload_given;
    const char *cheaper_algo;
    double max_worker_lifetime;       /* seconds, then a graceful replacement (0: never) */
    double max_worker_lifetime_delta; /* ... plus worker id times this */
    bool worker_reload_mercy_given, reload_mercy_given; /* see worker_mercy() in process.h */
    const char *fs_reload[GY_MAX_LIST]; /* inotify: a graceful reload when one changes */
    int nfs_reload;
    /* hooks (hooks.h): "action:arg" strings per phase; exec-* given as "exec:CMD" */
#define GY_HOOK_PHASES 15
    const char *hooks[GY_HOOK_PHASES][GY_MAX_LIST];
    int nhooks[GY_HOOK_PHASES];
    /* daemons the master starts, restarts and stops (daemons.h) */
    const char *attach_daemon[GY_MAX_LIST]; /* CMD */
    int nattach_daemon;
    const char *smart_daemon[GY_MAX_LIST]; /* "PIDFILE CMD" */
    int nsmart_daemon;
    const char *smart_daemon2[GY_MAX_LIST]; /* "PIDFILE CMD": the master daemonizes CMD */
    int nsmart_daemon2;
    const char *attach_daemon2[GY_MAX_LIST]; /* "cmd=...,pidfile=...,..." */
    int nattach_daemon2;
    const char *daemonize; /* LOGFILE: detach from the terminal, log there */
    const char *pidfile2;  /* a second pid file (gyre's master keeps its privileges) */
    bool auto_procname;
    const char *procname_prefix, *procname_append, *procname, *procname_master;
    bool no_orphans;                  /* workers end (SIGTERM) when the master dies */
    unsigned long reload_on_as;       /* MiB of address space: the worker asks to be replaced */
    unsigned long evil_reload_on_rss; /* MiB: the master kills the worker (its loop may hang) */
    unsigned long evil_reload_on_as;
    double min_worker_lifetime; /* seconds before --max-requests/--reload-on-* may retire one */
    unsigned long long cheaper_rss_limit_soft, cheaper_rss_limit_hard; /* bytes, all workers */
    const char *master_fifo[10]; /* FIFOs the master reads one-letter commands from */
    int nmaster_fifo;

    /* -- logging (issue 10, group 5) -- */
};

/* Set one option by name, as the command line, an .ini file or the environment give it: value
 * is NULL for a flag given bare. Returns NULL, or what is wrong (a static string). */
const char *options_set(struct gy_config *cfg, const char *name, const char *value);

/* ini.c: apply the [uwsgi] and [gyre] sections of an .ini file (uWSGI's format, with %(name)
 * references and the %d %n %p %s magic variables); UWSGI_<OPTION> and GYRE_<OPTION>
 * environment variables. Return NULL or an error message. Each option is applied with
 * cfg->set_option (options_set, put there by options_parse: ini.c does not call up into
 * options.c, which loads .ini files for --ini and the environment). */
const char *ini_load(struct gy_config *cfg, const char *path);
void env_load(struct gy_config *cfg);

/* Fill cfg from argv. Prints usage and exits 0 for --help/--version; prints one line to stderr
 * and exits 2 for an unknown or malformed option. */
void options_parse(struct gy_config *cfg, int argc, char **argv);

#endif
