/*
 * The Redis store of a cache (cache_redis.h): uWSGI's cache API on a Redis server, so that the
 * gyre hosts behind one nginx share one cache.
 *
 * Key layout (what ops people see with redis-cli): the cache NAME's key KEY is the Redis string
 * "gyre:cache:NAME:KEY", its value the cache value's bytes, its TTL the cache expiry (none for
 * 0). The numbers of cache_inc/dec/mul/div/num are 8 raw bytes, native (little-endian) order, as
 * uWSGI stores them: cache_get of one gives the same 8 bytes on either server. cache_clear and
 * cache_keys touch only "gyre:cache:NAME:*". `items` does not bound a Redis store: Redis's own
 * maxmemory policy does.
 *
 * Atomic across hosts: SET NX, SET and DEL are single commands; APPEND and PREPEND (with their
 * size check) one Lua script; the math is read, computed here on exact 64-bit integers
 * (Redis's Lua has only doubles) and written back by a compare-and-set script, retried when
 * another writer came in between. Scripts go as EVAL (not EVALSHA): nothing to reload when a
 * restarted Redis forgot its script cache, and Redis caches the compiled script by its hash.
 *
 * Two ways to Redis:
 *   - a greenlet core: one asynchronous hiredis connection per cache and worker, its socket in
 *     the loop's epoll set (engine_poll). The core sends its command and suspends
 *     (core_suspend, WAIT_FUTURE); the reply callback stores the answer and the loop enters the
 *     core again once hiredis is done reading. Other cores and requests run meanwhile, and
 *     the commands the cores of one loop turn sent go out together, as a pipeline.
 *   - anything else (a thread core of --threads, a pool thread, code run at import): a blocking
 *     hiredis context taken from a small pool, the GIL released while it waits. A thread core
 *     has its own OS thread to block; posting to the loop would cost two thread switches per
 *     call for nothing. (Outside a core on the loop's own thread, e.g. a Tornado callback, this
 *     blocks the loop up to the timeout: there is no core to suspend.)
 *
 * Failures: a Redis that cannot be reached raises ConnectionError ("cache NAME: URL
 * unreachable: why"), one that does not answer within the URL's timeout= raises TimeoutError,
 * and every call waiting on that connection gets the same. After a failed connect (or a
 * timeout), calls fail at once for BACKOFF seconds instead of each paying a connect; the first
 * call after that connects again. An error Redis answers (WRONGTYPE...) raises RuntimeError.
 *
 * Depends on: cores.c, engine.c, log.c, redis_url.c
 */
#include "cache_redis.h"
#include "engine.h"
#include "log.h"
#include "redis_url.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF 0.5    /* seconds of failing fast after a failed connect or a timeout */
#define CAS_TRIES 1000 /* a math op that lost its compare-and-set this often gives up */

/* What Redis answered, copied out of hiredis's reply (freed once the reply callback returns). */
struct answer {
    int type;           /* REDIS_REPLY_*; 0: no answer (exc_type and msg say why) */
    long long integer;  /* INTEGER */
    PyObject *obj;      /* STRING: bytes; ARRAY: list of bytes; a new reference */
    PyObject *exc_type; /* no answer: ConnectionError, TimeoutError, MemoryError */
    char msg[320];      /* ERROR: Redis's message; no answer: the exception's message */
};

/* One call in flight on the asynchronous connection, or waiting for its SELECT. Never on a
 * core's stack: greenlet stacks are copied away while suspended, and hiredis keeps privdata. */
struct waiter {
    struct cache_redis *r;
    struct gy_core *core; /* NULL: nobody waits any more (the core was killed): drop the answer */
    uint64_t gen;
    bool done;
    bool is_select; /* the connection's own SELECT, no core behind it */
    size_t strip;   /* KEYS: the prefix to cut off each key */
    double sent;
    struct answer ans;
    struct waiter *next; /* in the in-flight queue, the ready list, the SELECT's or the free list */
};

struct cache_redis {
    char *name, *url;
    struct redis_url u;
    size_t keysize, blocksize;
    char *kbuf;    /* the prefix, then room for one key: filled right before each send */
    size_t plen;   /* the prefix's length */
    char *pattern; /* the prefix, glob characters escaped, then '*': this cache's keys */

