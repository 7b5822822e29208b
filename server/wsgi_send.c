/*
 * The response: its head (once) and body through the request's protocol, from write(), a
 * sequence, an iterable or a file_wrapper (sendfile); what came of it, as an outcome.
 *
 * Runs inside a core's greenlet. Every write may suspend the core (conn_write_all); nothing here
 * blocks the loop.
 *
 * Depends on: input.c, log.c, pylog.c, response.c, server.c, wsgi_filewrapper.c (server/README)
 */
#include "listen.h"
#include "log.h"
#include "proto.h"
#include "pylog.h"
#include "server.h"
#include "wsgi.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

static struct {
    PyObject *greenlet_exit; /* greenlet.GreenletExit: how a killed core ends */
    PyObject *str_close;
} W;

static void r_account(struct gy_core *c, size_t n)
{
    c->resp.body_sent += n;
}

/* The head's Content-Length is a promise to the peer: bytes past it would be read as the start
 * of the next response on a kept-alive connection (or an upstream's). Cut body[0..n) to what
 * is left of it; the app's extra bytes are dropped (wsgi_serve logs them). */
static int clip_to_length(struct gy_response *r, struct iovec *body, int n)
{
    if (r->length < 0)
        return n;
    uint64_t room = (uint64_t)r->length - r->body_out; /* body_out <= length */
    for (int i = 0; i < n; i++) {
        if (body[i].iov_len >= room) {
            body[i].iov_len = (size_t)room;
            return room ? i + 1 : i;
        }
        room -= body[i].iov_len;
    }
    return n;
}

/* Hand body iovecs to the protocol, preceded by the head the first time. Every body byte but
 * sendfile's goes through here. */
static enum io_result send_framed(struct gy_core *c, struct iovec *body, int nbody,
                                  int64_t content_length)
{
    struct gy_response *r = &c->resp;
    struct iovec head = { NULL, 0 };
    if (!r->head_sent) {
        /* 1xx, 204 and 304 have no body, whatever the app returns, as HEAD responses. */
        if (!resp_has_body(r))
            r->head_only = true;
        if (c->conn->proto->head_finish(c->conn, r, content_length) < 0) {
            log_msg("core %d: out of memory for the response head", c->id);
            return IO_FAILED;
        }
        head = (struct iovec){ r->head, r->head_len };
        r->head_sent = true;
    }
    nbody = r->head_only ? 0 : clip_to_length(r, body, nbody);
    for (int i = 0; i < nbody; i++)
        r->body_out += body[i].iov_len;
    if (!head.iov_len && nbody == 0)
        return IO_OK;
    return c->conn->proto->send(c->conn, head.iov_len ? &head : NULL, body, nbody);
}

enum io_result send_response(struct gy_core *c, const char *body, size_t blen,
                             int64_t content_length)
{
    struct iovec biov = { (void *)body, blen };
    r_account(c, blen);
    return send_framed(c, &biov, blen && !c->resp.head_only ? 1 : 0, content_length);
}

/* The client went away or stopped reading: its fault, not the app's nor gyre's. */
static bool client_gone(enum io_result rc)
{
    return rc == IO_CLOSED || rc == IO_ERROR || rc == IO_TIMEOUT;
}

/* The one log line of a response cut by its client (none with --ignore-write-errors). */
static void log_client_gone(const struct gy_core *c, enum io_result rc)
{
    if (S.cfg->ignore_write_errors)
        return;
    if (rc == IO_TIMEOUT)
        log_msg("core %d: socket timeout writing the response to %s, connection dropped", c->id,
                c->conn->listener->name);
    else if (rc == IO_CLOSED)
        log_msg("core %d: the client went away before the response was complete", c->id);
    else
        log_errno("core %d: writing the response", c->id);
}

