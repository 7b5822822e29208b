/*
 * Client connections (conn.c): the head read and parsed in C on the loop, the body buffer, the
 * reads and writes a core does for the app, timeouts and keep-alive. Plain C, no Python.
 */
#ifndef GYRE_CONN_H
#define GYRE_CONN_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "list.h"
#include "request.h"

struct gy_core;
struct gy_listener;
struct gy_protocol;

enum conn_phase {
    CONN_READING,   /* reading the request head; no core is held */
    CONN_QUEUED,    /* head parsed, waiting for a free core */
    CONN_IN_CORE,   /* a core runs the app for it */
    CONN_LINGERING, /* answered and closing: reading and dropping the rest of the request */
    CONN_FLUSHING,  /* the core is done; the loop sends the response bytes it holds for it
                       (write-behind), then the connection goes on as the core decided */
};

enum io_result {
    IO_OK = 0,
    IO_CLOSED = -1,   /* the client went away (EOF, reset, broken pipe) */
    IO_TIMEOUT = -2,  /* --socket-timeout passed with nothing moving */
    IO_ERROR = -3,    /* any other error; errno says which */
    IO_KILLED = -4,   /* the core was killed while it waited (a Python error is set) */
    IO_BAD_BODY = -5, /* the body's framing (chunked, FastCGI records) is broken */
    IO_ABORTED = -6,  /* the client called the request off (FastCGI's ABORT_REQUEST) */
    IO_FAILED = -7,   /* gyre could not go on: out of memory, or the socket could not be
                          watched (epoll_ctl); logged where it happened. Not the app's fault. */
};

struct gy_conn {
    int fd;
    enum conn_phase phase;
    struct gy_listener *listener;
    const struct gy_protocol *proto;
    struct gy_core *core; /* while CONN_IN_CORE */

    /*
     * Input buffer:  [0, head_len)          the head (kept for the log line)
     *                [body_pos, body_end)   body bytes ready for the app
     *                [raw_pos, len)         bytes not parsed yet: body to decode, or the next
     *                                       request once the body is done
     */
    char *buf;
    size_t cap, len;
    size_t head_len;
    size_t body_pos, body_end, raw_pos;
    uint64_t body_left; /* length framing: body bytes not yet in the buffer or read */
    bool body_done;     /* every body byte is in [body_pos, body_end) or was read */
    bool decoded;       /* framed by proto->decode_body, not by a length */
    bool body_error;    /* the framing broke: every read of the body fails */
    bool body_aborted;  /* ... because the client called the request off */
    bool keep_alive;    /* the peer asked for another request on this connection and
                                       the response's framing does not end with the close (a fact
                                       the protocols report; conn_keep_alive decides) */
    bool body_held;     /* the client holds the body back until asked (HTTP's
                                       Expect: 100-continue) and was not asked yet */
    bool nowait;        /* writes must not suspend the core (it is being killed) */
    bool core_waiting;  /* its core is suspended in runner->suspend, on the socket */
    int core_events;    /* ... for these events (0: for the write-behind bytes to be sent) */

    /* Write-behind (runner->write_behind > 0, thread cores): response bytes the socket did not
     * take, held here and sent by the loop, so that the core's thread moves on instead of
     * waiting for a slow client. [out_pos, out_len) is still to send. */
    char *out;
    size_t out_pos, out_len, out_cap;
    enum io_result out_error; /* the loop's send failed: the core's next write reports it */
    bool done_keep;           /* CONN_FLUSHING: then read the next request (or linger) */

    /* The request, as CGI params: slices into buf (or into protocol state). */
    struct gy_param *params;
    uint32_t nparams;
    /* Room for params a protocol parsed into a scratch array of its own and copies here
     * (conn_param_room): as many slots as the largest request this block has carried, kept
     * across the block's reuse. A parked request so holds its few dozen params, not the
     * parser's GY_MAX_PARAMS slots. */
    struct gy_param *param_room;
    uint32_t param_room_cap;

    char *scratch; /* protocol's own bytes: FastCGI PARAMS, HTTP CGI names */
    size_t scratch_cap, scratch_len;
    char peer[64]; /* REMOTE_ADDR of a TCP client, for HTTP */
    uint16_t peer_port;
    uint64_t requests; /* served on this connection */

    /* The wait the connection is in (head, idle, core I/O, lingering close): its deadline,
     * and which of conn.c's timeout lists holds it. */
    double deadline;
    int timeout_kind;
    struct gy_link timeout_link; /* in a timeout list while waiting on the client */
    uint64_t linger_left;        /* CONN_LINGERING: bytes it may still drop before closing */
    struct gy_link queue_link;   /* in S.pending while CONN_QUEUED; in S.free_conns when free */

    double started; /* when the head was complete */

