/*
 * The `gyre` Python module: what an app running in a core can ask of the server.
 *
 *   gyre.wait(future_or_awaitable, timeout=None)  suspend the core until it resolves
 *   gyre.sleep(seconds)                           suspend the core for a while
 *   gyre.core_id()                                the core running this code, or None
 *   gyre.run_in_thread(fn, *args, **kw)           fn on a pool thread; only the core waits
 *   gyre.Harakiri                                 what --harakiri raises in a thread core
 *
 * Both waits park the core's greenlet and hand the loop a Resumer: a small callable that the
 * Future (add_done_callback) or the IOLoop timer calls, and that switches back into the core.
 * A thread core (--threads) has an OS thread of its own: it simply blocks, the GIL released,
 * while the loop runs what it waits for (boot.py's wait_in_thread).
 *
 * Depends on: cores.c, engine.c, log.c, server.c (server/README)
 */
#include "engine.h"
#include "log.h"
#include "core.h"
#include "server.h"

#include "boot_py.h"

#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static PyObject *NotInCoreError;
static unsigned long loop_thread; /* the thread that runs the loop and every core */
static PyObject *convert_yielded;
static PyObject *wait_in_thread; /* boot.py's, for gyre.wait in a thread core */
static PyObject *run_in_thread;  /* boot.py's gyre.run_in_thread */

typedef struct {
    PyObject_HEAD struct gy_core *core; /* NULL once the wait is over: a late call does nothing */
    uint64_t gen;
    bool fired;
} Resumer;

/* Running on the loop itself: its thread, and its own greenlet rather than a core's. */
static bool on_the_loop(void)
{
    return PyThread_get_thread_ident() == loop_thread && core_in_loop_greenlet();
}

static PyObject *resumer_call(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    Resumer *r = (Resumer *)self;
    struct gy_core *c = r->core;
    if (!c || r->fired)
        Py_RETURN_NONE;
    if (!on_the_loop()) {
        /* Only the loop may switch into a core (core_enter). A concurrent.futures.Future calls
         * its callbacks right where it is resolved: in its worker thread, or in the core of the
         * request that resolved it. Entering the waiting core from there would strand the
         * publisher (its greenlet's parent is the loop, so the waiter would come back to the
         * loop, not to it). Hand the call over to the loop instead: add_callback is
         * thread-safe, and runs it on the loop's next turn. */
        return PyObject_CallMethod(engine_ioloop(), "add_callback", "O", self);
    }
    r->fired = true;
    /* The core is still ours if it is serving the same request and still in this wait. */
    if (c->busy && c->gen == r->gen && (c->wait == WAIT_FUTURE || c->wait == WAIT_TIMER))
        core_enter(c);
    Py_RETURN_NONE;
}

static PyTypeObject ResumerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gyre._Resumer",
    .tp_basicsize = sizeof(Resumer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_call = resumer_call,
    .tp_doc = "switches back into a core suspended by gyre.wait or gyre.sleep",
};

static Resumer *resumer_new(struct gy_core *c)
{
    Resumer *r = PyObject_New(Resumer, &ResumerType);
    if (r) {
        r->core = c;
        r->gen = c->gen;
        r->fired = false;
    }
    return r;
}

static struct gy_core *require_core(const char *fn)
{
    struct gy_core *c = core_current();
    if (!c)
        PyErr_Format(NotInCoreError,
                     "%s() suspends a request core: call it from the WSGI app while it serves a "
                     "request, not from the loop, a pool thread or another greenlet",
                     fn);
    return c;
}

/* Park the core until `done` (or `timeout`, if given) fires. Returns 0, or -1 with an error. */
static int park(struct gy_core *c, enum core_wait wait, Resumer *done, Resumer *timeout)
{
    int rc = 0;
    while (!done->fired && !(timeout && timeout->fired)) {
        /* The app may also switch into its own greenlet; only our resumers end the wait. */
        if (core_suspend(c, wait) == IO_KILLED) {
            rc = -1;
            break;
        }
    }
    done->core = NULL;
    if (timeout)
        timeout->core = NULL;
    return rc;
}

/* gyre.sleep in a thread core: its own thread sleeps, the GIL released. */
static PyObject *sleep_in_thread(struct gy_core *c, double seconds)
{
    core_set_activity(c, CORE_WAIT_TIMER);
    PyObject *time = PyImport_ImportModule("time");
    PyObject *r = time ? PyObject_CallMethod(time, "sleep", "d", seconds > 0 ? seconds : 0) : NULL;
    Py_XDECREF(time);
    core_set_activity(c, CORE_RUNNING);
    return r;
}

