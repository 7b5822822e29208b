/*
 * Python's exceptions in gyre's log: the traceback rendered whole, then written at once.
 *
 * Depends on: log.c (server/README)
 */
#include <Python.h>

#include "log.h"
#include "pylog.h"

/* The traceback as traceback.format_exception renders it (what PyErr_Print prints), or NULL
 * with a Python error set. */
static PyObject *render(PyObject *type, PyObject *value, PyObject *tb)
{
    PyObject *mod = PyImport_ImportModule("traceback");
    PyObject *lines = mod ? PyObject_CallMethod(mod, "format_exception", "OOO", type,
                                                value ? value : Py_None, tb ? tb : Py_None)
                          : NULL;
    PyObject *empty = lines ? PyUnicode_FromString("") : NULL;
    PyObject *text = empty ? PyUnicode_Join(empty, lines) : NULL;
    Py_XDECREF(empty);
    Py_XDECREF(lines);
    Py_XDECREF(mod);
    return text;
}

/* One write() of text to sys.stderr: a single call of its write() flushed at once. A text
 * stream passes one call on to its buffer and that buffer to the file in one piece. */
static int write_stderr(PyObject *text)
{
    PyObject *err = PySys_GetObject("stderr"); /* borrowed */
    if (!err || err == Py_None)
        return -1;
    if (PyFile_WriteObject(text, err, Py_PRINT_RAW) < 0)
        return -1;
    PyObject *r = PyObject_CallMethod(err, "flush", NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

void pylog_exception(const char *first)
{
    if (first)
        log_msg("%s", first);
    if (!PyErr_Occurred())
        return;
    if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
        PyErr_PrintEx(0);
        return;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    PyObject *text = render(type, value, tb);
    if (text && write_stderr(text) == 0) {
        Py_DECREF(text);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return;
    }
    /* Rendering or writing failed (sys.stderr replaced by something odd): as before. */
    Py_XDECREF(text);
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
    PyErr_PrintEx(0);
}
