/*
 * PEP 3333: the environ, start_response, write(), the response and its log line.
 *
 * Runs inside a core's greenlet. Every write may suspend the core (conn_write_all); nothing here
 * blocks the loop.
 *
 * Depends on: conn.c, engine.c, input.c, log.c, logformat.c, response.c, scoreboard.c, server.c
 *     (server/README)
 */
#include "engine.h"
#include "log.h"
#include "core.h"
#include "proto.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const char BODY_500[] = "Internal Server Error\n";

static struct {
    PyObject *app;
    PyObject *greenlet_exit;        /* greenlet.GreenletExit: how a killed core ends */
    PyObject *wsgi_version, *stderr_obj, *file_wrapper_type;
    PyObject *s_http, *s_https, *s_empty, *s_get, *s_localhost, *s_80, *s_http11;
    PyObject *k_wsgi_version, *k_url_scheme, *k_input, *k_errors, *k_multithread,
        *k_multiprocess, *k_run_once, *k_file_wrapper, *k_input_terminated, *k_core;
    PyObject *k_script_name, *k_path_info, *k_query_string, *k_request_method, *k_server_name,
        *k_server_port, *k_server_protocol, *k_content_type;
    PyObject *str_close, *str_fileno;
} W;

/* ---- interned environ keys ---------------------------------------------------------------- */

/* CGI names repeat on every request: keep each as one interned str, found by its bytes. The
 * table only grows to a fixed size so that a client inventing header names cannot grow it. */
#define KEY_SLOTS 512
#define KEY_MAX_ENTRIES 384
#define KEY_MAX_LEN 64

static struct key_slot {
    uint32_t hash;
    uint32_t len;
    char name[KEY_MAX_LEN];
    PyObject *str;
} key_table[KEY_SLOTS];
static int key_entries;

