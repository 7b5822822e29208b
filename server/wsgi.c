/*
 * PEP 3333, one request: the app called with its environ and start_response, its result sent,
 * a 500 when it failed, the request's log line. The parts are in wsgi_*.c (wsgi.h).
 *
 * Runs inside a core's greenlet. Every write may suspend the core (conn_write_all); nothing here
 * blocks the loop.
 *
 * Depends on: conn.c, engine.c, input.c, log.c, logformat.c, scoreboard.c, server.c, static.c,
 *     wsgi_environ.c, wsgi_filewrapper.c, wsgi_headers.c, wsgi_route.c, wsgi_send.c
 *     (server/README)
 */
#include "engine.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "static.h"
#include "wsgi.h"

static const char BODY_500[] = "Internal Server Error\n";

static struct {
    PyObject *app;
} W;

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
    if (head_start(c, status, sizeof(status) - 1) < 0 ||
        head_append(r, ctype, sizeof(ctype) - 1) < 0) {
        PyErr_Clear();
        return false;
    }
    r->nheaders = 1;
    if (head_add_extra(c) < 0) {
        PyErr_Clear();
        return false;
    }
    enum io_result rc = send_response(c, BODY_500, sizeof(BODY_500) - 1, sizeof(BODY_500) - 1);
    PyErr_Clear();
    return rc == IO_OK;
}

void wsgi_answer_stuck(struct gy_core *c)
{
    struct gy_conn *conn = c->conn;
    conn->keep_alive = false; /* the connection ends with the worker */
    conn->nowait = true;      /* the loop writes what fits and never waits */
    answer_500(c);
    c->resp.cut = true;
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

/* uwsgi.set_logvar's, for %(NAME) in --log-format: views into the core's dict (keys str,
 * values bytes), valid while the line is rendered. At most cap of them. */
static unsigned gather_logvars(const struct gy_core *c, struct gy_param *out, unsigned cap)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    unsigned n = 0;
    while (c->logvars && n < cap && PyDict_Next(c->logvars, &pos, &key, &value)) {
        Py_ssize_t klen;
        const char *k = PyUnicode_AsUTF8AndSize(key, &klen);
        if (!k || !PyBytes_Check(value)) {
            PyErr_Clear();
            continue;
        }
        out[n++] = (struct gy_param){
            { k, (uint32_t)klen }, { PyBytes_AS_STRING(value), (uint32_t)PyBytes_GET_SIZE(value) }
        };
    }
    return n;
}

#define LOGVARS_MAX 64

static void log_request(struct gy_core *c, const struct req_facts *f, double started,
                        enum outcome o)
{
    if (route_says_donotlog(c))
        return;
    const struct gy_conn *conn = c->conn;
    struct gy_slice method = environ_param(conn, f->method, "GET");
    struct gy_slice uri = environ_param(conn, f->uri >= 0 ? f->uri : f->path_info, "/");
    struct gy_slice addr = environ_param(conn, f->addr, "-");
    struct gy_slice proto = environ_param(conn, f->proto, "HTTP/1.1");
    struct log_fields lf = {
        .method = method.ptr,
        .method_len = (int)method.len,
        .uri = uri.ptr,
        .uri_len = (int)(uri.len > 512 ? 512 : uri.len),
        .addr = addr.ptr,
        .addr_len = (int)addr.len,
        .proto = proto.ptr,
        .proto_len = (int)proto.len,
        .params = conn->params,
        .nparams = conn->nparams,
        .status = c->resp.status,
        .rsize = (unsigned long long)c->resp.body_sent,
        .micros = (unsigned long long)((engine_now() - started) * 1e6),
        .pid = (int)S.pid,
        .wid = S.slot->id,
        .core = c->id,
        .req = (unsigned long long)S.requests,
        .headers = c->resp.nheaders,
        .headers_size = c->resp.head_len,
        .switches = (unsigned long long)c->switches,
        .read_errors = conn->body_error,
        .write_errors = o == OUT_CLIENT_GONE,
        .forced = c->log_this,
    };
    struct gy_param logvars[LOGVARS_MAX];
    lf.logvars = logvars;
    lf.nlogvars = gather_logvars(c, logvars, LOGVARS_MAX);
    /* --log-format or uWSGI's default line: one renderer, which escapes the client's text,
     * and the "log only if" options (--disable-logging with --log-5xx ...). */
    logformat_log(&lf);
}

/* The log line's facts, from the params themselves: a static file builds no environ. */
static void facts_of_params(const struct gy_conn *conn, struct req_facts *f)
{
    *f = (struct req_facts){ -1, -1, -1, -1, -1, false, { NULL, 0 } };
    for (uint32_t i = 0; i < conn->nparams; i++) {
        struct gy_slice n = conn->params[i].name;
        if (GY_SLICE_EQ(n, "REQUEST_METHOD"))
            f->method = (int)i;
        else if (GY_SLICE_EQ(n, "REQUEST_URI"))
            f->uri = (int)i;
        else if (GY_SLICE_EQ(n, "PATH_INFO"))
            f->path_info = (int)i;
        else if (GY_SLICE_EQ(n, "REMOTE_ADDR"))
            f->addr = (int)i;
        else if (GY_SLICE_EQ(n, "SERVER_PROTOCOL"))
            f->proto = (int)i;
    }
}

/* --static-map and friends (static.c): a static file is answered here, in C, and the app is
 * not called; the request is counted and logged like any other. 0: not a static file; 1:
 * answered; -1: answered, and the core was killed meanwhile (--harakiri on a slow client): its
 * greenlet must end, as wsgi_serve's callers know. */
