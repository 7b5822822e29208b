/*
 * uWSGI signals in the `uwsgi` module, as Debian's uWSGI 2.0.21 gives them (signals.h: how the
 * worker and the master talk):
 *
 *   register_signal(num, target, handler)     target '', 'worker', 'workerN', 'workers',
 *                                             'active-workers' ('spooler', 'mule*': none here)
 *   signal(num)                               raise it: the master routes it to the target
 *   add_timer(num, secs) add_rb_timer(num, secs, iterations=0)
 *   add_cron(num, minute, hour, day, month, week) -> True
 *   add_file_monitor(num, path)
 *   signal_registered(num) -> True, or None
 *
 * Arguments parse as uWSGI's (num with "B": an unsigned byte, taken modulo 256 as uWSGI takes
 * it), and what the master refuses is uWSGI's ValueError ("unable to register signal", "unable
 * to add timer"...). Without a master, as in uWSGI, none of them can register anything.
 *
 * Where a handler runs: the master writes the number to this worker's socket, which the IOLoop
 * watches (uWSGI's own tornado engine never watches it: there, no handler ever runs). Each
 * delivery runs its handler in a free greenlet core, as a task (cores.c: core_run_task) that
 * the core runs as it runs a request, so that it may suspend (gyre.sleep) while the worker
 * serves requests. A handler takes a core only while another stays free: the request cores
 * then always include one that takes the queue's next request when it finishes, so a handler
 * never strands queued requests. Until a core is free the delivery waits, in order. A worker with one greenlet core
 * (the default --tornado 1) or with thread cores (--threads) runs its handlers on the loop
 * between events, as uWSGI's sync worker runs them between requests (gyre.sleep is not
 * available there). A handler that raises is logged with its traceback; the worker goes on.
 *
 * signal_wait() and signal_received() are absent: in uWSGI they block a request on the
 * signal sockets and take the signal away from its handler, a blocking wait no loop engine
 * offers (README: "uwsgi API").
 *
 * Depends on: cores.c, engine.c, log.c, pylog.c, server.c, signals.c (server/README)
 */
#include "core.h"
#include "engine.h"
#include "log.h"
#include "process.h"
#include "pylog.h"
#include "server.h"
#include "signals.h"

#include <string.h>

static PyObject *handlers[GY_SIGNALS]; /* this worker's: each worker registers its own */

/* Deliveries waiting for a core, oldest first. */
static uint8_t waiting[GY_SIGNALS];
static int nwaiting;
static struct engine_timer retry_timer; /* while they wait for a core */
static void drain(void *ctx);
static struct engine_task drain_task = { .fn = drain }; /* deliveries a request kept: run them */

static void run_waiting(void);

static int worker_id(void)
{
    return S.link ? S.link->id : 1;
}

/* A handler's exception: its traceback in one piece (pylog.c). */
static void log_handler_error(int sig)
{
    char first[128];
    snprintf(first, sizeof(first),
             "signal %d: its handler raised in worker %d (the worker goes on):", sig, worker_id());
    pylog_exception(first);
}

static void call_handler(int sig)
{
    PyObject *h = handlers[sig];
    if (!h) {
        log_msg("signal %d: worker %d has no handler registered for it", sig, worker_id());
        return;
    }
    Py_INCREF(h);
    PyObject *r = PyObject_CallFunction(h, "i", sig);
    Py_DECREF(h);
    if (!r)
        log_handler_error(sig);
    Py_XDECREF(r);
}

/* ---- a handler in a core -------------------------------------------------------------------- */

static PyObject *run_signal(PyObject *self, PyObject *unused)
{
    (void)unused;
    call_handler((int)PyLong_AsLong(self));
    Py_RETURN_NONE;
}

static PyMethodDef run_signal_def = { "_run_signal", run_signal, METH_NOARGS, NULL };

/* sig's handler as a task of a free greenlet core (cores.c). */
static bool run_in_core(int sig)
{
    PyObject *num = PyLong_FromLong(sig);
    PyObject *fn = num ? PyCFunction_New(&run_signal_def, num) : NULL;
    Py_XDECREF(num);
    if (!fn) {
        PyErr_Print();
        return false;
    }
    bool started = core_run_task(fn);
    Py_DECREF(fn);
    return started;
}

