/*
 * WebSockets in a request: the opening handshake (101, Sec-WebSocket-Accept), then RFC 6455
 * messages read and written on the request's connection by the core serving it, as uWSGI's
 * websocket_* API does (core/websockets.c there).
 *
 * After the handshake the connection is the WebSocket's: it is never reused for another request
 * (keep-alive off), the app's return value is not sent (the response is head-only: a 101 has no
 * body), and when the app returns the WebSocket is closed with 1000 unless it already was.
 *
 * Reading. Frames are parsed by proto/websocket.c from a buffer of the WebSocket's own, which
 * starts with the bytes the client sent right after its upgrade request (already in the
 * connection's buffer: the loop read them with the head). A core that needs more bytes waits
 * for its socket to be readable, parked like every gyre wait: a greenlet core suspends on the
 * IOLoop (its socket in gyre's epoll set, plus one timer for the ping deadline), a thread core
 * polls with the GIL released. Nothing polls on a timer: the only timer is the deadline.
 *
 * Liveness, as uWSGI's --websocket-ping-freq / --websocket-pong-tolerance: after ping-freq
 * seconds with nothing from the client a ping goes out; if nothing at all (a pong, a message)
 * comes back within pong-tolerance seconds, the client is gone: the wait ends with an IOError
 * and the connection closes when the app returns. Pings from the client are answered with a
 * pong carrying their payload; a close frame is answered with a close frame (its code echoed)
 * and ends the WebSocket (IOError, as in uWSGI); a protocol error is answered with a close frame
 * with its status code (1002, 1007, 1009) and an IOError.
 *
 * --harakiri: a core parked in websocket_recv is idle, not stuck; cores.c skips it, and the
 * request's harakiri clock restarts whenever websocket_recv or websocket_recv_nb returns
 * (c->harakiri_from): an app polling with recv_nb between its own waits is timed from its
 * last poll.
 *
 * A graceful stop or reload (websocket_server_stopping) closes the WebSockets parked in
 * websocket_recv with 1001 (going away): their clients reconnect to the next worker at once,
 * instead of the stop waiting out its grace for them (uWSGI waits, then kills them).
 *
 * Depends on: wsgi_send.c, cores.c, conn.c, proto_fastcgi.c, response.c, engine.c, server.c,
 *     log.c (server/README)
 */
#include "ws_server.h"

#include "engine.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "websocket.h" /* proto/'s: the framing */
#include "wsgi.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The read buffer's first size; it grows to hold a whole frame (at most --websocket-max-size
 * and a header). An empty buffer is freed while its core is parked: an idle WebSocket holds
 * none (thousands of them may wait in one worker). */
#define WS_BUF_INITIAL 4096
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct gy_websocket {
    struct ws_parser parser;
    uint8_t *buf; /* bytes from the client: [start, end) not parsed yet */
    size_t cap, start, end;
    uint8_t *msg; /* the fragments of the open message, joined */
    size_t msg_len, msg_cap;
    bool closed;          /* a close went out, or the connection failed: no more frames */
    double last_seen;     /* the client last sent bytes (or the handshake) */
    double ping_at;       /* our ping unanswered since then; 0: none outstanding */
    struct gy_core *core; /* parked in wait_greenlet */
    bool waiting;
    struct gy_link parked_link; /* in `parked` while waiting (greenlet cores) */
    /* Kept from one wait to the next while the WebSocket is busy (a message a wait costs no
     * epoll_ctl and no timer): the socket stays in the epoll set until an event finds the core
     * not waiting, and the timer stays armed while the deadline (which only moves later) is
     * not before it. */
    struct engine_timer timer; /* the ping deadline while parked */
    double timer_at;           /* when it fires (loop time) */
    bool polled;               /* the socket was put in gyre's epoll set for it */
    bool drained;              /* the last read found the socket empty after what it got */
};

/* The greenlet cores' WebSockets parked in websocket_recv, for websocket_server_stopping: a
 * doubly linked list, so that a wake (one per message) unlinks in O(1). */
static struct gy_link parked = { &parked, &parked };

static void park(struct gy_websocket *ws)
{
    link_append(&parked, &ws->parked_link);
}

static void unpark(struct gy_websocket *ws)
{
    link_remove(&ws->parked_link);
}

static const char HANDSHAKE_ERR[] = "unable to complete websocket handshake";
static const char RECV_ERR[] = "unable to receive websocket message";