    /* The asynchronous connection (the loop's thread only). */
    redisAsyncContext *ac;             /* NULL: not connected */
    int fd, events;                    /* its socket and what engine_poll watches */
    bool selected;                     /* SELECT db answered (always true for db 0) */
    struct waiter *head, *tail;        /* sent, in the order Redis answers them */
    struct waiter *ready, *ready_tail; /* answered: their cores are to be entered */
    struct waiter *select_wait;        /* cores waiting for the SELECT before they send */
    struct waiter *free;
    struct engine_timer timer; /* the oldest call's deadline */
    bool timing_out;           /* the connection is being dropped for a timeout */

    /* Why Redis is considered down, until when (either path, under the GIL). */
    double down_until;
    PyObject *down_type;
    char down_why[320];

    /* Blocking contexts for calls from outside the greenlet cores (under the GIL). */
    redisContext **pool;
    int npool, pool_cap;
};

/* ---- answers ------------------------------------------------------------------------------ */

static void answer_fail(struct answer *a, PyObject *type, const char *msg)
{
    a->type = 0;
    a->exc_type = type;
    snprintf(a->msg, sizeof(a->msg), "%s", msg);
}

/* Copy reply into a (the GIL held). */
static void answer_from(struct answer *a, const redisReply *reply, size_t strip)
{
    *a = (struct answer){ .type = reply->type };
    switch (reply->type) {
    case REDIS_REPLY_STRING:
        a->obj = PyBytes_FromStringAndSize(reply->str, (Py_ssize_t)reply->len);
        break;
    case REDIS_REPLY_ARRAY:
        a->obj = PyList_New((Py_ssize_t)reply->elements);
        for (size_t i = 0; a->obj && i < reply->elements; i++) {
            const redisReply *e = reply->element[i];
            size_t off = e->type == REDIS_REPLY_STRING && e->len >= strip ? strip : 0;
            PyObject *k = PyBytes_FromStringAndSize(e->str ? e->str + off : "",
                                                    e->str ? (Py_ssize_t)(e->len - off) : 0);
            if (!k)
                Py_CLEAR(a->obj);
            else
                PyList_SET_ITEM(a->obj, (Py_ssize_t)i, k);
        }
        break;
    case REDIS_REPLY_INTEGER:
        a->integer = reply->integer;
        break;
    case REDIS_REPLY_ERROR:
        snprintf(a->msg, sizeof(a->msg), "%.*s", (int)reply->len, reply->str);
        break;
    default:
        return;
    }
    if ((reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_ARRAY) && !a->obj) {
        PyErr_Clear(); /* raised later, in the core that asked */
        answer_fail(a, PyExc_MemoryError, "out of memory for Redis's answer");
    }
}

static void answer_release(struct answer *a)
{
    Py_CLEAR(a->obj);
}

/* Raise what a says went wrong, if anything did: -1 then. */
static int answer_raise(struct cache_redis *r, const struct answer *a)
{
    if (a->type == 0) {
        PyErr_SetString(a->exc_type, a->msg);
        return -1;
    }
    if (a->type == REDIS_REPLY_ERROR) {
        PyErr_Format(PyExc_RuntimeError, "cache %s: %s answered: %s", r->name, r->url, a->msg);
        return -1;
    }
    return 0;
}

static void mark_down(struct cache_redis *r, PyObject *type, const char *why)
{
    r->down_until = engine_now() + BACKOFF;
    r->down_type = type;
    snprintf(r->down_why, sizeof(r->down_why), "%s", why);
}

static int raise_down(struct cache_redis *r)
{
    PyErr_SetString(r->down_type, r->down_why);
    return -1;
}

/* ---- the asynchronous connection: hiredis's event hooks on gyre's loop --------------------- */

static void wake_ready(struct cache_redis *r);

static void on_redis_fd(void *ctx, int fd, int events)
{
    (void)fd;
    struct cache_redis *r = ctx;
    if (r->ac && (events & (EV_READ | EV_ERROR)))
        redisAsyncHandleRead(r->ac);
    if (r->ac && (events & EV_WRITE)) /* the read may have dropped the connection */
        redisAsyncHandleWrite(r->ac);
    wake_ready(r);
}

