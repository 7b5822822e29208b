/*
 * The server's moving parts: listening sockets, client connections and greenlet cores.
 *
 *   listen.c   bind, accept, and stop watching the listening sockets while no core is free
 *   conn.c     a client connection: read and parse the request head in C (no core held),
 *              then queue it for a core; reads and writes for the app, with timeouts
 *   cores.c    greenlet cores: run a request, suspend on a wait, resume; abandoned cores
 *   wsgi.c     PEP 3333: environ, start_response, the response, the request log line
 *   input.c    wsgi.input
 *   pymodule.c the `gyre` Python module (wait, sleep)
 */
#ifndef GYRE_SERVER_H
#define GYRE_SERVER_H

#include <Python.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config.h"
#include "uwsgi.h"

struct gy_core;

/* An intrusive doubly linked list, as in nginx's ngx_queue_t. */
struct gy_link {
    struct gy_link *prev, *next;
};

struct gy_listener {
    int fd;
    enum gy_proto proto;
    bool watched;
    bool unlink_on_exit;       /* a unix socket file this process created */
    char name[112];            /* for log lines: the address as given, or the path */
};

enum conn_phase {
    CONN_READING,  /* reading the request head; no core is held */
    CONN_QUEUED,   /* head parsed, waiting for a free core */
    CONN_IN_CORE,  /* a core runs the app for it */
};

enum io_result {
    IO_OK = 0,
    IO_CLOSED = -1,    /* the client went away (EOF, reset, broken pipe) */
    IO_TIMEOUT = -2,   /* --socket-timeout passed with nothing moving */
    IO_ERROR = -3,     /* any other error; errno says which */
    IO_KILLED = -4,    /* the core was killed while it waited (a Python error is set) */
};

struct gy_conn {
    int fd;
    enum conn_phase phase;
    struct gy_listener *listener;
    struct gy_core *core;           /* while CONN_IN_CORE */

    /* Input: the request head, then whatever part of the body came with it. */
    char *buf;
    size_t cap, len;
    size_t head_len;                /* header + vars block, once parsed */
    size_t body_pos;                /* next unread body byte in buf */
    uint64_t body_left;             /* body bytes the app has not read yet */
    struct uwsgi_request req;       /* params point into buf */

    /* The wait the connection is in, for --socket-timeout. */
    double deadline;
    struct gy_link timeout_link;    /* in S.timeouts while waiting on the client */
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
    uint64_t body_sent;             /* body bytes the app produced (also for HEAD) */
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
    struct gy_link timeouts;        /* connections waiting on a client, oldest deadline first */
    struct gy_link free_conns;
    int nconns;                     /* open client connections */
    int max_conns;
    PyObject *sweep_timer;

    PyObject *app;
    uint64_t requests;
    pid_t pid;
};

extern struct gy_server S;

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
void listen_update(void);            /* watch the sockets iff a core is free and not stopping */
void listen_close_all(void);

/* conn.c */
void conn_accepted(int fd, struct gy_listener *l);
void conn_close(struct gy_conn *c);
/* Up to n body bytes, from the buffer if it holds any, else straight from the socket; *got == 0
 * means the body is complete. */
enum io_result conn_read_some(struct gy_conn *c, char *dst, size_t n, size_t *got);
/* Make the buffer hold body bytes (buf[body_pos..len)) unless the body is complete. */
enum io_result conn_fill(struct gy_conn *c);
enum io_result conn_write_all(struct gy_conn *c, struct iovec *iov, int iovcnt);
enum io_result conn_sendfile(struct gy_conn *c, int fd, off_t offset, uint64_t count,
                             uint64_t *sent);
void conn_sweep_start(void);
void conn_dispatch_pending(void);

/* cores.c */
int cores_init(int n);
bool core_start(struct gy_conn *conn);   /* false when no core is free */
void core_enter(struct gy_core *c);      /* switch into a core from the loop */
int core_suspend(struct gy_core *c, enum core_wait wait);
struct gy_core *core_current(void);      /* the core running now, or NULL */
bool core_is_greenlet_exit(void);        /* the Python error set is GreenletExit */
void cores_check_abandoned(double now);

/* wsgi.c */
int wsgi_init(void);
bool wsgi_serve(struct gy_core *c);      /* false when the core's greenlet must end */
void wsgi_answer_500_nowait(struct gy_conn *c);

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
