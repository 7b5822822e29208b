/*
 * Greenlet cores.
 *
 * A core is a greenlet whose parent is the loop's (main) greenlet. The loop switches into it to
 * start a request or to end one of gyre's waits (core_enter); the core switches back to the loop
 * when it waits (core_suspend), when it goes idle, or when the app suspends it itself with
 * `greenlet.getcurrent().parent.switch()`, as the Tornado loop engine's example does.
 *
 * Who keeps a suspended core alive decides how it can end. While gyre waits for it (socket,
 * gyre.sleep, gyre.wait) gyre holds a reference. While the app has suspended it, gyre holds none:
 * only what the app gave the greenlet to (a timer, a future's callback) can resume it. If
 * nothing did, the greenlet is unreachable and has to be failed, or the core is lost for good:
 *   - with no reference left at all, greenlet kills it on deallocation (GreenletExit);
 *   - a greenlet whose own suspended frames still refer to it (`me = getcurrent()` in a local,
 *     as in the seed example) is never collected: greenlet does not let the cycle collector
 *     touch a suspended greenlet. The sweep finds those by counting references: when every
 *     reference to the greenlet comes from its own frames, nothing outside can ever switch to it,
 *     and gyre throws GreenletExit into it.
 * Either way the request gets a 500 and a log line, and the core is freed.
 *
 * A core runs synchronous code, so it must not look like a coroutine to the libraries that ask:
 * while a core runs there is no *running* asyncio loop (asyncio.get_running_loop() raises, as
 * in any WSGI server; Django's async-safety check passes), while asyncio.get_event_loop() and
 * IOLoop.current() still return the loop gyre runs, which keeps running gyre.wait's coroutines.
 * asyncio keeps the running loop in a per-thread slot, which greenlet switches do not touch.
 * Emptying it on every switch into a core (a greenlet tracer did) costs two getpid() system
 * calls and an allocation per switch in CPython 3.11's _asyncio, about 7 us per request here.
 * Instead the question is answered where it is asked: boot.py replaces asyncio's
 * get_running_loop/_get_running_loop (the names the app and its libraries call) with versions
 * that say "no running loop" on the loop's thread outside the loop's greenlet, and pass through
 * everywhere else. No path into a core can forget it, and it costs nothing unless asked.
 * asyncio's own C code (get_event_loop, Future()) still sees the loop: what a core creates
 * belongs to the loop gyre runs.
 *
 * Depends on: conn.c, engine.c, frame_stack.c, listen.c, log.c, pylog.c, server.c, threads.c,
 * wsgi.c (server/README)
 */
#include "engine.h"
#include "log.h"
#include "conn.h"
#include "core.h"
#include "frame_stack.h"
#include "listen.h"
#include "pylog.h"
#include "server.h"

#include <errno.h>
#include <greenlet.h>
#include <stdlib.h>
#include <string.h>

/* App-suspended cores are checked for reachability once they have slept this long: most
 * suspensions are short, and the check materialises frame locals. */
#define ABANDON_CHECK_AFTER 1.0

static struct conn_runner cores_runner;
static PyObject *main_greenlet;    /* the loop's greenlet, every core's parent */
static PyObject *none_args;        /* (None,): what a core hands the loop when it switches there */
static PyObject *internal_refs_fn; /* boot.py's greenlet_internal_refs */
static PyObject *stack_fn;         /* boot.py's greenlet_stack */

static PyObject *core_run(PyObject *self, PyObject *unused);
static PyMethodDef core_run_def = { "_core_run", core_run, METH_NOARGS, NULL };

static struct gy_core *core_of(PyObject *capsule)
{
    return PyCapsule_GetPointer(capsule, NULL);
}

/*
 * Back to the loop's greenlet. Whatever switched into the core gets None from its switch(): an
 * app's timer callback `me.switch` returns it to Tornado's _run_callback, which takes any other
 * value (a bare switch gives ()) for something to yield and raises and catches a BadYieldError
 * over it, about 1.3 us per resumed request.
 */
static PyObject *switch_to_loop(void)
{
    return PyGreenlet_Switch((PyGreenlet *)main_greenlet, none_args, NULL);
}

