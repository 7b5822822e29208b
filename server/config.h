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
/* --locks at most (uwsgi.lock(n) takes 0..locks: one more than given). */
#define GY_MAX_LOCKS 1024
/* --cache2 given at most (the legacy --cache is one more). */
#define GY_MAX_CACHES 16
/* --buffer-size at most: each connection's buffer holds a head this big (1 MiB). */
#define GY_MAX_BUFFER_SIZE (1L << 20)

/* One cache (--cache2 KEY=VALUE,... or the legacy --cache N): uWSGI's keys (cache.c parses them). */
struct gy_cache_conf {
    const char *name;
    unsigned long long max_items; /* item slots (slot 0 is never used: max_items - 1 keys) */
    unsigned long long blocksize; /* bytes per value block */
    unsigned long long blocks;    /* value blocks (default max_items) */
    unsigned long long keysize;   /* longest key (default 2048) */
    unsigned long long hashsize;  /* hash buckets (default 65536) */
    long long math_initial;       /* the number an inc/dec/mul/div of a new key starts from */
    const char *store;            /* a file (persistence across restarts), a Redis URL, or NULL */
    bool store_redis;             /* store is a Redis URL: cache_redis.c serves this cache */
    bool store_delete;            /* a store file of another layout is replaced, not refused */
    bool bitmap;                  /* a value may span several consecutive blocks */
    bool purge_lru;               /* full: evict the least recently used key */
    bool ignore_full;             /* full: no log line */
    bool clear_on_full;           /* full: clear the whole cache */
    bool no_expire;               /* the master's sweeper skips it */
    bool lastmod;                 /* last_modified_at kept (stats) */
};

enum gy_proto {
    GY_PROTO_UWSGI,
    GY_PROTO_FASTCGI,
    GY_PROTO_HTTP,
};

struct gy_socket_conf {
    const char *addr; /* as given: a path, HOST:PORT or :PORT */
    enum gy_proto proto;
    bool by_protocol; /* --socket: speaks --protocol (uWSGI's "default sockets") */
};

struct gy_config {
    bool strict; /* --strict: an unknown or unsupported option is an error */
    struct gy_socket_conf sockets[GY_MAX_SOCKETS];
    int nsockets;
    enum gy_proto protocol; /* --protocol: what --socket sockets speak (default uwsgi) */

    const char *wsgi_file;
    const char *module;   /* pkg.mod or pkg.mod:callable */
    const char *callable; /* default "application" */
    const char *chdir;
    const char *pythonpath[GY_MAX_LIST];
    int npythonpath;
    const char *env[GY_MAX_LIST];
    int nenv;

    int cores;         /* cores per worker: --tornado N greenlets, or --threads N threads */
    bool cores_given;  /* --tornado/--async was given */
    int threads;       /* --threads N */
    bool thread_cores; /* the cores are OS threads: --threads without --tornado */
    unsigned long thread_stacksize_kb; /* --threads-stacksize: gyre's threads' stacks (0: libc's) */
    unsigned long long write_behind_size; /* bytes of a thread core's response the loop may hold
                                             for a slow client (--write-behind-size) */
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
    double harakiri_grace;       /* seconds a thread core has to return after its harakiri
                                    exception before the worker is recycled */
    int locks;                   /* --locks N: uwsgi.lock(0..N), shared by the workers */
    /* WebSockets (uwsgi.websocket_*), uWSGI's options and defaults */
    unsigned long long websocket_max_size; /* bytes (the option is in KiB; 1024 KiB) */
    double websocket_ping_freq;            /* seconds of silence before a ping (30) */
    double websocket_pong_tolerance;       /* seconds a ping may go unanswered (3) */
    /* uwsgi.cache_*: the legacy --cache N (cache "default", first) then each --cache2 */
    struct gy_cache_conf caches[GY_MAX_CACHES + 1];
    int ncaches;
    unsigned long long cache_items;          /* --cache N */
    unsigned long long cache_blocksize;      /* --cache-blocksize (default 65536) */
    const char *cache_store;                 /* --cache-store FILE */
    bool cache_lastmod;                      /* --cache-use-last-modified */
    int cache_expire_freq;                   /* --cache-expire-freq: seconds between sweeps (3) */
    bool cache_no_expire;                    /* --cache-no-expire: no sweeps */
    bool cache_report_freed;                 /* --cache-report-freed-items: a log line per sweep */
    const char *add_cache_item[GY_MAX_LIST]; /* "[CACHE ]KEY=VALUE", set at start */
    int nadd_cache_item;
    const char *load_file_in_cache[GY_MAX_LIST]; /* "[CACHE ]PATH": the file under key PATH */
    int nload_file_in_cache;
    const char *uid, *gid; /* the workers' identity, dropped to after binding */