static void watch(struct cache_redis *r, int events)
{
    if (events == r->events || r->fd < 0)
        return;
    r->events = events;
    engine_poll(r->fd, events, on_redis_fd, r); /* a failure is logged; the timeout ends it */
}

static void ev_add_read(void *p)
{
    struct cache_redis *r = p;
    watch(r, r->events | EV_READ);
}

static void ev_del_read(void *p)
{
    struct cache_redis *r = p;
    watch(r, r->events & ~EV_READ);
}

static void ev_add_write(void *p)
{
    struct cache_redis *r = p;
    watch(r, r->events | EV_WRITE);
}

static void ev_del_write(void *p)
{
    struct cache_redis *r = p;
    watch(r, r->events & ~EV_WRITE);
}

/* hiredis frees the context next (a failed connect, a lost connection, redisAsyncFree): the
 * one place that learns of every end of it. */
static void ev_cleanup(void *p)
{
    struct cache_redis *r = p;
    if (r->fd >= 0)
        engine_unpoll(r->fd);
    r->fd = -1;
    r->events = 0;
    r->ac = NULL;
    r->selected = false;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct cache_redis *r = ac->data;
    if (status != REDIS_OK) {
        char why[320];
        snprintf(why, sizeof(why), "cache %s: %s unreachable: %s", r->name, r->url,
                 ac->errstr[0] ? ac->errstr : "connect failed");
        mark_down(r, PyExc_ConnectionError, why);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct cache_redis *r = ac->data;
    if (status != REDIS_OK)
        log_msg("cache %s: connection to %s lost: %s", r->name, r->url,
                ac->errstr[0] ? ac->errstr : "closed");
}

/* ---- waiters -------------------------------------------------------------------------------- */

static struct waiter *waiter_get(struct cache_redis *r, struct gy_core *c)
{
    struct waiter *w = r->free;
    if (w)
        r->free = w->next;
    else if (!(w = malloc(sizeof(*w)))) { /* only until the most calls ever in flight */
        PyErr_NoMemory();
        return NULL;
    }
    *w = (struct waiter){ .r = r, .core = c, .gen = c ? c->gen : 0 };
    return w;
}

static void waiter_put(struct cache_redis *r, struct waiter *w)
{
    w->next = r->free;
    r->free = w;
}

static void make_ready(struct cache_redis *r, struct waiter *w)
{
    w->done = true;
    w->next = NULL;
    if (r->ready_tail)
        r->ready_tail->next = w;
    else
        r->ready = w;
    r->ready_tail = w;
}

/* Enter the cores whose answers came: from the loop, once hiredis has returned (a core entered
 * from inside hiredis's callback could free the context under it). */
static void wake_ready(struct cache_redis *r)
{
    struct waiter *w;
    while ((w = r->ready)) {
        r->ready = w->next;
        if (!r->ready)
            r->ready_tail = NULL;
        struct gy_core *c = w->core;
        /* Still ours if it serves the same request and still waits for this (not the app's
         * own switch): the core then takes the answer and frees w. */
        if (c && c->busy && c->gen == w->gen && c->wait == WAIT_FUTURE)
            core_enter(c);
    }
}

/* Why a call got no answer: a timeout (the connection dropped for it) or a lost connection. */
static void no_answer(struct cache_redis *r, const redisAsyncContext *ac, struct answer *a)
{
    if (r->timing_out) {
        answer_fail(a, PyExc_TimeoutError, r->down_why);
        return;
    }
    char why[320];
    snprintf(why, sizeof(why), "cache %s: %s unreachable: %s", r->name, r->url,
             ac->err && ac->errstr[0] ? ac->errstr : "connection closed");
    answer_fail(a, PyExc_ConnectionError, why);
}

static void select_answered(struct cache_redis *r, redisAsyncContext *ac, redisReply *reply)
{
    struct answer a = { .type = REDIS_REPLY_STATUS };
    if (!reply) {
        no_answer(r, ac, &a);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        char why[320];
        snprintf(why, sizeof(why), "cache %s: %s: SELECT %d failed: %.*s", r->name, r->url, r->u.db,
                 (int)reply->len, reply->str);
        answer_fail(&a, PyExc_ConnectionError, why);
        mark_down(r, PyExc_ConnectionError, why);
        log_msg("%s", why);
        redisAsyncFree(ac); /* within a callback: hiredis frees it once the callback returns */
    } else {
        r->selected = true;
    }
    struct waiter *w = r->select_wait;
    r->select_wait = NULL;
    while (w) {
        struct waiter *next = w->next;
        if (w->core) {
            w->ans = a;
            make_ready(r, w);
        } else {
            waiter_put(r, w);
        }
        w = next;
    }
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redisReply *reply = reply_;
    struct waiter *w = privdata;
    struct cache_redis *r = w->r;
    if (r->head == w) { /* answers come in the order of the calls */
        r->head = w->next;
        if (!r->head)
            r->tail = NULL;
    }
    if (w->is_select) {
        select_answered(r, ac, reply);
        waiter_put(r, w);
        return;
    }
    if (!w->core) {
        waiter_put(r, w);
        return;
    }
    if (reply)
        answer_from(&w->ans, reply, w->strip);
    else
        no_answer(r, ac, &w->ans);
    make_ready(r, w);
}

static void on_timer(void *ctx)
{
    struct cache_redis *r = ctx;
    if (!r->ac || !r->head)
        return;
    double age = engine_now() - r->head->sent;
    if (age < r->u.timeout - 1e-3) {
        engine_timer_arm(&r->timer, r->u.timeout - age, on_timer, r);
        return;
    }
    char why[320];
    snprintf(why, sizeof(why), "cache %s: %s did not answer within %gs", r->name, r->url,
             r->u.timeout);
    log_msg("%s: dropping the connection", why);
    mark_down(r, PyExc_TimeoutError, why);
    r->timing_out = true;
    redisAsyncFree(r->ac); /* every call in flight gets the TimeoutError */
    r->timing_out = false;
    wake_ready(r);
}

static void sent(struct cache_redis *r, struct waiter *w)
{
    w->sent = engine_now();
    w->next = NULL;
    if (r->tail)
        r->tail->next = w;
    else
        r->head = w;
    r->tail = w;
    if (!engine_timer_armed(&r->timer))
        engine_timer_arm(&r->timer, r->u.timeout, on_timer, r);
}

/* Start connecting (hiredis connects without blocking; the commands queue meanwhile). */
static int connect_async(struct cache_redis *r)
{
    if (engine_now() < r->down_until)
        return raise_down(r);
    redisAsyncContext *ac = r->u.path[0] ? redisAsyncConnectUnix(r->u.path)
                                         : redisAsyncConnect(r->u.host, r->u.port);
    if (!ac) {
        PyErr_NoMemory();
        return -1;
    }
    if (ac->err) {
        char why[320];
        snprintf(why, sizeof(why), "cache %s: %s unreachable: %s", r->name, r->url, ac->errstr);
        redisAsyncFree(ac);
        mark_down(r, PyExc_ConnectionError, why);
        return raise_down(r);
    }
    ac->data = r;
    r->fd = ac->c.fd;
    r->events = 0;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    r->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    ev_add_read(r); /* a Redis that goes away is noticed even while no call waits */
    r->selected = r->u.db == 0;
    if (!r->selected) {
        /* Commands wait for the SELECT's answer: pipelined behind a SELECT that failed, they
         * would read and write database 0. */
        struct waiter *w = waiter_get(r, NULL);
        if (!w)
            return -1;
        w->is_select = true;
        char db[16];
        snprintf(db, sizeof(db), "%d", r->u.db);
        if (redisAsyncCommand(ac, on_reply, w, "SELECT %s", db) != REDIS_OK) {
            waiter_put(r, w);
            PyErr_Format(PyExc_ConnectionError, "cache %s: %s: cannot send SELECT", r->name,
                         r->url);
            return -1;
        }
        sent(r, w);
    }
    return 0;
}

/* Suspend core c until w is answered. -1: the core was killed meanwhile (an error is set); w
 * then belongs to hiredis's callback, which frees it. */
static int wait_answer(struct waiter *w, struct gy_core *c)
{
    while (!w->done) {
        if (core_suspend(c, WAIT_FUTURE) == IO_KILLED) {
            w->core = NULL;
            return -1;
        }
    }
    return 0;
}

static int call_async(struct cache_redis *r, struct gy_core *c, const char *cmd, size_t len,
                      size_t strip, struct answer *ans)
{
    for (;;) {
        if (!r->ac && connect_async(r) < 0)
            return -1;
        if (r->selected)
            break;
        struct waiter *w = waiter_get(r, c);
        if (!w)
            return -1;
        w->next = r->select_wait;
        r->select_wait = w;
        if (wait_answer(w, c) < 0)
            return -1;
        struct answer a = w->ans;
        waiter_put(r, w);
        if (answer_raise(r, &a) < 0)
            return -1;
        /* Selected now, or the connection dropped meanwhile: round again (bounded by the
         * backoff: a connect that fails raises). */
    }
    struct waiter *w = waiter_get(r, c);
    if (!w)
        return -1;
    w->strip = strip;
    if (redisAsyncFormattedCommand(r->ac, on_reply, w, cmd, len) != REDIS_OK) {
        waiter_put(r, w);
        PyErr_Format(PyExc_ConnectionError, "cache %s: %s: the connection is closing", r->name,
                     r->url);
        return -1;
    }
    /* Not written here: hiredis writes when the loop next finds the socket writable, so the
     * commands of all the cores that ran this loop turn go out in one write (a pipeline) and
     * their answers come back in one read. Writing each at once measured slower. */
    sent(r, w);
    if (wait_answer(w, c) < 0)
        return -1;
    *ans = w->ans; /* the reference to ans->obj moves to the caller */
    waiter_put(r, w);
    return 0;
}

/* ---- the blocking way, outside the greenlet cores ------------------------------------------ */

/* An idle connection has nothing to read: if it does, Redis closed it (a restart). */
static bool stale(redisContext *ctx)
{
    struct pollfd p = { .fd = ctx->fd, .events = POLLIN };
    return poll(&p, 1, 0) != 0;
}

/* Without the GIL: touches no Python and nothing of r but its URL. */
static redisContext *connect_sync(const struct redis_url *u, char *why, size_t whylen)
{
    struct timeval tv = { .tv_sec = (time_t)u->timeout,
                          .tv_usec = (suseconds_t)((u->timeout - (double)(time_t)u->timeout) *
                                                   1e6) };
    redisContext *ctx = u->path[0] ? redisConnectUnixWithTimeout(u->path, tv)
                                   : redisConnectWithTimeout(u->host, u->port, tv);
    if (!ctx) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (ctx->err) {
        snprintf(why, whylen, "%s", ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    if (u->db) {
        redisReply *reply = redisCommand(ctx, "SELECT %d", u->db);
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            snprintf(why, whylen, "SELECT %d failed: %s", u->db, reply ? reply->str : ctx->errstr);
            if (reply)
                freeReplyObject(reply);
            redisFree(ctx);
            return NULL;
        }
        freeReplyObject(reply);
    }
    return ctx;
}

static int call_sync(struct cache_redis *r, const char *cmd, size_t len, size_t strip,
                     struct answer *ans)
{
    redisContext *ctx = NULL;
    while (r->npool > 0 && !ctx) {
        ctx = r->pool[--r->npool];
        if (stale(ctx)) {
            redisFree(ctx);
            ctx = NULL;
        }
    }
    char why[256] = "";
    if (!ctx) {
        if (engine_now() < r->down_until)
            return raise_down(r);
        Py_BEGIN_ALLOW_THREADS;
        ctx = connect_sync(&r->u, why, sizeof(why));
        Py_END_ALLOW_THREADS;
        if (!ctx) {
            char msg[320];
            snprintf(msg, sizeof(msg), "cache %s: %s unreachable: %s", r->name, r->url, why);
            mark_down(r, PyExc_ConnectionError, msg);
            return raise_down(r);
        }
    }
    redisReply *reply = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS;
    rc = redisAppendFormattedCommand(ctx, cmd, len);
    if (rc == REDIS_OK)
        rc = redisGetReply(ctx, (void **)&reply);
    Py_END_ALLOW_THREADS;
    if (rc != REDIS_OK || !reply) {
        bool timeout = ctx->err == REDIS_ERR_IO &&
                       (strstr(ctx->errstr, "temporarily unavailable") ||
                        strstr(ctx->errstr, "timed out"));
        char msg[320];
        if (timeout)
            snprintf(msg, sizeof(msg), "cache %s: %s did not answer within %gs", r->name, r->url,
                     r->u.timeout);
        else
            snprintf(msg, sizeof(msg), "cache %s: %s unreachable: %s", r->name, r->url,
                     ctx->errstr[0] ? ctx->errstr : "connection closed");
        if (timeout) /* as on the loop: the next calls fail fast for a while */
            mark_down(r, PyExc_TimeoutError, msg);
        PyErr_SetString(timeout ? PyExc_TimeoutError : PyExc_ConnectionError, msg);
        redisFree(ctx);
        return -1;
    }
    answer_from(ans, reply, strip);
    freeReplyObject(reply);
    if (r->npool == r->pool_cap) {
        int cap = r->pool_cap ? 2 * r->pool_cap : 4;
        redisContext **pool = realloc(r->pool, (size_t)cap * sizeof(*pool));
        if (!pool) {
            redisFree(ctx); /* the answer is good; only the reuse is lost */
            return 0;
        }
        r->pool = pool;
        r->pool_cap = cap;
    }
    r->pool[r->npool++] = ctx;
    return 0;
}

/* ---- commands -------------------------------------------------------------------------------- */

/* Send argv (formatted here, so that the key buffer is free again before any wait) and get the
 * answer. 0: *ans filled (maybe an error Redis answered); -1: a Python error is set. */
static int call(struct cache_redis *r, int argc, const char **argv, const size_t *lens,
                size_t strip, struct answer *ans)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0 || !cmd) {
        PyErr_NoMemory();
        return -1;
    }
    struct gy_core *c = core_current();
    int rc = c && !c->thread ? call_async(r, c, cmd, (size_t)len, strip, ans)
                             : call_sync(r, cmd, (size_t)len, strip, ans);
    redisFreeCommand(cmd);
    if (rc == 0 && answer_raise(r, ans) < 0) {
        answer_release(ans);
        return -1;
    }
    return rc;
}