static void own_greenlet(struct gy_core *c)
{
    if (!c->gr_owned) {
        Py_INCREF(c->gr);
        c->gr_owned = true;
    }
}

static void disown_greenlet(struct gy_core *c)
{
    if (c->gr_owned) {
        c->gr_owned = false;
        Py_DECREF(c->gr);
    }
}

/* boot.py's hide_running_loop_in_cores: asyncio's running-loop getters answer "none" in a
 * core (see the top of the file). */
static int hide_running_loop_in_cores(PyObject *boot)
{
    PyObject *r = PyObject_CallMethod(boot, "hide_running_loop_in_cores", "O", main_greenlet);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *harakiri_error;  /* gyre.Harakiri */
static PyObject *thread_stack_fn; /* boot.py's thread_stack */

PyObject *core_harakiri_error(void)
{
    /* Made on first use: the gyre module (which exports it) may be imported before the
     * cores are set up. */
    if (!harakiri_error)
        harakiri_error = PyErr_NewExceptionWithDoc(
            "gyre.Harakiri",
            "raised in a thread core whose request ran past --harakiri (a BaseException: an "
            "app's `except Exception` does not swallow it)",
            PyExc_BaseException, NULL);
    return harakiri_error;
}

static void thread_core_main(void *arg);

/* --threads without --tornado: each core is an OS thread, parked until dispatch hands it a
 * request. */
static int start_thread_cores(const struct gy_config *cfg)
{
    for (int i = 0; i < S.ncores; i++) {
        struct gy_core *c = &S.cores[i];
        c->thread = calloc(1, sizeof(*c->thread));
        if (c->thread)
            snprintf(c->thread->name, sizeof(c->thread->name), "gyreWorker%dCore%d", S.slot->id,
                     c->id);
        if (!c->thread ||
            thread_start(c->thread, cfg->thread_stacksize_kb, thread_core_main, c) < 0)
            return -1;
    }
    return 0;
}

int cores_init(const struct gy_config *cfg)
{
    int n = cfg->cores;
    PyGreenlet_Import();
    if (!_PyGreenlet_API) {
        PyErr_Print();
        log_msg("cannot load greenlet's C API (is python3-greenlet installed?)");
        return -1;
    }
    main_greenlet = (PyObject *)PyGreenlet_GetCurrent();
    none_args = PyTuple_Pack(1, Py_None);
    if (!none_args) {
        PyErr_Print();
        return -1;
    }
    cores_runner.write_behind = cfg->thread_cores ? (size_t)cfg->write_behind_size : 0;
    cores_runner.read_ahead = cfg->thread_cores;
    conn_set_runner(&cores_runner);
    S.cores = calloc((size_t)n, sizeof(*S.cores));
    if (!S.cores)
        return -1;
    S.ncores = n;
    if (!cfg->thread_cores && frame_stack_init(n) < 0)
        log_msg("cannot reserve the cores' frame stacks (%s): greenlets get CPython's own",
                strerror(errno));
    for (int i = n - 1; i >= 0; i--) {
        struct gy_core *c = &S.cores[i];
        c->id = i;
        c->next_free = S.free_cores;
        S.free_cores = c;
    }
    PyObject *boot = core_harakiri_error() ? PyImport_ImportModule("_gyre_boot") : NULL;
    internal_refs_fn = boot ? PyObject_GetAttrString(boot, "greenlet_internal_refs") : NULL;
    stack_fn = boot ? PyObject_GetAttrString(boot, "greenlet_stack") : NULL;
    thread_stack_fn = boot ? PyObject_GetAttrString(boot, "thread_stack") : NULL;
    int rc = internal_refs_fn && stack_fn && thread_stack_fn ? hide_running_loop_in_cores(boot)
                                                             : -1;
    /* --threads with --tornado: the threads are a pool beside the greenlet cores, asyncio's
     * default executor (boot.py's use_thread_pool). */
    if (rc == 0) {
        PyObject *r = PyObject_CallMethod(boot, "set_ioloop", "O", engine_ioloop());
        rc = r ? 0 : -1;
        Py_XDECREF(r);
    }
    if (rc == 0 && cfg->threads && !cfg->thread_cores) {
        PyObject *r = PyObject_CallMethod(boot, "use_thread_pool", "Oik", engine_ioloop(),
                                          cfg->threads, cfg->thread_stacksize_kb);
        rc = r ? 0 : -1;
        Py_XDECREF(r);
    }
    Py_XDECREF(boot);
    if (rc < 0)
        PyErr_Print();
    if (rc == 0 && cfg->thread_cores)
        rc = start_thread_cores(cfg);
    return rc;
}

static PyObject *core_greenlet(struct gy_core *c)
{
    if (c->gr)
        return c->gr;
    PyObject *self = PyCapsule_New(c, NULL, NULL);
    PyObject *run = self ? PyCFunction_New(&core_run_def, self) : NULL;
    Py_XDECREF(self);
    if (!run)
        return NULL;
    c->gr = (PyObject *)PyGreenlet_New(run, (PyGreenlet *)main_greenlet);
    Py_DECREF(run);
    c->gr_owned = c->gr != NULL;
    return c->gr;
}

void core_set_activity(struct gy_core *c, enum core_activity a)
{
    S.slot->cores[c->id].activity = (uint8_t)a;
}

/* A core starts on a request (conn), or on a task (conn NULL): its per-request state afresh. */
static void take_core(struct gy_core *c, struct gy_conn *conn)
{
    core_set_activity(c, CORE_RUNNING);
    S.slot->busy = S.busy;
    c->conn = conn;
    c->harakiri = false;
    c->user_harakiri = 0;
    c->harakiri_from = 0;
    c->request_end = NULL;
    Py_CLEAR(c->logvars); /* the last request's, kept until now for its log line */
    c->log_this = false;
    c->stuck = false;
    c->gen++;
    c->switches = 0;
    c->app_suspended = false;
    c->wait = WAIT_NONE;
    if (conn) { /* NULL: a task (core_run_task) */
        conn->core = c;
        conn->phase = CONN_IN_CORE;
    }
}

/* The one place the cores tell the listeners that what accepting depends on changed: the
 * busy cores, the queue of parsed requests, the open connections. */
static void load_changed(void)
{
    listen_update();
}

static void release_core(struct gy_core *c)
{
    c->busy = false;
    c->conn = NULL;
    c->app_suspended = false;
    c->wait = WAIT_NONE;
    c->next_free = S.free_cores;
    S.free_cores = c;
    S.busy--;
    S.slot->busy = S.busy;
    core_set_activity(c, CORE_IDLE);
    load_changed();
}

static void housekeeping_start(void);

/*
 * Thread cores share one GIL: a second thread woken while one runs Python only waits for it,
 * and every such wake and wait is a context switch. A running thread core takes the queue's
 * next request itself when it is done, so a queued request is left to it for a moment
 * (THREAD_QUEUE_WAIT); only a request still queued after that (the running ones are blocked
 * in the app, or slow) wakes another thread. Hello world then runs on one hot thread, and a
 * blocking app still gets all its threads, a millisecond later.
 */
#define THREAD_QUEUE_WAIT 0.001

static struct engine_timer queue_timer;
static void dispatch(void);

static void queue_waited(void *ctx)
{
    (void)ctx;
    dispatch();
}

static bool leave_to_running_thread(void)
{
    if (!S.cores[0].thread)
        return false; /* greenlet cores: switching into one costs no context switch */
    bool running = false;
    for (int i = 0; i < S.ncores && !running; i++)
        running = S.cores[i].busy && S.slot->cores[i].activity == CORE_RUNNING;
    if (!running)
        return false;
    const struct gy_conn *oldest = link_entry(S.pending.next, struct gy_conn, queue_link);
    double waited = engine_now() - oldest->started;
    if (waited >= THREAD_QUEUE_WAIT)
        return false;
    engine_timer_arm(&queue_timer, THREAD_QUEUE_WAIT - waited, queue_waited, NULL);
    return true;
}

/* From the loop: start the queued requests while a core is free, oldest first. */
static void dispatch(void)
{
    while (S.free_cores && !link_empty(&S.pending)) {
        if (leave_to_running_thread())
            break;
        struct gy_core *c = S.free_cores;
        if (!c->thread && !core_greenlet(c)) {
            PyErr_Print();
            break;
        }
        S.free_cores = c->next_free;
        c->busy = true;
        S.busy++;
        take_core(c, conn_pending_pop());
        load_changed();
        housekeeping_start();
        core_enter(c);
    }
    load_changed();
}

static struct gy_core *wake_list; /* thread cores core_enter handed work to */

void cores_loop_waits(void)
{
    while (wake_list) {
        struct gy_core *c = wake_list;
        wake_list = c->next_wake;
        c->wake_queued = false;
        thread_unpark(c->thread);
    }
}

void core_enter(struct gy_core *c)
{
    if (c->thread) {
        /* A thread core runs on by itself: wake it when the loop next waits
         * (cores_loop_waits), and the loop goes on meanwhile. */
        c->wait = WAIT_NONE;
        c->switches++;
        if (!c->wake_queued) {
            c->wake_queued = true;
            c->next_wake = wake_list;
            wake_list = c;
        }
        return;
    }
    /* Only the loop may switch into a core: a core's parent is the loop's greenlet, so a core
     * entered from another core would come back to the loop, stranding the one that entered. */
    PyObject *gr = c->gr;
    Py_INCREF(gr);
    c->wait = WAIT_NONE;
    c->switches++;
    PyObject *r = PyGreenlet_Switch((PyGreenlet *)gr, NULL, NULL);
    if (!r) {
        PyErr_Print();
    }
    Py_XDECREF(r);
    if (c->busy && c->gr == gr && c->wait == WAIT_NONE && !c->app_suspended) {
        /* Back in the loop with the request neither finished nor waiting on gyre: the app
         * suspended the core itself. Let go, so that only what the app handed the greenlet
         * to keeps it alive. */
        c->app_suspended = true;
        c->suspended_since = engine_now();
        core_set_activity(c, CORE_APP_SUSPENDED);
        disown_greenlet(c);
    }
    Py_DECREF(gr); /* may kill an unreachable greenlet right here, which answers 500 */
}

int core_suspend(struct gy_core *c, enum core_wait wait)
{
    c->wait = wait;
    c->wake = IO_OK;
    c->app_suspended = false;
    if (wait != WAIT_FD) /* wait_client says which way the fd is awaited */
        core_set_activity(c, wait == WAIT_TIMER       ? CORE_WAIT_TIMER
                             : wait == WAIT_WEBSOCKET ? CORE_WAIT_WEBSOCKET
                                                      : CORE_WAIT_FUTURE);
    if (c->thread) {
        thread_park(c->thread); /* until core_enter, from the loop */
        c->wait = WAIT_NONE;
        core_set_activity(c, CORE_RUNNING);
        return c->wake;
    }
    own_greenlet(c);
    PyObject *r = switch_to_loop();
    c->wait = WAIT_NONE;
    core_set_activity(c, CORE_RUNNING);
    if (!r)
        return IO_KILLED;
    Py_DECREF(r);
    return c->wake;
}

struct gy_core *core_current(void)
{
    if (!engine_on_loop_thread()) {
        unsigned long me = PyThread_get_thread_ident();
        for (int i = 0; i < S.ncores; i++)
            if (S.cores[i].thread && S.cores[i].busy && S.cores[i].thread->ident == me)
                return &S.cores[i];
        return NULL; /* a pool thread, or one the app started */
    }
    PyObject *cur = (PyObject *)PyGreenlet_GetCurrent();
    if (!cur)
        return NULL;
    struct gy_core *found = NULL;
    /* A scan: cores are few and the callers (gyre.wait, gyre.sleep) are not per-byte paths. */
    for (int i = 0; i < S.ncores && !found; i++)
        if (S.cores[i].busy && S.cores[i].gr == cur)
            found = &S.cores[i];
    Py_DECREF(cur);
    return found;
}

bool core_in_loop_greenlet(void)
{
    PyObject *cur = (PyObject *)PyGreenlet_GetCurrent();
    Py_XDECREF(cur); /* only its identity is compared: the greenlet itself lives on */
    return cur == main_greenlet;
}

static void dispatch_later(void *ctx)
{
    (void)ctx;
    dispatch();
}

/* Out of line, so that its buffer is not part of core_run's frame: greenlet copies that frame
 * aside at every suspend of the core. */
__attribute__((noinline)) static void log_task_error(const struct gy_core *c)
{
    char first[64];
    snprintf(first, sizeof(first), "core %d: its task raised:", c->id);
    pylog_exception(first);
}

/* A task in its core: false when the greenlet is being killed (a stop) and must end now. */
static bool run_task(struct gy_core *c)
{
    PyObject *fn = c->task;
    c->task = NULL;
    PyObject *r = PyObject_CallNoArgs(fn);
    Py_DECREF(fn);
    if (r) {
        Py_DECREF(r);
        return true;
    }
    if (PyErr_ExceptionMatches(PyExc_GreenletExit)) {
        PyErr_Clear();
        return false;
    }
    log_task_error(c);
    return true;
}

bool core_run_task(PyObject *fn)
{
    struct gy_core *c = S.free_cores;
    if (!c || c->thread)
        return false;
    if (!core_greenlet(c)) {
        PyErr_Print();
        return false;
    }
    S.free_cores = c->next_free;
    c->busy = true;
    S.busy++;
    take_core(c, NULL);
    c->task = Py_NewRef(fn);
    load_changed();
    core_enter(c);
    return true;
}

/* The greenlet's run(): serve requests until told to end. */
static PyObject *core_run(PyObject *self, PyObject *unused)
{
    (void)unused;
    struct gy_core *c = core_of(self);
    frame_stack_adopt();
    for (;;) {
        if (!(c->task ? run_task(c) : wsgi_serve(c))) {
            /* The request was abandoned and this greenlet is being killed: it must end now,
             * without switching anywhere. The next request gets a fresh greenlet. */
            disown_greenlet(c);
            c->gr = NULL;
            release_core(c);
            PyObject *t = engine_call_later(0, dispatch_later, NULL);
            if (!t)
                PyErr_Clear();
            Py_XDECREF(t);
            Py_RETURN_NONE;
        }
        /* Take the next queued request in this same greenlet: no round trip through the loop. */
        struct gy_conn *next = conn_pending_pop();
        if (next) {
            take_core(c, next);
            load_changed();
            continue;
        }
        release_core(c);
        own_greenlet(c);
        /* Idle until dispatch hands over a connection. An app may still switch in (a timer
         * it forgot to cancel holds `me.switch`): ignore that and go back to sleep. */
        do {
            PyObject *r = switch_to_loop();
            if (!r) {
                /* Killed while idle: only happens when the interpreter goes away. */
                PyErr_Clear();
                disown_greenlet(c);
                c->gr = NULL;
                Py_RETURN_NONE;
            }
            Py_DECREF(r);
            if (!c->busy)
                log_msg("core %d: the app switched into it while it was idle (a stale "
                        "greenlet.switch); ignored",
                        c->id);
        } while (!c->busy);
    }
}

/* A thread core's thread: serve what dispatch hands over, then the queue's next requests,
 * then park until dispatch wakes it again. */
static void thread_core_main(void *arg)
{
    struct gy_core *c = arg;
    PyObject *boot = PyImport_ImportModule("_gyre_boot");
    PyObject *r = boot ? PyObject_CallMethod(boot, "name_thread", "s", c->thread->name) : NULL;
    if (!r)
        PyErr_Print();
    Py_XDECREF(r);
    Py_XDECREF(boot);
    for (;;) {
        while (!c->busy)
            thread_park(c->thread);
        for (;;) {
            wsgi_serve(c);
            if (c->harakiri) {
                /* The request is over: a harakiri exception not raised yet must not hit the
                 * next one. */
                thread_raise(c->thread, NULL);
                PyErr_Clear();
                if (c->stuck) {
                    c->stuck = false;
                    S.stuck_cores--;
                }
            }
            struct gy_conn *next = conn_pending_pop();
            if (!next)
                break;
            take_core(c, next);
            load_changed();
        }
        release_core(c);
    }
}

static void check_one(struct gy_core *c, double now)
{
    if (!c->busy || !c->app_suspended || c->gr_owned || !c->gr ||
        now - c->suspended_since < ABANDON_CHECK_AFTER)
        return;
    PyObject *gr = c->gr;
    PyObject *n = PyObject_CallOneArg(internal_refs_fn, gr);
    if (!n) {
        PyErr_Print();
        return;
    }
    Py_ssize_t internal = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    if (internal < 0 || Py_REFCNT(gr) > internal)
        return; /* something outside the greenlet's own frames can still switch to it */
    log_msg("core %d: the app suspended its greenlet %.1f s ago and nothing can resume it "
            "(no reference to it outside its own frames): failing the request",
            c->id, now - c->suspended_since);
    Py_INCREF(gr);
    PyObject *r = PyGreenlet_Throw((PyGreenlet *)gr, PyExc_GreenletExit, NULL, NULL);
    if (!r)
        PyErr_Clear(); /* GreenletExit comes back out of a greenlet that did not catch it */
    Py_XDECREF(r);
    Py_DECREF(gr);
}

static void check_abandoned(double now)
{
    for (int i = 0; i < S.ncores; i++)
        check_one(&S.cores[i], now);
}

/* When a busy core's request is past its time: --harakiri from its start, or the limit the app
 * set itself with uwsgi.set_user_harakiri, whichever comes first; 0: never. */
static double harakiri_deadline(const struct gy_core *c)
{
    double from = c->harakiri_from > 0 ? c->harakiri_from : c->conn->started;
    double limit = S.cfg->harakiri > 0 ? from + S.cfg->harakiri : 0;
    if (c->user_harakiri > 0 && (limit == 0 || c->user_harakiri < limit))
        limit = c->user_harakiri;
    return limit;
}

static void log_harakiri(struct gy_core *c, double now, PyObject *stack)
{
    const char *text = stack ? PyUnicode_AsUTF8(stack) : NULL;
    if (!text)
        PyErr_Clear();
    char why[64], first[240];
    if (c->user_harakiri > 0 && c->user_harakiri <= now)
        snprintf(why, sizeof(why), "uwsgi.set_user_harakiri");
    else
        snprintf(why, sizeof(why), "--harakiri %g", S.cfg->harakiri);
    snprintf(first, sizeof(first),
             "core %d: harakiri: the request has run for %.1f s (%s): "
             "cancelling it. Its stack, most recent call last:",
             c->id, now - c->conn->started, why);
    log_lines(first, text ? text : "  (unavailable)\n");
}

/* A thread cannot be killed: --harakiri raises gyre.Harakiri in it, which ends a request busy
 * in Python code. One stuck in C (a sleep, a blocking call) never sees it: past
 * --harakiri-grace the worker is recycled (worker.c's heartbeat reads S.stuck_cores). */
static void thread_harakiri(struct gy_core *c, double now)
{
    if (!c->harakiri) {
        c->harakiri = true;
        c->harakiri_at = now;
        PyObject *ident = PyLong_FromUnsignedLong(c->thread->ident);
        PyObject *stack = ident ? PyObject_CallOneArg(thread_stack_fn, ident) : NULL;
        log_harakiri(c, now, stack);
        Py_XDECREF(stack);
        Py_XDECREF(ident);
        thread_raise(c->thread, harakiri_error);
        return;
    }
    if (c->stuck || now - c->harakiri_at < S.cfg->harakiri_grace)
        return;
    c->stuck = true;
    S.stuck_cores++;
    wsgi_answer_stuck(c);
    log_msg("core %d: still running %.1f s after its harakiri exception (stuck outside Python: "
            "a sleep, a blocking call): %s",
            c->id, now - c->harakiri_at,
            S.link ? "the worker will be recycled" : "without --master it cannot be recycled");
}

/* --harakiri for one request: every request runs in its own core, so only that core is
 * cancelled (GreenletExit thrown where it is suspended); the worker's other requests go on. A
 * core can only be found running too long while it is suspended: the sweep runs on the loop.
 * A loop that never gets back control is the master's to kill. */
static void check_harakiri(double now)
{
    for (int i = 0; i < S.ncores; i++) {
        struct gy_core *c = &S.cores[i];
        /* A core parked in websocket_recv is idle, not stuck: its clock restarts when the
         * call returns (harakiri_from, websocket.c). */
        double deadline = c->busy && c->conn && c->wait != WAIT_WEBSOCKET ? harakiri_deadline(c)
                                                                          : 0;
        if (deadline == 0 || now < deadline)
            continue;
        if (c->thread) {
            thread_harakiri(c, now);
            continue;
        }
        if (!c->gr || c->harakiri)
            continue;
        c->harakiri = true;
        PyObject *gr = c->gr;
        Py_INCREF(gr);
        PyObject *stack = PyObject_CallOneArg(stack_fn, gr);
        log_harakiri(c, now, stack);
        Py_XDECREF(stack);
        PyObject *r = PyGreenlet_Throw((PyGreenlet *)gr, PyExc_GreenletExit, NULL, NULL);
        if (!r)
            PyErr_Clear();
        Py_XDECREF(r);
        Py_DECREF(gr);
    }
}

/* ---- housekeeping: a timer of the cores' own, while any is busy ---------------------------- */

static PyObject *housekeeping_timer;

static void housekeeping(void *ctx)
{
    (void)ctx;
    Py_CLEAR(housekeeping_timer);
    double now = engine_now();
    check_abandoned(now);
    check_harakiri(now);
    if (S.busy > 0)
        housekeeping_start();
}

/* Once a second while a core is busy: abandoned cores and --harakiri. */
static void housekeeping_start(void)
{
    if (housekeeping_timer)
        return;
    housekeeping_timer = engine_call_later(1.0, housekeeping, NULL);
    if (!housekeeping_timer)
        PyErr_Print();
}

/* ---- memory accounting (--stats) ------------------------------------------------------------ */

/* The bytes of an environ: its dict and the values it alone holds (the keys are interned strings
 * shared by every request, and short values are shared too: wsgi_environ.c). */
static uint64_t environ_bytes(PyObject *env)
{
    uint64_t n = _PySys_GetSizeOf(env);
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(env, &pos, &k, &v))
        if ((PyBytes_CheckExact(v) || PyUnicode_CheckExact(v)) && Py_REFCNT(v) == 1)
            n += _PySys_GetSizeOf(v);
    if (PyErr_Occurred())
        PyErr_Clear();
    return n;
}

