/*
 * Client connections.
 *
 * The loop side reads and parses the request head in C without holding a core, so a client
 * that trickles or stalls costs a buffer, never a core. Once the head is complete the
 * connection joins the queue of parsed requests (S.pending) and conn.c reports it to the part
 * that runs requests (struct conn_runner: cores.c), which takes it from there; conn.c never
 * calls up into the cores. From then on every read and write is done by the core itself: it
 * tries the syscall, and when the socket would block it registers an IOLoop wait for the fd
 * and has the runner suspend the core until the loop resumes it. When the response is done, a
 * connection the protocol keeps alive goes back to reading a head, starting with any pipelined
 * bytes already in its buffer.
 *
 * Every wait on a client has a deadline, checked by a sweep once a second:
 *   head    the whole request head must arrive within --socket-timeout of the moment its
 *           first byte is awaited; the deadline is not moved by each read, so a client that
 *           trickles a byte a second is dropped like a silent one (slowloris);
 *   idle    a kept-alive connection waits --keepalive-timeout for its next request;
 *   io      a core's read or write waits --socket-timeout for the socket to move;
 *   linger  a connection closed with its request not read to the end (see conn_linger).
 * Each kind has a list of its own: within a kind every wait has the same length and joins the
 * list when it starts, so each list is ordered by deadline by construction, and the sweep only
 * looks at the heads of the lists. (The cores' own checks, abandoned cores and --harakiri, run
 * on a timer of cores.c.)
 *
 * Depends on: engine.c, log.c, server.c (server/README)
 */
#include "engine.h"
#include "http.h" /* HTTP_DEFAULT_MAX_HEAD: the buffer's size */
#include "log.h"

#include "conn.h"
#include "listen.h"
#include "proto.h"
#include "server.h"
#include "uwsgi.h" /* UWSGI_HEADER_SIZE */

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h> /* IOV_MAX */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Room past the largest head for a first helping of body. */
#define BODY_READAHEAD 16384

size_t conn_max_head(void)
{
    /* --buffer-size bounds uwsgi vars and FastCGI params; an HTTP head, which carries the
     * header names too, gets at least picohttpparser-sized room. */
    size_t b = S.cfg->buffer_size;
    return b > HTTP_DEFAULT_MAX_HEAD ? b : HTTP_DEFAULT_MAX_HEAD;
}

/* Past the response, the rest of a request is read and dropped up to this many bytes, on a
 * kept-alive connection (for the next request) as on a closing one (lingering close). */
#define DRAIN_MAX_BYTES (4u << 20)
/* How long a lingering close may take. Like nginx's lingering_timeout: long enough for a
 * front end to finish sending a body nobody read, short enough to bound what it costs. */
#define LINGER_TIME 5.0
/* --keepalive-timeout not given: idle connections go after this. Longer than nginx's upstream
 * keepalive_timeout (60 s by default), so that of the two ends of an idle upstream connection
 * nginx, which retries a request that fails on a cached connection, is the one that closes
 * it; and nginx's own client keepalive_timeout. */
#define DEFAULT_KEEPALIVE_TIMEOUT 75.0

enum timeout_kind { TIMEOUT_HEAD, TIMEOUT_IDLE, TIMEOUT_IO, TIMEOUT_LINGER, TIMEOUT_KINDS };

static struct gy_link timeout_lists[TIMEOUT_KINDS];
static struct engine_timer sweep_timer; /* the once-a-second sweep of the deadlines */
static void conn_sweep_start(void);
static const struct conn_runner *runner; /* the cores (conn_set_runner) */

static struct gy_link *timeout_list(enum timeout_kind k)
{
    struct gy_link *l = &timeout_lists[k];
    if (!l->next)
        link_init(l);
    return l;
}

static double keepalive_timeout(void)
{
    double t = S.cfg->keepalive_timeout;
    return t >= 0 ? t : DEFAULT_KEEPALIVE_TIMEOUT;
}

/* The one length of every wait of kind k: what keeps each list sorted. */
static double timeout_length(enum timeout_kind k)
{
    switch (k) {
    case TIMEOUT_IDLE:
        return keepalive_timeout();
    case TIMEOUT_LINGER:
        return LINGER_TIME;
    case TIMEOUT_HEAD:
    case TIMEOUT_IO:
    default:
        return S.cfg->socket_timeout;
    }
}

/* Start a wait of kind k, from now. */
static void timeout_arm(struct gy_conn *c, enum timeout_kind k)
{
    link_remove(&c->timeout_link);
    c->timeout_kind = k;
    c->deadline = engine_now() + timeout_length(k);
    link_append(timeout_list(k), &c->timeout_link);
    conn_sweep_start();
}

/* Start a wait of kind k unless the connection is already in one: the head and idle waits
 * span many reads and keep the deadline of their start. */
