/*
 * A worker: the process that serves requests, alone in the foreground or forked by a master.
 *
 * Bind the sockets (unless the master did), drop privileges, embed CPython, create the IOLoop
 * (before the app is imported, so that the app's module-level IOLoop.current()/instance() is
 * the loop gyre runs), load the app, run the loop. SIGTERM stops accepting and gives
 * in-flight requests --worker-reload-mercy seconds, SIGHUP (from a master reloading)
 * --reload-mercy seconds; a second signal stops at once. SIGINT (Ctrl-C) and SIGQUIT stop at
 * once, as in uWSGI and gunicorn: the requests in flight are cut, each one logged.
 *
 * The hooks of a worker's phases (hooks.h) run here: post-fork, pre-app, post-app, accepting;
 * as-root, as-user and as-user-atexit too when there is no master. A failed hook ends the
 * instance: the worker tells the master (MSG_FATAL), or the only process exits 1.
 *
 * Depends on: cache.c, conn.c, cores.c, engine.c, hooks.c, input.c, listen.c, locks.c, log.c,
 *     metrics.c, proctitle.c, pymodule.c, scoreboard.c, server.c, stats.c, uwsgi_signals.c,
 *     uwsgimodule.c, websocket.c, wsgi.c (server/README)
 */
#include "cache.h"
#include "daemons.h"
#include "engine.h"
#include "hooks.h"
#include "log.h"
#include "metrics.h"
#include "conn.h"
#include "core.h"
#include "listen.h"
#include "ws_server.h"
#include "process.h"
#include "proto.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

static int signal_pipe[2] = { -1, -1 };
static double stop_deadline, stop_grace;
static double started_at; /* engine_now() at the start: --min-worker-lifetime */
static bool retiring;

/* SIGINT and SIGQUIT are carried out by the loop (stop_now), on its next turn. A loop that
 * does not turn (an app spinning on the CPU, or stuck in a blocking call) cannot: the process
 * then ends this many seconds after the signal (on_stop_now_overdue). */
#define STOP_NOW_LIMIT 1

static void on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t n = write(signal_pipe[1], &b, 1);
    (void)n;
    if (signo == SIGINT || signo == SIGQUIT)
        alarm(STOP_NOW_LIMIT);
    errno = saved;
}

/* A signal handler: only async-signal-safe calls (write, unlink, _exit). */
static void on_stop_now_overdue(int signo)
{
    (void)signo;
    static const char msg[] = "[gyre] the loop did not stop within 1 s of SIGINT/SIGQUIT "
                              "(the app holds it): exiting\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)n;
    /* What listen_close_all and main would have removed on the way out. */
    for (int i = 0; i < S.nlisteners; i++)
        if (S.listeners[i].unlink_on_exit)
            unlink(S.listeners[i].name);
    if (!S.link && S.cfg && S.cfg->pidfile)
        unlink(S.cfg->pidfile);
    _exit(1);
}

#define PARAM(c, lit) param((c), "" lit, sizeof(lit) - 1)
static struct gy_slice param(const struct gy_conn *c, const char *name, size_t len)
{
    for (uint32_t i = 0; i < c->nparams; i++)
        if (gy_slice_eq(c->params[i].name, name, len))
            return c->params[i].value;
    return (struct gy_slice){ "?", 1 };
}

static void log_cut(const char *why, const struct gy_conn *c, const char *where, double now)
{
    struct gy_slice method = PARAM(c, "REQUEST_METHOD"), uri = PARAM(c, "REQUEST_URI");
    log_msg("%s: cutting %.*s %.*s (%s, %.1f s in flight)", why, (int)method.len, method.ptr,
            (int)uri.len, uri.ptr, where, now - c->started);
}

