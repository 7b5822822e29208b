/*
 * uWSGI's --locks (locks.c): robust, process-shared mutexes in a shared mapping made before the
 * master forks, so that every worker shares them. The `uwsgi` module (uwsgimodule.c) takes
 * and releases them. Plain C.
 */
#ifndef GYRE_LOCKS_H
#define GYRE_LOCKS_H

#include <pthread.h>
#include <sys/types.h>

struct gy_lock {
    pthread_mutex_t m;
    volatile pid_t pid; /* the holder, for a log line when it died holding it */
};

struct gy_locks {
    char *slots; /* n + 1 of them (uWSGI's lock 0 and --locks N more), or NULL */
    int n;
};

/* Map and set up locks 0..n; -1 with errno set. */
int locks_create(struct gy_locks *l, int n);
struct gy_lock *locks_at(const struct gy_locks *l, int i);

#endif