static double ping_freq(void)
{
    return S.cfg->websocket_ping_freq > 0 ? S.cfg->websocket_ping_freq : 30;
}

static double pong_tolerance(void)
{
    return S.cfg->websocket_pong_tolerance > 0 ? S.cfg->websocket_pong_tolerance : 3;
}

/* A request header as a CGI param (HTTP_SEC_WEBSOCKET_KEY ...), or a NULL slice. */
static struct gy_slice request_param(const struct gy_conn *conn, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < conn->nparams; i++)
        if (gy_slice_eq(conn->params[i].name, name, n))
            return conn->params[i].value;
    return (struct gy_slice){ NULL, 0 };
}

/* A value the app gave goes into the head as is: no line breaks may smuggle headers in. */
static bool header_value_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return false;
    return true;
}

static int head_header(struct gy_response *r, const char *name, const char *value, size_t vlen)
{
    if (resp_head_append(r, name, strlen(name)) < 0 || RESP_HEAD_APPEND_LIT(r, ": ") < 0 ||
        resp_head_append(r, value, vlen) < 0 || RESP_HEAD_APPEND_LIT(r, "\r\n") < 0)
        return -1;
    r->nheaders++;
    return 0;
}

/* base64(SHA-1(key GUID)): RFC 6455 4.2.2's Sec-WebSocket-Accept, 28 characters. */
static int accept_value(const char *key, size_t klen, char out[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, key, klen) &&
             EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return 0;
}

static int handshake_error(const char *why)
{
    PyErr_Format(PyExc_OSError, "%s: %s", HANDSHAKE_ERR, why);
    return -1;
}

/* The 101 head, uWSGI's: its status text, Upgrade/Connection, Sec-WebSocket-Origin (the app's
 * origin, else the request's Origin, else "*"), Sec-WebSocket-Protocol (the app's proto, else the
 * request's, if any), Sec-WebSocket-Accept. */