/* Log every request that stopping now cuts: those in a core, and those queued for one. */
static int log_cut_requests(const char *why)
{
    double now = engine_now();
    int n = 0;
    char where[32];
    for (int i = 0; i < S.ncores; i++) {
        const struct gy_core *core = &S.cores[i];
        if (core->busy && core->conn) {
            snprintf(where, sizeof(where), "core %d", core->id);
            log_cut(why, core->conn, where, now);
            n++;
        }
    }
    for (struct gy_link *l = S.pending.next; l != &S.pending; l = l->next, n++)
        log_cut(why, link_entry(l, struct gy_conn, queue_link), "queued", now);
    return n;
}

/* Stop now: what is in flight is cut (the connections close with the process). */
static void stop_now(const char *why)
{
    bool again = S.stopping;
    if (!again && !S.link)
        sd_notify(0, "STOPPING=1");
    S.stopping = true;
    listen_close_all();
    int n = log_cut_requests(why);
    log_msg("%s%s: stopping now, %d request%s cut", why, again ? " again" : "", n,
            n == 1 ? "" : "s");
    engine_stop();
}

static void stop_check(void *ctx)
{
    (void)ctx;
    /* A thread core stuck past --harakiri-grace will not end its request: not waited for. */
    if (S.nconns <= S.stuck_cores) {
        engine_stop();
        return;
    }
    if (engine_now() >= stop_deadline) {
        log_msg("stopping with %d connection(s) still open after %g s of grace", S.nconns,
                stop_grace);
        engine_stop();
        return;
    }
    PyObject *t = engine_call_later(0.05, stop_check, NULL);
    if (!t)
        PyErr_Print();
    Py_XDECREF(t);
}

static void graceful_stop(const char *why, double grace)
{
    S.stopping = true;
    if (!S.link)
        sd_notify(0, "STOPPING=1");
    listen_close_all();
    conn_drop_idle();
    websocket_server_stopping(); /* idle WebSockets close now (1001), not at the grace's end */
    log_msg("%s: graceful stop, %d connection(s) in flight, up to %g s", why, S.nconns, grace);
    stop_grace = grace;
    stop_deadline = engine_now() + grace;
    stop_check(NULL);
}

static void on_signal_pipe(void *ctx, int fd, int events)
{
    (void)ctx;
    (void)events;
    unsigned char sigs[16];
    ssize_t n = read(fd, sigs, sizeof(sigs));
    for (ssize_t i = 0; i < n; i++) {
        int sig = sigs[i];
        if (sig == SIGINT || sig == SIGQUIT) {
            stop_now(sig == SIGINT ? "SIGINT" : "SIGQUIT");
            return;
        }
        /* Under a master, a SIGTERM to the process group (systemd's stop) reaches the worker
         * and then the master's own SIGTERM: both mean "graceful". */
        if (S.link && S.stopping)
            continue;
        if (S.stopping) {
            stop_now(sig == SIGTERM ? "SIGTERM" : "SIGHUP");
            return;
        }
        if (sig == SIGHUP && !S.link) {
            log_msg("SIGHUP: a graceful reload needs --master; ignored");
            continue;
        }
        graceful_stop(strsignal(sig), worker_mercy(S.cfg, sig == SIGHUP));
    }
}

static int install_signals(void)
{
    if (pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGALRM, on_stop_now_overdue);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an EPIPE, not a death */
    return 0;
}

static int init_python(void)
{
    if (PyImport_AppendInittab("gyre", PyInit_gyre) < 0 ||
        PyImport_AppendInittab("uwsgi", PyInit_uwsgi) < 0)
        return -1;
    PyConfig pc;
    PyConfig_InitPythonConfig(&pc);
    pc.install_signal_handlers = 0; /* signals are gyre's: see install_signals */
    pc.parse_argv = 0;
    /* Debian's interpreter: sys.executable, and the stdlib and dist-packages it finds. */
    PyStatus st = PyConfig_SetString(&pc, &pc.program_name, L"/usr/bin/python3");
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&pc);
    PyConfig_Clear(&pc);
    if (PyStatus_Exception(st)) {
        log_msg("cannot start Python: %s", st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }
    /* sys.path ('.', --pythonpath, --home) is pymodule_init's (boot.py's configure). */
    return 0;
}