static uint32_t key_hash(const char *p, uint32_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

/* A new reference to the str for a CGI name. */
static PyObject *environ_key(struct gy_slice name)
{
    if (name.len > KEY_MAX_LEN)
        return PyUnicode_DecodeLatin1(name.ptr, name.len, NULL);
    uint32_t h = key_hash(name.ptr, name.len);
    for (uint32_t i = 0; i < KEY_SLOTS; i++) {
        struct key_slot *s = &key_table[(h + i) % KEY_SLOTS];
        if (!s->str) {
            PyObject *k = PyUnicode_DecodeLatin1(name.ptr, name.len, NULL);
            if (!k || key_entries >= KEY_MAX_ENTRIES)
                return k;
            PyUnicode_InternInPlace(&k);
            s->hash = h;
            s->len = name.len;
            memcpy(s->name, name.ptr, name.len);
            s->str = k;
            key_entries++;
            Py_INCREF(k);
            return k;
        }
        if (s->hash == h && s->len == name.len && memcmp(s->name, name.ptr, name.len) == 0) {
            Py_INCREF(s->str);
            return s->str;
        }
    }
    return PyUnicode_DecodeLatin1(name.ptr, name.len, NULL);
}

static PyObject *intern_cstr(const char *s)
{
    struct gy_slice sl = {s, (uint32_t)strlen(s)};
    return environ_key(sl);
}

/* ---- the environ -------------------------------------------------------------------------- */

/* What the log line and the response need to know of the request's vars. */
struct req_facts {
    int method, uri, path_info, addr, proto;    /* param indexes or -1 */
    bool https;
    struct gy_slice scheme;
};

static int set_item(PyObject *env, PyObject *key, PyObject *value)
{
    if (!key || !value) {
        Py_XDECREF(key);
        Py_XDECREF(value);
        return -1;
    }
    int rc = PyDict_SetItem(env, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    return rc;
}

static int set_default(PyObject *env, PyObject *key, PyObject *value)
{
    PyObject *r = PyDict_SetDefault(env, key, value);
    return r ? 0 : -1;
}

static PyObject *build_environ(struct gy_core *c, struct req_facts *f, PyObject *input)
{
    const struct gy_conn *conn = c->conn;
    PyObject *env = PyDict_New();
    if (!env)
        return NULL;
    *f = (struct req_facts){.method = -1, .uri = -1, .path_info = -1, .addr = -1, .proto = -1};
    struct gy_slice http_content_type = {NULL, 0};
    bool have_content_type = false;

    for (uint32_t i = 0; i < conn->nparams; i++) {
        const struct gy_param *p = &conn->params[i];
        struct gy_slice n = p->name;
        /* PEP 3333: the body's type and length are CONTENT_TYPE and CONTENT_LENGTH only. */
        static const char http_content[] = "HTTP_CONTENT_";
        if (n.len > sizeof http_content - 1 &&
            memcmp(n.ptr, http_content, sizeof http_content - 1) == 0) {
            if (GY_SLICE_EQ(n, "HTTP_CONTENT_TYPE")) {
                http_content_type = p->value;
                continue;
            }
            if (GY_SLICE_EQ(n, "HTTP_CONTENT_LENGTH"))
                continue;
        }
        switch (n.ptr[0]) {
        case 'R':
            if (GY_SLICE_EQ(n, "REQUEST_METHOD"))
                f->method = (int)i;
            else if (GY_SLICE_EQ(n, "REQUEST_URI"))
                f->uri = (int)i;
            else if (GY_SLICE_EQ(n, "REMOTE_ADDR"))
                f->addr = (int)i;
            break;
        case 'P':
            if (GY_SLICE_EQ(n, "PATH_INFO"))
                f->path_info = (int)i;
            break;
        case 'S':
            if (GY_SLICE_EQ(n, "SERVER_PROTOCOL"))
                f->proto = (int)i;
            break;
        case 'C':
            if (GY_SLICE_EQ(n, "CONTENT_TYPE"))
                have_content_type = true;
            break;
        case 'H':
            /* "on" as nginx sends it, or "1"; "off" and "" are plain http, as CGI has it. */
            if (GY_SLICE_EQ(n, "HTTPS"))
                f->https = (p->value.len == 2 && (p->value.ptr[0] | 0x20) == 'o' &&
                            (p->value.ptr[1] | 0x20) == 'n') ||
                           GY_SLICE_EQ(p->value, "1");
            break;
        case 'U':
            if (GY_SLICE_EQ(n, "UWSGI_SCHEME"))
                f->scheme = p->value;
            break;
        }
        if (set_item(env, environ_key(n),
                     PyUnicode_DecodeLatin1(p->value.ptr, p->value.len, NULL)) < 0)
            goto fail;
    }
    if (!have_content_type && http_content_type.ptr &&
        set_item(env, Py_NewRef(W.k_content_type),
                 PyUnicode_DecodeLatin1(http_content_type.ptr, http_content_type.len, NULL)) < 0)
        goto fail;

    /* Keys PEP 3333 requires even when the front end did not send them. */
    if (set_default(env, W.k_script_name, W.s_empty) < 0 ||
        set_default(env, W.k_path_info, W.s_empty) < 0 ||
        set_default(env, W.k_query_string, W.s_empty) < 0 ||
        set_default(env, W.k_request_method, W.s_get) < 0 ||
        set_default(env, W.k_server_name, W.s_localhost) < 0 ||
        set_default(env, W.k_server_port, W.s_80) < 0 ||
        set_default(env, W.k_server_protocol, W.s_http11) < 0)
        goto fail;

    PyObject *scheme;
    if (f->scheme.len)
        scheme = PyUnicode_DecodeLatin1(f->scheme.ptr, f->scheme.len, NULL);
    else
        scheme = Py_NewRef(f->https ? W.s_https : W.s_http);
    if (set_item(env, Py_NewRef(W.k_url_scheme), scheme) < 0 ||
        PyDict_SetItem(env, W.k_input, input) < 0 ||
        set_item(env, Py_NewRef(W.k_core), PyLong_FromLong(c->id)) < 0 ||
        PyDict_SetItem(env, W.k_wsgi_version, W.wsgi_version) < 0 ||
        PyDict_SetItem(env, W.k_errors, W.stderr_obj) < 0 ||
        PyDict_SetItem(env, W.k_multithread, Py_False) < 0 ||
        PyDict_SetItem(env, W.k_multiprocess, Py_False) < 0 ||
        PyDict_SetItem(env, W.k_run_once, Py_False) < 0 ||
        PyDict_SetItem(env, W.k_input_terminated, Py_True) < 0 ||
        PyDict_SetItem(env, W.k_file_wrapper, W.file_wrapper_type) < 0)
        goto fail;
    return env;
fail:
    Py_DECREF(env);
    return NULL;
}

static struct gy_slice param_value(const struct gy_conn *conn, int index, const char *dflt)
{
    if (index < 0)
        return (struct gy_slice){dflt, (uint32_t)strlen(dflt)};
    return conn->params[index].value;
}

/* ---- start_response and write() ----------------------------------------------------------- */


/* The head's bytes are response.c's; out of memory here is a MemoryError for the app. */
static int head_reserve(struct gy_response *r, size_t more)
{
    if (resp_head_reserve(r, more) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int head_append(struct gy_response *r, const char *p, size_t n)
{
    if (resp_head_append(r, p, n) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}
#define HEAD_APPEND_LIT(r, lit) head_append((r), "" lit, sizeof(lit) - 1)

/* The status line (or CGI Status header) opening a response head. */
static int head_start(struct gy_core *c, const char *status, size_t slen)
{
    struct gy_response *r = &c->resp;
    const char *prefix = c->conn->proto->status_prefix;
    r->head_len = 0;
    r->has_content_length = false;
    r->length = -1;
    r->nheaders = 0;
    return head_append(r, prefix, strlen(prefix)) < 0 || head_append(r, status, slen) < 0 ||
                   HEAD_APPEND_LIT(r, "\r\n") < 0
               ? -1
               : 0;
}

/* The latin-1 bytes of a str, without copying when it is stored as one byte per char. */
static const char *latin1_of(PyObject *s, Py_ssize_t *len, const char *what)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(s)->tp_name);
        return NULL;
    }
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError, "%s must be latin-1 (PEP 3333): %R", what, s);
        return NULL;
    }
    *len = PyUnicode_GET_LENGTH(s);
    return (const char *)PyUnicode_1BYTE_DATA(s);
}

