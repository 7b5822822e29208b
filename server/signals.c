/*
 * uWSGI signals, the master's side and the worker's socket (signals.h says how they talk).
 *
 *   the table      per signal: the target of its registration and the worker ids that
 *                  registered a handler
 *   timers         --timer / uwsgi.add_timer: every N s; --rbtimer / add_rb_timer: the same,
 *                  stopping after its iterations. Checked on each master turn (100 ms apart
 *                  at most): a timer fires within 0.1 s of its time, as uWSGI's 1 s ones do.
 *   cron           add_cron entries route their signal, --cron/--unique-cron/--cron2 entries run
 *                  their command (/bin/sh -c, from the master), once in each matching minute
 *   file monitors  add_file_monitor, --fs-signal, --touch-signal: inotify on the path
 *   routing        TARGET_ANY goes round the workers that registered the signal; a worker id
 *                  is delivered to the process master.c says serves it now
 *
 * Depends on: log.c (server/README)
 */
#include "signals.h"

#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- pure parts ----------------------------------------------------------------------------- */

/* One field: -N (every N) matches when the value divides by N, else the value itself. */
static bool field_matches(int want, int have)
{
    if (want < 0)
        return have % -want == 0;
    return want == have;
}

bool cron_matches(const struct tm *t, int minute, int hour, int day, int month, int week)
{
    int mon = t->tm_mon + 1; /* uWSGI's month is 1..12 */
    if (week == 7)
        week = 0;
    bool base = field_matches(minute, t->tm_min) && field_matches(hour, t->tm_hour) &&
                field_matches(month, mon);
    if (!base)
        return false;
    /* Both days given: either matches (crontab's rule, and uWSGI's). */
    if (day >= 0 && week >= 0)
        return t->tm_mday == day || t->tm_wday == week;
    return field_matches(day, t->tm_mday) && field_matches(week, t->tm_wday);
}

/* A whole int at *p (an optional '-'), then *p past it; -1 if none. */
static int parse_field(const char **p, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(*p, &end, 10);
    if (end == *p || errno || v < -1000 || v > 1000)
        return -1;
    *out = (int)v;
    *p = end;
    return 0;
}

int cron_parse(const char *spec, int fields[5], const char **cmd)
{
    const char *p = spec;
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (parse_field(&p, &fields[i]) < 0 || (*p && *p != ' ' && *p != '\t'))
            return -1;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    *cmd = *p ? p : NULL;
    return 0;
}

int cron2_parse(const char *spec, int fields[5], bool *unique, const char **cmd, const char **err)
{
    static const char *const keys[] = { "minute", "hour", "day", "month", "week" };
    for (int i = 0; i < 5; i++)
        fields[i] = -1;
    *unique = false;
    *cmd = spec;
    const char *space = strchr(spec, ' ');
    const char *eq = strchr(spec, '=');
    if (!eq || (space && eq > space))
        return 0; /* no key=val list: the whole value is the command, every minute */
    if (!space) {
        *err = "expected key=val[,key=val...] COMMAND";
        return -1;
    }
    *cmd = space + 1;
    for (const char *p = spec; p < space;) {
        const char *comma = memchr(p, ',', (size_t)(space - p));
        const char *end = comma ? comma : space;
        const char *kv_eq = memchr(p, '=', (size_t)(end - p));
        if (!kv_eq) {
            *err = "expected key=val[,key=val...] COMMAND";
            return -1;
        }
        size_t klen = (size_t)(kv_eq - p);
        const char *v = kv_eq + 1;
        int value, found = -1;
        for (int i = 0; i < 5; i++)
            if (strlen(keys[i]) == klen && memcmp(p, keys[i], klen) == 0)
                found = i;
        bool is_unique = klen == 6 && memcmp(p, "unique", 6) == 0;
        if (found < 0 && !is_unique) {
            *err = "a key gyre does not have (minute, hour, day, month, week, unique)";
            return -1;
        }
        if (parse_field(&v, &value) < 0 || v != end) {
            *err = "a value is not a whole number";
            return -1;
        }
        if (is_unique)
            *unique = value != 0;
        else
            fields[found] = value;
        p = comma ? comma + 1 : space;
    }
    return 0;
}