/* PREPEND, and APPEND within blocksize, atomically. ARGV: value, 'a' or 'p', blocksize, ttl
 * (for a new key). 1: done, 0: the result would be over blocksize. */
static const char JOIN_LUA[] =
    "local old = redis.call('GET', KEYS[1])\n"
    "local new\n"
    "if not old then new = ARGV[1]\n"
    "elseif ARGV[2] == 'a' then new = old .. ARGV[1]\n"
    "else new = ARGV[1] .. old end\n"
    "if #new > tonumber(ARGV[3]) then return 0 end\n"
    "if old then redis.call('SET', KEYS[1], new, 'KEEPTTL')\n"
    "elseif ARGV[4] ~= '0' then redis.call('SET', KEYS[1], new, 'EX', ARGV[4])\n"
    "else redis.call('SET', KEYS[1], new) end\n"
    "return 1\n";

/* Compare and set: ARGV: '1' if the key is to hold old, else it is to be absent; old; new; ttl
 * (for a new key; an existing key keeps its TTL, as uWSGI's math keeps the expiry). */
static const char CAS_LUA[] = "local cur = redis.call('GET', KEYS[1])\n"
                              "if ARGV[1] == '1' then\n"
                              "  if cur ~= ARGV[2] then return 0 end\n"
                              "  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')\n"
                              "else\n"
                              "  if cur then return 0 end\n"
                              "  if ARGV[4] ~= '0' then\n"
                              "    redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])\n"
                              "  else redis.call('SET', KEYS[1], ARGV[3]) end\n"
                              "end\n"
                              "return 1\n";

