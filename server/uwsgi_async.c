/*
 * uWSGI's async API in the `uwsgi` module, on the IOLoop:
 *
 *   wait_fd_read(fd, timeout=0)   wait_fd_write(fd, timeout=0)   async_sleep(seconds)
 *       register what this request's next suspend() waits for; b'' (as uWSGI)
 *   suspend()  green_schedule()   switch to the loop until a registered fd is ready or the
 *                                 timeout passes (nothing registered: once round the loop); True
 *   ready_fd()                    the fd that ended the last wait, -1 after a timeout
 *   async_connect("HOST:PORT" | "/path")  a non-blocking connect in progress: its fd, or -1
 *   is_connected(fd)              the socket is connected (its connect succeeded)
 *   set_user_harakiri(s)          this request is cancelled as by --harakiri after s seconds
 *                                 (0: no limit of its own); None
 *
 * As in uWSGI's async mode, a wait is registered first and made by suspend(): an app does
 * `uwsgi.wait_fd_read(fd, 5); uwsgi.suspend(); if uwsgi.ready_fd() == fd: ...`. The registrations
 * belong to the request that made them (a core's generation) and are dropped by the wait or
 * when the request ends. A greenlet core waits on the loop: each fd is watched through a dup in
 * gyre's epoll set (engine_poll), so an fd the server or Tornado already watches is not taken
 * from them, and an fd the app closes meanwhile cannot confuse the set. A thread core polls with
 * the GIL released.
 *
 * Depends on: cores.c, engine.c, server.c, log.c (server/README)
 */
#include "core.h"
#include "engine.h"
#include "log.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* fds one wait may watch: uWSGI keeps a list; a handful is what apps register. */
#define ASYNC_MAX_FDS 16

struct async_fd {
    int fd;     /* the app's */
    int dup;    /* what gyre's epoll set watches while the core waits, or -1 */
    int events; /* EV_READ or EV_WRITE */
};

/* What a core's request registered for its next suspend(), and how its last one ended. */
struct async_wait {
    struct gy_core *core;
    uint64_t gen; /* the request the registrations belong to */
    struct async_fd fds[ASYNC_MAX_FDS];
    int nfds;
    double timeout; /* seconds; < 0: none */
    uint64_t ready_gen;
    int ready_fd; /* the last wait's answer, for ready_fd() in the same request */
    bool fired;
    PyObject *timer;
};

static struct async_wait *waits; /* one per core, made on first use */

/* This core's registrations, started afresh when they are another request's. */
static struct async_wait *wait_of(struct gy_core *c)
{
    if (!waits) {
        waits = calloc((size_t)S.ncores, sizeof(*waits));
        if (!waits) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    struct async_wait *w = &waits[c->id];
    if (w->core != c || w->gen != c->gen) {
        w->core = c;
        w->gen = c->gen;
        w->nfds = 0;
        w->timeout = -1;
    }
    return w;
}

/* uWSGI keeps the first timeout a request registers until its wait. */
static void add_timeout(struct async_wait *w, double seconds)
{
    if (seconds > 0 && w->timeout < 0)
        w->timeout = seconds;
}

static PyObject *register_fd(PyObject *args, const char *fmt, int events)
{
    int fd, timeout = 0;
    if (!PyArg_ParseTuple(args, fmt, &fd, &timeout))
        return NULL;
    struct gy_core *c = core_current();
    struct async_wait *w = c && fd >= 0 ? wait_of(c) : NULL;
    if (!w) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_OSError, "unable to fd %d to the event queue", fd);
        return NULL;
    }
    if (w->nfds == ASYNC_MAX_FDS) {
        PyErr_Format(PyExc_OSError, "unable to fd %d to the event queue: %d fds already wait", fd,
                     ASYNC_MAX_FDS);
        return NULL;
    }
    w->fds[w->nfds++] = (struct async_fd){ .fd = fd, .dup = -1, .events = events };
    add_timeout(w, timeout);
    return PyBytes_FromStringAndSize("", 0);
}

static PyObject *uwsgi_wait_fd_read(PyObject *self, PyObject *args)
{
    (void)self;
    return register_fd(args, "i|i:wait_fd_read", EV_READ);
}

static PyObject *uwsgi_wait_fd_write(PyObject *self, PyObject *args)
{
    (void)self;
    return register_fd(args, "i|i:wait_fd_write", EV_WRITE);
}

/* uWSGI takes whole seconds (0.5 registers nothing and its suspend never returns); gyre keeps
 * the fraction. Outside a request there is nothing to register: b'' as well. */
static PyObject *uwsgi_async_sleep(PyObject *self, PyObject *args)
{
    (void)self;
    double seconds;
    if (!PyArg_ParseTuple(args, "d:async_sleep", &seconds))
        return NULL;
    struct gy_core *c = core_current();
    struct async_wait *w = c ? wait_of(c) : NULL;
    if (c && !w)
        return NULL;
    if (w)
        add_timeout(w, seconds);
    return PyBytes_FromStringAndSize("", 0);
}

