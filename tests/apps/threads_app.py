"""Test app for test_threads.py: --threads (OS-thread cores, and the pool beside --tornado).

Runs under gyre and under Debian's uWSGI (the gyre module is imported only by the routes that
need it). Every answer is text/plain with a Content-Length unless said otherwise.

    /hello               "hello"
    /pid                 "pid=<worker pid>"
    /sleep?s=S[&note=1]  time.sleep(S) (a blocking call), "slept <thread ident>"; with note,
                         writes "sleep start" to stderr first
    /spin?s=S            a pure-Python CPU loop for S seconds (writes "spin start" to stderr
                         first, so a test can wait for it in the server's log), "spun <loops>"
    /forever-spin        `while True: pass` (writes "forever-spin start" to stderr first)
    /forever-sleep       time.sleep(3600) (writes "forever-sleep start" to stderr first)
    /big?n=N             a body of N bytes b"x", in one piece (writes "big start" to stderr)
    /bigfile?n=N         the same from a file, through wsgi.file_wrapper (sendfile)
    /echo                the request body back (POST)
    /env                 JSON: wsgi.multithread, wsgi.multiprocess, wsgi.run_once, the thread
                         ident, whether it is the main thread, the pid
    /stack?s=S           after time.sleep(S) (default 0), JSON: the stack size of the thread
                         running the request, from pthread_getattr_np (ctypes), and whether it
                         is the main thread
    /recurse?n=N         a recursion N deep through a C function (json.dumps of a nested list,
                         whose C encoder recurses on the thread's stack), "depth <N> ok"

  --tornado M --threads N (gyre only):
    /offload?s=S         gyre.run_in_thread(fn): fn sleeps S s (time.sleep, default 0.3) and
                         returns its thread's name; the answer is that name
    /offload-raise       gyre.run_in_thread of a fn that raises ValueError("offload boom");
                         the app catches it: "caught ValueError: offload boom"
    /executor            IOLoop.current().run_in_executor(None, fn) awaited with gyre.wait;
                         fn returns its thread's name; the answer is "executor <name>"
    /pool-switch         a fn run in a pool thread calls gyre.sleep(0.1), which cannot work
                         there: the error is caught (in the core, where run_in_thread re-raises
                         it) and answered "error <Type>: <message>"
"""
import ctypes
import ctypes.util
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs


def _q(environ, name, default):
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0]


def _reply(start_response, body, status="200 OK", ctype="text/plain"):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _note(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.pthread_self.restype = ctypes.c_ulong
_libc.pthread_getattr_np.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
_libc.pthread_attr_getstacksize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
_libc.pthread_attr_destroy.argtypes = [ctypes.c_void_p]


def _stack_size():
    attr = ctypes.create_string_buffer(128)  # pthread_attr_t is 56 bytes on x86-64
    rc = _libc.pthread_getattr_np(_libc.pthread_self(), attr)
    if rc:
        raise OSError(rc, "pthread_getattr_np")
    size = ctypes.c_size_t()
    try:
        rc = _libc.pthread_attr_getstacksize(attr, ctypes.byref(size))
        if rc:
            raise OSError(rc, "pthread_attr_getstacksize")
    finally:
        _libc.pthread_attr_destroy(attr)
    return size.value


def _spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def _named_sleep(seconds):
    time.sleep(seconds)
    return threading.current_thread().name


def _raise_value_error():
    raise ValueError("offload boom")


def _gyre_sleep_in_pool():
    import gyre
    gyre.sleep(0.1)
    return "gyre.sleep returned in a pool thread"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/hello":
        return _reply(start_response, "hello")
    if path == "/pid":
        return _reply(start_response, "pid=%d" % os.getpid())
    if path == "/sleep":
        if _q(environ, "note", ""):
            _note("sleep start")
        time.sleep(float(_q(environ, "s", "0.2")))
        return _reply(start_response, "slept %d" % threading.get_ident())
    if path == "/spin":
        _note("spin start")
        return _reply(start_response, "spun %d" % _spin(float(_q(environ, "s", "1.0"))))
    if path == "/forever-spin":
        _note("forever-spin start")
        while True:
            pass
    if path == "/forever-sleep":
        _note("forever-sleep start")
        time.sleep(3600)
        return _reply(start_response, "woke up")
    if path == "/big":
        _note("big start")
        return _reply(start_response, b"x" * int(_q(environ, "n", "524288")))
    if path == "/bigfile":
        import tempfile
        n = int(_q(environ, "n", "524288"))
        f = tempfile.TemporaryFile()
        f.write(b"x" * n)
        f.seek(0)
        _note("big start")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(n))])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/echo":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        return _reply(start_response, environ["wsgi.input"].read(n),
                      ctype="application/octet-stream")
    if path == "/env":
        return _reply(start_response, json.dumps({
            "multithread": environ["wsgi.multithread"],
            "multiprocess": environ["wsgi.multiprocess"],
            "run_once": environ["wsgi.run_once"],
            "ident": threading.get_ident(),
            "main": threading.current_thread() is threading.main_thread(),
            "pid": os.getpid(),
        }), ctype="application/json")
    if path == "/stack":
        time.sleep(float(_q(environ, "s", "0")))
        return _reply(start_response, json.dumps({
            "stacksize": _stack_size(),
            "main": threading.current_thread() is threading.main_thread(),
        }), ctype="application/json")
    if path == "/recurse":
        n = int(_q(environ, "n", "1000"))
        nested = []
        for _ in range(n):
            nested = [nested]
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, n + 1000))
        try:
            text = json.dumps(nested)
        finally:
            sys.setrecursionlimit(limit)
        assert text.count("[") == n + 1
        return _reply(start_response, "depth %d ok" % n)
    if path == "/offload":
        import gyre
        return _reply(start_response, gyre.run_in_thread(_named_sleep,
                                                         float(_q(environ, "s", "0.3"))))
    if path == "/offload-raise":
        import gyre
        try:
            gyre.run_in_thread(_raise_value_error)
        except ValueError as e:
            return _reply(start_response, "caught ValueError: %s" % e)
        return _reply(start_response, "no exception", "500 Internal Server Error")
    if path == "/executor":
        import gyre
        from tornado.ioloop import IOLoop
        fut = IOLoop.current().run_in_executor(None, _named_sleep, 0.1)
        return _reply(start_response, "executor " + gyre.wait(fut))
    if path == "/pool-switch":
        import gyre
        try:
            out = gyre.run_in_thread(_gyre_sleep_in_pool)
        except Exception as e:
            return _reply(start_response, "error %s: %s" % (type(e).__name__, e))
        return _reply(start_response, "no error: " + out, "500 Internal Server Error")
    return _reply(start_response, "not found: " + path, "404 Not Found")