static void raise_io(enum io_result rc)
{
    if (PyErr_Occurred())
        return;
    if (rc == IO_TIMEOUT)
        PyErr_SetString(PyExc_TimeoutError, "socket timeout writing the response");
    else if (rc == IO_CLOSED)
        PyErr_SetString(PyExc_ConnectionResetError, "the client went away");
    else
        PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *write_callable(PyObject *self, PyObject *data)
{
    struct gy_core *c = input_owner(self, "write()");
    if (!c)
        return NULL;
    if (!c->resp.started)
        return PyErr_Format(PyExc_RuntimeError, "write() called before start_response()");
    if (!PyBytes_Check(data))
        return PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s",
                            Py_TYPE(data)->tp_name);
    if (c->resp.cut)
        Py_RETURN_NONE; /* the client is gone: the rest of the body is dropped */
    enum io_result rc = send_response(c, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data),
                                      -1);
    if (rc != IO_OK && client_gone(rc) && S.cfg->disable_write_exception) {
        /* --disable-write-exception: the app goes on as if the bytes had left (one log line);
         * the response is cut, so the connection closes after it. */
        log_client_gone(c, rc);
        c->resp.cut = true;
        c->conn->keep_alive = false;
        Py_RETURN_NONE;
    }
    if (rc != IO_OK) {
        raise_io(rc);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef write_def = { "write", write_callable, METH_O,
                                 "write(data): send body bytes now" };

PyObject *write_new(PyObject *input)
{
    return PyCFunction_New(&write_def, input);
}

static enum outcome io_outcome(struct gy_core *c, enum io_result rc)
{
    const struct gy_conn *conn = c->conn;
    switch (rc) {
    case IO_OK:
        return OUT_OK;
    case IO_KILLED:
        return PyErr_Occurred() && PyErr_ExceptionMatches(W.greenlet_exit) ? OUT_ABANDONED
                                                                           : OUT_APP_ERROR;
    case IO_TIMEOUT:
    case IO_CLOSED:
    case IO_ERROR:
        log_client_gone(c, rc);
        return OUT_CLIENT_GONE;
    case IO_BAD_BODY:
        return OUT_CLIENT_GONE;
    case IO_ABORTED:
        log_msg("core %d: the client aborted the request; closing the response", c->id);
        return OUT_CLIENT_GONE;
    case IO_FAILED:
        /* gyre's own failure, not the app's: not counted as an app exception. */
        log_msg("core %d: gyre failed sending the response to %s (out of memory, or the socket "
                "could not be watched); connection dropped",
                c->id, conn->listener->name);
        return OUT_CLIENT_GONE;
    }
    return OUT_CLIENT_GONE;
}

enum outcome app_failed(struct gy_core *c, const char *what)
{
    if (PyErr_ExceptionMatches(W.greenlet_exit))
        return OUT_ABANDONED;
    char first[160];
    snprintf(first, sizeof(first), "core %d: %s:", c->id, what);
    pylog_exception(first);
    return OUT_APP_ERROR;
}

/* The app broke a PEP 3333 rule (no traceback to show): say which, on its core's behalf. */
static enum outcome app_error(struct gy_core *c, const char *what, const char *type_name)
{
    log_msg("core %d: %s%s", c->id, what, type_name ? type_name : "");
    return OUT_APP_ERROR;
}

static enum outcome send_item(struct gy_core *c, PyObject *item, int64_t content_length)
{
    if (!PyBytes_Check(item))
        return app_error(c, "the app's response items must be bytes, not ", Py_TYPE(item)->tp_name);
    Py_ssize_t n = PyBytes_GET_SIZE(item);
    if (n == 0 && content_length < 0)
        return OUT_OK; /* PEP 3333: the head waits for the first non-empty item */
    if (!c->resp.started)
        return app_error(c, "the app returned its body without calling start_response()", NULL);
    return io_outcome(c, send_response(c, PyBytes_AS_STRING(item), (size_t)n, content_length));
}

/* A list or tuple of bytes: its length is known, so the head gets a Content-Length, and the
 * whole response usually leaves in one writev. */
static enum outcome send_sequence(struct gy_core *c, PyObject *seq)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i]))
            return app_error(c, "the app's response items must be bytes, not ",
                             Py_TYPE(items[i])->tp_name);
        total += PyBytes_GET_SIZE(items[i]);
    }
    if (!c->resp.started)
        return app_error(c, "the app returned without calling start_response()", NULL);
    if (n == 1)
        return send_item(c, items[0], total);
    if (n == 0 || c->resp.head_only) {
        c->resp.body_sent = (uint64_t)total;
        return io_outcome(c, send_response(c, NULL, 0, total));
    }
    enum outcome o = OUT_OK;
    struct iovec iov[GY_SEND_MAX_IOV];
    for (Py_ssize_t i = 0; i < n && o == OUT_OK;) {
        int k = 0;
        for (; i < n && k < GY_SEND_MAX_IOV; i++) {
            Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
            if (len)
                iov[k++] = (struct iovec){ PyBytes_AS_STRING(items[i]), (size_t)len };
            c->resp.body_sent += (uint64_t)len;
        }
        o = io_outcome(c, send_framed(c, iov, k, total));
    }
    return o;
}

