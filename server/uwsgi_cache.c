/*
 * uwsgi.cache_*: uWSGI's cache API as Debian's uWSGI 2.0.21 gives it under --plugin python3
 * (names, argument formats, defaults, answers), over the caches of --cache2/--cache:
 *
 *   cache_get(key[, cache])                   bytes, or None
 *   cache_set(key, value[, expires[, cache]]) True; None if the key is there already
 *   cache_update(key, value[, expires[, cache]])   True (set, overwriting)
 *   cache_del(key[, cache]) cache_exists(key[, cache])   True, or None
 *   cache_clear([cache])                      True
 *   cache_keys([cache])                       a list of bytes
 *   cache_inc/dec(key[, n=1[, expires[, cache]]]) cache_mul/div(key[, n=2[, ...]])  True
 *   cache_num(key[, cache])                   the 64-bit number stored by those, 0 if none
 *
 * None, as in uWSGI, for what is not done: a missing key, a value over the cache's blocksize,
 * a key over its keysize, a full cache, a cache name that does not exist (no cache configured
 * at all included); cache_keys of an unknown cache raises ValueError as uWSGI's does. uWSGI's
 * remote form "name@host:port" is refused with NotImplementedError: gyre has no cache server
 * (a Redis store shares a cache across hosts instead). uWSGI 2.0.21 has no cache_append or
 * cache_prepend in its Python module: neither has gyre (the stores have them, cache_ops.h).
 *
 * Each call is one cache_do() (cache.c) with the cache's mutex held inside it only: never
 * across Python code, so that a greenlet core holds the loop for one operation at most. The GIL
 * stays held: the operation is short, and the mutex's other holders never wait for the GIL.
 * A cache with a Redis store goes to cache_redis.c instead, connected on its first use in each
 * worker.
 *
 * Depends on: cache.c, cache_redis.c (server/README)
 */
#define PY_SSIZE_T_CLEAN /* "s#" lengths as Py_ssize_t: before Python.h (core.h) */
#include "cache.h"
#include "cache_redis.h"
#include "core.h"

#include <errno.h>
#include <string.h>

/* This process's Redis connections, by cache index (made after the fork, on first use). */
static struct cache_redis *redis_of[GY_MAX_CACHES + 1];

/* The cache named name (NULL: the first); NULL with an exception set for a remote name, NULL
 * without one when there is no such cache. */
static struct cache *lookup(const char *name, const char *fn)
{
    if (name && strchr(name, '@')) {
        PyErr_Format(PyExc_NotImplementedError,
                     "uwsgi.%s(): %s is a remote cache (NAME@SERVER): gyre has no cache server; "
                     "share a cache with store=redis://... instead (README: \"uwsgi API\")",
                     fn, name);
        return NULL;
    }
    return caches_find(name);
}

static char *alloc_bytes(void *ctx, size_t n)
{
    PyObject **dst = ctx;
    *dst = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    return *dst ? PyBytes_AS_STRING(*dst) : NULL;
}

static int append_key(void *ctx, const char *key, size_t n)
{
    PyObject *k = PyBytes_FromStringAndSize(key, (Py_ssize_t)n);
    int rc = k ? PyList_Append(ctx, k) : -1;
    Py_XDECREF(k);
    return rc;
}

/* Run req on cache c. 1 done (*res: the value for GET/NUM/KEYS, a new reference), 0 not done,
 * -1 with an exception set. */