/* Every key of this cache: ARGV[1] is its pattern. */
static const char CLEAR_LUA[] =
    "local n = 0\n"
    "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k); n = n + 1 end\n"
    "return n\n";

/* What uWSGI's math does to n (wrapping, as its int64_t arithmetic on x86-64 does; x/0 is 0). */
static int64_t apply_math(enum cache_op op, int64_t n, int64_t d)
{
    uint64_t un = (uint64_t)n, ud = (uint64_t)d;
    switch (op) {
    case CACHE_INC:
        return (int64_t)(un + ud);
    case CACHE_DEC:
        return (int64_t)(un - ud);
    case CACHE_MUL:
        return (int64_t)(un * ud);
    default: /* CACHE_DIV */
        if (d == 0)
            return 0;
        if (n == INT64_MIN && d == -1)
            return INT64_MIN;
        return n / d;
    }
}

/* The key argument: prefix + key, in r->kbuf until the next call. */
static const char *key_arg(struct cache_redis *r, const struct cache_req *req, size_t *len)
{
    memcpy(r->kbuf + r->plen, req->key, req->klen);
    *len = r->plen + req->klen;
    return r->kbuf;
}

static int do_math(struct cache_redis *r, const struct cache_req *req)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)req->expires);
    for (int tries = 0; tries < CAS_TRIES; tries++) {
        struct answer a;
        size_t lens[8];
        const char *argv[8] = { "GET", key_arg(r, req, &lens[1]) };
        lens[0] = 3;
        if (call(r, 2, argv, lens, 0, &a) < 0)
            return -1;
        bool exists = a.type == REDIS_REPLY_STRING;
        char old[8];
        int64_t n = 0; /* a new key starts from 0, as uWSGI's math_initial */
        if (exists) {
            size_t len = (size_t)PyBytes_GET_SIZE(a.obj);
            if (len == 8)
                memcpy(old, PyBytes_AS_STRING(a.obj), 8);
            answer_release(&a);
            if (len != 8)
                return 0; /* not a number of this API */
            memcpy(&n, old, 8);
        }
        int64_t result = apply_math(req->op, n, req->num);
        char new[8];
        memcpy(new, &result, 8);
        argv[0] = "EVAL", lens[0] = 4;
        argv[1] = CAS_LUA, lens[1] = sizeof(CAS_LUA) - 1;
        argv[2] = "1", lens[2] = 1;
        argv[3] = key_arg(r, req, &lens[3]);
        argv[4] = exists ? "1" : "0", lens[4] = 1;
        argv[5] = old, lens[5] = exists ? 8 : 0;
        argv[6] = new, lens[6] = 8;
        argv[7] = ttl, lens[7] = strlen(ttl);
        if (call(r, 8, argv, lens, 0, &a) < 0)
            return -1;
        if (a.type == REDIS_REPLY_INTEGER && a.integer == 1)
            return 1;
        /* Another writer came in between: read again. */
    }
    PyErr_Format(PyExc_RuntimeError, "cache %s: %s: %d tries of a math op lost to other writers",
                 r->name, r->url, CAS_TRIES);
    return -1;
}