static const char *version_of(const char *module, const char *attr, char *buf, size_t n)
{
    PyObject *m = PyImport_ImportModule(module);
    PyObject *v = m ? PyObject_GetAttrString(m, attr) : NULL;
    PyObject *s = v ? PyObject_Str(v) : NULL;
    const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(buf, n, "%s", u ? u : "?");
    PyErr_Clear();
    Py_XDECREF(s);
    Py_XDECREF(v);
    Py_XDECREF(m);
    return buf;
}

static void log_banner(void)
{
    char tornado[32], greenlet[32], py[32], socks[512];
    snprintf(py, sizeof(py), "%s", Py_GetVersion());
    py[strcspn(py, " ")] = '\0';
    size_t len = 0;
    socks[0] = '\0';
    for (int i = 0; i < S.nlisteners && len < sizeof(socks); i++)
        len += (size_t)snprintf(socks + len, sizeof(socks) - len, "%s%s://%s%s", i ? ", " : "",
                                S.listeners[i].proto->name, S.listeners[i].name,
                                S.listeners[i].inherited ? " (from systemd)" : "");
    char who[32] = "";
    if (S.link)
        snprintf(who, sizeof(who), " (worker %d)", S.link->id);
    char pool[48] = "";
    if (S.cfg->threads && !S.cfg->thread_cores)
        snprintf(pool, sizeof(pool), " and a pool of %d thread%s", S.cfg->threads,
                 S.cfg->threads == 1 ? "" : "s");
    log_msg("gyre %s (Python %s, Tornado %s, greenlet %s) pid %d%s: %d %score%s%s on %s",
            GYRE_VERSION, py, version_of("tornado", "version", tornado, sizeof(tornado)),
            version_of("greenlet", "__version__", greenlet, sizeof(greenlet)), (int)S.pid, who,
            S.ncores, S.cfg->thread_cores ? "thread " : "", S.ncores == 1 ? "" : "s", pool, socks);
}

static PyObject *load_app(const struct gy_config *cfg)
{
    PyObject *boot = PyImport_ImportModule("_gyre_boot");
    PyObject *app = boot ? PyObject_CallMethod(boot, "load_app", "zzs", cfg->wsgi_file, cfg->module,
                                               cfg->callable)
                         : NULL;
    Py_XDECREF(boot);
    if (!app) {
        log_msg("cannot load the app from %s:", cfg->wsgi_file ? cfg->wsgi_file : cfg->module);
        PyErr_Print();
    }
    return app;
}

void log_root_warning(const struct gy_config *cfg)
{
    if (geteuid() == 0 && !cfg->uid)
        log_msg("*** WARNING: running as root without --uid: the app can do anything root "
                "can. Give --uid/--gid (e.g. --uid www-data) to drop privileges. ***");
}

/* --gid as a group name or number; -1 with a log line if it is neither. */
static int parse_gid(const char *spec, gid_t *gid)
{
    struct group *g = getgrnam(spec);
    char *end;
    long n = strtol(spec, &end, 10);
    if (g)
        *gid = g->gr_gid;
    else if (*spec && !*end && n >= 0)
        *gid = (gid_t)n;
    else {
        log_msg("--gid %s: no such group", spec);
        return -1;
    }
    return 0;
}

/* --uid as a user name or number: the uid, and the passwd entry when there is one (NULL for a
 * bare number no user has). -1 with a log line if it is neither. */
static int parse_uid(const char *spec, uid_t *uid, struct passwd **pw)
{
    char *end;
    long n = strtol(spec, &end, 10);
    bool numeric = *spec && !*end && n >= 0;
    *pw = getpwnam(spec);
    if (!*pw && numeric)
        *pw = getpwuid((uid_t)n);
    if (*pw)
        *uid = (*pw)->pw_uid;
    else if (numeric)
        *uid = (uid_t)n;
    else {
        log_msg("--uid %s: no such user", spec);
        return -1;
    }
    return 0;
}

