/*
 * wsgi.input: the request body, bounded by CONTENT_LENGTH.
 *
 * Reads never block the loop: when the body has not arrived yet the core suspends until the
 * socket is readable (conn.c). Large reads go straight from the socket into the bytes object
 * being returned; readline() works through the connection's buffer.
 *
 * With --post-buffering, a large body is instead read whole before the app runs, into an
 * unlinked temporary file (input_spool) that the environ's wsgi.input then reads.
 *
 * Depends on: conn.c, log.c (server/README)
 */
#include "conn.h"
#include "core.h"
#include "log.h"
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The most read() allocates before the bytes are there. */
#define INPUT_PREALLOC (1u << 20)

typedef struct {
    PyObject_HEAD struct gy_core *core;
    uint64_t gen; /* the request this object belongs to */
} Input;

/* The one check "is this request still being served", for wsgi.input and for the request's
 * other callables (input_owner): the core, or NULL with a RuntimeError naming `what`. */
static struct gy_core *request_core(const Input *in, const char *what)
{
    struct gy_core *c = in->core;
    if (!c->busy || c->gen != in->gen || !c->conn) {
        PyErr_Format(PyExc_RuntimeError, "%s of a request that has ended", what);
        return NULL;
    }
    return c;
}

/* The connection, if this input's request is still being served. */
static struct gy_conn *input_conn(Input *in)
{
    struct gy_core *c = request_core(in, "wsgi.input");
    return c ? c->conn : NULL;
}

static PyObject *raise_read_error(enum io_result rc)
{
    if (PyErr_Occurred())
        return NULL; /* the core was killed while it waited */
    switch (rc) {
    case IO_FAILED:
        PyErr_SetString(PyExc_OSError, "gyre could not wait for the request body (logged)");
        break;
    case IO_TIMEOUT:
        PyErr_SetString(PyExc_TimeoutError, "socket timeout reading the request body");
        break;
    case IO_CLOSED:
        PyErr_SetString(PyExc_ConnectionResetError,
                        "the client closed the connection before sending the whole body");
        break;
    case IO_ABORTED:
        PyErr_SetString(PyExc_ConnectionAbortedError, "the client aborted the request");
        break;
    case IO_BAD_BODY:
        PyErr_SetString(PyExc_ValueError,
                        "the request body's framing is broken (chunked coding or FastCGI records)");
        break;
    default:
        PyErr_SetFromErrno(PyExc_OSError);
    }
    return NULL;
}

/* The size argument of read()/readline(): None or negative means "all". */
static int size_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *size)
{
    *size = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "takes at most one argument");
        return -1;
    }
    if (nargs == 1 && args[0] != Py_None) {
        *size = PyLong_AsSsize_t(args[0]);
        if (*size == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *input_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    struct gy_conn *c = input_conn((Input *)self);
    if (!c || size_arg(args, nargs, &size) < 0)
        return NULL;
    /* What is left of the body, when its length is known (a chunked or FastCGI body ends
     * when its framing says so). */
    uint64_t left = conn_body_remaining(c);
    bool length_known = left != UINT64_MAX;
    uint64_t want = left;
    if (size >= 0 && (uint64_t)size < want)
        want = (uint64_t)size;
    /* A length from the wire sizes the allocation only up to a bound (a lying Content-Length
     * costs at most that); past it the buffer grows as the bytes arrive. Most bodies fit the
     * bound and are read with no copy at all. */
    size_t cap = !length_known ? 65536 : want < INPUT_PREALLOC ? (size_t)want : INPUT_PREALLOC;
    if (cap > want)
        cap = (size_t)want;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
    if (!out)
        return NULL;
    size_t have = 0;
    while (have < want) {
        if (have == cap) {
            cap = cap * 2 < want ? cap * 2 : (size_t)want;
            if (_PyBytes_Resize(&out, (Py_ssize_t)cap) < 0)
                return NULL;
        }
        size_t got;
        enum io_result rc = conn_read_some(c, PyBytes_AS_STRING(out) + have, cap - have, &got);
        if (rc != IO_OK) {
            Py_DECREF(out);
            return raise_read_error(rc);
        }
        if (got == 0)
            break;
        have += got;
        c = input_conn((Input *)self);
        if (!c) {
            Py_DECREF(out);
            return NULL;
        }
    }
    if (have != cap && _PyBytes_Resize(&out, (Py_ssize_t)have) < 0)
        return NULL;
    return out;
}

/* One line, up to and including b'\n', at most `limit` bytes (-1: no limit). */
static PyObject *read_line(Input *in, Py_ssize_t limit)
{
    PyObject *out = NULL;
    for (;;) {
        struct gy_conn *c = input_conn(in);
        if (!c)
            goto fail;
        enum io_result rc = conn_fill(c);
        if (rc != IO_OK) {
            raise_read_error(rc);
            goto fail;
        }
        size_t buffered;
        const char *start = conn_body_peek(c, &buffered);
        if (buffered == 0)
            break; /* end of the body */
        Py_ssize_t have = out ? PyBytes_GET_SIZE(out) : 0;
        size_t take = buffered;
        if (limit >= 0 && (size_t)(limit - have) < take)
            take = (size_t)(limit - have);
        const char *nl = memchr(start, '\n', take);
        if (nl)
            take = (size_t)(nl - start) + 1;
        if (!out) {
            /* Not PyBytes_FromStringAndSize(start, 1): that is a shared one-byte singleton,
             * which a later _PyBytes_Resize must not touch. */
            out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)take);
            if (!out)
                goto fail;
            memcpy(PyBytes_AS_STRING(out), start, take);
        } else {
            if (_PyBytes_Resize(&out, have + (Py_ssize_t)take) < 0)
                goto fail;
            memcpy(PyBytes_AS_STRING(out) + have, start, take);
        }
        conn_body_consume(c, take);
        if (nl || (limit >= 0 && PyBytes_GET_SIZE(out) >= limit))
            break;
    }
    return out ? out : PyBytes_FromStringAndSize(NULL, 0);
