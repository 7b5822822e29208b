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
 *   --smart-attach-daemon2 PIDFILE CMD the same for a CMD that stays in the foreground: the
 *                                     master detaches it (setsid, fork) and writes PIDFILE
 *   --attach-daemon2 cmd=CMD,pidfile=FILE,daemonize=1,stopsignal=N   uWSGI's keyval form of
 *                                     the three
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
    char *pidfile;   /* smart daemons only */
    bool detach;     /* the master detaches it and writes pidfile (smart-attach-daemon2) */
    int stop_signal; /* SIGTERM unless attach-daemon2's stopsignal says otherwise */
    pid_t pid;       /* the child the master forked (0: none) */
    double started, next_start, backoff;
    unsigned starts;
};

static struct {
    struct daemon d[4 * GY_MAX_LIST];
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

/* smart-attach-daemon2: the launcher (the master's child) starts a session, forks the daemon,
 * writes its pid file and exits; the daemon runs CMD. */
static void exec_detached(const struct daemon *d)
{
    setsid();
    pid_t pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", d->pidfile);
        FILE *f = fopen(tmp, "w");
        bool ok = f && fprintf(f, "%d\n", (int)pid) > 0;
        ok = f && fclose(f) == 0 && ok && rename(tmp, d->pidfile) == 0;
        _exit(ok ? 0 : 1);
    }
    execl("/bin/sh", "sh", "-c", d->cmd, (char *)NULL);
    _exit(127);
}