static int run(struct cache *c, const struct cache_req *req, PyObject **res)
{
    *res = NULL;
    if (c->conf->store_redis) {
        int i = (int)(c - caches_at(0));
        if (!redis_of[i]) {
            char err[256];
            redis_of[i] = cache_redis_open(c->conf->name, c->conf->store, c->conf->keysize,
                                           c->conf->blocksize, err, sizeof(err));
            if (!redis_of[i]) {
                PyErr_SetString(PyExc_OSError, err);
                return -1;
            }
        }
        return cache_redis_do(redis_of[i], req, res);
    }
    PyObject *list = NULL;
    if (req->op == CACHE_KEYS && !(list = PyList_New(0)))
        return -1;
    struct cache_out out = { .alloc = alloc_bytes, .key = append_key };
    out.ctx = req->op == CACHE_KEYS ? (void *)list : (void *)res;
    int rc = cache_do(c, req, &out);
    if (rc < 0) {
        Py_CLEAR(*res);
        Py_XDECREF(list);
        if (!PyErr_Occurred())
            PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (req->op == CACHE_KEYS)
        *res = list;
    else if (req->op == CACHE_NUM)
        *res = PyLong_FromLongLong(out.num);
    if ((req->op == CACHE_KEYS || req->op == CACHE_NUM) && !*res)
        return -1;
    return rc;
}

/* True for done, None for not done; NULL on an exception. */
static PyObject *done_or_none(struct cache *c, const struct cache_req *req)
{
    if (!c)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    PyObject *res = NULL;
    int rc = run(c, req, &res);
    Py_XDECREF(res);
    if (rc < 0)
        return NULL;
    return Py_NewRef(rc ? Py_True : Py_None);
}

static PyObject *uwsgi_cache_get(PyObject *mod, PyObject *args)
{
    (void)mod;
    struct cache_req req = { .op = CACHE_GET };
    Py_ssize_t klen;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "s#|s:cache_get", &req.key, &klen, &name))
        return NULL;
    req.klen = (size_t)klen;
    struct cache *c = lookup(name, "cache_get");
    if (!c)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    PyObject *res;
    int rc = run(c, &req, &res);
    if (rc < 0)
        return NULL;
    if (rc == 0 || !res) { /* !res: a store that said done without a value */
        Py_XDECREF(res);
        Py_RETURN_NONE;
    }
    return res;
}

static PyObject *uwsgi_cache_num(PyObject *mod, PyObject *args)
{
    (void)mod;
    struct cache_req req = { .op = CACHE_NUM };
    Py_ssize_t klen;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "s#|s:cache_num", &req.key, &klen, &name))
        return NULL;
    req.klen = (size_t)klen;
    struct cache *c = lookup(name, "cache_num");
    if (!c)
        return PyErr_Occurred() ? NULL : PyLong_FromLong(0);
    PyObject *res;
    int rc = run(c, &req, &res);
    if (rc < 0)
        return NULL;
    if (rc == 0 || !res) {
        Py_XDECREF(res);
        return PyLong_FromLong(0);
    }
    return res;
}

static PyObject *uwsgi_cache_keys(PyObject *mod, PyObject *args)
{
    (void)mod;
    struct cache_req req = { .op = CACHE_KEYS };
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|s:cache_keys", &name))
        return NULL;
    struct cache *c = lookup(name, "cache_keys");
    if (!c)
        return PyErr_Occurred() ? NULL
                                : PyErr_Format(PyExc_ValueError, "no local uWSGI cache available");
    PyObject *res;
    int rc = run(c, &req, &res);
    if (rc < 0)
        return NULL;
    return res ? res : PyList_New(0);
}

/* cache_set, cache_update: key, value[, expires[, cache]]. */
static PyObject *set_like(PyObject *args, enum cache_op op, const char *fmt, const char *fn)
{
    struct cache_req req = { .op = op };
    Py_ssize_t klen, vlen;
    long expires = 0;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, fmt, &req.key, &klen, &req.val, &vlen, &expires, &name))
        return NULL;
    req.klen = (size_t)klen;
    req.vlen = (size_t)vlen;
    req.expires = (uint64_t)expires; /* uWSGI reads "l" into its uint64_t: the same bits */
    return done_or_none(lookup(name, fn), &req);
}

static PyObject *uwsgi_cache_set(PyObject *mod, PyObject *args)
{
    (void)mod;
    return set_like(args, CACHE_SET, "s#s#|ls:cache_set", "cache_set");
}

static PyObject *uwsgi_cache_update(PyObject *mod, PyObject *args)
{
    (void)mod;
    return set_like(args, CACHE_UPDATE, "s#s#|ls:cache_update", "cache_update");
}