static PyObject *gyre_sleep(PyObject *mod, PyObject *arg)
{
    (void)mod;
    double seconds = PyFloat_AsDouble(arg);
    if (seconds == -1.0 && PyErr_Occurred())
        return NULL;
    struct gy_core *c = require_core("gyre.sleep");
    if (!c)
        return NULL;
    if (c->thread)
        return sleep_in_thread(c, seconds);
    Resumer *done = resumer_new(c);
    if (!done)
        return NULL;
    PyObject *delay = PyFloat_FromDouble(seconds > 0 ? seconds : 0);
    PyObject *handle = delay ? PyObject_CallMethod(engine_ioloop(), "call_later", "OO", delay,
                                                   (PyObject *)done)
                             : NULL;
    Py_XDECREF(delay);
    int rc = handle ? park(c, WAIT_TIMER, done, NULL) : -1;
    if (rc < 0 && handle)
        engine_cancel(handle);
    Py_XDECREF(handle);
    Py_DECREF(done);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *gyre_wait(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    static char *kwlist[] = { "future", "timeout", NULL };
    PyObject *aw, *timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:wait", kwlist, &aw, &timeout_obj))
        return NULL;
    double timeout = -1;
    if (timeout_obj != Py_None) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (timeout < 0)
            timeout = 0;
    }
    struct gy_core *c = require_core("gyre.wait");
    if (!c)
        return NULL;
    if (c->thread) {
        core_set_activity(c, CORE_WAIT_FUTURE);
        PyObject *r = PyObject_CallFunction(wait_in_thread, "OO", aw, timeout_obj);
        core_set_activity(c, CORE_RUNNING);
        return r;
    }
    /* Futures, coroutines and other awaitables, as `await` in a Tornado coroutine takes them. */
    PyObject *fut = PyObject_CallOneArg(convert_yielded, aw);
    if (!fut)
        return NULL;
    PyObject *result = NULL, *handle = NULL;
    Resumer *done = NULL, *expired = NULL;
    PyObject *is_done = PyObject_CallMethod(fut, "done", NULL);
    if (!is_done)
        goto out;
    int already = PyObject_IsTrue(is_done);
    Py_DECREF(is_done);
    if (!already) {
        done = resumer_new(c);
        if (!done)
            goto out;
        PyObject *r = PyObject_CallMethod(fut, "add_done_callback", "O", (PyObject *)done);
        if (!r)
            goto out;
        Py_DECREF(r);
        if (timeout >= 0) {
            expired = resumer_new(c);
            PyObject *delay = expired ? PyFloat_FromDouble(timeout) : NULL;
            handle = delay ? PyObject_CallMethod(engine_ioloop(), "call_later", "OO", delay,
                                                 (PyObject *)expired)
                           : NULL;
            Py_XDECREF(delay);
            if (!handle)
                goto out;
        }
        if (park(c, WAIT_FUTURE, done, expired) < 0)
            goto out;
        if (!done->fired) {
            PyErr_Format(PyExc_TimeoutError, "gyre.wait() timed out after %g seconds", timeout);
            goto out;
        }
    }
    result = PyObject_CallMethod(fut, "result", NULL);
out:
    if (handle)
        engine_cancel(handle);
    if (done)
        done->core = NULL;
    if (expired)
        expired->core = NULL;
    Py_XDECREF(handle);
    Py_XDECREF((PyObject *)done);
    Py_XDECREF((PyObject *)expired);
    Py_DECREF(fut);
    return result;
}

static PyObject *gyre_core_id(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    struct gy_core *c = core_current();
    if (!c)
        Py_RETURN_NONE;
    return PyLong_FromLong(c->id);
}

/* ---- a precise clock for the loop's waits (boot.py's PreciseEpollSelector) ---------------- */

static PyObject *timerfd_create_(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(fd);
}