static int build_head(struct gy_core *c, const struct ws_handshake_args *a, struct gy_slice key)
{
    struct gy_response *r = &c->resp;
    const struct gy_conn *conn = c->conn;
    char accept[32];
    if (accept_value(key.ptr, key.len, accept) < 0)
        return handshake_error("SHA-1 failed (libcrypto)");
    struct gy_slice origin = a->origin ? (struct gy_slice){ a->origin, (uint32_t)a->origin_len }
                                       : request_param(conn, "HTTP_ORIGIN");
    if (!origin.len)
        origin = (struct gy_slice){ "*", 1 };
    struct gy_slice proto = a->proto ? (struct gy_slice){ a->proto, (uint32_t)a->proto_len }
                                     : request_param(conn, "HTTP_SEC_WEBSOCKET_PROTOCOL");
    static const char status[] = "101 Web Socket Protocol Handshake";
    const char *prefix = conn->proto->status_prefix;
    r->head_len = 0;
    r->nheaders = 0;
    r->has_content_length = false;
    r->length = -1;
    if (resp_head_append(r, prefix, strlen(prefix)) < 0 ||
        resp_head_append(r, status, sizeof(status) - 1) < 0 ||
        RESP_HEAD_APPEND_LIT(r, "\r\n") < 0 || head_header(r, "Upgrade", "WebSocket", 9) < 0 ||
        head_header(r, "Connection", "Upgrade", 7) < 0 ||
        head_header(r, "Sec-WebSocket-Origin", origin.ptr, origin.len) < 0 ||
        (proto.len && head_header(r, "Sec-WebSocket-Protocol", proto.ptr, proto.len) < 0) ||
        head_header(r, "Sec-WebSocket-Accept", accept, 28) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    r->status = 101;
    r->started = true;
    return 0;
}

int websocket_handshake(struct gy_core *c, const struct ws_handshake_args *a)
{
    struct gy_conn *conn = c->conn;
    if (conn->proto == &proto_fastcgi)
        return handshake_error("a FastCGI request cannot become a WebSocket (nginx cannot "
                               "upgrade a fastcgi_pass connection: use uwsgi_pass, proxy_pass to "
                               "an HTTP socket, or --http-socket)");
    if (c->ws)
        return handshake_error("this request's WebSocket handshake was already made");
    if (c->resp.head_sent)
        return handshake_error("the response's headers were already sent");
    struct gy_slice key = a->key ? (struct gy_slice){ a->key, (uint32_t)a->key_len }
                                 : request_param(conn, "HTTP_SEC_WEBSOCKET_KEY");
    if (!key.len)
        return handshake_error("the request has no Sec-WebSocket-Key header");
    if ((a->origin && !header_value_ok(a->origin, (size_t)a->origin_len)) ||
        (a->proto && !header_value_ok(a->proto, (size_t)a->proto_len)) ||
        !header_value_ok(key.ptr, key.len))
        return handshake_error("a header value holds a line break or a NUL");
    struct gy_websocket *ws = calloc(1, sizeof(*ws));
    if (!ws) {
        PyErr_NoMemory();
        return -1;
    }
    /* The bytes the client sent after its upgrade request (the loop may have read them with the
     * head): the WebSocket's first frames. */
    size_t early = conn->len - conn->raw_pos;
    if (early) {
        ws->cap = early > WS_BUF_INITIAL ? early : WS_BUF_INITIAL;
        ws->buf = malloc(ws->cap);
        if (!ws->buf) {
            free(ws);
            PyErr_NoMemory();
            return -1;
        }
    }
    if (build_head(c, a, key) < 0) {
        free(ws->buf);
        free(ws);
        return -1;
    }
    if (early)
        memcpy(ws->buf, conn->buf + conn->raw_pos, early);
    ws->end = early;
    conn->raw_pos = conn->len; /* taken: the connection carries no other request */
    ws_parser_init(&ws->parser, S.cfg->websocket_max_size);
    ws->last_seen = engine_now();
    c->ws = ws;
    c->request_end = websocket_request_end;
    /* No Connection: close in a 101 (the head says Upgrade): keep-alive goes off after it. */
    enum io_result rc = send_response(c, NULL, 0, -1);
    conn->keep_alive = false;
    c->resp.head_only = true; /* what the app returns is not sent */
    if (rc != IO_OK) {
        ws->closed = true;
        if (!PyErr_Occurred())
            handshake_error("the client went away");
        return -1;
    }
    return 0;
}

/* ---- writing -------------------------------------------------------------------------------- */

/* One frame through the connection's write path (a slow client parks the core). */
static enum io_result send_frame(struct gy_core *c, unsigned opcode, const void *p, size_t n)
{
    uint8_t head[WS_MAX_HEADER];
    size_t hl = ws_frame_header(head, opcode, 1, n);
    struct iovec iov[2] = { { head, hl }, { (void *)p, n } };
    return conn_write_all(c->conn, iov, n ? 2 : 1);
}

/* A close frame with code (0: none) and a reason; the WebSocket takes no more frames. */
static void send_close(struct gy_core *c, unsigned code, const char *reason)
{
    struct gy_websocket *ws = c->ws;
    if (ws->closed)
        return;
    ws->closed = true;
    uint8_t payload[WS_MAX_CONTROL_PAYLOAD];
    size_t n = 0;
    if (code) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        n = 2;
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > sizeof(payload) - 2)
            rl = sizeof(payload) - 2;
        if (rl)
            memcpy(payload + 2, reason, rl);
        n += rl;
    }
    /* A failure ends the connection anyway; a kill's error stays set for the caller. */
    (void)send_frame(c, WS_OP_CLOSE, payload, n);
}

int websocket_send(struct gy_core *c, unsigned opcode, const char *msg, size_t len,
                   const char *what)
{
    struct gy_websocket *ws = c->ws;
    if (!ws || ws->closed) {
        PyErr_Format(PyExc_OSError, "unable to send %s: %s", what,
                     ws ? "the WebSocket is closed" : "no WebSocket handshake in this request");
        return -1;
    }
    enum io_result rc = send_frame(c, opcode, msg, len);
    if (rc == IO_OK)
        return 0;
    ws->closed = true;
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_OSError, "unable to send %s: %s", what,
                     rc == IO_TIMEOUT ? "socket timeout" : "the client went away");
    return -1;
}

/* ---- reading -------------------------------------------------------------------------------- */

static PyObject *recv_error(struct gy_websocket *ws, const char *why)
{
    ws->closed = true;
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_OSError, "%s: %s", RECV_ERR, why);
    return NULL;
}

/* Fragments of a message, joined (the message as a whole is within --websocket-max-size: the
 * parser checked it). */