    /* observability */
    const char *stats;        /* --stats ADDR: one JSON document per connection */
    bool stats_http;          /* ... wrapped in an HTTP response */
    const char *metrics_http; /* --metrics-http ADDR: Prometheus text format over HTTP */
    /* uWSGI's metrics (metrics.h): --metric specs in order, the stats JSON's "metrics" */
    const char *metrics[GY_MAX_LIST]; /* --metric name=...,type=...: parsed by metrics.c */
    int nmetrics;
    bool enable_metrics;      /* --enable-metrics, or any --metric */
    const char *metrics_dir;  /* --metrics-dir DIR: one file per metric, its value */
    bool metrics_dir_restore; /* ... and the initial values read back from them */
    bool stats_no_metrics;    /* --stats-no-metrics: the stats JSON without "metrics" */

    /* -- options that are already gyre's behaviour or a true no-op (issue 10, group 1) -- */

    /* -- the HTTP router and static files (issue 10, groups 2 and 6) -- */
    /* Static files, served from C before the app is called (static.c). Lists in the order
     * given; uWSGI's order of lookup: check-static, static-map, static-map2, the docroot. */
    const char *check_static[GY_MAX_LIST]; /* DIR: DIR + PATH_INFO */
    int ncheck_static;
    const char *static_maps[GY_MAX_LIST]; /* MOUNT=DIR: DIR + PATH_INFO after MOUNT */
    int nstatic_maps;
    const char *static_maps2[GY_MAX_LIST]; /* MOUNT=DIR: DIR + the whole PATH_INFO */
    int nstatic_maps2;
    bool check_static_docroot;             /* ... and the request's DOCUMENT_ROOT */
    const char *static_index[GY_MAX_LIST]; /* tried in a directory, in order */
    int nstatic_index;
    const char *static_skip_ext[GY_MAX_LIST]; /* suffixes never served statically */
    int nstatic_skip_ext;
    const char *static_safe[GY_MAX_LIST]; /* trees a mapping's symlinks may lead into */
    int nstatic_safe;
    const char *mimefiles[GY_MAX_LIST]; /* mime.types files (default /etc/mime.types) */
    int nmimefiles;
    bool static_gzip_all;                     /* FILE.gz for every file, if it exists */
    const char *static_gzip_dir[GY_MAX_LIST]; /* ... for files under these prefixes */
    int nstatic_gzip_dir;
    const char *static_gzip_ext[GY_MAX_LIST]; /* ... for files with these suffixes */
    int nstatic_gzip_ext;
    const char *static_gzip_re[GY_MAX_LIST]; /* ... for files matching these regexps */
    int nstatic_gzip_re;
    /* An Expires header: "KEY SECONDS" (regexp rules) or "TYPE=SECONDS" (content types),
     * counted from now or from the file's mtime. */
    struct gy_expires_rule {
        enum gy_expires_on { EXPIRES_FILENAME, EXPIRES_PATH_INFO, EXPIRES_URI, EXPIRES_TYPE } on;
        bool from_mtime;
        const char *spec;
    } static_expires[GY_MAX_LIST];
    int nstatic_expires;
    const char *chown_socket; /* USER[:GROUP] for the unix sockets gyre binds */

