/*
 * The master: binds every socket, forks --processes workers, and keeps them running.
 *
 * It embeds no Python: each worker creates its own interpreter, IOLoop and app after the fork
 * (uWSGI's --lazy-apps, the only safe choice when app modules touch the loop at import time).
 *
 *   a worker dies         log its status, respawn it (with a growing delay if it dies at once)
 *   SIGHUP, --touch-reload  graceful reload: a new worker per id; once it is accepting, the old
 *                         one stops accepting, finishes its requests (up to --reload-mercy) and
 *                         exits. The sockets never close, so no request fails.
 *   a worker retires      --max-requests / --reload-on-rss: the same, for that worker alone
 *   SIGTERM               graceful stop of every worker (up to --worker-reload-mercy), exit 0
 *   SIGINT, SIGQUIT       immediate stop (uWSGI's and gunicorn's Ctrl-C): every worker is told
 *                         to stop now (SIGQUIT: in-flight requests cut and logged), and killed
 *                         if still there a second later
 *   --harakiri            a worker whose loop has not ticked for that long is killed
 *   --max-worker-lifetime a worker that ran that long is replaced, as on a reload
 *   --fs-reload           inotify: a change of the path is a graceful reload
 *   --cheaper             adaptive workers: ids 1..M.wanted run, between --cheaper and
 *                         --processes, moved by uWSGI's "spare" algorithm (cheaper_tick)
 *   a hook failed         (a worker's MSG_FATAL) the instance ends, as uWSGI's does
 *   uWSGI signals         signals.c: the workers' requests, timers, cron, file monitors; a
 *                         signal goes to the process that serves its worker id now
 *
 * The master also runs the hooks of its phases (hooks.h) and the attached daemons (daemons.c).
 *
 * One poll() loop: the signal pipe, the workers' message pipe, inotify, and a 100 ms tick for
 * the clocks (deadlines, heartbeats, file times).
 *
 * Depends on: cache.c, daemons.c, hooks.c, listen.c, locks.c, log.c, metrics.c, proctitle.c,
 *     scoreboard.c, server.c, signals.c, stats.c, worker.c (server/README)
 */
#include "cache.h"
#include "daemons.h"
#include "hooks.h"
#include "log.h"
#include "metrics.h"
#include "listen.h"
#include "process.h"
#include "server.h"
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

enum rec_state { REC_FREE, REC_STARTING, REC_RUNNING, REC_STOPPING };
enum master_action { ACT_NONE, ACT_RELOAD, ACT_GRACEFUL_STOP, ACT_STOP_NOW };

/* One worker process, as the master tracks it. During a reload a worker id has two records:
 * the old process (STOPPING) and its replacement. */
struct worker_rec {
    enum rec_state state;
    int id;
    pid_t pid;
    unsigned gen; /* reload generation it was started in */
    double started;
    double deadline;       /* STOPPING: SIGKILL after this */
    bool replaced;         /* a newer process for this id has been started */
    bool want_replacement; /* ... should be: retried while no record is free */
};

static struct {
    struct gy_config *cfg;
    struct worker_rec *recs;
    int nrecs;
    unsigned gen;
    int sigpipe[2], msgpipe[2];
    bool stopping;
    bool notify_ready; /* tell systemd READY=1 once every worker runs */
    double stop_deadline;
    double next_spawn[1 + 1024]; /* per worker id: not before (respawn backoff) */
    double backoff[1 + 1024];
    uint64_t respawns[1 + 1024]; /* per worker id, for stats */
    bool spawned[1 + 1024];      /* since the start or the last reload: --hook-accepting-once */
    time_t touch_mtime[GY_MAX_LIST];
    pid_t pid;
    int exit_status; /* 1 once a worker's hook failed */
    int wanted;      /* worker ids 1..wanted run (--processes, or fewer with --cheaper) */
    struct {
        double next_cycle; /* the algorithm runs once a second, as uWSGI's master cycle */
        unsigned overload; /* cycles with every worker busy (less one per cycle with a free one) */
        unsigned idle;     /* cycles without overload */
        unsigned cycles_limit; /* --cheaper-overload, in cycles */
    } cheap;
    int inotify_fd;
    enum master_action sig_action[NSIG]; /* unix_signal hooks; ACT_NONE: the default */
    int fifo_fd;   /* --master-fifo: the one being read (uWSGI's 0-9 switch between them) */
    int fifo_slot; /* ... its index */
    int fs_wd[GY_MAX_LIST];       /* -1: to be (re)added, once the path exists */
    bool fs_missing[GY_MAX_LIST]; /* a watch could not be added: the path is not there */
    double next_mem_check;        /* --evil-reload-on-*: once a second */
} M;

static void stop_all(int sig);

/* signals.c's question: which record serves worker id now. The newest process of the id that
 * runs (during a reload the replacement, once it accepts), else one that is starting: what it
 * is sent waits in its socket until its app is loaded. */