static bool two_free_cores(void)
{
    return S.free_cores && S.free_cores->next_free;
}

static void retry(void *ctx)
{
    (void)ctx;
    run_waiting();
}

/* From the loop: run the waiting deliveries while there is a place to run them. */
static void run_waiting(void)
{
    while (nwaiting > 0) {
        int sig = waiting[0];
        bool on_loop = S.ncores < 2 || S.cores[0].thread;
        if (!on_loop && !two_free_cores()) {
            engine_timer_arm(&retry_timer, 0.01, retry, NULL);
            return;
        }
        memmove(waiting, waiting + 1, (size_t)--nwaiting);
        if (on_loop || !run_in_core(sig))
            call_handler(sig);
    }
}

static void take_deliveries(void)
{
    int sig;
    while ((sig = signals_next()) >= 0) {
        if (nwaiting == GY_SIGNALS) {
            log_msg("signal %d: %d signals already wait for a core in worker %d: dropped", sig,
                    GY_SIGNALS, worker_id());
            continue;
        }
        waiting[nwaiting++] = (uint8_t)sig;
    }
    run_waiting();
}

static void on_signal_socket(void *ctx, int fd, int events)
{
    (void)ctx;
    (void)fd;
    (void)events;
    take_deliveries();
}

static void drain(void *ctx)
{
    (void)ctx;
    take_deliveries();
}

int uwsgi_signals_start(void)
{
    int fd = signals_worker_fd();
    const struct gy_config *cfg = S.cfg;
    if (!S.link && (cfg->ntimers || cfg->nrbtimers || cfg->ncrons || cfg->nfs_signals)) {
        /* The master runs them, as uWSGI's: without one they cannot be honoured. */
        log_msg("%s--timer, --rbtimer, --cron and --fs-signal need --master: ignored",
                cfg->strict ? "--strict: " : "warning: ");
        if (cfg->strict)
            return -1;
    }
    if (fd < 0)
        return 0;
    if (engine_watch(fd, EV_READ, on_signal_socket, NULL) < 0)
        return -1;
    engine_post(&drain_task); /* what came while the app loaded */
    return 0;
}

/* ---- the Python functions ----------------------------------------------------------------- */

/* One request to the master: NULL with uWSGI's ValueError(refused) if it said no. */
static PyObject *ask_master(struct sig_msg *m, const char *refused, PyObject *ok)
{
    if (!S.link) {
        /* uWSGI's line, and its error */
        log_msg("you cannot register signals without a master");
        return PyErr_Format(PyExc_ValueError, "%s", refused);
    }
    int rc = signals_request(m);
    engine_post(&drain_task); /* deliveries that came with the reply */
    if (rc < 0)
        return PyErr_Format(PyExc_ValueError, "%s", refused);
    return Py_NewRef(ok);
}

static PyObject *uwsgi_register_signal(PyObject *mod, PyObject *args)
{
    (void)mod;
    unsigned char sig;
    const char *target;
    PyObject *handler;
    if (!PyArg_ParseTuple(args, "BsO:register_signal", &sig, &target, &handler))
        return NULL;
    if (strlen(target) > GY_SIGNAL_TARGET_MAX - 1)
        return PyErr_Format(PyExc_ValueError, "unable to register signal");
    struct sig_msg m = { .op = SIGOP_REGISTER, .sig = sig };
    snprintf(m.text, sizeof(m.text), "%s", target);
    PyObject *r = ask_master(&m, "unable to register signal", Py_None);
    if (!r)
        return NULL;
    Py_INCREF(handler);
    Py_XSETREF(handlers[sig], handler);
    log_msg("[uwsgi-signal] signum %d registered (wid: %d modifier1: 0 target: %s)", sig,
            worker_id(), *target ? target : "default, any worker");
    return r;
}