static int msg_append(struct gy_websocket *ws, const uint8_t *p, size_t n)
{
    if (ws->msg_len + n > ws->msg_cap) {
        size_t cap = ws->msg_cap ? ws->msg_cap : 4096;
        while (cap < ws->msg_len + n)
            cap *= 2;
        uint8_t *m = realloc(ws->msg, cap);
        if (!m) {
            PyErr_NoMemory();
            return -1;
        }
        ws->msg = m;
        ws->msg_cap = cap;
    }
    memcpy(ws->msg + ws->msg_len, p, n);
    ws->msg_len += n;
    return 0;
}

/* A close frame from the client: answered (its code echoed, as RFC 6455 5.5.1 suggests) and the
 * WebSocket ends. */
static PyObject *client_closed(struct gy_core *c, const struct ws_frame *f)
{
    uint16_t code = WS_CLOSE_NO_STATUS;
    const uint8_t *reason;
    size_t rlen;
    ws_close_payload(f->payload, (size_t)f->payload_len, &code, &reason, &rlen);
    send_close(c, code == WS_CLOSE_NO_STATUS ? 0 : code, NULL);
    char why[64];
    snprintf(why, sizeof(why), "the client closed the WebSocket (%u)", (unsigned)code);
    return recv_error(c->ws, why);
}

/*
 * Parse the buffered frames until a message completes. Returns the message, or NULL: with an
 * error set (the WebSocket is closed), or none when more bytes are needed (*need: how many the
 * frame at the buffer's start needs in all).
 */
static PyObject *parse_buffered(struct gy_core *c, size_t *need)
{
    struct gy_websocket *ws = c->ws;
    while (!ws->closed) {
        struct ws_frame f;
        int rc = ws_parse_frame(&ws->parser, ws->buf + ws->start, ws->end - ws->start, &f);
        if (rc == WS_INCOMPLETE) {
            *need = (size_t)f.need;
            return NULL;
        }
        if (rc < 0) {
            uint16_t code = ws_status_close_code(rc);
            log_msg("core %d: websocket: %s: closing it with %u", c->id, ws_strerror(rc),
                    (unsigned)code);
            send_close(c, code, ws_strerror(rc));
            char why[160];
            snprintf(why, sizeof(why), "%s (closed with %u)", ws_strerror(rc), (unsigned)code);
            return recv_error(ws, why);
        }
        ws->start += (size_t)rc;
        switch (f.opcode) {
        case WS_OP_PING:
            if (send_frame(c, WS_OP_PONG, f.payload, (size_t)f.payload_len) != IO_OK)
                return recv_error(ws, "the client went away");
            continue;
        case WS_OP_PONG:
            continue; /* liveness: last_seen moved when its bytes came */
        case WS_OP_CLOSE:
            return client_closed(c, &f);
        default:
            break;
        }
        if (f.fin && f.opcode != WS_OP_CONTINUATION) /* a whole message in one frame */
            return PyBytes_FromStringAndSize((const char *)f.payload, (Py_ssize_t)f.payload_len);
        if (msg_append(ws, f.payload, (size_t)f.payload_len) < 0)
            return recv_error(ws, "out of memory");
        if (!f.fin)
            continue;
        PyObject *m = PyBytes_FromStringAndSize((const char *)ws->msg, (Py_ssize_t)ws->msg_len);
        /* Fragmented messages are rare: their buffer goes with them. */
        free(ws->msg);
        ws->msg = NULL;
        ws->msg_len = ws->msg_cap = 0;
        return m;
    }
    return recv_error(ws, "the WebSocket is closed");
}

/* Room in the buffer for the frame at its start (need bytes in all), and for a read. */
static int make_room(struct gy_websocket *ws, size_t need)
{
    if (ws->start == ws->end)
        ws->start = ws->end = 0;
    if (ws->start && ws->start + need > ws->cap) {
        memmove(ws->buf, ws->buf + ws->start, ws->end - ws->start);
        ws->end -= ws->start;
        ws->start = 0;
    }
    if (need <= ws->cap && ws->end < ws->cap)
        return 0;
    size_t cap = ws->cap ? ws->cap : WS_BUF_INITIAL;
    while (cap < need || cap == ws->end)
        cap *= 2;
    uint8_t *b = realloc(ws->buf, cap);
    if (!b)
        return -1;
    ws->buf = b;
    ws->cap = cap;
    return 0;
}