static void timeout_arm_once(struct gy_conn *c, enum timeout_kind k)
{
    if (!link_empty(&c->timeout_link) && c->timeout_kind == (int)k)
        return;
    timeout_arm(c, k);
}

static void timeout_disarm(struct gy_conn *c)
{
    link_remove(&c->timeout_link);
}

/* Bytes of protocol state every connection has room for: the largest state_size of the
 * protocols met so far. A connection's block is allocated once and reused from S.free_conns,
 * so all of them are the same size; a listener of a protocol with more state (met once, at the
 * first connection it accepts) makes the free ones, too small for it, go. */
static size_t proto_state_cap;

/* A connection's input buffer at its full size: the largest head and a first helping of body. */
static size_t conn_buf_size(void)
{
    return UWSGI_HEADER_SIZE + conn_max_head() + BODY_READAHEAD;
}

/*
 * ... and its first size. A head from nginx or a browser is a few hundred bytes to a kilobyte
 * or two, and a request without a body needs no more: a parked GET then holds a small block
 * that malloc packs with others (about its head's size), not a 32 KiB one whose first page
 * alone is resident. The buffer doubles while a head needs more room, and takes its full size
 * when a body is to be read (buf_grow). A grown buffer stays so for the block's later
 * connections.
 */
#define CONN_BUF_FIRST 1024

size_t conn_alloc_size(void)
{
    return sizeof(struct gy_conn) + proto_state_cap;
}

/*
 * A bigger buffer: `want` bytes, at most the full size. Before a head is complete nothing
 * points into it; after, the request's params do (their slices of the head): they move with the
 * bytes. The protocols keep no other pointer into it past their parse (offsets only). false:
 * it is full-size already, or there is no memory (the caller carries on with the room it has,
 * or refuses the head).
 */
static bool buf_grow(struct gy_conn *c, size_t want)
{
    size_t full = conn_buf_size();
    if (c->cap >= full)
        return false;
    if (want > full)
        want = full;
    char *old = c->buf, *buf = malloc(want);
    if (!buf)
        return false;
    memcpy(buf, old, c->len);
    for (uint32_t i = 0; i < c->nparams; i++) {
        struct gy_slice *s[2] = { &c->params[i].name, &c->params[i].value };
        for (int k = 0; k < 2; k++)
            if ((uintptr_t)s[k]->ptr - (uintptr_t)old < c->len) /* in the old buffer's bytes */
                s[k]->ptr = buf + ((uintptr_t)s[k]->ptr - (uintptr_t)old);
    }
    free(old);
    c->buf = buf;
    c->cap = want;
    return true;
}

struct gy_param *conn_param_room(struct gy_conn *c, uint32_t n)
{
    if (n > c->param_room_cap) {
        struct gy_param *p = realloc(c->param_room, (size_t)n * sizeof(*p));
        if (!p)
            return NULL;
        c->param_room = p;
        c->param_room_cap = n;
    }
    return c->param_room;
}

static void conn_free(struct gy_conn *c)
{
    free(c->param_room);
    free(c->buf);
    free(c->scratch);
    free(c);
}

static struct gy_conn *conn_alloc(const struct gy_protocol *proto)
{
    if (proto->state_size > proto_state_cap) {
        proto_state_cap = proto->state_size;
        while (!link_empty(&S.free_conns)) {
            struct gy_link *l = S.free_conns.next;
            link_remove(l);
            conn_free(link_entry(l, struct gy_conn, queue_link));
        }
    }
    if (!link_empty(&S.free_conns)) {
        struct gy_link *l = S.free_conns.next;
        link_remove(l);
        return link_entry(l, struct gy_conn, queue_link);
    }
    /* Not calloc: glibc's calloc clears a block carved from already-mapped memory with memset,
     * and that would make every page of the protocol's state resident (16 KiB of uwsgi vars
     * slots, most never used) for each of thousands of connections. The protocol state needs no
     * zeroes: a reused block carries a previous connection's state anyway, and each protocol's
     * reset() and parser set what they read (FastCGI's parser is cleared at a connection's first
     * request). Only the connection's own fields start from zero. */
    struct gy_conn *c = malloc(sizeof(*c) + proto_state_cap);
    if (!c)
        return NULL;
    memset(c, 0, sizeof(*c));
    c->cap = CONN_BUF_FIRST < conn_buf_size() ? CONN_BUF_FIRST : conn_buf_size();
    c->buf = malloc(c->cap);
    if (!c->buf) {
        free(c);
        return NULL;
    }
    link_init(&c->timeout_link);
    link_init(&c->queue_link);
    return c;
}

static void out_drop(struct gy_conn *c)
{
    free(c->out);
    c->out = NULL;
    c->out_pos = c->out_len = c->out_cap = 0;
}

