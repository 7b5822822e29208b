/*
 * uwsgi.metric_inc/dec/mul/div/set/set_max/set_min/get: the `uwsgi` module's metrics calls, as
 * Debian's uWSGI 2.0.21 gives them (plugins/python/uwsgi_pymodule.c): a str name and an
 * optional int value (1 when not given, for set too); True when done, None when uWSGI refuses
 * (an unknown name, an alias, a collected metric, a division by 0, no metrics); metric_get an
 * int, 0 for an unknown name. A value beyond a C long raises OverflowError, a non-int
 * TypeError, both from the argument parsing, as there. The store is metrics.c's.
 *
 * Depends on: metrics.c (server/README)
 */
#include "core.h"
#include "metrics.h"

static PyObject *update(PyObject *args, const char *format, enum metric_op op)
{
    const char *name;
    long value = 1;
    if (!PyArg_ParseTuple(args, format, &name, &value))
        return NULL;
    if (metrics_update(&METRICS, name, op, (int64_t)value) < 0)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

#define UPDATE(fn, op)                                                                             \
    static PyObject *uwsgi_##fn(PyObject *mod, PyObject *args)                                     \
    {                                                                                              \
        (void)mod;                                                                                 \
        return update(args, "s|l:" #fn, op);                                                       \
    }
UPDATE(metric_inc, METRIC_INC)
UPDATE(metric_dec, METRIC_DEC)
UPDATE(metric_mul, METRIC_MUL)
UPDATE(metric_div, METRIC_DIV)
UPDATE(metric_set, METRIC_SET)
UPDATE(metric_set_max, METRIC_SET_MAX)
UPDATE(metric_set_min, METRIC_SET_MIN)
#undef UPDATE

static PyObject *uwsgi_metric_get(PyObject *mod, PyObject *args)
{
    (void)mod;
    const char *name;
    if (!PyArg_ParseTuple(args, "s:metric_get", &name))
        return NULL;
    return PyLong_FromLongLong((long long)metrics_get(&METRICS, name));
}

PyMethodDef uwsgi_metrics_methods[] = {
    { "metric_inc", uwsgi_metric_inc, METH_VARARGS,
      "metric_inc(name, value=1) -> True, or None (unknown, alias or collected metric)" },
    { "metric_dec", uwsgi_metric_dec, METH_VARARGS, "metric_dec(name, value=1) -> True or None" },
    { "metric_mul", uwsgi_metric_mul, METH_VARARGS, "metric_mul(name, value=1) -> True or None" },
    { "metric_div", uwsgi_metric_div, METH_VARARGS,
      "metric_div(name, value=1) -> True or None (also for a division by 0)" },
    { "metric_set", uwsgi_metric_set, METH_VARARGS, "metric_set(name, value=1) -> True or None" },
    { "metric_set_max", uwsgi_metric_set_max, METH_VARARGS,
      "metric_set_max(name, value=1) -> True or None: the value, if larger" },
    { "metric_set_min", uwsgi_metric_set_min, METH_VARARGS,
      "metric_set_min(name, value=1) -> True or None: the value, if smaller and above the "
      "initial value (uWSGI's test)" },
    { "metric_get", uwsgi_metric_get, METH_VARARGS,
      "metric_get(name) -> int: the value shared by the workers (0 for an unknown name)" },
    { NULL, NULL, 0, NULL },
};