static PyObject *timerfd_arm(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "_timerfd_arm(fd, seconds)");
    long fd = PyLong_AsLong(args[0]);
    double t = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (t < 1e-9)
        t = 1e-9; /* 0 would disarm */
    struct itimerspec its = { .it_value = { .tv_sec = (time_t)t,
                                            .tv_nsec = (long)((t - (double)(time_t)t) * 1e9) } };
    if (timerfd_settime((int)fd, 0, &its, NULL) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *timerfd_disarm(PyObject *mod, PyObject *arg)
{
    (void)mod;
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    struct itimerspec off = { 0 };
    timerfd_settime((int)fd, 0, &off, NULL); /* also clears a timer that fired */
    Py_RETURN_NONE;
}

static PyObject *gyre_core_kind(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    struct gy_core *c = core_current();
    if (!c)
        Py_RETURN_NONE;
    return PyUnicode_FromString(c->thread ? "thread" : "greenlet");
}

static PyObject *loop_waits(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    cores_loop_waits();
    Py_RETURN_NONE;
}

static PyMethodDef gyre_methods[] = {
    { "wait", (PyCFunction)(void (*)(void))gyre_wait, METH_VARARGS | METH_KEYWORDS,
      "wait(future_or_awaitable, timeout=None)\n\n"
      "Suspend this request's core until the Tornado/asyncio Future (or coroutine, or other\n"
      "awaitable) finishes, without blocking the IOLoop; return its result or raise its\n"
      "exception. With a timeout, raise TimeoutError when it passes first." },
    { "sleep", gyre_sleep, METH_O,
      "sleep(seconds)\n\nSuspend this request's core for `seconds`; the IOLoop runs meanwhile." },
    { "core_id", gyre_core_id, METH_NOARGS, "core_id() -> the id of the running core, or None" },
    { "_core_kind", gyre_core_kind, METH_NOARGS,
      "_core_kind() -> 'greenlet', 'thread', or None outside a core" },
    { "_timerfd_create", timerfd_create_, METH_NOARGS, NULL },
    { "_loop_waits", loop_waits, METH_NOARGS, NULL },
    { "_timerfd_arm", (PyCFunction)(void (*)(void))timerfd_arm, METH_FASTCALL, NULL },
    { "_timerfd_disarm", timerfd_disarm, METH_O, NULL },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef gyre_module = {
    PyModuleDef_HEAD_INIT,
    "gyre",
    "The gyre application server's API for WSGI apps running in its greenlet cores.",
    -1,
    gyre_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyObject *PyInit_gyre(void)
{
    if (PyType_Ready(&ResumerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&gyre_module);
    if (!m)
        return NULL;
    NotInCoreError = PyErr_NewExceptionWithDoc("gyre.NotInCoreError",
                                               "a suspending call was made outside a request core",
                                               PyExc_RuntimeError, NULL);
    if (!NotInCoreError || PyModule_AddObjectRef(m, "NotInCoreError", NotInCoreError) < 0 ||
        (run_in_thread && PyModule_AddObjectRef(m, "run_in_thread", run_in_thread) < 0) ||
        !core_harakiri_error() || PyModule_AddObjectRef(m, "Harakiri", core_harakiri_error()) < 0 ||
        PyModule_AddStringConstant(m, "version", GYRE_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* Load boot.py (compiled into the binary) as the module _gyre_boot, and what gyre.wait needs. */
/* A list option as a Python list of str (file system encoding); NULL with an error set. */
static PyObject *str_list(const char *const *items, int n)
{
    PyObject *list = PyList_New(0);
    for (int i = 0; list && i < n; i++) {
        PyObject *s = PyUnicode_DecodeFSDefault(items[i]);
        if (!s || PyList_Append(list, s) < 0)
            Py_CLEAR(list);
        Py_XDECREF(s);
    }
    return list;
}

/* The options' Python environment (boot.py's configure): stdin, sys.path, --home, --mount.
 * A configuration error is one log line; anything else, a traceback. */
static int configure_python(PyObject *boot, const struct gy_config *cfg)
{
    PyObject *paths = str_list(cfg->pythonpath, cfg->npythonpath);
    PyObject *mounts = str_list(cfg->mounts, cfg->nmounts);
    PyObject *aliases = str_list(cfg->pymodule_aliases, cfg->npymodule_aliases);
    PyObject *imports = str_list(cfg->imports, cfg->nimports);
    PyObject *r = paths && mounts && aliases && imports
                      ? PyObject_CallMethod(boot, "configure", "zOOiidOOi", cfg->home, paths,
                                            mounts, cfg->manage_script_name, cfg->honour_stdin,
                                            cfg->py_autoreload, aliases, imports, S.link != NULL)
                      : NULL;
    Py_XDECREF(paths);
    Py_XDECREF(mounts);
    Py_XDECREF(aliases);
    Py_XDECREF(imports);
    if (r) {
        Py_DECREF(r);
        return 0;
    }
    /* Look SetupError up with the error put aside: no call may run with an exception set. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *setup_error = PyObject_GetAttrString(boot, "SetupError");
    PyErr_Clear();
    if (setup_error && type && PyErr_GivenExceptionMatches(type, setup_error)) {
        PyObject *msg = value ? PyObject_Str(value) : NULL;
        const char *u = msg ? PyUnicode_AsUTF8(msg) : NULL;
        log_msg("%s", u ? u : "bad Python environment");
        PyErr_Clear();
        Py_XDECREF(msg);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    } else {
        PyErr_Restore(type, value, tb);
        PyErr_Print();
    }
    Py_XDECREF(setup_error);
    return -1;
}

int pymodule_init(void)
{
    loop_thread = PyThread_get_thread_ident();
    PyObject *code = Py_CompileString(BOOT_PY, "<gyre boot.py>", Py_file_input);
    PyObject *mod = code ? PyImport_ExecCodeModule("_gyre_boot", code) : NULL;
    Py_XDECREF(code);
    /* gyre's Tornado first: a --home venv's packages come before the system's from here on. */
    PyObject *gen = mod ? PyImport_ImportModule("tornado.gen") : NULL;
    convert_yielded = gen ? PyObject_GetAttrString(gen, "convert_yielded") : NULL;
    Py_XDECREF(gen);
    wait_in_thread = convert_yielded ? PyObject_GetAttrString(mod, "wait_in_thread") : NULL;
    run_in_thread = wait_in_thread ? PyObject_GetAttrString(mod, "run_in_thread") : NULL;
    if (!run_in_thread) {
        Py_XDECREF(mod);
        PyErr_Print();
        return -1;
    }
    int rc = configure_python(mod, S.cfg);
    Py_DECREF(mod);
    return rc;
}