static size_t out_held(const struct gy_conn *c)
{
    return c->out_len - c->out_pos;
}

/* Held bytes of a response are dropped. While a core still serves the request its next write
 * fails and the request's log line says so; once the core is done (CONN_FLUSHING) its line is
 * written already, and this is the one that tells. */
static void out_lost(const struct gy_conn *c, const char *why)
{
    if (c->phase == CONN_FLUSHING)
        log_msg("%s: %s: %zu bytes of a response not sent (write-behind), connection closed",
                c->listener->name, why, out_held(c));
}

void conn_close(struct gy_conn *c)
{
    out_drop(c);
    c->out_error = IO_OK;
    engine_unpoll(c->fd);
    close(c->fd);
    c->fd = -1;
    timeout_disarm(c);
    if (c->phase == CONN_QUEUED && !link_empty(&c->queue_link))
        S.npending--;
    link_remove(&c->queue_link);
    c->core = NULL;
    link_append(&S.free_conns, &c->queue_link);
    S.nconns--;
    runner->conn_closed();
}

void conn_reject(struct gy_conn *c, const char *why)
{
    log_msg("%s: %s after %zu bytes, connection closed", c->listener->name, why, c->len);
    conn_close(c);
}

int conn_write_now(struct gy_conn *c, const void *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

/* Per-request state back to "nothing read yet", keeping buffered bytes from pos on. */
static void reset_request(struct gy_conn *c, size_t keep_from)
{
    size_t keep = c->len - keep_from;
    if (keep && keep_from)
        memmove(c->buf, c->buf + keep_from, keep);
    c->len = keep;
    c->head_len = c->body_pos = c->body_end = c->raw_pos = 0;
    c->body_left = 0;
    c->body_done = false;
    c->body_error = false;
    c->body_aborted = false;
    c->decoded = false;
    c->keep_alive = false;
    c->body_held = false;
    c->nowait = false;
    c->params = NULL;
    c->nparams = 0;
    c->phase = CONN_READING;
    c->core = NULL;
    if (c->proto->reset)
        c->proto->reset(c);
}

void conn_body_length(struct gy_conn *c, size_t head_len, int64_t content_length)
{
    size_t avail = c->len - head_len;
    uint64_t cl = content_length > 0 ? (uint64_t)content_length : 0;
    size_t take = avail < cl ? avail : (size_t)cl;
    c->head_len = head_len;
    c->body_pos = head_len;
    c->body_end = head_len + take;
    c->raw_pos = c->body_end; /* what follows the body: a pipelined request */
    c->body_left = cl - take;
    c->body_done = c->body_left == 0;
    c->decoded = false;
}

/* Decode the raw bytes in the buffer onto the end of the ready body bytes. */
static int decode_raw(struct gy_conn *c)
{
    if (c->body_done || c->raw_pos == c->len)
        return 0;
    size_t n = c->len - c->raw_pos;
    ptrdiff_t r = c->proto->decode_body(c, c->buf + c->raw_pos, &n);
    if (c->body_end != c->raw_pos)
        memmove(c->buf + c->body_end, c->buf + c->raw_pos, n);
    c->body_end += n;
    if (r < 0) {
        c->body_error = true; /* every later read fails: the framing cannot be resynchronised */
        c->body_aborted = r == GY_BODY_ABORTED;
        c->raw_pos = c->len;
        return -1;
    }
    if (r > 0) {
        c->raw_pos += (size_t)r; /* the next request starts there */
        c->body_done = true;
    } else {
        c->raw_pos = c->len;
    }
    return 0;
}

void conn_body_decoded(struct gy_conn *c, size_t head_len)
{
    c->head_len = head_len;
    c->body_pos = c->body_end = c->raw_pos = head_len;
    c->body_left = 0;
    c->body_done = false;
    c->decoded = true;
}

void conn_set_runner(const struct conn_runner *r)
{
    runner = r;
}

/* The head is parsed: queue the request for a core. From the loop, the runner is told (and
 * starts a core if one is free); from a core finishing the previous request, the core takes
 * the queue's next request itself, in its own greenlet: only the loop may switch into a core. */
static void queue_request(struct gy_conn *c, bool in_core);
static void read_body_ahead(struct gy_conn *c, bool in_core);

static void head_complete(struct gy_conn *c, bool in_core)
{
    c->started = engine_now();
    if (!c->body_done)
        buf_grow(c, SIZE_MAX); /* room for the body; failing that, it is read in smaller helpings */
    /* Where a waiting core is dear (runner->read_ahead: an OS thread), a body that fits in the
     * buffer is read here, on the loop, before the request takes a core: a client that
     * trickles its body costs a buffer, as one that trickles its head does. Not a body the
     * client holds back until asked (100-continue), nor one framed by records or chunks,
     * which a front end sends at once anyway. */
    if (runner->read_ahead && !c->body_done && !c->decoded && !c->body_held &&
        c->body_left <= c->cap - c->len) {
        read_body_ahead(c, in_core);
        return;
    }
    queue_request(c, in_core);
}

static void on_body_readable(void *ctx, int fd, int events)
{
    (void)fd;
    (void)events;
    read_body_ahead(ctx, false);
}

static void read_body_ahead(struct gy_conn *c, bool in_core)
{
    while (!c->body_done) {
        ssize_t n = read(c->fd, c->buf + c->len, (size_t)c->body_left);
        if (n > 0) {
            c->len += (size_t)n;
            c->body_end = c->raw_pos = c->len;
            c->body_left -= (uint64_t)n;
            c->body_done = c->body_left == 0;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (engine_poll(c->fd, EV_READ, on_body_readable, c) < 0) {
                conn_close(c);
                return;
            }
            /* The whole request within --socket-timeout of its first wait, as for the head. */
            timeout_arm_once(c, TIMEOUT_HEAD);
            return;
        }
        conn_reject(c, n == 0 ? "client closed mid-request" : "read error in the request body");
        return;
    }
    queue_request(c, in_core);
}

/* The request is read as far as it is before a core takes it: queue it. */
static void queue_request(struct gy_conn *c, bool in_core)
{
    /* The core re-registers the fd if it has to wait; until then no event may wake us. */
    engine_unpoll(c->fd);
    timeout_disarm(c);
    c->phase = CONN_QUEUED;
    if (c->decoded && decode_raw(c) < 0) {
        /* The body's framing is broken in what came with the head: the app still runs, and
         * its first read of the body fails. */
    }
    link_append(&S.pending, &c->queue_link);
    S.npending++;
    if (!in_core)
        runner->request_queued();
}

struct gy_conn *conn_pending_pop(void)
{
    if (link_empty(&S.pending))
        return NULL;
    struct gy_conn *c = link_entry(S.pending.next, struct gy_conn, queue_link);
    link_remove(&c->queue_link);
    S.npending--;
    return c;
}

static void on_head_readable(void *ctx, int fd, int events);

/* Parse what is buffered, read more while the socket has it, until the head is complete, the
 * socket runs dry (then wait for it on the loop) or the input is bad. */
static void read_head(struct gy_conn *c, bool in_core)
{
    if (c->len > 0) {
        int rc = c->proto->parse_head(c);
        if (rc != 0) {
            if (rc > 0)
                head_complete(c, in_core);
            return;
        }
    }
    for (;;) {
        if (c->len == c->cap && !buf_grow(c, 2 * c->cap)) {
            conn_reject(c, "request head larger than the buffer");
            return;
        }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n > 0) {
            c->len += (size_t)n;
            int rc = c->proto->parse_head(c);
            if (rc > 0)
                head_complete(c, in_core);
            if (rc != 0)
                return;
            continue;
        }
        if (n == 0) {
            if (c->len == 0 && c->requests > 0)
                conn_close(c); /* a kept-alive connection closed between requests: normal */
            else
                conn_reject(c, c->len ? "client closed mid-request"
                                      : "client closed without a request");
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (engine_poll(c->fd, EV_READ, on_head_readable, c) < 0) {
                conn_close(c);
                return;
            }
            /* The head's deadline starts with its first wait, new connection or pipelined
             * bytes; a kept-alive connection with nothing yet is idle until a byte comes. */
            timeout_arm_once(c, c->len == 0 && c->requests > 0 ? TIMEOUT_IDLE : TIMEOUT_HEAD);
            return;
        }
        if (errno == ECONNRESET && c->len == 0 && c->requests > 0)
            conn_close(c);
        else {
            log_errno("%s: read", c->listener->name);
            conn_close(c);
        }
        return;
    }
}

