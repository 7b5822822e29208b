/*
 * uwsgi.websocket_*: uWSGI's WebSocket API for the request the calling core serves, with
 * Debian uWSGI 2.0.21's arguments, return types and errors (plugins/python/uwsgi_pymodule.c):
 *
 *   websocket_handshake(key=None, origin=None, proto=None) -> None
 *   websocket_recv(request_context=None) -> bytes        (the next message, waits)
 *   websocket_recv_nb(request_context=None) -> bytes     (b'' when none is complete)
 *   websocket_send(message, request_context=None) -> None          (a text frame)
 *   websocket_send_binary(message, request_context=None) -> None   (a binary frame)
 *
 * Every failure is an OSError (IOError) whose message starts with uWSGI's ("unable to receive
 * websocket message") and says why after a colon. message is str (sent as its UTF-8) or bytes,
 * as uWSGI's s# takes it. request_context (uWSGI's for its asyncio/gevent loops) is accepted
 * when None: gyre knows the request from the calling core. The work is websocket.c's.
 *
 * Depends on: cores.c, websocket.c (server/README)
 */
#define PY_SSIZE_T_CLEAN /* the s# and z# formats' lengths are Py_ssize_t */
#include "core.h"
#include "ws_server.h"

#include <string.h>

/* The core serving the calling code's request, or NULL with uWSGI's IOError. */
static struct gy_core *request_core(const char *err, PyObject *request_context)
{
    if (request_context && request_context != Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "request_context: gyre knows the request from the calling core; pass "
                        "None or nothing");
        return NULL;
    }
    struct gy_core *c = core_current();
    if (!c || !c->conn) {
        PyErr_Format(PyExc_OSError, "%s: not called from a request", err);
        return NULL;
    }
    return c;
}

static PyObject *py_websocket_handshake(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    static char *kwlist[] = { "key", "origin", "proto", NULL };
    struct ws_handshake_args a = { 0 };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|z#z#z#:websocket_handshake", kwlist, &a.key,
                                     &a.key_len, &a.origin, &a.origin_len, &a.proto, &a.proto_len))
        return NULL;
    /* uWSGI takes an empty string as "not given" (its length 0): so does gyre. */
    if (a.key && !a.key_len)
        a.key = NULL;
    if (a.origin && !a.origin_len)
        a.origin = NULL;
    if (a.proto && !a.proto_len)
        a.proto = NULL;
    struct gy_core *c = request_core("unable to complete websocket handshake", NULL);
    if (!c || websocket_handshake(c, &a) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *recv_common(PyObject *args, PyObject *kwargs, const char *fmt, bool nb)
{
    static char *kwlist[] = { "request_context", NULL };
    PyObject *ctx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &ctx))
        return NULL;
    struct gy_core *c = request_core("unable to receive websocket message", ctx);
    return c ? websocket_recv(c, nb) : NULL;
}

static PyObject *py_websocket_recv(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    return recv_common(args, kwargs, "|O:websocket_recv", false);
}

static PyObject *py_websocket_recv_nb(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    return recv_common(args, kwargs, "|O:websocket_recv_nb", true);
}

static PyObject *send_common(PyObject *args, PyObject *kwargs, const char *fmt, unsigned opcode,
                             const char *what)
{
    static char *kwlist[] = { "message", "request_context", NULL };
    const char *msg;
    Py_ssize_t len;
    PyObject *ctx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &msg, &len, &ctx))
        return NULL;
    char err[64];
    snprintf(err, sizeof(err), "unable to send %s", what);
    struct gy_core *c = request_core(err, ctx);
    if (!c || websocket_send(c, opcode, msg, (size_t)len, what) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *py_websocket_send(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    return send_common(args, kwargs, "s#|O:websocket_send", 0x1, "websocket message");
}

static PyObject *py_websocket_send_binary(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    return send_common(args, kwargs, "s#|O:websocket_send_binary", 0x2, "websocket binary message");
}

#define KW(fn) (PyCFunction)(void (*)(void))(fn), METH_VARARGS | METH_KEYWORDS

PyMethodDef uwsgi_websocket_methods[] = {
    { "websocket_handshake", KW(py_websocket_handshake),
      "websocket_handshake(key=None, origin=None, proto=None): answer the request with 101 and "
      "make it a WebSocket" },
    { "websocket_recv", KW(py_websocket_recv),
      "websocket_recv(): the next message (bytes), waiting for it; pings are answered" },
    { "websocket_recv_nb", KW(py_websocket_recv_nb),
      "websocket_recv_nb(): the next message (bytes), or b'' when none is complete yet" },
    { "websocket_send", KW(py_websocket_send), "websocket_send(message): a text message" },
    { "websocket_send_binary", KW(py_websocket_send_binary),
      "websocket_send_binary(message): a binary message" },
    { NULL, NULL, 0, NULL },
};
