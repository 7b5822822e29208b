/*
 * Listening sockets (listen.c): bind or inherit them, map each to its protocol, accept while a
 * core or a queue slot is free. Plain C, no Python.
 */
#ifndef GYRE_LISTEN_H
#define GYRE_LISTEN_H

#include <stdbool.h>

struct gy_protocol;

struct gy_listener {
    int fd;
    const struct gy_protocol *proto;
    bool watched;
    bool unlink_on_exit; /* a unix socket file this process created */
    bool inherited;      /* from systemd (socket activation) */
    char name[112];      /* for log lines: the address as given, or the path */
};

int listen_open_all(void);
/* Bind and listen on one address (unix path or HOST:PORT) into l; -1 with a log line. */
int listen_open_one(struct gy_listener *l, const char *addr);
/* The connection limit (S.max_conns), from --max-conns or RLIMIT_NOFILE; before listen_update. */
void listen_limits_init(void);
void listen_update(void); /* watch the sockets iff a core is free and not stopping */
void listen_close_all(void);

#endif
