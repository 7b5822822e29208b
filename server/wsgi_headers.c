/*
 * PEP 3333's start_response: the status line and the headers, checked and serialised into the
 * core's response head (response.c's buffer).
 *
 * The head also gets --add-header's headers and the routing rules' edits (route.c's outcome,
 * kept on the core for the request): delheader drops the app's header of that name, addheader
 * and --add-header append theirs after the app's.
 *
 * Depends on: input.c, log.c, response.c, wsgi_send.c (server/README)
 */
#include "log.h"
#include "proto.h"
#include "route.h"
#include "wsgi.h"

#include <string.h>
#include <strings.h>

/* --add-header's "Name: value" lines, as given (options.c checked the colon). */
static const char *const *add_headers;
static int nadd_headers;

int headers_init(const struct gy_config *cfg)
{
    add_headers = cfg->add_headers;
    nadd_headers = cfg->nadd_headers;
    for (int i = 0; i < nadd_headers; i++)
        if (strpbrk(add_headers[i], "\r\n")) {
            log_msg("--add-header \"%s\": a header is one line", add_headers[i]);
            return -1;
        }
    return 0;
}

static int append_header_line(struct gy_response *r, const char *line)
{
    if (head_append(r, line, strlen(line)) < 0 || HEAD_APPEND_LIT(r, "\r\n") < 0)
        return -1;
    r->nheaders++;
    return 0;
}

int head_add_extra(struct gy_core *c)
{
    struct gy_response *r = &c->resp;
    for (int i = 0; i < nadd_headers; i++)
        if (append_header_line(r, add_headers[i]) < 0)
            return -1;
    const struct route_outcome *out = c->route;
    for (int i = 0; out && i < out->nadd_headers; i++) {
        /* The value may hold the client's bytes ($1, ${REQUEST_URI}): one line, or none. */
        if (strpbrk(out->add_headers[i], "\r\n")) {
            log_msg("core %d: addheader would hold a line break: header dropped", c->id);
            continue;
        }
        if (append_header_line(r, out->add_headers[i]) < 0)
            return -1;
    }
    return 0;
}

/* delheader/remheader: the app's header of this name is left out. */
static bool header_deleted(const struct gy_core *c, const char *name, Py_ssize_t nlen)
{
    const struct route_outcome *out = c->route;
    for (int i = 0; out && i < out->ndel_headers; i++)
        if (strlen(out->del_headers[i]) == (size_t)nlen &&
            strncasecmp(out->del_headers[i], name, (size_t)nlen) == 0)
            return true;
    return false;
}

/* The head's bytes are response.c's; out of memory here is a MemoryError for the app. */
static int head_reserve(struct gy_response *r, size_t more)
{
    if (resp_head_reserve(r, more) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

int head_append(struct gy_response *r, const char *p, size_t n)
{
    if (resp_head_append(r, p, n) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The status line (or CGI Status header) opening a response head. */
int head_start(struct gy_core *c, const char *status, size_t slen)
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
            PyErr_Format(PyExc_ValueError, "invalid character in header name %.*s", (int)nlen,
                         name);
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
static PyMethodDef start_response_def = {
    "start_response", (PyCFunction)(void (*)(void))start_response, METH_FASTCALL,
    "start_response(status, headers, exc_info=None) -> write"
};

static PyObject *start_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    struct gy_core *c = input_owner(self, "start_response()");
    if (!c)
        return NULL;
    if (nargs < 2 || nargs > 3)
        return PyErr_Format(PyExc_TypeError, "start_response() takes 2 or 3 arguments (%zd given)",
                            nargs);
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
            PyErr_Format(PyExc_TypeError,
                         "each response header must be a (name, value) tuple, "
                         "not %R",
                         h);
            goto fail;
        }
        Py_ssize_t nlen, vlen;
        const char *name = latin1_of(PyTuple_GET_ITEM(h, 0), &nlen, "header name");
        const char *value = name ? latin1_of(PyTuple_GET_ITEM(h, 1), &vlen, "header value") : NULL;
        if (!value || check_header(name, nlen, value, vlen) < 0)
            goto fail;
        if (header_deleted(c, name, nlen))
            continue;
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
    if (head_add_extra(c) < 0) {
        r->head_len = 0;
        return NULL;
    }
    r->status = (status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0');
    r->started = true;
    return write_new(self);
fail:
    Py_DECREF(seq);
    r->head_len = 0;
    return NULL;
}

PyObject *start_response_new(PyObject *input)
{
    return PyCFunction_New(&start_response_def, input);
}