/* Read what the socket has: 1 some bytes, 0 none yet (EAGAIN), -1 the client is gone. */
static int read_more(struct gy_websocket *ws, int fd)
{
    for (;;) {
        size_t room = ws->cap - ws->end;
        ssize_t n = read(fd, ws->buf + ws->end, room);
        if (n > 0) {
            ws->drained = (size_t)n < room;
            ws->end += (size_t)n;
            ws->last_seen = engine_now();
            ws->ping_at = 0;
            return 1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
}

/* When the wait must end: a ping is due, or a ping went unanswered too long. */
static double next_deadline(const struct gy_websocket *ws)
{
    return ws->ping_at > 0 ? ws->ping_at + pong_tolerance() : ws->last_seen + ping_freq();
}

/* The deadline passed: ping, or give up on a client that answered no ping. 0, or -1 with the
 * error set. */
static int deadline_passed(struct gy_core *c)
{
    struct gy_websocket *ws = c->ws;
    if (ws->ping_at > 0) {
        log_msg("core %d: websocket: no pong (nor anything else) within %g s of a ping: the "
                "client is gone",
                c->id, pong_tolerance());
        char why[64]; /* PyErr_Format has no %g */
        snprintf(why, sizeof(why), "no pong received in %g seconds", pong_tolerance());
        recv_error(ws, why);
        return -1;
    }
    ws->ping_at = engine_now();
    if (send_frame(c, WS_OP_PING, NULL, 0) != IO_OK) {
        recv_error(ws, "the client went away");
        return -1;
    }
    return 0;
}

static void on_ws_readable(void *ctx, int fd, int events)
{
    (void)events;
    struct gy_websocket *ws = ctx;
    if (!ws->waiting) {
        /* Left in the epoll set by the last wait: level-triggered, it would fire on every turn
         * of the loop until the core reads. Out until the next wait. */
        engine_poll(fd, 0, on_ws_readable, ws);
        return;
    }
    ws->waiting = false;
    ws->core->wake = IO_OK;
    core_enter(ws->core); /* ws may be gone when this returns */
}

static void on_ws_deadline(void *ctx)
{
    struct gy_websocket *ws = ctx;
    if (!ws->waiting)
        return; /* the next wait arms it again */
    double deadline = next_deadline(ws), now = engine_now();
    if (deadline - now > 0.001) { /* armed for an earlier deadline: traffic came since */
        ws->timer_at = deadline;
        if (engine_timer_arm(&ws->timer, deadline - now, on_ws_deadline, ws) == 0)
            return;
    }
    ws->waiting = false;
    ws->core->wake = IO_TIMEOUT;
    core_enter(ws->core);
}

/* A greenlet core parks on the loop: its socket readable, or the deadline. The epoll entry and
 * the timer outlive the wait (see struct gy_websocket); websocket_request_end removes them. */
static enum io_result wait_greenlet(struct gy_core *c, double timeout)
{
    struct gy_websocket *ws = c->ws;
    int fd = c->conn->fd;
    ws->core = c;
    /* No system call when the last wait's entry is still there (engine_poll sees it). */
    if (engine_poll(fd, EV_READ, on_ws_readable, ws) < 0)
        return IO_FAILED;
    ws->polled = true;
    double deadline = engine_now() + timeout;
    if (!engine_timer_armed(&ws->timer) || ws->timer_at > deadline) {
        engine_timer_disarm(&ws->timer);
        if (engine_timer_arm(&ws->timer, timeout, on_ws_deadline, ws) < 0)
            return IO_FAILED;
        ws->timer_at = deadline;
    }
    ws->waiting = true;
    park(ws);
    enum io_result rc = (enum io_result)core_suspend(c, WAIT_WEBSOCKET);
    unpark(ws);
    ws->waiting = false;
    return rc;
}

/* A thread core polls with the GIL released (marked parked, so --harakiri leaves it alone), in
 * slices: between them, with the GIL, it looks whether the worker is stopping. */
#define THREAD_WAIT_SLICE_MS 500

static enum io_result wait_thread(struct gy_core *c, double timeout)
{
    struct pollfd p = { .fd = c->conn->fd, .events = POLLIN };
    int left = (int)ceil(timeout * 1000);
    c->wait = WAIT_WEBSOCKET;
    core_set_activity(c, CORE_WAIT_WEBSOCKET);
    int n = 0;
    while (left > 0 && !S.stopping) {
        int ms = left < THREAD_WAIT_SLICE_MS ? left : THREAD_WAIT_SLICE_MS;
        Py_BEGIN_ALLOW_THREADS n = poll(&p, 1, ms);
        Py_END_ALLOW_THREADS if (n != 0) break;
        left -= ms;
    }
    c->wait = WAIT_NONE;
    core_set_activity(c, CORE_RUNNING);
    if (S.stopping)
        return IO_ABORTED;
    if (n < 0 && errno != EINTR)
        return IO_ERROR;
    return n == 0 ? IO_TIMEOUT : IO_OK;
}

void websocket_server_stopping(void)
{
    /* Each woken core runs until it parks again or ends, and may unpark others: take the list
     * from its head each time. */
    while (!link_empty(&parked)) {
        struct gy_websocket *ws = link_entry(parked.next, struct gy_websocket, parked_link);
        link_remove(&ws->parked_link);
        if (!ws->waiting)
            continue;
        ws->waiting = false;
        ws->core->wake = IO_ABORTED;
        core_enter(ws->core);
    }
}

/* The worker is stopping: say so to the client (1001) and to the app. */
static PyObject *going_away(struct gy_core *c)
{
    send_close(c, WS_CLOSE_GOING_AWAY, "the server is stopping");
    return recv_error(c->ws, "the server is stopping (closed with 1001)");
}

PyObject *websocket_recv(struct gy_core *c, bool nonblocking)
{
    struct gy_websocket *ws = c->ws;
    if (!ws)
        return PyErr_Format(PyExc_OSError, "%s: no WebSocket handshake in this request", RECV_ERR);
    if (ws->closed)
        return PyErr_Format(PyExc_OSError, "%s: the WebSocket is closed", RECV_ERR);
    PyObject *m = NULL;
    for (;;) {
        size_t need = 0;
        m = parse_buffered(c, &need);
        if (m || PyErr_Occurred())
            break;
        if (S.stopping) {
            m = going_away(c);
            break;
        }
        if (make_room(ws, need) < 0) {
            m = recv_error(ws, "out of memory");
            break;
        }
        /* The last read emptied the socket: wait rather than try a read that would almost
         * surely find nothing (the wait sees bytes that came meanwhile at once). */
        int got = ws->drained && !nonblocking ? 0 : read_more(ws, c->conn->fd);
        ws->drained = false;
        if (got > 0)
            continue;
        if (got < 0) {
            m = recv_error(ws, "the client went away");
            break;
        }
        double left = next_deadline(ws) - engine_now();
        if (left <= 0) {
            if (deadline_passed(c) < 0)
                break;
            continue;
        }
        if (nonblocking) {
            m = PyBytes_FromStringAndSize(NULL, 0);
            break;
        }
        if (ws->start == ws->end) { /* nothing held: an idle WebSocket holds no buffer */
            free(ws->buf);
            ws->buf = NULL;
            ws->cap = ws->start = ws->end = 0;
        }
        enum io_result rc = c->thread ? wait_thread(c, left) : wait_greenlet(c, left);
        if (rc == IO_ABORTED) {
            m = going_away(c);
            break;
        }
        if (rc == IO_KILLED || rc == IO_FAILED || rc == IO_ERROR) {
            m = recv_error(ws, rc == IO_ERROR ? strerror(errno) : "gyre could not wait (logged)");
            break;
        }
    }
    /* The app is back in its WebSocket loop (recv, or recv_nb between its own waits): what
     * it does from here is what --harakiri times. */
    c->harakiri_from = engine_now();
    return m;
}

void websocket_request_end(struct gy_core *c)
{
    struct gy_websocket *ws = c->ws;
    if (!ws)
        return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (!ws->closed && c->conn && c->conn->fd >= 0)
        send_close(c, WS_CLOSE_NORMAL, NULL);
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
    engine_timer_disarm(&ws->timer);
    if (ws->polled && c->conn && c->conn->fd >= 0)
        engine_poll(c->conn->fd, 0, on_ws_readable, ws); /* before ws goes */
    free(ws->buf);
    free(ws->msg);
    free(ws);
    c->ws = NULL;
    c->request_end = NULL;
}