static int serve_static(struct gy_core *c)
{
    struct gy_conn *conn = c->conn;
    enum io_result io = IO_OK;
    bool complete = false;
    if (!static_serve(S.cfg, conn, &c->resp, &io, &complete))
        return 0;
    bool killed = io == IO_KILLED;
    PyErr_Clear(); /* the kill's GreenletExit: this greenlet ends below (IO_FAILED is logged) */
    if (killed) {
        log_msg("core %d: static file cancelled%s", c->id, c->harakiri ? " by harakiri" : "");
        conn->nowait = true; /* this greenlet is being killed and may not suspend */
    }
    bool reusable = conn->proto->finish(conn, complete) && !killed;
    PyErr_Clear();
    scoreboard_record_request(S.slot, c->resp.status, c->resp.body_sent,
                              engine_now() - conn->started, killed);
    S.slot->cores[c->id].requests++;
    if (c->harakiri)
        S.slot->harakiri++;
    struct req_facts facts;
    facts_of_params(conn, &facts);
    log_request(c, &facts, conn->started,
                killed        ? OUT_ABANDONED
                : io == IO_OK ? OUT_OK
                              : OUT_CLIENT_GONE);
    c->conn = NULL;
    conn_request_done(conn, reusable);
    return killed ? -1 : 1;
}

/*
 * A request ended by --harakiri, or abandoned by its app. Not inlined: its line buffer would
 * otherwise sit in wsgi_serve's frame, which is on the C stack below the app all the time it
 * runs, and greenlet copies that stack aside at every suspend of every parked request.
 */
__attribute__((noinline)) static void log_abandoned(struct gy_core *c,
                                                    const struct req_facts *facts)
{
    struct gy_slice m = environ_param(c->conn, facts->method, "GET");
    struct gy_slice u = environ_param(c->conn, facts->uri, "/");
    char what[64 + 4 * 256];
    size_t wl = log_escape(what, 64, m.ptr, m.len);
    what[wl++] = ' ';
    wl += log_escape(what + wl, sizeof(what) - wl, u.ptr, u.len > 256 ? 256 : u.len);
    if (c->harakiri)
        log_msg("core %d: %.*s cancelled by harakiri%s", c->id, (int)wl, what,
                c->resp.head_sent ? "" : "; answered 500");
    else
        log_msg("core %d: %.*s abandoned: the app suspended its greenlet and nothing "
                "can resume it%s",
                c->id, (int)wl, what, c->resp.head_sent ? "" : "; answered 500");
}

bool wsgi_serve(struct gy_core *c)
{
    struct gy_conn *conn = c->conn;
    struct gy_response *r = &c->resp;
    r->head_len = 0;
    r->status = 0;
    r->started = r->head_sent = r->has_content_length = r->cut = false;
    r->length = -1;
    r->body_sent = r->body_out = 0;
    r->nheaders = 0;
    S.requests++;
    int served_static = serve_static(c);
    if (served_static)
        return served_static > 0;
    struct req_facts facts;
    enum outcome o;
    PyObject *input = input_new(c);
    PyObject *start_response_obj = input ? start_response_new(input) : NULL;
    PyObject *env = start_response_obj ? environ_build(c, &facts, input) : NULL;
    if (!env) {
        o = app_failed(c, "cannot build the environ");
        facts = (struct req_facts){ -1, -1, -1, -1, -1, false, { NULL, 0 } };
    } else {
        struct gy_slice m = environ_param(conn, facts.method, "GET");
        r->head_only = GY_SLICE_EQ(m, "HEAD");
        bool answered;
        c->environ = env;
        o = wsgi_before_app(c, env, &answered);
        if (o == OUT_OK && !answered) {
            PyObject *args[2] = { env, start_response_obj };
            PyObject *result = PyObject_Vectorcall(W.app, args, 2, NULL);
            if (!result) {
                o = app_failed(c, "the app raised");
            } else {
                o = send_result(c, result);
                o = close_result(c, result, o);
                Py_DECREF(result);
            }
        }
    }

    bool complete = o == OUT_OK && body_matches_length(c);
    if (o == OUT_ABANDONED) {
        PyErr_Clear();
        log_abandoned(c, &facts);
        /* This greenlet is being killed and may not suspend: write what fits, drop the rest. */
        conn->nowait = true;
        answer_500(c);
    } else if (o == OUT_APP_ERROR) {
        PyErr_Clear();
        complete = answer_500(c);
    }
    if (c->request_end) /* e.g. websocket.c's close frame, for a WebSocket the app left open */
        c->request_end(c);
    bool reusable = conn->proto->finish(conn, complete) && o != OUT_ABANDONED;
    PyErr_Clear();
    scoreboard_record_request(S.slot, r->status, r->body_sent, engine_now() - conn->started,
                              o == OUT_APP_ERROR || o == OUT_ABANDONED);
    S.slot->cores[c->id].requests++;
    if (c->harakiri)
        S.slot->harakiri++;
    log_request(c, &facts, conn->started, o);
    wsgi_after_request(c);
    c->environ = NULL;
    Py_XDECREF(env);
    Py_XDECREF(start_response_obj);
    Py_XDECREF(input);
    c->conn = NULL;
    conn_request_done(conn, reusable);
    PyErr_Clear(); /* a kill while conn_request_done drained the body ends only the connection */
    return o != OUT_ABANDONED;
}

void wsgi_set_app(PyObject *app)
{
    Py_XSETREF(W.app, app);
}

int wsgi_init(void)
{
    return filewrapper_init_type() < 0 || environ_init() < 0 || send_init() < 0 ||
                   headers_init(S.cfg) < 0 || wsgi_route_init(S.cfg) < 0
               ? -1
               : 0;
}