static PyObject *uwsgi_signal(PyObject *mod, PyObject *args)
{
    (void)mod;
    unsigned char sig;
    const char *remote = NULL;
    if (!PyArg_ParseTuple(args, "B|s:signal", &sig, &remote))
        return NULL;
    if (remote)
        return PyErr_Format(PyExc_OSError,
                            "unable to deliver signal %d to node %s: gyre does not send signals "
                            "to other nodes",
                            sig, remote);
    if (!S.link) {
        log_msg("signal %d: no master to route it: not delivered", sig);
        Py_RETURN_NONE;
    }
    struct sig_msg m = { .op = SIGOP_SIGNAL, .sig = sig };
    return ask_master(&m, "unable to deliver signal", Py_None);
}

static PyObject *uwsgi_add_timer(PyObject *mod, PyObject *args)
{
    (void)mod;
    unsigned char sig;
    int secs;
    if (!PyArg_ParseTuple(args, "Bi:add_timer", &sig, &secs))
        return NULL;
    struct sig_msg m = { .op = SIGOP_TIMER, .sig = sig, .args = { secs } };
    return ask_master(&m, "unable to add timer", Py_None);
}

static PyObject *uwsgi_add_rb_timer(PyObject *mod, PyObject *args)
{
    (void)mod;
    unsigned char sig;
    int secs, iterations = 0;
    if (!PyArg_ParseTuple(args, "Bi|i:add_rb_timer", &sig, &secs, &iterations))
        return NULL;
    struct sig_msg m = { .op = SIGOP_RBTIMER, .sig = sig, .args = { secs, iterations } };
    return ask_master(&m, "unable to add rb_timer", Py_None);
}

static PyObject *uwsgi_add_cron(PyObject *mod, PyObject *args)
{
    (void)mod;
    unsigned char sig;
    int f[5];
    if (!PyArg_ParseTuple(args, "Biiiii:add_cron", &sig, &f[0], &f[1], &f[2], &f[3], &f[4]))
        return NULL;
    struct sig_msg m = { .op = SIGOP_CRON, .sig = sig, .args = { f[0], f[1], f[2], f[3], f[4] } };
    return ask_master(&m, "unable to add cron", Py_True);
}

static PyObject *uwsgi_add_file_monitor(PyObject *mod, PyObject *args)
{
    (void)mod;
    unsigned char sig;
    const char *path;
    if (!PyArg_ParseTuple(args, "Bs:add_file_monitor", &sig, &path))
        return NULL;
    if (strlen(path) > GY_SIGNAL_PATH_MAX - 2) {
        log_msg("uwsgi_add_file_monitor: invalid filename length");
        return PyErr_Format(PyExc_ValueError, "unable to add file monitor");
    }
    struct sig_msg m = { .op = SIGOP_FILEMON, .sig = sig };
    snprintf(m.text, sizeof(m.text), "%s", path);
    return ask_master(&m, "unable to add file monitor", Py_None);
}

static PyObject *uwsgi_signal_registered(PyObject *mod, PyObject *args)
{
    (void)mod;
    unsigned char sig;
    if (!PyArg_ParseTuple(args, "B:signal_registered", &sig))
        return NULL;
    if (handlers[sig])
        Py_RETURN_TRUE;
    Py_RETURN_NONE;
}

#define F(name, doc)                                                                               \
    {                                                                                              \
#name, uwsgi_##name, METH_VARARGS, doc                                                     \
    }
PyMethodDef uwsgi_signals_methods[] = {
    F(register_signal, "register_signal(num, target, handler): handler(num) runs in the "
                       "target's worker(s) when signal num is raised"),
    F(signal, "signal(num): raise uWSGI signal num (the master routes it)"),
    F(add_timer, "add_timer(num, secs): the master raises num every secs seconds"),
    F(add_rb_timer, "add_rb_timer(num, secs, iterations=0): a timer that stops after "
                    "iterations (0: never)"),
    F(add_cron, "add_cron(num, minute, hour, day, month, week) -> True: raise num in each "
                "matching minute (-1: any, -N: every N)"),
    F(add_file_monitor, "add_file_monitor(num, path): raise num when path changes"),
    F(signal_registered, "signal_registered(num) -> True if this worker has a handler, else None"),
    { NULL, NULL, 0, NULL },
};
#undef F