static int rec_of_id(int id)
{
    int starting = -1, running = -1;
    for (int i = 0; i < M.nrecs; i++) {
        const struct worker_rec *w = &M.recs[i];
        if (w->id != id)
            continue;
        if (w->state == REC_RUNNING && (running < 0 || w->gen > M.recs[running].gen))
            running = i;
        else if (w->state == REC_STARTING)
            starting = i;
    }
    return running >= 0 ? running : starting;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t n = write(M.sigpipe[1], &b, 1);
    (void)n;
    errno = saved;
}

static int free_rec(void)
{
    for (int i = 0; i < M.nrecs; i++)
        if (M.recs[i].state == REC_FREE)
            return i;
    return -1;
}

static bool spawn(int id)
{
    int r = free_rec();
    if (r < 0) {
        log_msg("master: no room to start worker %d yet", id);
        return false;
    }
    struct worker_rec *w = &M.recs[r];
    struct sb_worker *slot = scoreboard_slot(&S.board, r);
    uint64_t respawns = M.respawns[id];
    memset((void *)slot, 0, S.board.stride);
    slot->id = id;
    slot->respawns = respawns;
    slot->heartbeat = now(); /* counts from the fork until the worker's own first tick */
    slot->started = (double)time(NULL);
    /* Signals wait until the child has its own handlers: one that came to it in between
     * would run the master's handler there, and reach the master's pipe instead (a SIGHUP
     * meant to stop a starting worker would reload the master, and the worker live on). */
    sigset_t all, saved;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &saved);
    signals_spawning(r, id);
    pid_t pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &saved, NULL);
        log_errno("master: fork");
        return false;
    }
    if (pid == 0) {
        /* The worker: the master's signal handling and pipes are not its business. */
        signal(SIGHUP, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        for (int sig = 1; sig < NSIG; sig++)
            if (M.sig_action[sig])
                signal(sig, SIG_DFL);
        sigprocmask(SIG_SETMASK, &saved, NULL);
        hooks_set_unix_signal(NULL); /* a worker's unix_signal hooks change nothing */
        close(M.sigpipe[0]);
        close(M.sigpipe[1]);
        close(M.msgpipe[0]);
        stats_close(false);
        if (M.inotify_fd >= 0)
            close(M.inotify_fd);
        unsetenv("NOTIFY_SOCKET"); /* the master speaks to systemd */
        proctitle_for(M.cfg, id);
        signals_child(r, id);
        struct gy_worker_link link = {
            .id = id,
            .rec = r,
            .notify_fd = M.msgpipe[1],
            .first = !M.spawned[id],
            .master = M.pid,
        };
        S.slot = slot;
        _exit(worker_run(M.cfg, &link));
    }
    sigprocmask(SIG_SETMASK, &saved, NULL);
    *w = (struct worker_rec){
        .state = REC_STARTING, .id = id, .pid = pid, .gen = M.gen, .started = now()
    };
    M.spawned[id] = true;
    slot->pid = pid;
    log_msg("master: started worker %d (pid %d)", id, (int)pid);
    return true;
}

/* Ask a worker to finish its requests and exit: SIGHUP gives it --reload-mercy, SIGTERM
 * --worker-reload-mercy; the master kills it a second after that. */
static void stop_worker(struct worker_rec *w, int sig)
{
    double grace = worker_mercy(M.cfg, sig == SIGHUP);
    kill(w->pid, sig);
    w->state = REC_STOPPING;
    w->deadline = now() + grace + 1.0;
}

/* A newer worker for id w->id is accepting: the older ones can go. */
static void retire_older(const struct worker_rec *fresh)
{
    for (int i = 0; i < M.nrecs; i++) {
        struct worker_rec *w = &M.recs[i];
        if (w != fresh && w->id == fresh->id && w->pid != fresh->pid &&
            (w->state == REC_RUNNING || w->state == REC_STARTING) && w->replaced) {
            log_msg("master: worker %d (pid %d) replaced by pid %d: finishing its requests", w->id,
                    (int)w->pid, (int)fresh->pid);
            stop_worker(w, SIGHUP);
        }
    }
}

/* Start the replacements asked for; what finds no free record waits for the next turn. */
static void replace_wanted(void)
{
    for (int i = 0; i < M.nrecs && free_rec() >= 0; i++) {
        struct worker_rec *w = &M.recs[i];
        if (w->want_replacement && !w->replaced && w->state != REC_FREE &&
            w->state != REC_STOPPING && spawn(w->id)) {
            w->replaced = true;
            w->want_replacement = false;
        }
    }
}

/* Start a replacement for every current worker (or one id), the old ones stop once it runs. */
static void reload(int only_id, const char *why)
{
    M.gen++;
    log_msg("master: graceful reload (%s)", why);
    if (only_id == 0) /* uWSGI's reload re-runs the "once" hooks: its master starts again */
        memset(M.spawned, 0, sizeof(M.spawned));
    sd_notify(0, "RELOADING=1\nSTATUS=reloading");
    M.notify_ready = true;
    for (int i = 0; i < M.nrecs; i++) {
        struct worker_rec *w = &M.recs[i];
        /* w->gen < M.gen: not the replacements this very loop is starting */
        if ((w->state == REC_RUNNING || w->state == REC_STARTING) && !w->replaced &&
            w->gen < M.gen && (only_id == 0 || w->id == only_id)) {
            w->want_replacement = true;
        }
    }
    replace_wanted();
}