/* After dropping root, no trace of group 0 may stay: not as the real, effective or saved gid,
 * nor among the supplementary groups (root's, inherited, would give the app root's files). */
static int check_no_root_group(void)
{
    gid_t rgid, egid, sgid;
    int n = getgroups(0, NULL);
    gid_t *groups = n > 0 ? calloc((size_t)n, sizeof(*groups)) : NULL;
    if (getresgid(&rgid, &egid, &sgid) < 0 || n < 0 || (n > 0 && !groups) ||
        (n = getgroups(n, groups)) < 0) {
        log_errno("getresgid/getgroups");
        free(groups);
        return -1;
    }
    bool root_group = rgid == 0 || egid == 0 || sgid == 0;
    for (int i = 0; i < n && !root_group; i++)
        root_group = groups[i] == 0;
    free(groups);
    if (root_group) {
        log_msg("refusing to run: asked to drop root, the worker still has group 0 (root) "
                "among its groups; give --gid a group other than root");
        return -1;
    }
    return 0;
}

int drop_privileges(const struct gy_config *cfg)
{
    if (!cfg->uid && !cfg->gid)
        return 0;
    gid_t gid = (gid_t)-1;
    uid_t uid = (uid_t)-1;
    struct passwd *pw = NULL;
    if (cfg->gid && parse_gid(cfg->gid, &gid) < 0)
        return -1;
    if (cfg->uid && parse_uid(cfg->uid, &uid, &pw) < 0)
        return -1;
    /* Every --uid drops the groups too: to --gid, else the user's group, else (a uid with no
     * passwd entry) the group of the same number, as uWSGI's setgid follows setuid. Keeping
     * root's gid 0 would leave the app every file root's group can touch. */
    if (gid == (gid_t)-1 && cfg->uid)
        gid = pw ? pw->pw_gid : (gid_t)uid;
    bool was_root = geteuid() == 0;
    /* Group first: once the uid is dropped, changing groups is no longer allowed. A named
     * user gets its supplementary groups (initgroups); anyone else none. */
    if ((pw ? initgroups(pw->pw_name, gid) : setgroups(0, NULL)) < 0 ||
        setresgid(gid, gid, gid) < 0) {
        log_errno("setgid(%d)", (int)gid);
        return -1;
    }
    if (uid != (uid_t)-1 && setresuid(uid, uid, uid) < 0) {
        log_errno("setuid(%d)", (int)uid);
        return -1;
    }
    if (was_root && uid != (uid_t)-1 && uid != 0)
        return check_no_root_group();
    return 0;
}

static void send_to_master(int type)
{
    if (!S.link)
        return;
    struct gy_msg m = { .type = type, .rec = S.link->rec, .pid = S.pid };
    ssize_t n = write(S.link->notify_fd, &m, sizeof(m));
    (void)n;
}

void proc_mem_mib(pid_t pid, unsigned long *as, unsigned long *rss)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            size = resident = 0;
        fclose(f);
    }
    unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
    *as = size * page / (1024 * 1024);
    *rss = resident * page / (1024 * 1024);
}

/* --max-requests, --reload-on-rss, --reload-on-as: why this worker should be replaced, or
 * NULL; none before --min-worker-lifetime. */