static void on_head_readable(void *ctx, int fd, int events)
{
    (void)fd;
    (void)events;
    read_head(ctx, false);
}

void conn_accepted(int fd, struct gy_listener *l)
{
    struct gy_conn *c = conn_alloc(l->proto);
    if (!c) {
        log_msg("%s: out of memory for a new connection", l->name);
        close(fd);
        return;
    }
    c->fd = fd;
    c->listener = l;
    c->proto = l->proto;
    c->requests = 0;
    c->peer[0] = '\0';
    c->peer_port = 0;
    if (c->proto->wants_peer) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET) {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof(c->peer));
                c->peer_port = ntohs(a->sin_port);
            } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof(c->peer));
                c->peer_port = ntohs(a->sin6_port);
            }
        }
    }
    reset_request(c, 0);
    c->len = 0;
    S.nconns++;
    /* nginx writes the request right after connecting: it is usually here already. */
    read_head(c, false);
}

/* Read and drop what the app left of the body, so that the next request on a kept-alive
 * connection starts where it should. Up to a bound: past it, closing is cheaper. */
static bool drain_body(struct gy_conn *c)
{
    uint64_t budget = DRAIN_MAX_BYTES;
    for (;;) {
        size_t ready = c->body_end - c->body_pos;
        c->body_pos = c->body_end;
        if (c->body_done)
            return true;
        if (ready > budget)
            return false;
        budget -= ready;
        if (!c->decoded && c->body_left > budget)
            return false;
        /* A kill of the core arriving here (IO_KILLED, its Python error left for the core to
         * clear) only ends the connection. */
        if (conn_fill(c) != IO_OK)
            return false;
    }
}

