/*
 * Small process and request details of the `uwsgi` module, as Debian's uWSGI 2.0.21 gives them:
 *
 *   sockets                 the listening sockets' fds, in the order given (a list, at import)
 *   connection_fd()         this request's client socket (-1 outside a request)
 *   log_this_request()      log this request's line even under --disable-logging; None
 *   setprocname(name)       the process's title (ps, /proc/PID/comm); None
 *
 * Depends on: cores.c, proctitle.c, server.c (server/README)
 */
#include "core.h"
#include "daemons.h"
#include "server.h"

static PyObject *uwsgi_connection_fd(PyObject *self, PyObject *args)
{
    (void)self, (void)args;
    struct gy_core *c = core_current();
    return PyLong_FromLong(c && c->conn ? c->conn->fd : -1);
}

static PyObject *uwsgi_log_this_request(PyObject *self, PyObject *args)
{
    (void)self, (void)args;
    struct gy_core *c = core_current();
    if (c)
        c->log_this = true;
    Py_RETURN_NONE;
}

static PyObject *uwsgi_setprocname(PyObject *self, PyObject *args)
{
    (void)self;
    const char *name;
    if (!PyArg_ParseTuple(args, "s:setprocname", &name))
        return NULL;
    proctitle_set(name);
    Py_RETURN_NONE;
}

PyMethodDef uwsgi_process_methods[] = {
    { "connection_fd", uwsgi_connection_fd, METH_NOARGS,
      "connection_fd() -> this request's client socket, -1 outside a request" },
    { "log_this_request", uwsgi_log_this_request, METH_NOARGS,
      "log_this_request(): log this request's line even under --disable-logging" },
    { "setprocname", uwsgi_setprocname, METH_VARARGS,
      "setprocname(name): the process's title (ps, /proc/PID/comm)" },
    { NULL, NULL, 0, NULL },
};

/* The module's `sockets`: a list of the listening fds, as uWSGI's. */
PyObject *uwsgi_process_sockets(void)
{
    PyObject *l = PyList_New(0);
    for (int i = 0; l && i < S.nlisteners; i++) {
        PyObject *fd = PyLong_FromLong(S.listeners[i].fd);
        if (!fd || PyList_Append(l, fd) < 0)
            Py_CLEAR(l);
        Py_XDECREF(fd);
    }
    return l;
}