static void log_exit(const struct worker_rec *w, int status)
{
    if (WIFEXITED(status))
        log_msg("master: worker %d (pid %d) exited with status %d", w->id, (int)w->pid,
                WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        log_msg("master: worker %d (pid %d) killed by signal %d (%s)", w->id, (int)w->pid,
                WTERMSIG(status), strsignal(WTERMSIG(status)));
}

static bool id_has_live_successor(int id, const struct worker_rec *dead)
{
    for (int i = 0; i < M.nrecs; i++) {
        const struct worker_rec *w = &M.recs[i];
        if (w != dead && w->id == id && w->state != REC_FREE && w->state != REC_STOPPING)
            return true;
    }
    return false;
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (daemons_reaped(pid, status) || signals_reaped(pid, status))
            continue;
        for (int i = 0; i < M.nrecs; i++) {
            struct worker_rec *w = &M.recs[i];
            if (w->state == REC_FREE || w->pid != pid)
                continue;
            log_exit(w, status);
            bool expected = w->state == REC_STOPPING || M.stopping;
            int id = w->id;
            double lived = now() - w->started;
            w->state = REC_FREE;
            if (expected)
                break;
            if (id_has_live_successor(id, w)) {
                /* A replacement died before taking over: the old worker stays in service. */
                for (int j = 0; j < M.nrecs; j++)
                    if (M.recs[j].id == id && M.recs[j].replaced &&
                        M.recs[j].state != REC_STOPPING && M.recs[j].state != REC_FREE) {
                        M.recs[j].replaced = false;
                        log_msg("master: the replacement of worker %d failed: pid %d keeps "
                                "serving",
                                id, (int)M.recs[j].pid);
                    }
                break;
            }
            /* Died on its own: respawn, at once unless it keeps dying at start-up. */
            if (lived < 1.0) {
                M.backoff[id] = M.backoff[id] ? M.backoff[id] * 2 : 0.5;
                if (M.backoff[id] > 30)
                    M.backoff[id] = 30;
                log_msg("master: worker %d died %.2f s after its start: respawning in %g s", id,
                        lived, M.backoff[id]);
            } else {
                M.backoff[id] = 0;
            }
            M.next_spawn[id] = now() + M.backoff[id];
            M.respawns[id]++;
            break;
        }
    }
}

/* Worker ids that should run and do not: spawn once their backoff has passed. */
static void respawn_due(void)
{
    if (M.stopping)
        return;
    double t = now();
    for (int id = 1; id <= M.wanted; id++) {
        bool running = false;
        for (int i = 0; i < M.nrecs && !running; i++)
            running = M.recs[i].id == id && M.recs[i].state != REC_FREE &&
                      M.recs[i].state != REC_STOPPING;
        if (!running && t >= M.next_spawn[id])
            spawn(id);
    }
}

/* systemd (Type=notify): READY once every worker id has a running process with nothing left
 * to replace, at start and after each reload. */
static void notify_if_ready(void)
{
    if (!M.notify_ready || M.stopping)
        return;
    int running = 0;
    for (int i = 0; i < M.nrecs; i++) {
        const struct worker_rec *w = &M.recs[i];
        if (w->state == REC_STARTING || w->want_replacement ||
            (w->replaced && w->state == REC_RUNNING))
            return;
        running += w->state == REC_RUNNING;
    }
    if (running < M.wanted)
        return;
    M.notify_ready = false;
    sd_notifyf(0, "READY=1\nSTATUS=%d workers serving\nMAINPID=%d", running, (int)getpid());
}

static void on_message(const struct gy_msg *m)
{
    if (m->rec < 0 || m->rec >= M.nrecs)
        return;
    struct worker_rec *w = &M.recs[m->rec];
    if (w->pid != m->pid || w->state == REC_FREE)
        return;
    switch (m->type) {
    case MSG_READY:
        if (w->state == REC_STARTING)
            w->state = REC_RUNNING;
        M.backoff[w->id] = 0;
        retire_older(w);
        notify_if_ready();
        break;
    case MSG_RETIRE:
        if (!w->replaced && !M.stopping) {
            w->want_replacement = true;
            replace_wanted();
        }
        break;
    case MSG_FATAL:
        if (!M.stopping) {
            log_msg("master: a hook of worker %d (pid %d) failed: stopping the instance", w->id,
                    (int)w->pid);
            M.exit_status = 1;
            stop_all(SIGQUIT);
        }
        break;
    }
}

/* Kill a worker the master gives up on: respawned at once, not as a crash loop. */
static void kill_worker(struct worker_rec *w, double t)
{
    kill(w->pid, SIGKILL);
    w->state = REC_STOPPING;
    w->deadline = t + 3600;
    M.next_spawn[w->id] = t;
    M.respawns[w->id]++;
}