/*
 * Whether the connection may carry another request: the one place this is decided, for every
 * protocol (nginx's ngx_http_set_keepalive). The protocols report facts: c->keep_alive (the
 * peer asked for it: HTTP's version and Connection, FastCGI's FCGI_KEEP_CONN, never for uwsgi;
 * cleared when a response is framed by the close) and c->body_held (the client waits for a
 * 100 Continue before sending the body). A held body can never be drained: the client may
 * send it later or never, so the next request's first byte is unknown.
 */
bool conn_keep_alive(const struct gy_conn *c)
{
    return c->keep_alive && !S.stopping && (c->body_done || !c->body_held);
}

/* ---- lingering close ----------------------------------------------------------------------
 *
 * A connection closed while the peer still sends the request (a body the app did not read,
 * FastCGI's closing empty STDIN record) makes the peer's next write fail: EPIPE, or a reset
 * that can also destroy the response in flight, and the front end answers 502/503 instead of
 * the app's status. So, like nginx's lingering close, the write side is shut first (the
 * response ends there: EOF for uwsgi and HTTP; FastCGI's END_REQUEST is already out), and the
 * loop reads and drops the rest of the request, as its framing says, before closing: up to
 * DRAIN_MAX_BYTES and LINGER_TIME, and without a core.
 */

/* n bytes of the request arrived at the front of the buffer while lingering: account for
 * them, as the body's framing says, to know when the request has ended. */
static void linger_consume(struct gy_conn *c, size_t n)
{
    if (c->body_error)
        return; /* the framing is lost: drop bytes until the peer closes or time is up */
    if (!c->decoded) {
        c->body_left -= n;
        c->body_done = c->body_left == 0;
        return;
    }
    c->body_pos = c->body_end = c->raw_pos = 0;
    c->len = n;
    decode_raw(c); /* a broken framing sets body_error */
}

static void on_linger_readable(void *ctx, int fd, int events);

