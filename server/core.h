/*
 * The Python side of the server: greenlet cores (cores.c), PEP 3333 (wsgi.c), wsgi.input
 * (input.c), the `gyre` module (pymodule.c) and the `uwsgi` module (uwsgimodule.c). The only
 * server header that includes Python.h: the rest of the server is plain C.
 */
#ifndef GYRE_CORE_H
#define GYRE_CORE_H

#include <Python.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "response.h"
#include "scoreboard.h"
#include "threads.h"

enum core_wait {
    WAIT_NONE,   /* running, or suspended by the app itself */
    WAIT_FD,     /* gyre waits for its client socket */
    WAIT_TIMER,  /* gyre.sleep() */
    WAIT_FUTURE, /* gyre.wait() */

    WAIT_WEBSOCKET, /* uwsgi.websocket_recv(): an idle WebSocket (--harakiri spares it) */
};

struct gy_core {
    int id;
    PyObject *id_obj; /* id as an int, made at the core's first request: its environ's gyre.core */
    bool busy;
    struct gy_thread *thread; /* a thread core's OS thread (--threads); NULL: a greenlet core */
    PyObject *gr;             /* the core's greenlet, or NULL before its first request */
    bool gr_owned;            /* gyre holds a reference to gr (not while the app holds it) */
    struct gy_conn *conn;
    uint64_t gen; /* request count: stale resumers and inputs check it */

    enum core_wait wait;
    int wake;           /* why a gyre wait ended: enum io_result */
    bool app_suspended; /* the app switched to the loop on its own */
    double suspended_since;

    bool harakiri;        /* cancelled by --harakiri */
    double harakiri_at;   /* when (a thread core gets --harakiri-grace to return) */
    double user_harakiri; /* uwsgi.set_user_harakiri(s): this request's own limit, loop time; 0 */

    /* --harakiri counts from here (websocket_recv handed the app a message); 0: from the
     * request's start */
    double harakiri_from;
    struct gy_websocket *ws; /* the request's WebSocket after its handshake (websocket.c) */
    /* Called by wsgi_serve once the app is done, before the response is finished: what set it
     * (websocket.c) ends its part of the request. A pointer, so that wsgi.c does not depend on
     * the parts above it. Reset for each request. */
    void (*request_end)(struct gy_core *c);

    bool stuck; /* a thread core past its grace: the worker is to be recycled */
    struct gy_response resp;
    uint64_t switches;           /* switches into the core during this request */
    struct route_outcome *route; /* what the routing rules decided (wsgi_route.c), or NULL */
    PyObject *spool;             /* --post-buffering's file for this request, or NULL */
    PyObject *logvars; /* uwsgi.set_logvar's for this request: a dict of str to bytes, or NULL */
    bool log_this;     /* uwsgi.log_this_request(): logged even under --disable-logging */
    PyObject *environ; /* the request's, while the app runs (borrowed): uwsgi.env */
    struct gy_core *next_free;
    struct gy_core *next_wake; /* a thread core to wake when the loop next waits */
    bool wake_queued;
    PyObject *task; /* core_run_task's work, handed to the core instead of a request */
};

struct gy_config;

/* cores.c */
int cores_init(const struct gy_config *cfg);
void core_enter(struct gy_core *c); /* switch into a core from the loop */
int core_suspend(struct gy_core *c, enum core_wait wait);
struct gy_core *core_current(void); /* the core running now, or NULL */
/* Work that is no request (a uWSGI signal's handler), from the loop: fn() runs in a free
 * greenlet core as a request runs there, so it may suspend (gyre.sleep); the core is busy until
 * fn returns, then takes the queue's next request or goes idle, as after a request. fn's
 * exception is printed. false: no greenlet core is free (thread cores take no tasks). */
