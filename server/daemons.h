/*
 * Processes that are not workers: the daemons the master attaches (--attach-daemon,
 * --smart-attach-daemon), gyre itself as a daemon (--daemonize), and process titles
 * (--auto-procname and friends). Plain C, no Python.
 */
#ifndef GYRE_DAEMONS_H
#define GYRE_DAEMONS_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

/* master.c's calls: start every daemon once the sockets are bound; give each child the master
 * reaped that is not a worker (true: it was a daemon's); on each tick, restart the daemons that
 * died (smart ones: whose pid file names no live process); on the way out, SIGTERM every daemon
 * and SIGKILL what is left after DAEMON_STOP_GRACE seconds. */
#define DAEMON_STOP_GRACE 5.0
int daemons_start(const struct gy_config *cfg);
bool daemons_reaped(pid_t pid, int status);
void daemons_tick(void);
void daemons_stop(void);

/* --daemonize LOGFILE: the caller's process exits 0, its child goes on in a session of its
 * own with stdin on /dev/null and stdout/stderr on LOGFILE (NULL: left where they are, e.g.
 * --logto). 0, or -1 with a line on stderr (still attached) when LOGFILE cannot be opened. */
int daemonize(const char *logfile);

/* Process titles. proctitle_init (main, before the options are read): the argv to use from
 * then on (a copy: the original's memory becomes the title shown by ps and /proc/PID/cmdline).
 * proctitle_set: the title, also the thread's name (prctl PR_SET_NAME, 15 bytes). */
char **proctitle_init(int argc, char **argv);
void proctitle_set(const char *title);
/* The title of the master (id 0) or worker id as --auto-procname, --procname-prefix[-spaced],
 * --procname-append, --procname, --procname-master ask; left alone when none is given. */
void proctitle_for(const struct gy_config *cfg, int id);

#endif
