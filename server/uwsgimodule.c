/*
 * The `uwsgi` Python module: uWSGI's API for the apps gyre serves, as Debian's uWSGI 2.0.21
 * gives it under `--plugin python3` (names, signatures, bytes or str, errors). What it covers
 * and what not yet is README's "uwsgi API" section.
 *
 *   opt, numproc, started_on, hostname, version, version_info, cores, buffer_size, ...
 *   worker_id() masterpid() mule_id() total_requests() request_id() workers()
 *   log(msg) reload() stop() set_logvar(k, v) get_logvar(k) micros() mem()
 *   lock(n=0) unlock(n=0) is_locked(n=0)    --locks N: n from 0 to N, across the workers
 *   post_fork_hook                           called in each worker once its app is loaded
 *
 * Locks: robust, process-shared pthread mutexes (locks.c), made before the master forks its
 * workers. A worker that dies holding one leaves it to the next taker (EOWNERDEAD: made
 * consistent). The
 * greenlet cores of a worker share one OS thread, so a core cannot block on the mutex: it
 * tries it, and while another process holds it, or another core of its own worker does (the
 * per-process `held` record), the core sleeps on the IOLoop (gyre.sleep) and tries again, backed
 * off from 1 ms to 50 ms. A thread core, or code outside any core, blocks with the GIL released.
 *
 * Depends on: uwsgi_async.c, uwsgi_cache.c, uwsgi_metrics.c, uwsgi_process.c, uwsgi_signals.c,
 *     uwsgi_websocket.c,
 *     cores.c, ini.c, locks.c, log.c, scoreboard.c, server.c (server/README)
 */
#include "core.h"
#include "log.h"
#include "process.h"
#include "server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* uwsgi.version_info: the uWSGI API level gyre follows (core.h's UWSGI_API_VERSION). */
#define UWSGI_API_MAJOR 2
#define UWSGI_API_MINOR 0
#define UWSGI_API_REV 21

/* ---- locks ------------------------------------------------------------------------------- */

static bool held[GY_MAX_LOCKS + 1];                   /* this process holds it (any core/thread) */
static unsigned long holder_thread[GY_MAX_LOCKS + 1]; /* ... on this OS thread */
static PyObject *gyre_sleep_fn;

/* A mutex whose holder died is ours now, and consistent again. */
static int ulock_taken(struct gy_lock *l, int rc, int n)
{
    if (rc == EOWNERDEAD) {
        log_msg("uwsgi.lock(%d): its holder (pid %d) died holding it: taken over", n, (int)l->pid);
        pthread_mutex_consistent(&l->m);
        rc = 0;
    }
    if (rc == 0) {
        l->pid = getpid();
        held[n] = true;
        holder_thread[n] = PyThread_get_thread_ident();
    }
    return rc;
}

/* n from the optional argument, checked as uWSGI checks it (0..--locks); -1 with an error. */
static int lock_number(PyObject *args, const char *fmt)
{
    int n = 0;
    if (!PyArg_ParseTuple(args, fmt, &n))
        return -1;
    if (n < 0 || n > S.cfg->locks) {
        PyErr_SetString(PyExc_ValueError, "Invalid lock number");
        return -1;
    }
    if (!S.locks.slots) {
        PyErr_SetString(PyExc_OSError, "uwsgi locks: the shared mapping could not be made");
        return -1;
    }
    return n;
}

/* A greenlet core: try, and sleep on the loop while someone else holds it. */
static PyObject *lock_in_greenlet(struct gy_lock *l, int n)
{
    double delay = 0.001;
    for (;;) {
        if (!held[n]) {
            int rc = ulock_taken(l, pthread_mutex_trylock(&l->m), n);
            if (rc == 0)
                Py_RETURN_NONE;
            if (rc != EBUSY) {
                errno = rc;
                return PyErr_SetFromErrno(PyExc_OSError);
            }
        }
        if (!gyre_sleep_fn) {
            PyObject *gyre = PyImport_ImportModule("gyre");
            gyre_sleep_fn = gyre ? PyObject_GetAttrString(gyre, "sleep") : NULL;
            Py_XDECREF(gyre);
            if (!gyre_sleep_fn)
                return NULL;
        }
        PyObject *r = PyObject_CallFunction(gyre_sleep_fn, "d", delay);
        if (!r)
            return NULL; /* the core was cancelled (--harakiri, a stop) */
        Py_DECREF(r);
        if (delay < 0.05)
            delay *= 2;
    }
}