static bool is_token_char(unsigned char ch)
{
    /* RFC 9110 tchar */
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int check_header(const char *name, Py_ssize_t nlen, const char *value, Py_ssize_t vlen)
{
    if (nlen == 0) {
        PyErr_SetString(PyExc_ValueError, "empty header name");
        return -1;
    }
    for (Py_ssize_t i = 0; i < nlen; i++)
        if (!is_token_char((unsigned char)name[i])) {
            PyErr_Format(PyExc_ValueError, "invalid character in header name %.*s", (int)nlen, name);
            return -1;
        }
    for (Py_ssize_t i = 0; i < vlen; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            PyErr_Format(PyExc_ValueError, "control character in the value of header %.*s",
                         (int)nlen, name);
            return -1;
        }
    }
    return 0;
}

/* The app's Content-Length: what the response promises, enforced by send_framed. One
 * decimal number (repeated only with the same value): anything else could not be enforced. */
static int app_content_length(struct gy_response *r, const char *value, Py_ssize_t vlen)
{
    int64_t v;
    if (vlen == 0 || gy_parse_decimal(value, (size_t)vlen, &v) < 0) {
        PyErr_Format(PyExc_ValueError, "invalid Content-Length response header: %.*s",
                     (int)(vlen > 64 ? 64 : vlen), value);
        return -1;
    }
    if (r->has_content_length && r->length != v) {
        PyErr_SetString(PyExc_ValueError, "two different Content-Length response headers");
        return -1;
    }
    r->has_content_length = true;
    r->length = v;
    return 0;
}