static void linger_read(struct gy_conn *c)
{
    for (;;) {
        if (c->body_done || c->linger_left == 0) {
            conn_close(c);
            return;
        }
        size_t room = c->cap;
        if (!c->decoded && !c->body_error && room > c->body_left)
            room = (size_t)c->body_left;
        if (room > c->linger_left)
            room = (size_t)c->linger_left;
        ssize_t n = read(c->fd, c->buf, room);
        if (n > 0) {
            c->linger_left -= (uint64_t)n;
            linger_consume(c, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (engine_poll(c->fd, EV_READ, on_linger_readable, c) < 0)
                conn_close(c);
            return;
        }
        conn_close(c); /* EOF or an error: the peer is done with the connection */
        return;
    }
}

static void on_linger_readable(void *ctx, int fd, int events)
{
    (void)fd;
    (void)events;
    linger_read(ctx);
}

/* The response is out and the connection ends: close it now if the request was read to its
 * end, else linger. */
static void conn_linger(struct gy_conn *c)
{
    if (c->body_done) {
        conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->phase = CONN_LINGERING;
    c->core = NULL;
    c->linger_left = DRAIN_MAX_BYTES;
    timeout_arm(c, TIMEOUT_LINGER);
    linger_read(c);
}

/* The request is over: read the next one, or end the connection. in_core: called by the core
 * that served it (which then takes the next queued request itself), else from the loop. */
static void request_end(struct gy_conn *c, bool keep, bool in_core)
{
    if (!keep) {
        conn_linger(c);
        return;
    }
    reset_request(c, c->raw_pos);
    read_head(c, in_core);
}

void conn_request_done(struct gy_conn *c, bool response_complete)
{
    c->requests++;
    /* A response cut short (an app's body shorter than its Content-Length, a file that shrank,
     * a write that failed) leaves the peer waiting for bytes that will not come: only the close
     * tells it, and a kept connection would have the next response read as this one's body. */
    bool keep = response_complete && c->out_error == IO_OK && conn_keep_alive(c) && drain_body(c);
    if (out_held(c) && c->out_error == IO_OK) {
        /* The loop still sends the end of the response: the core lets go now, and the
         * connection goes on from the loop once the bytes are out (flush_out). */
        c->phase = CONN_FLUSHING;
        c->core = NULL;
        c->done_keep = keep;
        return;
    }
    out_drop(c);
    c->out_error = IO_OK;
    request_end(c, keep, true);
}

/* ---- waits of a core on its client -------------------------------------------------------- */

static enum io_result io_error(void)
{
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
        return IO_CLOSED;
    return IO_ERROR;
}

static void on_core_fd(void *ctx, int fd, int events);

/* Watch the socket for what the core waits for, and for room while the loop holds bytes of the
 * response; the io deadline runs while either is awaited. */
static int core_fd_watch(struct gy_conn *c)
{
    int events = (c->core_waiting ? c->core_events : 0) | (out_held(c) ? EV_WRITE : 0);
    if (c->core_waiting || out_held(c))
        timeout_arm(c, TIMEOUT_IO);
    else
        timeout_disarm(c);
    return engine_poll(c->fd, events, on_core_fd, c);
}

/* Loop side: the core's wait is over; resume it with rc. Nothing of c may be touched after:
 * a greenlet core runs on right here, and may be done with c when it comes back. */
static void core_wake(struct gy_conn *c, enum io_result rc)
{
    c->core_waiting = false;
    core_fd_watch(c);
    runner->resume(c, rc);
}

/* The loop sends what it holds of a response, as far as the socket takes it. On an error the
 * rest is dropped and out_error says why (the core's next write, or on_core_fd, meets it). */
static void flush_out(struct gy_conn *c)
{
    bool moved = false;
    while (out_held(c)) {
        ssize_t n = write(c->fd, c->out + c->out_pos, out_held(c));
        if (n > 0) {
            c->out_pos += (size_t)n;
            moved = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (moved)
                timeout_arm(c, TIMEOUT_IO); /* the deadline is for the socket not moving */
            return;
        }
        c->out_error = n < 0 ? io_error() : IO_CLOSED;
        out_lost(c, n < 0 && errno != EPIPE && errno != ECONNRESET ? strerror(errno)
                                                                   : "the client went away");
        break;
    }
    out_drop(c);
}

static void on_core_fd(void *ctx, int fd, int events)
{
    (void)fd;
    struct gy_conn *c = ctx;
    if (out_held(c) && (events & (EV_WRITE | EV_ERROR)))
        flush_out(c);
    if (c->phase == CONN_FLUSHING) {
        if (out_held(c))
            return;
        /* The core finished long ago: the connection goes on from here. */
        bool keep = c->done_keep && c->out_error == IO_OK;
        c->out_error = IO_OK;
        timeout_disarm(c);
        engine_poll(c->fd, 0, on_core_fd, c);
        request_end(c, keep, false);
        return;
    }
    if (c->core_waiting) {
        bool ready = c->core_events ? (events & (c->core_events | EV_ERROR)) != 0
                                    : !out_held(c) || c->out_error != IO_OK;
        if (ready) {
            core_wake(c, IO_OK);
            return;
        }
    }
    core_fd_watch(c);
}

/* Suspend the core until the client socket is ready for `events` (0: until the loop has sent
 * the bytes it holds) or the timeout passes. */
static enum io_result wait_client(struct gy_conn *c, int events)
{
    if (c->nowait)
        return IO_TIMEOUT;
    c->core_waiting = true;
    c->core_events = events;
    if (core_fd_watch(c) < 0) {
        c->core_waiting = false;
        return IO_FAILED;
    }
    enum io_result wake = runner->suspend(c, events & EV_READ);
    if (c->core_waiting) { /* killed, or resumed by someone else than core_wake */
        c->core_waiting = false;
        if (c->fd >= 0)
            core_fd_watch(c);
    }
    return wake;
}

/* A read or write on the client failed with errno: IO_OK means try it again (interrupted, or
 * the socket became ready while the core waited); anything else ends the transfer. */
static enum io_result retry_or_wait(struct gy_conn *c, int events)
{
    if (errno == EINTR)
        return IO_OK;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        return io_error();
    return wait_client(c, events);
}

/* Read up to n bytes into dst, waiting for the socket as needed; EOF is IO_CLOSED (a body
 * announced longer than what the client sent). */
static enum io_result recv_waiting(struct gy_conn *c, char *dst, size_t n, size_t *got)
{
    for (;;) {
        ssize_t r = read(c->fd, dst, n);
        if (r > 0) {
            *got = (size_t)r;
            return IO_OK;
        }
        if (r == 0)
            return IO_CLOSED;
        enum io_result w = retry_or_wait(c, EV_READ);
        if (w != IO_OK)
            return w;
    }
}

static enum io_result body_start(struct gy_conn *c)
{
    if (c->proto->before_body && !c->body_done)
        return c->proto->before_body(c);
    return IO_OK;
}

/* Why every read of a body whose decoding stopped fails. */
static enum io_result body_failure(const struct gy_conn *c)
{
    return c->body_aborted ? IO_ABORTED : IO_BAD_BODY;
}

enum io_result conn_fill(struct gy_conn *c)
{
    while (c->body_pos == c->body_end && !c->body_done) {
        if (c->body_error)
            return body_failure(c);
        enum io_result rc = body_start(c);
        if (rc != IO_OK)
            return rc;
        /* The ready bytes are drained and nothing raw waits (no pipelined bytes exist before
         * the body is done): reuse the space after the head, kept for the log line. */
        if (c->raw_pos == c->len)
            c->body_pos = c->body_end = c->raw_pos = c->len = c->head_len;
        size_t room = c->cap - c->len;
        if (!c->decoded && room > c->body_left)
            room = (size_t)c->body_left;
        if (room == 0) {
            /* A read of 0 bytes would look like EOF: say what it is. The heads kept in the
             * buffer are smaller than it by BODY_READAHEAD, so this is a bug, not input. */
            log_msg("%s: no buffer room left for the request body", c->listener->name);
            errno = ENOBUFS;
            return IO_ERROR;
        }
        size_t got;
        rc = recv_waiting(c, c->buf + c->len, room, &got);
        if (rc != IO_OK)
            return rc;
        c->len += got;
        if (c->decoded) {
            if (decode_raw(c) < 0)
                return body_failure(c);
        } else {
            c->body_end = c->raw_pos = c->len;
            c->body_left -= got;
            c->body_done = c->body_left == 0;
        }
    }
    return IO_OK;
}

enum io_result conn_read_some(struct gy_conn *c, char *dst, size_t n, size_t *got)
{
    *got = 0;
    if (n == 0)
        return IO_OK;
    if (c->body_pos == c->body_end && !c->body_done && !c->decoded && c->raw_pos == c->len) {
        /* Length framing and nothing buffered: straight from the socket into dst. */
        enum io_result rc = body_start(c);
        if (rc != IO_OK)
            return rc;
        if (n > c->body_left)
            n = (size_t)c->body_left;
        rc = recv_waiting(c, dst, n, got);
        if (rc == IO_OK) {
            c->body_left -= *got;
            c->body_done = c->body_left == 0;
        }
        return rc;
    }
    enum io_result rc = conn_fill(c);
    if (rc != IO_OK)
        return rc;
    size_t ready = c->body_end - c->body_pos;
    size_t take = ready < n ? ready : n;
    memcpy(dst, c->buf + c->body_pos, take);
    c->body_pos += take;
    *got = take;
    return IO_OK;
}

static size_t iov_bytes(const struct iovec *iov, int iovcnt)
{
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return n;
}

/* Write-behind: the loop takes the rest of this write (after what it holds already) if the
 * total stays within runner->write_behind. */
/* Room for `more` bytes after what the loop holds, within runner->write_behind. */
static bool out_reserve(struct gy_conn *c, uint64_t more)
{
    size_t held = out_held(c);
    if (held > runner->write_behind || more > runner->write_behind - held)
        return false;
    if (c->out_len + more <= c->out_cap)
        return true;
    /* Sent bytes go first; then the buffer at least doubles, so that an app writing many small
     * pieces to a slow client costs amortised O(1) a byte, not a copy of all held. */
    if (c->out_pos) {
        memmove(c->out, c->out + c->out_pos, held);
        c->out_pos = 0;
        c->out_len = held;
    }
    if (held + more <= c->out_cap)
        return true;
    size_t cap = c->out_cap ? c->out_cap * 2 : 16384;
    while (cap < held + more)
        cap *= 2;
    char *out = realloc(c->out, cap);
    if (!out)
        return false; /* then the core waits for the socket, as without write-behind */
    c->out = out;
    c->out_cap = cap;
    return true;
}

/* The loop now holds bytes: have it watch for room to send them. */
static void out_watch(struct gy_conn *c)
{
    if (core_fd_watch(c) < 0) {
        c->out_error = IO_FAILED;
        out_drop(c);
    }
}

static bool out_take(struct gy_conn *c, const struct iovec *iov, int iovcnt)
{
    if (!out_reserve(c, iov_bytes(iov, iovcnt)))
        return false;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(c->out + c->out_len, iov[i].iov_base, iov[i].iov_len);
        c->out_len += iov[i].iov_len;
    }
    out_watch(c);
    return true;
}

/* The same for the rest of a file (wsgi.file_wrapper, a static file): read into the held
 * bytes if it fits. *got: the bytes taken, fewer than count if the file ended early. */
static bool out_take_file(struct gy_conn *c, int fd, off_t offset, uint64_t count, uint64_t *got)
{
    *got = 0;
    if (!out_reserve(c, count))
        return false;
    while (*got < count) {
        ssize_t n = pread(fd, c->out + c->out_len, (size_t)(count - *got), offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            c->out_len -= (size_t)*got; /* unread: the core sends it the slow way */
            *got = 0;
            return false;
        }
        if (n == 0)
            break; /* the file ended early, as sendfile would find */
        c->out_len += (size_t)n;
        offset += n;
        *got += (uint64_t)n;
    }
    out_watch(c);
    return true;
}

/* Before the core's own write: what the loop holds goes first. Either the loop takes this
 * write too, or the core waits until the loop has sent what it holds. */
static enum io_result write_after_held(struct gy_conn *c, struct iovec *iov, int iovcnt,
                                       bool *taken)
{
    *taken = false;
    while (out_held(c) && c->out_error == IO_OK) {
        if (iov && out_take(c, iov, iovcnt)) {
            *taken = true;
            break;
        }
        enum io_result w = wait_client(c, 0);
        if (w != IO_OK)
            return w;
    }
    return c->out_error;
}

enum io_result conn_write_all(struct gy_conn *c, struct iovec *iov, int iovcnt)
{
    bool taken;
    enum io_result held = write_after_held(c, iov, iovcnt, &taken);
    if (held != IO_OK || taken)
        return held;
    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        ssize_t n = writev(c->fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
        if (n < 0) {
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && runner->write_behind && !c->nowait &&
                out_take(c, iov, iovcnt))
                return c->out_error;
            enum io_result w = retry_or_wait(c, EV_WRITE);
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
    bool taken;
    enum io_result held = write_after_held(c, NULL, 0, &taken);
    if (held != IO_OK)
        return held;
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
        uint64_t got;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && runner->write_behind && !c->nowait &&
            out_take_file(c, fd, offset, count - *sent, &got)) {
            *sent += got;
            return c->out_error;
        }
        enum io_result w = retry_or_wait(c, EV_WRITE);
        if (w != IO_OK)
            return w;
    }
    return IO_OK;
}