/* --evil-reload-on-rss/as, once a second: the master's own check, for a worker that cannot
 * check itself (its loop stuck, or growing faster than it checks): killed and respawned. */
static void check_evil(double t)
{
    for (int i = 0; i < M.nrecs; i++) {
        struct worker_rec *w = &M.recs[i];
        if (w->state != REC_RUNNING && w->state != REC_STARTING)
            continue;
        unsigned long as, rss;
        proc_mem_mib(w->pid, &as, &rss);
        const char *what = NULL;
        unsigned long value = 0, limit = 0;
        if (M.cfg->evil_reload_on_rss && rss >= M.cfg->evil_reload_on_rss)
            what = "rss", value = rss, limit = M.cfg->evil_reload_on_rss;
        else if (M.cfg->evil_reload_on_as && as >= M.cfg->evil_reload_on_as)
            what = "as", value = as, limit = M.cfg->evil_reload_on_as;
        if (!what)
            continue;
        log_msg("master: worker %d (pid %d): %s %lu MiB (--evil-reload-on-%s %lu): killing it",
                w->id, (int)w->pid, strcmp(what, "rss") ? "address space" : "RSS", value, what,
                limit);
        kill_worker(w, t);
    }
}

/* --max-worker-lifetime (+ id x --max-worker-lifetime-delta): replaced like a retiring worker,
 * the new one accepting before the old one stops. */
static void check_lifetimes(double t)
{
    for (int i = 0; i < M.nrecs; i++) {
        struct worker_rec *w = &M.recs[i];
        double limit = M.cfg->max_worker_lifetime + w->id * M.cfg->max_worker_lifetime_delta;
        if (w->state == REC_RUNNING && !w->replaced && !w->want_replacement &&
            t - w->started >= limit) {
            log_msg(
                "master: worker %d (pid %d) ran %.0f s (--max-worker-lifetime %g): replacing it",
                w->id, (int)w->pid, t - w->started, limit);
            w->want_replacement = true;
        }
    }
    replace_wanted();
}

static void check_clocks(void)
{
    double t = now();
    for (int i = 0; i < M.nrecs; i++) {
        struct worker_rec *w = &M.recs[i];
        if (w->state == REC_STOPPING && t > w->deadline) {
            log_msg("master: worker %d (pid %d) still running after its grace: killing it", w->id,
                    (int)w->pid);
            kill(w->pid, SIGKILL);
            w->deadline = t + 3600;
        }
        /* --harakiri: a loop that stopped ticking (a C call or CPU loop that never yields). */
        if (M.cfg->harakiri > 0 && w->state == REC_RUNNING &&
            t - scoreboard_slot(&S.board, i)->heartbeat > M.cfg->harakiri + 0.5) {
            log_msg("master: worker %d (pid %d): its loop has not run for %.1f s (--harakiri "
                    "%g): killing it",
                    w->id, (int)w->pid, t - scoreboard_slot(&S.board, i)->heartbeat,
                    M.cfg->harakiri);
            if (M.cfg->harakiri_verbose)
                log_proc_state((int)w->pid);
            kill_worker(w, t);
            scoreboard_slot(&S.board, i)->harakiri++;
        }
    }
    if ((M.cfg->evil_reload_on_rss || M.cfg->evil_reload_on_as) && t >= M.next_mem_check) {
        M.next_mem_check = t + 1.0;
        check_evil(t);
    }
    if (M.cfg->max_worker_lifetime > 0 && !M.stopping)
        check_lifetimes(t);
    for (int i = 0; i < M.cfg->ntouch_reload && !M.stopping; i++) {
        struct stat st;
        if (stat(M.cfg->touch_reload[i], &st) == 0 && st.st_mtime != M.touch_mtime[i]) {
            bool first = M.touch_mtime[i] == 0;
            M.touch_mtime[i] = st.st_mtime;
            if (!first)
                reload(0, M.cfg->touch_reload[i]);
        }
    }
}

/* --fs-reload: a watch per path; one that goes (the path deleted or renamed) is added again
 * once the path is back. The return of a path that was missing is a change too; one replaced
 * at once (an editor's rename over it) was the change that already reloaded. */
static void fs_watch_add(int i)
{
    const uint32_t events = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |
                            IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;
    M.fs_wd[i] = inotify_add_watch(M.inotify_fd, M.cfg->fs_reload[i], events);
    if (M.fs_wd[i] < 0) {
        M.fs_missing[i] = true;
        return;
    }
    if (M.fs_missing[i] && !M.stopping)
        reload(0, M.cfg->fs_reload[i]);
    M.fs_missing[i] = false;
}

static int fs_reload_open(void)
{
    M.inotify_fd = -1;
    if (M.cfg->nfs_reload == 0)
        return 0;
    M.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (M.inotify_fd < 0) {
        log_errno("master: --fs-reload: inotify");
        return -1;
    }
    for (int i = 0; i < M.cfg->nfs_reload; i++) {
        fs_watch_add(i);
        if (M.fs_wd[i] < 0) /* a reload once it is there */
            log_errno("master: --fs-reload %s: watching once it exists", M.cfg->fs_reload[i]);
    }
    return 0;
}

