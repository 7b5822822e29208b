/*
 * Small process and request details of the `uwsgi` module, as Debian's uWSGI 2.0.21 gives them:
 *
 *   sockets                 the listening sockets' fds, in the order given (a list, at import)
 *   connection_fd()         this request's client socket (-1 outside a request)
 *   log_this_request()      log this request's line even under --disable-logging; None
 *   setprocname(name)       the process's title (ps, /proc/PID/comm); None
 *   listen_queue(n=0)       connections waiting in listening socket n's backlog
 *   logsize()               the --logto file's size (0 without one)
 *   env                     the environ of the request this core serves (uWSGI sets the module
 *                           attribute at each request, which only one request at a time can
 *                           own: gyre answers each core its own, by the module's __getattr__)
 *
 * Depends on: cores.c, proctitle.c, stats.c, server.c (server/README)
 */
#include "core.h"
#include "daemons.h"
#include "process.h"
#include "server.h"

#include <sys/stat.h>
#include <unistd.h>

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

static PyObject *uwsgi_listen_queue(PyObject *self, PyObject *args)
{
    (void)self;
    int n = 0;
    if (!PyArg_ParseTuple(args, "|i:listen_queue", &n))
        return NULL;
    if (n < 0 || n >= S.nlisteners || S.listeners[n].fd < 0)
        return PyErr_Format(PyExc_ValueError, "unable to find socket %d", n);
    return PyLong_FromLong(listen_queue(S.listeners[n].fd));
}

static PyObject *uwsgi_logsize(PyObject *self, PyObject *args)
{
    (void)self, (void)args;
    struct stat st;
    bool file = S.cfg->logto && fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode);
    return PyLong_FromUnsignedLongLong(file ? (unsigned long long)st.st_size : 0);
}

/* PEP 562: names the module answers per request. */
static PyObject *uwsgi_getattr(PyObject *self, PyObject *name)
{
    (void)self;
    struct gy_core *c = core_current();
    if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, "env") == 0 && c &&
        c->environ)
        return Py_NewRef(c->environ);
    return PyErr_Format(PyExc_AttributeError, "module 'uwsgi' has no attribute '%U'", name);
}

/* PEP 562: dir(uwsgi) lists env while it is there, as uWSGI's module attribute is. */
static PyObject *uwsgi_dir(PyObject *self, PyObject *args)
{
    (void)args;
    PyObject *dict = PyModule_GetDict(self); /* borrowed */
    PyObject *names = dict ? PyDict_Keys(dict) : NULL;
    struct gy_core *c = core_current();
    if (names && c && c->environ) {
        PyObject *env = PyUnicode_FromString("env");
        if (!env || PyList_Append(names, env) < 0)
            Py_CLEAR(names);
        Py_XDECREF(env);
    }
    return names;
}

PyMethodDef uwsgi_process_methods[] = {
    { "__dir__", uwsgi_dir, METH_NOARGS, "the module's names, env during a request" },
    { "listen_queue", uwsgi_listen_queue, METH_VARARGS,
      "listen_queue(n=0) -> connections waiting in listening socket n's backlog" },
    { "logsize", uwsgi_logsize, METH_NOARGS, "logsize() -> the --logto file's size, 0 without" },
    { "__getattr__", uwsgi_getattr, METH_O, "uwsgi.env: the environ of this core's request" },
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