    /* The protocol's own state (struct fcgi_conn, struct http_conn, ...: private to its
     * proto_*.c, proto->state_size bytes), allocated in the same block as the connection. */
    alignas(max_align_t) unsigned char proto_state[];
};

/*
 * The body as the app reads it (input.c): the window [body_pos, body_end) of the buffer is
 * moved by conn.c alone; a reader looks at it and says how much it took.
 */
/* The body bytes buffered and ready (conn_fill makes some ready): *len of them, at the result. */
static inline const char *conn_body_peek(const struct gy_conn *c, size_t *len)
{
    *len = c->body_end - c->body_pos;
    return c->buf + c->body_pos;
}
/* The reader took n of the peeked bytes. */
static inline void conn_body_consume(struct gy_conn *c, size_t n)
{
    c->body_pos += n;
}
/* Body bytes still to be read, buffered or not; UINT64_MAX when the framing (chunked,
 * FastCGI records) says when the body ends, not a length. */
static inline uint64_t conn_body_remaining(const struct gy_conn *c)
{
    return c->decoded ? UINT64_MAX : (uint64_t)(c->body_end - c->body_pos) + c->body_left;
}

void conn_accepted(int fd, struct gy_listener *l);
void conn_close(struct gy_conn *c);
/* The app is done with the request: keep the connection for the next one, or close it.
 * response_complete: the response went out whole, ended as its protocol ends one. */
void conn_request_done(struct gy_conn *c, bool response_complete);
/* The one keep-alive decision for every protocol: may the connection carry another request,
 * as things stand (the HTTP head announces it; conn_request_done applies it). */
bool conn_keep_alive(const struct gy_conn *c);
/* Log why a connection's request never reached the app, then close it. */
void conn_reject(struct gy_conn *c, const char *why);
/* Head parsed: set up the body for length framing (content_length bytes follow head_len). */
void conn_body_length(struct gy_conn *c, size_t head_len, int64_t content_length);
/* c->param_room with room for n params (grown if need be), or NULL: out of memory. */
struct gy_param *conn_param_room(struct gy_conn *c, uint32_t n);
/* Head parsed: the body follows head_len, framed as proto->decode_body says. */
void conn_body_decoded(struct gy_conn *c, size_t head_len);
/* Write from the loop, where nothing may wait: all of it, or -1 (the peer is not reading). */
int conn_write_now(struct gy_conn *c, const void *p, size_t n);
/* Up to n body bytes, from the buffer if it holds any, else straight from the socket; *got == 0
 * means the body is complete. */
enum io_result conn_read_some(struct gy_conn *c, char *dst, size_t n, size_t *got);
/* Make the buffer hold body bytes (buf[body_pos..len)) unless the body is complete. */
enum io_result conn_fill(struct gy_conn *c);
enum io_result conn_write_all(struct gy_conn *c, struct iovec *iov, int iovcnt);
size_t conn_max_head(void); /* the largest request head a buffer must hold */
/* Bytes allocated for one connection, its buffer aside (struct, protocol state): for --stats. */
size_t conn_alloc_size(void);
enum io_result conn_sendfile(struct gy_conn *c, int fd, off_t offset, uint64_t count,
                             uint64_t *sent);
/* Stopping: close the kept-alive connections that wait for their next request. */
void conn_drop_idle(void);
/* The oldest parsed request waiting for a core, taken off the queue; NULL if none. */
struct gy_conn *conn_pending_pop(void);

/*
 * What conn.c needs from the part that runs the requests, which registers it (cores.c, at
 * start-up): conn.c never calls up into the cores, it reports. A parsed request joins the
 * queue (S.pending) and whoever runs requests takes it from there.
 */
struct conn_runner {
    /* From the loop: a parsed request joined S.pending. (From a core, finishing a request,
     * nothing is reported: the core takes the queue's next request itself.) */
    void (*request_queued)(void);
    /* A connection closed: S.nconns dropped. */
    void (*conn_closed)(void);
    /* Core side: suspend the core serving c until the loop resumes it (the socket is ready
     * for reading or writing, or the wait timed out). Returns why the wait ended: IO_OK,
     * IO_TIMEOUT, or IO_KILLED (the core was killed; a Python error is set). */
    enum io_result (*suspend)(struct gy_conn *c, bool reading);
    /* Loop side: resume the core serving c, suspended in suspend, which returns rc. */
    void (*resume)(struct gy_conn *c, enum io_result rc);
    /* Bytes of a response the loop may hold and send for a core whose write would block (0:
     * the core waits for the socket instead). Worth it where a waiting core is dear: an OS
     * thread, not a greenlet. */
    size_t write_behind;
    /* Read a request's body on the loop before it is queued, when the body fits in the
     * buffer: a core never waits for a slow client's body bytes it could have had. */
    bool read_ahead;
};
void conn_set_runner(const struct conn_runner *r);

#endif
