/*
 * Master and workers (master.c, worker.c), and the stats servers the master runs (stats.c).
 *
 * Each worker process has a slot of the scoreboard (scoreboard.h) that it writes and the master
 * reads: the heartbeat shows its loop is alive (--harakiri kills a worker whose loop stopped),
 * the counters feed stats and metrics. Workers tell the master about themselves over one pipe,
 * in records of a few bytes (atomic below PIPE_BUF). Plain C, no Python.
 */
#ifndef GYRE_PROCESS_H
#define GYRE_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

enum gy_msg_type {
    MSG_READY = 1,  /* app loaded, accepting */
    MSG_RETIRE = 2, /* --max-requests/--reload-on-rss reached: replace me */
    MSG_FATAL = 3,  /* a hook failed: end the instance, as uWSGI does */
};

struct gy_msg {
    int type;
    int rec; /* the master's record of the worker */
    pid_t pid;
};

struct gy_worker_link {
    int id; /* 1..--processes, as uWSGI numbers workers */
    int rec;
    int notify_fd; /* the pipe to the master */
    bool first;    /* the first process of this id since the start or the last reload */
    pid_t master;  /* --no-orphans: the parent it must outlive no longer than */
};

/* uWSGI's two mercies: --worker-reload-mercy is the time each worker gets to finish on a stop
 * or a reload, --reload-mercy the bound of the whole stop or reload. gyre's workers finish in
 * parallel, so a worker gets the smaller of those given; with neither, gyre's defaults: 5 s on
 * a stop (below docker's and systemd's own kill), 30 s on a reload (nothing waits on it). */
static inline double worker_mercy(const struct gy_config *cfg, bool reload)
{
    if (cfg->worker_reload_mercy_given && cfg->reload_mercy_given)
        return cfg->stop_grace < cfg->reload_mercy ? cfg->stop_grace : cfg->reload_mercy;
    if (cfg->worker_reload_mercy_given)
        return cfg->stop_grace;
    if (cfg->reload_mercy_given)
        return cfg->reload_mercy;
    return reload ? cfg->reload_mercy : cfg->stop_grace;
}

/* master.c, called by main once the options are read and the log is open: check the hooks,
 * run --hook-asap, --daemonize. 0, or -1 (logged): gyre exits 1. */
int process_prepare(struct gy_config *cfg);

/* worker.c: serve until stopped; link is NULL without a master. Returns the exit status. */
int worker_run(struct gy_config *cfg, const struct gy_worker_link *link);
/* A process's address space and resident set in MiB (0 when it is gone): the worker's own
 * --reload-on-rss/--reload-on-as and the master's checks of its workers. */
void proc_mem_mib(pid_t pid, unsigned long *as, unsigned long *rss);
/* master.c: bind, fork and manage the workers. Returns the exit status. */
int master_run(struct gy_config *cfg);
/* The loud line uWSGI also logs when root runs the app without --uid. */
void log_root_warning(const struct gy_config *cfg);
/* Drop to --uid/--gid (no-op when not given). -1 with a log line on failure. */
int drop_privileges(const struct gy_config *cfg);

/* stats.c: --stats and --metrics-http, served by the master or the only process */
int stats_open(void);  /* bind (before the first fork) */
int stats_start(void); /* serve, from a thread of its own */
void stats_close(bool unlink_files);
/* Connections waiting to be accepted on a listening socket: its backlog now. */
int listen_queue(int fd);

#endif
