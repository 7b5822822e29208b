/*
 * The server's moving parts: listening sockets, client connections and greenlet cores.
 *
 *   main.c      options, log destination, pid file; then master_run or worker_run
 *   master.c    the master: binds, forks and manages workers (no Python in it)
 *   worker.c    a worker: Python, the IOLoop, the app, signals, heartbeat
 *   engine.c    the Tornado loop engine: every wait is an IOLoop callback
 *   listen.c    bind (or inherit from systemd), accept while a core or queue slot is free
 *   conn.c      a client connection: read and parse the request head in C (no core held),
 *               then queue it for a core; reads and writes for the app, with timeouts;
 *               keep-alive
 *   proto_*.c   what differs between uwsgi, FastCGI and HTTP: the head, the body's framing,
 *               the response's framing (struct gy_protocol)
 *   cores.c     greenlet cores: run a request, suspend on a wait, resume; abandoned cores;
 *               harakiri
 *   wsgi.c      PEP 3333: environ, start_response, the response, the request log line
 *   input.c     wsgi.input
 *   pymodule.c  the `gyre` Python module (wait, sleep)
 *   scoreboard.c, stats.c   shared counters; --stats and --metrics-http
 *   options.c, ini.c, logformat.c, log.c   configuration and logging
 */
#ifndef GYRE_SERVER_H
#define GYRE_SERVER_H

#include <Python.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config.h"
#include "fastcgi.h"
#include "scoreboard.h"
#include "http.h"
#include "uwsgi.h"

struct gy_core;
struct gy_conn;

/*
 * One wire protocol, seen from the server. The request model is shared: every protocol turns
 * its head into CGI params (conn->params) and a body framing; the WSGI layer, the cores and the
 * connection handling are the same for all.
 */
struct gy_protocol {
    const char *name;
    /* A new connection, or the next request on one: forget the last request's state. */
    void (*reset)(struct gy_conn *c);
    /* Loop side: c->buf[0..len) grew. 1: the head is complete (params, body framing set);
     * 0: need more bytes; -1: the connection was answered and/or closed. */
    int (*parse_head)(struct gy_conn *c);
    /* Body framing other than a plain length: decode buf[0..*len) in place, the data moved to
     * the front and *len set to its size; > 0 when the body ended (bytes of buf it used), 0
     * when every byte was consumed, < 0 on bad input. NULL for length-framed bodies. */
    ptrdiff_t (*decode_body)(struct gy_conn *c, char *buf, size_t *len);
    /* Core side, before the app first reads the body (HTTP's 100 Continue). May be NULL. */
    enum io_result (*before_body)(struct gy_conn *c);
    /* Response: the head starts with this, then the status ("200 OK"). */
    const char *status_prefix;
    /* Append the framing headers and the blank line to the head. content_length < 0: unknown. */
    int (*head_finish)(struct gy_core *core, int64_t content_length);
    /* Write the head (when not NULL: the first time) and then body[0..n), framed. */
    enum io_result (*send)(struct gy_core *core, struct iovec *head, struct iovec *body, int n);
    /* Write count bytes of fd from offset as response body, framed. */
    enum io_result (*send_file)(struct gy_core *core, int fd, off_t offset, uint64_t count,
                                uint64_t *sent);
    /* Between the items of a streamed response: has the client called the request off
     * (FastCGI's ABORT_REQUEST)? May be NULL. */
    bool (*poll_abort)(struct gy_conn *c);
    /* After the response (complete or not): the protocol's end of request. True when the
     * exchange ended cleanly on the wire, so the connection may carry another request. */
    bool (*finish)(struct gy_core *core, bool complete);
};

extern const struct gy_protocol proto_uwsgi, proto_fastcgi, proto_http;

/* An intrusive doubly linked list, as in nginx's ngx_queue_t. */
struct gy_link {
    struct gy_link *prev, *next;
};

struct gy_listener {
    int fd;
    const struct gy_protocol *proto;
    bool watched;
    bool unlink_on_exit;       /* a unix socket file this process created */
    bool inherited;            /* from systemd (socket activation) */
    char name[112];            /* for log lines: the address as given, or the path */
};

enum conn_phase {
    CONN_READING,  /* reading the request head; no core is held */
    CONN_QUEUED,   /* head parsed, waiting for a free core */
    CONN_IN_CORE,  /* a core runs the app for it */
    CONN_LINGERING,/* answered and closing: reading and dropping the rest of the request */
};

enum io_result {
    IO_OK = 0,
    IO_CLOSED = -1,    /* the client went away (EOF, reset, broken pipe) */
    IO_TIMEOUT = -2,   /* --socket-timeout passed with nothing moving */
    IO_ERROR = -3,     /* any other error; errno says which */
    IO_KILLED = -4,    /* the core was killed while it waited (a Python error is set) */
    IO_BAD_BODY = -5,  /* the body's framing (chunked, FastCGI records) is broken */
};

