/*
 * HTTP/1.1, server side: --http-socket, for development and direct clients.
 *
 * The head is parsed by proto/http.c, which also decides the body's framing and keep-alive;
 * here it becomes CGI params (HTTP_* names made in a scratch buffer, repeated headers joined
 * as CGI says), and the response gets HTTP/1.1 framing: Content-Length when the
 * length is known, chunked when it is not, Date and Server, Connection as needed. Keep-alive
 * and pipelining come from conn.c: the next request starts where this one's body ended.
 *
 * Depends on: conn.c, response.c (server/README)
 */
#include "engine.h"
#include "http.h"
#include "log.h"
#include "proto.h"
#include "server.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* HTTP state of a connection, in its proto_state: what is needed past the head's parse. */
struct http_conn {
    struct http_chunked_decoder dec;
    size_t last_len; /* picohttpparser's hint: buffer length of the last try */
    uint8_t minor_version;
    bool expect_continue;
    bool continue_sent;
    bool response_started; /* head_finish ran: the response's head is going out */
    bool chunked_response;
};

/*
 * A head's parse and its CGI params are built in worker-wide space: the parser's header slots
 * (HTTP_MAX_HEADERS), the GY_MAX_PARAMS params and a scratch buffer for the names and joined
 * values the params point to. A head is parsed and built from start to end in one call, under
 * the GIL (thread cores run gyre's code holding it); the connection then keeps copies of the
 * few dozen params and of the scratch bytes used. Were the slots in every connection, each of
 * thousands of parked requests would keep pages of them resident (12 KiB more than a parked
 * uwsgi request).
 */
static struct http_request parsed;
static struct gy_param built[GY_MAX_PARAMS];
static char *work;
static size_t work_cap;

static inline struct http_conn *http_of(struct gy_conn *c)
{
    return (struct http_conn *)c->proto_state;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Internal Server Error";
    }
}

/* "Date: Wed, 25 Nov 2026 18:35:07 GMT\r\n", made once a second. */
static const char *date_header(size_t *len)
{
    static time_t cached_at;
    static char buf[64];
    static size_t buf_len;
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        buf_len = strftime(buf, sizeof(buf), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        cached_at = now;
    }
    *len = buf_len;
    return buf;
}

/* Answer a request that never reaches the app, then close: the error closes the stream. */
static void http_reject(struct gy_conn *c, int rc, int status)
{
    const char *why = rc ? proto_http_strerror(rc) : "request head does not fit gyre's buffers";
    char resp[512];
    size_t dlen;
    const char *date = date_header(&dlen);
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%.*sServer: gyre\r\n\r\n%s\n",
                     status, reason_phrase(status), strlen(why) + 1, (int)dlen, date, why);
    /* The connection closes next, whether the answer went out or not: nothing to undo. */
    (void)conn_write_now(c, resp, (size_t)n);
    conn_reject(c, why);
}

struct params_builder {
    struct gy_conn *c;
    struct gy_param *p;
    uint32_t n;
    bool overflow;
    size_t used; /* bytes of `work` handed out */
};

static char *scratch_take(struct params_builder *b, size_t n)
{
    if (work_cap - b->used < n)
        return NULL;
    char *p = work + b->used;
    b->used += n;
    return p;
}