static enum outcome send_file(struct gy_core *c, PyObject *fw)
{
    int fd;
    off_t offset;
    uint64_t count;
    if (!c->resp.started || !filewrapper_source(fw, &fd, &offset, &count))
        return OUT_NOT_A_FILE;
    enum outcome o = io_outcome(c, send_response(c, NULL, 0, (int64_t)count));
    if (o != OUT_OK || c->resp.head_only || count == 0) {
        c->resp.body_sent = count;
        return o;
    }
    /* An app's Content-Length below the file's size: the rest is dropped, as in send_framed. */
    struct gy_response *r = &c->resp;
    uint64_t room = r->length >= 0 ? (uint64_t)r->length - r->body_out : count;
    uint64_t dropped = count > room ? count - room : 0;
    uint64_t sent = 0;
    if (count > dropped)
        o = io_outcome(c, c->conn->proto->send_file(c->conn, fd, offset, count - dropped, &sent));
    /* A file that shrank meanwhile sent less than the head announced: body_out says so. */
    r->body_out += sent;
    r->body_sent += sent + dropped;
    return o;
}

static enum outcome send_iterable(struct gy_core *c, PyObject *result)
{
    PyObject *it = PyObject_GetIter(result);
    if (!it)
        return app_failed(c, "the app's return value is not iterable");
    enum outcome o = OUT_OK;
    PyObject *item;
    bool (*poll_abort)(struct gy_conn *) = c->conn->proto->poll_abort;
    while (o == OUT_OK && (item = PyIter_Next(it))) {
        o = send_item(c, item, -1);
        Py_DECREF(item);
        if (o == OUT_OK && poll_abort && poll_abort(c->conn)) {
            log_msg("core %d: the client aborted the request; closing the response", c->id);
            o = OUT_CLIENT_GONE;
        }
    }
    Py_DECREF(it);
    if (o == OUT_OK && PyErr_Occurred())
        return app_failed(c, "the app's response iterator raised");
    if (o == OUT_OK && !c->resp.head_sent) {
        if (!c->resp.started)
            return app_error(c, "the app returned without calling start_response()", NULL);
        o = io_outcome(c, send_response(c, NULL, 0, 0));
    }
    return o;
}

enum outcome send_result(struct gy_core *c, PyObject *result)
{
    if (result == Py_None)
        return app_error(c, "the app returned None, not an iterable of bytes", NULL);
    if (c->resp.cut)
        return OUT_CLIENT_GONE; /* a write() found the client gone (logged then) */
    if (PyTuple_CheckExact(result))
        return send_sequence(c, result);
    if (PyList_CheckExact(result)) {
        /* The writes suspend this core, and meanwhile other requests run: the app may share the
         * list with them, and they may change it (free its items, resize its array). Send the
         * items it holds now, each kept alive by a tuple of our own. */
        PyObject *items = PyList_AsTuple(result);
        if (!items)
            return app_failed(c, "cannot take the response list's items");
        enum outcome o = send_sequence(c, items);
        Py_DECREF(items);
        return o;
    }
    if (filewrapper_check(result)) {
        enum outcome o = send_file(c, result);
        if (o != OUT_NOT_A_FILE)
            return o;
    }
    return send_iterable(c, result);
}

/* PEP 3333: close() is called whatever happened, also when the client went away. */
enum outcome close_result(struct gy_core *c, PyObject *result, enum outcome o)
{
    PyObject *saved_type, *saved_value, *saved_tb;
    PyErr_Fetch(&saved_type, &saved_value, &saved_tb);
    PyObject *close = PyObject_GetAttr(result, W.str_close);
    if (!close) {
        PyErr_Clear();
    } else {
        PyObject *r = PyObject_CallNoArgs(close);
        Py_DECREF(close);
        if (!r) {
            enum outcome co = app_failed(c, "the response's close() raised");
            if (o == OUT_OK || co == OUT_ABANDONED)
                o = co;
        }
        Py_XDECREF(r);
    }
    PyErr_Restore(saved_type, saved_value, saved_tb);
    return o;
}

int send_init(void)
{
    W.str_close = PyUnicode_InternFromString("close");
    PyObject *greenlet = PyImport_ImportModule("greenlet");
    W.greenlet_exit = greenlet ? PyObject_GetAttrString(greenlet, "GreenletExit") : NULL;
    Py_XDECREF(greenlet);
    return PyErr_Occurred() || !W.greenlet_exit ? -1 : 0;
}