static void fs_reload_events(void)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    const char *why = NULL;
    ssize_t n;
    while ((n = read(M.inotify_fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            for (int i = 0; i < M.cfg->nfs_reload; i++) {
                if (ev->wd != M.fs_wd[i])
                    continue;
                if (ev->mask & IN_IGNORED)
                    M.fs_wd[i] = -1; /* the watch is gone: fs_reload_retry */
                else
                    why = M.cfg->fs_reload[i];
            }
            p += sizeof(*ev) + ev->len;
        }
    }
    if (why && !M.stopping)
        reload(0, why); /* one reload for a burst of events */
}

static void fs_reload_retry(void)
{
    for (int i = 0; i < M.cfg->nfs_reload; i++)
        if (M.fs_wd[i] < 0)
            fs_watch_add(i);
}

/* --cheaper's start: the bounds uWSGI also enforces, and the first count of workers. */
static void cheaper_init(struct gy_config *cfg)
{
    M.wanted = cfg->processes;
    if (!cfg->cheaper)
        return;
    if (cfg->cheaper >= cfg->processes) {
        log_msg("master: --cheaper %d needs more --processes (the maximum): %d; using --cheaper %d",
                cfg->cheaper, cfg->processes, cfg->processes - 1);
        cfg->cheaper = cfg->processes - 1;
        if (!cfg->cheaper)
            return;
    }
    if (cfg->cheaper_algo && strcmp(cfg->cheaper_algo, "spare"))
        log_msg("master: --cheaper-algo %s is not in gyre: using spare", cfg->cheaper_algo);
    int initial = cfg->cheaper_initial ? cfg->cheaper_initial : cfg->cheaper;
    M.wanted = initial < cfg->cheaper     ? cfg->cheaper
               : initial > cfg->processes ? cfg->processes
                                          : initial;
    if (!cfg->cheaper_step)
        cfg->cheaper_step = 1;
    double overload = cfg->cheaper_overload_given ? cfg->cheaper_overload : 3;
    M.cheap.cycles_limit = overload < 1 ? 1 : (unsigned)overload;
    log_msg("master: adaptive workers (spare): %d to %d, starting %d, step %d, overload %u s",
            cfg->cheaper, cfg->processes, M.wanted, cfg->cheaper_step, M.cheap.cycles_limit);
}

/* A worker is busy when every one of its cores serves a request (with one core, uWSGI's own
 * definition); RUNNING processes of the wanted ids only. -1: a worker is starting, stopping
 * or missing, no decision now. */
static int count_busy(int *active)
{
    *active = 0;
    int busy = 0;
    for (int i = 0; i < M.nrecs; i++) {
        const struct worker_rec *w = &M.recs[i];
        if (w->state == REC_STARTING)
            return -1;
        if (w->state != REC_RUNNING || w->replaced || w->id > M.wanted)
            continue;
        (*active)++;
        busy += scoreboard_slot(&S.board, i)->busy >= M.cfg->cores;
    }
    return *active == M.wanted ? busy : -1;
}

/* The RSS of the running workers together, in bytes, when a --cheaper-rss-limit asks. */
static unsigned long long workers_rss(void)
{
    if (!M.cfg->cheaper_rss_limit_soft && !M.cfg->cheaper_rss_limit_hard)
        return 0;
    unsigned long long total = 0;
    for (int i = 0; i < M.nrecs; i++)
        if (M.recs[i].state == REC_RUNNING) {
            unsigned long as, rss;
            proc_mem_mib(M.recs[i].pid, &as, &rss);
            total += (unsigned long long)rss * 1024 * 1024;
        }
    return total;
}

/* Stop the highest worker id, gracefully (a reload's mercy), and run one fewer. */
static void cheap_one(int active, int busy)
{
    log_msg("master: %d of %d worker(s) busy: stopping worker %d (--cheaper %d)", busy, active,
            M.wanted, M.cfg->cheaper);
    for (int i = 0; i < M.nrecs; i++) {
        struct worker_rec *w = &M.recs[i];
        if (w->id == M.wanted && w->state != REC_FREE && w->state != REC_STOPPING)
            stop_worker(w, SIGHUP);
    }
    M.wanted--;
}

/* uWSGI's "spare" algorithm, once a second: every worker busy for more than --cheaper-overload
 * cycles starts --cheaper-step more (up to --processes); once no longer overloaded, every
 * --cheaper-overload cycles one worker stops (down to --cheaper), unless exactly one worker
 * is free: that one is the spare, the stable state. */
