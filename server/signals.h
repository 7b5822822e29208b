/*
 * uWSGI signals (signals.c): 256 numbered events a worker registers a handler for
 * (uwsgi.register_signal), raised by uwsgi.signal(), by timers, cron entries and file monitors,
 * and routed by the master to the worker(s) the registration's target names. Plain C.
 *
 * The master owns the table of registered signals, the timers, the cron entries (signal ones
 * and --cron commands) and the inotify file monitors: one owner, no shared memory to lock.
 * A worker talks to it over a socketpair of its own (SOCK_SEQPACKET: one message per record),
 * made by the master for each worker record before the fork:
 *   worker -> master  a request (register, signal, add a timer/cron/monitor), answered at once
 *                     by a SIGOP_REPLY with its status: uWSGI's calls fail synchronously, so
 *                     do gyre's (a full table is a ValueError in the app, not a log line);
 *   master -> worker  SIGOP_DELIVER: run the handler of this signal.
 * gyre's workers load the app after the fork (uWSGI's --lazy-apps), so every worker registers
 * its own handler: the master records which worker ids did, and a timer or cron entry that a
 * second worker adds again (the same signal, the same schedule) is the one already there, not
 * a second one (uWSGI's lazy-apps would run it once per worker).
 */
#ifndef GYRE_SIGNALS_H
#define GYRE_SIGNALS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct gy_config;
struct pollfd;

#define GY_SIGNALS 256
#define GY_SIGNAL_TARGET_MAX 64 /* uWSGI's receiver[64] */
#define GY_SIGNAL_PATH_MAX 256  /* uWSGI's file monitor names: at most 254 bytes */
#define GY_SIGNAL_TABLE_MAX 64  /* uWSGI's: timers, rb timers, crons, file monitors each */
#define GY_SIGNAL_MAX_IDS 1024  /* worker ids 1..this */

enum sig_op {
    SIGOP_REGISTER = 1, /* sig, text: the target; the worker id comes from the socket */
    SIGOP_SIGNAL,       /* sig: route it */
    SIGOP_TIMER,        /* sig, args[0]: seconds */
    SIGOP_RBTIMER,      /* sig, args[0]: seconds, args[1]: iterations (0: forever) */
    SIGOP_CRON,         /* sig, args: minute hour day month week */
    SIGOP_FILEMON,      /* sig, text: the path */
    SIGOP_REPLY,        /* status: 0, or -1 (refused; the master logged why) */
    SIGOP_DELIVER,      /* sig: run its handler */
};

struct sig_msg {
    uint8_t op;
    uint8_t sig;
    int32_t status;
    int32_t args[5];
    char text[GY_SIGNAL_PATH_MAX];
};

/* ---- pure parts (unit-tested) ------------------------------------------------------------- */

/* uWSGI's cron rule: a value matches its field, -1 any, -N every N (the field divisible by N);
 * the month is 1..12, the week day 0..6 (7 is Sunday too); day of month and day of week are
 * ORed when both are given, as crontab does. t is a localtime(). */
bool cron_matches(const struct tm *t, int minute, int hour, int day, int month, int week);

/* A cron spec "MIN HOUR DAY MON WEEK[ CMD]" (uWSGI's --cron: five integers, -1 any, -N every N):
 * the five fields, and where the command starts (NULL: none given). -1 if malformed. */
int cron_parse(const char *spec, int fields[5], const char **cmd);
/* uWSGI's --cron2 "minute=M,hour=H,...,unique=1 CMD" (keys: minute hour day month week unique;
 * a missing one is -1). -1 with *err when malformed or a key is not one gyre has. */
int cron2_parse(const char *spec, int fields[5], bool *unique, const char **cmd, const char **err);
/* "SIG SECS" (--timer, --rbtimer) and "FILE SIG" (--touch-signal, --fs-signal): -1 if malformed. */
int timer_spec_parse(const char *spec, int *sig, int *secs);
int file_signal_parse(const char *spec, char *path, size_t pathlen, int *sig);

enum sig_target_kind {
    TARGET_ANY,     /* "", "worker", "worker0": one worker that has a handler */
    TARGET_ALL,     /* "workers" */
    TARGET_ACTIVE,  /* "active-workers": the running ones (gyre's only ones) */
    TARGET_WORKER,  /* "workerN" */
    TARGET_ABSENT,  /* spooler, mules, farms, subscribed: uWSGI's processes gyre has none of */
    TARGET_UNKNOWN, /* anything else: uWSGI's "UNSUPPORTED SIGNAL TARGET" */
};
/* The target of a registration; *n is N of workerN. */
enum sig_target_kind signal_target_parse(const char *target, int *n);

/* ---- master ----------------------------------------------------------------------------- */

/* Which worker record serves worker `id` now (-1: none), asked of master.c at each delivery. */
typedef int (*sig_rec_of_id_fn)(int id);

/* Before the first fork: a socketpair per worker record, inotify, and the options' timers,
 * crons and file monitors. -1 (logged) if the sockets cannot be made. */
int signals_master_init(const struct gy_config *cfg, int nrecs, sig_rec_of_id_fn rec_of_id);
/* About to fork worker id's process in record rec: what the record's previous process left
 * unread is dropped. */
void signals_spawning(int rec, int id);
/* In the forked worker of record rec: keep its own end, close the master's and the others'. */
void signals_child(int rec, int id);
/* The master's poll: fds to watch (at most max), then their events, once per loop turn. */
int signals_pollfds(struct pollfd *pfd, int max);
void signals_events(const struct pollfd *pfd, int n);
/* Every master loop turn (100 ms at most apart): the timers, cron at each new minute. */
void signals_tick(void);
/* A child the master reaped: true if it was a --cron command (logged here). */
bool signals_reaped(pid_t pid, int status);

/* ---- worker ----------------------------------------------------------------------------- */

/* The worker's end of its socketpair, or -1 without a master. */
int signals_worker_fd(void);
/* Send m and wait (up to 5 s) for the master's reply: its status, or -1 (logged) when the
 * master does not answer. Deliveries that come meanwhile are kept for signals_next. */
int signals_request(struct sig_msg *m);
/* The next signal delivered to this worker (kept, or read without waiting), or -1. */
int signals_next(void);

#endif
