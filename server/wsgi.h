/*
 * wsgi*.c's shared declarations: PEP 3333 split by concern. Private to those files (the rest
 * of the server sees core.h's wsgi_init, wsgi_set_app and wsgi_serve).
 *
 *   wsgi.c              one request: the app called, its result sent, the 500, the log line
 *   wsgi_environ.c      the environ
 *   wsgi_headers.c      start_response: the status line and the headers (+ --add-header)
 *   wsgi_route.c        before the app: --limit-post, the routing rules, --post-buffering
 *   wsgi_send.c         the response body: write(), iterables, sequences, files; outcomes
 *   wsgi_filewrapper.c  wsgi.file_wrapper
 */
#ifndef GYRE_WSGI_H
#define GYRE_WSGI_H

#include "config.h"
#include "core.h"

#include <sys/types.h>

/* What the log line and the response need to know of the request's vars. */
struct req_facts {
    int method, uri, path_info, addr, proto; /* param indexes or -1 */
    bool https;
    struct gy_slice scheme;
};

/* How serving a request went. */
enum outcome {
    OUT_OK,          /* response complete */
    OUT_APP_ERROR,   /* the app failed; a traceback was logged */
    OUT_CLIENT_GONE, /* the client went away or timed out */
    OUT_ABANDONED,   /* the core was killed: its greenlet must end */
    OUT_NOT_A_FILE,  /* send_file: no regular file behind the wrapper, iterate it instead */
};

/* wsgi_environ.c */
int environ_init(void);
PyObject *environ_build(struct gy_core *c, struct req_facts *f, PyObject *input);
/* The value of param `index` of the request, or dflt when index < 0. */
struct gy_slice environ_param(const struct gy_conn *conn, int index, const char *dflt);

/* wsgi_headers.c */
/* The request's start_response, bound to its wsgi.input (input_owner). */
PyObject *start_response_new(PyObject *input);
/* The status line (or CGI Status header) opening a response head; -1 with MemoryError. */
int head_start(struct gy_core *c, const char *status, size_t slen);
/* Append to the head; -1 with MemoryError. */
int head_append(struct gy_response *r, const char *p, size_t n);
#define HEAD_APPEND_LIT(r, lit) head_append((r), "" lit, sizeof(lit) - 1)

/* Append --add-header's headers and the routing rules' addheader ones; -1 with MemoryError. */
int head_add_extra(struct gy_core *c);
int headers_init(const struct gy_config *cfg);

/* wsgi_route.c */
int wsgi_route_init(const struct gy_config *cfg);
/* --limit-post, the routing rules, --post-buffering: *answered when the app must not run. */
enum outcome wsgi_before_app(struct gy_core *c, PyObject *env, bool *answered);
void wsgi_after_request(struct gy_core *c);
/* A route's donotlog: action matched this request: no request log line. */
bool route_says_donotlog(const struct gy_core *c);

/* wsgi_send.c */
int send_init(void);
/* The request's write(), bound to its wsgi.input. */
PyObject *write_new(PyObject *input);
/* Send the head (once) followed by body bytes; content_length >= 0 adds that header when the
 * app gave none. IO_OK once everything is written. */
enum io_result send_response(struct gy_core *c, const char *body, size_t blen,
                             int64_t content_length);
/* The app's return value, sent; then its close() called (PEP 3333: whatever happened). */
enum outcome send_result(struct gy_core *c, PyObject *result);
enum outcome close_result(struct gy_core *c, PyObject *result, enum outcome o);
/* The app raised (the Python error set): log it, or see the core was killed. */
enum outcome app_failed(struct gy_core *c, const char *what);

/* wsgi_filewrapper.c */
int filewrapper_init_type(void);
PyObject *filewrapper_type(void); /* borrowed: environ's wsgi.file_wrapper */
bool filewrapper_check(PyObject *o);
/* The file behind a file_wrapper as (fd, offset, size), when it is a regular file. */
bool filewrapper_source(PyObject *o, int *fd, off_t *offset, uint64_t *count);

#endif