static void cheaper_tick(double t)
{
    if (!M.cfg->cheaper || M.stopping || t < M.cheap.next_cycle)
        return;
    M.cheap.next_cycle = t + 1.0;
    int active, busy = count_busy(&active);
    if (busy < 0)
        return;
    if (busy == active) {
        M.cheap.overload++;
        M.cheap.idle = 0;
    } else if (M.cheap.overload > 0) {
        M.cheap.overload--;
    }
    unsigned long long rss = workers_rss();
    if (M.cfg->cheaper_rss_limit_hard && rss >= M.cfg->cheaper_rss_limit_hard &&
        active > M.cfg->cheaper) {
        log_msg("master: the workers' RSS, %llu bytes, passes --cheaper-rss-limit-hard %llu", rss,
                M.cfg->cheaper_rss_limit_hard);
        cheap_one(active, busy);
        return;
    }
    if (M.cheap.overload > M.cheap.cycles_limit) {
        M.cheap.overload = 0;
        if (M.cfg->cheaper_rss_limit_soft && rss >= M.cfg->cheaper_rss_limit_soft) {
            log_msg("master: all %d worker(s) busy, but their RSS, %llu bytes, passes "
                    "--cheaper-rss-limit-soft %llu: no more",
                    active, rss, M.cfg->cheaper_rss_limit_soft);
            return;
        }
        int add = M.cfg->processes - M.wanted;
        if (add > M.cfg->cheaper_step)
            add = M.cfg->cheaper_step;
        if (add > 0) {
            log_msg("master: all %d worker(s) busy for %u s: starting %d more", active,
                    M.cheap.cycles_limit + 1, add);
            M.wanted += add; /* respawn_due starts them */
        }
    } else if (M.cheap.overload == 0 && active - busy != 1) {
        M.cheap.idle++;
        if (active > M.cfg->cheaper && M.cheap.idle % M.cheap.cycles_limit == 0)
            cheap_one(active, busy);
    }
}

static int live_workers(void)
{
    int n = 0;
    for (int i = 0; i < M.nrecs; i++)
        n += M.recs[i].state != REC_FREE;
    return n;
}

static void stop_all(int sig)
{
    M.stopping = true;
    sd_notify(0, "STOPPING=1");
    for (int i = 0; i < M.nrecs; i++) {
        struct worker_rec *w = &M.recs[i];
        if (w->state == REC_FREE)
            continue;
        if (sig == SIGQUIT) {
            kill(w->pid, SIGQUIT);
            w->deadline = now() + 1.0;
            w->state = REC_STOPPING;
        } else if (w->state != REC_STOPPING) {
            stop_worker(w, SIGTERM);
        } else {
            kill(w->pid, SIGTERM); /* an old worker in a reload: the shorter grace now */
        }
    }
}

/* --master-fifo: (re)create the FIFO and read it. O_RDWR: the master is a writer too, so
 * that the last client closing its end is no EOF to reopen after (uWSGI reopens). */
static int fifo_open(int slot)
{
    const char *path = M.cfg->master_fifo[slot];
    unlink(path);
    if (mkfifo(path, 0600) < 0) {
        log_errno("master: --master-fifo %s", path);
        return -1;
    }
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        log_errno("master: --master-fifo %s", path);
        unlink(path);
        return -1;
    }
    if (M.fifo_fd >= 0)
        close(M.fifo_fd);
    M.fifo_fd = fd;
    M.fifo_slot = slot;
    return 0;
}

static void fifo_close_all(void)
{
    if (M.fifo_fd >= 0)
        close(M.fifo_fd);
    M.fifo_fd = -1;
    for (int i = 0; i < M.cfg->nmaster_fifo; i++)
        unlink(M.cfg->master_fifo[i]);
}

static void log_workers(void)
{
    static const char *const states[] = { "free", "starting", "running", "stopping" };
    for (int i = 0; i < M.nrecs; i++) {
        const struct worker_rec *w = &M.recs[i];
        if (w->state == REC_FREE)
            continue;
        const struct sb_worker *slot = scoreboard_slot(&S.board, i);
        log_msg("master: worker %d (pid %d) %s, %d busy core(s), %llu request(s)", w->id,
                (int)w->pid, states[w->state], slot->busy, (unsigned long long)slot->requests);
    }
}

/* 'P': the pid files again (uWSGI's "update pidfiles"), e.g. after one was removed. */
static void rewrite_pidfiles(void)
{
    const char *paths[] = { M.cfg->pidfile, M.cfg->pidfile2 };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        FILE *f = paths[i] ? fopen(paths[i], "w") : NULL;
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        } else if (paths[i]) {
            log_errno("master: %s", paths[i]);
        }
    }
}