/* ---- the once-a-second sweep -------------------------------------------------------------- */

/* A wait of kind k on c passed its deadline. */
static void timeout_expired(struct gy_conn *c, enum timeout_kind k)
{
    switch (k) {
    case TIMEOUT_HEAD:
        conn_reject(c, "socket timeout reading the request head");
        break;
    case TIMEOUT_IDLE:
    case TIMEOUT_LINGER:
        conn_close(c);
        break;
    case TIMEOUT_IO:
        if (out_held(c)) {
            /* The client took none of the held response for --socket-timeout. */
            c->out_error = IO_TIMEOUT;
            out_lost(c, "socket timeout");
            out_drop(c);
            if (c->phase == CONN_FLUSHING) {
                conn_close(c);
                break;
            }
        }
        if (c->core_waiting)
            core_wake(c, IO_TIMEOUT);
        else
            core_fd_watch(c);
        break;
    default:
        break;
    }
}

static void sweep(void *ctx)
{
    (void)ctx;
    double now = engine_now();
    for (int k = 0; k < TIMEOUT_KINDS; k++) {
        struct gy_link *list = timeout_list(k);
        /* Sorted by deadline: stop at the first one still running. */
        while (!link_empty(list)) {
            struct gy_conn *c = link_entry(list->next, struct gy_conn, timeout_link);
            if (c->deadline > now)
                break;
            link_remove(&c->timeout_link);
            timeout_expired(c, k);
        }
    }
    if (S.nconns > 0)
        conn_sweep_start();
}

void conn_drop_idle(void)
{
    /* Only kept-alive connections between requests: a fresh one with nothing read yet is a
     * request on its way (nginx connects, then writes), and gets the grace. */
    struct gy_link *list = timeout_list(TIMEOUT_IDLE);
    while (!link_empty(list))
        conn_close(link_entry(list->next, struct gy_conn, timeout_link));
}

static void sweep_start_task(void *ctx)
{
    (void)ctx;
    conn_sweep_start();
}

static void conn_sweep_start(void)
{
    static struct engine_task from_thread = { .fn = sweep_start_task };
    if (engine_timer_armed(&sweep_timer))
        return;
    /* A thread core's wait: the loop's timers are the loop's to arm. */
    if (!engine_on_loop_thread())
        engine_post(&from_thread);
    else
        engine_timer_arm(&sweep_timer, 1.0, sweep, NULL);
}