int cache_redis_do(struct cache_redis *r, const struct cache_req *req, PyObject **out)
{
    bool keyed = req->op != CACHE_CLEAR && req->op != CACHE_KEYS;
    bool valued = req->op == CACHE_SET || req->op == CACHE_UPDATE || req->op == CACHE_APPEND ||
                  req->op == CACHE_PREPEND;
    /* As uWSGI's cache: an empty key or value, or one over its size, is refused unasked. */
    if (keyed && (req->klen == 0 || req->klen > r->keysize))
        return 0;
    if (valued && (req->vlen == 0 || req->vlen > r->blocksize))
        return 0;
    char ttl[24], blocksize[24];
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)req->expires);
    const char *argv[8];
    size_t lens[8];
    int argc = 0;
#define ARG(s, n) (argv[argc] = (s), lens[argc++] = (n))
#define LIT(s) ARG(s, sizeof(s) - 1)
    size_t klen = 0;
    switch (req->op) {
    case CACHE_GET:
    case CACHE_NUM:
        LIT("GET");
        break;
    case CACHE_EXISTS:
        LIT("EXISTS");
        break;
    case CACHE_SET:
    case CACHE_UPDATE:
        LIT("SET");
        break;
    case CACHE_DEL:
        LIT("DEL");
        break;
    case CACHE_CLEAR:
        LIT("EVAL");
        LIT(CLEAR_LUA);
        LIT("0");
        ARG(r->pattern, strlen(r->pattern));
        break;
    case CACHE_KEYS:
        LIT("KEYS");
        ARG(r->pattern, strlen(r->pattern));
        break;
    case CACHE_APPEND:
    case CACHE_PREPEND:
        LIT("EVAL");
        LIT(JOIN_LUA);
        LIT("1");
        break;
    case CACHE_INC:
    case CACHE_DEC:
    case CACHE_MUL:
    case CACHE_DIV:
        return do_math(r, req);
    }
    if (keyed) {
        const char *k = key_arg(r, req, &klen);
        ARG(k, klen);
    }
    if (valued)
        ARG(req->val, req->vlen);
    if (req->op == CACHE_SET)
        LIT("NX");
    if ((req->op == CACHE_SET || req->op == CACHE_UPDATE) && req->expires) {
        LIT("EX");
        ARG(ttl, strlen(ttl));
    }
    if (req->op == CACHE_APPEND || req->op == CACHE_PREPEND) {
        ARG(req->op == CACHE_APPEND ? "a" : "p", 1);
        snprintf(blocksize, sizeof(blocksize), "%zu", r->blocksize);
        ARG(blocksize, strlen(blocksize));
        ARG(ttl, strlen(ttl));
    }