/* start_response and write are made per request, bound to the request's wsgi.input: an app
 * that keeps them past their request gets an error, never another request's response. */
static PyObject *start_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
static PyObject *write_callable(PyObject *self, PyObject *data);
static PyMethodDef start_response_def = {
    "start_response", (PyCFunction)(void (*)(void))start_response, METH_FASTCALL,
    "start_response(status, headers, exc_info=None) -> write"};
static PyMethodDef write_def = {"write", write_callable, METH_O, "write(data): send body bytes now"};

static PyObject *start_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    struct gy_core *c = input_owner(self, "start_response()");
    if (!c)
        return NULL;
    if (nargs < 2 || nargs > 3)
        return PyErr_Format(PyExc_TypeError,
                            "start_response() takes 2 or 3 arguments (%zd given)", nargs);
    struct gy_response *r = &c->resp;
    PyObject *exc_info = nargs == 3 ? args[2] : Py_None;
    if (exc_info != Py_None) {
        if (r->head_sent) {
            /* PEP 3333: too late to change the response: re-raise the app's error. */
            if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3)
                return PyErr_Format(PyExc_TypeError, "exc_info must be a 3-tuple");
            PyObject *t = PyTuple_GET_ITEM(exc_info, 0), *v = PyTuple_GET_ITEM(exc_info, 1),
                     *tb = PyTuple_GET_ITEM(exc_info, 2);
            Py_INCREF(t);
            Py_INCREF(v);
            Py_INCREF(tb);
            PyErr_Restore(t, v, tb == Py_None ? (Py_DECREF(tb), NULL) : tb);
            return NULL;
        }
    } else if (r->started) {
        return PyErr_Format(PyExc_RuntimeError,
                            "start_response() called a second time without exc_info");
    }

    Py_ssize_t slen;
    const char *status = latin1_of(args[0], &slen, "status");
    if (!status)
        return NULL;
    if (slen < 3 || status[0] < '1' || status[0] > '9' || status[1] < '0' || status[1] > '9' ||
        status[2] < '0' || status[2] > '9' || (slen > 3 && status[3] != ' ') ||
        memchr(status, '\r', (size_t)slen) || memchr(status, '\n', (size_t)slen))
        return PyErr_Format(PyExc_ValueError, "status must look like '200 OK', not %R", args[0]);

    PyObject *seq = PySequence_Fast(args[1], "response headers must be a list of tuples");
    if (!seq)
        return NULL;
    if (head_start(c, status, (size_t)slen) < 0)
        goto fail;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *h = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 2) {
            PyErr_Format(PyExc_TypeError, "each response header must be a (name, value) tuple, "
                                          "not %R", h);
            goto fail;
        }
        Py_ssize_t nlen, vlen;
        const char *name = latin1_of(PyTuple_GET_ITEM(h, 0), &nlen, "header name");
        const char *value = name ? latin1_of(PyTuple_GET_ITEM(h, 1), &vlen, "header value") : NULL;
        if (!value || check_header(name, nlen, value, vlen) < 0)
            goto fail;
        if (nlen == sizeof("Content-Length") - 1 &&
            strncasecmp(name, "Content-Length", (size_t)nlen) == 0 &&
            app_content_length(r, value, vlen) < 0)
            goto fail;
        if (head_reserve(r, (size_t)(nlen + vlen + 4)) < 0)
            goto fail;
        head_append(r, name, (size_t)nlen);
        HEAD_APPEND_LIT(r, ": ");
        head_append(r, value, (size_t)vlen);
        HEAD_APPEND_LIT(r, "\r\n");
        r->nheaders++;
    }
    Py_DECREF(seq);
    r->status = (status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0');
    r->started = true;
    return PyCFunction_New(&write_def, self);
fail:
    Py_DECREF(seq);
    r->head_len = 0;
    return NULL;
}

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
    struct iovec head = {NULL, 0};
    if (!r->head_sent) {
        /* 1xx, 204 and 304 have no body, whatever the app returns, as HEAD responses. */
        if (!resp_has_body(r))
            r->head_only = true;
        if (c->conn->proto->head_finish(c->conn, r, content_length) < 0) {
            PyErr_NoMemory();
            return IO_FAILED;
        }
        head = (struct iovec){r->head, r->head_len};
        r->head_sent = true;
    }
    nbody = r->head_only ? 0 : clip_to_length(r, body, nbody);
    for (int i = 0; i < nbody; i++)
        r->body_out += body[i].iov_len;
    if (!head.iov_len && nbody == 0)
        return IO_OK;
    return c->conn->proto->send(c->conn, head.iov_len ? &head : NULL, body, nbody);
}

