/*
 * The Tornado loop engine: every wait of the server is an IOLoop callback.
 *
 * engine.c owns the one IOLoop (Tornado's asyncio-backed loop, also IOLoop.current() and
 * IOLoop.instance() for the app) and turns its Python callbacks into C calls: a file descriptor
 * is watched with IOLoop.add_handler/update_handler/remove_handler and its events are routed to
 * the C handler registered for it; timers are IOLoop.call_later.
 */
#ifndef GYRE_ENGINE_H
#define GYRE_ENGINE_H

#include <Python.h>
#include <stdbool.h>

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

/* Route fd's events to fn(ctx, ...) and watch it for `events` (0 stops watching, the handler
 * stays registered). Changing events of a watched fd is cheap: one update_handler. Returns -1
 * with a Python error set if the IOLoop refused. */
int engine_watch(int fd, int events, engine_fd_fn fn, void *ctx);
/* Stop watching fd and forget its handler; call before closing fd. */
void engine_forget(int fd);

/* Call fn(ctx) after `delay` seconds, once, from the loop. Returns the IOLoop's timeout handle
 * (a new reference) for engine_cancel, or NULL with a Python error set. */
PyObject *engine_call_later(double delay, void (*fn)(void *ctx), void *ctx);
void engine_cancel(PyObject *handle);

/* Run the loop until engine_stop(). */
int engine_run(void);
void engine_stop(void);

/* Seconds on the loop's monotonic clock. */
double engine_now(void);

#endif
