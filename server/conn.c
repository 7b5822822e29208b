/*
 * Client connections.
 *
 * The loop side reads and parses the request head in C without holding a core, so a client
 * that trickles or stalls costs a buffer, never a core. Once the head is complete the
 * connection is handed to a core (or queued for one). From then on every read and write is done
 * by the core itself: it tries the syscall, and when the socket would block it registers an
 * IOLoop wait for the fd and suspends its greenlet until the loop switches back.
 *
 * Every wait on a client is bounded by --socket-timeout: waiting connections sit in one list
 * ordered by deadline (all waits have the same length, so appending keeps it sorted) and a
 * sweep once a second drops the expired ones.
 */
#include "engine.h"
#include "log.h"
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Room for the largest vars block plus a first helping of body. */
#define BODY_READAHEAD 16384

static void timeout_arm(struct gy_conn *c)
{
    link_remove(&c->timeout_link);
    c->deadline = engine_now() + S.cfg->socket_timeout;
    link_append(&S.timeouts, &c->timeout_link);
    conn_sweep_start();
}

static void timeout_disarm(struct gy_conn *c)
{
    link_remove(&c->timeout_link);
}

static struct gy_conn *conn_alloc(void)
{
    if (!link_empty(&S.free_conns)) {
        struct gy_link *l = S.free_conns.next;
        link_remove(l);
        return link_entry(l, struct gy_conn, queue_link);
    }
    struct gy_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cap = UWSGI_HEADER_SIZE + S.cfg->buffer_size + BODY_READAHEAD;
    c->buf = malloc(c->cap);
    if (!c->buf) {
        free(c);
        return NULL;
    }
    link_init(&c->timeout_link);
    link_init(&c->queue_link);
    return c;
}

void conn_close(struct gy_conn *c)
{
    engine_forget(c->fd);
    close(c->fd);
    c->fd = -1;
    timeout_disarm(c);
    link_remove(&c->queue_link);
    c->core = NULL;
    link_append(&S.free_conns, &c->queue_link);
    S.nconns--;
    listen_update();
}

/* Drop a connection whose request never reached the app, saying why. */
static void conn_reject(struct gy_conn *c, const char *why)
{
    log_msg("%s: %s after %zu bytes, connection closed", c->listener->name, why, c->len);
    conn_close(c);
}

static void head_complete(struct gy_conn *c, int head_len)
{
    c->head_len = (size_t)head_len;
    c->body_pos = c->head_len;
    c->body_left = (uint64_t)c->req.content_length;
    /* Bytes past the announced body belong to nobody: uwsgi has no pipelining. */
    if (c->len - c->body_pos > c->body_left)
        c->len = c->body_pos + (size_t)c->body_left;
    c->started = engine_now();
    /* The core re-registers the fd if it has to wait; until then no event may wake us. */
    engine_forget(c->fd);
    timeout_disarm(c);
    c->phase = CONN_QUEUED;
    if (!core_start(c))
        link_append(&S.pending, &c->queue_link);
}

static void on_head_readable(void *ctx, int fd, int events);

/* Read and parse until the head is complete, the socket runs dry, or the input is bad. */
static void read_head(struct gy_conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n > 0) {
            c->len += (size_t)n;
            int rc = proto_uwsgi_parse(c->buf, c->len, S.cfg->buffer_size, &c->req);
            if (rc > 0) {
                head_complete(c, rc);
                return;
            }
            if (rc < 0) {
                conn_reject(c, proto_uwsgi_strerror(rc));
                return;
            }
            continue;
        }
        if (n == 0) {
            conn_reject(c, c->len ? "client closed mid-request" : "client closed without a request");
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (engine_watch(c->fd, EV_READ, on_head_readable, c) < 0) {
                PyErr_Print();
                conn_close(c);
                return;
            }
            timeout_arm(c);
            return;
        }
        log_errno("%s: read", c->listener->name);
        conn_close(c);
        return;
    }
}

static void on_head_readable(void *ctx, int fd, int events)
{
    (void)fd;
    (void)events;
    read_head(ctx);
}

void conn_accepted(int fd, struct gy_listener *l)
{
    struct gy_conn *c = conn_alloc();
    if (!c) {
        log_msg("%s: out of memory for a new connection", l->name);
        close(fd);
        return;
    }
    c->fd = fd;
    c->listener = l;
    c->phase = CONN_READING;
    c->core = NULL;
    c->len = c->head_len = c->body_pos = 0;
    c->body_left = 0;
    S.nconns++;
    listen_update();
    /* nginx writes the request right after connecting: it is usually here already. */
    read_head(c);
}

void conn_dispatch_pending(void)
{
    while (!link_empty(&S.pending) && S.busy < S.ncores) {
        struct gy_conn *c = link_entry(S.pending.next, struct gy_conn, queue_link);
        link_remove(&c->queue_link);
        if (!core_start(c)) {
            link_append(&S.pending, &c->queue_link);
            return;
        }
    }
}

