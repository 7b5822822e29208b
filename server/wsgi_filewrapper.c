/*
 * wsgi.file_wrapper (PEP 3333's optional platform-specific file handling): an iterable over a
 * file-like object; when a regular file is behind it, wsgi_send.c sends it with sendfile(2).
 *
 * Depends on: no other server file (server/README)
 */
#include "wsgi.h"

#include <limits.h>
#include <sys/stat.h>

static struct {
    PyObject *str_close, *str_fileno;
} W;

typedef struct {
    PyObject_HEAD PyObject *filelike;
    Py_ssize_t blksize;
} FileWrapper;

static int filewrapper_init(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "filelike", "blksize", NULL };
    FileWrapper *fw = (FileWrapper *)self;
    PyObject *filelike;
    Py_ssize_t blksize = 65536;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:file_wrapper", kwlist, &filelike, &blksize))
        return -1;
    if (blksize <= 0)
        blksize = 65536;
    Py_XSETREF(fw->filelike, Py_NewRef(filelike));
    fw->blksize = blksize;
    return 0;
}

static PyObject *filewrapper_next(PyObject *self)
{
    FileWrapper *fw = (FileWrapper *)self;
    PyObject *chunk = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);
    if (!chunk)
        return NULL;
    if (PyObject_Length(chunk) == 0) {
        Py_DECREF(chunk);
        return NULL; /* StopIteration */
    }
    return chunk;
}

static PyObject *filewrapper_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    FileWrapper *fw = (FileWrapper *)self;
    if (PyObject_HasAttr(fw->filelike, W.str_close))
        return PyObject_CallMethodNoArgs(fw->filelike, W.str_close);
    Py_RETURN_NONE;
}

static void filewrapper_dealloc(PyObject *self)
{
    FileWrapper *fw = (FileWrapper *)self;
    Py_XDECREF(fw->filelike);
    Py_TYPE(self)->tp_free(self);
}

static PyMethodDef filewrapper_methods[] = {
    { "close", filewrapper_close, METH_NOARGS, "close the file" },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject FileWrapperType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gyre.FileWrapper",
    .tp_basicsize = sizeof(FileWrapper),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = filewrapper_init,
    .tp_dealloc = filewrapper_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = filewrapper_next,
    .tp_methods = filewrapper_methods,
    .tp_doc = "wsgi.file_wrapper: a regular file's contents go out with sendfile(2)",
};

bool filewrapper_source(PyObject *o, int *fd, off_t *offset, uint64_t *count)
{
    FileWrapper *fw = (FileWrapper *)o;
    PyObject *r = PyObject_CallMethodNoArgs(fw->filelike, W.str_fileno);
    if (!r) {
        PyErr_Clear();
        return false;
    }
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v < 0 || v > INT_MAX) {
        PyErr_Clear();
        return false;
    }
    /* Python file objects buffer: flush pending writes, honour the position the app left. */
    PyObject *t = PyObject_CallMethod(fw->filelike, "tell", NULL);
    long long pos = t ? PyLong_AsLongLong(t) : -1;
    Py_XDECREF(t);
    if (pos < 0) {
        PyErr_Clear();
        return false;
    }
    struct stat st;
    if (fstat((int)v, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    *fd = (int)v;
    *offset = (off_t)pos;
    *count = st.st_size > pos ? (uint64_t)(st.st_size - pos) : 0;
    return true;
}

bool filewrapper_check(PyObject *o)
{
    return Py_IS_TYPE(o, &FileWrapperType);
}

PyObject *filewrapper_type(void)
{
    return (PyObject *)&FileWrapperType;
}

int filewrapper_init_type(void)
{
    W.str_close = PyUnicode_InternFromString("close");
    W.str_fileno = PyUnicode_InternFromString("fileno");
    if (!W.str_close || !W.str_fileno)
        return -1;
    return PyType_Ready(&FileWrapperType);
}
