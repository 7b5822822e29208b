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
/* The last watch asked for: a test delivers its event by calling fn itself. */
engine_fd_fn conn_loop_fn;
void *conn_loop_ctx;
int conn_loop_events;

int engine_poll(int fd, int events, engine_fd_fn fn, void *ctx)
{
    (void)fd;
    if (events)
        conn_loop_polls++;
    conn_loop_fn = fn;
    conn_loop_ctx = ctx;
    conn_loop_events = events;
    return 0;
}

/* The test is the loop's only thread: a posted task runs right away. */
bool engine_on_loop_thread(void)
{
    return true;
}

void engine_post(struct engine_task *t)
{
    t->fn(t->ctx);
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