/* cache_inc/dec/mul/div: key[, n[, expires[, cache]]]; the expiry only for a new key. */
static PyObject *math_like(PyObject *args, enum cache_op op, long n, const char *fmt,
                           const char *fn)
{
    struct cache_req req = { .op = op };
    Py_ssize_t klen;
    long expires = 0;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, fmt, &req.key, &klen, &n, &expires, &name))
        return NULL;
    req.klen = (size_t)klen;
    req.num = n;
    req.expires = (uint64_t)expires;
    return done_or_none(lookup(name, fn), &req);
}

static PyObject *uwsgi_cache_inc(PyObject *mod, PyObject *args)
{
    (void)mod;
    return math_like(args, CACHE_INC, 1, "s#|lls:cache_inc", "cache_inc");
}

static PyObject *uwsgi_cache_dec(PyObject *mod, PyObject *args)
{
    (void)mod;
    return math_like(args, CACHE_DEC, 1, "s#|lls:cache_dec", "cache_dec");
}

static PyObject *uwsgi_cache_mul(PyObject *mod, PyObject *args)
{
    (void)mod;
    return math_like(args, CACHE_MUL, 2, "s#|lls:cache_mul", "cache_mul");
}

static PyObject *uwsgi_cache_div(PyObject *mod, PyObject *args)
{
    (void)mod;
    return math_like(args, CACHE_DIV, 2, "s#|lls:cache_div", "cache_div");
}

/* cache_del, cache_exists: key[, cache]. */
static PyObject *key_only(PyObject *args, enum cache_op op, const char *fmt, const char *fn)
{
    struct cache_req req = { .op = op };
    Py_ssize_t klen;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, fmt, &req.key, &klen, &name))
        return NULL;
    req.klen = (size_t)klen;
    return done_or_none(lookup(name, fn), &req);
}

static PyObject *uwsgi_cache_del(PyObject *mod, PyObject *args)
{
    (void)mod;
    return key_only(args, CACHE_DEL, "s#|s:cache_del", "cache_del");
}

static PyObject *uwsgi_cache_exists(PyObject *mod, PyObject *args)
{
    (void)mod;
    return key_only(args, CACHE_EXISTS, "s#|s:cache_exists", "cache_exists");
}

static PyObject *uwsgi_cache_clear(PyObject *mod, PyObject *args)
{
    (void)mod;
    struct cache_req req = { .op = CACHE_CLEAR };
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|s:cache_clear", &name))
        return NULL;
    return done_or_none(lookup(name, "cache_clear"), &req);
}

#define F(name, doc)                                                                               \
    {                                                                                              \
#name, (PyCFunction)(void (*)(void))uwsgi_##name, METH_VARARGS, doc                        \
    }
PyMethodDef uwsgi_cache_methods[] = {
    F(cache_get, "cache_get(key[, cache]) -> bytes, or None"),
    F(cache_set, "cache_set(key, value[, expires[, cache]]) -> True; None if key is there"),
    F(cache_update, "cache_update(key, value[, expires[, cache]]) -> True, or None"),
    F(cache_del, "cache_del(key[, cache]) -> True, or None if absent"),
    F(cache_exists, "cache_exists(key[, cache]) -> True, or None"),
    F(cache_clear, "cache_clear([cache]) -> True"),
    F(cache_keys, "cache_keys([cache]) -> a list of bytes"),
    F(cache_inc, "cache_inc(key[, n=1[, expires[, cache]]]) -> True: the 64-bit number += n"),
    F(cache_dec, "cache_dec(key[, n=1[, expires[, cache]]]) -> True: -= n"),
    F(cache_mul, "cache_mul(key[, n=2[, expires[, cache]]]) -> True: *= n"),
    F(cache_div, "cache_div(key[, n=2[, expires[, cache]]]) -> True: /= n (by 0: 0)"),
    F(cache_num, "cache_num(key[, cache]) -> the number stored by cache_inc..., 0 if none"),
    { NULL, NULL, 0, NULL },
};