/* ---- waits of a core on its client -------------------------------------------------------- */

static void on_core_fd(void *ctx, int fd, int events)
{
    (void)fd;
    (void)events;
    struct gy_conn *c = ctx;
    struct gy_core *core = c->core;
    if (!core || core->wait != WAIT_FD)
        return;
    engine_watch(c->fd, 0, on_core_fd, c);
    core->wake = IO_OK;
    core_enter(core);
}

/* Suspend the core until the client socket is ready for `events` or the timeout passes. */
static enum io_result wait_client(struct gy_conn *c, int events)
{
    if (engine_watch(c->fd, events, on_core_fd, c) < 0)
        return IO_KILLED;
    timeout_arm(c);
    int wake = core_suspend(c->core, WAIT_FD);
    timeout_disarm(c);
    if (wake != IO_OK && c->fd >= 0)
        engine_watch(c->fd, 0, on_core_fd, c);
    return (enum io_result)wake;
}

static enum io_result io_error(void)
{
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
        return IO_CLOSED;
    return IO_ERROR;
}

enum io_result conn_read_some(struct gy_conn *c, char *dst, size_t n, size_t *got)
{
    *got = 0;
    if (n == 0 || c->body_left == 0)
        return IO_OK;
    size_t buffered = c->len - c->body_pos;
    if (buffered) {
        size_t take = buffered < n ? buffered : n;
        memcpy(dst, c->buf + c->body_pos, take);
        c->body_pos += take;
        c->body_left -= take;
        *got = take;
        return IO_OK;
    }
    if (n > c->body_left)
        n = (size_t)c->body_left;
    for (;;) {
        ssize_t r = read(c->fd, dst, n);
        if (r > 0) {
            c->body_left -= (uint64_t)r;
            *got = (size_t)r;
            return IO_OK;
        }
        if (r == 0)
            return IO_CLOSED; /* the body was announced longer than what the client sent */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error();
        enum io_result w = wait_client(c, EV_READ);
        if (w != IO_OK)
            return w;
    }
}

enum io_result conn_write_all(struct gy_conn *c, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        ssize_t n = writev(c->fd, iov, iovcnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return io_error();
            enum io_result w = wait_client(c, EV_WRITE);
            if (w != IO_OK)
                return w;
            continue;
        }
        size_t left = (size_t)n;
        while (iovcnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return IO_OK;
}

enum io_result conn_sendfile(struct gy_conn *c, int fd, off_t offset, uint64_t count,
                             uint64_t *sent)
{
    *sent = 0;
    while (*sent < count) {
        uint64_t chunk = count - *sent;
        if (chunk > (1u << 30))
            chunk = 1u << 30;
        ssize_t n = sendfile(c->fd, fd, &offset, (size_t)chunk);
        if (n > 0) {
            *sent += (uint64_t)n;
            continue;
        }
        if (n == 0)
            return IO_OK; /* the file ended early */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error();
        enum io_result w = wait_client(c, EV_WRITE);
        if (w != IO_OK)
            return w;
    }
    return IO_OK;
}

/* ---- the once-a-second sweep -------------------------------------------------------------- */

static void sweep(void *ctx)
{
    (void)ctx;
    Py_CLEAR(S.sweep_timer);
    double now = engine_now();
    while (!link_empty(&S.timeouts)) {
        struct gy_conn *c = link_entry(S.timeouts.next, struct gy_conn, timeout_link);
        if (c->deadline > now)
            break;
        link_remove(&c->timeout_link);
        if (c->phase == CONN_READING) {
            conn_reject(c, "socket timeout reading the request head");
        } else if (c->core && c->core->wait == WAIT_FD) {
            engine_watch(c->fd, 0, on_core_fd, c);
            c->core->wake = IO_TIMEOUT;
            core_enter(c->core);
        }
    }
    cores_check_abandoned(now);
    if (S.nconns > 0 || S.busy > 0)
        conn_sweep_start();
}

void conn_sweep_start(void)
{
    if (S.sweep_timer)
        return;
    S.sweep_timer = engine_call_later(1.0, sweep, NULL);
    if (!S.sweep_timer)
        PyErr_Print();
}

enum io_result conn_fill(struct gy_conn *c)
{
    if (c->len > c->body_pos || c->body_left == 0)
        return IO_OK;
    /* The buffer is drained: reuse the space after the head (kept for the log line). */
    c->body_pos = c->len = c->head_len;
    size_t room = c->cap - c->len;
    if (room > c->body_left)
        room = (size_t)c->body_left;
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->len, room);
        if (r > 0) {
            c->len += (size_t)r;
            return IO_OK;
        }
        if (r == 0)
            return IO_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error();
        enum io_result w = wait_client(c, EV_READ);
        if (w != IO_OK)
            return w;
    }
}