/* ---- the wait ------------------------------------------------------------------------------ */

static void wake(struct async_wait *w, int ready_fd)
{
    if (w->fired)
        return;
    w->fired = true;
    w->ready_fd = ready_fd;
    core_enter(w->core);
}

static void on_fd_ready(void *ctx, int dup, int events)
{
    (void)events;
    struct async_wait *w = ctx;
    for (int i = 0; i < w->nfds; i++)
        if (w->fds[i].dup == dup) {
            wake(w, w->fds[i].fd);
            return;
        }
}

static void on_timeout(void *ctx)
{
    struct async_wait *w = ctx;
    Py_CLEAR(w->timer);
    wake(w, -1);
}

/* Stop watching and forget the registrations: they were for this wait only. */
static void end_wait(struct async_wait *w)
{
    for (int i = 0; i < w->nfds; i++)
        if (w->fds[i].dup >= 0) {
            engine_unpoll(w->fds[i].dup);
            close(w->fds[i].dup);
        }
    if (w->timer) {
        engine_cancel(w->timer);
        Py_CLEAR(w->timer);
    }
    w->nfds = 0;
    w->timeout = -1;
    w->ready_gen = w->gen;
}

/* A greenlet core: watch the fds and the timeout on the loop, switch to it until one fires. */
static int wait_on_loop(struct gy_core *c, struct async_wait *w)
{
    w->fired = false;
    w->ready_fd = -1;
    for (int i = 0; i < w->nfds; i++) {
        struct async_fd *f = &w->fds[i];
        f->dup = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
        if (f->dup < 0 || engine_poll(f->dup, f->events, on_fd_ready, w) < 0) {
            PyErr_Format(PyExc_OSError, "unable to fd %d to the event queue: %s", f->fd,
                         strerror(errno));
            if (f->dup >= 0)
                close(f->dup);
            f->dup = -1;
            end_wait(w);
            return -1;
        }
    }
    /* Nothing to wait for: once round the loop, so that the other cores and callbacks run. */
    double delay = w->nfds || w->timeout >= 0 ? w->timeout : 0;
    if (delay >= 0 && !(w->timer = engine_call_later(delay, on_timeout, w))) {
        end_wait(w);
        return -1;
    }
    core_set_activity(c, w->nfds ? CORE_WAIT_APP_FD : CORE_WAIT_TIMER);
    int rc = 0;
    while (!w->fired)
        if (core_suspend(c, WAIT_TIMER) == IO_KILLED) { /* harakiri: GreenletExit is set */
            rc = -1;
            break;
        }
    end_wait(w);
    return rc;
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A thread core: poll(2) with the GIL released, in slices: between them, with the GIL, it looks
 * whether --harakiri (or set_user_harakiri) has cancelled the request, whose gyre.Harakiri is
 * raised as soon as the thread runs Python again. */
#define THREAD_WAIT_SLICE_MS 200

static int wait_in_thread(struct gy_core *c, struct async_wait *w)
{
    struct pollfd pfd[ASYNC_MAX_FDS];
    for (int i = 0; i < w->nfds; i++)
        pfd[i] = (struct pollfd){ .fd = w->fds[i].fd,
                                  .events = w->fds[i].events == EV_READ ? POLLIN : POLLOUT };
    double end = w->timeout >= 0 ? monotonic() + w->timeout : -1;
    bool forever = w->nfds && end < 0;
    core_set_activity(c, w->nfds ? CORE_WAIT_APP_FD : CORE_WAIT_TIMER);
    int n = 0;
    for (;;) {
        int ms = 0;
        if (forever)
            ms = THREAD_WAIT_SLICE_MS;
        else if (end >= 0) {
            double left = (end - monotonic()) * 1000;
            ms = left <= 0                     ? 0
                 : left < THREAD_WAIT_SLICE_MS ? (int)(left + 0.5)
                                               : THREAD_WAIT_SLICE_MS;
        }
        PyThreadState *ts = PyEval_SaveThread();
        n = poll(pfd, (nfds_t)w->nfds, ms);
        PyEval_RestoreThread(ts);
        if (n != 0 || c->harakiri || (!forever && (end < 0 || monotonic() >= end)))
            break;
    }
    core_set_activity(c, CORE_RUNNING);
    w->ready_fd = -1;
    for (int i = 0; n > 0 && i < w->nfds; i++)
        if (pfd[i].revents) {
            w->ready_fd = w->fds[i].fd;
            break;
        }
    int saved = errno;
    end_wait(w);
    if (n < 0 && saved != EINTR) {
        errno = saved;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return PyErr_CheckSignals();
}

static PyObject *uwsgi_suspend(PyObject *self, PyObject *args)
{
    (void)self, (void)args;
    struct gy_core *c = core_current();
    if (!c) /* the loop, a pool thread, import time: no core to switch from (uWSGI: True) */
        Py_RETURN_TRUE;
    struct async_wait *w = wait_of(c);
    if (!w)
        return NULL;
    int rc = c->thread ? wait_in_thread(c, w) : wait_on_loop(c, w);
    if (rc < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *uwsgi_ready_fd(PyObject *self, PyObject *args)
{
    (void)self, (void)args;
    struct gy_core *c = core_current();
    struct async_wait *w = c && waits ? &waits[c->id] : NULL;
    bool same_request = w && w->core == c && w->ready_gen == c->gen;
    return PyLong_FromLong(same_request ? w->ready_fd : -1);
}

/* ---- connections --------------------------------------------------------------------------- */

/* A non-blocking connect to "HOST:PORT" ("[V6]:PORT") or a unix socket path (no ':'), as
 * uWSGI's async_connect. A host name is resolved here, blocking (as uWSGI does): give
 * addresses in a core that must not wait. */
static int connect_nonblocking(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    if (!colon) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        if (strlen(addr) >= sizeof(un.sun_path)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        strcpy(un.sun_path, addr);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0 &&
            errno != EINPROGRESS && errno != EAGAIN) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        return fd;
    }
    char host[256];
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') /* [::1]:80 */
        addr++, hlen -= 2;
    if (hlen >= sizeof(host)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(hlen ? host : "0.0.0.0", colon + 1, &hints, &res);
    if (gai != 0) {
        errno = gai == EAI_SYSTEM ? errno : EINVAL;
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        fd = -1;
        errno = saved;
    }
    freeaddrinfo(res);
    return fd;
}

static PyObject *uwsgi_async_connect(PyObject *self, PyObject *args)
{
    (void)self;
    const char *addr;
    if (!PyArg_ParseTuple(args, "s:async_connect", &addr))
        return NULL;
    int fd = connect_nonblocking(addr);
    if (fd < 0) /* uWSGI logs it and answers -1 */
        log_msg("uwsgi.async_connect(\"%s\"): %s", addr, strerror(errno));
    return PyLong_FromLong(fd);
}

static PyObject *uwsgi_is_connected(PyObject *self, PyObject *args)
{
    (void)self;
    int fd = -1;
    if (!PyArg_ParseTuple(args, "i:is_connected", &fd))
        return NULL;
    int err = 0;
    socklen_t len = sizeof(err);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    bool connected = fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 &&
                     getpeername(fd, (struct sockaddr *)&peer, &plen) == 0;
    return PyBool_FromLong(connected);
}

/* ---- harakiri -------------------------------------------------------------------------------- */

static PyObject *uwsgi_set_user_harakiri(PyObject *self, PyObject *args)
{
    (void)self;
    int seconds = 0;
    if (!PyArg_ParseTuple(args, "i:set_user_harakiri", &seconds))
        return NULL;
    struct gy_core *c = core_current();
    if (c) /* outside a request there is nothing to cancel */
        c->user_harakiri = seconds > 0 ? engine_now() + seconds : 0;
    Py_RETURN_NONE;
}

PyMethodDef uwsgi_async_methods[] = {
    { "wait_fd_read", uwsgi_wait_fd_read, METH_VARARGS,
      "wait_fd_read(fd, timeout=0) -> b'': the next suspend() waits for fd to be readable" },
    { "wait_fd_write", uwsgi_wait_fd_write, METH_VARARGS,
      "wait_fd_write(fd, timeout=0) -> b'': the next suspend() waits for fd to be writable" },
    { "async_sleep", uwsgi_async_sleep, METH_VARARGS,
      "async_sleep(seconds) -> b'': the next suspend() lasts at most seconds" },
    { "suspend", uwsgi_suspend, METH_VARARGS,
      "suspend() -> True: switch to the loop until a registered wait ends" },
    { "green_schedule", uwsgi_suspend, METH_VARARGS, "green_schedule() -> True: as suspend()" },
    { "ready_fd", uwsgi_ready_fd, METH_VARARGS,
      "ready_fd() -> the fd that ended the last suspend(), or -1 (timed out)" },
    { "async_connect", uwsgi_async_connect, METH_VARARGS,
      "async_connect(addr) -> fd of a connect in progress to HOST:PORT or a unix path, or -1" },
    { "is_connected", uwsgi_is_connected, METH_VARARGS,
      "is_connected(fd) -> whether the socket fd is connected" },
    { "set_user_harakiri", uwsgi_set_user_harakiri, METH_VARARGS,
      "set_user_harakiri(seconds): cancel this request after seconds (0: no limit of its own)" },
    { NULL, NULL, 0, NULL },
};
