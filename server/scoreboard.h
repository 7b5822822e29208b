/*
 * The scoreboard: what every worker and core is doing, in shared memory.
 *
 * Created before the first fork (by the master, or by the only process), written by each worker
 * for itself with plain stores, read by the master's stats and metrics servers and its
 * --harakiri watch. No locks: each field has one writer, and a reader that sees a counter a
 * request late is fine for monitoring.
 */
#ifndef GYRE_SCOREBOARD_H
#define GYRE_SCOREBOARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* What a core is doing: for stats, "waiting on what" is what uWSGI cannot show. */
enum core_activity {
    CORE_IDLE = 0,
    CORE_RUNNING,       /* in the app, on the CPU */
    CORE_WAIT_READ,     /* gyre waits for the client socket to be readable (request body) */
    CORE_WAIT_WRITE,    /* ... writable (response) */
    CORE_WAIT_TIMER,    /* gyre.sleep() */
    CORE_WAIT_FUTURE,   /* gyre.wait() */
    CORE_APP_SUSPENDED, /* the app switched to the loop itself (greenlet parent.switch()) */
    CORE_WAIT_APP_FD,   /* uwsgi.suspend() after uwsgi.wait_fd_read/write: the app's own fds */

    CORE_WAIT_WEBSOCKET, /* uwsgi.websocket_recv(): an idle WebSocket waits for a message */
    CORE_ACTIVITIES,     /* how many there are */
};
const char *core_activity_name(enum core_activity a);

/* Request duration histogram bounds, in seconds (Prometheus "le"); one more bucket is +Inf. */
#define SB_BUCKETS 12
extern const double sb_bucket_bounds[SB_BUCKETS];

struct sb_core {
    volatile uint64_t requests;
    volatile uint8_t activity; /* enum core_activity */
};

/* What the worker's requests hold in memory, by gyre's own accounting: refreshed by the worker
 * once a second while --stats is on (worker.c), read by stats.c. Bytes unless said otherwise. */
struct sb_memory {
    volatile uint64_t busy;           /* cores serving a request (or a task) */
    volatile uint64_t parked;         /* of those, suspended: waiting on the loop, not running */
    volatile uint64_t greenlets;      /* greenlet cores that have a greenlet */
    volatile uint64_t frame_stack;    /* their first Python frame-stack chunks (frame_stack.c) */
    volatile uint64_t greenlet_stack; /* C stack greenlet saved aside for the suspended cores */
    volatile uint64_t conns;          /* open client connections */
    volatile uint64_t conn_alloc;     /* their structs and protocol state, busy ones' buffers */
    volatile uint64_t conn_buffered;  /* bytes in the busy cores' connection buffers */
    volatile uint64_t environ;        /* the busy cores' environ dicts, values held alone */
};

struct sb_worker {
    volatile pid_t pid;
    volatile int id;           /* 1..processes; 0: slot unused */
    volatile double heartbeat; /* CLOCK_MONOTONIC seconds of the loop's last tick */
    volatile double started;   /* CLOCK_REALTIME seconds of the fork */
    volatile uint8_t accepting;
    volatile int busy; /* cores serving a request */
    volatile uint64_t requests;
    volatile uint64_t exceptions; /* requests the app failed (500 from gyre) */
    volatile uint64_t harakiri;
    volatile uint64_t tx;        /* response body bytes */
    volatile uint64_t rt_us;     /* sum of request durations, microseconds */
    volatile uint64_t status[6]; /* by class: [1] 1xx ... [5] 5xx, [0] other */
    volatile uint64_t hist[SB_BUCKETS + 1];
    volatile uint64_t respawns; /* of this worker id, kept across its processes by the master */
    struct sb_memory mem;
    struct sb_core cores[]; /* ncores of them */
};

struct scoreboard {
    int nslots, ncores;
    size_t stride; /* bytes per worker slot, cores included */
    char *mem;
};

int scoreboard_create(struct scoreboard *sb, int nslots, int ncores);
struct sb_worker *scoreboard_slot(const struct scoreboard *sb, int i);
void scoreboard_record_request(struct sb_worker *w, int status, uint64_t tx, double seconds,
                               bool exception);

#endif