/* Send the head (once) followed by body bytes; content_length >= 0 adds that header when the
 * app gave none. Returns an io_result; IO_OK once everything is written. */
static enum io_result send_response(struct gy_core *c, const char *body, size_t blen,
                                    int64_t content_length)
{
    struct iovec biov = {(void *)body, blen};
    r_account(c, blen);
    return send_framed(c, &biov, blen && !c->resp.head_only ? 1 : 0, content_length);
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
    enum io_result rc = send_response(c, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), -1);
    if (rc != IO_OK) {
        raise_io(rc);
        return NULL;
    }
    Py_RETURN_NONE;
}


/* ---- wsgi.file_wrapper -------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *filelike;
    Py_ssize_t blksize;
} FileWrapper;

static int filewrapper_init(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"filelike", "blksize", NULL};
    FileWrapper *fw = (FileWrapper *)self;
    PyObject *filelike;
    Py_ssize_t blksize = 65536;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:file_wrapper", kwlist, &filelike, &blksize))
        return -1;
    if (blksize <= 0)
        blksize = 65536;
    Py_XSETREF(fw->filelike, Py_NewRef(filelike));
    fw->blksize = blksize;
    return 0;
}

static PyObject *filewrapper_next(PyObject *self)
{
    FileWrapper *fw = (FileWrapper *)self;
    PyObject *chunk = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);
    if (!chunk)
        return NULL;
    if (PyObject_Length(chunk) == 0) {
        Py_DECREF(chunk);
        return NULL; /* StopIteration */
    }
    return chunk;
}

static PyObject *filewrapper_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    FileWrapper *fw = (FileWrapper *)self;
    if (PyObject_HasAttr(fw->filelike, W.str_close))
        return PyObject_CallMethodNoArgs(fw->filelike, W.str_close);
    Py_RETURN_NONE;
}

static void filewrapper_dealloc(PyObject *self)
{
    FileWrapper *fw = (FileWrapper *)self;
    Py_XDECREF(fw->filelike);
    Py_TYPE(self)->tp_free(self);
}

