/*
 * OS threads for the thread cores: start, park, unpark, and raise in one.
 *
 * Depends on: log.c (server/README)
 */
#include "threads.h"
#include "log.h"

#include <limits.h>
#include <signal.h>
#include <string.h>

/* The interpreter's frames need room: a smaller --threads-stacksize would crash the thread on
 * its first deep call instead of failing cleanly. */
#define MIN_STACK_KIB 128

static void *thread_main(void *arg)
{
    struct gy_thread *t = arg;
    PyGILState_STATE g = PyGILState_Ensure();
    t->ident = PyThread_get_thread_ident();
    t->run(t->arg);
    PyGILState_Release(g);
    return NULL;
}

int thread_start(struct gy_thread *t, unsigned long stack_kib, void (*run)(void *), void *arg)
{
    static bool warned;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->signalled = false;
    t->run = run;
    t->arg = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (stack_kib) {
        if (stack_kib < MIN_STACK_KIB) {
            if (!warned)
                log_msg("--threads-stacksize %lu KiB is too small for the interpreter: using "
                        "%d KiB",
                        stack_kib, MIN_STACK_KIB);
            warned = true;
            stack_kib = MIN_STACK_KIB;
        }
        pthread_attr_setstacksize(&attr, (size_t)stack_kib * 1024);
    }
    /* The new thread inherits this mask: signals stay the loop thread's (its handlers write to
     * the worker's signal pipe), and the app's blocking calls on the thread see no EINTR. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&t->id, &attr, thread_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err) {
        log_msg("cannot start a thread: %s", strerror(err));
        return -1;
    }
    return 0;
}

void thread_park(struct gy_thread *t)
{
    Py_BEGIN_ALLOW_THREADS;
    pthread_mutex_lock(&t->lock);
    while (!t->signalled)
        pthread_cond_wait(&t->cond, &t->lock);
    t->signalled = false;
    pthread_mutex_unlock(&t->lock);
    Py_END_ALLOW_THREADS;
}

void thread_unpark(struct gy_thread *t)
{
    pthread_mutex_lock(&t->lock);
    t->signalled = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

void thread_raise(struct gy_thread *t, PyObject *exc)
{
    PyThreadState_SetAsyncExc(t->ident, exc);
}
