/*
 * OS threads that run Python beside the loop (threads.c): the thread cores of --threads
 * (cores.c). Each parks on a condition variable, with the GIL released, until another thread
 * unparks it. gyre's C state is shared under the GIL: a thread core holds it while it runs
 * gyre's code and releases it only where it parks (or where Python code it calls does).
 */
#ifndef GYRE_THREADS_H
#define GYRE_THREADS_H

#include <Python.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct gy_thread {
    pthread_t id;
    unsigned long ident; /* PyThread_get_thread_ident(), set by the thread itself */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool signalled; /* unparked, not yet seen by the thread */
    void (*run)(void *arg);
    void *arg;
    char name[32]; /* threading's name for it */
};

/* Start t running run(arg) with the GIL held, stack_kib KiB of stack (0: the system's), every
 * signal blocked (the loop's thread takes them). From a thread holding the GIL. -1: logged. */
int thread_start(struct gy_thread *t, unsigned long stack_kib, void (*run)(void *), void *arg);
/* From t itself, holding the GIL: wait until unparked (returns at once if it was unparked
 * since it last returned), the GIL released meanwhile. */
void thread_park(struct gy_thread *t);
/* From any thread. */
void thread_unpark(struct gy_thread *t);
/* Raise exc in t at its next Python bytecode (NULL: withdraw one not raised yet). */
void thread_raise(struct gy_thread *t, PyObject *exc);

#endif