static PyMethodDef filewrapper_methods[] = {
    {"close", filewrapper_close, METH_NOARGS, "close the file"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FileWrapperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gyre.FileWrapper",
    .tp_basicsize = sizeof(FileWrapper),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = filewrapper_init,
    .tp_dealloc = filewrapper_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = filewrapper_next,
    .tp_methods = filewrapper_methods,
    .tp_doc = "wsgi.file_wrapper: a regular file's contents go out with sendfile(2)",
};

/* The file behind a file_wrapper as (fd, offset, size), when it is a regular file. */
static bool sendfile_source(FileWrapper *fw, int *fd, off_t *offset, uint64_t *count)
{
    PyObject *r = PyObject_CallMethodNoArgs(fw->filelike, W.str_fileno);
    if (!r) {
        PyErr_Clear();
        return false;
    }
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v < 0 || v > INT_MAX) {
        PyErr_Clear();
        return false;
    }
    /* Python file objects buffer: flush pending writes, honour the position the app left. */
    PyObject *t = PyObject_CallMethod(fw->filelike, "tell", NULL);
    long long pos = t ? PyLong_AsLongLong(t) : -1;
    Py_XDECREF(t);
    if (pos < 0) {
        PyErr_Clear();
        return false;
    }
    struct stat st;
    if (fstat((int)v, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    *fd = (int)v;
    *offset = (off_t)pos;
    *count = st.st_size > pos ? (uint64_t)(st.st_size - pos) : 0;
    return true;
}

/* ---- serving one request ------------------------------------------------------------------ */

enum outcome {
    OUT_OK,            /* response complete */
    OUT_APP_ERROR,     /* the app failed; a traceback was logged */
    OUT_CLIENT_GONE,   /* the client went away or timed out */
    OUT_ABANDONED,     /* the core was killed: its greenlet must end */
    OUT_NOT_A_FILE,    /* send_file: no regular file behind the wrapper, iterate it instead */
};

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
        log_msg("core %d: socket timeout writing the response to %s, connection dropped", c->id,
                conn->listener->name);
        return OUT_CLIENT_GONE;
    case IO_CLOSED:
        log_msg("core %d: the client went away before the response was complete", c->id);
        return OUT_CLIENT_GONE;
    case IO_ERROR:
        log_errno("core %d: writing the response", c->id);
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
        PyErr_Print();
        return OUT_CLIENT_GONE;
    }
    return OUT_CLIENT_GONE;
}

static enum outcome app_failed(struct gy_core *c, const char *what)
{
    if (PyErr_ExceptionMatches(W.greenlet_exit))
        return OUT_ABANDONED;
    log_msg("core %d: %s:", c->id, what);
    PyErr_PrintEx(0);
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
        return app_error(c, "the app's response items must be bytes, not ",
                         Py_TYPE(item)->tp_name);
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
                iov[k++] = (struct iovec){PyBytes_AS_STRING(items[i]), (size_t)len};
            c->resp.body_sent += (uint64_t)len;
        }
        o = io_outcome(c, send_framed(c, iov, k, total));
    }
    return o;
}