int timer_spec_parse(const char *spec, int *sig, int *secs)
{
    char extra;
    if (sscanf(spec, "%d %d %c", sig, secs, &extra) != 2 || *sig < 0 || *sig > 255 || *secs <= 0)
        return -1;
    return 0;
}

int file_signal_parse(const char *spec, char *path, size_t pathlen, int *sig)
{
    const char *space = strrchr(spec, ' ');
    char *end;
    if (!space || space == spec || (size_t)(space - spec) >= pathlen)
        return -1;
    long v = strtol(space + 1, &end, 10);
    if (end == space + 1 || *end || v < 0 || v > 255)
        return -1;
    memcpy(path, spec, (size_t)(space - spec));
    path[space - spec] = '\0';
    *sig = (int)v;
    return 0;
}

enum sig_target_kind signal_target_parse(const char *target, int *n)
{
    *n = 0;
    if (!*target || strcmp(target, "worker") == 0 || strcmp(target, "worker0") == 0)
        return TARGET_ANY;
    if (strcmp(target, "workers") == 0)
        return TARGET_ALL;
    if (strcmp(target, "active-workers") == 0)
        return TARGET_ACTIVE;
    if (strncmp(target, "worker", 6) == 0) {
        char *end;
        long v = strtol(target + 6, &end, 10);
        if (end == target + 6 || *end || v < 1 || v > GY_SIGNAL_MAX_IDS)
            return TARGET_UNKNOWN;
        *n = (int)v;
        return TARGET_WORKER;
    }
    if (strcmp(target, "spooler") == 0 || strncmp(target, "mule", 4) == 0 ||
        strncmp(target, "farm", 4) == 0 || strcmp(target, "subscribed") == 0)
        return TARGET_ABSENT;
    return TARGET_UNKNOWN;
}

/* ---- master --------------------------------------------------------------------------------- */

struct sig_entry {
    bool registered;
    char target[GY_SIGNAL_TARGET_MAX];
    uint64_t ids[(GY_SIGNAL_MAX_IDS + 1 + 63) / 64]; /* worker ids with a handler */
    int next_any;                                    /* TARGET_ANY's round: the id after */
    bool told; /* why it cannot be delivered is logged once, not at every timer tick */
};

struct sig_timer {
    int sig, secs, iterations, done; /* iterations 0: forever */
    bool rb;
    double due;
};

struct sig_cron {
    int fields[5];
    int sig;             /* a signal entry, or -1: a command */
    const char *command; /* from the options: lives as long as the config */
    bool unique;         /* --unique-cron: not again while the last run lives */
    pid_t pid;           /* the command's last run, while it lives; else -1 */
    time_t last;         /* the minute it last ran */
};

struct sig_filemon {
    int sig, wd;
    char path[GY_SIGNAL_PATH_MAX];
};

static struct {
    int nrecs;
    int (*sock)[2]; /* per worker record: [0] the master's end, [1] the worker's */
    int *rec_id;    /* the worker id of each record's process (signals_spawning) */
    sig_rec_of_id_fn rec_of_id;
    int max_id;
    struct sig_entry table[GY_SIGNALS];
    struct sig_timer timers[GY_SIGNAL_TABLE_MAX];
    int ntimers;
    struct sig_cron crons[2 * GY_SIGNAL_TABLE_MAX]; /* the app's, then the options' */
    int ncrons;
    struct sig_filemon mons[GY_SIGNAL_TABLE_MAX];
    int nmons;
    int inotify_fd;
    time_t last_minute;
} G = { .inotify_fd = -1 };

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool id_registered(const struct sig_entry *e, int id)
{
    return (e->ids[id / 64] >> (id % 64)) & 1;
}

