/*
 * What runs between a request's environ and the app: --limit-post (413), the routing rules
 * (route.c: answer, rewrite the environ, edit the response headers) and --post-buffering (the
 * body spooled to a file before the app runs).
 *
 * Depends on: input.c, log.c, route.c, server.c, wsgi_headers.c, wsgi_send.c (server/README)
 */
#include "log.h"
#include "proto.h"
#include "route.h"
#include "server.h"
#include "wsgi.h"

#include <string.h>

static struct route_table *routes;

int wsgi_route_init(const struct gy_config *cfg)
{
    /* main.c checked the rules (and warned of the actions gyre lacks) once, at start. */
    char err[320];
    if (!route_table_from_config(cfg, &routes, err, sizeof(err))) {
        log_msg("%s", err);
        return -1;
    }
    return 0;
}

/* route.c reads the request's vars through this: the params as the protocol parsed them. */
static const char *param_get(void *ctx, const char *name, size_t nlen, size_t *vlen)
{
    const struct gy_conn *conn = ctx;
    for (uint32_t i = 0; i < conn->nparams; i++) {
        const struct gy_param *p = &conn->params[i];
        if (p->name.len == nlen && memcmp(p->name.ptr, name, nlen) == 0) {
            *vlen = p->value.len;
            return p->value.ptr;
        }
    }
    *vlen = 0;
    return NULL;
}

/* A response of gyre's own (redirect, return, break:CODE, 413): the status line, the
 * headers, a short text body. */
static enum outcome answer(struct gy_core *c, const char *status_line, const char *location,
                           const char *body)
{
    struct gy_response *r = &c->resp;
    size_t blen = body ? strlen(body) : 0;
    if (head_start(c, status_line, strlen(status_line)) < 0)
        return app_failed(c, "cannot build the response");
    if (location &&
        (HEAD_APPEND_LIT(r, "Location: ") < 0 || head_append(r, location, strlen(location)) < 0 ||
         HEAD_APPEND_LIT(r, "\r\n") < 0))
        return app_failed(c, "cannot build the response");
    if (body && HEAD_APPEND_LIT(r, "Content-Type: text/plain\r\n") < 0)
        return app_failed(c, "cannot build the response");
    if (head_add_extra(c) < 0)
        return app_failed(c, "cannot build the response");
    r->status = (status_line[0] - '0') * 100 + (status_line[1] - '0') * 10 + (status_line[2] - '0');
    r->started = true;
    r->nheaders += (location != NULL) + (body != NULL);
    enum io_result rc = send_response(c, body, blen, (int64_t)blen);
    return rc == IO_OK ? OUT_OK : OUT_CLIENT_GONE;
}

/* 413: the body is not read, and may be large: the connection closes after the answer
 * rather than reading it all to reach the next request. */
static enum outcome answer_too_large(struct gy_core *c)
{
    c->conn->keep_alive = false;
    return answer(c, "413 Request Entity Too Large", NULL, "Request Entity Too Large");
}

/* Header and CGI values must not carry a line break: a rule's $1 comes from the client. */
static bool has_line_break(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

static enum outcome apply_routes(struct gy_core *c, PyObject *env, bool *answered)
{
    struct route_outcome *out = c->route;
    struct route_vars vars = { param_get, c->conn };
    if (!route_eval(routes, &vars, out)) {
        PyErr_NoMemory();
        return app_failed(c, "routing the request");
    }
    for (int i = 0; i < out->nlogs; i++)
        log_msg("%s", out->logs[i]);
    for (int i = 0; i < out->nvars; i++) {
        PyObject *v = PyUnicode_DecodeLatin1(out->vars[i].value, strlen(out->vars[i].value), NULL);
        int rc = v ? PyDict_SetItemString(env, out->vars[i].name, v) : -1;
        Py_XDECREF(v);
        if (rc < 0)
            return app_failed(c, "routing the request");
    }
    if (has_line_break(out->location)) {
        log_msg("core %d: a redirect's Location would hold a line break: answered 400", c->id);
        *answered = true;
        return answer(c, "400 Bad Request", NULL, "Bad Request");
    }
    if (out->status) {
        *answered = true;
        if (out->close) /* break:CODE answers, then closes the connection, as uWSGI does */
            c->conn->keep_alive = false;
        return answer(c, out->status_line, out->location, out->body);
    }
    if (out->close) {
        /* uWSGI's bare break: the request is closed without a response. */
        *answered = true;
        return OUT_CLIENT_GONE;
    }
    return OUT_OK;
}

/* The body's length: from its framing, else (FastCGI records, whose end says when the body
 * ends) the CONTENT_LENGTH the front end announced; UINT64_MAX when unknown (chunked). */
static uint64_t body_length(const struct gy_conn *conn)
{
    uint64_t length = conn_body_remaining(conn);
    if (length != UINT64_MAX)
        return length;
    size_t vlen;
    const char *v = param_get((void *)conn, "CONTENT_LENGTH", 14, &vlen);
    int64_t n;
    if (v && vlen && gy_parse_decimal(v, vlen, &n) == 0 && n >= 0)
        return (uint64_t)n;
    return UINT64_MAX;
}

enum outcome wsgi_before_app(struct gy_core *c, PyObject *env, bool *answered)
{
    const struct gy_config *cfg = S.cfg;
    *answered = false;
    uint64_t length = body_length(c->conn);
    if (cfg->limit_post && length != UINT64_MAX && length > cfg->limit_post) {
        log_msg("core %d: request body of %llu bytes is over --limit-post %llu: answered 413",
                c->id, (unsigned long long)length, cfg->limit_post);
        *answered = true;
        return answer_too_large(c);
    }
    if (routes) {
        if (!c->route && !(c->route = calloc(1, sizeof(*c->route)))) {
            PyErr_NoMemory();
            return app_failed(c, "routing the request");
        }
        enum outcome o = apply_routes(c, env, answered);
        if (o != OUT_OK || *answered)
            return o;
    }
    if (cfg->post_buffering && (length == UINT64_MAX || length > cfg->post_buffering)) {
        int rc = input_spool(c, env, cfg->limit_post, cfg->post_buffering_bufsize);
        if (rc == INPUT_SPOOL_TOO_LARGE) {
            log_msg("core %d: request body is over --limit-post %llu: answered 413", c->id,
                    cfg->limit_post);
            *answered = true;
            return answer_too_large(c);
        }
        if (rc < 0)
            return app_failed(c, "spooling the request body (--post-buffering)");
    }
    return OUT_OK;
}

void wsgi_after_request(struct gy_core *c)
{
    if (c->route)
        route_outcome_clear(c->route);
    input_spool_close(c);
}

bool route_says_donotlog(const struct gy_core *c)
{
    return c->route && c->route->donotlog;
}