/* FastCGI state of a connection (one request at a time: FCGI_MPXS_CONNS=0). */
struct fcgi_conn {
    struct fcgi_parser parser;      /* per connection: records run across requests */
    uint16_t request_id;            /* the request being served, 0 between requests */
    uint8_t flags;                  /* its BEGIN_REQUEST flags (FCGI_KEEP_CONN) */
    bool aborted;                   /* ABORT_REQUEST seen */
    bool params_done;
    size_t plen;                    /* PARAMS bytes gathered in conn->scratch */
    struct fcgi_params params;
};

/* HTTP state of a connection. */
struct http_conn {
    struct http_request req;
    struct http_chunked_decoder dec;
    size_t last_len;                /* picohttpparser's hint: buffer length of the last try */
    bool continue_sent;
    bool chunked_response;
    struct gy_param params[GY_MAX_PARAMS];
};

struct gy_conn {
    int fd;
    enum conn_phase phase;
    struct gy_listener *listener;
    const struct gy_protocol *proto;
    struct gy_core *core;           /* while CONN_IN_CORE */

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
    uint64_t body_left;             /* length framing: body bytes not yet in the buffer or read */
    bool body_done;                 /* every body byte is in [body_pos, body_end) or was read */
    bool decoded;                   /* framed by proto->decode_body, not by a length */
    bool body_error;                /* the framing broke: every read of the body fails */
    bool keep_alive;                /* the peer asked for another request on this connection and
                                       the response's framing does not end with the close (a fact
                                       the protocols report; conn_keep_alive decides) */
    bool body_held;                 /* the client holds the body back until asked (HTTP's
                                       Expect: 100-continue) and was not asked yet */
    bool nowait;                    /* writes must not suspend the core (it is being killed) */

    /* The request, as CGI params: slices into buf (or into protocol state). */
    struct gy_param *params;
    uint32_t nparams;
    int64_t content_length;         /* the CONTENT_LENGTH param; -1 for a chunked body */

    union {
        struct uwsgi_request uwsgi;
        struct fcgi_conn fcgi;
        struct http_conn http;
    } u;
    char *scratch;                  /* protocol's own bytes: FastCGI PARAMS, HTTP CGI names */
    size_t scratch_cap, scratch_len;
    char peer[64];                  /* REMOTE_ADDR of a TCP client, for HTTP */
    uint16_t peer_port;
    uint64_t requests;              /* served on this connection */

    /* The wait the connection is in (head, idle, core I/O, lingering close): its deadline,
     * and which of conn.c's timeout lists holds it. */
    double deadline;
    int timeout_kind;
    struct gy_link timeout_link;    /* in a timeout list while waiting on the client */
    uint64_t linger_left;           /* CONN_LINGERING: bytes it may still drop before closing */
    struct gy_link queue_link;      /* in S.pending while CONN_QUEUED; in S.free_conns when free */

    double started;                 /* when the head was complete */
};

enum core_wait {
    WAIT_NONE,       /* running, or suspended by the app itself */
    WAIT_FD,         /* gyre waits for its client socket */
    WAIT_TIMER,      /* gyre.sleep() */
    WAIT_FUTURE,     /* gyre.wait() */
};

struct gy_response {
    char *head;                     /* status line + headers, serialised by start_response */
    size_t head_len, head_cap;
    int status;
    bool started;                   /* start_response called */
    bool head_sent;
    bool has_content_length;
    bool head_only;                 /* HEAD request: no body bytes on the wire */
    int64_t length;                 /* the head's Content-Length (the app's or gyre's); -1: none */
    uint64_t body_sent;             /* body bytes the app produced (also for HEAD) */
    uint64_t body_out;              /* body bytes handed to the wire: never more than length */
    uint32_t nheaders;
};

struct gy_core {
    int id;
    bool busy;
    PyObject *gr;                   /* the core's greenlet, or NULL before its first request */
    bool gr_owned;                  /* gyre holds a reference to gr (not while the app holds it) */
    struct gy_conn *conn;
    uint64_t gen;                   /* request count: stale resumers and inputs check it */

    enum core_wait wait;
    int wake;                       /* why a gyre wait ended: enum io_result */
    bool app_suspended;             /* the app switched to the loop on its own */
    double suspended_since;

    bool harakiri;                  /* cancelled by --harakiri */
    struct gy_response resp;
    uint64_t switches;              /* switches into the core during this request */
    struct gy_core *next_free;
};

struct gy_server {
    struct gy_config *cfg;
    struct gy_listener listeners[GY_MAX_SOCKETS];
    int nlisteners;
    bool accepting;
    bool stopping;

    struct gy_core *cores;
    int ncores, busy;
    struct gy_core *free_cores;
    PyObject *main_greenlet;