/* Deliver sig to the process serving worker id; false if none or its socket is full. */
static bool deliver(int sig, int id)
{
    int rec = G.rec_of_id(id);
    if (rec < 0 || rec >= G.nrecs || G.sock[rec][0] < 0)
        return false;
    struct sig_msg m = { .op = SIGOP_DELIVER, .sig = (uint8_t)sig };
    if (send(G.sock[rec][0], &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        log_errno("signal %d: delivery to worker %d", sig, id);
        return false;
    }
    return true;
}

static void route(int sig)
{
    struct sig_entry *e = &G.table[sig];
    int n;
    enum sig_target_kind kind = signal_target_parse(e->target, &n);
    bool told = e->told;
    if (!e->registered) {
        if (!told)
            log_msg("signal %d: no worker registered a handler for it: not delivered", sig);
        e->told = true;
        return;
    }
    switch (kind) {
    case TARGET_ANY:
        /* The workers that registered it, in turn (uWSGI's: whichever reads its pool first). */
        for (int k = 0; k < G.max_id; k++) {
            int id = 1 + (e->next_any + k) % G.max_id;
            if (id_registered(e, id) && deliver(sig, id)) {
                e->next_any = id % G.max_id;
                break;
            }
        }
        return;
    case TARGET_ALL:
    case TARGET_ACTIVE:
        for (int id = 1; id <= G.max_id; id++)
            deliver(sig, id);
        return;
    case TARGET_WORKER:
        if (n <= G.max_id) {
            deliver(sig, n);
            return;
        }
        if (!told)
            log_msg("signal %d: invalid signal target: %s (%d workers)", sig, e->target, G.max_id);
        break;
    case TARGET_ABSENT:
        if (!told)
            log_msg("signal %d: target %s: gyre has no spooler, mules nor farms: not delivered",
                    sig, e->target);
        break;
    case TARGET_UNKNOWN:
        if (!told)
            log_msg("signal %d: ^^^ UNSUPPORTED SIGNAL TARGET: %s ^^^", sig, e->target);
        break;
    }
    e->told = true;
}

static int add_timer(int sig, int secs, bool rb, int iterations)
{
    for (int i = 0; i < G.ntimers; i++) {
        const struct sig_timer *t = &G.timers[i];
        if (t->sig == sig && t->secs == secs && t->rb == rb && t->iterations == iterations)
            return 0; /* another worker's registration of the same timer */
    }
    if (secs <= 0 || G.ntimers == GY_SIGNAL_TABLE_MAX) {
        log_msg(secs <= 0 ? "signal %d: a timer needs a positive number of seconds"
                          : "signal %d: you can register max 64 timers",
                sig);
        return -1;
    }
    G.timers[G.ntimers++] = (struct sig_timer){
        .sig = sig, .secs = secs, .rb = rb, .iterations = iterations, .due = mono_now() + secs
    };
    log_msg("[uwsgi-signal] %stimer for signal %d: every %d s%s", rb ? "rb " : "", sig, secs,
            rb && iterations ? " (a limited number of times)" : "");
    return 0;
}

static int add_cron(int sig, const int fields[5], const char *command, bool unique)
{
    for (int i = 0; sig >= 0 && i < G.ncrons; i++)
        if (G.crons[i].sig == sig && memcmp(G.crons[i].fields, fields, 5 * sizeof(int)) == 0)
            return 0;
    if (G.ncrons == (int)(sizeof(G.crons) / sizeof(G.crons[0]))) {
        log_msg("cron: you can register max %d crons", GY_SIGNAL_TABLE_MAX);
        return -1;
    }
    struct sig_cron *c = &G.crons[G.ncrons++];
    *c = (struct sig_cron){ .sig = sig, .command = command, .unique = unique, .pid = -1 };
    memcpy(c->fields, fields, 5 * sizeof(int));
    return 0;
}

static int add_filemon(int sig, const char *path)
{
    for (int i = 0; i < G.nmons; i++)
        if (G.mons[i].sig == sig && strcmp(G.mons[i].path, path) == 0)
            return 0;
    if (strlen(path) >= GY_SIGNAL_PATH_MAX - 1 || G.nmons == GY_SIGNAL_TABLE_MAX) {
        log_msg("signal %d: file monitor %s: too long a name, or max 64 file monitors", sig, path);
        return -1;
    }
    if (G.inotify_fd < 0) {
        log_msg("signal %d: file monitor %s: inotify is not available", sig, path);
        return -1;
    }
    int wd = inotify_add_watch(G.inotify_fd, path,
                               IN_ATTRIB | IN_CREATE | IN_MODIFY | IN_DELETE | IN_DELETE_SELF |
                                   IN_MOVE_SELF | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE);
    if (wd < 0) {
        log_errno("signal %d: file monitor %s", sig, path);
        return -1;
    }
    struct sig_filemon *m = &G.mons[G.nmons++];
    m->sig = sig;
    m->wd = wd;
    snprintf(m->path, sizeof(m->path), "%s", path);
    log_msg("[uwsgi-signal] file monitor for signal %d: %s", sig, path);
    return 0;
}

static int options_add(const struct gy_config *cfg)
{
    int sig, secs, fields[5];
    const char *cmd, *err;
    char path[GY_SIGNAL_PATH_MAX];
    bool unique;
    for (int i = 0; i < cfg->ntimers; i++)
        if (timer_spec_parse(cfg->timers[i], &sig, &secs) < 0 || add_timer(sig, secs, false, 0))
            return -1;
    for (int i = 0; i < cfg->nrbtimers; i++)
        if (timer_spec_parse(cfg->rbtimers[i], &sig, &secs) < 0 || add_timer(sig, secs, true, 0))
            return -1;
    for (int i = 0; i < cfg->ncrons; i++) {
        /* options.c checked the syntax: these parse. */
        unique = cfg->crons[i].unique;
        if (cfg->crons[i].cron2 ? cron2_parse(cfg->crons[i].spec, fields, &unique, &cmd, &err)
                                : cron_parse(cfg->crons[i].spec, fields, &cmd))
            return -1;
        if (!cmd || add_cron(-1, fields, cmd, unique) < 0)
            return -1;
    }
    for (int i = 0; i < cfg->nfs_signals; i++)
        if (file_signal_parse(cfg->fs_signals[i], path, sizeof(path), &sig) < 0 ||
            add_filemon(sig, path) < 0)
            return -1;
    return 0;
}

int signals_master_init(const struct gy_config *cfg, int nrecs, sig_rec_of_id_fn rec_of_id)
{
    G.nrecs = nrecs;
    G.rec_of_id = rec_of_id;
    G.max_id = cfg->processes < GY_SIGNAL_MAX_IDS ? cfg->processes : GY_SIGNAL_MAX_IDS;
    G.sock = calloc((size_t)nrecs, sizeof(*G.sock));
    G.rec_id = calloc((size_t)nrecs, sizeof(*G.rec_id));
    if (!G.sock || !G.rec_id) {
        log_errno("signals: memory");
        return -1;
    }
    /* Each record's socketpair is made when a worker is first forked into it: a master of
     * many workers holds two fds per record it uses, not per record it could use. */
    for (int r = 0; r < nrecs; r++)
        G.sock[r][0] = G.sock[r][1] = -1;
    G.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (G.inotify_fd < 0)
        log_errno("signals: inotify (file monitors will be refused)");
    G.last_minute = time(NULL) / 60;
    return options_add(cfg);
}

void signals_spawning(int rec, int id)
{
    G.rec_id[rec] = id;
    if (G.sock[rec][0] < 0 &&
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, G.sock[rec]) < 0) {
        /* The worker runs without signals: its calls say the master does not answer. */
        log_errno("signals: socketpair for worker %d", id);
        G.sock[rec][0] = G.sock[rec][1] = -1;
        return;
    }
    struct sig_msg m;
    for (int end = 0; end < 2; end++)
        while (recv(G.sock[rec][end], &m, sizeof(m), MSG_DONTWAIT) > 0) {
        }
}