void cores_account_memory(struct sb_memory *m)
{
    uint64_t busy = 0, parked = 0, greenlets = 0, stack = 0, buffered = 0, buffers = 0, env = 0;
    for (int i = 0; i < S.ncores; i++) {
        struct gy_core *c = &S.cores[i];
        if (c->gr)
            greenlets++;
        if (!c->busy)
            continue;
        busy++;
        bool suspended = c->wait != WAIT_NONE || c->app_suspended;
        if (suspended && !c->thread)
            parked++;
        if (suspended && c->gr) {
            /* greenlet copies the part of the C stack between the greenlet's start and its
             * switch out to the heap; _stack_saved is that copy's size. */
            PyObject *n = PyObject_GetAttrString(c->gr, "_stack_saved");
            if (n && PyLong_Check(n))
                stack += PyLong_AsUnsignedLongLong(n);
            Py_XDECREF(n);
            PyErr_Clear();
        }
        if (c->conn) {
            buffered += c->conn->len;
            buffers += c->conn->cap;
        }
        if (c->environ)
            env += environ_bytes(c->environ);
    }
    m->busy = busy;
    m->parked = parked;
    m->greenlets = greenlets;
    m->frame_stack = frame_stack_in_use() * frame_stack_chunk_size();
    m->greenlet_stack = stack;
    m->conns = (uint64_t)S.nconns;
    m->conn_alloc = (uint64_t)S.nconns * conn_alloc_size() + buffers;
    m->conn_buffered = buffered;
    m->environ = env;
}

/* ---- what conn.c asks of the cores ---------------------------------------------------------- */

static void on_request_queued(void)
{
    dispatch();
}

static enum io_result suspend_on_socket(struct gy_conn *c, bool reading)
{
    core_set_activity(c->core, reading ? CORE_WAIT_READ : CORE_WAIT_WRITE);
    return (enum io_result)core_suspend(c->core, WAIT_FD);
}

static void resume_from_socket(struct gy_conn *c, enum io_result rc)
{
    c->core->wake = rc;
    core_enter(c->core);
}

static struct conn_runner cores_runner = {
    .request_queued = on_request_queued,
    .conn_closed = load_changed,
    .suspend = suspend_on_socket,
    .resume = resume_from_socket,
};