    /* -- the Python environment, routes and request handling (issue 10, groups 3 and 8) -- */
    const char *home; /* --home/--virtualenv: a venv whose site-packages the app imports */
    const char *mounts[GY_MAX_LIST]; /* --mount /PREFIX=APP: one app per URL prefix */
    int nmounts;
    bool manage_script_name;              /* the mount point moves from PATH_INFO to SCRIPT_NAME */
    bool honour_stdin;                    /* keep stdin; else it is /dev/null, as in uWSGI */
    bool disable_write_exception;         /* write() to a gone client returns instead of raising */
    bool ignore_write_errors;             /* no log line for a write to a gone client */
    unsigned long long limit_post;        /* larger bodies get a 413 (0: no limit) */
    unsigned long long post_buffering;    /* larger bodies are spooled to a file (0: never) */
    unsigned long post_buffering_bufsize; /* the spooling's read size */
    const char *add_headers[GY_MAX_LIST]; /* --add-header "Name: value", every response */
    int nadd_headers;
    struct gy_route_conf {
        enum gy_route_kind {
            GY_ROUTE_REGEX,  /* --route*: "REGEX ACTION" on the var `subject` */
            GY_ROUTE_RUN,    /* --route-run: "ACTION", always */
            GY_ROUTE_IF,     /* --route-if: "COND:ARGS ACTION" */
            GY_ROUTE_IF_NOT, /* --route-if-not */
        } kind;
        const char *subject;
        const char *spec; /* as given (route.c parses it) */
    } routes[GY_MAX_LIST];
    int nroutes;
    double py_autoreload; /* --py-autoreload N: seconds between checks of the modules (0: off) */
    const char *pymodule_aliases[GY_MAX_LIST]; /* --pymodule-alias NAME=MODULE_OR_FILE */
    int npymodule_aliases;
    const char *imports[GY_MAX_LIST]; /* --import MODULE: imported before the app */
    int nimports;

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
    bool memory_report;       /* vsz/rss in every request line */
    bool log_x_forwarded_for; /* %(addr) from X-Forwarded-For */
    bool log_4xx, log_5xx;    /* with disable_logging: log these requests still */
    bool log_zero, log_ioerror;
    unsigned long log_slow;         /* ... those slower than this many ms (0: no) */
    unsigned long long log_big;     /* ... those whose body has this many bytes (0: no) */
    bool log_micros;                /* the default line in micros, not msecs */
    bool logdate;                   /* prefix every server message with the date */
    const char *log_strftime;       /* ... formatted so (NULL: ctime's form) */
    bool logformat_strftime;        /* %(ftime) with log_strftime */
    unsigned long long log_maxsize; /* rotate the --logto file past this size (0: never) */
    const char *log_backupname;     /* ... to this name (NULL: FILE.<unix time>) */
    bool log_reopen;                /* reopen --logto once it was renamed or removed */
    bool log_truncate;              /* empty the --logto file at start */
    const char *touch_logrotate[GY_MAX_LIST]; /* rotate --logto when one's mtime changes */
    int ntouch_logrotate;
    const char *touch_logreopen[GY_MAX_LIST]; /* reopen --logto when one's mtime changes */
    int ntouch_logreopen;
    int logfile_chmod;                /* mode of the --logto file (0: umask's) */
    bool logfile_chown;               /* chown the --logto file to --uid/--gid */
    const char *loggers[GY_MAX_LIST]; /* --logger [ID ]PLUGIN[:ARGS] */
    int nloggers;
    const char *req_loggers[GY_MAX_LIST]; /* --req-logger: request lines only */
    int nreq_loggers;
    const char *log_routes[GY_MAX_LIST]; /* --log-route ID REGEX */
    int nlog_routes;
    const char *log_req_routes[GY_MAX_LIST];
    int nlog_req_routes;
    const char *log_drains[GY_MAX_LIST]; /* --log-drain REGEX: lines not logged */
    int nlog_drains;
    const char *log_filters[GY_MAX_LIST]; /* --log-filter REGEX: the only lines logged */
    int nlog_filters;
    const char *log_encoders[GY_MAX_LIST]; /* --log-encoder NAME[:ID] ARGS */
    int nlog_encoders;
    const char *log_req_encoders[GY_MAX_LIST];
    int nlog_req_encoders;
    bool harakiri_verbose; /* the stuck worker's syscall and wchan on a harakiri kill */
    /* uWSGI signals' options (signals.h): the master owns them */
    const char *timers[GY_MAX_LIST]; /* --timer "SIG SECS" */
    int ntimers;
    const char *rbtimers[GY_MAX_LIST]; /* --rbtimer "SIG SECS" */
    int nrbtimers;
    struct {
        const char *spec; /* "MIN HOUR DAY MON WEEK CMD", or --cron2's "key=val,... CMD" */
        bool unique;      /* --unique-cron: not again while the last run lives */
        bool cron2;
    } crons[GY_MAX_LIST];
    int ncrons;
    const char *fs_signals[GY_MAX_LIST]; /* --fs-signal/--touch-signal "FILE SIG" */
    int nfs_signals;
};