static const char *retire_reason(char *buf, size_t n)
{
    const struct gy_config *cfg = S.cfg;
    if (S.stuck_cores > 0) {
        snprintf(buf, n, "%d thread core%s stuck past --harakiri-grace", S.stuck_cores,
                 S.stuck_cores == 1 ? "" : "s");
        return buf;
    }
    if (cfg->min_worker_lifetime > 0 && engine_now() - started_at < cfg->min_worker_lifetime)
        return NULL;
    unsigned long as = 0, rss = 0;
    if (cfg->reload_on_rss || cfg->reload_on_as)
        proc_mem_mib(getpid(), &as, &rss);
    if (cfg->max_requests && S.requests >= cfg->max_requests)
        snprintf(buf, n, "%llu requests served (--max-requests %lu)",
                 (unsigned long long)S.requests, cfg->max_requests);
    else if (cfg->reload_on_rss && rss >= cfg->reload_on_rss)
        snprintf(buf, n, "RSS %lu MiB (--reload-on-rss %lu)", rss, cfg->reload_on_rss);
    else if (cfg->reload_on_as && as >= cfg->reload_on_as)
        snprintf(buf, n, "address space %lu MiB (--reload-on-as %lu)", as, cfg->reload_on_as);
    else
        return NULL;
    return buf;
}

/* --stats: once a second, what the requests hold in memory, for the stats JSON's "memory". */
static void account_memory(void *ctx)
{
    (void)ctx;
    cores_account_memory(&S.slot->mem);
    PyObject *t = engine_call_later(1.0, account_memory, NULL);
    if (!t)
        PyErr_Print();
    Py_XDECREF(t);
}

/* Under a master: the heartbeat it watches (--harakiri), the counters, and retiring. */
static void heartbeat(void *ctx)
{
    (void)ctx;
    S.slot->heartbeat = engine_now();
    S.slot->busy = S.busy;
    char why[128];
    if (!retiring && !S.stopping && retire_reason(why, sizeof(why))) {
        log_msg("worker %d: %s: asking to be replaced", S.link->id, why);
        retiring = true;
        send_to_master(MSG_RETIRE);
    }
    PyObject *t = engine_call_later(0.5, heartbeat, NULL);
    if (!t)
        PyErr_Print();
    Py_XDECREF(t);
}

static void flush_python(void)
{
    const char *streams[] = { "stdout", "stderr" };
    for (int i = 0; i < 2; i++) {
        PyObject *f = PySys_GetObject(streams[i]);
        PyObject *r = f ? PyObject_CallMethod(f, "flush", NULL) : NULL;
        Py_XDECREF(r);
        PyErr_Clear();
    }
    fflush(NULL);
}

/* A phase's hooks; a failure is the instance's end (the master's, told by MSG_FATAL). */
static int run_hooks(enum hook_phase phase)
{
    if (hooks_run(S.cfg, phase) == 0)
        return 0;
    send_to_master(MSG_FATAL);
    return -1;
}

/* --no-orphans: a master that dies (even by SIGKILL) takes this worker with it; SIGTERM, so
 * that it finishes what it serves. Set after the privileges are dropped, which clear it. */
static int follow_master(const struct gy_worker_link *link)
{
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) {
        log_errno("--no-orphans: prctl");
        return -1;
    }
    if (getppid() != link->master) { /* it died before the prctl */
        log_msg("--no-orphans: the master (pid %d) is gone", (int)link->master);
        return -1;
    }
    return 0;
}

/* uWSGI's order: accepting, accepting-once, accepting1, accepting1-once. The only process is
 * worker 1, and its first. */
static int accepting_hooks(const struct gy_worker_link *link)
{
    bool first = !link || link->first, one = !link || link->id == 1;
    if (run_hooks(HOOK_ACCEPTING) < 0 || (first && run_hooks(HOOK_ACCEPTING_ONCE) < 0) ||
        (one && run_hooks(HOOK_ACCEPTING1) < 0) ||
        (one && first && run_hooks(HOOK_ACCEPTING1_ONCE) < 0))
        return -1;
    return 0;
}

/* Everything before the loop runs: 0, or -1 with a log line (what it opened is closed by
 * worker_run's one way out). */