/* uWSGI's master FIFO commands; those gyre has no counterpart for are logged, not ignored. */
static void fifo_command(char c)
{
    if (c >= '0' && c <= '9') {
        int slot = c - '0';
        if (slot >= M.cfg->nmaster_fifo || slot == M.fifo_slot)
            log_msg("master: --master-fifo %c: no such FIFO, or the one being read", c);
        else if (fifo_open(slot) == 0)
            log_msg("master: --master-fifo: now reading %s", M.cfg->master_fifo[slot]);
        return;
    }
    /* While stopping, only Q (stop now) still means something. */
    if ((M.stopping && c != 'Q') || c == '\n' || c == '\r' || c == ' ')
        return;
    switch (c) {
    case 'r':
    case 'R': /* uWSGI's brutal reload, and its worker and chain reloads: gyre's is graceful */
    case 'w':
    case 'W':
    case 'c':
        reload(0, "--master-fifo");
        break;
    case 'q':
        log_msg("master: --master-fifo q: graceful stop of %d worker(s)", live_workers());
        stop_all(SIGTERM);
        break;
    case 'Q':
        log_msg("master: --master-fifo Q: stopping now");
        stop_all(SIGQUIT);
        break;
    case '+':
        if (M.cfg->cheaper && M.wanted < M.cfg->processes) {
            M.wanted++; /* respawn_due starts it */
            log_msg("master: --master-fifo +: %d worker(s)", M.wanted);
        }
        break;
    case '-':
        if (M.cfg->cheaper && M.wanted > M.cfg->cheaper) {
            int active, busy = count_busy(&active);
            cheap_one(active, busy < 0 ? 0 : busy);
        }
        break;
    case 's':
        log_workers();
        break;
    case 'P':
        rewrite_pidfiles();
        break;
    default:
        log_msg("master: --master-fifo: command '%c' is not one gyre has", c);
    }
}

static void fifo_read(void)
{
    char cmds[64];
    ssize_t n;
    /* A command that switches FIFOs closes this one: the rest of the batch is dropped. */
    int fd = M.fifo_fd;
    while (fd == M.fifo_fd && (n = read(fd, cmds, sizeof(cmds))) > 0)
        for (ssize_t i = 0; i < n && fd == M.fifo_fd; i++)
            fifo_command(cmds[i]);
}

/* What a signal does to the master: SIGHUP reloads, SIGTERM stops gracefully, SIGINT and
 * SIGQUIT stop now, unless a unix_signal hook said otherwise (M.sig_action). */
static enum master_action default_action(int sig)
{
    switch (sig) {
    case SIGHUP:
        return ACT_RELOAD;
    case SIGTERM:
        return ACT_GRACEFUL_STOP;
    case SIGINT:
    case SIGQUIT:
        return ACT_STOP_NOW;
    default:
        return ACT_NONE;
    }
}

static void on_signals(void)
{
    unsigned char sigs[16];
    ssize_t n = read(M.sigpipe[0], sigs, sizeof(sigs));
    for (ssize_t i = 0; i < n; i++) {
        int sig = sigs[i];
        enum master_action a = M.sig_action[sig] ? M.sig_action[sig] : default_action(sig);
        switch (a) {
        case ACT_NONE:
            break; /* SIGCHLD: reaped below */
        case ACT_RELOAD:
            if (!M.stopping)
                reload(0, sig == SIGHUP ? "SIGHUP" : strsignal(sig));
            break;
        case ACT_STOP_NOW:
            log_msg("master: %s: stopping now", sig == SIGINT    ? "SIGINT"
                                                : sig == SIGQUIT ? "SIGQUIT"
                                                                 : strsignal(sig));
            stop_all(SIGQUIT);
            break;
        case ACT_GRACEFUL_STOP:
            if (M.stopping) {
                log_msg("master: %s again: stopping now", strsignal(sig));
                stop_all(SIGQUIT);
            } else {
                log_msg("master: %s: graceful stop of %d worker(s), up to %g s", strsignal(sig),
                        live_workers(), worker_mercy(M.cfg, false));
                stop_all(SIGTERM);
            }
        }
    }
}

/* unix_signal:N FUNCTION: uWSGI's master functions, as gyre's master does them. */
static int remap_signal(int sig, const char *function)
{
    static const struct {
        const char *name;
        enum master_action action;
    } functions[] = {
        { "gracefully_kill_them_all", ACT_GRACEFUL_STOP },
        { "kill_them_all", ACT_STOP_NOW },
        { "grace_them_all", ACT_RELOAD },
        { "reap_them_all", ACT_RELOAD }, /* uWSGI's brutal reload: gyre's reloads are graceful */
    };
    if (sig == SIGCHLD || sig == SIGKILL || sig == SIGSTOP || sig == SIGPIPE || sig >= NSIG) {
        log_msg("hook unix_signal: signal %d is not one the master can give a function", sig);
        return -1;
    }
    for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
        if (strcmp(function, functions[i].name) != 0)
            continue;
        struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
        sigemptyset(&sa.sa_mask);
        if (sigaction(sig, &sa, NULL) < 0) {
            log_errno("hook unix_signal: signal %d", sig);
            return -1;
        }
        M.sig_action[sig] = functions[i].action;
        return 0;
    }
    log_msg("hook unix_signal: %s: expected gracefully_kill_them_all, kill_them_all, "
            "grace_them_all or reap_them_all",
            function);
    return -1;
}

/* --hook-as-user, --hook-as-user-atexit: once, as the workers' user. The master keeps root (it
 * binds, it kills), so a child drops the privileges and runs them; without --uid/--gid, the
 * master runs them. */