static enum outcome send_file(struct gy_core *c, FileWrapper *fw)
{
    int fd;
    off_t offset;
    uint64_t count;
    if (!c->resp.started || !sendfile_source(fw, &fd, &offset, &count))
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

static enum outcome send_result(struct gy_core *c, PyObject *result)
{
    if (result == Py_None)
        return app_error(c, "the app returned None, not an iterable of bytes", NULL);
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
    if (Py_IS_TYPE(result, &FileWrapperType)) {
        enum outcome o = send_file(c, (FileWrapper *)result);
        if (o != OUT_NOT_A_FILE)
            return o;
    }
    return send_iterable(c, result);
}

/* PEP 3333: close() is called whatever happened, also when the client went away. */
static enum outcome close_result(struct gy_core *c, PyObject *result, enum outcome o)
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

/* A 500 in the request's protocol, if nothing of the response went out yet. */
static bool answer_500(struct gy_core *c)
{
    struct gy_response *r = &c->resp;
    if (r->head_sent)
        return false;
    static const char status[] = "500 Internal Server Error";
    static const char ctype[] = "Content-Type: text/plain\r\n";
    r->status = 500;
    r->started = true;
    r->body_sent = r->body_out = 0;
    if (head_start(c, status, sizeof status - 1) < 0 || head_append(r, ctype, sizeof ctype - 1) < 0) {
        PyErr_Clear();
        return false;
    }
    r->nheaders = 1;
    enum io_result rc = send_response(c, BODY_500, sizeof BODY_500 - 1, sizeof BODY_500 - 1);
    PyErr_Clear();
    return rc == IO_OK;
}

/* The body against the head's Content-Length, once the app is done. Extra bytes were dropped
 * (clip_to_length): the response is still whole. Missing bytes leave the peer waiting for
 * them: the response is cut, and the connection must close (conn_request_done). */
static bool body_matches_length(struct gy_core *c)
{
    const struct gy_response *r = &c->resp;
    if (r->length < 0 || r->head_only)
        return true;
    if (r->body_sent > (uint64_t)r->length)
        log_msg("core %d: the app's response is longer than its Content-Length (%llu bytes "
                "for %lld): the rest was dropped",
                c->id, (unsigned long long)r->body_sent, (long long)r->length);
    if (r->body_out < (uint64_t)r->length) {
        log_msg("core %d: the response is shorter than its Content-Length (%llu of %lld bytes): "
                "closing the connection",
                c->id, (unsigned long long)r->body_out, (long long)r->length);
        return false;
    }
    return true;
}

static void log_request(struct gy_core *c, const struct req_facts *f, double started)
{
    const struct gy_conn *conn = c->conn;
    struct gy_slice method = param_value(conn, f->method, "GET");
    struct gy_slice uri = param_value(conn, f->uri >= 0 ? f->uri : f->path_info, "/");
    struct gy_slice addr = param_value(conn, f->addr, "-");
    struct gy_slice proto = param_value(conn, f->proto, "HTTP/1.1");
    struct log_fields lf = {
        .method = method.ptr, .method_len = (int)method.len,
        .uri = uri.ptr, .uri_len = (int)(uri.len > 512 ? 512 : uri.len),
        .addr = addr.ptr, .addr_len = (int)addr.len,
        .proto = proto.ptr, .proto_len = (int)proto.len,
        .status = c->resp.status,
        .size = (unsigned long long)c->resp.body_sent,
        .msecs = (unsigned)((engine_now() - started) * 1000.0),
        .pid = (int)S.pid,
        .core = c->id,
        .req = (unsigned long long)S.requests,
        .vars = conn->nparams,
        .head_size = (unsigned)conn->head_len,
        .headers = c->resp.nheaders,
        .headers_size = c->resp.head_len,
        .switches = (unsigned long long)c->switches,
    };
    /* --log-format or uWSGI's default line: one renderer, which escapes the client's text.
     * Room for the URI's 512 bytes escaped (4 each) and the rest of the line. */
    char line[4096];
    size_t n = logformat_render(&lf, line, sizeof line);
    if (n > 0)
        log_raw(line, n);
}

bool wsgi_serve(struct gy_core *c)
{
    struct gy_conn *conn = c->conn;
    struct gy_response *r = &c->resp;
    r->head_len = 0;
    r->status = 0;
    r->started = r->head_sent = r->has_content_length = false;
    r->length = -1;
    r->body_sent = r->body_out = 0;
    r->nheaders = 0;
    S.requests++;
    struct req_facts facts;
    enum outcome o;
    PyObject *input = input_new(c);
    PyObject *start_response_obj = input ? PyCFunction_New(&start_response_def, input) : NULL;
    PyObject *env = start_response_obj ? build_environ(c, &facts, input) : NULL;
    if (!env) {
        o = app_failed(c, "cannot build the environ");
        facts = (struct req_facts){-1, -1, -1, -1, -1, false, {NULL, 0}};
    } else {
        struct gy_slice m = param_value(conn, facts.method, "GET");
        r->head_only = GY_SLICE_EQ(m, "HEAD");
        PyObject *args[2] = {env, start_response_obj};
        PyObject *result = PyObject_Vectorcall(W.app, args, 2, NULL);
        if (!result) {
            o = app_failed(c, "the app raised");
        } else {
            o = send_result(c, result);
            o = close_result(c, result, o);
            Py_DECREF(result);
        }
    }

    bool complete = o == OUT_OK && body_matches_length(c);
    if (o == OUT_ABANDONED) {
        PyErr_Clear();
        struct gy_slice m = param_value(conn, facts.method, "GET");
        struct gy_slice u = param_value(conn, facts.uri, "/");
        char what[64 + 4 * 256];
        size_t wl = log_escape(what, 64, m.ptr, m.len);
        what[wl++] = ' ';
        wl += log_escape(what + wl, sizeof what - wl, u.ptr, u.len > 256 ? 256 : u.len);
        if (c->harakiri)
            log_msg("core %d: %.*s cancelled by harakiri%s", c->id, (int)wl, what,
                    r->head_sent ? "" : "; answered 500");
        else
            log_msg("core %d: %.*s abandoned: the app suspended its greenlet and nothing "
                    "can resume it%s",
                    c->id, (int)wl, what, r->head_sent ? "" : "; answered 500");
        /* This greenlet is being killed and may not suspend: write what fits, drop the rest. */
        conn->nowait = true;
        answer_500(c);
    } else if (o == OUT_APP_ERROR) {
        PyErr_Clear();
        complete = answer_500(c);
    }
    bool reusable = conn->proto->finish(conn, complete) && o != OUT_ABANDONED;
    PyErr_Clear();
    scoreboard_record_request(S.slot, r->status, r->body_sent, engine_now() - conn->started,
                              o == OUT_APP_ERROR || o == OUT_ABANDONED);
    S.slot->cores[c->id].requests++;
    if (c->harakiri)
        S.slot->harakiri++;
    if (!S.cfg->disable_logging)
        log_request(c, &facts, conn->started);
    Py_XDECREF(env);
    Py_XDECREF(start_response_obj);
    Py_XDECREF(input);
    c->conn = NULL;
    conn_request_done(conn, reusable);
    return o != OUT_ABANDONED;
}

void wsgi_set_app(PyObject *app)
{
    Py_XSETREF(W.app, app);
}

int wsgi_init(void)
{
    if (PyType_Ready(&FileWrapperType) < 0)
        return -1;
    PyObject *sys_stderr = PySys_GetObject("stderr");
    W.stderr_obj = Py_XNewRef(sys_stderr);
    W.file_wrapper_type = Py_NewRef((PyObject *)&FileWrapperType);
    W.wsgi_version = Py_BuildValue("(ii)", 1, 0);
    W.s_http = intern_cstr("http");
    W.s_https = intern_cstr("https");
    W.s_empty = PyUnicode_FromString("");
    W.s_get = intern_cstr("GET");
    W.s_localhost = intern_cstr("localhost");
    W.s_80 = intern_cstr("80");
    W.s_http11 = intern_cstr("HTTP/1.1");
    W.k_wsgi_version = intern_cstr("wsgi.version");
    W.k_url_scheme = intern_cstr("wsgi.url_scheme");
    W.k_input = intern_cstr("wsgi.input");
    W.k_errors = intern_cstr("wsgi.errors");
    W.k_multithread = intern_cstr("wsgi.multithread");
    W.k_multiprocess = intern_cstr("wsgi.multiprocess");
    W.k_run_once = intern_cstr("wsgi.run_once");
    W.k_file_wrapper = intern_cstr("wsgi.file_wrapper");
    W.k_input_terminated = intern_cstr("wsgi.input_terminated");
    W.k_core = intern_cstr("gyre.core");
    W.k_script_name = intern_cstr("SCRIPT_NAME");
    W.k_path_info = intern_cstr("PATH_INFO");
    W.k_query_string = intern_cstr("QUERY_STRING");
    W.k_request_method = intern_cstr("REQUEST_METHOD");
    W.k_server_name = intern_cstr("SERVER_NAME");
    W.k_server_port = intern_cstr("SERVER_PORT");
    W.k_server_protocol = intern_cstr("SERVER_PROTOCOL");
    W.k_content_type = intern_cstr("CONTENT_TYPE");
    W.str_close = intern_cstr("close");
    W.str_fileno = intern_cstr("fileno");
    PyObject *greenlet = PyImport_ImportModule("greenlet");
    W.greenlet_exit = greenlet ? PyObject_GetAttrString(greenlet, "GreenletExit") : NULL;
    Py_XDECREF(greenlet);
    if (PyErr_Occurred() || !W.stderr_obj || !W.greenlet_exit)
        return -1;
    return 0;
}
