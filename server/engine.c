/*
 * Depends on: log.c (server/README)
 */
#include <Python.h>

#include "engine.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define EPOLL_BATCH 16

/* What is known of one file descriptor. Indexed by fd, like redis's ae and nginx's event
 * arrays: the kernel hands out the lowest free numbers, so the table stays dense. */
struct fd_slot {
    engine_fd_fn fn;
    void *ctx;
    int events;      /* what the IOLoop (or gyre's epoll set) is watching now */
    bool registered; /* add_handler (or EPOLL_CTL_ADD) done, not removed yet */
};

static struct {
    PyObject *ioloop;
    PyObject *add_handler, *update_handler, *remove_handler; /* bound methods of ioloop */
    PyObject *call_later, *remove_timeout;
    PyObject *aio_call_later; /* the asyncio loop's call_later, bound */
    PyObject *run_callback;   /* the IOLoop's _run_callback, bound */
    PyObject *partial;        /* functools.partial */
    PyObject *ioloop_time;    /* the IOLoop's time(), bound: call_at's clock */
    PyObject *tornado_call_later, *tornado_call_at; /* Tornado's own, bound: unusual calls */
    PyObject *aio_loop;                             /* the asyncio loop under the IOLoop */
    PyObject *real_get_event_loop;
    bool running;          /* in engine_run, in this process (a fork of the app's clears it) */
    PyObject *on_fd_event; /* the one Python callable every fd handler is */
    struct fd_slot *slots;
    int nslots;
    int epfd; /* gyre's epoll set of client connections */
    pthread_t loop_thread;

    /* Tasks other threads posted (engine_post), run on the loop's next turn. */
    pthread_mutex_t posted_lock;
    struct engine_task *posted, **posted_tail;
    int posted_fd; /* an eventfd, readable while tasks wait */
} E = { .posted_lock = PTHREAD_MUTEX_INITIALIZER, .posted_fd = -1 };

/* ---- C callbacks as Python callables ------------------------------------------------------ */

typedef struct {
    PyObject_HEAD void (*fn)(void *ctx);
    void *ctx;
} CCallback;

static PyObject *ccallback_call(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    CCallback *cb = (CCallback *)self;
    cb->fn(cb->ctx);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyTypeObject CCallbackType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gyre._CCallback",
    .tp_basicsize = sizeof(CCallback),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_call = ccallback_call,
    .tp_doc = "a C function called by the IOLoop",
};

/* ---- fd events ---------------------------------------------------------------------------- */

static PyObject *on_fd_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "fd handler takes 2 arguments");
    long fd = PyLong_AsLong(args[0]);
    long events = PyLong_AsLong(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (fd >= 0 && fd < E.nslots && E.slots[fd].fn)
        E.slots[fd].fn(E.slots[fd].ctx, (int)fd, (int)events);
    if (PyErr_Occurred()) {
        /* A handler must deal with its own errors; one escaping here is a bug worth seeing,
         * but never a reason to stop the loop. */
        PyErr_Print();
    }
    Py_RETURN_NONE;
}

static PyMethodDef on_fd_event_def = { "_on_fd_event", (PyCFunction)(void (*)(void))on_fd_event,
                                       METH_FASTCALL, NULL };

static struct fd_slot *slot_for(int fd)
{
    if (fd < 0)
        return NULL;
    if (fd >= E.nslots) {
        int n = E.nslots ? E.nslots : 1024;
        while (n <= fd)
            n *= 2;
        struct fd_slot *s = realloc(E.slots, (size_t)n * sizeof(*s));
        if (!s)
            return NULL;
        for (int i = E.nslots; i < n; i++)
            s[i] = (struct fd_slot){ 0 };
        E.slots = s;
        E.nslots = n;
    }
    return &E.slots[fd];
}

