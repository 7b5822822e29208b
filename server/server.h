/*
 * The server's moving parts and the state they share. See server/README for who depends on
 * whom; each subsystem has its header:
 *
 *   process.h   main.c, master.c, worker.c, stats.c: options, processes, stats servers
 *   engine.h    engine.c: the Tornado loop engine, every wait an IOLoop callback
 *   listen.h    listen.c: bind (or inherit from systemd), accept while a core or queue slot
 *               is free
 *   conn.h      conn.c: a client connection: read and parse the request head in C (no core
 *               held), then queue it for a core; reads and writes for the app, with timeouts;
 *               keep-alive
 *   proto.h     proto_*.c: what differs between uwsgi, FastCGI and HTTP: the head, the body's
 *               framing, the response's framing (struct gy_protocol)
 *   response.h  response.c: the response head the cores build and the protocols frame
 *   core.h      cores.c, wsgi.c, input.c, pymodule.c: greenlet cores, PEP 3333, wsgi.input,
 *               the `gyre` module; the only header that includes Python.h
 *   scoreboard.h, log.h, config.h   shared counters, logging, configuration
 *
 * This header: S, the process's server state (server.c), plain C.
 */
#ifndef GYRE_SERVER_H
#define GYRE_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "list.h"
#include "listen.h"
#include "locks.h"
#include "scoreboard.h"

struct gy_core;
struct gy_worker_link;

struct gy_server {
    struct gy_config *cfg;
    struct gy_listener listeners[GY_MAX_SOCKETS];
    int nlisteners;
    bool accepting;
    bool stopping;

    struct gy_core *cores;
    int ncores, busy;
    struct gy_core *free_cores;
    int stuck_cores; /* thread cores that outlived --harakiri-grace: the worker must go */

    struct gy_link pending; /* parsed requests waiting for a core, oldest first */
    int npending;
    struct gy_link free_conns;
    int nconns; /* open client connections */
    int max_conns;

    uint64_t requests;
    pid_t pid;
    const struct gy_worker_link *link; /* NULL without a master */
    struct scoreboard board;           /* every worker's slot (made before any fork) */
    struct gy_locks locks;             /* --locks (made before any fork) */
    struct sb_worker *slot;            /* this process's */
};

extern struct gy_server S;

#endif