/* What options_set returns for a name that is no option of gyre's. */
#define GY_UNKNOWN_OPTION "unknown option"

/* Set one option by name, as the command line, an .ini file or the environment give it: value
 * is NULL for a flag given bare. Returns NULL, or what is wrong (a static string). */
const char *options_set(struct gy_config *cfg, const char *name, const char *value);

/* ini.c: where options come from. Every source adds entries to one ordered list; nothing is
 * applied while they are read (uWSGI's model: a %(name) may name a later key, `strict` anywhere
 * applies to all). options.c applies them (options_apply). */
enum config_origin {
    CONFIG_FROM_FILE,      /* an .ini file */
    CONFIG_FROM_CLI,       /* the command line */
    CONFIG_FROM_UWSGI_ENV, /* UWSGI_<OPTION> */
    CONFIG_FROM_GYRE_ENV,  /* GYRE_<OPTION>: gyre's own prefix, never an error */
};

struct config_entry {
    const char *key;
    const char *value; /* NULL: a flag given bare */
    const char *where; /* what a message names: "FILE:LINE", "--opt" or "UWSGI_OPT" */
    enum config_origin origin;
    bool placeholder_only; /* set-placeholder: never an option */
    bool expanded;         /* its %(...) $(...) @(...) are replaced */
    bool applied;          /* options_apply has seen it */
    struct config_entry *next;
};

void config_reset(void);
/* One key = value (value NULL for a bare flag), through the configuration logic (if-*, for-*),
 * "ini" and set-placeholder. Returns NULL or a message that names where. */
const char *config_add(const char *key, const char *value, const char *where,
                       enum config_origin origin);
/* The [uwsgi] and [gyre] sections of an .ini file (FILE, FILE:SECTION or :SECTION); from is
 * where it was named (for messages), or NULL. */
const char *config_add_file(const char *path, const char *from);
/* Every UWSGI_<OPTION>, then every GYRE_<OPTION> variable of the environment. */
const char *config_add_env(void);
/* Replace the %(name), %(a + b), $(VAR) and @(FILE) references of the entries added since. */
const char *config_expand(void);
struct config_entry *config_entries(void);
/* Is NAME (python3, tornado_python3_plugin.so...) a uWSGI plugin gyre has built in? */
bool config_plugin_is_embedded(const char *name);

/* options.c: apply the entries not applied yet, in order (a `strict` entry first). Returns NULL,
 * or one line saying what is wrong and *status, the exit status it calls for (1: refused by
 * strict mode, as uWSGI; 2: a bad value). Warns once (stderr) for each uWSGI option gyre does
 * not implement. */
const char *options_apply(struct gy_config *cfg, int *status);

/* Fill cfg from argv. Prints usage and exits 0 for --help/--version; prints one line to stderr
 * and exits 2 for an unknown or malformed option. */
void options_parse(struct gy_config *cfg, int argc, char **argv);

#endif