static void start(struct daemon *d)
{
    fflush(NULL);
    /* Signals wait until the child dropped the master's handlers (see master.c's spawn). */
    sigset_t all, saved;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &saved);
    pid_t pid = fork();
    if (pid != 0)
        sigprocmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        log_errno("daemon \"%s\": fork", d->cmd);
        d->next_start = now() + 1;
        return;
    }
    if (pid == 0) {
        /* The master's handlers and mask are not the daemon's: every caught signal back to its
         * default. A plain daemon dies with the master (uWSGI destroys them with it); a smart
         * one outlives it by design. */
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (!d->pidfile)
            prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (d->detach)
            exec_detached(d);
        execl("/bin/sh", "sh", "-c", d->cmd, (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    d->started = now();
    d->starts++;
    log_msg("master: %s daemon \"%s\" (pid %d)", d->starts > 1 ? "restarted" : "started", d->cmd,
            (int)pid);
}

/* "PIDFILE CMD" (options.c checked the space). */
static int add_smart(const char *spec, bool detach)
{
    const char *space = strchr(spec, ' ');
    char *pidfile = strndup(spec, (size_t)(space - spec));
    if (!pidfile)
        return -1;
    D.d[D.n++] = (struct daemon){
        .cmd = space + 1, .pidfile = pidfile, .detach = detach, .stop_signal = SIGTERM
    };
    return 0;
}

/* The value of attach-daemon2's next key, up to the next ",key=" (a command may hold commas). */
static char *kv_value(const char **p)
{
    const char *start = *p, *end = start;
    for (;;) {
        end = strchr(end, ',');
        if (!end) {
            end = start + strlen(start);
            break;
        }
        size_t key = strspn(end + 1, "abcdefghijklmnopqrstuvwxyz_");
        if (key > 0 && end[1 + key] == '=')
            break;
        end++;
    }
    *p = *end ? end + 1 : end;
    return strndup(start, (size_t)(end - start));
}

/* uWSGI's attach-daemon2 keyval: cmd (command, exec), pidfile, daemonize (daemon),
 * stopsignal (stop_signal); its other keys are logged and ignored. */
static int add_keyval(const char *spec)
{
    struct daemon d = { .stop_signal = SIGTERM };
    char *cmd = NULL;
    for (const char *p = spec; *p;) {
        const char *eq = strchr(p, '=');
        if (!eq) {
            log_msg("--attach-daemon2 %s: expected KEY=VALUE at \"%s\"", spec, p);
            return -1;
        }
        size_t klen = (size_t)(eq - p);
        char key[32];
        snprintf(key, sizeof(key), "%.*s", (int)(klen < sizeof(key) ? klen : sizeof(key) - 1), p);
        p = eq + 1;
        char *value = kv_value(&p);
        if (!value)
            return -1;
        if (!strcmp(key, "cmd") || !strcmp(key, "command") || !strcmp(key, "exec")) {
            free(cmd);
            cmd = value;
            continue;
        }
        if (!strcmp(key, "pidfile")) {
            free(d.pidfile);
            d.pidfile = value;
            continue;
        }
        if (!strcmp(key, "daemonize") || !strcmp(key, "daemon"))
            d.detach = strcmp(value, "0") && strcmp(value, "false") && strcmp(value, "no");
        else if (!strcmp(key, "stopsignal") || !strcmp(key, "stop_signal"))
            d.stop_signal = atoi(value);
        else
            log_msg("--attach-daemon2: key %s is not one gyre has: ignored", key);
        free(value);
    }
    if (!cmd || !*cmd || (d.detach && !d.pidfile) || d.stop_signal < 1 || d.stop_signal >= NSIG) {
        log_msg("--attach-daemon2 %s: needs cmd=, a pidfile= with daemonize=, a stopsignal= "
                "from 1 to %d",
                spec, NSIG - 1);
        free(cmd);
        free(d.pidfile);
        return -1;
    }
    d.cmd = cmd;
    D.d[D.n++] = d;
    return 0;
}

int daemons_start(const struct gy_config *cfg)
{
    D.n = 0;
    for (int i = 0; i < cfg->nattach_daemon; i++)
        D.d[D.n++] = (struct daemon){ .cmd = cfg->attach_daemon[i], .stop_signal = SIGTERM };
    for (int i = 0; i < cfg->nsmart_daemon; i++)
        if (add_smart(cfg->smart_daemon[i], false) < 0)
            return -1;
    for (int i = 0; i < cfg->nsmart_daemon2; i++)
        if (add_smart(cfg->smart_daemon2[i], true) < 0)
            return -1;
    for (int i = 0; i < cfg->nattach_daemon2; i++)
        if (add_keyval(cfg->attach_daemon2[i]) < 0)
            return -1;
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

/* Every daemon's pid still there (the child we forked, and a smart daemon's pid file's), and
 * the signal that stops it. */
#define MAX_DAEMON_PIDS (2 * (int)(sizeof(D.d) / sizeof(D.d[0])))
static int live_pids(pid_t *pids, int *sigs)
{
    int n = 0;
    for (int i = 0; i < D.n; i++) {
        struct daemon *d = &D.d[i];
        if (d->pid && waitpid(d->pid, NULL, WNOHANG) == d->pid)
            d->pid = 0;
        if (d->pid) {
            sigs[n] = d->stop_signal;
            pids[n++] = d->pid;
        }
        pid_t smart = d->pidfile ? pidfile_alive(d->pidfile) : 0;
        if (smart && smart != d->pid) {
            sigs[n] = d->stop_signal;
            pids[n++] = smart;
        }
    }
    return n;
}

void daemons_stop(void)
{
    pid_t pids[MAX_DAEMON_PIDS];
    int sigs[MAX_DAEMON_PIDS];
    int n = live_pids(pids, sigs);
    if (n == 0)
        return;
    log_msg("master: stopping %d daemon process(es)", n);
    for (int i = 0; i < n; i++)
        kill(pids[i], sigs[i]);
    double deadline = now() + DAEMON_STOP_GRACE;
    while ((n = live_pids(pids, sigs)) > 0 && now() < deadline) {
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < n; i++) {
        log_msg("master: daemon pid %d still running %g s after signal %d: killing it",
                (int)pids[i], DAEMON_STOP_GRACE, sigs[i]);
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