static int run_as_user_hooks(const struct gy_config *cfg, enum hook_phase phase)
{
    if (!hooks_any(cfg, phase))
        return 0;
    if (!cfg->uid && !cfg->gid)
        return hooks_run(cfg, phase);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        log_errno("master: fork for --hook-as-user");
        return -1;
    }
    if (pid == 0) {
        log_init();
        _exit(drop_privileges(cfg) < 0 || hooks_run(cfg, phase) < 0 ? 1 : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int process_prepare(struct gy_config *cfg)
{
    if (hooks_check(cfg) < 0 || hooks_run(cfg, HOOK_ASAP) < 0)
        return -1;
    /* --logto already holds stdout and stderr: it stays the log. */
    if (cfg->daemonize && daemonize(cfg->logto ? NULL : cfg->daemonize) < 0)
        return -1;
    return 0;
}

int master_run(struct gy_config *cfg)
{
    M.cfg = cfg;
    M.pid = getpid();
    M.fifo_fd = -1;
    hooks_set_unix_signal(remap_signal);
    proctitle_for(cfg, 0);
    cheaper_init(cfg);
    M.nrecs = 3 * cfg->processes + 2;
    M.recs = calloc((size_t)M.nrecs, sizeof(*M.recs));
    if (!M.recs || scoreboard_create(&S.board, M.nrecs, cfg->cores) < 0 ||
        locks_create(&S.locks, cfg->locks) < 0) {
        log_errno("master: shared memory");
        return 1;
    }
    if (caches_create(cfg) < 0 || metrics_setup(cfg) < 0 ||
        signals_master_init(cfg, M.nrecs, rec_of_id) < 0)
        return 1;
    if (pipe2(M.sigpipe, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(M.msgpipe, O_CLOEXEC) < 0) {
        log_errno("master: pipe");
        return 1;
    }
    fcntl(M.msgpipe[0], F_SETFL, O_NONBLOCK);
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGCHLD };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    S.cfg = cfg;
    if (listen_open_all() < 0 || stats_open() < 0) {
        listen_close_all();
        stats_close(true);
        return 1;
    }
    log_msg("gyre %s master %d: %d worker(s), %d core(s) each", GYRE_VERSION, (int)getpid(),
            M.wanted, cfg->cores);
    log_root_warning(cfg);
    if (hooks_run(cfg, HOOK_PRE_JAIL) < 0 || hooks_run(cfg, HOOK_IN_JAIL) < 0 ||
        hooks_run(cfg, HOOK_AS_ROOT) < 0 || run_as_user_hooks(cfg, HOOK_AS_USER) < 0 ||
        fs_reload_open() < 0 || (cfg->nmaster_fifo && fifo_open(0) < 0) || daemons_start(cfg) < 0) {
        daemons_stop();
        fifo_close_all();
        listen_close_all();
        stats_close(true);
        return 1;
    }
    for (int i = 0; i < cfg->ntouch_reload; i++) {
        struct stat st;
        if (stat(cfg->touch_reload[i], &st) == 0)
            M.touch_mtime[i] = st.st_mtime;
    }
    M.notify_ready = true;
    for (int id = 1; id <= M.wanted; id++)
        spawn(id);
    /* After the first forks: a worker forked later gets only the forking thread anyway. */
    if (stats_start() < 0)
        return 1;
    if (hooks_run(cfg, HOOK_MASTER_START) < 0) {
        M.exit_status = 1;
        stop_all(SIGQUIT);
    }

    int npfd = 4 + M.nrecs + 1;
    struct pollfd *pfd = calloc((size_t)npfd, sizeof(*pfd));
    if (!pfd) {
        log_errno("master: memory");
        stop_all(SIGQUIT);
        return 1;
    }
    for (;;) {
        pfd[0] = (struct pollfd){ .fd = M.sigpipe[0], .events = POLLIN };
        pfd[1] = (struct pollfd){ .fd = M.msgpipe[0], .events = POLLIN };
        pfd[2] = (struct pollfd){ .fd = M.inotify_fd, .events = POLLIN };
        pfd[3] = (struct pollfd){ .fd = M.fifo_fd, .events = POLLIN };
        int nsig = signals_pollfds(pfd + 4, npfd - 4);
        poll(pfd, (nfds_t)(4 + nsig), 100);
        signals_events(pfd + 4, nsig);
        if (pfd[0].revents & POLLIN)
            on_signals();
        if (pfd[1].revents & POLLIN) {
            struct gy_msg m;
            while (read(M.msgpipe[0], &m, sizeof(m)) == (ssize_t)sizeof(m))
                on_message(&m);
        }
        if (pfd[2].revents & POLLIN)
            fs_reload_events();
        if (pfd[3].revents & POLLIN)
            fifo_read();
        reap();
        if (M.stopping && live_workers() == 0)
            break;
        check_clocks();
        caches_sweep(now());
        fs_reload_retry();
        cheaper_tick(now());
        respawn_due();
        if (!M.stopping) {
            daemons_tick();
            replace_wanted();
            signals_tick();
        }
    }
    free(pfd);
    daemons_stop();
    fifo_close_all();
    listen_close_all();
    stats_close(true);
    if (run_as_user_hooks(cfg, HOOK_AS_USER_ATEXIT) < 0)
        M.exit_status = 1;
    log_msg("master: stopped");
    return M.exit_status;
}