    struct gy_link pending;         /* parsed requests waiting for a core, oldest first */
    int npending;
    struct gy_link free_conns;
    int nconns;                     /* open client connections */
    int max_conns;
    PyObject *sweep_timer;

    PyObject *app;
    uint64_t requests;
    pid_t pid;
    const struct gy_worker_link *link;  /* NULL without a master */
    struct scoreboard board;          /* every worker's slot (made before any fork) */
    struct sb_worker *slot;           /* this process's */
};

extern struct gy_server S;

/*
 * Master and workers (master.c, worker.c).
 *
 * Each worker process has a slot of the scoreboard (scoreboard.h) that it writes and the master
 * reads: the heartbeat shows its loop is alive (--harakiri kills a worker whose loop stopped),
 * the counters feed stats and metrics. Workers tell the master about themselves over one pipe,
 * in records of a few bytes (atomic below PIPE_BUF).
 */
enum gy_msg_type {
    MSG_READY = 1,                    /* app loaded, accepting */
    MSG_RETIRE = 2,                   /* --max-requests/--reload-on-rss reached: replace me */
};

struct gy_msg {
    int type;
    int rec;                          /* the master's record of the worker */
    pid_t pid;
};

struct gy_worker_link {
    int id;                           /* 1..--processes, as uWSGI numbers workers */
    int rec;
    int notify_fd;                    /* the pipe to the master */
};

/* worker.c: serve until stopped; link is NULL without a master. Returns the exit status. */
int worker_run(struct gy_config *cfg, const struct gy_worker_link *link);
/* master.c: bind, fork and manage the workers. Returns the exit status. */
int master_run(struct gy_config *cfg);
/* The loud line uWSGI also logs when root runs the app without --uid. */
void log_root_warning(const struct gy_config *cfg);
/* Drop to --uid/--gid (no-op when not given). -1 with a log line on failure. */
int drop_privileges(const struct gy_config *cfg);

/* list.c-style helpers, inline: they are three lines each. */
static inline void link_init(struct gy_link *l) { l->prev = l->next = l; }
static inline bool link_empty(const struct gy_link *l) { return l->next == l; }
static inline void link_remove(struct gy_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
static inline void link_append(struct gy_link *head, struct gy_link *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
#define link_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* listen.c */
int listen_open_all(void);
/* Bind and listen on one address (unix path or HOST:PORT) into l; -1 with a log line. */
int listen_open_one(struct gy_listener *l, const char *addr);
/* The connection limit (S.max_conns), from --max-conns or RLIMIT_NOFILE; before listen_update. */
void listen_limits_init(void);
void listen_update(void);            /* watch the sockets iff a core is free and not stopping */
void listen_close_all(void);

/* stats.c: --stats and --metrics-http, served by the master or the only process */
int stats_open(void);                  /* bind (before the first fork) */
int stats_start(void);                 /* serve, from a thread of its own */
void stats_close(bool unlink_files);

/* conn.c */
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
size_t conn_max_head(void);             /* the largest request head a buffer must hold */
enum io_result conn_sendfile(struct gy_conn *c, int fd, off_t offset, uint64_t count,
                             uint64_t *sent);
void conn_sweep_start(void);
/* Stopping: close the kept-alive connections that wait for their next request. */
void conn_drop_idle(void);
void conn_dispatch_pending(void);
/* The oldest parsed request waiting for a core, taken off the queue; NULL if none. */
struct gy_conn *conn_pending_pop(void);

/* cores.c */
int cores_init(int n);
bool core_start(struct gy_conn *conn);   /* false when no core is free */
void core_enter(struct gy_core *c);      /* switch into a core from the loop */
int core_suspend(struct gy_core *c, enum core_wait wait);
struct gy_core *core_current(void);      /* the core running now, or NULL */
bool core_in_loop_greenlet(void);        /* the loop's greenlet runs, not a core's */
bool core_is_greenlet_exit(void);        /* the Python error set is GreenletExit */
void core_set_activity(struct gy_core *c, enum core_activity a);   /* for stats */
void cores_check_abandoned(double now);
void cores_check_harakiri(double now);   /* --harakiri: cancel the requests running too long */

/* wsgi.c */
int wsgi_init(void);
bool wsgi_serve(struct gy_core *c);      /* false when the core's greenlet must end */
/* For the protocols' head_finish: */
int wsgi_head_append(struct gy_response *r, const char *p, size_t n);
int wsgi_head_content_length(struct gy_response *r, int64_t content_length);
bool wsgi_response_has_body(const struct gy_response *r);

/* input.c */
int input_init(void);
PyObject *input_new(struct gy_core *c);
/* The core still serving the request `input` (a wsgi.input) belongs to, or NULL with a
 * RuntimeError naming `what`. The request's other callables carry their input as a ticket. */
struct gy_core *input_owner(PyObject *input, const char *what);

/* pymodule.c */
PyObject *PyInit_gyre(void);
int pymodule_init(void);

#endif