static int call_handler_method(PyObject *method, int fd, int events, bool with_handler)
{
    PyObject *fdobj = PyLong_FromLong(fd);
    PyObject *evobj = PyLong_FromLong(events);
    PyObject *r = NULL;
    if (fdobj && evobj) {
        if (with_handler) {
            PyObject *args[3] = { fdobj, E.on_fd_event, evobj };
            r = PyObject_Vectorcall(method, args, 3, NULL);
        } else {
            PyObject *args[2] = { fdobj, evobj };
            r = PyObject_Vectorcall(method, args, 2, NULL);
        }
    }
    Py_XDECREF(fdobj);
    Py_XDECREF(evobj);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The IOLoop's own calls are the loop thread's: another thread posts a task (engine_post). */
static bool refuse_off_loop(const char *what)
{
    if (engine_on_loop_thread())
        return false;
    log_msg("bug: %s called off the loop's thread: refused", what);
    return true;
}

int engine_watch(int fd, int events, engine_fd_fn fn, void *ctx)
{
    if (refuse_off_loop("engine_watch"))
        return -1;
    struct fd_slot *s = slot_for(fd);
    if (!s) {
        log_msg("watching fd %d: out of memory", fd);
        return -1;
    }
    s->fn = fn;
    s->ctx = ctx;
    if (s->registered && s->events == events)
        return 0;
    int rc;
    if (!s->registered)
        rc = events ? call_handler_method(E.add_handler, fd, events, true) : 0;
    else
        rc = call_handler_method(E.update_handler, fd, events, false);
    if (rc == 0) {
        s->registered = s->registered || events;
        s->events = events;
    } else {
        PyErr_Print(); /* the IOLoop's exception says why */
    }
    return rc;
}

void engine_forget(int fd)
{
    if (fd < 0 || fd >= E.nslots)
        return;
    struct fd_slot *s = &E.slots[fd];
    if (s->registered) {
        PyObject *fdobj = PyLong_FromLong(fd);
        PyObject *r = fdobj ? PyObject_CallOneArg(E.remove_handler, fdobj) : NULL;
        if (!r)
            PyErr_Print();
        Py_XDECREF(r);
        Py_XDECREF(fdobj);
    }
    *s = (struct fd_slot){ 0 };
}

/* ---- client connections: gyre's epoll set ------------------------------------------------- */

static uint32_t to_epoll(int events)
{
    return (events & EV_READ ? EPOLLIN : 0) | (events & EV_WRITE ? EPOLLOUT : 0);
}

int engine_poll(int fd, int events, engine_fd_fn fn, void *ctx)
{
    struct fd_slot *s = slot_for(fd);
    if (!s) {
        log_msg("watching client fd %d: out of memory", fd);
        errno = ENOMEM;
        return -1;
    }
    s->fn = fn;
    s->ctx = ctx;
    if (s->registered && s->events == events)
        return 0;
    struct epoll_event ev = { .events = to_epoll(events), .data.fd = fd };
    int rc = 0;
    if (!events) {
        if (s->registered)
            rc = epoll_ctl(E.epfd, EPOLL_CTL_DEL, fd, NULL);
        s->registered = false;
    } else {
        rc = epoll_ctl(E.epfd, s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
        s->registered = rc == 0;
    }
    if (rc < 0) {
        log_errno("epoll_ctl(client fd %d)", fd);
        return -1;
    }
    s->events = events;
    return 0;
}

void engine_unpoll(int fd)
{
    if (fd < 0 || fd >= E.nslots)
        return;
    struct fd_slot *s = &E.slots[fd];
    if (s->registered)
        epoll_ctl(E.epfd, EPOLL_CTL_DEL, fd, NULL);
    *s = (struct fd_slot){ 0 };
}

/* The IOLoop says gyre's epoll set has ready fds: dispatch them. A handler may close or
 * re-register any fd, so each event is looked up again in the table before it is delivered. */
static void on_epoll_ready(void *ctx, int fd, int events)
{
    (void)ctx;
    (void)fd;
    (void)events;
    /* A small batch: the rest stays ready (level-triggered) for the loop's next turn, so that
     * timers due meanwhile are not kept waiting behind a long run of requests. */
    struct epoll_event evs[EPOLL_BATCH];
    int n = epoll_wait(E.epfd, evs, EPOLL_BATCH, 0);
    for (int i = 0; i < n; i++) {
        int cfd = evs[i].data.fd;
        uint32_t e = evs[i].events;
        if (cfd < 0 || cfd >= E.nslots || !E.slots[cfd].fn || !E.slots[cfd].registered)
            continue;
        int mapped = (e & EPOLLIN ? EV_READ : 0) | (e & EPOLLOUT ? EV_WRITE : 0);
        /* An error or hang-up wakes whoever waits, who then meets it in read/write. */
        if (e & (EPOLLERR | EPOLLHUP))
            mapped |= E.slots[cfd].events | EV_ERROR;
        E.slots[cfd].fn(E.slots[cfd].ctx, cfd, mapped);
        if (PyErr_Occurred())
            PyErr_Print();
    }
}

/* ---- timers ------------------------------------------------------------------------------- */

PyObject *engine_call_later(double delay, void (*fn)(void *ctx), void *ctx)
{
    if (refuse_off_loop("engine_call_later")) {
        PyErr_SetString(PyExc_RuntimeError, "the IOLoop's timers belong to its thread");
        return NULL;
    }
    CCallback *cb = PyObject_New(CCallback, &CCallbackType);
    if (!cb)
        return NULL;
    cb->fn = fn;
    cb->ctx = ctx;
    PyObject *d = PyFloat_FromDouble(delay);
    PyObject *handle = NULL;
    if (d) {
        PyObject *args[2] = { d, (PyObject *)cb };
        handle = PyObject_Vectorcall(E.call_later, args, 2, NULL);
        Py_DECREF(d);
    }
    Py_DECREF(cb);
    return handle;
}

void engine_cancel(PyObject *handle)
{
    if (!handle)
        return;
    /* Often called on an error path: keep the caller's exception across the call. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallOneArg(E.remove_timeout, handle);
    if (!r)
        PyErr_Print();
    Py_XDECREF(r);
    PyErr_Restore(type, value, tb);
}

static void timer_fired(void *ctx)
{
    struct engine_timer *t = ctx;
    Py_CLEAR(t->handle);
    t->fn(t->ctx);
}

int engine_timer_arm(struct engine_timer *t, double delay, void (*fn)(void *ctx), void *ctx)
{
    if (t->handle)
        return 0;
    t->fn = fn;
    t->ctx = ctx;
    t->handle = engine_call_later(delay, timer_fired, t);
    if (!t->handle) {
        PyErr_Print();
        return -1;
    }
    return 0;
}

void engine_timer_disarm(struct engine_timer *t)
{
    if (!t->handle)
        return;
    engine_cancel(t->handle);
    Py_CLEAR(t->handle);
}

double engine_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- tasks from other threads -------------------------------------------------------------- */

bool engine_on_loop_thread(void)
{
    return pthread_equal(pthread_self(), E.loop_thread);
}

void engine_post(struct engine_task *t)
{
    pthread_mutex_lock(&E.posted_lock);
    bool wake = !t->queued && !E.posted;
    if (!t->queued) {
        t->queued = true;
        t->next = NULL;
        *E.posted_tail = t;
        E.posted_tail = &t->next;
    }
    pthread_mutex_unlock(&E.posted_lock);
    /* One wakeup per batch: the loop drains the whole queue when it reads the eventfd. */
    if (wake) {
        uint64_t one = 1;
        ssize_t n = write(E.posted_fd, &one, sizeof(one));
        (void)n; /* the eventfd's counter cannot overflow at one write per batch */
    }
}

static void on_posted(void *ctx, int fd, int events)
{
    (void)ctx;
    (void)events;
    uint64_t count;
    ssize_t n = read(fd, &count, sizeof(count));
    (void)n;
    pthread_mutex_lock(&E.posted_lock);
    struct engine_task *t = E.posted;
    E.posted = NULL;
    E.posted_tail = &E.posted;
    pthread_mutex_unlock(&E.posted_lock);
    while (t) {
        struct engine_task *next = t->next;
        /* Dequeued before it runs: posted again meanwhile, it runs again. */
        pthread_mutex_lock(&E.posted_lock);
        t->queued = false;
        pthread_mutex_unlock(&E.posted_lock);
        t->fn(t->ctx);
        if (PyErr_Occurred())
            PyErr_Print();
        t = next;
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

PyObject *engine_ioloop(void)
{
    return E.ioloop;
}

/* ---- the IOLoop's timers, in C -------------------------------------------------------------- */

/*
 * Tornado's AsyncIOLoop.call_later(delay, cb, *args, **kw) is
 *     call_at(time() + delay, ...) -> asyncio_loop.call_later(max(0, when - time()),
 *                                        self._run_callback, functools.partial(cb, ...))
 * three clock reads, a partial and two Python frames: 3.7 us where asyncio's own call_later takes
 * 1.1. The loop engine's apps park a core with exactly that call on every suspend, so gyre's IOLoop
 * gets these two as instance attributes that make the same asyncio call directly: the same
 * handle (remove_timeout cancels it), the same _run_callback around the callback (its errors
 * logged by Tornado as before), a partial only when there are arguments to bind.
 */
static PyObject *schedule_in(double delay, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    PyObject *cb;
    if (nargs == 1 && !kwnames) {
        cb = args[0];
        Py_INCREF(cb);
    } else {
        cb = PyObject_Vectorcall(E.partial, args, (size_t)nargs, kwnames);
        if (!cb)
            return NULL;
    }
    PyObject *d = PyFloat_FromDouble(delay > 0 ? delay : 0); /* NaN too: max(0, nan) is 0 */
    PyObject *h = NULL;
    if (d) {
        PyObject *call[3] = { d, E.run_callback, cb };
        h = PyObject_Vectorcall(E.aio_call_later, call, 3, NULL);
        Py_DECREF(d);
    }
    Py_DECREF(cb);
    return h;
}

static PyObject *ioloop_call_later(PyObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames)
{
    (void)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 2) /* delay or callback given by keyword: Tornado's own sorts it out */
        return PyObject_Vectorcall(E.tornado_call_later, args, nargsf, kwnames);
    double delay = PyFloat_AsDouble(args[0]);
    if (delay == -1.0 && PyErr_Occurred())
        return NULL;
    return schedule_in(delay, args + 1, nargs - 1, kwnames);
}

static PyObject *ioloop_call_at(PyObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames)
{
    (void)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 2)
        return PyObject_Vectorcall(E.tornado_call_at, args, nargsf, kwnames);
    double when = PyFloat_AsDouble(args[0]);
    if (when == -1.0 && PyErr_Occurred())
        return NULL;
    /* `when` is on the IOLoop's clock, time(): Tornado's is time.time(), not the asyncio loop's. */
    PyObject *now = PyObject_CallNoArgs(E.ioloop_time);
    double t = now ? PyFloat_AsDouble(now) : -1.0;
    Py_XDECREF(now);
    if (t == -1.0 && PyErr_Occurred())
        return NULL;
    return schedule_in(when - t, args + 1, nargs - 1, kwnames);
}

static PyMethodDef ioloop_call_later_def = {
    "call_later", (PyCFunction)(void (*)(void))ioloop_call_later, METH_FASTCALL | METH_KEYWORDS,
    "IOLoop.call_later(delay, callback, *args, **kwargs), in C (gyre)"
};
static PyMethodDef ioloop_call_at_def = {
    "call_at", (PyCFunction)(void (*)(void))ioloop_call_at, METH_FASTCALL | METH_KEYWORDS,
    "IOLoop.call_at(when, callback, *args, **kwargs), in C (gyre)"
};

static int install_c_timers(void)
{
    PyObject *functools = PyImport_ImportModule("functools");
    PyObject *aio = PyObject_GetAttrString(E.ioloop, "asyncio_loop");
    E.partial = functools ? PyObject_GetAttrString(functools, "partial") : NULL;
    E.aio_call_later = aio ? PyObject_GetAttrString(aio, "call_later") : NULL;
    E.run_callback = PyObject_GetAttrString(E.ioloop, "_run_callback");
    E.ioloop_time = PyObject_GetAttrString(E.ioloop, "time");
    E.tornado_call_later = PyObject_GetAttrString(E.ioloop, "call_later");
    E.tornado_call_at = PyObject_GetAttrString(E.ioloop, "call_at");
    Py_XDECREF(functools);
    Py_XDECREF(aio);
    PyObject *later = PyCFunction_New(&ioloop_call_later_def, NULL);
    PyObject *at = PyCFunction_New(&ioloop_call_at_def, NULL);
    int rc = E.partial && E.aio_call_later && E.run_callback && E.ioloop_time &&
                     E.tornado_call_later && E.tornado_call_at && later && at &&
                     PyObject_SetAttrString(E.ioloop, "call_later", later) == 0 &&
                     PyObject_SetAttrString(E.ioloop, "call_at", at) == 0
                 ? 0
                 : -1;
    Py_XDECREF(later);
    Py_XDECREF(at);
    if (rc < 0)
        PyErr_Print();
    return rc;
}

/*
 * asyncio.get_event_loop(), which IOLoop.current() asks on every call: asyncio's C version checks
 * that the running loop's holder belongs to this process with a getpid() system call each time
 * (glibc caches no pid), 1 us of a loop-engine app's every suspend. While gyre's loop runs, on
 * its thread, the answer is that loop: one loop at most runs per thread, and a running loop is
 * what asyncio answers first. A process the app forks gets the real function again.
 */
static PyObject *get_event_loop(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (E.running && pthread_equal(pthread_self(), E.loop_thread)) {
        Py_INCREF(E.aio_loop);
        return E.aio_loop;
    }
    return PyObject_CallNoArgs(E.real_get_event_loop);
}

static PyMethodDef get_event_loop_def = {
    "get_event_loop", get_event_loop, METH_NOARGS,
    "asyncio.get_event_loop(), answered without a system call on gyre's loop thread (gyre)"
};

static void not_running_after_fork(void)
{
    E.running = false;
}

static int install_get_event_loop(void)
{
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    PyObject *events = PyImport_ImportModule("asyncio.events");
    E.aio_loop = PyObject_GetAttrString(E.ioloop, "asyncio_loop");
    E.real_get_event_loop = events ? PyObject_GetAttrString(events, "get_event_loop") : NULL;
    PyObject *fn = PyCFunction_New(&get_event_loop_def, NULL);
    int rc = asyncio && events && E.aio_loop && E.real_get_event_loop && fn &&
                     PyObject_SetAttrString(asyncio, "get_event_loop", fn) == 0 &&
                     PyObject_SetAttrString(events, "get_event_loop", fn) == 0
                 ? 0
                 : -1;
    Py_XDECREF(fn);
    Py_XDECREF(asyncio);
    Py_XDECREF(events);
    if (rc < 0)
        PyErr_Print();
    else
        pthread_atfork(NULL, NULL, not_running_after_fork);
    return rc;
}

static PyObject *method(PyObject *obj, const char *name)
{
    PyObject *m = PyObject_GetAttrString(obj, name);
    if (!m)
        PyErr_Print();
    return m;
}

int engine_init(void)
{
    E.loop_thread = pthread_self();
    /* Many connections at once: take every file descriptor the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (PyType_Ready(&CCallbackType) < 0)
        return -1;
    /* The kernel may fire a timer up to timer_slack (50 us by default) late to batch wakeups;
     * the loop's timers are request latency, so ask for none. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    /* A fresh asyncio loop, set as the thread's current loop before Tornado wraps it: that is
     * what makes IOLoop.current() and IOLoop.instance() return this very loop to app modules,
     * even at import time, before the loop runs (the seed's example calls IOLoop.instance()
     * at import). */
    PyObject *r = PyRun_String(
        "import asyncio, _gyre_boot\n"
        "_loop = asyncio.SelectorEventLoop(_gyre_boot.PreciseEpollSelector())\n"
        "asyncio.set_event_loop(_loop)\n"
        "from tornado.platform.asyncio import AsyncIOMainLoop\n"
        "ioloop = AsyncIOMainLoop()\n",
        Py_file_input, PyModule_GetDict(PyImport_AddModule("__main__")),
        PyModule_GetDict(PyImport_AddModule("__main__")));
    if (!r) {
        PyErr_Print();
        return -1;
    }
    Py_DECREF(r);
    PyObject *main_dict = PyModule_GetDict(PyImport_AddModule("__main__"));
    E.ioloop = PyDict_GetItemString(main_dict, "ioloop");
    Py_XINCREF(E.ioloop);
    PyDict_DelItemString(main_dict, "ioloop");
    PyDict_DelItemString(main_dict, "_loop");
    PyDict_DelItemString(main_dict, "AsyncIOMainLoop");
    PyDict_DelItemString(main_dict, "asyncio");
    PyDict_DelItemString(main_dict, "_gyre_boot");
    if (!E.ioloop)
        return -1;

    if (install_c_timers() < 0 || install_get_event_loop() < 0)
        return -1;
    E.add_handler = method(E.ioloop, "add_handler");
    E.update_handler = method(E.ioloop, "update_handler");
    E.remove_handler = method(E.ioloop, "remove_handler");
    E.call_later = method(E.ioloop, "call_later");
    E.remove_timeout = method(E.ioloop, "remove_timeout");
    E.on_fd_event = PyCFunction_New(&on_fd_event_def, NULL);
    if (!E.add_handler || !E.update_handler || !E.remove_handler || !E.call_later ||
        !E.remove_timeout || !E.on_fd_event)
        return -1;
    E.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (E.epfd < 0) {
        log_errno("epoll_create1");
        return -1;
    }
    if (engine_watch(E.epfd, EV_READ, on_epoll_ready, NULL) < 0) {
        PyErr_Print();
        return -1;
    }
    E.posted_tail = &E.posted;
    E.posted_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (E.posted_fd < 0) {
        log_errno("eventfd");
        return -1;
    }
    return engine_watch(E.posted_fd, EV_READ, on_posted, NULL);
}

int engine_run(void)
{
    E.running = true;
    PyObject *r = PyObject_CallMethod(E.ioloop, "start", NULL);
    E.running = false;
    if (!r) {
        PyErr_Print();
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

void engine_stop(void)
{
    PyObject *r = PyObject_CallMethod(E.ioloop, "stop", NULL);
    if (!r)
        PyErr_Print();
    Py_XDECREF(r);
}