static struct gy_slice scratch_copy(struct params_builder *b, const char *p, size_t n)
{
    char *d = scratch_take(b, n);
    if (d)
        memcpy(d, p, n);
    return (struct gy_slice){ d, d ? (uint32_t)n : 0 };
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* PATH_INFO is the path percent-decoded (CGI, PEP 3333); a '%' not followed by two hex digits
 * stays as it is. */
static struct gy_slice decode_path(struct params_builder *b, struct gy_slice path)
{
    char *d = scratch_take(b, path.len);
    if (!d)
        return (struct gy_slice){ NULL, 0 };
    size_t n = 0;
    for (uint32_t i = 0; i < path.len; i++) {
        int hi, lo;
        if (path.ptr[i] == '%' && i + 2 < path.len && (hi = hexval(path.ptr[i + 1])) >= 0 &&
            (lo = hexval(path.ptr[i + 2])) >= 0) {
            d[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[n++] = path.ptr[i];
        }
    }
    return (struct gy_slice){ d, (uint32_t)n };
}

static void add(struct params_builder *b, const char *name, size_t nlen, struct gy_slice value)
{
    if (b->n == GY_MAX_PARAMS || (value.len && !value.ptr)) {
        b->overflow = true;
        return;
    }
    b->p[b->n].name = (struct gy_slice){ name, (uint32_t)nlen };
    b->p[b->n].value = value;
    b->n++;
}
#define ADD(b, lit, value) add((b), (lit), sizeof(lit) - 1, (value))

static struct gy_slice cstr(const char *s)
{
    return (struct gy_slice){ s, (uint32_t)strlen(s) };
}

/* A header, under its CGI name; its repeats are joined to it (", ", or "; " for cookies) in one
 * copy, when the first of its name comes: joining one repeat at a time would copy the value
 * joined so far again for each, and scratch space would grow with the square of the repeats. */
static void add_header(struct params_builder *b, const struct http_request *req,
                       const struct gy_param *h)
{
    char name[256];
    size_t nlen = proto_http_cgi_name(h->name, name, sizeof(name));
    if (nlen == 0)
        return; /* a name with '_' (it would pass for a '-' one), or one too long */
    if (strcmp(name, "HTTP_PROXY") == 0)
        return; /* httpoxy: HTTP_PROXY is the proxy setting of every HTTP client library */
    if (proto_http_is_repeat(req, h))
        return; /* already joined to the first of its name */
    const char *sep = strcmp(name, "HTTP_COOKIE") == 0 ? "; " : ", ";
    size_t room = work_cap - b->used;
    /* joined straight into the free scratch space, which scratch_take() then hands out */
    size_t vlen = proto_http_join_repeats(req, h, sep, 2, work + b->used, room);
    struct gy_slice value = h->value;
    if (vlen != h->value.len) {
        value = (struct gy_slice){ scratch_take(b, vlen), (uint32_t)vlen }; /* NULL if too big */
        if (!value.ptr) {
            b->overflow = true;
            return;
        }
    }
    struct gy_slice n = scratch_copy(b, name, nlen);
    if (!n.ptr) {
        b->overflow = true;
        return;
    }
    add(b, n.ptr, n.len, value);
}

/* SERVER_NAME and SERVER_PORT: from the Host (or absolute target), else the socket's address. */
static void add_server(struct params_builder *b, struct gy_slice host)
{
    struct gy_slice name = host, port = { NULL, 0 };
    if (host.len == 0) {
        name = cstr(b->c->listener->name);
        const char *colon = strrchr(name.ptr, ':');
        if (colon && !strchr(name.ptr, '/')) {
            port = cstr(colon + 1);
            name.len = (uint32_t)(colon - name.ptr);
        } else {
            port = (struct gy_slice){ NULL, 0 };
        }
        if (name.len == 0)
            name = cstr("localhost");
    } else {
        /* host [ ":" port ], where host may be "[v6]" */
        const char *end = host.ptr + host.len;
        const char *p = end;
        while (p > host.ptr && p[-1] >= '0' && p[-1] <= '9')
            p--;
        if (p > host.ptr && p[-1] == ':' && (host.ptr[0] != '[' || p[-2] == ']')) {
            port = (struct gy_slice){ p, (uint32_t)(end - p) };
            name.len = (uint32_t)(p - 1 - host.ptr);
        }
    }
    ADD(b, "SERVER_NAME", name);
    ADD(b, "SERVER_PORT", port.len ? port : cstr("80"));
}

/* What the connection keeps of a built request: its params, and the scratch bytes some of them
 * point to, moved from the worker's space into the connection's own (exactly as many). */
static int keep_params(struct gy_conn *c, const struct params_builder *b)
{
    if (c->scratch_cap < b->used) {
        char *s = realloc(c->scratch, b->used);
        if (!s)
            return -1;
        c->scratch = s;
        c->scratch_cap = b->used;
    }
    struct gy_param *room = conn_param_room(c, b->n);
    if (!room)
        return -1;
    if (b->used)
        memcpy(c->scratch, work, b->used);
    c->scratch_len = b->used;
    for (uint32_t i = 0; i < b->n; i++) {
        room[i] = built[i];
        struct gy_slice *s[2] = { &room[i].name, &room[i].value };
        for (int k = 0; k < 2; k++)
            if (s[k]->ptr && (uintptr_t)s[k]->ptr - (uintptr_t)work < b->used)
                s[k]->ptr = c->scratch + ((uintptr_t)s[k]->ptr - (uintptr_t)work);
    }
    c->params = room;
    c->nparams = b->n;
    return 0;
}

static int build_params(struct gy_conn *c, struct http_request *req)
{
    size_t need = 2 * conn_max_head() + 1024;
    if (work_cap < need) {
        char *s = realloc(work, need);
        if (!s)
            return -1;
        work = s;
        work_cap = need;
    }
    struct params_builder b = { .c = c, .p = built };
    ADD(&b, "REQUEST_METHOD", req->method);
    ADD(&b, "REQUEST_URI", req->target);
    ADD(&b, "PATH_INFO", decode_path(&b, req->path));
    ADD(&b, "QUERY_STRING", req->query);
    ADD(&b, "SERVER_PROTOCOL", cstr(req->minor_version ? "HTTP/1.1" : "HTTP/1.0"));
    ADD(&b, "SCRIPT_NAME", cstr(""));
    ADD(&b, "REMOTE_ADDR", cstr(c->peer[0] ? c->peer : "127.0.0.1"));
    char port[8];
    int pl = snprintf(port, sizeof(port), "%u", (unsigned)c->peer_port);
    ADD(&b, "REMOTE_PORT", scratch_copy(&b, port, (size_t)pl));
    add_server(&b, req->host);
    for (uint32_t i = 0; i < req->nheaders; i++)
        add_header(&b, req, &req->headers[i]);
    if (b.overflow)
        return -1;
    return keep_params(c, &b);
}

static void http_reset(struct gy_conn *c)
{
    struct http_conn *h = http_of(c);
    h->last_len = 0;
    h->minor_version = 1;
    h->expect_continue = false;
    h->continue_sent = false;
    h->response_started = false;
    h->chunked_response = false;
    memset(&h->dec, 0, sizeof(h->dec));
}

static int http_parse_head(struct gy_conn *c)
{
    struct http_conn *h = http_of(c);
    struct http_limits lim = { .max_head = conn_max_head() };
    int rc = proto_http_parse_request(c->buf, c->len, h->last_len, &lim, &parsed);
    if (rc == HTTP_INCOMPLETE) {
        h->last_len = c->len;
        return 0;
    }
    if (rc < 0) {
        http_reject(c, rc, proto_http_error_status(rc));
        return -1;
    }
    if (build_params(c, &parsed) < 0) {
        http_reject(c, 0, 431);
        return -1;
    }
    h->minor_version = parsed.minor_version;
    h->expect_continue = parsed.expect_continue;
    c->keep_alive = parsed.keep_alive;
    c->body_held = parsed.expect_continue;
    if (parsed.body == HTTP_BODY_CHUNKED)
        conn_body_decoded(c, (size_t)rc);
    else
        conn_body_length(c, (size_t)rc,
                         parsed.body == HTTP_BODY_LENGTH ? parsed.content_length : 0);
    return 1;
}

static ptrdiff_t http_decode_body(struct gy_conn *c, char *buf, size_t *len)
{
    return proto_http_decode_chunked(&http_of(c)->dec, buf, len);
}

static enum io_result http_before_body(struct gy_conn *c)
{
    struct http_conn *h = http_of(c);
    if (!h->expect_continue || h->continue_sent)
        return IO_OK;
    /* RFC 9110 15.2: a 1xx comes before the final response, never after its head. Once the
     * head is out, the client sends the body on its own (after its wait for a 100) or not at
     * all: the read waits for it as for any slow body, and the connection stays unusable for
     * another request until the body is in (body_held). */
    if (h->response_started)
        return IO_OK;
    /* The client waits for this before sending the body: only now, when the app reads it. */
    h->continue_sent = true;
    c->body_held = false;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct iovec iov = { (void *)cont, sizeof(cont) - 1 };
    return conn_write_all(c, &iov, 1);
}

static int http_head_finish(struct gy_conn *c, struct gy_response *r, int64_t content_length)
{
    struct http_conn *h = http_of(c);
    h->response_started = true; /* no 100 Continue from now on */
    h->chunked_response = false;
    if (resp_has_body(r) && !r->has_content_length) {
        /* A HEAD response says the length the GET would have; it just sends no body. */
        if (content_length >= 0) {
            if (resp_head_content_length(r, content_length) < 0)
                return -1;
        } else if (r->head_only) {
            /* no length known, no body sent: nothing to frame */
        } else if (h->minor_version >= 1) {
            h->chunked_response = true;
            if (RESP_HEAD_APPEND_LIT(r, "Transfer-Encoding: chunked\r\n") < 0)
                return -1;
        } else {
            c->keep_alive = false; /* HTTP/1.0: the close ends the body */
        }
    }
    /* The head says what conn_request_done will do, as far as it is known now (a body still
     * held back by an Expect: 100-continue, stopping); once "close" is said, it stays so. */
    if (!conn_keep_alive(c))
        c->keep_alive = false;
    size_t dlen;
    const char *date = date_header(&dlen);
    if (resp_head_append(r, date, dlen) < 0 || RESP_HEAD_APPEND_LIT(r, "Server: gyre\r\n") < 0)
        return -1;
    if (!c->keep_alive && RESP_HEAD_APPEND_LIT(r, "Connection: close\r\n") < 0)
        return -1;
    if (c->keep_alive && h->minor_version == 0 &&
        RESP_HEAD_APPEND_LIT(r, "Connection: keep-alive\r\n") < 0)
        return -1;
    return RESP_HEAD_APPEND_LIT(r, "\r\n");
}

static enum io_result http_send(struct gy_conn *c, struct iovec *head, struct iovec *body, int n)
{
    struct http_conn *h = http_of(c);
    struct iovec iov[GY_SEND_MAX_IOV + 3]; /* the head, a chunk's size line and its end */
    int k = 0;
    assert(n <= GY_SEND_MAX_IOV);
    if (head)
        iov[k++] = *head;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += body[i].iov_len;
    char size_line[24];
    if (h->chunked_response && total) {
        int sl = snprintf(size_line, sizeof(size_line), "%zx\r\n", total);
        iov[k++] = (struct iovec){ size_line, (size_t)sl };
    }
    for (int i = 0; i < n; i++)
        iov[k++] = body[i];
    if (h->chunked_response && total)
        iov[k++] = (struct iovec){ (void *)"\r\n", 2 };
    return conn_write_all(c, iov, k);
}

static enum io_result http_send_file(struct gy_conn *c, int fd, off_t offset, uint64_t count,
                                     uint64_t *sent)
{
    /* The length is known, so the head carries Content-Length: no chunk framing here. */
    return conn_sendfile(c, fd, offset, count, sent);
}

/* A cut response gets no last chunk: its absence (and the close) tells the client. */
static bool http_finish(struct gy_conn *c, bool complete)
{
    if (!complete)
        return false;
    if (!http_of(c)->chunked_response)
        return true;
    struct iovec last = { (void *)"0\r\n\r\n", 5 };
    return conn_write_all(c, &last, 1) == IO_OK;
}

const struct gy_protocol proto_http = {
    .name = "http",
    .state_size = sizeof(struct http_conn),
    .wants_peer = true,
    .reset = http_reset,
    .parse_head = http_parse_head,
    .decode_body = http_decode_body,
    .before_body = http_before_body,
    .status_prefix = "HTTP/1.1 ",
    .head_finish = http_head_finish,
    .send = http_send,
    .send_file = http_send_file,
    .finish = http_finish,
};