static int worker_fd = -1;

void signals_child(int rec, int id)
{
    (void)id;
    for (int r = 0; r < G.nrecs; r++) {
        if (G.sock[r][0] < 0)
            continue;
        close(G.sock[r][0]);
        if (r != rec)
            close(G.sock[r][1]);
    }
    if (G.inotify_fd >= 0)
        close(G.inotify_fd);
    /* The worker waits for replies itself (poll): its end blocks no more than it asks. */
    worker_fd = G.sock[rec][1];
}

int signals_pollfds(struct pollfd *pfd, int max)
{
    int n = 0;
    if (G.inotify_fd >= 0 && n < max)
        pfd[n++] = (struct pollfd){ .fd = G.inotify_fd, .events = POLLIN };
    for (int r = 0; r < G.nrecs && n < max; r++)
        if (G.sock[r][0] >= 0)
            pfd[n++] = (struct pollfd){ .fd = G.sock[r][0], .events = POLLIN };
    return n;
}

static void reply(int rec, int status)
{
    struct sig_msg m = { .op = SIGOP_REPLY, .status = status };
    if (send(G.sock[rec][0], &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_errno("signals: reply to worker record %d", rec);
}

static void on_request(int rec, struct sig_msg *m)
{
    m->text[sizeof(m->text) - 1] = '\0';
    int status = 0;
    switch (m->op) {
    case SIGOP_REGISTER: {
        int id = G.rec_id[rec]; /* a starting worker's too: its app registers as it loads */
        struct sig_entry *e = &G.table[m->sig];
        if (id < 1 || id > GY_SIGNAL_MAX_IDS) {
            status = -1;
            break;
        }
        e->registered = true;
        e->told = false; /* a new target: a new reason to log, once */
        size_t len = strnlen(m->text, sizeof(e->target) - 1); /* the worker checked it */
        memcpy(e->target, m->text, len);
        e->target[len] = '\0';
        e->ids[id / 64] |= (uint64_t)1 << (id % 64);
        break;
    }
    case SIGOP_SIGNAL:
        route(m->sig);
        break;
    case SIGOP_TIMER:
        status = add_timer(m->sig, m->args[0], false, 0);
        break;
    case SIGOP_RBTIMER:
        status = add_timer(m->sig, m->args[0], true, m->args[1] > 0 ? m->args[1] : 0);
        break;
    case SIGOP_CRON:
        status = add_cron(m->sig, m->args, NULL, false);
        break;
    case SIGOP_FILEMON:
        status = add_filemon(m->sig, m->text);
        break;
    default:
        log_msg("signals: worker record %d sent an unknown request %d", rec, m->op);
        status = -1;
    }
    reply(rec, status);
}

static void inotify_read(void)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t len;
    bool fired[GY_SIGNAL_TABLE_MAX] = { false }; /* one signal per monitor per batch */
    while ((len = read(G.inotify_fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            for (int i = 0; i < G.nmons; i++)
                if (G.mons[i].wd == ev->wd)
                    fired[i] = true;
            p += sizeof(*ev) + ev->len;
        }
    }
    for (int i = 0; i < G.nmons; i++)
        if (fired[i]) {
            log_msg("[uwsgi-fsmon] %s has been modified", G.mons[i].path);
            route(G.mons[i].sig);
        }
}

void signals_events(const struct pollfd *pfd, int n)
{
    for (int i = 0; i < n; i++) {
        if (!(pfd[i].revents & POLLIN))
            continue;
        if (pfd[i].fd == G.inotify_fd) {
            inotify_read();
            continue;
        }
        for (int r = 0; r < G.nrecs; r++) {
            if (G.sock[r][0] != pfd[i].fd)
                continue;
            struct sig_msg m;
            while (recv(pfd[i].fd, &m, sizeof(m), MSG_DONTWAIT) == (ssize_t)sizeof(m))
                on_request(r, &m);
        }
    }
}

static void run_command(struct sig_cron *c)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_errno("[uwsgi-cron] %s", c->command);
        return;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", c->command, (char *)NULL);
        _exit(127);
    }
    c->pid = pid;
    log_msg("[uwsgi-cron] running \"%s\" (pid %d)", c->command, (int)pid);
}

