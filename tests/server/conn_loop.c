/*
 * The loop, as conn.c's unit test sees it (tests/server/test_conn.c): engine.h's functions
 * without Tornado. conn.c reaches the loop only through engine.h, so its buffer arithmetic can
 * be tested without Python: a wait on the socket is registered here and never delivered (the
 * test's conn_runner decides what a core's wait returns), timers are never armed, and the
 * clock is the test's.
 */
#include "engine.h"

double conn_loop_now = 1000.0;
int conn_loop_polls; /* engine_poll calls that asked to watch a socket */

int engine_poll(int fd, int events, engine_fd_fn fn, void *ctx)
{
    (void)fd;
    (void)fn;
    (void)ctx;
    if (events)
        conn_loop_polls++;
    return 0;
}

void engine_unpoll(int fd)
{
    (void)fd;
}

int engine_timer_arm(struct engine_timer *t, double delay, void (*fn)(void *ctx), void *ctx)
{
    (void)t;
    (void)delay;
    (void)fn;
    (void)ctx;
    return 0;
}

double engine_now(void)
{
    return conn_loop_now;
}