static int worker_start(struct gy_config *cfg, const struct gy_worker_link *link)
{
    started_at = engine_now();
    if (link && run_hooks(HOOK_POST_FORK) < 0)
        return -1;
    if (!link)
        proctitle_for(cfg, 1);
    if (link) {
        /* The master bound the sockets and removes their files: a worker only closes its fds. */
        for (int i = 0; i < S.nlisteners; i++)
            S.listeners[i].unlink_on_exit = false;
        S.slot->pid = S.pid;
        S.slot->heartbeat = engine_now();
    } else {
        if (scoreboard_create(&S.board, 1, cfg->cores) < 0 ||
            locks_create(&S.locks, cfg->locks) < 0) {
            log_errno("shared memory");
            return -1;
        }
        if (caches_create(cfg) < 0 || metrics_setup(cfg) < 0)
            return -1;
        S.slot = scoreboard_slot(&S.board, 0);
        S.slot->id = 1;
        S.slot->pid = S.pid;
        S.slot->started = (double)time(NULL);
        if (listen_open_all() < 0 || stats_open() < 0)
            return -1;
    }
    if (!link && (run_hooks(HOOK_PRE_JAIL) < 0 || run_hooks(HOOK_IN_JAIL) < 0 ||
                  run_hooks(HOOK_AS_ROOT) < 0))
        return -1;
    if (drop_privileges(cfg) < 0)
        return -1;
    if (!link && run_hooks(HOOK_AS_USER) < 0)
        return -1;
    if (link && cfg->no_orphans && follow_master(link) < 0)
        return -1;
    if (cfg->chdir && chdir(cfg->chdir) < 0) {
        log_errno("chdir(%s)", cfg->chdir);
        return -1;
    }
    for (int i = 0; i < cfg->nenv; i++) {
        char *kv = strdup(cfg->env[i]);
        char *eq = strchr(kv, '=');
        *eq = '\0';
        setenv(kv, eq + 1, 1);
        free(kv);
    }
    if (install_signals() < 0) {
        log_errno("signal pipe");
        return -1;
    }
    if (init_python() < 0 || pymodule_init() < 0 || engine_init() < 0 || cores_init(cfg) < 0 ||
        wsgi_init() < 0 || input_init() < 0) {
        log_msg("start-up failed");
        return -1;
    }
    log_banner();
    if (!link)
        log_root_warning(cfg);
    if (run_hooks(HOOK_PRE_APP) < 0)
        return -1;
    PyObject *app = load_app(cfg);
    if (!app)
        return -1;
    wsgi_set_app(app);
    uwsgimodule_post_fork();
    if (run_hooks(HOOK_POST_APP) < 0)
        return -1;
    if (engine_watch(signal_pipe[0], EV_READ, on_signal_pipe, NULL) < 0 ||
        uwsgi_signals_start() < 0)
        return -1;
    if (!link && stats_start() < 0)
        return -1;
    listen_limits_init(); /* after engine_init raised the soft fd limit to the hard one */
    if (accepting_hooks(link) < 0)
        return -1;
    listen_update();
    if (cfg->stats)
        account_memory(NULL);
    if (link) {
        heartbeat(NULL);
        send_to_master(MSG_READY);
    } else {
        sd_notifyf(0, "READY=1\nSTATUS=serving with %d cores\nMAINPID=%d", S.ncores, (int)S.pid);
    }
    return 0;
}

int worker_run(struct gy_config *cfg, const struct gy_worker_link *link)
{
    S.cfg = cfg;
    S.pid = getpid();
    S.link = link;
    link_init(&S.pending);
    link_init(&S.free_conns);
    log_init();

    bool started = worker_start(cfg, link) == 0;
    int rc = started ? engine_run() : -1;
    /* The one way out, started or not. */
    listen_close_all();
    if (!link)
        stats_close(true);
    if (started) {
        log_msg("stopped after %llu request%s", (unsigned long long)S.requests,
                S.requests == 1 ? "" : "s");
        /* No Py_Finalize: suspended cores may hold app frames that would run again while the
         * interpreter is torn down. Flush what Python buffered and leave. */
        flush_python();
    }
    if (!link && hooks_run(cfg, HOOK_AS_USER_ATEXIT) < 0)
        rc = -1;
    return rc < 0 ? 1 : 0;
}