static void cron_minute(time_t now)
{
    struct tm tm;
    if (!localtime_r(&now, &tm))
        return;
    for (int i = 0; i < G.ncrons; i++) {
        struct sig_cron *c = &G.crons[i];
        if (now / 60 == c->last || !cron_matches(&tm, c->fields[0], c->fields[1], c->fields[2],
                                                 c->fields[3], c->fields[4]))
            continue;
        c->last = now / 60;
        if (c->sig >= 0) {
            log_msg("[uwsgi-cron] routing signal %d", c->sig);
            route(c->sig);
        } else if (c->unique && c->pid >= 0) {
            log_msg("[uwsgi-cron] \"%s\" still running (pid %d): not started again", c->command,
                    (int)c->pid);
        } else {
            run_command(c);
        }
    }
}

void signals_tick(void)
{
    double t = mono_now();
    for (int i = 0; i < G.ntimers; i++) {
        struct sig_timer *tm = &G.timers[i];
        if (t < tm->due || (tm->iterations && tm->done >= tm->iterations))
            continue;
        tm->due += tm->secs;
        if (tm->due <= t) /* the master was held up: no burst of missed firings */
            tm->due = t + tm->secs;
        tm->done++;
        route(tm->sig);
    }
    time_t now = time(NULL);
    if (now / 60 != G.last_minute) {
        G.last_minute = now / 60;
        cron_minute(now);
    }
}

