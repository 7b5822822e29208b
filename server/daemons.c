/*
 * The master's attached daemons, and gyre itself as a daemon.
 *
 *   --attach-daemon CMD               /bin/sh -c CMD as a child of the master, in the
 *                                     foreground: restarted when it exits (after a growing
 *                                     delay if it keeps dying at once), SIGTERM then SIGKILL
 *                                     when the master stops, SIGKILL if the master dies
 *   --smart-attach-daemon PIDFILE CMD CMD runs when PIDFILE names no live process (a daemon
 *                                     that forks away and writes its pid there, or stays in
 *                                     the foreground); checked every second; a daemon that
 *                                     outlives a master is adopted by the next one, not
 *                                     started twice; stopped with the master like the others
 *
 * Depends on: log.c (server/README)
 */
#include "daemons.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct daemon {
    const char *cmd;
    char *pidfile; /* smart daemons only */
    pid_t pid;     /* the child the master forked (0: none) */
    double started, next_start, backoff;
    unsigned starts;
};

static struct {
    struct daemon d[2 * GY_MAX_LIST];
    int n;
    double next_check;
} D;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The pid a smart daemon's pid file names, if that process lives; else 0. */
static pid_t pidfile_alive(const char *path)
{
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno != EPERM))
        return 0;
    return (pid_t)pid;
}

static void start(struct daemon *d)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        log_errno("daemon \"%s\": fork", d->cmd);
        d->next_start = now() + 1;
        return;
    }
    if (pid == 0) {
        /* The master's handlers and mask are not the daemon's. A plain daemon dies with the
         * master (uWSGI destroys them with it); a smart one outlives it by design. */
        int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGCHLD, SIGPIPE };
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
            signal(sigs[i], SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (!d->pidfile)
            prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", d->cmd, (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    d->started = now();
    d->starts++;
    log_msg("master: %s daemon \"%s\" (pid %d)", d->starts > 1 ? "restarted" : "started", d->cmd,
            (int)pid);
}

int daemons_start(const struct gy_config *cfg)
{
    D.n = 0;
    for (int i = 0; i < cfg->nattach_daemon; i++)
        D.d[D.n++] = (struct daemon){ .cmd = cfg->attach_daemon[i] };
    for (int i = 0; i < cfg->nsmart_daemon; i++) {
        const char *spec = cfg->smart_daemon[i], *space = strchr(spec, ' ');
        char *pidfile = strndup(spec, (size_t)(space - spec)); /* options.c checked the space */
        if (!pidfile)
            return -1;
        D.d[D.n++] = (struct daemon){ .cmd = space + 1, .pidfile = pidfile };
    }
    for (int i = 0; i < D.n; i++) {
        struct daemon *d = &D.d[i];
        pid_t running = d->pidfile ? pidfile_alive(d->pidfile) : 0;
        if (running)
            log_msg("master: daemon \"%s\" already running (pid %d in %s)", d->cmd, (int)running,
                    d->pidfile);
        else
            start(d);
    }
    return 0;
}

static void log_end(const struct daemon *d, int status)
{
    if (WIFEXITED(status))
        log_msg("master: daemon \"%s\" (pid %d) exited with status %d", d->cmd, (int)d->pid,
                WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        log_msg("master: daemon \"%s\" (pid %d) killed by signal %d", d->cmd, (int)d->pid,
                WTERMSIG(status));
}

bool daemons_reaped(pid_t pid, int status)
{
    for (int i = 0; i < D.n; i++) {
        struct daemon *d = &D.d[i];
        if (d->pid != pid || pid <= 0)
            continue;
        double lived = now() - d->started;
        if (!d->pidfile)
            log_end(d, status);
        d->pid = 0;
        /* A daemon that dies right after its start would spin: wait longer each time. A smart
         * daemon's launcher is meant to exit soon (it forks the daemon away): the pid file
         * decides, and the delay only spaces its retries. */
        if (lived < 1.0) {
            d->backoff = d->backoff ? d->backoff * 2 : 0.5;
            if (d->backoff > 30)
                d->backoff = 30;
        } else {
            d->backoff = 0;
        }
        d->next_start = now() + (d->pidfile ? 1.0 : d->backoff);
        if (!d->pidfile && d->backoff)
            log_msg("master: daemon \"%s\" died %.2f s after its start: restarting in %g s", d->cmd,
                    lived, d->backoff);
        return true;
    }
    return false;
}

void daemons_tick(void)
{
    double t = now();
    bool check_smart = t >= D.next_check;
    if (check_smart)
        D.next_check = t + 1.0;
    for (int i = 0; i < D.n; i++) {
        struct daemon *d = &D.d[i];
        if (d->pid || t < d->next_start)
            continue;
        if (d->pidfile && (!check_smart || pidfile_alive(d->pidfile)))
            continue;
        if (d->pidfile)
            log_msg("master: daemon \"%s\": %s names no live process", d->cmd, d->pidfile);
        start(d);
    }
}

/* Every daemon's pid still there: the child we forked, and a smart daemon's pid file's. */
static int live_pids(pid_t *pids, int cap)
{
    int n = 0;
    for (int i = 0; i < D.n && n < cap - 1; i++) {
        struct daemon *d = &D.d[i];
        if (d->pid && waitpid(d->pid, NULL, WNOHANG) == d->pid)
            d->pid = 0;
        if (d->pid)
            pids[n++] = d->pid;
        pid_t smart = d->pidfile ? pidfile_alive(d->pidfile) : 0;
        if (smart && smart != d->pid)
            pids[n++] = smart;
    }
    return n;
}

void daemons_stop(void)
{
    pid_t pids[4 * GY_MAX_LIST];
    int n = live_pids(pids, 4 * GY_MAX_LIST);
    if (n == 0)
        return;
    log_msg("master: stopping %d daemon process(es)", n);
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
    double deadline = now() + DAEMON_STOP_GRACE;
    while ((n = live_pids(pids, 4 * GY_MAX_LIST)) > 0 && now() < deadline) {
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < n; i++) {
        log_msg("master: daemon pid %d still running %g s after SIGTERM: killing it", (int)pids[i],
                DAEMON_STOP_GRACE);
        kill(pids[i], SIGKILL);
    }
    for (int i = 0; i < D.n; i++)
        if (D.d[i].pid)
            waitpid(D.d[i].pid, NULL, 0);
}

int daemonize(const char *logfile)
{
    int logfd = -1;
    if (logfile) {
        logfd = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (logfd < 0) {
            fprintf(stderr, "gyre: --daemonize %s: %s\n", logfile, strerror(errno));
            return -1;
        }
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "gyre: --daemonize: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid > 0)
        _exit(0);
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        if (null > 2)
            close(null);
    }
    if (logfd >= 0) {
        dup2(logfd, 1);
        dup2(logfd, 2);
        close(logfd);
    }
    log_init(); /* a new pid for the log lines */
    return 0;
}
