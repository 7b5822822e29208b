/*
 * Hooks: uWSGI's --hook-<phase> ACTION:ARG and --exec-<phase> CMD, run at fixed points of a
 * process's life. Plain C, no Python.
 *
 *   asap            main: right after the options are read (before --daemonize)
 *   pre-jail, in-jail  the master (or the only process), then as-root: uWSGI runs them even
 *                   without a jail; post-jail it runs only after one, and gyre has none
 *   as-root         the master (or the only process) before any worker drops privileges
 *   as-user         once, as --uid/--gid: a child of the master that drops them first
 *   master-start    the master, once its first workers are forked
 *   post-fork       each worker, right after its fork
 *   pre-app         each worker, before it loads the app (gyre always loads it in the worker)
 *   post-app        each worker, after the app loaded
 *   accepting       each worker, right before it starts accepting; then accepting-once
 *                   (the first process of each worker id since the start or the last reload),
 *                   accepting1 (worker 1), accepting1-once (both)
 *   as-user-atexit  the master (or the only process) on its way out
 *
 * A hook that fails ends the instance, as in uWSGI ("FATAL hook failed"); hooks_check says
 * at start-up what would never run (an unknown action), before any hook runs.
 */
#ifndef GYRE_HOOKS_H
#define GYRE_HOOKS_H

#include "config.h"

enum hook_phase {
    HOOK_ASAP,
    HOOK_PRE_JAIL,
    HOOK_IN_JAIL,
    HOOK_POST_JAIL,
    HOOK_AS_ROOT,
    HOOK_AS_USER,
    HOOK_MASTER_START,
    HOOK_POST_FORK,
    HOOK_PRE_APP,
    HOOK_POST_APP,
    HOOK_ACCEPTING,
    HOOK_ACCEPTING_ONCE,
    HOOK_ACCEPTING1,
    HOOK_ACCEPTING1_ONCE,
    HOOK_AS_USER_ATEXIT,
    HOOK_NPHASES,
};
_Static_assert(HOOK_NPHASES == GY_HOOK_PHASES, "config.h's GY_HOOK_PHASES");

/* unix_signal:SIGNUM FUNCTION (uWSGI's way to say what a signal does to the master, e.g.
 * "unix_signal:15 gracefully_kill_them_all"): the master registers who carries it out; in
 * another process the hook is logged as having no effect (its signals are the master's to
 * give). The function returns 0, or -1 with a log line. */
typedef int (*hook_unix_signal_fn)(int signo, const char *function);
void hooks_set_unix_signal(hook_unix_signal_fn fn);

/* Every hook of every phase names an action gyre has: 0, or -1 with a log line. */
int hooks_check(const struct gy_config *cfg);
/* Run a phase's hooks in order: 0, or -1 once one failed (logged; the rest do not run). */
int hooks_run(const struct gy_config *cfg, enum hook_phase phase);
bool hooks_any(const struct gy_config *cfg, enum hook_phase phase);

#endif
