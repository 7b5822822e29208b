/*
 * The Tornado loop engine: every wait of the server is an IOLoop callback.
 *
 * engine.c owns the one IOLoop (Tornado's asyncio-backed loop, also IOLoop.current() and
 * IOLoop.instance() for the app) and turns its Python callbacks into C calls: a file descriptor
 * is watched with IOLoop.add_handler/update_handler/remove_handler (or, for client connections,
 * through gyre's epoll set, itself one IOLoop handler) and its events are routed to the C
 * handler registered for it; timers are IOLoop.call_later.
 */
#ifndef GYRE_ENGINE_H
#define GYRE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

/* Python's object type, declared as Python.h declares it (a typedef may be repeated in C11), so
 * that the plain C files using the loop need not include Python.h. */
typedef struct _object PyObject;

enum {
    EV_READ = 0x001,  /* tornado.ioloop.IOLoop.READ */
    EV_WRITE = 0x004, /* IOLoop.WRITE */
    EV_ERROR = 0x018, /* IOLoop.ERROR */
};

typedef void (*engine_fd_fn)(void *ctx, int fd, int events);

/* Create the asyncio event loop and the IOLoop on top of it. Needs Python initialised. */
int engine_init(void);
/* The IOLoop object (borrowed). */
PyObject *engine_ioloop(void);

/* Route fd's events to fn(ctx, ...) and watch it for `events` with the IOLoop's own
 * add_handler/update_handler (0 stops watching, the handler stays registered). For the few
 * long-lived fds: listening sockets, the signal pipe. Returns -1 if the IOLoop refused; why is
 * logged here (the callers are plain C: no Python error is left set). */
int engine_watch(int fd, int events, engine_fd_fn fn, void *ctx);
/* Stop watching fd and forget its handler; call before closing fd. */
void engine_forget(int fd);

/*
 * The same for client connections, which come and go thousands of times a second: they are
 * kept in gyre's own epoll set, and that set's fd is one IOLoop handler. Registering a client
 * fd is then one epoll_ctl from C instead of two trips through Tornado's and asyncio's Python
 * (add_handler, selector.register), and readiness still arrives only through the IOLoop: no
 * second loop, nothing blocks it. events 0 stops watching.
 */
int engine_poll(int fd, int events, engine_fd_fn fn, void *ctx); /* -1: logged, errno set */
void engine_unpoll(int fd);

/* Call fn(ctx) after `delay` seconds, once, from the loop. Returns the IOLoop's timeout handle
 * (a new reference) for engine_cancel, or NULL with a Python error set. */
PyObject *engine_call_later(double delay, void (*fn)(void *ctx), void *ctx);
void engine_cancel(PyObject *handle);

/* The same for plain C files: a one-shot timer that owns its handle. Armed at most once at a
 * time; disarmed before fn runs, so that fn may arm it again. Never moved while armed. */
struct engine_timer {
    PyObject *handle; /* the IOLoop's, while armed */
    void (*fn)(void *ctx);
    void *ctx;
};
/* Arm t unless it is armed. Returns -1 if the loop refused (logged here). */
int engine_timer_arm(struct engine_timer *t, double delay, void (*fn)(void *ctx), void *ctx);
void engine_timer_disarm(struct engine_timer *t);
static inline bool engine_timer_armed(const struct engine_timer *t)
{
    return t->handle != NULL;
}

/*
 * Other threads (thread cores, threads.c) may touch gyre's C state while they hold the GIL, and
 * may poll client fds (engine_poll is one epoll_ctl), but the IOLoop itself is the loop
 * thread's alone: asyncio's timers and handlers are not thread-safe. What another thread needs
 * done there is posted: the task runs on the loop's next turn, once however often it is posted
 * meanwhile (it should recompute what to do, not carry arguments). Posting takes no GIL and
 * calls no Python.
 */
struct engine_task {
    void (*fn)(void *ctx);
    void *ctx;
    struct engine_task *next; /* in the queue, while queued */
    bool queued;
};
void engine_post(struct engine_task *t);
bool engine_on_loop_thread(void);

/* Run the loop until engine_stop(). */
int engine_run(void);
void engine_stop(void);

/* Seconds on the loop's monotonic clock. */
double engine_now(void);

#endif