fail:
    Py_XDECREF(out);
    return NULL;
}

static PyObject *input_readline(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    if (size_arg(args, nargs, &size) < 0)
        return NULL;
    if (size == 0)
        return PyBytes_FromStringAndSize(NULL, 0);
    return read_line((Input *)self, size);
}

static PyObject *input_readlines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint;
    if (size_arg(args, nargs, &hint) < 0)
        return NULL;
    PyObject *lines = PyList_New(0);
    Py_ssize_t total = 0;
    while (lines) {
        PyObject *line = read_line((Input *)self, -1);
        if (!line) {
            Py_CLEAR(lines);
            break;
        }
        if (PyBytes_GET_SIZE(line) == 0) {
            Py_DECREF(line);
            break;
        }
        total += PyBytes_GET_SIZE(line);
        if (PyList_Append(lines, line) < 0)
            Py_CLEAR(lines);
        Py_DECREF(line);
        if (hint > 0 && total >= hint)
            break;
    }
    return lines;
}

static PyObject *input_next(PyObject *self)
{
    PyObject *line = read_line((Input *)self, -1);
    if (line && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL; /* StopIteration */
    }
    return line;
}

static PyMethodDef input_methods[] = {
    { "read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL,
      "read(size=-1): up to size bytes of the body; all of what is left when size is omitted" },
    { "readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
      "readline(size=-1): one line of the body" },
    { "readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
      "readlines(hint=-1): the remaining lines of the body" },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject InputType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gyre.Input",
    .tp_basicsize = sizeof(Input),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = input_next,
    .tp_methods = input_methods,
    .tp_doc = "wsgi.input: the request body",
};

/* An unlinked file in $TMPDIR (else /tmp): gone with its last descriptor. */
static int spool_open(void)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* A file system without O_TMPFILE: a named file, unlinked at once. */
        char path[4096];
        snprintf(path, sizeof(path), "%s/gyre-body-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
    }
    if (fd < 0)
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, dir);
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The body from the connection to fd; the core suspends while it waits for the client. */
static enum input_spool_result spool_body(struct gy_core *c, int fd, unsigned long long limit,
                                          char *buf, size_t bufsize)
{
    unsigned long long total = 0;
    for (;;) {
        size_t got;
        enum io_result rc = conn_read_some(c->conn, buf, bufsize, &got);
        if (rc == IO_KILLED || rc == IO_FAILED)
            return INPUT_SPOOL_FAILED;
        if (rc != IO_OK) {
            log_msg("core %d: reading the request body to spool it (--post-buffering): %s", c->id,
                    rc == IO_TIMEOUT ? "socket timeout" : "the client went away");
            return INPUT_SPOOL_CLIENT_GONE;
        }
        if (got == 0)
            return INPUT_SPOOL_OK;
        total += got;
        if (limit && total > limit)
            return INPUT_SPOOL_TOO_LARGE;
        if (write_all(fd, buf, got) < 0)
            return INPUT_SPOOL_FAILED;
    }
}

enum input_spool_result input_spool(struct gy_core *c, PyObject *env, unsigned long long limit,
                                    size_t bufsize)
{
    int fd = spool_open();
    char *buf = fd >= 0 ? PyMem_Malloc(bufsize) : NULL;
    if (fd >= 0 && !buf)
        PyErr_NoMemory();
    enum input_spool_result rc = buf ? spool_body(c, fd, limit, buf, bufsize) : INPUT_SPOOL_FAILED;
    PyMem_Free(buf);
    if (rc == INPUT_SPOOL_OK && lseek(fd, 0, SEEK_SET) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        rc = INPUT_SPOOL_FAILED;
    }
    if (rc != INPUT_SPOOL_OK) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    /* A buffered binary file: read(), readline(), readlines() and iteration, as PEP 3333
     * asks of wsgi.input, and seek() besides. It owns fd from here. */
    PyObject *io = PyImport_ImportModule("io");
    PyObject *file = io ? PyObject_CallMethod(io, "open", "isi", fd, "rb", -1) : NULL;
    Py_XDECREF(io);
    if (!file) {
        close(fd);
        return INPUT_SPOOL_FAILED;
    }
    c->spool = file;
    return PyDict_SetItemString(env, "wsgi.input", file) < 0 ? INPUT_SPOOL_FAILED : INPUT_SPOOL_OK;
}

/* The file's descriptor goes with the request, whoever still holds the object. */
void input_spool_close(struct gy_core *c)
{
    if (!c->spool)
        return;
    PyObject *r = PyObject_CallMethod(c->spool, "close", NULL);
    Py_XDECREF(r);
    PyErr_Clear();
    Py_CLEAR(c->spool);
}

int input_init(void)
{
    return PyType_Ready(&InputType);
}

struct gy_core *input_owner(PyObject *input, const char *what)
{
    return request_core((Input *)input, what);
}

PyObject *input_new(struct gy_core *c)
{
    Input *in = PyObject_New(Input, &InputType);
    if (!in)
        return NULL;
    in->core = c;
    in->gen = c->gen;
    return (PyObject *)in;
}