bool signals_reaped(pid_t pid, int status)
{
    for (int i = 0; i < G.ncrons; i++) {
        struct sig_cron *c = &G.crons[i];
        if (c->sig >= 0 || c->pid != pid)
            continue;
        c->pid = -1;
        if (WIFEXITED(status))
            log_msg("[uwsgi-cron] command \"%s\" (pid %d) exited with status %d", c->command,
                    (int)pid, WEXITSTATUS(status));
        else
            log_msg("[uwsgi-cron] command \"%s\" (pid %d) killed by signal %d", c->command,
                    (int)pid, WTERMSIG(status));
        return true;
    }
    return false;
}

/* ---- worker --------------------------------------------------------------------------------- */

static uint8_t kept[GY_SIGNALS]; /* deliveries read while waiting for a reply */
static int nkept;

int signals_worker_fd(void)
{
    return worker_fd;
}

static void keep(uint8_t sig)
{
    if (nkept == GY_SIGNALS) {
        log_msg("signal %d: %d signals already wait for this worker: dropped", sig, GY_SIGNALS);
        return;
    }
    kept[nkept++] = sig;
}

int signals_request(struct sig_msg *m)
{
    if (worker_fd < 0)
        return -1;
    if (send(worker_fd, m, sizeof(*m), MSG_NOSIGNAL) < 0) {
        log_errno("signals: request to the master");
        return -1;
    }
    double deadline = mono_now() + 5.0;
    for (;;) {
        struct sig_msg r;
        ssize_t n = recv(worker_fd, &r, sizeof(r), MSG_DONTWAIT);
        if (n == (ssize_t)sizeof(r)) {
            if (r.op == SIGOP_REPLY)
                return r.status;
            if (r.op == SIGOP_DELIVER)
                keep(r.sig);
            continue;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            log_msg("signals: the master is gone");
            return -1;
        }
        double left = deadline - mono_now();
        if (left <= 0) {
            log_msg("signals: the master did not answer within 5 s");
            return -1;
        }
        struct pollfd pfd = { .fd = worker_fd, .events = POLLIN };
        poll(&pfd, 1, (int)(left * 1000) + 1);
    }
}

int signals_next(void)
{
    if (nkept > 0) {
        int sig = kept[0];
        memmove(kept, kept + 1, (size_t)--nkept);
        return sig;
    }
    struct sig_msg m;
    while (worker_fd >= 0 && recv(worker_fd, &m, sizeof(m), MSG_DONTWAIT) == (ssize_t)sizeof(m))
        if (m.op == SIGOP_DELIVER)
            return m.sig;
    return -1;
}