static PyObject *uwsgi_lock(PyObject *mod, PyObject *args)
{
    (void)mod;
    int n = lock_number(args, "|i:lock");
    if (n < 0)
        return NULL;
    struct gy_lock *l = locks_at(&S.locks, n);
    struct gy_core *c = core_current();
    if (c && !c->thread)
        return lock_in_greenlet(l, n);
    if (held[n] && holder_thread[n] == PyThread_get_thread_ident() && !c)
        return PyErr_Format(PyExc_RuntimeError,
                            "uwsgi.lock(%d): a request core of this worker holds it; waiting "
                            "for it outside a core would block the loop that runs that core",
                            n);
    int rc;
    PyThreadState *ts = PyEval_SaveThread(); /* the GIL released while it blocks */
    rc = pthread_mutex_lock(&l->m);
    PyEval_RestoreThread(ts);
    rc = ulock_taken(l, rc, n);
    if (rc == EDEADLK)
        return PyErr_Format(PyExc_RuntimeError, "uwsgi.lock(%d): this thread holds it already", n);
    if (rc) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *uwsgi_unlock(PyObject *mod, PyObject *args)
{
    (void)mod;
    int n = lock_number(args, "|i:unlock");
    if (n < 0)
        return NULL;
    struct gy_lock *l = locks_at(&S.locks, n);
    /* As uWSGI: unlocking a lock not held (or held by another thread) does nothing. */
    if (held[n]) {
        l->pid = 0;
        if (pthread_mutex_unlock(&l->m) == 0)
            held[n] = false;
    }
    Py_RETURN_NONE;
}

static PyObject *uwsgi_is_locked(PyObject *mod, PyObject *args)
{
    (void)mod;
    int n = lock_number(args, "|i:is_locked");
    if (n < 0)
        return NULL;
    struct gy_lock *l = locks_at(&S.locks, n);
    if (held[n])
        Py_RETURN_TRUE;
    int rc = pthread_mutex_trylock(&l->m);
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&l->m);
        rc = 0;
    }
    if (rc == 0) {
        pthread_mutex_unlock(&l->m);
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

/* ---- process and request info ------------------------------------------------------------ */

static int numproc(void)
{
    return S.link && S.cfg->processes > 0 ? S.cfg->processes : 1;
}

static PyObject *uwsgi_worker_id(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromLong(S.link ? S.link->id : 1);
}

static PyObject *uwsgi_masterpid(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromLong(S.link ? (long)S.link->master : 0);
}

static PyObject *uwsgi_mule_id(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromLong(0); /* gyre has no mules: a worker is never one */
}

/* The live slot of worker `id`: its newest process (during a reload an id has two). */
static struct sb_worker *worker_slot(int id)
{
    struct sb_worker *best = NULL;
    for (int i = 0; i < S.board.nslots; i++) {
        struct sb_worker *w = scoreboard_slot(&S.board, i);
        if (w->id != id)
            continue;
        if (w == S.slot)
            return w;
        if (!best || w->started > best->started)
            best = w;
    }
    return best;
}

static PyObject *uwsgi_total_requests(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    unsigned long long total = 0;
    for (int i = 0; i < S.board.nslots; i++) {
        struct sb_worker *w = scoreboard_slot(&S.board, i);
        if (w->id > 0)
            total += w->requests;
    }
    return PyLong_FromUnsignedLongLong(total);
}

static PyObject *uwsgi_request_id(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    /* uWSGI's: the requests this core served before the current one. */
    struct gy_core *c = core_current();
    if (!c || !S.slot)
        return PyLong_FromLong(0);
    return PyLong_FromUnsignedLongLong(S.slot->cores[c->id].requests);
}

/* One uWSGI-style dict entry; returns -1 with an error set. */
static int set_item(PyObject *d, const char *key, PyObject *v)
{
    int rc = v ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

static PyObject *worker_dict(int id, struct sb_worker *w)
{
    bool me = w == S.slot;
    int busy = me ? S.busy : w->busy;
    unsigned long long requests = w->requests;
    unsigned long long avg = requests ? w->rt_us / requests : 0;
    PyObject *d = PyDict_New();
    PyObject *app = PyDict_New();
    if (!d || !app || set_item(app, "id", PyLong_FromLong(0)) < 0 ||
        set_item(app, "modifier1", PyLong_FromLong(0)) < 0 ||
        set_item(app, "mountpoint", PyBytes_FromString("")) < 0 ||
        set_item(app, "startup_time", PyLong_FromLong(0)) < 0 ||
        set_item(app, "requests", PyLong_FromUnsignedLongLong(requests)) < 0 ||
        set_item(app, "exceptions", PyLong_FromUnsignedLongLong(w->exceptions)) < 0 ||
        set_item(app, "chdir", PyBytes_FromString(S.cfg->chdir ? S.cfg->chdir : "")) < 0 ||
        set_item(d, "id", PyLong_FromLong(id)) < 0 ||
        set_item(d, "pid", PyLong_FromLong((long)w->pid)) < 0 ||
        set_item(d, "requests", PyLong_FromUnsignedLongLong(requests)) < 0 ||
        set_item(d, "delta_requests", PyLong_FromUnsignedLongLong(requests)) < 0 ||
        set_item(d, "signals", PyLong_FromLong(0)) < 0 ||
        set_item(d, "exceptions", PyLong_FromUnsignedLongLong(w->exceptions)) < 0 ||
        set_item(d, "status", PyBytes_FromString(busy > 0 ? "busy" : "idle")) < 0 ||
        set_item(d, "rss", PyLong_FromLong(0)) < 0 || set_item(d, "vsz", PyLong_FromLong(0)) < 0 ||
        set_item(d, "running_time", PyLong_FromUnsignedLongLong(w->rt_us)) < 0 ||
        set_item(d, "last_spawn", PyLong_FromLong((long)w->started)) < 0 ||
        set_item(d, "respawn_count", PyLong_FromUnsignedLongLong(w->respawns)) < 0 ||
        set_item(d, "tx", PyLong_FromUnsignedLongLong(w->tx)) < 0 ||
        set_item(d, "avg_rt", PyLong_FromUnsignedLongLong(avg)) < 0 ||
        set_item(d, "apps", PyTuple_Pack(1, app)) < 0) {
        Py_XDECREF(d);
        Py_XDECREF(app);
        return NULL;
    }
    Py_DECREF(app);
    return d;
}

static PyObject *uwsgi_workers(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    int n = numproc();
    PyObject *list = PyList_New(0);
    for (int id = 1; list && id <= n; id++) {
        struct sb_worker *w = worker_slot(id);
        if (!w)
            continue;
        PyObject *d = worker_dict(id, w);
        if (!d || PyList_Append(list, d) < 0)
            Py_CLEAR(list);
        Py_XDECREF(d);
    }
    PyObject *t = list ? PyList_AsTuple(list) : NULL;
    Py_XDECREF(list);
    return t;
}

static PyObject *uwsgi_micros(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/* (rss, vsz) of this process, in bytes, as uWSGI's. */
static PyObject *uwsgi_mem(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%llu %llu", &size, &resident) != 2)
        size = resident = 0;
    if (f)
        fclose(f);
    unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
    return Py_BuildValue("(KK)", resident * page, size * page);
}

static PyObject *uwsgi_log(PyObject *mod, PyObject *args)
{
    (void)mod;
    const char *msg;
    if (!PyArg_ParseTuple(args, "s:log", &msg))
        return NULL;
    log_msg("%s", msg);
    Py_RETURN_TRUE;
}

/* reload() and stop(): a signal to the master, as uWSGI's (SIGHUP: graceful reload; gyre's
 * master stops gracefully on SIGTERM). Without a master, to the only process itself: SIGTERM
 * stops it gracefully, SIGHUP is logged and ignored (uWSGI's only process exits on it). */
static PyObject *signal_master(int sig)
{
    if (kill(S.link ? S.link->master : getpid(), sig) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_TRUE;
}

static PyObject *uwsgi_reload(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return signal_master(SIGHUP);
}

static PyObject *uwsgi_stop(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return signal_master(SIGTERM);
}

/* set_logvar/get_logvar: the core's dict for the request it serves (cores.c empties it when
 * the core takes its next request; wsgi.c renders it in the request's log line). */
static PyObject *core_logvars(bool create)
{
    struct gy_core *c = core_current();
    if (c && !c->logvars && create)
        c->logvars = PyDict_New();
    return c ? c->logvars : NULL;
}

static PyObject *uwsgi_set_logvar(PyObject *mod, PyObject *args)
{
    (void)mod;
    const char *k, *v;
    if (!PyArg_ParseTuple(args, "ss:set_logvar", &k, &v))
        return NULL;
    PyObject *d = core_logvars(true);
    if (!d)
        return PyErr_Occurred()
                   ? NULL
                   : PyErr_Format(PyExc_RuntimeError, "set_logvar() outside a request");
    PyObject *value = PyBytes_FromString(v);
    PyObject *key = PyUnicode_FromString(k);
    int rc = key && value ? PyDict_SetItem(d, key, value) : -1;
    Py_XDECREF(key);
    Py_XDECREF(value);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *uwsgi_get_logvar(PyObject *mod, PyObject *args)
{
    (void)mod;
    const char *k;
    if (!PyArg_ParseTuple(args, "s:get_logvar", &k))
        return NULL;
    PyObject *d = core_logvars(false);
    PyObject *key = d ? PyUnicode_FromString(k) : NULL;
    PyObject *v = key ? PyDict_GetItemWithError(d, key) : NULL;
    Py_XDECREF(key);
    if (v)
        return Py_NewRef(v);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *uwsgi_none(PyObject *mod, PyObject *args)
{
    (void)mod;
    (void)args;
    Py_RETURN_NONE;
}

/* The calls of subsystems gyre does not have yet: present (so that an app or uwsgidecorators
 * imports), and a clear error when used. */
static PyObject *not_yet(PyObject *mod, PyObject *args, const char *name, const char *what)
{
    (void)mod;
    (void)args;
    return PyErr_Format(PyExc_NotImplementedError,
                        "uwsgi.%s(): gyre does not provide %s yet (README: \"uwsgi API\")", name,
                        what);
}

#define NOT_YET(name, what)                                                                        \
    static PyObject *uwsgi_##name(PyObject *mod, PyObject *args)                                   \
    {                                                                                              \
        return not_yet(mod, args, #name, what);                                                    \
    }
NOT_YET(spool, "a spooler")
NOT_YET(mule_msg, "mules")
NOT_YET(mule_get_msg, "mules")
NOT_YET(farm_msg, "mules")
NOT_YET(farm_get_msg, "mules")
NOT_YET(register_rpc, "RPC")

#define F(name, flags, doc)                                                                        \
    {                                                                                              \
#name, (PyCFunction)(void (*)(void))uwsgi_##name, flags, doc                               \
    }
static PyMethodDef uwsgi_methods[] = {
    F(worker_id, METH_NOARGS, "worker_id() -> this worker's id, 1..numproc"),
    F(masterpid, METH_NOARGS, "masterpid() -> the master's pid, 0 without --master"),
    F(mule_id, METH_NOARGS, "mule_id() -> 0: gyre has no mules"),
    F(total_requests, METH_NOARGS, "total_requests() -> requests served by all the workers"),
    F(request_id, METH_NOARGS, "request_id() -> requests this core served before this one"),
    F(workers, METH_NOARGS, "workers() -> a tuple of dicts, one per worker, as uWSGI's"),
    F(log, METH_VARARGS, "log(msg) -> True: msg as a line of gyre's log"),
    F(micros, METH_NOARGS, "micros() -> the time, in microseconds since the epoch"),
    F(mem, METH_NOARGS, "mem() -> (rss, vsz) of this process, in bytes"),
    F(reload, METH_NOARGS, "reload() -> True: the master reloads the workers gracefully"),
    F(stop, METH_NOARGS, "stop() -> True: the master stops gracefully"),
    F(set_logvar, METH_VARARGS, "set_logvar(key, value): a variable of this request"),
    F(get_logvar, METH_VARARGS, "get_logvar(key) -> bytes, or None"),
    F(lock, METH_VARARGS, "lock(n=0): take user lock n (0..--locks), shared by the workers"),
    F(unlock, METH_VARARGS, "unlock(n=0): release user lock n"),
    F(is_locked, METH_VARARGS, "is_locked(n=0) -> whether anyone holds user lock n"),
    { "i_am_the_spooler", uwsgi_none, METH_NOARGS, "i_am_the_spooler() -> None: no spooler" },
    { "in_farm", uwsgi_none, METH_VARARGS, "in_farm(name) -> None: no mules, no farms" },
    F(spool, METH_VARARGS | METH_KEYWORDS, "not provided yet: raises NotImplementedError"),
    F(mule_msg, METH_VARARGS, "not provided yet: raises NotImplementedError"),
    F(mule_get_msg, METH_VARARGS | METH_KEYWORDS, "not provided yet: raises NotImplementedError"),
    F(farm_msg, METH_VARARGS, "not provided yet: raises NotImplementedError"),
    F(farm_get_msg, METH_VARARGS, "not provided yet: raises NotImplementedError"),
    F(register_rpc, METH_VARARGS, "not provided yet: raises NotImplementedError"),
    { NULL, NULL, 0, NULL },
};
#undef F

static struct PyModuleDef uwsgi_module = {
    PyModuleDef_HEAD_INIT,
    "uwsgi",
    NULL, /* as uWSGI's: no __doc__ */
    -1,
    uwsgi_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* uwsgi.opt: every option given, in order; a value as bytes, a bare switch True, and an option
 * given again its last value (Debian's 2.0.21 keeps the last). */
static PyObject *options_dict(void)
{
    PyObject *d = PyDict_New();
    for (struct config_entry *e = config_entries(); d && e; e = e->next) {
        PyObject *v = e->value ? PyBytes_FromString(e->value) : Py_NewRef(Py_True);
        if (!v || PyDict_SetItemString(d, e->key, v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

/* When the instance started: the master's (or the only process's) start, in epoch seconds. */
static long started_on(void)
{
    pid_t pid = S.link ? S.link->master : getpid();
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    /* Field 22 (starttime, in clock ticks after boot); fields from 3 follow the ")". */
    char *p = strrchr(buf, ')');
    unsigned long long ticks = 0;
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p)
        ticks = strtoull(p + 1, NULL, 10);
    unsigned long long btime = 0;
    f = fopen("/proc/stat", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    if (f)
        fclose(f);
    if (!ticks || !btime)
        return (long)time(NULL);
    return (long)(btime + ticks / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* PyModule_AddObjectRef, the reference stolen (3.13's PyModule_Add); v may be NULL (error). */
static int module_add(PyObject *m, const char *name, PyObject *v)
{
    int rc = v ? PyModule_AddObjectRef(m, name, v) : -1;
    Py_XDECREF(v);
    return rc;
}

PyObject *PyInit_uwsgi(void)
{
    PyObject *m = PyModule_Create(&uwsgi_module);
    if (!m)
        return NULL;
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    PyObject *version_info = Py_BuildValue("(iiiiy)", UWSGI_API_MAJOR, UWSGI_API_MINOR,
                                           UWSGI_API_REV, 0, "gyre");
    if (PyModule_AddFunctions(m, uwsgi_async_methods) < 0 ||
        PyModule_AddFunctions(m, uwsgi_metrics_methods) < 0 ||
        PyModule_AddFunctions(m, uwsgi_process_methods) < 0 ||
        PyModule_AddFunctions(m, uwsgi_signals_methods) < 0 ||
        PyModule_AddFunctions(m, uwsgi_websocket_methods) < 0 ||
        module_add(m, "sockets", uwsgi_process_sockets()) < 0 ||
        module_add(m, "opt", options_dict()) < 0 ||
        PyModule_AddIntConstant(m, "numproc", numproc()) < 0 ||
        module_add(m, "started_on", PyLong_FromLong(started_on())) < 0 ||
        module_add(m, "hostname", PyBytes_FromString(host)) < 0 ||
        module_add(m, "version", PyBytes_FromString(UWSGI_VERSION_STRING)) < 0 ||
        module_add(m, "version_info", version_info) < 0 ||
        PyModule_AddIntConstant(m, "cores", S.ncores) < 0 ||
        PyModule_AddIntConstant(m, "buffer_size", (long)S.cfg->buffer_size) < 0 ||
        PyModule_AddIntConstant(m, "has_threads", 1) < 0 ||
        PyModule_AddObjectRef(m, "is_a_reload", Py_False) < 0 ||
        PyModule_AddObjectRef(m, "loop", Py_None) < 0 ||
        PyModule_AddObjectRef(m, "applications", Py_None) < 0 ||
        PyModule_AddObjectRef(m, "unbit", Py_None) < 0 ||
        PyModule_AddIntConstant(m, "SPOOL_OK", -2) < 0 ||
        PyModule_AddIntConstant(m, "SPOOL_RETRY", -1) < 0 ||
        PyModule_AddIntConstant(m, "SPOOL_IGNORE", 0) < 0 ||
        PyModule_AddFunctions(m, uwsgi_cache_methods) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* uWSGI calls uwsgi.post_fork_hook in each worker after the fork: uwsgidecorators' @postfork
 * chain. gyre's worker loads its app after the fork, so: once it is loaded. An error is
 * printed, and the worker goes on, as in uWSGI. */
void uwsgimodule_post_fork(void)
{
    PyObject *name = PyUnicode_FromString("uwsgi");
    PyObject *m = name ? PyImport_GetModule(name) : NULL; /* imported by the app, or NULL */
    Py_XDECREF(name);
    PyObject *hook = m ? PyObject_GetAttrString(m, "post_fork_hook") : NULL;
    Py_XDECREF(m);
    if (!hook) {
        PyErr_Clear();
        return;
    }
    PyObject *r = PyCallable_Check(hook) ? PyObject_CallNoArgs(hook) : Py_NewRef(Py_None);
    Py_DECREF(hook);
    if (!r)
        PyErr_Print();
    Py_XDECREF(r);
}