bool core_run_task(PyObject *fn);
bool core_in_loop_greenlet(void); /* the loop's greenlet runs, not a core's */
void core_set_activity(struct gy_core *c, enum core_activity a); /* for stats */
/* The loop is about to wait for events (its selector): wake the thread cores it handed work
 * to meanwhile. Woken then, a thread finds the GIL free instead of waking only to wait for it
 * while the loop still runs its callbacks: a context switch less per request. */
void cores_loop_waits(void);
/* What the busy cores and open connections hold now (--stats' "memory"): walks every core. */
void cores_account_memory(struct sb_memory *m);
/* The exception --harakiri raises in a thread core (gyre.Harakiri, a BaseException). */
PyObject *core_harakiri_error(void);

/* wsgi.c */
int wsgi_init(void);
void wsgi_set_app(PyObject *app);   /* the WSGI callable; the reference is stolen */
bool wsgi_serve(struct gy_core *c); /* false when the core's greenlet must end */
/* From the loop, for a thread core stuck in its request past --harakiri-grace: a 500 if
 * nothing of the response went out, and whatever the thread writes later is dropped. */
void wsgi_answer_stuck(struct gy_core *c);

/* input.c */
int input_init(void);
PyObject *input_new(struct gy_core *c);
/* The core still serving the request `input` (a wsgi.input) belongs to, or NULL with a
 * RuntimeError naming `what`. The request's other callables carry their input as a ticket. */
struct gy_core *input_owner(PyObject *input, const char *what);

/* --post-buffering: the body, when longer than the threshold (or of unknown length), read
 * whole into an unlinked temporary file that becomes the environ's wsgi.input (and c->spool,
 * closed by input_spool_close at the end of the request). */
enum input_spool_result {
    INPUT_SPOOL_OK = 0,
    INPUT_SPOOL_TOO_LARGE = 1,   /* over limit (--limit-post) */
    INPUT_SPOOL_FAILED = -1,     /* a Python error is set */
    INPUT_SPOOL_CLIENT_GONE = -2 /* logged */
};
enum input_spool_result input_spool(struct gy_core *c, PyObject *env, unsigned long long limit,
                                    size_t bufsize);
void input_spool_close(struct gy_core *c);

/* pymodule.c */
PyObject *PyInit_gyre(void);
int pymodule_init(void);

/* What gyre answers as uwsgi.version (the module's, and the environ's): the uWSGI API level it
 * follows, and that it is gyre. */
#define UWSGI_API_VERSION "2.0.21"
#define UWSGI_VERSION_STRING UWSGI_API_VERSION "-gyre-" GYRE_VERSION

/* uwsgimodule.c: the `uwsgi` module (uWSGI's API), and its post-fork hook (once the app is
 * loaded in the worker: uwsgidecorators' @postfork). */
PyObject *PyInit_uwsgi(void);
void uwsgimodule_post_fork(void);
/* uwsgi_async.c: wait_fd_read, suspend, async_sleep, ready_fd ... set_user_harakiri */
extern PyMethodDef uwsgi_async_methods[];
/* uwsgi_process.c: connection_fd, log_this_request, setprocname; the `sockets` list */
extern PyMethodDef uwsgi_process_methods[];
PyObject *uwsgi_process_sockets(void);
/* uwsgi_metrics.c: uwsgi.metric_* (added to the module by PyInit_uwsgi) */
extern PyMethodDef uwsgi_metrics_methods[];
/* uwsgi_cache.c: uwsgi.cache_*, added to the module by PyInit_uwsgi */
extern PyMethodDef uwsgi_cache_methods[];
/* uwsgi_websocket.c: uwsgi.websocket_*, added to the module by PyInit_uwsgi */
extern PyMethodDef uwsgi_websocket_methods[];
/* uwsgi_signals.c: uWSGI signals' functions (added to the module by PyInit_uwsgi), and the
 * worker's signal socket watched by the loop once the app is loaded (0, or -1 logged). */
extern PyMethodDef uwsgi_signals_methods[];
int uwsgi_signals_start(void);

#endif