#undef ARG
#undef LIT
    struct answer a;
    if (call(r, argc, argv, lens, req->op == CACHE_KEYS ? r->plen : 0, &a) < 0)
        return -1;
    int done = 0;
    switch (req->op) {
    case CACHE_GET:
    case CACHE_KEYS:
        if (a.obj) {
            *out = a.obj; /* the reference moves to the caller */
            a.obj = NULL;
            done = 1;
        }
        break;
    case CACHE_NUM:
        if (a.obj && PyBytes_GET_SIZE(a.obj) == 8) {
            int64_t n;
            memcpy(&n, PyBytes_AS_STRING(a.obj), 8);
            *out = PyLong_FromLongLong(n);
            done = *out ? 1 : -1;
        }
        break;
    case CACHE_SET:
    case CACHE_UPDATE:
    case CACHE_CLEAR:
        done = a.type != REDIS_REPLY_NIL; /* SET NX of a key that is there: nil */
        break;
    default: /* EXISTS, DEL, APPEND, PREPEND: an integer, 1 when done */
        done = a.type == REDIS_REPLY_INTEGER && a.integer >= 1;
        break;
    }
    answer_release(&a);
    return done;
}

/* ---- opening ------------------------------------------------------------------------------ */

struct cache_redis *cache_redis_open(const char *cache_name, const char *url, size_t keysize,
                                     size_t blocksize, char *err, size_t errlen)
{
    struct redis_url u;
    if (redis_url_parse(url, &u, err, errlen) < 0)
        return NULL;
    struct cache_redis *r = calloc(1, sizeof(*r));
    size_t nlen = strlen(cache_name);
    size_t plen = sizeof("gyre:cache:") - 1 + nlen + 1;
    if (r) {
        r->name = strdup(cache_name);
        r->url = strdup(url);
        r->kbuf = malloc(plen + keysize + 1);
        r->pattern = malloc(2 * plen + 2); /* every character escaped, then '*' */
    }
    if (!r || !r->name || !r->url || !r->kbuf || !r->pattern) {
        snprintf(err, errlen, "cache %s: out of memory", cache_name);
        if (r) {
            free(r->name);
            free(r->url);
            free(r->kbuf);
            free(r->pattern);
        }
        free(r);
        return NULL;
    }
    r->u = u;
    r->keysize = keysize;
    r->blocksize = blocksize;
    r->fd = -1;
    snprintf(r->kbuf, plen + 1, "gyre:cache:%s:", cache_name);
    r->plen = plen;
    char *p = r->pattern;
    for (size_t i = 0; i < plen; i++) {
        if (strchr("*?[]\\", r->kbuf[i]))
            *p++ = '\\';
        *p++ = r->kbuf[i];
    }
    *p++ = '*';
    *p = '\0';
    return r;
}
